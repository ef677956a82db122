/*
 * libmemcached wrapper: see mc.h. Timeouts are short on purpose: a slow
 * cache must cost a request milliseconds, never seconds.
 */
#include "config.h"

#include <stdlib.h>

#include <libmemcached/memcached.h>

#include "mc.h"
#include "xalloc.h"

struct mc {
	memcached_st *mc;
};

struct mc *
mc_new(const char *servers)
{
	memcached_server_st *list;
	struct mc *m;

	list = memcached_servers_parse(servers);
	if (list == NULL)
		return NULL;
	m = xcalloc(1, sizeof *m);
	m->mc = memcached_create(NULL);
	if (m->mc == NULL)
		abort();
	memcached_server_push(m->mc, list);
	memcached_server_list_free(list);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	                       MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 50);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 50);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, 50000);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, 50000);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 1);
	memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
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
mc_ping(struct mc *m, const char **err)
{
	static const char key[] = "assay:ping";
	memcached_return_t rc;
	size_t len;
	uint32_t flags;
	char *val;

	val = memcached_get(m->mc, key, sizeof key - 1, &len, &flags, &rc);
	free(val);
	if (rc == MEMCACHED_SUCCESS || rc == MEMCACHED_NOTFOUND)
		return true;
	*err = memcached_strerror(m->mc, rc);
	return false;
}
