/*
 * A prefork worker: accept one FastCGI request at a time, route it, answer
 * it, log one access line. SIGTERM lets the request in hand finish, then
 * the worker exits. A worker never outlives its master (PDEATHSIG). All
 * per-process state (database connection, memcached handle) lives here.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "log.h"
#include "mc.h"
#include "util.h"

static volatile sig_atomic_t worker_stopping;
static int worker_listen_fd = -1;

/*
 * Stop accepting. The handler is installed with SA_RESTART, so a request
 * being read or written is never cut short (libfcgi does not retry reads
 * interrupted by a signal). Closing the listening descriptor makes the
 * accept(2) that the kernel restarts, or that libfcgi starts next, fail at
 * once with EBADF instead of waiting for a client.
 */
static void
worker_on_term(int sig)
{
	(void)sig;
	worker_stopping = 1;
	FCGX_ShutdownPending();
	if (worker_listen_fd >= 0)
		close(worker_listen_fd);
	worker_listen_fd = -1;
}

static void
worker_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = worker_on_term;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL); /* the master replaces workers on reload */
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The request path without query string, with /api/ as an alias of /api/v1/. */
static void
req_path(struct req *r)
{
	const char *uri = http_param(r, "REQUEST_URI");

	if (uri == NULL)
		uri = http_param(r, "SCRIPT_NAME");
	httpmsg_path(uri != NULL ? uri : "/", r->path, sizeof r->path);
}

/* One line per request, at info; liveness probes, which load balancers
 * send every second or so, at debug unless they fail. */
static void
access_log(const struct req *r)
{
	enum log_level level =
	    r->match.route && r->match.route->access == A_PROBE && r->status < 500
	        ? LOG_DEBUG
	        : LOG_INFO;
	char members[512], method[64];

	if (!log_enabled(level))
		return;
	log_json_escape(r->method, method, sizeof method);
	snprintf(members, sizeof members,
	         "\"method\":\"%s\",\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,"
	         "\"request_id\":\"%s\",\"tenant\":%s%s%s",
	         method, r->match.route ? r->match.route->pattern : "-", r->status,
	         (double)(util_now_us() - r->start_us) / 1000.0, r->request_id,
	         r->tenant ? "\"" : "", r->tenant ? r->tenant->name : "null",
	         r->tenant ? "\"" : "");
	log_line(level, "request", members);
}

static void
worker_serve(struct app *app, FCGX_Request *fr, bool metrics)
{
	struct tenant tenant;
	const struct route *rt;
	struct req r;
	char allow[128], headers[160], preflight[512];

	memset(&r, 0, sizeof r);
	r.start_us = util_now_us();
	if (metrics)
		metrics_request_start();
	r.fcgi = fr;
	r.app = app;
	r.method = http_param(&r, "REQUEST_METHOD");
	if (r.method == NULL)
		r.method = "GET";
	httpmsg_request_id(http_param(&r, "HTTP_X_REQUEST_ID"), r.request_id);
	req_path(&r);
	if (httpmsg_origin_allowed(http_param(&r, "HTTP_ORIGIN"),
	                           cfg_str(app->cfg, API_CORS_ORIGINS)))
		r.cors_origin = http_param(&r, "HTTP_ORIGIN");

	switch (route_match(api_routes, api_nroutes, r.method, r.path, &r.match)) {
	case ROUTE_OK: /* what the route's row asks for, in order */
		rt = r.match.route;
		if (rt->access == A_TENANT && !auth_request(&r, &tenant))
			break;
		if (rt->audit != NULL)
			audit_note(&r, rt->audit,
			           r.match.nparams ? r.match.params[0] : NULL);
		if (rt->limit != L_NONE && !limit_request(&r))
			break;
		if (rt->query != NULL && !http_query_take(&r))
			break;
		if (rt->fields != NULL && !body_take(&r))
			break;
		rt->handler(&r);
		break;
	case ROUTE_BAD_METHOD:
		if (!limit_request(&r))
			break;
		route_allow(r.match.allow, allow, sizeof allow);
		if (strcmp(r.method, "OPTIONS") == 0) { /* a CORS preflight, or asking */
			snprintf(preflight, sizeof preflight, "Allow: %s\r\n%s%s%s%s",
			         allow,
			         r.cors_origin ? "Access-Control-Allow-Methods: " : "",
			         r.cors_origin ? allow : "", r.cors_origin ? "\r\n" : "",
			         r.cors_origin ? HTTPMSG_CORS_PREFLIGHT : "");
			http_send(&r, 204, "application/json", preflight, "", 0);
			break;
		}
		snprintf(headers, sizeof headers, "Allow: %s\r\n", allow);
		http_problem(&r, 405, "METHOD_NOT_ALLOWED", headers,
		             "%s is not allowed on %s; allowed: %s", r.method, r.path,
		             allow);
		break;
	case ROUTE_NOT_FOUND:
		if (!limit_request(&r))
			break;
		http_problem(&r, 404, "NOT_FOUND", NULL, "no resource at %s", r.path);
		break;
	}
	if (r.audit_action != NULL)
		audit_append(&r);
	json_object_put(r.query);
	json_object_put(r.body);
	json_object_put(r.errors);
	if (metrics)
		metrics_request_end(&r, util_now_us() - r.start_us);
	access_log(&r);
}

/*
 * End the request and its connection. libfcgi's close half-closes the
 * connection, then reads until the web server closes its end: three more
 * system calls and a wait on every request, which protect a web server
 * still sending part of the request (a refused body) from a reset. When
 * the request has been read to its end there is nothing left to protect,
 * and the connection is closed at once: a detached request is closed
 * without that drain. FastCGI has the application close the connection
 * after its last record, so the web server expects no more.
 */
static void
worker_finish(FCGX_Request *fr)
{
	if (!fr->keepConnection && FCGX_GetChar(fr->in) == EOF &&
	    FCGX_GetError(fr->in) == 0)
		FCGX_Detach(fr);
	FCGX_Finish_r(fr);
}

void
worker_run(const struct cfg *cfg, int listen_fd)
{
	struct app app = {cfg, NULL, NULL};
	bool metrics = cfg_int(cfg, API_METRICS) != 0;
	FCGX_Request fr;

	worker_listen_fd = listen_fd;
	worker_signals();
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		exit(0); /* the master died before we got here */
	app.db = db_new(cfg_str(cfg, API_DATABASE_URL));
	if (metrics)
		metrics_worker_start();
	app.mc = mc_new(cfg_str(cfg, API_MEMCACHED_SERVERS), 50);
	if (app.mc == NULL)
		log_msg(LOG_WARN,
		        "memcached_servers '%s' cannot be parsed; running without cache",
		        cfg_str(cfg, API_MEMCACHED_SERVERS));

	if (FCGX_Init() != 0 ||
	    FCGX_InitRequest(&fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
		log_msg(LOG_ERROR, "cannot initialise libfcgi");
		exit(1);
	}
	while (!worker_stopping) {
		if (FCGX_Accept_r(&fr) < 0) {
			if (worker_stopping || errno == EINTR)
				continue;
			log_msg(LOG_ERROR, "accept failed: %s", strerror(errno));
			exit(1);
		}
		worker_serve(&app, &fr, metrics);
		worker_finish(&fr);
	}
	db_free(app.db);
	mc_free(app.mc);
	exit(0);
}
