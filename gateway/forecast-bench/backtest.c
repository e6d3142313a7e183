/*
 * agri-forecast-backtest: backtests the salinity forecast (gateway/src/
 * forecast/model.c) on the simulator's salinity-intrusion truth, and times the
 * fit. For each station (distance from the mouth) it runs
 *   agri-sim --series --scenario salinity-intrusion --slave 1:sensecap-s-ec-01,distance_km=D ...
 * over a dry season, takes the "salinity" column as the truth, builds the
 * readings a gateway would see (clean, or degraded: sensor noise,
 * quantisation, dropouts, outages and a stuck-sensor episode every couple
 * of weeks), fits at many origins, and compares each 72-hour forecast with
 * the truth: MAE at 24 h and 48 h lead, the share of true values inside the
 * band, the tidal-day persistence baseline (the true value 24 h 50 min,
 * resp. 49 h 40 min, earlier), and the agreement of the intake windows with
 * the true windows (truth below the threshold). Exit status 0 when the
 * acceptance holds (24 h MAE <= half persistence; windows agree >= 90 %).
 */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/time.h"
#include "forecast/model.h"

#define STEP_MS (300 * 1000LL)
#define HOUR_MS 3600000LL
#define DAY_MS (24 * HOUR_MS)

struct series {
	int64_t t0_ms; /* first sample; samples every STEP_MS */
	size_t n;
	double *v;
};

struct stats {
	double ae24, ap24, ae48, ap48; /* sums of absolute errors */
	size_t n24, n48;
	size_t in24, in48, in_all, n_all;
	/* windows, in 5-minute ticks: both, forecast only, truth only, neither */
	double w_both, w_f, w_t, w_none;
	size_t fits, nofit;
	double fit_days, resid_sd;
};

static const char *sim_path = "agri-sim";

static int load_truth(double km, const char *start, double hours, unsigned seed,
		      struct series *s)
{
	char cmd[512], line[256];
	FILE *f;
	size_t cap = 0;

	snprintf(cmd, sizeof(cmd),
		 "%s --series --scenario salinity-intrusion --slave 1:sensecap-s-ec-01,distance_km=%g "
		 "--start %s --hours %g --step-s 300 --seed %u",
		 sim_path, km, start, hours, seed);
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	s->n = 0;
	s->v = NULL;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ','), *c2;
		int64_t ts;

		if (!c1 || !(c2 = strchr(c1 + 1, ',')))
			continue;
		if ((size_t)(c2 - c1 - 1) != strlen("salinity") ||
		    strncmp(c1 + 1, "salinity", 8) != 0)
			continue;
		if (agri_time_parse_n(line, (size_t)(c1 - line), &ts))
			continue;
		if (s->n == cap) {
			cap = cap ? 2 * cap : 65536;
			s->v = realloc(s->v, cap * sizeof(double));
			if (!s->v)
				return -ENOMEM;
		}
		if (s->n == 0)
			s->t0_ms = ts;
		s->v[s->n++] = strtod(c2 + 1, NULL);
	}
	if (pclose(f) != 0 || s->n < 2) {
		fprintf(stderr, "backtest: %s failed\n", cmd);
		return -EIO;
	}
	return 0;
}

