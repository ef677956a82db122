/*
 * INI configuration driven by a key table: see cfg.h. Values are parsed
 * from text in one place (cfg_set) whatever their source, so a default, a
 * file line and an environment variable obey the same rules. Never exits,
 * never logs.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "cfg.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

struct cfg_value {
	char *text; /* as written, always set */
	long num;   /* parsed number for non-string types */
};

struct cfg {
	const struct cfg_key *keys;
	size_t nkeys;
	struct cfg_value *v;
	char *path;
};

/* A growing list of error lines. */
struct errbuf {
	char *s;
	size_t len;
};

static void __attribute__((format(printf, 2, 3)))
err_add(struct errbuf *e, const char *fmt, ...)
{
	va_list ap;
	char line[512];
	size_t n;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	n = strlen(line);
	e->s = xrealloc(e->s, e->len + n + 2);
	memcpy(e->s + e->len, line, n);
	e->len += n;
	e->s[e->len++] = '\n';
	e->s[e->len] = '\0';
}

static const char *const bool_true[] = {"true", "yes", "on", "1", NULL};
static const char *const bool_false[] = {"false", "no", "off", "0", NULL};

static int
word_index(const char *const *words, const char *s)
{
	int i;

	for (i = 0; words[i] != NULL; i++)
		if (strcasecmp(words[i], s) == 0)
			return i;
	return -1;
}

/* Parse text for key k into *out. Returns NULL, or why not in why (len
 * bytes). */
static const char *
cfg_parse(const struct cfg_key *k, const char *text, long *out, char *why, size_t len)
{
	const char *bad;
	char *end;
	long n;

	switch (k->type) {
	case CFG_STRING:
		*out = 0;
		return NULL;
	case CFG_NETWORKS: /* any address: only the entries' parsing matters */
		*out = 0;
		util_addr_in("::", text, &bad);
		if (bad == NULL)
			return NULL;
		snprintf(
		    why, len,
		    "not a list of networks: '%.*s' is neither a CIDR nor an address",
		    (int)strcspn(bad, ", \t"), bad);
		return why;
	case CFG_INT:
		errno = 0;
		n = strtol(text, &end, 10);
		if (errno != 0 || end == text || *end != '\0')
			return "not an integer";
		if (n < k->min || n > k->max)
			return "out of range";
		*out = n;
		return NULL;
	case CFG_MODE:
		errno = 0;
		n = strtol(text, &end, 8);
		if (errno != 0 || end == text || *end != '\0' || n < 0 || n > 07777)
			return "not an octal file mode";
		*out = n;
		return NULL;
	case CFG_BOOL:
		if (word_index(bool_true, text) >= 0)
			*out = 1;
		else if (word_index(bool_false, text) >= 0)
			*out = 0;
		else
			return "not a boolean (true or false)";
		return NULL;
	case CFG_ENUM:
		n = word_index(k->choices, text);
		if (n < 0)
			return "not one of the allowed values";
		*out = n;
		return NULL;
	}
	return "unknown type";
}

static void
cfg_describe_range(const struct cfg_key *k, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	if (k->type == CFG_INT)
		snprintf(buf, len, " (%ld..%ld)", k->min, k->max);
	else if (k->type == CFG_ENUM) {
		used += (size_t)snprintf(buf, len, " (");
		for (i = 0; k->choices[i] != NULL && used < len; i++)
			used += (size_t)snprintf(buf + used, len - used, "%s%s",
			                         i ? ", " : "", k->choices[i]);
		if (used < len)
			snprintf(buf + used, len - used, ")");
	}
}

static bool
cfg_set(struct cfg *c, size_t i, const char *text, const char *where, struct errbuf *e)
{
	const struct cfg_key *k = &c->keys[i];
	const char *why;
	char range[256], buf[256];
	long n;

	why = cfg_parse(k, text, &n, buf, sizeof buf);
	if (why != NULL) {
		cfg_describe_range(k, range, sizeof range);
		err_add(e, "%s: %s: '%s' is %s%s", where, k->name, text, why, range);
		return false;
	}
	free(c->v[i].text);
	c->v[i].text = xstrdup(text);
	c->v[i].num = n;
	return true;
}

