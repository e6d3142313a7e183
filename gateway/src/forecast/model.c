/*
 * Salinity forecasts (harmonic least squares with GSL) and pest advisories;
 * see forecast.h and docs/forecast.md. Pure: no I/O, no clock, no globals.
 *
 * The fit, in order: sort the readings; keep the trailing fit_days_max;
 * drop stuck-sensor runs; pick the longest recent stretch whose 15-minute
 * slots are at least min_coverage full; transform (log(S + c) by default:
 * estuarine salinity is a multiplicative, skewed function of the tide, and
 * in log space the spring-neap modulation and the seasonal envelope become
 * additive terms a harmonic sum can carry); solve the linear model
 *   y(t) = level(t) + sum_k a_k cos(w_k t) + b_k sin(w_k t)
 * with gsl_multifit_linear_tsvd; drop gross outliers and solve again; then
 * predict 72 h with a band whose variance is the residual variance plus the
 * parameter variance of the prediction, the latter inflated for the
 * residuals' autocorrelation (so the band widens as the trend is
 * extrapolated), and transform back.
 */
#include "forecast/model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multifit.h>

#include "agri/buf.h"
#include "agri/msg.h"
#include "agri/time.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
#define LEVEL_MAX 3 /* level_order <= 2 -> at most 3 columns */

struct constituent {
	const char *name;
	double deg_per_h;
	bool full_only; /* needs >= full_days to be told apart */
};

/*
 * Angular speeds (degrees per mean solar hour). The astronomical five
 * (M2 S2 N2 K1 O1) and the compound and overtide terms that the nonlinear
 * response of salinity to the tide makes of M2, S2, K1 and O1 (all sums
 * and differences up to third order; of two terms closer than 0.25 deg/h,
 * which a 30-day record cannot tell apart, only one is kept). full_only:
 * needs about 15 days to be told apart from a neighbour.
 */
static const struct constituent constituents[] = {
	{"MSf", 1.0158958, true},   /* S2 - M2: spring-neap */
	{"MSqm", 2.1139288, true},  /* S2 - 2 O1 */
	{"2Q1", 12.8450026, true},  /* 2 O1 - K1 */
	{"O1", 13.9430356, false},
	{"K1", 15.0410686, false},
	{"SO1", 16.0569644, true},  /* S2 - O1 */
	{"OO2", 27.8860712, true},  /* 2 O1 */
	{"N2", 28.4397295, true},
	{"M2", 28.9841042, false},
	{"S2", 30.0000000, true},
	{"2SM2", 31.0158958, true},
	{"O3", 41.8291068, true},   /* 3 O1 */
	{"MO3", 42.9271398, false},
	{"SO3", 43.9430356, true},
	{"SK3", 45.0410686, false},
	{"2SO3", 46.0569644, true},
	{"MOO4", 56.8701754, true}, /* M2 + 2 O1 */
	{"M4", 57.9682084, false},
	{"MS4", 58.9841042, true},
	{"S4", 60.0000000, true},
	{"2MO5", 71.9112440, true},
	{"MSO5", 72.9271398, true},
	{"2SO5", 73.9430356, true},
	{"2SK5", 75.0410686, true},
	{"M6", 86.9523127, false},
	{"2MS6", 87.9682084, true},
	{"2SM6", 88.9841042, true},
	{"S6", 90.0000000, true},
};
#define N_CONST (AGRI_ARRAY_SIZE(constituents))
#define KNOTS_MAX 64
#define PARAMS_MAX (LEVEL_MAX + KNOTS_MAX + 2 * N_CONST)

static void set_why(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!why || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

void forecast_params_default(struct forecast_params *p)
{
	static const double ladder[] = {0.5, 1.0, 2.0, 4.0};

	memset(p, 0, sizeof(*p));
	p->fit_days_max = 30;
	p->fit_days_min = 3;
	p->full_days = 15;
	p->min_coverage = 0.70;
	p->stuck_s = 7200;
	p->outlier_sd = 5;
	p->level_order = 1;
	p->level_knot_days = 0;
	p->level_hold_h = 12;
	p->half_life_days = 2;
	p->transform = FORECAST_LOG;
	p->offset = 0.05;
	p->z = 1.96;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(ladder); i++)
		p->thresholds[i] = ladder[i];
	p->n_thresholds = AGRI_ARRAY_SIZE(ladder);
	p->margin_abs = 0;
	p->margin_rel = 0.05;
	p->min_window_s = 1800;
}

