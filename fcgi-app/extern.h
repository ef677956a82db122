/*
 * Internals of assay-api shared between its files. assay-api is a prefork
 * FastCGI responder: a master (master.c) owns the listening socket and
 * supervises workers (worker.c), each serving one request at a time
 * through the route table (routes.c, route.c) and handlers (health.c).
 * Only HTTP concerns live in this folder; storage and config are in lib/.
 */
#ifndef ASSAY_API_EXTERN_H
#define ASSAY_API_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fcgiapp.h>

#include "cfg.h"

struct json_object;

/* Keys of assay.conf, indexes into api_cfg_keys (conf.c). */
enum api_key {
	API_LISTEN,
	API_SOCKET_MODE,
	API_WORKERS,
	API_SHUTDOWN_TIMEOUT,
	API_DATABASE_URL,
	API_MEMCACHED_SERVERS,
	API_LOG_LEVEL,
	API__MAX
};
extern const struct cfg_key api_cfg_keys[API__MAX];
#define API_CONF_FILE SYSCONFDIR "/assay/assay.conf"

/* Methods as bits, so a route can accept several and 405 can list them. */
enum http_method {
	M_GET = 1 << 0,
	M_HEAD = 1 << 1,
	M_POST = 1 << 2,
	M_PUT = 1 << 3,
	M_PATCH = 1 << 4,
	M_DELETE = 1 << 5,
};

struct req;
typedef void route_handler(struct req *);

struct route {
	unsigned methods;   /* M_* bits; HEAD is implied by GET */
	const char *pattern; /* "/api/v1/runs/{id}": {name} matches one segment */
	route_handler *handler;
};

#define ROUTE_MAX_PARAMS 4

enum route_rc { ROUTE_OK = 0, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

struct route_match {
	const struct route *route;
	unsigned allow; /* methods the path accepts, for 405 */
	size_t nparams;
	char params[ROUTE_MAX_PARAMS][128];
};

extern const struct route api_routes[];
extern const size_t api_nroutes;

/* route.c: match a method and a path (no query string) against a table. */
unsigned route_method(const char *name);
enum route_rc route_match(const struct route *, size_t, const char *method,
                          const char *path, struct route_match *);
/* "GET, HEAD, POST" for an Allow header. */
void route_allow(unsigned methods, char *buf, size_t len);

/* What a worker keeps between requests. */
struct app {
	const struct cfg *cfg;
	struct db *db;
	struct mc *mc;
};

/* One request being served; lives on the worker's stack. */
struct req {
	FCGX_Request *fcgi;
	struct app *app;
	const char *method;
	char path[2048];
	char request_id[65];
	struct route_match match;
	int status; /* set when the response is sent */
	uint64_t start_us;
};

/* http.c: responses. Each sends the whole response; call exactly one. */
void http_send(struct req *, int status, const char *ctype, const char *headers,
               const char *body, size_t len);
/* Send obj as JSON and release it. */
void http_json(struct req *, int status, const char *ctype, struct json_object *obj);
/* RFC 9457 problem details; headers may be NULL. */
void http_problem(struct req *, int status, const char *code, const char *headers,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
const char *http_reason(int status);
/* Copy given to id when it is a well-formed request id, else make a new one. */
void http_request_id(const char *given, char id[65]);
/* A CGI parameter of the request, or NULL. */
const char *http_param(const struct req *, const char *name);

/* master.c: block the signals the master takes synchronously (before forking),
 * then supervise workers on listen_fd until SIGTERM. master_run owns cfg;
 * reloads fail when cfg_path is missing only if cfg_required. */
void master_block_signals(void);
int master_run(struct cfg *, const char *cfg_path, bool cfg_required, int listen_fd);

/* worker.c */
void worker_run(const struct cfg *, int listen_fd); /* never returns */

/* health.c */
route_handler health_live, health_ready, health_summary, health_detailed;

#endif
