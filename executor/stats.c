/*
 * The executor's own counters for GET /metrics: attempts by outcome, why
 * attempts failed, how long they took; and the queue as PostgreSQL sees
 * it at scrape time. Counting is a few increments; nothing here blocks
 * but the one query of a scrape.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "db.h"
#include "extern.h"
#include "util.h"

/* Failed attempts, by the start of their error_message. */
static const struct {
	const char *prefix, *reason;
} failure_reasons[REASON__MAX] = {
    {"timeout", "timeout"},
    {"memory limit", "memory"},
    {"output too large", "output"},
    {"event limit", "events"},
    {"killed by signal 31", "sandbox"},
    {"killed by signal", "signal"},
    {"script error", "script_error"},
    {"", "other"},
};

static const double duration_bounds[DURATION_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

/* GET /metrics: this executor's counters, and the queue as the database sees it. */
void
stats_write(struct ex *ex, FILE *f)
{
	static const char *const outcomes[] = {"claimed", "completed", "failed",
	                                       "retried", "canceled"};
	unsigned long counts[] = {ex->claimed, ex->completed, ex->failed, ex->retried,
	                          ex->canceled},
	              cum = 0;
	PGresult *res;
	size_t i;
	int r;

	fprintf(f,
	        "# HELP assay_executor_jobs_total Attempts by outcome (retried: failed, "
	        "will run again).\n# TYPE assay_executor_jobs_total counter\n");
	for (i = 0; i < 5; i++)
		fprintf(f, "assay_executor_jobs_total{outcome=\"%s\"} %lu\n", outcomes[i],
		        counts[i]);
	fprintf(f,
	        "# HELP assay_executor_job_duration_seconds Time from claim to outcome.\n"
	        "# TYPE assay_executor_job_duration_seconds histogram\n");
	for (i = 0; i < DURATION_BUCKETS; i++) {
		cum += ex->duration[i];
		fprintf(f, "assay_executor_job_duration_seconds_bucket{le=\"%g\"} %lu\n",
		        duration_bounds[i], cum);
	}
	cum += ex->duration[DURATION_BUCKETS];
	fprintf(f,
	        "assay_executor_job_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
	        "assay_executor_job_duration_seconds_sum %.6f\n"
	        "assay_executor_job_duration_seconds_count %lu\n",
	        cum, ex->duration_sum, cum);
	fprintf(f, "# HELP assay_executor_failures_total Failed attempts by reason.\n"
	           "# TYPE assay_executor_failures_total counter\n");
	for (i = 0; i < REASON__MAX; i++)
		fprintf(f, "assay_executor_failures_total{reason=\"%s\"} %lu\n",
		        failure_reasons[i].reason, ex->reasons[i]);
	fprintf(f,
	        "# HELP assay_executor_leases_recovered_total Runs requeued after their "
	        "lease expired.\n# TYPE assay_executor_leases_recovered_total counter\n"
	        "assay_executor_leases_recovered_total %lu\n"
	        "# HELP assay_executor_running_jobs Jobs this executor holds now "
	        "(running, or claimed and waiting for a worker).\n"
	        "# TYPE assay_executor_running_jobs gauge\n"
	        "assay_executor_running_jobs %zu\n"
	        "# HELP assay_executor_workers Sandboxed workers alive now.\n"
	        "# TYPE assay_executor_workers gauge\n"
	        "assay_executor_workers %zu\n"
	        "# HELP assay_executor_workers_started_total Sandboxed workers started.\n"
	        "# TYPE assay_executor_workers_started_total counter\n"
	        "assay_executor_workers_started_total %lu\n"
	        "# HELP assay_executor_outcome_batches_total Statements that wrote "
	        "outcomes (each one batch).\n"
	        "# TYPE assay_executor_outcome_batches_total counter\n"
	        "assay_executor_outcome_batches_total %lu\n",
	        ex->recovered, ex->njobs, ex->nworkers, ex->workers_started, ex->flushes);
	wh_metrics(ex, f);
	sched_metrics(ex, f);
	calls_metrics(ex, f);
	checks_metrics(ex, f);
	if (db_query(ex->db, &res,
	             "SELECT s, (SELECT count(*) FROM analysis_jobs WHERE status = s)"
	             " FROM unnest(ARRAY['created', 'pending', 'running']) AS s",
	             0, NULL) != DB_OK)
		return;
	fprintf(f, "# HELP assay_executor_queue_depth Runs not yet finished, by status "
	           "(all executors).\n# TYPE assay_executor_queue_depth gauge\n");
	for (r = 0; r < PQntuples(res); r++)
		fprintf(f, "assay_executor_queue_depth{status=\"%s\"} %s\n",
		        PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
	PQclear(res);
}

/* Count a finished attempt for /metrics. */
void
stats_count(struct ex *ex, const struct job *j)
{
	double secs = (double)(util_now_us() - j->started_us) / 1e6;
	size_t b, r;

	ex->processed++;
	if (j->canceled)
		ex->canceled++;
	else if (j->error == NULL)
		ex->completed++;
	else if (j->attempts < j->max_attempts)
		ex->retried++;
	else
		ex->failed++;
	if (j->error != NULL && !j->canceled) {
		for (r = 0; r + 1 < REASON__MAX &&
		            strncmp(j->error, failure_reasons[r].prefix,
		                    strlen(failure_reasons[r].prefix)) != 0;
		     r++)
			;
		ex->reasons[r]++;
	}
	for (b = 0; b < DURATION_BUCKETS && secs > duration_bounds[b]; b++)
		;
	ex->duration[b]++;
	ex->duration_sum += secs;
}
