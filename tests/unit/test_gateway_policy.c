/*
 * The notification policy (gateway/src/notify/policy.h) and the recipients
 * file (recipients.h), on a real store's schema: the file's checks; tide-
 * aware damping of a salinity ladder (the first crossing of a person's
 * level in a tidal day and each new daily maximum at once, re-crossings
 * into the bulletin, the all-clear after a whole tidal day below);
 * grouping within group_wait ("3 kênh ≥ 4 g/L"); quiet hours (held, except
 * critical); flapping rules (one message each way); announced intake
 * windows (moves under an hour say nothing, a cancellation one message);
 * late news kept for the bulletin; rollbacks that leave nothing and a
 * retry that decides the same; the journal replayed into a fresh policy
 * giving the same messages and ids; bounded items; the bulletin's SMS
 * form within two UCS-2 segments.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/time.h"
#include "core/store.h"
#include "notify/notify.h"
#include "gateway/policy.h"
#include "gateway/recipients.h"
#include "test.h"

#define MIN_MS 60000LL
#define HOUR_MS (60 * MIN_MS)
#define TD_MS (24 * HOUR_MS + 50 * MIN_MS)
#define GW_MS (2 * MIN_MS)

static int64_t T(const char *s)
{
	int64_t ms = 0;

	if (agri_time_parse(s, &ms))
		abort();
	return ms;
}

/* --- messages seen ---------------------------------------------------------- */

struct seen {
	char id[160], person[40], kind[16], sms[600];
	char *vi, *payload;
	int64_t at;
	int items;
};

static struct seen msgs[512];
static int n_msgs;

static int on_msg(void *ctx, sqlite3 *db, const struct policy_message *m)
{
	struct seen *s = &msgs[n_msgs < 511 ? n_msgs++ : 511];

	(void)ctx;
	(void)db;
	snprintf(s->id, sizeof(s->id), "%s", m->id);
	snprintf(s->person, sizeof(s->person), "%s", m->person->name);
	snprintf(s->kind, sizeof(s->kind), "%s", m->kind);
	snprintf(s->sms, sizeof(s->sms), "%s", m->sms);
	free(s->vi);
	free(s->payload);
	s->vi = strdup(m->text_vi);
	s->payload = strdup(m->payload);
	s->at = m->at_ms;
	s->items = m->items;
	if (getenv("POLICY_DUMP")) /* to read the texts */
		printf("--- %s\n%s\n[%s]\n%s\nSMS: %s\n", m->id, m->text_vi, m->text_en, m->payload,
		       m->sms);
	return 0;
}

static void reset_msgs(void)
{
	for (int i = 0; i < n_msgs; i++) {
		free(msgs[i].vi);
		free(msgs[i].payload);
		msgs[i].vi = msgs[i].payload = NULL;
	}
	n_msgs = 0;
}

static int count(const char *person, const char *kind)
{
	int n = 0;

	for (int i = 0; i < n_msgs; i++)
		n += !strcmp(msgs[i].person, person) && (!kind || !strcmp(msgs[i].kind, kind));
	return n;
}

static const struct seen *last(const char *person, const char *kind)
{
	for (int i = n_msgs - 1; i >= 0; i--)
		if (!strcmp(msgs[i].person, person) && (!kind || !strcmp(msgs[i].kind, kind)))
			return &msgs[i];
	return NULL;
}

/* --- a world: a store, sites and people ----------------------------------------- */

static const char people_json[] =
	"{\"group_wait_s\": 120, \"bulletin_at\": \"05:30\", \"recipients\": ["
	" {\"name\": \"lan\", \"display\": \"Nguyễn Thị Lan\", \"webhook\": \"agronomists\","
	"  \"stations\": [\"DT-W03\", \"DT-W04\"], \"crops\": [\"durian\"],"
	"  \"quiet\": {\"from\": \"21:00\", \"to\": \"05:00\"}},"
	" {\"name\": \"minh\", \"lang\": \"en\", \"districts\": [\"Chợ Gạo\"], \"salinity_g_l\": [2, 4],"
	"  \"pests\": [\"bph\"], \"min_severity\": \"warning\", \"at_once\": [\"warning\", \"alarm\", \"critical\"]},"
	" {\"name\": \"office\", \"salinity_g_l\": 4, \"min_severity\": \"critical\", \"at_once\": [\"critical\"]}"
	"]}";

