/* GET /api/v1/readings and readings.csv (docs/api.md): parse the
 * parameters, plan the query over the matching series, render JSON or CSV. */
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

static void csv_field(struct agri_buf *b, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		agri_buf_puts(b, s);
		return;
	}
	agri_buf_put(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			agri_buf_put(b, "\"", 1);
		agri_buf_put(b, s, 1);
	}
	agri_buf_put(b, "\"", 1);
}

/* What the request asks for. */
struct readings_query {
	const char *station, *metric, *sensor; /* NULL: any */
	int64_t from, to;                      /* ms, [from, to) */
	long limit;
	bool csv;
};

/* The matching series (a small table), sorted by id: their names, and
 * the query plan (one series: its own key range). */
struct series_list {
	struct series_name *v;
	size_t n, cap;
};

/* Parses and checks the parameters into *q. NULL, or why not (400). */
static const char *readings_parse(struct MHD_Connection *c, struct params *p,
				  struct readings_query *q)
{
	static const char *const allowed[] = {"station", "metric", "sensor", "from", "to",
					      "limit", NULL};
	const char *s;

	q->from = INT64_MIN;
	q->to = INT64_MAX;
	q->limit = LIMIT_DEFAULT;
	if (!http_params_read(c, p, allowed))
		return p->bad;
	q->station = http_param(p, "station");
	q->metric = http_param(p, "metric");
	q->sensor = http_param(p, "sensor");
	if (q->station && !agri_station_id_valid(q->station))
		return "bad station: expected [A-Za-z0-9_-]{1,32}";
	if (q->metric && !agri_ident_valid(q->metric))
		return "bad metric: expected [A-Za-z0-9_-]{1,32}";
	if (q->sensor && !agri_ident_valid(q->sensor))
		return "bad sensor: expected [A-Za-z0-9_-]{1,32}";
	if ((s = http_param(p, "from")) && agri_time_parse(s, &q->from) < 0)
		return "bad from: expected an RFC 3339 time like 2026-11-22T15:04:05Z";
	if ((s = http_param(p, "to")) && agri_time_parse(s, &q->to) < 0)
		return "bad to: expected an RFC 3339 time like 2026-11-22T15:04:05Z";
	if (q->from >= q->to)
		return "from must be before to";
	if ((s = http_param(p, "limit")) && !http_parse_limit(s, LIMIT_MAX, &q->limit))
		return "bad limit: expected an integer from 1 to 100000";
	return NULL;
}

/* SQLITE_ROW when st finds value, SQLITE_DONE when not, else an error. */
static int exists(sqlite3_stmt *st, const char *value)
{
	sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
	return http_step_reset(st);
}

/* The series that match q, in id order. SQLITE_DONE, or an SQLite error,
 * or SQLITE_NOMEM. */
static int readings_series(struct rconn *rc, const struct readings_query *q,
			   struct series_list *sl)
{
	sqlite3_stmt *st = rc->q[Q_SERIES];
	int r;

	http_bind_opt(st, 1, q->station);
	http_bind_opt(st, 2, q->metric);
	http_bind_opt(st, 3, q->sensor);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct series_name *e;

