/*
 * A probe that drifts (docs/gateway.md "Drift"): a conductivity cell that
 * fouls reads lower and lower over days, and no single reading shows it —
 * the station's own checks (dry, stuck, full scale) cannot. The gateway
 * compares each site's salinity, a level per tidal day, with that of the stations
 * named as its neighbours (sites[].neighbours in gateway.json): when the
 * ratio to every neighbour with data has fallen steadily by drift.fall_pct
 * or more over drift.window_days, the sensor is flagged. Its stored
 * conductivity, salinity and TDS readings from the estimated onset, and
 * every such reading after, are marked q "suspect" with why "drift": no
 * value rule acts on them (no salinity alert is raised or cleared by a
 * fouled probe), and the built-in sensor-check alert tells technicians
 * what to do. The flag ends when the ratio is back (the probe was
 * cleaned) or a calibration of the sensor is recorded.
 *
 * Threads: the hook runs on the ingest writer thread (on_readings before
 * a live batch is stored; on_tick, every 5 s of the gateway's clock,
 * evaluates every site whose newest salinity reading moved an hour on).
 * Flags are rows of drift_flags (view v_drift): a restart reloads them.
 */
#ifndef GATEWAY_DRIFT_H
#define GATEWAY_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/ingest.h"
#include "gateway/config.h"

struct drift;
struct store;

/* Creates the table and view in st's database and loads the flags. NULL
 * with *err (a negative errno) when the database cannot be written. */
struct drift *drift_new(const struct gateway_config *cfg, struct store *st, int *err);
const struct ingest_hook *drift_hook(struct drift *d);
void drift_free(struct drift *d);

/* --- the arithmetic, pure (tests/unit/test_gateway_drift.c) ------------- */

/* A "day" here is a tidal day, two M2 periods (24 h 50 min): a level
 * over one is nearly free of the semidiurnal tide, whatever the phase
 * lag between neighbours. */
#define DRIFT_DAY_MS 89424000LL
#define DRIFT_BIN_MIN 6 /* readings a day's level needs, on both sides */

/* One neighbour's verdict over the window: the log ratio
 * ln(station / neighbour) of daily levels, fitted by least squares
 * against the day (x = -(k + 0.5), day k ending k days before the
 * station's newest reading). */
struct drift_fit {
	size_t n;        /* days with both levels >= min_g_l */
	double slope;    /* per day */
	double r2;
	double r_ref;    /* observed before: the median over the older half */
	double r_newest; /* observed on the newest such day */
	double fall;     /* the newest day against r_ref, 0..1 (< 0: a rise) */
	bool falls;      /* a steady fall of fall_pct or more */
};

/* Fits the daily levels s[k] (the station) and nb[k] (a neighbour), k =
 * 0..days-1 newest first; NAN for a day without DRIFT_BIN_MIN readings.
 * Days where either level is below min_g_l are left out. Returns 0, or
 * -ENODATA with fewer than 4 days spanning 3 (then no verdict). */
int drift_fit(const double *s, const double *nb, size_t days, double min_g_l,
	      double fall_pct, struct drift_fit *out);

/* The median of v[0..n) (sorts v). NAN when n is 0. */
double drift_median(double *v, size_t n);
/* A day's level: the interquartile mean of v[0..n) (sorts v), the mean
 * of its middle half — robust to spikes like a median, but smooth where
 * a median of a sampled tide jumps from sample to sample. NAN when n is 0. */
double drift_iqm(double *v, size_t n);

/* The estimated onset, as a day offset (<= 0) from the newest reading:
 * the newest days whose ratio is a quarter of fall_pct or more below
 * f->r_ref, fitted by a line back to where it meets f->r_ref (not later
 * than the middle of the oldest of those days, not before the window);
 * 0 when the newest day is not below. */
double drift_onset_x(const double *s, const double *nb, size_t days, double min_g_l,
		     double fall_pct, const struct drift_fit *f);

#endif
