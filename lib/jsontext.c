/*
 * What PostgreSQL's jsonb can hold, checked on JSON text before it is
 * stored: text that json-c accepts may still carry a NUL character
 * (\u0000, which json-c also cuts out of member names without a word), a
 * lone UTF-16 surrogate (escaped, \ud800, or encoded in the bytes), or
 * bytes that are not UTF-8. The API refuses such a body with a 422 naming
 * the member; the executor fails a run whose output carries one. Reads
 * only: never changes the text, never allocates.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "jsontext.h"

#define DEPTH_MAX 64

size_t
jsontext_utf8_len(const unsigned char *s, size_t left)
{
	size_t n, i;
	unsigned cp;

	if (left == 0)
		return 0;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1fu;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0fu;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07u;
	else
		return 0;
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, or a surrogate */
	return n;
}

/* Where the scan is: one level per open object or array. */
struct level {
	bool object;
	size_t index;    /* arrays: the element's index */
	const char *key; /* objects: the member's name, as written */
	size_t keylen;
};

static void
pointer(const struct level *lv, int depth, char *out, size_t outlen)
{
	size_t o = 0, i;
	int d;
	int n;

	out[0] = '\0';
	for (d = 0; d < depth && o + 1 < outlen; d++) {
		if (!lv[d].object) {
			n = snprintf(out + o, outlen - o, "/%zu", lv[d].index);
			o += n > 0 ? (size_t)n : 0;
			continue;
		}
		out[o++] = '/';
		for (i = 0; i < lv[d].keylen && o + 3 < outlen; i++) {
			char c = lv[d].key[i];

			if (c == '~' || c == '/') { /* RFC 6901 */
				out[o++] = '~';
				out[o++] = c == '~' ? '0' : '1';
			} else {
				out[o++] = c;
			}
		}
		out[o] = '\0';
	}
	if (o >= outlen)
		out[outlen - 1] = '\0';
}

static unsigned
hex4(const char *s)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = s[i];

		v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

/* The string at s (after its opening quote): its length up to the closing
 * quote, or why it cannot be stored. */
static const char *
scan_string(const char *s, const char *end, size_t *len)
{
	const char *p = s;
	unsigned u;
	size_t n;

	while (p < end && *p != '"') {
		if (*p == '\\' && p + 1 < end && p[1] == 'u' && p + 6 <= end) {
			u = hex4(p + 2);
			if (u == 0)
				return "contains a NUL character (\\u0000)";
			if (u >= 0xdc00 && u <= 0xdfff)
				return "contains a lone UTF-16 surrogate";
			if (u >= 0xd800 && u <= 0xdbff) {
				if (p + 12 > end || p[6] != '\\' || p[7] != 'u' ||
				    hex4(p + 8) < 0xdc00 || hex4(p + 8) > 0xdfff)
					return "contains a lone UTF-16 surrogate";
				p += 6;
			}
			p += 6;
		} else if (*p == '\\') {
			p += 2;
		} else if ((n = jsontext_utf8_len((const unsigned char *)p,
		                                  (size_t)(end - p))) == 0) {
			return (unsigned char)p[0] == 0xed && p + 1 < end &&
			               ((unsigned char)p[1] & 0xe0) == 0xa0
			           ? "contains a lone UTF-16 surrogate"
			           : "is not valid UTF-8";
		} else {
			p += n;
		}
	}
	*len = (size_t)(p - s);
	return NULL;
}

bool
jsontext_storable(const char *text, size_t len, char *ptr, size_t ptrlen,
                  const char **why)
{
	struct level lv[DEPTH_MAX];
	const char *p = text, *end = text + len;
	bool want_key = false;
	int depth = 0;
	size_t n;

	while (p < end) {
		switch (*p) {
		case '{':
		case '[':
			if (depth == DEPTH_MAX) {
				*why = "is nested too deeply";
				pointer(lv, depth, ptr, ptrlen);
				return false;
			}
			lv[depth] = (struct level){*p == '{', 0, NULL, 0};
			depth++;
			want_key = *p == '{';
			p++;
			break;
		case '}':
		case ']':
			depth--;
			want_key = false;
			p++;
			break;
		case ',':
			if (depth > 0 && lv[depth - 1].object)
				want_key = true;
			else if (depth > 0)
				lv[depth - 1].index++;
			p++;
			break;
		case '"':
			p++;
			if (want_key) { /* the name itself is part of where */
				lv[depth - 1].key = p;
				lv[depth - 1].keylen = 0;
			}
			if ((*why = scan_string(p, end, &n)) != NULL) {
				if (want_key)
					lv[depth - 1].keylen = strcspn(p, "\"\\");
				pointer(lv, depth, ptr, ptrlen);
				if (want_key)
					*why =
					    "has a member name that cannot be stored: it "
					    "contains a NUL character, a lone surrogate "
					    "or "
					    "bytes that are not UTF-8";
				return false;
			}
			if (want_key)
				lv[depth - 1].keylen = n;
			want_key = false;
			p += n + 1;
			break;
		default:
			p++;
		}
	}
	return true;
}
