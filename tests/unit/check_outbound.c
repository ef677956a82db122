/*
 * Unit tests for lib/outbound.c, against a scripted HTTP/1.1 server each
 * test forks on a kernel-assigned port of 127.0.0.1 (a process per
 * connection, keep-alive; what it counted in shared memory). The path
 * picks the answer:
 *   /status/N        status N
 *   /seq/I/A,B,...   the n-th call of sequence I gets the n-th status (the
 *                    last one repeats); every 429 says Retry-After: 1
 *   /slow/MS         200 after MS milliseconds
 *   /close           the connection closed without an answer
 *   /echo            200 with the request's head as the body
 *   /big             2 MiB
 *   anything else    200
 * Tested: answers and bodies, authentication and that no secret reaches
 * the log, retries, Retry-After, timeouts, network errors, requests in
 * flight at ob_free, the circuit breaker, address_ok, keep-alive, the
 * metrics and their bounded table.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "outbound.h"
#include "unit.h"
#include "util.h"

/* What the server saw, in memory it shares with the test. */
struct seen {
	int connections, requests;
	int seq[8];
};

static struct seen *seen;
static pid_t server_pid;
static int server_port;

static int
count(const int *counter)
{
	return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static void
reply(int fd, int status, const char *body, size_t len)
{
	char head[256];
	ssize_t n;
	int h;

	h = snprintf(head, sizeof head,
	             "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n%s\r\n", status, len,
	             status == 429 ? "Retry-After: 1\r\n" : "");
	if (write(fd, head, (size_t)h) != h)
		_exit(0);
	for (; len > 0; body += n, len -= (size_t)n)
		if ((n = write(fd, body, len)) <= 0)
			_exit(0);
}

static bool
answer_status(int fd, const char *arg, const char *head)
{
	reply(fd, atoi(arg), "ok", 2);
	return true;
}

static bool
answer_ok(int fd, const char *arg, const char *head)
{
	reply(fd, 200, "ok", 2);
	return true;
}

static bool
answer_seq(int fd, const char *arg, const char *head)
{
	const char *code = strchr(arg, '/');
	int n = __atomic_fetch_add(&seen->seq[atoi(arg) & 7], 1, __ATOMIC_SEQ_CST);

	for (code++; n > 0 && strchr(code, ',') != NULL; n--)
		code = strchr(code, ',') + 1;
	reply(fd, atoi(code), "ok", 2);
	return true;
}

static bool
answer_slow(int fd, const char *arg, const char *head)
{
	usleep((useconds_t)atoi(arg) * 1000u);
	reply(fd, 200, "slow", 4);
	return true;
}

static bool
answer_close(int fd, const char *arg, const char *head)
{
	return false;
}

static bool
answer_echo(int fd, const char *arg, const char *head)
{
	reply(fd, 200, head, strlen(head));
	return true;
}

static bool
answer_big(int fd, const char *arg, const char *head)
{
	size_t len = 2u << 20;
	char *big = malloc(len);

	memset(big, 'b', len);
	reply(fd, 200, big, len);
	free(big);
	return true;
}

static const struct route {
	const char *prefix;
	bool (*answer)(int fd, const char *arg, const char *head);
} routes[] = {
    {"/status/", answer_status},
    {"/seq/", answer_seq},
    {"/slow/", answer_slow},
    {"/close", answer_close},
    {"/echo", answer_echo},
    {"/big", answer_big},
    {"/", answer_ok},
};

/* Answer one request (its head, NUL-terminated); false: close. */
static bool
answer(int fd, const char *head)
{
	const char *path = strchr(head, ' ');
	size_t i, n;

	for (i = 0; path != NULL && i < sizeof routes / sizeof routes[0]; i++) {
		n = strlen(routes[i].prefix);
		if (strncmp(path + 1, routes[i].prefix, n) == 0)
			return routes[i].answer(fd, path + 1 + n, head);
	}
	return false;
}

/* Requests on one connection until the client closes it. */
static void
serve(int fd)
{
	char buf[16384], head[8192], *end, *cl;
	size_t len = 0, need;
	ssize_t n;

	for (;;) {
		while ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL) {
			if (len == sizeof buf ||
			    (n = read(fd, buf + len, sizeof buf - len)) <= 0)
				return;
			len += (size_t)n;
		}
		snprintf(head, sizeof head, "%.*s", (int)(end + 4 - buf), buf);
		cl = strcasestr(head, "\r\nContent-Length:");
		need = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
		while (len < need) {
			if (need > sizeof buf ||
			    (n = read(fd, buf + len, sizeof buf - len)) <= 0)
				return;
			len += (size_t)n;
		}
		__atomic_add_fetch(&seen->requests, 1, __ATOMIC_SEQ_CST);
		if (!answer(fd, head))
			return;
		memmove(buf, buf + need, len - need);
		len -= need;
	}
}

