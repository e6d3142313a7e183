/*
 * paho MQTTAsync wrapper for the station (see mqtt.h). Locking: `lock`
 * guards connected, epoch, inflight and the tickets; paho callbacks take
 * it briefly and never call paho while holding it.
 *
 * In-flight accounting: each tracked publish takes a ticket from a ring
 * (its context pointer), stamped with the connection epoch. A PUBACK
 * (onSuccess) or failure for a ticket of the current epoch frees one
 * in-flight unit; when the link is lost the epoch changes and in-flight
 * drops to 0 (paho may still redeliver those messages on the next
 * session: harmless, the gateway stores a batch once).
 *
 * Hubs: one paho client for every URL of broker.urls; each connect names
 * the one hub to try (connectOptions.serverURIs with one entry), so paho
 * never walks the list itself (it would stop at the last URI, see
 * docs/station.md "Hubs"). The home hub's probe is a plain TCP connect
 * on a thread of its own (no MQTT session, no credentials).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "agri/msg.h"
#include "agri/topic.h"
#include "agri/log.h"
#include "mqtt.h"
#include "update.h"
#include "agri/util.h"

#define MQTT_TICKETS 1024
#define PROBE_TIMEOUT_MS 3000 /* a hub that takes longer to accept is not up */

struct mqtt;

struct mqtt_ticket {
	struct mqtt *m;
	uint64_t epoch;
	bool live;
};

struct mqtt {
	MQTTAsync client;
	struct station_broker broker;
	char station[AGRI_ID_MAX + 1];
	/* broker.urls in paho's spelling; uri: the one last connected to */
	char uris[STATION_BROKER_URLS_MAX][STATION_URL_MAX];
	char *uri;
	size_t hub;
	char topic_status[AGRI_TOPIC_MAX], topic_ack[AGRI_TOPIC_MAX];
	char topic_config[AGRI_TOPIC_MAX];
	char topic_update[AGRI_TOPIC_MAX]; /* update commands (update.h) */
	char will[128];
	char password[256];
	struct mqtt_handlers h;

	pthread_mutex_t lock; /* guards the fields below */
	bool connected;
	uint64_t epoch;
	int inflight;
	unsigned next_ticket;
	struct mqtt_ticket tickets[MQTT_TICKETS];

	/* The home hub's probe: its thread, joined before the next one. */
	pthread_t probe;
	bool probe_started;
};

static void on_lost(void *ctx, char *cause)
{
	struct mqtt *m = ctx;

	pthread_mutex_lock(&m->lock);
	m->connected = false;
	m->epoch++;
	m->inflight = 0;
	pthread_mutex_unlock(&m->lock);
	m->h.lost(m->h.ctx, cause ? cause : "connection lost");
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = ctx;

	(void)topic_len;
	m->h.message(m->h.ctx, topic, msg->payload, (size_t)msg->payloadlen);
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
	struct mqtt *m = ctx;

	(void)r;
	pthread_mutex_lock(&m->lock);
	m->connected = true;
	m->epoch++;
	m->inflight = 0;
	pthread_mutex_unlock(&m->lock);
	m->h.connected(m->h.ctx);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct mqtt *m = ctx;

	log_error("mqtt", "subscribe failed code=%d", r ? r->code : 0);
	MQTTAsync_disconnect(m->client, NULL);
	m->h.lost(m->h.ctx, "subscribe failed");
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
	struct mqtt *m = ctx;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	char *topics[3] = {m->topic_ack, m->topic_config, m->topic_update};
	int qos[3] = {1, 1, 1}, rc;

	log_debug("mqtt", "CONNACK from %s", r && r->alt.connect.serverURI ?
		  r->alt.connect.serverURI : "?");
	util_tcp_nodelay_to(m->uri); /* batches and acks: no Nagle delay */
	ro.onSuccess = on_sub_ok;
	ro.onFailure = on_sub_fail;
	ro.context = m;
	rc = MQTTAsync_subscribeMany(m->client, 3, topics, qos, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("mqtt", "subscribe failed rc=%d", rc);
		MQTTAsync_disconnect(m->client, NULL);
		m->h.lost(m->h.ctx, "subscribe failed");
	}
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct mqtt *m = ctx;
	char why[160];

	snprintf(why, sizeof(why), "connect failed code=%d%s%s", r ? r->code : 0,
		 r && r->message ? " " : "", r && r->message ? r->message : "");
	m->h.lost(m->h.ctx, why);
}

