/*
 * Unit tests of the upstream core without a network: the ingest hook
 * queues exactly the new readings of committed batches (nothing of a
 * rolled-back one), seqs survive a reopen, the retention floor follows the
 * oldest pending reading, and the metrics text names every sink. The sinks'
 * threads are never started (the remote ends are tested by
 * tests/integration/test_upstream_*.py). The SensorThings sink's rule for
 * an @iot.nextLink (the configured server's scheme, host and port only) is
 * checked link by link.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "test.h"
#include "agri/buf.h"
#include "gateway/config.h"
#include "core/store.h"
#include "upstream/sink.h"
#include "upstream/upstream.h"

static char dir[] = "/tmp/gw-upstream-XXXXXX";

static struct agri_reading reading(const char *metric, int64_t ts, double v)
{
	struct agri_reading r = {.ts_ms = ts, .value = v, .has_value = true, .q = AGRI_Q_OK};

	snprintf(r.sensor, sizeof(r.sensor), "s1");
	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	snprintf(r.unit, sizeof(r.unit), "g/L");
	return r;
}

/* One batch through the store and the hook, committed or rolled back. */
static void batch(struct store *st, const struct ingest_hook *h, struct agri_reading *r, size_t n,
		  bool commit)
{
	struct agri_telemetry t = {.readings = r, .n = n, .seq = 1};
	bool fresh[8];

	snprintf(t.station, sizeof(t.station), "ST1");
	CHECK_INT(store_begin(st), 0);
	for (size_t i = 0; i < n; i++)
		fresh[i] = store_put_reading(st, t.station, &r[i], 1000) == 1;
	CHECK_INT(h->on_telemetry(h->ctx, st, &t, fresh, 1000), 0);
	if (commit) {
		CHECK_INT(store_commit(st), 0);
		h->on_commit(h->ctx);
	} else {
		store_rollback(st);
		h->on_rollback(h->ctx);
	}
}

static int64_t count(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	int64_t v = -1;

	sqlite3_open(path, &db);
	if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* Which @iot.nextLink the SensorThings sink follows, and what it says. */
static void test_sta_links(void)
{
	static const char server[] = "http://sta.example:8080/FROST-Server/v1.1";
	static const char page[] = "http://sta.example:8080/FROST-Server/v1.1/Datastreams(1)/"
				   "Observations?$top=1000";
	static const struct {
		const char *link;
		const char *why; /* NULL: followed; else a part of the reason */
	} t[] = {
		{"http://sta.example:8080/FROST-Server/v1.1/Datastreams(1)/Observations?$skip=1000", NULL},
		{"HTTP://STA.example:8080/FROST-Server/v1.1/Datastreams(1)/Observations?$skip=2", NULL},
		{"/FROST-Server/v1.1/Datastreams(1)/Observations?$skip=1000", NULL}, /* relative */
		{"Observations?$skip=1000", NULL},
		{"http://sta.example:8080/other/path", NULL}, /* same origin: the rule is the origin */
		{"http://evil.example:8080/FROST-Server/v1.1/x", "host evil.example is not the configured server's sta.example"},
		{"http://127.0.0.1:8080/x", "host 127.0.0.1 is not"},
		{"http://sta.example.evil.example:8080/x", "host sta.example.evil.example"},
		{"//evil.example:8080/x", "host evil.example"},  /* scheme-relative */
		{"http://sta.example:8081/x", "port 8081 is not the configured server's 8080"},
		{"http://sta.example/x", "port 80 is not"},
		{"https://sta.example:8080/x", "scheme https is not the configured server's http"},
		{"file:///etc/passwd", "scheme file is not"},
		{"gopher://sta.example:8080/x", "scheme gopher"},
		{"http://user:pw@sta.example:8080/x", "credentials"},
		{"http://sta.example:8080@evil.example/x", "host evil.example"},
		{"http://[::1]:8080/x", "host [::1] is not"},
		{"http://evil\"\n.example/x", "not a URL"},
	};
	char why[200];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		int rc;

		why[0] = '\0';
		rc = upstream_sta_link_allowed(server, page, t[i].link, why, sizeof(why));
		if (!t[i].why) {
			if (rc != 0)
				fprintf(stderr, "refused %s: %s\n", t[i].link, why);
			CHECK_INT(rc, 0);
			continue;
		}
		CHECK_INT(rc, -EPERM);
		if (!strstr(why, t[i].why))
			fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", t[i].link, why, t[i].why);
		CHECK(strstr(why, t[i].why) != NULL);
		CHECK(strchr(why, '\n') == NULL && strchr(why, '"') == NULL);
	}
	/* The default port is the scheme's: the configured URL may omit it. */
	CHECK_INT(upstream_sta_link_allowed("https://sta.example/v1.1", "https://sta.example/v1.1",
					    "https://sta.example:443/v1.1/x", why, sizeof(why)), 0);
	/* A link longer than the sink's URL buffer is not truncated and fetched. */
	{
		static char big[3000];

		memset(big, 'a', sizeof(big) - 1);
		memcpy(big, "http://sta.example:8080/", 24);
		CHECK_INT(upstream_sta_link_allowed(server, page, big, why, sizeof(why)), -EPERM);
	}
}

