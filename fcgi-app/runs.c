/*
 * The runs API: create (validated, idempotent), get, list (keyset pages),
 * start, cancel, result. Every query is scoped to the caller's project,
 * so another tenant's run is simply not found (404). Runs are rendered by
 * the database (assay_run_json) and events are written by its triggers;
 * these handlers never touch job_events themselves.
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
#include "mc.h"
#include "util.h"
#include "xalloc.h"

static const char *const statuses[] = {"created", "pending",  "running", "completed",
                                       "failed",  "canceled", NULL};

static void
send_run(struct req *r, int status, const char *headers, const char *run_json,
         bool replay)
{
	char *members =
	    xasprintf("%s\"run\":%s", replay ? "\"idempotent\":true," : "", run_json);

	http_success(r, status, headers, members);
	free(members);
}

/* The idempotency key: the Idempotency-Key header or client_token, which must agree. */
static const char *
idempotency_key(struct req *r, const struct vvalue *v, struct json_object *errors)
{
	const char *h = http_param(r, "HTTP_IDEMPOTENCY_KEY");
	struct json_object *obj;
	struct vvalue hv;
	size_t n;

	if (h == NULL)
		return v[RF_TOKEN].present ? v[RF_TOKEN].str : NULL;
	obj = json_object_new_object();
	json_object_object_add(obj, "client_token", json_object_new_string(h));
	n = valid_check(obj, &run_fields[RF_TOKEN], 1, true, &hv, errors);
	json_object_put(obj);
	if (n > 0) {
		valid_error(errors, "/client_token",
		            "(the Idempotency-Key header) is not valid");
		return NULL;
	}
	if (v[RF_TOKEN].present && strcmp(v[RF_TOKEN].str, h) != 0) {
		valid_error(errors, "/client_token",
		            "differs from the Idempotency-Key header");
		return NULL;
	}
	return h;
}

/* SHA-256 of the request as validated, members in table order. */
static void
request_hash(const struct vvalue *v, char hex[65])
{
	struct json_object *o = json_object_new_object();
	const char *text;
	size_t i;

	for (i = 0; i < RF__MAX; i++)
		if (i != RF_TOKEN && v[i].present)
			json_object_object_add(o, run_fields[i].name,
			                       json_object_new_string(v[i].str));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	apikey_sha256_hex(text, strlen(text), hex);
	json_object_put(o);
}

/* Does the caller's project have this active analysis? -1 after answering 503. */
static int
analysis_visible(struct req *r, const char *id)
{
	const char *params[2] = {id, r->tenant->project_id};
	PGresult *res =
	    http_query_db(r,
	                  "SELECT 1 FROM analyses WHERE id = $1 AND project_id = $2 "
	                  "AND is_active",
	                  2, params);
	int found;

	if (res == NULL)
		return -1;
	found = PQntuples(res) == 1;
	PQclear(res);
	return found;
}

static void
key_reused(struct req *r)
{
	struct json_object *extra = json_object_new_object(),
	                   *errors = json_object_new_array();

	valid_error(errors, "/client_token",
	            "was already used with a different request; use a new key");
	json_object_object_add(extra, "errors", errors);
	http_problem_with(
	    r, 422, "IDEMPOTENCY_KEY_REUSED", NULL, extra,
	    "this idempotency key was already used with a different request");
}

/*
 * The fast path of idempotency: memcached remembers "<request hash> <run
 * id> <expiry, ms since the epoch>" for each key once PostgreSQL (which
 * stays authoritative) has it; the expiry is PostgreSQL's.
 */
