/*
 * The conditions of the reading-driven rule kinds: levels (threshold,
 * ladder), windows and rates over a ring of points, light-trap night peaks,
 * quality runs (docs/alerts.md, Kinds). Each feeds one reading to one key
 * and calls transitions.c when the condition changes.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/topic.h"
#include "alerts/engine_int.h"

/* ---- level kinds: threshold, ladder, window, rate ------------------------ */

static enum alert_text_what level_what(enum rule_kind kind)
{
	return kind == RULE_WINDOW ? ALERT_TEXT_WINDOW
	       : kind == RULE_RATE ? ALERT_TEXT_RATE : ALERT_TEXT_LEVEL;
}

static void level_args(struct alert_text_args *a, const struct rule *R,
		       const struct akey *k, int i)
{
	const struct rule_level *L = &R->levels[i];

	a->metric = L->metric;
	a->value = k->u.lv.s[i].lval;
	a->has_value = k->u.lv.s[i].lts != NONE;
	a->threshold = L->threshold;
	a->op = L->op;
	a->severity = L->severity;
	a->label = L->label.en[0] ? &L->label : NULL;
}

/* Turns the levels' on bits into transitions. */
static int levels_apply(struct alert_engine *eng, struct out *o, struct akey *k,
			const struct rule *R, int64_t ts, int64_t now_ms)
{
	struct alert_text_args a = ae_text_args(R, k, level_what(R->kind));
	uint8_t on = k->u.lv.on;
	int cur = ae_rec_open_active(k) ? k->rec->level : -1, nl = -1;

	for (int i = 0; i < (int)R->n_levels; i++) {
		if (!(on & (1u << i)))
			continue;
		nl = i;
		if (R->kind == RULE_THRESHOLD)
			break; /* "or": the first condition on */
	}
	if (cur == nl)
		return 0;
	if (cur < 0) {
		level_args(&a, R, k, nl);
		return ae_raise_alert(eng, o, k, &a, nl, a.severity, ts, now_ms);
	}
	if (nl < 0) {
		level_args(&a, R, k, R->kind == RULE_THRESHOLD ? cur : 0);
		a.label = NULL;
		a.cleared = true;
		ae_clear_alert(eng, o, k, &a, ts, now_ms);
		return 0;
	}
	level_args(&a, R, k, nl);
	if (a.severity != ae_rec_severity(k->rec)) {
		ae_severity_change(eng, o, k, &a, nl, a.severity, ts, now_ms);
	} else {
		k->rec->level = nl; /* another condition of the same severity */
	}
	return 0;
}

/* Feeds value v at ts to the levels on metric (NULL: every level). */
int ae_levels_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct rule *R, const char *metric, double v,
		   int64_t ts, int64_t now_ms)
{
	struct lvl_state *lv = &k->u.lv;
	bool active = rule_active_at(R, ts, eng->rules->utc_offset_min);

	for (size_t i = 0; i < R->n_levels; i++) {
		const struct rule_level *L = &R->levels[i];
		uint8_t bit = (uint8_t)(1u << i);
		bool enter;

		if (metric && strcmp(L->metric, metric))
			continue;
		if (ts <= lv->s[i].lts) {
			eng->late++;
			continue;
		}
		lv->s[i].lts = ts;
		lv->s[i].lval = v;
		if (!active) {
			lv->on &= (uint8_t)~bit;
			lv->s[i].held_since = NONE;
			continue;
		}
		enter = L->op == RULE_ABOVE ? v >= L->threshold : v <= L->threshold;
		if (lv->on & bit) {
			double bound = L->op == RULE_ABOVE ? L->threshold - L->hysteresis
							   : L->threshold + L->hysteresis;
			double eps = 1e-9 * fmax(1.0, fabs(bound));
			bool stay = L->op == RULE_ABOVE ? v >= bound - eps : v <= bound + eps;

			if (!stay) {
				lv->on &= (uint8_t)~bit;
				lv->s[i].held_since = NONE;
			}
		} else if (enter) {
			if (lv->s[i].held_since == NONE)
				lv->s[i].held_since = ts;
			if (ts - lv->s[i].held_since >= R->for_s * 1000)
				lv->on |= bit;
		} else {
			lv->s[i].held_since = NONE;
		}
	}
	return levels_apply(eng, o, k, R, ts, now_ms);
}

