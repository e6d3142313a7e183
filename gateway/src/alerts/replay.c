/*
 * Event time (docs/alerts.md, "Reading order"): each reading-driven key
 * (threshold, ladder, window, rate, peak, rising, quality, sensor) sees
 * its readings in reading-time order, whatever order they arrive in, and
 * what people are told follows.
 *
 * - Checkpoints. Before applying a reading a key may save itself (its
 *   condition and alert, without messages or ring points): before a gap of
 *   CK_GAP_MS in its readings (where a station's backlog will land) and at
 *   least every CK_EVERY_MS. It keeps CK_MAX, the oldest as an anchor while
 *   it is within replay_max_s; while the key is younger than that it can
 *   also go back to before its first reading (first_ts).
 * - Holding. A late reading (older than late_after_s) that is older than
 *   what a key has applied puts its station on hold: from then on the
 *   station's late readings are stored but not evaluated, each key only
 *   notes the oldest (hold_from), until the station settles (late_settle_s
 *   without late data on the real clock) or HOLD_MAX readings wait. A fresh
 *   reading out of order is noted the same way and replayed before its
 *   transaction commits. Fresh readings are never held.
 * - Restart. A key's evidence (ev_ts, checkpoints) may wait to be written
 *   (docs/alerts.md "Deferred evidence"), so after a crash the store can
 *   hold readings the key applied but its saved state has not seen. An
 *   imported key is ev_stale until its first reading: if the store holds
 *   others after ev_ts (ae_unseen_rows), that reading is noted from
 *   ev_ts and the replay applies them with it, in reading order.
 * - Replay. A noted key goes back to its newest checkpoint before
 *   hold_from (dropping the newer ones) and applies the store's readings
 *   from there, in (ts, metric) order, read through the engine's source.
 *   Work is bounded per station and per call (FLUSH_*_ROWS_MAX): what does
 *   not fit waits for the next call; a reading older than any checkpoint
 *   is dropped (late_dropped).
 * - Reconciling. A key remembers the episodes it has told (stored,
 *   notified: its last LED_MAX); during a replay the transitions it would
 *   emit are captured instead, one episode at a time, and compared with
 *   them: a new episode is emitted (RAISED, CLEARED), one told with other
 *   times is REVISED, one that did not happen is RETRACTED; the alert keeps
 *   who acknowledged it.
 * - Late news. A transition whose evidence is late is stored and published
 *   at once but notified once its station settles (at most NEWS_HOLD_MS
 *   later), one notification per alert summarising its late episodes
 *   (ALERT_EV_PAST when they are over, ALERT_EV_LATE when one is still on).
 *
 * One thread (the engine's); no I/O but the source's reads.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/topic.h"
#include "alerts/engine_int.h"

#define MERGE_MAX 16 /* metrics of one sensor a replay reads */
#define CACHE_ROWS_MAX 8192 /* rows of one metric a release keeps in memory */

/* The replay in progress (eng->rp): the key, what it had told, and the
 * truth episode being captured. */
struct replay {
	struct akey *k;
	const struct rule *R;
	struct out *o;
	int64_t from;              /* replaying readings after this ts */
	struct arec *told;         /* the alert as told (detached) */
	struct ep led[LED_MAX];    /* episodes as told */
	uint8_t n_led;
	bool matched[LED_MAX], retracted[LED_MAX];
	bool in_ep;                /* a truth episode is open */
	bool ep_from_ck;           /* ... it was open at the checkpoint */
	int64_t ep_start;
	enum alert_severity ep_peak; /* ... the worst it reached (since the checkpoint) */
	uint8_t n_cap;
	bool changed;              /* the open episode had a transition */
	bool told_matched;         /* the told record's episode matched ... */
	int64_t told_start;        /* ... the truth episode starting here */
	struct alert_transition cap[CAP_MAX];
	int64_t last_sev_ms;
};

struct cursor {
	char metric[AGRI_ID_MAX + 1];
	struct alert_row *rows;
	int n, pos;
	int64_t after;
	bool done;
};

/*
 * The rows of one station's sensor that its release has read, per metric:
 * the ~17 keys of a metric (one per rule) replay over the same rows, and
 * each reading them through its own queries made the store's reads most
 * of a replay. Valid for one release (the store does not change under
 * it); the keys' different checkpoints extend a metric's rows back.
 */
struct rowcache_m {
	char metric[AGRI_ID_MAX + 1];
	struct alert_row *rows;
	int n, cap;
	int64_t from;              /* rows cached: those after from ... */
	bool complete;             /* ... to the newest stored (else up to rows[n - 1]) */
};

struct rowcache {
	bool valid;
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	struct rowcache_m m[MERGE_MAX];
	int n;
};

/* Readings of several metrics of one sensor, merged in (ts, metric)
 * order, read ROWS_CHUNK at a time. */
struct merge {
	struct alert_engine *eng;
	const char *station, *sensor;
	struct cursor c[MERGE_MAX];
	int n;
	int64_t until;             /* rows after it are not read (INT64_MAX: all) */
	uint64_t rows;
	int err;
};

bool ae_replayable(const struct rule *R)
{
	switch (R->kind) {
	case RULE_THRESHOLD:
	case RULE_LADDER:
	case RULE_WINDOW:
	case RULE_RATE:
	case RULE_PEAK:
	case RULE_RISING:
	case RULE_QUALITY:
	case RULE_SENSOR:
		return true;
	default:
		return false;
	}
}

bool ae_rule_takes(const struct rule *R, const struct agri_reading *r)
{
	if (R->kind == RULE_QUALITY || R->kind == RULE_SENSOR)
		return r->q != AGRI_Q_MAINT;
	if (R->kind == RULE_NO_DATA)
		return true;
	return r->q == AGRI_Q_OK && r->has_value;
}

struct kx *ae_kx(struct akey *k)
{
	if (!k->x) {
		k->x = calloc(1, sizeof(*k->x));
		if (k->x)
			k->x->hold_from = k->x->led_floor = k->x->nw.end = NONE;
	}
	return k->x;
}

static void news_clear(struct news *nw)
{
	free(nw->en);
	free(nw->vi);
	free(nw->cen);
	free(nw->cvi);
	memset(nw, 0, sizeof(*nw));
	nw->end = NONE;
}

void ae_kx_free(struct akey *k)
{
	if (!k->x)
		return;
	for (unsigned i = 0; i < k->x->n_ck; i++)
		free(k->x->ck[i]);
	news_clear(&k->x->nw);
	free(k->x->led);
	free(k->x);
	k->x = NULL;
}

/* ---- the station's keys and its queue -------------------------------------- */

void ae_station_unlink(struct alert_engine *eng, struct akey *k)
{
	struct akey *st = k->rule >= 0 ? ae_key_find(eng, -1, k->station, "") : NULL;
	struct akey **pp;

	if (!st)
		return;
	for (pp = &st->u.st.keys; *pp && *pp != k; pp = &(*pp)->st_next)
		;
	if (*pp)
		*pp = k->st_next;
	k->st_next = NULL;
}

/* Puts station record st on the queue of stations with work. */
static void queue(struct alert_engine *eng, struct akey *st)
{
	if (st->u.st.queued)
		return;
	st->u.st.queued = ae_key_push(eng, &eng->hq, &eng->n_hq, &eng->cap_hq, st);
}

void ae_late_note(struct alert_engine *eng, struct akey *st, bool late)
{
	if (!late)
		return;
	st->u.st.late_mono = eng->mono_ms;
	st->u.st.backlog_late = true;
	queue(eng, st);
}

/* ---- checkpoints ----------------------------------------------------------- */

