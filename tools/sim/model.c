/*
 * The simulator's models (see model.h and docs/sim.md). Each quantity is a
 * closed-form function of simulated time plus hash-keyed noise:
 *
 *   tide      eta(t) = a(d) * sum of M2, S2, K1, O1 cosines, lagged by the
 *             distance from the mouth (about 1 h per 18 km);
 *   salinity  S = E(d, doy) * (1 + 0.3 sn(t)) * g(eta_n(t - 1 h)) * (1 + AR)
 *             with E the dry-season envelope of docs/delta.md §2, sn the
 *             spring-neap factor, eta_n the tide normalised by its local
 *             envelope and g a logistic of it (salt comes in with the
 *             flood, peaking about an hour after high water);
 *   traps     nightly log-normal baseline plus brood pulses of 5-6 nights
 *             peaking on the third, split over the lamp hours;
 *   solar     clear-sky sine times a cloud factor; battery follows a daily
 *             state-of-charge cycle.
 *
 * AR(1) noise is evaluated as a truncated moving sum of hashed Gaussians,
 * so it is a pure function of the time step.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/units.h"
#include "agri/util.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL
/* Reference of the tidal phases: 2000-01-01T12:00Z. */
#define TIDE_EPOCH_MS 946728000000LL

enum noise_channel {
	NC_SAL = 1, NC_WTEMP, NC_DO, NC_TURB, NC_PH, NC_LEVEL, NC_CLOUD,
	NC_AIRT, NC_RH, NC_BASE, NC_PULSE_H, NC_PULSE_N, NC_PULSE_LEN,
	NC_RAIN, NC_FRESH,
};

void model_params_default(struct model_params *p)
{
	memset(p, 0, sizeof(*p));
	p->seed = 1;
	p->water = MODEL_WATER_SALINE;
	p->noise = true;
	p->distance_km = 18;
	p->depth_m = 3.0;
	p->brood_period_d = 26;
	p->brood_phase_d = 0;
	p->brood_peak = 1200;
	p->baseline = 20;
	p->rain_prob = 0.12;
	p->pv_w = 100;
	p->fixed_salinity = NAN;
	p->fixed_temp = NAN;
	p->fixed_ec = NAN;
	p->coef_pct = NAN;
	p->plugged = 1;
}

int model_params_set(struct model_params *p, const char *key,
		     const char *value)
{
	static const struct {
		const char *key;
		size_t off;
		double lo, hi;
	} table[] = {
		{"distance_km", offsetof(struct model_params, distance_km), 0, 400},
		{"tide_phase_h", offsetof(struct model_params, tide_phase_h), -48, 48},
		{"phase_h", offsetof(struct model_params, tide_phase_h), -48, 48},
		{"depth_m", offsetof(struct model_params, depth_m), 0.5, 50},
		{"period_d", offsetof(struct model_params, brood_period_d), 5, 120},
		{"phase_d", offsetof(struct model_params, brood_phase_d), -365, 365},
		{"peak", offsetof(struct model_params, brood_peak), 0, 1e6},
		{"baseline", offsetof(struct model_params, baseline), 0, 1e5},
		{"rain", offsetof(struct model_params, rain_prob), 0, 1},
		{"pv_w", offsetof(struct model_params, pv_w), 1, 10000},
		{"salinity", offsetof(struct model_params, fixed_salinity), 0, 42},
		{"temperature", offsetof(struct model_params, fixed_temp), -5, 40},
		{"conductivity", offsetof(struct model_params, fixed_ec), 0, 100},
		{"coef_pct", offsetof(struct model_params, coef_pct), 0, 10},
		{"cal_error", offsetof(struct model_params, cal_error), -1e6, 1e6},
		{"plugged", offsetof(struct model_params, plugged), 0, 1},
	};

	if (strcmp(key, "scenario") == 0) {
		if (strcmp(value, "salinity-intrusion") == 0)
			p->water = MODEL_WATER_SALINE;
		else if (strcmp(value, "freshwater") == 0)
			p->water = MODEL_WATER_FRESH;
		else
			return -EINVAL;
		return 0;
	}
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(table); i++) {
		if (strcmp(key, table[i].key) == 0)
			return util_parse_double(value, table[i].lo, table[i].hi,
					    (double *)((char *)p + table[i].off));
	}
	return -ENOENT;
}

/* ---- noise ---------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t model_hash(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
	return mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d);
}

double model_u01(uint64_t h)
{
	return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

double model_gauss(uint64_t h)
{
	double u1 = model_u01(h), u2 = model_u01(mix64(h ^ 0x5bd1e995));

	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static double gauss_at(const struct model_params *p, int ch, int64_t idx)
{
	return model_gauss(model_hash(p->seed, (uint64_t)p->slave,
				      (uint64_t)ch, (uint64_t)idx));
}

/*
 * Unit-variance AR(1) noise with coefficient phi per step_s, linearly
 * interpolated between steps: a truncated sum over the last 40 steps.
 */
