/*
 * HTTP over FastCGI: the request's parameters and query string (checked
 * against the route's table), and responses: status line, common headers,
 * JSON bodies and RFC 9457 problem details (their text in lib/httpmsg.c,
 * shared with assay-stream). Every response goes through http_send, which
 * adds X-Request-ID and records the status for the access log.
 * Nothing here reads the request body or talks to storage.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"
#include "db.h"
#include "httpmsg.h"
#include "xalloc.h"

const char *
http_param(const struct req *r, const char *name)
{
	return FCGX_GetParam(name, r->fcgi->envp);
}

void
http_send_head(struct req *r, int status, const char *ctype, const char *headers,
               uint64_t len)
{
	char head[2048];
	int n;

	r->status = status;
	/* libfcgi's own printf lacks %zu: format here, write raw. */
	n = snprintf(head, sizeof head,
	             "Status: %d %s\r\n"
	             "Content-Type: %s\r\n"
	             "Content-Length: %llu\r\n"
	             "X-Request-ID: %s\r\n"
	             "Cache-Control: %s\r\n"
	             "%s%s%s%s%s%s\r\n",
	             status, httpmsg_reason(status), ctype, (unsigned long long)len,
	             r->request_id, r->cache_control ? r->cache_control : "no-store",
	             r->cors_origin ? "Access-Control-Allow-Origin: " : "",
	             r->cors_origin ? r->cors_origin : "", r->cors_origin ? "\r\n" : "",
	             r->cors_origin ? HTTPMSG_CORS_EXPOSE : "", r->extra_headers,
	             headers ? headers : "");
	if (n < 0 || (size_t)n >= sizeof head)
		abort(); /* callers pass short, fixed headers */
	FCGX_PutStr(head, n, r->fcgi->out);
}

void
http_send(struct req *r, int status, const char *ctype, const char *headers,
          const char *body, size_t len)
{
	http_send_head(r, status, ctype, headers, len);
	if (len > 0 && strcmp(r->method, "HEAD") != 0)
		FCGX_PutStr(body, (int)len, r->fcgi->out);
}

void
http_json(struct req *r, int status, const char *ctype, struct json_object *obj)
{
	size_t len;
	const char *body = json_object_to_json_string_length(
	    obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	http_send(r, status, ctype, NULL, body, len);
	json_object_put(obj);
}

static void
http_problem_v(struct req *r, int status, const char *code, const char *headers,
               struct json_object *extra, const char *fmt, va_list ap)
{
	char detail[1024], *body;

	vsnprintf(detail, sizeof detail, fmt, ap);
	body = httpmsg_problem(status, code, detail, r->request_id, extra);
	json_object_put(extra);
	http_send(r, status, "application/problem+json", headers, body, strlen(body));
	free(body);
}

void
http_problem(struct req *r, int status, const char *code, const char *headers,
             const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	http_problem_v(r, status, code, headers, NULL, fmt, ap);
	va_end(ap);
}

void
http_problem_with(struct req *r, int status, const char *code, const char *headers,
                  struct json_object *extra, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	http_problem_v(r, status, code, headers, extra, fmt, ap);
	va_end(ap);
}

void
http_db_failure(struct req *r, int rc)
{
	http_problem(r, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
	             "%s; try again shortly", db_strerror((enum db_rc)rc));
}

PGresult *
http_query_db(struct req *r, const char *sql, int n, const char *const *params)
{
	PGresult *res;
	enum db_rc rc = db_query(r->app->db, &res, sql, n, params);

	if (rc != DB_OK) {
		db_rollback(r->app->db);
		http_db_failure(r, rc);
		return NULL;
	}
	return res;
}

void
http_deleted(struct req *r, PGresult *res, route_handler *not_found)
{
	if (strcmp(PQcmdTuples(res), "1") == 0)
		http_send(r, 204, "application/json", NULL, "", 0);
	else
		not_found(r);
	PQclear(res);
}

bool
http_not_modified(struct req *r, const char *text, bool final, char header[80])
{
	const char *inm = http_param(r, "HTTP_IF_NONE_MATCH");
	char etag[35];

	httpmsg_etag(text, etag);
	snprintf(header, 80, "ETag: %s\r\n", etag);
	if (final) /* it will never change: the client may keep it */
		r->cache_control = "private, max-age=86400";
	if (inm == NULL || (strstr(inm, etag) == NULL && strcmp(inm, "*") != 0))
		return false;
	http_send(r, 304, "application/json", header, "", 0);
	return true;
}

void
http_success_tagged(struct req *r, const char *members, bool final)
{
	char header[80];

	if (!http_not_modified(r, members, final, header))
		http_success(r, 200, header, members);
}

void
http_success(struct req *r, int status, const char *headers, const char *members)
{
	char *body = xasprintf("{\"success\":true,%s}", members);

	http_send(r, status, "application/json", headers, body, strlen(body));
	free(body);
}

/* The detail of a 400 names the first parameter; errors lists them all. */
bool
http_query_take(struct req *r)
{
	const struct route *rt = r->match.route;
	struct json_object *errors = json_object_new_array(), *extra;
	char detail[1024];

	r->query = valid_query(http_param(r, "QUERY_STRING"), rt->query, rt->nquery, r->q,
	                       errors);
	if (json_object_array_length(errors) == 0) {
		json_object_put(errors);
		return true;
	}
	extra = httpmsg_param_problem(errors, detail, sizeof detail);
	http_problem_with(r, 400, "INVALID_PARAMETER", NULL, extra, "%s", detail);
	return false;
}
