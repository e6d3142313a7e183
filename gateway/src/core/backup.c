/*
 * Backups and restores of the hub's database (backup.h, docs/recovery.md):
 * the copy (SQLite's online backup API in one step: one read
 * transaction), the checks, the restore onto a stopped gateway, the
 * rotation and the schedule's thread, and the `backup` / `restore`
 * commands of agri-gateway.
 */
#include "core/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/store.h"

#define LOG "backup"
#define BUSY_TRIES 200        /* x 50 ms: a writer's lock, a checkpoint */
#define SCHED_LOOK_MS 60000   /* the schedule looks this often */
#define SCHED_FIRST_MS 10000  /* ... and first this long after start */
#define NAME_PREFIX "agri-"
#define NAME_SUFFIX ".db"

/* --- files ------------------------------------------------------------------ */

static void dir_of(const char *path, char *dir, size_t len)
{
	char *slash;

	snprintf(dir, len, "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, len, ".");
}

/* fsync of a file, then of its directory (the rename or the new name). */
static int sync_file_and_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	dir_of(path, dir, sizeof(dir));
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return rc;
}

static bool exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Removes path's -wal, -shm and -journal (a stale one must never be
 * replayed into another database of the same name). */
static void unlink_sidecars(const char *path)
{
	static const char *const sfx[] = {"-wal", "-shm", "-journal"};
	char p[PATH_MAX + 16];

	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

/* "agri-20261207T031500Z.db" for now. */
static void backup_name(char *out, size_t len, int64_t now_ms)
{
	time_t t = (time_t)(now_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, len, NAME_PREFIX "%04d%02d%02dT%02d%02d%02dZ" NAME_SUFFIX, tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool is_backup_name(const char *name)
{
	size_t n = strlen(name);

	return n == strlen(NAME_PREFIX "20261207T031500Z" NAME_SUFFIX) &&
	       strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)) == 0 &&
	       strcmp(name + n - strlen(NAME_SUFFIX), NAME_SUFFIX) == 0;
}

/* --- SQLite helpers ---------------------------------------------------------- */

static int64_t q_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static bool has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st;
	bool yes = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

/* Copies the whole of src into dst (empty) in one step: one read
 * transaction on src, so the copy is src as of one commit. */
static int copy_all(sqlite3 *src, sqlite3 *dst, char *why, size_t len)
{
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int rc;

	if (!b) {
		util_why(why, len, "cannot start the copy: %s", sqlite3_errmsg(dst));
		return agri_sqlite_errno(sqlite3_errcode(dst));
	}
	for (int i = 0; i < BUSY_TRIES; i++) {
		rc = sqlite3_backup_step(b, -1);
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		sqlite3_sleep(50);
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		util_why(why, len, "copy failed: %s", sqlite3_errstr(rc));
		return agri_sqlite_errno(rc);
	}
	return 0;
}

static int exec(sqlite3 *db, const char *sql, char *why, size_t len)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		util_why(why, len, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return agri_sqlite_errno(rc);
	}
	return 0;
}

