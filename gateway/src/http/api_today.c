/*
 * GET /api/v1/today: the dashboard's first screen in one small answer
 * (docs/api.md, docs/dashboard.md). Per water station: its newest ok
 * salinity, how fast it moved over the last hour, and the intake windows
 * of its forecast that have not ended (docs/interfaces.md §13's own `windows`,
 * so the times are the forecast API's). Per light trap: its catch per
 * night (brown planthoppers, other classes) over the last week (?nights=N,
 * up to 60) and its newest pest advisory with its state. One read transaction; the forecast documents come from the
 * forecast hook (memory) or the v_forecasts view, as /api/v1/forecast.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/json.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/http_int.h"

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define LOCAL_OFFSET_MS (7 * HOUR_MS) /* Vietnam time, no daylight saving */
/* A trap's night ends at the morning's lamp-off, 06:00 local, as the peak
 * and rising rules count it by default (docs/alerts.md, night_end_h). */
#define NIGHT_END_MS (6 * HOUR_MS)
#define TREND_MS HOUR_MS              /* salinity change measured over */
#define TREND_GAP_MS (3 * HOUR_MS)    /* ... from a reading no older than */
#define NIGHTS_DEFAULT 7
#define NIGHTS_MAX 60

/* "YYYY-MM-DD" of a local day number (days since 1970-01-01, local). */
static void day_text(int64_t day, char *buf, size_t len)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

/* ,"station":..,name..,"state":..,"last_seen":.. from Q_TODAY_KINDS' row. */
static void station_head(struct agri_buf *b, struct http_server *srv, sqlite3_stmt *q,
			 const char *name)
{
	agri_buf_puts(b, "{\"station\":");
	agri_buf_json_text(b, name);
	http_json_site(b, srv, name);
	agri_buf_puts(b, ",\"state\":");
	http_db_col_str(b, q, 1);
	agri_buf_puts(b, ",\"last_seen\":");
	http_db_col_time(b, q, 2);
}

/* The forecast's times and the windows that end after now_ms, from the
 * interfaces.md §13 document doc; ,"forecast":null,"forecast_why":.. without one. */
static int water_forecast(struct agri_buf *b, struct http_server *srv, struct rconn *rc,
			  const char *station, const char *now)
{
	struct agri_buf doc = AGRI_BUF_HEAP(FORECAST_DOC_MAX);
	struct agri_err err = {0};
	cJSON *root = NULL, *w, *pts;
	char why[256];
	bool first = true;
	int r;

	r = http_forecast_doc(srv, rc, station, "salinity", &doc, why, sizeof(why));
	if (r == -EIO)
		goto out;
	if (r < 0) { /* one station's missing or failed forecast fails nothing else */
		if (r != -ENODATA)
			snprintf(why, sizeof(why), "forecast failed: %s", strerror(-r));
		agri_buf_puts(b, ",\"forecast\":null,\"forecast_why\":");
		agri_buf_json_text(b, why);
		r = 0;
		goto out;
	}
	if (agri_json_parse(doc.p, doc.len, FORECAST_DOC_MAX, 16, &root, &err) < 0 ||
	    !cJSON_IsObject(root)) {
		agri_buf_puts(b, ",\"forecast\":null,\"forecast_why\":\"unreadable forecast\"");
		goto out;
	}
	agri_buf_puts(b, ",\"forecast\":{\"made_at\":");
	agri_buf_json_text(b, cJSON_GetStringValue(cJSON_GetObjectItem(root, "made_at")));
	agri_buf_puts(b, ",\"from_data_until\":");
	agri_buf_json_text(b, cJSON_GetStringValue(cJSON_GetObjectItem(root, "from_data_until")));
	pts = cJSON_GetObjectItem(root, "points");
	agri_buf_puts(b, ",\"until\":");
	agri_buf_json_text(b, cJSON_IsArray(pts) && cJSON_GetArraySize(pts) > 0
		? cJSON_GetStringValue(cJSON_GetObjectItem(
			  cJSON_GetArrayItem(pts, cJSON_GetArraySize(pts) - 1), "ts"))
		: NULL);
	agri_buf_puts(b, ",\"windows\":[");
	cJSON_ArrayForEach(w, cJSON_GetObjectItem(root, "windows")) {
		const cJSON *below = cJSON_GetObjectItem(w, "below");
		const char *from = cJSON_GetStringValue(cJSON_GetObjectItem(w, "from"));
		const char *to = cJSON_GetStringValue(cJSON_GetObjectItem(w, "to"));

		if (!cJSON_IsNumber(below) || !from || !to || strcmp(to, now) <= 0)
			continue;
		agri_buf_puts(b, first ? "{\"below\":" : ",{\"below\":");
		first = false;
		http_json_num(b, below->valuedouble);
		agri_buf_puts(b, ",\"from\":");
		agri_buf_json_text(b, from);
		agri_buf_puts(b, ",\"to\":");
		agri_buf_json_text(b, to);
		agri_buf_puts(b, "}");
	}
	agri_buf_puts(b, "]},\"forecast_why\":null");
out:
	cJSON_Delete(root);
	agri_buf_free(&doc);
	return r;
}

