/*
 * Metrics of assay-api: every worker records into the shared memory of
 * its host (shm.c), so GET /metrics answers for all workers whichever one
 * serves it. Recording is a few relaxed atomic additions per request;
 * nothing is allocated and no label holds an id, key or path.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "log.h"
#include "util.h"
#include "mc.h"

/* Histogram bucket bounds in microseconds, for HTTP, database and cache. */
static const uint64_t bounds_us[METRIC_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000,
};

static struct shm_worker *self;

static void
add(uint64_t *v, uint64_t n)
{
	__atomic_fetch_add(v, n, __ATOMIC_RELAXED);
}

static uint64_t
get(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
observe(struct shm_hist *h, uint64_t us)
{
	size_t i;

	for (i = 0; i < METRIC_BUCKETS && us > bounds_us[i]; i++)
		;
	if (i < METRIC_BUCKETS)
		add(&h->bucket[i], 1);
	add(&h->sum_us, us);
	add(&h->count, 1);
}

static void
metrics_db(uint64_t us, enum db_rc rc)
{
	observe(&shm->db, us);
	if (rc != DB_OK)
		add(&shm->db_errors, 1);
}

void
metrics_worker_start(void)
{
	int32_t none = 0, pid = (int32_t)getpid();
	size_t i;

	db_observe(metrics_db);
	for (i = 0; i < SHM_WORKERS && self == NULL; i++)
		if (__atomic_compare_exchange_n(&shm->workers[i].pid, &none, pid, false,
		                                __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			self = &shm->workers[i];
		else
			none = 0;
}

void
metrics_worker_gone(pid_t pid)
{
	size_t i;

	for (i = 0; i < SHM_WORKERS; i++)
		if (__atomic_load_n(&shm->workers[i].pid, __ATOMIC_ACQUIRE) == pid) {
			shm->workers[i].busy = 0;
			shm->workers[i].db_open = 0;
			__atomic_store_n(&shm->workers[i].pid, 0, __ATOMIC_RELEASE);
		}
}

void
metrics_request_start(void)
{
	if (self != NULL)
		__atomic_store_n(&self->busy, 1, __ATOMIC_RELAXED);
}

void
metrics_request_end(const struct req *r, uint64_t us)
{
	size_t route =
	    r->match.route ? (size_t)(r->match.route - api_routes) : api_nroutes;
	int class = r->status / 100 - 1;

	if (route < METRIC_ROUTES && class >= 0 && class < 5)
		observe(&shm->http[route][class], us);
	if (self != NULL) {
		__atomic_store_n(&self->busy, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&self->db_open, (uint32_t)db_connected(r->app->db),
		                 __ATOMIC_RELAXED);
	}
}

void
metrics_cache_op(enum cache_op op, uint64_t us)
{
	observe(&shm->cache_ops[op], us);
}

/* One histogram's series; labels is "" or "name=\"value\",...". */
static void
put_hist(FILE *f, const char *name, const char *labels, const struct shm_hist *h)
{
	const char *sep = labels[0] ? "," : "";
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < METRIC_BUCKETS; i++) {
		cum += get(&h->bucket[i]);
		fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
		        (double)bounds_us[i] / 1e6, (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
	        (unsigned long long)get(&h->count));
	fprintf(f, "%s_sum%s%s%s %.6f\n", name, *sep ? "{" : "", labels, *sep ? "}" : "",
	        (double)get(&h->sum_us) / 1e6);
	fprintf(f, "%s_count%s%s%s %llu\n", name, *sep ? "{" : "", labels,
	        *sep ? "}" : "", (unsigned long long)get(&h->count));
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
metric_method(size_t route)
{
	static const char *const names[] = {"GET", "HEAD",  "POST",
	                                    "PUT", "PATCH", "DELETE"};
	size_t i;

	for (i = 0; route < api_nroutes && i < 6; i++)
		if (api_routes[route].methods & (1u << i))
			return names[i];
	return "other";
}

static void
put_http(FILE *f)
{
	static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	char labels[200];
	size_t route, c;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		if (pass == 0)
			head(f, "http_requests_total", "counter",
			     "Requests answered, by route template, method and status "
			     "class.");
		else
			head(f, "http_request_duration_seconds", "histogram",
			     "Time from accepting a request to the end of its response.");
		for (route = 0; route <= api_nroutes && route < METRIC_ROUTES; route++)
			for (c = 0; c < 5; c++) {
				const struct shm_hist *h = &shm->http[route][c];

				if (get(&h->count) == 0)
					continue;
				snprintf(labels, sizeof labels,
				         "route=\"%s\",method=\"%s\",status=\"%s\"",
				         route < api_nroutes ? api_routes[route].pattern
				                             : "unmatched",
				         metric_method(route), classes[c]);
				if (pass == 0)
					fprintf(f, "http_requests_total{%s} %llu\n",
					        labels,
					        (unsigned long long)get(&h->count));
				else
					put_hist(f, "http_request_duration_seconds",
					         labels, h);
			}
	}
}

/* Gauges read from PostgreSQL at scrape time. */
static void
put_db_gauges(FILE *f, struct req *r)
{
	PGresult *res;
	int i;

	if (db_query(r->app->db, &res,
	             "SELECT s, (SELECT count(*) FROM analysis_jobs WHERE status = s)"
	             " FROM unnest(ARRAY['created', 'pending', 'running', 'completed',"
	             " 'failed', 'canceled']) AS s",
	             0, NULL) == DB_OK) {
		head(f, "assay_runs", "gauge", "Runs kept, by status.");
		for (i = 0; i < PQntuples(res); i++)
			fprintf(f, "assay_runs{status=\"%s\"} %s\n",
			        PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
		PQclear(res);
	}
	if (db_query(r->app->db, &res, "SELECT count(*) FROM idempotency_keys", 0,
	             NULL) == DB_OK) {
		head(f, "idempotency_store_size", "gauge",
		     "Idempotency keys stored (replayable or awaiting pruning).");
		fprintf(f, "idempotency_store_size %s\n", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
}

void
metrics_run_created(void)
{
	if (shm != NULL)
		__atomic_fetch_add(&shm->runs_created, 1, __ATOMIC_RELAXED);
}

bool
metrics_allowed(struct req *r)
{
	const char *allow = cfg_str(r->app->cfg, API_METRICS_ALLOW), *bad;
	static const char *warned;

	if (util_addr_in(http_param(r, "REMOTE_ADDR"), allow, &bad))
		return true;
	if (bad != NULL && warned != allow) {
		warned = allow;
		log_msg(LOG_ERROR,
		        "metrics_allow: '%.*s' is not a network; it matches nothing",
		        (int)strcspn(bad, ", \t"), bad);
	}
	http_problem(r, 403, "FORBIDDEN", NULL,
	             "this endpoint is only served to the networks in metrics_allow");
	return false;
}

void
metrics_serve(struct req *r)
{
	static const char *const tiers[] = {"free", "pro", "enterprise", "anonymous"};
	uint64_t inflight = 0, active = 0, idle = 0;
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	if (!cfg_int(r->app->cfg, API_METRICS)) {
		http_problem(r, 404, "NOT_FOUND", NULL,
		             "metrics are turned off (metrics = false)");
		return;
	}
	if (!metrics_allowed(r))
		return;
	f = open_memstream(&buf, &len);
	head(f, "assay_build_info", "gauge", "The running version.");
	fprintf(f, "assay_build_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
	put_http(f);
	for (i = 0; i < SHM_WORKERS; i++) {
		if (__atomic_load_n(&shm->workers[i].pid, __ATOMIC_ACQUIRE) == 0)
			continue;
		inflight += __atomic_load_n(&shm->workers[i].busy, __ATOMIC_RELAXED);
		if (__atomic_load_n(&shm->workers[i].db_open, __ATOMIC_RELAXED))
			*(__atomic_load_n(&shm->workers[i].busy, __ATOMIC_RELAXED)
			      ? &active
			      : &idle) += 1;
	}
	head(f, "http_requests_in_flight", "gauge", "Requests being served now.");
	fprintf(f, "http_requests_in_flight %llu\n", (unsigned long long)inflight);
	head(f, "database_connections_active", "gauge",
	     "Open PostgreSQL connections of workers serving a request.");
	fprintf(f, "database_connections_active %llu\n", (unsigned long long)active);
	head(f, "database_connections_idle", "gauge",
	     "Open PostgreSQL connections of idle workers.");
	fprintf(f, "database_connections_idle %llu\n", (unsigned long long)idle);
	head(f, "database_query_duration_seconds", "histogram", "PostgreSQL query time.");
	put_hist(f, "database_query_duration_seconds", "", &shm->db);
	head(f, "database_query_errors_total", "counter",
	     "Queries that failed (server error or connection lost).");
	fprintf(f, "database_query_errors_total %llu\n",
	        (unsigned long long)get(&shm->db_errors));
	head(f, "cache_hits_total", "counter", "Cache reads answered, by layer.");
	fprintf(f, "cache_hits_total{layer=\"memcached\"} %llu\n",
	        (unsigned long long)get(&shm->cache_hits));
	fprintf(f, "cache_hits_total{layer=\"worker\"} %llu\n",
	        (unsigned long long)get(&shm->cache_local_hits));
	head(f, "cache_misses_total", "counter", "Cache reads that went to PostgreSQL.");
	fprintf(f, "cache_misses_total %llu\n",
	        (unsigned long long)get(&shm->cache_misses));
	head(f, "cache_errors_total", "counter", "memcached operations that failed.");
	fprintf(f, "cache_errors_total %llu\n",
	        (unsigned long long)get(&shm->cache_errors));
	head(f, "cache_operation_duration_seconds", "histogram",
	     "memcached round trips: cache reads (op=read), rate-limit counting "
	     "(op=count).");
	put_hist(f, "cache_operation_duration_seconds", "op=\"read\"",
	         &shm->cache_ops[OP_READ]);
	put_hist(f, "cache_operation_duration_seconds", "op=\"count\"",
	         &shm->cache_ops[OP_COUNT]);
	head(f, "memcached_up", "gauge",
	     "1 while memcached answers; 0 while limits and cache fall back.");
	fprintf(f, "memcached_up %d\n",
	        !__atomic_load_n(&shm->mc_down, __ATOMIC_RELAXED));
	head(f, "runs_total", "counter",
	     "Runs created (POST /api/v1/runs answered 201).");
	fprintf(f, "runs_total %llu\n", (unsigned long long)get(&shm->runs_created));
	head(f, "rate_limit_exceeded_total", "counter",
	     "Requests refused with 429, by tier (anonymous: per address).");
	for (i = 0; i <= TIER__MAX; i++)
		fprintf(f, "rate_limit_exceeded_total{tier=\"%s\"} %llu\n", tiers[i],
		        (unsigned long long)get(&shm->limited[i]));
	put_db_gauges(f, r);
	fclose(f);
	http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, buf, len);
	free(buf);
}
