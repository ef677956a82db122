/*
 * Webhook deliveries, the executor's second task. Due deliveries are taken
 * from the outbox (assay_webhook_take in sql/0008_webhooks.sql: SKIP
 * LOCKED, held for a lease while being sent) a batch at a time, signed as
 * Standard Webhooks says (webhook-id, webhook-timestamp, and in
 * webhook-signature "v1," + base64 HMAC-SHA256 of "id.timestamp.body" per
 * secret of the tenant) and sent through the outbound client
 * (lib/outbound.c), which never blocks the loop and keeps a circuit breaker
 * per endpoint. Outcomes wait in a batch written, with the next batch taken,
 * in one statement per pass of the loop (assay_webhook_settle: the next
 * attempt is scheduled or the delivery ended). A delivery refused by an open breaker is
 * given back without an attempt. An address the configuration does not allow
 * (webhook_allow_networks) is refused when connecting, whatever the name
 * resolved to. Runs never wait for any of this: a dead receiver costs one
 * statement per batch of its deliveries, not a stalled loop.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "db.h"
#include "extern.h"
#include "log.h"
#include "outbound.h"
#include "util.h"
#include "xalloc.h"

#define WH_SCHEDULE_MAX 32
#define WH_SECRETS_MAX  2

/* One delivery being sent. */
struct delivery {
	struct wh *wh;
	char id[40]; /* the outbox row's uuid */
	int attempt;
	int64_t started_ms; /* wall clock, for the attempt's record */
};

struct wh {
	struct ex *ex;
	struct ob *ob;
	struct json_object *outcomes; /* waiting to be recorded */
	size_t inflight;
	bool wake; /* deliveries may be due */
	uint64_t next_take_us;
	unsigned long delivered, failed_attempts, deferred;
	char schedule[WH_SCHEDULE_MAX * 12 + 3]; /* retry_schedule, "{5,30,...}" */
};

/* "5s 30s 2m, 1h" -> "{5,30,120,3600}" in array (PostgreSQL's integer[]
 * text; may be NULL); returns how many delays, or -1 when it does not parse
 * (or is empty, or longer than WH_SCHEDULE_MAX). */
static int
wh_schedule(const char *text, char *array)
{
	const char *p = text;
	int n = 0;

	for (;;) {
		char *end;
		long v;

		p += strspn(p, " \t,");
		if (*p == '\0') {
			if (array != NULL)
				strcpy(array, n > 0 ? "}" : "{}");
			return n > 0 ? n : -1;
		}
		if (!isdigit((unsigned char)*p) || n == WH_SCHEDULE_MAX)
			return -1;
		v = strtol(p, &end, 10);
		switch (*end) {
		case 's':
			break;
		case 'm':
			v *= 60;
			break;
		case 'h':
			v *= 3600;
			break;
		default:
			return -1;
		}
		if (v <= 0 || v > 7 * 86400)
			return -1;
		if (array != NULL)
			array += sprintf(array, "%c%ld", n > 0 ? ',' : '{', v);
		n++;
		p = end + 1;
	}
}

const char *
wh_config_error(const struct cfg *cfg)
{
	if (wh_schedule(cfg_str(cfg, EX_WH_SCHEDULE), NULL) < 0)
		return "[webhooks] retry_schedule must be 1 to 32 delays such as "
		       "\"5s 30m 2h\", each at most 7 days";
	return NULL;
}

/* Every connection a delivery makes: to a public address, or one allowed. */
static bool
wh_address_ok(const struct sockaddr *sa, socklen_t len, void *arg)
{
	const struct ex *ex = arg;
	char text[INET6_ADDRSTRLEN] = "";

	(void)len;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET,
		          &((const struct sockaddr_in *)(const void *)sa)->sin_addr, text,
		          sizeof text);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		          &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          text, sizeof text);
	if (util_addr_reachable(text, cfg_str(ex->cfg, EX_WH_ALLOW)))
		return true;
	log_msg(LOG_WARN,
	        "a webhook delivery was refused a connection to %s: not a public "
	        "address, and not in [webhooks] allow_networks",
	        text[0] != '\0' ? text : "an address of an unknown family");
	return false;
}

/* The client's settings from the configuration. */
static struct ob_config
wh_ob_config(struct ex *ex)
{
	return (struct ob_config){
	    .metrics_prefix = "assay_executor_outbound",
	    .timeout_ms = ex_int(ex, EX_WH_TIMEOUT_MS),
	    .max_attempts = 1, /* the outbox's schedule retries */
	    .failure_threshold = (int)ex_int(ex, EX_OB_FAILURES),
	    .recovery_timeout_ms = ex_int(ex, EX_OB_RECOVERY_MS),
	    .success_threshold = (int)ex_int(ex, EX_OB_SUCCESSES),
	    .address_ok = wh_address_ok,
	    .address_arg = ex,
	    .user_agent = "assay-webhooks/" PACKAGE_VERSION,
	};
}

