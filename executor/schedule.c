/*
 * Schedules, the executor's third duty. Each pass beats the executors'
 * clock (assay_schedule_beat in sql/0011_schedules.sql), which also says
 * when the next schedule is due; due schedules are taken with SKIP LOCKED
 * and fired in one transaction: every tick due since a schedule's
 * next_run_at becomes a pending run (assay_schedule_fire), and next_run_at
 * moves to the first tick after now (lib/cron.c). Ticks within the latest
 * gap the clock recorded, a time when no executor ran, are missed: a
 * schedule with catch_up gets one run for the latest of them, others none.
 * A unique index on a run's (schedule, tick) makes a second run of a tick
 * impossible, whatever other executors do. Passes come when a schedule is
 * due, when the API changed one (NOTIFY assay_schedules), and at least
 * every poll interval. Runs made here count against their tenant's runs
 * per hour in the API's rate-limit counters (memcached), as created ones
 * do. Nothing here waits on anything but the database and memcached.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cron.h"
#include "db.h"
#include "extern.h"
#include "log.h"
#include "mc.h"
#include "util.h"
#include "xalloc.h"

#define SCHED_BATCH   "64" /* schedules taken per pass */
#define SCHED_TICKS   16   /* runs one schedule makes per pass; the rest next pass */
#define SCHED_IDLE_MS 100  /* after a pass that found every due schedule taken */

struct sched {
	bool wake;
	uint64_t next_us;
	struct mc *counter; /* the API's rate-limit counters (not buffered) */
	unsigned long fired, missed, caught_up;
};

bool
sched_start(struct ex *ex)
{
	const char *servers = cfg_str(ex->cfg, EX_MEMCACHED_SERVERS);

	ex->sched = xcalloc(1, sizeof *ex->sched);
	ex->sched->wake = true;
	if (servers[0] != '\0')
		ex->sched->counter = mc_new(servers, 100);
	return true;
}

void
sched_stop(struct ex *ex)
{
	if (ex->sched == NULL)
		return;
	mc_free(ex->sched->counter);
	free(ex->sched);
	ex->sched = NULL;
}

void
sched_wake(struct ex *ex)
{
	ex->sched->wake = true;
}

/* The runs of one schedule due by now (epoch seconds) from its next_run_at
 * tick, into the array ticks; returns the tick after them (-1: none ever).
 * gap: the clock's latest gap, (from, to]. */
static time_t
sched_ticks(struct sched *s, const struct cron *c, const char *zone, bool catch_up,
            time_t tick, time_t now, const double gap[2], struct json_object *ticks)
{
	time_t last;
	int n = 0;

	while (tick >= 0 && tick <= now && n < SCHED_TICKS) {
		if ((double)tick > gap[0] && (double)tick <= gap[1]) {
			/* missed: at most one run, for the latest missed tick */
			last = cron_last(c, zone, tick,
			                 (double)now < gap[1] ? now : (time_t)gap[1]);
			if (catch_up) {
				json_object_array_add(ticks, json_object_new_int64(last));
				s->caught_up++;
				n++;
			} else {
				s->missed++;
			}
			tick = cron_next(c, zone, last);
			continue;
		}
		json_object_array_add(ticks, json_object_new_int64(tick));
		tick = cron_next(c, zone, tick);
		n++;
	}
	return tick;
}

/* The runs made count against their tenants' runs per hour, in the
 * counters assay-api's rate limit reads. */
static void
sched_count(struct sched *s, PGresult *res)
{
	char name[64], key[MC_KEY_MAX];
	uint64_t value;
	int i;

	if (s->counter == NULL)
		return;
	for (i = 0; i < PQntuples(res); i++) {
		snprintf(name, sizeof name, "t:%s:runs", PQgetvalue(res, i, 1));
		mc_limit_key(key, name, (uint64_t)time(NULL) / 3600);
		if (mc_incr(s->counter, key, MC_LIMIT_TTL(3600), &value) == MC_DOWN)
			return;
	}
}

/* Take due schedules and fire them, in one transaction; returns how many
 * were taken (-1: the database failed). */
