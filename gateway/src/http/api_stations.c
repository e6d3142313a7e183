/* GET /api/v1/stations: stations, their state and the latest value of each
 * metric (docs/api.md). */
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

/* --- station names (gateway.json "sites") ---------------------------- */

/* The configured site of station, or NULL. Any thread (config is read-only). */
const struct gateway_site *http_site(const struct http_server *srv, const char *station)
{
	for (size_t i = 0; station && i < srv->cfg->sites.n; i++)
		if (strcmp(srv->cfg->sites.site[i].station, station) == 0)
			return &srv->cfg->sites.site[i];
	return NULL;
}

/* Appends ,"name":..,"district":..,"crops":[..] for station: null and []
 * when the config does not name it. */
void http_json_site(struct agri_buf *b, const struct http_server *srv, const char *station)
{
	const struct gateway_site *s = http_site(srv, station);

	agri_buf_puts(b, ",\"name\":");
	agri_buf_json_text(b, s ? s->name : NULL);
	agri_buf_puts(b, ",\"district\":");
	agri_buf_json_text(b, s && s->district[0] ? s->district : NULL);
	agri_buf_puts(b, ",\"crops\":[");
	for (size_t i = 0; s && i < s->n_crops; i++) {
		agri_buf_puts(b, i ? "," : "");
		agri_buf_json_text(b, s->crops[i]);
	}
	agri_buf_puts(b, "]");
}

/* --- GET /api/v1/stations ------------------------------------------ */

enum MHD_Result http_api_stations(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	static const char *const allowed[] = {NULL};
	sqlite3_stmt *qs = rc->q[Q_STATIONS], *ql = rc->q[Q_LATEST];
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	struct params p;
	bool first = true, have_l;
	int r = SQLITE_DONE, rl;

	if (!http_params_read(c, &p, allowed))
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", p.bad);
	if (http_rtx_begin(rc) < 0)
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	agri_buf_puts(&b, "{\"stations\":[");
	/* Both statements are ordered by station: merge them. */
	rl = sqlite3_step(ql);
	have_l = rl == SQLITE_ROW;
	while ((r = sqlite3_step(qs)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(qs, 1);
		bool lf = true;

		agri_buf_puts(&b, first ? "{\"station\":" : ",{\"station\":");
		first = false;
		http_db_col_str(&b, qs, 1);
		http_json_site(&b, srv, name);
		agri_buf_puts(&b, ",\"state\":");
		http_db_col_str(&b, qs, 2);
		agri_buf_puts(&b, ",\"last_seen\":");
		http_db_col_time(&b, qs, 3);
		agri_buf_puts(&b, ",\"last_seq\":");
		http_db_col_int(&b, qs, 4);
		agri_buf_puts(&b, ",\"gaps\":");
		http_db_col_int(&b, qs, 5);
		agri_buf_puts(&b, ",\"fw\":");
		http_db_col_str(&b, qs, 6);
		agri_buf_puts(&b, ",\"board\":");
		http_db_col_str(&b, qs, 7);
		agri_buf_puts(&b, ",\"config_version\":");
		http_db_col_int(&b, qs, 8);
		agri_buf_puts(&b, ",\"spool_depth\":");
		http_db_col_int(&b, qs, 9);
		agri_buf_puts(&b, ",\"maintenance\":");
		if (sqlite3_column_type(qs, 10) == SQLITE_NULL)
			agri_buf_puts(&b, "null");
		else
			agri_buf_puts(&b, sqlite3_column_int(qs, 10) ? "true" : "false");
		agri_buf_puts(&b, ",\"status_at\":");
		http_db_col_time(&b, qs, 11);
		/* Over-the-air updates (docs/update.md) */
		agri_buf_puts(&b, ",\"system\":");
		http_db_col_str(&b, qs, 12);
		agri_buf_puts(&b, ",\"slot\":");
		http_db_col_str(&b, qs, 13);
		agri_buf_puts(&b, ",\"update\":");
		if (sqlite3_column_type(qs, 15) == SQLITE_NULL) {
			agri_buf_puts(&b, "null");
		} else {
			agri_buf_puts(&b, "{\"version\":");
			http_db_col_str(&b, qs, 14);
			agri_buf_puts(&b, ",\"state\":");
			http_db_col_str(&b, qs, 15);
			agri_buf_puts(&b, ",\"error\":");
			http_db_col_str(&b, qs, 16);
			agri_buf_puts(&b, "}");
		}
		agri_buf_puts(&b, ",\"latest\":[");
		/* Both ordered by name, from one snapshot. */
		while (have_l && strcmp((const char *)sqlite3_column_text(ql, 0), name) <= 0) {
			if (strcmp((const char *)sqlite3_column_text(ql, 0), name) == 0) {
				agri_buf_puts(&b, lf ? "{\"sensor\":" : ",{\"sensor\":");
				lf = false;
				http_db_col_str(&b, ql, 1);
				agri_buf_puts(&b, ",\"metric\":");
				http_db_col_str(&b, ql, 2);
				agri_buf_puts(&b, ",\"ts\":");
				http_db_col_time(&b, ql, 3);
				agri_buf_puts(&b, ",\"value\":");
				http_db_col_num(&b, ql, 4);
				agri_buf_puts(&b, ",\"unit\":");
				http_db_col_str(&b, ql, 5);
				agri_buf_printf(&b, ",\"q\":\"%s\"}", http_q_name(sqlite3_column_int(ql, 6)));
			}
			rl = sqlite3_step(ql);
			have_l = rl == SQLITE_ROW;
		}
		agri_buf_puts(&b, "]}");
	}
	sqlite3_reset(qs);
	sqlite3_reset(ql);
	http_rtx_end(rc);
	if (r != SQLITE_DONE || (rl != SQLITE_ROW && rl != SQLITE_DONE)) {
		agri_buf_free(&b);
		return http_send_db_error(srv, c, rc, r != SQLITE_DONE ? r : rl);
	}
	agri_buf_puts(&b, "],\"now\":");
	http_json_time(&b, http_now_ms());
	agri_buf_puts(&b, "}\n");
	return http_send_dbuf(srv, c, MHD_HTTP_OK, "application/json", &b);
}