static const struct policy_site sites[] = {
	{"DT-W01", "Cửa Tiểu (Tân Thành)", "Tân Phú Đông"},
	{"DT-W02", "Vàm Kênh", "Gò Công Đông"},
	{"DT-W03", "Hòa Bình (Chợ Gạo)", "Chợ Gạo"},
	{"DT-W04", "Mỹ Tho", "Mỹ Tho"},
	{"DT-T14", "Bẫy đèn Chợ Gạo", "Chợ Gạo"},
};

static char dir[256];
static struct store *st;
static struct policy *pol;
static struct recipients rcp;

static sqlite3 *db(void)
{
	return store_db(st);
}

static void world(bool journal)
{
	struct store_options o = {0};
	struct agri_err e;
	char path[300];
	int err = 0;

	snprintf(dir, sizeof(dir), "/tmp/test_policy.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/agri.db", dir);
	st = store_open(path, &o, &err);
	CHECK(st != NULL);
	CHECK_INT(recipients_parse(people_json, strlen(people_json), &rcp, &e), 0);
	CHECK_INT(policy_init(db()), 0);
	pol = policy_new(&(struct policy_options){.people = &rcp, .sites = sites,
						  .n_sites = AGRI_ARRAY_SIZE(sites),
						  .journal = journal, .on_message = on_msg});
	CHECK(pol != NULL);
	reset_msgs();
}

static void world_end(void)
{
	char cmd[300];

	policy_free(pol);
	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		abort();
}

static const char *ladder_levels =
	"[{\"t\":0.5,\"s\":\"info\",\"vi\":\"không tưới sầu riêng\",\"en\":\"do not irrigate durian\"},"
	"{\"t\":1,\"s\":\"warning\",\"vi\":\"không tưới cây ăn trái, rau màu\",\"en\":\"do not irrigate fruit trees\"},"
	"{\"t\":2,\"s\":\"alarm\",\"vi\":\"gây hại lúa mạ\",\"en\":\"harmful to rice seedlings\"},"
	"{\"t\":4,\"s\":\"critical\",\"vi\":\"đóng cống\",\"en\":\"close intakes\"}]";

static const char *place_of(const char *station, const char **district)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(sites); i++)
		if (!strcmp(sites[i].station, station)) {
			*district = sites[i].district;
			return sites[i].name;
		}
	*district = "";
	return station;
}

/* The salinity ladder of station now at value v: on level thr (<= 0: cleared). */
static int sal(const char *station, const char *event, double v, double thr, int64_t at)
{
	static const char *sev[] = {"info", "warning", "alarm", "critical"};
	const char *district, *place = place_of(station, &district);
	char doc[4096];
	int k = thr >= 4 ? 3 : thr >= 2 ? 2 : thr >= 1 ? 1 : 0;

	snprintf(doc, sizeof(doc),
		 "{\"in\":\"alert\",\"id\":\"salinity/%s/sonde1\",\"rule\":\"salinity\",\"kind\":\"ladder\","
		 "\"station\":\"%s\",\"district\":\"%s\",\"place\":\"%s\",\"sensor\":\"sonde1\","
		 "\"metric\":\"salinity\",\"event\":\"%s\",\"severity\":\"%s\",\"state\":\"%s\","
		 "\"value\":%g,\"threshold\":%g,\"late\":false,\"vi\":\"Độ mặn %g\",\"en\":\"Salinity %g\","
		 "\"levels\":%s}", station, station, district, place, event, sev[k],
		 thr > 0 ? "active" : "cleared", v, thr > 0 ? thr : 0.5, v, v, ladder_levels);
	return policy_input(pol, db(), doc, at);
}

/* Another rule's alert (battery-low, threshold, warning). */
static int battery(const char *station, bool on, int64_t at)
{
	const char *district, *place = place_of(station, &district);
	char doc[2048];

	snprintf(doc, sizeof(doc),
		 "{\"in\":\"alert\",\"id\":\"battery-low/%s/solar\",\"rule\":\"battery-low\",\"kind\":\"threshold\","
		 "\"station\":\"%s\",\"district\":\"%s\",\"place\":\"%s\",\"sensor\":\"solar\","
		 "\"metric\":\"battery_voltage\",\"event\":\"%s\",\"severity\":\"warning\",\"state\":\"%s\","
		 "\"value\":11.5,\"threshold\":11.8,\"late\":false,\"vi\":\"Pin yếu\",\"en\":\"Battery low\"}",
		 station, station, district, place, on ? "raised" : "cleared", on ? "active" : "cleared");
	return policy_input(pol, db(), doc, at);
}

