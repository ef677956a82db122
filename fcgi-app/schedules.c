/*
 * An analysis' schedules: create, list, get, update, delete. A schedule
 * runs its analysis on a cron expression in a time zone (lib/cron.c says
 * what parses and when it fires); this file checks the expression and the
 * zone and keeps next_run_at, the schedule's next tick, from now whenever
 * the expression, the zone or enabled is given. Executors fire schedules;
 * nothing here makes a run. Scoped to the caller's project and to active
 * analyses like every query; schedules are rendered by the database
 * (assay_schedule_json).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "xalloc.h"

static void
analysis_not_found(struct req *r)
{
	http_problem(r, 404, "ANALYSIS_NOT_FOUND", NULL, "no analysis %s",
	             r->match.params[0]);
}

static void
schedule_not_found(struct req *r)
{
	http_problem(r, 404, "SCHEDULE_NOT_FOUND", NULL, "no schedule %s of analysis %s",
	             r->match.params[1], r->match.params[0]);
}

/* Both path parameters are UUIDs (the analysis' alone when there is one);
 * else answered 404. */
static bool
schedule_path_ok(struct req *r)
{
	if (!httpmsg_uuid(r->match.params[0]))
		analysis_not_found(r);
	else if (r->match.nparams > 1 && !httpmsg_uuid(r->match.params[1]))
		schedule_not_found(r);
	else
		return true;
	return false;
}

void
schedules_check(struct req *r)
{
	const struct vvalue *v = r->v;
	struct cron c;
	char err[256];

	if (v[SF_CRON].present) {
		if (!cron_parse(v[SF_CRON].str, &c, err, sizeof err))
			valid_error(r->errors, "/cron", "%s", err);
		else if (cron_next(&c, "UTC", time(NULL)) < 0)
			valid_error(r->errors, "/cron",
			            "never fires: no date matches it (such as the 30th "
			            "of February)");
	}
	if (v[SF_TIMEZONE].present && !cron_zone_ok(v[SF_TIMEZONE].str))
		valid_error(r->errors, "/timezone",
		            "'%.64s' is not a time zone of the tz database (such as "
		            "Europe/Paris, America/New_York or UTC)",
		            v[SF_TIMEZONE].str);
}

/* The next tick of expr in zone from now, as epoch seconds in buf (both
 * checked by schedules_check). */
static const char *
next_tick(const char *expr, const char *zone, char buf[24])
{
	struct cron c;
	char err[256];

	if (!cron_parse(expr, &c, err, sizeof err))
		return NULL;
	snprintf(buf, 24, "%lld", (long long)cron_next(&c, zone, time(NULL)));
	return buf;
}

/* One-row query answered as {"schedule": ...} with ok_status (a second
 * column, the new schedule's id, makes a Location), or not_found. In a
 * transaction (commit), the transaction is committed before the answer,
 * or rolled back without a row. */
