/*
 * Unit tests for fcgi-app/valid.c: every violation reported with its
 * pointer, defaults, partial (PATCH) mode, limits counted in characters,
 * the strict JSON parser, and query strings checked by the same tables.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"
#include "httpmsg.h"
#include "unit.h"

static struct json_object *
parse(const char *text)
{
	char err[256];
	struct json_object *o = valid_parse(text, strlen(text), err, sizeof err);

	ck_assert_msg(o != NULL, "%s", err);
	return o;
}

/* "pointer detail|pointer detail|..." in report order. */
static const char *
pointers(struct json_object *errors)
{
	static char buf[1024];
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < json_object_array_length(errors); i++) {
		struct json_object *e = json_object_array_get_idx(errors, i), *p;

		json_object_object_get_ex(e, "pointer", &p);
		used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s",
		                         i ? "," : "", json_object_get_string(p));
	}
	return buf;
}

/* Check a run body: how many violations, their pointers in *ptrs. The
 * values borrow from the body, kept until the next call. */
static size_t
check_run(const char *text, struct vvalue *v, const char **ptrs)
{
	static struct json_object *body;
	struct json_object *errors = json_object_new_array();
	size_t n;

	json_object_put(body);
	body = parse(text);
	n = valid_check(body, run_fields, RF__MAX, false, v, errors);
	*ptrs = pointers(errors);
	json_object_put(errors);
	return n;
}

START_TEST(valid_run_with_defaults)
{
	struct vvalue v[RF__MAX];
	const char *ptrs;

	ck_assert_uint_eq(check_run("{\"name\":\"n\",\"analysis_id\":"
	                            "\"00000000-0000-0000-0000-00000000000a\"}",
	                            v, &ptrs),
	                  0);
	ck_assert_str_eq(v[RF_NAME].str, "n");
	ck_assert(v[RF_START].present && v[RF_START].num == 1);
	ck_assert_str_eq(v[RF_PRIORITY].str, "0");
	ck_assert_str_eq(v[RF_TAGS].str, "[]");
	ck_assert(!v[RF_INPUT].present && !v[RF_TOKEN].present);
}
END_TEST

START_TEST(every_violation_is_listed)
{
	struct vvalue v[RF__MAX];
	const char *ptrs;

	ck_assert_uint_eq(check_run("{\"name\":\"\",\"analysis_id\":\"x\",\"input\":"
	                            "[1],\"client_token\":\"a b c d e\","
	                            "\"tags\":[\"ok\",2,\"\"],\"priority\":5000,"
	                            "\"callback_url\":\"file:///etc/passwd\","
	                            "\"start\":1,\"x/y~z\":0}",
	                            v, &ptrs),
	                  10);
	ck_assert_str_eq(ptrs, "/x~1y~0z,/name,/analysis_id,/input,/client_token,"
	                       "/tags/1,/tags/2,/priority,/callback_url,/start");
}
END_TEST

/* The detail of the one violation of a run body with this callback_url. */
static const char *
callback_detail(const char *url)
{
	static char detail[256];
	struct json_object *body, *errors = json_object_new_array(), *d;
	struct vvalue v[RF__MAX];
	char text[2200];

	snprintf(text, sizeof text,
	         "{\"name\":\"n\",\"analysis_id\":"
	         "\"00000000-0000-0000-0000-00000000000a\",\"callback_url\":\"%s\"}",
	         url);
	body = parse(text);
	detail[0] = '\0';
	if (valid_check(body, run_fields, RF__MAX, false, v, errors) == 1 &&
	    json_object_object_get_ex(json_object_array_get_idx(errors, 0), "detail", &d))
		snprintf(detail, sizeof detail, "%s", json_object_get_string(d));
	else
		ck_assert(v[RF_CALLBACK].present && strcmp(v[RF_CALLBACK].str, url) == 0);
	json_object_put(errors);
	json_object_put(body);
	return detail;
}