static void ck_push(struct alert_engine *eng, struct akey *k)
{
	struct wbuf w = {.p = eng->buf, .cap = eng->buf_cap};
	struct kx *x = ae_kx(k);
	struct ck *c;

	if (!x)
		return;
	ae_key_encode_ck(eng, k, &w);
	eng->buf = w.p;
	eng->buf_cap = w.cap;
	if (w.oom || !(c = malloc(sizeof(*c) + w.n)))
		return; /* a checkpoint less: a later replay goes further back */
	c->ts = k->ev_ts;
	c->len = (uint32_t)w.n;
	memcpy(c->blob, w.p, w.n);
	if (x->n_ck == CK_MAX) {
		/* The oldest is an anchor while it is within replay_max_s. */
		unsigned drop = x->ck[0]->ts < k->ev_ts - eng->rules->replay_max_s * 1000 ? 0 : 1;

		free(x->ck[drop]);
		memmove(&x->ck[drop], &x->ck[drop + 1], (CK_MAX - drop - 1) * sizeof(x->ck[0]));
		x->n_ck--;
	}
	x->ck[x->n_ck++] = c;
}

void ae_ck_maybe(struct alert_engine *eng, struct akey *k, int64_t ts)
{
	const struct kx *x = k->x;
	int64_t base;

	if (!eng->src || k->ev_ts == NONE)
		return;
	if (k->first_ts != NONE && k->ev_ts - k->first_ts > eng->rules->replay_max_s * 1000)
		k->first_ts = NONE; /* too old to replay from the start */
	base = x && x->n_ck ? x->ck[x->n_ck - 1]->ts : k->first_ts;
	if (base == NONE || ts - base >= CK_EVERY_MS ||
	    (ts - k->ev_ts >= CK_GAP_MS && k->ev_ts > base))
		ck_push(eng, k);
}

/* ---- applying one reading -------------------------------------------------- */

int ae_apply(struct alert_engine *eng, struct out *o, struct akey *k, const struct rule *R,
	     const struct agri_reading *r, int64_t now_ms)
{
	ae_ck_maybe(eng, k, r->ts_ms);
	if (k->ev_ts == NONE)
		k->first_ts = r->ts_ms;
	if (r->ts_ms > k->ev_ts)
		k->ev_ts = r->ts_ms;
	o->ev_ms = r->ts_ms;
	switch (R->kind) {
	case RULE_THRESHOLD:
	case RULE_LADDER:
		return ae_levels_feed(eng, o, k, R, r->metric, r->value, r->ts_ms, now_ms);
	case RULE_WINDOW:
	case RULE_RATE:
		return ae_series_feed(eng, o, k, R, r->value, r->ts_ms, now_ms);
	case RULE_PEAK:
	case RULE_RISING:
		return ae_peak_feed(eng, o, k, R, r->value, r->ts_ms, now_ms);
	case RULE_QUALITY:
	case RULE_SENSOR:
		return ae_quality_feed(eng, o, k, R, r, now_ms);
	default:
		return 0;
	}
}

/*
 * A fresh reading that should wait for its station's backlog: the station
 * announced one (its status), and k sums or averages over time (peak,
 * rising, window, rate) and has a gap before this reading, or readings
 * already waiting. A partial night's total would confirm or miss a peak;
 * levels (threshold, ladder, quality) are evaluated at once: the canal is
 * salty now, whatever came before.
 */
bool ae_gap_waits(const struct akey *st, const struct akey *k, const struct rule *R,
		  const struct agri_reading *r)
{
	if (!st->u.st.backlog || !(nights_kind(R->kind) || R->kind == RULE_WINDOW ||
				   R->kind == RULE_RATE))
		return false;
	return (k->x && k->x->hold_from != NONE) ||
	       (k->ev_ts != NONE && r->ts_ms - k->ev_ts >= CK_GAP_MS);
}

/*
 * Whether the store holds readings of k's metrics after k->ev_ts other
 * than r itself (stored just before it is fed): a key imported with
 * evidence that waited to be written (ev_stale) applied them before the
 * restart, and r must be evaluated with them, by a replay. 1, 0, or a
 * negative errno.
 */
int ae_unseen_rows(struct alert_engine *eng, const struct akey *k, const struct rule *R,
		   const struct agri_reading *r)
{
	char names[MERGE_MAX][AGRI_ID_MAX + 1];
	struct alert_row rows[2];
	int n = 0;

	if (R->kind == RULE_THRESHOLD) {
		for (size_t i = 0; i < R->n_levels && n < MERGE_MAX; i++)
			snprintf(names[n++], sizeof(names[0]), "%s", R->levels[i].metric);
	} else if (R->metric[0]) {
		snprintf(names[n++], sizeof(names[0]), "%s", R->metric);
	} else if ((n = eng->src->metrics(eng->src->ctx, k->station, k->sensor, names,
					  MERGE_MAX)) < 0) {
		return n;
	}
	for (int i = 0; i < n; i++) {
		bool own = strcmp(names[i], r->metric) == 0;
		int got = eng->src->rows(eng->src->ctx, k->station, k->sensor, names[i], k->ev_ts,
					 rows, 2);

		if (got < 0)
			return got;
		for (int j = 0; j < got; j++)
			if (!own || rows[j].ts != r->ts_ms)
				return 1;
	}
	return 0;
}

int ae_hold(struct alert_engine *eng, struct akey *st, struct akey *k, int64_t ts, bool late)
{
	struct kx *x = ae_kx(k);

	if (!x)
		return -ENOMEM;
	if (x->hold_from == NONE || ts < x->hold_from)
		x->hold_from = ts;
	if (late)
		st->u.st.holding = true;
	else
		st->u.st.flush_now = true;
	queue(eng, st);
	return 0;
}

/*
 * Counts one reading that some of st's keys held (ae_hold). Readings, not
 * key holds: a reading goes to every rule of its metric (a hundred rules
 * on six metrics: ~17 keys), and counting each made HOLD_MAX a release
 * every ~240 readings (40 minutes of a station's readings), each sending
 * every held key back to a checkpoint up to CK_EVERY_MS (3 h) older.
 */
void ae_held_note(struct alert_engine *eng, struct akey *st)
{
	if (st->u.st.held < UINT32_MAX)
		st->u.st.held++;
	eng->held++;
}

/* ---- what was told: episodes, late news ---------------------------------- */

static bool is_late(const struct alert_engine *eng, int64_t ev_ms, int64_t now_ms)
{
	return ev_ms < now_ms - eng->rules->late_after_s * 1000;
}

static void led_push(struct kx *x, int64_t start, int64_t end, uint8_t flags)
{
	unsigned i;

	if (x->n_led == x->cap_led && x->cap_led < LED_MAX) {
		unsigned cap = x->cap_led ? x->cap_led * 2u : 2u;
		struct ep *p = realloc(x->led, (cap > LED_MAX ? LED_MAX : cap) * sizeof(*p));

		if (p) {
			x->led = p;
			x->cap_led = (uint8_t)(cap > LED_MAX ? LED_MAX : cap);
		}
	}
	if (!x->cap_led)
		return;
	if (x->n_led == x->cap_led) {
		/* forgotten: a replay back there takes what it finds as told */
		int64_t f = x->led[0].end == NONE ? x->led[0].start : x->led[0].end;

		if (x->led_floor == NONE || f > x->led_floor)
			x->led_floor = f;
		memmove(&x->led[0], &x->led[1], (size_t)(x->n_led - 1) * sizeof(x->led[0]));
		x->n_led--;
	}
	for (i = x->n_led; i > 0 && x->led[i - 1].start > start; i--)
		x->led[i] = x->led[i - 1];
	x->led[i] = (struct ep){.start = start, .end = end, .flags = flags};
	x->n_led++;
}