static int windows(const char *station, int64_t made, const int64_t (*w)[2], int n, double below)
{
	const char *district, *place = place_of(station, &district);
	char doc[4096];
	size_t len;

	len = (size_t)snprintf(doc, sizeof(doc), "{\"in\":\"windows\",\"station\":\"%s\",\"district\":"
			       "\"%s\",\"place\":\"%s\",\"made_at\":%lld,\"windows\":[", station,
			       district, place, (long long)made);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(doc + len, sizeof(doc) - len, "%s{\"below\":%g,\"from\":%lld,"
					"\"to\":%lld}", i ? "," : "", below, (long long)w[i][0],
					(long long)w[i][1]);
	snprintf(doc + len, sizeof(doc) - len, "]}");
	return policy_input(pol, db(), doc, made);
}

static void put_reading(const char *station, const char *sensor, const char *metric, int64_t ts,
			double v)
{
	struct agri_reading r = {0};

	snprintf(r.sensor, sizeof(r.sensor), "%s", sensor);
	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	r.ts_ms = ts;
	r.value = v;
	r.has_value = true;
	r.q = AGRI_Q_OK;
	CHECK(store_put_reading(st, station, &r, ts) >= 0);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_recipients_file(void)
{
	static const struct {
		const char *json, *path;
	} bad[] = {
		{"{\"recipients\": [{\"name\": \"a b\"}]}", "recipients[0].name"},
		{"{\"recipients\": [{\"name\": \"a\", \"sms\": \"09x\"}]}", "recipients[0].sms"},
		{"{\"recipients\": [{\"name\": \"a\", \"email\": \"nobody\"}]}", "recipients[0].email"},
		{"{\"recipients\": [{\"name\": \"a\", \"crops\": [\"coffee\"]}]}", "recipients[0].crops[0]"},
		{"{\"recipients\": [{\"name\": \"a\", \"salinity_g_l\": 50}]}", "recipients[0].salinity_g_l"},
		{"{\"recipients\": [{\"name\": \"a\", \"quiet\": {\"from\": \"25:00\", \"to\": \"05:00\"}}]}",
		 "recipients[0].quiet.from"},
		{"{\"recipients\": [{\"name\": \"a\", \"quiet\": {\"from\": \"04:00\", \"to\": \"06:00\"}}]}",
		 "recipients[0].bulletin"},
		{"{\"recipients\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", "recipients[1].name"},
		{"{\"recipients\": [{\"name\": \"a\", \"colour\": \"red\"}]}", "recipients[0].colour"},
		{"{\"recipients\": [{\"name\": \"a\", \"at_once\": [\"loud\"]}]}", "recipients[0].at_once[0]"},
		{"{\"group_wait_s\": -1, \"recipients\": []}", "group_wait_s"},
		{"{}", "recipients"},
	};
	static struct recipients r;
	struct agri_err e;
	const struct recipient *p;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad); i++) {
		memset(&e, 0, sizeof(e));
		CHECK_INT(recipients_parse(bad[i].json, strlen(bad[i].json), &r, &e), -EINVAL);
		CHECK_STR(e.path, bad[i].path);
	}
	CHECK_INT(recipients_parse(people_json, strlen(people_json), &r, &e), 0);
	CHECK_INT(r.n, 3);
	CHECK_INT(r.group_wait_ms, 120000);
	CHECK_INT(r.tidal_day_ms, TD_MS);
	p = recipients_find(&r, "lan");
	CHECK(p && p->n_levels == 2 && p->levels[0] == 0.5 && p->levels[1] == 4); /* durian + critical */
	CHECK(p && p->has_quiet && p->quiet_from_min == 21 * 60 && p->quiet_to_min == 5 * 60);
	CHECK(p && recipient_quiet_at(p, 23 * 60) && recipient_quiet_at(p, 60) &&
	      !recipient_quiet_at(p, 5 * 60) && !recipient_quiet_at(p, 20 * 60 + 59));
	CHECK(p && recipient_follows_station(p, "DT-W03", "Chợ Gạo") &&
	      !recipient_follows_station(p, "DT-W01", "Tân Phú Đông"));
	p = recipients_find(&r, "minh");
	CHECK(p && p->lang_en && p->n_levels == 2 && recipient_follows_station(p, "DT-T14", "Chợ Gạo"));
	CHECK(p && recipient_follows_pest(p, "bph") && !recipient_follows_pest(p, "gall"));
	p = recipients_find(&r, "office");
	CHECK(p && p->n_levels == 1 && p->min_severity == ALERT_SEV_CRITICAL &&
	      p->bulletin && p->bulletin_min == 330);
}

