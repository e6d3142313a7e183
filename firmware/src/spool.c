/*
 * SQLite spool. Schema (main database, durable):
 *   batches(seq INTEGER PRIMARY KEY, payload BLOB, created INTEGER ms,
 *           bytes INTEGER)
 *   meta(key TEXT PRIMARY KEY, value INTEGER)  -- next_seq, dropped
 * and an attached in-memory database for resend bookkeeping:
 *   mem.sent(seq INTEGER PRIMARY KEY, attempts INTEGER, next_try INTEGER)
 * A batch is due when it has no mem.sent row or next_try <= now.
 *
 * Every put is one transaction (drop oldest + insert + next_seq) with
 * journal_mode=WAL and synchronous=FULL: once spool_put returns, the batch
 * survives a process kill and a power cut. Statements are prepared once.
 *
 * Schema versions (PRAGMA user_version, docs/update.md "Spool schema
 * changes"): spool_migrations[i] takes a spool from version i to i+1, all
 * of them in one transaction at open, so the first boot of a new release
 * migrates the spool it finds on the data partition. A spool newer than
 * this firmware (after an update rolled back) is used as it is: migrations
 * only add, so an older release still reads what it knows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "spool.h"

enum {
	ST_INSERT, ST_SET_META, ST_OLDEST, ST_DELETE, ST_ACK_SUM, ST_ACK_DEL,
	ST_ACK_SENT, ST_PICK_OLD, ST_PICK_NEW, ST_SENT_GET, ST_SENT_PUT,
	ST_OUTSTANDING, ST_NEXT_DUE, ST_COUNT
};

static const char *const spool_sql[ST_COUNT] = {
	[ST_INSERT] = "INSERT INTO batches(seq, payload, created, bytes) VALUES (?1, ?2, ?3, ?4)",
	[ST_SET_META] = "INSERT INTO meta(key, value) VALUES (?1, ?2) "
			"ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_OLDEST] = "SELECT seq, bytes FROM batches ORDER BY seq LIMIT 1",
	[ST_DELETE] = "DELETE FROM batches WHERE seq = ?1",
	[ST_ACK_SUM] = "SELECT count(*), coalesce(sum(bytes), 0) FROM batches "
		       "WHERE seq BETWEEN ?1 AND ?2",
	[ST_ACK_DEL] = "DELETE FROM batches WHERE seq BETWEEN ?1 AND ?2",
	[ST_ACK_SENT] = "DELETE FROM mem.sent WHERE seq BETWEEN ?1 AND ?2",
	[ST_PICK_OLD] = "SELECT b.seq, b.payload FROM batches b WHERE b.seq >= ?2 AND NOT EXISTS "
			"(SELECT 1 FROM mem.sent s WHERE s.seq = b.seq AND s.next_try > ?1) "
			"ORDER BY b.seq ASC LIMIT 1",
	[ST_PICK_NEW] = "SELECT b.seq, b.payload FROM batches b WHERE b.seq >= ?2 AND NOT EXISTS "
			"(SELECT 1 FROM mem.sent s WHERE s.seq = b.seq AND s.next_try > ?1) "
			"ORDER BY b.seq DESC LIMIT 1",
	[ST_SENT_GET] = "SELECT attempts FROM mem.sent WHERE seq = ?1",
	[ST_SENT_PUT] = "INSERT OR REPLACE INTO mem.sent(seq, attempts, next_try) VALUES (?1, ?2, ?3)",
	[ST_OUTSTANDING] = "SELECT count(*) FROM mem.sent WHERE next_try > ?1",
	[ST_NEXT_DUE] = "SELECT min(next_try) FROM mem.sent WHERE next_try > ?1",
};

static const char *const spool_migrations[] = {
	/* 1: the tables of the first spool (a spool from before versions
	 * has them already) */
	"CREATE TABLE IF NOT EXISTS batches(seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
	"created INTEGER NOT NULL, bytes INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
};
#define SPOOL_SCHEMA ((int64_t)(sizeof(spool_migrations) / sizeof(spool_migrations[0])))

