/*
 * Unit tests for lib/util.c: addresses against lists of networks (IPv4,
 * IPv6, IPv4-mapped, single addresses, entries that do not parse), and
 * which addresses outbound calls may reach.
 */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <string.h>

#include "unit.h"
#include "util.h"

START_TEST(addresses_in_networks)
{
	const char *loop = "127.0.0.0/8, ::1/128";

	ck_assert(util_addr_in("127.0.0.1", loop, NULL));
	ck_assert(util_addr_in("127.255.3.4", loop, NULL));
	ck_assert(util_addr_in("::1", loop, NULL));
	ck_assert(util_addr_in("::ffff:127.0.0.1", loop, NULL));
	ck_assert(!util_addr_in("128.0.0.1", loop, NULL));
	ck_assert(!util_addr_in("::2", loop, NULL));
	ck_assert(!util_addr_in("10.0.0.1", "", NULL));
	ck_assert(util_addr_in("10.1.2.3", "192.168.0.0/16,10.1.2.3", NULL));
	ck_assert(!util_addr_in("10.1.2.4", "10.1.2.3", NULL));
	ck_assert(util_addr_in("10.1.2.4", "10.0.0.0/8", NULL));
	ck_assert(util_addr_in("fd00::5", "fc00::/7", NULL));
	ck_assert(!util_addr_in("fe80::1", "fc00::/7", NULL));
	ck_assert(util_addr_in("1.2.3.4", "0.0.0.0/0", NULL));
	ck_assert(!util_addr_in("not an address", "0.0.0.0/0", NULL));
	ck_assert(!util_addr_in(NULL, loop, NULL));
}
END_TEST

START_TEST(entries_that_do_not_parse_match_nothing)
{
	const char *bad;

	ck_assert(!util_addr_in("127.0.0.1", "localhost", &bad));
	ck_assert_str_eq(bad, "localhost");
	ck_assert(util_addr_in("127.0.0.1", "10.0.0.0/33, 127.0.0.1", &bad));
	ck_assert_str_eq(bad, "10.0.0.0/33, 127.0.0.1");
	ck_assert(!util_addr_in("10.0.0.1", "10.0.0.0/", &bad));
	ck_assert_ptr_nonnull(bad);
	ck_assert(util_addr_in("10.0.0.1", "10.0.0.0/8", &bad));
	ck_assert_ptr_null(bad);
}
END_TEST

START_TEST(outbound_calls_reach_public_addresses_only)
{
	static const char *const refused[] = {"127.0.0.1",
	                                      "10.0.0.1",
	                                      "172.16.5.4",
	                                      "192.168.1.1",
	                                      "169.254.169.254",
	                                      "100.64.0.1",
	                                      "0.0.0.0",
	                                      "224.0.0.1",
	                                      "255.255.255.255",
	                                      "::1",
	                                      "::",
	                                      "fe80::1",
	                                      "fd00::1",
	                                      "ff02::1",
	                                      "::ffff:10.0.0.1",
	                                      "::ffff:169.254.169.254",
	                                      "64:ff9b::a9fe:a9fe",
	                                      "::a9fe:a9fe",
	                                      "2002:a9fe:a9fe::1",
	                                      "2001:0:4136:e378::1",
	                                      "192.0.2.1",
	                                      "2001:db8::1",
	                                      "not an address"};
	size_t i;

	for (i = 0; i < sizeof refused / sizeof refused[0]; i++)
		ck_assert_msg(!util_addr_reachable(refused[i], NULL), "%s", refused[i]);
	ck_assert(util_addr_reachable("93.184.216.34", NULL));
	ck_assert(util_addr_reachable("2606:2800:220:1::1", NULL));
	ck_assert(util_addr_reachable("::ffff:93.184.216.34", ""));
	ck_assert(util_addr_reachable("127.0.0.1", "127.0.0.0/8"));
	ck_assert(util_addr_reachable("::ffff:127.0.0.1", "127.0.0.0/8"));
	ck_assert(!util_addr_reachable("::1", "127.0.0.0/8"));
	ck_assert(!util_addr_reachable("10.0.0.1", "127.0.0.0/8"));
}
END_TEST

START_TEST(refused_addresses_are_named_by_kind)
{
	static const char *const kinds[][2] = {
	    {"127.0.0.1", "loopback"},      {"::1", "loopback"},
	    {"10.0.0.1", "private"},        {"::ffff:192.168.1.1", "private"},
	    {"fd00::1", "private"},         {"169.254.169.254", "link-local"},
	    {"fe80::1", "link-local"},      {"100.64.0.1", "shared (carrier-grade NAT)"},
	    {"224.0.0.1", "multicast"},     {"255.255.255.255", "special-purpose"},
	    {"0.0.0.0", "special-purpose"}, {"::", "special-purpose"},
	    {"93.184.216.34", NULL},        {"2606:2800:220:1::1", NULL},
	    {"not an address", NULL},
	};
	const char *kind;
	size_t i;

	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		kind = util_addr_kind(kinds[i][0]);
		ck_assert_msg(kinds[i][1] == NULL
		                  ? kind == NULL
		                  : kind != NULL && strcmp(kind, kinds[i][1]) == 0,
		              "%s: %s", kinds[i][0], kind ? kind : "public");
	}
}
END_TEST

/* Digits then one unit; nothing else. */
START_TEST(durations)
{
	static const char *const bad[] = {"",    "s",           "1",      "1hh",
	                                  "-1h", "1.5h",        "1w",     " 1h",
	                                  "1h ", "1234567890s", "36601d", "999999999d"};
	long n;
	size_t i;

	ck_assert(util_duration("90s", &n) && n == 90);
	ck_assert(util_duration("15m", &n) && n == 900);
	ck_assert(util_duration("1h", &n) && n == 3600);
	ck_assert(util_duration("7d", &n) && n == 604800);
	ck_assert(util_duration("0s", &n) && n == 0);
	ck_assert(util_duration("36600d", &n) && n == 36600L * 86400); /* 100 years */
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!util_duration(bad[i], &n), "%s", bad[i]);
}
END_TEST

UNIT_MAIN("util", addresses_in_networks, entries_that_do_not_parse_match_nothing,
          outbound_calls_reach_public_addresses_only, refused_addresses_are_named_by_kind,
          durations)
