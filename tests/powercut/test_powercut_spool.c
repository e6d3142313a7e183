/*
 * Power cuts against the station's spool (firmware/src/spool.c, the real
 * code, in-process over the power-cut VFS: powercut_vfs.h). A station
 * seals batches (spool_put) while a gateway acks some of them
 * (spool_ack); at a random mutating I/O call the power goes, the spool is
 * closed, the disk keeps a random part of what was not synced, and the
 * spool is opened again. After every crash point:
 *
 *   - PRAGMA integrity_check is "ok";
 *   - every batch whose spool_put returned 0 is still in the spool with
 *     its exact bytes, unless an ack for it returned (then it is gone);
 *   - a batch whose put or ack was cut short is there or not, never
 *     changed;
 *   - no seq ever committed is handed out again (spool_next_seq()).
 *
 * Usage: test_powercut_spool [crash points (default 2000)] [seed]
 * (POWERCUT_POINTS in the environment overrides the default).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "powercut_vfs.h"
#include "spool.h"
#include "test.h"

#define MAX_SEQ 200000
#define EPOCH_POINTS 100 /* crash points on one database before a fresh one */
#define STEPS_MAX 60     /* operations between two crash points, at most */

enum { S_NONE, S_MAYBE, S_COMMITTED, S_ACK_MAYBE, S_ACKED };

static unsigned char state[MAX_SEQ];
static uint64_t max_committed; /* highest seq ever committed */
static char dir[64] = "/tmp/agri-powercut-spool-XXXXXX";
static char path[256];
static uint64_t n_points, n_put, n_ack, n_maybe_put, n_maybe_ack, n_lost, n_changed,
	n_resurrected, n_reused, n_corrupt;
static struct pc_cut_stats cut_sum;
static bool quiet;
static bool fresh; /* the database is beyond repair: start a new one */ /* the self-check expects losses: do not list them */

/* The bytes of batch seq: 40..1500 bytes, repeatable from seq. */
static size_t payload_of(uint64_t seq, unsigned char *buf)
{
	uint32_t r = (uint32_t)(seq * 2654435761u) | 1u;
	size_t len = 40 + pc_rand(&r) % 1460;
	int n = snprintf((char *)buf, 32, "{\"seq\":%" PRIu64 ",", seq);

	for (size_t i = (size_t)n; i < len; i++)
		buf[i] = (unsigned char)('a' + pc_rand(&r) % 26);
	return len;
}

