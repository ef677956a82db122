/*
 * A request in: FastCGI records read from the web server, its parameters,
 * and admission. GET /api/v1/runs/{id}/events (or its /api alias) is
 * admitted by an API key (Authorization: Bearer or X-API-Key) or a stream
 * token (?token=), either checked by PostgreSQL, and may resume after
 * Last-Event-ID (or ?last_event_id=). GET or HEAD /api/v1/runs/{id}?wait=N
 * (the web servers send it here only with wait) is admitted by an API key
 * and waits (wait.c). Anything else is answered at once with
 * problem+json. Nothing here writes an event; a key or token is never
 * logged or kept, only its digest while it is checked.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apikey.h"
#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "httpmsg.h"
#include "xalloc.h"

#define IN_MAX 65536 /* a request's records; more is not a browser's GET */

#define INVALID_KEY HTTPMSG_CHALLENGE ", error=\"invalid_token\"\r\n"

/* Copy vlen bytes of v into buf (len bytes): 1, or -1 (buf "") when
 * they do not fit. */
static int
req_copy(const char *v, size_t vlen, char *buf, size_t len)
{
	buf[0] = '\0';
	if (vlen >= len)
		return -1;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return 1;
}

/* A request parameter as a NUL-terminated copy in buf: 1 when given, 0
 * when absent, -1 when too long for buf (never taken for absent). */
static int
req_param(const struct conn *c, const char *name, char *buf, size_t len)
{
	size_t vlen;
	const char *v = fcgi_param(c->params, c->plen, name, &vlen);

	buf[0] = '\0';
	return v == NULL ? 0 : req_copy(v, vlen, buf, len);
}

/* The run of the path in c->run (lowercase), and whether the request is
 * a wait (c->waits, c->head); false after answering. */
static bool
req_run(struct conn *c, const char *uri, const char *method)
{
	char path[2048], *run;
	const char *allow;
	size_t n;

	httpmsg_path(uri, path, sizeof path);
	run = path + 13;
	c->waits = strncmp(path, "/api/v1/runs/", 13) == 0 && *run != '\0' &&
	           strchr(run, '/') == NULL;
	if (!c->waits &&
	    (strncmp(path, "/api/v1/runs/", 13) != 0 || strlen(path) != 13 + 36 + 7 ||
	     strcmp(run + 36, "/events") != 0)) {
		conn_answer(c, 404, "NOT_FOUND", NULL,
		            "assay-stream serves only /api/v1/runs/{id}/events and "
		            "/api/v1/runs/{id}?wait=N");
		return false;
	}
	if (!c->waits)
		run[36] = '\0';
	allow = c->waits ? "GET, HEAD" : "GET";
	if (strcmp(method, "OPTIONS") == 0) {
		conn_options(c, allow);
		return false;
	}
	c->head = c->waits && strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !c->head) {
		char *h = xasprintf("Allow: %s\r\n", allow);

		conn_answer(c, 405, "METHOD_NOT_ALLOWED", h,
		            c->waits ? "a run is read with GET"
		                     : "events are read with GET");
		free(h);
		return false;
	}
	if (!httpmsg_uuid(run)) {
		conn_answer(c, 404, "RUN_NOT_FOUND", NULL, "no such run");
		return false;
	}
	memcpy(c->run, run, sizeof c->run); /* 36 characters and the NUL */
	for (n = 0; n < 36; n++)
		c->run[n] =
		    (char)(c->run[n] | (c->run[n] >= 'A' && c->run[n] <= 'F' ? 0x20 : 0));
	return true;
}