static double ar_noise(const struct model_params *p, int ch, int64_t t_ms,
		       double step_s, double phi)
{
	double step_ms = step_s * 1000.0, pos = (double)t_ms / step_ms;
	int64_t n = (int64_t)floor(pos);
	double frac = pos - (double)n, x[2] = {0, 0};
	double norm = sqrt(1.0 - phi * phi);

	if (!p->noise)
		return 0;
	for (int j = 0; j < 2; j++) {
		double w = 1;
		for (int k = 0; k < 40; k++) {
			x[j] += w * gauss_at(p, ch, n + j - k);
			w *= phi;
		}
		x[j] *= norm;
	}
	return x[0] + (x[1] - x[0]) * frac;
}

/* ---- calendar -------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Local hour of day, 0..24. */
static double local_hour(int64_t t_ms)
{
	int64_t l = t_ms + MODEL_LOCAL_OFFSET_MS;

	return (double)(l - floor_div(l, DAY_MS) * DAY_MS) / (double)HOUR_MS;
}

/* Civil date from days since 1970-01-01 (H. Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static const int cum_days[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

/* Local day of year, 1-based with fraction (1.0 = Jan 1 00:00 local). */
static double local_doy(int64_t t_ms, int *day_of_month)
{
	int64_t l = t_ms + MODEL_LOCAL_OFFSET_MS;
	int64_t days = floor_div(l, DAY_MS);
	int y, m, d;

	civil_from_days(days, &y, &m, &d);
	if (day_of_month)
		*day_of_month = d;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	int doy = cum_days[m - 1] + d + (leap && m > 2);
	return doy + local_hour(t_ms) / 24.0;
}

/* ---- water ------------------------------------------------------------ */

static const double env_doy[] = {1, 36, 64, 95, 125, 160, 200, 335, 367};
static const double env_km[] = {0, 18, 30, 35};
static const double env_tab[4][9] = {
	{5.0, 10.7, 16.7, 21.6, 11.6, 4.0, 1.0, 1.0, 5.0},
	{0.3, 1.1, 5.5, 12.3, 4.4, 0.6, 0.05, 0.05, 0.3},
	{0.1, 0.3, 2.6, 7.7, 1.8, 0.2, 0.02, 0.02, 0.1},
	{0.05, 0.1, 1.4, 5.4, 0.9, 0.1, 0.01, 0.01, 0.05},
};

static double env_row(int r, double doy)
{
	for (int i = 0; i < 8; i++) {
		if (doy <= env_doy[i + 1]) {
			double f = (doy - env_doy[i]) / (env_doy[i + 1] - env_doy[i]);
			if (f < 0)
				f = 0;
			return env_tab[r][i] + f * (env_tab[r][i + 1] - env_tab[r][i]);
		}
	}
	return env_tab[r][8];
}

double model_envelope(double distance_km, double doy)
{
	if (distance_km < 0)
		distance_km = 0;
	if (distance_km >= 35)
		return env_row(3, doy) * exp(-(distance_km - 35) / 10.0);
	for (int i = 0; i < 3; i++) {
		if (distance_km <= env_km[i + 1]) {
			double f = (distance_km - env_km[i]) / (env_km[i + 1] - env_km[i]);
			return env_row(i, doy) + f * (env_row(i + 1, doy) - env_row(i, doy));
		}
	}
	return 0;
}

/* Constituents: amplitude (m) at the mouth, period (h), phase (rad). */
static const struct {
	double amp, period_h, phase;
} tide_c[4] = {
	{0.80, 12.4206, 0.0},  /* M2 */
	{0.32, 12.0000, 0.0},  /* S2 */
	{0.58, 23.9345, 0.8},  /* K1 */
	{0.43, 25.8193, 2.1},  /* O1 */
};

static double tide_hours(const struct model_params *p, int64_t t_ms)
{
	return (double)(t_ms - TIDE_EPOCH_MS) / (double)HOUR_MS -
	       p->distance_km / 18.0 - p->tide_phase_h;
}

static double tide_damping(const struct model_params *p)
{
	double a = exp(-p->distance_km / 150.0);

	return p->water == MODEL_WATER_FRESH ? a * 0.25 : a;
}

double model_tide(const struct model_params *p, int64_t t_ms)
{
	double th = tide_hours(p, t_ms), eta = 0;

	for (int i = 0; i < 4; i++)
		eta += tide_c[i].amp *
		       cos(2 * M_PI * th / tide_c[i].period_h + tide_c[i].phase);
	return eta * tide_damping(p);
}

