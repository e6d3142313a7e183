/*
 * The alert engine (docs/interfaces.md §5, docs/alerts.md): a pure state machine
 * over the rules of rules.h. Readings, station status, acknowledgements
 * and a periodic tick go in, each with the time; transitions come out
 * through a callback. No I/O, no clock reads, no allocation beyond its own
 * per-key state (bounded: ALERT_KEYS_MAX keys, window rings capped by the
 * rule's max_points).
 *
 * State is kept per key: (rule, station[, sensor]), one key per alert id
 * "<rule>/<station>[/<sensor>]", plus one record per station ("@<station>":
 * last seen, offline). Every key can be exported as a compact blob and
 * imported again, so the gateway stores the state of the keys a batch
 * touched in the batch's own transaction, and a restart resumes without a
 * duplicate or lost transition. alert_engine_begin/commit/rollback make a
 * batch atomic in memory too: a rolled-back batch leaves the engine as it
 * was, so its retry produces the same transitions.
 *
 * Locking: none. One thread (the gateway's writer thread) owns an engine
 * and makes every call; acknowledgements from the HTTP API are handed to it.
 */
#ifndef GATEWAY_ALERT_H
#define GATEWAY_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"
#include "gateway/rules.h"

/* All keys, a memory guard only: the budgets that matter are per station
 * (alert_engine_set_limits). Past either a key is not created (counted in
 * keys_refused), never an error. */
#define ALERT_KEYS_MAX (4 * 1024 * 1024)

enum alert_event {
	ALERT_EV_RAISED = 0, /* a new episode: state active */
	ALERT_EV_SEVERITY,   /* a ladder level changed: severity updated */
	ALERT_EV_ACKED,      /* active -> acknowledged */
	ALERT_EV_CLEARED,    /* -> cleared (the condition ended) */
	ALERT_EV_CLOSED,     /* a cleared alert was acknowledged: empty the topic */
	ALERT_EV_RENOTIFY,   /* reminder of an unacknowledged active alert */
	ALERT_EV_ESCALATED,  /* still unacknowledged after escalate.after_s */
	/* Late and out-of-order readings (docs/alerts.md, Reading order): */
	ALERT_EV_REVISED,    /* an episode's start or end moved: stored, not notified */
	ALERT_EV_RETRACTED,  /* an episode did not happen after all (stored;
			      * notified when it had been told as active) */
	ALERT_EV_PAST,       /* late news of one alert, its episodes over: notify only */
	ALERT_EV_LATE,       /* late news of one alert, still active: notify only */
};

/* A time not set (an episode still open). */
#define ALERT_TS_NONE INT64_MIN

const char *alert_event_name(enum alert_event ev);

/*
 * One transition: the alert as it is after it (alert.state, .severity,
 * .message in the rules' language) and what the gateway should do.
 *   store:   add a v_alert_events row and upsert v_alerts (false only for
 *            RENOTIFY/ESCALATED, which change nothing);
 *   publish: publish alert as JSON on the retained alert topic;
 *   retain_empty: publish an empty retained message instead (CLOSED, and
 *            CLEARED of an alert already acknowledged);
 *   notify:  send to rule->notify; notify_escalation: to rule->escalate
 *            too (set on ESCALATED and on every later notification of an
 *            escalated episode).
 * rule points into the struct rules the engine was made with. The struct
 * is only valid during the callback.
 */
