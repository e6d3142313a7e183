/*
 * The alert engine (see alert.h, docs/alerts.md).
 *
 * Keys live in a chained hash table (lookup) and in an array (creation
 * order: deterministic iteration for tick and export). A key holds its
 * open alert record (struct arec, allocated only while an alert is open)
 * and the condition state of its rule's kind in a union. Every change to
 * a key goes through touch(), which marks it dirty for export and, inside
 * a transaction, first saves its exported blob for rollback: the blob
 * codec is the one undo, persistence and restart all share.
 *
 * Time: reading-driven conditions (levels, windows, rates, peaks,
 * quality) run on the readings' own timestamps, so hold times and nights
 * mean the same whether data arrive live or from a station's spool;
 * timers (silence, renotify, escalation) run on now_ms.
 */
#include "alerts/alert.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/topic.h"
#include "alerts/text.h"

#define NONE INT64_MIN
#define QUAL_METRICS_MAX 6
#define BLOB_MAGIC 0xa1
#define BLOB_VERSION 1
#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

struct arec {
	struct agri_alert a;        /* id, rule, station, sensor fixed at creation */
	char msg_en[sizeof(((struct agri_alert *)0)->message)];
	char msg_vi[sizeof(((struct agri_alert *)0)->message)];
	bool acked, escalated;
	int level;                  /* level index (level kinds), else -1 */
	int64_t active_since_ms;    /* now-time it last became active */
	int64_t last_notify_ms;     /* now-time of its last notification */
	char who[64];
};

struct pt {
	int64_t ts;
	double v;
};

struct lvl_slot {
	int64_t held_since;     /* enter condition held since (NONE) */
	int64_t lts;            /* last reading ts of the level */
	double lval;            /* last value of the level */
};

struct lvl_state {
	uint8_t on;             /* bit i: level i is on */
	struct lvl_slot *s;     /* the rule's n_levels slots, right after this
				 * struct in the key's own allocation */
	struct pt *pts;         /* window/rate ring */
	size_t pcap, phead, pn;
};

struct peak_state {
	int64_t night;          /* night being summed, NONE before the first */
	double total;
	double hist[RULE_PEAK_NIGHTS_MAX]; /* completed nights, ring */
	uint8_t hn, hpos;
	bool prev_valid, prev_q, in_run, run_raised;
	double prev_total, run_max, run_thr;
	int64_t prev_night, run_night, raised_night;
};

struct qmetric {
	char metric[AGRI_ID_MAX + 1];
	uint32_t count;
	int64_t last_ts;
};

struct qual_state {
	uint8_t n;
	struct qmetric m[QUAL_METRICS_MAX];
};

struct akey {
	struct akey *hnext;
	uint64_t hash;
	int rule;                   /* index in rules->v; -1: station record */
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	bool dirty, txn_touched;
	bool in_new;                /* on eng->dirtyv */
	bool deferred;              /* on eng->defv */
	uint64_t saved_major;       /* hash of the decision state last written (0: unknown) */
	int64_t queued_ms;          /* when it joined eng->defv (export's now) */
	struct arec *rec;
	int64_t last_ts;            /* newest reading ts (window/rate/peak) */
	int64_t seen_ms;            /* now-time of the last data (no_data, station) */
	bool offline;               /* station record: status offline */
	uint32_t st_keys, st_open;  /* station record: its rule keys, open alerts */
	union {
		struct lvl_state lv;
		struct peak_state pk;
		struct qual_state q;
	} u;
};

struct undo {
	struct akey *k;
	bool dirty;
	uint8_t *blob;
	size_t len;
};

/* The rules a reading of one metric goes through, in rule order (a
 * reading meets ~17 of 100 rules: found once per reading, not with a
 * strcmp per rule). */
struct metric_rules {
	const char *metric;         /* NULL: any metric not named by a rule */
	int *rule;
	size_t n;
};

struct alert_engine {
	const struct rules *rules;
	uint64_t *fp;               /* fingerprint per rule */
	struct akey **tab;
	size_t tab_n;               /* power of two */
	struct akey **keys;
	size_t n, cap;
	struct metric_rules *by_metric; /* the rules a reading of each metric meets */
	size_t n_by_metric;             /* ... the last entry: any other metric */
	int64_t start_ms;
	bool in_txn;
	size_t txn_first;           /* keys[txn_first..n) were created in the txn */
	struct undo *undo;
	size_t n_undo, cap_undo;
	struct akey **dirtyv;       /* keys touched since the last export */
	size_t n_dirty, cap_dirty;
	struct akey **defv;         /* dirty keys whose write waits (evidence only), */
	size_t def_head, n_def, cap_def; /* a queue: defv[def_head..n_def) */
	double def_credit;          /* ... written at a pace (export_waiting()) */
	int64_t def_last_ms;
	bool no_undo;               /* alert_engine_set_undo(false) */
	bool dirty_oom;             /* dirtyv could not grow: export scans every key */
	uint8_t *buf;               /* export scratch */
	size_t buf_cap;
	uint64_t keys_refused, late, raises_refused;
	size_t open;
	size_t keys_per_station, open_per_station; /* 0: no limit */
	bool refused;               /* the last key_get_h() hit a cap (not ENOMEM) */
};

/* Emission context shared by the helpers. */
struct out {
	alert_emit_fn fn;
	void *ctx;
	int count;
	bool has_night;   /* the RAISED being emitted is a peak (night_day) */
	int64_t night_day;
};

static const char *const event_names[] = {
	"raised", "severity", "acknowledged", "cleared", "closed", "renotify", "escalated",
};

size_t alert_transition_channels(const struct alert_transition *t, const char **names,
				 size_t max)
{
	const struct rule *R = t->rule;
	size_t n = 0;

	for (int list = 0; R && list < 2; list++) {
		size_t k = list ? R->n_escalate : R->n_notify;

		if (list ? !t->notify_escalation : !t->notify)
			continue;
		for (size_t i = 0; i < k && i < RULE_CHANNELS_MAX && n < max; i++) {
			const char *c = list ? R->escalate[i] : R->notify[i];
			bool dup = false;

			for (size_t j = 0; j < n && !dup; j++)
				dup = strcmp(names[j], c) == 0;
			if (!dup)
				names[n++] = c;
		}
	}
	return n;
}

const char *alert_event_name(enum alert_event ev)
{
	return (unsigned)ev < sizeof(event_names) / sizeof(event_names[0])
		       ? event_names[ev] : NULL;
}

static bool level_kind(enum rule_kind k)
{
	return k == RULE_THRESHOLD || k == RULE_LADDER || k == RULE_WINDOW ||
	       k == RULE_RATE;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- blob codec ---------------------------------------------------------- */

struct wbuf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
};

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

static const struct rule *key_rule(const struct alert_engine *eng,
				   const struct akey *k)
{
	return k->rule >= 0 ? &eng->rules->v[k->rule] : NULL;
}

static void ring_point(const struct lvl_state *lv, size_t i, struct pt *out)
{
	*out = lv->pts[(lv->phead + i) % lv->pcap];
}

/* Encodes k. evidence false writes 0 for what only records the latest
 * data (newest reading ts and value per level, seen_ms): what is left is
 * the decision state, hashed to tell whether a key must be written now. */
static void key_encode_ev(const struct alert_engine *eng, const struct akey *k,
			  struct wbuf *w, bool evidence)
{
	const struct rule *R = key_rule(eng, k);
	const struct arec *rec = k->rec;

	w_u8(w, BLOB_MAGIC);
	w_u8(w, BLOB_VERSION);
	w_u8(w, R ? 1 : 0);
	w_i64(w, (int64_t)(R ? eng->fp[k->rule] : 0));
	w_i64(w, evidence ? k->seen_ms : 0);
	w_u8(w, k->offline);
	if (!R)
		return;
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
		w_str(w, rec->a.message);
		w_str(w, rec->msg_en);
		w_str(w, rec->msg_vi);
		w_str(w, rec->who);
	}
	w_i64(w, evidence ? k->last_ts : 0);
	if (level_kind(R->kind)) {
		const struct lvl_state *lv = &k->u.lv;

		w_u8(w, lv->on);
		for (size_t i = 0; i < R->n_levels; i++) {
			w_i64(w, lv->s[i].held_since);
			w_i64(w, evidence ? lv->s[i].lts : 0);
			w_f64(w, evidence ? lv->s[i].lval : 0.0);
		}
		w_u32(w, evidence ? (uint32_t)lv->pn : 0);
		for (size_t i = 0; evidence && i < lv->pn; i++) {
			struct pt p;

			ring_point(lv, i, &p);
			w_i64(w, p.ts);
			w_f64(w, p.v);
		}
	} else if (R->kind == RULE_PEAK) {
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
	} else if (R->kind == RULE_QUALITY) {
		w_u8(w, k->u.q.n);
		for (unsigned i = 0; i < k->u.q.n; i++) {
			w_str(w, k->u.q.m[i].metric);
			w_u32(w, k->u.q.m[i].count);
			w_i64(w, k->u.q.m[i].last_ts);
		}
	}
}