/* |M2 + S2| at t: the spring-neap semi-diurnal amplitude. */
static double semidiurnal_amp(double th)
{
	double dphi = 2 * M_PI * th * (1 / tide_c[1].period_h - 1 / tide_c[0].period_h);
	double re = tide_c[0].amp + tide_c[1].amp * cos(dphi);
	double im = tide_c[1].amp * sin(dphi);

	return sqrt(re * re + im * im);
}

/* Tide normalised by its local envelope, about -1..1. */
static double tide_norm(const struct model_params *p, int64_t t_ms)
{
	double th = tide_hours(p, t_ms);
	double env = semidiurnal_amp(th) + tide_c[2].amp + tide_c[3].amp;

	return model_tide(p, t_ms) / (env * tide_damping(p));
}

/* Spring-neap factor, -1 (neap) .. 1 (spring). */
static double spring_neap(const struct model_params *p, int64_t t_ms)
{
	return (semidiurnal_amp(tide_hours(p, t_ms)) - tide_c[0].amp) / tide_c[1].amp;
}

double model_salinity(const struct model_params *p, int64_t t_ms)
{
	double s;

	if (!isnan(p->fixed_ec))
		return agri_sp_from_c(p->fixed_ec, model_water_temperature(p, t_ms), 0);
	if (!isnan(p->fixed_salinity))
		return p->fixed_salinity;

	if (p->water == MODEL_WATER_FRESH) {
		double doy = local_doy(t_ms, NULL);
		s = 0.15 + 0.06 * sin(2 * M_PI * (doy - 10) / 365.25) +
		    0.03 * tide_norm(p, t_ms - HOUR_MS) +
		    0.02 * ar_noise(p, NC_FRESH, t_ms, 1800, 0.95);
		if (s < 0.05)
			s = 0.05;
		if (s > 0.3)
			s = 0.3;
		return s;
	}
	double lagged = t_ms - HOUR_MS;
	double e = model_envelope(p->distance_km, local_doy(t_ms, NULL));
	double x = tide_norm(p, lagged);
	double g = 0.08 + 1.25 / (1.0 + exp(-4.0 * x));

	s = e * (1.0 + 0.3 * spring_neap(p, lagged)) * g;
	s *= 1.0 + 0.03 * ar_noise(p, NC_SAL, t_ms, 600, 0.85);
	if (s < 0.1)
		s = 0.1 + 0.02 * s;
	if (s > 40)
		s = 40;
	return s;
}

double model_water_temperature(const struct model_params *p, int64_t t_ms)
{
	double h = local_hour(t_ms), doy = local_doy(t_ms, NULL);
	double amp = p->water == MODEL_WATER_FRESH ? 2.0 : 1.0;

	if (!isnan(p->fixed_temp))
		return p->fixed_temp;
	return 28.5 + amp * sin(2 * M_PI * (h - 9) / 24) +
	       1.0 * sin(2 * M_PI * (doy - 80) / 365.25) +
	       0.15 * ar_noise(p, NC_WTEMP, t_ms, 900, 0.9);
}

static double water_level(const struct model_params *p, int64_t t_ms)
{
	return p->depth_m + model_tide(p, t_ms) +
	       0.01 * ar_noise(p, NC_LEVEL, t_ms, 300, 0.8);
}

static double dissolved_oxygen(const struct model_params *p, int64_t t_ms)
{
	double h = local_hour(t_ms);
	double v = 4.2 + 1.1 * sin(2 * M_PI * (h - 10) / 24) +
		   0.2 * ar_noise(p, NC_DO, t_ms, 900, 0.9);

	return v < 0.5 ? 0.5 : v;
}

/* Oxygen solubility (mg/L) at t °C, salinity s g/L (simple fit). */
static double do_solubility(double t, double s)
{
	double c = 14.62 - 0.3898 * t + 0.006969 * t * t - 5.897e-5 * t * t * t;

	return c * (1.0 - 0.0058 * s);
}

static double turbidity(const struct model_params *p, int64_t t_ms)
{
	/* Resuspension follows the tidal current, |d eta/dt|. */
	double d = (model_tide(p, t_ms + 600000) - model_tide(p, t_ms - 600000)) / (1.0 / 3.0);
	double v = 40 + 60 * fabs(d) + 8 * ar_noise(p, NC_TURB, t_ms, 900, 0.9);

	return v < 1 ? 1 : v;
}

static double ph_value(const struct model_params *p, int64_t t_ms, double s)
{
	double h = local_hour(t_ms);
	double v = 7.1 + 0.05 * s + 0.1 * sin(2 * M_PI * (h - 11) / 24) +
		   0.03 * ar_noise(p, NC_PH, t_ms, 900, 0.9);

	return v > 8.4 ? 8.4 : v;
}

/* ---- light traps ---------------------------------------------------- */

bool model_lamp_on(int64_t t_ms)
{
	double h = local_hour(t_ms);

	return h >= 18.0 || h < 6.0;
}

