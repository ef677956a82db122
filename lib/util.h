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
/* "90s", "15m", "1h", "7d" (digits, then one unit) in seconds; false for
 * anything else and for more than a hundred years. */
bool util_duration(const char *s, long *seconds);
/* For a daemon's event loop: block SIGTERM, SIGINT and SIGHUP, ignore
 * SIGPIPE, and return a non-blocking signalfd for the three, or -1. */
int util_signalfd(void);
/* Fill hex (2*n+1 bytes) with n random bytes in lowercase hex. false on failure. */
bool util_random_hex(char *hex, size_t n);
/* Is addr (an IPv4 or IPv6 address in text) in one of the networks of
 * list ("127.0.0.0/8, ::1/128, 10.1.2.3": comma-separated CIDRs or single
 * addresses)? An IPv4-mapped IPv6 address counts as its IPv4 address.
 * false for anything that does not parse; *bad, if not NULL, is set to
 * the first entry of list that does not parse (or NULL). */
bool util_addr_in(const char *addr, const char *list, const char **bad);
/* The kind of addr when it is not a public address: "loopback",
 * "private", "link-local", "shared (carrier-grade NAT)", "multicast" or
 * "special-purpose" (a static string); NULL for a public address and for
 * anything that does not parse. */
const char *util_addr_kind(const char *addr);
/* May an outbound call (a webhook) go to addr? Yes when it is a public
 * address, or in allow (a list as for util_addr_in; may be NULL); no for
 * loopback, private, link-local, multicast, reserved and unspecified
 * addresses otherwise, and for anything that does not parse. */
bool util_addr_reachable(const char *addr, const char *allow);

#endif
