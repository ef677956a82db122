/*
 * The executor's side of a worker's bridge (the protocol is in extern.h):
 * jobs and replies written without blocking; the JSON lines the worker
 * sends (log, progress, emit, call, result, error) read without blocking,
 * checked (what PostgreSQL could not store is refused, never rewritten),
 * within the run's output and event budgets, progress coalesced; calls
 * answered; and why an attempt failed, from how the worker ended. Events
 * go to jobs.c's batch, a result longer than result_inline_max to
 * results.c as it is read (the only wait: its pieces' inserts); never
 * holds more of a line than its budget, never trusts what the worker says.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "extern.h"
#include "jsontext.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

/* Record one of the script's events, within the run's budget of
 * event_max_count: past it the run fails as "event limit" and its child
 * is killed. */
static void
bridge_event(struct ex *ex, struct job *j, const char *type, const char *data)
{
	if (j->error != NULL && strncmp(j->error, "event limit", 11) == 0)
		return;
	if ((long)++j->events > ex_int(ex, EX_EVENT_MAX)) {
		free(j->error);
		j->error = xasprintf("event limit: the script wrote more than %ld events",
		                     ex_int(ex, EX_EVENT_MAX));
		ex_kill(j, SIGKILL);
		return;
	}
	jobs_event(j, type, data);
}

/* Write the job's coalesced progress event, if one waits. */
void
bridge_progress(struct ex *ex, struct job *j)
{
	char *data = j->progress;

	if (data == NULL)
		return;
	j->progress = NULL;
	j->progress_last_us = util_now_us();
	bridge_event(ex, j, "progress", data);
	free(data);
}