static bool params_ok(const struct forecast_params *p)
{
	if (!(p->fit_days_min >= 1 && p->fit_days_max >= p->fit_days_min &&
	      p->fit_days_max <= 120 && p->full_days >= 0))
		return false;
	if (!(p->min_coverage >= 0 && p->min_coverage <= 1 && p->stuck_s >= 0 &&
	      p->outlier_sd >= 0 && p->z >= 0 && p->z <= 10))
		return false;
	if (p->level_order < 0 || p->level_order > LEVEL_MAX - 1)
		return false;
	if (p->transform != FORECAST_LOG && p->transform != FORECAST_SQRT &&
	    p->transform != FORECAST_LINEAR)
		return false;
	if (p->signed_values && p->transform != FORECAST_LINEAR)
		return false;
	if (!(p->offset >= 0 && p->offset <= 100) ||
	    (p->transform == FORECAST_LOG && p->offset <= 0))
		return false;
	if (p->n_thresholds > FORECAST_THRESHOLDS_MAX || !(p->margin_abs >= 0) ||
	    !(p->margin_rel >= 0 && p->margin_rel < 1) || !(p->min_window_s >= 0))
		return false;
	for (size_t i = 0; i < p->n_thresholds; i++)
		if (!(p->thresholds[i] > 0 && isfinite(p->thresholds[i])))
			return false;
	return true;
}

/* ---- transform -------------------------------------------------------- */

static double fwd(const struct forecast_params *p, double s)
{
	if (s < 0 && !p->signed_values)
		s = 0;
	switch (p->transform) {
	case FORECAST_LOG:
		return log(s + p->offset);
	case FORECAST_SQRT:
		return sqrt(s + p->offset);
	default:
		return s;
	}
}

static double inv(const struct forecast_params *p, double y)
{
	double s;

	switch (p->transform) {
	case FORECAST_LOG:
		s = exp(y) - p->offset;
		break;
	case FORECAST_SQRT:
		s = (y > 0 ? y * y : 0) - p->offset;
		break;
	default:
		s = y;
		break;
	}
	return s > 0 || p->signed_values ? s : 0;
}

/* ---- data preparation -------------------------------------------------- */

static int cmp_sample(const void *a, const void *b)
{
	const struct forecast_sample *x = a, *y = b;

	return x->ts_ms < y->ts_ms ? -1 : x->ts_ms > y->ts_ms;
}

/*
 * Removes, in place, runs of exactly equal consecutive values that last
 * longer than stuck_ms (a stuck sensor repeats its last register). Returns
 * the new count; *n_stuck gets the number removed.
 */
static size_t drop_stuck(struct forecast_sample *v, size_t n, int64_t stuck_ms,
			 size_t *n_stuck)
{
	size_t out = 0, i = 0;

	*n_stuck = 0;
	while (i < n) {
		size_t j = i + 1;

		while (j < n && v[j].value == v[i].value)
			j++;
		if (j - i > 1 && v[j - 1].ts_ms - v[i].ts_ms > stuck_ms) {
			*n_stuck += j - i;
		} else {
			memmove(&v[out], &v[i], (j - i) * sizeof(*v));
			out += j - i;
		}
		i = j;
	}
	return out;
}

/*
 * Picks the longest trailing stretch [start, v[n-1].ts] whose 15-minute
 * slots are at least min_cov occupied. Returns the index of its first
 * sample and writes the coverage.
 */
static int pick_start(const struct forecast_sample *v, size_t n, double min_cov,
		      size_t *first, double *coverage)
{
	int64_t until = v[n - 1].ts_ms;
	size_t n_slots = (size_t)((until - v[0].ts_ms) / FORECAST_STEP_MS) + 1;
	unsigned char *occ = calloc(n_slots, 1);
	size_t best = 0, filled = 0;
	double best_cov = 0;

	if (!occ)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		occ[(until - v[i].ts_ms) / FORECAST_STEP_MS] = 1;
	for (size_t k = 0; k < n_slots; k++) {
		double cov;

		filled += occ[k];
		cov = (double)filled / (double)(k + 1);
		if (occ[k] && cov >= min_cov) {
			best = k;
			best_cov = cov;
		}
	}
	free(occ);
	/* the first sample inside slot `best` (slot index counts backwards) */
	for (size_t i = 0; i < n; i++) {
		if ((size_t)((until - v[i].ts_ms) / FORECAST_STEP_MS) <= best) {
			*first = i;
			break;
		}
	}
	*coverage = best_cov;
	return 0;
}

