/*
 * Pest advisories (docs/forecast.md, Advisories): from a confirmed
 * planthopper peak night, the sowing window that avoids the migrants and
 * the expected hatch of the next generation, and their JSON document.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agri/buf.h"
#include "agri/time.h"
#include "forecast/model.h"

#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

/* The document's length, or the error (and an empty buffer). */
static int end_or_empty(struct agri_buf *w)
{
	if (w->err && w->cap)
		w->p[0] = '\0';
	return agri_buf_end(w);
}

/* ---- pest advisories ------------------------------------------------------- */

void advisory_params_default(struct advisory_params *p)
{
	p->sow_from_d = 1;
	p->sow_to_d = 7;
	p->hatch_from_d = 10;
	p->hatch_to_d = 12;
	p->utc_offset_ms = 7 * HOUR_MS;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* "DD/MM" of the local date of a local midnight given as UTC ms. */
static void day_month(int64_t utc_ms, int64_t off_ms, char *buf, size_t len)
{
	char ts[AGRI_TIME_LEN + 1];

	if (agri_time_format(utc_ms + off_ms, ts, sizeof(ts))) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, "%.2s/%.2s", ts + 8, ts + 5);
}

int advisory_make(const char *station, int64_t peak_at_ms,
		  const struct advisory_params *p, struct advisory *out)
{
	struct advisory a;
	int64_t off = p->utc_offset_ms, day0;
	char ts[AGRI_TIME_LEN + 1], pk[8], sf[8], st[8], hf[8], ht[8];

	if (!station || !station[0] || strlen(station) >= sizeof(a.station) ||
	    p->sow_from_d < 0 || p->sow_to_d < p->sow_from_d ||
	    p->hatch_from_d < 0 || p->hatch_to_d < p->hatch_from_d ||
	    p->sow_to_d > 366 || p->hatch_to_d > 366 ||
	    off < -14 * HOUR_MS || off > 14 * HOUR_MS)
		return -EINVAL;
	/* the peak date: local date of the start of the night (before noon
	 * local, the night began the evening before) */
	day0 = floor_div(peak_at_ms + off - 12 * HOUR_MS, DAY_MS) * DAY_MS - off;
	if (agri_time_format(day0 + off, ts, sizeof(ts)))
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	snprintf(a.station, sizeof(a.station), "%s", station);
	snprintf(a.kind, sizeof(a.kind), "sow_after_peak");
	if (snprintf(a.id, sizeof(a.id), "sow_after_peak/%s/%.10s", station, ts) >=
	    (int)sizeof(a.id))
		return -EINVAL;
	a.peak_at_ms = peak_at_ms;
	a.sow_from_ms = day0 + p->sow_from_d * DAY_MS;
	a.sow_to_ms = day0 + (p->sow_to_d + 1) * DAY_MS;
	a.hatch_from_ms = day0 + p->hatch_from_d * DAY_MS;
	a.hatch_to_ms = day0 + (p->hatch_to_d + 1) * DAY_MS;
	day_month(day0, off, pk, sizeof(pk));
	day_month(a.sow_from_ms, off, sf, sizeof(sf));
	day_month(a.sow_to_ms - DAY_MS, off, st, sizeof(st));
	day_month(a.hatch_from_ms, off, hf, sizeof(hf));
	day_month(a.hatch_to_ms - DAY_MS, off, ht, sizeof(ht));
	snprintf(a.message, sizeof(a.message),
		 "Rầy nâu vào đèn đạt đỉnh tại trạm %s đêm %s. Gieo sạ né rầy từ %s đến %s; "
		 "rầy cám lứa mới dự kiến nở từ %s đến %s: thăm đồng, phòng trừ khi rầy tuổi 2-3 vượt ngưỡng. / "
		 "Brown planthopper light-trap peak at %s on the night of %s. Sow from %s to %s to escape "
		 "the migrants; the next generation is expected to hatch from %s to %s: survey the fields "
		 "and treat at instar 2-3 if above threshold.",
		 station, pk, sf, st, hf, ht, station, pk, sf, st, hf, ht);
	*out = a;
	return 0;
}

int advisory_encode(const struct advisory *a, char *buf, size_t len)
{
	struct agri_buf w;

	if (!buf || !len || !a)
		return -EINVAL;
	agri_buf_init(&w, buf, len);
	agri_buf_puts(&w, "{\"id\":");
	agri_buf_json_str(&w, a->id);
	agri_buf_puts(&w, ",\"station\":");
	agri_buf_json_str(&w, a->station);
	agri_buf_puts(&w, ",\"kind\":");
	agri_buf_json_str(&w, a->kind);
	agri_buf_puts(&w, ",\"peak_at\":");
	agri_buf_json_time(&w, a->peak_at_ms);
	agri_buf_puts(&w, ",\"sow_from\":");
	agri_buf_json_time(&w, a->sow_from_ms);
	agri_buf_puts(&w, ",\"sow_to\":");
	agri_buf_json_time(&w, a->sow_to_ms);
	agri_buf_puts(&w, ",\"hatch_from\":");
	agri_buf_json_time(&w, a->hatch_from_ms);
	agri_buf_puts(&w, ",\"hatch_to\":");
	agri_buf_json_time(&w, a->hatch_to_ms);
	agri_buf_puts(&w, ",\"message\":");
	agri_buf_json_str(&w, a->message);
	agri_buf_puts(&w, "}");
	return end_or_empty(&w);
}
