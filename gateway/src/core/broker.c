/*
 * paho MQTTAsync wrapper (see broker.h). Locking rules: `state` and the
 * backoff fields are written by paho callbacks and broker_tick(); they are
 * atomics or only touched under `mu`. paho's own handle is thread-safe.
 */
#include "core/broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTAsync.h>

#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"

#define LOG "broker"

enum { ST_DOWN, ST_CONNECTING, ST_UP, ST_CLOSING };

struct broker {
	const struct gateway_config *cfg;
	struct gateway_health *health;
	broker_message_fn fn;
	void *ctx;
	MQTTAsync client;
	char uri[GW_URL_MAX];
	/* telemetry, status, the hubs' statuses; with an alert engine the
	 * hubs' acknowledgements, with ha the hubs' catch-up (docs/ha.md) */
	char topics[5][AGRI_TOPIC_MAX + 80];
	int n_topics;
	char will_topic[AGRI_TOPIC_MAX + 80];
	char will[384];  /* ha: the hub's Last Will, "offline"; "" = none */
	atomic_int state;
	atomic_bool disconnected;
	pthread_mutex_t mu;
	int attempt;
	int64_t next_try_ms; /* monotonic */
	uint32_t rng;
	struct log_complaint down;
};

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct broker *b = ctx;
	int took = b->fn(b->ctx, topic, topic_len > 0 ? (size_t)topic_len : strlen(topic),
			 m->payload, (size_t)m->payloadlen);

	if (took) {
		MQTTAsync_freeMessage(&m);
		MQTTAsync_free(topic);
	}
	return took;
}

static void schedule_retry(struct broker *b)
{
	pthread_mutex_lock(&b->mu);
	b->next_try_ms = util_mono_ms() +
			 util_backoff_ms(b->attempt < 8 ? b->attempt : 8, 500, 30000, &b->rng);
	b->attempt++;
	pthread_mutex_unlock(&b->mu);
	atomic_store(&b->state, ST_DOWN);
}

static void on_lost(void *ctx, char *cause)
{
	struct broker *b = ctx;

	atomic_store(&b->health->connected, false);
	if (atomic_load(&b->state) == ST_CLOSING)
		return;
	log_complain(&b->down, LOG_LVL_WARN, LOG, "connection lost url=%s cause=\"%s\"",
		     b->cfg->broker.url, cause ? cause : "unknown");
	schedule_retry(b);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData5 *r)
{
	struct broker *b = ctx;

	if (atomic_load(&b->state) == ST_CLOSING)
		return;
	log_complain(&b->down, LOG_LVL_WARN, LOG,
		     "cannot connect url=%s reason=\"%s\" (retrying with backoff)",
		     b->cfg->broker.url,
		     r && r->message ? r->message : MQTTReasonCode_toString(r ? r->reasonCode : 0));
	schedule_retry(b);
}

static void on_subscribed(void *ctx, MQTTAsync_successData5 *r)
{
	struct broker *b = ctx;
	char list[sizeof(b->topics) + 8];
	size_t pos = 0;
	int bad = 0;

	for (int i = 0; i < b->n_topics && pos < sizeof(list); i++)
		pos += (size_t)snprintf(list + pos, sizeof(list) - pos, "%s%s", i ? "," : "",
					b->topics[i]);
	for (int i = 0; r && i < r->alt.sub.reasonCodeCount; i++)
		if (r->alt.sub.reasonCodes[i] >= 0x80)
			bad++;
	if (bad)
		log_error(LOG, "subscription refused by the broker topics=%s", list);
	else
		log_info(LOG, "subscribed topics=%s", list);
}

static void on_subscribe_failure(void *ctx, MQTTAsync_failureData5 *r)
{
	struct broker *b = ctx;

	log_error(LOG, "subscribe failed reason=\"%s\"",
		  r && r->message ? r->message : MQTTReasonCode_toString(r ? r->reasonCode : 0));
	/* Drop the connection: the retry subscribes again. */
	MQTTAsync_disconnect(b->client, NULL);
	schedule_retry(b);
}

/* Every successful (re)connect: subscribe again (the broker may have lost
 * the session, e.g. after a kill -9). */
