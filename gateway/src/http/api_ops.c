/* For operators: GET /metrics (Prometheus), GET /healthz and
 * GET /api/v1/dead-letters (docs/api.md). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/http_int.h"

/* --- GET /metrics ------------------------------------------------------ */

static void metric_line(struct agri_buf *b, const char *name, const char *type,
			const char *help, double v)
{
	agri_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static int64_t file_size(const char *path, const char *suffix)
{
	char p[PATH_MAX + 8];
	struct stat st;

	snprintf(p, sizeof(p), "%s%s", path, suffix);
	return stat(p, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* A "state, count" query as one labelled gauge; states always listed. */
static int metric_by_state(struct agri_buf *b, sqlite3_stmt *q, const char *name,
			   const char *help, const char *const *always)
{
	int r;

	agri_buf_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (const char *const *a = always; *a; a++) {
		bool seen = false;

		while ((r = sqlite3_step(q)) == SQLITE_ROW)
			if (strcmp((const char *)sqlite3_column_text(q, 0), *a) == 0)
				seen = true;
		sqlite3_reset(q);
		if (r != SQLITE_DONE)
			return r;
		if (!seen)
			agri_buf_printf(b, "%s{state=\"%s\"} 0\n", name, *a);
	}
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		agri_buf_printf(b, "%s{state=", name);
		agri_buf_json_text(b, (const char *)sqlite3_column_text(q, 0));
		agri_buf_printf(b, "} %lld\n", (long long)sqlite3_column_int64(q, 1));
	}
	sqlite3_reset(q);
	return r;
}

enum MHD_Result http_api_metrics(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const alert_states[] = {"active", "acknowledged", "cleared", NULL};
	static const char *const station_states[] = {"online", "offline", NULL};
	struct gateway_health *h = srv->health;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
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
	metric_line(&b, "agri_gateway_http_limited_total", "counter",
		    "HTTP 429s: a client over its request rate (http.rate_per_s)",
		    (double)atomic_load(&srv->limited));
	if (rc && http_rtx_begin(rc) == 0) {
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
		http_rtx_end(rc);
	}
	metric_line(&b, "agri_gateway_store_readable", "gauge",
		    "1 when the HTTP API could read the store", rc && r == SQLITE_DONE ? 1 : 0);
	if (srv->hooks.metrics) {
		char extra[16384];
		int n = srv->hooks.metrics(srv->hooks.ctx, extra, sizeof(extra));

		if (n > 0)
			agri_buf_put(&b, extra, strnlen(extra, (size_t)n));
	}
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* --- GET /api/v1/hubs ----------------------------------------------------- */

#define HUBS_DOC_MAX (256u << 10) /* HUBS_STATIONS_MAX names, and the hubs */

/* The province's hubs as this gateway hears them (docs/api.md): from
 * memory, not the store. */
enum MHD_Result http_api_hubs(const struct http_call *k)
{
	static const char *const allowed[] = {NULL};
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct agri_buf b = AGRI_BUF_HEAP(HUBS_DOC_MAX);
	struct params p;
	int n;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	if (!srv->hooks.hubs) {
		agri_buf_puts(&b, "{\"hubs\":[],\"other_urls\":[],\"on_no_hub\":[],\"now\":");
		http_json_time(&b, http_now_ms());
		agri_buf_puts(&b, "}\n");
		return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
	}
	b.p = malloc(HUBS_DOC_MAX);
	if (!b.p)
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	b.cap = HUBS_DOC_MAX;
	n = srv->hooks.hubs(srv->hooks.ctx, b.p, b.cap);
	if (n < 0) {
		agri_buf_free(&b);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR,
				       "cannot list the hubs: %s", strerror(-n));
	}
	b.len = (size_t)n;
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- GET /healthz ------------------------------------------------------ */

enum MHD_Result http_api_healthz(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct gateway_health *h = srv->health;
	bool conn = h && atomic_load(&h->connected), wr = h && atomic_load(&h->db_writable);
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	int64_t last = h ? atomic_load(&h->last_commit_ms) : 0;

	agri_buf_printf(&b, "{\"status\":\"%s\",\"connected\":%s,\"db_writable\":%s,\"queue_depth\":%llu,"
		       "\"last_commit\":", conn && wr ? "ok" : "unhealthy", conn ? "true" : "false",
		       wr ? "true" : "false",
		       (unsigned long long)(h ? atomic_load(&h->queue_depth) : 0));
	if (last > 0)
		http_json_time(&b, last);
	else
		agri_buf_puts(&b, "null");
	agri_buf_puts(&b, "}\n");
	return http_send_dbuf(srv, c, conn && wr ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
			      "application/json", &b);
}

/* --- GET /api/v1/dead-letters ------------------------------------------ */

/* GET /api/v1/dead-letters?station=&kind=&limit=: the per-kind counters
 * (they never reset) and the newest dead letters, newest first. */
enum MHD_Result http_api_dead_letters(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"station", "kind", "limit", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station, *kind, *s;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	long limit = 100;
	int r;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = http_param(&p, "station");
	kind = http_param(&p, "kind");
	if (station && !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (kind && !agri_ident_valid(kind))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "bad kind");
	if ((s = http_param(&p, "limit")) && !http_parse_limit(s, 1000, &limit))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "bad limit: expected 1-1000");
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	agri_buf_puts(&b, "{\"counts\":[");
	r = sqlite3_prepare_v2(rc->db, "SELECT kind, stored, suppressed, evicted"
			       " FROM dead_letter_counts ORDER BY kind", -1, &q, NULL);
	if (r == SQLITE_OK)
		r = http_rows_json(&b, q);
	sqlite3_finalize(q);
	q = NULL;
	if (r == SQLITE_DONE) {
		agri_buf_puts(&b, "],\"dead_letters\":[");
		r = sqlite3_prepare_v2(rc->db,
				       "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', received_at / 1000.0, 'unixepoch')"
				       " AS received_at, topic,"
				       " coalesce(kind, 'invalid') AS kind, station, reason,"
				       " coalesce(size, length(CAST(payload AS BLOB))) AS size, sha256,"
				       " payload FROM dead_letters WHERE (?1 IS NULL OR station = ?1)"
				       " AND (?2 IS NULL OR coalesce(kind, 'invalid') = ?2)"
				       " ORDER BY id DESC LIMIT ?3", -1, &q, NULL);
		if (r == SQLITE_OK) {
			http_bind_opt(q, 1, station);
			http_bind_opt(q, 2, kind);
			sqlite3_bind_int64(q, 3, limit);
			r = http_rows_json(&b, q);
		}
		sqlite3_finalize(q);
	}
	http_rtx_end(rc);
	if (r != SQLITE_DONE) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	agri_buf_puts(&b, "]}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
