/*
 * libFuzzer harness for the station's Modbus response decoding: the bytes
 * a slave answers go through libmodbus's own client API
 * (modbus_read_registers / modbus_read_input_registers over a socket
 * pair) and then through the decoding the station's bus does with the
 * words (agri_plan_locate + agri_register_decode over a shipped profile's
 * read plan), and the readings are encoded as a telemetry batch, which
 * must decode again. The input: byte 0 picks the profile, byte 1 the
 * fix-ups (transaction id and unit id patched to match the request, so
 * the fuzzer reaches the payload; or left as they are, to fuzz the
 * framing), then one response frame per planned request, each prefixed
 * by its length byte. Seeds: tests/fuzz/corpus/modbus_response/.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <modbus.h>

#include "agri/msg.h"
#include "agri/profile.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)
#define PROFILES_MAX 32

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct agri_profile profiles[PROFILES_MAX];
static size_t n_profiles;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dirname[512], path[1024];
	struct dirent *de;
	DIR *d;

	(void)argc;
	(void)argv;
	snprintf(dirname, sizeof(dirname), "%s/protocols/profiles", AGRI_SOURCE_DIR);
	d = opendir(dirname);
	REQUIRE(d);
	while ((de = readdir(d)) && n_profiles < PROFILES_MAX) {
		struct agri_err err = {0};
		static char buf[1 << 16];
		size_t n;
		FILE *f;

		if (!strstr(de->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dirname, de->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (agri_profile_parse(buf, n, &profiles[n_profiles], &err) == 0)
			n_profiles++;
	}
	closedir(d);
	REQUIRE(n_profiles > 0);
	return 0;
}

/* One request answered by frame[0..len): the words, or -1. */
static int read_one(const struct agri_read_req *q, const uint8_t *frame, size_t len, bool fix,
		    uint16_t tid, uint16_t *words)
{
	uint8_t resp[300];
	modbus_t *ctx;
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -1;
	if (len > sizeof(resp))
		len = sizeof(resp);
	memcpy(resp, frame, len);
	if (fix && len >= 7) { /* the MBAP header the request expects */
		resp[0] = (uint8_t)(tid >> 8);
		resp[1] = (uint8_t)tid;
		resp[2] = resp[3] = 0;
		resp[4] = (uint8_t)((len - 6) >> 8);
		resp[5] = (uint8_t)(len - 6);
		resp[6] = 1;
	}
	if (len && write(sv[1], resp, len) != (ssize_t)len) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	shutdown(sv[1], SHUT_WR); /* nothing more comes: no waiting for a timeout */
	ctx = modbus_new_tcp("127.0.0.1", 502);
	REQUIRE(ctx);
	modbus_set_slave(ctx, 1);
	modbus_set_response_timeout(ctx, 0, 20000);
	modbus_set_byte_timeout(ctx, 0, 20000);
	modbus_set_error_recovery(ctx, MODBUS_ERROR_RECOVERY_NONE);
	modbus_set_socket(ctx, sv[0]);
	if (q->fc == 4)
		rc = modbus_read_input_registers(ctx, q->addr, q->count, words);
	else
		rc = modbus_read_registers(ctx, q->addr, q->count, words);
	modbus_set_socket(ctx, -1);
	modbus_free(ctx);
	close(sv[0]);
	close(sv[1]);
	if (rc >= 0)
		REQUIRE(rc == q->count); /* libmodbus checks the count it asked for */
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint16_t words[AGRI_PLAN_MAX][AGRI_MODBUS_MAX_REGS];
	static struct agri_reading readings[AGRI_PROFILE_REGS_MAX];
	static char json[1 << 16];
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	const struct agri_profile *p;
	bool ok[AGRI_PLAN_MAX] = {false};
	size_t pos = 2, n_read = 0;
	int n;

	if (size < 2)
		return 0;
	p = &profiles[data[0] % n_profiles];
	n = agri_plan_reads(p, reqs, AGRI_PLAN_MAX);
	REQUIRE(n >= 1);
	for (int i = 0; i < n && pos < size; i++) {
		size_t len = data[pos++];

		if (len > size - pos)
			len = size - pos;
		/* libmodbus's transaction ids start at 1 on a new context */
		ok[i] = read_one(&reqs[i], data + pos, len, (data[1] >> (i % 8)) & 1, 1,
				 words[i]) >= 0;
		pos += len;
	}
	for (size_t i = 0; i < p->n_regs; i++) {
		struct agri_reading *r = &readings[n_read];
		size_t ri, off;

		if (agri_plan_locate(reqs, (size_t)n, &p->regs[i], &ri, &off) < 0 || !ok[ri])
			continue;
		memset(r, 0, sizeof(*r));
		agri_register_decode(&p->regs[i], &words[ri][off], &r->value, &r->has_value, &r->q);
		REQUIRE(!r->has_value || isfinite(r->value));
		if (!r->has_value)
			r->q = AGRI_Q_ERROR;
		r->ts_ms = 1767225600000LL + (int64_t)i; /* one identity each */
		snprintf(r->sensor, sizeof(r->sensor), "s1");
		snprintf(r->metric, sizeof(r->metric), "%s", p->regs[i].metric);
		snprintf(r->unit, sizeof(r->unit), "%s", p->regs[i].unit);
		n_read++;
	}
	if (n_read) {
		struct agri_telemetry t = {.readings = readings, .n = n_read, .cap = n_read,
					   .seq = 1, .sent_at_ms = 1767225600000LL};
		struct agri_reading back[AGRI_PROFILE_REGS_MAX];
		struct agri_telemetry u = {.readings = back, .cap = AGRI_PROFILE_REGS_MAX};
		struct agri_err err = {0};
		int len;

		snprintf(t.station, sizeof(t.station), "DT-W01");
		len = agri_telemetry_encode(&t, json, sizeof(json));
		/* What the station sends, the gateway reads (a metric or unit
		 * a profile allows but the codec refuses would show here). */
		if (len > 0)
			REQUIRE(agri_telemetry_decode(json, (size_t)len, &u, &err) == 0 &&
				u.n == n_read);
	}
	return 0;
}
