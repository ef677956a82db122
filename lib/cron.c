/*
 * Cron expressions: parsed into bit sets per field, and their next firing
 * instant in a zone (see cron.h for the rules). The search runs on
 * wall-clock times (a struct tm read as UTC, so plain calendar
 * arithmetic), and each matching wall-clock time is then placed in the
 * zone: once, twice (a fall-back repeats it) or not at all (a
 * spring-forward skips it), from the zone's UTC offsets a day either side
 * (no zone changes its offset twice within two days). Never allocates.
 */
#include "config.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cron.h"

#define DAY         86400
#define HORIZON     (10 * 366 * (time_t)DAY) /* cron_next looks this far */
#define NEAR_CHANGE (3 * 3600)               /* a fall-back repeats at most this much */
#define FIELD_ITEMS 64

enum field { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F__MAX };

static const struct field_def {
	const char *name;
	int lo, hi;
	const char *const *names; /* names[i] is lo + i, or NULL */
} fields[F__MAX] = {
    [F_SEC] = {"second", 0, 59, NULL},
    [F_MIN] = {"minute", 0, 59, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL},
    [F_DOM] = {"day-of-month", 1, 31, NULL},
    [F_MON] = {"month", 1, 12,
               (const char *const[]){"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                     "aug", "sep", "oct", "nov", "dec", NULL}},
    [F_DOW] = {"day-of-week", 0, 7,
               (const char *const[]){"sun", "mon", "tue", "wed", "thu", "fri", "sat",
                                     NULL}},
};

static const struct {
	const char *name, *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* One value of field f at *p (a number, or a name where the field has
 * them), advancing *p; false with err. */
static bool
field_value(enum field f, const char **p, int *v, char *err, size_t errlen)
{
	const struct field_def *d = &fields[f];
	const char *s = *p;
	size_t len = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
	long n;
	int i;

	if (len > 0) {
		for (i = 0; d->names != NULL && d->names[i] != NULL; i++)
			if (len == 3 && strncasecmp(s, d->names[i], 3) == 0) {
				*v = d->lo + i;
				*p = s + 3;
				return true;
			}
		snprintf(err, errlen, "the %s field: '%.*s' is not a %s", d->name,
		         (int)(len > 20 ? 20 : len), s,
		         d->names == NULL ? "number"
		         : f == F_MON     ? "month (1-12 or jan-dec)"
		                          : "day of the week (0-7 or sun-sat)");
		return false;
	}
	len = strspn(s, "0123456789");
	if (len == 0 || len > 4) {
		snprintf(err, errlen, "the %s field: expected a number at '%.20s'",
		         d->name, s);
		return false;
	}
	n = strtol(s, NULL, 10);
	if (n < d->lo || n > d->hi) {
		snprintf(err, errlen, "the %s field: %ld is out of range %d-%d", d->name,
		         n, d->lo, d->hi);
		return false;
	}
	*v = (int)n;
	*p = s + len;
	return true;
}

/* One item of a list: *, N or N-M, then /STEP; its values set in *bits. */
static bool
field_item(enum field f, const char *s, uint64_t *bits, char *err, size_t errlen)
{
	const struct field_def *d = &fields[f];
	int lo = d->lo, hi = d->hi, step = 1, v;
	bool range = true;
	long n;
	size_t len;

	if (*s == '*') {
		s++;
	} else {
		if (!field_value(f, &s, &lo, err, errlen))
			return false;
		hi = lo;
		range = false;
		if (*s == '-') {
			s++;
			if (!field_value(f, &s, &hi, err, errlen))
				return false;
			if (hi < lo) {
				snprintf(err, errlen,
				         "the %s field: the range %d-%d goes backwards",
				         d->name, lo, hi);
				return false;
			}
			range = true;
		}
	}
	if (*s == '/') {
		s++;
		len = strspn(s, "0123456789");
		n = len > 0 && len < 5 ? strtol(s, NULL, 10) : 0;
		if (n < 1 || n > d->hi - d->lo + 1 || s[len] != '\0') {
			snprintf(
			    err, errlen,
			    "the %s field: the step '%.10s' must be a number from 1 to "
			    "%d",
			    d->name, s, d->hi - d->lo + 1);
			return false;
		}
		step = (int)n;
		if (!range) /* N/STEP: from N to the end */
			hi = d->hi;
		s += len;
	}
	if (*s != '\0') {
		snprintf(err, errlen, "the %s field: unexpected '%.10s'", d->name, s);
		return false;
	}
	for (v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << (f == F_DOW && v == 7 ? 0 : v);
	return true;
}

/* A whole field (len bytes at s): comma-separated items. */
static bool
field_parse(enum field f, const char *s, size_t len, uint64_t *bits, char *err,
            size_t errlen)
{
	char buf[CRON_EXPR_MAX + 1], *item, *save = NULL;
	int n = 0;

	snprintf(buf, sizeof buf, "%.*s", (int)len, s);
	*bits = 0;
	if (buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,") != NULL) {
		snprintf(err, errlen, "the %s field: an empty item in '%s'",
		         fields[f].name, buf);
		return false;
	}
	for (item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		if (++n > FIELD_ITEMS) {
			snprintf(err, errlen, "the %s field: more than %d items",
			         fields[f].name, FIELD_ITEMS);
			return false;
		}
		if (!field_item(f, item, bits, err, errlen))
			return false;
	}
	return true;
}

/* "@every 90s", "@every 5m", "@every 2h". */
static bool
every_parse(const char *s, struct cron *c, char *err, size_t errlen)
{
	size_t len = strspn(s, "0123456789");
	long n = len > 0 && len < 8 ? strtol(s, NULL, 10) : 0;
	long unit = s[len] == 's' ? 1 : s[len] == 'm' ? 60 : s[len] == 'h' ? 3600 : 0;

	if (n < 1 || unit == 0 || s[len + 1] != '\0' || n * unit > CRON_EVERY_MAX) {
		snprintf(err, errlen,
		         "@every takes an interval such as 30s, 5m or 2h, from 1s to "
		         "%dh",
		         CRON_EVERY_MAX / 3600);
		return false;
	}
	c->every = n * unit;
	return true;
}

bool
cron_parse(const char *expr, struct cron *c, char *err, size_t errlen)
{
	const char *p[F__MAX], *s = expr;
	size_t len[F__MAX], n = 0, i, first;
	uint64_t bits[F__MAX];

	memset(c, 0, sizeof *c);
	if (strlen(expr) > CRON_EXPR_MAX) {
		snprintf(err, errlen, "must be at most %d bytes", CRON_EXPR_MAX);
		return false;
	}
	s += strspn(s, " \t");
	if (strncmp(s, "@every", 6) == 0 && (s[6] == ' ' || s[6] == '\t'))
		return every_parse(s + 6 + strspn(s + 6, " \t"), c, err, errlen);
	if (*s == '@') {
		for (i = 0; i < sizeof macros / sizeof macros[0]; i++)
			if (strcmp(s, macros[i].name) == 0)
				return cron_parse(macros[i].expr, c, err, errlen);
		snprintf(err, errlen,
		         "'%.20s' is not one of @yearly, @annually, @monthly, @weekly, "
		         "@daily, @midnight, @hourly, @every",
		         s);
		return false;
	}
	while (*s != '\0') {
		if (n == F__MAX) {
			n++;
			break;
		}
		p[n] = s;
		len[n] = strcspn(s, " \t");
		s += len[n];
		s += strspn(s, " \t");
		n++;
	}
	if (n != 5 && n != 6) {
		snprintf(err, errlen,
		         "expected 5 fields (minute hour day-of-month month "
		         "day-of-week), or 6 with seconds first, not %s%zu",
		         n > F__MAX ? "more than " : "", n > F__MAX ? (size_t)F__MAX : n);
		return false;
	}
	first = n == 6 ? F_SEC : F_MIN;
	bits[F_SEC] = 1; /* five fields: at second 0 */
	for (i = first; i < F__MAX; i++)
		if (!field_parse((enum field)i, p[i - first], len[i - first], &bits[i],
		                 err, errlen))
			return false;
	c->sec = bits[F_SEC];
	c->min = bits[F_MIN];
	c->hour = (uint32_t)bits[F_HOUR];
	c->dom = (uint32_t)bits[F_DOM];
	c->mon = (uint16_t)bits[F_MON];
	c->dow = (uint8_t)bits[F_DOW];
	c->dom_star = p[F_DOM - first][0] == '*';
	c->dow_star = p[F_DOW - first][0] == '*';
	c->fixed = p[F_MIN - first][0] != '*' && p[F_HOUR - first][0] != '*';
	return true;
}

bool
cron_zone_ok(const char *zone)
{
	const char *dir = getenv("TZDIR");
	char path[512], magic[4];
	size_t len = strlen(zone);
	struct stat st;
	bool ok;
	int fd;

	if (len == 0 || len > CRON_ZONE_MAX || zone[0] == '/' || zone[0] == '.' ||
	    strstr(zone, "..") != NULL || strstr(zone, "/.") != NULL ||
	    strspn(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	                 "/_+-") != len)
		return false;
	snprintf(path, sizeof path, "%s/%s", dir != NULL ? dir : "/usr/share/zoneinfo",
	         zone);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	     read(fd, magic, sizeof magic) == sizeof magic &&
	     memcmp(magic, "TZif", 4) == 0;
	close(fd);
	return ok;
}

/* TZ is zone while computing; the previous value is put back after. */
static char saved_tz[CRON_ZONE_MAX + 2];
static bool had_tz;

static void
zone_enter(const char *zone)
{
	const char *old = getenv("TZ");

	had_tz = old != NULL && strlen(old) < sizeof saved_tz;
	if (had_tz)
		strcpy(saved_tz, old);
	setenv("TZ", zone, 1);
	tzset();
}

static void
zone_leave(void)
{
	if (had_tz)
		setenv("TZ", saved_tz, 1);
	else
		unsetenv("TZ");
	tzset();
}

/* The zone's UTC offset at instant t, in seconds. */
static long
offset_at(time_t t)
{
	struct tm tm;

	return localtime_r(&t, &tm) != NULL ? tm.tm_gmtoff : 0;
}

/* The lowest bit of mask at or above from (below 64), or -1. */
static int
next_bit(uint64_t mask, int from)
{
	mask = from >= 64 ? 0 : mask >> from << from;
	return mask == 0 ? -1 : __builtin_ctzll(mask);
}

static bool
day_matches(const struct cron *c, const struct tm *tm)
{
	bool dom = c->dom >> tm->tm_mday & 1, dow = c->dow >> tm->tm_wday & 1;

	if (c->dom_star || c->dow_star)
		return dom && dow; /* a star matches every day */
	return dom || dow;
}

/* The first wall-clock time (seconds, as if UTC) at or after w that c
 * matches, or -1 past limit. */
static time_t
wall_next(const struct cron *c, time_t w, time_t limit)
{
	struct tm tm;
	int v;

	while (w <= limit) {
		gmtime_r(&w, &tm);
		if (!(c->mon >> (tm.tm_mon + 1) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!day_matches(c, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if ((v = next_bit(c->hour, tm.tm_hour)) != tm.tm_hour) {
			tm.tm_hour = v < 0 ? 24 : v;
			tm.tm_min = tm.tm_sec = 0;
		} else if ((v = next_bit(c->min, tm.tm_min)) != tm.tm_min) {
			tm.tm_min = v < 0 ? 60 : v;
			tm.tm_sec = 0;
		} else if ((v = next_bit(c->sec, tm.tm_sec)) != tm.tm_sec) {
			tm.tm_sec = v < 0 ? 60 : v;
		} else {
			return w;
		}
		w = timegm(&tm);
	}
	return -1;
}

/* The first instant at which the offset is to (it is from before), in
 * (lo, hi]. */
static time_t
change_at(time_t lo, time_t hi, long to)
{
	time_t mid;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (offset_at(mid) == to)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* The first instant after t at which c fires for the wall-clock time w, or
 * -1 (see cron.h for the rules). */
static time_t
place(const struct cron *c, time_t w, time_t t)
{
	long before = offset_at(w - DAY), after = offset_at(w + DAY);
	time_t first = w - before, second = w - after;
	bool ok1 = first + offset_at(first) == w, ok2 = second + offset_at(second) == w;

	if (before == after || (ok1 != ok2))
		return ok1 ? (first > t ? first : -1) : (second > t ? second : -1);
	if (ok1 && ok2) /* repeated: first < second */
		return first > t ? first : !c->fixed && second > t ? second : -1;
	if (!c->fixed) /* skipped */
		return -1;
	first = change_at(second, first, after); /* the first instant after the gap */
	return first > t ? first : -1;
}

/* cron_next of a calendar expression, in the current zone. */
static time_t
next_in_zone(const struct cron *c, time_t after)
{
	time_t t = after + 1, w = t + offset_at(t), limit = w + HORIZON, found = -1, tr,
	       cand;
	long now_off = offset_at(t), later_off = offset_at(t + NEAR_CHANGE);

	while ((w = wall_next(c, w, limit)) >= 0) {
		if ((found = place(c, w, after)) >= 0)
			break;
		w++;
	}
	/* A fall-back ahead repeats wall-clock times before ours: a wildcard
	 * expression may fire again in its second pass, before what we found. */
	if (!c->fixed && later_off < now_off) {
		tr = change_at(t - 1, t + NEAR_CHANGE, later_off);
		w = wall_next(c, tr + later_off, tr + now_off - 1);
		cand = w >= 0 ? w - later_off : -1;
		if (cand > after && (found < 0 || cand < found))
			found = cand;
	}
	return found;
}

time_t
cron_next(const struct cron *c, const char *zone, time_t after)
{
	time_t t;

	if (c->every > 0)
		return after + c->every;
	zone_enter(zone);
	t = next_in_zone(c, after);
	zone_leave();
	return t;
}

time_t
cron_last(const struct cron *c, const char *zone, time_t from, time_t until)
{
	time_t d, s, t = -1, u;

	if (until < from)
		return -1;
	if (c->every > 0)
		return from + (until - from) / c->every * c->every;
	zone_enter(zone);
	/* Look back from until over growing spans, then step forward. */
	for (d = 60;; d *= 8) {
		s = until - d < from - 1 ? from - 1 : until - d;
		t = next_in_zone(c, s);
		if (t >= 0 && t <= until)
			break;
		t = -1;
		if (s == from - 1)
			break;
	}
	while (t >= 0 && (u = next_in_zone(c, t)) >= 0 && u <= until)
		t = u;
	zone_leave();
	return t;
}
