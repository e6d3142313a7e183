/*
 * PostgreSQL sink (docs/interfaces.md §12, upstream.md): schema `agri` created
 * or checked at connect; readings sent as one COPY a batch. The fast path
 * COPYs straight into agri.readings; when that hits the primary key (a
 * replay after a crash or an outage), the batch goes again through a
 * temporary table and INSERT ... ON CONFLICT DO NOTHING, and the slow path
 * stays on until a batch has no duplicates. Station and alert state are
 * mirrored by upserts guarded by updated_at, every few seconds.
 *
 * TLS: the sslmode is always given (so PGSSLMODE cannot lower it): the
 * conninfo's own, else verify-full for a host that is not this machine and
 * prefer for loopback or a Unix socket, as gateway.json's check derived it
 * (cfg->upstream.postgres_sslmode; docs/upstream.md).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "agri/sqlite_errno.h"
#include "agri/log.h"
#include "agri/util.h"
#include "core/store.h"
#include "upstream/sink.h"

#define COPY_BUF_MAX (16 * 1024 * 1024)
#define ALERTS_BATCH 1000
#define FP_MAX 320

static const char *const q_names[] = {"ok", "suspect", "error", "maint"};

static const char schema_sql[] =
	"SELECT pg_advisory_xact_lock(4242002);"
	"CREATE SCHEMA IF NOT EXISTS agri;"
	"CREATE TABLE IF NOT EXISTS agri.readings("
	" station text NOT NULL, sensor text NOT NULL, metric text NOT NULL,"
	" ts timestamptz NOT NULL, value double precision, unit text, q text,"
	" received_at timestamptz, PRIMARY KEY (station, sensor, metric, ts));"
	/* why a reading is suspect (dry, stuck, full_scale, range, map): added
	 * to tables made before it */
	"ALTER TABLE agri.readings ADD COLUMN IF NOT EXISTS why text;"
	"CREATE TABLE IF NOT EXISTS agri.stations("
	" station text PRIMARY KEY, state text, last_seen timestamptz, last_seq bigint,"
	" fw text, board text, updated_at timestamptz);"
	"CREATE TABLE IF NOT EXISTS agri.alerts("
	" id text PRIMARY KEY, rule text, station text, sensor text, metric text,"
	" severity text, state text, value double precision, threshold double precision,"
	" raised_at timestamptz, updated_at timestamptz, message text);";

/* The columns we write, with the type each must have. */
static const char check_sql[] =
	"SELECT count(*) FROM information_schema.columns WHERE table_schema = 'agri'"
	" AND ((table_name = 'readings' AND (column_name, data_type) IN ("
	"  ('station','text'),('sensor','text'),('metric','text'),"
	"  ('ts','timestamp with time zone'),('value','double precision'),('unit','text'),"
	"  ('q','text'),('received_at','timestamp with time zone'),('why','text')))"
	" OR (table_name = 'stations' AND column_name IN"
	"  ('station','state','last_seen','last_seq','fw','board','updated_at'))"
	" OR (table_name = 'alerts' AND column_name IN ('id','rule','station','sensor',"
	"  'metric','severity','state','value','threshold','raised_at','updated_at','message')))";
#define CHECK_COLUMNS (9 + 7 + 12)

static const char station_upsert[] =
	"INSERT INTO agri.stations(station, state, last_seen, last_seq, fw, board, updated_at)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (station) DO UPDATE SET"
	" state = excluded.state, last_seen = excluded.last_seen, last_seq = excluded.last_seq,"
	" fw = excluded.fw, board = excluded.board, updated_at = excluded.updated_at"
	" WHERE agri.stations.updated_at IS NULL OR agri.stations.updated_at <= excluded.updated_at";

static const char alert_upsert[] =
	"INSERT INTO agri.alerts(id, rule, station, sensor, metric, severity, state, value,"
	" threshold, raised_at, updated_at, message)"
	" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO UPDATE SET"
	" rule = excluded.rule, station = excluded.station, sensor = excluded.sensor,"
	" metric = excluded.metric, severity = excluded.severity, state = excluded.state,"
	" value = excluded.value, threshold = excluded.threshold, raised_at = excluded.raised_at,"
	" updated_at = excluded.updated_at, message = excluded.message"
	" WHERE agri.alerts.updated_at IS NULL OR agri.alerts.updated_at <= excluded.updated_at";