int ae_ring_push(struct lvl_state *lv, size_t max_points, int64_t ts, double v)
{
	if (lv->pn == lv->pcap) {
		if (lv->pcap < max_points) {
			size_t cap = lv->pcap ? lv->pcap * 2 : 16;
			struct pt *p;

			if (cap > max_points)
				cap = max_points;
			p = malloc(cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			for (size_t i = 0; i < lv->pn; i++)
				ae_ring_point(lv, i, &p[i]);
			free(lv->pts);
			lv->pts = p;
			lv->pcap = cap;
			lv->phead = 0;
		} else {
			lv->phead = (lv->phead + 1) % lv->pcap;
			lv->pn--;
		}
	}
	lv->pts[(lv->phead + lv->pn) % lv->pcap] = (struct pt){ts, v};
	lv->pn++;
	return 0;
}

/* Window aggregate or rate of the ring; false when there is none yet. */
static bool series_value(const struct rule *R, const struct lvl_state *lv,
			 double *out)
{
	struct pt p, first, last;
	double sum = 0, mx = -INFINITY, mn = INFINITY;

	if (!lv->pn)
		return false;
	ae_ring_point(lv, 0, &first);
	ae_ring_point(lv, lv->pn - 1, &last);
	if (R->kind == RULE_RATE) {
		double mx_ = 0, my = 0, sxy = 0, sxx = 0;

		if (lv->pn < 2 || last.ts - first.ts < R->window_s * 1000 / 2)
			return false;
		for (size_t i = 0; i < lv->pn; i++) {
			ae_ring_point(lv, i, &p);
			mx_ += (double)(p.ts - first.ts) / HOUR_MS;
			my += p.v;
		}
		mx_ /= (double)lv->pn;
		my /= (double)lv->pn;
		for (size_t i = 0; i < lv->pn; i++) {
			double x;

			ae_ring_point(lv, i, &p);
			x = (double)(p.ts - first.ts) / HOUR_MS - mx_;
			sxy += x * (p.v - my);
			sxx += x * x;
		}
		if (sxx <= 0)
			return false;
		*out = sxy / sxx;
		return true;
	}
	for (size_t i = 0; i < lv->pn; i++) {
		ae_ring_point(lv, i, &p);
		sum += p.v;
		mx = fmax(mx, p.v);
		mn = fmin(mn, p.v);
	}
	switch (R->agg) {
	case RULE_AGG_SUM: *out = sum; break;
	case RULE_AGG_MEAN: *out = sum / (double)lv->pn; break;
	case RULE_AGG_MAX: *out = mx; break;
	case RULE_AGG_MIN: *out = mn; break;
	case RULE_AGG_COUNT: *out = (double)lv->pn; break;
	default: return false;
	}
	return true;
}

int ae_series_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct rule *R, double v, int64_t ts, int64_t now_ms)
{
	struct lvl_state *lv = &k->u.lv;
	struct pt first;
	double d = 0;

	if (ts <= k->last_ts) {
		eng->late++;
		return 0;
	}
	if (ae_ring_push(lv, (size_t)R->max_points, ts, v) < 0)
		return -ENOMEM;
	k->last_ts = ts;
	for (;;) {
		ae_ring_point(lv, 0, &first);
		if (first.ts > ts - R->window_s * 1000)
			break;
		lv->phead = (lv->phead + 1) % lv->pcap;
		lv->pn--;
	}
	if (!series_value(R, lv, &d))
		return 0;
	return ae_levels_feed(eng, o, k, R, NULL, d, ts, now_ms);
}

/* ---- peak ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Pushes a completed night's total into the history ring. */
static void hist_push(struct peak_state *pk, double T)
{
	pk->hist[pk->hpos] = T;
	pk->hpos = (uint8_t)((pk->hpos + 1) % RULE_PEAK_NIGHTS_MAX);
	if (pk->hn < RULE_PEAK_NIGHTS_MAX)
		pk->hn++;
}

/* The i-th completed night back (0: the last). */
static double hist_back(const struct peak_state *pk, unsigned i)
{
	return pk->hist[(pk->hpos + 2 * RULE_PEAK_NIGHTS_MAX - 1 - i) % RULE_PEAK_NIGHTS_MAX];
}

