/*
 * The executor's side of assay-sandbox (zygote.c): start it, have it start
 * a worker, kill workers by number, hear when they end. Only a descriptor
 * (the worker's end of its bridge) and a few numbers pass through the
 * control socket; jobs travel over the bridge itself (sbx_job_frame).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <json-c/json.h>

#include "extern.h"
#include "log.h"
#include "xalloc.h"

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

int
sbx_run(unsigned child, const struct job_spec *spec)
{
	struct sbx_msg m = {SBX_RUN,
	                    child,
	                    0,
	                    (int32_t)spec->memory_mb,
	                    spec->timeout_ms,
	                    spec->runtime,
	                    (int32_t)spec->max_jobs};
	char cbuf[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {&m, sizeof m};
	struct msghdr msg = {.msg_iov = &iov,
	                     .msg_iovlen = 1,
	                     .msg_control = cbuf,
	                     .msg_controllen = sizeof cbuf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	int sv[2];
	bool sent;

	if (sock < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		log_msg(LOG_ERROR, "socketpair: %s", strerror(errno));
		return -1;
	}
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof sv[1]);
	memcpy(CMSG_DATA(c), &sv[1], sizeof sv[1]);
	sent = sendmsg(sock, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof m &&
	       fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0;
	if (!sent)
		log_msg(LOG_ERROR, "cannot have assay-sandbox start a worker: %s",
		        strerror(errno));
	close(sv[1]);
	if (!sent) {
		close(sv[0]);
		return -1;
	}
	return sv[0];
}

char *
sbx_job_frame(bool check, const char *script, const char *input, long memory_mb,
              const char *nonce, size_t *len)
{
	struct json_object *s = json_object_new_string(script);
	char *line = xasprintf(
	    "{\"type\":\"%s\",\"memory_mb\":%ld,\"nonce\":\"%s\",\"input\":%s,"
	    "\"script\":%s}\n",
	    check ? "check" : "job", memory_mb, nonce, input != NULL ? input : "null",
	    json_object_to_json_string_ext(s, JSON_C_TO_STRING_PLAIN |
	                                          JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(s);
	*len = strlen(line);
	return line;
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
