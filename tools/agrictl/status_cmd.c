/*
 * `agrictl status ID... | --all`: a station's health in one command, from
 * the broker's retained status (docs/interfaces.md §2.1) and alert topics
 * (§5), and with --db the hub's database (last seen, clock offset, the
 * newest battery readings: docs/interfaces.md §6). Online or offline since
 * when, firmware and config versions (a config on probation, the last one
 * that failed its probation and why), maintenance, the spool and its
 * oldest unacked batch, each bus and each sensor with its last error, the
 * open alerts. --json prints the same facts for scripts. Single thread.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/exit.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "hub.h"
#include "msgs.h"

#define STATIONS_MAX 512
#define ALERTS_MAX 64

static const char *const cmd = "status";

struct station_view {
	char name[AGRI_ID_MAX + 1];
	bool requested, have_status;
	struct agri_status s;
	cJSON *raw;                     /* the status as published */
	size_t n_alerts;
	struct agri_alert alerts[ALERTS_MAX];
	/* From the hub's database (--db). */
	bool in_db;
	char db_state[16], last_seen[40];
	double clock_offset_s;
	bool has_offset;
	size_t n_batt;
	struct {
		char metric[AGRI_ID_MAX + 1], unit[AGRI_UNIT_MAX + 1], ts[40];
		double value;
	} batt[4];
};

/* A gateway's retained status, <prefix>/hub/<client id>/status (published
 * every minute; with two hubs bridged, both reach either broker). */
#define HUBS_MAX 8
#define HUB_SILENT_MS (3 * 60000) /* three missed statuses */

struct hub_view {
	char id[AGRI_ID_MAX + 1], state[16], fw[32], alarm[96];
	int64_t ts_ms;
	bool db_writable;
	double queue_depth, readings_stored;
};

struct status_run {
	struct hub_opts hub;
	const char *db;
	bool all, json;
	struct station_view *v;
	size_t n;
	struct hub_view hubs[HUBS_MAX];
	size_t n_hubs;
};

static void usage(FILE *f)
{
	fputs("usage: agrictl status (ID... | --all) [--broker URL] [--username U --password-file F]\n"
	      "       [--ca-file CA] [--topic-prefix P] [--db GATEWAY.db] [--json]\n"
	      "  a station's health: online or offline since when, firmware and config versions\n"
	      "  (on probation, or the last one rolled back and why), maintenance, the spool and\n"
	      "  its oldest unacked batch, each bus and sensor with its last error, open alerts;\n"
	      "  from the broker's retained status and alerts (the agrictl account reads them)\n"
	      "  --all          every station with a retained status, and first the hubs: each\n"
	      "                 gateway's own status (with two hubs both), and which stations\n"
	      "                 are on which hub\n"
	      "  --db FILE      also the hub's database (read-only): last seen, clock offset,\n"
	      "                 the newest battery readings\n"
	      "exit 0, 1 when a station has no status (never connected, or another prefix)\n", f);
}

static struct station_view *view(struct status_run *r, const char *name, bool create)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->v[i].name, name))
			return &r->v[i];
	if (!create || r->n == STATIONS_MAX)
		return NULL;
	memset(&r->v[r->n], 0, sizeof(r->v[0]));
	snprintf(r->v[r->n].name, sizeof(r->v[0].name), "%s", name);
	return &r->v[r->n++];
}

/* <prefix>/<station>/status */
static void on_status(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct status_run *r = ctx;
	struct station_view *sv;
	struct agri_status *s;
	struct agri_err e;
	cJSON *raw = NULL;

	if (!len)
		return;
	s = malloc(sizeof(*s));
	if (!s)
		return;
	if (agri_status_decode(payload, len, s, &e) == 0 &&
	    (sv = view(r, s->station, r->all)) != NULL) {
		(void)topic;
		sv->s = *s;
		sv->have_status = true;
		agri_json_parse(payload, len, 64 * 1024, AGRI_JSON_DEPTH_MAX, &raw, &e);
		cJSON_Delete(sv->raw);
		sv->raw = raw;
	}
	free(s);
}

