/*
 * The job table, as the executor sees it: claim (assay_claim in
 * sql/0007_fair_claim.sql: tenants in turn, tier caps, FOR UPDATE SKIP
 * LOCKED, highest priority then oldest), lease heartbeats, recovery of
 * expired leases, events, and the ends of attempts. Events and ends are
 * written in batches, each batch one statement (a JSON array parameter),
 * so that the notifications of a batch reach listeners at one commit.
 * Every write that ends an attempt is conditional on still holding the
 * lease (worker_id, running), so a result from an executor that lost its
 * lease is rejected; an executor that dies before writing an end leaves
 * the run to be recovered when its lease expires (run again, never lost,
 * never completed twice). Status changes are turned into job_events rows
 * and NOTIFYs by the database's triggers, not here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "extern.h"
#include "log.h"
#include "mc.h"
#include "xalloc.h"

/* The run changed: the API's cached copy must go (see fcgi-app/cache.c). */
static void
jobs_forget(struct mc *mc, const char *project, const char *id)
{
	if (mc == NULL)
		return;
	if (!mc_forget_run(mc, project, id))
		log_msg(LOG_WARN,
		        "run %s changed, but memcached could not be told (%s); the API "
		        "may show its previous state for up to [cache] ttl_short",
		        id, mc_last_error(mc));
}

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->script);
	free(j->input);
	free(j->progress);
	free(j->result);
	results_free(j->store);
	free(j->error);
	free(j->token);
	free(j);
}

bool
jobs_heartbeat(struct db *db, const char *worker, int lease_s, struct job *const *jobs,
               size_t n)
{
	char lease[16], *ids = xmalloc(n * 41 + 3), *p = ids;
	const char *params[3] = {worker, lease, ids};
	PGresult *res;
	size_t i;
	int r;

	/* Only the runs this executor knows it holds: one it claimed in a
	 * statement whose answer was lost is left to expire and be recovered.
	 * Checks have no lease. */
	*p++ = '{';
	for (i = 0; i < n; i++)
		if (!jobs[i]->check)
			p += sprintf(p, "%s%s", p[-1] != '{' ? "," : "", jobs[i]->id);
	strcpy(p, "}");
	snprintf(lease, sizeof lease, "%d", lease_s);
	r = db_query(
	    db, &res,
	    "UPDATE analysis_jobs SET lease_expires_at = now() + $2::int * "
	    "interval '1 second'"
	    " WHERE worker_id = $1 AND status = 'running' AND id = ANY($3::uuid[])"
	    " RETURNING id, cancel_requested_at IS NOT NULL",
	    3, params);
	free(ids);
	if (r != DB_OK)
		return false;
	for (i = 0; i < n; i++) {
		for (r = 0;
		     r < PQntuples(res) && strcmp(PQgetvalue(res, r, 0), jobs[i]->id);
		     r++)
			;
		if (jobs[i]->check)
			continue;
		if (r == PQntuples(res))
			jobs[i]->lost = true;
		else if (strcmp(PQgetvalue(res, r, 1), "t") == 0)
			jobs[i]->canceled = true;
	}
	PQclear(res);
	return true;
}

int
jobs_recover(struct db *db, struct mc *mc)
{
	PGresult *res;
	int n, i;

	if (db_query(
	        db, &res,
	        "UPDATE analysis_jobs SET worker_id = NULL, lease_expires_at = NULL,"
	        "  run_after = now(),"
	        "  status = CASE WHEN cancel_requested_at IS NOT NULL THEN 'canceled'"
	        "    WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END,"
	        "  finished_at = CASE WHEN cancel_requested_at IS NOT NULL"
	        "    OR attempts >= max_attempts THEN now() END,"
	        "  error_message = 'lease expired: its executor stopped renewing it'"
	        " WHERE id = ANY (ARRAY (SELECT id FROM analysis_jobs"
	        "  WHERE status = 'running' AND lease_expires_at < now()"
	        "  FOR UPDATE SKIP LOCKED))"
	        " RETURNING id, project_id",
	        0, NULL) != DB_OK)
		return 0;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		jobs_forget(mc, PQgetvalue(res, i, 1), PQgetvalue(res, i, 0));
	PQclear(res);
	if (n > 0)
		log_msg(LOG_WARN, "recovered %d run(s) whose lease had expired", n);
	return n;
}

/* The events waiting, in order: [job id, type, data] each, and the same
 * as one JSON array. */
