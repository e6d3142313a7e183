/*
 * The people, wired into the gateway (see people.h): the policy's inputs
 * from the alerting callback and from the forecaster's committed tables,
 * its timers on the ingest tick, its messages into the outbox.
 * Locking rules: the struct is the writer thread's; the policy's counters
 * have their own mutex (policy_metrics_text from any thread).
 */
#include "notify/people.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/ingest.h"
#include "core/store.h"
#include "forecast/model.h"
#include "notify/outbox.h"
#include "gateway/policy.h"

#define LOG "notify"
#define PRUNE_EVERY_MS (3600 * 1000)

struct people {
	const struct gateway_config *cfg;
	struct store *st;
	struct policy *pol;
	struct ingest_hook hook;
	int64_t prune_mono;
	struct forecast_window *wbuf; /* FORECAST_WINDOWS_MAX */
};

/* --- messages into the outbox ------------------------------------------------ */

static int on_message(void *ctx, sqlite3 *db, const struct policy_message *m)
{
	struct people *pp = ctx;
	const struct gateway_config *cfg = pp->cfg;
	const struct recipient *r = m->person;
	struct outbox_route routes[3];
	struct outbox_message om = {.id = m->id, .person = r->name, .kind = m->kind,
				    .payload = m->payload, .text_en = m->text_en,
				    .text_vi = m->text_vi, .sms = m->sms};
	size_t n = 0;
	int rc;

	if (r->webhook[0])
		routes[n++] = (struct outbox_route){r->webhook, NULL};
	if (r->email[0] && cfg->notify.has_smtp)
		routes[n++] = (struct outbox_route){cfg->notify.smtp.name, r->email};
	if (r->sms[0] && cfg->notify.has_sms)
		routes[n++] = (struct outbox_route){cfg->notify.sms.name, r->sms};
	rc = outbox_stage_message(db, &om, routes, n);
	return rc < 0 ? rc : 0;
}

/* --- inputs ------------------------------------------------------------------- */

int people_on_transition(void *ctx, const struct alert_transition *t)
{
	struct people *pp = ctx;
	char *doc = NULL;
	int rc = policy_doc_alert(pp->pol, t, &doc);

	if (rc < 0)
		return rc;
	rc = policy_input(pp->pol, store_db(pp->st), doc, util_now_ms());
	free(doc);
	return rc == -EINVAL ? 0 : rc;
}

static int64_t time_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	int64_t ms = 0;

	if (cJSON_IsString(v))
		(void)agri_time_parse(v->valuestring, &ms);
	return ms;
}

static enum forecast_tide tide_of(const char *s)
{
	for (int t = FORECAST_TIDE_RISING; t <= FORECAST_TIDE_LOW; t++)
		if (s && forecast_tide_name((enum forecast_tide)t) &&
		    strcmp(s, forecast_tide_name((enum forecast_tide)t)) == 0)
			return (enum forecast_tide)t;
	return FORECAST_TIDE_UNKNOWN;
}

/* A forecast document (interfaces.md §13) as the policy's windows input. */
static int feed_forecast(struct people *pp, sqlite3 *db, const char *station, int64_t made_at,
			 const char *text, int64_t now)
{
	cJSON *d = cJSON_Parse(text), *w;
	char *doc = NULL;
	size_t n = 0;
	int rc;

	if (!d)
		return 0; /* not ours to judge: no windows from it */
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(d, "windows")) {
		const cJSON *below = cJSON_GetObjectItemCaseSensitive(w, "below");
		const cJSON *tide = cJSON_GetObjectItemCaseSensitive(w, "tide");

		if (n == FORECAST_WINDOWS_MAX || !cJSON_IsNumber(below))
			continue;
		pp->wbuf[n] = (struct forecast_window){
			.below = below->valuedouble, .from_ms = time_of(w, "from"),
			.to_ms = time_of(w, "to"),
			.sluice = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "sluice")),
			.tide = tide_of(cJSON_IsString(tide) ? tide->valuestring : NULL)};
		n++;
	}
	cJSON_Delete(d);
	if ((rc = policy_doc_windows(pp->pol, station, made_at, pp->wbuf, n, &doc)) < 0)
		return rc;
	rc = policy_input(pp->pol, db, doc, now);
	free(doc);
	return rc == -EINVAL ? 0 : rc;
}

static int meta_set(sqlite3 *db, const char *k, int64_t v)
{
	sqlite3_stmt *q;
	int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO notify_meta(k, v) VALUES(?, ?)",
				    -1, &q, NULL);

	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, k, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, v);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
}

/* Forecasts committed since the last look, each once (its made_at kept
 * as notify_meta "fc:<station>" in this transaction). */