static void ticket_done(struct mqtt_ticket *t)
{
	struct mqtt *m = t->m;
	bool counted;

	pthread_mutex_lock(&m->lock);
	counted = t->live && t->epoch == m->epoch;
	if (counted && m->inflight > 0)
		m->inflight--;
	t->live = false;
	pthread_mutex_unlock(&m->lock);
	if (counted)
		m->h.delivered(m->h.ctx);
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
	(void)r;
	ticket_done(ctx);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	(void)r;
	ticket_done(ctx);
}

struct mqtt *mqtt_new(const struct station_config *cfg, const struct mqtt_handlers *h)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	struct mqtt *m;
	int rc;

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->broker = cfg->broker;
	m->h = *h;
	snprintf(m->station, sizeof(m->station), "%s", cfg->station);
	/* paho knows tcp:// and ssl://; accept the mqtt(s):// spellings too */
	for (size_t i = 0; i < cfg->broker.n_urls; i++) {
		const char *url = cfg->broker.urls[i];

		if (!strncmp(url, "mqtt://", 7))
			snprintf(m->uris[i], sizeof(m->uris[i]), "tcp://%s", url + 7);
		else if (!strncmp(url, "mqtts://", 8))
			snprintf(m->uris[i], sizeof(m->uris[i]), "ssl://%s", url + 8);
		else
			snprintf(m->uris[i], sizeof(m->uris[i]), "%s", url);
	}
	m->uri = m->uris[0];
	agri_topic_build(m->topic_status, sizeof(m->topic_status), cfg->broker.topic_prefix,
			 AGRI_TOPIC_STATUS, cfg->station);
	agri_topic_build(m->topic_ack, sizeof(m->topic_ack), cfg->broker.topic_prefix,
			 AGRI_TOPIC_ACK, cfg->station);
	agri_topic_build(m->topic_config, sizeof(m->topic_config), cfg->broker.topic_prefix,
			 AGRI_TOPIC_CONFIG, cfg->station);
	update_topic(cfg, m->topic_update, sizeof(m->topic_update));
	{
		/* The Last Will: the status message's minimal offline form. */
		struct agri_status off = {.online = false};

		snprintf(off.station, sizeof(off.station), "%s", cfg->station);
		if (agri_status_encode(&off, m->will, sizeof(m->will)) < 0)
			m->will[0] = '\0';
	}

	/* Without TLS, leave OpenSSL uninitialised: it would cost ~3 MiB of
	 * RSS on a station that never uses it. Once per process. */
	{
		static bool inited;
		MQTTAsync_init_options io = MQTTAsync_init_options_initializer;

		if (!inited) {
			io.do_openssl_init = !strncmp(m->uri, "ssl://", 6);
			MQTTAsync_global_init(&io);
			inited = true;
		}
	}
	co.sendWhileDisconnected = 0;
	co.maxBufferedMessages = 100;
	rc = MQTTAsync_createWithOptions(&m->client, m->uri, m->station,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("mqtt", "cannot create client url=%s rc=%d", m->uri, rc);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	MQTTAsync_setCallbacks(m->client, m, on_lost, on_message, NULL);
	for (int i = 0; i < MQTT_TICKETS; i++)
		m->tickets[i].m = m;
	return m;
}

void mqtt_free(struct mqtt *m)
{
	if (!m)
		return;
	if (m->probe_started)
		pthread_join(m->probe, NULL);
	MQTTAsync_destroy(&m->client);
	pthread_mutex_destroy(&m->lock);
	memset(m->password, 0, sizeof(m->password));
	free(m);
}

