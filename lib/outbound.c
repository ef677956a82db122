/*
 * The outbound HTTP client: see outbound.h. One libcurl multi handle
 * drives every request; its connection cache is what keeps connections
 * alive per host. libcurl tells us which sockets it waits on (a small
 * table the owner's poll loop copies) and when its timer is due; retries
 * wait on our own timer. A request keeps its easy handle across its
 * attempts. Endpoints (scheme://host:port) carry the circuit breaker and
 * the counters, looked up by name each time so that forgetting one never
 * leaves a request pointing at freed memory. Nothing here may block, sleep,
 * or write a credential, a query string or a secret header's value to the
 * log.
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "log.h"
#include "outbound.h"
#include "util.h"
#include "xalloc.h"

#define OB_BODY_MAX        (1u << 20) /* bytes of an answer kept, by default */
#define OB_ENDPOINTS_MAX   256
#define OB_RETRY_AFTER_MAX 60 /* seconds: a longer Retry-After ends the request */
#define OB_MAXCONNECTS     64 /* idle connections the multi handle keeps */
#define OB_NEVER           UINT64_MAX

/* Header names whose values are never logged, whatever the config says. */
static const char ob_always_secret[] =
    "Authorization, Proxy-Authorization, X-API-Key, Cookie, Set-Cookie";

/* The header line each authentication adds; basic goes through libcurl. */
static const char *const ob_auth_prefix[] = {
    [OB_AUTH_BEARER] = "Authorization: Bearer ",
    [OB_AUTH_API_KEY] = "X-API-Key: ",
    [OB_AUTH_BASIC] = NULL,
};

static const char *const ob_outcomes[] = {
    [OB_OK] = "ok",           [OB_OPEN] = "open",       [OB_NETWORK] = "network",
    [OB_TIMEOUT] = "timeout", [OB_ADDRESS] = "address",
};
#define OB_OUTCOMES (sizeof ob_outcomes / sizeof ob_outcomes[0])

/* Status classes; "none" when there was no answer. */
static const char *const ob_classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
#define OB_CLASSES (sizeof ob_classes / sizeof ob_classes[0])

static const double ob_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                   1,     2.5,  5,     10,   30,  60};
#define OB_BUCKETS (sizeof ob_bounds / sizeof ob_bounds[0])

enum ob_breaker_state { OB_BR_CLOSED, OB_BR_HALF_OPEN, OB_BR_OPEN };
static const char *const ob_breaker_names[] = {"closed", "half-open", "open"};
#define OB_BREAKER_STATES (sizeof ob_breaker_names / sizeof ob_breaker_names[0])

struct ob_endpoint {
	char *key;   /* "https://host:443" */
	char *label; /* key escaped for a Prometheus label */
	uint64_t used_us;
	enum ob_breaker_state state;
	int failures, successes; /* consecutive, in closed and half-open */
	bool probing;            /* half-open: the one probe is out */
	uint64_t opened_us;
	uint64_t requests[OB_OUTCOMES][OB_CLASSES];
	uint64_t buckets[OB_BUCKETS]; /* not cumulative; beyond the last: count */
	uint64_t count, retries, transitions[OB_BREAKER_STATES];
	double sum;
};

enum ob_state { OB_RUNNING, OB_WAITING, OB_ENDED };

struct ob_xfer {
	struct ob_xfer *prev, *next;
	struct ob *ob;
	CURL *easy;
	struct curl_slist *headers;
	char *method, *logurl, *endpoint;
	ob_done_fn *done;
	void *arg;
	enum ob_state state;
	int attempt, max_attempts;
	bool probe, address_refused;
	uint64_t submitted_us, attempt_us, retry_at_us;
	enum ob_result result;
	long status;
	const char *error;
	char *answer;
	size_t answerlen, answercap, answermax;
	char errbuf[CURL_ERROR_SIZE];
};

struct ob {
	struct ob_config cfg; /* its strings are the copies below */
	char *prefix, *secret_headers, *user_agent;
	CURLM *multi;
	struct pollfd *socks; /* what libcurl waits for */
	size_t nsocks, capsocks;
	uint64_t timer_at_us; /* libcurl's timer, or OB_NEVER */
	struct ob_xfer *xfers;
	size_t pending;
	struct ob_endpoint *endpoints[OB_ENDPOINTS_MAX];
	size_t nendpoints;
	enum ob_auth auth;
	char *credential;
	uint64_t rng;
};