static void key_encode(const struct alert_engine *eng, const struct akey *k,
		       struct wbuf *w)
{
	key_encode_ev(eng, k, w, true);
}

/* Keys whose evidence may wait (docs/alerts.md "Persistence"): levels
 * (threshold, ladder) and the points of windows and rates (a crash loses
 * at most a few seconds of points out of a window_s-long ring), silence
 * timers. Peaks (a night's total) and quality runs (a count) are written
 * on every change: one lost reading could change their decision. */
static bool deferrable(const struct alert_engine *eng, const struct akey *k)
{
	const struct rule *R = key_rule(eng, k);

	return !R || R->kind == RULE_THRESHOLD || R->kind == RULE_LADDER ||
	       R->kind == RULE_WINDOW || R->kind == RULE_RATE || R->kind == RULE_NO_DATA;
}

static uint64_t major_hash(const struct alert_engine *eng, const struct akey *k,
			   struct wbuf *w)
{
	uint64_t h = 14695981039346656037ull;

	w->n = 0;
	key_encode_ev(eng, k, w, false);
	for (size_t i = 0; i < w->n; i++)
		h = (h ^ w->p[i]) * 1099511628211ull;
	return h ? h : 1;
}

_Static_assert(sizeof(struct lvl_state) % _Alignof(struct lvl_slot) == 0,
	       "level slots follow struct lvl_state aligned");

/* Bytes of k->u that a key of rule index `rule` has: keys are allocated
 * to their kind's size (a threshold key holds one level slot, not the
 * largest member of the union: 5,000 keys of 100 rules took 2.3 MiB). */
static size_t state_size(const struct alert_engine *eng, int rule)
{
	const struct rule *R = rule >= 0 ? &eng->rules->v[rule] : NULL;

	if (!R)
		return 0;
	if (level_kind(R->kind))
		return sizeof(struct lvl_state) + R->n_levels * sizeof(struct lvl_slot);
	if (R->kind == RULE_PEAK)
		return sizeof(struct peak_state);
	if (R->kind == RULE_QUALITY)
		return sizeof(struct qual_state);
	return 0;
}

static struct akey *key_find(const struct alert_engine *eng, int rule,
			     const char *station, const char *sensor);

/* Counts an alert record opened (+1) or freed (-1) on k, for the engine
 * and for k's station (its budget of open alerts). */
static void open_add(struct alert_engine *eng, const struct akey *k, int d)
{
	struct akey *st = k->rule >= 0 ? key_find(eng, -1, k->station, "") : NULL;

	eng->open += (size_t)(ssize_t)d;
	if (st && (d > 0 || st->st_open > 0))
		st->st_open += (uint32_t)d;
}

static void state_reset(struct alert_engine *eng, struct akey *k)
{
	const struct rule *R = key_rule(eng, k);

	if (k->rec) {
		free(k->rec);
		k->rec = NULL;
		open_add(eng, k, -1);
	}
	if (R && level_kind(R->kind))
		free(k->u.lv.pts);
	memset(&k->u, 0, state_size(eng, k->rule));
	k->last_ts = NONE;
	k->seen_ms = NONE;
	k->offline = false;
	if (R && level_kind(R->kind)) {
		k->u.lv.s = (struct lvl_slot *)((char *)&k->u + sizeof(struct lvl_state));
		for (size_t i = 0; i < R->n_levels; i++)
			k->u.lv.s[i].held_since = k->u.lv.s[i].lts = NONE;
	} else if (R && R->kind == RULE_PEAK) {
		k->u.pk.night = k->u.pk.prev_night = k->u.pk.run_night = NONE;
		k->u.pk.raised_night = NONE;
	} else if (R && R->kind == RULE_QUALITY) {
		for (size_t i = 0; i < QUAL_METRICS_MAX; i++)
			k->u.q.m[i].last_ts = NONE;
	}
}

static void rec_fill_ids(struct arec *rec, const struct rule *R,
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

/* Decodes a blob into k (fresh: state_reset done). Returns 0, -EBADMSG,
 * -ENOMEM. A fingerprint mismatch keeps the alert record only. */
static int key_decode(struct alert_engine *eng, struct akey *k,
		      const void *blob, size_t len)
{
	const struct rule *R = key_rule(eng, k);
	struct rbuf r = {.p = blob, .n = len};
	struct arec *rec = NULL;
	bool same;
	int rc = -EBADMSG;

	if (r_u8(&r) != BLOB_MAGIC || r_u8(&r) != BLOB_VERSION ||
	    r_u8(&r) != (R ? 1u : 0u))
		return -EBADMSG;
	same = R && (uint64_t)r_i64(&r) == eng->fp[k->rule];
	if (!R)
		(void)r_i64(&r);
	k->seen_ms = r_i64(&r);
	k->offline = r_bool(&r);
	if (!R)
		return r.bad || r.pos != r.n ? -EBADMSG : 0;
	if (r_bool(&r)) {
		enum alert_severity sev;
		unsigned st;

		rec = calloc(1, sizeof(*rec));
		if (!rec)
			return -ENOMEM;
		rec_fill_ids(rec, R, k);
		st = r_u8(&r);
		rec->acked = r_bool(&r);
		rec->escalated = r_bool(&r);
		rec->level = (int)r_u8(&r) - 1;
		r_str(&r, rec->a.severity, sizeof(rec->a.severity));
		rec->a.value = r_f64(&r);
		rec->a.has_value = r_bool(&r);
		rec->a.threshold = r_f64(&r);
		rec->a.has_threshold = r_bool(&r);
		rec->a.raised_at_ms = r_i64(&r);
		rec->a.updated_at_ms = r_i64(&r);
		rec->active_since_ms = r_i64(&r);
		rec->last_notify_ms = r_i64(&r);
		r_str(&r, rec->a.metric, sizeof(rec->a.metric));
		r_str(&r, rec->a.message, sizeof(rec->a.message));
		r_str(&r, rec->msg_en, sizeof(rec->msg_en));
		r_str(&r, rec->msg_vi, sizeof(rec->msg_vi));
		r_str(&r, rec->who, sizeof(rec->who));
		if (r.bad || st > AGRI_ALERT_CLEARED ||
		    alert_severity_parse(rec->a.severity, &sev) < 0 ||
		    rec->level >= (int)RULE_LEVELS_MAX)
			goto fail;
		rec->a.state = (enum agri_alert_state)st;
		if (rec->level >= (int)R->n_levels)
			rec->level = R->n_levels ? (int)R->n_levels - 1 : -1;
	}
	if (!same) {
		/* The rule changed: keep the alert, restart the condition. An
		 * open level alert keeps its levels on until readings say. */
		if (rec && level_kind(R->kind) && rec->a.state != AGRI_ALERT_CLEARED)
			for (int i = 0; i <= rec->level; i++)
				k->u.lv.on |= (uint8_t)(1u << i);
		goto done;
	}
	k->last_ts = r_i64(&r);
	if (level_kind(R->kind)) {
		struct lvl_state *lv = &k->u.lv;
		uint32_t n;

		lv->on = (uint8_t)r_u8(&r);
		if (lv->on >> R->n_levels)
			goto fail;
		for (size_t i = 0; i < R->n_levels; i++) {
			lv->s[i].held_since = r_i64(&r);
			lv->s[i].lts = r_i64(&r);
			lv->s[i].lval = r_f64(&r);
		}
		n = r_u32(&r);
		if (r.bad || (n && R->kind != RULE_WINDOW && R->kind != RULE_RATE) ||
		    n > (uint32_t)R->max_points || n > (r.n - r.pos) / 16)
			goto fail;
		if (n) {
			lv->pts = malloc(n * sizeof(*lv->pts));
			if (!lv->pts) {
				rc = -ENOMEM;
				goto fail;
			}
			lv->pcap = lv->pn = n;
			for (uint32_t i = 0; i < n; i++) {
				lv->pts[i].ts = r_i64(&r);
				lv->pts[i].v = r_f64(&r);
			}
		}
	} else if (R->kind == RULE_PEAK) {
		struct peak_state *pk = &k->u.pk;

		pk->night = r_i64(&r);
		pk->total = r_f64(&r);
		pk->hn = (uint8_t)r_u8(&r);
		if (pk->hn > RULE_PEAK_NIGHTS_MAX)
			goto fail;
		for (unsigned i = 0; i < pk->hn; i++)
			pk->hist[i] = r_f64(&r);
		pk->hpos = (uint8_t)(pk->hn % RULE_PEAK_NIGHTS_MAX);
		pk->prev_valid = r_bool(&r);
		pk->prev_q = r_bool(&r);
		pk->in_run = r_bool(&r);
		pk->run_raised = r_bool(&r);
		pk->prev_total = r_f64(&r);
		pk->run_max = r_f64(&r);
		pk->run_thr = r_f64(&r);
		pk->prev_night = r_i64(&r);
		pk->run_night = r_i64(&r);
		pk->raised_night = r_i64(&r);
	} else if (R->kind == RULE_QUALITY) {
		struct qual_state *q = &k->u.q;

		q->n = (uint8_t)r_u8(&r);
		if (q->n > QUAL_METRICS_MAX)
			goto fail;
		for (unsigned i = 0; i < q->n; i++) {
			r_str(&r, q->m[i].metric, sizeof(q->m[i].metric));
			q->m[i].count = r_u32(&r);
			q->m[i].last_ts = r_i64(&r);
		}
	}
	if (r.bad || r.pos != r.n)
		goto fail;
done:
	if (r.bad)
		goto fail;
	if (rec) {
		k->rec = rec;
		open_add(eng, k, +1);
	}
	return 0;
fail:
	free(rec);
	state_reset(eng, k);
	return rc;
}

/* ---- keys ---------------------------------------------------------------- */

/* A key's hash in two steps: its station and sensor (once per reading),
 * then its rule. */
static uint64_t place_hash(const char *station, const char *sensor)
{
	uint64_t h = 14695981039346656037ull;
	const unsigned char *s;

	for (s = (const unsigned char *)station; *s; s++)
		h = (h ^ *s) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (s = (const unsigned char *)sensor; *s; s++)
		h = (h ^ *s) * 1099511628211ull;
	return h;
}

static uint64_t rule_hash(uint64_t place, int rule)
{
	uint64_t h = (place ^ (uint64_t)(uint32_t)rule) * 0x9e3779b97f4a7c15ull;

	return h ^ (h >> 29);
}

static uint64_t key_hash(int rule, const char *station, const char *sensor)
{
	return rule_hash(place_hash(station, sensor), rule);
}

static struct akey *key_find_h(const struct alert_engine *eng, uint64_t h, int rule,
			       const char *station, const char *sensor)
{
	struct akey *k;

	for (k = eng->tab[h & (eng->tab_n - 1)]; k; k = k->hnext)
		if (k->hash == h && k->rule == rule && !strcmp(k->station, station) &&
		    !strcmp(k->sensor, sensor))
			return k;
	return NULL;
}

static struct akey *key_find(const struct alert_engine *eng, int rule,
			     const char *station, const char *sensor)
{
	return key_find_h(eng, key_hash(rule, station, sensor), rule, station, sensor);
}

static int tab_grow(struct alert_engine *eng)
{
	size_t n = eng->tab_n * 2;
	struct akey **tab = calloc(n, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < eng->n; i++) {
		struct akey *k = eng->keys[i];

		k->hnext = tab[k->hash & (n - 1)];
		tab[k->hash & (n - 1)] = k;
	}
	free(eng->tab);
	eng->tab = tab;
	eng->tab_n = n;
	return 0;
}

static bool key_push(struct alert_engine *eng, struct akey ***v, size_t *n,
		     size_t *cap, struct akey *k)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct akey **nv = realloc(*v, c * sizeof(*nv));

		if (!nv) {
			eng->dirty_oom = true; /* the next export visits every key */
			return false;
		}
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = k;
	return true;
}

