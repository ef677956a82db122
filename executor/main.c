/*
 * assay-executor: claims runs and runs them, one sandboxed child each, in
 * a single poll(2) loop over: a signalfd (SIGTERM, SIGINT, SIGHUP), the
 * PostgreSQL connection (LISTEN assay_jobs, assay_cancel), the socket to
 * assay-sandbox (which forks the children and says when they end), the
 * bridge pipes of running children, and the /health, /metrics HTTP socket.
 *   SIGTERM  stop claiming, let running jobs finish for the grace period,
 *            then kill and requeue the rest without charging an attempt
 *   SIGHUP   reload the configuration (a broken one is logged and ignored)
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "extern.h"
#include "jsontext.h"
#include "log.h"
#include "mc.h"
#include "probe.h"
#include "util.h"
#include "xalloc.h"

#define MAX_JOBS 1024

#define DURATION_BUCKETS 14
enum { REASON__MAX = 8 };

struct ex {
	struct cfg *cfg;
	const char *cfg_path;
	bool cfg_required;
	char sandbox[4096]; /* the assay-sandbox program */
	const char *node;   /* node_path, or NULL: no runtime "node" */
	unsigned children;  /* numbers the children: the last one used */
	struct db *db;
	struct mc *mc;     /* the API's cache, told of every change of a run */
	PGconn *listening; /* the connection our LISTENs were issued on */
	char worker[96];
	struct job *jobs[MAX_JOBS];
	size_t njobs;
	int sig_fd, http_fd;
	bool stopping, wake;
	uint64_t stop_at_us, next_poll_us, next_beat_us;
	unsigned long claimed, completed, failed, retried, canceled, recovered, processed;
	unsigned long reasons[REASON__MAX];           /* failed attempts by why */
	unsigned long duration[DURATION_BUCKETS + 1]; /* attempts by duration bucket */
	double duration_sum;
};

/* Failed attempts, by the start of their error_message. */
static const struct {
	const char *prefix, *reason;
} failure_reasons[REASON__MAX] = {
    {"timeout", "timeout"},
    {"memory limit", "memory"},
    {"output too large", "output"},
    {"event limit", "events"},
    {"killed by signal 31", "sandbox"},
    {"killed by signal", "signal"},
    {"script error", "script_error"},
    {"", "other"},
};

