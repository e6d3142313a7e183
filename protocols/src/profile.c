/*
 * Device profiles (profile.h, docs/profiles.md): a JSON register map read
 * through agri_cfg_read tables into struct agri_profile, then checked
 * across fields (overlaps, duplicates, derived inputs, plan size); the read
 * planner that coalesces registers into the fewest Modbus requests; and the
 * decoder from register words to a scaled, range-checked value.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/profile.h"
#include "agri/units.h"

#define PROFILE_MAX_BYTES (64 * 1024)
#define PROFILE_MAX_DEPTH 8
/* A 15-char sensor name + "-" + suffix fits AGRI_ID_MAX. */
#define SUFFIX_MAX 16

enum reg_kind { KIND_MEASURE, KIND_COUNTER, KIND_STATE };

/* Table targets: integers are int64_t for agri_cfg_read, narrowed after. */
struct reg_cfg {
	int64_t fc, addr;
	char metric[AGRI_ID_MAX + 1];
	char unit[AGRI_UNIT_MAX + 1];
	char suffix[SUFFIX_MAX + 1];
	char doc_ref[128];
	enum agri_regtype type;
	enum agri_order order;
	enum reg_kind kind;
	double scale, offset, min, max;
	bool has_order, has_min, has_max, stable;
	double ref_c, coef_pct, full_scale, dry_below, stuck_after_s;
	bool has_ref_c, has_coef, has_coef_reg, has_full_scale;
	struct agri_reg_ref coef_reg;
};

struct serial_cfg {
	int64_t baud, data_bits, stop_bits;
	char parity;
};

struct probe_cfg {
	int64_t fc, addr, count;
};

struct from_cfg {
	size_t n;
	char m[2][AGRI_ID_MAX + 1];
};

struct derived_cfg {
	char metric[AGRI_ID_MAX + 1];
	char unit[AGRI_UNIT_MAX + 1];
	char air[AGRI_ID_MAX + 1];
	enum agri_derived_fn fn;
	struct from_cfg from;
	bool has_unit;
};

struct ref_cfg {
	int64_t fc, addr;
	enum agri_regtype type;
	enum agri_order order;
	double scale;
	bool has_order;
};

struct cmd_values {
	size_t n;
	uint16_t v[AGRI_CMD_VALUES_MAX];
};

struct cmd_cfg {
	int64_t fc, addr, count, wait_ms;
	struct cmd_values values;
	enum agri_cmd_role role;
	char doc_ref[128];
	bool has_count, has_values;
};

struct expect_cfg {
	int64_t fc, addr, value;
	char metric[AGRI_ID_MAX + 1];
	char doc_ref[128];
};

struct profile_cfg {
	int64_t max_gap, max_regs;
	struct agri_profile p;
};


static int parse_type(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (agri_regtype_parse(item->valuestring, field) == 0)
		return 0;
	agri_err_set(err, path, "unknown type \"%.32s\"", item->valuestring);
	return -EINVAL;
}

static int parse_order(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (agri_order_parse(item->valuestring, field) == 0)
		return 0;
	agri_err_set(err, path, "unknown order \"%.32s\" (ABCD, CDAB, BADC, DCBA)",
		     item->valuestring);
	return -EINVAL;
}

static int parse_kind(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	static const char *const names[] = {"measure", "counter", "state"};

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		if (strcmp(item->valuestring, names[i]) == 0) {
			*(enum reg_kind *)field = (enum reg_kind)i;
			return 0;
		}
	}
	agri_err_set(err, path, "unknown kind \"%.32s\" (measure, counter, state)",
		     item->valuestring);
	return -EINVAL;
}

static int parse_parity(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	const char *s;

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	s = item->valuestring;
	if (strlen(s) == 1 && strchr("NEO", s[0])) {
		*(char *)field = s[0];
		return 0;
	}
	agri_err_set(err, path, "expected \"N\", \"E\" or \"O\"");
	return -EINVAL;
}

static int parse_fn(const cJSON *item, void *field, const char *path,
		    struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (strcmp(item->valuestring, "pss78") == 0) {
		*(enum agri_derived_fn *)field = AGRI_DERIVED_PSS78;
		return 0;
	}
	if (strcmp(item->valuestring, "level") == 0) {
		*(enum agri_derived_fn *)field = AGRI_DERIVED_LEVEL;
		return 0;
	}
	agri_err_set(err, path, "unknown fn \"%.32s\" (pss78, level)", item->valuestring);
	return -EINVAL;
}

/* One metric a derived value is computed from. */
static int parse_from_metric(const cJSON *item, void *field, const char *path,
			     struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (strlen(item->valuestring) > AGRI_ID_MAX) {
		agri_err_set(err, path, "longer than %d chars", AGRI_ID_MAX);
		return -EINVAL;
	}
	strcpy(field, item->valuestring);
	return 0;
}

static const struct agri_cfg_field from_metric = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_from_metric,
};

static const struct agri_cfg_array from_array = {
	.value = &from_metric, .elem_size = sizeof(((struct from_cfg *)0)->m[0]),
	.min = 1, .max = 2, .what = "metrics",
};

static int parse_role(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	static const char *const names[] = {"other", "start", "wipe"};

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		if (strcmp(item->valuestring, names[i]) == 0) {
			*(enum agri_cmd_role *)field = (enum agri_cmd_role)i;
			return 0;
		}
	}
	agri_err_set(err, path, "unknown role \"%.32s\" (start, wipe, other)",
		     item->valuestring);
	return -EINVAL;
}

/* One register value a command writes. */
static int parse_word(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 65535 ||
	    item->valuedouble != floor(item->valuedouble)) {
		agri_err_set(err, path, "expected an integer 0..65535");
		return -EINVAL;
	}
	*(uint16_t *)field = (uint16_t)item->valuedouble;
	return 0;
}

static const struct agri_cfg_field word_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_word,
};

