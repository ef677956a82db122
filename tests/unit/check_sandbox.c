/*
 * Unit tests for the executor's sandbox: through a real assay-sandbox, a
 * script's result comes back over the bridge and children are killed by
 * number; the seccomp filter kills a process that makes a syscall outside
 * the allowlist; the resource limits hold; a child in its namespaces is
 * alone, unprivileged, without the host's files or abstract sockets.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extern.h"
#include "unit.h"

/* Start a js worker of assay-sandbox as child number *serial. */
static int
worker(unsigned serial, long memory_mb, long max_jobs)
{
	struct job_spec spec = {RT_JS, 5000, memory_mb, max_jobs};
	int fd;

	ck_assert_int_ge(sbx_open(SANDBOX_PROGRAM, NULL, "assay-sandbox"), 0);
	fd = sbx_run(serial, &spec);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, 0), 0); /* this test may block */
	return fd;
}

/* Give the worker on fd a job, or a check; return what it wrote up to
 * and including its result line, or to its end. */
static char *
job_of(int fd, bool check, const char *script, const char *input)
{
	static char out[4096];
	size_t len = 0, flen;
	char *frame = sbx_job_frame(check, script, input, 64, "n0nce", &flen);
	ssize_t n;

	out[0] = '\0';
	ck_assert_int_eq(write(fd, frame, flen), (ssize_t)flen);
	free(frame);
	while ((strstr(out, "\"type\":\"result\"") == NULL || out[len - 1] != '\n') &&
	       (n = read(fd, out + len, sizeof out - 1 - len)) > 0) {
		len += (size_t)n;
		out[len] = '\0';
	}
	out[len] = '\0';
	return out;
}

static char *
job(int fd, const char *script, const char *input)
{
	return job_of(fd, false, script, input);
}

/* The end of worker serial: its wait status. */
static int
ended(unsigned serial)
{
	struct pollfd pfd = {sbx_fd(), POLLIN, 0};
	unsigned child;
	int status;

	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert_int_eq(sbx_next(&child, &status), 1);
	ck_assert_uint_eq(child, serial);
	return status;
}

/* Run the script in a worker of its own; return its bridge output and
 * exit status. */
static char *
run(const char *script, long memory_mb, int *status)
{
	static unsigned serial;
	int fd = worker(++serial, memory_mb, 1);
	char *out = job(fd, script, "{\"n\":2}");

	close(fd); /* the end of the bridge ends a worker */
	*status = ended(serial);
	return out;
}

