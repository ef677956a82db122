/*
 * Unit tests for lib/jobtoken.c: tokens made with the first key verify
 * with either key; a token from another key, a changed one, an expired
 * one, one that names another algorithm, and key files without a usable
 * key are refused.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobtoken.h"
#include "unit.h"

static const char *
key_file(const char *text)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof path, "/tmp/check_jobtoken.%d", (int)getpid());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
load(struct jobtoken_keys *k, const char *text)
{
	const char *why = NULL;

	ck_assert_msg(jobtoken_keys_load(k, key_file(text), &why), "%s", why);
	unlink(key_file(""));
}

static const struct jobtoken_claims claims = {
    .run = "0b1e7c9a-4d4f-4a43-9b2e-6f0c6f1a2b3c", .attempt = 2, .project = 7};

START_TEST(made_and_verified)
{
	struct jobtoken_keys k, rotated, other;
	struct jobtoken_claims c = claims, got;
	time_t now = time(NULL);
	char *t;

	c.exp = now + 60;
	load(&k, "# job tokens\nfirst-key-0123456789abcdef0123456789abcdef\n");
	load(&rotated, "new-key-0123456789abcdef0123456789abcdef01\n"
	               "first-key-0123456789abcdef0123456789abcdef\n");
	load(&other, "another-key-0123456789abcdef0123456789abcdef\n");
	t = jobtoken_mint(&k, &c);
	ck_assert_ptr_nonnull(t);
	ck_assert(jobtoken_verify(&k, t, now, &got));
	ck_assert_str_eq(got.run, claims.run);
	ck_assert_int_eq(got.attempt, 2);
	ck_assert_int_eq(got.project, 7);
	ck_assert(
	    jobtoken_verify(&rotated, t, now, &got)); /* the old key still verifies */
	ck_assert(!jobtoken_verify(&other, t, now, &got));
	ck_assert(!jobtoken_verify(&k, t, now + 61, &got)); /* expired */
	t[strlen(t) - 2] ^= 1;                              /* a changed signature */
	ck_assert(!jobtoken_verify(&k, t, now, &got));
	free(t);
	c.exp = now + 100000; /* capped */
	t = jobtoken_mint(&k, &c);
	ck_assert(jobtoken_verify(&k, t, now, &got));
	ck_assert_int_le(got.exp, now + JOBTOKEN_TTL_MAX);
	free(t);
	jobtoken_keys_free(&k);
	jobtoken_keys_free(&rotated);
	jobtoken_keys_free(&other);
}
END_TEST

START_TEST(other_algorithms_are_refused)
{
	struct jobtoken_keys k;
	struct jobtoken_claims got;
	/* {"alg":"none"} with claims that would otherwise pass */
	const char *none =
	    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
	    "eyJzdWIiOiJ4IiwiYXR0IjoxLCJwcmoiOiIxIiwiZXhwIjo0MTAyNDQ0ODAwfQ.";

	load(&k, "first-key-0123456789abcdef0123456789abcdef\n");
	ck_assert(!jobtoken_verify(&k, none, time(NULL), &got));
	ck_assert(!jobtoken_verify(&k, "not.a.token", time(NULL), &got));
	ck_assert(!jobtoken_verify(&k, "", time(NULL), &got));
	jobtoken_keys_free(&k);
}
END_TEST

START_TEST(key_files_without_a_usable_key)
{
	struct jobtoken_keys k;
	const char *why = NULL;

	ck_assert(!jobtoken_keys_load(&k, "/nonexistent/job-token.key", &why));
	ck_assert_str_eq(why, "no such file");
	ck_assert(!jobtoken_keys_load(&k, key_file("short\n"), &why));
	ck_assert_str_eq(why, "a key is shorter than 32 characters");
	ck_assert(!jobtoken_keys_load(&k, key_file("# only a comment\n\n"), &why));
	ck_assert_str_eq(why, "it holds no key");
	unlink(key_file(""));
}
END_TEST

UNIT_MAIN("jobtoken", made_and_verified, other_algorithms_are_refused,
          key_files_without_a_usable_key)
