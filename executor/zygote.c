/*
 * assay-sandbox: forks assay-executor's sandboxed workers. The executor
 * starts it with a SOCK_SEQPACKET socket as descriptor 0 (see struct
 * sbx_msg in extern.h) and the node binary, if any, as its argument; it
 * is not meant to be run by hand. It is a fresh program, not a copy of the
 * executor, so no worker can find the executor's memory, connections or
 * credentials. Before saying it is ready it builds the seccomp filters;
 * each worker inherits them and only has to drop every descriptor but its
 * bridge, apply its limits and its filter, and serve jobs from the bridge
 * (js.c, node.c). It kills workers when asked and reports each one's end.
 * When the executor goes away, so do it and its workers.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "extern.h"
#include "log.h"

#define MAX_CHILDREN 1024
#define CONTROL      0 /* the socket to the executor */

static struct {
	unsigned child;
	pid_t pid;
} kids[MAX_CHILDREN];
static size_t nkids;
static const char *node; /* the node binary, or NULL: no runtime "node" */
static int features;     /* SBX_OWN_USER, SBX_NAMESPACES */

static void
tell(enum sbx_op op, unsigned child, int status)
{
	struct sbx_msg m = {.op = op, .child = child, .status = status};

	if (send(CONTROL, &m, sizeof m, MSG_NOSIGNAL) != sizeof m)
		_exit(0); /* the executor is gone; PDEATHSIG takes the children */
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

/* Descriptors 0-2 of a child: closed for "js", /dev/null for "node". */
static bool
std_fds(enum runtime rt)
{
	int fd;

	if (rt != RT_NODE)
		return close_range(0, 2, 0) == 0;
	fd = open("/dev/null", O_RDWR); /* not 3 or 4: those are taken */
	return fd >= 0 && dup2(fd, 0) == 0 && dup2(fd, 1) == 1 && dup2(fd, 2) == 2;
}

/* In the new worker: from here on only the tenant's scripts run. */
static void __attribute__((noreturn)) child_run(const struct sbx_msg *m, int bridge)
{
	struct job_spec spec = {(enum runtime)m->runtime, m->timeout_ms, m->memory_mb,
	                        m->max_jobs};

	sbx_ns_block(); /* sbx_ns_enter unblocks them for the worker */
	signal(SIGPIPE, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The bridge goes to BRIDGE_FD; nothing else stays open but, for node,
	 * /dev/null on 0-2 (which node would otherwise open itself). Moved out
	 * of the way first, so that it cannot already be BRIDGE_FD (where dup2
	 * would leave it close-on-exec). */
	bridge = fcntl(bridge, F_DUPFD, 10);
	if (bridge < 0 || dup2(bridge, BRIDGE_FD) < 0 || !std_fds(spec.runtime) ||
	    close_range(BRIDGE_FD + 1, ~0u, 0) != 0)
		_exit(3);
	if (!sbx_ns_enter(spec.runtime == RT_NODE ? node : NULL))
		child_fail(BRIDGE_FD, "cannot enter its namespaces");
	if (!sbx_rlimits(&spec))
		child_fail(BRIDGE_FD, "cannot set resource limits");
	if (!sbx_seccomp(spec.runtime))
		child_fail(BRIDGE_FD, "cannot install the seccomp filter");
	if (spec.runtime == RT_NODE) {
		node_exec(node, &spec);
		child_fail(BRIDGE_FD, "cannot start node");
	}
	js_serve(&spec, BRIDGE_FD);
}

static void
start(const struct sbx_msg *m, int bridge)
{
	pid_t pid;

	if (m->runtime < 0 || m->runtime >= RT__MAX || m->max_jobs < 1 ||
	    (m->runtime == RT_NODE &&
	     (!node || features != (SBX_OWN_USER | SBX_NAMESPACES)))) {
		close(bridge);
		tell(SBX_EXITED, m->child, -ENOEXEC);
		return;
	}
	pid = nkids < MAX_CHILDREN ? sbx_ns_fork() : -1;

	if (pid == 0)
		child_run(m, bridge);
	close(bridge);
	if (pid < 0) {
		tell(SBX_EXITED, m->child, nkids < MAX_CHILDREN ? -errno : -EAGAIN);
		return;
	}
	kids[nkids].child = m->child;
	kids[nkids++].pid = pid;
}

/* One message from the executor: 1 when one was handled, 0 when none is
 * waiting, -1 when the executor has gone away. */
static int
request(void)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct sbx_msg m;
	struct iovec iov = {&m, sizeof m};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = cbuf,
	                     .msg_controllen = sizeof cbuf};
	struct cmsghdr *c;
	int fd = -1;
	ssize_t n;
	size_t i;

	n = recvmsg(CONTROL, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof fd))
			memcpy(&fd, CMSG_DATA(c), sizeof fd);
	if (n == sizeof m && m.op == SBX_RUN && fd >= 0) {
		start(&m, fd);
		return 1;
	}
	if (fd >= 0)
		close(fd);
	if (n == sizeof m && m.op == SBX_KILL)
		for (i = 0; i < nkids; i++)
			if (kids[i].child == m.child)
				kill(kids[i].pid, m.status);
	return 1;
}

static void
reap(void)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (i = 0; i < nkids; i++)
			if (kids[i].pid == pid) {
				tell(SBX_EXITED, kids[i].child, sbx_ns_status(status));
				kids[i] = kids[--nkids];
				break;
			}
}

int
main(int argc, char *argv[])
{
	struct signalfd_siginfo si;
	struct pollfd pfd[2];
	sigset_t chld;
	int sig, r = 0;

	log_init("assay-sandbox");
	node = argc > 1 && argv[1][0] != '\0' ? argv[1] : NULL;
	if (sbx_user(argc > 2 ? argv[2] : NULL))
		features |= SBX_OWN_USER;
	if (sbx_ns_probe(node))
		features |= SBX_NAMESPACES;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sig = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig < 0 || !sbx_seccomp_prepare()) {
		log_msg(LOG_ERROR, "cannot prepare the sandbox (%s)",
		        sig < 0 ? strerror(errno) : "seccomp filters");
		return 1;
	}
	tell(SBX_READY, 0, features);
	pfd[0] = (struct pollfd){CONTROL, POLLIN, 0};
	pfd[1] = (struct pollfd){sig, POLLIN, 0};
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents) {
			while (read(sig, &si, sizeof si) == sizeof si)
				;
			reap();
		}
		if (pfd[0].revents)
			while ((r = request()) > 0)
				;
		if (r < 0)
			break;
	}
	return 0; /* the children follow: PDEATHSIG */
}
