/*
 * Job tokens: what the executor presents to the API on behalf of one
 * attempt of a run (a script's ctx.files and ctx.fetch). A JWT signed with
 * HS256 (libjwt) whose claims name the run (sub), the attempt (att), the
 * project (prj) and an expiry (exp); the API also requires that attempt to
 * be the run's running one, so a token dies with its attempt whatever its
 * expiry says. Keys come from a file (job_token_key_file): one key per
 * line (at least 32 bytes of text each); the first signs, every one
 * verifies, so a key is rotated by putting the new one first and removing
 * the old one once no token it signed can be alive (30 minutes). Nothing
 * here logs a key or a token.
 */
#ifndef ASSAY_JOBTOKEN_H
#define ASSAY_JOBTOKEN_H

#include <stdbool.h>
#include <time.h>

#define JOBTOKEN_KEYS_MAX 2
#define JOBTOKEN_TTL_MAX  1800 /* seconds: no token lives longer */

struct jobtoken_keys {
	char *key[JOBTOKEN_KEYS_MAX];
	int n;
};

struct jobtoken_claims {
	char run[40];      /* the run's id */
	long attempt;      /* its attempt */
	long long project; /* its project */
	time_t exp;
};

/* Read path's keys into k. false, with *why (static text) set, when the
 * file cannot be read or holds no key of at least 32 bytes. */
bool jobtoken_keys_load(struct jobtoken_keys *k, const char *path, const char **why);
void jobtoken_keys_free(struct jobtoken_keys *k);
/* A token for c signed with the first key (malloc'd), or NULL. The expiry
 * is capped at JOBTOKEN_TTL_MAX seconds from now. */
char *jobtoken_mint(const struct jobtoken_keys *k, const struct jobtoken_claims *c);
/* Whether token is signed by one of the keys with HS256 and not expired at
 * now; its claims in *c. */
bool jobtoken_verify(const struct jobtoken_keys *k, const char *token, time_t now,
                     struct jobtoken_claims *c);

#endif
