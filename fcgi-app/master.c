/*
 * The prefork master: owns the listening socket and the configuration,
 * keeps `workers` children alive, and never serves a request itself.
 * Signals are blocked and taken synchronously with sigtimedwait, so all
 * master state changes happen in one loop, never in a handler.
 *   SIGCHLD  reap; restart the slot, with backoff when it crashes in a loop
 *   SIGHUP   reload the config; on success replace every worker, on
 *            failure log why and keep the old config and workers
 *   SIGTERM  stop: workers finish their request, stragglers are killed
 *            after shutdown_timeout; exit 0 once all are reaped
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

#define BACKOFF_MIN_US   100000u   /* first delay after a crash */
#define BACKOFF_MAX_US   10000000u /* ceiling of the doubling */
#define HEALTHY_AFTER_US 2000000u  /* a worker that lived this long was fine */

struct child {
	pid_t pid;
	size_t slot;
	uint64_t started_us;
	uint64_t kill_at_us; /* 0, or when a retiring child gets SIGKILL */
};

struct slot {
	bool filled;
	unsigned crashes;    /* consecutive quick deaths */
	uint64_t respawn_us; /* earliest time to start a worker here */
};

struct master {
	struct cfg *cfg;
	const char *cfg_path;
	bool cfg_required;
	int listen_fd;
	struct child *kids;
	size_t nkids;
	struct slot *slots;
	size_t nslots;
	bool stopping;
};

static sigset_t master_sigs;

static void
master_spawn(struct master *m, size_t slot)
{
	pid_t pid = fork();

	if (pid < 0) {
		log_msg(LOG_ERROR, "fork failed: %s", strerror(errno));
		m->slots[slot].respawn_us = util_now_us() + BACKOFF_MAX_US;
		return;
	}
	if (pid == 0)
		worker_run(m->cfg, m->listen_fd); /* does not return */
	m->kids = xrealloc(m->kids, (m->nkids + 1) * sizeof *m->kids);
	m->kids[m->nkids++] = (struct child){pid, slot, util_now_us(), 0};
	m->slots[slot].filled = true;
	log_msg(LOG_DEBUG, "worker %zu started as pid %d", slot, (int)pid);
}

/* Ask every current worker to finish; they are killed if still alive at deadline. */
static void
master_retire_all(struct master *m)
{
	uint64_t deadline =
	    util_now_us() + (uint64_t)cfg_int(m->cfg, API_SHUTDOWN_TIMEOUT) * 1000000u;
	size_t i;

	for (i = 0; i < m->nkids; i++) {
		if (m->kids[i].kill_at_us == 0) {
			m->kids[i].kill_at_us = deadline;
			kill(m->kids[i].pid, SIGTERM);
		}
	}
	for (i = 0; i < m->nslots; i++)
		m->slots[i].filled = false;
}

static void
master_resize(struct master *m, size_t n)
{
	size_t i;

	m->slots = xrealloc(m->slots, n * sizeof *m->slots);
	for (i = m->nslots; i < n; i++)
		m->slots[i] = (struct slot){false, 0, 0};
	m->nslots = n;
}

static void
master_child_exited(struct master *m, pid_t pid, int status)
{
	struct slot *s;
	struct child c;
	uint64_t now = util_now_us(), delay;
	size_t i;

	for (i = 0; i < m->nkids && m->kids[i].pid != pid; i++)
		;
	if (i == m->nkids)
		return;
	c = m->kids[i];
	m->kids[i] = m->kids[--m->nkids];
	if (c.kill_at_us != 0 || m->stopping)
		return; /* retired on purpose */

	s = &m->slots[c.slot];
	s->filled = false;
	if (now - c.started_us < HEALTHY_AFTER_US)
		s->crashes++;
	else
		s->crashes = 0;
	delay = 0;
	if (s->crashes > 0) {
		delay = BACKOFF_MIN_US << (s->crashes > 7 ? 7 : s->crashes - 1);
		if (delay > BACKOFF_MAX_US)
			delay = BACKOFF_MAX_US;
	}
	s->respawn_us = now + delay;
	if (WIFSIGNALED(status))
		log_msg(LOG_ERROR,
		        "worker %zu (pid %d) killed by signal %d; restarting in %llu ms",
		        c.slot, (int)pid, WTERMSIG(status),
		        (unsigned long long)(delay / 1000));
	else
		log_msg(
		    LOG_ERROR,
		    "worker %zu (pid %d) exited with status %d; restarting in %llu ms",
		    c.slot, (int)pid, WEXITSTATUS(status),
		    (unsigned long long)(delay / 1000));
}

