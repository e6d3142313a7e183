/*
 * gateway.json's lists and its optional "sites" section (docs/gateway.md):
 * the webhooks, the SMTP and SMS recipients, the forecast's channels, and
 * the sites' names,
 * districts and crops for people, keyed by station id. Loaded through
 * gateway_config_load(), so what is checked is what the gateway starts
 * with: the good cases keep UTF-8 names as written, every bad one is
 * refused with the field and the reason (the caller names the file).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "agri/buf.h"
#include "gateway/config.h"

static char dir[] = "/tmp/gw-config-XXXXXX";

/* Loads a config: the whole document (JSON text). Returns 0 or the error
 * "path: reason" in msg. */
static int load_json(const char *json, struct gateway_config *cfg, char *msg, size_t len)
{
	char path[256];
	struct agri_err err;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/gw.json", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(json, f);
	fclose(f);
	memset(&err, 0, sizeof(err));
	rc = gateway_config_load(path, cfg, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

/* Loads a config with extra members (JSON text) beside broker and db. */
static int load_members(const char *members, struct gateway_config *cfg, char *msg, size_t len)
{
	char json[20000];

	snprintf(json, sizeof(json), "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\"},"
		 "\"db\":{\"path\":\"x.db\"},%s}", members);
	return load_json(json, cfg, msg, len);
}

/* Loads a config whose "sites" member is the JSON text given. */
static int load(const char *sites, struct gateway_config *cfg, char *msg, size_t len)
{
	char members[16384];

	snprintf(members, sizeof(members), "\"sites\":%s", sites);
	return load_members(members, cfg, msg, len);
}

static void test_lists(struct gateway_config *cfg)
{
	static const struct {
		const char *members;
		const char *err; /* part of the refusal, NULL: accepted */
	} t[] = {
		{"\"notify\":{\"webhooks\":[{\"name\":\"ops\",\"url\":\"http://127.0.0.1:9/\"}],"
		 "\"sms\":{\"name\":\"sms\",\"url\":\"http://127.0.0.1:9/\",\"to\":[\"+84901234567\"]}},"
		 "\"forecast\":{\"notify\":[\"ops\"]}", NULL},
		{"\"notify\":{\"webhooks\":{}}", "notify.webhooks: expected an array of at most 16 webhooks"},
		{"\"notify\":{\"webhooks\":[{\"name\":\"ops\"}]}", "notify.webhooks[0].url"},
		{"\"notify\":{\"webhooks\":[{\"name\":\"ops\",\"url\":\"http://x/\",\"x\":1}]}",
		 "notify.webhooks[0].x"},
		{"\"notify\":{\"sms\":{\"name\":\"s\",\"url\":\"http://127.0.0.1:9/\",\"to\":[]}}",
		 "notify.sms.to: expected an array of 1 to"},
		{"\"notify\":{\"sms\":{\"name\":\"s\",\"url\":\"http://127.0.0.1:9/\","
		 "\"to\":[\"+8490\",\"lan\"]}}", "notify.sms.to[1]: expected a phone number"},
		{"\"notify\":{\"smtp\":{\"name\":\"m\",\"url\":\"smtp://127.0.0.1:25\",\"from\":\"a@b\","
		 "\"tls\":\"none\",\"to\":[\"\"]}}", "notify.smtp.to[0]: expected an e-mail address"},
		{"\"notify\":{\"smtp\":{\"name\":\"m\",\"url\":\"smtp://127.0.0.1:25\",\"from\":\"a@b\","
		 "\"tls\":\"none\",\"to\":[7]}}", "notify.smtp.to[0]: expected a string"},
		{"\"forecast\":{\"notify\":[\"Ops Room\"]}", "forecast.notify[0]: expected a name"},
		{"\"drift\":{\"window_days\":14,\"fall_pct\":8,\"min_g_l\":0.5}", NULL},
		{"\"drift\":{\"window_days\":2}", "drift.window_days"},
		{"\"drift\":{\"fall_pct\":95}", "drift.fall_pct"},
		{"\"drift\":{\"days\":7}", "drift.days"},
	};
	char msg[512];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		int rc = load_members(t[i].members, cfg, msg, sizeof(msg));

		if (t[i].err ? (rc == 0 || !strstr(msg, t[i].err)) : rc != 0)
			fprintf(stderr, "case %zu: %s\n", i, msg);
		CHECK(t[i].err ? rc < 0 && strstr(msg, t[i].err) : rc == 0);
	}
	CHECK_INT(load_members(t[0].members, cfg, msg, sizeof(msg)), 0);
	CHECK_INT((int)cfg->notify.n_webhooks, 1);
	CHECK_STR(cfg->notify.webhooks[0].url, "http://127.0.0.1:9/");
	CHECK_INT((int)cfg->notify.sms.n_to, 1);
	CHECK_STR(cfg->notify.sms.to[0], "+84901234567");
	CHECK_INT((int)cfg->forecast.n_notify, 1);
}

/* "ha" (docs/ha.md): the hub's name, the claims database, its priority;
 * every refusal names the field. No "ha": the gateway is the only hub. */
static void test_ha(struct gateway_config *cfg)
{
	static const struct {
		const char *members;
		const char *err; /* part of the refusal, NULL: accepted */
	} t[] = {
		{"\"ha\":{\"hub_id\":\"hub-a\",\"claims\":\"host=127.0.0.1 dbname=agri\",\"priority\":1}",
		 NULL},
		{"\"ha\":null", NULL},
		{"\"ha\":{\"claims\":\"host=127.0.0.1\",\"priority\":1}", "ha.hub_id: is required"},
		{"\"ha\":{\"hub_id\":\"a\",\"priority\":1}", "ha.claims: is required"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\"}", "ha.priority: is required"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":3}", "ha.priority"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":\"1\"}", "ha.priority"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":2,"
		 "\"takeover_s\":0}", "ha.takeover_s"},
		{"\"ha\":{\"hub_id\":\"hub a\",\"claims\":\"host=127.0.0.1\",\"priority\":1}",
		 "ha.hub_id: expected 1-32 of"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"\",\"priority\":1}", "ha.claims: must not be empty"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1 nonsense\",\"priority\":1}",
		 "ha.claims: "},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=pg.province.vn sslmode=require\","
		 "\"priority\":1}", "ha.claims: sslmode=require to a host that is not this machine"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,\"leader\":true}",
		 "ha.leader"},
		{"\"ha\":[]", "ha"},
		/* catch-up (docs/ha.md "Catch-up") */
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,"
		 "\"catchup\":false,\"catchup_window_h\":720,\"catchup_every_s\":2,"
		 "\"catchup_settle_s\":0}", NULL},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,"
		 "\"catchup\":\"yes\"}", "ha.catchup"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,"
		 "\"catchup_window_h\":721}", "ha.catchup_window_h"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,"
		 "\"catchup_every_s\":1}", "ha.catchup_every_s"},
		{"\"ha\":{\"hub_id\":\"a\",\"claims\":\"host=127.0.0.1\",\"priority\":1,"
		 "\"catchup_settle_s\":-1}", "ha.catchup_settle_s"},
	};
	char msg[512];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		int rc = load_members(t[i].members, cfg, msg, sizeof(msg));

		if (t[i].err ? (rc == 0 || !strstr(msg, t[i].err)) : rc != 0)
			fprintf(stderr, "ha case %zu: %s\n", i, msg);
		CHECK(t[i].err ? rc < 0 && strstr(msg, t[i].err) : rc == 0);
	}
	CHECK_INT(load_members(t[0].members, cfg, msg, sizeof(msg)), 0);
	CHECK(cfg->ha.enabled);
	CHECK_STR(cfg->ha.hub_id, "hub-a");
	CHECK_INT((int)cfg->ha.priority, 1);
	CHECK_INT((int)cfg->ha.takeover_s, 120); /* the default */
	CHECK(cfg->ha.catchup); /* on by default with ha */
	CHECK_INT((int)cfg->ha.catchup_window_h, 48);
	CHECK_INT((int)cfg->ha.catchup_every_s, 120);
	CHECK_INT((int)cfg->ha.catchup_settle_s, 600);
	CHECK_STR(cfg->ha.claims_sslmode, "prefer");
	CHECK_INT(load_members("\"ha\":null", cfg, msg, sizeof(msg)), 0);
	CHECK(!cfg->ha.enabled);
	CHECK_INT(load_members("\"rules_file\":\"\"", cfg, msg, sizeof(msg)), 0);
	CHECK(!cfg->ha.enabled);
}

