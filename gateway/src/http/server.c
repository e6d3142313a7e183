/*
 * HTTP API and dashboard of the gateway (see http.h, docs/api.md).
 * libmicrohttpd runs a pool of HTTP_THREADS threads, each with its own
 * epoll loop; a request is answered on the thread that read it. Each of
 * those threads opens its own read-only SQLite connection on first use
 * (a pthread key closes it when the thread exits), answers from one short
 * read transaction, and hands libmicrohttpd a finished buffer: sending is
 * non-blocking, so a slow reader holds only its connection (limited to
 * HTTP_CONN_MAX, closed after HTTP_TIMEOUT_S of silence). A query that
 * runs longer than QUERY_BUDGET_MS is interrupted (503 with a reason).
 *
 * Locking rules: struct http_server is read-only after http_start() except
 * the atomics and the rate sample (rate_mu). struct rconn is per thread.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <microhttpd.h>
#include <sqlite3.h>

#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/assets.h"

#define LOG "http"
#define HTTP_THREADS 4
#define HTTP_CONN_MAX 256
#define HTTP_TIMEOUT_S 15
#define BODY_MAX 4096               /* request bodies (ack) */
#define RESP_MAX (64u << 20)        /* a response larger than this: 413 */
#define LIMIT_DEFAULT 1000
#define LIMIT_MAX 100000
#define ALERTS_LIMIT_DEFAULT 500
#define ALERTS_LIMIT_MAX 10000
#define EVENTS_PER_ALERT 50
#define QUERY_BUDGET_MS 5000
#define BUSY_TIMEOUT_MS 100
#define PARAMS_MAX 8
#define FORECAST_DOC_MAX (256 * 1024)

/* The canonical metrics of CONTRACT §3 (always accepted as a filter). */
static const char *const canonical_metrics[] = {
	"salinity", "conductivity", "water_temperature", "ph", "dissolved_oxygen",
	"turbidity", "water_level", "insect_count", "air_temperature",
	"air_humidity", "lamp_on", "battery_voltage", "battery_soc", "pv_power",
};

static const char *const q_names[] = {"ok", "suspect", "error", "maint"};

/* Read statements, prepared once per thread connection. */
enum {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_STATIONS, Q_LATEST, Q_STATION_EXISTS, Q_METRIC_SEEN,
	Q_SERIES, Q_READ_ONE, Q_READ_MANY,
	Q_ALERTS, Q_EVENTS,
	Q_M_ALERTS, Q_M_STATIONS, Q_M_DEAD,
	Q_VIEW_EXISTS,
	Q_COUNT
};

#define SERIES_WHERE \
	"(?1 IS NULL OR st.name = ?1) AND (?2 IS NULL OR se.metric = ?2)" \
	" AND (?3 IS NULL OR se.sensor = ?3)"

static const char *const q_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_STATIONS] = "SELECT id, name, state, last_seen, last_seq, gaps, fw, board,"
		       " config_version, spool_depth, maintenance, status_at"
		       " FROM stations ORDER BY name",
	/* Latest reading of every series: one index seek each (max(ts) on
	 * the readings primary key). CROSS JOIN fixes the loop order: left
	 * to itself the planner may scan all of readings instead. */
	[Q_LATEST] = "SELECT st.name, se.sensor, se.metric, r.ts, r.value, r.unit, r.q"
		     " FROM stations st CROSS JOIN series se ON se.station_id = st.id"
		     " CROSS JOIN readings r ON r.series_id = se.id"
		     " AND r.ts = (SELECT max(ts) FROM readings WHERE series_id = se.id)"
		     " ORDER BY st.name, se.sensor, se.metric",
	[Q_STATION_EXISTS] = "SELECT 1 FROM stations WHERE name = ?1",
	[Q_METRIC_SEEN] = "SELECT 1 FROM series WHERE metric = ?1 LIMIT 1",
	[Q_SERIES] = "SELECT se.id, st.name, se.sensor, se.metric FROM series se"
		     " JOIN stations st ON st.id = se.station_id WHERE " SERIES_WHERE
		     " ORDER BY se.id",
	[Q_READ_ONE] = "SELECT ts, value, unit, q, received_at, series_id FROM readings"
		       " WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts LIMIT ?4",
	[Q_READ_MANY] = "SELECT r.ts, r.value, r.unit, r.q, r.received_at, r.series_id"
			" FROM readings r WHERE r.series_id IN (SELECT se.id FROM series se"
			" JOIN stations st ON st.id = se.station_id WHERE " SERIES_WHERE ")"
			" AND r.ts >= ?4 AND r.ts < ?5 ORDER BY r.ts, r.series_id LIMIT ?6",
	[Q_ALERTS] = "SELECT id, rule, station, sensor, metric, severity, state, value,"
		     " threshold, raised_at, updated_at, message FROM alerts"
		     " WHERE (?1 = 'all' OR state = ?1"
		     " OR (?1 = 'open' AND state IN ('active', 'acknowledged')))"
		     " AND (?2 IS NULL OR station = ?2)"
		     " ORDER BY updated_at DESC, id LIMIT ?3",
	[Q_EVENTS] = "SELECT state, severity, value, at FROM (SELECT seq, state, severity,"
		     " value, at FROM alert_events WHERE alert_id = ?1 ORDER BY seq DESC"
		     " LIMIT ?2) ORDER BY seq",
	[Q_M_ALERTS] = "SELECT state, count(*) FROM alerts GROUP BY state",
	[Q_M_STATIONS] = "SELECT state, count(*) FROM stations GROUP BY state",
	[Q_M_DEAD] = "SELECT count(*) FROM dead_letters",
	[Q_VIEW_EXISTS] = "SELECT 1 FROM sqlite_master WHERE name = ?1",
};

/* A per-thread read connection. */
struct rconn {
	sqlite3 *db;
	sqlite3_stmt *q[Q_COUNT];
	int64_t deadline_ms; /* progress handler: interrupt after this */
};

struct http_server {
	const struct gateway_config *cfg;
	struct gateway_health *health;
	struct http_hooks hooks;
	struct MHD_Daemon *mhd;
	pthread_key_t key;
	bool key_made;
	int port;
	char token[GW_SECRET_MAX];
	size_t token_len;
	atomic_uint_fast64_t requests, errors_4xx, errors_5xx;
	pthread_mutex_t rate_mu;
	int64_t rate_t_ms;
	uint64_t rate_n;
	double rate;
	struct log_complaint db_complaint;
};

/* One request's state, from its first callback to its completion. */
struct req {
	char body[BODY_MAX + 1];
	size_t len;
	bool too_big;
};

/* --- growing response buffer (capped) ------------------------------- */

struct dbuf {
	char *p;
	size_t len, cap;
	int err; /* first failure: -ENOMEM or -E2BIG */
};

