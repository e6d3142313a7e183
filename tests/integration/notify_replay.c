/*
 * agri-notify-replay: simulated days through the gateway's own alert
 * engine, forecast model and notification policy (the acceptance replay
 * of issue 29, run by test_notify_replay.py). Reads readings
 * "station,sensor,metric,ts,value" in time order; the ones before --live
 * are history (stored, fed to the engine, nobody told); from --live on,
 * each reading is stored and evaluated at its own time, the forecasts are
 * refitted every --refit-h hours, and every transition goes both to
 * "today's behaviour" (counted: one message a transition a rule's channel
 * gets, plus the forecaster's new-window and advisory notices) and to the
 * policy, whose messages are written out.
 *
 *   agri-notify-replay --readings CSV --rules RULES --recipients FILE
 *       --sites SITES.json --db FILE --live RFC3339 --end RFC3339
 *       [--refit-h 3] --out DIR
 *
 * DIR/messages.jsonl (the policy's messages, payload and SMS), DIR/baseline
 * .jsonl (one line a message today's behaviour would send: kind, at),
 * DIR/forecasts.jsonl (each refit's windows). Exit 0, 1 on a failure,
 * 2 on a bad command line.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/time.h"
#include "agri/util.h"
#include "alerts/alert.h"
#include "core/store.h"
#include "forecast/model.h"
#include "gateway/rules.h"
#include "gateway/policy.h"
#include "gateway/recipients.h"

#define HOUR_MS 3600000LL
#define SITES_MAX 64

struct run {
	struct store *st;
	struct policy *pol;
	struct alert_engine *eng;
	bool live;
	int64_t now;
	FILE *msgs, *base, *fcs;
	int err;
	struct advisory_params adv;
	/* the forecaster's "new window" notices (worker.c notify_new_windows) */
	struct { char station[33]; size_t n; struct forecast_window w[FORECAST_WINDOWS_MAX]; } prev[SITES_MAX];
	size_t n_prev;
};

static int on_message(void *ctx, sqlite3 *db, const struct policy_message *m)
{
	struct run *r = ctx;
	cJSON *o = cJSON_Parse(m->payload);
	char *s;

	(void)db;
	if (!o)
		return -EINVAL;
	cJSON_AddNumberToObject(o, "at_ms", (double)m->at_ms);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return -ENOMEM;
	fprintf(r->msgs, "%s\n", s);
	free(s);
	return 0;
}

static void baseline(struct run *r, const char *kind, const char *what, const char *station)
{
	fprintf(r->base, "{\"kind\":\"%s\",\"what\":\"%s\",\"station\":\"%s\",\"at_ms\":%lld}\n", kind,
		what, station, (long long)r->now);
}

static void input(struct run *r, char *doc)
{
	int rc;

	if (!doc) {
		r->err = -ENOMEM;
		return;
	}
	rc = policy_input(r->pol, store_db(r->st), doc, r->now);
	free(doc);
	if (rc < 0 && !r->err)
		r->err = rc;
}

static void on_transition(void *ctx, const struct alert_transition *t)
{
	struct run *r = ctx;
	char *doc = NULL;
	size_t n;
	const char *names[2 * RULE_CHANNELS_MAX];

	if (!r->live)
		return;
	/* today: one message a channel the rule names, for each transition */
	n = t->notify || t->notify_escalation ? alert_transition_channels(t, names, AGRI_ARRAY_SIZE(names)) : 0;
	for (size_t i = 0; i < n; i++)
		baseline(r, "alert", alert_event_name(t->event), t->alert.station);
	if (t->notify && policy_doc_alert(r->pol, t, &doc) == 0)
		input(r, doc);
	if (t->event == ALERT_EV_RAISED && t->night_day >= 0) {
		struct advisory a;
		int64_t peak_at = t->night_day * 86400000LL + 18 * HOUR_MS - 7 * HOUR_MS;

		if (advisory_make(t->alert.station, peak_at, &r->adv, &a) == 0) {
			baseline(r, "advisory", "advisory", t->alert.station);
			if (policy_doc_advisory(r->pol, &a, t->alert.value, "Planthopper peak",
						"Đỉnh rầy nâu", &doc) == 0)
				input(r, doc);
		}
	}
}

/* --- forecasts ---------------------------------------------------------------- */

static int load(struct run *r, const char *station, struct forecast_sample *s, size_t max,
		size_t *n)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(store_db(r->st),
				    "SELECT r.ts, r.value FROM readings r JOIN series se ON se.id = r.series_id"
				    " JOIN stations st ON st.id = se.station_id WHERE st.name = ? AND"
				    " se.metric = 'salinity' AND r.q = 0 AND r.ts > ? AND r.ts <= ? ORDER BY r.ts",
				    -1, &q, NULL);

	*n = 0;
	if (rc != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, r->now - 30 * 86400000LL);
	sqlite3_bind_int64(q, 3, r->now);
	while (sqlite3_step(q) == SQLITE_ROW && *n < max) {
		s[*n].ts_ms = sqlite3_column_int64(q, 0);
		s[*n].value = sqlite3_column_double(q, 1);
		(*n)++;
	}
	sqlite3_finalize(q);
	return 0;
}

