/*
 * SQLite store of the gateway (see store.h and docs/store.md). Readings
 * live in a WITHOUT ROWID table keyed by (series_id, ts): the identity of a
 * reading is one B-tree key, so INSERT OR IGNORE dedupes without a second
 * index. Series (station, sensor, metric) and stations get integer ids
 * cached in memory; a station's received seq ranges are kept in memory and
 * written back at commit, with the gap count they imply.
 */
#include "core/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "agri/sqlite_errno.h"
#include "agri/buf.h"
#include <sqlite3.h>

/* RFC 3339 with milliseconds from integer ms since the epoch. */
#define RFC3339(x) "strftime('%Y-%m-%dT%H:%M:%fZ', (" x ") / 1000.0, 'unixepoch')"

static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE stations("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" state TEXT NOT NULL DEFAULT 'unknown',"
	" last_seen INTEGER,"          /* ms, gateway clock */
	" last_seq INTEGER,"
	" gaps INTEGER,"               /* NULL: not tracked (shared group) */
	" holes_forgotten INTEGER NOT NULL DEFAULT 0,"
	" dropped INTEGER NOT NULL DEFAULT 0," /* station's spool_dropped */
	" fw TEXT, board TEXT, config_version INTEGER,"
	" status_at INTEGER, uptime_s INTEGER, spool_depth INTEGER,"
	" maintenance INTEGER);"
	"CREATE TABLE seq_ranges("
	" station_id INTEGER NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL,"
	" PRIMARY KEY(station_id, first)) WITHOUT ROWID;"
	"CREATE TABLE series("
	" id INTEGER PRIMARY KEY,"
	" station_id INTEGER NOT NULL REFERENCES stations(id),"
	" sensor TEXT NOT NULL, metric TEXT NOT NULL,"
	" UNIQUE(station_id, sensor, metric));"
	"CREATE TABLE readings("
	" series_id INTEGER NOT NULL, ts INTEGER NOT NULL," /* ms */
	" value REAL, unit TEXT NOT NULL, q INTEGER NOT NULL,"
	" received_at INTEGER NOT NULL,"
	" PRIMARY KEY(series_id, ts)) WITHOUT ROWID;"
	"CREATE TABLE readings_hourly("
	" series_id INTEGER NOT NULL, hour INTEGER NOT NULL,"
	" n INTEGER NOT NULL, sum REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL,"
	" PRIMARY KEY(series_id, hour)) WITHOUT ROWID;"
	"CREATE TABLE dead_letters("
	" id INTEGER PRIMARY KEY, received_at INTEGER NOT NULL,"
	" topic TEXT NOT NULL, reason TEXT NOT NULL, payload TEXT NOT NULL);"
	"CREATE TABLE alerts("
	" id TEXT PRIMARY KEY, rule TEXT NOT NULL, station TEXT NOT NULL,"
	" sensor TEXT, metric TEXT, severity TEXT NOT NULL, state TEXT NOT NULL,"
	" value REAL, threshold REAL, raised_at INTEGER NOT NULL,"
	" updated_at INTEGER NOT NULL, message TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE alert_events("
	" seq INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, state TEXT NOT NULL,"
	" severity TEXT NOT NULL, value REAL, at INTEGER NOT NULL);"
	"CREATE INDEX alert_events_by_alert ON alert_events(alert_id, seq);"
	/* The stable views of docs/interfaces.md §6. */
	"CREATE VIEW v_readings AS SELECT st.name AS station, se.sensor AS sensor,"
	" se.metric AS metric, " RFC3339("r.ts") " AS ts, r.value AS value,"
	" r.unit AS unit,"
	" CASE r.q WHEN 0 THEN 'ok' WHEN 1 THEN 'suspect' WHEN 2 THEN 'error'"
	"  ELSE 'maint' END AS q,"
	" " RFC3339("r.received_at") " AS received_at"
	" FROM readings r JOIN series se ON se.id = r.series_id"
	" JOIN stations st ON st.id = se.station_id;"
	"CREATE VIEW v_readings_hourly AS SELECT st.name AS station,"
	" se.sensor AS sensor, se.metric AS metric, " RFC3339("h.hour") " AS hour,"
	" h.min AS min, h.sum / h.n AS mean, h.max AS max, h.n AS count"
	" FROM readings_hourly h JOIN series se ON se.id = h.series_id"
	" JOIN stations st ON st.id = se.station_id;"
	"CREATE VIEW v_alerts AS SELECT id, rule, station, sensor, metric,"
	" severity, state, value, threshold, " RFC3339("raised_at") " AS raised_at,"
	" " RFC3339("updated_at") " AS updated_at, message FROM alerts;"
	"CREATE VIEW v_alert_events AS SELECT alert_id AS id, state, severity,"
	" value, " RFC3339("at") " AS at FROM alert_events ORDER BY seq;"
	"CREATE VIEW v_stations AS SELECT name AS station, state,"
	" " RFC3339("last_seen") " AS last_seen, last_seq, gaps, dropped, fw,"
	" board, config_version, " RFC3339("status_at") " AS status_at,"
	" uptime_s, spool_depth, maintenance FROM stations;"
	"CREATE VIEW v_dead_letters AS SELECT " RFC3339("received_at")
	" AS received_at, topic, reason, payload FROM dead_letters ORDER BY id;",
	/* 2: bounded dead letters (a payload prefix, its size and hash, a kind,
	 * counters per kind that never reset), series a station no longer
	 * sends can be retired from its budget, the station's clock offset. */
	"ALTER TABLE dead_letters ADD COLUMN size INTEGER;"
	"ALTER TABLE dead_letters ADD COLUMN sha256 TEXT;"
	"ALTER TABLE dead_letters ADD COLUMN kind TEXT;"
	"ALTER TABLE dead_letters ADD COLUMN station TEXT;"
	"CREATE TABLE dead_letter_counts("
	" kind TEXT PRIMARY KEY, stored INTEGER NOT NULL DEFAULT 0,"
	" suppressed INTEGER NOT NULL DEFAULT 0, evicted INTEGER NOT NULL DEFAULT 0)"
	" WITHOUT ROWID;"
	"INSERT INTO dead_letter_counts(kind, stored) SELECT 'invalid', count(*)"
	" FROM dead_letters HAVING count(*) > 0;"
	"ALTER TABLE series ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE stations ADD COLUMN clock_offset_ms INTEGER;"
	"ALTER TABLE stations ADD COLUMN config_signed_by TEXT;"
	"DROP VIEW v_dead_letters;"
	"CREATE VIEW v_dead_letters AS SELECT " RFC3339("received_at")
	" AS received_at, topic, reason, payload, coalesce(size, length(CAST(payload AS BLOB)))"
	" AS size, sha256, coalesce(kind, 'invalid') AS kind, station"
	" FROM dead_letters ORDER BY id;"
	"CREATE VIEW v_dead_letter_counts AS SELECT kind, stored, suppressed, evicted"
	" FROM dead_letter_counts;"
	"DROP VIEW v_stations;"
	"CREATE VIEW v_stations AS SELECT name AS station, state,"
	" " RFC3339("last_seen") " AS last_seen, last_seq, gaps, dropped, fw,"
	" board, config_version, " RFC3339("status_at") " AS status_at,"
	" uptime_s, spool_depth, maintenance, clock_offset_ms / 1000.0 AS clock_offset_s,"
	" config_signed_by FROM stations;",
	/* 3: why a reading is suspect (a station's reason: dry, stuck,
	 * full_scale, range, map; docs/store.md). */
	"ALTER TABLE readings ADD COLUMN why TEXT;"
	"DROP VIEW v_readings;"
	"CREATE VIEW v_readings AS SELECT st.name AS station, se.sensor AS sensor,"
	" se.metric AS metric, " RFC3339("r.ts") " AS ts, r.value AS value,"
	" r.unit AS unit,"
	" CASE r.q WHEN 0 THEN 'ok' WHEN 1 THEN 'suspect' WHEN 2 THEN 'error'"
	"  ELSE 'maint' END AS q,"
	" " RFC3339("r.received_at") " AS received_at, r.why AS why"
	" FROM readings r JOIN series se ON se.id = r.series_id"
	" JOIN stations st ON st.id = se.station_id;",
	/* 4: readings in time order across series (ts, then the key's
	 * series_id): a wide /api/v1/readings page walks it and stops at its
	 * limit instead of sorting every row in range (docs/api.md, Cost). */
	"CREATE INDEX readings_by_ts ON readings(ts);",
	/* 5: over-the-air updates (docs/update.md): the booted system and
	 * the last update's version, state and error, from the status. */
	"ALTER TABLE stations ADD COLUMN system TEXT;"
	"ALTER TABLE stations ADD COLUMN slot TEXT;"
	"ALTER TABLE stations ADD COLUMN update_version TEXT;"
	"ALTER TABLE stations ADD COLUMN update_state TEXT;"
	"ALTER TABLE stations ADD COLUMN update_error TEXT;",
	/* 6: alerts in event time (docs/alerts.md, Reading order): who
	 * acknowledged (a column, not a parse of the message), both languages
	 * of the message, late alerts (evidence older than late_after_s: when
	 * it happened, when it arrived), and every episode (start, end) as
	 * later readings revised it. Acknowledgers before this version are
	 * read from their message once, here. */
	"ALTER TABLE alerts ADD COLUMN acked_by TEXT;"
	"ALTER TABLE alerts ADD COLUMN message_en TEXT;"
	"ALTER TABLE alerts ADD COLUMN message_vi TEXT;"
	"ALTER TABLE alerts ADD COLUMN late INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE alerts ADD COLUMN event_at INTEGER;"
	"ALTER TABLE alerts ADD COLUMN arrived_at INTEGER;"
	"UPDATE alerts SET acked_by = substr(message, 17, instr(substr(message, 17), ': ') - 1)"
	" WHERE state = 'acknowledged' AND (message LIKE 'Acknowledged by %: %'"
	" OR message LIKE 'Đã xác nhận bởi %: %') AND instr(substr(message, 17), ': ') > 1;"
	"ALTER TABLE alert_events ADD COLUMN late INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE alert_events ADD COLUMN arrived_at INTEGER;"
	"CREATE TABLE alert_episodes("
	" id INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER,"
	" severity TEXT NOT NULL, value REAL, late INTEGER NOT NULL DEFAULT 0,"
	" arrived_at INTEGER NOT NULL, retracted INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX alert_episodes_by_alert ON alert_episodes(alert_id, start);"
	"DROP VIEW v_alerts;"
	"CREATE VIEW v_alerts AS SELECT id, rule, station, sensor, metric,"
	" severity, state, value, threshold, " RFC3339("raised_at") " AS raised_at,"
	" " RFC3339("updated_at") " AS updated_at, message, acked_by, message_en, message_vi,"
	" late, " RFC3339("event_at") " AS event_at, " RFC3339("arrived_at") " AS arrived_at"
	" FROM alerts;"
	"DROP VIEW v_alert_events;"
	"CREATE VIEW v_alert_events AS SELECT alert_id AS id, state, severity,"
	" value, " RFC3339("at") " AS at, late, " RFC3339("arrived_at") " AS arrived_at"
	" FROM alert_events ORDER BY seq;"
	"CREATE VIEW v_alert_episodes AS SELECT alert_id AS id, " RFC3339("start") " AS start,"
	" " RFC3339("end") " AS end, severity, value, late, " RFC3339("arrived_at") " AS arrived_at"
	" FROM alert_episodes WHERE retracted = 0 ORDER BY alert_id, start;",
};