int64_t model_night(int64_t t_ms)
{
	return floor_div(t_ms + MODEL_LOCAL_OFFSET_MS - 18 * HOUR_MS, DAY_MS);
}

/* Local 18:00 starting night n, as UTC ms. */
static int64_t night_start(int64_t n)
{
	return n * DAY_MS + 18 * HOUR_MS - MODEL_LOCAL_OFFSET_MS;
}

bool model_rain_night(const struct model_params *p, int64_t night)
{
	/* Weather is shared by every trap of one run: no slave in the key. */
	return model_u01(model_hash(p->seed, 0, NC_RAIN, (uint64_t)night)) <
	       p->rain_prob;
}

static const double pulse6[6] = {0.22, 0.55, 1.0, 0.6, 0.3, 0.12};
static const double pulse5[5] = {0.25, 0.6, 1.0, 0.5, 0.2};

double model_bph_night(const struct model_params *p, int64_t night,
		       int *pulse_night)
{
	uint64_t k = model_hash(p->seed, (uint64_t)p->slave, NC_BASE, (uint64_t)night);
	double total = p->baseline * (p->noise ? exp(0.75 * model_gauss(k)) : 1.0);
	double x = (double)night - p->brood_phase_d;
	double m = floor(x / p->brood_period_d);
	int pos = (int)floor(x - m * p->brood_period_d);
	uint64_t mk = (uint64_t)(int64_t)m;
	int len = model_u01(model_hash(p->seed, (uint64_t)p->slave, NC_PULSE_LEN, mk)) < 0.5 ? 5 : 6;

	if (pulse_night)
		*pulse_night = 0;
	if (pos >= 0 && pos < len) {
		double h = p->brood_peak;
		if (p->noise) {
			h *= exp(0.5 * model_gauss(model_hash(p->seed, (uint64_t)p->slave,
							      NC_PULSE_H, mk)));
			h *= exp(0.06 * model_gauss(k ^ 0xabcdef));
		}
		total += h * (len == 6 ? pulse6[pos] : pulse5[pos]);
		if (pulse_night)
			*pulse_night = pos + 1;
	}
	if (model_rain_night(p, night))
		total *= 0.1;
	return total;
}

/* Share of a night's catch by lamp hour: dusk and dawn flights. */
static const double night_w[12] = {0.10, 0.20, 0.16, 0.08, 0.05, 0.04,
				   0.03, 0.03, 0.04, 0.07, 0.10, 0.10};

/* Fraction of night n's catch caught by t_ms. */
static double night_fraction(int64_t n, int64_t t_ms)
{
	double hrs = (double)(t_ms - night_start(n)) / (double)HOUR_MS, f = 0;

	if (hrs <= 0)
		return 0;
	if (hrs >= 12)
		return 1;
	int k = (int)hrs;
	for (int i = 0; i < k; i++)
		f += night_w[i];
	return f + night_w[k] * (hrs - k);
}

uint32_t model_count(const struct model_params *p, double class_factor,
		     int64_t t0_ms, int64_t t1_ms)
{
	int64_t n0 = model_night(t0_ms), n1 = model_night(t1_ms);
	double sum = 0;

	if (t1_ms <= t0_ms)
		return 0;
	if (n1 - n0 > 400)
		n0 = n1 - 400;
	for (int64_t n = n0; n <= n1; n++) {
		double tot = model_bph_night(p, n, NULL) * class_factor;
		sum += round(tot * night_fraction(n, t1_ms)) -
		       round(tot * night_fraction(n, t0_ms));
	}
	return sum < 0 ? 0 : (uint32_t)sum;
}

double model_class_factor(const char *metric)
{
	if (strstr(metric, "wbph") || strstr(metric, "white"))
		return 0.35;
	if (strstr(metric, "bph") || strstr(metric, "planthopper"))
		return 1.0;
	if (strstr(metric, "leafhopper") || strstr(metric, "glh"))
		return 0.25;
	if (strstr(metric, "borer") || strstr(metric, "moth") || strstr(metric, "folder"))
		return 0.08;
	if (strstr(metric, "total") || strcmp(metric, "insect_count") == 0)
		return 1.7;
	return 0.15;
}

/* ---- solar ------------------------------------------------------------ */

static double sun(int64_t t_ms)
{
	double h = local_hour(t_ms);

	if (h <= 6 || h >= 18)
		return 0;
	return pow(sin(M_PI * (h - 6) / 12), 1.2);
}

static double cloud(const struct model_params *p, int64_t t_ms)
{
	double c = 0.85 + 0.2 * ar_noise(p, NC_CLOUD, t_ms, 1800, 0.9);

	return c < 0.2 ? 0.2 : (c > 1 ? 1 : c);
}

#define LOAD_W 4.8