START_TEST(callback_urls)
{
	static const char *const fine[] = {"http://example.com/hook",
	                                   "https://example.com:8443/a@b?c=d",
	                                   "http://[::1]/x", "HTTPS://Example.COM"};
	char long_url[2100];
	size_t i;

	for (i = 0; i < sizeof fine / sizeof fine[0]; i++)
		ck_assert_msg(callback_detail(fine[i])[0] == '\0', "%s: %s", fine[i],
		              callback_detail(fine[i]));
	ck_assert_str_eq(callback_detail("ftp://example.com/x"),
	                 "must be an http or https URL of at most 2048 bytes");
	ck_assert_str_eq(callback_detail("http://user:pw@example.com/x"),
	                 "must not contain credentials (user:password@)");
	ck_assert_str_eq(callback_detail("http://:pw@example.com/x"),
	                 "must not contain credentials (user:password@)");
	ck_assert_str_eq(callback_detail("http://x.example/#frag"),
	                 "must not contain a fragment (#...)");
	ck_assert_str_eq(callback_detail("http://x.example/#"),
	                 "must not contain a fragment (#...)");
	snprintf(long_url, sizeof long_url, "http://example.com/%02030d", 0);
	ck_assert_str_eq(callback_detail(long_url),
	                 "must be an http or https URL of at most 2048 bytes");
}
END_TEST

START_TEST(required_and_partial)
{
	struct json_object *body = parse("{}"), *errors = json_object_new_array();
	struct vvalue v[AF__MAX];

	ck_assert_uint_eq(valid_check(body, analysis_fields, AF__MAX, false, v, errors),
	                  2);
	ck_assert_str_eq(pointers(errors), "/script,/title");
	json_object_put(errors);
	errors = json_object_new_array(); /* a check's body: the first AF_CHECK */
	ck_assert_uint_eq(valid_check(body, analysis_fields, AF_CHECK, false, v, errors),
	                  1);
	ck_assert_str_eq(pointers(errors), "/script");
	ck_assert_str_eq(v[AF_RUNTIME].str, "js");
	json_object_put(errors);
	errors = json_object_new_array(); /* a PATCH must change something */
	ck_assert_uint_eq(valid_check(body, analysis_fields, AF__MAX, true, v, errors),
	                  1);
	ck_assert_str_eq(pointers(errors), "");
	json_object_put(errors);
	json_object_put(body);
	body = parse("{\"title\":\"t\"}");
	errors = json_object_new_array();
	ck_assert_uint_eq(valid_check(body, analysis_fields, AF__MAX, true, v, errors),
	                  0);
	ck_assert(!v[AF_RUNTIME].present); /* no defaults when patching */
	json_object_put(errors);
	json_object_put(body);
}
END_TEST

START_TEST(lengths_are_characters)
{
	char text[1024] = "{\"name\":\"";
	struct json_object *body, *errors = json_object_new_array();
	struct vvalue v[RF__MAX];
	int i;

	for (i = 0; i < 128; i++)
		strcat(text, "\xc3\xa9"); /* é: two bytes, one character */
	strcat(text, "\",\"analysis_id\":\"00000000-0000-0000-0000-00000000000a\"}");
	body = parse(text);
	ck_assert_uint_eq(valid_check(body, run_fields, RF__MAX, false, v, errors), 0);
	json_object_put(body);
	json_object_put(errors);
}
END_TEST

START_TEST(nul_in_strings_refused)
{
	struct vvalue v[RF__MAX];
	const char *ptrs;

	ck_assert_uint_eq(check_run("{\"name\":\"a\\u0000b\",\"analysis_id\":"
	                            "\"00000000-0000-0000-0000-00000000000a\"}",
	                            v, &ptrs),
	                  1);
	ck_assert_str_eq(ptrs, "/name");
}
END_TEST

