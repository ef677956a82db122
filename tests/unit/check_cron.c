/*
 * Unit tests for lib/cron.c: expressions that parse and those that do not
 * (each error naming its field and the problem), zones, and next firing
 * times: lists, ranges, steps, names, seconds, macros, @every, the day
 * fields' either-or rule, leap days, expressions that never fire, and
 * daylight saving changes in Europe/Paris and America/New_York (a
 * skipped time fires at the first instant after the gap, a repeated one
 * once; wildcard expressions fire in both passes of a repeated hour).
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "unit.h"

/* "2026-03-29T01:00:00Z" <-> seconds. */
static time_t
at(const char *iso)
{
	struct tm tm = {0};

	ck_assert_ptr_nonnull(strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

static const char *
iso(time_t t)
{
	static char buf[32];
	struct tm tm;

	if (t < 0)
		return "never";
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static struct cron
parsed(const char *expr)
{
	struct cron c;
	char err[256] = "";

	ck_assert_msg(cron_parse(expr, &c, err, sizeof err), "%s: %s", expr, err);
	return c;
}

/* The next firing times of expr in zone after after, in order. */
static void
next_times(const char *expr, const char *zone, const char *after, const char *const *want,
           size_t n)
{
	struct cron c = parsed(expr);
	time_t t = at(after);
	size_t i;

	for (i = 0; i < n; i++) {
		t = cron_next(&c, zone, t);
		ck_assert_msg(strcmp(iso(t), want[i]) == 0, "%s in %s, #%zu: %s, not %s",
		              expr, zone, i, iso(t), want[i]);
	}
}
#define NEXT(expr, zone, after, ...)                                                     \
	do {                                                                             \
		const char *const want_[] = {__VA_ARGS__};                               \
		next_times(expr, zone, after, want_, sizeof want_ / sizeof want_[0]);    \
	} while (0)

/* expr does not parse, and the error says each of words. */
static void
refused(const char *expr, const char *w1, const char *w2)
{
	struct cron c;
	char err[256] = "";

	ck_assert_msg(!cron_parse(expr, &c, err, sizeof err), "'%s' parsed", expr);
	ck_assert_msg(strstr(err, w1) != NULL && (w2 == NULL || strstr(err, w2) != NULL),
	              "'%s': '%s' does not say %s%s%s", expr, err, w1, w2 ? " and " : "",
	              w2 ? w2 : "");
}

START_TEST(valid_expressions)
{
	const char *const ok[] = {
	    "* * * * *",       "0 0 * * *",
	    "*/15 * * * *",    "0 9-17 * * mon-fri",
	    "0 0 1,15 * *",    "5,10-20/5,50 * * * *",
	    "0 0 * jan,JUL *", "0 0 * * 7",
	    "0 0 * * sun",     "*/10 * * * * *",
	    "0 30 2 * * *",    "5/15 * * * *",
	    "@yearly",         "@annually",
	    "@monthly",        "@weekly",
	    "@daily",          "@midnight",
	    "@hourly",         "@every 1s",
	    "@every 90m",      "@every 2h",
	    "  0  0 * * *  ",  "0 0 29 2 *",
	    "59 23 31 12 6",   "0-59/59 0-23/23 1-31/30 1-12/11 0-7/7",
	};
	size_t i;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
		parsed(ok[i]);
}
END_TEST

START_TEST(invalid_expressions_say_why)
{
	refused("", "expected 5 fields", "not 0");
	refused("* * * *", "expected 5 fields", "not 4");
	refused("* * * * * * *", "expected 5 fields", "more than 6");
	refused("61 * * * *", "minute field", "61 is out of range 0-59");
	refused("* 24 * * *", "hour field", "24 is out of range 0-23");
	refused("* * 0 * *", "day-of-month field", "0 is out of range 1-31");
	refused("* * 32 * *", "day-of-month field", "32");
	refused("* * * 13 *", "month field", "13 is out of range 1-12");
	refused("* * * * 8", "day-of-week field", "8 is out of range 0-7");
	refused("60 * * * * *", "second field", "60 is out of range 0-59");
	refused("*/0 * * * *", "minute field", "step '0'");
	refused("*/x * * * *", "minute field", "step 'x'");
	refused("*/61 * * * *", "minute field", "from 1 to 60");
	refused("* */25 * * *", "hour field", "from 1 to 24");
	refused("5-2 * * * *", "minute field", "5-2 goes backwards");
	refused("* * * foo *", "month field", "'foo' is not a month");
	refused("* * * * funday", "day-of-week field", "is not a day of the week");
	refused("* * * * mon-", "day-of-week field", "expected a number");
	refused("jan * * * *", "minute field", "'jan' is not a number");
	refused("1,,2 * * * *", "minute field", "empty item");
	refused("1, * * * *", "minute field", "empty item");
	refused("1-2-3 * * * *", "minute field", "unexpected '-3'");
	refused("1.5 * * * *", "minute field", "unexpected '.5'");
	refused("* * * * * ?", "day-of-week field", NULL);
	refused("@often", "'@often' is not one of", "@every");
	refused("@every 0s", "@every takes an interval", NULL);
	refused("@every 5d", "@every takes an interval", NULL);
	refused("@every 10", "@every takes an interval", NULL);
	refused("@every 9000h", "@every takes an interval", NULL);
	refused("@every", "is not one of", NULL);
	refused("0 0 1 1 * 2026 extra", "expected 5 fields", NULL);
}
END_TEST

START_TEST(zones)
{
	ck_assert(cron_zone_ok("Europe/Paris"));
	ck_assert(cron_zone_ok("America/New_York"));
	ck_assert(cron_zone_ok("UTC"));
	ck_assert(cron_zone_ok("Etc/GMT+5"));
	ck_assert(!cron_zone_ok("Mars/Olympus_Mons"));
	ck_assert(!cron_zone_ok("Europe"));
	ck_assert(!cron_zone_ok("Europe/Paris/"));
	ck_assert(!cron_zone_ok("../../etc/passwd"));
	ck_assert(!cron_zone_ok("Europe/../../../etc/passwd"));
	ck_assert(!cron_zone_ok("/etc/localtime"));
	ck_assert(!cron_zone_ok(""));
	ck_assert(!cron_zone_ok("Europe/Paris extra"));
}
END_TEST

START_TEST(next_in_utc)
{
	NEXT("*/15 * * * *", "UTC", "2026-05-01T10:07:00Z", "2026-05-01T10:15:00Z",
	     "2026-05-01T10:30:00Z", "2026-05-01T10:45:00Z", "2026-05-01T11:00:00Z");
	NEXT("0 9-17/4 * * *", "UTC", "2026-05-01T09:00:00Z", "2026-05-01T13:00:00Z",
	     "2026-05-01T17:00:00Z", "2026-05-02T09:00:00Z");
	NEXT("5/20 * * * *", "UTC", "2026-05-01T10:07:00Z", "2026-05-01T10:25:00Z",
	     "2026-05-01T10:45:00Z", "2026-05-01T11:05:00Z");
	/* 2026-12-04 is a Friday */
	NEXT("0 9 * * mon-fri", "UTC", "2026-12-04T10:00:00Z", "2026-12-07T09:00:00Z",
	     "2026-12-08T09:00:00Z");
	NEXT("0 0 * * 7", "UTC", "2026-12-04T10:00:00Z", "2026-12-06T00:00:00Z",
	     "2026-12-13T00:00:00Z");
	NEXT("0 12 1 jan,jul *", "UTC", "2026-02-01T00:00:00Z", "2026-07-01T12:00:00Z",
	     "2027-01-01T12:00:00Z");
	NEXT("@yearly", "UTC", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z",
	     "2028-01-01T00:00:00Z");
	NEXT("@monthly", "UTC", "2026-01-31T00:00:00Z", "2026-02-01T00:00:00Z",
	     "2026-03-01T00:00:00Z");
	NEXT("@weekly", "UTC", "2026-12-04T10:00:00Z", "2026-12-06T00:00:00Z");
	NEXT("@hourly", "UTC", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z");
	NEXT("*/10 * * * * *", "UTC", "2026-05-01T12:00:05Z", "2026-05-01T12:00:10Z",
	     "2026-05-01T12:00:20Z");
	NEXT("30 15 10 * * *", "UTC", "2026-05-01T10:15:30Z", "2026-05-02T10:15:30Z");
	NEXT("59 23 31 * *", "UTC", "2026-04-01T00:00:00Z", "2026-05-31T23:59:00Z",
	     "2026-07-31T23:59:00Z");
	/* leap days only, every four years (2100 is not one) */
	NEXT("0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z",
	     "2032-02-29T00:00:00Z");
	NEXT("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z");
	NEXT("0 0 30 2 *", "UTC", "2026-03-01T00:00:00Z", "never");
	NEXT("0 0 31 4,6,9,11 *", "UTC", "2026-03-01T00:00:00Z", "never");
	/* @every counts from the previous tick, in absolute time */
	NEXT("@every 90s", "Europe/Paris", "2026-03-29T00:59:00Z", "2026-03-29T01:00:30Z",
	     "2026-03-29T01:02:00Z");
	NEXT("@every 1h", "America/New_York", "2026-11-01T05:30:00Z",
	     "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z");
}
END_TEST

START_TEST(either_day_field)
{
	/* both restricted: the 13th or a Friday (2026-02-06, 13, 20 are Fridays) */
	NEXT("0 0 13 * 5", "UTC", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z",
	     "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z",
	     "2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z");
	NEXT("0 0 1 * mon", "UTC", "2026-05-26T00:00:00Z", "2026-06-01T00:00:00Z",
	     "2026-06-08T00:00:00Z");
	/* a field that starts with * restricts nothing: both must match */
	NEXT("0 0 */2 * 5", "UTC", "2026-02-01T00:00:00Z", "2026-02-13T00:00:00Z",
	     "2026-02-27T00:00:00Z");
	NEXT("0 0 13 * *", "UTC", "2026-02-01T00:00:00Z", "2026-02-13T00:00:00Z",
	     "2026-03-13T00:00:00Z");
	NEXT("0 0 * * fri", "UTC", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z");
}
END_TEST

/* Europe/Paris: on 2026-03-29 02:00 CET becomes 03:00 CEST (01:00Z); on
 * 2026-10-25 03:00 CEST becomes 02:00 CET (01:00Z), repeating 02:00-02:59. */
START_TEST(paris_daylight_saving)
{
	/* skipped: 02:30 fires at the first instant after the gap, 03:00 CEST */
	NEXT("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z",
	     "2026-03-30T00:30:00Z");
	NEXT("0 30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z",
	     "2026-03-29T01:00:00Z");
	/* 02:00-02:59 all skipped: they fire once, at 03:00, then 03:00's own
	 * is that same instant */
	NEXT("0,30 2,3 * * *", "Europe/Paris", "2026-03-29T00:00:00Z",
	     "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:00:00Z");
	/* wildcard: skipped times do not fire */
	NEXT("*/30 * * * *", "Europe/Paris", "2026-03-29T00:15:00Z",
	     "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z");
	/* repeated: 02:30 fires once, at its first occurrence (CEST) */
	NEXT("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z",
	     "2026-10-26T01:30:00Z");
	/* ... also when asked from within the second pass */
	NEXT("30 2 * * *", "Europe/Paris", "2026-10-25T01:10:00Z",
	     "2026-10-26T01:30:00Z");
	/* wildcard: both passes of the repeated hour */
	NEXT("*/30 * * * *", "Europe/Paris", "2026-10-24T23:45:00Z",
	     "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z",
	     "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z");
	NEXT("*/30 * * * *", "Europe/Paris", "2026-10-25T00:45:00Z",
	     "2026-10-25T01:00:00Z");
	/* midnight is never moved */
	NEXT("@daily", "Europe/Paris", "2026-03-28T12:00:00Z", "2026-03-28T23:00:00Z",
	     "2026-03-29T22:00:00Z");
}
END_TEST

/* America/New_York: on 2026-03-08 02:00 EST becomes 03:00 EDT (07:00Z); on
 * 2026-11-01 02:00 EDT becomes 01:00 EST (06:00Z), repeating 01:00-01:59. */
START_TEST(new_york_daylight_saving)
{
	NEXT("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
	     "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z");
	NEXT("15 2 8 3 *", "America/New_York", "2026-01-01T00:00:00Z",
	     "2026-03-08T07:00:00Z", "2027-03-08T07:15:00Z");
	NEXT("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z",
	     "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z");
	/* hourly keeps its rhythm through the repeated hour */
	NEXT("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z",
	     "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z");
	NEXT("*/20 * * * *", "America/New_York", "2026-11-01T05:50:00Z",
	     "2026-11-01T06:00:00Z", "2026-11-01T06:20:00Z");
	NEXT("*/20 * * * *", "America/New_York", "2026-11-01T06:50:00Z",
	     "2026-11-01T07:00:00Z");
	NEXT("0 * * * *", "America/New_York", "2026-03-08T06:30:00Z",
	     "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z");
	NEXT("0 9 * * *", "America/New_York", "2026-03-07T15:00:00Z",
	     "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z");
}
END_TEST

START_TEST(last_tick)
{
	struct cron c = parsed("*/15 * * * *"), every = parsed("@every 1s"),
	            yearly = parsed("@yearly"), paris = parsed("30 2 * * *");

	ck_assert_str_eq(iso(cron_last(&c, "UTC", at("2026-05-01T10:00:00Z"),
	                               at("2026-05-01T10:52:00Z"))),
	                 "2026-05-01T10:45:00Z");
	ck_assert_str_eq(iso(cron_last(&c, "UTC", at("2026-05-01T10:00:00Z"),
	                               at("2026-05-01T10:00:00Z"))),
	                 "2026-05-01T10:00:00Z");
	ck_assert_str_eq(iso(cron_last(&c, "UTC", at("2026-05-01T10:00:00Z"),
	                               at("2026-09-01T10:07:00Z"))),
	                 "2026-09-01T10:00:00Z");
	ck_assert_int_eq(cron_last(&every, "UTC", 1000, 1005), 1005);
	ck_assert_int_eq(cron_last(&every, "UTC", 1000, 999), -1);
	ck_assert_str_eq(iso(cron_last(&yearly, "UTC", at("2026-01-01T00:00:00Z"),
	                               at("2031-06-01T00:00:00Z"))),
	                 "2031-01-01T00:00:00Z");
	ck_assert_int_eq(cron_last(&yearly, "UTC", at("2026-02-01T00:00:00Z"),
	                           at("2026-03-01T00:00:00Z")),
	                 -1);
	ck_assert_str_eq(iso(cron_last(&paris, "Europe/Paris", at("2026-03-27T01:30:00Z"),
	                               at("2026-03-29T12:00:00Z"))),
	                 "2026-03-29T01:00:00Z");
}
END_TEST

START_TEST(zone_is_put_back)
{
	struct cron c = parsed("0 0 * * *");

	setenv("TZ", "Asia/Tokyo", 1);
	cron_next(&c, "Europe/Paris", 0);
	ck_assert_str_eq(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
	cron_last(&c, "America/New_York", 0, 86400 * 3);
	ck_assert_ptr_null(getenv("TZ"));
}
END_TEST

UNIT_MAIN("cron", valid_expressions, invalid_expressions_say_why, zones, next_in_utc,
          either_day_field, paris_daylight_saving, new_york_daylight_saving, last_tick,
          zone_is_put_back)
