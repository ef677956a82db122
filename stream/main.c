/*
 * assay-stream: GET /api/v1/runs/{id}/events as Server-Sent Events, for
 * thousands of clients from one process.
 *
 * The web server passes each stream over its own FastCGI connection
 * (unbuffered). A connection goes through three states:
 *   C_PARAMS  reading the request (FastCGI BEGIN_REQUEST and PARAMS)
 *   C_AUTH    its API key or token is being checked by PostgreSQL
 *   C_LIVE    subscribed to its run: every event is written as it comes
 * and C_DONE once the run's terminal event is queued (closed when sent).
 *
 * All of a run's subscribers share one "topic". A NOTIFY on assay_events
 * ('<run> <seq>') makes the topic fetch the rows after the lowest event
 * id any subscriber has, once, and each subscriber takes the rows after
 * its own id: resuming (Last-Event-ID) and joining while events arrive
 * can leave neither gaps nor duplicates. Queries run one at a time on a
 * single asynchronous libpq connection that also holds the LISTEN.
 *
 * Events go out at each client's pace: a stream holds at most about
 * buffer_bytes unsent; past that it is paused (left behind on purpose)
 * and fetches the rest once it has taken what it holds, so a backlog of
 * any size can be replayed. A client that takes nothing for two heartbeat
 * intervals while events wait has stopped reading and is disconnected; it
 * resumes with Last-Event-ID. Nothing blocks the loop
 * except reconnecting to PostgreSQL (connect_timeout 2 s, at most once a
 * second), during which streams are kept but get no news.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "assayconf.h"
#include "apikey.h"
#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "probe.h"
#include "util.h"
#include "xalloc.h"

#define TOPIC_BUCKETS 4096
#define FETCH_ROWS    500
#define IN_MAX        65536 /* a request's records; more is not a browser's GET */

enum cstate { C_PARAMS, C_AUTH, C_LIVE, C_DONE };

struct topic;

struct conn {
	int fd;
	enum cstate state;
	unsigned req_id;
	bool streaming;    /* the 200 header went out: counted as a stream */
	bool want_write;   /* EPOLLOUT is registered */
	bool query_held;   /* a queued or running query points here */
	bool closed;       /* closed while query_held: freed when it returns */
	bool paused;       /* its buffer is full: behind until it drains */
	unsigned char *in; /* unparsed input */
	size_t inlen;
	unsigned char *params; /* PARAMS content, until the request is handled */
	size_t plen;
	char *out; /* FastCGI records not yet written */
	size_t outlen, outoff, outcap;
	struct topic *topic;
	struct conn *prev, *next; /* the topic's subscribers */
	long last;                /* id of the last event sent */
	char run[37];
	char request_id[65];
	uint64_t start_us, last_write_us;
	unsigned long sent;
	size_t slot;        /* index in st.all */
	struct conn *grave; /* next closed connection to free */
};

struct topic {
	char run[37];
	struct topic *hnext;
	struct conn *subs;
	size_t nsubs;
	long fetched;    /* highest event id fetched */
	bool queued;     /* a fetch is queued or running */
	bool delivering; /* events are being handed out */
	bool again;      /* news arrived while it was */
};

enum qkind { Q_KEY, Q_TOKEN, Q_FETCH };

struct query {
	struct query *next;
	enum qkind kind;
	struct conn *conn;   /* Q_KEY, Q_TOKEN */
	struct topic *topic; /* Q_FETCH */
	char p[3][100];
	char digest[65];
};

static struct {
	const struct cfg *cfg;
	int ep, listen_fd, probe_fd, sig_fd;
	PGconn *pg;
	bool pg_busy, pg_flushing;
	uint64_t pg_retry_us;
	struct query *qhead, *qtail, *running;
	struct topic *topics[TOPIC_BUCKETS];
	struct conn **all; /* every connection, for heartbeats and shutdown */
	size_t nall, capall;
	struct conn *graves; /* closed connections, freed after the loop's round */
	bool stopping;
	unsigned long opened, closed, messages, refused;
	size_t active;
} st;

static const char *const terminal[] = {"completed", "failed", "canceled", NULL};

/* ---- topics -------------------------------------------------------- */

static size_t
topic_bucket(const char *run)
{
	size_t h = 5381;

	for (; *run; run++)
		h = h * 33 + (unsigned char)*run;
	return h % TOPIC_BUCKETS;
}

static struct topic *
topic_find(const char *run)
{
	struct topic *t;

	for (t = st.topics[topic_bucket(run)]; t != NULL; t = t->hnext)
		if (strcmp(t->run, run) == 0)
			return t;
	return NULL;
}

static void
topic_release(struct topic *t)
{
	struct topic **pp;

	if (t->nsubs > 0 || t->queued || t->delivering)
		return;
	for (pp = &st.topics[topic_bucket(t->run)]; *pp != t; pp = &(*pp)->hnext)
		;
	*pp = t->hnext;
	free(t);
}