/*
 * Averages v[0..n) and y[0..n) (sorted by time) over 15-minute slots, in
 * place: one row per slot with its mean time, value and y. Fits 15-minute
 * means whatever the sampling interval, with each slot weighing the same.
 * Returns the number of slots.
 */
static size_t bin_slots(struct forecast_sample *v, double *y, size_t n)
{
	size_t k = 0, i = 0;

	while (i < n) {
		int64_t slot = v[i].ts_ms / FORECAST_STEP_MS, dt = 0;
		double sv = 0, sy = 0;
		size_t j = i;

		for (; j < n && v[j].ts_ms / FORECAST_STEP_MS == slot; j++) {
			dt += v[j].ts_ms - v[i].ts_ms;
			sv += v[j].value;
			sy += y[j];
		}
		v[k].ts_ms = v[i].ts_ms + dt / (int64_t)(j - i);
		v[k].value = sv / (double)(j - i);
		y[k++] = sy / (double)(j - i);
		i = j;
	}
	return k;
}

/* ---- the linear model ---------------------------------------------------- */

struct model {
	int64_t t0_ms;      /* time origin: the last reading */
	double span_h;      /* fit span, hours (scales the level polynomial) */
	int level_cols;     /* 1 + level_order */
	size_t n_knots;     /* level hinges at -knot_h, -2 knot_h, ... */
	double knot_h;
	double hold_h;      /* the level's slope is kept this long ahead */
	double half_life_h; /* weights halve every half_life_h of age */
	size_t n_const;
	size_t idx[N_CONST];   /* into constituents[] */
	size_t p;           /* columns */
};

static void model_row(const struct model *m, int64_t ts_ms, double *row)
{
	double th = (double)(ts_ms - m->t0_ms) / (double)HOUR_MS;
	double tl = th < m->hold_h ? th : m->hold_h;
	double tau = tl / m->span_h, pw = 1;
	size_t c = 0;

	for (int k = 0; k < m->level_cols; k++, pw *= tau)
		row[c++] = pw;
	for (size_t k = 1; k <= m->n_knots; k++) {
		double kt = -(double)k * m->knot_h;
		row[c++] = tl > kt ? (tl - kt) / m->span_h : 0;
	}
	for (size_t k = 0; k < m->n_const; k++) {
		double w = constituents[m->idx[k]].deg_per_h * M_PI / 180.0;
		row[c++] = cos(w * th);
		row[c++] = sin(w * th);
	}
}

struct fit {
	gsl_vector *c;
	gsl_matrix *cov;
	double sd;   /* residual sd, transformed units */
	double tau;  /* integrated autocorrelation time, slots */
};

/* Rows folded into the triangle at a time (see solve()). */
#define QR_BLOCK 256

/*
 * Weighted least squares of y on the model's rows for v[0..n); weights
 * decay with age (half-life m->half_life_h; 0: equal weights), so the
 * level and the constituents follow the recent record. f->sd is the
 * weighted residual sd.
 *
 * In O(p^2) memory whatever n (30 days at 5 min were 2 n x p matrices,
 * 8 MiB): the weighted rows [sqrt(w) x | sqrt(w) y] are folded QR_BLOCK
 * at a time into a (p+1) x (p+1) triangle R (Householder QR of R stacked
 * on the block). X = QR has X's singular values and right singular
 * vectors, and its column norms, so the truncated SVD of R's p x p part
 * against its last column gives the same coefficients and (X'WX)^-1;
 * R's corner is the residual part no coefficient can reach.
 */
