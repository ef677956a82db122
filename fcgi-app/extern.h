/*
 * Internals of assay-api shared between its files. assay-api is a prefork
 * FastCGI responder: a master (master.c) owns the listening socket and
 * supervises workers (worker.c), each serving one request at a time
 * through the route table (routes.c, matched by route.c): the dispatcher
 * authenticates (auth.c), limits (limit.c) and checks the query string
 * (http.c) and the body (body.c) against tables (valid.c, fields.c) as
 * the route's row says, then calls its handler
 * (health.c, metrics.c, docs.c, analyses.c, runs.c with idempotency.c,
 * paging.c and webhooks.c, files.c, schedules.c), which answers through http.c, reading
 * through cache.c. Only HTTP concerns live in this folder; storage and config are in
 * lib/.
 */
#ifndef ASSAY_API_EXTERN_H
#define ASSAY_API_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <fcgiapp.h>
#include <libpq-fe.h>

#include "assayconf.h"
#include "cfg.h"
#include "jobtoken.h"

struct json_object;

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
struct vfield;
typedef void route_handler(struct req *);

#define VALUES_MAX 16 /* the most fields a body or query table has */

/*
 * A route: what varies by endpoint, applied by the dispatcher (worker.c)
 * in this order before the handler runs: who may call it (access), which
 * limits it counts against (limit); for a route that takes query
 * parameters, the table they are checked against (query: any parameter
 * it does not name is refused; routes without one do not read the query
 * string), answered 400 with every violation, the values then in req.q;
 * and, for a route that takes a JSON body, the table its members are
 * checked against (fields; partial for PATCH, where every member is
 * optional) and a check of its own that may add violations (check, may
 * be NULL), answered 422 with every violation, the values then in req.v.
 * A route with an audit action is audited as that action (on its first
 * path parameter) once its caller is authenticated, whatever follows;
 * its handler may say more (audit_note). A job token (auth.c) may call
 * only the routes whose job column allows it, and every such call is
 * audited: as the route's audit action, or else as job_audit.
 */
struct route {
	unsigned methods;    /* M_* bits; HEAD is implied by GET */
	const char *pattern; /* "/api/v1/runs/{id}": {name} matches one segment,
	                      * a final {path} the rest of the path */
	route_handler *handler;
	enum access {
		A_PROBE,  /* liveness probes: no key */
		A_PUBLIC, /* no key */
		A_TENANT, /* needs an API key (sets req.tenant) */
	} access;
	enum limit_class {
		L_NONE,     /* never limited (probes) */
		L_REQUESTS, /* per tenant, or per client address without a key */
		L_RUNS,     /* also the tenant's runs per hour */
	} limit;
	const struct vfield *query; /* NULL: the query string is not read */
	size_t nquery;
	struct vfield *fields; /* NULL: no body */
	size_t nfields;
	bool partial;
	route_handler *check;
	const char *audit; /* NULL: not audited */
	enum job_access {
		J_NONE,    /* a job token gets 403 */
		J_PROJECT, /* a job token may: its project's data, as a key would */
		J_OWN_RUN, /* a job token may, when {id} is its own run */
	} job;
	const char *job_audit;   /* a job token's call, on a route without audit */
	enum api_key body_limit; /* its body's limit; 0: body_limit_bytes */
};

#define ROUTE_MAX_PARAMS 4

enum route_rc { ROUTE_OK = 0, ROUTE_NOT_FOUND, ROUTE_BAD_METHOD };

struct route_match {
	const struct route *route;
	unsigned allow; /* methods the path accepts, for 405 */
	size_t nparams;
	char params[ROUTE_MAX_PARAMS][1024]; /* a file's path is at most 512 bytes */
};

extern const struct route api_routes[];
extern const size_t api_nroutes;

/* route.c: match a method and a path (no query string) against a table;
 * a path a pattern without parameters names is matched by such rows only. */
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

/* The caller, once authenticated (auth.c). */
struct tenant {
	char id[24];
	char name[72];
	char tier[16];
	char project_id[24]; /* the tenant's default project */
};

