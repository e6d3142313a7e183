/*
 * agri-sim framing and devices: CRC-16/Modbus vectors (docs/profiles.md),
 * RTU request lengths, register encoding per profile (word orders, scale),
 * exception codes, gaps, counters cleared on read, faults, the command
 * line and --start.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/profiles.h"
#include "agri/regmap.h"
#include "agri/units.h"
#include "device.h"
#include "rtu.h"
#include "sim.h"
#include "test.h"

#define PROFILES AGRI_SOURCE_DIR "/protocols/profiles"
#define T0 1743552000000LL /* 2025-04-02T00:00Z = 07:00 local */

static void test_crc(void)
{
	static const struct {
		uint8_t req[6];
		uint8_t lo, hi;
	} v[] = {
		{{0x01, 0x03, 0x00, 0x00, 0x00, 0x02}, 0xC4, 0x0B},
		{{0x01, 0x03, 0x00, 0x00, 0x00, 0x01}, 0x84, 0x0A},
		{{0x01, 0x03, 0x00, 0x01, 0x00, 0x01}, 0xD5, 0xCA},
		{{0x01, 0x03, 0x00, 0x02, 0x00, 0x01}, 0x25, 0xCA},
		{{0x01, 0x03, 0x00, 0x03, 0x00, 0x01}, 0x74, 0x0A},
		{{0xFF, 0x03, 0x07, 0xD0, 0x00, 0x01}, 0x91, 0x59},
		{{0x01, 0x04, 0x31, 0x00, 0x00, 0x12}, 0x7E, 0xFB},
		{{0x01, 0x04, 0x33, 0x1A, 0x00, 0x03}, 0x9E, 0x88},
		{{0x01, 0x03, 0x26, 0x00, 0x00, 0x05}, 0x8E, 0x81},
		{{0x01, 0x04, 0x00, 0x00, 0x00, 0x06}, 0x70, 0x08},
	};
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(v); i++) {
		uint16_t c = rtu_crc16(v[i].req, 6);
		CHECK_INT(c & 0xFF, v[i].lo);
		CHECK_INT(c >> 8, v[i].hi);
	}
}

static void test_request_len(void)
{
	uint8_t rd[8] = {1, 3, 0, 0, 0, 2, 0xC4, 0x0B};
	uint8_t wr[9] = {1, 0x10, 0, 0, 0, 2, 4, 0, 0};
	uint8_t odd[2] = {1, 0x2B};

	CHECK_INT(rtu_request_len(rd, 1), 0);
	CHECK_INT(rtu_request_len(rd, 8), 8);
	CHECK_INT(rtu_request_len(wr, 6), 0);
	CHECK_INT(rtu_request_len(wr, 7), 13);
	CHECK_INT(rtu_request_len(odd, 2), -1);
	CHECK(rtu_silence_us(9600) > 3500 && rtu_silence_us(9600) < 4500);
	CHECK_INT(rtu_silence_us(115200), 1750);
}

static int load(struct device *d, const char *name, int slave)
{
	static struct agri_profile p;
	struct model_params mp;
	struct agri_err e;
	char file[512];
	int rc = profiles_load(PROFILES, name, &p, file, sizeof(file), &e);

	CHECK_INT(rc, 0);
	if (rc)
		return rc;
	model_params_default(&mp);
	device_init(d, slave, &p, &mp, T0);
	return 0;
}

static double decode(const struct device *d, const char *metric,
		     const uint16_t *words, uint16_t base)
{
	const struct agri_register *r = agri_profile_find(&d->prof, metric);
	double v = NAN;
	bool has;
	enum agri_quality q;

	if (!r)
		return NAN;
	agri_register_decode(r, words + (r->addr - base), &v, &has, &q);
	return v;
}

