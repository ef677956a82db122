/*
 * The key table of /etc/assay/assay.conf. Adding a key here is the whole
 * job: parsing, `assay-api -t`, etc/assay/assay.conf and
 * doc/assay.conf.md follow from it (tests fail until the last two are
 * regenerated with `make config-files`).
 */
#include "config.h"

#include "cfg.h"
#include "extern.h"
#include "log.h"

const struct cfg_key api_cfg_keys[API__MAX] = {
    [API_LISTEN] =
        {"api", "listen", CFG_STRING, "", NULL, 0, 0, NULL, 0,
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
    [API_INPUT_STRING_MAX] = {"api", "run_input_string_max", CFG_INT, "65536",
                              "RUN_INPUT_STRING_MAX", 0, 16777216, NULL, CFG_RELOADABLE,
                              "Largest run input given as a string, in bytes."},
    [API_SCRIPT_MAX] = {"api", "script_max_bytes", CFG_INT, "131072", NULL, 1, 16777216,
                        NULL, CFG_RELOADABLE, "Largest analysis script, in bytes."},
    [API_IDEMP_TTL_MS] = {"api", "idempotency_ttl_ms", CFG_INT, "86400000",
                          "IDEMP_TTL_MS", 1000, 2592000000, NULL, CFG_RELOADABLE,
                          "How long a client_token or Idempotency-Key replays its run."},
};
