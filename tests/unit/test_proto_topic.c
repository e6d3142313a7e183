/*
 * Unit tests of agri/topic.h: id and prefix validation, building every
 * topic kind, parsing (table of good and bad topics) and build/parse
 * round trips.
 */
#include <errno.h>

#include "agri/buf.h"
#include "agri/topic.h"
#include "test.h"

#define P AGRI_TOPIC_PREFIX_DEFAULT

static void test_ids(void)
{
	static const struct {
		const char *id;
		bool ident, station;
	} cases[] = {
		{"DT-W01", true, true},
		{"a", true, true},
		{"abcdefghijklmnopqrstuvwxyz012345", true, true}, /* 32 */
		{"abcdefghijklmnopqrstuvwxyz0123456", false, false}, /* 33 */
		{"", false, false},
		{"alerts", true, false},
		{"forecast", true, false},
		{"advisory", true, false},
		{"Alerts", true, true},
		{"sonde_1", true, true},
		{"a/b", false, false},
		{"a+b", false, false},
		{"a#", false, false},
		{"a b", false, false},
		{"a.b", false, false},
		{"\xc3\xa9", false, false},
	};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		CHECK_INT(agri_ident_valid(cases[i].id), cases[i].ident);
		CHECK_INT(agri_station_id_valid(cases[i].id), cases[i].station);
	}
	CHECK(!agri_ident_valid(NULL));
	CHECK(!agri_station_id_valid(NULL));
	CHECK(agri_rule_id_valid("salinity-critical"));
	CHECK(agri_rule_id_valid("r234567890123456789012345678901234567890123456789012345678901234"));
	CHECK(!agri_rule_id_valid("r2345678901234567890123456789012345678901234567890123456789012345"));
	CHECK(!agri_rule_id_valid("a/b"));
}

static void test_prefix(void)
{
	static const struct {
		const char *p;
		bool ok;
	} cases[] = {
		{"agri/v1", true},
		{"agri", true},
		{"x/y/z", true},
		{"", false},
		{"/agri", false},
		{"agri/", false},
		{"agri//v1", false},
		{"agri/+", false},
		{"agri/#", false},
		{"a234567890123456789012345678901234567890123456789012345678901234", true},
		{"a2345678901234567890123456789012345678901234567890123456789012345", false},
	};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++)
		CHECK_INT(agri_topic_prefix_valid(cases[i].p), cases[i].ok);
	CHECK(!agri_topic_prefix_valid(NULL));
}

