/*
 * Authentication of API callers: the key comes as "Authorization: Bearer
 * KEY" or "X-API-Key: KEY", is found by its prefix and accepted when the
 * SHA-256 of what was sent equals the stored digest, compared in constant
 * time. The key itself is never logged, stored or echoed. A presented key
 * that is refused is audited (audit.c) with its prefix, never the key.
 *
 * Successful lookups are cached at two levels, by digest: in memcached
 * ("assay:key:<sha256>", [cache] ttl_user), shared by all workers and
 * hosts, and in each worker for one second. `assayctl key revoke` replaces
 * the memcached entry with a tombstone, so a revoked key stops working
 * within that second. Failed lookups are never remembered.
 *
 * A bearer credential shaped like a JWT is a job token (jobtoken.h): the
 * executor's, for one attempt of a run. It authenticates as the run's
 * tenant and project only with X-Job-ID and X-Project-ID naming its run
 * and project, and only while that attempt is the run's running one (one
 * indexed lookup per request, nothing cached, so it dies with the
 * attempt); otherwise 401 JOB_TOKEN_INVALID. It may call only the routes
 * whose job column allows it (routes.c), others get 403
 * JOB_TOKEN_FORBIDDEN. Every use of one is audited, actor "job:<run id>"
 * ("job:?" when it is not signed by a known key); the token itself never.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "apikey.h"
#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "log.h"
#include "mc.h"
#include "util.h"

#define AUTH_CACHE_SLOTS 64
#define JOB_CHALLENGE    HTTPMSG_CHALLENGE ", error=\"invalid_token\"\r\n"
#define AUTH_CACHE_US    1000000u

static struct {
	char digest[65];
	struct tenant tenant;
	uint64_t until_us;
} auth_cache[AUTH_CACHE_SLOTS];

/* The slot of a digest (lowercase hex): its first digits are uniformly spread. */
static size_t
auth_slot(const char *digest)
{
	size_t v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v * 16 +
		    (size_t)(digest[i] <= '9' ? digest[i] - '0' : digest[i] - 'a' + 10);
	return v % AUTH_CACHE_SLOTS;
}

static void
auth_keep(size_t slot, const char digest[65], const struct tenant *t)
{
	memcpy(auth_cache[slot].digest, digest, 65);
	auth_cache[slot].tenant = *t;
	auth_cache[slot].until_us = util_now_us() + AUTH_CACHE_US;
}

/* The tenant of a digest from memcached: "id\tname\ttier\tproject". */
static bool
auth_shared_get(struct req *r, const char digest[65], struct tenant *t)
{
	char key[MC_KEY_MAX], *val, *f[4], *save = NULL;
	size_t len, n = 0;

	mc_apikey_key(key, digest);
	if (mc_get(r->app->mc, key, &val, &len) != MC_OK)
		return false;
	while (n < 4 && (f[n] = strtok_r(n == 0 ? val : NULL, "\t", &save)) != NULL)
		n++;
	if (n == 4) {
		snprintf(t->id, sizeof t->id, "%s", f[0]);
		snprintf(t->name, sizeof t->name, "%s", f[1]);
		snprintf(t->tier, sizeof t->tier, "%s", f[2]);
		snprintf(t->project_id, sizeof t->project_id, "%s", f[3]);
	}
	free(val); /* a tombstone (revoked just now) has no fields */
	return n == 4;
}

static void
auth_shared_put(struct req *r, const char digest[65], const struct tenant *t)
{
	char key[MC_KEY_MAX], val[200];

	mc_apikey_key(key, digest);
	snprintf(val, sizeof val, "%s\t%s\t%s\t%s", t->id, t->name, t->tier,
	         t->project_id);
	mc_add(r->app->mc, key, val, strlen(val),
	       (unsigned)cfg_int(r->app->cfg, API_CACHE_FIRST + TTL_USER));
}

static const char *
presented_key(const struct req *r)
{
	return httpmsg_api_key(http_param(r, "HTTP_AUTHORIZATION"),
	                       http_param(r, "HTTP_X_API_KEY"));
}

static void
touch_key(struct req *r, const char *prefix)
{
	const char *params[1] = {prefix};
	PGresult *res;

	/* Best effort, at most once a minute per key: a failure changes nothing. */
	if (db_query(r->app->db, &res,
	             "UPDATE api_keys SET last_used_at = now() WHERE prefix = $1", 1,
	             params) == DB_OK)
		PQclear(res);
}

