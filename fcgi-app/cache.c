/*
 * Cache-aside reads: cache_query answers a one-value query from memcached
 * when it can, and otherwise from PostgreSQL, storing what it read. Keys
 * are namespaced by the caller's project ("assay:p:<project>:<name>"), so
 * one tenant can never read another's entry.
 *
 * Only values that cannot go stale without the API knowing are stored:
 * analyses (written only through this API, which forgets them on every
 * write) and finished runs and their results (final: nothing changes them
 * again). A run still in progress is changed by the executor, so it is
 * always read from PostgreSQL.
 *
 * A write leaves a tombstone (an empty value) for a few seconds instead of
 * just deleting the entry, and reads store with add, which a tombstone
 * refuses: a read that fetched the old row before the write committed
 * cannot put it back afterwards.
 *
 * While memcached is unreachable a small per-worker LRU stands in. Other
 * workers cannot tell it about their writes, so its entries live at most
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

#define LOCAL_SLOTS     128
#define LOCAL_MAX_BYTES 65536
#define LOCAL_TTL_US    1000000u
#define TOMBSTONE_S     5

static struct {
	char key[160];
	char *val;
	uint64_t until_us, used_us;
} local[LOCAL_SLOTS];

static void
cache_key(const struct req *r, const char *name, char key[160])
{
	snprintf(key, 160, "assay:p:%s:%s", r->tenant->project_id, name);
}

static char *
local_get(const char *key)
{
	uint64_t now = util_now_us();
	size_t i;

	for (i = 0; i < LOCAL_SLOTS; i++)
		if (local[i].val != NULL && local[i].until_us > now &&
		    strcmp(local[i].key, key) == 0) {
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
local_put(const char *key, const char *val)
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
	local[victim].val = xstrdup(val);
	local[victim].until_us = now + LOCAL_TTL_US;
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
	char key[160];
	size_t len;
	PGresult *res;
	bool keep, keep_out = false;

	cache_key(r, name, key);
	switch (mc_get(r->app->mc, key, text, &len)) {
	case MC_OK:
		if (len > 0) {
			stat_add(&shm->cache_hits);
			return CACHE_FOUND;
		}
		free(*text); /* a tombstone: just written, read the database */
		keep_out = true;
		break;
	case MC_DOWN:
		stat_add(&shm->cache_errors);
		if ((*text = local_get(key)) != NULL) {
			stat_add(&shm->cache_local_hits);
			return CACHE_FOUND;
		}
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
	keep = PQnfields(res) < 2 || strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	if (keep && !keep_out &&
	    mc_add(r->app->mc, key, *text, strlen(*text),
	           (unsigned)cfg_int(r->app->cfg, API_CACHE_FIRST + ttl)) == MC_DOWN)
		local_put(key, *text);
	return CACHE_FOUND;
}

void
cache_forget(struct req *r, const char *name)
{
	char key[160];

	cache_key(r, name, key);
	local_forget(key);
	if (mc_set(r->app->mc, key, "", 0, TOMBSTONE_S) == MC_DOWN)
		stat_add(&shm->cache_errors);
}