static void test_build(void)
{
	static const struct {
		enum agri_topic_kind kind;
		const char *topic;
	} cases[] = {
		{AGRI_TOPIC_TELEMETRY, "agri/v1/DT-W01/telemetry"},
		{AGRI_TOPIC_STATUS, "agri/v1/DT-W01/status"},
		{AGRI_TOPIC_ACK, "agri/v1/DT-W01/ack"},
		{AGRI_TOPIC_CONFIG, "agri/v1/DT-W01/config"},
		{AGRI_TOPIC_CONFIG_ACK, "agri/v1/DT-W01/config/ack"},
		{AGRI_TOPIC_ADVISORY, "agri/v1/advisory/DT-W01"},
	};
	char buf[AGRI_TOPIC_MAX + 1];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		CHECK_INT(agri_topic_build(buf, sizeof(buf), P, cases[i].kind, "DT-W01"),
			  strlen(cases[i].topic));
		CHECK_STR(buf, cases[i].topic);
	}
	CHECK_INT(agri_topic_build(buf, sizeof(buf), P, AGRI_TOPIC_ALERT, "DT-W01"), -EINVAL);
	CHECK_INT(agri_topic_build(buf, sizeof(buf), P, AGRI_TOPIC_FORECAST, "DT-W01"), -EINVAL);
	CHECK_INT(agri_topic_build(buf, sizeof(buf), P, (enum agri_topic_kind)99, "DT-W01"), -EINVAL);
	CHECK_INT(agri_topic_build(buf, sizeof(buf), P, AGRI_TOPIC_STATUS, "alerts"), -EINVAL);
	CHECK_INT(agri_topic_build(buf, sizeof(buf), P, AGRI_TOPIC_STATUS, "a/b"), -EINVAL);
	CHECK_INT(agri_topic_build(buf, sizeof(buf), "agri/#", AGRI_TOPIC_STATUS, "X"), -EINVAL);
	/* "agri/v1/DT-W01/status" is 21 chars: 22 bytes fit, 21 do not. */
	CHECK_INT(agri_topic_build(buf, 22, P, AGRI_TOPIC_STATUS, "DT-W01"), 21);
	CHECK_INT(agri_topic_build(buf, 21, P, AGRI_TOPIC_STATUS, "DT-W01"), -ENOSPC);

	CHECK_INT(agri_topic_build_alert(buf, sizeof(buf), P, "DT-W01", "salinity-critical",
					 "sonde1"), 46);
	CHECK_STR(buf, "agri/v1/alerts/DT-W01/salinity-critical/sonde1");
	CHECK_INT(agri_topic_build_alert(buf, sizeof(buf), P, "DT-W01", "station-offline", NULL), 37);
	CHECK_STR(buf, "agri/v1/alerts/DT-W01/station-offline");
	CHECK_INT(agri_topic_build_alert(buf, sizeof(buf), P, "DT-W01", "station-offline", ""), 37);
	CHECK_INT(agri_topic_build_alert(buf, sizeof(buf), P, "DT-W01", "a/b", NULL), -EINVAL);
	CHECK_INT(agri_topic_build_alert(buf, sizeof(buf), P, "DT-W01", "r", "s+"), -EINVAL);
	CHECK_INT(agri_topic_build_alert(buf, 10, P, "DT-W01", "r", "s"), -ENOSPC);

	CHECK_INT(agri_topic_build_forecast(buf, sizeof(buf), P, "DT-W01", "salinity"), 32);
	CHECK_STR(buf, "agri/v1/forecast/DT-W01/salinity");
	CHECK_INT(agri_topic_build_forecast(buf, sizeof(buf), P, "DT-W01", ""), -EINVAL);
}

static void test_parse(void)
{
	static const struct {
		const char *topic;
		int ret;
		enum agri_topic_kind kind;
		const char *station, *rule, *sensor, *metric;
	} cases[] = {
		{"agri/v1/DT-W01/telemetry", 0, AGRI_TOPIC_TELEMETRY, "DT-W01", "", "", ""},
		{"agri/v1/DT-W01/status", 0, AGRI_TOPIC_STATUS, "DT-W01", "", "", ""},
		{"agri/v1/DT-W01/ack", 0, AGRI_TOPIC_ACK, "DT-W01", "", "", ""},
		{"agri/v1/DT-W01/config", 0, AGRI_TOPIC_CONFIG, "DT-W01", "", "", ""},
		{"agri/v1/DT-W01/config/ack", 0, AGRI_TOPIC_CONFIG_ACK, "DT-W01", "", "", ""},
		{"agri/v1/alerts/DT-W01/salinity-critical/sonde1", 0, AGRI_TOPIC_ALERT,
		 "DT-W01", "salinity-critical", "sonde1", ""},
		{"agri/v1/alerts/DT-W01/station-offline", 0, AGRI_TOPIC_ALERT,
		 "DT-W01", "station-offline", "", ""},
		{"agri/v1/forecast/DT-W01/salinity", 0, AGRI_TOPIC_FORECAST,
		 "DT-W01", "", "", "salinity"},
		{"agri/v1/advisory/DT-W01", 0, AGRI_TOPIC_ADVISORY, "DT-W01", "", "", ""},
		{"agri/v1/DT-W01/telemetry/x", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT-W01/telemetr", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT-W01", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT-W01/", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1//telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/alerts/telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT+W01/telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/#", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v2/DT-W01/telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v10/DT-W01/telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1DT-W01/telemetry", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT-W01/config/nack", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/DT-W01/ack/ack", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/alerts/DT-W01", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/alerts/DT-W01/r/s/x", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/alerts/alerts/r", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/alerts/DT-W01/r/", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/forecast/DT-W01", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/forecast/DT-W01/sal.inity", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/advisory/DT-W01/x", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/advisory/forecast", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1/abcdefghijklmnopqrstuvwxyz0123456/status", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"", -EINVAL, 0, NULL, NULL, NULL, NULL},
		{"agri/v1", -EINVAL, 0, NULL, NULL, NULL, NULL},
	};
	struct agri_topic t;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		memset(&t, 0x5a, sizeof(t));
		CHECK_INT(agri_topic_parse(cases[i].topic, P, &t), cases[i].ret);
		if (cases[i].ret) {
			CHECK_INT(t.station[0], 0x5a); /* untouched */
			continue;
		}
		CHECK_INT(t.kind, cases[i].kind);
		CHECK_STR(t.station, cases[i].station);
		CHECK_STR(t.rule, cases[i].rule);
		CHECK_STR(t.sensor, cases[i].sensor);
		CHECK_STR(t.metric, cases[i].metric);
	}
	CHECK_INT(agri_topic_parse("farm/a/S1/status", "farm/a", &t), 0);
	CHECK_STR(t.station, "S1");
	CHECK_INT(agri_topic_parse("farm/a/S1/status", "farm/#", &t), -EINVAL);
	CHECK_INT(agri_topic_parse(NULL, P, &t), -EINVAL);
}