static void db_reserve(struct dbuf *b, size_t more)
{
	size_t want = b->len + more + 1, cap;
	char *p;

	if (b->err || want <= b->cap)
		return;
	if (want > RESP_MAX) {
		b->err = -E2BIG;
		return;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < want)
		cap *= 2;
	if (cap > RESP_MAX)
		cap = RESP_MAX;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

static void db_put(struct dbuf *b, const char *s, size_t n)
{
	db_reserve(b, n);
	if (b->err)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void db_puts(struct dbuf *b, const char *s)
{
	db_put(b, s, strlen(s));
}

static void db_printf(struct dbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void db_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	db_reserve(b, (size_t)n);
	if (b->err)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A JSON string (quoted); NULL -> null. Control characters escaped,
 * everything else (UTF-8) passed through. */
static void db_jstr(struct dbuf *b, const char *s)
{
	if (!s) {
		db_puts(b, "null");
		return;
	}
	db_put(b, "\"", 1);
	for (const char *run = s;; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		db_put(b, run, (size_t)(s - run));
		if (!c)
			break;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			db_put(b, e, 2);
		} else {
			db_printf(b, "\\u%04x", c);
		}
		run = s + 1;
	}
	db_put(b, "\"", 1);
}

static void db_jnum(struct dbuf *b, double d)
{
	char tmp[32];

	if (!isfinite(d)) {
		db_puts(b, "null");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof(tmp), "%.17g", d);
	db_puts(b, tmp);
}

/* An RFC 3339 time from ms, quoted; out of range -> null. */
static void db_jtime(struct dbuf *b, int64_t ms)
{
	char t[AGRI_TIME_LEN + 1];

	if (agri_time_format(ms, t, sizeof(t)) < 0) {
		db_puts(b, "null");
		return;
	}
	db_printf(b, "\"%s\"", t);
}

/* Column helpers: NULL columns become JSON null. */
static void db_col_str(struct dbuf *b, sqlite3_stmt *q, int i)
{
	db_jstr(b, sqlite3_column_type(q, i) == SQLITE_NULL ? NULL
			: (const char *)sqlite3_column_text(q, i));
}

static void db_col_num(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		db_puts(b, "null");
	else
		db_jnum(b, sqlite3_column_double(q, i));
}

static void db_col_int(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		db_puts(b, "null");
	else
		db_printf(b, "%lld", (long long)sqlite3_column_int64(q, i));
}

static void db_col_time(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		db_puts(b, "null");
	else
		db_jtime(b, sqlite3_column_int64(q, i));
}

static const char *q_name(int q)
{
	return q >= 0 && q < 4 ? q_names[q] : "maint";
}

/* --- responses ------------------------------------------------------- */

static enum MHD_Result send_buf(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *type, char *p, size_t len,
				bool must_free, bool page)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, p, must_free ? MHD_RESPMEM_MUST_FREE
							      : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(p);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	if (page) {
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'none'; script-src 'self'; style-src 'self';"
					" img-src 'self' data:; connect-src 'self'; base-uri 'none';"
					" form-action 'none'; frame-ancestors 'none'");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
	} else {
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'none'; frame-ancestors 'none'");
		MHD_add_response_header(r, "Cache-Control", "no-store");
	}
	if (code == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"agri-gateway\"");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&srv->requests, 1);
	if (code >= 500)
		atomic_fetch_add(&srv->errors_5xx, 1);
	else if (code >= 400)
		atomic_fetch_add(&srv->errors_4xx, 1);
	return ret;
}

/* Sends b (taking its memory); a failed buffer becomes a 413/500 error. */
static enum MHD_Result send_dbuf(struct http_server *srv, struct MHD_Connection *c,
				 unsigned code, const char *type, struct dbuf *b);

static enum MHD_Result send_error(struct http_server *srv, struct MHD_Connection *c,
				  unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static enum MHD_Result send_error(struct http_server *srv, struct MHD_Connection *c,
				  unsigned code, const char *fmt, ...)
{
	struct dbuf b = {0};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	db_puts(&b, "{\"error\":");
	db_jstr(&b, msg);
	db_puts(&b, "}\n");
	if (b.err) {
		free(b.p);
		return MHD_NO;
	}
	return send_buf(srv, c, code, "application/json", b.p, b.len, true, false);
}

static enum MHD_Result send_dbuf(struct http_server *srv, struct MHD_Connection *c,
				 unsigned code, const char *type, struct dbuf *b)
{
	if (b->err) {
		int e = b->err;

		free(b->p);
		if (e == -E2BIG)
			return send_error(srv, c, MHD_HTTP_CONTENT_TOO_LARGE,
					  "response over %u MiB: ask for less (limit, from, to)",
					  RESP_MAX >> 20);
		return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (!b->p)
		db_puts(b, "");
	return send_buf(srv, c, code, type, b->p, b->len, true, false);
}

/* --- the per-thread read connection ------------------------------- */

static int progress(void *ctx)
{
	struct rconn *rc = ctx;

	return util_mono_ms() > rc->deadline_ms;
}

static void rconn_free(void *p)
{
	struct rconn *rc = p;

	if (!rc)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(rc->q[i]);
	sqlite3_close_v2(rc->db);
	free(rc);
}

/* This thread's connection, opened on first use. NULL when the database
 * cannot be opened (logged once). HTTP worker threads. */
static struct rconn *rconn_get(struct http_server *srv)
{
	struct rconn *rc = pthread_getspecific(srv->key);
	int r;

	if (rc)
		goto ready;
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return NULL;
	r = sqlite3_open_v2(srv->cfg->db.path, &rc->db,
			    SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(rc->db, BUSY_TIMEOUT_MS);
	sqlite3_progress_handler(rc->db, 10000, progress, rc);
	for (int i = 0; i < Q_COUNT; i++) {
		r = sqlite3_prepare_v3(rc->db, q_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &rc->q[i], NULL);
		if (r != SQLITE_OK)
			goto fail;
	}
	pthread_setspecific(srv->key, rc);
	log_release(&srv->db_complaint, LOG, "database readable path=%s", srv->cfg->db.path);
ready:
	rc->deadline_ms = util_mono_ms() + QUERY_BUDGET_MS;
	return rc;
fail:
	log_complain(&srv->db_complaint, LOG_LVL_WARN, LOG,
		     "cannot read the database path=%s error=\"%s\"", srv->cfg->db.path,
		     rc->db ? sqlite3_errmsg(rc->db) : "open failed");
	rconn_free(rc);
	return NULL;
}

static int step_reset(sqlite3_stmt *q)
{
	int r = sqlite3_step(q);

	sqlite3_reset(q);
	return r;
}

static void bind_opt(sqlite3_stmt *q, int i, const char *s)
{
	if (s && *s)
		sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

/* Begins the request's read transaction (one snapshot for the answer). */
static int rtx_begin(struct rconn *rc)
{
	return step_reset(rc->q[Q_BEGIN]) == SQLITE_DONE ? 0 : -EIO;
}

static void rtx_end(struct rconn *rc)
{
	if (step_reset(rc->q[Q_COMMIT]) != SQLITE_DONE)
		step_reset(rc->q[Q_ROLLBACK]);
}

/* The error answer for a failed SQLite step. */
static enum MHD_Result send_db_error(struct http_server *srv, struct MHD_Connection *c,
				     struct rconn *rc, int r)
{
	if ((r & 0xff) == SQLITE_INTERRUPT)
		return send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "query took over %d ms: narrow it (station, metric, from, to)",
				  QUERY_BUDGET_MS);
	if ((r & 0xff) == SQLITE_BUSY || (r & 0xff) == SQLITE_LOCKED)
		return send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "database busy, try again");
	log_warn(LOG, "query failed error=\"%s\"", rc ? sqlite3_errmsg(rc->db) : "?");
	return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
}

/* --- query parameters ---------------------------------------------- */

struct params {
	const char *const *allowed; /* NULL-terminated */
	const char *key[PARAMS_MAX];
	const char *val[PARAMS_MAX];
	size_t n;
	char bad[160]; /* the first problem, "" = none */
};

static enum MHD_Result param_cb(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct params *p = cls;
	bool ok = false;

	(void)kind;
	for (const char *const *a = p->allowed; *a; a++)
		if (strcmp(*a, key) == 0)
			ok = true;
	if (!ok) {
		snprintf(p->bad, sizeof(p->bad), "unknown parameter '%.64s'", key);
		return MHD_NO;
	}
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->key[i], key) == 0) {
			snprintf(p->bad, sizeof(p->bad), "parameter '%.64s' given twice", key);
			return MHD_NO;
		}
	if (p->n == PARAMS_MAX)
		return MHD_NO;
	p->key[p->n] = key;
	p->val[p->n++] = value ? value : "";
	return MHD_YES;
}

