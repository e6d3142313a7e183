/*
 * Unit tests of the alert engine (gateway/alert.h): every rule kind and
 * transition, table-driven where a sequence says it best. Each step feeds
 * a reading / status / tick / ack at a time and lists the transitions it
 * must produce ("raised:warning" ...), so hysteresis exactly at the
 * threshold, for_s one ms before and after, ladders, peaks, silence,
 * quality, acknowledgement orders, renotify/escalation timers and
 * export/import mid-episode are each one table.
 */
#include <errno.h>
#include <stdlib.h>

#include "alerts/alert.h"
#include "alerts/text.h"
#include "test.h"

#define S 1000LL
#define MIN (60 * S)
#define H (3600 * S)
#define DAY (24 * H)
#define T0 (20454 * DAY) /* 2026-01-01T00:00:00Z */

/* ---- recorder -------------------------------------------------------------- */

#define REC_MAX 64
static struct alert_transition rec[REC_MAX];
static int n_rec;

static void record(void *ctx, const struct alert_transition *t)
{
	(void)ctx;
	if (n_rec < REC_MAX)
		rec[n_rec] = *t;
	n_rec++;
}

/* "raised:critical" "severity:alarm" ... joined by spaces. */
static const char *summary(void)
{
	static char buf[1024];
	size_t pos = 0;

	buf[0] = '\0';
	for (int i = 0; i < n_rec && i < REC_MAX; i++)
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s%s:%s", i ? " " : "",
					alert_event_name(rec[i].event), rec[i].alert.severity);
	return buf;
}

struct blobs {
	int n;
	char key[64][200];
	unsigned char *blob[64];
	size_t len[64];
};

static int save(void *ctx, const char *key, const void *blob, size_t len)
{
	struct blobs *b = ctx;

	if (b->n >= 64)
		return -ENOSPC;
	snprintf(b->key[b->n], sizeof(b->key[0]), "%s", key);
	b->blob[b->n] = malloc(len ? len : 1);
	if (len)
		memcpy(b->blob[b->n], blob, len);
	b->len[b->n++] = len;
	return 0;
}

static void blobs_free(struct blobs *b)
{
	for (int i = 0; i < b->n; i++)
		free(b->blob[i]);
	b->n = 0;
}

static struct rules *rules_of(const char *json)
{
	static const char *const chans[] = {"ops", "sms"};
	char buf[8192];
	struct agri_err err;
	struct rules *r;
	size_t i;

	for (i = 0; json[i] && i < sizeof(buf) - 1; i++)
		buf[i] = json[i] == '\'' ? '"' : json[i];
	buf[i] = '\0';
	r = rules_parse(buf, i, chans, 2, &err);
	if (!r)
		fprintf(stderr, "rules: %s: %s\n", err.path, err.msg);
	return r;
}

static int feed(struct alert_engine *e, const char *station, const char *sensor,
		const char *metric, int64_t ts, double v, enum agri_quality q,
		int64_t now)
{
	struct agri_reading r = {.ts_ms = ts, .value = v, .has_value = q != AGRI_Q_ERROR, .q = q};

	snprintf(r.sensor, sizeof(r.sensor), "%s", sensor);
	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	n_rec = 0;
	return alert_engine_reading(e, station, &r, now, record, NULL);
}

/* A step of a table: op 'r' reading (metric of the rule, sensor s1),
 * 'S' suspect, 'M' maint, 'E' error, 't' tick, 'o' offline status,
 * 'O' online status, 'a' ack. */
struct step {
	char op;
	int64_t t;      /* reading ts and now (ms after T0) */
	double v;
	const char *want; /* summary of the transitions */
};

static void run_table(const char *name, struct alert_engine *e, const char *metric,
		      const char *ack_id, const struct step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		int64_t t = T0 + s->t;
		int rc = 0;

		n_rec = 0;
		switch (s->op) {
		case 'r': rc = feed(e, "DT-W01", "s1", metric, t, s->v, AGRI_Q_OK, t); break;
		case 'S': rc = feed(e, "DT-W01", "s1", metric, t, s->v, AGRI_Q_SUSPECT, t); break;
		case 'M': rc = feed(e, "DT-W01", "s1", metric, t, s->v, AGRI_Q_MAINT, t); break;
		case 'E': rc = feed(e, "DT-W01", "s1", metric, t, 0, AGRI_Q_ERROR, t); break;
		case 't': rc = alert_engine_tick(e, t, record, NULL); break;
		case 'o': rc = alert_engine_status(e, "DT-W01", false, t, record, NULL); break;
		case 'O': rc = alert_engine_status(e, "DT-W01", true, t, record, NULL); break;
		case 'a': rc = alert_engine_ack(e, ack_id, "lan", t, record, NULL); break;
		}
		if (rc < 0 || strcmp(summary(), s->want)) {
			test_failed++;
			fprintf(stderr, "%s step %zu (%c t=%lld v=%g): got \"%s\" (rc %d), want \"%s\"\n",
				name, i, s->op, (long long)s->t, s->v, summary(), rc, s->want);
		} else {
			test_passed++;
		}
	}
}

static void table(const char *name, const char *rules_json, const char *metric,
		  const char *ack_id, const struct step *steps, size_t n)
{
	struct rules *r = rules_of(rules_json);
	struct alert_engine *e = r ? alert_engine_new(r) : NULL;

	CHECK(e != NULL);
	if (e)
		run_table(name, e, metric, ack_id, steps, n);
	alert_engine_free(e);
	rules_free(r);
}

#define TABLE(name, rules, metric, ack, steps) \
	table(name, rules, metric, ack, steps, sizeof(steps) / sizeof(steps[0]))

/* ---- threshold ------------------------------------------------------------- */

static void test_threshold_hysteresis(void)
{
	static const struct step steps[] = {
		{'r', 0, 3.99, ""},
		{'r', 1 * MIN, 4.0, "raised:critical"},   /* >= above, exactly */
		{'r', 2 * MIN, 4.5, ""},
		{'r', 3 * MIN, 3.8, ""},                   /* exactly above - hysteresis: stays */
		{'r', 4 * MIN, 3.79, "cleared:critical"},  /* beyond by hysteresis */
		{'r', 5 * MIN, 3.99, ""},
		{'r', 6 * MIN, 4.0, "raised:critical"},    /* a second crossing */
		{'r', 7 * MIN, 4.2, ""},
		{'r', 8 * MIN, 4.0, ""},
		{'r', 9 * MIN, 3.0, "cleared:critical"},
	};
	TABLE("threshold", "{'rules':[{'id':'sal','metric':'salinity','above':4.0,'hysteresis':0.2,"
			   "'severity':'critical'}]}", "salinity", "sal/DT-W01/s1", steps);
}

static void test_threshold_below(void)
{
	static const struct step steps[] = {
		{'r', 0, 2.5, ""},
		{'r', 1 * MIN, 2.0, "raised:warning"},
		{'r', 2 * MIN, 2.2, ""},
		{'r', 3 * MIN, 2.21, "cleared:warning"},
		{'r', 4 * MIN, 1.0, "raised:warning"},
	};
	TABLE("below", "{'rules':[{'id':'do-low','metric':'dissolved_oxygen','below':2.0,'hysteresis':0.2}]}",
	      "dissolved_oxygen", "", steps);
}

static void test_threshold_hysteresis_zero(void)
{
	static const struct step steps[] = {
		{'r', 0, 1.0, "raised:warning"},
		{'r', 1 * MIN, 1.0, ""},
		{'r', 2 * MIN, 0.999, "cleared:warning"},
	};
	TABLE("hyst0", "{'rules':[{'id':'x','metric':'salinity','above':1}]}", "salinity", "", steps);
}

static void test_for_s(void)
{
	static const struct step steps[] = {
		{'r', 0, 4.1, ""},                           /* condition starts */
		{'r', 900 * S - 1, 4.2, ""},                 /* one ms before for_s */
		{'r', 900 * S, 4.2, "raised:critical"},      /* exactly for_s */
		{'r', 901 * S, 3.0, "cleared:critical"},     /* clearing is immediate */
		{'r', 1000 * S, 4.5, ""},                    /* restarts */
		{'r', 1500 * S, 3.9, ""},                    /* interrupted: restarts */
		{'r', 1600 * S, 4.5, ""},
		{'r', 2500 * S - 1, 4.5, ""},
		{'r', 2500 * S, 4.5, "raised:critical"},
	};
	TABLE("for_s", "{'rules':[{'id':'sal','metric':'salinity','above':4.0,'for_s':900,"
		       "'severity':'critical'}]}", "salinity", "", steps);
}

static void test_quality_never_raises(void)
{
	static const struct step steps[] = {
		{'S', 0, 9.0, ""},
		{'M', 1 * MIN, 9.0, ""},
		{'E', 2 * MIN, 0, ""},
		{'r', 3 * MIN, 4.5, "raised:critical"},
		{'S', 4 * MIN, 0.1, ""},   /* suspect does not clear either */
		{'M', 5 * MIN, 0.1, ""},
		{'E', 6 * MIN, 0, ""},
		{'r', 7 * MIN, 0.1, "cleared:critical"},
		{'r', 7 * MIN, 9.0, ""},   /* same ts again: a replay, ignored */
		{'r', 6 * MIN, 9.0, ""},   /* older: ignored */
	};
	TABLE("q", "{'rules':[{'id':'sal','metric':'salinity','above':4.0,'severity':'critical'}]}",
	      "salinity", "", steps);
}

