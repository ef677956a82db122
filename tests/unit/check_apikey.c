/*
 * Unit tests for lib/apikey.c: keys and stream tokens made in the shape
 * that their checks accept, shapes refused, SHA-256 digests in hex.
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "apikey.h"
#include "unit.h"

START_TEST(keys)
{
	char key[APIKEY_LEN + 1], prefix[APIKEY_PREFIX_LEN + 1],
	    again[APIKEY_PREFIX_LEN + 1];

	ck_assert(apikey_generate(key, prefix));
	ck_assert_uint_eq(strlen(key), APIKEY_LEN);
	ck_assert(apikey_prefix(key, again));
	ck_assert_str_eq(prefix, again);
	ck_assert(strncmp(key, prefix, APIKEY_PREFIX_LEN) == 0);
	ck_assert(!apikey_prefix(
	    "assay_0000000_000000000000000000000000000000000000000000000000", again));
	ck_assert(!apikey_prefix(
	    "assay_00000000-000000000000000000000000000000000000000000000000", again));
	ck_assert(!apikey_prefix("", again));
}
END_TEST

START_TEST(stream_tokens)
{
	char token[APIKEY_TOKEN_LEN + 1], other[APIKEY_TOKEN_LEN + 1];

	ck_assert(apikey_token_generate(token));
	ck_assert_uint_eq(strlen(token), 52);
	ck_assert(strncmp(token, "sse_", 4) == 0);
	ck_assert(apikey_token_valid(token));
	ck_assert(apikey_token_generate(other));
	ck_assert_str_ne(token, other);
	ck_assert(
	    apikey_token_valid("sse_0123456789abcdef0123456789abcdef0123456789abcdef"));
	ck_assert(
	    !apikey_token_valid("sse_0123456789ABCDEF0123456789abcdef0123456789abcdef"));
	ck_assert(
	    !apikey_token_valid("sse_0123456789abcdef0123456789abcdef0123456789abcde"));
	ck_assert(
	    !apikey_token_valid("sse_0123456789abcdef0123456789abcdef0123456789abcdef0"));
	ck_assert(
	    !apikey_token_valid("tok_0123456789abcdef0123456789abcdef0123456789abcdef"));
	ck_assert(!apikey_token_valid("sse_"));
	ck_assert(!apikey_token_valid(""));
}
END_TEST

START_TEST(digests)
{
	char hex[65];

	apikey_sha256_hex("abc", 3, hex);
	ck_assert_str_eq(
	    hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ck_assert(apikey_equal(hex, "ba7816bf", 8));
	ck_assert(!apikey_equal(hex, "ba7816bF", 8));
}
END_TEST

UNIT_MAIN("apikey", keys, stream_tokens, digests)
