/*
 * Runtime "js": Duktape, in the sandboxed child. The script defines
 * analyze(input, ctx) (`export default function analyze` is accepted);
 * ctx.log (message, or level and message), ctx.progress and ctx.emit and
 * the outcome are written to the
 * bridge as JSON lines: {"type":"log"|"progress"|"emit"|"result"|"error",...}.
 * Runs after the sandbox is in place; may only write to the bridge.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <duktape.h>

#include "extern.h"

static int bridge = -1;
static duk_context *heap; /* made by js_prepare, before any fork */

static void
bridge_write(const char *s, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(bridge, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(4); /* the executor went away or closed the bridge */
		s += n;
		len -= (size_t)n;
	}
}

/* Encode the object on top of the stack as one line, and pop it. */
static void
bridge_send(duk_context *ctx)
{
	const char *json = duk_json_encode(ctx, -1);

	bridge_write(json, strlen(json));
	bridge_write("\n", 1);
	duk_pop(ctx);
}

static void
bridge_error(duk_context *ctx, const char *message, const char *stack)
{
	duk_push_object(ctx);
	duk_push_string(ctx, "error");
	duk_put_prop_string(ctx, -2, "type");
	duk_push_string(ctx, message);
	duk_put_prop_string(ctx, -2, "message");
	if (stack != NULL) {
		duk_push_string(ctx, stack);
		duk_put_prop_string(ctx, -2, "stack");
	}
	bridge_send(ctx);
}

/* Put the value at idx, as a string (NUL characters kept: the bridge
 * refuses them rather than cutting the text), as member name of the
 * object on top of the stack. */
static void
put_text(duk_context *ctx, duk_idx_t idx, const char *name)
{
	duk_dup(ctx, idx);
	duk_safe_to_string(ctx, -1);
	duk_put_prop_string(ctx, -2, name);
}

/* ctx.log(message) or ctx.log(level, message) */
static duk_ret_t
ctx_log(duk_context *ctx)
{
	bool one = duk_is_undefined(ctx, 1);

	duk_push_object(ctx);
	duk_push_string(ctx, "log");
	duk_put_prop_string(ctx, -2, "type");
	if (one) {
		duk_push_string(ctx, "info");
		duk_put_prop_string(ctx, -2, "level");
	} else {
		put_text(ctx, 0, "level");
	}
	put_text(ctx, one ? 0 : 1, "message");
	bridge_send(ctx);
	return 0;
}

/* ctx.progress(percent, message) */
static duk_ret_t
ctx_progress(duk_context *ctx)
{
	double pct = duk_to_number(ctx, 0);

	if (duk_is_undefined(ctx, 1)) {
		duk_push_string(ctx, "");
		duk_replace(ctx, 1);
	}
	duk_push_object(ctx);
	duk_push_string(ctx, "progress");
	duk_put_prop_string(ctx, -2, "type");
	duk_push_number(ctx, pct < 0 ? 0 : pct > 100 ? 100 : pct);
	duk_put_prop_string(ctx, -2, "percent");
	put_text(ctx, 1, "message");
	bridge_send(ctx);
	return 0;
}

/* ctx.emit(type, data) */
static duk_ret_t
ctx_emit(duk_context *ctx)
{
	duk_push_object(ctx);
	duk_push_string(ctx, "emit");
	duk_put_prop_string(ctx, -2, "type");
	put_text(ctx, 0, "event");
	duk_dup(ctx, 1);
	duk_put_prop_string(ctx, -2, "data");
	bridge_send(ctx);
	return 0;
}

static void
js_fatal(void *udata, const char *msg)
{
	char line[512];
	int n;

	(void)udata;
	n = snprintf(line, sizeof line,
	             "{\"type\":\"error\",\"message\":\"fatal: %.400s\"}\n",
	             msg ? msg : "");
	bridge_write(line, n > 0 ? (size_t)n : 0);
	_exit(2);
}

/* The thrown value's message and stack, and report them. */
static void
report_throw(duk_context *ctx)
{
	const char *stack = NULL, *msg;

	if (duk_is_error(ctx, -1)) {
		duk_get_prop_string(ctx, -1, "stack");
		stack = duk_is_string(ctx, -1) ? duk_get_string(ctx, -1) : NULL;
		duk_pop(ctx);
	}
	msg = duk_safe_to_string(ctx, -1);
	if (strstr(msg, "alloc failed") != NULL)
		bridge_error(ctx, "memory limit", stack);
	else
		bridge_error(ctx, msg, stack);
}

static duk_ret_t
encode_result(duk_context *ctx, void *udata)
{
	(void)udata;
	if (duk_is_undefined(ctx, -1)) {
		duk_pop(ctx);
		duk_push_null(ctx);
	}
	duk_json_encode(ctx, -1);
	return 1;
}

/* What a value that JSON cannot encode is, for the run's error. */
static const char *
kind(duk_context *ctx, duk_idx_t i)
{
	if (duk_is_function(ctx, i))
		return "a function";
	if (duk_is_symbol(ctx, i))
		return "a symbol";
	if (duk_is_pointer(ctx, i))
		return "a pointer";
	return "a value JSON cannot encode";
}

static const duk_function_list_entry ctx_functions[] = {
    {"log", ctx_log, 2},
    {"progress", ctx_progress, 2},
    {"emit", ctx_emit, 2},
    {NULL, NULL, 0},
};

bool
js_prepare(void)
{
	heap = duk_create_heap(NULL, NULL, NULL, NULL, js_fatal);
	return heap != NULL;
}

void
js_run(const struct job_spec *spec, int fd)
{
	static const char export_kw[] = "export default ";
	duk_context *ctx = heap;
	char *script = spec->script, *exp, why[256];
	const char *json, *what;

	bridge = fd;
	if (ctx == NULL)
		js_fatal(NULL, "the script engine was not prepared");
	exp = strstr(script, export_kw); /* `export default function analyze` */
	if (exp != NULL)
		memset(exp, ' ', sizeof export_kw - 1);
	if (duk_peval_string(ctx, script) != 0) {
		report_throw(ctx);
		_exit(1);
	}
	duk_pop(ctx);
	if (!duk_get_global_string(ctx, "analyze") || !duk_is_function(ctx, -1)) {
		bridge_error(ctx, "the script does not define analyze(input, ctx)", NULL);
		_exit(1);
	}
	duk_push_string(ctx, spec->input ? spec->input : "null");
	duk_json_decode(ctx, -1);
	duk_push_object(ctx);
	duk_put_function_list(ctx, -1, ctx_functions);
	if (duk_pcall(ctx, 2) != DUK_EXEC_SUCCESS) {
		report_throw(ctx);
		_exit(1);
	}
	/* Every value either serialises or fails the run, saying why. */
	what = kind(ctx, -1);
	if (duk_safe_call(ctx, encode_result, NULL, 1, 1) != DUK_EXEC_SUCCESS ||
	    (json = duk_get_string(ctx, -1)) == NULL) {
		snprintf(why, sizeof why, "result is not JSON (%s)",
		         duk_is_string(ctx, -1) || duk_is_undefined(ctx, -1)
		             ? what
		             : duk_safe_to_string(ctx, -1));
		bridge_error(ctx, why, NULL);
		_exit(1);
	}
	bridge_write("{\"type\":\"result\",\"value\":", 25);
	bridge_write(json, strlen(json));
	bridge_write("}\n", 2);
	_exit(0);
}
