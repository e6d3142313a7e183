/*
 * A probe that drifts against its neighbours (gateway/src/core/drift.c,
 * docs/gateway.md "Drift"): the daily levels' ratio flags a steady
 * fall of fall_pct and nothing else — not noise, not a one-day dip, not a
 * neighbour that drifts (the ratio rises), not fresh water below min_g_l,
 * not a drift too slow to reach fall_pct in the window; the onset is
 * placed where the fall began.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/drift.h"
#include "test.h"

#define DAYS 7
#define PCT 10.0
#define MIN_G_L 0.2

/* A deterministic "noise" in [-1, 1]. */
static double noise(unsigned k, unsigned seed)
{
	uint32_t h = (k + 1) * 2654435761u ^ (seed * 40503u);

	h ^= h >> 13;
	h *= 0x5bd1e995u;
	h ^= h >> 15;
	return (double)(h % 2001) / 1000.0 - 1.0;
}

/* Daily levels, newest first: a neighbour at nb_level, the station at
 * ratio times it, read low by pct_per_day from onset_day days ago on
 * (fouling), each with +-jitter relative noise. */
static void series(double *s, double *nb, double ratio, double nb_level, double pct_per_day,
		   double onset_day, double jitter, unsigned seed)
{
	for (unsigned k = 0; k < DAYS; k++) {
		double age = k + 0.5, f = 1;

		if (age < onset_day)
			f = 1 - pct_per_day / 100 * (onset_day - age);
		nb[k] = nb_level * (1 + jitter * noise(k, seed));
		s[k] = ratio * nb_level * f * (1 + jitter * noise(k, seed + 7));
	}
}

static void test_steady_fall(void)
{
	double s[DAYS], nb[DAYS];
	struct drift_fit f;

	/* 3 %/day for the whole window, 2 % day-to-day noise. */
	for (unsigned seed = 1; seed <= 20; seed++) {
		series(s, nb, 0.6, 5.0, 3, DAYS, 0.02, seed);
		CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
		CHECK(f.falls);
		CHECK(f.fall > 0.12 && f.fall < 0.24);
		CHECK_INT((int)f.n, DAYS);
	}
	/* Started 3.5 days ago at 5 %/day: onset estimated within a day. */
	series(s, nb, 0.6, 5.0, 5, 3.5, 0.01, 3);
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
	CHECK(f.falls);
	{
		double x = drift_onset_x(s, nb, DAYS, MIN_G_L, PCT, &f);

		CHECK(x <= 0 && x >= -(DAYS + 0.0));
		CHECK(fabs(-x - 3.5) <= 0.5);
		CHECK_NEAR(f.r_ref, log(0.6), 0.02);
	}
}

static void test_no_false_alarm(void)
{
	double s[DAYS], nb[DAYS];
	struct drift_fit f;

	/* Noise alone, 4 % day to day: never a steady fall. */
	for (unsigned seed = 1; seed <= 50; seed++) {
		series(s, nb, 0.6, 5.0, 0, 0, 0.04, seed);
		CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
		CHECK(!f.falls);
	}
	/* The neighbour fouls (reads low): the ratio rises. */
	series(nb, s, 1 / 0.6, 3.0, 3, DAYS, 0.01, 5);
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
	CHECK(!f.falls && f.fall < 0);
	/* One bad day (a freshet, a day's dip of 20 %) is not a drift. */
	series(s, nb, 0.6, 5.0, 0, 0, 0.01, 9);
	s[0] *= 0.8;
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
	CHECK(!f.falls);
	/* 1 %/day: the newest day 3.5 % below the older half, not flagged. */
	series(s, nb, 0.6, 5.0, 1, DAYS, 0.0, 1);
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), 0);
	CHECK(!f.falls && f.fall > 0.02 && f.fall < 0.06);
}

static void test_not_enough(void)
{
	double s[DAYS], nb[DAYS];
	struct drift_fit f;

	/* Fresh water: both below min_g_l, no verdict. */
	series(s, nb, 0.6, 0.15, 5, DAYS, 0.01, 2);
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), -ENODATA);
	/* Three days with data, or days missing at one end: no verdict. */
	series(s, nb, 0.6, 5.0, 5, DAYS, 0.01, 2);
	for (unsigned k = 3; k < DAYS; k++)
		s[k] = NAN;
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), -ENODATA);
	series(s, nb, 0.6, 5.0, 5, DAYS, 0.01, 2);
	nb[0] = nb[1] = nb[2] = nb[3] = NAN;
	CHECK_INT(drift_fit(s, nb, DAYS, MIN_G_L, PCT, &f), -ENODATA);
}

static void test_median(void)
{
	double a[] = {5, 1, 3}, b[] = {4, 1, 3, 2};

	CHECK_NEAR(drift_median(a, 3), 3, 1e-12);
	CHECK_NEAR(drift_median(b, 4), 2.5, 1e-12);
	CHECK(isnan(drift_median(a, 0)));
	{
		/* the middle half: a spike at either end changes nothing */
		double c[] = {1, 2, 3, 4, 5, 6, 7, 1000}, e[] = {-1000, 2, 3, 4, 5, 6, 7, 8};

		CHECK_NEAR(drift_iqm(c, 8), 4.5, 1e-12);
		CHECK_NEAR(drift_iqm(e, 8), 4.5, 1e-12);
		CHECK(isnan(drift_iqm(c, 0)));
	}
}

int main(void)
{
	test_steady_fall();
	test_no_false_alarm();
	test_not_enough();
	test_median();
	return test_main("test_gateway_drift");
}
