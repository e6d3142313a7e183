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

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/assets.h"
#include "http/guard.h"
#include "http/http_int.h"

/* --- the per-thread read connection ------------------------------- */

/* Read statements, prepared once per thread connection. */
static const char *const q_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_STATIONS] = "SELECT id, name, state, last_seen, last_seq, gaps, fw, board,"
		       " config_version, spool_depth, maintenance, status_at,"
		       " system, slot, update_version, update_state, update_error"
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
	/* The keys of readings along the time index from (?1 ts, ?2 series id)
	 * on, before ?3: the index alone (it holds the key), no row read; a
	 * page keeps its series' keys and reads those rows with Q_READ_ROW
	 * (api_readings.c). */
	[Q_READ_TS] = "SELECT r.ts, r.series_id FROM readings r INDEXED BY readings_by_ts"
		      " WHERE (r.ts, r.series_id) >= (?1, ?2) AND r.ts < ?3"
		      " ORDER BY r.ts, r.series_id",
	[Q_READ_ROW] = "SELECT ts, value, unit, q, received_at, series_id FROM readings"
		       " WHERE series_id = ?1 AND ts = ?2",
	[Q_ALERTS] = "SELECT id, rule, station, sensor, metric, severity, state, value,"
		     " threshold, raised_at, updated_at, message, acked_by, message_en,"
		     " message_vi, late, event_at, arrived_at FROM alerts"
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
	/* The newest reading of one series (an alert's current value). */
	[Q_SERIES_NEWEST] = "SELECT value, ts, unit, q FROM readings WHERE series_id ="
			    " (SELECT se.id FROM series se JOIN stations st ON st.id = se.station_id"
			    " WHERE st.name = ?1 AND se.sensor = ?2 AND se.metric = ?3)"
			    " ORDER BY ts DESC LIMIT 1",
	/* An alert's value when it was raised: its first event since. */
	[Q_RAISED_VALUE] = "SELECT value FROM alert_events WHERE alert_id = ?1 AND at >= ?2"
			   " ORDER BY seq LIMIT 1",
	/* /api/v1/today: what each station measures. */
	[Q_TODAY_KINDS] = "SELECT st.name, st.state, st.last_seen,"
			  " max(se.metric = 'salinity'),"
			  " max(se.metric = 'insect_count' AND se.sensor LIKE '%-bph')"
			  " FROM stations st JOIN series se ON se.station_id = st.id"
			  " GROUP BY st.id ORDER BY st.name",
	/* The newest ok salinity of a station, and its series: each series'
	 * newest, walked back from its end, then the newest of those (a sort
	 * of one row a series, not of every reading). */
	[Q_SAL_NEWEST] = "SELECT se.id, se.sensor, r.ts, r.value FROM stations st"
			 " JOIN series se ON se.station_id = st.id CROSS JOIN readings r"
			 " ON r.series_id = se.id AND r.ts = (SELECT ts FROM readings"
			 " WHERE series_id = se.id AND q = 0 AND value IS NOT NULL"
			 " ORDER BY ts DESC LIMIT 1)"
			 " WHERE st.name = ?1 AND se.metric = 'salinity' ORDER BY r.ts DESC LIMIT 1",
	/* The newest ok reading of series ?1 at or before ?2 ms. */
	[Q_SAL_BEFORE] = "SELECT ts, value FROM readings WHERE series_id = ?1 AND ts <= ?2"
			 " AND q = 0 AND value IS NOT NULL ORDER BY ts DESC LIMIT 1",
	/* Light-trap catch per night at a station, nights counted from ?2 (a
	 * local noon, UTC ms; the night of day D runs from its noon for 24 h):
	 * brown planthoppers (sensors "*-bph") and the other classes. */
	[Q_BPH_NIGHTS] = "SELECT (r.ts - ?2) / 86400000,"
			 " sum(CASE WHEN se.sensor LIKE '%-bph' THEN r.value END),"
			 " sum(CASE WHEN se.sensor NOT LIKE '%-bph' THEN r.value END)"
			 " FROM stations st JOIN series se ON se.station_id = st.id"
			 " CROSS JOIN readings r ON r.series_id = se.id WHERE st.name = ?1"
			 " AND se.metric = 'insect_count' AND r.ts >= ?2 AND r.q != 2"
			 " GROUP BY 1 ORDER BY 1",
};