/* A durian adviser (0.5 and 4 g/L) on DT-W04 through two tidal days. */
static void test_ladder_damping(void)
{
	int64_t t0 = T("2026-04-02T01:00:00Z"); /* 08:00 local */
	const struct seen *m;

	world(true);
	CHECK_INT(sal("DT-W04", "raised", 0.62, 0.5, t0), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + GW_MS - 1), 0);
	CHECK_INT(count("lan", "alert"), 0); /* not before group_wait */
	CHECK_INT(policy_advance(pol, db(), t0 + GW_MS), 1);
	CHECK_INT(count("lan", "alert"), 1);
	m = last("lan", "alert");
	CHECK(m && m->at == t0 + GW_MS && strstr(m->vi, "Mỹ Tho") && strstr(m->vi, "0,62") &&
	      strstr(m->vi, "không tưới sầu riêng"));
	CHECK(m && notify_sms_segments(m->sms) <= 2);
	CHECK_STR(m ? m->id : "", "lan/alert/2026-04-02T01:02:00.000Z");
	/* the office (4 g/L only) and minh (not following DT-W04) hear nothing */
	CHECK_INT(count("office", NULL) + count("minh", NULL), 0);
	/* falls back and crosses again within the tidal day: the bulletin's */
	CHECK_INT(sal("DT-W04", "cleared", 0.3, 0, t0 + 3 * HOUR_MS), 0);
	CHECK_INT(sal("DT-W04", "raised", 0.7, 0.5, t0 + 9 * HOUR_MS), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + 10 * HOUR_MS), 0);
	CHECK_INT(count("lan", "alert"), 1);
	/* a new daily maximum level of hers (4 g/L, critical): at once */
	CHECK_INT(sal("DT-W04", "severity", 4.2, 4, t0 + 10 * HOUR_MS), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + 10 * HOUR_MS + GW_MS), 2); /* lan, office */
	CHECK_INT(count("lan", "alert"), 2);
	CHECK(strstr(last("lan", "alert")->vi, "4,2") != NULL);
	CHECK_INT(count("office", "alert"), 1); /* the office's first crossing of 4 */
	/* the ladder levels in between (1, 2) are not hers: nothing */
	CHECK_INT(sal("DT-W04", "severity", 1.5, 1, t0 + 11 * HOUR_MS), 0);
	CHECK_INT(sal("DT-W04", "severity", 4.1, 4, t0 + 12 * HOUR_MS), 0); /* again 4: damped */
	CHECK_INT(policy_advance(pol, db(), t0 + 13 * HOUR_MS), 0);
	CHECK_INT(count("lan", "alert"), 2);
	CHECK_INT(count("office", "alert"), 1);
	/* the next tidal day: its first crossing is told */
	CHECK_INT(sal("DT-W04", "cleared", 0.2, 0, t0 + 20 * HOUR_MS), 0);
	CHECK_INT(sal("DT-W04", "raised", 0.6, 0.5, t0 + TD_MS + 5 * MIN_MS), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + TD_MS + 5 * MIN_MS + GW_MS), 1);
	CHECK_INT(count("lan", "alert"), 3);
	/* below her level for a whole tidal day: one all-clear */
	CHECK_INT(sal("DT-W04", "cleared", 0.2, 0, t0 + TD_MS + 2 * HOUR_MS), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + 2 * TD_MS + 2 * HOUR_MS - 1), 1); /* a bulletin */
	CHECK_INT(count("lan", "alert"), 3);
	CHECK_INT(policy_advance(pol, db(), t0 + 2 * TD_MS + 2 * HOUR_MS + GW_MS), 1);
	CHECK_INT(count("lan", "alert"), 4);
	CHECK(strstr(last("lan", "alert")->vi, "Hết mặn") != NULL);
	CHECK(policy_advance(pol, db(), t0 + 4 * TD_MS) >= 0); /* nothing to say: no bulletins */
	CHECK_INT(count("lan", "alert"), 4);
	world_end();
}

