/*
 * The analyses API: create, get, list, update (a changed script makes a
 * new version, kept in analysis_versions), soft delete, list versions.
 * Scoped to the caller's project like every query. Analyses are rendered
 * by the database (assay_analysis_json).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "xalloc.h"

static void
analysis_not_found(struct req *r)
{
	http_problem(r, 404, "ANALYSIS_NOT_FOUND", NULL, "no analysis %s",
	             r->match.params[0]);
}

int
analyses_visible(struct req *r, const char *id)
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

/* The route's own check of a body: the script's bound is in bytes. V_TEXT
 * counts characters, and a character is at least one byte, so the table's
 * bound is never looser than this one. */
void
analyses_check(struct req *r)
{
	if (r->v[AF_SCRIPT].present &&
	    (long)strlen(r->v[AF_SCRIPT].str) > analysis_fields[AF_SCRIPT].max) {
		valid_error(r->errors, "/script", "must be at most %ld bytes",
		            analysis_fields[AF_SCRIPT].max);
		r->v[AF_SCRIPT].present = false;
	}
}

/* One-row query answered as {"analysis": ...} with ok_status, or 404. */
static void
analysis_answer(struct req *r, int ok_status, const char *sql, int n,
                const char *const *params)
{
	PGresult *res = http_query_db(r, sql, n, params);
	char *members, *location;

	if (res == NULL)
		return;
	if (PQntuples(res) == 1) {
		/* A second column, the new analysis' id, makes its Location. */
		location = PQnfields(res) > 1
		               ? xasprintf("Location: /api/v1/analyses/%s\r\n",
		                           PQgetvalue(res, 0, 1))
		               : NULL;
		members = xasprintf("\"analysis\":%s", PQgetvalue(res, 0, 0));
		http_success(r, ok_status, location, members);
		free(members);
		free(location);
	} else {
		analysis_not_found(r);
	}
	PQclear(res);
}

void
analyses_create(struct req *r)
{
	const char *params[AF__MAX + 1];
	size_t i;

	params[0] = r->tenant->project_id;
	for (i = 0; i < AF__MAX; i++)
		params[i + 1] = r->v[i].str;
	analysis_answer(
	    r, 201,
	    "WITH a AS (INSERT INTO analyses (project_id, title, script_content, runtime,"
	    "  description, timeout_ms, memory_limit_mb, max_attempts)"
	    "  VALUES ($1, $4, $2, $3, $5, $6::int, $7::int, $8::int) RETURNING *),"
	    " v AS (INSERT INTO analysis_versions (analysis_id, version, script_content)"
	    "  SELECT id, version, script_content FROM a)"
	    " SELECT assay_analysis_json(a), a.id FROM a",
	    AF__MAX + 1, params);
}

void
analyses_get(struct req *r)
{
	const char *params[2] = {r->match.params[0], r->tenant->project_id};
	char name[160];

	if (!httpmsg_uuid(params[0])) {
		analysis_not_found(r);
		return;
	}
	snprintf(name, sizeof name, "analysis:%s", params[0]);
	cache_answer(r, name, TTL_ANALYSIS, "analysis", analysis_not_found, NULL,
	             "SELECT assay_analysis_json(a) FROM analyses a"
	             " WHERE a.id = $1 AND a.project_id = $2 AND a.is_active",
	             2, params);
}

/* An analysis changed: drop its cached copy. */
static void
analysis_forget(struct req *r)
{
	char name[160]; /* callers have checked the id is a uuid */

	snprintf(name, sizeof name, "analysis:%.36s", r->match.params[0]);
	cache_forget(r, name);
}