/* Marks k dirty for the next export (which visits dirtyv, and defv now
 * and then, not every key). */
static void mark_dirty(struct alert_engine *eng, struct akey *k)
{
	k->dirty = true;
	if (!k->in_new)
		k->in_new = key_push(eng, &eng->dirtyv, &eng->n_dirty, &eng->cap_dirty, k);
}

/* Rebuilds the lists from the keys (after keys were freed or a failed
 * export): every dirty key is new again. */
static void dirty_rebuild(struct alert_engine *eng)
{
	eng->n_dirty = eng->n_def = eng->def_head = 0;
	eng->dirty_oom = false;
	for (size_t i = 0; i < eng->n; i++) {
		eng->keys[i]->in_new = eng->keys[i]->deferred = false;
		if (eng->keys[i]->dirty)
			mark_dirty(eng, eng->keys[i]);
	}
}

/* Finds or creates a key. NULL on ENOMEM or when a cap is reached
 * (eng->refused then says so): the engine holds at most ALERT_KEYS_MAX
 * keys, a station at most keys_per_station rule keys. Its station's
 * record (rule -1) is created first: it counts the station's keys. */
static struct akey *key_get_h(struct alert_engine *eng, uint64_t h, int rule,
			      const char *station, const char *sensor)
{
	struct akey *k = key_find_h(eng, h, rule, station, sensor), *st = NULL;

	eng->refused = false;
	if (k)
		return k;
	if (rule >= 0) {
		st = key_get_h(eng, key_hash(-1, station, ""), -1, station, "");
		if (!st)
			return NULL;
		if (eng->keys_per_station && st->st_keys >= eng->keys_per_station &&
		    !rule_kind_is_event(eng->rules->v[rule].kind)) {
			eng->keys_refused++;
			eng->refused = true;
			return NULL;
		}
	}
	if (eng->n >= ALERT_KEYS_MAX) {
		eng->keys_refused++;
		eng->refused = true;
		return NULL;
	}
	if (eng->n == eng->cap) {
		size_t cap = eng->cap * 2;
		struct akey **keys = realloc(eng->keys, cap * sizeof(*keys));

		if (!keys)
			return NULL;
		eng->keys = keys;
		eng->cap = cap;
	}
	if (eng->n >= eng->tab_n && tab_grow(eng) < 0)
		return NULL;
	k = calloc(1, offsetof(struct akey, u) + state_size(eng, rule));
	if (!k)
		return NULL;
	k->rule = rule;
	snprintf(k->station, sizeof(k->station), "%s", station);
	snprintf(k->sensor, sizeof(k->sensor), "%s", sensor);
	k->hash = h;
	state_reset(eng, k);
	k->hnext = eng->tab[k->hash & (eng->tab_n - 1)];
	eng->tab[k->hash & (eng->tab_n - 1)] = k;
	eng->keys[eng->n++] = k;
	if (st)
		st->st_keys++;
	mark_dirty(eng, k);
	k->txn_touched = eng->in_txn; /* rollback deletes it: no undo image */
	return k;
}

static struct akey *key_get(struct alert_engine *eng, int rule,
			    const char *station, const char *sensor)
{
	return key_get_h(eng, key_hash(rule, station, sensor), rule, station, sensor);
}

static void key_unlink(struct alert_engine *eng, struct akey *k)
{
	struct akey **pp = &eng->tab[k->hash & (eng->tab_n - 1)];

	while (*pp && *pp != k)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = k->hnext;
}

static void key_free(struct alert_engine *eng, struct akey *k)
{
	struct akey *st;

	if (!k)
		return;
	state_reset(eng, k);
	if (k->rule >= 0 && (st = key_find(eng, -1, k->station, "")) && st->st_keys > 0)
		st->st_keys--;
	free(k);
}

/* Call before changing k. Returns 0 or -ENOMEM (inside a transaction,
 * when the undo image cannot be saved: the caller must not change k). */
static int touch(struct alert_engine *eng, struct akey *k)
{
	struct wbuf w = {0};

	/* Keys created in the transaction are born touched (no undo image). */
	if (eng->in_txn && !k->txn_touched && !eng->no_undo) {
		if (eng->n_undo == eng->cap_undo) {
			size_t cap = eng->cap_undo ? eng->cap_undo * 2 : 64;
			struct undo *u = realloc(eng->undo, cap * sizeof(*u));

			if (!u)
				return -ENOMEM;
			eng->undo = u;
			eng->cap_undo = cap;
		}
		key_encode(eng, k, &w);
		if (w.oom) {
			free(w.p);
			return -ENOMEM;
		}
		eng->undo[eng->n_undo++] = (struct undo){
			.k = k, .dirty = k->dirty, .blob = w.p, .len = w.n};
		k->txn_touched = true;
	}
	mark_dirty(eng, k);
	return 0;
}

