/*
 * Request bodies: the media type, the announced length against the limit
 * (decided before reading a byte), the read itself, and JSON parsing with
 * the position of the first error, and what PostgreSQL could not store
 * (a NUL character or a lone surrogate anywhere, member names included)
 * or json-c would take silently (a member named twice in one object, the
 * last winning): 422 naming the member; and the check of a route's body
 * against its table of fields before the handler runs. Every refusal is
 * answered here as problem+json; handlers only see a body whose fields are
 * valid.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "cfg.h"
#include "extern.h"
#include "jsontext.h"
#include "xalloc.h"

static bool
is_json_media_type(const char *ct)
{
	size_t n = strcspn(ct, "; \t");

	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	return n > 5 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

void
body_invalid(struct req *r, struct json_object *errors)
{
	struct json_object *extra = json_object_new_object();
	size_t n = json_object_array_length(errors);

	json_object_object_add(extra, "errors", errors);
	http_problem_with(r, 422, "VALIDATION_FAILED", NULL, extra,
	                  "the request has %zu invalid field%s; see errors", n,
	                  n == 1 ? "" : "s");
}

struct json_object *
body_json(struct req *r)
{
	const char *ct = http_param(r, "CONTENT_TYPE"),
	           *cl = http_param(r, "CONTENT_LENGTH");
	enum api_key key = r->match.route->body_limit;
	long limit = cfg_int(r->app->cfg, key != 0 ? key : API_BODY_LIMIT);
	struct json_object *obj, *errors;
	char *buf, *end, err[256], ptr[256];
	const char *why;
	long len;
	int got;

	if (ct == NULL || !is_json_media_type(ct)) {
		http_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE", NULL,
		             "send the body as application/json, not %s",
		             ct && *ct ? ct : "nothing");
		return NULL;
	}
	len = cl && *cl ? strtol(cl, &end, 10) : 0;
	if (len > limit) {
		http_problem(r, 413, "BODY_TOO_LARGE", NULL,
		             "the body is %ld bytes; the limit is %ld", len, limit);
		return NULL;
	}
	if (len <= 0) {
		http_problem(r, 400, "INVALID_JSON", NULL,
		             "the request has no body; send a JSON object");
		return NULL;
	}
	buf = xmalloc((size_t)len + 1);
	got = FCGX_GetStr(buf, (int)len, r->fcgi->in);
	if (got != len) {
		free(buf);
		http_problem(r, 400, "INVALID_JSON", NULL,
		             "the body ended after %d of %ld bytes", got < 0 ? 0 : got,
		             len);
		return NULL;
	}
	buf[len] = '\0';
	obj = valid_parse(buf, (size_t)len, err, sizeof err);
	if (obj != NULL &&
	    !jsontext_storable_unique(buf, (size_t)len, ptr, sizeof ptr, &why)) {
		errors = json_object_new_array();
		valid_error(errors, ptr, "%s", why);
		body_invalid(r, errors);
		json_object_put(obj);
		free(buf);
		return NULL;
	}
	free(buf);
	if (obj == NULL && err[0] != '\0') {
		http_problem(r, 400, "INVALID_JSON", NULL, "%s", err);
		return NULL;
	}
	if (!json_object_is_type(obj, json_type_object)) { /* null too */
		errors = json_object_new_array();
		valid_error(errors, "", "the body must be a JSON object");
		body_invalid(r, errors);
		json_object_put(obj);
		return NULL;
	}
	return obj;
}

bool
body_take(struct req *r)
{
	const struct route *rt = r->match.route;

	if ((r->body = body_json(r)) == NULL)
		return false;
	/* Bounds the configuration sets, as it is now (it may be reloaded). */
	run_fields[RF_INPUT].max = cfg_int(r->app->cfg, API_INPUT_STRING_MAX);
	schedule_fields[SF_INPUT].max = run_fields[RF_INPUT].max;
	analysis_fields[AF_SCRIPT].max = cfg_int(r->app->cfg, API_SCRIPT_MAX);
	r->errors = json_object_new_array();
	valid_check(r->body, rt->fields, rt->nfields, rt->partial, r->v, r->errors);
	if (rt->check != NULL)
		rt->check(r);
	if (r->status != 0)
		return false; /* the check answered (503) */
	if (json_object_array_length(r->errors) == 0)
		return true;
	body_invalid(r, r->errors);
	r->errors = NULL;
	return false;
}
