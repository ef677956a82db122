/*
 * Unit tests for lib/jsontext.c: what PostgreSQL's jsonb cannot hold is
 * found wherever it hides (member names included) and named by its JSON
 * pointer; what it can hold passes, surrogate pairs and escaped
 * backslashes included. A member named twice in one object, however it is
 * written and however deep, is found too, and in time that grows as
 * n log n with the number of members.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <time.h>

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

/* The pointer of the first member named twice (or unstorable), or "ok";
 * what it says of it in *why_out. */
static const char *
twice(const char *text, const char **why_out)
{
	static char ptr[256];
	const char *why = NULL;

	if (jsontext_storable_unique(text, strlen(text), ptr, sizeof ptr, &why))
		return "ok";
	ck_assert_ptr_nonnull(why);
	if (why_out != NULL)
		*why_out = why;
	return ptr;
}

/* Texts cut inside an escape of a member name are read within their
 * bounds: each is placed against a page no one may read. */
START_TEST(cut_texts_are_read_within_their_bounds)
{
	static const char *const cut[] = {
	    "{\"\\",      "{\"\\u",        "{\"\\u00", "{\"a\":1,\"\\u0061",
	    "{\"\\ud83d", "{\"\\ud83d\\u", "{\"x\\"};
	long page = sysconf(_SC_PAGESIZE);
	char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	     ptr[64];
	const char *why;
	size_t i, n;

	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_int_eq(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
	for (i = 0; i < sizeof cut / sizeof cut[0]; i++) {
		n = strlen(cut[i]);
		memcpy(mem + page - n, cut[i], n);
		(void)jsontext_storable_unique(mem + page - n, n, ptr, sizeof ptr, &why);
		(void)jsontext_storable(mem + page - n, n, ptr, sizeof ptr, &why);
	}
	munmap(mem, (size_t)page * 2);
}
END_TEST

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

START_TEST(members_named_twice_are_found_and_named)
{
	const char *why = NULL;

	ck_assert_str_eq(twice("{\"name\":\"a\",\"name\":\"b\"}", &why), "/name");
	ck_assert_str_eq(why, "appears twice");
	ck_assert_str_eq(twice("{\"a\":1,\"b\":2,\"a\":3,\"a\":4}", &why), "/a");
	ck_assert_str_eq(why, "appears more than twice");
	ck_assert_str_eq(twice("{\"input\":{\"x\":{\"k\":1,\"j\":2,\"k\":3}}}", NULL),
	                 "/input/x/k");
	ck_assert_str_eq(twice("{\"a\":[1,{\"b\":1},{\"c/d\":1,\"c/d\":2}]}", NULL),
	                 "/a/2/c~1d");
	/* Written differently, one name. */
	ck_assert_str_eq(twice("{\"a\":1,\"\\u0061\":2}", NULL), "/a");
	ck_assert_str_eq(twice("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", NULL),
	                 "/\xf0\x9f\x98\x80");
	ck_assert_str_eq(twice("{\"t\\tq\\\"\":1,\"t\\u0009q\\u0022\":2}", NULL),
	                 "/t\tq\"");
	/* Names resolved in a nested object are forgotten with it. */
	ck_assert_str_eq(
	    twice(
	        "{\"\\u0061\":{\"\\u0062\":1,\"\\u0063\":2},\"\\u0062\":1,\"\\u0061\":2}",
	        NULL),
	    "/a");
	/* An unstorable text is said to be so, as by jsontext_storable. */
	ck_assert_str_eq(twice("{\"v\":\"\\u0000\",\"v\":1}", &why), "/v");
	ck_assert_str_eq(why, "contains a NUL character (\\u0000)");
}
END_TEST

START_TEST(distinct_names_pass)
{
	/* One name in sibling or nested objects, in arrays, as a value. */
	ck_assert_str_eq(twice("{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}", NULL), "ok");
	ck_assert_str_eq(twice("[{\"a\":1},{\"a\":2},\"a\",\"a\"]", NULL), "ok");
	ck_assert_str_eq(twice("{\"a\":\"a\",\"ab\":\"a\",\"A\":1,\"\":2}", NULL), "ok");
	ck_assert_str_eq(twice("{\"k\":{\"x\":1},\"k2\":{\"x\":1}}", NULL), "ok");
	ck_assert_str_eq(twice("{}", NULL), "ok");
	/* jsontext_storable itself does not compare names (the executor's output). */
	ck_assert_str_eq(where("{\"a\":1,\"a\":2}"), "ok");
}
END_TEST

/* {"k0":0,"k1":0,...} with n members, the last named as the first when dup. */
static char *
wide_object(size_t n, bool dup)
{
	size_t cap = n * 24 + 16, o = 0, i;
	char *s = malloc(cap);

	ck_assert_ptr_nonnull(s);
	s[o++] = '{';
	for (i = 0; i < n; i++)
		o += (size_t)snprintf(s + o, cap - o, "%s\"k%zu\":0", i ? "," : "",
		                      dup && i == n - 1 ? (size_t)0 : i);
	s[o++] = '}';
	s[o] = '\0';
	return s;
}

static double
seconds_for(const char *text)
{
	char ptr[64];
	const char *why;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	(void)jsontext_storable_unique(text, strlen(text), ptr, sizeof ptr, &why);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

START_TEST(many_members_take_n_log_n)
{
	char *small = wide_object(20000, false), *big = wide_object(200000, true);
	double t_small, t_big;

	ck_assert_str_eq(twice(small, NULL), "ok");
	ck_assert_str_eq(twice(big, NULL), "/k0");
	t_small = seconds_for(small);
	t_big = seconds_for(big);
	/* Ten times the members: about 12 times the time, 100 if quadratic. */
	ck_assert_msg(t_big < 40 * t_small + 0.05,
	              "%.4f s for 200,000 members, %.4f s for 20,000", t_big, t_small);
	free(small);
	free(big);
}
END_TEST

/* The pointer jsontext_stream finds in text fed in pieces of step bytes
 * (0: all at once), or "ok". */
static const char *
streamed(const char *text, size_t step)
{
	static char ptr[256];
	struct jsontext_stream st;
	size_t len = strlen(text), at, n;
	const char *why = NULL;

	jsontext_stream_init(&st);
	for (at = 0; at < len; at += n) {
		n = step == 0 || len - at < step ? len - at : step;
		if (!jsontext_stream_feed(&st, text + at, n, ptr, sizeof ptr, &why))
			return ptr;
	}
	return jsontext_stream_end(&st, ptr, sizeof ptr, &why) ? "ok" : ptr;
}

/* Text that arrives in pieces is judged as when whole, wherever it is cut. */
START_TEST(streamed_text_is_judged_as_whole_text)
{
	static const char *const texts[] = {
	    "{\"a\":\"x\",\"b\":[1,{\"c\":null}]}",
	    "\"\\ud83d\\ude00 and \xc3\xa9\"",
	    "{\"k\":\"\\\\u0000\"}",
	    "[\"\\\"\\u0001\"]",
	    "{\"a\":{\"b\":[\"x\",\"v\\u0000\"]}}",
	    "{\"a/b~c\":\"\\u0000\"}",
	    "[1,[2,\"\\u0000\"]]",
	    "{\"v\":\"a\\ud800b\"}",
	    "\"\\udc00\"",
	    "{\"v\":\"\\ud800\\u0041\"}",
	    "{\"v\":[\"a\xed\xa0\x80\"]}",
	    "{\"w\":[0,\"\xf0\x9f\x98\x80\",\"\xc3\"]}",
	    "{\"k\":{\"\xc3\xa9t\xc3\xa9\":[\"\xff\"]}}",
	};
	size_t i, step;
	char whole[256];

	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		snprintf(whole, sizeof whole, "%s", where(texts[i]));
		for (step = 0; step < 8; step++)
			ck_assert_msg(strcmp(streamed(texts[i], step), whole) == 0,
			              "text %zu in pieces of %zu: %s, whole: %s", i, step,
			              streamed(texts[i], step), whole);
	}
	ck_assert_str_eq(streamed("\"\xc3", 1), "");
}
END_TEST

UNIT_MAIN("jsontext", streamed_text_is_judged_as_whole_text, storable_text_passes,
          cut_texts_are_read_within_their_bounds, nul_characters_are_found_and_named,
          lone_surrogates_are_found, utf8_lengths,
          members_named_twice_are_found_and_named, distinct_names_pass,
          many_members_take_n_log_n)
