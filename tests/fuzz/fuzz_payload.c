/*
 * libFuzzer harness for every payload decoder in agri/msg.h (and the
 * RFC 3339 parser): whatever the bytes, a decoder either fails with a
 * reason or returns something the encoder writes canonically, and that
 * canonical form decodes again to the same encoding. Any other outcome
 * aborts. Seeds: tests/fuzz/corpus/payload/.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agri/msg.h"
#include "agri/time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENC_MAX (AGRI_BATCH_MAX_BYTES + 1)

static struct agri_reading readings[2][AGRI_BATCH_MAX_READINGS];
static char enc[2][ENC_MAX];

static void check(int cond)
{
	if (!cond)
		abort();
}

/* A failed decode must say why. */
static void check_failure(int ret, const struct agri_err *err)
{
	check(ret == -EBADMSG || ret == -E2BIG);
	check(err->msg[0] != '\0');
}

/* enc[0] holds a first encoding of length n0: decode it again with
 * decode_again(), re-encode into enc[1], and compare. */
#define ROUND_TRIP(type, dec, encf, first)                                  \
	do {                                                                \
		static type again;                                          \
		struct agri_err e2;                                         \
		int n0 = encf(first, enc[0], ENC_MAX), n1;                  \
		check(n0 > 0);                                              \
		check(dec(enc[0], (size_t)n0, &again, &e2) == 0);           \
		n1 = encf(&again, enc[1], ENC_MAX);                         \
		check(n1 == n0 && !memcmp(enc[0], enc[1], (size_t)n0));     \
	} while (0)

static void fuzz_telemetry(const char *json, size_t len)
{
	struct agri_telemetry t = {.readings = readings[0], .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_telemetry u = {.readings = readings[1], .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {"", ""};
	int ret = agri_telemetry_decode(json, len, &t, &err), n0, n1;

	if (ret < 0) {
		check_failure(ret, &err);
		return;
	}
	check(t.has_station && t.has_seq && t.n + t.n_invalid >= 1);
	check((ret == 1) == (t.n_invalid > 0));
	if (ret == 1)
		check(err.msg[0] != '\0');
	if (t.n == 0)
		return;
	n0 = agri_telemetry_encode(&t, enc[0], ENC_MAX);
	/* Canonical timestamps and numbers may be longer than the input's:
	 * only a batch near the size limit may grow past it. */
	if (n0 == -EINVAL && len > AGRI_BATCH_MAX_BYTES - 32 * 1024)
		return;
	check(n0 > 0);
	check(agri_telemetry_decode(enc[0], (size_t)n0, &u, &err) == 0);
	check(u.n == t.n && u.seq == t.seq && !strcmp(u.station, t.station));
	n1 = agri_telemetry_encode(&u, enc[1], ENC_MAX);
	check(n1 == n0 && !memcmp(enc[0], enc[1], (size_t)n0));
}

static void fuzz_others(const char *json, size_t len)
{
	static struct agri_status s;
	static struct agri_ack a;
	static struct agri_config_ack c;
	static struct agri_alert al;
	struct agri_err err = {"", ""};
	int64_t version = -1;
	int ret;

	ret = agri_status_decode(json, len, &s, &err);
	if (ret)
		check_failure(ret, &err);
	else
		ROUND_TRIP(struct agri_status, agri_status_decode, agri_status_encode, &s);

	err.msg[0] = '\0';
	ret = agri_ack_decode(json, len, &a, &err);
	if (ret)
		check_failure(ret, &err);
	else
		ROUND_TRIP(struct agri_ack, agri_ack_decode, agri_ack_encode, &a);

	err.msg[0] = '\0';
	ret = agri_config_ack_decode(json, len, &c, &err);
	if (ret)
		check_failure(ret, &err);
	else
		ROUND_TRIP(struct agri_config_ack, agri_config_ack_decode,
			   agri_config_ack_encode, &c);

	err.msg[0] = '\0';
	ret = agri_alert_decode(json, len, &al, &err);
	if (ret)
		check_failure(ret, &err);
	else
		ROUND_TRIP(struct agri_alert, agri_alert_decode, agri_alert_encode, &al);

	err.msg[0] = '\0';
	ret = agri_config_version(json, len, &version, &err);
	if (ret)
		check_failure(ret, &err);
	else
		check(version >= 1);
}

static void fuzz_time(const char *s, size_t len)
{
	char buf[AGRI_TIME_LEN + 1];
	int64_t ms, back;

	if (agri_time_parse_n(s, len, &ms))
		return;
	check(agri_time_format(ms, buf, sizeof(buf)) == 0);
	check(agri_time_parse(buf, &back) == 0 && back == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly size bytes on the heap, so ASan sees any over-read. */
	char *json = malloc(size ? size : 1);

	if (!json)
		return 0;
	memcpy(json, data, size);
	fuzz_telemetry(json, size);
	fuzz_others(json, size);
	fuzz_time(json, size);
	free(json);
	return 0;
}
