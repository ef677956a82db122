/*
 * Unit tests for lib/cfg.c: defaults, file parsing, every error reported
 * with file and line, environment overrides, and masking of secrets.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "unit.h"

static const char *const levels[] = {"debug", "info", NULL};

enum { K_NAME, K_COUNT, K_ON, K_LEVEL, K_MODE, K_URL, K_NETS, K_POLL, K__MAX };
static const struct cfg_key keys[K__MAX] = {
    [K_NAME] = {"main", "name", CFG_STRING, "x", NULL, 0, 0, NULL, 0, "A name."},
    [K_COUNT] = {"main", "count", CFG_INT, "4", "TEST_COUNT", 1, 10, NULL, 0, "A count."},
    [K_ON] = {"main", "on", CFG_BOOL, "false", NULL, 0, 0, NULL, 0, "A switch."},
    [K_LEVEL] = {"main", "level", CFG_ENUM, "info", "TEST_LEVEL", 0, 0, levels, 0,
                 "A level."},
    [K_MODE] = {"other", "mode", CFG_MODE, "0660", NULL, 0, 0, NULL, 0, "A mode."},
    [K_URL] = {"other", "url", CFG_STRING, "", "TEST_URL", 0, 0, NULL, CFG_SECRET,
               "A URL."},
    [K_NETS] = {"other", "nets", CFG_NETWORKS, "", NULL, 0, 0, NULL, 0, "Networks."},
    [K_POLL] = {"executor", "poll", CFG_INT, "5", NULL, 1, 9, NULL, 0, "A period."},
};

static char path[] = "/tmp/check_cfg.XXXXXX";

static void
write_file(const char *text)
{
	int fd = mkstemp(path);
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
}

static void
teardown(void)
{
	unlink(path);
	strcpy(path, "/tmp/check_cfg.XXXXXX");
	unsetenv("TEST_COUNT");
	unsetenv("TEST_LEVEL");
	unsetenv("TEST_URL");
}

START_TEST(defaults_without_file)
{
	char *errors = NULL;
	struct cfg *c = cfg_load(keys, K__MAX, "/nonexistent/assay.conf", false, &errors);

	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(errors);
	ck_assert_ptr_null(cfg_path(c));
	ck_assert_str_eq(cfg_str(c, K_NAME), "x");
	ck_assert_int_eq(cfg_int(c, K_COUNT), 4);
	ck_assert_int_eq(cfg_int(c, K_LEVEL), 1);
	ck_assert_int_eq(cfg_int(c, K_MODE), 0660);
	cfg_free(c);
}
END_TEST

START_TEST(missing_required_file)
{
	char *errors = NULL;
	struct cfg *c = cfg_load(keys, K__MAX, "/nonexistent/assay.conf", true, &errors);

	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(errors, "/nonexistent/assay.conf: cannot open"));
	free(errors);
}
END_TEST

START_TEST(file_values)
{
	char *errors = NULL;
	struct cfg *c;

	write_file("# comment\n; other comment\n\n[main]\nname = \"hello world\"\n"
	           "count=7\non = yes\nlevel = DEBUG\n[other]\nmode = 0600\n"
	           "nets = 10.0.0.0/8, ::1\n");
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_str_eq(cfg_str(c, K_NAME), "hello world");
	ck_assert_int_eq(cfg_int(c, K_COUNT), 7);
	ck_assert_int_eq(cfg_int(c, K_ON), 1);
	ck_assert_int_eq(cfg_int(c, K_LEVEL), 0);
	ck_assert_int_eq(cfg_int(c, K_MODE), 0600);
	ck_assert_str_eq(cfg_str(c, K_NETS), "10.0.0.0/8, ::1");
	ck_assert_str_eq(cfg_path(c), path);
	cfg_free(c);
}
END_TEST

START_TEST(every_error_has_file_and_line)
{
	char *errors = NULL, want[256];
	struct cfg *c;

	write_file("[main]\nbogus = 1\ncount = 0\ncount = ten\nlevel = loud\n"
	           "no equals sign\n[nowhere]\nx = 1\n[other]\nmode = 0999\n"
	           "nets = 10.0.0.0/8, intranet, 10.1.0.0/33\n");
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_ptr_null(c);
	snprintf(want, sizeof want, "%s:2: unknown key 'bogus' in [main]", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want, "%s:3: count: '0' is out of range (1..10)", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want, "%s:4: count: 'ten' is not an integer", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want,
	         "%s:5: level: 'loud' is not one of the allowed values "
	         "(debug, info)",
	         path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want, "%s:6: expected 'key = value'", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want, "%s:7: unknown section [nowhere]", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want, "%s:10: mode: '0999' is not an octal file mode",
	         path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	snprintf(want, sizeof want,
	         "%s:11: nets: '10.0.0.0/8, intranet, 10.1.0.0/33' is not a list of "
	         "networks: 'intranet' is neither a CIDR nor an address",
	         path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	free(errors);
}
END_TEST

/* A key earlier versions had is ignored (with a warning), not an error;
 * an unknown one beside it still is. */
