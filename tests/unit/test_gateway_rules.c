/*
 * Unit tests of gateway/rules.h: every rule kind parses with its
 * defaults, a table of bad documents each fails with its exact
 * "path: reason", channels must exist, date ranges wrap the year, globs
 * scope rules, and the shipped rules.default.json validates.
 * JSON in the tables is written with ' for " (see jq()).
 */
#include <errno.h>
#include <stdlib.h>

#include "gateway/rules.h"
#include "test.h"

#ifndef AGRI_SOURCE_DIR
#define AGRI_SOURCE_DIR ".."
#endif

static const char *jq(const char *s)
{
	static char pool[4][8192];
	static int next;
	char *d = pool[next++ & 3];
	size_t i;

	for (i = 0; s[i] && i < sizeof(pool[0]) - 1; i++)
		d[i] = s[i] == '\'' ? '"' : s[i];
	d[i] = '\0';
	return d;
}

static const char *const chans[] = {"ops", "mail", "sms"};

static struct rules *parse(const char *json, struct agri_err *err)
{
	const char *j = jq(json);

	return rules_parse(j, strlen(j), chans, 3, err);
}

static void test_kinds(void)
{
	struct agri_err err = {.path = ""};
	struct rules *r = parse(
		"{'rules':["
		"{'id':'salinity-high','metric':'salinity','above':4.0,'hysteresis':0.3,'for_s':0,"
		" 'severity':'critical','stations':['*'],'notify':['ops','mail']},"
		"{'id':'do-low','metric':'dissolved_oxygen','below':2.0,'hysteresis':0.2,'for_s':900,"
		" 'severity':'warning','notify':['ops']},"
		"{'id':'station-offline','kind':'no_data','after_s':900,'severity':'warning','notify':['ops']},"
		"{'id':'sal','kind':'ladder','metric':'salinity','hysteresis':0.1,'levels':["
		" {'above':0.5,'severity':'info','label':{'en':'durian','vi':'sầu riêng'}},"
		" {'above':4,'severity':'critical','label':'all','hysteresis':0.3}]},"
		"{'id':'w','kind':'window','metric':'insect_count','window_s':86400,'agg':'max','above':100},"
		"{'id':'p','kind':'peak','metric':'insect_count','sensors':['*-bph'],'k':4,'nights':6,'floor':50},"
		"{'id':'r','kind':'rate','metric':'salinity','above':0.5},"
		"{'id':'s','kind':'no_data','per':'sensor','metric':'salinity','after_s':60},"
		"{'id':'q','kind':'quality','n':3,'q':['error']},"
		"{'id':'b','metric':'battery_voltage','below':11.8,'or':[{'metric':'battery_soc','below':20}],"
		" 'active':[{'from':'11-15','to':'02-28'}],'escalate':{'after_s':600,'notify':['sms']},"
		" 'renotify_s':3600,'message':{'en':'Low {metric}','vi':'Thấp {metric}'}}"
		"]}", &err);
	const struct rule *x;

	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "  %s: %s\n", err.path, err.msg);
		return;
	}
	CHECK_INT(r->n, 10 + 5); /* + the built-in misbehaving, clock, hub-storage, sensor-check,
				  * calibration-due */
	CHECK_INT(rules_find(r, "sensor-check")->kind, RULE_SENSOR);
	CHECK_INT(rules_find(r, "sensor-check")->n_bad, 3);
	CHECK_INT(rules_find(r, "misbehaving")->kind, RULE_MISBEHAVING);
	CHECK_INT(rules_find(r, "clock")->kind, RULE_CLOCK);
	CHECK_INT(rules_find(r, "hub-storage")->kind, RULE_HUB);
	CHECK_INT(rules_find(r, "hub-storage")->severity, ALERT_SEV_CRITICAL);
	CHECK_INT(rules_find(r, "clock")->after_s, 900);
	CHECK_INT(r->utc_offset_min, 420);
	CHECK_INT(r->late_after_s, 900); /* late and out-of-order readings */
	CHECK_INT(r->late_settle_s, 10);
	CHECK_INT(r->replay_max_s, 48 * 3600);
	x = rules_find(r, "salinity-high");
	CHECK_INT(x->kind, RULE_THRESHOLD);
	CHECK_INT(x->n_levels, 1);
	CHECK_NEAR(x->levels[0].threshold, 4.0, 0);
	CHECK_NEAR(x->levels[0].hysteresis, 0.3, 0);
	CHECK_INT(x->levels[0].op, RULE_ABOVE);
	CHECK_INT(x->levels[0].severity, ALERT_SEV_CRITICAL);
	CHECK_STR(x->levels[0].metric, "salinity");
	CHECK_INT(x->n_notify, 2);
	CHECK_STR(x->notify[1], "mail");
	x = rules_find(r, "do-low");
	CHECK_INT(x->levels[0].op, RULE_BELOW);
	CHECK_INT(x->for_s, 900);
	x = rules_find(r, "station-offline");
	CHECK_INT(x->kind, RULE_NO_DATA);
	CHECK(!x->per_sensor);
	CHECK_INT(x->after_s, 900);
	x = rules_find(r, "sal");
	CHECK_INT(x->kind, RULE_LADDER);
	CHECK_INT(x->n_levels, 2);
	CHECK_NEAR(x->levels[0].hysteresis, 0.1, 0);
	CHECK_NEAR(x->levels[1].hysteresis, 0.3, 0);
	CHECK_STR(x->levels[0].label.vi, "sầu riêng");
	CHECK_STR(x->levels[1].label.en, "all");
	CHECK_STR(x->levels[1].label.vi, "all");
	CHECK_INT(x->levels[1].severity, ALERT_SEV_CRITICAL);
	x = rules_find(r, "w");
	CHECK_INT(x->agg, RULE_AGG_MAX);
	CHECK_INT(x->window_s, 86400);
	CHECK_INT(x->max_points, 4096);
	x = rules_find(r, "p");
	CHECK_NEAR(x->k, 4, 0);
	CHECK_INT(x->nights, 6);
	CHECK_INT(x->min_nights, 6);
	CHECK_NEAR(x->floor, 50, 0);
	CHECK_INT(x->night_start_h, 6); /* nights are cut at the morning's lamp-off */
	CHECK_INT(x->severity, ALERT_SEV_WARNING);
	x = rules_find(r, "r");
	CHECK_INT(x->window_s, 3600);
	x = rules_find(r, "s");
	CHECK(x->per_sensor);
	x = rules_find(r, "q");
	CHECK_INT(x->n_bad, 3);
	CHECK(x->bad_error && !x->bad_suspect);
	x = rules_find(r, "b");
	CHECK_INT(x->n_levels, 2);
	CHECK_STR(x->levels[1].metric, "battery_soc");
	CHECK_NEAR(x->levels[1].threshold, 20, 0);
	CHECK_INT(x->levels[1].severity, ALERT_SEV_WARNING);
	CHECK(x->has_escalate);
	CHECK_INT(x->escalate_after_s, 600);
	CHECK_STR(x->escalate[0], "sms");
	CHECK_STR(x->message.vi, "Thấp {metric}");
	CHECK_INT(x->n_active, 1);
	CHECK_INT(x->active[0].from_md, 1115);
	CHECK(rules_find(r, "nope") == NULL);
	rules_free(r);
}

