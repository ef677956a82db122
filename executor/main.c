/*
 * assay-executor: claims runs and runs them in warm sandboxed workers, in
 * a single poll(2) loop over: a signalfd (SIGTERM, SIGINT, SIGHUP), the
 * PostgreSQL connection (LISTEN assay_jobs, assay_cancel, assay_webhooks,
 * assay_schedules), the socket to
 * assay-sandbox (which forks the workers and says when they end), the
 * workers' bridges (bridge.c), and the /health, /metrics HTTP socket
 * (stats.c). Setup, the loop, the jobs' and the workers' lifecycles live
 * here; nothing here reads a worker's output itself.
 *   A worker serves one tenant, one runtime and one set of limits; it is
 *   given that tenant's jobs one at a time and kept after each clean
 *   completion, up to worker_max_jobs jobs, until idle for
 *   worker_idle_seconds, or until room is needed for another's worker.
 *   Any other end of a job (failure, timeout, memory, cancel, output or
 *   event limit) kills its worker. Outcomes are written once per pass of
 *   the loop, all in one statement (jobs.c).
 *   SIGTERM  stop claiming, let running jobs finish for the grace period,
 *            then kill and requeue the rest without charging an attempt
 *   SIGHUP   reload the configuration (a broken one is logged and ignored)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "extern.h"
#include "log.h"
#include "mc.h"
#include "outbound.h"
#include "probe.h"
#include "util.h"
#include "xalloc.h"

long
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
	res =
	    PQexec(conn, "LISTEN assay_jobs; LISTEN assay_cancel; LISTEN assay_webhooks;"
	                 " LISTEN assay_schedules; LISTEN assay_checks");
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		ex->listening = conn;
	PQclear(res);
	/* work may have arrived while we were not listening */
	ex->wake = ex->check_wake = true;
	wh_wake(ex);
	sched_wake(ex);
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

void
ex_kill(struct job *j, int sig)
{
	if (j->worker == NULL)
		return;
	j->worker->doomed = true;
	sbx_kill(j->worker->child, sig);
}

static void
ex_cancel(struct ex *ex, struct job *j)
{
	if (j->kill_at_us != 0 || j->ended)
		return;
	j->canceled = true;
	if (j->worker == NULL) { /* not started yet */
		j->ended = true;
		j->started_us = util_now_us();
		return;
	}
	ex_kill(j, SIGTERM);
	j->kill_at_us = util_now_us() + (uint64_t)ex_int(ex, EX_CANCEL_GRACE_MS) * 1000u;
	log_msg(LOG_INFO, "run %s: cancel requested; stopping its process", j->id);
}

/* The jobs w may run: worker_max_jobs, but never more than when it started
 * (its CPU-time limit counts them). */
static unsigned
ex_max_jobs(const struct ex *ex, const struct worker *w)
{
	long now = ex_int(ex, EX_WORKER_MAX_JOBS);

	return (unsigned)(now < w->spec.max_jobs ? now : w->spec.max_jobs);
}

/* A worker is no longer wanted: it is killed, and forgotten when
 * assay-sandbox reports its end. */
static void
ex_retire(struct worker *w)
{
	if (w->doomed)
		return;
	w->doomed = true;
	sbx_kill(w->child, SIGKILL);
}

/* An idle worker for j, or a new one (NULL when none can start). Live
 * workers are at most max_concurrent_jobs: the longest idle makes room. */
static struct worker *
ex_worker_for(struct ex *ex, const struct job *j)
{
	struct worker *w, *oldest = NULL;
	long live = 0;
	size_t i;

	for (i = 0; i < ex->nworkers; i++) {
		w = ex->workers[i];
		if (w->doomed)
			continue;
		if (w->job == NULL && w->jobs >= ex_max_jobs(ex, w)) {
			ex_retire(w); /* worker_max_jobs was lowered */
			continue;
		}
		live++;
		if (w->job != NULL)
			continue;
		/* A check compiles within any limits its tenant's worker has. */
		if (w->tenant == j->tenant && w->spec.runtime == j->spec.runtime &&
		    ((w->spec.memory_mb == j->spec.memory_mb &&
		      w->spec.timeout_ms == j->spec.timeout_ms) ||
		     j->check) &&
		    w->fd >= 0)
			return w;
		if (oldest == NULL || w->idle_since_us < oldest->idle_since_us)
			oldest = w;
	}
	if (live >= ex_int(ex, EX_MAX_CONCURRENT) && oldest != NULL)
		ex_retire(oldest);
	if (ex->nworkers == MAX_JOBS)
		return NULL;
	w = xcalloc(1, sizeof *w);
	if (++ex->children == 0) /* 0 means "no child" */
		ex->children = 1;
	w->child = ex->children;
	w->tenant = j->tenant;
	w->spec = j->spec;
	w->spec.max_jobs = ex_int(ex, EX_WORKER_MAX_JOBS);
	w->fd = sbx_run(w->child, &w->spec);
	if (w->fd < 0) {
		free(w);
		return NULL;
	}
	ex->workers[ex->nworkers++] = w;
	ex->workers_started++;
	log_msg(LOG_DEBUG, "worker %u started for tenant %ld (%s, %ld MB, %ld ms)",
	        w->child, w->tenant, j->spec.runtime == RT_NODE ? "node" : "js",
	        j->spec.memory_mb, j->spec.timeout_ms);
	return w;
}

