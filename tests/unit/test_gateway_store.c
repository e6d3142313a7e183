/*
 * Unit tests of the gateway's SQLite store: dedupe on the reading identity,
 * the interfaces.md §6 views' formats, migrations (fresh, re-open, newer schema refused),
 * seq gap counting, dead letters, status, retention into hourly aggregates,
 * and the config reader's errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/time.h"
#include "gateway/config.h"
#include "core/store.h"
#include "test.h"

static char dir[] = "/tmp/gw-store-XXXXXX";

static void path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static struct store *open_store(const char *name, bool gaps)
{
	struct store_options o = {.sync_full = true, .track_gaps = gaps};
	char p[256];
	int err = 0;
	struct store *st;

	path_in(p, sizeof(p), name);
	st = store_open(p, &o, &err);
	CHECK(st != NULL);
	return st;
}

static struct agri_reading reading(const char *sensor, const char *metric,
				   int64_t ts, double v)
{
	struct agri_reading r = {.ts_ms = ts, .value = v, .has_value = true, .q = AGRI_Q_OK};

	snprintf(r.sensor, sizeof(r.sensor), "%s", sensor);
	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	snprintf(r.unit, sizeof(r.unit), "g/L");
	return r;
}

/* First column of the first row of sql as text ("" when none). */
static const char *q1(struct store *st, const char *sql)
{
	static char out[512];
	sqlite3_stmt *q;

	out[0] = '\0';
	if (sqlite3_prepare_v2(store_db(st), sql, -1, &q, NULL) != SQLITE_OK) {
		snprintf(out, sizeof(out), "ERR %s", sqlite3_errmsg(store_db(st)));
		return out;
	}
	if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	return out;
}

/* A suspect reading keeps the station's reason (schema 3). */
static void test_why(void)
{
	struct store *st = open_store("why.db", true);
	struct agri_reading r = reading("sonde1", "salinity", 1790000000123LL, 11.9);

	r.q = AGRI_Q_SUSPECT;
	snprintf(r.why, sizeof(r.why), "full_scale");
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_reading(st, "DT-W02", &r, 1790000001000LL), 1);
	r.ts_ms += 1000;
	r.q = AGRI_Q_OK;
	r.why[0] = '\0';
	CHECK_INT(store_put_reading(st, "DT-W02", &r, 1790000001000LL), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT group_concat(q || ':' || coalesce(why, '-')) FROM"
			 " (SELECT q, why FROM v_readings ORDER BY ts)"), "suspect:full_scale,ok:-");
	store_close(st);
}

static void test_dedupe_and_views(void)
{
	struct store *st = open_store("a.db", true);
	struct agri_reading r = reading("sonde1", "salinity", 1790000000123LL, 3.42);
	struct agri_reading e = reading("sonde1", "ph", 1790000000123LL, 0);

	e.has_value = false;
	e.q = AGRI_Q_ERROR;
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_reading(st, "DT-W01", &r, 1790000001000LL), 1);
	CHECK_INT(store_put_reading(st, "DT-W01", &r, 1790000002000LL), 0);
	CHECK_INT(store_put_reading(st, "DT-W01", &e, 1790000001000LL), 1);
	CHECK_INT(store_note_seq(st, "DT-W01", 7, 1790000001000LL), 1);
	CHECK_INT(store_note_seq(st, "DT-W01", 7, 1790000001000LL), 0);
	CHECK_INT(store_commit(st), 0);
	/* a second transaction: the same reading again is a no-op */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_reading(st, "DT-W01", &r, 1790000003000LL), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT count(*) FROM v_readings"), "2");
	CHECK_STR(q1(st, "SELECT ts FROM v_readings WHERE metric='salinity'"),
		  "2026-09-21T14:13:20.123Z");
	CHECK_STR(q1(st, "SELECT received_at FROM v_readings WHERE metric='salinity'"),
		  "2026-09-21T14:13:21.000Z");
	CHECK_STR(q1(st, "SELECT station || ',' || sensor || ',' || unit || ',' || q || ',' || value"
			 " FROM v_readings WHERE metric='salinity'"), "DT-W01,sonde1,g/L,ok,3.42");
	CHECK_STR(q1(st, "SELECT q || ',' || coalesce(value, 'null') FROM v_readings WHERE metric='ph'"),
		  "error,null");
	CHECK_STR(q1(st, "SELECT station || ',' || state || ',' || last_seq || ',' || last_seen"
			 " FROM v_stations"), "DT-W01,online,7,2026-09-21T14:13:21.000Z");
	/* the other views exist with their columns */
	CHECK_STR(q1(st, "SELECT count(*) FROM (SELECT id, rule, station, sensor, metric, severity,"
			 " state, value, threshold, raised_at, updated_at, message FROM v_alerts)"), "0");
	CHECK_STR(q1(st, "SELECT count(*) FROM (SELECT id, state, severity, value, at FROM v_alert_events)"), "0");
	store_close(st);
}