static void
schedule_answer(struct req *r, int ok_status, route_handler *not_found, bool commit,
                const char *sql, int n, const char *const *params)
{
	PGresult *res = http_query_db(r, sql, n, params);
	char *members, *location;

	if (res == NULL)
		return;
	if (PQntuples(res) != 1) {
		if (commit)
			db_rollback(r->app->db);
		not_found(r);
	} else if (commit && db_commit(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
	} else {
		location =
		    PQnfields(res) > 1
		        ? xasprintf("Location: /api/v1/analyses/%s/schedules/%s\r\n",
		                    r->match.params[0], PQgetvalue(res, 0, 1))
		        : NULL;
		members = xasprintf("\"schedule\":%s", PQgetvalue(res, 0, 0));
		http_success(r, ok_status, location, members);
		free(members);
		free(location);
	}
	PQclear(res);
}

void
schedules_create(struct req *r)
{
	const struct vvalue *v = r->v;
	char next[24];
	const char *params[9] = {r->tenant->project_id,
	                         r->match.params[0],
	                         v[SF_CRON].str,
	                         v[SF_TIMEZONE].str,
	                         v[SF_NAME].str,
	                         v[SF_INPUT].present ? v[SF_INPUT].str : NULL,
	                         v[SF_ENABLED].str,
	                         v[SF_CATCH_UP].str,
	                         next_tick(v[SF_CRON].str, v[SF_TIMEZONE].str, next)};

	if (!schedule_path_ok(r))
		return;
	schedule_answer(
	    r, 201, analysis_not_found, false,
	    "INSERT INTO analysis_schedules (project_id, analysis_id, cron, timezone, "
	    "name,"
	    " input, enabled, catch_up, next_run_at)"
	    " SELECT $1, a.id, $3, $4, $5, $6::jsonb, $7::bool, $8::bool,"
	    " to_timestamp($9::bigint)"
	    " FROM analyses a WHERE a.id = $2 AND a.project_id = $1 AND a.is_active"
	    " RETURNING assay_schedule_json(analysis_schedules), id",
	    9, params);
}

void
schedules_list(struct req *r)
{
	char limit[24];
	const char *params[4] = {r->match.params[0], r->tenant->project_id,
	                         r->q[QF_CURSOR].str, list_fetch(r, limit)};
	int visible;

	if (!schedule_path_ok(r) || (visible = analyses_visible(r, params[0])) < 0)
		return;
	if (!visible) {
		analysis_not_found(r);
		return;
	}
	list_send(
	    r, "schedules",
	    http_query_db(
	        r,
	        "SELECT assay_schedule_json(s), assay_cursor(s.created_at, s.id) FROM"
	        " (SELECT * FROM analysis_schedules s"
	        " WHERE s.analysis_id = $1 AND s.project_id = $2"
	        " AND ($3::text IS NULL OR (s.created_at, s.id) <"
	        "      (assay_cursor_time($3), split_part($3, '_', 2)::uuid))"
	        " ORDER BY s.created_at DESC, s.id DESC LIMIT $4::int) s"
	        " ORDER BY s.created_at DESC, s.id DESC",
	        4, params));
}

#define SCHEDULE_OF_PATH                                                                 \
	" s.id = $2 AND s.analysis_id = $1 AND s.project_id = $3 AND EXISTS"             \
	" (SELECT 1 FROM analyses a WHERE a.id = s.analysis_id AND a.is_active)"

void
schedules_get(struct req *r)
{
	const char *params[3] = {r->match.params[0], r->match.params[1],
	                         r->tenant->project_id};

	if (schedule_path_ok(r))
		schedule_answer(r, 200, schedule_not_found, false,
		                "SELECT assay_schedule_json(s) FROM analysis_schedules s"
		                " WHERE" SCHEDULE_OF_PATH,
		                3, params);
}

void
schedules_delete(struct req *r)
{
	const char *params[3] = {r->match.params[0], r->match.params[1],
	                         r->tenant->project_id};
	PGresult *res;

	if (!schedule_path_ok(r))
		return;
	res = http_query_db(r, "DELETE FROM analysis_schedules s WHERE" SCHEDULE_OF_PATH,
	                    3, params);
	if (res != NULL)
		http_deleted(r, res, schedule_not_found);
}

/*
 * A partial change. When the expression, the zone or enabled is given, the
 * next tick is counted again from now, with the schedule's current values
 * for those not given: they are read under the row's lock, in the
 * transaction that writes.
 */
void
schedules_update(struct req *r)
{
	const struct vvalue *v = r->v;
	const char *params[10] = {r->match.params[0], r->match.params[1],
	                          r->tenant->project_id};
	PGresult *cur;
	char next[24];
	size_t i;

	if (!schedule_path_ok(r))
		return;
	if (db_begin(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		return;
	}
	cur = http_query_db(r,
	                    "SELECT s.cron, s.timezone FROM analysis_schedules s WHERE"
	                    " " SCHEDULE_OF_PATH " FOR UPDATE",
	                    3, params);
	if (cur == NULL)
		return;
	if (PQntuples(cur) == 0) {
		PQclear(cur);
		db_rollback(r->app->db);
		schedule_not_found(r);
		return;
	}
	for (i = 0; i < SF__MAX; i++)
		params[3 + i] = v[i].present ? v[i].str : NULL;
	params[9] =
	    v[SF_CRON].present || v[SF_TIMEZONE].present || v[SF_ENABLED].present
	        ? next_tick(v[SF_CRON].present ? v[SF_CRON].str : PQgetvalue(cur, 0, 0),
	                    v[SF_TIMEZONE].present ? v[SF_TIMEZONE].str
	                                           : PQgetvalue(cur, 0, 1),
	                    next)
	        : NULL;
	PQclear(cur);
	schedule_answer(
	    r, 200, schedule_not_found, true,
	    "UPDATE analysis_schedules s SET cron = coalesce($4, s.cron),"
	    " timezone = coalesce($5, s.timezone), name = coalesce($6, s.name),"
	    " input = CASE WHEN $7::text IS NULL THEN s.input ELSE $7::jsonb END,"
	    " enabled = coalesce($8::bool, s.enabled),"
	    " catch_up = coalesce($9::bool, s.catch_up),"
	    " next_run_at = CASE WHEN $10::bigint IS NULL THEN s.next_run_at"
	    "  ELSE to_timestamp($10::bigint) END,"
	    " updated_at = now()"
	    " WHERE" SCHEDULE_OF_PATH " RETURNING assay_schedule_json(s)",
	    10, params);
}
