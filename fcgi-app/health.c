/*
 * Operations endpoints: /live (the process answers), /ready (it can reach
 * PostgreSQL), /health (summary) and /health/detailed (each dependency
 * with its observed latency), in the application/health+json format.
 * memcached being down is a warning, never a failure: it is only a cache.
 * These handlers must never write to storage.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "mc.h"
#include "util.h"

#define HEALTH_JSON "application/health+json"

enum check_status { CHECK_PASS, CHECK_WARN, CHECK_FAIL };
static const char *const check_names[] = {"pass", "warn", "fail"};

struct check {
	enum check_status status;
	double ms;
	const char *output;
};

static struct check
check_postgres(struct app *app)
{
	struct check c = {CHECK_PASS, 0, NULL};
	uint64_t t0 = util_now_us();
	PGresult *res;
	enum db_rc rc;

	rc = db_query(app->db, &res, "SELECT 1", 0, NULL);
	c.ms = (double)(util_now_us() - t0) / 1000.0;
	if (rc != DB_OK) {
		c.status = CHECK_FAIL;
		c.output = db_strerror(rc);
		return c;
	}
	PQclear(res);
	return c;
}

static struct check
check_memcached(struct app *app)
{
	struct check c = {CHECK_PASS, 0, NULL};
	uint64_t t0 = util_now_us();

	if (app->mc == NULL) {
		c.status = CHECK_WARN;
		c.output = "no usable server list";
	} else if (!mc_ping(app->mc, &c.output)) {
		c.status = CHECK_WARN;
	}
	c.ms = (double)(util_now_us() - t0) / 1000.0;
	return c;
}

static struct json_object *
health_body(enum check_status status)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "status", json_object_new_string(check_names[status]));
	json_object_object_add(o, "version", json_object_new_string(PACKAGE_VERSION));
	return o;
}

static int
health_http_status(enum check_status status)
{
	return status == CHECK_FAIL ? 503 : 200;
}

void
health_live(struct req *r)
{
	static const char body[] = "{\"status\":\"pass\"}";

	http_send(r, 200, HEALTH_JSON, NULL, body, sizeof body - 1);
}

void
health_ready(struct req *r)
{
	struct check pg = check_postgres(r->app);
	struct json_object *o = health_body(pg.status);

	if (pg.output != NULL)
		json_object_object_add(o, "output", json_object_new_string(pg.output));
	http_json(r, health_http_status(pg.status), HEALTH_JSON, o);
}

/* The configuration anyone may see: no secrets, no paths, no addresses. */
static struct json_object *
config_summary(const struct cfg *cfg)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "workers",
	                       json_object_new_int((int)cfg_int(cfg, API_WORKERS)));
	json_object_object_add(o, "log_level",
	                       json_object_new_string(cfg_str(cfg, API_LOG_LEVEL)));
	return o;
}

void
health_summary(struct req *r)
{
	struct check pg = check_postgres(r->app);
	struct json_object *o = health_body(pg.status);

	json_object_object_add(o, "description", json_object_new_string("Assay API"));
	json_object_object_add(o, "config", config_summary(r->app->cfg));
	http_json(r, health_http_status(pg.status), HEALTH_JSON, o);
}

static void
add_check(struct json_object *checks, const char *name, const char *type, struct check c)
{
	struct json_object *list = json_object_new_array(),
	                   *item = json_object_new_object();
	char now[40];

	util_rfc3339_now(now, sizeof now, false);
	json_object_object_add(item, "componentType", json_object_new_string(type));
	json_object_object_add(item, "observedValue", json_object_new_double(c.ms));
	json_object_object_add(item, "observedUnit", json_object_new_string("ms"));
	json_object_object_add(item, "status",
	                       json_object_new_string(check_names[c.status]));
	json_object_object_add(item, "time", json_object_new_string(now));
	if (c.output != NULL)
		json_object_object_add(item, "output", json_object_new_string(c.output));
	json_object_array_add(list, item);
	json_object_object_add(checks, name, list);
}

void
health_detailed(struct req *r)
{
	struct check pg = check_postgres(r->app), mc = check_memcached(r->app);
	enum check_status overall = pg.status > mc.status ? pg.status : mc.status;
	struct json_object *o = health_body(overall), *checks = json_object_new_object();

	add_check(checks, "postgres:responseTime", "datastore", pg);
	add_check(checks, "memcached:responseTime", "datastore", mc);
	json_object_object_add(o, "checks", checks);
	/* What a memcached outage changes, as the workers last saw it. */
	json_object_object_add(
	    o, "degraded",
	    json_object_new_boolean(__atomic_load_n(&shm->mc_down, __ATOMIC_RELAXED)));
	json_object_object_add(
	    o, "rate_limits",
	    json_object_new_string(__atomic_load_n(&shm->mc_down, __ATOMIC_RELAXED)
	                               ? "per host (memcached unreachable)"
	                               : "shared through memcached"));
	http_json(r, health_http_status(overall), HEALTH_JSON, o);
}

static void
add_server(const char *host, unsigned port, bool up, void *arg)
{
	struct json_object *o = json_object_new_object();
	char addr[300];

	snprintf(addr, sizeof addr, "%s:%u", host, port);
	json_object_object_add(o, "address", json_object_new_string(addr));
	json_object_object_add(o, "status", json_object_new_string(up ? "up" : "down"));
	json_object_array_add(arg, o);
}

static void
add_count(struct json_object *o, const char *name, const uint64_t *counter)
{
	json_object_object_add(
	    o, name,
	    json_object_new_int64((int64_t)__atomic_load_n(counter, __ATOMIC_RELAXED)));
}

/* Cache counters of this host's workers; for metrics_allow's networks. */
void
health_cache_stats(struct req *r)
{
	struct json_object *o, *servers;
	uint64_t hits, misses;

	if (!metrics_allowed(r))
		return;
	o = json_object_new_object();
	hits = __atomic_load_n(&shm->cache_hits, __ATOMIC_RELAXED) +
	       __atomic_load_n(&shm->cache_local_hits, __ATOMIC_RELAXED);
	misses = __atomic_load_n(&shm->cache_misses, __ATOMIC_RELAXED);
	add_count(o, "hits", &shm->cache_hits);
	add_count(o, "local_hits", &shm->cache_local_hits);
	add_count(o, "misses", &shm->cache_misses);
	add_count(o, "errors", &shm->cache_errors);
	json_object_object_add(
	    o, "hit_ratio",
	    json_object_new_double(hits + misses ? (double)hits / (double)(hits + misses)
	                                         : 0));
	json_object_object_add(
	    o, "fallback",
	    json_object_new_boolean(__atomic_load_n(&shm->mc_down, __ATOMIC_RELAXED)));
	servers = json_object_new_array();
	mc_servers(r->app->mc, add_server, servers);
	json_object_object_add(o, "servers", servers);
	http_json(r, 200, "application/json", o);
}
