/*
 * POST /api/v1/analyses/check: does a script compile? assay-api may not
 * start sandboxes, and a script is hostile, so it never compiles one
 * itself: it queues the check (sql/0014_check.sql), which also makes its
 * database session listen on the check's own channel, and waits on that
 * socket for an executor's answer, at most check_timeout_ms; then it stops
 * listening and withdraws a check nobody took. The body was checked as an
 * analysis' script and runtime are (the first AF_CHECK fields). Never
 * holds a transaction while it waits.
 */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "util.h"
#include "xalloc.h"

/* The answer sent on channel, malloc'd, or NULL when none came within
 * timeout_ms or the connection failed. */
static char *
checks_wait(struct db *db, const char *channel, long timeout_ms)
{
	uint64_t deadline = util_now_us() + (uint64_t)timeout_ms * 1000u, now;
	PGconn *conn = db_conn(db);
	struct pollfd pfd;
	char *answer = NULL;
	PGnotify *n;

	while (conn != NULL && answer == NULL) {
		if (PQconsumeInput(conn) == 0)
			break;
		while ((n = PQnotifies(conn)) != NULL) {
			if (answer == NULL && strcmp(n->relname, channel) == 0)
				answer = xstrdup(n->extra);
			PQfreemem(n);
		}
		now = util_now_us();
		if (answer != NULL || now >= deadline)
			break;
		pfd = (struct pollfd){PQsocket(conn), POLLIN, 0};
		if (poll(&pfd, 1, (int)((deadline - now + 999) / 1000)) < 0)
			break;
	}
	return answer;
}

/* 200, 422 naming where the script fails, or 503 from the answer's text. */
static void
checks_reply(struct req *r, const char *text)
{
	struct json_object *a = json_tokener_parse(text), *v = NULL, *error, *errors,
	                   *extra;
	bool said = json_object_object_get_ex(a, "ok", &v);
	const char *message;

	if (said && json_object_get_boolean(v)) {
		http_success(r, 200, NULL, "\"ok\":true");
	} else if (said) {
		message = json_object_object_get_ex(a, "message", &v)
		              ? json_object_get_string(v)
		              : "the script does not compile";
		error = json_object_new_object();
		json_object_object_add(error, "pointer",
		                       json_object_new_string("/script"));
		json_object_object_add(error, "detail", json_object_new_string(message));
		if (json_object_object_get_ex(a, "line", &v))
			json_object_object_add(error, "line", json_object_get(v));
		if (json_object_object_get_ex(a, "column", &v))
			json_object_object_add(error, "column", json_object_get(v));
		errors = json_object_new_array();
		json_object_array_add(errors, error);
		extra = json_object_new_object();
		json_object_object_add(extra, "errors", errors);
		http_problem_with(r, 422, "SCRIPT_DOES_NOT_COMPILE", NULL, extra,
		                  "the script does not compile: %s", message);
	} else {
		http_problem(r, 503, "CHECK_UNAVAILABLE", "Retry-After: 5\r\n",
		             "the script could not be checked: %s",
		             json_object_object_get_ex(a, "unavailable", &v)
		                 ? json_object_get_string(v)
		                 : "the executor's answer is not understood");
	}
	json_object_put(a);
}

void
checks_post(struct req *r)
{
	long timeout_ms = cfg_int(r->app->cfg, API_CHECK_TIMEOUT);
	char id[40], channel[64], wait[24], *answer;
	const char *params[4] = {r->tenant->id, r->v[AF_RUNTIME].str, r->v[AF_SCRIPT].str,
	                         wait};
	PGresult *res;

	snprintf(wait, sizeof wait, "%ld", timeout_ms);
	res = http_query_db(r,
	                    "SELECT id, assay_check_channel(id)"
	                    " FROM assay_check_request($1, $2, $3, $4::int) id",
	                    4, params);
	if (res == NULL)
		return;
	snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
	snprintf(channel, sizeof channel, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	answer = checks_wait(r->app->db, channel, timeout_ms);
	params[0] = id;
	if ((res = http_query_db(r, "SELECT assay_check_end($1)", 1, params)) == NULL) {
		free(answer);
		return;
	}
	PQclear(res);
	if (answer != NULL)
		checks_reply(r, answer);
	else
		http_problem(r, 503, "CHECK_UNAVAILABLE", "Retry-After: 5\r\n",
		             "no executor checked the script within %ld ms", timeout_ms);
	free(answer);
}