static long
ob_or(long value, long fallback)
{
	return value > 0 ? value : fallback;
}

/* xorshift64: jitter needs spread, not secrecy. */
static uint64_t
ob_random(struct ob *ob)
{
	uint64_t x = ob->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return ob->rng = x;
}

/* The socket callback: keep the table of what libcurl waits for. */
static int
ob_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct ob *ob = userp;
	size_t i;

	for (i = 0; i < ob->nsocks && ob->socks[i].fd != fd; i++)
		continue;
	if (what == CURL_POLL_REMOVE) {
		if (i < ob->nsocks)
			ob->socks[i] = ob->socks[--ob->nsocks];
		return 0;
	}
	if (i == ob->nsocks) {
		if (ob->nsocks == ob->capsocks) {
			ob->capsocks = ob->capsocks ? ob->capsocks * 2 : 8;
			ob->socks = xrealloc(ob->socks, ob->capsocks * sizeof *ob->socks);
		}
		ob->socks[ob->nsocks++].fd = fd;
	}
	ob->socks[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) |
	                              ((what & CURL_POLL_OUT) ? POLLOUT : 0));
	ob->socks[i].revents = 0;
	return 0;
}

static int
ob_timer_cb(CURLM *multi, long ms, void *userp)
{
	struct ob *ob = userp;

	ob->timer_at_us = ms < 0 ? OB_NEVER : util_now_us() + (uint64_t)ms * 1000u;
	return 0;
}

void
ob_tune(struct ob *ob, const struct ob_config *cfg)
{
	ob->cfg.timeout_ms = ob_or(cfg->timeout_ms, 30000);
	ob->cfg.max_attempts = (int)ob_or(cfg->max_attempts, 1);
	ob->cfg.backoff_ms = ob_or(cfg->backoff_ms, 100);
	ob->cfg.backoff_max_ms = ob_or(cfg->backoff_max_ms, 10000);
	ob->cfg.failure_threshold = (int)ob_or(cfg->failure_threshold, 5);
	ob->cfg.recovery_timeout_ms = ob_or(cfg->recovery_timeout_ms, 60000);
	ob->cfg.success_threshold = (int)ob_or(cfg->success_threshold, 3);
}

struct ob *
ob_new(const struct ob_config *cfg)
{
	struct ob *ob;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	ob = xcalloc(1, sizeof *ob);
	ob->multi = curl_multi_init();
	if (ob->multi == NULL) {
		free(ob);
		curl_global_cleanup();
		return NULL;
	}
	ob->cfg = *cfg;
	ob_tune(ob, cfg);
	ob->prefix =
	    xstrdup(cfg->metrics_prefix ? cfg->metrics_prefix : "assay_outbound");
	ob->secret_headers = xstrdup(cfg->secret_headers ? cfg->secret_headers : "");
	ob->user_agent = xstrdup(cfg->user_agent ? cfg->user_agent : "assay/1.0");
	ob->cfg.metrics_prefix = ob->cfg.secret_headers = ob->cfg.user_agent = NULL;
	ob->timer_at_us = OB_NEVER;
	ob->auth = OB_AUTH_NONE;
	if (getrandom(&ob->rng, sizeof ob->rng, GRND_NONBLOCK) !=
	        (ssize_t)sizeof ob->rng ||
	    ob->rng == 0)
		ob->rng = util_now_us() | 1;
	curl_multi_setopt(ob->multi, CURLMOPT_SOCKETFUNCTION, ob_socket_cb);
	curl_multi_setopt(ob->multi, CURLMOPT_SOCKETDATA, ob);
	curl_multi_setopt(ob->multi, CURLMOPT_TIMERFUNCTION, ob_timer_cb);
	curl_multi_setopt(ob->multi, CURLMOPT_TIMERDATA, ob);
	curl_multi_setopt(ob->multi, CURLMOPT_MAXCONNECTS, (long)OB_MAXCONNECTS);
	return ob;
}

