/*
 * One batch in one transaction: each message decoded and validated, its
 * readings stored (within the station's budgets and the clock window),
 * dead letters, status, the hooks, then the commit (docs/gateway.md,
 * Delivery semantics). Writer thread only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/log.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "core/ingest_int.h"
#include "core/store.h"

/* --- one batch -------------------------------------------------------- */

#define REASON_MAX (AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 160)

/* Stores m as a dead letter of kind (station: "" when unknown), within
 * the station's dead-letter budget; past it the dead letter is only
 * counted (per kind, for good). */
static int dead_letter(struct ingest *in, const struct msg *m, const char *station,
		       const char *kind, const char *reason)
{
	struct quota *q = in_quota_of(in, station ? station : "");
	struct store_dead_letter dl = {
		.topic = m->topic, .payload = m->payload, .len = m->len, .reason = reason,
		.kind = kind, .station = station, .received_ms = m->received_ms,
	};
	int rc;

	if (!in_bucket_take(&q->dead, 1, util_mono_ms())) {
		if ((rc = store_count_dead_letters(in->st, kind, 1)) == 0)
			atomic_fetch_add(&in->health->dead_suppressed, 1);
		return rc;
	}
	if (m->flags & MSG_QUOTA)
		dl.len = m->len; /* a sample: its prefix is all there is */
	if ((rc = store_put_dead_letter(in->st, &dl)) == 0) {
		in->c.dead++;
		log_debug(LOG, "dead letter topic=%s kind=%s reason=\"%s\"", m->topic, kind, reason);
	}
	return rc;
}

static int ack_later(struct ingest *in, const char *station, uint64_t seq)
{
	struct ack_pair *a = &in->acks[in->n_acks++];

	snprintf(a->station, sizeof(a->station), "%s", station);
	a->seq = seq;
	return 0;
}

int in_run_event_hooks(struct ingest *in, const struct ingest_event *ev)
{
	int rc;

	for (size_t h = 0; h < in->n_hooks; h++)
		if (in->hooks[h].on_event &&
		    (rc = in->hooks[h].on_event(in->hooks[h].ctx, in->st, ev)) < 0)
			return rc;
	return 0;
}

int ingest_raise_event(struct ingest *in, const struct ingest_event *ev)
{
	return in_run_event_hooks(in, ev);
}

/* Tells the hooks about the series the store retired in this transaction. */
static int run_retired_hooks(struct ingest *in)
{
	const struct store_retired *r;
	size_t n = store_retired(in->st, &r);
	int rc;

	for (size_t i = 0; i < n; i++)
		for (size_t h = 0; h < in->n_hooks; h++)
			if (in->hooks[h].on_series_retired &&
			    (rc = in->hooks[h].on_series_retired(in->hooks[h].ctx, in->st,
								 r[i].station, r[i].sensor,
								 r[i].metric)) < 0)
				return rc;
	return 0;
}

/* Stores t's readings, noting in in->fresh which were new. A reading
 * that would start a series past the station's budget is refused (not
 * fresh) and counted in *refused. */
static int store_readings(struct ingest *in, const struct agri_telemetry *t,
			  int64_t received_ms, size_t *refused)
{
	int rc, n = 0;

	for (size_t i = 0; i < t->n; i++) {
		rc = store_put_reading(in->st, t->station, &t->readings[i], received_ms);
		if (rc == -EDQUOT) {
			in->fresh[i] = false;
			(*refused)++;
			continue;
		}
		if (rc < 0)
			return rc;
		in->fresh[i] = rc == 1;
		if (rc == 1) {
			in->c.stored++;
			n++;
		} else {
			in->c.dup++;
		}
	}
	return n;
}

static int run_telemetry_hooks(struct ingest *in, const struct agri_telemetry *t,
			       int64_t received_ms)
{
	int rc;

	if ((rc = run_retired_hooks(in)) < 0)
		return rc;
	for (size_t h = 0; h < in->n_hooks; h++) {
		if (in->hooks[h].on_telemetry &&
		    (rc = in->hooks[h].on_telemetry(in->hooks[h].ctx, in->st, t,
						    in->fresh, received_ms)) < 0)
			return rc;
	}
	return 0;
}

