/*
 * Retention (docs/store.md, Retention): raw readings past retention_days
 * folded into hourly aggregates one series at a time; and the WAL
 * checkpoint on the store's second connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/store_int.h"
#include "agri/sqlite_errno.h"

/* --- retention ------------------------------------------------------ */

/* Smallest ts of series, or -1 when it has no raw readings. */
static int series_min_ts(struct store *st, int64_t series, int64_t *ts)
{
	sqlite3_stmt *q = st->s[S_RET_MIN_TS];
	int rc;

	sqlite3_bind_int64(q, 1, series);
	rc = sqlite3_step(q);
	*ts = (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		      ? sqlite3_column_int64(q, 0) : -1;
	sqlite3_reset(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
}

int store_retention_step(struct store *st, int64_t now_ms, int retention_days,
			 int max_rows)
{
	int64_t cutoff, series = -1, min_ts, end;
	sqlite3_stmt *q;
	int rc, moved;

	if (retention_days <= 0 || st->in_tx)
		return 0;
	cutoff = (now_ms - (int64_t)retention_days * 86400000LL) / HOUR_MS * HOUR_MS;
	/* Visit up to 64 series for one with expired readings. */
	for (int i = 0; i < 64; i++) {
		q = st->s[S_RET_NEXT_SERIES];
		sqlite3_bind_int64(q, 1, st->ret_cursor);
		rc = sqlite3_step(q);
		series = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
		sqlite3_reset(q);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return agri_sqlite_errno(rc);
		if (series < 0) {
			st->ret_cursor = 0; /* a pass is done */
			return 0;
		}
		if ((rc = series_min_ts(st, series, &min_ts)) < 0)
			return rc;
		if (min_ts >= 0 && min_ts < cutoff)
			break;
		st->ret_cursor = series;
		series = -1;
	}
	if (series < 0)
		return 0;
	/* Whole hours, about max_rows rows. */
	end = cutoff;
	q = st->s[S_RET_NTH_TS];
	sqlite3_bind_int64(q, 1, series);
	sqlite3_bind_int64(q, 2, cutoff);
	sqlite3_bind_int64(q, 3, max_rows > 0 ? max_rows : 1000);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		end = sqlite3_column_int64(q, 0) / HOUR_MS * HOUR_MS;
		if (end <= min_ts)
			end = min_ts / HOUR_MS * HOUR_MS + HOUR_MS;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	if ((rc = store_begin(st)) < 0)
		return rc;
	q = st->s[S_RET_AGG];
	sqlite3_bind_int64(q, 1, series);
	sqlite3_bind_int64(q, 2, end);
	if ((rc = st_step_done(q)) < 0)
		goto fail;
	q = st->s[S_RET_DEL];
	sqlite3_bind_int64(q, 1, series);
	sqlite3_bind_int64(q, 2, end);
	if ((rc = st_step_done(q)) < 0)
		goto fail;
	moved = sqlite3_changes(st->db);
	if ((rc = store_commit(st)) < 0)
		return rc;
	return moved > 0 ? moved : 1;
fail:
	store_rollback(st);
	return rc;
}

/* --- maintenance ----------------------------------------------------- */

int store_checkpoint(struct store *st)
{
	int log_frames = 0, done_frames = 0, rc;

	if (!st->ckpt) {
		rc = sqlite3_open_v2(st->path, &st->ckpt,
				     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
		/* A connection that has never read the database has not
		 * opened its WAL yet, and checkpointing on it does nothing
		 * (reports -1 frames): one read first. */
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(st->ckpt, "SELECT count(*) FROM sqlite_schema",
					  NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			sqlite3_close_v2(st->ckpt);
			st->ckpt = NULL;
			return agri_sqlite_errno(rc);
		}
	}
	rc = sqlite3_wal_checkpoint_v2(st->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE,
				       &log_frames, &done_frames);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	return done_frames > 0 ? done_frames : 0;
}

int64_t store_station_gaps(struct store *st, const char *station)
{
	sqlite3_stmt *q = NULL;
	int64_t gaps;
	int rc;

	rc = sqlite3_prepare_v2(st->db, "SELECT coalesce(gaps, 0) FROM stations WHERE name = ?1",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	gaps = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0)
				: (rc == SQLITE_DONE ? -ENOENT : agri_sqlite_errno(rc));
	sqlite3_finalize(q);
	return gaps;
}