static void copy_text(char *dst, size_t len, const cJSON *o, const char *key)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
	size_t i = 0;

	if (cJSON_IsString(it))
		for (const char *p = it->valuestring; *p && i + 1 < len; p++)
			dst[i++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
	dst[i] = '\0';
}

/* <prefix>/hub/<client id>/status: what the broker holds, untrusted. */
static void on_hub(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct status_run *r = ctx;
	struct hub_view h = {0};
	const cJSON *it;
	struct agri_err e;
	cJSON *o = NULL;

	(void)topic;
	if (!len || r->n_hubs == HUBS_MAX ||
	    agri_json_parse(payload, len, 16 * 1024, AGRI_JSON_DEPTH_MAX, &o, &e) < 0)
		return;
	copy_text(h.id, sizeof(h.id), o, "hub");
	copy_text(h.state, sizeof(h.state), o, "state");
	copy_text(h.fw, sizeof(h.fw), o, "fw");
	it = cJSON_GetObjectItemCaseSensitive(o, "ts");
	if (!h.id[0] || !cJSON_IsString(it) || agri_time_parse(it->valuestring, &h.ts_ms) < 0) {
		cJSON_Delete(o);
		return;
	}
	h.db_writable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "db_writable"));
	it = cJSON_GetObjectItemCaseSensitive(o, "alarm");
	if (cJSON_IsObject(it))
		copy_text(h.alarm, sizeof(h.alarm), it, "error");
	it = cJSON_GetObjectItemCaseSensitive(o, "queue_depth");
	h.queue_depth = cJSON_IsNumber(it) ? it->valuedouble : -1;
	it = cJSON_GetObjectItemCaseSensitive(o, "readings_stored");
	h.readings_stored = cJSON_IsNumber(it) ? it->valuedouble : -1;
	r->hubs[r->n_hubs++] = h;
	cJSON_Delete(o);
}

/* <prefix>/alerts/<station>/<rule>[/<sensor>] */
static void on_alert(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct status_run *r = ctx;
	struct station_view *sv;
	struct agri_alert a;
	struct agri_err e;

	(void)topic;
	if (!len || agri_alert_decode(payload, len, &a, &e) < 0)
		return;
	sv = view(r, a.station, false);
	if (sv && sv->n_alerts < ALERTS_MAX)
		sv->alerts[sv->n_alerts++] = a;
}

/* The hub's view from its database (read-only). 0 or 1 (printed). */
static int read_db(struct status_run *r)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *qs = NULL, *qb = NULL;
	int rc;

	rc = sqlite3_open_v2(r->db, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT state, last_seen, clock_offset_s FROM v_stations"
					" WHERE station = ?1", -1, &qs, NULL);
	/* The newest reading of each battery series: the store's own tables,
	 * keyed for it (v_readings would scan every reading). */
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db,
			"SELECT se.metric, r.value, r.unit,"
			" strftime('%Y-%m-%dT%H:%M:%SZ', r.ts / 1000.0, 'unixepoch')"
			" FROM stations st JOIN series se ON se.station_id = st.id"
			" JOIN readings r ON r.series_id = se.id"
			" AND r.ts = (SELECT max(ts) FROM readings WHERE series_id = se.id)"
			" WHERE st.name = ?1 AND se.metric IN ('battery_voltage', 'battery_soc')"
			" AND r.value IS NOT NULL ORDER BY se.metric", -1, &qb, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, T("agrictl: --db %s: %s\n"), r->db,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_finalize(qs);
		sqlite3_close(db);
		return 1;
	}
	sqlite3_busy_timeout(db, 2000);
	for (size_t i = 0; i < r->n; i++) {
		struct station_view *sv = &r->v[i];

		sqlite3_bind_text(qs, 1, sv->name, -1, SQLITE_STATIC);
		if (sqlite3_step(qs) == SQLITE_ROW) {
			sv->in_db = true;
			snprintf(sv->db_state, sizeof(sv->db_state), "%s",
				 (const char *)sqlite3_column_text(qs, 0) ?: "");
			snprintf(sv->last_seen, sizeof(sv->last_seen), "%s",
				 (const char *)sqlite3_column_text(qs, 1) ?: "");
			sv->has_offset = sqlite3_column_type(qs, 2) != SQLITE_NULL;
			sv->clock_offset_s = sqlite3_column_double(qs, 2);
		}
		sqlite3_reset(qs);
		sqlite3_bind_text(qb, 1, sv->name, -1, SQLITE_STATIC);
		while (sqlite3_step(qb) == SQLITE_ROW && sv->n_batt < 4) {
			snprintf(sv->batt[sv->n_batt].metric, AGRI_ID_MAX + 1, "%s",
				 (const char *)sqlite3_column_text(qb, 0));
			sv->batt[sv->n_batt].value = sqlite3_column_double(qb, 1);
			snprintf(sv->batt[sv->n_batt].unit, AGRI_UNIT_MAX + 1, "%s",
				 (const char *)sqlite3_column_text(qb, 2) ?: "");
			snprintf(sv->batt[sv->n_batt].ts, 40, "%s",
				 (const char *)sqlite3_column_text(qb, 3) ?: "");
			sv->n_batt++;
		}
		sqlite3_reset(qb);
	}
	sqlite3_finalize(qs);
	sqlite3_finalize(qb);
	sqlite3_close(db);
	return 0;
}

