/*
 * libmemcached wrapper: see mc.h. Timeouts are short on purpose: a slow
 * cache must cost a request milliseconds, never seconds.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmemcached/memcached.h>

#include "mc.h"
#include "util.h"
#include "xalloc.h"

#define MC_BACKOFF_MIN_US 100000u
#define MC_BACKOFF_MAX_US 5000000u

struct mc {
	memcached_st *mc;
	unsigned timeout_ms;
	uint64_t down_until_us, backoff_us;
	bool up;
	char error[128];
};

static memcached_st *
mc_handle(memcached_server_st *list, unsigned timeout_ms)
{
	memcached_st *m = memcached_create(NULL);

	if (m == NULL)
		abort();
	memcached_server_push(m, list);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	                       MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, timeout_ms);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, timeout_ms);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, timeout_ms * 1000u);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_SND_TIMEOUT, timeout_ms * 1000u);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
	memcached_behavior_set(m, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
	return m;
}

struct mc *
mc_new(const char *servers, unsigned timeout_ms)
{
	memcached_server_st *list;
	struct mc *m;

	list = memcached_servers_parse(servers);
	if (list == NULL)
		return NULL;
	m = xcalloc(1, sizeof *m);
	m->mc = mc_handle(list, timeout_ms);
	m->timeout_ms = timeout_ms;
	m->up = true;
	memcached_server_list_free(list);
	return m;
}

void
mc_free(struct mc *m)
{
	if (m == NULL)
		return;
	memcached_free(m->mc);
	free(m);
}

bool
mc_up(const struct mc *m)
{
	return m != NULL && m->up;
}

const char *
mc_last_error(const struct mc *m)
{
	return m == NULL ? "no memcached servers configured" : m->error;
}

/* May the next operation go out, or is the handle backing off? */
static bool
mc_ready(struct mc *m)
{
	return m != NULL && (m->up || util_now_us() >= m->down_until_us);
}

/* Map a libmemcached result, starting or ending a backoff. */
static enum mc_rc
mc_result(struct mc *m, memcached_return_t rc)
{
	switch (rc) {
	case MEMCACHED_SUCCESS:
	case MEMCACHED_STORED:
	case MEMCACHED_DELETED:
	case MEMCACHED_END:
	case MEMCACHED_BUFFERED:
		m->up = true;
		m->backoff_us = 0;
		return MC_OK;
	case MEMCACHED_NOTFOUND:
	case MEMCACHED_NOTSTORED:
	case MEMCACHED_DATA_EXISTS:
		m->up = true;
		m->backoff_us = 0;
		return MC_MISS;
	default:
		m->backoff_us = m->backoff_us ? m->backoff_us * 2 : MC_BACKOFF_MIN_US;
		if (m->backoff_us > MC_BACKOFF_MAX_US)
			m->backoff_us = MC_BACKOFF_MAX_US;
		m->down_until_us = util_now_us() + m->backoff_us;
		m->up = false;
		snprintf(m->error, sizeof m->error, "%s", memcached_strerror(m->mc, rc));
		return MC_DOWN;
	}
}

void
mc_buffer(struct mc *m)
{
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_BUFFER_REQUESTS, 1);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_NOREPLY, 1);
}

bool
mc_flush(struct mc *m)
{
	return m == NULL || mc_result(m, memcached_flush_buffers(m->mc)) == MC_OK;
}

bool
mc_ping(struct mc *m, const char **err)
{
	char *val = NULL;
	size_t len;

	if (m == NULL || mc_get(m, "assay:ping", &val, &len) == MC_DOWN) {
		*err = mc_last_error(m);
		return false;
	}
	free(val);
	return true;
}

enum mc_rc
mc_get(struct mc *m, const char *key, char **val, size_t *len)
{
	memcached_return_t rc;
	uint32_t flags;

	if (!mc_ready(m))
		return MC_DOWN;
	*val = memcached_get(m->mc, key, strlen(key), len, &flags, &rc);
	if (rc == MEMCACHED_SUCCESS && *val == NULL)
		*val = xstrdup(""); /* an empty value */
	if (rc != MEMCACHED_SUCCESS) {
		free(*val);
		*val = NULL;
	}
	return mc_result(m, rc);
}

