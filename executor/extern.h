/*
 * Internals of assay-executor, the daemon that runs analyses. One thread,
 * one poll(2) loop (main.c): it claims pending runs from PostgreSQL, tenants
 * in turn (jobs.c), and hands each to a warm worker: a sandboxed child that
 * serves one tenant and one runtime, runs its jobs one at a time, each in a
 * fresh engine, and is reused until worker_max_jobs or worker_idle_seconds
 * (main.c). Jobs and the script's output travel over the worker's bridge,
 * a socket carrying JSON lines both ways (bridge.c); outcomes and events
 * are written in batches (jobs.c); due schedules make runs (schedule.c);
 * counters are served as /metrics
 * (stats.c). Workers are forked by assay-sandbox (zygote.c), a small helper
 * the executor starts and talks to over a socket (sandbox.c): a process
 * that never holds the executor's memory, connections or secrets. Nothing
 * here speaks to clients; runs and their events live in the database only.
 */
#ifndef ASSAY_EXECUTOR_EXTERN_H
#define ASSAY_EXECUTOR_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
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
	EX_RESULT_INLINE_MAX,
	EX_LOG_LEVEL,
	EX_MEMCACHED_SERVERS,
	EX_NODE_PATH,
	EX_SANDBOX_USER,
	EX_EVENT_MAX,
	EX_PROGRESS_INTERVAL_MS,
	EX_WORKER_MAX_JOBS,
	EX_WORKER_IDLE_SECONDS,
	EX_WH_CONCURRENT,
	EX_WH_TIMEOUT_MS,
	EX_WH_SCHEDULE,
	EX_WH_ALLOW,
	EX_OB_FAILURES,
	EX_OB_RECOVERY_MS,
	EX_OB_SUCCESSES,
	EX_API_URL,
	EX_JOB_TOKEN_KEY_FILE,
	EX_JOB_CALLS_MAX,
	EX_TIER_RUNNING, /* TIER_COUNT keys: [tiers] <tier>_max_running */
	EX_TIER_RESULT = EX_TIER_RUNNING + 3, /* [tiers] <tier>_result_max_bytes */
	EX__MAX = EX_TIER_RESULT + 3
};
#define TIER_COUNT 3 /* free, pro, enterprise: assay_claim's caps, in order */
extern const struct cfg_key ex_cfg_keys[EX__MAX];
#define EX_CONF_FILE SYSCONFDIR "/assay/executor.conf"

/* Where a script runs: Duktape in the child, or a node process. */
enum runtime { RT_JS, RT_NODE, RT__MAX };

/* What a sandboxed worker is made for: its runtime and limits. Every job
 * it is given has these limits (main.c keys workers by them). */
struct job_spec {
	enum runtime runtime;
	long timeout_ms; /* of one job; the wall clock is the executor's */
	long memory_mb;  /* of one job: its engine's budget */
	long max_jobs;   /* jobs it may run (its CPU-time backstop counts them);
	                    set by the executor for a worker, unused for a job */
};

/*
 * The bridge: a SOCK_STREAM socket between the executor and a worker
 * (descriptor 3 in the worker), carrying JSON lines both ways.
 *   executor -> worker
 *     {"type":"job","memory_mb":N,"nonce":"...","script":"...","input":JSON}
 *         one job; the next is sent only after its "result". The nonce is
 *         the runtime's alone (never the script's): it goes in the result
 *         line, so that a script that writes to the bridge itself cannot
 *         end its job early and stay on to see the tenant's next one
 *     {"type":"check", ...the same members}
 *         a job that only compiles the script, in a fresh engine, never
 *         running any of it; its result's value is {"ok":true} or
 *         {"ok":false,"message":"...","line":L,"column":C} (line and
 *         column when the engine gives them), and only a "result" or an
 *         "error" line may answer it
 *     {"type":"reply","id":N,"result":JSON} or {..."error":"message"}
 *         the answer to a call
 *   worker -> executor, while it runs a job
 *     {"type":"log","level":"...","message":"..."}
 *     {"type":"progress","percent":N,"message":"..."}
 *     {"type":"emit","event":"...","data":JSON}
 *     {"type":"call","id":N,"method":"...","params":JSON}
 *         a request the executor answers with a reply of the same id:
 *         files.read {path}, files.list {prefix}, files.search {query},
 *         fetch {path, method, body} (calls.c performs them)
 *     {"type":"result","value":JSON,"nonce":"..."}
 *         the job completed; the worker waits for the next, in a fresh
 *         engine (a result without the job's nonce kills the worker)
 *     {"type":"error","message":"...","stack":"..."}
 *         the job failed; the worker exits (never reused after a failure)
 * A line from a worker that runs no job is a breach: the worker is killed.
 * End of file from the executor: the worker exits.
 */