static void
ex_worker_free(struct ex *ex, struct worker *w)
{
	size_t i;

	for (i = 0; i < ex->nworkers && ex->workers[i] != w; i++)
		;
	if (i < ex->nworkers)
		ex->workers[i] = ex->workers[--ex->nworkers];
	if (w->fd >= 0)
		close(w->fd);
	free(w->in);
	free(w->out);
	free(w);
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
		else if (strcmp(n->relname, "assay_webhooks") == 0)
			wh_wake(ex);
		else if (strcmp(n->relname, "assay_schedules") == 0)
			sched_wake(ex);
		else if (strcmp(n->relname, "assay_checks") == 0)
			ex->check_wake = true;
		else if (strcmp(n->relname, "assay_cancel") == 0 &&
		         (j = ex_find(ex, n->extra)))
			ex_cancel(ex, j);
		PQfreemem(n);
	}
}

static void
ex_start(struct ex *ex, struct job *j)
{
	uint64_t nonce[1];
	struct worker *w;
	size_t len;
	char *frame;

	j->started_us = util_now_us();
	j->ended = true;
	if (sbx_refusal(j->spec.runtime) != NULL) {
		j->error = xstrdup(sbx_refusal(j->spec.runtime));
		j->attempts = j->max_attempts; /* retrying here cannot help */
		return;
	}
	if ((w = ex_worker_for(ex, j)) == NULL) {
		j->error = xstrdup("executor fault: cannot start the sandbox");
		return;
	}
	if (j->check) { /* the worker's engine budget, a check's time */
		j->spec = w->spec;
		j->spec.timeout_ms = CHECK_TIMEOUT_MS;
	} else {
		calls_token(ex, j);
	}
	j->deadline_us = j->started_us + (uint64_t)j->spec.timeout_ms * 1000u;
	j->ended = false;
	j->worker = w;
	w->job = j;
	w->jobs++;
	j->worker_no = w->child;
	j->worker_job = w->jobs;
	if (getrandom(nonce, sizeof nonce, 0) != sizeof nonce)
		nonce[0] = util_now_us() ^ (uint64_t)random(); /* not expected */
	snprintf(j->nonce, sizeof j->nonce, "%016llx", (unsigned long long)nonce[0]);
	frame = sbx_job_frame(j->check, j->script, j->input, j->spec.memory_mb, j->nonce,
	                      &len);
	bridge_send(w, frame, len);
	free(frame);
	free(j->script);
	free(j->input);
	j->script = j->input = NULL;
	log_msg(LOG_DEBUG, "%s %s: attempt %d in worker %u (its job %u)",
	        j->check ? "check" : "run", j->id, j->attempts, w->child, w->jobs);
}

/* One round trip: write the ends waiting in ex->done (rec: what became
 * of each) and claim what there is room for. */
static void
ex_settle(struct ex *ex, enum job_record *rec)
{
	long room = 2 * ex_int(ex, EX_MAX_CONCURRENT) - (long)ex->njobs, caps[TIER_COUNT];
	struct job *got[MAX_JOBS];
	int n, i;

	if (room > MAX_JOBS - (long)ex->njobs)
		room = MAX_JOBS - (long)ex->njobs;
	/* no job is claimed that could not run (sbx_open logs why) */
	if (ex->stopping || room < 0 ||
	    sbx_open(ex->sandbox, ex->node, cfg_str(ex->cfg, EX_SANDBOX_USER)) < 0)
		room = 0;
	if (room == 0 && ex->ndone == 0)
		return;
	for (i = 0; i < TIER_COUNT; i++)
		caps[i] = ex_int(ex, EX_TIER_RUNNING + i);
	n = jobs_settle(ex->db, ex->mc, ex->worker, ex->done, ex->ndone, rec, (int)room,
	                (int)ex_int(ex, EX_LEASE_SECONDS), caps, got);
	for (i = 0; i < n; i++) {
		ex->jobs[ex->njobs++] = got[i];
		ex->claimed++;
	}
	if (room > 0 && n == room)
		ex->wake = true; /* there may be more */
}

