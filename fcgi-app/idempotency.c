/*
 * Idempotent run creation: the Idempotency-Key header or client_token
 * names a request; the same key with the same request (by the SHA-256 of
 * its canonical form) replays the run it made, with another request it is
 * refused (422), for idempotency_ttl_ms. PostgreSQL is authoritative and
 * guarantees one run per key under any interleaving: a request claims its
 * key by inserting it (the primary key makes concurrent claims of one key
 * wait for each other) before it inserts the run, in one transaction.
 * memcached remembers keys PostgreSQL has committed, so that replays and
 * refusals are answered without a transaction. Never creates a run itself.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "apikey.h"
#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "mc.h"
#include "xalloc.h"

const char *
idempotency_key(const char *header, const char *token, struct json_object *errors)
{
	struct json_object *obj, *mine, *detail = NULL;
	struct vvalue hv;
	size_t n;

	if (header == NULL)
		return token;
	/* Checked as client_token is; one error, saying it is the header. */
	obj = json_object_new_object();
	json_object_object_add(obj, "client_token", json_object_new_string(header));
	mine = json_object_new_array();
	n = valid_check(obj, &run_fields[RF_TOKEN], 1, true, &hv, mine);
	json_object_put(obj);
	if (n > 0) {
		json_object_object_get_ex(json_object_array_get_idx(mine, 0), "detail",
		                          &detail);
		valid_error(errors, "/client_token", "(the Idempotency-Key header) %s",
		            json_object_get_string(detail));
	}
	json_object_put(mine);
	if (n > 0)
		return NULL;
	if (token != NULL && strcmp(token, header) != 0) {
		valid_error(errors, "/client_token",
		            "differs from the Idempotency-Key header");
		return NULL;
	}
	return header;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A copy of obj whose objects, at every depth, list their members sorted
 * by name (the caller owns it). */
static struct json_object *
canonical(struct json_object *obj)
{
	struct json_object *out;
	const char **names;
	size_t i, n;

	switch (json_object_get_type(obj)) {
	case json_type_object:
		n = (size_t)json_object_object_length(obj);
		names = xcalloc(n + 1, sizeof *names);
		i = 0;
		json_object_object_foreach(obj, name, member)
		{
			(void)member;
			names[i++] = name;
		}
		qsort(names, n, sizeof *names, by_name);
		out = json_object_new_object();
		for (i = 0; i < n; i++)
			json_object_object_add(
			    out, names[i],
			    canonical(json_object_object_get(obj, names[i])));
		free(names);
		return out;
	case json_type_array:
		n = json_object_array_length(obj);
		out = json_object_new_array_ext((int)n);
		for (i = 0; i < n; i++)
			json_object_array_add(
			    out, canonical(json_object_array_get_idx(obj, i)));
		return out;
	default:
		return json_object_get(obj);
	}
}

/* SHA-256 of the request as validated: members in table order, input in
 * canonical form, so that reordered members make the same request. */