static struct {
	char *text;
	size_t len, cap;
	struct {
		char id[40], type[16];
		size_t data, datalen; /* where the data is in text */
	} * each;
	unsigned count, room;
} events;

void
jobs_event(const struct job *j, const char *type, const char *data)
{
	size_t need = strlen(j->id) + strlen(type) + strlen(data) + 16;
	int head;

	if (events.len + need + 2 > events.cap) {
		events.cap = (events.len + need + 2) * 2;
		events.text = xrealloc(events.text, events.cap);
	}
	if (events.count == events.room) {
		events.room = events.room * 2 + 64;
		events.each = xrealloc(events.each, events.room * sizeof *events.each);
	}
	snprintf(events.each[events.count].id, sizeof events.each->id, "%s", j->id);
	snprintf(events.each[events.count].type, sizeof events.each->type, "%s", type);
	head = snprintf(events.text + events.len, events.cap - events.len,
	                "%c[\"%s\",\"%s\",", events.count ? ',' : '[', j->id, type);
	events.each[events.count].data = events.len + (size_t)head;
	events.each[events.count].datalen = strlen(data);
	events.len +=
	    (size_t)snprintf(events.text + events.len + head,
	                     events.cap - events.len - (size_t)head, "%s]", data) +
	    (size_t)head;
	events.count++;
}

void
jobs_flush_events(struct db *db)
{
	const char *param = events.text, *one[3];
	unsigned i, lost = 0;
	PGresult *res;
	bool ok;

	if (events.count == 0)
		return;
	events.text[events.len++] = ']';
	events.text[events.len] = '\0';
	ok = db_query(db, &res, "SELECT assay_events($1::jsonb)", 1, &param) == DB_OK;
	if (ok)
		PQclear(res);
	/* One PostgreSQL refused (say, a number out of its range) spoils only
	 * itself: the batch is written again one event at a time. */
	for (i = 0; !ok && i < events.count; i++) {
		events.text[events.each[i].data + events.each[i].datalen] = '\0';
		one[0] = events.each[i].id;
		one[1] = events.each[i].type;
		one[2] = events.text + events.each[i].data;
		if (db_query(db, &res, "SELECT assay_event($1, $2, $3::jsonb)", 3, one) ==
		    DB_OK)
			PQclear(res);
		else
			lost++;
	}
	if (lost > 0)
		log_msg(LOG_WARN, "%u event(s) of running jobs could not be recorded",
		        lost);
	events.len = 0;
	events.count = 0;
}

/* Run an update that ends an attempt: JOB_RECORDED, JOB_LOST when the
 * lease was lost, JOB_REFUSED when PostgreSQL rejected the statement,
 * JOB_UNRECORDED when it could not be reached. */
static enum job_record
jobs_end(struct db *db, const char *sql, int n, const char *const *params)
{
	PGresult *res;
	enum job_record rec;

	switch (db_query(db, &res, sql, n, params)) {
	case DB_OK:
		break;
	case DB_ERROR:
		return JOB_REFUSED;
	default:
		return JOB_UNRECORDED;
	}
	rec = strcmp(PQcmdTuples(res), "1") == 0 ? JOB_RECORDED : JOB_LOST;
	PQclear(res);
	return rec;
}

/* The delay before attempt j->attempts + 1: exponential with jitter,
 * 1 s, 2 s, 4 s ... at most 5 min, ±50%. */
static long
jobs_backoff_ms(const struct job *j)
{
	long ms = 1000L << (j->attempts > 9 ? 9 : j->attempts - 1);

	ms = ms > 300000 ? 300000 : ms;
	return ms / 2 + random() % ms;
}

