/*
 * PSS-78 and the Hill extension (protocols/src/units.c) against
 * docs/units.md "Check values": the UNESCO 1983 check values, the gsw
 * SP_from_C low-salinity table (1e-6), the C_from_SP table (1e-3),
 * continuity at SP 2, and EC25 compensation.
 */
#include <errno.h>
#include "agri/buf.h"
#include "agri/units.h"
#include "test.h"

static void test_unesco(void)
{
	CHECK_NEAR(agri_sal78(1.0, 15, 0), 35.000000, 1e-6);
	CHECK_NEAR(agri_sal78(1.2, 20, 2000), 37.245628, 1e-6);
	CHECK_NEAR(agri_sal78(0.65, 5, 1500), 27.995347, 1e-6);
	CHECK_NEAR(agri_sal78(1.888091, 40, 10000), 39.999996, 1e-6);
	CHECK_NEAR(agri_sal78(1.8880911555787682, 40, 10000), 40.000000, 1e-6);
	CHECK_NEAR(agri_sal78(5e-5, 15, 0), 0.0, 0);
	/* PSS-78 proper agrees with sp_from_c above SP 2 (t68 = 1.00024 t90). */
	CHECK_NEAR(agri_sp_from_c(1.2 * AGRI_C3515, 20 / 1.00024, 2000), 37.245628, 1e-6);
}

static const struct {
	double c, t, sp;
} low[] = {
	{0.100, 25, 0.046209}, {0.100, 30, 0.041704},
	{0.300, 28, 0.133916},
	{0.500, 25, 0.240378}, {0.500, 30, 0.217196},
	{1.000, 25, 0.492451}, {1.000, 28, 0.462652}, {1.000, 30, 0.444475},
	{2.000, 25, 1.016600}, {2.000, 28, 0.954605}, {2.000, 30, 0.916790},
	{3.000, 25, 1.558628}, {3.000, 30, 1.405050},
	{4.000, 28, 1.984149},
	{5.000, 25, 2.679605}, {5.000, 30, 2.414499},
	{8.000, 28, 4.154382},
	{10.000, 25, 5.626644}, {10.000, 30, 5.067015},
	{15.000, 25, 8.717010}, {15.000, 28, 8.176952}, {15.000, 30, 7.847553},
	{20.000, 25, 11.914998}, {20.000, 30, 10.724158},
	{42.914, 25, 27.594438}, {42.914, 30, 24.813113},
	{50.000, 25, 32.733167}, {50.000, 30, 29.422940},
};

static const struct {
	double sp, c25, c30;
} inv[] = {
	{0.25, 0.5194, 0.5733}, {0.5, 1.0147, 1.1199}, {1.0, 1.9689, 2.1724},
	{2.0, 3.7967, 4.1877},  {4.0, 7.2767, 8.0228}, {5.0, 8.9599, 9.8769},
	{10.0, 17.0243, 18.7551}, {35.0, 53.0710, 58.3570},
};

static void test_low_salinity(void)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(low); i++)
		CHECK_NEAR(agri_sp_from_c(low[i].c, low[i].t, 0), low[i].sp, 1e-6);
	CHECK_NEAR(agri_sp_from_c(0, 25, 0), 0, 0);
	CHECK(isnan(agri_sp_from_c(-0.1, 25, 0)));
	CHECK(isnan(agri_sp_from_c(NAN, 25, 0)));
	CHECK(isnan(agri_sp_from_c(1, INFINITY, 0)));
	CHECK(isnan(agri_sp_from_c(1e-4, 25, 0))); /* as gsw: Hill term < 0 */
}

