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
	static const char *const heads[] = {"TABLE", "INDEX", "SCANS", "TUPLES READ",
	                                    "SIZE"};
	static const int widths[] = {-24, -40, 10, 12, 10};

	return ctl_print(PQexec(conn, "SELECT table_name, index_name, scans, tuples_read,"
	                              " size FROM index_usage_stats"),
	                 5, heads, widths);
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