/* Collects the query string; returns false (with p->bad) on an unknown
 * or repeated parameter. */
static bool params_read(struct MHD_Connection *c, struct params *p,
			const char *const *allowed)
{
	memset(p, 0, sizeof(*p));
	p->allowed = allowed;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_cb, p);
	return p->bad[0] == '\0';
}

static const char *param(const struct params *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->key[i], key) == 0)
			return p->val[i];
	return NULL;
}

static bool metric_canonical(const char *m)
{
	for (size_t i = 0; i < sizeof(canonical_metrics) / sizeof(canonical_metrics[0]); i++)
		if (strcmp(canonical_metrics[i], m) == 0)
			return true;
	return false;
}

/* Parses a positive integer limit in [1, max]; false on anything else. */
static bool parse_limit(const char *s, long max, long *out)
{
	char *end;
	long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > max)
		return false;
	*out = v;
	return true;
}

/* --- GET /api/v1/stations ------------------------------------------ */

static enum MHD_Result api_stations(struct http_server *srv, struct MHD_Connection *c,
				    struct rconn *rc)
{
	static const char *const allowed[] = {NULL};
	sqlite3_stmt *qs = rc->q[Q_STATIONS], *ql = rc->q[Q_LATEST];
	struct dbuf b = {0};
	struct params p;
	bool first = true, have_l;
	int r = SQLITE_DONE, rl;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	db_puts(&b, "{\"stations\":[");
	/* Both statements are ordered by station: merge them. */
	rl = sqlite3_step(ql);
	have_l = rl == SQLITE_ROW;
	while ((r = sqlite3_step(qs)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(qs, 1);
		bool lf = true;

		db_puts(&b, first ? "{\"station\":" : ",{\"station\":");
		first = false;
		db_col_str(&b, qs, 1);
		db_puts(&b, ",\"state\":");
		db_col_str(&b, qs, 2);
		db_puts(&b, ",\"last_seen\":");
		db_col_time(&b, qs, 3);
		db_puts(&b, ",\"last_seq\":");
		db_col_int(&b, qs, 4);
		db_puts(&b, ",\"gaps\":");
		db_col_int(&b, qs, 5);
		db_puts(&b, ",\"fw\":");
		db_col_str(&b, qs, 6);
		db_puts(&b, ",\"board\":");
		db_col_str(&b, qs, 7);
		db_puts(&b, ",\"config_version\":");
		db_col_int(&b, qs, 8);
		db_puts(&b, ",\"spool_depth\":");
		db_col_int(&b, qs, 9);
		db_puts(&b, ",\"maintenance\":");
		if (sqlite3_column_type(qs, 10) == SQLITE_NULL)
			db_puts(&b, "null");
		else
			db_puts(&b, sqlite3_column_int(qs, 10) ? "true" : "false");
		db_puts(&b, ",\"status_at\":");
		db_col_time(&b, qs, 11);
		db_puts(&b, ",\"latest\":[");
		/* Both ordered by name, from one snapshot. */
		while (have_l && strcmp((const char *)sqlite3_column_text(ql, 0), name) <= 0) {
			if (strcmp((const char *)sqlite3_column_text(ql, 0), name) == 0) {
				db_puts(&b, lf ? "{\"sensor\":" : ",{\"sensor\":");
				lf = false;
				db_col_str(&b, ql, 1);
				db_puts(&b, ",\"metric\":");
				db_col_str(&b, ql, 2);
				db_puts(&b, ",\"ts\":");
				db_col_time(&b, ql, 3);
				db_puts(&b, ",\"value\":");
				db_col_num(&b, ql, 4);
				db_puts(&b, ",\"unit\":");
				db_col_str(&b, ql, 5);
				db_printf(&b, ",\"q\":\"%s\"}", q_name(sqlite3_column_int(ql, 6)));
			}
			rl = sqlite3_step(ql);
			have_l = rl == SQLITE_ROW;
		}
		db_puts(&b, "]}");
	}
	sqlite3_reset(qs);
	sqlite3_reset(ql);
	rtx_end(rc);
	if (r != SQLITE_DONE || (rl != SQLITE_ROW && rl != SQLITE_DONE)) {
		free(b.p);
		return send_db_error(srv, c, rc, r != SQLITE_DONE ? r : rl);
	}
	db_puts(&b, "]}\n");
	return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- GET /api/v1/readings[.csv] ------------------------------------ */

struct series_name {
	int64_t id;
	char *station, *sensor, *metric;
};

static void series_free(struct series_name *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].station);
		free(s[i].sensor);
		free(s[i].metric);
	}
	free(s);
}