/* ---- PostgreSQL ------------------------------------------------------ */

static void pg_pump(void);

static void
query_push(struct query *q)
{
	q->next = NULL;
	if (st.qtail)
		st.qtail->next = q;
	else
		st.qhead = q;
	st.qtail = q;
	pg_pump();
}

static void
topic_fetch(struct topic *t)
{
	struct query *q;

	if (t->queued) {
		t->again = true;
		return;
	}
	t->queued = true;
	t->again = false;
	q = xcalloc(1, sizeof *q);
	q->kind = Q_FETCH;
	q->topic = t;
	query_push(q);
}

/* The three statements, prepared on each new connection under their kind's number. */
static const char *const statements[] = {
    [Q_KEY] = "SELECT encode(k.hash, 'hex'), k.revoked_at IS NOT NULL, j.status,"
              " j.event_seq FROM api_keys k"
              " JOIN projects p ON p.tenant_id = k.tenant_id AND p.name = 'default'"
              " LEFT JOIN analysis_jobs j ON j.id = $2::uuid AND j.project_id = p.id"
              " WHERE k.prefix = $1",
    [Q_TOKEN] = "SELECT t.expires_at > now(), j.status, j.event_seq,"
                " k.revoked_at IS NOT NULL"
                " FROM stream_tokens t JOIN analysis_jobs j ON j.id = t.job_id"
                " JOIN api_keys k ON k.id = t.api_key_id"
                " WHERE t.token_hash = decode($1, 'hex') AND t.job_id = $2::uuid",
    [Q_FETCH] = "SELECT seq, type, data::text FROM job_events"
                " WHERE job_id = $1::uuid AND seq > $2::int ORDER BY seq LIMIT 500",
};

static void
pg_watch(uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &st.pg};

	if (epoll_ctl(st.ep, EPOLL_CTL_MOD, PQsocket(st.pg), &ev) != 0)
		epoll_ctl(st.ep, EPOLL_CTL_ADD, PQsocket(st.pg), &ev);
}

static void
pg_connect(void)
{
	static const char *const kw[] = {"connect_timeout", "application_name", "dbname",
	                                 NULL};
	const char *val[] = {"2", "assay-stream", cfg_str(st.cfg, API_DATABASE_URL),
	                     NULL};
	PGresult *res;
	size_t i;
	struct topic *t;

	st.pg = PQconnectdbParams(kw, val, 1);
	res = PQstatus(st.pg) == CONNECTION_OK ? PQexec(st.pg, "LISTEN assay_events")
	                                       : NULL;
	for (i = 0; i < sizeof statements / sizeof statements[0] && res != NULL &&
	            PQresultStatus(res) == PGRES_COMMAND_OK;
	     i++) {
		char name[8];

		PQclear(res);
		snprintf(name, sizeof name, "s%zu", i);
		res = PQprepare(st.pg, name, statements[i], 2, NULL);
	}
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (st.pg_retry_us == 0)
			log_msg(LOG_WARN,
			        "PostgreSQL unreachable: %s; retrying every second",
			        strtok(PQerrorMessage(st.pg), "\n"));
		PQclear(res);
		PQfinish(st.pg);
		st.pg = NULL;
		st.pg_retry_us = util_now_us() + 1000000u;
		return;
	}
	PQclear(res);
	PQsetnonblocking(st.pg, 1);
	log_msg(LOG_INFO, "listening for run events on PostgreSQL");
	st.pg_retry_us = 0;
	pg_watch(EPOLLIN);
	/* Whatever happened while disconnected: every topic catches up. */
	for (i = 0; i < TOPIC_BUCKETS; i++)
		for (t = st.topics[i]; t != NULL; t = t->hnext)
			if (t->nsubs > 0)
				topic_fetch(t);
	pg_pump();
}

static void notified(const char *payload);
static void conn_answer(struct conn *, int status, const char *code, const char *headers,
                        const char *detail);
static void conn_close(struct conn *);
static void query_done(struct query *, PGresult *);

static void
pg_lost(void)
{
	struct query *q = st.running;

	log_msg(LOG_WARN, "PostgreSQL connection lost: %s",
	        st.pg ? strtok(PQerrorMessage(st.pg), "\n") : "");
	if (st.pg != NULL) {
		epoll_ctl(st.ep, EPOLL_CTL_DEL, PQsocket(st.pg), NULL);
		PQfinish(st.pg);
	}
	st.pg = NULL;
	st.pg_busy = st.pg_flushing = false;
	st.running = NULL;
	st.pg_retry_us = util_now_us();
	if (q != NULL)
		query_done(q,
		           NULL); /* answered 503, or fetched again after reconnecting */
}

/* Has the topic a subscriber that can take events now? */
static bool
topic_wants(const struct topic *t)
{
	const struct conn *c;

	for (c = t->subs; c != NULL; c = c->next)
		if (!c->paused)
			return true;
	return false;
}