struct fp {
	char name[AGRI_ID_MAX + 1];
	char fp[FP_MAX];
};

struct pg {
	char conninfo[GW_URL_MAX];
	char sslmode[16];
	PGconn *conn;
	pthread_mutex_t cancel_mu;
	PGcancel *cancel;           /* cancel_mu */
	atomic_bool cancelled;      /* any thread: stop connecting */
	sqlite3 *db;                /* the sink thread's connection */
	sqlite3_stmt *st_sel, *al_sel, *al_save;
	char *buf;                  /* the COPY text of a batch */
	size_t len, cap;
	bool slow;                  /* use the temp table + ON CONFLICT path */
	struct fp *fps;             /* stations as last mirrored, sorted by name */
	size_t n_fps;
	int64_t alerts_mark;        /* updated_at (ms) already mirrored */
};

void upstream_pg_time(int64_t ms, char *buf, size_t len)
{
	time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)sec * 1000);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void set_err(char *err, size_t len, const char *what, PGconn *c)
{
	const char *m = c ? PQerrorMessage(c) : "";
	size_t n;

	snprintf(err, len, "%s%s%s", what, m[0] ? ": " : "", m);
	n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++) /* one line, no quotes breaking key="..." */
		if (*p == '\n' || *p == '\t' || *p == '"')
			*p = *p == '"' ? '\'' : ' ';
}