static void
ob_endpoint_free(struct ob_endpoint *ep)
{
	free(ep->key);
	free(ep->label);
	free(ep);
}

static void
ob_xfer_free(struct ob_xfer *x)
{
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->method);
	free(x->logurl);
	free(x->endpoint);
	free(x->answer);
	free(x);
}

void
ob_free(struct ob *ob)
{
	struct ob_xfer *x;
	size_t i;

	if (ob == NULL)
		return;
	while ((x = ob->xfers) != NULL) {
		ob->xfers = x->next;
		if (x->state == OB_RUNNING)
			curl_multi_remove_handle(ob->multi, x->easy);
		ob_xfer_free(x);
	}
	curl_multi_cleanup(ob->multi); /* may still tell the socket callback */
	for (i = 0; i < ob->nendpoints; i++)
		ob_endpoint_free(ob->endpoints[i]);
	free(ob->socks);
	free(ob->prefix);
	free(ob->secret_headers);
	free(ob->user_agent);
	free(ob->credential);
	free(ob);
	curl_global_cleanup();
}

void
ob_set_auth(struct ob *ob, enum ob_auth auth, const char *credential)
{
	free(ob->credential);
	ob->auth = auth == OB_AUTH_DEFAULT ? OB_AUTH_NONE : auth;
	ob->credential = credential ? xstrdup(credential) : NULL;
}

/* Is s free of line breaks (a header, a credential, a method)? */
static bool
ob_one_line(const char *s)
{
	return s[strcspn(s, "\r\n")] == '\0';
}

/* Is the header name (n bytes) one of list's comma-separated names? */
static bool
ob_name_in(const char *name, size_t n, const char *list)
{
	size_t len;

	for (;;) {
		list += strspn(list, ", \t");
		if (*list == '\0')
			return false;
		len = strcspn(list, ", \t");
		if (len == n && strncasecmp(list, name, n) == 0)
			return true;
		list += len;
	}
}

/* Is the header line's value never to be logged? */
static bool
ob_secret(const struct ob *ob, const char *line)
{
	size_t n = strcspn(line, ":;");

	return ob_name_in(line, n, ob_always_secret) ||
	       ob_name_in(line, n, ob->secret_headers);
}

/* Parse url (http or https only): its endpoint "scheme://host:port" and,
 * if logurl is not NULL, the URL without userinfo, query or fragment.
 * Both are malloc'd. */
static bool
ob_url(const char *url, char **endpoint, char **logurl)
{
	static const CURLUPart drop[] = {CURLUPART_USER, CURLUPART_PASSWORD,
	                                 CURLUPART_OPTIONS, CURLUPART_QUERY,
	                                 CURLUPART_FRAGMENT};
	char *scheme = NULL, *host = NULL, *port = NULL, *clean = NULL, *p;
	CURLU *u = curl_url();
	bool ok = false;
	size_t i;

	if (u == NULL)
		abort();
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	for (i = 0; i < sizeof drop / sizeof drop[0]; i++)
		if (curl_url_set(u, drop[i], NULL, 0) != CURLUE_OK)
			goto out;
	if (logurl != NULL && curl_url_get(u, CURLUPART_URL, &clean, 0) != CURLUE_OK)
		goto out;
	for (p = host; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	*endpoint = xasprintf("%s://%s:%s", scheme, host, port);
	if (logurl != NULL)
		*logurl = xstrdup(clean);
	ok = true;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(clean);
	curl_url_cleanup(u);
	return ok;
}

/* s escaped as a Prometheus label value (malloc'd). */
static char *
ob_label(const char *s)
{
	char *out = xmalloc(2 * strlen(s) + 1), *o = out;

	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			*o++ = '\\';
		*o++ = *s == '\n' ? 'n' : *s;
	}
	*o = '\0';
	return out;
}

/* The slot to reuse when the table is full: the least recently used
 * endpoint whose breaker is closed, else the least recently used. */
static size_t
ob_victim(const struct ob *ob)
{
	const struct ob_endpoint *a, *b;
	size_t i, v = 0;

	for (i = 1; i < ob->nendpoints; i++) {
		a = ob->endpoints[i];
		b = ob->endpoints[v];
		if ((a->state == OB_BR_CLOSED) > (b->state == OB_BR_CLOSED) ||
		    ((a->state == OB_BR_CLOSED) == (b->state == OB_BR_CLOSED) &&
		     a->used_us < b->used_us))
			v = i;
	}
	return v;
}

