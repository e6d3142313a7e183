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
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/topic.h"
#include "alerts/engine_int.h"

static const char *const event_names[] = {
	"raised", "severity", "acknowledged", "cleared", "closed", "renotify", "escalated",
	"revised", "retracted", "past", "late",
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
	return (unsigned)ev < AGRI_ARRAY_SIZE(event_names)
		       ? event_names[ev] : NULL;
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
		const struct rule *R = ae_key_rule(eng, k);

		/* no ae_state_reset(): it would look up station records being freed */
		free(k->rec);
		if (R && level_kind(R->kind))
			free(k->u.lv.pts);
		ae_kx_free(k);
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
	free(eng->hq);
	free(eng->rowbuf);
	free(eng->rpbuf);
	ae_rowcache_free(eng);
	free(eng->tab);
	free(eng->fp);
	free(eng->buf);
	free(eng);
}

void alert_engine_start(struct alert_engine *eng, int64_t now_ms)
{
	eng->start_ms = now_ms;
	ae_queue_rebuild(eng); /* held readings and late news from before */
}

void alert_engine_set_source(struct alert_engine *eng, const struct alert_source *src)
{
	eng->src = src && src->rows && src->metrics ? src : NULL;
}

void alert_engine_set_mono(struct alert_engine *eng, int64_t mono_ms)
{
	eng->mono_ms = mono_ms;
}

void alert_engine_set_quiet(struct alert_engine *eng, bool quiet)
{
	eng->quiet = quiet;
}

int alert_engine_flush(struct alert_engine *eng, int64_t now_ms, alert_emit_fn fn, void *ctx)
{
	if (!eng->n_hq)
		return 0;
	return ae_replay_due(eng, now_ms, false, fn, ctx);
}

void alert_engine_backlog(struct alert_engine *eng, const char *station, uint64_t depth)
{
	struct akey *st;

	if (!station || !agri_station_id_valid(station) ||
	    !(st = ae_key_find(eng, -1, station, "")))
		return;
	if (depth > 1 && !st->u.st.backlog && ae_touch(eng, st) == 0) {
		st->u.st.backlog = true;
		st->u.st.backlog_late = false;
		st->u.st.backlog_mono = eng->mono_ms;
	} else if (depth <= 1 && st->u.st.backlog && ae_touch(eng, st) == 0) {
		st->u.st.backlog = false; /* drained (at most the batch being sealed) */
	}
}


/* ---- public entry points --------------------------------------------------- */