static void __attribute__((noreturn)) server_loop(int lfd)
{
	int fd;

	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) < 0)
			continue;
		__atomic_add_fetch(&seen->connections, 1, __ATOMIC_SEQ_CST);
		if (fork() == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(lfd);
			serve(fd);
			_exit(0);
		}
		close(fd);
	}
}

/* A TCP socket bound to a kernel-assigned port of 127.0.0.1. */
static int
loopback_socket(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A port of 127.0.0.1 nothing listens on. */
static int
closed_port(void)
{
	int port;

	close(loopback_socket(&port));
	return port;
}

static void
server_start(void)
{
	int fd = loopback_socket(&server_port);

	log_init("check_outbound");
	log_set_level(LOG_ERROR);
	seen = mmap(NULL, sizeof *seen, PROT_READ | PROT_WRITE,
	            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(seen != MAP_FAILED);
	ck_assert_int_eq(listen(fd, 64), 0);
	/* The child must not reach a ck_assert: it would write to the test's
	 * channel. */
	server_pid = fork();
	if (server_pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		server_loop(fd);
	}
	ck_assert_int_gt(server_pid, 0);
	setpgid(server_pid, server_pid);
	close(fd);
}

static void
server_stop(void)
{
	kill(-server_pid, SIGKILL);
	waitpid(server_pid, NULL, 0);
	munmap(seen, sizeof *seen);
}

struct answer {
	bool done;
	enum ob_result result;
	long status;
	int attempts;
	size_t bodylen;
	char body[4096];
};

static void
answered(void *arg, const struct ob_response *r)
{
	struct answer *a = arg;

	ck_assert(!a->done);
	ck_assert_uint_eq(r->body[r->bodylen], '\0');
	ck_assert(r->result == OB_OK ? r->error == NULL : r->error != NULL);
	a->done = true;
	a->result = r->result;
	a->status = r->status;
	a->attempts = r->attempts;
	a->bodylen = r->bodylen;
	snprintf(a->body, sizeof a->body, "%s", r->body);
}

/* The owner's poll loop, until every request has its answer. */
static void
run(struct ob *ob)
{
	struct pollfd fds[64];
	size_t n;

	while (ob_pending(ob) > 0) {
		n = ob_pollfds(ob, fds, 64);
		ck_assert_int_ge(poll(fds, n, ob_timeout_ms(ob)), 0);
		ob_perform(ob, fds, n);
	}
}

static const char *
url(const char *path)
{
	static char buf[256];

	snprintf(buf, sizeof buf, "http://127.0.0.1:%d%s", server_port, path);
	return buf;
}

static void
call(struct ob *ob, const struct ob_request *req, struct answer *a)
{
	memset(a, 0, sizeof *a);
	ck_assert(ob_submit(ob, req, answered, a));
	run(ob);
	ck_assert(a->done);
}

static void
get(struct ob *ob, const char *path, int max_attempts, struct answer *a)
{
	call(ob,
	     &(struct ob_request){
	         .method = "GET", .url = url(path), .max_attempts = max_attempts},
	     a);
}

static struct ob *
client(struct ob_config cfg)
{
	struct ob *ob;

	if (cfg.backoff_ms == 0) {
		cfg.backoff_ms = 10;
		cfg.backoff_max_ms = 40;
	}
	ob = ob_new(&cfg);
	ck_assert_ptr_nonnull(ob);
	return ob;
}

/* What ob_metrics_write writes (malloc'd). */
static char *
metrics(struct ob *ob)
{
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	ob_metrics_write(ob, f);
	fclose(f);
	return text;
}

static int
occurrences(const char *text, const char *what)
{
	int n = 0;

	for (; (text = strstr(text, what)) != NULL; text++)
		n++;
	return n;
}

START_TEST(answers_and_bodies)
{
	static const char *const plain[] = {"X-Plain: visible", NULL};
	static const char *const broken[] = {"X-Bad: a\r\nX-Injected: b", NULL};
	struct ob *ob = client((struct ob_config){0});
	struct answer a;

	get(ob, "/status/201", 0, &a);
	ck_assert_int_eq(a.result, OB_OK);
	ck_assert_int_eq(a.status, 201);
	ck_assert_int_eq(a.attempts, 1);
	ck_assert_str_eq(a.body, "ok");
	call(ob,
	     &(struct ob_request){.method = "PUT",
	                          .url = url("/echo"),
	                          .headers = plain,
	                          .body = "hello",
	                          .bodylen = 5},
	     &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_ptr_nonnull(strstr(a.body, "PUT /echo HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(a.body, "X-Plain: visible\r\n"));
	ck_assert_ptr_nonnull(strstr(a.body, "Content-Length: 5\r\n"));
	get(ob, "/big", 0, &a);
	ck_assert_int_eq(a.result, OB_OK);
	ck_assert_uint_eq(a.bodylen, 1u << 20);
	ck_assert(!ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = "ftp://127.0.0.1/"},
	    answered, &a));
	ck_assert(!ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = "not a url"}, answered, &a));
	ck_assert(!ob_submit(ob, &(struct ob_request){.method = "G T", .url = url("/")},
	                     answered, &a));
	ck_assert(!ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = url("/"), .headers = broken},
	    answered, &a));
	ck_assert(!ob_submit(ob,
	                     &(struct ob_request){.method = "GET",
	                                          .url = url("/"),
	                                          .auth = OB_AUTH_BEARER},
	                     answered, &a));
	ck_assert_uint_eq(ob_pending(ob), 0);
	ck_assert_str_eq(ob_breaker(ob, "http://elsewhere.example/"), "closed");
	ob_free(ob);
}
END_TEST