/* integrity_check == "ok", else why names the first problem. */
static int integrity(sqlite3 *db, const char *path, int64_t *ms, char *why, size_t len)
{
	sqlite3_stmt *st;
	int64_t t0 = util_mono_ms();
	int rc = -EUCLEAN;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		util_why(why, len, "%s: cannot check: %s", path, sqlite3_errmsg(db));
		return agri_sqlite_errno(sqlite3_errcode(db));
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *r = (const char *)sqlite3_column_text(st, 0);

		if (r && strcmp(r, "ok") == 0)
			rc = 0;
		else
			util_why(why, len, "%s: integrity_check: %s", path, r ? r : "?");
	} else {
		util_why(why, len, "%s: integrity_check: %s", path, sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	if (ms)
		*ms = util_mono_ms() - t0;
	return rc;
}

static void fill_info(sqlite3 *db, const char *path, struct backup_info *in)
{
	struct stat sb;

	in->schema = (int)q_int(db, "PRAGMA user_version", 0);
	in->stations = q_int(db, "SELECT count(*) FROM stations", 0);
	in->series = q_int(db, "SELECT count(*) FROM series", 0);
	in->readings = q_int(db, "SELECT count(*) FROM readings", 0);
	in->newest_ms = q_int(db, "SELECT max(last_seen) FROM stations", 0);
	in->outbox_pending = has_table(db, "outbox") ?
		q_int(db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
			  " AND dropped_at IS NULL", 0) : 0;
	in->queued = has_table(db, "upstream_queue") ?
		q_int(db, "SELECT count(*) FROM upstream_queue", 0) : 0;
	if (has_table(db, "backup_info"))
		in->taken_ms = q_int(db, "SELECT value FROM backup_info WHERE key = 'taken_ms'", 0);
	if (stat(path, &sb) == 0) {
		in->bytes = (int64_t)sb.st_size;
		if (!in->taken_ms)
			in->taken_ms = (int64_t)sb.st_mtime * 1000;
	}
}

/* --- copy, check, restore ---------------------------------------------------------- */

int backup_copy(const char *db_path, const char *dest, char *out_path, size_t out_len,
		struct backup_info *info, char *why, size_t why_len)
{
	char final[PATH_MAX], tmp[PATH_MAX + 16], name[64];
	struct backup_info in = {0};
	struct stat sb;
	sqlite3 *src = NULL, *dst = NULL;
	int64_t t0 = util_mono_ms(), now = util_now_ms();
	int rc;

	if (stat(dest, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		backup_name(name, sizeof(name), now);
		if (snprintf(final, sizeof(final), "%s/%s", dest, name) >= (int)sizeof(final))
			return -ENAMETOOLONG;
	} else if (snprintf(final, sizeof(final), "%s", dest) >= (int)sizeof(final)) {
		return -ENAMETOOLONG;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", final);
	unlink(tmp);
	unlink_sidecars(tmp);
	if (!exists(db_path)) {
		util_why(why, why_len, "%s: no such database", db_path);
		return -ENOENT;
	}
	rc = sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		util_why(why, why_len, "cannot open: %s", sqlite3_errstr(rc));
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	sqlite3_busy_timeout(src, 10000);
	if ((rc = copy_all(src, dst, why, why_len)) < 0)
		goto out;
	sqlite3_close(src);
	src = NULL;
	in.copy_ms = util_mono_ms() - t0;
	/* A standalone file: no -wal to carry along. */
	{
		char *s = sqlite3_mprintf(
			"PRAGMA journal_mode = DELETE;"
			"CREATE TABLE IF NOT EXISTS backup_info(key TEXT PRIMARY KEY, value);"
			"INSERT OR REPLACE INTO backup_info VALUES ('taken_ms', %lld),"
			" ('version', %Q), ('source', %Q);",
			(long long)now, AGRI_VERSION, db_path);

		rc = s ? exec(dst, s, why, why_len) : -ENOMEM;
		sqlite3_free(s);
	}
	if (rc < 0 || (rc = integrity(dst, tmp, &in.check_ms, why, why_len)) < 0)
		goto out;
	fill_info(dst, tmp, &in);
	in.taken_ms = now;
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		util_why(why, why_len, "cannot close the copy: %s", sqlite3_errstr(rc));
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	if ((rc = sync_file_and_dir(tmp)) < 0 || rename(tmp, final) < 0 ||
	    (rc = sync_file_and_dir(final)) < 0) {
		rc = rc < 0 ? rc : -errno;
		util_why(why, why_len, "cannot write %s: %s", final, strerror(-rc));
		goto out;
	}
	if (out_path)
		snprintf(out_path, out_len, "%s", final);
	if (info)
		*info = in;
	rc = 0;
out:
	sqlite3_close(src);
	sqlite3_close(dst);
	if (rc < 0) {
		unlink(tmp);
		unlink_sidecars(tmp);
	}
	return rc;
}

/* The newest schema this program writes: what a new store gets (the
 * migrations' count; STORE_SCHEMA_VERSION may lag behind them). */
static int known_schema(void)
{
	struct store_options so = {0};
	struct store *st;
	int err = 0, v = STORE_SCHEMA_VERSION;

	if ((st = store_open(":memory:", &so, &err))) {
		v = (int)q_int(store_db(st), "PRAGMA user_version", v);
		store_close(st);
	}
	return v;
}

int backup_check(const char *path, struct backup_info *info, char *why, size_t why_len)
{
	static const char *const tables[] = {"stations", "series", "readings", "seq_ranges"};
	struct backup_info in = {0};
	sqlite3 *db = NULL;
	int rc, known;

	if (!exists(path)) {
		util_why(why, why_len, "%s: no such file", path);
		return -ENOENT;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc != SQLITE_OK) {
		util_why(why, why_len, "%s: cannot open: %s", path, sqlite3_errstr(rc));
		sqlite3_close(db);
		return agri_sqlite_errno(rc);
	}
	sqlite3_busy_timeout(db, 5000);
	if ((rc = integrity(db, path, &in.check_ms, why, why_len)) < 0)
		goto out;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		if (!has_table(db, tables[i])) {
			util_why(why, why_len, "%s: not an agri-gateway database (no table %s)", path,
				tables[i]);
			rc = -EINVAL;
			goto out;
		}
	fill_info(db, path, &in);
	known = known_schema();
	if (in.schema < 1 || in.schema > known) {
		util_why(why, why_len, "%s: schema version %d, this agri-gateway knows 1..%d%s", path,
			in.schema, known, in.schema > known ? " (written by a newer agri-gateway)" : "");
		rc = -EPROTO;
		goto out;
	}
	if (info)
		*info = in;
out:
	sqlite3_close(db);
	return rc;
}

/* -EBUSY when another connection has path open (a running gateway holds
 * a shared lock on a WAL database for as long as it has it open). */
static int not_in_use(const char *path, char *why, size_t why_len)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 500);
		rc = sqlite3_exec(db, "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; ROLLBACK;",
				  NULL, NULL, NULL);
	}
	sqlite3_close(db);
	if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
		util_why(why, why_len, "%s is in use: stop agri-gateway first", path);
		return -EBUSY;
	}
	return 0; /* another error: the file is not usable anyway */
}

