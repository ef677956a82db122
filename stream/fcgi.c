/*
 * FastCGI framing (the FastCGI 1.0 specification): records of an 8-byte
 * header, content and padding; PARAMS as name-value pairs with 1- or
 * 4-byte lengths. Pure functions over buffers: no I/O here.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "xalloc.h"

long
fcgi_parse(const unsigned char *buf, size_t len, struct fcgi_record *rec)
{
	size_t clen, plen;

	if (len < FCGI_HEADER_LEN)
		return 0;
	if (buf[0] != 1)
		return -1; /* only version 1 exists */
	clen = (size_t)buf[4] << 8 | buf[5];
	plen = buf[6];
	if (len < FCGI_HEADER_LEN + clen + plen)
		return 0;
	rec->type = buf[1];
	rec->request_id = (unsigned)buf[2] << 8 | buf[3];
	rec->content = buf + FCGI_HEADER_LEN;
	rec->len = clen;
	return (long)(FCGI_HEADER_LEN + clen + plen);
}

/* A name or value length at *p (1 byte, or 4 with the high bit set). */
static bool
fcgi_length(const unsigned char **p, const unsigned char *end, size_t *n)
{
	if (*p >= end)
		return false;
	if (**p < 0x80) {
		*n = *(*p)++;
		return true;
	}
	if (end - *p < 4)
		return false;
	*n = ((size_t)((*p)[0] & 0x7f) << 24) | ((size_t)(*p)[1] << 16) |
	     ((size_t)(*p)[2] << 8) | (*p)[3];
	*p += 4;
	return true;
}

const char *
fcgi_param(const unsigned char *params, size_t len, const char *name, size_t *vlen)
{
	const unsigned char *p = params, *end = params + len;
	size_t nlen, want = strlen(name), v;

	while (p < end) {
		if (!fcgi_length(&p, end, &nlen) || !fcgi_length(&p, end, &v) ||
		    (size_t)(end - p) < nlen || (size_t)(end - p) - nlen < v)
			return NULL;
		if (nlen == want && memcmp(p, name, nlen) == 0) {
			*vlen = v;
			return (const char *)p + nlen;
		}
		p += nlen + v;
	}
	return NULL;
}

static void
fcgi_reserve(char **out, size_t *len, size_t *cap, size_t more)
{
	if (*len + more <= *cap)
		return;
	*cap = (*len + more) * 2;
	*out = xrealloc(*out, *cap);
}

static void
fcgi_header(char *h, unsigned type, unsigned id, size_t clen)
{
	h[0] = 1;
	h[1] = (char)type;
	h[2] = (char)(id >> 8);
	h[3] = (char)id;
	h[4] = (char)(clen >> 8);
	h[5] = (char)clen;
	h[6] = 0;
	h[7] = 0;
}

void
fcgi_append(char **out, size_t *len, size_t *cap, unsigned type, unsigned id,
            const char *data, size_t dlen)
{
	size_t chunk;

	if (dlen == 0)
		return; /* an empty STDOUT record would end the stream */
	do {
		chunk = dlen > 65535 ? 65535 : dlen;
		fcgi_reserve(out, len, cap, FCGI_HEADER_LEN + chunk);
		fcgi_header(*out + *len, type, id, chunk);
		memcpy(*out + *len + FCGI_HEADER_LEN, data, chunk);
		*len += FCGI_HEADER_LEN + chunk;
		data += chunk;
		dlen -= chunk;
	} while (dlen > 0);
}

void
fcgi_append_end(char **out, size_t *len, size_t *cap, unsigned id)
{
	/* An empty STDOUT record closes the stream, then END_REQUEST: complete. */
	fcgi_reserve(out, len, cap, 2 * FCGI_HEADER_LEN + 8);
	fcgi_header(*out + *len, FCGI_STDOUT, id, 0);
	*len += FCGI_HEADER_LEN;
	fcgi_header(*out + *len, FCGI_END_REQUEST, id, 8);
	memset(*out + *len + FCGI_HEADER_LEN, 0, 8);
	*len += FCGI_HEADER_LEN + 8;
}
