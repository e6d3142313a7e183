/*
 * --series: the true values of every slave's metrics over a time span, as
 * CSV "ts,metric,value" (no serving, no faults). Counters are the counts
 * caught during each step; derived metrics are the model's truth (salinity,
 * water level above the sensor). With several slaves the metric is "<slave>/<metric>";
 * a register with a sensor_suffix is "<metric>.<suffix>".
 */
#include "sim.h"

#include <errno.h>
#include <string.h>

#include "agri/time.h"

static void put(FILE *out, const char *ts, const struct device *d, bool many,
		const char *metric, const char *suffix, double v)
{
	if (many)
		fprintf(out, "%s,%d/%s", ts, d->slave, metric);
	else
		fprintf(out, "%s,%s", ts, metric);
	if (suffix && suffix[0])
		fprintf(out, ".%s", suffix);
	fprintf(out, ",%.6g\n", v);
}

int sim_series(struct sim *s, FILE *out)
{
	int64_t step = (int64_t)(s->step_s * 1000.0);
	int64_t end = s->start_ms + (int64_t)(s->hours * 3600000.0);
	bool many = s->n_slaves > 1;
	char ts[AGRI_TIME_LEN + 1];

	fprintf(out, "ts,metric,value\n");
	for (int64_t t = s->start_ms; t <= end; t += step) {
		if (agri_time_format(t, ts, sizeof(ts)))
			return -EINVAL;
		for (size_t k = 0; k < s->n_slaves; k++) {
			const struct device *d = &s->devs[k];
			for (size_t i = 0; i < d->prof.n_regs; i++) {
				const struct agri_register *r = &d->prof.regs[i];
				put(out, ts, d, many, r->metric, r->sensor_suffix,
				    device_value(d, i, t, t - step, false));
			}
			for (size_t i = 0; i < d->prof.n_derived; i++) {
				const struct agri_derived *dv = &d->prof.derived[i];
				double v;

				if (model_value(&d->params, dv->metric, dv->unit, t, &v) != 0)
					v = model_salinity(&d->params, t);
				put(out, ts, d, many, dv->metric, NULL, v);
			}
		}
	}
	return fflush(out) ? -errno : 0;
}
