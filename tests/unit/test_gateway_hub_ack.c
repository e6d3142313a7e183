/*
 * Acknowledgements shared between hubs (alerts/hub_ack.h, docs/ha.md
 * "Acknowledgements"): the topic, the message read as hostile input, and
 * the verdict against the alert open on this hub — an acknowledgement of
 * an earlier episode never acknowledges a later one, a duplicate is
 * nothing, one whose episode has not come yet waits. The gateways' side
 * (two hubs over a bridge) is tests/integration/test_ha_acks.py.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "test.h"
#include "alerts/hub_ack.h"

#define ID "salinity-high/CL-01/sonde1"
#define EP ID "@1765000000000"

static int dec(const char *json, const char *hub, struct hub_ack *k, char *why, size_t wl)
{
	return hub_ack_decode(json, strlen(json), hub, k, why, wl);
}

static void test_topic(void)
{
	char buf[128], hub[66];

	CHECK_INT(hub_ack_topic(buf, sizeof(buf), "agri/v1", "agri-gateway-a"), 30);
	CHECK_STR(buf, "agri/v1/hub/agri-gateway-a/ack");
	CHECK(hub_ack_topic(buf, 10, "agri/v1", "agri-gateway-a") == -ENOSPC);
	CHECK(hub_ack_topic_match("agri/v1/hub/agri-gateway-a/ack", "agri/v1", hub, sizeof(hub)));
	CHECK_STR(hub, "agri-gateway-a");
	CHECK(!hub_ack_topic_match("agri/v1/hub/agri-gateway-a/status", "agri/v1", hub, sizeof(hub)));
	CHECK(!hub_ack_topic_match("agri/v1/hub//ack", "agri/v1", hub, sizeof(hub)));
	CHECK(!hub_ack_topic_match("agri/v1/hub/a/b/ack", "agri/v1", hub, sizeof(hub)));
	CHECK(!hub_ack_topic_match("agri/v1/CL-01/ack", "agri/v1", hub, sizeof(hub)));
	CHECK(!hub_ack_topic_match("other/hub/a/ack", "agri/v1", hub, sizeof(hub)));
	CHECK(hub_ack_topic_match("p/q/hub/x/ack", "p/q", hub, sizeof(hub)) && !strcmp(hub, "x"));
}

static void test_round_trip(void)
{
	struct hub_ack k = {.raised_at_ms = 1765000000000, .at_ms = 1765000060123}, d;
	char buf[HUB_ACK_MSG_MAX], why[256] = "";
	int n;

	snprintf(k.hub, sizeof(k.hub), "agri-gateway-a");
	snprintf(k.id, sizeof(k.id), ID);
	snprintf(k.severity, sizeof(k.severity), "critical");
	snprintf(k.by, sizeof(k.by), "Nguyễn Thị Lan");
	n = hub_ack_encode(&k, buf, sizeof(buf));
	CHECK(n > 0);
	CHECK(strstr(buf, "\"episode\":\"" EP "\"") != NULL);
	CHECK(strstr(buf, "\"at\":\"2025-12-06T05:47:40.123Z\"") != NULL);
	CHECK_INT(hub_ack_decode(buf, (size_t)n, "agri-gateway-a", &d, why, sizeof(why)), 0);
	CHECK_STR(d.hub, k.hub);
	CHECK_STR(d.id, k.id);
	CHECK_INT(d.raised_at_ms, k.raised_at_ms);
	CHECK_STR(d.severity, "critical");
	CHECK_STR(d.by, "Nguyễn Thị Lan");
	CHECK_INT(d.at_ms, k.at_ms);
	CHECK(hub_ack_encode(&k, buf, 40) < 0);
	/* a per-station alert (no sensor), and a key a newer peer added */
	CHECK_INT(dec("{\"v\":1,\"hub\":\"b\",\"id\":\"offline/CL-01\",\"episode\":\"offline/CL-01@5\","
		      "\"severity\":\"warning\",\"by\":\"api\",\"at\":\"2026-01-01T00:00:00Z\","
		      "\"why\":\"later\"}", "b", &d, why, sizeof(why)), 0);
	CHECK_INT(d.raised_at_ms, 5);
}

