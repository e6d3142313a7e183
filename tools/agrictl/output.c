/*
 * Printing a device read for a technician (aligned table) or a script
 * (--json: one object with metrics, values, quality and raw registers,
 * written through agri_buf's JSON writers).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/msg.h"
#include "agrictl.h"

#define READ_JSON_MAX (1024 * 1024)

static void print_json(FILE *f, const struct agri_profile *p, int slave,
		       const char *ts, const struct probe_value *vals)
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

		agri_buf_puts(&b, i ? ",{\"metric\":" : "{\"metric\":");
		agri_buf_json_str(&b, v->reg->metric);
		agri_buf_puts(&b, ",\"value\":");
		if (v->has_value && isfinite(v->value))
			agri_buf_json_num(&b, v->value);
		else
			agri_buf_puts(&b, "null");
		agri_buf_puts(&b, ",\"unit\":");
		agri_buf_json_str(&b, v->reg->unit);
		agri_buf_puts(&b, ",\"q\":");
		agri_buf_json_str(&b, agri_quality_name(v->q));
		agri_buf_printf(&b, ",\"fc\":%u,\"addr\":%u,\"raw\":[", v->reg->fc, v->reg->addr);
		for (unsigned k = 0; k < w; k++)
			agri_buf_printf(&b, "%s%u", k ? "," : "", v->words[k]);
		agri_buf_puts(&b, "]}");
	}
	agri_buf_puts(&b, "]}\n");
	rc = agri_buf_end(&b);
	if (rc < 0)
		fprintf(stderr, "agrictl: cannot write the read as JSON: %s\n", strerror(-rc));
	else
		fputs(b.p, f);
	agri_buf_free(&b);
}

void agrictl_print_read(FILE *f, const struct agri_profile *p, int slave,
			const char *ts, const struct probe_value *vals, bool json)
{
	if (json) {
		print_json(f, p, slave, ts, vals);
		return;
	}
	fprintf(f, "slave %d: %s (%s %s) at %s\n", slave, p->name, p->vendor, p->model, ts);
	fprintf(f, "  %-22s %14s %-7s %-8s %s\n", "metric", "value", "unit", "q", "fc:addr raw");
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct probe_value *v = &vals[i];
		unsigned w = agri_regtype_words(v->reg->type);

		if (v->has_value)
			fprintf(f, "  %-22s %14.4f %-7s %-8s %02u:0x%04X", v->reg->metric, v->value,
				v->reg->unit, agri_quality_name(v->q), v->reg->fc, v->reg->addr);
		else
			fprintf(f, "  %-22s %14s %-7s %-8s %02u:0x%04X", v->reg->metric, "-",
				v->reg->unit, agri_quality_name(v->q), v->reg->fc, v->reg->addr);
		for (unsigned k = 0; k < w; k++)
			fprintf(f, " %04X", v->words[k]);
		fputc('\n', f);
	}
}