static void *pg_open(const struct gateway_config *cfg, sqlite3 *db)
{
	struct pg *p = calloc(1, sizeof(*p));
	sqlite3_stmt *q = NULL;

	if (!p)
		return NULL;
	snprintf(p->conninfo, sizeof(p->conninfo), "%s", cfg->upstream.postgres_conninfo);
	/* A config that did not go through the check fails closed. */
	snprintf(p->sslmode, sizeof(p->sslmode), "%s",
		 cfg->upstream.postgres_sslmode[0] ? cfg->upstream.postgres_sslmode : "verify-full");
	pthread_mutex_init(&p->cancel_mu, NULL);
	p->db = db;
	if (sqlite3_prepare_v3(db, "SELECT name, state, last_seen, last_seq, fw, board,"
			       " max(coalesce(last_seen, 0), coalesce(status_at, 0))"
			       " FROM stations ORDER BY name", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->st_sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "SELECT id, rule, station, sensor, metric, severity, state,"
			       " value, threshold, raised_at, updated_at, message FROM alerts"
			       " WHERE updated_at >= ?1 ORDER BY updated_at LIMIT ?2", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->al_sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT INTO upstream_cursor(sink, seq) VALUES ('postgres/alerts', ?1)"
			       " ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq", -1,
			       SQLITE_PREPARE_PERSISTENT, &p->al_save, NULL) != SQLITE_OK) {
		log_error("upstream", "cannot prepare the postgres sink's queries: %s",
			  sqlite3_errmsg(db));
		sqlite3_finalize(p->st_sel);
		sqlite3_finalize(p->al_sel);
		sqlite3_finalize(p->al_save);
		free(p);
		return NULL;
	}
	if (sqlite3_prepare_v2(db, "SELECT seq FROM upstream_cursor WHERE sink = 'postgres/alerts'",
			       -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		p->alerts_mark = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return p;
}

static void pg_disconnect(void *ctx)
{
	struct pg *p = ctx;

	pthread_mutex_lock(&p->cancel_mu);
	if (p->cancel)
		PQfreeCancel(p->cancel);
	p->cancel = NULL;
	pthread_mutex_unlock(&p->cancel_mu);
	if (p->conn)
		PQfinish(p->conn);
	p->conn = NULL;
}

static void pg_cancel(void *ctx)
{
	struct pg *p = ctx;
	char e[128];

	atomic_store(&p->cancelled, true);
	pthread_mutex_lock(&p->cancel_mu);
	if (p->cancel)
		PQcancel(p->cancel, e, sizeof(e));
	pthread_mutex_unlock(&p->cancel_mu);
}

static void pg_close(void *ctx)
{
	struct pg *p = ctx;

	if (!p)
		return;
	pg_disconnect(p);
	sqlite3_finalize(p->st_sel);
	sqlite3_finalize(p->al_sel);
	sqlite3_finalize(p->al_save);
	pthread_mutex_destroy(&p->cancel_mu);
	free(p->fps);
	free(p->buf);
	free(p);
}

/* Runs sql (no result rows wanted). 0, or -EIO with err. */
static int pg_exec(struct pg *p, const char *sql, ExecStatusType want, char *err,
		   size_t errlen)
{
	PGresult *r = PQexec(p->conn, sql);
	int rc = 0;

	if (PQresultStatus(r) != want) {
		set_err(err, errlen, "query failed", p->conn);
		rc = -EIO;
	}
	PQclear(r);
	return rc;
}

static int pg_connect(void *ctx, char *err, size_t errlen)
{
	struct pg *p = ctx;
	/* Our defaults first: the conninfo (expanded from dbname) overrides. */
	const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
			      "keepalives_count", "tcp_user_timeout", "application_name",
			      "sslmode", "dbname", NULL};
	const char *vals[] = {"10", "10", "5", "3", "30000", "agri-gateway", p->sslmode,
			      p->conninfo, NULL};
	PGresult *r;
	int rc;

	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	int64_t deadline = util_mono_ms() + 10000;

	pg_disconnect(p);
	/* Asynchronous, so that shutdown never waits for a connect timeout. */
	p->conn = PQconnectStartParams(keys, vals, 1);
	if (!p->conn || PQstatus(p->conn) == CONNECTION_BAD) {
		set_err(err, errlen, "cannot connect", p->conn);
		return -ECONNREFUSED;
	}
	while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		struct pollfd pfd = {.fd = PQsocket(p->conn),
				     .events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT};

		if (atomic_load(&p->cancelled) || util_mono_ms() > deadline) {
			snprintf(err, errlen, "cannot connect: %s",
				 atomic_load(&p->cancelled) ? "cancelled" : "timeout");
			return -ETIMEDOUT;
		}
		if (poll(&pfd, 1, 100) == 0)
			continue;
		ps = PQconnectPoll(p->conn);
	}
	if (ps == PGRES_POLLING_FAILED) {
		set_err(err, errlen, "cannot connect", p->conn);
		return -ECONNREFUSED;
	}
	pthread_mutex_lock(&p->cancel_mu);
	p->cancel = PQgetCancel(p->conn);
	pthread_mutex_unlock(&p->cancel_mu);
	if ((rc = pg_exec(p, "SET TIME ZONE 'UTC'; SET synchronous_commit = on", PGRES_COMMAND_OK,
			  err, errlen)) < 0 ||
	    (rc = pg_exec(p, "BEGIN", PGRES_COMMAND_OK, err, errlen)) < 0)
		return rc;
	r = PQexec(p->conn, schema_sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		set_err(err, errlen, "cannot create schema agri", p->conn);
		PQclear(r);
		return -EIO;
	}
	PQclear(r);
	if ((rc = pg_exec(p, "COMMIT", PGRES_COMMAND_OK, err, errlen)) < 0)
		return rc;
	r = PQexec(p->conn, check_sql);
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
	    atoi(PQgetvalue(r, 0, 0)) != CHECK_COLUMNS) {
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			snprintf(err, errlen, "schema agri differs from docs/interfaces.md §12 (found %s of %d"
				 " expected columns with their types)",
				 PQntuples(r) ? PQgetvalue(r, 0, 0) : "0", CHECK_COLUMNS);
		else
			set_err(err, errlen, "cannot check schema agri", p->conn);
		PQclear(r);
		return -EPROTO;
	}
	PQclear(r);
	return pg_exec(p, "CREATE TEMP TABLE agri_in (LIKE agri.readings INCLUDING DEFAULTS)"
		       " ON COMMIT DELETE ROWS", PGRES_COMMAND_OK, err, errlen);
}