START_TEST(authentication_without_secrets_in_the_log)
{
	static const char *const headers[] = {"X-Secret: s3cr3t-header",
	                                      "Cookie: c=s3cr3t-cookie",
	                                      "X-Plain: visible", NULL};
	char path[] = "/tmp/check_outbound-XXXXXX", userinfo[256], refused[256],
	     log[65536];
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	struct ob *ob = client((struct ob_config){.secret_headers = "X-Other, x-secret"});
	struct answer a;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	dup2(fd, STDERR_FILENO);
	log_set_level(LOG_DEBUG);
	ob_set_auth(ob, OB_AUTH_BEARER, "s3cr3t-bearer");
	call(ob,
	     &(struct ob_request){
	         .method = "GET", .url = url("/echo"), .headers = headers},
	     &a);
	ck_assert_ptr_nonnull(
	    strstr(a.body, "\r\nAuthorization: Bearer s3cr3t-bearer\r\n"));
	ob_set_auth(ob, OB_AUTH_API_KEY, "s3cr3t-key");
	get(ob, "/echo", 0, &a);
	ck_assert_ptr_nonnull(strstr(a.body, "\r\nX-API-Key: s3cr3t-key\r\n"));
	ck_assert_ptr_null(strstr(a.body, "Authorization"));
	call(ob,
	     &(struct ob_request){.method = "GET",
	                          .url = url("/echo"),
	                          .auth = OB_AUTH_BASIC,
	                          .credential = "user:s3cr3t-pass"},
	     &a);
	ck_assert_ptr_nonnull(
	    strstr(a.body, "\r\nAuthorization: Basic dXNlcjpzM2NyM3QtcGFzcw==\r\n"));
	ck_assert_ptr_null(strstr(a.body, "X-API-Key"));
	snprintf(
	    userinfo, sizeof userinfo,
	    "http://u:s3cr3t-userinfo@127.0.0.1:%d/echo?token=s3cr3t-query#s3cr3t-frag",
	    server_port);
	call(ob,
	     &(struct ob_request){.method = "GET", .url = userinfo, .auth = OB_AUTH_NONE},
	     &a);
	ck_assert_ptr_nonnull(
	    strstr(a.body, "GET /echo?token=s3cr3t-query HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(
	    strstr(a.body, "\r\nAuthorization: Basic dTpzM2NyM3QtdXNlcmluZm8=\r\n"));
	snprintf(refused, sizeof refused,
	         "http://u:s3cr3t-userinfo@127.0.0.1:%d/x?token=s3cr3t-query",
	         closed_port());
	call(ob,
	     &(struct ob_request){.method = "POST", .url = refused, .headers = headers},
	     &a);
	ck_assert_int_eq(a.result, OB_NETWORK);
	ob_free(ob);
	log_set_level(LOG_ERROR);
	dup2(saved, STDERR_FILENO);
	close(saved);
	n = pread(fd, log, sizeof log - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	log[n] = '\0';
	ck_assert_msg(strstr(log, "s3cr3t") == NULL, "%s", log);
	ck_assert_int_eq(occurrences(log, "\"msg\":\"outbound request\""), 5);
	ck_assert_ptr_nonnull(strstr(log, "\"url\":\"http://127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(log, "\"X-Plain\":\"visible\""));
	ck_assert_ptr_nonnull(strstr(log, "\"X-Secret\":\"(secret)\""));
	ck_assert_ptr_nonnull(strstr(log, "\"Cookie\":\"(secret)\""));
}
END_TEST

START_TEST(retries_on_5xx_only)
{
	struct ob *ob = client((struct ob_config){.max_attempts = 3});
	struct answer a;

	get(ob, "/seq/0/500,500,200", 0, &a);
	ck_assert_int_eq(a.result, OB_OK);
	ck_assert_int_eq(a.status, 200);
	ck_assert_int_eq(a.attempts, 3);
	ck_assert_int_eq(count(&seen->requests), 3);
	get(ob, "/status/404", 0, &a);
	ck_assert_int_eq(a.status, 404);
	ck_assert_int_eq(a.attempts, 1);
	ck_assert_int_eq(count(&seen->requests), 4);
	get(ob, "/status/503", 2, &a);
	ck_assert_int_eq(a.result, OB_OK);
	ck_assert_int_eq(a.status, 503);
	ck_assert_int_eq(a.attempts, 2);
	ck_assert_int_eq(count(&seen->requests), 6);
	ob_free(ob);
}
END_TEST

START_TEST(retry_after_is_honoured)
{
	struct ob *ob = client((struct ob_config){.max_attempts = 3});
	uint64_t start = util_now_us();
	struct answer a;

	get(ob, "/seq/1/429,200", 0, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_int_eq(a.attempts, 2);
	ck_assert_uint_ge(util_now_us() - start, 1000000u);
	ob_free(ob);
}
END_TEST

START_TEST(timeouts_and_network_errors)
{
	struct ob *ob = client((struct ob_config){.timeout_ms = 200});
	char refused[64];
	uint64_t start = util_now_us();
	struct answer a;

	get(ob, "/slow/1500", 1, &a);
	ck_assert_int_eq(a.result, OB_TIMEOUT);
	ck_assert_int_eq(a.status, 0);
	ck_assert_uint_lt(util_now_us() - start, 1000000u);
	get(ob, "/close", 1, &a);
	ck_assert_int_eq(a.result, OB_NETWORK);
	snprintf(refused, sizeof refused, "http://127.0.0.1:%d/", closed_port());
	call(ob, &(struct ob_request){.method = "GET", .url = refused, .max_attempts = 2},
	     &a);
	ck_assert_int_eq(a.result, OB_NETWORK);
	ck_assert_int_eq(a.attempts, 2);
	ob_free(ob);
}
END_TEST

START_TEST(the_breaker_opens_probes_and_closes)
{
	struct ob *ob = client((struct ob_config){
	    .failure_threshold = 5, .recovery_timeout_ms = 300, .success_threshold = 3});
	struct answer a, b;
	char *text, line[256];
	int i, before;

	for (i = 0; i < 5; i++) {
		ck_assert_str_eq(ob_breaker(ob, url("/")), "closed");
		get(ob, "/status/500", 1, &a);
		ck_assert_int_eq(a.status, 500);
	}
	ck_assert_str_eq(ob_breaker(ob, url("/other")), "open");
	before = count(&seen->requests);
	ck_assert(ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = url("/status/200")},
	    answered, memset(&a, 0, sizeof a)));
	ck_assert(!a.done); /* (called from ob_perform) */
	ck_assert_int_eq(ob_timeout_ms(ob), 0);
	run(ob);
	ck_assert_int_eq(a.result, OB_OPEN);
	ck_assert_int_eq(a.attempts, 0);
	ck_assert_int_eq(count(&seen->requests), before);

	usleep(400000);
	ck_assert(ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = url("/status/200")},
	    answered, memset(&a, 0, sizeof a)));
	ck_assert_str_eq(ob_breaker(ob, url("/")), "half-open");
	ck_assert(ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = url("/status/200")},
	    answered, memset(&b, 0, sizeof b)));
	run(ob);
	ck_assert_int_eq(a.result, OB_OK);
	ck_assert_int_eq(b.result, OB_OPEN);
	ck_assert_int_eq(count(&seen->requests), before + 1);
	ck_assert_str_eq(ob_breaker(ob, url("/")), "half-open");
	get(ob, "/status/500", 1, &a);
	ck_assert_str_eq(ob_breaker(ob, url("/")), "open");

	usleep(400000);
	for (i = 0; i < 3; i++) {
		get(ob, "/status/200", 1, &a);
		ck_assert_int_eq(a.result, OB_OK);
		ck_assert_str_eq(ob_breaker(ob, url("/")),
		                 i < 2 ? "half-open" : "closed");
	}
	text = metrics(ob);
	snprintf(
	    line, sizeof line,
	    "assay_outbound_breaker_transitions_total{endpoint=\"http://127.0.0.1:%d\","
	    "to=\"open\"} 2\n",
	    server_port);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	free(text);
	ob_free(ob);
}
END_TEST

