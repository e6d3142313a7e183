/*
 * Ingest: the path from an MQTT message to a committed row and its
 * end-to-end ack (docs/interfaces.md §2-§4, docs/gateway.md).
 *
 *   paho thread --ingest_offer()--> bounded queue --> writer thread:
 *     take a batch of messages -> validate (protocols codecs) -> store
 *     readings / dead letters / status in one transaction -> hooks stage
 *     their own rows -> COMMIT -> one ack per station, handed to the
 *     acker thread (which publishes it) -> hooks' on_commit (notifiers,
 *     forwarders wake up).
 *
 * Nothing is acked before its commit. When the store fails (disk full,
 * locked, I/O error) the batch is rolled back and retried with backoff;
 * the queue then fills and ingest_offer() holds the paho thread, then
 * leaves messages to paho: nothing is dropped.
 *
 * Later parts attach alert evaluation and forwarders as hooks.
 */
#ifndef GATEWAY_INGEST_H
#define GATEWAY_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"
#include "core/health.h"

struct store;
struct ingest;

/* Told when a publication is done: the broker has it (ok, its PUBACK)
 * or it failed. Runs on the MQTT client's thread, at most once, and
 * never when publish() itself returned an error. */
struct ingest_sent {
	void (*fn)(struct ingest_sent *s, bool ok);
};

/* Sends an ack or another publication (QoS 1), from the acker thread or
 * from the thread in ingest_offer(). sent may be NULL. Returns 0, or a
 * negative errno (-ENOTCONN when offline: the station will resend and be
 * acked again). */
struct ingest_publisher {
	void *ctx;
	int (*publish)(void *ctx, const char *topic, const void *payload,
		       size_t len, bool retained, struct ingest_sent *sent);
};

/* Something a station did that technicians should hear about, or the
 * hub's own storage failing (docs/security.md). */
enum ingest_event_kind {
	INGEST_EV_QUOTA, /* past one of its budgets: "misbehaving" */
	INGEST_EV_CLOCK, /* readings or status outside the clock window */
	INGEST_EV_HUB,   /* the hub could not store (station = the hub's id) */
	INGEST_EV_CALIBRATION, /* a sensor's last calibration is too old (calibration.c) */
};

struct ingest_event {
	enum ingest_event_kind kind;
	const char *station;
	double value;        /* QUOTA: items over budget; CLOCK: offset, s; HUB: outage, s;
			      * CALIBRATION: days overdue */
	char detail_en[256]; /* one line with the figures */
	char detail_vi[256];
	int64_t at_ms;       /* gateway clock */
};

/*
 * A stage of the pipeline after the store (alert engine, forwarders). All
 * callbacks run on the writer thread; any may be NULL.
 * on_telemetry/on_status run inside the batch's transaction (write your
 * own tables through store_db()); returning a negative errno rolls the
 * whole batch back and it is retried. fresh[i] tells whether
 * t->readings[i] was new (false: a redelivered duplicate).
 * on_commit runs after the commit and the acks; on_rollback after a
 * failed batch (forget what was staged).
 */
struct ingest_hook {
	const char *name;
	void *ctx;
	int (*on_telemetry)(void *ctx, struct store *st,
			    const struct agri_telemetry *t, const bool *fresh,
			    int64_t received_ms);
	int (*on_status)(void *ctx, struct store *st,
			 const struct agri_status *s, int64_t received_ms);
	/* Before a live telemetry batch's readings are stored: may mark a
	 * reading suspect with a reason of the gateway's own (drift.c:
	 * a probe that drifts against its neighbours). Not for imports. */
	int (*on_readings)(void *ctx, struct store *st, struct agri_telemetry *t);
	/* Last in every transaction (batch, tick, ingest_call), just before
	 * the COMMIT: write what the transaction's events staged (once per
	 * transaction, not per message). A negative errno rolls back. */
	int (*before_commit)(void *ctx, struct store *st);
	void (*on_commit)(void *ctx);
	void (*on_rollback)(void *ctx);
	/* An ingest_event, inside the transaction that recorded its dead
	 * letter (the tick's, for INGEST_EV_HUB). */
	int (*on_event)(void *ctx, struct store *st, const struct ingest_event *ev);
	/* A series its station no longer sends was retired from the station's
	 * budget to make room (forget its per-series state). */
	int (*on_series_retired)(void *ctx, struct store *st, const char *station,
				 const char *sensor, const char *metric);
	/* A message on a topic the ingest does not own (neither a station's
	 * telemetry nor its status), inside its batch's transaction, in the
	 * order it came: 1 when the hook took it, 0 when it is not the
	 * hook's; -EBADMSG when it is the hook's but refused (why, a line
	 * of at most why_len, says why: the ingest keeps it as an "invalid"
	 * dead letter); another negative errno rolls the batch back. The
	 * acknowledgements of another hub (alerts/hub_ack.h). */
	int (*on_message)(void *ctx, struct store *st, const char *topic,
			  const void *payload, size_t len, int64_t received_ms,
			  char *why, size_t why_len);
	/* Periodic work on the writer thread (timers: silence, renotify),
	 * about once a second, inside its own transaction like a batch. */
	int (*on_tick)(void *ctx, struct store *st, int64_t now_ms);
	/* The oldest reading ts (ms) this stage still needs; retention never
	 * deletes raw readings at or after it. INT64_MAX: nothing pending. */
	int64_t (*retention_floor_ms)(void *ctx);
};

#define INGEST_HOOKS_MAX 12

