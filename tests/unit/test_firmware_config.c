/*
 * Unit tests of station.json parsing (firmware/src/config.c): defaults of
 * docs/interfaces.md §8, relative paths, each error's "path: reason", the
 * watchdog device rule and the closed schema of pushed configs.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "agri/buf.h"
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

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
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

/* A config whose broker object is exactly `broker`. */
static int parse_broker(const char *broker, char *msg, size_t len)
{
	static char json[4096];
	struct agri_err err = {{0}, {0}};
	int rc;

	snprintf(json, sizeof(json), "{\"station\":\"DT-W01\",\"broker\":{%s},"
		 "\"profiles_dir\":\"" AGRI_SOURCE_DIR "/protocols/profiles\","
		 "\"buses\":[{\"name\":\"b\",\"tcp\":{\"host\":\"h\"}}],"
		 "\"sensors\":[{\"name\":\"s\",\"bus\":\"b\",\"slave\":1,"
		 "\"profile\":\"sensecap-s-ec-01\"}]}", broker);
	rc = station_config_parse(json, strlen(json), "/etc/agri/station.json", &cfg, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

/* broker.urls (docs/station.md "Hubs"): the hubs in order, the first the
 * home hub; broker.url stays one hub; never both. */
static void test_broker_urls(void)
{
	static const struct {
		const char *broker, *want;
	} bad[] = {
		{"\"url\":\"tcp://a:1883\",\"urls\":[\"tcp://b:1883\"]",
		 "broker.urls: give either url (one hub) or urls (a list), not both"},
		{"\"keepalive_s\":30", "broker.url: is required"},
		{"\"urls\":[]", "broker.urls: expected an array of 1 to 8 broker URLs"},
		{"\"urls\":\"tcp://a:1883\"", "broker.urls: expected an array"},
		{"\"urls\":[\"tcp://a:1\",\"tcp://b:1\",\"tcp://c:1\",\"tcp://d:1\",\"tcp://e:1\","
		 "\"tcp://f:1\",\"tcp://g:1\",\"tcp://h:1\",\"tcp://i:1\"]", "broker.urls: expected"},
		{"\"urls\":[\"tcp://a:1883\",\"http://b\"]", "broker.urls[1]: expected tcp://"},
		{"\"urls\":[\"tcp://a:1883\",7]", "broker.urls[1]: expected a string"},
		{"\"urls\":[\"ssl://a:8883\",\"tcp://b:1883\"]",
		 "broker.urls[1]: every hub with TLS"},
		{"\"urls\":[\"ssl://a:8883\",\"tcp://b:1883\"],\"ca_file\":\"ca.pem\"",
		 "broker.urls[1]: TLS files are set"},
		{"\"urls\":[\"tcp://a:1883\",\"tcp://a:1883\"]",
		 "broker.urls[1]: the same hub as broker.urls[0]"},
		{"\"url\":\"tcp://a:1883\",\"home_holddown_s\":0", "broker.home_holddown_s:"},
	};
	static struct station_config a;
	const char *what = NULL;
	char msg[300];

	CHECK_INT(parse_broker("\"url\":\"tcp://a:1883\"", msg, sizeof(msg)), 0);
	CHECK_INT(cfg.broker.n_urls, 1);
	CHECK_STR(cfg.broker.urls[0], "tcp://a:1883");
	CHECK_INT(cfg.broker.home_holddown_s, 300);
	a = cfg;
	CHECK_INT(parse_broker("\"urls\":[\"mqtts://a:8883\",\"ssl://b:8883\"],"
			       "\"home_holddown_s\":5,\"url\":null", msg, sizeof(msg)), 0);
	CHECK_STR(msg, "");
	CHECK_INT(cfg.broker.n_urls, 2);
	CHECK_STR(cfg.broker.url, "mqtts://a:8883");
	CHECK_STR(cfg.broker.urls[1], "ssl://b:8883");
	CHECK_INT(cfg.broker.home_holddown_s, 5);
	CHECK(station_config_needs_restart(&a, &cfg, &what));
	CHECK_STR(what, "broker");
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad); i++) {
		CHECK(parse_broker(bad[i].broker, msg, sizeof(msg)) < 0);
		if (strncmp(msg, bad[i].want, strlen(bad[i].want))) {
			test_failed++;
			fprintf(stderr, "broker case %zu: got \"%s\", want prefix \"%s\"\n", i, msg,
				bad[i].want);
		} else {
			test_passed++;
		}
	}
}

