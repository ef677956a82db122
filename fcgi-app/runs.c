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

/* The route's own check of a body: the callback_url may be reached, the
 * idempotency key's two spellings agree; with other violations, an
 * unknown analysis is named too (alone, the INSERT finds it), so that the
 * 422 lists them all. */
void
runs_check(struct req *r)
{
	int visible;

	webhooks_check_callback(r);
	if (r->status != 0)
		return; /* answered 503 */
	idempotency_key(r, r->v[RF_TOKEN].present ? r->v[RF_TOKEN].str : NULL, r->errors);
	if (r->v[RF_ANALYSIS].present && json_object_array_length(r->errors) > 0) {
		if ((visible = analyses_visible(r, r->v[RF_ANALYSIS].str)) < 0)
			return; /* answered 503 */
		if (!visible)
			valid_error(r->errors, "/analysis_id", "no such analysis");
	}
}

void
runs_create(struct req *r)
{
	struct json_object *errors;
	const struct vvalue *v = r->v;
	const char *key, *params[11];
	char hash[65], *location;
	PGresult *res;

	/* Valid (runs_check): no violation can be added here. */
	key = idempotency_key(r, v[RF_TOKEN].present ? v[RF_TOKEN].str : NULL, r->errors);
	idempotency_hash(v, hash);
	if (key != NULL && idempotency_fast(r, key, hash))
		return;
	if (db_begin(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		return;
	}
	if (key != NULL && !idempotency_claim(r, key, hash))
		return; /* replayed, refused or failed; rolled back */

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
		return;
	if (PQntuples(res) == 0) { /* deleted since we looked */
		PQclear(res);
		db_rollback(r->app->db);
		errors = json_object_new_array();
		valid_error(errors, "/analysis_id", "no such analysis");
		body_invalid(r, errors);
		return;
	}
	if (key != NULL && !idempotency_bind(r, key, PQgetvalue(res, 0, 0))) {
		PQclear(res);
		return;
	}
	if (db_commit(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		PQclear(res);
		return;
	}
	location = xasprintf("Location: /api/v1/runs/%s\r\n", PQgetvalue(res, 0, 0));
	runs_send(r, 201, location, PQgetvalue(res, 0, 1), false);
	metrics_run_created();
	if (key != NULL)
		idempotency_committed(r, key, hash, PQgetvalue(res, 0, 0));
	free(location);
	PQclear(res);
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

/* Is the run (its JSON) finished, so that it never changes again? */
static bool
run_final(const char *run_json)
{
	struct json_object *o = json_tokener_parse(run_json), *st;
	bool final = false;
	size_t i;

	if (o != NULL && json_object_object_get_ex(o, "status", &st))
		for (i = RUN_FINAL_FIRST; run_statuses[i] != NULL; i++)
			final = final ||
			        strcmp(json_object_get_string(st), run_statuses[i]) == 0;
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
	/* Runs in progress briefly (the executor forgets them when it changes
	 * them), finished runs for long: they never change again. */
	mc_run_name(name, MC_RUN, params[0]);
	cache_answer(
	    r, name, TTL_SHORT, "run", runs_not_found, run_final,
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
	    " ELSE to_jsonb(status) END, status IN ('completed', 'failed', 'canceled')"
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

/* The filters as list_query has checked them: status a JSON array. */
void
runs_list(struct req *r)
{
	char limit[24], days[16];
	const char *params[7] = {r->tenant->project_id, r->q[QF_STATUS].str,
	                         r->q[QF_TAG].str,      r->q[QF_ANALYSIS].str,
	                         r->q[QF_CURSOR].str,   list_fetch(r, limit),
	                         history_days(r, days)};
	PGresult *res = http_query_db(
	    r,
	    /* The page first, then its JSON: never one per row of the project. */
	    "SELECT assay_run_json(j), assay_cursor(j.created_at, j.id) FROM"
	    " (SELECT * FROM analysis_jobs j WHERE j.project_id = $1"
	    " AND ($2::jsonb IS NULL OR"
	    "      j.status = ANY (ARRAY(SELECT jsonb_array_elements_text($2::jsonb))))"
	    " AND ($3::text IS NULL OR j.tags @> ARRAY[$3])"
	    " AND ($4::uuid IS NULL OR j.analysis_id = $4::uuid)"
	    " AND ($5::text IS NULL OR (j.created_at, j.id) <"
	    "      (assay_cursor_time($5), split_part($5, '_', 2)::uuid))" WITHIN_HISTORY(
	        "j.created_at",
	        "$7") " ORDER BY j.created_at DESC, j.id DESC LIMIT $6::int) j"
	              " ORDER BY j.created_at DESC, j.id DESC",
	    7, params);

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
