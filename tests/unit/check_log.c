/*
 * Unit tests for lib/log.c: messages are escaped into valid JSON strings
 * (quotes, control characters, and bytes that are not UTF-8, which become
 * U+FFFD), and every line written is one valid JSON object, even when the
 * message is too long for it.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "unit.h"

static const char *
escaped(const char *in)
{
	static char out[256];

	log_json_escape(in, out, sizeof out);
	return out;
}

START_TEST(messages_are_escaped)
{
	ck_assert_str_eq(escaped("plain"), "plain");
	ck_assert_str_eq(escaped("a \"q\" \\ b"), "a \\\"q\\\" \\\\ b");
	ck_assert_str_eq(escaped("tab\tnl\n"), "tab\\u0009nl\\u000a");
	ck_assert_str_eq(escaped("caf\xc3\xa9 \xf0\x9f\x98\x80"),
	                 "caf\xc3\xa9 \xf0\x9f\x98\x80");
	ck_assert_str_eq(escaped("a\xed\xa0\x80"
	                         "b"),
	                 "a\\ufffd\\ufffd\\ufffdb");
	ck_assert_str_eq(escaped("\xff\xc3"), "\\ufffd\\ufffd");
}
END_TEST

START_TEST(escaping_stops_within_the_buffer)
{
	char big[600], out[64];
	size_t n;

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	n = log_json_escape(big, out, sizeof out);
	ck_assert_uint_lt(n, sizeof out);
	ck_assert_uint_eq(strlen(out), n);
}
END_TEST

/* The line log_msg writes for msg, read back from its stderr. */
static struct json_object *
logged(const char *msg)
{
	static char buf[16384];
	int p[2], saved = dup(STDERR_FILENO);
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	dup2(p[1], STDERR_FILENO);
	log_msg(LOG_ERROR, "%s", msg);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(buf[n - 1] == '\n' && strchr(buf, '\n') == buf + n - 1, "%s", buf);
	return json_tokener_parse(buf);
}

START_TEST(every_line_is_json)
{
	struct json_object *o, *m;
	char long_msg[12000];

	log_init("check_log");
	o = logged("bad bytes \xed\xa0\x80 and \"quotes\"");
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "msg", &m));
	ck_assert_str_eq(json_object_get_string(m),
	                 "bad bytes \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd and \"quotes\"");
	json_object_put(o);
	memset(long_msg, 'y', sizeof long_msg - 1);
	long_msg[sizeof long_msg - 1] = '\0';
	o = logged(long_msg);
	ck_assert_ptr_nonnull(o);
	json_object_put(o);
}
END_TEST

UNIT_MAIN("log", messages_are_escaped, escaping_stops_within_the_buffer,
          every_line_is_json)
