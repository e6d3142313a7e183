/*
 * The persistent outbox (docs/notify.md): notifications wait in the
 * gateway's SQLite until their channel has taken them.
 *
 *   writer thread, inside the ingest batch's transaction:
 *     alert transition -> outbox_stage(): one row per channel
 *   COMMIT -> ingest hook on_commit -> outbox_wake()
 *   one notifier thread per channel, its own SQLite connection:
 *     oldest pending row of the channel -> deliver -> mark delivered
 *     (failure: the same row again after a jittered exponential backoff)
 *
 * A transition and its notifications commit together, so a crash before
 * the commit loses both (the station resends, the engine produces the same
 * transition) and a crash after it leaves the rows to deliver after the
 * restart. Rows of a channel go out strictly in id (= commit) order, each
 * until it succeeds: a channel down for an hour gets every notification
 * afterwards, in order; one channel down never delays another. Delivery is
 * at-least-once: a crash between the receiver's 2xx and the row's update
 * (a few ms) resends that one row after the restart, with the same
 * delivery id (X-Agri-Delivery header, e-mail Message-ID) so a receiver
 * can drop the duplicate.
 *
 * Locking rules: outbox_stage()/outbox_init() run on the caller's
 * connection (the writer's). Each channel's connection, statements, rng
 * and complaint belong to its notifier thread (or to the caller of
 * outbox_step() when the threads are not started). ob->mu guards wake_seq
 * and stopping; the counters are atomics.
 */
#ifndef GATEWAY_OUTBOX_H
#define GATEWAY_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;
struct ingest_hook;
struct agri_alert;

/*
 * What a channel delivers: an alert (its interfaces.md §5 JSON is the payload) and the
 * text people read. The rooms that raise things (the alert engine's
 * wiring, the forecast worker's windows and advisories) fill it; the
 * outbox needs nothing of theirs.
 */
struct outbox_notice {
	const struct agri_alert *alert;
	const char *event;            /* "raised", "cleared", "renotify"... */
	const char *text_en, *text_vi;
	/* Which transition of the episode this is, for the episode key (see
	 * outbox_episode_key): NULL = the event, or for "severity" the event,
	 * the new severity and updated_at. Repeated events (reminders) name
	 * their own: "renotify#3". */
	const char *transition;
};

/*
 * A message for one person (the policy's, docs/notify.md "People"): its
 * stable id, the person's name, its kind ("alert", "bulletin"), the
 * payload a webhook gets, both long texts and the SMS form.
 */
struct outbox_message {
	const char *id;
	const char *person;
	const char *kind;
	const char *payload;
	const char *text_en, *text_vi;
	const char *sms;
};

/* Where a person's message goes: a channel and, for e-mail and SMS, the
 * person's own address instead of the channel's "to" list. */
struct outbox_route {
	const char *channel;
	const char *address;   /* NULL or "": the channel's own recipients */
};

/* One pending row as handed to a channel. Valid during the call. */
struct outbox_item {
	int64_t id;
	const char *channel;
	const char *episode;    /* the episode key; "" for rows staged before it */
	const char *transition; /* "raised", "cleared", "severity:alarm@..."... */
	const char *alert_id;   /* a person's message: its stable id */
	const char *event;      /* "raised", "cleared", "renotify"...; "alert", "bulletin" */
	const char *payload;    /* the alert JSON (agri_alert_encode), or the message's */
	size_t payload_len;
	const char *text_en, *text_vi;
	const char *person;     /* "" for an alert to a channel */
	const char *address;    /* "" = the channel's recipients */
	const char *sms;        /* a person's SMS form ("" = rendered from the texts) */
	int64_t created_at_ms;  /* wall clock when staged */
	int attempts;           /* failed attempts before this one */
};

/*
 * Delivers one row. Returns 0 (delivered: the row is marked at once),
 * -EPERM (refused for good: the row is dropped, logged and counted) or
 * another negative errno (transient: retried later). err: a one-line
 * reason. Called on the channel's notifier thread.
 */
typedef int (*outbox_deliver_fn)(void *ctx, const struct outbox_item *it,
				 char *err, size_t err_len);

struct outbox_channel {
	const char *name;  /* copied */
	outbox_deliver_fn deliver;
	void *ctx;         /* borrowed: must outlive the outbox */
};

struct outbox_options {
	bool sync_full;           /* synchronous=FULL on the notifiers' connections */
	int64_t backoff_base_ms;  /* first retry delay; default 1000 */
	int64_t backoff_cap_ms;   /* default 60000 */
	int64_t poll_ms;          /* look for rows at least this often; default 5000 */
	int64_t keep_s;           /* delivered/dropped rows kept; default 7 days */
	/* The clock for next_at/delivered_at (default: CLOCK_REALTIME, not the
	 * simulated clock: retries are about real networks). */
	int64_t (*now_ms)(void *ctx);
	void *clock_ctx;
	uint32_t seed;            /* backoff jitter; 0: from the clock */
	/* Notification claims (claims.h, docs/ha.md): NULL = none, every
	 * row is sent. Otherwise a row with an episode key is claimed before
	 * it is sent; a row the other hub claimed is marked done by it
	 * (delivered_at set, claim "peer:<hub>"), without a delivery.
	 * Borrowed: must outlive the outbox. */
	struct claims *claims;
};

