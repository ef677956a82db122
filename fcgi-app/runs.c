/*
 * The runs API: create (validated, idempotent), get, list (keyset pages),
 * start, cancel, result. Every query is scoped to the caller's project,
 * so another tenant's run is simply not found (404). Runs are rendered by
 * the database (assay_run_json) and events are written by its triggers;
 * these handlers never touch job_events themselves.
 */
#include "config.h"

#include <stdarg.h>
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
#include "util.h"
#include "xalloc.h"

void
runs_send(struct req *r, int status, const char *headers, const char *run_json,
          bool replay)
{
	char *members =
	    xasprintf("%s\"run\":%s", replay ? "\"idempotent\":true," : "", run_json);

	http_success(r, status, headers, members);
	free(members);
}

/* A full queue drains as runs start: seconds a client should wait. */
#define QUEUE_RETRY_AFTER  5
#define QUEUE_RETRY_HEADER "Retry-After: 5\r\n"
#define QUEUE_FULL_DETAIL                                                                \
	"%ld runs are queued (created or pending), the most this tier allows; retry "    \
	"once some have started"

void
run_item_refuse(struct run_item *it, int status, const char *code,
                struct json_object *extra, const char *fmt, ...)
{
	va_list ap;

	it->status = status;
	it->code = code;
	it->extra = extra;
	va_start(ap, fmt);
	if (vasprintf(&it->detail, fmt, ap) < 0)
		abort();
	va_end(ap);
}

void
run_item_invalid(struct run_item *it)
{
	struct json_object *extra = json_object_new_object();
	size_t n = json_object_array_length(it->errors);

	json_object_object_add(extra, "errors", json_object_get(it->errors));
	run_item_refuse(it, 422, "VALIDATION_FAILED", extra,
	                "the request has %zu invalid field%s; see errors", n,
	                n == 1 ? "" : "s");
}

void
run_item_run(struct run_item *it, int status, char *run)
{
	it->status = status;
	it->run = run;
}

void
run_item_free(struct run_item *it)
{
	json_object_put(it->errors);
	json_object_put(it->extra);
	free(it->detail);
	free(it->run);
}

/* An unknown analysis is named beside other violations; alone, the
 * creating transaction finds it. */
bool
runs_item_check(struct req *r, struct run_item *it, const char *header)
{
	const struct vvalue *v = it->v;
	int visible;

	webhooks_check_callback(r, v, it->errors);
	if (r->status != 0)
		return false; /* answered 503 */
	it->key = idempotency_key(header, v[RF_TOKEN].present ? v[RF_TOKEN].str : NULL,
	                          it->errors);
	if (v[RF_ANALYSIS].present && json_object_array_length(it->errors) > 0) {
		if ((visible = analyses_visible(r, v[RF_ANALYSIS].str)) < 0)
			return false;
		if (!visible)
			valid_error(it->errors, "/analysis_id", "no such analysis");
	}
	if (it->key != NULL)
		idempotency_hash(v, it->hash);
	return true;
}

/* The route's check of POST /runs: its body is one item. */
void
runs_check(struct req *r)
{
	struct run_item it;

	memset(&it, 0, sizeof it);
	memcpy(it.v, r->v, sizeof it.v);
	it.errors = r->errors;
	runs_item_check(r, &it, http_param(r, "HTTP_IDEMPOTENCY_KEY"));
}

