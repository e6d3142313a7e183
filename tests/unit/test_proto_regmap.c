/*
 * Register packing and unpacking (protocols/src/regmap.c): every row of
 * docs/profiles.md "Word order: test vectors" in all four orders both
 * ways, the EPEVER signed 32-bit vector, 16-bit edges, 64-bit round trips and sentinels.
 */
#include <errno.h>

#include "agri/buf.h"
#include "agri/regmap.h"
#include "test.h"

static const struct {
	double value;
	uint16_t w[4][2]; /* ABCD, CDAB, BADC, DCBA */
} f32_rows[] = {
	{25.3, {{0x41CA, 0x6666}, {0x6666, 0x41CA}, {0xCA41, 0x6666}, {0x6666, 0xCA41}}},
	{7.85, {{0x40FB, 0x3333}, {0x3333, 0x40FB}, {0xFB40, 0x3333}, {0x3333, 0xFB40}}},
	{12.5, {{0x4148, 0x0000}, {0x0000, 0x4148}, {0x4841, 0x0000}, {0x0000, 0x4841}}},
	{123456.0, {{0x47F1, 0x2000}, {0x2000, 0x47F1}, {0xF147, 0x0020}, {0x0020, 0xF147}}},
};

static void test_f32_table(void)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(f32_rows); i++) {
		for (int o = AGRI_ORDER_ABCD; o <= AGRI_ORDER_DCBA; o++) {
			uint16_t regs[2] = {0};
			double raw = 0;

			CHECK_INT(agri_reg_unpack(AGRI_REG_F32, o, f32_rows[i].w[o], &raw), 0);
			CHECK_NEAR(raw, (double)(float)f32_rows[i].value, 0);
			CHECK_INT(agri_reg_pack(AGRI_REG_F32, o, f32_rows[i].value, regs), 0);
			CHECK_INT(regs[0], f32_rows[i].w[o][0]);
			CHECK_INT(regs[1], f32_rows[i].w[o][1]);
		}
	}
}

static void test_epever(void)
{
	uint16_t regs[2] = {0xFF85, 0xFFFF}, out[2];
	double raw;

	CHECK_INT(agri_reg_unpack(AGRI_REG_S32, AGRI_ORDER_CDAB, regs, &raw), 0);
	CHECK_NEAR(raw * 0.01, -1.23, 1e-12);
	CHECK_INT(agri_reg_pack(AGRI_REG_S32, AGRI_ORDER_CDAB, -123, out), 0);
	CHECK_INT(out[0], 0xFF85);
	CHECK_INT(out[1], 0xFFFF);
	/* Rated power 3000 W x 100 = 0x000493E0: L = 0x93E0, H = 0x0004. */
	regs[0] = 0x93E0;
	regs[1] = 0x0004;
	CHECK_INT(agri_reg_unpack(AGRI_REG_U32, AGRI_ORDER_CDAB, regs, &raw), 0);
	CHECK_NEAR(raw, 300000, 0);
	CHECK_INT(agri_reg_unpack(AGRI_REG_U32, AGRI_ORDER_ABCD, regs, &raw), 0);
	CHECK_NEAR(raw, 0x93E00004u, 0);
}

static void test_16bit(void)
{
	static const struct {
		enum agri_regtype t;
		uint16_t w;
		double v;
	} rows[] = {
		{AGRI_REG_U16, 0x0000, 0},     {AGRI_REG_U16, 0xFFFF, 65535},
		{AGRI_REG_U16, 0x8000, 32768}, {AGRI_REG_S16, 0x7FFF, 32767},
		{AGRI_REG_S16, 0x8000, -32768}, {AGRI_REG_S16, 0xFFFF, -1},
		{AGRI_REG_S16, 0xFF9B, -101},  /* CWT THC-S -10.1 °C */
	};
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(rows); i++) {
		for (int o = AGRI_ORDER_ABCD; o <= AGRI_ORDER_DCBA; o++) {
			uint16_t w = 0;
			double raw = 0;

			/* The order only applies to multi-word types. */
			CHECK_INT(agri_reg_unpack(rows[i].t, o, &rows[i].w, &raw), 0);
			CHECK_NEAR(raw, rows[i].v, 0);
			CHECK_INT(agri_reg_pack(rows[i].t, o, rows[i].v, &w), 0);
			CHECK_INT(w, rows[i].w);
		}
	}
	uint16_t w;

	CHECK_INT(agri_reg_pack(AGRI_REG_U16, AGRI_ORDER_ABCD, 65536, &w), -ERANGE);
	CHECK_INT(w, 0xFFFF);
	CHECK_INT(agri_reg_pack(AGRI_REG_U16, AGRI_ORDER_ABCD, -1, &w), -ERANGE);
	CHECK_INT(w, 0);
	CHECK_INT(agri_reg_pack(AGRI_REG_S16, AGRI_ORDER_ABCD, -40000, &w), -ERANGE);
	CHECK_INT(w, 0x8000);
	CHECK_INT(agri_reg_pack(AGRI_REG_S16, AGRI_ORDER_ABCD, 2574.6, &w), 0);
	CHECK_INT(w, 2575);
	CHECK_INT(agri_reg_pack(AGRI_REG_S16, AGRI_ORDER_ABCD, -2574.5, &w), 0);
	CHECK_INT(w, (uint16_t)-2575);
	CHECK_INT(agri_reg_pack(AGRI_REG_U16, AGRI_ORDER_ABCD, NAN, &w), -ERANGE);
	CHECK_INT(w, 0);
}