/* One series' readings in [?2, ?3) on its primary key: the Q_MERGE_0 + i
 * statements (a page merges up to MERGE_MAX series, api_readings.c). */
static const char merge_sql[] = "SELECT ts, value, unit, q, received_at, series_id FROM readings"
				" WHERE series_id = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts";

const char *http_query_sql(int q)
{
	if (q < 0 || q >= Q_COUNT)
		return NULL;
	return q >= Q_MERGE_0 ? merge_sql : q_sql[q];
}

int http_progress(void *ctx)
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
struct rconn *http_rconn(struct http_server *srv)
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
	sqlite3_progress_handler(rc->db, 10000, http_progress, rc);
	for (int i = 0; i < Q_COUNT; i++) {
		r = sqlite3_prepare_v3(rc->db, http_query_sql(i), -1, SQLITE_PREPARE_PERSISTENT,
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

int http_step_reset(sqlite3_stmt *q)
{
	int r = sqlite3_step(q);

	sqlite3_reset(q);
	return r;
}

void http_bind_opt(sqlite3_stmt *q, int i, const char *s)
{
	if (s && *s)
		sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, i);
}

/* Begins the request's read transaction (one snapshot for the answer). */
int http_rtx_begin(struct rconn *rc)
{
	return http_step_reset(rc->q[Q_BEGIN]) == SQLITE_DONE ? 0 : -EIO;
}

void http_rtx_end(struct rconn *rc)
{
	if (http_step_reset(rc->q[Q_COMMIT]) != SQLITE_DONE)
		http_step_reset(rc->q[Q_ROLLBACK]);
}

/* The error answer for a failed SQLite step. */
enum MHD_Result http_send_db_error(struct http_server *srv, struct MHD_Connection *c,
				   struct rconn *rc, int r)
{
	if ((r & 0xff) == SQLITE_INTERRUPT)
		return http_send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE,
				       "query took over %d ms: narrow it (station, metric, from, to)",
				       QUERY_BUDGET_MS);
	if ((r & 0xff) == SQLITE_BUSY || (r & 0xff) == SQLITE_LOCKED)
		return http_send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "database busy, try again");
	log_warn(LOG, "query failed error=\"%s\"", rc ? sqlite3_errmsg(rc->db) : "?");
	return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "database error");
}

/* --- query parameters ---------------------------------------------- */


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
bool http_params_read(struct MHD_Connection *c, struct params *p,
		      const char *const *allowed)
{
	memset(p, 0, sizeof(*p));
	p->allowed = allowed;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_cb, p);
	return p->bad[0] == '\0';
}

const char *http_param(const struct params *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->key[i], key) == 0)
			return p->val[i];
	return NULL;
}

/* The canonical metrics of docs/interfaces.md, Telemetry (always accepted as a filter). */
static const char *const canonical_metrics[] = {
	"salinity", "conductivity", "water_temperature", "ph", "dissolved_oxygen",
	"turbidity", "water_level", "insect_count", "air_temperature",
	"air_humidity", "lamp_on", "battery_voltage", "battery_soc", "pv_power",
};

bool http_metric_canonical(const char *m)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(canonical_metrics); i++)
		if (strcmp(canonical_metrics[i], m) == 0)
			return true;
	return false;
}

/* Parses a positive integer limit in [1, max]; false on anything else. */
bool http_parse_limit(const char *s, long max, long *out)
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

/* --- dispatch ---------------------------------------------------------- */

/* Does an Accept-Encoding header accept gzip (not with q=0)? */
static bool accepts_gzip(const char *ae)
{
	while (ae && *ae) {
		size_t n;

		ae += strspn(ae, " \t,");
		n = strcspn(ae, ",;");
		if ((n == 4 && strncasecmp(ae, "gzip", 4) == 0) || (n == 1 && *ae == '*')) {
			const char *end = ae + strcspn(ae, ","), *q = strstr(ae, "q=");

			return !(q && q < end && strtod(q + 2, NULL) <= 0.0);
		}
		ae += strcspn(ae, ",");
	}
	return false;
}

