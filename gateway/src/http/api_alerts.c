/* GET /api/v1/alerts and POST /api/v1/alerts/{id}/ack (docs/api.md). */
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

/* --- GET /api/v1/alerts ---------------------------------------------- */

/* Who acknowledged an acknowledged alert (the alert's acked_by column,
 * as given in the acknowledgement); null otherwise. */
static void json_acked_by(struct agri_buf *b, const char *state, sqlite3_stmt *qa)
{
	agri_buf_puts(b, ",\"acknowledged_by\":");
	if (strcmp(state, "acknowledged") == 0 && sqlite3_column_type(qa, 12) == SQLITE_TEXT)
		http_db_col_str(b, qa, 12);
	else
		agri_buf_puts(b, "null");
}

/* ,"message_en","message_vi" (null when the alert predates them);
 * ,"late" and, for a late alert, "event_at" (when it happened) and
 * "arrived_at" (when the gateway learned it): docs/alerts.md, Reading
 * order. */
static void json_alert_late(struct agri_buf *b, sqlite3_stmt *qa)
{
	bool late = sqlite3_column_int(qa, 15) != 0;

	agri_buf_puts(b, ",\"message_en\":");
	http_db_col_str(b, qa, 13);
	agri_buf_puts(b, ",\"message_vi\":");
	http_db_col_str(b, qa, 14);
	agri_buf_printf(b, ",\"late\":%s", late ? "true" : "false");
	agri_buf_puts(b, ",\"event_at\":");
	http_db_col_time(b, qa, 16);
	agri_buf_puts(b, ",\"arrived_at\":");
	http_db_col_time(b, qa, 17);
}

/* ,"current":{value, ts, unit, q} (the newest reading of the alert's
 * series, null without one) and ,"raised_value" (the value of its first
 * event since raised_at). Inside the request's read transaction. */
