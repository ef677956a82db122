/*
 * The outbound HTTP client: every request Assay makes to another server
 * (webhook deliveries, the executor's calls on behalf of scripts) goes
 * through here, around libcurl's multi interface. Nothing here blocks: the
 * owner's poll(2) loop asks for the descriptors and the timeout
 * (ob_pollfds, ob_timeout_ms) and hands back what poll saw (ob_perform),
 * which calls each request's callback once it has its final answer.
 * Connections are kept alive and reused per host.
 *   A request is retried within the client (exponential backoff with
 * jitter, up to its max_attempts) on network errors, timeouts, 5xx and 429;
 * never on other 4xx or OB_ADDRESS. The wait before retry n is backoff_ms
 * doubled n-1 times, capped at backoff_max_ms, of which half is fixed and
 * half random ("equal jitter"); an answer's Retry-After (seconds or a date)
 * makes it at least that long, and one over 60 s ends the request with that
 * answer instead. Each endpoint (scheme, host, port) has a circuit breaker:
 * failure_threshold consecutive failed attempts (network, timeout, 5xx,
 * 429) open it and calls are refused at once, without a request; after
 * recovery_timeout_ms one probe is let through (half-open) while other
 * calls are still refused; success_threshold successive successful probes
 * close it, a failed one opens it again. OB_ADDRESS counts neither way.
 * Each transition is logged once (open at warn, the others at info).
 *   Every attempt is logged at info (method, URL without userinfo, query
 * or fragment, status, duration, attempt, outcome): never a credential, a
 * cookie, a query string or a configured secret header's value. Counters
 * per endpoint are written by ob_metrics_write in the owner's /metrics.
 *   Only http and https; redirects are not followed and proxies from the
 * environment are not used. Out of memory aborts, as in xalloc.h.
 * Not thread-safe: one client per event loop.
 */
#ifndef ASSAY_OUTBOUND_H
#define ASSAY_OUTBOUND_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct ob;

enum ob_auth {
	OB_AUTH_DEFAULT, /* a request: the client's; the client: none */
	OB_AUTH_NONE,
	OB_AUTH_BEARER,  /* Authorization: Bearer <credential> */
	OB_AUTH_API_KEY, /* X-API-Key: <credential> */
	OB_AUTH_BASIC,   /* credential is "user:password" */
};

struct ob_config {
	/* "assay_executor_outbound" (default "assay_outbound") */
	const char *metrics_prefix;
	long timeout_ms;          /* of one attempt (default 30,000) */
	int max_attempts;         /* default for requests (1: no retry) */
	long backoff_ms;          /* first retry's delay, doubling (default 100) */
	long backoff_max_ms;      /* (default 10,000) */
	int failure_threshold;    /* default 5 */
	long recovery_timeout_ms; /* default 60,000 */
	int success_threshold;    /* default 3 */
	/* Extra header names whose values are never logged ("X-Secret, X-Other");
	 * Authorization, Proxy-Authorization, X-API-Key, Cookie and Set-Cookie
	 * never are. (Request headers are logged at debug only.) */
	const char *secret_headers;
	/* Called with the address of every connection about to be made (after
	 * name resolution): false refuses it, and the attempt fails with
	 * OB_ADDRESS (not retried). NULL: any address. */
	bool (*address_ok)(const struct sockaddr *, socklen_t, void *arg);
	void *address_arg;
	const char *user_agent; /* "assay/1.0" */
};

/* The config is copied; zero members take the defaults. NULL when libcurl
 * cannot be set up. */
struct ob *ob_new(const struct ob_config *);
/* New timings and thresholds (the numbers of cfg; zero: the defaults), for
 * requests submitted from now on and for the breakers' next decisions; the
 * breakers keep their state. */
void ob_tune(struct ob *, const struct ob_config *);
/* Ends every request in flight without calling its callback. Not from a
 * callback. */
