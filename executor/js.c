/*
 * Runtime "js": Duktape, in the sandboxed worker. It reads jobs from the
 * bridge (extern.h describes the lines) and runs each in a world of its
 * own: a new thread with a new global environment and new built-ins in the
 * worker's one Duktape heap, so nothing one job sets is seen by the next.
 * The heap's base world, which its first thread sees and where Duktape
 * runs finalizers (Duktape.fin), is frozen whole before the first job: a
 * finalizer sees the built-ins as a new heap has them and can change or
 * keep nothing there. After a job its world is collected, its finalizers
 * running before its result; should anything of it outlive that (a
 * finalizer that makes more objects with finalizers), the heap is
 * destroyed and made anew. A job's allocations, its world's included, are
 * counted against its memory budget on top of what the heap holds as that
 * world is made: the base world, and what earlier jobs grew heap-wide (the
 * string table); the worker's RLIMIT_AS stays as the backstop. The script
 * defines analyze(input, ctx) (`export default function analyze` is
 * accepted); ctx.log (message, or level and message), ctx.progress and
 * ctx.emit and the outcome are written to the bridge as JSON lines;
 * ctx.files.read, .list, .search and ctx.fetch are calls the executor
 * performs, the script waiting for each reply. A check only compiles the
 * script and says whether it compiles. After a result the next job is
 * read; after a failure the worker exits. Runs after the sandbox is in
 * place; may only read and write the bridge.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <duktape.h>

#include "extern.h"

static int bridge = -1;

/* The allocations of the worker's heap, within the running job's budget.
 * Each block says whether it was made for a job, so that the worker knows
 * when nothing of a job is left. */
struct budget {
	size_t used, limit;
	size_t job_blocks; /* made for jobs and not yet freed */
	bool base;         /* the base world is being made */
};
union header { /* before each allocation, keeping the alignment */
	struct {
		size_t size;
		bool job; /* made for a job; a realloc keeps it */
	};
	max_align_t align;
};

static void
out_write(const char *s, size_t len)
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
out_send(duk_context *ctx)
{
	const char *json = duk_json_encode(ctx, -1);

	out_write(json, strlen(json));
	out_write("\n", 1);
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
	out_send(ctx);
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
	out_send(ctx);
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
	out_send(ctx);
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
	out_send(ctx);
	return 0;
}

static char *next_line(void);

/*
 * A call the executor performs for the script (ctx.files, ctx.fetch),
 * blocking the script until its reply: the call line is written, and the
 * next line the executor sends while a job runs is its reply. method is
 * the call's, the params are on top of the stack (replaced by the result:
 * a file's bytes, which travel as {"$bytes": base64}, become a
 * Uint8Array); a failure is thrown as an Error with the executor's words.
 */
static duk_ret_t
js_call(duk_context *ctx, const char *method)
{
	static double id;
	duk_size_t len;
	char *line;

	duk_push_object(ctx);
	duk_push_string(ctx, "call");
	duk_put_prop_string(ctx, -2, "type");
	duk_push_number(ctx, ++id);
	duk_put_prop_string(ctx, -2, "id");
	duk_push_string(ctx, method);
	duk_put_prop_string(ctx, -2, "method");
	duk_dup(ctx, -2);
	duk_put_prop_string(ctx, -2, "params");
	out_send(ctx);
	if ((line = next_line()) == NULL)
		_exit(4); /* the executor went away */
	duk_push_string(ctx, line);
	duk_json_decode(ctx, -1);
	if (duk_get_prop_string(ctx, -1, "error"))
		return duk_error(ctx, DUK_ERR_ERROR, "%s", duk_safe_to_string(ctx, -1));
	duk_pop(ctx);
	duk_get_prop_string(ctx, -1, "result");
	if (!duk_is_object(ctx, -1))
		return 1;
	if (!duk_get_prop_string(ctx, -1, "$bytes")) {
		duk_pop(ctx);
		return 1;
	}
	duk_base64_decode(ctx, -1);
	duk_get_buffer(ctx, -1, &len);
	duk_push_buffer_object(ctx, -1, 0, len, DUK_BUFOBJ_UINT8ARRAY);
	return 1;
}

/* Params {name: argument 0} (a string) for a call. */
static void
one_param(duk_context *ctx, const char *name)
{
	duk_push_object(ctx);
	duk_dup(ctx, 0);
	duk_safe_to_string(ctx, -1);
	duk_put_prop_string(ctx, -2, name);
}

