/*
 * Sluices and tides (gateway/src/forecast/sluice.c, docs/forecast.md):
 * a water level below its datum is forecast as it is (not clipped at 0);
 * the tide stage is named from the level forecast; a sluice's windows
 * hold both conditions at every point (salinity's upper band below the
 * sluice's limit, the level's lower band above its minimum), never more
 * than the salinity-only window, and are sorted with the ladder's; the
 * JSON document carries them.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agri/time.h"
#include "forecast/model.h"
#include "test.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define M2_DEG_H 28.9841042
#define K1_DEG_H 15.0410686

static int64_t t_ref;

static int64_t T(const char *s)
{
	int64_t ms = 0;

	if (agri_time_parse(s, &ms))
		abort();
	return ms;
}

static double hours(int64_t ts)
{
	return (double)(ts - t_ref) / (double)HOUR_MS;
}

/* A Delta tide on a datum near mean water: mostly below 0 at low water. */
static double level_at(int64_t ts)
{
	double h = hours(ts), d2r = M_PI / 180.0;

	return -0.3 + 1.4 * cos(M2_DEG_H * d2r * h) + 0.5 * cos(K1_DEG_H * d2r * h + 0.4);
}

/* Salinity lagging the level by about 3 h (the salt comes with the flood
 * and peaks after high water): fresh water and a rising level overlap. */
static double salinity_at(int64_t ts)
{
	double h = hours(ts), d2r = M_PI / 180.0;

	return exp(-0.2 + 0.9 * cos(M2_DEG_H * d2r * h - 1.6) +
		   0.3 * cos(K1_DEG_H * d2r * h + 0.4)) - 0.05;
}

static size_t series(struct forecast_sample *s, double (*fn)(int64_t), double days)
{
	size_t n = 0;

	for (int64_t t = t_ref; t <= t_ref + (int64_t)(days * DAY_MS); t += 15 * MIN_MS)
		s[n++] = (struct forecast_sample){t, fn(t)};
	return n;
}

static struct forecast_sample samples[4000];
static struct forecast sal, lvl, plain;

static void fit_both(struct forecast_params *sp, struct forecast_params *lp)
{
	char why[FORECAST_WHY_MAX] = "";
	size_t n;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(sp);
	forecast_params_level(lp);
	n = series(samples, salinity_at, 20);
	CHECK_INT(forecast_fit(samples, n, sp, &sal, why, sizeof(why)), 0);
	n = series(samples, level_at, 20);
	CHECK_INT(forecast_fit(samples, n, lp, &lvl, why, sizeof(why)), 0);
	if (why[0])
		fprintf(stderr, "fit: %s\n", why);
}

static void test_level_signed(void)
{
	struct forecast_params sp, lp;
	double max_err = 0, min_v = 1e9;

	fit_both(&sp, &lp);
	for (size_t k = 0; k < lvl.n_points; k++) {
		double e = fabs(lvl.points[k].value - level_at(lvl.points[k].ts_ms));

		max_err = e > max_err ? e : max_err;
		min_v = lvl.points[k].value < min_v ? lvl.points[k].value : min_v;
		CHECK(lvl.points[k].lo <= lvl.points[k].value && lvl.points[k].value <= lvl.points[k].hi);
	}
	CHECK(max_err < 0.01); /* 1 cm: the harmonic model is exact on a pure tide */
	CHECK(min_v < -1.5);   /* low water below the datum, not clipped at 0 */
	CHECK_INT(lvl.n_windows, 0);
	/* signed values are for the linear transform only */
	lp.transform = FORECAST_LOG;
	lp.offset = 0.05;
	CHECK_INT(forecast_fit(samples, 100, &lp, &plain, NULL, 0), -EINVAL);
}

