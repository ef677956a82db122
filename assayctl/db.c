/*
 * `assayctl db index-usage`: the index_usage_stats view (migration 0006),
 * one line per index: its table, name, scans, tuples read and size. Reads
 * only; changes nothing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "extern.h"

static int
index_usage(PGconn *conn)
{
	PGresult *res =
	    PQexec(conn, "SELECT table_name, index_name, scans, tuples_read, size"
	                 " FROM index_usage_stats");
	int i, rc = 1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	} else {
		printf("%-24s %-40s %10s %12s %10s\n", "TABLE", "INDEX", "SCANS",
		       "TUPLES READ", "SIZE");
		for (i = 0; i < PQntuples(res); i++)
			printf("%-24s %-40s %10s %12s %10s\n", PQgetvalue(res, i, 0),
			       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
			       PQgetvalue(res, i, 3), PQgetvalue(res, i, 4));
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int
cmd_db(const struct ctl *ctl, int argc, char *argv[])
{
	PGconn *conn;
	int rc;

	if (argc != 2 || strcmp(argv[1], "index-usage") != 0) {
		fprintf(stderr, "usage: assayctl db index-usage\n");
		return 2;
	}
	if ((conn = ctl_connect(ctl)) == NULL)
		return 1;
	rc = index_usage(conn);
	PQfinish(conn);
	return rc;
}