START_TEST(requests_in_flight_end_without_callback)
{
	struct ob *ob = client((struct ob_config){.max_attempts = 3, .backoff_ms = 5000});
	struct answer slow = {0}, retried = {0};
	uint64_t until = util_now_us() + 200000u;
	struct pollfd fds[8];
	size_t n;

	ck_assert(
	    ob_submit(ob, &(struct ob_request){.method = "GET", .url = url("/slow/1000")},
	              answered, &slow));
	ck_assert(ob_submit(
	    ob, &(struct ob_request){.method = "GET", .url = url("/status/500")},
	    answered, &retried));
	while (util_now_us() < until) { /* the 500 comes in, its retry waits */
		n = ob_pollfds(ob, fds, 8);
		ck_assert_int_ge(poll(fds, n, 20), 0);
		ob_perform(ob, fds, n);
	}
	ck_assert_int_eq(count(&seen->requests), 2);
	ck_assert_uint_eq(ob_pending(ob), 2);
	ck_assert_int_gt(ob_timeout_ms(ob), 0);
	ob_free(ob);
	ck_assert(!slow.done && !retried.done);
}
END_TEST

static bool
refuse(const struct sockaddr *sa, socklen_t len, void *arg)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

	ck_assert_int_eq(sa->sa_family, AF_INET);
	ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
	(*(int *)arg)++;
	return false;
}