void
idempotency_hash(const struct vvalue *v, char hex[65])
{
	struct json_object *o = json_object_new_object(), *input, *c;
	const char *text;
	size_t i;

	for (i = 0; i < RF__MAX; i++) {
		if (i == RF_TOKEN || !v[i].present)
			continue;
		if (i == RF_INPUT && (input = json_tokener_parse(v[i].str)) != NULL) {
			c = canonical(input);
			json_object_object_add(
			    o, run_fields[i].name,
			    json_object_new_string(json_object_to_json_string_ext(
			        c, JSON_C_TO_STRING_PLAIN)));
			json_object_put(c);
			json_object_put(input);
			continue;
		}
		json_object_object_add(o, run_fields[i].name,
		                       json_object_new_string(v[i].str));
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	apikey_sha256_hex(text, strlen(text), hex);
	json_object_put(o);
}

static void
key_reused(struct run_item *it)
{
	struct json_object *extra = json_object_new_object(),
	                   *errors = json_object_new_array();

	valid_error(errors, "/client_token",
	            "was already used with a different request; use a new key");
	json_object_object_add(extra, "errors", errors);
	run_item_refuse(it, 422, "IDEMPOTENCY_KEY_REUSED", extra,
	                "this idempotency key was already used with a different request");
}

/*
 * The fast path of idempotency: memcached remembers "<request hash> <run
 * id> <expiry, ms since the epoch>" for each key once PostgreSQL (which
 * stays authoritative) has it; the expiry is PostgreSQL's.
 */
static void
remember(struct req *r, const char *key, const char *hash, const char *run,
         long long expires_ms)
{
	char mkey[MC_KEY_MAX], name[200], value[140];
	long long ttl = expires_ms / 1000 - (long long)time(NULL) + 1;

	if (ttl < 1)
		return;
	snprintf(name, sizeof name, "idem:%s", key);
	mc_key(mkey, r->tenant->project_id, name);
	snprintf(value, sizeof value, "%s %s %lld", hash, run, expires_ms);
	/* memcached reads more than 30 days as a date: keep it a duration. */
	mc_add(r->app->mc, mkey, value, strlen(value),
	       (unsigned)(ttl > 2592000 ? 2592000 : ttl));
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum idem_rc
idempotency_fast(struct req *r, struct run_item *it)
{
	char mkey[MC_KEY_MAX], name[200], *val, *text;
	const char *params[2];
	enum idem_rc rc = IDEM_OPEN;
	size_t len;

	snprintf(name, sizeof name, "idem:%s", it->key);
	mc_key(mkey, r->tenant->project_id, name);
	if (mc_get(r->app->mc, mkey, &val, &len) != MC_OK)
		return IDEM_OPEN;
	if (len < 103 || val[64] != ' ' || val[101] != ' ' ||
	    strtoll(val + 102, NULL, 10) <= now_ms()) {
		free(val); /* not ours, or expired: PostgreSQL decides */
		return IDEM_OPEN;
	}
	val[101] = '\0';
	if (!httpmsg_uuid(val + 65)) {
		free(val);
		return IDEM_OPEN;
	}
	if (strncmp(val, it->hash, 64) != 0) {
		free(val);
		key_reused(it);
		return IDEM_DECIDED;
	}
	params[0] = val + 65;
	params[1] = r->tenant->project_id;
	mc_run_name(name, MC_RUN, val + 65);
	switch (cache_query(r, name, TTL_SHORT,
	                    "SELECT assay_run_json(j), j.status IN ('completed', "
	                    "'failed', 'canceled')"
	                    " FROM analysis_jobs j WHERE j.id = $1 AND j.project_id = $2",
	                    2, params, &text)) {
	case CACHE_FOUND:
		run_item_run(it, 200, text);
		rc = IDEM_DECIDED;
		break;
	case CACHE_FAILED:
		rc = IDEM_FAILED; /* answered 503 */
		break;
	case CACHE_NONE:
		break; /* the run is gone (pruned): PostgreSQL decides */
	}
	free(val);
	return rc;
}

/* "{a,b}" of the items' keys or hashes: a PostgreSQL text array (keys are
 * [A-Za-z0-9_-], hashes hex: nothing to quote). The caller frees it. */
static char *
items_array(struct run_item **items, size_t n, bool hashes)
{
	size_t i, len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	fputc('{', f);
	for (i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", hashes ? items[i]->hash : items[i]->key);
	fputc('}', f);
	fclose(f);
	return buf;
}

/* The item whose key is key (they are unique), or NULL. */
static struct run_item *
item_of(struct run_item **items, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(items[i]->key, key) == 0)
			return items[i];
	return NULL;
}

/* The items whose keys were not claimed: each committed key (this
 * statement sees them all) replays its run or is refused as reused; one
 * without its run is still being processed. */
static enum idem_rc
claim_decide(struct req *r, struct run_item **items, size_t n, const char *keys)
{
	const char *params[2] = {r->tenant->id, keys};
	struct run_item *it;
	PGresult *res;
	size_t i;
	int row;

	res = http_query_db(
	    r,
	    "SELECT k.key, encode(k.request_hash, 'hex'), assay_run_json(j), j.id,"
	    " (extract(epoch FROM k.expires_at) * 1000)::bigint"
	    " FROM idempotency_keys k JOIN analysis_jobs j ON j.id = k.job_id"
	    " WHERE k.tenant_id = $1 AND k.key = ANY ($2::text[])",
	    2, params);
	if (res == NULL)
		return IDEM_FAILED;
	for (row = 0; row < PQntuples(res); row++) {
		if ((it = item_of(items, n, PQgetvalue(res, row, 0))) == NULL)
			continue;
		if (strcmp(PQgetvalue(res, row, 1), it->hash) != 0) {
			key_reused(it);
			continue;
		}
		run_item_run(it, 200, xstrdup(PQgetvalue(res, row, 2)));
		remember(r, it->key, it->hash, PQgetvalue(res, row, 3),
		         atoll(PQgetvalue(res, row, 4)));
	}
	PQclear(res);
	for (i = 0; i < n; i++)
		if (items[i]->status == 0)
			run_item_refuse(items[i], 409, "IDEMPOTENCY_IN_PROGRESS", NULL,
			                "a request with this idempotency key is still "
			                "being processed; retry");
	return IDEM_DECIDED;
}

enum idem_rc
idempotency_claim(struct req *r, struct run_item **items, size_t n)
{
	char ttl[24], *keys = items_array(items, n, false),
	              *hashes = items_array(items, n, true);
	const char *params[4] = {r->tenant->id, keys, hashes, ttl};
	struct run_item *it, **taken = xcalloc(n, sizeof *taken);
	enum idem_rc rc = IDEM_OPEN;
	size_t i, k = 0;
	PGresult *res;
	int row;

	snprintf(ttl, sizeof ttl, "%ld", cfg_int(r->app->cfg, API_IDEMP_TTL_MS));
	/* A live key of a committed request conflicts and is left alone; one
	 * of a request still in flight makes this wait for its end; an
	 * expired one is taken over. In the keys' order, so that two requests
	 * sharing keys wait for each other rather than deadlock. */
	res = http_query_db(r,
	                    "INSERT INTO idempotency_keys (tenant_id, key, request_hash,"
	                    " expires_at) SELECT $1, x.key, decode(x.hash, 'hex'),"
	                    " now() + $4::bigint * interval '1 millisecond'"
	                    " FROM unnest($2::text[], $3::text[]) AS x(key, hash)"
	                    " ORDER BY x.key"
	                    " ON CONFLICT (tenant_id, key) DO UPDATE SET"
	                    " request_hash = EXCLUDED.request_hash, job_id = NULL,"
	                    " created_at = now(), expires_at = EXCLUDED.expires_at"
	                    " WHERE idempotency_keys.expires_at <= now()"
	                    " RETURNING key",
	                    4, params);
	if (res == NULL) {
		rc = IDEM_FAILED;
		goto out;
	}
	for (row = 0; row < PQntuples(res); row++)
		if ((it = item_of(items, n, PQgetvalue(res, row, 0))) != NULL)
			it->claimed = true;
	PQclear(res);
	for (i = 0; i < n; i++)
		if (!items[i]->claimed)
			taken[k++] = items[i];
	if (k > 0) {
		free(keys);
		keys = items_array(taken, k, false);
		rc = claim_decide(r, taken, k, keys);
	}
out:
	free(taken);
	free(keys);
	free(hashes);
	return rc;
}

void
idempotency_committed(struct req *r, const struct run_item *it, const char *run)
{
	remember(r, it->key, it->hash, run,
	         now_ms() + cfg_int(r->app->cfg, API_IDEMP_TTL_MS));
}