/* The open told episode of x (NULL when none). */
static struct ep *led_open(struct kx *x)
{
	for (unsigned i = x->n_led; i-- > 0;)
		if (x->led[i].end == NONE)
			return &x->led[i];
	return NULL;
}

static struct ep *led_find(struct kx *x, int64_t start)
{
	for (unsigned i = 0; i < x->n_led; i++)
		if (x->led[i].start == start)
			return &x->led[i];
	return NULL;
}

static void led_remove(struct kx *x, struct ep *e)
{
	unsigned i = (unsigned)(e - x->led);

	memmove(&x->led[i], &x->led[i + 1], (x->n_led - i - 1) * sizeof(x->led[0]));
	x->n_led--;
}

/* The message news quotes: the first late episode's (or, clear, the
 * clear's of an episode told before). */
static void news_text(struct news *nw, const char *en, const char *vi, bool clear)
{
	char **e = clear ? &nw->cen : &nw->en, **v = clear ? &nw->cvi : &nw->vi;

	if (*e)
		return;
	*e = strdup(en);
	*v = strdup(vi);
}

static void news_wait(struct alert_engine *eng, const struct akey *k)
{
	struct akey *st = ae_key_find(eng, -1, k->station, "");

	if (!st)
		return;
	if (st->u.st.news_mono == NONE)
		st->u.st.news_mono = eng->mono_ms;
	queue(eng, st);
}

static enum alert_severity sev_of(const char *name)
{
	enum alert_severity s = ALERT_SEV_INFO;

	(void)alert_severity_parse(name, &s);
	return s;
}

/*
 * Every transition the world hears of passes here (not those captured by
 * a replay): it is marked late or not, the key's told episodes follow it,
 * and a late one waits for its station's late news instead of being
 * notified now.
 */
void ae_told(struct alert_engine *eng, struct out *o, struct akey *k,
	     const struct alert_transition *tc)
{
	struct alert_transition *t = (struct alert_transition *)tc;
	const struct rule *R = ae_key_rule(eng, k);
	struct kx *x;
	struct ep *e;

	if (t->event == ALERT_EV_ACKED || t->event == ALERT_EV_CLOSED ||
	    t->event == ALERT_EV_RENOTIFY || t->event == ALERT_EV_ESCALATED ||
	    t->event == ALERT_EV_PAST || t->event == ALERT_EV_LATE)
		return;
	t->late = is_late(eng, t->event_ms, o->now_ms);
	if (!R || !ae_replayable(R) || !(x = ae_kx(k))) {
		if (t->late && R && R->kind == RULE_NO_DATA)
			t->late = false; /* its clear is summarised by its own text */
		return;
	}
	if (k->rec && (t->event == ALERT_EV_RAISED)) {
		k->rec->late = t->late;
		k->rec->arrived_ms = o->now_ms;
	}
	switch (t->event) {
	case ALERT_EV_RAISED:
		led_push(x, t->event_ms, NONE, t->late && !eng->quiet ? EP_LATE | EP_PENDING : EP_LIVE);
		if ((e = led_find(x, t->event_ms)))
			ep_set_peak(e, sev_of(t->peak ? t->peak : t->alert.severity));
		if (t->late && !eng->quiet) {
			x->nw.n++;
			news_text(&x->nw, t->message_en, t->message_vi, false);
			news_wait(eng, k);
		}
		break;
	case ALERT_EV_CLEARED:
		e = led_find(x, t->alert.raised_at_ms);
		if (!e || e->end != NONE)
			e = led_open(x);
		if (e)
			e->end = t->event_ms;
		if (t->late && !eng->quiet && !(e && e->flags & EP_PENDING) && !t->history) {
			/* an episode told live ended in the late data */
			x->nw.cleared = true;
			if (x->nw.end == NONE || t->event_ms > x->nw.end)
				x->nw.end = t->event_ms;
			news_text(&x->nw, t->message_en, t->message_vi, true);
			news_wait(eng, k);
		}
		break;
	case ALERT_EV_SEVERITY:
		e = led_find(x, t->alert.raised_at_ms);
		if (!e || e->end != NONE)
			e = led_open(x);
		if (e && sev_of(t->alert.severity) > ep_peak(e))
			ep_set_peak(e, sev_of(t->alert.severity));
		break;
	case ALERT_EV_REVISED:
		if ((e = led_find(x, t->old_start_ms))) {
			e->start = t->event_ms;
			e->end = t->end_ms == ALERT_TS_NONE ? NONE : t->end_ms;
			if (t->peak)
				ep_set_peak(e, sev_of(t->peak));
			if (t->notify && t->late && !eng->quiet) {
				/* told over, on again: news */
				e->flags |= EP_PENDING;
				x->nw.n++;
				news_text(&x->nw, t->message_en, t->message_vi, false);
				news_wait(eng, k);
			}
		}
		break;
	case ALERT_EV_RETRACTED:
		if ((e = led_find(x, t->event_ms)))
			led_remove(x, e);
		break;
	default:
		break;
	}
	if (t->late) {
		t->notify = false;
		t->notify_escalation = false;
	}
}

/* Emits t as built (not captured). */
static void emit_t(struct alert_engine *eng, struct out *o, struct akey *k,
		   struct alert_transition *t)
{
	t->arrived_ms = o->now_ms;
	ae_told(eng, o, k, t);
	o->count++;
	if (o->fn)
		o->fn(o->ctx, t);
}

/* A transition of k's alert rec (or of a record made from a told
 * episode when the alert is gone). */
static void t_init(struct alert_engine *eng, struct alert_transition *t, const struct akey *k,
		   const struct arec *rec, enum alert_event ev)
{
	const struct rule *R = ae_key_rule(eng, k);

	memset(t, 0, sizeof(*t));
	t->event = ev;
	t->rule = R;
	t->night_day = -1;
	t->end_ms = t->old_start_ms = t->old_end_ms = ALERT_TS_NONE;
	if (rec) {
		t->alert = rec->a;
		t->acked = rec->acked;
		memcpy(t->message_en, rec->msg_en, sizeof(t->message_en));
		memcpy(t->message_vi, rec->msg_vi, sizeof(t->message_vi));
		snprintf(t->who, sizeof(t->who), "%s", rec->who);
		t->notify_escalation = rec->escalated;
	} else {
		struct arec tmp;

		memset(&tmp, 0, sizeof(tmp));
		ae_rec_fill_ids(&tmp, R, k);
		t->alert = tmp.a;
		snprintf(t->alert.metric, sizeof(t->alert.metric), "%s", R->metric);
		snprintf(t->alert.severity, sizeof(t->alert.severity), "%s",
			 alert_severity_name(R->severity));
		t->alert.state = AGRI_ALERT_CLEARED;
	}
}

/* ---- capture and reconcile ------------------------------------------------- */

bool ae_capture(struct alert_engine *eng, const struct akey *k,
		const struct alert_transition *t)
{
	struct replay *rp = eng->rp;

	if (!rp || rp->k != k)
		return false;
	if (t->event == ALERT_EV_RAISED) {
		rp->in_ep = true;
		rp->ep_from_ck = false;
		rp->ep_start = t->event_ms;
		rp->ep_peak = sev_of(t->alert.severity);
		rp->n_cap = 0;
		rp->changed = true;
	}
	if (!rp->in_ep)
		return true; /* (a clear of nothing: cannot happen) */
	if (t->event == ALERT_EV_SEVERITY) {
		rp->changed = true;
		rp->last_sev_ms = t->event_ms;
		if (sev_of(t->alert.severity) > rp->ep_peak)
			rp->ep_peak = sev_of(t->alert.severity);
		if (rp->n_cap == CAP_MAX - 1)
			rp->n_cap--; /* keep the raise and the latest changes */
	}
	if (rp->n_cap < CAP_MAX)
		rp->cap[rp->n_cap++] = *t;
	return true;
}

