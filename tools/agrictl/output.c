/*
 * Printing a device read for a technician (aligned table) or a script
 * (--json: one object with metrics, values, quality and raw registers).
 */
#include <stdio.h>

#include "agri/msg.h"
#include "agrictl.h"

void agrictl_print_read(FILE *f, const struct agri_profile *p, int slave,
			const char *ts, const struct probe_value *vals, bool json)
{
	if (!json) {
		fprintf(f, "slave %d: %s (%s %s) at %s\n", slave, p->name, p->vendor, p->model, ts);
		fprintf(f, "  %-22s %14s %-7s %-8s %s\n", "metric", "value", "unit", "q", "fc:addr raw");
	}
	else {
		fprintf(f, "{\"slave\":%d,\"profile\":\"%s\",\"ts\":\"%s\",\"readings\":[", slave, p->name, ts);
	}
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct probe_value *v = &vals[i];
		unsigned w = agri_regtype_words(v->reg->type);

		if (json) {
			char num[40];
			size_t pos = 0;

			if (!v->has_value || agri_json_put_num(num, sizeof(num), &pos, v->value) < 0)
				snprintf(num, sizeof(num), "null");
			fprintf(f, "%s{\"metric\":\"%s\",\"value\":%s,\"unit\":\"%s\",\"q\":\"%s\","
				"\"fc\":%u,\"addr\":%u,\"raw\":[",
				i ? "," : "", v->reg->metric, num, v->reg->unit,
				agri_quality_name(v->q), v->reg->fc, v->reg->addr);
			for (unsigned k = 0; k < w; k++)
				fprintf(f, "%s%u", k ? "," : "", v->words[k]);
			fprintf(f, "]}");
			continue;
		}
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
	if (json)
		fprintf(f, "]}\n");
}