START_TEST(result_over_the_bridge)
{
	int status;
	char *out =
	    run("function analyze(i, ctx) { ctx.log('info', 'hi'); return i.n * 21; }",
	        64, &status);

	ck_assert_msg(
	    strstr(out, "{\"type\":\"log\",\"level\":\"info\",\"message\":\"hi\"}\n") !=
	        NULL,
	    "%s", out);
	ck_assert_msg(
	    strstr(out, "{\"type\":\"result\",\"value\":42,\"nonce\":\"n0nce\"}\n") !=
	        NULL,
	    "%s", out);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(script_errors_are_reported)
{
	int status;
	char *out = run("function analyze() { null.x; }", 64, &status);

	ck_assert_msg(strstr(out, "\"type\":\"error\"") != NULL &&
	                  strstr(out, "TypeError"),
	              "%s", out);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}
END_TEST

/* A script that wants all the memory there is. */
static const char greedy[] =
    "function analyze() { var a = []; for (;;) a.push(new Uint8Array(1 << 20)); }";

START_TEST(memory_limit_holds)
{
	int status;
	char *out = run(greedy, 48, &status);

	ck_assert_msg(strstr(out, "memory limit") != NULL, "%s", out);
}
END_TEST

/* What a job writes: a log line at level info, its result. */
#define LOG(message)  "{\"type\":\"log\",\"level\":\"info\",\"message\":\"" message "\"}\n"
#define RESULT(value) "{\"type\":\"result\",\"value\":" value ",\"nonce\":\"n0nce\"}\n"

/* Jobs given in turn to one worker (serial), which then ends well: each
 * must write just what it wants, or end with it. */
struct turn {
	const char *script, *input, *want;
	bool ends; /* want is how what it writes ends */
};

static void
in_turn(unsigned serial, const struct turn *t, size_t n)
{
	int fd = worker(serial, 64, 5), status;
	size_t i, len;
	char *out;

	for (i = 0; i < n; i++) {
		out = job(fd, t[i].script, t[i].input);
		len = strlen(out);
		if (t[i].ends && len > strlen(t[i].want))
			out += len - strlen(t[i].want);
		ck_assert_msg(strcmp(out, t[i].want) == 0, "job %zu: %s", i, out);
	}
	close(fd);
	status = ended(serial);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A worker runs job after job, each in a fresh engine: nothing a job
 * sets, rewrites or leaves behind is seen by the next. */
START_TEST(each_job_starts_from_a_fresh_world)
{
	static const struct turn t[] = {
	    {"var seen = 0; function analyze(i) { leaked = 'yes'; "
	     "Array.prototype.push = function () { return 'hijacked'; }; "
	     "Object.prototype.extra = 1; return [].push(1); }",
	     "null", RESULT("\"hijacked\""), false},
	    {"function analyze(i) { return [typeof leaked, [].push(1), "
	     "typeof seen, ({}).extra === undefined, i.n]; }",
	     "{\"n\":7}", RESULT("[\"undefined\",1,\"undefined\",true,7]"), false},
	};

	in_turn(100, t, 2);
}
END_TEST

/* A job's memory budget holds inside a reused worker: a job may use
 * most of it, the next may too; one that wants more fails as it would in
 * a new worker, which then exits. */
START_TEST(memory_budget_is_per_job)
{
	static const char hog[] = "function analyze() { var a = []; for (var k = 0; k < "
	                          "40; k++) a.push(new Uint8Array(1 << 20)); return "
	                          "a.length; }";
	int fd = worker(101, 64, 5), k, status;
	char *out;

	for (k = 0; k < 3; k++)
		ck_assert_msg(strstr(job(fd, hog, "null"), "\"value\":40,") != NULL,
		              "job %d", k);
	out = job(fd, greedy, "null");
	ck_assert_msg(strstr(out, "{\"type\":\"error\",\"message\":\"memory limit\",") ==
	                  out,
	              "%s", out);
	close(fd);
	status = ended(101);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}
END_TEST

/* Hooks and finalizers stay with their job. A finalizer runs in its job's
 * time, before its result, in the heap's base world, which is frozen whole
 * (its global object, the heap's first thread, the built-ins they and new
 * objects lead to): it can leave nothing there for the next job's
 * finalizers. Finalizers that keep making objects with finalizers end
 * with their job too: the worker's heap is destroyed (its last rounds of
 * them told so) and made anew rather than let them run in the next job's
 * time. */
START_TEST(hooks_and_finalizers_stay_with_their_job)
{
	static const struct turn t[] = {
	    {"function analyze(i, ctx) { Duktape.errCreate = function (e) { "
	     "e.tagged = 1; return e; }; kept = {}; Duktape.fin(kept, function () { "
	     "this.leaked = 1; Object.getPrototypeOf({}).polluted = 1; "
	     "Duktape.Thread.current().mark = 1; Function('return "
	     "this')().Duktape.errCreate = Duktape.errCreate; ctx.log('finalized'); "
	     "}); return new Error('x').tagged; }",
	     "null", LOG("finalized") RESULT("1"), false},
	    {"function analyze(i, ctx) { kept = {}; Duktape.fin(kept, function () { "
	     "ctx.log([typeof this.leaked, typeof ({}).polluted, typeof "
	     "Duktape.Thread.current().mark, new Error('x').tagged].join()); }); "
	     "return [typeof Duktape.errCreate, new Error('x').tagged, typeof "
	     "leaked]; }",
	     "null",
	     LOG("undefined,undefined,undefined,")
	         RESULT("[\"undefined\",null,\"undefined\"]"),
	     false},
	    {"function analyze(i, ctx) { kept = {}; Duktape.fin(kept, function () { "
	     "'use strict'; var seen = [], open = 0; function walk(o) { if (Object(o) "
	     "!== o || seen.indexOf(o) >= 0) return; seen.push(o); if "
	     "(!Object.isFrozen(o)) open++; Reflect.ownKeys(o).forEach(function (k) { "
	     "var d = Object.getOwnPropertyDescriptor(o, k); walk(d.value); "
	     "walk(d.get); walk(d.set); }); walk(Object.getPrototypeOf(o)); } "
	     "walk(Function('return this')()); walk(Duktape.Thread.current()); "
	     "walk(Object.getOwnPropertyDescriptor(arguments, 'callee').get); [{}, "
	     "[], /x/, new Error(), arguments, new Uint8Array(1), function () {}, "
	     "Object(Symbol())].forEach(function (o) { "
	     "walk(Object.getPrototypeOf(o)); }); ctx.log(open + ' open of ' + "
	     "(seen.length > 300 ? 'all' : seen.length)); }); return 1; }",
	     "null", LOG("0 open of all") RESULT("1"), false},
	    {"function analyze(i, ctx) { var keep = []; function f(o, destroyed) { "
	     "if (!destroyed) ctx.log('again'); keep.push({}); "
	     "Duktape.fin(keep[keep.length - 1], f); } f(); return 1; }",
	     "null", LOG("again") RESULT("1"), true},
	    {"function analyze(i) { return typeof keep; }", "null",
	     RESULT("\"undefined\""), false},
	};

	in_turn(105, t, 5);
}
END_TEST

/* A check compiles the script and runs none of it: a top level that
 * would loop forever or throw is answered at once, a syntax error with
 * Duktape's message and line, and the worker then runs jobs as before. */
START_TEST(a_check_compiles_without_running)
{
	int fd = worker(102, 64, 5), status;
	char *out;

	out = job_of(fd, true, "for (;;) ;\nfunction analyze() { return 1; }", "null");
	ck_assert_msg(strstr(out, "{\"type\":\"result\",\"value\":{\"ok\":true},"
	                          "\"nonce\":\"n0nce\"}\n") == out,
	              "%s", out);
	out = job_of(fd, true, "throw new Error('ran');", "null");
	ck_assert_msg(strstr(out, "\"value\":{\"ok\":true}") != NULL, "%s", out);
	out = job_of(fd, true, "var x = 1;\nx = ;\nvar y;", "null");
	ck_assert_msg(strstr(out,
	                     "\"value\":{\"ok\":false,\"line\":2,\"message\":"
	                     "\"SyntaxError: empty expression not allowed (line 2)\"}") !=
	                  NULL,
	              "%s", out);
	out = job(fd, "function analyze(i) { return i.n; }", "{\"n\":3}");
	ck_assert_msg(strstr(out, "\"value\":3,") != NULL, "%s", out);
	close(fd);
	status = ended(102);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(children_are_killed_by_number)
{
	struct pollfd pfd;
	unsigned child;
	int fd, status, r;
	size_t len;
	char *frame = sbx_job_frame(false, "function analyze() { for (;;) ; }", "null",
	                            64, "n0nce", &len);

	fd = worker(7, 64, 1);
	ck_assert_int_eq(write(fd, frame, len), (ssize_t)len);
	free(frame);
	sbx_kill(8, SIGKILL); /* no such child: ignored */
	sbx_kill(7, SIGKILL);
	pfd = (struct pollfd){sbx_fd(), POLLIN, 0};
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	r = sbx_next(&child, &status);
	ck_assert_int_eq(r, 1);
	ck_assert_uint_eq(child, 7);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	close(fd);
}
END_TEST

/* The child pid ends killed by its seccomp filter (SIGSYS). */
static void
killed_by_filter(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x",
	              status);
}

START_TEST(seccomp_kills_forbidden_syscalls)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (!sbx_seccomp(RT_JS))
			_exit(99);
		syscall(SYS_getpid); /* not on the allowlist */
		_exit(0);
	}
	killed_by_filter(pid);
}
END_TEST

