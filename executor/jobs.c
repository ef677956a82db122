/*
 * The job table, as the executor sees it: claim (FOR UPDATE SKIP LOCKED,
 * highest priority then oldest), lease heartbeats, recovery of expired
 * leases, events, and the end of an attempt. Every write that ends an
 * attempt is conditional on still holding the lease (worker_id, running),
 * so a result from an executor that lost its lease is rejected. Status
 * changes are turned into job_events rows and NOTIFYs by the database's
 * triggers, not here.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	free(j->line);
	free(j->progress);
	free(j->result);
	free(j->error);
	free(j);
}

int
jobs_claim(struct db *db, struct mc *mc, const char *worker, int n, int lease_s,
           struct job **out)
{
	char limit[16], lease[16];
	const char *params[3] = {limit, worker, lease};
	PGresult *res;
	int i, rows;

	snprintf(limit, sizeof limit, "%d", n);
	snprintf(lease, sizeof lease, "%d", lease_s);
	if (db_query(
	        db, &res,
	        "WITH c AS (SELECT id FROM analysis_jobs"
	        "  WHERE status = 'pending' AND run_after <= now()"
	        "  ORDER BY priority DESC, run_after, created_at"
	        "  LIMIT $1::int FOR UPDATE SKIP LOCKED)"
	        " UPDATE analysis_jobs j SET status = 'running', worker_id = $2,"
	        "  attempts = j.attempts + 1, started_at = now(), error_message = NULL,"
	        "  lease_expires_at = now() + $3::int * interval '1 second'"
	        " FROM c, analyses a, analysis_versions v"
	        " WHERE j.id = c.id AND a.id = j.analysis_id"
	        "  AND v.analysis_id = j.analysis_id AND v.version = j.analysis_version"
	        " RETURNING j.id, j.attempts, j.max_attempts, coalesce(j.input::text, "
	        "'null'),"
	        "  v.script_content, a.timeout_ms, a.memory_limit_mb, a.runtime, "
	        "j.project_id",
	        3, params) != DB_OK)
		return 0;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		struct job *j = xcalloc(1, sizeof *j);

		snprintf(j->id, sizeof j->id, "%s", PQgetvalue(res, i, 0));
		snprintf(j->project, sizeof j->project, "%s", PQgetvalue(res, i, 8));
		jobs_forget(mc, j->project, j->id);
		j->attempts = atoi(PQgetvalue(res, i, 1));
		j->max_attempts = atoi(PQgetvalue(res, i, 2));
		j->input = xstrdup(PQgetvalue(res, i, 3));
		j->script = xstrdup(PQgetvalue(res, i, 4));
		j->timeout_ms = atol(PQgetvalue(res, i, 5));
		j->memory_mb = atol(PQgetvalue(res, i, 6));
		j->fd = -1;
		j->runtime = strcmp(PQgetvalue(res, i, 7), "node") == 0 ? RT_NODE : RT_JS;
		out[i] = j;
	}
	PQclear(res);
	return rows;
}

bool
jobs_heartbeat(struct db *db, const char *worker, int lease_s, struct job *const *jobs,
               size_t n)
{
	char lease[16];
	const char *params[2] = {worker, lease};
	PGresult *res;
	size_t i;
	int r;

	snprintf(lease, sizeof lease, "%d", lease_s);
	if (db_query(db, &res,
	             "UPDATE analysis_jobs SET lease_expires_at = now() + $2::int * "
	             "interval '1 second'"
	             " WHERE worker_id = $1 AND status = 'running'"
	             " RETURNING id, cancel_requested_at IS NOT NULL",
	             2, params) != DB_OK)
		return false;
	for (i = 0; i < n; i++) {
		for (r = 0;
		     r < PQntuples(res) && strcmp(PQgetvalue(res, r, 0), jobs[i]->id);
		     r++)
			;
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
	        " WHERE id IN (SELECT id FROM analysis_jobs WHERE status = 'running'"
	        "  AND lease_expires_at < now() FOR UPDATE SKIP LOCKED)"
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

bool
jobs_event(struct db *db, const struct job *j, const char *type, const char *data)
{
	const char *params[3] = {j->id, type, data};
	PGresult *res;

	if (db_query(db, &res, "SELECT assay_event($1, $2, $3::jsonb)", 3, params) !=
	    DB_OK)
		return false;
	PQclear(res);
	return true;
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

enum job_record
jobs_finish(struct db *db, struct mc *mc, const char *worker, struct job *j)
{
	char backoff[24];
	const char *params[5] = {j->id, worker, NULL, NULL, backoff};
	enum job_record rec;
	long ms;

	if (j->lost) {
		log_msg(LOG_WARN, "run %s: lease lost; its outcome is discarded", j->id);
		return JOB_LOST;
	}
	/* Exponential backoff with jitter: 1 s, 2 s, 4 s ... at most 5 min, ±50%. */
	ms = 1000L << (j->attempts > 9 ? 9 : j->attempts - 1);
	ms = ms > 300000 ? 300000 : ms;
	snprintf(backoff, sizeof backoff, "%ld", ms / 2 + random() % ms);
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
		    5, params);
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

void
jobs_release(struct db *db, struct mc *mc, const char *worker, struct job *j)
{
	const char *params[2] = {j->id, worker};

	if (!jobs_end(
	        db,
	        "UPDATE analysis_jobs SET status = 'pending', attempts = attempts - 1,"
	        " worker_id = NULL, lease_expires_at = NULL, run_after = now(),"
	        " started_at = NULL"
	        " WHERE id = $1 AND worker_id = $2 AND status = 'running'",
	        2, params))
		log_msg(LOG_WARN, "run %s: could not be requeued (lease lost)", j->id);
	else
		jobs_forget(mc, j->project, j->id);
}
