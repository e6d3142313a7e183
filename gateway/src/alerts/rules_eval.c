/*
 * What the engine asks of a parsed rule (rules.h): find one by id, its
 * fingerprint, whether it applies to a station and sensor (globs) and on a
 * date (its "active" ranges, local time).
 */
#include <fnmatch.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agri/buf.h"
#include "gateway/rules.h"

const struct rule *rules_find(const struct rules *r, const char *id)
{
	for (size_t i = 0; r && i < r->n; i++)
		if (!strcmp(r->v[i].id, id))
			return &r->v[i];
	return NULL;
}

uint64_t rule_fingerprint(const struct rule *r)
{
	uint64_t h = AGRI_HASH64_INIT;

	/* Field by field: struct padding is not part of a rule. */
	h = agri_hash64_bytes(h, &r->kind, sizeof(r->kind));
	h = agri_hash64_bytes(h, r->metric, strlen(r->metric) + 1);
	h = agri_hash64_bytes(h, &r->n_levels, sizeof(r->n_levels));
	for (size_t i = 0; i < r->n_levels; i++) {
		const struct rule_level *l = &r->levels[i];

		h = agri_hash64_bytes(h, l->metric, strlen(l->metric) + 1);
		h = agri_hash64_bytes(h, &l->op, sizeof(l->op));
		h = agri_hash64_bytes(h, &l->threshold, sizeof(l->threshold));
		h = agri_hash64_bytes(h, &l->hysteresis, sizeof(l->hysteresis));
	}
	h = agri_hash64_bytes(h, &r->for_s, sizeof(r->for_s));
	h = agri_hash64_bytes(h, &r->window_s, sizeof(r->window_s));
	h = agri_hash64_bytes(h, &r->agg, sizeof(r->agg));
	h = agri_hash64_bytes(h, &r->k, sizeof(r->k));
	h = agri_hash64_bytes(h, &r->nights, sizeof(r->nights));
	h = agri_hash64_bytes(h, &r->min_nights, sizeof(r->min_nights));
	h = agri_hash64_bytes(h, &r->floor, sizeof(r->floor));
	h = agri_hash64_bytes(h, &r->night_start_h, sizeof(r->night_start_h));
	h = agri_hash64_bytes(h, &r->after_s, sizeof(r->after_s));
	h = agri_hash64_bytes(h, &r->per_sensor, sizeof(r->per_sensor));
	h = agri_hash64_bytes(h, &r->n_bad, sizeof(r->n_bad));
	h = agri_hash64_bytes(h, &r->bad_error, sizeof(r->bad_error));
	h = agri_hash64_bytes(h, &r->bad_suspect, sizeof(r->bad_suspect));
	return h;
}

static bool glob_any(const char (*pats)[RULE_GLOB_MAX], size_t n,
		     const char *name)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++)
		if (fnmatch(pats[i], name, 0) == 0)
			return true;
	return false;
}

bool rule_matches(const struct rule *r, const char *station, const char *sensor)
{
	if (!glob_any(r->stations, r->n_stations, station))
		return false;
	return !sensor || !sensor[0] || glob_any(r->sensors, r->n_sensors, sensor);
}

/* Howard Hinnant's civil_from_days. */
void rules_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

bool rule_active_at(const struct rule *r, int64_t ts_ms, int64_t utc_offset_min)
{
	int64_t local, days;
	int y, m, d, md;

	if (r->n_active == 0)
		return true;
	local = ts_ms + utc_offset_min * 60000;
	days = local >= 0 ? local / 86400000 : -((-local + 86399999) / 86400000);
	rules_civil_from_days(days, &y, &m, &d);
	md = m * 100 + d;
	for (size_t i = 0; i < r->n_active; i++) {
		const struct rule_range *a = &r->active[i];

		if (a->from_md <= a->to_md ? (md >= a->from_md && md <= a->to_md)
					   : (md >= a->from_md || md <= a->to_md))
			return true;
	}
	return false;
}