struct spool {
	sqlite3 *db;
	sqlite3_stmt *st[ST_COUNT];
	uint64_t next_seq;
	uint64_t depth, bytes, dropped;
	uint64_t max_bytes;
	int64_t last_now; /* for spool_next_due */
};

static int spool_exec(struct spool *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("spool", "sql failed: %s sql=\"%s\"", msg ? msg : sqlite3_errstr(rc), sql);
		sqlite3_free(msg);
	}
	return agri_sqlite_errno(rc);
}

/* Runs a prepared statement that returns no row (or ignores it). */
static int step_done(struct spool *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("spool", "step failed: %s", sqlite3_errmsg(s->db));
		return agri_sqlite_errno(rc);
	}
	return 0;
}

static int64_t query_int(struct spool *s, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Brings the spool's schema to SPOOL_SCHEMA in one transaction (see the
 * top of the file). Returns 0 or -errno. */
static int spool_migrate(struct spool *s)
{
	int64_t v = query_int(s, "PRAGMA user_version", 0);
	char sql[64];
	int rc;

	if (v >= SPOOL_SCHEMA) {
		if (v > SPOOL_SCHEMA)
			log_info("spool", "schema version=%lld is newer than this firmware's %lld"
				 " (an update rolled back): used as it is", (long long)v,
				 (long long)SPOOL_SCHEMA);
		return 0;
	}
	if ((rc = spool_exec(s, "BEGIN IMMEDIATE")) < 0)
		return rc;
	for (int64_t i = v; i < SPOOL_SCHEMA; i++)
		if ((rc = spool_exec(s, spool_migrations[i])) < 0)
			goto fail;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)SPOOL_SCHEMA);
	if ((rc = spool_exec(s, sql)) < 0 || (rc = spool_exec(s, "COMMIT")) < 0)
		goto fail;
	if (v > 0)
		log_info("spool", "schema migrated from=%lld to=%lld", (long long)v,
			 (long long)SPOOL_SCHEMA);
	return 0;
fail:
	spool_exec(s, "ROLLBACK");
	return rc;
}

static int set_meta(struct spool *s, const char *key, uint64_t v)
{
	sqlite3_stmt *st = s->st[ST_SET_META];

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
	return step_done(s, st);
}

int spool_open(const char *path, uint64_t max_bytes, struct spool **out)
{
	struct spool *s;
	int64_t max_seq;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->max_bytes = max_bytes;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_error("spool", "cannot open path=%s: %s", path,
			  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		rc = agri_sqlite_errno(rc);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if ((rc = spool_exec(s, "PRAGMA journal_mode=WAL")) ||
	    (rc = spool_exec(s, "PRAGMA synchronous=FULL")) ||
	    (rc = spool_exec(s, "PRAGMA cache_size=-512")) ||
	    (rc = spool_migrate(s)) ||
	    (rc = spool_exec(s, "ATTACH DATABASE ':memory:' AS mem")) ||
	    (rc = spool_exec(s, "CREATE TABLE mem.sent(seq INTEGER PRIMARY KEY, "
				"attempts INTEGER NOT NULL, next_try INTEGER NOT NULL)")) ||
	    (rc = spool_exec(s, "CREATE INDEX mem.sent_next ON sent(next_try)")))
		goto fail;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, spool_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->st[i], NULL);
		if (rc != SQLITE_OK) {
			log_error("spool", "prepare failed: %s", sqlite3_errmsg(s->db));
			rc = agri_sqlite_errno(rc);
			goto fail;
		}
	}
	max_seq = query_int(s, "SELECT max(seq) FROM batches", 0);
	s->next_seq = (uint64_t)query_int(s, "SELECT value FROM meta WHERE key = 'next_seq'", 1);
	if (s->next_seq <= (uint64_t)max_seq)
		s->next_seq = (uint64_t)max_seq + 1;
	if (s->next_seq < 1)
		s->next_seq = 1;
	s->dropped = (uint64_t)query_int(s, "SELECT value FROM meta WHERE key = 'dropped'", 0);
	s->depth = (uint64_t)query_int(s, "SELECT count(*) FROM batches", 0);
	s->bytes = (uint64_t)query_int(s, "SELECT coalesce(sum(bytes), 0) FROM batches", 0);
	*out = s;
	return 0;