/* A shared group splits each station's messages between its gateways:
 * storage only. Rules and forecasts would judge half of every series. */
static void test_shared_group(struct gateway_config *cfg)
{
	static const struct {
		const char *rest;
		const char *err; /* part of the refusal, NULL: accepted */
	} t[] = {
		{",\"forecast\":{\"enabled\":false}", NULL},
		{",\"forecast\":{\"enabled\":false},\"rules_file\":\"\"", NULL},
		{"", "broker.shared_group: "},
		{",\"forecast\":{\"enabled\":false},\"rules_file\":\"/etc/agri/rules.json\"",
		 "broker.shared_group: "},
	};
	char json[512], msg[512];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		int rc;

		snprintf(json, sizeof(json), "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\","
			 "\"shared_group\":\"province\"},\"db\":{\"path\":\"x.db\"}%s}", t[i].rest);
		rc = load_json(json, cfg, msg, sizeof(msg));
		if (t[i].err ? (rc == 0 || !strstr(msg, t[i].err)) : rc != 0)
			fprintf(stderr, "shared_group case %zu: %s\n", i, msg);
		CHECK(t[i].err ? rc < 0 && strstr(msg, t[i].err) : rc == 0);
	}
	/* each refusal says which of the two and what to do instead */
	snprintf(json, sizeof(json), "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\","
		 "\"shared_group\":\"p\"},\"db\":{\"path\":\"x.db\"}}");
	CHECK(load_json(json, cfg, msg, sizeof(msg)) < 0 && strstr(msg, "forecast") &&
	      strstr(msg, "docs/ha.md"));
	snprintf(json, sizeof(json), "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\","
		 "\"shared_group\":\"p\"},\"db\":{\"path\":\"x.db\"},\"forecast\":"
		 "{\"enabled\":false},\"rules_file\":\"r.json\"}");
	CHECK(load_json(json, cfg, msg, sizeof(msg)) < 0 && strstr(msg, "rules_file") &&
	      strstr(msg, "docs/ha.md"));
}