/* The endpoint called key, marked used; created (forgetting another when
 * the table is full) if create, else NULL when unknown. */
static struct ob_endpoint *
ob_endpoint(struct ob *ob, const char *key, bool create)
{
	struct ob_endpoint *ep;
	size_t i;

	for (i = 0; i < ob->nendpoints; i++)
		if (strcmp(ob->endpoints[i]->key, key) == 0)
			break;
	if (i == ob->nendpoints) {
		if (!create)
			return NULL;
		if (ob->nendpoints < OB_ENDPOINTS_MAX) {
			ob->nendpoints++;
		} else {
			i = ob_victim(ob);
			ob_endpoint_free(ob->endpoints[i]);
		}
		ep = xcalloc(1, sizeof *ep);
		ep->key = xstrdup(key);
		ep->label = ob_label(key);
		ob->endpoints[i] = ep;
	}
	ob->endpoints[i]->used_us = util_now_us();
	return ob->endpoints[i];
}

static void
ob_breaker_to(struct ob_endpoint *ep, enum ob_breaker_state to)
{
	struct json_object *f = json_object_new_object();

	ep->state = to;
	ep->failures = ep->successes = 0;
	ep->transitions[to]++;
	if (to == OB_BR_OPEN)
		ep->opened_us = util_now_us();
	json_object_object_add(f, "endpoint", json_object_new_string(ep->key));
	json_object_object_add(f, "breaker",
	                       json_object_new_string(ob_breaker_names[to]));
	log_kv(to == OB_BR_OPEN ? LOG_WARN : LOG_INFO, "outbound circuit breaker", f);
}

/* May an attempt go to ep now? *probe: it is the half-open probe. */
static bool
ob_breaker_admit(const struct ob *ob, struct ob_endpoint *ep, bool *probe)
{
	*probe = false;
	if (ep->state == OB_BR_CLOSED)
		return true;
	if (ep->state == OB_BR_OPEN) {
		if (util_now_us() - ep->opened_us <
		    (uint64_t)ob->cfg.recovery_timeout_ms * 1000u)
			return false;
		ob_breaker_to(ep, OB_BR_HALF_OPEN);
	}
	if (ep->probing)
		return false;
	ep->probing = *probe = true;
	return true;
}

/* Count an attempt's verdict. Half-open, only the probe's counts; open,
 * none (attempts that left before it opened). */
static void
ob_breaker_record(const struct ob *ob, struct ob_endpoint *ep, bool probe, bool failed)
{
	if (probe)
		ep->probing = false;
	if (ep->state == OB_BR_CLOSED) {
		ep->failures = failed ? ep->failures + 1 : 0;
		if (ep->failures >= ob->cfg.failure_threshold)
			ob_breaker_to(ep, OB_BR_OPEN);
	} else if (ep->state == OB_BR_HALF_OPEN && probe) {
		if (failed)
			ob_breaker_to(ep, OB_BR_OPEN);
		else if (++ep->successes >= ob->cfg.success_threshold)
			ob_breaker_to(ep, OB_BR_CLOSED);
	}
}

static size_t
ob_class(long status)
{
	return status >= 100 && status < 600 ? (size_t)(status / 100 - 1)
	                                     : OB_CLASSES - 1;
}

/* The attempt's counters: outcome and class; its duration unless it was
 * refused before it left. */
static void
ob_count(struct ob_endpoint *ep, enum ob_result result, long status, uint64_t us)
{
	double s = (double)us / 1e6;
	size_t i;

	ep->requests[result][ob_class(status)]++;
	if (result == OB_OPEN)
		return;
	for (i = 0; i < OB_BUCKETS && s > ob_bounds[i]; i++)
		continue;
	if (i < OB_BUCKETS)
		ep->buckets[i]++;
	ep->count++;
	ep->sum += s;
}