/* Median of the last n completed nights; false with fewer than min. */
static bool peak_median(const struct peak_state *pk, const struct rule *R,
			double *out)
{
	double v[RULE_PEAK_NIGHTS_MAX];
	size_t n = pk->hn < (size_t)R->nights ? pk->hn : (size_t)R->nights;

	if (n < (size_t)R->min_nights || n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		v[i] = pk->hist[(pk->hpos + RULE_PEAK_NIGHTS_MAX - n + i) % RULE_PEAK_NIGHTS_MAX];
	qsort(v, n, sizeof(v[0]), cmp_double);
	*out = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return true;
}

/* Night `night` is complete with total T (ts/now: the reading that
 * completed it). Confirms a peak when a qualifying night is followed by a
 * lower one; clears the alert at the next night that does not qualify. */
static int peak_complete(struct alert_engine *eng, struct out *o, struct akey *k,
			 const struct rule *R, int64_t night, double T,
			 int64_t ts, int64_t now_ms)
{
	struct peak_state *pk = &k->u.pk;
	struct alert_text_args a = ae_text_args(R, k, ALERT_TEXT_PEAK);
	double med = 0, thr = R->floor;
	bool q = false;
	int rc = 0;

	if (rule_active_at(R, ts, eng->rules->utc_offset_min) && peak_median(pk, R, &med)) {
		thr = fmax(R->floor, R->k * med);
		q = T >= thr;
	}
	if (ae_rec_open_active(k) && !q && night > pk->raised_night) {
		a.value = T;
		a.has_value = true;
		a.threshold = thr;
		a.night_day = night;
		a.cleared = true;
		ae_clear_alert(eng, o, k, &a, ts, now_ms);
	} else if (pk->prev_valid && pk->prev_q && pk->in_run && !pk->run_raised &&
		   T < pk->prev_total && !ae_rec_open_active(k)) {
		a.value = pk->run_max;
		a.has_value = true;
		a.threshold = pk->run_thr;
		a.night_day = pk->run_night;
		a.severity = R->severity;
		rc = ae_raise_alert(eng, o, k, &a, -1, R->severity, ts, now_ms);
		pk->run_raised = true;
		pk->raised_night = night;
	}
	if (q) {
		if (!pk->in_run) {
			pk->in_run = true;
			pk->run_raised = false;
			pk->run_max = -INFINITY;
		}
		if (T > pk->run_max) {
			pk->run_max = T;
			pk->run_thr = thr;
			pk->run_night = night;
		}
	} else {
		pk->in_run = false;
	}
	pk->prev_valid = true;
	pk->prev_q = q;
	pk->prev_total = T;
	pk->prev_night = night;
	hist_push(pk, T);
	return rc;
}

/* A rising brood (docs/alerts.md, Rising catches): the last `nights`
 * completed nights each at least k times the one before, the last over
 * floor. Raised once per climb, cleared by the first night that does not
 * climb (the peak, usually: the peak rule takes over). */
static int rising_complete(struct alert_engine *eng, struct out *o, struct akey *k,
			   const struct rule *R, int64_t night, double T, int64_t ts,
			   int64_t now_ms)
{
	struct peak_state *pk = &k->u.pk;
	struct alert_text_args a = ae_text_args(R, k, ALERT_TEXT_RISING);
	unsigned need = (unsigned)R->nights;
	char series[160];
	size_t pos = 0;
	bool up = true;

	hist_push(pk, T);
	if (pk->hn < need + 1 || T < R->floor || !rule_active_at(R, ts, eng->rules->utc_offset_min))
		up = false;
	for (unsigned i = 0; up && i < need; i++)
		up = hist_back(pk, i) >= R->k * hist_back(pk, i + 1) && hist_back(pk, i) > 0;
	if (up && !ae_rec_open_active(k)) {
		series[0] = '\0';
		for (unsigned i = need + 1; i-- > 0 && pos < sizeof(series);) {
			int w = snprintf(series + pos, sizeof(series) - pos, "%s%.0f",
					 i == need ? "" : " → ", hist_back(pk, i));

			pos += w > 0 ? (size_t)w : 0;
		}
		a.value = T;
		a.has_value = true;
		a.threshold = R->k * hist_back(pk, 1);
		a.night_day = night;
		a.detail_en = a.detail_vi = series;
		return ae_raise_alert(eng, o, k, &a, -1, R->severity, ts, now_ms);
	}
	if (!up && ae_rec_open_active(k) && pk->hn >= 2 && T < R->k * hist_back(pk, 1)) {
		a.value = T;
		a.has_value = true;
		a.night_day = night;
		a.cleared = true;
		ae_clear_alert(eng, o, k, &a, ts, now_ms);
	}
	return 0;
}

/* Did it rain at k's station in night `night` (the 12 hours before the
 * cut)? Its catch then says nothing of the brood: it neither confirms a
 * peak nor ends one (docs/alerts.md, Rain nights). */
static bool rain_night(const struct alert_engine *eng, const struct akey *k,
		       const struct rule *R, int64_t night)
{
	const struct akey *st = ae_key_find(eng, -1, k->station, "");
	int64_t end = (night + 1) * DAY_MS + R->night_start_h * HOUR_MS -
		      eng->rules->utc_offset_min * 60000, start = end - 12 * HOUR_MS;

	for (unsigned i = 0; st && i < st->u.st.n; i++)
		if (st->u.st.rain[i] >= start && st->u.st.rain[i] < end)
			return true;
	return false;
}

void ae_rain_note(struct akey *st, int64_t ts)
{
	struct station_state *s = &st->u.st;
	int64_t hour = floor_div(ts, HOUR_MS) * HOUR_MS;

	for (unsigned i = 0; i < s->n; i++)
		if (s->rain[i] == hour)
			return;
	s->rain[s->pos] = hour;
	s->pos = (uint8_t)((s->pos + 1) % STATION_RAIN_MAX);
	if (s->n < STATION_RAIN_MAX)
		s->n++;
}

int ae_peak_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		 const struct rule *R, double v, int64_t ts, int64_t now_ms)
{
	struct peak_state *pk = &k->u.pk;
	int64_t night = floor_div(ts + eng->rules->utc_offset_min * 60000 -
				  R->night_start_h * HOUR_MS, DAY_MS);
	int rc = 0;

	if (ts <= k->last_ts || (pk->night != NONE && night < pk->night)) {
		eng->late++;
		return 0;
	}
	k->last_ts = ts;
	if (pk->night == NONE) {
		pk->night = night;
		pk->total = v;
	} else if (night == pk->night) {
		pk->total += v;
	} else {
		if (rain_night(eng, k, R, pk->night))
			rc = 0; /* set aside: as if the night had not been */
		else if (R->kind == RULE_RISING)
			rc = rising_complete(eng, o, k, R, pk->night, pk->total, ts, now_ms);
		else
			rc = peak_complete(eng, o, k, R, pk->night, pk->total, ts, now_ms);
		pk->night = night;
		pk->total = v;
	}
	return rc;
}

