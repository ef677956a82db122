/*
 * `assayctl tenant create NAME [--tier free|pro|enterprise]`: a tenant and
 * its default project, in one transaction. `assayctl tenant webhook-secret
 * NAME [--rotate]`: the secret the tenant's webhook deliveries are signed
 * with, as receivers configure it (whsec_ and its base64); --rotate
 * replaces it, the previous one signing too for 24 hours. The secret is
 * printed on stdout only, never logged.
 */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "extern.h"

static int
tenant_create(PGconn *conn, const char *name, const char *tier)
{
	const char *params[2] = {name, tier};
	PGresult *res;
	int rc = 1;

	res = PQexecParams(
	    conn,
	    "WITH t AS (INSERT INTO tenants (name, tier) VALUES ($1, $2) RETURNING id)"
	    " INSERT INTO projects (tenant_id, name) SELECT id, 'default' FROM t",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK) {
		printf("tenant %s created (tier %s)\n", name, tier);
		rc = 0;
	} else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "23505") ==
	           0) {
		fprintf(stderr, "assayctl: tenant %s already exists\n", name);
	} else if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ?: "", "23514") ==
	           0) {
		fprintf(stderr,
		        "assayctl: tenant names are 1 to 64 of A-Z a-z 0-9 _ . -\n");
	} else {
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	}
	PQclear(res);
	return rc;
}

/* Print the tenant's signing secret; rotate: a new one first, in one
 * statement (the current one becomes the previous one). */
static int
tenant_webhook_secret(PGconn *conn, const char *name, bool rotate)
{
	PGresult *res = PQexecParams(
	    conn,
	    rotate ? "UPDATE tenants SET webhook_secret_previous = webhook_secret,"
	             " webhook_secret_rotated_at = now(),"
	             " webhook_secret = assay_random_secret()"
	             " WHERE name = $1 RETURNING 'whsec_' || encode(webhook_secret, "
	             "'base64')"
	           : "SELECT 'whsec_' || encode(webhook_secret, 'base64') FROM tenants"
	             " WHERE name = $1",
	    1, NULL, &name, NULL, NULL, 0);
	int rc = 1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	} else if (PQntuples(res) == 0) {
		fprintf(stderr, "assayctl: no tenant %s\n", name);
	} else {
		printf("%s\n", PQgetvalue(res, 0, 0));
		if (rotate)
			fprintf(
			    stderr,
			    "webhook secret of tenant %s rotated; the previous one keeps "
			    "signing deliveries for 24 hours\n",
			    name);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int
cmd_tenant(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {{"tier", required_argument, NULL, 't'},
	                                     {"rotate", no_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	const char *tier = NULL;
	bool create, rotate = false;
	PGconn *conn;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 't')
			tier = optarg;
		else if (c == 'r')
			rotate = true;
		else
			goto usage;
	}
	if (argc - optind != 2)
		goto usage;
	create = strcmp(argv[optind], "create") == 0;
	if (create ? rotate
	           : (strcmp(argv[optind], "webhook-secret") != 0 || tier != NULL))
		goto usage;
	if (create && tier == NULL)
		tier = "free";
	if (create && strcmp(tier, "free") != 0 && strcmp(tier, "pro") != 0 &&
	    strcmp(tier, "enterprise") != 0) {
		fprintf(stderr, "assayctl: --tier must be free, pro or enterprise\n");
		return 2;
	}
	if ((conn = ctl_connect(ctl)) == NULL)
		return 1;
	if (create)
		rc = tenant_create(conn, argv[optind + 1], tier);
	else
		rc = tenant_webhook_secret(conn, argv[optind + 1], rotate);
	PQfinish(conn);
	return rc;
usage:
	fprintf(stderr,
	        "usage: assayctl tenant create NAME [--tier free|pro|enterprise]\n"
	        "       assayctl tenant webhook-secret NAME [--rotate]\n");
	return 2;
}
