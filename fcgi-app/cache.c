/*
 * Cache-aside reads: cache_query answers a one-value query from memcached
 * when it can, and otherwise from PostgreSQL, storing what it read. Keys
 * are namespaced by the caller's project ("assay:p:<project>:<name>"), so
 * one tenant can never read another's entry.
 *
 * Every write forgets what it changes: the API after its own writes
 * (analyses, start, cancel), the executor after each change of a run's
 * state. Forgetting leaves a tombstone (an empty value) for a few seconds,
 * and reads store with add, which a tombstone refuses: a read that
 * fetched the old row before the write committed cannot put it back.
 *
 * Final values (a completed run, its result) never change again: they
 * are kept for ttl_long, and each worker also keeps those it has read in
 * a small LRU of its own, so that a repeated read costs no round trip at
 * all. Everything else for ttl_short: runs in progress, and failed or
 * canceled runs, which a retry (through any worker, any host, assayctl)
 * revives and forgets, which no worker's own memory would hear of. While
 * memcached is unreachable the LRU stands in for it; other workers and
 * the executor cannot tell it about their writes, so those entries live
 * one second.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "extern.h"
#include "mc.h"
#include "util.h"
#include "xalloc.h"

#define LOCAL_SLOTS     256
#define LOCAL_MAX_BYTES 65536
#define LOCAL_TTL_US    1000000u
#define FINAL_MARK      '=' /* leads a final value in memcached (JSON never does) */

static struct {
	uint64_t hash;
	char key[MC_KEY_MAX];
	char *val;
	uint64_t until_us, used_us;
} local[LOCAL_SLOTS];

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static void
cache_key(const struct req *r, const char *name, char key[MC_KEY_MAX])
{
	mc_key(key, r->tenant->project_id, name);
}

static char *
local_get(const char *key)
{
	uint64_t now = util_now_us(), h = key_hash(key);
	size_t i;

	for (i = 0; i < LOCAL_SLOTS; i++)
		if (local[i].hash == h && local[i].val != NULL &&
		    local[i].until_us > now && strcmp(local[i].key, key) == 0) {
			local[i].used_us = now;
			return xstrdup(local[i].val);
		}
	return NULL;
}

static void
local_forget(const char *key)
{
	size_t i;

	for (i = 0; i < LOCAL_SLOTS; i++)
		if (local[i].val != NULL && strcmp(local[i].key, key) == 0) {
			free(local[i].val);
			local[i].val = NULL;
		}
}

/* Store in the least recently used (or an expired or empty) slot. */
static void
local_put(const char *key, const char *val, uint64_t ttl_us)
{
	uint64_t now = util_now_us();
	size_t i, victim = 0;

	if (strlen(val) > LOCAL_MAX_BYTES)
		return;
	local_forget(key);
	for (i = 0; i < LOCAL_SLOTS; i++) {
		if (local[i].val == NULL || local[i].until_us <= now) {
			victim = i;
			break;
		}
		if (local[i].used_us < local[victim].used_us)
			victim = i;
	}
	free(local[victim].val);
	snprintf(local[victim].key, sizeof local[victim].key, "%s", key);
	local[victim].hash = key_hash(key);
	local[victim].val = xstrdup(val);
	local[victim].until_us = now + ttl_us;
	local[victim].used_us = now;
}

static void
stat_add(uint64_t *counter)
{
	__atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

enum cache_rc
cache_query(struct req *r, const char *name, enum ttl_class ttl, const char *sql, int n,
            const char *const *params, char **text)
{
	unsigned ttl_s = (unsigned)cfg_int(r->app->cfg, API_CACHE_FIRST + ttl),
	         final_s = (unsigned)cfg_int(r->app->cfg, API_CACHE_FIRST + TTL_LONG);
	bool final, tombstone = false;
	char *stored;
	uint64_t t0;
	enum mc_rc rc;
	char key[MC_KEY_MAX];
	size_t len;
	PGresult *res;

	cache_key(r, name, key);
	if ((*text = local_get(key)) != NULL) {
		stat_add(&shm->cache_local_hits);
		return CACHE_FOUND;
	}
	t0 = util_now_us();
	rc = mc_get(r->app->mc, key, text, &len);
	metrics_cache_op(OP_READ, util_now_us() - t0);
	switch (rc) {
	case MC_OK:
		if (len > 0) {
			stat_add(&shm->cache_hits);
			if (**text == FINAL_MARK) { /* final: keep it here too */
				memmove(*text, *text + 1, len);
				local_put(key, *text, (uint64_t)final_s * 1000000u);
			}
			return CACHE_FOUND;
		}
		free(*text); /* a tombstone: just written, read the database */
		tombstone = true;
		break;
	case MC_DOWN:
		stat_add(&shm->cache_errors);
		break;
	case MC_MISS:
		break;
	}
	stat_add(&shm->cache_misses);
	if ((res = http_query_db(r, sql, n, params)) == NULL)
		return CACHE_FAILED;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return CACHE_NONE;
	}
	*text = xstrdup(PQgetvalue(res, 0, 0));
	final = PQnfields(res) > 1 && strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (final) {
		local_put(key, *text, (uint64_t)final_s * 1000000u);
		if (!tombstone) {
			stored = xasprintf("%c%s", FINAL_MARK, *text);
			mc_add(r->app->mc, key, stored, strlen(stored), final_s);
			free(stored);
		}
	} else if (!tombstone &&
	           mc_add(r->app->mc, key, *text, strlen(*text), ttl_s) == MC_DOWN) {
		local_put(key, *text, LOCAL_TTL_US);
	}
	return CACHE_FOUND;
}

void
cache_forget(struct req *r, const char *name)
{
	char key[MC_KEY_MAX];

	cache_key(r, name, key);
	local_forget(key);
	if (!mc_forget(r->app->mc, r->tenant->project_id, name))
		stat_add(&shm->cache_errors);
}

void
cache_forget_run(struct req *r, const char *run)
{
	char name[MC_RUN_NAME_MAX];

	mc_run_name(name, MC_RUN, run);
	cache_forget(r, name);
	mc_run_name(name, MC_RESULT, run);
	cache_forget(r, name);
}

void
cache_answer(struct req *r, const char *name, enum ttl_class ttl, const char *member,
             route_handler *not_found, bool (*final)(const char *), const char *sql,
             int n, const char *const *params)
{
	char *text, *members;

	switch (cache_query(r, name, ttl, sql, n, params, &text)) {
	case CACHE_FOUND:
		members = xasprintf("\"%s\":%s", member, text);
		http_success_tagged(r, members, final != NULL && final(text));
		free(members);
		free(text);
		break;
	case CACHE_NONE:
		not_found(r);
		break;
	case CACHE_FAILED:
		break; /* answered 503 */
	}
}
