/*
 * Unit tests of the salinity forecast and pest advisories
 * (gateway/src/forecast.c): a synthetic harmonic series is recovered and
 * extrapolated exactly, with gaps and a stuck-sensor run in it; too little
 * or too patchy data gives a reason instead of a forecast; intake windows
 * from hand-made bands; advisory dates in local time; the JSON documents.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>

#include "agri/time.h"
#include "forecast/model.h"
#include "test.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

static int64_t T(const char *s)
{
	int64_t ms = 0;

	if (agri_time_parse(s, &ms))
		abort();
	return ms;
}

static int64_t t_ref;

/* log(S + 0.05) = level + trend + M2 + K1 + O1 + M4 (all in the reduced set) */
static double synth(int64_t ts_ms)
{
	double h = (double)(ts_ms - t_ref) / (double)HOUR_MS;
	double d2r = M_PI / 180.0;
	double y = 1.2 + 0.004 * h / 24.0 +
		   0.60 * cos(28.9841042 * d2r * h + 0.3) +
		   0.25 * cos(15.0410686 * d2r * h + 1.1) +
		   0.18 * cos(13.9430356 * d2r * h - 0.7) +
		   0.10 * cos(57.9682084 * d2r * h + 2.0);

	return exp(y) - 0.05;
}

static size_t make_series(struct forecast_sample *s, int64_t from, double days,
			  int64_t step_ms)
{
	size_t n = 0;

	for (int64_t t = from; t <= from + (int64_t)(days * DAY_MS); t += step_ms)
		s[n++] = (struct forecast_sample){t, synth(t)};
	return n;
}

static void test_exact_recovery(void)
{
	static struct forecast_sample s[20000];
	static struct forecast f;
	struct forecast_params p;
	char why[FORECAST_WHY_MAX] = "";
	double max_err = 0;
	size_t n;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(&p);
	p.level_hold_h = 1e9; /* the synthetic trend goes on */
	n = make_series(s, t_ref, 30, 15 * MIN_MS);
	/* shuffle a little: input order must not matter */
	for (size_t i = 0; i + 7 < n; i += 7) {
		struct forecast_sample x = s[i];
		s[i] = s[i + 7];
		s[i + 7] = x;
	}
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), 0);
	CHECK(!f.reduced);
	CHECK_NEAR(f.fit_days, 30.0, 1e-9);
	CHECK_NEAR(f.coverage, 1.0, 1e-9);
	CHECK(f.residual_sd < 1e-6);
	CHECK_INT(f.n_stuck, 0);
	CHECK_INT(f.n_points, FORECAST_POINTS);
	CHECK(strstr(f.model, "M2") != NULL);
	CHECK(strstr(f.model, "log(S+0.05)") != NULL);
	CHECK_INT(f.data_until_ms, T("2026-03-31T00:00:00Z"));
	CHECK_INT(f.points[0].ts_ms, T("2026-03-31T00:15:00Z"));
	CHECK_INT(f.points[FORECAST_POINTS - 1].ts_ms, T("2026-04-03T00:00:00Z"));
	for (size_t k = 0; k < f.n_points; k++) {
		double e = fabs(f.points[k].value - synth(f.points[k].ts_ms));
		if (e > max_err)
			max_err = e;
		CHECK(f.points[k].lo <= f.points[k].value && f.points[k].value <= f.points[k].hi);
	}
	CHECK(max_err < 1e-5);

	/* 5-minute data are fitted as 15-minute means: close, not exact */
	n = make_series(s, t_ref, 30, 5 * MIN_MS);
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), 0);
	CHECK_INT(f.n_used, n);
	CHECK(f.n_slots + f.n_outliers == 30 * 96 + 1);
	CHECK(f.residual_sd < 0.01);
	CHECK_NEAR(f.points[0].value, synth(f.points[0].ts_ms), 0.02);

	/* by default the trend is held 12 h after the last reading */
	p.level_hold_h = 12;
	n = make_series(s, t_ref, 30, 15 * MIN_MS);
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), 0);
	CHECK_NEAR(f.points[47].value, synth(f.points[47].ts_ms), 1e-5); /* 12 h */
	CHECK(fabs(f.points[287].value - synth(f.points[287].ts_ms)) > 1e-3);
	CHECK(strstr(f.model, "half-life 2 d") != NULL);
}

