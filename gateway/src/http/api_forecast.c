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

int http_view_exists(struct rconn *rc, const char *name)
{
	sqlite3_stmt *q = rc->q[Q_VIEW_EXISTS];
	int r;

	sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
	r = http_step_reset(q);
	return r == SQLITE_ROW ? 1 : r == SQLITE_DONE ? 0 : -EIO;
}

/* The current row's columns as JSON members "name":value (no braces). */
static void row_members(struct agri_buf *b, sqlite3_stmt *q)
{
	int n = sqlite3_column_count(q);

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
}

/* The current row of q as a JSON object keyed by column name. */
void http_row_json(struct agri_buf *b, sqlite3_stmt *q)
{
	agri_buf_puts(b, "{");
	row_members(b, q);
	agri_buf_puts(b, "}");
}

/* Every row of an ad-hoc query as a JSON object keyed by column name;
 * with site_key, the station in that column also gets its name, district
 * and crops from the config (docs/api.md). */
static int rows_json(struct http_server *srv, struct agri_buf *b, sqlite3_stmt *q,
		     const char *site_key)
{
	int r, n = sqlite3_column_count(q), site_col = -1;
	bool first = true;

	for (int i = 0; site_key && i < n; i++)
		if (strcmp(sqlite3_column_name(q, i), site_key) == 0)
			site_col = i;
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		agri_buf_puts(b, first ? "{" : ",{");
		first = false;
		row_members(b, q);
		if (site_col >= 0 && sqlite3_column_type(q, site_col) == SQLITE_TEXT)
			http_json_site(b, srv, (const char *)sqlite3_column_text(q, site_col));
		agri_buf_puts(b, "}");
	}
	return r;
}

int http_rows_json(struct agri_buf *b, sqlite3_stmt *q)
{
	return rows_json(NULL, b, q, NULL);
}

int http_forecast_doc(struct http_server *srv, struct rconn *rc, const char *station,
		      const char *metric, struct agri_buf *b, char *why, size_t why_len)
{
	sqlite3_stmt *q = NULL;
	int r, have;

	why[0] = '\0';
	if (srv->hooks.forecast) {
		char *doc = malloc(FORECAST_DOC_MAX);
		int n;

		if (!doc)
			return -ENOMEM;
		doc[0] = '\0';
		n = srv->hooks.forecast(srv->hooks.ctx, station, metric, doc, FORECAST_DOC_MAX);
		if (n >= 0 && (size_t)n < FORECAST_DOC_MAX) {
			agri_buf_put(b, doc, (size_t)n);
			free(doc);
			return b->err ? b->err : 0;
		}
		doc[FORECAST_DOC_MAX - 1] = '\0';
		if (n == -ENODATA || n == -ENOENT) {
			snprintf(why, why_len, "%s", doc[0] ? doc : "no data");
			free(doc);
			return -ENODATA;
		}
		free(doc);
		return -EREMOTEIO; /* the hook failed */
	}
	have = http_view_exists(rc, "v_forecasts");
	if (have < 0)
		return -EIO;
	if (!have) {
		snprintf(why, why_len, "this gateway has not computed any");
		return -ENODATA;
	}
	r = sqlite3_prepare_v2(rc->db, "SELECT doc, why FROM v_forecasts WHERE station = ?1"
			       " AND metric = ?2 LIMIT 1", -1, &q, NULL);
	if (r == SQLITE_OK) {
		sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, metric, -1, SQLITE_STATIC);
		r = sqlite3_step(q);
	}
	if (r == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
		agri_buf_put(b, (const char *)sqlite3_column_text(q, 0),
			     (size_t)sqlite3_column_bytes(q, 0));
		sqlite3_finalize(q);
		return b->err ? b->err : 0;
	}
	if (r == SQLITE_ROW || r == SQLITE_DONE) {
		snprintf(why, why_len, "%s",
			 r == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL
				 ? (const char *)sqlite3_column_text(q, 1)
				 : "none computed for this station and metric");
		sqlite3_finalize(q);
		return -ENODATA;
	}
	sqlite3_finalize(q);
	return -EIO;
}

enum MHD_Result http_api_forecast(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"station", "metric", NULL};
	struct params p;
	const char *station, *metric;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	char why[256];
	int r;

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
	/* The hook answers from memory: no read transaction for it. */
	if (!srv->hooks.forecast && http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	r = http_forecast_doc(srv, rc, station, metric, &b, why, sizeof(why));
	if (r == -EIO) {
		int code = sqlite3_errcode(rc->db);

		http_rtx_end(rc);
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, code);
	}
	if (!srv->hooks.forecast)
		http_rtx_end(rc);
	if (r == 0)
		return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
	agri_buf_free(&b);
	if (r == -ENODATA)
		return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "no forecast yet: %s", why);
	if (r == -ENOMEM || r == -ENOSPC)
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "forecast failed");
}

/*
 * An advisory's state at now: "expired" once its sowing window has ended,
 * else "superseded" when a later peak at the same station made a newer
 * one, else "open" (the window is running or still ahead). The view's
 * times are RFC 3339 UTC with milliseconds, so text order is time order.
 */
const char http_advisories_sql[] =
	"SELECT *, CASE WHEN sow_to <= ?2 THEN 'expired'"
	" WHEN peak_at < max(peak_at) OVER (PARTITION BY station) THEN 'superseded'"
	" ELSE 'open' END AS state FROM v_advisories WHERE ?1 IS NULL OR station = ?1";

enum MHD_Result http_api_advisories(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"station", "state", NULL};
	static const char *const states[] = {"open", "expired", "superseded", "all", NULL};
	sqlite3_stmt *q = NULL;
	struct params p;
	const char *station, *state;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	char now[AGRI_TIME_LEN + 1], sql[1024];
	bool known = false;
	int r, have;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	station = http_param(&p, "station");
	if (station && !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad station: expected [A-Za-z0-9_-]{1,32}");
	state = http_param(&p, "state");
	for (const char *const *a = states; state && *a; a++)
		known |= strcmp(*a, state) == 0;
	if (state && !known)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad state: expected open, expired, superseded or all");
	if (state && strcmp(state, "all") == 0)
		state = NULL;
	if (agri_time_format(http_now_ms(), now, sizeof(now)) < 0)
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "clock out of range");
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = http_view_exists(rc, "v_advisories");
	if (have <= 0) {
		http_rtx_end(rc);
		return have < 0 ? http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db))
				: http_send_error(srv, c, MHD_HTTP_NOT_FOUND,
						  "no advisories yet: this gateway has not computed any");
	}
	/* Newest peak first, so the limit drops the oldest. */
	snprintf(sql, sizeof(sql), "SELECT * FROM (%s) WHERE ?3 IS NULL OR state = ?3"
		 " ORDER BY peak_at DESC, station LIMIT 1000", http_advisories_sql);
	r = sqlite3_prepare_v2(rc->db, sql, -1, &q, NULL);
	agri_buf_puts(&b, "{\"advisories\":[");
	if (r == SQLITE_OK) {
		http_bind_opt(q, 1, station);
		sqlite3_bind_text(q, 2, now, -1, SQLITE_STATIC);
		http_bind_opt(q, 3, state);
		r = rows_json(srv, &b, q, "station");
	}
	sqlite3_finalize(q);
	http_rtx_end(rc);
	if (r != SQLITE_DONE) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	agri_buf_printf(&b, "],\"now\":\"%s\"}\n", now);
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
