/*
 * Printing a device read for a technician (aligned table) or a script
 * (--json: one object with metrics, values, quality and raw registers,
 * written through agri_buf's JSON writers). Besides each register: the
 * metrics the station derives from them (salinity, water level), the
 * insect each light-trap class counts, status words as integers with
 * their bits.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/msg.h"
#include "agrictl.h"
#include "msgs.h"

#define READ_JSON_MAX (1024 * 1024)

/* What each light-trap class counts (docs/profiles.md, the trap's map). */
static const struct {
	const char *suffix, *en;
} species[] = {
	{"bph", "brown planthopper (Nilaparvata lugens)"},
	{"wbph", "white-backed planthopper (Sogatella furcifera)"},
	{"green-leafhopper", "green leafhopper (Nephotettix)"},
	{"stem-borer", "stem-borer moths"},
	{"leaf-folder", "leaf-folder moths"},
};

const char *agrictl_species(const char *suffix)
{
	for (size_t i = 0; i < sizeof(species) / sizeof(species[0]); i++)
		if (!strcmp(species[i].suffix, suffix))
			return T(species[i].en);
	return NULL;
}

/* "insect_count[bph]" for a class register, else the metric. */
static void metric_label(const struct agri_register *r, char *buf, size_t len)
{
	if (r->sensor_suffix[0])
		snprintf(buf, len, "%s[%s]", r->metric, r->sensor_suffix);
	else
		snprintf(buf, len, "%s", r->metric);
}

static void print_json(FILE *f, const struct agri_profile *p, int slave, const char *ts,
		       const struct probe_value *vals, const struct probe_derived *der)
{
	struct agri_buf b = AGRI_BUF_HEAP(READ_JSON_MAX);
	int rc;

	agri_buf_printf(&b, "{\"slave\":%d,\"profile\":", slave);
	agri_buf_json_str(&b, p->name);
	agri_buf_puts(&b, ",\"ts\":");
	agri_buf_json_str(&b, ts);
	agri_buf_puts(&b, ",\"readings\":[");
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct probe_value *v = &vals[i];
		unsigned w = agri_regtype_words(v->reg->type);
		const char *sp = v->reg->sensor_suffix[0] ? agrictl_species(v->reg->sensor_suffix) : NULL;

		agri_buf_puts(&b, i ? ",{\"metric\":" : "{\"metric\":");
		agri_buf_json_str(&b, v->reg->metric);
		if (v->reg->sensor_suffix[0]) {
			agri_buf_puts(&b, ",\"class\":");
			agri_buf_json_str(&b, v->reg->sensor_suffix);
		}
		if (sp) {
			agri_buf_puts(&b, ",\"label\":");
			agri_buf_json_str(&b, sp);
		}
		agri_buf_puts(&b, ",\"value\":");
		if (v->has_value && isfinite(v->value))
			agri_buf_json_num(&b, v->value);
		else
			agri_buf_puts(&b, "null");
		agri_buf_puts(&b, ",\"unit\":");
		agri_buf_json_str(&b, v->reg->unit);
		agri_buf_puts(&b, ",\"q\":");
		agri_buf_json_str(&b, agri_quality_name(v->q));
		if (v->reg->state)
			agri_buf_puts(&b, ",\"state\":true");
		agri_buf_printf(&b, ",\"fc\":%u,\"addr\":%u,\"raw\":[", v->reg->fc, v->reg->addr);
		for (unsigned k = 0; k < w; k++)
			agri_buf_printf(&b, "%s%u", k ? "," : "", v->words[k]);
		agri_buf_puts(&b, "]}");
	}
	for (size_t i = 0; der && i < p->n_derived; i++) {
		const struct probe_derived *d = &der[i];

		agri_buf_puts(&b, ",{\"metric\":");
		agri_buf_json_str(&b, d->d->metric);
		agri_buf_puts(&b, ",\"value\":");
		if (d->has_value && isfinite(d->value))
			agri_buf_json_num(&b, d->value);
		else
			agri_buf_puts(&b, "null");
		agri_buf_puts(&b, ",\"unit\":");
		agri_buf_json_str(&b, d->d->unit);
		agri_buf_puts(&b, ",\"q\":");
		agri_buf_json_str(&b, agri_quality_name(d->has_value ? d->q : AGRI_Q_ERROR));
		agri_buf_puts(&b, ",\"derived\":");
		agri_buf_json_str(&b, d->d->fn == AGRI_DERIVED_PSS78 ? "pss78" : "level");
		agri_buf_puts(&b, "}");
	}
	agri_buf_puts(&b, "]}\n");
	rc = agri_buf_end(&b);
	if (rc < 0)
		fprintf(stderr, T("agrictl: cannot write the read as JSON: %s\n"), strerror(-rc));
	else
		fputs(b.p, f);
	agri_buf_free(&b);
}

