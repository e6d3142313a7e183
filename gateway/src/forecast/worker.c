/*
 * Forecasts and advisories inside the gateway (see forecasting.h).
 * Locking rules: `mu` guards stations[] (names, dirty flags, the cached
 * documents) and `stop`; the worker thread alone uses `ro` (its read-only
 * connection) and the fit buffers; the pending list of advisory
 * publications and the statements on the writer's connection belong to
 * the ingest writer thread (hook callbacks, ingest_call functions).
 */
#include "forecast/forecasting.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "agri/sqlite_errno.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "forecast/model.h"
#include "notify/outbox.h"
#include "core/store.h"

#define LOG "forecast"
#define STATIONS_MAX 1024
#define DOC_MAX (64 * 1024)
#define ADVISORY_DOC_MAX 2048
#define PENDING_MAX 64
#define DAY_MS 86400000LL
#define UTC_OFFSET_MS (7 * 3600000LL)

struct fc_station {
	char name[AGRI_ID_MAX + 1];
	bool dirty;          /* new ok salinity readings since the last fit */
	bool in_txn;         /* ... in the writer's open transaction */
	int64_t fitted_mono; /* when it was last fitted (0: never) */
	char *doc;           /* the interfaces.md §13 document, or NULL */
	size_t doc_len;
	char why[FORECAST_WHY_MAX];
};

struct fc_sluice {
	char station[AGRI_ID_MAX + 1];
	double below_g_l;
	double min_level_m; /* NAN: salinity only */
};

struct pending_adv {
	char topic[AGRI_TOPIC_MAX];
	char *doc;
	size_t len;
};

struct forecasting {
	struct ingest *in;
	struct store *st;
	char db_path[4096];
	char prefix[65];
	struct ingest_hook hook;
	struct forecast_params params;
	struct advisory_params adv;
	const char *channels[GW_WEBHOOKS_MAX + 2]; /* told of new windows, advisories */
	size_t n_channels;
	bool quiet; /* history import: store, don't notify */

	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stop, started;
	pthread_t thread;
	struct fc_station *stations;
	size_t n_stations;

	struct fc_sluice *sluices; /* from gateway.json's sites */
	size_t n_sluices;
	struct forecast_params level_params;

	/* worker thread */
	sqlite3 *ro;
	struct forecast_sample *samples;
	struct forecast fc;
	struct forecast level_fc; /* the station's water level, when it has one */

