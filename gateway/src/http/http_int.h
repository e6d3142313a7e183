/*
 * The HTTP server's insides, shared by its files (see http.h for the
 * API): the server, its per-thread read connections, query parameters
 * and the route table (server.c), capped response buffers and responses
 * (response.c), and one file per API group (api_*.c).
 */
#ifndef GATEWAY_HTTP_INT_H
#define GATEWAY_HTTP_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "agri/util.h"
#include "http/http.h"

#define LOG "http"
#define HTTP_THREADS 4
#define HTTP_CONN_MAX 256
#define HTTP_CONN_PER_CLIENT 64     /* connections from one address */
#define HTTP_TIMEOUT_S 15
#define BODY_MAX 4096               /* request bodies (ack) */
#define RESP_MAX (8u << 20)         /* an answer built whole: larger is a 413 */
#define LIMIT_DEFAULT 1000
#define LIMIT_MAX 100000
#define ALERTS_LIMIT_DEFAULT 500
#define ALERTS_LIMIT_MAX 10000
#define EVENTS_PER_ALERT 50
#define QUERY_BUDGET_MS 5000
#define BUSY_TIMEOUT_MS 100
#define PARAMS_MAX 8
#define FORECAST_DOC_MAX (256 * 1024)
#define MERGE_MAX 32                /* readings: series merged in C (api_readings.c) */



/* Read statements, prepared once per thread connection. */
enum {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
	Q_STATIONS, Q_LATEST, Q_STATION_EXISTS, Q_METRIC_SEEN,
	Q_SERIES,
	Q_ALERTS, Q_EVENTS,
	Q_M_ALERTS, Q_M_STATIONS, Q_M_DEAD,
	Q_VIEW_EXISTS,
	Q_SERIES_NEWEST, Q_RAISED_VALUE,
	Q_TODAY_KINDS, Q_SAL_NEWEST, Q_SAL_BEFORE, Q_BPH_NIGHTS,
	Q_READ_TS, Q_READ_ROW,       /* keys along readings_by_ts, a row by key */
	Q_MERGE_0,                   /* MERGE_MAX copies: one series' readings */
	Q_COUNT = Q_MERGE_0 + MERGE_MAX
};

#define SERIES_WHERE \
	"(?1 IS NULL OR st.name = ?1) AND (?2 IS NULL OR se.metric = ?2)" \
	" AND (?3 IS NULL OR se.sensor = ?3)"


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
	char token[GW_SECRET_MAX];          /* writes and reads */
	size_t token_len;
	char read_token[GW_SECRET_MAX];     /* reads */
	size_t read_token_len;
	struct http_guard *guard;           /* per client: limits, failed tries */
	atomic_uint_fast64_t requests, errors_4xx, errors_5xx, limited;
	pthread_mutex_t rate_mu;
	int64_t rate_t_ms;
	uint64_t rate_n;
	double rate;
	struct log_complaint db_complaint;
	char *tls_cert, *tls_key;            /* PEM, when HTTPS */
	struct MHD_OptionItem tls_opts[3];
};

/* One request's state, from its first callback to its completion. */
struct req {
	char body[BODY_MAX + 1];
	size_t len;
	bool too_big;
};


struct params {
	const char *const *allowed; /* NULL-terminated */
	const char *key[PARAMS_MAX];
	const char *val[PARAMS_MAX];
	size_t n;
	char bad[160]; /* the first problem, "" = none */
};

/* One request as a route's handler sees it (server.c fills it in). */
struct http_call {
	struct http_server *srv;
	struct MHD_Connection *c;
	struct rconn *rc;      /* the thread's read connection: set for routes that read */
	const char *id;        /* the path's {id}, or NULL */
	const struct req *rq;  /* the request's body (POST) */
	int variant;           /* the route's variant (readings: 1 = CSV) */
};

typedef enum MHD_Result (*http_handler_fn)(const struct http_call *k);

/* server.c */
int http_progress(void *ctx);
/* The calling worker thread's read connection (opened on first use, its
 * query budget started again), or NULL when the store cannot be read. */
struct rconn *http_rconn(struct http_server *srv);
/* The SQL of statement q (tests: their query plans). */
const char *http_query_sql(int q);
int http_step_reset(sqlite3_stmt *q);
void http_bind_opt(sqlite3_stmt *q, int i, const char *s);
int http_rtx_begin(struct rconn *rc);
void http_rtx_end(struct rconn *rc);
enum MHD_Result http_send_db_error(struct http_server *srv, struct MHD_Connection *c,
				   struct rconn *rc, int r);
bool http_params_read(struct MHD_Connection *c, struct params *p,
		      const char *const *allowed);