START_TEST(parser_is_strict)
{
	static const char *const bad[] = {
	    "{", "{\"a\":1,}", "{\"a\":1} x", "[1 2]", "{\"a\":\"\xff\"}",
	    "",  "null x",     "1 2"};
	char err[256];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(valid_parse(bad[i], strlen(bad[i]), err, sizeof err) ==
		                  NULL,
		              "%s", bad[i]);
		ck_assert_msg(strstr(err, "at byte") != NULL, "%s", err);
	}
	json_object_put(parse(" {\"a\":1}\r\n "));
}
END_TEST

/* A member given as null is refused, not taken for its default. */
START_TEST(null_members_refused)
{
	struct vvalue v[RF__MAX];
	const char *ptrs;

	ck_assert_uint_eq(check_run("{\"name\":\"n\",\"analysis_id\":"
	                            "\"00000000-0000-0000-0000-00000000000a\","
	                            "\"priority\":null,\"input\":null}",
	                            v, &ptrs),
	                  2);
	ck_assert_str_eq(ptrs, "/input,/priority");
}
END_TEST

/* Valid JSON that is no object is parsed as what it is, so that the body
 * can be refused for being no object (422), not for being incomplete. */
START_TEST(scalars_are_valid_json)
{
	struct json_object *o;
	char err[256];

	o = valid_parse("0", 1, err, sizeof err);
	ck_assert(o != NULL && json_object_is_type(o, json_type_int));
	json_object_put(o);
	o = valid_parse("12.5e1", 6, err, sizeof err);
	ck_assert(o != NULL && json_object_is_type(o, json_type_double));
	json_object_put(o);
	o = valid_parse("true", 4, err, sizeof err);
	ck_assert(o != NULL && json_object_is_type(o, json_type_boolean));
	json_object_put(o);
	ck_assert_ptr_null(valid_parse(" null ", 6, err, sizeof err));
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(uuids)
{
	ck_assert(httpmsg_uuid("0123abcd-4567-89ef-ABCD-0123456789ab"));
	ck_assert(!httpmsg_uuid("0123abcd-4567-89ef-ABCD-0123456789a"));
	ck_assert(!httpmsg_uuid("0123abcd-4567-89ef-ABCD-0123456789abc"));
	ck_assert(!httpmsg_uuid("0123abcd_4567-89ef-ABCD-0123456789ab"));
	ck_assert(!httpmsg_uuid("g123abcd-4567-89ef-ABCD-0123456789ab"));
}
END_TEST

#define UUID "0123abcd-4567-89ef-abcd-0123456789ab"
#define STATUS_DETAIL                                                                    \
	"must be 1 to 6 of created, pending, running, completed, failed, canceled"

/* Check a query against the first n fields of list_query: how many
 * violations, "parameter detail|..." in *report. The values borrow from
 * the parameters, kept until the next call. */
static size_t
check_query(const char *query, size_t n, struct vvalue *v, const char **report)
{
	static struct json_object *params;
	static char buf[2048];
	struct json_object *errors = json_object_new_array(), *e, *name, *detail;
	size_t i, used = 0;

	json_object_put(params);
	params = valid_query(query, list_query, n, v, errors);
	buf[0] = '\0';
	for (i = 0; i < json_object_array_length(errors); i++) {
		e = json_object_array_get_idx(errors, i);
		ck_assert(json_object_object_get_ex(e, "parameter", &name));
		ck_assert(json_object_object_get_ex(e, "detail", &detail));
		used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s %s",
		                         i ? "|" : "", json_object_get_string(name),
		                         json_object_get_string(detail));
	}
	*report = buf;
	n = json_object_array_length(errors);
	json_object_put(errors);
	return n;
}

