/*
 * The hubs' registry (core/hubs.h, docs/dashboard.md "Hubs"): hub statuses
 * read as hostile input (whatever the broker holds), bounded; which
 * stations are on which hub; up, offline and not heard by the rule agrictl
 * status --all uses; how far behind each hub is. The gateways' side (two
 * hubs, a SIGKILL) is tests/integration/test_dashboard_hubs.py.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "agri/time.h"
#include "core/hubs.h"

#define T0 1765000000000LL /* 2025-12-06T05:46:40Z */

static int parse(const char *id, const char *json, struct hub_status *s)
{
	char why[160] = "";

	return hubs_parse(id, json, strlen(json), s, why, sizeof(why));
}

static void test_topic(void)
{
	char id[GW_NAME_MAX + 1];
	const char *t;

	t = "agri/v1/hub/agri-gateway-a/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), 1);
	CHECK_STR(id, "agri-gateway-a");
	t = "agri/v1/hub/a.b_c-9/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), 1);
	t = "agri/v1/hub/agri-gateway-a/ack";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), 0);
	t = "agri/v1/CL-01/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), 0);
	t = "other/hub/a/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), 0);
	/* ours, but an id we refuse: taken (never a station's), not kept */
	t = "agri/v1/hub//status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), -1);
	t = "agri/v1/hub/a/b/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), -1);
	t = "agri/v1/hub/a\"<b>/status";
	CHECK_INT(hubs_topic("agri/v1", t, strlen(t), id), -1);
	{
		char big[200];

		snprintf(big, sizeof(big), "agri/v1/hub/%065d/status", 0);
		CHECK_INT(hubs_topic("agri/v1", big, strlen(big), id), -1);
		snprintf(big, sizeof(big), "agri/v1/hub/%064d/status", 0);
		CHECK_INT(hubs_topic("agri/v1", big, strlen(big), id), 1);
	}
}

static void test_parse(void)
{
	struct hub_status s;

	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\",\"fw\":\"0.1.0\","
			"\"ts\":\"2025-12-06T05:46:40Z\",\"db_writable\":true,"
			"\"ha\":{\"hub_id\":\"hub-a\",\"priority\":1},"
			"\"station_url\":\"mqtts://hub-a.local:8883\","
			"\"newest_reading\":\"2025-12-06T05:46:00Z\","
			"\"newest_by_url\":{\"mqtts://hub-a.local:8883\":\"2025-12-06T05:46:00Z\","
			"\"mqtts://hub-b.local:8883\":\"2025-12-06T05:45:00Z\"}}", &s), 0);
	CHECK_STR(s.id, "gw-a");
	CHECK_STR(s.hub_id, "hub-a");
	CHECK_STR(s.fw, "0.1.0");
	CHECK(s.online && s.db_writable);
	CHECK_INT(s.ts_ms, T0);
	CHECK_STR(s.station_url, "mqtts://hub-a.local:8883");
	CHECK_INT(s.newest_ms, T0 - 40000);
	CHECK_INT(s.n_newest, 2);
	CHECK_INT(s.newest[1].ms, T0 - 100000);
	/* a Last Will: the minimum */
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"offline\","
			"\"ts\":\"2025-12-06T05:46:40Z\"}", &s), 0);
	CHECK(!s.online && !s.station_url[0] && !s.n_newest && !s.newest_ms);
}