static void
ob_log_attempt(const struct ob_xfer *x, enum ob_result result, uint64_t us)
{
	struct json_object *f;

	if (!log_enabled(LOG_INFO))
		return;
	f = json_object_new_object();
	json_object_object_add(f, "method", json_object_new_string(x->method));
	json_object_object_add(f, "url", json_object_new_string(x->logurl));
	json_object_object_add(f, "status", json_object_new_int64(x->status));
	json_object_object_add(f, "duration_ms",
	                       json_object_new_double((double)us / 1e3));
	json_object_object_add(f, "attempt", json_object_new_int(x->attempt));
	json_object_object_add(f, "outcome", json_object_new_string(ob_outcomes[result]));
	if (x->error != NULL)
		json_object_object_add(f, "error", json_object_new_string(x->error));
	log_kv(LOG_INFO, "outbound request", f);
}

/* At debug, the request's own headers, secret values left out. */
static void
ob_log_headers(const struct ob *ob, const struct ob_xfer *x, const char *const *headers)
{
	struct json_object *f, *h;
	const char *value;
	char name[128];
	size_t n;

	if (headers == NULL || !log_enabled(LOG_DEBUG))
		return;
	h = json_object_new_object();
	for (; *headers != NULL; headers++) {
		n = strcspn(*headers, ":;");
		value = *headers + n + ((*headers)[n] != '\0');
		snprintf(name, sizeof name, "%.*s", (int)n, *headers);
		json_object_object_add(
		    h, name,
		    json_object_new_string(ob_secret(ob, *headers)
		                               ? "(secret)"
		                               : value + strspn(value, " \t")));
	}
	f = json_object_new_object();
	json_object_object_add(f, "method", json_object_new_string(x->method));
	json_object_object_add(f, "url", json_object_new_string(x->logurl));
	json_object_object_add(f, "headers", h);
	log_kv(LOG_DEBUG, "outbound request headers", f);
}

/* CURLOPT_WRITEFUNCTION: keep the answer up to its most. */
static size_t
ob_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct ob_xfer *x = arg;
	size_t len = size * n, room = x->answermax - x->answerlen;

	if (len > room)
		len = room;
	if (x->answerlen + len + 1 > x->answercap) {
		x->answercap = x->answercap ? x->answercap : 4096;
		while (x->answercap < x->answerlen + len + 1)
			x->answercap *= 2;
		if (x->answercap > x->answermax + 1)
			x->answercap = x->answermax + 1;
		x->answer = xrealloc(x->answer, x->answercap);
	}
	memcpy(x->answer + x->answerlen, data, len);
	x->answerlen += len;
	x->answer[x->answerlen] = '\0';
	return size * n;
}

/* CURLOPT_OPENSOCKETFUNCTION: ask address_ok before every connection. */
static curl_socket_t
ob_opensocket_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct ob_xfer *x = arg;
	const struct ob_config *cfg = &x->ob->cfg;

	if (cfg->address_ok != NULL &&
	    !cfg->address_ok(&a->addr, a->addrlen, cfg->address_arg)) {
		x->address_refused = true;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* A method is an upper-case token; anything else is refused. */
static bool
ob_method_ok(const char *m)
{
	size_t n = strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZ");

	return n > 0 && n <= 16 && m[n] == '\0';
}

static struct curl_slist *
ob_slist(struct curl_slist *list, const char *line)
{
	struct curl_slist *l = curl_slist_append(list, line);

	if (l == NULL)
		abort(); /* out of memory: see xalloc.h */
	return l;
}

/* Set up the easy handle of x for req: false if req's headers or
 * credential are refused. */
static bool
ob_easy(const struct ob *ob, struct ob_xfer *x, const struct ob_request *req)
{
	enum ob_auth auth = req->auth == OB_AUTH_DEFAULT ? ob->auth : req->auth;
	const char *cred =
	    req->auth == OB_AUTH_DEFAULT ? ob->credential : req->credential;
	const char *const *h;
	CURL *e = x->easy;
	char *line;

	if (auth != OB_AUTH_NONE && (cred == NULL || !ob_one_line(cred)))
		return false;
	for (h = req->headers; h != NULL && *h != NULL; h++) {
		if (!ob_one_line(*h))
			return false;
		x->headers = ob_slist(x->headers, *h);
	}
	x->headers = ob_slist(x->headers, "Expect:"); /* no 100-continue wait */
	if (auth == OB_AUTH_BASIC) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERPWD, cred);
	} else if (auth != OB_AUTH_NONE) {
		line = xasprintf("%s%s", ob_auth_prefix[auth], cred);
		x->headers = ob_slist(x->headers, line);
		free(line);
	}
	if (req->body != NULL || strcmp(req->method, "POST") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)req->bodylen);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
	}
	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, req->body ? "POST" : "GET") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
	                 ob_or(req->timeout_ms, ob->cfg.timeout_ms));
	curl_easy_setopt(e, CURLOPT_USERAGENT, ob->user_agent);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, ob_opensocket_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ob_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	return curl_easy_setopt(e, CURLOPT_URL, req->url) == CURLE_OK;
}