/* ---- quality ------------------------------------------------------------- */

bool ae_sensor_counting(const struct akey *k, const char *metric)
{
	if (ae_rec_open_active(k))
		return true;
	for (unsigned i = 0; i < k->u.q.n; i++)
		if (k->u.q.m[i].count && !strcmp(k->u.q.m[i].metric, metric))
			return true;
	return false;
}

int ae_quality_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct rule *R, const struct agri_reading *r,
		    int64_t now_ms)
{
	struct qual_state *q = &k->u.q;
	bool sensor = R->kind == RULE_SENSOR;
	struct alert_text_args a = ae_text_args(R, k, sensor ? ALERT_TEXT_SENSOR
							     : ALERT_TEXT_QUALITY);
	struct qmetric *m = NULL;
	bool bad, want = false;
	int worst = -1;

	for (unsigned i = 0; i < q->n && !m; i++)
		if (!strcmp(q->m[i].metric, r->metric))
			m = &q->m[i];
	if (!m) {
		if (q->n < QUAL_METRICS_MAX) {
			m = &q->m[q->n++];
		} else {
			for (unsigned i = 0; i < q->n && !m; i++)
				if (q->m[i].count == 0)
					m = &q->m[i];
			if (!m)
				return 0; /* every slot counting: ignore a 7th metric */
		}
		snprintf(m->metric, sizeof(m->metric), "%s", r->metric);
		m->count = 0;
		m->last_ts = NONE;
	}
	if (r->ts_ms <= m->last_ts) {
		eng->late++;
		return 0;
	}
	m->last_ts = r->ts_ms;
	/* sensor: a suspect reading the station gave a reason for (dry,
	 * stuck, full_scale...); quality: error and/or suspect readings */
	bad = sensor ? r->q == AGRI_Q_SUSPECT && r->why[0]
		     : (r->q == AGRI_Q_ERROR && R->bad_error) ||
			       (r->q == AGRI_Q_SUSPECT && R->bad_suspect);
	if (bad && m->count < UINT32_MAX)
		m->count++;
	else if (r->q == AGRI_Q_OK)
		m->count = 0;
	if (rule_active_at(R, r->ts_ms, eng->rules->utc_offset_min)) {
		for (unsigned i = 0; i < q->n; i++) {
			if (q->m[i].count >= (uint64_t)R->n_bad) {
				want = true;
				if (worst < 0 || q->m[i].count > q->m[worst].count)
					worst = (int)i;
			}
		}
	}
	if (want && !ae_rec_open_active(k)) {
		a.metric = q->m[worst].metric;
		a.value = q->m[worst].count;
		a.has_value = true;
		a.threshold = (double)R->n_bad;
		a.aux = q->m[worst].count;
		a.detail_en = a.detail_vi = r->why; /* sensor: the reason of this reading */
		return ae_raise_alert(eng, o, k, &a, -1, R->severity, r->ts_ms, now_ms);
	}
	if (!want && ae_rec_open_active(k)) {
		a.metric = r->metric;
		a.value = 0;
		a.has_value = true;
		a.threshold = (double)R->n_bad;
		a.cleared = true;
		ae_clear_alert(eng, o, k, &a, r->ts_ms, now_ms);
	}
	return 0;
}
