/*
 * The runner every unit test's main() ends with: run the suite, report,
 * exit non-zero on any failure; UNIT_MAIN for a program whose tests need
 * no fixture.
 */
#ifndef ASSAY_UNIT_H
#define ASSAY_UNIT_H

#include <check.h>
#include <stdlib.h>

static inline int
unit_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Run n tests (the names START_TEST defines) as one suite called name,
 * each between setup and teardown (either may be NULL). */
static inline int
unit_run_fixture(const char *name, SFun setup, SFun teardown, const TTest *const *tests,
                 size_t n)
{
	Suite *s = suite_create(name);
	TCase *tc = tcase_create(name);
	size_t i;

	if (setup != NULL || teardown != NULL)
		tcase_add_checked_fixture(tc, setup, teardown);
	for (i = 0; i < n; i++)
		tcase_add_test(tc, tests[i]);
	suite_add_tcase(s, tc);
	return unit_run(s);
}

/* The whole main() of a test program: UNIT_MAIN("util", test_a, test_b);
 * UNIT_MAIN_FIXTURE("cfg", setup, teardown, test_a, ...) with a fixture. */
#define UNIT_MAIN_FIXTURE(name, setup, teardown, ...)                                    \
	int main(void)                                                                   \
	{                                                                                \
		const TTest *const tests[] = {__VA_ARGS__};                              \
		return unit_run_fixture(name, setup, teardown, tests,                    \
		                        sizeof tests / sizeof tests[0]);                 \
	}
#define UNIT_MAIN(name, ...) UNIT_MAIN_FIXTURE(name, NULL, NULL, __VA_ARGS__)

#endif