static void
pg_send(struct query *q)
{
	const char *params[2] = {q->p[0], q->p[1]};
	struct conn *c;
	char name[8];
	long low;

	if (q->kind == Q_FETCH) {
		low = LONG_MAX;
		for (c = q->topic->subs; c != NULL; c = c->next)
			if (!c->paused)
				low = c->last < low ? c->last : low;
		snprintf(q->p[0], sizeof q->p[0], "%s", q->topic->run);
		snprintf(q->p[1], sizeof q->p[1], "%ld", low == LONG_MAX ? 0 : low);
		q->topic->again = false;
	}
	snprintf(name, sizeof name, "s%d", (int)q->kind);
	if (!PQsendQueryPrepared(st.pg, name, 2, params, NULL, NULL, 0)) {
		st.running = q;
		pg_lost();
		return;
	}
	st.running = q;
	st.pg_busy = true;
	st.pg_flushing = PQflush(st.pg) == 1;
	pg_watch(st.pg_flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void
pg_pump(void)
{
	struct query *q;

	while (st.pg != NULL && !st.pg_busy && st.qhead != NULL) {
		q = st.qhead;
		st.qhead = q->next;
		if (st.qhead == NULL)
			st.qtail = NULL;
		if (q->kind != Q_FETCH && q->conn->closed) {
			query_done(q, NULL);
			continue;
		}
		if (q->kind == Q_FETCH && !topic_wants(q->topic)) {
			query_done(q, NULL); /* fetched again when one drains */
			continue;
		}
		pg_send(q);
	}
}

static void
pg_readable(void)
{
	PGresult *res, *first = NULL;
	PGnotify *n;

	if (st.pg_flushing) {
		st.pg_flushing = PQflush(st.pg) == 1;
		pg_watch(st.pg_flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
	}
	if (!PQconsumeInput(st.pg)) {
		pg_lost();
		return;
	}
	while ((n = PQnotifies(st.pg)) != NULL) {
		notified(n->extra);
		PQfreemem(n);
	}
	if (!st.pg_busy || PQisBusy(st.pg))
		return;
	while ((res = PQgetResult(st.pg)) != NULL) {
		if (first == NULL)
			first = res;
		else
			PQclear(res);
	}
	st.pg_busy = false;
	if (first != NULL && PQresultStatus(first) != PGRES_TUPLES_OK) {
		log_msg(LOG_ERROR, "query failed: %s",
		        strtok(PQerrorMessage(st.pg), "\n"));
		PQclear(first);
		first = NULL;
		if (PQstatus(st.pg) != CONNECTION_OK) {
			pg_lost();
			return;
		}
	}
	{
		struct query *q = st.running;

		st.running = NULL;
		query_done(q, first);
	}
	PQclear(first);
	pg_pump();
}

/* ---- streams --------------------------------------------------------- */

static void
conn_watch(struct conn *c, bool write)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (write ? EPOLLOUT : 0),
	                         .data.ptr = c};

	if (write != c->want_write)
		epoll_ctl(st.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_write = write;
}

/* Write what is pending; close when done with a finished request. */
static void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			conn_watch(c, true);
			return;
		}
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->outoff += (size_t)n;
		c->last_write_us = util_now_us();
	}
	c->outoff = c->outlen = 0;
	if (c->outcap > 4096) { /* an idle stream keeps no buffer */
		free(c->out);
		c->out = NULL;
		c->outcap = 0;
	}
	conn_watch(c, false);
	if (c->state == C_DONE)
		conn_close(c);
	else if (c->paused) { /* it took all it held: on with the rest */
		c->paused = false;
		if (c->topic != NULL)
			topic_fetch(c->topic);
	}
}

static void
conn_write(struct conn *c, const char *data, size_t len)
{
	fcgi_append(&c->out, &c->outlen, &c->outcap, FCGI_STDOUT, c->req_id, data, len);
}

static void
conn_end(struct conn *c)
{
	fcgi_append_end(&c->out, &c->outlen, &c->outcap, c->req_id);
	c->state = C_DONE;
}

static void
unsubscribe(struct conn *c)
{
	struct topic *t = c->topic;

	if (t == NULL)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		t->subs = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->topic = NULL;
	t->nsubs--;
	topic_release(t);
}

/*
 * A closed connection is freed only after the current round of the event
 * loop: code that closed it (or saw it closed) may still hold the pointer.
 */
static void
bury(struct conn *c)
{
	c->grave = st.graves;
	st.graves = c;
}

static void
bury_all(void)
{
	struct conn *c;

	while ((c = st.graves) != NULL) {
		st.graves = c->grave;
		free(c);
	}
}

