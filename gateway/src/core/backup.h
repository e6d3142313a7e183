/*
 * Backups of the hub's database and their restore (docs/recovery.md).
 *
 * backup_copy() takes a consistent copy while the gateway runs: SQLite's
 * online backup API in one step, i.e. inside one read transaction (WAL:
 * the writer goes on committing meanwhile; the copy is the database as
 * of one commit). The copy is a standalone file (rollback journal mode,
 * no -wal beside it), checked with PRAGMA integrity_check, synced, and
 * renamed into place, so a power cut leaves either the old backup or the
 * new one, never half of one. A backup_info table in the copy says when
 * and from where it was taken.
 *
 * backup_restore() puts a checked backup in place of the database of a
 * stopped gateway (a new board after a dead one): refused while another
 * process has the database open, or when one exists and force is not
 * given (then the old file is moved aside, never deleted).
 *
 * The schedule (backup_sched_*): one thread takes a backup into the
 * configured directory whenever the newest one there is older than
 * backup.every_h, and deletes all but the newest backup.keep.
 *
 * Functions return 0 or a negative errno with a one-line reason in why.
 */
#ifndef GATEWAY_CORE_BACKUP_H
#define GATEWAY_CORE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/backup.h" /* backup_main(): the commands */
#include "gateway/config.h"

/* What a backup holds. */
struct backup_info {
	int64_t taken_ms;      /* when the copy was taken (wall clock) */
	int64_t bytes;         /* the file's size */
	int64_t copy_ms;       /* how long the copy took (backup_copy) */
	int64_t check_ms;      /* how long integrity_check took */
	int schema;            /* PRAGMA user_version */
	int64_t stations, series, readings, outbox_pending, queued;
	int64_t newest_ms;     /* the newest last_seen of any station */
};

/* A consistent copy of the database at db_path into dest (a file, or a
 * directory: then dest/agri-YYYYMMDDTHHMMSSZ.db). out_path (may be NULL)
 * receives the file written. */
int backup_copy(const char *db_path, const char *dest, char *out_path, size_t out_len,
		struct backup_info *info, char *why, size_t why_len);

/* Checks a backup (or any gateway database): integrity_check, a schema
 * this program knows, the gateway's tables. Fills *info. */
int backup_check(const char *path, struct backup_info *info, char *why, size_t why_len);

/* Restores src into db_path (see above). moved_to (may be NULL) receives
 * where an existing database was moved, "" when there was none. */
int backup_restore(const char *src, const char *db_path, bool force, char *moved_to,
		   size_t moved_len, struct backup_info *info, char *why, size_t why_len);

/* Deletes all but the newest keep backups (agri-*.db) in dir. Returns
 * the number deleted or a negative errno. */
int backup_rotate(const char *dir, int keep);

/* The scheduled backups of cfg->backup (NULL when no backup.dir). */
struct backup_sched;
struct backup_sched *backup_sched_new(const struct gateway_config *cfg);
/* Starts the thread; the first backup is due when the newest in the
 * directory is older than every_h (a restart does not take one more). */
int backup_sched_start(struct backup_sched *b);
/* Stops (a backup in progress finishes first) and frees; accepts NULL. */
void backup_sched_free(struct backup_sched *b);

#endif