#define BRIDGE_FD 3

/* A running worker, as the executor sees it (main.c). */
struct worker {
	unsigned child; /* its number with assay-sandbox */
	long tenant;
	struct job_spec spec;
	int fd;   /* the bridge; -1 once it ended */
	char *in; /* partial line from the worker */
	size_t inlen;
	char *out; /* what waits to be written to it */
	size_t outlen, outoff;
	struct job *job; /* the job it runs, or NULL: idle */
	unsigned jobs;   /* given so far */
	uint64_t idle_since_us;
	bool doomed; /* killed, or retired: never given a job again */
};

/* One claimed run. */
struct job {
	char id[40];
	char project[24];
	char nonce[24]; /* of this attempt: its result line must carry it */
	long tenant;
	int attempts, max_attempts;
	char *script, *input;
	struct job_spec spec;
	struct worker *worker;          /* the worker running it; NULL when not (yet) */
	unsigned worker_no, worker_job; /* its number, and which of its jobs */
	bool ended;                     /* its outcome is known */
	size_t output;                  /* bytes received so far */
	uint64_t started_us, deadline_us, kill_at_us;
	unsigned events;                            /* written for this attempt */
	char *progress;                             /* coalesced, not yet written */
	uint64_t progress_due_us, progress_last_us; /* when it may be */
	char *result;                               /* JSON text of the return value */
	struct rstore *store; /* a large result being read (results.c) */
	long long stored;     /* bytes of the large result stored, or 0 */
	char sha256[65];      /* of the stored result, in hex */
	char *token;          /* its job token (calls.c), or NULL */
	struct call *calls;   /* its calls to the API in flight */
	unsigned api_calls;   /* made so far */
	char *error;          /* why the attempt failed */
	bool canceled, timed_out, too_large, lost;
	bool check; /* a check of the script (checks.c), not a run: id is the
	               check's; it is compiled, never run */
};

/*
 * jobs.c: the job table. All return false after logging a database
 * failure. Every change of a run's state also makes the API's cache
 * forget that run (mc may be NULL: no cache).
 */
struct mc;
bool jobs_heartbeat(struct db *, const char *worker, int lease_s, struct job *const *,
                    size_t n);
int jobs_recover(struct db *, struct mc *);
/* Events wait in a batch written by jobs_flush_events, in order; a job's
 * events are always written before its outcome. */
void jobs_event(const struct job *, const char *type, const char *data_json);
void jobs_flush_events(struct db *);
/* One round trip: record the ends of jobs[0..n) (completed, canceled,
 * retried or failed, each only while this executor holds its lease; rec[i]
 * says what became of jobs[i]), then claim up to want runs into out,
 * tenants in turn, each tier within its cap of running jobs across all
 * executors (caps: TIER_COUNT numbers); returns how many were claimed. An
 * outcome PostgreSQL refuses (a result it cannot store) is recorded as a
 * failure instead, saying so. */
enum job_record { JOB_RECORDED, JOB_LOST, JOB_REFUSED, JOB_UNRECORDED };
int jobs_settle(struct db *, struct mc *, const char *worker, struct job **jobs, size_t n,
                enum job_record *rec, int want, int lease_s, const long *caps,
                struct job **out);
/* Put a claimed job back untouched (shutdown): no attempt is charged. */
void jobs_release(struct db *, struct mc *, const char *worker, struct job *);
void job_free(struct job *);

/*
 * Between the executor and assay-sandbox: SOCK_SEQPACKET messages. RUN
 * starts a worker and carries one descriptor: the worker's end of its
 * bridge. Workers are named by the executor's number, never by pid, so a
 * late KILL cannot hit a reused pid: the sandbox ignores numbers it has
 * already reaped.
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
	int32_t max_jobs;   /* RUN */
};

