/*
 * `assayctl schedules list [--tenant NAME]`: every schedule
 * (analysis_schedules, sql/0011_schedules.sql), or one tenant's, by
 * tenant and creation, one line each: tenant, schedule id, analysis,
 * cron expression and zone, whether enabled and catching up, the next run
 * and the last tick. Reads only.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "extern.h"

static int
schedules_print(PGconn *conn, const char *tenant)
{
	static const char *const heads[] = {"TENANT",  "SCHEDULE", "ANALYSIS",
	                                    "ENABLED", "NEXT RUN", "LAST TICK",
	                                    "ZONE",    "CRON"};
	static const int widths[] = {-16, -36, -36, -13, -24, -24, -20, 0};

	if (tenant != NULL && !ctl_tenant_known(conn, tenant))
		return 1;
	return ctl_print(
	    PQexecParams(
	        conn,
	        "SELECT t.name, s.id, s.analysis_id,"
	        " CASE WHEN s.enabled THEN 'yes' ELSE 'no' END"
	        "  || CASE WHEN s.catch_up THEN ' catch-up' ELSE '' END,"
	        " coalesce(CASE WHEN s.enabled THEN assay_ts(s.next_run_at) END,"
	        "  '-'),"
	        " coalesce(assay_ts(s.last_scheduled_for), '-'), s.timezone,"
	        " s.cron"
	        " FROM analysis_schedules s JOIN projects p ON p.id = s.project_id"
	        " JOIN tenants t ON t.id = p.tenant_id"
	        " WHERE $1::text IS NULL OR t.name = $1"
	        " ORDER BY t.name, s.created_at, s.id",
	        1, NULL, &tenant, NULL, NULL, 0),
	    8, heads, widths);
}

int
cmd_schedules(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	const char *tenant = NULL;
	PGconn *conn;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 't')
			goto usage;
		tenant = optarg;
	}
	if (argc - optind != 1 || strcmp(argv[optind], "list") != 0)
		goto usage;
	if ((conn = ctl_connect(ctl)) == NULL)
		return 1;
	rc = schedules_print(conn, tenant);
	PQfinish(conn);
	return rc;
usage:
	fprintf(stderr, "usage: assayctl schedules list [--tenant NAME]\n");
	return 2;
}
