/*
 * The small HTTP port of the daemons (assay-executor, assay-stream) for
 * GET /health and GET /metrics: one request per connection, answered at
 * once from memory. Not a web server: the request line is all it reads.
 */
#ifndef ASSAY_PROBE_H
#define ASSAY_PROBE_H

#include <stdio.h>

/* A non-blocking listening TCP socket on addr:port, or -1 (logged). */
int probe_listen(const char *addr, long port);
/*
 * Accept one connection on fd and answer it. fn writes the body of a
 * known path to f, sets *ctype, and returns true; false means 404.
 */
void probe_serve(int fd,
                 int (*fn)(const char *path, FILE *f, const char **ctype, void *arg),
                 void *arg);

#endif
