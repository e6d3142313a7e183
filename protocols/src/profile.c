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

/* init / before_read lists, and expect: their target is the profile. */
struct cmd_list {
	size_t *n;
	struct agri_command *c;
};

struct profile_cfg {
	int64_t max_gap, max_regs;
	struct agri_profile p;
};

/* One table row; present: offsetof() a bool set when the key is there. */
#define FIELD(st, key, type, req, m, lo, hi, fn, present)                  \
	{key, type, req, offsetof(st, m), sizeof(((st *)0)->m), lo, hi, fn, \
	 present}
#define NOLIMIT -DBL_MAX, DBL_MAX

static int want_string(const cJSON *item, const char *path,
		       struct agri_err *err)
{
	if (cJSON_IsString(item))
		return 0;
	agri_err_set(err, path, "expected a string");
	return -EINVAL;
}

static int parse_type(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (want_string(item, path, err))
		return -EINVAL;
	if (agri_regtype_parse(item->valuestring, field) == 0)
		return 0;
	agri_err_set(err, path, "unknown type \"%.32s\"", item->valuestring);
	return -EINVAL;
}

static int parse_order(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	if (want_string(item, path, err))
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

	if (want_string(item, path, err))
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

	if (want_string(item, path, err))
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
	if (want_string(item, path, err))
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

static int parse_from(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	struct from_cfg *f = field;
	char (*from)[AGRI_ID_MAX + 1] = f->m;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *m;
	int i = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 ||
	    cJSON_GetArraySize(item) > 2) {
		agri_err_set(err, path, "expected an array of 1 or 2 metrics");
		return -EINVAL;
	}
	cJSON_ArrayForEach(m, item) {
		agri_path_index(ipath, sizeof(ipath), path, i);
		if (want_string(m, ipath, err))
			return -EINVAL;
		if (strlen(m->valuestring) > AGRI_ID_MAX) {
			agri_err_set(err, ipath, "longer than %d chars", AGRI_ID_MAX);
			return -EINVAL;
		}
		strcpy(from[i++], m->valuestring);
	}
	f->n = (size_t)i;
	return 0;
}

static int parse_role(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	static const char *const names[] = {"other", "start", "wipe"};

	if (want_string(item, path, err))
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

static int parse_values(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct cmd_values *v = field;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *e;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > AGRI_CMD_VALUES_MAX) {
		agri_err_set(err, path, "expected an array of at most %d register values",
			     AGRI_CMD_VALUES_MAX);
		return -EINVAL;
	}
	v->n = 0;
	cJSON_ArrayForEach(e, item) {
		agri_path_index(ipath, sizeof(ipath), path, (int)v->n);
		if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 65535 ||
		    e->valuedouble != floor(e->valuedouble)) {
			agri_err_set(err, ipath, "expected an integer 0..65535");
			return -EINVAL;
		}
		v->v[v->n++] = (uint16_t)e->valuedouble;
	}
	return 0;
}

#define S(...) FIELD(struct serial_cfg, __VA_ARGS__)
static const struct agri_cfg_field serial_fields[] = {
	S("baud", AGRI_CFG_INT, false, baud, 300, 4000000, NULL, 0),
	S("parity", AGRI_CFG_CUSTOM, false, parity, 0, 0, parse_parity, 0),
	S("data_bits", AGRI_CFG_INT, false, data_bits, 7, 8, NULL, 0),
	S("stop_bits", AGRI_CFG_INT, false, stop_bits, 1, 2, NULL, 0),
};

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

#define PR(...) FIELD(struct probe_cfg, __VA_ARGS__)
static const struct agri_cfg_field probe_fields[] = {
	PR("fc", AGRI_CFG_INT, true, fc, 3, 4, NULL, 0),
	PR("addr", AGRI_CFG_INT, true, addr, 0, 65535, NULL, 0),
	PR("count", AGRI_CFG_INT, true, count, 1, AGRI_MODBUS_MAX_REGS, NULL, 0),
};

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