void ob_free(struct ob *);
/* The client's authentication, used by requests that say OB_AUTH_DEFAULT;
 * can change at any time (requests already submitted keep theirs). */
void ob_set_auth(struct ob *, enum ob_auth, const char *credential);

struct ob_request {
	const char *method;         /* "GET", "POST", ... */
	const char *url;            /* http or https only; redirects are not followed */
	const char *const *headers; /* "Name: value" lines, NULL-terminated, or NULL */
	const char *body;           /* or NULL */
	size_t bodylen;
	enum ob_auth auth;
	const char *credential;
	int max_attempts; /* 0: the client's */
	long timeout_ms;  /* of one attempt; 0: the client's */
	size_t max_body;  /* bytes of the answer kept; 0: 1 MiB */
};

enum ob_result {
	OB_OK,      /* an HTTP answer: see status (any status, 4xx and 5xx too) */
	OB_OPEN,    /* the endpoint's breaker is open: nothing was sent */
	OB_NETWORK, /* no answer: refused, reset, name not resolved ... */
	OB_TIMEOUT, /* no answer within the timeout */
	OB_ADDRESS, /* address_ok refused the address connected to */
};

struct ob_response {
	enum ob_result result;
	long status;      /* HTTP status of the last attempt; 0 without one */
	const char *body; /* the last answer's body (NUL-terminated; bodylen bytes) */
	const char *content_type; /* its Content-Type, or NULL */
	size_t bodylen;
	const char *error;    /* OB_OK: NULL; else what went wrong, for people */
	int attempts;         /* made; 0 when OB_OPEN */
	uint64_t duration_us; /* from submit to this answer */
};

/* Called once per request, always from ob_perform, never from ob_submit:
 * a request the breaker refuses at submission ends with OB_OPEN (attempts
 * 0) in the next ob_perform, which ob_timeout_ms makes due at once. A retry
 * the breaker refuses ends with OB_OPEN too, with the attempts made and the
 * last answer's status and body. The response and its body are valid until
 * the callback returns; it may call ob_submit. */
typedef void ob_done_fn(void *arg, const struct ob_response *);

/* Starts a request; everything in req is copied. Bodies of answers are
 * kept up to max_body (the rest is dropped and the answer still counts). false
 * only when it could not be started at all: a URL libcurl refuses or that
 * is not http or https, a method that is not an upper-case token, a header
 * or credential with a line break, an authentication without credential.
 * Then done is not called. */
bool ob_submit(struct ob *, const struct ob_request *req, ob_done_fn *done, void *arg);
/* Requests submitted whose callback has not been called yet. */
size_t ob_pending(const struct ob *);
/* Fills at most max pollfds with what the client waits for; returns how
 * many. Call it before every poll: the set changes. */
size_t ob_pollfds(struct ob *, struct pollfd *, size_t max);
/* Milliseconds until the client needs ob_perform for its timers (retries,
 * timeouts), or -1 when it has none. */
int ob_timeout_ms(struct ob *);
/* After poll: the pollfds ob_pollfds filled (with their revents), n of
 * them (0: timers only). Calls the callbacks of requests that ended. */
void ob_perform(struct ob *, const struct pollfd *, size_t n);
/* The breaker of url's endpoint: "closed", "half-open" or "open". */
const char *ob_breaker(struct ob *, const char *url);
/* Prometheus text, per endpoint: <prefix>_requests_total{endpoint,outcome,
 * class} (an attempt, or a call the breaker refused: outcome "open"; class
 * "2xx" ... or "none" without an answer), <prefix>_request_duration_seconds
 * (histogram of attempts), <prefix>_retries_total,
 * <prefix>_breaker_state (0 closed, 1 half-open, 2 open),
 * <prefix>_breaker_transitions_total{endpoint,to}. The prefix defaults to
 * "assay_outbound". At most 256 endpoints are counted; beyond, the least
 * recently used one whose breaker is closed is forgotten (if none is
 * closed, the least recently used one). */
void ob_metrics_write(struct ob *, FILE *);

#endif