#define N_MIGRATIONS (AGRI_ARRAY_SIZE(migrations))
#include "core/store_int.h"

/* --- hash table ---------------------------------------------------- */

static void htab_clear(struct htab *t, bool free_vals)
{
	for (size_t i = 0; i < t->nb; i++) {
		struct hentry *e = t->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			if (free_vals && e->val) {
				agri_seq_set_free(&((struct station *)e->val)->seqs);
				free(e->val);
			}
			free(e);
		}
		t->b[i] = NULL;
	}
	t->n = 0;
}

static struct hentry *htab_find(struct htab *t, const char *key)
{
	uint32_t h = agri_hash32(key);

	for (struct hentry *e = t->b[h & (t->nb - 1)]; e; e = e->next)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static struct hentry *htab_add(struct htab *t, const char *key, int64_t id,
			       void *val)
{
	size_t len = strlen(key);
	struct hentry *e = malloc(sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	e->hash = agri_hash32(key);
	e->id = id;
	e->val = val;
	memcpy(e->key, key, len + 1);
	e->next = t->b[e->hash & (t->nb - 1)];
	t->b[e->hash & (t->nb - 1)] = e;
	t->n++;
	return e;
}

static int htab_init(struct htab *t, size_t nb)
{
	t->b = calloc(nb, sizeof(*t->b));
	t->nb = nb;
	t->n = 0;
	return t->b ? 0 : -ENOMEM;
}

/* --- open, migrate, close ------------------------------------------ */

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_STATION_INS] = "INSERT OR IGNORE INTO stations(name) VALUES (?1)",
	[S_STATION_SEL] = "SELECT id, coalesce(last_seen, 0), coalesce(last_seq, -1),"
			  " holes_forgotten, dropped FROM stations WHERE name = ?1",
	[S_RANGES_SEL] = "SELECT first, last FROM seq_ranges WHERE station_id = ?1 ORDER BY first",
	[S_STATION_UPD] = "UPDATE stations SET last_seen = nullif(?2, 0),"
			  " last_seq = nullif(?3, -1), gaps = ?4, holes_forgotten = ?5,"
			  " state = CASE WHEN ?6 AND state = 'unknown' THEN 'online' ELSE state END"
			  " WHERE id = ?1",
	[S_RANGES_DEL] = "DELETE FROM seq_ranges WHERE station_id = ?1",
	[S_RANGES_INS] = "INSERT INTO seq_ranges(station_id, first, last) VALUES (?1, ?2, ?3)",
	[S_SERIES_INS] = "INSERT OR IGNORE INTO series(station_id, sensor, metric) VALUES (?1, ?2, ?3)",
	[S_SERIES_SEL] = "SELECT id, retired FROM series WHERE station_id = ?1 AND sensor = ?2"
			 " AND metric = ?3",
	[S_SERIES_COUNT] = "SELECT count(*) FROM series WHERE station_id = ?1 AND retired = 0",
	/* A series of the station with no raw reading at or after ?2. */
	[S_SERIES_IDLE] = "SELECT s.id FROM series s WHERE s.station_id = ?1 AND s.retired = 0"
			  " AND NOT EXISTS (SELECT 1 FROM readings r WHERE r.series_id = s.id"
			  " AND r.ts >= ?2) ORDER BY s.id LIMIT 1",
	[S_SERIES_RETIRE] = "UPDATE series SET retired = 1 WHERE id = ?1",
	[S_SERIES_REVIVE] = "UPDATE series SET retired = 0 WHERE id = ?1",
	[S_READING_INS] = "INSERT OR IGNORE INTO readings(series_id, ts, value, unit, q, received_at,"
			  " why) VALUES (?1, ?2, ?3, ?4, ?5, ?6, nullif(?7, ''))",
	[S_STATUS_FULL] = "UPDATE stations SET state = ?2, fw = coalesce(nullif(?3, ''), fw),"
			  " board = coalesce(nullif(?4, ''), board),"
			  " config_version = coalesce(nullif(?5, 0), config_version),"
			  " status_at = ?6, uptime_s = ?7, spool_depth = ?8, dropped = ?9,"
			  " maintenance = ?10,"
			  " config_signed_by = coalesce(nullif(?11, ''), config_signed_by),"
			  " system = coalesce(nullif(?12, ''), system),"
			  " slot = coalesce(nullif(?13, ''), slot),"
			  " update_version = CASE WHEN ?15 = '' THEN update_version ELSE ?14 END,"
			  " update_state = CASE WHEN ?15 = '' THEN update_state ELSE ?15 END,"
			  " update_error = CASE WHEN ?15 = '' THEN update_error ELSE nullif(?16, '') END"
			  " WHERE id = ?1",
	[S_STATUS_STATE] = "UPDATE stations SET state = ?2, status_at = ?3 WHERE id = ?1",
	[S_CLOCK] = "UPDATE stations SET clock_offset_ms = ?2 WHERE id = ?1",
	[S_DEAD_INS] = "INSERT INTO dead_letters(received_at, topic, reason, payload, size,"
		       " sha256, kind, station) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, nullif(?8, ''))",
	[S_DEAD_COUNT] = "INSERT INTO dead_letter_counts(kind, stored, suppressed, evicted)"
			 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(kind) DO UPDATE SET"
			 " stored = stored + excluded.stored,"
			 " suppressed = suppressed + excluded.suppressed,"
			 " evicted = evicted + excluded.evicted",
	/* The oldest dead letters, to keep within the byte budget. */
	[S_DEAD_EVICT] = "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
			 " ORDER BY id LIMIT 16) RETURNING " DL_BYTES ", coalesce(kind, 'invalid')",
	[S_DEAD_EXPIRE] = "DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters"
			  " WHERE received_at < ?1 ORDER BY id LIMIT 256)"
			  " RETURNING " DL_BYTES ", coalesce(kind, 'invalid')",
	[S_RET_NEXT_SERIES] = "SELECT id FROM series WHERE id > ?1 ORDER BY id LIMIT 1",
	[S_RET_MIN_TS] = "SELECT min(ts) FROM readings WHERE series_id = ?1",
	[S_RET_NTH_TS] = "SELECT ts FROM readings WHERE series_id = ?1 AND ts < ?2"
			 " ORDER BY ts LIMIT 1 OFFSET ?3",
	[S_RET_AGG] = "INSERT INTO readings_hourly(series_id, hour, n, sum, min, max)"
		      " SELECT series_id, (ts / 3600000) * 3600000 AS h, count(value),"
		      " total(value), min(value), max(value) FROM readings"
		      " WHERE series_id = ?1 AND ts < ?2 GROUP BY h HAVING count(value) > 0"
		      " ON CONFLICT(series_id, hour) DO UPDATE SET n = n + excluded.n,"
		      " sum = sum + excluded.sum, min = min(min, excluded.min),"
		      " max = max(max, excluded.max)",
	[S_RET_DEL] = "DELETE FROM readings WHERE series_id = ?1 AND ts < ?2",
};


