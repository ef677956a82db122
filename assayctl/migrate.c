/*
 * `assayctl migrate`: apply the numbered files of the SQL directory
 * (NNNN_name.sql) in order, each in its own transaction together with its
 * schema_migrations row, under a session advisory lock so that concurrent
 * runs apply each file once. `--status` lists applied and pending files
 * and changes nothing.
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "xalloc.h"

/* Arbitrary, fixed: every assayctl agrees on it ("assaymig" in ASCII). */
#define MIGRATE_LOCK "7021786396651710823"

static int
is_migration(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 9 && isdigit((unsigned char)d->d_name[0]) &&
	       isdigit((unsigned char)d->d_name[1]) &&
	       isdigit((unsigned char)d->d_name[2]) &&
	       isdigit((unsigned char)d->d_name[3]) && d->d_name[4] == '_' &&
	       strcmp(d->d_name + n - 4, ".sql") == 0;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, got;

	if (f == NULL)
		return NULL;
	do {
		buf = xrealloc(buf, len + 65536 + 1);
		got = fread(buf + len, 1, 65536, f);
		len += got;
	} while (got > 0);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Run a statement without parameters; print the error and return false on failure. */
static bool
exec_ok(PGconn *conn, const char *sql, const char *what)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		fprintf(stderr, "assayctl: %s: %s", what, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* Applied versions with their time, or NULL when the table does not exist yet. */
static PGresult *
applied_versions(PGconn *conn)
{
	PGresult *res =
	    PQexec(conn, "SELECT version, to_char(applied_at AT TIME ZONE 'UTC', "
	                 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations "
	                 "ORDER BY version");

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		PQclear(res);
		return NULL;
	}
	return res;
}

static int
applied_row(const PGresult *res, const char *version)
{
	int i;

	for (i = 0; res != NULL && i < PQntuples(res); i++)
		if (strcmp(PQgetvalue(res, i, 0), version) == 0)
			return i;
	return -1;
}

static bool
apply_one(PGconn *conn, const char *dir, const char *file, const char *version)
{
	const char *params[1] = {version};
	char *path = xasprintf("%s/%s", dir, file), *sql = read_file(path);
	PGresult *res;
	bool ok = false;

	if (sql == NULL) {
		fprintf(stderr, "assayctl: cannot read %s\n", path);
		goto out;
	}
	if (!exec_ok(conn, "BEGIN", "BEGIN"))
		goto out;
	if (!exec_ok(conn, sql, path)) {
		exec_ok(conn, "ROLLBACK", "ROLLBACK");
		goto out;
	}
	res = PQexecParams(conn, "INSERT INTO schema_migrations (version) VALUES ($1)", 1,
	                   NULL, params, NULL, NULL, 0);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "assayctl: recording %s: %s", version,
		        PQresultErrorMessage(res));
	PQclear(res);
	ok = ok && exec_ok(conn, "COMMIT", "COMMIT");
	if (!ok)
		exec_ok(conn, "ROLLBACK", "ROLLBACK");
	else
		printf("applied %s\n", version);
out:
	free(sql);
	free(path);
	return ok;
}

int
cmd_migrate(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {{"status", no_argument, NULL, 's'},
	                                     {NULL, 0, NULL, 0}};
	struct dirent **files = NULL;
	PGresult *applied = NULL;
	PGconn *conn = NULL;
	bool status = false, ok = false;
	char version[256];
	int c, n = -1, i, row, pending = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 's') {
			fprintf(stderr, "usage: assayctl migrate [--status]\n");
			return 2;
		}
		status = true;
	}
	n = scandir(ctl->sql_dir, &files, is_migration, alphasort);
	if (n < 0) {
		fprintf(stderr, "assayctl: cannot read migrations in %s\n", ctl->sql_dir);
		return 1;
	}
	conn = ctl_connect(ctl);
	if (conn == NULL)
		goto out;
	if (!status &&
	    (!exec_ok(conn, "SET client_min_messages = warning", "settings") ||
	     !exec_ok(conn, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", "lock") ||
	     !exec_ok(conn,
	              "CREATE TABLE IF NOT EXISTS schema_migrations ("
	              "version text PRIMARY KEY, "
	              "applied_at timestamptz NOT NULL DEFAULT now())",
	              "schema_migrations")))
		goto out;
	applied = applied_versions(conn);
	for (i = 0; i < n; i++) {
		snprintf(version, sizeof version, "%.*s",
		         (int)(strlen(files[i]->d_name) - 4), files[i]->d_name);
		row = applied_row(applied, version);
		if (status) {
			if (row >= 0)
				printf("applied  %s  %s\n", version,
				       PQgetvalue(applied, row, 1));
			else
				printf("pending  %s\n", version);
			pending += row < 0;
		} else if (row < 0) {
			if (!apply_one(conn, ctl->sql_dir, files[i]->d_name, version))
				goto out;
			pending++;
		}
	}
	if (status)
		printf("%d applied, %d pending\n", n - pending, pending);
	else if (pending == 0)
		printf("schema is up to date\n");
	ok = true;
out:
	PQclear(applied);
	if (conn != NULL)
		PQfinish(conn); /* ends the session: releases the advisory lock */
	for (i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return ok ? 0 : 1;
}