static void test_inverse(void)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(inv); i++) {
		double c25 = agri_c_from_sp(inv[i].sp, 25, 0);
		double c30 = agri_c_from_sp(inv[i].sp, 30, 0);

		CHECK_NEAR(c25, inv[i].c25, 1e-3);
		CHECK_NEAR(c30, inv[i].c30, 1e-3);
		CHECK_NEAR(agri_sp_from_c(c25, 25, 0), inv[i].sp, 1e-9);
	}
	for (double sp = 0.001; sp <= 42; sp *= 1.7) {
		double c = agri_c_from_sp(sp, 28, 0);

		CHECK_NEAR(agri_sp_from_c(c, 28, 0), sp, 1e-9);
	}
	CHECK_NEAR(agri_c_from_sp(0, 25, 0), 0, 0);
	CHECK_NEAR(agri_sp_from_c(agri_c_from_sp(30, 10, 3000), 10, 3000), 30, 1e-9);
	CHECK(isnan(agri_c_from_sp(-0.1, 25, 0)));
	CHECK(isnan(agri_c_from_sp(42.5, 25, 0)));
	CHECK(isnan(agri_c_from_sp(NAN, 25, 0)));
}

/* The Hill extension meets PSS-78 at SP 2 without a step. */
static void test_continuity(void)
{
	static const double temps[] = {0, 10, 25, 30, 35};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(temps); i++) {
		double t = temps[i], c = agri_c_from_sp(2, t, 0);
		double below = agri_sp_from_c(c * (1 - 1e-9), t, 0);
		double above = agri_sp_from_c(c * (1 + 1e-9), t, 0);

		CHECK(below < 2 && above >= 2);
		CHECK_NEAR(below, 2, 1e-7);
		CHECK_NEAR(above, 2, 1e-7);
		CHECK_NEAR(agri_sal78(c * (1 + 1e-9) / AGRI_C3515, t * 1.00024, 0),
			   above, 1e-12);
	}
}

static void test_ec25(void)
{
	CHECK_NEAR(agri_ec25(1.0, 25, 0.02), 1.0, 1e-12);
	CHECK_NEAR(agri_ec25(1.1, 30, 0.02), 1.0, 1e-12);
	CHECK_NEAR(agri_ec25(0.9, 20, 0.02), 1.0, 1e-12);
	/* undoing a probe's compensation is the inverse */
	for (double t = 0; t <= 35; t += 0.5)
		CHECK_NEAR(agri_ec_from_sc(agri_ec25(7.3, t, 0.02), t, 0.02, 25), 7.3, 1e-12);
	CHECK_NEAR(agri_ec_from_sc(1.0, 20, 0.0191, 20), 1.0, 0);
	/* A dry probe's 0 is salinity 0 at every temperature, not NaN. */
	for (double t = 0; t <= 35; t += 0.25)
		CHECK_NEAR(agri_sp_from_c(0, t, 0), 0, 0);
}

/* Level: Jones & Harris density, head of a water column, unit factors. */
static void test_level_units(void)
{
	double f = 0;

	CHECK_NEAR(agri_water_density(4), 999.97, 0.01);
	CHECK_NEAR(agri_water_density(20), 998.20, 0.01);
	CHECK_NEAR(agri_head_m(1e5, 20), 1e5 / (998.2067 * 9.80665), 1e-4); /* 10.216 m/bar */
	CHECK_INT(agri_pressure_unit_pa("bar", &f), 0);
	CHECK_NEAR(f, 1e5, 0);
	CHECK_INT(agri_pressure_unit_pa("mbar", &f), 0);
	CHECK_NEAR(f, 100, 0);
	CHECK_INT(agri_pressure_unit_pa("psi", &f), 0);
	CHECK_NEAR(f, 6894.757, 1e-3);
	CHECK_INT(agri_pressure_unit_pa("m", &f), -EINVAL);
	CHECK_INT(agri_length_unit_m("cm", &f), 0);
	CHECK_NEAR(f, 0.01, 0);
	CHECK_INT(agri_length_unit_m("bar", &f), -EINVAL);
}

int main(void)
{
	test_unesco();
	test_low_salinity();
	test_inverse();
	test_continuity();
	test_ec25();
	test_level_units();
	return test_main("test_proto_units");
}
