/*
 * Request validation driven by a table of fields (struct vfield), for
 * bodies and query strings alike: every member or parameter is checked,
 * every violation is reported with its JSON pointer or parameter name,
 * those the table does not know are violations too. A query string is
 * made an object of the kinds the table wants, then checked as a body.
 * Pure: no I/O, no storage, so it can be unit-tested and fuzzed on its
 * own. The values it fills in borrow strings from the object checked.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "extern.h"
#include "httpmsg.h"
#include "jsontext.h"
#include "util.h"
#include "xalloc.h"

#define INPUT_OBJECT_MAX (128 * 1024)
#define TAG_MAX_CHARS    64

void
valid_error(struct json_object *errors, const char *pointer, const char *fmt, ...)
{
	struct json_object *e = json_object_new_object();
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	json_object_object_add(e, "pointer", json_object_new_string(pointer));
	json_object_object_add(e, "detail", json_object_new_string(detail));
	json_object_array_add(errors, e);
}

/* Characters (code points) of valid UTF-8 text: json-c has checked it. */
static size_t
utf8_chars(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += ((unsigned char)s[i] & 0xc0) != 0x80;
	return n;
}

/* Does u have a part (CURLUPART_*)? */
static bool
url_has(CURLU *u, CURLUPart part)
{
	char *text = NULL;
	bool has = curl_url_get(u, part, &text, 0) == CURLUE_OK;

	curl_free(text);
	return has;
}

/* s (len bytes) as a V_URL: an http or https URL with a host, without
 * credentials or a fragment, of at most f->max bytes. */
static void
check_url(const char *s, size_t len, const struct vfield *f, const char *ptr,
          struct json_object *errors)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;

	if ((long)len > f->max || u == NULL ||
	    curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) ||
	    host[0] == '\0')
		valid_error(errors, ptr,
		            "must be an http or https URL of at most %ld bytes", f->max);
	else if (url_has(u, CURLUPART_USER) || url_has(u, CURLUPART_PASSWORD) ||
	         url_has(u, CURLUPART_OPTIONS))
		valid_error(errors, ptr, "must not contain credentials (user:password@)");
	else if (strchr(s, '#') != NULL)
		valid_error(errors, ptr, "must not contain a fragment (#...)");
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
}

/* s as seconds since the epoch, in buf: an RFC 3339 time
 * (YYYY-MM-DDTHH:MM:SS, a fraction, then Z or +HH:MM or -HH:MM; t and z
 * too) or a duration before now (util_duration). */
static bool
since_time(const char *s, char *buf, size_t len)
{
	struct tm tm, back;
	const char *p;
	long seconds, off = 0;
	char frac[8] = "0";
	size_t digits;
	time_t t;

	if (util_duration(s, &seconds)) {
		snprintf(buf, len, "%lld", (long long)time(NULL) - seconds);
		return true;
	}
	memset(&tm, 0, sizeof tm);
	if (strlen(s) < 20 || (p = strptime(s, "%Y-%m-%d", &tm)) == NULL || p != s + 10 ||
	    (*p != 'T' && *p != 't') || (p = strptime(p + 1, "%H:%M:%S", &tm)) == NULL ||
	    p != s + 19)
		return false;
	if (*p == '.') {
		digits = strspn(p + 1, "0123456789");
		if (digits == 0)
			return false;
		snprintf(frac, sizeof frac, "%.*s", digits > 6 ? 6 : (int)digits, p + 1);
		p += 1 + digits;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		off = 0;
	else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
	         strspn(p + 1, "0123456789") == 2 && strspn(p + 4, "0123456789") == 2 &&
	         atoi(p + 1) < 24 && atoi(p + 4) < 60)
		off = (*p == '-' ? -1 : 1) * (atoi(p + 1) * 3600L + atoi(p + 4) * 60L);
	else
		return false;
	back = tm;
	t = timegm(&tm);
	/* timegm moves a 31st of February into March: refuse what moved. */
	if (t == (time_t)-1 || tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon ||
	    tm.tm_sec != back.tm_sec)
		return false;
	snprintf(buf, len, "%lld.%s", (long long)t - off, frac);
	return true;
}