static bool overlap(int64_t s1, int64_t e1, int64_t s2, int64_t e2)
{
	int64_t a = e1 == NONE ? INT64_MAX : e1, b = e2 == NONE ? INT64_MAX : e2;

	return s1 <= b && s2 <= a;
}

/* A told episode that a replay from rp->from can change. */
static bool relevant(const struct replay *rp, const struct ep *e)
{
	return e->end == NONE || e->end > rp->from;
}

static void emit_retract(struct alert_engine *eng, struct replay *rp, const struct ep *e)
{
	struct alert_transition t;
	bool was_open = e->end == NONE;

	t_init(eng, &t, rp->k, was_open ? rp->told : NULL, ALERT_EV_RETRACTED);
	t.event_ms = e->start;
	t.end_ms = e->end == NONE ? ALERT_TS_NONE : e->end;
	t.alert.state = AGRI_ALERT_CLEARED;
	t.store = true;
	t.publish = was_open && rp->told && !rp->told->acked;
	t.retain_empty = was_open && !t.publish;
	/* told as active, live: people must hear it is not */
	t.notify = was_open && (e->flags & EP_LIVE);
	t.notify_escalation = t.notify && t.notify_escalation;
	emit_t(eng, rp->o, rp->k, &t);
}

static void emit_revised(struct alert_engine *eng, struct replay *rp, const struct ep *e,
			 int64_t start, int64_t end, enum alert_severity peak)
{
	struct alert_transition t;

	t_init(eng, &t, rp->k, rp->k->rec ? rp->k->rec : NULL, ALERT_EV_REVISED);
	t.peak = alert_severity_name(peak);
	t.event_ms = start;
	t.end_ms = end == NONE ? ALERT_TS_NONE : end;
	t.old_start_ms = e->start;
	t.old_end_ms = e->end == NONE ? ALERT_TS_NONE : e->end;
	t.store = true;
	emit_t(eng, rp->o, rp->k, &t);
}

/* Emits the captured transitions cap[from..n) of a new truth episode
 * that started at start; over (closed) with a told one after it, it is
 * history, not the alert's current state. */
static void emit_caps(struct alert_engine *eng, struct replay *rp, unsigned from, int64_t start,
		      bool closed)
{
	bool history = false;

	for (unsigned i = 0; closed && i < rp->n_led && !history; i++)
		history = rp->led[i].start > start && !(rp->matched[i] && rp->retracted[i]);
	/* the transitions held may not include the worst (CAP_MAX): the raise says it */
	if (from == 0 && rp->n_cap && rp->cap[0].event == ALERT_EV_RAISED)
		rp->cap[0].peak = alert_severity_name(rp->ep_peak);
	for (unsigned i = from; i < rp->n_cap; i++) {
		rp->cap[i].history = history;
		if (history)
			rp->cap[i].publish = rp->cap[i].retain_empty = false;
		emit_t(eng, rp->o, rp->k, &rp->cap[i]);
	}
}

/*
 * The truth episode [start, end] (end NONE: still on) is complete:
 * matched against the episodes told, the first one it overlaps; told
 * ones before it that nothing matched did not happen.
 */
static void resolve(struct alert_engine *eng, struct replay *rp, int64_t start, int64_t end)
{
	int m = -1;

	for (unsigned i = 0; i < rp->n_led; i++) {
		const struct ep *e = &rp->led[i];

		if (rp->matched[i] || !relevant(rp, e))
			continue;
		if (overlap(e->start, e->end, start, end)) {
			/* an episode still on matches the one told as on */
			if (m < 0 || (end == NONE && e->end == NONE))
				m = (int)i;
			continue;
		}
		if (e->end != NONE && e->end < start) {
			rp->matched[i] = rp->retracted[i] = true;
			emit_retract(eng, rp, e);
		}
	}
	if (end == NONE && m >= 0) {
		/* told ones it swallows, over before it went on: they merge */
		for (unsigned i = 0; i < rp->n_led; i++)
			if ((int)i != m && !rp->matched[i] && relevant(rp, &rp->led[i]) &&
			    overlap(rp->led[i].start, rp->led[i].end, start, end)) {
				rp->matched[i] = rp->retracted[i] = true;
				emit_retract(eng, rp, &rp->led[i]);
			}
	}
	if (m < 0) {
		int64_t floor_ = rp->k->x ? rp->k->x->led_floor : NONE;

		/* a new episode, unless it lies where the told ones were forgotten */
		if (!rp->ep_from_ck && (floor_ == NONE || (end != NONE ? end : start) > floor_))
			emit_caps(eng, rp, 0, start, end != NONE);
		return;
	}
	rp->matched[m] = true;
	{
		struct ep e = rp->led[m];
		/* the worst it reached (from a checkpoint: as the checkpoint had it) */
		enum alert_severity peak = rp->ep_peak;

		if (rp->told && e.start == rp->told->a.raised_at_ms) {
			rp->told_matched = true;
			rp->told_start = start;
			rp->told->a.raised_at_ms = start;
		}
		if (e.end != NONE && end == NONE) {
			/* told over, still on: that end did not happen, it goes on */
			struct alert_transition t;

			t_init(eng, &t, rp->k, rp->k->rec, ALERT_EV_REVISED);
			t.peak = alert_severity_name(peak);
			t.event_ms = start;
			t.end_ms = ALERT_TS_NONE;
			t.old_start_ms = e.start;
			t.old_end_ms = e.end;
			t.store = t.publish = t.notify = true;
			emit_t(eng, rp->o, rp->k, &t);
			return;
		}
		if (e.start != start || (e.end != NONE && e.end != end) || peak != ep_peak(&e))
			emit_revised(eng, rp, &e, start, e.end == NONE ? NONE : end, peak);
		if (e.end == NONE && end != NONE) {
			/* told on, over in truth: its clear */
			for (unsigned i = 0; i < rp->n_cap; i++)
				if (rp->cap[i].event == ALERT_EV_CLEARED) {
					struct alert_transition *t = &rp->cap[i];

					t->acked = rp->told ? rp->told->acked : t->acked;
					t->retain_empty = t->acked;
					t->publish = !t->retain_empty;
					if (rp->told) {
						struct arec *w = rp->told;

						t->notify_escalation = w->escalated;
						/* the told record, cleared (kept until acked) */
						w->a.state = AGRI_ALERT_CLEARED;
						w->a.value = t->alert.value;
						w->a.has_value = t->alert.has_value;
						w->a.updated_at_ms = t->alert.updated_at_ms;
						w->level = -1;
						memcpy(w->a.message, t->alert.message, sizeof(w->a.message));
						memcpy(w->msg_en, t->message_en, sizeof(w->msg_en));
						memcpy(w->msg_vi, t->message_vi, sizeof(w->msg_vi));
					}
					emit_t(eng, rp->o, rp->k, t);
				}
		}
	}
}

/* A record restored from a checkpoint keeps no messages: when it is
 * not the one told (whose messages it takes), it gets its kind's text. */
