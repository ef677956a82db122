/*
 * What PostgreSQL's jsonb can hold, checked on JSON text before it is
 * stored: text that json-c accepts may still carry a NUL character
 * (\u0000, which json-c also cuts out of member names without a word), a
 * lone UTF-16 surrogate (escaped, \ud800, or encoded in the bytes), or
 * bytes that are not UTF-8. The API refuses such a body with a 422 naming
 * the member; the executor fails a run whose output carries one. For
 * request bodies the same scan also finds an object naming one member
 * twice, which json-c would take silently, the last one winning. Reads
 * only: never changes the text; allocates only the names it compares,
 * and frees them before returning.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "xalloc.h"

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
	size_t names, decoded; /* objects, when names are compared: where
	                          its own begin in struct names' v, decoded */
};

/* A member name, its escapes resolved. */
struct name {
	const char *s;
	size_t len;
};

/* The member names of the objects still open, innermost last. */
struct names {
	struct name *v;
	size_t n, cap;
	char *decoded; /* names written with escapes, resolved: as long as the
	                  text at most, so that what points into it stays put */
	size_t used;
};

/* Appends "/" and name (len bytes) to out (o bytes so far) as RFC 6901
 * writes it, as much as fits; returns the new length. */
static size_t
segment(char *out, size_t outlen, size_t o, const char *name, size_t len)
{
	size_t i;

	if (o + 2 > outlen)
		return o;
	out[o++] = '/';
	for (i = 0; i < len && o + 3 < outlen; i++) {
		char c = name[i];

		if (c == '~' || c == '/') {
			out[o++] = '~';
			out[o++] = c == '~' ? '0' : '1';
		} else {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	return o;
}

static void
pointer(const struct level *lv, int depth, char *out, size_t outlen)
{
	size_t o = 0;
	int d;
	int n;

	out[0] = '\0';
	for (d = 0; d < depth && o + 1 < outlen; d++) {
		if (lv[d].object) {
			o = segment(out, outlen, o, lv[d].key, lv[d].keylen);
			continue;
		}
		n = snprintf(out + o, outlen - o, "/%zu", lv[d].index);
		o += n > 0 ? (size_t)n : 0;
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
			p += p + 1 < end ? 2 : 1; /* never past the end of a cut text */
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

/* The UTF-8 encoding of code point u into out; returns its length. */
static size_t
utf8_put(unsigned u, char *out)
{
	if (u < 0x80) {
		out[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		out[0] = (char)(0xc0 | u >> 6);
		out[1] = (char)(0x80 | (u & 0x3f));
		return 2;
	}
	if (u < 0x10000) {
		out[0] = (char)(0xe0 | u >> 12);
		out[1] = (char)(0x80 | (u >> 6 & 0x3f));
		out[2] = (char)(0x80 | (u & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | u >> 18);
	out[1] = (char)(0x80 | (u >> 12 & 0x3f));
	out[2] = (char)(0x80 | (u >> 6 & 0x3f));
	out[3] = (char)(0x80 | (u & 0x3f));
	return 4;
}

/* The string s (len bytes inside its quotes, which scan_string passed)
 * with its escapes resolved, into out (at most len bytes); returns its
 * length. */
static size_t
unescape(const char *s, size_t len, char *out)
{
	static const char from[] = "bfnrt", to[] = "\b\f\n\r\t";
	const char *end = s + len, *c;
	size_t o = 0;
	unsigned u;

	while (s < end) {
		if (*s != '\\' || s + 1 == end || (s[1] == 'u' && end - s < 6)) {
			out[o++] = *s++; /* also an escape a cut text leaves unfinished */
		} else if (s[1] != 'u') { /* \" \\ \/ stand for themselves */
			c = memchr(from, s[1], sizeof from - 1);
			out[o++] = c != NULL ? to[c - from] : s[1];
			s += 2;
		} else {
			u = hex4(s + 2);
			s += 6;
			if (u >= 0xd800 && u <= 0xdbff && end - s >= 6) { /* a pair */
				u = 0x10000 + ((u - 0xd800) << 10) +
				    (hex4(s + 2) - 0xdc00);
				s += 6;
			}
			o += utf8_put(u, out + o);
		}
	}
	return o;
}

static int
name_cmp(const void *a, const void *b)
{
	const struct name *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Keeps the name of a member of the innermost open object: s (len bytes,
 * as written in text) itself when it has no escape, else resolved. */
static void
names_add(struct names *nm, const char *s, size_t len, size_t textlen)
{
	struct name *m;

	if (nm->n == nm->cap) {
		nm->cap = nm->cap ? 2 * nm->cap : 64;
		nm->v = xrealloc(nm->v, nm->cap * sizeof *nm->v);
	}
	m = &nm->v[nm->n++];
	if (memchr(s, '\\', len) == NULL) {
		*m = (struct name){s, len};
		return;
	}
	if (nm->decoded == NULL)
		nm->decoded = xmalloc(textlen);
	m->s = nm->decoded + nm->used;
	m->len = unescape(s, len, nm->decoded + nm->used);
	nm->used += m->len;
}

/* The names of the object that ends (lv, from its first name on): one that
 * is there more than once, or NULL; then *why says how often. Forgets them. */
static const struct name *
names_twice(struct names *nm, const struct level *lv, const char **why)
{
	struct name *v = nm->v + lv->names;
	size_t n = nm->n - lv->names, i, same;

	nm->n = lv->names;
	nm->used = lv->decoded;
	if (n < 2)
		return NULL;
	qsort(v, n, sizeof *v, name_cmp);
	for (i = 1; i < n; i++) {
		if (name_cmp(&v[i - 1], &v[i]) != 0)
			continue;
		for (same = 2; i + 1 < n && name_cmp(&v[i], &v[i + 1]) == 0; i++)
			same++;
		*why = same == 2 ? "appears twice" : "appears more than twice";
		return &v[i];
	}
	return NULL;
}

/*
 * The one scan: text is storable (see jsontext.h), and, when nm is not
 * NULL, names no member twice in one object. On false: where in ptr, and
 * what in *why.
 */
static bool
scan(const char *text, size_t len, struct names *nm, char *ptr, size_t ptrlen,
     const char **why)
{
	struct level lv[DEPTH_MAX];
	const char *p = text, *end = text + len;
	const struct name *twice;
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
			lv[depth] = (struct level){*p == '{', 0, NULL, 0, 0, 0};
			if (nm != NULL)
				lv[depth].names = nm->n, lv[depth].decoded = nm->used;
			depth++;
			want_key = *p == '{';
			p++;
			break;
		case '}':
		case ']':
			if (depth == 0) { /* not JSON: the parser says so */
				p++;
				break;
			}
			if (nm != NULL && lv[depth - 1].object &&
			    (twice = names_twice(nm, &lv[depth - 1], why)) != NULL) {
				pointer(lv, depth - 1, ptr, ptrlen);
				segment(ptr, ptrlen, strlen(ptr), twice->s, twice->len);
				return false;
			}
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
			if (want_key && nm != NULL)
				names_add(nm, p, n, len);
			want_key = false;
			p += n + 1;
			break;
		default:
			p++;
		}
	}
	return true;
}

bool
jsontext_storable(const char *text, size_t len, char *ptr, size_t ptrlen,
                  const char **why)
{
	return scan(text, len, NULL, ptr, ptrlen, why);
}

bool
jsontext_storable_unique(const char *text, size_t len, char *ptr, size_t ptrlen,
                         const char **why)
{
	struct names nm = {NULL, 0, 0, NULL, 0};
	bool ok = scan(text, len, &nm, ptr, ptrlen, why);

	free(nm.v);
	free(nm.decoded);
	return ok;
}

void
jsontext_stream_init(struct jsontext_stream *st)
{
	memset(st, 0, sizeof *st);
}

/* The stream's pointer, as pointer() writes it for a whole text. */
static void
stream_pointer(const struct jsontext_stream *st, char *ptr, size_t ptrlen)
{
	struct level lv[JSONTEXT_DEPTH_MAX];
	int d;

	for (d = 0; d < st->depth; d++)
		lv[d] = (struct level){st->lv[d].object,
		                       st->lv[d].index,
		                       st->lv[d].name,
		                       st->lv[d].namelen,
		                       0,
		                       0};
	pointer(lv, st->depth, ptr, ptrlen);
}

/* Why the stream stops at its current place: the pointer, and the
 * phrase, as scan() words it for a member name. */
static bool
stream_refuse(const struct jsontext_stream *st, const char *what, char *ptr,
              size_t ptrlen, const char **why)
{
	stream_pointer(st, ptr, ptrlen);
	*why = st->in_key ? "has a member name that cannot be stored: it contains a NUL "
	                    "character, a lone surrogate or bytes that are not UTF-8"
	                  : what;
	return false;
}

/* One byte inside a string; NULL, or why the string cannot be stored. */
static const char *
stream_string_byte(struct jsontext_stream *st, unsigned char c)
{
	int d = st->depth - 1;

	if (st->in_key && st->escape == 0 && st->low == 0 && c != '"' && c != '\\' &&
	    st->lv[d].namelen < JSONTEXT_NAME_MAX)
		st->lv[d].name[st->lv[d].namelen++] = (char)c;
	if (st->need > 0) { /* inside a UTF-8 sequence */
		st->utf8[st->have++] = c;
		if (st->have < st->need)
			return NULL;
		st->need = 0;
		if (jsontext_utf8_len(st->utf8, st->have) == st->have)
			return NULL;
		return st->utf8[0] == 0xed && (st->utf8[1] & 0xe0) == 0xa0
		           ? "contains a lone UTF-16 surrogate"
		           : "is not valid UTF-8";
	}
	if (st->low == 1 || st->low == 2) { /* a high surrogate wants "\u" next */
		if (c != (st->low == 1 ? '\\' : 'u'))
			return "contains a lone UTF-16 surrogate";
		st->low++;
		st->hex = 0;
		st->u = 0;
		return NULL;
	}
	if (st->escape == 2 || st->low == 3) { /* a digit of \uXXXX */
		st->u =
		    st->u << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		if (++st->hex < 4)
			return NULL;
		if (st->low == 3) {
			st->low = 0;
			return st->u >= 0xdc00 && st->u <= 0xdfff
			           ? NULL
			           : "contains a lone UTF-16 surrogate";
		}
		st->escape = 0;
		if (st->u == 0)
			return "contains a NUL character (\\u0000)";
		if (st->u >= 0xdc00 && st->u <= 0xdfff)
			return "contains a lone UTF-16 surrogate";
		if (st->u >= 0xd800 && st->u <= 0xdbff)
			st->low = 1;
		return NULL;
	}
	if (st->escape == 1) {
		st->escape = c == 'u' ? 2 : 0;
		st->hex = 0;
		st->u = 0;
		return NULL;
	}
	if (c == '\\') {
		st->escape = 1;
	} else if (c == '"') {
		st->in_string = st->in_key = false;
	} else if (c >= 0x80) {
		st->need = c >= 0xc2 && c <= 0xdf   ? 2
		           : c >= 0xe0 && c <= 0xef ? 3
		           : c >= 0xf0 && c <= 0xf4 ? 4
		                                    : 0;
		if (st->need == 0)
			return "is not valid UTF-8";
		st->utf8[0] = c;
		st->have = 1;
	}
	return NULL;
}

bool
jsontext_stream_feed(struct jsontext_stream *st, const char *text, size_t len, char *ptr,
                     size_t ptrlen, const char **why)
{
	const unsigned char *p = (const unsigned char *)text, *end = p + len;

	for (; p < end; p++) {
		if (st->in_string) {
			if ((*why = stream_string_byte(st, *p)) != NULL)
				return stream_refuse(st, *why, ptr, ptrlen, why);
			continue;
		}
		switch (*p) {
		case '{':
		case '[':
			if (st->depth == JSONTEXT_DEPTH_MAX)
				return stream_refuse(st, "is nested too deeply", ptr,
				                     ptrlen, why);
			st->lv[st->depth].object = *p == '{';
			st->lv[st->depth].index = 0;
			st->lv[st->depth].namelen = 0;
			st->depth++;
			st->want_key = *p == '{';
			break;
		case '}':
		case ']':
			if (st->depth > 0)
				st->depth--;
			st->want_key = false;
			break;
		case ',':
			if (st->depth > 0 && st->lv[st->depth - 1].object)
				st->want_key = true;
			else if (st->depth > 0)
				st->lv[st->depth - 1].index++;
			break;
		case '"':
			st->in_string = true;
			st->in_key = st->want_key && st->depth > 0;
			if (st->in_key)
				st->lv[st->depth - 1].namelen = 0;
			st->want_key = false;
			break;
		default:
			break;
		}
	}
	return true;
}

bool
jsontext_stream_end(const struct jsontext_stream *st, char *ptr, size_t ptrlen,
                    const char **why)
{
	if (st->need == 0 && st->escape == 0 && st->low == 0)
		return true;
	return stream_refuse(
	    st, st->need > 0 ? "is not valid UTF-8" : "contains a lone UTF-16 surrogate",
	    ptr, ptrlen, why);
}
