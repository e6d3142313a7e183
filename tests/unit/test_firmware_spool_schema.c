/*
 * The spool's schema versions (firmware/src/spool.c, docs/update.md "Spool
 * schema changes"): a spool written before versions (user_version 0) is
 * migrated at open with its batches and counters kept; a spool from a
 * newer release (an update that rolled back) opens as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "spool.h"
#include "test.h"

static char dir[] = "/tmp/agri-spool-schema-XXXXXX";
static char path[300];

static void exec(const char *sql)
{
	sqlite3 *db = NULL;

	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static long long user_version(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	sqlite3_open(path, &db);
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void clean(void)
{
	char p[320];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

int main(void)
{
	struct spool *s = NULL;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/spool.db", dir);

	/* A spool as the first release wrote it: no user_version. */
	exec("CREATE TABLE batches(seq INTEGER PRIMARY KEY, payload BLOB NOT NULL, "
	     "created INTEGER NOT NULL, bytes INTEGER NOT NULL);"
	     "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	     "INSERT INTO batches VALUES (7, x'7b7d', 1, 2), (8, x'7b7d', 2, 2);"
	     "INSERT INTO meta VALUES ('next_seq', 9), ('dropped', 3);");
	CHECK_INT(user_version(), 0);
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	if (s) {
		CHECK_INT(spool_depth(s), 2);
		CHECK_INT(spool_next_seq(s), 9);
		CHECK_INT(spool_dropped(s), 3);
		CHECK_INT(spool_put(s, 9, "{}", 2, 3), 0);
		spool_close(s);
	}
	CHECK_INT(user_version(), 1);
	/* Opened again: nothing to migrate, the batches are there. */
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	if (s) {
		CHECK_INT(spool_depth(s), 3);
		spool_close(s);
	}

	/* A spool a newer release migrated (a table this one does not know),
	 * after a rollback: opened and used as it is. */
	exec("CREATE TABLE later(x); PRAGMA user_version = 7;");
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	if (s) {
		CHECK_INT(spool_depth(s), 3);
		CHECK_INT(spool_put(s, spool_next_seq(s), "{}", 2, 4), 0);
		spool_close(s);
	}
	CHECK_INT(user_version(), 7);

	/* A new spool starts at the current version. */
	clean();
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	spool_close(s);
	CHECK_INT(user_version(), 1);
	clean();
	rmdir(dir);
	return test_main("test_firmware_spool_schema");
}