/* One JSON line from a worker running j; true when it was j's result. */
static bool
bridge_line(struct ex *ex, struct job *j, const char *line)
{
	bool done = false;
	char kind[16];

	struct json_object *o, *t, *v;
	const char *type, *why;
	char where[256];

	/* Refused, not rewritten: json-c would cut a member name at a NUL,
	 * PostgreSQL would refuse the text and the outcome would be lost. */
	if (!jsontext_storable(line, strlen(line), where, sizeof where, &why)) {
		free(j->error);
		j->error =
		    strncmp(where, "/value", 6) == 0
		        ? xasprintf("script error: the result cannot be stored: %s %s",
		                    where[6] != '\0' ? where + 6 : "the value", why)
		        : xasprintf("script error: output cannot be stored: %s %s", where,
		                    why);
		ex_kill(j, SIGKILL);
		return false;
	}
	o = json_tokener_parse(line);
	if (o == NULL || !json_object_object_get_ex(o, "type", &t) ||
	    !json_object_is_type(t, json_type_string) ||
	    strlen(json_object_get_string(t)) >= sizeof kind) {
		free(j->error);
		j->error = xstrdup("script error: malformed bridge output");
		json_object_put(o);
		ex_kill(j, SIGKILL);
		return false;
	}
	/* A copy: the member goes before the event is written. */
	type = strcpy(kind, json_object_get_string(t));
	if (j->check && strcmp(type, "result") != 0 && strcmp(type, "error") != 0) {
		/* Nothing of a checked script runs: only the runtime answers. */
		free(j->error);
		j->error = xasprintf("sandbox breach: a %s line during a check", type);
		ex_kill(j, SIGKILL);
	} else if (strcmp(type, "call") == 0) {
		calls_handle(ex, j, o);
	} else if (strcmp(type, "result") == 0 &&
	           (!json_object_object_get_ex(o, "nonce", &v) ||
	            !json_object_is_type(v, json_type_string) ||
	            strcmp(json_object_get_string(v), j->nonce) != 0)) {
		/* Only the runtime knows the job's nonce: a result without it was
		 * written by the script itself, which must not end its job early
		 * and stay on to see the next one. */
		free(j->error);
		j->error = xstrdup("sandbox breach: a result line the runtime did not "
		                   "write");
		ex_kill(j, SIGKILL);
	} else if (strcmp(type, "result") == 0 &&
	           json_object_object_get_ex(o, "value", &v)) {
		/* At most result_inline_max (bridge_whole_line). */
		done = j->error == NULL;
		free(j->result);
		j->result =
		    xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
	} else if (strcmp(type, "error") == 0) {
		const char *msg = json_object_object_get_ex(o, "message", &v) &&
		                          json_object_is_type(v, json_type_string)
		                      ? json_object_get_string(v)
		                      : "unknown";

		free(j->error);
		j->error = strcmp(msg, "memory limit") == 0
		               ? xstrdup(msg)
		               : xasprintf("script error: %s", msg);
		/* Not "error": EventSource clients reserve that name. */
		if (json_object_object_get_ex(o, "stack", &v))
			jobs_event(
			    j, "script_error",
			    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	} else if (strcmp(type, "progress") == 0) {
		/* Coalesced: the latest waits until progress_interval_ms has passed
		 * since the last one written (ex_tick), or for the next event. */
		json_object_object_del(o, "type");
		free(j->progress);
		j->progress =
		    xstrdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		j->progress_due_us =
		    j->progress_last_us +
		    (uint64_t)ex_int(ex, EX_PROGRESS_INTERVAL_MS) * 1000u;
		if (util_now_us() >= j->progress_due_us)
			bridge_progress(ex, j);
	} else if (strcmp(type, "log") == 0 || strcmp(type, "emit") == 0) {
		json_object_object_del(o, "type");
		bridge_progress(ex, j);
		bridge_event(ex, j, type,
		             json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(o);
	return done;
}

/* The bytes of a result line around its value: the head, and the tail
 * ,"nonce":"<16 hex digits>"} (results.c checks it). */
#define RESULT_HEAD_LEN (sizeof RESULT_LINE_HEAD - 1)
#define RESULT_TAIL_LEN 28

static bool
bridge_result_line(const char *line, size_t len)
{
	return len >= RESULT_HEAD_LEN &&
	       memcmp(line, RESULT_LINE_HEAD, RESULT_HEAD_LEN) == 0;
}

/* Is the value of the result line (len bytes so far) longer than
 * result_inline_max, so that it goes to results.c? */
static bool
bridge_result_large(struct ex *ex, const char *line, size_t len)
{
	return bridge_result_line(line, len) &&
	       len > RESULT_HEAD_LEN + RESULT_TAIL_LEN +
	                 (size_t)ex_int(ex, EX_RESULT_INLINE_MAX);
}

/* The worker wrote past its result: a breach, whatever it says. */
static void
bridge_past_result(struct worker *w)
{
	if (w->doomed)
		return;
	log_msg(LOG_WARN, "worker %u wrote past a result; stopped", w->child);
	w->doomed = true;
	sbx_kill(w->child, SIGKILL);
}

/* More of a large result's line (n bytes), up to its end if they hold it:
 * then the job, if its result is stored, else NULL. */
static struct job *
bridge_stream(struct ex *ex, struct worker *w, const char *buf, size_t n)
{
	struct job *j = w->job;
	const char *nl = memchr(buf, '\n', n);

	results_feed(ex, j, buf, nl != NULL ? (size_t)(nl - buf) : n);
	if (nl == NULL || !results_finish(ex, j))
		return NULL; /* more to come, or failed: its worker is killed */
	w->job = NULL;
	if (nl + 1 < buf + n)
		bridge_past_result(w);
	return j;
}

/* A whole line from the worker running j; true when it was j's result. A
 * large result goes to results.c, the rest is output, within its budget. */
static bool
bridge_whole_line(struct ex *ex, struct job *j, char *line, size_t len)
{
	if (bridge_result_large(ex, line, len)) {
		if (!results_start(ex, j))
			return false;
		results_feed(ex, j, line + RESULT_HEAD_LEN, len - RESULT_HEAD_LEN);
		return results_finish(ex, j);
	}
	if (!bridge_result_line(line, len)) {
		j->output += len + 1;
		if ((long)j->output > ex_int(ex, EX_OUTPUT_MAX)) {
			j->too_large = true;
			ex_kill(j, SIGKILL);
			return false;
		}
	}
	return bridge_line(ex, j, line);
}

struct job *
bridge_read(struct ex *ex, struct worker *w)
{
	char buf[65536], *nl, *start;
	ssize_t n = read(w->fd, buf, sizeof buf);
	struct job *j = w->job, *done = NULL;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return NULL;
	if (n <= 0) {
		close(w->fd);
		w->fd = -1;
		return NULL;
	}
	if (j == NULL || j->too_large) {
		if (j == NULL && !w->doomed) {
			log_msg(LOG_WARN, "worker %u wrote while it ran no job; stopped",
			        w->child);
			w->doomed = true;
			sbx_kill(w->child, SIGKILL);
		}
		return NULL;
	}
	if (j->store != NULL) /* the rest of a large result's line */
		return bridge_stream(ex, w, buf, (size_t)n);
	w->in = xrealloc(w->in, w->inlen + (size_t)n + 1);
	memcpy(w->in + w->inlen, buf, (size_t)n);
	w->inlen += (size_t)n;
	w->in[w->inlen] = '\0';
	for (start = w->in;
	     (nl = memchr(start, '\n', w->inlen - (size_t)(start - w->in))) != NULL;
	     start = nl + 1) {
		*nl = '\0';
		if (done != NULL) /* anything after a result is a breach */
			break;
		if (w->doomed || j->too_large) /* killed: what it says changes nothing */
			continue;
		if (bridge_whole_line(ex, j, start, (size_t)(nl - start))) {
			done = j;
			w->job = NULL;
		}
	}
	w->inlen -= (size_t)(start - w->in);
	memmove(w->in, start, w->inlen + 1);
	if (done != NULL && w->inlen > 0)
		bridge_past_result(w);
	else if (done == NULL && !w->doomed && bridge_result_large(ex, w->in, w->inlen)) {
		/* A large result has begun: from now on it is read as it comes. */
		if (results_start(ex, j))
			results_feed(ex, j, w->in + RESULT_HEAD_LEN,
			             w->inlen - RESULT_HEAD_LEN);
		w->inlen = 0;
	} else if (done == NULL && !bridge_result_line(w->in, w->inlen) &&
	           (long)(j->output + w->inlen) > ex_int(ex, EX_OUTPUT_MAX)) {
		j->too_large = true;
		ex_kill(j, SIGKILL);
	}
	return done;
}

void
bridge_write(struct worker *w)
{
	ssize_t n;

	while (w->fd >= 0 && w->outoff < w->outlen) {
		n = send(w->fd, w->out + w->outoff, w->outlen - w->outoff, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* the rest when poll says it can be written */
		if (n < 0) {    /* the worker is gone; its end is reported apart */
			w->outoff = w->outlen;
			break;
		}
		w->outoff += (size_t)n;
	}
	w->outoff = w->outlen = 0;
}

void
bridge_send(struct worker *w, const char *text, size_t len)
{
	if (w->outoff > 0 && w->outoff == w->outlen)
		w->outoff = w->outlen = 0;
	w->out = xrealloc(w->out, w->outlen + len);
	memcpy(w->out + w->outlen, text, len);
	w->outlen += len;
	bridge_write(w);
}

/* Why the attempt failed, from how the child ended, if nothing better is known. */
void
bridge_outcome(struct job *j, int status)
{
	char *why = NULL;

	if (status < 0)
		why = xasprintf("executor fault: cannot fork the sandboxed child: %s",
		                strerror(-status));
	else if (j->timed_out)
		why = xasprintf("timeout: no result after %ld ms", j->spec.timeout_ms);
	else if (j->too_large)
		why = xstrdup("output too large");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
		why = xstrdup("timeout: CPU time limit reached");
	else if (j->spec.runtime == RT_NODE && WIFSIGNALED(status) && j->result == NULL &&
	         j->stored == 0 &&
	         (WTERMSIG(status) == SIGABRT || WTERMSIG(status) == SIGTRAP))
		why = xstrdup("memory limit: node stopped when its heap or data "
		              "limit was reached");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		why = xstrdup("killed by signal 31: the script broke the sandbox");
	else if (WIFSIGNALED(status) && j->error == NULL)
		why = xasprintf("killed by signal %d", WTERMSIG(status));
	else if (j->error == NULL && j->result == NULL && j->stored == 0)
		why = xasprintf("exited with status %d without a result",
		                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	if (why != NULL) {
		free(j->error);
		j->error = why;
	}
}