static int exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : agri_sqlite_errno(rc);
}

static int migrate(sqlite3 *db)
{
	sqlite3_stmt *q = NULL;
	int version = 0, rc;

	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	if (sqlite3_step(q) == SQLITE_ROW)
		version = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	if (version > (int)N_MIGRATIONS)
		return -EPROTO;
	for (int v = version; v < (int)N_MIGRATIONS; v++) {
		char pragma[64];

		rc = exec(db, "BEGIN IMMEDIATE");
		if (rc < 0)
			return rc;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		if ((rc = exec(db, migrations[v])) < 0 || (rc = exec(db, pragma)) < 0 ||
		    (rc = exec(db, "COMMIT")) < 0) {
			exec(db, "ROLLBACK");
			return rc;
		}
	}
	return 0;
}

/* The writer's own checkpoint (see store_open()): after few frames while
 * it keeps up (each is quick, commits stay short), after more during a
 * backlog (hot pages copied once per checkpoint, not once per few
 * commits: ratio 0.58-0.60 -> 0.63-0.66 in scripts/bench-gateway). */
#define WAL_CKPT_IDLE 1000
#define WAL_CKPT_BUSY 4000

/* The page cache while the writer keeps up: a quarter of cache_kib. */
static int idle_cache_kib(const struct store *st)
{
	return st->opt.cache_kib / 4 > 256 ? st->opt.cache_kib / 4 : 256;
}

