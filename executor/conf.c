/*
 * The key table of /etc/assay/executor.conf, through the same mechanism as
 * assay.conf: parsing, `assay-executor -t`, etc/assay/executor.conf and
 * doc/executor.conf.md all follow from it.
 */
#include "config.h"

#include "extern.h"
#include "log.h"

const struct cfg_key ex_cfg_keys[EX__MAX] = {
    [EX_DATABASE_URL] = {"executor", "database_url", CFG_STRING, "dbname=assay",
                         "DATABASE_URL", 0, 0, NULL, CFG_SECRET,
                         "PostgreSQL connection string."},
    [EX_LISTEN_ADDRESS] = {"executor", "listen_address", CFG_STRING, "127.0.0.1", NULL, 0,
                           0, NULL, 0,
                           "Address of the /health and /metrics HTTP endpoint."},
    [EX_PORT] = {"executor", "port", CFG_INT, "8002", "ANALYSIS_EXECUTOR_PORT", 1, 65535,
                 NULL, 0, "Port of the /health and /metrics HTTP endpoint."},
    [EX_POLL_INTERVAL_MS] =
        {"executor", "poll_interval_ms", CFG_INT, "1000", "POLL_INTERVAL_MS", 10, 600000,
         NULL, CFG_RELOADABLE,
         "Fallback polling when no NOTIFY arrives; also how often expired "
         "leases are looked for."},
    [EX_MAX_CONCURRENT] = {"executor", "max_concurrent_jobs", CFG_INT, "5",
                           "MAX_CONCURRENT_JOBS", 1, 1024, NULL, CFG_RELOADABLE,
                           "Jobs run at the same time (each in a worker). The "
                           "executor claims up to twice as many, so that a worker "
                           "that is done is given its next job at once."},
    [EX_LEASE_SECONDS] =
        {"executor", "lease_seconds", CFG_INT, "30", NULL, 3, 3600, NULL, CFG_RELOADABLE,
         "A running job's lease; renewed every third of it. A job whose lease "
         "expires is given to another executor."},
    [EX_SHUTDOWN_GRACE] =
        {"executor", "shutdown_grace_seconds", CFG_INT, "30", NULL, 0, 3600, NULL,
         CFG_RELOADABLE,
         "On SIGTERM, how long running jobs may finish before they are killed "
         "and requeued."},
    [EX_CANCEL_GRACE_MS] =
        {"executor", "cancel_grace_ms", CFG_INT, "2000", NULL, 0, 60000, NULL,
         CFG_RELOADABLE,
         "After SIGTERM to a canceled job, wait this long before SIGKILL."},
    [EX_OUTPUT_MAX] = {"executor", "output_max_bytes", CFG_INT, "4194304", NULL, 1024,
                       1073741824, NULL, CFG_RELOADABLE,
                       "Most a job may write over its bridge besides its result "
                       "(logs, events, calls)."},
    [EX_RESULT_INLINE_MAX] =
        {"executor", "result_inline_max", CFG_INT, "65536", NULL, 16, 16777216, NULL,
         CFG_RELOADABLE,
         "Largest result (its JSON text) kept in the run's row. A larger one is "
         "written to PostgreSQL in pieces as it arrives, never held whole, up to "
         "its tier's result_max_bytes, and read back by "
         "GET /api/v1/runs/{id}/result."},
    [EX_LOG_LEVEL] = {"executor", "log_level", CFG_ENUM, "info", "LOG_LEVEL", 0, 0,
                      log_level_names, CFG_RELOADABLE, "Least severe level logged."},
    [EX_MEMCACHED_SERVERS] =
        {"executor", "memcached_servers", CFG_STRING,
         "127.0.0.1:11211", "MEMCACHED_SERVERS", 0, 0, NULL, 0,
         "The API's memcached servers (as in assay.conf): each change of a run's "
         "state makes the API's cache forget the run. Empty: no cache to tell."},
    [EX_NODE_PATH] = {"executor", "node_path", CFG_STRING, "", NULL, 0, 0, NULL, 0,
                      "The node binary (version 20 or later) for analyses with "
                      "runtime \"node\". Empty: such runs fail, saying so."},
    [EX_SANDBOX_USER] =
        {"executor", "sandbox_user", CFG_STRING, "assay-sandbox", NULL, 0, 0, NULL, 0,
         "The dedicated unprivileged user that sandboxed children run as (not "
         "root, not the executor's or the API's user). The executor needs root "
         "or CAP_SETUID and CAP_SETGID to switch to it, and the host must let "
         "that user create user namespaces; otherwise runtime \"node\" is "
         "refused and \"js\" runs on its seccomp allowlist alone."},
    [EX_EVENT_MAX] = {"executor", "event_max_count", CFG_INT, "10000", NULL, 10, 10000000,
                      NULL, CFG_RELOADABLE,
                      "Most events (ctx.log, ctx.progress, ctx.emit) one attempt may "
                      "record; past it the run fails as \"event limit\" (its bytes "
                      "are bounded by output_max_bytes)."},
    [EX_PROGRESS_INTERVAL_MS] =
        {"executor", "progress_interval_ms", CFG_INT, "250", NULL, 0, 60000, NULL,
         CFG_RELOADABLE,
         "ctx.progress calls closer together than this are coalesced: the latest "
         "is recorded when the interval has passed, before any other event, and "
         "before the outcome. 0 records each one."},
    [EX_WORKER_MAX_JOBS] =
        {"executor", "worker_max_jobs", CFG_INT, "1000", NULL, 1, 1000000, NULL,
         CFG_RELOADABLE,
         "Jobs a warm worker runs before it is replaced. A worker serves one "
         "tenant, one runtime and one set of limits, and runs each job in a fresh "
         "engine; it is kept only after a job completes (any failure, timeout, "
         "cancel or limit kills it). 1 is the strict mode: a new contained "
         "process for every job, at the cost of creating one each time."},
    [EX_WORKER_IDLE_SECONDS] = {"executor", "worker_idle_seconds", CFG_INT, "60", NULL, 1,
                                86400, NULL, CFG_RELOADABLE,
                                "A warm worker given no job for this long is stopped."},
    [EX_WH_CONCURRENT] = {"webhooks", "max_concurrent", CFG_INT, "16", NULL, 1, 1024,
                          NULL, CFG_RELOADABLE,
                          "Webhook deliveries this executor sends at the same time."},
    [EX_WH_TIMEOUT_MS] = {"webhooks", "timeout_ms", CFG_INT, "10000", NULL, 100, 120000,
                          NULL, CFG_RELOADABLE,
                          "How long a receiver has to answer one delivery attempt."},
    [EX_WH_SCHEDULE] =
        {"webhooks", "retry_schedule", CFG_STRING, "5s 30s 2m 10m 1h 3h 6h 12h", NULL, 0,
         0, NULL, CFG_RELOADABLE,
         "Delays between a delivery's failed attempts (s, m or h each); after the "
         "last one fails the delivery is failed. The default tries 9 times over "
         "about 22 hours."},
    [EX_WH_ALLOW] = {"webhooks", "allow_networks", CFG_NETWORKS, "",
                     "WEBHOOK_ALLOW_NETWORKS", 0, 0, NULL, CFG_RELOADABLE,
                     "Networks (comma-separated CIDRs) deliveries may connect to "
                     "although they are loopback, private, link-local or otherwise "
                     "not public; checked on the address actually connected to. "
                     "Give it the value of assay.conf's webhook_allow_networks (the "
                     "environment variable sets both)."},
    [EX_OB_FAILURES] = {"outbound", "failure_threshold", CFG_INT, "5", NULL, 1, 1000,
                        NULL, CFG_RELOADABLE,
                        "Consecutive failed calls to one endpoint (scheme, host, "
                        "port) that open its circuit breaker: calls to it are "
                        "then refused without a request."},
    [EX_OB_RECOVERY_MS] = {"outbound", "recovery_ms", CFG_INT, "60000", NULL, 100,
                           3600000, NULL, CFG_RELOADABLE,
                           "How long an open breaker refuses calls before it lets "
                           "one through to try the endpoint (half-open)."},
    [EX_OB_SUCCESSES] = {"outbound", "success_threshold", CFG_INT, "3", NULL, 1, 1000,
                         NULL, CFG_RELOADABLE,
                         "Successful calls in a row that close a half-open "
                         "breaker."},
    [EX_API_URL] = {"executor", "api_url", CFG_STRING, "", "BACKEND_URL", 0, 0, NULL,
                    CFG_RELOADABLE,
                    "The Assay API as this executor reaches it (such as "
                    "http://127.0.0.1), for scripts' ctx.files and ctx.fetch, "
                    "which the executor performs with the job's token. Empty: "
                    "those calls fail, saying so."},
    [EX_JOB_TOKEN_KEY_FILE] =
        {"executor", "job_token_key_file", CFG_STRING, "/etc/assay/job-token.key", NULL,
         0, 0, NULL, 0,
         "The keys job tokens are signed with, one per line (32 characters or "
         "more): the first signs, all verify. assay.conf's job_token_key_file "
         "must name the same keys."},
    [EX_JOB_CALLS_MAX] = {"executor", "job_api_calls_max", CFG_INT, "1000", NULL, 0,
                          1000000, NULL, CFG_RELOADABLE,
                          "Most calls to the API (ctx.files, ctx.fetch) one attempt "
                          "of a run may make."},
#define TIER_RUNNING(t, name, def)                                                       \
	[EX_TIER_RUNNING + (t)] = {"tiers",                                              \
	                           name "_max_running",                                  \
	                           CFG_INT,                                              \
	                           def,                                                  \
	                           NULL,                                                 \
	                           1,                                                    \
	                           100000,                                               \
	                           NULL,                                                 \
	                           CFG_RELOADABLE,                                       \
	                           "Jobs of one " name                                   \
	                           " tenant running at once, across "                    \
	                           "all executors (give every "                          \
	                           "executor the same value)."}
    TIER_RUNNING(0, "free", "2"),
    TIER_RUNNING(1, "pro", "10"),
    TIER_RUNNING(2, "enterprise", "50"),
#define TIER_RESULT(t, name, def)                                                        \
	[EX_TIER_RESULT + (t)] = {"tiers",                                               \
	                          name "_result_max_bytes",                              \
	                          CFG_INT,                                               \
	                          def,                                                   \
	                          NULL,                                                  \
	                          16,                                                    \
	                          1073741824,                                            \
	                          NULL,                                                  \
	                          CFG_RELOADABLE,                                        \
	                          "Largest result (its JSON text) of a run of a " name   \
	                          " tenant; past it the run fails as \"result too "      \
	                          "large\" and its worker is replaced."}
    TIER_RESULT(0, "free", "1048576"),
    TIER_RESULT(1, "pro", "16777216"),
    TIER_RESULT(2, "enterprise", "67108864"),
};