/* 401 for a presented key that is refused, with an audit entry; tenant:
 * the tenant of the key's prefix when it names one (revoked, or not its
 * secret), else NULL. */
static bool
auth_refuse(struct req *r, const char *tenant, const char *detail)
{
	audit_note(r, "auth.failure", r->path);
	snprintf(r->audit_tenant, sizeof r->audit_tenant, "%s", tenant ? tenant : "");
	http_problem(r, 401, "INVALID_API_KEY",
	             HTTPMSG_CHALLENGE ", error=\"invalid_token\"\r\n", "%s", detail);
	return false;
}

static struct jobtoken_keys job_keys; /* read by the master, inherited */

void
auth_job_keys_load(const struct cfg *cfg)
{
	const char *path = cfg_str(cfg, API_JOB_TOKEN_KEYS), *why = NULL;

	jobtoken_keys_free(&job_keys);
	if (!jobtoken_keys_load(&job_keys, path, &why))
		log_msg(LOG_WARN, "job_token_key_file %s: %s; job tokens are refused",
		        path, why);
}

/* Three non-empty base64url parts separated by dots: header.claims.signature. */
static bool
jwt_shaped(const char *s)
{
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	size_t n;
	int part;

	for (part = 0; part < 3; part++, s += n + 1) {
		n = strspn(s, b64url);
		if (n == 0 || s[n] != (part < 2 ? '.' : '\0'))
			return false;
	}
	return true;
}

/* 401 for a job token that does not authenticate this request. */
static bool
job_refuse(struct req *r, const char *detail)
{
	audit_note(r, "auth.job_token", r->path);
	http_problem(r, 401, "JOB_TOKEN_INVALID", JOB_CHALLENGE, "%s", detail);
	return false;
}

/* May the job call this route? If not, 403. Notes its audit action. */
static bool
job_route(struct req *r)
{
	const struct route *rt = r->match.route;

	if (rt->job == J_PROJECT ||
	    (rt->job == J_OWN_RUN && strcmp(r->match.params[0], r->job.run) == 0)) {
		if (rt->audit == NULL)
			audit_note(r, rt->job_audit, r->match.params[0]);
		return true;
	}
	audit_note(r, "auth.job_token", r->path);
	http_problem(r, 403, "JOB_TOKEN_FORBIDDEN", NULL,
	             "a job token may only list, search and read its project's files "
	             "and read its own run");
	return false;
}

/* Why the verified claims c (prj: its project as text) do not authenticate
 * this request (NULL: they do); fresh: not expired; live: the attempt is
 * the run's running one. */
static const char *
job_mismatch(const struct req *r, const struct jobtoken_claims *c, const char *prj,
             bool fresh, bool live)
{
	const char *run = http_param(r, "HTTP_X_JOB_ID"),
	           *project = http_param(r, "HTTP_X_PROJECT_ID");

	if (!fresh)
		return "the job token has expired";
	if (run == NULL || project == NULL)
		return "a job token needs the X-Job-ID and X-Project-ID headers";
	if (strcmp(run, c->run) != 0)
		return "X-Job-ID is not the job token's run";
	if (strcmp(project, prj) != 0)
		return "X-Project-ID is not the job token's project";
	if (!live)
		return "the job token's attempt is not running";
	return NULL;
}

