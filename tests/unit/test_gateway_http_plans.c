/*
 * The HTTP API's statements against the store's schema (docs/api.md,
 * "Cost"): EXPLAIN QUERY PLAN of each shows no full scan of readings and
 * no sort of readings rows; the readings pages walk the primary key (one
 * series) or readings_by_ts (many) in the order they are sent. Each plan is
 * printed. The store is created by store_open(), as the gateway does, and
 * holds a few thousand readings (plans come from the schema, not from
 * statistics: the gateway never runs ANALYZE).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/msg.h"
#include "core/store.h"
#include "http/http_int.h"
#include "test.h"

static char dir[] = "/tmp/gw-plans-XXXXXX";

/* The plan of sql, its lines joined with " | ". */
static void plan_of(sqlite3 *db, const char *sql, char *out, size_t len)
{
	char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *st = NULL;
	size_t n = 0;

	out[0] = '\0';
	CHECK_INT(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		int w = snprintf(out + n, len - n, "%s%s", n ? " | " : "",
				 (const char *)sqlite3_column_text(st, 3));

		if (w > 0 && (size_t)w < len - n)
			n += (size_t)w;
	}
	sqlite3_finalize(st);
	sqlite3_free(q);
}

/* Which statements may sort: a station's nights of catches (one window),
 * the newest salinity of a station (one row per series: below). */
static bool may_sort(int q)
{
	return q == Q_BPH_NIGHTS || q == Q_SAL_NEWEST;
}

static void test_plans(sqlite3 *db)
{
	char plan[2048];

	for (int q = Q_STATIONS; q < Q_COUNT; q++) {
		const char *sql = http_query_sql(q);
		bool readings = strstr(sql, "readings") != NULL;

		plan_of(db, sql, plan, sizeof(plan));
		printf("%-3d %s\n    %s\n", q, q >= Q_MERGE_0 ? "Q_MERGE_i" : "", plan);
		if (!readings)
			continue;
		/* never a whole table: readings is only searched */
		CHECK(strstr(plan, "SCAN r ") == NULL && strstr(plan, "SCAN readings") == NULL &&
		      !(strstr(plan, "SCAN r") && strstr(plan, "SCAN r")[6] == '\0'));
		if (!may_sort(q))
			CHECK(strstr(plan, "TEMP B-TREE") == NULL);
		if (strstr(plan, "TEMP B-TREE") && !may_sort(q))
			fprintf(stderr, "statement %d sorts: %s\n", q, plan);
	}
	/* each salinity series is looked up at its newest ok reading, not walked */
	plan_of(db, http_query_sql(Q_SAL_NEWEST), plan, sizeof(plan));
	CHECK(strstr(plan, "SEARCH r USING PRIMARY KEY (series_id=? AND ts=?)") != NULL);
	plan_of(db, http_query_sql(Q_READ_TS), plan, sizeof(plan));
	/* the index alone: a key of a series not asked for reads no row */
	CHECK(strstr(plan, "SEARCH r USING COVERING INDEX readings_by_ts ((ts,series_id)>(?,?) AND"
			   " ts<?)") != NULL);
	plan_of(db, http_query_sql(Q_READ_ROW), plan, sizeof(plan));
	CHECK_STR(plan, "SEARCH readings USING PRIMARY KEY (series_id=? AND ts=?)");
	plan_of(db, http_query_sql(Q_MERGE_0), plan, sizeof(plan));
	CHECK(strstr(plan, "SEARCH readings USING PRIMARY KEY (series_id=? AND ts>? AND ts<?)") != NULL);
	CHECK_STR(http_query_sql(Q_MERGE_0), http_query_sql(Q_MERGE_0 + MERGE_MAX - 1));
	CHECK(http_query_sql(Q_COUNT) == NULL);
}

int main(void)
{
	struct store_options o = {.sync_full = false, .track_gaps = true};
	struct store *st;
	sqlite3 *db;
	char path[256];
	int err = 0;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/plans.db", dir);
	st = store_open(path, &o, &err);
	CHECK(st != NULL);
	if (!st)
		return 1;
	store_close(st);
	CHECK_INT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db,
			       "INSERT INTO stations(id, name) VALUES (1, 'DT-W01'), (2, 'TRAP-01');"
			       "INSERT INTO series(id, station_id, sensor, metric) VALUES"
			       " (1, 1, 'sonde1', 'salinity'), (2, 1, 'sonde1', 'water_temperature'),"
			       " (3, 2, 'trap1-bph', 'insect_count');"
			       "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)"
			       " INSERT INTO readings(series_id, ts, value, unit, q, received_at)"
			       " SELECT s.id, 1700000000000 + i * 900000, i % 7, 'u', 0, 1 FROM n,"
			       " (SELECT id FROM series) s;",
			       NULL, NULL, NULL), SQLITE_OK);
	test_plans(db);
	sqlite3_close(db);
	unlink(path);
	rmdir(dir);
	return test_main("test_gateway_http_plans");
}