/* xorshift64* and Box-Muller: the degradation is reproducible. */
static uint64_t rng_state = 88172645463325252ULL;
static double urand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (double)((rng_state * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}
static double nrand(void)
{
	double u = urand(), w = urand();

	return sqrt(-2 * log(u > 1e-300 ? u : 1e-300)) * cos(2 * M_PI * w);
}

/*
 * Readings the gateway would store. degraded: 2 % + 0.01 g/L Gaussian
 * sensor noise, quantised to 0.01 g/L; 3 % random dropouts; a 12-hour
 * outage every 9 days; a 6-hour stuck episode (the value frozen) every 13
 * days, and one 3-day stuck episode in the middle of the season.
 */
static size_t observe(const struct series *t, bool degraded,
		      struct forecast_sample *out)
{
	size_t n = 0;
	double stuck_v = 0;
	bool stuck = false;

	rng_state = 88172645463325252ULL;
	for (size_t i = 0; i < t->n; i++) {
		int64_t ts = t->t0_ms + (int64_t)i * STEP_MS;
		double v = t->v[i];

		if (degraded) {
			int64_t d = (ts - t->t0_ms);
			int64_t in9 = d % (9 * DAY_MS), in13 = d % (13 * DAY_MS);
			int64_t mid = (int64_t)(t->n / 2) * STEP_MS;

			if (in9 >= 4 * DAY_MS && in9 < 4 * DAY_MS + 12 * HOUR_MS)
				continue; /* outage */
			if (urand() < 0.03)
				continue; /* dropout */
			v = v * (1 + 0.02 * nrand()) + 0.01 * nrand();
			v = round((v < 0 ? 0 : v) * 100) / 100;
			if ((in13 >= 7 * DAY_MS && in13 < 7 * DAY_MS + 6 * HOUR_MS) ||
			    (d >= mid && d < mid + 3 * DAY_MS)) {
				if (!stuck)
					stuck_v = v;
				stuck = true;
				v = stuck_v;
			} else {
				stuck = false;
			}
		}
		out[n++] = (struct forecast_sample){ts, v};
	}
	return n;
}

static double truth_at(const struct series *t, int64_t ts, bool *ok)
{
	int64_t i = (ts - t->t0_ms) / STEP_MS;

	*ok = ts >= t->t0_ms && (ts - t->t0_ms) % STEP_MS == 0 && i < (int64_t)t->n;
	return *ok ? t->v[i] : 0;
}

static void score(const struct series *t, const struct forecast *f, int64_t origin,
		  const struct forecast_params *p, struct stats *st)
{
	bool ok, ok2;

	for (size_t k = 0; k < f->n_points; k++) {
		const struct forecast_point *pt = &f->points[k];
		int64_t lead = pt->ts_ms - origin;
		double tv = truth_at(t, pt->ts_ms, &ok), pv;

		if (!ok)
			continue;
		st->n_all++;
		st->in_all += tv >= pt->lo && tv <= pt->hi;
		if (lead > 23 * HOUR_MS && lead <= 25 * HOUR_MS) {
			pv = truth_at(t, pt->ts_ms - (24 * HOUR_MS + 50 * 60000), &ok2);
			if (ok2) {
				st->ae24 += fabs(pt->value - tv);
				st->ap24 += fabs(pv - tv);
				st->in24 += tv >= pt->lo && tv <= pt->hi;
				st->n24++;
			}
		} else if (lead > 47 * HOUR_MS && lead <= 49 * HOUR_MS) {
			pv = truth_at(t, pt->ts_ms - (49 * HOUR_MS + 40 * 60000), &ok2);
			if (ok2) {
				st->ae48 += fabs(pt->value - tv);
				st->ap48 += fabs(pv - tv);
				st->in48 += tv >= pt->lo && tv <= pt->hi;
				st->n48++;
			}
		}
	}
	/* windows at 5-minute resolution over the forecast span */
	for (size_t th = 0; th < p->n_thresholds; th++) {
		double thr = p->thresholds[th];

		for (int64_t ts = f->points[0].ts_ms; ts <= f->points[f->n_points - 1].ts_ms;
		     ts += STEP_MS) {
			double tv = truth_at(t, ts, &ok);
			bool in_f = false, in_t;

			if (!ok)
				continue;
			for (size_t w = 0; w < f->n_windows; w++)
				if (f->windows[w].below == thr && ts >= f->windows[w].from_ms &&
				    ts <= f->windows[w].to_ms)
					in_f = true;
			in_t = tv < thr;
			if (in_f && in_t)
				st->w_both++;
			else if (in_f)
				st->w_f++;
			else if (in_t)
				st->w_t++;
			else
				st->w_none++;
		}
	}
}

static void print_stats(const char *label, const struct stats *s)
{
	double mae24 = s->ae24 / (double)(s->n24 ? s->n24 : 1);
	double p24 = s->ap24 / (double)(s->n24 ? s->n24 : 1);
	double mae48 = s->ae48 / (double)(s->n48 ? s->n48 : 1);
	double p48 = s->ap48 / (double)(s->n48 ? s->n48 : 1);
	double wtot = s->w_both + s->w_f + s->w_t + s->w_none;

	printf("%-22s fits %4zu (none %2zu)  MAE24 %.3f (persist %.3f, ratio %.2f)  "
	       "MAE48 %.3f (persist %.3f, ratio %.2f)  in-band 24h %4.1f%% 48h %4.1f%% all %4.1f%%  "
	       "windows: agree %5.1f%% precision %5.1f%% recall %5.1f%%\n",
	       label, s->fits, s->nofit, mae24, p24, mae24 / p24, mae48, p48, mae48 / p48,
	       100.0 * (double)s->in24 / (double)(s->n24 ? s->n24 : 1),
	       100.0 * (double)s->in48 / (double)(s->n48 ? s->n48 : 1),
	       100.0 * (double)s->in_all / (double)(s->n_all ? s->n_all : 1),
	       100.0 * (s->w_both + s->w_none) / (wtot > 0 ? wtot : 1),
	       100.0 * s->w_both / (s->w_both + s->w_f > 0 ? s->w_both + s->w_f : 1),
	       100.0 * s->w_both / (s->w_both + s->w_t > 0 ? s->w_both + s->w_t : 1));
}

static void add_stats(struct stats *a, const struct stats *b)
{
	a->ae24 += b->ae24; a->ap24 += b->ap24; a->ae48 += b->ae48; a->ap48 += b->ap48;
	a->n24 += b->n24; a->n48 += b->n48; a->in24 += b->in24; a->in48 += b->in48;
	a->in_all += b->in_all; a->n_all += b->n_all;
	a->w_both += b->w_both; a->w_f += b->w_f; a->w_t += b->w_t; a->w_none += b->w_none;
	a->fits += b->fits; a->nofit += b->nofit;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: agri-forecast-backtest [--sim PATH] [--seed N] [--origin-step-h H]\n"
		"         [--km D,D,...] [--transform log|sqrt|linear] [--offset C] [--level 1|2]\n"
		"         [--days N] [--full-days N] [--knot-days N] [--hold-h H]\n"
		"         [--half-life-days N] [--z Z] [--margin-rel R] [--verbose]\n");
}