static void
ex_claim(struct ex *ex)
{
	ex->wake = false;
	ex_settle(ex, NULL);
}

/* Jobs claimed but not started wait for a worker (the executor holds up
 * to twice max_concurrent_jobs, so that a worker is given its next job
 * the moment it is done, not a database round trip later). Start them,
 * oldest first, while fewer than max_concurrent_jobs run; checks, which
 * last milliseconds and someone waits for, start at once and are not
 * counted. */
static void
ex_dispatch(struct ex *ex)
{
	long running = 0;
	size_t i;

	for (i = 0; i < ex->njobs; i++)
		running += ex->jobs[i]->worker != NULL && !ex->jobs[i]->check;
	for (i = 0; i < ex->njobs; i++) {
		struct job *j = ex->jobs[i];

		if (j->worker != NULL || j->ended || j->started_us != 0 ||
		    (running >= ex_int(ex, EX_MAX_CONCURRENT) && !j->check))
			continue;
		if (ex->stopping) { /* never started: requeued, no attempt charged */
			j->kill_at_us = UINT64_MAX;
			j->ended = true;
			continue;
		}
		ex_start(ex, j);
		running += j->worker != NULL && !j->check;
	}
}

/* jobs[i] has ended: its worker is kept or retired, its outcome waits
 * for ex_flush. */
static void
ex_done(struct ex *ex, size_t i)
{
	struct job *j = ex->jobs[i];
	struct worker *w = j->worker;

	calls_forget(j);
	/* In order: the oldest claimed are started first (ex_dispatch). */
	memmove(ex->jobs + i, ex->jobs + i + 1, (--ex->njobs - i) * sizeof *ex->jobs);
	ex->wake = true;
	if (w != NULL) {
		j->worker = NULL;
		if (w->job == j)
			w->job = NULL;
		if (j->error != NULL || j->canceled || j->lost ||
		    w->jobs >= ex_max_jobs(ex, w))
			ex_retire(w);
		w->idle_since_us = util_now_us();
	}
	if (j->check) {
		checks_done(ex, j);
		return;
	}
	if (ex->stopping && j->canceled == false && j->kill_at_us == UINT64_MAX) {
		/* killed by shutdown: requeued, no attempt charged */
		jobs_release(ex->db, ex->mc, ex->worker, j);
		job_free(j);
		return;
	}
	bridge_progress(ex, j); /* the last progress is never lost */
	ex->done[ex->ndone++] = j;
}

/* j's result has arrived. */
static void
ex_completed(struct ex *ex, struct job *j)
{
	size_t i;

	for (i = 0; i < ex->njobs && ex->jobs[i] != j; i++)
		;
	j->ended = true;
	if (i < ex->njobs)
		ex_done(ex, i);
	ex_dispatch(ex); /* its worker may take the next at once */
}

/* Write the events and outcomes waiting, each kind in one statement. */
static void
ex_flush(struct ex *ex)
{
	enum job_record rec[MAX_JOBS];
	size_t i;

	jobs_flush_events(ex->db);
	checks_flush(ex);
	if (ex->ndone == 0)
		return;
	ex_settle(ex, rec); /* and claim again, in the same round trip */
	ex->flushes++;
	for (i = 0; i < ex->ndone; i++) {
		struct job *j = ex->done[i];

		stats_count(ex, j);
		if (rec[i] == JOB_RECORDED)
			log_msg(j->error && !j->canceled ? LOG_WARN : LOG_INFO,
			        "run %s: %s in %.1f ms (worker %u, its job %u)", j->id,
			        j->canceled ? "canceled"
			        : j->error  ? j->error
			                    : "completed",
			        (double)(util_now_us() - j->started_us) / 1000.0,
			        j->worker_no, j->worker_job);
		else if (rec[i] != JOB_LOST)
			log_msg(LOG_ERROR,
			        "run %s: its outcome could not be recorded (%s); it runs "
			        "again when its lease expires",
			        j->id,
			        rec[i] == JOB_REFUSED ? "refused" : "database down");
		job_free(j);
	}
	ex->ndone = 0;
}