START_TEST(refused_addresses_are_not_reached)
{
	int asked = 0, i;
	struct ob *ob = client((struct ob_config){.max_attempts = 3,
	                                          .failure_threshold = 2,
	                                          .address_ok = refuse,
	                                          .address_arg = &asked});
	struct answer a;

	for (i = 0; i < 3; i++) {
		get(ob, "/status/200", 0, &a);
		ck_assert_int_eq(a.result, OB_ADDRESS);
		ck_assert_int_eq(a.attempts, 1);
	}
	ck_assert_int_eq(asked, 3);
	ck_assert_int_eq(count(&seen->connections), 0);
	ck_assert_str_eq(ob_breaker(ob, url("/")), "closed");
	ob_free(ob);
}
END_TEST

START_TEST(connections_are_kept_alive)
{
	struct ob *ob = client((struct ob_config){0});
	struct answer a;

	get(ob, "/status/200", 0, &a);
	get(ob, "/echo", 0, &a);
	ck_assert_int_eq(a.status, 200);
	ck_assert_int_eq(count(&seen->requests), 2);
	ck_assert_int_eq(count(&seen->connections), 1);
	ob_free(ob);
}
END_TEST

START_TEST(metrics_per_endpoint)
{
	static const char *const families[] = {
	    "# TYPE t_out_requests_total counter\n",
	    "# TYPE t_out_request_duration_seconds histogram\n",
	    "# TYPE t_out_retries_total counter\n",
	    "# TYPE t_out_breaker_state gauge\n",
	    "# TYPE t_out_breaker_transitions_total counter\n",
	};
	struct ob *ob =
	    client((struct ob_config){.metrics_prefix = "t_out", .max_attempts = 2});
	char *text, line[256];
	struct answer a;
	size_t i;

	get(ob, "/status/200", 0, &a);
	get(ob, "/seq/2/500,204", 0, &a);
	text = metrics(ob);
	for (i = 0; i < sizeof families / sizeof families[0]; i++)
		ck_assert_int_eq(occurrences(text, families[i]), 1);
	snprintf(line, sizeof line,
	         "t_out_requests_total{endpoint=\"http://127.0.0.1:%d\",outcome=\"ok\","
	         "class=\"2xx\"} 2\n",
	         server_port);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	snprintf(line, sizeof line,
	         "t_out_retries_total{endpoint=\"http://127.0.0.1:%d\"} 1\n",
	         server_port);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	snprintf(line, sizeof line,
	         "t_out_request_duration_seconds_bucket{endpoint=\"http://127.0.0.1:%d\","
	         "le=\"+Inf\"} 3\n",
	         server_port);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	ck_assert_int_eq(occurrences(text, "t_out_request_duration_seconds_bucket{"), 14);
	ck_assert_int_eq(occurrences(text, "t_out_breaker_state{"), 1);
	free(text);
	ob_free(ob);
}
END_TEST