static void test_good(struct gateway_config *cfg)
{
	char msg[512];

	CHECK_INT(load("{\"DT-W01\":{\"name\":\"Cửa Tiểu (Tân Thành)\",\"district\":\"Gò Công Đông\","
		       "\"crops\":[\"rice\",\"durian\"]},\"DT-I07\":{\"name\":\"Tháp Mười 2\"}}",
		       cfg, msg, sizeof(msg)), 0);
	CHECK_INT((int)cfg->sites.n, 2);
	CHECK_STR(cfg->sites.site[0].station, "DT-W01");
	CHECK_STR(cfg->sites.site[0].name, "Cửa Tiểu (Tân Thành)");
	CHECK_STR(cfg->sites.site[0].district, "Gò Công Đông");
	CHECK_INT((int)cfg->sites.site[0].n_crops, 2);
	CHECK_STR(cfg->sites.site[0].crops[1], "durian");
	CHECK_STR(cfg->sites.site[1].district, "");
	CHECK_INT((int)cfg->sites.site[1].n_crops, 0);
	CHECK_INT((int)cfg->sites.site[0].n_neighbours, 0);
	CHECK_INT(load("{\"DT-W02\":{\"name\":\"Vàm Kênh\",\"neighbours\":[\"DT-W01\",\"DT-W03\"]}}",
		       cfg, msg, sizeof(msg)), 0);
	CHECK_INT((int)cfg->sites.site[0].n_neighbours, 2);
	CHECK_STR(cfg->sites.site[0].neighbours[1], "DT-W03");
	CHECK(!cfg->sites.site[0].has_sluice);
	/* A sluice: its own limit, and the level gravity intake needs. */
	CHECK_INT(load("{\"DT-W03\":{\"name\":\"Hòa Bình\",\"sluice\":{\"below_g_l\":0.7,"
		       "\"min_level_m\":-0.25}},\"DT-W04\":{\"name\":\"Mỹ Tho\",\"sluice\":{\"below_g_l\":1,"
		       "\"min_level_m\":0.4}},\"DT-W05\":{\"name\":\"Cái Bè\",\"sluice\":{\"below_g_l\":0.6}}}",
		       cfg, msg, sizeof(msg)), 0);
	CHECK(cfg->sites.site[0].has_sluice && cfg->sites.site[0].has_min_level);
	CHECK_NEAR(cfg->sites.site[0].sluice_below_g_l, 0.7, 0);
	CHECK_NEAR(cfg->sites.site[0].sluice_min_level_m, -0.25, 0);
	CHECK(cfg->sites.site[2].has_sluice && !cfg->sites.site[2].has_min_level);
	/* null and {} both mean: no names. */
	CHECK_INT(load("null", cfg, msg, sizeof(msg)), 0);
	CHECK_INT((int)cfg->sites.n, 0);
	CHECK_INT(load("{}", cfg, msg, sizeof(msg)), 0);
	CHECK_INT((int)cfg->sites.n, 0);
}

