/*
 * RFC 3339 timestamps <-> int64 milliseconds since the Unix epoch (UTC).
 * The proleptic Gregorian calendar arithmetic is Howard Hinnant's
 * days_from_civil/civil_from_days; nothing here touches the C library's
 * time zone state, so it is pure and thread-safe.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agri/time.h"

#define MS_PER_DAY 86400000LL
/* 9999-12-31T23:59:59.999Z */
#define TIME_MS_MAX 253402300799999LL

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30,
					       31, 31, 30, 31, 30, 31};

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of y-m-d (y >= 1). */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = y / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = z / 146097; /* z >= 0 for the years we accept */
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Reads exactly n digits at s[*i] into *v. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *v)
{
	int x = 0;

	if (*i + (size_t)n > len)
		return false;
	for (int k = 0; k < n; k++) {
		char c = s[*i + (size_t)k];

		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*i += (size_t)n;
	*v = x;
	return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c)
{
	if (*i >= len || s[*i] != c)
		return false;
	(*i)++;
	return true;
}

int agri_time_parse_n(const char *s, size_t len, int64_t *ms)
{
	int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
	size_t i = 0;
	int64_t t;

	if (!s || !ms)
		return -EINVAL;
	if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-') ||
	    !digits(s, len, &i, 2, &mo) || !expect(s, len, &i, '-') ||
	    !digits(s, len, &i, 2, &d))
		return -EINVAL;
	if (i >= len || (s[i] != 'T' && s[i] != 't'))
		return -EINVAL;
	i++;
	if (!digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':') ||
	    !digits(s, len, &i, 2, &mi) || !expect(s, len, &i, ':') ||
	    !digits(s, len, &i, 2, &sec))
		return -EINVAL;
	if (i < len && s[i] == '.') {
		int n = 0;

		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
			if (n < 3)
				frac = frac * 10 + (s[i] - '0');
		if (n == 0)
			return -EINVAL;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i++] == '+' ? 1 : -1;
		if (!digits(s, len, &i, 2, &oh) || !expect(s, len, &i, ':') ||
		    !digits(s, len, &i, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 ||
	    d > month_days(y, mo) || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	/* A leap second (:60) folds into the next minute, as timegm() does. */
	t = days_from_civil(y, mo, d) * MS_PER_DAY +
	    ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac;
	t -= (int64_t)sign * ((int64_t)oh * 3600 + om * 60) * 1000;
	if (t < 0 || t > TIME_MS_MAX)
		return -EINVAL;
	*ms = t;
	return 0;
}

int agri_time_parse(const char *s, int64_t *ms)
{
	if (!s)
		return -EINVAL;
	return agri_time_parse_n(s, strlen(s), ms);
}

/* Returns 0, -EINVAL (out of range) or -ENOSPC (len <= AGRI_TIME_LEN). */
int agri_time_format(int64_t ms, char *buf, size_t len)
{
	int y, m, d;
	int64_t day, rem;

	if (ms < 0 || ms > TIME_MS_MAX)
		return -EINVAL;
	if (!buf || len < AGRI_TIME_LEN + 1)
		return -ENOSPC;
	day = ms / MS_PER_DAY;
	rem = ms % MS_PER_DAY;
	civil_from_days(day, &y, &m, &d);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
		 (int)(rem / 3600000), (int)(rem / 60000 % 60),
		 (int)(rem / 1000 % 60), (int)(rem % 1000));
	return 0;
}
