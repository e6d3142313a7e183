/*
 * Unit tests of agri/log.h: the syslog priority prefix is written when, and
 * only when, fd 2 is the stream JOURNAL_STREAM names (sd-daemon(3)); the
 * threshold, the line shape and log_complain/log_release. fd 2 is pointed
 * at a temporary file for the checks and restored at the end. That the
 * first line looks by itself, without log_detect_journal(), is
 * test_gateway_journal's (the gateway never calls it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "test.h"

static char path[] = "/tmp/agri-test-log-XXXXXX";
static int fd;

/* Empties the capture file. */
static void capture_reset(void)
{
	if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		perror("capture_reset");
}

/* What was logged since capture_reset, NUL-terminated. */
static const char *captured(void)
{
	static char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void set_stream(const struct stat *st, long long dev_delta)
{
	char v[64];

	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st->st_dev + (unsigned long long)dev_delta,
		 (unsigned long long)st->st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

static void every_level(void)
{
	log_set_level(LOG_LVL_DEBUG);
	log_error("store", "cannot write path=%s", "a.db");
	log_warn("broker", "cannot connect url=%s", "tcp://x:1");
	log_info("gateway", "started");
	log_debug("ingest", "batch seq=%d", 7);
}

int main(void)
{
	static const char *const bad_values[] = {"", ":", "12", "12:", ":34", "x:1", "1:2:3",
						 "1:2 ", " 1:2", "-1:2", "1:-2"};
	struct log_complaint c = {false};
	struct stat st;
	int saved = dup(STDERR_FILENO);

	fd = mkstemp(path);
	CHECK(fd >= 0 && saved >= 0);
	if (fd < 0 || saved < 0)
		return test_main("test_common_log");
	unlink(path);
	dup2(fd, STDERR_FILENO);
	fstat(STDERR_FILENO, &st);

	/* Not under systemd: plain lines, as before. */
	unsetenv("JOURNAL_STREAM");
	CHECK(!log_detect_journal());
	capture_reset();
	every_level();
	CHECK_STR(captured(), "ERROR store: cannot write path=a.db\n"
			      "WARN broker: cannot connect url=tcp://x:1\n"
			      "INFO gateway: started\n"
			      "DEBUG ingest: batch seq=7\n");

	/* fd 2 is the journal stream: each line starts with its priority. */
	set_stream(&st, 0);
	CHECK(log_detect_journal());
	capture_reset();
	every_level();
	CHECK_STR(captured(), "<3>ERROR store: cannot write path=a.db\n"
			      "<4>WARN broker: cannot connect url=tcp://x:1\n"
			      "<6>INFO gateway: started\n"
			      "<7>DEBUG ingest: batch seq=7\n");

	/* The threshold still applies; complaints carry their level. */
	log_set_level(LOG_LVL_INFO);
	capture_reset();
	log_debug("ingest", "hidden");
	log_complain(&c, LOG_LVL_ERROR, "store", "disk full");
	log_complain(&c, LOG_LVL_ERROR, "store", "disk full");
	log_release(&c, "store", "disk writable again");
	CHECK_STR(captured(), "<3>ERROR store: disk full\n<6>INFO store: disk writable again\n");

	/* The variable names another stream (stderr redirected by a parent
	 * that itself runs under systemd): no prefix. */
	set_stream(&st, 1);
	CHECK(!log_detect_journal());
	capture_reset();
	log_warn("broker", "x");
	CHECK_STR(captured(), "WARN broker: x\n");

	/* Malformed values never turn the prefix on. */
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad_values); i++) {
		setenv("JOURNAL_STREAM", bad_values[i], 1);
		if (log_detect_journal()) {
			CHECK(!"malformed JOURNAL_STREAM accepted");
			fprintf(stdout, "accepted \"%s\"\n", bad_values[i]);
		} else {
			CHECK(1);
		}
	}

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	return test_main("test_common_log");
}