fail:
	spool_close(s);
	return rc ? rc : -EIO;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
}

int64_t spool_oldest_ms(struct spool *s)
{
	if (!s->depth)
		return 0;
	return query_int(s, "SELECT created FROM batches ORDER BY seq LIMIT 1", 0);
}

void spool_set_max_bytes(struct spool *s, uint64_t max_bytes)
{
	s->max_bytes = max_bytes;
}

uint64_t spool_next_seq(const struct spool *s)
{
	return s->next_seq;
}

/* Drops the oldest batches until len more bytes fit. In a transaction. */
static int spool_make_room(struct spool *s, size_t len, uint64_t *n_dropped,
			   uint64_t *bytes_dropped)
{
	uint64_t bytes = s->bytes;
	sqlite3_stmt *old = s->st[ST_OLDEST], *del = s->st[ST_DELETE];
	int rc;

	while (bytes + len > s->max_bytes && bytes > 0) {
		int64_t seq, b;

		rc = sqlite3_step(old);
		if (rc != SQLITE_ROW) {
			sqlite3_reset(old);
			return rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
		}
		seq = sqlite3_column_int64(old, 0);
		b = sqlite3_column_int64(old, 1);
		sqlite3_reset(old);
		sqlite3_bind_int64(del, 1, seq);
		if ((rc = step_done(s, del)))
			return rc;
		bytes -= (uint64_t)b;
		*bytes_dropped += (uint64_t)b;
		(*n_dropped)++;
	}
	return 0;
}

