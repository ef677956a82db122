/*
 * memcached access through libmemcached: a server list with consistent
 * hashing and millisecond timeouts. memcached is never required for a
 * request to succeed; callers treat every failure as a cache miss.
 *
 * After a failure to reach the servers the handle stops trying for a
 * backoff (100 ms, doubling up to 5 s, reset by the next success), so a
 * dead or black-holed cache costs a request nothing while it is down.
 */
#ifndef ASSAY_MC_H
#define ASSAY_MC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc;

enum mc_rc {
	MC_OK,
	MC_MISS, /* no such key (get, incr, delete) or not stored (add) */
	MC_DOWN, /* the servers could not be reached, or backing off */
};

/*
 * servers: "host:port,host:port"; timeout_ms bounds each operation (the
 * API's request path uses a few tens, daemons that only write can wait
 * longer). NULL if the list cannot be parsed.
 */
struct mc *mc_new(const char *servers, unsigned timeout_ms);
void mc_free(struct mc *);
/* From now on, writes are buffered and their replies not awaited (for a
 * daemon that only forgets entries, many per pass of its loop): mc_flush
 * sends what is buffered; false when the servers could not be reached. */
void mc_buffer(struct mc *);
bool mc_flush(struct mc *);
/* Round trip to the servers; true if they answered. Sets *err on failure. */
bool mc_ping(struct mc *, const char **err);
/* Whether the last operation reached the servers (false while backing off). */
bool mc_up(const struct mc *);
/* The last failure, for logs. */
const char *mc_last_error(const struct mc *);

/* *val is malloc'd and NUL-terminated on MC_OK. */
enum mc_rc mc_get(struct mc *, const char *key, char **val, size_t *len);
enum mc_rc mc_add(struct mc *, const char *key, const char *val, size_t len,
                  unsigned ttl_s);
/* Add one to a counter, creating it at 1 with ttl_s when absent. */
enum mc_rc mc_incr(struct mc *, const char *key, unsigned ttl_s, uint64_t *value);
/* Take one back from a counter mc_incr made (never below 0); best effort. */
void mc_decr(struct mc *, const char *key);

/*
 * The cache's keys and write marks, shared by assay-api (which caches) and
 * assay-executor (which changes runs): an entry is named within a project,
 * and a write replaces it with a tombstone (an empty value) for a few
 * seconds, which cache fills (mc_add) cannot overwrite.
 */
#define MC_KEY_MAX   160
#define MC_TOMBSTONE 5
void mc_key(char key[MC_KEY_MAX], const char *project, const char *name);
/*
 * Replace key by a tombstone; false if memcached could not be told. A
 * forgotten write would leave stale data behind, so this is tried even
 * while the handle backs off, and once more on failure.
 */
bool mc_tombstone(struct mc *, const char *key);
/* mc_tombstone of project's entry name. */
bool mc_forget(struct mc *, const char *project, const char *name);
/* A run's two entries, as both programs name them within its project:
 * the run itself ("run:<id>") and its result ("result:<id>"). */
enum mc_run_entry { MC_RUN, MC_RESULT };
#define MC_RUN_NAME_MAX 48
void mc_run_name(char name[MC_RUN_NAME_MAX], enum mc_run_entry, const char *run);
/* A run changed: mc_forget both of its entries; false if either failed. */
bool mc_forget_run(struct mc *, const char *project, const char *run);
/* The entry of an API key's lookup, by the key's SHA-256 (hex). */
void mc_apikey_key(char key[MC_KEY_MAX], const char *digest);
/* The counter of a rate limit ("t:<tenant>:runs") in a window (the time
 * in seconds divided by the window's length), as assay-api counts it and
 * assay-executor adds the runs schedules make; a counter lives for
 * MC_LIMIT_TTL of its window's length. */
#define MC_LIMIT_TTL(seconds) ((unsigned)(2 * (seconds) + 1))
void mc_limit_key(char key[MC_KEY_MAX], const char *name, uint64_t window);

/* Call fn for each configured server with whether it answers a request now. */
void mc_servers(struct mc *,
                void (*fn)(const char *host, unsigned port, bool up, void *arg),
                void *arg);

#endif
