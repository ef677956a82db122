/*
 * Internals of assay-executor, the daemon that runs analyses. One thread,
 * one poll(2) loop (main.c): it claims pending runs from PostgreSQL (jobs.c),
 * runs each in a forked, sandboxed child (sandbox*.c, js.c) and reads the
 * child's JSON lines over a pipe. Nothing here speaks to clients; runs and
 * their events live in the database only.
 */
#ifndef ASSAY_EXECUTOR_EXTERN_H
#define ASSAY_EXECUTOR_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cfg.h"

struct db;

enum ex_key {
	EX_DATABASE_URL,
	EX_LISTEN_ADDRESS,
	EX_PORT,
	EX_POLL_INTERVAL_MS,
	EX_MAX_CONCURRENT,
	EX_LEASE_SECONDS,
	EX_SHUTDOWN_GRACE,
	EX_CANCEL_GRACE_MS,
	EX_OUTPUT_MAX,
	EX_RESULT_MAX,
	EX_LOG_LEVEL,
	EX_MEMCACHED_SERVERS,
	EX__MAX
};
extern const struct cfg_key ex_cfg_keys[EX__MAX];
#define EX_CONF_FILE SYSCONFDIR "/assay/executor.conf"

/* What the sandboxed child needs to run one job. */
struct job_spec {
	const char *script;
	const char *input; /* JSON text */
	long timeout_ms;
	long memory_mb;
};

/* One claimed run. */
struct job {
	char id[40];
	char project[24];
	int attempts, max_attempts;
	char *script, *input;
	long timeout_ms, memory_mb;
	pid_t pid;
	int fd;     /* the bridge pipe, read end */
	char *line; /* partial line from the child */
	size_t linelen;
	size_t output; /* bytes received so far */
	uint64_t started_us, deadline_us, kill_at_us;
	char *result; /* JSON text of the return value */
	char *error;  /* why the attempt failed */
	bool canceled, timed_out, too_large, lost;
};

/*
 * jobs.c: the job table. All return false after logging a database
 * failure. Every change of a run's state also makes the API's cache
 * forget that run (mc may be NULL: no cache).
 */
struct mc;
int jobs_claim(struct db *, struct mc *, const char *worker, int n, int lease_s,
               struct job **out);
bool jobs_heartbeat(struct db *, const char *worker, int lease_s, struct job *const *,
                    size_t n);
int jobs_recover(struct db *, struct mc *);
bool jobs_event(struct db *, const struct job *, const char *type, const char *data_json);
/* Record the end of an attempt: completed, canceled, retried or failed. */
void jobs_finish(struct db *, struct mc *, const char *worker, struct job *);
/* Put a claimed job back untouched (shutdown): no attempt is charged. */
void jobs_release(struct db *, struct mc *, const char *worker, struct job *);
void job_free(struct job *);

/* sandbox.c: fork a child that runs spec under limits; returns its pid and the
 * read end of its pipe in *fd, or -1. */
pid_t sbx_spawn(const struct job_spec *, int *fd);
/* sandbox-rlimit.c, sandbox-seccomp.c: applied in the child, in this order.
 * sbx_seccomp_prepare builds the filter once, in the executor, at start. */
bool sbx_rlimits(const struct job_spec *);
bool sbx_seccomp_prepare(void);
bool sbx_seccomp(void);
/* js.c: run the analysis in this (sandboxed) process, writing JSON lines to fd. */
void js_run(const struct job_spec *, int fd) __attribute__((noreturn));

#endif
