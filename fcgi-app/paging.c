/*
 * Keyset pages for the listings (runs, analyses): ?limit= and ?cursor= in,
 * a page of rows and the cursor of the next page out. A cursor is
 * "<sort key>_<id>" as the listing's query made it; this file only checks
 * its shape. Never queries the database itself.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "httpmsg.h"

/* Parse ?limit= and ?cursor= for keyset listings; false after answering 400. */
bool
list_page(struct req *r, char limit[8], char cursor[128])
{
	char *end;
	long n = 20;
	int given;

	if ((given = http_query(r, "limit", limit, 8)) < 0)
		return false;
	if (given) {
		n = strtol(limit, &end, 10);
		if (*end != '\0' || n < 1 || n > 100) {
			http_problem(r, 400, "INVALID_PARAMETER", NULL,
			             "limit must be 1 to 100");
			return false;
		}
	}
	snprintf(limit, 8, "%ld", n + 1); /* one more tells whether a next page exists */
	if ((given = http_query(r, "cursor", cursor, 128)) < 0)
		return false;
	if (!given) {
		cursor[0] = '\0';
	} else if (strspn(cursor, "0123456789") == 0 ||
	           cursor[strspn(cursor, "0123456789")] != '_' ||
	           !httpmsg_uuid(cursor + strspn(cursor, "0123456789") + 1)) {
		http_problem(r, 400, "INVALID_PARAMETER", NULL,
		             "cursor is not one this API returned");
		return false;
	}
	return true;
}

/* Send {"success":true,"<name>":[rows' column 0],"next_cursor":...}; column 1 is the
 * cursor. */
void
list_send(struct req *r, const char *name, PGresult *res, long limit)
{
	int n = PQntuples(res), i, shown = n > limit ? (int)limit : n;
	size_t len = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	fprintf(f, "\"%s\":[", name);
	for (i = 0; i < shown; i++)
		fprintf(f, "%s%s", i ? "," : "", PQgetvalue(res, i, 0));
	if (n > limit)
		fprintf(f, "],\"next_cursor\":\"%s\"", PQgetvalue(res, shown - 1, 1));
	else
		fprintf(f, "],\"next_cursor\":null");
	fclose(f);
	http_success(r, 200, NULL, buf);
	free(buf);
}