/* sandbox.c, in the executor; one assay-sandbox per executor.
 * sbx_open starts it (program: its path; node: the node binary for runtime
 * "node", or NULL; user: sandbox_user) and returns the socket to poll,
 * or -1 (also what sbx_fd says while none runs). sbx_run starts a worker
 * and returns the executor's end of its bridge (non-blocking), or -1.
 * sbx_next reads what the sandbox said: 1 when *child has exited with wait
 * *status, 0 when nothing more is to be read now, -1 when assay-sandbox
 * itself is gone, and its children with it (sbx_open starts a new one).
 * sbx_job_frame is the bridge line that gives a worker a job, or a check
 * (malloc'd). */
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
char *sbx_job_frame(bool check, const char *script, const char *input, long memory_mb,
                    const char *nonce, size_t *len);

/* The executor: its configuration, connections, workers, running jobs,
 * counters. One per process (main.c); bridge.c and stats.c take it as an
 * argument. */
#define MAX_JOBS 1024
#define WH_FDS   1032 /* the outbound client's: max_concurrent and a few */
#define CALL_FDS 64   /* the API client's */
enum { CLIENT_WEBHOOKS, CLIENT_API, CLIENT__MAX };
#define DURATION_BUCKETS 14
enum { REASON__MAX = 8 };

struct ex {
	struct cfg *cfg;
	const char *cfg_path;
	bool cfg_required;
	char sandbox[4096]; /* the assay-sandbox program */
	const char *node;   /* node_path, or NULL: no runtime "node" */
	unsigned children;  /* numbers the workers: the last one used */
	struct db *db;
	struct mc *mc; /* the API's cache, told of every change of a run (buffered) */
	struct wh *wh; /* webhook deliveries (webhook.c) */
	struct sched *sched; /* schedules (schedule.c) */
	struct calls *calls; /* scripts' calls to the API (calls.c) */
	/* Their outbound clients, in the loop's poll (main.c). */
	struct ob *clients[CLIENT__MAX];
	bool mc_was_up;
	struct pg_conn *listening; /* the connection our LISTENs were issued on */
	char worker[96];
	struct job *jobs[MAX_JOBS];
	size_t njobs;
	struct worker *workers[MAX_JOBS];
	size_t nworkers;
	struct job *done[MAX_JOBS]; /* ended, their outcome not yet written */
	size_t ndone;
	struct job *checked[MAX_JOBS]; /* checks ended, not yet answered */
	size_t nchecked;
	bool check_wake;         /* checks may wait (a NOTIFY) */
	unsigned long checks[3]; /* answered: ok, does not compile, unavailable */
	int sig_fd, http_fd;
	bool stopping, wake;
	uint64_t stop_at_us, next_poll_us, next_beat_us;
	unsigned long claimed, completed, failed, retried, canceled, recovered, processed;
	unsigned long workers_started, flushes;
	unsigned long reasons[REASON__MAX];           /* failed attempts by why */
	unsigned long duration[DURATION_BUCKETS + 1]; /* attempts by duration bucket */
	double duration_sum;
};
long ex_int(const struct ex *, enum ex_key);
/* Signal the worker of a job (main.c); it is never reused after. */
void ex_kill(struct job *, int sig);

/* bridge.c: a worker's side of the bridge. bridge_read takes what the
 * worker sent and returns the job whose result arrived (then no longer the
 * worker's), else NULL; at the end of the bridge it closes it. bridge_write
 * writes what waits for the worker (bridge_send queues it), without
 * blocking. bridge_progress writes a coalesced progress event if one waits,
 * bridge_outcome says why the attempt failed from the worker's wait status
 * (status < 0: it could not be forked). */
struct job *bridge_read(struct ex *, struct worker *);
void bridge_send(struct worker *, const char *text, size_t len);
void bridge_write(struct worker *);
void bridge_progress(struct ex *, struct job *);
void bridge_outcome(struct job *, int status);

/* results.c: large results, written to PostgreSQL piece by piece as they
 * are read (sql/0012_results.sql). bridge.c calls results_start when the
 * line of j's result turns out longer than result_inline_max, then
 * results_feed with its bytes (after {"type":"result","value":) as they
 * come, then results_finish at its end: true when the result is stored
 * (j->stored and j->sha256 say what), false when the attempt failed (j's
 * error says why and its worker is killed; so it is when results_start
 * returns false or anything failed on the way). results_free frees what a
 * job that ended while its result was read left. */
#define RESULT_LINE_HEAD "{\"type\":\"result\",\"value\":"
struct rstore;
bool results_start(struct ex *, struct job *);
void results_feed(struct ex *, struct job *, const char *p, size_t n);
bool results_finish(struct ex *, struct job *);
void results_free(struct rstore *);
/* What is wrong with the limits of results of a configuration (static
 * text), or NULL: result_inline_max may not exceed a tier's
 * result_max_bytes. */