int ingest_put_readings(struct ingest *in, const struct agri_telemetry *t,
			int64_t received_ms)
{
	size_t refused = 0;
	int n, rc;

	if (t->n > AGRI_BATCH_MAX_READINGS)
		return -E2BIG;
	if ((n = store_readings(in, t, received_ms, &refused)) < 0)
		return n;
	if (refused)
		log_warn(LOG, "import: %zu readings of station=%s refused: past its series budget",
			 refused, t->station);
	if ((rc = store_touch_station(in->st, t->station, received_ms)) < 0)
		return rc;
	if ((rc = run_telemetry_hooks(in, t, received_ms)) < 0)
		return rc;
	return n;
}

/* "5.0 years", "3.2 hours", "40 s": how far apart two clocks are. */
void in_span_text(char *buf, size_t len, int64_t ms)
{
	double s = (double)(ms < 0 ? -ms : ms) / 1000.0;

	if (s >= 86400.0 * 365)
		snprintf(buf, len, "%.1f years", s / (86400.0 * 365.25));
	else if (s >= 86400.0 * 2)
		snprintf(buf, len, "%.1f days", s / 86400.0);
	else if (s >= 3600.0)
		snprintf(buf, len, "%.1f hours", s / 3600.0);
	else
		snprintf(buf, len, "%.0f s", s);
}

static int clock_event(struct ingest *in, const char *station, int64_t offset_ms,
		       const char *what_en, const char *what_vi, int64_t at_ms)
{
	struct ingest_event ev = {.kind = INGEST_EV_CLOCK, .station = station,
				  .value = (double)offset_ms / 1000.0, .at_ms = at_ms};
	char span[32];

	in_span_text(span, sizeof(span), offset_ms);
	snprintf(ev.detail_en, sizeof(ev.detail_en), "%s %s %s the hub's clock", what_en, span,
		 offset_ms > 0 ? "ahead of" : "behind");
	snprintf(ev.detail_vi, sizeof(ev.detail_vi), "%s %s %s đồng hồ của trạm chủ", what_vi,
		 offset_ms > 0 ? "nhanh" : "chậm", span);
	return in_run_event_hooks(in, &ev);
}

static int quota_event(struct ingest *in, const char *station, double over,
		       const char *en, const char *vi, int64_t at_ms)
{
	struct ingest_event ev = {.kind = INGEST_EV_QUOTA, .station = station,
				  .value = over, .at_ms = at_ms};

	snprintf(ev.detail_en, sizeof(ev.detail_en), "%s", en);
	snprintf(ev.detail_vi, sizeof(ev.detail_vi), "%s", vi);
	return in_run_event_hooks(in, &ev);
}

/* Moves the readings outside the clock window out of t (they are kept in
 * the dead letter): returns how many, with the first one's offset. */
static size_t clock_filter(struct ingest *in, struct agri_telemetry *t, int64_t now_ms,
			   int64_t *first_off)
{
	size_t kept = 0, out = 0;

	if (in->opt.clock_skew_ms <= 0 && in->opt.backlog_ms <= 0)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		int64_t ts = t->readings[i].ts_ms;

		if ((in->opt.clock_skew_ms > 0 && ts > now_ms + in->opt.clock_skew_ms) ||
		    (in->opt.backlog_ms > 0 && ts < now_ms - in->opt.backlog_ms)) {
			if (out++ == 0)
				*first_off = ts - now_ms;
			continue;
		}
		if (kept != i)
			t->readings[kept] = t->readings[i];
		kept++;
	}
	t->n = kept;
	return out;
}