const char *http_param(const struct params *p, const char *key);
bool http_metric_canonical(const char *m);
bool http_parse_limit(const char *s, long max, long *out);

/* response.c: capped buffers, JSON and responses */
void http_json_num(struct agri_buf *b, double d);
void http_json_time(struct agri_buf *b, int64_t ms);
void http_db_col_str(struct agri_buf *b, sqlite3_stmt *q, int i);
void http_db_col_num(struct agri_buf *b, sqlite3_stmt *q, int i);
void http_db_col_int(struct agri_buf *b, sqlite3_stmt *q, int i);
void http_db_col_time(struct agri_buf *b, sqlite3_stmt *q, int i);
const char *http_q_name(int q);
enum MHD_Result http_send_buf(struct http_server *srv, struct MHD_Connection *c,
			      unsigned code, const char *type, char *p, size_t len,
			      bool must_free, bool page);
enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *fmt, ...);
/* 429 with Retry-After: retry_s and the reason. */
enum MHD_Result http_send_limited(struct http_server *srv, struct MHD_Connection *c,
				  int retry_s, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
struct http_asset;
/* A dashboard file: gz = its gzipped bytes; not_modified = a 304. */
enum MHD_Result http_send_asset(struct http_server *srv, struct MHD_Connection *c,
				const struct http_asset *a, bool gz, bool not_modified);
enum MHD_Result http_send_dbuf(struct http_server *srv, struct MHD_Connection *c,
			       unsigned code, const char *type, struct agri_buf *b);
/* Does the request's If-None-Match hold etag? */
bool http_etag_matches(struct MHD_Connection *c, const char *etag);
/*
 * A 200 with etag and, unless "", a Link header; or a 304 when the request
 * holds etag already. The body: body[0..len) (must_free: malloc'd, given
 * away, freed whatever happens; else copied), or, when crc is not NULL,
 * read from crc(cls) as the client takes it (chunked; crfc(cls) frees cls
 * when the response is done, or at once if it cannot be made).
 */
enum MHD_Result http_send_page(struct http_server *srv, struct MHD_Connection *c,
			       const char *type, const char *etag, const char *link,
			       char *body, size_t len, bool must_free, MHD_ContentReaderCallback crc,
			       void *cls, MHD_ContentReaderFreeCallback crfc);

/* The gateway's now to the minute: what answers say in "now" and compute
 * from (advisory states, windows still ahead), so that their ETag changes
 * once a minute rather than at every poll. */
static inline int64_t http_now_ms(void)
{
	return util_now_ms() / 60000 * 60000;
}

/* api_stations.c */
enum MHD_Result http_api_stations(const struct http_call *k);
const struct gateway_site *http_site(const struct http_server *srv, const char *station);
void http_json_site(struct agri_buf *b, const struct http_server *srv, const char *station);

/* api_readings.c */
enum MHD_Result http_api_readings(const struct http_call *k);

/* api_alerts.c */
enum MHD_Result http_api_alerts(const struct http_call *k);
enum MHD_Result http_api_ack(const struct http_call *k);

/* api_ops.c */
enum MHD_Result http_api_metrics(const struct http_call *k);
enum MHD_Result http_api_healthz(const struct http_call *k);
enum MHD_Result http_api_dead_letters(const struct http_call *k);
enum MHD_Result http_api_hubs(const struct http_call *k);

/* api_forecast.c */
int http_view_exists(struct rconn *rc, const char *name);
int http_rows_json(struct agri_buf *b, sqlite3_stmt *q);
void http_row_json(struct agri_buf *b, sqlite3_stmt *q);
/* The advisories with their state (?1 station or NULL, ?2 now as RFC 3339). */
extern const char http_advisories_sql[];
/* The interfaces.md §13 forecast document of station/metric into b (hook or view).
 * Returns 0, -ENODATA with the reason in why, or another negative errno
 * (a failed SQLite step is -EIO). Inside the caller's read transaction. */
int http_forecast_doc(struct http_server *srv, struct rconn *rc, const char *station,
		      const char *metric, struct agri_buf *b, char *why, size_t why_len);
enum MHD_Result http_api_forecast(const struct http_call *k);
enum MHD_Result http_api_advisories(const struct http_call *k);

/* api_today.c */
enum MHD_Result http_api_today(const struct http_call *k);

/* api_recipients.c: who receives what (the notification policy's people) */
enum MHD_Result http_api_recipients(const struct http_call *k);

/* api_bundles.c: update bundles for authenticated stations (docs/update.md) */
enum MHD_Result http_api_bundle(const struct http_call *k);

#endif
