/*
 * Unit tests for lib/util.c: addresses against lists of networks (IPv4,
 * IPv6, IPv4-mapped, single addresses, entries that do not parse).
 */
#include "config.h"

#include <check.h>
#include <stddef.h>

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

UNIT_MAIN("util", addresses_in_networks, entries_that_do_not_parse_match_nothing)
