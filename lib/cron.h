/*
 * Schedules' time: cron expressions and when they fire, in a time zone of
 * the tz database. Shared by assay-api (which checks an expression and
 * shows a schedule's next run) and assay-executor (which fires schedules).
 *
 * An expression is five fields (minute hour day-of-month month
 * day-of-week), or six with a leading seconds field; each field a
 * comma-separated list of *, N, N-M, each with an optional /STEP (N/STEP
 * is N-max/STEP); months and days of the week also by name (jan-dec,
 * sun-sat; 0 and 7 are Sunday). When both day fields are restricted
 * (neither starts with *), a day matching either fires (Vixie cron's
 * rule). Macros: @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight), @hourly, and @every N{s,m,h}: an interval in absolute
 * time, from the previous tick, whatever the zone.
 *
 * Daylight saving follows cronie: an expression whose minute and hour
 * fields both name fixed values ("30 2 * * *") fires once per matching
 * wall-clock time, at the first instant after a spring-forward gap when
 * that time is skipped, and only at its first occurrence when a
 * fall-back repeats it; one whose minute or hour field starts with *
 * ("*\/15 * * * *", @hourly) fires at each wall-clock time that exists,
 * in both passes of a repeated hour, and not at all for skipped ones.
 *
 * Zones are found in the tz database's files (TZDIR, else
 * /usr/share/zoneinfo); computing in a zone sets TZ for the duration of
 * the call and puts the previous value back, so it must not run beside
 * another thread. Nothing here allocates beyond that, or does I/O beyond
 * reading zone files.
 */
#ifndef ASSAY_CRON_H
#define ASSAY_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CRON_EXPR_MAX  128           /* bytes of an expression */
#define CRON_ZONE_MAX  64            /* bytes of a zone's name */
#define CRON_EVERY_MAX (8784 * 3600) /* the longest @every: 366 days */

struct cron {
	uint64_t sec, min;       /* bit N: second, minute N */
	uint32_t hour;           /* bit N: hour N */
	uint32_t dom;            /* bit N: day N of the month, 1..31 */
	uint16_t mon;            /* bit N: month N, 1..12 */
	uint8_t dow;             /* bit N: day N of the week, 0 (Sunday)..6 */
	bool dom_star, dow_star; /* the field starts with *: no restriction of days */
	bool fixed;              /* minute and hour name fixed times (see above) */
	long every;              /* @every: seconds; 0 for a calendar expression */
};

/* Parse expr into c; false with err saying which field and what is wrong
 * ("the minute field: 61 is out of range 0-59"). An expression that
 * parses may still never fire (30 February): cron_next says so. */
bool cron_parse(const char *expr, struct cron *c, char *err, size_t errlen);
/* Is zone the name of a zone of the tz database ("Europe/Paris", "UTC")? */
bool cron_zone_ok(const char *zone);
/* The first instant strictly after after (seconds since the epoch) at
 * which c fires in zone, or -1 when it never does within ten years. For
 * @every, after is the previous tick (or the start), whatever the zone. */
time_t cron_next(const struct cron *c, const char *zone, time_t after);
/* The latest tick of c in zone in [from, until], where from is a tick (it
 * anchors @every), or -1 when there is none. */
time_t cron_last(const struct cron *c, const char *zone, time_t from, time_t until);

#endif
