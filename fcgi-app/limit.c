/*
 * Rate limits. A tenant has two limits from its tier: requests per minute
 * on every authenticated route, and runs created per hour on POST
 * /api/v1/runs. A request without a tenant (public routes other than the
 * probes, unknown paths, calls with no key, failed authentications) counts
 * against its client address: rate_limit_per_sec per second. A job token
 * (auth.c) has its own limit instead, per attempt of its run:
 * job_rate_limit_per_sec per second.
 *
 * Algorithm: sliding-window counter. Each window of W seconds has one
 * counter; a request increments the current window's counter and is
 * judged on   previous * (time left in the current window / W) + current,
 * which assumes the previous window's requests were evenly spread (the
 * usual error is a few percent, and never lets a burst of more than twice
 * the quota through at a window edge). A refused request is taken back, so
 * refusals never push the wait further; its Retry-After, X-RateLimit-Reset
 * and RateLimit t= are one figure: when one more request would pass.
 *
 * Counters live in memcached, shared by every worker of every API host.
 * Every request is also counted in memory shared by this host's workers
 * (shm.c); while memcached is unreachable those counts decide, so limits
 * still hold per host, and once memcached answers they are shared again. Windows follow
 * the wall clock, so hosts agree on them.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "mc.h"
#include "util.h"

struct window {
	const char *policy; /* name in RateLimit-Policy */
	long quota;         /* 0: unlimited */
	long seconds;
};

struct verdict {
	bool over;
	long remaining;
	long reset;       /* seconds until the current window ends */
	long retry_after; /* when over: seconds until a request would pass */
};

static uint64_t
realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* FNV-1a: spreads counter names over the shared table and the memo. */
static uint64_t
hash64(const char *s)
{
	uint64_t h = 1469598103934665603u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h | 1; /* 0 marks an empty slot */
}

/*
 * The previous window's count, remembered per worker: once a window is
 * over its counter no longer changes, so it is fetched once per window.
 */
#define MEMO_SLOTS 256
static struct {
	uint64_t hash, window, count;
} memo[MEMO_SLOTS];

/* The counts in memcached, replacing *cur and *prev only when it answered. */
static void
counts_memcached(struct mc *mc, const char *name, uint64_t window, long seconds,
                 uint64_t *cur, uint64_t *prev)
{
	uint64_t h = hash64(name), c, p;
	size_t m = h % MEMO_SLOTS;
	char key[MC_KEY_MAX], *val;
	size_t len;
	enum mc_rc rc;

	mc_limit_key(key, name, window);
	if (mc_incr(mc, key, MC_LIMIT_TTL(seconds), &c) != MC_OK)
		return;
	if (memo[m].hash == h && memo[m].window == window - 1) {
		p = memo[m].count;
	} else {
		mc_limit_key(key, name, window - 1);
		if ((rc = mc_get(mc, key, &val, &len)) == MC_DOWN)
			return;
		p = rc == MC_OK ? strtoull(val, NULL, 10) : 0;
		free(val);
		memo[m].hash = h;
		memo[m].window = window - 1;
		memo[m].count = p;
	}
	*cur = c;
	*prev = p;
}

/*
 * The counters in this host's shared table. A slot's state packs the
 * window number (low 24 bits) and two 20-bit counts into one word updated
 * by compare-and-swap. Two names sharing a slot reset each other, which
 * can only let requests through, never refuse them wrongly.
 */
#define W_MASK 0xffffffu
#define C_MAX  0xfffffu