static void rec_text(struct alert_engine *eng, struct akey *k)
{
	const struct rule *R = ae_key_rule(eng, k);
	struct arec *rec = k->rec;
	enum alert_text_what what = R->kind == RULE_WINDOW ? ALERT_TEXT_WINDOW
				    : R->kind == RULE_RATE ? ALERT_TEXT_RATE
				    : nights_kind(R->kind) ? ALERT_TEXT_PEAK
				    : R->kind == RULE_QUALITY ? ALERT_TEXT_QUALITY
				    : R->kind == RULE_SENSOR ? ALERT_TEXT_SENSOR : ALERT_TEXT_LEVEL;
	struct alert_text_args a = ae_text_args(R, k, what);

	if (rec->msg_en[0])
		return;
	a.metric = rec->a.metric;
	a.value = rec->a.value;
	a.has_value = rec->a.has_value;
	a.threshold = rec->a.threshold;
	(void)alert_severity_parse(rec->a.severity, &a.severity);
	a.cleared = rec->a.state == AGRI_ALERT_CLEARED;
	if (rec->level >= 0 && (size_t)rec->level < R->n_levels)
		a.op = R->levels[rec->level].op;
	if (nights_kind(R->kind))
		a.night_day = k->u.pk.run_night;
	alert_text_build(&a, ALERT_LANG_EN, rec->msg_en, sizeof(rec->msg_en));
	alert_text_build(&a, ALERT_LANG_VI, rec->msg_vi, sizeof(rec->msg_vi));
	memcpy(rec->a.message, ae_primary(eng) == ALERT_LANG_VI ? rec->msg_vi : rec->msg_en,
	       sizeof(rec->a.message));
}

/* After the replay: the alert as it stands. The truth's record, with
 * who acknowledged it and its timers when it is the episode told. */
static void merge_rec(struct alert_engine *eng, struct replay *rp)
{
	struct akey *k = rp->k;
	struct arec *truth = k->rec, *told = rp->told;

	rp->told = NULL;
	if (!told)
		return;
	if (!truth) {
		/* over in truth: a told record still waiting for its ack stays */
		struct ep *last = k->x && k->x->n_led ? &k->x->led[k->x->n_led - 1] : NULL;

		if (told->a.state == AGRI_ALERT_CLEARED && !told->acked && last &&
		    last->start == told->a.raised_at_ms) {
			k->rec = told;
			ae_open_add(eng, k, +1);
			return;
		}
		free(told);
		return;
	}
	if (rp->told_matched && truth->a.raised_at_ms == rp->told_start) {
		/* the same episode: people's side of it is the told one */
		if (!truth->msg_en[0]) {
			memcpy(truth->msg_en, told->msg_en, sizeof(truth->msg_en));
			memcpy(truth->msg_vi, told->msg_vi, sizeof(truth->msg_vi));
			memcpy(truth->a.message, told->a.message, sizeof(truth->a.message));
		}
		if (truth->a.state == AGRI_ALERT_CLEARED && told->acked) {
			/* acknowledged, and over: closed */
			free(truth);
			k->rec = NULL;
			ae_open_add(eng, k, -1);
			free(told);
			return;
		}
		{
			truth->acked = told->acked;
			snprintf(truth->who, sizeof(truth->who), "%s", told->who);
			truth->escalated = told->escalated;
			truth->active_since_ms = told->active_since_ms;
			truth->last_notify_ms = told->last_notify_ms;
			truth->late = told->late;
			truth->arrived_ms = told->arrived_ms;
			if (truth->acked && truth->a.state == AGRI_ALERT_ACTIVE)
				truth->a.state = AGRI_ALERT_ACKNOWLEDGED;
		}
	}
	free(told);
	rec_text(eng, k);
}

/* ---- reading back ---------------------------------------------------------- */

static int merge_add(struct merge *m, const char *metric, int64_t after)
{
	struct cursor *c;

	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->c[i].metric, metric))
			return 0;
	if (m->n == MERGE_MAX)
		return 0; /* a sensor with more metrics: the rest is not replayed */
	c = &m->c[m->n];
	snprintf(c->metric, sizeof(c->metric), "%s", metric);
	c->rows = m->eng->rowbuf + (size_t)m->n * ROWS_CHUNK;
	c->n = c->pos = 0;
	c->after = after;
	c->done = false;
	m->n++;
	return 0;
}

/* Sets up m for key k's metrics, from after. */
static int merge_open(struct alert_engine *eng, struct merge *m, const struct akey *k,
		      const struct rule *R, int64_t after)
{
	memset(m, 0, sizeof(*m));
	m->eng = eng;
	m->station = k->station;
	m->sensor = k->sensor;
	m->until = INT64_MAX;
	if (!eng->rowbuf &&
	    !(eng->rowbuf = malloc((size_t)MERGE_MAX * ROWS_CHUNK * sizeof(*eng->rowbuf))))
		return -ENOMEM;
	if (R->kind == RULE_THRESHOLD) {
		for (size_t i = 0; i < R->n_levels; i++)
			merge_add(m, R->levels[i].metric, after);
	} else if (R->metric[0]) {
		merge_add(m, R->metric, after);
	} else {
		char names[MERGE_MAX][AGRI_ID_MAX + 1];
		int n = eng->src->metrics(eng->src->ctx, k->station, k->sensor, names, MERGE_MAX);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			merge_add(m, names[i], after);
	}
	return 0;
}

void ae_rowcache_free(struct alert_engine *eng)
{
	struct rowcache *rc = eng->rcache;

	if (!rc)
		return;
	for (int i = 0; i < MERGE_MAX; i++)
		free(rc->m[i].rows);
	free(rc);
	eng->rcache = NULL;
}

static void rowcache_drop(struct alert_engine *eng)
{
	if (eng->rcache)
		eng->rcache->valid = false;
}

/* Appends the rows of e's metric after `after` to e, up to its cap.
 * Returns 0 or a negative errno; e->complete once the newest is in. */
static int rowcache_read(struct alert_engine *eng, const struct rowcache *rc,
			 struct rowcache_m *e, int64_t after)
{
	e->complete = false;
	while (e->n < CACHE_ROWS_MAX) {
		int want = CACHE_ROWS_MAX - e->n < ROWS_CHUNK ? CACHE_ROWS_MAX - e->n : ROWS_CHUNK;
		int n;

		if (e->cap - e->n < want) {
			int cap = e->cap ? e->cap * 2 : 2 * ROWS_CHUNK;
			struct alert_row *p;

			if (cap > CACHE_ROWS_MAX)
				cap = CACHE_ROWS_MAX;
			if (!(p = realloc(e->rows, (size_t)cap * sizeof(*p))))
				return 0; /* what it has: the rest is read from the store */
			e->rows = p;
			e->cap = cap;
		}
		n = eng->src->rows(eng->src->ctx, rc->station, rc->sensor, e->metric, after,
				   e->rows + e->n, (size_t)want);
		if (n < 0)
			return n;
		e->n += n;
		if (n < want) {
			e->complete = true;
			break;
		}
		after = e->rows[e->n - 1].ts;
	}
	return 0;
}

/* The cached rows of metric for m's sensor, holding those after `after`
 * (NULL: read them from the store, e.g. more than CACHE_ROWS_MAX). */
static struct rowcache_m *rowcache_get(struct merge *m, const char *metric, int64_t after,
				       int *err)
{
	struct alert_engine *eng = m->eng;
	struct rowcache *rc = eng->rcache;
	struct rowcache_m *e = NULL;

	*err = 0;
	if (!rc && !(rc = eng->rcache = calloc(1, sizeof(*rc))))
		return NULL; /* (read from the store instead) */
	if (!rc->valid || strcmp(rc->station, m->station) || strcmp(rc->sensor, m->sensor)) {
		snprintf(rc->station, sizeof(rc->station), "%s", m->station);
		snprintf(rc->sensor, sizeof(rc->sensor), "%s", m->sensor);
		rc->n = 0;
		rc->valid = true;
	}
	for (int i = 0; i < rc->n && !e; i++)
		if (!strcmp(rc->m[i].metric, metric))
			e = &rc->m[i];
	if (!e) {
		if (rc->n == MERGE_MAX)
			return NULL;
		e = &rc->m[rc->n++];
		snprintf(e->metric, sizeof(e->metric), "%s", metric);
		e->n = 0;
		e->from = after;
		if ((*err = rowcache_read(eng, rc, e, after)) < 0) {
			rc->n--;
			return NULL;
		}
		return e;
	}
	if (after < e->from) {
		/* a key with an older checkpoint than the keys before it: read
		 * again from there (rare: a metric's keys checkpoint together) */
		e->n = 0;
		e->from = after;
		if ((*err = rowcache_read(eng, rc, e, after)) < 0) {
			e->n = 0;
			e->complete = false;
			return NULL;
		}
	}
	return e;
}

