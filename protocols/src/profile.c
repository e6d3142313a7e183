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

#include "agri/json.h"
#include "agri/profile.h"

#define PROFILE_MAX_BYTES (64 * 1024)
#define PROFILE_MAX_DEPTH 8
/* A 15-char sensor name + "-" + suffix fits AGRI_ID_MAX. */
#define SUFFIX_MAX 16
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

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
};

struct serial_cfg {
	int64_t baud, data_bits, stop_bits;
	char parity;
};

struct probe_cfg {
	int64_t fc, addr, count;
};

struct derived_cfg {
	char metric[AGRI_ID_MAX + 1];
	char unit[AGRI_UNIT_MAX + 1];
	enum agri_derived_fn fn;
	char from[2][AGRI_ID_MAX + 1];
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
	agri_err_set(err, path, "unknown fn \"%.32s\" (pss78)", item->valuestring);
	return -EINVAL;
}

static int parse_from(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	char (*from)[AGRI_ID_MAX + 1] = field;
	char ipath[AGRI_ERR_PATH_MAX];
	const cJSON *m;
	int i = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2) {
		agri_err_set(err, path, "expected an array of 2 metrics");
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

	rc = agri_cfg_read(item, path, serial_fields, ARRAY_SIZE(serial_fields),
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

	rc = agri_cfg_read(item, path, probe_fields, ARRAY_SIZE(probe_fields),
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

	rc = agri_cfg_read(item, path, reg_fields, ARRAY_SIZE(reg_fields), &c,
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
	D("unit", AGRI_CFG_STR, false, unit, 0, 0, NULL, 0),
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
		struct derived_cfg c = {.unit = "g/L"};
		struct agri_derived *d = &p->derived[p->n_derived];

		agri_path_index(ipath, sizeof(ipath), path, (int)p->n_derived);
		rc = agri_cfg_read(e, ipath, derived_fields,
				   ARRAY_SIZE(derived_fields), &c, false, err);
		if (rc < 0)
			return rc;
		if (!metric_valid(c.metric))
			return reg_error(err, ipath, "metric", "not a snake_case metric");
		memset(d, 0, sizeof(*d));
		strcpy(d->metric, c.metric);
		strcpy(d->unit, c.unit);
		d->fn = c.fn;
		strcpy(d->from[0], c.from[0]);
		strcpy(d->from[1], c.from[1]);
		p->n_derived++;
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

/* Derived metrics: unique, and their inputs exist in the right units. */
static int check_derived(const struct agri_profile *p, struct agri_err *err)
{
	static const char *const pss78_units[2] = {"mS/cm", "°C"};
	char path[AGRI_ERR_PATH_MAX], fpath[AGRI_ERR_PATH_MAX];
	char key[16], msg[AGRI_ERR_MSG_MAX];

	for (size_t j = 0; j < p->n_derived; j++) {
		const struct agri_derived *d = &p->derived[j];

		agri_path_index(path, sizeof(path), "derived", (int)j);
		for (size_t i = 0; i < p->n_regs + j; i++) {
			const char *m = i < p->n_regs ?
				p->regs[i].metric : p->derived[i - p->n_regs].metric;

			if (strcmp(m, d->metric) == 0) {
				snprintf(msg, sizeof(msg), "duplicate metric \"%s\"", m);
				return reg_error(err, path, "metric", msg);
			}
		}
		for (int k = 0; k < 2; k++) {
			const struct agri_register *r = agri_profile_find(p, d->from[k]);

			snprintf(key, sizeof(key), "from[%d]", k);
			agri_path_key(fpath, sizeof(fpath), path, key);
			if (!r) {
				agri_err_set(err, fpath, "no register \"%s\"",
					     d->from[k]);
				return -EINVAL;
			}
			if (d->fn == AGRI_DERIVED_PSS78 &&
			    strcmp(r->unit, pss78_units[k]) != 0) {
				agri_err_set(err, fpath, "pss78 needs %s in %s, not \"%s\"",
					     k ? "temperature" : "conductivity",
					     pss78_units[k], r->unit);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* Cross-field checks of a profile whose fields each parsed. */
static int check_profile(const struct agri_profile *p, struct agri_err *err)
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
	rc = agri_cfg_read(root, "", profile_fields, ARRAY_SIZE(profile_fields),
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