/* The undecided items as assay_create_runs takes them (n: the index). */
static char *
items_json(const struct run_item *items, size_t n)
{
	struct json_object *arr = json_object_new_array(), *o;
	const struct vvalue *v;
	char *text;
	size_t i;

	for (i = 0; i < n; i++) {
		if (items[i].status != 0)
			continue;
		v = items[i].v;
		o = json_object_new_object();
		json_object_object_add(o, "n", json_object_new_int64((int64_t)i));
		json_object_object_add(o, "analysis_id",
		                       json_object_new_string(v[RF_ANALYSIS].str));
		json_object_object_add(o, "name", json_object_new_string(v[RF_NAME].str));
		if (v[RF_INPUT].present)
			json_object_object_add(o, "input",
			                       json_tokener_parse(v[RF_INPUT].str));
		json_object_object_add(o, "tags", json_tokener_parse(v[RF_TAGS].str));
		if (items[i].key != NULL)
			json_object_object_add(o, "client_token",
			                       json_object_new_string(items[i].key));
		json_object_object_add(o, "start",
		                       json_object_new_boolean(v[RF_START].num));
		json_object_object_add(o, "priority",
		                       json_object_new_int64(v[RF_PRIORITY].num));
		if (v[RF_CALLBACK].present)
			json_object_object_add(
			    o, "callback_url",
			    json_object_new_string(v[RF_CALLBACK].str));
		json_object_array_add(arr, o);
	}
	text = xstrdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return text;
}

/* The outcome of an item that assay_create_runs row i reports. */
static void
item_created(struct run_item *it, PGresult *res, int i, long max)
{
	const char *outcome = PQgetvalue(res, i, 1);
	struct json_object *extra;
	long depth;

	if (strcmp(outcome, "created") == 0) {
		snprintf(it->id, sizeof it->id, "%s", PQgetvalue(res, i, 2));
		run_item_run(it, 201, xstrdup(PQgetvalue(res, i, 3)));
	} else if (strcmp(outcome, "no_analysis") == 0) {
		if (it->errors == NULL)
			it->errors = json_object_new_array();
		valid_error(it->errors, "/analysis_id", "no such analysis");
		run_item_invalid(it);
	} else {
		depth = atol(PQgetvalue(res, i, 4));
		extra = json_object_new_object();
		json_object_object_add(extra, "queue_depth",
		                       json_object_new_int64(depth));
		json_object_object_add(extra, "max_queued", json_object_new_int64(max));
		run_item_refuse(it, 429, "QUEUE_FULL", extra, QUEUE_FULL_DETAIL, depth);
		it->retry_after = QUEUE_RETRY_AFTER;
	}
}

/* The tenant's max_queued, as an SQL parameter. */
static const char *
max_queued(struct req *r, char buf[24])
{
	snprintf(buf, 24, "%ld",
	         tier_limit(r->app->cfg, tier_index(r->tenant->tier), TF_MAX_QUEUED));
	return buf;
}

/* In the transaction: claim the keys of the undecided items. */
static bool
items_claim(struct req *r, struct run_item *items, size_t n)
{
	struct run_item **keyed = xcalloc(n, sizeof *keyed);
	size_t i, k = 0;
	bool ok;

	for (i = 0; i < n; i++)
		if (items[i].status == 0 && items[i].key != NULL)
			keyed[k++] = &items[i];
	ok = k == 0 || idempotency_claim(r, keyed, k) != IDEM_FAILED;
	free(keyed);
	return ok;
}