static const struct {
	const char *json, *err;
} bad[] = {
	{"[]", "expected an object"},
	{"{}", "rules: is required"},
	{"{'rules':{}}", "rules: expected an array of rules"},
	{"{'rules':[],'x':1}", "x: unknown key"},
	{"{'rules':[],'lang':'fr'}", "lang: expected \"en\" or \"vi\""},
	{"{'rules':[],'utc_offset_min':900}", "utc_offset_min: must be between"},
	{"{'rules':[],'late_after_s':10}", "late_after_s: must be between"},
	{"{'rules':[],'late_settle_s':0}", "late_settle_s: must be between"},
	{"{'rules':[],'replay_max_s':99999999}", "replay_max_s: must be between"},
	{"{'rules':[1]}", "rules[0]: expected an object"},
	{"{'rules':[{'metric':'salinity','above':1}]}", "rules[0].id: is required"},
	{"{'rules':[{'id':'a b','metric':'salinity','above':1}]}", "rules[0].id: expected a rule id"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1},{'id':'b','metric':'salinity','above':'x'}]}",
	 "rules[1].above: expected a number"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1},{'id':'b','metric':'ph','below':6},"
	 "{'id':'a','metric':'ph','below':5}]}", "rules[2].id: duplicate id \"a\" (also rules[0])"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'colour':'red'}]}", "rules[0].colour: unknown key"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'above':2}]}", "rules[0].above: duplicate key"},
	{"{'rules':[{'id':'a','kind':'bogus'}]}", "rules[0].kind: expected one of"},
	{"{'rules':[{'id':'a','above':1}]}", "rules[0].metric: is required for kind \"threshold\""},
	{"{'rules':[{'id':'a','metric':'sal inity','above':1}]}", "rules[0].metric: expected a metric name"},
	{"{'rules':[{'id':'a','metric':'salinity'}]}", "rules[0]: needs exactly one of \"above\", \"below\" and \"levels\""},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'below':0}]}", "rules[0]: needs exactly one of"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'severity':'huge'}]}",
	 "rules[0].severity: expected info, warning, alarm or critical"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'notify':['pager']}]}",
	 "rules[0].notify[0]: no channel named \"pager\" in gateway.json"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'notify':['ops','ops']}]}",
	 "rules[0].notify[1]: duplicate channel name \"ops\""},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'notify':'ops'}]}",
	 "rules[0].notify: expected an array of channel names"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'escalate':{'after_s':60,'notify':['x']}}]}",
	 "rules[0].escalate.notify[0]: no channel named \"x\""},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'escalate':{'notify':[]}}]}",
	 "rules[0].escalate.after_s: is required"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'hysteresis':-1}]}", "rules[0].hysteresis: must be between"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'for_s':1.5}]}", "rules[0].for_s: expected an integer"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'after_s':5}]}",
	 "rules[0].after_s: not used by kind \"threshold\""},
	{"{'rules':[{'id':'a','kind':'no_data','after_s':5,'above':1}]}", "rules[0].above: not used by kind \"no_data\""},
	{"{'rules':[{'id':'a','kind':'no_data'}]}", "rules[0].after_s: is required for kind \"no_data\""},
	{"{'rules':[{'id':'a','kind':'no_data','after_s':5,'per':'trap'}]}", "rules[0].per: expected \"station\" or \"sensor\""},
	{"{'rules':[{'id':'a','kind':'no_data','after_s':5,'metric':'ph'}]}", "rules[0].metric: needs \"per\": \"sensor\""},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity'}]}", "rules[0].levels: is required for kind \"ladder\""},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[]}]}",
	 "rules[0].levels: expected a non-empty array of conditions"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[{'above':1}]}]}",
	 "rules[0].levels[0].severity: is required"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[{'above':1,'severity':'info','metric':'ph'}]}]}",
	 "rules[0].levels[0].metric: not allowed in a level"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[{'above':2,'severity':'info'},{'above':1,'severity':'warning'}]}]}",
	 "rules[0].levels[1]: thresholds must be strictly increasing"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[{'above':1,'severity':'info'},{'below':2,'severity':'warning'}]}]}",
	 "rules[0].levels[1]: every level must use the same"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','levels':[{'above':1,'severity':'alarm'},{'above':2,'severity':'info'}]}]}",
	 "rules[0].levels[1]: severity must not fall"},
	{"{'rules':[{'id':'a','kind':'ladder','metric':'salinity','severity':'info','levels':[{'above':1,'severity':'alarm'}]}]}",
	 "rules[0].severity: not used by kind \"ladder\""},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'levels':[{'above':1,'severity':'alarm'}]}]}",
	 "rules[0]: \"levels\" excludes"},
	{"{'rules':[{'id':'a','metric':'salinity','levels':[{'above':1,'severity':'alarm','label':{'fr':'x'}}]}]}",
	 "rules[0].levels[0].label.fr: unknown key"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'or':[{'below':2}]}]}", "rules[0].or[0].metric: is required"},
	{"{'rules':[{'id':'a','metric':'salinity','above':1,'or':[{'metric':'ph','below':2,'severity':'info'}]}]}",
	 "rules[0].or[0].severity: not allowed in \"or\""},
	{"{'rules':[{'id':'a','kind':'window','metric':'x','above':1}]}", "rules[0].window_s: is required for kind \"window\""},
	{"{'rules':[{'id':'a','kind':'window','metric':'x','above':1,'window_s':60,'agg':'median'}]}",
	 "rules[0].agg: expected sum, mean, max, min or count"},
	{"{'rules':[{'id':'a','kind':'window','metric':'x','above':1,'window_s':60,'max_points':1}]}",
	 "rules[0].max_points: must be between"},
	{"{'rules':[{'id':'a','kind':'peak','metric':'x','k':0.5}]}", "rules[0].k: must be between"},
	{"{'rules':[{'id':'a','kind':'peak','metric':'x','nights':40}]}", "rules[0].nights: must be between"},
	{"{'rules':[{'id':'a','kind':'peak','metric':'x','nights':3,'min_nights':5}]}", "rules[0].min_nights: must be <= nights (3)"},
	{"{'rules':[{'id':'a','kind':'peak','metric':'x','above':3}]}", "rules[0].above: not used by kind \"peak\""},
	{"{'rules':[{'id':'a','kind':'quality','n':0}]}", "rules[0].n: must be between"},
	{"{'rules':[{'id':'a','kind':'quality','q':['maint']}]}", "rules[0].q[0]: expected \"error\" or \"suspect\""},
	{"{'rules':[{'id':'a','metric':'x','above':1,'active':[{'from':'02-30','to':'03-01'}]}]}",
	 "rules[0].active[0].from: expected a month-day \"MM-DD\""},
	{"{'rules':[{'id':'a','metric':'x','above':1,'active':[{'from':'2-1','to':'03-01'}]}]}",
	 "rules[0].active[0].from: expected a month-day"},
	{"{'rules':[{'id':'a','metric':'x','above':1,'active':[{'from':'02-01'}]}]}", "rules[0].active[0].to: is required"},
	{"{'rules':[{'id':'a','metric':'x','above':1,'stations':['']}]}", "rules[0].stations[0]: expected a pattern"},
	{"{'rules':[{'id':'a','metric':'x','above':1,'message':5}]}", "rules[0].message: expected a string or"},
	{"{'rules':[{'id':'a','metric':'x','above':NaN}]}", "invalid JSON"},
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct agri_err err = {.path = ""};
		char msg[300];
		struct rules *r = parse(bad[i].json, &err);

		agri_err_format(&err, msg, sizeof(msg));
		CHECK(r == NULL);
		if (!strstr(msg, bad[i].err) && !(strstr(bad[i].err, "invalid JSON") && r == NULL)) {
			test_failed++;
			fprintf(stderr, "bad[%zu]: got \"%s\", want \"%s\"\n", i, msg, bad[i].err);
		} else {
			test_passed++;
		}
		rules_free(r);
	}
}

