/*
 * Unit tests for fcgi-app/http.c helpers that need no connection: request
 * id acceptance and generation, reason phrases.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "unit.h"

START_TEST(request_id_kept_when_well_formed)
{
	char id[65];

	http_request_id("abc-123_X.y", id);
	ck_assert_str_eq(id, "abc-123_X.y");
}
END_TEST

START_TEST(request_id_replaced_when_malformed)
{
	static const char *const bad[] = {"", "has space", "new\nline", "quote\"",
	                                  "0123456789012345678901234567890123456789"
	                                  "0123456789012345678901234567890123456789"};
	char id[65], other[65];
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		http_request_id(bad[i], id);
		ck_assert_uint_eq(strlen(id), 32);
		ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
	}
	http_request_id(NULL, id);
	http_request_id(NULL, other);
	ck_assert_str_ne(id, other);
}
END_TEST

START_TEST(reasons)
{
	ck_assert_str_eq(http_reason(404), "Not Found");
	ck_assert_str_eq(http_reason(422), "Unprocessable Content");
	ck_assert_str_eq(http_reason(599), "Unknown");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");

	tcase_add_test(tc, request_id_kept_when_well_formed);
	tcase_add_test(tc, request_id_replaced_when_malformed);
	tcase_add_test(tc, reasons);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
