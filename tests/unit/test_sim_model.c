/*
 * agri-sim models: the salinity-intrusion acceptance (18 km from the mouth
 * in early April crosses 4 g/L daily), PSS-78 consistency of the simulated
 * conductivity, determinism, brood pulses peaking on their third night,
 * zero catches while the lamp is off, and the solar ranges.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "agri/units.h"
#include "model.h"
#include "test.h"

#define HOUR 3600000LL
#define DAY (24 * HOUR)
/* 2025-04-01T00:00+07:00 */
#define APR1_LOCAL (1743465600000LL - 7 * HOUR)

static void test_salinity_crossing(void)
{
	struct model_params p;

	model_params_default(&p);
	p.distance_km = 18;
	for (int day = 0; day < 10; day++) {
		double lo = 1e9, hi = -1e9;
		for (int64_t t = APR1_LOCAL + day * DAY; t < APR1_LOCAL + (day + 1) * DAY;
		     t += 600000) {
			double s = model_salinity(&p, t);
			lo = fmin(lo, s);
			hi = fmax(hi, s);
		}
		CHECK(hi > 4.0);
		CHECK(lo < 4.0);
	}
	/* Wet season at 18 km: fresh. */
	double s = model_salinity(&p, APR1_LOCAL + 150 * DAY);
	CHECK(s < 0.5);
	/* Further inland is less saline. */
	CHECK(model_envelope(30, 95) < model_envelope(18, 95));
	CHECK_NEAR(model_envelope(18, 95), 12.3, 1e-9);
	CHECK_NEAR(model_envelope(0, 36), 10.7, 1e-9);
}

static void test_salinity_lags_level(void)
{
	struct model_params p;
	int64_t t_level = 0, t_sal = 0;
	double best_level = -1e9, best_sal = -1e9;

	model_params_default(&p);
	p.noise = false;
	/* Over one semidiurnal cycle around the first high water of Apr 3. */
	int64_t t0 = APR1_LOCAL + 2 * DAY;
	for (int64_t t = t0; t < t0 + 13 * HOUR; t += 60000) {
		double l = model_tide(&p, t);
		if (l > best_level) {
			best_level = l;
			t_level = t;
		}
	}
	for (int64_t t = t_level - 4 * HOUR; t < t_level + 4 * HOUR; t += 60000) {
		double s = model_salinity(&p, t);
		if (s > best_sal) {
			best_sal = s;
			t_sal = t;
		}
	}
	CHECK(t_sal - t_level >= 30 * 60000);
	CHECK(t_sal - t_level <= 90 * 60000);
}

static void test_pss78_consistent(void)
{
	struct model_params p;

	model_params_default(&p);
	for (int64_t t = APR1_LOCAL; t < APR1_LOCAL + DAY; t += 3 * HOUR) {
		double c, temp, s = model_salinity(&p, t);
		CHECK(model_value(&p, "conductivity", "mS/cm", t, &c) == 0);
		CHECK(model_value(&p, "water_temperature", "°C", t, &temp) == 0);
		CHECK_NEAR(agri_sp_from_c(c, temp, 0), s, 1e-6);
		double us;
		CHECK(model_value(&p, "conductivity", "µS/cm", t, &us) == 0);
		CHECK_NEAR(us, c * 1000, 1e-6);
	}
}

static void test_freshwater(void)
{
	struct model_params p;
	double tmin = 1e9, tmax = -1e9;

	model_params_default(&p);
	p.water = MODEL_WATER_FRESH;
	for (int64_t t = APR1_LOCAL; t < APR1_LOCAL + 30 * DAY; t += 1800000) {
		double s = model_salinity(&p, t), temp = model_water_temperature(&p, t);
		CHECK(s >= 0.05 && s <= 0.3);
		tmin = fmin(tmin, temp);
		tmax = fmax(tmax, temp);
	}
	CHECK(tmax - tmin > 2.5); /* daily cycle */
}