static void test_hostile(void)
{
	struct hub_status s;
	char *big;

	/* refused whole */
	CHECK_INT(parse("gw-a", "", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "not json", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "[1,2]", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":2,\"hub\":\"gw-a\",\"state\":\"online\","
			"\"ts\":\"2025-12-06T05:46:40Z\"}", &s), -EBADMSG);
	/* another hub's name on this one's topic */
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-b\",\"state\":\"online\","
			"\"ts\":\"2025-12-06T05:46:40Z\"}", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"up\","
			"\"ts\":\"2025-12-06T05:46:40Z\"}", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\"}", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\",\"ts\":12}", &s),
		  -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\","
			"\"ts\":\"9999-12-31T23:59:59Z\"}", &s), -EBADMSG);
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\","
			"\"ts\":\"2025-12-06T05:46:40Z\"", &s), -EBADMSG);
	/* deeper than 8 levels */
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\","
			"\"ts\":\"2025-12-06T05:46:40Z\",\"x\":[[[[[[[[[[1]]]]]]]]]]}", &s), -EBADMSG);
	/* over 8 KiB, however valid */
	big = malloc(HUBS_PAYLOAD_MAX + 200);
	if (big) {
		int n = snprintf(big, 200, "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\","
				 "\"ts\":\"2025-12-06T05:46:40Z\",\"pad\":\"");

		memset(big + n, 'x', HUBS_PAYLOAD_MAX);
		strcpy(big + n + HUBS_PAYLOAD_MAX, "\"}");
		CHECK_INT(parse("gw-a", big, &s), -EBADMSG);
		free(big);
	}
	/* optional fields malformed: left out, the rest kept */
	CHECK_INT(parse("gw-a", "{\"v\":1,\"hub\":\"gw-a\",\"state\":\"online\","
			"\"ts\":\"2025-12-06T05:46:40Z\",\"fw\":\"<script>\\u0007\","
			"\"ha\":{\"hub_id\":\"a b\"},\"station_url\":\"javascript:alert(1)\","
			"\"newest_reading\":\"yesterday\",\"db_writable\":\"yes\","
			"\"newest_by_url\":{\"mqtts://a\\\"b:1\":\"2025-12-06T05:46:00Z\","
			"\"mqtts://ok:1\":12,\"http://x:1\":\"2025-12-06T05:46:00Z\","
			"\"mqtts://dup:1\":\"2025-12-06T05:46:00Z\","
			"\"MQTTS://DUP:1\":\"2025-12-06T05:46:00Z\","
			"\"ssl://dup:1\":\"2025-12-06T05:47:00Z\"}}", &s), 0);
	CHECK_STR(s.fw, "?script??");
	CHECK_STR(s.hub_id, "");
	CHECK_STR(s.station_url, "");
	CHECK_INT(s.newest_ms, 0);
	CHECK(!s.db_writable);
	CHECK_INT(s.n_newest, 1); /* mqtts://dup:1 once (ssl:// is mqtts://) */
	CHECK_STR(s.newest[0].url, "mqtts://dup:1");
	/* at most HUBS_URLS_MAX URLs */
	{
		char doc[4096];
		size_t n = (size_t)snprintf(doc, sizeof(doc), "{\"v\":1,\"hub\":\"gw-a\","
					    "\"state\":\"online\",\"ts\":\"2025-12-06T05:46:40Z\","
					    "\"newest_by_url\":{");

		for (int i = 0; i < 20; i++)
			n += (size_t)snprintf(doc + n, sizeof(doc) - n,
					      "%s\"mqtts://h%d:1\":\"2025-12-06T05:46:00Z\"",
					      i ? "," : "", i);
		snprintf(doc + n, sizeof(doc) - n, "}}");
		CHECK_INT(parse("gw-a", doc, &s), 0);
		CHECK_INT(s.n_newest, HUBS_URLS_MAX);
	}
}

static void offer(struct hubs *h, const char *id, const char *json)
{
	char topic[128];

	snprintf(topic, sizeof(topic), "agri/v1/hub/%s/status", id);
	CHECK_INT(hubs_offer(h, topic, strlen(topic), json, strlen(json)), 1);
}

static void status(struct hubs *h, const char *id, const char *state, int64_t ts,
		   const char *url, const char *by_url)
{
	char json[1024], t[32];

	agri_time_format(ts, t, sizeof(t));
	snprintf(json, sizeof(json), "{\"v\":1,\"hub\":\"%s\",\"state\":\"%s\",\"ts\":\"%s\","
		 "\"station_url\":\"%s\",\"newest_by_url\":{%s}}", id, state, t, url, by_url);
	offer(h, id, json);
}

