/*
 * The composition root (see gateway.h): gateway_new() builds every room
 * the config asks for — the store, the ingest and the broker link (core),
 * the alert engine (alerts), the notification channels and their outbox
 * (notify), the forwarders (upstream), the forecasts (forecast) and the
 * HTTP API (http) — and wires them through the ingest's hooks; this file
 * is the one that includes them all (gateway/src/README.md). Then the main
 * thread's loop: reconnects, WAL checkpoints, the hub's status, stats.
 *
 * Shutdown order: the HTTP API and the forecaster stop taking work; the
 * ingest stops taking messages, commits its queue and sends the acks;
 * the broker disconnects, keeping the session (a message refused in
 * between was PUBACKed by paho but never acked end to end: its station
 * resends it); then the forwarders and the notifiers finish.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "alerts/alerting.h"
#include "core/backup.h"
#include "core/broker.h"
#include "core/calibration.h"
#include "core/catchup.h"
#include "core/drift.h"
#include "core/health.h"
#include "core/hubs.h"
#include "core/import.h"
#include "core/ingest.h"
#include "core/store.h"
#include "forecast/forecasting.h"
#include "http/http.h"
#include "notify/claims.h"
#include "notify/notify.h"
#include "notify/outbox.h"
#include "notify/people.h"
#include "upstream/upstream.h"

#define LOG "gateway"
#define TICK_MS 100
#define CHECKPOINT_EVERY_MS 1000
#define STATS_EVERY_MS 60000
#define HUB_STATUS_EVERY_MS 60000
#define STOP_INGEST_MS 3500 /* of the 5 s a SIGTERM allows */

struct gateway {
	const struct gateway_config *cfg;
	enum gateway_mode mode;
	struct gateway_health health;
	/* core */
	struct store *store;
	struct ingest *ingest;
	struct broker *broker;
	struct hubs *hubs; /* the province's hubs as heard here (live only) */
	/* the rooms above it, each NULL when the config has none */
	struct alerting *alerts;
	struct notify_channel *chans[NOTIFY_CHANNELS_MAX];
	size_t n_chans;
	struct outbox *outbox;
	struct ingest_hook outbox_hook;
	struct claims *claims; /* ha: notification claims; NULL = none */
	struct catchup *catchup; /* ha: catch-up with the other hub; NULL = none */
	struct people *people; /* the recipients file's policy (live only) */
	struct upstream *up;
	struct forecasting *fc;
	struct calibration *cal; /* "calibration due" (live only) */
	struct drift *drift;     /* probes that drift against their neighbours (live only) */
	struct http_server *http;
	struct backup_sched *backup; /* scheduled backups; NULL: none */
	bool started, broker_started, stopped;
	bool hub_alarm_sent; /* the alarm state last published */
	int64_t next_hub_status;
};

/* --- core: store, ingest, broker ------------------------------------------ */

/* The ingest's ack publisher: through the broker, once it exists. */
static int publish(void *ctx, const char *topic, const void *payload, size_t len,
		   bool retained, struct ingest_sent *sent)
{
	struct gateway *gw = ctx;

	return gw->broker ? broker_publish(gw->broker, topic, payload, len, retained, sent)
			  : -ENOTCONN;
}

/* paho's thread: the other hub's catch-up (ha) to its thread, a hub's
 * status to the hubs' registry (and with ha to the claims), never to the
 * ingest: it is no station's; the rest to the ingest. */
static int offer(void *ctx, const char *topic, size_t topic_len,
		 const void *payload, size_t len)
{
	struct gateway *gw = ctx;

	if (gw->catchup && catchup_offer(gw->catchup, topic, topic_len, payload, len))
		return 1;
	if (hubs_offer(gw->hubs, topic, topic_len, payload, len)) {
		if (gw->claims)
			claims_hub_status(gw->claims, payload, len);
		return 1;
	}
	return ingest_offer(gw->ingest, topic, topic_len, payload, len);
}