/* Three canals reaching 4 g/L within group_wait: one message. */
static void test_grouping(void)
{
	int64_t t0 = T("2026-04-02T06:00:00Z"); /* 13:00 local */
	const struct seen *m;

	world(false);
	CHECK_INT(sal("DT-W01", "raised", 5.1, 4, t0), 0);
	CHECK_INT(sal("DT-W02", "raised", 4.3, 4, t0 + 40000), 0);
	CHECK_INT(sal("DT-W03", "raised", 4.05, 4, t0 + 90000), 0);
	CHECK_INT(sal("DT-W04", "raised", 4.6, 4, t0 + GW_MS + 10000), 0); /* the next group */
	CHECK_INT(policy_advance(pol, db(), t0 + 10 * MIN_MS), 3); /* office twice, lan once */
	CHECK_INT(count("office", "alert"), 2);
	CHECK_INT(count("lan", "alert"), 1); /* W03 and W04: hers, within her group_wait */
	CHECK_INT(last("lan", "alert")->items, 2);
	m = &msgs[0];
	CHECK(!strcmp(m->person, "office") && m->at == t0 + GW_MS && m->items == 3);
	CHECK(strstr(m->vi, "3 kênh ≥ 4 g/L: Cửa Tiểu 5,1 lúc 13:00; Vàm Kênh 4,3 lúc 13:00; Hòa Bình 4,05"));
	CHECK(strncmp(m->sms, "[KHẨN] 3 kênh ≥4 g/L: Cửa Tiểu 5,1; Vàm Kênh 4,3; Hòa Bình 4,05", 70) == 0);
	CHECK(notify_sms_segments(m->sms) <= 2);
	m = last("office", "alert");
	CHECK(m->at == t0 + GW_MS + 10000 + GW_MS && m->items == 1);
	world_end();
}

/* Quiet hours hold what is not critical; a critical crossing goes at once. */
static void test_quiet_hours(void)
{
	int64_t t0 = T("2026-04-02T16:00:00Z"); /* 23:00 local */
	const struct seen *m;

	world(false);
	CHECK_INT(sal("DT-W04", "raised", 0.7, 0.5, t0), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + HOUR_MS), 0);
	CHECK_INT(count("lan", NULL), 0);
	CHECK_INT(sal("DT-W03", "raised", 4.4, 4, t0 + 2 * HOUR_MS), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + 2 * HOUR_MS + GW_MS), 3); /* lan, minh, office */
	m = last("lan", "alert");
	CHECK(m && m->at == t0 + 2 * HOUR_MS + GW_MS && m->items == 1 && strstr(m->vi, "Hòa Bình"));
	/* the held crossing joins the 05:30 bulletin (quiet ends at 05:00) */
	CHECK_INT(policy_advance(pol, db(), T("2026-04-02T22:29:00Z")), 0);
	CHECK_INT(policy_advance(pol, db(), T("2026-04-02T22:30:00Z")), 1); /* lan's: the others have nothing */
	m = last("lan", "bulletin");
	CHECK(m && m->at == T("2026-04-02T22:30:00Z") && strstr(m->vi, "Mỹ Tho") &&
	      strstr(m->vi, "0,7"));
	CHECK_INT(count("lan", "alert"), 1);
	/* a crossing at 20:59 goes just before the quiet hours */
	CHECK_INT(sal("DT-W04", "cleared", 0.2, 0, T("2026-04-03T06:00:00Z")), 0);
	CHECK_INT(sal("DT-W04", "raised", 4.2, 4, T("2026-04-03T13:59:00Z")), 0);
	CHECK_INT(policy_advance(pol, db(), T("2026-04-03T15:00:00Z")), 2);
	m = last("lan", "alert");
	CHECK(m && m->at == T("2026-04-03T14:01:00Z")); /* critical: not held */
	world_end();
}

