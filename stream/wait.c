/*
 * GET /api/v1/runs/{id}?wait=N (N from 0 to 60 seconds): the run as GET
 * /api/v1/runs/{id} answers it, as soon as it has ended or when N seconds
 * have passed, whichever comes first. assay-api would hold a worker for
 * every waiter; here a waiter is a connection and an entry in its run's
 * topic, nothing more. One query (Q_WAIT) checks its key and reads the
 * run within the tenant's tier's history; a run still going is waited
 * for: a notice that it may have ended, or a waiter's time running out,
 * has the topic read it once for all its waiters (Q_RUN, which reads the
 * runs of all the topics that asked at once). The answer is
 * assay-api's: the same body, ETag, Cache-Control and If-None-Match, and
 * its query string is checked as assay-api checks its tables (the same
 * 400). Nothing here reads the request's records or writes to a socket
 * but through conn.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "httpmsg.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

#define WAIT_MAX 60

/* Add {parameter, detail} to errors unless the parameter is named already. */
static void
wait_error(struct json_object *errors, const char *name, size_t len, const char *detail)
{
	struct json_object *e, *p;
	char param[80];
	size_t i;

	httpmsg_param_name(name, len, param, sizeof param);
	for (i = 0; i < json_object_array_length(errors); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(errors, i),
		                              "parameter", &p) &&
		    strcmp(json_object_get_string(p), param) == 0)
			return;
	e = json_object_new_object();
	json_object_object_add(e, "parameter", json_object_new_string(param));
	json_object_object_add(e, "detail", json_object_new_string(detail));
	json_object_array_add(errors, e);
}

/* The value of wait (len bytes): its seconds, or -1 with its error added. */
static long
wait_value(struct json_object *errors, const char *v, size_t len)
{
	size_t sign = len > 0 && v[0] == '-';
	long n;

	if (len <= sign || strspn(v + sign, "0123456789") != len - sign) {
		wait_error(errors, "wait", 4, "must be an integer, not a string");
		return -1;
	}
	n = strtol(v, NULL, 10); /* clamped */
	if (n < 0 || n > WAIT_MAX) {
		wait_error(errors, "wait", 4, "must be between 0 and 60");
		return -1;
	}
	return n;
}

long
wait_seconds(struct conn *c, const char *query)
{
	struct json_object *errors = json_object_new_array(), *extra;
	size_t qlen = query != NULL ? strlen(query) : 0, len, vlen = 0;
	char *name = xmalloc(qlen + 1), *value = xmalloc(qlen + 1), detail[1024];
	const char *p, *end, *eq;
	unsigned given = 0;
	long n = 0;

	for (p = query; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		eq = p + strcspn(p, "=&");
		if (end == p)
			continue;
		httpmsg_unescape(p, (size_t)(eq - p), name, (size_t)(eq - p) + 1, &len);
		if (len != 4 || memcmp(name, "wait", 4) != 0) {
			wait_error(errors, name, len,
			           "is not a parameter of this resource");
			continue;
		}
		if (given++ > 0)
			continue;
		p = eq + (*eq == '=');
		httpmsg_unescape(p, (size_t)(end - p), value, (size_t)(end - p) + 1,
		                 &vlen);
	}
	if (given > 1)
		wait_error(errors, "wait", 4, "is given more than once");
	else if (given == 1)
		n = wait_value(errors, value, vlen);
	free(name);
	free(value);
	if (json_object_array_length(errors) == 0) {
		json_object_put(errors);
		return n;
	}
	extra = httpmsg_param_problem(errors, detail, sizeof detail);
	conn_answer_with(c, 400, "INVALID_PARAMETER", NULL, extra, detail);
	json_object_put(extra);
	return -1;
}

/* c is no longer a waiter: it is answered next (conn_end). */
static void
wait_leave(struct conn *c)
{
	if (c->state != C_WAIT)
		return;
	topic_leave(c);
	st.waiting--;
	c->state = C_DONE;
}

void
wait_refuse(struct conn *c, int status, const char *code, const char *headers,
            const char *detail)
{
	wait_leave(c);
	conn_answer(c, status, code, headers, detail);
}

/* Answer c with the run (its JSON as assay_run_json renders it): final
 * when it has ended, kept when it can never change again (completed: a
 * failed or canceled run may be retried), which the client may keep. */
