/*
 * Reading quality (firmware/src/quality.c, issue 19): a dry probe, a
 * flatline, a reading pinned at full scale and one out of range are each
 * "suspect" with their reason; derived readings inherit it; a dry probe
 * stays dry until the water comes back; fresh water is not a dry probe.
 */
#include <math.h>
#include <string.h>

#include "agri/msg.h"
#include "agri/profile.h"
#include "quality.h"
#include "test.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)

/* The SenseCAP's specific conductance register, as its profile has it. */
static struct agri_register ec_reg(void)
{
	struct agri_register r;

	memset(&r, 0, sizeof(r));
	strcpy(r.metric, "specific_conductance");
	strcpy(r.unit, "mS/cm");
	r.scale = 0.001;
	r.has_min = r.has_max = true;
	r.min = 0;
	r.max = 20;
	r.has_full_scale = true;
	r.full_scale = 20;
	r.dry_below = 0.01;
	return r;
}

/* A decoded reading: q suspect outside min/max, as agri_register_decode. */
static struct agri_reading rd(const struct agri_register *reg, int64_t ts, double v)
{
	struct agri_reading r;

	memset(&r, 0, sizeof(r));
	r.ts_ms = ts;
	strcpy(r.sensor, "sonde1");
	strcpy(r.metric, reg->metric);
	r.value = v;
	r.has_value = true;
	r.q = (reg->has_min && v < reg->min) || (reg->has_max && v > reg->max) ?
		      AGRI_Q_SUSPECT : AGRI_Q_OK;
	return r;
}

/* Judges v at ts; returns the reason ("" when ok). */
static const char *judge(const struct agri_register *reg, struct quality_state *st,
			 int64_t ts, double v, double after_s, int64_t reads, bool level_dry)
{
	static struct agri_reading r;

	r = rd(reg, ts, v);
	quality_judge(reg, after_s, reads, level_dry, st, &r);
	if (r.q == AGRI_Q_OK)
		return r.why[0] ? "BUG: ok with a reason" : "";
	return r.q == AGRI_Q_SUSPECT ? r.why : "BUG: not suspect";
}

static void test_dry(void)
{
	struct agri_register reg = ec_reg();
	struct quality_state st;
	int64_t t = 1000 * HOUR_MS;

	/* Brackish water, then the tide leaves the probe in the air. */
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 7.3, 0, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + MIN_MS, 0.0, 0, 0, false), AGRI_WHY_DRY);
	CHECK_STR(judge(&reg, &st, t + 2 * MIN_MS, 0.004, 0, 0, false), AGRI_WHY_DRY);
	/* Latched for as long as it stays low, even past the day of memory. */
	CHECK_STR(judge(&reg, &st, t + 30 * HOUR_MS, 0.0, 0, 0, false), AGRI_WHY_DRY);
	/* The water comes back. */
	CHECK_STR(judge(&reg, &st, t + 31 * HOUR_MS, 6.9, 0, 0, false), "");
	CHECK(!st.dry);

	/* Very fresh water (0.15 mS/cm < 20 x 0.01) going low is not "dry". */
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 0.15, 0, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + MIN_MS, 0.008, 0, 0, false), "");
	/* Brackish a day and more ago says nothing about now. */
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 2.0, 0, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + 25 * HOUR_MS, 0.0, 0, 0, false), "");
	/* The station's water level below the probe: dry whatever it reads. */
	CHECK_STR(judge(&reg, &st, t + 26 * HOUR_MS, 3.5, 0, 0, true), AGRI_WHY_DRY);
	/* Registers without dry_below are never dry. */
	reg.dry_below = 0;
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 7.3, 0, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + MIN_MS, 0.0, 0, 0, true), "");
}