/* The query that checks the key or token presented; NULL after answering. */
static struct query *
req_credentials(struct conn *c, const char *query)
{
	char auth[512], xkey[512], token[80];
	const char *key;
	struct query *qr = xcalloc(1, sizeof *qr);

	qr->conn = c;
	snprintf(qr->p[1], sizeof qr->p[1], "%s", c->run);
	if (!c->waits && httpmsg_query(query, "token", token, sizeof token) != 0) {
		if (!apikey_token_valid(token)) { /* "" when too long */
			free(qr);
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token is not valid");
			return NULL;
		}
		qr->kind = Q_TOKEN;
		apikey_sha256_hex(token, strlen(token), qr->p[0]);
		return qr;
	}
	if (req_param(c, "HTTP_AUTHORIZATION", auth, sizeof auth) < 0 ||
	    req_param(c, "HTTP_X_API_KEY", xkey, sizeof xkey) < 0) {
		free(qr);
		conn_answer(c, 401, "INVALID_API_KEY", INVALID_KEY,
		            "the API key is not valid");
		return NULL;
	}
	key = httpmsg_api_key(auth[0] ? auth : NULL, xkey[0] ? xkey : NULL);
	if (key == NULL || *key == '\0') {
		free(qr);
		conn_answer(c, 401, "UNAUTHENTICATED", HTTPMSG_CHALLENGE "\r\n",
		            c->waits ? "an API key is required: send Authorization: "
		                       "Bearer <key> or X-API-Key"
		                     : "an API key (Authorization: Bearer or X-API-Key) "
		                       "or a token (?token=) is required");
		return NULL;
	}
	if (!apikey_prefix(key, qr->p[0])) {
		free(qr);
		if (c->waits && req_param(c, "HTTP_X_JOB_ID", token, sizeof token) != 0) {
			conn_answer(
			    c, 403, "JOB_TOKEN_FORBIDDEN", NULL,
			    "a job token may read its own run, but not wait for it");
			return NULL;
		}
		conn_answer(c, 401, "INVALID_API_KEY", INVALID_KEY,
		            "the API key is not valid");
		return NULL;
	}
	qr->kind = c->waits ? Q_WAIT : Q_KEY;
	apikey_sha256_hex(key, strlen(key), qr->digest);
	return qr;
}

static void
req_admit(struct conn *c)
{
	char method[16], uri[8192], last[32], id[80], *q, *end;
	struct query *qr;
	long wait;

	httpmsg_request_id(req_param(c, "HTTP_X_REQUEST_ID", id, sizeof id) > 0 ? id
	                                                                        : NULL,
	                   c->request_id);
	if (req_param(c, "REQUEST_METHOD", method, sizeof method) <= 0)
		snprintf(method, sizeof method, "GET");
	if (req_param(c, "HTTP_ORIGIN", c->origin, sizeof c->origin) <= 0 ||
	    !httpmsg_origin_allowed(c->origin, cfg_str(st.cfg, API_CORS_ORIGINS)))
		c->origin[0] = '\0';
	switch (req_param(c, "REQUEST_URI", uri, sizeof uri)) {
	case 0:
		conn_answer(c, 400, "BAD_REQUEST", NULL,
		            "no REQUEST_URI from the web server");
		return;
	case -1:
		conn_answer(c, 414, "URI_TOO_LONG", NULL,
		            "the request URI is longer than 8 KiB");
		return;
	}
	q = strchr(uri, '?');
	if (q != NULL)
		*q++ = '\0';
	if (!req_run(c, uri, method))
		return;
	c->last = 0;
	if (!c->waits && (req_param(c, "HTTP_LAST_EVENT_ID", last, sizeof last) != 0 ||
	                  httpmsg_query(q, "last_event_id", last, sizeof last) != 0)) {
		c->last = strtol(last, &end, 10);
		if (last[0] == '\0' || *end != '\0' || c->last < 0 ||
		    c->last > 2147483647) {
			conn_answer(c, 400, "INVALID_PARAMETER", NULL,
			            "Last-Event-ID must be an event id this stream sent");
			return;
		}
	}
	if ((qr = req_credentials(c, q)) == NULL)
		return;
	if (c->waits) { /* as assay-api: the key's shape, then the query */
		if ((wait = wait_seconds(c, q)) < 0) {
			free(qr);
			return;
		}
		c->due_us = c->start_us + (uint64_t)wait * 1000000u;
		if (req_param(c, "HTTP_IF_NONE_MATCH", c->inm, sizeof c->inm) < 0)
			c->inm[0] = '\0'; /* too long to match: answered in full */
	}
	if (!pg_connected()) {
		free(qr);
		conn_answer(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
		            "the database is unavailable; try again shortly");
		return;
	}
	/* Those still being checked count too: a burst cannot pass the limit
	 * while PostgreSQL answers. */
	if (st.active + st.waiting + st.admitting >=
	    (size_t)cfg_int(st.cfg, STREAM_MAX_STREAMS)) {
		free(qr);
		st.refused++;
		conn_answer(c, 503, "TOO_MANY_STREAMS", "Retry-After: 5\r\n",
		            "this server holds as many streams and waits as it may; "
		            "retry shortly");
		return;
	}
	free(c->params); /* everything needed is copied out */
	c->params = NULL;
	c->plen = 0;
	c->state = C_AUTH;
	c->query_held = true;
	st.admitting++;
	pg_push(qr);
}