static void test_scope_and_seasons(void)
{
	struct agri_err err;
	struct rules *r = parse(
		"{'utc_offset_min':420,'rules':["
		"{'id':'a','metric':'x','above':1,'stations':['DT-*','AG-W01'],'sensors':['*-bph'],"
		" 'active':[{'from':'11-15','to':'02-28'},{'from':'06-01','to':'06-01'}]}]}", &err);
	const struct rule *a;
	const int64_t day = 86400000;
	/* 2026-01-01T00:00:00Z = 20454 days */
	const int64_t jan1 = 20454 * day;

	CHECK(r != NULL);
	if (!r)
		return;
	a = &r->v[0];
	CHECK(rule_matches(a, "DT-W01", "trap1-bph"));
	CHECK(rule_matches(a, "AG-W01", "t-bph"));
	CHECK(!rule_matches(a, "AG-W02", "t-bph"));
	CHECK(!rule_matches(a, "DT-W01", "trap1-wbph"));
	CHECK(!rule_matches(a, "DT-W01", "sonde1"));
	CHECK(rule_matches(a, "DT-W01", "")); /* station-level check */
	CHECK(rule_active_at(a, jan1, 420));
	CHECK(rule_active_at(a, jan1 + 58 * day, 420));      /* 02-28 */
	CHECK(!rule_active_at(a, jan1 + 59 * day, 420));     /* 03-01 */
	/* 2026-02-28T17:00Z is 03-01 00:00 local (UTC+7): inactive. */
	CHECK(!rule_active_at(a, jan1 + 58 * day + 17 * 3600000, 420));
	CHECK(rule_active_at(a, jan1 + 58 * day + 16 * 3600000, 420));
	CHECK(rule_active_at(a, jan1 + 151 * day, 420));     /* 06-01 */
	CHECK(!rule_active_at(a, jan1 + 152 * day, 420));
	CHECK(rule_active_at(a, jan1 + 318 * day, 420));     /* 11-15 */
	CHECK(!rule_active_at(a, jan1 + 317 * day, 420));
	rules_free(r);
}