struct ingest_options {
	const char *topic_prefix;  /* default agri/v1 */
	size_t queue_max;          /* messages; default 1024 */
	size_t queue_bytes_max;    /* payload bytes; default 1 MiB */
	size_t batch_max;          /* messages per commit; default 256 */
	int retention_days;        /* 0: keep raw readings forever */
	int64_t full_wait_ms;      /* how long ingest_offer() waits for room; default 1000 */
	const char *hub_id;        /* the hub's name in its own alerts (broker.client_id) */
	/* Per-station budgets (0: no limit), token buckets holding two
	 * minutes' worth. Messages and bytes are counted as they arrive (on
	 * paho's thread, before the queue): the excess is dropped there, not
	 * acked end to end (the station keeps it and resends), and sampled
	 * into a "quota" dead letter. Readings are counted by the writer. */
	int64_t readings_per_min, messages_per_min, bytes_per_min;
	int64_t dead_letters_per_min; /* stored; the rest only counted */
	/* The clock window: a reading stamped after now + clock_skew_ms or
	 * before now - backlog_ms is a "clock" dead letter (0: no check). */
	int64_t clock_skew_ms, backlog_ms;
	int64_t dead_max_age_ms;      /* dead letters older are deleted (0: kept) */
};

struct ingest *ingest_new(struct store *st, const struct ingest_options *opt,
			  const struct ingest_publisher *pub,
			  struct gateway_health *health);
/* Before ingest_start(). Returns 0 or -ENOSPC. */
int ingest_add_hook(struct ingest *in, const struct ingest_hook *hook);
int ingest_start(struct ingest *in);

/*
 * Takes a copy of a message (paho thread). Returns 1 when queued, 0 when
 * not (queue full for full_wait_ms, or shutting down: the caller keeps
 * the message; paho redelivers it, and without an end-to-end ack the
 * station resends it). Note that paho holds its own lock meanwhile, so the
 * wait is short and nothing else in the gateway waits for paho while it
 * holds a lock the writer needs.
 */
/* True once ingest_stop() began (hooks: write what you deferred). */
bool ingest_stopping(struct ingest *in);

/* True while the writer works through a backlog (batches of 128+
 * messages, until 10 s after the last): work that can wait (refitting
 * forecasts) waits. Any thread. */
bool ingest_backlogged(struct ingest *in);

int ingest_offer(struct ingest *in, const char *topic, size_t topic_len,
		 const void *payload, size_t len);

/*
 * Runs fn(ctx, in, st) on the writer thread inside a transaction, like a
 * batch: committed when fn returns >= 0 (then hooks' on_commit run),
 * rolled back otherwise (hooks' on_rollback). Any thread but the writer;
 * waits up to timeout_ms for the result. Returns fn's result, -ETIMEDOUT
 * (fn may still run later) or -ESHUTDOWN.
 */
typedef int (*ingest_call_fn)(void *ctx, struct ingest *in, struct store *st);
int ingest_call(struct ingest *in, ingest_call_fn fn, void *ctx,
		int64_t timeout_ms);

/*
 * Inside an ingest_call: stores t's readings as if they had arrived as
 * telemetry (no seq, no ack) and runs the hooks' on_telemetry, so history
 * imports feed the alert engine and forwarders too. Returns the number of
 * new readings or a negative errno.
 */
int ingest_put_readings(struct ingest *in, const struct agri_telemetry *t,
			int64_t received_ms);

/*
 * A catch-up replay (core/catchup.h): readings another hub holds and this
 * one lacks, sent as a telemetry batch on <prefix>/hub/<hub>/catchup/replay.
 * Inside an ingest_call: validated like telemetry (the schema, the station
 * known here, the readings asked for (expect), the station's readings and
 * series budgets, the clock window), stored (repeats are no-ops) and fed
 * to the hooks as late readings; never acked, no seq noted, last_seen
 * untouched. What is refused is a dead letter of kind "replay" (or
 * "quota", "clock") with its reason. Returns 0 (received and stored
 * filled in) or a negative errno of the store (the call rolls back).
 */
struct ingest_replay {
	const char *topic, *from_hub;
	const char *payload;
	size_t len;      /* bytes in payload */
	size_t orig_len; /* the message's size (more than len: too big, cut) */
	size_t max_len;  /* the largest accepted */
	bool (*expect)(void *ctx, const char *station, int64_t ts_ms);
	void *ctx;
	/* out */
	char station[AGRI_ID_MAX + 1];
	int64_t first_ts_ms;
	size_t received, stored, refused;
	size_t unasked;  /* readings of hours expect() refused: dropped, not dead
			  * letters (another hub's answer, a late one, one asked
			  * before a restart: docs/ha.md "Catch-up") */
};
int ingest_put_replay(struct ingest *in, struct ingest_replay *r);

/* From a hook's on_tick (writer thread, inside the tick's transaction):
 * tells every hook's on_event about ev, as the ingest does for its own
 * events (the alert engine raises the built-in rule of its kind).
 * Returns 0 or a hook's negative errno (the transaction rolls back). */
int ingest_raise_event(struct ingest *in, const struct ingest_event *ev);

/* Queues a QoS 1 publication for the publisher thread (the writer must
 * never call paho itself). Any thread. Returns 0 or -ENOSPC/-ENOMEM. */
int ingest_publish_later(struct ingest *in, const char *topic,
			 const void *payload, size_t len, bool retained);

/* Waits until the queue is empty and the writer idle, up to timeout_ms.
 * Returns 0 or -ETIMEDOUT. For tests and benchmarks. */
int ingest_flush(struct ingest *in, int64_t timeout_ms);

/* Shutdown: refuses new messages, commits what is queued and sends its
 * acks (up to deadline_ms on the monotonic clock), stops the threads.
 * Call before disconnecting the broker. */
void ingest_stop(struct ingest *in, int64_t deadline_ms);
/* Frees; accepts NULL. Stops first if needed. */
void ingest_free(struct ingest *in);

#endif