	/* writer thread */
	struct pending_adv pending[PENDING_MAX];
	size_t n_pending;
	bool txn_salinity;   /* some station's in_txn is set */
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS forecasts("
	" station TEXT NOT NULL, metric TEXT NOT NULL, made_at INTEGER NOT NULL,"
	" data_until INTEGER, doc TEXT, why TEXT, PRIMARY KEY(station, metric));"
	"CREATE TABLE IF NOT EXISTS forecast_windows("
	" station TEXT NOT NULL, metric TEXT NOT NULL, below REAL NOT NULL,"
	" from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS forecast_windows_by_station ON forecast_windows(station, metric);"
	"CREATE TABLE IF NOT EXISTS advisories("
	" id TEXT PRIMARY KEY, station TEXT NOT NULL, kind TEXT NOT NULL,"
	" peak_at INTEGER NOT NULL, sow_from INTEGER NOT NULL, sow_to INTEGER NOT NULL,"
	" hatch_from INTEGER NOT NULL, hatch_to INTEGER NOT NULL, count REAL,"
	" message TEXT NOT NULL, created_at INTEGER NOT NULL, late INTEGER NOT NULL DEFAULT 0);"
	"DROP VIEW IF EXISTS v_forecasts;"
	"CREATE VIEW v_forecasts AS SELECT station, metric,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', made_at / 1000.0, 'unixepoch') AS made_at, doc, why"
	" FROM forecasts;"
	"DROP VIEW IF EXISTS v_forecast_windows;"
	"CREATE VIEW v_forecast_windows AS SELECT station, metric, below,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', from_ms / 1000.0, 'unixepoch') AS window_from,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', to_ms / 1000.0, 'unixepoch') AS window_to"
	" FROM forecast_windows;"
	"DROP VIEW IF EXISTS v_advisories;"
	"CREATE VIEW v_advisories AS SELECT id, station, kind,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', peak_at / 1000.0, 'unixepoch') AS peak_at,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', sow_from / 1000.0, 'unixepoch') AS sow_from,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', sow_to / 1000.0, 'unixepoch') AS sow_to,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', hatch_from / 1000.0, 'unixepoch') AS hatch_from,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', hatch_to / 1000.0, 'unixepoch') AS hatch_to,"
	" message, late FROM advisories;";

/* Finds or adds a station (mu held). NULL when the table is full. */
static struct fc_station *station_get(struct forecasting *f, const char *name, bool add)
{
	for (size_t i = 0; i < f->n_stations; i++)
		if (strcmp(f->stations[i].name, name) == 0)
			return &f->stations[i];
	if (!add || f->n_stations == STATIONS_MAX)
		return NULL;
	memset(&f->stations[f->n_stations], 0, sizeof(f->stations[0]));
	snprintf(f->stations[f->n_stations].name, sizeof(f->stations[0].name), "%s", name);
	return &f->stations[f->n_stations++];
}

/* --- notifications ---------------------------------------------------------- */

static void local_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)((ms + UTC_OFFSET_MS) / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%d/%m %H:%M", &tm);
}

/* Stages a notification shaped like an alert (interfaces.md §5) on the forecast's
 * channels, inside the writer's transaction. rule/sensor make its id. */
static int notify_stage(struct forecasting *f, sqlite3 *db, const char *rule,
			const char *station, const char *sensor, double value, double threshold,
			int64_t at_ms, const char *en, const char *vi)
{
	struct agri_alert al;
	struct outbox_notice no = {.alert = &al, .event = "raised", .text_en = en, .text_vi = vi};

	if (!f->n_channels || f->quiet)
		return 0;
	memset(&al, 0, sizeof(al));
	snprintf(al.rule, sizeof(al.rule), "%s", rule);
	snprintf(al.station, sizeof(al.station), "%s", station);
	snprintf(al.sensor, sizeof(al.sensor), "%s", sensor ? sensor : "");
	snprintf(al.id, sizeof(al.id), "%s/%s%s%s", rule, station, sensor ? "/" : "",
		 sensor ? sensor : "");
	snprintf(al.metric, sizeof(al.metric), "%s",
		 strcmp(rule, "advisory") == 0 ? "insect_count" : "salinity");
	snprintf(al.severity, sizeof(al.severity), "info");
	al.state = AGRI_ALERT_ACTIVE;
	al.value = value;
	al.has_value = true;
	al.threshold = threshold;
	al.has_threshold = threshold > 0;
	al.raised_at_ms = al.updated_at_ms = at_ms;
	snprintf(al.message, sizeof(al.message), "%s / %s", vi, en);
	return outbox_stage(db, &no, f->channels, f->n_channels) < 0 ? -EIO : 0;
}

/* --- ingest hook (writer thread) ---------------------------------------- */

static int on_telemetry(void *ctx, struct store *st, const struct agri_telemetry *t,
			const bool *fresh, int64_t received_ms)
{
	struct forecasting *f = ctx;
	bool any = false;

	(void)st;
	(void)received_ms;
	for (size_t i = 0; i < t->n && !any; i++)
		any = fresh[i] && t->readings[i].q == AGRI_Q_OK && t->readings[i].has_value &&
		      strcmp(t->readings[i].metric, "salinity") == 0;
	if (any) {
		struct fc_station *s;

		/* Dirty only once committed: a fit that read the database
		 * before the commit would miss these readings, and nothing
		 * would ask for another fit until FORECASTING_MAX_AGE_MS. */
		pthread_mutex_lock(&f->mu);
		if ((s = station_get(f, t->station, true))) {
			s->in_txn = true;
			f->txn_salinity = true;
		}
		pthread_mutex_unlock(&f->mu);
	}
	return 0;
}

/* Commit (dirty = true) or rollback (dirty unchanged) of the stations
 * marked in the transaction. Writer thread. */
static void txn_end(struct forecasting *f, bool committed)
{
	if (!f->txn_salinity)
		return;
	f->txn_salinity = false;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->n_stations; i++) {
		struct fc_station *s = &f->stations[i];

		s->dirty |= committed && s->in_txn;
		s->in_txn = false;
	}
	pthread_mutex_unlock(&f->mu);
}

