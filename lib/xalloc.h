/*
 * Allocation wrappers. Out-of-memory is decided here, once: every x*
 * function either returns usable memory or logs and aborts. A prefork
 * worker that aborts is replaced by its master, so callers never check
 * for NULL. Nothing here may be used for memory whose exhaustion is an
 * expected, recoverable event (request bodies are bounded before use).
 */
#ifndef ASSAY_XALLOC_H
#define ASSAY_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
/* printf into freshly allocated memory; the caller frees it. */
char *xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

#endif
