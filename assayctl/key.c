/*
 * `assayctl key create --tenant NAME`: a new API key, printed once, alone
 * on stdout; only its SHA-256 is stored. `assayctl key list --tenant
 * NAME`: prefixes and dates. `assayctl key revoke PREFIX|KEY`: API
 * workers refuse the key within a second, and its stream tokens die.
 * Never prints a secret, not even one it was given.
 *
 * `assayctl job-token [--config FILE] RUN_ID`, the other credential: a
 * job token for the run's running attempt, as the executor makes one,
 * signed with the first key of assay.conf's job_token_key_file, printed
 * alone on stdout (for operators debugging a script's calls to the API,
 * and for tests). Refused for a run that is not running: such a token
 * would be refused anyway. It expires with the run's timeout plus a
 * minute, at most 30 minutes from now.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apikey.h"
#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "jobtoken.h"
#include "mc.h"

static int
key_create(PGconn *conn, const char *tenant)
{
	char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1], digest[65];
	const char *params[3] = {tenant, prefix, digest};
	PGresult *res;
	int rc = 1;

	if (!apikey_generate(key, prefix)) {
		fprintf(stderr, "assayctl: no randomness available\n");
		return 1;
	}
	apikey_sha256_hex(key, strlen(key), digest);
	res =
	    PQexecParams(conn,
	                 "INSERT INTO api_keys (tenant_id, prefix, hash)"
	                 " SELECT id, $2, decode($3, 'hex') FROM tenants WHERE name = $1",
	                 3, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	else if (strcmp(PQcmdTuples(res), "1") != 0)
		fprintf(stderr, "assayctl: no tenant %s\n", tenant);
	else {
		printf("%s\n", key);
		fprintf(stderr,
		        "key %s created for tenant %s; it is shown only this once\n",
		        prefix, tenant);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* The memcached servers of assay.conf (or MEMCACHED_SERVERS). */
static const char *
memcached_servers(void)
{
	static char servers[512];
	struct cfg *cfg;
	int status;

	if (servers[0] == '\0') {
		cfg = ctl_api_config(API_CONF_FILE, false, &status);
		snprintf(servers, sizeof servers, "%s",
		         cfg ? cfg_str(cfg, API_MEMCACHED_SERVERS) : "127.0.0.1:11211");
		cfg_free(cfg);
	}
	return servers;
}

/* Make the API's cached lookup of the key (by its digest) go at once. */
static bool
key_forget(const char *digest)
{
	struct mc *mc = mc_new(memcached_servers(), 1000);
	char key[MC_KEY_MAX];
	bool ok;

	mc_apikey_key(key, digest);
	ok = mc_tombstone(mc, key);
	mc_free(mc);
	return ok;
}

/*
 * Revoke a key named by its prefix or given whole (then found by its
 * SHA-256, so a mistyped secret matches nothing). Only the prefix is ever
 * printed: never what was given.
 */