static int put_telemetry(struct ingest *in, const struct msg *m,
			 const struct agri_topic *t)
{
	struct agri_telemetry tel = {.readings = in->readings,
				     .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[REASON_MAX], e[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	char en[256], vi[256];
	size_t n_all, off_clock, refused = 0;
	int64_t first_off = 0;
	int rc, drc;

	drc = agri_telemetry_decode(m->payload, m->len, &tel, &err);
	agri_err_format(&err, e, sizeof(e));
	if (drc < 0) {
		bool same = tel.has_station && strcmp(tel.station, t->station) == 0;

		snprintf(reason, sizeof(reason), "%s", e);
		if ((rc = dead_letter(in, m, t->station, "invalid", reason)) < 0)
			return rc;
		/* interfaces.md §4: acked when station and seq are readable and match */
		if (same && tel.has_seq) {
			if ((rc = store_note_seq(in->st, t->station, tel.seq, m->received_ms)) < 0)
				return rc;
			ack_later(in, t->station, tel.seq);
		}
		return 0;
	}
	if (strcmp(tel.station, t->station) != 0) {
		snprintf(reason, sizeof(reason),
			 "station: \"%s\" differs from the topic's \"%s\"", tel.station,
			 t->station);
		return dead_letter(in, m, t->station, "mismatch", reason); /* never acked */
	}
	/* Readings past the station's rate: nothing stored, not acked (its
	 * spool resends them when the budget has refilled). */
	if (!in_bucket_take(&in_quota_of(in, t->station)->readings, (double)tel.n, util_mono_ms())) {
		atomic_fetch_add(&in->health->quota_readings, tel.n);
		snprintf(reason, sizeof(reason),
			 "readings over the station's budget (%lld a minute): %zu readings not stored,"
			 " not acked", (long long)in->opt.readings_per_min, tel.n);
		snprintf(en, sizeof(en), "sends more readings than its budget of %lld a minute",
			 (long long)in->opt.readings_per_min);
		snprintf(vi, sizeof(vi), "gửi quá hạn mức %lld số đo mỗi phút",
			 (long long)in->opt.readings_per_min);
		if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0 ||
		    (rc = quota_event(in, t->station, (double)tel.n, en, vi, m->received_ms)) < 0)
			return rc;
		return 0;
	}
	n_all = tel.n;
	off_clock = clock_filter(in, &tel, m->received_ms, &first_off);
	for (size_t h = 0; h < in->n_hooks; h++)
		if (in->hooks[h].on_readings &&
		    (rc = in->hooks[h].on_readings(in->hooks[h].ctx, in->st, &tel)) < 0)
			return rc;
	if ((rc = store_readings(in, &tel, m->received_ms, &refused)) < 0)
		return rc;
	if (drc == 1) { /* valid readings kept; the batch as a whole kept too */
		snprintf(reason, sizeof(reason), "%zu invalid reading%s skipped, first: %s",
			 tel.n_invalid, tel.n_invalid == 1 ? "" : "s", e);
		if ((rc = dead_letter(in, m, t->station, "partial", reason)) < 0)
			return rc;
	}
	if (off_clock) {
		char span[32];

		atomic_fetch_add(&in->health->clock_readings, off_clock);
		in_span_text(span, sizeof(span), first_off);
		snprintf(reason, sizeof(reason),
			 "%zu of %zu readings outside the clock window (now +%llds / -%lld days):"
			 " first stamped %s %s", off_clock, n_all,
			 (long long)(in->opt.clock_skew_ms / 1000),
			 (long long)(in->opt.backlog_ms / 86400000), span,
			 first_off > 0 ? "ahead" : "behind");
		if ((rc = dead_letter(in, m, t->station, "clock", reason)) < 0 ||
		    (rc = clock_event(in, t->station, first_off, "stamps readings",
				      "ghi thời gian số đo", m->received_ms)) < 0)
			return rc;
	}
	if (refused) {
		atomic_fetch_add(&in->health->quota_readings, refused);
		snprintf(reason, sizeof(reason),
			 "%zu readings of new series refused: the station has its budget of %d series",
			 refused, store_series_max(in->st));
		snprintf(en, sizeof(en), "sends more series (sensor x metric) than its budget of %d",
			 store_series_max(in->st));
		snprintf(vi, sizeof(vi), "gửi nhiều chuỗi số liệu hơn hạn mức %d",
			 store_series_max(in->st));
		if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0 ||
		    (rc = quota_event(in, t->station, (double)refused, en, vi, m->received_ms)) < 0)
			return rc;
	}
	if ((rc = store_note_seq(in->st, tel.station, tel.seq, m->received_ms)) < 0)
		return rc;
	if ((rc = run_telemetry_hooks(in, &tel, m->received_ms)) < 0)
		return rc;
	in->c.batches++;
	return ack_later(in, tel.station, tel.seq);
}