/* store_checkpoint() (the second connection) really moves WAL frames into
 * the database file, and the WAL starts over after it. */
static void test_checkpoint(void)
{
	struct store *st = open_store("ckpt.db", true);
	char wal[600];
	struct stat sb;
	off_t size;

	for (int i = 0; i < 200; i++) {
		struct agri_reading r = reading("sonde1", "salinity", 1790000000000LL + i * 60000LL, i);

		CHECK_INT(store_begin(st), 0);
		CHECK_INT(store_put_reading(st, "DT-W01", &r, 1790000001000LL), 1);
		CHECK_INT(store_commit(st), 0);
	}
	CHECK(store_checkpoint(st) >= 200);
	snprintf(wal, sizeof(wal), "%s/ckpt.db-wal", dir);
	CHECK_INT(stat(wal, &sb), 0);
	size = sb.st_size;
	for (int i = 0; i < 200; i++) {
		struct agri_reading r = reading("sonde1", "ph", 1790000000000LL + i * 60000LL, i);

		CHECK_INT(store_begin(st), 0);
		CHECK_INT(store_put_reading(st, "DT-W01", &r, 1790000001000LL), 1);
		CHECK_INT(store_commit(st), 0);
		if (i % 50 == 49)
			CHECK(store_checkpoint(st) > 0);
	}
	/* written over from its start, not grown */
	CHECK_INT(stat(wal, &sb), 0);
	CHECK(sb.st_size <= size);
	CHECK_STR(q1(st, "SELECT count(*) FROM v_readings"), "400");
	store_close(st);
}

/* Every millisecond value formats exactly like agri_time_format. */
static void test_ms_format(void)
{
	struct store *st = open_store("fmt.db", true);
	int64_t base[] = {0, 1790000000000LL, 1700000000000LL, 253402300799999LL - 2999};
	int bad = 0;
	sqlite3_stmt *q;

	sqlite3_prepare_v2(store_db(st),
			   "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000.0, 'unixepoch')", -1, &q, NULL);
	for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++) {
		for (int64_t ms = 0; ms < 3000; ms++) {
			char want[32];

			sqlite3_bind_int64(q, 1, base[b] + ms);
			sqlite3_step(q);
			agri_time_format(base[b] + ms, want, sizeof(want));
			if ((!sqlite3_column_text(q, 0) || strcmp(want, (const char *)sqlite3_column_text(q, 0)) != 0) && bad++ < 3)
				fprintf(stderr, "format %lld: %s vs %s\n", (long long)(base[b] + ms), want,
					sqlite3_column_text(q, 0));
			sqlite3_reset(q);
		}
	}
	sqlite3_finalize(q);
	CHECK_INT(bad, 0);
	store_close(st);
}