static double pv_power(const struct model_params *p, int64_t t_ms)
{
	return p->pv_w * 0.8 * sun(t_ms) * (p->noise ? cloud(p, t_ms) : 0.9);
}

static double pv_voltage(const struct model_params *p, int64_t t_ms)
{
	double g = sun(t_ms);

	return g <= 0 ? 0 : 12.5 + 6.0 * fmin(1.0, g * 4);
}

static double battery_soc(int64_t t_ms)
{
	double h = local_hour(t_ms), s;

	if (h >= 7 && h < 15)
		s = (1 - cos(M_PI * (h - 7) / 8)) / 2;
	else
		s = 1 - (h >= 15 ? h - 15 : h + 9) / 16.0;
	return 62 + 33 * s;
}

static double battery_voltage(const struct model_params *p, int64_t t_ms)
{
	double soc = battery_soc(t_ms), pv = pv_power(p, t_ms);
	double v = 11.9 + 0.9 * soc / 100;

	if (pv > LOAD_W) {
		if (soc > 92)
			v = 13.8;
		else
			v = fmin(14.4, v + 1.9 * fmin(1.0, pv / (0.25 * p->pv_w)));
	}
	return v < 12.2 ? 12.2 : (v > 14.4 ? 14.4 : v);
}

static double charging_stage(const struct model_params *p, int64_t t_ms)
{
	if (pv_power(p, t_ms) <= LOAD_W)
		return 0;
	return battery_soc(t_ms) > 92 ? 1 : 2;
}

static double energy_today_kwh(const struct model_params *p, int64_t t_ms,
			       bool generated)
{
	double h = local_hour(t_ms), e = 0;
	int64_t midnight = t_ms - (int64_t)(h * HOUR_MS);

	if (!generated)
		return LOAD_W * h / 1000.0;
	for (int64_t t = midnight; t < t_ms; t += 600000)
		e += pv_power(p, t) * (fmin(600000, (double)(t_ms - t)) / HOUR_MS);
	return e / 1000.0;
}

/* ---- metric names ------------------------------------------------------ */

enum quantity {
	Q_NONE, Q_SAL, Q_EC25, Q_EC, Q_TDS, Q_RESIST, Q_DENSITY, Q_AIRT, Q_RH,
	Q_BATT_T, Q_CTRL_T, Q_HS_T, Q_AMB_T, Q_WTEMP, Q_LEVEL, Q_PRESSURE,
	Q_PO2, Q_DOSAT, Q_DO, Q_PH_MV, Q_PH, Q_ORP, Q_TURB, Q_CHL, Q_BGA,
	Q_LAMP, Q_RAIN, Q_RATED_I, Q_RATED_P, Q_RATED_BV, Q_RATED_V,
	Q_GEN_TODAY, Q_GEN_MONTH, Q_GEN_YEAR, Q_GEN_TOTAL, Q_CON_TODAY,
	Q_CON_MONTH, Q_CON_YEAR, Q_CON_TOTAL, Q_PV_MAX, Q_PV_MIN, Q_BV_MAX,
	Q_BV_MIN, Q_PV_V, Q_PV_I, Q_PV_P, Q_NET_I, Q_CHG_I, Q_CHG_P, Q_SOC,
	Q_BATT_V, Q_LOAD_V, Q_LOAD_I, Q_LOAD_P, Q_CHG_STATUS, Q_BATT_STATUS,
	Q_SUPPLY_V,
};

static bool has(const char *m, const char *s)
{
	return strstr(m, s) != NULL;
}

static enum quantity energy_quantity(const char *m)
{
	int base = has(m, "consum") ? Q_CON_TODAY : Q_GEN_TODAY;

	if (has(m, "month"))
		return (enum quantity)(base + 1);
	if (has(m, "year"))
		return (enum quantity)(base + 2);
	if (has(m, "total"))
		return (enum quantity)(base + 3);
	return (enum quantity)base;
}

static enum quantity classify(const char *m)
{
	bool bat = has(m, "batt");

