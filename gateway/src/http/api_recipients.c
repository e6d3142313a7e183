/*
 * GET /api/v1/recipients (docs/api.md): who receives what. The people of
 * the recipients file as the gateway's policy published them at start
 * (notify_people: what each follows, how they are reached, masked), with
 * the messages each got per local day over the last 7 days and their last
 * bulletin (notify_message). A gateway without people answers an empty
 * list.
 */
#include <sqlite3.h>
#include <string.h>

#include "gateway/policy.h"
#include "http/http_int.h"

#define DAYS 7

enum MHD_Result http_api_recipients(const struct http_call *k)
{
	static const char *const allowed[] = {NULL};
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	sqlite3_stmt *q = NULL, *d = NULL, *l = NULL;
	int64_t now = http_now_ms(), today = 0;
	struct params p;
	int r = SQLITE_DONE, n = 0;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	agri_buf_puts(&b, "{\"recipients\":[");
	/* notify_message.day is the policy's local day (recipients'
	 * utc_offset_min, recorded with the people) */
	if (http_view_exists(rc, "notify_people") > 0 &&
	    (r = sqlite3_prepare_v2(rc->db, "SELECT coalesce((SELECT v FROM notify_meta"
				    " WHERE k = 'utc_offset_min'), 420)", -1, &q, NULL)) == SQLITE_OK &&
	    (r = sqlite3_step(q)) == SQLITE_ROW) {
		today = policy_local_day(now, sqlite3_column_int64(q, 0));
		r = SQLITE_DONE;
	}
	sqlite3_finalize(q);
	q = NULL;
	if (r == SQLITE_DONE && http_view_exists(rc, "notify_people") > 0 &&
	    (r = sqlite3_prepare_v2(rc->db, "SELECT person, doc FROM notify_people ORDER BY person",
				    -1, &q, NULL)) == SQLITE_OK &&
	    (r = sqlite3_prepare_v2(rc->db, "SELECT date(day * 86400, 'unixepoch'), day,"
				    " sum(kind != 'bulletin'), sum(kind = 'bulletin') FROM notify_message"
				    " WHERE person = ? AND day > ? GROUP BY day ORDER BY day", -1, &d,
				    NULL)) == SQLITE_OK &&
	    (r = sqlite3_prepare_v2(rc->db, "SELECT id, at, text_vi, text_en, sms FROM notify_message"
				    " WHERE person = ? AND kind = 'bulletin' ORDER BY at DESC LIMIT 1",
				    -1, &l, NULL)) == SQLITE_OK) {
		while ((r = sqlite3_step(q)) == SQLITE_ROW) {
			const char *doc = (const char *)sqlite3_column_text(q, 1);
			int64_t n_today = 0;
			size_t len = doc ? strlen(doc) : 0;
			int m = 0;

			if (len < 2 || doc[len - 1] != '}')
				continue; /* not a document policy_publish_people() wrote */
			/* the published document, without its closing brace */
			agri_buf_puts(&b, n++ ? "," : "");
			agri_buf_put(&b, doc, len - 1);
			agri_buf_puts(&b, ",\"days\":[");
			sqlite3_bind_text(d, 1, (const char *)sqlite3_column_text(q, 0), -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(d, 2, today - DAYS);
			while ((r = sqlite3_step(d)) == SQLITE_ROW) {
				agri_buf_puts(&b, m++ ? ",{\"day\":" : "{\"day\":");
				http_db_col_str(&b, d, 0);
				agri_buf_printf(&b, ",\"messages\":%lld,\"bulletins\":%lld}",
						sqlite3_column_int64(d, 2), sqlite3_column_int64(d, 3));
				if (sqlite3_column_int64(d, 1) == today)
					n_today = sqlite3_column_int64(d, 2);
			}
			sqlite3_reset(d);
			if (r != SQLITE_DONE)
				break;
			agri_buf_printf(&b, "],\"today\":%lld,\"last_bulletin\":", (long long)n_today);
			sqlite3_bind_text(l, 1, (const char *)sqlite3_column_text(q, 0), -1, SQLITE_TRANSIENT);
			if ((r = sqlite3_step(l)) == SQLITE_ROW) {
				agri_buf_puts(&b, "{\"id\":");
				http_db_col_str(&b, l, 0);
				agri_buf_puts(&b, ",\"at\":");
				http_db_col_time(&b, l, 1);
				agri_buf_puts(&b, ",\"text_vi\":");
				http_db_col_str(&b, l, 2);
				agri_buf_puts(&b, ",\"text_en\":");
				http_db_col_str(&b, l, 3);
				agri_buf_puts(&b, ",\"sms\":");
				http_db_col_str(&b, l, 4);
				agri_buf_puts(&b, "}");
				r = SQLITE_DONE;
			} else {
				agri_buf_puts(&b, "null");
			}
			sqlite3_reset(l);
			if (r != SQLITE_DONE)
				break;
			agri_buf_puts(&b, "}");
		}
	}
	sqlite3_finalize(q);
	sqlite3_finalize(d);
	sqlite3_finalize(l);
	http_rtx_end(rc);
	if (r != SQLITE_DONE) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r);
	}
	agri_buf_puts(&b, "],\"now\":");
	http_json_time(&b, now);
	agri_buf_puts(&b, "}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