/* ctx.files.read(path): a string for text, a Uint8Array for bytes */
static duk_ret_t
files_read(duk_context *ctx)
{
	one_param(ctx, "path");
	return js_call(ctx, "files.read");
}

/* ctx.files.list(prefix) */
static duk_ret_t
files_list(duk_context *ctx)
{
	if (duk_is_undefined(ctx, 0)) {
		duk_push_string(ctx, "");
		duk_replace(ctx, 0);
	}
	one_param(ctx, "prefix");
	return js_call(ctx, "files.list");
}

/* ctx.files.search(words) */
static duk_ret_t
files_search(duk_context *ctx)
{
	one_param(ctx, "query");
	return js_call(ctx, "files.search");
}

/* ctx.fetch(path, {method, body}): {status, body} of a call to the API */
static duk_ret_t
ctx_fetch(duk_context *ctx)
{
	duk_push_object(ctx);
	duk_dup(ctx, 0);
	duk_safe_to_string(ctx, -1);
	duk_put_prop_string(ctx, -2, "path");
	if (duk_is_object(ctx, 1)) {
		if (duk_get_prop_string(ctx, 1, "method"))
			duk_put_prop_string(ctx, -2, "method");
		else
			duk_pop(ctx);
		if (duk_get_prop_string(ctx, 1, "body")) {
			if (!duk_is_string(ctx, -1))
				duk_json_encode(ctx, -1);
			duk_put_prop_string(ctx, -2, "body");
		} else {
			duk_pop(ctx);
		}
	}
	return js_call(ctx, "fetch");
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
	out_write(line, n > 0 ? (size_t)n : 0);
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
    {"log", ctx_log, 2},   {"progress", ctx_progress, 2},
    {"emit", ctx_emit, 2}, {"fetch", ctx_fetch, 2},
    {NULL, NULL, 0},
};

static const duk_function_list_entry files_functions[] = {
    {"read", files_read, 1},
    {"list", files_list, 1},
    {"search", files_search, 1},
    {NULL, NULL, 0},
};

static void *
budget_alloc(void *udata, duk_size_t size)
{
	struct budget *b = udata;
	union header *h;

	if (size > b->limit - b->used || (h = malloc(sizeof *h + size)) == NULL)
		return NULL;
	b->used += size;
	h->size = size;
	h->job = !b->base;
	b->job_blocks += h->job;
	return h + 1;
}

static void
budget_free(void *udata, void *ptr)
{
	struct budget *b = udata;
	union header *h = ptr;

	if (ptr == NULL)
		return;
	h--;
	b->used -= h->size;
	b->job_blocks -= h->job;
	free(h);
}

static void *
budget_realloc(void *udata, void *ptr, duk_size_t size)
{
	struct budget *b = udata;
	union header *h = ptr;

	if (ptr == NULL)
		return budget_alloc(udata, size);
	if (size == 0) {
		budget_free(udata, ptr);
		return NULL;
	}
	h--;
	if (size > h->size && size - h->size > b->limit - b->used)
		return NULL;
	if ((h = realloc(h, sizeof *h + size)) == NULL)
		return NULL;
	b->used = b->used - h->size + size;
	h->size = size;
	return h + 1;
}

/* The next line from the executor, NUL-terminated in place of its newline
 * (valid until the next call); NULL at the end of the bridge. */