int store_set_busy(struct store *st, bool busy)
{
	char sql[96];
	int rc;

	if (busy == st->busy_cache)
		return 0;
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d; PRAGMA wal_autocheckpoint = %d",
		 busy ? st->opt.cache_kib : idle_cache_kib(st),
		 busy ? WAL_CKPT_BUSY : WAL_CKPT_IDLE);
	if ((rc = exec(st->db, sql)) == 0)
		st->busy_cache = busy;
	return rc;
}

/* The dead letters' size, once at open (a database from before the
 * budget may hold many: one scan). */
static int dead_bytes_load(struct store *st)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(st->db, "SELECT coalesce(sum(" DL_BYTES "), 0) FROM dead_letters",
				    -1, &q, NULL);

	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		st->dl_bytes = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return rc == SQLITE_ROW ? 0 : agri_sqlite_errno(rc);
}

struct store *store_open(const char *path, const struct store_options *opt,
			 int *err)
{
	struct store *st = calloc(1, sizeof(*st));
	char pragmas[256];
	int rc;

	if (!st) {
		*err = -ENOMEM;
		return NULL;
	}
	if (opt)
		st->opt = *opt;
	if (st->opt.cache_kib <= 0)
		st->opt.cache_kib = 4096;
	if (st->opt.busy_timeout_ms <= 0)
		st->opt.busy_timeout_ms = 2000;
	st->path = strdup(path);
	if (!st->path || htab_init(&st->stations, 1024) < 0 ||
	    htab_init(&st->series, 4096) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = agri_sqlite_errno(rc);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 0);
	sqlite3_busy_timeout(st->db, st->opt.busy_timeout_ms);
	/* The WAL starts over only when a checkpoint has caught up with it,
	 * which a checkpoint on another thread never does while the writer
	 * commits every millisecond: store_checkpoint() copies most frames
	 * ahead, the writer's own checkpoint (WAL_CKPT_*) finishes the job
	 * between two commits. Measured at 1,000 messages/s: a WAL that only
	 * grew (and was cut back to journal_size_limit, a 25 ms ftruncate)
	 * made publish->ack p99 25 ms; starting over, 14 ms.
	 * 2 KiB pages (new databases; an old one keeps its size): a commit
	 * rewrites one leaf per series it touches (300 in the benchmark), so
	 * the WAL gets half the bytes: benchmark ratio 0.53-0.54 -> 0.59-0.63,
	 * p99 at 1,000 messages/s 6 -> 5 ms. */
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
		 "PRAGMA cache_size = -%d; PRAGMA wal_autocheckpoint = %d;"
		 "PRAGMA journal_size_limit = 16777216; PRAGMA temp_store = MEMORY;",
		 st->opt.sync_full ? "FULL" : "NORMAL", idle_cache_kib(st), WAL_CKPT_IDLE);
	if ((rc = exec(st->db, pragmas)) < 0 || (rc = migrate(st->db)) < 0)
		goto fail;
	for (int i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &st->s[i], NULL);
		if (rc != SQLITE_OK) {
			rc = agri_sqlite_errno(rc);
			goto fail;
		}
	}
	if ((rc = dead_bytes_load(st)) < 0)
		goto fail;
	return st;