static void test_tide_stage(void)
{
	struct forecast_params sp, lp;
	size_t hi = 0, lo = 0;

	fit_both(&sp, &lp);
	/* the forecast's own highest and lowest points in the first 12 h */
	for (size_t k = 1; k < 48; k++) {
		hi = lvl.points[k].value > lvl.points[hi].value ? k : hi;
		lo = lvl.points[k].value < lvl.points[lo].value ? k : lo;
	}
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[hi].ts_ms), FORECAST_TIDE_HIGH);
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[hi].ts_ms + 45 * MIN_MS), FORECAST_TIDE_HIGH);
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[lo].ts_ms), FORECAST_TIDE_LOW);
	/* halfway from high to low water the tide falls, and back it rises */
	CHECK_INT(forecast_tide_stage(&lvl, (lvl.points[hi].ts_ms + lvl.points[lo].ts_ms) / 2 / (15 * MIN_MS) * (15 * MIN_MS)),
		  hi < lo ? FORECAST_TIDE_FALLING : FORECAST_TIDE_RISING);
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[0].ts_ms - DAY_MS), FORECAST_TIDE_UNKNOWN);
	/* a window opening minutes before a level forecast made just after it */
	CHECK(forecast_tide_stage(&lvl, lvl.points[0].ts_ms - 20 * MIN_MS) != FORECAST_TIDE_UNKNOWN);
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[0].ts_ms - 20 * MIN_MS),
		  forecast_tide_stage(&lvl, lvl.points[0].ts_ms));
	CHECK_INT(forecast_tide_stage(&lvl, lvl.points[0].ts_ms - 61 * MIN_MS), FORECAST_TIDE_UNKNOWN);
	CHECK_INT(forecast_tide_stage(NULL, lvl.points[0].ts_ms), FORECAST_TIDE_UNKNOWN);
	CHECK_STR(forecast_tide_name(FORECAST_TIDE_HIGH), "high");
	CHECK(forecast_tide_name(FORECAST_TIDE_UNKNOWN) == NULL);
}

/* Every point of every sluice window keeps both conditions. */
static void check_sluice(const struct forecast *f, double below, double min_level,
			 const struct forecast_params *p, size_t *n_sluice)
{
	double limit = below - (p->margin_abs + p->margin_rel * below);

	*n_sluice = 0;
	for (size_t w = 0; w < f->n_windows; w++) {
		const struct forecast_window *wi = &f->windows[w];

		if (w > 0) /* sorted by threshold, then time */
			CHECK(f->windows[w - 1].below < wi->below ||
			      (f->windows[w - 1].below == wi->below &&
			       f->windows[w - 1].from_ms <= wi->from_ms));
		if (!wi->sluice)
			continue;
		(*n_sluice)++;
		CHECK_NEAR(wi->below, below, 0);
		CHECK(wi->to_ms - wi->from_ms >= (int64_t)(p->min_window_s * 1000));
		for (size_t k = 0; k < f->n_points; k++) {
			int64_t t = f->points[k].ts_ms;

			if (t <= wi->from_ms || t >= wi->to_ms)
				continue;
			CHECK(f->points[k].hi < limit);
			if (wi->level_gated)
				CHECK(lvl.points[(t - lvl.points[0].ts_ms) / (15 * MIN_MS)].lo > min_level);
		}
	}
}