static const char *const type_names[] = {
    [json_type_null] = "null",        [json_type_boolean] = "a boolean",
    [json_type_double] = "a number",  [json_type_int] = "an integer",
    [json_type_object] = "an object", [json_type_array] = "an array",
    [json_type_string] = "a string",
};

static const char *const kind_wants[] = {
    [V_TEXT] = "a string",   [V_INT] = "an integer",
    [V_BOOL] = "a boolean",  [V_UUID] = "a string",
    [V_ENUM] = "a string",   [V_URL] = "a string",
    [V_TAGS] = "an array",   [V_INPUT] = "a string or an object",
    [V_TOKEN] = "a string",  [V_ENUMS] = "an array",
    [V_CURSOR] = "a string", [V_ITEMS] = "an array",
    [V_SINCE] = "a string",
};

static bool
kind_accepts(enum vkind k, enum json_type t)
{
	switch (k) {
	case V_INT:
		return t == json_type_int;
	case V_BOOL:
		return t == json_type_boolean;
	case V_TAGS:
	case V_ENUMS:
	case V_ITEMS:
		return t == json_type_array;
	case V_INPUT:
		return t == json_type_string || t == json_type_object;
	default:
		return t == json_type_string;
	}
}

static void
check_tags(struct json_object *arr, const struct vfield *f, struct json_object *errors)
{
	size_t i, n = json_object_array_length(arr);
	struct json_object *tag;
	char ptr[64];

	if ((long)n > f->max)
		valid_error(errors, "/tags", "at most %ld tags, got %zu", f->max, n);
	for (i = 0; i < n && i < 1000; i++) {
		tag = json_object_array_get_idx(arr, i);
		snprintf(ptr, sizeof ptr, "/%s/%zu", f->name, i);
		if (!json_object_is_type(tag, json_type_string))
			valid_error(errors, ptr, "must be a string");
		else if (json_object_get_string_len(tag) == 0 ||
		         utf8_chars(json_object_get_string(tag),
		                    (size_t)json_object_get_string_len(tag)) >
		             TAG_MAX_CHARS)
			valid_error(errors, ptr, "must be 1 to %d characters",
			            TAG_MAX_CHARS);
		else if (strlen(json_object_get_string(tag)) !=
		         (size_t)json_object_get_string_len(tag))
			valid_error(errors, ptr, "must not contain NUL characters");
	}
}

/* Is s (len bytes) one of choices? */
static bool
is_choice(const char *const *choices, const char *s, size_t len)
{
	for (; *choices != NULL; choices++)
		if (strlen(*choices) == len && memcmp(*choices, s, len) == 0)
			return true;
	return false;
}

static void
check_enums(struct json_object *arr, const struct vfield *f, const char *ptr,
            struct json_object *errors)
{
	size_t i, n = json_object_array_length(arr), used = 0;
	bool ok = (long)n >= f->min && (long)n <= f->max;
	struct json_object *item;
	char list[256] = "";

	for (i = 0; ok && i < n; i++) {
		item = json_object_array_get_idx(arr, i);
		ok = json_object_is_type(item, json_type_string) &&
		     is_choice(f->choices, json_object_get_string(item),
		               (size_t)json_object_get_string_len(item));
	}
	if (ok)
		return;
	for (i = 0; f->choices[i] != NULL && used < sizeof list; i++)
		used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
		                         i ? ", " : "", f->choices[i]);
	valid_error(errors, ptr, "must be %ld to %ld of %s", f->min, f->max, list);
}

/* Check one present member; on success fill v. */
static void
check_field(struct json_object *m, const struct vfield *f, struct vvalue *v,
            struct json_object *errors)
{
	enum json_type t = json_object_get_type(m);
	const char *s = NULL;
	size_t len = 0, chars, digits;
	char ptr[80];
	int64_t n;
	int before = json_object_array_length(errors);