static bool
auth_job(struct req *r, struct tenant *t, const char *token)
{
	struct jobtoken_claims c;
	char project[24], attempt[24];
	const char *params[3] = {c.run, project, attempt}, *why;
	PGresult *res;
	bool fresh;

	snprintf(r->audit_actor, sizeof r->audit_actor, "job:?");
	fresh = jobtoken_verify(&job_keys, token, time(NULL), &c);
	if (!fresh && !jobtoken_verify(&job_keys, token, 0, &c))
		return job_refuse(
		    r, job_keys.n == 0
		           ? "job tokens are not accepted: no key to verify them"
		           : "the job token is not signed by a known key");
	snprintf(r->audit_actor, sizeof r->audit_actor, "job:%s", c.run);
	snprintf(project, sizeof project, "%lld", c.project);
	snprintf(attempt, sizeof attempt, "%ld", c.attempt);
	res = http_query_db(r,
	                    "SELECT t.id, t.name, t.tier,"
	                    " j.attempts = $3::int AND j.status = 'running'"
	                    " FROM analysis_jobs j JOIN tenants t ON t.id = j.tenant_id"
	                    " WHERE j.id = $1::uuid AND j.project_id = $2::bigint",
	                    3, params);
	if (res == NULL)
		return false;
	if (PQntuples(res) == 1)
		snprintf(r->audit_tenant, sizeof r->audit_tenant, "%s",
		         PQgetvalue(res, 0, 0));
	why =
	    job_mismatch(r, &c, project, fresh,
	                 PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 3), "t") == 0);
	if (why == NULL) {
		snprintf(t->id, sizeof t->id, "%s", PQgetvalue(res, 0, 0));
		snprintf(t->name, sizeof t->name, "%s", PQgetvalue(res, 0, 1));
		snprintf(t->tier, sizeof t->tier, "%s", PQgetvalue(res, 0, 2));
		snprintf(t->project_id, sizeof t->project_id, "%s", project);
	}
	PQclear(res);
	if (why != NULL)
		return job_refuse(r, why);
	r->tenant = t;
	r->job = c;
	return job_route(r);
}

bool
auth_key_prefix(struct req *r, char *prefix)
{
	const char *key = presented_key(r);

	return key != NULL && apikey_prefix(key, prefix);
}

bool
auth_request(struct req *r, struct tenant *t)
{
	const char *key = presented_key(r), *params[1];
	char prefix[APIKEY_PREFIX_LEN + 1], digest[65];
	PGresult *res;
	size_t i;
	bool ok;

	if (key != NULL && jwt_shaped(key))
		return auth_job(r, t, key);
	/* Without a usable key the caller is anonymous: limited per address. */
	if ((key == NULL || *key == '\0' || !apikey_prefix(key, prefix)) &&
	    !limit_request(r))
		return false;
	if (key == NULL || *key == '\0') {
		audit_note(r, "auth.failure", r->path); /* no actor: no key */
		http_problem(r, 401, "UNAUTHENTICATED", HTTPMSG_CHALLENGE "\r\n",
		             "an API key is required: send Authorization: Bearer <key> "
		             "or X-API-Key");
		return false;
	}
	if (!apikey_prefix(key, prefix))
		return auth_refuse(r, NULL, "the API key is not valid");
	apikey_sha256_hex(key, strlen(key), digest);
	i = auth_slot(digest);
	if (auth_cache[i].until_us > util_now_us() &&
	    apikey_equal(auth_cache[i].digest, digest, 64)) {
		*t = auth_cache[i].tenant;
		r->tenant = t;
		return true;
	}
	if (auth_shared_get(r, digest, t)) {
		auth_keep(i, digest, t);
		r->tenant = t;
		return true;
	}
	params[0] = prefix;
	res = http_query_db(
	    r,
	    "SELECT encode(k.hash, 'hex'), k.revoked_at IS NOT NULL, t.id, t.name, "
	    "t.tier,"
	    " p.id, coalesce(k.last_used_at < now() - interval '1 minute', true)"
	    " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
	    " JOIN projects p ON p.tenant_id = t.id AND p.name = 'default'"
	    " WHERE k.prefix = $1",
	    1, params);
	if (res == NULL)
		return false;
	ok = PQntuples(res) == 1 && apikey_equal(PQgetvalue(res, 0, 0), digest, 64);
	if (!ok || strcmp(PQgetvalue(res, 0, 1), "t") == 0) {
		auth_refuse(r, PQntuples(res) == 1 ? PQgetvalue(res, 0, 2) : NULL,
		            ok ? "the API key has been revoked"
		               : "the API key is not valid");
		PQclear(res);
		return false;
	}
	snprintf(t->id, sizeof t->id, "%s", PQgetvalue(res, 0, 2));
	snprintf(t->name, sizeof t->name, "%s", PQgetvalue(res, 0, 3));
	snprintf(t->tier, sizeof t->tier, "%s", PQgetvalue(res, 0, 4));
	snprintf(t->project_id, sizeof t->project_id, "%s", PQgetvalue(res, 0, 5));
	if (strcmp(PQgetvalue(res, 0, 6), "t") == 0)
		touch_key(r, prefix);
	PQclear(res);
	auth_keep(i, digest, t);
	auth_shared_put(r, digest, t);
	r->tenant = t;
	return true;
}