/* x has its final answer: its callback is due in ob_perform. */
static void
ob_end(struct ob_xfer *x, enum ob_result result, const char *error)
{
	x->state = OB_ENDED;
	x->result = result;
	x->error = error;
}

/* Send x's next attempt, or end it with OB_OPEN if the breaker refuses. */
static void
ob_attempt(struct ob *ob, struct ob_xfer *x)
{
	struct ob_endpoint *ep = ob_endpoint(ob, x->endpoint, true);

	if (!ob_breaker_admit(ob, ep, &x->probe)) {
		ob_count(ep, OB_OPEN, 0, 0);
		ob_end(x, OB_OPEN, "the endpoint's circuit breaker is open");
		return;
	}
	if (x->attempt++ > 0)
		ep->retries++;
	x->answerlen = 0;
	if (x->answer != NULL)
		x->answer[0] = '\0';
	x->errbuf[0] = '\0';
	x->error = NULL;
	x->status = 0;
	x->address_refused = false;
	x->attempt_us = util_now_us();
	x->state = OB_RUNNING;
	if (curl_multi_add_handle(ob->multi, x->easy) != CURLM_OK)
		abort(); /* out of memory (or a bug) */
}

bool
ob_submit(struct ob *ob, const struct ob_request *req, ob_done_fn *done, void *arg)
{
	struct ob_xfer *x = xcalloc(1, sizeof *x);

	x->ob = ob;
	x->done = done;
	x->arg = arg;
	x->submitted_us = util_now_us();
	x->max_attempts =
	    req->max_attempts > 0 ? req->max_attempts : ob->cfg.max_attempts;
	x->answermax = req->max_body > 0 ? req->max_body : OB_BODY_MAX;
	if (!ob_method_ok(req->method) || !ob_url(req->url, &x->endpoint, &x->logurl))
		goto err;
	x->method = xstrdup(req->method);
	if ((x->easy = curl_easy_init()) == NULL)
		abort(); /* out of memory: see xalloc.h */
	if (!ob_easy(ob, x, req))
		goto err;
	ob_log_headers(ob, x, req->headers);
	x->next = ob->xfers;
	if (ob->xfers != NULL)
		ob->xfers->prev = x;
	ob->xfers = x;
	ob->pending++;
	ob_attempt(ob, x);
	return true;
err:
	ob_xfer_free(x);
	return false;
}

size_t
ob_pending(const struct ob *ob)
{
	return ob->pending;
}

size_t
ob_pollfds(struct ob *ob, struct pollfd *fds, size_t max)
{
	size_t n = ob->nsocks < max ? ob->nsocks : max;

	memcpy(fds, ob->socks, n * sizeof *fds);
	return n;
}

int
ob_timeout_ms(struct ob *ob)
{
	uint64_t at = ob->timer_at_us, now;
	const struct ob_xfer *x;

	for (x = ob->xfers; x != NULL; x = x->next)
		if (x->state == OB_ENDED)
			return 0;
		else if (x->state == OB_WAITING && x->retry_at_us < at)
			at = x->retry_at_us;
	if (at == OB_NEVER)
		return -1;
	now = util_now_us();
	if (at <= now)
		return 0;
	return (at - now) / 1000u >= INT_MAX ? INT_MAX : (int)((at - now + 999) / 1000u);
}

