/*
 * The gateway's MQTT connection (paho MQTTAsync, MQTT v5): a persistent
 * session (clean start off, fixed client id, session expiry), QoS 1
 * subscriptions to every station's telemetry and status (as a shared
 * subscription when broker.shared_group is set), resubscribed on every
 * connect, and reconnects with jittered backoff driven by broker_tick().
 * No client-side persistence: the end-to-end ack makes it unnecessary.
 */
#ifndef GATEWAY_BROKER_H
#define GATEWAY_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/config.h"
#include "core/health.h"
#include "core/ingest.h"

struct broker;

/* Called on paho's thread for every message. Returns 1 when it took the
 * message, 0 when paho should keep it and deliver it again. */
typedef int (*broker_message_fn)(void *ctx, const char *topic, size_t topic_len,
				 const void *payload, size_t len);

struct broker *broker_new(const struct gateway_config *cfg,
			  struct gateway_health *health, broker_message_fn fn,
			  void *ctx);
/* Starts the first connection attempt. Main thread. Returns 0 or a
 * negative errno (a bad URL). */
int broker_start(struct broker *b);
/* Reconnects when the connection is down and the backoff has passed.
 * Main thread, every ~100 ms. */
void broker_tick(struct broker *b);
/* Publishes QoS 1, from any thread (paho allows it in its callbacks
 * too). sent (may be NULL) is told on paho's thread when the broker's
 * PUBACK came or the publication failed. Returns 0, -ENOTCONN or -EIO
 * (sent is then not called). Matches struct ingest_publisher. */
int broker_publish(void *b, const char *topic, const void *payload, size_t len,
		   bool retained, struct ingest_sent *sent);
/* Disconnects (waiting up to timeout_ms for in-flight messages); the
 * session stays on the broker. */
void broker_disconnect(struct broker *b, int timeout_ms);
void broker_free(struct broker *b);

#endif
