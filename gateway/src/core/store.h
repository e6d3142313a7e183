/*
 * The gateway's SQLite store (docs/store.md): readings keyed by their
 * identity (station, sensor, metric, ts) so a redelivery is a no-op, dead
 * letters, the station registry with per-station received seq ranges (gap
 * detection), hourly aggregates kept after raw retention, the alert tables
 * (filled by the alert engine), and the stable views of docs/interfaces.md §6.
 *
 * WAL mode, numbered migrations (PRAGMA user_version), prepared statements
 * kept open, explicit transactions: the ingest writer opens one with
 * store_begin(), adds a batch, and store_commit()s it before any ack.
 *
 * Thread rules: a struct store is used by one thread at a time (the ingest
 * writer); store_checkpoint() alone may be called from another thread (it
 * uses its own connection). Functions return 0 (or a count) or a negative
 * errno: SQLITE_FULL -> -ENOSPC, BUSY/LOCKED -> -EBUSY, IOERR -> -EIO,
 * READONLY -> -EROFS, CORRUPT/NOTADB -> -EUCLEAN, CANTOPEN -> -EACCES.
 */
#ifndef GATEWAY_STORE_H
#define GATEWAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"

struct sqlite3;
struct store;

#define STORE_SCHEMA_VERSION 6

struct store_options {
	bool sync_full;     /* synchronous=FULL (power-safe) vs NORMAL */
	bool track_gaps;    /* false in a shared subscription: each gateway
			       sees only part of a station's seqs */
	int cache_kib;      /* SQLite page cache under load; 0 = default (4096).
			       A quarter of it (at least 256) otherwise. */
	int busy_timeout_ms;/* 0 = default (2000) */
	/* Per station: distinct (sensor, metric) series (0: no limit); a new
	 * one past it takes the place of a series silent for series_idle_days
	 * (default 7), else store_put_reading() refuses it with -EDQUOT. */
	int series_max;
	int series_idle_days;
	int64_t dead_bytes_max;   /* all dead letters (0: no limit); oldest go first */
	size_t dead_payload_max;  /* bytes of a payload kept (0: all) */
};

/* A series retired from its station's budget to make room (its readings
 * stay; it comes back, within the budget, when it sends again). */
struct store_retired {
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	char metric[AGRI_ID_MAX + 1];
};
#define STORE_RETIRED_MAX 16

/* Opens (creating and migrating) the database at path. Returns the store,
 * or NULL with *err set (-EPROTO: schema newer than this program). */
struct store *store_open(const char *path, const struct store_options *opt,
			 int *err);
/* Closes; accepts NULL. An open transaction is rolled back. */
void store_close(struct store *st);

/* The writer connection, for modules that add their own tables inside
 * the ingest transaction (alerts, outboxes). Writer thread only. */
struct sqlite3 *store_db(struct store *st);

/* Transactions. store_commit() first writes the touched stations' state
 * (last_seen, last_seq, gaps, seq ranges). store_rollback() also forgets
 * every cached id and station state (they may name rolled-back rows). */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* Stores one reading of station. Returns 1 when new, 0 when it was
 * already stored (same identity), -EDQUOT when it would start a series
 * past the station's budget (nothing stored; the transaction stays
 * usable), or another negative errno. */
int store_put_reading(struct store *st, const char *station,
		      const struct agri_reading *r, int64_t received_ms);

/* Records that station's batch seq arrived at seen_ms (last_seen,
 * last_seq, received ranges). Returns 1 when seq is new, 0 when seen
 * before, or a negative errno. */
int store_note_seq(struct store *st, const char *station, uint64_t seq,
		   int64_t seen_ms);

/* Marks station seen (telemetry without a readable seq). */
int store_touch_station(struct store *st, const char *station,
			int64_t seen_ms);

/* Applies a status message (state, fw, board, config_version, counters;
 * spool_dropped lowers the gap count). */
int store_put_status(struct store *st, const struct agri_status *s,
		     int64_t received_ms);

/* A message the gateway could not accept (docs/store.md, Dead letters). */
struct store_dead_letter {
	const char *topic;
	const void *payload;
	size_t len;          /* the whole payload's size */
	const char *reason;  /* one line */
	const char *kind;    /* invalid, partial, mismatch, topic, quota, clock, internal */
	const char *station; /* "" or NULL when unknown */
	int64_t received_ms;
};

/* Stores a dead letter: its payload up to dead_payload_max bytes, its
 * size and SHA-256, counted per kind; the oldest dead letters are
 * deleted while all of them take more than dead_bytes_max. */
int store_put_dead_letter(struct store *st, const struct store_dead_letter *dl);

/* Counts a dead letter of kind that was not stored (its station is past
 * its dead-letter budget). n: how many. */
int store_count_dead_letters(struct store *st, const char *kind, int64_t n);

/* In its own transaction: deletes dead letters received before
 * before_ms (at most a few hundred). Returns how many, or a negative errno. */
int store_expire_dead_letters(struct store *st, int64_t before_ms);

/* The dead letters' size as counted against dead_bytes_max. */
int64_t store_dead_letter_bytes(const struct store *st);

/* The station's clock minus the gateway's (from its status), in ms. */
int store_put_clock_offset(struct store *st, const char *station, int64_t offset_ms);

/* The series budget per station (store_options.series_max). */
int store_series_max(const struct store *st);

/* The series the current transaction retired (valid until the next
 * store_begin()). */
size_t store_retired(const struct store *st, const struct store_retired **out);

/*
 * One retention step, in its own transaction (call outside a batch): moves
 * raw readings older than retention_days (whole hours) of one series into
 * readings_hourly (n, sum, min, max) and deletes them, at most about
 * max_rows rows. Returns the number of rows moved (0: nothing to do now),
 * or a negative errno.
 */
int store_retention_step(struct store *st, int64_t now_ms, int retention_days,
			 int max_rows);

/* A PASSIVE WAL checkpoint on the store's second connection; any thread,
 * never blocks the writer. Returns the number of WAL frames now in the
 * database file (0: none yet, or the WAL was empty) or a negative errno. */
int store_checkpoint(struct store *st);

/* Page cache size: cache_kib while the writer works through a backlog
 * (busy), a quarter of it otherwise; and the writer's WAL checkpoint
 * interval: 4,000 frames when busy, 1,000 otherwise. Writer thread, between transactions.
 * Returns 0 or a negative errno. */
int store_set_busy(struct store *st, bool busy);

/* Gap count of a station (for tests and /metrics), or a negative errno;
 * -ENOENT when the station is unknown. Outside a transaction. */
int64_t store_station_gaps(struct store *st, const char *station);



#endif