static int build_core(struct gateway *gw, char *why, size_t why_len)
{
	const struct gateway_config *cfg = gw->cfg;
	struct store_options so = {
		.sync_full = cfg->db.sync_full,
		.track_gaps = cfg->broker.shared_group[0] == '\0',
		.cache_kib = (int)cfg->db.cache_kib,
		.series_max = (int)cfg->limits.series_per_station,
		.series_idle_days = (int)cfg->limits.series_idle_days,
		.dead_bytes_max = cfg->dead_letters.max_mb * 1024 * 1024,
		.dead_payload_max = (size_t)cfg->dead_letters.payload_max_kib * 1024,
	};
	struct ingest_options io = {
		.topic_prefix = cfg->broker.topic_prefix,
		.queue_max = (size_t)cfg->db.queue_max,
		.batch_max = (size_t)cfg->db.batch_max,
		.retention_days = (int)cfg->db.retention_days,
		.hub_id = cfg->broker.client_id,
		.readings_per_min = cfg->limits.readings_per_min,
		.messages_per_min = cfg->limits.messages_per_min,
		.bytes_per_min = cfg->limits.kib_per_min * 1024,
		.dead_letters_per_min = cfg->limits.dead_letters_per_min,
		.clock_skew_ms = cfg->limits.max_clock_skew_s * 1000,
		.backlog_ms = cfg->limits.max_backlog_days * 86400000,
		.dead_max_age_ms = cfg->dead_letters.max_age_days * 86400000,
	};
	struct ingest_publisher pub = {.publish = publish, .ctx = gw};
	int err = 0;

	atomic_store(&gw->health.db_writable, true);
	gw->store = store_open(cfg->db.path, &so, &err);
	if (!gw->store) {
		util_why(why, why_len, "cannot open the database %s: %s", cfg->db.path,
			err == -EPROTO ? "written by a newer agri-gateway" : strerror(-err));
		return err;
	}
	gw->ingest = ingest_new(gw->store, &io, &pub, &gw->health);
	if (gw->ingest && gw->mode == GATEWAY_LIVE && (gw->hubs = hubs_new(cfg)) != NULL)
		gw->broker = broker_new(cfg, &gw->health, offer, gw);
	if (!gw->ingest || (gw->mode == GATEWAY_LIVE && !gw->broker)) {
		util_why(why, why_len, "out of memory");
		return -ENOMEM;
	}
	if (gw->mode == GATEWAY_LIVE && !(gw->catchup = catchup_new(cfg, gw->ingest, &pub, &err)) &&
	    err < 0) {
		util_why(why, why_len, "cannot set up the catch-up: %s", strerror(-err));
		return err;
	}
	return gw->hubs ? ingest_add_hook(gw->ingest, hubs_hook(gw->hubs)) : 0;
}

/* --- the rooms above the core ------------------------------------------------ */

/* The alert engine, when there is a rules file (quiet on an import). */
static int build_alerts(struct gateway *gw, char *why, size_t why_len)
{
	struct agri_err e = {0};
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int rc = 0;

	if (!gw->cfg->rules_file[0])
		return 0;
	gw->alerts = alerting_new(gw->cfg, gw->store, gw->ingest, &e, &rc);
	if (!gw->alerts) {
		agri_err_format(&e, msg, sizeof(msg));
		util_why(why, why_len, "%s: %s", gw->cfg->rules_file, msg);
		return rc < 0 ? rc : -EINVAL;
	}
	alerting_set_quiet(gw->alerts, gw->mode == GATEWAY_IMPORT);
	return ingest_add_hook(gw->ingest, alerting_hook(gw->alerts));
}