int main(void)
{
	static struct gateway_config cfg;
	struct store_options so = {.sync_full = false, .track_gaps = true};
	struct agri_reading r[3];
	struct upstream *up;
	struct store *st;
	char path[256], text[8192];
	int err = 0;

	test_sta_links();
	if (!mkdtemp(dir))
		return 2;
	snprintf(path, sizeof(path), "%s/agri.db", dir);
	gateway_config_defaults(&cfg);
	snprintf(cfg.db.path, sizeof(cfg.db.path), "%s", path);

	/* No upstream section: nothing to do, no error. */
	CHECK(upstream_new(&cfg, &err) == NULL);
	CHECK_INT(err, 0);
	CHECK_INT(upstream_metrics_text(NULL, text, sizeof(text)), 0);

	st = store_open(path, &so, &err);
	CHECK(st != NULL);
	/* A reading stored before upstream existed is queued the first time. */
	r[0] = reading("m0", 5000, 1.0);
	CHECK_INT(store_begin(st), 0);
	CHECK_INT(store_put_reading(st, "ST1", &r[0], 1000), 1);
	CHECK_INT(store_commit(st), 0);

	cfg.upstream.has_postgres = true;
	snprintf(cfg.upstream.postgres_conninfo, sizeof(cfg.upstream.postgres_conninfo),
		 "host=/nonexistent dbname=agri");
	cfg.upstream.has_sensorthings = true;
	snprintf(cfg.upstream.sensorthings_url, sizeof(cfg.upstream.sensorthings_url),
		 "http://127.0.0.1:9/v1.1");
	up = upstream_new(&cfg, &err);
	CHECK(up != NULL);
	if (!up)
		return test_main("test_gateway_upstream");
	CHECK_INT(count(path, "SELECT count(*) FROM upstream_queue"), 1);
	CHECK_INT(upstream_retention_floor_ms(up), 5000);

	/* New readings are queued, a duplicate is not. */
	r[0] = reading("m0", 5000, 1.0); /* already stored */
	r[1] = reading("m1", 3000, 2.0);
	r[2] = reading("m2", 7000, 3.0);
	batch(st, upstream_hook(up), r, 3, true);
	CHECK_INT(count(path, "SELECT count(*) FROM upstream_queue"), 3);
	CHECK_INT(count(path, "SELECT max(seq) FROM upstream_queue"), 3);
	/* The floor drops at once on commit to the oldest new ts. */
	CHECK_INT(upstream_retention_floor_ms(up), 3000);

	/* A rolled-back batch leaves nothing queued, and its seq is reused. */
	r[0] = reading("m0", 9000, 4.0);
	batch(st, upstream_hook(up), r, 1, false);
	CHECK_INT(count(path, "SELECT count(*) FROM upstream_queue"), 3);
	r[0] = reading("m0", 11000, 5.0);
	batch(st, upstream_hook(up), r, 1, true);
	CHECK_INT(count(path, "SELECT max(seq) FROM upstream_queue"), 4);

	CHECK(upstream_metrics_text(up, text, sizeof(text)) < sizeof(text));
	CHECK(strstr(text, "agri_upstream_backlog_rows{sink=\"postgres\"} 4\n") != NULL);
	CHECK(strstr(text, "agri_upstream_backlog_rows{sink=\"sensorthings\"} 4\n") != NULL);
	CHECK(strstr(text, "# TYPE agri_upstream_rows_total counter\n") != NULL);
	/* snprintf semantics: the size needed when the buffer is too small. */
	CHECK(upstream_metrics_text(up, text, 16) > 16);
	CHECK_INT(strlen(text), 15);
	upstream_free(up);

	/* Reopened: seqs continue after the queue and the cursors. */
	up = upstream_new(&cfg, &err);
	CHECK(up != NULL);
	r[0] = reading("m0", 13000, 6.0);
	batch(st, upstream_hook(up), r, 1, true);
	CHECK_INT(count(path, "SELECT max(seq) FROM upstream_queue"), 5);
	CHECK_INT(count(path, "SELECT count(*) FROM upstream_cursor WHERE seq = 0"), 2);
	upstream_free(up);
	store_close(st);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_main("test_gateway_upstream");
}