static const double duration_bounds[DURATION_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static long
ex_int(const struct ex *ex, enum ex_key k)
{
	return cfg_int(ex->cfg, k);
}

/* (Re)issue LISTEN whenever the database connection is new. */
static void
ex_listen(struct ex *ex)
{
	PGconn *conn = db_conn(ex->db);
	PGresult *res;

	if (conn == NULL || conn == ex->listening)
		return;
	res = PQexec(conn, "LISTEN assay_jobs; LISTEN assay_cancel");
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		ex->listening = conn;
	PQclear(res);
	ex->wake = true; /* work may have arrived while we were not listening */
}

static struct job *
ex_find(struct ex *ex, const char *id)
{
	size_t i;

	for (i = 0; i < ex->njobs; i++)
		if (strcmp(ex->jobs[i]->id, id) == 0)
			return ex->jobs[i];
	return NULL;
}

static void
ex_cancel(struct ex *ex, struct job *j)
{
	if (j->kill_at_us != 0 || j->ended)
		return;
	j->canceled = true;
	sbx_kill(j->child, SIGTERM);
	j->kill_at_us = util_now_us() + (uint64_t)ex_int(ex, EX_CANCEL_GRACE_MS) * 1000u;
	log_msg(LOG_INFO, "run %s: cancel requested; stopping its process", j->id);
}

static void
ex_notifications(struct ex *ex)
{
	PGconn *conn = ex->listening;
	PGnotify *n;
	struct job *j;

	if (conn == NULL)
		return;
	PQconsumeInput(conn);
	while ((n = PQnotifies(conn)) != NULL) {
		if (strcmp(n->relname, "assay_jobs") == 0)
			ex->wake = true;
		else if (strcmp(n->relname, "assay_cancel") == 0 &&
		         (j = ex_find(ex, n->extra)))
			ex_cancel(ex, j);
		PQfreemem(n);
	}
}

static void
ex_start(struct ex *ex, struct job *j)
{
	struct job_spec spec = {j->runtime, j->script, j->input, j->timeout_ms,
	                        j->memory_mb};

	j->started_us = util_now_us();
	j->ended = true;
	if (sbx_refusal(j->runtime) != NULL) {
		j->error = xstrdup(sbx_refusal(j->runtime));
		j->attempts = j->max_attempts; /* retrying here cannot help */
		return;
	}
	j->deadline_us = j->started_us + (uint64_t)j->timeout_ms * 1000u;
	if (++ex->children == 0) /* 0 means "no child" */
		ex->children = 1;
	j->child = ex->children;
	j->fd = sbx_run(j->child, &spec);
	if (j->fd < 0) {
		j->error = xstrdup("executor fault: cannot start the sandbox");
		return;
	}
	j->ended = false;
	log_msg(LOG_DEBUG, "run %s: attempt %d as child %u", j->id, j->attempts,
	        j->child);
}

static void
ex_claim(struct ex *ex)
{
	long room = ex_int(ex, EX_MAX_CONCURRENT) - (long)ex->njobs;
	struct job *got[MAX_JOBS];
	int n, i;

	ex->wake = false;
	if (ex->stopping || room <= 0)
		return;
	if (sbx_open(ex->sandbox, ex->node, cfg_str(ex->cfg, EX_SANDBOX_USER)) < 0)
		return; /* no job is claimed that could not run; logged */
	if (room > MAX_JOBS - (long)ex->njobs)
		room = MAX_JOBS - (long)ex->njobs;
	n = jobs_claim(ex->db, ex->mc, ex->worker, (int)room,
	               (int)ex_int(ex, EX_LEASE_SECONDS), got);
	for (i = 0; i < n; i++) {
		ex->jobs[ex->njobs++] = got[i];
		ex->claimed++;
		ex_start(ex, got[i]);
	}
	if (n == room)
		ex->wake = true; /* there may be more */
}

/* Record one of the script's events, within the run's budget of
 * event_max_count: past it the run fails as "event limit" and its child
 * is killed. */
static void
ex_event(struct ex *ex, struct job *j, const char *type, const char *data)
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
static void
ex_progress(struct ex *ex, struct job *j)
{
	char *data = j->progress;

	if (data == NULL)
		return;
	j->progress = NULL;
	j->progress_last_us = util_now_us();
	ex_event(ex, j, "progress", data);
	free(data);
}

/* One JSON line from a child. */
static void
ex_line(struct ex *ex, struct job *j, const char *line)
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
			ex_progress(ex, j);
	} else if (strcmp(type, "log") == 0 || strcmp(type, "emit") == 0) {
		json_object_object_del(o, "type");
		ex_progress(ex, j);
		ex_event(ex, j, type,
		         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	}
	json_object_put(o);
}

static void
ex_read(struct ex *ex, struct job *j)
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
		ex_line(ex, j, start);
	}
	j->linelen -= (size_t)(start - j->line);
	memmove(j->line, start, j->linelen + 1);
}

/* Why the attempt failed, from how the child ended, if nothing better is known. */
static void
ex_outcome(struct job *j, int status)
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

