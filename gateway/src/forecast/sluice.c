/*
 * Sluice windows and tide stages (docs/forecast.md "Sluices and tides"):
 * gravity intake through a sluice needs fresh enough water and high
 * enough water at once, and operators close below their own limit (often
 * 0.7 g/L, not the ladder's 1). A water-level forecast is fitted with the
 * same harmonic model as salinity (linear, signed: a level on its datum
 * may be negative); this file combines it with the salinity forecast.
 * Both forecasts' points sit on the same 15-minute grid, so a level at a
 * salinity point is looked up, not interpolated.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "forecast/model.h"

#define TURN_MS (60 * 60 * 1000LL) /* high/low water: within an hour of the turn */

void forecast_params_level(struct forecast_params *p)
{
	forecast_params_default(p);
	p->transform = FORECAST_LINEAR;
	p->offset = 0;
	p->signed_values = true;
	p->n_thresholds = 0;
}

/* The index of the level point at ts (on the grid), or -1. */
static long level_index(const struct forecast *level, int64_t ts)
{
	int64_t k;

	if (!level || level->n_points == 0 || ts < level->points[0].ts_ms)
		return -1;
	k = (ts - level->points[0].ts_ms) / FORECAST_STEP_MS;
	if ((ts - level->points[0].ts_ms) % FORECAST_STEP_MS != 0 || k >= (int64_t)level->n_points)
		return -1;
	return (long)k;
}

/* The nearest point index to ts, or -1. A ts up to an hour before the
 * first point is the first point's: the level and salinity forecasts are
 * refitted apart, and a salinity window that opens "now" can start a few
 * minutes before a level forecast made just after it. */
static long level_index_near(const struct forecast *level, int64_t ts)
{
	int64_t k;

	if (!level || level->n_points == 0 || ts < level->points[0].ts_ms - TURN_MS)
		return -1;
	if (ts < level->points[0].ts_ms)
		return 0;
	k = (ts - level->points[0].ts_ms + FORECAST_STEP_MS / 2) / FORECAST_STEP_MS;
	return k >= (int64_t)level->n_points ? -1 : (long)k;
}

enum forecast_tide forecast_tide_stage(const struct forecast *level, int64_t ts_ms)
{
	long k = level_index_near(level, ts_ms), n, span = TURN_MS / FORECAST_STEP_MS;
	const struct forecast_point *pt;

	if (k < 0)
		return FORECAST_TIDE_UNKNOWN;
	n = (long)level->n_points;
	pt = level->points;
	/* A turn (a local maximum or minimum of the forecast) within an hour. */
	for (long d = 0; d <= span; d++) {
		for (int side = -1; side <= 1; side += 2) {
			long j = k + side * d;

			if (j <= 0 || j >= n - 1)
				continue;
			if (pt[j].value >= pt[j - 1].value && pt[j].value > pt[j + 1].value)
				return FORECAST_TIDE_HIGH;
			if (pt[j].value <= pt[j - 1].value && pt[j].value < pt[j + 1].value)
				return FORECAST_TIDE_LOW;
		}
	}
	if (n < 2)
		return FORECAST_TIDE_UNKNOWN;
	if (k == 0)
		return pt[1].value >= pt[0].value ? FORECAST_TIDE_RISING : FORECAST_TIDE_FALLING;
	return pt[k].value >= pt[k - 1].value ? FORECAST_TIDE_RISING : FORECAST_TIDE_FALLING;
}

const char *forecast_tide_name(enum forecast_tide t)
{
	switch (t) {
	case FORECAST_TIDE_RISING:
		return "rising";
	case FORECAST_TIDE_HIGH:
		return "high";
	case FORECAST_TIDE_FALLING:
		return "falling";
	case FORECAST_TIDE_LOW:
		return "low";
	default:
		return NULL;
	}
}

struct gate {
	const struct forecast *sal, *level;
	double limit;     /* salinity hi must stay below */
	bool gated;
	double min_level; /* level lo must stay above */
};

/* Whether intake is open at salinity point i. */
static bool open_at(const struct gate *g, size_t i)
{
	long k;

	if (!(g->sal->points[i].hi < g->limit))
		return false;
	if (!g->gated)
		return true;
	k = level_index(g->level, g->sal->points[i].ts_ms);
	return k >= 0 && g->level->points[k].lo > g->min_level;
}

/* Fraction in [0, 1] from x0 to x1 where a value goes from y0 to y1
 * across y (linear; 0.5 when flat). */
