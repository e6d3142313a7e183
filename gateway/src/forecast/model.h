/*
 * Salinity forecasts and pest advisories (docs/interfaces.md §13, docs/forecast.md):
 * the pure math behind the gateway's forecast worker. No I/O, no SQLite, no
 * clock, no globals: the caller hands in one station's ok-quality readings
 * and "now", and gets back a forecast (72 h at 15-minute steps with a band
 * and the intake windows of each threshold) or the reason there is none.
 *
 * Model: harmonic least squares (GSL) on a transform of salinity over the
 * station's trailing window; see forecast_fit(). Advisories turn a detected
 * light-trap peak into the sowing and hatch windows of docs/delta.md §3.
 * Every function is reentrant; call them from any thread (the forecast
 * worker, not the ingest thread: a 30-day fit takes a few milliseconds).
 */
#ifndef AGRI_FORECAST_H
#define AGRI_FORECAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FORECAST_STEP_MS (15 * 60 * 1000LL)
#define FORECAST_POINTS 288 /* 72 h at 15 minutes */
#define FORECAST_THRESHOLDS_MAX 8
#define FORECAST_WINDOWS_MAX 128 /* all thresholds together */
#define FORECAST_SAMPLES_MAX 200000 /* more in the fit window: -E2BIG */
#define FORECAST_WHY_MAX 160

struct forecast_sample {
	int64_t ts_ms;
	double value; /* g/L */
};

enum forecast_transform {
	FORECAST_LOG = 0, /* y = log(S + offset): the default (backtests best) */
	FORECAST_SQRT,    /* y = sqrt(S + offset) */
	FORECAST_LINEAR,  /* y = S */
};

/* Knobs, all with defaults from forecast_params_default() (chosen by the
 * backtest, docs/forecast.md). */
struct forecast_params {
	double fit_days_max;    /* trailing window of readings used (30) */
	double fit_days_min;    /* less data than this: no forecast (3) */
	double full_days;       /* below: reduced model, no S2/N2/compound (15) */
	double min_coverage;    /* share of 15-min slots with data (0.70) */
	double stuck_s;         /* runs of identical values longer: dropped (7200) */
	double outlier_sd;      /* refit without |residual| > this * sd (5) */
	int level_order;        /* polynomial level: 0 constant, 1 linear, 2 quadratic (1) */
	double level_knot_days; /* piecewise-linear level, knots this far apart (0: none) */
	double level_hold_h;    /* the level's slope is extrapolated this long, then held (12) */
	double half_life_days;  /* weights of readings halve with this age (2; 0: equal) */
	enum forecast_transform transform; /* FORECAST_LOG */
	double offset;          /* g/L added before the transform (0.05) */
	double z;               /* band half-width in sd (1.96) */
	/* Intake windows: hi < threshold - (margin_abs + margin_rel * threshold) */
	double thresholds[FORECAST_THRESHOLDS_MAX];
	size_t n_thresholds;    /* default 4: 0.5, 1, 2, 4 g/L */
	double margin_abs;      /* g/L (0) */
	double margin_rel;      /* share of the threshold (0.05) */
	double min_window_s;    /* shorter windows are not reported (1800) */
	/* Values may go below 0 (a water level on its datum, m): no clip at 0.
	 * FORECAST_LINEAR only. */
	bool signed_values;
};

struct forecast_point {
	int64_t ts_ms;
	double value, lo, hi; /* g/L */
};

/* The tide's stage at a time, from a water-level forecast
 * (forecast_tide_stage()): high and low water within an hour of the turn. */
enum forecast_tide {
	FORECAST_TIDE_UNKNOWN = 0, /* no level forecast covers it */
	FORECAST_TIDE_RISING,
	FORECAST_TIDE_HIGH,
	FORECAST_TIDE_FALLING,
	FORECAST_TIDE_LOW,
};

struct forecast_window {
	double below;   /* the threshold, g/L */
	int64_t from_ms;
	int64_t to_ms;
	/* A sluice's window (forecast_sluice_windows()): salinity below the
	 * sluice's own limit and, when level_gated, the water level's lower
	 * band above min_level_m for gravity intake. */
	bool sluice;
	bool level_gated;
	double min_level_m;
	enum forecast_tide tide; /* at from_ms; UNKNOWN without a level forecast */
};

/* High or low water of a level forecast (forecast_tide_label()). */
#define FORECAST_TURNS_MAX 24
struct forecast_turn {
	int64_t ts_ms;
	enum forecast_tide stage; /* HIGH or LOW */
	double level_m;
};

struct forecast {
	char model[160];       /* "harmonic M2 S2 N2 K1 O1 M4 + 22 compound + trend, ..." */
	bool reduced;          /* fit span < full_days: no S2/N2 separation */
	int64_t data_from_ms;  /* first reading used */
	int64_t data_until_ms; /* last reading used (points start after it) */
	double fit_days;       /* data_until - data_from, days */
	double coverage;       /* share of 15-min slots with data */
	double residual_sd;    /* g/L: sd of 15-minute means about the fit */
	double resid_sd_t;     /* in transformed units */
	size_t n_used;         /* readings in the fit */
	size_t n_slots;        /* 15-minute means fitted (rows of the fit) */
	size_t n_stuck;        /* readings dropped as a stuck sensor */
	size_t n_outliers;     /* readings dropped as outliers */
	size_t n_params;
	size_t n_points;       /* FORECAST_POINTS */
	struct forecast_point points[FORECAST_POINTS];
	size_t n_windows;
	struct forecast_window windows[FORECAST_WINDOWS_MAX];
	/* Why a sluice's windows are missing ("" when none are), e.g. no
	 * water-level forecast to gate them on. */
	char note[FORECAST_WHY_MAX];
	/* The tides over the points, from a level forecast (0 without). */
	size_t n_turns;
	struct forecast_turn turns[FORECAST_TURNS_MAX];
};