/* ---- engine -------------------------------------------------------------- */

static bool metric_used(const struct rule *R, const char *metric)
{
	if (rule_kind_is_event(R->kind))
		return false; /* fed by gateway events, not readings */
	if (R->kind == RULE_THRESHOLD) {
		for (size_t i = 0; i < R->n_levels; i++)
			if (!strcmp(R->levels[i].metric, metric))
				return true;
		return false;
	}
	return !R->metric[0] || !strcmp(R->metric, metric);
}

/* A no_data rule kept per station (one key per station, sensor ""). */
static bool per_station(const struct rule *R)
{
	return R->kind == RULE_NO_DATA && !R->per_sensor;
}

/* A rule that every reading meets (a station's no_data) or whose metric
 * is any. */
static bool rule_any_metric(const struct rule *R)
{
	return per_station(R) ||
	       (R->kind != RULE_THRESHOLD && !rule_kind_is_event(R->kind) && !R->metric[0]);
}

/* A rule with one key per station (sensor ""). */
static bool station_key(const struct rule *R)
{
	return per_station(R) || rule_kind_is_event(R->kind);
}

static int by_metric_add(struct alert_engine *eng, const char *metric)
{
	const struct rules *rs = eng->rules;
	struct metric_rules *m = &eng->by_metric[eng->n_by_metric];

	for (size_t i = 0; metric && i < eng->n_by_metric; i++)
		if (eng->by_metric[i].metric && !strcmp(eng->by_metric[i].metric, metric))
			return 0;
	m->metric = metric;
	m->rule = malloc((rs->n ? rs->n : 1) * sizeof(*m->rule));
	if (!m->rule)
		return -ENOMEM;
	for (size_t i = 0; i < rs->n; i++)
		if (rule_any_metric(&rs->v[i]) || (metric && metric_used(&rs->v[i], metric)))
			m->rule[m->n++] = (int)i;
	eng->n_by_metric++;
	return 0;
}

/* One entry per metric a rule names, then one for every other metric. */
static int by_metric_build(struct alert_engine *eng)
{
	const struct rules *rs = eng->rules;
	size_t most = 1;

	for (size_t i = 0; i < rs->n; i++)
		most += rs->v[i].kind == RULE_THRESHOLD ? rs->v[i].n_levels : 1;
	eng->by_metric = calloc(most, sizeof(*eng->by_metric));
	if (!eng->by_metric)
		return -ENOMEM;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *R = &rs->v[i];
		int rc = 0;

		if (R->kind == RULE_THRESHOLD) {
			for (size_t l = 0; l < R->n_levels && rc == 0; l++)
				if (R->levels[l].metric[0])
					rc = by_metric_add(eng, R->levels[l].metric);
		} else if (R->metric[0]) {
			rc = by_metric_add(eng, R->metric);
		}
		if (rc < 0)
			return rc;
	}
	return by_metric_add(eng, NULL);
}

static const struct metric_rules *rules_for(const struct alert_engine *eng, const char *metric)
{
	size_t i;

	for (i = 0; i + 1 < eng->n_by_metric; i++)
		if (!strcmp(eng->by_metric[i].metric, metric))
			break;
	return &eng->by_metric[i];
}

struct alert_engine *alert_engine_new(const struct rules *rules)
{
	struct alert_engine *eng = calloc(1, sizeof(*eng));

	if (!eng)
		return NULL;
	eng->rules = rules;
	eng->start_ms = NONE;
	eng->tab_n = 256;
	eng->cap = 256;
	eng->tab = calloc(eng->tab_n, sizeof(*eng->tab));
	eng->keys = calloc(eng->cap, sizeof(*eng->keys));
	eng->fp = calloc(rules->n ? rules->n : 1, sizeof(*eng->fp));
	if (!eng->tab || !eng->keys || !eng->fp) {
		alert_engine_free(eng);
		return NULL;
	}
	for (size_t i = 0; i < rules->n; i++)
		eng->fp[i] = rule_fingerprint(&rules->v[i]);
	if (by_metric_build(eng) < 0) {
		alert_engine_free(eng);
		return NULL;
	}
	return eng;
}

static void undo_clear(struct alert_engine *eng)
{
	for (size_t i = 0; i < eng->n_undo; i++)
		free(eng->undo[i].blob);
	eng->n_undo = 0;
}

void alert_engine_free(struct alert_engine *eng)
{
	if (!eng)
		return;
	for (size_t i = 0; i < eng->n; i++) {
		struct akey *k = eng->keys[i];
		const struct rule *R = key_rule(eng, k);

		/* no state_reset(): it would look up station records being freed */
		free(k->rec);
		if (R && level_kind(R->kind))
			free(k->u.lv.pts);
		free(k);
	}
	undo_clear(eng);
	free(eng->undo);
	free(eng->keys);
	free(eng->dirtyv);
	free(eng->defv);
	for (size_t i = 0; i < eng->n_by_metric; i++)
		free(eng->by_metric[i].rule);
	free(eng->by_metric);
	free(eng->tab);
	free(eng->fp);
	free(eng->buf);
	free(eng);
}

void alert_engine_start(struct alert_engine *eng, int64_t now_ms)
{
	eng->start_ms = now_ms;
}

/* ---- transitions ------------------------------------------------------- */

static enum alert_lang primary(const struct alert_engine *eng)
{
	return eng->rules->lang_vi ? ALERT_LANG_VI : ALERT_LANG_EN;
}

static void rec_messages(const struct alert_engine *eng, struct arec *rec,
			 const struct alert_text_args *args)
{
	alert_text_build(args, ALERT_LANG_EN, rec->msg_en, sizeof(rec->msg_en));
	alert_text_build(args, ALERT_LANG_VI, rec->msg_vi, sizeof(rec->msg_vi));
	memcpy(rec->a.message, primary(eng) == ALERT_LANG_VI ? rec->msg_vi : rec->msg_en,
	       sizeof(rec->a.message));
}

static void emit(struct alert_engine *eng, struct out *o, const struct akey *k,
		 enum alert_event ev, const char *prefix_who, int prefix)
{
	struct alert_transition t;
	const struct arec *rec = k->rec;

	memset(&t, 0, sizeof(t));
	t.alert = rec->a;
	t.event = ev;
	t.rule = key_rule(eng, k);
	t.acked = rec->acked;
	memcpy(t.message_en, rec->msg_en, sizeof(t.message_en));
	memcpy(t.message_vi, rec->msg_vi, sizeof(t.message_vi));
	if (prefix >= 0) {
		alert_text_prefix(t.message_en, sizeof(t.message_en), prefix, prefix_who,
				  ALERT_LANG_EN);
		alert_text_prefix(t.message_vi, sizeof(t.message_vi), prefix, prefix_who,
				  ALERT_LANG_VI);
		memcpy(t.alert.message, primary(eng) == ALERT_LANG_VI ? t.message_vi
								      : t.message_en,
		       sizeof(t.alert.message));
	}
	snprintf(t.who, sizeof(t.who), "%s", rec->who);
	t.store = ev != ALERT_EV_RENOTIFY && ev != ALERT_EV_ESCALATED;
	t.retain_empty = ev == ALERT_EV_CLOSED ||
			 (ev == ALERT_EV_CLEARED && rec->acked);
	t.publish = t.store && !t.retain_empty;
	t.notify = ev != ALERT_EV_ESCALATED;
	t.notify_escalation = rec->escalated;
	t.night_day = -1;
	if (ev == ALERT_EV_RAISED && o->has_night)
		t.night_day = o->night_day;
	o->has_night = false;
	o->count++;
	if (o->fn)
		o->fn(o->ctx, &t);
}

/* What a rule key's message is built from (besides the kind). */
static struct alert_text_args text_args(const struct rule *R, const struct akey *k,
					enum alert_text_what what)
{
	return (struct alert_text_args){
		.what = what, .rule = R, .station = k->station, .sensor = k->sensor,
		.metric = R->metric, .unit = "",
	};
}

static bool what_has_threshold(enum alert_text_what what)
{
	return what != ALERT_TEXT_OFFLINE && what != ALERT_TEXT_SILENT &&
	       what != ALERT_TEXT_EVENT;
}