/* "2026-11-22T15:04:05Z" */
static const char *when(int64_t ms, char *buf, size_t len)
{
	char t[AGRI_TIME_LEN + 1];

	if (!ms) {
		snprintf(buf, len, "?");
		return buf;
	}
	agri_time_format(ms, t, sizeof(t));
	snprintf(buf, len, "%.19sZ", t);
	return buf;
}

/* "3 h 4 min" */
static const char *span(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		s = -s;
	if (s < 120)
		snprintf(buf, len, T("%" PRId64 " s"), s);
	else if (s < 2 * 3600)
		snprintf(buf, len, T("%" PRId64 " min"), s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, len, T("%" PRId64 " h %" PRId64 " min"), s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, T("%" PRId64 " days %" PRId64 " h"), s / 86400, s % 86400 / 3600);
	return buf;
}

static void print_sensor(const struct agri_sensor_health *h)
{
	char a[40], b[40];
	int64_t now = util_now_ms();
	bool failing = h->last_error_ms && h->last_error_ms >= h->last_ok_ms;

	printf(T("  sensor %s (%s): "), h->name, h->profile[0] ? h->profile : "?");
	if (h->maintenance)
		printf("%s; ", T("in maintenance"));
	if (!h->reads_ok && !h->reads_failed)
		printf("%s", T("not polled yet"));
	else if (failing)
		printf(T("FAILING: %s (at %s; last good read %s)"), h->last_error[0] ? h->last_error : "?",
		       when(h->last_error_ms, a, sizeof(a)),
		       h->last_ok_ms ? when(h->last_ok_ms, b, sizeof(b)) : T("never"));
	else
		printf(T("ok, last good read %s (%s ago)"), when(h->last_ok_ms, a, sizeof(a)),
		       span((now - h->last_ok_ms) / 1000, b, sizeof(b)));
	printf(T("; %" PRIu64 " good, %" PRIu64 " failed (%" PRIu64 " timeouts, %" PRIu64
		 " CRC errors, %" PRIu64 " exceptions)\n"), h->reads_ok, h->reads_failed, h->timeouts,
	       h->crc_errors, h->exceptions);
	if (!failing && h->last_error[0])
		printf(T("    its last error, at %s: %s\n"), when(h->last_error_ms, a, sizeof(a)),
		       h->last_error);
}

