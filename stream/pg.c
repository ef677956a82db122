/*
 * The one PostgreSQL connection: asynchronous libpq, holding the LISTEN
 * on assay_events and running queued queries one at a time through
 * prepared statements, one per kind. Each query's answer goes to its kind's handler
 * (request.c for keys and tokens, topic.c for events and runs, wait.c
 * for waits), then the query is freed. An answer is handled before the
 * notices that came with it: they are of changes its snapshot did not
 * see, and must reach the stream or waiter it admitted. Only connecting blocks
 * (connect_timeout 2 s, at most once a second while PostgreSQL is away); a lost
 * connection fails the running query and leaves the queue for the next one. Nothing here
 * answers a client or holds a result past its handler.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "util.h"

/* Each kind's statement, prepared on each new connection under its
 * number, and what is done with its answer. */
static const struct {
	const char *sql;
	void (*done)(struct query *, PGresult *);
	int nparams;
} kinds[] = {
    [Q_KEY] = {"SELECT encode(k.hash, 'hex'), k.revoked_at IS NOT NULL, j.status,"
               " j.event_seq FROM api_keys k"
               " JOIN projects p ON p.tenant_id = k.tenant_id AND p.name = 'default'"
               " LEFT JOIN analysis_jobs j ON j.id = $2::uuid AND j.project_id = p.id"
               " WHERE k.prefix = $1",
               req_checked, 2},
    [Q_TOKEN] = {"SELECT t.expires_at > now(), j.status, j.event_seq,"
                 " k.revoked_at IS NOT NULL"
                 " FROM stream_tokens t JOIN analysis_jobs j ON j.id = t.job_id"
                 " JOIN api_keys k ON k.id = t.api_key_id"
                 " WHERE t.token_hash = decode($1, 'hex') AND t.job_id = $2::uuid",
                 req_checked, 2},
    [Q_FETCH] = {"SELECT seq, type, data::text FROM job_events"
                 " WHERE job_id = $1::uuid AND seq > $2::int ORDER BY seq LIMIT 500",
                 topic_fetched, 2},
    /* The key, its tenant's tier, and the run as GET /api/v1/runs/{id}
     * renders it, with its age in seconds (for the tier's history). */
    [Q_WAIT] = {"SELECT encode(k.hash, 'hex'), k.revoked_at IS NOT NULL, t.tier,"
                " j.status, assay_run_json(j), extract(epoch FROM now() - j.created_at)"
                " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
                " JOIN projects p ON p.tenant_id = k.tenant_id AND p.name = 'default'"
                " LEFT JOIN analysis_jobs j ON j.id = $2::uuid AND j.project_id = p.id"
                " WHERE k.prefix = $1",
                wait_checked, 2},
    /* The runs of every topic whose waiters asked ($1 an array of ids). */
    [Q_RUN] = {"SELECT j.id, assay_run_json(j), j.status FROM analysis_jobs j"
               " WHERE j.id = ANY($1::uuid[])",
               topic_read, 1},
};

static struct {
	PGconn *conn;
	bool busy, flushing;
	uint64_t retry_us;
	struct query *head, *tail, *running;
} pg;

static void pg_pump(void);

static void
pg_done(struct query *q, PGresult *res)
{
	kinds[q->kind].done(q, res);
	free(q->arg);
	free(q);
}

void
pg_push(struct query *q)
{
	q->next = NULL;
	if (pg.tail)
		pg.tail->next = q;
	else
		pg.head = q;
	pg.tail = q;
	pg_pump();
}

bool
pg_connected(void)
{
	return pg.conn != NULL;
}

bool
pg_owns(const void *ptr)
{
	return ptr == &pg;
}

static void
pg_watch(uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = &pg};

	if (epoll_ctl(st.ep, EPOLL_CTL_MOD, PQsocket(pg.conn), &ev) != 0)
		epoll_ctl(st.ep, EPOLL_CTL_ADD, PQsocket(pg.conn), &ev);
}