static const struct series_name *series_find(const struct series_name *s, size_t n,
					     int64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s[mid].id == id)
			return &s[mid];
		if (s[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void csv_field(struct dbuf *b, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		db_puts(b, s);
		return;
	}
	db_put(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			db_put(b, "\"", 1);
		db_put(b, s, 1);
	}
	db_put(b, "\"", 1);
}

static enum MHD_Result api_readings(struct http_server *srv, struct MHD_Connection *c,
				    struct rconn *rc, bool csv)
{
	static const char *const allowed[] = {"station", "metric", "sensor", "from", "to",
					      "limit", NULL};
	struct series_name *sn = NULL;
	size_t n_sn = 0, cap_sn = 0;
	struct dbuf b = {0};
	struct params p;
	const char *station, *metric, *sensor, *s;
	int64_t from = INT64_MIN, to = INT64_MAX, next_ts = 0;
	long limit = LIMIT_DEFAULT, count = 0;
	sqlite3_stmt *q;
	bool truncated = false;
	int r;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = param(&p, "station");
	metric = param(&p, "metric");
	sensor = param(&p, "sensor");
	if (station && !agri_station_id_valid(station))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (metric && !agri_ident_valid(metric))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad metric: expected [A-Za-z0-9_-]{1,32}");
	if (sensor && !agri_ident_valid(sensor))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad sensor: expected [A-Za-z0-9_-]{1,32}");
	if ((s = param(&p, "from")) && agri_time_parse(s, &from) < 0)
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad from: expected an RFC 3339 time like 2026-11-22T15:04:05Z");
	if ((s = param(&p, "to")) && agri_time_parse(s, &to) < 0)
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad to: expected an RFC 3339 time like 2026-11-22T15:04:05Z");
	if (from >= to)
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "from must be before to");
	if ((s = param(&p, "limit")) && !parse_limit(s, LIMIT_MAX, &limit))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad limit: expected an integer from 1 to %d", LIMIT_MAX);

	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	if (station) {
		q = rc->q[Q_STATION_EXISTS];
		sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
		r = step_reset(q);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			goto db_fail;
		if (r == SQLITE_DONE) {
			rtx_end(rc);
			return send_error(srv, c, MHD_HTTP_NOT_FOUND, "unknown station: %s", station);
		}
	}
	if (metric && !metric_canonical(metric)) {
		q = rc->q[Q_METRIC_SEEN];
		sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
		r = step_reset(q);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			goto db_fail;
		if (r == SQLITE_DONE) {
			rtx_end(rc);
			return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
					  "unknown metric: %s (not canonical, never reported)", metric);
		}
	}
	/* The matching series (small table), for names and the plan. */
	q = rc->q[Q_SERIES];
	bind_opt(q, 1, station);
	bind_opt(q, 2, metric);
	bind_opt(q, 3, sensor);
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		struct series_name *e;

		if (n_sn == cap_sn) {
			size_t nc = cap_sn ? cap_sn * 2 : 16;
			struct series_name *t = realloc(sn, nc * sizeof(*sn));

			if (!t)
				break;
			sn = t;
			cap_sn = nc;
		}
		e = &sn[n_sn++];
		e->id = sqlite3_column_int64(q, 0);
		e->station = strdup((const char *)sqlite3_column_text(q, 1));
		e->sensor = strdup((const char *)sqlite3_column_text(q, 2));
		e->metric = strdup((const char *)sqlite3_column_text(q, 3));
		if (!e->station || !e->sensor || !e->metric) {
			b.err = -ENOMEM;
			break;
		}
	}
	sqlite3_reset(q);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		goto db_fail;
	if (r == SQLITE_ROW || b.err) {
		rtx_end(rc);
		series_free(sn, n_sn);
		return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}

	if (csv)
		db_puts(&b, "station,sensor,metric,ts,value,unit,q,received_at\r\n");
	else
		db_puts(&b, "{\"readings\":[");
	if (n_sn == 1) { /* one series: walk its primary key in order */
		q = rc->q[Q_READ_ONE];
		sqlite3_bind_int64(q, 1, sn[0].id);
		sqlite3_bind_int64(q, 2, from);
		sqlite3_bind_int64(q, 3, to);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)limit + 1);
	} else {
		q = rc->q[Q_READ_MANY];
		bind_opt(q, 1, station);
		bind_opt(q, 2, metric);
		bind_opt(q, 3, sensor);
		sqlite3_bind_int64(q, 4, from);
		sqlite3_bind_int64(q, 5, to);
		sqlite3_bind_int64(q, 6, (sqlite3_int64)limit + 1);
	}
	r = SQLITE_DONE;
	while (n_sn && !b.err && (r = sqlite3_step(q)) == SQLITE_ROW) {
		const struct series_name *se = series_find(sn, n_sn, sqlite3_column_int64(q, 5));
		int64_t ts = sqlite3_column_int64(q, 0);
		const char *qn = q_name(sqlite3_column_int(q, 3));
		char t1[AGRI_TIME_LEN + 1] = "", t2[AGRI_TIME_LEN + 1] = "";

		if (!se)
			continue; /* a series newer than the list: not in the snapshot */
		if (count == limit) {
			truncated = true;
			next_ts = ts;
			break;
		}
		agri_time_format(ts, t1, sizeof(t1));
		agri_time_format(sqlite3_column_int64(q, 4), t2, sizeof(t2));
		if (csv) {
			csv_field(&b, se->station);
			db_put(&b, ",", 1);
			csv_field(&b, se->sensor);
			db_put(&b, ",", 1);
			csv_field(&b, se->metric);
			db_printf(&b, ",%s,", t1);
			if (sqlite3_column_type(q, 1) != SQLITE_NULL)
				db_jnum(&b, sqlite3_column_double(q, 1));
			db_put(&b, ",", 1);
			csv_field(&b, (const char *)sqlite3_column_text(q, 2));
			db_printf(&b, ",%s,%s\r\n", qn, t2);
		} else {
			db_puts(&b, count ? ",{\"station\":" : "{\"station\":");
			db_jstr(&b, se->station);
			db_puts(&b, ",\"sensor\":");
			db_jstr(&b, se->sensor);
			db_puts(&b, ",\"metric\":");
			db_jstr(&b, se->metric);
			db_printf(&b, ",\"ts\":\"%s\",\"value\":", t1);
			db_col_num(&b, q, 1);
			db_puts(&b, ",\"unit\":");
			db_col_str(&b, q, 2);
			db_printf(&b, ",\"q\":\"%s\",\"received_at\":\"%s\"}", qn, t2);
		}
		count++;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	rtx_end(rc);
	series_free(sn, n_sn);
	if (r != SQLITE_DONE && r != SQLITE_ROW) {
		free(b.p);
		return send_db_error(srv, c, rc, r);
	}
	if (!csv) {
		db_printf(&b, "],\"count\":%ld,\"limit\":%ld,\"truncated\":%s", count, limit,
			  truncated ? "true" : "false");
		if (truncated) {
			db_puts(&b, ",\"next_from\":");
			db_jtime(&b, next_ts);
		}
		db_puts(&b, "}\n");
	}
	return send_dbuf(srv, c, MHD_HTTP_OK, csv ? "text/csv; charset=utf-8" : "application/json",
			 &b);
db_fail:
	rtx_end(rc);
	series_free(sn, n_sn);
	free(b.p);
	return send_db_error(srv, c, rc, r);
}

/* --- GET /api/v1/alerts ---------------------------------------------- */