/* GET /metrics: this executor's counters, and the queue as the database sees it. */
static void
ex_metrics(struct ex *ex, FILE *f)
{
	static const char *const outcomes[] = {"claimed", "completed", "failed",
	                                       "retried", "canceled"};
	unsigned long counts[] = {ex->claimed, ex->completed, ex->failed, ex->retried,
	                          ex->canceled},
	              cum = 0;
	PGresult *res;
	size_t i;
	int r;

	fprintf(f,
	        "# HELP assay_executor_jobs_total Attempts by outcome (retried: failed, "
	        "will run again).\n# TYPE assay_executor_jobs_total counter\n");
	for (i = 0; i < 5; i++)
		fprintf(f, "assay_executor_jobs_total{outcome=\"%s\"} %lu\n", outcomes[i],
		        counts[i]);
	fprintf(f,
	        "# HELP assay_executor_job_duration_seconds Time from claim to outcome.\n"
	        "# TYPE assay_executor_job_duration_seconds histogram\n");
	for (i = 0; i < DURATION_BUCKETS; i++) {
		cum += ex->duration[i];
		fprintf(f, "assay_executor_job_duration_seconds_bucket{le=\"%g\"} %lu\n",
		        duration_bounds[i], cum);
	}
	cum += ex->duration[DURATION_BUCKETS];
	fprintf(f,
	        "assay_executor_job_duration_seconds_bucket{le=\"+Inf\"} %lu\n"
	        "assay_executor_job_duration_seconds_sum %.6f\n"
	        "assay_executor_job_duration_seconds_count %lu\n",
	        cum, ex->duration_sum, cum);
	fprintf(f, "# HELP assay_executor_failures_total Failed attempts by reason.\n"
	           "# TYPE assay_executor_failures_total counter\n");
	for (i = 0; i < REASON__MAX; i++)
		fprintf(f, "assay_executor_failures_total{reason=\"%s\"} %lu\n",
		        failure_reasons[i].reason, ex->reasons[i]);
	fprintf(f,
	        "# HELP assay_executor_leases_recovered_total Runs requeued after their "
	        "lease expired.\n# TYPE assay_executor_leases_recovered_total counter\n"
	        "assay_executor_leases_recovered_total %lu\n"
	        "# HELP assay_executor_running_jobs Jobs this executor runs now.\n"
	        "# TYPE assay_executor_running_jobs gauge\n"
	        "assay_executor_running_jobs %zu\n",
	        ex->recovered, ex->njobs);
	if (db_query(ex->db, &res,
	             "SELECT s, (SELECT count(*) FROM analysis_jobs WHERE status = s)"
	             " FROM unnest(ARRAY['created', 'pending', 'running']) AS s",
	             0, NULL) != DB_OK)
		return;
	fprintf(f, "# HELP assay_executor_queue_depth Runs not yet finished, by status "
	           "(all executors).\n# TYPE assay_executor_queue_depth gauge\n");
	for (r = 0; r < PQntuples(res); r++)
		fprintf(f, "assay_executor_queue_depth{status=\"%s\"} %s\n",
		        PQgetvalue(res, r, 0), PQgetvalue(res, r, 1));
	PQclear(res);
}

/* Count a finished attempt for /metrics. */
static void
ex_count(struct ex *ex, const struct job *j)
{
	double secs = (double)(util_now_us() - j->started_us) / 1e6;
	size_t b, r;

	ex->processed++;
	if (j->canceled)
		ex->canceled++;
	else if (j->error == NULL)
		ex->completed++;
	else if (j->attempts < j->max_attempts)
		ex->retried++;
	else
		ex->failed++;
	if (j->error != NULL && !j->canceled) {
		for (r = 0; r + 1 < REASON__MAX &&
		            strncmp(j->error, failure_reasons[r].prefix,
		                    strlen(failure_reasons[r].prefix)) != 0;
		     r++)
			;
		ex->reasons[r]++;
	}
	for (b = 0; b < DURATION_BUCKETS && secs > duration_bounds[b]; b++)
		;
	ex->duration[b]++;
	ex->duration_sum += secs;
}

static void
ex_done(struct ex *ex, size_t i)
{
	struct job *j = ex->jobs[i];

	if (ex->stopping && j->canceled == false && j->kill_at_us == UINT64_MAX) {
		jobs_release(ex->db, ex->mc, ex->worker,
		             j); /* killed by shutdown: requeue, no charge */
	} else {
		enum job_record rec;

		ex_progress(ex, j); /* the last progress is never lost */
		rec = jobs_finish(ex->db, ex->mc, ex->worker, j);

		ex_count(ex, j);
		if (rec == JOB_RECORDED)
			log_msg(j->error && !j->canceled ? LOG_WARN : LOG_INFO,
			        "run %s: %s in %.1f ms", j->id,
			        j->canceled ? "canceled"
			        : j->error  ? j->error
			                    : "completed",
			        (double)(util_now_us() - j->started_us) / 1000.0);
		else if (rec != JOB_LOST)
			log_msg(LOG_ERROR,
			        "run %s: its outcome could not be recorded (%s); it runs "
			        "again when its lease expires",
			        j->id, rec == JOB_REFUSED ? "refused" : "database down");
	}
	if (j->fd >= 0)
		close(j->fd);
	job_free(j);
	ex->jobs[i] = ex->jobs[--ex->njobs];
	ex->wake = true;
}