static void test_migrations(void)
{
	struct store *st = open_store("m.db", true);
	struct store_options o = {.sync_full = true};
	char p[256];
	int err = 0;

	CHECK_STR(q1(st, "PRAGMA user_version"), "6");
	CHECK_STR(q1(st, "PRAGMA journal_mode"), "wal");
	CHECK_STR(q1(st, "PRAGMA synchronous"), "2");
	CHECK_STR(q1(st, "SELECT group_concat(name) FROM pragma_index_xinfo('readings_by_ts')"
			 " WHERE name IS NOT NULL"), "ts,series_id"); /* schema 4: the readings in time order */
	store_close(st);
	st = open_store("m.db", true); /* re-open: nothing to migrate */
	CHECK_STR(q1(st, "PRAGMA user_version"), "6");
	sqlite3_exec(store_db(st), "PRAGMA user_version = 99", NULL, NULL, NULL);
	store_close(st);
	path_in(p, sizeof(p), "m.db");
	CHECK(store_open(p, &o, &err) == NULL);
	CHECK_INT(err, -EPROTO);
}

static void test_gaps(void)
{
	struct store *st = open_store("g.db", true);
	struct agri_status s = {.online = true};
	uint64_t seqs[] = {1, 2, 3, 7, 8, 5, 12};

	snprintf(s.station, sizeof(s.station), "ST1");
	CHECK_INT(store_begin(st), 0);
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
		CHECK_INT(store_note_seq(st, "ST1", seqs[i], 1000), 1);
	CHECK_INT(store_commit(st), 0);
	/* missing: 4, 6, 9, 10, 11 */
	CHECK_INT(store_station_gaps(st, "ST1"), 5);
	CHECK_STR(q1(st, "SELECT count(*) FROM seq_ranges"), "4");
	/* a resend fills 4; the station says it dropped 2 batches */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_note_seq(st, "ST1", 4, 1000), 1);
	s.spool_dropped = 2;
	CHECK_INT(store_put_status(st, &s, 2000), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_station_gaps(st, "ST1"), 2);
	store_close(st);
	/* state survives a restart (ranges reloaded) */
	st = open_store("g.db", true);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_note_seq(st, "ST1", 6, 1000), 1);
	CHECK_INT(store_note_seq(st, "ST1", 6, 1000), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_INT(store_station_gaps(st, "ST1"), 1);
	CHECK_INT(store_station_gaps(st, "nope"), -ENOENT);
	/* a rollback forgets what the batch did */
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_note_seq(st, "ST1", 9, 1000), 1);
	store_rollback(st);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_note_seq(st, "ST1", 9, 1000), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);

	/* not tracked in a shared group */
	st = open_store("g2.db", false);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_note_seq(st, "ST1", 1, 1000), 1);
	CHECK_INT(store_note_seq(st, "ST1", 10, 1000), 1);
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT coalesce(gaps, 'null') || ',' || last_seq FROM v_stations"), "null,10");
	store_close(st);
}

static void test_status_and_dead_letters(void)
{
	struct store *st = open_store("s.db", true);
	struct agri_status s = {.online = true, .config_version = 3, .spool_depth = 4};
	struct agri_status lwt = {.online = false};

	snprintf(s.station, sizeof(s.station), "ST2");
	snprintf(s.fw, sizeof(s.fw), "1.2.0");
	snprintf(s.board, sizeof(s.board), "rpi");
	snprintf(lwt.station, sizeof(lwt.station), "ST2");
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_status(st, &s, 1790000000000LL), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT state || ',' || fw || ',' || board || ',' || config_version"
			 " || ',' || spool_depth FROM v_stations"), "online,1.2.0,rpi,3,4");
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_status(st, &lwt, 1790000001000LL), 0);
	CHECK_INT(store_put_dead_letter(st, &(struct store_dead_letter){
						    .topic = "agri/v1/ST2/telemetry", .payload = "{bad\0x",
						    .len = 6, .reason = "invalid JSON", .kind = "invalid",
						    .station = "ST2", .received_ms = 1790000002000LL}), 0);
	CHECK_INT(store_commit(st), 0);
	/* the Last Will changes the state only */
	CHECK_STR(q1(st, "SELECT state || ',' || fw FROM v_stations"), "offline,1.2.0");
	CHECK_STR(q1(st, "SELECT received_at || '|' || topic || '|' || reason || '|' || length(payload)"
			 " FROM v_dead_letters"),
		  "2026-09-21T14:13:22.000Z|agri/v1/ST2/telemetry|invalid JSON|4");
	CHECK_STR(q1(st, "SELECT length(CAST(payload AS BLOB)) FROM dead_letters"), "6");
	store_close(st);
}