/* A stuck run (8 h of one value) and gaps are dropped; the rest is exact. */
static void test_stuck_and_gaps(void)
{
	static struct forecast_sample s[20000], g[20000];
	static struct forecast f;
	struct forecast_params p;
	char why[FORECAST_WHY_MAX] = "";
	size_t n, m = 0;
	double max_err = 0;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(&p);
	p.level_hold_h = 1e9;
	n = make_series(s, t_ref, 20, 15 * MIN_MS);
	for (size_t i = 0; i < n; i++) {
		int64_t d = s[i].ts_ms - t_ref;

		if (d >= 5 * DAY_MS && d < 5 * DAY_MS + 12 * HOUR_MS)
			continue; /* an outage */
		g[m] = s[i];
		if (d >= 10 * DAY_MS && d < 10 * DAY_MS + 8 * HOUR_MS)
			g[m].value = 3.21; /* stuck */
		m++;
	}
	CHECK_INT(forecast_fit(g, m, &p, &f, why, sizeof(why)), 0);
	CHECK_INT(f.n_stuck, 32);
	CHECK(f.coverage > 0.95 && f.coverage < 0.99);
	CHECK(f.residual_sd < 1e-6);
	for (size_t k = 0; k < f.n_points; k++) {
		double e = fabs(f.points[k].value - synth(f.points[k].ts_ms));
		if (e > max_err)
			max_err = e;
	}
	CHECK(max_err < 1e-5);

	/* a short constant run (1 h) is kept */
	for (size_t i = 100; i < 104; i++)
		g[i].value = 2.0;
	CHECK_INT(forecast_fit(g, m, &p, &f, why, sizeof(why)), 0);
	CHECK_INT(f.n_stuck, 32);
}

/* 5 days: the reduced model (no S2/N2 separation), still exact here. */
static void test_reduced(void)
{
	static struct forecast_sample s[5000];
	static struct forecast f;
	struct forecast_params p;
	char why[FORECAST_WHY_MAX] = "";
	size_t n;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(&p);
	p.level_hold_h = 1e9;
	n = make_series(s, t_ref, 5, 15 * MIN_MS);
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), 0);
	CHECK(f.reduced);
	CHECK(strstr(f.model, " S2") == NULL);
	CHECK(strstr(f.model, " N2") == NULL);
	CHECK(f.residual_sd < 1e-6);
	CHECK_NEAR(f.points[100].value, synth(f.points[100].ts_ms), 1e-5);
}

static void test_too_little(void)
{
	static struct forecast_sample s[20000];
	static struct forecast f;
	struct forecast_params p;
	char why[FORECAST_WHY_MAX] = "";
	size_t n, m = 0;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(&p);
	CHECK_INT(forecast_fit(s, 0, &p, &f, why, sizeof(why)), -ENODATA);
	CHECK(strstr(why, "no readings") != NULL);

	n = make_series(s, t_ref, 2, 5 * MIN_MS);
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), -ENODATA);
	CHECK_STR(why, "too little data: 2.0 days of readings, need 3.0");

	/* 10 days, but data only every other hour: 50 % coverage */
	n = make_series(s, t_ref, 10, 5 * MIN_MS);
	for (size_t i = 0; i < n; i++)
		if (((s[i].ts_ms - t_ref) / HOUR_MS) % 2 == 0)
			s[m++] = s[i];
	CHECK_INT(forecast_fit(s, m, &p, &f, why, sizeof(why)), -ENODATA);
	CHECK(strstr(why, "70% coverage") != NULL);

	/* 10 days of which only the last 4 are dense: fit the last 4 */
	m = 0;
	n = make_series(s, t_ref, 10, 5 * MIN_MS);
	for (size_t i = 0; i < n; i++)
		if (s[i].ts_ms - t_ref >= 6 * DAY_MS ||
		    ((s[i].ts_ms - t_ref) / HOUR_MS) % 6 == 0)
			s[m++] = s[i];
	CHECK_INT(forecast_fit(s, m, &p, &f, why, sizeof(why)), 0);
	CHECK(f.fit_days > 4.0 && f.fit_days < 7.0 && f.coverage >= 0.7);

	/* a stuck sensor for all of it */
	n = make_series(s, t_ref, 10, 5 * MIN_MS);
	for (size_t i = 0; i < n; i++)
		s[i].value = 1.5;
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), -ENODATA);
	CHECK(strstr(why, "stuck") != NULL);

	/* bad input */
	s[0].value = NAN;
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), -EINVAL);
	p.fit_days_min = 0;
	CHECK_INT(forecast_fit(s, n, &p, &f, why, sizeof(why)), -EINVAL);
}

