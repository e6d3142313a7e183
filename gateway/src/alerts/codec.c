/*
 * The alert engine's blob codec (docs/alerts.md, Persistence): every key
 * exports as a compact blob, split for writing into its decision state and
 * its evidence; the same blob is the undo image, the saved state and what
 * a restart imports. Also a key's state size and reset by rule kind.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/topic.h"
#include "alerts/engine_int.h"

/* ---- blob codec ---------------------------------------------------------- */

static void w_bytes(struct wbuf *w, const void *src, size_t n)
{
	if (w->oom)
		return;
	if (w->n + n > w->cap) {
		size_t cap = w->cap ? w->cap : 512;
		uint8_t *p;

		while (cap < w->n + n)
			cap *= 2;
		p = realloc(w->p, cap);
		if (!p) {
			w->oom = true;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	memcpy(w->p + w->n, src, n);
	w->n += n;
}

static void w_u8(struct wbuf *w, unsigned v)
{
	uint8_t b = (uint8_t)v;

	w_bytes(w, &b, 1);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
	w_bytes(w, &v, sizeof(v));
}

static void w_i64(struct wbuf *w, int64_t v)
{
	w_bytes(w, &v, sizeof(v));
}

static void w_f64(struct wbuf *w, double v)
{
	w_bytes(w, &v, sizeof(v));
}

static void w_str(struct wbuf *w, const char *s)
{
	size_t n = strlen(s);
	uint16_t l = (uint16_t)(n > 0xffff ? 0xffff : n);

	w_bytes(w, &l, sizeof(l));
	w_bytes(w, s, l);
}

struct rbuf {
	const uint8_t *p;
	size_t n, pos;
	bool bad;
};

static void r_bytes(struct rbuf *r, void *dst, size_t n)
{
	if (r->bad || r->n - r->pos < n) {
		r->bad = true;
		memset(dst, 0, n);
		return;
	}
	memcpy(dst, r->p + r->pos, n);
	r->pos += n;
}

static unsigned r_u8(struct rbuf *r)
{
	uint8_t b;

	r_bytes(r, &b, 1);
	return b;
}

static bool r_bool(struct rbuf *r)
{
	unsigned v = r_u8(r);

	if (v > 1)
		r->bad = true;
	return v == 1;
}

static uint32_t r_u32(struct rbuf *r)
{
	uint32_t v;

	r_bytes(r, &v, sizeof(v));
	return v;
}

static int64_t r_i64(struct rbuf *r)
{
	int64_t v;

	r_bytes(r, &v, sizeof(v));
	return v;
}

static double r_f64(struct rbuf *r)
{
	double v;

	r_bytes(r, &v, sizeof(v));
	if (isnan(v))
		r->bad = true;
	return v;
}

static void r_str(struct rbuf *r, char *dst, size_t size)
{
	uint16_t l;

	r_bytes(r, &l, sizeof(l));
	if (r->bad || l >= size || r->n - r->pos < l) {
		r->bad = true;
		dst[0] = '\0';
		return;
	}
	memcpy(dst, r->p + r->pos, l);
	dst[l] = '\0';
	if (memchr(dst, '\0', l))
		r->bad = true;
	r->pos += l;
}

const struct rule *ae_key_rule(const struct alert_engine *eng,
			       const struct akey *k)
{
	return k->rule >= 0 ? &eng->rules->v[k->rule] : NULL;
}

void ae_ring_point(const struct lvl_state *lv, size_t i, struct pt *out)
{
	*out = lv->pts[(lv->phead + i) % lv->pcap];
}

static void w_news(struct wbuf *w, const struct news *nw)
{
	w_u32(w, nw->n);
	w_u8(w, nw->cleared);
	w_i64(w, nw->end);
	w_str(w, nw->en ? nw->en : "");
	w_str(w, nw->vi ? nw->vi : "");
	w_str(w, nw->cen ? nw->cen : "");
	w_str(w, nw->cvi ? nw->cvi : "");
}

/* A key's past (P_LED: told episodes, held readings, late news; P_CK:
 * checkpoints). */
static void w_kx(struct wbuf *w, const struct kx *x, unsigned parts)
{
	if (parts & P_LED) {
		w_u8(w, x ? x->n_led : 0);
		for (unsigned i = 0; x && i < x->n_led; i++) {
			w_i64(w, x->led[i].start);
			w_i64(w, x->led[i].end);
			w_u8(w, x->led[i].flags);
		}
		w_i64(w, x ? x->hold_from : NONE);
		w_i64(w, x ? x->led_floor : NONE);
		if (x && (x->nw.n || x->nw.cleared)) {
			w_u8(w, 1);
			w_news(w, &x->nw);
		} else {
			w_u8(w, 0);
		}
	}
	if (parts & P_CK) {
		w_u8(w, x ? x->n_ck : 0);
		for (unsigned i = 0; x && i < x->n_ck; i++) {
			w_i64(w, x->ck[i]->ts);
			w_u32(w, x->ck[i]->len);
			w_bytes(w, x->ck[i]->blob, x->ck[i]->len);
		}
	}
}

/* Encodes the parts of k (P_*): everything for export and undo; the
 * decision state (no evidence, no checkpoints) to tell whether a key must
 * be written now; a checkpoint (condition and alert, no messages, ring
 * points or past). */
static void key_encode_parts(const struct alert_engine *eng, const struct akey *k,
			     struct wbuf *w, unsigned parts)
{
	const struct rule *R = ae_key_rule(eng, k);
	const struct arec *rec = k->rec;

	w_u8(w, BLOB_MAGIC);
	w_u8(w, BLOB_VERSION);
	w_u8(w, R ? 1 : 0);
	w_i64(w, (int64_t)(R ? eng->fp[k->rule] : 0));
	w_u8(w, parts);
	w_i64(w, parts & P_EV ? k->seen_ms : 0);
	w_u8(w, k->offline);
	if (!R) { /* a station record: its rain hours, its held readings */
		const struct station_state *st = &k->u.st;

		w_u8(w, st->n);
		for (unsigned i = 0; i < st->n; i++)
			w_i64(w, st->rain[(st->pos + STATION_RAIN_MAX - st->n + i) % STATION_RAIN_MAX]);
		if (parts & P_LED) {
			w_u8(w, st->holding);
			w_u8(w, st->backlog);
			w_u32(w, st->held);
		}
		if (parts & P_EV)
			w_i64(w, k->ev_ts);
		return;
	}
	w_u8(w, rec != NULL);
	if (rec) {
		w_u8(w, rec->a.state);
		w_u8(w, rec->acked);
		w_u8(w, rec->escalated);
		w_u8(w, (unsigned)(rec->level + 1));
		w_str(w, rec->a.severity);
		w_f64(w, rec->a.value);
		w_u8(w, rec->a.has_value);
		w_f64(w, rec->a.threshold);
		w_u8(w, rec->a.has_threshold);
		w_i64(w, rec->a.raised_at_ms);
		w_i64(w, rec->a.updated_at_ms);
		w_i64(w, rec->active_since_ms);
		w_i64(w, rec->last_notify_ms);
		w_str(w, rec->a.metric);
		if (parts & P_MSGS) {
			w_str(w, rec->a.message);
			w_str(w, rec->msg_en);
			w_str(w, rec->msg_vi);
			w_str(w, rec->who);
		}
		w_u8(w, rec->late);
		w_i64(w, rec->arrived_ms);
		w_i64(w, rec->gap_from);
		w_u8(w, rec->back);
		w_u8(w, rec->peak);
	}
	if (parts & P_EV) {
		w_i64(w, k->last_ts);
		w_i64(w, k->ev_ts);
		w_i64(w, k->first_ts);
	}
	if (level_kind(R->kind)) {
		const struct lvl_state *lv = &k->u.lv;

		w_u8(w, lv->on);
		for (size_t i = 0; i < R->n_levels; i++) {
			w_i64(w, lv->s[i].held_since);
			if (parts & P_EV) {
				w_i64(w, lv->s[i].lts);
				w_f64(w, lv->s[i].lval);
			}
		}
		w_u32(w, parts & P_PTS ? (uint32_t)lv->pn : 0);
		for (size_t i = 0; parts & P_PTS && i < lv->pn; i++) {
			struct pt p;

			ae_ring_point(lv, i, &p);
			w_i64(w, p.ts);
			w_f64(w, p.v);
		}
	} else if (nights_kind(R->kind)) {
		const struct peak_state *pk = &k->u.pk;

		w_i64(w, pk->night);
		w_f64(w, pk->total);
		w_u8(w, pk->hn);
		for (unsigned i = 0; i < pk->hn; i++)
			w_f64(w, pk->hist[(pk->hpos + RULE_PEAK_NIGHTS_MAX - pk->hn + i) %
					  RULE_PEAK_NIGHTS_MAX]);
		w_u8(w, pk->prev_valid);
		w_u8(w, pk->prev_q);
		w_u8(w, pk->in_run);
		w_u8(w, pk->run_raised);
		w_f64(w, pk->prev_total);
		w_f64(w, pk->run_max);
		w_f64(w, pk->run_thr);
		w_i64(w, pk->prev_night);
		w_i64(w, pk->run_night);
		w_i64(w, pk->raised_night);
	} else if (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR) {
		w_u8(w, k->u.q.n);
		for (unsigned i = 0; i < k->u.q.n; i++) {
			w_str(w, k->u.q.m[i].metric);
			w_u32(w, k->u.q.m[i].count);
			w_i64(w, k->u.q.m[i].last_ts);
		}
	}
	w_kx(w, k->x, parts & (P_LED | P_CK));
}

void ae_key_encode(const struct alert_engine *eng, const struct akey *k,
		   struct wbuf *w)
{
	key_encode_parts(eng, k, w, P_FULL);
}

void ae_key_encode_ck(const struct alert_engine *eng, const struct akey *k,
		      struct wbuf *w)
{
	key_encode_parts(eng, k, w, P_CKPT);
}

/* Keys whose evidence may wait (docs/alerts.md "Persistence"): levels
 * (threshold, ladder) and the points of windows and rates (a crash loses
 * at most a few seconds of points out of a window_s-long ring), silence
 * timers. Peaks (a night's total) and quality runs (a count) are written
 * on every change: one lost reading could change their decision. */
bool ae_deferrable(const struct alert_engine *eng, const struct akey *k)
{
	const struct rule *R = ae_key_rule(eng, k);

	return !R || R->kind == RULE_THRESHOLD || R->kind == RULE_LADDER ||
	       R->kind == RULE_WINDOW || R->kind == RULE_RATE || R->kind == RULE_NO_DATA;
}

uint64_t ae_major_hash(const struct alert_engine *eng, const struct akey *k,
		       struct wbuf *w)
{
	uint64_t h;

	w->n = 0;
	key_encode_parts(eng, k, w, P_MAJOR);
	h = agri_hash64_bytes(AGRI_HASH64_INIT, w->p, w->n);
	return h ? h : 1;
}

_Static_assert(sizeof(struct lvl_state) % _Alignof(struct lvl_slot) == 0,
	       "level slots follow struct lvl_state aligned");

/* Bytes of k->u that a key of rule index `rule` has: keys are allocated
 * to their kind's size (a threshold key holds one level slot, not the
 * largest member of the union: 5,000 keys of 100 rules took 2.3 MiB). */
size_t ae_state_size(const struct alert_engine *eng, int rule)
{
	const struct rule *R = rule >= 0 ? &eng->rules->v[rule] : NULL;

	if (!R)
		return sizeof(struct station_state);
	if (level_kind(R->kind))
		return sizeof(struct lvl_state) + R->n_levels * sizeof(struct lvl_slot);
	if (nights_kind(R->kind))
		return sizeof(struct peak_state);
	if (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR)
		return sizeof(struct qual_state);
	return 0;
}


/* Counts an alert record opened (+1) or freed (-1) on k, for the engine
 * and for k's station (its budget of open alerts). */
void ae_open_add(struct alert_engine *eng, const struct akey *k, int d)
{
	struct akey *st = k->rule >= 0 ? ae_key_find(eng, -1, k->station, "") : NULL;

	eng->open += (size_t)(ssize_t)d;
	if (st && (d > 0 || st->st_open > 0))
		st->st_open += (uint32_t)d;
}

/* Resets k's condition and alert (not its past, nor its place in its
 * station's list). */
void ae_cond_reset(struct alert_engine *eng, struct akey *k)
{
	const struct rule *R = ae_key_rule(eng, k);
	struct akey *keys = R ? NULL : k->u.st.keys;

	if (k->rec) {
		free(k->rec);
		k->rec = NULL;
		ae_open_add(eng, k, -1);
	}
	if (R && level_kind(R->kind))
		free(k->u.lv.pts);
	memset(&k->u, 0, ae_state_size(eng, k->rule));
	k->last_ts = NONE;
	k->ev_ts = NONE;
	k->first_ts = NONE;
	k->seen_ms = NONE;
	k->offline = false;
	if (!R) {
		k->u.st.keys = keys;
		k->u.st.late_mono = k->u.st.news_mono = k->u.st.backlog_mono = NONE;
	} else if (level_kind(R->kind)) {
		k->u.lv.s = (struct lvl_slot *)((char *)&k->u + sizeof(struct lvl_state));
		for (size_t i = 0; i < R->n_levels; i++)
			k->u.lv.s[i].held_since = k->u.lv.s[i].lts = NONE;
	} else if (nights_kind(R->kind)) {
		k->u.pk.night = k->u.pk.prev_night = k->u.pk.run_night = NONE;
		k->u.pk.raised_night = NONE;
	} else if (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR) {
		for (size_t i = 0; i < QUAL_METRICS_MAX; i++)
			k->u.q.m[i].last_ts = NONE;
	}
}

void ae_state_reset(struct alert_engine *eng, struct akey *k)
{
	ae_cond_reset(eng, k);
	ae_kx_free(k);
}

void ae_rec_fill_ids(struct arec *rec, const struct rule *R,
		     const struct akey *k)
{
	snprintf(rec->a.rule, sizeof(rec->a.rule), "%s", R->id);
	snprintf(rec->a.station, sizeof(rec->a.station), "%s", k->station);
	snprintf(rec->a.sensor, sizeof(rec->a.sensor), "%s", k->sensor);
	if (k->sensor[0])
		snprintf(rec->a.id, sizeof(rec->a.id), "%s/%s/%s", R->id, k->station,
			 k->sensor);
	else
		snprintf(rec->a.id, sizeof(rec->a.id), "%s/%s", R->id, k->station);
}

/* The open alert record of a blob (version v, parts), into *out (NULL
 * when it has none). Returns 0, -EBADMSG or -ENOMEM. */
static int decode_rec(struct rbuf *r, unsigned v, unsigned parts, const struct rule *R,
		      const struct akey *k, struct arec **out)
{
	enum alert_severity sev;
	struct arec *rec;
	unsigned st;

	*out = NULL;
	if (!r_bool(r))
		return 0;
	if (!(rec = calloc(1, sizeof(*rec))))
		return -ENOMEM;
	ae_rec_fill_ids(rec, R, k);
	st = r_u8(r);
	rec->acked = r_bool(r);
	rec->escalated = r_bool(r);
	rec->level = (int)r_u8(r) - 1;
	r_str(r, rec->a.severity, sizeof(rec->a.severity));
	rec->a.value = r_f64(r);
	rec->a.has_value = r_bool(r);
	rec->a.threshold = r_f64(r);
	rec->a.has_threshold = r_bool(r);
	rec->a.raised_at_ms = r_i64(r);
	rec->a.updated_at_ms = r_i64(r);
	rec->active_since_ms = r_i64(r);
	rec->last_notify_ms = r_i64(r);
	r_str(r, rec->a.metric, sizeof(rec->a.metric));
	if (parts & P_MSGS) {
		r_str(r, rec->a.message, sizeof(rec->a.message));
		r_str(r, rec->msg_en, sizeof(rec->msg_en));
		r_str(r, rec->msg_vi, sizeof(rec->msg_vi));
		r_str(r, rec->who, sizeof(rec->who));
	}
	rec->gap_from = NONE;
	if (v >= 2) {
		rec->late = r_bool(r);
		rec->arrived_ms = r_i64(r);
		rec->gap_from = r_i64(r);
		rec->back = r_bool(r);
	}
	rec->peak = v >= 4 ? r_u8(r) : 0;
	if (r->bad || st > AGRI_ALERT_CLEARED || alert_severity_parse(rec->a.severity, &sev) < 0 ||
	    rec->level >= (int)RULE_LEVELS_MAX || rec->peak > ALERT_SEV_CRITICAL) {
		free(rec);
		return -EBADMSG;
	}
	if (rec->peak < (unsigned)sev)
		rec->peak = (uint8_t)sev; /* (version < 4) */
	rec->a.state = (enum agri_alert_state)st;
	if (rec->level >= (int)R->n_levels)
		rec->level = R->n_levels ? (int)R->n_levels - 1 : -1;
	*out = rec;
	return 0;
}

static int decode_levels(struct rbuf *r, unsigned parts, const struct rule *R,
			 struct lvl_state *lv)
{
	uint32_t n;

	lv->on = (uint8_t)r_u8(r);
	if (lv->on >> R->n_levels)
		return -EBADMSG;
	for (size_t i = 0; i < R->n_levels; i++) {
		lv->s[i].held_since = r_i64(r);
		if (parts & P_EV) {
			lv->s[i].lts = r_i64(r);
			lv->s[i].lval = r_f64(r);
		}
	}
	n = r_u32(r);
	if (r->bad || (n && R->kind != RULE_WINDOW && R->kind != RULE_RATE) ||
	    n > (uint32_t)R->max_points || n > (r->n - r->pos) / 16)
		return -EBADMSG;
	if (n) {
		if (!(lv->pts = malloc(n * sizeof(*lv->pts))))
			return -ENOMEM;
		lv->pcap = lv->pn = n;
		for (uint32_t i = 0; i < n; i++) {
			lv->pts[i].ts = r_i64(r);
			lv->pts[i].v = r_f64(r);
		}
	}
	return 0;
}

static int decode_peak(struct rbuf *r, struct peak_state *pk)
{
	pk->night = r_i64(r);
	pk->total = r_f64(r);
	pk->hn = (uint8_t)r_u8(r);
	if (pk->hn > RULE_PEAK_NIGHTS_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < pk->hn; i++)
		pk->hist[i] = r_f64(r);
	pk->hpos = (uint8_t)(pk->hn % RULE_PEAK_NIGHTS_MAX);
	pk->prev_valid = r_bool(r);
	pk->prev_q = r_bool(r);
	pk->in_run = r_bool(r);
	pk->run_raised = r_bool(r);
	pk->prev_total = r_f64(r);
	pk->run_max = r_f64(r);
	pk->run_thr = r_f64(r);
	pk->prev_night = r_i64(r);
	pk->run_night = r_i64(r);
	pk->raised_night = r_i64(r);
	return 0;
}

static int decode_quality(struct rbuf *r, struct qual_state *q)
{
	q->n = (uint8_t)r_u8(r);
	if (q->n > QUAL_METRICS_MAX)
		return -EBADMSG;
	for (unsigned i = 0; i < q->n; i++) {
		r_str(r, q->m[i].metric, sizeof(q->m[i].metric));
		q->m[i].count = r_u32(r);
		q->m[i].last_ts = r_i64(r);
	}
	return 0;
}

static char *r_strdup(struct rbuf *r)
{
	char tmp[sizeof(((struct arec *)0)->msg_en)];

	r_str(r, tmp, sizeof(tmp));
	return !r->bad && tmp[0] ? strdup(tmp) : NULL;
}

/* A key's past (see w_kx) into k->x (allocated when it has any). */
static int decode_kx(struct rbuf *r, unsigned v, unsigned parts, struct akey *k)
{
	unsigned n;

	if (parts & P_LED) {
		struct kx *x;
		struct ep led[LED_MAX];
		int64_t hold, floor_;
		bool news;

		n = r_u8(r);
		if (n > LED_MAX)
			return -EBADMSG;
		for (unsigned i = 0; i < n; i++) {
			led[i].start = r_i64(r);
			led[i].end = r_i64(r);
			led[i].flags = (uint8_t)r_u8(r);
		}
		hold = r_i64(r);
		floor_ = r_i64(r);
		news = r_bool(r);
		if (r->bad)
			return -EBADMSG;
		if (n || hold != NONE || news || floor_ != NONE) {
			if (!(x = ae_kx(k)))
				return -ENOMEM;
			if (n && !(x->led = malloc(n * sizeof(led[0]))))
				return -ENOMEM;
			if (n)
				memcpy(x->led, led, n * sizeof(led[0]));
			x->n_led = x->cap_led = (uint8_t)n;
			x->hold_from = hold;
			x->led_floor = floor_;
			if (news) {
				x->nw.n = (uint16_t)r_u32(r);
				x->nw.cleared = r_bool(r);
				x->nw.end = r_i64(r);
				x->nw.en = r_strdup(r);
				x->nw.vi = r_strdup(r);
				if (v >= 3) { /* (version 2: no clear's message) */
					x->nw.cen = r_strdup(r);
					x->nw.cvi = r_strdup(r);
				}
			}
		}
	}
	if (parts & P_CK) {
		n = r_u8(r);
		if (n > CK_MAX)
			return -EBADMSG;
		for (unsigned i = 0; i < n && !r->bad; i++) {
			int64_t ts = r_i64(r);
			uint32_t len = r_u32(r);
			struct ck *c;
			struct kx *x;

			if (r->bad || len > r->n - r->pos)
				return -EBADMSG;
			if (!(x = ae_kx(k)) || !(c = malloc(sizeof(*c) + len)))
				return -ENOMEM;
			c->ts = ts;
			c->len = len;
			r_bytes(r, c->blob, len);
			x->ck[x->n_ck++] = c;
		}
	}
	return r->bad ? -EBADMSG : 0;
}

/* Decodes a blob into k (its condition reset). ck: a checkpoint, whose
 * past is not touched. Returns 0, -EBADMSG, -ENOMEM. A fingerprint
 * mismatch keeps the alert record only. */
static int key_decode(struct alert_engine *eng, struct akey *k, const void *blob, size_t len,
		      bool ck)
{
	const struct rule *R = ae_key_rule(eng, k);
	struct rbuf r = {.p = blob, .n = len};
	struct arec *rec = NULL;
	unsigned v, parts;
	bool same;
	int rc = 0;

	if (r_u8(&r) != BLOB_MAGIC)
		return -EBADMSG;
	v = r_u8(&r);
	if (v < 1 || v > BLOB_VERSION || r_u8(&r) != (R ? 1u : 0u))
		return -EBADMSG;
	same = R && (uint64_t)r_i64(&r) == eng->fp[k->rule];
	if (!R)
		(void)r_i64(&r);
	parts = v >= 2 ? r_u8(&r) : P_EV | P_PTS | P_MSGS;
	if (parts & ~(unsigned)P_FULL || (ck && parts & (P_LED | P_CK)))
		return -EBADMSG;
	k->seen_ms = r_i64(&r);
	if (!(parts & P_EV))
		k->seen_ms = NONE;
	k->offline = r_bool(&r);
	if (!R) {
		struct station_state *st = &k->u.st;

		if (r.pos < r.n) {
			st->n = (uint8_t)r_u8(&r);
			if (st->n > STATION_RAIN_MAX)
				return -EBADMSG;
			for (unsigned i = 0; i < st->n; i++)
				st->rain[i] = r_i64(&r);
			st->pos = (uint8_t)(st->n % STATION_RAIN_MAX);
		}
		if (v >= 2 && parts & P_LED) {
			st->holding = r_bool(&r);
			st->backlog = r_bool(&r);
			st->held = r_u32(&r);
		}
		if (v >= 2 && parts & P_EV)
			k->ev_ts = r_i64(&r);
		return r.bad || r.pos != r.n ? -EBADMSG : 0;
	}
	if ((rc = decode_rec(&r, v, parts, R, k, &rec)) < 0)
		return rc;
	if (!same) {
		/* The rule changed: keep the alert, restart the condition. An
		 * open level alert keeps its levels on until readings say. */
		if (rec && level_kind(R->kind) && rec->a.state != AGRI_ALERT_CLEARED)
			for (int i = 0; i <= rec->level; i++)
				k->u.lv.on |= (uint8_t)(1u << i);
	} else {
		if (parts & P_EV) {
			k->last_ts = r_i64(&r);
			if (v >= 2) {
				k->ev_ts = r_i64(&r);
				k->first_ts = r_i64(&r);
			}
		}
		if (level_kind(R->kind))
			rc = decode_levels(&r, parts, R, &k->u.lv);
		else if (nights_kind(R->kind))
			rc = decode_peak(&r, &k->u.pk);
		else if (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR)
			rc = decode_quality(&r, &k->u.q);
		if (v == 1 && k->ev_ts == NONE) { /* the newest reading it applied */
			k->ev_ts = k->last_ts;
			for (size_t i = 0; level_kind(R->kind) && i < R->n_levels; i++)
				if (k->u.lv.s[i].lts > k->ev_ts)
					k->ev_ts = k->u.lv.s[i].lts;
			for (unsigned i = 0; (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR) &&
					     i < k->u.q.n; i++)
				if (k->u.q.m[i].last_ts > k->ev_ts)
					k->ev_ts = k->u.q.m[i].last_ts;
		}
		if (rc == 0 && v >= 2 && !ck)
			rc = decode_kx(&r, v, parts, k);
		if (rc == 0 && (r.bad || r.pos != r.n))
			rc = -EBADMSG;
	}
	if (rc == 0 && r.bad)
		rc = -EBADMSG;
	if (rc < 0) {
		free(rec);
		if (ck)
			ae_cond_reset(eng, k);
		else
			ae_state_reset(eng, k);
		return rc;
	}
	if (rec) {
		k->rec = rec;
		ae_open_add(eng, k, +1);
	}
	return 0;
}

int ae_key_decode(struct alert_engine *eng, struct akey *k, const void *blob, size_t len)
{
	return key_decode(eng, k, blob, len, false);
}

int ae_ck_decode(struct alert_engine *eng, struct akey *k, const void *blob, size_t len)
{
	return key_decode(eng, k, blob, len, true);
}