/* ,"salinity":{sensor, ts, value},"trend_per_h":.. (g/L per hour over the
 * last TREND_MS; null without a reading to compare with). */
static int water_now(struct agri_buf *b, struct rconn *rc, const char *station)
{
	sqlite3_stmt *qn = rc->q[Q_SAL_NEWEST], *qb = rc->q[Q_SAL_BEFORE];
	int64_t series, ts;
	double v;
	int r;

	sqlite3_bind_text(qn, 1, station, -1, SQLITE_STATIC);
	r = sqlite3_step(qn);
	if (r != SQLITE_ROW) {
		sqlite3_reset(qn);
		agri_buf_puts(b, ",\"salinity\":null,\"trend_per_h\":null");
		return r == SQLITE_DONE ? SQLITE_DONE : r;
	}
	series = sqlite3_column_int64(qn, 0);
	ts = sqlite3_column_int64(qn, 2);
	v = sqlite3_column_double(qn, 3);
	agri_buf_puts(b, ",\"salinity\":{\"sensor\":");
	http_db_col_str(b, qn, 1);
	agri_buf_puts(b, ",\"ts\":");
	http_json_time(b, ts);
	agri_buf_puts(b, ",\"value\":");
	http_json_num(b, v);
	agri_buf_puts(b, "},\"trend_per_h\":");
	sqlite3_reset(qn);
	sqlite3_bind_int64(qb, 1, series);
	sqlite3_bind_int64(qb, 2, ts - TREND_MS);
	r = sqlite3_step(qb);
	if (r == SQLITE_ROW && ts - sqlite3_column_int64(qb, 0) <= TREND_GAP_MS)
		http_json_num(b, (v - sqlite3_column_double(qb, 1)) /
				    ((double)(ts - sqlite3_column_int64(qb, 0)) / HOUR_MS));
	else
		agri_buf_puts(b, "null");
	sqlite3_reset(qb);
	return r == SQLITE_ROW || r == SQLITE_DONE ? SQLITE_DONE : r;
}

/* ,"night":"D","nights":[{night, bph, other}] for the n nights up to
 * tonight (the night of today, local, from 06:00 to 06:00 the next
 * morning, lamp-off to lamp-off): brown planthoppers and
 * the other classes caught; null when the trap sent no count that night. */
static int trap_nights(struct agri_buf *b, struct rconn *rc, const char *station,
		       int64_t now_ms, int n)
{
	sqlite3_stmt *q = rc->q[Q_BPH_NIGHTS];
	int64_t tonight = (now_ms + LOCAL_OFFSET_MS - NIGHT_END_MS) / DAY_MS;
	int64_t first = tonight - (n - 1);
	double bph[NIGHTS_MAX], other[NIGHTS_MAX];
	bool have_bph[NIGHTS_MAX] = {false}, have_other[NIGHTS_MAX] = {false};
	char day[16];
	int r;

	sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, first * DAY_MS + NIGHT_END_MS - LOCAL_OFFSET_MS);
	while ((r = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t i = sqlite3_column_int64(q, 0);

		if (i < 0 || i >= n)
			continue;
		if ((have_bph[i] = sqlite3_column_type(q, 1) != SQLITE_NULL))
			bph[i] = sqlite3_column_double(q, 1);
		if ((have_other[i] = sqlite3_column_type(q, 2) != SQLITE_NULL))
			other[i] = sqlite3_column_double(q, 2);
	}
	sqlite3_reset(q);
	if (r != SQLITE_DONE)
		return r;
	day_text(tonight, day, sizeof(day));
	agri_buf_printf(b, ",\"night\":\"%s\",\"nights\":[", day);
	for (int i = 0; i < n; i++) {
		day_text(first + i, day, sizeof(day));
		agri_buf_printf(b, "%s{\"night\":\"%s\",\"bph\":", i ? "," : "", day);
		if (have_bph[i])
			http_json_num(b, bph[i]);
		else
			agri_buf_puts(b, "null");
		agri_buf_puts(b, ",\"other\":");
		if (have_other[i])
			http_json_num(b, other[i]);
		else
			agri_buf_puts(b, "null");
		agri_buf_puts(b, "}");
	}
	agri_buf_puts(b, "]");
	return SQLITE_DONE;
}

