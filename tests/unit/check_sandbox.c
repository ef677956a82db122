/*
 * Unit tests for the executor's sandbox: through a real assay-sandbox, a
 * script's result comes back over the bridge and children are killed by
 * number; the seccomp filter kills a process that makes a syscall outside
 * the allowlist; the resource limits hold.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extern.h"
#include "unit.h"

/* Run the script in a child of assay-sandbox; return its bridge output and
 * exit status. */
static char *
run(const char *script, long memory_mb, int *status)
{
	static unsigned serial;
	static char out[4096];
	char *copy = strdup(script);
	struct job_spec spec = {RT_JS, copy, "{\"n\":2}", 5000, memory_mb};
	struct pollfd pfd;
	unsigned child;
	size_t len = 0;
	ssize_t n;
	int fd;

	ck_assert_int_ge(sbx_open(SANDBOX_PROGRAM, NULL), 0);
	fd = sbx_run(++serial, &spec);
	ck_assert_int_ge(fd, 0);
	while ((n = read(fd, out + len, sizeof out - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
	pfd = (struct pollfd){sbx_fd(), POLLIN, 0};
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert_int_eq(sbx_next(&child, status), 1);
	ck_assert_uint_eq(child, serial);
	free(copy);
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
	ck_assert_msg(strstr(out, "{\"type\":\"result\",\"value\":42}\n") != NULL, "%s",
	              out);
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

START_TEST(memory_limit_holds)
{
	int status;
	char *out = run("function analyze() { var a = []; for (;;) a.push(new "
	                "Uint8Array(1 << 20)); }",
	                48, &status);

	ck_assert_msg(strstr(out, "memory limit") != NULL, "%s", out);
}
END_TEST

START_TEST(children_are_killed_by_number)
{
	char script[] = "function analyze() { for (;;) ; }";
	struct job_spec spec = {RT_JS, script, "null", 5000, 64};
	struct pollfd pfd;
	unsigned child;
	int fd, status, r;

	ck_assert_int_ge(sbx_open(SANDBOX_PROGRAM, NULL), 0);
	fd = sbx_run(7, &spec);
	ck_assert_int_ge(fd, 0);
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

START_TEST(seccomp_kills_forbidden_syscalls)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (!sbx_seccomp(RT_JS))
			_exit(99);
		syscall(SYS_getpid); /* not on the allowlist */
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x",
	              status);
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

/* The node filter: threads yes, processes no; sockets AF_UNIX only. */
START_TEST(node_filter_refuses_processes_and_network)
{
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		int fd;

		if (!sbx_seccomp(RT_NODE))
			_exit(99);
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0 || errno != EACCES)
			_exit(98);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
			_exit(97);
		close(fd);
		(void)syscall(SYS_fork); /* killed here */
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, "status %#x",
	              status);
}
END_TEST

START_TEST(no_new_processes)
{
	struct job_spec spec = {RT_JS, "", NULL, 1000, 64};
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
	tcase_add_test(tc, children_are_killed_by_number);
	tcase_add_test(tc, seccomp_kills_forbidden_syscalls);
	tcase_add_test(tc, seccomp_allows_the_bridge);
	tcase_add_test(tc, node_filter_refuses_processes_and_network);
	tcase_add_test(tc, no_new_processes);
	suite_add_tcase(s, tc);
	return unit_run(s);
}