static void test_registry(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	struct hubs *h;
	char *doc = malloc(1 << 18), fields[4096], t[32], by[512];
	const char *topic = "agri/v1/CL-01/status";

	if (!cfg || !doc) {
		CHECK(false);
		return;
	}
	snprintf(cfg->broker.topic_prefix, sizeof(cfg->broker.topic_prefix), "agri/v1");
	snprintf(cfg->broker.client_id, sizeof(cfg->broker.client_id), "gw-a");
	snprintf(cfg->broker.station_url, sizeof(cfg->broker.station_url), "mqtts://a:8883");
	h = hubs_new(cfg);
	CHECK(h != NULL);
	/* not ours: to the ingest */
	CHECK_INT(hubs_offer(h, topic, strlen(topic), "{}", 2), 0);
	/* stations: two on A (one saying ssl://, the same hub), one on B, one
	 * offline, one on a URL no hub claims */
	hubs_station_status(h, "A1", true, "mqtts://a:8883");
	hubs_station_status(h, "A2", true, "ssl://A:8883");
	hubs_station_status(h, "B1", true, "mqtts://b:8883");
	hubs_station_status(h, "Z1", false, "");
	hubs_station_status(h, "X1", true, "mqtts://x:8883");
	hubs_station_status(h, "H1", true, "mqtts://\"<b>:1"); /* hostile: on no hub */
	hubs_station_reading(h, "A1", T0 - 30000);
	hubs_station_reading(h, "B1", T0 - 20000);
	hubs_station_reading(h, "B1", T0 - 90000); /* older: no change */
	CHECK(hubs_status_fields(h, fields, sizeof(fields)) > 0);
	CHECK(strstr(fields, "\"station_url\":\"mqtts://a:8883\"") != NULL);
	agri_time_format(T0 - 20000, t, sizeof(t));
	CHECK(strstr(fields, "\"newest_reading\":\"2025-12-06T05:46:20.000Z\"") != NULL);
	CHECK(strstr(fields, "\"mqtts://b:8883\":\"2025-12-06T05:46:20.000Z\"") != NULL);
	CHECK(strstr(fields, "\"mqtts://a:8883\":\"2025-12-06T05:46:10.000Z\"") != NULL);
	CHECK_INT(hubs_status_fields(h, fields, 16), -ENOSPC);

	/* A says it has B's stations to 05:45:00, B to 05:46:20: A is 80 s behind */
	snprintf(by, sizeof(by), "\"mqtts://a:8883\":\"2025-12-06T05:46:10Z\","
		 "\"mqtts://b:8883\":\"2025-12-06T05:45:00Z\"");
	status(h, "gw-a", "online", T0, "mqtts://a:8883", by);
	snprintf(by, sizeof(by), "\"mqtts://a:8883\":\"2025-12-06T05:46:10Z\","
		 "\"mqtts://b:8883\":\"2025-12-06T05:46:20Z\"");
	status(h, "gw-b", "online", T0, "mqtts://b:8883", by);
	CHECK(hubs_json(h, T0 + 1000, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "{\"id\":\"gw-a\",\"hub_id\":null,\"self\":true,\"state\":\"up\"") != NULL);
	CHECK(strstr(doc, "\"stations\":[\"A1\",\"A2\"]") != NULL);
	CHECK(strstr(doc, "\"id\":\"gw-b\",\"hub_id\":null,\"self\":false,\"state\":\"up\"") != NULL);
	CHECK(strstr(doc, "\"stations\":[\"B1\"]") != NULL);
	CHECK(strstr(doc, "\"behind_s\":80}") != NULL);
	CHECK(strstr(doc, "\"behind_s\":0}") != NULL);
	CHECK(strstr(doc, "\"other_urls\":[{\"url\":\"mqtts://x:8883\",\"stations\":[\"X1\"]}]") !=
	      NULL);
	CHECK(strstr(doc, "\"on_no_hub\":[\"H1\",\"Z1\"]") != NULL);
	CHECK(strstr(doc, "\"now\":\"2025-12-06T05:46:00.000Z\"") != NULL);

	/* B's Last Will: offline at once, though its ts is older */
	status(h, "gw-b", "offline", T0 - 3600000, "", "");
	CHECK(hubs_json(h, T0 + 1000, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"id\":\"gw-b\",\"hub_id\":null,\"self\":false,\"state\":\"offline\","
			  "\"why\":\"offline\"") != NULL);
	/* an offline hub is nobody's yardstick: A no longer behind it */
	CHECK(strstr(doc, "\"behind_s\":80") == NULL);
	/* a stale online status, replayed: older, ignored */
	status(h, "gw-b", "online", T0 - 7200000, "mqtts://b:8883", "");
	CHECK(hubs_json(h, T0 + 1000, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"id\":\"gw-b\",\"hub_id\":null,\"self\":false,\"state\":\"offline\"") !=
	      NULL);
	/* back; then silent for more than 3 minutes: not heard */
	status(h, "gw-b", "online", T0, "mqtts://b:8883", "");
	CHECK(hubs_json(h, T0 + HUBS_SILENT_MS, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"id\":\"gw-b\",\"hub_id\":null,\"self\":false,\"state\":\"up\"") != NULL);
	CHECK(hubs_json(h, T0 + HUBS_SILENT_MS + 1, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"state\":\"offline\",\"why\":\"not heard\"") != NULL);
	/* a malformed status leaves the hub as it was; an empty one (the
	 * retained status deleted) removes it */
	offer(h, "gw-b", "{\"v\":1,\"hub\":\"gw-b\"}");
	CHECK(hubs_json(h, T0, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"id\":\"gw-b\",\"hub_id\":null,\"self\":false,\"state\":\"up\"") != NULL);
	CHECK_INT(hubs_offer(h, "agri/v1/hub/gw-b/status", 23, "", 0), 1);
	CHECK(hubs_json(h, T0, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "gw-b") == NULL);
	/* a flood of hub ids: at most HUBS_MAX kept, the newest */
	for (int i = 0; i < 3 * HUBS_MAX; i++) {
		char id[16];

		snprintf(id, sizeof(id), "flood-%03d", i);
		status(h, id, "online", T0 + i, "mqtts://f:1", "");
	}
	CHECK(hubs_json(h, T0, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"flood-000\"") == NULL);
	CHECK(strstr(doc, "\"flood-191\"") != NULL);
	{
		size_t n = 0;

		for (const char *p = doc; (p = strstr(p, "{\"id\":")) != NULL; p++)
			n++;
		CHECK_INT(n, HUBS_MAX);
	}
	CHECK_INT(hubs_json(h, T0, doc, 64), -ENOSPC);
	/* a flood of stations and URLs: bounded */
	for (int i = 0; i < HUBS_STATIONS_MAX + 100; i++) {
		char name[16], url[32];

		snprintf(name, sizeof(name), "S%05d", i);
		snprintf(url, sizeof(url), "mqtts://s%d:1", i);
		hubs_station_status(h, name, true, url);
		hubs_station_reading(h, name, T0);
	}
	CHECK(hubs_status_fields(h, fields, sizeof(fields)) > 0);
	CHECK(hubs_json(h, T0, doc, 1 << 18) > 0);
	CHECK(strstr(doc, "\"S05000\"") == NULL); /* past HUBS_STATIONS_MAX */
	hubs_free(h);
	free(doc);
	free(cfg);
}

int main(void)
{
	test_topic();
	test_parse();
	test_hostile();
	test_registry();
	return test_main("test_gateway_hubs");
}