	if (has(m, "rated")) {
		if (has(m, "current"))
			return Q_RATED_I;
		if (has(m, "power"))
			return Q_RATED_P;
		return bat ? Q_RATED_BV : Q_RATED_V;
	}
	if (has(m, "energy") || has(m, "kwh") || has(m, "generated") || has(m, "consumed"))
		return energy_quantity(m);
	if (has(m, "max") || has(m, "min")) {
		if (has(m, "pv"))
			return has(m, "max") ? Q_PV_MAX : Q_PV_MIN;
		if (bat)
			return has(m, "max") ? Q_BV_MAX : Q_BV_MIN;
	}
	if (has(m, "status") || has(m, "state_bits") || has(m, "flags"))
		return has(m, "charg") ? Q_CHG_STATUS : Q_BATT_STATUS;
	if (has(m, "salinity"))
		return Q_SAL;
	if (has(m, "specific") || has(m, "ec25") || has(m, "_25") || has(m, "spc"))
		return Q_EC25;
	if (has(m, "conductivity") || strcmp(m, "ec") == 0 || has(m, "_ec"))
		return Q_EC;
	if (has(m, "tds"))
		return Q_TDS;
	if (has(m, "resistivity"))
		return Q_RESIST;
	if (has(m, "density"))
		return Q_DENSITY;
	if (has(m, "air_temp"))
		return Q_AIRT;
	if (has(m, "humidity"))
		return Q_RH;
	if (has(m, "temp")) {
		if (bat)
			return Q_BATT_T;
		if (has(m, "controller") || has(m, "internal") || has(m, "device"))
			return Q_CTRL_T;
		if (has(m, "heatsink") || has(m, "component"))
			return Q_HS_T;
		if (has(m, "ambient"))
			return Q_AMB_T;
		return Q_WTEMP;
	}
	if (has(m, "level") || has(m, "depth") || has(m, "stage"))
		return Q_LEVEL;
	if (has(m, "partial"))
		return Q_PO2;
	if (has(m, "pressure"))
		return Q_PRESSURE;
	if (has(m, "sat") && (has(m, "oxygen") || has(m, "do")))
		return Q_DOSAT;
	if (has(m, "oxygen") || strcmp(m, "do") == 0 || has(m, "do_mg"))
		return Q_DO;
	if (has(m, "ph_mv") || has(m, "ph_millivolt"))
		return Q_PH_MV;
	if (strcmp(m, "ph") == 0 || strncmp(m, "ph_", 3) == 0 ||
	    (strlen(m) > 3 && strcmp(m + strlen(m) - 3, "_ph") == 0))
		return Q_PH;
	if (has(m, "orp") || has(m, "redox"))
		return Q_ORP;
	if (has(m, "turbidity"))
		return Q_TURB;
	if (has(m, "chlorophyll") || has(m, "chl"))
		return Q_CHL;
	if (has(m, "bga") || has(m, "phycocyanin") || has(m, "blue_green"))
		return Q_BGA;
	if (has(m, "lamp"))
		return Q_LAMP;
	if (has(m, "rain"))
		return Q_RAIN;
	if (has(m, "pv")) {
		if (has(m, "current"))
			return Q_PV_I;
		if (has(m, "power"))
			return Q_PV_P;
		return Q_PV_V;
	}
	if (has(m, "load")) {
		if (has(m, "current"))
			return Q_LOAD_I;
		if (has(m, "power"))
			return Q_LOAD_P;
		return Q_LOAD_V;
	}
	if (has(m, "soc") || has(m, "state_of_charge"))
		return Q_SOC;
	if (has(m, "charg")) {
		if (has(m, "power"))
			return Q_CHG_P;
		return Q_CHG_I;
	}
	if (bat && (has(m, "net") || has(m, "current")))
		return Q_NET_I;
	if (bat && has(m, "volt"))
		return Q_BATT_V;
	if (has(m, "supply") || has(m, "external_power"))
		return Q_SUPPLY_V;
	return Q_NONE;
}

/* ---- units --------------------------------------------------------------- */

/* True when unit is micro-prefixed ("u", "µ" or "μ") and then rest. */
static bool micro(const char *unit, const char *rest)
{
	if (unit[0] == 'u')
		return strcmp(unit + 1, rest) == 0;
	if ((unsigned char)unit[0] == 0xc2 && (unsigned char)unit[1] == 0xb5)
		return strcmp(unit + 2, rest) == 0;
	if ((unsigned char)unit[0] == 0xce && (unsigned char)unit[1] == 0xbc)
		return strcmp(unit + 2, rest) == 0;
	return false;
}

static bool ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

static double temp_unit(double c, const char *unit)
{
	if (ieq(unit, "K"))
		return c + 273.15;
	if (strstr(unit, "F"))
		return c * 9.0 / 5.0 + 32;
	return c;
}