static enum MHD_Result api_alerts(struct http_server *srv, struct MHD_Connection *c,
				  struct rconn *rc)
{
	static const char *const allowed[] = {"state", "station", "limit", "history", NULL};
	static const char *const states[] = {"active", "acknowledged", "cleared", "open", "all",
					     NULL};
	sqlite3_stmt *qa = rc->q[Q_ALERTS], *qe = rc->q[Q_EVENTS];
	struct dbuf b = {0};
	struct params p;
	const char *state, *station, *s;
	long limit = ALERTS_LIMIT_DEFAULT, history = EVENTS_PER_ALERT;
	bool known = false, first = true;
	int r, re = SQLITE_DONE;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	state = param(&p, "state");
	if (!state)
		state = "all";
	for (const char *const *a = states; *a; a++)
		if (strcmp(*a, state) == 0)
			known = true;
	if (!known)
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad state: expected active, acknowledged, cleared, open or all");
	station = param(&p, "station");
	if (station && !agri_station_id_valid(station))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad station: expected [A-Za-z0-9_-]{1,32}");
	if ((s = param(&p, "limit")) && !parse_limit(s, ALERTS_LIMIT_MAX, &limit))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad limit: expected an integer from 1 to %d", ALERTS_LIMIT_MAX);
	if ((s = param(&p, "history"))) {
		if (strcmp(s, "0") == 0)
			history = 0;
		else if (!parse_limit(s, 1000, &history))
			return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
					  "bad history: expected the number of events per alert, 0 to 1000");
	}
	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	sqlite3_bind_text(qa, 1, state, -1, SQLITE_STATIC);
	bind_opt(qa, 2, station);
	sqlite3_bind_int64(qa, 3, limit);
	db_puts(&b, "{\"alerts\":[");
	while (!b.err && (r = sqlite3_step(qa)) == SQLITE_ROW) {
		static const char *const keys[] = {"id", "rule", "station", "sensor", "metric",
						   "severity", "state"};

		db_puts(&b, first ? "{\"v\":1" : ",{\"v\":1");
		first = false;
		for (int i = 0; i < 7; i++) {
			if ((i == 3 || i == 4) && (sqlite3_column_type(qa, i) == SQLITE_NULL ||
						   !*sqlite3_column_text(qa, i)))
				continue; /* as §5: sensor/metric omitted when none */
			db_printf(&b, ",\"%s\":", keys[i]);
			db_col_str(&b, qa, i);
		}
		db_puts(&b, ",\"value\":");
		db_col_num(&b, qa, 7);
		db_puts(&b, ",\"threshold\":");
		db_col_num(&b, qa, 8);
		db_puts(&b, ",\"raised_at\":");
		db_col_time(&b, qa, 9);
		db_puts(&b, ",\"updated_at\":");
		db_col_time(&b, qa, 10);
		db_puts(&b, ",\"message\":");
		db_col_str(&b, qa, 11);
		if (history > 0) {
			bool ef = true;

			db_puts(&b, ",\"events\":[");
			sqlite3_bind_text(qe, 1, (const char *)sqlite3_column_text(qa, 0), -1,
					  SQLITE_TRANSIENT);
			sqlite3_bind_int64(qe, 2, history);
			while ((re = sqlite3_step(qe)) == SQLITE_ROW) {
				db_puts(&b, ef ? "{\"state\":" : ",{\"state\":");
				ef = false;
				db_col_str(&b, qe, 0);
				db_puts(&b, ",\"severity\":");
				db_col_str(&b, qe, 1);
				db_puts(&b, ",\"value\":");
				db_col_num(&b, qe, 2);
				db_puts(&b, ",\"at\":");
				db_col_time(&b, qe, 3);
				db_puts(&b, "}");
			}
			sqlite3_reset(qe);
			db_puts(&b, "]");
			if (re != SQLITE_DONE) {
				r = re;
				break;
			}
		}
		db_puts(&b, "}");
	}
	sqlite3_reset(qa);
	sqlite3_clear_bindings(qa);
	rtx_end(rc);
	if (r != SQLITE_DONE && !b.err) {
		free(b.p);
		return send_db_error(srv, c, rc, r);
	}
	db_puts(&b, "]}\n");
	return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- POST /api/v1/alerts/{id}/ack ------------------------------------ */

/* Constant-time token check: the time depends only on the lengths of
 * the buffers (fixed), not on where the first difference is. */
static bool token_ok(const struct http_server *srv, const char *auth)
{
	char given[GW_SECRET_MAX] = {0};
	volatile unsigned char diff = 0;
	size_t n;

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	auth += 7;
	while (*auth == ' ')
		auth++;
	n = strlen(auth);
	if (n == 0 || n >= sizeof(given) || srv->token_len == 0)
		return false;
	memcpy(given, auth, n);
	diff |= (unsigned char)(n != srv->token_len);
	for (size_t i = 0; i < sizeof(given); i++)
		diff |= (unsigned char)(given[i] ^ srv->token[i]);
	return diff == 0;
}

/* "<rule>/<station>[/<sensor>]" with valid parts. */
static bool alert_id_valid(const char *id)
{
	char tmp[160], *parts[4], *save = NULL, *t;
	size_t n = 0;

	if (strlen(id) >= sizeof(tmp) || strstr(id, "//") || id[0] == '/')
		return false;
	snprintf(tmp, sizeof(tmp), "%s", id);
	for (t = strtok_r(tmp, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == 4)
			return false;
		parts[n++] = t;
	}
	if (n < 2 || n > 3)
		return false;
	return agri_rule_id_valid(parts[0]) && agri_station_id_valid(parts[1]) &&
	       (n == 2 || agri_ident_valid(parts[2]));
}

/* The optional body {"by":"name"}: who acknowledges. */
static int ack_body_who(const struct req *rq, char *who, size_t len, const char **why)
{
	struct agri_err err = {0};
	cJSON *doc = NULL, *it;
	int rc = 0;

	snprintf(who, len, "api");
	if (rq->len == 0)
		return 0;
	if (agri_json_parse(rq->body, rq->len, BODY_MAX, 4, &doc, &err) < 0 ||
	    !cJSON_IsObject(doc)) {
		*why = "bad body: expected {\"by\":\"name\"} or nothing";
		rc = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(it, doc) {
		if (strcmp(it->string, "by") != 0) {
			*why = "bad body: unknown key (only \"by\")";
			rc = -EINVAL;
			goto out;
		}
		if (!cJSON_IsString(it) || !it->valuestring[0] ||
		    strlen(it->valuestring) >= len) {
			*why = "bad body: \"by\" must be a name of 1 to 63 characters";
			rc = -EINVAL;
			goto out;
		}
		for (const char *s = it->valuestring; *s; s++)
			if ((unsigned char)*s < 0x20 || *s == 0x7f) {
				*why = "bad body: \"by\" has control characters";
				rc = -EINVAL;
				goto out;
			}
		snprintf(who, len, "%s", it->valuestring);
	}
out:
	cJSON_Delete(doc);
	return rc;
}

static enum MHD_Result api_ack(struct http_server *srv, struct MHD_Connection *c,
			       const char *id, const struct req *rq)
{
	struct http_ack_result res;
	struct dbuf b = {0};
	const char *why = NULL;
	char who[64];
	int rc;

	if (srv->token_len == 0)
		return send_error(srv, c, MHD_HTTP_FORBIDDEN,
				  "writes are disabled: no http.token_file in the gateway config");
	if (!token_ok(srv, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION))) {
		log_warn(LOG, "acknowledgement refused: missing or wrong token");
		return send_error(srv, c, MHD_HTTP_UNAUTHORIZED,
				  "missing or wrong token (Authorization: Bearer <token>)");
	}
	if (rq->too_big)
		return send_error(srv, c, MHD_HTTP_CONTENT_TOO_LARGE, "body over %d bytes",
				  BODY_MAX);
	if (!alert_id_valid(id))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad alert id: expected <rule>/<station>[/<sensor>], '/' as %%2F");
	if (ack_body_who(rq, who, sizeof(who), &why) < 0)
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (!srv->hooks.ack_alert)
		return send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "no alert engine in this gateway (rules_file not set?)");
	memset(&res, 0, sizeof(res));
	rc = srv->hooks.ack_alert(srv->hooks.ctx, id, who, &res);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		return send_error(srv, c, MHD_HTTP_NOT_FOUND, "unknown alert: %s", id);
	case -EINVAL:
		return send_error(srv, c, MHD_HTTP_CONFLICT,
				  "alert %s cannot be acknowledged in its state", id);
	case -EBUSY:
	case -EAGAIN:
		return send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "alert engine busy, try again");
	default:
		return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "acknowledgement failed: %s",
				  strerror(-rc));
	}
	res.state[sizeof(res.state) - 1] = '\0';
	log_info(LOG, "alert acknowledged id=%s by=%s changed=%d", id, who, (int)res.changed);
	db_puts(&b, "{\"id\":");
	db_jstr(&b, id);
	db_puts(&b, ",\"state\":");
	db_jstr(&b, res.state[0] ? res.state : "acknowledged");
	db_puts(&b, ",\"by\":");
	db_jstr(&b, who);
	db_printf(&b, ",\"changed\":%s}\n", res.changed ? "true" : "false");
	return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- GET /metrics ------------------------------------------------------ */