/* --- readings ------------------------------------------------------------ */

static int buf_reserve(struct pg *p, size_t more)
{
	size_t cap;
	char *b;

	if (p->len + more <= p->cap)
		return 0;
	cap = p->cap ? p->cap : 65536;
	while (cap < p->len + more)
		cap *= 2;
	if (cap > COPY_BUF_MAX)
		return -E2BIG;
	b = realloc(p->buf, cap);
	if (!b)
		return -ENOMEM;
	p->buf = b;
	p->cap = cap;
	return 0;
}

/* Appends s escaped for COPY text format, then sep. */
static void buf_text(struct pg *p, const char *s, char sep)
{
	for (; *s; s++) {
		char c = *s;

		if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
			p->buf[p->len++] = '\\';
			c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
		}
		p->buf[p->len++] = c;
	}
	p->buf[p->len++] = sep;
}

static int build_copy(struct pg *p, const struct upstream_row *rows, size_t n)
{
	char t[40];
	int rc;

	p->len = 0;
	for (size_t i = 0; i < n; i++) {
		const struct upstream_row *r = &rows[i];

		/* Worst case: every text byte escaped. */
		if ((rc = buf_reserve(p, 2 * (sizeof(r->station) + sizeof(r->sensor) +
					      sizeof(r->metric) + sizeof(r->unit) + sizeof(r->why)) +
					   128)) < 0)
			return rc;
		buf_text(p, r->station, '\t');
		buf_text(p, r->sensor, '\t');
		buf_text(p, r->metric, '\t');
		upstream_pg_time(r->ts_ms, t, sizeof(t));
		buf_text(p, t, '\t');
		if (r->has_value)
			p->len += (size_t)snprintf(p->buf + p->len, 32, "%.17g\t", r->value);
		else {
			memcpy(p->buf + p->len, "\\N\t", 3);
			p->len += 3;
		}
		buf_text(p, r->unit, '\t');
		buf_text(p, r->q >= 0 && r->q < 4 ? q_names[r->q] : "error", '\t');
		upstream_pg_time(r->received_ms, t, sizeof(t));
		buf_text(p, t, '\t');
		if (r->why[0])
			buf_text(p, r->why, '\n');
		else {
			memcpy(p->buf + p->len, "\\N\n", 3);
			p->len += 3;
		}
	}
	return 0;
}

/* COPYs the prepared buffer into table. 0 or -EIO; *unique when the
 * failure was a primary-key violation. */
static int copy_into(struct pg *p, const char *table, bool *unique, char *err, size_t errlen)
{
	char sql[160];
	PGresult *r;
	int rc = 0;

	*unique = false;
	snprintf(sql, sizeof(sql), "COPY %s (station, sensor, metric, ts, value, unit, q,"
		 " received_at, why) FROM STDIN", table);
	r = PQexec(p->conn, sql);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		set_err(err, errlen, "COPY refused", p->conn);
		PQclear(r);
		return -EIO;
	}
	PQclear(r);
	if (PQputCopyData(p->conn, p->buf, (int)p->len) != 1 || PQputCopyEnd(p->conn, NULL) != 1) {
		set_err(err, errlen, "COPY failed", p->conn);
		return -EIO;
	}
	while ((r = PQgetResult(p->conn))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
			const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

			*unique = state && strcmp(state, "23505") == 0;
			set_err(err, errlen, "COPY failed", p->conn);
			rc = -EIO;
		}
		PQclear(r);
	}
	return rc;
}

static int pg_send(void *ctx, const struct upstream_row *rows, size_t n,
		   struct upstream_send_result *res, char *err, size_t errlen)
{
	struct pg *p = ctx;
	bool unique = false;
	PGresult *r;
	long inserted;
	int rc;

