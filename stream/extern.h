/*
 * Internals of assay-stream, the Server-Sent Events responder. One
 * process, one thread, one epoll loop (main.c) holds every stream; it
 * speaks FastCGI framing itself (fcgi.c), because libfcgi serves one
 * blocking connection at a time. Events come from PostgreSQL: a LISTEN on
 * assay_events says which run has news, and one query per run fetches it
 * for all of that run's subscribers (pg.c, asynchronous libpq).
 */
#ifndef ASSAY_STREAM_EXTERN_H
#define ASSAY_STREAM_EXTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* FastCGI framing (fcgi.c). */
enum {
	FCGI_BEGIN_REQUEST = 1,
	FCGI_ABORT_REQUEST = 2,
	FCGI_END_REQUEST = 3,
	FCGI_PARAMS = 4,
	FCGI_STDIN = 5,
	FCGI_STDOUT = 6,
	FCGI_GET_VALUES = 9,
	FCGI_GET_VALUES_RESULT = 10,
	FCGI_UNKNOWN_TYPE = 11,
};
#define FCGI_HEADER_LEN 8

struct fcgi_record {
	unsigned type;
	unsigned request_id;
	const unsigned char *content;
	size_t len;
};

/*
 * The first complete record in buf[0..len): its size (header, content
 * and padding), 0 if more bytes are needed, -1 if the bytes are not
 * FastCGI.
 */
long fcgi_parse(const unsigned char *buf, size_t len, struct fcgi_record *);
/* The value of name in a PARAMS stream (name-value pairs), or NULL. */
const char *fcgi_param(const unsigned char *params, size_t len, const char *name,
                       size_t *vlen);
/* Append records carrying data as type (STDOUT) to *out; grows it. */
void fcgi_append(char **out, size_t *len, size_t *cap, unsigned type, unsigned id,
                 const char *data, size_t dlen);
/* Append an END_REQUEST record. */
void fcgi_append_end(char **out, size_t *len, size_t *cap, unsigned id);

#endif