struct alert_transition {
	struct agri_alert alert;
	enum alert_event event;
	const struct rule *rule;
	bool acked;          /* someone acknowledged this episode */
	bool store, publish, retain_empty, notify, notify_escalation;
	char message_en[sizeof(((struct agri_alert *)0)->message)];
	char message_vi[sizeof(((struct agri_alert *)0)->message)];
	char who[64];        /* ACKED/CLOSED: who acknowledged */
	int64_t night_day;   /* RAISED by a peak rule: the local day number (days
			      * since 1970-01-01, UTC+offset) of the peak night;
			      * -1 otherwise */
	/* Event time: */
	bool late;           /* its evidence is older than late_after_s (notified
			      * later, summarised: PAST/LATE) */
	bool history;        /* RAISED/CLEARED of an episode older than the
			      * alert's current one (found in late readings):
			      * stored in its history and episodes, not as its
			      * current state; not published */
	int64_t event_ms;    /* the reading time it happened at (the episode's
			      * start for REVISED, RETRACTED, PAST, LATE) */
	int64_t end_ms;      /* REVISED/RETRACTED/PAST: the episode's end
			      * (ALERT_TS_NONE: still open) */
	int64_t old_start_ms, old_end_ms; /* REVISED: the episode as stored */
	const char *peak;    /* RAISED (from a replay), REVISED: the worst
			      * severity the episode reached (a static name;
			      * NULL: the severity, or as stored) */
	int64_t arrived_ms;  /* now: when the gateway learned it */
};

/*
 * The channels t is to be delivered on: t->rule->notify when t->notify,
 * plus t->rule->escalate when t->notify_escalation, each name once.
 * Writes at most max names (pointers into the rule) and returns how many.
 */
size_t alert_transition_channels(const struct alert_transition *t, const char **names,
				 size_t max);

/* Called once per transition, in order. */
typedef void (*alert_emit_fn)(void *ctx, const struct alert_transition *t);

struct alert_engine;

/* A new engine over rules (borrowed: must outlive the engine). NULL on
 * ENOMEM. */
struct alert_engine *alert_engine_new(const struct rules *rules);
void alert_engine_free(struct alert_engine *eng);

/*
 * Sets the time the engine (re)started: silence (no_data) is measured
 * from max(last seen, start), so a gateway that was down does not blame
 * its stations. Call after importing the saved state.
 */
void alert_engine_start(struct alert_engine *eng, int64_t now_ms);

/*
 * Feeds one stored reading of station (r->ts_ms is when it was measured,
 * now_ms when it was received). Feed readings only once (the store's
 * "fresh" ones), in any order: with a source, a reading older than what a
 * key has seen is evaluated in reading order (held and replayed, see
 * docs/alerts.md "Reading order"); without one it is ignored by that key.
 * Returns the number of transitions emitted, or a negative errno
 * (-EINVAL for a bad argument; -ENOMEM leaves the engine unchanged
 * for the keys it could not create).
 */
int alert_engine_reading(struct alert_engine *eng, const char *station,
			 const struct agri_reading *r, int64_t now_ms,
			 alert_emit_fn emit, void *ctx);

/*
 * Where the engine reads a station's stored readings back (the gateway's
 * store; tests give their own), to evaluate late readings in reading
 * order. Every function returns a count or a negative errno; rows come
 * oldest first.
 *   metrics: the metrics stored for (station, sensor), into out[max].
 *   rows:    up to max readings of (station, sensor, metric) with ts >
 *            after_ms.
 *   holes:   the gaps longer than min_gap_ms between the station's
 *            readings (any series) in [from_ms, to_ms] (from_ms itself
 *            counts as a reading), as [start, end] pairs, up to max.
 * Called on the engine's thread, inside the caller's transaction.
 */
struct alert_row {
	int64_t ts;
	double value;
	bool has_value;
	enum agri_quality q;
	char why[AGRI_WHY_MAX + 1];
};

struct alert_source {
	void *ctx;
	int (*metrics)(void *ctx, const char *station, const char *sensor,
		       char (*out)[AGRI_ID_MAX + 1], size_t max);
	int (*rows)(void *ctx, const char *station, const char *sensor, const char *metric,
		    int64_t after_ms, struct alert_row *out, size_t max);
	int (*holes)(void *ctx, const char *station, int64_t from_ms, int64_t to_ms,
		     int64_t min_gap_ms, int64_t (*out)[2], size_t max);
};

/* Gives the engine its source (borrowed). Without one, a reading older
 * than the newest a key has seen is ignored by that key (late_readings). */
void alert_engine_set_source(struct alert_engine *eng, const struct alert_source *src);

/* The real (monotonic) clock, ms: a station's late data settles after
 * late_settle_s of it. Set before each transaction. */
void alert_engine_set_mono(struct alert_engine *eng, int64_t mono_ms);

