/*
 * libFuzzer harness for rules.json: rules_parse() on arbitrary bytes;
 * an accepted document then drives an alert engine (readings of every
 * quality, a status, ticks, an ack), is exported, and every blob is
 * imported into a fresh engine and must re-export byte for byte. Seeds:
 * tests/fuzz/corpus/gateway_rules/ (the shipped defaults and broken ones).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alert.h"
#include "gateway/rules.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

static void sink(void *ctx, const struct alert_transition *t)
{
	char json[2048];

	(void)ctx;
	/* Every transition encodes as a valid alert (docs/interfaces.md §5). */
	REQUIRE(agri_alert_encode(&t->alert, json, sizeof(json)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const chans[] = {"ops", "mail", "sms"};
	static const char *const sensors[] = {"sonde1", "trap1-bph", "solar"};
	static const char *const metrics[] = {"salinity", "insect_count", "battery_voltage",
					      "battery_soc", "dissolved_oxygen"};
	struct agri_err err = {.path = ""};
	struct rules *r = rules_parse((const char *)data, size, chans, 3, &err);
	struct alert_engine *e, *f;
	struct saved s = {0};
	int64_t t = 1767225600000LL;

	if (!r) {
		REQUIRE(err.msg[0] != '\0');
		return 0;
	}
	e = alert_engine_new(r);
	REQUIRE(e);
	for (int i = 0; i < 64; i++) {
		struct agri_reading rd = {
			.ts_ms = t + (int64_t)i * 3600000 / 3,
			.value = (double)(data[i % size] % 50) / 4.0 * (i % 5 ? 1 : 40),
			.has_value = true,
			.q = (enum agri_quality)(data[(i * 7) % size] % 8 < 5 ? 0 : data[i % size] % 4),
		};

		if (rd.q == AGRI_Q_ERROR)
			rd.has_value = false;
		snprintf(rd.sensor, sizeof(rd.sensor), "%s", sensors[i % 3]);
		snprintf(rd.metric, sizeof(rd.metric), "%s", metrics[(i + data[0]) % 5]);
		REQUIRE(alert_engine_reading(e, "DT-W01", &rd, rd.ts_ms, sink, NULL) >= 0);
		if (i % 9 == 0)
			REQUIRE(alert_engine_status(e, "DT-W01", i % 2, rd.ts_ms, sink, NULL) >= 0);
		if (i % 5 == 0)
			REQUIRE(alert_engine_tick(e, rd.ts_ms + 7200000, sink, NULL) >= 0);
	}
	for (size_t i = 0; i < r->n; i++) {
		char id[200];

		snprintf(id, sizeof(id), "%s/DT-W01/sonde1", r->v[i].id);
		REQUIRE(alert_engine_ack(e, id, "fuzz", t, sink, NULL) >= -ENOENT);
	}
	f = alert_engine_new(r);
	REQUIRE(f);
	s.into = f;
	REQUIRE(alert_engine_export(e, false, reimport, &s) == s.n);
	alert_engine_free(f);
	alert_engine_free(e);
	rules_free(r);
	return 0;
}