/* Opens a new episode on k (replacing a cleared one) and emits RAISED. */
static int raise_alert(struct alert_engine *eng, struct out *o, struct akey *k,
		       const struct alert_text_args *args, int level,
		       enum alert_severity sev, int64_t at_ms, int64_t now_ms)
{
	const struct rule *R = key_rule(eng, k);
	struct arec *rec = k->rec;

	if (!rec) {
		struct akey *st = key_find(eng, -1, k->station, "");

		/* A station's budget of open alerts (its own events always
		 * raise): past it the raise waits; the condition, still on,
		 * raises it once one of the station's alerts has closed. */
		if (eng->open_per_station && st && st->st_open >= eng->open_per_station &&
		    !rule_kind_is_event(R->kind)) {
			eng->raises_refused++;
			return 0;
		}
		rec = calloc(1, sizeof(*rec));
		if (!rec)
			return -ENOMEM;
		k->rec = rec;
		open_add(eng, k, +1);
	} else {
		memset(rec, 0, sizeof(*rec));
	}
	rec_fill_ids(rec, R, k);
	snprintf(rec->a.metric, sizeof(rec->a.metric), "%s", args->metric ? args->metric : "");
	snprintf(rec->a.severity, sizeof(rec->a.severity), "%s", alert_severity_name(sev));
	rec->a.state = AGRI_ALERT_ACTIVE;
	rec->a.value = args->has_value ? args->value : 0;
	rec->a.has_value = args->has_value;
	rec->a.threshold = args->threshold;
	rec->a.has_threshold = what_has_threshold(args->what);
	rec->a.raised_at_ms = rec->a.updated_at_ms = at_ms;
	rec->level = level;
	rec->active_since_ms = rec->last_notify_ms = now_ms;
	rec_messages(eng, rec, args);
	o->has_night = args->what == ALERT_TEXT_PEAK;
	o->night_day = args->night_day;
	emit(eng, o, k, ALERT_EV_RAISED, NULL, -1);
	return 0;
}

static enum alert_severity rec_severity(const struct arec *rec)
{
	enum alert_severity s = ALERT_SEV_WARNING;

	(void)alert_severity_parse(rec->a.severity, &s);
	return s;
}

/* A ladder level changed with the severity: emits SEVERITY. Rising
 * re-activates an acknowledged alert (a person must see it again). */
static void severity_change(struct alert_engine *eng, struct out *o,
			    struct akey *k, const struct alert_text_args *args,
			    int level, enum alert_severity sev, int64_t at_ms,
			    int64_t now_ms)
{
	struct arec *rec = k->rec;

	if (sev > rec_severity(rec) && rec->a.state != AGRI_ALERT_ACTIVE) {
		rec->a.state = AGRI_ALERT_ACTIVE;
		rec->acked = false;
		rec->who[0] = '\0';
		rec->active_since_ms = now_ms;
	}
	snprintf(rec->a.severity, sizeof(rec->a.severity), "%s", alert_severity_name(sev));
	snprintf(rec->a.metric, sizeof(rec->a.metric), "%s", args->metric ? args->metric : "");
	rec->a.value = args->value;
	rec->a.has_value = args->has_value;
	rec->a.threshold = args->threshold;
	rec->level = level;
	if (at_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = at_ms;
	rec->last_notify_ms = now_ms;
	rec_messages(eng, rec, args);
	emit(eng, o, k, ALERT_EV_SEVERITY, NULL, -1);
}

/* The condition ended: emits CLEARED; an acknowledged episode is over. */
static void clear_alert(struct alert_engine *eng, struct out *o, struct akey *k,
			const struct alert_text_args *args, int64_t at_ms,
			int64_t now_ms)
{
	struct arec *rec = k->rec;

	rec->a.state = AGRI_ALERT_CLEARED;
	if (args->has_value) {
		rec->a.value = args->value;
		rec->a.has_value = true;
	}
	if (at_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = at_ms;
	rec->last_notify_ms = now_ms;
	rec->level = -1;
	rec_messages(eng, rec, args);
	emit(eng, o, k, ALERT_EV_CLEARED, NULL, -1);
	if (rec->acked) {
		free(rec);
		k->rec = NULL;
		open_add(eng, k, -1);
	}
}

static bool rec_open_active(const struct akey *k)
{
	return k->rec && k->rec->a.state != AGRI_ALERT_CLEARED;
}

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
	struct alert_text_args a = text_args(R, k, level_what(R->kind));
	uint8_t on = k->u.lv.on;
	int cur = rec_open_active(k) ? k->rec->level : -1, nl = -1;

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
		return raise_alert(eng, o, k, &a, nl, a.severity, ts, now_ms);
	}
	if (nl < 0) {
		level_args(&a, R, k, R->kind == RULE_THRESHOLD ? cur : 0);
		a.label = NULL;
		a.cleared = true;
		clear_alert(eng, o, k, &a, ts, now_ms);
		return 0;
	}
	level_args(&a, R, k, nl);
	if (a.severity != rec_severity(k->rec)) {
		severity_change(eng, o, k, &a, nl, a.severity, ts, now_ms);
	} else {
		k->rec->level = nl; /* another condition of the same severity */
	}
	return 0;
}