static char *
next_line(void)
{
	static char *buf;
	static size_t len, cap, taken;
	char *nl;
	ssize_t n;

	if (taken > 0)
		memmove(buf, buf + taken, len -= taken);
	taken = 0;
	while (buf == NULL || (nl = memchr(buf, '\n', len)) == NULL) {
		if (cap - len < 65536 &&
		    (buf = realloc(buf, cap = cap * 2 + 65536)) == NULL)
			js_fatal(NULL, "out of memory reading a job");
		n = read(bridge, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		len += (size_t)n;
	}
	*nl = '\0';
	taken = (size_t)(nl - buf) + 1;
	return buf;
}

/* Decode the job line in ctx, the job's world, leaving the job on the stack:
 * copy its nonce, and return its script as Duktape compiles it (malloc'd,
 * *len bytes): `export default function analyze` loses its keywords,
 * blanked so that lines and columns stay where they were. */
static char *
job_script(duk_context *ctx, const char *line, char *nonce, size_t nonce_size,
           duk_size_t *len)
{
	static const char export_kw[] = "export default ";
	const char *text;
	char *script, *exp;

	duk_push_string(ctx, line);
	duk_json_decode(ctx, -1);
	duk_get_prop_string(ctx, -1, "nonce");
	snprintf(nonce, nonce_size, "%s", duk_safe_to_string(ctx, -1));
	duk_pop(ctx);
	duk_get_prop_string(ctx, -1, "script");
	text = duk_get_lstring(ctx, -1, len);
	if (text == NULL || (script = malloc(*len + 1)) == NULL)
		js_fatal(NULL, "the job could not be read");
	memcpy(script, text, *len + 1);
	duk_pop(ctx);
	exp = strstr(script, export_kw);
	if (exp != NULL)
		memset(exp, ' ', sizeof export_kw - 1);
	return script;
}

/* Check the job of the line in ctx, the job's world: compile its script as a
 * program, never calling what that makes. Returns the result's JSON text
 * (malloc'd), {"ok":true} or {"ok":false,"message","line"}: Duktape says
 * the line of a syntax error, not its column. */
static char *
check_job(duk_context *ctx, const char *line, char *nonce, size_t nonce_size)
{
	duk_size_t len;
	char *script = job_script(ctx, line, nonce, nonce_size, &len), *json;
	bool ok = duk_pcompile_lstring(ctx, 0, script, len) == 0;

	free(script);
	duk_push_object(ctx); /* the value, beside the function or the error */
	duk_push_boolean(ctx, ok);
	duk_put_prop_string(ctx, -2, "ok");
	if (!ok) {
		duk_dup(ctx, -2);
		if (strstr(duk_safe_to_string(ctx, -1), "alloc failed") != NULL) {
			duk_pop(ctx);
			duk_push_string(ctx, "memory limit");
		} else if (duk_get_prop_string(ctx, -3, "lineNumber") &&
		           duk_is_number(ctx, -1)) {
			duk_put_prop_string(ctx, -3, "line");
		} else {
			duk_pop(ctx);
		}
		duk_put_prop_string(ctx, -2, "message");
	}
	if ((json = strdup(duk_json_encode(ctx, -1))) == NULL)
		js_fatal(NULL, "memory limit");
	return json;
}

/* Run the job of the line in ctx, the job's world: returns the result's JSON
 * text (malloc'd) and the job's nonce, or reports the failure and exits. */
static char *
run_job(duk_context *ctx, const char *line, char *nonce, size_t nonce_size)
{
	const char *json, *what;
	char *script, why[256];
	duk_size_t len;

	script = job_script(ctx, line, nonce, nonce_size, &len);
	if (duk_peval_lstring(ctx, script, len) != 0) {
		report_throw(ctx);
		_exit(1);
	}
	free(script);
	duk_pop(ctx);
	if (!duk_get_global_string(ctx, "analyze") || !duk_is_function(ctx, -1)) {
		bridge_error(ctx, "the script does not define analyze(input, ctx)", NULL);
		_exit(1);
	}
	duk_get_prop_string(ctx, -2, "input");
	duk_push_object(ctx);
	duk_put_function_list(ctx, -1, ctx_functions);
	duk_push_object(ctx);
	duk_put_function_list(ctx, -1, files_functions);
	duk_put_prop_string(ctx, -2, "files");
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
	if ((json = strdup(json)) == NULL)
		js_fatal(NULL, "memory limit");
	return (char *)json;
}

/* The objects freeze_all has frozen, this time. */
struct seen {
	void **v;
	size_t n, cap;
};

/* Freeze the object on top of the stack, unless seen, and all it reaches:
 * its properties' values, getters and setters, and its prototype. */
static void
freeze_all(duk_context *ctx, struct seen *s)
{
	static const char *const parts[] = {"value", "get", "set"};
	void *obj = duk_get_heapptr(ctx, -1);
	size_t i;

	if (!duk_is_object(ctx, -1))
		return;
	for (i = 0; i < s->n; i++)
		if (s->v[i] == obj)
			return;
	if (s->n == s->cap &&
	    (s->v = realloc(s->v, (s->cap = s->cap * 2 + 512) * sizeof *s->v)) == NULL)
		js_fatal(NULL, "out of memory freezing the built-ins");
	s->v[s->n++] = obj;
	duk_require_stack(ctx, 4);
	duk_freeze(ctx, -1);
	duk_enum(ctx, -1,
	         DUK_ENUM_OWN_PROPERTIES_ONLY | DUK_ENUM_INCLUDE_NONENUMERABLE |
	             DUK_ENUM_INCLUDE_SYMBOLS);
	while (duk_next(ctx, -1, 0)) {
		duk_get_prop_desc(ctx, -3, 0);
		for (i = 0; i < 3; i++) {
			duk_get_prop_string(ctx, -1, parts[i]);
			freeze_all(ctx, s);
			duk_pop(ctx);
		}
		duk_pop(ctx);
	}
	duk_pop(ctx);
	duk_get_prototype(ctx, -1);
	freeze_all(ctx, s);
	duk_pop(ctx);
}

/* Freeze the base world, in the heap's first thread: all its global
 * object reaches, and what nothing there leads to, the thread itself
 * (Duktape.Thread.current() in a finalizer) and %ThrowTypeError% (the
 * getter of a strict function's arguments.callee). DoubleError, thrown
 * when an error cannot be made, is the one built-in made frozen. */
static duk_ret_t
freeze_base(duk_context *ctx, void *udata)
{
	static struct seen seen;

	(void)udata;
	seen.n = 0;
	duk_push_global_object(ctx);
	freeze_all(ctx, &seen);
	duk_push_current_thread(ctx);
	freeze_all(ctx, &seen);
	duk_eval_string(ctx, "(function () { 'use strict'; return arguments; })()");
	freeze_all(ctx, &seen);
	return 0;
}

/* A new heap, made within limit bytes (b counts its allocations from now
 * on), its base world frozen when another job may follow (freeze; a
 * worker of one job, worker_max_jobs = 1, is spared the ~2 ms it costs);
 * its first thread's context. Exits when it does not fit. */
static duk_context *
heap_new(struct budget *b, size_t limit, bool freeze)
{
	duk_context *base;

	*b = (struct budget){0, limit, 0, true};
	base = duk_create_heap(budget_alloc, budget_realloc, budget_free, b, js_fatal);
	if (base == NULL ||
	    (freeze && duk_safe_call(base, freeze_base, NULL, 0, 1) != DUK_EXEC_SUCCESS))
		js_fatal(NULL, "memory limit");
	if (freeze)
		duk_pop(base);
	duk_gc(base, 0); /* what freezing left */
	b->base = false;
	return base;
}

static duk_ret_t
push_world(duk_context *base, void *udata)
{
	(void)udata;
	duk_push_thread_new_globalenv(base);
	return 1;
}

/* Collect what is left of a job whose world was popped from base: the
 * first round runs the finalizers of what it left, the second frees what
 * they ran for. Whether nothing of the job is left: objects with
 * finalizers that a finalizer made would need a round more, and so on. */
static bool
job_collected(duk_context *base, const struct budget *b)
{
	duk_gc(base, 0);
	if (b->job_blocks > 0)
		duk_gc(base, 0);
	return b->job_blocks == 0;
}

void
js_serve(const struct job_spec *spec, int fd)
{
	static struct budget budget;
	size_t job_bytes = (size_t)spec->memory_mb * 1024 * 1024;
	duk_context *base = NULL, *ctx;
	char *line, *json, nonce[32];

	bridge = fd;
	for (;;) {
		/* The next job's world is made while the executor records this
		 * one's outcome and claims the next; the job may allocate its
		 * budget on top of what the heap holds now. */
		if (base == NULL)
			base = heap_new(&budget, job_bytes, spec->max_jobs != 1);
		budget.limit = budget.used + job_bytes;
		if (duk_safe_call(base, push_world, NULL, 0, 1) != DUK_EXEC_SUCCESS)
			js_fatal(NULL, "memory limit");
		ctx = duk_get_context(base, -1);
		if ((line = next_line()) == NULL)
			_exit(0);
		if (strncmp(line, "{\"type\":\"check\",", 16) == 0)
			json = check_job(ctx, line, nonce, sizeof nonce);
		else if (strncmp(line, "{\"type\":\"job\",", 14) == 0)
			json = run_job(ctx, line, nonce, sizeof nonce);
		else
			js_fatal(NULL, "the executor sent no job");
		/* Finalizers run here, in this job's time, before its result. */
		duk_pop(base);
		if (!job_collected(base, &budget)) {
			duk_destroy_heap(base); /* running the finalizers left */
			base = NULL;
		}
		out_write("{\"type\":\"result\",\"value\":", 25);
		out_write(json, strlen(json));
		out_write(",\"nonce\":\"", 10);
		out_write(nonce, strlen(nonce));
		out_write("\"}\n", 3);
		free(json);
	}
}
