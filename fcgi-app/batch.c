/*
 * POST /api/v1/runs/batch: up to BATCH_MAX runs in one request and one
 * transaction. Each item is checked as the body of POST /runs is (the
 * same table and check, its own client_token; no Idempotency-Key header),
 * counted against the tenant's runs per hour one by one, then created,
 * replayed or refused through runs_items_create, the path of POST /runs.
 * The answer is 200 with each item's outcome in the order given, as a
 * status of its own and a run or a problem; only what concerns the
 * whole request (its body, 503) is answered otherwise. Never creates a
 * run itself.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "extern.h"
#include "xalloc.h"

/* Check item i of the batch; false after answering 503. */
static bool
item_check(struct req *r, struct run_item *items, size_t i, struct json_object *obj)
{
	struct run_item *it = &items[i];
	size_t j;

	it->errors = json_object_new_array();
	if (!json_object_is_type(obj, json_type_object)) {
		valid_error(it->errors, "", "a run must be a JSON object");
	} else {
		valid_check(obj, run_fields, RF__MAX, false, it->v, it->errors);
		if (!runs_item_check(r, it, NULL))
			return false;
	}
	for (j = 0; it->key != NULL && j < i; j++)
		if (items[j].key != NULL && strcmp(items[j].key, it->key) == 0) {
			valid_error(it->errors, "/client_token",
			            "repeats the client_token of item %zu of this batch",
			            j);
			break;
		}
	if (json_object_array_length(it->errors) > 0)
		run_item_invalid(it);
	return true;
}

/* Items past what the runs per hour allow are refused; the dispatcher
 * has counted the first. */
static void
items_limit(struct req *r, struct run_item *items, size_t n)
{
	struct json_object *extra;
	long retry_after = 0;
	size_t passed = 1 + (size_t)limit_runs(r, (long)n - 1, &retry_after), i;

	for (i = passed; i < n; i++) {
		if (items[i].status != 0)
			continue;
		extra = json_object_new_object();
		json_object_object_add(extra, "retry_after",
		                       json_object_new_int64(retry_after));
		run_item_refuse(&items[i], 429, "RATE_LIMIT_EXCEEDED", extra,
		                "the %s tier's runs per hour are used up; retry in %ld s",
		                r->tenant->tier, retry_after);
		items[i].retry_after = retry_after;
	}
}

/* One item's outcome in the answer. */
static void
item_print(FILE *f, size_t i, struct run_item *it)
{
	struct json_object *o;

	if (it->run != NULL) {
		fprintf(f, "{\"index\":%zu,\"status\":%d,%s\"run\":%s}", i, it->status,
		        it->status == 200 ? "\"idempotent\":true," : "", it->run);
		return;
	}
	o = it->extra != NULL ? json_object_get(it->extra) : json_object_new_object();
	json_object_object_add(o, "index", json_object_new_int64((int64_t)i));
	json_object_object_add(o, "status", json_object_new_int(it->status));
	json_object_object_add(o, "code", json_object_new_string(it->code));
	json_object_object_add(o, "detail", json_object_new_string(it->detail));
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	                                            JSON_C_TO_STRING_NOSLASHESCAPE),
	      f);
	json_object_put(o);
}

static void
batch_send(struct req *r, struct run_item *items, size_t n)
{
	size_t i, len = 0, created = 0, replayed = 0;
	char *buf = NULL;
	FILE *f = open_memstream(&buf, &len);

	fputs("\"results\":[", f);
	for (i = 0; i < n; i++) {
		fputs(i ? "," : "", f);
		item_print(f, i, &items[i]);
		created += items[i].status == 201;
		replayed += items[i].status == 200;
	}
	fprintf(f, "],\"created\":%zu,\"replayed\":%zu,\"refused\":%zu", created,
	        replayed, n - created - replayed);
	fclose(f);
	http_success(r, 200, NULL, buf);
	free(buf);
}

void
batch_create(struct req *r)
{
	struct json_object *runs = json_object_object_get(r->body, "runs");
	size_t n = json_object_array_length(runs), i;
	struct run_item *items = xcalloc(n, sizeof *items);

	for (i = 0; i < n; i++)
		if (!item_check(r, items, i, json_object_array_get_idx(runs, i)))
			goto out;
	items_limit(r, items, n);
	if (runs_items_create(r, items, n))
		batch_send(r, items, n);
out:
	for (i = 0; i < n; i++)
		run_item_free(&items[i]);
	free(items);
}