static void test_or_conditions(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'battery-low','metric':'battery_voltage','below':11.8,"
				   "'hysteresis':0.3,'or':[{'metric':'battery_soc','below':20,'hysteresis':5}]}]}");
	struct alert_engine *e = alert_engine_new(r);

	CHECK(feed(e, "DT-W01", "solar", "battery_voltage", T0, 12.6, AGRI_Q_OK, T0) == 0);
	CHECK(feed(e, "DT-W01", "solar", "battery_soc", T0, 15, AGRI_Q_OK, T0) == 1);
	CHECK_INT(rec[0].event, ALERT_EV_RAISED);
	CHECK_STR(rec[0].alert.metric, "battery_soc");
	CHECK_STR(rec[0].alert.id, "battery-low/DT-W01/solar");
	CHECK_STR(rec[0].message_en, "Battery charge 15 % <= 20 % at DT-W01 (solar)");
	CHECK(feed(e, "DT-W01", "solar", "battery_voltage", T0 + MIN, 11.5, AGRI_Q_OK, T0) == 0);
	CHECK(feed(e, "DT-W01", "solar", "battery_soc", T0 + MIN, 30, AGRI_Q_OK, T0) == 0); /* voltage still low */
	CHECK(feed(e, "DT-W01", "solar", "battery_voltage", T0 + 2 * MIN, 12.2, AGRI_Q_OK, T0) == 1);
	CHECK_INT(rec[0].event, ALERT_EV_CLEARED);
	alert_engine_free(e);
	rules_free(r);
}

/* ---- ladder ---------------------------------------------------------------- */

static const char *ladder_rules =
	"{'rules':[{'id':'salinity','kind':'ladder','metric':'salinity','hysteresis':0.1,'levels':["
	"{'above':0.5,'severity':'info','label':{'en':'durian','vi':'sầu riêng'}},"
	"{'above':1,'severity':'warning','label':{'en':'fruit','vi':'cây ăn trái'}},"
	"{'above':2,'severity':'alarm','label':{'en':'rice seedlings','vi':'lúa mạ'}},"
	"{'above':4,'severity':'critical','label':{'en':'all crops','vi':'mọi cây trồng'}}]}]}";

static void test_ladder(void)
{
	static const struct step steps[] = {
		{'r', 0, 0.4, ""},
		{'r', 1 * MIN, 0.5, "raised:info"},
		{'r', 2 * MIN, 1.2, "severity:warning"},
		{'r', 3 * MIN, 4.5, "severity:critical"},   /* jumps two levels: one transition */
		{'r', 4 * MIN, 3.9, ""},                     /* exactly 4 - 0.1 */
		{'r', 5 * MIN, 3.85, "severity:alarm"},
		{'a', 6 * MIN, 0, "acknowledged:alarm"},
		{'r', 7 * MIN, 1.95, ""},                    /* 2 - 0.1 < 1.95: stays alarm */
		{'r', 8 * MIN, 0.45, "severity:info"},       /* falls two levels, stays acked */
		{'r', 9 * MIN, 1.1, "severity:warning"},     /* rises: active again */
		{'a', 10 * MIN, 0, "acknowledged:warning"},
		{'r', 11 * MIN, 0.39, "cleared:warning"},    /* acked: cleared and closed */
		{'t', 12 * MIN, 0, ""},
		{'r', 13 * MIN, 5.0, "raised:critical"},     /* new episode straight to critical */
	};
	TABLE("ladder", ladder_rules, "salinity", "salinity/DT-W01/s1", steps);
}

static void test_ladder_state_and_messages(void)
{
	struct rules *r = rules_of(ladder_rules);
	struct alert_engine *e = alert_engine_new(r);
	struct agri_alert a;

	CHECK(feed(e, "DT-W01", "sonde1", "salinity", T0, 4.3, AGRI_Q_OK, T0 + 5) == 1);
	CHECK_STR(rec[0].message_en, "Salinity 4.3 g/L >= 4.0 g/L at DT-W01 (sonde1): all crops");
	CHECK_STR(rec[0].message_vi, "Độ mặn 4,3‰ ≥ 4,0‰ tại DT-W01 (sonde1): mọi cây trồng");
	CHECK_STR(rec[0].alert.message, rec[0].message_en);
	CHECK_STR(rec[0].alert.severity, "critical");
	CHECK_INT(rec[0].alert.state, AGRI_ALERT_ACTIVE);
	CHECK_NEAR(rec[0].alert.threshold, 4.0, 0);
	CHECK_NEAR(rec[0].alert.value, 4.3, 0);
	CHECK_INT(rec[0].alert.raised_at_ms, T0);
	CHECK(rec[0].store && rec[0].publish && rec[0].notify && !rec[0].retain_empty);
	CHECK(rec[0].rule == &r->v[0]);
	{
		char json[2048];

		CHECK(agri_alert_encode(&rec[0].alert, json, sizeof(json)) > 0);
	}
	CHECK(alert_engine_get(e, "salinity/DT-W01/sonde1", &a) == 0);
	CHECK_STR(a.id, "salinity/DT-W01/sonde1");
	CHECK(alert_engine_get(e, "salinity/DT-W01/other", &a) == -ENOENT);
	CHECK(feed(e, "DT-W01", "sonde1", "salinity", T0 + MIN, 0.1, AGRI_Q_OK, T0 + MIN) == 1);
	CHECK_STR(rec[0].message_en, "Cleared: Salinity 0.1 g/L < 0.5 g/L at DT-W01 (sonde1)");
	CHECK_STR(rec[0].message_vi, "Đã hết: Độ mặn 0,1‰ < 0,5‰ tại DT-W01 (sonde1)");
	CHECK_INT(rec[0].alert.state, AGRI_ALERT_CLEARED);
	CHECK(rec[0].publish && !rec[0].retain_empty && !rec[0].acked);
	alert_engine_free(e);
	rules_free(r);
}

/* ---- window, rate ------------------------------------------------------------ */

static void test_window(void)
{
	static const struct step steps[] = {
		{'r', 0, 30, ""},
		{'r', 10 * MIN, 30, ""},
		{'r', 20 * MIN, 30, ""},                 /* 90 */
		{'r', 30 * MIN, 10, "raised:warning"},   /* 100 */
		{'r', 60 * MIN, 0, ""},                  /* the t=0 point leaves: 70, within hysteresis 40 */
		{'r', 80 * MIN, 0, "cleared:warning"},   /* 10 < 60 */
		{'S', 90 * MIN, 500, ""},                /* suspect never counts */
	};
	TABLE("window", "{'rules':[{'id':'w','kind':'window','metric':'insect_count','window_s':3600,"
			"'agg':'sum','above':100,'hysteresis':40}]}", "insect_count", "", steps);
}

static void test_window_cap(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'w','kind':'window','metric':'x','window_s':86400,"
				   "'agg':'count','above':100,'max_points':50}]}");
	struct alert_engine *e = alert_engine_new(r);
	int raised = 0;

	for (int i = 0; i < 500; i++) {
		feed(e, "DT-W01", "s1", "x", T0 + i * MIN, 1, AGRI_Q_OK, T0 + i * MIN);
		raised += n_rec;
	}
	CHECK_INT(raised, 0); /* at most 50 points are kept */
	alert_engine_free(e);
	rules_free(r);
}

static void test_rate(void)
{
	static const struct step steps[] = {
		{'r', 0, 1.0, ""},
		{'r', 10 * MIN, 1.1, ""},
		{'r', 20 * MIN, 1.2, ""},
		{'r', 30 * MIN, 1.3, "raised:warning"}, /* 0.6 g/L/h over 30 min */
		{'r', 40 * MIN, 1.4, ""},
		{'r', 50 * MIN, 1.4, ""},                /* 0.51 g/L/h */
		{'r', 60 * MIN, 1.4, "cleared:warning"}, /* 0.38 g/L/h */
		{'r', 70 * MIN, 1.4, ""},
	};
	TABLE("rate", "{'rules':[{'id':'rise','kind':'rate','metric':'salinity','above':0.5,'window_s':3600}]}",
	      "salinity", "", steps);
}

/* ---- peak -------------------------------------------------------------------- */

/* Local 20:00 and 04:00 (UTC+7) of local day d, as UTC ms: 13:00Z and 21:00Z. */
static int64_t evening(int d) { return T0 + d * DAY + 13 * H; }
static int64_t dawn(int d) { return T0 + d * DAY + 21 * H; }