/* Feeds value v at ts to the levels on metric (NULL: every level). */
static int levels_feed(struct alert_engine *eng, struct out *o, struct akey *k,
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

static int ring_push(struct lvl_state *lv, size_t max_points, int64_t ts, double v)
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
				ring_point(lv, i, &p[i]);
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
	ring_point(lv, 0, &first);
	ring_point(lv, lv->pn - 1, &last);
	if (R->kind == RULE_RATE) {
		double mx_ = 0, my = 0, sxy = 0, sxx = 0;

		if (lv->pn < 2 || last.ts - first.ts < R->window_s * 1000 / 2)
			return false;
		for (size_t i = 0; i < lv->pn; i++) {
			ring_point(lv, i, &p);
			mx_ += (double)(p.ts - first.ts) / HOUR_MS;
			my += p.v;
		}
		mx_ /= (double)lv->pn;
		my /= (double)lv->pn;
		for (size_t i = 0; i < lv->pn; i++) {
			double x;

			ring_point(lv, i, &p);
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
		ring_point(lv, i, &p);
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

static int series_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		       const struct rule *R, double v, int64_t ts, int64_t now_ms)
{
	struct lvl_state *lv = &k->u.lv;
	struct pt first;
	double d = 0;

	if (ts <= k->last_ts) {
		eng->late++;
		return 0;
	}
	if (ring_push(lv, (size_t)R->max_points, ts, v) < 0)
		return -ENOMEM;
	k->last_ts = ts;
	for (;;) {
		ring_point(lv, 0, &first);
		if (first.ts > ts - R->window_s * 1000)
			break;
		lv->phead = (lv->phead + 1) % lv->pcap;
		lv->pn--;
	}
	if (!series_value(R, lv, &d))
		return 0;
	return levels_feed(eng, o, k, R, NULL, d, ts, now_ms);
}

/* ---- peak ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
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
	struct alert_text_args a = text_args(R, k, ALERT_TEXT_PEAK);
	double med = 0, thr = R->floor;
	bool q = false;
	int rc = 0;

	if (rule_active_at(R, ts, eng->rules->utc_offset_min) && peak_median(pk, R, &med)) {
		thr = fmax(R->floor, R->k * med);
		q = T >= thr;
	}
	if (rec_open_active(k) && !q && night > pk->raised_night) {
		a.value = T;
		a.has_value = true;
		a.threshold = thr;
		a.night_day = night;
		a.cleared = true;
		clear_alert(eng, o, k, &a, ts, now_ms);
	} else if (pk->prev_valid && pk->prev_q && pk->in_run && !pk->run_raised &&
		   T < pk->prev_total && !rec_open_active(k)) {
		a.value = pk->run_max;
		a.has_value = true;
		a.threshold = pk->run_thr;
		a.night_day = pk->run_night;
		a.severity = R->severity;
		rc = raise_alert(eng, o, k, &a, -1, R->severity, ts, now_ms);
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
	pk->hist[pk->hpos] = T;
	pk->hpos = (uint8_t)((pk->hpos + 1) % RULE_PEAK_NIGHTS_MAX);
	if (pk->hn < RULE_PEAK_NIGHTS_MAX)
		pk->hn++;
	return rc;
}

static int peak_feed(struct alert_engine *eng, struct out *o, struct akey *k,
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
		rc = peak_complete(eng, o, k, R, pk->night, pk->total, ts, now_ms);
		pk->night = night;
		pk->total = v;
	}
	return rc;
}

/* ---- quality ------------------------------------------------------------- */

static int quality_feed(struct alert_engine *eng, struct out *o, struct akey *k,
			const struct rule *R, const struct agri_reading *r,
			int64_t now_ms)
{
	struct qual_state *q = &k->u.q;
	struct alert_text_args a = text_args(R, k, ALERT_TEXT_QUALITY);
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
	bad = (r->q == AGRI_Q_ERROR && R->bad_error) ||
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
	if (want && !rec_open_active(k)) {
		a.metric = q->m[worst].metric;
		a.value = q->m[worst].count;
		a.has_value = true;
		a.threshold = (double)R->n_bad;
		a.aux = q->m[worst].count;
		return raise_alert(eng, o, k, &a, -1, R->severity, r->ts_ms, now_ms);
	}
	if (!want && rec_open_active(k)) {
		a.metric = r->metric;
		a.value = 0;
		a.has_value = true;
		a.threshold = (double)R->n_bad;
		a.cleared = true;
		clear_alert(eng, o, k, &a, r->ts_ms, now_ms);
	}
	return 0;
}

/* ---- no_data ------------------------------------------------------------- */

static int nodata_raise(struct alert_engine *eng, struct out *o, struct akey *k,
			const struct rule *R, bool offline, int64_t now_ms)
{
	struct alert_text_args a = text_args(R, k, offline ? ALERT_TEXT_OFFLINE
							   : ALERT_TEXT_SILENT);

	a.metric = R->metric;
	a.aux = R->after_s;
	return raise_alert(eng, o, k, &a, -1, R->severity, now_ms, now_ms);
}

static void nodata_clear(struct alert_engine *eng, struct out *o, struct akey *k,
			 const struct rule *R, int64_t now_ms)
{
	struct alert_text_args a = text_args(R, k, k->sensor[0] ? ALERT_TEXT_SILENT
								: ALERT_TEXT_OFFLINE);

	a.metric = R->metric;
	a.cleared = true;
	clear_alert(eng, o, k, &a, now_ms, now_ms);
}

/* ---- public entry points --------------------------------------------------- */

int alert_engine_reading(struct alert_engine *eng, const char *station,
			 const struct agri_reading *r, int64_t now_ms,
			 alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx};
	const struct metric_rules *mr;
	struct akey *st, *k;
	uint64_t at_station, at_sensor;
	int rc;

	if (!eng || !station || !r || !agri_station_id_valid(station) ||
	    !agri_ident_valid(r->sensor) || !agri_ident_valid(r->metric))
		return -EINVAL;
	at_station = place_hash(station, "");
	at_sensor = place_hash(station, r->sensor);
	st = key_get_h(eng, rule_hash(at_station, -1), -1, station, "");
	if (!st)
		return eng->refused ? 0 : -ENOMEM; /* a cap: counted, not an error */
	if ((rc = touch(eng, st)) < 0)
		return rc;
	st->seen_ms = now_ms;
	st->offline = false;
	mr = rules_for(eng, r->metric);
	for (size_t j = 0; j < mr->n; j++) {
		int i = mr->rule[j];
		const struct rule *R = &eng->rules->v[i];
		bool whole = per_station(R);

		if (!rule_matches(R, station, whole ? "" : r->sensor))
			continue;
		if (whole) {
			k = key_find_h(eng, rule_hash(at_station, i), i, station, "");
			if (!k || !rec_open_active(k))
				continue;
			if ((rc = touch(eng, k)) < 0)
				return rc;
			nodata_clear(eng, &o, k, R, now_ms);
			continue;
		}
		if (R->kind == RULE_QUALITY ? r->q == AGRI_Q_MAINT
					    : (R->kind != RULE_NO_DATA &&
					       (r->q != AGRI_Q_OK || !r->has_value)))
			continue;
		k = key_get_h(eng, rule_hash(at_sensor, i), i, station, r->sensor);
		if (!k)
			continue; /* counted in keys_refused, or ENOMEM */
		if ((rc = touch(eng, k)) < 0)
			return rc;
		switch (R->kind) {
		case RULE_THRESHOLD:
		case RULE_LADDER:
			rc = levels_feed(eng, &o, k, R, r->metric, r->value, r->ts_ms, now_ms);
			break;
		case RULE_WINDOW:
		case RULE_RATE:
			rc = series_feed(eng, &o, k, R, r->value, r->ts_ms, now_ms);
			break;
		case RULE_PEAK:
			rc = peak_feed(eng, &o, k, R, r->value, r->ts_ms, now_ms);
			break;
		case RULE_QUALITY:
			rc = quality_feed(eng, &o, k, R, r, now_ms);
			break;
		case RULE_NO_DATA:
			k->seen_ms = now_ms;
			if (rec_open_active(k))
				nodata_clear(eng, &o, k, R, now_ms);
			rc = 0;
			break;
		default:
			rc = 0;
		}
		if (rc < 0)
			return rc;
	}
	return o.count;
}

int alert_engine_batch(struct alert_engine *eng, const struct agri_telemetry *t,
		       const bool *fresh, int64_t now_ms, alert_emit_fn fn,
		       void *ctx)
{
	int total = 0, rc;

	for (size_t i = 0; i < t->n; i++) {
		if (fresh && !fresh[i])
			continue;
		rc = alert_engine_reading(eng, t->station, &t->readings[i], now_ms, fn, ctx);
		if (rc < 0)
			return rc;
		total += rc;
	}
	return total;
}

int alert_engine_status(struct alert_engine *eng, const char *station,
			bool online, int64_t now_ms, alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx};
	struct akey *st, *k;
	int rc;

	if (!eng || !station || !agri_station_id_valid(station))
		return -EINVAL;
	st = key_get(eng, -1, station, "");
	if (!st)
		return eng->refused ? 0 : -ENOMEM;
	if ((rc = touch(eng, st)) < 0)
		return rc;
	st->offline = !online;
	if (online) {
		st->seen_ms = now_ms;
		return 0;
	}
	for (size_t i = 0; i < eng->rules->n; i++) {
		const struct rule *R = &eng->rules->v[i];

		if (!per_station(R) ||
		    !rule_matches(R, station, "") ||
		    !rule_active_at(R, now_ms, eng->rules->utc_offset_min))
			continue;
		k = key_get(eng, (int)i, station, "");
		if (!k || rec_open_active(k))
			continue;
		if ((rc = touch(eng, k)) < 0 || (rc = nodata_raise(eng, &o, k, R, true, now_ms)) < 0)
			return rc;
	}
	return o.count;
}

static int64_t since(const struct alert_engine *eng, int64_t seen_ms)
{
	return seen_ms > eng->start_ms ? seen_ms : eng->start_ms;
}

int alert_engine_tick(struct alert_engine *eng, int64_t now_ms,
		      alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx};
	size_t n = eng->n;
	int rc;

	for (size_t ki = 0; ki < n; ki++) {
		struct akey *k = eng->keys[ki];
		const struct rule *R = key_rule(eng, k);
		struct arec *rec = k->rec;

		if (!R) {
			/* A station: its per-station no_data rules. */
			int64_t from = since(eng, k->seen_ms);

			for (size_t i = 0; i < eng->rules->n; i++) {
				const struct rule *S = &eng->rules->v[i];
				struct akey *sk;

				if (!per_station(S) ||
				    (!k->offline && (from == NONE ||
						     now_ms - from < S->after_s * 1000)) ||
				    !rule_matches(S, k->station, "") ||
				    !rule_active_at(S, now_ms, eng->rules->utc_offset_min))
					continue;
				sk = key_get(eng, (int)i, k->station, "");
				if (!sk || rec_open_active(sk))
					continue;
				if ((rc = touch(eng, sk)) < 0 ||
				    (rc = nodata_raise(eng, &o, sk, S, k->offline, now_ms)) < 0)
					return rc;
			}
			continue;
		}
		if (rule_kind_is_event(R->kind)) {
			if (rec_open_active(k) && k->seen_ms != NONE &&
			    now_ms - k->seen_ms >= R->after_s * 1000) {
				struct alert_text_args a = text_args(R, k, ALERT_TEXT_EVENT);

				a.cleared = true;
				a.aux = R->after_s;
				if ((rc = touch(eng, k)) < 0)
					return rc;
				clear_alert(eng, &o, k, &a, now_ms, now_ms);
			}
			continue;
		}
		if (R->kind == RULE_NO_DATA && R->per_sensor && !rec_open_active(k)) {
			struct akey *st = key_find(eng, -1, k->station, "");
			int64_t from = since(eng, k->seen_ms);
			int64_t st_from = st ? since(eng, st->seen_ms) : NONE;

			if (from != NONE && now_ms - from >= R->after_s * 1000 && st &&
			    !st->offline && st_from != NONE &&
			    now_ms - st_from < R->after_s * 1000 &&
			    rule_active_at(R, now_ms, eng->rules->utc_offset_min)) {
				if ((rc = touch(eng, k)) < 0 ||
				    (rc = nodata_raise(eng, &o, k, R, false, now_ms)) < 0)
					return rc;
			}
			continue;
		}
		if (!rec || rec->a.state != AGRI_ALERT_ACTIVE || rec->acked)
			continue;
		if (R->has_escalate && !rec->escalated &&
		    now_ms - rec->active_since_ms >= R->escalate_after_s * 1000) {
			if ((rc = touch(eng, k)) < 0)
				return rc;
			rec->escalated = true;
			rec->last_notify_ms = now_ms;
			emit(eng, &o, k, ALERT_EV_ESCALATED, NULL, 2);
		} else if (R->renotify_s > 0 &&
			   now_ms - rec->last_notify_ms >= R->renotify_s * 1000) {
			if ((rc = touch(eng, k)) < 0)
				return rc;
			rec->last_notify_ms = now_ms;
			emit(eng, &o, k, ALERT_EV_RENOTIFY, NULL, 1);
		}
	}
	return o.count;
}