struct bt_opts {
	double kms[8];
	size_t n_km;
	unsigned seed;
	double origin_step_h;
	bool verbose;
};

/* The command line into o and p. Returns 0, or 2 (usage printed). */
static int parse_args(int argc, char **argv, struct bt_opts *o, struct forecast_params *p)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--verbose")) {
			o->verbose = true;
			continue;
		}
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--sim"))
			sim_path = v;
		else if (!strcmp(a, "--seed"))
			o->seed = (unsigned)strtoul(v, NULL, 10);
		else if (!strcmp(a, "--origin-step-h"))
			o->origin_step_h = strtod(v, NULL);
		else if (!strcmp(a, "--transform"))
			p->transform = !strcmp(v, "sqrt") ? FORECAST_SQRT
				       : !strcmp(v, "linear") ? FORECAST_LINEAR : FORECAST_LOG;
		else if (!strcmp(a, "--offset"))
			p->offset = strtod(v, NULL);
		else if (!strcmp(a, "--level"))
			p->level_order = atoi(v);
		else if (!strcmp(a, "--days"))
			p->fit_days_max = strtod(v, NULL);
		else if (!strcmp(a, "--full-days"))
			p->full_days = strtod(v, NULL);
		else if (!strcmp(a, "--knot-days"))
			p->level_knot_days = strtod(v, NULL);
		else if (!strcmp(a, "--hold-h"))
			p->level_hold_h = strtod(v, NULL);
		else if (!strcmp(a, "--half-life-days"))
			p->half_life_days = strtod(v, NULL);
		else if (!strcmp(a, "--z"))
			p->z = strtod(v, NULL);
		else if (!strcmp(a, "--margin-rel"))
			p->margin_rel = strtod(v, NULL);
		else if (!strcmp(a, "--km")) {
			char *e;
			o->n_km = 0;
			for (const char *q = v; *q && o->n_km < 8; q = *e ? e + 1 : e) {
				o->kms[o->n_km++] = strtod(q, &e);
				if (e == q)
					break;
			}
		} else {
			usage();
			return 2;
		}
	}
	return 0;
}

/* Fits at every origin from first to last over the observations and
 * scores each forecast against the truth t into *st. */
static void run_origins(const struct bt_opts *o, const struct forecast_params *p,
			double km, const struct series *t, const struct forecast_sample *obs,
			size_t n_obs, struct forecast *f, struct stats *st)
{
	int64_t first_origin, last_origin;
	size_t lo = 0, hi = 0;
	double fd = 0, sd = 0;

	agri_time_parse("2026-02-01T00:00:00Z", &first_origin);
	agri_time_parse("2026-04-28T00:00:00Z", &last_origin);
	for (int64_t org = first_origin; org <= last_origin;
	     org += (int64_t)(o->origin_step_h * HOUR_MS)) {
		char why[FORECAST_WHY_MAX];
		int rc;

		while (hi < n_obs && obs[hi].ts_ms <= org)
			hi++;
		while (lo < hi && obs[lo].ts_ms < org - 31 * DAY_MS)
			lo++;
		rc = forecast_fit(obs + lo, hi - lo, p, f, why, sizeof(why));
		if (rc) {
			st->nofit++;
			if (o->verbose) {
				char ts[AGRI_TIME_LEN + 1];
				agri_time_format(org, ts, sizeof(ts));
				printf("  %s %gkm: no forecast (%d): %s\n", ts, km, rc, why);
			}
			continue;
		}
		st->fits++;
		fd += f->fit_days;
		sd += f->residual_sd;
		score(t, f, org, p, st);
	}
	st->fit_days = fd; /* sums, for --verbose's means */
	st->resid_sd = sd;
}