/* Tell the API's cache, in one write, of the runs this pass changed. */
static void
ex_tell_cache(struct ex *ex)
{
	if (ex->mc != NULL && !mc_flush(ex->mc) && ex->mc_was_up)
		log_msg(LOG_WARN,
		        "memcached could not be told of run changes (%s); the API may "
		        "show their previous state for up to [cache] ttl_short",
		        mc_last_error(ex->mc));
	ex->mc_was_up = ex->mc == NULL || mc_up(ex->mc);
}

/* The worker w has ended with wait status (or -errno); so has its job. */
static void
ex_ended(struct ex *ex, struct worker *w, int status)
{
	struct job *j, *done;
	size_t i;

	w->doomed = true; /* never given a job again, even while drained */
	if (w->fd >= 0)   /* drain what it wrote before it ended */
		fcntl(w->fd, F_SETFL, 0);
	while (w->fd >= 0)
		if ((done = bridge_read(ex, w)) != NULL)
			ex_completed(ex, done); /* its result came just in time */
	if ((j = w->job) != NULL) {
		j->ended = true;
		bridge_outcome(j, status);
		for (i = 0; i < ex->njobs && ex->jobs[i] != j; i++)
			;
		if (i < ex->njobs)
			ex_done(ex, i);
	}
	ex_worker_free(ex, w);
}

/* What assay-sandbox has to say: which workers have ended. */
static void
ex_sandbox(struct ex *ex)
{
	unsigned child;
	int status, r;
	size_t i;

	while ((r = sbx_next(&child, &status)) == 1) {
		for (i = 0; i < ex->nworkers && ex->workers[i]->child != child; i++)
			;
		if (i < ex->nworkers)
			ex_ended(ex, ex->workers[i], status);
	}
	if (r < 0) /* it died, and its workers with it */
		while (ex->nworkers > 0) {
			struct worker *w = ex->workers[ex->nworkers - 1];

			if (w->job != NULL) {
				free(w->job->error);
				w->job->error = xstrdup(
				    "executor fault: the sandbox process stopped");
			}
			ex_ended(ex, w, 0);
		}
}

/* What is wrong with a configuration beyond its keys' own checks, or NULL. */
static const char *
ex_config_error(const struct cfg *cfg)
{
	return wh_config_error(cfg) != NULL ? wh_config_error(cfg)
	                                    : results_config_error(cfg);
}

static void
ex_reload(struct ex *ex)
{
	struct cfg *next =
	    cfg_reload(ex_cfg_keys, EX__MAX, ex->cfg_path, ex->cfg_required);

	if (next == NULL)
		return;
	if (ex_config_error(next) != NULL) {
		log_msg(LOG_ERROR, "%s; reload failed, keeping the current configuration",
		        ex_config_error(next));
		cfg_free(next);
		return;
	}
	cfg_free(ex->cfg);
	ex->cfg = next;
	log_set_level((enum log_level)ex_int(ex, EX_LOG_LEVEL));
	wh_reload(ex);
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
		stats_write(ex, f);
		return 1;
	}
	return 0;
}

