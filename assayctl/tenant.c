/*
 * `assayctl tenant create NAME [--tier free|pro|enterprise]`: a tenant and
 * its default project, in one transaction.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "extern.h"

int
cmd_tenant(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {{"tier", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	const char *tier = "free", *params[2];
	PGresult *res;
	PGconn *conn;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 't')
			goto usage;
		tier = optarg;
	}
	if (argc - optind != 2 || strcmp(argv[optind], "create") != 0)
		goto usage;
	if (strcmp(tier, "free") != 0 && strcmp(tier, "pro") != 0 &&
	    strcmp(tier, "enterprise") != 0) {
		fprintf(stderr, "assayctl: --tier must be free, pro or enterprise\n");
		return 2;
	}
	if ((conn = ctl_connect(ctl)) == NULL)
		return 1;
	params[0] = argv[optind + 1];
	params[1] = tier;
	res = PQexecParams(
	    conn,
	    "WITH t AS (INSERT INTO tenants (name, tier) VALUES ($1, $2) RETURNING id)"
	    " INSERT INTO projects (tenant_id, name) SELECT id, 'default' FROM t",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		printf("tenant %s created (tier %s)\n", params[0], tier);
		rc = 0;
	} else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "23505") ==
	           0) {
		fprintf(stderr, "assayctl: tenant %s already exists\n", params[0]);
	} else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "23514") ==
	           0) {
		fprintf(stderr,
		        "assayctl: tenant names are 1 to 64 of A-Z a-z 0-9 _ . -\n");
	} else {
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	}
	PQclear(res);
	PQfinish(conn);
	return rc;
usage:
	fprintf(stderr,
	        "usage: assayctl tenant create NAME [--tier free|pro|enterprise]\n");
	return 2;
}
