/*
 * GET /api/v1/runs/{id}/result of a run whose result is stored apart from
 * its row (analysis_result_storage, sql/0012_results.sql; the executor
 * writes results longer than its result_inline_max there). The response
 * keeps the envelope of every result, {"success":true,"result":{"run_id",
 * "status", "error_message", "finished_at", "result"}}: the stored JSON
 * text is spliced in as the last member, read from PostgreSQL one piece
 * at a time in libpq's binary format and written on at once, so a worker
 * holds at most one piece, never the result. Its Content-Length is known
 * before the first byte (the run records the result's size) and its ETag
 * derives from the result's SHA-256. What runs_result passes (through the
 * cache: small, and final) describes it; the pieces are never cached. Once
 * the head is out nothing else can be answered: a piece that is gone
 * (the run was pruned meanwhile) or a database failure ends the body short
 * of its Content-Length.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "extern.h"
#include "xalloc.h"

/* Piece seq of the run's result as its attempt stored it; NULL when it is
 * not there (*gone: pruned since the run was read) or the database
 * failed. Answers nothing. */
static PGresult *
results_piece(struct req *r, const char *attempt, long seq, bool *gone)
{
	char n[24];
	const char *params[3] = {r->match.params[0], attempt, n};
	PGconn *conn = db_conn(r->app->db);
	PGresult *res;

	*gone = false;
	if (conn == NULL)
		return NULL;
	snprintf(n, sizeof n, "%ld", seq);
	res = PQexecParams(conn,
	                   "SELECT data FROM analysis_result_storage"
	                   " WHERE job_id = $1 AND attempt = $2::int AND seq = $3::int",
	                   3, NULL, params, NULL, NULL, 1);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		return res;
	*gone = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	return NULL;
}

/* The members of the envelope but the result, as text that ends where the
 * result goes: {"success":true,"result":{...,"result": (malloc'd). The
 * size and the attempt of the stored result come out of stored. */
static char *
results_head(const char *stored, long long *size, char attempt[16])
{
	struct json_object *all = json_tokener_parse(stored), *o, *v;
	const char *rest;
	char *head;

	if (all == NULL || !json_object_object_get_ex(all, "stored", &o) ||
	    !json_object_object_get_ex(o, "result_size", &v))
		abort(); /* runs_result's query made it */
	*size = json_object_get_int64(v);
	json_object_object_get_ex(o, "attempt", &v);
	snprintf(attempt, 16, "%d", json_object_get_int(v));
	json_object_object_del(o, "result_size");
	json_object_object_del(o, "result_sha256");
	json_object_object_del(o, "attempt");
	rest = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                             JSON_C_TO_STRING_NOSLASHESCAPE);
	head = xasprintf(
	    "{\"success\":true,\"result\":%.*s,\"result\":", (int)strlen(rest) - 1, rest);
	json_object_put(all);
	return head;
}

void
results_send(struct req *r, const char *stored)
{
	static const char tail[] = "}}";
	char header[80], attempt[16], *head;
	long long size, sent = 0;
	PGresult *res;
	long seq = 0;
	bool whole = strcmp(r->method, "HEAD") != 0, gone;

	if (http_not_modified(r, stored, true, header))
		return;
	head = results_head(stored, &size, attempt);
	/* The first piece before the head: a failure can still be answered. */
	if (whole && (res = results_piece(r, attempt, seq, &gone)) == NULL) {
		free(head);
		r->cache_control = NULL;
		if (gone)
			runs_not_found(r);
		else
			http_db_failure(r, DB_DOWN);
		return;
	}
	http_send_head(r, 200, "application/json", header,
	               strlen(head) + (uint64_t)size + sizeof tail - 1);
	if (whole) {
		FCGX_PutStr(head, (int)strlen(head), r->fcgi->out);
		while (res != NULL) {
			FCGX_PutStr(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0),
			            r->fcgi->out);
			sent += PQgetlength(res, 0, 0);
			PQclear(res);
			res =
			    sent < size ? results_piece(r, attempt, ++seq, &gone) : NULL;
		}
		if (sent == size)
			FCGX_PutStr(tail, sizeof tail - 1, r->fcgi->out);
	}
	free(head);
}