static void test_retention(void)
{
	struct store *st = open_store("r.db", true);
	int64_t day = 86400000LL, now = 1790000000000LL / 3600000 * 3600000;
	int moved = 0, rc;

	CHECK_INT(store_begin(st), 0);
	/* 3 days ago: 2 hours x 3 readings; yesterday: 1 reading (kept) */
	for (int h = 0; h < 2; h++) {
		for (int i = 0; i < 3; i++) {
			struct agri_reading r = reading("s", "salinity", now - 3 * day + h * 3600000LL + i * 1000,
							 h * 10 + i);

			CHECK_INT(store_put_reading(st, "ST3", &r, now), 1);
		}
	}
	struct agri_reading e = reading("s", "salinity", now - 3 * day + 5000, 0);
	e.has_value = false;
	CHECK_INT(store_put_reading(st, "ST3", &e, now), 1);
	struct agri_reading keep = reading("s", "salinity", now - day / 2, 99);
	CHECK_INT(store_put_reading(st, "ST3", &keep, now), 1);
	CHECK_INT(store_commit(st), 0);
	while ((rc = store_retention_step(st, now, 2, 2)) > 0)
		moved += rc;
	CHECK_INT(rc, 0);
	CHECK_INT(moved, 7);
	CHECK_STR(q1(st, "SELECT count(*) FROM readings"), "1");
	CHECK_STR(q1(st, "SELECT group_concat(min || '/' || mean || '/' || max || '/' || count, ' ')"
			 " FROM (SELECT * FROM v_readings_hourly ORDER BY hour)"),
		  "0.0/1.0/2.0/3 10.0/11.0/12.0/3");
	/* a late reading in an aggregated hour merges into it */
	struct agri_reading late = reading("s", "salinity", now - 3 * day + 1500, 30);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_reading(st, "ST3", &late, now), 1);
	CHECK_INT(store_commit(st), 0);
	while ((rc = store_retention_step(st, now, 2, 1000)) > 0)
		;
	CHECK_STR(q1(st, "SELECT min || '/' || mean || '/' || max || '/' || count FROM v_readings_hourly"
			 " ORDER BY hour LIMIT 1"), "0.0/8.25/30.0/4");
	store_close(st);
}

static void write_file(const char *name, const char *text)
{
	char p[256];
	FILE *f;

	path_in(p, sizeof(p), name);
	f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
}

