/*
 * The simulator's physical models (docs/sim.md; their figures and sources
 * in docs/delta.md): estuarine salinity driven by a synthetic tide, an inland freshwater canal, nightly
 * brown-planthopper light-trap catches, and an EPEVER solar charge
 * controller. Every value is a pure function of (seed, slave parameters,
 * simulated time): noise comes from hashing the time step, not from a
 * stream, so how often a client reads never changes what it reads.
 *
 * Values are produced per metric name in the unit the profile declares
 * (model_value), so one generic device layer can serve any profile.
 * Pure: no I/O, no globals, no allocation.
 */
#ifndef SIM_MODEL_H
#define SIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum model_water {
	MODEL_WATER_SALINE = 0, /* salinity-intrusion */
	MODEL_WATER_FRESH,      /* freshwater */
};

/* Per-slave parameters (--slave N:PROFILE,key=value,...). */
struct model_params {
	uint64_t seed;
	int slave;                  /* part of the noise key */
	enum model_water water;
	bool noise;                 /* false: --no-noise (true values only) */
	double distance_km;         /* from the river mouth (default 18) */
	double tide_phase_h;        /* extra tidal lag, hours */
	double depth_m;             /* mean water depth at the sensor */
	double brood_period_d;      /* days between BPH brood pulses */
	double brood_phase_d;       /* district offset of the pulses, days */
	double brood_peak;          /* median peak-night catch */
	double baseline;            /* median off-peak nightly catch */
	double rain_prob;           /* probability a night is rainy */
	double pv_w;                /* panel size, W */
	/* Fixed water (bench tests; NaN = the water model): */
	double fixed_salinity;      /* g/L */
	double fixed_temp;          /* water temperature, °C */
	double fixed_ec;            /* in-situ conductivity, mS/cm (wins over salinity) */
	double coef_pct;            /* the device's EC compensation, %/°C (NaN: its profile's) */
	/* The device, not the water (issue 22): */
	double cal_error;           /* what its calibrated metric reads too high, in its unit */
	double plugged;             /* 0: not on the line until agri-sim gets SIGUSR1 */
};

/* Fills p with the defaults (seed 1, 18 km, ...). */
void model_params_default(struct model_params *p);

/*
 * Sets one parameter from "key=value" text. Keys: distance_km,
 * tide_phase_h (alias phase_h), depth_m, period_d, phase_d, peak,
 * baseline, rain, pv_w, scenario (salinity-intrusion|freshwater), and
 * salinity, temperature, conductivity (fixed water), coef_pct, cal_error
 * (a probe that needs calibrating), plugged (0: connected later, SIGUSR1).
 * Returns 0, -ENOENT for an unknown key, -EINVAL for a bad value.
 */
int model_params_set(struct model_params *p, const char *key,
		     const char *value);

/* Delta local time is UTC+7. */
#define MODEL_LOCAL_OFFSET_MS (7LL * 3600 * 1000)

/* Tide elevation (m, about mean level) at the slave's site at t_ms. */
double model_tide(const struct model_params *p, int64_t t_ms);

/* Salinity (g/L) of the water model at t_ms. */
double model_salinity(const struct model_params *p, int64_t t_ms);

/* Water temperature (°C). */
double model_water_temperature(const struct model_params *p, int64_t t_ms);

/* Dry-season envelope E(distance_km, day of year), g/L (docs/delta.md §2 table). */
double model_envelope(double distance_km, double doy);

/* True between 18:00 and 06:00 local time (the trap lamp is on). */
bool model_lamp_on(int64_t t_ms);

/*
 * The night index of t_ms: nights start at 18:00 local; night n covers
 * [n days + 18:00 local, n+1 days + 06:00 local). Daytime belongs to the
 * night that starts that evening.
 */
int64_t model_night(int64_t t_ms);

/* True when night n is a rainy night (trap catches suppressed). */
bool model_rain_night(const struct model_params *p, int64_t night);

/*
 * Total BPH catch of night n (before the split across the hours of the
 * night). Where night n lies in a brood pulse, *pulse_night is 1..6 (the
 * night of the pulse), else 0 (may be NULL).
 */
double model_bph_night(const struct model_params *p, int64_t night,
		       int *pulse_night);

/*
 * Insects of one class caught in (t0_ms, t1_ms]: the difference of the
 * rounded cumulative catch, so consecutive intervals add up exactly.
 * class_factor scales the BPH catch for other classes (1 for BPH).
 */
uint32_t model_count(const struct model_params *p, double class_factor,
		     int64_t t0_ms, int64_t t1_ms);

/* Relative catch of an insect class named by a counter metric. */
double model_class_factor(const char *metric);

/*
 * The value of metric at t_ms in unit (as a profile declares them).
 * Returns 0 and writes *value, or -ENOENT when no model knows the metric
 * (the caller then uses a plausible constant). Counters are not handled
 * here (see model_count).
 */
int model_value(const struct model_params *p, const char *metric,
		const char *unit, int64_t t_ms, double *value);

/* Hash-based noise helpers, exposed for the fault layer and tests. */
uint64_t model_hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d);
double model_u01(uint64_t h);  /* [0, 1) */
double model_gauss(uint64_t h); /* N(0, 1) */

#endif