/* One station (km from the mouth): its truth, then the clean and the
 * degraded observations, each scored, printed and added to total[].
 * Returns 0 or -1. */
static int run_station(const struct bt_opts *o, const struct forecast_params *p,
		       double km, struct stats total[2])
{
	/* the season: truth from 2026-01-01 (history for the first origins)
	 * to early May; origins from 1 Feb to 28 Apr */
	struct series t;
	struct forecast_sample *obs;
	struct forecast *f = malloc(sizeof(*f));

	if (load_truth(km, "2026-01-01", 124 * 24, o->seed, &t) || !f)
		return -1;
	obs = malloc(t.n * sizeof(*obs));
	if (!obs)
		return -1;
	for (int deg = 0; deg < 2; deg++) {
		size_t n_obs = observe(&t, deg, obs);
		struct stats st = {0};
		char label[64];

		run_origins(o, p, km, &t, obs, n_obs, f, &st);
		snprintf(label, sizeof(label), "%2g km %s", km,
			 deg ? "noisy+gaps+stuck" : "clean");
		print_stats(label, &st);
		if (o->verbose)
			printf("    mean fit_days %.1f, mean residual_sd %.3f g/L\n",
			       st.fit_days / (double)(st.fits ? st.fits : 1),
			       st.resid_sd / (double)(st.fits ? st.fits : 1));
		add_stats(&total[deg], &st);
	}
	free(obs);
	free(f);
	free(t.v);
	return 0;
}

/* The ALL lines; true when both pass the acceptance. */
static bool summarise(const struct stats total[2])
{
	bool pass = true;

	for (int deg = 0; deg < 2; deg++) {
		const struct stats *s = &total[deg];
		double mae24 = s->ae24 / (double)s->n24, p24 = s->ap24 / (double)s->n24;
		double wt = s->w_both + s->w_f + s->w_t + s->w_none;
		double agree = (s->w_both + s->w_none) / wt;

		print_stats(deg ? "ALL noisy+gaps+stuck" : "ALL clean", s);
		if (!(mae24 <= 0.5 * p24) || !(agree >= 0.9))
			pass = false;
	}
	return pass;
}

/* Fit time: 30 days of 5-minute data (8,640 readings). Returns 0 or -1. */
static int time_fit(const struct forecast_params *p, unsigned seed)
{
	struct series t;
	struct forecast_sample *obs;
	struct forecast *f = malloc(sizeof(*f));
	int64_t o;
	size_t n_obs, lo = 0, hi = 0;
	const int reps = 20;
	double t0, dt;

	if (load_truth(18, "2026-02-20", 31 * 24, seed, &t) || !f)
		return -1;
	obs = malloc(t.n * sizeof(*obs));
	n_obs = observe(&t, false, obs);
	o = obs[n_obs - 1].ts_ms;
	while (lo < n_obs && obs[lo].ts_ms <= o - 30 * DAY_MS)
		lo++;
	hi = n_obs;
	t0 = now_s();
	for (int r = 0; r < reps; r++)
		forecast_fit(obs + lo, hi - lo, p, f, NULL, 0);
	dt = (now_s() - t0) / reps;
	printf("fit time: %zu readings (30 days at 5 min), %zu parameters: %.1f ms per fit\n",
	       hi - lo, f->n_params, dt * 1000);
	free(obs);
	free(f);
	free(t.v);
	return 0;
}

int main(int argc, char **argv)
{
	struct bt_opts o = {.kms = {10, 18, 30}, .n_km = 3, .seed = 1, .origin_step_h = 12};
	struct forecast_params p;
	struct stats total[2] = {{0}};
	bool pass;

	forecast_params_default(&p);
	if (parse_args(argc, argv, &o, &p))
		return 2;
	printf("forecast backtest: salinity-intrusion, %zu stations, origins every %g h "
	       "1 Feb-28 Apr 2026, fit window %g d, thresholds 0.5/1/2/4 g/L, margin %g%%\n",
	       o.n_km, o.origin_step_h, p.fit_days_max, p.margin_rel * 100);
	for (size_t s = 0; s < o.n_km; s++)
		if (run_station(&o, &p, o.kms[s], total))
			return 1;
	pass = summarise(total);
	if (time_fit(&p, o.seed))
		return 1;
	printf("acceptance (24 h MAE <= 0.5 x persistence, windows agree >= 90%%): %s\n",
	       pass ? "PASS" : "FAIL");
	return pass ? 0 : 1;
}