#define RF(...) FIELD(struct ref_cfg, __VA_ARGS__)
static const struct agri_cfg_field ref_fields[] = {
	RF("fc", AGRI_CFG_INT, true, fc, 3, 4, NULL, 0),
	RF("addr", AGRI_CFG_INT, true, addr, 0, 65535, NULL, 0),
	RF("type", AGRI_CFG_CUSTOM, false, type, 0, 0, parse_type, 0),
	RF("order", AGRI_CFG_CUSTOM, false, order, 0, 0, parse_order,
	   offsetof(struct ref_cfg, has_order)),
	RF("scale", AGRI_CFG_DOUBLE, false, scale, NOLIMIT, NULL, 0),
};

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

#define R(...) FIELD(struct reg_cfg, __VA_ARGS__)
static const struct agri_cfg_field reg_fields[] = {
	R("metric", AGRI_CFG_STR, true, metric, 0, 0, NULL, 0),
	R("fc", AGRI_CFG_INT, true, fc, 3, 4, NULL, 0),
	R("addr", AGRI_CFG_INT, true, addr, 0, 65535, NULL, 0),
	R("type", AGRI_CFG_CUSTOM, true, type, 0, 0, parse_type, 0),
	R("order", AGRI_CFG_CUSTOM, false, order, 0, 0, parse_order,
	  offsetof(struct reg_cfg, has_order)),
	R("scale", AGRI_CFG_DOUBLE, false, scale, NOLIMIT, NULL, 0),
	R("offset", AGRI_CFG_DOUBLE, false, offset, NOLIMIT, NULL, 0),
	R("unit", AGRI_CFG_STR, false, unit, 0, 0, NULL, 0),
	R("min", AGRI_CFG_DOUBLE, false, min, NOLIMIT, NULL,
	  offsetof(struct reg_cfg, has_min)),
	R("max", AGRI_CFG_DOUBLE, false, max, NOLIMIT, NULL,
	  offsetof(struct reg_cfg, has_max)),
	R("kind", AGRI_CFG_CUSTOM, false, kind, 0, 0, parse_kind, 0),
	R("stable", AGRI_CFG_BOOL, false, stable, 0, 0, NULL, 0),
	R("sensor_suffix", AGRI_CFG_STR, false, suffix, 0, 0, NULL, 0),
	R("doc_ref", AGRI_CFG_STR, false, doc_ref, 0, 0, NULL, 0),
	R("ref_c", AGRI_CFG_DOUBLE, false, ref_c, -5, 40, NULL,
	  offsetof(struct reg_cfg, has_ref_c)),
	R("coef_pct_per_c", AGRI_CFG_DOUBLE, false, coef_pct, 0, 10, NULL,
	  offsetof(struct reg_cfg, has_coef)),
	R("coef_reg", AGRI_CFG_CUSTOM, false, coef_reg, 0, 0, parse_ref,
	  offsetof(struct reg_cfg, has_coef_reg)),
	R("full_scale", AGRI_CFG_DOUBLE, false, full_scale, NOLIMIT, NULL,
	  offsetof(struct reg_cfg, has_full_scale)),
	R("dry_below", AGRI_CFG_DOUBLE, false, dry_below, 0, 1e9, NULL, 0),
	R("stuck_after_s", AGRI_CFG_DOUBLE, false, stuck_after_s, 0, 1e8, NULL, 0),
};

/* snake_case: [a-z][a-z0-9_]*, at most AGRI_ID_MAX chars. */
static bool metric_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > AGRI_ID_MAX || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	}
	return true;
}

static int reg_error(struct agri_err *err, const char *path, const char *key,
		     const char *msg)
{
	char kpath[AGRI_ERR_PATH_MAX];

	agri_path_key(kpath, sizeof(kpath), path, key);
	agri_err_set(err, kpath, "%s", msg);
	return -EINVAL;
}

static int parse_register(const cJSON *item, const char *path,
			  struct agri_register *r, struct agri_err *err)
{
	struct reg_cfg c = {.scale = 1, .order = AGRI_ORDER_ABCD};
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

static int parse_registers(const cJSON *item, void *field, const char *path,
			   struct agri_err *err)
{
	struct agri_profile *p = field;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int n, rc;