static void
idempotent_remember(struct req *r, const char *key, const char *hash, const char *run,
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

/* A replay or a refusal answered from memcached alone; false: ask PostgreSQL. */
static bool
idempotent_fast(struct req *r, const char *key, const char *hash)
{
	char mkey[MC_KEY_MAX], name[200], *val, *text;
	const char *params[2];
	size_t len;

	snprintf(name, sizeof name, "idem:%s", key);
	mc_key(mkey, r->tenant->project_id, name);
	if (mc_get(r->app->mc, mkey, &val, &len) != MC_OK)
		return false;
	if (len < 103 || val[64] != ' ' || val[101] != ' ' ||
	    strtoll(val + 102, NULL, 10) <= now_ms()) {
		free(val); /* not ours, or expired: PostgreSQL decides */
		return false;
	}
	val[101] = '\0';
	if (!valid_uuid(val + 65)) {
		free(val);
		return false;
	}
	if (strncmp(val, hash, 64) != 0) {
		free(val);
		key_reused(r);
		return true;
	}
	params[0] = val + 65;
	params[1] = r->tenant->project_id;
	snprintf(name, sizeof name, "run:%s", val + 65);
	switch (cache_query(r, name, TTL_SHORT,
	                    "SELECT assay_run_json(j), j.status IN ('completed', "
	                    "'failed', 'canceled')"
	                    " FROM analysis_jobs j WHERE j.id = $1 AND j.project_id = $2",
	                    2, params, &text)) {
	case CACHE_FOUND:
		send_run(r, 200, NULL, text, true);
		free(text);
		free(val);
		return true;
	case CACHE_FAILED:
		free(val);
		return true; /* answered 503 */
	case CACHE_NONE:
		break;
	}
	free(val);
	return false; /* the run is gone (pruned): PostgreSQL decides */
}

/*
 * Within the open transaction: replay or refuse a known key. Returns true
 * when the request was answered (replayed, 409 or 422).
 */
static bool
idempotent_replay(struct req *r, const char *key, const char *hash)
{
	const char *params[2] = {r->tenant->id, key};
	PGresult *res;

	/* Concurrent requests with one key: the first holds the lock, the others get 409.
	 */
	res = http_query_db(
	    r,
	    "SELECT pg_try_advisory_xact_lock($1::int, hashtext($2)),"
	    " encode(k.request_hash, 'hex'), assay_run_json(j), j.id,"
	    " (extract(epoch FROM k.expires_at) * 1000)::bigint"
	    " FROM (SELECT) AS one"
	    " LEFT JOIN idempotency_keys k ON k.tenant_id = $1 AND k.key = $2"
	    "  AND k.expires_at > now()"
	    " LEFT JOIN analysis_jobs j ON j.id = k.job_id",
	    2, params);
	if (res == NULL)
		return true;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		db_rollback(r->app->db);
		http_problem(r, 409, "IDEMPOTENCY_IN_PROGRESS", "Retry-After: 1\r\n",
		             "a request with this idempotency key is still being "
		             "processed; retry");
		return true;
	}
	if (PQgetisnull(res, 0, 1)) { /* no live key */
		PQclear(res);
		return false;
	}
	db_rollback(r->app->db);
	if (strcmp(PQgetvalue(res, 0, 1), hash) == 0) {
		send_run(r, 200, NULL, PQgetvalue(res, 0, 2), true);
		idempotent_remember(r, key, hash, PQgetvalue(res, 0, 3),
		                    atoll(PQgetvalue(res, 0, 4)));
	} else {
		key_reused(r);
	}
	PQclear(res);
	return true;
}