static int move_aside(const char *db_path, char *moved, size_t moved_len, char *why,
		      size_t why_len)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char stamp[64], from[PATH_MAX + 16], to[PATH_MAX + 96];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (size_t i = 0; i < 3; i++) {
		snprintf(from, sizeof(from), "%s%s", db_path, sfx[i]);
		snprintf(to, sizeof(to), "%s.before-restore-%s%s", db_path, stamp, sfx[i]);
		if (exists(from) && rename(from, to) < 0) {
			util_why(why, why_len, "cannot move %s aside: %s", from, strerror(errno));
			return -errno;
		}
		if (i == 0 && moved)
			snprintf(moved, moved_len, "%s", to);
	}
	return 0;
}

int backup_restore(const char *src, const char *db_path, bool force, char *moved_to,
		   size_t moved_len, struct backup_info *info, char *why, size_t why_len)
{
	char tmp[PATH_MAX + 16];
	sqlite3 *s = NULL, *d = NULL;
	int rc;

	if (moved_to && moved_len)
		moved_to[0] = '\0';
	if ((rc = backup_check(src, info, why, why_len)) < 0)
		return rc;
	if (exists(db_path)) {
		if ((rc = not_in_use(db_path, why, why_len)) < 0)
			return rc;
		if (!force) {
			util_why(why, why_len, "%s exists: give --force to move it aside and restore",
				db_path);
			return -EEXIST;
		}
		if ((rc = move_aside(db_path, moved_to, moved_len, why, why_len)) < 0)
			return rc;
	}
	snprintf(tmp, sizeof(tmp), "%s.restore-tmp", db_path);
	unlink(tmp);
	unlink_sidecars(tmp);
	rc = sqlite3_open_v2(src, &s, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(tmp, &d, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		util_why(why, why_len, "cannot open: %s", sqlite3_errstr(rc));
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	if ((rc = copy_all(s, d, why, why_len)) < 0 ||
	    (rc = exec(d, "PRAGMA journal_mode = DELETE; DROP TABLE IF EXISTS backup_info;", why,
		       why_len)) < 0 ||
	    (rc = integrity(d, tmp, NULL, why, why_len)) < 0)
		goto out;
	rc = sqlite3_close(d);
	d = NULL;
	if (rc != SQLITE_OK) {
		util_why(why, why_len, "cannot close %s: %s", tmp, sqlite3_errstr(rc));
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	unlink_sidecars(db_path); /* never replay an old WAL into the new file */
	if ((rc = sync_file_and_dir(tmp)) < 0 || rename(tmp, db_path) < 0 ||
	    (rc = sync_file_and_dir(db_path)) < 0) {
		rc = rc < 0 ? rc : -errno;
		util_why(why, why_len, "cannot write %s: %s", db_path, strerror(-rc));
		goto out;
	}
	rc = 0;
out:
	sqlite3_close(s);
	sqlite3_close(d);
	if (rc < 0) {
		unlink(tmp);
		unlink_sidecars(tmp);
	}
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The backups in dir, sorted oldest first (the names sort by time). */
static int list_backups(const char *dir, char ***out, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!is_backup_name(de->d_name))
			continue;
		if (*n == cap) {
			char **w = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!w)
				break;
			v = w;
		}
		if (!(v[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_names);
	*out = v;
	return 0;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int backup_rotate(const char *dir, int keep)
{
	char **v = NULL, p[PATH_MAX];
	size_t n = 0;
	int rc, gone = 0;

	if ((rc = list_backups(dir, &v, &n)) < 0)
		return rc;
	for (size_t i = 0; n > (size_t)keep && i < n - (size_t)keep; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, v[i]);
		if (unlink(p) == 0)
			gone++;
	}
	free_list(v, n);
	return gone;
}

/* --- the schedule ------------------------------------------------------------------ */

struct backup_sched {
	char db_path[PATH_MAX];
	char dir[PATH_MAX];
	int64_t every_ms;
	int keep;
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct log_complaint fail;
};

/* When the newest backup in dir was taken (its name), 0 when none. */
static int64_t newest_backup_ms(const char *dir)
{
	char **v = NULL;
	size_t n = 0;
	struct tm tm = {0};
	int64_t ms = 0;

	if (list_backups(dir, &v, &n) == 0 && n &&
	    sscanf(v[n - 1] + strlen(NAME_PREFIX), "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6) {
		tm.tm_year -= 1900;
		tm.tm_mon -= 1;
		ms = (int64_t)timegm(&tm) * 1000;
	}
	free_list(v, n);
	return ms;
}

static void sched_once(struct backup_sched *b)
{
	struct backup_info in;
	char out[PATH_MAX], why[512] = "";
	int rc, gone;

	if (util_now_ms() - newest_backup_ms(b->dir) < b->every_ms)
		return;
	rc = backup_copy(b->db_path, b->dir, out, sizeof(out), &in, why, sizeof(why));
	if (rc < 0) {
		log_complain(&b->fail, LOG_LVL_ERROR, LOG, "scheduled backup failed dir=%s error=\"%s\"",
			     b->dir, why[0] ? why : strerror(-rc));
		return;
	}
	log_release(&b->fail, LOG, "scheduled backups work again");
	gone = backup_rotate(b->dir, b->keep);
	log_info(LOG, "backup taken file=%s bytes=%" PRId64 " readings=%" PRId64 " copy_ms=%" PRId64
		 " check_ms=%" PRId64 " rotated=%d", out, in.bytes, in.readings, in.copy_ms,
		 in.check_ms, gone < 0 ? 0 : gone);
}

static void *sched_main(void *arg)
{
	struct backup_sched *b = arg;
	int64_t wait_ms = SCHED_FIRST_MS;

	pthread_mutex_lock(&b->mu);
	while (!b->stop) {
		struct timespec until;

		util_deadline(&until, CLOCK_MONOTONIC, wait_ms);
		pthread_cond_timedwait(&b->cv, &b->mu, &until);
		if (b->stop)
			break;
		pthread_mutex_unlock(&b->mu);
		sched_once(b);
		pthread_mutex_lock(&b->mu);
		wait_ms = SCHED_LOOK_MS;
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

struct backup_sched *backup_sched_new(const struct gateway_config *cfg)
{
	struct backup_sched *b;

	if (!cfg->backup.dir[0] || !(b = calloc(1, sizeof(*b))))
		return NULL;
	snprintf(b->db_path, sizeof(b->db_path), "%s", cfg->db.path);
	snprintf(b->dir, sizeof(b->dir), "%s", cfg->backup.dir);
	b->every_ms = cfg->backup.every_h * 3600000;
	b->keep = (int)cfg->backup.keep;
	pthread_mutex_init(&b->mu, NULL);
	util_cond_init_mono(&b->cv);
	return b;
}

int backup_sched_start(struct backup_sched *b)
{
	int rc;

	if (!b)
		return 0;
	if ((rc = util_mkdirs(b->dir, 0750)) < 0) {
		log_error(LOG, "cannot make the backup directory dir=%s error=\"%s\"", b->dir,
			  strerror(-rc));
		return rc;
	}
	if ((rc = pthread_create(&b->thread, NULL, sched_main, b)) != 0)
		return -rc;
	b->started = true;
	log_info(LOG, "scheduled backups dir=%s every_h=%" PRId64 " keep=%d", b->dir,
		 b->every_ms / 3600000, b->keep);
	return 0;
}

void backup_sched_free(struct backup_sched *b)
{
	if (!b)
		return;
	if (b->started) {
		pthread_mutex_lock(&b->mu);
		b->stop = true;
		pthread_cond_signal(&b->cv);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->thread, NULL);
	}
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	free(b);
}

/* --- the commands ------------------------------------------------------------------ */

#define EX_OK 0
#define EX_FAIL 1
#define EX_USAGE_ 2
#define EX_CONFIG_ 78

static void print_info(FILE *f, const char *what, const char *path, const struct backup_info *in)
{
	char taken[40] = "-", newest[40] = "-";

	if (in->taken_ms)
		agri_time_format(in->taken_ms, taken, sizeof(taken));
	if (in->newest_ms)
		agri_time_format(in->newest_ms, newest, sizeof(newest));
	fprintf(f, "%s %s: %" PRId64 " bytes, schema %d, taken %s; %" PRId64 " stations, %" PRId64
		" series, %" PRId64 " readings (newest station seen %s), %" PRId64
		" notifications pending, %" PRId64 " readings queued upstream",
		what, path, in->bytes, in->schema, taken, in->stations, in->series, in->readings,
		newest, in->outbox_pending, in->queued);
	if (in->copy_ms || in->check_ms)
		fprintf(f, "; copy %" PRId64 " ms, integrity_check %" PRId64 " ms", in->copy_ms,
			in->check_ms);
	fputc('\n', f);
}

static void cmd_usage(FILE *f)
{
	fprintf(f,
		"usage: agri-gateway backup [--config FILE] DEST\n"
		"       agri-gateway restore [--config FILE] [--force] SRC\n"
		"       agri-gateway restore --check SRC\n"
		"\n"
		"backup: a consistent copy of the database while the gateway runs (DEST: a file,\n"
		"or a directory for agri-YYYYMMDDTHHMMSSZ.db), checked and synced.\n"
		"restore: checks SRC (integrity, schema, tables) and puts it in place of db.path\n"
		"of a stopped gateway; an existing database is refused, or moved aside with\n"
		"--force. See docs/recovery.md.\n"
		"\n"
		"  -c, --config FILE   gateway configuration (default /etc/agri/gateway.json)\n"
		"  -f, --force         restore: move an existing database aside\n"
		"  -k, --check         restore: only check SRC and print what it holds\n");
}

int backup_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"force", no_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct gateway_config cfg;
	const char *config = "/etc/agri/gateway.json", *cmd = argv[0];
	bool force = false, check = false, is_backup = strcmp(cmd, "backup") == 0;
	struct agri_err err = {0};
	struct backup_info in = {0};
	char why[1024] = "", out[PATH_MAX], moved[PATH_MAX + 96], msg[600];
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:fkh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'k':
			check = true;
			break;
		case 'h':
			cmd_usage(stdout);
			return EX_OK;
		default:
			fprintf(stderr, "agri-gateway %s: bad option '%s' (try --help)\n", cmd,
				argv[optind - 1]);
			return EX_USAGE_;
		}
	}
	if (optind != argc - 1 || (is_backup && (force || check))) {
		cmd_usage(stderr);
		return EX_USAGE_;
	}
	if (check) {
		if ((rc = backup_check(argv[optind], &in, why, sizeof(why))) < 0) {
			fprintf(stderr, "agri-gateway restore: %s\n", why);
			return EX_FAIL;
		}
		print_info(stdout, "ok", argv[optind], &in);
		return EX_OK;
	}
	if (gateway_config_load(config, &cfg, &err) < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		fprintf(stderr, "%s: %s\n", config, msg);
		return EX_CONFIG_;
	}
	if (is_backup) {
		rc = backup_copy(cfg.db.path, argv[optind], out, sizeof(out), &in, why, sizeof(why));
		if (rc < 0) {
			fprintf(stderr, "agri-gateway backup: %s\n", why[0] ? why : strerror(-rc));
			return EX_FAIL;
		}
		print_info(stdout, "backup", out, &in);
		return EX_OK;
	}
	rc = backup_restore(argv[optind], cfg.db.path, force, moved, sizeof(moved), &in, why,
			    sizeof(why));
	if (rc < 0) {
		fprintf(stderr, "agri-gateway restore: %s\n", why[0] ? why : strerror(-rc));
		return EX_FAIL;
	}
	if (moved[0])
		printf("the database that was there is now %s\n", moved);
	print_info(stdout, "restored", cfg.db.path, &in);
	printf("start agri-gateway: stations resend what this backup lacks and they still hold;"
	       " forwarders resume from the backup's cursors (docs/recovery.md)\n");
	return EX_OK;
}