	if ((rc = build_copy(p, rows, n)) < 0) {
		snprintf(err, errlen, "batch too large for the COPY buffer");
		return rc;
	}
	if (!p->slow) {
		if ((rc = pg_exec(p, "BEGIN", PGRES_COMMAND_OK, err, errlen)) < 0)
			return rc;
		rc = copy_into(p, "agri.readings", &unique, err, errlen);
		if (rc == 0)
			return pg_exec(p, "COMMIT", PGRES_COMMAND_OK, err, errlen);
		pg_exec(p, "ROLLBACK", PGRES_COMMAND_OK, err, errlen);
		if (!unique)
			return rc;
		p->slow = true; /* a replay: some rows are there already */
	}
	if ((rc = pg_exec(p, "BEGIN", PGRES_COMMAND_OK, err, errlen)) < 0 ||
	    (rc = copy_into(p, "agri_in", &unique, err, errlen)) < 0)
		return rc;
	r = PQexec(p->conn, "INSERT INTO agri.readings (station, sensor, metric, ts, value, unit, q,"
		   " received_at, why) SELECT station, sensor, metric, ts, value, unit, q,"
		   " received_at, why FROM agri_in ON CONFLICT DO NOTHING");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_err(err, errlen, "INSERT failed", p->conn);
		PQclear(r);
		return -EIO;
	}
	inserted = atol(PQcmdTuples(r));
	PQclear(r);
	if ((rc = pg_exec(p, "COMMIT", PGRES_COMMAND_OK, err, errlen)) < 0)
		return rc;
	if (inserted >= 0 && (size_t)inserted < n)
		res->duplicates = n - (size_t)inserted;
	else
		p->slow = false; /* caught up with the replay: back to plain COPY */
	return 0;
}

/* --- stations and alerts ------------------------------------------------- */

static const char *col_text(sqlite3_stmt *q, int c)
{
	return sqlite3_column_type(q, c) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(q, c);
}

/* Converts an ms column into a PostgreSQL timestamp in buf (NULL stays NULL). */
static const char *col_time(sqlite3_stmt *q, int c, char *buf, size_t len)
{
	if (sqlite3_column_type(q, c) == SQLITE_NULL)
		return NULL;
	upstream_pg_time(sqlite3_column_int64(q, c), buf, len);
	return buf;
}

static int exec_params(struct pg *p, const char *sql, int n, const char *const *v, char *err,
		       size_t errlen)
{
	PGresult *r = PQexecParams(p->conn, sql, n, NULL, v, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		set_err(err, errlen, "upsert failed", p->conn);
		rc = -EIO;
	}
	PQclear(r);
	return rc;
}

static int sync_stations(struct pg *p, char *err, size_t errlen)
{
	struct fp *now = NULL;
	size_t n = 0, cap = 0, j = 0;
	bool in_tx = false;
	int rc = 0, s;

	while ((s = sqlite3_step(p->st_sel)) == SQLITE_ROW) {
		const char *v[7];
		char t1[40], t2[40], seq[24];
		struct fp *f;

		if (n == cap) {
			struct fp *g = realloc(now, (cap = cap ? cap * 2 : 64) * sizeof(*g));

			if (!g) {
				rc = -ENOMEM;
				goto out;
			}
			now = g;
		}
		f = &now[n++];
		v[0] = col_text(p->st_sel, 0);
		v[1] = col_text(p->st_sel, 1);
		v[2] = col_time(p->st_sel, 2, t1, sizeof(t1));
		v[3] = col_text(p->st_sel, 3) ? (snprintf(seq, sizeof(seq), "%lld",
					(long long)sqlite3_column_int64(p->st_sel, 3)), seq) : NULL;
		v[4] = col_text(p->st_sel, 4);
		v[5] = col_text(p->st_sel, 5);
		v[6] = col_time(p->st_sel, 6, t2, sizeof(t2));
		snprintf(f->name, sizeof(f->name), "%s", v[0] ? v[0] : "");
		snprintf(f->fp, sizeof(f->fp), "%s|%s|%s|%s|%s|%s", v[1] ? v[1] : "", v[2] ? v[2] : "",
			 v[3] ? v[3] : "", v[4] ? v[4] : "", v[5] ? v[5] : "", v[6] ? v[6] : "");
		/* Both lists are sorted by name: walk the old one alongside. */
		while (j < p->n_fps && strcmp(p->fps[j].name, f->name) < 0)
			j++;
		if (j < p->n_fps && strcmp(p->fps[j].name, f->name) == 0 &&
		    strcmp(p->fps[j].fp, f->fp) == 0)
			continue;
		if (!in_tx) {
			if ((rc = pg_exec(p, "BEGIN", PGRES_COMMAND_OK, err, errlen)) < 0)
				goto out;
			in_tx = true;
		}
		if ((rc = exec_params(p, station_upsert, 7, v, err, errlen)) < 0)
			goto out;
	}
	if (s != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read stations: %s", sqlite3_errmsg(p->db));
		rc = agri_sqlite_errno(s);
		goto out;
	}
	if (in_tx && (rc = pg_exec(p, "COMMIT", PGRES_COMMAND_OK, err, errlen)) < 0)
		goto out;
	in_tx = false;
	free(p->fps);
	p->fps = now;
	p->n_fps = n;
	now = NULL;
out:
	sqlite3_reset(p->st_sel);
	if (in_tx) {
		char ignore[UPSTREAM_ERR_MAX];

		pg_exec(p, "ROLLBACK", PGRES_COMMAND_OK, ignore, sizeof(ignore));
	}
	free(now);
	return rc;
}