static void test_32bit_ints(void)
{
	uint16_t r[2];
	double raw;

	CHECK_INT(agri_reg_pack(AGRI_REG_S32, AGRI_ORDER_ABCD, -2147483648.0, r), 0);
	CHECK_INT(r[0], 0x8000);
	CHECK_INT(r[1], 0x0000);
	CHECK_INT(agri_reg_unpack(AGRI_REG_S32, AGRI_ORDER_ABCD, r, &raw), 0);
	CHECK_NEAR(raw, -2147483648.0, 0);
	CHECK_INT(agri_reg_pack(AGRI_REG_U32, AGRI_ORDER_BADC, 4294967295.0, r), 0);
	CHECK_INT(agri_reg_unpack(AGRI_REG_U32, AGRI_ORDER_BADC, r, &raw), 0);
	CHECK_NEAR(raw, 4294967295.0, 0);
	CHECK_INT(agri_reg_pack(AGRI_REG_U32, AGRI_ORDER_ABCD, 4294967296.0, r), -ERANGE);
	CHECK_INT(agri_reg_pack(AGRI_REG_S32, AGRI_ORDER_ABCD, 2147483648.0, r), -ERANGE);
	CHECK_INT(r[0], 0x7FFF);
	CHECK_INT(r[1], 0xFFFF);
	/* 0x01020304 in BADC: bytes swapped in each word, words in place. */
	CHECK_INT(agri_reg_pack(AGRI_REG_U32, AGRI_ORDER_BADC, 0x01020304, r), 0);
	CHECK_INT(r[0], 0x0201);
	CHECK_INT(r[1], 0x0403);
}

static void test_64bit(void)
{
	/* 0x0001020304050607 (exact in a double) as the device puts it on
	 * the wire. */
	static const uint16_t wire[4][4] = {
		{0x0001, 0x0203, 0x0405, 0x0607}, /* ABCD */
		{0x0607, 0x0405, 0x0203, 0x0001}, /* CDAB: words reversed */
		{0x0100, 0x0302, 0x0504, 0x0706}, /* BADC: bytes swapped */
		{0x0706, 0x0504, 0x0302, 0x0100}, /* DCBA: fully reversed */
	};
	const double v64 = (double)0x0001020304050607ull;
	/* f64 round trips; x 1e-290 gives 0 or 1e10 for the s64 ones. */
	static const double vals[] = {0, 1, -1, 1e300, -2.5e-300, 123456.789, 35.0};

	for (int o = AGRI_ORDER_ABCD; o <= AGRI_ORDER_DCBA; o++) {
		uint16_t r[4];
		double raw;

		CHECK_INT(agri_reg_pack(AGRI_REG_U64, o, v64, r), 0);
		for (int i = 0; i < 4; i++)
			CHECK_INT(r[i], wire[o][i]);
		CHECK_INT(agri_reg_unpack(AGRI_REG_U64, o, wire[o], &raw), 0);
		CHECK_NEAR(raw, v64, 0);
		for (size_t i = 0; i < AGRI_ARRAY_SIZE(vals); i++) {
			CHECK_INT(agri_reg_pack(AGRI_REG_F64, o, vals[i], r), 0);
			CHECK_INT(agri_reg_unpack(AGRI_REG_F64, o, r, &raw), 0);
			CHECK_NEAR(raw, vals[i], 0);
			CHECK_INT(agri_reg_pack(AGRI_REG_S64, o, -round(vals[i] * 1e-290), r), 0);
			CHECK_INT(agri_reg_unpack(AGRI_REG_S64, o, r, &raw), 0);
			CHECK_NEAR(raw, -round(vals[i] * 1e-290), 0);
		}
		CHECK_INT(agri_reg_pack(AGRI_REG_S64, o, -9007199254740993.0, r), 0);
		CHECK_INT(agri_reg_unpack(AGRI_REG_S64, o, r, &raw), 0);
		CHECK_NEAR(raw, -9007199254740992.0, 0);
		CHECK_INT(agri_reg_pack(AGRI_REG_S64, o, -9223372036854775808.0, r), 0);
		CHECK_INT(agri_reg_unpack(AGRI_REG_S64, o, r, &raw), 0);
		CHECK_NEAR(raw, -9223372036854775808.0, 0);
		CHECK_INT(agri_reg_pack(AGRI_REG_S64, o, 1e19, r), -ERANGE);
		CHECK_INT(agri_reg_unpack(AGRI_REG_S64, o, r, &raw), 0);
		CHECK_NEAR(raw, 9223372036854775807.0, 0);
		CHECK_INT(agri_reg_pack(AGRI_REG_U64, o, 1e20, r), -ERANGE);
		CHECK_INT(agri_reg_unpack(AGRI_REG_U64, o, r, &raw), 0);
		CHECK_NEAR(raw, 18446744073709551615.0, 0);
		CHECK_INT(agri_reg_pack(AGRI_REG_U64, o, -5, r), -ERANGE);
		CHECK_INT(agri_reg_unpack(AGRI_REG_U64, o, r, &raw), 0);
		CHECK_NEAR(raw, 0, 0);
	}
}

