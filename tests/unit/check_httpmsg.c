/*
 * Unit tests for lib/httpmsg.c: reason phrases, request ids kept or made,
 * run ids, the API key a request presents, the /api alias, problem
 * bodies byte for byte as both servers send them (escaping and extra
 * members included), how a 400 names query parameters, and ETags.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "httpmsg.h"
#include "unit.h"

START_TEST(reasons)
{
	ck_assert_str_eq(httpmsg_reason(200), "OK");
	ck_assert_str_eq(httpmsg_reason(404), "Not Found");
	ck_assert_str_eq(httpmsg_reason(422), "Unprocessable Content");
	ck_assert_str_eq(httpmsg_reason(503), "Service Unavailable");
	ck_assert_str_eq(httpmsg_reason(599), "Unknown");
}
END_TEST

START_TEST(request_ids)
{
	static const char *const bad[] = {"", "has space", "new\nline", "quote\"",
	                                  "0123456789012345678901234567890123456789"
	                                  "0123456789012345678901234567890123456789"};
	char id[65], other[65];
	size_t i;

	httpmsg_request_id("abc-123_X.y", id);
	ck_assert_str_eq(id, "abc-123_X.y");
	httpmsg_request_id(
	    "0123456789012345678901234567890123456789012345678901234567890123", id);
	ck_assert_uint_eq(strlen(id), 64);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		httpmsg_request_id(bad[i], id);
		ck_assert_uint_eq(strlen(id), 32);
		ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
	}
	httpmsg_request_id(NULL, id);
	httpmsg_request_id(NULL, other);
	ck_assert_str_ne(id, other);
}
END_TEST

START_TEST(run_ids)
{
	ck_assert(httpmsg_uuid("00000000-0000-4000-8000-000000000000"));
	ck_assert(httpmsg_uuid("ABCDEF01-abcd-4000-8000-0123456789aB"));
	ck_assert(!httpmsg_uuid(""));
	ck_assert(!httpmsg_uuid("00000000-0000-4000-8000-00000000000"));
	ck_assert(!httpmsg_uuid("00000000-0000-4000-8000-0000000000000"));
	ck_assert(!httpmsg_uuid("00000000x0000-4000-8000-000000000000"));
	ck_assert(!httpmsg_uuid("g0000000-0000-4000-8000-000000000000"));
	ck_assert(!httpmsg_uuid("000000000-000-4000-8000-000000000000"));
}
END_TEST

START_TEST(api_keys_presented)
{
	ck_assert_str_eq(httpmsg_api_key("Bearer k1", "k2"), "k1");
	ck_assert_str_eq(httpmsg_api_key("bEARER   k1", NULL), "k1");
	ck_assert_str_eq(httpmsg_api_key("Bearer ", NULL), "");
	ck_assert_str_eq(httpmsg_api_key("Basic abc", "k2"), "k2");
	ck_assert_str_eq(httpmsg_api_key(NULL, "k2"), "k2");
	ck_assert_ptr_null(httpmsg_api_key("Basic abc", NULL));
	ck_assert_ptr_null(httpmsg_api_key(NULL, NULL));
}
END_TEST

START_TEST(paths_and_the_api_alias)
{
	/* Cut short when longer than the buffer; the alias only when it fits. */
	static const char *const cases[][2] = {
	    {"/api/v1/runs?limit=2", "/api/v1/runs"},
	    {"/api/runs/x/events?token=t", "/api/v1/runs/x/events"},
	    {"/api/", "/api/v1/"},
	    {"/api", "/api"},
	    {"/health", "/health"},
	    {"/0123456789012345678901234567890123456789",
	     "/012345678901234567890123456789"},
	    {"/api/0123456789012345678901234", "/api/0123456789012345678901234"},
	    {"/api/012345678901234567890", "/api/v1/012345678901234567890"},
	};
	char path[32];
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		httpmsg_path(cases[i][0], path, sizeof path);
		ck_assert_str_eq(path, cases[i][1]);
	}
}
END_TEST

START_TEST(problem_bodies)
{
	struct json_object *extra = json_object_new_object(), *errors;
	char *body;

	body = httpmsg_problem(404, "NOT_FOUND",
	                       "assay-stream serves only /api/v1/runs/{id}/events",
	                       "rid-1", NULL);
	ck_assert_str_eq(body, "{\"type\":\"about:blank\",\"title\":\"Not Found\","
	                       "\"status\":404,\"detail\":\"assay-stream serves only "
	                       "/api/v1/runs/{id}/events\",\"code\":\"NOT_FOUND\","
	                       "\"request_id\":\"rid-1\"}");
	free(body);
	body = httpmsg_problem(400, "BAD", "a \"q\" \\ \n\t\x01 \xc3\xa9 /", "r", NULL);
	ck_assert_str_eq(body,
	                 "{\"type\":\"about:blank\",\"title\":\"Bad Request\","
	                 "\"status\":400,\"detail\":\"a \\\"q\\\" \\\\ \\n\\t\\u0001 "
	                 "\xc3\xa9 /\",\"code\":\"BAD\",\"request_id\":\"r\"}");
	free(body);
	errors = json_object_new_array();
	json_object_array_add(errors, json_object_new_string("/name"));
	json_object_object_add(extra, "errors", errors);
	json_object_object_add(extra, "retry_after", json_object_new_int(3));
	body = httpmsg_problem(422, "VALIDATION_FAILED", "1 problem", "r", extra);
	ck_assert_str_eq(body, "{\"type\":\"about:blank\",\"title\":\"Unprocessable "
	                       "Content\",\"status\":422,\"detail\":\"1 problem\","
	                       "\"code\":\"VALIDATION_FAILED\",\"request_id\":\"r\","
	                       "\"errors\":[\"/name\"],\"retry_after\":3}");
	free(body);
	/* extra stays the caller's. */
	ck_assert_int_eq(json_object_object_length(extra), 2);
	json_object_put(extra);
}
END_TEST

