/*
 * assay.conf, which assay-api, assay-stream and assayctl all read: its key
 * table (the [api], [stream], [tiers] and [cache] sections), the tiers and
 * what each allows, the cache lifetimes. assayconf.c holds the table;
 * parsing, `-t`, the sample file and the docs follow from it (cfg.c).
 */
#ifndef ASSAY_ASSAYCONF_H
#define ASSAY_ASSAYCONF_H

#include "cfg.h"

/* Keys of assay.conf, indexes into api_cfg_keys. */
enum api_key {
	API_LISTEN,
	API_SOCKET_MODE,
	API_WORKERS,
	API_SHUTDOWN_TIMEOUT,
	API_DATABASE_URL,
	API_MEMCACHED_SERVERS,
	API_LOG_LEVEL,
	API_BODY_LIMIT,
	API_BATCH_BODY_LIMIT,
	API_INPUT_STRING_MAX,
	API_SCRIPT_MAX,
	API_IDEMP_TTL_MS,
	API_RATE_LIMIT_ENABLED,
	API_RATE_LIMIT_PER_SEC,
	API_TRUSTED_PROXIES,
	API_UPGRADE_URL,
	API_METRICS,
	API_METRICS_ALLOW,
	API_DOCS,
	API_CORS_ORIGINS,
	API_WEBHOOK_ALLOW,
	API_FILE_MAX,
	API_JOB_TOKEN_KEYS,
	API_JOB_RATE_LIMIT,
	API_CHECK_TIMEOUT,
	STREAM_LISTEN, /* [stream]: assay-stream */
	STREAM_SOCKET_MODE,
	STREAM_PROBE_ADDRESS,
	STREAM_PROBE_PORT,
	STREAM_MAX_STREAMS,
	STREAM_HEARTBEAT,
	STREAM_RETRY_MS,
	STREAM_BUFFER,
	STREAM_TOKEN_TTL,
	API_TIER_FIRST, /* TIER__MAX x TF__MAX keys: [tiers] <tier>_<field> */
	API_CACHE_FIRST = API_TIER_FIRST + 15, /* TTL__MAX keys: [cache] ttl_<class> */
	API__MAX = API_CACHE_FIRST + 5
};

/* Tiers and what each limits (assay-api's limit.c; assayctl prune). */
enum tier { TIER_FREE, TIER_PRO, TIER_ENTERPRISE, TIER__MAX };
enum tier_field {
	TF_REQUESTS,
	TF_RUNS,
	TF_HISTORY,
	TF_FILE_QUOTA,
	TF_MAX_QUEUED,
	TF__MAX
};
extern const char *const tier_names[];
enum tier tier_index(const char *name);
/* requests per minute, runs per hour, days of history, bytes of files,
 * runs queued (created or pending); 0 means unlimited. */
long tier_limit(const struct cfg *, enum tier, enum tier_field);

/* Cache lifetimes: [cache] ttl_<class> (assay-api's cache.c). */
enum ttl_class { TTL_SHORT, TTL_MEDIUM, TTL_LONG, TTL_ANALYSIS, TTL_USER, TTL__MAX };
extern const struct cfg_key api_cfg_keys[API__MAX];
#define API_CONF_FILE SYSCONFDIR "/assay/assay.conf"

#endif