/* The wait before the retry that follows attempt: backoff_ms doubled per
 * attempt made, capped at backoff_max_ms, with equal jitter (half of it
 * fixed, half random), and never shorter than the answer's Retry-After. */
static uint64_t
ob_backoff_us(struct ob *ob, int attempt, curl_off_t retry_after_s)
{
	uint64_t ms = (uint64_t)ob->cfg.backoff_ms,
	         max = (uint64_t)ob->cfg.backoff_max_ms;
	int i;

	for (i = 1; i < attempt && ms < max; i++)
		ms *= 2;
	if (ms > max)
		ms = max;
	ms = ms / 2 + ob_random(ob) % (ms / 2 + 1);
	if ((uint64_t)retry_after_s * 1000u > ms)
		ms = (uint64_t)retry_after_s * 1000u;
	return ms * 1000u;
}

/* What libcurl's code means for the attempt. */
static enum ob_result
ob_result(const struct ob_xfer *x, CURLcode rc)
{
	if (rc == CURLE_OK)
		return OB_OK;
	if (x->address_refused)
		return OB_ADDRESS;
	return rc == CURLE_OPERATION_TIMEDOUT ? OB_TIMEOUT : OB_NETWORK;
}

/* An attempt ended with rc: count and log it, tell the breaker, then
 * retry x later or end it. */
static void
ob_finished(struct ob *ob, struct ob_xfer *x, CURLcode rc)
{
	enum ob_result result = ob_result(x, rc);
	uint64_t now = util_now_us(), us = now - x->attempt_us;
	curl_off_t retry_after = 0;
	struct ob_endpoint *ep;
	bool failed;

	curl_multi_remove_handle(ob->multi, x->easy);
	if (result == OB_OK) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &retry_after);
	} else if (result == OB_ADDRESS) {
		x->error = "the address connected to is not allowed";
	} else {
		x->error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
	}
	failed = result == OB_NETWORK || result == OB_TIMEOUT || x->status >= 500 ||
	         x->status == 429;
	ep = ob_endpoint(ob, x->endpoint, true);
	ob_count(ep, result, x->status, us);
	ob_log_attempt(x, result, us);
	if (result != OB_ADDRESS)
		ob_breaker_record(ob, ep, x->probe, failed);
	else if (x->probe)
		ep->probing = false;
	x->probe = false;
	if (failed && x->attempt < x->max_attempts && retry_after <= OB_RETRY_AFTER_MAX) {
		x->state = OB_WAITING;
		x->retry_at_us = now + ob_backoff_us(ob, x->attempt, retry_after);
	} else {
		ob_end(x, result, x->error);
	}
}

/* Call x's callback, then forget it. */
static void
ob_deliver(struct ob *ob, struct ob_xfer *x)
{
	char *ctype = NULL;
	struct ob_response r = {
	    .result = x->result,
	    .status = x->status,
	    .body = x->answer ? x->answer : "",
	    .bodylen = x->answerlen,
	    .error = x->result == OB_OK ? NULL : x->error,
	    .attempts = x->attempt,
	    .duration_us = util_now_us() - x->submitted_us,
	};

	if (x->result == OB_OK &&
	    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype) == CURLE_OK)
		r.content_type = ctype;

	if (x->prev != NULL)
		x->prev->next = x->next;
	else
		ob->xfers = x->next;
	if (x->next != NULL)
		x->next->prev = x->prev;
	ob->pending--;
	x->done(x->arg, &r);
	ob_xfer_free(x);
}