static void test_sensecap(void)
{
	static struct device d;
	uint16_t w[8];

	if (load(&d, "sensecap-s-ec-01", 1))
		return;
	/* One planned read 0..4 (gap at 1 allowed, max_gap 1). */
	CHECK_INT(device_read(&d, 3, 0, 5, T0, w, true), 0);
	CHECK_INT(w[1], 0);
	double t = decode(&d, "water_temperature", w, 0);
	double c = decode(&d, "specific_conductance", w, 0);
	double truth, tt;
	CHECK(model_value(&d.params, "water_temperature", "°C", T0, &truth) == 0);
	CHECK_NEAR(t, truth, 0.006);
	tt = truth;
	/* EC compensated to 25 °C with the device's 2.0 %/°C, as the SenseCAP
	 * computes it (issue 19); it saturates at 20 mS/cm. */
	CHECK(model_value(&d.params, "conductivity", "mS/cm", T0, &truth) == 0);
	CHECK_NEAR(c, fmin(truth / (1 + 0.02 * (tt - 25)), 20.0), 0.0006);
	CHECK(tt > 26 && c < truth * 0.97);
	/* Exceptions: FC 04 absent, address beyond, count 0 / 126, only the gap. */
	CHECK_INT(device_read(&d, 4, 0, 1, T0, w, true), MB_EX_ILLEGAL_FUNCTION);
	CHECK_INT(device_read(&d, 3, 5, 1, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
	CHECK_INT(device_read(&d, 3, 0, 6, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
	CHECK_INT(device_read(&d, 3, 1, 1, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
	CHECK_INT(device_read(&d, 3, 0, 0, T0, w, true), MB_EX_ILLEGAL_VALUE);
	CHECK_INT(device_read(&d, 3, 0, 126, T0, w, true), MB_EX_ILLEGAL_VALUE);
	CHECK_INT(device_read(&d, 3, 2, 1, T0, w, true), 0);

	/* Whole PDUs. */
	uint8_t req[5] = {3, 0, 0, 0, 5}, resp[260];
	enum device_action act;
	size_t n = device_request(&d, req, 5, T0, 0, resp, sizeof(resp), &act);
	CHECK_INT(act, DEVICE_REPLY);
	CHECK_INT(n, 12);
	CHECK_INT(resp[0], 3);
	CHECK_INT(resp[1], 10);
	uint8_t bad[5] = {6, 0, 0, 0, 1};
	n = device_request(&d, bad, 5, T0, 0, resp, sizeof(resp), &act);
	CHECK_INT(n, 2);
	CHECK_INT(resp[0], 0x86);
	CHECK_INT(resp[1], MB_EX_ILLEGAL_ADDRESS); /* takes FC 06, not there */

	/* The compensation coefficient: served at 0x0022 (20 = 2.0 %/°C),
	 * and a technician may write another one (FC 06), which the device
	 * then uses. */
	CHECK_INT(device_read(&d, 3, 34, 1, T0, w, true), 0);
	CHECK_INT(w[0], 20);
	uint8_t coef[5] = {6, 0, 34, 0, 18};
	n = device_request(&d, coef, 5, T0, 0, resp, sizeof(resp), &act);
	CHECK_INT(n, 5);
	CHECK(!memcmp(resp, coef, 5));
	CHECK_NEAR(d.coef_pct, 1.8, 1e-12);
	CHECK_INT(device_read(&d, 3, 34, 1, T0, w, true), 0);
	CHECK_INT(w[0], 18);
	CHECK_INT(device_read(&d, 3, 0, 5, T0, w, true), 0);
	CHECK_NEAR(decode(&d, "specific_conductance", w, 0),
		   fmin(truth / (1 + 0.018 * (tt - 25)), 20.0), 0.0006);
}

/* Yosemitech Y520: no fresh readings until its start measurement (FC 10
 * at 0x1C00 with no registers); the Y4000's brush; dry and drift faults. */
static void test_commands_and_probe_faults(void)
{
	static struct device y, s, a;
	uint16_t w[32];
	uint8_t start[6] = {0x10, 0x1C, 0x00, 0x00, 0x00, 0x00}, resp[260];
	uint8_t other[6] = {0x10, 0x1D, 0x00, 0x00, 0x00, 0x00};
	enum device_action act;
	struct fault f;
	const char *why;
	size_t n;
	double truth;

	if (load(&y, "yosemitech-y520", 1) == 0) {
		CHECK(!y.started);
		CHECK_INT(device_read(&y, 3, 9728, 4, T0, w, true), 0);
		CHECK_NEAR(decode(&y, "water_temperature", w, 9728), 0, 0);
		CHECK_NEAR(decode(&y, "specific_conductance", w, 9728), 0, 0);
		n = device_request(&y, other, 6, T0, 0, resp, sizeof(resp), &act);
		CHECK_INT(n, 2);
		CHECK_INT(resp[1], MB_EX_ILLEGAL_ADDRESS);
		CHECK(!y.started);
		n = device_request(&y, start, 6, T0, 0, resp, sizeof(resp), &act);
		CHECK_INT(n, 5);
		CHECK(!memcmp(resp, start, 5));
		CHECK(y.started);
		CHECK_INT(device_read(&y, 3, 9728, 4, T0, w, true), 0);
		CHECK(model_value(&y.params, "water_temperature", "°C", T0, &truth) == 0);
		CHECK_NEAR(decode(&y, "water_temperature", w, 9728), truth, 1e-4);
		/* A malformed FC 16 (byte count disagrees). */
		uint8_t bad16[7] = {0x10, 0x1C, 0x00, 0x00, 0x01, 0x02, 0x00};
		n = device_request(&y, bad16, 7, T0, 0, resp, sizeof(resp), &act);
		CHECK_INT(resp[1], MB_EX_ILLEGAL_VALUE);
	}
	if (load(&y, "yosemitech-y4000", 1) == 0) {
		uint8_t brush[6] = {0x10, 0x2F, 0x00, 0x00, 0x00, 0x00};
		CHECK(y.started); /* measures without a start */
		n = device_request(&y, brush, 6, T0, 0, resp, sizeof(resp), &act);
		CHECK_INT(n, 5);
		CHECK_INT(y.n_wipes, 1);
	}
	/* EPEVER takes no writes at all. */
	if (load(&y, "epever-tracer", 1) == 0) {
		uint8_t wr[5] = {6, 0x90, 0x00, 0, 1};
		n = device_request(&y, wr, 5, T0, 0, resp, sizeof(resp), &act);
		CHECK_INT(resp[1], MB_EX_ILLEGAL_FUNCTION);
	}
	/* Aqua TROLL: the parameter IDs its profile expects are served. */
	if (load(&a, "insitu-aquatroll-400", 1) == 0) {
		CHECK_INT(device_read(&a, 3, 545, 18, T0, w, true), 0);
		CHECK_INT(w[2], 9);
		CHECK_INT(w[10], 10);
		CHECK_INT(device_read(&a, 3, 563, 1, T0, w, true), 0);
		CHECK_INT(w[0], 12);
		CHECK_INT(device_read(&a, 3, 633, 2, T0, w, true), 0);
		double alpha;
		agri_reg_unpack(AGRI_REG_F32, AGRI_ORDER_ABCD, w, &alpha);
		CHECK_NEAR(alpha, 0.0191, 1e-7);
	}
	/* dry: the conductivity cell reads 0 from ARG hours on; the
	 * temperature is still read. */
	if (load(&s, "sensecap-s-ec-01", 1) == 0) {
		CHECK_INT(fault_parse("1:dry:2", &f, &why), 0);
		CHECK_INT(f.mode, FAULT_DRY);
		device_add_fault(&s, &f);
		CHECK(device_value(&s, 1, T0 + 3600000, T0, true) > 1);
		CHECK_NEAR(device_value(&s, 1, T0 + 3 * 3600000, T0, true), 0, 0);
		CHECK(device_value(&s, 0, T0 + 3 * 3600000, T0, true) > 20);
		CHECK_INT(fault_parse("1:dry:x", &f, &why), -EINVAL);
	}
	/* drift: fouling lowers the conductivity, not the temperature. */
	if (load(&s, "sensecap-s-ec-01", 1) == 0) {
		s.params.fixed_salinity = 4; /* below full scale */
		CHECK_INT(fault_parse("1:drift:5", &f, &why), 0);
		device_add_fault(&s, &f);
		int64_t later = T0 + 3 * 86400000LL;
		CHECK_NEAR(device_value(&s, 1, later, T0, true),
			   0.85 * device_value(&s, 1, later, T0, false), 1e-9);
		CHECK_NEAR(device_value(&s, 0, later, T0, true),
			   device_value(&s, 0, later, T0, false), 0);
	}
	/* drift:3/5: fouling that began five days before the start reads
	 * 15 % low at the start, 24 % three days on. */
	if (load(&s, "sensecap-s-ec-01", 1) == 0) {
		s.params.fixed_salinity = 4;
		CHECK_INT(fault_parse("1:drift:3/5", &f, &why), 0);
		device_add_fault(&s, &f);
		CHECK_NEAR(device_value(&s, 1, T0, T0, true), 0.85 * device_value(&s, 1, T0, T0, false),
			   1e-9);
		int64_t later = T0 + 3 * 86400000LL;
		CHECK_NEAR(device_value(&s, 1, later, T0, true),
			   0.76 * device_value(&s, 1, later, T0, false), 1e-9);
		CHECK_INT(fault_parse("1:drift:3/x", &f, &why), -EINVAL);
		CHECK_INT(fault_parse("1:drift:3/-1", &f, &why), -EINVAL);
	}
}

static void test_word_orders(void)
{
	static struct device y, e, ysi;
	uint16_t w[32];

	/* Yosemitech: f32 DCBA. */
	if (load(&y, "yosemitech-y4000", 1) == 0) {
		CHECK_INT(device_read(&y, 3, 9729, 16, T0, w, true), 0);
		double ph = decode(&y, "ph", w, 9729), truth;
		CHECK(model_value(&y.params, "ph", "pH", T0, &truth) == 0);
		CHECK_NEAR(ph, truth, 1e-5);
		/* DCBA: the low byte of the float comes first. */
		uint16_t abcd[2];
		agri_reg_pack(AGRI_REG_F32, AGRI_ORDER_ABCD, (float)truth, abcd);
		CHECK_INT(w[6], (uint16_t)((abcd[1] >> 8) | (abcd[1] << 8)));
		CHECK_INT(device_read(&y, 3, 9728, 2, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
	}
	/* EPEVER: u32/s32 CDAB (low word first), FC 04. */
	if (load(&e, "epever-tracer", 1) == 0) {
		int64_t night = T0 + 14 * 3600000LL; /* 21:00 local */
		CHECK_INT(device_read(&e, 4, 13082, 3, night, w, true), 0);
		double cur = decode(&e, "battery_current", w, 13082);
		CHECK(cur < 0); /* discharging at night */
		CHECK_INT(w[2], 0xFFFF); /* high word of a negative s32, last */
		CHECK_INT(device_read(&e, 3, 13082, 1, night, w, true), MB_EX_ILLEGAL_FUNCTION);
		CHECK_INT(device_read(&e, 4, 12544, 4, night, w, true), 0);
		CHECK_NEAR(decode(&e, "pv_power", w, 12544), 0, 1e-9);
	}
	/* YSI: even start and count only, NaN in the reserved words. */
	if (load(&ysi, "ysi-odo-rtu", 1) == 0) {
		CHECK_INT(device_read(&ysi, 4, 1, 2, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
		CHECK_INT(device_read(&ysi, 4, 0, 3, T0, w, true), MB_EX_ILLEGAL_ADDRESS);
		CHECK_INT(device_read(&ysi, 4, 0, 18, T0, w, true), 0);
		CHECK_INT(w[4], 0xFFFF);
		double c = decode(&ysi, "conductivity", w, 0), t = decode(&ysi, "water_temperature", w, 0);
		double sal = decode(&ysi, "salinity_probe", w, 0);
		CHECK_NEAR(agri_sp_from_c(c, t, 0), sal, 1e-3);
	}
}

static void test_counters_and_faults(void)
{
	static struct device d;
	uint16_t w[16];
	int64_t dusk = T0 + 11 * 3600000LL; /* 18:00 local */

	if (load(&d, "agri-lighttrap", 2))
		return;
	d.params.rain_prob = 0;
	/* Daytime: lamp off, nothing counted. */
	CHECK_INT(device_read(&d, 4, 0, 10, T0 + 3600000, w, true), 0);
	for (int i = 0; i < 5; i++)
		CHECK_INT(w[i], 0);
	CHECK_INT(w[5], 0);
	/* Evening: counts since the last read, cleared on read. */
	CHECK_INT(device_read(&d, 4, 0, 10, dusk + 2 * 3600000, w, true), 0);
	CHECK(w[0] > 0);
	CHECK_INT(w[5], 1);
	CHECK_INT(device_read(&d, 4, 0, 10, dusk + 2 * 3600000, w, true), 0);
	CHECK_INT(w[0], 0);
	double bv = decode(&d, "battery_voltage", w, 0);
	CHECK(bv >= 12.2 && bv <= 14.4);

	/* Faults. */
	struct fault f;
	const char *why;
	CHECK_INT(fault_parse("2:timeout", &f, &why), 0);
	CHECK_NEAR(f.rate, 1, 0);
	CHECK_INT(fault_parse("2:crc:0.3", &f, &why), 0);
	CHECK_NEAR(f.rate, 0.3, 0);
	CHECK_INT(fault_parse("2:dropout:10/4", &f, &why), 0);
	CHECK(!fault_dropped(&f, 1000));
	CHECK(fault_dropped(&f, 7000));
	CHECK(!fault_dropped(&f, 10500));
	CHECK_INT(fault_parse("2:bogus", &f, &why), -EINVAL);
	CHECK_INT(fault_parse("0:timeout", &f, &why), -EINVAL);
	CHECK_INT(fault_parse("2:crc:1.5", &f, &why), -EINVAL);
	int fired = 0;
	CHECK_INT(fault_parse("2:crc:0.3", &f, &why), 0);
	for (int i = 0; i < 1000; i++)
		fired += fault_fires(&f, 1, (uint64_t)i);
	CHECK(fired > 230 && fired < 370);

	uint8_t req[5] = {4, 0, 0, 0, 10}, resp[260];
	enum device_action act;
	CHECK_INT(fault_parse("2:exception", &f, &why), 0);
	device_add_fault(&d, &f);
	size_t n = device_request(&d, req, 5, dusk, 0, resp, sizeof(resp), &act);
	CHECK_INT(n, 2);
	CHECK_INT(resp[0], 0x84);
	CHECK_INT(resp[1], MB_EX_DEVICE_FAILURE);
	d.n_faults = 0;
	CHECK_INT(fault_parse("2:timeout", &f, &why), 0);
	device_add_fault(&d, &f);
	device_request(&d, req, 5, dusk, 0, resp, sizeof(resp), &act);
	CHECK_INT(act, DEVICE_SILENT);
	d.n_faults = 0;
	CHECK_INT(fault_parse("2:crc", &f, &why), 0);
	device_add_fault(&d, &f);
	device_request(&d, req, 5, dusk, 0, resp, sizeof(resp), &act);
	CHECK_INT(act, DEVICE_CORRUPT);

	/* Stuck and drift. */
	static struct device s;
	if (load(&s, "yosemitech-y520", 1) == 0) {
		s.started = true; /* as the station's init does */
		double v0 = device_value(&s, 1, T0, T0, true);
		CHECK_INT(fault_parse("1:stuck", &f, &why), 0);
		device_add_fault(&s, &f);
		CHECK_NEAR(device_value(&s, 1, T0 + 5 * 3600000LL, T0, true), v0, 0);
		s.n_faults = 0;
		CHECK_INT(fault_parse("1:drift:10", &f, &why), 0);
		device_add_fault(&s, &f);
		int64_t later = T0 + 2 * 86400000LL;
		CHECK_NEAR(device_value(&s, 1, later, T0, true),
			   0.8 * device_value(&s, 1, later, T0, false), 1e-9);
	}
}

static void test_cli(void)
{
	static struct sim s;
	char why[300];
	int64_t ms;
	char *ok[] = {"agri-sim", "--tcp", "127.0.0.1:1502", "--slave",
		      "1:sensecap-s-ec-01,distance_km=18,phase_h=2", "--slave", "3",
		      "--profile", "epever-tracer", "--fault", "3:crc:0.5",
		      "--start", "2025-04-01T06:30", "--seed", "7", NULL};
	CHECK_INT(sim_parse_args(&s, 15, ok, why, sizeof(why)), 0);
	CHECK_INT(s.n_slaves, 2);
	CHECK_INT(s.tcp_port, 1502);
	CHECK_STR(s.tcp_host, "127.0.0.1");
	CHECK_INT(s.seed, 7);
	CHECK_INT(s.start_ms, 1743489000000LL);
	CHECK_INT(sim_load(&s, why, sizeof(why)), 0);
	CHECK(sim_device(&s, 3) != NULL);
	CHECK_INT(sim_device(&s, 3)->n_faults, 1);
	CHECK_NEAR(sim_device(&s, 1)->params.distance_km, 18, 0);
	CHECK_NEAR(sim_device(&s, 1)->params.tide_phase_h, 2, 0);
	sim_free(&s);

	char *bad1[] = {"agri-sim", "--tcp", "x", "--slave", "1:a", NULL};
	CHECK_INT(sim_parse_args(&s, 5, bad1, why, sizeof(why)), -EINVAL);
	char *bad2[] = {"agri-sim", "--tcp", "h:1", "--slave", "1:a,bogus=1", NULL};
	CHECK_INT(sim_parse_args(&s, 5, bad2, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "bogus") != NULL);
	char *bad3[] = {"agri-sim", "--tcp", "h:1", "--slave", "1", NULL};
	CHECK_INT(sim_parse_args(&s, 5, bad3, why, sizeof(why)), -EINVAL);
	char *bad4[] = {"agri-sim", "--slave", "1:a", NULL};
	CHECK_INT(sim_parse_args(&s, 3, bad4, why, sizeof(why)), -EINVAL);
	char *badp[] = {"agri-sim", "--tcp", "h:1", "--slave", "1:no-such-profile", NULL};
	CHECK_INT(sim_parse_args(&s, 5, badp, why, sizeof(why)), 0);
	snprintf(s.profiles_dir, sizeof(s.profiles_dir), "%s", PROFILES);
	CHECK_INT(sim_load(&s, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "no-such-profile.json: ") != NULL);

	CHECK_INT(sim_parse_start("2025-04-01", &ms), 0);
	CHECK_INT(ms, 1743465600000LL);
	CHECK_INT(sim_parse_start("2025-02-30", &ms), -EINVAL);
	CHECK_INT(sim_parse_start("2025-04-01T25:00", &ms), -EINVAL);
	CHECK_INT(sim_parse_start("April", &ms), -EINVAL);
}

int main(void)
{
	test_crc();
	test_request_len();
	test_sensecap();
	test_commands_and_probe_faults();
	test_word_orders();
	test_counters_and_faults();
	test_cli();
	return test_main("test_sim_device");
}