static void
conn_close(struct conn *c)
{
	char members[400];

	if (c->fd < 0)
		return;
	unsubscribe(c);
	epoll_ctl(st.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->streaming) {
		st.closed++;
		st.active--;
		snprintf(members, sizeof members,
		         "\"method\":\"GET\",\"route\":\"/api/v1/runs/{id}/events\","
		         "\"status\":200,\"duration_ms\":%.3f,\"request_id\":\"%s\","
		         "\"run\":\"%s\",\"events\":%lu",
		         (double)(util_now_us() - c->start_us) / 1000.0, c->request_id,
		         c->run, c->sent);
		log_line(LOG_INFO, "stream closed", members);
	}
	st.all[c->slot] = st.all[--st.nall];
	st.all[c->slot]->slot = c->slot;
	free(c->in);
	free(c->params);
	free(c->out);
	c->in = c->params = NULL;
	c->out = NULL;
	c->closed = true;
	if (!c->query_held)
		bury(c);
}

static const char *
reason(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	default:
		return "Service Unavailable";
	}
}

/* A complete HTTP answer (not a stream) and the end of the request. */
static void
conn_answer(struct conn *c, int status, const char *code, const char *headers,
            const char *detail)
{
	char *body, *msg;

	body = xasprintf("{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,"
	                 "\"detail\":\"%s\",\"code\":\"%s\",\"request_id\":\"%s\"}",
	                 reason(status), status, detail, code, c->request_id);
	msg =
	    xasprintf("Status: %d\r\nContent-Type: application/problem+json\r\n"
	              "Content-Length: %zu\r\nX-Request-ID: %s\r\n"
	              "Cache-Control: no-store\r\n%s\r\n%s",
	              status, strlen(body), c->request_id, headers ? headers : "", body);
	conn_write(c, msg, strlen(msg));
	conn_end(c);
	free(body);
	free(msg);
	conn_flush(c);
}

/* Queue one event; false when the client's buffer is full (it is paused
 * and takes this event from a later fetch). */
static bool
conn_event(struct conn *c, long seq, const char *type, const char *data)
{
	char head[96];
	int n = snprintf(head, sizeof head, "id: %ld\nevent: %s\ndata: ", seq, type);

	if (c->paused ||
	    c->outlen - c->outoff >= (size_t)cfg_int(st.cfg, STREAM_BUFFER)) {
		c->paused = true;
		return false;
	}
	conn_write(c, head, (size_t)n);
	conn_write(c, data, strlen(data));
	conn_write(c, "\n\n", 2);
	c->last = seq;
	c->sent++;
	st.messages++;
	return true;
}

static bool
is_terminal(const char *status)
{
	size_t i;

	for (i = 0; terminal[i] != NULL; i++)
		if (strcmp(terminal[i], status) == 0)
			return true;
	return false;
}

/* Authorized: send the header and join the run's topic. */
static void
conn_start(struct conn *c, const char *status, long event_seq)
{
	struct topic *t;
	char *head;

	head = xasprintf("Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
	                 "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
	                 "X-Request-ID: %s\r\n\r\nretry: %ld\n\n",
	                 c->request_id, cfg_int(st.cfg, STREAM_RETRY_MS));
	conn_write(c, head, strlen(head));
	free(head);
	c->streaming = true;
	st.opened++;
	st.active++;
	c->state = C_LIVE;
	if (is_terminal(status) && c->last >= event_seq) {
		conn_end(c); /* nothing more will ever come */
		conn_flush(c);
		return;
	}
	if ((t = topic_find(c->run)) == NULL) {
		t = xcalloc(1, sizeof *t);
		snprintf(t->run, sizeof t->run, "%s", c->run);
		t->hnext = st.topics[topic_bucket(c->run)];
		st.topics[topic_bucket(c->run)] = t;
	}
	c->topic = t;
	c->prev = NULL;
	c->next = t->subs;
	if (t->subs)
		t->subs->prev = c;
	t->subs = c;
	t->nsubs++;
	if (event_seq > c->last)
		topic_fetch(t);
	conn_flush(c);
}

/*
 * Hand event seq to the subscribers whose last event is seq - 1 (so none
 * gets a gap or a duplicate); end those it finishes. Not flushed here.
 * Returns how many subscribers are further behind.
 */
static size_t
topic_deliver(struct topic *t, long seq, const char *type, const char *data)
{
	struct conn *c, *next;
	size_t behind = 0;

	t->delivering = true; /* unsubscribing the last one must not free t */
	for (c = t->subs; c != NULL; c = next) {
		next = c->next;
		if (c->last < seq - 1)
			behind++;
		if (c->last != seq - 1 || !conn_event(c, seq, type, data))
			continue;
		if (is_terminal(type)) {
			unsubscribe(c);
			conn_end(c);
			conn_flush(c); /* closes it once all is written */
		}
	}
	t->delivering = false;
	if (seq > t->fetched)
		t->fetched = seq;
	return behind;
}

static void
topic_flush(struct topic *t)
{
	struct conn *c, *next;

	for (c = t->subs; c != NULL; c = next) {
		next = c->next;
		conn_flush(c);
	}
}