void
pg_connect(void)
{
	static const char *const kw[] = {"connect_timeout", "application_name", "dbname",
	                                 NULL};
	const char *val[] = {"2", "assay-stream", cfg_str(st.cfg, API_DATABASE_URL),
	                     NULL};
	PGresult *res;
	size_t i;

	pg.conn = PQconnectdbParams(kw, val, 1);
	res = PQstatus(pg.conn) == CONNECTION_OK ? PQexec(pg.conn, "LISTEN assay_events")
	                                         : NULL;
	for (i = 0; i < sizeof kinds / sizeof kinds[0] && res != NULL &&
	            PQresultStatus(res) == PGRES_COMMAND_OK;
	     i++) {
		char name[8];

		PQclear(res);
		snprintf(name, sizeof name, "s%zu", i);
		res = PQprepare(pg.conn, name, kinds[i].sql, kinds[i].nparams, NULL);
	}
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		if (pg.retry_us == 0)
			log_msg(LOG_WARN,
			        "PostgreSQL unreachable: %s; retrying every second",
			        strtok(PQerrorMessage(pg.conn), "\n"));
		PQclear(res);
		PQfinish(pg.conn);
		pg.conn = NULL;
		pg.retry_us = util_now_us() + 1000000u;
		return;
	}
	PQclear(res);
	PQsetnonblocking(pg.conn, 1);
	log_msg(LOG_INFO, "listening for run events on PostgreSQL");
	pg.retry_us = 0;
	pg_watch(EPOLLIN);
	/* Whatever happened while disconnected: every topic catches up. */
	topic_catch_up();
	pg_pump();
}

void
pg_retry(void)
{
	if (pg.conn == NULL && util_now_us() >= pg.retry_us)
		pg_connect();
}

static void
pg_lost(void)
{
	struct query *q = pg.running;

	log_msg(LOG_WARN, "PostgreSQL connection lost: %s",
	        pg.conn ? strtok(PQerrorMessage(pg.conn), "\n") : "");
	if (pg.conn != NULL) {
		epoll_ctl(st.ep, EPOLL_CTL_DEL, PQsocket(pg.conn), NULL);
		PQfinish(pg.conn);
	}
	pg.conn = NULL;
	pg.busy = pg.flushing = false;
	pg.running = NULL;
	pg.retry_us = util_now_us();
	if (q != NULL)
		pg_done(q, NULL); /* answered 503, or fetched again after reconnecting */
}

static void
pg_send(struct query *q)
{
	const char *params[2] = {q->arg ? q->arg : q->p[0], q->p[1]};
	char name[8];

	if (q->kind == Q_FETCH)
		topic_prepare(q);
	snprintf(name, sizeof name, "s%d", (int)q->kind);
	if (!PQsendQueryPrepared(pg.conn, name, kinds[q->kind].nparams, params, NULL,
	                         NULL, 0)) {
		pg.running = q;
		pg_lost();
		return;
	}
	pg.running = q;
	pg.busy = true;
	pg.flushing = PQflush(pg.conn) == 1;
	pg_watch(pg.flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static void
pg_pump(void)
{
	struct query *q;

	while (pg.conn != NULL && !pg.busy && pg.head != NULL) {
		q = pg.head;
		pg.head = q->next;
		if (pg.head == NULL)
			pg.tail = NULL;
		if ((q->conn != NULL && q->conn->closed) ||
		    (q->kind == Q_RUN && !topic_prepare_read(q))) {
			pg_done(q, NULL); /* nobody to answer */
			continue;
		}
		if (q->kind == Q_FETCH && !topic_wants(q->topic)) {
			pg_done(q, NULL); /* fetched again when one drains */
			continue;
		}
		pg_send(q);
	}
}

/* The running query's answer is in: hand it over and send the next.
 * False when the connection was lost. */
static bool
pg_answer(void)
{
	PGresult *res, *first = NULL;
	struct query *q;

	while ((res = PQgetResult(pg.conn)) != NULL) {
		if (first == NULL)
			first = res;
		else
			PQclear(res);
	}
	pg.busy = false;
	if (first != NULL && PQresultStatus(first) != PGRES_TUPLES_OK) {
		log_msg(LOG_ERROR, "query failed: %s",
		        strtok(PQerrorMessage(pg.conn), "\n"));
		PQclear(first);
		first = NULL;
		if (PQstatus(pg.conn) != CONNECTION_OK) {
			pg_lost();
			return false;
		}
	}
	q = pg.running;
	pg.running = NULL;
	pg_done(q, first);
	PQclear(first);
	pg_pump();
	return pg.conn != NULL;
}

void
pg_readable(void)
{
	PGnotify *n;

	if (pg.conn == NULL)
		return;
	if (pg.flushing) {
		pg.flushing = PQflush(pg.conn) == 1;
		pg_watch(pg.flushing ? EPOLLIN | EPOLLOUT : EPOLLIN);
	}
	if (!PQconsumeInput(pg.conn)) {
		pg_lost();
		return;
	}
	if (pg.busy && !PQisBusy(pg.conn) && !pg_answer())
		return;
	while ((n = PQnotifies(pg.conn)) != NULL) {
		topic_notified(n->extra);
		PQfreemem(n);
	}
}

void
pg_close(void)
{
	PQfinish(pg.conn);
}