static void test_windows(void)
{
	static struct forecast f;
	struct forecast_params p;
	int64_t t0 = T("2026-03-10T00:15:00Z");
	/* hi per 15-min point: 3 below 1.0-5% at the start, then high, then
	 * a dip to 0.5 for 2 h, then high, low again at the end */
	static const double hi[] = {0.6, 0.6, 0.6, 1.5, 1.5, 0.8, 0.4, 0.4,
				    0.4, 0.4, 0.4, 0.4, 0.4, 0.8, 1.5, 0.9};

	forecast_params_default(&p);
	p.thresholds[0] = 1.0;
	p.n_thresholds = 1;
	p.min_window_s = 0;
	memset(&f, 0, sizeof(f));
	f.n_points = sizeof(hi) / sizeof(hi[0]);
	for (size_t k = 0; k < f.n_points; k++)
		f.points[k] = (struct forecast_point){t0 + (int64_t)k * 15 * MIN_MS,
						      hi[k] / 2, hi[k] / 4, hi[k]};
	CHECK_INT(forecast_windows(&f, &p), 0);
	CHECK_INT(f.n_windows, 3);
	/* open at the first point; hi 0.6 -> 1.5 crosses 0.95 at 7/18 of 15 min */
	CHECK_INT(f.windows[0].from_ms, t0);
	CHECK_INT(f.windows[0].to_ms, t0 + 2 * 15 * MIN_MS + 350000);
	/* 1.5 -> 0.8 crosses 0.95 at 11/14 of the step after point 4 */
	CHECK_INT(f.windows[1].from_ms, t0 + 4 * 15 * MIN_MS + 707143);
	/* 0.8 -> 1.5 crosses at 3/14 after point 13 */
	CHECK_INT(f.windows[1].to_ms, t0 + 13 * 15 * MIN_MS + 192857);
	CHECK_NEAR(f.windows[1].below, 1.0, 0);
	/* the last point alone: a window from the crossing to the end */
	CHECK_INT(f.windows[2].to_ms, t0 + 15 * 15 * MIN_MS);

	/* a minimum duration of 30 min drops the short ones */
	p.min_window_s = 1800;
	CHECK_INT(forecast_windows(&f, &p), 0);
	CHECK_INT(f.n_windows, 2);

	/* margins: 0.5 g/L below 1.0 leaves only the 0.4 dip */
	p.margin_rel = 0;
	p.margin_abs = 0.5;
	CHECK_INT(forecast_windows(&f, &p), 0);
	CHECK_INT(f.n_windows, 1);
	CHECK(f.windows[0].from_ms > t0 + 5 * 15 * MIN_MS);
	CHECK(f.windows[0].to_ms < t0 + 13 * 15 * MIN_MS);

	/* several thresholds are sorted ascending */
	p.margin_abs = 0;
	p.thresholds[0] = 2.0;
	p.thresholds[1] = 0.5;
	p.n_thresholds = 2;
	CHECK_INT(forecast_windows(&f, &p), 0);
	CHECK_NEAR(f.windows[0].below, 0.5, 0);
	CHECK_NEAR(f.windows[f.n_windows - 1].below, 2.0, 0);
	CHECK_INT(f.windows[f.n_windows - 1].from_ms, t0);
	CHECK_INT(f.windows[f.n_windows - 1].to_ms, t0 + 15 * 15 * MIN_MS);
}

