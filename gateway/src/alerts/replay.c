/*
 * Event time (docs/alerts.md, "Reading order"): each reading-driven key
 * (threshold, ladder, window, rate, peak, rising, quality, sensor) sees
 * its readings in reading-time order, whatever order they arrive in, and
 * what people are told follows.
 *
 * - Checkpoints. Before applying a reading a key may save itself (its
 *   condition and alert, without messages or ring points): before a gap of
 *   CK_GAP_MS in its readings (where a station's backlog will land) and at
 *   least every CK_EVERY_MS. It keeps CK_MAX: the anchor (the newest at or
 *   before replay_max_s back) and the rest spread over the window (hold.c,
 *   ck_push); while the key is younger than replay_max_s it can also go
 *   back to before its first reading (first_ts).
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
 * This file replays a key and reconciles (Replay, Reconciling) and sends
 * the late news; hold.c takes the checkpoints, holds readings and keeps
 * the queue of stations with work (Checkpoints, Holding, Restart, and the
 * releases that replay the held keys); readback.c reads the stored rows
 * back. They share engine_int.h.
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
	ae_queue(eng, st);
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

/* ---- replaying a key -------------------------------------------------------- */

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
	if ((rc = ae_merge_open(eng, &m, k, R, k->last_ts - R->window_s * 1000)) < 0)
		return rc;
	m.until = k->last_ts;
	while (ae_merge_next(&m, &r)) {
		if (!ae_rule_takes(R, &r) || r.ts_ms <= last)
			continue;
		if ((rc = ae_ring_push(&k->u.lv, (size_t)R->max_points, r.ts_ms, r.value)) < 0)
			return rc;
		last = r.ts_ms;
	}
	eng->replayed_rows += m.rows;
	return m.err;
}

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
int64_t ae_replay_key(struct alert_engine *eng, struct out *o, struct akey *k)
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
	if ((rc = ae_merge_open(eng, &m, k, R, after)) < 0)
		goto fail;
	eng->rp = rp;
	eng->replays++;
	while (ae_merge_next(&m, &r)) {
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

/* ---- late news ------------------------------------------------------------- */

/* One notification for k's late news (see the file comment): its late
 * episodes (those told while pending) summarised. */
void ae_news_send(struct alert_engine *eng, struct out *o, struct akey *k)
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
		ae_news_clear(nw);
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
	ae_news_clear(nw);
	if (k->rec)
		k->rec->last_notify_ms = o->now_ms;
	t.arrived_ms = o->now_ms;
	o->count++;
	if (o->fn)
		o->fn(o->ctx, &t);
}