static void test_sentinels(void)
{
	static const uint16_t ysi_nan[2] = {0xFFFF, 0xFFFF};
	static const uint16_t inf[2] = {0x7F80, 0x0000};
	static const uint16_t nan64[4] = {0x7FF8, 0, 0, 0};
	uint16_t r[2];
	double raw = 0;

	CHECK_INT(agri_reg_unpack(AGRI_REG_F32, AGRI_ORDER_ABCD, ysi_nan, &raw), -ERANGE);
	CHECK(isnan(raw));
	raw = 0;
	CHECK_INT(agri_reg_unpack(AGRI_REG_F32, AGRI_ORDER_ABCD, inf, &raw), -ERANGE);
	CHECK(isinf(raw));
	CHECK_INT(agri_reg_unpack(AGRI_REG_F32, AGRI_ORDER_CDAB, inf, &raw), 0);
	CHECK_INT(agri_reg_unpack(AGRI_REG_F64, AGRI_ORDER_ABCD, nan64, &raw), -ERANGE);
	/* A simulator may emit the sentinel: packing NaN is not an error. */
	CHECK_INT(agri_reg_pack(AGRI_REG_F32, AGRI_ORDER_ABCD, NAN, r), 0);
	CHECK_INT(agri_reg_unpack(AGRI_REG_F32, AGRI_ORDER_ABCD, r, &raw), -ERANGE);
	CHECK_INT(agri_reg_pack(AGRI_REG_F32, AGRI_ORDER_ABCD, 1e39, r), -ERANGE);
	CHECK_INT(agri_reg_unpack(AGRI_REG_F32, 7, ysi_nan, &raw), -EINVAL);
}

static void test_names(void)
{
	enum agri_regtype t;
	enum agri_order o;

	for (int i = AGRI_REG_U16; i <= AGRI_REG_F64; i++) {
		CHECK_INT(agri_regtype_parse(agri_regtype_name(i), &t), 0);
		CHECK_INT(t, i);
	}
	for (int i = AGRI_ORDER_ABCD; i <= AGRI_ORDER_DCBA; i++) {
		CHECK_INT(agri_order_parse(agri_order_name(i), &o), 0);
		CHECK_INT(o, i);
	}
	t = AGRI_REG_U16;
	CHECK_INT(agri_regtype_parse("u24", &t), -EINVAL);
	CHECK_INT(agri_regtype_parse("F32", &t), -EINVAL);
	CHECK_INT(t, AGRI_REG_U16);
	CHECK_INT(agri_order_parse("abcd", &o), -EINVAL);
	CHECK_INT(agri_regtype_words(AGRI_REG_S16), 1);
	CHECK_INT(agri_regtype_words(AGRI_REG_F32), 2);
	CHECK_INT(agri_regtype_words(AGRI_REG_S64), 4);
	CHECK(agri_regtype_name(99) == NULL);
	CHECK_STR(agri_order_name(AGRI_ORDER_DCBA), "DCBA");
}

int main(void)
{
	test_f32_table();
	test_epever();
	test_16bit();
	test_32bit_ints();
	test_64bit();
	test_sentinels();
	test_names();
	return test_main("test_proto_regmap");
}
