/*
 * assay-stream: GET /api/v1/runs/{id}/events as Server-Sent Events, and
 * GET /api/v1/runs/{id}?wait=N long-polls, for thousands of clients from
 * one process. This file sets it up (config,
 * sockets, signals, the probe port for /health and /metrics) and runs the
 * one epoll loop: it accepts connections, hands each ready descriptor to
 * its owner (conn.c, request.c, pg.c), sends heartbeats, and on SIGTERM
 * or SIGINT ends every stream cleanly. Events go out at each client's
 * pace; a client that takes nothing for two heartbeat intervals while
 * events wait has stopped reading and is disconnected (it resumes with
 * Last-Event-ID). Nothing blocks the loop except reconnecting to
 * PostgreSQL, during which streams are kept but get no news.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "assayconf.h"
#include "cfg.h"
#include "extern.h"
#include "log.h"
#include "probe.h"
#include "util.h"

struct stream st;

static int listen_fd, probe_fd, sig_fd;

static void
accept_all(void)
{
	int fd;

	while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		conn_open(fd);
	if (errno == EMFILE || errno == ENFILE)
		log_msg(LOG_ERROR, "accept: %s (raise the open-file limit)",
		        strerror(errno));
}

static void
heartbeats(void)
{
	uint64_t now = util_now_us(),
	         idle = (uint64_t)cfg_int(st.cfg, STREAM_HEARTBEAT) * 1000000u;
	size_t i;
	struct conn *c;

	for (i = 0; i < st.nall; i++) {
		c = st.all[i];
		if (c->state == C_LIVE && c->outlen > c->outoff &&
		    now - c->last_write_us >= 2 * idle) {
			log_msg(
			    LOG_WARN,
			    "stream %s: the client took nothing for %ld s; disconnected "
			    "(it can resume with Last-Event-ID)",
			    c->request_id, 2 * cfg_int(st.cfg, STREAM_HEARTBEAT));
			conn_close(c);
			if (i < st.nall && st.all[i] != c)
				i--;
			continue;
		}
		if (c->state == C_LIVE && c->outlen == 0 &&
		    now - c->last_write_us >= idle) {
			conn_write(c, ": heartbeat\n\n", 13);
			conn_flush(c);
			if (i < st.nall && st.all[i] != c)
				i--; /* it was closed and another took its place */
		}
	}
}

static int
probe(const char *path, FILE *f, const char **ctype, void *arg)
{
	(void)arg;
	if (strcmp(path, "/health") == 0) {
		fprintf(f,
		        "{\"status\":\"%s\",\"version\":\"%s\",\"streams\":%zu,"
		        "\"waits\":%zu,\"capacity\":%ld,\"database\":\"%s\"}",
		        st.stopping ? "stopping" : "healthy", PACKAGE_VERSION, st.active,
		        st.waiting, cfg_int(st.cfg, STREAM_MAX_STREAMS),
		        pg_connected() ? "connected" : "unavailable");
		return 1;
	}
	if (strcmp(path, "/metrics") != 0)
		return 0;
	*ctype = "text/plain; version=0.0.4";
	fprintf(
	    f,
	    "# HELP sse_connections_opened_total Event streams started.\n"
	    "# TYPE sse_connections_opened_total counter\n"
	    "sse_connections_opened_total %lu\n"
	    "# HELP sse_connections_closed_total Event streams ended, for any reason.\n"
	    "# TYPE sse_connections_closed_total counter\n"
	    "sse_connections_closed_total %lu\n"
	    "# HELP sse_active_connections Event streams open now.\n"
	    "# TYPE sse_active_connections gauge\n"
	    "sse_active_connections %zu\n"
	    "# HELP sse_messages_total Events sent to clients.\n"
	    "# TYPE sse_messages_total counter\n"
	    "sse_messages_total %lu\n"
	    "# HELP sse_connections_refused_total Streams and waits refused at "
	    "max_streams.\n"
	    "# TYPE sse_connections_refused_total counter\n"
	    "sse_connections_refused_total %lu\n"
	    "# HELP run_waits_active Waits (GET /api/v1/runs/{id}?wait=N) held now.\n"
	    "# TYPE run_waits_active gauge\n"
	    "run_waits_active %zu\n"
	    "# HELP run_waits_total Waits answered with the run, ended or at its time.\n"
	    "# TYPE run_waits_total counter\n"
	    "run_waits_total{outcome=\"ended\"} %lu\n"
	    "run_waits_total{outcome=\"timeout\"} %lu\n"
	    "# HELP assay_build_info The running version.\n"
	    "# TYPE assay_build_info gauge\n"
	    "assay_build_info{version=\"%s\"} 1\n",
	    st.opened, st.closed, st.active, st.messages, st.refused, st.waiting,
	    st.waits_ended, st.waits_timed_out, PACKAGE_VERSION);
	return 1;
}

