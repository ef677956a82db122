/*
 * Topics: all of a run's subscribers share one. A NOTIFY on assay_events
 * ('<run> <seq>') makes the topic fetch the rows after the lowest event
 * id any subscriber has, once, and each subscriber takes the rows after
 * its own id: resuming (Last-Event-ID) and joining while events arrive
 * can leave neither gaps nor duplicates. A paused subscriber (its buffer
 * full) is left behind on purpose and fetches the rest once drained.
 * Waiters (wait.c) are listed apart: they take no events, but a notice
 * that the run may have ended (its terminal event, or one too large to
 * carry) has the topic read the run once for all of them. A topic lives
 * while it has subscribers or waiters, a fetch, a read or a delivery;
 * nothing here writes to a socket (conn_flush does) or talks to
 * PostgreSQL but through pg_push.
 */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "xalloc.h"

#define TOPIC_BUCKETS 4096
#define FETCH_ROWS    500 /* the LIMIT of the fetch statement (pg.c) */

static struct topic *topics[TOPIC_BUCKETS];
static struct topic *to_read; /* topics the next Q_RUN reads (linked by rnext) */
static bool read_queued;      /* that Q_RUN is queued */

static const char *const terminal[] = {"completed", "failed", "canceled", NULL};

bool
topic_terminal(const char *status)
{
	size_t i;

	for (i = 0; terminal[i] != NULL; i++)
		if (strcmp(terminal[i], status) == 0)
			return true;
	return false;
}

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

	for (t = topics[topic_bucket(run)]; t != NULL; t = t->hnext)
		if (strcmp(t->run, run) == 0)
			return t;
	return NULL;
}

static void
topic_release(struct topic *t)
{
	struct topic **pp;

	if (t->nsubs > 0 || t->nwaiters > 0 || t->queued || t->delivering || t->to_read ||
	    t->reading)
		return;
	for (pp = &topics[topic_bucket(t->run)]; *pp != t; pp = &(*pp)->hnext)
		;
	*pp = t->hnext;
	free(t);
}

void
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
	pg_push(q);
}

void
topic_catch_up(void)
{
	struct topic *t;
	size_t i;

	for (i = 0; i < TOPIC_BUCKETS; i++)
		for (t = topics[i]; t != NULL; t = t->hnext) {
			if (t->nsubs > 0)
				topic_fetch(t);
			if (t->nwaiters > 0)
				topic_read_run(t);
		}
}

bool
topic_wants(const struct topic *t)
{
	const struct conn *c;

	for (c = t->subs; c != NULL; c = c->next)
		if (!c->paused)
			return true;
	return false;
}

void
topic_prepare(struct query *q)
{
	struct conn *c;
	long low = LONG_MAX;

	for (c = q->topic->subs; c != NULL; c = c->next)
		if (!c->paused)
			low = c->last < low ? c->last : low;
	snprintf(q->p[0], sizeof q->p[0], "%s", q->topic->run);
	snprintf(q->p[1], sizeof q->p[1], "%ld", low == LONG_MAX ? 0 : low);
	q->topic->again = false;
}

/* Put c first in the list *head of its run's topic (made if need be). */
static void
topic_link(struct conn *c, struct conn **head, size_t *n)
{
	c->prev = NULL;
	c->next = *head;
	if (*head)
		(*head)->prev = c;
	*head = c;
	(*n)++;
}

static struct topic *
topic_get(const char *run)
{
	struct topic *t;

	if ((t = topic_find(run)) == NULL) {
		t = xcalloc(1, sizeof *t);
		snprintf(t->run, sizeof t->run, "%s", run);
		t->hnext = topics[topic_bucket(run)];
		topics[topic_bucket(run)] = t;
	}
	return t;
}

void
topic_join(struct conn *c, long event_seq)
{
	struct topic *t = topic_get(c->run);

	c->topic = t;
	topic_link(c, &t->subs, &t->nsubs);
	if (event_seq > c->last)
		topic_fetch(t);
}

