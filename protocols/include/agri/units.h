/*
 * Units: practical salinity (PSS-78, UNESCO 1983) with the Hill et al.
 * (1986) low-salinity extension as in TEOS-10's gsw_sp_from_c, and EC
 * temperature compensation. Pure functions; see docs/units.md.
 */
#ifndef AGRI_UNITS_H
#define AGRI_UNITS_H

/* Conductivity of standard seawater C(35, 15 °C, 0) in mS/cm. */
#define AGRI_C3515 42.914

/*
 * PSS-78 from the conductivity ratio R = C / C(35,15,0), temperature t68
 * (IPTS-68, °C) and sea pressure p (dbar), without the low-salinity
 * extension (the UNESCO 1983 check values). Returns 0 for R < 5e-4 (the
 * SAL78 trap).
 */
double agri_sal78(double r, double t68, double p_dbar);

/*
 * Practical salinity from conductivity (mS/cm), temperature (ITS-90, °C)
 * and sea pressure (dbar), with the Hill extension below SP 2 (continuous
 * with PSS-78 at 2). Returns NaN for negative conductivity or non-finite
 * input; 0 for zero conductivity. Like gsw_sp_from_c, also NaN where the
 * extension goes negative: C below about 0.002 mS/cm at 25 °C.
 */
double agri_sp_from_c(double c_mScm, double t90, double p_dbar);

/*
 * Inverse: conductivity (mS/cm) giving practical salinity sp at t90, p
 * (used by the simulator and to turn salinity thresholds into EC).
 * Returns NaN when sp is outside 0..42.
 */
double agri_c_from_sp(double sp, double t90, double p_dbar);

/* EC at 25 °C from EC at t with linear coefficient alpha (per °C, e.g. 0.02). */
double agri_ec25(double ec, double t, double alpha);

/*
 * In-situ conductivity at t from specific conductance sc, i.e. undoes a
 * probe's linear temperature compensation: sc * (1 + alpha (t - t_ref)),
 * alpha per °C (0.02 for 2 %/°C), t_ref the reference temperature (25).
 * The inverse of agri_ec25() for t_ref 25.
 */
double agri_ec_from_sc(double sc, double t, double alpha, double t_ref);

/* Standard gravity, m/s². */
#define AGRI_G 9.80665

/*
 * Density of fresh water (kg/m³) at t90 °C, 0..40 °C: Jones & Harris
 * (1992) eq. 6, as Keller's level computation uses it. Delta water at
 * 4 g/L is about 0.3 % denser; see docs/units.md.
 */
double agri_water_density(double t90);

/*
 * Height (m) of a fresh-water column exerting p_pa pascals at t90 °C:
 * p / (rho(t) g). Used for water level from a pressure sensor.
 */
double agri_head_m(double p_pa, double t90);

/*
 * Pascals per unit of a pressure unit ("bar", "mbar", "hPa", "kPa", "MPa",
 * "Pa", "psi"), or metres per unit of a length unit ("m", "cm", "mm").
 * Returns 0 and writes *factor, or -EINVAL for any other unit.
 */
int agri_pressure_unit_pa(const char *unit, double *factor);
int agri_length_unit_m(const char *unit, double *factor);

#endif
