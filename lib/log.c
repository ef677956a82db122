/*
 * JSON-lines logger on stderr. A line is written with one write(2) so
 * lines from prefork workers sharing stderr never interleave. It must not
 * allocate through the x* wrappers' abort path in a way that loops: on
 * failure it drops the line.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "util.h"

const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

static const char *log_program = "assay";
static enum log_level log_min = LOG_INFO;

void
log_init(const char *program)
{
	log_program = program;
	/* The only doubles Assay prints are durations in milliseconds. */
	json_c_set_serialization_double_format("%.3f", JSON_C_OPTION_GLOBAL);
}

void
log_set_level(enum log_level level)
{
	log_min = level;
}

bool
log_enabled(enum log_level level)
{
	return level >= log_min;
}

void
log_kv(enum log_level level, const char *msg, struct json_object *fields)
{
	struct json_object *line;
	char now[40];
	const char *text;
	size_t len;
	char *buf;

	if (!log_enabled(level)) {
		json_object_put(fields);
		return;
	}
	util_rfc3339_now(now, sizeof now, true);
	line = json_object_new_object();
	json_object_object_add(line, "time", json_object_new_string(now));
	json_object_object_add(line, "level", json_object_new_string(log_level_names[level]));
	json_object_object_add(line, "program", json_object_new_string(log_program));
	json_object_object_add(line, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(line, "msg", json_object_new_string(msg));
	if (fields != NULL) {
		json_object_object_foreach(fields, key, val)
			json_object_object_add(line, key, json_object_get(val));
		json_object_put(fields);
	}
	text = json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN |
	                                                JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(text);
	buf = malloc(len + 1);
	if (buf != NULL) {
		memcpy(buf, text, len);
		buf[len] = '\n';
		if (write(STDERR_FILENO, buf, len + 1) < 0) {
			/* Nowhere left to report it. */
		}
		free(buf);
	}
	json_object_put(line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_kv(level, msg, NULL);
}
