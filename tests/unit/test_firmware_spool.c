/*
 * Unit tests of the station spool (firmware/src/spool.c): seq assignment
 * and persistence across reopen, acks by range, the size bound dropping
 * the oldest with a persisted counter, and the resend bookkeeping
 * (due/outstanding, exponential backoff, resend_all).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"
#include "test.h"

static char dir[] = "/tmp/agri-spool-test-XXXXXX";
static char path[256];

static void put(struct spool *s, size_t len)
{
	static char payload[4096];
	uint64_t seq = spool_next_seq(s);

	memset(payload, 'x', sizeof(payload));
	CHECK_INT(spool_put(s, seq, payload, len, 0), 0);
}

static void test_seq_and_ack(void)
{
	struct spool *s;
	uint64_t seq;
	char buf[8192];
	size_t len;

	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	CHECK_INT(spool_next_seq(s), 1);
	for (int i = 0; i < 5; i++)
		put(s, 100);
	CHECK_INT(spool_depth(s), 5);
	CHECK_INT(spool_put(s, 3, "x", 1, 0), -EINVAL); /* seq is never reused */
	CHECK_INT(spool_ack(s, 2, 3), 2);
	CHECK_INT(spool_ack(s, 2, 3), 0); /* acking twice is harmless */
	CHECK_INT(spool_depth(s), 3);
	/* oldest due first: 1, then 4 */
	CHECK_INT(spool_pick(s, 1000, false, 0, &seq, buf, sizeof(buf), &len), 0);
	CHECK_INT(seq, 1);
	CHECK_INT(len, 100);
	CHECK_INT(spool_mark_sent(s, 1, 1000, 500, 4000), 0);
	CHECK_INT(spool_outstanding(s, 1000), 1);
	CHECK_INT(spool_pick(s, 1000, false, 0, &seq, buf, sizeof(buf), &len), 0);
	CHECK_INT(seq, 4);
	CHECK_INT(spool_pick(s, 1000, true, 0, &seq, buf, sizeof(buf), &len), 0);
	CHECK_INT(seq, 5); /* newest */
	CHECK_INT(spool_pick(s, 1000, true, 6, &seq, buf, sizeof(buf), &len), -EAGAIN);
	CHECK_INT(spool_mark_sent(s, 4, 1000, 500, 4000), 0);
	CHECK_INT(spool_mark_sent(s, 5, 1000, 500, 4000), 0);
	CHECK_INT(spool_pick(s, 1499, false, 0, &seq, buf, sizeof(buf), &len), -EAGAIN);
	CHECK_INT(spool_next_due(s), 1500);
	/* timed out: due again, then backed off to 1000 ms */
	CHECK_INT(spool_pick(s, 1500, false, 0, &seq, buf, sizeof(buf), &len), 0);
	CHECK_INT(seq, 1);
	CHECK_INT(spool_mark_sent(s, 1, 1500, 500, 4000), 0);
	CHECK_INT(spool_outstanding(s, 2499), 1);
	CHECK_INT(spool_outstanding(s, 2500), 0);
	spool_resend_all(s);
	CHECK_INT(spool_outstanding(s, 1600), 0);
	spool_close(s);

	/* seq and batches survive a reopen */
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	CHECK_INT(spool_next_seq(s), 6);
	CHECK_INT(spool_depth(s), 3);
	CHECK_INT(spool_ack(s, 1, 100), 3);
	CHECK_INT(spool_depth(s), 0);
	spool_close(s);
	CHECK_INT(spool_open(path, 1 << 20, &s), 0);
	CHECK_INT(spool_next_seq(s), 6); /* even with an empty spool */
	spool_close(s);
}

static void test_bound(void)
{
	struct spool *s;
	uint64_t seq;
	char buf[8192];
	size_t len;

	unlink(path);
	CHECK_INT(spool_open(path, 1000, &s), 0);
	for (int i = 0; i < 12; i++)
		put(s, 100);
	CHECK_INT(spool_depth(s), 10);
	CHECK_INT(spool_dropped(s), 2);
	CHECK_INT(spool_bytes(s), 1000);
	CHECK_INT(spool_pick(s, 0, false, 0, &seq, buf, sizeof(buf), &len), 0);
	CHECK_INT(seq, 3); /* the oldest were dropped */
	CHECK_INT(spool_put(s, spool_next_seq(s), buf, 2000, 0), -EFBIG);
	spool_close(s);
	CHECK_INT(spool_open(path, 1000, &s), 0);
	CHECK_INT(spool_dropped(s), 2); /* the counter is persisted */
	spool_close(s);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/spool.db", dir);
	test_seq_and_ack();
	test_bound();
	unlink(path);
	{
		char p[300];

		snprintf(p, sizeof(p), "%s-wal", path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", path);
		unlink(p);
	}
	rmdir(dir);
	return test_main("test_firmware_spool");
}
