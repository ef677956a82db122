/*
 * Internals of assayctl, the administration command line. Each command
 * is a function in the command table (main.c) and lives in a file named
 * after it. Commands talk to PostgreSQL only through libpq parameters.
 */
#ifndef ASSAYCTL_EXTERN_H
#define ASSAYCTL_EXTERN_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct ctl {
	const char *database_url;
	const char *sql_dir;
};

struct cfg;
/* assay.conf (assay-api's key table: tiers, memcached), or NULL after
 * printing why, with the exit status in *status. */
struct cfg *ctl_api_config(const char *path, bool required, int *status);

/* "90s", "15m", "1h", "7d" as a PostgreSQL interval in buf, or false. */
bool ctl_since(const char *s, char *buf, size_t len);
/* Is s a positive decimal number (a --batch)? */
bool ctl_positive(const char *s);

/* Connect or print why not; NULL on failure. */
PGconn *ctl_connect(const struct ctl *);

/* Does the tenant exist? false after printing why not. */
bool ctl_tenant_known(PGconn *, const char *name);

/* Print the rows of a query's result under a line of heads, each column
 * printf's %*s of its width (negative: left-aligned); or print its error.
 * Clears res; returns the exit status (0 or 1). */
int ctl_print(PGresult *res, int ncols, const char *const *heads, const int *widths);

/* migrate.c: `assayctl migrate [--status]`. Returns the exit status. */
int cmd_migrate(const struct ctl *, int argc, char *argv[]);
/* tenant.c: `assayctl tenant create NAME [--tier T]`,
 * `assayctl tenant webhook-secret NAME [--rotate]`. */
int cmd_tenant(const struct ctl *, int argc, char *argv[]);
/* key.c: `assayctl key create|list --tenant NAME`, `assayctl key revoke PREFIX|KEY`. */
int cmd_key(const struct ctl *, int argc, char *argv[]);
/* prune.c: `assayctl prune [--config FILE] [--batch N]`. */
int cmd_prune(const struct ctl *, int argc, char *argv[]);
/* audit.c: `assayctl audit [--tenant NAME] [--since N{s|m|h|d}]`. */
int cmd_audit(const struct ctl *, int argc, char *argv[]);
/* schedules.c: `assayctl schedules list [--tenant NAME]`. */
int cmd_schedules(const struct ctl *, int argc, char *argv[]);
/* key.c too: `assayctl job-token [--config FILE] RUN_ID`. */
int cmd_job_token(const struct ctl *, int argc, char *argv[]);
/* runs.c: `assayctl runs retry --status failed|canceled [--analysis ID]
 * [--since 1h] [--tenant NAME] [--batch N] [--config FILE]`. */
int cmd_runs(const struct ctl *, int argc, char *argv[]);
/* db.c: `assayctl db index-usage`. */
int cmd_db(const struct ctl *, int argc, char *argv[]);

#endif