static void test_sluice_windows(void)
{
	struct forecast_params sp, lp;
	size_t n_gated, n_plain, before;
	int64_t gated_ms = 0, plain_ms = 0;

	fit_both(&sp, &lp);
	plain = sal;
	before = plain.n_windows;
	/* salinity only */
	CHECK_INT(forecast_sluice_windows(&plain, NULL, 0.7, NAN, &sp), 0);
	check_sluice(&plain, 0.7, NAN, &sp, &n_plain);
	CHECK(n_plain >= 3);
	CHECK_INT(plain.n_windows, before + n_plain);
	/* with the level: fresh enough at low water is not enough, the level
	 * must be above -0.5 m too */
	CHECK_INT(forecast_sluice_windows(&sal, &lvl, 0.7, -0.5, &sp), 0);
	check_sluice(&sal, 0.7, -0.5, &sp, &n_gated);
	CHECK(n_gated >= 1);
	for (size_t w = 0; w < sal.n_windows; w++) {
		if (sal.windows[w].sluice) {
			CHECK(sal.windows[w].level_gated);
			gated_ms += sal.windows[w].to_ms - sal.windows[w].from_ms;
			CHECK(sal.windows[w].tide != FORECAST_TIDE_UNKNOWN);
		}
		if (!sal.windows[w].sluice)
			CHECK(sal.windows[w].tide != FORECAST_TIDE_UNKNOWN); /* ladder windows named too */
	}
	for (size_t w = 0; w < plain.n_windows; w++)
		if (plain.windows[w].sluice)
			plain_ms += plain.windows[w].to_ms - plain.windows[w].from_ms;
	CHECK(gated_ms > 0 && gated_ms < plain_ms); /* the level takes some hours away */
	/* each gated window lies inside a salinity-only one */
	for (size_t w = 0; w < sal.n_windows; w++) {
		bool inside = false;

		if (!sal.windows[w].sluice)
			continue;
		for (size_t v = 0; v < plain.n_windows && !inside; v++)
			inside = plain.windows[v].sluice &&
				 plain.windows[v].from_ms <= sal.windows[w].from_ms + 60000 &&
				 sal.windows[w].to_ms <= plain.windows[v].to_ms + 60000;
		CHECK(inside);
	}
	/* a level no water ever reaches: no windows */
	fit_both(&sp, &lp);
	before = sal.n_windows;
	CHECK_INT(forecast_sluice_windows(&sal, &lvl, 0.7, 5.0, &sp), 0);
	CHECK_INT(sal.n_windows, before);
	CHECK_INT(forecast_sluice_windows(&sal, &lvl, 0, 1.0, &sp), -EINVAL);
	/* tides listed over the salinity points: alternating high and low */
	forecast_tide_label(&sal, &lvl);
	CHECK(sal.n_turns >= 8 && sal.n_turns <= FORECAST_TURNS_MAX);
	for (size_t i = 1; i < sal.n_turns; i++) {
		CHECK(sal.turns[i].ts_ms > sal.turns[i - 1].ts_ms);
		CHECK(sal.turns[i].stage != sal.turns[i - 1].stage);
	}
}

static void test_encode(void)
{
	struct forecast_params sp, lp;
	static char buf[64 * 1024];
	const cJSON *w, *it;
	cJSON *doc;
	int len, n_sluice = 0, n_tide = 0;

	fit_both(&sp, &lp);
	CHECK_INT(forecast_sluice_windows(&sal, &lvl, 0.7, -0.5, &sp), 0);
	len = forecast_encode(&sal, "DT-W03", "salinity", "g/L", T("2026-03-21T00:00:00Z"),
			      buf, sizeof(buf));
	CHECK(len > 0);
	doc = cJSON_Parse(buf);
	CHECK(doc != NULL);
	if (!doc)
		return;
	w = cJSON_GetObjectItem(doc, "windows");
	cJSON_ArrayForEach(it, w) {
		const cJSON *tide = cJSON_GetObjectItem(it, "tide");

		if (cJSON_IsTrue(cJSON_GetObjectItem(it, "sluice"))) {
			n_sluice++;
			CHECK_NEAR(cJSON_GetObjectItem(it, "min_level_m")->valuedouble, -0.5, 1e-9);
		}
		if (cJSON_IsString(tide)) {
			n_tide++;
			CHECK(strcmp(tide->valuestring, "rising") == 0 || strcmp(tide->valuestring, "high") == 0 ||
			      strcmp(tide->valuestring, "falling") == 0 || strcmp(tide->valuestring, "low") == 0);
		}
	}
	CHECK(n_sluice >= 1);
	CHECK_INT(n_tide, cJSON_GetArraySize(w));
	CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "tides")), (int)sal.n_turns);
	CHECK(cJSON_GetObjectItem(doc, "note") == NULL);
	cJSON_Delete(doc);
	snprintf(sal.note, sizeof(sal.note), "no sluice windows: they need a water-level forecast");
	len = forecast_encode(&sal, "DT-W03", "salinity", "g/L", 0, buf, sizeof(buf));
	CHECK(len > 0 && strstr(buf, "\"note\":\"no sluice windows") != NULL);
}

int main(void)
{
	test_level_signed();
	test_tide_stage();
	test_sluice_windows();
	test_encode();
	return test_main("test_gateway_sluice");
}