static int poll_forecasts(struct people *pp, sqlite3 *db, int64_t now)
{
	struct { char station[AGRI_ID_MAX + 1]; int64_t made_at; char *doc; } due[16];
	sqlite3_stmt *q;
	size_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT f.station, f.made_at, f.doc FROM forecasts f"
				" WHERE f.metric = 'salinity' AND f.doc IS NOT NULL AND f.made_at >"
				" coalesce((SELECT v FROM notify_meta WHERE k = 'fc:' || f.station), 0)"
				" ORDER BY f.made_at LIMIT 16", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc == SQLITE_ERROR ? 0 : agri_sqlite_errno(rc); /* no forecasts table */
	while (sqlite3_step(q) == SQLITE_ROW && n < AGRI_ARRAY_SIZE(due)) {
		snprintf(due[n].station, sizeof(due[n].station), "%s", sqlite3_column_text(q, 0));
		due[n].made_at = sqlite3_column_int64(q, 1);
		due[n].doc = strdup((const char *)sqlite3_column_text(q, 2));
		n++;
	}
	sqlite3_finalize(q);
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		char k[sizeof(due[0].station) + 8];

		snprintf(k, sizeof(k), "fc:%.32s", due[i].station);
		if (rc >= 0 && due[i].doc)
			rc = feed_forecast(pp, db, due[i].station, due[i].made_at, due[i].doc, now);
		if (rc >= 0)
			rc = meta_set(db, k, due[i].made_at);
		free(due[i].doc);
	}
	return rc;
}

/* Advisories committed since the last look ("adv": their created_at). At
 * the very first start, those already there are history: recorded for the
 * bulletins, not announced. */
