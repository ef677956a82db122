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

enum route_rc
route_match(const struct route *table, size_t n, const char *method, const char *path,
            struct route_match *m)
{
	unsigned want = route_method(method), accepts;
	const char *pattern = NULL;
	size_t i;

	memset(m, 0, sizeof *m);
	for (i = 0; i < n; i++) {
		/* The first pattern that matches is the path's: a literal row
		 * placed before one with a parameter in its place wins. */
		if ((pattern != NULL && strcmp(table[i].pattern, pattern) != 0) ||
		    !route_path_matches(table[i].pattern, path, m))
			continue;
		pattern = table[i].pattern;
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
