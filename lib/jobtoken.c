/*
 * Job tokens (see jobtoken.h): HS256 JWTs made and checked with libjwt.
 * Verification pins the algorithm (a token that says "none" or RS256 is
 * refused before its claims are read) and tries each key in turn.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "jobtoken.h"
#include "xalloc.h"

#define KEY_MIN 32

bool
jobtoken_keys_load(struct jobtoken_keys *k, const char *path, const char **why)
{
	char line[1024];
	FILE *f;

	memset(k, 0, sizeof *k);
	if ((f = fopen(path, "r")) == NULL) {
		*why = errno == ENOENT ? "no such file" : "it cannot be read";
		return false;
	}
	while (k->n < JOBTOKEN_KEYS_MAX && fgets(line, sizeof line, f) != NULL) {
		size_t n = strcspn(line, "\r\n");

		line[n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (n < KEY_MIN) {
			*why = "a key is shorter than 32 characters";
			fclose(f);
			jobtoken_keys_free(k);
			return false;
		}
		k->key[k->n++] = xstrdup(line);
	}
	fclose(f);
	explicit_bzero(line, sizeof line);
	if (k->n == 0) {
		*why = "it holds no key";
		return false;
	}
	return true;
}

void
jobtoken_keys_free(struct jobtoken_keys *k)
{
	int i;

	for (i = 0; i < k->n; i++) {
		explicit_bzero(k->key[i], strlen(k->key[i]));
		free(k->key[i]);
	}
	k->n = 0;
}

char *
jobtoken_mint(const struct jobtoken_keys *k, const struct jobtoken_claims *c)
{
	time_t now = time(NULL), exp = c->exp;
	char project[24], *token = NULL, *out = NULL;
	jwt_t *jwt = NULL;

	if (k->n == 0 || jwt_new(&jwt) != 0)
		return NULL;
	if (exp > now + JOBTOKEN_TTL_MAX)
		exp = now + JOBTOKEN_TTL_MAX;
	snprintf(project, sizeof project, "%lld", c->project);
	if (jwt_add_grant(jwt, "iss", "assay-executor") == 0 &&
	    jwt_add_grant(jwt, "sub", c->run) == 0 &&
	    jwt_add_grant_int(jwt, "att", c->attempt) == 0 &&
	    jwt_add_grant(jwt, "prj", project) == 0 &&
	    jwt_add_grant_int(jwt, "iat", (long)now) == 0 &&
	    jwt_add_grant_int(jwt, "exp", (long)exp) == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)k->key[0],
	                (int)strlen(k->key[0])) == 0)
		token = jwt_encode_str(jwt);
	if (token != NULL) {
		out = xstrdup(token);
		free(token);
	}
	jwt_free(jwt);
	return out;
}

bool
jobtoken_verify(const struct jobtoken_keys *k, const char *token, time_t now,
                struct jobtoken_claims *c)
{
	const char *run, *project;
	jwt_t *jwt = NULL;
	bool ok = false;
	int i;

	for (i = 0; i < k->n && jwt == NULL; i++)
		if (jwt_decode(&jwt, token, (const unsigned char *)k->key[i],
		               (int)strlen(k->key[i])) != 0)
			jwt = NULL;
	if (jwt == NULL || jwt_get_alg(jwt) != JWT_ALG_HS256)
		goto out;
	run = jwt_get_grant(jwt, "sub");
	project = jwt_get_grant(jwt, "prj");
	c->attempt = jwt_get_grant_int(jwt, "att");
	c->exp = (time_t)jwt_get_grant_int(jwt, "exp");
	if (run == NULL || strlen(run) >= sizeof c->run || project == NULL ||
	    c->attempt <= 0 || c->exp <= now)
		goto out;
	snprintf(c->run, sizeof c->run, "%s", run);
	c->project = strtoll(project, NULL, 10);
	ok = c->project > 0;
out:
	jwt_free(jwt);
	return ok;
}