static void
fetched(struct topic *t, PGresult *res)
{
	int i, rows = PQntuples(res);

	for (i = 0; i < rows; i++)
		topic_deliver(t, atol(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1),
		              PQgetvalue(res, i, 2));
	topic_flush(t);
	if (rows == FETCH_ROWS)
		t->again = true;
}

/*
 * A NOTIFY: '<run> <seq>', or '<run> <seq> <type> <data>' carrying the
 * event. A carried event goes straight to the watchers that are up to
 * date; anyone behind, or a short notice, makes the topic fetch.
 */
static void
notified(const char *payload)
{
	char run[37], type[32];
	struct topic *t;
	long seq;
	int n = 0;

	if (sscanf(payload, "%36s %ld %31s %n", run, &seq, type, &n) < 2 ||
	    (t = topic_find(run)) == NULL)
		return;
	if (n > 0 && seq == t->fetched + 1) {
		if (topic_deliver(t, seq, type, payload + n) > 0)
			topic_fetch(t);
		topic_flush(t);
		topic_release(t);
	} else if (seq > t->fetched) {
		topic_fetch(t);
	}
}

static void
query_done(struct query *q, PGresult *res)
{
	struct conn *c = q->conn;
	struct topic *t = q->topic;

	if (q->kind == Q_FETCH) {
		/* Still marked queued while delivering, so that it cannot be freed. */
		if (res != NULL && t->nsubs > 0)
			fetched(t, res);
		t->queued = false;
		if (res == NULL)
			t->again =
			    true; /* fetched once reconnected, or at the next news */
		else if (t->again && t->nsubs > 0)
			topic_fetch(t);
		topic_release(t);
		free(q);
		return;
	}
	c->query_held = false;
	if (c->closed) {
		bury(c);
		free(q);
		return;
	}
	if (res == NULL) {
		conn_answer(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
		            "the database is unavailable; try again shortly");
	} else if (q->kind == Q_KEY) {
		if (PQntuples(res) != 1 ||
		    !apikey_equal(PQgetvalue(res, 0, 0), q->digest, 64))
			conn_answer(c, 401, "INVALID_API_KEY",
			            "WWW-Authenticate: Bearer realm=\"assay\", "
			            "error=\"invalid_token\"\r\n",
			            "the API key is not valid");
		else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
			conn_answer(c, 401, "INVALID_API_KEY",
			            "WWW-Authenticate: Bearer realm=\"assay\", "
			            "error=\"invalid_token\"\r\n",
			            "the API key has been revoked");
		else if (PQgetisnull(res, 0, 2))
			conn_answer(c, 404, "RUN_NOT_FOUND", NULL, "no such run");
		else
			conn_start(c, PQgetvalue(res, 0, 2), atol(PQgetvalue(res, 0, 3)));
	} else {
		if (PQntuples(res) != 1)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token is not valid for this run");
		else if (strcmp(PQgetvalue(res, 0, 3), "t") == 0)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the API key that made this token has been revoked");
		else if (strcmp(PQgetvalue(res, 0, 0), "t") != 0)
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token has expired; ask for a new one");
		else
			conn_start(c, PQgetvalue(res, 0, 1), atol(PQgetvalue(res, 0, 2)));
	}
	free(q);
}

/* ---- requests ------------------------------------------------------------ */

/* A request parameter as a NUL-terminated copy in buf, or false. */
static bool
param(const struct conn *c, const char *name, char *buf, size_t len)
{
	size_t vlen;
	const char *v = fcgi_param(c->params, c->plen, name, &vlen);

	if (v == NULL || vlen >= len)
		return false;
	memcpy(buf, v, vlen);
	buf[vlen] = '\0';
	return true;
}

/* The value of ?name= in query (no decoding: ids and tokens need none). */
static bool
query_arg(const char *query, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name), v;
	const char *p;

	for (p = query; p != NULL && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, name, n) != 0 || p[n] != '=')
			continue;
		v = strcspn(p + n + 1, "&");
		if (v >= len)
			return false;
		memcpy(buf, p + n + 1, v);
		buf[v] = '\0';
		return true;
	}
	return false;
}

static bool
valid_run_id(const char *s)
{
	size_t i;

	for (i = 0; i < 36; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23)
		        ? s[i] != '-'
		        : !strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
			return false;
	return s[36] == '\0';
}