static int peak_night(struct alert_engine *e, const char *trap, int d, double total,
		      int *raised, int *cleared, int64_t *raised_night)
{
	int n = 0;

	/* Two readings a night (the catch at dusk and at dawn), one at noon. */
	feed(e, "DT-P01", trap, "insect_count", evening(d), total * 0.6, AGRI_Q_OK, evening(d));
	n += n_rec;
	for (int i = 0; i < n_rec && i < REC_MAX; i++) {
		if (rec[i].event == ALERT_EV_RAISED) {
			(*raised)++;
			*raised_night = d;
			CHECK_STR(rec[i].alert.id, "bph-peak/DT-P01/trap1-bph");
		}
		if (rec[i].event == ALERT_EV_CLEARED)
			(*cleared)++;
	}
	feed(e, "DT-P01", trap, "insect_count", dawn(d), total * 0.4, AGRI_Q_OK, dawn(d));
	n += n_rec;
	return n;
}

static void test_peak(void)
{
	struct rules *r = rules_of(
		"{'rules':[{'id':'bph-peak','kind':'peak','metric':'insect_count','sensors':['*-bph'],"
		"'k':3,'nights':7,'min_nights':5,'floor':100,'severity':'alarm'}]}");
	struct alert_engine *e = alert_engine_new(r);
	static const double base[] = {12, 25, 18, 30, 9, 22, 15, 28, 11, 20};
	static const double pulse6[] = {0.22, 0.55, 1.0, 0.6, 0.3, 0.12};
	static const double pulse5[] = {0.25, 0.6, 1.0, 0.5, 0.2};
	int raised = 0, cleared = 0, d = 0, peaks = 0;
	int64_t rn = -1;

	/* Baseline nights never raise, including a noisy one at 80 (< floor). */
	for (int i = 0; i < 20; i++, d++)
		peak_night(e, "trap1-bph", d, i == 12 ? 80 : base[i % 10], &raised, &cleared, &rn);
	CHECK_INT(raised, 0);
	/* Pulses of 6 and 5 nights peaking on their 3rd night, ~26 days apart. */
	for (int p = 0; p < 3; p++) {
		int len = p == 1 ? 5 : 6, peak_day = d + 2;

		for (int i = 0; i < len; i++, d++)
			peak_night(e, "trap1-bph", d,
				   base[i % 10] + 1200 * (len == 6 ? pulse6[i] : pulse5[i]),
				   &raised, &cleared, &rn);
		for (int i = 0; i < 20; i++, d++)
			peak_night(e, "trap1-bph", d, base[(i + 3) % 10], &raised, &cleared, &rn);
		peaks++;
		CHECK_INT(raised, peaks);
		CHECK_INT(cleared, peaks);
		/* Confirmed during the night after the first lower one: day 3 + 2. */
		CHECK_INT(rn, peak_day + 2);
	}
	/* The trap's other class is scoped out; a wbph pulse raises nothing. */
	raised = 0;
	for (int i = 0; i < 30; i++)
		peak_night(e, "trap1-wbph", i, i == 10 ? 5000 : 10, &raised, &cleared, &rn);
	CHECK_INT(raised, 0);
	alert_engine_free(e);
	rules_free(r);
}

/* An hourly trap (lamp 18:00-06:00 local): the night is complete at the
 * first reading after lamp-off, so a peak is confirmed — and reaches the
 * agronomists — at 06:00 the morning after the lower night, not at noon. */
static void hourly_night(struct alert_engine *e, const char *station, int d, double total,
			 int64_t *raised_at, const char **raised_id)
{
	for (int h = 0; h < 24; h++) { /* local 06:00 of day d .. 05:00 of d + 1 */
		int64_t ts = T0 + d * DAY + (6 + h) * H - 7 * H; /* UTC+7 */
		int lamp = h >= 12; /* 18:00-06:00 */

		feed(e, station, "trap1-bph", "insect_count", ts, lamp ? total / 12 : 0, AGRI_Q_OK, ts);
		for (int i = 0; i < n_rec && i < REC_MAX; i++)
			if (rec[i].event == ALERT_EV_RAISED && !*raised_at) {
				*raised_at = ts;
				*raised_id = rec[i].alert.rule;
			}
	}
}

static void test_peak_morning(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'bph-peak','kind':'peak','metric':'insect_count',"
				   "'k':3,'nights':3,'floor':10}]}");
	struct alert_engine *e = alert_engine_new(r);
	static const double nights[] = {20, 20, 20, 300, 120, 20, 20};
	int64_t at = 0;
	const char *id = NULL;

	for (int d = 0; d < 7; d++)
		hourly_night(e, "DT-P01", d, nights[d], &at, &id);
	/* night 3 peaks, night 4 is lower: confirmed at 06:00 local of day 5 */
	CHECK(at == T0 + 5 * DAY + 6 * H - 7 * H);
	alert_engine_free(e);
	rules_free(r);
}

/* Catches climbing night after night (40 -> 90 -> 210): a rising warning
 * before the peak, so seed can be soaked in time; cleared when the climb
 * stops. Flat or noisy nights do not raise it. */
static void test_rising(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'bph-rising','kind':'rising','metric':'insect_count',"
				   "'floor':50,'severity':'warning'}]}");
	struct alert_engine *e = alert_engine_new(r);
	static const double nights[] = {20, 35, 30, 40, 90, 210, 900, 400, 100, 30};
	int raised_day = -1, cleared_day = -1;

	CHECK_NEAR(rules_find(r, "bph-rising")->k, 1.5, 0);
	CHECK_INT(rules_find(r, "bph-rising")->nights, 2);
	for (int d = 0; d < 11; d++) {
		feed(e, "DT-P01", "trap1-bph", "insect_count", evening(d), d < 10 ? nights[d] : 0,
		     AGRI_Q_OK, evening(d));
		for (int i = 0; i < n_rec && i < REC_MAX; i++) {
			if (rec[i].event == ALERT_EV_RAISED) {
				raised_day = d;
				CHECK_STR(rec[i].message_en,
					  "Insect count rising at DT-P01 (trap1-bph): 40 → 90 → 210 to the night "
					  "of 2026-01-06; a brood is coming, soak seed now");
				CHECK(strstr(rec[i].message_vi, "ngâm ủ giống ngay") != NULL);
			}
			if (rec[i].event == ALERT_EV_CLEARED)
				cleared_day = d;
		}
	}
	CHECK_INT(raised_day, 6);  /* when night 5 (210) is complete */
	CHECK_INT(cleared_day, 8); /* night 7 (400) falls */
	alert_engine_free(e);
	rules_free(r);
}

/* A rain night (the trap's rain register): its low catch neither confirms
 * a peak nor splits a brood in two. */
static void test_rain_night(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'bph-peak','kind':'peak','metric':'insect_count',"
				   "'k':3,'nights':3,'floor':10}]}");
	struct alert_engine *e = alert_engine_new(r), *b;
	struct blobs bl = {0};
	static const double nights[] = {20, 20, 20, 200, 30, 350, 120, 20};
	int raised = 0;
	double value = 0;

	for (int d = 0; d < 9; d++) {
		if (d == 4) { /* rain in the night of day 4 */
			feed(e, "DT-P01", "trap1", "rain", evening(4) + H, 1, AGRI_Q_OK, evening(4) + H);
			/* a restart keeps it (the station record's blob) */
			CHECK(alert_engine_export(e, false, save, &bl) > 0);
			b = alert_engine_new(r);
			for (int k = 0; k < bl.n; k++)
				CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], bl.len[k]), 0);
			blobs_free(&bl);
			alert_engine_free(e);
			e = b;
		}
		feed(e, "DT-P01", "trap1-bph", "insect_count", evening(d), d < 8 ? nights[d] : 0,
		     AGRI_Q_OK, evening(d));
		for (int i = 0; i < n_rec && i < REC_MAX; i++)
			if (rec[i].event == ALERT_EV_RAISED) {
				raised++;
				value = rec[i].alert.value;
			}
	}
	/* one peak, the brood's true one (350), confirmed by night 6, not by the rain */
	CHECK_INT(raised, 1);
	CHECK_NEAR(value, 350, 0);
	alert_engine_free(e);
	rules_free(r);
}

static void test_peak_message(void)
{
	struct rules *r = rules_of(
		"{'rules':[{'id':'bph-peak','kind':'peak','metric':'insect_count','k':3,'nights':3,'floor':10}]}");
	struct alert_engine *e = alert_engine_new(r);
	static const double nights[] = {10, 10, 10, 100, 50};
	int got = 0;

	for (int d = 0; d < 6; d++) {
		feed(e, "DT-P01", "trap1-bph", "insect_count", evening(d), d < 5 ? nights[d] : 0,
		     AGRI_Q_OK, evening(d));
		if (n_rec == 1 && rec[0].event == ALERT_EV_RAISED) {
			got++;
			CHECK_INT(d, 5);
			CHECK_STR(rec[0].message_en,
				  "Insect count peak at DT-P01 (trap1-bph): 100 on the night of 2026-01-04, "
				  ">= 30 (3 x median of the previous 3 nights)");
			CHECK_STR(rec[0].message_vi,
				  "Đỉnh Số côn trùng vào bẫy tại DT-P01 (trap1-bph): 100 con đêm 04/01/2026, "
				  "≥ 30 con (3 × trung vị 3 đêm trước)");
		}
	}
	CHECK_INT(got, 1);
	alert_engine_free(e);
	rules_free(r);
}