static void test_determinism(void)
{
	struct model_params a, b;
	int same = 1, differ = 0;

	model_params_default(&a);
	model_params_default(&b);
	a.seed = b.seed = 42;
	for (int64_t t = APR1_LOCAL; t < APR1_LOCAL + 2 * DAY; t += 777777) {
		same &= model_salinity(&a, t) == model_salinity(&b, t);
		same &= model_bph_night(&a, model_night(t), NULL) ==
			model_bph_night(&b, model_night(t), NULL);
	}
	CHECK(same);
	b.seed = 43;
	for (int64_t t = APR1_LOCAL; t < APR1_LOCAL + DAY; t += 3600000)
		differ |= model_salinity(&a, t) != model_salinity(&b, t);
	CHECK(differ);
	/* Counts over consecutive intervals add up to the whole night. */
	int64_t n0 = APR1_LOCAL + 18 * HOUR;
	uint32_t whole = model_count(&a, 1.0, n0, n0 + 12 * HOUR), parts = 0;
	for (int64_t t = n0; t < n0 + 12 * HOUR; t += 7 * 60000)
		parts += model_count(&a, 1.0, t, t + 7 * 60000 > n0 + 12 * HOUR ?
						     n0 + 12 * HOUR : t + 7 * 60000);
	CHECK_INT(parts, whole);
	CHECK_INT(whole, (uint32_t)round(model_bph_night(&a, model_night(n0 + HOUR), NULL)));
}

static void test_brood_peaks(void)
{
	struct model_params p;
	int pulses = 0, on_third = 0;

	model_params_default(&p);
	p.rain_prob = 0;
	for (int seed = 1; seed <= 5; seed++) {
		p.seed = (uint64_t)seed;
		int64_t first = model_night(APR1_LOCAL);
		for (int64_t n = first; n < first + 300; n++) {
			int k;
			model_bph_night(&p, n, &k);
			if (k != 1)
				continue;
			double best = -1;
			int best_k = 0, len = 0;
			for (int j = 0; j < 6; j++) {
				int kk;
				double v = model_bph_night(&p, n + j, &kk);
				if (kk != j + 1)
					break;
				len++;
				if (v > best) {
					best = v;
					best_k = kk;
				}
			}
			CHECK(len == 5 || len == 6);
			pulses++;
			on_third += best_k == 3;
		}
	}
	CHECK(pulses >= 50);
	CHECK_INT(on_third, pulses);
	/* Pulses recur about monthly. */
	p.seed = 1;
	int64_t starts[4], ns = 0;
	for (int64_t n = model_night(APR1_LOCAL); ns < 4; n++) {
		int k;
		model_bph_night(&p, n, &k);
		if (k == 1)
			starts[ns++] = n;
	}
	CHECK(starts[1] - starts[0] >= 24 && starts[1] - starts[0] <= 31);
	/* A rainy night suppresses the catch. */
	p.rain_prob = 1;
	double wet = model_bph_night(&p, 20000, NULL);
	p.rain_prob = 0;
	CHECK(wet < 0.2 * model_bph_night(&p, 20000, NULL));
}

static void test_lamp(void)
{
	struct model_params p;

	model_params_default(&p);
	p.brood_peak = 5000;
	for (int d = 0; d < 60; d++) {
		int64_t day0 = APR1_LOCAL + d * DAY;
		/* 06:00 to 18:00 local: lamp off, nothing caught. */
		CHECK_INT(model_count(&p, 1.0, day0 + 6 * HOUR, day0 + 18 * HOUR), 0);
		CHECK(!model_lamp_on(day0 + 12 * HOUR));
		CHECK(model_lamp_on(day0 + 20 * HOUR));
		CHECK(model_lamp_on(day0 + 5 * HOUR));
		CHECK(!model_lamp_on(day0 + 6 * HOUR));
		CHECK(model_lamp_on(day0 + 18 * HOUR));
	}
	double v;
	CHECK(model_value(&p, "lamp_on", "0/1", APR1_LOCAL + 12 * HOUR, &v) == 0);
	CHECK_NEAR(v, 0, 0);
	CHECK(model_value(&p, "lamp_on", "0/1", APR1_LOCAL + 22 * HOUR, &v) == 0);
	CHECK_NEAR(v, 1, 0);
}

