/*
 * `agrictl maint ID on|off [--sensor NAME]...`: puts a station, or some of
 * its sensors, into maintenance (or takes them out) from the laptop or the
 * hub. Maintenance is part of the station's config (station.json
 * "maintenance", sensors[].maintenance: docs/station.md), so it travels as
 * every config does: agrictl reads the station's retained desired config,
 * sets the keys, signs it with the technician's key and pushes it as the
 * next version (config_cmd.c's agrictl_push_doc); the station acks it.
 * While in maintenance the station's readings are q "maint", on which no
 * alert fires, and a config's probation does not wait for those sensors.
 * (On site, the file STATE_DIR/maintenance does the same for the station.)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agri/exit.h"
#include "agri/msg.h"
#include "agri/topic.h"
#include "agrictl.h"
#include "cli.h"
#include "hub.h"
#include "msgs.h"

#define SENSORS_MAX 32

static const char *const cmd = "maint";

static void keep_status(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct agri_status *s = ctx;
	struct agri_err e;

	(void)topic;
	if (len)
		agri_status_decode(payload, len, s, &e);
}

static void usage(FILE *f)
{
	fputs("usage: agrictl maint ID on|off [--sensor NAME]... --key NAME.key [--technician NAME]\n"
	      "       [--broker URL] [--username U --password-file F] [--ca-file CA]\n"
	      "       [--topic-prefix P] [--timeout-s 30]\n"
	      "  put a station (or, with --sensor, some of its sensors) into maintenance, or take\n"
	      "  it out: its readings are q \"maint\" and no alert fires on them. Sets\n"
	      "  \"maintenance\" in the station's retained config and pushes it, signed\n"
	      "exit 0 applied, 1 rejected or no config to change, 3 no ack in time\n", f);
}

int agrictl_maint(int argc, char **argv)
{
	static const struct option opts[] = {
		HUB_LONG_OPTS, {"sensor", required_argument, 0, 's'},
		{"key", required_argument, 0, 'k'}, {"technician", required_argument, 0, 'n'},
		{"timeout-s", required_argument, 0, 'w'}, {"help", no_argument, 0, 'h'}, {0}};
	struct push_target p = {.timeout_s = 30};
	const char *sensors[SENSORS_MAX], *technician = NULL;
	char topic[AGRI_TOPIC_MAX], what[256];
	size_t n_sensors = 0;
	cJSON *doc = NULL;
	MQTTClient c = NULL;
	int64_t version;
	bool on;
	long v;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (hub_opt(&p.hub, ch, optarg))
			continue;
		switch (ch) {
		case 's':
			if (n_sensors == SENSORS_MAX || !agri_ident_valid(optarg))
				return cli_usage(cmd, T("--sensor: \"%s\" is not a sensor name"), optarg);
			sensors[n_sensors++] = optarg;
			break;
		case 'k': p.key_file = optarg; break;
		case 'n': technician = optarg; break;
		case 'w':
			if (cli_int(optarg, 1, 3600, false, &v) < 0)
				return cli_usage(cmd, "%s", T("--timeout-s: expected 1..3600"));
			p.timeout_s = (int)v;
			break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	hub_defaults(&p.hub);
	if (optind != argc - 2 || (strcmp(argv[optind + 1], "on") && strcmp(argv[optind + 1], "off")))
		return cli_usage(cmd, "%s", T("expected: agrictl maint ID on|off"));
	p.station = argv[optind];
	on = !strcmp(argv[optind + 1], "on");
	if (!agri_station_id_valid(p.station))
		return cli_usage(cmd, T("\"%s\" is not a station id"), p.station);
	if ((rc = agrictl_push_key(&p, technician)) != 0)
		return rc;
	if (agri_topic_build(topic, sizeof(topic), p.hub.prefix, AGRI_TOPIC_CONFIG, p.station) < 0)
		return cli_usage(cmd, "%s", T("invalid topic prefix"));
	if ((rc = hub_connect(&p.hub, &c)) != 0)
		return rc;
	rc = agrictl_retained_config(c, topic, &doc, &version);
	if (rc < 0 || !cJSON_IsObject(doc)) {
		fprintf(stderr, T("agrictl: %s has no config on the broker (%s) to put into "
				  "maintenance: push its station.json once (agrictl config push), or "
				  "on site create STATE_DIR/maintenance\n"), p.station, topic);
		rc = AGRI_EXIT_FAIL;
		goto out;
	}
	{
		/* Only the config the station runs is a base to change: a retained
		 * one it rejected (or rolled back) would be pushed again. */
		static struct agri_status st;
		char stopic[AGRI_TOPIC_MAX];

		memset(&st, 0, sizeof(st));
		agri_topic_build(stopic, sizeof(stopic), p.hub.prefix, AGRI_TOPIC_STATUS, p.station);
		hub_collect(c, stopic, 500, 3000, keep_status, &st);
		if (st.config_version != version) {
			fprintf(stderr, T("agrictl: the config on the broker is version %lld, %s runs "
					  "version %lld: push the config it should run (agrictl config "
					  "push), then agrictl maint\n"), (long long)version, p.station,
				(long long)st.config_version);
			rc = AGRI_EXIT_FAIL;
			goto out;
		}
	}
	if (!n_sensors) {
		cJSON_DeleteItemFromObjectCaseSensitive(doc, "maintenance");
		if (on)
			cJSON_AddTrueToObject(doc, "maintenance");
		snprintf(what, sizeof(what), T("maintenance %s"), on ? T("on") : T("off"));
	} else {
		cJSON *arr = cJSON_GetObjectItemCaseSensitive(doc, "sensors"), *s;
		size_t found = 0;
		size_t pos;

		cJSON_ArrayForEach(s, arr) {
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");

			for (size_t i = 0; i < n_sensors; i++) {
				if (!cJSON_IsString(name) || strcmp(name->valuestring, sensors[i]))
					continue;
				cJSON_DeleteItemFromObjectCaseSensitive(s, "maintenance");
				if (on)
					cJSON_AddTrueToObject(s, "maintenance");
				found++;
			}
		}
		if (found != n_sensors) {
			fprintf(stderr, T("agrictl: %s's config has no sensor named so (its sensors: "),
				p.station);
			cJSON_ArrayForEach(s, arr) {
				const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "name");

				if (cJSON_IsString(name))
					fprintf(stderr, "%s%s", s == arr->child ? "" : ", ", name->valuestring);
			}
			fputs(")\n", stderr);
			rc = AGRI_EXIT_USAGE;
			goto out;
		}
		pos = (size_t)snprintf(what, sizeof(what), T("maintenance %s for"), on ? T("on") : T("off"));
		for (size_t i = 0; i < n_sensors && pos < sizeof(what); i++)
			pos += (size_t)snprintf(what + pos, sizeof(what) - pos, " %s", sensors[i]);
	}
	rc = agrictl_push_doc(&p, c, doc, what);
out:
	cJSON_Delete(doc);
	hub_close(&c);
	return rc;
}