int alert_engine_reading(struct alert_engine *eng, const char *station,
			 const struct agri_reading *r, int64_t now_ms,
			 alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	const struct metric_rules *mr;
	struct akey *st, *k;
	uint64_t at_station, at_sensor;
	bool late, held = false;
	int rc;

	if (!eng || !station || !r || !agri_station_id_valid(station) ||
	    !agri_ident_valid(r->sensor) || !agri_ident_valid(r->metric))
		return -EINVAL;
	at_station = ae_place_hash(station, "");
	at_sensor = ae_place_hash(station, r->sensor);
	st = ae_key_get_h(eng, ae_rule_hash(at_station, -1), -1, station, "");
	if (!st)
		return eng->refused ? 0 : -ENOMEM; /* a cap: counted, not an error */
	if ((rc = ae_touch(eng, st)) < 0)
		return rc;
	st->seen_ms = now_ms;
	st->offline = false;
	if (r->ts_ms > st->ev_ts)
		st->ev_ts = r->ts_ms;
	late = r->ts_ms < now_ms - eng->rules->late_after_s * 1000;
	ae_late_note(eng, st, late);
	if (r->q == AGRI_Q_OK && r->has_value && r->value > 0 && !strcmp(r->metric, "rain"))
		ae_rain_note(st, r->ts_ms);
	mr = rules_for(eng, r->metric);
	for (size_t j = 0; j < mr->n; j++) {
		int i = mr->rule[j];
		const struct rule *R = &eng->rules->v[i];
		bool whole = per_station(R);

		if (!rule_matches(R, station, whole ? "" : r->sensor))
			continue;
		if (whole) {
			k = ae_key_find_h(eng, ae_rule_hash(at_station, i), i, station, "");
			if (!k || !ae_rec_open_active(k) || (k->rec->back && late))
				continue;
			if ((rc = ae_touch(eng, k)) < 0 ||
			    (rc = ae_nodata_back(eng, &o, st, k, R, r, late, now_ms)) < 0)
				return rc;
			continue;
		}
		if (!ae_rule_takes(R, r))
			continue;
		if (R->kind == RULE_SENSOR && !(r->q == AGRI_Q_SUSPECT && r->why[0])) {
			/* A sensor check costs nothing on a good probe: its key
			 * exists only once a reading was suspect with a reason,
			 * and a good reading changes it only while it counts
			 * (or while it has readings waiting: a replay decides). */
			k = ae_key_find_h(eng, ae_rule_hash(at_sensor, i), i, station, r->sensor);
			if (!k || (!ae_sensor_counting(k, r->metric) &&
				   !(k->x && k->x->hold_from != NONE) && r->ts_ms >= k->ev_ts))
				continue;
		} else {
			k = ae_key_get_h(eng, ae_rule_hash(at_sensor, i), i, station, r->sensor);
		}
		if (!k)
			continue; /* counted in keys_refused, or ENOMEM */
		if ((rc = ae_touch(eng, k)) < 0)
			return rc;
		if (R->kind == RULE_NO_DATA) {
			k->seen_ms = now_ms;
			if (ae_rec_open_active(k))
				ae_nodata_clear(eng, &o, k, R, now_ms);
			continue;
		}
		if (k->ev_stale && eng->src && r->ts_ms > k->ev_ts) {
			/* Its first reading since it was imported: with
			 * nothing stored after its saved evidence but r, it
			 * goes on as before; else a replay from ev_ts. */
			if ((rc = ae_unseen_rows(eng, k, R, r)) < 0)
				return rc;
			k->ev_stale = rc > 0;
		}
		if (eng->src && ae_replayable(R) &&
		    (r->ts_ms < k->ev_ts || k->ev_stale || (late && st->u.st.holding) ||
		     ae_gap_waits(st, k, R, r))) {
			/* Out of order, or its station holds its late readings,
			 * or a night's total or a window would be reckoned with
			 * the station's backlog still to come, or readings it
			 * applied before a restart are stored but newer than
			 * its saved evidence (ev_stale, docs/alerts.md
			 * "Persistence"): evaluated in reading order by a
			 * replay (replay.c). */
			int64_t from = r->ts_ms;

			if (k->ev_ts != NONE && r->ts_ms < k->ev_ts - eng->rules->replay_max_s * 1000) {
				eng->late_dropped++;
				continue;
			}
			if (k->ev_stale && k->ev_ts != NONE && k->ev_ts < from)
				from = k->ev_ts + 1; /* on from ev_ts: no rewind */
			k->ev_stale = false;
			if ((rc = ae_hold(eng, st, k, from,
					  late || st->u.st.holding || st->u.st.backlog)) < 0)
				return rc;
			held = true;
			continue;
		}
		if (r->ts_ms < k->ev_ts) {
			eng->late++; /* no source: ignored by this key */
			continue;
		}
		if ((rc = ae_apply(eng, &o, k, R, r, now_ms)) < 0)
			return rc;
	}
	if (held)
		ae_held_note(eng, st);
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
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	struct akey *st, *k;
	int rc;

	if (!eng || !station || !agri_station_id_valid(station))
		return -EINVAL;
	st = ae_key_get(eng, -1, station, "");
	if (!st)
		return eng->refused ? 0 : -ENOMEM;
	if ((rc = ae_touch(eng, st)) < 0)
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
		k = ae_key_get(eng, (int)i, station, "");
		if (!k || ae_rec_open_active(k))
			continue;
		if ((rc = ae_touch(eng, k)) < 0 || (rc = ae_nodata_raise(eng, &o, k, R, true, now_ms)) < 0)
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
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	size_t n = eng->n;
	int rc;

	if (eng->n_hq) { /* settled stations: replays, late news, no_data closes */
		if ((rc = ae_replay_due(eng, now_ms, true, fn, ctx)) < 0)
			return rc;
		o.count += rc;
	}
	for (size_t ki = 0; ki < n; ki++) {
		struct akey *k = eng->keys[ki];
		const struct rule *R = ae_key_rule(eng, k);
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
				sk = ae_key_get(eng, (int)i, k->station, "");
				if (!sk || ae_rec_open_active(sk))
					continue;
				if ((rc = ae_touch(eng, sk)) < 0 ||
				    (rc = ae_nodata_raise(eng, &o, sk, S, k->offline, now_ms)) < 0)
					return rc;
			}
			continue;
		}
		if (rule_kind_is_event(R->kind)) {
			if (ae_rec_open_active(k) && k->seen_ms != NONE &&
			    now_ms - k->seen_ms >= R->after_s * 1000) {
				struct alert_text_args a = ae_text_args(R, k, ALERT_TEXT_EVENT);

				a.cleared = true;
				a.aux = R->after_s;
				if ((rc = ae_touch(eng, k)) < 0)
					return rc;
				ae_clear_alert(eng, &o, k, &a, now_ms, now_ms);
			}
			continue;
		}
		if (R->kind == RULE_NO_DATA && R->per_sensor && !ae_rec_open_active(k)) {
			struct akey *st = ae_key_find(eng, -1, k->station, "");
			int64_t from = since(eng, k->seen_ms);
			int64_t st_from = st ? since(eng, st->seen_ms) : NONE;

			if (from != NONE && now_ms - from >= R->after_s * 1000 && st &&
			    !st->offline && st_from != NONE &&
			    now_ms - st_from < R->after_s * 1000 &&
			    rule_active_at(R, now_ms, eng->rules->utc_offset_min)) {
				if ((rc = ae_touch(eng, k)) < 0 ||
				    (rc = ae_nodata_raise(eng, &o, k, R, false, now_ms)) < 0)
					return rc;
			}
			continue;
		}
		if (!rec || rec->a.state != AGRI_ALERT_ACTIVE || rec->acked)
			continue;
		if (R->has_escalate && !rec->escalated &&
		    now_ms - rec->active_since_ms >= R->escalate_after_s * 1000) {
			if ((rc = ae_touch(eng, k)) < 0)
				return rc;
			rec->escalated = true;
			rec->last_notify_ms = now_ms;
			ae_emit(eng, &o, k, ALERT_EV_ESCALATED, NULL, 2);
		} else if (R->renotify_s > 0 &&
			   now_ms - rec->last_notify_ms >= R->renotify_s * 1000) {
			if ((rc = ae_touch(eng, k)) < 0)
				return rc;
			rec->last_notify_ms = now_ms;
			ae_emit(eng, &o, k, ALERT_EV_RENOTIFY, NULL, 1);
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

/* Who acknowledged, as given (the API hands over checked UTF-8: "Nguyễn
 * Thị Lan" stays so); control characters become '?' and a cut never
 * splits a character. */
static void who_copy(char *dst, size_t len, const char *who)
{
	size_t i = 0;

	for (; who && who[i] && i < len - 1; i++)
		dst[i] = ((unsigned char)who[i] < 0x20 || who[i] == 0x7f) ? '?' : who[i];
	dst[i] = '\0';
	alert_text_utf8_trim(dst);
}

int alert_engine_ack(struct alert_engine *eng, const char *id, const char *who,
		     int64_t now_ms, alert_emit_fn fn, void *ctx)
{
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	struct akey *k;
	struct arec *rec;
	int rule, rc;

	if (!id || parse_key(eng, id, &rule, station, sensor) < 0 || rule < 0)
		return -ENOENT;
	k = ae_key_find(eng, rule, station, sensor);
	if (!k || !k->rec)
		return -ENOENT;
	rec = k->rec;
	if (rec->acked)
		return 0;
	if ((rc = ae_touch(eng, k)) < 0)
		return rc;
	rec->acked = true;
	who_copy(rec->who, sizeof(rec->who), who);
	if (now_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = now_ms;
	alert_text_prefix(rec->msg_en, sizeof(rec->msg_en), 0, rec->who, ALERT_LANG_EN);
	alert_text_prefix(rec->msg_vi, sizeof(rec->msg_vi), 0, rec->who, ALERT_LANG_VI);
	memcpy(rec->a.message, ae_primary(eng) == ALERT_LANG_VI ? rec->msg_vi : rec->msg_en,
	       sizeof(rec->a.message));
	if (rec->a.state == AGRI_ALERT_CLEARED) {
		ae_emit(eng, &o, k, ALERT_EV_CLOSED, NULL, -1);
		free(rec);
		k->rec = NULL;
		ae_open_add(eng, k, -1);
	} else {
		rec->a.state = AGRI_ALERT_ACKNOWLEDGED;
		ae_emit(eng, &o, k, ALERT_EV_ACKED, NULL, -1);
	}
	return 1;
}

bool alert_engine_covers(const struct alert_engine *eng, const char *id)
{
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	int rule;

	return id && parse_key(eng, id, &rule, station, sensor) == 0 && rule >= 0;
}

int alert_engine_get(const struct alert_engine *eng, const char *id,
		     struct agri_alert *out)
{
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	const struct akey *k;
	int rule;

	if (!id || parse_key(eng, id, &rule, station, sensor) < 0 || rule < 0)
		return -ENOENT;
	k = ae_key_find(eng, rule, station, sensor);
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
	const struct rule *R = ae_key_rule(eng, k);

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
	ae_key_encode(eng, k, w);
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
			rc = export_one(eng, k, ae_major_hash(eng, k, w), w, fn, ctx);
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
			rc = export_one(eng, k, ae_deferrable(eng, k) ? ae_major_hash(eng, k, &w) : 0,
					&w, fn, ctx);
			count += rc >= 0;
		}
		ae_dirty_rebuild(eng);
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
		if (ae_deferrable(eng, k)) {
			h = ae_major_hash(eng, k, &w);
			if (defer_ms > 0 && h == k->saved_major) {
				if (!k->deferred) {
					k->queued_ms = now_ms;
					k->deferred = ae_key_push(eng, &eng->defv, &eng->n_def,
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
		ae_dirty_rebuild(eng); /* what was not written stays dirty */
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
	k = ae_key_get(eng, rule, station, sensor);
	if (!k)
		return eng->refused ? -EDQUOT : -ENOMEM;
	ae_state_reset(eng, k);
	rc = ae_key_decode(eng, k, blob, len);
	k->dirty = false;
	if (rc == 0 && ae_deferrable(eng, k)) {
		struct wbuf w = {.p = eng->buf, .cap = eng->buf_cap};

		/* Its evidence may have waited (not written when the gateway
		 * stopped): readings it applied after ev_ts can be in the
		 * store, and a resent older one must be evaluated with them. */
		k->ev_stale = k->rule >= 0 && ae_replayable(ae_key_rule(eng, k)) &&
			      k->ev_ts != NONE;
		k->saved_major = ae_major_hash(eng, k, &w);
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

		ae_state_reset(eng, u->k);
		if (ae_key_decode(eng, u->k, u->blob, u->len) < 0)
			ae_state_reset(eng, u->k); /* cannot happen: our own blob */
		u->k->dirty = u->dirty;
		u->k->ev_stale = u->ev_stale;
		u->k->txn_touched = false;
		u->k->saved_major = 0; /* what the rolled-back export wrote is gone */
	}
	while (eng->n > eng->txn_first) {
		struct akey *k = eng->keys[--eng->n];

		ae_key_unlink(eng, k);
		ae_key_free(eng, k);
	}
	ae_dirty_rebuild(eng); /* drops the freed keys */
	ae_queue_rebuild(eng);
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
	out->held = eng->held;
	out->replays = eng->replays;
	out->replayed_rows = eng->replayed_rows;
	out->late_dropped = eng->late_dropped;
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
	struct out o = {.fn = fn, .ctx = ctx, .ev_ms = NONE, .now_ms = now_ms};
	int rc;

	if (!eng || !station || !agri_station_id_valid(station) || !rule_kind_is_event(kind))
		return -EINVAL;
	for (size_t i = 0; i < eng->rules->n; i++) {
		const struct rule *R = &eng->rules->v[i];
		struct akey *k;

		if (R->kind != kind || !rule_matches(R, station, "") ||
		    !rule_active_at(R, now_ms, eng->rules->utc_offset_min))
			continue;
		k = ae_key_get(eng, (int)i, station, "");
		if (!k)
			return eng->refused ? o.count : -ENOMEM;
		if ((rc = ae_touch(eng, k)) < 0)
			return rc;
		k->seen_ms = now_ms;
		if (!ae_rec_open_active(k)) {
			struct alert_text_args a = ae_text_args(R, k, ALERT_TEXT_EVENT);

			a.value = value;
			a.has_value = true;
			a.severity = R->severity;
			a.detail_en = detail_en;
			a.detail_vi = detail_vi;
			if ((rc = ae_raise_alert(eng, &o, k, &a, -1, R->severity, now_ms, now_ms)) < 0)
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
		    !(k = ae_key_find(eng, mr->rule[j], station, sensor)) || k->rec)
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
		ae_key_unlink(eng, k);
		ae_key_free(eng, k);
		n++;
	}
	if (n) {
		ae_dirty_rebuild(eng); /* the lists may name a freed key */
		ae_queue_rebuild(eng);
	}
	return n;
}
