/*
 * The API side of run webhooks: where a run's callback_url may point (its
 * host, or every address the host resolves to, must be public or in
 * webhook_allow_networks), and a run's deliveries: the list, newest first,
 * and a redelivery of its current state. Deliveries are written by the
 * database (assay_webhook_enqueue, also the trigger at a terminal state)
 * and rendered by it (assay_delivery_json); executors send them. Nothing
 * here ever connects to a callback URL.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "db.h"
#include "extern.h"
#include "httpmsg.h"
#include "util.h"
#include "xalloc.h"

#define DELIVERIES_MAX "100" /* a listing shows the newest this many */

/* The host of a URL that valid.c has accepted, without an IPv6 literal's
 * brackets, into host (len bytes); false if it does not fit. */
static bool
url_host(const char *url, char *host, size_t len)
{
	CURLU *u = curl_url();
	char *h = NULL;
	size_t n;
	bool ok;

	ok = u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK;
	if (ok) {
		n = strlen(h);
		if (h[0] == '[' && n >= 2)
			snprintf(host, len, "%.*s", (int)n - 2, h + 1);
		else
			snprintf(host, len, "%s", h);
		ok = n < len;
	}
	curl_free(h);
	curl_url_cleanup(u);
	return ok;
}

/* The first address of list that webhook deliveries may not reach, into
 * addr (INET6_ADDRSTRLEN bytes); false when they may reach them all. */
static bool
refused_address(const struct addrinfo *list, const char *allow, char *addr)
{
	const struct addrinfo *ai;
	const void *raw;

	for (ai = list; ai != NULL; ai = ai->ai_next) {
		raw = ai->ai_family == AF_INET
		          ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)
		                ->sin_addr
		          : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)
		                ->sin6_addr;
		if (inet_ntop(ai->ai_family, raw, addr, INET6_ADDRSTRLEN) == NULL ||
		    !util_addr_reachable(addr, allow))
			return true;
	}
	return false;
}

void
webhooks_check_callback(struct req *r, const struct vvalue *v, struct json_object *errors)
{
	const struct addrinfo hints = {
	    .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_IDN};
	const char *allow = cfg_str(r->app->cfg, API_WEBHOOK_ALLOW), *kind;
	char host[256], addr[INET6_ADDRSTRLEN];
	struct addrinfo *list = NULL;
	int rc;

	if (!v[RF_CALLBACK].present)
		return;
	if (!url_host(v[RF_CALLBACK].str, host, sizeof host)) {
		valid_error(errors, "/callback_url", "has a host name that is too long");
		return;
	}
	rc = getaddrinfo(host, NULL, &hints, &list);
	if (rc == EAI_AGAIN || rc == EAI_FAIL || rc == EAI_MEMORY || rc == EAI_SYSTEM) {
		http_problem(
		    r, 503, "DNS_UNAVAILABLE", "Retry-After: 5\r\n",
		    "the callback_url's host %.200s could not be looked up (%s); "
		    "try again",
		    host, gai_strerror(rc));
	} else if (rc != 0) {
		valid_error(errors, "/callback_url", "host %.200s does not resolve",
		            host);
	} else if (refused_address(list, allow, addr)) {
		kind = util_addr_kind(addr);
		valid_error(
		    errors, "/callback_url",
		    "%s %s, a %s address; such addresses are refused unless listed "
		    "in webhook_allow_networks",
		    strcmp(addr, host) == 0 ? "points to" : "resolves to", addr,
		    kind != NULL ? kind : "non-public");
	}
	if (list != NULL)
		freeaddrinfo(list);
}

void
webhooks_deliveries(struct req *r)
{
	char days[16], *members;
	const char *params[3];
	PGresult *res;

	if (!runs_path_params(r, days, params))
		return;
	res = http_query_db(
	    r,
	    "SELECT coalesce((SELECT jsonb_agg(assay_delivery_json(d)"
	    "   ORDER BY d.created_at DESC, d.id DESC)"
	    "  FROM webhook_deliveries d WHERE d.id IN (SELECT id FROM webhook_deliveries"
	    "   WHERE job_id = j.id ORDER BY created_at DESC, id DESC"
	    "   LIMIT " DELIVERIES_MAX ")), '[]')"
	    " FROM analysis_jobs j WHERE j.id = $1 AND j.project_id = "
	    "$2" WITHIN_HISTORY("j.created_at", "$3"),
	    3, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 0) {
		runs_not_found(r);
	} else {
		members = xasprintf("\"data\":%s", PQgetvalue(res, 0, 0));
		http_success(r, 200, NULL, members);
		free(members);
	}
	PQclear(res);
}

/* Answer 202 with the delivery id names, as read in the open transaction,
 * once it is committed; 503 (rolled back) when the read or the commit
 * fails. */
static void
redeliver_answer(struct req *r, const char *id)
{
	PGresult *res = http_query_db(
	    r, "SELECT assay_delivery_json(d) FROM webhook_deliveries d WHERE d.id = $1",
	    1, &id);
	char *members;

	if (res == NULL)
		return;
	if (db_commit(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
	} else {
		members = xasprintf("\"delivery\":%s", PQgetvalue(res, 0, 0));
		http_success(r, 202, NULL, members);
		free(members);
	}
	PQclear(res);
}

/*
 * A fresh delivery of the run's current state to its callback_url. Only
 * a finished run has a state to tell (409 RUN_NOT_FINISHED before), and
 * only a run with a callback_url somewhere to tell it (409
 * NO_CALLBACK_URL, whatever its state: that never changes).
 */
void
webhooks_redeliver(struct req *r)
{
	char days[16];
	const char *params[3];
	PGresult *res;

	if (!runs_path_params(r, days, params))
		return;
	if (db_begin(r->app->db) != DB_OK) {
		http_db_failure(r, DB_DOWN);
		return;
	}
	res = http_query_db(r,
	                    "SELECT j.status, j.callback_url IS NOT NULL,"
	                    " CASE WHEN j.callback_url IS NOT NULL"
	                    "  AND j.status IN ('completed', 'failed', 'canceled')"
	                    "  THEN assay_webhook_enqueue(j) END"
	                    " FROM analysis_jobs j WHERE j.id = $1 AND j.project_id = "
	                    "$2" WITHIN_HISTORY("j.created_at", "$3"),
	                    3, params);
	if (res == NULL)
		return;
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 2)) {
		redeliver_answer(r, PQgetvalue(res, 0, 2));
		PQclear(res);
		return;
	}
	db_rollback(r->app->db);
	if (PQntuples(res) == 0)
		runs_not_found(r);
	else if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		http_problem(
		    r, 409, "NO_CALLBACK_URL", NULL,
		    "the run has no callback_url; there is nowhere to deliver to");
	else
		http_problem(r, 409, "RUN_NOT_FINISHED", NULL,
		             "the run is %s; only a finished run's state is delivered",
		             PQgetvalue(res, 0, 0));
	PQclear(res);
}