static void test_config(void)
{
	static const struct {
		const char *json, *err;
	} bad[] = {
		{"{\"db\":{\"path\":\"x\"}}", "broker: is required"},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"x\":1}", "x: unknown key"},
		{"{\"broker\":{\"url\":\"http://h:1\"},\"db\":{\"path\":\"x\"}}", "broker.url: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\",\"shared_group\":\"a/b\"},\"db\":{\"path\":\"x\"}}", "broker.shared_group: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\",\"topic_prefix\":\"a/+\"},\"db\":{\"path\":\"x\"}}", "broker.topic_prefix: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\",\"username\":\"u\",\"password_file\":\"missing.pass\"},\"db\":{\"path\":\"x\"}}", "broker.password_file: cannot read"},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\",\"synchronous\":\"off\"}}", "db.synchronous: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\",\"retention_days\":-1}}", "db.retention_days: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"notify\":{\"webhooks\":[{\"name\":\"a\",\"url\":\"http://x\"},{\"name\":\"a\",\"url\":\"http://y\"}]}}", "notify.webhooks[1].name: duplicate"},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"notify\":{\"smtp\":{\"name\":\"m\",\"url\":\"smtp://h\",\"from\":\"a@b\",\"to\":[]}}}", "notify.smtp.to: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"upstream\":{\"postgres\":{}}}", "upstream.postgres.conninfo: is required"},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"http\":{\"listen\":\"nohost\"}}", "http.listen: "},
		{"{\"broker\":{\"url\":\"tcp://h:1\"},\"db\":{\"path\":\"x\"},\"forecast\":{\"enabled\":1}}", "forecast.enabled: "},
	};
	struct gateway_config *cfg = malloc(sizeof(*cfg));
	struct agri_err err;
	char p[256], msg[300];

	path_in(p, sizeof(p), "gw.json");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file("gw.json", bad[i].json);
		memset(&err, 0, sizeof(err));
		CHECK(gateway_config_load(p, cfg, &err) < 0);
		agri_err_format(&err, msg, sizeof(msg));
		if (strncmp(msg, bad[i].err, strlen(bad[i].err)) != 0) {
			fprintf(stderr, "config case %zu: got \"%s\", want \"%s...\"\n", i, msg, bad[i].err);
			CHECK(0);
		}
	}
	write_file("gw.pass", "s3cret\n");
	write_file("gw.json",
		   "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\",\"username\":\"gateway\","
		   "\"password_file\":\"gw.pass\",\"client_id\":\"agri-gateway-1\",\"shared_group\":null,"
		   "\"topic_prefix\":\"agri/v1\"},\"db\":{\"path\":\"agri.db\",\"retention_days\":400},"
		   "\"rules_file\":\"rules.json\",\"notify\":{\"webhooks\":[{\"name\":\"ops\","
		   "\"url\":\"http://127.0.0.1:9000/hook\"}],\"smtp\":{\"name\":\"mail\",\"url\":"
		   "\"smtp://127.0.0.1:2525\",\"from\":\"agri@localhost\",\"to\":[\"agronomist@localhost\"]}},"
		   "\"upstream\":{\"postgres\":{\"conninfo\":\"host=127.0.0.1 dbname=agri\"},"
		   "\"sensorthings\":{\"url\":\"http://127.0.0.1:8081/FROST-Server/v1.1\"}},"
		   "\"http\":{\"listen\":\"127.0.0.1:8080\"}}");
	memset(&err, 0, sizeof(err));
	CHECK_INT(gateway_config_load(p, cfg, &err), 0);
	CHECK_STR(cfg->broker.password, "s3cret");
	path_in(p, sizeof(p), "agri.db");
	CHECK_STR(cfg->db.path, p);
	CHECK(cfg->db.sync_full);
	CHECK_INT(cfg->http.port, 8080);
	CHECK_STR(cfg->http.host, "127.0.0.1");
	CHECK_INT(cfg->notify.n_webhooks, 1);
	CHECK_INT(cfg->notify.smtp.n_to, 1);
	CHECK(cfg->upstream.has_postgres && cfg->upstream.has_sensorthings);
	CHECK(cfg->forecast.enabled);
	free(cfg);
}

/* A station past its series budget: a new (sensor, metric) is refused
 * with -EDQUOT (nothing stored, the transaction still good) while its
 * known series keep storing; another station is untouched; a series
 * silent for series_idle_days is retired to make room (and named). */