static void metric_line(struct dbuf *b, const char *name, const char *type,
			const char *help, double v)
{
	db_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static int64_t file_size(const char *path, const char *suffix)
{
	char p[PATH_MAX + 8];
	struct stat st;

	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* A "state, count" query as one labelled gauge; states always listed. */
static int metric_by_state(struct dbuf *b, sqlite3_stmt *q, const char *name,
			   const char *help, const char *const *always)
{
	int r;

	db_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (const char *const *a = always; *a; a++) {
		bool seen = false;

		while ((r = sqlite3_step(q)) == SQLITE_ROW)
			if (strcmp((const char *)sqlite3_column_text(q, 0), *a) == 0)
				seen = true;
		sqlite3_reset(q);
		if (r != SQLITE_DONE)
			return r;
		if (!seen)
			db_printf(b, "%s{state=\"%s\"} 0\n", name, *a);
	}
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		db_printf(b, "%s{state=", name);
		db_jstr(b, (const char *)sqlite3_column_text(q, 0));
		db_printf(b, "} %lld\n", (long long)sqlite3_column_int64(q, 1));
	}
	sqlite3_reset(q);
	return r;
}

static enum MHD_Result api_metrics(struct http_server *srv, struct MHD_Connection *c,
				   struct rconn *rc)
{
	static const char *const alert_states[] = {"active", "acknowledged", "cleared", NULL};
	static const char *const station_states[] = {"online", "offline", NULL};
	struct gateway_health *h = srv->health;
	struct dbuf b = {0};
	int r = SQLITE_DONE;

	if (h) {
#define C(name, field, help) \
	metric_line(&b, "agri_gateway_" name, "counter", help, (double)atomic_load(&h->field))
		C("messages_received_total", received, "MQTT messages accepted for ingest");
		C("messages_deferred_total", deferred, "messages left to paho while the queue was full");
		C("batches_total", batches, "telemetry batches committed");
		C("readings_stored_total", readings_stored, "new readings committed");
		C("readings_duplicate_total", readings_duplicate, "readings already stored");
		C("status_messages_total", status_msgs, "station status messages stored");
		C("dead_letters_total", dead_letters, "messages dead-lettered since start");
		C("acks_sent_total", acks_sent, "end-to-end acks published");
		C("ack_failures_total", ack_failures, "acks that could not be published");
		C("commits_total", commits, "store commits");
		C("commit_failures_total", commit_failures, "failed store commits");
		C("retention_moved_total", retention_moved, "raw readings aggregated by retention");
		C("quota_messages_total", quota_messages,
		  "messages dropped at the door: a station past its message or byte budget");
		C("quota_bytes_total", quota_bytes, "bytes of those messages");
		C("quota_readings_total", quota_readings,
		  "readings refused: a station past its readings or series budget");
		C("clock_readings_total", clock_readings, "readings outside the clock window");
		C("dead_letters_suppressed_total", dead_suppressed,
		  "dead letters only counted: a station past its dead-letter budget");
		C("content_failures_total", content_failures,
		  "messages that made their batch fail, dead-lettered alone");
#undef C
		metric_line(&b, "agri_gateway_hub_alarm", "gauge",
			    "1 while the database cannot be written (stations are not acked)",
			    atomic_load(&h->hub_alarm) ? 1 : 0);
		metric_line(&b, "agri_gateway_queue_depth", "gauge", "messages waiting for the writer",
			    (double)atomic_load(&h->queue_depth));
		metric_line(&b, "agri_gateway_last_commit_timestamp_seconds", "gauge",
			    "wall clock of the last commit",
			    (double)atomic_load(&h->last_commit_ms) / 1000.0);
		metric_line(&b, "agri_gateway_broker_connected", "gauge", "1 when connected to MQTT",
			    atomic_load(&h->connected) ? 1 : 0);
		metric_line(&b, "agri_gateway_db_writable", "gauge", "1 when the last commit succeeded",
			    atomic_load(&h->db_writable) ? 1 : 0);
		{
			int64_t now = util_mono_ms();
			uint64_t n = atomic_load(&h->readings_stored);
			double rate;

			pthread_mutex_lock(&srv->rate_mu);
			if (srv->rate_t_ms && now - srv->rate_t_ms >= 1000) {
				srv->rate = (double)(n - srv->rate_n) * 1000.0 /
					    (double)(now - srv->rate_t_ms);
				srv->rate_t_ms = now;
				srv->rate_n = n;
			} else if (!srv->rate_t_ms) {
				srv->rate_t_ms = now;
				srv->rate_n = n;
			}
			rate = srv->rate;
			pthread_mutex_unlock(&srv->rate_mu);
			metric_line(&b, "agri_gateway_ingest_readings_per_second", "gauge",
				    "readings stored per second since the previous scrape", rate);
		}
	}
	metric_line(&b, "agri_gateway_store_bytes", "gauge",
		    "database file plus its WAL, bytes",
		    (double)(file_size(srv->cfg->db.path, "") + file_size(srv->cfg->db.path, "-wal")));
	metric_line(&b, "agri_gateway_store_wal_bytes", "gauge", "WAL file, bytes",
		    (double)file_size(srv->cfg->db.path, "-wal"));
	metric_line(&b, "agri_gateway_http_requests_total", "counter", "HTTP responses sent",
		    (double)atomic_load(&srv->requests));
	metric_line(&b, "agri_gateway_http_client_errors_total", "counter", "HTTP 4xx responses",
		    (double)atomic_load(&srv->errors_4xx));
	metric_line(&b, "agri_gateway_http_server_errors_total", "counter", "HTTP 5xx responses",
		    (double)atomic_load(&srv->errors_5xx));
	if (rc && rtx_begin(rc) == 0) {
		r = metric_by_state(&b, rc->q[Q_M_ALERTS], "agri_gateway_alerts",
				    "alerts by state", alert_states);
		if (r == SQLITE_DONE)
			r = metric_by_state(&b, rc->q[Q_M_STATIONS], "agri_gateway_stations",
					    "stations by state", station_states);
		if (r == SQLITE_DONE && (r = sqlite3_step(rc->q[Q_M_DEAD])) == SQLITE_ROW) {
			metric_line(&b, "agri_gateway_dead_letters_stored", "gauge",
				    "dead letters kept in the store",
				    (double)sqlite3_column_int64(rc->q[Q_M_DEAD], 0));
			r = SQLITE_DONE;
		}
		sqlite3_reset(rc->q[Q_M_DEAD]);
		rtx_end(rc);
	}
	metric_line(&b, "agri_gateway_store_readable", "gauge",
		    "1 when the HTTP API could read the store", rc && r == SQLITE_DONE ? 1 : 0);
	if (srv->hooks.metrics) {
		char extra[16384];
		int n = srv->hooks.metrics(srv->hooks.ctx, extra, sizeof(extra));

		if (n > 0)
			db_put(&b, extra, strnlen(extra, (size_t)n));
	}
	return send_dbuf(srv, c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* --- GET /healthz ------------------------------------------------------ */

static enum MHD_Result api_healthz(struct http_server *srv, struct MHD_Connection *c)
{
	struct gateway_health *h = srv->health;
	bool conn = h && atomic_load(&h->connected), wr = h && atomic_load(&h->db_writable);
	struct dbuf b = {0};
	int64_t last = h ? atomic_load(&h->last_commit_ms) : 0;

	db_printf(&b, "{\"status\":\"%s\",\"connected\":%s,\"db_writable\":%s,\"queue_depth\":%llu,"
		  "\"last_commit\":", conn && wr ? "ok" : "unhealthy", conn ? "true" : "false",
		  wr ? "true" : "false",
		  (unsigned long long)(h ? atomic_load(&h->queue_depth) : 0));
	if (last > 0)
		db_jtime(&b, last);
	else
		db_puts(&b, "null");
	db_puts(&b, "}\n");
	return send_dbuf(srv, c, conn && wr ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			 "application/json", &b);
}

/* --- GET /api/v1/forecast, /api/v1/advisories (§13) ------------------ */

static int view_exists(struct rconn *rc, const char *name)
{
	sqlite3_stmt *q = rc->q[Q_VIEW_EXISTS];
	int r;

	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	r = step_reset(q);
	return r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : -EIO;
}

/* Every row of an ad-hoc query as a JSON object keyed by column name. */
static int rows_json(struct dbuf *b, sqlite3_stmt *q)
{
	int r, n = sqlite3_column_count(q);
	bool first = true;

	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		db_puts(b, first ? "{" : ",{");
		first = false;
		for (int i = 0; i < n; i++) {
			db_puts(b, i ? "," : "");
			db_jstr(b, sqlite3_column_name(q, i));
			db_put(b, ":", 1);
			switch (sqlite3_column_type(q, i)) {
			case SQLITE_INTEGER:
				db_col_int(b, q, i);
				break;
			case SQLITE_FLOAT:
				db_col_num(b, q, i);
				break;
			default:
				db_col_str(b, q, i);
			}
		}
		db_puts(b, "}");
	}
	return r;
}

static enum MHD_Result api_forecast(struct http_server *srv, struct MHD_Connection *c,
				    struct rconn *rc)
{
	static const char *const allowed[] = {"station", "metric", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station, *metric;
	struct dbuf b = {0};
	int r, have;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = param(&p, "station");
	metric = param(&p, "metric");
	if (!metric)
		metric = "salinity";
	if (!station || !agri_station_id_valid(station))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "station is required: [A-Za-z0-9_-]{1,32}");
	if (!agri_ident_valid(metric))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad metric: expected [A-Za-z0-9_-]{1,32}");
	if (srv->hooks.forecast) {
		char *doc = malloc(FORECAST_DOC_MAX);
		int n;

		if (!doc)
			return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		doc[0] = '\0';
		n = srv->hooks.forecast(srv->hooks.ctx, station, metric, doc, FORECAST_DOC_MAX);
		if (n >= 0 && (size_t)n < FORECAST_DOC_MAX)
			return send_buf(srv, c, MHD_HTTP_OK, "application/json", doc, (size_t)n, true,
					false);
		doc[FORECAST_DOC_MAX - 1] = '\0';
		if (n == -ENODATA || n == -ENOENT) {
			enum MHD_Result ret = send_error(srv, c, MHD_HTTP_NOT_FOUND,
							 "no forecast yet: %s", doc[0] ? doc : "no data");

			free(doc);
			return ret;
		}
		free(doc);
		return send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "forecast failed");
	}
	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = view_exists(rc, "v_forecasts");
	if (have <= 0) {
		rtx_end(rc);
		return have < 0 ? send_db_error(srv, c, rc, sqlite3_errcode(rc->db))
				: send_error(srv, c, MHD_HTTP_NOT_FOUND,
					     "no forecast yet: this gateway has not computed any");
	}
	r = sqlite3_prepare_v2(rc->db, "SELECT doc, why FROM v_forecasts WHERE station = ?1"
			       " AND metric = ?2 LIMIT 1", -1, &q, NULL);
	if (r == SQLITE_OK) {
		sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, metric, -1, SQLITE_STATIC);
		r = sqlite3_step(q);
	}
	if (r == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
		db_put(&b, (const char *)sqlite3_column_text(q, 0),
		       (size_t)sqlite3_column_bytes(q, 0));
		sqlite3_finalize(q);
		rtx_end(rc);
		return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
	}
	if (r == SQLITE_ROW || r == SQLITE_DONE) {
		char why[256];

		snprintf(why, sizeof(why), "%s",
			 r == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL
				 ? (const char *)sqlite3_column_text(q, 1)
				 : "none computed for this station and metric");
		sqlite3_finalize(q);
		rtx_end(rc);
		return send_error(srv, c, MHD_HTTP_NOT_FOUND, "no forecast yet: %s", why);
	}
	sqlite3_finalize(q);
	rtx_end(rc);
	return send_db_error(srv, c, rc, r);
}

