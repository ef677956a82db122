/*
 * JSON-lines logger on stderr. A line is written with one write(2) so
 * lines from prefork workers sharing stderr never interleave. Lines are
 * assembled on the stack; a line that does not fit is replaced by a short
 * notice rather than cut mid-JSON. Never aborts.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "jsontext.h"
#include "log.h"
#include "util.h"

const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

static const char *log_program = "assay";
static enum log_level log_min = LOG_INFO;
static pid_t log_pid; /* getpid() is a system call; a line needs it once */

static void
log_forked(void)
{
	log_pid = getpid();
}

void
log_init(const char *program)
{
	log_program = program;
	log_pid = getpid();
	pthread_atfork(NULL, NULL, log_forked);
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

size_t
log_json_escape(const char *in, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, n;
	unsigned char c;

	for (; *in != '\0' && o + 7 < len; in++) {
		c = (unsigned char)*in;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 0xf];
			o += 6;
		} else if (c < 0x80) {
			out[o++] = (char)c;
		} else if ((n = jsontext_utf8_len((const unsigned char *)in,
		                                  strnlen(in, 4))) == 0) {
			memcpy(out + o, "\\ufffd", 6); /* not UTF-8: the replacement */
			o += 6;
		} else if (o + n + 7 < len) {
			memcpy(out + o, in, n);
			o += n;
			in += n - 1;
		} else {
			break;
		}
	}
	out[o] = '\0';
	return o;
}

void
log_line(enum log_level level, const char *msg, const char *members)
{
	char buf[8192], now[40], esc[2048];
	int n;

	if (!log_enabled(level))
		return;
	util_rfc3339_now(now, sizeof now, true);
	log_json_escape(msg, esc, sizeof esc);
	n = snprintf(buf, sizeof buf,
	             "{\"time\":\"%s\",\"level\":\"%s\",\"program\":\"%s\",\"pid\":%d,"
	             "\"msg\":\"%s\"%s%s}\n",
	             now, log_level_names[level], log_program, (int)log_pid, esc,
	             members && *members ? "," : "", members ? members : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf) { /* cut, but keep it one valid JSON line */
		n = snprintf(
		    buf, sizeof buf,
		    "{\"time\":\"%s\",\"level\":\"%s\",\"program\":\"%s\",\"pid\":%d,"
		    "\"msg\":\"(line too long)\"}\n",
		    now, log_level_names[level], log_program, (int)log_pid);
	}
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
}

void
log_kv(enum log_level level, const char *msg, struct json_object *fields)
{
	const char *text;
	size_t len;

	if (!log_enabled(level) || fields == NULL) {
		log_line(level, msg, NULL);
		json_object_put(fields);
		return;
	}
	/* "{...}" without its braces is the list of members to append. */
	text = json_object_to_json_string_length(
	    fields, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (len >= 2) {
		char *members = strndup(text + 1, len - 2);

		log_line(level, msg, members);
		free(members);
	}
	json_object_put(fields);
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