void
runs_create(struct req *r)
{
	struct json_object *body, *errors;
	struct vvalue v[RF__MAX];
	const char *key, *params[11];
	char hash[65], ttl[24], *location;
	PGresult *res;
	int visible;

	if ((body = body_json(r)) == NULL)
		return;
	run_fields[RF_INPUT].max = cfg_int(r->app->cfg, API_INPUT_STRING_MAX);
	errors = json_object_new_array();
	valid_check(body, run_fields, RF__MAX, false, v, errors);
	key = idempotency_key(r, v, errors);
	/* Alone, an unknown analysis is found by the INSERT below; with other
	 * violations it is looked up now, so that the 422 lists them all. */
	if (v[RF_ANALYSIS].present && json_object_array_length(errors) > 0) {
		if ((visible = analysis_visible(r, v[RF_ANALYSIS].str)) < 0)
			goto out;
		if (!visible)
			valid_error(errors, "/analysis_id", "no such analysis");
	}
	if (json_object_array_length(errors) > 0) {
		body_invalid(r, errors);
		errors = NULL;
		goto out;
	}
	request_hash(v, hash);
	if (key != NULL && idempotent_fast(r, key, hash))
		goto out;
	if (db_begin(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		goto out;
	}
	if (key != NULL && idempotent_replay(r, key, hash))
		goto out;

	params[0] = r->tenant->project_id;
	params[1] = v[RF_ANALYSIS].str;
	params[2] = v[RF_NAME].str;
	params[3] = v[RF_INPUT].present ? v[RF_INPUT].str : NULL;
	params[4] = v[RF_TAGS].str;
	params[5] = key;
	params[6] = v[RF_START].str;
	params[7] = v[RF_PRIORITY].str;
	params[8] = v[RF_CALLBACK].present ? v[RF_CALLBACK].str : NULL;
	res = http_query_db(
	    r,
	    "INSERT INTO analysis_jobs (project_id, analysis_id, analysis_version, name,"
	    " input, tags, client_token, status, priority, max_attempts, callback_url)"
	    " SELECT $1, a.id, a.version, $3, $4::jsonb,"
	    " ARRAY(SELECT jsonb_array_elements_text($5::jsonb)), $6,"
	    " CASE WHEN $7::bool THEN 'pending' ELSE 'created' END, $8::int,"
	    " a.max_attempts, $9"
	    " FROM analyses a WHERE a.id = $2 AND a.project_id = $1 AND a.is_active"
	    " RETURNING id, assay_run_json(analysis_jobs)",
	    9, params);
	if (res == NULL)
		goto out;
	if (PQntuples(res) == 0) { /* deleted since we looked */
		PQclear(res);
		db_rollback(r->app->db);
		errors = json_object_new_array();
		valid_error(errors, "/analysis_id", "no such analysis");
		body_invalid(r, errors);
		errors = NULL;
		goto out;
	}
	if (key != NULL) {
		PGresult *ires;
		const char *ip[5] = {r->tenant->id, key, hash, PQgetvalue(res, 0, 0),
		                     ttl};

		snprintf(ttl, sizeof ttl, "%ld", cfg_int(r->app->cfg, API_IDEMP_TTL_MS));
		/* Expired keys are pruned as we go: a small batch per keyed create.
		 * An expired row for this very key is replaced by the upsert. */
		ires = http_query_db(
		    r,
		    "WITH pruned AS (DELETE FROM idempotency_keys WHERE ctid IN"
		    "  (SELECT ctid FROM idempotency_keys WHERE expires_at < now()"
		    "   AND NOT (tenant_id = $1 AND key = $2) LIMIT 100))"
		    " INSERT INTO idempotency_keys (tenant_id, key, request_hash, job_id,"
		    " expires_at) VALUES ($1, $2, decode($3, 'hex'), $4,"
		    " now() + $5::bigint * interval '1 millisecond')"
		    " ON CONFLICT (tenant_id, key) DO UPDATE SET"
		    " request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id,"
		    " created_at = now(), expires_at = EXCLUDED.expires_at",
		    5, ip);
		if (ires == NULL) {
			PQclear(res);
			goto out;
		}
		PQclear(ires);
	}
	if (db_commit(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		PQclear(res);
		goto out;
	}
	location = xasprintf("Location: /api/v1/runs/%s\r\n", PQgetvalue(res, 0, 0));
	send_run(r, 201, location, PQgetvalue(res, 0, 1), false);
	if (key != NULL)
		idempotent_remember(r, key, hash, PQgetvalue(res, 0, 0),
		                    now_ms() + cfg_int(r->app->cfg, API_IDEMP_TTL_MS));
	free(location);
	PQclear(res);
out:
	json_object_put(errors);
	json_object_put(body);
}

static void
run_not_found(struct req *r)
{
	http_problem(r, 404, "RUN_NOT_FOUND", NULL, "no run %s", r->match.params[0]);
}

/* The caller's tier's history, in days (0: all), as an SQL parameter. */
static const char *
history_days(struct req *r, char buf[16])
{
	snprintf(buf, 16, "%ld",
	         tier_limit(r->app->cfg, tier_index(r->tenant->tier), TF_HISTORY));
	return buf;
}

#define WITHIN_HISTORY(col, param)                                                       \
	" AND (" param "::int = 0 OR " col " > now() - make_interval(days => " param     \
	"::int))"

void
runs_get(struct req *r)
{
	char days[16], name[160];
	const char *params[3] = {r->match.params[0], r->tenant->project_id,
	                         history_days(r, days)};

	if (!valid_uuid(params[0])) {
		run_not_found(r);
		return;
	}
	/* Runs in progress briefly (the executor forgets them when it changes
	 * them), finished runs for long: they never change again. */
	snprintf(name, sizeof name, "run:%s", params[0]);
	cache_answer(
	    r, name, TTL_SHORT, "run", run_not_found,
	    "SELECT assay_run_json(j), j.status IN ('completed', 'failed', "
	    "'canceled')"
	    " FROM analysis_jobs j WHERE j.id = $1 AND j.project_id = $2" WITHIN_HISTORY(
	        "j.created_at", "$3"),
	    3, params);
}

/*
 * A state change on one run: sql takes $1 run id and $2 project id and
 * returns (status before, run json or NULL when the change did not apply).
 */
static void
run_transition(struct req *r, const char *sql, int ok_status, const char *refused)
{
	const char *params[2] = {r->match.params[0], r->tenant->project_id};
	char name[64];
	PGresult *res;

	if (!valid_uuid(params[0])) {
		run_not_found(r);
		return;
	}
	if ((res = http_query_db(r, sql, 2, params)) == NULL)
		return;
	snprintf(name, sizeof name, "run:%s", params[0]);
	cache_forget(r, name);
	snprintf(name, sizeof name, "result:%s", params[0]);
	cache_forget(r, name);
	if (PQntuples(res) == 0)
		run_not_found(r);
	else if (PQgetisnull(res, 0, 1))
		http_problem(r, 409, "RUN_STATE_CONFLICT", NULL, "the run is %s; %s",
		             PQgetvalue(res, 0, 0), refused);
	else
		send_run(r, ok_status, NULL, PQgetvalue(res, 0, 1), false);
	PQclear(res);
}

void
runs_start(struct req *r)
{
	run_transition(
	    r,
	    "WITH cur AS (SELECT id, status FROM analysis_jobs"
	    "  WHERE id = $1 AND project_id = $2 FOR UPDATE),"
	    " upd AS (UPDATE analysis_jobs j SET status = 'pending', run_after = now()"
	    "  FROM cur WHERE j.id = cur.id AND cur.status = 'created'"
	    "  RETURNING assay_run_json(j) AS run)"
	    " SELECT cur.status, (SELECT run FROM upd) FROM cur",
	    200, "only a created run can be started");
}

void
runs_cancel(struct req *r)
{
	/* Not yet running: canceled at once. Running: the executor is told (trigger). */
	run_transition(
	    r,
	    "WITH cur AS (SELECT id, status, status IN ('created', 'pending') AS idle"
	    "  FROM analysis_jobs WHERE id = $1 AND project_id = $2 FOR UPDATE),"
	    " upd AS (UPDATE analysis_jobs j SET"
	    "  status = CASE WHEN cur.idle THEN 'canceled' ELSE j.status END,"
	    "  cancel_requested_at = coalesce(j.cancel_requested_at, now()),"
	    "  finished_at = CASE WHEN cur.idle THEN now() ELSE j.finished_at END,"
	    "  error_message = CASE WHEN cur.idle THEN 'canceled' ELSE j.error_message "
	    "END"
	    "  FROM cur WHERE j.id = cur.id AND cur.status IN ('created', 'pending', "
	    "'running')"
	    "  RETURNING assay_run_json(j) AS run)"
	    " SELECT cur.status, (SELECT run FROM upd) FROM cur",
	    202, "a finished run cannot be canceled");
}

void
runs_result(struct req *r)
{
	char days[16], name[160], *text, *members;
	const char *params[3] = {r->match.params[0], r->tenant->project_id,
	                         history_days(r, days)};

	if (!valid_uuid(params[0])) {
		run_not_found(r);
		return;
	}
	/* The result object once finished (then cached), else the status as a string. */
	snprintf(name, sizeof name, "result:%s", params[0]);
	switch (cache_query(
	    r, name, TTL_SHORT,
	    "SELECT CASE WHEN status IN ('completed', 'failed', 'canceled') THEN"
	    " jsonb_build_object('run_id', id, 'status', status, 'result', result,"
	    " 'error_message', error_message, 'finished_at', assay_ts(finished_at))"
	    " ELSE to_jsonb(status) END, status IN ('completed', 'failed', 'canceled')"
	    " FROM analysis_jobs WHERE id = $1 AND project_id = $2" WITHIN_HISTORY(
	        "created_at", "$3"),
	    3, params, &text)) {
	case CACHE_FOUND:
		if (text[0] == '"') {
			http_problem(r, 409, "RUN_NOT_FINISHED", NULL,
			             "the run is %.*s; it has no result yet",
			             (int)strlen(text) - 2, text + 1);
		} else {
			members = xasprintf("\"result\":%s", text);
			http_success(r, 200, NULL, members);
			free(members);
		}
		free(text);
		break;
	case CACHE_NONE:
		run_not_found(r);
		break;
	case CACHE_FAILED:
		break;
	}
}

/* Parse ?limit= and ?cursor= for keyset listings; false after answering 400. */
bool
list_page(struct req *r, char limit[8], char cursor[128])
{
	char *end;
	long n = 20;

	if (http_query(r, "limit", limit, 8)) {
		n = strtol(limit, &end, 10);
		if (*end != '\0' || n < 1 || n > 100) {
			http_problem(r, 400, "INVALID_PARAMETER", NULL,
			             "limit must be 1 to 100");
			return false;
		}
	}
	snprintf(limit, 8, "%ld", n + 1); /* one more tells whether a next page exists */
	if (!http_query(r, "cursor", cursor, 128)) {
		cursor[0] = '\0';
	} else if (strspn(cursor, "0123456789") == 0 ||
	           cursor[strspn(cursor, "0123456789")] != '_' ||
	           !valid_uuid(cursor + strspn(cursor, "0123456789") + 1)) {
		http_problem(r, 400, "INVALID_PARAMETER", NULL,
		             "cursor is not one this API returned");
		return false;
	}
	return true;
}

/* Send {"success":true,"<name>":[rows' column 0],"next_cursor":...}; column 1 is the
 * cursor. */
void
list_send(struct req *r, const char *name, PGresult *res, long limit)
{
	int n = PQntuples(res), i, shown = n > limit ? (int)limit : n;
	size_t len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	fprintf(f, "\"%s\":[", name);
	for (i = 0; i < shown; i++)
		fprintf(f, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
	if (n > limit)
		fprintf(f, "],\"next_cursor\":\"%s\"", PQgetvalue(res, shown - 1, 1));
	else
		fprintf(f, "],\"next_cursor\":null");
	fclose(f);
	http_success(r, 200, NULL, buf);
	free(buf);
}

void
runs_list(struct req *r)
{
	char limit[8], cursor[128], status[16], tag[80], analysis[40], days[16];
	const char *params[7];
	PGresult *res;
	size_t i;

	if (!list_page(r, limit, cursor))
		return;
	params[0] = r->tenant->project_id;
	params[1] = http_query(r, "status", status, sizeof status) ? status : NULL;
	params[2] = http_query(r, "tag", tag, sizeof tag) ? tag : NULL;
	params[3] =
	    http_query(r, "analysis_id", analysis, sizeof analysis) ? analysis : NULL;
	params[4] = cursor[0] ? cursor : NULL;
	params[5] = limit;
	params[6] = history_days(r, days);
	for (i = 0;
	     params[1] != NULL && statuses[i] != NULL && strcmp(statuses[i], status); i++)
		;
	if (params[1] != NULL && statuses[i] == NULL) {
		http_problem(r, 400, "INVALID_PARAMETER", NULL,
		             "status must be created, pending, running, completed, "
		             "failed or canceled");
		return;
	}
	if (params[3] != NULL && !valid_uuid(analysis)) {
		http_problem(r, 400, "INVALID_PARAMETER", NULL,
		             "analysis_id must be a UUID");
		return;
	}
	res = http_query_db(
	    r,
	    "SELECT assay_run_json(j), assay_cursor(j.created_at, j.id)"
	    " FROM analysis_jobs j WHERE j.project_id = $1"
	    " AND ($2::text IS NULL OR j.status = $2)"
	    " AND ($3::text IS NULL OR j.tags @> ARRAY[$3])"
	    " AND ($4::uuid IS NULL OR j.analysis_id = $4::uuid)"
	    " AND ($5::text IS NULL OR (j.created_at, j.id) <"
	    "      (assay_cursor_time($5), split_part($5, '_', 2)::uuid))" WITHIN_HISTORY(
	        "j.created_at",
	        "$7") " ORDER BY j.created_at DESC, j.id DESC LIMIT $6::int",
	    7, params);
	if (res == NULL)
		return;
	list_send(r, "runs", res, atol(limit) - 1);
	PQclear(res);
}

/*
 * A token for following this run's events where headers cannot be sent
 * (EventSource): random, stored as its SHA-256, valid for this run only,
 * for token_ttl_seconds, and accepted only by assay-stream. Expired
 * tokens are deleted as new ones are made.
 */
void
runs_events_token(struct req *r)
{
	char days[16], ttl[16], hex[49], token[56], digest[65], *members;
	const char *params[5] = {r->match.params[0], r->tenant->project_id,
	                         history_days(r, days), digest, ttl};
	PGresult *res;

	if (!valid_uuid(params[0])) {
		run_not_found(r);
		return;
	}
	if (!util_random_hex(hex, 24)) {
		http_problem(r, 503, "NO_RANDOMNESS", "Retry-After: 1\r\n",
		             "no random bytes available; try again");
		return;
	}
	snprintf(token, sizeof token, "sse_%s", hex);
	apikey_sha256_hex(token, strlen(token), digest);
	snprintf(ttl, sizeof ttl, "%ld", cfg_int(r->app->cfg, STREAM_TOKEN_TTL));
	res = http_query_db(
	    r,
	    "WITH j AS (SELECT id FROM analysis_jobs WHERE id = $1 AND project_id = "
	    "$2" WITHIN_HISTORY(
	        "created_at",
	        "$3") "),"
	              " gone AS (DELETE FROM stream_tokens WHERE expires_at < now()),"
	              " t AS (INSERT INTO stream_tokens (token_hash, job_id, expires_at)"
	              "  SELECT decode($4, 'hex'), id, now() + $5::int * interval '1 "
	              "second' FROM j"
	              "  RETURNING expires_at)"
	              " SELECT assay_ts(expires_at) FROM t",
	    5, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 1) {
		members =
		    xasprintf("\"token\":\"%s\",\"run_id\":\"%s\",\"expires_at\":\"%s\","
		              "\"events_url\":\"/api/v1/runs/%s/events?token=%s\"",
		              token, params[0], PQgetvalue(res, 0, 0), params[0], token);
		http_success(r, 201, NULL, members);
		free(members);
	} else {
		run_not_found(r);
	}
	PQclear(res);
}