void
topic_wait(struct conn *c)
{
	struct topic *t = topic_get(c->run);

	c->topic = t;
	topic_link(c, &t->waiters, &t->nwaiters);
}

void
topic_leave(struct conn *c)
{
	struct topic *t = c->topic;
	struct conn **head;

	if (t == NULL)
		return;
	head = c->waits ? &t->waiters : &t->subs;
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->topic = NULL;
	if (c->waits)
		t->nwaiters--;
	else
		t->nsubs--;
	topic_release(t);
}

void
topic_read_run(struct topic *t)
{
	struct query *q;

	if (t->reading) {
		t->reread = true;
		return;
	}
	if (t->to_read)
		return;
	t->to_read = true;
	t->rnext = to_read;
	to_read = t;
	if (read_queued)
		return; /* it reads t too */
	read_queued = true;
	q = xcalloc(1, sizeof *q);
	q->kind = Q_RUN;
	pg_push(q);
}

bool
topic_prepare_read(struct query *q)
{
	struct topic *t, *next, *batch = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&q->arg, &len);

	read_queued = false;
	for (t = to_read; t != NULL; t = next) {
		next = t->rnext;
		t->to_read = false;
		if (t->nwaiters == 0) { /* they left meanwhile */
			topic_release(t);
			continue;
		}
		t->reading = true;
		t->reread = false;
		t->rnext = batch;
		batch = t;
		fprintf(f, "%c%s", len == 0 ? '{' : ',', t->run);
		fflush(f);
	}
	to_read = NULL;
	fputc('}', f);
	fclose(f);
	q->topic = batch;
	return batch != NULL;
}

void
topic_read(struct query *q, PGresult *res)
{
	struct topic *t, *next;
	struct conn *c, *cnext;
	int i;

	for (t = q->topic; t != NULL; t = t->rnext)
		t->row = -1;
	for (i = 0; res != NULL && i < PQntuples(res); i++)
		if ((t = topic_find(PQgetvalue(res, i, 0))) != NULL && t->reading)
			t->row = i;
	/* Each stays marked reading while answered, so that it cannot be freed. */
	for (t = q->topic; t != NULL; t = next) {
		next = t->rnext;
		for (c = t->waiters; c != NULL; c = cnext) {
			cnext = c->next;
			wait_result(c, res, t->row);
		}
		t->reading = false;
		if (res != NULL && t->reread && t->nwaiters > 0)
			topic_read_run(t);
		topic_release(t);
	}
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
		if (topic_terminal(type)) {
			topic_leave(c);
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
topic_rows(struct topic *t, PGresult *res)
{
	int i, rows = PQntuples(res);

	for (i = 0; i < rows; i++)
		topic_deliver(t, atol(PQgetvalue(res, i, 0)), PQgetvalue(res, i, 1),
		              PQgetvalue(res, i, 2));
	topic_flush(t);
	if (rows == FETCH_ROWS)
		t->again = true;
}

void
topic_fetched(struct query *q, PGresult *res)
{
	struct topic *t = q->topic;

	/* Still marked queued while delivering, so that it cannot be freed. */
	if (res != NULL && t->nsubs > 0)
		topic_rows(t, res);
	t->queued = false;
	if (res == NULL)
		t->again = true; /* fetched once reconnected, or at the next news */
	else if (t->again && t->nsubs > 0)
		topic_fetch(t);
	topic_release(t);
}

/*
 * A NOTIFY: '<run> <seq>', or '<run> <seq> <type> <data>' carrying the
 * event. A carried event goes straight to the watchers that are up to
 * date; anyone behind, or a short notice, makes the topic fetch.
 */
void
topic_notified(const char *payload)
{
	char run[37], type[32];
	struct topic *t;
	long seq;
	int n = 0;

	if (sscanf(payload, "%36s %ld %31s %n", run, &seq, type, &n) < 2 ||
	    (t = topic_find(run)) == NULL)
		return;
	if (t->nwaiters > 0 && (n == 0 || topic_terminal(type)))
		topic_read_run(t);
	if (t->nsubs == 0)
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