/* The child of jobs[i] has ended with wait status (or -errno). */
static void
ex_ended(struct ex *ex, size_t i, int status)
{
	struct job *j = ex->jobs[i];

	while (j->fd >= 0) /* drain what the child wrote before it ended */
		ex_read(ex, j);
	j->ended = true;
	ex_outcome(j, status);
	ex_done(ex, i);
}

/* What assay-sandbox has to say: which children have ended. */
static void
ex_sandbox(struct ex *ex)
{
	unsigned child;
	int status, r;
	size_t i;

	while ((r = sbx_next(&child, &status)) == 1) {
		for (i = 0; i < ex->njobs && ex->jobs[i]->child != child; i++)
			;
		if (i < ex->njobs)
			ex_ended(ex, i, status);
	}
	if (r < 0) /* it died, and its children with it */
		for (i = ex->njobs; i-- > 0;)
			if (!ex->jobs[i]->ended) {
				free(ex->jobs[i]->error);
				ex->jobs[i]->error = xstrdup(
				    "executor fault: the sandbox process stopped");
				ex_ended(ex, i, 0);
			}
}

static void
ex_reload(struct ex *ex)
{
	struct cfg *next =
	    cfg_reload(ex_cfg_keys, EX__MAX, ex->cfg_path, ex->cfg_required);

	if (next == NULL)
		return;
	cfg_free(ex->cfg);
	ex->cfg = next;
	log_set_level((enum log_level)ex_int(ex, EX_LOG_LEVEL));
	log_msg(LOG_INFO, "configuration reloaded");
}

static void
ex_signals(struct ex *ex)
{
	struct signalfd_siginfo si;

	while (read(ex->sig_fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			ex_reload(ex);
		} else if (!ex->stopping) {
			ex->stopping = true;
			ex->stop_at_us =
			    util_now_us() +
			    (uint64_t)ex_int(ex, EX_SHUTDOWN_GRACE) * 1000000u;
			log_msg(LOG_INFO,
			        "signal %u: no new jobs; waiting for %zu running",
			        si.ssi_signo, ex->njobs);
		}
	}
}

/* The HTTP port (lib/probe.c): GET /health and GET /metrics. */
static int
ex_probe(const char *path, FILE *f, const char **ctype, void *arg)
{
	struct ex *ex = arg;

	if (strcmp(path, "/health") == 0) {
		fprintf(f,
		        "{\"status\":\"%s\",\"version\":\"%s\",\"jobs_processed\":%lu,"
		        "\"running\":%zu,\"capacity\":%ld,\"database\":\"%s\"}",
		        ex->stopping ? "stopping" : "healthy", PACKAGE_VERSION,
		        ex->processed, ex->njobs, ex_int(ex, EX_MAX_CONCURRENT),
		        ex->listening ? "connected" : "unavailable");
		return 1;
	}
	if (strcmp(path, "/metrics") == 0) {
		*ctype = "text/plain; version=0.0.4";
		ex_metrics(ex, f);
		return 1;
	}
	return 0;
}