/* A battery that flaps: one message saying so, one when it settles. */
static void test_flapping(void)
{
	int64_t t0 = T("2026-04-02T03:00:00Z");

	world(false);
	for (int i = 0; i < 6; i++)
		CHECK_INT(battery("DT-W03", i % 2 == 0, t0 + i * 20 * MIN_MS), 0);
	CHECK(policy_advance(pol, db(), t0 + 3 * HOUR_MS) >= 0);
	/* minh (warning at once): raised, cleared, raised, then flapping (the
	 * 4th change in 6 h) */
	CHECK_INT(count("minh", "alert"), 4);
	CHECK(strstr(last("minh", "alert")->vi, "chập chờn") != NULL);
	CHECK(strstr(last("minh", "alert")->payload, "\"flapping\"") != NULL);
	/* quiet until stable (2 h after the last change): then one message */
	CHECK_INT(policy_advance(pol, db(), t0 + 100 * MIN_MS + 2 * HOUR_MS + GW_MS), 1);
	CHECK_INT(count("minh", "alert"), 5);
	CHECK(strstr(last("minh", "alert")->vi, "ổn định") && strstr(last("minh", "alert")->vi, "đã hết"));
	/* lan takes warnings in her bulletin only; the office criticals only */
	CHECK_INT(count("lan", NULL) + count("office", NULL), 0);
	world_end();
}

/* Announced windows: moves under an hour say nothing; a cancellation one message. */
static void test_windows(void)
{
	int64_t b = T("2026-04-02T22:30:00Z"); /* 05:30 local, Apr 3 */
	int64_t w0[2][2] = {{b + 2 * HOUR_MS, b + 4 * HOUR_MS}, {b + 14 * HOUR_MS, b + 16 * HOUR_MS}};
	int64_t w1[2][2] = {{b + 2 * HOUR_MS + 20 * MIN_MS, b + 4 * HOUR_MS + 10 * MIN_MS},
			    {b + 14 * HOUR_MS, b + 16 * HOUR_MS}};
	int64_t w2[2][2] = {{b + 2 * HOUR_MS + 40 * MIN_MS, b + 4 * HOUR_MS + 30 * MIN_MS},
			    {b + 14 * HOUR_MS, b + 16 * HOUR_MS}};
	int64_t w3[1][2] = {{b + 2 * HOUR_MS + 40 * MIN_MS, b + 4 * HOUR_MS + 30 * MIN_MS}};
	const struct seen *m;
	cJSON *pl, *ws, *e;
	int n = 0;

	world(false);
	put_reading("DT-W04", "sonde1", "salinity", b - HOUR_MS, 0.4);
	CHECK_INT(windows("DT-W04", b - 10 * MIN_MS, w0, 2, 0.5), 0);
	CHECK_INT(policy_advance(pol, db(), b), 2); /* lan's and the office's bulletins */
	m = last("lan", "bulletin");
	CHECK(m && strstr(m->vi, "07:30–09:30, 19:30–21:30") != NULL);
	CHECK(m && notify_sms_segments(m->sms) <= 2);
	pl = m ? cJSON_Parse(m->payload) : NULL;
	ws = cJSON_GetObjectItem(cJSON_GetObjectItem(pl, "bulletin"), "windows");
	cJSON_ArrayForEach(e, ws) {
		int64_t f = 0, t = 0;

		agri_time_parse(cJSON_GetObjectItem(e, "from")->valuestring, &f);
		agri_time_parse(cJSON_GetObjectItem(e, "to")->valuestring, &t);
		CHECK(n < 2 && f == w0[n][0] && t == w0[n][1]);
		n++;
	}
	CHECK_INT(n, 2);
	cJSON_Delete(pl);
	/* two refits moving the first window by 20 and 40 minutes: nothing */
	CHECK_INT(windows("DT-W04", b + 10 * MIN_MS, w1, 2, 0.5), 0);
	CHECK_INT(windows("DT-W04", b + 30 * MIN_MS, w2, 2, 0.5), 0);
	CHECK_INT(policy_advance(pol, db(), b + HOUR_MS), 0);
	CHECK_INT(count("lan", "alert"), 0);
	/* the evening window cancelled: one message */
	CHECK_INT(windows("DT-W04", b + 50 * MIN_MS, w3, 1, 0.5), 0);
	CHECK_INT(policy_advance(pol, db(), b + 2 * HOUR_MS), 1);
	CHECK_INT(count("lan", "alert"), 1);
	m = last("lan", "alert");
	CHECK(m && strstr(m->vi, "Hủy cửa sổ lấy nước dưới 0,5 g/L tại Mỹ Tho 19:30–21:30"));
	/* and it is not cancelled twice */
	CHECK_INT(windows("DT-W04", b + 70 * MIN_MS, w3, 1, 0.5), 0);
	CHECK_INT(policy_advance(pol, db(), b + 3 * HOUR_MS), 0);
	world_end();
}

