/*
 * Unit tests of agri/time.h: RFC 3339 parsing (leap years, offsets,
 * fractions, every rejected field) and formatting, and a round trip over
 * many instants from 1970 to 9999.
 */
#include <errno.h>
#include <stdint.h>

#include "agri/buf.h"
#include "agri/time.h"
#include "test.h"

static const struct {
	const char *s;
	int64_t ms; /* -1: rejected */
} parse_cases[] = {
	{"1970-01-01T00:00:00.000Z", 0},
	{"1970-01-01T00:00:00Z", 0},
	{"1970-01-01T00:00:00.001Z", 1},
	{"2026-11-22T15:04:05.123Z", 1795359845123LL},
	{"2026-11-22t15:04:05.123z", 1795359845123LL},
	{"2026-11-22T15:04:05.1Z", 1795359845100LL},
	{"2026-11-22T15:04:05.12Z", 1795359845120LL},
	{"2026-11-22T15:04:05.123999999Z", 1795359845123LL}, /* truncated */
	{"2026-11-22T22:04:05.123+07:00", 1795359845123LL},  /* Vietnam */
	{"2026-11-22T10:34:05.123-04:30", 1795359845123LL},
	{"2026-11-22T15:04:05.123+00:00", 1795359845123LL},
	{"2026-11-22T15:04:05.123-00:00", 1795359845123LL},
	{"2028-02-29T00:00:00.000Z", 1835395200000LL}, /* leap year */
	{"2000-02-29T12:00:00Z", 951825600000LL},      /* 400-year rule */
	{"2024-12-31T23:59:59.999Z", 1735689599999LL},
	{"2026-06-30T23:59:60Z", 1782864000000LL},     /* leap second folds */
	{"9999-12-31T23:59:59.999Z", 253402300799999LL},
	{"1970-01-01T01:00:00+01:00", 0},
	/* rejected */
	{"2027-02-29T00:00:00.000Z", -1},
	{"1900-02-29T00:00:00Z", -1},
	{"2100-02-29T00:00:00Z", -1},
	{"2026-02-30T00:00:00Z", -1},
	{"2026-04-31T00:00:00Z", -1},
	{"2026-13-01T00:00:00Z", -1},
	{"2026-00-01T00:00:00Z", -1},
	{"2026-01-00T00:00:00Z", -1},
	{"2026-01-01T24:00:00Z", -1},
	{"2026-01-01T23:60:00Z", -1},
	{"2026-01-01T23:59:61Z", -1},
	{"1969-12-31T23:59:59.999Z", -1},
	{"1970-01-01T00:30:00+01:00", -1}, /* before the epoch in UTC */
	{"9999-12-31T23:59:59-01:00", -1}, /* after 9999 in UTC */
	{"10000-01-01T00:00:00Z", -1},
	{"2026-11-22T15:04:05.123", -1},   /* no zone */
	{"2026-11-22T15:04:05.Z", -1},     /* empty fraction */
	{"2026-11-22T15:04:05.123ZZ", -1}, /* trailing garbage */
	{"2026-11-22T15:04:05.123Z ", -1},
	{" 2026-11-22T15:04:05.123Z", -1},
	{"2026-11-22 15:04:05.123Z", -1},
	{"2026-11-22T15:04:05+0700", -1},
	{"2026-11-22T15:04:05+24:00", -1},
	{"2026-11-22T15:04:05+07:60", -1},
	{"2026-11-22T15:04Z", -1},
	{"2026-1-22T15:04:05Z", -1},
	{"2026-11-22", -1},
	{"", -1},
	{"+026-11-22T15:04:05Z", -1},
	{"2026-11-22T15:04:05,123Z", -1},
};

static void test_parse(void)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(parse_cases); i++) {
		int64_t ms = 42;
		int ret = agri_time_parse(parse_cases[i].s, &ms);

		if (parse_cases[i].ms < 0) {
			CHECK_INT(ret, -EINVAL);
			CHECK_INT(ms, 42); /* untouched */
		} else {
			CHECK_INT(ret, 0);
			CHECK_INT(ms, parse_cases[i].ms);
		}
		if ((ret == 0) != (parse_cases[i].ms >= 0))
			fprintf(stderr, "  case \"%s\"\n", parse_cases[i].s);
	}
}

static void test_parse_n(void)
{
	const char *s = "2026-11-22T15:04:05.123Zgarbage";
	int64_t ms = 0;

	CHECK_INT(agri_time_parse_n(s, AGRI_TIME_LEN, &ms), 0);
	CHECK_INT(ms, 1795359845123LL);
	CHECK_INT(agri_time_parse_n(s, AGRI_TIME_LEN - 1, &ms), -EINVAL);
	CHECK_INT(agri_time_parse_n(s, AGRI_TIME_LEN + 1, &ms), -EINVAL);
	CHECK_INT(agri_time_parse(NULL, &ms), -EINVAL);
}

static void test_format(void)
{
	static const struct {
		int64_t ms;
		const char *s;
	} cases[] = {
		{0, "1970-01-01T00:00:00.000Z"},
		{1795359845123LL, "2026-11-22T15:04:05.123Z"},
		{1835395200000LL, "2028-02-29T00:00:00.000Z"},
		{1835481599999LL, "2028-02-29T23:59:59.999Z"},
		{1835481600000LL, "2028-03-01T00:00:00.000Z"},
		{253402300799999LL, "9999-12-31T23:59:59.999Z"},
	};
	char buf[AGRI_TIME_LEN + 1];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		CHECK_INT(agri_time_format(cases[i].ms, buf, sizeof(buf)), 0);
		CHECK_STR(buf, cases[i].s);
	}
	CHECK_INT(agri_time_format(-1, buf, sizeof(buf)), -EINVAL);
	CHECK_INT(agri_time_format(253402300800000LL, buf, sizeof(buf)), -EINVAL);
	CHECK_INT(agri_time_format(0, buf, AGRI_TIME_LEN), -ENOSPC);
}

/* Every instant formats to 24 chars and parses back to itself; dates
 * step by a prime number of ms so every month, day and hour is hit. */
static void test_round_trip(void)
{
	const int64_t max = 253402300799999LL, step = 9999999967LL;
	char buf[AGRI_TIME_LEN + 1];
	int64_t back;
	int bad = 0, n = 0;

	for (int64_t ms = 0; ms <= max; ms += step, n++) {
		if (agri_time_format(ms, buf, sizeof(buf)) ||
		    strlen(buf) != AGRI_TIME_LEN ||
		    agri_time_parse(buf, &back) || back != ms)
			bad++;
	}
	CHECK(n > 25000);
	CHECK_INT(bad, 0);
	/* Every day of 2027..2028 (a common and a leap year). */
	bad = 0;
	for (int64_t ms = 1798761600000LL; ms < 1861920000000LL; ms += 86400000LL + 1) {
		if (agri_time_format(ms, buf, sizeof(buf)) ||
		    agri_time_parse(buf, &back) || back != ms)
			bad++;
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	test_parse();
	test_parse_n();
	test_format();
	test_round_trip();
	return test_main("test_proto_time");
}