/* One end, alone: what a batch PostgreSQL refused falls back to. */
static enum job_record
jobs_finish_one(struct db *db, struct mc *mc, const char *worker, struct job *j)
{
	char backoff[24], stored[24];
	const char *params[7] = {j->id,
	                         worker,
	                         NULL,
	                         NULL,
	                         backoff,
	                         j->stored > 0 ? stored : NULL,
	                         j->stored > 0 ? j->sha256 : NULL};
	enum job_record rec;

	snprintf(backoff, sizeof backoff, "%ld", jobs_backoff_ms(j));
	snprintf(stored, sizeof stored, "%lld", j->stored);
	do {
		params[2] = j->canceled ? "canceled" : j->error;
		params[3] = j->result;
		/*
		 * One statement decides: a cancel request accepted by the API wins
		 * over any outcome; then success; then retry while attempts remain.
		 */
		rec = jobs_end(
		    db,
		    "WITH o AS (SELECT id, CASE"
		    "  WHEN cancel_requested_at IS NOT NULL OR $3 = 'canceled' THEN "
		    "'canceled'"
		    "  WHEN $3::text IS NULL THEN 'completed'"
		    "  WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END AS "
		    "next"
		    "  FROM analysis_jobs WHERE id = $1 AND worker_id = $2 AND status = "
		    "'running'"
		    "  FOR UPDATE)"
		    " UPDATE analysis_jobs j SET status = o.next, lease_expires_at = "
		    "NULL,"
		    "  worker_id = CASE WHEN o.next = 'pending' THEN NULL ELSE "
		    "j.worker_id "
		    "END,"
		    "  result = CASE WHEN o.next = 'completed' THEN $4::jsonb END,"
		    "  result_size = CASE WHEN o.next = 'completed' THEN $6::bigint END,"
		    "  result_sha256 = CASE WHEN o.next = 'completed' THEN $7 END,"
		    "  error_message = CASE WHEN o.next = 'canceled' THEN 'canceled' "
		    "ELSE $3 "
		    "END,"
		    "  run_after = CASE WHEN o.next = 'pending'"
		    "   THEN now() + $5::bigint * interval '1 millisecond' ELSE "
		    "j.run_after "
		    "END,"
		    "  finished_at = CASE WHEN o.next = 'pending' THEN NULL ELSE now() "
		    "END"
		    " FROM o WHERE j.id = o.id",
		    7, params);
		/* What PostgreSQL refuses to store fails the attempt instead: once
		 * more, without the result or the error it could not take. */
		if (rec != JOB_REFUSED || (j->result == NULL && j->error == NULL) ||
		    (j->error != NULL && strncmp(j->error, "executor fault", 14) == 0))
			break;
		free(j->result);
		j->result = NULL;
		free(j->error);
		j->error = xstrdup("executor fault: PostgreSQL refused to store the "
		                   "outcome (see the executor's log)");
	} while (true);
	if (rec == JOB_LOST)
		log_msg(LOG_WARN,
		        "run %s: lease lost before the outcome was written; discarded",
		        j->id);
	else if (rec == JOB_RECORDED)
		jobs_forget(mc, j->project, j->id);
	return rec;
}

/* The outcomes of jobs[0..n) as assay_settle takes them: a JSON array of
 * {id, error, result: [value], backoff}, or for a result stored apart
 * {..., stored: its size, sha256}; NULL when a result is no JSON json-c
 * reads (then PostgreSQL decides, one job at a time). */
static struct json_object *
jobs_outcomes(struct job **jobs, size_t n)
{
	struct json_object *all = json_object_new_array(), *o;
	size_t i;

	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		json_object_array_add(all, o);
		json_object_object_add(o, "id", json_object_new_string(jobs[i]->id));
		json_object_object_add(
		    o, "error",
		    jobs[i]->canceled ? json_object_new_string("canceled")
		    : jobs[i]->error  ? json_object_new_string(jobs[i]->error)
		                      : NULL);
		json_object_object_add(o, "backoff",
		                       json_object_new_int64(jobs_backoff_ms(jobs[i])));
		if (jobs[i]->stored > 0) {
			json_object_object_add(o, "stored",
			                       json_object_new_int64(jobs[i]->stored));
			json_object_object_add(o, "sha256",
			                       json_object_new_string(jobs[i]->sha256));
		}
		if (jobs[i]->result != NULL) {
			struct json_object *wrap = json_object_new_array();
			enum json_tokener_error err;

			json_object_object_add(o, "result", wrap);
			json_object_array_add(
			    wrap, json_tokener_parse_verbose(jobs[i]->result, &err));
			if (err != json_tokener_success) {
				json_object_put(all);
				return NULL;
			}
		}
	}
	return all;
}