static int solve(const struct model *m, const struct forecast_sample *v,
		 const double *y, size_t n, struct fit *f)
{
	const size_t p = m->p, q = p + 1;
	gsl_matrix *A = gsl_matrix_calloc(q + QR_BLOCK, q);
	gsl_vector *tau = gsl_vector_alloc(q);
	gsl_matrix_view R = {0};
	gsl_vector_view z = {0};
	gsl_vector *ones = gsl_vector_alloc(p);
	gsl_multifit_linear_workspace *w = gsl_multifit_linear_alloc(p, p);
	double chisq, corner, row[PARAMS_MAX], sw = 0, sw2 = 0;
	size_t rank, i = 0;
	int ret = -ENOMEM;

	if (!A || !tau || !ones || !w)
		goto out;
	while (i < n) {
		size_t b = 0;

		/* rows q.. of A: the next block, weighted */
		for (; b < QR_BLOCK && i < n; b++, i++) {
			double age_h = (double)(m->t0_ms - v[i].ts_ms) / (double)HOUR_MS;
			double wi = m->half_life_h > 0 ? exp2(-age_h / m->half_life_h) : 1.0;
			double sq = sqrt(wi);

			model_row(m, v[i].ts_ms, row);
			for (size_t j = 0; j < p; j++)
				gsl_matrix_set(A, q + b, j, sq * row[j]);
			gsl_matrix_set(A, q + b, p, sq * y[i]);
			sw += wi;
			sw2 += wi * wi;
		}
		for (; b < QR_BLOCK; b++)
			for (size_t j = 0; j < q; j++)
				gsl_matrix_set(A, q + b, j, 0);
		if (gsl_linalg_QR_decomp(A, tau)) {
			ret = -EDOM;
			goto out;
		}
		/* keep R (rows 0..q, upper triangle); the reflectors go */
		for (size_t r = 0; r < q; r++)
			for (size_t j = 0; j < r; j++)
				gsl_matrix_set(A, r, j, 0);
	}
	gsl_vector_set_all(ones, 1.0);
	R = gsl_matrix_submatrix(A, 0, 0, p, p);
	z = gsl_matrix_subcolumn(A, p, 0, p);
	corner = gsl_matrix_get(A, p, p);
	/* Truncated SVD: columns are O(1), so a relative tolerance of 1e-8
	 * only cuts combinations the data cannot tell apart. */
	if (gsl_multifit_wlinear_tsvd(&R.matrix, ones, &z.vector, 1e-8, f->c, f->cov,
				      &chisq, &rank, w)) {
		ret = -EDOM;
		goto out;
	}
	chisq += corner * corner;
	/* Residual sd with the weights' effective sample size
	 * (sum w)^2 / sum w^2. GSL returns cov = (X'WX)^-1, as if the
	 * weights were inverse variances; scale it by the residual variance. */
	{
		double n_eff = sw * sw / sw2;
		double dof = n_eff > (double)p + 1 ? n_eff - (double)p : 1;

		f->sd = sqrt(chisq / sw * n_eff / dof);
		gsl_matrix_scale(f->cov, f->sd * f->sd);
	}
	ret = 0;
out:
	gsl_matrix_free(A);
	gsl_vector_free(tau);
	gsl_vector_free(ones);
	gsl_multifit_linear_free(w);
	return ret;
}

static double predict(const struct model *m, const struct fit *f, int64_t ts_ms,
		      double *var)
{
	double row[PARAMS_MAX], y = 0, q = 0;

	model_row(m, ts_ms, row);
	for (size_t i = 0; i < m->p; i++) {
		y += row[i] * gsl_vector_get(f->c, i);
		if (var)
			for (size_t j = 0; j < m->p; j++)
				q += row[i] * row[j] * gsl_matrix_get(f->cov, i, j);
	}
	if (var)
		*var = q;
	return y;
}

/*
 * Integrated autocorrelation time of the residuals r[0..n) of 15-minute
 * slots v[0..n): 1 + 2 sum_{k=1..TAU_LAGS} rho_k, with rho_k over the pairs
 * of slots k apart that both have data (so gaps do not count), clamped to
 * 1..TAU_LAGS. The residuals of a tidal fit are correlated for hours; the
 * parameter covariance of least squares, which assumes independent rows,
 * is multiplied by it (n / tau rows carry the information).
 */
#define TAU_LAGS 8 /* 2 hours */
static double resid_tau(const struct forecast_sample *v, const double *r, size_t n)
{
	double num[TAU_LAGS + 1] = {0}, den = 0, tau = 1;
	size_t cnt[TAU_LAGS + 1] = {0};

	for (size_t i = 0; i < n; i++) {
		int64_t si = v[i].ts_ms / FORECAST_STEP_MS;

		den += r[i] * r[i];
		for (size_t j = i + 1; j < n; j++) {
			int64_t k = v[j].ts_ms / FORECAST_STEP_MS - si;

			if (k > TAU_LAGS)
				break;
			if (k >= 1) {
				num[k] += r[i] * r[j];
				cnt[k]++;
			}
		}
	}
	if (den <= 0 || n < 2)
		return 1;
	den /= (double)n;
	for (int k = 1; k <= TAU_LAGS; k++) {
		double rho = cnt[k] ? num[k] / (double)cnt[k] / den : 0;

		if (rho <= 0)
			break; /* the first non-positive lag ends the sum */
		tau += 2 * rho;
	}
	return tau > TAU_LAGS ? TAU_LAGS : tau;
}