void
analyses_update(struct req *r)
{
	const char *params[AF__MAX + 2];
	size_t i;

	if (!httpmsg_uuid(r->match.params[0])) {
		analysis_not_found(r);
		return;
	}
	params[0] = r->match.params[0];
	params[1] = r->tenant->project_id;
	for (i = 0; i < AF__MAX; i++)
		params[i + 2] = r->v[i].present ? r->v[i].str : NULL;
	analysis_answer(
	    r, 200,
	    "WITH cur AS (SELECT id, version, script_content FROM analyses"
	    "  WHERE id = $1 AND project_id = $2 AND is_active FOR UPDATE),"
	    " upd AS (UPDATE analyses a SET"
	    "  title = coalesce($5, a.title),"
	    "  script_content = coalesce($3, a.script_content),"
	    "  version = a.version + (coalesce($3, cur.script_content)"
	    "    <> cur.script_content)::int,"
	    "  runtime = coalesce($4, a.runtime),"
	    "  description = coalesce($6, a.description),"
	    "  timeout_ms = coalesce($7::int, a.timeout_ms),"
	    "  memory_limit_mb = coalesce($8::int, a.memory_limit_mb),"
	    "  max_attempts = coalesce($9::int, a.max_attempts),"
	    "  updated_at = now()"
	    "  FROM cur WHERE a.id = cur.id"
	    "  RETURNING a, a.version <> cur.version AS bumped),"
	    " v AS (INSERT INTO analysis_versions (analysis_id, version, script_content)"
	    "  SELECT (a).id, (a).version, (a).script_content FROM upd WHERE bumped)"
	    " SELECT assay_analysis_json(a) FROM upd",
	    AF__MAX + 2, params);
	analysis_forget(r);
}

void
analyses_delete(struct req *r)
{
	const char *params[2] = {r->match.params[0], r->tenant->project_id};
	PGresult *res;

	if (!httpmsg_uuid(params[0])) {
		analysis_not_found(r);
		return;
	}
	res = http_query_db(r,
	                    "UPDATE analyses SET is_active = false, updated_at = now()"
	                    " WHERE id = $1 AND project_id = $2 AND is_active",
	                    2, params);
	if (res == NULL)
		return;
	analysis_forget(r);
	http_deleted(r, res, analysis_not_found);
}

void
analyses_list(struct req *r)
{
	char limit[24];
	const char *params[3] = {r->tenant->project_id, r->q[QF_CURSOR].str,
	                         list_fetch(r, limit)};
	PGresult *res = http_query_db(
	    r,
	    /* The page first, then its JSON: never one per row of the project. */
	    "SELECT assay_analysis_json(a), assay_cursor(a.created_at, a.id) FROM"
	    " (SELECT * FROM analyses a WHERE a.project_id = $1 AND a.is_active"
	    " AND ($2::text IS NULL OR (a.created_at, a.id) <"
	    "      (assay_cursor_time($2), split_part($2, '_', 2)::uuid))"
	    " ORDER BY a.created_at DESC, a.id DESC LIMIT $3::int) a"
	    " ORDER BY a.created_at DESC, a.id DESC",
	    3, params);

	list_send(r, "analyses", res);
}

void
analyses_versions(struct req *r)
{
	const char *params[2] = {r->match.params[0], r->tenant->project_id};
	PGresult *res;
	char *members;

	if (!httpmsg_uuid(params[0])) {
		analysis_not_found(r);
		return;
	}
	res = http_query_db(
	    r,
	    "SELECT coalesce(jsonb_agg(jsonb_build_object('version', v.version,"
	    "  'script', v.script_content, 'created_at', assay_ts(v.created_at))"
	    "  ORDER BY v.version DESC), '[]')"
	    " FROM analyses a JOIN analysis_versions v ON v.analysis_id = a.id"
	    " WHERE a.id = $1 AND a.project_id = $2 AND a.is_active"
	    " HAVING count(*) > 0",
	    2, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 1) {
		members = xasprintf("\"versions\":%s", PQgetvalue(res, 0, 0));
		http_success(r, 200, NULL, members);
		free(members);
	} else {
		analysis_not_found(r);
	}
	PQclear(res);
}