fail:
	store_close(st);
	*err = rc;
	return NULL;
}

static void caches_reset(struct store *st)
{
	htab_clear(&st->stations, true);
	htab_clear(&st->series, false);
	st->n_dirty = 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	if (st->in_tx)
		store_rollback(st);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->s[i]);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		sqlite3_close_v2(st->db);
	if (st->ckpt)
		sqlite3_close_v2(st->ckpt);
	if (st->stations.b)
		caches_reset(st);
	free(st->stations.b);
	free(st->series.b);
	free(st->dirty);
	free(st->path);
	free(st);
}

sqlite3 *store_db(struct store *st)
{
	return st->db;
}

/* Runs a statement without result rows; resets it. */
int st_step_done(sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : agri_sqlite_errno(rc);
}

/* --- transactions --------------------------------------------------- */

int store_begin(struct store *st)
{
	int rc = st_step_done(st->s[S_BEGIN]);

	st->dl_txn = 0;
	st->n_retired = 0;
	if (rc == 0)
		st->in_tx = true;
	return rc;
}

static int64_t station_gaps(const struct station *s)
{
	int64_t holes = s->forgotten;

	for (size_t i = 1; i < s->seqs.n; i++)
		holes += (int64_t)(s->seqs.r[i].first - s->seqs.r[i - 1].last - 1);
	holes -= s->dropped;
	return holes > 0 ? holes : 0;
}