enum mc_rc
mc_add(struct mc *m, const char *key, const char *val, size_t len, unsigned ttl_s)
{
	if (!mc_ready(m))
		return MC_DOWN;
	return mc_result(
	    m, memcached_add(m->mc, key, strlen(key), val, len, (time_t)ttl_s, 0));
}

enum mc_rc
mc_incr(struct mc *m, const char *key, unsigned ttl_s, uint64_t *value)
{
	enum mc_rc rc;
	int tries;

	if (!mc_ready(m))
		return MC_DOWN;
	/* incr fails on a missing key; add fails when another process won the race. */
	for (tries = 0; tries < 3; tries++) {
		rc = mc_result(m, memcached_increment(m->mc, key, strlen(key), 1, value));
		if (rc != MC_MISS)
			return rc;
		rc = mc_add(m, key, "1", 1, ttl_s);
		if (rc != MC_MISS) {
			*value = 1;
			return rc;
		}
	}
	return MC_DOWN;
}

void
mc_decr(struct mc *m, const char *key)
{
	uint64_t value;

	if (mc_ready(m))
		(void)mc_result(m,
		                memcached_decrement(m->mc, key, strlen(key), 1, &value));
}

struct mc_each {
	void (*fn)(const char *, unsigned, bool, void *);
	void *arg;
	unsigned timeout_ms;
};

static memcached_return_t
mc_server_check(const memcached_st *owner, const memcached_instance_st *s, void *ctx)
{
	struct mc_each *each = ctx;
	memcached_server_st *one = NULL;
	memcached_return_t rc;
	memcached_st *probe;
	size_t len;
	uint32_t flags;
	char *val;

	(void)owner;
	one = memcached_server_list_append(one, memcached_server_name(s),
	                                   memcached_server_port(s), &rc);
	probe = mc_handle(one, ((struct mc_each *)ctx)->timeout_ms);
	memcached_server_list_free(one);
	val = memcached_get(probe, "assay:ping", 10, &len, &flags, &rc);
	free(val);
	each->fn(memcached_server_name(s), memcached_server_port(s),
	         rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND, each->arg);
	memcached_free(probe);
	return MEMCACHED_SUCCESS;
}

void
mc_servers(struct mc *m, void (*fn)(const char *, unsigned, bool, void *), void *arg)
{
	memcached_server_fn cb[1] = {mc_server_check};
	struct mc_each each = {fn, arg, m ? m->timeout_ms : 0};

	if (m != NULL)
		memcached_server_cursor(m->mc, cb, &each, 1);
}

void
mc_key(char key[MC_KEY_MAX], const char *project, const char *name)
{
	snprintf(key, MC_KEY_MAX, "assay:p:%s:%s", project, name);
}

bool
mc_tombstone(struct mc *m, const char *key)
{
	int tries;

	if (m == NULL)
		return false;
	for (tries = 0; tries < 2; tries++)
		if (mc_result(m, memcached_set(m->mc, key, strlen(key), "", 0,
		                               MC_TOMBSTONE, 0)) != MC_DOWN)
			return true;
	return false;
}

bool
mc_forget(struct mc *m, const char *project, const char *name)
{
	char key[MC_KEY_MAX];

	mc_key(key, project, name);
	return mc_tombstone(m, key);
}

void
mc_run_name(char name[MC_RUN_NAME_MAX], enum mc_run_entry entry, const char *run)
{
	snprintf(name, MC_RUN_NAME_MAX, "%s:%.36s", entry == MC_RUN ? "run" : "result",
	         run);
}

bool
mc_forget_run(struct mc *m, const char *project, const char *run)
{
	char name[MC_RUN_NAME_MAX];
	bool ok;

	mc_run_name(name, MC_RUN, run);
	ok = mc_forget(m, project, name);
	mc_run_name(name, MC_RESULT, run);
	return mc_forget(m, project, name) && ok;
}

void
mc_apikey_key(char key[MC_KEY_MAX], const char *digest)
{
	snprintf(key, MC_KEY_MAX, "assay:key:%s", digest);
}

void
mc_limit_key(char key[MC_KEY_MAX], const char *name, uint64_t window)
{
	snprintf(key, MC_KEY_MAX, "assay:rl:%s:%llu", name, (unsigned long long)window);
}