int spool_put(struct spool *s, uint64_t seq, const void *payload, size_t len,
	      int64_t now_ms)
{
	uint64_t n_dropped = 0, bytes_dropped = 0;
	sqlite3_stmt *ins = s->st[ST_INSERT];
	int rc;

	if (len > s->max_bytes)
		return -EFBIG;
	if (seq != s->next_seq)
		return -EINVAL;
	if ((rc = spool_exec(s, "BEGIN IMMEDIATE")))
		return rc;
	if ((rc = spool_make_room(s, len, &n_dropped, &bytes_dropped)))
		goto rollback;
	sqlite3_bind_int64(ins, 1, (sqlite3_int64)seq);
	sqlite3_bind_blob(ins, 2, payload, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(ins, 3, now_ms);
	sqlite3_bind_int64(ins, 4, (sqlite3_int64)len);
	rc = step_done(s, ins);
	sqlite3_clear_bindings(ins);
	if (rc)
		goto rollback;
	if ((rc = set_meta(s, "next_seq", seq + 1)))
		goto rollback;
	if (n_dropped && (rc = set_meta(s, "dropped", s->dropped + n_dropped)))
		goto rollback;
	if ((rc = spool_exec(s, "COMMIT")))
		goto rollback;
	s->next_seq = seq + 1;
	s->depth += 1 - n_dropped;
	s->bytes += len - bytes_dropped;
	if (n_dropped) {
		s->dropped += n_dropped;
		log_warn("spool", "spool full: dropped oldest batches n=%llu total_dropped=%llu",
			 (unsigned long long)n_dropped, (unsigned long long)s->dropped);
	}
	return 0;
rollback:
	spool_exec(s, "ROLLBACK");
	return rc;
}

int spool_ack(struct spool *s, uint64_t first, uint64_t last)
{
	sqlite3_stmt *sum = s->st[ST_ACK_SUM];
	int64_t n = 0, b = 0;
	int rc;

	if (first > last || last > (uint64_t)INT64_MAX)
		return -EINVAL;
	sqlite3_bind_int64(sum, 1, (sqlite3_int64)first);
	sqlite3_bind_int64(sum, 2, (sqlite3_int64)last);
	if (sqlite3_step(sum) == SQLITE_ROW) {
		n = sqlite3_column_int64(sum, 0);
		b = sqlite3_column_int64(sum, 1);
	}
	sqlite3_reset(sum);
	if (n == 0)
		return 0;
	sqlite3_bind_int64(s->st[ST_ACK_DEL], 1, (sqlite3_int64)first);
	sqlite3_bind_int64(s->st[ST_ACK_DEL], 2, (sqlite3_int64)last);
	if ((rc = step_done(s, s->st[ST_ACK_DEL])))
		return rc;
	sqlite3_bind_int64(s->st[ST_ACK_SENT], 1, (sqlite3_int64)first);
	sqlite3_bind_int64(s->st[ST_ACK_SENT], 2, (sqlite3_int64)last);
	step_done(s, s->st[ST_ACK_SENT]);
	s->depth -= (uint64_t)n;
	s->bytes -= (uint64_t)b;
	return (int)n;
}

int spool_pick(struct spool *s, int64_t now_mono_ms, bool newest,
	       uint64_t min_seq, uint64_t *seq, char *buf, size_t cap,
	       size_t *len)
{
	sqlite3_stmt *st = s->st[newest ? ST_PICK_NEW : ST_PICK_OLD];
	int rc, n;

	sqlite3_bind_int64(st, 1, now_mono_ms);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)min_seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		return rc == SQLITE_DONE ? -EAGAIN : agri_sqlite_errno(rc);
	}
	n = sqlite3_column_bytes(st, 1);
	if ((size_t)n > cap) {
		sqlite3_reset(st);
		return -ENOSPC;
	}
	*seq = (uint64_t)sqlite3_column_int64(st, 0);
	memcpy(buf, sqlite3_column_blob(st, 1), (size_t)n);
	*len = (size_t)n;
	sqlite3_reset(st);
	return 0;
}

int spool_mark_sent(struct spool *s, uint64_t seq, int64_t now_mono_ms,
		    int64_t timeout_ms, int64_t cap_ms)
{
	sqlite3_stmt *get = s->st[ST_SENT_GET], *put = s->st[ST_SENT_PUT];
	int64_t attempts = 0, delay = timeout_ms;

	sqlite3_bind_int64(get, 1, (sqlite3_int64)seq);
	if (sqlite3_step(get) == SQLITE_ROW)
		attempts = sqlite3_column_int64(get, 0);
	sqlite3_reset(get);
	for (int64_t i = 0; i < attempts && delay < cap_ms; i++)
		delay *= 2;
	if (delay > cap_ms)
		delay = cap_ms;
	sqlite3_bind_int64(put, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(put, 2, attempts + 1);
	sqlite3_bind_int64(put, 3, now_mono_ms + delay);
	return step_done(s, put);
}

void spool_resend_all(struct spool *s)
{
	spool_exec(s, "DELETE FROM mem.sent");
}

int64_t spool_outstanding(struct spool *s, int64_t now_mono_ms)
{
	sqlite3_stmt *st = s->st[ST_OUTSTANDING];
	int64_t n = 0;

	s->last_now = now_mono_ms;
	sqlite3_bind_int64(st, 1, now_mono_ms);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

int64_t spool_next_due(struct spool *s)
{
	sqlite3_stmt *st = s->st[ST_NEXT_DUE];
	int64_t v = INT64_MAX;

	sqlite3_bind_int64(st, 1, s->last_now);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

uint64_t spool_depth(const struct spool *s)
{
	return s->depth;
}

uint64_t spool_bytes(const struct spool *s)
{
	return s->bytes;
}

uint64_t spool_dropped(const struct spool *s)
{
	return s->dropped;
}
