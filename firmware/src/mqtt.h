/*
 * The station's MQTT link (paho MQTTAsync): one persistent session
 * (clean session off, client id = station id) so acks and configs sent
 * while the link was briefly down still arrive; QoS 1; a retained
 * "offline" Last Will on the status topic; username + password file; TLS
 * when CA/cert files are configured. Reconnects are driven by the caller
 * (mqtt_connect again, to the hub and after the backoff it chooses: paho
 * never picks a hub of broker.urls by itself).
 *
 * Threads: callbacks in struct mqtt_handlers run on paho's threads; they
 * must only queue work and wake the station. Every mqtt_* function may be
 * called from the station's main thread.
 */
#ifndef STATION_MQTT_H
#define STATION_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct mqtt_handlers {
	void (*connected)(void *ctx);           /* CONNACK received, subscribed */
	void (*lost)(void *ctx, const char *why); /* connect failed or link lost */
	void (*message)(void *ctx, const char *topic, const void *payload, size_t len);
	void (*delivered)(void *ctx);           /* a tracked publish was PUBACKed */
	/* The outcome of mqtt_probe (on the probe's thread). */
	void (*probed)(void *ctx, size_t hub, bool up);
	void *ctx;
};

struct mqtt;

/* Creates the client for cfg (copied). Returns NULL with a log line. */
struct mqtt *mqtt_new(const struct station_config *cfg, const struct mqtt_handlers *h);
void mqtt_free(struct mqtt *m);

/* Starts a connection attempt to broker.urls[hub]; the outcome arrives
 * via connected/lost. Returns 0 or -errno (-EINVAL: cannot read the
 * password file, or no such hub; -EBUSY: paho is still busy with the last
 * link, try the same hub again shortly). */
int mqtt_connect(struct mqtt *m, size_t hub);
/* The configured URL of the hub last connected to (or being tried). */
const char *mqtt_url(const struct mqtt *m);
/*
 * Asks whether broker.urls[hub] accepts a TCP connection (within 3 s)
 * without an MQTT session: the station's own session stays where it is,
 * and a hub's broker may take the station's client id from its user
 * name. The answer arrives via probed. One probe at a time: a new one
 * waits for the last to finish. Returns 0 or -errno.
 */
int mqtt_probe(struct mqtt *m, size_t hub);
bool mqtt_is_connected(struct mqtt *m);

/*
 * Publishes at QoS 1. tracked publishes count as in flight until PUBACKed
 * (or until the link is lost). Returns 0, -ENOTCONN, or -EIO.
 */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload,
		 size_t len, bool retained, bool tracked);
/* Tracked publishes not yet PUBACKed on the current connection. */
int mqtt_inflight(struct mqtt *m);
/* Disconnects cleanly (no Last Will), waiting up to timeout_ms. */
void mqtt_disconnect(struct mqtt *m, int timeout_ms);

#endif