START_TEST(origins)
{
	const char *allowed = "https://app.example.com, http://localhost:3000";

	ck_assert(httpmsg_origin_allowed("http://localhost:3000", allowed));
	ck_assert(httpmsg_origin_allowed("https://app.example.com", allowed));
	ck_assert(!httpmsg_origin_allowed("http://localhost:30000", allowed));
	ck_assert(!httpmsg_origin_allowed("https://app.example", allowed));
	ck_assert(!httpmsg_origin_allowed("", allowed));
	ck_assert(!httpmsg_origin_allowed(NULL, allowed));
	ck_assert(!httpmsg_origin_allowed("http://localhost:3000", ""));
}
END_TEST

START_TEST(query_values)
{
	char buf[8];

	ck_assert_int_eq(httpmsg_query("a=1&tag=x%2Cy+z", "tag", buf, sizeof buf), 1);
	ck_assert_str_eq(buf, "x,y z");
	ck_assert_int_eq(httpmsg_query("atag=1", "tag", buf, sizeof buf), 0);
	ck_assert_int_eq(httpmsg_query(NULL, "tag", buf, sizeof buf), 0);
	ck_assert_int_eq(httpmsg_query("tag=12345678", "tag", buf, sizeof buf), -1);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(httpmsg_query("tag=a%00b", "tag", buf, sizeof buf), -2);
}
END_TEST

START_TEST(unescaping)
{
	char buf[8];
	size_t len;

	ck_assert_uint_eq(httpmsg_unescape("a%2", 3, buf, sizeof buf, &len), 3);
	ck_assert_str_eq(buf, "a%2"); /* an incomplete escape is taken as is */
	ck_assert_uint_eq(httpmsg_unescape("%41b+c", 6, buf, 3, &len), 4);
	ck_assert_str_eq(buf, "Ab"); /* cut short: 4 of 6 bytes decoded */
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(httpmsg_unescape("%00x", 4, buf, sizeof buf, &len), 4);
	ck_assert_uint_eq(len, 2);
}
END_TEST

START_TEST(parameter_names)
{
	char buf[16];

	httpmsg_param_name("wait", 4, buf, sizeof buf);
	ck_assert_str_eq(buf, "wait");
	httpmsg_param_name("a\nb\x7f", 4, buf, sizeof buf);
	ck_assert_str_eq(buf, "a%0Ab%7F");
	httpmsg_param_name("\xc3\xa9\xff", 3, buf, sizeof buf); /* é, then a stray byte */
	ck_assert_str_eq(buf, "\xc3\xa9%FF");
	httpmsg_param_name("abcdefghijklmnopqrstuvwxyz", 26, buf, sizeof buf);
	ck_assert_str_eq(buf, "abcdefghijkl"); /* cut short to fit */
}
END_TEST

START_TEST(parameter_problems)
{
	struct json_object *errors = json_object_new_array(), *e, *extra;
	char detail[128];
	int i;

	for (i = 0; i < 3; i++) {
		e = json_object_new_object();
		json_object_object_add(e, "parameter",
		                       json_object_new_string(i ? "y" : "x"));
		json_object_object_add(e, "detail", json_object_new_string("is bad"));
		json_object_array_add(errors, e);
	}
	extra = httpmsg_param_problem(errors, detail, sizeof detail);
	ck_assert_str_eq(detail, "x is bad, and 2 more; see errors");
	ck_assert_ptr_eq(json_object_object_get(extra, "errors"), errors);
	json_object_array_del_idx(errors, 1, 2);
	json_object_put(
	    httpmsg_param_problem(json_object_get(errors), detail, sizeof detail));
	ck_assert_str_eq(detail, "x is bad");
	json_object_put(extra);
}
END_TEST

START_TEST(etags)
{
	char etag[35];

	/* The first 32 hex digits of the SHA-256 of the members, quoted. */
	httpmsg_etag("\"run\":{}", etag);
	ck_assert_uint_eq(strlen(etag), 34);
	ck_assert_str_eq(etag, "\"a2974f79db2c8e4512e8baa126a4549c\"");
}
END_TEST

UNIT_MAIN("httpmsg", query_values, unescaping, origins, reasons, request_ids, run_ids,
          api_keys_presented, paths_and_the_api_alias, problem_bodies, parameter_names,
          parameter_problems, etags)
