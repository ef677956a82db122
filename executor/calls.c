/*
 * Calls a script makes to its project through the bridge (ctx.files,
 * ctx.fetch), performed by the executor over HTTP to the Assay API
 * (api_url) with the job's token: a JWT for this attempt of the run
 * (lib/jobtoken.c), minted when the job starts and never given to the
 * worker. Requests go through their own outbound client (lib/outbound.c:
 * keep-alive, retries at 100, 200 and 400 ms on network errors, timeouts
 * and 5xx, none on 4xx, a 30 s timeout, a breaker), driven by the
 * executor's loop like the webhooks' client. The answer goes back to the
 * worker as a reply line; failures read as a fetch would say them ("HTTP
 * 404: Not Found", "fetch failed (…)", "The operation was aborted due to
 * timeout"). A run may make at most job_api_calls_max calls; every call
 * counts against its wall clock (the job's deadline runs meanwhile). A
 * call still out when its job ends is answered to nobody.
 */
#include "config.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "extern.h"
#include "jobtoken.h"
#include "log.h"
#include "outbound.h"
#include "xalloc.h"

#define CALLS_BODY_MAX (32u << 20) /* bytes of an answer: a file of 16 MiB, and room */

struct calls {
	struct ob *ob;
	struct jobtoken_keys keys;
	const char *no_keys; /* why no token can be made, or NULL */
};

/* One call in flight; call->job is cleared when the job ends first. */
struct call {
	struct job *job;
	struct json_object *id;
	enum { AS_FILE, AS_JSON, AS_RESPONSE } as;
	struct call *next; /* the job's calls in flight */
};

bool
calls_start(struct ex *ex)
{
	struct ob_config oc = {
	    .metrics_prefix = "assay_executor_api",
	    .timeout_ms = 30000,
	    .max_attempts = 4, /* retries after 100, 200 and 400 ms */
	    .backoff_ms = 100,
	    .backoff_max_ms = 400,
	    .user_agent = "assay-executor/" PACKAGE_VERSION,
	};
	struct calls *c = xcalloc(1, sizeof *c);

	if ((c->ob = ob_new(&oc)) == NULL) {
		free(c);
		return false;
	}
	if (!jobtoken_keys_load(&c->keys, cfg_str(ex->cfg, EX_JOB_TOKEN_KEY_FILE),
	                        &c->no_keys))
		log_msg(LOG_WARN,
		        "job_token_key_file %s: %s; scripts' ctx.files and ctx.fetch "
		        "calls will fail",
		        cfg_str(ex->cfg, EX_JOB_TOKEN_KEY_FILE), c->no_keys);
	ex->calls = c;
	ex->clients[CLIENT_API] = c->ob;
	return true;
}

void
calls_stop(struct ex *ex)
{
	if (ex->calls == NULL)
		return;
	ob_free(ex->calls->ob); /* their callbacks are not called */
	ex->clients[CLIENT_API] = NULL;
	jobtoken_keys_free(&ex->calls->keys);
	free(ex->calls);
	ex->calls = NULL;
}

void
calls_token(struct ex *ex, struct job *j)
{
	struct jobtoken_claims c = {.attempt = j->attempts};

	if (ex->calls->no_keys != NULL)
		return;
	snprintf(c.run, sizeof c.run, "%s", j->id);
	c.project = strtoll(j->project, NULL, 10);
	c.exp = time(NULL) + j->spec.timeout_ms / 1000 + 60;
	free(j->token);
	j->token = jobtoken_mint(&ex->calls->keys, &c);
}

/* The job ended: its calls still out are answered to nobody. */
void
calls_forget(struct job *j)
{
	struct call *c;

	for (c = j->calls; c != NULL; c = c->next)
		c->job = NULL;
	j->calls = NULL;
}

static void
calls_reply(struct job *j, struct json_object *id, struct json_object *result,
            const char *error)
{
	struct json_object *reply = json_object_new_object();
	const char *text;

	json_object_object_add(reply, "type", json_object_new_string("reply"));
	json_object_object_add(reply, "id", json_object_get(id));
	if (error != NULL)
		json_object_object_add(reply, "error", json_object_new_string(error));
	else
		json_object_object_add(reply, "result", result);
	text = json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
	                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
	bridge_send(j->worker, text, strlen(text));
	bridge_send(j->worker, "\n", 1);
	json_object_put(reply);
}