static void
conn_request(struct conn *c)
{
	char method[16], uri[2048], auth[512], last[32], token[80], id[80], *q, *path,
	    *end;
	const char *key = NULL;
	struct query *qr;
	size_t n;

	if (!param(c, "HTTP_X_REQUEST_ID", id, sizeof id) ||
	    strspn(id,
	           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
	        strlen(id) ||
	    id[0] == '\0' || strlen(id) > 64) {
		if (!util_random_hex(c->request_id, 16))
			snprintf(c->request_id, sizeof c->request_id, "%llx",
			         (unsigned long long)util_now_us());
	} else {
		snprintf(c->request_id, sizeof c->request_id, "%s", id);
	}
	if (!param(c, "REQUEST_METHOD", method, sizeof method))
		snprintf(method, sizeof method, "GET");
	if (!param(c, "REQUEST_URI", uri, sizeof uri)) {
		conn_answer(c, 400, "BAD_REQUEST", NULL,
		            "no REQUEST_URI from the web server");
		return;
	}
	q = strchr(uri, '?');
	if (q != NULL)
		*q++ = '\0';
	path = uri;
	if (strncmp(path, "/api/v1/runs/", 13) == 0)
		path += 13;
	else if (strncmp(path, "/api/runs/", 10) == 0)
		path += 10;
	else
		path = NULL;
	if (path == NULL || strlen(path) != 36 + 7 || strcmp(path + 36, "/events") != 0) {
		conn_answer(c, 404, "NOT_FOUND", NULL,
		            "assay-stream serves only "
		            "/api/v1/runs/{id}/events");
		return;
	}
	path[36] = '\0';
	if (strcmp(method, "GET") != 0) {
		conn_answer(c, 405, "METHOD_NOT_ALLOWED", "Allow: GET\r\n",
		            "events are read with GET");
		return;
	}
	if (!valid_run_id(path)) {
		conn_answer(c, 404, "RUN_NOT_FOUND", NULL, "no such run");
		return;
	}
	snprintf(c->run, sizeof c->run, "%s", path);
	for (n = 0; n < 36; n++)
		c->run[n] =
		    (char)(c->run[n] | (c->run[n] >= 'A' && c->run[n] <= 'F' ? 0x20 : 0));
	c->last = 0;
	if (param(c, "HTTP_LAST_EVENT_ID", last, sizeof last) ||
	    query_arg(q, "last_event_id", last, sizeof last)) {
		c->last = strtol(last, &end, 10);
		if (last[0] == '\0' || *end != '\0' || c->last < 0 ||
		    c->last > 2147483647) {
			conn_answer(c, 400, "INVALID_PARAMETER", NULL,
			            "Last-Event-ID must be an event id this stream sent");
			return;
		}
	}
	qr = xcalloc(1, sizeof *qr);
	qr->conn = c;
	snprintf(qr->p[1], sizeof qr->p[1], "%s", c->run);
	if (query_arg(q, "token", token, sizeof token)) {
		if (strncmp(token, "sse_", 4) != 0 || strlen(token) != 52 ||
		    strspn(token + 4, "0123456789abcdef") != 48) {
			free(qr);
			conn_answer(c, 401, "INVALID_TOKEN", NULL,
			            "the token is not valid");
			return;
		}
		qr->kind = Q_TOKEN;
		apikey_sha256_hex(token, strlen(token), qr->p[0]);
	} else {
		if (param(c, "HTTP_AUTHORIZATION", auth, sizeof auth) &&
		    strncasecmp(auth, "Bearer ", 7) == 0)
			key = auth + 7 + strspn(auth + 7, " ");
		else if (param(c, "HTTP_X_API_KEY", auth, sizeof auth))
			key = auth;
		if (key == NULL || *key == '\0') {
			free(qr);
			conn_answer(
			    c, 401, "UNAUTHENTICATED",
			    "WWW-Authenticate: Bearer realm=\"assay\"\r\n",
			    "an API key (Authorization: Bearer or X-API-Key) or a "
			    "token (?token=) is required");
			return;
		}
		if (!apikey_prefix(key, qr->p[0])) {
			free(qr);
			conn_answer(c, 401, "INVALID_API_KEY",
			            "WWW-Authenticate: Bearer realm=\"assay\", "
			            "error=\"invalid_token\"\r\n",
			            "the API key is not valid");
			return;
		}
		qr->kind = Q_KEY;
		apikey_sha256_hex(key, strlen(key), qr->digest);
	}
	if (st.pg == NULL) {
		free(qr);
		conn_answer(c, 503, "DATABASE_UNAVAILABLE", "Retry-After: 1\r\n",
		            "the database is unavailable; try again shortly");
		return;
	}
	if (st.active >= (size_t)cfg_int(st.cfg, STREAM_MAX_STREAMS)) {
		free(qr);
		st.refused++;
		conn_answer(c, 503, "TOO_MANY_STREAMS", "Retry-After: 5\r\n",
		            "this server holds as many streams as it may; retry shortly");
		return;
	}
	free(c->params); /* everything needed is copied out */
	c->params = NULL;
	c->plen = 0;
	c->state = C_AUTH;
	c->query_held = true;
	query_push(qr);
}

/* Parse what arrived; false if the connection was closed. */
static bool
conn_records(struct conn *c)
{
	struct fcgi_record rec;
	size_t off = 0;
	long n;

	while ((n = fcgi_parse(c->in + off, c->inlen - off, &rec)) > 0) {
		off += (size_t)n;
		switch (rec.type) {
		case FCGI_BEGIN_REQUEST:
			c->req_id = rec.request_id;
			break;
		case FCGI_PARAMS:
			if (c->state != C_PARAMS)
				break;
			if (rec.len == 0) {
				conn_request(c);
				if (c->fd < 0)
					return false;
				break;
			}
			c->params = xrealloc(c->params, c->plen + rec.len);
			memcpy(c->params + c->plen, rec.content, rec.len);
			c->plen += rec.len;
			break;
		case FCGI_ABORT_REQUEST:
			conn_close(c);
			return false;
		default:
			break; /* STDIN (a GET has none), management records */
		}
	}
	if (n < 0 || c->plen > IN_MAX) {
		conn_close(c);
		return false;
	}
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	return true;
}

static void
conn_readable(struct conn *c)
{
	unsigned char buf[8192];
	ssize_t n;

	for (;;) {
		n = read(c->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) { /* the web server hung up: the client left */
			conn_close(c);
			return;
		}
		if (c->inlen + (size_t)n > IN_MAX) {
			conn_close(c);
			return;
		}
		c->in = xrealloc(c->in, c->inlen + (size_t)n);
		memcpy(c->in + c->inlen, buf, (size_t)n);
		c->inlen += (size_t)n;
		if (!conn_records(c))
			return;
	}
	if (c->inlen == 0) {
		free(c->in);
		c->in = NULL;
	}
}

static void
accept_all(void)
{
	struct epoll_event ev;
	struct conn *c;
	int fd;

	while ((fd = accept4(st.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
	       0) {
		c = xcalloc(1, sizeof *c);
		c->fd = fd;
		c->start_us = c->last_write_us = util_now_us();
		ev.events = EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = c;
		if (epoll_ctl(st.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		if (st.nall == st.capall) {
			st.capall = st.capall ? st.capall * 2 : 1024;
			st.all = xrealloc(st.all, st.capall * sizeof *st.all);
		}
		c->slot = st.nall;
		st.all[st.nall++] = c;
	}
	if (errno == EMFILE || errno == ENFILE)
		log_msg(LOG_ERROR, "accept: %s (raise the open-file limit)",
		        strerror(errno));
}

static void
heartbeats(void)
{
	uint64_t now = util_now_us(),
	         idle = (uint64_t)cfg_int(st.cfg, STREAM_HEARTBEAT) * 1000000u;
	size_t i;
	struct conn *c;

	for (i = 0; i < st.nall; i++) {
		c = st.all[i];
		if (c->state == C_LIVE && c->outlen > c->outoff &&
		    now - c->last_write_us >= 2 * idle) {
			log_msg(
			    LOG_WARN,
			    "stream %s: the client took nothing for %ld s; disconnected "
			    "(it can resume with Last-Event-ID)",
			    c->request_id, 2 * cfg_int(st.cfg, STREAM_HEARTBEAT));
			conn_close(c);
			if (i < st.nall && st.all[i] != c)
				i--;
			continue;
		}
		if (c->state == C_LIVE && c->outlen == 0 &&
		    now - c->last_write_us >= idle) {
			conn_write(c, ": heartbeat\n\n", 13);
			conn_flush(c);
			if (i < st.nall && st.all[i] != c)
				i--; /* it was closed and another took its place */
		}
	}
}

/* ---- probe port, setup, loop ------------------------------------------- */

static int
probe(const char *path, FILE *f, const char **ctype, void *arg)
{
	(void)arg;
	if (strcmp(path, "/health") == 0) {
		fprintf(f,
		        "{\"status\":\"%s\",\"version\":\"%s\",\"streams\":%zu,"
		        "\"capacity\":%ld,\"database\":\"%s\"}",
		        st.stopping ? "stopping" : "healthy", PACKAGE_VERSION, st.active,
		        cfg_int(st.cfg, STREAM_MAX_STREAMS),
		        st.pg ? "connected" : "unavailable");
		return 1;
	}
	if (strcmp(path, "/metrics") != 0)
		return 0;
	*ctype = "text/plain; version=0.0.4";
	fprintf(
	    f,
	    "# HELP sse_connections_opened_total Event streams started.\n"
	    "# TYPE sse_connections_opened_total counter\n"
	    "sse_connections_opened_total %lu\n"
	    "# HELP sse_connections_closed_total Event streams ended, for any reason.\n"
	    "# TYPE sse_connections_closed_total counter\n"
	    "sse_connections_closed_total %lu\n"
	    "# HELP sse_active_connections Event streams open now.\n"
	    "# TYPE sse_active_connections gauge\n"
	    "sse_active_connections %zu\n"
	    "# HELP sse_messages_total Events sent to clients.\n"
	    "# TYPE sse_messages_total counter\n"
	    "sse_messages_total %lu\n"
	    "# HELP sse_connections_refused_total Streams refused at max_streams.\n"
	    "# TYPE sse_connections_refused_total counter\n"
	    "sse_connections_refused_total %lu\n"
	    "# HELP assay_build_info The running version.\n"
	    "# TYPE assay_build_info gauge\n"
	    "assay_build_info{version=\"%s\"} 1\n",
	    st.opened, st.closed, st.active, st.messages, st.refused, PACKAGE_VERSION);
	return 1;
}

static int
listen_unix(const char *path, long mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_msg(LOG_ERROR, "socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path); /* stale socket from a previous run */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(path, (mode_t)mode) != 0 || listen(fd, 4096) != 0) {
		log_msg(LOG_ERROR, "cannot listen on %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

static void
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if ((long)rl.rlim_cur < want + 64)
		log_msg(LOG_WARN, "open-file limit %ld is below max_streams %ld",
		        (long)rl.rlim_cur, want);
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: assay-stream [-c FILE] [-t]\n"
	        "       assay-stream --routes | --version\n"
	        "  -c, --config FILE  configuration file (default " API_CONF_FILE ")\n"
	        "  -t, --test         check the configuration, print it, and exit\n");
}

int
main(int argc, char *argv[])
{
	const char *path = API_CONF_FILE;
	bool required = false, test = false;
	struct epoll_event ev, evs[256];
	struct cfg *cfg;
	int i, n, status;
	size_t k;

	log_init("assay-stream");
	for (i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			path = argv[++i];
			required = true;
		} else if (strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--test") == 0) {
			test = true;
		} else if (strcmp(argv[i], "--routes") == 0) {
			printf("GET /api/v1/runs/{id}/events\n");
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("assay-stream %s\n", PACKAGE_VERSION);
			return 0;
		} else {
			usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if ((cfg = cfg_startup(api_cfg_keys, API__MAX, path, required, test, &status)) ==
	    NULL)
		return status;
	st.cfg = cfg;
	log_set_level((enum log_level)cfg_int(cfg, API_LOG_LEVEL));
	raise_nofile(cfg_int(cfg, STREAM_MAX_STREAMS));
	st.sig_fd = util_signalfd();
	st.ep = epoll_create1(EPOLL_CLOEXEC);
	st.listen_fd =
	    listen_unix(cfg_str(cfg, STREAM_LISTEN), cfg_int(cfg, STREAM_SOCKET_MODE));
	st.probe_fd = probe_listen(cfg_str(cfg, STREAM_PROBE_ADDRESS),
	                           cfg_int(cfg, STREAM_PROBE_PORT));
	if (st.sig_fd < 0 || st.ep < 0 || st.listen_fd < 0 || st.probe_fd < 0)
		return 1;
	ev.events = EPOLLIN;
	ev.data.ptr = &st.listen_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, st.listen_fd, &ev);
	ev.data.ptr = &st.probe_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, st.probe_fd, &ev);
	ev.data.ptr = &st.sig_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, st.sig_fd, &ev);
	log_msg(LOG_INFO, "assay-stream %s serving events on %s", PACKAGE_VERSION,
	        cfg_str(cfg, STREAM_LISTEN));
	pg_connect();

	while (!st.stopping) {
		n = epoll_wait(st.ep, evs, 256, 1000);
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &st.listen_fd) {
				accept_all();
			} else if (p == &st.probe_fd) {
				probe_serve(st.probe_fd, probe, NULL);
			} else if (p == &st.sig_fd) {
				struct signalfd_siginfo si;

				while (read(st.sig_fd, &si, sizeof si) == sizeof si)
					if (si.ssi_signo == SIGHUP)
						log_msg(LOG_INFO,
						        "SIGHUP: nothing to reload "
						        "(restart to apply [stream] "
						        "changes)");
					else
						st.stopping = true;
			} else if (p == &st.pg) {
				if (st.pg != NULL)
					pg_readable();
			} else {
				struct conn *c = p;

				if (c->fd < 0)
					continue;
				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP |
				                                    EPOLLHUP | EPOLLERR)))
					conn_readable(c);
			}
		}
		if (st.pg == NULL && util_now_us() >= st.pg_retry_us)
			pg_connect();
		heartbeats();
		bury_all();
	}
	/* Stop: end every stream cleanly; clients resume elsewhere or later. */
	log_msg(LOG_INFO, "stopping: ending %zu streams", st.active);
	close(st.listen_fd);
	unlink(cfg_str(cfg, STREAM_LISTEN));
	for (k = st.nall; k > 0; k--) {
		struct conn *c = st.all[k - 1];

		if (c->state == C_LIVE)
			conn_end(c);
		conn_flush(c);
		if (c->fd >= 0)
			conn_close(c);
	}
	bury_all();
	PQfinish(st.pg);
	cfg_free(cfg);
	return 0;
}