#define OUTBOX_CHANNELS_MAX 32

/*
 * The episode key of alert a: "<alert id>@<raised_at ms>". raised_at is
 * the reading time the episode started at, so two gateways that stored
 * the same readings derive the same key, whatever order they arrived in
 * (docs/alerts.md "Reading order"; docs/ha.md). Returns the length or
 * -ENOSPC.
 */
int outbox_episode_key(const struct agri_alert *a, char *buf, size_t len);

/* Creates the outbox table and index if missing (CREATE ... IF NOT
 * EXISTS). Any connection, e.g. the writer's at start-up. Returns 0 or a
 * negative errno. */
int outbox_init(struct sqlite3 *db);

/*
 * Stages n for each of channels[0..n_channels) (duplicate names once): inserts
 * one pending row a channel on db, in the caller's transaction (nothing
 * is visible to the notifiers before COMMIT; a ROLLBACK removes them).
 * Writer thread. Returns the number of rows, or a negative errno (-EINVAL:
 * an empty/NULL name; -ENOSPC disk full; -EBUSY...): roll the batch back.
 */
int outbox_stage(struct sqlite3 *db, const struct outbox_notice *n,
		 const char *const *channels, size_t n_channels);

/*
 * Stages a person's message m on routes[0..n) (a channel named twice with
 * the same address once), in the caller's transaction like
 * outbox_stage(). The rows carry m->id as their alert_id (the stable id a
 * receiver or another hub deduplicates on), m->kind as their event.
 * Writer thread. Returns the number of rows or a negative errno.
 */
int outbox_stage_message(struct sqlite3 *db, const struct outbox_message *m,
			 const struct outbox_route *routes, size_t n);

struct outbox;

/*
 * An outbox over the database at db_path (the gateway's) delivering to
 * chans[0..n). Opens one connection a channel (WAL, busy timeout) and
 * creates the table if needed. NULL with *err set (-ENOMEM, -EINVAL,
 * SQLite errors as negative errno).
 */
struct outbox *outbox_new(const char *db_path, const struct outbox_channel *chans,
			  size_t n, const struct outbox_options *opt, int *err);

/* Starts one notifier thread a channel. Returns 0 or a negative errno. */
int outbox_start(struct outbox *ob);

/* Wakes every notifier (rows were committed). Any thread; cheap. */
void outbox_wake(struct outbox *ob);

/* Fills *hook with an ingest hook whose on_commit wakes the notifiers
 * (the outbox must outlive the ingest). */
void outbox_hook(struct outbox *ob, struct ingest_hook *hook);

/* Stops and joins the notifiers; a delivery in flight finishes first
 * (bounded by the channel's timeout). Accepts NULL; idempotent. */
void outbox_stop(struct outbox *ob);
/* Stops, closes, frees; accepts NULL. */
void outbox_free(struct outbox *ob);

/*
 * One step of channel ch (the notifier's loop body; call it directly in
 * tests, with the threads not started): if the channel's oldest pending
 * row is due, delivers it. Returns 1 when a row was delivered or dropped,
 * 0 when nothing was due (*next_ms: when the head row is due, INT64_MAX
 * when there is none), or the negative errno of a failed attempt (the row
 * is rescheduled; *next_ms is its new due time).
 */
int outbox_step(struct outbox *ob, size_t ch, int64_t *next_ms);

struct outbox_stats {
	uint64_t delivered;        /* since start */
	uint64_t failed_attempts;  /* transient failures since start */
	uint64_t dropped;          /* refused for good since start */
	uint64_t pending;          /* rows waiting (refreshed at most 1/s) */
	int64_t oldest_pending_ms; /* created_at of the oldest, 0 when none */
	bool up;                   /* the last attempt succeeded (or none yet) */
	uint64_t peer;             /* rows the other hub claimed since start */
};
/* Counters of channel ch. Any thread. Returns 0 or -ENOENT. */
int outbox_stats(struct outbox *ob, size_t ch, struct outbox_stats *out);

/*
 * Prometheus text for /metrics: per channel
 * agri_gateway_outbox_{delivered_total,failed_attempts_total,dropped_total,
 * pending,oldest_pending_seconds,up}{channel="..."}. Any thread. Returns
 * the length written or -ENOSPC. Fits http_hooks.metrics with ctx = ob.
 */
int outbox_metrics_text(void *ob, char *buf, size_t len);

#endif
