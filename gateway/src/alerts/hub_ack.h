/*
 * Acknowledgements shared between hubs (docs/ha.md, "Acknowledgements";
 * docs/interfaces.md §2.5): the pure part, no I/O. A gateway that takes an
 * acknowledgement through its own API publishes it on
 * <prefix>/hub/<client id>/ack (QoS 1, not retained); the other hub's
 * gateway, subscribed on its own broker, decodes it here as hostile input
 * and judges it against the alert it has open, by the episode key both
 * hubs derive alike: "<alert id>@<raised_at ms>" (the reading time the
 * episode started, as in notification claims).
 *
 *   {"v":1,"hub":"agri-gateway-a","id":"salinity-high/CL-01/sonde1",
 *    "episode":"salinity-high/CL-01/sonde1@1765000000000","severity":"critical",
 *    "by":"lan","at":"2026-12-07T03:10:00.000Z"}
 *
 * hub_acks.c applies a judged acknowledgement in the writer's transaction,
 * keeps the ones whose episode has not reached this hub yet (bounded), and
 * never publishes what it applied (no ping-pong).
 */
#ifndef GATEWAY_ALERTS_HUB_ACK_H
#define GATEWAY_ALERTS_HUB_ACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"

#define HUB_ACK_MSG_MAX 1024  /* bytes: a real one is ~250 */
#define HUB_ACK_HUB_MAX 64    /* a gateway's client id, [A-Za-z0-9_.-] */
#define HUB_ACK_BY_MAX 63     /* as the API's {"by"} */
#define HUB_ACK_ID_MAX 160    /* struct agri_alert's id */

struct hub_ack {
	char hub[HUB_ACK_HUB_MAX + 1];  /* who published it (the topic's level) */
	char id[HUB_ACK_ID_MAX];        /* <rule>/<station>[/<sensor>] */
	int64_t raised_at_ms;           /* the episode's start (its key's ms) */
	char severity[16];              /* the alert's when acknowledged */
	char by[HUB_ACK_BY_MAX + 1];    /* who acknowledged, UTF-8 */
	int64_t at_ms;                  /* when, on the publishing hub's clock */
};

/* <prefix>/hub/<hub>/ack. Returns the length or -ENOSPC. */
int hub_ack_topic(char *buf, size_t len, const char *prefix, const char *hub);

/* True when topic is <prefix>/hub/<hub>/ack; hub gets its level (which may
 * still be invalid: hub_ack_decode checks it). */
bool hub_ack_topic_match(const char *topic, const char *prefix, char *hub, size_t len);

/* The episode key "<id>@<ms>" (as outbox_episode_key). */
int hub_ack_episode(const struct hub_ack *a, char *buf, size_t len);

/* The message. Returns its length or a negative errno. */
int hub_ack_encode(const struct hub_ack *a, char *buf, size_t len);

/*
 * Decodes payload[0..len) published on the topic of topic_hub. Refuses
 * (-EBADMSG, why says which key and how) a message over HUB_ACK_MSG_MAX,
 * not JSON, "v" not 1, "hub" not the topic's, an id that is not
 * <rule>/<station>[/<sensor>], an episode that is not "<id>@<ms>" of that
 * id, a severity that is not one of the four, a "by" that is not 1-63 bytes without control characters, an "at"
 * that is not RFC 3339. Unknown keys are ignored (a newer peer).
 */
int hub_ack_decode(const char *payload, size_t len, const char *topic_hub,
		   struct hub_ack *out, char *why, size_t why_len);

enum hub_ack_verdict {
	HUB_ACK_APPLY,     /* the open alert is that episode, unacknowledged */
	HUB_ACK_DUPLICATE, /* that episode, acknowledged already: nothing to do */
	HUB_ACK_STALE,     /* this hub's open alert is a later episode: never ack it */
	HUB_ACK_WORSE,     /* that episode, but at a higher severity than was
			    * acknowledged: the worse news must be seen */
	HUB_ACK_OVER,      /* that episode is over here (closed, superseded) */
	HUB_ACK_WAIT,      /* that episode has not reached this hub yet */
	HUB_ACK_UNKNOWN,   /* no such rule here, or it does not cover that
			    * station or sensor */
};

const char *hub_ack_verdict_name(enum hub_ack_verdict v);

/*
 * What to do with a: covered, whether this hub's rules have a's alert id
 * at all; cur, the alert open on this hub under that id (NULL: none);
 * known, whether this hub has ever had a's episode (its episode history).
 */
enum hub_ack_verdict hub_ack_judge(const struct hub_ack *a, bool covered,
				   const struct agri_alert *cur, bool known);

#endif