/* Quiet: late news is not summarised for notification (history import). */
void alert_engine_set_quiet(struct alert_engine *eng, bool quiet);

/*
 * Evaluates what must not wait for the next tick: stations with a fresh
 * reading out of order, or that held HOLD_MAX late readings (bounded per
 * station and per call). Call once per transaction before exporting.
 * Returns the number of transitions or a negative errno.
 */
int alert_engine_flush(struct alert_engine *eng, int64_t now_ms, alert_emit_fn emit,
		       void *ctx);

/* A station's online status says depth batches wait in its spool. Over
 * one, a backlog comes: the station's no_data alerts clear and its late
 * news goes out once that backlog has come and settled (or after
 * BACKLOG_WAIT_MS, or a status with depth <= 1), with the true extent of
 * the gap. */
void alert_engine_backlog(struct alert_engine *eng, const char *station, uint64_t depth);

/* Feeds every reading of t for which fresh[i] (NULL: all). Returns the
 * number of transitions or the first negative errno. */
int alert_engine_batch(struct alert_engine *eng, const struct agri_telemetry *t,
		       const bool *fresh, int64_t now_ms, alert_emit_fn emit,
		       void *ctx);

/* A station status (§2): offline (its Last Will, or a clean "offline")
 * raises its no_data alerts at once; online restarts the silence timer.
 * Returns the number of transitions or a negative errno. */
int alert_engine_status(struct alert_engine *eng, const char *station,
			bool online, int64_t now_ms, alert_emit_fn emit,
			void *ctx);

/* Timers: no_data silence, renotify, escalation; stations whose late data
 * settled (late_settle_s without any): their held readings replayed, their
 * late news summarised, their no_data alerts closed. Call every few
 * seconds. Returns the number of transitions or a negative errno. */
int alert_engine_tick(struct alert_engine *eng, int64_t now_ms,
		      alert_emit_fn emit, void *ctx);

/*
 * Acknowledges alert id (who: a user or token name, may be ""). Active ->
 * acknowledged (ACKED); cleared and unacknowledged -> CLOSED (the topic is
 * emptied). Returns 1 (one transition), 0 when already acknowledged (no
 * transition), -ENOENT when no such alert is open.
 */
int alert_engine_ack(struct alert_engine *eng, const char *id, const char *who,
		     int64_t now_ms, alert_emit_fn emit, void *ctx);

/* True when id names a key of these rules: the rule exists here and
 * covers that station (and sensor), whether or not an alert is open. */
bool alert_engine_covers(const struct alert_engine *eng, const char *id);

/* Copies the open alert id (active, acknowledged or cleared-unacked) into
 * *out. Returns 0 or -ENOENT. */
int alert_engine_get(const struct alert_engine *eng, const char *id,
		     struct agri_alert *out);

/* Calls fn for every open alert, in key creation order. */
void alert_engine_foreach(const struct alert_engine *eng,
			  void (*fn)(void *ctx, const struct agri_alert *a),
			  void *ctx);

/*
 * Export: calls fn(ctx, key, blob, len) for every key (dirty_only: for
 * every key changed since the last export, then marks them clean). key is
 * the alert id or "@<station>"; blob is only valid during the call. A
 * blob holds the key's open alert and its condition state (window rings
 * included), at most a few hundred bytes plus 16 bytes a ring point.
 * Returns the number of keys exported, or the first negative value fn
 * returned (the rest stay dirty).
 */
int alert_engine_export(struct alert_engine *eng, bool dirty_only,
			int (*fn)(void *ctx, const char *key, const void *blob,
				  size_t len),
			void *ctx);

/*
 * As alert_engine_export(dirty_only), but a threshold, ladder or no_data
 * key (and a station record) whose decision state (levels on, hold
 * starts, open alert, offline) is as last written, so that only its
 * evidence changed (newest reading ts and value, last seen), waits in a
 * queue written oldest first at a steady pace over the calls (now_ms: the
 * caller's clock), so that each such key waits about defer_ms (one that
 * has waited defer_ms goes in the next call), and keys touched together
 * are written a few per call; it stays
 * dirty until then. A crash loses at most defer_ms of such evidence
 * (docs/alerts.md "Persistence"). defer_ms <= 0: everything now.
 */