/* ---- no_data -------------------------------------------------------------------- */

static void test_no_data_station(void)
{
	static const struct step steps[] = {
		{'r', 0, 1, ""},
		{'t', 900 * S - 1, 0, ""},
		{'t', 900 * S, 0, "raised:warning"},      /* silence */
		{'t', 1000 * S, 0, ""},                   /* once */
		{'o', 1100 * S, 0, ""},                   /* already active */
		{'r', 1200 * S, 1, "cleared:warning"},    /* the next reading clears */
		{'o', 1300 * S, 0, "raised:warning"},     /* Last Will: at once */
		{'O', 1400 * S, 0, ""},                   /* online alone does not clear */
		{'t', 1500 * S, 0, ""},
		{'r', 1600 * S, 1, "cleared:warning"},
		{'a', 1700 * S, 0, "closed:warning"},
		{'t', 2499 * S, 0, ""},
		{'t', 2500 * S, 0, "raised:warning"},
	};
	TABLE("no_data", "{'rules':[{'id':'station-offline','kind':'no_data','after_s':900}]}",
	      "salinity", "station-offline/DT-W01", steps);
}

static void test_no_data_sensor(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'silent','kind':'no_data','per':'sensor','after_s':600},"
				   "{'id':'off','kind':'no_data','after_s':600}]}");
	struct alert_engine *e = alert_engine_new(r);
	int64_t t = T0;

	feed(e, "DT-W01", "a", "salinity", t, 1, AGRI_Q_OK, t);
	feed(e, "DT-W01", "b", "ph", t, 7, AGRI_Q_OK, t);
	for (int i = 1; i <= 10; i++) {
		t = T0 + i * MIN;
		feed(e, "DT-W01", "a", "salinity", t, 1, AGRI_Q_OK, t);
		CHECK_INT(n_rec, 0);
		n_rec = 0;
		CHECK_INT(alert_engine_tick(e, t, record, NULL), i == 10 ? 1 : 0);
	}
	CHECK_STR(rec[0].alert.id, "silent/DT-W01/b");
	CHECK_STR(rec[0].message_en, "No data from sensor b at DT-W01 for 10 min");
	CHECK_STR(rec[0].message_vi, "Không nhận được dữ liệu từ cảm biến b tại trạm DT-W01 trong 10 phút");
	CHECK(!rec[0].alert.has_value && !rec[0].alert.has_threshold);
	/* The whole station goes quiet: its offline alert, not sensor a's. */
	n_rec = 0;
	CHECK_INT(alert_engine_tick(e, t + 600 * S, record, NULL), 1);
	CHECK_STR(rec[0].alert.id, "off/DT-W01");
	CHECK_STR(rec[0].message_en, "No data from station DT-W01 for 10 min");
	feed(e, "DT-W01", "b", "ph", t + 700 * S, 7, AGRI_Q_OK, t + 700 * S);
	CHECK_STR(summary(), "cleared:warning cleared:warning");
	alert_engine_free(e);
	rules_free(r);
}

static void test_no_data_offline_message_and_start(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'station-offline','kind':'no_data','after_s':900}]}");
	struct alert_engine *e = alert_engine_new(r);

	n_rec = 0;
	CHECK_INT(alert_engine_status(e, "DT-W02", false, T0, record, NULL), 1);
	CHECK_STR(rec[0].message_en, "Station DT-W02 is offline");
	CHECK_STR(rec[0].message_vi, "Trạm DT-W02 mất kết nối");
	/* Restart grace: seen long ago, gateway restarted just now. */
	feed(e, "DT-W03", "s", "ph", T0, 7, AGRI_Q_OK, T0);
	alert_engine_start(e, T0 + 10 * H);
	n_rec = 0;
	CHECK_INT(alert_engine_tick(e, T0 + 10 * H + 899 * S, record, NULL), 0);
	CHECK_INT(alert_engine_tick(e, T0 + 10 * H + 900 * S, record, NULL), 1);
	alert_engine_free(e);
	rules_free(r);
}

/* Two hubs (docs/ha.md) get a station's readings and its Last Will in the
 * same order but at their own times: the offline episode starts at its
 * newest reading on both, so its key, and its claim, are one. */
static void test_no_data_offline_two_hubs(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'station-offline','kind':'no_data','after_s':900}]}");
	struct alert_engine *hub[2] = {alert_engine_new(r), alert_engine_new(r)};

	for (int h = 0; h < 2; h++) {
		feed(hub[h], "DT-W01", "s", "ph", T0, 7, AGRI_Q_OK, T0 + 40 + h);
		feed(hub[h], "DT-W01", "s", "ph", T0 + 1000, 7, AGRI_Q_OK, T0 + 1040 + h);
		n_rec = 0;
		CHECK_INT(alert_engine_status(hub[h], "DT-W01", false, T0 + 31 * S + h * 3, record,
					      NULL), 1);
		CHECK_STR(rec[0].alert.id, "station-offline/DT-W01");
		CHECK(rec[0].alert.raised_at_ms == T0 + 1000 && rec[0].event_ms == T0 + 1000);
	}
	/* Silent longer than after_s before its Last Will: the hub's clock. */
	feed(hub[0], "DT-W02", "s", "ph", T0, 7, AGRI_Q_OK, T0);
	n_rec = 0;
	CHECK_INT(alert_engine_status(hub[0], "DT-W02", false, T0 + 900 * S, record, NULL), 1);
	CHECK(rec[0].alert.raised_at_ms == T0 + 900 * S);
	for (int h = 0; h < 2; h++)
		alert_engine_free(hub[h]);
	rules_free(r);
}

/* ---- quality -------------------------------------------------------------------- */

static void test_quality(void)
{
	static const struct step steps[] = {
		{'E', 0, 0, ""},
		{'E', 1 * MIN, 0, ""},
		{'r', 2 * MIN, 1, ""},                 /* resets */
		{'E', 3 * MIN, 0, ""},
		{'S', 4 * MIN, 0, ""},
		{'M', 5 * MIN, 0, ""},                 /* maintenance: neither counts nor resets */
		{'E', 6 * MIN, 0, "raised:info"},      /* 3 in a row */
		{'E', 7 * MIN, 0, ""},
		{'E', 7 * MIN, 0, ""},                 /* a replay */
		{'r', 8 * MIN, 1, "cleared:info"},
	};
	TABLE("quality", "{'rules':[{'id':'sensor-quality','kind':'quality','n':3,'severity':'info'}]}",
	      "conductivity", "", steps);
}

static void test_quality_message(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'q','kind':'quality','n':2,'q':['error']}]}");
	struct alert_engine *e = alert_engine_new(r);

	feed(e, "DT-W01", "sonde1", "conductivity", T0, 0, AGRI_Q_ERROR, T0);
	feed(e, "DT-W01", "sonde1", "conductivity", T0 + 1, 3, AGRI_Q_SUSPECT, T0);
	CHECK_INT(n_rec, 0); /* suspect not counted by this rule */
	feed(e, "DT-W01", "sonde1", "conductivity", T0 + 2, 0, AGRI_Q_ERROR, T0);
	CHECK_INT(n_rec, 1);
	CHECK_STR(rec[0].message_en, "Sensor sonde1 at DT-W01: 2 error or suspect readings in a row (Conductivity)");
	CHECK_STR(rec[0].alert.metric, "conductivity");
	alert_engine_free(e);
	rules_free(r);
}

/* ---- acknowledgement, renotify, escalation ------------------------------------------ */

static const char *thr_rules =
	"{'rules':[{'id':'sal','metric':'salinity','above':4,'severity':'critical',"
	"'notify':['ops'],'renotify_s':600,'escalate':{'after_s':1800,'notify':['sms']}}]}";