/* watchdog.device: /dev/watchdog or /dev/watchdogN only, in every config. */
static void test_watchdog_device(void)
{
	static const struct {
		const char *top;
		bool ok;
	} cases[] = {
		{",\"watchdog\":{\"device\":\"/dev/watchdog\"}", true},
		{",\"watchdog\":{\"device\":\"/dev/watchdog0\",\"timeout_s\":15}", true},
		{",\"watchdog\":{\"device\":\"/dev/watchdog12\"}", true},
		{",\"watchdog\":{\"device\":\"\"}", true},
		{",\"watchdog\":null", true},
		{",\"watchdog\":{\"device\":\"/var/lib/agri/station/spool.db\"}", false},
		{",\"watchdog\":{\"device\":\"/dev/watchdog/../sda\"}", false},
		{",\"watchdog\":{\"device\":\"/dev/watchdog0/../../var/lib/agri/station/spool.db\"}", false},
		{",\"watchdog\":{\"device\":\"/dev/watchdogs\"}", false},
		{",\"watchdog\":{\"device\":\"/dev/sda\"}", false},
		{",\"watchdog\":{\"device\":\"watchdog\"}", false},
		{",\"watchdog\":{\"device\":\"//dev/watchdog\"}", false},
	};
	char msg[300];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		int rc = parse("", "", "", "rs485", "1", "sensecap-s-ec-01", "", cases[i].top, msg,
			       sizeof(msg));

		CHECK_INT(rc, cases[i].ok ? 0 : -EINVAL);
		if (!cases[i].ok)
			CHECK_STR(msg, "watchdog.device: expected /dev/watchdog or /dev/watchdogN");
	}
}

/* The closed schema of a pushed config, against the running one. */
static void test_remote_check(void)
{
	static struct station_config run, pushed;
	static const struct {
		const char *device; /* the pushed bus 0's RTU device */
		const char *want;   /* "" = accepted */
	} devices[] = {
		{"/dev/ttyS1", ""},
		{"/dev/ttyUSB0", ""},
		{"/dev/ttyAMA0", ""},
		{"/dev/serial0", ""},
		{"/dev/serial/by-id/usb-FTDI_FT232R-if00-port0", ""},
		{"/tmp/pty-a", ""}, /* the running config's own device */
		{"/dev/ttyS1/../../var/lib/agri/station/spool.db", "buses[0].rtu.device: a pushed config"},
		{"/dev/tty/../sda", "buses[0].rtu.device:"},
		{"/var/lib/agri/station/spool.db", "buses[0].rtu.device:"},
		{"/dev/sda", "buses[0].rtu.device:"},
		{"/etc/shadow", "buses[0].rtu.device:"},
	};
	struct agri_err err = {{0}, {0}};
	char msg[300];

	CHECK_INT(parse("", "", ",{\"name\":\"pty\",\"rtu\":{\"device\":\"/tmp/pty-a\"}}", "rs485", "1",
			"sensecap-s-ec-01", "", "", msg, sizeof(msg)), 0);
	run = cfg;
	pushed = run;
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), 0);
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(devices); i++) {
		pushed = run;
		snprintf(pushed.buses[0].device, sizeof(pushed.buses[0].device), "%s", devices[i].device);
		memset(&err, 0, sizeof(err));
		CHECK_INT(station_config_remote_check(&run, &pushed, &err), devices[i].want[0] ? -EINVAL : 0);
		agri_err_format(&err, msg, sizeof(msg));
		CHECK(strncmp(msg, devices[i].want, strlen(devices[i].want)) == 0);
	}
	/* A TCP bus names no device. */
	pushed = run;
	pushed.buses[0].is_tcp = true;
	snprintf(pushed.buses[0].device, sizeof(pushed.buses[0].device), "/etc/shadow");
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), 0);

	pushed = run;
	snprintf(pushed.station, sizeof(pushed.station), "DT-W02");
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), -EINVAL);
	agri_err_format(&err, msg, sizeof(msg));
	CHECK_STR(msg, "station: this config is for \"DT-W02\", not this station (\"DT-W01\")");
	pushed = run;
	pushed.broker.keepalive_s = 60;
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), -EINVAL);
	CHECK_STR(err.path, "broker");
	pushed = run;
	snprintf(pushed.state_dir, sizeof(pushed.state_dir), "/tmp");
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), -EINVAL);
	CHECK_STR(err.path, "state_dir");
	pushed = run;
	snprintf(pushed.profiles_dir, sizeof(pushed.profiles_dir), "/tmp");
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), -EINVAL);
	CHECK_STR(err.path, "profiles_dir");
	/* What a pushed config is for may change. */
	pushed = run;
	pushed.publish_interval_s = 5;
	pushed.sensors[0].slave = 7;
	snprintf(pushed.watchdog.device, sizeof(pushed.watchdog.device), "/dev/watchdog0");
	CHECK_INT(station_config_remote_check(&run, &pushed, &err), 0);
}