/* Fills cursor c (its metric's rows after c->after): from the release's
 * cache, else from the store. Returns the rows or a negative errno. */
static int cursor_fill(struct merge *m, struct cursor *c)
{
	struct rowcache_m *e = rowcache_get(m, c->metric, c->after, &m->err);
	int lo, hi, n;

	if (m->err < 0)
		return m->err;
	if (e) {
		lo = 0;
		hi = e->n;
		while (lo < hi) { /* the first row after c->after */
			int mid = lo + (hi - lo) / 2;

			if (e->rows[mid].ts > c->after)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (lo < e->n || e->complete) {
			n = e->n - lo < ROWS_CHUNK ? e->n - lo : ROWS_CHUNK;
			memcpy(c->rows, e->rows + lo, (size_t)n * sizeof(*c->rows));
			c->done = lo + n == e->n && e->complete;
			return n;
		}
	}
	n = m->eng->src->rows(m->eng->src->ctx, m->station, m->sensor, c->metric, c->after,
			      c->rows, ROWS_CHUNK);
	if (n >= 0)
		c->done = n < ROWS_CHUNK;
	return n;
}

static void copy_id(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The next row in (ts, metric) order into *r; false at the end or on an
 * error (m->err). */
static bool merge_next(struct merge *m, struct agri_reading *r)
{
	struct cursor *best = NULL;

	for (int i = 0; i < m->n; i++) {
		struct cursor *c = &m->c[i];

		if (c->pos == c->n && !c->done) {
			int n = cursor_fill(m, c);

			if (n < 0) {
				m->err = n;
				return false;
			}
			c->n = n;
			c->pos = 0;
			if (n)
				c->after = c->rows[n - 1].ts;
		}
		if (c->pos == c->n || c->rows[c->pos].ts > m->until)
			continue;
		if (!best || c->rows[c->pos].ts < best->rows[best->pos].ts ||
		    (c->rows[c->pos].ts == best->rows[best->pos].ts &&
		     strcmp(c->metric, best->metric) < 0))
			best = c;
	}
	if (!best)
		return false;
	{
		const struct alert_row *w = &best->rows[best->pos++];

		/* (no snprintf: a replay copies tens of millions of rows) */
		memset(r, 0, sizeof(*r));
		r->ts_ms = w->ts;
		r->value = w->value;
		r->has_value = w->has_value;
		r->q = w->q;
		copy_id(r->sensor, sizeof(r->sensor), m->sensor);
		copy_id(r->metric, sizeof(r->metric), best->metric);
		copy_id(r->why, sizeof(r->why), w->why);
	}
	m->rows++;
	return true;
}

/* A window or rate key restored from a checkpoint: its ring points again
 * (the ok readings of its window up to its newest one). */
static int ring_rebuild(struct alert_engine *eng, struct akey *k, const struct rule *R)
{
	struct merge m;
	struct agri_reading r;
	int64_t last = NONE;
	int rc;

	if ((R->kind != RULE_WINDOW && R->kind != RULE_RATE) || k->last_ts == NONE)
		return 0;
	if ((rc = merge_open(eng, &m, k, R, k->last_ts - R->window_s * 1000)) < 0)
		return rc;
	m.until = k->last_ts;
	while (merge_next(&m, &r)) {
		if (!ae_rule_takes(R, &r) || r.ts_ms <= last)
			continue;
		if ((rc = ae_ring_push(&k->u.lv, (size_t)R->max_points, r.ts_ms, r.value)) < 0)
			return rc;
		last = r.ts_ms;
	}
	eng->replayed_rows += m.rows;
	return m.err;
}

/* ---- replaying a key -------------------------------------------------------- */

/* The newest checkpoint of k before ts (NULL: none; *genesis: start from
 * before its first reading instead). */
static struct ck *ck_before(struct alert_engine *eng, struct akey *k, int64_t ts, bool *genesis)
{
	struct kx *x = k->x;

	*genesis = false;
	for (unsigned i = x ? x->n_ck : 0; i-- > 0;)
		if (x->ck[i]->ts < ts)
			return x->ck[i];
	if (k->first_ts != NONE && k->ev_ts - k->first_ts <= eng->rules->replay_max_s * 1000)
		*genesis = true;
	return NULL;
}

/* Drops the checkpoints of k at or after ts (made without the readings
 * now coming). */
static void ck_drop_from(struct kx *x, int64_t ts)
{
	while (x && x->n_ck && x->ck[x->n_ck - 1]->ts >= ts)
		free(x->ck[--x->n_ck]);
}

/*
 * Replays k from its held readings (x->hold_from) to its newest, and
 * reconciles. Returns the rows read (>= 0) or a negative errno.
 */
static int64_t replay_key(struct alert_engine *eng, struct out *o, struct akey *k)
{
	const struct rule *R = ae_key_rule(eng, k);
	struct kx *x = k->x;
	int64_t hold = x->hold_from, after;
	struct replay *rp = eng->rpbuf;
	struct merge m;
	struct agri_reading r;
	struct ck *c = NULL;
	bool genesis = false, rewind = k->ev_ts != NONE && hold <= k->ev_ts;
	int rc;

	x->hold_from = NONE;
	if (!rewind) { /* nothing newer applied: on from where it is */
		after = k->ev_ts != NONE ? k->ev_ts : hold - 1;
	} else {
		c = ck_before(eng, k, hold, &genesis);
		if (!c && !genesis) {
			eng->late_dropped++;
			return 0;
		}
		after = c ? c->ts : (hold < k->first_ts ? hold : k->first_ts) - 1;
	}
	if (!rp && !(rp = eng->rpbuf = malloc(sizeof(*rp))))
		return -ENOMEM;
	memset(rp, 0, offsetof(struct replay, cap));
	rp->k = k;
	rp->R = R;
	rp->o = o;
	rp->from = after;
	if (rewind) {
		int64_t first = k->first_ts;

		ck_drop_from(x, hold);
		rp->told = k->rec;
		if (k->rec) {
			k->rec = NULL;
			ae_open_add(eng, k, -1);
		}
		ae_cond_reset(eng, k);
		if (c) {
			struct ck *keep = c;

			/* c stays in the ring (it is before hold) */
			if ((rc = ae_ck_decode(eng, k, keep->blob, keep->len)) < 0 ||
			    (rc = ring_rebuild(eng, k, R)) < 0)
				goto fail;
		} else {
			k->first_ts = first;
			k->ev_ts = NONE;
		}
		if (k->rec && rp->told && k->rec->a.raised_at_ms == rp->told->a.raised_at_ms) {
			memcpy(k->rec->msg_en, rp->told->msg_en, sizeof(k->rec->msg_en));
			memcpy(k->rec->msg_vi, rp->told->msg_vi, sizeof(k->rec->msg_vi));
			memcpy(k->rec->a.message, rp->told->a.message, sizeof(k->rec->a.message));
			memcpy(k->rec->who, rp->told->who, sizeof(k->rec->who));
		}
		if (ae_rec_open_active(k)) {
			rp->in_ep = true;
			rp->ep_from_ck = true;
			rp->ep_start = k->rec->a.raised_at_ms;
			rp->ep_peak = (enum alert_severity)k->rec->peak;
		}
	} else {
		rp->told = NULL;
		if (ae_rec_open_active(k)) {
			rp->in_ep = true;
			rp->ep_from_ck = true;
			rp->ep_start = k->rec->a.raised_at_ms;
			rp->ep_peak = (enum alert_severity)k->rec->peak;
		}
	}
	if (x->n_led)
		memcpy(rp->led, x->led, x->n_led * sizeof(rp->led[0]));
	rp->n_led = x->n_led;
	if ((rc = merge_open(eng, &m, k, R, after)) < 0)
		goto fail;
	eng->rp = rp;
	eng->replays++;
	while (merge_next(&m, &r)) {
		bool was = ae_rec_open_active(k);

		if (!ae_rule_takes(R, &r))
			continue;
		if (R->kind == RULE_SENSOR && !(r.q == AGRI_Q_SUSPECT && r.why[0]) &&
		    !ae_sensor_counting(k, r.metric))
			continue;
		if ((rc = ae_apply(eng, o, k, R, &r, o->now_ms)) < 0)
			break;
		if (was && !ae_rec_open_active(k) && rp->in_ep) {
			/* the truth episode ended at this reading */
			eng->rp = NULL;
			rp->in_ep = false;
			resolve(eng, rp, rp->ep_start, r.ts_ms);
			eng->rp = rp;
			rp->n_cap = 0;
			rp->ep_from_ck = false;
		}
	}
	eng->rp = NULL;
	eng->replayed_rows += m.rows;
	if (m.err < 0 && rc >= 0)
		rc = m.err;
	if (rc < 0)
		goto fail;
	if (rp->in_ep)
		resolve(eng, rp, rp->ep_start, NONE);
	for (unsigned i = 0; i < rp->n_led; i++)
		if (!rp->matched[i] && relevant(rp, &rp->led[i])) {
			rp->matched[i] = rp->retracted[i] = true;
			emit_retract(eng, rp, &rp->led[i]);
		}
	if (rewind) {
		enum alert_severity told_sev = rp->told ? ae_rec_severity(rp->told) : ALERT_SEV_INFO;
		bool told_acked = rp->told && rp->told->acked;
		bool same = rp->told_matched && k->rec && k->rec->a.raised_at_ms == rp->told_start &&
			    rp->told && rp->told->a.state != AGRI_ALERT_CLEARED;

		merge_rec(eng, rp);
		/* The same episode still on at another severity: say so (a rise
		 * re-activates an acknowledged alert, as ladders do). */
		if (same && ae_rec_open_active(k) && ae_rec_severity(k->rec) != told_sev) {
			struct alert_transition t;

			if (ae_rec_severity(k->rec) > told_sev && told_acked) {
				k->rec->acked = false;
				k->rec->who[0] = '\0';
				k->rec->a.state = AGRI_ALERT_ACTIVE;
				k->rec->active_since_ms = o->now_ms;
			}
			t_init(eng, &t, k, k->rec, ALERT_EV_SEVERITY);
			t.store = t.publish = t.notify = true;
			t.event_ms = rp->last_sev_ms ? rp->last_sev_ms : k->rec->a.updated_at_ms;
			emit_t(eng, o, k, &t);
		}
	}
	return (int64_t)m.rows;
fail:
	eng->rp = NULL;
	if (rp->told) {
		if (!k->rec) {
			k->rec = rp->told;
			ae_open_add(eng, k, +1);
		} else {
			free(rp->told);
		}
		rp->told = NULL;
	}
	return rc;
}

/* ---- no_data: the true extent of a gap -------------------------------------- */

static void hhmm(const struct alert_engine *eng, int64_t ms, int64_t ref, char *buf, size_t len)
{
	alert_text_time(buf, len, ms, ref, eng->rules->utc_offset_min);
}

/* Closes station st's no_data alert k once its backlog has settled,
 * saying what is really missing. */
static void nodata_close(struct alert_engine *eng, struct out *o, struct akey *st,
			 struct akey *k, const struct rule *R)
{
	struct alert_text_args a = ae_text_args(R, k, ALERT_TEXT_OFFLINE);
	int64_t holes[3][2], to = st->ev_ts;
	char d_en[256], d_vi[256], t1[32], t2[32];
	size_t pe = 0, pv = 0;
	int n = 0;

	if (k->rec->gap_from != NONE && to != NONE && eng->src && eng->src->holes)
		n = eng->src->holes(eng->src->ctx, k->station, k->rec->gap_from, to,
				    R->after_s * 1000, holes, 3);
	if (n < 0)
		n = 0;
	d_en[0] = d_vi[0] = '\0';
	if (k->rec->gap_from != NONE && to != NONE) {
		if (n == 0) {
			snprintf(d_en, sizeof(d_en), "; its backlog fills the gap, no data missing");
			snprintf(d_vi, sizeof(d_vi), "; dữ liệu tồn đọng đã lấp đầy khoảng trống, không thiếu số liệu");
		}
		for (int i = 0; i < n; i++) {
			hhmm(eng, holes[i][0], o->now_ms, t1, sizeof(t1));
			hhmm(eng, holes[i][1], o->now_ms, t2, sizeof(t2));
			pe += (size_t)snprintf(d_en + pe, sizeof(d_en) - pe, "%s%s–%s",
					       i ? ", " : "; data missing ", t1, t2);
			pv += (size_t)snprintf(d_vi + pv, sizeof(d_vi) - pv, "%s%s–%s",
					       i ? ", " : "; thiếu số liệu ", t1, t2);
			if (pe >= sizeof(d_en) || pv >= sizeof(d_vi))
				break;
		}
	}
	a.metric = R->metric;
	a.cleared = true;
	a.detail_en = d_en;
	a.detail_vi = d_vi;
	k->rec->back = false;
	o->ev_ms = n > 0 ? holes[n - 1][1] : o->now_ms;
	ae_clear_alert(eng, o, k, &a, o->now_ms, o->now_ms);
	o->ev_ms = NONE;
}

int ae_nodata_back(struct alert_engine *eng, struct out *o, struct akey *st, struct akey *k,
		   const struct rule *R, const struct agri_reading *r, bool late, int64_t now_ms)
{
	(void)r;
	if (!late && !st->u.st.backlog && !st->u.st.holding) {
		ae_nodata_clear(eng, o, k, R, now_ms);
		return 0;
	}
	if (!k->rec->back) {
		k->rec->back = true;
		queue(eng, st);
	}
	return 0;
}

/* ---- late news ------------------------------------------------------------- */

/* One notification for k's late news (see the file comment): its late
 * episodes (those told while pending) summarised. */
static void news_send(struct alert_engine *eng, struct out *o, struct akey *k)
{
	struct kx *x = k->x;
	struct news *nw = &x->nw;
	struct alert_transition t;
	int64_t first = NONE, last = NONE, end = nw->cleared ? nw->end : NONE;
	unsigned n = 0;
	bool open = false;

	for (unsigned i = 0; i < x->n_led; i++) {
		const struct ep *e = &x->led[i];

		if (!(e->flags & EP_PENDING))
			continue;
		n++;
		if (first == NONE || e->start < first)
			first = e->start;
		if (last == NONE || e->start > last) {
			last = e->start;
			open = e->end == NONE;
		}
		if (e->end != NONE && (end == NONE || e->end > end))
			end = e->end;
	}
	if (!n && !nw->cleared) {
		news_clear(nw);
		return;
	}
	open = open && ae_rec_open_active(k);
	t_init(eng, &t, k, k->rec, open ? ALERT_EV_LATE : ALERT_EV_PAST);
	t.late = true;
	t.event_ms = first != NONE ? first : end;
	t.end_ms = open || end == NONE ? ALERT_TS_NONE : end;
	t.notify = true;
	t.notify_escalation = k->rec && k->rec->escalated;
	if (n && nw->cleared) {
		/* an episode told before ended, later ones came: both said */
		char ce[sizeof(t.message_en)], cv[sizeof(t.message_vi)];

		alert_text_late(ce, sizeof(ce), nw->cen ? nw->cen : "", 0, false, true, NONE, NONE,
				nw->end, o->now_ms, true, eng->rules->utc_offset_min, ALERT_LANG_EN);
		alert_text_late(cv, sizeof(cv), nw->cvi ? nw->cvi : "", 0, false, true, NONE, NONE,
				nw->end, o->now_ms, true, eng->rules->utc_offset_min, ALERT_LANG_VI);
		alert_text_late(t.message_en, sizeof(t.message_en), nw->en ? nw->en : t.message_en,
				n, open, false, first, last, end, o->now_ms, false,
				eng->rules->utc_offset_min, ALERT_LANG_EN);
		alert_text_late(t.message_vi, sizeof(t.message_vi), nw->vi ? nw->vi : t.message_vi,
				n, open, false, first, last, end, o->now_ms, false,
				eng->rules->utc_offset_min, ALERT_LANG_VI);
		alert_text_join(t.message_en, sizeof(t.message_en), ce);
		alert_text_join(t.message_vi, sizeof(t.message_vi), cv);
	} else {
		const char *be = n ? nw->en : nw->cen, *bv = n ? nw->vi : nw->cvi;

		alert_text_late(t.message_en, sizeof(t.message_en), be ? be : t.message_en, n, open,
				nw->cleared, first, last, end, o->now_ms, true,
				eng->rules->utc_offset_min, ALERT_LANG_EN);
		alert_text_late(t.message_vi, sizeof(t.message_vi), bv ? bv : t.message_vi, n, open,
				nw->cleared, first, last, end, o->now_ms, true,
				eng->rules->utc_offset_min, ALERT_LANG_VI);
	}
	memcpy(t.alert.message, ae_primary(eng) == ALERT_LANG_VI ? t.message_vi : t.message_en,
	       sizeof(t.alert.message));
	for (unsigned i = 0; i < x->n_led; i++)
		x->led[i].flags &= (uint8_t)~EP_PENDING;
	news_clear(nw);
	if (k->rec)
		k->rec->last_notify_ms = o->now_ms;
	t.arrived_ms = o->now_ms;
	o->count++;
	if (o->fn)
		o->fn(o->ctx, &t);
}

/* ---- the queue: releases, late news, no_data closes ------------------------- */

/* No late readings for late_settle_s, and a backlog the station announced
 * has begun to come (or was waited for long enough). */
static bool settled(const struct alert_engine *eng, const struct akey *st)
{
	const struct station_state *s = &st->u.st;

	if (eng->mono_ms == 0) /* (no clock given) */
		return true;
	if (s->late_mono != NONE && eng->mono_ms - s->late_mono < eng->rules->late_settle_s * 1000)
		return false;
	return !s->backlog || s->backlog_late || s->backlog_mono == NONE ||
	       eng->mono_ms - s->backlog_mono >= BACKLOG_WAIT_MS;
}

/* Replays st's held keys, within budget. Returns rows read, or a negative
 * errno; *done: every key was replayed. */
static int64_t release(struct alert_engine *eng, struct out *o, struct akey *st, int64_t budget,
		       bool *done)
{
	int64_t rows = 0, n = 0;
	int rc = 0;

	*done = true;
	rowcache_drop(eng); /* rows stored since the last release */
	for (struct akey *k = st->u.st.keys; k; k = k->st_next) {
		if (!k->x || k->x->hold_from == NONE)
			continue;
		if (rows >= budget) {
			*done = false;
			break;
		}
		if ((rc = ae_touch(eng, k)) < 0)
			break;
		if (!eng->src) {
			k->x->hold_from = NONE;
			continue;
		}
		if ((n = replay_key(eng, o, k)) < 0)
			break;
		rows += n;
	}
	rowcache_drop(eng);
	return rc < 0 ? rc : n < 0 ? n : rows;
}

static bool has_news(const struct akey *st)
{
	for (const struct akey *k = st->u.st.keys; k; k = k->st_next)
		if (k->x && (k->x->nw.n || k->x->nw.cleared))
			return true;
	return false;
}

int ae_replay_due(struct alert_engine *eng, int64_t now_ms, bool settle, alert_emit_fn fn,
		  void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	int64_t budget = FLUSH_ROWS_MAX;
	size_t i = 0;
	int rc;

	while (i < eng->n_hq) {
		struct akey *st = eng->hq[i];
		struct station_state *s = &st->u.st;
		bool calm = settled(eng, st), done = true, keep = false;

		if ((s->holding || s->flush_now) &&
		    (s->flush_now || s->held >= HOLD_MAX || (settle && calm))) {
			int64_t cap = budget < FLUSH_STATION_ROWS_MAX ? budget : FLUSH_STATION_ROWS_MAX;
			int64_t n;

			if ((rc = ae_touch(eng, st)) < 0)
				return rc;
			if (budget <= 0) {
				done = false;
			} else {
				if ((n = release(eng, &o, st, cap, &done)) < 0)
					return (int)n;
				budget -= n;
			}
			if (done) {
				s->flush_now = false;
				s->held = 0;
				if (calm || !settle)
					s->holding = s->holding && !calm;
			}
		}
		keep = s->holding || s->flush_now;
		if (settle && !s->holding && !s->flush_now) {
			bool news_due = s->news_mono != NONE &&
					(calm || eng->mono_ms - s->news_mono >= NEWS_HOLD_MS);

			if (calm) {
				for (struct akey *k = st->u.st.keys; k; k = k->st_next) {
					const struct rule *R = ae_key_rule(eng, k);

					if (R->kind == RULE_NO_DATA && k->rec && k->rec->back &&
					    ae_rec_open_active(k)) {
						if ((rc = ae_touch(eng, k)) < 0)
							return rc;
						nodata_close(eng, &o, st, k, R);
					}
				}
				if (s->backlog && (rc = ae_touch(eng, st)) == 0)
					s->backlog = false;
			}
			if (news_due) {
				for (struct akey *k = st->u.st.keys; k; k = k->st_next)
					if (k->x && (k->x->nw.n || k->x->nw.cleared)) {
						if ((rc = ae_touch(eng, k)) < 0)
							return rc;
						news_send(eng, &o, k);
					}
				s->news_mono = NONE;
			}
		}
		if (!keep && !calm)
			keep = true; /* late data still coming: look again */
		if (!keep && (has_news(st) || s->backlog))
			keep = true;
		for (struct akey *k = st->u.st.keys; !keep && k; k = k->st_next)
			keep = k->rec && k->rec->back;
		if (keep) {
			i++;
		} else {
			s->queued = false;
			eng->hq[i] = eng->hq[--eng->n_hq];
		}
	}
	return o.count;
}

/* Rebuilds the queue from the keys (after a restart or a rollback). */
void ae_queue_rebuild(struct alert_engine *eng)
{
	eng->n_hq = 0;
	for (size_t i = 0; i < eng->n; i++)
		if (eng->keys[i]->rule < 0)
			eng->keys[i]->u.st.queued = false;
	for (size_t i = 0; i < eng->n; i++) {
		struct akey *k = eng->keys[i], *st;

		if (k->rule < 0) {
			if (k->u.st.holding || k->u.st.backlog)
				queue(eng, k);
			continue;
		}
		if (!(k->x && (k->x->hold_from != NONE || k->x->nw.n || k->x->nw.cleared)) &&
		    !(k->rec && k->rec->back))
			continue;
		if ((st = ae_key_find(eng, -1, k->station, ""))) {
			if (k->x && k->x->hold_from != NONE)
				st->u.st.holding = true;
			queue(eng, st);
		}
	}
}
