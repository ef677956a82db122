/*
 * Large results (sql/0012_results.sql). A result whose JSON text is longer
 * than result_inline_max is never held whole: bridge.c hands its bytes
 * over as they are read from the worker, and they are written to
 * analysis_result_storage in pieces of RESULT_CHUNK, counted against the
 * tenant's tier's result_max_bytes as they arrive and hashed (SHA-256) on
 * the way. Each piece is inserted only while this executor holds the run's
 * lease for this attempt, which the run's row is then said to have pieces
 * of (result_attempt), so an executor that lost it writes nothing more;
 * what an attempt that does not complete wrote is deleted by the database
 * when the attempt stops running. The line's last bytes are held
 * back: they must be the job's nonce, which only the runtime knows. What
 * is held at any time: one piece and those last bytes. Each insert blocks
 * the executor's loop for its round trip.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "db.h"
#include "extern.h"
#include "jsontext.h"
#include "log.h"
#include "xalloc.h"

#define RESULT_CHUNK 262144 /* bytes of one row of analysis_result_storage */
#define RESULT_HOLD  64     /* the line's last bytes, kept back for its end */

struct rstore {
	unsigned char *piece; /* the piece being filled: RESULT_CHUNK bytes */
	size_t len;
	char hold[RESULT_HOLD]; /* the latest bytes of the line, not yet value */
	size_t held;
	long long size; /* bytes of the value so far */
	long max;       /* the tier's result_max_bytes */
	int seq;
	EVP_MD_CTX *sha;
	struct jsontext_stream check; /* what jsonb could not hold */
	bool failed;                  /* the attempt failed: the rest is ignored */
};

/* The end of a result line the runtime wrote: its nonce, then the end. */
static int
results_tail(const struct job *j, char *out, size_t size)
{
	return snprintf(out, size, ",\"nonce\":\"%s\"}", j->nonce);
}

void
results_free(struct rstore *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->sha);
	free(s->piece);
	free(s);
}

/* The attempt fails saying why (a message made by the caller); its worker
 * is killed and replaced. */
static void
results_fail(struct job *j, char *why)
{
	j->store->failed = true;
	if (j->error == NULL)
		j->error = why;
	else
		free(why);
	ex_kill(j, SIGKILL);
}

/* The value holds what jsonb could not: at where, why. */
static void
results_unstorable(struct job *j, const char *where, const char *why)
{
	results_fail(j, xasprintf("script error: the result cannot be stored: %s %s",
	                          where[0] != '\0' ? where : "the value", why));
}

/* The tier's result_max_bytes for j's tenant; -1 when the database fails. */
static long
results_limit(struct ex *ex, const struct job *j)
{
	static const char *const tiers[TIER_COUNT] = {"free", "pro", "enterprise"};
	char tenant[24];
	const char *params[1] = {tenant};
	PGresult *res;
	int t = TIER_COUNT - 1; /* an unknown tier is claimed as the last */

	snprintf(tenant, sizeof tenant, "%ld", j->tenant);
	if (db_query(ex->db, &res, "SELECT tier FROM tenants WHERE id = $1::bigint", 1,
	             params) != DB_OK)
		return -1;
	if (PQntuples(res) == 1)
		for (t = 0; t < TIER_COUNT - 1 && strcmp(tiers[t], PQgetvalue(res, 0, 0));
		     t++)
			;
	PQclear(res);
	return ex_int(ex, EX_TIER_RESULT + t);
}

/* Insert the piece waiting, if any, while the lease is held. */
static void
results_write(struct ex *ex, struct job *j)
{
	struct rstore *s = j->store;
	char seq[16], attempt[16];
	const char *params[5] = {j->id, seq, (const char *)s->piece, ex->worker, attempt};
	int lens[5] = {0, 0, (int)s->len, 0, 0}, formats[5] = {0, 0, 1, 0, 0};
	PGconn *conn;
	PGresult *res;

	if (s->len == 0 || s->failed)
		return;
	snprintf(seq, sizeof seq, "%d", s->seq);
	snprintf(attempt, sizeof attempt, "%d", j->attempts);
	if ((conn = db_conn(ex->db)) == NULL) {
		results_fail(j, xstrdup("executor fault: the result could not be stored "
		                        "(the database is unreachable)"));
		return;
	}
	/* The run's row names the attempt whose pieces there are, locked: a
	 * change of the run that ends the lease waits for this insert (and its
	 * trigger deletes the pieces), or this sees the change and writes
	 * nothing. */
	res = PQexecParams(
	    conn,
	    "WITH j AS (UPDATE analysis_jobs SET result_attempt = attempts"
	    "  WHERE id = $1 AND worker_id = $4 AND status = 'running'"
	    "  AND attempts = $5::int RETURNING id, attempts)"
	    " INSERT INTO analysis_result_storage (job_id, attempt, seq, data)"
	    " SELECT j.id, j.attempts, $2::int, $3 FROM j",
	    5, NULL, params, lens, formats, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_msg(LOG_ERROR, "run %s: a piece of its result was not stored: %s",
		        j->id, PQerrorMessage(conn));
		results_fail(j, xstrdup("executor fault: the result could not be stored "
		                        "(see the executor's log)"));
	} else if (strcmp(PQcmdTuples(res), "1") != 0) {
		j->lost = true; /* its outcome is discarded; nothing more is written */
		results_fail(j, xstrdup("lease lost while its result was written"));
	}
	PQclear(res);
	s->seq++;
	s->len = 0;
}