static double convert(enum quantity q, double v, const char *unit)
{
	switch (q) {
	case Q_EC:
	case Q_EC25:
		if (micro(unit, "S/cm"))
			return v * 1000;
		if (ieq(unit, "mS/m"))
			return v * 100;
		if (ieq(unit, "S/m"))
			return v * 0.1;
		return v;
	case Q_SAL:
		if (ieq(unit, "mg/L") || ieq(unit, "ppm"))
			return v * 1000;
		return v;
	case Q_TDS:
		if (ieq(unit, "g/L") || ieq(unit, "ppt"))
			return v / 1000;
		return v;
	case Q_LEVEL:
		if (ieq(unit, "cm"))
			return v * 100;
		if (ieq(unit, "mm"))
			return v * 1000;
		if (ieq(unit, "ft"))
			return v * 3.28084;
		return v;
	case Q_PRESSURE:
		if (ieq(unit, "kPa"))
			return v * 100;
		if (ieq(unit, "mbar") || ieq(unit, "hPa"))
			return v * 1000;
		if (ieq(unit, "Pa"))
			return v * 1e5;
		if (ieq(unit, "MPa"))
			return v * 0.1;
		if (ieq(unit, "psi"))
			return v * 14.5038;
		return v;
	case Q_DO:
		if (micro(unit, "g/L"))
			return v * 1000;
		return v;
	case Q_DOSAT:
		if (unit[0] == '\0' || ieq(unit, "1") || ieq(unit, "fraction"))
			return v / 100;
		return v;
	case Q_SUPPLY_V:
		return ieq(unit, "mV") ? v * 1000 : v;
	case Q_GEN_TODAY: case Q_GEN_MONTH: case Q_GEN_YEAR: case Q_GEN_TOTAL:
	case Q_CON_TODAY: case Q_CON_MONTH: case Q_CON_YEAR: case Q_CON_TOTAL:
		return ieq(unit, "Wh") ? v * 1000 : v;
	case Q_WTEMP: case Q_AIRT: case Q_BATT_T: case Q_CTRL_T: case Q_HS_T:
	case Q_AMB_T:
		return temp_unit(v, unit);
	default:
		return v;
	}
}

/* ---- values ---------------------------------------------------------------- */

static double air_temperature(const struct model_params *p, int64_t t_ms)
{
	return 28.0 + 3.5 * sin(2 * M_PI * (local_hour(t_ms) - 9) / 24) +
	       0.3 * ar_noise(p, NC_AIRT, t_ms, 900, 0.9);
}

static double energy(const struct model_params *p, enum quantity q, int64_t t_ms)
{
	bool gen = q <= Q_GEN_TOTAL;
	int base = gen ? Q_GEN_TODAY : Q_CON_TODAY, mday;
	double doy = floor(local_doy(t_ms, &mday));
	double today = energy_today_kwh(p, t_ms, gen);
	double per_day = gen ? p->pv_w * 0.8 * 0.9 * 12 * 0.6 / 1000 : LOAD_W * 24 / 1000;

	switch (q - base) {
	case 0: return today;
	case 1: return today + (mday - 1) * per_day;
	case 2: return today + (doy - 1) * per_day;
	default: return today + (doy - 1 + 2 * 365) * per_day;
	}
}

/* Water quality: salinity, conductivity and what is derived from it,
 * temperature, level and pressure, oxygen, pH, ORP, turbidity, pigments.
 * False when q is none of them. */
static bool water_value(const struct model_params *p, enum quantity q, int64_t t_ms,
			double *out)
{
	double v, s, t;

	switch (q) {
	case Q_SAL:
		v = model_salinity(p, t_ms);
		break;
	case Q_EC:
	case Q_EC25:
	case Q_TDS:
	case Q_RESIST:
		s = model_salinity(p, t_ms);
		t = model_water_temperature(p, t_ms);
		v = isnan(p->fixed_ec) ? agri_c_from_sp(s, t, 0) : p->fixed_ec;
		if (q != Q_EC)
			v = agri_ec25(v, t, 0.02);
		if (q == Q_TDS)
			v = 0.5 * v * 1000; /* mg/L from EC25 in uS/cm */
		if (q == Q_RESIST)
			v = 1e6 / (v * 1000);
		break;
	case Q_DENSITY:
		v = 997.0 + 0.75 * model_salinity(p, t_ms);
		break;
	case Q_WTEMP:
		v = model_water_temperature(p, t_ms);
		break;
	case Q_LEVEL:
		v = water_level(p, t_ms);
		break;
	case Q_PRESSURE:
		/* gauge pressure of the column above a bottom-mounted sensor */
		v = water_level(p, t_ms) * (agri_water_density(model_water_temperature(p, t_ms)) +
					    0.75 * model_salinity(p, t_ms)) * AGRI_G / 1e5;
		break;
	case Q_DO:
		v = dissolved_oxygen(p, t_ms);
		break;
	case Q_DOSAT:
	case Q_PO2:
		v = 100 * dissolved_oxygen(p, t_ms) /
		    do_solubility(model_water_temperature(p, t_ms), model_salinity(p, t_ms));
		if (q == Q_PO2)
			v *= 1.59; /* torr at 100 % saturation ~ 159 */
		break;
	case Q_PH:
		v = ph_value(p, t_ms, model_salinity(p, t_ms));
		break;
	case Q_PH_MV:
		v = -59.16 * (ph_value(p, t_ms, model_salinity(p, t_ms)) - 7.0);
		break;
	case Q_ORP:
		v = 180 + 20 * sin(2 * M_PI * local_hour(t_ms) / 24);
		break;
	case Q_TURB:
		v = turbidity(p, t_ms);
		break;
	case Q_CHL:
		v = 4.0 + 1.5 * sin(2 * M_PI * (local_hour(t_ms) - 12) / 24);
		break;
	case Q_BGA:
		v = 1.0 + 0.4 * sin(2 * M_PI * (local_hour(t_ms) - 14) / 24);
		break;
	default:
		return false;
	}
	*out = v;
	return true;
}