START_TEST(retired_key_is_ignored)
{
	char *errors = NULL, want[256];
	struct cfg *c;

	write_file("[executor]\nresult_max_bytes = 1048576\npoll = 7\n");
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_int_eq(cfg_int(c, K_POLL), 7);
	cfg_free(c);
	unlink(path);
	strcpy(path, "/tmp/check_cfg.XXXXXX");
	write_file("[executor]\nresult_max_bytes = 1\nresult_max = 1\n");
	ck_assert_ptr_null(cfg_load(keys, K__MAX, path, true, &errors));
	snprintf(want, sizeof want, "%s:3: unknown key 'result_max' in [executor]", path);
	ck_assert_msg(strstr(errors, want) != NULL, "missing '%s' in:\n%s", want, errors);
	ck_assert_ptr_null(strstr(errors, "result_max_bytes"));
	free(errors);
}
END_TEST

START_TEST(environment_overrides_file)
{
	char *errors = NULL;
	struct cfg *c;

	write_file("[main]\ncount = 7\n");
	setenv("TEST_COUNT", "9", 1);
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(cfg_int(c, K_COUNT), 9);
	cfg_free(c);

	setenv("TEST_LEVEL", "chatty", 1);
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(errors, "environment TEST_LEVEL: level: 'chatty'") != NULL,
	              "%s", errors);
	free(errors);
}
END_TEST

/* The masked text of url as the value of a secret key. */
static char *
masked(const char *url)
{
	char *errors = NULL, *text;
	struct cfg *c;

	setenv("TEST_URL", url, 1);
	c = cfg_load(keys, K__MAX, NULL, false, &errors);
	ck_assert_ptr_nonnull(c);
	text = cfg_text(c, K_URL);
	cfg_free(c);
	return text;
}

START_TEST(secrets_are_masked)
{
	static const char *const urls[] = {
	    "postgresql://app:hunter2@db.example:5432/assay",
	    "host=db password=hunter2 dbname=assay",
	    "postgresql://app@db.example/assay?password=hunter2",
	    "host=db password='hunter2 and more' dbname=assay",
	    "postgres://app:hunter2@/assay?host=/run/postgresql",
	    "host=db sslpassword=hunter2 password=hunter2more",
	};
	size_t i;
	char *text;

	for (i = 0; i < sizeof urls / sizeof urls[0]; i++) {
		text = masked(urls[i]);
		ck_assert_msg(strstr(text, "hunter2") == NULL &&
		                  strstr(text, "more") == NULL &&
		                  strstr(text, "password='***'") != NULL,
		              "%s -> %s", urls[i], text);
		free(text);
	}
	text = masked("postgresql://app:hunter2@db.example:5432/assay");
	ck_assert_str_eq(text, "user='app' password='***' dbname='assay' "
	                       "host='db.example' port='5432'");
	free(text);
	text = masked("postgresql://app:hunter2@[unterminated");
	ck_assert_str_eq(text, "*** (not a valid connection string)");
	free(text);
}
END_TEST

START_TEST(sample_parses_as_defaults)
{
	char *errors = NULL;
	struct cfg *c;
	FILE *f;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	cfg_write_sample(keys, K__MAX, "test.conf", f);
	fclose(f);
	c = cfg_load(keys, K__MAX, path, true, &errors);
	ck_assert_msg(c != NULL, "%s", errors);
	ck_assert_int_eq(cfg_int(c, K_COUNT), 4);
	ck_assert_str_eq(cfg_str(c, K_URL), "");
	cfg_free(c);
}
END_TEST

UNIT_MAIN_FIXTURE("cfg", NULL, teardown, defaults_without_file, missing_required_file,
                  file_values, every_error_has_file_and_line, retired_key_is_ignored,
                  environment_overrides_file, secrets_are_masked,
                  sample_parses_as_defaults)
