/* GET /api/v1/forecast and GET /api/v1/advisories (docs/forecast.md). */
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

/* --- GET /api/v1/forecast, /api/v1/advisories ------------------------ */

static int view_exists(struct rconn *rc, const char *name)
{
	sqlite3_stmt *q = rc->q[Q_VIEW_EXISTS];
	int r;

	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	r = http_step_reset(q);
	return r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : -EIO;
}

/* Every row of an ad-hoc query as a JSON object keyed by column name. */
int http_rows_json(struct agri_buf *b, sqlite3_stmt *q)
{
	int r, n = sqlite3_column_count(q);
	bool first = true;

	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		agri_buf_puts(b, first ? "{" : ",{");
		first = false;
		for (int i = 0; i < n; i++) {
			agri_buf_puts(b, i ? "," : "");
			agri_buf_json_text(b, sqlite3_column_name(q, i));
			agri_buf_put(b, ":", 1);
			switch (sqlite3_column_type(q, i)) {
			case SQLITE_INTEGER:
				http_db_col_int(b, q, i);
				break;
			case SQLITE_FLOAT:
				http_db_col_num(b, q, i);
				break;
			default:
				http_db_col_str(b, q, i);
			}
		}
		agri_buf_puts(b, "}");
	}
	return r;
}

enum MHD_Result http_api_forecast(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"station", "metric", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station, *metric;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	int r, have;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = http_param(&p, "station");
	metric = http_param(&p, "metric");
	if (!metric)
		metric = "salinity";
	if (!station || !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "station is required: [A-Za-z0-9_-]{1,32}");
	if (!agri_ident_valid(metric))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad metric: expected [A-Za-z0-9_-]{1,32}");
	if (srv->hooks.forecast) {
		char *doc = malloc(FORECAST_DOC_MAX);
		int n;

		if (!doc)
			return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		doc[0] = '\0';
		n = srv->hooks.forecast(srv->hooks.ctx, station, metric, doc, FORECAST_DOC_MAX);
		if (n >= 0 && (size_t)n < FORECAST_DOC_MAX)
			return http_send_buf(srv, c, MHD_HTTP_OK, "application/json", doc, (size_t)n, true,
					     false);
		doc[FORECAST_DOC_MAX - 1] = '\0';
		if (n == -ENODATA || n == -ENOENT) {
			enum MHD_Result ret = http_send_error(srv, c, MHD_HTTP_NOT_FOUND,
							      "no forecast yet: %s", doc[0] ? doc : "no data");

			free(doc);
			return ret;
		}
		free(doc);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "forecast failed");
	}
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = view_exists(rc, "v_forecasts");
	if (have <= 0) {
		http_rtx_end(rc);
		return have < 0 ? http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db))
				: http_send_error(srv, c, MHD_HTTP_NOT_FOUND,
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
		agri_buf_put(&b, (const char *)sqlite3_column_text(q, 0),
			    (size_t)sqlite3_column_bytes(q, 0));
		sqlite3_finalize(q);
		http_rtx_end(rc);
		return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
	}
	if (r == SQLITE_ROW || r == SQLITE_DONE) {
		char why[256];

		snprintf(why, sizeof(why), "%s",
			 r == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL
				 ? (const char *)sqlite3_column_text(q, 1)
				 : "none computed for this station and metric");
		sqlite3_finalize(q);
		http_rtx_end(rc);
		return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "no forecast yet: %s", why);
	}
	sqlite3_finalize(q);
	http_rtx_end(rc);
	return http_send_db_error(srv, c, rc, r);
}

enum MHD_Result http_api_advisories(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"station", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	int r, have;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = http_param(&p, "station");
	if (station && !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad station: expected [A-Za-z0-9_-]{1,32}");
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = view_exists(rc, "v_advisories");
	if (have <= 0) {
		http_rtx_end(rc);
		return have < 0 ? http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db))
				: http_send_error(srv, c, MHD_HTTP_NOT_FOUND,
						  "no advisories yet: this gateway has not computed any");
	}
	r = sqlite3_prepare_v2(rc->db, "SELECT * FROM v_advisories WHERE ?1 IS NULL"
			       " OR station = ?1 LIMIT 1000", -1, &q, NULL);
	agri_buf_puts(&b, "{\"advisories\":[");
	if (r == SQLITE_OK) {
		http_bind_opt(q, 1, station);
		r = http_rows_json(&b, q);
	}
	sqlite3_finalize(q);
	http_rtx_end(rc);
	if (r != SQLITE_DONE) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	agri_buf_puts(&b, "]}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