static void print_view(const struct station_view *sv)
{
	const struct agri_status *s = &sv->s;
	char a[40], b[40], c[40];
	int64_t now = util_now_ms();

	if (!sv->have_status) {
		printf(T("%s: no status on the broker (never connected, or another topic prefix?)\n"),
		       sv->name);
		return;
	}
	if (s->online && s->ts_ms)
		printf(T("%s: online since %s (up %s; status of %s)\n"), s->station,
		       when(s->ts_ms - (int64_t)s->uptime_s * 1000, a, sizeof(a)),
		       span((int64_t)s->uptime_s, b, sizeof(b)), when(s->ts_ms, c, sizeof(c)));
	else if (s->online)
		printf(T("%s: online\n"), s->station);
	else if (s->ts_ms)
		printf(T("%s: OFFLINE since %s (%s ago; it stopped cleanly)\n"), s->station,
		       when(s->ts_ms, a, sizeof(a)), span((now - s->ts_ms) / 1000, b, sizeof(b)));
	else
		printf(T("%s: OFFLINE: its link dropped (the Last Will)%s%s\n"), s->station,
		       sv->last_seen[0] ? T("; last seen by the hub ") : "",
		       sv->last_seen[0] ? sv->last_seen : "");
	if (s->fw[0] || s->config_version || s->config_signed_by[0])
		printf(T("  firmware %s on %s; config version %" PRId64 "%s%s\n"), s->fw[0] ? s->fw : "?",
		       s->board[0] ? s->board : "?", s->config_version,
		       s->config_signed_by[0] ? T(", signed by ") : T(" (the local file)"),
		       s->config_signed_by);
	if (s->broker[0]) /* a station with broker.urls says which hub it is on */
		printf(T("  connected to hub %s\n"), s->broker);
	if (s->probation_version)
		printf(T("  config version %" PRId64 " on probation: applied once every bus opens "
			 "and every sensor answers\n"), s->probation_version);
	if (s->config_failed_version)
		printf(T("  config version %" PRId64 " failed its probation at %s and was rolled back: "
			 "%s\n"), s->config_failed_version, when(s->config_failed_ms, a, sizeof(a)),
		       s->config_failed_error);
	if (s->maintenance)
		printf("  %s\n", T("MAINTENANCE: readings are q \"maint\", no alert fires on them"));
	if (s->online || s->ts_ms) {
		printf(T("  spool: %" PRIu64 " batch(es) waiting for the hub's ack"), s->spool_depth);
		if (s->spool_oldest_ms)
			printf(T(", the oldest sealed %s (%s ago)"), when(s->spool_oldest_ms, a, sizeof(a)),
			       span((now - s->spool_oldest_ms) / 1000, b, sizeof(b)));
		printf(T("; %" PRIu64 " dropped; last seq %" PRIu64 "\n"), s->spool_dropped, s->last_seq);
	}
	if (sv->in_db) {
		printf(T("  hub: last seen %s"), sv->last_seen[0] ? sv->last_seen : "?");
		if (sv->has_offset)
			printf(T(", clock offset %+.1f s"), sv->clock_offset_s);
		putchar('\n');
	}
	if (sv->n_batt) {
		printf("  %s", T("battery:"));
		for (size_t i = 0; i < sv->n_batt; i++)
			printf("%s %.2f %s", i ? "," : "", sv->batt[i].value, sv->batt[i].unit);
		printf(T(" (at %s)\n"), sv->batt[0].ts);
	}
	for (size_t i = 0; i < s->n_buses; i++) {
		const struct agri_bus_health *bh = &s->buses[i];

		if (bh->open)
			printf(T("  bus %s: open since %s\n"), bh->name, when(bh->since_ms, a, sizeof(a)));
		else
			printf(T("  bus %s: DOWN since %s: %s\n"), bh->name, when(bh->since_ms, a, sizeof(a)),
			       bh->error[0] ? bh->error : T("not opened yet"));
	}
	for (size_t i = 0; i < s->n_sensors; i++)
		print_sensor(&s->sensors[i]);
	if (!sv->n_alerts) {
		printf("  %s\n", T("alerts: none open"));
		return;
	}
	printf(T("  alerts: %zu open\n"), sv->n_alerts);
	for (size_t i = 0; i < sv->n_alerts; i++) {
		const struct agri_alert *al = &sv->alerts[i];

		printf("    %-8s %-12s %s %s %s: %s\n", al->severity, agri_alert_state_name(al->state),
		       al->id, T("since"), when(al->raised_at_ms, a, sizeof(a)), al->message);
	}
}