static int
sched_fire(struct ex *ex, const double gap[2])
{
	struct sched *s = ex->sched;
	struct json_object *fires = json_object_new_array(), *f, *ticks;
	const char *batch = SCHED_BATCH, *param;
	PGresult *res = NULL, *made = NULL;
	struct cron c;
	char err[256];
	time_t now, next;
	int n = -1, i;

	if (db_begin(ex->db) != DB_OK)
		goto out;
	if (db_query(ex->db, &res,
	             "SELECT s.id, s.cron, s.timezone, extract(epoch FROM s.next_run_at),"
	             " s.catch_up, floor(extract(epoch FROM now()))"
	             " FROM analysis_schedules s"
	             " WHERE s.enabled AND s.next_run_at <= now() AND EXISTS (SELECT 1"
	             "  FROM analyses a WHERE a.id = s.analysis_id AND a.is_active)"
	             " ORDER BY s.next_run_at LIMIT $1::int FOR UPDATE SKIP LOCKED",
	             1, &batch) != DB_OK)
		goto out;
	for (i = 0; i < PQntuples(res); i++) {
		f = json_object_new_object();
		ticks = json_object_new_array();
		now = (time_t)atoll(PQgetvalue(res, i, 5));
		next = -1;
		if (cron_parse(PQgetvalue(res, i, 1), &c, err, sizeof err))
			next = sched_ticks(
			    s, &c, PQgetvalue(res, i, 2), PQgetvalue(res, i, 4)[0] == 't',
			    (time_t)atoll(PQgetvalue(res, i, 3)), now, gap, ticks);
		else /* not written by the API: it never fires */
			log_msg(LOG_ERROR, "schedule %s: %s; it is stopped",
			        PQgetvalue(res, i, 0), err);
		json_object_object_add(f, "id",
		                       json_object_new_string(PQgetvalue(res, i, 0)));
		json_object_object_add(f, "ticks", ticks);
		json_object_object_add(f, "next",
		                       next >= 0 ? json_object_new_int64(next) : NULL);
		json_object_array_add(fires, f);
	}
	param = json_object_to_json_string_ext(fires, JSON_C_TO_STRING_PLAIN);
	if (db_query(ex->db, &made,
	             "SELECT run_id, tenant_id FROM assay_schedule_fire($1::jsonb)", 1,
	             &param) != DB_OK ||
	    db_commit(ex->db) != DB_OK)
		goto out;
	n = PQntuples(res);
	s->fired += (unsigned long)PQntuples(made);
	for (i = 0; i < PQntuples(made); i++)
		log_msg(LOG_DEBUG, "run %s made by a schedule", PQgetvalue(made, i, 0));
	sched_count(s, made);
out:
	if (n < 0) {
		db_rollback(ex->db);
		log_msg(LOG_ERROR, "due schedules could not be fired; trying again");
	}
	PQclear(res);
	PQclear(made);
	json_object_put(fires);
	return n;
}

uint64_t
sched_tick(struct ex *ex, uint64_t now)
{
	struct sched *s = ex->sched;
	long poll = ex_int(ex, EX_POLL_INTERVAL_MS), wait;
	char window[24];
	const char *param = window;
	double gap[2];
	PGresult *res;
	int taken;

	if (ex->stopping || (!s->wake && now < s->next_us))
		return s->next_us;
	s->wake = false;
	s->next_us = now + (uint64_t)poll * 1000u;
	/* A beat later than this after the previous one means none of us ran. */
	snprintf(window, sizeof window, "%ld", 2 * poll + 2000);
	if (db_query(ex->db, &res,
	             "SELECT gap_from, gap_to, wait_ms FROM assay_schedule_beat($1::int)",
	             1, &param) != DB_OK)
		return s->next_us;
	if (PQntuples(res) != 1) { /* schedule_clock has lost its row */
		log_msg(LOG_ERROR, "schedule_clock has no row: schedules are not fired");
		PQclear(res);
		return s->next_us;
	}
	gap[0] = strtod(PQgetvalue(res, 0, 0), NULL);
	gap[1] = strtod(PQgetvalue(res, 0, 1), NULL);
	wait = PQgetisnull(res, 0, 2) ? poll : atol(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (wait > 0) {
		if (wait < poll)
			s->next_us = now + (uint64_t)wait * 1000u;
		return s->next_us;
	}
	if ((taken = sched_fire(ex, gap)) > 0)
		s->wake = true; /* learn the next due time at once */
	else if (taken == 0)
		s->next_us = now + SCHED_IDLE_MS * 1000u;
	return s->wake ? now : s->next_us;
}

void
sched_metrics(struct ex *ex, FILE *f)
{
	struct sched *s = ex->sched;

	fprintf(f,
	        "# HELP assay_executor_schedule_runs_total Runs made by schedules "
	        "(catch_up: for the latest tick missed while no executor ran).\n"
	        "# TYPE assay_executor_schedule_runs_total counter\n"
	        "assay_executor_schedule_runs_total %lu\n"
	        "# HELP assay_executor_schedule_missed_total Stretches of ticks missed "
	        "while no executor ran, of schedules without catch_up (no run made).\n"
	        "# TYPE assay_executor_schedule_missed_total counter\n"
	        "assay_executor_schedule_missed_total %lu\n"
	        "# HELP assay_executor_schedule_catch_ups_total Catch-up runs of "
	        "schedules with catch_up.\n"
	        "# TYPE assay_executor_schedule_catch_ups_total counter\n"
	        "assay_executor_schedule_catch_ups_total %lu\n",
	        s->fired, s->missed, s->caught_up);
}
