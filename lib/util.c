/*
 * Clocks, timestamps, random ids and daemons' signals: see util.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>

#include "util.h"

uint64_t
util_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
util_rfc3339_now(char *buf, size_t len, bool millis)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (millis)
		snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
	else
		snprintf(buf + n, len - n, "Z");
}

bool
util_random_hex(char *hex, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char raw[64];
	ssize_t got;
	size_t i;

	if (n > sizeof raw)
		return false;
	do
		got = getrandom(raw, n, 0);
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)n)
		return false;
	for (i = 0; i < n; i++) {
		hex[2 * i] = digits[raw[i] >> 4];
		hex[2 * i + 1] = digits[raw[i] & 0xf];
	}
	hex[2 * n] = '\0';
	return true;
}

/* A hundred years: longer ago than any time worth asking about (and
 * within PostgreSQL's range of timestamps, which a caller subtracts from
 * now). */
#define DURATION_MAX (100L * 366 * 86400)

bool
util_duration(const char *s, long *seconds)
{
	static const struct {
		char unit;
		long seconds;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	size_t digits = strspn(s, "0123456789"), i;
	long n;

	if (digits == 0 || digits > 9 || s[digits] == '\0' || s[digits + 1] != '\0')
		return false;
	n = strtol(s, NULL, 10);
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (units[i].unit == s[digits]) {
			*seconds = n * units[i].seconds;
			return *seconds <= DURATION_MAX;
		}
	return false;
}

int
util_signalfd(void)
{
	sigset_t sigs;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* addr as 16 bytes (IPv4 as IPv4-mapped IPv6); false if it is not one. */
static bool
addr16(const char *text, size_t len, unsigned char out[16])
{
	char buf[INET6_ADDRSTRLEN];
	struct in_addr v4;

	if (len == 0 || len >= sizeof buf)
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, buf, out) == 1;
}

/* One entry, "ADDR" or "ADDR/BITS": its network and prefix length in
 * IPv6 bits; false if it does not parse. */
static bool
network(const char *entry, size_t len, unsigned char net[16], int *bits)
{
	const char *slash = memchr(entry, '/', len);
	size_t alen = slash ? (size_t)(slash - entry) : len;
	bool v4 = memchr(entry, ':', alen) == NULL;
	char *end;
	long b;

	if (!addr16(entry, alen, net))
		return false;
	*bits = 128;
	if (slash == NULL)
		return true;
	b = strtol(slash + 1, &end, 10);
	if (end != entry + len || slash + 1 == end || b < 0 || b > (v4 ? 32 : 128))
		return false;
	*bits = (int)(v4 ? b + 96 : b);
	return true;
}

bool
util_addr_in(const char *addr, const char *list, const char **bad)
{
	unsigned char a[16], net[16];
	const char *p;
	bool found = false;
	size_t n;
	int bits, i;

	if (bad != NULL)
		*bad = NULL;
	if (addr == NULL || !addr16(addr, strlen(addr), a))
		return false;
	for (p = list; *p != '\0'; p += n + (p[n] == ',')) {
		p += strspn(p, " \t");
		n = strcspn(p, ", \t");
		if (n == 0)
			continue;
		if (!network(p, n, net, &bits)) {
			if (bad != NULL && *bad == NULL)
				*bad = p;
			continue;
		}
		for (i = 0; i < bits && ((a[i / 8] ^ net[i / 8]) >> (7 - i % 8) & 1) == 0;
		     i++)
			;
		found = found || i == bits;
	}
	return found;
}

/* Where no outbound call may go unless an operator allows it, by kind:
 * this host, private networks, link-local (cloud metadata), carrier-grade
 * NAT, multicast, and the special-purpose rest (unspecified, reserved,
 * benchmarking, broadcast, NAT64, discard), in IPv4 and IPv6. */
static const struct {
	const char *kind, *networks;
} non_public[] = {
    {"loopback", "127.0.0.0/8, ::1/128"},
    {"private", "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7"},
    {"link-local", "169.254.0.0/16, fe80::/10"},
    {"shared (carrier-grade NAT)", "100.64.0.0/10"},
    {"multicast", "224.0.0.0/4, ff00::/8"},
    {"documentation", "192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32"},
    /* (IPv6 forms that carry an IPv4 address, any of them: IPv4-compatible,
     * NAT64, 6to4, Teredo) */
    {"special-purpose", "0.0.0.0/8, 192.0.0.0/24, 198.18.0.0/15, 240.0.0.0/4,"
                        "::/96, 64:ff9b::/96, 64:ff9b:1::/48, 100::/64, 2001::/32,"
                        "2002::/16"},
};

const char *
util_addr_kind(const char *addr)
{
	size_t i;

	for (i = 0; i < sizeof non_public / sizeof non_public[0]; i++)
		if (util_addr_in(addr, non_public[i].networks, NULL))
			return non_public[i].kind;
	return NULL;
}

bool
util_addr_reachable(const char *addr, const char *allow)
{
	return util_addr_in(addr, allow != NULL ? allow : "", NULL) ||
	       (util_addr_kind(addr) == NULL &&
	        util_addr_in(addr, "0.0.0.0/0, ::/0", NULL));
}