/* Is this answer's body text (a string for the script) or bytes? */
static bool
calls_textual(const char *ctype)
{
	return ctype == NULL || strncmp(ctype, "text/", 5) == 0 ||
	       strstr(ctype, "json") != NULL || strstr(ctype, "xml") != NULL ||
	       strstr(ctype, "javascript") != NULL;
}

/* A file's bytes as {"$bytes": base64}, which the runtimes turn into a
 * Uint8Array. */
static struct json_object *
calls_bytes(const char *body, size_t len)
{
	struct json_object *o = json_object_new_object();
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)body, (int)len);
	json_object_object_add(o, "$bytes", json_object_new_string(b64));
	free(b64);
	return o;
}

static void
calls_done(void *arg, const struct ob_response *r)
{
	struct call *c = arg;
	struct job *j = c->job;
	struct json_object *result = NULL;
	char why[256];

	if (j == NULL || j->worker == NULL)
		goto out; /* its job ended */
	for (struct call **p = &j->calls; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	if (r->result == OB_TIMEOUT) {
		calls_reply(j, c->id, NULL, "The operation was aborted due to timeout");
		goto out;
	}
	if (r->result == OB_OK && r->bodylen >= CALLS_BODY_MAX) {
		calls_reply(j, c->id, NULL,
		            "the answer is larger than a call may return");
		goto out;
	}
	if (r->result != OB_OK) {
		snprintf(why, sizeof why, "fetch failed (%s)", r->error ? r->error : "?");
		calls_reply(j, c->id, NULL, why);
		goto out;
	}
	if (c->as != AS_RESPONSE && (r->status < 200 || r->status > 299)) {
		snprintf(why, sizeof why, "HTTP %ld: %s", r->status,
		         r->status == 401   ? "Unauthorized"
		         : r->status == 403 ? "Forbidden"
		         : r->status == 404 ? "Not Found"
		         : r->status == 429 ? "Too Many Requests"
		         : r->status >= 500 ? "Server Error"
		                            : "Bad Request");
		calls_reply(j, c->id, NULL, why);
		goto out;
	}
	switch (c->as) {
	case AS_JSON: { /* a listing: its files */
		struct json_object *page = json_tokener_parse(r->body), *files;

		if (json_object_object_get_ex(page, "files", &files))
			result = json_object_get(files);
		json_object_put(page);
		break;
	}
	case AS_FILE:
		result = calls_textual(r->content_type)
		             ? json_object_new_string_len(r->body, (int)r->bodylen)
		             : calls_bytes(r->body, r->bodylen);
		break;
	case AS_RESPONSE:
		result = json_object_new_object();
		json_object_object_add(result, "status",
		                       json_object_new_int((int)r->status));
		json_object_object_add(
		    result, "body", json_object_new_string_len(r->body, (int)r->bodylen));
		break;
	}
	calls_reply(j, c->id, result, NULL);
out:
	json_object_put(c->id);
	free(c);
}

/* A path segment or query value, percent-encoded (caller frees). */
static char *
calls_escape(const char *s, bool keep_slash)
{
	char *e = curl_easy_escape(NULL, s, 0), *out, *p, *q;

	if (e == NULL)
		return xstrdup("");
	out = xstrdup(e);
	curl_free(e);
	if (!keep_slash)
		return out;
	for (p = q = out; *p != '\0'; q++) /* a file's path keeps its segments */
		if (strncmp(p, "%2F", 3) == 0) {
			*q = '/';
			p += 3;
		} else {
			*q = *p++;
		}
	*q = '\0';
	return out;
}

static const char *
calls_string(struct json_object *params, const char *name)
{
	struct json_object *v;

	if (!json_object_object_get_ex(params, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* The request for a call: its path (malloc'd) and how to answer; NULL with
 * *why when the call is refused. */
static char *
calls_request(struct json_object *params, const char *method, int *as, const char **verb,
              const char **body, const char **why)
{
	const char *s;
	char *e, *path;

	*verb = "GET";
	*body = NULL;
	if (strcmp(method, "files.read") == 0) {
		if ((s = calls_string(params, "path")) == NULL || *s == '\0')
			return *why = "ctx.files.read needs a path", NULL;
		e = calls_escape(s, true);
		path = xasprintf("/api/v1/files/%s", e);
		*as = AS_FILE;
	} else if (strcmp(method, "files.list") == 0) {
		e = calls_escape((s = calls_string(params, "prefix")) ? s : "", false);
		path = xasprintf("/api/v1/files?limit=100%s%s",
		                 *e != '\0' ? "&prefix=" : "", e);
		*as = AS_JSON;
	} else if (strcmp(method, "files.search") == 0) {
		if ((s = calls_string(params, "query")) == NULL || *s == '\0')
			return *why = "ctx.files.search needs words to search for", NULL;
		e = calls_escape(s, false);
		path = xasprintf("/api/v1/files?q=%s", e);
		*as = AS_JSON;
	} else if (strcmp(method, "fetch") == 0) {
		if ((s = calls_string(params, "path")) == NULL ||
		    strncmp(s, "/api/", 5) != 0 || strstr(s, "..") != NULL ||
		    strpbrk(s, " \r\n\\#") != NULL)
			return *why =
			           "ctx.fetch takes a path of the Assay API (/api/...)",
			       NULL;
		*verb = calls_string(params, "method") ? calls_string(params, "method")
		                                       : "GET";
		*body = calls_string(params, "body");
		*as = AS_RESPONSE;
		return xstrdup(s);
	} else {
		return *why = "unknown method", NULL;
	}
	free(e);
	return path;
}

void
calls_handle(struct ex *ex, struct job *j, struct json_object *callmsg)
{
	struct json_object *id = NULL, *method, *params = NULL;
	const char *m, *verb, *body, *why = NULL;
	char *path = NULL, *url = NULL, hjob[80], hproj[48];
	const char *headers[4] = {hjob, hproj, "Content-Type: application/json", NULL};
	struct call *c;
	int as = AS_RESPONSE;

	json_object_object_get_ex(callmsg, "id", &id);
	json_object_object_get_ex(callmsg, "params", &params);
	m = json_object_object_get_ex(callmsg, "method", &method) &&
	            json_object_is_type(method, json_type_string)
	        ? json_object_get_string(method)
	        : "(none)";
	if (++j->api_calls > (unsigned)ex_int(ex, EX_JOB_CALLS_MAX))
		why = "too many API calls for one run (job_api_calls_max)";
	else if (cfg_str(ex->cfg, EX_API_URL)[0] == '\0')
		why = "the executor has no api_url: calls to the API are not available";
	else if (j->token == NULL)
		why = "the executor cannot make job tokens (job_token_key_file)";
	else
		path = calls_request(params, m, &as, &verb, &body, &why);
	if (path == NULL) {
		calls_reply(j, id, NULL, why);
		return;
	}
	url = xasprintf("%s%s", cfg_str(ex->cfg, EX_API_URL), path);
	snprintf(hjob, sizeof hjob, "X-Job-ID: %s", j->id);
	snprintf(hproj, sizeof hproj, "X-Project-ID: %s", j->project);
	c = xcalloc(1, sizeof *c);
	c->job = j;
	c->id = json_object_get(id);
	c->as = as;
	c->next = j->calls;
	j->calls = c;
	if (!ob_submit(ex->calls->ob,
	               &(struct ob_request){.method = verb,
	                                    .url = url,
	                                    .headers = headers,
	                                    .body = body,
	                                    .bodylen = body ? strlen(body) : 0,
	                                    .auth = OB_AUTH_BEARER,
	                                    .credential = j->token,
	                                    .max_body = CALLS_BODY_MAX},
	               calls_done, c)) {
		struct ob_response r = {.result = OB_NETWORK,
		                        .error = "the request is refused"};

		calls_done(c, &r);
	}
	free(url);
	free(path);
}

void
calls_metrics(struct ex *ex, FILE *f)
{
	ob_metrics_write(ex->calls->ob, f);
}