/* Build then parse gives back what went in, for every kind. */
static void test_round_trip(void)
{
	static const enum agri_topic_kind kinds[] = {
		AGRI_TOPIC_TELEMETRY, AGRI_TOPIC_STATUS, AGRI_TOPIC_ACK,
		AGRI_TOPIC_CONFIG, AGRI_TOPIC_CONFIG_ACK, AGRI_TOPIC_ADVISORY,
	};
	static const char *const stations[] = {"DT-W01", "x", "ST_32_abcdefghijklmnopqrstuvwxyz"};
	static const char *const prefixes[] = {"agri/v1", "a", "org/site/agri/v2"};
	char buf[AGRI_TOPIC_MAX + 1];
	struct agri_topic t;

	for (size_t p = 0; p < 3; p++) {
		for (size_t s = 0; s < 3; s++) {
			for (size_t k = 0; k < AGRI_ARRAY_SIZE(kinds); k++) {
				CHECK(agri_topic_build(buf, sizeof(buf), prefixes[p], kinds[k],
						       stations[s]) > 0);
				CHECK_INT(agri_topic_parse(buf, prefixes[p], &t), 0);
				CHECK_INT(t.kind, kinds[k]);
				CHECK_STR(t.station, stations[s]);
			}
			CHECK(agri_topic_build_alert(buf, sizeof(buf), prefixes[p], stations[s],
						     "do-low", "sonde1") > 0);
			CHECK_INT(agri_topic_parse(buf, prefixes[p], &t), 0);
			CHECK_INT(t.kind, AGRI_TOPIC_ALERT);
			CHECK_STR(t.station, stations[s]);
			CHECK_STR(t.rule, "do-low");
			CHECK_STR(t.sensor, "sonde1");
			CHECK(agri_topic_build_forecast(buf, sizeof(buf), prefixes[p], stations[s],
							"salinity") > 0);
			CHECK_INT(agri_topic_parse(buf, prefixes[p], &t), 0);
			CHECK_INT(t.kind, AGRI_TOPIC_FORECAST);
			CHECK_STR(t.metric, "salinity");
		}
	}
}

/* snake_case tokens: metric names in profiles, suspect reasons. */
static void test_snake(void)
{
	CHECK(agri_snake_valid("salinity", 32));
	CHECK(agri_snake_valid("a1_b", 4));
	CHECK(!agri_snake_valid("a1_b", 3)); /* longer than max */
	CHECK(!agri_snake_valid("", 32));
	CHECK(!agri_snake_valid(NULL, 32));
	CHECK(!agri_snake_valid("1abc", 32));
	CHECK(!agri_snake_valid("_abc", 32));
	CHECK(!agri_snake_valid("Abc", 32));
	CHECK(!agri_snake_valid("ab-c", 32));
}

int main(void)
{
	test_ids();
	test_snake();
	test_prefix();
	test_build();
	test_parse();
	test_round_trip();
	return test_main("test_proto_topic");
}