static void test_ack_orders(void)
{
	struct rules *r = rules_of(thr_rules);
	struct alert_engine *e = alert_engine_new(r);
	struct agri_alert a;

	/* raise -> ack -> clear: the clear empties the topic. */
	feed(e, "DT-W01", "s1", "salinity", T0, 5, AGRI_Q_OK, T0);
	n_rec = 0;
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1", "lan", T0 + MIN, record, NULL), 1);
	CHECK_INT(rec[0].event, ALERT_EV_ACKED);
	CHECK_INT(rec[0].alert.state, AGRI_ALERT_ACKNOWLEDGED);
	CHECK_STR(rec[0].who, "lan");
	CHECK_STR(rec[0].message_en, "Acknowledged by lan: Salinity 5.0 g/L >= 4.0 g/L at DT-W01 (s1)");
	CHECK(rec[0].acked && rec[0].publish && rec[0].store);
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1", "lan", T0 + MIN, record, NULL), 0);
	/* A Vietnamese name stays as typed; a control character does not
	 * pass; a long name is cut on a character boundary. */
	alert_engine_free(e);
	e = alert_engine_new(r);
	feed(e, "DT-W01", "s1", "salinity", T0, 5, AGRI_Q_OK, T0);
	n_rec = 0;
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1", "Nguyễn Thị Lan\t", T0 + MIN, record, NULL), 1);
	CHECK_STR(rec[0].who, "Nguyễn Thị Lan?");
	CHECK(strncmp(rec[0].message_vi, "Đã xác nhận bởi Nguyễn Thị Lan?: ", 44) == 0);
	alert_engine_free(e);
	e = alert_engine_new(r);
	feed(e, "DT-W01", "s1", "salinity", T0, 5, AGRI_Q_OK, T0);
	n_rec = 0;
	/* 21 x "ễ" (3 bytes) = 63 bytes: the 64-byte field holds 21 of 22. */
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1",
				   "ễễễễễễễễễễễễễễễễễễễễễễ", T0 + MIN, record, NULL), 1);
	CHECK_STR(rec[0].who, "ễễễễễễễễễễễễễễễễễễễễễ");
	feed(e, "DT-W01", "s1", "salinity", T0 + 2 * MIN, 1, AGRI_Q_OK, T0 + 2 * MIN);
	CHECK_INT(n_rec, 1);
	CHECK_INT(rec[0].event, ALERT_EV_CLEARED);
	CHECK(rec[0].retain_empty && !rec[0].publish && rec[0].store && rec[0].notify);
	CHECK(alert_engine_get(e, "sal/DT-W01/s1", &a) == -ENOENT);
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1", "lan", T0 + MIN, record, NULL), -ENOENT);
	/* raise -> clear -> ack: cleared stays until acknowledged, then closed. */
	feed(e, "DT-W01", "s1", "salinity", T0 + 3 * MIN, 5, AGRI_Q_OK, T0 + 3 * MIN);
	feed(e, "DT-W01", "s1", "salinity", T0 + 4 * MIN, 1, AGRI_Q_OK, T0 + 4 * MIN);
	CHECK(rec[0].publish && !rec[0].retain_empty);
	CHECK(alert_engine_get(e, "sal/DT-W01/s1", &a) == 0);
	CHECK_INT(a.state, AGRI_ALERT_CLEARED);
	CHECK_INT(a.raised_at_ms, T0 + 3 * MIN);
	CHECK_INT(a.updated_at_ms, T0 + 4 * MIN);
	n_rec = 0;
	CHECK_INT(alert_engine_ack(e, "sal/DT-W01/s1", NULL, T0 + 5 * MIN, record, NULL), 1);
	CHECK_INT(rec[0].event, ALERT_EV_CLOSED);
	CHECK(rec[0].retain_empty && !rec[0].publish);
	CHECK(alert_engine_get(e, "sal/DT-W01/s1", &a) == -ENOENT);
	CHECK_INT(alert_engine_ack(e, "nope/DT-W01/s1", "x", T0, record, NULL), -ENOENT);
	CHECK_INT(alert_engine_ack(e, "garbage", "x", T0, record, NULL), -ENOENT);
	/* raise -> clear -> raise again before anyone acked: a new episode. */
	feed(e, "DT-W01", "s1", "salinity", T0 + 6 * MIN, 5, AGRI_Q_OK, T0 + 6 * MIN);
	feed(e, "DT-W01", "s1", "salinity", T0 + 7 * MIN, 1, AGRI_Q_OK, T0 + 7 * MIN);
	feed(e, "DT-W01", "s1", "salinity", T0 + 8 * MIN, 5, AGRI_Q_OK, T0 + 8 * MIN);
	CHECK_INT(rec[0].event, ALERT_EV_RAISED);
	CHECK_INT(rec[0].alert.raised_at_ms, T0 + 8 * MIN);
	alert_engine_free(e);
	rules_free(r);
}

static void test_renotify_escalate(void)
{
	static const struct step steps[] = {
		{'r', 0, 5, "raised:critical"},
		{'t', 600 * S - 1, 0, ""},
		{'t', 600 * S, 0, "renotify:critical"},
		{'t', 1199 * S, 0, ""},
		{'t', 1200 * S, 0, "renotify:critical"},
		{'t', 1800 * S - 1, 0, ""},
		{'t', 1800 * S, 0, "escalated:critical"},
		{'t', 1800 * S, 0, ""},
		{'t', 2400 * S, 0, "renotify:critical"},
		{'a', 2500 * S, 0, "acknowledged:critical"},
		{'t', 9000 * S, 0, ""},
		{'r', 9001 * S, 1, "cleared:critical"},
	};
	TABLE("renotify", thr_rules, "salinity", "sal/DT-W01/s1", steps);
}

static void test_escalation_flags(void)
{
	struct rules *r = rules_of(thr_rules);
	struct alert_engine *e = alert_engine_new(r);

	feed(e, "DT-W01", "s1", "salinity", T0, 5, AGRI_Q_OK, T0);
	CHECK(rec[0].notify && !rec[0].notify_escalation);
	n_rec = 0;
	alert_engine_tick(e, T0 + 1800 * S, record, NULL);
	CHECK_INT(rec[0].event, ALERT_EV_ESCALATED);
	CHECK(!rec[0].notify && rec[0].notify_escalation && !rec[0].store && !rec[0].publish);
	CHECK_STR(rec[0].message_en, "Escalated: Salinity 5.0 g/L >= 4.0 g/L at DT-W01 (s1)");
	CHECK_STR(rec[0].message_vi, "Chuyển cấp: Độ mặn 5,0‰ ≥ 4,0‰ tại DT-W01 (s1)");
	n_rec = 0;
	alert_engine_tick(e, T0 + 2400 * S, record, NULL);
	CHECK_INT(rec[0].event, ALERT_EV_RENOTIFY);
	CHECK(rec[0].notify && rec[0].notify_escalation && !rec[0].store);
	CHECK_STR(rec[0].message_en, "Reminder: Salinity 5.0 g/L >= 4.0 g/L at DT-W01 (s1)");
	feed(e, "DT-W01", "s1", "salinity", T0 + 2500 * S, 1, AGRI_Q_OK, T0 + 2500 * S);
	CHECK(rec[0].notify && rec[0].notify_escalation); /* the clear reaches both lists */
	alert_engine_free(e);
	rules_free(r);
}

/* ---- seasons ------------------------------------------------------------------------ */

static void test_active_ranges(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'dry','metric':'salinity','above':1,"
				   "'active':[{'from':'12-15','to':'01-10'}]}]}");
	struct alert_engine *e = alert_engine_new(r);

	/* 2026-01-10 local is day 9; 01-11 day 10 (T0 is 07:00 local on 01-01). */
	CHECK_INT(feed(e, "DT-W01", "s", "salinity", T0 + 9 * DAY, 2, AGRI_Q_OK, 0), 1);
	CHECK_INT(feed(e, "DT-W01", "s", "salinity", T0 + 10 * DAY, 2, AGRI_Q_OK, 0), 1);
	CHECK_INT(rec[0].event, ALERT_EV_CLEARED); /* the season ended */
	CHECK_INT(feed(e, "DT-W01", "s", "salinity", T0 + 20 * DAY, 3, AGRI_Q_OK, 0), 0);
	CHECK_INT(feed(e, "DT-W01", "s", "salinity", T0 + 348 * DAY, 3, AGRI_Q_OK, 0), 1); /* 12-15 */
	alert_engine_free(e);
	rules_free(r);
}

/* ---- export / import, transactions ----------------------------------------------------- */


static const char *all_rules =
	"{'rules':["
	"{'id':'salinity','kind':'ladder','metric':'salinity','hysteresis':0.1,'for_s':120,'levels':["
	" {'above':0.5,'severity':'info'},{'above':1,'severity':'warning'},{'above':4,'severity':'critical'}],"
	" 'renotify_s':600,'escalate':{'after_s':3600,'notify':['sms']}},"
	"{'id':'w','kind':'window','metric':'insect_count','window_s':7200,'above':100},"
	"{'id':'p','kind':'peak','metric':'insect_count','k':3,'nights':3,'floor':10},"
	"{'id':'off','kind':'no_data','after_s':900},"
	"{'id':'q','kind':'quality','n':3}]}";

/* Feeds step i of a scripted run into e; returns the summary. */
static const char *script(struct alert_engine *e, int i)
{
	int64_t t = T0 + i * 5 * MIN;
	double sal = i < 10 ? 0.3 + 0.5 * i : 5.0 - 0.4 * (i - 10);

	feed(e, "DT-W01", "sonde1", "salinity", t, sal, AGRI_Q_OK, t);
	static char all[4096];
	snprintf(all, sizeof(all), "%s", summary());
	feed(e, "DT-W01", "trap1-bph", "insect_count", t, i % 7 == 0 ? 60 : 5, AGRI_Q_OK, t);
	strncat(all, "|", sizeof(all) - strlen(all) - 1);
	strncat(all, summary(), sizeof(all) - strlen(all) - 1);
	feed(e, "DT-W01", "sonde1", "conductivity", t, 0, i % 4 ? AGRI_Q_ERROR : AGRI_Q_OK, t);
	strncat(all, "|", sizeof(all) - strlen(all) - 1);
	strncat(all, summary(), sizeof(all) - strlen(all) - 1);
	n_rec = 0;
	alert_engine_tick(e, t + 2 * MIN, record, NULL);
	strncat(all, "|", sizeof(all) - strlen(all) - 1);
	strncat(all, summary(), sizeof(all) - strlen(all) - 1);
	return all;
}