static void test_hostile(void)
{
	static const struct {
		const char *json, *says;
	} bad[] = {
		{"", "not a JSON object"},
		{"[1]", "not a JSON object"},
		{"{\"v\":1,", "not a JSON object"},
		{"{\"v\":2,\"hub\":\"a\"}", "v: expected 1"},
		{"{\"v\":1,\"hub\":\"b\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"critical\","
		 "\"by\":\"lan\",\"at\":\"2026-01-01T00:00:00Z\"}", "hub: expected \"a\""},
		{"{\"v\":1,\"id\":\"" ID "\"}", "hub: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"salinity-high\",\"episode\":\"x@1\"}", "id: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"r/alerts/s\"}", "id: expected"}, /* reserved station */
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"r/S/a/b\"}", "id: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"salinity-high/CL-02/sonde1@1\"}",
		 "episode: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" ID "@-5\"}", "episode: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" ID "@12x\"}", "episode: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" ID "@99999999999999999999\"}",
		 "episode: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"dire\"}",
		 "severity"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"\"}", "by: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"1234567890123456789012345678901234567890123456789012345678901234\"}",
		 "by: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"la\\u001bn\"}", "control characters"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"lan\",\"at\":\"yesterday\"}", "at: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"lan\",\"at\":1}", "at: expected"},
		{"{\"v\":1,\"hub\":\"a\",\"id\":\"" ID "\",\"episode\":\"" EP "\",\"severity\":\"alarm\","
		 "\"by\":\"lan\",\"at\":\"2026-01-01T00:00:00Z\",\"x\":{\"y\":{\"z\":{}}}}", "not a JSON"},
	};
	char big[HUB_ACK_MSG_MAX + 64], why[256];
	struct hub_ack k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		CHECK_INT(dec(bad[i].json, "a", &k, why, sizeof(why)), -EBADMSG);
		if (!strstr(why, bad[i].says))
			fprintf(stderr, "case %zu: \"%s\" does not say \"%s\"\n", i, why, bad[i].says);
		CHECK(strstr(why, bad[i].says) != NULL);
	}
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"v\":1}", 7);
	CHECK_INT(hub_ack_decode(big, sizeof(big), "a", &k, why, sizeof(why)), -EBADMSG);
	CHECK(strstr(why, "at most 1024") != NULL);
}

static struct agri_alert alert(int64_t raised, enum agri_alert_state st, const char *sev)
{
	struct agri_alert a = {.raised_at_ms = raised, .state = st};

	snprintf(a.id, sizeof(a.id), ID);
	snprintf(a.severity, sizeof(a.severity), "%s", sev);
	return a;
}

static void test_judge(void)
{
	struct hub_ack k = {.raised_at_ms = 1000};
	struct agri_alert same = alert(1000, AGRI_ALERT_ACTIVE, "alarm");
	struct agri_alert acked = alert(1000, AGRI_ALERT_ACKNOWLEDGED, "alarm");
	struct agri_alert cleared = alert(1000, AGRI_ALERT_CLEARED, "alarm");
	struct agri_alert risen = alert(1000, AGRI_ALERT_ACTIVE, "critical");
	struct agri_alert later = alert(2000, AGRI_ALERT_ACTIVE, "alarm");
	struct agri_alert earlier = alert(500, AGRI_ALERT_ACTIVE, "alarm");

	snprintf(k.id, sizeof(k.id), ID);
	snprintf(k.severity, sizeof(k.severity), "alarm");
	CHECK_INT(hub_ack_judge(&k, true, &same, true), HUB_ACK_APPLY);
	CHECK_INT(hub_ack_judge(&k, true, &cleared, true), HUB_ACK_APPLY); /* closes it */
	CHECK_INT(hub_ack_judge(&k, true, &acked, true), HUB_ACK_DUPLICATE);
	CHECK_INT(hub_ack_judge(&k, true, &risen, true), HUB_ACK_WORSE);
	/* an earlier episode's acknowledgement never touches the later one */
	CHECK_INT(hub_ack_judge(&k, true, &later, true), HUB_ACK_STALE);
	CHECK_INT(hub_ack_judge(&k, true, &later, false), HUB_ACK_STALE);
	/* this hub is behind: nothing open, or an older episode */
	CHECK_INT(hub_ack_judge(&k, true, NULL, false), HUB_ACK_WAIT);
	CHECK_INT(hub_ack_judge(&k, true, &earlier, false), HUB_ACK_WAIT);
	/* ... or the episode is over here (closed) */
	CHECK_INT(hub_ack_judge(&k, true, NULL, true), HUB_ACK_OVER);
	CHECK_INT(hub_ack_judge(&k, false, NULL, false), HUB_ACK_UNKNOWN);
	CHECK_STR(hub_ack_verdict_name(HUB_ACK_WAIT), "waiting");
	CHECK_STR(hub_ack_verdict_name(HUB_ACK_UNKNOWN), "unknown");
}

int main(void)
{
	test_topic();
	test_round_trip();
	test_hostile();
	test_judge();
	return test_main("test_gateway_hub_ack");
}