/* The notification channels and their outbox (live only). */
static int build_notify(struct gateway *gw, char *why, size_t why_len)
{
	struct outbox_channel oc[NOTIFY_CHANNELS_MAX];
	struct outbox_options oo = {.sync_full = gw->cfg->db.sync_full};
	int n, rc = 0;

	/* ha: claims before sending (docs/ha.md); made even without channels,
	 * the hub status carries its fields */
	gw->claims = claims_new(gw->cfg, &rc);
	if (!gw->claims && rc < 0) {
		util_why(why, why_len, "cannot set up notification claims: %s", strerror(-rc));
		return rc;
	}
	oo.claims = gw->claims;
	n = notify_channels_new(gw->cfg, NOTIFY_TIMEOUT_MS_DEFAULT, gw->chans,
				NOTIFY_CHANNELS_MAX);

	if (n < 0) {
		util_why(why, why_len, "cannot set up the notification channels: %s", strerror(-n));
		return n;
	}
	gw->n_chans = (size_t)n;
	if (!gw->n_chans)
		return 0;
	for (size_t i = 0; i < gw->n_chans; i++)
		oc[i] = (struct outbox_channel){.name = notify_channel_name(gw->chans[i]),
						.deliver = notify_outbox_deliver, .ctx = gw->chans[i]};
	gw->outbox = outbox_new(gw->cfg->db.path, oc, gw->n_chans, &oo, &rc);
	if (!gw->outbox) {
		util_why(why, why_len, "cannot open the outbox: %s", strerror(-rc));
		return rc;
	}
	outbox_hook(gw->outbox, &gw->outbox_hook);
	return ingest_add_hook(gw->ingest, &gw->outbox_hook);
}

/* The forwarders (live only; none configured: NULL). */
static int build_upstream(struct gateway *gw, char *why, size_t why_len)
{
	int rc = 0;

	gw->up = upstream_new(gw->cfg, &rc);
	if ((!gw->up && rc < 0) || (gw->up && (rc = ingest_add_hook(gw->ingest,
								   upstream_hook(gw->up))) < 0)) {
		util_why(why, why_len, "cannot start the upstream forwarders: %s", strerror(-rc));
		return rc;
	}
	/* ha: SensorThings forwarding is claimed like notifications */
	upstream_set_claims(gw->up, gw->claims);
	return 0;
}

/* The forecasts (on unless the config turns them off). */
static int build_forecast(struct gateway *gw, char *why, size_t why_len)
{
	int rc = 0;

	gw->fc = forecasting_new(gw->cfg, gw->ingest, &rc);
	if (!gw->fc) {
		if (rc < 0)
			util_why(why, why_len, "cannot set up forecasts: %s", strerror(-rc));
		return rc;
	}
	if ((rc = forecasting_attach(gw->fc, gw->store)) < 0) {
		util_why(why, why_len, "cannot set up forecasts: %s", strerror(-rc));
		return rc;
	}
	forecasting_set_quiet(gw->fc, gw->mode == GATEWAY_IMPORT);
	if (gw->alerts)
		alerting_on_peak(gw->alerts, forecasting_on_peak, gw->fc);
	return ingest_add_hook(gw->ingest, forecasting_hook(gw->fc));
}

/* The calibrations table and the "calibration due" check (live only: an
 * import must not raise today's alerts). */
static int build_calibration(struct gateway *gw, char *why, size_t why_len)
{
	int rc = 0;

	gw->cal = calibration_new(gw->cfg, gw->store, gw->ingest, &rc);
	if (!gw->cal) {
		util_why(why, why_len, "cannot set up the calibrations table: %s", strerror(-rc));
		return rc;
	}
	return ingest_add_hook(gw->ingest, calibration_hook(gw->cal));
}

/* Probes that drift against their neighbours (live only: after the
 * calibrations table, which ends a flag). */
static int build_drift(struct gateway *gw, char *why, size_t why_len)
{
	int rc = 0;

	gw->drift = drift_new(gw->cfg, gw->store, &rc);
	if (!gw->drift) {
		util_why(why, why_len, "cannot set up the drift_flags table: %s", strerror(-rc));
		return rc;
	}
	return ingest_add_hook(gw->ingest, drift_hook(gw->drift));
}

/* The people and their policy (live only): after the forecaster, whose
 * tables it reads. */
static int build_people(struct gateway *gw, char *why, size_t why_len)
{
	struct agri_err e = {0};
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int rc = 0;

	gw->people = people_new(gw->cfg, gw->store, &e, &rc);
	if (!gw->people) {
		agri_err_format(&e, msg, sizeof(msg));
		util_why(why, why_len, "%s: %s", gw->cfg->recipients_file[0] ? gw->cfg->recipients_file
					       : "recipients", msg);
		return rc < 0 ? rc : -EINVAL;
	}
	if (gw->alerts)
		alerting_on_notice(gw->alerts, people_on_transition, gw->people);
	return ingest_add_hook(gw->ingest, people_hook(gw->people));
}