static void test_export_import(void)
{
	struct rules *r = rules_of(all_rules);
	struct alert_engine *a = alert_engine_new(r), *b = NULL;
	struct blobs bl = {0};
	char want[40][4096];
	int total = 0;

	/* Reference run, straight through. */
	for (int i = 0; i < 40; i++)
		snprintf(want[i], sizeof(want[i]), "%s", script(a, i));
	for (int i = 0; i < 40; i++)
		total += want[i][0] != '|' || strcmp(want[i], "|||");
	CHECK(total > 5);
	alert_engine_free(a);

	/* Restart at every step: export, new engine, import, continue. */
	a = alert_engine_new(r);
	for (int i = 0; i < 40; i++) {
		const char *got = script(a, i);

		if (strcmp(got, want[i])) {
			test_failed++;
			fprintf(stderr, "restart step %d: got \"%s\" want \"%s\"\n", i, got, want[i]);
		} else {
			test_passed++;
		}
		CHECK(alert_engine_export(a, false, save, &bl) > 0);
		b = alert_engine_new(r);
		for (int k = 0; k < bl.n; k++)
			CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], bl.len[k]), 0);
		blobs_free(&bl);
		/* A replay of the last step's readings is silent. */
		if (i == 20) {
			int64_t t = T0 + i * 5 * MIN;

			CHECK_INT(feed(b, "DT-W01", "sonde1", "salinity", t, 9, AGRI_Q_OK, t), 0);
		}
		alert_engine_free(a);
		a = b;
	}
	/* Dirty export: only what changed since the import / last export. */
	CHECK_INT(alert_engine_export(a, true, save, &bl), 0);
	feed(a, "DT-W01", "sonde1", "salinity", T0 + 1000 * MIN, 0.1, AGRI_Q_OK, T0 + 1000 * MIN);
	/* the station, the ladder key and the quality key (any metric) */
	CHECK_INT(alert_engine_export(a, true, save, &bl), 3);
	blobs_free(&bl);
	CHECK_INT(alert_engine_export(a, true, save, &bl), 0);
	blobs_free(&bl);
	alert_engine_free(a);
	rules_free(r);
}

/* alert_engine_export_due(): a change of the decision state is written
 * at once; evidence only (newest reading, ring points, last seen) waits
 * about defer_ms; defer 0 writes everything; a restart from the deferred
 * blobs keeps the decisions. */
/* Thousands of keys written together and then touched together (every
 * station reports every minute) do not fall due in one export: the
 * waiting ones are written at the queue's length per defer_ms, each
 * export taking its share, all of them within about defer_ms. */
static int count_saves(void *ctx, const char *key, const void *blob, size_t len)
{
	(void)key, (void)blob, (void)len;
	++*(int *)ctx;
	return 0;
}

static void test_export_paced(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'hi','metric':'salinity','above':2},"
				   "{'id':'w','kind':'window','metric':'salinity','window_s':3600,"
				   "'agg':'mean','above':50}]}");
	struct alert_engine *a = alert_engine_new(r);
	int saved = 0;
	int64_t now = 1000000, t;
	int total = 0, most = 0, n;
	char st[16];

	alert_engine_set_undo(a, false);
	for (int i = 0; i < 200; i++) {
		snprintf(st, sizeof(st), "S%d", i);
		feed(a, st, "s", "salinity", T0, 1.0, AGRI_Q_OK, T0);
	}
	CHECK_INT(alert_engine_export_due(a, now, 5000, count_saves, &saved), 600);
	for (int i = 0; i < 200; i++) {
		snprintf(st, sizeof(st), "S%d", i);
		feed(a, st, "s", "salinity", T0 + MIN, 1.1, AGRI_Q_OK, T0 + MIN);
	}
	/* (a share at once: the queue is spread from now on) */
	total = alert_engine_export_due(a, now + 10, 5000, count_saves, &saved);
	CHECK(total >= 0 && total <= 2);
	for (t = now + 60; t <= now + 5300; t += 50) {
		n = alert_engine_export_due(a, t, 5000, count_saves, &saved);
		CHECK(n >= 0);
		total += n;
		most = n > most ? n : most;
		if (t < now + 2000)
			CHECK(total < 600 / 2);
	}
	CHECK_INT(total, 600);
	CHECK(most <= 600 * 50 / 5000 + 2);
	CHECK_INT(alert_engine_export_due(a, t + 5000, 5000, count_saves, &saved), 0);
	CHECK_INT(saved, 600 + 600);
	alert_engine_free(a);
	rules_free(r);
}

static void test_export_due(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'hi','metric':'salinity','above':2},"
				   "{'id':'w','kind':'window','metric':'salinity','window_s':3600,"
				   "'agg':'mean','above':50}]}");
	struct alert_engine *a = alert_engine_new(r), *b;
	struct blobs bl = {0};
	struct agri_alert al;
	int64_t now = 1000000;

	alert_engine_set_undo(a, false);
	feed(a, "S1", "s", "salinity", T0, 1.0, AGRI_Q_OK, T0);
	/* new keys (station record, hi, w) are written at once */
	CHECK_INT(alert_engine_export_due(a, now, 5000, save, &bl), 3);
	blobs_free(&bl);
	feed(a, "S1", "s", "salinity", T0 + MIN, 1.1, AGRI_Q_OK, T0 + MIN);
	CHECK_INT(alert_engine_export_due(a, now + 100, 5000, save, &bl), 0);
	/* a raise: the key is written in this export, the others still wait */
	feed(a, "S1", "s", "salinity", T0 + 2 * MIN, 2.5, AGRI_Q_OK, T0 + 2 * MIN);
	CHECK_INT(alert_engine_export_due(a, now + 200, 5000, save, &bl), 1);
	CHECK(bl.n == 1 && strcmp(bl.key[0], "hi/S1/s") == 0);
	/* a restart from what is written keeps the open alert */
	b = alert_engine_new(r);
	CHECK_INT(alert_engine_import(b, bl.key[0], bl.blob[0], bl.len[0]), 0);
	CHECK_INT(alert_engine_get(b, "hi/S1/s", &al), 0);
	alert_engine_free(b);
	blobs_free(&bl);
	CHECK_INT(alert_engine_export_due(a, now + 1000, 5000, save, &bl), 0);
	/* about 5 s after they began to wait, the waiting keys go (hi, written
	 * since, leaves the queue unwritten) */
	CHECK_INT(alert_engine_export_due(a, now + 5200, 5000, save, &bl), 2);
	CHECK(bl.n == 2 && strcmp(bl.key[0], "hi/S1/s") && strcmp(bl.key[1], "hi/S1/s"));
	blobs_free(&bl);
	CHECK_INT(alert_engine_export_due(a, now + 5400, 5000, save, &bl), 0);
	/* defer 0 (shutdown): everything dirty, now */
	feed(a, "S1", "s", "salinity", T0 + 3 * MIN, 1.2, AGRI_Q_OK, T0 + 3 * MIN);
	CHECK_INT(alert_engine_export_due(a, now + 5500, 0, save, &bl), 3);
	blobs_free(&bl);
	CHECK_INT(alert_engine_export_due(a, now + 5600, 5000, save, &bl), 0);
	alert_engine_free(a);
	rules_free(r);
}

static void test_import_rejects(void)
{
	struct rules *r = rules_of(all_rules);
	struct rules *r2 = rules_of("{'rules':[{'id':'salinity','kind':'ladder','metric':'salinity','levels':["
				    "{'above':0.7,'severity':'info'},{'above':1,'severity':'warning'},"
				    "{'above':4,'severity':'critical'}]}]}");
	struct alert_engine *a = alert_engine_new(r), *b;
	struct blobs bl = {0};
	unsigned char junk[64] = {0xa1, 1, 1};
	struct agri_alert al;
	int k;

	feed(a, "DT-W01", "sonde1", "salinity", T0, 1.5, AGRI_Q_OK, T0);
	feed(a, "DT-W01", "sonde1", "salinity", T0 + 3 * MIN, 1.5, AGRI_Q_OK, T0 + 3 * MIN);
	CHECK_INT(n_rec, 1); /* warning after for_s */
	alert_engine_export(a, false, save, &bl);
	b = alert_engine_new(r);
	CHECK_INT(alert_engine_import(b, "nope/DT-W01/x", bl.blob[0], bl.len[0]), -ENOENT);
	CHECK_INT(alert_engine_import(b, "off/DT-W01/sensor", bl.blob[0], bl.len[0]), -ENOENT);
	CHECK_INT(alert_engine_import(b, "salinity/DT-W01", bl.blob[0], bl.len[0]), -ENOENT);
	for (k = 0; k < bl.n && strcmp(bl.key[k], "salinity/DT-W01/sonde1"); k++)
		;
	CHECK(k < bl.n);
	for (size_t len = 0; len < bl.len[k]; len++)
		CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], len), -EBADMSG);
	CHECK_INT(alert_engine_import(b, bl.key[k], junk, sizeof(junk)), 0); /* unknown fingerprint: nothing kept */
	CHECK(alert_engine_get(b, "salinity/DT-W01/sonde1", &al) == -ENOENT);
	bl.blob[k][22] = 9; /* the alert's state byte (blob versions 2, 3) */
	CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], bl.len[k]), -EBADMSG);
	bl.blob[k][22] = AGRI_ALERT_ACTIVE;
	alert_engine_free(b);
	/* A changed rule keeps the open alert: no duplicate raise. */
	b = alert_engine_new(r2);
	CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], bl.len[k]), 0);
	CHECK(alert_engine_get(b, "salinity/DT-W01/sonde1", &al) == 0);
	CHECK_STR(al.severity, "warning");
	CHECK_INT(feed(b, "DT-W01", "sonde1", "salinity", T0 + 4 * MIN, 1.6, AGRI_Q_OK, T0), 0);
	CHECK_INT(feed(b, "DT-W01", "sonde1", "salinity", T0 + 5 * MIN, 0.1, AGRI_Q_OK, T0), 1);
	CHECK_INT(rec[0].event, ALERT_EV_CLEARED);
	alert_engine_free(b);
	blobs_free(&bl);
	alert_engine_free(a);
	rules_free(r);
	rules_free(r2);
}

