/*
 * Route matching: a method and a path against a table of patterns. Pure
 * functions over the table; no I/O, no allocation. Path parameters are
 * copied out, so the match outlives nothing it points into.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "extern.h"

static const struct {
	unsigned bit;
	const char *name;
} methods[] = {
    {M_GET, "GET"}, {M_HEAD, "HEAD"},   {M_POST, "POST"},
    {M_PUT, "PUT"}, {M_PATCH, "PATCH"}, {M_DELETE, "DELETE"},
};

unsigned
route_method(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(methods[i].name, name) == 0)
			return methods[i].bit;
	return 0;
}

void
route_allow(unsigned bits, char *buf, size_t len)
{
	size_t i, used = 0;

	buf[0] = '\0';
	if (bits & M_GET)
		bits |= M_HEAD;
	for (i = 0; i < sizeof methods / sizeof methods[0] && used < len; i++)
		if (bits & methods[i].bit)
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
			                         used ? ", " : "", methods[i].name);
}

/*
 * Does path match pattern? Literal segments compare exactly; "{name}"
 * takes one non-empty segment into m->params, except a final "{path}",
 * which takes the rest of the path, slashes included.
 */
static bool
route_path_matches(const char *pattern, const char *path, struct route_match *m)
{
	const char *p = pattern, *s = path;
	size_t plen, slen;

	m->nparams = 0;
	while (*p == '/' && *s == '/') {
		p++;
		s++;
		plen = strcspn(p, "/");
		slen = strcspn(s, "/");
		if (strcmp(p, "{path}") == 0)
			slen = strlen(s);
		if (p[0] == '{') {
			if (slen == 0 || slen >= sizeof m->params[0] ||
			    m->nparams == ROUTE_MAX_PARAMS)
				return false;
			memcpy(m->params[m->nparams], s, slen);
			m->params[m->nparams++][slen] = '\0';
		} else if (plen != slen || strncmp(p, s, plen) != 0) {
			return false;
		}
		p += plen;
		s += slen;
	}
	return *p == '\0' && *s == '\0';
}

/* One pass over the rows whose patterns are literal (or not): the first
 * that matches path and method, else the methods of those matching path. */
static enum route_rc
route_pass(const struct route *table, size_t n, unsigned want, const char *path,
           bool literal, struct route_match *m)
{
	unsigned accepts;
	size_t i;

	for (i = 0; i < n; i++) {
		if ((strchr(table[i].pattern, '{') == NULL) != literal ||
		    !route_path_matches(table[i].pattern, path, m))
			continue;
		accepts = table[i].methods;
		if (accepts & M_GET)
			accepts |= M_HEAD;
		if (want & accepts) {
			m->route = &table[i];
			m->allow = 0;
			return ROUTE_OK;
		}
		m->allow |= accepts;
	}
	m->nparams = 0;
	return m->allow ? ROUTE_BAD_METHOD : ROUTE_NOT_FOUND;
}

/* A path a literal pattern names is that route's alone:
 * /api/v1/runs/batch is never a run's {id}. */
enum route_rc
route_match(const struct route *table, size_t n, const char *method, const char *path,
            struct route_match *m)
{
	unsigned want = route_method(method);
	enum route_rc rc;

	memset(m, 0, sizeof *m);
	if ((rc = route_pass(table, n, want, path, true, m)) != ROUTE_NOT_FOUND)
		return rc;
	return route_pass(table, n, want, path, false, m);
}
