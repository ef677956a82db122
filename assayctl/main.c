/*
 * assayctl: administration of an Assay installation from the shell.
 * Global options, then one command from the table. Exit status 0 on
 * success, 1 on failure, 2 on a usage error; errors go to stderr.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "util.h"

static const struct {
	const char *name;
	int (*run)(const struct ctl *, int, char *[]);
	const char *usage;
} commands[] = {
    {"migrate", cmd_migrate,
     "migrate [--status]            apply pending sql/ migrations"},
    {"tenant", cmd_tenant,
     "tenant create NAME [--tier T] add a tenant (free, pro, enterprise)"},
    {"tenant", cmd_tenant,
     "tenant webhook-secret NAME [--rotate]\n"
     "                                print the tenant's webhook signing secret\n"
     "                                (--rotate: a new one; the old one signs 24 h "
     "more)"},
    {"key", cmd_key, "key create --tenant NAME      print a new API key for the tenant"},
    {"key", cmd_key,
     "key revoke PREFIX|KEY         revoke a key (refused within a second)"},
    {"key", cmd_key, "key list --tenant NAME        list the tenant's keys (no secrets)"},
    {"prune", cmd_prune,
     "prune [--config F] [--batch N] delete runs past their tier's history"},
    {"runs", cmd_runs,
     "runs retry --status failed|canceled [--analysis ID] [--since 1h]\n"
     "          [--tenant NAME] [--batch N] [--config F]\n"
     "                                requeue dead runs, N per transaction"},
    {"db", cmd_db, "db index-usage                each index's scans and size"},
    {"audit", cmd_audit,
     "audit [--tenant NAME] [--since 1h]\n"
     "                                print the audit log, oldest first"},
    {"schedules", cmd_schedules,
     "schedules list [--tenant NAME] list schedules, their next run and last tick"},
    {"job-token", cmd_job_token,
     "job-token [--config F] RUN_ID print a job token for the run's running attempt"},
};

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: assayctl [--database-url URL] [--sql-dir DIR] COMMAND ...\n"
	             "  DATABASE_URL and ASSAY_SQL_DIR set the same as the options.\n"
	             "commands:\n");
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %s\n", commands[i].usage);
}

struct cfg *
ctl_api_config(const char *path, bool required, int *status)
{
	struct cfg *cfg =
	    cfg_startup(api_cfg_keys, API__MAX, path, required, false, status);

	if (cfg != NULL)
		*status = 0;
	return cfg;
}

bool
ctl_since(const char *s, char *buf, size_t len)
{
	long seconds;

	if (!util_duration(s, &seconds))
		return false;
	snprintf(buf, len, "%ld seconds", seconds);
	return true;
}

bool
ctl_positive(const char *s)
{
	return atol(s) >= 1 && strspn(s, "0123456789") == strlen(s);
}

PGconn *
ctl_connect(const struct ctl *ctl)
{
	PGconn *conn = PQconnectdb(ctl->database_url);

	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "assayctl: cannot connect to the database: %s",
		        PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

bool
ctl_tenant_known(PGconn *conn, const char *name)
{
	PGresult *res = PQexecParams(conn, "SELECT 1 FROM tenants WHERE name = $1", 1,
	                             NULL, &name, NULL, NULL, 0);
	int n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;

	if (n <= 0)
		fprintf(stderr, "assayctl: %s\n",
		        n == 0 ? "no such tenant" : PQresultErrorMessage(res));
	PQclear(res);
	return n > 0;
}

int
ctl_print(PGresult *res, int ncols, const char *const *heads, const int *widths)
{
	int i, c;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
		PQclear(res);
		return 1;
	}
	for (i = -1; i < PQntuples(res); i++)
		for (c = 0; c < ncols; c++)
			printf("%*s%s", widths[c],
			       i < 0 ? heads[c] : PQgetvalue(res, i, c),
			       c + 1 < ncols ? " " : "\n");
	PQclear(res);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"database-url", required_argument, NULL, 'd'},
	    {"sql-dir", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl;
	size_t i;
	int c;

	ctl.database_url =
	    getenv("DATABASE_URL") ? getenv("DATABASE_URL") : "dbname=assay";
	ctl.sql_dir = getenv("ASSAY_SQL_DIR") ? getenv("ASSAY_SQL_DIR") : SQLDIR;
	/* "+": stop at the command; its options are its own. */
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ctl.database_url = optarg;
			break;
		case 's':
			ctl.sql_dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("assayctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			argv += optind;
			argc -= optind;
			optind =
			    0; /* glibc: reinitialise getopt for the command's options */
			return commands[i].run(&ctl, argc, argv);
		}
	}
	fprintf(stderr, "assayctl: unknown command '%s'\n", argv[optind]);
	usage(stderr);
	return 2;
}