static const struct agri_cfg_array values_array = {
	.value = &word_value, .elem_size = sizeof(uint16_t),
	.max = AGRI_CMD_VALUES_MAX, .what = "register values",
};

#define S struct serial_cfg
static const struct agri_cfg_field serial_fields[] = {
	AGRI_FIELD_INT(S, "baud", baud, 300, 4000000),
	AGRI_FIELD_CUSTOM(S, "parity", parity, parse_parity, false),
	AGRI_FIELD_INT(S, "data_bits", data_bits, 7, 8),
	AGRI_FIELD_INT(S, "stop_bits", stop_bits, 1, 2),
};
#undef S

static int parse_serial(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct serial_cfg c = {.parity = 'N', .data_bits = 8, .stop_bits = 1};
	struct agri_serial *s = field;
	int rc;

	rc = agri_cfg_read(item, path, serial_fields, AGRI_ARRAY_SIZE(serial_fields),
			   &c, false, err);
	if (rc < 0)
		return rc;
	s->baud = (int)c.baud;
	s->parity = c.parity;
	s->data_bits = (int)c.data_bits;
	s->stop_bits = (int)c.stop_bits;
	return 0;
}

#define PR struct probe_cfg
static const struct agri_cfg_field probe_fields[] = {
	AGRI_FIELD(PR, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(3, 4)),
	AGRI_FIELD(PR, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD(PR, "count", AGRI_CFG_INT, count, true, AGRI_RANGE(1, AGRI_MODBUS_MAX_REGS)),
};
#undef PR

static int parse_probe(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	struct agri_read_req *req = field;
	struct probe_cfg c = {0};
	char cpath[AGRI_ERR_PATH_MAX];
	int rc;

	rc = agri_cfg_read(item, path, probe_fields, AGRI_ARRAY_SIZE(probe_fields),
			   &c, false, err);
	if (rc < 0)
		return rc;
	if (c.addr + c.count - 1 > 65535) {
		agri_path_key(cpath, sizeof(cpath), path, "count");
		agri_err_set(err, cpath, "runs past address 65535");
		return -EINVAL;
	}
	req->fc = (uint8_t)c.fc;
	req->addr = (uint16_t)c.addr;
	req->count = (uint16_t)c.count;
	return 0;
}

#define RF struct ref_cfg
static const struct agri_cfg_field ref_fields[] = {
	AGRI_FIELD(RF, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(3, 4)),
	AGRI_FIELD(RF, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD_CUSTOM(RF, "type", type, parse_type, false),
	AGRI_FIELD(RF, "order", AGRI_CFG_CUSTOM, order, false, .parse = parse_order,
		   AGRI_PRESENT(RF, has_order)),
	AGRI_FIELD_DOUBLE(RF, "scale", scale, -DBL_MAX, DBL_MAX),
};
#undef RF

/* {"fc", "addr", "type" (u16), "order", "scale" (1)}: a word read at start-up. */
static int parse_ref(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	struct ref_cfg c = {.type = AGRI_REG_U16, .order = AGRI_ORDER_ABCD, .scale = 1};
	struct agri_reg_ref *r = field;
	char kpath[AGRI_ERR_PATH_MAX];
	unsigned words;
	int rc;

	rc = agri_cfg_read(item, path, ref_fields, AGRI_ARRAY_SIZE(ref_fields), &c, false, err);
	if (rc < 0)
		return rc;
	words = agri_regtype_words(c.type);
	if (c.addr + words - 1 > 65535 || (c.has_order && words == 1) || c.scale == 0) {
		agri_path_key(kpath, sizeof(kpath), path,
			      c.scale == 0 ? "scale" : c.has_order && words == 1 ? "order" : "addr");
		agri_err_set(err, kpath, "%s", c.scale == 0 ? "must not be zero" :
			     c.has_order && words == 1 ? "only for 32/64-bit types" :
			     "value runs past address 65535");
		return -EINVAL;
	}
	r->fc = (uint8_t)c.fc;
	r->addr = (uint16_t)c.addr;
	r->type = c.type;
	r->order = c.order;
	r->scale = c.scale;
	return 0;
}

#define R struct reg_cfg
#define ANY AGRI_RANGE(-DBL_MAX, DBL_MAX)
static const struct agri_cfg_field reg_fields[] = {
	AGRI_FIELD_STR(R, "metric", metric, true),
	AGRI_FIELD(R, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(3, 4)),
	AGRI_FIELD(R, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD_CUSTOM(R, "type", type, parse_type, true),
	AGRI_FIELD(R, "order", AGRI_CFG_CUSTOM, order, false, .parse = parse_order,
		   AGRI_PRESENT(R, has_order)),
	AGRI_FIELD_DOUBLE(R, "scale", scale, -DBL_MAX, DBL_MAX),
	AGRI_FIELD_DOUBLE(R, "offset", offset, -DBL_MAX, DBL_MAX),
	AGRI_FIELD_STR(R, "unit", unit, false),
	AGRI_FIELD(R, "min", AGRI_CFG_DOUBLE, min, false, ANY, AGRI_PRESENT(R, has_min)),
	AGRI_FIELD(R, "max", AGRI_CFG_DOUBLE, max, false, ANY, AGRI_PRESENT(R, has_max)),
	AGRI_FIELD_CUSTOM(R, "kind", kind, parse_kind, false),
	AGRI_FIELD_BOOL(R, "stable", stable),
	AGRI_FIELD_STR(R, "sensor_suffix", suffix, false),
	AGRI_FIELD_STR(R, "doc_ref", doc_ref, false),
	AGRI_FIELD(R, "ref_c", AGRI_CFG_DOUBLE, ref_c, false, AGRI_RANGE(-5, 40),
		   AGRI_PRESENT(R, has_ref_c)),
	AGRI_FIELD(R, "coef_pct_per_c", AGRI_CFG_DOUBLE, coef_pct, false, AGRI_RANGE(0, 10),
		   AGRI_PRESENT(R, has_coef)),
	AGRI_FIELD(R, "coef_reg", AGRI_CFG_CUSTOM, coef_reg, false, .parse = parse_ref,
		   AGRI_PRESENT(R, has_coef_reg)),
	AGRI_FIELD(R, "full_scale", AGRI_CFG_DOUBLE, full_scale, false, ANY,
		   AGRI_PRESENT(R, has_full_scale)),
	AGRI_FIELD_DOUBLE(R, "dry_below", dry_below, 0, 1e9),
	AGRI_FIELD_DOUBLE(R, "stuck_after_s", stuck_after_s, 0, 1e8),
};
#undef ANY
#undef R

/* snake_case: [a-z][a-z0-9_]*, at most AGRI_ID_MAX chars. */
static bool metric_valid(const char *s)
{
	return agri_snake_valid(s, AGRI_ID_MAX);
}

static int reg_error(struct agri_err *err, const char *path, const char *key,
		     const char *msg)
{
	char kpath[AGRI_ERR_PATH_MAX];

	agri_path_key(kpath, sizeof(kpath), path, key);
	agri_err_set(err, kpath, "%s", msg);
	return -EINVAL;
}

/* One element of "registers": field is its struct agri_register. */
static int parse_register(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	struct reg_cfg c = {.scale = 1, .order = AGRI_ORDER_ABCD};
	struct agri_register *r = field;
	unsigned words;
	int rc;

	rc = agri_cfg_read(item, path, reg_fields, AGRI_ARRAY_SIZE(reg_fields), &c,
			   false, err);
	if (rc < 0)
		return rc;
	words = agri_regtype_words(c.type);
	if (!metric_valid(c.metric))
		return reg_error(err, path, "metric", "not a snake_case metric");
	if (c.addr + words - 1 > 65535)
		return reg_error(err, path, "addr", "value runs past address 65535");
	if (c.has_order && words == 1)
		return reg_error(err, path, "order", "only for 32/64-bit types");
	if (c.scale == 0)
		return reg_error(err, path, "scale", "must not be zero");
	if (c.has_min && c.has_max && c.min > c.max)
		return reg_error(err, path, "max", "below min");
	if (c.suffix[0] && !agri_ident_valid(c.suffix))
		return reg_error(err, path, "sensor_suffix",
				 "expected [A-Za-z0-9_-] characters");
	if (strcmp(c.metric, "specific_conductance") == 0) {
		if (!c.has_ref_c)
			return reg_error(err, path, "ref_c",
					 "required: the temperature the device compensates to");
		if (c.has_coef_reg && !c.has_coef)
			return reg_error(err, path, "coef_reg",
					 "needs coef_pct_per_c (the coefficient it should hold)");
	} else if (c.has_ref_c || c.has_coef || c.has_coef_reg) {
		return reg_error(err, path, c.has_ref_c ? "ref_c" : c.has_coef ?
				 "coef_pct_per_c" : "coef_reg",
				 "only for metric \"specific_conductance\"");
	}
	memset(r, 0, sizeof(*r));
	strcpy(r->metric, c.metric);
	strcpy(r->unit, c.unit);
	strcpy(r->sensor_suffix, c.suffix);
	r->fc = (uint8_t)c.fc;
	r->addr = (uint16_t)c.addr;
	r->type = c.type;
	r->order = c.order;
	r->scale = c.scale;
	r->offset = c.offset;
	r->min = c.min;
	r->max = c.max;
	r->has_min = c.has_min;
	r->has_max = c.has_max;
	r->counter = c.kind == KIND_COUNTER;
	r->state = c.kind == KIND_STATE;
	r->stable = c.stable || c.kind != KIND_MEASURE;
	r->specific = c.has_ref_c;
	r->ref_c = c.ref_c;
	r->coef_pct = c.has_coef ? c.coef_pct : NAN;
	r->has_coef_reg = c.has_coef_reg;
	r->coef_reg = c.coef_reg;
	r->full_scale = c.full_scale;
	r->has_full_scale = c.has_full_scale;
	r->dry_below = c.dry_below;
	r->stuck_after_s = c.stuck_after_s;
	return 0;
}

static const struct agri_cfg_field register_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_register,
};

static const struct agri_cfg_array registers_array = {
	.value = &register_value, .elem_size = sizeof(struct agri_register),
	.min = 1, .max = AGRI_PROFILE_REGS_MAX, .what = "registers",
};

#define D struct derived_cfg
static const struct agri_cfg_field derived_fields[] = {
	AGRI_FIELD_STR(D, "metric", metric, true),
	AGRI_FIELD_CUSTOM(D, "fn", fn, parse_fn, true),
	AGRI_FIELD_ARRAY(D, "from", from.m, from.n, &from_array, true),
	AGRI_FIELD(D, "unit", AGRI_CFG_STR, unit, false, AGRI_PRESENT(D, has_unit)),
	AGRI_FIELD_STR(D, "air", air, false),
};
#undef D

/* One element of "derived": field is its struct agri_derived. */
static int parse_derived(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct derived_cfg c = {.unit = ""};
	struct agri_derived *d = field;
	int rc;

	rc = agri_cfg_read(item, path, derived_fields, AGRI_ARRAY_SIZE(derived_fields),
			   &c, false, err);
	if (rc < 0)
		return rc;
	if (!metric_valid(c.metric))
		return reg_error(err, path, "metric", "not a snake_case metric");
	if (c.air[0] && c.fn != AGRI_DERIVED_LEVEL)
		return reg_error(err, path, "air", "only for fn \"level\"");
	memset(d, 0, sizeof(*d));
	strcpy(d->metric, c.metric);
	strcpy(d->unit, c.has_unit ? c.unit :
	       c.fn == AGRI_DERIVED_LEVEL ? "m" : "g/L");
	d->fn = c.fn;
	d->n_from = c.from.n;
	strcpy(d->from[0], c.from.m[0]);
	strcpy(d->from[1], c.from.n > 1 ? c.from.m[1] : "");
	strcpy(d->air, c.air);
	d->from_reg[0] = d->from_reg[1] = d->air_reg = -1;
	return 0;
}

static const struct agri_cfg_field derived_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_derived,
};

static const struct agri_cfg_array derived_array = {
	.value = &derived_value, .elem_size = sizeof(struct agri_derived),
	.max = AGRI_PROFILE_DERIVED_MAX, .what = "entries",
};

#define C struct cmd_cfg
static const struct agri_cfg_field cmd_fields[] = {
	AGRI_FIELD(C, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(3, 16)),
	AGRI_FIELD(C, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD(C, "count", AGRI_CFG_INT, count, false, AGRI_RANGE(0, AGRI_MODBUS_MAX_REGS),
		   AGRI_PRESENT(C, has_count)),
	AGRI_FIELD_ARRAY(C, "values", values.v, values.n, &values_array, false,
			 AGRI_PRESENT(C, has_values)),
	AGRI_FIELD_INT(C, "wait_ms", wait_ms, 0, 60000),
	AGRI_FIELD_CUSTOM(C, "role", role, parse_role, false),
	AGRI_FIELD_STR(C, "doc_ref", doc_ref, false),
};
#undef C

/* One element of "init" or "before_read": field is its struct agri_command. */
static int parse_command(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct agri_command *out = field;
	struct cmd_cfg c = {0};
	bool rw = false;
	int rc;

	rc = agri_cfg_read(item, path, cmd_fields, AGRI_ARRAY_SIZE(cmd_fields), &c, false, err);
	if (rc < 0)
		return rc;
	switch (c.fc) {
	case 3:
	case 4:
		rw = true;
		if (!c.has_count)
			return reg_error(err, path, "count", "required for a read (fc 3 or 4)");
		if (c.has_values)
			return reg_error(err, path, "values", "not for a read (fc 3 or 4)");
		break;
	case 6:
		if (c.has_count)
			return reg_error(err, path, "count", "not for fc 6 (one value)");
		if (c.values.n != 1)
			return reg_error(err, path, "values", "fc 6 writes exactly one value");
		c.count = 1;
		break;
	case 16:
		if (c.has_count)
			return reg_error(err, path, "count", "fc 16 writes its values (count = their number)");
		c.count = (int64_t)c.values.n;
		break;
	default:
		return reg_error(err, path, "fc", "expected 3, 4, 6 or 16");
	}
	if (c.addr + (rw && c.count ? c.count : 1) - 1 > 65535)
		return reg_error(err, path, "addr", "runs past address 65535");
	memset(out, 0, sizeof(*out));
	out->fc = (uint8_t)c.fc;
	out->addr = (uint16_t)c.addr;
	out->count = (uint16_t)c.count;
	memcpy(out->values, c.values.v, sizeof(out->values));
	out->wait_ms = (uint32_t)c.wait_ms;
	out->role = c.role;
	return 0;
}

static const struct agri_cfg_field command_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_command,
};

static const struct agri_cfg_array commands_array = {
	.value = &command_value, .elem_size = sizeof(struct agri_command),
	.max = AGRI_PROFILE_CMDS_MAX, .what = "commands",
};

#define E struct expect_cfg
static const struct agri_cfg_field expect_fields[] = {
	AGRI_FIELD(E, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(3, 4)),
	AGRI_FIELD(E, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD(E, "value", AGRI_CFG_INT, value, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD_STR(E, "metric", metric, false),
	AGRI_FIELD_STR(E, "doc_ref", doc_ref, false),
};
#undef E

/* One element of "expect": field is its struct agri_expect. */
static int parse_expect(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct agri_expect *x = field;
	struct expect_cfg c = {0};
	int rc;

	rc = agri_cfg_read(item, path, expect_fields, AGRI_ARRAY_SIZE(expect_fields), &c,
			   false, err);
	if (rc < 0)
		return rc;
	x->fc = (uint8_t)c.fc;
	x->addr = (uint16_t)c.addr;
	x->value = (uint16_t)c.value;
	strcpy(x->metric, c.metric);
	return 0;
}

static const struct agri_cfg_field expect_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_expect,
};

static const struct agri_cfg_array expect_array = {
	.value = &expect_value, .elem_size = sizeof(struct agri_expect),
	.max = AGRI_PROFILE_EXPECT_MAX, .what = "words",
};

struct setting_cfg {
	char name[AGRI_ID_MAX + 1];
	char metric[AGRI_ID_MAX + 1];
	char applies[16];
	char doc_ref[128];
	int64_t fc, addr, wait_ms;
	enum agri_regtype type;
	enum agri_order order;
	double scale, min, max, standard;
	bool has_order, has_min, has_max, has_standard, has_readable, dangerous, readable;
	struct {
		size_t n;
		double v[AGRI_SETTING_CODES_MAX];
	} codes;
};

static const struct agri_cfg_field code_value = {
	.type = AGRI_CFG_DOUBLE, .min = -1e15, .max = 1e15,
};

static const struct agri_cfg_array codes_array = {
	.value = &code_value, .elem_size = sizeof(double), .min = 1,
	.max = AGRI_SETTING_CODES_MAX, .what = "codes",
};

#define ST struct setting_cfg
#define ANY AGRI_RANGE(-DBL_MAX, DBL_MAX)
static const struct agri_cfg_field setting_fields[] = {
	AGRI_FIELD_STR(ST, "name", name, true),
	AGRI_FIELD(ST, "fc", AGRI_CFG_INT, fc, true, AGRI_RANGE(6, 16)),
	AGRI_FIELD(ST, "addr", AGRI_CFG_INT, addr, true, AGRI_RANGE(0, 65535)),
	AGRI_FIELD_CUSTOM(ST, "type", type, parse_type, false),
	AGRI_FIELD(ST, "order", AGRI_CFG_CUSTOM, order, false, .parse = parse_order,
		   AGRI_PRESENT(ST, has_order)),
	AGRI_FIELD_DOUBLE(ST, "scale", scale, -DBL_MAX, DBL_MAX),
	AGRI_FIELD(ST, "min", AGRI_CFG_DOUBLE, min, false, ANY, AGRI_PRESENT(ST, has_min)),
	AGRI_FIELD(ST, "max", AGRI_CFG_DOUBLE, max, false, ANY, AGRI_PRESENT(ST, has_max)),
	AGRI_FIELD_ARRAY(ST, "codes", codes.v, codes.n, &codes_array, false),
	AGRI_FIELD_BOOL(ST, "dangerous", dangerous),
	AGRI_FIELD(ST, "readable", AGRI_CFG_BOOL, readable, false,
		   AGRI_PRESENT(ST, has_readable)),
	AGRI_FIELD_STR(ST, "applies", applies, false),
	AGRI_FIELD_STR(ST, "metric", metric, false),
	AGRI_FIELD(ST, "standard", AGRI_CFG_DOUBLE, standard, false, ANY,
		   AGRI_PRESENT(ST, has_standard)),
	AGRI_FIELD_INT(ST, "wait_ms", wait_ms, 0, 600000),
	AGRI_FIELD_STR(ST, "doc_ref", doc_ref, false),
};
#undef ANY
#undef ST

/* One element of "settings": field is its struct agri_setting. */
static int parse_setting(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct setting_cfg c = {.scale = 1, .type = AGRI_REG_U16, .order = AGRI_ORDER_ABCD};
	struct agri_setting *out = field;
	unsigned words;
	int rc;

	rc = agri_cfg_read(item, path, setting_fields, AGRI_ARRAY_SIZE(setting_fields), &c,
			   false, err);
	if (rc < 0)
		return rc;
	words = agri_regtype_words(c.type);
	if (!metric_valid(c.name))
		return reg_error(err, path, "name", "expected a snake_case name (slave_id, baud, ...)");
	if (c.fc != 6 && c.fc != 16)
		return reg_error(err, path, "fc", "expected 6 (one register) or 16");
	if (c.fc == 6 && words != 1)
		return reg_error(err, path, "type", "fc 6 writes one 16-bit register");
	if (c.addr + words - 1 > 65535)
		return reg_error(err, path, "addr", "value runs past address 65535");
	if (c.has_order && words == 1)
		return reg_error(err, path, "order", "only for 32/64-bit types");
	if (c.scale == 0 || !isfinite(c.scale))
		return reg_error(err, path, "scale", "must not be zero");
	if (c.has_min && c.has_max && c.min > c.max)
		return reg_error(err, path, "max", "below min");
	if (c.codes.n && (c.has_min || c.has_max))
		return reg_error(err, path, "codes", "either codes or min/max");
	if (c.applies[0] && strcmp(c.applies, "now") && strcmp(c.applies, "restart"))
		return reg_error(err, path, "applies", "expected \"now\" or \"restart\"");
	if (c.metric[0] && !metric_valid(c.metric))
		return reg_error(err, path, "metric", "not a snake_case metric");
	if (c.has_standard && !c.metric[0])
		return reg_error(err, path, "metric", "required with standard: the metric calibrated");
	if ((!strcmp(c.name, "cal_slope") || !strcmp(c.name, "cal_offset")) && !c.metric[0])
		return reg_error(err, path, "metric", "required: the metric it corrects");
	memset(out, 0, sizeof(*out));
	strcpy(out->name, c.name);
	strcpy(out->metric, c.metric);
	out->fc = (uint8_t)c.fc;
	out->addr = (uint16_t)c.addr;
	out->type = c.type;
	out->order = c.order;
	out->scale = c.scale;
	out->min = c.min;
	out->max = c.max;
	out->has_min = c.has_min;
	out->has_max = c.has_max;
	out->n_codes = c.codes.n;
	memcpy(out->codes, c.codes.v, sizeof(out->codes));
	out->dangerous = c.dangerous;
	out->readable = c.has_readable ? c.readable : true;
	out->after_restart = strcmp(c.applies, "restart") == 0;
	out->has_standard = c.has_standard;
	out->standard = c.standard;
	out->wait_ms = (uint32_t)c.wait_ms;
	return 0;
}

static const struct agri_cfg_field setting_value = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_setting,
};

static const struct agri_cfg_array settings_array = {
	.value = &setting_value, .elem_size = sizeof(struct agri_setting),
	.max = AGRI_PROFILE_SETTINGS_MAX, .what = "settings",
};

#define P struct profile_cfg
static const struct agri_cfg_field profile_fields[] = {
	AGRI_FIELD_STR(P, "profile", p.name, true),
	AGRI_FIELD_STR(P, "vendor", p.vendor, false),
	AGRI_FIELD_STR(P, "model", p.model, false),
	AGRI_FIELD_CUSTOM(P, "serial", p.serial, parse_serial, false),
	AGRI_FIELD_INT(P, "max_gap", max_gap, 0, AGRI_MODBUS_MAX_REGS),
	AGRI_FIELD_INT(P, "max_regs", max_regs, 1, AGRI_MODBUS_MAX_REGS),
	AGRI_FIELD_BOOL(P, "even_align", p.even_align),
	AGRI_FIELD(P, "probe", AGRI_CFG_CUSTOM, p.probe, false, .parse = parse_probe,
		   AGRI_PRESENT(P, p.has_probe)),
	AGRI_FIELD_ARRAY(P, "registers", p.regs, p.n_regs, &registers_array, true),
	AGRI_FIELD_ARRAY(P, "derived", p.derived, p.n_derived, &derived_array, false),
	AGRI_FIELD_DOUBLE(P, "stuck_after_s", p.stuck_after_s, 0, 1e8),
	AGRI_FIELD_ARRAY(P, "init", p.init, p.n_init, &commands_array, false),
	AGRI_FIELD_ARRAY(P, "before_read", p.before_read, p.n_before, &commands_array, false),
	AGRI_FIELD_ARRAY(P, "expect", p.expect, p.n_expect, &expect_array, false),
	AGRI_FIELD_ARRAY(P, "settings", p.settings, p.n_settings, &settings_array, false),
};
#undef P

/* Request span of [start, end) under the profile's alignment rule. */
static unsigned span(const struct agri_profile *p, unsigned start, unsigned end)
{
	unsigned n = end - start;

	return p->even_align ? (n + 1) & ~1u : n;
}

static unsigned plan_max_regs(const struct agri_profile *p)
{
	unsigned m = p->max_regs >= 1 && p->max_regs <= AGRI_MODBUS_MAX_REGS ?
			     (unsigned)p->max_regs : AGRI_MODBUS_MAX_REGS;

	return p->even_align ? m & ~1u : m;
}

/* Whether register r alone fits in one request. */
static bool reg_fits(const struct agri_profile *p, const struct agri_register *r)
{
	unsigned start = p->even_align ? r->addr & ~1u : r->addr;

	return span(p, start, r->addr + agri_regtype_words(r->type)) <=
	       plan_max_regs(p);
}

/* Index of the register a derived metric names, or -1. */
static int reg_index(const struct agri_profile *p, const char *metric)
{
	const struct agri_register *r = agri_profile_find(p, metric);

	return r ? (int)(r - p->regs) : -1;
}

/* Derived metrics: unique, and their inputs exist in the right units. */
static int check_derived(struct agri_profile *p, struct agri_err *err)
{
	char path[AGRI_ERR_PATH_MAX], fpath[AGRI_ERR_PATH_MAX];
	char key[32], msg[AGRI_ERR_MSG_MAX];

	for (size_t j = 0; j < p->n_derived; j++) {
		struct agri_derived *d = &p->derived[j];
		double f;

		agri_path_index(path, sizeof(path), "derived", (int)j);
		for (size_t i = 0; i < p->n_regs + j; i++) {
			const char *m = i < p->n_regs ?
				p->regs[i].metric : p->derived[i - p->n_regs].metric;

			if (strcmp(m, d->metric) == 0) {
				snprintf(msg, sizeof(msg), "duplicate metric \"%s\"", m);
				return reg_error(err, path, "metric", msg);
			}
		}
		if (d->fn == AGRI_DERIVED_PSS78 && d->n_from != 2) {
			agri_path_key(fpath, sizeof(fpath), path, "from");
			agri_err_set(err, fpath, "pss78 needs 2 metrics: conductivity, temperature");
			return -EINVAL;
		}
		for (size_t k = 0; k < d->n_from; k++) {
			const struct agri_register *r;
			bool ok;

			snprintf(key, sizeof(key), "from[%zu]", k);
			agri_path_key(fpath, sizeof(fpath), path, key);
			d->from_reg[k] = reg_index(p, d->from[k]);
			if (d->from_reg[k] < 0) {
				agri_err_set(err, fpath, "no register \"%s\"", d->from[k]);
				return -EINVAL;
			}
			r = &p->regs[d->from_reg[k]];
			if (k == 1) {
				ok = strcmp(r->unit, "°C") == 0;
			} else if (d->fn == AGRI_DERIVED_PSS78) {
				ok = strcmp(r->unit, "mS/cm") == 0;
			} else {
				d->depth = agri_length_unit_m(r->unit, &f) == 0;
				ok = d->depth || agri_pressure_unit_pa(r->unit, &f) == 0;
				d->in_factor = f;
			}
			if (!ok) {
				if (d->fn == AGRI_DERIVED_PSS78 || k == 1)
					agri_err_set(err, fpath, "%s needs %s in %s, not \"%s\"",
						     d->fn == AGRI_DERIVED_PSS78 ? "pss78" : "level",
						     k ? "temperature" : "conductivity",
						     k ? "°C" : "mS/cm", r->unit);
				else
					agri_err_set(err, fpath, "level needs a pressure (bar, mbar, "
						     "hPa, kPa, MPa, Pa, psi) or a depth (m, cm, mm), "
						     "not \"%s\"", r->unit);
				return -EINVAL;
			}
		}
		if (d->air[0]) {
			agri_path_key(fpath, sizeof(fpath), path, "air");
			d->air_reg = reg_index(p, d->air);
			if (d->air_reg < 0) {
				agri_err_set(err, fpath, "no register \"%s\"", d->air);
				return -EINVAL;
			}
			if (d->depth || agri_pressure_unit_pa(p->regs[d->air_reg].unit,
							       &d->air_factor) < 0) {
				agri_err_set(err, fpath, "needs a pressure register, and from[0] a pressure");
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Expected words name registers that exist. */
static int check_expect(const struct agri_profile *p, struct agri_err *err)
{
	char path[AGRI_ERR_PATH_MAX];

	for (size_t j = 0; j < p->n_expect; j++) {
		const struct agri_expect *x = &p->expect[j];
		bool found = !x->metric[0];

		for (size_t i = 0; i < p->n_regs && !found; i++)
			found = strcmp(p->regs[i].metric, x->metric) == 0;
		if (!found) {
			agri_path_index(path, sizeof(path), "expect", (int)j);
			return reg_error(err, path, "metric", "names no register");
		}
	}
	return 0;
}

/* Settings: unique names; a calibration names a register of the map. */
static int check_settings(const struct agri_profile *p, struct agri_err *err)
{
	char path[AGRI_ERR_PATH_MAX], msg[AGRI_ERR_MSG_MAX];

	for (size_t j = 0; j < p->n_settings; j++) {
		const struct agri_setting *s = &p->settings[j];

		agri_path_index(path, sizeof(path), "settings", (int)j);
		for (size_t i = 0; i < j; i++)
			if (!strcmp(p->settings[i].name, s->name)) {
				snprintf(msg, sizeof(msg), "duplicate setting \"%s\"", s->name);
				return reg_error(err, path, "name", msg);
			}
		if (s->metric[0] && !agri_profile_find(p, s->metric))
			return reg_error(err, path, "metric", "names no register");
	}
	return 0;
}

/* Cross-field checks of a profile whose fields each parsed. */
static int check_profile(struct agri_profile *p, struct agri_err *err)
{
	char path[AGRI_ERR_PATH_MAX], msg[AGRI_ERR_MSG_MAX];
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	int rc;

	if (!agri_ident_valid(p->name)) {
		agri_err_set(err, "profile", "expected [A-Za-z0-9_-]{1,32}");
		return -EINVAL;
	}
	if (p->even_align && plan_max_regs(p) < 2) {
		agri_err_set(err, "max_regs", "must be at least 2 with even_align");
		return -EINVAL;
	}
	for (size_t j = 0; j < p->n_regs; j++) {
		const struct agri_register *b = &p->regs[j];
		unsigned bend = b->addr + agri_regtype_words(b->type);

		agri_path_index(path, sizeof(path), "registers", (int)j);
		if (!reg_fits(p, b)) {
			snprintf(msg, sizeof(msg), "%s does not fit max_regs %u",
				 agri_regtype_name(b->type), plan_max_regs(p));
			return reg_error(err, path, "type", msg);
		}
		for (size_t i = 0; i < j; i++) {
			const struct agri_register *a = &p->regs[i];
			unsigned aend = a->addr + agri_regtype_words(a->type);

			if (strcmp(a->metric, b->metric) == 0 &&
			    strcmp(a->sensor_suffix, b->sensor_suffix) == 0) {
				snprintf(msg, sizeof(msg), "duplicate metric \"%s\"",
					 b->metric);
				return reg_error(err, path, "metric", msg);
			}
			if (a->fc == b->fc && a->addr < bend && b->addr < aend) {
				snprintf(msg, sizeof(msg), "overlaps registers[%zu] (%s)",
					 i, a->metric);
				return reg_error(err, path, "addr", msg);
			}
		}
	}
	rc = check_derived(p, err);
	if (rc < 0)
		return rc;
	rc = check_expect(p, err);
	if (rc < 0)
		return rc;
	rc = check_settings(p, err);
	if (rc < 0)
		return rc;
	rc = agri_plan_reads(p, reqs, AGRI_PLAN_MAX);
	if (rc == -ENOSPC) {
		agri_err_set(err, "registers",
			     "needs more than %d requests (raise max_gap)",
			     AGRI_PLAN_MAX);
		return -EINVAL;
	}
	return rc < 0 ? rc : 0;
}

int agri_profile_parse(const char *json, size_t len, struct agri_profile *out,
		       struct agri_err *err)
{
	struct profile_cfg c;
	cJSON *root = NULL;
	int rc;

	memset(&c, 0, sizeof(c));
	c.max_regs = AGRI_MODBUS_MAX_REGS;
	c.p.serial = (struct agri_serial){.parity = 'N', .data_bits = 8,
					  .stop_bits = 1};
	rc = agri_json_parse(json, len, PROFILE_MAX_BYTES, PROFILE_MAX_DEPTH,
			     &root, err);
	if (rc < 0)
		return rc;
	rc = agri_cfg_read(root, "", profile_fields, AGRI_ARRAY_SIZE(profile_fields),
			   &c, false, err);
	if (rc < 0)
		goto out;
	c.p.max_gap = (int)c.max_gap;
	c.p.max_regs = (int)c.max_regs;
	rc = check_profile(&c.p, err);
	if (rc == 0)
		*out = c.p;
out:
	cJSON_Delete(root);
	return rc;
}

static bool reg_before(const struct agri_register *a,
		       const struct agri_register *b)
{
	return a->fc != b->fc ? a->fc < b->fc : a->addr < b->addr;
}

int agri_plan_reads(const struct agri_profile *p, struct agri_read_req *reqs,
		    size_t cap)
{
	const struct agri_register *sorted[AGRI_PROFILE_REGS_MAX];
	struct agri_read_req out[AGRI_PROFILE_REGS_MAX];
	unsigned max_regs = plan_max_regs(p), start = 0, end = 0;
	unsigned max_gap = p->max_gap > 0 ? (unsigned)p->max_gap : 0;
	size_t n = 0, nr = p->n_regs;

	if (nr > AGRI_PROFILE_REGS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < nr; i++) {
		size_t j = i;

		while (j > 0 && reg_before(&p->regs[i], sorted[j - 1])) {
			sorted[j] = sorted[j - 1];
			j--;
		}
		sorted[j] = &p->regs[i];
	}
	/* Greedy: extending the current request as far as the rules allow
	 * never costs a request later, so this is the minimum. */
	for (size_t i = 0; i < nr; i++) {
		const struct agri_register *r = sorted[i];
		unsigned rend = r->addr + agri_regtype_words(r->type);

		if (n > 0 && out[n - 1].fc == r->fc) {
			unsigned gap = r->addr > end ? r->addr - end : 0;
			unsigned nend = rend > end ? rend : end;

			if (gap <= max_gap && span(p, start, nend) <= max_regs) {
				end = nend;
				out[n - 1].count = (uint16_t)span(p, start, end);
				continue;
			}
		}
		if (!reg_fits(p, r))
			return -EINVAL;
		start = p->even_align ? r->addr & ~1u : r->addr;
		end = rend;
		out[n].fc = r->fc;
		out[n].addr = (uint16_t)start;
		out[n].count = (uint16_t)span(p, start, end);
		n++;
	}
	if (n > cap)
		return -ENOSPC;
	memcpy(reqs, out, n * sizeof(out[0]));
	return (int)n;
}

int agri_plan_locate(const struct agri_read_req *reqs, size_t n_reqs,
		     const struct agri_register *r, size_t *req_index,
		     size_t *word_offset)
{
	unsigned rend = r->addr + agri_regtype_words(r->type);

	for (size_t i = 0; i < n_reqs; i++) {
		if (reqs[i].fc == r->fc && reqs[i].addr <= r->addr &&
		    rend <= (unsigned)reqs[i].addr + reqs[i].count) {
			*req_index = i;
			*word_offset = r->addr - reqs[i].addr;
			return 0;
		}
	}
	return -ENOENT;
}

int agri_register_decode(const struct agri_register *r, const uint16_t *words,
			 double *value, bool *has_value, enum agri_quality *q)
{
	double raw, v;

	if (agri_reg_unpack(r->type, r->order, words, &raw) < 0 ||
	    !isfinite(v = raw * r->scale + r->offset)) {
		*value = NAN;
		*has_value = false;
		*q = AGRI_Q_ERROR;
		return 0;
	}
	*value = v;
	*has_value = true;
	*q = (r->has_min && v < r->min) || (r->has_max && v > r->max) ?
		     AGRI_Q_SUSPECT : AGRI_Q_OK;
	return 0;
}

double agri_register_raw(const struct agri_register *r, double value)
{
	return (value - r->offset) / r->scale;
}

const struct agri_register *agri_profile_find(const struct agri_profile *p,
					      const char *metric)
{
	for (size_t i = 0; i < p->n_regs; i++) {
		if (!p->regs[i].sensor_suffix[0] &&
		    strcmp(p->regs[i].metric, metric) == 0)
			return &p->regs[i];
	}
	return NULL;
}

int agri_derive(const struct agri_profile *p, const struct agri_derived *d,
		const double in[2], double air, double coef_pct, double offset_m,
		double *out)
{
	double v = NAN, t = in[1];

	if (!isfinite(in[0]) || d->from_reg[0] < 0 || (size_t)d->from_reg[0] >= p->n_regs)
		return -EDOM;
	if (d->fn == AGRI_DERIVED_PSS78) {
		const struct agri_register *c = &p->regs[d->from_reg[0]];
		double cond = in[0], alpha = isnan(coef_pct) ? c->coef_pct : coef_pct;

		if (!isfinite(t))
			return -EDOM;
		if (c->specific && isnan(alpha)) {
			t = c->ref_c; /* unknown compensation: PSS-78 at its reference */
		} else if (c->specific) {
			cond = agri_ec_from_sc(cond, t, alpha / 100, c->ref_c);
		}
		v = agri_sp_from_c(cond, t, 0);
	} else if (d->depth) {
		v = in[0] * d->in_factor + offset_m;
	} else {
		double pa = in[0] * d->in_factor;

		if (d->air_reg >= 0) {
			if (!isfinite(air))
				return -EDOM;
			pa -= air * d->air_factor;
		}
		v = agri_head_m(pa, d->n_from > 1 ? t : 25) + offset_m;
		if (d->n_from > 1 && !isfinite(t))
			return -EDOM;
	}
	if (!isfinite(v))
		return -EDOM;
	*out = v;
	return 0;
}

size_t agri_command_pdu(const struct agri_command *c, uint8_t *pdu)
{
	size_t n = 5;

	pdu[0] = c->fc;
	pdu[1] = (uint8_t)(c->addr >> 8);
	pdu[2] = (uint8_t)c->addr;
	if (c->fc == 6) {
		pdu[3] = (uint8_t)(c->values[0] >> 8);
		pdu[4] = (uint8_t)c->values[0];
		return n;
	}
	pdu[3] = (uint8_t)(c->count >> 8);
	pdu[4] = (uint8_t)c->count;
	if (c->fc == 16) {
		pdu[5] = (uint8_t)(2 * c->count);
		n = 6;
		for (uint16_t i = 0; i < c->count && i < AGRI_CMD_VALUES_MAX; i++) {
			pdu[n++] = (uint8_t)(c->values[i] >> 8);
			pdu[n++] = (uint8_t)c->values[i];
		}
	}
	return n;
}

const struct agri_setting *agri_profile_setting(const struct agri_profile *p,
						const char *name)
{
	for (size_t i = 0; p && name && i < p->n_settings; i++)
		if (!strcmp(p->settings[i].name, name))
			return &p->settings[i];
	return NULL;
}

int agri_setting_encode(const struct agri_setting *s, double value, uint16_t *words)
{
	double raw;

	if (!s || !words || !isfinite(value))
		return -ERANGE;
	if (s->n_codes) {
		size_t i;

		for (i = 0; i < s->n_codes; i++)
			if (s->codes[i] == value)
				break;
		if (i == s->n_codes)
			return -ERANGE;
		raw = (double)i;
	} else {
		if ((s->has_min && value < s->min) || (s->has_max && value > s->max))
			return -ERANGE;
		raw = value * s->scale;
	}
	if (agri_reg_pack(s->type, s->order, raw, words) < 0)
		return -ERANGE;
	return (int)agri_regtype_words(s->type);
}

int agri_setting_decode(const struct agri_setting *s, const uint16_t *words,
			double *value)
{
	double raw;

	if (!s || !words || !value || agri_reg_unpack(s->type, s->order, words, &raw) < 0)
		return -ERANGE;
	if (s->n_codes) {
		if (raw < 0 || raw >= (double)s->n_codes || raw != floor(raw))
			return -ERANGE;
		*value = s->codes[(size_t)raw];
		return 0;
	}
	*value = raw / s->scale;
	return 0;
}