START_TEST(query_values_and_defaults)
{
	struct vvalue v[QF__MAX];
	const char *report;

	ck_assert_uint_eq(check_query(NULL, QF__MAX, v, &report), 0);
	ck_assert(v[QF_LIMIT].present && v[QF_LIMIT].num == 20);
	ck_assert_ptr_null(v[QF_STATUS].str);
	ck_assert_ptr_null(v[QF_CURSOR].str);
	ck_assert_uint_eq(check_query("&limit=5&status=completed%2Cfailed&tag=a+b,c&"
	                              "analysis_id=" UUID "&cursor=1700000000123_" UUID
	                              "&",
	                              QF__MAX, v, &report),
	                  0);
	ck_assert_int_eq(v[QF_LIMIT].num, 5);
	ck_assert_str_eq(v[QF_STATUS].str, "[\"completed\",\"failed\"]");
	ck_assert_str_eq(v[QF_TAG].str, "a b,c");
	ck_assert_str_eq(v[QF_ANALYSIS].str, UUID);
	ck_assert_str_eq(v[QF_CURSOR].str, "1700000000123_" UUID);
	ck_assert_uint_eq(check_query("status=canceled", QF__MAX, v, &report), 0);
	ck_assert_str_eq(v[QF_STATUS].str, "[\"canceled\"]");
}
END_TEST

/* One violation per parameter, named, those the table does not know first. */
START_TEST(query_violations_name_each_parameter)
{
	struct vvalue v[QF__MAX];
	const char *report;

	ck_assert_uint_eq(check_query("limit=0&status=completed,&tag=&analysis_id=x&"
	                              "cursor=bogus&stauts=failed&stauts=x",
	                              QF__MAX, v, &report),
	                  6);
	ck_assert_str_eq(report, "stauts is not a parameter of this resource|"
	                         "limit must be between 1 and 100|"
	                         "cursor is not one this API returned|"
	                         "status " STATUS_DETAIL "|"
	                         "tag must be 1 to 64 characters|"
	                         "analysis_id must be a UUID");
}
END_TEST

/* Each query refused, with what is said about it. */
START_TEST(query_refusals)
{
	static const struct {
		const char *query;
		size_t nfields;
		const char *report;
	} refused[] = {
	    {"limit=99999999999999999999", QF__MAX, "limit must be between 1 and 100"},
	    {"limit=-3", QF__MAX, "limit must be between 1 and 100"},
	    {"limit=1e2", QF__MAX, "limit must be an integer, not a string"},
	    {"limit", QF__MAX, "limit must be an integer, not a string"},
	    {"status=", QF__MAX, "status " STATUS_DETAIL},
	    {"status=failed,failed,failed,failed,failed,failed,failed", QF__MAX,
	     "status " STATUS_DETAIL},
	    {"status=failed%00x", QF__MAX, "status " STATUS_DETAIL},
	    {"cursor=1_" UUID "x", QF__MAX, "cursor is not one this API returned"},
	    {"cursor=_" UUID, QF__MAX, "cursor is not one this API returned"},
	    {"tag=%ff", QF__MAX, "tag must be UTF-8 text"},
	    {"tag=a%00b", QF__MAX, "tag must not contain NUL characters"},
	    {"limit=1&limit=1&limit=2", QF__MAX, "limit is given more than once"},
	    {"%ff%01%C3%A9=1", QF__MAX,
	     "%FF%01\xc3\xa9 is not a parameter of this resource"},
	    /* The analyses' listing takes a page only. */
	    {"limit=3&status=failed", QF_PAGE,
	     "status is not a parameter of this resource"},
	};
	struct vvalue v[QF__MAX];
	const char *report;
	size_t i;

	for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		ck_assert_uint_eq(
		    check_query(refused[i].query, refused[i].nfields, v, &report), 1);
		ck_assert_str_eq(report, refused[i].report);
	}
}
END_TEST

START_TEST(query_bounds_and_names)
{
	struct vvalue v[QF__MAX];
	const char *report;
	char query[512] = "tag=";
	int i;

	for (i = 0; i < 64; i++)
		strcat(query, "%C3%A9"); /* é: 64 characters are allowed */
	ck_assert_uint_eq(check_query(query, QF__MAX, v, &report), 0);
	strcat(query, "e");
	ck_assert_uint_eq(check_query(query, QF__MAX, v, &report), 1);
	ck_assert_uint_eq(check_query("limit=100", QF__MAX, v, &report), 0);
	ck_assert_uint_eq(check_query("l%69mit=3", QF__MAX, v, &report), 0);
	ck_assert_int_eq(v[QF_LIMIT].num, 3);
}
END_TEST

