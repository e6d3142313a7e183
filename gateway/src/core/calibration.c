/*
 * Calibrations and "calibration due" (see calibration.h).
 */
#include "core/calibration.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/store.h"

#define LOG "calibration"
#define CHECK_EVERY_MS 60000 /* the gateway's clock */
#define DAY_MS 86400000.0

const char *const calibration_schema =
	"CREATE TABLE IF NOT EXISTS calibrations("
	" id INTEGER PRIMARY KEY, station TEXT NOT NULL, sensor TEXT NOT NULL,"
	" metric TEXT NOT NULL, standard REAL, unit TEXT NOT NULL DEFAULT '',"
	" before REAL, after REAL, method TEXT NOT NULL, written TEXT,"
	" by TEXT NOT NULL, at INTEGER NOT NULL, note TEXT);"
	"CREATE INDEX IF NOT EXISTS calibrations_by_sensor ON calibrations(station, sensor, at);"
	"CREATE VIEW IF NOT EXISTS v_calibrations AS SELECT id, station, sensor, metric,"
	" standard, unit, before, after, method, written, by,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', at / 1000.0, 'unixepoch') AS at, note"
	" FROM calibrations;";

struct calibration {
	struct ingest *in;
	double interval_days; /* 0: off */
	int64_t next_check_ms;
	struct ingest_hook hook;
};

/* What is due at one station, gathered for one event. */
struct due_station {
	char station[AGRI_ID_MAX + 1];
	char detail_en[256], detail_vi[256];
	size_t len_en, len_vi;
	double worst_days;
};

static void add_sensor(struct due_station *d, const char *sensor, int64_t last_ms,
		       double interval, int64_t now_ms)
{
	char ts[AGRI_TIME_LEN + 1];
	double ago = (double)(now_ms - last_ms) / DAY_MS;
	int n;

	agri_time_format(last_ms, ts, sizeof(ts));
	if (ago - interval > d->worst_days)
		d->worst_days = ago - interval;
	if (d->len_en < sizeof(d->detail_en)) {
		n = snprintf(d->detail_en + d->len_en, sizeof(d->detail_en) - d->len_en,
			     "%s%s last calibrated %.10s, %.0f days ago", d->len_en ? "; " : "",
			     sensor, ts, floor(ago));
		d->len_en += n > 0 ? (size_t)n : 0;
	}
	if (d->len_vi < sizeof(d->detail_vi)) {
		n = snprintf(d->detail_vi + d->len_vi, sizeof(d->detail_vi) - d->len_vi,
			     "%s%s hiệu chuẩn lần cuối %.2s/%.2s/%.4s, %.0f ngày trước",
			     d->len_vi ? "; " : "", sensor, ts + 8, ts + 5, ts, floor(ago));
		d->len_vi += n > 0 ? (size_t)n : 0;
	}
}

static int raise_due(struct calibration *c, struct due_station *d, int64_t now_ms)
{
	struct ingest_event ev = {.kind = INGEST_EV_CALIBRATION, .station = d->station,
				  .value = d->worst_days, .at_ms = now_ms};

	/* The engine prefixes "Station X " / "Trạm X ". */
	snprintf(ev.detail_en, sizeof(ev.detail_en), "needs calibrating (every %g days): %.200s",
		 c->interval_days, d->detail_en);
	snprintf(ev.detail_vi, sizeof(ev.detail_vi), "cần hiệu chuẩn (mỗi %g ngày): %.190s",
		 c->interval_days, d->detail_vi);
	return ingest_raise_event(c->in, &ev);
}

/* The sensors whose last calibration is older than the interval, one
 * event per station. Writer thread, in the tick's transaction. */
static int on_tick(void *ctx, struct store *st, int64_t now_ms)
{
	struct calibration *c = ctx;
	struct due_station d = {0};
	sqlite3_stmt *q = NULL;
	int rc;

	if (c->interval_days <= 0 || now_ms < c->next_check_ms)
		return 0;
	c->next_check_ms = now_ms + CHECK_EVERY_MS;
	rc = sqlite3_prepare_v2(store_db(st),
				"SELECT station, sensor, max(at) AS last FROM calibrations"
				" GROUP BY station, sensor HAVING last < ?1"
				" ORDER BY station, sensor", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		log_warn(LOG, "cannot read calibrations: %s", sqlite3_errmsg(store_db(st)));
		return 0; /* not the ingest's failure: try again next time */
	}
	sqlite3_bind_int64(q, 1, now_ms - (int64_t)llround(c->interval_days * DAY_MS));
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *station = (const char *)sqlite3_column_text(q, 0);
		const char *sensor = (const char *)sqlite3_column_text(q, 1);

		if (!station || !sensor || !agri_station_id_valid(station))
			continue;
		if (d.station[0] && strcmp(d.station, station)) {
			if ((rc = raise_due(c, &d, now_ms)) < 0)
				goto out;
			memset(&d, 0, sizeof(d));
		}
		snprintf(d.station, sizeof(d.station), "%s", station);
		add_sensor(&d, sensor, sqlite3_column_int64(q, 2), c->interval_days, now_ms);
	}
	rc = d.station[0] ? raise_due(c, &d, now_ms) : 0;
out:
	sqlite3_finalize(q);
	return rc < 0 ? rc : 0;
}

struct calibration *calibration_new(const struct gateway_config *cfg, struct store *st,
				    struct ingest *in, int *err)
{
	struct calibration *c = calloc(1, sizeof(*c));
	char *msg = NULL;
	int rc;

	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	rc = sqlite3_exec(store_db(st), calibration_schema, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_error(LOG, "cannot create the calibrations table: %s", msg ? msg : "?");
		sqlite3_free(msg);
		free(c);
		*err = agri_sqlite_errno(rc);
		return NULL;
	}
	c->in = in;
	c->interval_days = cfg->calibration.interval_days;
	c->hook = (struct ingest_hook){.name = "calibration", .ctx = c, .on_tick = on_tick};
	return c;
}

const struct ingest_hook *calibration_hook(struct calibration *c)
{
	return &c->hook;
}

void calibration_free(struct calibration *c)
{
	free(c);
}