static int station_flush(struct store *st, struct station *s)
{
	sqlite3_stmt *q = st->s[S_STATION_UPD];
	int rc;

	sqlite3_bind_int64(q, 1, s->id);
	sqlite3_bind_int64(q, 2, s->last_seen);
	sqlite3_bind_int64(q, 3, s->last_seq);
	if (st->opt.track_gaps)
		sqlite3_bind_int64(q, 4, station_gaps(s));
	else
		sqlite3_bind_null(q, 4);
	sqlite3_bind_int64(q, 5, s->forgotten);
	sqlite3_bind_int(q, 6, s->telemetry_seen);
	if ((rc = st_step_done(q)) < 0)
		return rc;
	if (!s->ranges_dirty || !st->opt.track_gaps)
		return 0;
	sqlite3_bind_int64(st->s[S_RANGES_DEL], 1, s->id);
	if ((rc = st_step_done(st->s[S_RANGES_DEL])) < 0)
		return rc;
	q = st->s[S_RANGES_INS];
	for (size_t i = 0; i < s->seqs.n; i++) {
		sqlite3_bind_int64(q, 1, s->id);
		sqlite3_bind_int64(q, 2, (int64_t)s->seqs.r[i].first);
		sqlite3_bind_int64(q, 3, (int64_t)s->seqs.r[i].last);
		if ((rc = st_step_done(q)) < 0)
			return rc;
	}
	return 0;
}

int store_commit(struct store *st)
{
	int rc = 0;

	for (size_t i = 0; i < st->n_dirty && rc == 0; i++)
		rc = station_flush(st, st->dirty[i]);
	if (rc == 0)
		rc = st_step_done(st->s[S_COMMIT]);
	if (rc < 0) {
		store_rollback(st);
		return rc;
	}
	for (size_t i = 0; i < st->n_dirty; i++) {
		struct station *s = st->dirty[i];

		s->dirty = s->in_dirty_list = s->ranges_dirty = false;
		s->telemetry_seen = false;
	}
	st->n_dirty = 0;
	st->in_tx = false;
	st->dl_bytes += st->dl_txn;
	st->dl_txn = 0;
	if (st->stations.n > CACHE_MAX || st->series.n > CACHE_MAX)
		caches_reset(st);
	return 0;
}

void store_rollback(struct store *st)
{
	/* After an I/O error SQLite may already have rolled back: ignore. */
	if (!sqlite3_get_autocommit(st->db))
		st_step_done(st->s[S_ROLLBACK]);
	st->in_tx = false;
	st->dl_txn = 0;
	st->n_retired = 0;
	caches_reset(st);
}

/* --- stations and seq ranges ---------------------------------------- */

static int mark_dirty(struct store *st, struct station *s)
{
	s->dirty = true;
	if (s->in_dirty_list)
		return 0;
	if (st->n_dirty == st->cap_dirty) {
		size_t cap = st->cap_dirty ? st->cap_dirty * 2 : 64;
		struct station **d = realloc(st->dirty, cap * sizeof(*d));

		if (!d)
			return -ENOMEM;
		st->dirty = d;
		st->cap_dirty = cap;
	}
	st->dirty[st->n_dirty++] = s;
	s->in_dirty_list = true;
	return 0;
}

/* Finds or creates station name (its row and cached state). */
static int station_get(struct store *st, const char *name, struct station **out)
{
	struct hentry *e = htab_find(&st->stations, name);
	struct station *s;
	sqlite3_stmt *q;
	int rc;

	if (e) {
		*out = e->val;
		return 0;
	}
	sqlite3_bind_text(st->s[S_STATION_INS], 1, name, -1, SQLITE_STATIC);
	if ((rc = st_step_done(st->s[S_STATION_INS])) < 0)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->n_series = -1;
	q = st->s[S_STATION_SEL];
	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc != SQLITE_ROW) {
		rc = rc == SQLITE_DONE ? -EIO : agri_sqlite_errno(rc);
		sqlite3_reset(q);
		goto fail;
	}
	s->id = sqlite3_column_int64(q, 0);
	s->last_seen = sqlite3_column_int64(q, 1);
	s->last_seq = sqlite3_column_int64(q, 2);
	s->forgotten = sqlite3_column_int64(q, 3);
	s->dropped = sqlite3_column_int64(q, 4);
	sqlite3_reset(q);
	q = st->s[S_RANGES_SEL];
	sqlite3_bind_int64(q, 1, s->id);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (agri_seq_set_reserve(&s->seqs, s->seqs.n + 1) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		s->seqs.r[s->seqs.n].first = (uint64_t)sqlite3_column_int64(q, 0);
		s->seqs.r[s->seqs.n].last = (uint64_t)sqlite3_column_int64(q, 1);
		s->seqs.n++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		rc = agri_sqlite_errno(rc);
		goto fail;
	}
	if (!htab_add(&st->stations, name, s->id, s)) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	agri_seq_set_free(&s->seqs);
	free(s);
	return rc;
}