	snprintf(ptr, sizeof ptr, "/%s", f->name);
	if (!kind_accepts(f->kind, t)) {
		valid_error(errors, ptr, "must be %s, not %s", kind_wants[f->kind],
		            type_names[t]);
		return;
	}
	if (t == json_type_string) {
		s = json_object_get_string(m);
		len = (size_t)json_object_get_string_len(m);
		if (strlen(s) != len) {
			valid_error(errors, ptr, "must not contain NUL characters");
			return;
		}
	}
	switch (f->kind) {
	case V_TEXT:
		chars = utf8_chars(s, len);
		if ((long)chars < f->min || (long)chars > f->max)
			valid_error(errors, ptr, "must be %ld to %ld characters", f->min,
			            f->max);
		break;
	case V_TOKEN:
		if ((long)len < f->min || (long)len > f->max ||
		    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz012345"
		              "6789_-") != len)
			valid_error(
			    errors, ptr,
			    "must be %ld to %ld characters of A-Z, a-z, 0-9, _ and -",
			    f->min, f->max);
		break;
	case V_INT:
		n = json_object_get_int64(m);
		if (n < f->min || n > f->max)
			valid_error(errors, ptr, "must be between %ld and %ld", f->min,
			            f->max);
		v->num = (long)n;
		snprintf(v->buf, sizeof v->buf, "%ld", v->num);
		s = v->buf;
		break;
	case V_BOOL:
		v->num = json_object_get_boolean(m);
		s = v->num ? "true" : "false";
		break;
	case V_UUID:
		if (!httpmsg_uuid(s))
			valid_error(errors, ptr, "must be a UUID");
		break;
	case V_ENUM:
		if (!is_choice(f->choices, s, len))
			valid_error(errors, ptr, "must be one of the supported values");
		break;
	case V_ENUMS:
		check_enums(m, f, ptr, errors);
		s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
		break;
	case V_CURSOR:
		digits = strspn(s, "0123456789"); /* microseconds: at most 18 */
		if (digits == 0 || digits > 18 || s[digits] != '_' ||
		    !httpmsg_uuid(s + digits + 1))
			valid_error(errors, ptr, "is not one this API returned");
		break;
	case V_URL:
		check_url(s, len, f, ptr, errors);
		break;
	case V_ITEMS:
		n = (int64_t)json_object_array_length(m);
		if (n < f->min || n > f->max)
			valid_error(errors, ptr, "must have %ld to %ld items, got %lld",
			            f->min, f->max, (long long)n);
		break;
	case V_SINCE:
		if (!since_time(s, v->buf, sizeof v->buf))
			valid_error(
			    errors, ptr,
			    "must be an RFC 3339 time (2026-01-31T08:00:00Z) or a "
			    "duration before now (90s, 15m, 1h, 7d)");
		s = v->buf;
		break;
	case V_TAGS:
		check_tags(m, f, errors);
		s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
		break;
	case V_INPUT:
		if (t == json_type_string) {
			if ((long)len > f->max)
				valid_error(
				    errors, ptr,
				    "a string input must be at most %ld bytes, got %zu",
				    f->max, len);
		}
		s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
		if (t == json_type_object && strlen(s) > INPUT_OBJECT_MAX)
			valid_error(errors, ptr,
			            "an object input must be at most %d bytes serialized",
			            INPUT_OBJECT_MAX);
		break;
	}
	if ((int)json_object_array_length(errors) == before) {
		v->present = true;
		v->str = s;
	}
}

/* The index of the field named name (len bytes), or n. */
static size_t
field_index(const struct vfield *fields, size_t n, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(fields[i].name) == len &&
		    memcmp(fields[i].name, name, len) == 0)
			break;
	return i;
}