static void test_series_budget(void)
{
	struct store_options o = {.sync_full = false, .track_gaps = true, .series_max = 3,
				  .series_idle_days = 7};
	int64_t day = 86400000LL, now = 1790000000000LL;
	const struct store_retired *ret;
	struct agri_reading r;
	char p[256], name[16];
	int err = 0;
	struct store *st;

	path_in(p, sizeof(p), "budget.db");
	st = store_open(p, &o, &err);
	CHECK(st != NULL);
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		r = reading(name, "salinity", now - 10 * day + i, 1.0);
		CHECK_INT(store_put_reading(st, "EVIL", &r, now - 10 * day), 1);
	}
	r = reading("s3", "salinity", now, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now - 9 * day), -EDQUOT);
	r = reading("s0", "salinity", now - 2 * day, 2.0); /* a known series: fine */
	CHECK_INT(store_put_reading(st, "EVIL", &r, now - 9 * day), 1);
	for (int i = 0; i < 5; i++) { /* another station has its own budget */
		snprintf(name, sizeof(name), "h%d", i);
		r = reading(name, "ph", now, 7.0);
		CHECK_INT(store_put_reading(st, "HONEST", &r, now), i < 3 ? 1 : -EDQUOT);
	}
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT count(*) FROM readings"), "7");
	CHECK_STR(q1(st, "SELECT count(*) FROM series WHERE sensor = 's3'"), "0");
	/* 8 days later s1 and s2 have been silent for 8 days: s1 (the first
	 * idle one) makes room for s3, once; the next new series waits an hour. */
	CHECK_INT(store_begin(st), 0);
	r = reading("s3", "salinity", now, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now - day), 1);
	CHECK_INT((int)store_retired(st, &ret), 1);
	CHECK_STR(ret[0].sensor, "s1");
	CHECK_STR(ret[0].station, "EVIL");
	r = reading("s4", "salinity", now, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now - day), 1); /* s2 goes */
	r = reading("s5", "salinity", now, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now - day), -EDQUOT);
	CHECK_INT(store_commit(st), 0);
	CHECK_STR(q1(st, "SELECT group_concat(sensor) FROM (SELECT sensor FROM series"
			 " WHERE retired = 1 ORDER BY sensor)"), "s1,s2");
	/* The readings of a retired series stay; sending again revives it
	 * within the budget only. */
	CHECK_STR(q1(st, "SELECT count(*) FROM v_readings WHERE sensor = 's1'"), "1");
	CHECK_INT(store_begin(st), 0);
	r = reading("s1", "salinity", now + 1, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now), -EDQUOT);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
	/* A restart counts again from the table: the same refusals. */
	st = store_open(p, &o, &err);
	CHECK_INT(store_begin(st), 0);
	r = reading("s9", "salinity", now + 2, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now), -EDQUOT);
	r = reading("s3", "salinity", now + 2, 1.0);
	CHECK_INT(store_put_reading(st, "EVIL", &r, now), 1);
	CHECK_INT(store_commit(st), 0);
	store_close(st);
}

/* Dead letters: a prefix of the payload with its size and SHA-256, a kind,
 * counters per kind that survive deletion; the oldest go first past the
 * byte budget; expiry by age. */
static void test_dead_letter_bounds(void)
{
	struct store_options o = {.sync_full = false, .dead_bytes_max = 20000,
				  .dead_payload_max = 1000};
	char p[256], big[5000];
	int err = 0;
	struct store *st;

	memset(big, 'x', sizeof(big));
	path_in(p, sizeof(p), "dead.db");
	st = store_open(p, &o, &err);
	CHECK(st != NULL);
	CHECK_INT(store_begin(st), 0);
	for (int i = 0; i < 100; i++) {
		struct store_dead_letter dl = {.topic = "agri/v1/EVIL/telemetry", .payload = big,
					       .len = sizeof(big), .reason = "flood", .kind = "quota",
					       .station = "EVIL", .received_ms = 1000 + i};

		CHECK_INT(store_put_dead_letter(st, &dl), 0);
	}
	CHECK_INT(store_count_dead_letters(st, "quota", 5), 0);
	CHECK_INT(store_commit(st), 0);
	CHECK(store_dead_letter_bytes(st) <= 20000);
	CHECK_STR(q1(st, "SELECT max(length(payload)) FROM dead_letters"), "1000");
	CHECK_STR(q1(st, "SELECT size || ' ' || kind || ' ' || station FROM v_dead_letters LIMIT 1"),
		  "5000 quota EVIL");
	CHECK_STR(q1(st, "SELECT sha256 FROM dead_letters LIMIT 1"),
		  /* sha256sum of 5000 'x' */
		  "c59d3c0480cc2d71d8f646e735e92da65450311eec46e81a5db8c7e6e8a92054");
	CHECK_STR(q1(st, "SELECT min(received_at) > 1000 FROM dead_letters"), "1"); /* oldest gone */
	CHECK_STR(q1(st, "SELECT stored || ' ' || suppressed || ' ' || (evicted + "
			 "(SELECT count(*) FROM dead_letters)) FROM v_dead_letter_counts"
			 " WHERE kind = 'quota'"), "100 5 100");
	/* Age: everything received before 1050 goes. */
	CHECK(store_expire_dead_letters(st, 1050) >= 0);
	CHECK_STR(q1(st, "SELECT count(*) FROM dead_letters WHERE received_at < 1050"), "0");
	store_close(st);
	/* The size is counted again at open. */
	st = store_open(p, &o, &err);
	CHECK(store_dead_letter_bytes(st) > 0 && store_dead_letter_bytes(st) <= 20000);
	store_close(st);
}