/* address_ok letting only the test server be reached. */
static bool
server_only(const struct sockaddr *sa, socklen_t len, void *arg)
{
	return ntohs(((const struct sockaddr_in *)sa)->sin_port) == server_port;
}

START_TEST(the_endpoint_table_is_bounded)
{
	struct ob *ob =
	    client((struct ob_config){.failure_threshold = 1, .address_ok = server_only});
	char u[64], *text;
	struct answer a;
	int i;

	get(ob, "/status/500", 1, &a);
	ck_assert_str_eq(ob_breaker(ob, url("/")), "open");
	for (i = 1; i <= 300; i++) {
		snprintf(u, sizeof u, "http://127.0.0.1:%d/", i);
		call(ob, &(struct ob_request){.method = "GET", .url = u}, &a);
		ck_assert_int_eq(a.result, OB_ADDRESS);
	}
	text = metrics(ob);
	ck_assert_int_eq(occurrences(text, "assay_outbound_breaker_state{"), 256);
	snprintf(u, sizeof u, "{endpoint=\"http://127.0.0.1:%d\"} 2\n", server_port);
	ck_assert_ptr_nonnull(strstr(text, u)); /* open: kept */
	ck_assert_ptr_null(strstr(text, "{endpoint=\"http://127.0.0.1:1\"}"));
	ck_assert_ptr_nonnull(strstr(text, "{endpoint=\"http://127.0.0.1:300\"}"));
	free(text);
	ob_free(ob);
}
END_TEST

UNIT_MAIN_FIXTURE("outbound", server_start, server_stop, answers_and_bodies,
                  authentication_without_secrets_in_the_log, retries_on_5xx_only,
                  retry_after_is_honoured, timeouts_and_network_errors,
                  requests_in_flight_end_without_callback,
                  the_breaker_opens_probes_and_closes, refused_addresses_are_not_reached,
                  connections_are_kept_alive, metrics_per_endpoint,
                  the_endpoint_table_is_bounded)