static void test_bad(struct gateway_config *cfg)
{
	static const struct {
		const char *sites;
		const char *err; /* part of the refusal */
	} t[] = {
		{"[]", "sites: expected an object keyed by station id"},
		{"{\"DT W01\":{\"name\":\"x\"}}", "not a station id"},
		{"{\"DT-W01\":{\"district\":\"x\"}}", "sites.DT-W01.name"},
		{"{\"DT-W01\":{\"name\":\"\"}}", "sites.DT-W01"},
		{"{\"DT-W01\":{\"name\":\"a\\u0007b\"}}", "control characters"},
		{"{\"DT-W01\":{\"name\":\"x\",\"district\":\"a\\nb\"}}", "control characters"},
		{"{\"DT-W01\":{\"name\":\"x\"},\"DT-W01\":{\"name\":\"y\"}}", "given twice"},
		{"{\"DT-W01\":{\"name\":\"x\",\"crops\":\"rice\"}}", "sites.DT-W01.crops"},
		{"{\"DT-W01\":{\"name\":\"x\",\"crops\":[\"rice paddy\"]}}", "sites.DT-W01.crops[0]"},
		{"{\"DT-W01\":{\"name\":\"x\",\"crops\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\"]}}",
		 "expected an array of at most 6 crop keys"},
		{"{\"DT-W01\":{\"name\":\"x\",\"colour\":\"red\"}}", "colour"},
		{"{\"DT-W01\":{\"name\":\"x\",\"sluice\":{}}}", "sites.DT-W01.sluice.below_g_l: is required"},
		{"{\"DT-W01\":{\"name\":\"x\",\"sluice\":{\"below_g_l\":0}}}", "sites.DT-W01.sluice.below_g_l"},
		{"{\"DT-W01\":{\"name\":\"x\",\"sluice\":{\"below_g_l\":1}}}", "is on the ladder"},
		{"{\"DT-W01\":{\"name\":\"x\",\"sluice\":{\"below_g_l\":0.7,\"min_level_m\":\"1\"}}}",
		 "sites.DT-W01.sluice.min_level_m"},
		/* neighbours: station ids, not itself, not twice, at most 4 */
		{"{\"DT-W01\":{\"name\":\"x\",\"neighbours\":[\"DT W02\"]}}",
		 "sites.DT-W01.neighbours[0]: expected a station id"},
		{"{\"DT-W01\":{\"name\":\"x\",\"neighbours\":[\"DT-W01\"]}}",
		 "sites.DT-W01: neighbours: DT-W01 is the station itself"},
		{"{\"DT-W01\":{\"name\":\"x\",\"neighbours\":[\"A\",\"A\"]}}",
		 "sites.DT-W01: neighbours: A given twice"},
		{"{\"DT-W01\":{\"name\":\"x\",\"neighbours\":[\"A\",\"B\",\"C\",\"D\",\"E\"]}}",
		 "sites.DT-W01.neighbours: expected an array of at most 4 stations"},
	};
	char msg[512];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		CHECK(load(t[i].sites, cfg, msg, sizeof(msg)) < 0);
		if (!strstr(msg, t[i].err))
			fprintf(stderr, "case %zu: %s\n", i, msg);
		CHECK(strstr(msg, t[i].err) != NULL);
	}
}

/* More sites than the gateway holds is refused, not cut. */
static void test_too_many(struct gateway_config *cfg)
{
	size_t cap = (GW_SITES_MAX + 1) * 40 + 16, pos = 0;
	char *s = malloc(cap), msg[512];

	if (!s) {
		CHECK(0);
		return;
	}
	pos += (size_t)snprintf(s + pos, cap - pos, "{");
	for (int i = 0; i <= GW_SITES_MAX; i++)
		pos += (size_t)snprintf(s + pos, cap - pos, "%s\"S%03d\":{\"name\":\"n\"}",
					i ? "," : "", i);
	snprintf(s + pos, cap - pos, "}");
	CHECK(load(s, cfg, msg, sizeof(msg)) < 0);
	CHECK(strstr(msg, "more than 256 sites") != NULL);
	free(s);
}

int main(void)
{
	struct gateway_config *cfg = calloc(1, sizeof(*cfg));
	char path[256];

	if (!cfg || !mkdtemp(dir))
		return 1;
	test_lists(cfg);
	test_ha(cfg);
	test_shared_group(cfg);
	test_good(cfg);
	test_bad(cfg);
	test_too_many(cfg);
	snprintf(path, sizeof(path), "%s/gw.json", dir);
	unlink(path);
	rmdir(dir);
	free(cfg);
	return test_main("test_gateway_config");
}
