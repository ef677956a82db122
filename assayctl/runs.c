/*
 * `assayctl runs retry --status failed|canceled[,...] [--analysis ID]
 * [--since DURATION] [--tenant NAME] [--batch N] [--config FILE]`: give
 * dead runs (failed, canceled) a new set of attempts, as POST
 * /api/v1/runs/{id}/retry does, through the same function (assay_retry,
 * sql/0013_batch.sql): project by project, at most N runs per
 * transaction, oldest first, never past the tenant's tier's max_queued
 * (assay.conf [tiers]). --since keeps runs created within the duration.
 * Prints what it did per project and in all; the runs a full queue left
 * dead are counted, not retried. The API's cached copies of the runs
 * retried are forgotten (memcached), as the API forgets its own.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "mc.h"

/* The dead runs chosen: $1 statuses (comma-separated), $2 analysis or
 * NULL, $3 interval or NULL. */
#define CHOSEN                                                                           \
	"j.status = ANY (string_to_array($1, ',')) AND j.status IN ('failed', "          \
	"'canceled') AND ($2::uuid IS NULL OR j.analysis_id = $2::uuid)"                 \
	" AND ($3::interval IS NULL OR j.created_at >= now() - $3::interval)"

struct choice {
	const char *status, *analysis, *since, *tenant, *batch;
};

/* Retry project's chosen runs, batch by batch; -1 on failure, else how
 * many were retried. *left: how many stay dead (a full queue). */
static long
retry_project(PGconn *conn, struct mc *mc, const struct choice *c, const char *project,
              long max, long *left, bool *told)
{
	char maxs[24];
	const char *params[6] = {c->status, c->analysis, c->since,
	                         project,   c->batch,    maxs};
	PGresult *res;
	long total = 0, n, chosen, i;

	snprintf(maxs, sizeof maxs, "%ld", max);
	do {
		res = PQexecParams(
		    conn,
		    "WITH c AS (SELECT j.id FROM analysis_jobs j"
		    " WHERE j.project_id = $4::bigint AND " CHOSEN
		    " ORDER BY j.created_at, j.id LIMIT $5::int)"
		    " SELECT (SELECT count(*) FROM c), r.id FROM (SELECT 1) x LEFT JOIN"
		    " assay_retry($4::bigint, ARRAY(SELECT id FROM c), $6::int,"
		    " 'assayctl') r ON true",
		    6, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "assayctl: runs retry: %s", PQerrorMessage(conn));
			PQclear(res);
			return -1;
		}
		chosen = atol(PQgetvalue(res, 0, 0));
		for (i = n = 0; i < PQntuples(res); i++) {
			if (PQgetisnull(res, (int)i, 1))
				continue;
			n++;
			*told = mc_forget_run(mc, project, PQgetvalue(res, (int)i, 1)) &&
			        *told;
		}
		total += n;
		PQclear(res);
	} while (n > 0 && n == chosen);
	res = PQexecParams(conn,
	                   "SELECT count(*) FROM analysis_jobs j"
	                   " WHERE j.project_id = $4::bigint AND " CHOSEN,
	                   4, NULL, params, NULL, NULL, 0);
	*left = PQresultStatus(res) == PGRES_TUPLES_OK ? atol(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	return total;
}

static int
retry_all(PGconn *conn, const struct cfg *cfg, const struct choice *c)
{
	const char *params[4] = {c->status, c->analysis, c->since, c->tenant};
	long total = 0, left_all = 0, n, left, max;
	struct mc *mc = mc_new(cfg_str(cfg, API_MEMCACHED_SERVERS), 1000);
	bool told = true;
	PGresult *res;
	int i, status = 0;

	res = PQexecParams(conn,
	                   "SELECT j.project_id, t.name || '/' || p.name, t.tier"
	                   " FROM analysis_jobs j JOIN projects p ON p.id = j.project_id"
	                   " JOIN tenants t ON t.id = p.tenant_id"
	                   " WHERE ($4::text IS NULL OR t.name = $4) AND " CHOSEN
	                   " GROUP BY 1, 2, 3 ORDER BY 2",
	                   4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "assayctl: runs retry: %s", PQerrorMessage(conn));
		PQclear(res);
		mc_free(mc);
		return 1;
	}
	for (i = 0; i < PQntuples(res) && status == 0; i++) {
		max = tier_limit(cfg, tier_index(PQgetvalue(res, i, 2)), TF_MAX_QUEUED);
		if ((n = retry_project(conn, mc, c, PQgetvalue(res, i, 0), max, &left,
		                       &told)) < 0) {
			status = 1;
			break;
		}
		printf("%s: %ld run(s) retried", PQgetvalue(res, i, 1), n);
		if (left > 0)
			printf(", %ld left dead: its queue is full (%s_max_queued %ld)",
			       left, PQgetvalue(res, i, 2), max);
		printf("\n");
		total += n;
		left_all += left;
	}
	PQclear(res);
	mc_free(mc);
	if (status == 0)
		printf("total: %ld run(s) retried, %ld left dead\n", total, left_all);
	if (!told)
		fprintf(
		    stderr,
		    "assayctl: memcached (%s) could not be told of the runs retried: the "
		    "API may show them as they were for up to [cache] ttl_short "
		    "(or until they start)\n",
		    cfg_str(cfg, API_MEMCACHED_SERVERS));
	return status;
}

/* Is s a comma-separated list of failed and canceled? */
static bool
dead_statuses(const char *s)
{
	size_t n;

	for (;; s += n + 1) {
		n = strcspn(s, ",");
		if (!((n == 6 && strncmp(s, "failed", 6) == 0) ||
		      (n == 8 && strncmp(s, "canceled", 8) == 0)))
			return false;
		if (s[n] == '\0')
			return true;
	}
}

int
cmd_runs(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"status", required_argument, NULL, 's'},
	    {"analysis", required_argument, NULL, 'a'},
	    {"since", required_argument, NULL, 'S'},
	    {"tenant", required_argument, NULL, 't'},
	    {"batch", required_argument, NULL, 'b'},
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	struct choice ch = {NULL, NULL, NULL, NULL, "500"};
	const char *path = API_CONF_FILE;
	char interval[48];
	bool required = false;
	struct cfg *cfg;
	PGconn *conn;
	int c, status = 0;

	if (argc < 2 || strcmp(argv[1], "retry") != 0)
		goto usage;
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's' && dead_statuses(optarg))
			ch.status = optarg;
		else if (c == 'a')
			ch.analysis = optarg;
		else if (c == 'S' && ctl_since(optarg, interval, sizeof interval))
			ch.since = interval;
		else if (c == 't')
			ch.tenant = optarg;
		else if (c == 'b' && ctl_positive(optarg))
			ch.batch = optarg;
		else if (c == 'c') {
			path = optarg;
			required = true;
		} else
			goto usage;
	}
	if (optind != argc || ch.status == NULL)
		goto usage;
	if ((cfg = ctl_api_config(path, required, &status)) == NULL)
		return status;
	if ((conn = ctl_connect(ctl)) == NULL) {
		cfg_free(cfg);
		return 1;
	}
	status = retry_all(conn, cfg, &ch);
	PQfinish(conn);
	cfg_free(cfg);
	return status;
usage:
	fprintf(stderr, "usage: assayctl runs retry --status failed|canceled[,...] "
	                "[--analysis ID] [--since N{s|m|h|d}]\n"
	                "                          [--tenant NAME] [--batch N] "
	                "[--config FILE]\n");
	return 2;
}
