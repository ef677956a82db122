/*
 * Unit tests for lib/jsontext.c: what PostgreSQL's jsonb cannot hold is
 * found wherever it hides (member names included) and named by its JSON
 * pointer; what it can hold passes, surrogate pairs and escaped
 * backslashes included.
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "jsontext.h"
#include "unit.h"

/* The pointer of the first unstorable member of text, or "ok". */
static const char *
where(const char *text)
{
	static char ptr[256];
	const char *why = NULL;

	if (jsontext_storable(text, strlen(text), ptr, sizeof ptr, &why))
		return "ok";
	ck_assert_ptr_nonnull(why);
	return ptr;
}

START_TEST(storable_text_passes)
{
	ck_assert_str_eq(where("{\"a\":\"x\",\"b\":[1,{\"c\":null}]}"), "ok");
	ck_assert_str_eq(where("\"\\ud83d\\ude00 and \xc3\xa9\""), "ok");
	ck_assert_str_eq(where("{\"k\":\"\\\\u0000\"}"),
	                 "ok"); /* a backslash, then text */
	ck_assert_str_eq(where("[\"\\\"\\u0001\"]"), "ok");
}
END_TEST

START_TEST(nul_characters_are_found_and_named)
{
	ck_assert_str_eq(where("{\"a\":{\"b\":[\"x\",\"v\\u0000\"]}}"), "/a/b/1");
	ck_assert_str_eq(where("{\"x\":1,\"k\\u0000a\":1,\"k\":2}"), "/k");
	ck_assert_str_eq(where("{\"a/b~c\":\"\\u0000\"}"), "/a~1b~0c");
	ck_assert_str_eq(where("[1,[2,\"\\u0000\"]]"), "/1/1");
}
END_TEST

START_TEST(lone_surrogates_are_found)
{
	const char *why;
	char ptr[64];

	ck_assert_str_eq(where("{\"v\":\"a\\ud800b\"}"), "/v");
	ck_assert_str_eq(where("\"\\udc00\""), "");
	ck_assert_str_eq(where("{\"v\":\"\\ud800\\u0041\"}"), "/v");
	ck_assert_str_eq(where("{\"v\":[\"a\xed\xa0\x80\"]}"), "/v/0"); /* encoded */
	ck_assert(!jsontext_storable("\"\\ud800\"", 8, ptr, sizeof ptr, &why));
	ck_assert_str_eq(why, "contains a lone UTF-16 surrogate");
}
END_TEST

START_TEST(utf8_lengths)
{
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"a", 1), 1);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4),
	                  4);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xc0\x80", 2), 0);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4),
	                  0);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\xc3", 1), 0);
	ck_assert_uint_eq(jsontext_utf8_len((const unsigned char *)"\x80", 1), 0);
}
END_TEST

UNIT_MAIN("jsontext", storable_text_passes, nul_characters_are_found_and_named,
          lone_surrogates_are_found, utf8_lengths)