int mqtt_connect(struct mqtt *m, size_t hub)
{
	MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer;
	MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	char *one[1];
	int rc;

	if (hub >= m->broker.n_urls)
		return -EINVAL;
	m->hub = hub;
	m->uri = m->uris[hub];
	one[0] = m->uri;
	o.serverURIs = one;
	o.serverURIcount = 1;
	/*
	 * paho pings once nothing came for keepAliveInterval and gives up
	 * 1.5 intervals after the ping: a hub that vanished without closing
	 * the connection is noticed 2.5 intervals after its last packet.
	 * Half of keepalive_s makes that 1.25 x keepalive_s, within the
	 * 1.5 x keepalive_s the station promises (docs/station.md "Hubs").
	 */
	o.keepAliveInterval = (int)(m->broker.keepalive_s / 2);
	o.cleansession = 0; /* keep acks/configs queued while we are away */
	/* Not MQTTVERSION_DEFAULT: with it, paho answers a lost link or a
	 * failed connect by trying MQTT 3.1 on its own, to the last hub,
	 * behind the station's back (and ignores the station's connect). */
	o.MQTTVersion = MQTTVERSION_3_1_1;
	o.connectTimeout = 10;
	o.automaticReconnect = 0;
	o.onSuccess = on_connect_ok;
	o.onFailure = on_connect_fail;
	o.context = m;
	w.topicName = m->topic_status;
	w.message = m->will;
	w.retained = 1;
	w.qos = 1;
	o.will = &w;
	if (m->broker.username[0])
		o.username = m->broker.username;
	if (m->broker.password_file[0]) {
		rc = util_read_secret(m->broker.password_file, m->password, sizeof(m->password));
		if (rc < 0) {
			log_error("mqtt", "cannot read password_file=%s: %s",
				  m->broker.password_file, strerror(-rc));
			return -EINVAL;
		}
		o.password = m->password;
	}
	if (!strncmp(m->uri, "ssl://", 6)) {
		ssl.trustStore = m->broker.ca_file[0] ? m->broker.ca_file : NULL;
		ssl.keyStore = m->broker.cert_file[0] ? m->broker.cert_file : NULL;
		ssl.privateKey = m->broker.key_file[0] ? m->broker.key_file : NULL;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		o.ssl = &ssl;
	}
	rc = MQTTAsync_connect(m->client, &o);
	/* paho still has a connect or disconnect queued (just after a lost
	 * link): it runs that one, with the hub just given. */
	if (rc == MQTTASYNC_COMMAND_IGNORED)
		return -EBUSY;
	if (rc != MQTTASYNC_SUCCESS) {
		log_debug("mqtt", "connect call failed rc=%d", rc);
		return -EIO;
	}
	return 0;
}

const char *mqtt_url(const struct mqtt *m)
{
	return m->broker.urls[m->hub];
}

/* "tcp://host:port", "ssl://[::1]:8883" -> host and port. */
static int split_hostport(const char *uri, char *host, size_t hlen, char *port, size_t plen)
{
	const char *hp = strstr(uri, "://"), *colon, *end;
	bool tls = !strncmp(uri, "ssl://", 6);

	hp = hp ? hp + 3 : uri;
	end = hp + strcspn(hp, "/");
	if (*hp == '[') {
		const char *rb = memchr(hp, ']', (size_t)(end - hp));

		if (!rb)
			return -EINVAL;
		colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
		snprintf(host, hlen, "%.*s", (int)(rb - hp - 1), hp + 1);
	} else {
		colon = memchr(hp, ':', (size_t)(end - hp));
		snprintf(host, hlen, "%.*s", (int)((colon ? colon : end) - hp), hp);
	}
	if (colon)
		snprintf(port, plen, "%.*s", (int)(end - colon - 1), colon + 1);
	else
		snprintf(port, plen, "%s", tls ? "8883" : "1883");
	return host[0] && port[0] ? 0 : -EINVAL;
}