/* A status word's set bits: "bits 0, 3 set"; "" for 0 and 1 (a flag). */
static void state_bits(double v, char *buf, size_t len)
{
	unsigned long u = (unsigned long)v;
	size_t pos;
	bool first = true;

	buf[0] = '\0';
	if (v <= 1 || v != floor(v))
		return;
	pos = (size_t)snprintf(buf, len, "%s", T("bits"));
	for (int bit = 0; bit < 32 && pos < len; bit++)
		if (u & (1ul << bit)) {
			pos += (size_t)snprintf(buf + pos, len - pos, "%s%d", first ? " " : ", ", bit);
			first = false;
		}
	if (pos < len)
		snprintf(buf + pos, len - pos, " %s", T("set"));
}

void agrictl_print_read(FILE *f, const struct agri_profile *p, int slave, const char *ts,
			const struct probe_value *vals, const struct probe_derived *der, bool json)
{
	char label[AGRI_ID_MAX * 2 + 4], value[96], bits[160];

	if (json) {
		print_json(f, p, slave, ts, vals, der);
		return;
	}
	fprintf(f, T("slave %d: %s (%s %s) at %s\n"), slave, p->name, p->vendor, p->model, ts);
	fprintf(f, "  %-30s %12s %-7s %-8s %s\n", T("metric"), T("value"), T("unit"), "q",
		T("fc:addr raw"));
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct probe_value *v = &vals[i];
		unsigned w = agri_regtype_words(v->reg->type);
		const char *sp = v->reg->sensor_suffix[0] ? agrictl_species(v->reg->sensor_suffix) : NULL;

		metric_label(v->reg, label, sizeof(label));
		bits[0] = '\0';
		if (!v->has_value)
			snprintf(value, sizeof(value), "-");
		else if (v->reg->state || v->reg->counter)
			snprintf(value, sizeof(value), "%.0f", v->value);
		else
			snprintf(value, sizeof(value), "%.4f", v->value);
		if (v->has_value && v->reg->state)
			state_bits(v->value, bits, sizeof(bits));
		fprintf(f, "  %-30s %12s %-7s %-8s %02u:0x%04X", label, value, v->reg->unit,
			agri_quality_name(v->q), v->reg->fc, v->reg->addr);
		for (unsigned k = 0; k < w; k++)
			fprintf(f, " %04X", v->words[k]);
		if (sp)
			fprintf(f, "  %s", sp);
		if (bits[0])
			fprintf(f, "  %s", bits);
		fputc('\n', f);
	}
	for (size_t i = 0; der && i < p->n_derived; i++) {
		const struct probe_derived *d = &der[i];
		const struct agri_derived *dv = d->d;

		if (d->has_value)
			snprintf(value, sizeof(value), "%.4f", d->value);
		else
			snprintf(value, sizeof(value), "-");
		fprintf(f, "  %-30s %12s %-7s %-8s ", dv->metric, value, dv->unit,
			agri_quality_name(d->has_value ? d->q : AGRI_Q_ERROR));
		if (dv->fn == AGRI_DERIVED_PSS78)
			fprintf(f, T("derived: PSS-78 of %s, %s\n"), dv->from[0], dv->from[1]);
		else
			fprintf(f, T("derived: water level from %s (without the station's "
				     "level_offset_m)\n"), dv->from[0]);
	}
}
