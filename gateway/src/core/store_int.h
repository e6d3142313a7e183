/*
 * The store's insides, shared by its files (see store.h for the API): the
 * connection, its prepared statements and caches (store.c), dead letters
 * (store_dead.c), retention and checkpoints (store_retention.c). One
 * writer thread uses a struct store; store_checkpoint() alone runs on
 * another thread, on its own connection.
 */
#ifndef GATEWAY_CORE_STORE_INT_H
#define GATEWAY_CORE_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "agri/msg.h"
#include "core/store.h"

#define RANGES_MAX 1024  /* per station; older holes are then counted and forgotten */
#define CACHE_MAX 65536  /* cached stations or series before the cache is reset */
#define HOUR_MS 3600000LL

/* What a dead letter row costs, as counted against dead_bytes_max. */
#define DL_BYTES "(length(CAST(payload AS BLOB)) + length(topic) + length(reason) + 64)"

/* A string-keyed hash table with chaining, for the id caches. */
struct hentry {
	struct hentry *next;
	uint32_t hash;
	int64_t id;
	void *val; /* struct station for the station cache */
	char key[];
};

struct htab {
	struct hentry **b;
	size_t nb, n;
};

struct station {
	int64_t id;
	char name[AGRI_ID_MAX + 1];
	bool dirty, in_dirty_list, ranges_dirty, telemetry_seen;
	int64_t last_seen;     /* 0: never */
	int64_t last_seq;      /* -1: none */
	int64_t forgotten;     /* holes merged away when ranges overflowed */
	int64_t dropped;       /* the station's own spool_dropped */
	int64_t n_series;      /* series not retired; -1: not counted yet */
	int64_t idle_check_ms; /* no series could be retired before this */
	struct agri_seq_set seqs; /* received seqs */
};

enum {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_STATION_INS, S_STATION_SEL, S_RANGES_SEL,
	S_STATION_UPD, S_RANGES_DEL, S_RANGES_INS,
	S_SERIES_INS, S_SERIES_SEL, S_SERIES_COUNT, S_SERIES_IDLE, S_SERIES_RETIRE,
	S_SERIES_REVIVE,
	S_READING_INS,
	S_STATUS_FULL, S_STATUS_STATE, S_CLOCK,
	S_DEAD_INS, S_DEAD_COUNT, S_DEAD_EVICT, S_DEAD_EXPIRE,
	S_RET_NEXT_SERIES, S_RET_MIN_TS, S_RET_NTH_TS, S_RET_AGG, S_RET_DEL,
	S_COUNT
};

struct store {
	sqlite3 *db;
	sqlite3 *ckpt;    /* second connection for store_checkpoint() */
	char *path;
	struct store_options opt;
	sqlite3_stmt *s[S_COUNT];
	bool in_tx;
	struct htab stations; /* name -> struct station */
	struct htab series;   /* "station_id/sensor/metric" -> series id */
	struct station **dirty;
	size_t n_dirty, cap_dirty;
	int64_t ret_cursor;   /* retention: last series id visited */
	bool busy_cache;      /* page cache at cache_kib (else a quarter) */
	int64_t dl_bytes;     /* dead letters' size as of the last commit */
	int64_t dl_txn;       /* ... plus what the open transaction changed */
	struct store_retired retired[STORE_RETIRED_MAX]; /* in this transaction */
	size_t n_retired;
};


/* store.c */
int st_step_done(sqlite3_stmt *q);

#endif