static char *
trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int
cfg_find(const struct cfg *c, const char *section, const char *name)
{
	size_t i;

	for (i = 0; i < c->nkeys; i++)
		if (strcmp(c->keys[i].section, section) == 0 &&
		    strcmp(c->keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

static bool
cfg_known_section(const struct cfg *c, const char *section)
{
	size_t i;

	for (i = 0; i < c->nkeys; i++)
		if (strcmp(c->keys[i].section, section) == 0)
			return true;
	return false;
}

/*
 * Keys earlier versions had: a file an operator kept from one of them
 * still loads (the key is ignored, with a warning that says what replaced
 * it) instead of stopping the program after an upgrade.
 */
static const struct {
	const char *section, *name, *instead;
} retired_keys[] = {
    {"executor", "result_max_bytes",
     "results above result_inline_max are stored apart, up to [tiers] "
     "<tier>_result_max_bytes"},
};

static bool
cfg_retired(const char *section, const char *name, const char *where)
{
	size_t i;

	for (i = 0; i < sizeof retired_keys / sizeof retired_keys[0]; i++)
		if (strcmp(retired_keys[i].section, section) == 0 &&
		    strcmp(retired_keys[i].name, name) == 0) {
			log_msg(LOG_WARN,
			        "config: %s: '%s' in [%s] is no longer used and "
			        "is ignored: %s",
			        where, name, section, retired_keys[i].instead);
			return true;
		}
	return false;
}

static void
cfg_read_file(struct cfg *c, FILE *f, struct errbuf *e)
{
	char line[4096], section[64] = "", where[600];
	char *p, *eq, *name, *value, *close;
	unsigned lineno = 0;
	size_t vlen;
	int i;

	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		snprintf(where, sizeof where, "%s:%u", c->path, lineno);
		p = trim(line);
		if (*p == '\0' || *p == '#' || *p == ';')
			continue;
		if (*p == '[') {
			close = strchr(p, ']');
			if (close == NULL || close[1] != '\0' ||
			    (size_t)(close - p - 1) >= sizeof section) {
				err_add(e, "%s: malformed section header", where);
				continue;
			}
			*close = '\0';
			snprintf(section, sizeof section, "%s", trim(p + 1));
			if (!cfg_known_section(c, section))
				err_add(e, "%s: unknown section [%s]", where, section);
			continue;
		}
		eq = strchr(p, '=');
		if (eq == NULL) {
			err_add(e, "%s: expected 'key = value'", where);
			continue;
		}
		*eq = '\0';
		name = trim(p);
		value = trim(eq + 1);
		vlen = strlen(value);
		if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
			value[vlen - 1] = '\0';
			value++;
		}
		if (section[0] == '\0') {
			err_add(e, "%s: key '%s' outside any [section]", where, name);
			continue;
		}
		if (!cfg_known_section(c, section))
			continue; /* already reported once for the header */
		i = cfg_find(c, section, name);
		if (i < 0 && cfg_retired(section, name, where))
			continue;
		if (i < 0) {
			err_add(e, "%s: unknown key '%s' in [%s]", where, name, section);
			continue;
		}
		cfg_set(c, (size_t)i, value, where, e);
	}
}

struct cfg *
cfg_load(const struct cfg_key *keys, size_t nkeys, const char *path, bool required,
         char **errors)
{
	struct errbuf e = {NULL, 0};
	struct cfg *c;
	const char *env;
	char where[128];
	FILE *f;
	size_t i;

	c = xcalloc(1, sizeof *c);
	c->keys = keys;
	c->nkeys = nkeys;
	c->v = xcalloc(nkeys, sizeof *c->v);
	for (i = 0; i < nkeys; i++) {
		snprintf(where, sizeof where, "default for [%s]", keys[i].section);
		cfg_set(c, i, keys[i].def, where, &e);
	}
	if (path != NULL) {
		c->path = xstrdup(path);
		f = fopen(path, "r");
		if (f != NULL) {
			cfg_read_file(c, f, &e);
			fclose(f);
		} else if (required || errno != ENOENT) {
			err_add(&e, "%s: cannot open: %s", path, strerror(errno));
		} else {
			free(c->path);
			c->path = NULL;
		}
	}
	for (i = 0; i < nkeys; i++) {
		if (keys[i].env == NULL || (env = getenv(keys[i].env)) == NULL)
			continue;
		snprintf(where, sizeof where, "environment %s", keys[i].env);
		cfg_set(c, i, env, where, &e);
	}
	*errors = e.s;
	if (e.s != NULL) {
		cfg_free(c);
		return NULL;
	}
	return c;
}

struct cfg *
cfg_startup(const struct cfg_key *keys, size_t nkeys, const char *path, bool required,
            bool test, int *status)
{
	char *errors = NULL;
	struct cfg *c = cfg_load(keys, nkeys, path, required, &errors);

	*status = 1;
	if (c == NULL) {
		fputs(errors, stderr);
		free(errors);
		return NULL;
	}
	if (test) {
		cfg_print(c, stdout);
		printf("# configuration ok\n");
		cfg_free(c);
		*status = 0;
		return NULL;
	}
	return c;
}

struct cfg *
cfg_reload(const struct cfg_key *keys, size_t nkeys, const char *path, bool required)
{
	char *errors = NULL, *line, *save = NULL;
	struct cfg *c = cfg_load(keys, nkeys, path, required, &errors);

	if (c != NULL)
		return c;
	for (line = strtok_r(errors, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		log_msg(LOG_ERROR, "config: %s", line);
	log_msg(LOG_ERROR, "reload failed; keeping the current configuration");
	free(errors);
	return NULL;
}

void
cfg_free(struct cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nkeys; i++)
		free(c->v[i].text);
	free(c->v);
	free(c->path);
	free(c);
}

const char *
cfg_str(const struct cfg *c, size_t key)
{
	return c->v[key].text;
}

long
cfg_int(const struct cfg *c, size_t key)
{
	return c->v[key].num;
}

const char *
cfg_path(const struct cfg *c)
{
	return c->path;
}

bool
cfg_differs(const struct cfg *a, const struct cfg *b, size_t key)
{
	return strcmp(a->v[key].text, b->v[key].text) != 0;
}

/*
 * A libpq connection string (URL or keywords) as libpq itself reads it
 * (PQconninfoParse), written back as keywords with the password masked:
 * no form of writing a password (a URL's userinfo, ?password=, a quoted
 * keyword value) escapes. What libpq cannot parse is masked whole.
 */
static char *
mask_password(const char *s)
{
	PQconninfoOption *opts = PQconninfoParse(s, NULL), *o;
	char *out = NULL, *next;
	const char *v;
	size_t i;

	if (opts == NULL)
		return xstrdup("*** (not a valid connection string)");
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		/* Quoted as libpq reads it: 'value', with \ and \' escaped. */
		next = xasprintf("%s%s%s='", out ? out : "", out ? " " : "", o->keyword);
		free(out);
		out = next;
		v = o->dispchar[0] == '*' ? "***" : o->val; /* libpq's own secrets */
		for (i = 0; v[i] != '\0'; i++) {
			next = xasprintf("%s%s%c", out,
			                 v[i] == '\'' || v[i] == '\\' ? "\\" : "", v[i]);
			free(out);
			out = next;
		}
		next = xasprintf("%s'", out);
		free(out);
		out = next;
	}
	PQconninfoFree(opts);
	return out ? out : xstrdup("");
}

char *
cfg_text(const struct cfg *c, size_t key)
{
	if (c->keys[key].flags & CFG_SECRET)
		return mask_password(c->v[key].text);
	return xstrdup(c->v[key].text);
}

void
cfg_print(const struct cfg *c, FILE *out)
{
	const char *section = "";
	char *text;
	size_t i;

	fprintf(out, "# configuration file: %s\n",
	        c->path ? c->path : "(none, defaults)");
	for (i = 0; i < c->nkeys; i++) {
		if (strcmp(section, c->keys[i].section) != 0) {
			section = c->keys[i].section;
			fprintf(out, "[%s]\n", section);
		}
		text = cfg_text(c, i);
		fprintf(out, "%s = %s\n", c->keys[i].name, text);
		free(text);
	}
}

static const char *const type_names[] = {"string", "integer", "boolean",
                                         "enum",   "mode",    "networks"};

void
cfg_write_sample(const struct cfg_key *keys, size_t n, const char *file, FILE *out)
{
	const char *section = "";
	char range[256];
	size_t i;

	fprintf(out, "# %s: sample configuration.\n", file);
	fprintf(
	    out,
	    "# Every key is shown with its default value. The environment variable\n"
	    "# named beside a key overrides the file. Generated from the key table.\n");
	for (i = 0; i < n; i++) {
		if (strcmp(section, keys[i].section) != 0) {
			section = keys[i].section;
			fprintf(out, "\n[%s]\n", section);
		}
		cfg_describe_range(&keys[i], range, sizeof range);
		fprintf(out, "\n# %s\n# %s%s", keys[i].doc, type_names[keys[i].type],
		        range);
		if (keys[i].env != NULL)
			fprintf(out, "; environment: %s", keys[i].env);
		fprintf(out, "; %s\n",
		        keys[i].flags & CFG_RELOADABLE ? "reloaded on SIGHUP"
		                                       : "needs a restart");
		fprintf(out, "%s =%s%s\n", keys[i].name, keys[i].def[0] ? " " : "",
		        keys[i].def);
	}
}

/* Text for roff: backslashes escaped, no line may start with a dot. */
static void
man_text(FILE *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", out);
	for (; *s != '\0'; s++)
		if (*s == '\\')
			fputs("\\e", out);
		else if (*s == '-')
			fputs("\\-", out);
		else
			fputc(*s, out);
}

static void
write_man(const struct cfg_key *keys, size_t n, const char *file, FILE *out)
{
	const char *section = "";
	char range[256];
	size_t i;

	fputs(".\\\" Generated from the key table; do not edit.\n.TH ", out);
	man_text(out, file);
	fprintf(out, " 5 \"\" \"%s %s\" \"File formats\"\n.SH NAME\n", PACKAGE_NAME,
	        PACKAGE_VERSION);
	man_text(out, file);
	fprintf(out, " \\- %s configuration file\n.SH SYNOPSIS\n.B /etc/assay/",
	        PACKAGE_NAME);
	man_text(out, file);
	fputs(
	    "\n.SH DESCRIPTION\n"
	    "An INI file: \\fB[section]\\fP headers, \\fIkey\\fP = \\fIvalue\\fP lines, "
	    "\\fB#\\fP comments. Every key is optional and has the default shown. "
	    "An environment variable named beside a key overrides the file. Unknown "
	    "keys and bad values are errors reported with file and line; the "
	    "programs' \\fB\\-t\\fP option checks a file. Keys marked "
	    "\\(lqreloaded on SIGHUP\\(rq take effect on SIGHUP; the others need a "
	    "restart. A broken file on SIGHUP is refused and the running "
	    "configuration kept.\n",
	    out);
	for (i = 0; i < n; i++) {
		if (strcmp(section, keys[i].section) != 0) {
			section = keys[i].section;
			fprintf(out, ".SS [%s]\n", section);
		}
		cfg_describe_range(&keys[i], range, sizeof range);
		fprintf(out, ".TP\n.BR %s \" = \"", keys[i].name);
		man_text(out, keys[i].def);
		fprintf(out, "\n%s", type_names[keys[i].type]);
		man_text(out, range);
		if (keys[i].env != NULL)
			fprintf(out, "; environment \\fB%s\\fP", keys[i].env);
		fprintf(out, "; %s.\n",
		        keys[i].flags & CFG_RELOADABLE ? "reloaded on SIGHUP"
		                                       : "needs a restart");
		fputs(".br\n", out);
		man_text(out, keys[i].doc);
		fputc('\n', out);
	}
	fputs(".SH SEE ALSO\n.BR assay\\-api (8),\n.BR assay\\-stream (8),\n"
	      ".BR assay\\-executor (8),\n.BR assayctl (8)\n",
	      out);
}

void
cfg_write_doc(const struct cfg_key *keys, size_t n, const char *file, enum cfg_doc format,
              FILE *out)
{
	char range[256];
	size_t i;

	if (format == CFG_DOC_MAN) {
		write_man(keys, n, file, out);
		return;
	}
	fprintf(out, "# `%s`\n\n", file);
	fprintf(
	    out,
	    "INI file; `[section]` headers, `key = value` lines, `#` comments.\n"
	    "Environment variables override the file. Unknown keys and bad values\n"
	    "are errors reported with file and line. Generated from the key table.\n\n");
	fprintf(
	    out,
	    "| section | key | type | default | environment | SIGHUP | description |\n");
	fprintf(out, "|---|---|---|---|---|---|---|\n");
	for (i = 0; i < n; i++) {
		cfg_describe_range(&keys[i], range, sizeof range);
		fprintf(out, "| %s | `%s` | %s%s | `%s` | %s | %s | %s |\n",
		        keys[i].section, keys[i].name, type_names[keys[i].type], range,
		        keys[i].def, keys[i].env ? keys[i].env : "",
		        keys[i].flags & CFG_RELOADABLE ? "yes" : "no", keys[i].doc);
	}
}

void
cfg_write_option(int opt, const struct cfg_key *keys, size_t n, const char *file,
                 FILE *out)
{
	if (opt == 'S')
		cfg_write_sample(keys, n, file, out);
	else
		cfg_write_doc(keys, n, file, opt == 'D' ? CFG_DOC_MARKDOWN : CFG_DOC_MAN,
		              out);
}