/* The hubs, and which stations are on which (with two hubs, docs/ha.md):
 * a hub whose status has not been refreshed for three minutes is down, or
 * its broker is, or the link between the hubs. */
static void print_hubs(const struct status_run *r)
{
	struct {
		const char *url;
		size_t n;
	} on[HUBS_MAX * 2];
	size_t n_on = 0, other = 0;
	int64_t now = util_now_ms();
	char a[40], b[40];

	printf(T("hubs: %zu\n"), r->n_hubs);
	for (size_t i = 0; i < r->n_hubs; i++) {
		const struct hub_view *h = &r->hubs[i];
		int64_t age = (now - h->ts_ms) / 1000;

		if (strcmp(h->state, "online") != 0) /* its Last Will (ha), or a clean stop */
			printf(T("  hub %s: OFFLINE (%s, from its broker: the gateway stopped or lost"
				 " its connection; set at its connect of %s)\n"),
			       h->id, h->state[0] ? h->state : "?", when(h->ts_ms, b, sizeof(b)));
		else if (now - h->ts_ms > HUB_SILENT_MS)
			printf(T("  hub %s: NOT HEARD for %s (last status %s): down, or its broker, or the"
				 " link between the hubs\n"),
			       h->id, span(age, a, sizeof(a)), when(h->ts_ms, b, sizeof(b)));
		else
			printf(T("  hub %s: %s, heard %s ago (%s); database %s; %.0f message(s) waiting;"
				 " %.0f readings stored since it started\n"),
			       h->id, h->state, span(age, a, sizeof(a)), h->fw[0] ? h->fw : "?",
			       h->db_writable ? T("writable") : T("NOT WRITABLE"), h->queue_depth,
			       h->readings_stored);
		if (h->alarm[0])
			printf(T("    hub alarm: %s\n"), h->alarm);
	}
	for (size_t i = 0; i < r->n; i++) {
		const char *url = r->v[i].have_status ? r->v[i].s.broker : "";
		size_t k;

		if (!url[0]) {
			other++;
			continue;
		}
		for (k = 0; k < n_on && strcmp(on[k].url, url); k++)
			;
		if (k == n_on) {
			if (n_on == AGRI_ARRAY_SIZE(on)) {
				other++;
				continue;
			}
			on[n_on].url = url;
			on[n_on++].n = 0;
		}
		on[k].n++;
	}
	if (n_on) {
		printf("%s", T("stations by the hub they are on:"));
		for (size_t k = 0; k < n_on; k++)
			printf(" %s %zu%s", on[k].url, on[k].n, k + 1 < n_on ? "," : "");
		if (other)
			printf(T(", not saying %zu"), other);
		putchar('\n');
	}
	putchar('\n');
}

static void print_json(const struct status_run *r)
{
	cJSON *out = cJSON_CreateArray();
	char *text;

	for (size_t i = 0; i < r->n; i++) {
		const struct station_view *sv = &r->v[i];
		cJSON *o = cJSON_CreateObject(), *al;

		cJSON_AddStringToObject(o, "station", sv->name);
		if (sv->raw)
			cJSON_AddItemReferenceToObject(o, "status", sv->raw);
		else
			cJSON_AddNullToObject(o, "status");
		al = cJSON_AddArrayToObject(o, "alerts");
		for (size_t k = 0; k < sv->n_alerts; k++) {
			char buf[2048];
			cJSON *a = NULL;
			struct agri_err e;
			int n = agri_alert_encode(&sv->alerts[k], buf, sizeof(buf));

			if (n > 0 && agri_json_parse(buf, (size_t)n, sizeof(buf), AGRI_JSON_DEPTH_MAX, &a,
						     &e) == 0)
				cJSON_AddItemToArray(al, a);
		}
		if (sv->in_db) {
			cJSON *h = cJSON_AddObjectToObject(o, "hub");

			cJSON_AddStringToObject(h, "state", sv->db_state);
			if (sv->last_seen[0])
				cJSON_AddStringToObject(h, "last_seen", sv->last_seen);
			if (sv->has_offset)
				cJSON_AddNumberToObject(h, "clock_offset_s", sv->clock_offset_s);
			for (size_t k = 0; k < sv->n_batt; k++) {
				cJSON *b = cJSON_AddObjectToObject(h, sv->batt[k].metric);

				cJSON_AddNumberToObject(b, "value", sv->batt[k].value);
				cJSON_AddStringToObject(b, "unit", sv->batt[k].unit);
				cJSON_AddStringToObject(b, "ts", sv->batt[k].ts);
			}
		}
		cJSON_AddItemToArray(out, o);
	}
	text = cJSON_Print(out);
	if (text)
		printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(out);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct station_view *)a)->name, ((const struct station_view *)b)->name);
}