static void
wait_answer(struct conn *c, const char *run_json, bool final, bool kept)
{
	char *members = xasprintf("\"run\":%s", run_json), *body, *head, etag[35],
	     log[400];
	bool match;
	int status;

	wait_leave(c);
	httpmsg_etag(members, etag);
	match = c->inm[0] != '\0' &&
	        (strstr(c->inm, etag) != NULL || strcmp(c->inm, "*") == 0);
	status = match ? 304 : 200;
	body = match ? xstrdup("") : xasprintf("{\"success\":true,%s}", members);
	head =
	    xasprintf("Status: %d %s\r\nContent-Type: application/json\r\n"
	              "Content-Length: %zu\r\nX-Request-ID: %s\r\nCache-Control: %s\r\n"
	              "%sETag: %s\r\n\r\n",
	              status, match ? "Not Modified" : "OK", strlen(body), c->request_id,
	              kept ? "private, max-age=86400" : "no-store", conn_cors(c), etag);
	conn_write(c, head, strlen(head));
	if (!c->head && !match)
		conn_write(c, body, strlen(body));
	conn_end(c);
	if (final)
		st.waits_ended++;
	else
		st.waits_timed_out++;
	snprintf(log, sizeof log,
	         "\"method\":\"%s\",\"route\":\"/api/v1/runs/{id}\",\"status\":%d,"
	         "\"duration_ms\":%.3f,\"request_id\":\"%s\",\"run\":\"%s\","
	         "\"waited\":\"%s\"",
	         c->head ? "HEAD" : "GET", status,
	         (double)(util_now_us() - c->start_us) / 1000.0, c->request_id, c->run,
	         final ? "ended" : "timeout");
	log_line(LOG_INFO, "wait answered", log);
	free(members);
	free(body);
	free(head);
	conn_flush(c);
}

void
wait_checked(struct query *q, PGresult *res)
{
	struct conn *c = q->conn;
	char detail[64];
	long days;

	if (!req_answer_in(q, res) || !req_key_accepted(c, res, q->digest))
		return;
	days = tier_limit(st.cfg, tier_index(PQgetvalue(res, 0, 2)), TF_HISTORY);
	if (PQgetisnull(res, 0, 3) ||
	    (days > 0 && atof(PQgetvalue(res, 0, 5)) >= (double)days * 86400.0)) {
		snprintf(detail, sizeof detail, "no run %s", c->run);
		conn_answer(c, 404, "RUN_NOT_FOUND", NULL, detail);
		return;
	}
	if (topic_terminal(PQgetvalue(res, 0, 3)) || util_now_us() >= c->due_us) {
		wait_answer(c, PQgetvalue(res, 0, 4),
		            topic_terminal(PQgetvalue(res, 0, 3)),
		            strcmp(PQgetvalue(res, 0, 3), "completed") == 0);
		return;
	}
	c->state = C_WAIT;
	st.waiting++;
	topic_wait(c);
}

void
wait_result(struct conn *c, PGresult *res, int row)
{
	bool due = util_now_us() >= c->due_us, final;

	if (res == NULL) {
		if (due)
			wait_refuse(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
			            "the database is unavailable; try again shortly");
		return;
	}
	if (row < 0) { /* deleted (assayctl prune) while waited for */
		wait_refuse(c, 404, "RUN_NOT_FOUND", NULL, "no such run");
		return;
	}
	final = topic_terminal(PQgetvalue(res, row, 2));
	if (final || due)
		wait_answer(c, PQgetvalue(res, row, 1), final,
		            strcmp(PQgetvalue(res, row, 2), "completed") == 0);
}

int
wait_due(int max_ms)
{
	uint64_t now = util_now_us(), next = now + (uint64_t)max_ms * 1000u;
	struct conn *c;
	size_t i;

	for (i = 0; i < st.nall; i++) {
		c = st.all[i];
		if (c->state != C_WAIT)
			continue;
		if (now >= c->due_us &&
		    !pg_connected()) { /* even if its read is queued */
			wait_refuse(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
			            "the database is unavailable; try again shortly");
			if (i < st.nall && st.all[i] != c)
				i--; /* it was closed and another took its place */
		} else if (c->due_asked) {
			continue;
		} else if (now >= c->due_us) {
			c->due_asked = true;
			topic_read_run(c->topic);
		} else if (c->due_us < next) {
			next = c->due_us;
		}
	}
	return (int)((next - now + 999) / 1000);
}
