/*
 * The bridge from a sandboxed child: the JSON lines it writes on its pipe
 * (log, progress, emit, result, error), read without blocking, checked
 * (what PostgreSQL could not store is refused, never rewritten), within
 * the run's output and event budgets, progress coalesced; and why an
 * attempt failed, from how the child ended. Writes events through jobs.c;
 * never blocks the executor's loop, never trusts what the child says.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
		sbx_kill(j->child, SIGKILL);
		return;
	}
	jobs_event(ex->db, j, type, data);
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

/* One JSON line from a child. */
static void
bridge_line(struct ex *ex, struct job *j, const char *line)
{
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
		return;
	}
	o = json_tokener_parse(line);
	if (o == NULL || !json_object_object_get_ex(o, "type", &t)) {
		free(j->error);
		j->error = xstrdup("script error: malformed bridge output");
		json_object_put(o);
		return;
	}
	type = json_object_get_string(t);
	if (strcmp(type, "result") == 0 && json_object_object_get_ex(o, "value", &v)) {
		free(j->result);
		j->result =
		    xstrdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		if ((long)strlen(j->result) > ex_int(ex, EX_RESULT_MAX)) {
			j->error = xasprintf(
			    "result too large: %zu bytes; the inline limit is %ld",
			    strlen(j->result), ex_int(ex, EX_RESULT_MAX));
		}
	} else if (strcmp(type, "error") == 0) {
		const char *msg = json_object_object_get_ex(o, "message", &v)
		                      ? json_object_get_string(v)
		                      : "unknown";

		free(j->error);
		j->error = strcmp(msg, "memory limit") == 0
		               ? xstrdup(msg)
		               : xasprintf("script error: %s", msg);
		/* Not "error": EventSource clients reserve that name. */
		if (json_object_object_get_ex(o, "stack", &v))
			jobs_event(
			    ex->db, j, "script_error",
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
}

void
bridge_read(struct ex *ex, struct job *j)
{
	char buf[65536], *nl, *start;
	ssize_t n = read(j->fd, buf, sizeof buf);

	if (n < 0 && errno == EINTR)
		return;
	if (n <= 0) {
		close(j->fd);
		j->fd = -1;
		return;
	}
	j->output += (size_t)n;
	if ((long)j->output > ex_int(ex, EX_OUTPUT_MAX)) {
		if (!j->too_large)
			sbx_kill(j->child, SIGKILL);
		j->too_large = true;
		return;
	}
	j->line = xrealloc(j->line, j->linelen + (size_t)n + 1);
	memcpy(j->line + j->linelen, buf, (size_t)n);
	j->linelen += (size_t)n;
	j->line[j->linelen] = '\0';
	for (start = j->line; (nl = strchr(start, '\n')) != NULL; start = nl + 1) {
		*nl = '\0';
		bridge_line(ex, j, start);
	}
	j->linelen -= (size_t)(start - j->line);
	memmove(j->line, start, j->linelen + 1);
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
		why = xasprintf("timeout: no result after %ld ms", j->timeout_ms);
	else if (j->too_large)
		why = xstrdup("output too large");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU)
		why = xstrdup("timeout: CPU time limit reached");
	else if (j->runtime == RT_NODE && WIFSIGNALED(status) && j->result == NULL &&
	         (WTERMSIG(status) == SIGABRT || WTERMSIG(status) == SIGTRAP))
		why = xstrdup("memory limit: node stopped when its heap or data "
		              "limit was reached");
	else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		why = xstrdup("killed by signal 31: the script broke the sandbox");
	else if (WIFSIGNALED(status) && j->error == NULL)
		why = xasprintf("killed by signal %d", WTERMSIG(status));
	else if (j->error == NULL && j->result == NULL)
		why = xasprintf("exited with status %d without a result",
		                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	if (why != NULL) {
		free(j->error);
		j->error = why;
	}
}