static enum MHD_Result serve_asset(struct http_server *srv, struct MHD_Connection *c,
				   const char *url)
{
	if (strcmp(url, "/") == 0)
		url = "/index.html";
	for (size_t i = 0; i < http_n_assets; i++) {
		const struct http_asset *a = &http_assets[i];
		const char *inm;
		bool gz;

		if (strcmp(a->path, url) != 0)
			continue;
		gz = accepts_gzip(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							      MHD_HTTP_HEADER_ACCEPT_ENCODING));
		inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
		return http_send_asset(srv, c, a, gz,
				       inm && (strstr(inm, gz ? a->etag_gz : a->etag) ||
					       strcmp(inm, "*") == 0));
	}
	return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "no such page: %.100s", url);
}

/*
 * The routes. path is exact, or "prefix{id}suffix" (the id is what lies
 * between, at most ID_MAX bytes). GET routes answer HEAD too. auth:
 * ROUTE_WRITE needs the write token (http.token_file); ROUTE_READ a read
 * or write token unless http.public_reads; ROUTE_OPEN none (a handler that
 * checks its own credentials). db: the handler reads the store through
 * the thread's read connection (503 when it cannot be opened). A path that
 * matches no route with another method is 405. Every request, routed or
 * not, has passed admit() first.
 */
enum route_auth { ROUTE_OPEN = 0, ROUTE_WRITE = 1, ROUTE_READ = 2 };

struct route {
	const char *method;
	const char *path;
	enum route_auth auth;
	bool db;
	int variant;
	http_handler_fn fn;
};

static const struct route routes[] = {
	{"GET", "/healthz", ROUTE_OPEN, false, 0, http_api_healthz},
	{"GET", "/metrics", ROUTE_READ, false, 0, http_api_metrics}, /* reads what it can */
	{"GET", "/api/v1/stations", ROUTE_READ, true, 0, http_api_stations},
	{"GET", "/api/v1/readings", ROUTE_READ, true, 0, http_api_readings},
	{"GET", "/api/v1/readings.csv", ROUTE_READ, true, 1, http_api_readings},
	{"GET", "/api/v1/alerts", ROUTE_READ, true, 0, http_api_alerts},
	{"POST", "/api/v1/alerts/{id}/ack", ROUTE_WRITE, false, 0, http_api_ack},
	{"GET", "/api/v1/forecast", ROUTE_READ, true, 0, http_api_forecast},
	{"GET", "/api/v1/advisories", ROUTE_READ, true, 0, http_api_advisories},
	{"GET", "/api/v1/today", ROUTE_READ, true, 0, http_api_today},
	{"GET", "/api/v1/recipients", ROUTE_READ, true, 0, http_api_recipients},
	{"GET", "/api/v1/dead-letters", ROUTE_READ, true, 0, http_api_dead_letters},
	{"GET", "/api/v1/hubs", ROUTE_READ, false, 0, http_api_hubs},
	{"GET", "/api/v1/bundles/{id}", false, false, 0, http_api_bundle}, /* station auth */
};

#define ID_MAX 255

/* Does url match path? A "{id}" path copies the id into id[ID_MAX + 1]
 * (*too_long when it does not fit). */
static bool route_match(const char *path, const char *url, char *id, bool *too_long)
{
	const char *hole = strstr(path, "{id}");
	size_t pre, post, ulen = strlen(url), n;

	if (!hole)
		return strcmp(path, url) == 0;
	pre = (size_t)(hole - path);
	post = strlen(hole + 4);
	if (ulen <= pre + post || strncmp(url, path, pre) != 0 ||
	    strcmp(url + ulen - post, hole + 4) != 0)
		return false;
	n = ulen - pre - post;
	*too_long = n > ID_MAX;
	if (!*too_long) {
		memcpy(id, url + pre, n);
		id[n] = '\0';
	}
	return true;
}