bool
req_key_accepted(struct conn *c, PGresult *res, const char *digest)
{
	if (PQntuples(res) != 1 || !apikey_equal(PQgetvalue(res, 0, 0), digest, 64))
		conn_answer(c, 401, "INVALID_API_KEY", INVALID_KEY,
		            "the API key is not valid");
	else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
		conn_answer(c, 401, "INVALID_API_KEY", INVALID_KEY,
		            "the API key has been revoked");
	else
		return true;
	return false;
}

bool
req_answer_in(struct query *q, PGresult *res)
{
	struct conn *c = q->conn;

	c->query_held = false;
	st.admitting--;
	if (c->closed) {
		conn_bury(c);
		return false;
	}
	if (res == NULL)
		conn_answer(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
		            "the database is unavailable; try again shortly");
	return res != NULL;
}

void
req_checked(struct query *q, PGresult *res)
{
	struct conn *c = q->conn;

	if (!req_answer_in(q, res))
		return;
	if (q->kind == Q_KEY) {
		if (!req_key_accepted(c, res, q->digest))
			return;
		if (PQgetisnull(res, 0, 2))
			conn_answer(c, 404, "RUN_NOT_FOUND", NULL, "no such run");
		else
			conn_start(c, PQgetvalue(res, 0, 2), atol(PQgetvalue(res, 0, 3)));
	} else {
		if (PQntuples(res) != 1)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token is not valid for this run");
		else if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the API key that made this token has been revoked");
		else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token has expired; ask for a new one");
		else
			conn_start(c, PQgetvalue(res, 0, 1), atol(PQgetvalue(res, 0, 2)));
	}
}

/* Parse what arrived; false if the connection was closed. */
static bool
req_records(struct conn *c)
{
	struct fcgi_record rec;
	size_t off = 0;
	long n;

	while ((n = fcgi_parse(c->in + off, c->inlen - off, &rec)) > 0) {
		off += (size_t)n;
		switch (rec.type) {
		case FCGI_BEGIN_REQUEST:
			c->req_id = rec.request_id;
			break;
		case FCGI_PARAMS:
			if (c->state != C_PARAMS)
				break;
			if (rec.len == 0) {
				req_admit(c);
				if (c->fd < 0)
					return false;
				break;
			}
			c->params = xrealloc(c->params, c->plen + rec.len);
			memcpy(c->params + c->plen, rec.content, rec.len);
			c->plen += rec.len;
			break;
		case FCGI_ABORT_REQUEST:
			conn_close(c);
			return false;
		default:
			break; /* STDIN (a GET has none), management records */
		}
	}
	if (n < 0 || c->plen > IN_MAX) {
		conn_close(c);
		return false;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	return true;
}

void
req_readable(struct conn *c)
{
	unsigned char buf[8192];
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* the web server hung up: the client left */
			conn_close(c);
			return;
		}
		if (c->inlen + (size_t)n > IN_MAX) {
			conn_close(c);
			return;
		}
		c->in = xrealloc(c->in, c->inlen + (size_t)n);
		memcpy(c->in + c->inlen, buf, (size_t)n);
		c->inlen += (size_t)n;
		if (!req_records(c))
			return;
	}
	if (c->inlen == 0) {
		free(c->in);
		c->in = NULL;
	}
}
