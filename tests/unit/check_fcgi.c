/*
 * Unit tests for stream/fcgi.c: records split anywhere, padding, bad
 * versions, name-value pairs with 1- and 4-byte lengths, and the records
 * written for a stream (large data split, an empty STDOUT then
 * END_REQUEST at the end).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "unit.h"

static const unsigned char begin[] = {
    1, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};

START_TEST(parse_whole_and_partial)
{
	struct fcgi_record r;
	size_t i;

	for (i = 0; i < sizeof begin; i++)
		ck_assert_int_eq(fcgi_parse(begin, i, &r), 0);
	ck_assert_int_eq(fcgi_parse(begin, sizeof begin, &r), 16);
	ck_assert_uint_eq(r.type, FCGI_BEGIN_REQUEST);
	ck_assert_uint_eq(r.request_id, 1);
	ck_assert_uint_eq(r.len, 8);
}
END_TEST

START_TEST(parse_padding_and_version)
{
	unsigned char rec[] = {1,   FCGI_STDIN, 1,   2, 0, 3, 5, 0,
	                       'a', 'b',        'c', 0, 0, 0, 0, 0};
	struct fcgi_record r;

	ck_assert_int_eq(fcgi_parse(rec, sizeof rec - 1, &r), 0);
	ck_assert_int_eq(fcgi_parse(rec, sizeof rec, &r), 16);
	ck_assert_uint_eq(r.request_id, 258);
	ck_assert_int_eq(memcmp(r.content, "abc", 3), 0);
	rec[0] = 2;
	ck_assert_int_eq(fcgi_parse(rec, sizeof rec, &r), -1);
}
END_TEST

START_TEST(params_short_and_long)
{
	unsigned char p[600];
	size_t n = 0, vlen;
	const char *v;

	p[n++] = 11;
	p[n++] = 3;
	memcpy(p + n, "REQUEST_URIabc", 14);
	n += 14;
	p[n++] = 4; /* a 300-byte value: 4-byte length */
	p[n++] = 0x80;
	p[n++] = 0;
	p[n++] = 1;
	p[n++] = 44;
	memcpy(p + n, "HOST", 4);
	n += 4;
	memset(p + n, 'x', 300);
	n += 300;
	v = fcgi_param(p, n, "REQUEST_URI", &vlen);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(vlen, 3);
	ck_assert_int_eq(memcmp(v, "abc", 3), 0);
	v = fcgi_param(p, n, "HOST", &vlen);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(vlen, 300);
	ck_assert_ptr_null(fcgi_param(p, n, "NOPE", &vlen));
	ck_assert_ptr_null(fcgi_param(p, n - 1, "HOST", &vlen)); /* truncated */
}
END_TEST

START_TEST(append_split_and_end)
{
	char *out = NULL, *data = malloc(70000);
	size_t len = 0, cap = 0;
	struct fcgi_record r;
	long n;

	memset(data, 'd', 70000);
	fcgi_append(&out, &len, &cap, FCGI_STDOUT, 7, data, 70000);
	fcgi_append(&out, &len, &cap, FCGI_STDOUT, 7, data, 0); /* nothing */
	fcgi_append_end(&out, &len, &cap, 7);
	n = fcgi_parse((unsigned char *)out, len, &r);
	ck_assert_uint_eq(r.len, 65535);
	ck_assert_uint_eq(r.request_id, 7);
	n += fcgi_parse((unsigned char *)out + n, len - (size_t)n, &r);
	ck_assert_uint_eq(r.len, 70000 - 65535);
	n += fcgi_parse((unsigned char *)out + n, len - (size_t)n, &r);
	ck_assert_uint_eq(r.type, FCGI_STDOUT);
	ck_assert_uint_eq(r.len, 0);
	n += fcgi_parse((unsigned char *)out + n, len - (size_t)n, &r);
	ck_assert_uint_eq(r.type, FCGI_END_REQUEST);
	ck_assert_uint_eq((size_t)n, len);
	free(out);
	free(data);
}
END_TEST

UNIT_MAIN("fcgi", parse_whole_and_partial, parse_padding_and_version,
          params_short_and_long, append_split_and_end)
