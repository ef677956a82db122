/*
 * Configuration: INI files described by one key table per program. The
 * table drives parsing, environment overrides, the `-t` check, the sample
 * file in etc/ and the reference in doc/, so they cannot drift apart.
 * This module never exits or logs: it reports every problem to the caller
 * as "file:line: message" text.
 */
#ifndef ASSAY_CFG_H
#define ASSAY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
	CFG_STRING,
	CFG_INT,      /* decimal, within [min, max] */
	CFG_BOOL,     /* true/false, yes/no, on/off, 1/0 */
	CFG_ENUM,     /* one of choices; the value is its index */
	CFG_MODE,     /* octal file mode such as 0660 */
	CFG_NETWORKS, /* comma-separated CIDRs or addresses, or empty */
};

#define CFG_RELOADABLE 0x1 /* takes effect on SIGHUP */
#define CFG_SECRET     0x2 /* password part is masked when printed */

struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_type type;
	const char *def;            /* default, spelled as in the file */
	const char *env;            /* overriding environment variable, or NULL */
	long min, max;              /* CFG_INT bounds */
	const char *const *choices; /* CFG_ENUM names, NULL-terminated */
	unsigned flags;
	const char *doc; /* one sentence for the sample file and the reference */
};

struct cfg;

/*
 * Load defaults, then path (if not NULL), then the environment. A missing
 * file is an error only if required. On failure returns NULL and sets
 * *errors to a newly allocated list of "where: what" lines (caller frees).
 */
struct cfg *cfg_load(const struct cfg_key *keys, size_t nkeys, const char *path,
                     bool required, char **errors);
void cfg_free(struct cfg *);
/*
 * cfg_load for SIGHUP in a running daemon: on failure each error is logged
 * as its own line, then "reload failed; keeping the current configuration",
 * and NULL is returned (the caller keeps what it has).
 */
struct cfg *cfg_reload(const struct cfg_key *keys, size_t nkeys, const char *path,
                       bool required);
/*
 * What a program's main() does with its configuration: load it, or print
 * the errors to stderr; with test (-t), print it and "configuration ok".
 * NULL means exit now with *status (0 after a passed test, 1 on errors).
 */
struct cfg *cfg_startup(const struct cfg_key *keys, size_t nkeys, const char *path,
                        bool required, bool test, int *status);

const char *cfg_str(const struct cfg *, size_t key);
long cfg_int(const struct cfg *, size_t key); /* INT, BOOL, ENUM and MODE values */
const char *cfg_path(const struct cfg *);     /* file read, or NULL */
/* The value as text, with any password replaced by "***". Caller frees. */
char *cfg_text(const struct cfg *, size_t key);
/* Whether key has different values in the two configurations. */
bool cfg_differs(const struct cfg *, const struct cfg *, size_t key);

/* Effective configuration, for -t. Secrets masked. */
void cfg_print(const struct cfg *, FILE *);
/* The sample file and the Markdown reference, generated from the table. */
void cfg_write_sample(const struct cfg_key *, size_t, const char *file, FILE *);
/* The reference of file's keys, as a Markdown table or a section 5 manual page. */
enum cfg_doc { CFG_DOC_MARKDOWN, CFG_DOC_MAN };
void cfg_write_doc(const struct cfg_key *, size_t, const char *file, enum cfg_doc,
                   FILE *);
/* The options every program with a key table has: 'S' (--sample-config)
 * writes the sample file, 'D' (--config-doc) the Markdown doc, 'M'
 * (--config-man) the manual page, to out. CFG_LONG_OPTIONS are their
 * getopt_long entries. */
#define CFG_LONG_OPTIONS                                                                 \
	{"sample-config", no_argument, NULL, 'S'},                                       \
	    {"config-doc", no_argument, NULL, 'D'},                                      \
	{                                                                                \
		"config-man", no_argument, NULL, 'M'                                     \
	}
void cfg_write_option(int opt, const struct cfg_key *, size_t, const char *file,
                      FILE *out);

#endif
