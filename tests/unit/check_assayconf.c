/*
 * Unit tests for lib/assayconf.c: tier names and what each tier allows,
 * by default and as [tiers] in assay.conf changes it; the key table holds
 * together (every key named, in its section).
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "assayconf.h"
#include "unit.h"

START_TEST(tiers_by_name)
{
	ck_assert_int_eq(tier_index("free"), TIER_FREE);
	ck_assert_int_eq(tier_index("pro"), TIER_PRO);
	ck_assert_int_eq(tier_index("enterprise"), TIER_ENTERPRISE);
	ck_assert_int_eq(tier_index("gold"), TIER_FREE); /* unknown: the least */
	ck_assert_ptr_null(tier_names[TIER__MAX]);
}
END_TEST

START_TEST(tier_limits_from_the_file)
{
	char path[] = "/tmp/check_assayconf.XXXXXX", *errors = NULL;
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	struct cfg *c;

	fputs("[tiers]\npro_requests_per_minute = 7\n", f);
	fclose(f);
	c = cfg_load(api_cfg_keys, API__MAX, path, true, &errors);
	unlink(path);
	ck_assert_msg(c != NULL, "%s", errors ? errors : "");
	ck_assert_int_eq(tier_limit(c, TIER_FREE, TF_REQUESTS), 20);
	ck_assert_int_eq(tier_limit(c, TIER_FREE, TF_RUNS), 10);
	ck_assert_int_eq(tier_limit(c, TIER_PRO, TF_REQUESTS), 7);
	ck_assert_int_eq(tier_limit(c, TIER_ENTERPRISE, TF_RUNS), 1000);
	cfg_free(c);
}
END_TEST

START_TEST(every_key_is_named)
{
	size_t i;

	for (i = 0; i < API__MAX; i++)
		ck_assert_msg(api_cfg_keys[i].name != NULL &&
		                  api_cfg_keys[i].section != NULL,
		              "key %zu", i);
}
END_TEST

UNIT_MAIN("assayconf", tiers_by_name, tier_limits_from_the_file, every_key_is_named)