/* "harmonic M2 S2 N2 K1 O1 M4 + 22 compound, trend held after 12 h,
 * weights half-life 2 d, log(S+0.05)" */
static void model_name(const struct model *m, const struct forecast_params *p,
		       char *buf, size_t len)
{
	static const char *const main_terms[] = {"M2", "S2", "N2", "K1", "O1", "M4"};
	static const char *const level[] = {"level", "trend", "quadratic trend"};
	size_t pos = 0, n_main = 0;
	char tr[32] = "";

	pos += (size_t)snprintf(buf, len, "harmonic");
	for (size_t t = 0; t < AGRI_ARRAY_SIZE(main_terms); t++)
		for (size_t k = 0; k < m->n_const; k++)
			if (!strcmp(constituents[m->idx[k]].name, main_terms[t]) && pos < len) {
				pos += (size_t)snprintf(buf + pos, len - pos, " %s", main_terms[t]);
				n_main++;
			}
	if (p->transform == FORECAST_LOG)
		snprintf(tr, sizeof(tr), ", log(S+%g)", p->offset);
	else if (p->transform == FORECAST_SQRT)
		snprintf(tr, sizeof(tr), ", sqrt(S+%g)", p->offset);
	if (pos < len)
		pos += (size_t)snprintf(buf + pos, len - pos, " + %zu compound + %s%s",
					m->n_const - n_main, level[m->level_cols - 1],
					m->n_knots ? " spline" : "");
	if (pos < len && m->half_life_h > 0)
		pos += (size_t)snprintf(buf + pos, len - pos, ", half-life %g d",
					m->half_life_h / 24);
	if (pos < len)
		snprintf(buf + pos, len - pos, "%s", tr);
}

/* The data a fit uses (forecast_fit()'s first phase). */
struct fit_data {
	struct forecast_sample *v; /* sorted, within the window, stuck runs dropped */
	size_t n;
	size_t n_stuck;
	int64_t until;             /* the last reading's ts */
	double span_d, coverage;
};

/* Checks and copies s, sorts it, keeps the fit window (fit_days_max),
 * drops stuck runs and starts where coverage is good enough. Returns 0,
 * -EINVAL, -ENODATA, -E2BIG or -ENOMEM (with why). */
static int fit_prepare(const struct forecast_sample *s, size_t n, const struct forecast_params *p,
		       struct fit_data *d, char *why, size_t why_len)
{
	size_t lo = 0, first = 0;
	int64_t min_ms;
	int ret;

	if (!params_ok(p) || (!s && n)) {
		set_why(why, why_len, "bad forecast parameters");
		return -EINVAL;
	}
	if (n == 0) {
		set_why(why, why_len, "too little data: no readings");
		return -ENODATA;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(s[i].value)) {
			set_why(why, why_len, "non-finite reading");
			return -EINVAL;
		}
	}
	if (!(d->v = malloc(n * sizeof(*d->v))))
		return -ENOMEM;
	memcpy(d->v, s, n * sizeof(*d->v));
	qsort(d->v, n, sizeof(*d->v), cmp_sample);
	min_ms = d->v[n - 1].ts_ms - (int64_t)(p->fit_days_max * (double)DAY_MS);
	while (lo < n && d->v[lo].ts_ms < min_ms)
		lo++;
	d->n = n - lo;
	if (d->n > FORECAST_SAMPLES_MAX) {
		set_why(why, why_len, "too many readings in the fit window (%zu > %d)",
			d->n, FORECAST_SAMPLES_MAX);
		return -E2BIG;
	}
	memmove(d->v, d->v + lo, d->n * sizeof(*d->v));
	d->n = drop_stuck(d->v, d->n, (int64_t)(p->stuck_s * 1000.0), &d->n_stuck);
	if (d->n < 2) {
		set_why(why, why_len, "too little data: %zu readings%s", d->n,
			d->n_stuck ? " after dropping a stuck sensor's" : "");
		return -ENODATA;
	}
	d->until = d->v[d->n - 1].ts_ms;
	if ((ret = pick_start(d->v, d->n, p->min_coverage, &first, &d->coverage)))
		return ret;
	d->span_d = (double)(d->until - d->v[first].ts_ms) / (double)DAY_MS;
	if (d->span_d < p->fit_days_min) {
		double all_d = (double)(d->until - d->v[0].ts_ms) / (double)DAY_MS;

		if (all_d >= p->fit_days_min)
			set_why(why, why_len,
				"too little data: %.1f days with %.0f%% coverage in the last %.1f days, need %.1f days",
				d->span_d, p->min_coverage * 100, all_d, p->fit_days_min);
		else
			set_why(why, why_len, "too little data: %.1f days of readings, need %.1f",
				all_d, p->fit_days_min);
		return -ENODATA;
	}
	memmove(d->v, d->v + first, (d->n - first) * sizeof(*d->v));
	d->n -= first;
	return 0;
}