static int
listen_unix(const char *path, long mode)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat sb;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_msg(LOG_ERROR, "socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		unlink(path); /* stale socket from a previous run */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    chmod(path, (mode_t)mode) != 0 || listen(fd, 4096) != 0) {
		log_msg(LOG_ERROR, "cannot listen on %s: %s", path, strerror(errno));
		return -1;
	}
	return fd;
}

static void
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if ((long)rl.rlim_cur < want + 64)
		log_msg(LOG_WARN, "open-file limit %ld is below max_streams %ld",
		        (long)rl.rlim_cur, want);
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: assay-stream [-c FILE] [-t]\n"
	        "       assay-stream --routes | --version\n"
	        "  -c, --config FILE  configuration file (default " API_CONF_FILE ")\n"
	        "  -t, --test         check the configuration, print it, and exit\n");
}

int
main(int argc, char *argv[])
{
	const char *path = API_CONF_FILE;
	bool required = false, test = false;
	struct epoll_event ev, evs[256];
	struct cfg *cfg;
	int i, n, status, timeout = 1000;
	size_t k;

	log_init("assay-stream");
	for (i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			path = argv[++i];
			required = true;
		} else if (strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--test") == 0) {
			test = true;
		} else if (strcmp(argv[i], "--routes") == 0) {
			printf("GET /api/v1/runs/{id}/events\nGET, HEAD "
			       "/api/v1/runs/{id}\n");
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("assay-stream %s\n", PACKAGE_VERSION);
			return 0;
		} else {
			usage(strcmp(argv[i], "--help") == 0 ? stdout : stderr);
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if ((cfg = cfg_startup(api_cfg_keys, API__MAX, path, required, test, &status)) ==
	    NULL)
		return status;
	st.cfg = cfg;
	log_set_level((enum log_level)cfg_int(cfg, API_LOG_LEVEL));
	raise_nofile(cfg_int(cfg, STREAM_MAX_STREAMS));
	sig_fd = util_signalfd();
	st.ep = epoll_create1(EPOLL_CLOEXEC);
	listen_fd =
	    listen_unix(cfg_str(cfg, STREAM_LISTEN), cfg_int(cfg, STREAM_SOCKET_MODE));
	probe_fd = probe_listen(cfg_str(cfg, STREAM_PROBE_ADDRESS),
	                        cfg_int(cfg, STREAM_PROBE_PORT));
	if (sig_fd < 0 || st.ep < 0 || listen_fd < 0 || probe_fd < 0)
		return 1;
	ev.events = EPOLLIN;
	ev.data.ptr = &listen_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, listen_fd, &ev);
	ev.data.ptr = &probe_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, probe_fd, &ev);
	ev.data.ptr = &sig_fd;
	epoll_ctl(st.ep, EPOLL_CTL_ADD, sig_fd, &ev);
	log_msg(LOG_INFO, "assay-stream %s serving events on %s", PACKAGE_VERSION,
	        cfg_str(cfg, STREAM_LISTEN));
	pg_connect();

	while (!st.stopping) {
		n = epoll_wait(st.ep, evs, 256, timeout);
		for (i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;

			if (p == &listen_fd) {
				accept_all();
			} else if (p == &probe_fd) {
				probe_serve(probe_fd, probe, NULL);
			} else if (p == &sig_fd) {
				struct signalfd_siginfo si;

				while (read(sig_fd, &si, sizeof si) == sizeof si)
					if (si.ssi_signo == SIGHUP)
						log_msg(LOG_INFO,
						        "SIGHUP: nothing to reload "
						        "(restart to apply [stream] "
						        "changes)");
					else
						st.stopping = true;
			} else if (pg_owns(p)) {
				pg_readable();
			} else {
				struct conn *c = p;

				if (c->fd < 0)
					continue;
				if (evs[i].events & EPOLLOUT)
					conn_flush(c);
				if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP |
				                                    EPOLLHUP | EPOLLERR)))
					req_readable(c);
			}
		}
		pg_retry();
		heartbeats();
		timeout = wait_due(1000);
		conn_bury_all();
	}
	/* Stop: end every stream cleanly; clients resume elsewhere or later.
	 * Waiters are told to ask again. */
	log_msg(LOG_INFO, "stopping: ending %zu streams and %zu waits", st.active,
	        st.waiting);
	close(listen_fd);
	unlink(cfg_str(cfg, STREAM_LISTEN));
	for (k = st.nall; k > 0; k--) {
		struct conn *c = st.all[k - 1];

		if (c->state == C_LIVE)
			conn_end(c);
		if (c->state == C_WAIT)
			wait_refuse(c, 503, "SHUTTING_DOWN", "Retry-After: 1\r\n",
			            "assay-stream is stopping; ask again");
		else
			conn_flush(c);
		if (c->fd >= 0)
			conn_close(c);
	}
	conn_bury_all();
	pg_close();
	cfg_free(cfg);
	return 0;
}