/* One request being served; lives on the worker's stack. */
struct req {
	FCGX_Request *fcgi;
	struct app *app;
	const struct tenant *tenant; /* NULL unless the route needs auth */
	const char *method;
	char path[2048];
	char request_id[65];
	struct route_match match;
	int status;                /* set when the response is sent */
	char extra_headers[640];   /* sent with whatever response follows (limits) */
	const char *cache_control; /* NULL: no-store */
	const char *cors_origin;   /* an allowed Origin the response names, or NULL */
	uint64_t start_us;
	/* A route with fields: its body, the violations found so far (a check
	 * may add), and the members' values (req.v[i] for fields[i]). Freed by
	 * the dispatcher. */
	struct json_object *body, *errors;
	struct vvalue {
		bool present; /* given, or defaulted */
		const char
		    *str; /* SQL parameter text: strings as is, JSON for input/tags */
		long num;
		char buf[24];
	} v[VALUES_MAX];
	/* A route with a query table: its parameters, and their values
	 * (req.q[i] for query[i]), borrowed from it. Freed by the dispatcher. */
	struct json_object *query;
	struct vvalue q[VALUES_MAX];
	/* What the audit log records of this request, once answered (audit.c);
	 * audit_action NULL: nothing. */
	const char *audit_action;
	char audit_target[1100];
	char audit_tenant[24]; /* without r->tenant: the tenant refused, or "" */
	char audit_actor[48]; /* "job:<run id>" for a job token, else "": the key's prefix
	                       */
	/* A caller authenticated by a job token: its claims (job.run[0] != 0). */
	struct jobtoken_claims job;
};

/* http.c: responses. Each sends the whole response; call exactly one. */
void http_send(struct req *, int status, const char *ctype, const char *headers,
               const char *body, size_t len);
/* Only the status line and headers of a response of len bytes, which the
 * caller then writes (unless the method is HEAD). */
void http_send_head(struct req *, int status, const char *ctype, const char *headers,
                    uint64_t len);
