/*
 * Wiring of the gateway's parts (see gateway.h) and the main thread's
 * loop. Shutdown order: the ingest stops taking messages, commits its
 * queue and sends the acks; then the broker disconnects, keeping the
 * session. A message refused in between was PUBACKed by paho but never
 * acked end to end: its station resends it.
 */
#include "gateway/gateway.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/broker.h"
#include "core/store.h"

#define LOG "gateway"
#define TICK_MS 100
#define CHECKPOINT_EVERY_MS 1000
#define STATS_EVERY_MS 60000
#define HUB_STATUS_EVERY_MS 60000

struct gateway {
	const struct gateway_config *cfg;
	struct gateway_health health;
	struct store *store;
	struct ingest *ingest;
	struct broker *broker;
	bool started, broker_started, stopped;
	bool hub_alarm_sent; /* the alarm state last published */
	int64_t next_hub_status;
	void (*on_reconnect)(void *ctx);
	void *reconnect_ctx;
};

/* The ingest's ack publisher: through the broker, once it exists. */
static int publish(void *ctx, const char *topic, const void *payload, size_t len,
		   bool retained, struct ingest_sent *sent)
{
	struct gateway *gw = ctx;

	return gw->broker ? broker_publish(gw->broker, topic, payload, len, retained, sent)
			  : -ENOTCONN;
}

static int offer(void *ctx, const char *topic, size_t topic_len,
		 const void *payload, size_t len)
{
	return ingest_offer(ctx, topic, topic_len, payload, len);
}

struct gateway *gateway_new(const struct gateway_config *cfg, int *err)
{
	struct gateway *gw = calloc(1, sizeof(*gw));
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

	if (!gw) {
		*err = -ENOMEM;
		return NULL;
	}
	gw->cfg = cfg;
	atomic_store(&gw->health.db_writable, true);
	gw->store = store_open(cfg->db.path, &so, err);
	if (!gw->store) {
		log_error(LOG, "cannot open the database path=%s error=\"%s\"", cfg->db.path,
			  *err == -EPROTO ? "written by a newer agri-gateway" : strerror(-*err));
		goto fail;
	}
	gw->ingest = ingest_new(gw->store, &io, &pub, &gw->health);
	if (!gw->ingest) {
		*err = -ENOMEM;
		goto fail;
	}
	gw->broker = broker_new(cfg, &gw->health, offer, gw->ingest);
	if (!gw->broker) {
		*err = -ENOMEM;
		goto fail;
	}
	return gw;
fail:
	gateway_free(gw);
	return NULL;
}

int gateway_add_hook(struct gateway *gw, const struct ingest_hook *hook)
{
	return ingest_add_hook(gw->ingest, hook);
}

int gateway_start(struct gateway *gw)
{
	int rc = ingest_start(gw->ingest);

	if (rc < 0)
		return rc;
	gw->started = true;
	gw->broker_started = true;
	log_info(LOG, "started db=%s synchronous=%s shared_group=%s", gw->cfg->db.path,
		 gw->cfg->db.sync_full ? "full" : "normal",
		 gw->cfg->broker.shared_group[0] ? gw->cfg->broker.shared_group : "-");
	return broker_start(gw->broker);
}

int gateway_start_local(struct gateway *gw)
{
	int rc = ingest_start(gw->ingest);

	if (rc == 0)
		gw->started = true;
	return rc;
}

void gateway_on_reconnect(struct gateway *gw, void (*fn)(void *ctx), void *ctx)
{
	gw->on_reconnect = fn;
	gw->reconnect_ctx = ctx;
}

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
	char topic[AGRI_TOPIC_MAX + 80], since[32] = "", ts[32], body[1024];
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
	n = snprintf(body, sizeof(body),
		     "{\"v\":1,\"hub\":\"%s\",\"state\":\"online\",\"fw\":\"%s\",\"ts\":\"%s\","
		     "\"db_writable\":%s,\"alarm\":%s%s%s%s%s%s,"
		     "\"received\":%llu,\"readings_stored\":%llu,\"dead_letters\":%llu,"
		     "\"quota_messages\":%llu,\"clock_readings\":%llu,\"queue_depth\":%llu}",
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
		     (unsigned long long)atomic_load(&h->queue_depth));
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
		if (connected && !was_connected && gw->on_reconnect)
			gw->on_reconnect(gw->reconnect_ctx);
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
	if (gw->started) {
		ingest_stop(gw->ingest, t0 + budget_ms * 7 / 10);
		if (gw->broker_started)
			broker_disconnect(gw->broker, 300);
		log_stats(gw);
	}
}

void gateway_free(struct gateway *gw)
{
	if (!gw)
		return;
	gateway_stop(gw, 3000);
	broker_free(gw->broker);
	ingest_free(gw->ingest);
	store_close(gw->store);
	free(gw);
}

struct gateway_health *gateway_health(struct gateway *gw)
{
	return &gw->health;
}

struct ingest *gateway_ingest(struct gateway *gw)
{
	return gw->ingest;
}

struct store *gateway_store(struct gateway *gw)
{
	return gw->store;
}
