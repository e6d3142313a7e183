/*
 * libFuzzer harness for rules evaluation on random series: the shipped
 * rules (gateway/rules.default.json and rules.demo.json, parsed once)
 * drive an alert engine with a series the input describes, 8 bytes a
 * step: which station, sensor and metric, how far the clock moves
 * (forwards, or backwards: late and replayed readings), the value (any
 * double, NaN and infinities included) and quality, and now and then a
 * status, a timer tick or an acknowledgement. Checked: every transition
 * encodes as a valid alert (docs/interfaces.md §5) with a known state;
 * an episode is raised once (never again before it cleared or closed); the exported state imports into a fresh engine and
 * exports again byte for byte. Seeds: tests/fuzz/corpus/gateway_rules_eval/.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alert.h"
#include "gateway/rules.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rules *rulesets[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *const files[2] = {"rules.default.json", "rules.demo.json"};
	static const char *const chans[] = {"ops", "mail", "sms"};

	(void)argc;
	(void)argv;
	for (int i = 0; i < 2; i++) {
		char path[512];
		struct agri_err err = {.path = ""};

		snprintf(path, sizeof(path), "%s/gateway/%s", AGRI_SOURCE_DIR, files[i]);
		rulesets[i] = rules_load(path, chans, 3, &err);
		if (!rulesets[i])
			fprintf(stderr, "%s: %s: %s\n", path, err.path, err.msg);
		REQUIRE(rulesets[i]);
	}
	return 0;
}

/* The last state each alert id was emitted in (a few dozen ids at most). */
struct seen {
	char id[8][200];
	bool open[8]; /* raised, not yet cleared or closed */
	size_t n;
};

static void sink(void *ctx, const struct alert_transition *t)
{
	struct seen *s = ctx;
	char json[4096];
	size_t i;

	REQUIRE(agri_alert_encode(&t->alert, json, sizeof(json)) > 0);
	REQUIRE(t->alert.state >= AGRI_ALERT_ACTIVE && t->alert.state <= AGRI_ALERT_CLEARED);
	REQUIRE(alert_event_name(t->event) != NULL);
	for (i = 0; i < s->n; i++)
		if (strcmp(s->id[i], t->alert.id) == 0)
			break;
	if (i == s->n) {
		if (s->n == 8)
			return;
		snprintf(s->id[s->n++], sizeof(s->id[0]), "%s", t->alert.id);
		s->open[i] = false;
	}
	/* An episode is raised once: never again before it cleared or closed. */
	if (t->event == ALERT_EV_RAISED) {
		REQUIRE(!s->open[i]);
		s->open[i] = true;
	} else if (t->event == ALERT_EV_CLEARED || t->event == ALERT_EV_CLOSED) {
		s->open[i] = false;
	}
}

struct saved {
	struct alert_engine *into;
	int n;
};

static int reimport(void *ctx, const char *key, const void *blob, size_t len)
{
	struct saved *s = ctx;

	REQUIRE(alert_engine_import(s->into, key, blob, len) == 0);
	s->n++;
	return 0;
}

struct blobs {
	char buf[1 << 17];
	size_t len;
};

static int collect(void *ctx, const char *key, const void *blob, size_t len)
{
	struct blobs *b = ctx;
	size_t k = strlen(key);

	if (b->len + k + len + 2 < sizeof(b->buf)) {
		memcpy(b->buf + b->len, key, k + 1);
		memcpy(b->buf + b->len + k + 1, blob, len);
		b->len += k + 1 + len;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const stations[] = {"DT-W01", "DT-W02", "BT-L01"};
	static const char *const sensors[] = {"sonde1", "trap1-bph", "solar", "level1"};
	static const char *const metrics[] = {"salinity", "insect_count", "battery_voltage",
					      "battery_soc", "dissolved_oxygen", "water_level",
					      "temperature", "ph"};
	static struct blobs a, b;
	struct rules *r;
	struct alert_engine *e, *f;
	struct seen seen = {.n = 0};
	struct saved s = {0};
	int64_t t = 1767225600000LL;

	if (size < 1)
		return 0;
	r = rulesets[data[0] & 1];
	e = alert_engine_new(r);
	REQUIRE(e);
	alert_engine_start(e, t);
	for (size_t pos = 1; pos + 8 <= size && pos < 1 + 8 * 512; pos += 8) {
		const uint8_t *d = data + pos;
		const char *station = stations[d[0] % 3];
		int64_t step = (int64_t)(int8_t)d[1] * (d[0] & 0x80 ? 3600000 : 60000);
		uint16_t raw = (uint16_t)(d[3] | d[4] << 8);
		struct agri_reading rd = {0};

		t += step;
		switch (d[2] >> 5) {
		case 0: /* a status: online or offline */
			REQUIRE(alert_engine_status(e, station, d[2] & 1, t, sink, &seen) >= 0);
			continue;
		case 1: /* timers */
			REQUIRE(alert_engine_tick(e, t, sink, &seen) >= 0);
			continue;
		case 2: /* an acknowledgement of one of the alerts seen */
			if (seen.n)
				REQUIRE(alert_engine_ack(e, seen.id[d[3] % seen.n], "fuzz", t, sink,
							 &seen) >= -ENOENT);
			continue;
		default:
			break;
		}
		rd.ts_ms = t - (int64_t)d[5] * 1000;
		snprintf(rd.sensor, sizeof(rd.sensor), "%s", sensors[d[6] % 4]);
		snprintf(rd.metric, sizeof(rd.metric), "%s", metrics[(d[6] >> 2) % 8]);
		rd.q = (enum agri_quality)(d[7] % 4);
		rd.has_value = rd.q != AGRI_Q_ERROR;
		switch (d[2] & 7) {
		case 0:
			rd.value = NAN;
			break;
		case 1:
			rd.value = d[3] & 1 ? INFINITY : -INFINITY;
			break;
		case 2:
			rd.value = (double)(int16_t)raw * 1e6;
			break;
		default:
			rd.value = (double)raw / 1000.0; /* 0 .. 65.5: around thresholds */
			break;
		}
		/* The store never hands the engine a non-finite value. */
		if (!isfinite(rd.value))
			rd.has_value = false, rd.q = AGRI_Q_ERROR;
		REQUIRE(alert_engine_reading(e, station, &rd, t, sink, &seen) >= 0);
	}
	/* Export, import into a fresh engine, export again: the same bytes. */
	f = alert_engine_new(r);
	REQUIRE(f);
	s.into = f;
	REQUIRE(alert_engine_export(e, false, reimport, &s) == s.n);
	a.len = b.len = 0;
	alert_engine_export(e, false, collect, &a);
	alert_engine_export(f, false, collect, &b);
	REQUIRE(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
	alert_engine_free(f);
	alert_engine_free(e);
	return 0;
}
