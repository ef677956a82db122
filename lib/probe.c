/*
 * See probe.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "probe.h"

int
probe_listen(const char *addr, long port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;

	sa.sin_port = htons((uint16_t)port);
	if (fd < 0 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
		log_msg(LOG_ERROR, "cannot listen on %s:%ld: %s", addr, port,
		        strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

void
probe_serve(int fd, int (*fn)(const char *, FILE *, const char **, void *), void *arg)
{
	struct timeval tv = {0, 200000};
	char req[1024], path[256] = "", head[256], *body = NULL;
	const char *ctype = "application/json", *status = "200 OK";
	size_t len = 0;
	ssize_t n;
	FILE *f;
	int c;

	c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return;
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	n = read(c, req, sizeof req - 1);
	req[n > 0 ? n : 0] = '\0';
	if (strncmp(req, "GET ", 4) == 0)
		snprintf(path, sizeof path, "%.*s", (int)strcspn(req + 4, " ?\r\n"),
		         req + 4);
	f = open_memstream(&body, &len);
	if (path[0] == '\0' || !fn(path, f, &ctype, arg)) {
		status = "404 Not Found";
		ctype = "application/problem+json";
		fprintf(
		    f, "{\"type\":\"about:blank\",\"title\":\"Not Found\",\"status\":404,"
		       "\"detail\":\"this port serves GET /health and GET /metrics\"}");
	}
	fclose(f);
	snprintf(head, sizeof head,
	         "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	         "Connection: close\r\n\r\n",
	         status, ctype, len);
	if (write(c, head, strlen(head)) < 0 || write(c, body, len) < 0) {
		/* the client left */
	}
	free(body);
	close(c);
}