static int
ob_cselect(short revents)
{
	return ((revents & (POLLIN | POLLHUP)) ? CURL_CSELECT_IN : 0) |
	       ((revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
	       ((revents & POLLERR) ? CURL_CSELECT_ERR : 0);
}

void
ob_perform(struct ob *ob, const struct pollfd *fds, size_t n)
{
	struct ob_xfer *x, *next;
	CURLMsg *msg;
	CURLcode rc;
	void *priv;
	size_t i;
	int running, ev;

	for (i = 0; i < n; i++)
		if ((ev = ob_cselect(fds[i].revents)) != 0)
			curl_multi_socket_action(ob->multi, fds[i].fd, ev, &running);
	if (ob->timer_at_us <= util_now_us()) {
		ob->timer_at_us = OB_NEVER;
		curl_multi_socket_action(ob->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	while ((msg = curl_multi_info_read(ob->multi, &running)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		rc = msg->data.result; /* msg does not outlive the removal */
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		ob_finished(ob, priv, rc);
	}
	/* Callbacks may submit: new requests go first, after this walk. */
	for (x = ob->xfers; x != NULL; x = next) {
		next = x->next;
		if (x->state == OB_WAITING && x->retry_at_us <= util_now_us())
			ob_attempt(ob, x);
		if (x->state == OB_ENDED)
			ob_deliver(ob, x);
	}
}

const char *
ob_breaker(struct ob *ob, const char *url)
{
	const struct ob_endpoint *ep = NULL;
	char *key;

	if (ob_url(url, &key, NULL)) {
		ep = ob_endpoint(ob, key, false);
		free(key);
	}
	return ob_breaker_names[ep ? ep->state : OB_BR_CLOSED];
}

static void
ob_write_requests(FILE *f, const char *m, const struct ob_endpoint *ep)
{
	size_t o, c;

	for (o = 0; o < OB_OUTCOMES; o++)
		for (c = 0; c < OB_CLASSES; c++)
			if (ep->requests[o][c] != 0)
				fprintf(f,
				        "%s{endpoint=\"%s\",outcome=\"%s\",class=\"%s\"} "
				        "%" PRIu64 "\n",
				        m, ep->label, ob_outcomes[o], ob_classes[c],
				        ep->requests[o][c]);
}

static void
ob_write_duration(FILE *f, const char *m, const struct ob_endpoint *ep)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i < OB_BUCKETS; i++) {
		cum += ep->buckets[i];
		fprintf(f, "%s_bucket{endpoint=\"%s\",le=\"%g\"} %" PRIu64 "\n", m,
		        ep->label, ob_bounds[i], cum);
	}
	fprintf(f,
	        "%s_bucket{endpoint=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
	        "%s_sum{endpoint=\"%s\"} %.6f\n%s_count{endpoint=\"%s\"} %" PRIu64 "\n",
	        m, ep->label, ep->count, m, ep->label, ep->sum, m, ep->label, ep->count);
}

static void
ob_write_retries(FILE *f, const char *m, const struct ob_endpoint *ep)
{
	fprintf(f, "%s{endpoint=\"%s\"} %" PRIu64 "\n", m, ep->label, ep->retries);
}

static void
ob_write_state(FILE *f, const char *m, const struct ob_endpoint *ep)
{
	fprintf(f, "%s{endpoint=\"%s\"} %d\n", m, ep->label, (int)ep->state);
}

static void
ob_write_transitions(FILE *f, const char *m, const struct ob_endpoint *ep)
{
	size_t i;

	for (i = 0; i < OB_BREAKER_STATES; i++)
		fprintf(f, "%s{endpoint=\"%s\",to=\"%s\"} %" PRIu64 "\n", m, ep->label,
		        ob_breaker_names[i], ep->transitions[i]);
}

static const struct ob_family {
	const char *name, *type, *help;
	void (*write)(FILE *, const char *metric, const struct ob_endpoint *);
} ob_families[] = {
    {"requests_total", "counter",
     "Outbound attempts by endpoint, outcome and status class (open: refused by the "
     "breaker).",
     ob_write_requests},
    {"request_duration_seconds", "histogram", "Time of one outbound attempt.",
     ob_write_duration},
    {"retries_total", "counter", "Outbound attempts that were retries.",
     ob_write_retries},
    {"breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open.",
     ob_write_state},
    {"breaker_transitions_total", "counter", "Circuit breaker changes by new state.",
     ob_write_transitions},
};

void
ob_metrics_write(struct ob *ob, FILE *f)
{
	const struct ob_family *fam;
	char metric[256];
	size_t i;

	for (fam = ob_families; fam < ob_families + sizeof ob_families / sizeof *fam;
	     fam++) {
		snprintf(metric, sizeof metric, "%s_%s", ob->prefix, fam->name);
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", metric, fam->help, metric,
		        fam->type);
		for (i = 0; i < ob->nendpoints; i++)
			fam->write(f, metric, ob->endpoints[i]);
	}
}