/* Copies a validated id (at most AGRI_ID_MAX bytes) into dst. */
static void id_copy(char *dst, const char *src)
{
	size_t n = strnlen(src, AGRI_ID_MAX);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Finds the key of alert id "<rule>/<station>[/<sensor>]" or "@station". */
static int parse_key(const struct alert_engine *eng, const char *id, int *rule,
		     char *station, char *sensor)
{
	char buf[200], *a, *b;
	const struct rule *R;

	if (strlen(id) >= sizeof(buf))
		return -ENOENT;
	snprintf(buf, sizeof(buf), "%s", id);
	sensor[0] = '\0';
	if (buf[0] == '@') {
		if (!agri_station_id_valid(buf + 1))
			return -ENOENT;
		id_copy(station, buf + 1);
		*rule = -1;
		return 0;
	}
	a = strchr(buf, '/');
	if (!a)
		return -ENOENT;
	*a++ = '\0';
	b = strchr(a, '/');
	if (b)
		*b++ = '\0';
	R = rules_find(eng->rules, buf);
	if (!R || !agri_station_id_valid(a) || (b && !agri_ident_valid(b)))
		return -ENOENT;
	if (station_key(R) != !b)
		return -ENOENT;
	if (!rule_matches(R, a, b ? b : ""))
		return -ENOENT;
	*rule = (int)(R - eng->rules->v);
	id_copy(station, a);
	if (b)
		id_copy(sensor, b);
	return 0;
}

static void who_copy(char *dst, size_t len, const char *who)
{
	size_t i = 0;

	for (; who && who[i] && i < len - 1; i++)
		dst[i] = (who[i] >= 0x20 && who[i] < 0x7f) ? who[i] : '?';
	dst[i] = '\0';
}

int alert_engine_ack(struct alert_engine *eng, const char *id, const char *who,
		     int64_t now_ms, alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx};
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	struct akey *k;
	struct arec *rec;
	int rule, rc;

	if (!id || parse_key(eng, id, &rule, station, sensor) < 0 || rule < 0)
		return -ENOENT;
	k = key_find(eng, rule, station, sensor);
	if (!k || !k->rec)
		return -ENOENT;
	rec = k->rec;
	if (rec->acked)
		return 0;
	if ((rc = touch(eng, k)) < 0)
		return rc;
	rec->acked = true;
	who_copy(rec->who, sizeof(rec->who), who);
	if (now_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = now_ms;
	alert_text_prefix(rec->msg_en, sizeof(rec->msg_en), 0, rec->who, ALERT_LANG_EN);
	alert_text_prefix(rec->msg_vi, sizeof(rec->msg_vi), 0, rec->who, ALERT_LANG_VI);
	memcpy(rec->a.message, primary(eng) == ALERT_LANG_VI ? rec->msg_vi : rec->msg_en,
	       sizeof(rec->a.message));
	if (rec->a.state == AGRI_ALERT_CLEARED) {
		emit(eng, &o, k, ALERT_EV_CLOSED, NULL, -1);
		free(rec);
		k->rec = NULL;
		open_add(eng, k, -1);
	} else {
		rec->a.state = AGRI_ALERT_ACKNOWLEDGED;
		emit(eng, &o, k, ALERT_EV_ACKED, NULL, -1);
	}
	return 1;
}

int alert_engine_get(const struct alert_engine *eng, const char *id,
		     struct agri_alert *out)
{
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	const struct akey *k;
	int rule;

	if (!id || parse_key(eng, id, &rule, station, sensor) < 0 || rule < 0)
		return -ENOENT;
	k = key_find(eng, rule, station, sensor);
	if (!k || !k->rec)
		return -ENOENT;
	*out = k->rec->a;
	return 0;
}

void alert_engine_foreach(const struct alert_engine *eng,
			  void (*fn)(void *ctx, const struct agri_alert *a),
			  void *ctx)
{
	for (size_t i = 0; i < eng->n; i++)
		if (eng->keys[i]->rec)
			fn(ctx, &eng->keys[i]->rec->a);
}

static void key_name(const struct alert_engine *eng, const struct akey *k,
		     char *buf, size_t len)
{
	const struct rule *R = key_rule(eng, k);

	if (!R)
		snprintf(buf, len, "@%s", k->station);
	else if (k->sensor[0])
		snprintf(buf, len, "%s/%s/%s", R->id, k->station, k->sensor);
	else
		snprintf(buf, len, "%s/%s", R->id, k->station);
}

/* Writes k through fn. h: its major hash (0: not deferrable). */
static int export_one(struct alert_engine *eng, struct akey *k, uint64_t h,
		      struct wbuf *w,
		      int (*fn)(void *ctx, const char *key, const void *blob, size_t len),
		      void *ctx)
{
	char name[200];
	int rc;

	w->n = 0;
	key_encode(eng, k, w);
	if (w->oom)
		return -ENOMEM;
	key_name(eng, k, name, sizeof(name));
	if ((rc = fn(ctx, name, w->p, w->n)) < 0)
		return rc;
	k->dirty = false;
	k->saved_major = h;
	return 0;
}

/* Writes waiting keys oldest first, at a steady pace: the queue spread
 * evenly until its newest key has waited defer_ms, so that thousands of
 * keys touched together are written a few per commit, not in one slow
 * one; a key that has waited defer_ms goes at once. In a steady stream
 * each key waits about defer_ms. defer_ms <= 0: all now. */
static int export_waiting(struct alert_engine *eng, int64_t now_ms, int64_t defer_ms,
			  struct wbuf *w,
			  int (*fn)(void *ctx, const char *key, const void *blob, size_t len),
			  void *ctx)
{
	size_t waiting = eng->n_def - eng->def_head;
	int count = 0, rc;

	if (waiting && defer_ms > 0) {
		int64_t dt = eng->def_last_ms ? now_ms - eng->def_last_ms : 0;
		int64_t horizon = eng->defv[eng->n_def - 1]->queued_ms + defer_ms - eng->def_last_ms;

		if (dt > 0)
			eng->def_credit += dt >= horizon ? (double)waiting
					 : (double)waiting * (double)dt / (double)horizon;
	}
	eng->def_last_ms = now_ms;
	while (eng->def_head < eng->n_def) {
		struct akey *k = eng->defv[eng->def_head];

		if (k->dirty) { /* (a key written since just leaves) */
			if (defer_ms > 0 && eng->def_credit < 1.0 && now_ms - k->queued_ms < defer_ms)
				break;
			rc = export_one(eng, k, major_hash(eng, k, w), w, fn, ctx);
			if (rc < 0)
				return rc;
			eng->def_credit = eng->def_credit > 1.0 ? eng->def_credit - 1.0 : 0;
			count++;
		}
		k->deferred = false;
		eng->def_head++;
	}
	if (eng->def_head == eng->n_def) {
		eng->def_head = eng->n_def = 0;
		eng->def_credit = 0;
	} else if (eng->def_head >= eng->n_def / 2) {
		memmove(eng->defv, eng->defv + eng->def_head,
			(eng->n_def - eng->def_head) * sizeof(*eng->defv));
		eng->n_def -= eng->def_head;
		eng->def_head = 0;
	}
	return count;
}

static int export_keys(struct alert_engine *eng, bool dirty_only, int64_t now_ms,
		       int64_t defer_ms,
		       int (*fn)(void *ctx, const char *key, const void *blob, size_t len),
		       void *ctx)
{
	struct wbuf w = {.p = eng->buf, .cap = eng->buf_cap};
	int count = 0, rc = 0;

	if (!dirty_only || eng->dirty_oom) {
		for (size_t i = 0; i < eng->n && rc >= 0; i++) {
			struct akey *k = eng->keys[i];

			if (dirty_only && !k->dirty)
				continue;
			rc = export_one(eng, k, deferrable(eng, k) ? major_hash(eng, k, &w) : 0,
					&w, fn, ctx);
			count += rc >= 0;
		}
		dirty_rebuild(eng);
		goto out;
	}
	/* The keys touched since the last export: written unless only their
	 * evidence changed (those wait on defv). */
	for (size_t i = 0; i < eng->n_dirty && rc >= 0; i++) {
		struct akey *k = eng->dirtyv[i];
		uint64_t h = 0;

		k->in_new = false;
		if (!k->dirty)
			continue;
		if (deferrable(eng, k)) {
			h = major_hash(eng, k, &w);
			if (defer_ms > 0 && h == k->saved_major) {
				if (!k->deferred) {
					k->queued_ms = now_ms;
					k->deferred = key_push(eng, &eng->defv, &eng->n_def,
							       &eng->cap_def, k);
				}
				continue;
			}
		}
		rc = export_one(eng, k, h, &w, fn, ctx);
		count += rc >= 0;
	}
	if (rc >= 0)
		eng->n_dirty = 0;
	if (rc >= 0) {
		int n = export_waiting(eng, now_ms, defer_ms, &w, fn, ctx);

		if (n < 0)
			rc = n;
		else
			count += n;
	}
	if (rc < 0)
		dirty_rebuild(eng); /* what was not written stays dirty */
out:
	eng->buf = w.p;
	eng->buf_cap = w.cap;
	return rc < 0 ? rc : count;
}

int alert_engine_export(struct alert_engine *eng, bool dirty_only,
			int (*fn)(void *ctx, const char *key, const void *blob,
				  size_t len),
			void *ctx)
{
	return export_keys(eng, dirty_only, 0, 0, fn, ctx);
}

int alert_engine_export_due(struct alert_engine *eng, int64_t now_ms, int64_t defer_ms,
			    int (*fn)(void *ctx, const char *key, const void *blob,
				      size_t len),
			    void *ctx)
{
	return export_keys(eng, true, now_ms, defer_ms, fn, ctx);
}

int alert_engine_import(struct alert_engine *eng, const char *key,
			const void *blob, size_t len)
{
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	struct akey *k;
	int rule, rc;

	if (!key || !blob || parse_key(eng, key, &rule, station, sensor) < 0)
		return -ENOENT;
	k = key_get(eng, rule, station, sensor);
	if (!k)
		return eng->refused ? -EDQUOT : -ENOMEM;
	state_reset(eng, k);
	rc = key_decode(eng, k, blob, len);
	k->dirty = false;
	if (rc == 0 && deferrable(eng, k)) {
		struct wbuf w = {.p = eng->buf, .cap = eng->buf_cap};

		k->saved_major = major_hash(eng, k, &w);
		eng->buf = w.p;
		eng->buf_cap = w.cap;
	}
	return rc;
}

int alert_engine_begin(struct alert_engine *eng)
{
	if (eng->in_txn)
		alert_engine_commit(eng);
	eng->in_txn = true;
	eng->txn_first = eng->n;
	return 0;
}

void alert_engine_commit(struct alert_engine *eng)
{
	for (size_t i = 0; i < eng->n_undo; i++)
		eng->undo[i].k->txn_touched = false;
	for (size_t i = eng->txn_first; i < eng->n; i++)
		eng->keys[i]->txn_touched = false;
	undo_clear(eng);
	eng->in_txn = false;
}

void alert_engine_set_undo(struct alert_engine *eng, bool keep)
{
	eng->no_undo = !keep;
}

int64_t alert_engine_started(const struct alert_engine *eng)
{
	return eng->start_ms;
}

void alert_engine_rollback(struct alert_engine *eng)
{
	if (!eng->in_txn)
		return;
	if (eng->no_undo) { /* the caller reloads the engine */
		undo_clear(eng);
		eng->in_txn = false;
		return;
	}
	for (size_t i = eng->n_undo; i-- > 0;) {
		struct undo *u = &eng->undo[i];

		state_reset(eng, u->k);
		if (key_decode(eng, u->k, u->blob, u->len) < 0)
			state_reset(eng, u->k); /* cannot happen: our own blob */
		u->k->dirty = u->dirty;
		u->k->txn_touched = false;
		u->k->saved_major = 0; /* what the rolled-back export wrote is gone */
	}
	while (eng->n > eng->txn_first) {
		struct akey *k = eng->keys[--eng->n];

		key_unlink(eng, k);
		key_free(eng, k);
	}
	dirty_rebuild(eng); /* drops the freed keys */
	undo_clear(eng);
	eng->in_txn = false;
}

void alert_engine_stats(const struct alert_engine *eng,
			struct alert_engine_stats *out)
{
	out->keys = eng->n;
	out->open_alerts = eng->open;
	out->keys_refused = eng->keys_refused;
	out->late_readings = eng->late;
	out->raises_refused = eng->raises_refused;
}

void alert_engine_set_limits(struct alert_engine *eng, size_t keys_per_station,
			     size_t open_per_station)
{
	eng->keys_per_station = keys_per_station;
	eng->open_per_station = open_per_station;
}

int alert_engine_event(struct alert_engine *eng, enum rule_kind kind, const char *station,
		       double value, const char *detail_en, const char *detail_vi,
		       int64_t now_ms, alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx};
	int rc;

	if (!eng || !station || !agri_station_id_valid(station) || !rule_kind_is_event(kind))
		return -EINVAL;
	for (size_t i = 0; i < eng->rules->n; i++) {
		const struct rule *R = &eng->rules->v[i];
		struct akey *k;

		if (R->kind != kind || !rule_matches(R, station, "") ||
		    !rule_active_at(R, now_ms, eng->rules->utc_offset_min))
			continue;
		k = key_get(eng, (int)i, station, "");
		if (!k)
			return eng->refused ? o.count : -ENOMEM;
		if ((rc = touch(eng, k)) < 0)
			return rc;
		k->seen_ms = now_ms;
		if (!rec_open_active(k)) {
			struct alert_text_args a = text_args(R, k, ALERT_TEXT_EVENT);

			a.value = value;
			a.has_value = true;
			a.severity = R->severity;
			a.detail_en = detail_en;
			a.detail_vi = detail_vi;
			if ((rc = raise_alert(eng, &o, k, &a, -1, R->severity, now_ms, now_ms)) < 0)
				return rc;
		}
	}
	return o.count;
}