static void test_advisory(void)
{
	struct advisory_params p;
	struct advisory a, b;
	char buf[4096];
	int len;
	cJSON *j;

	advisory_params_default(&p);
	/* peak night 5 March (local, UTC+7): 20:00 local */
	CHECK_INT(advisory_make("DT-P01", T("2026-03-05T13:00:00Z"), &p, &a), 0);
	CHECK_STR(a.id, "sow_after_peak/DT-P01/2026-03-05");
	CHECK_STR(a.kind, "sow_after_peak");
	CHECK_INT(a.sow_from_ms, T("2026-03-06T00:00:00+07:00"));
	CHECK_INT(a.sow_to_ms, T("2026-03-13T00:00:00+07:00"));
	CHECK_INT(a.hatch_from_ms, T("2026-03-15T00:00:00+07:00"));
	CHECK_INT(a.hatch_to_ms, T("2026-03-18T00:00:00+07:00"));
	CHECK(strstr(a.message, "06/03") && strstr(a.message, "12/03"));
	CHECK(strstr(a.message, "15/03") && strstr(a.message, "17/03"));
	CHECK(strstr(a.message, "Gieo sạ né rầy") && strstr(a.message, "Sow from"));
	/* 03:00 local the next morning is the same night: same advisory */
	CHECK_INT(advisory_make("DT-P01", T("2026-03-05T20:00:00Z"), &p, &b), 0);
	CHECK_STR(b.id, a.id);
	CHECK_INT(b.sow_from_ms, a.sow_from_ms);
	CHECK_INT(b.hatch_to_ms, a.hatch_to_ms);

	/* configurable biology */
	p.sow_from_d = 2;
	p.sow_to_d = 4;
	p.hatch_from_d = 11;
	p.hatch_to_d = 11;
	CHECK_INT(advisory_make("DT-P01", T("2026-03-05T13:00:00Z"), &p, &b), 0);
	CHECK_INT(b.sow_from_ms, T("2026-03-07T00:00:00+07:00"));
	CHECK_INT(b.sow_to_ms, T("2026-03-10T00:00:00+07:00"));
	CHECK_INT(b.hatch_from_ms, T("2026-03-16T00:00:00+07:00"));
	CHECK_INT(b.hatch_to_ms, T("2026-03-17T00:00:00+07:00"));
	p.sow_to_d = 1;
	CHECK_INT(advisory_make("DT-P01", 0, &p, &b), -EINVAL);
	advisory_params_default(&p);
	CHECK_INT(advisory_make("", 0, &p, &b), -EINVAL);

	len = advisory_encode(&a, buf, sizeof(buf));
	CHECK(len > 0);
	j = cJSON_Parse(buf);
	CHECK(j != NULL);
	if (j) {
		CHECK_STR(cJSON_GetObjectItem(j, "id")->valuestring, a.id);
		CHECK_STR(cJSON_GetObjectItem(j, "sow_from")->valuestring,
			  "2026-03-05T17:00:00.000Z");
		CHECK_STR(cJSON_GetObjectItem(j, "hatch_to")->valuestring,
			  "2026-03-17T17:00:00.000Z");
		CHECK_STR(cJSON_GetObjectItem(j, "peak_at")->valuestring,
			  "2026-03-05T13:00:00.000Z");
		CHECK(cJSON_GetArraySize(j) == 9);
		cJSON_Delete(j);
	}
	CHECK_INT(advisory_encode(&a, buf, 100), -ENOSPC);
}

static void test_encode(void)
{
	static struct forecast_sample s[20000];
	static struct forecast f;
	static char buf[64 * 1024];
	struct forecast_params p;
	char why[FORECAST_WHY_MAX];
	int len;
	cJSON *j;

	t_ref = T("2026-03-01T00:00:00Z");
	forecast_params_default(&p);
	CHECK_INT(forecast_fit(s, make_series(s, t_ref, 21, 5 * MIN_MS), &p, &f, why,
			       sizeof(why)), 0);
	len = forecast_encode(&f, "DT-W01", "salinity", "g/L", T("2026-03-22T00:00:30Z"),
			      buf, sizeof(buf));
	CHECK(len > 0 && len < 40000);
	CHECK(strncmp(buf, "{\"v\":1,\"station\":\"DT-W01\",\"metric\":\"salinity\","
			   "\"unit\":\"g/L\",\"made_at\":\"2026-03-22T00:00:30.000Z\","
			   "\"from_data_until\":\"2026-03-22T00:00:00.000Z\",\"model\":\"harmonic ",
		      120) == 0);
	j = cJSON_Parse(buf);
	CHECK(j != NULL);
	if (j) {
		cJSON *pts = cJSON_GetObjectItem(j, "points");
		cJSON *p0 = cJSON_GetArrayItem(pts, 0);

		CHECK_INT(cJSON_GetArraySize(pts), FORECAST_POINTS);
		CHECK_STR(cJSON_GetObjectItem(p0, "ts")->valuestring, "2026-03-22T00:15:00.000Z");
		CHECK_NEAR(cJSON_GetObjectItem(p0, "value")->valuedouble, f.points[0].value, 1e-4);
		CHECK_NEAR(cJSON_GetObjectItem(j, "fit_days")->valuedouble, 21.0, 1e-9);
		CHECK(cJSON_IsArray(cJSON_GetObjectItem(j, "windows")));
		cJSON_Delete(j);
	}
	CHECK_INT(forecast_encode(&f, "DT-W01", "salinity", "g/L", 0, buf, 1000), -ENOSPC);
	CHECK_INT(buf[0], '\0');

	len = forecast_encode_error("too little data: 2.0 days of readings, need 3.0", buf,
				    sizeof(buf));
	CHECK_STR(buf, "{\"error\":\"too little data: 2.0 days of readings, need 3.0\"}");
	CHECK_INT(len, (int)strlen(buf));
}

int main(void)
{
	test_exact_recovery();
	test_stuck_and_gaps();
	test_reduced();
	test_too_little();
	test_windows();
	test_advisory();
	test_encode();
	return test_main("test_gateway_forecast");
}