static void on_connected(void *ctx, char *cause)
{
	struct broker *b = ctx;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	char *topics[5] = {b->topics[0], b->topics[1], b->topics[2], b->topics[3], b->topics[4]};
	int qos[5] = {1, 1, 1, 1, 1};
	int rc;

	atomic_store(&b->state, ST_UP);
	atomic_store(&b->health->connected, true);
	util_tcp_nodelay_to(b->uri); /* acks are small: no Nagle delay */
	pthread_mutex_lock(&b->mu);
	b->attempt = 0;
	pthread_mutex_unlock(&b->mu);
	log_release(&b->down, LOG, "connected url=%s", b->cfg->broker.url);
	log_info(LOG, "connected url=%s client_id=%s", b->cfg->broker.url,
		 b->cfg->broker.client_id);
	ro.onSuccess5 = on_subscribed;
	ro.onFailure5 = on_subscribe_failure;
	ro.context = b;
	rc = MQTTAsync_subscribeMany(b->client, b->n_topics, topics, qos, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		log_error(LOG, "subscribe not sent rc=%d", rc);
}

struct broker *broker_new(const struct gateway_config *cfg,
			  struct gateway_health *health, broker_message_fn fn,
			  void *ctx)
{
	struct broker *b = calloc(1, sizeof(*b));
	const char *url = cfg->broker.url;
	const char *kinds[2] = {"telemetry", "status"};

	if (!b)
		return NULL;
	b->cfg = cfg;
	b->health = health;
	b->fn = fn;
	b->ctx = ctx;
	b->rng = (uint32_t)util_now_ms() | 1u;
	pthread_mutex_init(&b->mu, NULL);
	if (strncmp(url, "mqtt://", 7) == 0)
		snprintf(b->uri, sizeof(b->uri), "tcp://%s", url + 7);
	else if (strncmp(url, "mqtts://", 8) == 0)
		snprintf(b->uri, sizeof(b->uri), "ssl://%s", url + 8);
	else
		snprintf(b->uri, sizeof(b->uri), "%s", url);
	for (int i = 0; i < 2; i++) {
		if (cfg->broker.shared_group[0])
			snprintf(b->topics[i], sizeof(b->topics[i]), "$share/%s/%s/+/%s",
				 cfg->broker.shared_group, cfg->broker.topic_prefix, kinds[i]);
		else
			snprintf(b->topics[i], sizeof(b->topics[i]), "%s/+/%s",
				 cfg->broker.topic_prefix, kinds[i]);
	}
	b->n_topics = 2;
	if (cfg->rules_file[0]) {
		/* Acknowledgements made on another hub (docs/ha.md): never a
		 * shared subscription, every gateway with alerts needs them. */
		snprintf(b->topics[b->n_topics++], sizeof(b->topics[0]), "%s/hub/+/ack",
			 cfg->broker.topic_prefix);
	}
	/* Every hub's status, ours included: the hubs' panel (core/hubs.h),
	 * with ha the claims' takeover too (docs/ha.md). Never shared. */
	snprintf(b->topics[b->n_topics++], sizeof(b->topics[0]), "%s/hub/+/status",
		 cfg->broker.topic_prefix);
	if (cfg->ha.enabled) {
		/* our own Last Will (docs/ha.md) */
		snprintf(b->will_topic, sizeof(b->will_topic), "%s/hub/%s/status",
			 cfg->broker.topic_prefix, cfg->broker.client_id);
		b->will[0] = '.'; /* made at each connect (its ts) */
		/* The other hub's digests, requests and replays (core/catchup.h). */
		if (cfg->ha.catchup)
			snprintf(b->topics[b->n_topics++], sizeof(b->topics[0]),
				 "%s/hub/+/catchup/#", cfg->broker.topic_prefix);
	}
	return b;
}

static int connect_now(struct broker *b)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
	int rc;

	p.value.integer4 = (unsigned int)b->cfg->broker.session_expiry_s;
	MQTTProperties_add(&props, &p);
	co.keepAliveInterval = (int)b->cfg->broker.keepalive_s;
	co.cleanstart = 0;
	co.connectProperties = &props;
	co.connectTimeout = 10;
	co.automaticReconnect = 0; /* broker_tick() reconnects, with jitter */
	co.onFailure5 = on_connect_failure;
	if (b->will[0]) {
		char ts[32];

		/* ts: when it was written, the connect (agrictl status --all
		 * says how long ago a hub was heard) */
		agri_time_format(util_now_ms(), ts, sizeof(ts));
		snprintf(b->will, sizeof(b->will), "{\"v\":1,\"hub\":\"%s\",\"state\":\"offline\","
			 "\"fw\":\"%s\",\"ts\":\"%s\",\"ha\":{\"hub_id\":\"%s\",\"priority\":%d}}",
			 b->cfg->broker.client_id, AGRI_VERSION, ts, b->cfg->ha.hub_id,
			 (int)b->cfg->ha.priority);
		will.topicName = b->will_topic;
		will.message = b->will;
		will.retained = 1;
		will.qos = 1;
		co.will = &will;
	}
	co.context = b;
	if (b->cfg->broker.username[0])
		co.username = b->cfg->broker.username;
	if (b->cfg->broker.password[0])
		co.password = b->cfg->broker.password;
	if (strncmp(b->uri, "ssl://", 6) == 0 || strncmp(b->uri, "wss://", 6) == 0) {
		ssl.trustStore = b->cfg->broker.ca_file[0] ? b->cfg->broker.ca_file : NULL;
		ssl.keyStore = b->cfg->broker.cert_file[0] ? b->cfg->broker.cert_file : NULL;
		ssl.privateKey = b->cfg->broker.key_file[0] ? b->cfg->broker.key_file : NULL;
		/* Verified, both: the chain (against ca_file, else the system's
		 * CAs) and the URL's host name or address in the broker's
		 * certificate. paho's verify is off by default, and without it
		 * any certificate of the same CA passes (docs/security.md). */
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	atomic_store(&b->state, ST_CONNECTING);
	rc = MQTTAsync_connect(b->client, &co);
	MQTTProperties_free(&props);
	if (rc != MQTTASYNC_SUCCESS) {
		log_complain(&b->down, LOG_LVL_WARN, LOG, "cannot start connecting rc=%d", rc);
		schedule_retry(b);
		return -EIO;
	}
	return 0;
}

int broker_start(struct broker *b)
{
	MQTTAsync_createOptions cr = MQTTAsync_createOptions_initializer5;
	MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
	int rc;

	/* paho's global OpenSSL set-up loads every error string: ~1.5 MiB
	 * resident for a plain tcp:// gateway. OpenSSL 3 initialises itself
	 * when an mqtts:// connection first needs it. */
	io.do_openssl_init = 0;
	MQTTAsync_global_init(&io);
	cr.maxBufferedMessages = 65535;
	rc = MQTTAsync_createWithOptions(&b->client, b->uri, b->cfg->broker.client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &cr);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error(LOG, "cannot create the MQTT client url=%s rc=%d", b->uri, rc);
		return -EINVAL;
	}
	MQTTAsync_setCallbacks(b->client, b, on_lost, on_message, NULL);
	MQTTAsync_setConnected(b->client, b, on_connected);
	connect_now(b);
	return 0;
}

