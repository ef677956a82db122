/*
 * The executor's side of assay-sandbox (zygote.c): start it, hand it a job
 * to run in a new child, kill children by number, hear when they end.
 * A job travels as a memfd (script and input), its output comes back over
 * a pipe the executor created, so nothing of the job passes through the
 * control socket but two descriptors and a few numbers.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "extern.h"
#include "log.h"

#define READY_TIMEOUT_MS 5000

static int sock = -1;
static pid_t helper = -1;
static int features;   /* what the running assay-sandbox said it can do */
static bool have_node; /* it was given a node binary */

int
sbx_fd(void)
{
	return sock;
}

void
sbx_close(void)
{
	int status;

	if (sock < 0)
		return;
	close(sock);
	sock = -1;
	kill(helper, SIGKILL);
	if (waitpid(helper, &status, 0) == helper && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0)
		log_msg(LOG_ERROR, "assay-sandbox exited with status %d",
		        WEXITSTATUS(status));
	helper = -1;
}

const char *
sbx_weakness(void)
{
	if (!(features & SBX_OWN_USER))
		return "assay-sandbox could not become sandbox_user (the executor "
		       "needs root, or CAP_SETUID and CAP_SETGID, and the user must "
		       "exist)";
	if (!(features & SBX_NAMESPACES))
		return "the host gives sandbox_user no user, PID and mount namespaces";
	return NULL;
}

const char *
sbx_refusal(enum runtime rt)
{
	static char why[256];

	if (rt != RT_NODE)
		return NULL;
	if (!have_node)
		return "runtime node is not available on this executor (node_path "
		       "is not set in executor.conf)";
	if (sbx_weakness() == NULL)
		return NULL;
	snprintf(why, sizeof why, "runtime node is refused on this executor: %s",
	         sbx_weakness());
	return why;
}

int
sbx_open(const char *program, const char *node, const char *user)
{
	struct pollfd pfd;
	struct sbx_msg m;
	int sv[2];

	if (sock >= 0)
		return sock;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		log_msg(LOG_ERROR, "socketpair: %s", strerror(errno));
		return -1;
	}
	helper = fork();
	if (helper == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(sv[1], 0) == 0 && close_range(3, ~0u, 0) == 0)
			execl(program, "assay-sandbox", node ? node : "",
			      user ? user : "", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (helper < 0) {
		log_msg(LOG_ERROR, "fork: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	sock = sv[0];
	/* It says it is ready once its seccomp filter and engine are built. */
	pfd = (struct pollfd){sock, POLLIN, 0};
	if (poll(&pfd, 1, READY_TIMEOUT_MS) != 1 ||
	    recv(sock, &m, sizeof m, MSG_DONTWAIT) != sizeof m || m.op != SBX_READY) {
		log_msg(LOG_ERROR, "%s did not start; no job can run without it",
		        program);
		sbx_close();
		return -1;
	}
	features = m.status;
	have_node = node != NULL;
	log_msg(LOG_DEBUG, "assay-sandbox started as pid %d (features %d)", (int)helper,
	        features);
	return sock;
}

static bool
write_all(int fd, const char *s, size_t len)
{
	ssize_t n;

	for (; len > 0; s += n, len -= (size_t)n)
		if ((n = write(fd, s, len)) < 0 && errno != EINTR)
			return false;
		else if (n < 0)
			n = 0;
	return true;
}

int
sbx_run(unsigned child, const struct job_spec *spec)
{
	struct sbx_msg m = {SBX_RUN,          child,         0, (int32_t)spec->memory_mb,
	                    spec->timeout_ms, spec->runtime, 0};
	const char *input = spec->input ? spec->input : "null";
	char cbuf[CMSG_SPACE(2 * sizeof(int))] = {0};
	struct iovec iov = {&m, sizeof m};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = cbuf,
	                     .msg_controllen = sizeof cbuf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int p[2] = {-1, -1}, fds[2], job = -1;
	bool sent = false;

	if (sock < 0)
		return -1;
	job = memfd_create("assay-job", MFD_CLOEXEC);
	if (job >= 0 && write_all(job, spec->script, strlen(spec->script) + 1) &&
	    write_all(job, input, strlen(input) + 1) && pipe2(p, O_CLOEXEC) == 0) {
		fds[0] = p[1];
		fds[1] = job;
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof fds);
		memcpy(CMSG_DATA(c), fds, sizeof fds);
		sent = sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof m;
	}
	if (!sent)
		log_msg(LOG_ERROR, "cannot hand a job to assay-sandbox: %s",
		        strerror(errno));
	if (job >= 0)
		close(job);
	if (p[1] >= 0)
		close(p[1]);
	if (!sent && p[0] >= 0) {
		close(p[0]);
		p[0] = -1;
	}
	return p[0];
}

void
sbx_kill(unsigned child, int sig)
{
	struct sbx_msg m = {.op = SBX_KILL, .child = child, .status = sig};

	if (sock >= 0 && send(sock, &m, sizeof m, MSG_NOSIGNAL) != sizeof m)
		log_msg(LOG_ERROR, "cannot ask assay-sandbox to kill child %u: %s", child,
		        strerror(errno));
}

int
sbx_next(unsigned *child, int *status)
{
	struct sbx_msg m;
	ssize_t n;

	if (sock < 0)
		return -1;
	for (;;) {
		n = recv(sock, &m, sizeof m, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n == sizeof m && m.op == SBX_EXITED) {
			*child = m.child;
			*status = m.status;
			return 1;
		}
		if (n <= 0)
			break;
	}
	log_msg(LOG_ERROR, "assay-sandbox stopped (%s); its children are gone",
	        n < 0 ? strerror(errno) : "end of file");
	sbx_close();
	return -1;
}
