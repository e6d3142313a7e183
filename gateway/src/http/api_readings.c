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

static void csv_field(struct dbuf *b, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		http_db_puts(b, s);
		return;
	}
	http_db_put(b, "\"", 1);
	for (; *s; s++) {
		if (*s == '"')
			http_db_put(b, "\"", 1);
		http_db_put(b, s, 1);
	}
	http_db_put(b, "\"", 1);
}

enum MHD_Result http_api_readings(struct http_server *srv, struct MHD_Connection *c,
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

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = http_param(&p, "station");
	metric = http_param(&p, "metric");
	sensor = http_param(&p, "sensor");
	if (station && !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (metric && !agri_ident_valid(metric))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad metric: expected [A-Za-z0-9_-]{1,32}");
	if (sensor && !agri_ident_valid(sensor))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad sensor: expected [A-Za-z0-9_-]{1,32}");
	if ((s = http_param(&p, "from")) && agri_time_parse(s, &from) < 0)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad from: expected an RFC 3339 time like 2026-11-22T15:04:05Z");
	if ((s = http_param(&p, "to")) && agri_time_parse(s, &to) < 0)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad to: expected an RFC 3339 time like 2026-11-22T15:04:05Z");
	if (from >= to)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "from must be before to");
	if ((s = http_param(&p, "limit")) && !http_parse_limit(s, LIMIT_MAX, &limit))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad limit: expected an integer from 1 to %d", LIMIT_MAX);

	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	if (station) {
		q = rc->q[Q_STATION_EXISTS];
		sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
		r = http_step_reset(q);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			goto db_fail;
		if (r == SQLITE_DONE) {
			http_rtx_end(rc);
			return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "unknown station: %s", station);
		}
	}
	if (metric && !http_metric_canonical(metric)) {
		q = rc->q[Q_METRIC_SEEN];
		sqlite3_bind_text(q, 1, metric, -1, SQLITE_STATIC);
		r = http_step_reset(q);
		if (r != SQLITE_ROW && r != SQLITE_DONE)
			goto db_fail;
		if (r == SQLITE_DONE) {
			http_rtx_end(rc);
			return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
					       "unknown metric: %s (not canonical, never reported)", metric);
		}
	}
	/* The matching series (small table), for names and the plan. */
	q = rc->q[Q_SERIES];
	http_bind_opt(q, 1, station);
	http_bind_opt(q, 2, metric);
	http_bind_opt(q, 3, sensor);
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
		http_rtx_end(rc);
		series_free(sn, n_sn);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}

	if (csv)
		http_db_puts(&b, "station,sensor,metric,ts,value,unit,q,received_at\r\n");
	else
		http_db_puts(&b, "{\"readings\":[");
	if (n_sn == 1) { /* one series: walk its primary key in order */
		q = rc->q[Q_READ_ONE];
		sqlite3_bind_int64(q, 1, sn[0].id);
		sqlite3_bind_int64(q, 2, from);
		sqlite3_bind_int64(q, 3, to);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)limit + 1);
	} else {
		q = rc->q[Q_READ_MANY];
		http_bind_opt(q, 1, station);
		http_bind_opt(q, 2, metric);
		http_bind_opt(q, 3, sensor);
		sqlite3_bind_int64(q, 4, from);
		sqlite3_bind_int64(q, 5, to);
		sqlite3_bind_int64(q, 6, (sqlite3_int64)limit + 1);
	}
	r = SQLITE_DONE;
	while (n_sn && !b.err && (r = sqlite3_step(q)) == SQLITE_ROW) {
		const struct series_name *se = series_find(sn, n_sn, sqlite3_column_int64(q, 5));
		int64_t ts = sqlite3_column_int64(q, 0);
		const char *qn = http_q_name(sqlite3_column_int(q, 3));
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
			http_db_put(&b, ",", 1);
			csv_field(&b, se->sensor);
			http_db_put(&b, ",", 1);
			csv_field(&b, se->metric);
			http_db_printf(&b, ",%s,", t1);
			if (sqlite3_column_type(q, 1) != SQLITE_NULL)
				http_db_jnum(&b, sqlite3_column_double(q, 1));
			http_db_put(&b, ",", 1);
			csv_field(&b, (const char *)sqlite3_column_text(q, 2));
			http_db_printf(&b, ",%s,%s\r\n", qn, t2);
		} else {
			http_db_puts(&b, count ? ",{\"station\":" : "{\"station\":");
			http_db_jstr(&b, se->station);
			http_db_puts(&b, ",\"sensor\":");
			http_db_jstr(&b, se->sensor);
			http_db_puts(&b, ",\"metric\":");
			http_db_jstr(&b, se->metric);
			http_db_printf(&b, ",\"ts\":\"%s\",\"value\":", t1);
			http_db_col_num(&b, q, 1);
			http_db_puts(&b, ",\"unit\":");
			http_db_col_str(&b, q, 2);
			http_db_printf(&b, ",\"q\":\"%s\",\"received_at\":\"%s\"}", qn, t2);
		}
		count++;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	http_rtx_end(rc);
	series_free(sn, n_sn);
	if (r != SQLITE_DONE && r != SQLITE_ROW) {
		free(b.p);
		return http_send_db_error(srv, c, rc, r);
	}
	if (!csv) {
		http_db_printf(&b, "],\"count\":%ld,\"limit\":%ld,\"truncated\":%s", count, limit,
			       truncated ? "true" : "false");
		if (truncated) {
			http_db_puts(&b, ",\"next_from\":");
			http_db_jtime(&b, next_ts);
		}
		http_db_puts(&b, "}\n");
	}
	return http_send_dbuf(srv, c, MHD_HTTP_OK, csv ? "text/csv; charset=utf-8" : "application/json",
			      &b);
db_fail:
	http_rtx_end(rc);
	series_free(sn, n_sn);
	free(b.p);
	return http_send_db_error(srv, c, rc, r);
}