		if (sl->n == sl->cap) {
			size_t nc = sl->cap ? sl->cap * 2 : 16;
			struct series_name *t = realloc(sl->v, nc * sizeof(*t));

			if (!t) {
				r = SQLITE_NOMEM;
				break;
			}
			sl->v = t;
			sl->cap = nc;
		}
		e = &sl->v[sl->n++];
		e->id = sqlite3_column_int64(st, 0);
		e->station = strdup((const char *)sqlite3_column_text(st, 1));
		e->sensor = strdup((const char *)sqlite3_column_text(st, 2));
		e->metric = strdup((const char *)sqlite3_column_text(st, 3));
		if (!e->station || !e->sensor || !e->metric) {
			r = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	return r;
}

/* One reading as CSV or JSON. */
static void render_row(struct agri_buf *b, const struct readings_query *q, sqlite3_stmt *st,
		       const struct series_name *se, bool first)
{
	const char *qn = http_q_name(sqlite3_column_int(st, 3));
	char t1[AGRI_TIME_LEN + 1] = "", t2[AGRI_TIME_LEN + 1] = "";

	agri_time_format(sqlite3_column_int64(st, 0), t1, sizeof(t1));
	agri_time_format(sqlite3_column_int64(st, 4), t2, sizeof(t2));
	if (q->csv) {
		csv_field(b, se->station);
		agri_buf_put(b, ",", 1);
		csv_field(b, se->sensor);
		agri_buf_put(b, ",", 1);
		csv_field(b, se->metric);
		agri_buf_printf(b, ",%s,", t1);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			http_json_num(b, sqlite3_column_double(st, 1));
		agri_buf_put(b, ",", 1);
		csv_field(b, (const char *)sqlite3_column_text(st, 2));
		agri_buf_printf(b, ",%s,%s\r\n", qn, t2);
		return;
	}
	agri_buf_puts(b, first ? "{\"station\":" : ",{\"station\":");
	agri_buf_json_text(b, se->station);
	agri_buf_puts(b, ",\"sensor\":");
	agri_buf_json_text(b, se->sensor);
	agri_buf_puts(b, ",\"metric\":");
	agri_buf_json_text(b, se->metric);
	agri_buf_printf(b, ",\"ts\":\"%s\",\"value\":", t1);
	http_db_col_num(b, st, 1);
	agri_buf_puts(b, ",\"unit\":");
	http_db_col_str(b, st, 2);
	agri_buf_printf(b, ",\"q\":\"%s\",\"received_at\":\"%s\"}", qn, t2);
}

/* The readings of sl, oldest first, at most q->limit into b (and the
 * JSON tail: count, limit, truncated, next_from). SQLITE_DONE or an
 * SQLite error. */
static int readings_render(struct rconn *rc, const struct readings_query *q,
			   const struct series_list *sl, struct agri_buf *b)
{
	sqlite3_stmt *st;
	int64_t next_ts = 0;
	long count = 0;
	bool truncated = false;
	int r = SQLITE_DONE;

	agri_buf_puts(b, q->csv ? "station,sensor,metric,ts,value,unit,q,received_at\r\n"
			       : "{\"readings\":[");
	if (sl->n == 1) { /* one series: walk its primary key in order */
		st = rc->q[Q_READ_ONE];
		sqlite3_bind_int64(st, 1, sl->v[0].id);
		sqlite3_bind_int64(st, 2, q->from);
		sqlite3_bind_int64(st, 3, q->to);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)q->limit + 1);
	} else {
		st = rc->q[Q_READ_MANY];
		http_bind_opt(st, 1, q->station);
		http_bind_opt(st, 2, q->metric);
		http_bind_opt(st, 3, q->sensor);
		sqlite3_bind_int64(st, 4, q->from);
		sqlite3_bind_int64(st, 5, q->to);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)q->limit + 1);
	}
	while (sl->n && !b->err && (r = sqlite3_step(st)) == SQLITE_ROW) {
		const struct series_name *se = series_find(sl->v, sl->n, sqlite3_column_int64(st, 5));

		if (!se)
			continue; /* a series newer than the list: not in the snapshot */
		if (count == q->limit) {
			truncated = true;
			next_ts = sqlite3_column_int64(st, 0);
			break;
		}
		render_row(b, q, st, se, count == 0);
		count++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r != SQLITE_DONE && r != SQLITE_ROW)
		return r;
	if (!q->csv) {
		agri_buf_printf(b, "],\"count\":%ld,\"limit\":%ld,\"truncated\":%s", count, q->limit,
			       truncated ? "true" : "false");
		if (truncated) {
			agri_buf_puts(b, ",\"next_from\":");
			http_json_time(b, next_ts);
		}
		agri_buf_puts(b, "}\n");
	}
	return SQLITE_DONE;
}

/* Parse, then in one read transaction check and plan, then render. */
enum MHD_Result http_api_readings(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	struct readings_query q = {.csv = k->variant == 1};
	struct series_list sl = {0};
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	struct params p;
	const char *why;
	int r;

	if ((why = readings_parse(c, &p, &q)))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	if (q.station && (r = exists(rc->q[Q_STATION_EXISTS], q.station)) != SQLITE_ROW) {
		http_rtx_end(rc);
		if (r == SQLITE_DONE)
			return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "unknown station: %s",
					       q.station);
		return http_send_db_error(srv, c, rc, r);
	}
	if (q.metric && !http_metric_canonical(q.metric) &&
	    (r = exists(rc->q[Q_METRIC_SEEN], q.metric)) != SQLITE_ROW) {
		http_rtx_end(rc);
		if (r == SQLITE_DONE)
			return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
					       "unknown metric: %s (not canonical, never reported)",
					       q.metric);
		return http_send_db_error(srv, c, rc, r);
	}
	if ((r = readings_series(rc, &q, &sl)) == SQLITE_DONE)
		r = readings_render(rc, &q, &sl, &b);
	http_rtx_end(rc);
	series_free(sl.v, sl.n);
	if (r == SQLITE_NOMEM) {
		agri_buf_free(&b);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (r != SQLITE_DONE) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	return http_send_dbuf(srv, c, MHD_HTTP_OK,
			      q.csv ? "text/csv; charset=utf-8" : "application/json", &b);
}