static int sync_alerts(struct pg *p, char *err, size_t errlen)
{
	int64_t mark = p->alerts_mark;
	int rc = 0, s, n = 0;
	bool in_tx = false;

	sqlite3_bind_int64(p->al_sel, 1, p->alerts_mark);
	sqlite3_bind_int(p->al_sel, 2, ALERTS_BATCH);
	while ((s = sqlite3_step(p->al_sel)) == SQLITE_ROW) {
		const char *v[12];
		char t1[40], t2[40];

		for (int c = 0; c < 12; c++)
			v[c] = col_text(p->al_sel, c);
		v[9] = col_time(p->al_sel, 9, t1, sizeof(t1));
		v[10] = col_time(p->al_sel, 10, t2, sizeof(t2));
		if (!in_tx) {
			if ((rc = pg_exec(p, "BEGIN", PGRES_COMMAND_OK, err, errlen)) < 0)
				goto out;
			in_tx = true;
		}
		if ((rc = exec_params(p, alert_upsert, 12, v, err, errlen)) < 0)
			goto out;
		mark = sqlite3_column_int64(p->al_sel, 10);
		n++;
	}
	if (s != SQLITE_DONE) {
		snprintf(err, errlen, "cannot read alerts: %s", sqlite3_errmsg(p->db));
		rc = agri_sqlite_errno(s);
		goto out;
	}
	if (in_tx && (rc = pg_exec(p, "COMMIT", PGRES_COMMAND_OK, err, errlen)) < 0)
		goto out;
	in_tx = false;
	/* Rows at the mark are sent again next time (idempotent upserts);
	 * a full batch all at the mark moves past it. */
	if (n == ALERTS_BATCH && mark == p->alerts_mark)
		mark++;
	if (mark != p->alerts_mark) {
		sqlite3_bind_int64(p->al_save, 1, mark);
		if (sqlite3_step(p->al_save) == SQLITE_DONE)
			p->alerts_mark = mark;
		sqlite3_reset(p->al_save);
	}
out:
	sqlite3_reset(p->al_sel);
	if (in_tx) {
		char ignore[UPSTREAM_ERR_MAX];

		pg_exec(p, "ROLLBACK", PGRES_COMMAND_OK, ignore, sizeof(ignore));
	}
	return rc;
}

static int pg_sync(void *ctx, char *err, size_t errlen)
{
	struct pg *p = ctx;
	int rc = sync_stations(p, err, errlen);

	return rc < 0 ? rc : sync_alerts(p, err, errlen);
}

const struct upstream_sink_ops upstream_pg_ops = {
	.name = "postgres",
	.batch_rows = 20000,
	.open = pg_open,
	.connect = pg_connect,
	.send = pg_send,
	.sync = pg_sync,
	.disconnect = pg_disconnect,
	.cancel = pg_cancel,
	.close = pg_close,
};