/* The model's columns for this much data: level (and its knots), the
 * tidal constituents (fewer for a short span). */
static void fit_model(struct model *m, const struct forecast_params *p, const struct fit_data *d,
		      struct forecast *out)
{
	m->t0_ms = d->until;
	m->span_h = d->span_d * 24.0;
	m->level_cols = 1 + p->level_order;
	out->reduced = d->span_d < p->full_days;
	for (size_t k = 0; k < N_CONST; k++)
		if (!(out->reduced && constituents[k].full_only))
			m->idx[m->n_const++] = k;
	m->hold_h = p->level_hold_h;
	m->half_life_h = p->half_life_days * 24;
	if (p->level_knot_days > 0) {
		m->knot_h = p->level_knot_days * 24;
		while (m->n_knots < KNOTS_MAX &&
		       (double)(m->n_knots + 1) * m->knot_h < m->span_h - m->knot_h / 2)
			m->n_knots++;
	}
	m->p = (size_t)m->level_cols + m->n_knots + 2 * m->n_const;
}

/* Solves, then once more without the outliers (recent slots further than
 * outlier_sd residual sds). *n shrinks by *n_out. */
static int fit_solve(const struct model *m, const struct forecast_params *p,
		     struct forecast_sample *v, double *y, size_t *n, int64_t until,
		     struct fit *f, size_t *n_out)
{
	size_t k = 0;
	int ret = solve(m, v, y, *n, f);

	if (ret || p->outlier_sd <= 0 || f->sd <= 0)
		return ret;
	for (size_t i = 0; i < *n; i++) {
		double e = y[i] - predict(m, f, v[i].ts_ms, NULL);
		bool old = m->half_life_h > 0 &&
			   (double)(until - v[i].ts_ms) > 3 * m->half_life_h * HOUR_MS;

		/* old slots, weighed little, are not judged by the recent
		 * residual sd */
		if (old || fabs(e) <= p->outlier_sd * f->sd) {
			v[k] = v[i];
			y[k++] = y[i];
		}
	}
	*n_out = *n - k;
	if (!*n_out)
		return 0;
	*n = k;
	return solve(m, v, y, *n, f);
}

/* Residuals: their autocorrelation (transformed) into f->tau, their sd in
 * the reading's unit into out. */
static void fit_residuals(const struct model *m, const struct forecast_params *p,
			  const struct forecast_sample *v, const double *y, double *r, size_t n,
			  struct fit *f, struct forecast *out)
{
	double ss = 0;

	for (size_t i = 0; i < n; i++) {
		double yh = predict(m, f, v[i].ts_ms, NULL);
		double e = v[i].value - inv(p, yh);

		r[i] = y[i] - yh;
		ss += e * e;
	}
	f->tau = resid_tau(v, r, n);
	out->residual_sd = sqrt(ss / (double)(n > m->p ? n - m->p : 1));
}

/* The next 72 h at 15-minute steps after until, with their bands. */
static void fit_points(const struct model *m, const struct fit *f,
		       const struct forecast_params *p, int64_t until, struct forecast *out)
{
	out->n_points = FORECAST_POINTS;
	for (size_t k = 0; k < FORECAST_POINTS; k++) {
		int64_t t = (until / FORECAST_STEP_MS + 1 + (int64_t)k) * FORECAST_STEP_MS;
		double var, yh = predict(m, f, t, &var);
		double half = p->z * sqrt(f->sd * f->sd + f->tau * var);
		struct forecast_point *pt = &out->points[k];

		pt->ts_ms = t;
		pt->value = inv(p, yh);
		pt->lo = inv(p, yh - half);
		pt->hi = inv(p, yh + half);
		if (p->transform == FORECAST_LINEAR && !p->signed_values) /* clipped at 0 */
			pt->lo = pt->lo < 0 ? 0 : pt->lo;
	}
}