void forecast_params_default(struct forecast_params *p);

/*
 * Fits and forecasts. s[0..n) are one station's ok-quality salinity
 * readings in any order (sorted copies are made; duplicates are fine).
 * Only readings in the trailing fit_days_max before the newest one are
 * used; runs of identical values lasting more than stuck_s are dropped
 * first. Writes *out on success and returns 0. Returns -ENODATA with a
 * reason in why (e.g. "too little data: 2.1 days of readings, need 3.0")
 * when there is too little or too patchy data, -EINVAL for bad parameters
 * or non-finite values, -E2BIG for more than FORECAST_SAMPLES_MAX readings
 * in the window, -ENOMEM. why may be NULL. Allocates only temporaries.
 */
int forecast_fit(const struct forecast_sample *s, size_t n,
		 const struct forecast_params *p, struct forecast *out,
		 char *why, size_t why_len);

/*
 * (Re)computes f->windows from f->points for the thresholds and margins in
 * p: maximal periods where the band's upper edge (hi) stays below
 * threshold - margin, with the crossing times interpolated between points,
 * windows shorter than min_window_s dropped. Sorted by threshold, then
 * time. A window open at the first point starts at it; one open at the
 * last point ends at it. Returns 0 or -ENOSPC (windows truncated).
 */
int forecast_windows(struct forecast *f, const struct forecast_params *p);

/*
 * Encodes the §13 forecast document. made_at_ms is the caller's clock.
 * Returns the length (excluding the NUL), -ENOSPC, or -EINVAL (bad
 * strings, non-finite numbers). About 30 KiB fits any forecast.
 */
int forecast_encode(const struct forecast *f, const char *station,
		    const char *metric, const char *unit, int64_t made_at_ms,
		    char *buf, size_t len);

/* ---- sluices and tides (sluice.c) -------------------------------------- */

/* forecast_params for a water level (m on its datum): linear, signed, no
 * thresholds; the rest as the salinity defaults. */
void forecast_params_level(struct forecast_params *p);

/* The tide's stage at ts_ms on level's points (high or low water within
 * an hour of a turn, else rising or falling); UNKNOWN outside them. */
enum forecast_tide forecast_tide_stage(const struct forecast *level, int64_t ts_ms);

/* "rising" "high" "falling" "low", or NULL for UNKNOWN. */
const char *forecast_tide_name(enum forecast_tide t);

/*
 * Adds to sal the windows of one sluice: the band's upper edge below
 * below_g_l minus the margins of p and, with a level forecast and a
 * finite min_level_m, the level's lower band above min_level_m (gravity
 * intake needs both; a time no level point covers is closed). Then
 * names the tide stage of every window of sal from level (when given)
 * and sorts them by threshold, then time. level may be NULL (salinity
 * only). Returns 0 or -ENOSPC (windows truncated).
 */
int forecast_sluice_windows(struct forecast *sal, const struct forecast *level,
			    double below_g_l, double min_level_m,
			    const struct forecast_params *p);

/* Names the tide stage at each window's start of sal from level, and
 * lists level's high and low waters over sal's points in sal->turns. */
void forecast_tide_label(struct forecast *sal, const struct forecast *level);

/* {"error":"<why>"}: the 404 body when there is no forecast. */
int forecast_encode_error(const char *why, char *buf, size_t len);

/* ---- pest advisories ---------------------------------------------------- */

/* Biology (docs/delta.md §3), in local days after the peak night's date. */
struct advisory_params {
	int sow_from_d;       /* first sowing day (1: the day after the peak) */
	int sow_to_d;         /* last sowing day (7) */
	int hatch_from_d;     /* next generation hatches from (10) */
	int hatch_to_d;       /* ... to, inclusive (12) */
	int64_t utc_offset_ms; /* local time (Vietnam: +7 h) */
};

#define ADVISORY_ID_MAX 128
#define ADVISORY_STATION_MAX 64
#define ADVISORY_MESSAGE_MAX 1024

struct advisory {
	char id[ADVISORY_ID_MAX];        /* "sow_after_peak/<station>/<YYYY-MM-DD>" */
	char station[ADVISORY_STATION_MAX];
	char kind[32];                   /* "sow_after_peak" */
	int64_t peak_at_ms;              /* as given */
	int64_t sow_from_ms, sow_to_ms;  /* local midnights; to is exclusive */
	int64_t hatch_from_ms, hatch_to_ms;
	char message[ADVISORY_MESSAGE_MAX]; /* Vietnamese, then " / ", English */
};

void advisory_params_default(struct advisory_params *p);

/*
 * Builds the advisory for a light-trap peak detected at station on the
 * night containing peak_at_ms (its local date is the peak date D): sowing
 * from the start of D + sow_from_d to the end of D + sow_to_d, hatch from
 * the start of D + hatch_from_d to the end of D + hatch_to_d (local
 * midnights, as UTC instants). The id depends only on station and D, so
 * storing advisories by id makes a re-detected peak idempotent. Returns 0,
 * or -EINVAL (bad station or parameters: need 0 <= from <= to).
 */
int advisory_make(const char *station, int64_t peak_at_ms,
		  const struct advisory_params *p, struct advisory *out);

/* {"id","station","kind","peak_at","sow_from","sow_to","hatch_from",
 * "hatch_to","message"}. Returns the length, -ENOSPC or -EINVAL. */
int advisory_encode(const struct advisory *a, char *buf, size_t len);

#endif