/* What migration 6 adds (alerts in event time), taken away again. */
#define UNDO_ALERTS_V6                                                            \
	"DROP VIEW v_alert_episodes; DROP TABLE alert_episodes;"                  \
	"DROP VIEW v_alerts; DROP VIEW v_alert_events;"                           \
	"ALTER TABLE alerts DROP COLUMN acked_by;"                                \
	"ALTER TABLE alerts DROP COLUMN message_en;"                              \
	"ALTER TABLE alerts DROP COLUMN message_vi;"                              \
	"ALTER TABLE alerts DROP COLUMN late;"                                    \
	"ALTER TABLE alerts DROP COLUMN event_at;"                                \
	"ALTER TABLE alerts DROP COLUMN arrived_at;"                              \
	"ALTER TABLE alert_events DROP COLUMN late;"                              \
	"ALTER TABLE alert_events DROP COLUMN arrived_at;"                        \
	"CREATE VIEW v_alerts AS SELECT id, message FROM alerts;"                 \
	"CREATE VIEW v_alert_events AS SELECT alert_id AS id FROM alert_events;"

/* A database of schema 5 with acknowledged alerts: migration 6 gives them
 * their acknowledger's column (read from the message once), both
 * messages' columns, late flags and an episode table (issue 21). */
static void test_migrate_alerts_v6(void)
{
	char p[256];
	sqlite3 *db;
	int err = 0;
	struct store *st;

	path_in(p, sizeof(p), "v5.db");
	st = open_store("v5.db", true);
	store_close(st);
	CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, UNDO_ALERTS_V6
			       "INSERT INTO alerts(id, rule, station, severity, state, raised_at,"
			       " updated_at, message) VALUES"
			       " ('a/DT-W01', 'a', 'DT-W01', 'warning', 'acknowledged', 1, 2,"
			       "  'Acknowledged by lan: Salinity 4.3 g/L >= 4.0 g/L'),"
			       " ('b/DT-W01', 'b', 'DT-W01', 'warning', 'acknowledged', 1, 2,"
			       "  'Đã xác nhận bởi Nguyễn Thị Lan: Độ mặn 4,3‰'),"
			       " ('c/DT-W01', 'c', 'DT-W01', 'warning', 'active', 1, 2,"
			       "  'Acknowledged by x: an active alert keeps no acknowledger'),"
			       " ('d/DT-W01', 'd', 'DT-W01', 'warning', 'acknowledged', 1, 2,"
			       "  'Acknowledged: by nobody named');"
			       "INSERT INTO alert_events(alert_id, state, severity, at)"
			       " VALUES ('a/DT-W01', 'active', 'warning', 1);"
			       "PRAGMA user_version = 5;",
			       NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	{
		struct store_options o = {.sync_full = true};

		st = store_open(p, &o, &err);
	}
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_STR(q1(st, "PRAGMA user_version"), "6");
	CHECK_STR(q1(st, "SELECT group_concat(id || '=' || coalesce(acked_by, '-'), ' ') FROM"
			 " (SELECT * FROM alerts ORDER BY id)"),
		  "a/DT-W01=lan b/DT-W01=Nguyễn Thị Lan c/DT-W01=- d/DT-W01=-");
	CHECK_STR(q1(st, "SELECT count(*) FROM pragma_table_info('v_alerts') WHERE name IN"
			 " ('acked_by', 'message_en', 'message_vi', 'late', 'event_at', 'arrived_at')"),
		  "6");
	CHECK_STR(q1(st, "SELECT late || ',' || coalesce(arrived_at, '-') FROM v_alert_events"),
		  "0,-");
	CHECK_STR(q1(st, "SELECT count(*) FROM pragma_table_info('v_alert_episodes')"), "7");
	CHECK(sqlite3_exec(store_db(st), "INSERT INTO alert_episodes(alert_id, start, severity,"
			   " arrived_at) VALUES ('a/DT-W01', 1000, 'warning', 2000)", NULL, NULL,
			   NULL) == SQLITE_OK);
	CHECK_STR(q1(st, "SELECT start || ' ' || coalesce(end, 'open') || ' ' || arrived_at"
			 " FROM v_alert_episodes"),
		  "1970-01-01T00:00:01.000Z open 1970-01-01T00:00:02.000Z");
	store_close(st);
}