/* JSON pointer escaping of one member name: ~ is ~0, / is ~1. */
static void
pointer_of(const char *name, char *buf, size_t len)
{
	size_t o = 0;

	buf[o++] = '/';
	for (; *name != '\0' && o + 3 < len; name++) {
		if (*name == '~' || *name == '/') {
			buf[o++] = '~';
			buf[o++] = *name == '~' ? '0' : '1';
		} else {
			buf[o++] = *name;
		}
	}
	buf[o] = '\0';
}

size_t
valid_check(struct json_object *body, const struct vfield *fields, size_t n, bool partial,
            struct vvalue *values, struct json_object *errors)
{
	struct json_object *m;
	size_t i, before = json_object_array_length(errors);
	char ptr[160];
	bool given;

	memset(values, 0, n * sizeof *values);
	json_object_object_foreach(body, key, val)
	{
		(void)val;
		if (field_index(fields, n, key, strlen(key)) == n) {
			pointer_of(key, ptr, sizeof ptr);
			valid_error(errors, ptr, "unknown member");
		}
	}
	for (i = 0; i < n; i++) {
		given = json_object_object_get_ex(body, fields[i].name, &m);
		if (given && m == NULL) {
			/* Given as null: a mistake, not a request for the default. */
			snprintf(ptr, sizeof ptr, "/%s", fields[i].name);
			valid_error(errors, ptr, "must be %s, not null",
			            kind_wants[fields[i].kind]);
		} else if (given) {
			check_field(m, &fields[i], &values[i], errors);
		} else if (partial) {
			continue;
		} else if (fields[i].required) {
			snprintf(ptr, sizeof ptr, "/%s", fields[i].name);
			valid_error(errors, ptr, "is required");
		} else if (fields[i].def != NULL) {
			values[i].present = true;
			values[i].str = fields[i].def;
			values[i].num = fields[i].kind == V_BOOL
			                    ? strcmp(fields[i].def, "true") == 0
			                    : atol(fields[i].def);
		}
	}
	if (partial && json_object_object_length(body) == 0)
		valid_error(errors, "", "give at least one member to change");
	return json_object_array_length(errors) - before;
}

static bool
utf8_valid(const char *s, size_t len)
{
	size_t i, k;

	for (i = 0; i < len; i += k)
		if ((k = jsontext_utf8_len((const unsigned char *)s + i, len - i)) == 0)
			return false;
	return true;
}

/* "/name" for a parameter the table does not name (httpmsg_param_name). */
static void
parameter_pointer(const char *name, size_t len, char *buf, size_t size)
{
	buf[0] = '/';
	httpmsg_param_name(name, len, buf + 1, size - 1);
}

/* Is an error from index from on about pointer? */
static bool
named(struct json_object *errors, size_t from, const char *pointer)
{
	struct json_object *p;
	size_t i;

	for (i = from; i < json_object_array_length(errors); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(errors, i),
		                              "pointer", &p) &&
		    strcmp(json_object_get_string(p), pointer) == 0)
			return true;
	return false;
}

/* Errors from index from name parameters: pointer "/limit" becomes
 * parameter "limit". */
static void
name_parameters(struct json_object *errors, size_t from)
{
	struct json_object *e, *ptr, *detail, *renamed;
	size_t i;

	for (i = from; i < json_object_array_length(errors); i++) {
		e = json_object_array_get_idx(errors, i);
		json_object_object_get_ex(e, "pointer", &ptr);
		json_object_object_get_ex(e, "detail", &detail);
		renamed = json_object_new_object();
		json_object_object_add(
		    renamed, "parameter",
		    json_object_new_string(json_object_get_string(ptr) + 1));
		json_object_object_add(renamed, "detail", json_object_get(detail));
		json_object_array_put_idx(errors, i, renamed);
	}
}

/* A query value (len bytes) as f's kind wants it: an integer when it is
 * one, an array of the comma-separated items, else a string. */