/* sensors[].level_offset_m and probe_level_m (issue 19). */
static void test_level_keys(void)
{
	char msg[300];

	CHECK_INT(parse("", "", "", "rs485", "1", "keller-acculevel",
			",{\"name\":\"sonde2\",\"bus\":\"rs485\",\"slave\":2,"
			"\"profile\":\"sensecap-s-ec-01\",\"probe_level_m\":1.25}", "", msg, sizeof(msg)), 0);
	CHECK_STR(msg, "");
	CHECK(!cfg.sensors[0].has_level_offset && cfg.sensors[0].level_offset_m == 0);
	CHECK(cfg.sensors[1].has_probe_level);
	CHECK_NEAR(cfg.sensors[1].probe_level_m, 1.25, 0);
	CHECK(!cfg.sensors[0].has_probe_level);
	/* the offset goes where a profile derives a level */
	CHECK_INT(parse("", "", "", "rs485", "1", "keller-acculevel\",\"level_offset_m\":-0.75,\"x\":\"",
			"", "", msg, sizeof(msg)), -EINVAL); /* (an unknown key: the table is closed) */
	CHECK_INT(parse("", "", "", "rs485", "1", "keller-acculevel",
			",{\"name\":\"g2\",\"bus\":\"rs485\",\"slave\":3,\"profile\":\"keller-acculevel\","
			"\"level_offset_m\":-0.75}", "", msg, sizeof(msg)), 0);
	CHECK(cfg.sensors[1].has_level_offset);
	CHECK_NEAR(cfg.sensors[1].level_offset_m, -0.75, 0);
	CHECK_INT(parse("", "", "", "rs485", "1", "keller-acculevel",
			",{\"name\":\"s2\",\"bus\":\"rs485\",\"slave\":3,\"profile\":\"sensecap-s-ec-01\","
			"\"level_offset_m\":1}", "", msg, sizeof(msg)), -EINVAL);
	CHECK_STR(msg, "sensors[1].level_offset_m: profile \"sensecap-s-ec-01\" derives no water level");
	CHECK_INT(parse("", "", "", "rs485", "1", "keller-acculevel",
			",{\"name\":\"s2\",\"bus\":\"rs485\",\"slave\":3,\"profile\":\"keller-acculevel\","
			"\"level_offset_m\":20000}", "", msg, sizeof(msg)), -EINVAL);
	CHECK(strstr(msg, "sensors[1].level_offset_m") == msg);
}

int main(void)
{
	test_level_keys();
	test_defaults();
	test_errors();
	test_restart_keys();
	test_broker_urls();
	test_watchdog_device();
	test_remote_check();
	return test_main("test_firmware_config");
}
