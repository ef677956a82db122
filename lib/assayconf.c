/*
 * The key table of /etc/assay/assay.conf, and the tiers. Adding a key here
 * is the whole job: parsing, `assay-api -t`, etc/assay/assay.conf and
 * doc/assay.conf.md follow from it (tests fail until the last two are
 * regenerated with `make config-files`). Only data and lookups: no I/O.
 */
#include "config.h"

#include <string.h>

#include "assayconf.h"
#include "cfg.h"
#include "log.h"

const struct cfg_key api_cfg_keys[API__MAX] = {
    [API_LISTEN] =
        {"api", "listen", CFG_STRING, "/run/assay/api.sock", NULL, 0, 0, NULL, 0,
         "FastCGI socket: a path (unix socket) or host:port; empty means "
         "inherit it on fd 0 from the web server (lighttpd bin-path, spawn-fcgi)."},
    [API_SOCKET_MODE] =
        {"api", "socket_mode", CFG_MODE, "0660", NULL, 0, 0, NULL, 0,
         "Permissions of a unix listen socket; the web server's user must be "
         "able to connect."},
    [API_WORKERS] = {"api", "workers", CFG_INT, "4", NULL, 1, 256, NULL, CFG_RELOADABLE,
                     "Worker processes, each serving one request at a time."},
    [API_SHUTDOWN_TIMEOUT] =
        {"api", "shutdown_timeout", CFG_INT, "30", NULL, 1, 3600, NULL, CFG_RELOADABLE,
         "Seconds a stopping or replaced worker may take to finish its "
         "request before it is killed."},
    [API_DATABASE_URL] = {"api", "database_url", CFG_STRING, "dbname=assay",
                          "DATABASE_URL", 0, 0, NULL, CFG_RELOADABLE | CFG_SECRET,
                          "PostgreSQL connection string (URL or key=value form)."},
    [API_MEMCACHED_SERVERS] = {"api", "memcached_servers", CFG_STRING, "127.0.0.1:11211",
                               "MEMCACHED_SERVERS", 0, 0, NULL, CFG_RELOADABLE,
                               "Comma-separated memcached host:port list."},
    [API_LOG_LEVEL] = {"api", "log_level", CFG_ENUM, "info", "LOG_LEVEL", 0, 0,
                       log_level_names, CFG_RELOADABLE, "Least severe level logged."},
    [API_BODY_LIMIT] = {"api", "body_limit_bytes", CFG_INT, "262144",
                        "GATEWAY_BODY_LIMIT_BYTES", 1024, 67108864, NULL, CFG_RELOADABLE,
                        "Largest request body; larger ones get 413 without being read."},
    [API_BATCH_BODY_LIMIT] = {"api", "batch_body_limit_bytes", CFG_INT, "16777216", NULL,
                              1024, 67108864, NULL, CFG_RELOADABLE,
                              "Largest body of POST /api/v1/runs/batch (up to 100 runs); "
                              "larger ones get 413 without being read. The web server's "
                              "body limit for that path must be above it."},
    [API_INPUT_STRING_MAX] = {"api", "run_input_string_max", CFG_INT, "65536",
                              "RUN_INPUT_STRING_MAX", 0, 16777216, NULL, CFG_RELOADABLE,
                              "Largest run input given as a string, in bytes."},
    [API_SCRIPT_MAX] = {"api", "script_max_bytes", CFG_INT, "131072", NULL, 1, 16777216,
                        NULL, CFG_RELOADABLE, "Largest analysis script, in bytes."},
    [API_IDEMP_TTL_MS] = {"api", "idempotency_ttl_ms", CFG_INT, "86400000",
                          "IDEMP_TTL_MS", 1000, 2592000000, NULL, CFG_RELOADABLE,
                          "How long a client_token or Idempotency-Key replays its run."},
    [API_RATE_LIMIT_ENABLED] = {"api", "rate_limit_enabled", CFG_BOOL, "true",
                                "RATE_LIMIT_ENABLED", 0, 0, NULL, CFG_RELOADABLE,
                                "Enforce the tier limits and the per-address limit."},
    [API_RATE_LIMIT_PER_SEC] =
        {"api", "rate_limit_per_sec", CFG_INT, "50", "RATE_LIMIT_PER_SEC", 1, 1000000,
         NULL, CFG_RELOADABLE,
         "Requests per second allowed from one client address without an API "
         "key (the liveness probes /live and /ready are never limited)."},
    [API_TRUSTED_PROXIES] =
        {"api", "trusted_proxies", CFG_STRING, "", NULL, 0, 0, NULL, CFG_RELOADABLE,
         "Comma-separated addresses of proxies in front of the web server; for "
         "requests from them the client address is the last X-Forwarded-For "
         "entry. Empty: the address the web server saw (REMOTE_ADDR)."},
    [API_UPGRADE_URL] = {"api", "upgrade_url", CFG_STRING, "/pricing", NULL, 0, 0, NULL,
                         CFG_RELOADABLE,
                         "Where a client over its tier's limit can upgrade (in the 429 "
                         "body)."},
    [STREAM_LISTEN] = {"stream", "listen", CFG_STRING, "/run/assay/stream.sock", NULL, 0,
                       0, NULL, 0,
                       "assay-stream's FastCGI socket (a path); the web server sends "
                       "GET /api/v1/runs/{id}/events and GET /api/v1/runs/{id}?wait=N "
                       "there."},
    [STREAM_SOCKET_MODE] = {"stream", "socket_mode", CFG_MODE, "0660", NULL, 0, 0, NULL,
                            0, "Permissions of assay-stream's socket."},
    [STREAM_PROBE_ADDRESS] = {"stream", "listen_address", CFG_STRING, "127.0.0.1", NULL,
                              0, 0, NULL, 0,
                              "Address of assay-stream's GET /health and /metrics port."},
    [STREAM_PROBE_PORT] = {"stream", "port", CFG_INT, "8003", NULL, 1, 65535, NULL, 0,
                           "Port of assay-stream's GET /health and /metrics."},
    [STREAM_MAX_STREAMS] = {"stream", "max_streams", CFG_INT, "20000", NULL, 1, 1000000,
                            NULL, 0,
                            "Streams and waits (?wait=N) held at once; more get 503 "
                            "(the open-file limit is raised to fit)."},
    [STREAM_HEARTBEAT] = {"stream", "heartbeat_seconds", CFG_INT, "15", NULL, 1, 3600,
                          NULL, 0,
                          "A comment line is sent on a stream idle this long, so that "
                          "proxies keep it open and clients notice a dead one."},
    [STREAM_RETRY_MS] = {"stream", "retry_ms", CFG_INT, "3000", NULL, 0, 600000, NULL, 0,
                         "The reconnection delay suggested to clients (retry:)."},
    [STREAM_BUFFER] = {"stream", "buffer_bytes", CFG_INT, "262144", NULL, 4096, 67108864,
                       NULL, 0,
                       "Unsent bytes a stream may hold: past this its events wait "
                       "in PostgreSQL until it has read what it holds, so a replay "
                       "of any size goes at the client's pace. A client that reads "
                       "nothing for two heartbeat intervals is disconnected (it "
                       "resumes with Last-Event-ID)."},
    [STREAM_TOKEN_TTL] = {"stream", "token_ttl_seconds", CFG_INT, "600", NULL, 10, 86400,
                          NULL, CFG_RELOADABLE,
                          "Lifetime of the single-run tokens of POST "
                          "/api/v1/runs/{id}/events/token (for EventSource)."},
    /* The [tiers] keys of one tier: name, requests per minute, runs per hour, days kept.
     */
    [API_METRICS] = {"api", "metrics", CFG_BOOL, "true", "ENABLE_METRICS", 0, 0, NULL,
                     CFG_RELOADABLE,
                     "Record request, database and cache metrics and serve GET "
                     "/metrics (Prometheus text format); off, /metrics is 404."},
    [API_METRICS_ALLOW] = {"api", "metrics_allow", CFG_STRING, "127.0.0.0/8, ::1/128",
                           NULL, 0, 0, NULL, CFG_RELOADABLE,
                           "Networks (comma-separated CIDRs or addresses) whose "
                           "clients may read /metrics and /internal/cache-stats, "
                           "as the web server reports the client's address; "
                           "others get 403."},
    [API_DOCS] = {"api", "api_docs", CFG_BOOL, "true", "ENABLE_API_DOCS", 0, 0, NULL,
                  CFG_RELOADABLE,
                  "Serve the API reference, GET /openapi.json and Swagger UI at "
                  "/api-docs/ (from the web server's document root); off, both "
                  "are 404."},
    [API_CORS_ORIGINS] = {"api", "cors_allow_origins", CFG_STRING, "", NULL, 0, 0, NULL,
                          CFG_RELOADABLE,
                          "Origins (comma-separated, e.g. https://app.example.com) "
                          "whose browser pages may call the API and follow event "
                          "streams (CORS), assay-stream included. Empty: none."},
    [API_WEBHOOK_ALLOW] = {"api", "webhook_allow_networks", CFG_NETWORKS, "",
                           "WEBHOOK_ALLOW_NETWORKS", 0, 0, NULL, CFG_RELOADABLE,
                           "Comma-separated CIDRs that callback URLs may reach "
                           "although they are loopback, private or link-local "
                           "(empty: public addresses only)."},
    [API_FILE_MAX] = {"api", "file_max_bytes", CFG_INT, "16777216", NULL, 1, 1073741824,
                      NULL, CFG_RELOADABLE,
                      "Largest project file (PUT /api/v1/files/{path}); larger ones "
                      "get 413 without being read. The web server's body limit for "
                      "/api/v1/files/ must be above it."},
    [API_JOB_TOKEN_KEYS] =
        {"api", "job_token_key_file", CFG_STRING, "/etc/assay/job-token.key", NULL, 0, 0,
         NULL, CFG_RELOADABLE,
         "The keys job tokens (what the executor presents for a running "
         "script) are verified with, one per line: the same file as "
         "executor.conf's job_token_key_file. Read at start and on reload; a "
         "missing or unreadable file is logged once and job tokens are then "
         "refused (401): the API still starts."},
    [API_JOB_RATE_LIMIT] = {"api", "job_rate_limit_per_sec", CFG_INT, "20", NULL, 1,
                            1000000, NULL, CFG_RELOADABLE,
                            "Requests per second one job token (one attempt of a "
                            "run) may make; more get 429."},
    [API_CHECK_TIMEOUT] = {"api", "check_timeout_ms", CFG_INT, "5000", NULL, 100, 60000,
                           NULL, CFG_RELOADABLE,
                           "How long POST /api/v1/analyses/check waits for an "
                           "executor to compile the script before answering 503 "
                           "CHECK_UNAVAILABLE (its API worker waits that long)."},
#define TIER_KEYS(t, name, req, runs, days, quota, queued)                               \
	[API_TIER_FIRST + (t)*TF__MAX +                                                  \
	    TF_REQUESTS] =                                                               \
	    {                                                                            \
	        "tiers",                                                                 \
	        name "_requests_per_minute",                                             \
	        CFG_INT,                                                                 \
	        req,                                                                     \
	        NULL,                                                                    \
	        0,                                                                       \
	        100000000,                                                               \
	        NULL,                                                                    \
	        CFG_RELOADABLE,                                                          \
	        "Requests per minute for a " name " tenant (0: unlimited)."},            \
	    [API_TIER_FIRST + (t)*TF__MAX + TF_RUNS] =                                   \
	        {"tiers",                                                                \
	         name "_runs_per_hour",                                                  \
	         CFG_INT,                                                                \
	         runs,                                                                   \
	         NULL,                                                                   \
	         0,                                                                      \
	         100000000,                                                              \
	         NULL,                                                                   \
	         CFG_RELOADABLE,                                                         \
	         "Runs a " name " tenant may create per hour (0: unlimited)."},          \
	    [API_TIER_FIRST + (t)*TF__MAX + TF_HISTORY] =                                \
	        {"tiers",                                                                \
	         name "_history_days",                                                   \
	         CFG_INT,                                                                \
	         days,                                                                   \
	         NULL,                                                                   \
	         0,                                                                      \
	         36500,                                                                  \
	         NULL,                                                                   \
	         CFG_RELOADABLE,                                                         \
	         "Days a " name                                                          \
	         " tenant's runs are kept (0: forever); older ones are not "             \
	         "shown and `assayctl prune` deletes them."},                            \
	    [API_TIER_FIRST + (t)*TF__MAX + TF_FILE_QUOTA] =                             \
	        {"tiers",                                                                \
	         name "_file_quota_bytes",                                               \
	         CFG_INT,                                                                \
	         quota,                                                                  \
	         NULL,                                                                   \
	         0,                                                                      \
	         1099511627776,                                                          \
	         NULL,                                                                   \
	         CFG_RELOADABLE,                                                         \
	         "Bytes of project files a " name " tenant may store (0: unlimited)."},  \
	    [API_TIER_FIRST + (t)*TF__MAX + TF_MAX_QUEUED] = {                           \
	        "tiers",                                                                 \
	        name "_max_queued",                                                      \
	        CFG_INT,                                                                 \
	        queued,                                                                  \
	        NULL,                                                                    \
	        0,                                                                       \
	        100000000,                                                               \
	        NULL,                                                                    \
	        CFG_RELOADABLE,                                                          \
	        "Runs a " name " tenant may have queued (created or pending, not "       \
	        "started; 0: unlimited); past it, creating or retrying a run is 429 "    \
	        "QUEUE_FULL."}
    TIER_KEYS(TIER_FREE, "free", "20", "10", "7", "67108864", "100"),
    TIER_KEYS(TIER_PRO, "pro", "100", "100", "90", "1073741824", "10000"),
    TIER_KEYS(TIER_ENTERPRISE, "enterprise", "500", "1000", "0", "10737418240", "100000"),
/* The [cache] lifetime of one class of cached data. */
#define CACHE_TTL(c, name, def, what)                                                    \
	[API_CACHE_FIRST + (c)] = {"cache",        "ttl_" name,                          \
	                           CFG_INT,        def,                                  \
	                           NULL,           1,                                    \
	                           2592000,        NULL,                                 \
	                           CFG_RELOADABLE, "Seconds " what " stay cached."}
    CACHE_TTL(TTL_SHORT, "short", "60", "runs still in progress"),
    CACHE_TTL(TTL_MEDIUM, "medium", "300", "project files' metadata"),
    CACHE_TTL(TTL_LONG, "long", "1800", "finished runs and results"),
    CACHE_TTL(TTL_ANALYSIS, "analysis", "3600", "analyses"),
    CACHE_TTL(TTL_USER, "user", "900", "tenants and keys"),
};

const char *const tier_names[] = {"free", "pro", "enterprise", NULL};

enum tier
tier_index(const char *name)
{
	int i;

	for (i = 0; i < TIER__MAX; i++)
		if (strcmp(tier_names[i], name) == 0)
			return (enum tier)i;
	return TIER_FREE;
}

long
tier_limit(const struct cfg *cfg, enum tier t, enum tier_field f)
{
	return cfg_int(cfg, API_TIER_FIRST + (size_t)t * TF__MAX + (size_t)f);
}