/* A catch-up replay's dead letter (the message is not a struct msg: it
 * came through the catch-up thread), within the station's budget. */
static int replay_dead(struct ingest *in, const struct ingest_replay *r, const char *station,
		       const char *kind, const char *reason)
{
	struct quota *q = in_quota_of(in, station ? station : "");
	struct store_dead_letter dl = {
		/* a replay too big was cut at the door: its prefix is all there is */
		.topic = r->topic, .payload = r->payload, .len = r->len, .reason = reason,
		.kind = kind, .station = station, .received_ms = util_now_ms(),
	};
	int rc;

	if (!in_bucket_take(&q->dead, 1, util_mono_ms())) {
		if ((rc = store_count_dead_letters(in->st, kind, 1)) == 0)
			atomic_fetch_add(&in->health->dead_suppressed, 1);
		return rc;
	}
	if ((rc = store_put_dead_letter(in->st, &dl)) == 0) {
		in->c.dead++;
		log_debug(LOG, "dead letter topic=%s kind=%s reason=\"%s\"", r->topic, kind, reason);
	}
	return rc;
}

int ingest_put_replay(struct ingest *in, struct ingest_replay *r)
{
	struct agri_telemetry tel = {.readings = in->readings, .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[REASON_MAX], e[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	size_t kept = 0, unasked = 0, off_clock, refused = 0;
	int64_t first_off = 0, now = util_now_ms();
	int drc, rc;

	r->received = r->stored = r->refused = r->unasked = 0;
	r->station[0] = '\0';
	r->first_ts_ms = 0;
	if (r->orig_len > r->len || r->len > r->max_len) {
		snprintf(reason, sizeof(reason), "catch-up replay from %s: %zu bytes, more than %zu",
			 r->from_hub, r->orig_len, r->max_len);
		r->refused = 1;
		return replay_dead(in, r, "", "replay", reason);
	}
	drc = agri_telemetry_decode(r->payload, r->len, &tel, &err);
	if (drc < 0) {
		agri_err_format(&err, e, sizeof(e));
		snprintf(reason, sizeof(reason), "catch-up replay from %s: %s", r->from_hub, e);
		r->refused = 1;
		return replay_dead(in, r, tel.has_station ? tel.station : "", "replay", reason);
	}
	snprintf(r->station, sizeof(r->station), "%s", tel.station);
	if (drc == 1) {
		agri_err_format(&err, e, sizeof(e));
		snprintf(reason, sizeof(reason), "catch-up replay from %s: %zu invalid reading%s"
			 " skipped, first: %s", r->from_hub, tel.n_invalid,
			 tel.n_invalid == 1 ? "" : "s", e);
		r->refused += tel.n_invalid;
		if ((rc = replay_dead(in, r, tel.station, "replay", reason)) < 0)
			return rc;
	}
	/* A station this hub has never heard of: its readings wait until it
	 * has (the next round asks again). */
	if ((rc = (int)store_station_gaps(in->st, tel.station)) == -ENOENT) {
		snprintf(reason, sizeof(reason), "catch-up replay from %s: station %s is unknown here",
			 r->from_hub, tel.station);
		r->refused += tel.n;
		return replay_dead(in, r, "", "replay", reason);
	} else if (rc < 0) {
		return rc;
	}
	/* Only the hours this hub asked for. */
	for (size_t i = 0; i < tel.n; i++) {
		if (!r->expect || !r->expect(r->ctx, tel.station, tel.readings[i].ts_ms)) {
			unasked++;
			continue;
		}
		if (kept != i)
			tel.readings[kept] = tel.readings[i];
		kept++;
	}
	tel.n = kept;
	r->unasked = unasked; /* the catch-up counts them: normal, not malformed */
	if (tel.n && !in_bucket_take(&in_quota_of(in, tel.station)->readings, (double)tel.n,
				     util_mono_ms())) {
		atomic_fetch_add(&in->health->quota_readings, tel.n);
		snprintf(reason, sizeof(reason), "catch-up replay from %s: readings over the station's"
			 " budget (%lld a minute): %zu readings not stored (asked again later)",
			 r->from_hub, (long long)in->opt.readings_per_min, tel.n);
		r->refused += tel.n;
		return replay_dead(in, r, tel.station, "quota", reason);
	}
	off_clock = clock_filter(in, &tel, now, &first_off);
	if (off_clock) {
		char span[32];

		atomic_fetch_add(&in->health->clock_readings, off_clock);
		in_span_text(span, sizeof(span), first_off);
		snprintf(reason, sizeof(reason), "catch-up replay from %s: %zu readings outside the"
			 " clock window: first stamped %s %s", r->from_hub, off_clock, span,
			 first_off > 0 ? "ahead" : "behind");
		r->refused += off_clock;
		if ((rc = replay_dead(in, r, tel.station, "clock", reason)) < 0)
			return rc;
	}
	if (!tel.n)
		return 0;
	r->first_ts_ms = tel.readings[0].ts_ms;
	for (size_t h = 0; h < in->n_hooks; h++)
		if (in->hooks[h].on_readings &&
		    (rc = in->hooks[h].on_readings(in->hooks[h].ctx, in->st, &tel)) < 0)
			return rc;
	if ((rc = store_readings(in, &tel, now, &refused)) < 0)
		return rc;
	r->received = tel.n;
	r->stored = (size_t)rc;
	if (refused) {
		atomic_fetch_add(&in->health->quota_readings, refused);
		snprintf(reason, sizeof(reason), "catch-up replay from %s: %zu readings of new series"
			 " refused: the station has its budget of %d series", r->from_hub, refused,
			 store_series_max(in->st));
		r->refused += refused;
		if ((rc = replay_dead(in, r, tel.station, "quota", reason)) < 0)
			return rc;
	}
	/* No store_note_seq(), no ack, no last_seen: the station did not
	 * send this to us; the hooks see late readings (fresh[] as stored). */
	return run_telemetry_hooks(in, &tel, now);
}

static int put_status(struct ingest *in, const struct msg *m,
		      const struct agri_topic *t)
{
	struct agri_status s;
	struct agri_err err = {0};
	char reason[REASON_MAX];
	int rc;

	if (agri_status_decode(m->payload, m->len, &s, &err) < 0) {
		agri_err_format(&err, reason, sizeof(reason));
		return dead_letter(in, m, t->station, "invalid", reason);
	}
	if (strcmp(s.station, t->station) != 0) {
		snprintf(reason, sizeof(reason),
			 "station: \"%s\" differs from the topic's \"%s\"", s.station,
			 t->station);
		return dead_letter(in, m, t->station, "mismatch", reason);
	}
	if ((rc = store_put_status(in->st, &s, m->received_ms)) < 0)
		return rc;
	if (s.online && s.ts_ms) {
		int64_t off = s.ts_ms - m->received_ms;

		if ((rc = store_put_clock_offset(in->st, s.station, off)) < 0)
			return rc;
		/* Only a clock ahead is sure: a retained status may be old. */
		if (in->opt.clock_skew_ms > 0 && off > in->opt.clock_skew_ms &&
		    (rc = clock_event(in, s.station, off, "its clock is", "đồng hồ trạm",
				      m->received_ms)) < 0)
			return rc;
	}
	for (size_t h = 0; h < in->n_hooks; h++) {
		if (in->hooks[h].on_status &&
		    (rc = in->hooks[h].on_status(in->hooks[h].ctx, in->st, &s,
						 m->received_ms)) < 0)
			return rc;
	}
	in->c.status++;
	return 0;
}

/* A sample of the messages a station had dropped at the door. */
static int put_quota_sample(struct ingest *in, const struct msg *m,
			    const struct agri_topic *t)
{
	char reason[REASON_MAX], en[256], vi[256];
	int rc;

	snprintf(reason, sizeof(reason),
		 "messages over the station's budget (%lld a minute, %lld KiB a minute):"
		 " %llu messages, %llu bytes dropped, not acked; this one was %zu bytes",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs, (unsigned long long)m->over_bytes, m->orig_len);
	snprintf(en, sizeof(en),
		 "sends more than its budget of %lld messages and %lld KiB a minute"
		 " (%llu messages dropped)",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs);
	snprintf(vi, sizeof(vi), "gửi quá hạn mức %lld tin và %lld KiB mỗi phút (%llu tin bị bỏ)",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs);
	if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0)
		return rc;
	return quota_event(in, t->station, (double)m->over_msgs, en, vi, m->received_ms);
}

/* Isolation: m made its batch fail for what it carries (in->poison):
 * it becomes a dead letter, acked end to end like any rejected batch when
 * its station and seq can be read. */
static int put_poison(struct ingest *in, const struct msg *m, const struct agri_topic *t,
		      bool has_topic)
{
	struct agri_telemetry tel = {.readings = in->readings, .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[REASON_MAX];
	int rc;

	snprintf(reason, sizeof(reason), "could not be stored: %s (the rest of its batch was)",
		 strerror(-in->poison));
	if ((rc = dead_letter(in, m, has_topic ? t->station : "", "internal", reason)) < 0)
		return rc;
	if (has_topic && t->kind == AGRI_TOPIC_TELEMETRY && !(m->flags & MSG_QUOTA) &&
	    agri_telemetry_decode(m->payload, m->len, &tel, &err) >= 0 &&
	    strcmp(tel.station, t->station) == 0) {
		if ((rc = store_note_seq(in->st, t->station, tel.seq, m->received_ms)) < 0)
			return rc;
		ack_later(in, t->station, tel.seq);
	}
	return 0;
}

/* A topic the ingest does not own: a hook's (another hub's
 * acknowledgements), else a dead letter. */
static int put_other(struct ingest *in, const struct msg *m)
{
	char why[REASON_MAX];
	int rc;

	for (size_t h = 0; h < in->n_hooks; h++) {
		if (!in->hooks[h].on_message)
			continue;
		why[0] = '\0';
		rc = in->hooks[h].on_message(in->hooks[h].ctx, in->st, m->topic, m->payload, m->len,
					     m->received_ms, why, sizeof(why));
		if (rc == -EBADMSG) {
			/* a line each, but not a flood of them: one a second */
			int64_t now = util_mono_ms();

			if (now - in->refused_log_ms >= 1000) {
				in->refused_log_ms = now;
				log_warn(LOG, "refused topic=%s reason=\"%s\" (dead letter)", m->topic,
					 why);
			}
			return dead_letter(in, m, "", "invalid", why[0] ? why : "refused");
		}
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	return dead_letter(in, m, "", "topic", "topic: not a telemetry or status topic");
}

int in_before_commit(struct ingest *in)
{
	int rc;

	for (size_t k = 0; k < in->n_hooks; k++)
		if (in->hooks[k].before_commit &&
		    (rc = in->hooks[k].before_commit(in->hooks[k].ctx, in->st)) < 0)
			return rc;
	return 0;
}

static int put_one(struct ingest *in, const struct msg *m)
{
	struct agri_topic t;
	bool has_topic = agri_topic_parse(m->topic, in->prefix, &t) == 0 &&
			 (t.kind == AGRI_TOPIC_TELEMETRY || t.kind == AGRI_TOPIC_STATUS);

	if (in->poison)
		return put_poison(in, m, &t, has_topic);
	if (!has_topic)
		return put_other(in, m);
	if (m->flags & MSG_QUOTA)
		return put_quota_sample(in, m, &t);
	if (t.kind == AGRI_TOPIC_TELEMETRY)
		return put_telemetry(in, m, &t);
	return put_status(in, m, &t);
}

/* Stores msgs[0..n) in one transaction. Returns 0 or a negative errno
 * (the transaction is then rolled back). */
int in_apply(struct ingest *in, struct msg **msgs, size_t n)
{
	int rc;

	memset(&in->c, 0, sizeof(in->c));
	in->n_acks = 0;
	if ((rc = store_begin(in->st)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = put_one(in, msgs[i]);
	if (rc == 0)
		rc = in_before_commit(in);
	if (rc == 0)
		rc = store_commit(in->st);
	else
		store_rollback(in->st);
	return rc;
}
