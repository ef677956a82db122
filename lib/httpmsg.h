/*
 * What assay-api and assay-stream say and accept alike over HTTP: reason
 * phrases, request ids, run ids, query values, the API key a request
 * presents, the /api alias of /api/v1, CORS origins and the RFC 9457
 * problem body. Plain strings in,
 * plain strings out: nothing here knows FastCGI, does I/O or logs, and
 * nothing here keeps or echoes an API key.
 */
#ifndef ASSAY_HTTPMSG_H
#define ASSAY_HTTPMSG_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* The challenge of a 401 (without the line's CRLF). */
#define HTTPMSG_CHALLENGE "WWW-Authenticate: Bearer realm=\"assay\""

/* The value of name in a query string (query may be NULL), percent-decoded
 * into buf (len bytes): 1 when given, 0 when absent, -1 when too long for
 * buf, -2 when it decodes to a NUL (never taken for absent; buf is ""). */
int httpmsg_query(const char *query, const char *name, char *buf, size_t len);
/* Percent-decode the n bytes at s ('+' is a space) into out (len bytes,
 * always NUL-terminated; the decoded length in *outlen): the bytes of s
 * decoded, fewer than n when out is too short. */
size_t httpmsg_unescape(const char *s, size_t n, char *out, size_t len, size_t *outlen);
/* CORS: the headers a response to an allowed origin carries, and those a
 * preflight answers with (its methods follow in Access-Control-Allow-Methods). */
#define HTTPMSG_CORS_EXPOSE                                                              \
	"Access-Control-Expose-Headers: X-Request-ID, Location, Retry-After, ETag, "     \
	"X-RateLimit-Tier, X-RateLimit-Limit, X-RateLimit-Window, "                      \
	"X-RateLimit-Remaining, "                                                        \
	"X-RateLimit-Reset, RateLimit, RateLimit-Policy\r\nVary: Origin\r\n"
#define HTTPMSG_CORS_PREFLIGHT                                                           \
	"Access-Control-Allow-Headers: Authorization, X-API-Key, Content-Type, "         \
	"Idempotency-Key, If-None-Match, Last-Event-ID, X-Request-ID, "                  \
	"X-No-Compression\r\n"                                                           \
	"Access-Control-Max-Age: 600\r\n"
/* Is origin (the request's Origin header, may be NULL) one of allowed
 * ("https://a.example, http://localhost:3000": exact, comma-separated)? */
bool httpmsg_origin_allowed(const char *origin, const char *allowed);
/* The reason phrase of status; "Unknown" for a status Assay never sends. */
const char *httpmsg_reason(int status);
/*
 * Copy given (may be NULL) to id when it is a well-formed request id (1
 * to 64 of [A-Za-z0-9._-]), else make a new one: 32 hex digits, unique
 * within the process. A process that forks must not have made one.
 */
void httpmsg_request_id(const char *given, char id[65]);
/* Is s a UUID in text (36 characters, hex digits in either case)? */
bool httpmsg_uuid(const char *s);
/*
 * The API key a request presents, from its Authorization and X-API-Key
 * headers (either may be NULL): what follows "Bearer " (any case, any
 * spaces) when Authorization says Bearer, else X-API-Key. Points into
 * one of them; NULL when neither holds one. The key is not checked.
 */
const char *httpmsg_api_key(const char *authorization, const char *x_api_key);
/*
 * The path of uri without its query string, with /api/ standing for
 * /api/v1/, in path (len bytes, cut short when longer).
 */
void httpmsg_path(const char *uri, char *path, size_t len);
/* A query parameter's name (len bytes, decoded) as a 400 names it: its
 * UTF-8 text, other bytes and controls as %XX, cut short to fit size bytes. */
void httpmsg_param_name(const char *name, size_t len, char *buf, size_t size);
/* The members of a 400 INVALID_PARAMETER beside the problem's own
 * ({"errors": errors}; errors, objects with "parameter" and "detail", at
 * least one, pass to it) and its detail in buf: the first error, and how
 * many more. The caller puts the returned object. */
struct json_object *httpmsg_param_problem(struct json_object *errors, char *buf,
                                          size_t len);
/* The ETag of a success body from its members ("run":{...}): a quoted
 * digest of 32 hex digits. */
void httpmsg_etag(const char *members, char etag[35]);
/*
 * The problem+json body {"type","title","status","detail","code",
 * "request_id"} then extra's members (extra may be NULL; it stays the
 * caller's). The caller frees the returned text.
 */
char *httpmsg_problem(int status, const char *code, const char *detail,
                      const char *request_id, struct json_object *extra);

#endif