/* ,"advisory":{... the newest advisory of the station, with its state} or
 * null; qa is http_advisories_sql's newest-first query (or NULL: no view). */
static int trap_advisory(struct agri_buf *b, sqlite3_stmt *qa, const char *station,
			 const char *now)
{
	int r;

	agri_buf_puts(b, ",\"advisory\":");
	if (!qa) {
		agri_buf_puts(b, "null");
		return SQLITE_DONE;
	}
	sqlite3_bind_text(qa, 1, station, -1, SQLITE_STATIC);
	sqlite3_bind_text(qa, 2, now, -1, SQLITE_STATIC);
	r = sqlite3_step(qa);
	if (r == SQLITE_ROW)
		http_row_json(b, qa);
	else
		agri_buf_puts(b, "null");
	sqlite3_reset(qa);
	return r == SQLITE_ROW || r == SQLITE_DONE ? SQLITE_DONE : r;
}

enum MHD_Result http_api_today(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"nights", NULL};
	sqlite3_stmt *qk = rc->q[Q_TODAY_KINDS], *qa = NULL;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	struct params p;
	int64_t now_ms = http_now_ms();
	char now[AGRI_TIME_LEN + 1], sql[1024];
	const char *s;
	long nights = NIGHTS_DEFAULT;
	int r = SQLITE_DONE, fr = 0, have;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	if ((s = http_param(&p, "nights")) && !http_parse_limit(s, NIGHTS_MAX, &nights))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad nights: expected an integer from 1 to %d", NIGHTS_MAX);
	if (agri_time_format(now_ms, now, sizeof(now)) < 0)
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "clock out of range");
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	have = http_view_exists(rc, "v_advisories");
	if (have > 0) {
		snprintf(sql, sizeof(sql), "SELECT * FROM (%s) ORDER BY peak_at DESC LIMIT 1",
			 http_advisories_sql);
		if ((r = sqlite3_prepare_v2(rc->db, sql, -1, &qa, NULL)) != SQLITE_OK)
			goto db_fail;
	} else if (have < 0) {
		r = sqlite3_errcode(rc->db);
		goto db_fail;
	}
	agri_buf_printf(&b, "{\"now\":\"%s\",\"water\":[", now);
	for (int pass = 0; pass < 2; pass++) {
		bool first = true;

		if (pass == 1)
			agri_buf_puts(&b, "],\"traps\":[");
		while ((r = sqlite3_step(qk)) == SQLITE_ROW && !b.err) {
			const char *name = (const char *)sqlite3_column_text(qk, 0);
			bool water = sqlite3_column_int(qk, 3), trap = sqlite3_column_int(qk, 4);

			if (!(pass == 0 ? water : trap))
				continue;
			agri_buf_puts(&b, first ? "" : ",");
			first = false;
			station_head(&b, srv, qk, name);
			if (pass == 0) {
				if ((r = water_now(&b, rc, name)) != SQLITE_DONE)
					break;
				if ((fr = water_forecast(&b, srv, rc, name, now)) < 0)
					break;
			} else {
				if ((r = trap_nights(&b, rc, name, now_ms, (int)nights)) != SQLITE_DONE ||
				    (r = trap_advisory(&b, qa, name, now)) != SQLITE_DONE)
					break;
			}
			agri_buf_puts(&b, "}");
		}
		sqlite3_reset(qk);
		if (fr < 0 || (r != SQLITE_DONE && r != SQLITE_ROW))
			break;
	}
	if (fr < 0)
		r = sqlite3_errcode(rc->db);
	if (fr < 0 || (r != SQLITE_DONE && r != SQLITE_ROW))
		goto db_fail;
	sqlite3_finalize(qa);
	http_rtx_end(rc);
	agri_buf_puts(&b, "]}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
db_fail:
	sqlite3_finalize(qa);
	http_rtx_end(rc);
	agri_buf_free(&b);
	return http_send_db_error(srv, c, rc, r);
}
