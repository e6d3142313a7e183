/*
 * Units (units.h): practical salinity from conductivity. agri_sal78() is
 * the UNESCO 1983 SAL78 algorithm (Fofonoff & Millard), agri_sp_from_c()
 * follows TEOS-10 gsw_sp_from_c line by line, Hill et al. (1986) extension
 * below SP 2 included, and agri_c_from_sp() inverts it by bisection.
 * Coefficients and check values: docs/units.md, "PSS-78: the formulas".
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/units.h"

static const double a[6] = {0.0080, -0.1692, 25.3851, 14.0941, -7.0261,
			    2.7081};
static const double b[6] = {0.0005, -0.0056, -0.0066, -0.0375, 0.0636,
			    -0.0144};
static const double c[5] = {0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7,
			    1.0031e-9};
static const double d[4] = {3.426e-2, 4.464e-4, 4.215e-1, -3.107e-3};
static const double e[3] = {2.070e-5, -6.370e-10, 3.989e-15};
static const double k = 0.0162;

/* (t - 15) / (1 + k (t - 15)), t in IPTS-68. */
static double ft(double t68)
{
	return (t68 - 15) / (1 + k * (t68 - 15));
}

/* PSS-78 polynomial in X = sqrt(Rt). */
static double sp_poly(double x, double f)
{
	return a[0] + (a[1] + (a[2] + (a[3] + (a[4] + a[5] * x) * x) * x) * x) * x +
	       f * (b[0] + (b[1] + (b[2] + (b[3] + (b[4] + b[5] * x) * x) * x) * x) * x);
}

/* d(SP)/dX of the above. */
static double sp_poly_dx(double x, double f)
{
	return a[1] + (2 * a[2] + (3 * a[3] + (4 * a[4] + 5 * a[5] * x) * x) * x) * x +
	       f * (b[1] + (2 * b[2] + (3 * b[3] + (4 * b[4] + 5 * b[5] * x) * x) * x) * x);
}

/* Rt = R / (Rp rt): conductivity ratio at the sample's temperature. */
static double ratio_rt(double r, double t68, double p)
{
	double rt = c[0] + (c[1] + (c[2] + (c[3] + c[4] * t68) * t68) * t68) * t68;
	double rp = 1 + p * (e[0] + e[1] * p + e[2] * p * p) /
			    (1 + d[0] * t68 + d[1] * t68 * t68 + r * (d[2] + d[3] * t68));

	return r / (rp * rt);
}

double agri_sal78(double r, double t68, double p_dbar)
{
	double rt;

	if (r < 5e-4)
		return 0;
	rt = ratio_rt(r, t68, p_dbar);
	return sp_poly(sqrt(rt), ft(t68));
}

/* Hill et al. terms subtracted from PSS-78 below SP 2. */
static double hill_raw(double sp, double rtx, double f)
{
	double x = 400 * rtx * rtx, sy = 10 * rtx;
	double part1 = 1 + x * (1.5 + x);
	double part2 = 1 + sy * (1 + sy * (1 + sy));

	return sp - a[0] / part1 - b[0] * f / part2;
}

/* gsw_hill_ratio_at_sp2: makes the extension equal PSS-78 at SP 2. */
static double hill_ratio_at_sp2(double t90)
{
	static const double g[10] = {
		2.641463563366498e-1, 2.007883247811176e-4,
		-4.107694432853053e-6, 8.401670882091225e-8,
		-1.711392021989210e-9, 3.374193893377380e-11,
		-5.923731174730784e-13, 8.057771569962299e-15,
		-7.054313817447962e-17, 2.859992717347235e-19,
	};
	double t68 = t90 * 1.00024, f = ft(t68);
	double rtx0 = 0, sp_est, rtx, rtxm;

	for (int i = 9; i >= 0; i--)
		rtx0 = rtx0 * t68 + g[i];
	/* One modified Newton-Raphson step on SP(Rtx) = 2. */
	sp_est = sp_poly(rtx0, f);
	rtx = rtx0 - (sp_est - 2) / sp_poly_dx(rtx0, f);
	rtxm = 0.5 * (rtx + rtx0);
	rtx = rtx0 - (sp_est - 2) / sp_poly_dx(rtxm, f);
	return 2 / hill_raw(2, rtx, f);
}

double agri_sp_from_c(double c_mScm, double t90, double p_dbar)
{
	double t68 = t90 * 1.00024, f = ft(t68), rt, rtx, sp;

	if (!isfinite(c_mScm) || !isfinite(t90) || !isfinite(p_dbar) ||
	    c_mScm < 0)
		return NAN;
	if (c_mScm == 0)
		return 0; /* the extension's terms cancel, up to rounding */
	rt = ratio_rt(c_mScm / AGRI_C3515, t68, p_dbar);
	if (!(rt >= 0))
		return NAN;
	rtx = sqrt(rt);
	sp = sp_poly(rtx, f);
	if (sp < 2)
		sp = hill_ratio_at_sp2(t90) * hill_raw(sp, rtx, f);
	return sp >= 0 ? sp : NAN;
}

double agri_c_from_sp(double sp, double t90, double p_dbar)
{
	double lo = 0, hi = 64, s;

	if (!(sp >= 0 && sp <= 42) || !isfinite(t90) || !isfinite(p_dbar))
		return NAN;
	if (sp == 0)
		return 0;
	/* SP rises with C: widen the bracket, then bisect it. */
	for (int i = 0; (s = agri_sp_from_c(hi, t90, p_dbar)) < sp; i++) {
		if (i == 16 || isnan(s))
			return NAN;
		lo = hi;
		hi *= 2;
	}
	if (isnan(s))
		return NAN;
	for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
		double mid = 0.5 * (lo + hi);

		/* NaN here: C so low that the Hill terms go negative. */
		s = agri_sp_from_c(mid, t90, p_dbar);
		if (!(s >= sp))
			lo = mid;
		else
			hi = mid;
	}
	return 0.5 * (lo + hi);
}

double agri_ec25(double ec, double t, double alpha)
{
	return ec / (1 + alpha * (t - 25));
}

double agri_ec_from_sc(double sc, double t, double alpha, double t_ref)
{
	return sc * (1 + alpha * (t - t_ref));
}

double agri_water_density(double t)
{
	return 999.84847 + t * (6.337563e-2 + t * (-8.523829e-3 +
	       t * (6.943248e-5 - t * 3.821216e-7)));
}

double agri_head_m(double p_pa, double t90)
{
	return p_pa / (agri_water_density(t90) * AGRI_G);
}

static int unit_factor(const char *unit, const char *const *names,
		       const double *factors, size_t n, double *factor)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(unit, names[i]) == 0) {
			*factor = factors[i];
			return 0;
		}
	}
	return -EINVAL;
}

int agri_pressure_unit_pa(const char *unit, double *factor)
{
	static const char *const names[] = {"bar", "mbar", "hPa", "kPa", "MPa", "Pa", "psi"};
	static const double f[] = {1e5, 100, 100, 1e3, 1e6, 1, 6894.757293168};

	return unit_factor(unit, names, f, AGRI_ARRAY_SIZE(f), factor);
}

int agri_length_unit_m(const char *unit, double *factor)
{
	static const char *const names[] = {"m", "cm", "mm"};
	static const double f[] = {1, 0.01, 0.001};

	return unit_factor(unit, names, f, AGRI_ARRAY_SIZE(f), factor);
}