static enum MHD_Result api_advisories(struct http_server *srv, struct MHD_Connection *c,
				      struct rconn *rc)
{
	static const char *const allowed[] = {"station", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station;
	struct dbuf b = {0};
	int r, have;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = param(&p, "station");
	if (station && !agri_station_id_valid(station))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = view_exists(rc, "v_advisories");
	if (have <= 0) {
		rtx_end(rc);
		return have < 0 ? send_db_error(srv, c, rc, sqlite3_errcode(rc->db))
				: send_error(srv, c, MHD_HTTP_NOT_FOUND,
					     "no advisories yet: this gateway has not computed any");
	}
	r = sqlite3_prepare_v2(rc->db, "SELECT * FROM v_advisories WHERE ?1 IS NULL"
			       " OR station = ?1 LIMIT 1000", -1, &q, NULL);
	db_puts(&b, "{\"advisories\":[");
	if (r == SQLITE_OK) {
		bind_opt(q, 1, station);
		r = rows_json(&b, q);
	}
	sqlite3_finalize(q);
	rtx_end(rc);
	if (r != SQLITE_DONE) {
		free(b.p);
		return send_db_error(srv, c, rc, r);
	}
	db_puts(&b, "]}\n");
	return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* GET /api/v1/dead-letters?station=&kind=&limit=: the per-kind counters
 * (they never reset) and the newest dead letters, newest first. */
static enum MHD_Result api_dead_letters(struct http_server *srv, struct MHD_Connection *c,
					struct rconn *rc)
{
	static const char *const allowed[] = {"station", "kind", "limit", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station, *kind, *s;
	struct dbuf b = {0};
	long limit = 100;
	int r;

	if (!params_read(c, &p, allowed))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = param(&p, "station");
	kind = param(&p, "kind");
	if (station && !agri_station_id_valid(station))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				  "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (kind && !agri_ident_valid(kind))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "bad kind");
	if ((s = param(&p, "limit")) && !parse_limit(s, 1000, &limit))
		return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "bad limit: expected 1-1000");
	if (rtx_begin(rc) < 0)
		return send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	db_puts(&b, "{\"counts\":[");
	r = sqlite3_prepare_v2(rc->db, "SELECT kind, stored, suppressed, evicted"
			       " FROM dead_letter_counts ORDER BY kind", -1, &q, NULL);
	if (r == SQLITE_OK)
		r = rows_json(&b, q);
	sqlite3_finalize(q);
	q = NULL;
	if (r == SQLITE_DONE) {
		db_puts(&b, "],\"dead_letters\":[");
		r = sqlite3_prepare_v2(rc->db,
				       "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', received_at / 1000.0, 'unixepoch')"
				       " AS received_at, topic,"
				       " coalesce(kind, 'invalid') AS kind, station, reason,"
				       " coalesce(size, length(CAST(payload AS BLOB))) AS size, sha256,"
				       " payload FROM dead_letters WHERE (?1 IS NULL OR station = ?1)"
				       " AND (?2 IS NULL OR coalesce(kind, 'invalid') = ?2)"
				       " ORDER BY id DESC LIMIT ?3", -1, &q, NULL);
		if (r == SQLITE_OK) {
			bind_opt(q, 1, station);
			bind_opt(q, 2, kind);
			sqlite3_bind_int64(q, 3, limit);
			r = rows_json(&b, q);
		}
		sqlite3_finalize(q);
	}
	rtx_end(rc);
	if (r != SQLITE_DONE) {
		free(b.p);
		return send_db_error(srv, c, rc, r);
	}
	db_puts(&b, "]}\n");
	return send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- dispatch ---------------------------------------------------------- */

static enum MHD_Result serve_asset(struct http_server *srv, struct MHD_Connection *c,
				   const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (size_t i = 0; i < http_n_assets; i++)
		if (strcmp(http_assets[i].path, url) == 0)
			return send_buf(srv, c, MHD_HTTP_OK, http_assets[i].content_type,
					(char *)http_assets[i].data, http_assets[i].len, false, true);
	return send_error(srv, c, MHD_HTTP_NOT_FOUND, "no such page: %.100s", url);
}

#define ALERTS_PREFIX "/api/v1/alerts/"
#define ACK_SUFFIX "/ack"

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct req *rq = *con_cls;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	size_t ulen = strlen(url);
	struct rconn *rc;

	(void)version;
	if (!rq) { /* first call: headers only */
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) { /* body bytes (POST): keep up to BODY_MAX */
		if (rq->len + *upload_size > BODY_MAX)
			rq->too_big = true;
		else {
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}

	if (ulen > strlen(ALERTS_PREFIX) + strlen(ACK_SUFFIX) &&
	    strncmp(url, ALERTS_PREFIX, strlen(ALERTS_PREFIX)) == 0 &&
	    strcmp(url + ulen - strlen(ACK_SUFFIX), ACK_SUFFIX) == 0) {
		char id[256];
		size_t n = ulen - strlen(ALERTS_PREFIX) - strlen(ACK_SUFFIX);

		if (!post)
			return send_error(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST to acknowledge");
		if (n >= sizeof(id))
			return send_error(srv, c, MHD_HTTP_BAD_REQUEST, "alert id too long");
		memcpy(id, url + strlen(ALERTS_PREFIX), n);
		id[n] = '\0';
		return api_ack(srv, c, id, rq);
	}
	if (!get)
		return send_error(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here",
				  post ? "POST" : "other than GET");
	if (strcmp(url, "/healthz") == 0)
		return api_healthz(srv, c);
	if (strncmp(url, "/api/", 5) != 0 && strcmp(url, "/metrics") != 0)
		return serve_asset(srv, c, url);

	rc = rconn_get(srv);
	if (strcmp(url, "/metrics") == 0)
		return api_metrics(srv, c, rc);
	if (!rc)
		return send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "database not readable");
	if (strcmp(url, "/api/v1/stations") == 0)
		return api_stations(srv, c, rc);
	if (strcmp(url, "/api/v1/readings") == 0)
		return api_readings(srv, c, rc, false);
	if (strcmp(url, "/api/v1/readings.csv") == 0)
		return api_readings(srv, c, rc, true);
	if (strcmp(url, "/api/v1/alerts") == 0)
		return api_alerts(srv, c, rc);
	if (strcmp(url, "/api/v1/forecast") == 0)
		return api_forecast(srv, c, rc);
	if (strcmp(url, "/api/v1/dead-letters") == 0)
		return api_dead_letters(srv, c, rc);
	if (strcmp(url, "/api/v1/advisories") == 0)
		return api_advisories(srv, c, rc);
	return send_error(srv, c, MHD_HTTP_NOT_FOUND, "no such endpoint: %.100s", url);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_warn(LOG, "libmicrohttpd: %s", msg);
}

/* --- start, stop ------------------------------------------------------- */

struct http_server *http_start(const struct gateway_config *cfg,
			       struct gateway_health *health,
			       const struct http_hooks *hooks, int *err)
{
	struct http_server *srv = calloc(1, sizeof(*srv));
	struct addrinfo hints = {0}, *ai = NULL;
	char host[GW_NAME_MAX], port[16];
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	size_t hl;
	int rc;

	if (!srv) {
		*err = -ENOMEM;
		return NULL;
	}
	srv->cfg = cfg;
	srv->health = health;
	if (hooks)
		srv->hooks = *hooks;
	pthread_mutex_init(&srv->rate_mu, NULL);
	srv->token_len = strnlen(cfg->http.token, sizeof(cfg->http.token) - 1);
	memcpy(srv->token, cfg->http.token, srv->token_len);
	if (pthread_key_create(&srv->key, rconn_free) != 0) {
		rc = -ENOMEM;
		goto fail;
	}
	srv->key_made = true;

	snprintf(host, sizeof(host), "%s", cfg->http.host);
	hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	snprintf(port, sizeof(port), "%d", cfg->http.port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &ai) != 0 || !ai) {
		rc = -EADDRNOTAVAIL;
		goto fail;
	}
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_MAX,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
				    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
				    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
				    MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				    MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!srv->mhd) {
		rc = -EADDRINUSE;
		log_error(LOG, "cannot listen listen=%s", cfg->http.listen);
		goto fail;
	}
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : cfg->http.port;
	log_info(LOG, "listening listen=%s:%d threads=%d token=%s", host, srv->port, HTTP_THREADS,
		 srv->token_len ? "set" : "none (writes disabled)");
	return srv;
fail:
	http_stop(srv);
	*err = rc;
	return NULL;
}

void http_stop(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd); /* joins the pool: key destructors ran */
	if (srv->key_made)
		pthread_key_delete(srv->key);
	pthread_mutex_destroy(&srv->rate_mu);
	memset(srv->token, 0, sizeof(srv->token));
	free(srv);
}

int http_port(const struct http_server *srv)
{
	return srv->port;
}
