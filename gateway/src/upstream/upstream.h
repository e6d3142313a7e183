/*
 * Upstream forwarders (docs/upstream.md): every reading the gateway
 * commits is forwarded to the agriculture database (PostgreSQL,
 * docs/interfaces.md §12) and/or an OGC SensorThings API server, exactly
 * once in the target.
 *
 *   writer thread (ingest hook, inside the batch's transaction):
 *     each new reading's key (series_id, ts) -> upstream_queue(seq, ...)
 *   one thread per sink, its own SQLite connection (WAL: readers never
 *     block the writer):
 *     rows after the sink's cursor -> remote commit -> cursor := last seq
 *
 * The queue is exactly the committed readings in commit order; a sink's
 * cursor (upstream_cursor) advances only after the target committed, so a
 * crash replays at most one batch, which the target absorbs (PostgreSQL:
 * primary key + ON CONFLICT DO NOTHING; SensorThings: a reconciliation
 * query before the first batch after a restart or an uncertain failure).
 * A sink that is down backs off (jittered, capped), logs one line when
 * the outage starts and one when it has caught up; it never delays ingest,
 * alerts or the other sink.
 */
#ifndef GATEWAY_UPSTREAM_H
#define GATEWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "core/ingest.h"

struct upstream;
struct claims;

#define UPSTREAM_SINKS_MAX 2

/* A snapshot of one sink's counters (upstream_metrics()). */
struct upstream_sink_metrics {
	char name[16];          /* "postgres" | "sensorthings" */
	int connected;          /* 1 when the last attempt succeeded */
	uint64_t backlog_rows;  /* queued readings after the sink's cursor */
	double backlog_age_s;   /* how long the oldest of them has waited */
	uint64_t rows_total;    /* readings the target has committed */
	double rows_per_s;      /* over the last few seconds */
	uint64_t failures_total;/* failed attempts (connect, send, schema) */
	uint64_t outages_total; /* failures after a success (one per outage) */
	uint64_t lost_total;    /* queued readings gone from the store before
				   the sink took them (retention not wired) */
	uint64_t rejected_total;/* rows the target refused for good (STA "error") */
	uint64_t duplicates_skipped_total; /* replayed rows found in the target */
};

struct upstream_metrics {
	size_t n_sinks;
	struct upstream_sink_metrics sink[UPSTREAM_SINKS_MAX];
};

/*
 * Opens the queue tables in cfg->db.path (creating them; the first time,
 * every reading already stored is queued) and prepares one sink per
 * configured upstream section. Main thread, after gateway_new() (the store
 * exists) and before gateway_start(). Returns the forwarders, or NULL with
 * *err = 0 when no upstream is configured, or NULL with a negative errno.
 */
struct upstream *upstream_new(const struct gateway_config *cfg, int *err);

/* With ha (docs/ha.md): the sinks that need it claim what they send in
 * the claims database (the SensorThings sink; docs/upstream.md, "Two
 * hubs"). Main thread, before upstream_start(); c outlives up. */
void upstream_set_claims(struct upstream *up, struct claims *c);

/* The ingest hook to attach with gateway_add_hook(); valid as long as up. */
const struct ingest_hook *upstream_hook(struct upstream *up);

/* Starts the sink threads. Main thread, after gateway_start(). */
int upstream_start(struct upstream *up);

/* Stops the sink threads: in-flight requests are cancelled (the rows are
 * sent again next time). Returns within about 1 s. Main thread, after
 * gateway_stop() (whose last commits may still wake the sinks). */
void upstream_stop(struct upstream *up);

/* Frees; accepts NULL; stops first if needed. */
void upstream_free(struct upstream *up);

/*
 * The oldest reading ts (ms) that an enabled sink has not taken yet, or
 * INT64_MAX when nothing is pending. Raw retention must not delete
 * readings at or after it. Cheap (cached; an SQL scan of the pending part
 * of the queue at most every few seconds). The ingest writer thread calls
 * it before store_retention_step(); ctx is the struct upstream.
 */
int64_t upstream_retention_floor_ms(void *ctx);

/* Fills *m with the current counters. Any thread. */
void upstream_metrics(struct upstream *up, struct upstream_metrics *m);

/*
 * Appends Prometheus text lines (agri_upstream_*{sink="..."}) to buf.
 * Returns the number of bytes written (without the NUL; buf is always
 * NUL-terminated when len > 0), or the size needed when buf is too small
 * (snprintf semantics). Any thread; up may be NULL (writes nothing).
 */
size_t upstream_metrics_text(struct upstream *up, char *buf, size_t len);

#endif