bool
wh_start(struct ex *ex)
{
	struct ob_config oc = wh_ob_config(ex);
	struct wh *wh = xcalloc(1, sizeof *wh);

	if ((wh->ob = ob_new(&oc)) == NULL) {
		free(wh);
		log_msg(LOG_ERROR, "the outbound HTTP client cannot be set up");
		return false;
	}
	wh->ex = ex;
	wh_schedule(cfg_str(ex->cfg, EX_WH_SCHEDULE), wh->schedule);
	ex->clients[CLIENT_WEBHOOKS] = wh->ob;
	wh->outcomes = json_object_new_array();
	wh->wake = true;
	ex->wh = wh;
	return true;
}

void
wh_reload(struct ex *ex)
{
	struct ob_config oc = wh_ob_config(ex);

	ob_tune(ex->wh->ob, &oc);
	wh_schedule(cfg_str(ex->cfg, EX_WH_SCHEDULE), ex->wh->schedule);
}

void
wh_wake(struct ex *ex)
{
	ex->wh->wake = true;
}

/* Standard Webhooks' signature header: "v1,<b64> v1,<b64>" for each secret
 * (hex) over id.ts.body. Caller frees. */
static char *
wh_sign(const char *id, const char *ts, const char *body, struct json_object *secrets)
{
	size_t blen = strlen(body), clen = strlen(id) + strlen(ts) + blen + 2, n, i;
	char *content = xmalloc(clen + 1), *header = xmalloc(WH_SECRETS_MAX * 50 + 20);
	unsigned char *key, mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	size_t used = 0;
	long klen;

	snprintf(content, clen + 1, "%s.%s.%s", id, ts, body);
	strcpy(header, "");
	n = json_object_array_length(secrets);
	for (i = 0; i < n && i < WH_SECRETS_MAX; i++) {
		key = OPENSSL_hexstr2buf(
		    json_object_get_string(json_object_array_get_idx(secrets, i)), &klen);
		if (key == NULL)
			continue;
		if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)content,
		         clen, mac, &maclen) == NULL)
			maclen = 0;
		OPENSSL_clear_free(key, (size_t)klen);
		if (maclen == 0)
			continue;
		used += (size_t)sprintf(header + used, "%sv1,", used > 0 ? " " : "");
		used += (size_t)EVP_EncodeBlock((unsigned char *)header + used, mac,
		                                (int)maclen);
	}
	free(content);
	return header;
}

/* Keep the outcome of an attempt (ok: delivered; defer_s > 0: none was
 * made). */
static void
wh_outcome(struct delivery *d, const struct ob_response *r, bool ok, int defer_s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(d->id));
	json_object_object_add(o, "attempt", json_object_new_int(d->attempt));
	if (defer_s > 0) {
		json_object_object_add(o, "defer", json_object_new_int(defer_s));
	} else {
		json_object_object_add(o, "started_at",
		                       json_object_new_int64(d->started_ms));
		json_object_object_add(o, "duration_ms",
		                       json_object_new_int((int)(r->duration_us / 1000)));
		if (r->status > 0)
			json_object_object_add(o, "status_code",
			                       json_object_new_int((int)r->status));
		if (!ok) {
			char why[256];

			if (r->result == OB_OK)
				snprintf(why, sizeof why, "HTTP %ld", r->status);
			else
				snprintf(why, sizeof why, "%s",
				         r->error ? r->error : "failed");
			json_object_object_add(o, "error", json_object_new_string(why));
		}
		json_object_object_add(o, "ok", json_object_new_boolean(ok));
	}
	json_object_array_add(d->wh->outcomes, o);
}

static void
wh_done(void *arg, const struct ob_response *r)
{
	struct delivery *d = arg;
	struct wh *wh = d->wh;
	bool ok = r->result == OB_OK && r->status >= 200 && r->status < 300;

	if (r->result == OB_OPEN) {
		wh->deferred++;
		/* (given back for the breaker's recovery time, at least 1 s) */
		wh_outcome(d, r, false,
		           (int)(ex_int(wh->ex, EX_OB_RECOVERY_MS) + 999) / 1000);
	} else {
		wh_outcome(d, r, ok, 0);
		if (ok)
			wh->delivered++;
		else
			wh->failed_attempts++;
	}
	wh->inflight--;
	wh->wake = true; /* room for another */
	free(d);
}

