/*
 * Unit tests for lib/mc.c's names, which assay-api and assay-executor must
 * agree on: an entry within its project, a run's two entries, an API
 * key's lookup. (Talking to memcached is tested against a real one by
 * the integration tests.)
 */
#include "config.h"

#include <check.h>
#include <string.h>

#include "mc.h"
#include "unit.h"

START_TEST(names_agree)
{
	char key[MC_KEY_MAX], name[MC_RUN_NAME_MAX];
	const char *run = "0b7c1f2e-5d4a-4e3b-9a8c-7d6e5f4a3b2c";

	mc_run_name(name, MC_RUN, run);
	ck_assert_str_eq(name, "run:0b7c1f2e-5d4a-4e3b-9a8c-7d6e5f4a3b2c");
	mc_run_name(name, MC_RESULT, run);
	ck_assert_str_eq(name, "result:0b7c1f2e-5d4a-4e3b-9a8c-7d6e5f4a3b2c");
	mc_key(key, "42", name);
	ck_assert_str_eq(key, "assay:p:42:result:0b7c1f2e-5d4a-4e3b-9a8c-7d6e5f4a3b2c");
	mc_apikey_key(key, "ab12");
	ck_assert_str_eq(key, "assay:key:ab12");
}
END_TEST

START_TEST(names_stay_within_bounds)
{
	char name[MC_RUN_NAME_MAX], long_run[200], key[MC_KEY_MAX], long_name[400];

	memset(long_run, 'x', sizeof long_run - 1);
	long_run[sizeof long_run - 1] = '\0';
	mc_run_name(name, MC_RESULT, long_run);
	ck_assert_uint_lt(strlen(name), MC_RUN_NAME_MAX);
	memset(long_name, 'y', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	mc_key(key, "1", long_name);
	ck_assert_uint_lt(strlen(key), MC_KEY_MAX);
}
END_TEST

UNIT_MAIN("mc", names_agree, names_stay_within_bounds)