/* Adds seq to s's ranges. Returns 1 if new, 0 if already there. */
static int ranges_add(struct station *s, uint64_t seq)
{
	int added = agri_seq_set_add(&s->seqs, seq);

	/* Too many holes: the oldest is counted as lost and forgotten. */
	if (added == 1 && s->seqs.n > RANGES_MAX) {
		s->forgotten += (int64_t)(s->seqs.r[1].first - s->seqs.r[0].last - 1);
		s->seqs.r[0].last = s->seqs.r[1].last;
		memmove(&s->seqs.r[1], &s->seqs.r[2], (s->seqs.n - 2) * sizeof(*s->seqs.r));
		s->seqs.n--;
	}
	return added;
}

int store_note_seq(struct store *st, const char *station, uint64_t seq,
		   int64_t seen_ms)
{
	struct station *s;
	int rc, added = 1;

	if ((rc = station_get(st, station, &s)) < 0)
		return rc;
	if (st->opt.track_gaps) {
		added = ranges_add(s, seq);
		if (added < 0)
			return added;
		if (added)
			s->ranges_dirty = true;
	}
	if ((int64_t)seq > s->last_seq)
		s->last_seq = (int64_t)seq;
	if (seen_ms > s->last_seen)
		s->last_seen = seen_ms;
	s->telemetry_seen = true;
	if ((rc = mark_dirty(st, s)) < 0)
		return rc;
	return added;
}

int store_touch_station(struct store *st, const char *station, int64_t seen_ms)
{
	struct station *s;
	int rc;

	if ((rc = station_get(st, station, &s)) < 0)
		return rc;
	if (seen_ms > s->last_seen)
		s->last_seen = seen_ms;
	s->telemetry_seen = true;
	return mark_dirty(st, s);
}

int store_put_status(struct store *st, const struct agri_status *m,
		     int64_t received_ms)
{
	struct station *s;
	sqlite3_stmt *q;
	const char *state = m->online ? "online" : "offline";
	bool minimal = !m->online && !m->fw[0] && !m->board[0] &&
		       m->config_version == 0;
	int rc;

	if ((rc = station_get(st, m->station, &s)) < 0)
		return rc;
	if (minimal) { /* the Last Will: only the state changes */
		q = st->s[S_STATUS_STATE];
		sqlite3_bind_int64(q, 1, s->id);
		sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 3, received_ms);
		return st_step_done(q);
	}
	q = st->s[S_STATUS_FULL];
	sqlite3_bind_int64(q, 1, s->id);
	sqlite3_bind_text(q, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, m->fw, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, m->board, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, m->config_version);
	sqlite3_bind_int64(q, 6, m->ts_ms ? m->ts_ms : received_ms);
	sqlite3_bind_int64(q, 7, (int64_t)m->uptime_s);
	sqlite3_bind_int64(q, 8, (int64_t)m->spool_depth);
	sqlite3_bind_int64(q, 9, (int64_t)m->spool_dropped);
	sqlite3_bind_int(q, 10, m->maintenance);
	sqlite3_bind_text(q, 11, m->config_signed_by, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 12, m->system, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 13, m->slot, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 14, m->update_version, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 15, m->update_state, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 16, m->update_error, -1, SQLITE_STATIC);
	if ((rc = st_step_done(q)) < 0)
		return rc;
	s->dropped = (int64_t)m->spool_dropped;
	if (m->online && received_ms > s->last_seen)
		s->last_seen = received_ms;
	return mark_dirty(st, s);
}

/* --- series and readings -------------------------------------------- */

/* Counts s's series on first use (the cache is dropped on rollback). */
static int series_count(struct store *st, struct station *s)
{
	sqlite3_stmt *q = st->s[S_SERIES_COUNT];
	int rc;

	if (s->n_series >= 0)
		return 0;
	sqlite3_bind_int64(q, 1, s->id);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		s->n_series = sqlite3_column_int64(q, 0);
	sqlite3_reset(q);
	return rc == SQLITE_ROW ? 0 : agri_sqlite_errno(rc);
}

/* Makes room for one more series of s: under the budget, or by retiring a
 * series that has sent nothing for series_idle_days. -EDQUOT when none
 * can go (and then none is looked for again for an hour). */
