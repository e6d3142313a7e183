/*
 * Upstream core (see upstream.h, docs/upstream.md): the durable queue fed
 * by the ingest hook, one thread per sink with its own SQLite connection,
 * cursors, backoff, the retention floor and the metrics.
 *
 * Locking rules: `mu` guards `floor_ms`, `floor_checked_ms` and the
 * condition variable `cv` (sinks wait on it, on_commit broadcasts). The
 * hook's tx_* fields, `committed_next` and `deleted_upto` belong to the
 * ingest writer thread. Per-sink counters are atomics written by the
 * sink's thread and read by any thread; `head` (last committed seq) is
 * written by the writer, read by the sinks.
 */
#include "upstream/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "agri/sqlite_errno.h"
#include "agri/buf.h"
#include "agri/log.h"
#include "agri/util.h"
#include "core/store.h"
#include "upstream/sink.h"

#define LOG "upstream"
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 15000
#define SYNC_EVERY_MS 5000
#define IDLE_WAIT_MS 1000
#define CLEANUP_EVERY_MS 1000
#define CLEANUP_CHUNK 50000
#define FLOOR_RECHECK_MS 5000
#define RATE_WINDOW_MS 2000

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS upstream_queue("
	" seq INTEGER PRIMARY KEY, series_id INTEGER NOT NULL, ts INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS upstream_cursor("
	" sink TEXT PRIMARY KEY, seq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS upstream_sta_ids("
	" url TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,"
	" PRIMARY KEY(url, key)) WITHOUT ROWID;"
	/* two hubs: SensorThings sends the claims database has not taken yet */
	"CREATE TABLE IF NOT EXISTS upstream_sta_unrecorded("
	" datastream TEXT NOT NULL, ts INTEGER NOT NULL, unclaimed INTEGER NOT NULL,"
	" PRIMARY KEY(datastream, ts)) WITHOUT ROWID;";

static const char fetch_sql[] =
	"SELECT q.seq, st.name, se.sensor, se.metric, q.ts, r.value, r.unit,"
	" r.q, r.received_at, r.ts IS NOT NULL, r.why"
	" FROM upstream_queue q JOIN series se ON se.id = q.series_id"
	" JOIN stations st ON st.id = se.station_id"
	" LEFT JOIN readings r ON r.series_id = q.series_id AND r.ts = q.ts"
	" WHERE q.seq > ?1 ORDER BY q.seq LIMIT ?2";

struct sink {
	struct upstream *up;
	const struct upstream_sink_ops *ops;
	void *impl;
	pthread_t thread;
	bool running;
	sqlite3 *db;
	sqlite3_stmt *fetch, *save;
	struct upstream_row *rows;
	int64_t cursor_mem;        /* sink thread: next fetch after it */
	bool cursor_dirty;         /* sink thread: cursor_mem not yet saved */
	struct log_complaint complaint;
	uint32_t rng;
	int attempt;
	int64_t rate_t0, rate_n0;

	atomic_int_fast64_t cursor;     /* durable cursor (saved in SQLite) */
	atomic_int_fast64_t taken;      /* cursor_mem, for the backlog gauge */
	atomic_bool connected;
	atomic_int_fast64_t oldest_ms;  /* received_at of the oldest pending, 0 none */
	atomic_uint_fast64_t rows_total, failures, outages, lost, rejected, dups;
	atomic_int_fast64_t rate_milli; /* rows/s * 1000 */
};

struct upstream {
	const struct gateway_config *cfg;
	struct ingest_hook hook;
	struct sink sinks[UPSTREAM_SINKS_MAX];
	size_t n_sinks;
	sqlite3 *ctl;               /* main + floor queries (under mu) */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	atomic_bool stopping;
	bool started;
	int64_t floor_ms;           /* mu */
	int64_t floor_checked_ms;   /* mu: monotonic */
	atomic_int_fast64_t head;   /* last committed seq */

	/* writer thread */
	sqlite3 *wdb;
	sqlite3_stmt *ins, *del;
	bool in_tx;
	int64_t committed_next, tx_next, tx_min_ts, deleted_upto, next_cleanup_ms;
};

/* --- small helpers ---------------------------------------------------- */

static int sql_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : agri_sqlite_errno(rc);
}

static int64_t sql_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *q = NULL;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