/* The light trap's site: air, humidity, the lamp, rain. */
static bool site_value(const struct model_params *p, enum quantity q, int64_t t_ms,
		       double *out)
{
	double v;

	switch (q) {
	case Q_AIRT:
	case Q_AMB_T:
		v = air_temperature(p, t_ms);
		break;
	case Q_RH:
		v = 80 - 15 * sin(2 * M_PI * (local_hour(t_ms) - 9) / 24) +
		    2 * ar_noise(p, NC_RH, t_ms, 900, 0.9);
		if (model_rain_night(p, model_night(t_ms)) && model_lamp_on(t_ms))
			v = 97;
		v = v > 99 ? 99 : (v < 40 ? 40 : v);
		break;
	case Q_LAMP:
		v = model_lamp_on(t_ms) ? 1 : 0;
		break;
	case Q_RAIN:
		v = model_lamp_on(t_ms) && model_rain_night(p, model_night(t_ms)) ? 1 : 0;
		break;
	default:
		return false;
	}
	*out = v;
	return true;
}

/* The solar controller: ratings, energy counters, PV, battery, load,
 * temperatures and status words. */
static bool solar_value(const struct model_params *p, enum quantity q, int64_t t_ms,
			double *out)
{
	double v;

	switch (q) {
	case Q_RATED_V:
		v = 100;
		break;
	case Q_RATED_I:
		v = 10;
		break;
	case Q_RATED_P:
		v = 130;
		break;
	case Q_RATED_BV:
		v = 12;
		break;
	case Q_GEN_TODAY: case Q_GEN_MONTH: case Q_GEN_YEAR: case Q_GEN_TOTAL:
	case Q_CON_TODAY: case Q_CON_MONTH: case Q_CON_YEAR: case Q_CON_TOTAL:
		v = energy(p, q, t_ms);
		break;
	case Q_PV_MAX:
		v = 18.5;
		break;
	case Q_PV_MIN:
		v = 0;
		break;
	case Q_BV_MAX:
		v = 14.4;
		break;
	case Q_BV_MIN:
		v = 12.3;
		break;
	case Q_PV_V:
		v = pv_voltage(p, t_ms);
		break;
	case Q_PV_I:
		v = pv_voltage(p, t_ms) > 1 ? pv_power(p, t_ms) / pv_voltage(p, t_ms) : 0;
		break;
	case Q_PV_P:
		v = pv_power(p, t_ms);
		break;
	case Q_CHG_I:
		v = pv_power(p, t_ms) * 0.96 / battery_voltage(p, t_ms);
		break;
	case Q_CHG_P:
		v = pv_power(p, t_ms) * 0.96;
		break;
	case Q_NET_I:
		v = (pv_power(p, t_ms) * 0.96 - LOAD_W) / battery_voltage(p, t_ms);
		break;
	case Q_SOC:
		v = battery_soc(t_ms);
		break;
	case Q_BATT_V:
	case Q_LOAD_V:
		v = battery_voltage(p, t_ms);
		break;
	case Q_LOAD_I:
		v = LOAD_W / battery_voltage(p, t_ms);
		break;
	case Q_LOAD_P:
		v = LOAD_W;
		break;
	case Q_BATT_T:
		v = 29 + 3 * sin(2 * M_PI * (local_hour(t_ms) - 10) / 24);
		break;
	case Q_CTRL_T:
		v = 31 + 6 * sun(t_ms);
		break;
	case Q_HS_T:
		v = 32 + 9 * sun(t_ms);
		break;
	case Q_CHG_STATUS:
		v = 1 + 4 * charging_stage(p, t_ms); /* D0 running, D3-2 stage */
		break;
	case Q_BATT_STATUS:
		v = 0;
		break;
	case Q_SUPPLY_V:
		v = 12.4;
		break;
	default:
		return false;
	}
	*out = v;
	return true;
}

int model_value(const struct model_params *p, const char *metric,
		const char *unit, int64_t t_ms, double *value)
{
	enum quantity q = classify(metric);
	double v;

	if (q == Q_NONE)
		return -ENOENT;
	if (!water_value(p, q, t_ms, &v) && !site_value(p, q, t_ms, &v) &&
	    !solar_value(p, q, t_ms, &v))
		return -ENOENT;
	*value = convert(q, v, unit);
	return 0;
}