/* Send one delivery taken from the outbox (a row of assay_webhook_take). */
static void
wh_send(struct ex *ex, PGresult *res, int row)
{
	struct wh *wh = ex->wh;
	struct delivery *d = xcalloc(1, sizeof *d);
	const char *uuid = PQgetvalue(res, row, 0), *body = PQgetvalue(res, row, 2);
	char msgid[48], ts[24], hid[64], hts[48], *sig, *hsig;
	const char *headers[5];
	struct json_object *secrets;
	struct timespec now;
	size_t i, k = 0;

	for (i = 0; uuid[i] != '\0' && k < sizeof msgid - 5; i++)
		if (uuid[i] != '-')
			msgid[4 + k++] = uuid[i];
	memcpy(msgid, "msg_", 4);
	msgid[4 + k] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(ts, sizeof ts, "%lld", (long long)now.tv_sec);
	secrets = json_tokener_parse(PQgetvalue(res, row, 4));
	sig = wh_sign(msgid, ts, body, secrets);
	json_object_put(secrets);
	snprintf(hid, sizeof hid, "webhook-id: %s", msgid);
	snprintf(hts, sizeof hts, "webhook-timestamp: %s", ts);
	hsig = xmalloc(strlen(sig) + 32);
	sprintf(hsig, "webhook-signature: %s", sig);
	headers[0] = "Content-Type: application/json";
	headers[1] = hid;
	headers[2] = hts;
	headers[3] = hsig;
	headers[4] = NULL;

	d->wh = wh;
	snprintf(d->id, sizeof d->id, "%s", uuid);
	d->attempt = atoi(PQgetvalue(res, row, 3));
	d->started_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	wh->inflight++;
	if (!ob_submit(wh->ob,
	               &(struct ob_request){.method = "POST",
	                                    .url = PQgetvalue(res, row, 1),
	                                    .headers = headers,
	                                    .body = body,
	                                    .bodylen = strlen(body)},
	               wh_done, d)) {
		struct ob_response r = {.result = OB_NETWORK,
		                        .error = "the URL is refused"};

		wh_done(d, &r);
	}
	free(hsig);
	free(sig);
}

/* One round trip: record the attempts that ended, then take up to want due
 * deliveries and send them. */
static void
wh_settle(struct ex *ex, long want)
{
	struct wh *wh = ex->wh;
	char limit[24], lease[24];
	const char *params[4] = {NULL, wh->schedule, limit, lease};
	size_t ended = json_object_array_length(wh->outcomes);
	PGresult *res;
	int n, i;

	params[0] = json_object_to_json_string_ext(wh->outcomes, JSON_C_TO_STRING_PLAIN);
	snprintf(limit, sizeof limit, "%ld", want);
	/* Held for longer than an attempt may take; then anyone may send it. */
	snprintf(lease, sizeof lease, "%ld", ex_int(ex, EX_WH_TIMEOUT_MS) / 1000 + 5);
	if (db_query(ex->db, &res,
	             "SELECT id, url, body, attempt, array_to_json(secrets)"
	             " FROM assay_webhook_settle($1::jsonb, $2::integer[], $3, $4)",
	             4, params) != DB_OK) {
		if (ended > 0) /* sent again when their lease ends */
			log_msg(LOG_ERROR, "%zu webhook attempts could not be recorded",
			        ended);
		res = NULL;
	}
	json_object_put(wh->outcomes);
	wh->outcomes = json_object_new_array();
	if (res == NULL)
		return;
	n = PQntuples(res);
	for (i = 0; i < n; i++)
		wh_send(ex, res, i);
	if (want > 0 && n == want)
		wh->wake = true; /* there may be more */
	PQclear(res);
}

void
wh_tick(struct ex *ex, uint64_t now)
{
	struct wh *wh = ex->wh;
	long max = ex_int(ex, EX_WH_CONCURRENT), room = max - (long)wh->inflight,
	     want = 0;

	if (now >= wh->next_take_us) {
		wh->wake = true; /* retries come due without a notification */
		wh->next_take_us =
		    now + (uint64_t)ex_int(ex, EX_POLL_INTERVAL_MS) * 1000u;
	}
	/* Taken in batches: once half the room is free, or all of it. */
	if (wh->wake && !ex->stopping && room > 0 && (room >= (max + 1) / 2)) {
		wh->wake = false;
		want = room;
	}
	if (want > 0 || json_object_array_length(wh->outcomes) > 0)
		wh_settle(ex, want);
}

void
wh_stop(struct ex *ex)
{
	if (ex->wh == NULL)
		return;
	if (json_object_array_length(ex->wh->outcomes) > 0)
		wh_settle(ex, 0);
	ob_free(ex->wh->ob); /* deliveries in flight are sent again after their lease */
	ex->clients[CLIENT_WEBHOOKS] = NULL;
	json_object_put(ex->wh->outcomes);
	free(ex->wh);
	ex->wh = NULL;
}

void
wh_metrics(struct ex *ex, FILE *f)
{
	struct wh *wh = ex->wh;

	fprintf(f,
	        "# HELP assay_executor_webhook_attempts_total Webhook delivery attempts "
	        "by outcome (deferred: not made, the endpoint's breaker was open).\n"
	        "# TYPE assay_executor_webhook_attempts_total counter\n"
	        "assay_executor_webhook_attempts_total{outcome=\"delivered\"} %lu\n"
	        "assay_executor_webhook_attempts_total{outcome=\"failed\"} %lu\n"
	        "assay_executor_webhook_attempts_total{outcome=\"deferred\"} %lu\n"
	        "# HELP assay_executor_webhooks_in_flight Deliveries being sent.\n"
	        "# TYPE assay_executor_webhooks_in_flight gauge\n"
	        "assay_executor_webhooks_in_flight %zu\n",
	        wh->delivered, wh->failed_attempts, wh->deferred, wh->inflight);
	ob_metrics_write(wh->ob, f);
}