static double frac(double y0, double y1, double y)
{
	double d = y1 - y0, f = d != 0 ? (y - y0) / d : 0.5;

	return f < 0 ? 0 : f > 1 ? 1 : f;
}

/*
 * Where between closed point c and open point o intake opens or closes:
 * the crossing of whichever condition fails at c nearest to o (both can).
 */
static int64_t edge(const struct gate *g, size_t c, size_t o)
{
	const struct forecast_point *pc = &g->sal->points[c], *po = &g->sal->points[o];
	double best = 1; /* fraction from o towards c */
	long kc, ko;

	if (!(pc->hi < g->limit))
		best = frac(po->hi, pc->hi, g->limit);
	if (g->gated) {
		kc = level_index(g->level, pc->ts_ms);
		ko = level_index(g->level, po->ts_ms);
		if (kc < 0 || ko < 0) {
			best = 0; /* uncovered: closed at the open point */
		} else if (!(g->level->points[kc].lo > g->min_level)) {
			double f = frac(g->level->points[ko].lo, g->level->points[kc].lo, g->min_level);

			best = f < best ? f : best;
		}
	}
	return po->ts_ms + (int64_t)llround(best * (double)(pc->ts_ms - po->ts_ms));
}

static int cmp_window(const void *a, const void *b)
{
	const struct forecast_window *x = a, *y = b;

	if (x->below != y->below)
		return x->below < y->below ? -1 : 1;
	if (x->sluice != y->sluice)
		return x->sluice ? 1 : -1;
	return x->from_ms < y->from_ms ? -1 : x->from_ms > y->from_ms;
}

void forecast_tide_label(struct forecast *sal, const struct forecast *level)
{
	const struct forecast_point *pt = level ? level->points : NULL;
	int64_t from = sal->n_points ? sal->points[0].ts_ms : 0;
	int64_t to = sal->n_points ? sal->points[sal->n_points - 1].ts_ms : 0;

	for (size_t i = 0; i < sal->n_windows; i++)
		sal->windows[i].tide = forecast_tide_stage(level, sal->windows[i].from_ms);
	sal->n_turns = 0;
	for (size_t j = 1; pt && j + 1 < level->n_points; j++) {
		bool high = pt[j].value >= pt[j - 1].value && pt[j].value > pt[j + 1].value;
		bool low = pt[j].value <= pt[j - 1].value && pt[j].value < pt[j + 1].value;

		if ((!high && !low) || pt[j].ts_ms < from || pt[j].ts_ms > to)
			continue;
		if (sal->n_turns == FORECAST_TURNS_MAX)
			break;
		sal->turns[sal->n_turns++] = (struct forecast_turn){
			.ts_ms = pt[j].ts_ms, .stage = high ? FORECAST_TIDE_HIGH : FORECAST_TIDE_LOW,
			.level_m = pt[j].value};
	}
}

int forecast_sluice_windows(struct forecast *sal, const struct forecast *level,
			    double below_g_l, double min_level_m,
			    const struct forecast_params *p)
{
	struct gate g = {
		.sal = sal, .level = level,
		.limit = below_g_l - (p->margin_abs + p->margin_rel * below_g_l),
		.gated = level && level->n_points && isfinite(min_level_m),
		.min_level = min_level_m,
	};
	int64_t min_ms = (int64_t)(p->min_window_s * 1000.0);
	size_t np = sal->n_points, i = 0;
	int rc = 0;

	if (!(below_g_l > 0) || !isfinite(below_g_l))
		return -EINVAL;
	while (i < np && rc == 0) {
		size_t j;
		int64_t from, to;

		if (!open_at(&g, i)) {
			i++;
			continue;
		}
		for (j = i; j + 1 < np && open_at(&g, j + 1); j++)
			;
		from = i == 0 ? sal->points[0].ts_ms : edge(&g, i - 1, i);
		to = j + 1 == np ? sal->points[j].ts_ms : edge(&g, j + 1, j);
		i = j + 1;
		if (to - from < min_ms)
			continue;
		if (sal->n_windows == FORECAST_WINDOWS_MAX) {
			rc = -ENOSPC;
			break;
		}
		sal->windows[sal->n_windows++] = (struct forecast_window){
			.below = below_g_l, .from_ms = from, .to_ms = to, .sluice = true,
			.level_gated = g.gated, .min_level_m = g.gated ? min_level_m : 0};
	}
	if (level)
		forecast_tide_label(sal, level);
	qsort(sal->windows, sal->n_windows, sizeof(sal->windows[0]), cmp_window);
	return rc;
}