/* A database written by schema 1 (before budgets): its dead letters are
 * counted and shown with kind "invalid", its stations get a clock column. */
static void test_migrate_v1(void)
{
	char p[256];
	sqlite3 *db;
	int err = 0;
	struct store *st;

	path_in(p, sizeof(p), "v1.db");
	st = open_store("v1.db", true);
	store_close(st);
	/* Take it back to version 1's shape for the parts migration 2 changes. */
	CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db,
			       "DROP VIEW v_dead_letters; DROP VIEW v_dead_letter_counts;"
			       "DROP VIEW v_stations; DROP TABLE dead_letter_counts;"
			       "DROP TABLE dead_letters; CREATE TABLE dead_letters(id INTEGER PRIMARY KEY,"
			       " received_at INTEGER NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,"
			       " payload TEXT NOT NULL);"
			       "CREATE VIEW v_dead_letters AS SELECT received_at, topic, reason, payload"
			       " FROM dead_letters;"
			       "ALTER TABLE series DROP COLUMN retired;"
			       "ALTER TABLE stations DROP COLUMN clock_offset_ms;"
			       "ALTER TABLE stations DROP COLUMN config_signed_by;"
			       "ALTER TABLE stations DROP COLUMN system;"
			       "ALTER TABLE stations DROP COLUMN slot;"
			       "ALTER TABLE stations DROP COLUMN update_version;"
			       "ALTER TABLE stations DROP COLUMN update_state;"
			       "ALTER TABLE stations DROP COLUMN update_error;"
			       "DROP VIEW v_readings; ALTER TABLE readings DROP COLUMN why;"
			       "DROP INDEX readings_by_ts;"
			       UNDO_ALERTS_V6
			       "CREATE VIEW v_readings AS SELECT 1;"
			       "CREATE VIEW v_stations AS SELECT name AS station FROM stations;"
			       "INSERT INTO dead_letters(received_at, topic, reason, payload)"
			       " VALUES (1, 't', 'bad', 'xyz'), (2, 't', 'bad', 'abcd');"
			       "PRAGMA user_version = 1;",
			       NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	{
		struct store_options o = {.sync_full = true, .track_gaps = true};

		st = store_open(p, &o, &err);
	}
	CHECK(st != NULL);
	if (!st)
		return;
	CHECK_STR(q1(st, "PRAGMA user_version"), "6");
	CHECK_STR(q1(st, "SELECT group_concat(kind || ':' || size) FROM v_dead_letters"),
		  "invalid:3,invalid:4");
	CHECK_STR(q1(st, "SELECT stored FROM dead_letter_counts WHERE kind = 'invalid'"), "2");
	CHECK_STR(q1(st, "SELECT count(*) FROM pragma_table_info('v_stations')"
			 " WHERE name = 'clock_offset_s'"), "1");
	store_close(st);
}

int main(void)
{
	char cmd[64];

	if (!mkdtemp(dir))
		return 1;
	test_dedupe_and_views();
	test_why();
	test_ms_format();
	test_checkpoint();
	test_migrations();
	test_gaps();
	test_status_and_dead_letters();
	test_retention();
	test_series_budget();
	test_dead_letter_bounds();
	test_migrate_v1();
	test_migrate_alerts_v6();
	test_config();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_main("test_gateway_store");
}
