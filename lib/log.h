/*
 * Structured logging: one JSON object per line on stderr, so journald and
 * log shippers can read it as is. Every line carries time, level, program
 * and pid. Callers must never pass secrets (API keys, tokens, passwords,
 * Authorization headers) as fields or in messages.
 */
#ifndef ASSAY_LOG_H
#define ASSAY_LOG_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Level names in order, NULL-terminated: the config table's choices. */
extern const char *const log_level_names[];

void log_init(const char *program);
void log_set_level(enum log_level);
bool log_enabled(enum log_level);
void log_msg(enum log_level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Log msg with the members of fields (a JSON object, may be NULL) added to
 * the line. Takes ownership of fields.
 */
void log_kv(enum log_level, const char *msg, struct json_object *fields);
/*
 * Log msg with members, preformatted JSON object members without braces
 * ("\"status\":200,\"route\":\"/live\""), or NULL. For hot paths.
 */
void log_line(enum log_level, const char *msg, const char *members);
/* Escape in as the inside of a JSON string into out (bytes that are not
 * UTF-8 become \ufffd, so the line stays valid); returns its length. */
size_t log_json_escape(const char *in, char *out, size_t len);

#endif
