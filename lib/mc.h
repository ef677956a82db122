/*
 * memcached access through libmemcached: a server list with consistent
 * hashing and millisecond timeouts. memcached is never required for a
 * request to succeed; callers treat every failure as a cache miss.
 */
#ifndef ASSAY_MC_H
#define ASSAY_MC_H

#include <stdbool.h>

struct mc;

/* servers: "host:port,host:port". NULL if the list cannot be parsed. */
struct mc *mc_new(const char *servers);
void mc_free(struct mc *);
/* Round trip to the servers; true if they answered. Sets *err on failure. */
bool mc_ping(struct mc *, const char **err);

#endif