/* Late news of an episode already over goes to the bulletin only. */
static void test_late_news(void)
{
	int64_t t0 = T("2026-04-02T03:00:00Z");
	char doc[2048];

	world(false);
	snprintf(doc, sizeof(doc),
		 "{\"in\":\"alert\",\"id\":\"salinity/DT-W03/sonde1\",\"rule\":\"salinity\",\"kind\":\"ladder\","
		 "\"station\":\"DT-W03\",\"district\":\"Chợ Gạo\",\"place\":\"Hòa Bình (Chợ Gạo)\",\"sensor\":\"sonde1\","
		 "\"metric\":\"salinity\",\"event\":\"past\",\"severity\":\"critical\",\"state\":\"cleared\","
		 "\"value\":4.5,\"threshold\":4,\"late\":true,\"vi\":\"Độ mặn đã vượt 4 g/L lúc 02:00\","
		 "\"en\":\"Salinity was above 4 g/L at 02:00\",\"levels\":%s}", ladder_levels);
	CHECK_INT(policy_input(pol, db(), doc, t0), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + HOUR_MS), 0);
	CHECK_INT(policy_advance(pol, db(), T("2026-04-02T22:30:00Z")), 3);
	CHECK(strstr(last("minh", "bulletin")->vi, "Báo muộn") != NULL);
	CHECK_INT(count("minh", "alert") + count("office", "alert") + count("lan", "alert"), 0);
	world_end();
}

/* A rolled-back transaction leaves no message; its retry decides the same;
 * the journal replayed through a fresh policy gives the same messages. */