static int poll_advisories(struct people *pp, sqlite3 *db, int64_t now, bool history)
{
	sqlite3_stmt *q;
	int rc, n = 0;
	int64_t cursor = 0, last = 0;

	rc = sqlite3_prepare_v2(db, "SELECT v FROM notify_meta WHERE k = 'adv'", -1, &q, NULL);
	if (rc == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
		cursor = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	rc = sqlite3_prepare_v2(db, "SELECT id, station, peak_at, sow_from, sow_to, hatch_from,"
				" hatch_to, count, message, created_at FROM advisories WHERE"
				" created_at >= ? AND id NOT IN (SELECT id FROM notify_advice)"
				" ORDER BY created_at, id LIMIT 16", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc == SQLITE_ERROR ? 0 : agri_sqlite_errno(rc);
	sqlite3_bind_int64(q, 1, cursor);
	rc = 0;
	while (rc >= 0 && sqlite3_step(q) == SQLITE_ROW) {
		struct advisory a = {0};
		const char *msg = (const char *)sqlite3_column_text(q, 8);
		const char *sep = msg ? strstr(msg, " / ") : NULL;
		char vi[ADVISORY_MESSAGE_MAX] = "", *doc = NULL;

		snprintf(a.id, sizeof(a.id), "%s", sqlite3_column_text(q, 0));
		snprintf(a.station, sizeof(a.station), "%s", sqlite3_column_text(q, 1));
		a.peak_at_ms = sqlite3_column_int64(q, 2);
		a.sow_from_ms = sqlite3_column_int64(q, 3);
		a.sow_to_ms = sqlite3_column_int64(q, 4);
		a.hatch_from_ms = sqlite3_column_int64(q, 5);
		a.hatch_to_ms = sqlite3_column_int64(q, 6);
		last = sqlite3_column_int64(q, 9);
		snprintf(vi, sizeof(vi), "%.*s", sep ? (int)(sep - msg) : (int)strlen(msg ? msg : ""),
			 msg ? msg : "");
		rc = policy_doc_advisory(pp->pol, &a, sqlite3_column_double(q, 7),
					 sep ? sep + 3 : vi, vi, &doc);
		if (rc >= 0 && history) {
			/* mark it: recorded for bulletins, no message */
			char *h = NULL;
			cJSON *o = cJSON_Parse(doc);

			if (o) {
				cJSON_AddBoolToObject(o, "history", true);
				h = cJSON_PrintUnformatted(o);
				cJSON_Delete(o);
			}
			free(doc);
			doc = h;
			if (!doc)
				rc = -ENOMEM;
		}
		if (rc >= 0)
			rc = policy_input(pp->pol, db, doc, now);
		free(doc);
		n++;
	}
	sqlite3_finalize(q);
	if (rc >= 0 && n && last > cursor)
		rc = meta_set(db, "adv", last);
	return rc == -EINVAL ? 0 : rc;
}

/* --- the hook ------------------------------------------------------------------ */

static int on_tick(void *ctx, struct store *st, int64_t now)
{
	struct people *pp = ctx;
	sqlite3 *db = store_db(st);
	int64_t mono = util_mono_ms();
	int rc;

	if ((rc = poll_forecasts(pp, db, now)) < 0 || (rc = poll_advisories(pp, db, now, false)) < 0 ||
	    (rc = policy_advance(pp->pol, db, now)) < 0)
		return rc;
	if (!pp->prune_mono || mono - pp->prune_mono >= PRUNE_EVERY_MS) {
		pp->prune_mono = mono;
		if ((rc = policy_prune(pp->pol, db, now)) < 0)
			return rc;
	}
	return 0;
}

static void on_commit(void *ctx)
{
	struct people *pp = ctx;

	policy_commit(pp->pol);
}

static void on_rollback(void *ctx)
{
	struct people *pp = ctx;

	policy_rollback(pp->pol);
}

const struct ingest_hook *people_hook(struct people *pp)
{
	return &pp->hook;
}

int people_metrics_text(void *ctx, char *buf, size_t len)
{
	struct people *pp = ctx;

	return policy_metrics_text(pp->pol, buf, len);
}

/* --- life cycle ---------------------------------------------------------------- */

/* Each person's channels must exist in gateway.json. */
static int check_channels(const struct gateway_config *cfg, const struct recipients *r,
			  struct agri_err *e)
{
	for (size_t i = 0; i < r->n; i++) {
		const struct recipient *p = &r->v[i];
		char path[AGRI_ERR_PATH_MAX];
		bool found = !p->webhook[0];

		for (size_t k = 0; k < cfg->notify.n_webhooks && !found; k++)
			found = strcmp(cfg->notify.webhooks[k].name, p->webhook) == 0;
		if (!found) {
			snprintf(path, sizeof(path), "recipients[%zu].webhook", i);
			agri_err_set(e, path, "no webhook named \"%s\" in gateway.json", p->webhook);
			return -EINVAL;
		}
		if (p->email[0] && !cfg->notify.has_smtp) {
			snprintf(path, sizeof(path), "recipients[%zu].email", i);
			agri_err_set(e, path, "gateway.json has no notify.smtp channel to send it on");
			return -EINVAL;
		}
		if (p->sms[0] && !cfg->notify.has_sms) {
			snprintf(path, sizeof(path), "recipients[%zu].sms", i);
			agri_err_set(e, path, "gateway.json has no notify.sms channel to send it on");
			return -EINVAL;
		}
	}
	return 0;
}

struct people *people_new(const struct gateway_config *cfg, struct store *st,
			  struct agri_err *e, int *err)
{
	struct people *pp = calloc(1, sizeof(*pp));
	struct recipients *r = malloc(sizeof(*r));
	struct policy_site *sites = calloc(cfg->sites.n ? cfg->sites.n : 1, sizeof(*sites));
	sqlite3 *db = store_db(st);
	int rc = -ENOMEM;
	bool first;

	*err = 0;
	if (!pp || !r || !sites || !(pp->wbuf = calloc(FORECAST_WINDOWS_MAX, sizeof(*pp->wbuf)))) {
		agri_err_set(e, "", "out of memory");
		goto fail;
	}
	pp->cfg = cfg;
	pp->st = st;
	recipients_defaults(r);
	if (cfg->recipients_file[0] && (rc = recipients_load(cfg->recipients_file, r, e)) < 0)
		goto fail;
	if ((rc = check_channels(cfg, r, e)) < 0)
		goto fail;
	for (size_t i = 0; i < cfg->sites.n; i++) {
		snprintf(sites[i].station, sizeof(sites[i].station), "%s", cfg->sites.site[i].station);
		snprintf(sites[i].name, sizeof(sites[i].name), "%s", cfg->sites.site[i].name);
		snprintf(sites[i].district, sizeof(sites[i].district), "%s", cfg->sites.site[i].district);
	}
	pp->pol = policy_new(&(struct policy_options){.people = r, .sites = sites,
						       .n_sites = cfg->sites.n, .journal = true,
						       .on_message = on_message, .ctx = pp});
	if (!pp->pol) {
		rc = -ENOMEM;
		agri_err_set(e, "", "out of memory");
		goto fail;
	}
	if ((rc = outbox_init(db)) < 0 || (rc = policy_init(db)) < 0) {
		agri_err_set(e, "", "cannot create the notification tables: %s", sqlite3_errmsg(db));
		goto fail;
	}
	first = policy_clock(db) == 0;
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	rc = policy_publish_people(pp->pol, db);
	if (rc >= 0) { /* the sites as this start has them, for the preview */
		char *doc = NULL;

		rc = policy_doc_sites(pp->pol, &doc);
		if (rc >= 0)
			rc = policy_input(pp->pol, db, doc, util_now_ms());
		free(doc);
	}
	if (rc >= 0 && first)
		rc = poll_advisories(pp, db, util_now_ms(), true);
	sqlite3_exec(db, rc >= 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc < 0) {
		agri_err_set(e, "", "cannot write the notification tables: %s", strerror(-rc));
		goto fail;
	}
	pp->hook = (struct ingest_hook){
		.name = "people",
		.ctx = pp,
		.on_commit = on_commit,
		.on_rollback = on_rollback,
		.on_tick = on_tick,
	};
	log_info(LOG, "people=%zu recipients_file=%s group_wait_s=%lld", r->n,
		 cfg->recipients_file[0] ? cfg->recipients_file : "-",
		 (long long)(r->group_wait_ms / 1000));
	free(r);
	free(sites);
	return pp;
fail:
	*err = rc < 0 ? rc : -EINVAL;
	free(r);
	free(sites);
	people_free(pp);
	return NULL;
}

void people_free(struct people *pp)
{
	if (!pp)
		return;
	policy_free(pp->pol);
	free(pp->wbuf);
	free(pp);
}