/* since: an RFC 3339 time, or a duration before now, as seconds since the
 * epoch; anything else named. */
START_TEST(query_since)
{
	static const char *const bad[] = {
	    "1x",
	    "h",
	    "10",
	    "2026-02-30T00:00:00Z",
	    "2026-01-01",
	    "2026-01-01T00:00:00",
	    "2026-01-01T00:00:00.Z",
	    "2026-01-01T00:00:00+1:00",
	    "2026-01-01 00:00:00Z",
	};
	struct vvalue v[QF__MAX];
	const char *report;
	char query[80];
	long now = (long)time(NULL);
	size_t i;

	ck_assert_uint_eq(check_query("since=2026-01-31T08:00:00Z", QF__MAX, v, &report),
	                  0);
	ck_assert_str_eq(v[QF_SINCE].str, "1769846400.0");
	ck_assert_uint_eq(
	    check_query("since=2026-01-31t10:00:00.1234567%2B02:00", QF__MAX, v, &report),
	    0);
	ck_assert_str_eq(v[QF_SINCE].str, "1769846400.123456");
	ck_assert_uint_eq(
	    check_query("since=2026-01-31T07:30:00-00:30", QF__MAX, v, &report), 0);
	ck_assert_str_eq(v[QF_SINCE].str, "1769846400.0");
	ck_assert_uint_eq(check_query("since=2h", QF__MAX, v, &report), 0);
	ck_assert(labs(atol(v[QF_SINCE].str) - (now - 7200)) <= 1);
	ck_assert_uint_eq(check_query("since=7d", QF__MAX, v, &report), 0);
	ck_assert(labs(atol(v[QF_SINCE].str) - (now - 7 * 86400)) <= 1);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(query, sizeof query, "since=%s", bad[i]);
		ck_assert_uint_eq(check_query(query, QF__MAX, v, &report), 1);
		ck_assert_msg(strncmp(report, "since must be an RFC 3339 time", 30) == 0,
		              "%s: %s", bad[i], report);
	}
}
END_TEST

/* A batch's runs: an array of 1 to 100, whatever its items (the handler
 * checks each). */
START_TEST(batch_items)
{
	struct json_object *errors = json_object_new_array(), *body;
	struct vvalue v[BF__MAX];

	body = json_tokener_parse("{\"runs\":[1,{}]}");
	ck_assert_uint_eq(valid_check(body, batch_fields, BF__MAX, false, v, errors), 0);
	json_object_put(body);
	body = json_tokener_parse("{\"runs\":[]}");
	ck_assert_uint_eq(valid_check(body, batch_fields, BF__MAX, false, v, errors), 1);
	json_object_put(body);
	body = json_tokener_parse("{\"runs\":{}}");
	ck_assert_uint_eq(valid_check(body, batch_fields, BF__MAX, false, v, errors), 1);
	json_object_put(body);
	ck_assert_str_eq(
	    json_object_to_json_string_ext(errors, JSON_C_TO_STRING_PLAIN),
	    "[{\"pointer\":\"\\/runs\",\"detail\":\"must have 1 to 100 items, "
	    "got 0\"},{\"pointer\":\"\\/runs\",\"detail\":\"must be an array, "
	    "not an object\"}]");
	json_object_put(errors);
}
END_TEST

UNIT_MAIN("valid", null_members_refused, scalars_are_valid_json, valid_run_with_defaults,
          every_violation_is_listed, required_and_partial, lengths_are_characters,
          nul_in_strings_refused, parser_is_strict, uuids, query_values_and_defaults,
          query_violations_name_each_parameter, query_refusals, query_bounds_and_names,
          callback_urls, query_since, batch_items)
