/*
 * Checks of scripts (POST /api/v1/analyses/check, sql/0014_check.sql):
 * assay-api queues a check and waits on its own channel; an executor takes
 * it out of the queue (SKIP LOCKED, woken by NOTIFY assay_checks) as a job
 * of kind check, which a worker of the check's tenant and runtime compiles
 * without running any of it (js.c, node.c), and sends the answer on the
 * check's channel. Answers are rebuilt here from what the worker said
 * (never passed on as it was written) and sent in one statement per pass
 * of the loop. A check is never retried: one that finds no executor, or
 * whose executor stops, is answered by the API's timeout.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "extern.h"
#include "log.h"
#include "util.h"
#include "xalloc.h"

/* The most of a compiler's message an answer carries, in bytes. */
#define MESSAGE_MAX 1024

void
checks_take(struct ex *ex)
{
	long want = ex_int(ex, EX_MAX_CONCURRENT);
	char limit[24];
	const char *params[1] = {limit};
	struct job *j;
	PGresult *res;
	int i;

	ex->check_wake = false;
	if (ex->stopping || want > MAX_JOBS - (long)ex->njobs)
		want = ex->stopping ? 0 : MAX_JOBS - (long)ex->njobs;
	if (want <= 0)
		return;
	snprintf(limit, sizeof limit, "%ld", want);
	if (db_query(ex->db, &res,
	             "SELECT id, tenant_id, runtime, script, fresh"
	             " FROM assay_check_take($1::int)",
	             1, params) != DB_OK)
		return;
	for (i = 0; i < PQntuples(res); i++) {
		if (strcmp(PQgetvalue(res, i, 4), "t") != 0)
			continue;
		j = xcalloc(1, sizeof *j);
		snprintf(j->id, sizeof j->id, "%s", PQgetvalue(res, i, 0));
		j->tenant = strtol(PQgetvalue(res, i, 1), NULL, 10);
		j->check = true;
		/* A new worker for it is made with the default limits of an
		 * analysis, so that the tenant's runs may use it afterwards. */
		j->spec = (struct job_spec){
		    strcmp(PQgetvalue(res, i, 2), "node") == 0 ? RT_NODE : RT_JS, 30000,
		    64, 0};
		j->script = xstrdup(PQgetvalue(res, i, 3));
		ex->jobs[ex->njobs++] = j;
	}
	if (PQntuples(res) == want)
		ex->check_wake = true; /* there may be more */
	PQclear(res);
}

/* At most MESSAGE_MAX bytes of s, cut at a character's start. */
static struct json_object *
message(const char *s)
{
	size_t len = strlen(s);

	if (len > MESSAGE_MAX)
		for (len = MESSAGE_MAX; len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80;
		     len--)
			;
	return json_object_new_string_len(s, (int)len);
}

/* The answer to j: {"ok":true}, {"ok":false,"message","line","column"}
 * (the last two when known), or {"unavailable":"why"} when it could not
 * be checked. */
static struct json_object *
checks_answer(const struct job *j)
{
	struct json_object *a = json_object_new_object(), *got, *v;
	static const char *const positions[] = {"line", "column"};
	size_t i;

	if (j->error != NULL && (strncmp(j->error, "timeout", 7) == 0 ||
	                         strncmp(j->error, "memory limit", 12) == 0)) {
		/* The script's own doing: it is too big, or too deep, to compile. */
		json_object_object_add(a, "ok", json_object_new_boolean(false));
		json_object_object_add(a, "message", message(j->error));
		return a;
	}
	got =
	    j->error == NULL && j->result != NULL ? json_tokener_parse(j->result) : NULL;
	if (!json_object_object_get_ex(got, "ok", &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		json_object_object_add(
		    a, "unavailable",
		    message(j->error != NULL
		                ? j->error
		                : "the executor stopped before checking it"));
		json_object_put(got);
		return a;
	}
	json_object_object_add(a, "ok",
	                       json_object_new_boolean(json_object_get_boolean(v)));
	if (!json_object_get_boolean(v)) {
		json_object_object_add(
		    a, "message",
		    message(json_object_object_get_ex(got, "message", &v) &&
		                    json_object_is_type(v, json_type_string)
		                ? json_object_get_string(v)
		                : "the script does not compile"));
		for (i = 0; i < 2; i++)
			if (json_object_object_get_ex(got, positions[i], &v) &&
			    json_object_is_type(v, json_type_int) &&
			    json_object_get_int64(v) > 0)
				json_object_object_add(
				    a, positions[i],
				    json_object_new_int64(json_object_get_int64(v)));
	}
	json_object_put(got);
	return a;
}

void
checks_done(struct ex *ex, struct job *j)
{
	ex->checked[ex->nchecked++] = j;
}

void
checks_flush(struct ex *ex)
{
	struct json_object *all, *one, *answer, *ok;
	const char *param;
	PGresult *res;
	size_t i;

	if (ex->nchecked == 0)
		return;
	all = json_object_new_array();
	for (i = 0; i < ex->nchecked; i++) {
		struct job *j = ex->checked[i];

		answer = checks_answer(j);
		ex->checks[!json_object_object_get_ex(answer, "ok", &ok) ? 2
		           : json_object_get_boolean(ok)                 ? 0
		                                                         : 1]++;
		one = json_object_new_object();
		json_object_object_add(one, "id", json_object_new_string(j->id));
		json_object_object_add(
		    one, "answer",
		    json_object_new_string(
		        json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN)));
		json_object_array_add(all, one);
		log_msg(LOG_DEBUG, "check %s of tenant %ld: %s in %.1f ms (worker %u)",
		        j->id, j->tenant,
		        json_object_to_json_string_ext(answer, JSON_C_TO_STRING_PLAIN),
		        j->started_us ? (double)(util_now_us() - j->started_us) / 1000.0
		                      : 0.0,
		        j->worker_no);
		json_object_put(answer);
		job_free(j);
	}
	param = json_object_to_json_string_ext(all, JSON_C_TO_STRING_PLAIN);
	if (db_query(ex->db, &res, "SELECT assay_check_answer($1::jsonb)", 1, &param) ==
	    DB_OK)
		PQclear(res);
	else
		log_msg(LOG_WARN, "%zu check(s) could not be answered", ex->nchecked);
	json_object_put(all);
	ex->nchecked = 0;
}

void
checks_metrics(struct ex *ex, FILE *f)
{
	static const char *const answers[3] = {"ok", "does_not_compile", "unavailable"};
	size_t i;

	fprintf(f, "# HELP assay_executor_checks_total Checks of scripts answered, by "
	           "answer.\n# TYPE assay_executor_checks_total counter\n");
	for (i = 0; i < 3; i++)
		fprintf(f, "assay_executor_checks_total{answer=\"%s\"} %lu\n", answers[i],
		        ex->checks[i]);
}
