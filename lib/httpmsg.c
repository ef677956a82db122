/*
 * HTTP messages both servers share: see httpmsg.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "apikey.h"
#include "httpmsg.h"
#include "jsontext.h"
#include "util.h"
#include "xalloc.h"

static const struct {
	int status;
	const char *reason;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

const char *
httpmsg_reason(int status)
{
	size_t i;

	for (i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

static char id_prefix[17];
static uint64_t id_counter;

void
httpmsg_request_id(const char *given, char id[65])
{
	size_t n;

	if (given != NULL) {
		n = strspn(given, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		                  "0123456789._-");
		if (n > 0 && n <= 64 && given[n] == '\0') {
			memcpy(id, given, n + 1);
			return;
		}
	}
	/*
	 * Generated: 16 random hex digits drawn once per process (assay-api's
	 * master never serves, so each forked worker draws its own), then a
	 * counter.
	 */
	if (id_prefix[0] == '\0' && !util_random_hex(id_prefix, 8))
		snprintf(id_prefix, sizeof id_prefix, "%08x%08x", (unsigned)getpid(),
		         (unsigned)util_now_us());
	snprintf(id, 65, "%s%016llx", id_prefix, (unsigned long long)++id_counter);
}

bool
httpmsg_uuid(const char *s)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	int i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (s[i] == '\0' || strchr(hex, s[i]) == NULL) {
			return false;
		}
	}
	return s[36] == '\0';
}

const char *
httpmsg_api_key(const char *authorization, const char *x_api_key)
{
	if (authorization != NULL && strncasecmp(authorization, "Bearer ", 7) == 0)
		return authorization + 7 + strspn(authorization + 7, " ");
	return x_api_key;
}

void
httpmsg_path(const char *uri, char *path, size_t len)
{
	size_t n = strcspn(uri, "?");

	if (n >= len)
		n = len - 1;
	if (strncmp(uri, "/api/", 5) == 0 && strncmp(uri, "/api/v1/", 8) != 0 &&
	    n + 3 < len) {
		memcpy(path, "/api/v1/", 8);
		memcpy(path + 8, uri + 5, n - 5);
		path[n + 3] = '\0';
	} else {
		memcpy(path, uri, n);
		path[n] = '\0';
	}
}

char *
httpmsg_problem(int status, const char *code, const char *detail, const char *request_id,
                struct json_object *extra)
{
	struct json_object *p = json_object_new_object();
	char *body;

	json_object_object_add(p, "type", json_object_new_string("about:blank"));
	json_object_object_add(p, "title",
	                       json_object_new_string(httpmsg_reason(status)));
	json_object_object_add(p, "status", json_object_new_int(status));
	json_object_object_add(p, "detail", json_object_new_string(detail));
	json_object_object_add(p, "code", json_object_new_string(code));
	json_object_object_add(p, "request_id", json_object_new_string(request_id));
	if (extra != NULL) {
		json_object_object_foreach(extra, key, val)
		    json_object_object_add(p, key, json_object_get(val));
	}
	body = xstrdup(json_object_to_json_string_ext(
	    p, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(p);
	return body;
}

bool
httpmsg_origin_allowed(const char *origin, const char *allowed)
{
	size_t olen = origin != NULL ? strlen(origin) : 0, n;
	const char *p;

	if (olen == 0)
		return false;
	for (p = allowed; *p != '\0'; p += n + (p[n] == ',')) {
		p += strspn(p, " \t");
		n = strcspn(p, ", \t");
		if (n == olen && strncmp(p, origin, n) == 0)
			return true;
		if (n == 0 && p[0] != ',')
			break;
	}
	return false;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
httpmsg_unescape(const char *s, size_t n, char *out, size_t len, size_t *outlen)
{
	size_t i, o;
	int hi, lo;

	for (i = 0, o = 0; i < n && o + 1 < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && n - i >= 3 && (hi = hexval(s[i + 1])) >= 0 &&
		           (lo = hexval(s[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return i;
}

int
httpmsg_query(const char *query, const char *name, char *buf, size_t len)
{
	size_t nlen = strlen(name), used, o;
	const char *p, *end;

	buf[0] = '\0';
	for (p = query; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		if (strncmp(p, name, nlen) != 0 || p[nlen] != '=')
			continue;
		p += nlen + 1;
		used = httpmsg_unescape(p, (size_t)(end - p), buf, len, &o);
		if (p + used < end || strlen(buf) != o) {
			buf[0] = '\0';
			return p + used < end ? -1 : -2;
		}
		return 1;
	}
	return 0;
}

void
httpmsg_param_name(const char *name, size_t len, char *buf, size_t size)
{
	size_t i = 0, o = 0, k;

	while (i < len && o + 4 < size) {
		k = jsontext_utf8_len((const unsigned char *)name + i, len - i);
		if (k == 0 || (unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			o += (size_t)snprintf(buf + o, 4, "%%%02X",
			                      (unsigned char)name[i]);
			i++;
		} else {
			memcpy(buf + o, name + i, k);
			o += k;
			i += k;
		}
	}
	buf[o] = '\0';
}

struct json_object *
httpmsg_param_problem(struct json_object *errors, char *buf, size_t len)
{
	struct json_object *first = json_object_array_get_idx(errors, 0), *name, *detail,
	                   *extra = json_object_new_object();
	size_t n = json_object_array_length(errors);
	char more[48] = "";

	json_object_object_get_ex(first, "parameter", &name);
	json_object_object_get_ex(first, "detail", &detail);
	if (n > 1)
		snprintf(more, sizeof more, ", and %zu more; see errors", n - 1);
	snprintf(buf, len, "%s %s%s", json_object_get_string(name),
	         json_object_get_string(detail), more);
	json_object_object_add(extra, "errors", errors);
	return extra;
}

void
httpmsg_etag(const char *members, char etag[35])
{
	char digest[65];

	apikey_sha256_hex(members, strlen(members), digest);
	snprintf(etag, 35, "\"%.32s\"", digest);
}
