/*
 * Unit tests for lib/probe.c, over a real loopback socket: a known path
 * gets 200 with what the callback wrote and its type, the query string is
 * not part of the path, anything else gets a problem+json 404.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "unit.h"

static int
health(const char *path, FILE *f, const char **ctype, void *arg)
{
	(void)arg;
	if (strcmp(path, "/health") != 0)
		return 0;
	*ctype = "application/health+json";
	fputs("{\"status\":\"pass\"}", f);
	return 1;
}

/* Send request to a probe port and return its whole answer. */
static const char *
ask(const char *request)
{
	static char answer[2048];
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int lfd = probe_listen("127.0.0.1", 0), c;
	ssize_t n, got = 0;

	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, len), 0);
	ck_assert_int_eq(write(c, request, strlen(request)), (ssize_t)strlen(request));
	probe_serve(lfd, health, NULL);
	while ((n = read(c, answer + got, sizeof answer - 1 - (size_t)got)) > 0)
		got += n;
	answer[got] = '\0';
	close(c);
	close(lfd);
	return answer;
}

START_TEST(known_path_answered)
{
	const char *a = ask("GET /health?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n");

	ck_assert_msg(strncmp(a, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", a);
	ck_assert_ptr_nonnull(strstr(a, "Content-Type: application/health+json\r\n"));
	ck_assert_ptr_nonnull(strstr(a, "Content-Length: 17\r\n"));
	ck_assert_ptr_nonnull(strstr(a, "\r\n\r\n{\"status\":\"pass\"}"));
}
END_TEST

START_TEST(anything_else_is_a_problem_404)
{
	const char *a = ask("GET /nothing HTTP/1.1\r\n\r\n");

	ck_assert_msg(strncmp(a, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", a);
	ck_assert_ptr_nonnull(strstr(a, "Content-Type: application/problem+json\r\n"));
	a = ask("POST /health HTTP/1.1\r\n\r\n");
	ck_assert_msg(strncmp(a, "HTTP/1.1 404 Not Found\r\n", 24) == 0, "%s", a);
}
END_TEST

UNIT_MAIN("probe", known_path_answered, anything_else_is_a_problem_404)