int forecast_fit(const struct forecast_sample *s, size_t n,
		 const struct forecast_params *p, struct forecast *out,
		 char *why, size_t why_len)
{
	struct fit_data d = {0};
	double *y = NULL, *r = NULL;
	struct fit f = {0};
	struct model m = {0};
	size_t n_out = 0, n_read;
	int ret;

	if ((ret = fit_prepare(s, n, p, &d, why, why_len)))
		goto out;
	fit_model(&m, p, &d, out);
	y = malloc(d.n * sizeof(*y));
	r = malloc(d.n * sizeof(*r));
	f.c = gsl_vector_alloc(m.p);
	f.cov = gsl_matrix_alloc(m.p, m.p);
	if (!y || !r || !f.c || !f.cov) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < d.n; i++)
		y[i] = fwd(p, d.v[i].value);
	n_read = d.n;
	d.n = bin_slots(d.v, y, d.n);
	if (d.n < 4 * m.p) {
		set_why(why, why_len, "too little data: %zu 15-minute slots for %zu parameters",
			d.n, m.p);
		ret = -ENODATA;
		goto out;
	}
	if ((ret = fit_solve(&m, p, d.v, y, &d.n, d.until, &f, &n_out)))
		goto out;
	fit_residuals(&m, p, d.v, y, r, d.n, &f, out);
	out->data_from_ms = d.v[0].ts_ms;
	out->data_until_ms = d.until;
	out->fit_days = d.span_d;
	out->coverage = d.coverage;
	out->resid_sd_t = f.sd;
	out->n_used = n_read;
	out->n_slots = d.n;
	out->n_stuck = d.n_stuck;
	out->n_outliers = n_out;
	out->n_params = m.p;
	model_name(&m, p, out->model, sizeof(out->model));
	out->n_turns = 0;
	out->note[0] = '\0';
	fit_points(&m, &f, p, d.until, out);
	ret = forecast_windows(out, p);
	if (ret == -ENOSPC)
		ret = 0; /* truncated windows are still a forecast */
out:
	if (f.c)
		gsl_vector_free(f.c);
	if (f.cov)
		gsl_matrix_free(f.cov);
	free(r);
	free(y);
	free(d.v);
	return ret;
}

/* ---- intake windows ------------------------------------------------------ */

