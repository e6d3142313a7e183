/*
 * The station's update agent without rauc (firmware/src/update.c,
 * docs/update.md): update.json's table (absent: updates off; unknown keys,
 * plain http, bad values refused with their path), and the status members
 * it adds. The state machine with Debian's rauc is in
 * tests/integration/test_update_*.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test.h"
#include "update.h"

static char dir[] = "/tmp/agri-update-test-XXXXXX";
static char cfg_path[300], upd_path[300];

static void write_update(const char *json)
{
	FILE *f = fopen(upd_path, "w");

	if (!f)
		return;
	fputs(json, f);
	fclose(f);
}

/* Opens the agent for update.json = json (NULL: none); returns update_open's
 * code, the formatted error into msg. */
static int open_with(const char *json, char *msg, size_t len, struct update **out)
{
	static struct station_config cfg;
	struct agri_err err = {{0}, {0}};
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(cfg.station, sizeof(cfg.station), "ST-U1");
	snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", dir);
	snprintf(cfg.broker.topic_prefix, sizeof(cfg.broker.topic_prefix), "agri/v1");
	unlink(upd_path);
	if (json)
		write_update(json);
	*out = NULL;
	/* rauc: a command that does not exist, so the agent cannot tell the
	 * slot (what a host without the rauc service looks like). */
	rc = update_open(cfg_path, &cfg, NULL, NULL, out, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

static const struct {
	const char *json;
	int rc;
	const char *msg; /* a part of the error, or NULL */
} cases[] = {
	{"{\"hub_url\":\"https://hub.local:8443\",\"rauc\":\"/nonexistent/rauc\"}", 0, NULL},
	{"{\"hub_url\":\"https://hub.local:8443/\",\"rauc\":\"/nonexistent/rauc\","
	 "\"health_timeout_s\":30,\"download_kbps\":256,\"max_bundle_mb\":64,"
	 "\"reboot_command\":[\"/sbin/reboot\",\"-f\"],\"ca_file\":\"ca.crt\"}", 0, NULL},
	{"{\"hub_url\":\"http://hub.local:8080\"}", -22, "hub_url: expected an https:// URL"},
	{"{}", -22, "hub_url"},
	{"{\"hub_url\":\"https://h\",\"colour\":1}", -22, "colour"},
	{"{\"hub_url\":\"https://h\",\"health_timeout_s\":0}", -22, "health_timeout_s"},
	{"{\"hub_url\":\"https://h\",\"reboot_command\":[]}", -22, "reboot_command"},
	{"{\"hub_url\":\"https://h\",\"reboot_command\":\"reboot\"}", -22, "reboot_command"},
	{"{\"hub_url\":\"https://h\",\"download_kbps\":-1}", -22, "download_kbps"},
	{"not json", -22, NULL},
};

int main(void)
{
	char msg[256], buf[4096];
	struct update *u;
	size_t n;

	if (!mkdtemp(dir))
		return 1;
	snprintf(cfg_path, sizeof(cfg_path), "%s/station.json", dir);
	snprintf(upd_path, sizeof(upd_path), "%s/update.json", dir);

	/* No update.json: updates are off, and a status says nothing. */
	CHECK_INT(open_with(NULL, msg, sizeof(msg), &u), 0);
	CHECK(u != NULL);
	strcpy(buf, "{\"v\":1}");
	n = u ? update_status_append(u, buf, strlen(buf), sizeof(buf)) : 0;
	CHECK_INT(n, 7);
	update_free(u);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = open_with(cases[i].json, msg, sizeof(msg), &u);

		CHECK_INT(rc, cases[i].rc);
		if (cases[i].msg && !strstr(msg, cases[i].msg)) {
			fprintf(stderr, "case %zu: \"%s\" lacks \"%s\"\n", i, msg, cases[i].msg);
			CHECK(0);
		}
		update_free(u);
	}

	/* The topic. */
	{
		struct station_config c = {0};

		snprintf(c.station, sizeof(c.station), "DT-W07");
		snprintf(c.broker.topic_prefix, sizeof(c.broker.topic_prefix), "agri/v1");
		CHECK_INT(update_topic(&c, buf, sizeof(buf)), 21);
		CHECK_STR(buf, "agri/v1/DT-W07/update");
	}
	unlink(upd_path);
	{
		char p[400];

		snprintf(p, sizeof(p), "%s/state/update", dir);
		rmdir(p);
		snprintf(p, sizeof(p), "%s/state", dir);
		rmdir(p);
	}
	rmdir(dir);
	return test_main("test_firmware_update");
}