/* Bytes of the value: checked, counted, hashed and written piece by piece. */
static void
results_value(struct ex *ex, struct job *j, const char *p, size_t n)
{
	struct rstore *s = j->store;
	char where[256];
	const char *why;
	size_t take;

	if (s->failed || n == 0)
		return;
	s->size += (long long)n;
	if (s->size > s->max) {
		results_fail(j, xasprintf("result too large (%lld bytes, limit %ld)",
		                          s->size, s->max));
		return;
	}
	if (!jsontext_stream_feed(&s->check, p, n, where, sizeof where, &why)) {
		results_unstorable(j, where, why);
		return;
	}
	EVP_DigestUpdate(s->sha, p, n);
	while (n > 0 && !s->failed) {
		take = RESULT_CHUNK - s->len < n ? RESULT_CHUNK - s->len : n;
		memcpy(s->piece + s->len, p, take);
		s->len += take;
		p += take;
		n -= take;
		if (s->len == RESULT_CHUNK)
			results_write(ex, j);
	}
}

bool
results_start(struct ex *ex, struct job *j)
{
	struct rstore *s = xcalloc(1, sizeof *s);

	j->store = s;
	s->piece = xmalloc(RESULT_CHUNK);
	if ((s->sha = EVP_MD_CTX_new()) == NULL)
		abort();
	EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL);
	jsontext_stream_init(&s->check);
	if ((s->max = results_limit(ex, j)) < 0) {
		results_fail(j, xstrdup("executor fault: the result could not be stored "
		                        "(see the executor's log)"));
		return false;
	}
	return true;
}

void
results_feed(struct ex *ex, struct job *j, const char *p, size_t n)
{
	struct rstore *s = j->store;
	size_t out;

	if (s->failed)
		return;
	if (s->held + n <= RESULT_HOLD) {
		memcpy(s->hold + s->held, p, n);
		s->held += n;
		return;
	}
	/* What is older than the last RESULT_HOLD bytes is value. */
	out = s->held + n - RESULT_HOLD;
	if (out >= s->held) {
		results_value(ex, j, s->hold, s->held);
		results_value(ex, j, p, out - s->held);
		memcpy(s->hold, p + (out - s->held), RESULT_HOLD);
	} else {
		results_value(ex, j, s->hold, out);
		memmove(s->hold, s->hold + out, s->held - out);
		memcpy(s->hold + s->held - out, p, n);
	}
	s->held = RESULT_HOLD;
}

bool
results_finish(struct ex *ex, struct job *j)
{
	struct rstore *s = j->store;
	char tail[64], where[256];
	unsigned char md[EVP_MAX_MD_SIZE];
	const char *why;
	unsigned n, i;
	size_t len;

	if (s->failed)
		return false;
	len = (size_t)results_tail(j, tail, sizeof tail);
	if (s->held < len || memcmp(s->hold + s->held - len, tail, len) != 0) {
		/* Only the runtime knows the nonce: the script wrote this line. */
		results_fail(j,
		             xstrdup("sandbox breach: a result line the runtime did not "
		                     "write"));
		return false;
	}
	results_value(ex, j, s->hold, s->held - len);
	if (!s->failed && !jsontext_stream_end(&s->check, where, sizeof where, &why))
		results_unstorable(j, where, why);
	results_write(ex, j);
	if (s->failed)
		return false;
	EVP_DigestFinal_ex(s->sha, md, &n);
	for (i = 0; i < n; i++)
		snprintf(j->sha256 + 2 * i, 3, "%02x", md[i]);
	j->stored = s->size;
	results_free(s);
	j->store = NULL;
	return j->error == NULL;
}

const char *
results_config_error(const struct cfg *cfg)
{
	int t;

	for (t = 0; t < TIER_COUNT; t++)
		if (cfg_int(cfg, EX_RESULT_INLINE_MAX) > cfg_int(cfg, EX_TIER_RESULT + t))
			return "[executor] result_inline_max may not exceed a tier's "
			       "result_max_bytes";
	return NULL;
}