void broker_tick(struct broker *b)
{
	bool due;

	if (atomic_load(&b->state) != ST_DOWN)
		return;
	pthread_mutex_lock(&b->mu);
	due = util_mono_ms() >= b->next_try_ms;
	pthread_mutex_unlock(&b->mu);
	if (due)
		connect_now(b);
}

static void on_sent(void *ctx, MQTTAsync_successData5 *r)
{
	struct ingest_sent *s = ctx;

	(void)r;
	s->fn(s, true);
}

static void on_send_failed(void *ctx, MQTTAsync_failureData5 *r)
{
	struct ingest_sent *s = ctx;

	(void)r;
	s->fn(s, false);
}

int broker_publish(void *bp, const char *topic, const void *payload, size_t len,
		   bool retained, struct ingest_sent *sent)
{
	struct broker *b = bp;
	MQTTAsync_message m = MQTTAsync_message_initializer;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (atomic_load(&b->state) != ST_UP)
		return -ENOTCONN;
	m.payload = (void *)payload;
	m.payloadlen = (int)len;
	m.qos = 1;
	m.retained = retained;
	if (sent) {
		ro.onSuccess5 = on_sent;
		ro.onFailure5 = on_send_failed;
		ro.context = sent;
	}
	rc = MQTTAsync_sendMessage(b->client, topic, &m, sent ? &ro : NULL);
	if (rc == MQTTASYNC_DISCONNECTED)
		return -ENOTCONN;
	return rc == MQTTASYNC_SUCCESS ? 0 : -EIO;
}

static void on_disconnected(void *ctx, MQTTAsync_successData5 *r)
{
	struct broker *b = ctx;

	(void)r;
	atomic_store(&b->disconnected, true);
}

static void on_disconnect_failed(void *ctx, MQTTAsync_failureData5 *r)
{
	struct broker *b = ctx;

	(void)r;
	atomic_store(&b->disconnected, true);
}

void broker_disconnect(struct broker *b, int timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
	int64_t until = util_mono_ms() + timeout_ms + 200;

	if (!b->client)
		return;
	atomic_store(&b->state, ST_CLOSING);
	d.timeout = timeout_ms;
	d.onSuccess5 = on_disconnected;
	d.onFailure5 = on_disconnect_failed;
	d.context = b;
	/* ha: a hub that stops says so (its Last Will, "offline", retained):
	 * the other hub's takeover starts now, not after a keepalive. */
	if (b->will[0])
		d.reasonCode = MQTTREASONCODE_DISCONNECT_WITH_WILL_MESSAGE;
	/* Keep the session: messages queued while we are away wait for us. */
	if (MQTTAsync_isConnected(b->client) &&
	    MQTTAsync_disconnect(b->client, &d) == MQTTASYNC_SUCCESS)
		while (!atomic_load(&b->disconnected) && util_mono_ms() < until)
			util_sleep_ms(5);
	atomic_store(&b->health->connected, false);
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	if (b->client)
		MQTTAsync_destroy(&b->client);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
