/*
 * `assayctl audit [--tenant NAME] [--since DURATION]`: the audit log
 * (audit_log, sql/0010_audit.sql), oldest first, one line per entry:
 * time, tenant, actor, action, outcome and status, request id, client
 * address, then the target (line breaks in it shown as spaces).
 * Reads only. The log holds no secrets, so neither does
 * what this prints.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"

static int
audit_print(PGconn *conn, const char *tenant, const char *since)
{
	static const char *const heads[] = {"TIME",    "TENANT",  "ACTOR",  "ACTION",
	                                    "OUTCOME", "REQUEST", "CLIENT", "TARGET"};
	static const int widths[] = {-24, -16, -16, -12, -14, -32, -15, 0};
	const char *params[2] = {tenant, since};

	if (tenant != NULL && !ctl_tenant_known(conn, tenant))
		return 1;
	return ctl_print(
	    PQexecParams(
	        conn,
	        "SELECT assay_ts(a.time), coalesce(t.name, '-'),"
	        " coalesce(a.actor, '-'), a.action, a.outcome || ' ' || a.status,"
	        " a.request_id, coalesce(a.client, '-'),"
	        " translate(coalesce(a.target, '-'), E'\\n\\r\\t', '   ')"
	        " FROM audit_log a LEFT JOIN tenants t ON t.id = a.tenant_id"
	        " WHERE ($1::text IS NULL OR t.name = $1)"
	        " AND ($2::interval IS NULL OR a.time > now() - $2::interval)"
	        " ORDER BY a.id",
	        2, NULL, params, NULL, NULL, 0),
	    8, heads, widths);
}

int
cmd_audit(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {{"tenant", required_argument, NULL, 't'},
	                                     {"since", required_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	const char *tenant = NULL, *since = NULL;
	char interval[48];
	PGconn *conn;
	int c, rc;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 't')
			tenant = optarg;
		else if (c == 's' && ctl_since(optarg, interval, sizeof interval))
			since = interval;
		else
			goto usage;
	}
	if (optind != argc)
		goto usage;
	if ((conn = ctl_connect(ctl)) == NULL)
		return 1;
	rc = audit_print(conn, tenant, since);
	PQfinish(conn);
	return rc;
usage:
	fprintf(stderr, "usage: assayctl audit [--tenant NAME] [--since N{s|m|h|d}]\n");
	return 2;
}