const char *results_config_error(const struct cfg *);

/* webhook.c: deliveries of run webhooks from the outbox. wh_config_error
 * says what is wrong with the [webhooks] keys of a configuration (static
 * text), or NULL. wh_start makes the outbound client (false: it cannot),
 * wh_reload gives it the reloaded configuration's timings;
 * wh_wake says deliveries may be due (a NOTIFY); wh_tick records the
 * attempts that ended and takes due deliveries while there is room, in one
 * statement; wh_metrics writes its counters and the client's. */
const char *wh_config_error(const struct cfg *);
bool wh_start(struct ex *);
void wh_reload(struct ex *);
void wh_stop(struct ex *);
void wh_wake(struct ex *);
void wh_tick(struct ex *, uint64_t now);
void wh_metrics(struct ex *, FILE *);

/* schedule.c: firing due schedules. sched_start sets it up (false: it
 * cannot); sched_wake says a schedule changed (a NOTIFY); sched_tick beats
 * the executors' clock and fires what is due, when it is time to, and
 * returns when it next wants to be called (util_now_us time);
 * sched_metrics writes its counters. */
bool sched_start(struct ex *);
void sched_stop(struct ex *);
void sched_wake(struct ex *);
uint64_t sched_tick(struct ex *, uint64_t now);
void sched_metrics(struct ex *, FILE *);

/* calls.c: scripts' calls to the API. calls_start makes its client and
 * reads the job token keys (false: no client); calls_token gives a job
 * that starts its token; calls_handle performs a "call" line of j's worker
 * and answers it with a reply line when done; calls_forget, when j ends,
 * leaves its calls in flight to be answered to nobody; calls_metrics
 * writes its client's counters. */
struct call;
bool calls_start(struct ex *);
void calls_stop(struct ex *);
void calls_token(struct ex *, struct job *);
struct json_object;
void calls_handle(struct ex *, struct job *, struct json_object *call);
void calls_forget(struct job *);
void calls_metrics(struct ex *, FILE *);

/* checks.c: checks of scripts (sql/0014_check.sql), each a job of a
 * worker of its tenant and runtime that compiles the script and answers
 * within CHECK_TIMEOUT_MS. checks_take claims waiting checks into
 * ex->jobs (when ex->check_wake); checks_done keeps an ended check's
 * answer; checks_flush sends the answers kept, in one statement;
 * checks_metrics writes how many were answered, by answer. */
#define CHECK_TIMEOUT_MS 3000
void checks_take(struct ex *);
void checks_done(struct ex *, struct job *);
void checks_flush(struct ex *);
void checks_metrics(struct ex *, FILE *);

/* stats.c: /metrics. stats_count counts a finished attempt; stats_write
 * writes the counters and the queue depth (one query). */
void stats_count(struct ex *, const struct job *);
void stats_write(struct ex *, FILE *);

/* In assay-sandbox. When it starts: sbx_user makes it the sandbox user
 * (true) or leaves it who it is (false, logged); sbx_ns_probe says whether
 * children get their namespaces. sbx_ns_fork makes a child (in new
 * namespaces where they work), which then applies, in this order:
 * sbx_ns_enter (node: the node binary, whose files it needs; NULL for
 * "js"; it returns in the worker's own process, its init staying behind),
 * sbx_rlimits, sbx_seccomp. sbx_drop_caps empties every
 * capability set. sbx_seccomp_prepare builds the filter once, at start. */
bool sbx_user(const char *name);
bool sbx_drop_caps(void);
bool sbx_ns_probe(const char *node);
pid_t sbx_ns_fork(void);
bool sbx_ns_enter(const char *node);
/* First thing in a new child: block the signals its init will take. */
void sbx_ns_block(void);
/* A child's wait status as its worker ended (its init exits 128 + signal). */
int sbx_ns_status(int status);
bool sbx_rlimits(const struct job_spec *);
bool sbx_seccomp_prepare(void);
bool sbx_seccomp(enum runtime);
/* js.c: js_serve runs jobs from the bridge (fd) in this sandboxed worker,
 * each in a new global environment of one Duktape heap, within its memory
 * budget, until the bridge ends or a job fails. */
void js_serve(const struct job_spec *, int fd) __attribute__((noreturn));
/* node.c: node_exec execs node (the binary) as a worker, with the bridge
 * on BRIDGE_FD. It only returns on failure. */
void node_exec(const char *node, const struct job_spec *);

#endif