static void test_rollback_and_replay(void)
{
	int64_t t0 = T("2026-04-02T01:00:00Z");
	struct seen live[64];
	int n_live;
	sqlite3 *mem;
	sqlite3_stmt *q;
	struct policy *fresh;

	world(true);
	CHECK_INT(sqlite3_exec(db(), "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT(sal("DT-W03", "raised", 4.4, 4, t0), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + GW_MS), 3);
	CHECK_INT(sqlite3_exec(db(), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	policy_rollback(pol);
	reset_msgs();
	CHECK_INT(policy_clock(db()), 0);
	/* the retry */
	CHECK_INT(sal("DT-W03", "raised", 4.4, 4, t0), 0);
	CHECK_INT(policy_advance(pol, db(), t0 + GW_MS), 3);
	CHECK_INT(sal("DT-W04", "raised", 0.8, 0.5, t0 + HOUR_MS), 0);
	CHECK_INT(battery("DT-W03", true, t0 + 2 * HOUR_MS), 0);
	CHECK_INT(sal("DT-W03", "cleared", 0.2, 0, t0 + 3 * HOUR_MS), 0);
	CHECK(policy_advance(pol, db(), t0 + 3 * TD_MS) >= 0);
	n_live = n_msgs;
	CHECK(n_live >= 8);
	memcpy(live, msgs, sizeof(live[0]) * (size_t)(n_live < 64 ? n_live : 64));
	for (int i = 0; i < n_live; i++)
		live[i].vi = strdup(msgs[i].vi);
	reset_msgs();
	/* the preview: the journal through a fresh policy on a fresh state,
	 * the readings still read from the store */
	CHECK_INT(sqlite3_open(":memory:", &mem), SQLITE_OK);
	{
		char att[400];

		snprintf(att, sizeof(att), "ATTACH 'file:%s/agri.db?mode=ro' AS src", dir);
		CHECK_INT(sqlite3_exec(mem, att, NULL, NULL, NULL), SQLITE_OK);
	}
	CHECK_INT(policy_init(mem), 0);
	fresh = policy_new(&(struct policy_options){.people = &rcp, .sites = sites,
						    .n_sites = AGRI_ARRAY_SIZE(sites),
						    .on_message = on_msg});
	CHECK(sqlite3_prepare_v2(db(), "SELECT at, doc FROM notify_journal ORDER BY seq", -1, &q,
				 NULL) == SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW)
		CHECK_INT(policy_input(fresh, mem, (const char *)sqlite3_column_text(q, 1),
				       sqlite3_column_int64(q, 0)), 0);
	sqlite3_finalize(q);
	CHECK(policy_advance(fresh, mem, t0 + 3 * TD_MS) >= 0);
	CHECK_INT(n_msgs, n_live);
	for (int i = 0; i < n_live && i < n_msgs; i++) {
		CHECK_STR(msgs[i].id, live[i].id);
		CHECK_STR(msgs[i].vi, live[i].vi);
		free(live[i].vi);
	}
	policy_free(fresh);
	sqlite3_close(mem);
	world_end();
}

/* A person's waiting items are bounded. */
static void test_bounds(void)
{
	int64_t t0 = T("2026-04-02T16:00:00Z"); /* quiet for lan: all held */
	int n = 0;
	sqlite3_stmt *q;

	world(false);
	for (int i = 0; i < POLICY_ITEMS_MAX + 20; i++) {
		char station[16];

		snprintf(station, sizeof(station), "DT-W%02d", 3 + i % 2);
		CHECK_INT(sal(station, i % 4 < 2 ? "raised" : "cleared", i % 4 < 2 ? 0.6 : 0.1,
			      i % 4 < 2 ? 0.5 : 0, t0 + (int64_t)i * TD_MS / 2), 0);
	}
	CHECK(sqlite3_prepare_v2(db(), "SELECT count(*) FROM notify_item WHERE person = 'lan'", -1,
				 &q, NULL) == SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		n = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	CHECK(n <= POLICY_ITEMS_MAX);
	world_end();
}

/* The province office's bulletin over many stations still fits two segments. */
static void test_bulletin_sms(void)
{
	int64_t b = T("2026-04-02T22:30:00Z");
	const char *const st_names[] = {"DT-W01", "DT-W02", "DT-W03", "DT-W04"};
	int64_t w[3][2] = {{b + HOUR_MS, b + 3 * HOUR_MS}, {b + 9 * HOUR_MS, b + 11 * HOUR_MS},
			   {b + 20 * HOUR_MS, b + 22 * HOUR_MS}};
	const struct seen *m;

	world(false);
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(st_names); i++) {
		put_reading(st_names[i], "sonde1", "salinity", b - 5 * HOUR_MS, 12.345 - (double)i * 3);
		put_reading(st_names[i], "sonde1", "salinity", b - 2 * HOUR_MS, 1.234 + (double)i);
		CHECK_INT(windows(st_names[i], b - HOUR_MS, w, 3, 4), 0);
	}
	put_reading("DT-T14", "trap1-bph", "insect_count", b - 6 * HOUR_MS, 35);
	CHECK(policy_advance(pol, db(), b) >= 3);
	for (const char *p = "lan"; p; p = !strcmp(p, "lan") ? "minh" : !strcmp(p, "minh") ? "office" : NULL) {
		m = last(p, "bulletin");
		CHECK(m != NULL);
		if (!m)
			continue;
		CHECK(notify_sms_segments(m->sms) <= 2);
		CHECK(strlen(m->sms) > 20);
	}
	m = last("office", "bulletin");
	CHECK(m && strstr(m->vi, "Cửa Tiểu (Tân Thành): 1,23–12,3 g/L"));
	CHECK(m && strstr(m->vi, "06:30–08:30, 14:30–16:30, 01:30–03:30") != NULL);
	m = last("minh", "bulletin");
	CHECK(m && strstr(m->payload, "\"lang\":\"en\"") && strstr(m->sms, "Bulletin"));
	CHECK(m && strstr(m->vi, "Bẫy đèn Chợ Gạo: 35 con"));
	world_end();
}

int main(void)
{
	test_recipients_file();
	test_ladder_damping();
	test_grouping();
	test_quiet_hours();
	test_flapping();
	test_windows();
	test_late_news();
	test_rollback_and_replay();
	test_bounds();
	test_bulletin_sms();
	reset_msgs();
	return test_main("test_gateway_policy");
}