static void test_rollback(void)
{
	struct rules *r = rules_of(all_rules);
	struct alert_engine *e = alert_engine_new(r);
	struct alert_engine_stats st;
	struct blobs bl = {0};

	feed(e, "DT-W01", "sonde1", "salinity", T0, 2, AGRI_Q_OK, T0);
	alert_engine_commit(e);
	CHECK_INT(alert_engine_begin(e), 0);
	feed(e, "DT-W01", "sonde1", "salinity", T0 + 3 * MIN, 2, AGRI_Q_OK, T0 + 3 * MIN);
	CHECK_STR(summary(), "raised:warning");
	feed(e, "DT-W02", "sonde1", "salinity", T0 + 3 * MIN, 2, AGRI_Q_OK, T0 + 3 * MIN);
	alert_engine_stats(e, &st);
	CHECK_INT(st.open_alerts, 1);
	alert_engine_rollback(e);
	alert_engine_stats(e, &st);
	CHECK_INT(st.open_alerts, 0);
	/* The retry produces the same transition; DT-W02's keys are gone. */
	CHECK_INT(alert_engine_begin(e), 0);
	feed(e, "DT-W01", "sonde1", "salinity", T0 + 3 * MIN, 2, AGRI_Q_OK, T0 + 3 * MIN);
	CHECK_STR(summary(), "raised:warning");
	CHECK(alert_engine_export(e, true, save, &bl) >= 2);
	blobs_free(&bl);
	alert_engine_commit(e);
	alert_engine_stats(e, &st);
	CHECK_INT(st.open_alerts, 1);
	CHECK_INT(st.keys, 2 + 1); /* station, ladder key, quality key of DT-W01 */
	/* Rollback of an ack and of a tick. */
	alert_engine_begin(e);
	n_rec = 0;
	CHECK_INT(alert_engine_ack(e, "salinity/DT-W01/sonde1", "x", T0 + 4 * MIN, record, NULL), 1);
	alert_engine_rollback(e);
	alert_engine_begin(e);
	n_rec = 0;
	CHECK_INT(alert_engine_ack(e, "salinity/DT-W01/sonde1", "x", T0 + 4 * MIN, record, NULL), 1);
	alert_engine_commit(e);
	alert_engine_free(e);
	rules_free(r);
}

static void test_text(void)
{
	char b[64];

	alert_format_number(b, sizeof(b), 4.0);
	CHECK_STR(b, "4.0");
	alert_format_number(b, sizeof(b), 4.25);
	CHECK_STR(b, "4.25");
	alert_format_number(b, sizeof(b), 1200);
	CHECK_STR(b, "1200");
	alert_format_number(b, sizeof(b), 0.004);
	CHECK_STR(b, "0.004");
	alert_format_number(b, sizeof(b), -3.5);
	CHECK_STR(b, "-3.5");
	CHECK_STR(alert_metric_name("salinity", ALERT_LANG_VI), "Độ mặn");
	CHECK_STR(alert_metric_name("foo_bar", ALERT_LANG_VI), "foo_bar");
	snprintf(b, sizeof(b), "ab\xe1\xbb");
	alert_text_utf8_trim(b);
	CHECK_STR(b, "ab");
	snprintf(b, sizeof(b), "Độ");
	alert_text_utf8_trim(b);
	CHECK_STR(b, "Độ");
}

static void test_template(void)
{
	struct rules *r = rules_of("{'lang':'vi','rules':[{'id':'x','metric':'salinity','above':2,"
				   "'message':{'en':'{metric_name} {value} {unit} at {station}/{sensor} ({rule}, {severity}) {bogus}',"
				   "'vi':'{metric_name} {value} {unit} tại {station}'}}]}");
	struct alert_engine *e = alert_engine_new(r);

	feed(e, "DT-W01", "s1", "salinity", T0, 2.5, AGRI_Q_OK, T0);
	CHECK_STR(rec[0].message_en, "Salinity 2.5 g/L at DT-W01/s1 (x, warning) {bogus}");
	CHECK_STR(rec[0].message_vi, "Độ mặn 2,5 ‰ tại DT-W01");
	CHECK_STR(rec[0].alert.message, rec[0].message_vi); /* "lang": "vi" */
	alert_engine_free(e);
	rules_free(r);
}

static void test_bad_args(void)
{
	struct rules *r = rules_of(all_rules);
	struct alert_engine *e = alert_engine_new(r);

	CHECK_INT(feed(e, "alerts", "s", "salinity", T0, 1, AGRI_Q_OK, T0), -EINVAL);
	CHECK_INT(feed(e, "DT W01", "s", "salinity", T0, 1, AGRI_Q_OK, T0), -EINVAL);
	CHECK_INT(feed(e, "DT-W01", "s/1", "salinity", T0, 1, AGRI_Q_OK, T0), -EINVAL);
	CHECK_INT(alert_engine_status(e, "a/b", false, T0, record, NULL), -EINVAL);
	alert_engine_free(e);
	rules_free(r);
}

/* The finding: keys from station-chosen names with one global cap made
 * the engine fail (-ENOMEM) for everyone once a station had filled it.
 * Now a station has its own budget of keys and of open alerts: past them
 * its new keys are not created and its raises wait, never an error, and
 * another station's readings still raise. */
static void test_station_budgets(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'hi','metric':'salinity','above':4}]}");
	struct alert_engine *a = alert_engine_new(r);
	struct alert_engine_stats st;
	char sensor[16];
	int raised = 0;

	alert_engine_set_undo(a, false);
	alert_engine_set_limits(a, 100, 10);
	for (int i = 0; i < 1000; i++) {
		snprintf(sensor, sizeof(sensor), "x%d", i);
		CHECK(feed(a, "EVIL", sensor, "salinity", T0 + i, 9.0, AGRI_Q_OK, T0 + i) >= 0);
		raised += n_rec;
	}
	alert_engine_stats(a, &st);
	CHECK_INT(raised, 10);                  /* its open-alert budget */
	CHECK_INT((int)st.keys, 1 + 100);       /* its record + its key budget */
	CHECK_INT((int)st.keys_refused, 900);
	CHECK_INT((int)st.raises_refused, 90);  /* keys 11..100 waited */
	CHECK_INT(feed(a, "DT-W01", "sonde1", "salinity", T0, 4.5, AGRI_Q_OK, T0), 1);
	CHECK_STR(summary(), "raised:warning");
	/* one of EVIL's alerts clears and is acknowledged: a waiting raise goes */
	CHECK_INT(feed(a, "EVIL", "x0", "salinity", T0 + 2000, 1.0, AGRI_Q_OK, T0 + 2000), 1);
	CHECK_INT(alert_engine_ack(a, "hi/EVIL/x0", "lan", T0 + 2001, record, NULL), 1);
	CHECK_INT(feed(a, "EVIL", "x50", "salinity", T0 + 2002, 9.0, AGRI_Q_OK, T0 + 2002), 1);
	CHECK_STR(summary(), "raised:warning");
	/* its own misbehaving alert is never refused */
	n_rec = 0;
	CHECK_INT(alert_engine_event(a, RULE_MISBEHAVING, "EVIL", 900, "sends too much",
				     "gửi quá nhiều", T0 + 3000, record, NULL), 1);
	CHECK_STR(rec[0].alert.id, "misbehaving/EVIL");
	CHECK(strstr(rec[0].alert.message, "Station EVIL sends too much") != NULL);
	alert_engine_free(a);
	rules_free(r);
}

/* Event alerts (misbehaving, clock, hub-storage): raised once however
 * many events, cleared after_s after the last one, kept across a restart,
 * acknowledgeable; a configured rule replaces the built-in one. */