/* One non-blocking TCP connect to addr, at most timeout_ms. */
static bool tcp_answers(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd p = {.events = POLLOUT};
	int err = 0, ok = 0;
	socklen_t el = sizeof(err);

	p.fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
		      ai->ai_protocol);
	if (p.fd < 0)
		return false;
	if (connect(p.fd, ai->ai_addr, ai->ai_addrlen) == 0)
		ok = 1;
	else if (errno == EINPROGRESS && poll(&p, 1, timeout_ms) == 1 &&
		 getsockopt(p.fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
		ok = 1;
	close(p.fd);
	return ok;
}

struct probe_job {
	struct mqtt *m;
	size_t hub;
};

static void *probe_main(void *arg)
{
	struct probe_job *j = arg;
	struct mqtt *m = j->m;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	char host[STATION_URL_MAX], port[16];
	bool up = false;

	if (split_hostport(m->uris[j->hub], host, sizeof(host), port, sizeof(port)) == 0 &&
	    getaddrinfo(host, port, &hints, &res) == 0) {
		for (ai = res; ai && !up; ai = ai->ai_next)
			up = tcp_answers(ai, PROBE_TIMEOUT_MS);
		freeaddrinfo(res);
	}
	if (m->h.probed)
		m->h.probed(m->h.ctx, j->hub, up);
	free(j);
	return NULL;
}

int mqtt_probe(struct mqtt *m, size_t hub)
{
	struct probe_job *j;
	int rc;

	if (hub >= m->broker.n_urls)
		return -EINVAL;
	if (m->probe_started) {
		pthread_join(m->probe, NULL);
		m->probe_started = false;
	}
	j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->m = m;
	j->hub = hub;
	rc = pthread_create(&m->probe, NULL, probe_main, j);
	if (rc) {
		free(j);
		return -rc;
	}
	m->probe_started = true;
	return 0;
}

bool mqtt_is_connected(struct mqtt *m)
{
	bool c;

	pthread_mutex_lock(&m->lock);
	c = m->connected;
	pthread_mutex_unlock(&m->lock);
	return c;
}

int mqtt_inflight(struct mqtt *m)
{
	int n;

	pthread_mutex_lock(&m->lock);
	n = m->inflight;
	pthread_mutex_unlock(&m->lock);
	return n;
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload,
		 size_t len, bool retained, bool tracked)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	struct mqtt_ticket *t = NULL;
	int rc;

	pthread_mutex_lock(&m->lock);
	if (!m->connected) {
		pthread_mutex_unlock(&m->lock);
		return -ENOTCONN;
	}
	if (tracked) {
		t = &m->tickets[m->next_ticket++ % MQTT_TICKETS];
		t->epoch = m->epoch;
		t->live = true;
		m->inflight++;
	}
	pthread_mutex_unlock(&m->lock);

	msg.payload = (void *)payload;
	msg.payloadlen = (int)len;
	msg.qos = 1;
	msg.retained = retained;
	if (t) {
		ro.onSuccess = on_pub_ok;
		ro.onFailure = on_pub_fail;
		ro.context = t;
	}
	rc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		if (t)
			ticket_done(t);
		return rc == MQTTASYNC_DISCONNECTED ? -ENOTCONN : -EIO;
	}
	return 0;
}

void mqtt_disconnect(struct mqtt *m, int timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

	d.timeout = timeout_ms;
	pthread_mutex_lock(&m->lock);
	m->connected = false;
	m->epoch++;
	pthread_mutex_unlock(&m->lock);
	if (MQTTAsync_disconnect(m->client, &d) != MQTTASYNC_SUCCESS)
		return;
	/* Let paho finish the in-flight publications (the offline status). */
	for (int waited = 0; waited < timeout_ms + 200 && MQTTAsync_isConnected(m->client);
	     waited += 20)
		util_sleep_ms(20);
}
