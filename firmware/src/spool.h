/*
 * The durable spool (docs/spool.md): telemetry batches kept in SQLite
 * (WAL, synchronous=FULL) from the moment they are sealed until a
 * gateway's end-to-end ack names their seq. seq is assigned here, strictly
 * increasing and never reused (persisted next to the batches). The spool
 * is bounded: putting a batch past max_bytes drops the oldest batches,
 * counting them in a persisted counter.
 *
 * Resend bookkeeping (which batch was sent when, and when it may be sent
 * again) is kept in an in-memory table: after a restart every batch is
 * due again. Not thread-safe: the station's main thread owns the spool.
 * SQLite's failures come back as agri_sqlite_errno()'s negative errnos
 * (agri/sqlite_errno.h: -ENOSPC, -EBUSY, -EROFS, -EIO ...), as the
 * gateway's store reports them.
 */
#ifndef STATION_SPOOL_H
#define STATION_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;

/* Opens (creating) the spool database at path. Returns 0 or -errno. */
int spool_open(const char *path, uint64_t max_bytes, struct spool **out);
void spool_close(struct spool *s);
void spool_set_max_bytes(struct spool *s, uint64_t max_bytes);

/* The seq the next spool_put must use. */
uint64_t spool_next_seq(const struct spool *s);

/*
 * Commits a batch (payload encoded with seq == spool_next_seq()) durably,
 * dropping the oldest batches first if it would not fit. Returns 0,
 * -ENOSPC (disk full), -EFBIG (larger than the whole spool) or another
 * negative errno (-EIO ...).
 */
int spool_put(struct spool *s, uint64_t seq, const void *payload, size_t len,
	      int64_t now_ms);

/* Deletes the batches first..last (acked end to end). Returns how many
 * were deleted, or -errno. */
int spool_ack(struct spool *s, uint64_t first, uint64_t last);

/*
 * The batch to send next: the oldest batch that is due (never sent since
 * open/spool_resend_all, or its ack timed out) — or, with newest, the
 * newest due batch with seq >= min_seq. Copies its payload into buf.
 * Returns 0, -EAGAIN (nothing due), -ENOSPC (buf too small) or another
 * negative errno (-EIO ...).
 */
int spool_pick(struct spool *s, int64_t now_mono_ms, bool newest,
	       uint64_t min_seq, uint64_t *seq, char *buf, size_t cap,
	       size_t *len);

/*
 * Records that seq was published at now: it is due again after
 * min(cap_ms, timeout_ms * 2^attempts) (attempts counted since the last
 * spool_resend_all). Returns 0 or -EIO.
 */
int spool_mark_sent(struct spool *s, uint64_t seq, int64_t now_mono_ms,
		    int64_t timeout_ms, int64_t cap_ms);

/* Every batch is due again (after a reconnect); backoff restarts. */
void spool_resend_all(struct spool *s);

/* Batches sent and still waiting for their ack (not yet timed out). */
int64_t spool_outstanding(struct spool *s, int64_t now_mono_ms);
/* The earliest time a waiting batch times out; INT64_MAX when none. */
int64_t spool_next_due(struct spool *s);

uint64_t spool_depth(const struct spool *s);   /* batches */
uint64_t spool_bytes(const struct spool *s);   /* payload bytes */
uint64_t spool_dropped(const struct spool *s); /* batches dropped, ever */
/* When the oldest batch still waiting for its ack was sealed (the now_ms
 * given to spool_put); 0 when the spool is empty. */
int64_t spool_oldest_ms(struct spool *s);

#endif