static void test_event_alerts(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'clk','kind':'clock','after_s':60,"
				   "'severity':'alarm','notify':['ops']}]}");
	struct alert_engine *a = alert_engine_new(r), *b;
	struct blobs bl = {0};
	struct agri_alert al;

	CHECK(rules_find(r, "clock") == NULL); /* replaced by "clk" */
	CHECK(rules_find(r, "misbehaving") != NULL);
	alert_engine_set_undo(a, false);
	n_rec = 0;
	CHECK_INT(alert_engine_event(a, RULE_CLOCK, "DT-W01", 1.6e8, "stamps readings 5.0 years"
				     " ahead of the hub's clock", "…", T0, record, NULL), 1);
	CHECK_STR(summary(), "raised:alarm");
	CHECK_INT((int)rec[0].rule->n_notify, 1);
	CHECK_STR(rec[0].alert.id, "clk/DT-W01");
	CHECK_INT(rec[0].alert.has_threshold, 0);
	n_rec = 0;
	CHECK_INT(alert_engine_event(a, RULE_CLOCK, "DT-W01", 1.6e8, "again", "…", T0 + 50 * S,
				     record, NULL), 0);
	CHECK_INT(alert_engine_tick(a, T0 + 100 * S, record, NULL), 0); /* 50 s after the last */
	/* a restart keeps it open and the time of its last event */
	CHECK(alert_engine_export(a, false, save, &bl) > 0);
	b = alert_engine_new(r);
	for (int k = 0; k < bl.n; k++)
		CHECK_INT(alert_engine_import(b, bl.key[k], bl.blob[k], bl.len[k]), 0);
	blobs_free(&bl);
	CHECK_INT(alert_engine_get(b, "clk/DT-W01", &al), 0);
	n_rec = 0;
	CHECK_INT(alert_engine_tick(b, T0 + 111 * S, record, NULL), 1);
	CHECK_STR(summary(), "cleared:alarm");
	CHECK(strstr(rec[0].alert.message, "Cleared: Station DT-W01: clock in the window") != NULL);
	/* readings never feed event rules */
	CHECK_INT(feed(b, "DT-W01", "s", "salinity", T0, 1, AGRI_Q_OK, T0), 0);
	CHECK_INT(alert_engine_event(b, RULE_HUB, "bad id!", 1, "x", "x", T0, record, NULL), -EINVAL);
	alert_engine_free(a);
	alert_engine_free(b);
	rules_free(r);
}

/* A series retired from its station's budget: its keys without an open
 * alert are forgotten (and their saved state deleted); one with an open
 * alert stays. */
static void test_forget(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'hi','metric':'salinity','above':4},"
				   "{'id':'lo','metric':'salinity','below':0.1}]}");
	struct alert_engine *a = alert_engine_new(r);
	struct alert_engine_stats st;
	struct blobs bl = {0};

	alert_engine_set_undo(a, false);
	feed(a, "S1", "old", "salinity", T0, 1.0, AGRI_Q_OK, T0);
	feed(a, "S1", "hot", "salinity", T0, 5.0, AGRI_Q_OK, T0);
	alert_engine_stats(a, &st);
	CHECK_INT((int)st.keys, 5);
	CHECK_INT(alert_engine_forget(a, "S1", "old", "salinity", save, &bl), 2);
	CHECK_INT(bl.n, 2);
	CHECK(bl.n == 2 && bl.len[0] == 0 && strcmp(bl.key[0], "hi/S1/old") == 0);
	blobs_free(&bl);
	CHECK_INT(alert_engine_forget(a, "S1", "hot", "salinity", save, &bl), 1); /* "lo" only */
	blobs_free(&bl);
	alert_engine_stats(a, &st);
	CHECK_INT((int)st.keys, 2);
	CHECK(alert_engine_export(a, false, save, &bl) == 2); /* the lists hold no freed key */
	blobs_free(&bl);
	feed(a, "S1", "old", "salinity", T0 + 1, 5.0, AGRI_Q_OK, T0 + 1);
	CHECK_STR(summary(), "raised:warning");
	alert_engine_free(a);
	rules_free(r);
}

/* The channels a transition goes to: the rule's notify list when notify,
 * plus its escalation list when notify_escalation, each name once. */
static void test_transition_channels(void)
{
	struct rule rule;
	struct alert_transition tr;
	const char *names[16];

	memset(&rule, 0, sizeof(rule));
	memset(&tr, 0, sizeof(tr));
	rule.n_notify = 2;
	snprintf(rule.notify[0], sizeof(rule.notify[0]), "ops");
	snprintf(rule.notify[1], sizeof(rule.notify[1]), "mail");
	rule.n_escalate = 2;
	snprintf(rule.escalate[0], sizeof(rule.escalate[0]), "sms");
	snprintf(rule.escalate[1], sizeof(rule.escalate[1]), "ops");
	tr.rule = &rule;
	tr.notify = true;
	CHECK_INT((int)alert_transition_channels(&tr, names, 16), 2);
	tr.notify_escalation = true;
	CHECK_INT((int)alert_transition_channels(&tr, names, 16), 3); /* ops, mail, sms */
	CHECK_STR(names[2], "sms");
	tr.notify = false; /* ESCALATED: only the escalation list */
	CHECK_INT((int)alert_transition_channels(&tr, names, 16), 2);
	tr.notify_escalation = false;
	CHECK_INT((int)alert_transition_channels(&tr, names, 16), 0);
	tr.notify = true;
	CHECK_INT((int)alert_transition_channels(&tr, names, 1), 1); /* max */
}

/* A probe the station calls suspect with a reason (dry, stuck, full
 * scale...): the built-in sensor check raises after 3 in a row, says what
 * to check, clears on a good reading; suspect readings never raise or
 * clear the salinity alert; good probes get no key at all. */
static void test_sensor_check(void)
{
	struct rules *r = rules_of("{'rules':[{'id':'hi','metric':'salinity','above':4}]}");
	struct alert_engine *a = alert_engine_new(r);
	struct agri_reading rd = {.has_value = true, .q = AGRI_Q_OK};
	struct alert_engine_stats st;
	char got[600] = "";

	snprintf(rd.sensor, sizeof(rd.sensor), "sonde1");
	snprintf(rd.metric, sizeof(rd.metric), "salinity");
	for (int i = 0; i < 5; i++) { /* a good probe: its record and "hi" only */
		rd.ts_ms = T0 + i * MIN;
		rd.value = 3.0;
		CHECK_INT(alert_engine_reading(a, "DT-W02", &rd, rd.ts_ms, record, NULL), 0);
	}
	alert_engine_stats(a, &st);
	CHECK_INT((int)st.keys, 2);
	rd.value = 4.5; /* over the threshold: raised */
	rd.ts_ms = T0 + 10 * MIN;
	n_rec = 0;
	alert_engine_reading(a, "DT-W02", &rd, rd.ts_ms, record, NULL);
	CHECK_STR(summary(), "raised:warning");
	rd.q = AGRI_Q_SUSPECT;
	snprintf(rd.why, sizeof(rd.why), "full_scale");
	rd.value = 11.9;
	for (int i = 1; i <= 3; i++) {
		rd.ts_ms = T0 + (10 + i) * MIN;
		n_rec = 0;
		alert_engine_reading(a, "DT-W02", &rd, rd.ts_ms, record, NULL);
		if (i < 3)
			CHECK_STR(summary(), "");
	}
	CHECK_STR(summary(), "raised:warning");
	CHECK_STR(rec[0].alert.id, "sensor-check/DT-W02/sonde1");
	snprintf(got, sizeof(got), "%s", rec[0].message_en);
	CHECK(strstr(got, "at the probe's full scale") && strstr(got, "values are capped"));
	CHECK(strstr(rec[0].message_vi, "chạm ngưỡng tối đa") != NULL);
	rd.q = AGRI_Q_OK; /* good again: the check clears, the salinity alert stays */
	rd.why[0] = '\0';
	rd.value = 4.4;
	rd.ts_ms = T0 + 20 * MIN;
	n_rec = 0;
	alert_engine_reading(a, "DT-W02", &rd, rd.ts_ms, record, NULL);
	CHECK_STR(summary(), "cleared:warning");
	CHECK_STR(rec[0].alert.id, "sensor-check/DT-W02/sonde1");
	alert_engine_free(a);
	rules_free(r);
}

int main(void)
{
	test_transition_channels();
	test_sensor_check();
	test_threshold_hysteresis();
	test_threshold_below();
	test_threshold_hysteresis_zero();
	test_for_s();
	test_quality_never_raises();
	test_or_conditions();
	test_ladder();
	test_ladder_state_and_messages();
	test_window();
	test_window_cap();
	test_rate();
	test_peak();
	test_peak_morning();
	test_rising();
	test_rain_night();
	test_peak_message();
	test_no_data_station();
	test_no_data_sensor();
	test_no_data_offline_message_and_start();
	test_no_data_offline_two_hubs();
	test_quality();
	test_quality_message();
	test_ack_orders();
	test_renotify_escalate();
	test_escalation_flags();
	test_active_ranges();
	test_export_import();
	test_import_rejects();
	test_export_due();
	test_export_paced();
	test_rollback();
	test_text();
	test_template();
	test_bad_args();
	test_station_budgets();
	test_event_alerts();
	test_forget();
	return test_main("test_gateway_alert");
}
