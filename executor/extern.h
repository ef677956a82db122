/*
 * Internals of assay-executor, the daemon that runs analyses. One thread,
 * one poll(2) loop (main.c): it claims pending runs from PostgreSQL (jobs.c),
 * has each run in a forked, sandboxed child and reads the child's JSON lines
 * over a pipe (bridge.c); its counters are served as /metrics (stats.c). The children are
 * forked by assay-sandbox (zygote.c), a small helper the executor starts and talks to
 * over a socket (sandbox.c): a process that never holds the executor's memory,
 * connections or secrets, with the script engine already initialised, so that each child
 * starts cheaply and copies only what its script touches. Nothing here speaks to clients;
 * runs and their events live in the database only.
 */
#ifndef ASSAY_EXECUTOR_EXTERN_H
#define ASSAY_EXECUTOR_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
	EX_NODE_PATH,
	EX_SANDBOX_USER,
	EX_EVENT_MAX,
	EX_PROGRESS_INTERVAL_MS,
	EX__MAX
};
extern const struct cfg_key ex_cfg_keys[EX__MAX];
#define EX_CONF_FILE SYSCONFDIR "/assay/executor.conf"

/* Where a script runs: Duktape in the child, or a node process. */
enum runtime { RT_JS, RT_NODE, RT__MAX };

/* What the sandboxed child needs to run one job. */
struct job_spec {
	enum runtime runtime;
	char *script;      /* the child rewrites `export default` in place */
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
	enum runtime runtime;
	unsigned child; /* its sandbox child's number; 0 before it starts */
	bool ended;     /* the child has exited (or never started) */
	int fd;         /* the bridge pipe, read end */
	char *line;     /* partial line from the child */
	size_t linelen;
	size_t output; /* bytes received so far */
	uint64_t started_us, deadline_us, kill_at_us;
	unsigned events;                            /* written for this attempt */
	char *progress;                             /* coalesced, not yet written */
	uint64_t progress_due_us, progress_last_us; /* when it may be */
	char *result;                               /* JSON text of the return value */
	char *error;                                /* why the attempt failed */
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
/* Record the end of an attempt: completed, canceled, retried or failed.
 * An outcome PostgreSQL refuses (a result it cannot store) is recorded as
 * a failure instead, saying so; the return says what became of it. */
enum job_record { JOB_RECORDED, JOB_LOST, JOB_REFUSED, JOB_UNRECORDED };
enum job_record jobs_finish(struct db *, struct mc *, const char *worker, struct job *);
/* Put a claimed job back untouched (shutdown): no attempt is charged. */
void jobs_release(struct db *, struct mc *, const char *worker, struct job *);
void job_free(struct job *);

/*
 * Between the executor and assay-sandbox: SOCK_SEQPACKET messages. RUN
 * carries two descriptors: the write end of the child's bridge pipe and a
 * memfd holding the script and the input, each NUL-terminated. Children are
 * named by the executor's number, never by pid, so a late KILL cannot hit
 * a reused pid: the sandbox ignores numbers it has already reaped.
 */
enum sbx_op { SBX_READY, SBX_RUN, SBX_KILL, SBX_EXITED };
/* READY's status: how contained its children are (sandbox-user.c,
 * sandbox-ns.c). Runtime "node" needs both. */
enum sbx_feature { SBX_OWN_USER = 1, SBX_NAMESPACES = 2 };
struct sbx_msg {
	uint32_t op, child;
	int32_t status;     /* KILL: the signal; EXITED: wait status, or -errno
	                       when the child could not be forked; READY: the
	                       SBX_* features */
	int32_t memory_mb;  /* RUN */
	int64_t timeout_ms; /* RUN */
	int32_t runtime;    /* RUN: enum runtime */
	int32_t unused;
};

/* sandbox.c, in the executor; one assay-sandbox per executor.
 * sbx_open starts it (program: its path; node: the node binary for runtime
 * "node", or NULL; user: sandbox_user) and returns the socket to poll,
 * or -1 (also what sbx_fd says while none runs). sbx_run asks for a child
 * and returns the read end of its bridge, or -1. sbx_next reads what the
 * sandbox said: 1 when *child has exited with wait *status, 0 when nothing
 * more is to be read now, -1 when assay-sandbox itself is gone, and its
 * children with it (sbx_open starts a new one). */
int sbx_open(const char *program, const char *node, const char *user);
int sbx_fd(void);
/* NULL when runs of rt can start in the running assay-sandbox, else why
 * not; sbx_weakness: NULL when its children are fully contained, else what
 * they lack (static strings). */
const char *sbx_refusal(enum runtime rt);
const char *sbx_weakness(void);
int sbx_run(unsigned child, const struct job_spec *);
void sbx_kill(unsigned child, int sig);
int sbx_next(unsigned *child, int *status);
void sbx_close(void);

/* The executor: its configuration, connections, running jobs, counters.
 * One per process (main.c); bridge.c and stats.c take it as an argument. */
#define MAX_JOBS         1024
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
	struct mc *mc;             /* the API's cache, told of every change of a run */
	struct pg_conn *listening; /* the connection our LISTENs were issued on */
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
long ex_int(const struct ex *, enum ex_key);

/* bridge.c: the child's output. bridge_read takes what the child's pipe
 * holds (closing it at its end), bridge_progress writes a coalesced
 * progress event if one waits, bridge_outcome says why the attempt failed
 * from the child's wait status (status < 0: it could not be forked). */
void bridge_read(struct ex *, struct job *);
void bridge_progress(struct ex *, struct job *);
void bridge_outcome(struct job *, int status);

/* stats.c: /metrics. stats_count counts a finished attempt; stats_write
 * writes the counters and the queue depth (one query). */
void stats_count(struct ex *, const struct job *);
void stats_write(struct ex *, FILE *);

/* In assay-sandbox. When it starts: sbx_user makes it the sandbox user
 * (true) or leaves it who it is (false, logged); sbx_ns_probe says whether
 * children get their namespaces. sbx_ns_fork makes a child (in new
 * namespaces where they work), which then applies, in this order:
 * sbx_ns_enter (node: the node binary, whose files it needs; NULL for
 * "js"; it returns in the job's own process, its init staying behind),
 * sbx_rlimits, sbx_seccomp. sbx_drop_caps empties every
 * capability set. sbx_seccomp_prepare builds the filter once, at start. */
bool sbx_user(const char *name);
bool sbx_drop_caps(void);
bool sbx_ns_probe(const char *node);
pid_t sbx_ns_fork(void);
bool sbx_ns_enter(const char *node);
/* First thing in a new child: block the signals its init will take. */
void sbx_ns_block(void);
/* A child's wait status as its job ended (its init exits 128 + signal). */
int sbx_ns_status(int status);
bool sbx_rlimits(const struct job_spec *);
bool sbx_seccomp_prepare(void);
bool sbx_seccomp(enum runtime);
/* js.c: js_prepare creates the engine once, before any fork; js_run runs
 * the analysis in this (sandboxed) child, writing JSON lines to fd. */
bool js_prepare(void);
void js_run(const struct job_spec *, int fd) __attribute__((noreturn));
/* node.c: node_exec execs node (the binary) on the job, with the bridge
 * on fd 3 and the job (script NUL input NUL) on fd 4. It only returns on
 * failure. */
void node_exec(const char *node, const struct job_spec *);

#endif