START_TEST(seccomp_allows_the_bridge)
{
	int status, p[2];
	char c = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		if (!sbx_seccomp(RT_JS))
			_exit(99);
		if (write(p[1], "x", 1) != 1)
			_exit(98);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'x');
}
END_TEST

/* The node filter: threads yes, processes no, no socket of any family. */
START_TEST(node_filter_refuses_processes_and_network)
{
	pid_t pid = fork();

	if (pid == 0) {
		int sv[2];

		if (!sbx_seccomp(RT_NODE))
			_exit(99);
		if (socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EACCES)
			_exit(98);
		if (socket(AF_UNIX, SOCK_STREAM, 0) >= 0 || errno != EACCES ||
		    socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0)
			_exit(97);
		(void)syscall(SYS_fork); /* killed here */
		_exit(0);
	}
	killed_by_filter(pid);
}
END_TEST

START_TEST(no_new_processes)
{
	struct job_spec spec = {RT_JS, 1000, 64, 1};
	struct rlimit rl;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		if (!sbx_rlimits(&spec))
			_exit(99);
		getrlimit(RLIMIT_NPROC, &rl);
		if (rl.rlim_max != 0)
			_exit(98);
		getrlimit(RLIMIT_FSIZE, &rl);
		_exit(rl.rlim_max == 0 ? 0 : 97);
	}
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x",
	              status);
}
END_TEST

/*
 * Containment, probed from inside a child as assay-sandbox makes it: the
 * probes are harmless if it fails (signal 0 only, to a canary this test
 * started). Each failed probe exits with its own status.
 */