int alert_engine_export_due(struct alert_engine *eng, int64_t now_ms, int64_t defer_ms,
			    int (*fn)(void *ctx, const char *key, const void *blob,
				      size_t len),
			    void *ctx);

/*
 * Imports one exported key (call before the first reading, any order).
 * A key whose rule's fingerprint changed keeps its open alert but starts
 * its condition state afresh. Returns 0, -ENOENT when the rule no longer
 * exists or no longer matches the station/sensor (drop the row), -EBADMSG
 * for a corrupt blob, -ENOMEM.
 */
int alert_engine_import(struct alert_engine *eng, const char *key,
			const void *blob, size_t len);

/*
 * In-memory transactions around one batch: begin, feed, then commit (the
 * batch's rows are durable) or rollback (they are not: every key the batch
 * touched returns to its state at begin, keys it created disappear).
 * Export(dirty_only) inside the transaction, before the store commits.
 * Returns 0 or -ENOMEM (begin: nothing to undo yet).
 */
int alert_engine_begin(struct alert_engine *eng);
void alert_engine_commit(struct alert_engine *eng);
void alert_engine_rollback(struct alert_engine *eng);

/*
 * keep false: no undo images (touching a key in a transaction then costs
 * no encode and no allocation); alert_engine_rollback() then only ends the
 * transaction and the caller must rebuild the engine from what it stored
 * (alerting.c re-imports alert_state: rollbacks are rare, disk full).
 */
void alert_engine_set_undo(struct alert_engine *eng, bool keep);
/* The now_ms given to alert_engine_start() (to carry it over a rebuild). */
int64_t alert_engine_started(const struct alert_engine *eng);

struct alert_engine_stats {
	size_t keys;          /* per-key states */
	size_t open_alerts;   /* active, acknowledged or cleared-unacked */
	uint64_t keys_refused; /* keys not created: ALERT_KEYS_MAX reached */
	uint64_t late_readings; /* readings ignored as not newer than a key's last */
	uint64_t raises_refused; /* raises waiting: the station's open-alert budget */
	uint64_t held;        /* late readings held for a replay in reading order */
	uint64_t replays;     /* keys replayed */
	uint64_t replayed_rows; /* rows read back for replays */
	uint64_t late_dropped; /* readings too late to replay (past replay_max_s
				* or a budget): ignored by a key */
};
void alert_engine_stats(const struct alert_engine *eng,
			struct alert_engine_stats *out);

/*
 * Per-station budgets (0: none, the default): a station's rule keys (a
 * new key past it is not created: its readings are not evaluated by that
 * rule) and its open alerts (a raise past it waits until one closes). A
 * station's own event alerts (misbehaving, clock) always get their key
 * and always raise. A station is counted by its record "@station".
 */
void alert_engine_set_limits(struct alert_engine *eng, size_t keys_per_station,
			     size_t open_per_station);

/*
 * A gateway event about station (kind: RULE_MISBEHAVING, RULE_CLOCK or
 * RULE_HUB; for the hub, station is the hub's id): raises the station's
 * alert of every rule of that kind, with detail (one line, both
 * languages) and value, unless it is already active; the alert clears
 * after_s after the last event (alert_engine_tick). Returns the number of
 * transitions or a negative errno.
 */
int alert_engine_event(struct alert_engine *eng, enum rule_kind kind, const char *station,
		       double value, const char *detail_en, const char *detail_vi,
		       int64_t now_ms, alert_emit_fn emit, void *ctx);

/*
 * Forgets the per-sensor keys of (station, sensor) for the rules on
 * metric that have no open alert (the series was retired from its
 * station's budget). fn(ctx, key, NULL, 0) is told each forgotten key
 * (delete its saved state). Returns how many, or fn's negative value.
 */
int alert_engine_forget(struct alert_engine *eng, const char *station, const char *sensor,
			const char *metric,
			int (*fn)(void *ctx, const char *key, const void *blob, size_t len),
			void *ctx);

#endif
