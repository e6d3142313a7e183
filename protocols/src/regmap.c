/*
 * Register maps: Modbus registers to values and back (regmap.h). A value of
 * n words is held as the big-endian integer v whose word i (most
 * significant first) is placed at regs[i] (ABCD), regs[n-1-i] (CDAB: word
 * order reversed), byte-swapped at regs[i] (BADC) or byte-swapped at
 * regs[n-1-i] (DCBA: all bytes reversed). Written with explicit shifts so
 * that it is independent of host endianness and of libmodbus.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/regmap.h"

static const char *const type_names[] = {
	[AGRI_REG_U16] = "u16", [AGRI_REG_S16] = "s16",
	[AGRI_REG_U32] = "u32", [AGRI_REG_S32] = "s32", [AGRI_REG_F32] = "f32",
	[AGRI_REG_U64] = "u64", [AGRI_REG_S64] = "s64", [AGRI_REG_F64] = "f64",
};

static const char *const order_names[] = {
	[AGRI_ORDER_ABCD] = "ABCD", [AGRI_ORDER_CDAB] = "CDAB",
	[AGRI_ORDER_BADC] = "BADC", [AGRI_ORDER_DCBA] = "DCBA",
};


unsigned agri_regtype_words(enum agri_regtype t)
{
	switch (t) {
	case AGRI_REG_U16:
	case AGRI_REG_S16:
		return 1;
	case AGRI_REG_U32:
	case AGRI_REG_S32:
	case AGRI_REG_F32:
		return 2;
	case AGRI_REG_U64:
	case AGRI_REG_S64:
	case AGRI_REG_F64:
		return 4;
	}
	return 0;
}

const char *agri_regtype_name(enum agri_regtype t)
{
	return (unsigned)t < AGRI_ARRAY_SIZE(type_names) ? type_names[t] : NULL;
}

int agri_regtype_parse(const char *s, enum agri_regtype *t)
{
	for (unsigned i = 0; s && i < AGRI_ARRAY_SIZE(type_names); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*t = (enum agri_regtype)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *agri_order_name(enum agri_order o)
{
	return (unsigned)o < AGRI_ARRAY_SIZE(order_names) ? order_names[o] : NULL;
}

int agri_order_parse(const char *s, enum agri_order *o)
{
	for (unsigned i = 0; s && i < AGRI_ARRAY_SIZE(order_names); i++) {
		if (strcmp(s, order_names[i]) == 0) {
			*o = (enum agri_order)i;
			return 0;
		}
	}
	return -EINVAL;
}

static bool order_reversed(enum agri_order o)
{
	return o == AGRI_ORDER_CDAB || o == AGRI_ORDER_DCBA;
}

static bool order_swapped(enum agri_order o)
{
	return o == AGRI_ORDER_BADC || o == AGRI_ORDER_DCBA;
}

static uint16_t bswap16(uint16_t w)
{
	return (uint16_t)(w << 8 | w >> 8);
}

/* Single-word types ignore the order: it describes multi-word layouts. */
static uint64_t words_get(unsigned n, enum agri_order o, const uint16_t *regs)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++) {
		uint16_t w = regs[n > 1 && order_reversed(o) ? n - 1 - i : i];

		if (n > 1 && order_swapped(o))
			w = bswap16(w);
		v = v << 16 | w;
	}
	return v;
}

static void words_put(unsigned n, enum agri_order o, uint64_t v,
		      uint16_t *regs)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t w = (uint16_t)(v >> (16 * (n - 1 - i)));

		if (n > 1 && order_swapped(o))
			w = bswap16(w);
		regs[n > 1 && order_reversed(o) ? n - 1 - i : i] = w;
	}
}

int agri_reg_unpack(enum agri_regtype t, enum agri_order o,
		    const uint16_t *regs, double *raw)
{
	unsigned n = agri_regtype_words(t);
	uint64_t v;
	double d;

	if (!n || (unsigned)o >= AGRI_ARRAY_SIZE(order_names))
		return -EINVAL;
	v = words_get(n, o, regs);
	switch (t) {
	case AGRI_REG_U16:
	case AGRI_REG_U32:
	case AGRI_REG_U64:
		d = (double)v;
		break;
	case AGRI_REG_S16:
		d = v & 0x8000 ? (double)v - 65536.0 : (double)v;
		break;
	case AGRI_REG_S32:
		d = v & 0x80000000u ? (double)v - 4294967296.0 : (double)v;
		break;
	case AGRI_REG_S64:
		d = v >> 63 ? -(double)(~v + 1) : (double)v;
		break;
	case AGRI_REG_F32: {
		uint32_t u = (uint32_t)v;
		float f;

		memcpy(&f, &u, sizeof(f));
		d = f;
		break;
	}
	case AGRI_REG_F64:
		memcpy(&d, &v, sizeof(d));
		break;
	default:
		return -EINVAL;
	}
	*raw = d;
	return isfinite(d) ? 0 : -ERANGE;
}

/* Rounds raw to an integer clamped to [lo, hi]; *clamped when it had to. */
static double round_clamp(double raw, double lo, double hi, bool *clamped)
{
	double r = round(raw);

	*clamped = false;
	if (isnan(r)) {
		*clamped = true;
		return 0;
	}
	if (r < lo) {
		*clamped = true;
		return lo;
	}
	if (r > hi) {
		*clamped = true;
		return hi;
	}
	return r;
}

int agri_reg_pack(enum agri_regtype t, enum agri_order o, double raw,
		  uint16_t *regs)
{
	unsigned n = agri_regtype_words(t);
	bool clamped = false;
	uint64_t v;
	double r;

	if (!n || (unsigned)o >= AGRI_ARRAY_SIZE(order_names))
		return -EINVAL;
	switch (t) {
	case AGRI_REG_U16:
		v = (uint64_t)round_clamp(raw, 0, 65535, &clamped);
		break;
	case AGRI_REG_S16:
		r = round_clamp(raw, -32768, 32767, &clamped);
		v = (uint16_t)(int16_t)r;
		break;
	case AGRI_REG_U32:
		v = (uint64_t)round_clamp(raw, 0, 4294967295.0, &clamped);
		break;
	case AGRI_REG_S32:
		r = round_clamp(raw, -2147483648.0, 2147483647.0, &clamped);
		v = (uint32_t)(int32_t)r;
		break;
	case AGRI_REG_U64:
		/* 2^64 - 1 is not a double: 2^64 and above saturate. */
		r = round_clamp(raw, 0, 18446744073709551616.0, &clamped);
		if (r >= 18446744073709551616.0) {
			v = UINT64_MAX;
			clamped = true;
		} else {
			v = (uint64_t)r;
		}
		break;
	case AGRI_REG_S64:
		r = round_clamp(raw, -9223372036854775808.0,
				9223372036854775808.0, &clamped);
		if (r >= 9223372036854775808.0) {
			v = (uint64_t)INT64_MAX;
			clamped = true;
		} else {
			v = (uint64_t)(int64_t)r;
		}
		break;
	case AGRI_REG_F32: {
		float f = (float)raw;
		uint32_t u;

		memcpy(&u, &f, sizeof(u));
		v = u;
		clamped = isfinite(raw) && !isfinite(f);
		break;
	}
	case AGRI_REG_F64:
		memcpy(&v, &raw, sizeof(v));
		break;
	default:
		return -EINVAL;
	}
	words_put(n, o, v, regs);
	return clamped ? -ERANGE : 0;
}