struct gateway *gateway_new(const struct gateway_config *cfg, enum gateway_mode mode, int *err,
			    char *why, size_t why_len)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
	int rc;

	if (!gw) {
		util_why(why, why_len, "out of memory");
		*err = -ENOMEM;
		return NULL;
	}
	gw->cfg = cfg;
	gw->mode = mode;
	if ((rc = build_core(gw, why, why_len)) < 0 || (rc = build_alerts(gw, why, why_len)) < 0 ||
	    (mode == GATEWAY_LIVE && ((rc = build_notify(gw, why, why_len)) < 0 ||
				      (rc = build_upstream(gw, why, why_len)) < 0 ||
				      (rc = build_calibration(gw, why, why_len)) < 0 ||
				      (rc = build_drift(gw, why, why_len)) < 0)) ||
	    (rc = build_forecast(gw, why, why_len)) < 0 ||
	    (mode == GATEWAY_LIVE && (rc = build_people(gw, why, why_len)) < 0)) {
		*err = rc;
		gateway_free(gw);
		return NULL;
	}
	return gw;
}

/* --- the HTTP API's view of the rooms -------------------------------------- */

static int ack_alert(void *ctx, const char *id, const char *who, struct http_ack_result *res)
{
	struct gateway *gw = ctx;

	return gw->alerts ? alerting_ack(gw->alerts, id, who, res) : -ENOENT;
}