static void refit(struct run *r, const char *station, struct forecast_sample *buf,
		  struct forecast *fc)
{
	struct forecast_params p;
	char why[FORECAST_WHY_MAX], *doc = NULL;
	size_t n = 0, k;
	int64_t made = r->now;

	forecast_params_default(&p);
	if (load(r, station, buf, FORECAST_SAMPLES_MAX, &n) < 0 || n == 0 ||
	    forecast_fit(buf, n, &p, fc, why, sizeof(why)) < 0 || forecast_windows(fc, &p) < 0)
		return;
	/* today: the forecaster tells the next window of each threshold that
	 * overlaps none of the previous forecast's */
	for (k = 0; k < r->n_prev && strcmp(r->prev[k].station, station); k++)
		;
	if (k == r->n_prev && r->n_prev < SITES_MAX)
		snprintf(r->prev[r->n_prev++].station, sizeof(r->prev[0].station), "%.32s", station);
	if (k < r->n_prev) {
		double told = -1;

		for (size_t i = 0; i < fc->n_windows; i++) {
			const struct forecast_window *w = &fc->windows[i];
			bool seen = false;

			if (i > 0 && fc->windows[i - 1].below == w->below && told == w->below)
				continue;
			for (size_t j = 0; j < r->prev[k].n && !seen; j++)
				seen = r->prev[k].w[j].below == w->below && r->prev[k].w[j].from_ms < w->to_ms &&
				       r->prev[k].w[j].to_ms > w->from_ms;
			if (seen)
				continue;
			baseline(r, "window", "intake-window", station);
			told = w->below;
		}
		r->prev[k].n = fc->n_windows;
		memcpy(r->prev[k].w, fc->windows, fc->n_windows * sizeof(fc->windows[0]));
	}
	fprintf(r->fcs, "{\"station\":\"%s\",\"made_at\":%lld,\"windows\":[", station, (long long)made);
	for (size_t i = 0; i < fc->n_windows; i++)
		fprintf(r->fcs, "%s{\"below\":%g,\"from\":%lld,\"to\":%lld}", i ? "," : "",
			fc->windows[i].below, (long long)fc->windows[i].from_ms,
			(long long)fc->windows[i].to_ms);
	fprintf(r->fcs, "]}\n");
	if (policy_doc_windows(r->pol, station, made, fc->windows, fc->n_windows, &doc) == 0)
		input(r, doc);
}

/* --- main ------------------------------------------------------------------------- */