/* --- who may ask: tokens, limits, names ---------------------------------- */

enum role { ROLE_NONE, ROLE_READ, ROLE_WRITE };

/* given[] (zero-padded) against tok[0..len) in constant time: the time
 * depends only on the buffers' sizes (fixed), not on where they differ. */
static bool token_eq(const char *given, size_t n, const char *tok, size_t len)
{
	volatile unsigned char diff = (unsigned char)(n != len || len == 0);

	for (size_t i = 0; i < GW_SECRET_MAX; i++)
		diff |= (unsigned char)(given[i] ^ tok[i]);
	return diff == 0;
}

/* What a "Bearer ..." header's token may do: both tokens are compared
 * whatever the first gives. */
static enum role token_role(const struct http_server *srv, const char *auth)
{
	char given[GW_SECRET_MAX] = {0};
	bool w, r;
	size_t n;

	auth += 7;
	while (*auth == ' ')
		auth++;
	n = strlen(auth);
	if (n == 0 || n >= sizeof(given))
		return ROLE_NONE;
	memcpy(given, auth, n);
	w = token_eq(given, n, srv->token, srv->token_len);
	r = token_eq(given, n, srv->read_token, srv->read_token_len);
	explicit_bzero(given, sizeof(given));
	return w ? ROLE_WRITE : r ? ROLE_READ : ROLE_NONE;
}

/* Is name (a host without port; an IPv6 address in brackets) this
 * machine's loopback? */
