/*
 * Small helpers with no other home: clocks, timestamps, random ids, the
 * signals of a daemon's event loop.
 * Nothing here allocates or blocks (getrandom is non-blocking after boot).
 */
#ifndef ASSAY_UTIL_H
#define ASSAY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in microseconds. */
uint64_t util_now_us(void);
/* Current UTC time as RFC 3339 ("2026-11-24T08:15:00Z", with .mmm if millis). */
void util_rfc3339_now(char *buf, size_t len, bool millis);
/* For a daemon's event loop: block SIGTERM, SIGINT and SIGHUP, ignore
 * SIGPIPE, and return a non-blocking signalfd for the three, or -1. */
int util_signalfd(void);
/* Fill hex (2*n+1 bytes) with n random bytes in lowercase hex. false on failure. */
bool util_random_hex(char *hex, size_t n);

#endif