/* /metrics beyond the ingest counters: engine, outbox, forwarders. */
static int metrics(void *ctx, char *buf, size_t len)
{
	struct gateway *gw = ctx;
	size_t pos = 0;
	int n;

	if (gw->alerts && (n = alerting_metrics_text(gw->alerts, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (gw->outbox && (n = outbox_metrics_text(gw->outbox, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (gw->claims && (n = claims_metrics_text(gw->claims, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (gw->catchup && (n = catchup_metrics_text(gw->catchup, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (gw->people && (n = people_metrics_text(gw->people, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (gw->up && (n = upstream_metrics_text(gw->up, buf + pos, len - pos)) > 0 &&
	    (size_t)n < len - pos)
		pos += (size_t)n;
	return (int)pos;
}

static int forecast_doc(void *ctx, const char *station, const char *metric, char *buf,
			size_t len)
{
	struct gateway *gw = ctx;

	return forecasting_http(gw->fc, station, metric, buf, len);
}

static int hubs_doc(void *ctx, char *buf, size_t len)
{
	struct gateway *gw = ctx;

	return hubs_json(gw->hubs, util_now_ms(), buf, len);
}

/* Retained state the broker may have lost, on every (re)connect. */
static void republish(struct gateway *gw)
{
	if (gw->alerts)
		alerting_republish(gw->alerts);
	if (gw->fc)
		forecasting_republish(gw->fc);
}

/* --- start, import --------------------------------------------------------- */

int gateway_start(struct gateway *gw, char *why, size_t why_len)
{
	int rc;

	if (gw->mode != GATEWAY_LIVE)
		return -EINVAL;
	if ((rc = ingest_start(gw->ingest)) < 0) {
		util_why(why, why_len, "cannot start the ingest: %s", strerror(-rc));
		return rc;
	}
	gw->started = true;
	gw->broker_started = true;
	log_info(LOG, "started db=%s synchronous=%s shared_group=%s", gw->cfg->db.path,
		 gw->cfg->db.sync_full ? "full" : "normal",
		 gw->cfg->broker.shared_group[0] ? gw->cfg->broker.shared_group : "-");
	if ((rc = broker_start(gw->broker)) < 0 ||
	    (gw->outbox && (rc = outbox_start(gw->outbox)) < 0) ||
	    (rc = upstream_start(gw->up)) < 0 || (gw->fc && (rc = forecasting_start(gw->fc)) < 0) ||
	    (rc = catchup_start(gw->catchup)) < 0) {
		util_why(why, why_len, "cannot start: %s", strerror(-rc));
		return rc;
	}
	/* Scheduled backups (backup.dir): a failure is logged, never fatal. */
	if ((gw->backup = backup_sched_new(gw->cfg)) && backup_sched_start(gw->backup) < 0) {
		backup_sched_free(gw->backup);
		gw->backup = NULL;
	}
	if (gw->cfg->http.enabled) {
		struct http_hooks hooks = {.ctx = gw, .ack_alert = ack_alert, .metrics = metrics,
					   .forecast = gw->fc ? forecast_doc : NULL,
					   .hubs = hubs_doc};

		gw->http = http_start(gw->cfg, &gw->health, &hooks, &rc);
		if (!gw->http) {
			util_why(why, why_len, "cannot serve HTTP on %s: %s", gw->cfg->http.listen,
				strerror(-rc));
			return rc;
		}
	}
	return 0;
}

long gateway_import(struct gateway *gw, const char *file, char *msg, size_t len)
{
	int rc;

	if (gw->mode != GATEWAY_IMPORT)
		return -EINVAL;
	if ((rc = ingest_start(gw->ingest)) < 0) {
		util_why(msg, len, "cannot start: %s", strerror(-rc));
		return rc;
	}
	gw->started = true;
	return import_csv(gw->ingest, file, msg, len);
}

/* --- the main thread --------------------------------------------------------- */

static void log_stats(struct gateway *gw)
{
	struct gateway_health *h = &gw->health;

	log_info(LOG, "stats received=%llu stored=%llu duplicates=%llu dead_letters=%llu"
		 " acks=%llu ack_failures=%llu commits=%llu commit_failures=%llu connected=%d db_writable=%d",
		 (unsigned long long)atomic_load(&h->received),
		 (unsigned long long)atomic_load(&h->readings_stored),
		 (unsigned long long)atomic_load(&h->readings_duplicate),
		 (unsigned long long)atomic_load(&h->dead_letters),
		 (unsigned long long)atomic_load(&h->acks_sent),
		 (unsigned long long)atomic_load(&h->ack_failures),
		 (unsigned long long)atomic_load(&h->commits),
		 (unsigned long long)atomic_load(&h->commit_failures),
		 (int)atomic_load(&h->connected), (int)atomic_load(&h->db_writable));
}

/*
 * The hub's own retained status, <prefix>/hub/<client id>/status
 * (docs/gateway.md, Hub status): published when it connects, when the
 * hub alarm changes and every minute, so technicians watching MQTT see a
 * hub that cannot store before they see its silence.
 */
static void hub_status(struct gateway *gw, bool force)
{
	struct gateway_health *h = &gw->health;
	bool alarm = atomic_load(&h->hub_alarm);
	int64_t now = util_mono_ms();
	char topic[AGRI_TOPIC_MAX + 80], since[32] = "", ts[32], body[4608], ha[384] = "";
	char hubs[3072] = ""; /* station_url and newest_by_url: HUBS_URLS_MAX of them */
	int n;

	if (!force && alarm == gw->hub_alarm_sent && now < gw->next_hub_status)
		return;
	if (!atomic_load(&h->connected))
		return;
	agri_time_format(util_now_ms(), ts, sizeof(ts));
	if (alarm)
		agri_time_format(atomic_load(&h->hub_alarm_since_ms), since, sizeof(since));
	snprintf(topic, sizeof(topic), "%s/hub/%s/status", gw->cfg->broker.topic_prefix,
		 gw->cfg->broker.client_id);
	if (gw->claims && claims_status_fields(gw->claims, ha, sizeof(ha)) < 0)
		ha[0] = '\0';
	if (gw->catchup) {
		size_t hl = strlen(ha);

		if (catchup_status_fields(gw->catchup, ha + hl, sizeof(ha) - hl) < 0)
			ha[hl] = '\0';
	}
	if (hubs_status_fields(gw->hubs, hubs, sizeof(hubs)) < 0)
		hubs[0] = '\0';
	n = snprintf(body, sizeof(body),
		     "{\"v\":1,\"hub\":\"%s\",\"state\":\"online\",\"fw\":\"%s\",\"ts\":\"%s\","
		     "\"db_writable\":%s,\"alarm\":%s%s%s%s%s%s,"
		     "\"received\":%llu,\"readings_stored\":%llu,\"dead_letters\":%llu,"
		     "\"quota_messages\":%llu,\"clock_readings\":%llu,\"queue_depth\":%llu%s%s}",
		     gw->cfg->broker.client_id, AGRI_VERSION, ts,
		     atomic_load(&h->db_writable) ? "true" : "false",
		     alarm ? "{\"kind\":\"storage\",\"since\":\"" : "null", alarm ? since : "",
		     alarm ? "\",\"error\":\"" : "",
		     alarm ? strerror(atomic_load(&h->hub_alarm_errno)) : "", alarm ? "\"" : "",
		     alarm ? "}" : "",
		     (unsigned long long)atomic_load(&h->received),
		     (unsigned long long)atomic_load(&h->readings_stored),
		     (unsigned long long)atomic_load(&h->dead_letters),
		     (unsigned long long)atomic_load(&h->quota_messages),
		     (unsigned long long)atomic_load(&h->clock_readings),
		     (unsigned long long)atomic_load(&h->queue_depth), ha, hubs);
	if (n > 0 && (size_t)n < sizeof(body) &&
	    broker_publish(gw->broker, topic, body, (size_t)n, true, NULL) == 0) {
		gw->hub_alarm_sent = alarm;
		gw->next_hub_status = now + HUB_STATUS_EVERY_MS;
	}
}

void gateway_run(struct gateway *gw, volatile sig_atomic_t *stop)
{
	int64_t next_ckpt = 0, next_stats = util_mono_ms() + STATS_EVERY_MS;
	bool was_connected = false;

	while (!*stop) {
		int64_t now = util_mono_ms();
		bool connected;

		broker_tick(gw->broker);
		connected = atomic_load(&gw->health.connected);
		if (connected && !was_connected)
			republish(gw);
		hub_status(gw, connected && !was_connected);
		was_connected = connected;
		if (now >= next_ckpt) {
			store_checkpoint(gw->store); /* failures show up in commits */
			next_ckpt = now + CHECKPOINT_EVERY_MS;
		}
		if (now >= next_stats) {
			log_stats(gw);
			next_stats = now + STATS_EVERY_MS;
		}
		util_sleep_ms(TICK_MS);
	}
}

void gateway_stop(struct gateway *gw, int64_t budget_ms)
{
	int64_t t0 = util_mono_ms();

	if (!gw || gw->stopped)
		return;
	gw->stopped = true;
	backup_sched_free(gw->backup); /* a backup in progress finishes first */
	gw->backup = NULL;
	http_stop(gw->http);
	gw->http = NULL;
	forecasting_stop(gw->fc);
	catchup_stop(gw->catchup); /* a replay in ingest_call() finishes first */
	if (gw->started) {
		ingest_stop(gw->ingest, t0 + budget_ms * 7 / 10);
		if (gw->broker_started)
			broker_disconnect(gw->broker, 300);
		log_stats(gw);
	}
	/* a claim in flight gives up (the row stays), before the forwarders
	 * stop: their shutdown is bounded by about a second */
	claims_cancel(gw->claims);
	upstream_stop(gw->up);
	outbox_stop(gw->outbox);
}

void gateway_free(struct gateway *gw)
{
	if (!gw)
		return;
	gateway_stop(gw, STOP_INGEST_MS);
	broker_free(gw->broker);
	catchup_free(gw->catchup);
	ingest_free(gw->ingest);
	hubs_free(gw->hubs);
	store_close(gw->store);
	forecasting_free(gw->fc);
	calibration_free(gw->cal);
	drift_free(gw->drift);
	upstream_free(gw->up);
	outbox_free(gw->outbox);
	claims_free(gw->claims);
	for (size_t i = 0; i < gw->n_chans; i++)
		notify_channel_free(gw->chans[i]);
	alerting_free(gw->alerts);
	people_free(gw->people);
	free(gw);
}
