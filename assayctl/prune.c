/*
 * `assayctl prune [--config FILE] [--batch N]`: delete runs older than
 * their tenant's tier keeps history ([tiers] <tier>_history_days in
 * assay.conf), with their events, results stored apart
 * (analysis_result_storage) and idempotency keys (foreign keys cascade)
 * and their webhook deliveries (in the same statement). Deletes in batches of N,
 * each its own transaction, so a large backlog never holds long locks. Runs still queued
 * or running are left to finish; the API stops showing expired runs on its own.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "extern.h"
#include "assayconf.h"

static long
prune_tier(PGconn *conn, const char *tier, long days, const char *batch)
{
	char d[24];
	const char *params[3] = {tier, d, batch};
	PGresult *res;
	long total = 0, n;

	snprintf(d, sizeof d, "%ld", days);
	do {
		res = PQexecParams(
		    conn,
		    "WITH gone AS (DELETE FROM analysis_jobs WHERE id IN (SELECT j.id"
		    " FROM analysis_jobs j"
		    " JOIN projects p ON p.id = j.project_id"
		    " JOIN tenants t ON t.id = p.tenant_id"
		    " WHERE t.tier = $1 AND j.status IN ('created', 'completed', "
		    "'failed', 'canceled')"
		    " AND j.created_at < now() - make_interval(days => $2::int)"
		    " LIMIT $3::int FOR UPDATE OF j SKIP LOCKED) RETURNING id),"
		    " hooks AS (DELETE FROM webhook_deliveries d USING gone"
		    "  WHERE d.job_id = gone.id)"
		    " SELECT count(*) FROM gone",
		    3, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			fprintf(stderr, "assayctl: prune %s: %s", tier,
			        PQerrorMessage(conn));
			PQclear(res);
			return -1;
		}
		n = atol(PQgetvalue(res, 0, 0));
		total += n;
		PQclear(res);
	} while (n > 0);
	return total;
}

int
cmd_prune(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"batch", required_argument, NULL, 'b'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = API_CONF_FILE, *batch = "1000";
	bool required = false;
	struct cfg *cfg;
	PGconn *conn;
	long days, n;
	int c, t, status = 0;

	while ((c = getopt_long(argc, argv, "c:b:", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			required = true;
			break;
		case 'b':
			batch = optarg;
			if (!ctl_positive(batch)) {
				fprintf(stderr,
				        "assayctl: --batch wants a positive number\n");
				return 2;
			}
			break;
		default:
			fprintf(stderr,
			        "usage: assayctl prune [--config FILE] [--batch N]\n");
			return 2;
		}
	}
	if ((cfg = ctl_api_config(path, required, &status)) == NULL)
		return status;
	if ((conn = ctl_connect(ctl)) == NULL) {
		cfg_free(cfg);
		return 1;
	}
	for (t = 0; t < TIER__MAX && status == 0; t++) {
		if ((days = tier_limit(cfg, (enum tier)t, TF_HISTORY)) == 0)
			continue; /* kept forever */
		if ((n = prune_tier(conn, tier_names[t], days, batch)) < 0)
			status = 1;
		else
			printf("%s: %ld run(s) older than %ld days deleted\n",
			       tier_names[t], n, days);
	}
	PQfinish(conn);
	cfg_free(cfg);
	return status;
}