static bool name_loopback(const char *name)
{
	char a[INET6_ADDRSTRLEN];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n = strlen(name);

	if (strcasecmp(name, "localhost") == 0 || strcasecmp(name, "localhost.") == 0)
		return true;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n < 3 || n - 2 >= sizeof(a) || name[0] != '[' || name[n - 1] != ']')
		return false;
	memcpy(a, name + 1, n - 2);
	a[n - 2] = '\0';
	return inet_pton(AF_INET6, a, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Are a and b the same host name or address (case and a final dot aside;
 * IPv6 addresses compared as addresses)? */
static bool name_eq(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	if (na && a[na - 1] == '.')
		na--;
	if (nb && b[nb - 1] == '.')
		nb--;
	if (na > 2 && nb > 2 && a[0] == '[' && b[0] == '[' && na < INET6_ADDRSTRLEN &&
	    nb < INET6_ADDRSTRLEN) {
		char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
		struct in6_addr ax, ay;

		memcpy(x, a + 1, na - 2);
		x[na - 2] = '\0';
		memcpy(y, b + 1, nb - 2);
		y[nb - 2] = '\0';
		return inet_pton(AF_INET6, x, &ax) == 1 && inet_pton(AF_INET6, y, &ay) == 1 &&
		       memcmp(&ax, &ay, sizeof(ax)) == 0;
	}
	return na == nb && strncasecmp(a, b, na) == 0;
}

/* Does the authority s[0..n) ("host", "host:port", "[v6]:port") name this
 * gateway: a loopback name, the listen address (unless a wildcard) or one
 * of http.hosts? */
static bool authority_ok(const struct http_server *srv, const char *s, size_t n)
{
	const struct gateway_config *cfg = srv->cfg;
	char name[GW_HOST_MAX];
	const char *end = s + n, *colon;

	if (n && s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (!rb || (rb + 1 != end && rb[1] != ':'))
			return false;
		end = rb + 1;
	} else if ((colon = memchr(s, ':', n))) {
		end = colon;
	}
	n = (size_t)(end - s);
	if (n == 0 || n >= sizeof(name) || memchr(s, '\0', n))
		return false;
	memcpy(name, s, n);
	name[n] = '\0';
	if (name_loopback(name))
		return true;
	if (strcmp(cfg->http.host, "*") != 0 && strcmp(cfg->http.host, "0.0.0.0") != 0 &&
	    strcmp(cfg->http.host, "::") != 0 && strcmp(cfg->http.host, "[::]") != 0 &&
	    name_eq(name, cfg->http.host))
		return true;
	for (size_t i = 0; i < cfg->http.n_hosts; i++)
		if (name_eq(name, cfg->http.hosts[i]))
			return true;
	return false;
}

/* An Origin header: "null" and other schemes are refused, an http(s)
 * origin must name this gateway as Host does. */
static bool origin_ok(const struct http_server *srv, const char *o)
{
	size_t skip = strncasecmp(o, "http://", 7) == 0 ? 7 : strncasecmp(o, "https://", 8) == 0 ? 8 : 0;

	return skip && authority_ok(srv, o + skip, strlen(o + skip));
}

/* The client's address as text, for logs. */
static const char *client_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *a = NULL;

	if (sa && sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa && sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (!a || !inet_ntop(sa->sa_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

/*
 * What every request passes before its route (docs/api.md, "Who may
 * ask"): a client locked out after wrong tokens gets 429 for any token;
 * a right token skips the client's bucket, anything else takes from it
 * (429 + Retry-After when empty); a wrong token is 401 and counted; Host
 * and Origin must name this gateway (403: DNS rebinding, cross-site
 * writes). Returns true with *role when the request may go on, else false
 * with the answer queued (*resp). HTTP worker threads.
 */
static bool admit(struct http_server *srv, struct MHD_Connection *c, enum role *role,
		  enum MHD_Result *resp)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	bool bearer = auth && strncasecmp(auth, "Bearer ", 7) == 0;
	int64_t now = util_mono_ms();
	char who[INET6_ADDRSTRLEN];
	int wait;

	*role = ROLE_NONE;
	if (bearer) {
		if ((wait = http_guard_locked(srv->guard, sa, now))) {
			*resp = http_send_limited(srv, c, wait, "too many wrong tokens from this address:"
						  " try again in %d s", wait);
			return false;
		}
		*role = token_role(srv, auth);
		if (*role != ROLE_NONE)
			http_guard_passed(srv->guard, sa, now);
	}
	if (*role == ROLE_NONE && (wait = http_guard_take(srv->guard, sa, now))) {
		atomic_fetch_add(&srv->limited, 1);
		*resp = http_send_limited(srv, c, wait, "too many requests from this address (%lld a"
					  " second, %lld at once): try again in %d s",
					  (long long)srv->cfg->http.rate_per_s,
					  (long long)srv->cfg->http.rate_burst, wait);
		return false;
	}
	if (bearer && *role == ROLE_NONE) {
		if ((wait = http_guard_failed(srv->guard, sa, now)))
			log_warn(LOG, "wrong tokens: token tries locked out client=%s seconds=%d",
				 client_text(sa, who, sizeof(who)), wait);
		*resp = http_send_error(srv, c, MHD_HTTP_UNAUTHORIZED,
					"wrong token (Authorization: Bearer <token>)");
		return false;
	}
	if (host && !authority_ok(srv, host, strlen(host))) {
		*resp = http_send_error(srv, c, MHD_HTTP_FORBIDDEN, "Host %.100s is not a name of this"
					" gateway (add it to http.hosts)", host);
		return false;
	}
	if (origin && !origin_ok(srv, origin)) {
		*resp = http_send_error(srv, c, MHD_HTTP_FORBIDDEN, "Origin %.100s is not this gateway"
					" (add its host to http.hosts)", origin);
		return false;
	}
	return true;
}

/* The route's token, when it needs one: true when role may, else false
 * with the answer queued (*resp). */
static bool authorized(struct http_server *srv, struct MHD_Connection *c,
		       enum route_auth need, enum role role, enum MHD_Result *resp)
{
	if (need == ROUTE_READ && !srv->cfg->http.public_reads && role == ROLE_NONE) {
		*resp = http_send_error(srv, c, MHD_HTTP_UNAUTHORIZED, "reads need a token"
					" (Authorization: Bearer <token>)");
		return false;
	}
	if (need != ROUTE_WRITE || role == ROLE_WRITE)
		return true;
	if (srv->token_len == 0) {
		*resp = http_send_error(srv, c, MHD_HTTP_FORBIDDEN,
					"writes are disabled: no http.token_file in the gateway config");
		return false;
	}
	if (role == ROLE_READ) {
		*resp = http_send_error(srv, c, MHD_HTTP_FORBIDDEN, "this token only reads");
		return false;
	}
	log_warn(LOG, "write refused: missing or wrong token");
	*resp = http_send_error(srv, c, MHD_HTTP_UNAUTHORIZED,
				"missing or wrong token (Authorization: Bearer <token>)");
	return false;
}

/* Runs the route for (method, url). */
static enum MHD_Result dispatch(struct http_server *srv, struct MHD_Connection *c,
				const char *method, const char *url, const struct req *rq)
{
	bool head = strcmp(method, "HEAD") == 0, other_method = false;
	char id[ID_MAX + 1];
	enum MHD_Result resp;
	enum role role;

	if (!admit(srv, c, &role, &resp))
		return resp;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(routes); i++) {
		const struct route *r = &routes[i];
		struct http_call k = {.srv = srv, .c = c, .rq = rq, .variant = r->variant};
		bool too_long = false;

		if (!route_match(r->path, url, id, &too_long))
			continue;
		if (strcmp(method, r->method) != 0 && !(head && strcmp(r->method, "GET") == 0)) {
			other_method = true;
			continue;
		}
		if (too_long)
			return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "id too long");
		if (!authorized(srv, c, r->auth, role, &resp))
			return resp;
		k.id = strstr(r->path, "{id}") ? id : NULL;
		k.rc = http_rconn(srv);
		if (r->db && !k.rc)
			return http_send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE,
					       "database not readable");
		return r->fn(&k);
	}
	if (other_method)
		return http_send_error(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here",
				       method);
	if (strcmp(method, "GET") != 0 && !head)
		return http_send_error(srv, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed here",
				       method);
	if (strncmp(url, "/api/", 5) == 0)
		return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "no such endpoint: %.100s", url);
	return serve_asset(srv, c, url);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version,
			      const char *upload, size_t *upload_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct req *rq = *con_cls;

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
	return dispatch(srv, c, method, url, rq);
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