static void test_full_scale_and_range(void)
{
	struct agri_register reg = ec_reg();
	struct quality_state st;
	int64_t t = 5 * HOUR_MS;

	quality_init(&st);
	/* Vàm Kênh in April: past 20 mS/cm the SenseCAP reads 20.000. */
	CHECK_STR(judge(&reg, &st, t, 19.999, 0, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + MIN_MS, 20.0, 0, 0, false), AGRI_WHY_FULL_SCALE);
	/* Over max but no full scale declared: out of range. */
	reg.has_full_scale = false;
	CHECK_STR(judge(&reg, &st, t + 2 * MIN_MS, 20.5, 0, 0, false), AGRI_WHY_RANGE);
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t + 3 * MIN_MS, -0.5, 0, 0, false), AGRI_WHY_RANGE);
	/* A reading without a value stays an error. */
	struct agri_reading r = rd(&reg, t, 1);
	r.has_value = false;
	r.q = AGRI_Q_ERROR;
	quality_judge(&reg, 0, 0, false, &st, &r);
	CHECK_INT(r.q, AGRI_Q_ERROR);
	CHECK_STR(r.why, "");
}

static void test_stuck(void)
{
	struct agri_register reg = ec_reg();
	struct quality_state st;
	int64_t t = 7 * HOUR_MS;

	/* stuck_after_s: the same value to the last digit for longer. */
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 4.812, 3600, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + 30 * MIN_MS, 4.812, 3600, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + 60 * MIN_MS, 4.812, 3600, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + 61 * MIN_MS, 4.812, 3600, 0, false), AGRI_WHY_STUCK);
	CHECK_STR(judge(&reg, &st, t + 62 * MIN_MS, 4.813, 3600, 0, false), "");
	CHECK_STR(judge(&reg, &st, t + 63 * MIN_MS, 4.813, 3600, 0, false), "");
	/* The station's count rule (stuck_reads). */
	quality_init(&st);
	for (int i = 0; i < 4; i++)
		CHECK_STR(judge(&reg, &st, t + i, 1.5, 0, 5, false), "");
	CHECK_STR(judge(&reg, &st, t + 5, 1.5, 0, 5, false), AGRI_WHY_STUCK);
	/* A flatline pinned at full scale says "full_scale"; a dry one "dry". */
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 20, 600, 2, false), AGRI_WHY_FULL_SCALE);
	CHECK_STR(judge(&reg, &st, t + HOUR_MS, 20, 600, 2, false), AGRI_WHY_FULL_SCALE);
	quality_init(&st);
	CHECK_STR(judge(&reg, &st, t, 9, 600, 2, false), "");
	CHECK_STR(judge(&reg, &st, t + HOUR_MS, 0, 600, 2, false), AGRI_WHY_DRY);
	CHECK_STR(judge(&reg, &st, t + 2 * HOUR_MS, 0, 600, 2, false), AGRI_WHY_DRY);
	/* Registers whose value may repeat are never stuck. */
	reg.stable = true;
	quality_init(&st);
	for (int i = 0; i < 10; i++)
		CHECK_STR(judge(&reg, &st, t + i * HOUR_MS, 1, 600, 2, false), "");
}

static void test_inherit(void)
{
	struct agri_register reg = ec_reg();
	/* (temperatures below 20 here: these readings share the EC register's range) */
	struct agri_reading c = rd(&reg, 1, 0), t = rd(&reg, 1, 18.1), s = rd(&reg, 1, 0);

	quality_mark(&c, AGRI_WHY_DRY);
	quality_inherit(&s, &c, &t);
	CHECK_INT(s.q, AGRI_Q_SUSPECT);
	CHECK_STR(s.why, AGRI_WHY_DRY);
	c = rd(&reg, 1, 7);
	quality_mark(&t, AGRI_WHY_STUCK);
	s = rd(&reg, 1, 4);
	quality_inherit(&s, &c, &t);
	CHECK_STR(s.why, AGRI_WHY_STUCK);
	t = rd(&reg, 1, 18);
	s = rd(&reg, 1, 4);
	quality_inherit(&s, &c, &t);
	CHECK_INT(s.q, AGRI_Q_OK);
	CHECK_STR(s.why, "");
	/* A suspect input without a reason (an old path) still says something. */
	c.q = AGRI_Q_SUSPECT;
	quality_inherit(&s, &c, NULL);
	CHECK_STR(s.why, AGRI_WHY_RANGE);
	CHECK(agri_why_valid(s.why));
}

int main(void)
{
	test_dry();
	test_full_scale_and_range();
	test_stuck();
	test_inherit();
	return test_main("test_firmware_quality");
}