static int db_open(const char *path, sqlite3 **db)
{
	int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				 NULL);

	if (rc != SQLITE_OK) {
		sqlite3_close_v2(*db);
		*db = NULL;
		return agri_sqlite_errno(rc);
	}
	sqlite3_extended_result_codes(*db, 0);
	sqlite3_busy_timeout(*db, 5000);
	return sql_exec(*db, "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY;");
}

static int64_t min_cursor(struct upstream *up)
{
	int64_t m = INT64_MAX;

	for (size_t i = 0; i < up->n_sinks; i++) {
		int64_t c = atomic_load(&up->sinks[i].cursor);

		if (c < m)
			m = c;
	}
	return m;
}

/* --- the ingest hook (writer thread) ----------------------------------- */

static int hook_prepare(struct upstream *up, sqlite3 *db)
{
	int rc;

	if (up->wdb == db && up->ins)
		return 0;
	sqlite3_finalize(up->ins);
	sqlite3_finalize(up->del);
	up->ins = up->del = NULL;
	rc = sqlite3_prepare_v3(db,
		"INSERT INTO upstream_queue(seq, series_id, ts)"
		" SELECT ?1, se.id, ?5 FROM series se JOIN stations st ON st.id = se.station_id"
		" WHERE st.name = ?2 AND se.sensor = ?3 AND se.metric = ?4",
		-1, SQLITE_PREPARE_PERSISTENT, &up->ins, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(db, "DELETE FROM upstream_queue WHERE seq <= ?1",
					-1, SQLITE_PREPARE_PERSISTENT, &up->del, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	up->wdb = db;
	return 0;
}

/* Deletes queue rows every enabled sink has taken, a chunk at a time,
 * inside the writer's transaction (no lock contention with anyone). */
static int hook_cleanup(struct upstream *up)
{
	int64_t now = util_mono_ms(), upto = min_cursor(up);
	int rc;

	if (now < up->next_cleanup_ms || upto <= up->deleted_upto)
		return 0;
	up->next_cleanup_ms = now + CLEANUP_EVERY_MS;
	if (upto > up->deleted_upto + CLEANUP_CHUNK)
		upto = up->deleted_upto + CLEANUP_CHUNK;
	sqlite3_bind_int64(up->del, 1, upto);
	rc = sqlite3_step(up->del);
	sqlite3_reset(up->del);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	up->deleted_upto = upto; /* provisional until the commit; harmless if
				    rolled back: the rows are deleted again */
	return 0;
}

static int hook_telemetry(void *ctx, struct store *st,
			  const struct agri_telemetry *t, const bool *fresh,
			  int64_t received_ms)
{
	struct upstream *up = ctx;
	sqlite3_stmt *q;
	int rc;

	(void)received_ms;
	if ((rc = hook_prepare(up, store_db(st))) < 0)
		return rc;
	if (!up->in_tx) {
		up->in_tx = true;
		up->tx_next = up->committed_next;
		up->tx_min_ts = INT64_MAX;
		if ((rc = hook_cleanup(up)) < 0)
			return rc;
	}
	q = up->ins;
	for (size_t i = 0; i < t->n; i++) {
		const struct agri_reading *r = &t->readings[i];

		if (!fresh[i])
			continue;
		sqlite3_bind_int64(q, 1, up->tx_next);
		sqlite3_bind_text(q, 2, t->station, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, r->sensor, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, r->metric, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 5, r->ts_ms);
		rc = sqlite3_step(q);
		sqlite3_reset(q);
		if (rc != SQLITE_DONE)
			return agri_sqlite_errno(rc);
		if (sqlite3_changes(up->wdb) > 0)
			up->tx_next++;
		if (r->ts_ms < up->tx_min_ts)
			up->tx_min_ts = r->ts_ms;
	}
	return 0;
}

static void hook_commit(void *ctx)
{
	struct upstream *up = ctx;

	if (!up->in_tx)
		return;
	up->in_tx = false;
	if (up->tx_next == up->committed_next)
		return;
	up->committed_next = up->tx_next;
	atomic_store(&up->head, up->committed_next - 1);
	pthread_mutex_lock(&up->mu);
	if (up->tx_min_ts < up->floor_ms)
		up->floor_ms = up->tx_min_ts;
	pthread_cond_broadcast(&up->cv);
	pthread_mutex_unlock(&up->mu);
}

static void hook_rollback(void *ctx)
{
	struct upstream *up = ctx;

	up->in_tx = false;
	up->deleted_upto = sql_int(up->wdb, "SELECT coalesce(min(seq), 1) - 1 FROM upstream_queue",
				   up->deleted_upto);
}

/* --- retention floor ---------------------------------------------------- */

int64_t upstream_retention_floor_ms(void *ctx)
{
	struct upstream *up = ctx;
	int64_t now = util_mono_ms(), floor;

	if (!up)
		return INT64_MAX;
	pthread_mutex_lock(&up->mu);
	if (now >= up->floor_checked_ms + FLOOR_RECHECK_MS) {
		sqlite3_stmt *q = NULL;

		/* A fresh scan replaces the cached value: commits that land
		 * after it lower it again in hook_commit (same mutex). */
		if (sqlite3_prepare_v2(up->ctl, "SELECT min(ts) FROM upstream_queue WHERE seq > ?1",
				       -1, &q, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, min_cursor(up));
			if (sqlite3_step(q) == SQLITE_ROW) {
				up->floor_ms = sqlite3_column_type(q, 0) == SQLITE_NULL
						       ? INT64_MAX : sqlite3_column_int64(q, 0);
				up->floor_checked_ms = now;
			}
		}
		sqlite3_finalize(q);
	}
	floor = up->floor_ms;
	pthread_mutex_unlock(&up->mu);
	return floor;
}

/* --- sink threads -------------------------------------------------------- */

static int sink_prepare(struct sink *s)
{
	int rc = db_open(s->up->cfg->db.path, &s->db);

	if (rc < 0)
		return rc;
	if (sqlite3_prepare_v3(s->db, fetch_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->fetch,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(s->db,
			       "INSERT INTO upstream_cursor(sink, seq) VALUES (?1, ?2)"
			       " ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq",
			       -1, SQLITE_PREPARE_PERSISTENT, &s->save, NULL) != SQLITE_OK)
		return agri_sqlite_errno(sqlite3_errcode(s->db));
	s->rows = calloc(s->ops->batch_rows, sizeof(*s->rows));
	return s->rows ? 0 : -ENOMEM;
}

static void copy_text(char *dst, size_t len, sqlite3_stmt *q, int col)
{
	const unsigned char *t = sqlite3_column_text(q, col);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

/* Reads up to batch_rows queued rows after cursor_mem. Rows whose reading
 * is gone (deleted by a retention that ignored the floor) are counted as
 * lost and skipped. Returns the number of rows, or -errno. */
static int sink_fetch(struct sink *s, int64_t *last_seq)
{
	sqlite3_stmt *q = s->fetch;
	size_t n = 0;
	int rc;

	*last_seq = s->cursor_mem;
	sqlite3_bind_int64(q, 1, s->cursor_mem);
	sqlite3_bind_int64(q, 2, (int64_t)s->ops->batch_rows);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct upstream_row *r = &s->rows[n];

		*last_seq = sqlite3_column_int64(q, 0);
		if (!sqlite3_column_int(q, 9)) {
			atomic_fetch_add(&s->lost, 1);
			continue;
		}
		r->seq = *last_seq;
		copy_text(r->station, sizeof(r->station), q, 1);
		copy_text(r->sensor, sizeof(r->sensor), q, 2);
		copy_text(r->metric, sizeof(r->metric), q, 3);
		r->ts_ms = sqlite3_column_int64(q, 4);
		r->has_value = sqlite3_column_type(q, 5) != SQLITE_NULL;
		r->value = r->has_value ? sqlite3_column_double(q, 5) : 0.0;
		copy_text(r->unit, sizeof(r->unit), q, 6);
		r->q = sqlite3_column_int(q, 7);
		r->received_ms = sqlite3_column_int64(q, 8);
		copy_text(r->why, sizeof(r->why), q, 10);
		n++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	return (int)n;
}

static int sink_save_cursor(struct sink *s)
{
	int rc;

	sqlite3_bind_text(s->save, 1, s->ops->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->save, 2, s->cursor_mem);
	rc = sqlite3_step(s->save);
	sqlite3_reset(s->save);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	s->cursor_dirty = false;
	atomic_store(&s->cursor, s->cursor_mem);
	return 0;
}

static int64_t sink_backlog(struct sink *s)
{
	int64_t b = atomic_load(&s->up->head) - atomic_load(&s->taken);

	return b > 0 ? b : 0;
}

/* Waits on the shared condition variable up to ms, or until stopping. */
static void sink_wait(struct sink *s, int64_t ms)
{
	struct upstream *up = s->up;
	struct timespec ts;

	if (ms <= 0)
		return;
	util_deadline(&ts, CLOCK_REALTIME, ms);
	pthread_mutex_lock(&up->mu);
	if (!atomic_load(&up->stopping) && atomic_load(&up->head) <= s->cursor_mem)
		pthread_cond_timedwait(&up->cv, &up->mu, &ts);
	pthread_mutex_unlock(&up->mu);
}

/* Sleeps up to ms (at most 5 s), or until stopping: a sink waiting for
 * another hub's claim, which no commit here would end. */
static void sink_pause(struct sink *s, int64_t ms)
{
	if (ms > 5000)
		ms = 5000;
	for (int64_t end = util_mono_ms() + ms;
	     !atomic_load(&s->up->stopping) && util_mono_ms() < end;)
		util_sleep_ms(end - util_mono_ms() < 100 ? end - util_mono_ms() : 100);
}

static void sink_failed(struct sink *s, const char *what, const char *err)
{
	int64_t delay;

	atomic_fetch_add(&s->failures, 1);
	atomic_store(&s->connected, false);
	if (!s->complaint.complained)
		atomic_fetch_add(&s->outages, 1);
	log_complain(&s->complaint, LOG_LVL_WARN, LOG,
		     "sink down sink=%s during=%s error=\"%s\" backlog=%lld (retrying with backoff;"
		     " logged once)", s->ops->name, what, err, (long long)sink_backlog(s));
	s->ops->disconnect(s->impl);
	delay = util_backoff_ms(s->attempt, BACKOFF_BASE_MS, BACKOFF_CAP_MS, &s->rng);
	if (s->attempt < 16)
		s->attempt++;
	for (int64_t end = util_mono_ms() + delay;
	     !atomic_load(&s->up->stopping) && util_mono_ms() < end;)
		util_sleep_ms(end - util_mono_ms() < 100 ? end - util_mono_ms() : 100);
}

static void sink_rate(struct sink *s)
{
	int64_t now = util_mono_ms(), n = (int64_t)atomic_load(&s->rows_total);

	if (now - s->rate_t0 < RATE_WINDOW_MS)
		return;
	atomic_store(&s->rate_milli, (n - s->rate_n0) * 1000000 / (now - s->rate_t0));
	s->rate_t0 = now;
	s->rate_n0 = n;
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	struct upstream *up = s->up;
	char err[UPSTREAM_ERR_MAX];
	int64_t next_sync = 0, caught_up_rows = 0;
	bool need_connect = true;
	int rc;

	s->rate_t0 = util_mono_ms();
	while (!atomic_load(&up->stopping)) {
		struct upstream_send_result res = {0};
		int64_t last = 0;
		int n;

		sink_rate(s);
		if (s->cursor_dirty && sink_save_cursor(s) < 0) {
			util_sleep_ms(100); /* the store is busy: try again */
			continue;
		}
		if (need_connect) {
			err[0] = '\0';
			if ((rc = s->ops->connect(s->impl, err, sizeof(err))) < 0) {
				sink_failed(s, "connect", err[0] ? err : strerror(-rc));
				continue;
			}
			need_connect = false;
			atomic_store(&s->connected, true);
			next_sync = 0;
		}
		if (s->ops->sync && util_mono_ms() >= next_sync) {
			err[0] = '\0';
			if ((rc = s->ops->sync(s->impl, err, sizeof(err))) < 0) {
				need_connect = true;
				sink_failed(s, "sync", err[0] ? err : strerror(-rc));
				continue;
			}
			next_sync = util_mono_ms() + SYNC_EVERY_MS;
		}
		n = sink_fetch(s, &last);
		if (n < 0) {
			log_warn(LOG, "cannot read the queue sink=%s error=\"%s\"", s->ops->name,
				 strerror(-n));
			util_sleep_ms(500);
			continue;
		}
		if (n > 0)
			atomic_store(&s->oldest_ms, s->rows[0].received_ms);
		if (last == s->cursor_mem) { /* nothing queued */
			atomic_store(&s->oldest_ms, 0);
			if (s->complaint.complained) {
				log_release(&s->complaint, LOG,
					    "sink recovered sink=%s caught_up_rows=%lld", s->ops->name,
					    (long long)caught_up_rows);
				caught_up_rows = 0;
			}
			sink_wait(s, IDLE_WAIT_MS);
			continue;
		}
		err[0] = '\0';
		if (n > 0 && (rc = s->ops->send(s->impl, s->rows, (size_t)n, &res, err,
						sizeof(err))) < 0) {
			need_connect = true;
			sink_failed(s, "send", err[0] ? err : strerror(-rc));
			continue;
		}
		s->attempt = 0;
		atomic_store(&s->connected, true);
		if (res.partial && res.taken < (size_t)n) {
			/* the rest waits for another hub's claim: after it next */
			last = s->rows[res.taken].seq - 1;
			n = (int)res.taken;
		}
		atomic_fetch_add(&s->rows_total, (uint64_t)n - res.rejected - res.duplicates -
						 res.skipped);
		atomic_fetch_add(&s->rejected, res.rejected);
		atomic_fetch_add(&s->dups, res.duplicates);
		if (s->complaint.complained)
			caught_up_rows += n;
		if (last != s->cursor_mem) {
			s->cursor_mem = last;
			atomic_store(&s->taken, last);
			s->cursor_dirty = true;
			sink_save_cursor(s); /* retried at the top of the loop */
		}
		if (res.partial)
			sink_pause(s, res.wait_ms);
	}
	if (s->cursor_dirty)
		sink_save_cursor(s);
	s->ops->disconnect(s->impl);
	return NULL;
}

/* --- life cycle ---------------------------------------------------------- */

static int open_queue(struct upstream *up)
{
	bool fresh;
	int rc;

	if ((rc = db_open(up->cfg->db.path, &up->ctl)) < 0)
		return rc;
	if ((rc = sql_exec(up->ctl, "BEGIN IMMEDIATE")) < 0)
		return rc;
	fresh = sql_int(up->ctl, "SELECT count(*) FROM sqlite_master WHERE name = 'upstream_queue'",
			0) == 0;
	if ((rc = sql_exec(up->ctl, schema_sql)) < 0)
		goto fail;
	/* The first time: everything already stored is forwarded too. */
	if (fresh && (rc = sql_exec(up->ctl,
				    "INSERT INTO upstream_queue(series_id, ts)"
				    " SELECT series_id, ts FROM readings ORDER BY received_at, series_id, ts")) < 0)
		goto fail;
	for (size_t i = 0; i < up->n_sinks; i++) {
		sqlite3_stmt *q = NULL;

		/* A new sink takes everything still queued. */
		rc = sqlite3_prepare_v2(up->ctl,
					"INSERT OR IGNORE INTO upstream_cursor(sink, seq)"
					" SELECT ?1, coalesce(min(seq), 1) - 1 FROM upstream_queue",
					-1, &q, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(q, 1, up->sinks[i].ops->name, -1, SQLITE_STATIC);
			rc = sqlite3_step(q);
		}
		sqlite3_finalize(q);
		if (rc != SQLITE_DONE) {
			rc = agri_sqlite_errno(rc);
			goto fail;
		}
		q = NULL;
		if (sqlite3_prepare_v2(up->ctl, "SELECT seq FROM upstream_cursor WHERE sink = ?1", -1,
				       &q, NULL) == SQLITE_OK) {
			sqlite3_bind_text(q, 1, up->sinks[i].ops->name, -1, SQLITE_STATIC);
			if (sqlite3_step(q) == SQLITE_ROW) {
				int64_t c = sqlite3_column_int64(q, 0);

				atomic_store(&up->sinks[i].cursor, c);
				atomic_store(&up->sinks[i].taken, c);
				up->sinks[i].cursor_mem = c;
			}
		}
		sqlite3_finalize(q);
	}
	/* Seqs are never reused, even once the queue is empty. */
	up->committed_next = 1 + sql_int(up->ctl,
		"SELECT max(coalesce((SELECT max(seq) FROM upstream_queue), 0),"
		" coalesce((SELECT max(seq) FROM upstream_cursor), 0))", 0);
	atomic_store(&up->head, up->committed_next - 1);
	up->deleted_upto = sql_int(up->ctl, "SELECT coalesce(min(seq), 1) - 1 FROM upstream_queue",
				   0);
	if ((rc = sql_exec(up->ctl, "COMMIT")) < 0)
		goto fail;
	return 0;
fail:
	sql_exec(up->ctl, "ROLLBACK");
	return rc;
}

struct upstream *upstream_new(const struct gateway_config *cfg, int *err)
{
	struct upstream *up;
	int rc;

	*err = 0;
	if (!cfg->upstream.has_postgres && !cfg->upstream.has_sensorthings)
		return NULL;
	up = calloc(1, sizeof(*up));
	if (!up) {
		*err = -ENOMEM;
		return NULL;
	}
	up->cfg = cfg;
	pthread_mutex_init(&up->mu, NULL);
	pthread_cond_init(&up->cv, NULL);
	up->floor_ms = INT64_MAX;
	up->floor_checked_ms = INT64_MIN / 2;
	if (cfg->upstream.has_postgres)
		up->sinks[up->n_sinks++].ops = &upstream_pg_ops;
	if (cfg->upstream.has_sensorthings)
		up->sinks[up->n_sinks++].ops = &upstream_sta_ops;
	for (size_t i = 0; i < up->n_sinks; i++) {
		struct sink *s = &up->sinks[i];

		s->up = up;
		s->rng = (uint32_t)util_mono_ms() * 2654435761u + (uint32_t)i + 1;
		if (!s->rng)
			s->rng = 1;
	}
	if ((rc = open_queue(up)) < 0) {
		log_error(LOG, "cannot open the upstream queue path=%s error=\"%s\"",
			  cfg->db.path, strerror(-rc));
		goto fail;
	}
	for (size_t i = 0; i < up->n_sinks; i++) {
		struct sink *s = &up->sinks[i];

		if ((rc = sink_prepare(s)) < 0)
			goto fail;
		s->impl = s->ops->open(cfg, s->db);
		if (!s->impl) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	up->hook = (struct ingest_hook){
		.name = "upstream",
		.ctx = up,
		.on_telemetry = hook_telemetry,
		.on_commit = hook_commit,
		.on_rollback = hook_rollback,
		.retention_floor_ms = upstream_retention_floor_ms,
	};
	return up;
fail:
	*err = rc;
	upstream_free(up);
	return NULL;
}

void upstream_set_claims(struct upstream *up, struct claims *c)
{
	for (size_t i = 0; up && c && i < up->n_sinks; i++)
		if (up->sinks[i].ops->set_claims && up->sinks[i].impl)
			up->sinks[i].ops->set_claims(up->sinks[i].impl, c);
}

const struct ingest_hook *upstream_hook(struct upstream *up)
{
	return &up->hook;
}

int upstream_start(struct upstream *up)
{
	if (!up || up->started)
		return 0;
	for (size_t i = 0; i < up->n_sinks; i++) {
		struct sink *s = &up->sinks[i];
		int rc;

		log_info(LOG, "sink started sink=%s cursor=%lld backlog=%lld", s->ops->name,
			 (long long)s->cursor_mem, (long long)sink_backlog(s));
		rc = pthread_create(&s->thread, NULL, sink_main, s);
		if (rc != 0) {
			upstream_stop(up);
			return -rc;
		}
		s->running = true;
	}
	up->started = true;
	return 0;
}

void upstream_stop(struct upstream *up)
{
	if (!up)
		return;
	pthread_mutex_lock(&up->mu);
	atomic_store(&up->stopping, true);
	pthread_cond_broadcast(&up->cv);
	pthread_mutex_unlock(&up->mu);
	for (size_t i = 0; i < up->n_sinks; i++)
		if (up->sinks[i].running && up->sinks[i].impl)
			up->sinks[i].ops->cancel(up->sinks[i].impl);
	for (size_t i = 0; i < up->n_sinks; i++) {
		if (!up->sinks[i].running)
			continue;
		pthread_join(up->sinks[i].thread, NULL);
		up->sinks[i].running = false;
	}
}

void upstream_free(struct upstream *up)
{
	if (!up)
		return;
	upstream_stop(up);
	for (size_t i = 0; i < up->n_sinks; i++) {
		struct sink *s = &up->sinks[i];

		if (s->impl)
			s->ops->close(s->impl);
		sqlite3_finalize(s->fetch);
		sqlite3_finalize(s->save);
		if (s->db)
			sqlite3_close_v2(s->db);
		free(s->rows);
	}
	sqlite3_finalize(up->ins);
	sqlite3_finalize(up->del);
	if (up->ctl)
		sqlite3_close_v2(up->ctl);
	pthread_cond_destroy(&up->cv);
	pthread_mutex_destroy(&up->mu);
	free(up);
}

/* --- metrics ------------------------------------------------------------- */

void upstream_metrics(struct upstream *up, struct upstream_metrics *m)
{
	int64_t now = util_now_ms();

	memset(m, 0, sizeof(*m));
	if (!up)
		return;
	m->n_sinks = up->n_sinks;
	for (size_t i = 0; i < up->n_sinks; i++) {
		struct sink *s = &up->sinks[i];
		struct upstream_sink_metrics *o = &m->sink[i];
		int64_t oldest = atomic_load(&s->oldest_ms);

		snprintf(o->name, sizeof(o->name), "%s", s->ops->name);
		o->connected = atomic_load(&s->connected);
		o->backlog_rows = (uint64_t)sink_backlog(s);
		o->backlog_age_s = o->backlog_rows && oldest > 0 && now > oldest
					   ? (double)(now - oldest) / 1000.0 : 0.0;
		o->rows_total = atomic_load(&s->rows_total);
		o->rows_per_s = (double)atomic_load(&s->rate_milli) / 1000.0;
		o->failures_total = atomic_load(&s->failures);
		o->outages_total = atomic_load(&s->outages);
		o->lost_total = atomic_load(&s->lost);
		o->rejected_total = atomic_load(&s->rejected);
		o->duplicates_skipped_total = atomic_load(&s->dups);
	}
}

size_t upstream_metrics_text(struct upstream *up, char *buf, size_t len)
{
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
		{"agri_upstream_connected", "gauge", "1 when the sink's last attempt succeeded"},
		{"agri_upstream_backlog_rows", "gauge", "readings queued for the sink"},
		{"agri_upstream_backlog_age_seconds", "gauge", "how long the oldest queued reading has waited"},
		{"agri_upstream_rows_total", "counter", "readings committed by the target"},
		{"agri_upstream_rows_per_second", "gauge", "forwarding rate over the last seconds"},
		{"agri_upstream_failures_total", "counter", "failed attempts"},
		{"agri_upstream_outages_total", "counter", "outages (first failure after a success)"},
		{"agri_upstream_lost_total", "counter", "queued readings deleted before the sink took them"},
		{"agri_upstream_rejected_total", "counter", "rows the target refused for good"},
		{"agri_upstream_duplicates_skipped_total", "counter", "replayed rows found already in the target"},
	};
	struct upstream_metrics m;
	size_t off = 0;

	if (len)
		buf[0] = '\0';
	if (!up)
		return 0;
	upstream_metrics(up, &m);
	for (size_t f = 0; f < AGRI_ARRAY_SIZE(fam); f++) {
		int w = snprintf(buf + (off < len ? off : len), off < len ? len - off : 0,
				 "# HELP %s %s\n# TYPE %s %s\n", fam[f].name, fam[f].help,
				 fam[f].name, fam[f].type);

		off += (size_t)w;
		for (size_t i = 0; i < m.n_sinks; i++) {
			const struct upstream_sink_metrics *o = &m.sink[i];
			double v[] = {o->connected, (double)o->backlog_rows, o->backlog_age_s,
				      (double)o->rows_total, o->rows_per_s,
				      (double)o->failures_total, (double)o->outages_total,
				      (double)o->lost_total, (double)o->rejected_total,
				      (double)o->duplicates_skipped_total};

			w = snprintf(buf + (off < len ? off : len), off < len ? len - off : 0,
				     "%s{sink=\"%s\"} %.15g\n", fam[f].name, o->name, v[f]);
			off += (size_t)w;
		}
	}
	return off;
}