bool
runs_items_create(struct req *r, struct run_item *items, size_t n)
{
	const char *params[3] = {r->tenant->project_id, NULL, NULL};
	char max[24];
	PGresult *res = NULL;
	size_t i, open;
	int row;

	/* memcached may answer a lone replay without a transaction; a batch's
	 * keys are cheaper for PostgreSQL to decide together (two statements)
	 * than for memcached one by one. */
	if (n == 1 && items[0].status == 0 && items[0].key != NULL) {
		switch (idempotency_fast(r, &items[0])) {
		case IDEM_FAILED:
			return false;
		case IDEM_DECIDED:
			return true;
		case IDEM_OPEN:
			break;
		}
	}
	if (db_begin(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		return false;
	}
	if (!items_claim(r, items, n))
		return false; /* rolled back, answered 503 */
	for (open = 0, i = 0; i < n; i++)
		open += items[i].status == 0;
	if (open > 0) {
		params[1] = max_queued(r, max);
		params[2] = items_json(items, n);
		res = http_query_db(r, "SELECT * FROM assay_create_runs($1, $2, $3)", 3,
		                    params);
		free((char *)params[2]);
		if (res == NULL)
			return false;
	}
	if (db_commit(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		PQclear(res);
		return false;
	}
	for (row = 0; res != NULL && row < PQntuples(res); row++) {
		i = (size_t)atol(PQgetvalue(res, row, 0));
		item_created(&items[i], res, row, atol(max));
		if (items[i].status != 201)
			continue;
		metrics_run_created();
		if (n == 1 && items[i].key != NULL)
			idempotency_committed(r, &items[i], items[i].id);
	}
	PQclear(res);
	return true;
}

/* Answer POST /runs with its one item's outcome. */
static void
item_send(struct req *r, struct run_item *it)
{
	char *location, retry[40] = "";

	if (it->status == 201) {
		location = xasprintf("Location: /api/v1/runs/%s\r\n", it->id);
		runs_send(r, 201, location, it->run, false);
		free(location);
	} else if (it->status == 200) {
		runs_send(r, 200, NULL, it->run, true);
	} else {
		if (it->retry_after > 0)
			snprintf(retry, sizeof retry, "Retry-After: %ld\r\n",
			         it->retry_after);
		http_problem_with(r, it->status, it->code, retry[0] ? retry : NULL,
		                  it->extra, "%s", it->detail);
		it->extra = NULL;
	}
}

void
runs_create(struct req *r)
{
	struct run_item it;

	/* Valid (runs_check): no violation can be added here. */
	memset(&it, 0, sizeof it);
	memcpy(it.v, r->v, sizeof it.v);
	it.key = idempotency_key(http_param(r, "HTTP_IDEMPOTENCY_KEY"),
	                         it.v[RF_TOKEN].present ? it.v[RF_TOKEN].str : NULL,
	                         r->errors);
	if (it.key != NULL)
		idempotency_hash(it.v, it.hash);
	if (runs_items_create(r, &it, 1))
		item_send(r, &it);
	run_item_free(&it);
}

void
runs_not_found(struct req *r)
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

bool
runs_path_params(struct req *r, char days[16], const char *params[3])
{
	params[0] = r->match.params[0];
	params[1] = r->tenant->project_id;
	params[2] = history_days(r, days);
	if (httpmsg_uuid(params[0]))
		return true;
	runs_not_found(r);
	return false;
}

/* Can the run (its JSON) never change again? Completed: a failed or
 * canceled run may still be retried. */
static bool
run_final(const char *run_json)
{
	struct json_object *o = json_tokener_parse(run_json), *st;
	bool final = o != NULL && json_object_object_get_ex(o, "status", &st) &&
	             strcmp(json_object_get_string(st), "completed") == 0;

	json_object_put(o);
	return final;
}

void
runs_get(struct req *r)
{
	char days[16], name[160];
	const char *params[3];

	if (!runs_path_params(r, days, params))
		return;
	/* Runs that may change briefly (the executor forgets them when it
	 * changes them, a retry when it revives them), completed runs for long:
	 * they never change again. */
	mc_run_name(name, MC_RUN, params[0]);
	cache_answer(
	    r, name, TTL_SHORT, "run", runs_not_found, run_final,
	    "SELECT assay_run_json(j), j.status = 'completed'"
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
	PGresult *res;

	if (!httpmsg_uuid(params[0])) {
		runs_not_found(r);
		return;
	}
	if ((res = http_query_db(r, sql, 2, params)) == NULL)
		return;
	cache_forget_run(r, params[0]);
	if (PQntuples(res) == 0)
		runs_not_found(r);
	else if (PQgetisnull(res, 0, 1))
		http_problem(r, 409, "RUN_STATE_CONFLICT", NULL, "the run is %s; %s",
		             PQgetvalue(res, 0, 0), refused);
	else
		runs_send(r, ok_status, NULL, PQgetvalue(res, 0, 1), false);
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

/* A dead run (failed or canceled) gets a new set of attempts
 * (assay_retry), if its tenant's queue has room. */
void
runs_retry(struct req *r)
{
	char max[24];
	const char *params[3] = {r->match.params[0], r->tenant->project_id,
	                         max_queued(r, max)};
	struct json_object *extra;
	PGresult *res;

	if (!httpmsg_uuid(params[0])) {
		runs_not_found(r);
		return;
	}
	res = http_query_db(
	    r,
	    "WITH cur AS (SELECT id, status, tenant_id FROM analysis_jobs"
	    "  WHERE id = $1 AND project_id = $2 FOR UPDATE),"
	    " upd AS (SELECT assay_run_json(j) AS run FROM cur,"
	    "  assay_retry($2, ARRAY[cur.id], $3::int, 'api') j"
	    "  WHERE cur.status IN ('failed', 'canceled'))"
	    " SELECT cur.status, (SELECT run FROM upd), assay_queue_depth(cur.tenant_id)"
	    " FROM cur",
	    3, params);
	if (res == NULL)
		return;
	cache_forget_run(r, params[0]);
	if (PQntuples(res) == 0) {
		runs_not_found(r);
	} else if (!PQgetisnull(res, 0, 1)) {
		runs_send(r, 202, NULL, PQgetvalue(res, 0, 1), false);
	} else if (strcmp(PQgetvalue(res, 0, 0), "failed") != 0 &&
	           strcmp(PQgetvalue(res, 0, 0), "canceled") != 0) {
		http_problem(
		    r, 409, "RUN_STATE_CONFLICT", NULL,
		    "the run is %s; only a failed or canceled run can be retried",
		    PQgetvalue(res, 0, 0));
	} else {
		extra = json_object_new_object();
		json_object_object_add(
		    extra, "queue_depth",
		    json_object_new_int64(atol(PQgetvalue(res, 0, 2))));
		json_object_object_add(extra, "max_queued",
		                       json_object_new_int64(atol(max)));
		http_problem_with(r, 429, "QUEUE_FULL", QUEUE_RETRY_HEADER, extra,
		                  QUEUE_FULL_DETAIL, atol(PQgetvalue(res, 0, 2)));
	}
	PQclear(res);
}

void
runs_result(struct req *r)
{
	char days[16], name[160], *text, *members;
	const char *params[3];

	if (!runs_path_params(r, days, params))
		return;
	/* The result object once finished (then cached), else the status as a
	 * string. A result stored apart is described instead (its size, hash
	 * and attempt), and read by results_send: never cached itself. */
	mc_run_name(name, MC_RESULT, params[0]);
	switch (cache_query(
	    r, name, TTL_SHORT,
	    "SELECT CASE WHEN status IN ('completed', 'failed', 'canceled') THEN"
	    " CASE WHEN result_size IS NULL THEN"
	    "  jsonb_build_object('run_id', id, 'status', status, 'result', result,"
	    "  'error_message', error_message, 'finished_at', assay_ts(finished_at))"
	    " ELSE jsonb_build_object('stored', jsonb_build_object('run_id', id,"
	    "  'status', status, 'error_message', error_message, 'finished_at',"
	    "  assay_ts(finished_at), 'result_size', result_size, 'result_sha256',"
	    "  result_sha256, 'attempt', attempts)) END"
	    " ELSE to_jsonb(status) END, status = 'completed'"
	    " FROM analysis_jobs WHERE id = $1 AND project_id = $2" WITHIN_HISTORY(
	        "created_at", "$3"),
	    3, params, &text)) {
	case CACHE_FOUND:
		if (text[0] == '"') {
			http_problem(r, 409, "RUN_NOT_FINISHED", NULL,
			             "the run is %.*s; it has no result yet",
			             (int)strlen(text) - 2, text + 1);
		} else if (strncmp(text, "{\"stored\":", 10) == 0) {
			results_send(r, text);
		} else { /* only a finished run has one: it never changes */
			members = xasprintf("\"result\":%s", text);
			http_success_tagged(r, members, true);
			free(members);
		}
		free(text);
		break;
	case CACHE_NONE:
		runs_not_found(r);
		break;
	case CACHE_FAILED:
		break;
	}
}

/* The filters as list_query has checked them: status a JSON array, since
 * seconds since the epoch (created at or after). */
void
runs_list(struct req *r)
{
	char limit[24], days[16];
	const char *params[8] = {r->tenant->project_id, r->q[QF_STATUS].str,
	                         r->q[QF_TAG].str,      r->q[QF_ANALYSIS].str,
	                         r->q[QF_CURSOR].str,   list_fetch(r, limit),
	                         history_days(r, days), r->q[QF_SINCE].str};
	PGresult *res = http_query_db(
	    r,
	    /* The page first, then its JSON: never one per row of the project. */
	    "SELECT assay_run_json(j), assay_cursor(j.created_at, j.id) FROM"
	    " (SELECT * FROM analysis_jobs j WHERE j.project_id = $1"
	    " AND ($2::jsonb IS NULL OR"
	    "      j.status = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb))))"
	    " AND ($3::text IS NULL OR j.tags @> ARRAY[$3])"
	    " AND ($4::uuid IS NULL OR j.analysis_id = $4::uuid)"
	    " AND ($8::float8 IS NULL OR j.created_at >= to_timestamp($8::float8))"
	    " AND ($5::text IS NULL OR (j.created_at, j.id) <"
	    "      (assay_cursor_time($5), split_part($5, '_', 2)::uuid))" WITHIN_HISTORY(
	        "j.created_at",
	        "$7") " ORDER BY j.created_at DESC, j.id DESC LIMIT $6::int) j"
	              " ORDER BY j.created_at DESC, j.id DESC",
	    8, params);

	list_send(r, "runs", res);
}

/*
 * A token for following this run's events where headers cannot be sent
 * (EventSource): random, stored as its SHA-256, valid for this run only,
 * for token_ttl_seconds or until the API key that made it is revoked,
 * and accepted only by assay-stream. Expired tokens are deleted as new
 * ones are made.
 */
void
runs_events_token(struct req *r)
{
	char days[16], ttl[16], token[APIKEY_TOKEN_LEN + 1], digest[65], *members,
	    *location, prefix[APIKEY_PREFIX_LEN + 1];
	const char *params[6] = {r->match.params[0],
	                         r->tenant->project_id,
	                         history_days(r, days),
	                         digest,
	                         ttl,
	                         prefix};
	PGresult *res;

	if (!auth_key_prefix(r, prefix) || !httpmsg_uuid(params[0])) {
		runs_not_found(r);
		return;
	}
	if (!apikey_token_generate(token)) {
		http_problem(r, 503, "NO_RANDOMNESS", "Retry-After: 1\r\n",
		             "no random bytes available; try again");
		return;
	}
	apikey_sha256_hex(token, strlen(token), digest);
	snprintf(ttl, sizeof ttl, "%ld", cfg_int(r->app->cfg, STREAM_TOKEN_TTL));
	res = http_query_db(
	    r,
	    "WITH j AS (SELECT id FROM analysis_jobs WHERE id = $1 AND project_id = "
	    "$2" WITHIN_HISTORY(
	        "created_at",
	        "$3") "),"
	              " gone AS (DELETE FROM stream_tokens WHERE expires_at < now()),"
	              " t AS (INSERT INTO stream_tokens (token_hash, job_id, expires_at,"
	              "  api_key_id)"
	              "  SELECT decode($4, 'hex'), id, now() + $5::int * interval '1 "
	              "second', (SELECT id FROM api_keys WHERE prefix = $6) FROM j"
	              "  RETURNING expires_at)"
	              " SELECT assay_ts(expires_at) FROM t",
	    6, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 1) {
		members =
		    xasprintf("\"token\":\"%s\",\"run_id\":\"%s\",\"expires_at\":\"%s\","
		              "\"events_url\":\"/api/v1/runs/%s/events?token=%s\"",
		              token, params[0], PQgetvalue(res, 0, 0), params[0], token);
		location = xasprintf("Location: /api/v1/runs/%s/events?token=%s\r\n",
		                     params[0], token);
		http_success(r, 201, location, members);
		free(members);
		free(location);
	} else {
		runs_not_found(r);
	}
	PQclear(res);
}