static int json_alert_values(struct agri_buf *b, struct rconn *rc, sqlite3_stmt *qa)
{
	sqlite3_stmt *qc = rc->q[Q_SERIES_NEWEST], *qr = rc->q[Q_RAISED_VALUE];
	int r = SQLITE_DONE;

	agri_buf_puts(b, ",\"current\":");
	if (sqlite3_column_type(qa, 3) == SQLITE_TEXT && sqlite3_column_type(qa, 4) == SQLITE_TEXT) {
		sqlite3_bind_text(qc, 1, (const char *)sqlite3_column_text(qa, 2), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(qc, 2, (const char *)sqlite3_column_text(qa, 3), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(qc, 3, (const char *)sqlite3_column_text(qa, 4), -1, SQLITE_TRANSIENT);
		r = sqlite3_step(qc);
	}
	if (r == SQLITE_ROW) {
		agri_buf_puts(b, "{\"value\":");
		http_db_col_num(b, qc, 0);
		agri_buf_puts(b, ",\"ts\":");
		http_db_col_time(b, qc, 1);
		agri_buf_puts(b, ",\"unit\":");
		http_db_col_str(b, qc, 2);
		agri_buf_printf(b, ",\"q\":\"%s\"}", http_q_name(sqlite3_column_int(qc, 3)));
		r = SQLITE_DONE;
	} else {
		agri_buf_puts(b, "null");
	}
	sqlite3_reset(qc);
	if (r != SQLITE_DONE)
		return r;
	sqlite3_bind_text(qr, 1, (const char *)sqlite3_column_text(qa, 0), -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(qr, 2, sqlite3_column_int64(qa, 9));
	r = sqlite3_step(qr);
	agri_buf_puts(b, ",\"raised_value\":");
	if (r == SQLITE_ROW)
		http_db_col_num(b, qr, 0);
	else
		agri_buf_puts(b, "null");
	sqlite3_reset(qr);
	return r == SQLITE_ROW || r == SQLITE_DONE ? SQLITE_DONE : r;
}

enum MHD_Result http_api_alerts(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {"state", "station", "limit", "history", NULL};
	static const char *const states[] = {"active", "acknowledged", "cleared", "open", "all",
					     NULL};
	sqlite3_stmt *qa = rc->q[Q_ALERTS], *qe = rc->q[Q_EVENTS];
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	struct params p;
	const char *state, *station, *s;
	long limit = ALERTS_LIMIT_DEFAULT, history = EVENTS_PER_ALERT;
	bool known = false, first = true;
	int r, re = SQLITE_DONE;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	state = http_param(&p, "state");
	if (!state)
		state = "all";
	for (const char *const *a = states; *a; a++)
		if (strcmp(*a, state) == 0)
			known = true;
	if (!known)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad state: expected active, acknowledged, cleared, open or all");
	station = http_param(&p, "station");
	if (station && !agri_station_id_valid(station))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad station: expected [A-Za-z0-9_-]{1,32}");
	if ((s = http_param(&p, "limit")) && !http_parse_limit(s, ALERTS_LIMIT_MAX, &limit))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad limit: expected an integer from 1 to %d", ALERTS_LIMIT_MAX);
	if ((s = http_param(&p, "history"))) {
		if (strcmp(s, "0") == 0)
			history = 0;
		else if (!http_parse_limit(s, 1000, &history))
			return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
					       "bad history: expected the number of events per alert, 0 to 1000");
	}
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	sqlite3_bind_text(qa, 1, state, -1, SQLITE_STATIC);
	http_bind_opt(qa, 2, station);
	sqlite3_bind_int64(qa, 3, limit);
	agri_buf_puts(&b, "{\"alerts\":[");
	while (!b.err && (r = sqlite3_step(qa)) == SQLITE_ROW) {
		static const char *const keys[] = {"id", "rule", "station", "sensor", "metric",
						   "severity", "state"};

		agri_buf_puts(&b, first ? "{\"v\":1" : ",{\"v\":1");
		first = false;
		for (int i = 0; i < 7; i++) {
			if ((i == 3 || i == 4) && (sqlite3_column_type(qa, i) == SQLITE_NULL ||
						   !*sqlite3_column_text(qa, i)))
				continue; /* as interfaces.md §5: sensor/metric omitted when none */
			agri_buf_printf(&b, ",\"%s\":", keys[i]);
			http_db_col_str(&b, qa, i);
		}
		agri_buf_puts(&b, ",\"value\":");
		http_db_col_num(&b, qa, 7);
		agri_buf_puts(&b, ",\"threshold\":");
		http_db_col_num(&b, qa, 8);
		agri_buf_puts(&b, ",\"raised_at\":");
		http_db_col_time(&b, qa, 9);
		agri_buf_puts(&b, ",\"updated_at\":");
		http_db_col_time(&b, qa, 10);
		agri_buf_puts(&b, ",\"message\":");
		http_db_col_str(&b, qa, 11);
		http_json_site(&b, srv, (const char *)sqlite3_column_text(qa, 2));
		json_acked_by(&b, (const char *)sqlite3_column_text(qa, 6), qa);
		json_alert_late(&b, qa);
		if ((re = json_alert_values(&b, rc, qa)) != SQLITE_DONE) {
			r = re;
			break;
		}
		if (history > 0) {
			bool ef = true;

			agri_buf_puts(&b, ",\"events\":[");
			sqlite3_bind_text(qe, 1, (const char *)sqlite3_column_text(qa, 0), -1,
					  SQLITE_TRANSIENT);
			sqlite3_bind_int64(qe, 2, history);
			while ((re = sqlite3_step(qe)) == SQLITE_ROW) {
				agri_buf_puts(&b, ef ? "{\"state\":" : ",{\"state\":");
				ef = false;
				http_db_col_str(&b, qe, 0);
				agri_buf_puts(&b, ",\"severity\":");
				http_db_col_str(&b, qe, 1);
				agri_buf_puts(&b, ",\"value\":");
				http_db_col_num(&b, qe, 2);
				agri_buf_puts(&b, ",\"at\":");
				http_db_col_time(&b, qe, 3);
				agri_buf_puts(&b, "}");
			}
			sqlite3_reset(qe);
			agri_buf_puts(&b, "]");
			if (re != SQLITE_DONE) {
				r = re;
				break;
			}
		}
		agri_buf_puts(&b, "}");
	}
	sqlite3_reset(qa);
	sqlite3_clear_bindings(qa);
	http_rtx_end(rc);
	if (r != SQLITE_DONE && !b.err) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	agri_buf_puts(&b, "]}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}

/* --- POST /api/v1/alerts/{id}/ack ------------------------------------ */

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

enum MHD_Result http_api_ack(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	const char *id = k->id;
	const struct req *rq = k->rq;
	struct http_ack_result res;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	const char *why = NULL;
	char who[64];
	int rc;

	if (rq->too_big)
		return http_send_error(srv, c, MHD_HTTP_CONTENT_TOO_LARGE, "body over %d bytes",
				       BODY_MAX);
	if (!alert_id_valid(id))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
				       "bad alert id: expected <rule>/<station>[/<sensor>], '/' as %%2F");
	if (ack_body_who(rq, who, sizeof(who), &why) < 0)
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", why);
	if (!srv->hooks.ack_alert)
		return http_send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE,
				       "no alert engine in this gateway (rules_file not set?)");
	memset(&res, 0, sizeof(res));
	rc = srv->hooks.ack_alert(srv->hooks.ctx, id, who, &res);
	switch (rc) {
	case 0:
		break;
	case -ENOENT:
		return http_send_error(srv, c, MHD_HTTP_NOT_FOUND, "unknown alert: %s", id);
	case -EINVAL:
		return http_send_error(srv, c, MHD_HTTP_CONFLICT,
				       "alert %s cannot be acknowledged in its state", id);
	case -EBUSY:
	case -EAGAIN:
		return http_send_error(srv, c, MHD_HTTP_SERVICE_UNAVAILABLE, "alert engine busy, try again");
	default:
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "acknowledgement failed: %s",
				       strerror(-rc));
	}
	res.state[sizeof(res.state) - 1] = '\0';
	log_info(LOG, "alert acknowledged id=%s by=%s changed=%d", id, who, (int)res.changed);
	agri_buf_puts(&b, "{\"id\":");
	agri_buf_json_text(&b, id);
	agri_buf_puts(&b, ",\"state\":");
	agri_buf_json_text(&b, res.state[0] ? res.state : "acknowledged");
	agri_buf_puts(&b, ",\"by\":");
	agri_buf_json_text(&b, who);
	agri_buf_printf(&b, ",\"changed\":%s}\n", res.changed ? "true" : "false");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