	n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : -1;
	if (n < 1 || n > AGRI_PROFILE_REGS_MAX) {
		agri_err_set(err, path, "expected an array of 1 to %d registers",
			     AGRI_PROFILE_REGS_MAX);
		return -EINVAL;
	}
	p->n_regs = 0;
	cJSON_ArrayForEach(e, item) {
		agri_path_index(ipath, sizeof(ipath), path, (int)p->n_regs);
		rc = parse_register(e, ipath, &p->regs[p->n_regs], err);
		if (rc < 0)
			return rc;
		p->n_regs++;
	}
	return 0;
}

#define D(...) FIELD(struct derived_cfg, __VA_ARGS__)
static const struct agri_cfg_field derived_fields[] = {
	D("metric", AGRI_CFG_STR, true, metric, 0, 0, NULL, 0),
	D("fn", AGRI_CFG_CUSTOM, true, fn, 0, 0, parse_fn, 0),
	D("from", AGRI_CFG_CUSTOM, true, from, 0, 0, parse_from, 0),
	D("unit", AGRI_CFG_STR, false, unit, 0, 0, NULL,
	  offsetof(struct derived_cfg, has_unit)),
	D("air", AGRI_CFG_STR, false, air, 0, 0, NULL, 0),
};

static int parse_derived(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct agri_profile *p = field;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int n, rc;

	n = cJSON_IsArray(item) ? cJSON_GetArraySize(item) : -1;
	if (n < 0 || n > AGRI_PROFILE_DERIVED_MAX) {
		agri_err_set(err, path, "expected an array of at most %d entries",
			     AGRI_PROFILE_DERIVED_MAX);
		return -EINVAL;
	}
	p->n_derived = 0;
	cJSON_ArrayForEach(e, item) {
		struct derived_cfg c = {.unit = ""};
		struct agri_derived *d = &p->derived[p->n_derived];

		agri_path_index(ipath, sizeof(ipath), path, (int)p->n_derived);
		rc = agri_cfg_read(e, ipath, derived_fields,
				   AGRI_ARRAY_SIZE(derived_fields), &c, false, err);
		if (rc < 0)
			return rc;
		if (!metric_valid(c.metric))
			return reg_error(err, ipath, "metric", "not a snake_case metric");
		if (c.air[0] && c.fn != AGRI_DERIVED_LEVEL)
			return reg_error(err, ipath, "air", "only for fn \"level\"");
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
		p->n_derived++;
	}
	return 0;
}

#define C(...) FIELD(struct cmd_cfg, __VA_ARGS__)
static const struct agri_cfg_field cmd_fields[] = {
	C("fc", AGRI_CFG_INT, true, fc, 3, 16, NULL, 0),
	C("addr", AGRI_CFG_INT, true, addr, 0, 65535, NULL, 0),
	C("count", AGRI_CFG_INT, false, count, 0, AGRI_MODBUS_MAX_REGS, NULL,
	  offsetof(struct cmd_cfg, has_count)),
	C("values", AGRI_CFG_CUSTOM, false, values, 0, 0, parse_values,
	  offsetof(struct cmd_cfg, has_values)),
	C("wait_ms", AGRI_CFG_INT, false, wait_ms, 0, 60000, NULL, 0),
	C("role", AGRI_CFG_CUSTOM, false, role, 0, 0, parse_role, 0),
	C("doc_ref", AGRI_CFG_STR, false, doc_ref, 0, 0, NULL, 0),
};

static int parse_command(const cJSON *item, const char *path, struct agri_command *out,
			 struct agri_err *err)
{
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

static int parse_cmd_list(const cJSON *item, void *field, const char *path,
			  struct agri_err *err, bool before)
{
	struct agri_profile *p = field;
	size_t *n = before ? &p->n_before : &p->n_init;
	struct agri_command *c = before ? p->before_read : p->init;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int rc;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > AGRI_PROFILE_CMDS_MAX) {
		agri_err_set(err, path, "expected an array of at most %d commands",
			     AGRI_PROFILE_CMDS_MAX);
		return -EINVAL;
	}
	*n = 0;
	cJSON_ArrayForEach(e, item) {
		agri_path_index(ipath, sizeof(ipath), path, (int)*n);
		rc = parse_command(e, ipath, &c[*n], err);
		if (rc < 0)
			return rc;
		(*n)++;
	}
	return 0;
}

static int parse_init(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	return parse_cmd_list(item, field, path, err, false);
}

static int parse_before(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	return parse_cmd_list(item, field, path, err, true);
}

#define E(...) FIELD(struct expect_cfg, __VA_ARGS__)
static const struct agri_cfg_field expect_fields[] = {
	E("fc", AGRI_CFG_INT, true, fc, 3, 4, NULL, 0),
	E("addr", AGRI_CFG_INT, true, addr, 0, 65535, NULL, 0),
	E("value", AGRI_CFG_INT, true, value, 0, 65535, NULL, 0),
	E("metric", AGRI_CFG_STR, false, metric, 0, 0, NULL, 0),
	E("doc_ref", AGRI_CFG_STR, false, doc_ref, 0, 0, NULL, 0),
};

static int parse_expect(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct agri_profile *p = field;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int rc;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > AGRI_PROFILE_EXPECT_MAX) {
		agri_err_set(err, path, "expected an array of at most %d words",
			     AGRI_PROFILE_EXPECT_MAX);
		return -EINVAL;
	}
	p->n_expect = 0;
	cJSON_ArrayForEach(e, item) {
		struct expect_cfg c = {0};
		struct agri_expect *x = &p->expect[p->n_expect];

		agri_path_index(ipath, sizeof(ipath), path, (int)p->n_expect);
		rc = agri_cfg_read(e, ipath, expect_fields, AGRI_ARRAY_SIZE(expect_fields), &c,
				   false, err);
		if (rc < 0)
			return rc;
		x->fc = (uint8_t)c.fc;
		x->addr = (uint16_t)c.addr;
		x->value = (uint16_t)c.value;
		strcpy(x->metric, c.metric);
		p->n_expect++;
	}
	return 0;
}

