/*
 * Unit tests of station.json parsing (firmware/src/config.c): defaults of
 * CONTRACT.md §8, relative paths, and each error's "path: reason".
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "test.h"

static struct station_config cfg;

#define BASE "{\"station\":\"DT-W01\",\"broker\":{\"url\":\"tcp://127.0.0.1:1883\"%s}," \
	"\"profiles_dir\":\"" AGRI_SOURCE_DIR "/protocols/profiles\"," \
	"\"buses\":[{\"name\":\"rs485\",\"rtu\":{\"device\":\"/dev/ttyS1\"%s}}%s]," \
	"\"sensors\":[{\"name\":\"sonde1\",\"bus\":\"%s\",\"slave\":%s,\"profile\":\"%s\"}%s]%s}"

static int parse(const char *broker_extra, const char *rtu_extra, const char *more_buses,
		 const char *bus, const char *slave, const char *profile,
		 const char *more_sensors, const char *top, char *msg, size_t len)
{
	static char json[4096];
	struct agri_err err = {{0}, {0}};
	int rc;

	snprintf(json, sizeof(json), BASE, broker_extra, rtu_extra, more_buses, bus, slave,
		 profile, more_sensors, top);
	rc = station_config_parse(json, strlen(json), "/etc/agri/station.json", &cfg, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

static void test_defaults(void)
{
	char msg[300];

	CHECK_INT(parse("", "", "", "rs485", "1", "sensecap-s-ec-01", "", "", msg, sizeof(msg)), 0);
	CHECK_STR(msg, "");
	CHECK_STR(cfg.state_dir, "/var/lib/agri-station/DT-W01");
	CHECK_STR(cfg.broker.topic_prefix, "agri/v1");
	CHECK_INT(cfg.broker.keepalive_s, 30);
	CHECK_INT(cfg.spool_max_mb, 64);
	CHECK_NEAR(cfg.publish_interval_s, 60, 0);
	CHECK_NEAR(cfg.ack_timeout_s, 300, 0);
	CHECK_INT(cfg.buses[0].timeout_ms, 500);
	CHECK_INT(cfg.buses[0].gap_ms, 20);
	CHECK_INT(cfg.buses[0].baud, 9600);
	CHECK_INT(cfg.buses[0].parity_s[0], 'N');
	CHECK_INT(cfg.buses[0].data_bits, 8);
	CHECK_INT(cfg.buses[0].stop_bits, 1);
	CHECK_INT(cfg.n_profiles, 1);
	CHECK_INT(cfg.sensors[0].profile_index, 0);
	CHECK_INT(cfg.version, 0);

	CHECK_INT(parse(",\"username\":\"u\",\"password_file\":\"station.pass\"", "", "", "rs485",
			"1", "sensecap-s-ec-01", "", ",\"state_dir\":\"state\",\"version\":4", msg,
			sizeof(msg)), 0);
	CHECK_STR(cfg.broker.password_file, "/etc/agri/station.pass");
	CHECK_STR(cfg.state_dir, "/etc/agri/state");
	CHECK_INT(cfg.version, 4);
}

static void test_errors(void)
{
	static const struct {
		const char *broker, *rtu, *buses, *bus, *slave, *profile, *sensors, *top, *want;
	} cases[] = {
		{"", "", "", "rs486", "1", "sensecap-s-ec-01", "", "", "sensors[0].bus: no bus named \"rs486\""},
		{"", "", "", "rs485", "0", "sensecap-s-ec-01", "", "", "sensors[0].slave:"},
		{"", "", "", "rs485", "248", "sensecap-s-ec-01", "", "", "sensors[0].slave:"},
		{"", "", "", "rs485", "1", "no-such-profile", "", "", "sensors[0].profile: no profile"},
		{"", "", "", "rs485", "1", "sensecap-s-ec-01",
		 ",{\"name\":\"sonde1\",\"bus\":\"rs485\",\"slave\":2,\"profile\":\"sensecap-s-ec-01\"}", "",
		 "sensors[1].name: duplicate sensor name"},
		{"", "", "", "rs485", "1", "sensecap-s-ec-01", "", ",\"colour\":1", "colour: unknown key"},
		{",\"port\":1", "", "", "rs485", "1", "sensecap-s-ec-01", "", "", "broker.port: unknown key"},
		{"", ",\"parity\":\"X\"", "", "rs485", "1", "sensecap-s-ec-01", "", "", "buses[0].rtu.parity:"},
		{"", "", ",{\"name\":\"rs485\",\"tcp\":{\"host\":\"h\"}}", "rs485", "1", "sensecap-s-ec-01", "",
		 "", "buses[1].name: duplicate bus name"},
		{"", "", ",{\"name\":\"x\"}", "rs485", "1", "sensecap-s-ec-01", "", "",
		 "buses[1]: needs exactly one of"},
		{",\"ca_file\":\"ca.pem\"", "", "", "rs485", "1", "sensecap-s-ec-01", "", "", "broker.url: TLS"},
		{"", "", "", "rs485", "1", "sensecap-s-ec-01", "", ",\"publish_interval_s\":\"60\"",
		 "publish_interval_s: expected a number"},
	};
	char msg[300];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse(cases[i].broker, cases[i].rtu, cases[i].buses, cases[i].bus,
			       cases[i].slave, cases[i].profile, cases[i].sensors, cases[i].top, msg,
			       sizeof(msg));

		CHECK(rc < 0);
		if (strncmp(msg, cases[i].want, strlen(cases[i].want))) {
			test_failed++;
			fprintf(stderr, "case %zu: got \"%s\", want prefix \"%s\"\n", i, msg,
				cases[i].want);
		} else {
			test_passed++;
		}
	}
}

static void test_restart_keys(void)
{
	static struct station_config a;
	const char *what = NULL;
	char msg[300];

	CHECK_INT(parse("", "", "", "rs485", "1", "sensecap-s-ec-01", "", "", msg, sizeof(msg)), 0);
	a = cfg;
	CHECK_INT(parse("", "", "", "rs485", "2", "sensecap-s-ec-01", "", ",\"publish_interval_s\":5",
			msg, sizeof(msg)), 0);
	CHECK(!station_config_needs_restart(&a, &cfg, &what));
	CHECK_INT(parse(",\"keepalive_s\":60", "", "", "rs485", "1", "sensecap-s-ec-01", "", "", msg,
			sizeof(msg)), 0);
	CHECK(station_config_needs_restart(&a, &cfg, &what));
	CHECK_STR(what, "broker");
}

int main(void)
{
	test_defaults();
	test_errors();
	test_restart_keys();
	return test_main("test_firmware_config");
}
