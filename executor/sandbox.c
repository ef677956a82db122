/*
 * One forked child per job. Before any script code runs, the child drops
 * every descriptor but its end of the bridge pipe, sets hard resource
 * limits and installs the seccomp allowlist; if any step fails it exits
 * without running the script. The parent enforces wall-clock time itself.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include "extern.h"
#include "log.h"

/* Close every descriptor except keep; false if that cannot be done. */
static bool
close_all_but(int keep)
{
	return close_range(0, (unsigned)keep - 1, 0) == 0 &&
	       close_range((unsigned)keep + 1, ~0u, 0) == 0;
}

static void __attribute__((noreturn)) child_fail(int fd, const char *why)
{
	char line[256];
	int n = snprintf(line, sizeof line,
	                 "{\"type\":\"error\",\"message\":\"sandbox: %s\"}\n", why);

	if (n > 0 && write(fd, line, (size_t)n) < 0)
		_exit(3);
	_exit(3);
}

pid_t
sbx_spawn(const struct job_spec *spec, int *out)
{
	sigset_t all;
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0) {
		log_msg(LOG_ERROR, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		log_msg(LOG_ERROR, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int fd = p[1];

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* The bridge goes to fd 3; nothing else stays open. */
		if (dup2(fd, 3) < 0 || !close_all_but(3))
			_exit(3);
		if (!sbx_rlimits(spec))
			child_fail(3, "cannot set resource limits");
		if (!sbx_seccomp())
			child_fail(3, "cannot install the seccomp filter");
		js_run(spec, 3);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}