static void test_solar(void)
{
	struct model_params p;
	double v;

	model_params_default(&p);
	for (int64_t t = APR1_LOCAL; t < APR1_LOCAL + 3 * DAY; t += 900000) {
		CHECK(model_value(&p, "battery_voltage", "V", t, &v) == 0);
		CHECK(v >= 12.2 && v <= 14.4);
		CHECK(model_value(&p, "pv_voltage", "V", t, &v) == 0);
		if (!model_lamp_on(t - 0)) {
			/* daytime: nothing to check beyond range */
			CHECK(v >= 0 && v < 25);
		}
	}
	CHECK(model_value(&p, "pv_power", "W", APR1_LOCAL + 23 * HOUR, &v) == 0);
	CHECK_NEAR(v, 0, 1e-12);
	CHECK(model_value(&p, "pv_power", "W", APR1_LOCAL + 12 * HOUR, &v) == 0);
	CHECK(v > 20);
	CHECK(model_value(&p, "no_such_metric", "", APR1_LOCAL, &v) == -ENOENT);
}

static void test_params(void)
{
	struct model_params p;

	model_params_default(&p);
	CHECK_INT(model_params_set(&p, "distance_km", "30"), 0);
	CHECK_NEAR(p.distance_km, 30, 0);
	CHECK_INT(model_params_set(&p, "phase_d", "4.5"), 0);
	CHECK_NEAR(p.brood_phase_d, 4.5, 0);
	CHECK_INT(model_params_set(&p, "scenario", "freshwater"), 0);
	CHECK_INT(p.water, MODEL_WATER_FRESH);
	CHECK_INT(model_params_set(&p, "scenario", "solar"), -EINVAL);
	CHECK_INT(model_params_set(&p, "distance_km", "x"), -EINVAL);
	CHECK_INT(model_params_set(&p, "rain", "2"), -EINVAL);
	CHECK_INT(model_params_set(&p, "bogus", "1"), -ENOENT);
}

/* Fixed water for bench tests (issue 19), and the level a pressure
 * sensor at the bottom sees with the tide. */
static void test_fixed_and_level(void)
{
	struct model_params p;
	int64_t t = 1743552000000LL;
	double v, lv, pr;

	model_params_default(&p);
	CHECK(isnan(p.fixed_salinity) && isnan(p.fixed_temp) && isnan(p.fixed_ec) &&
	      isnan(p.coef_pct));
	CHECK_INT(model_params_set(&p, "salinity", "4"), 0);
	CHECK_INT(model_params_set(&p, "temperature", "31"), 0);
	CHECK_NEAR(model_salinity(&p, t), 4, 0);
	CHECK_NEAR(model_salinity(&p, t + 3600000 * 7), 4, 0);
	CHECK_NEAR(model_water_temperature(&p, t), 31, 0);
	CHECK_INT(model_value(&p, "conductivity", "mS/cm", t, &v), 0);
	CHECK_NEAR(v, agri_c_from_sp(4, 31, 0), 1e-12);
	/* in-situ conductivity given: it wins, salinity follows from it */
	CHECK_INT(model_params_set(&p, "conductivity", "8.1741"), 0);
	CHECK_INT(model_value(&p, "conductivity", "mS/cm", t, &v), 0);
	CHECK_NEAR(v, 8.1741, 0);
	CHECK_NEAR(model_salinity(&p, t), agri_sp_from_c(8.1741, 31, 0), 1e-12);
	CHECK_INT(model_params_set(&p, "coef_pct", "1.9"), 0);
	CHECK_NEAR(p.coef_pct, 1.9, 0);
	CHECK_INT(model_params_set(&p, "coef_pct", "11"), -EINVAL);
	CHECK_INT(model_params_set(&p, "temperature", "50"), -EINVAL);

	/* Pressure of the column: level x (rho(T) + 0.75 S) g. */
	model_params_default(&p);
	p.water = MODEL_WATER_FRESH;
	CHECK_INT(model_value(&p, "water_level", "m", t, &lv), 0);
	CHECK_INT(model_value(&p, "pressure", "bar", t, &pr), 0);
	CHECK_NEAR(pr * 1e5 / ((agri_water_density(model_water_temperature(&p, t)) +
				0.75 * model_salinity(&p, t)) * AGRI_G), lv, 1e-9);
	CHECK(lv > 2 && lv < 4);
}

int main(void)
{
	test_salinity_crossing();
	test_salinity_lags_level();
	test_pss78_consistent();
	test_freshwater();
	test_determinism();
	test_brood_peaks();
	test_lamp();
	test_solar();
	test_params();
	test_fixed_and_level();
	return test_main("test_sim_model");
}