static struct json_object *
query_value(const struct vfield *f, const char *s, size_t len)
{
	size_t sign = len > 0 && s[0] == '-';
	const char *end = s + len, *comma;
	struct json_object *arr;

	if (f->kind == V_INT && len > sign &&
	    strspn(s + sign, "0123456789") == len - sign)
		return json_object_new_int64(strtoll(s, NULL, 10)); /* clamped */
	if (f->kind != V_ENUMS)
		return json_object_new_string_len(s, (int)len);
	arr = json_object_new_array();
	for (;; s = comma + 1) {
		comma = memchr(s, ',', (size_t)(end - s));
		if (comma == NULL)
			comma = end;
		json_object_array_add(arr,
		                      json_object_new_string_len(s, (int)(comma - s)));
		if (comma == end)
			return arr;
	}
}

struct json_object *
valid_query(const char *query, const struct vfield *fields, size_t n,
            struct vvalue *values, struct json_object *errors)
{
	struct json_object *obj = json_object_new_object();
	size_t from = json_object_array_length(errors), i, len;
	unsigned given[VALUES_MAX] = {0};
	const char *p, *end, *eq;
	char *buf = xmalloc(query != NULL ? strlen(query) + 1 : 1), ptr[80];

	for (p = query; p != NULL && *p != '\0'; p = *end ? end + 1 : end) {
		end = p + strcspn(p, "&");
		eq = p + strcspn(p, "=&");
		if (end == p)
			continue;
		httpmsg_unescape(p, (size_t)(eq - p), buf, (size_t)(eq - p) + 1, &len);
		if ((i = field_index(fields, n, buf, len)) == n) {
			parameter_pointer(buf, len, ptr, sizeof ptr);
			if (!named(errors, from, ptr))
				valid_error(errors, ptr,
				            "is not a parameter of this resource");
			continue;
		}
		if (given[i]++ > 0)
			continue;
		p = eq + (*eq == '=');
		httpmsg_unescape(p, (size_t)(end - p), buf, (size_t)(end - p) + 1, &len);
		snprintf(ptr, sizeof ptr, "/%s", fields[i].name);
		if (!utf8_valid(buf, len))
			valid_error(errors, ptr, "must be UTF-8 text");
		else
			json_object_object_add(obj, fields[i].name,
			                       query_value(&fields[i], buf, len));
	}
	free(buf);
	for (i = 0; i < n; i++) {
		snprintf(ptr, sizeof ptr, "/%s", fields[i].name);
		if (given[i] > 1 && !named(errors, from, ptr))
			valid_error(errors, ptr, "is given more than once");
		if (given[i] > 1)
			json_object_object_del(obj, fields[i].name);
	}
	valid_check(obj, fields, n, false, values, errors);
	name_parameters(errors, from);
	return obj;
}

struct json_object *
valid_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *obj;
	size_t end;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	end = json_tokener_get_parse_end(tok);
	err[0] = '\0'; /* stays "" for JSON's null: valid, but no object */
	if (obj == NULL && json_tokener_get_error(tok) == json_tokener_continue) {
		/* A bare number or literal is only known to end at the end of the
		 * input: say so once; anything else still open is incomplete. */
		obj = json_tokener_parse_ex(tok, "", 1);
		if (obj == NULL && json_tokener_get_error(tok) != json_tokener_success)
			snprintf(err, errlen,
			         "invalid JSON at byte %zu: the document is incomplete",
			         len);
		end = len;
	} else if (obj == NULL && json_tokener_get_error(tok) != json_tokener_success) {
		snprintf(err, errlen, "invalid JSON at byte %zu: %s", end,
		         json_tokener_error_desc(json_tokener_get_error(tok)));
	}
	if (err[0] == '\0') {
		while (end < len && strchr(" \t\r\n", buf[end]) != NULL &&
		       buf[end] != '\0')
			end++;
		if (end < len) {
			snprintf(
			    err, errlen,
			    "invalid JSON at byte %zu: unexpected data after the value",
			    end);
			json_object_put(obj);
			obj = NULL;
		}
	}
	json_tokener_free(tok);
	return obj;
}
