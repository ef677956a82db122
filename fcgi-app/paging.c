/*
 * Keyset pages for the listings (runs, analyses): a page of rows and the
 * cursor of the next page out, for ?limit= and ?cursor= as the route's
 * query table (list_query) has checked them. A cursor is "<sort key>_<id>"
 * as the listing's query made it. Never queries the database itself.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "extern.h"

/* One row more than the page tells whether a next page exists. */
const char *
list_fetch(const struct req *r, char buf[24])
{
	snprintf(buf, 24, "%ld", r->q[QF_LIMIT].num + 1);
	return buf;
}

/* Send {"success":true,"<name>":[rows' column 0],"next_cursor":...}; column 1 is the
 * cursor. Clears res; NULL (the query failed and 503 was answered): nothing. */
void
list_send(struct req *r, const char *name, PGresult *res)
{
	long limit = r->q[QF_LIMIT].num;
	int n, i, shown;
	size_t len = 0;
	char *buf = NULL;
	FILE *f;

	if (res == NULL)
		return;
	n = PQntuples(res);
	shown = n > limit ? (int)limit : n;
	f = open_memstream(&buf, &len);
	fprintf(f, "\"%s\":[", name);
	for (i = 0; i < shown; i++)
		fprintf(f, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
	if (n > limit)
		fprintf(f, "],\"next_cursor\":\"%s\"", PQgetvalue(res, shown - 1, 1));
	else
		fprintf(f, "],\"next_cursor\":null");
	fclose(f);
	PQclear(res);
	http_success(r, 200, NULL, buf);
	free(buf);
}