static int
probe_inside(pid_t canary, const char *abstract, const char *node)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct statvfs sv;
	int fd;

	if (!sbx_ns_enter(node))
		return 10;
	if (getpid() != 2 || getppid() != 1)
		return 11; /* alone with its init in a process table of its own */
	if (kill(canary, 0) == 0 || errno != ESRCH || kill(-1, 0) == 0)
		return 12; /* no host pid reachable, nobody else to signal */
	if (geteuid() == 0 || syscall(SYS_capget, &h, d) != 0 || d[0].effective != 0 ||
	    d[0].permitted != 0 || d[1].effective != 0)
		return 13;
	if (open("/etc/passwd", O_RDONLY) >= 0 || access("/proc/1", F_OK) == 0 ||
	    access("/tmp", F_OK) == 0)
		return 14; /* nothing of the host's files */
	if (mkdir("/x", 0700) == 0 || errno != EROFS)
		return 15;
	memcpy(sa.sun_path + 1, abstract, strlen(abstract));
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa,
	            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	                        strlen(abstract))) == 0)
		return 16; /* the host's abstract sockets are out of reach */
	if (node != NULL && (statvfs("/usr", &sv) != 0 || !(sv.f_flag & ST_RDONLY) ||
	                     !(sv.f_flag & ST_NOSUID) || access("/usr/bin", X_OK) != 0))
		return 17; /* node's files: read-only, no setuid */
	if (node != NULL && !sbx_seccomp(RT_NODE))
		return 18;
	if (node != NULL && prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 19;
	if (node != NULL)
		syscall(SYS_ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0); /* killed here */
	return 0;
}

/* A stand-in for assay-sandbox (as the sandbox user where this test runs
 * as root) makes one child and reports how it ended, while a canary this
 * test started looks on (and must still be alive afterwards). */
static int
contained_child(const char *node)
{
	pid_t canary = fork();
	char abstract[64];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int status, lfd;
	pid_t stand_in, child;

	if (canary == 0) {
		pause();
		_exit(0);
	}
	snprintf(abstract, sizeof abstract, "assay-check-%d", (int)getpid());
	memcpy(sa.sun_path + 1, abstract, strlen(abstract));
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert(lfd >= 0 &&
	          bind(lfd, (struct sockaddr *)&sa,
	               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
	                           strlen(abstract))) == 0 &&
	          listen(lfd, 1) == 0);
	stand_in = fork();
	if (stand_in == 0) {
		if (getuid() == 0 && !sbx_user("assay-sandbox"))
			_exit(90);
		if (!sbx_ns_probe(node))
			_exit(91);
		child = sbx_ns_fork();
		if (child == 0)
			_exit(probe_inside(canary, abstract, node));
		if (child < 0 || waitpid(child, &status, 0) != child)
			_exit(92);
		status = sbx_ns_status(status);
		_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
	}
	ck_assert_int_eq(waitpid(stand_in, &status, 0), stand_in);
	close(lfd);
	ck_assert_int_eq(kill(canary, 0), 0);
	kill(canary, SIGKILL);
	waitpid(canary, NULL, 0);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(js_child_reaches_nothing_outside)
{
	int r = contained_child(NULL);

	ck_assert_msg(r == 0, "probe %d failed", r);
}
END_TEST

/* With node's files (here /bin/sh stands for node) and node's filter. */
START_TEST(node_child_reaches_nothing_outside)
{
	int r = contained_child("/bin/sh");

	ck_assert_msg(r == 100 + SIGSYS, "probe %d failed (100 + %d: ptrace killed it)",
	              r, SIGSYS);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	if (!sbx_seccomp_prepare()) {
		fprintf(stderr, "cannot build the seccomp filter\n");
		return EXIT_FAILURE;
	}
	tcase_add_test(tc, result_over_the_bridge);
	tcase_add_test(tc, script_errors_are_reported);
	tcase_add_test(tc, memory_limit_holds);
	tcase_add_test(tc, each_job_starts_from_a_fresh_world);
	tcase_add_test(tc, memory_budget_is_per_job);
	tcase_add_test(tc, hooks_and_finalizers_stay_with_their_job);
	tcase_add_test(tc, a_check_compiles_without_running);
	tcase_add_test(tc, children_are_killed_by_number);
	tcase_add_test(tc, seccomp_kills_forbidden_syscalls);
	tcase_add_test(tc, seccomp_allows_the_bridge);
	tcase_add_test(tc, node_filter_refuses_processes_and_network);
	tcase_add_test(tc, no_new_processes);
	tcase_add_test(tc, js_child_reaches_nothing_outside);
	tcase_add_test(tc, node_child_reaches_nothing_outside);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