static void
counts_shared(const char *name, uint64_t window, uint64_t *cur, uint64_t *prev)
{
	uint64_t h = hash64(name), old, next, w, c, p;
	struct shm_counter *s = &shm->limit[h % SHM_LIMIT_SLOTS];

	do {
		old = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		w = old >> 40;
		c = (old >> 20) & C_MAX;
		p = old & C_MAX;
		if (__atomic_load_n(&s->hash, __ATOMIC_RELAXED) != h) {
			c = 1;
			p = 0;
		} else if (w == (window & W_MASK)) {
			c = c < C_MAX ? c + 1 : c;
		} else {
			p = w == ((window - 1) & W_MASK) ? c : 0;
			c = 1;
		}
		next = (window & W_MASK) << 40 | c << 20 | p;
	} while (!__atomic_compare_exchange_n(&s->state, &old, next, false,
	                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	__atomic_store_n(&s->hash, h, __ATOMIC_RELAXED);
	*cur = c;
	*prev = p;
}

/* A refused request is not counted: take back what count() added, in the
 * host's table and in memcached, so that refusals do not push the wait
 * further. */
static void
uncount(struct app *app, const char *name, uint64_t window)
{
	uint64_t h = hash64(name), old, next, c;
	struct shm_counter *s = &shm->limit[h % SHM_LIMIT_SLOTS];
	char key[MC_KEY_MAX];

	do {
		old = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
		c = (old >> 20) & C_MAX;
		if (__atomic_load_n(&s->hash, __ATOMIC_RELAXED) != h ||
		    old >> 40 != (window & W_MASK) || c == 0)
			break;
		next = (old & ~((uint64_t)C_MAX << 20)) | (c - 1) << 20;
	} while (!__atomic_compare_exchange_n(&s->state, &old, next, false,
	                                      __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
	mc_limit_key(key, name, window);
	mc_decr(app->mc, key);
}

/* memcached's reachability changed: say so once per host, not once per worker. */
static void
note_memcached(struct mc *mc)
{
	uint32_t down = !mc_up(mc),
	         was = __atomic_exchange_n(&shm->mc_down, down, __ATOMIC_ACQ_REL);

	if (was == down)
		return;
	if (down)
		log_msg(LOG_WARN,
		        "memcached unreachable (%s): rate limits are kept per host "
		        "and the cache per worker until it answers again",
		        mc_last_error(mc));
	else
		log_msg(LOG_INFO, "memcached reachable again: limits and cache shared");
}

static void
count(struct app *app, const char *name, const struct window *w, struct verdict *v)
{
	uint64_t len = (uint64_t)w->seconds * 1000000u, now = realtime_us();
	uint64_t window = now / len, into = now % len, cur, prev, t0;
	double left = (double)(len - into) / (double)len, est, target, f;

	/* The host's table counts too, so that it is warm when memcached goes. */
	counts_shared(name, window, &cur, &prev);
	t0 = util_now_us();
	counts_memcached(app->mc, name, window, w->seconds, &cur, &prev);
	metrics_cache_op(OP_COUNT, util_now_us() - t0);
	note_memcached(app->mc);
	est = (double)prev * left + (double)cur;
	v->over = est > (double)w->quota;
	v->remaining = v->over ? 0 : (long)floor((double)w->quota - est);
	v->reset = (long)ceil((double)(len - into) / 1e6);
	v->retry_after = 0;
	if (!v->over)
		return;
	/* When would one more request be within the quota? This one is taken
	 * back (uncount), so the counts are those without it. */
	cur = cur > 0 ? cur - 1 : 0;
	target = (double)w->quota - 1;
	if ((double)cur > target) /* not before the next window drains enough */
		f = left + (1 - target / (double)cur);
	else
		f = left - (target - (double)cur) / (double)prev;
	v->retry_after = (long)ceil(f * (double)w->seconds);
	if (v->retry_after < 1)
		v->retry_after = 1;
	/* One figure for every header of a refusal: when to come back. */
	v->reset = v->retry_after;
	uncount(app, name, window);
}

/* "X-RateLimit-*" and IETF "RateLimit" fields for the window that decides. */
static void
limit_headers(struct req *r, const char *tier, const struct window *w,
              const struct verdict *v, const char *policies)
{
	size_t n;

	n = (size_t)snprintf(r->extra_headers, sizeof r->extra_headers,
	                     "%s%s%s"
	                     "X-RateLimit-Limit: %ld\r\n"
	                     "X-RateLimit-Window: %ld\r\n"
	                     "X-RateLimit-Remaining: %ld\r\n"
	                     "X-RateLimit-Reset: %lld\r\n"
	                     "RateLimit-Policy: %s\r\n"
	                     "RateLimit: \"%s\";r=%ld;t=%ld\r\n",
	                     tier ? "X-RateLimit-Tier: " : "", tier ? tier : "",
	                     tier ? "\r\n" : "", w->quota, w->seconds, v->remaining,
	                     (long long)(time(NULL) + v->reset), policies, w->policy,
	                     v->remaining, v->reset);
	if (v->over && n < sizeof r->extra_headers)
		snprintf(r->extra_headers + n, sizeof r->extra_headers - n,
		         "Retry-After: %ld\r\n", v->retry_after);
}

static void
refuse(struct req *r, const char *tier, const struct window *w, const struct verdict *v)
{
	const struct cfg *cfg = r->app->cfg;
	struct json_object *extra = json_object_new_object(), *limits;
	enum tier t = tier ? tier_index(tier) : TIER__MAX;
	enum tier_field f = strcmp(w->policy, "runs") == 0 ? TF_RUNS : TF_REQUESTS;
	char detail[256];

	__atomic_fetch_add(&shm->limited[t], 1, __ATOMIC_RELAXED);
	json_object_object_add(extra, "retry_after",
	                       json_object_new_int64(v->retry_after));
	json_object_object_add(extra, "limit", json_object_new_int64(w->quota));
	json_object_object_add(extra, "window_seconds",
	                       json_object_new_int64(w->seconds));
	if (tier != NULL) {
		json_object_object_add(extra, "current_tier",
		                       json_object_new_string(tier));
		limits = json_object_new_object();
		json_object_object_add(limits, "current",
		                       json_object_new_int64(w->quota));
		if (t + 1 < TIER__MAX)
			json_object_object_add(
			    limits, tier_names[t + 1],
			    json_object_new_int64(tier_limit(cfg, t + 1, f)));
		json_object_object_add(extra, "limits", limits);
		json_object_object_add(
		    extra, "upgrade_url",
		    json_object_new_string(cfg_str(cfg, API_UPGRADE_URL)));
	}
	if (tier == NULL)
		snprintf(detail, sizeof detail,
		         "more than %ld requests in %ld s %s; retry in %ld s", w->quota,
		         w->seconds,
		         r->job.run[0] ? "with this job token" : "from this address",
		         v->retry_after);
	else
		snprintf(detail, sizeof detail,
		         "the %s tier allows %ld %s per %ld s; retry in %ld s, or "
		         "upgrade for a higher limit",
		         tier, w->quota, f == TF_RUNS ? "new runs" : "requests",
		         w->seconds, v->retry_after);
	http_problem_with(r, 429, "RATE_LIMIT_EXCEEDED", NULL, extra, "%s", detail);
}

/* The address the request came from: REMOTE_ADDR, or, when that is a
 * trusted proxy, the last address it put in X-Forwarded-For. */
void
limit_client_address(const struct req *r, char *buf, size_t len)
{
	const char *addr = http_param(r, "REMOTE_ADDR"), *xff, *last;
	const char *trusted = cfg_str(r->app->cfg, API_TRUSTED_PROXIES), *p;
	size_t alen = addr ? strlen(addr) : 0, n;

	snprintf(buf, len, "%s", addr ? addr : "unknown");
	xff = http_param(r, "HTTP_X_FORWARDED_FOR");
	if (addr == NULL || xff == NULL)
		return;
	for (p = trusted; *p; p += n + (p[n] == ',')) {
		p += strspn(p, " ");
		n = strcspn(p, ", ");
		if (n == alen && strncmp(p, addr, n) == 0)
			break;
	}
	if (*p == '\0')
		return; /* not from a trusted proxy: the header may be forged */
	last = strrchr(xff, ',');
	last = last ? last + 1 : xff;
	last += strspn(last, " ");
	n = strcspn(last, " ");
	if (n > 0 && n < len) {
		memcpy(buf, last, n);
		buf[n] = '\0';
	}
}

/* A window of one second of its own: a client address, a job token. */
static bool
limit_second(struct req *r, const char *policy, long quota, const char *name)
{
	struct window w = {policy, quota, 1};
	struct verdict v;
	char policies[64];

	count(r->app, name, &w, &v);
	snprintf(policies, sizeof policies, "\"%s\";q=%ld;w=1", policy, quota);
	limit_headers(r, NULL, &w, &v, policies);
	if (v.over)
		refuse(r, NULL, &w, &v);
	return !v.over;
}

bool
limit_request(struct req *r)
{
	const struct cfg *cfg = r->app->cfg;
	struct window w[2];
	struct verdict v[2];
	char name[128], addr[64], policies[160];
	enum tier t;
	size_t n = 1, i, decide = 0;

	if (!cfg_int(cfg, API_RATE_LIMIT_ENABLED))
		return true;
	if (r->job.run[0]) {
		snprintf(name, sizeof name, "j:%s:%ld", r->job.run, r->job.attempt);
		return limit_second(r, "job", cfg_int(cfg, API_JOB_RATE_LIMIT), name);
	}
	if (r->tenant == NULL) {
		limit_client_address(r, addr, sizeof addr);
		snprintf(name, sizeof name, "ip:%s", addr);
		return limit_second(r, "address", cfg_int(cfg, API_RATE_LIMIT_PER_SEC),
		                    name);
	}
	t = tier_index(r->tenant->tier);
	w[0] = (struct window){"requests", tier_limit(cfg, t, TF_REQUESTS), 60};
	w[1] = (struct window){"runs", tier_limit(cfg, t, TF_RUNS), 3600};
	if (r->match.route != NULL && r->match.route->limit == L_RUNS)
		n = 2;
	for (i = 0; i < n; i++) {
		if (w[i].quota == 0) { /* unlimited */
			v[i] = (struct verdict){false, 0, 0, 0};
			continue;
		}
		snprintf(name, sizeof name, "t:%s:%s", r->tenant->id, w[i].policy);
		count(r->app, name, &w[i], &v[i]);
		if (v[i].over || (w[decide].quota == 0 && w[i].quota != 0))
			decide = i;
		if (v[i].over)
			break; /* a refused request is not a run: leave its counter alone
			        */
	}
	if (w[decide].quota == 0)
		return true;
	snprintf(policies, sizeof policies, "\"requests\";q=%ld;w=60", w[0].quota);
	if (n == 2 && w[1].quota != 0)
		snprintf(policies + strlen(policies), sizeof policies - strlen(policies),
		         ", \"runs\";q=%ld;w=3600", w[1].quota);
	limit_headers(r, r->tenant->tier, &w[decide], &v[decide], policies);
	if (v[decide].over)
		refuse(r, r->tenant->tier, &w[decide], &v[decide]);
	return !v[decide].over;
}

long
limit_runs(struct req *r, long n, long *retry_after)
{
	const struct cfg *cfg = r->app->cfg;
	struct window w = {"runs", 0, 3600};
	struct verdict v = {false, 0, 0, 0};
	char name[128], policies[96];
	long i;

	w.quota = tier_limit(cfg, tier_index(r->tenant->tier), TF_RUNS);
	if (!cfg_int(cfg, API_RATE_LIMIT_ENABLED) || w.quota == 0 || n <= 0)
		return n;
	snprintf(name, sizeof name, "t:%s:%s", r->tenant->id, w.policy);
	for (i = 0; i < n; i++) {
		count(r->app, name, &w, &v);
		if (v.over)
			break;
	}
	snprintf(policies, sizeof policies,
	         "\"requests\";q=%ld;w=60, \"runs\";q=%ld;w=3600",
	         tier_limit(cfg, tier_index(r->tenant->tier), TF_REQUESTS), w.quota);
	limit_headers(r, r->tenant->tier, &w, &v, policies);
	if (v.over)
		__atomic_fetch_add(&shm->limited[tier_index(r->tenant->tier)], 1,
		                   __ATOMIC_RELAXED);
	*retry_after = v.retry_after;
	return i;
}