/* Time-driven work; returns milliseconds until the next deadline. */
static int
ex_tick(struct ex *ex)
{
	uint64_t now = util_now_us(), next = now + 1000000u, lease_us;
	size_t i;

	lease_us = (uint64_t)ex_int(ex, EX_LEASE_SECONDS) * 1000000u;
	if (now >= ex->next_beat_us) {
		if (ex->njobs > 0)
			jobs_heartbeat(ex->db, ex->worker,
			               (int)ex_int(ex, EX_LEASE_SECONDS), ex->jobs,
			               ex->njobs);
		ex->next_beat_us = now + lease_us / 3;
	}
	if (!ex->stopping && now >= ex->next_poll_us) {
		ex->recovered += (unsigned long)jobs_recover(ex->db, ex->mc);
		ex->wake = true;
		ex->next_poll_us =
		    now + (uint64_t)ex_int(ex, EX_POLL_INTERVAL_MS) * 1000u;
	}
	ex_listen(ex);
	if (ex->wake)
		ex_claim(ex);
	for (i = 0; i < ex->njobs; i++) {
		struct job *j = ex->jobs[i];

		if (j->ended) { /* never started: refused, or no sandbox */
			ex_done(ex, i--);
			continue;
		}
		if (j->lost || (j->canceled && j->kill_at_us == 0))
			ex_cancel(ex, j);
		if (ex->stopping && now >= ex->stop_at_us &&
		    j->kill_at_us != UINT64_MAX) {
			sbx_kill(j->child, SIGKILL);
			j->kill_at_us = UINT64_MAX; /* requeued when reaped */
		}
		if (!j->timed_out && now >= j->deadline_us) {
			j->timed_out = true;
			sbx_kill(j->child, SIGKILL);
		}
		if (j->kill_at_us != 0 && j->kill_at_us != UINT64_MAX &&
		    now >= j->kill_at_us)
			sbx_kill(j->child, SIGKILL);
		if (j->progress != NULL && now >= j->progress_due_us)
			ex_progress(ex, j);
		if (j->progress != NULL && j->progress_due_us < next)
			next = j->progress_due_us;
		if (j->deadline_us > now && j->deadline_us < next)
			next = j->deadline_us;
	}
	if (ex->next_poll_us < next)
		next = ex->next_poll_us;
	return next > now ? (int)((next - now + 999) / 1000) : 0;
}

/* assay-sandbox: beside this program (a build tree), else where installed. */
static void
ex_sandbox_program(char *path, size_t size)
{
	char self[4096 - 32], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			snprintf(path, size, "%s/assay-sandbox", self);
			if (access(path, X_OK) == 0)
				return;
		}
	}
	snprintf(path, size, "%s/assay-sandbox", PKGLIBEXECDIR);
}

static int
ex_run(struct ex *ex)
{
	struct pollfd pfd[4 + MAX_JOBS];
	struct job *byfd[4 + MAX_JOBS];
	size_t n, i;
	int timeout;

	while (!ex->stopping || ex->njobs > 0) {
		timeout = ex_tick(ex);
		n = 0;
		pfd[n++] = (struct pollfd){ex->sig_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){ex->http_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){ex->listening ? PQsocket(ex->listening) : -1,
		                           POLLIN, 0};
		pfd[n++] = (struct pollfd){sbx_fd(), POLLIN, 0};
		for (i = 0; i < ex->njobs; i++) {
			byfd[n] = ex->jobs[i];
			pfd[n++] = (struct pollfd){ex->jobs[i]->fd, POLLIN, 0};
		}
		if (poll(pfd, n, ex->wake ? 0 : timeout) < 0 && errno != EINTR)
			return 1;
		for (i = 4; i < n; i++)
			if (pfd[i].revents && byfd[i]->fd >= 0)
				ex_read(ex, byfd[i]);
		if (pfd[3].revents)
			ex_sandbox(ex);
		if (pfd[2].revents)
			ex_notifications(ex);
		if (pfd[1].revents)
			probe_serve(ex->http_fd, ex_probe, ex);
		if (pfd[0].revents)
			ex_signals(ex);
	}
	sbx_close();
	log_msg(LOG_INFO, "stopped after %lu jobs", ex->processed);
	return 0;
}

