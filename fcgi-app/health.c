/*
 * Operations endpoints: /live (the process answers), /ready (it can reach
 * PostgreSQL), /health (summary) and /health/detailed (each dependency
 * with its observed latency), in the application/health+json format.
 * memcached being down is a warning, never a failure: it is only a cache.
 * These handlers must never write to storage.
 */
#include "config.h"

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

/* The configuration a caller may see: no secrets, no paths. */
static struct json_object *
config_summary(const struct cfg *cfg)
{
	struct json_object *o = json_object_new_object();
	char *db = cfg_text(cfg, API_DATABASE_URL);

	json_object_object_add(o, "workers",
	                       json_object_new_int((int)cfg_int(cfg, API_WORKERS)));
	json_object_object_add(o, "log_level",
	                       json_object_new_string(cfg_str(cfg, API_LOG_LEVEL)));
	json_object_object_add(o, "database", json_object_new_string(db));
	json_object_object_add(
	    o, "memcached_servers",
	    json_object_new_string(cfg_str(cfg, API_MEMCACHED_SERVERS)));
	free(db);
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
	http_json(r, health_http_status(overall), HEALTH_JSON, o);
}