static int
key_revoke(PGconn *conn, const char *given)
{
	char prefix[APIKEY_PREFIX_LEN + 1], digest[65];
	bool whole = strlen(given) > APIKEY_PREFIX_LEN;
	const char *params[1] = {digest};
	PGresult *res;
	int rc = 1;

	if (whole)
		apikey_sha256_hex(given, strlen(given), digest);
	else
		params[0] = given;
	res =
	    PQexecParams(conn,
	                 whole ? "UPDATE api_keys SET revoked_at = coalesce(revoked_at, "
	                         "now()) WHERE hash = decode($1, 'hex')"
	                         " RETURNING encode(hash, 'hex'), prefix"
	                       : "UPDATE api_keys SET revoked_at = coalesce(revoked_at, "
	                         "now()) WHERE prefix = $1"
	                         " RETURNING encode(hash, 'hex'), prefix",
	                 1, NULL, params, NULL, NULL, 0);
	snprintf(prefix, sizeof prefix, "%s",
	         PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
	             ? PQgetvalue(res, 0, 1)
	             : "");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) != 1)
		fprintf(stderr, "assayctl: no such key%s%s\n", whole ? "" : " ",
		        whole ? " (the whole key given matches none)" : given);
	else if (!key_forget(PQgetvalue(res, 0, 0)))
		fprintf(
		    stderr,
		    "assayctl: key %s is revoked in the database, but memcached (%s) "
		    "could not be told: API hosts reaching it may accept the key until "
		    "its cached lookup expires ([cache] ttl_user); run this again\n",
		    prefix, memcached_servers());
	else {
		printf("key %s revoked\n", prefix);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* The tenant's keys: prefix, created, last used, revoked (never a secret). */
static int
key_list(PGconn *conn, const char *tenant)
{
	const char *params[1] = {tenant};
	PGresult *res;
	int i, rc = 1;

	res = PQexecParams(conn,
	                   "SELECT k.prefix, assay_ts(k.created_at), "
	                   "coalesce(assay_ts(k.last_used_at), '-'),"
	                   " coalesce(assay_ts(k.revoked_at), '-')"
	                   " FROM tenants t LEFT JOIN api_keys k ON k.tenant_id = t.id"
	                   " WHERE t.name = $1 ORDER BY k.created_at",
	                   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) == 0)
		fprintf(stderr, "assayctl: no tenant %s\n", tenant);
	else {
		printf("%-16s %-26s %-26s %s\n", "PREFIX", "CREATED", "LAST USED",
		       "REVOKED");
		for (i = 0; i < PQntuples(res); i++)
			if (!PQgetisnull(res, i, 0))
				printf("%-16s %-26s %-26s %s\n", PQgetvalue(res, i, 0),
				       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
				       PQgetvalue(res, i, 3));
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int
cmd_key(const struct ctl *ctl, int argc, char *argv[])
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
	if (argc - optind == 1 && strcmp(argv[optind], "create") == 0 && tenant != NULL) {
		if ((conn = ctl_connect(ctl)) == NULL)
			return 1;
		rc = key_create(conn, tenant);
	} else if (argc - optind == 2 && strcmp(argv[optind], "revoke") == 0 &&
	           tenant == NULL) {
		if ((conn = ctl_connect(ctl)) == NULL)
			return 1;
		rc = key_revoke(conn, argv[optind + 1]);
	} else if (argc - optind == 1 && strcmp(argv[optind], "list") == 0 &&
	           tenant != NULL) {
		if ((conn = ctl_connect(ctl)) == NULL)
			return 1;
		rc = key_list(conn, tenant);
	} else {
		goto usage;
	}
	PQfinish(conn);
	return rc;
usage:
	fprintf(stderr, "usage: assayctl key create --tenant NAME\n"
	                "       assayctl key list --tenant NAME\n"
	                "       assayctl key revoke PREFIX|KEY\n");
	return 2;
}

#define JOB_TOKEN_MARGIN 60 /* seconds past the run's timeout */

/* The claims of run's running attempt into c; the exit status. */
static int
job_claims(PGconn *conn, const char *run, struct jobtoken_claims *c)
{
	const char *params[1] = {run};
	PGresult *res =
	    PQexecParams(conn,
	                 "SELECT j.project_id, j.attempts, j.status, a.timeout_ms / 1000"
	                 " FROM analysis_jobs j JOIN analyses a ON a.id = j.analysis_id"
	                 " WHERE j.id = $1::uuid",
	                 1, NULL, params, NULL, NULL, 0);
	int status = 1;

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "assayctl: %s", PQresultErrorMessage(res));
	else if (PQntuples(res) == 0)
		fprintf(stderr, "assayctl: no such run\n");
	else if (strcmp(PQgetvalue(res, 0, 2), "running") != 0)
		fprintf(stderr,
		        "assayctl: the run is %s, not running: it has no live attempt\n",
		        PQgetvalue(res, 0, 2));
	else {
		snprintf(c->run, sizeof c->run, "%s", run);
		c->project = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		c->attempt = strtol(PQgetvalue(res, 0, 1), NULL, 10);
		c->exp = time(NULL) + strtol(PQgetvalue(res, 0, 3), NULL, 10) +
		         JOB_TOKEN_MARGIN;
		status = 0;
	}
	PQclear(res);
	return status;
}

int
cmd_job_token(const struct ctl *ctl, int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = API_CONF_FILE, *why = NULL;
	struct jobtoken_keys keys = {{NULL}, 0};
	struct jobtoken_claims claims;
	struct cfg *cfg = NULL;
	PGconn *conn = NULL;
	bool required = false;
	char *token = NULL;
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (c != 'c')
			goto usage;
		path = optarg;
		required = true;
	}
	if (optind + 1 != argc)
		goto usage;
	if ((cfg = ctl_api_config(path, required, &status)) == NULL)
		return status;
	status = 1;
	if (!jobtoken_keys_load(&keys, cfg_str(cfg, API_JOB_TOKEN_KEYS), &why)) {
		fprintf(stderr, "assayctl: job_token_key_file %s: %s\n",
		        cfg_str(cfg, API_JOB_TOKEN_KEYS), why);
		goto out;
	}
	if ((conn = ctl_connect(ctl)) == NULL ||
	    job_claims(conn, argv[optind], &claims) != 0)
		goto out;
	if ((token = jobtoken_mint(&keys, &claims)) == NULL) {
		fprintf(stderr, "assayctl: the token could not be made\n");
		goto out;
	}
	printf("%s\n", token);
	status = 0;
out:
	free(token);
	jobtoken_keys_free(&keys);
	PQfinish(conn);
	cfg_free(cfg);
	return status;
usage:
	fprintf(stderr, "usage: assayctl job-token [--config FILE] RUN_ID\n");
	return 2;
}