static void remove_files(void)
{
	char p[300];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

/* Ack a short run of the oldest committed, unacked batches. */
static int ack_some(struct spool *s, uint32_t *rng)
{
	uint64_t first = 0, last;
	int rc;

	for (uint64_t q = 1; q <= max_committed; q++)
		if (state[q] == S_COMMITTED || state[q] == S_ACK_MAYBE) {
			first = q;
			break;
		}
	if (!first)
		return 0;
	last = first + pc_rand(rng) % 4;
	if (last > max_committed)
		last = max_committed;
	rc = spool_ack(s, first, last);
	for (uint64_t q = first; q <= last; q++) {
		if (state[q] != S_COMMITTED && state[q] != S_ACK_MAYBE && state[q] != S_MAYBE)
			continue;
		if (rc >= 0)
			state[q] = S_ACKED;
		else if (pc_crashed() && state[q] == S_COMMITTED)
			state[q] = S_ACK_MAYBE;
	}
	if (rc >= 0)
		n_ack++;
	else if (pc_crashed())
		n_maybe_ack++;
	return rc;
}

/* The station at work until the power goes. */
static void run_until_crash(struct spool *s, uint32_t *rng)
{
	static unsigned char buf[2048];
	char out[2048];
	size_t len;
	uint64_t seq;
	int rc;

	for (int step = 0; !pc_crashed(); step++) {
		uint32_t r = pc_rand(rng) % 10;

		if (step == STEPS_MAX)
			pc_arm(1); /* the battery is flat now */
		if (r < 6) {
			seq = spool_next_seq(s);
			if (seq >= MAX_SEQ)
				return;
			len = payload_of(seq, buf);
			rc = spool_put(s, seq, buf, len, 0);
			if (rc == 0) {
				state[seq] = S_COMMITTED;
				if (seq > max_committed)
					max_committed = seq;
				n_put++;
			} else if (pc_crashed()) {
				if (state[seq] == S_NONE)
					state[seq] = S_MAYBE;
				n_maybe_put++;
			} else {
				n_corrupt++;
				if (!quiet)
					printf("powercut spool: put failed: %s\n", strerror(-rc));
				pc_arm(1);
				fresh = true;
			}
		} else if (r < 9) {
			rc = ack_some(s, rng);
			if (rc < 0 && !pc_crashed()) {
				n_corrupt++;
				if (!quiet)
					printf("powercut spool: ack failed: %s\n", strerror(-rc));
				pc_arm(1);
				fresh = true;
			}
		} else if (spool_pick(s, 0, r & 1, 0, &seq, out, sizeof(out), &len) == 0) {
			spool_mark_sent(s, seq, 0, 1000, 8000); /* memory only */
		}
	}
}

static int64_t integrity_ok(void)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int ok = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

/* After the power came back: the invariants, from the spool's own file. */
static void verify(void)
{
	static unsigned char want[2048];
	static unsigned char seen[MAX_SEQ];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct spool *s = NULL;
	int rc;

	if (!integrity_ok()) {
		n_corrupt++;
		if (!quiet)
			printf("powercut spool: integrity_check is not ok after a power cut\n");
		fresh = true;
		return;
	}
	memset(seen, 0, sizeof(seen));
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT seq, payload FROM batches ORDER BY seq", -1, &st,
			       NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t seq = sqlite3_column_int64(st, 0);
			size_t len;

			if (seq <= 0 || seq >= MAX_SEQ) {
				n_changed++;
				continue;
			}
			seen[seq] = 1;
			len = payload_of((uint64_t)seq, want);
			if ((size_t)sqlite3_column_bytes(st, 1) != len ||
			    memcmp(sqlite3_column_blob(st, 1), want, len) != 0) {
				n_changed++;
				if (!quiet)
					printf("powercut spool: batch %lld changed\n", (long long)seq);
			}
			if (state[seq] == S_ACKED) {
				n_resurrected++;
				if (!quiet)
					printf("powercut spool: batch %lld acked but back\n",
					       (long long)seq);
			} else if (state[seq] == S_NONE) {
				n_changed++;
				if (!quiet)
					printf("powercut spool: batch %lld never put\n", (long long)seq);
			} else if (state[seq] == S_MAYBE) {
				state[seq] = S_COMMITTED; /* it made it after all */
				if ((uint64_t)seq > max_committed)
					max_committed = (uint64_t)seq;
			}
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	for (uint64_t q = 1; q <= max_committed; q++) {
		if (state[q] == S_COMMITTED && !seen[q]) {
			n_lost++;
			if (!quiet)
				printf("powercut spool: committed batch %" PRIu64 " lost\n", q);
		}
		if (state[q] == S_ACK_MAYBE)
			state[q] = seen[q] ? S_COMMITTED : S_ACKED;
	}
	for (uint64_t q = max_committed + 1; q < MAX_SEQ && q < max_committed + 64; q++)
		if (state[q] == S_MAYBE)
			state[q] = S_NONE; /* lost with the power: never published */
	rc = spool_open(path, 64u << 20, &s);
	if (rc < 0) {
		n_corrupt++;
		fresh = true;
	} else {
		if (spool_next_seq(s) <= max_committed) {
			n_reused++;
			if (!quiet)
				printf("powercut spool: next seq %" PRIu64 " <= committed %" PRIu64 "\n",
				spool_next_seq(s), max_committed);
		}
		spool_close(s);
	}
}

/* Runs points crash points; returns the number of invariant violations. */
static uint64_t run_points(uint64_t points, uint32_t *rng, double *secs)
{
	struct timespec t0, t1;

	n_points = n_put = n_ack = n_maybe_put = n_maybe_ack = 0;
	n_lost = n_changed = n_resurrected = n_reused = n_corrupt = 0;
	memset(&cut_sum, 0, sizeof(cut_sum));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (uint64_t i = 0; i < points; i++) {
		struct spool *s = NULL;
		struct pc_cut_stats cs;
		int rc;

		if (i % EPOCH_POINTS == 0 || fresh) { /* a fresh station */
			fresh = false;
			pc_reset();
			remove_files();
			memset(state, 0, sizeof(state));
			max_committed = 0;
		}
		pc_arm(1 + pc_rand(rng) % 80);
		rc = spool_open(path, 64u << 20, &s);
		if (rc == 0) {
			run_until_crash(s, rng);
			spool_close(s);
		} else if (!pc_crashed()) {
			n_corrupt++; /* cannot open it any more */
			if (!quiet)
				printf("powercut spool: cannot open the spool: %s\n", strerror(-rc));
			fresh = true;
		}
		if (!pc_crashed()) /* ran out of seqs: end the epoch cleanly */
			pc_arm(1);
		CHECK_INT(pc_powercut(rng, &cs), 0);
		cut_sum.files += cs.files;
		cut_sum.pages_kept += cs.pages_kept;
		cut_sum.pages_lost += cs.pages_lost;
		cut_sum.torn += cs.torn;
		cut_sum.garbled += cs.garbled;
		n_points++;
		verify();
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return n_corrupt + n_lost + n_changed + n_resurrected + n_reused;
}

int main(int argc, char **argv)
{
	const char *env = getenv("POWERCUT_POINTS");
	uint64_t points = argc > 1 ? strtoull(argv[1], NULL, 10) : env ? strtoull(env, NULL, 10) : 2000;
	uint32_t seed = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 0x5eed2025u;
	uint32_t rng = seed;
	uint64_t bad;
	double secs;
	int saved_err = dup(2), null_fd = open("/dev/null", O_WRONLY);

	/* In memory when there is a tmpfs: the files are rewritten at every
	 * crash point, and the disk's durability is simulated anyway. */
	if (access("/dev/shm", W_OK) == 0)
		snprintf(dir, sizeof(dir), "/dev/shm/agri-powercut-spool-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/spool.db", dir);
	CHECK_INT(pc_vfs_register(true), SQLITE_OK);
	/* The spool logs every I/O error the crash causes: not shown. */
	if (!getenv("POWERCUT_VERBOSE") && null_fd >= 0)
		dup2(null_fd, 2);

	/* Self-check: on a disk that ignores fsync the harness must see
	 * committed batches go (else it could not see anything). */
	quiet = true;
	pc_set_lying_disk(true);
	bad = run_points(200, &rng, &secs);
	pc_set_lying_disk(false);
	quiet = false;
	printf("powercut spool: self-check, a disk that ignores fsync: %" PRIu64
	       " violations in %" PRIu64 " crash points (lost %" PRIu64 ", corrupt %" PRIu64 ")\n",
	       bad, n_points, n_lost, n_corrupt);
	CHECK(bad > 0);

	bad = run_points(points, &rng, &secs);
	printf("powercut spool: %" PRIu64 " crash points (seed 0x%08x) in %.1f s: %" PRIu64
	       " batches committed, %" PRIu64 " acks, %" PRIu64 " puts and %" PRIu64
	       " acks cut short; disk kept %" PRIu64 " unsynced pages, lost %" PRIu64
	       ", tore %" PRIu64 ", garbled %" PRIu64 "\n",
	       n_points, seed, secs, n_put, n_ack, n_maybe_put, n_maybe_ack, cut_sum.pages_kept,
	       cut_sum.pages_lost, cut_sum.torn, cut_sum.garbled);
	printf("powercut spool: invariants: corrupt %" PRIu64 ", committed lost %" PRIu64
	       ", changed %" PRIu64 ", acked back %" PRIu64 ", seq reused %" PRIu64 "\n",
	       n_corrupt, n_lost, n_changed, n_resurrected, n_reused);
	if (saved_err >= 0)
		dup2(saved_err, 2);
	CHECK_INT(bad, 0);
	CHECK_INT(n_points, points);
	CHECK(cut_sum.pages_lost > 0 && cut_sum.pages_kept > 0 && cut_sum.torn > 0);
	pc_reset();
	remove_files();
	rmdir(dir);
	return test_main("test_powercut_spool");
}
