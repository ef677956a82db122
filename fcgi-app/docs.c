/*
 * The API reference: GET /openapi.json and Swagger UI's page at /api-docs/,
 * read from the web server's document root (DOCUMENT_ROOT) when api_docs
 * is on, 404 when it is off (ENABLE_API_DOCS=false). The web servers send
 * these paths here so that the switch is one key of assay.conf whichever
 * server is in front; Swagger UI's own files (/api-docs/dist/) stay static.
 * Only those two files are ever read.
 */
#include "config.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extern.h"
#include "xalloc.h"

/* The whole of root/file into a malloc'd buffer (caller frees), or NULL. */
static char *
docs_read(const char *root, const char *file, size_t *len)
{
	char path[4096];
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	size_t got = 0;
	int fd = -1;

	if ((size_t)snprintf(path, sizeof path, "%s/%s", root, file) >= sizeof path)
		goto err;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto err;
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			goto err;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
err:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

void
docs_serve(struct req *r)
{
	bool spec = strcmp(r->path, "/openapi.json") == 0; /* else Swagger UI's page */
	const char *root = http_param(r, "DOCUMENT_ROOT");
	const char *file = spec ? "openapi.json" : "api-docs/index.html";
	size_t len = 0;
	char *body;

	if (!cfg_int(r->app->cfg, API_DOCS)) {
		http_problem(r, 404, "NOT_FOUND", NULL,
		             "the API reference is turned off (api_docs = false)");
		return;
	}
	body = root != NULL ? docs_read(root, file, &len) : NULL;
	if (body == NULL) {
		http_problem(r, 404, "NOT_FOUND", NULL,
		             "the web server's document root has no %s", file);
		return;
	}
	http_send(r, 200, spec ? "application/json" : "text/html; charset=utf-8", NULL,
	          body, len);
	free(body);
}