/* A claimed run from row i of an assay_settle result. */
static struct job *
jobs_claimed(struct mc *mc, PGresult *res, int i)
{
	struct job *j = xcalloc(1, sizeof *j);

	snprintf(j->id, sizeof j->id, "%s", PQgetvalue(res, i, 1));
	snprintf(j->project, sizeof j->project, "%s", PQgetvalue(res, i, 9));
	jobs_forget(mc, j->project, j->id);
	j->tenant = atol(PQgetvalue(res, i, 10));
	j->attempts = atoi(PQgetvalue(res, i, 2));
	j->max_attempts = atoi(PQgetvalue(res, i, 3));
	j->input = xstrdup(PQgetvalue(res, i, 4));
	j->script = xstrdup(PQgetvalue(res, i, 5));
	j->spec.timeout_ms = atol(PQgetvalue(res, i, 6));
	j->spec.memory_mb = atol(PQgetvalue(res, i, 7));
	j->spec.runtime = strcmp(PQgetvalue(res, i, 8), "node") == 0 ? RT_NODE : RT_JS;
	return j;
}

int
jobs_settle(struct db *db, struct mc *mc, const char *worker, struct job **jobs, size_t n,
            enum job_record *rec, int want, int lease_s, const long *caps,
            struct job **out)
{
	struct job *ending[MAX_JOBS];
	struct json_object *outcomes;
	char limit[16], lease[16], tiers[64];
	const char *params[5] = {worker, NULL, limit, lease, tiers};
	PGresult *res = NULL;
	size_t i, ne = 0;
	enum db_rc st;
	int r, got = 0;

	for (i = 0; i < n; i++) {
		rec[i] = JOB_LOST;
		if (jobs[i]->lost)
			log_msg(LOG_WARN, "run %s: lease lost; its outcome is discarded",
			        jobs[i]->id);
		else
			ending[ne++] = jobs[i];
	}
	outcomes = jobs_outcomes(ending, ne);
	snprintf(limit, sizeof limit, "%d", want);
	snprintf(lease, sizeof lease, "%d", lease_s);
	snprintf(tiers, sizeof tiers, "{%ld,%ld,%ld}", caps[0], caps[1], caps[2]);
	params[1] = outcomes != NULL
	                ? json_object_to_json_string_ext(outcomes, JSON_C_TO_STRING_PLAIN)
	                : "[]";
	st = db_query(db, &res,
	              "SELECT claimed, id, attempts, max_attempts, input, script,"
	              " timeout_ms, memory_mb, runtime, project_id, tenant_id"
	              " FROM assay_settle($1, $2::jsonb, $3::int, $4::int, $5::int[])",
	              5, params);
	if (st == DB_OK && outcomes != NULL) {
		for (i = 0; i < n; i++) {
			if (jobs[i]->lost)
				continue;
			for (r = 0; r < PQntuples(res) &&
			            (strcmp(PQgetvalue(res, r, 0), "f") != 0 ||
			             strcmp(PQgetvalue(res, r, 1), jobs[i]->id) != 0);
			     r++)
				;
			rec[i] = r < PQntuples(res) ? JOB_RECORDED : JOB_LOST;
			if (rec[i] == JOB_RECORDED)
				jobs_forget(mc, jobs[i]->project, jobs[i]->id);
			else
				log_msg(
				    LOG_WARN,
				    "run %s: lease lost before the outcome was written; "
				    "discarded",
				    jobs[i]->id);
		}
	} else {
		/* Refused (a result PostgreSQL cannot store fails its run, alone),
		 * or not reached: the ends one at a time. */
		for (i = 0; i < n; i++)
			if (!jobs[i]->lost)
				rec[i] = st == DB_DOWN
				             ? JOB_UNRECORDED
				             : jobs_finish_one(db, mc, worker, jobs[i]);
	}
	json_object_put(outcomes);
	for (r = 0; st == DB_OK && r < PQntuples(res); r++)
		if (strcmp(PQgetvalue(res, r, 0), "t") == 0)
			out[got++] = jobs_claimed(mc, res, r);
	PQclear(res);
	if (st == DB_ERROR && n > 0) /* the claim went with the refused statement */
		got =
		    jobs_settle(db, mc, worker, NULL, 0, NULL, want, lease_s, caps, out);
	return got;
}

void
jobs_release(struct db *db, struct mc *mc, const char *worker, struct job *j)
{
	const char *params[2] = {j->id, worker};

	if (jobs_end(
	        db,
	        "UPDATE analysis_jobs SET status = 'pending', attempts = attempts - 1,"
	        " worker_id = NULL, lease_expires_at = NULL, run_after = now(),"
	        " started_at = NULL"
	        " WHERE id = $1 AND worker_id = $2 AND status = 'running'",
	        2, params) != JOB_RECORDED)
		log_msg(LOG_WARN, "run %s: could not be requeued (lease lost)", j->id);
	else
		jobs_forget(mc, j->project, j->id);
}