int agrictl_status(int argc, char **argv)
{
	static const struct option opts[] = {
		HUB_LONG_OPTS, {"all", no_argument, 0, 'a'}, {"db", required_argument, 0, 'd'},
		{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
	struct status_run r = {0};
	char topic[AGRI_TOPIC_MAX + 8];
	MQTTClient c = NULL;
	int ch, rc, missing = 0;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (hub_opt(&r.hub, ch, optarg))
			continue;
		switch (ch) {
		case 'a': r.all = true; break;
		case 'd': r.db = optarg; break;
		case 'j': r.json = true; break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	hub_defaults(&r.hub);
	if (r.all == (optind < argc))
		return cli_usage(cmd, "%s", T("give station ids, or --all"));
	if (!agri_topic_prefix_valid(r.hub.prefix))
		return cli_usage(cmd, T("--topic-prefix: invalid prefix \"%s\""), r.hub.prefix);
	r.v = calloc(STATIONS_MAX, sizeof(*r.v));
	if (!r.v)
		return 1;
	for (int i = optind; i < argc; i++) {
		if (!agri_station_id_valid(argv[i])) {
			free(r.v);
			return cli_usage(cmd, T("\"%s\" is not a station id"), argv[i]);
		}
		view(&r, argv[i], true)->requested = true;
	}
	if ((rc = hub_connect(&r.hub, &c)) != 0)
		goto out;
	rc = 0;
	if (r.all) {
		snprintf(topic, sizeof(topic), "%s/+/status", r.hub.prefix);
		hub_collect(c, topic, 700, 5000, on_status, &r);
		snprintf(topic, sizeof(topic), "%s/alerts/#", r.hub.prefix);
		hub_collect(c, topic, 500, 5000, on_alert, &r);
		snprintf(topic, sizeof(topic), "%s/hub/+/status", r.hub.prefix);
		hub_collect(c, topic, 300, 3000, on_hub, &r);
	} else {
		for (size_t i = 0; i < r.n; i++) {
			snprintf(topic, sizeof(topic), "%s/%s/status", r.hub.prefix, r.v[i].name);
			hub_collect(c, topic, 500, 3000, on_status, &r);
			snprintf(topic, sizeof(topic), "%s/alerts/%s/#", r.hub.prefix, r.v[i].name);
			hub_collect(c, topic, 400, 3000, on_alert, &r);
		}
	}
	if (r.all)
		qsort(r.v, r.n, sizeof(*r.v), by_name);
	if (r.db && read_db(&r) != 0) {
		rc = 1;
		goto out;
	}
	if (r.json) {
		print_json(&r);
	} else {
		if (r.all)
			print_hubs(&r);
		for (size_t i = 0; i < r.n; i++) {
			print_view(&r.v[i]);
			if (i + 1 < r.n)
				putchar('\n');
		}
	}
	for (size_t i = 0; i < r.n; i++)
		missing += !r.v[i].have_status;
	if (r.all && !r.n)
		fprintf(stderr, T("agrictl: no station status on %s under %s/\n"), r.hub.broker,
			r.hub.prefix);
	rc = missing || !r.n ? 1 : 0;
out:
	hub_close(&c);
	for (size_t i = 0; i < r.n; i++)
		cJSON_Delete(r.v[i].raw);
	free(r.v);
	return rc;
}