/* -t: the configuration, then how contained children would be. */
static int
ex_test(struct ex *ex)
{
	cfg_print(ex->cfg, stdout);
	printf("# configuration ok\n");
	if (sbx_open(ex->sandbox, ex->node, cfg_str(ex->cfg, EX_SANDBOX_USER)) < 0)
		printf("# warning: %s does not start: no job could run\n", ex->sandbox);
	else if (sbx_weakness() != NULL)
		printf(
		    "# warning: %s; runtime js runs on its seccomp allowlist alone%s\n",
		    sbx_weakness(), ex->node != NULL ? ", runtime node is refused" : "");
	else
		printf("# sandbox: children run as %s in namespaces of their own\n",
		       cfg_str(ex->cfg, EX_SANDBOX_USER));
	sbx_close();
	cfg_free(ex->cfg);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"port", required_argument, NULL, 'p'},
	    {"database-url", required_argument, NULL, 'd'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"test", no_argument, NULL, 't'},
	    {"sample-config", no_argument, NULL, 'S'},
	    {"config-doc", no_argument, NULL, 'D'},
	    {"config-man", no_argument, NULL, 'M'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ex ex = {.cfg_path = EX_CONF_FILE, .sig_fd = -1, .http_fd = -1};
	char host[64];
	bool test = false;
	int c, rc;

	log_init("assay-executor");
	while ((c = getopt_long(argc, argv, "c:p:d:l:thV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ex.cfg_path = optarg;
			ex.cfg_required = true;
			break;
		case 'p': /* command-line values win over file and environment */
			setenv("ANALYSIS_EXECUTOR_PORT", optarg, 1);
			break;
		case 'd':
			setenv("DATABASE_URL", optarg, 1);
			break;
		case 'l':
			setenv("LOG_LEVEL", optarg, 1);
			break;
		case 't':
			test = true;
			break;
		case 'S':
			cfg_write_sample(ex_cfg_keys, EX__MAX, "executor.conf", stdout);
			return 0;
		case 'D':
			cfg_write_doc(ex_cfg_keys, EX__MAX, "executor.conf",
			              CFG_DOC_MARKDOWN, stdout);
			return 0;
		case 'M':
			cfg_write_doc(ex_cfg_keys, EX__MAX, "executor.conf", CFG_DOC_MAN,
			              stdout);
			return 0;
		case 'V':
			printf("assay-executor %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			printf("usage: assay-executor [-t] [-c FILE] [--port N] "
			       "[--database-url URL] "
			       "[--log-level L]\n");
			return 0;
		default:
			return 2;
		}
	}
	ex.cfg =
	    cfg_startup(ex_cfg_keys, EX__MAX, ex.cfg_path, ex.cfg_required, false, &rc);
	if (ex.cfg == NULL)
		return rc;
	ex_sandbox_program(ex.sandbox, sizeof ex.sandbox);
	ex.node = cfg_str(ex.cfg, EX_NODE_PATH)[0] != '\0'
	              ? xstrdup(cfg_str(ex.cfg, EX_NODE_PATH))
	              : NULL;
	if (test)
		return ex_test(&ex);
	ex.cfg_required = ex.cfg_required || cfg_path(ex.cfg) != NULL;
	log_set_level((enum log_level)ex_int(&ex, EX_LOG_LEVEL));
	gethostname(host, sizeof host);
	host[sizeof host - 1] = '\0';
	snprintf(ex.worker, sizeof ex.worker, "%s:%d", host, (int)getpid());
	srandom((unsigned)(getpid() ^ util_now_us()));

	ex.sig_fd = util_signalfd();
	if (sbx_open(ex.sandbox, ex.node, cfg_str(ex.cfg, EX_SANDBOX_USER)) < 0)
		return 1;
	if (ex.node != NULL && sbx_refusal(RT_NODE) != NULL)
		log_msg(LOG_ERROR, "%s", sbx_refusal(RT_NODE));
	ex.http_fd =
	    probe_listen(cfg_str(ex.cfg, EX_LISTEN_ADDRESS), ex_int(&ex, EX_PORT));
	if (ex.sig_fd < 0 || ex.http_fd < 0)
		return 1;
	ex.db = db_new(cfg_str(ex.cfg, EX_DATABASE_URL));
	if (cfg_str(ex.cfg, EX_MEMCACHED_SERVERS)[0] != '\0' &&
	    (ex.mc = mc_new(cfg_str(ex.cfg, EX_MEMCACHED_SERVERS), 500)) == NULL)
		log_msg(LOG_WARN,
		        "memcached_servers '%s' cannot be parsed; the API's cache "
		        "will not be told of run changes",
		        cfg_str(ex.cfg, EX_MEMCACHED_SERVERS));
	log_msg(LOG_INFO, "assay-executor %s as %s: up to %ld jobs, health on %s:%ld",
	        PACKAGE_VERSION, ex.worker, ex_int(&ex, EX_MAX_CONCURRENT),
	        cfg_str(ex.cfg, EX_LISTEN_ADDRESS), ex_int(&ex, EX_PORT));
	rc = ex_run(&ex);
	db_free(ex.db);
	mc_free(ex.mc);
	cfg_free(ex.cfg);
	return rc;
}