static int read_sites(const char *path, struct policy_site *s, size_t *n)
{
	char *buf = NULL;
	size_t len = 0;
	cJSON *root, *e;

	*n = 0;
	if (util_read_file(path, 1 << 20, &buf, &len) < 0)
		return -1;
	root = cJSON_Parse(buf);
	free(buf);
	cJSON_ArrayForEach(e, root) {
		cJSON *name = cJSON_GetObjectItem(e, "name"), *d = cJSON_GetObjectItem(e, "district");

		if (*n == SITES_MAX)
			break;
		snprintf(s[*n].station, sizeof(s[0].station), "%s", e->string);
		snprintf(s[*n].name, sizeof(s[0].name), "%s", cJSON_IsString(name) ? name->valuestring : "");
		snprintf(s[*n].district, sizeof(s[0].district), "%s", cJSON_IsString(d) ? d->valuestring : "");
		(*n)++;
	}
	cJSON_Delete(root);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"readings", 1, 0, 'r'}, {"rules", 1, 0, 'R'}, {"recipients", 1, 0, 'p'},
		{"sites", 1, 0, 's'}, {"db", 1, 0, 'd'}, {"live", 1, 0, 'l'}, {"end", 1, 0, 'e'},
		{"refit-h", 1, 0, 'f'}, {"out", 1, 0, 'o'}, {0}};
	const char *csv = NULL, *rules_path = NULL, *people_path = NULL, *sites_path = NULL;
	const char *db_path = NULL, *out = NULL;
	const char *channels[] = {"agronomists"};
	static struct recipients people;
	static struct policy_site sites[SITES_MAX];
	struct forecast_sample *buf = malloc(FORECAST_SAMPLES_MAX * sizeof(*buf));
	struct forecast *fc = malloc(sizeof(*fc));
	struct run r = {0};
	struct rules *rules;
	struct agri_err e = {0};
	struct store_options so = {0};
	int64_t live = 0, end = 0, refit_h = 3, next_refit, next_commit = 0, next_tick = 0;
	char line[512], path[4096];
	size_t n_sites = 0;
	FILE *in;
	int c, err = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': csv = optarg; break;
		case 'R': rules_path = optarg; break;
		case 'p': people_path = optarg; break;
		case 's': sites_path = optarg; break;
		case 'd': db_path = optarg; break;
		case 'l': if (agri_time_parse(optarg, &live)) return 2; break;
		case 'e': if (agri_time_parse(optarg, &end)) return 2; break;
		case 'f': refit_h = atoi(optarg); break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	if (!csv || !rules_path || !people_path || !sites_path || !db_path || !out || !live || !end ||
	    refit_h < 1 || !buf || !fc) {
		fprintf(stderr, "usage: agri-notify-replay --readings CSV --rules F --recipients F"
			" --sites F --db F --live T --end T [--refit-h 3] --out DIR\n");
		return 2;
	}
	rules = rules_load(rules_path, channels, 1, &e);
	if (!rules || recipients_load(people_path, &people, &e) < 0 ||
	    read_sites(sites_path, sites, &n_sites) < 0) {
		fprintf(stderr, "agri-notify-replay: %s: %s\n", e.path, e.msg);
		return 1;
	}
	r.st = store_open(db_path, &so, &err);
	if (!r.st || policy_init(store_db(r.st)) < 0) {
		fprintf(stderr, "agri-notify-replay: cannot open %s\n", db_path);
		return 1;
	}
	r.pol = policy_new(&(struct policy_options){.people = &people, .sites = sites,
						    .n_sites = n_sites, .journal = true,
						    .on_message = on_message, .ctx = &r});
	r.eng = alert_engine_new(rules);
	advisory_params_default(&r.adv);
	snprintf(path, sizeof(path), "%s/messages.jsonl", out);
	r.msgs = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/baseline.jsonl", out);
	r.base = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/forecasts.jsonl", out);
	r.fcs = fopen(path, "w");
	in = fopen(csv, "r");
	if (!r.pol || !r.eng || !r.msgs || !r.base || !r.fcs || !in) {
		fprintf(stderr, "agri-notify-replay: cannot start\n");
		return 1;
	}
	alert_engine_set_undo(r.eng, false);
	alert_engine_start(r.eng, 0);
	next_refit = live;
	store_begin(r.st);
	while (fgets(line, sizeof(line), in) && !r.err) {
		char *f[5], *save = NULL, *tok = strtok_r(line, ",\n", &save);
		struct agri_reading rd = {0};
		int k = 0;

		for (; tok && k < 5; tok = strtok_r(NULL, ",\n", &save))
			f[k++] = tok;
		if (k < 5 || agri_time_parse(f[3], &rd.ts_ms) < 0)
			continue; /* the header */
		if (rd.ts_ms >= end)
			break;
		r.now = rd.ts_ms;
		if (!r.live && rd.ts_ms >= live) {
			char *doc = NULL;

			r.live = true;
			if (policy_doc_sites(r.pol, &doc) == 0)
				input(&r, doc); /* as the gateway journals them at start */
		}
		/* the refits due before this reading, at their own times */
		while (r.live && next_refit <= rd.ts_ms) {
			r.now = next_refit;
			for (size_t i = 0; i < n_sites; i++)
				if (strncmp(sites[i].station, "DT-W", 4) == 0)
					refit(&r, sites[i].station, buf, fc);
			next_refit += refit_h * HOUR_MS;
		}
		r.now = rd.ts_ms;
		snprintf(rd.sensor, sizeof(rd.sensor), "%s", f[1]);
		snprintf(rd.metric, sizeof(rd.metric), "%s", f[2]);
		rd.value = strtod(f[4], NULL);
		rd.has_value = true;
		rd.q = AGRI_Q_OK;
		if (store_put_reading(r.st, f[0], &rd, r.now) < 0) {
			fprintf(stderr, "agri-notify-replay: cannot store\n");
			return 1;
		}
		if (alert_engine_reading(r.eng, f[0], &rd, r.now, on_transition, &r) < 0)
			r.err = -EIO;
		if (r.live && r.now >= next_tick) { /* the gateway's tick, every simulated minute */
			if (policy_advance(r.pol, store_db(r.st), r.now) < 0)
				r.err = -EIO;
			next_tick = r.now + 60000;
		}
		if (r.now >= next_commit) {
			store_commit(r.st);
			store_begin(r.st);
			next_commit = r.now + HOUR_MS;
		}
	}
	r.now = end;
	if (!r.err && policy_advance(r.pol, store_db(r.st), end) < 0)
		r.err = -EIO;
	store_commit(r.st);
	fclose(in);
	fclose(r.msgs);
	fclose(r.base);
	fclose(r.fcs);
	alert_engine_free(r.eng);
	policy_free(r.pol);
	store_close(r.st);
	rules_free(rules);
	free(buf);
	free(fc);
	if (r.err) {
		fprintf(stderr, "agri-notify-replay: failed: %s\n", strerror(-r.err));
		return 1;
	}
	return 0;
}