/* "registers" and "derived" fill the whole profile: their target is p. */
#define P(...) FIELD(struct profile_cfg, __VA_ARGS__)
static const struct agri_cfg_field profile_fields[] = {
	P("profile", AGRI_CFG_STR, true, p.name, 0, 0, NULL, 0),
	P("vendor", AGRI_CFG_STR, false, p.vendor, 0, 0, NULL, 0),
	P("model", AGRI_CFG_STR, false, p.model, 0, 0, NULL, 0),
	P("serial", AGRI_CFG_CUSTOM, false, p.serial, 0, 0, parse_serial, 0),
	P("max_gap", AGRI_CFG_INT, false, max_gap, 0, AGRI_MODBUS_MAX_REGS, NULL, 0),
	P("max_regs", AGRI_CFG_INT, false, max_regs, 1, AGRI_MODBUS_MAX_REGS, NULL, 0),
	P("even_align", AGRI_CFG_BOOL, false, p.even_align, 0, 0, NULL, 0),
	P("probe", AGRI_CFG_CUSTOM, false, p.probe, 0, 0, parse_probe,
	  offsetof(struct profile_cfg, p.has_probe)),
	P("registers", AGRI_CFG_CUSTOM, true, p, 0, 0, parse_registers, 0),
	P("derived", AGRI_CFG_CUSTOM, false, p, 0, 0, parse_derived, 0),
	P("stuck_after_s", AGRI_CFG_DOUBLE, false, p.stuck_after_s, 0, 1e8, NULL, 0),
	P("init", AGRI_CFG_CUSTOM, false, p, 0, 0, parse_init, 0),
	P("before_read", AGRI_CFG_CUSTOM, false, p, 0, 0, parse_before, 0),
	P("expect", AGRI_CFG_CUSTOM, false, p, 0, 0, parse_expect, 0),
};

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