static void test_default_file(void)
{
	struct agri_err err = {.path = ""};
	struct rules *r = rules_load(AGRI_SOURCE_DIR "/gateway/rules.default.json", NULL, 0, &err);
	static const char *const names[] = {"salinity", "do-low", "bph-peak",
					    "station-offline", "battery-low"};

	CHECK(r != NULL);
	if (!r) {
		fprintf(stderr, "rules.default.json: %s: %s\n", err.path, err.msg);
		return;
	}
	for (size_t i = 0; i < 5; i++)
		CHECK(rules_find(r, names[i]) != NULL);
	CHECK_INT(rules_find(r, "salinity")->kind, RULE_LADDER);
	CHECK_INT(rules_find(r, "salinity")->n_levels, 4);
	CHECK_INT(rules_find(r, "salinity")->levels[3].severity, ALERT_SEV_CRITICAL);
	CHECK_NEAR(rules_find(r, "salinity")->levels[3].threshold, 4.0, 0);
	CHECK_INT(rules_find(r, "bph-peak")->kind, RULE_PEAK);
	CHECK_INT(rules_find(r, "battery-low")->n_levels, 2);
	rules_free(r);
	CHECK_INT(rules_validate_file(AGRI_SOURCE_DIR "/gateway/rules.default.json", &err), 0);
	/* Standalone validation does not know gateway.json's channels. */
	CHECK_INT(rules_validate_file(AGRI_SOURCE_DIR
				      "/tests/fuzz/corpus/gateway_rules/thresholds.json", &err), 0);
	r = rules_load(AGRI_SOURCE_DIR "/tests/fuzz/corpus/gateway_rules/thresholds.json",
		       NULL, 0, &err);
	CHECK(r == NULL);
	CHECK_STR(err.path, "rules[0].notify[0]");
	CHECK_INT(rules_validate_file(AGRI_SOURCE_DIR
				      "/tests/fuzz/corpus/gateway_rules/bad-type.json", &err), -EINVAL);
	CHECK_STR(err.path, "rules[0].above");
	CHECK_STR(err.msg, "expected a number");
	r = rules_load("/nonexistent/rules.json", NULL, 0, &err);
	CHECK(r == NULL);
	CHECK(strstr(err.msg, "cannot read") != NULL);
}

int main(void)
{
	test_kinds();
	test_bad();
	test_scope_and_seasons();
	test_default_file();
	return test_main("test_gateway_rules");
}
