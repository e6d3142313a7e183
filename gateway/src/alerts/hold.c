/*
 * Event time as readings come (docs/alerts.md, "Reading order"; the whole
 * mechanism is described at the top of replay.c): which rules replay, the
 * checkpoints a key takes as it applies readings, the readings held per
 * station (late, out of order, or unseen since a restart), and the queue
 * of stations with work, whose releases replay the held keys (replay.c),
 * close no_data alerts once a backlog has settled and send late news.
 * One thread (the engine's); no I/O but the source's reads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/engine_int.h"

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

void ae_news_clear(struct news *nw)
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
	ae_news_clear(&k->x->nw);
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
void ae_queue(struct alert_engine *eng, struct akey *st)
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
	ae_queue(eng, st);
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
		int64_t horizon = k->ev_ts - eng->rules->replay_max_s * 1000;
		unsigned drop = CK_MAX - 1;
		int64_t span = INT64_MAX;

		/* The anchor is the newest at or before replay_max_s back: a
		 * late reading of the whole window finds a checkpoint before
		 * it. (Dropping an expired anchor for the next one, when that
		 * one is hours old, left a day-old hole caught up by another
		 * hub unevaluated: the two-hub soak.) Of the others, the one
		 * whose loss leaves the shortest span goes: they spread over
		 * the window, and a replay reads at most about a span. */
		if (x->ck[1]->ts <= horizon) {
			drop = 0;
		} else {
			for (unsigned i = 1; i < CK_MAX; i++) {
				int64_t next = i + 1 < CK_MAX ? x->ck[i + 1]->ts : c->ts;

				if (next - x->ck[i - 1]->ts < span) {
					span = next - x->ck[i - 1]->ts;
					drop = i;
				}
			}
		}
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
	ae_queue(eng, st);
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
		ae_queue(eng, st);
	}
	return 0;
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
	ae_rowcache_drop(eng); /* rows stored since the last release */
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
		if ((n = ae_replay_key(eng, o, k)) < 0)
			break;
		rows += n;
	}
	ae_rowcache_drop(eng);
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
						ae_news_send(eng, &o, k);
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
				ae_queue(eng, k);
			continue;
		}
		if (!(k->x && (k->x->hold_from != NONE || k->x->nw.n || k->x->nw.cleared)) &&
		    !(k->rec && k->rec->back))
			continue;
		if ((st = ae_key_find(eng, -1, k->station, ""))) {
			if (k->x && k->x->hold_from != NONE)
				st->u.st.holding = true;
			ae_queue(eng, st);
		}
	}
}