/* Time where hi crosses level between points a and b (linear). */
static int64_t crossing(const struct forecast_point *a,
			const struct forecast_point *b, double level)
{
	double d = b->hi - a->hi, f = d != 0 ? (level - a->hi) / d : 0.5;

	if (f < 0)
		f = 0;
	if (f > 1)
		f = 1;
	return a->ts_ms + (int64_t)llround(f * (double)(b->ts_ms - a->ts_ms));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int forecast_windows(struct forecast *f, const struct forecast_params *p)
{
	double thr[FORECAST_THRESHOLDS_MAX];
	size_t nt = p->n_thresholds < FORECAST_THRESHOLDS_MAX ? p->n_thresholds
							       : FORECAST_THRESHOLDS_MAX;
	int64_t min_ms = (int64_t)(p->min_window_s * 1000.0);
	const struct forecast_point *pt = f->points;
	size_t np = f->n_points;

	f->n_windows = 0;
	memcpy(thr, p->thresholds, nt * sizeof(*thr));
	qsort(thr, nt, sizeof(*thr), cmp_double);
	for (size_t t = 0; t < nt; t++) {
		double level = thr[t] - (p->margin_abs + p->margin_rel * thr[t]);
		size_t i = 0;

		while (i < np) {
			size_t j;
			int64_t from, to;

			if (!(pt[i].hi < level)) {
				i++;
				continue;
			}
			for (j = i; j + 1 < np && pt[j + 1].hi < level; j++)
				;
			from = i == 0 ? pt[0].ts_ms : crossing(&pt[i - 1], &pt[i], level);
			to = j + 1 == np ? pt[j].ts_ms : crossing(&pt[j], &pt[j + 1], level);
			i = j + 1;
			if (to - from < min_ms)
				continue;
			if (f->n_windows == FORECAST_WINDOWS_MAX)
				return -ENOSPC;
			f->windows[f->n_windows++] = (struct forecast_window){
				.below = thr[t], .from_ms = from, .to_ms = to};
		}
	}
	return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Numbers are rounded to 4 significant decimals of g/L (0.1 mg/L): the
 * model is not better than that and the document stays small. */
static void num4(struct agri_buf *w, double d)
{
	agri_buf_json_num(w, isfinite(d) ? round(d * 1e4) / 1e4 : d);
}

/* The document's length, or the error (and an empty buffer). */
static int doc_end(struct agri_buf *w)
{
	if (w->err && w->cap)
		w->p[0] = '\0';
	return agri_buf_end(w);
}

int forecast_encode(const struct forecast *f, const char *station,
		    const char *metric, const char *unit, int64_t made_at_ms,
		    char *buf, size_t len)
{
	struct agri_buf w;

	if (!buf || !len || !f || !station || !metric || !unit ||
	    f->n_points > FORECAST_POINTS || f->n_windows > FORECAST_WINDOWS_MAX)
		return -EINVAL;
	agri_buf_init(&w, buf, len);
	agri_buf_puts(&w, "{\"v\":1,\"station\":");
	agri_buf_json_str(&w, station);
	agri_buf_puts(&w, ",\"metric\":");
	agri_buf_json_str(&w, metric);
	agri_buf_puts(&w, ",\"unit\":");
	agri_buf_json_str(&w, unit);
	agri_buf_puts(&w, ",\"made_at\":");
	agri_buf_json_time(&w, made_at_ms);
	agri_buf_puts(&w, ",\"from_data_until\":");
	agri_buf_json_time(&w, f->data_until_ms);
	agri_buf_puts(&w, ",\"model\":");
	agri_buf_json_str(&w, f->model);
	agri_buf_puts(&w, ",\"fit_days\":");
	num4(&w, round(f->fit_days * 100) / 100);
	agri_buf_puts(&w, ",\"residual_sd\":");
	num4(&w, f->residual_sd);
	agri_buf_puts(&w, ",\"points\":[");
	for (size_t i = 0; i < f->n_points; i++) {
		const struct forecast_point *pt = &f->points[i];

		agri_buf_puts(&w, i ? ",{\"ts\":" : "{\"ts\":");
		agri_buf_json_time(&w, pt->ts_ms);
		agri_buf_puts(&w, ",\"value\":");
		num4(&w, pt->value);
		agri_buf_puts(&w, ",\"lo\":");
		num4(&w, pt->lo);
		agri_buf_puts(&w, ",\"hi\":");
		num4(&w, pt->hi);
		agri_buf_puts(&w, "}");
	}
	agri_buf_puts(&w, "],\"windows\":[");
	for (size_t i = 0; i < f->n_windows; i++) {
		const struct forecast_window *wi = &f->windows[i];

		agri_buf_puts(&w, i ? ",{\"below\":" : "{\"below\":");
		num4(&w, wi->below);
		agri_buf_puts(&w, ",\"from\":");
		agri_buf_json_time(&w, wi->from_ms);
		agri_buf_puts(&w, ",\"to\":");
		agri_buf_json_time(&w, wi->to_ms);
		if (wi->sluice) {
			agri_buf_puts(&w, ",\"sluice\":true");
			if (wi->level_gated) {
				agri_buf_puts(&w, ",\"min_level_m\":");
				num4(&w, wi->min_level_m);
			}
		}
		if (forecast_tide_name(wi->tide)) {
			agri_buf_puts(&w, ",\"tide\":");
			agri_buf_json_str(&w, forecast_tide_name(wi->tide));
		}
		agri_buf_puts(&w, "}");
	}
	agri_buf_puts(&w, "]");
	if (f->note[0]) {
		agri_buf_puts(&w, ",\"note\":");
		agri_buf_json_str(&w, f->note);
	}
	if (f->n_turns && f->n_turns <= FORECAST_TURNS_MAX) {
		agri_buf_puts(&w, ",\"tides\":[");
		for (size_t i = 0; i < f->n_turns; i++) {
			agri_buf_puts(&w, i ? ",{\"ts\":" : "{\"ts\":");
			agri_buf_json_time(&w, f->turns[i].ts_ms);
			agri_buf_puts(&w, ",\"stage\":");
			agri_buf_json_str(&w, forecast_tide_name(f->turns[i].stage));
			agri_buf_puts(&w, ",\"level_m\":");
			num4(&w, f->turns[i].level_m);
			agri_buf_puts(&w, "}");
		}
		agri_buf_puts(&w, "]");
	}
	agri_buf_puts(&w, "}");
	return doc_end(&w);
}

int forecast_encode_error(const char *why, char *buf, size_t len)
{
	struct agri_buf w;

	if (!buf || !len || !why)
		return -EINVAL;
	agri_buf_init(&w, buf, len);
	agri_buf_puts(&w, "{\"error\":");
	agri_buf_json_str(&w, why);
	agri_buf_puts(&w, "}");
	return doc_end(&w);
}