__attribute__((format(printf, 2, 0)))
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
	srv->read_token_len = strnlen(cfg->http.read_token, sizeof(cfg->http.read_token) - 1);
	memcpy(srv->read_token, cfg->http.read_token, srv->read_token_len);
	srv->guard = http_guard_new((double)cfg->http.rate_per_s, (double)cfg->http.rate_burst);
	if (!srv->guard) {
		rc = -ENOMEM;
		goto fail;
	}
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
	if (cfg->http.cert_file[0]) { /* HTTPS (docs/update.md) */
		size_t n;

		if (util_read_file(cfg->http.cert_file, 1 << 20, &srv->tls_cert, &n) < 0 ||
		    util_read_file(cfg->http.key_file, 1 << 20, &srv->tls_key, &n) < 0) {
			log_error(LOG, "cannot read http.cert_file or http.key_file");
			freeaddrinfo(ai);
			rc = -EINVAL;
			goto fail;
		}
		flags |= MHD_USE_TLS;
		srv->tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
		srv->tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
		srv->tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	} else {
		srv->tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	}
	srv->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv,
				    MHD_OPTION_ARRAY, srv->tls_opts,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
				    MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_MAX,
				    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_CONN_PER_CLIENT,
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
	log_info(LOG, "listening listen=%s:%d threads=%d token=%s tls=%s", host, srv->port,
		 HTTP_THREADS, srv->token_len ? "set" : "none (writes disabled)",
		 cfg->http.cert_file[0] ? "on" : "off");
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
	http_guard_free(srv->guard);
	explicit_bzero(srv->token, sizeof(srv->token));
	explicit_bzero(srv->read_token, sizeof(srv->read_token));
	if (srv->tls_key)
		explicit_bzero(srv->tls_key, strlen(srv->tls_key));
	free(srv->tls_key);
	free(srv->tls_cert);
	free(srv);
}

int http_port(const struct http_server *srv)
{
	return srv->port;
}