/* Send obj as JSON and release it. */
void http_json(struct req *, int status, const char *ctype, struct json_object *obj);
/* RFC 9457 problem details; headers may be NULL. */
void http_problem(struct req *, int status, const char *code, const char *headers,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Same, with extra members merged into the problem object (owned by callee). */
void http_problem_with(struct req *, int status, const char *code, const char *headers,
                       struct json_object *extra, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A CGI parameter of the request, or NULL. */
const char *http_param(const struct req *, const char *name);
/* For the dispatcher: the query string of a route with a query table,
 * checked against it, into req.query and req.q; false after answering
 * 400 with every violation. */
bool http_query_take(struct req *);
/* 200/201/202 with {"success":true, <member>: <json text>} and more members. */
void http_success(struct req *, int status, const char *headers, const char *members);
/* 200 like http_success, with an ETag of members, or 304 when If-None-Match
 * names it; final (it never changes again): Cache-Control private, max-age. */
void http_success_tagged(struct req *, const char *members, bool final);
/* The ETag of text (what the response says) into header ("ETag: ...\r\n");
 * true when If-None-Match names it, after answering 304. final as above. */
bool http_not_modified(struct req *, const char *text, bool final, char header[80]);
/* The answer to a DELETE of one row: 204 when res deleted it, else
 * not_found's. Clears res. */
void http_deleted(struct req *, PGresult *res, route_handler *not_found);
/* Answer 503 for a database failure (DB_DOWN or DB_ERROR). */
void http_db_failure(struct req *, int rc);
/* A handler's query: the result, or NULL after rolling back any open
 * transaction and answering 503. The caller PQclears the result. */
PGresult *http_query_db(struct req *, const char *sql, int n, const char *const *params);

/* valid.c: request bodies and query strings checked against a table of fields. */
enum vkind {
	V_TEXT, /* string of min..max characters */
	V_INT,  /* integer in min..max */
	V_BOOL,
	V_UUID,
	V_ENUM,   /* one of choices */
	V_ENUMS,  /* array of min..max of choices; in a query, comma-separated */
	V_CURSOR, /* "<digits>_<uuid>": a keyset cursor as a listing made it */
	V_URL,   /* http or https URL of at most max bytes: no credentials, no fragment */
	V_TAGS,  /* at most max strings of 1..64 characters */
	V_INPUT, /* string of at most max bytes, or object of at most 128 KiB */
	V_TOKEN, /* min..max characters of [A-Za-z0-9_-] */
	V_ITEMS, /* array of min..max items, checked by the handler */
	V_SINCE, /* RFC 3339 time, or a duration before now: <n>s|m|h|d;
	          * its value is the time in seconds since the epoch */
};

struct vfield {
	const char *name;
	enum vkind kind;
	bool required;
	long min, max;
	const char *const *choices;
	const char *def; /* text of the default when absent, or NULL */
};

/*
 * Check body against the table: fill values and append one
 * {"pointer", "detail"} to errors per violation, unknown members included.
 * partial: nothing required, no defaults, at least one member (PATCH);
 * a member given as null is a violation. Values borrow from body.
 */
size_t valid_check(struct json_object *body, const struct vfield *, size_t n,
                   bool partial, struct vvalue *values, struct json_object *errors);
/*
 * Check a query string (percent-encoded name=value pairs separated by &;
 * may be NULL) against the table as valid_check checks a body, defaults
 * included: one {"parameter", "detail"} in errors per violation, a
 * parameter the table does not name or one given twice included. A V_INT
 * value is taken as decimal digits, a V_ENUMS one split at commas; values
 * must be UTF-8. Values borrow from the returned object, which the caller
 * releases. n is at most VALUES_MAX.
 */
struct json_object *valid_query(const char *query, const struct vfield *, size_t n,
                                struct vvalue *values, struct json_object *errors);
void valid_error(struct json_object *errors, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Parse len bytes (strict JSON, valid UTF-8, nothing but blanks after the
 * value). NULL on failure with a human explanation in err; NULL with err
 * "" when the document is JSON's null.
 */
struct json_object *valid_parse(const char *buf, size_t len, char *err, size_t errlen);

/* fields.c: the body tables. */
enum {
	RF_NAME,
	RF_ANALYSIS,
	RF_INPUT,
	RF_TOKEN,
	RF_TAGS,
	RF_PRIORITY,
	RF_CALLBACK,
	RF_START,
	RF__MAX
};
/* An analysis' body; a check's takes the first AF_CHECK (script, runtime). */
enum {
	AF_SCRIPT,
	AF_RUNTIME,
	AF_CHECK,
	AF_TITLE = AF_CHECK,
	AF_DESCRIPTION,
	AF_TIMEOUT,
	AF_MEMORY,
	AF_ATTEMPTS,
	AF__MAX
};
enum { SF_CRON, SF_TIMEZONE, SF_NAME, SF_INPUT, SF_ENABLED, SF_CATCH_UP, SF__MAX };
extern struct vfield run_fields[RF__MAX], analysis_fields[AF__MAX],
    schedule_fields[SF__MAX];
/* The query of a listing: the runs' takes them all, the analyses' the
 * first QF_PAGE (limit and cursor). */
enum {
	QF_LIMIT,
	QF_CURSOR,
	QF_PAGE,
	QF_STATUS = QF_PAGE,
	QF_TAG,
	QF_ANALYSIS,
	QF_SINCE,
	QF__MAX
};
extern const struct vfield list_query[QF__MAX];
/* A run's statuses; NULL-terminated. */
extern const char *const run_statuses[];
/* body.c: the request body as a JSON object, or NULL after answering 4xx.
 * body_take, for the dispatcher: the body of a route with fields, checked
 * against them and the route's check, into req.body, req.errors, req.v;
 * false after answering (4xx, or what the check answered). */
struct json_object *body_json(struct req *);
bool body_take(struct req *);
/* 422 with every violation; releases errors. */
void body_invalid(struct req *, struct json_object *errors);

/* checks.c: POST /api/v1/analyses/check, answered once an executor has
 * compiled the script in the sandbox, or 503 after check_timeout_ms.
 * checks_init, in the master before its first fork: what lets at most
 * half the host's workers wait for checks at once. */
void checks_init(void);
route_handler checks_post;

/* paging.c: keyset pages of a route with list_query. list_fetch: the
 * LIMIT of the listing's query (the page's ?limit= and one more row) in
 * buf; list_send answers with column 0 of at most ?limit= rows and the
 * cursor (column 1) of the last one when there are more, and clears the
 * result; given NULL (http_query_db failed and answered), it does nothing. */
const char *list_fetch(const struct req *, char buf[24]);
void list_send(struct req *, const char *name, PGresult *);

/* auth.c: authenticate the caller, by an API key or a job token; false
 * after answering 401, 403 (a job token on a route it may not call) or
 * 503. auth_key_prefix: the prefix (APIKEY_PREFIX_LEN + 1 bytes) of the
 * key the caller presented; false when it presented none.
 * auth_job_keys_load: read job_token_key_file, in the master before
 * workers are forked (at start and on reload); without it job tokens are
 * refused. */
bool auth_request(struct req *, struct tenant *);
bool auth_key_prefix(struct req *, char *prefix);
void auth_job_keys_load(const struct cfg *);

/* limit.c: count the request against its limits; false after answering 429.
 * Sets the rate-limit headers of the response either way. */
bool limit_request(struct req *);
/* Count n more runs against the tenant's runs per hour, one at a time,
 * stopping at the first refused (not counted); returns how many passed
 * (n without a limit), and, when fewer, in *retry_after when one more
 * would pass. The rate-limit headers then say the last verdict. */
long limit_runs(struct req *, long n, long *retry_after);
/* The client's address: REMOTE_ADDR, or the last X-Forwarded-For entry
 * when REMOTE_ADDR is one of the trusted_proxies. */
void limit_client_address(const struct req *, char *buf, size_t len);

/* cache.c: the text of a one-value query (row 0, column 0) through the cache.
 * name is the entry's name within the caller's project ("run:<id>"). A
 * second column, if any, says whether the value is final: then it is
 * kept for ttl_long, and by each worker too; otherwise for the given
 * class. *text is malloc'd on CACHE_FOUND; CACHE_FAILED means 503 was
 * answered. */
enum cache_rc { CACHE_FOUND, CACHE_NONE, CACHE_FAILED };
enum cache_rc cache_query(struct req *, const char *name, enum ttl_class, const char *sql,
                          int n, const char *const *params, char **text);
/* Drop an entry after a write that changes it. */
void cache_forget(struct req *, const char *name);
/* Forget both of a run's entries (mc_run_name), here and in memcached. */
void cache_forget_run(struct req *, const char *run);
/* A GET of one object through cache_query: 200 {"success":true, member: value}
 * with its ETag (304 for If-None-Match; final, may be NULL, says whether the
 * value never changes again), or not_found when there is no row. */
void cache_answer(struct req *, const char *name, enum ttl_class, const char *member,
                  route_handler *not_found, bool (*final)(const char *value),
                  const char *sql, int n, const char *const *params);

/* shm.c: counters shared by all workers of this host (made before forking). */
#define SHM_LIMIT_SLOTS 8192
#define SHM_WORKERS     256
#define METRIC_BUCKETS  12
#define METRIC_ROUTES   48 /* routes in the table, then one for unmatched paths */
struct shm_counter {
	uint64_t hash, state;
};
struct shm_hist {
	uint64_t count, sum_us, bucket[METRIC_BUCKETS];
};
struct shm_worker {
	int32_t pid; /* 0: free */
	uint32_t busy, db_open;
};
struct shm {
	uint32_t mc_down; /* memcached unreachable, as last seen by any worker */
	uint64_t limited[TIER__MAX + 1]; /* 429s per tier; the last: per address */
	uint64_t cache_hits, cache_misses, cache_local_hits, cache_errors;
	uint64_t db_errors;
	uint64_t runs_created;                  /* POST /runs answered 201 */
	struct shm_hist http[METRIC_ROUTES][5]; /* by route and status class */
	struct shm_hist db, cache_ops[2];       /* by enum cache_op */
	struct shm_worker workers[SHM_WORKERS];
	struct shm_counter limit[SHM_LIMIT_SLOTS];
};
extern struct shm *shm;
void shm_init(void);

/* docs.c: GET /openapi.json and Swagger UI's page (/api-docs/), or 404 when
 * api_docs is off. */
route_handler docs_serve;

/* metrics.c: recording into shm, and GET /metrics. */
void metrics_worker_start(void);     /* a worker takes a slot */
void metrics_worker_gone(pid_t pid); /* the master frees a dead worker's slot */
void metrics_request_start(void);
void metrics_request_end(const struct req *, uint64_t us);
enum cache_op { OP_READ, OP_COUNT }; /* cache reads; rate-limit counting */
void metrics_cache_op(enum cache_op, uint64_t us);
void metrics_run_created(void);
route_handler metrics_serve;
/* May this client read metrics (metrics_allow)? If not, answered 403. */
bool metrics_allowed(struct req *);

/* master.c: block the signals the master takes synchronously (before forking),
 * then supervise workers on listen_fd until SIGTERM. master_run owns cfg;
 * reloads fail when cfg_path is missing only if cfg_required. */
void master_block_signals(void);
int master_run(struct cfg *, const char *cfg_path, bool cfg_required, int listen_fd);

/* worker.c */
void worker_run(const struct cfg *, int listen_fd); /* never returns */

/* health.c */
route_handler health_live, health_ready, health_summary, health_detailed,
    health_cache_stats;
/* runs.c: one run to create, of POST /runs or of a batch, and its outcome
 * once decided (status not 0): 201 created or 200 replayed with the run's
 * JSON (run), or a refusal as a problem (code, detail, extra members,
 * retry_after seconds or 0). run_item_refuse, run_item_invalid (422 with
 * its errors) and run_item_run decide it (run_item_run takes run,
 * malloc'd); run_item_free releases what it holds. */
struct run_item {
	struct vvalue v[RF__MAX];   /* its values, as valid_check filled them */
	struct json_object *errors; /* its violations (owned) */
	const char *key;            /* its idempotency key, or NULL */
	char hash[65];              /* with a key: the request's SHA-256 */
	char id[37];                /* 201: the new run's id */
	bool claimed;               /* its key taken by this transaction */
	int status;
	const char *code;
	char *detail, *run;
	struct json_object *extra;
	long retry_after;
};
void run_item_refuse(struct run_item *, int status, const char *code,
                     struct json_object *extra, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void run_item_invalid(struct run_item *);
void run_item_run(struct run_item *, int status, char *run);
void run_item_free(struct run_item *);
/* The check of a run's values beside its table: the callback_url may be
 * reached, the idempotency key's two spellings (header, may be NULL, and
 * client_token) agree, and, when there are other violations, whether the
 * analysis exists, so that the 422 names them all; sets it->key. False
 * after answering 503. */
bool runs_item_check(struct req *, struct run_item *, const char *header);
/* Create the items that are still undecided (status 0, no errors), in
 * one transaction, deciding each one's outcome: replayed, refused (key
 * reused or in flight, analysis gone, QUEUE_FULL) or created. False after
 * answering 503 (then nothing was created). */
bool runs_items_create(struct req *, struct run_item *, size_t n);

/* idempotency.c, for runs_items_create. idempotency_key: the
 * Idempotency-Key header (may be NULL) or client_token (token, or NULL),
 * which must agree (else NULL and errors says why). idempotency_hash: the
 * request's SHA-256 in hex. idempotency_fast: IDEM_DECIDED when memcached
 * alone decided the item (replay or 422). In the creating transaction:
 * idempotency_claim takes the keys of n undecided items with distinct keys
 * in two statements at most: an item whose key it took is marked claimed,
 * any other is decided (replay, 409, 422). IDEM_FAILED: 503 answered,
 * rolled back. idempotency_committed tells memcached the key's run after
 * the commit. */
enum idem_rc { IDEM_OPEN, IDEM_DECIDED, IDEM_FAILED };
const char *idempotency_key(const char *header, const char *token,
                            struct json_object *errors);
void idempotency_hash(const struct vvalue *, char hex[65]);
enum idem_rc idempotency_fast(struct req *, struct run_item *);
enum idem_rc idempotency_claim(struct req *, struct run_item **, size_t n);
void idempotency_committed(struct req *, const struct run_item *, const char *run);

/* runs.c. runs_send answers with a run (run_json), replayed or not;
 * runs_not_found with 404 for the run the path names. runs_path_params:
 * the parameters of a query on that run, $1 its id, $2 the caller's
 * project, $3 the caller's tier's history in days (in days, which it
 * fills) for WITHIN_HISTORY, a condition that keeps runs within it;
 * false after answering 404 for an id that cannot be a run's. */
void runs_send(struct req *, int status, const char *headers, const char *run_json,
               bool replay);
bool runs_path_params(struct req *, char days[16], const char *params[3]);
#define WITHIN_HISTORY(col, param)                                                       \
	" AND (" param "::int = 0 OR " col " > now() - make_interval(days => " param     \
	"::int))"
route_handler runs_create, runs_check, runs_list, runs_get, runs_start, runs_cancel,
    runs_retry, runs_result, runs_events_token, runs_not_found;
/* results.c: GET .../result of a run whose result is stored apart
 * (sql/0012_results.sql). stored: what runs_result reads of such a run,
 * {"stored": the result object without its result, with result_size,
 * result_sha256 and attempt (whose pieces hold it)}. Answers 200 with the
 * result read piece by piece into the response, or 304. */
void results_send(struct req *, const char *stored);
/* batch.c: POST /api/v1/runs/batch, its body table (batch_fields, in
 * fields.c): at most BATCH_MAX runs. */
#define BATCH_MAX 100
enum { BF_RUNS, BF__MAX };
extern struct vfield batch_fields[BF__MAX];
route_handler batch_create;
/* webhooks.c. webhooks_check_callback, for runs_check: a violation for a
 * callback_url whose host is, or resolves to, an address deliveries may
 * not reach (webhook_allow_networks), or does not resolve; 503 when it
 * cannot be looked up now. GET and POST .../deliveries[/redeliver]. */
void webhooks_check_callback(struct req *, const struct vvalue *,
                             struct json_object *errors);
route_handler webhooks_deliveries, webhooks_redeliver;
/* audit.c. audit_note: what the request does, for the entry the
 * dispatcher appends (audit_append) once it has been answered, with the
 * caller's tenant (NULL when unknown), the presented key's prefix, the
 * status and its outcome, the request id and the client's address; a
 * failure to write it is logged. GET /api/v1/audit takes audit_query. */
enum { AQ_LIMIT, AQ_CURSOR, AQ_ACTION, AQ__MAX };
extern const struct vfield audit_query[AQ__MAX];
extern const char *const audit_actions[];
void audit_note(struct req *, const char *action, const char *target);
void audit_append(struct req *);
route_handler audit_list;
/* files.c: a project's files; GET /api/v1/files takes files_query. */
enum { FQ_LIMIT, FQ_CURSOR, FQ_PREFIX, FQ_SEARCH, FQ__MAX };
extern const struct vfield files_query[FQ__MAX];
route_handler files_put, files_get, files_delete, files_list;
/* schedules.c: an analysis' schedules. schedules_check, for POST and
 * PATCH: the cron expression parses and fires, the zone is known. */
route_handler schedules_create, schedules_check, schedules_list, schedules_get,
    schedules_update, schedules_delete;
/* analyses.c. analyses_visible: 1 when the caller's project has the
 * active analysis id, 0 when not, -1 after answering 503. */
int analyses_visible(struct req *, const char *id);
route_handler analyses_create, analyses_check, analyses_list, analyses_get,
    analyses_update, analyses_delete, analyses_versions;

#endif