int alert_engine_forget(struct alert_engine *eng, const char *station, const char *sensor,
			const char *metric,
			int (*fn)(void *ctx, const char *key, const void *blob, size_t len),
			void *ctx)
{
	const struct metric_rules *mr = rules_for(eng, metric);
	int n = 0, rc;

	if (eng->in_txn && !eng->no_undo)
		return 0; /* a rollback could not bring them back */
	for (size_t j = 0; j < mr->n; j++) {
		const struct rule *R = &eng->rules->v[mr->rule[j]];
		struct akey *k;
		char name[200];
		size_t i;

		if (station_key(R) || !metric_used(R, metric) ||
		    !(k = key_find(eng, mr->rule[j], station, sensor)) || k->rec)
			continue;
		key_name(eng, k, name, sizeof(name));
		if (fn && (rc = fn(ctx, name, NULL, 0)) < 0)
			return rc;
		for (i = 0; i < eng->n && eng->keys[i] != k; i++)
			;
		if (i < eng->n) {
			memmove(&eng->keys[i], &eng->keys[i + 1], (eng->n - i - 1) * sizeof(*eng->keys));
			eng->n--;
			if (i < eng->txn_first)
				eng->txn_first--;
		}
		key_unlink(eng, k);
		key_free(eng, k);
		n++;
	}
	if (n)
		dirty_rebuild(eng); /* the lists may name a freed key */
	return n;
}