static void pending_clear(struct forecasting *f)
{
	for (size_t i = 0; i < f->n_pending; i++)
		free(f->pending[i].doc);
	f->n_pending = 0;
}

static void on_commit(void *ctx)
{
	struct forecasting *f = ctx;

	txn_end(f, true);
	for (size_t i = 0; i < f->n_pending; i++)
		ingest_publish_later(f->in, f->pending[i].topic, f->pending[i].doc,
				     f->pending[i].len, true);
	pending_clear(f);
	pthread_cond_signal(&f->wake);
}

static void on_rollback(void *ctx)
{
	txn_end(ctx, false);
	pending_clear(ctx);
}

int forecasting_on_peak(void *ctx, const char *station, int64_t night_day, double count,
			bool late)
{
	struct forecasting *f = ctx;
	struct advisory a;
	sqlite3 *db = store_db(f->st);
	sqlite3_stmt *q;
	char doc[ADVISORY_DOC_MAX];
	/* The peak night starts at 18:00 local on night_day. */
	int64_t peak_at = night_day * DAY_MS + 18 * 3600000LL - UTC_OFFSET_MS;
	int rc, n;

	if ((rc = advisory_make(station, peak_at, &f->adv, &a)) < 0)
		return 0; /* not an advisory we can express: keep the alert */
	rc = sqlite3_prepare_v2(db,
				"INSERT OR IGNORE INTO advisories(id, station, kind, peak_at, sow_from,"
				" sow_to, hatch_from, hatch_to, count, message, created_at, late)"
				" VALUES(?,?,?,?,?,?,?,?,?,?,?,?)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, a.id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, a.station, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, a.kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 4, a.peak_at_ms);
	sqlite3_bind_int64(q, 5, a.sow_from_ms);
	sqlite3_bind_int64(q, 6, a.sow_to_ms);
	sqlite3_bind_int64(q, 7, a.hatch_from_ms);
	sqlite3_bind_int64(q, 8, a.hatch_to_ms);
	sqlite3_bind_double(q, 9, count);
	sqlite3_bind_text(q, 10, a.message, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 11, util_now_ms());
	sqlite3_bind_int(q, 12, late);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if (sqlite3_changes(db) == 0)
		return 0; /* the same peak again: one advisory */
	log_info(LOG, "advisory id=%s sow_from=%lld hatch_from=%lld%s", a.id,
		 (long long)a.sow_from_ms, (long long)a.hatch_from_ms, late ? " late=1" : "");
	if (late && a.sow_to_ms <= util_now_ms()) {
		/* A peak found in a station's late data whose sowing window has
		 * passed: recorded (state expired, late), not a call to action. */
		log_info(LOG, "advisory id=%s arrived after its sowing window: recorded, not sent",
			 a.id);
		return 0;
	}
	{
		char from[32], to[32], hf[32], ht[32], en[512], vi[512];

		local_time(a.sow_from_ms, from, sizeof(from));
		local_time(a.sow_to_ms, to, sizeof(to));
		local_time(a.hatch_from_ms, hf, sizeof(hf));
		local_time(a.hatch_to_ms, ht, sizeof(ht));
		snprintf(en, sizeof(en), "Planthopper peak at %s: sow from %.5s to %.5s; the next "
			 "generation hatches %.5s to %.5s", station, from, to, hf, ht);
		snprintf(vi, sizeof(vi), "Đỉnh rầy nâu tại %s: gieo sạ né rầy từ %.5s đến %.5s; "
			 "lứa rầy mới nở %.5s đến %.5s", station, from, to, hf, ht);
		if ((rc = notify_stage(f, db, "advisory", station, NULL, count, 0, util_now_ms(),
				       en, vi)) < 0)
			return rc;
	}
	n = advisory_encode(&a, doc, sizeof(doc));
	if (n > 0 && f->n_pending < PENDING_MAX) {
		struct pending_adv *p = &f->pending[f->n_pending];

		if (agri_topic_build(p->topic, sizeof(p->topic), f->prefix, AGRI_TOPIC_ADVISORY,
				     station) >= 0 && (p->doc = malloc((size_t)n))) {
			memcpy(p->doc, doc, (size_t)n);
			p->len = (size_t)n;
			f->n_pending++;
		}
	}
	return 0;
}

/* --- the worker ----------------------------------------------------------- */

/* The station's series of metric with the newest reading (worker thread). */
static int load_samples(struct forecasting *f, const char *station, const char *metric,
			size_t *n_out)
{
	sqlite3_stmt *q = NULL;
	int64_t series = -1, newest = 0, since;
	size_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(f->ro,
				"SELECT se.id, (SELECT max(ts) FROM readings r WHERE r.series_id = se.id)"
				" AS newest FROM series se JOIN stations st ON st.id = se.station_id"
				" WHERE st.name = ? AND se.metric = ? ORDER BY newest DESC LIMIT 1",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, metric, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_type(q, 1) != SQLITE_NULL) {
		series = sqlite3_column_int64(q, 0);
		newest = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	if (series < 0) {
		*n_out = 0;
		return 0;
	}
	since = newest - (int64_t)(f->params.fit_days_max * DAY_MS);
	rc = sqlite3_prepare_v2(f->ro,
				"SELECT ts, value FROM readings WHERE series_id = ? AND ts >= ?"
				" AND q = 0 AND value IS NOT NULL ORDER BY ts", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_int64(q, 1, series);
	sqlite3_bind_int64(q, 2, since);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < FORECAST_SAMPLES_MAX) {
		f->samples[n].ts_ms = sqlite3_column_int64(q, 0);
		f->samples[n].value = sqlite3_column_double(q, 1);
		n++;
	}
	sqlite3_finalize(q);
	*n_out = n;
	return 0;
}

struct save_req {
	struct forecasting *f;
	const char *station;
	const struct forecast *fc; /* NULL: no forecast (why) */
	const char *doc, *why;
	int64_t made_at;
};

/* The tide stage's words (docs/delta.md §2), English and Vietnamese. */
static void tide_words(enum forecast_tide t, const char **en, const char **vi)
{
	static const char *const words[][2] = {
		[FORECAST_TIDE_RISING] = {"rising tide", "triều lên"},
		[FORECAST_TIDE_HIGH] = {"high water", "đỉnh triều"},
		[FORECAST_TIDE_FALLING] = {"falling tide", "triều xuống"},
		[FORECAST_TIDE_LOW] = {"low water", "chân triều"},
	};

	*en = *vi = NULL;
	if (t > FORECAST_TIDE_UNKNOWN && t <= FORECAST_TIDE_LOW) {
		*en = words[t][0];
		*vi = words[t][1];
	}
}

/* "Fresh-water intake window at DT-W03: salinity below 0.7 g/L and level
 * above 1.2 m from ... to ... (forecast; opens at rising tide)". */
static void window_text(const char *station, const struct forecast_window *w,
			const char *from, const char *to, char *en, size_t en_len,
			char *vi, size_t vi_len)
{
	char lvl_en[64] = "", lvl_vi[64] = "", tide_en[64] = "", tide_vi[64] = "";
	const char *te, *tv;

	if (w->sluice && w->level_gated) {
		snprintf(lvl_en, sizeof(lvl_en), " and level above %.2f m", w->min_level_m);
		snprintf(lvl_vi, sizeof(lvl_vi), " và mực nước trên %.2f m", w->min_level_m);
	}
	tide_words(w->tide, &te, &tv);
	if (te) {
		snprintf(tide_en, sizeof(tide_en), "; opens at %s", te);
		snprintf(tide_vi, sizeof(tide_vi), "; mở lúc %s", tv);
	}
	snprintf(en, en_len, "%s at %s: salinity below %g g/L%s from %s to %s (forecast%s)",
		 w->sluice ? "Sluice intake window" : "Fresh-water intake window", station,
		 w->below, lvl_en, from, to, tide_en);
	snprintf(vi, vi_len, "%s tại %s: độ mặn dưới %g g/L%s từ %s đến %s (dự báo%s)",
		 w->sluice ? "Khung giờ mở cống lấy nước" : "Khung giờ lấy nước ngọt", station,
		 w->below, lvl_vi, from, to, tide_vi);
}

/* Notifies each window of the new forecast that overlaps none of the
 * previous forecast's windows for the same threshold: a window that
 * "opens". Writer thread, before the old windows are replaced. */
static int notify_new_windows(struct save_req *r, sqlite3 *db)
{
	sqlite3_stmt *q;
	double notified_below = -1;
	int rc;

	if (!r->fc || !r->f->n_channels)
		return 0;
	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM forecast_windows WHERE station = ?"
				" AND metric = 'salinity' AND below = ? AND from_ms < ? AND to_ms > ?",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	for (size_t i = 0; i < r->fc->n_windows; i++) {
		const struct forecast_window *w = &r->fc->windows[i];
		char from[32], to[32], en[512], vi[512], sensor[AGRI_ID_MAX + 1];
		int seen = 1;

		/* the next new window of each threshold only (windows are sorted
		 * by threshold, then time) */
		if (i > 0 && r->fc->windows[i - 1].below == w->below && notified_below == w->below)
			continue;
		sqlite3_bind_text(q, 1, r->station, -1, SQLITE_STATIC);
		sqlite3_bind_double(q, 2, w->below);
		sqlite3_bind_int64(q, 3, w->to_ms);
		sqlite3_bind_int64(q, 4, w->from_ms);
		if (sqlite3_step(q) == SQLITE_ROW)
			seen = sqlite3_column_int(q, 0);
		sqlite3_reset(q);
		if (seen)
			continue;
		local_time(w->from_ms, from, sizeof(from));
		local_time(w->to_ms, to, sizeof(to));
		snprintf(sensor, sizeof(sensor), "%s-%d", w->sluice ? "sluice" : "below",
			 (int)(w->below * 1000 + 0.5));
		window_text(r->station, w, from, to, en, sizeof(en), vi, sizeof(vi));
		if ((rc = notify_stage(r->f, db, "intake-window", r->station, sensor, w->below,
				       w->below, r->made_at, en, vi)) < 0)
			break;
		notified_below = w->below;
	}
	sqlite3_finalize(q);
	return rc < 0 ? rc : 0;
}

static int save_fn(void *ctx, struct ingest *in, struct store *st)
{
	struct save_req *r = ctx;
	sqlite3 *db = store_db(st);
	sqlite3_stmt *q;
	int rc;

	(void)in;
	rc = sqlite3_prepare_v2(db,
				"INSERT OR REPLACE INTO forecasts(station, metric, made_at, data_until, doc, why)"
				" VALUES(?, 'salinity', ?, ?, ?, ?)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, r->station, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, r->made_at);
	if (r->fc)
		sqlite3_bind_int64(q, 3, r->fc->data_until_ms);
	if (r->doc)
		sqlite3_bind_text(q, 4, r->doc, -1, SQLITE_STATIC);
	if (r->why)
		sqlite3_bind_text(q, 5, r->why, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if ((rc = notify_new_windows(r, db)) < 0)
		return rc;
	rc = sqlite3_prepare_v2(db, "DELETE FROM forecast_windows WHERE station = ? AND metric = 'salinity'",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, r->station, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if (!r->fc)
		return 0;
	rc = sqlite3_prepare_v2(db, "INSERT INTO forecast_windows(station, metric, below, from_ms, to_ms)"
				" VALUES(?, 'salinity', ?, ?, ?)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	for (size_t i = 0; i < r->fc->n_windows && rc == SQLITE_OK; i++) {
		sqlite3_bind_text(q, 1, r->station, -1, SQLITE_STATIC);
		sqlite3_bind_double(q, 2, r->fc->windows[i].below);
		sqlite3_bind_int64(q, 3, r->fc->windows[i].from_ms);
		sqlite3_bind_int64(q, 4, r->fc->windows[i].to_ms);
		rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
		sqlite3_reset(q);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_OK ? 0 : agri_sqlite_errno(rc);
}

/*
 * The station's water level, when it reports one, forecast with the same
 * model: it names the tide stage of each window and the high and low
 * waters, and gates a sluice's windows (docs/forecast.md "Sluices and
 * tides"). A sluice that needs a level gets no windows without one.
 */
static void add_tides(struct forecasting *f, const char *station)
{
	const struct fc_sluice *sl = NULL;
	char why[FORECAST_WHY_MAX] = "";
	bool level = false;
	size_t n = 0;

	for (size_t i = 0; i < f->n_sluices && !sl; i++)
		if (strcmp(f->sluices[i].station, station) == 0)
			sl = &f->sluices[i];
	if (load_samples(f, station, "water_level", &n) == 0 && n > 0)
		level = forecast_fit(f->samples, n, &f->level_params, &f->level_fc, why,
				     sizeof(why)) == 0;
	else
		snprintf(why, sizeof(why), "no water_level readings");
	if (level)
		forecast_tide_label(&f->fc, &f->level_fc);
	if (!sl)
		return;
	if (!isnan(sl->min_level_m) && !level) {
		snprintf(f->fc.note, sizeof(f->fc.note),
			 "no sluice windows: they need a water-level forecast (%.100s)", why);
		return;
	}
	if (forecast_sluice_windows(&f->fc, level ? &f->level_fc : NULL, sl->below_g_l,
				    sl->min_level_m, &f->params) == -ENOSPC)
		log_warn(LOG, "too many windows station=%s: the last ones left out", station);
}

static void fit_station(struct forecasting *f, const char *station)
{
	char why[FORECAST_WHY_MAX] = "", topic[AGRI_TOPIC_MAX];
	char *doc = NULL;
	int64_t made_at = util_now_ms(), t0 = util_mono_ms();
	size_t n = 0;
	int rc, len = 0;
	struct save_req req = {.f = f, .station = station, .made_at = made_at};
	struct fc_station *s;

	rc = load_samples(f, station, "salinity", &n);
	if (rc < 0) {
		log_warn(LOG, "cannot read readings station=%s error=\"%s\"", station, strerror(-rc));
		return;
	}
	if (n == 0) {
		snprintf(why, sizeof(why), "no salinity readings from %s yet", station);
		rc = -ENODATA;
	} else {
		rc = forecast_fit(f->samples, n, &f->params, &f->fc, why, sizeof(why));
		if (rc == 0)
			forecast_windows(&f->fc, &f->params);
		if (rc == 0)
			add_tides(f, station);
		else if (!why[0])
			snprintf(why, sizeof(why), "cannot fit a forecast: %s", strerror(-rc));
	}
	if (rc == 0 && (doc = malloc(DOC_MAX))) {
		len = forecast_encode(&f->fc, station, "salinity", "g/L", made_at, doc, DOC_MAX);
		if (len < 0) {
			free(doc);
			doc = NULL;
			snprintf(why, sizeof(why), "cannot encode the forecast");
		}
	}
	req.fc = doc ? &f->fc : NULL;
	req.doc = doc;
	req.why = doc ? NULL : why;
	rc = ingest_call(f->in, save_fn, &req, 10000);
	if (rc < 0)
		log_warn(LOG, "cannot save the forecast station=%s error=\"%s\"", station, strerror(-rc));
	if (doc && agri_topic_build_forecast(topic, sizeof(topic), f->prefix, station, "salinity") >= 0)
		ingest_publish_later(f->in, topic, doc, (size_t)len, true);
	log_debug(LOG, "fit station=%s readings=%zu ok=%d ms=%lld %s", station, n, doc != NULL,
		  (long long)(util_mono_ms() - t0), doc ? "" : why);
	pthread_mutex_lock(&f->mu);
	if ((s = station_get(f, station, false))) {
		free(s->doc);
		s->doc = doc;
		s->doc_len = doc ? (size_t)len : 0;
		snprintf(s->why, sizeof(s->why), "%s", why);
		doc = NULL;
	}
	pthread_mutex_unlock(&f->mu);
	free(doc);
}

static void *worker_main(void *arg)
{
	struct forecasting *f = arg;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		char name[AGRI_ID_MAX + 1] = "";
		int64_t now = util_mono_ms();
		/* A catch-up would refit every station on partial data every
		 * REFIT_MS and publish each retained document; their PUBACKs
		 * queue behind the backlog, so paho held ~150 copies (3 MiB in
		 * scripts/bench-gateway --full). Refits wait for it to end. */
		bool backlog = ingest_backlogged(f->in);
		struct timespec until;

		for (size_t i = 0; i < f->n_stations; i++) {
			struct fc_station *s = &f->stations[i];
			bool due = s->fitted_mono == 0 ||
				   (s->dirty && now - s->fitted_mono >= FORECASTING_REFIT_MS &&
				    !backlog) ||
				   now - s->fitted_mono >= FORECASTING_MAX_AGE_MS;

			if (due && (s->dirty || s->fitted_mono)) {
				snprintf(name, sizeof(name), "%s", s->name);
				s->dirty = false;
				s->fitted_mono = now;
				break;
			}
		}
		if (name[0]) {
			pthread_mutex_unlock(&f->mu);
			fit_station(f, name);
			pthread_mutex_lock(&f->mu);
			continue;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&f->wake, &f->mu, &until);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* --- life cycle ------------------------------------------------------------ */

struct forecasting *forecasting_new(const struct gateway_config *cfg, struct ingest *in,
				    int *err)
{
	struct forecasting *f;

	*err = 0;
	if (!cfg->forecast.enabled)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f) {
		*err = -ENOMEM;
		return NULL;
	}
	f->in = in;
	snprintf(f->db_path, sizeof(f->db_path), "%s", cfg->db.path);
	snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->broker.topic_prefix);
	forecast_params_default(&f->params);
	f->params.margin_rel = cfg->forecast.margin;
	advisory_params_default(&f->adv);
	f->adv.sow_from_d = (int)cfg->forecast.sow_from_d;
	f->adv.sow_to_d = (int)cfg->forecast.sow_to_d;
	f->adv.hatch_from_d = (int)cfg->forecast.hatch_from_d;
	f->adv.hatch_to_d = (int)cfg->forecast.hatch_to_d;
	for (size_t i = 0; i < cfg->forecast.n_notify; i++)
		f->channels[f->n_channels++] = cfg->forecast.notify[i];
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->wake, NULL);
	forecast_params_level(&f->level_params);
	f->sluices = calloc(cfg->sites.n ? cfg->sites.n : 1, sizeof(*f->sluices));
	for (size_t i = 0; f->sluices && i < cfg->sites.n; i++) {
		const struct gateway_site *site = &cfg->sites.site[i];

		if (!site->has_sluice)
			continue;
		snprintf(f->sluices[f->n_sluices].station, sizeof(f->sluices[0].station), "%s",
			 site->station);
		f->sluices[f->n_sluices].below_g_l = site->sluice_below_g_l;
		f->sluices[f->n_sluices].min_level_m = site->has_min_level ? site->sluice_min_level_m
									   : NAN;
		f->n_sluices++;
	}
	f->stations = calloc(STATIONS_MAX, sizeof(*f->stations));
	f->samples = malloc(FORECAST_SAMPLES_MAX * sizeof(*f->samples));
	if (!f->stations || !f->samples || !f->sluices) {
		forecasting_free(f);
		*err = -ENOMEM;
		return NULL;
	}
	f->hook = (struct ingest_hook){
		.name = "forecast",
		.ctx = f,
		.on_telemetry = on_telemetry,
		.on_commit = on_commit,
		.on_rollback = on_rollback,
	};
	return f;
}

/* Creates the tables and views (on the writer's connection, before the
 * writer thread runs). */
int forecasting_attach(struct forecasting *f, struct store *st)
{
	char *msg = NULL;

	f->st = st;
	/* advisories from before late peaks (docs/forecast.md): their column */
	if (sqlite3_exec(store_db(st), "SELECT late FROM advisories LIMIT 0", NULL, NULL,
			 NULL) != SQLITE_OK &&
	    sqlite3_exec(store_db(st), "SELECT 1 FROM advisories LIMIT 0", NULL, NULL,
			 NULL) == SQLITE_OK)
		sqlite3_exec(store_db(st), "ALTER TABLE advisories ADD COLUMN late INTEGER NOT NULL"
			     " DEFAULT 0", NULL, NULL, NULL);
	if (outbox_init(store_db(st)) < 0 ||
	    sqlite3_exec(store_db(st), schema, NULL, NULL, &msg) != SQLITE_OK) {
		log_error(LOG, "cannot create the forecast tables: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

void forecasting_set_quiet(struct forecasting *f, bool quiet)
{
	f->quiet = quiet;
}

const struct ingest_hook *forecasting_hook(struct forecasting *f)
{
	return &f->hook;
}

int forecasting_start(struct forecasting *f)
{
	sqlite3_stmt *q;
	int rc;

	rc = sqlite3_open_v2(f->db_path, &f->ro, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_busy_timeout(f->ro, 2000);
	/* A fit reads its station's readings once, in order: SQLite's
	 * default 2 MiB cache would only hold pages never read again. */
	sqlite3_exec(f->ro, "PRAGMA cache_size = -128", NULL, NULL, NULL);
	/* Every station that has salinity gets a forecast (or its reason). */
	if (sqlite3_prepare_v2(f->ro, "SELECT DISTINCT st.name FROM series se JOIN stations st"
				      " ON st.id = se.station_id WHERE se.metric = 'salinity'",
			       -1, &q, NULL) == SQLITE_OK) {
		pthread_mutex_lock(&f->mu);
		while (sqlite3_step(q) == SQLITE_ROW) {
			struct fc_station *s = station_get(f, (const char *)sqlite3_column_text(q, 0), true);

			if (s)
				s->dirty = true;
		}
		pthread_mutex_unlock(&f->mu);
		sqlite3_finalize(q);
	}
	if ((rc = pthread_create(&f->thread, NULL, worker_main, f)) != 0)
		return -rc;
	f->started = true;
	return 0;
}

void forecasting_republish(struct forecasting *f)
{
	char topic[AGRI_TOPIC_MAX];

	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->n_stations; i++) {
		struct fc_station *s = &f->stations[i];

		if (s->doc && agri_topic_build_forecast(topic, sizeof(topic), f->prefix, s->name,
							"salinity") >= 0)
			ingest_publish_later(f->in, topic, s->doc, s->doc_len, true);
	}
	pthread_mutex_unlock(&f->mu);
}

int forecasting_http(void *ctx, const char *station, const char *metric, char *buf, size_t len)
{
	struct forecasting *f = ctx;
	struct fc_station *s;
	int rc;

	if (strcmp(metric, "salinity") != 0) {
		snprintf(buf, len, "forecasts are made for salinity only, not \"%s\"", metric);
		return -ENODATA;
	}
	pthread_mutex_lock(&f->mu);
	s = station_get(f, station, false);
	if (s && s->doc && s->doc_len < len) {
		memcpy(buf, s->doc, s->doc_len);
		buf[s->doc_len] = '\0';
		rc = (int)s->doc_len;
	} else if (s && s->doc) {
		rc = -ENOSPC;
	} else {
		snprintf(buf, len, "%s", s && s->why[0] ? s->why :
			 s ? "the first forecast is being computed" :
			     "no salinity readings from this station");
		rc = -ENODATA;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void forecasting_stop(struct forecasting *f)
{
	if (!f || !f->started)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	f->started = false;
}

void forecasting_free(struct forecasting *f)
{
	if (!f)
		return;
	forecasting_stop(f);
	pending_clear(f);
	for (size_t i = 0; f->stations && i < f->n_stations; i++)
		free(f->stations[i].doc);
	free(f->stations);
	free(f->samples);
	free(f->sluices);
	sqlite3_close(f->ro);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->wake);
	free(f);
}