static void
master_reap(struct master *m)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		metrics_worker_gone(pid);
		master_child_exited(m, pid, status);
	}
}

static void
master_reload(struct master *m)
{
	struct cfg *next;
	size_t k;

	log_msg(LOG_INFO, "SIGHUP: reloading %s", m->cfg_path);
	next = cfg_reload(api_cfg_keys, API__MAX, m->cfg_path, m->cfg_required);
	if (next == NULL)
		return; /* the workers stay as they are */
	for (k = 0; k < API__MAX; k++)
		if (!(api_cfg_keys[k].flags & CFG_RELOADABLE) &&
		    cfg_differs(m->cfg, next, k))
			log_msg(LOG_WARN,
			        "config: %s changed; it takes effect after a restart",
			        api_cfg_keys[k].name);
	master_retire_all(m);
	cfg_free(m->cfg);
	m->cfg = next;
	auth_job_keys_load(m->cfg);
	log_set_level((enum log_level)cfg_int(m->cfg, API_LOG_LEVEL));
	master_resize(m, (size_t)cfg_int(m->cfg, API_WORKERS));
	for (k = 0; k < m->nslots; k++)
		m->slots[k] = (struct slot){false, 0, 0};
	log_msg(LOG_INFO, "configuration reloaded; replacing workers");
}

/* Start due workers, kill overdue retirees; return µs until the next deadline. */
static uint64_t
master_tick(struct master *m)
{
	uint64_t now = util_now_us(), next = 1000000u;
	size_t i;

	for (i = 0; !m->stopping && i < m->nslots; i++) {
		if (m->slots[i].filled)
			continue;
		if (m->slots[i].respawn_us <= now)
			master_spawn(m, i);
		else if (m->slots[i].respawn_us - now < next)
			next = m->slots[i].respawn_us - now;
	}
	for (i = 0; i < m->nkids; i++) {
		if (m->kids[i].kill_at_us == 0)
			continue;
		if (m->kids[i].kill_at_us <= now) {
			log_msg(LOG_WARN,
			        "worker pid %d did not finish in time; killing it",
			        (int)m->kids[i].pid);
			kill(m->kids[i].pid, SIGKILL);
			m->kids[i].kill_at_us = UINT64_MAX;
		} else if (m->kids[i].kill_at_us - now < next) {
			next = m->kids[i].kill_at_us - now;
		}
	}
	return next;
}

void
master_block_signals(void)
{
	sigemptyset(&master_sigs);
	sigaddset(&master_sigs, SIGCHLD);
	sigaddset(&master_sigs, SIGTERM);
	sigaddset(&master_sigs, SIGINT);
	sigaddset(&master_sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &master_sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int
master_run(struct cfg *cfg, const char *cfg_path, bool cfg_required, int listen_fd)
{
	struct master m = {cfg,  cfg_path, cfg_required, listen_fd, NULL, 0,
	                   NULL, 0,        false};
	struct timespec ts;
	uint64_t wait_us;
	int sig;

	shm_init();
	checks_init();
	auth_job_keys_load(cfg);
	master_resize(&m, (size_t)cfg_int(cfg, API_WORKERS));
	log_msg(LOG_INFO, "assay-api %s starting %zu workers", PACKAGE_VERSION, m.nslots);
	while (!m.stopping || m.nkids > 0) {
		wait_us = master_tick(&m);
		ts.tv_sec = (time_t)(wait_us / 1000000u);
		ts.tv_nsec = (long)(wait_us % 1000000u) * 1000;
		sig = sigtimedwait(&master_sigs, NULL, &ts);
		switch (sig) {
		case SIGCHLD:
			master_reap(&m);
			break;
		case SIGHUP:
			if (!m.stopping)
				master_reload(&m);
			break;
		case SIGTERM:
		case SIGINT:
			if (!m.stopping) {
				log_msg(LOG_INFO,
				        "signal %d: stopping after in-flight requests",
				        sig);
				master_retire_all(&m);
				m.stopping = true;
			}
			break;
		default:
			break; /* timeout or EINTR: tick again */
		}
	}
	log_msg(LOG_INFO, "all workers stopped; exiting");
	free(m.kids);
	free(m.slots);
	cfg_free(m.cfg);
	return 0;
}
