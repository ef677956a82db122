/*
 * What PostgreSQL's jsonb can hold (jsontext.c): checks on JSON text.
 */
#ifndef ASSAY_JSONTEXT_H
#define ASSAY_JSONTEXT_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 when it is
 * not one (a stray byte, an overlong form, a surrogate, past U+10FFFF, or
 * cut short by left). */
size_t jsontext_utf8_len(const unsigned char *s, size_t left);
/*
 * text (len bytes, valid JSON) can be stored as jsonb: no NUL character,
 * no lone surrogate, nothing but UTF-8. When it cannot, false, with the
 * JSON pointer of the offending member in ptr (for a member name: the
 * object's pointer followed by the name up to the offending escape) and
 * *why a static phrase completing "<pointer> ...".
 */
bool jsontext_storable(const char *text, size_t len, char *ptr, size_t ptrlen,
                       const char **why);
/*
 * As jsontext_storable, and no object names one member twice (once its
 * escapes are resolved: "a" and "\u0061" are one name): else false, with
 * the member's pointer in ptr and *why "appears twice" or "appears more
 * than twice". For request bodies, of which json-c keeps the last of two
 * members silently. Time O(n log n) in the number of members; memory for
 * the names of the objects open at once (x* allocations, freed before it
 * returns).
 */
bool jsontext_storable_unique(const char *text, size_t len, char *ptr, size_t ptrlen,
                              const char **why);

/*
 * The check of jsontext_storable on text that arrives in pieces (a large
 * result, read as it comes): the state between pieces is all it keeps,
 * member names cut to JSONTEXT_NAME_MAX bytes in the pointers it gives.
 * jsontext_stream_feed takes the next len bytes; jsontext_stream_end says
 * whether the text ended whole (no UTF-8 sequence cut). On false, as
 * jsontext_storable: the pointer in ptr, *why the phrase; once false, the
 * stream says nothing more of use.
 */
#define JSONTEXT_DEPTH_MAX 64
#define JSONTEXT_NAME_MAX  64
struct jsontext_stream {
	int depth;
	struct {
		bool object;
		size_t index;
		unsigned char namelen;
		char name[JSONTEXT_NAME_MAX];
	} lv[JSONTEXT_DEPTH_MAX];
	bool want_key, in_string, in_key;
	unsigned char escape; /* 1 after a backslash; 2 in a \u escape */
	unsigned char low;    /* a high surrogate's low half: 1 wants '\\', 2 'u',
	                         3 in its digits */
	unsigned char hex;    /* digits of the \u escape read so far */
	unsigned u;
	unsigned char utf8[4], have, need; /* a UTF-8 sequence being read */
};
void jsontext_stream_init(struct jsontext_stream *);
bool jsontext_stream_feed(struct jsontext_stream *, const char *text, size_t len,
                          char *ptr, size_t ptrlen, const char **why);
bool jsontext_stream_end(const struct jsontext_stream *, char *ptr, size_t ptrlen,
                         const char **why);

#endif