/* Time-driven work; returns milliseconds until the next deadline. */
static int
ex_tick(struct ex *ex)
{
	uint64_t now = util_now_us(), next = now + 1000000u, lease_us, t_sched;
	size_t i;
	int t;

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
	if (ex->check_wake)
		checks_take(ex);
	ex_dispatch(ex);
	for (i = 0; i < ex->njobs; i++) {
		struct job *j = ex->jobs[i];

		if (j->lost || (j->canceled && j->kill_at_us == 0))
			ex_cancel(ex, j);
		if (j->ended) { /* never started: refused, canceled, no sandbox */
			ex_done(ex, i--);
			continue;
		}
		if (j->worker == NULL)
			continue; /* waiting for a worker */
		if (ex->stopping && now >= ex->stop_at_us &&
		    j->kill_at_us != UINT64_MAX) {
			ex_kill(j, SIGKILL);
			j->kill_at_us = UINT64_MAX; /* requeued when reaped */
		}
		if (!j->timed_out && now >= j->deadline_us) {
			j->timed_out = true;
			ex_kill(j, SIGKILL);
		}
		if (j->kill_at_us != 0 && j->kill_at_us != UINT64_MAX &&
		    now >= j->kill_at_us)
			ex_kill(j, SIGKILL);
		if (j->progress != NULL && now >= j->progress_due_us)
			bridge_progress(ex, j);
		if (j->progress != NULL && j->progress_due_us < next)
			next = j->progress_due_us;
		if (j->deadline_us > now && j->deadline_us < next)
			next = j->deadline_us;
	}
	for (i = 0; i < ex->nworkers; i++) {
		struct worker *w = ex->workers[i];
		uint64_t until = w->idle_since_us +
		                 (uint64_t)ex_int(ex, EX_WORKER_IDLE_SECONDS) * 1000000u;

		if (w->job != NULL || w->doomed)
			continue;
		if (now >= until || ex->stopping)
			ex_retire(w);
		else if (until < next)
			next = until;
	}
	if (ex->next_poll_us < next)
		next = ex->next_poll_us;
	wh_tick(ex, now);
	if ((t_sched = sched_tick(ex, now)) < next)
		next = t_sched;
	for (i = 0; i < CLIENT__MAX; i++) {
		t = ob_timeout_ms(ex->clients[i]);
		if (t >= 0 && now + (uint64_t)t * 1000u < next)
			next = now + (uint64_t)t * 1000u;
	}
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
	struct pollfd pfd[4 + MAX_JOBS + WH_FDS + CALL_FDS];
	struct worker *byfd[4 + MAX_JOBS];
	struct job *done;
	size_t n, i, nw, k, nc[CLIENT__MAX];
	int timeout;

	while (!ex->stopping || ex->njobs > 0) {
		timeout = ex_tick(ex);
		n = 0;
		pfd[n++] = (struct pollfd){ex->sig_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){ex->http_fd, POLLIN, 0};
		pfd[n++] = (struct pollfd){ex->listening ? PQsocket(ex->listening) : -1,
		                           POLLIN, 0};
		pfd[n++] = (struct pollfd){sbx_fd(), POLLIN, 0};
		for (i = 0; i < ex->nworkers; i++) {
			struct worker *w = ex->workers[i];

			byfd[n] = w;
			pfd[n++] = (struct pollfd){
			    w->fd,
			    (short)(POLLIN | (w->outlen > w->outoff ? POLLOUT : 0)), 0};
		}
		nw = n;
		for (k = 0; k < CLIENT__MAX; k++)
			n += nc[k] = ob_pollfds(ex->clients[k], pfd + n,
			                        k == CLIENT_WEBHOOKS ? WH_FDS : CALL_FDS);
		ex_tell_cache(ex);
		/* Notifications that arrived during a query wait in libpq, not
		 * on the socket: taken before sleeping on it. */
		ex_notifications(ex);
		if (poll(pfd, n, ex->wake || ex->check_wake ? 0 : timeout) < 0 &&
		    errno != EINTR)
			return 1;
		for (k = 0, i = nw; k < CLIENT__MAX; i += nc[k++])
			ob_perform(ex->clients[k], pfd + i, nc[k]);
		for (i = 4; i < nw; i++) {
			if ((pfd[i].revents & POLLOUT) && byfd[i]->fd >= 0)
				bridge_write(byfd[i]);
			if ((pfd[i].revents & ~POLLOUT) && byfd[i]->fd >= 0 &&
			    (done = bridge_read(ex, byfd[i])) != NULL)
				ex_completed(ex, done);
		}
		if (pfd[3].revents)
			ex_sandbox(ex);
		if (pfd[2].revents)
			ex_notifications(ex);
		if (pfd[1].revents)
			probe_serve(ex->http_fd, ex_probe, ex);
		if (pfd[0].revents)
			ex_signals(ex);
		ex_flush(ex);
	}
	ex_flush(ex);
	ex_tell_cache(ex);
	wh_stop(ex);
	sched_stop(ex);
	calls_stop(ex);
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
	    CFG_LONG_OPTIONS,
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ex ex = {
	    .cfg_path = EX_CONF_FILE, .sig_fd = -1, .http_fd = -1, .mc_was_up = true};
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
		case 'D':
		case 'M':
			cfg_write_option(c, ex_cfg_keys, EX__MAX, "executor.conf",
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
	if (ex_config_error(ex.cfg) != NULL) {
		fprintf(stderr, "assay-executor: %s\n", ex_config_error(ex.cfg));
		cfg_free(ex.cfg);
		return 1;
	}
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
	else if (ex.mc != NULL)
		mc_buffer(ex.mc); /* sent once per pass of the loop (ex_flush) */
	if (!wh_start(&ex) || !calls_start(&ex) || !sched_start(&ex))
		return 1;
	log_msg(LOG_INFO, "assay-executor %s as %s: up to %ld jobs, health on %s:%ld",
	        PACKAGE_VERSION, ex.worker, ex_int(&ex, EX_MAX_CONCURRENT),
	        cfg_str(ex.cfg, EX_LISTEN_ADDRESS), ex_int(&ex, EX_PORT));
	rc = ex_run(&ex);
	db_free(ex.db);
	mc_free(ex.mc);
	cfg_free(ex.cfg);
	return rc;
}
