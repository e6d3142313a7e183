/*
 * A power-cut simulator for SQLite files (docs/reliability.md), in the
 * manner of SQLite's own crash tests (src/test6.c) and Jepsen's LazyFS: a
 * VFS shim over the default "unix" VFS that writes through to the real
 * files but remembers, per file, every write and truncate since that
 * file's last xSync (with the bytes it replaced). A crash point is armed
 * as "the Nth mutating call (write, truncate, sync) from now": that call
 * and every later one fail with SQLITE_IOERR and change nothing, as if
 * the power went at that instant. Once the test has closed every handle,
 * pc_powercut() decides what the disk had actually written: for each file
 * it undoes every unsynced change, then puts back a random subset of them
 * (whole 4 KiB pages, in any order, or an in-order prefix, or all, or
 * none), tearing the last page kept at 512-byte sectors and sometimes
 * garbling one unsynced sector. The real xSync is never called (the
 * simulation is the durability model), which makes thousands of crash
 * points cheap.
 *
 * Not modelled: a deleted or newly created file coming back or vanishing
 * (directory entries are taken as durable at once; SQLite syncs the
 * directory of a new WAL or journal itself), and the -shm file (SQLite
 * rebuilds it from the WAL when the first connection opens the database).
 *
 * Threads: every entry point takes one mutex; pc_powercut() requires
 * every tracked file to be closed.
 */
#ifndef AGRI_POWERCUT_VFS_H
#define AGRI_POWERCUT_VFS_H

#include <stdbool.h>
#include <stdint.h>

/* What the last pc_powercut() did, summed over its files. */
struct pc_cut_stats {
	uint64_t files;        /* files with unsynced changes */
	uint64_t ops;          /* unsynced writes and truncates seen */
	uint64_t pages_kept;   /* 4 KiB pages put back */
	uint64_t pages_lost;   /* 4 KiB pages thrown away */
	uint64_t torn;         /* pages put back torn (some sectors only) */
	uint64_t garbled;      /* sectors filled with garbage */
};

/* Registers the shim as "powercut" over "unix"; as the default VFS when
 * make_default. Returns SQLITE_OK or an SQLite code. Idempotent. */
int pc_vfs_register(bool make_default);

/* Crash at the nth mutating call from now (1: the very next); 0 disarms. */
void pc_arm(uint64_t nth);
/* True once an armed crash point was reached (until pc_powercut()). */
bool pc_crashed(void);
/* Mutating calls seen since the start (writes, truncates, syncs). */
uint64_t pc_ops(void);

/* The power comes back: every tracked file must be closed. Applies the
 * loss described above with the caller's rng, clears the crash and
 * returns 0, or -EBUSY when a file is still open, -EIO on an I/O error. */
int pc_powercut(uint32_t *rng, struct pc_cut_stats *stats);

/* A disk that acknowledges xSync without writing anything (SQLite's
 * howtocorrupt.html, "disks that ignore sync"): for the tests' self-check
 * that the harness does catch lost commits. */
void pc_set_lying_disk(bool lying);

/* Forgets what is unsynced (as if every file had been synced) and
 * disarms; for a fresh start between runs. */
void pc_reset(void);

/* xorshift32: the tests' one source of randomness (seeded, repeatable). */
static inline uint32_t pc_rand(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

#endif
