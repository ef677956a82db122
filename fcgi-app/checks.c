/*
 * POST /api/v1/analyses/check: does a script compile? assay-api may not
 * start sandboxes, and a script is hostile, so it never compiles one
 * itself: it queues the check (sql/0014_check.sql), which also makes its
 * database session listen on the check's own channel, and waits on that
 * socket for an executor's answer, at most check_timeout_ms; then it stops
 * listening and withdraws a check nobody took. The body was checked as an
 * analysis' script and runtime are (the first AF_CHECK fields). Never
 * holds a transaction while it waits. A waiting worker serves nobody
 * else, so at most half the host's workers wait at once (one at least):
 * each holds one of that many slots, a byte-range lock of a file all
 * workers share, which the kernel releases when its worker ends, however
 * it ends. A check waits up to SLOT_WAIT_MS for a slot (checks answered
 * come and go in milliseconds), then is answered 503: when no executor
 * answers, the other workers stay free for everything else.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cfg.h"
#include "db.h"
#include "extern.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

#define SLOT_WAIT_MS 500

static int slots_fd = -1; /* the slots' locks: one byte each */

void
checks_init(void)
{
	if (slots_fd < 0 &&
	    (slots_fd = memfd_create("assay-api-checks", MFD_CLOEXEC)) < 0)
		log_msg(LOG_ERROR,
		        "memfd_create: %s; checks of scripts may hold every worker",
		        strerror(errno));
}

/* Take (F_WRLCK) or give back (F_UNLCK) slot i without waiting: true when
 * done (always, without the file). */
static bool
checks_slot(short type, long i)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = i, .l_len = 1};

	return slots_fd < 0 || fcntl(slots_fd, F_SETLK, &l) == 0;
}

/* One of slots, waiting up to SLOT_WAIT_MS for one: its number, or -1. */
static long
checks_take_slot(long slots)
{
	uint64_t until = util_now_us() + SLOT_WAIT_MS * 1000u;
	long i;

	for (;;) {
		for (i = 0; i < slots; i++)
			if (checks_slot(F_WRLCK, i))
				return i;
		if (util_now_us() >= until)
			return -1;
		usleep(2000);
	}
}

/* The answer sent on channel, malloc'd, or NULL when none came within
 * timeout_ms or the connection failed. */
static char *
checks_wait(struct db *db, const char *channel, long timeout_ms)
{
	uint64_t deadline = util_now_us() + (uint64_t)timeout_ms * 1000u, now;
	PGconn *conn = db_conn(db);
	struct pollfd pfd;
	char *answer = NULL;
	PGnotify *n;

	while (conn != NULL && answer == NULL) {
		if (PQconsumeInput(conn) == 0)
			break;
		while ((n = PQnotifies(conn)) != NULL) {
			if (answer == NULL && strcmp(n->relname, channel) == 0)
				answer = xstrdup(n->extra);
			PQfreemem(n);
		}
		now = util_now_us();
		if (answer != NULL || now >= deadline)
			break;
		pfd = (struct pollfd){PQsocket(conn), POLLIN, 0};
		if (poll(&pfd, 1, (int)((deadline - now + 999) / 1000)) < 0)
			break;
	}
	return answer;
}

/* 200, 422 naming where the script fails, or 503 from the answer's text. */
static void
checks_reply(struct req *r, const char *text)
{
	struct json_object *a = json_tokener_parse(text), *v = NULL, *error, *errors,
	                   *extra;
	bool said = json_object_object_get_ex(a, "ok", &v);
	const char *message;

	if (said && json_object_get_boolean(v)) {
		http_success(r, 200, NULL, "\"ok\":true");
	} else if (said) {
		message = json_object_object_get_ex(a, "message", &v)
		              ? json_object_get_string(v)
		              : "the script does not compile";
		error = json_object_new_object();
		json_object_object_add(error, "pointer",
		                       json_object_new_string("/script"));
		json_object_object_add(error, "detail", json_object_new_string(message));
		if (json_object_object_get_ex(a, "line", &v))
			json_object_object_add(error, "line", json_object_get(v));
		if (json_object_object_get_ex(a, "column", &v))
			json_object_object_add(error, "column", json_object_get(v));
		errors = json_object_new_array();
		json_object_array_add(errors, error);
		extra = json_object_new_object();
		json_object_object_add(extra, "errors", errors);
		http_problem_with(r, 422, "SCRIPT_DOES_NOT_COMPILE", NULL, extra,
		                  "the script does not compile: %s", message);
	} else {
		http_problem(r, 503, "CHECK_UNAVAILABLE", "Retry-After: 5\r\n",
		             "the script could not be checked: %s",
		             json_object_object_get_ex(a, "unavailable", &v)
		                 ? json_object_get_string(v)
		                 : "the executor's answer is not understood");
	}
	json_object_put(a);
}

void
checks_post(struct req *r)
{
	long timeout_ms = cfg_int(r->app->cfg, API_CHECK_TIMEOUT),
	     slots = (cfg_int(r->app->cfg, API_WORKERS) + 1) / 2, slot;
	char id[40], channel[64], wait[24], *answer = NULL;
	const char *params[4] = {r->tenant->id, r->v[AF_RUNTIME].str, r->v[AF_SCRIPT].str,
	                         wait};
	PGresult *res;

	if ((slot = checks_take_slot(slots)) < 0) {
		http_problem(r, 503, "CHECK_UNAVAILABLE", "Retry-After: 1\r\n",
		             "%ld checks are being waited for on this host already; "
		             "try again",
		             slots);
		return;
	}
	snprintf(wait, sizeof wait, "%ld", timeout_ms);
	res = http_query_db(r,
	                    "SELECT id, assay_check_channel(id)"
	                    " FROM assay_check_request($1, $2, $3, $4::int) id",
	                    4, params);
	if (res == NULL)
		goto out;
	snprintf(id, sizeof id, "%s", PQgetvalue(res, 0, 0));
	snprintf(channel, sizeof channel, "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	answer = checks_wait(r->app->db, channel, timeout_ms);
	params[0] = id;
	if ((res = http_query_db(r, "SELECT assay_check_end($1)", 1, params)) == NULL)
		goto out;
	PQclear(res);
	if (answer != NULL)
		checks_reply(r, answer);
	else
		http_problem(r, 503, "CHECK_UNAVAILABLE", "Retry-After: 5\r\n",
		             "no executor checked the script within %ld ms", timeout_ms);
out:
	free(answer);
	checks_slot(F_UNLCK, slot);
}
