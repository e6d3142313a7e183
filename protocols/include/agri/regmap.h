/*
 * Register maps (docs/interfaces.md §10): turning Modbus registers into values and
 * back. Types u16 s16 u32 s32 f32 u64 s64 f64; word orders for multi-word
 * values ABCD (big-endian, default), CDAB (word swap), BADC (byte swap in
 * each word), DCBA (fully reversed), generalised to 64 bits as
 * "words reversed?" x "bytes in each word swapped?".
 * regs[] are uint16 values in host order, as libmodbus returns them.
 * Packing is written here with explicit shifts: libmodbus 3.1.6's
 * modbus_set_float_* helpers are wrong (docs/profiles.md, "Word order").
 */
#ifndef AGRI_REGMAP_H
#define AGRI_REGMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum agri_regtype {
	AGRI_REG_U16, AGRI_REG_S16,
	AGRI_REG_U32, AGRI_REG_S32, AGRI_REG_F32,
	AGRI_REG_U64, AGRI_REG_S64, AGRI_REG_F64,
};

enum agri_order {
	AGRI_ORDER_ABCD = 0,
	AGRI_ORDER_CDAB,
	AGRI_ORDER_BADC,
	AGRI_ORDER_DCBA,
};

/* Number of 16-bit registers a type occupies (1, 2 or 4). */
unsigned agri_regtype_words(enum agri_regtype t);
/* "u16", ... and back; parse returns 0 or -EINVAL. */
const char *agri_regtype_name(enum agri_regtype t);
int agri_regtype_parse(const char *s, enum agri_regtype *t);
const char *agri_order_name(enum agri_order o);
int agri_order_parse(const char *s, enum agri_order *o);

/*
 * Decodes the raw value (before scale/offset) held in regs[0..words).
 * Returns 0, or -ERANGE for a NaN/Inf float (a device's "unavailable"
 * sentinel, e.g. YSI's 0xFFFFFFFF), with *raw still written.
 */
int agri_reg_unpack(enum agri_regtype t, enum agri_order o,
		    const uint16_t *regs, double *raw);

/*
 * Encodes raw (already unscaled, integral for integer types) into
 * regs[0..words), as the device would put it on the wire. Integers are
 * rounded to nearest and clamped to the type's range (returns -ERANGE when
 * clamped, registers still written).
 */
int agri_reg_pack(enum agri_regtype t, enum agri_order o, double raw,
		  uint16_t *regs);

#endif