static int series_room(struct store *st, struct station *s, int64_t now_ms)
{
	sqlite3_stmt *q;
	int64_t idle_ms = (int64_t)(st->opt.series_idle_days > 0 ? st->opt.series_idle_days : 7) *
			  86400000LL, victim;
	int rc;

	if (st->opt.series_max <= 0)
		return 0;
	if ((rc = series_count(st, s)) < 0)
		return rc;
	if (s->n_series < st->opt.series_max)
		return 0;
	if (now_ms < s->idle_check_ms)
		return -EDQUOT;
	q = st->s[S_SERIES_IDLE];
	sqlite3_bind_int64(q, 1, s->id);
	sqlite3_bind_int64(q, 2, now_ms - idle_ms);
	rc = sqlite3_step(q);
	victim = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if (victim < 0) {
		s->idle_check_ms = now_ms + HOUR_MS;
		return -EDQUOT;
	}
	q = st->s[S_SERIES_RETIRE];
	sqlite3_bind_int64(q, 1, victim);
	if ((rc = st_step_done(q)) < 0)
		return rc;
	if (st->n_retired < STORE_RETIRED_MAX) {
		struct store_retired *r = &st->retired[st->n_retired];
		sqlite3_stmt *n;

		rc = sqlite3_prepare_v2(st->db, "SELECT sensor, metric FROM series WHERE id = ?1", -1,
					&n, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(n, 1, victim);
			if (sqlite3_step(n) == SQLITE_ROW) {
				snprintf(r->station, sizeof(r->station), "%s", s->name);
				snprintf(r->sensor, sizeof(r->sensor), "%s",
					 (const char *)sqlite3_column_text(n, 0));
				snprintf(r->metric, sizeof(r->metric), "%s",
					 (const char *)sqlite3_column_text(n, 1));
				st->n_retired++;
			}
			sqlite3_finalize(n);
		}
	}
	s->n_series--;
	/* The cache may hold the retired series' id: it must ask again. */
	htab_clear(&st->series, false);
	return 0;
}

static int series_get(struct store *st, struct station *s, const char *sensor,
		      const char *metric, int64_t now_ms, int64_t *id)
{
	char key[2 * AGRI_ID_MAX + 32];
	struct hentry *e;
	sqlite3_stmt *q;
	bool retired = false;
	int rc;

	snprintf(key, sizeof(key), "%lld/%s/%s", (long long)s->id, sensor, metric);
	if ((e = htab_find(&st->series, key))) {
		*id = e->id;
		return 0;
	}
	q = st->s[S_SERIES_SEL];
	sqlite3_bind_int64(q, 1, s->id);
	sqlite3_bind_text(q, 2, sensor, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, metric, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(q, 0);
		retired = sqlite3_column_int(q, 1) != 0;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if (rc == SQLITE_DONE || retired) {
		/* A new series, or a retired one sending again: within budget. */
		if ((rc = series_room(st, s, now_ms)) < 0)
			return rc;
		if (retired) {
			q = st->s[S_SERIES_REVIVE];
			sqlite3_bind_int64(q, 1, *id);
			if ((rc = st_step_done(q)) < 0)
				return rc;
		} else {
			q = st->s[S_SERIES_INS];
			sqlite3_bind_int64(q, 1, s->id);
			sqlite3_bind_text(q, 2, sensor, -1, SQLITE_STATIC);
			sqlite3_bind_text(q, 3, metric, -1, SQLITE_STATIC);
			if ((rc = st_step_done(q)) < 0)
				return rc;
			*id = sqlite3_last_insert_rowid(st->db);
		}
		if (s->n_series >= 0)
			s->n_series++;
	}
	return htab_add(&st->series, key, *id, NULL) ? 0 : -ENOMEM;
}

int store_series_max(const struct store *st)
{
	return st->opt.series_max;
}

size_t store_retired(const struct store *st, const struct store_retired **out)
{
	*out = st->retired;
	return st->n_retired;
}

int store_put_reading(struct store *st, const char *station,
		      const struct agri_reading *r, int64_t received_ms)
{
	sqlite3_stmt *q = st->s[S_READING_INS];
	struct station *s;
	int64_t series = 0;
	int rc;

	if ((rc = station_get(st, station, &s)) < 0 ||
	    (rc = series_get(st, s, r->sensor, r->metric, received_ms, &series)) < 0)
		return rc;
	sqlite3_bind_int64(q, 1, series);
	sqlite3_bind_int64(q, 2, r->ts_ms);
	if (r->has_value)
		sqlite3_bind_double(q, 3, r->value);
	else
		sqlite3_bind_null(q, 3);
	sqlite3_bind_text(q, 4, r->unit, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 5, (int)r->q);
	sqlite3_bind_int64(q, 6, received_ms);
	sqlite3_bind_text(q, 7, r->why, -1, SQLITE_STATIC);
	if ((rc = st_step_done(q)) < 0)
		return rc;
	return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

/* --- a station's clock ----------------------------------------------- */

int store_put_clock_offset(struct store *st, const char *station, int64_t offset_ms)
{
	sqlite3_stmt *q = st->s[S_CLOCK];
	struct station *s;
	int rc;

	if ((rc = station_get(st, station, &s)) < 0)
		return rc;
	sqlite3_bind_int64(q, 1, s->id);
	sqlite3_bind_int64(q, 2, offset_ms);
	return st_step_done(q);
}
