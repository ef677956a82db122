/*
 * A connection from the web server (one stream, its own FastCGI
 * connection, unbuffered) and its output: records queued in its buffer
 * and written at the client's pace. A stream holds at most about
 * buffer_bytes unsent; past that it is paused and fetches the rest once
 * it has taken what it holds, so a backlog of any size can be replayed.
 * A closed connection is freed only after the loop's round, when no code
 * can still hold it. Nothing here reads the request (request.c) or talks
 * to PostgreSQL; a write never blocks.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "httpmsg.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

static struct conn *graves; /* closed connections, freed after the loop's round */

void
conn_open(int fd)
{
	struct epoll_event ev;
	struct conn *c = xcalloc(1, sizeof *c);

	c->fd = fd;
	c->start_us = c->last_write_us = util_now_us();
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = c;
	if (epoll_ctl(st.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		close(fd);
		free(c);
		return;
	}
	if (st.nall == st.capall) {
		st.capall = st.capall ? st.capall * 2 : 1024;
		st.all = xrealloc(st.all, st.capall * sizeof *st.all);
	}
	c->slot = st.nall;
	st.all[st.nall++] = c;
}

static void
conn_watch(struct conn *c, bool write)
{
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (write ? EPOLLOUT : 0),
	                         .data.ptr = c};

	if (write != c->want_write)
		epoll_ctl(st.ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->want_write = write;
}

void
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

void
conn_write(struct conn *c, const char *data, size_t len)
{
	fcgi_append(&c->out, &c->outlen, &c->outcap, FCGI_STDOUT, c->req_id, data, len);
}

void
conn_end(struct conn *c)
{
	fcgi_append_end(&c->out, &c->outlen, &c->outcap, c->req_id);
	c->state = C_DONE;
}

void
conn_bury(struct conn *c)
{
	c->grave = graves;
	graves = c;
}

void
conn_bury_all(void)
{
	struct conn *c;

	while ((c = graves) != NULL) {
		graves = c->grave;
		free(c);
	}
}

void
conn_close(struct conn *c)
{
	char members[400];

	if (c->fd < 0)
		return;
	topic_leave(c);
	epoll_ctl(st.ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->state == C_WAIT)
		st.waiting--;
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
		conn_bury(c);
}

const char *
conn_cors(const struct conn *c)
{
	static char h[512];

	if (c->origin[0] == '\0')
		return "";
	snprintf(h, sizeof h, "Access-Control-Allow-Origin: %s\r\n%s", c->origin,
	         HTTPMSG_CORS_EXPOSE);
	return h;
}

void
conn_options(struct conn *c, const char *allow)
{
	char *msg =
	    xasprintf("Status: 204 No Content\r\nAllow: %s\r\nX-Request-ID: %s\r\n"
	              "%s%s%s%s%s\r\n",
	              allow, c->request_id, conn_cors(c),
	              c->origin[0] ? "Access-Control-Allow-Methods: " : "",
	              c->origin[0] ? allow : "", c->origin[0] ? "\r\n" : "",
	              c->origin[0] ? HTTPMSG_CORS_PREFLIGHT : "");

	conn_write(c, msg, strlen(msg));
	free(msg);
	conn_end(c);
	conn_flush(c);
}

void
conn_answer(struct conn *c, int status, const char *code, const char *headers,
            const char *detail)
{
	conn_answer_with(c, status, code, headers, NULL, detail);
}

void
conn_answer_with(struct conn *c, int status, const char *code, const char *headers,
                 struct json_object *extra, const char *detail)
{
	char *body, *msg;

	body = httpmsg_problem(status, code, detail, c->request_id, extra);
	msg = xasprintf("Status: %d\r\nContent-Type: application/problem+json\r\n"
	                "Content-Length: %zu\r\nX-Request-ID: %s\r\n"
	                "Cache-Control: no-store\r\n%s%s\r\n%s",
	                status, strlen(body), c->request_id, conn_cors(c),
	                headers ? headers : "", body);
	conn_write(c, msg, strlen(msg));
	conn_end(c);
	free(body);
	free(msg);
	conn_flush(c);
}

bool
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

void
conn_start(struct conn *c, const char *status, long event_seq)
{
	char *head;

	if (topic_terminal(status) && c->last >= event_seq) {
		/* It has every event of a finished run: 204 tells an EventSource
		 * to stop reconnecting. */
		head = xasprintf("Status: 204 No Content\r\nX-Request-ID: %s\r\n"
		                 "Cache-Control: no-store\r\n%s\r\n",
		                 c->request_id, conn_cors(c));
		conn_write(c, head, strlen(head));
		free(head);
		conn_end(c);
		conn_flush(c);
		return;
	}
	head = xasprintf("Status: 200 OK\r\nContent-Type: text/event-stream\r\n"
	                 "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
	                 "X-Request-ID: %s\r\n%s\r\nretry: %ld\n\n",
	                 c->request_id, conn_cors(c), cfg_int(st.cfg, STREAM_RETRY_MS));
	conn_write(c, head, strlen(head));
	free(head);
	c->streaming = true;
	st.opened++;
	st.active++;
	c->state = C_LIVE;
	topic_join(c, event_seq);
	conn_flush(c);
}
