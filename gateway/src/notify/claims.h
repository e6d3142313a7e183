/*
 * Notification claims (docs/ha.md, "One notification per transition"): two
 * hubs of a province evaluate the same rules on the same readings and both
 * stage the same outbox rows; before a hub's notifier sends one, it claims
 * (episode key, transition, channel, recipient) in the province's
 * PostgreSQL (ha.claims), in agri_notify_claims, whose primary key is
 * that tuple. The hub whose INSERT ... ON CONFLICT DO NOTHING wins sends;
 * the other marks its row as sent by its peer. A hub that retries its own
 * claim (a delivery that failed, a restart) finds its own hub_id and
 * sends.
 *
 * When PostgreSQL cannot be reached (connect or query bounded by a few
 * seconds, then retried with backoff): the hub with ha.priority 1 sends at
 * once, unclaimed; the other waits, and sends unclaimed only once the
 * priority-1 hub's retained status (<prefix>/hub/<client id>/status, its
 * Last Will) has said offline for ha.takeover_s. Unclaimed sends are
 * counted and recorded as claims once PostgreSQL is back (the outbox's
 * reconcile), so the table says who sent what; a priority-2 hub that has
 * just reconnected waits a grace period first, so that the priority-1
 * hub's reconciled claims are in before it claims what it held back.
 *
 * Threads: claims_take/claims_record are called by the outbox's notifier
 * threads (one a channel) and serialise on mu, which guards the
 * connection and its retry state; a call blocks at most CLAIMS_IO_MS a
 * step (connect, query), never on the gateway's main loop or its writer.
 * claims_hub_status is called on paho's thread; peer_mu guards the peer's
 * state. Counters are atomics, read by any thread.
 */
#ifndef GATEWAY_CLAIMS_H
#define GATEWAY_CLAIMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gateway_config;
struct claims;

#define CLAIMS_IO_MS 3000        /* one connect or one query, at most */
#define CLAIMS_GRACE_MS 15000    /* priority 2, after PostgreSQL came back */

/* What a notification is claimed as. recipient: "" for a channel's own
 * recipients, "person:address" for a person's message. */
struct claim_key {
	const char *episode;
	const char *transition;
	const char *channel;
	const char *recipient;
};

enum claim_verdict {
	CLAIM_WON = 0,   /* this hub holds the claim: send */
	CLAIM_PEER,      /* the other hub does: do not send */
	CLAIM_UNCLAIMED, /* PostgreSQL away, and this hub is to send anyway */
	CLAIM_WAIT,      /* PostgreSQL away, the priority-1 hub is online: wait */
};

/* The claims of cfg->ha (NULL with *err = 0 when there is no ha section;
 * NULL with a negative errno otherwise). Does not connect yet. */
struct claims *claims_new(const struct gateway_config *cfg, int *err);
/* Makes a connect or query in progress give up (shutdown). Any thread. */
void claims_cancel(struct claims *c);
void claims_free(struct claims *c);

const char *claims_hub_id(const struct claims *c);

/*
 * Claims k for this hub. winner gets the claiming hub's id (CLAIM_WON,
 * CLAIM_PEER; "?" when a concurrent claim is not visible yet); on
 * CLAIM_WAIT *wait_ms says when to ask again. Notifier threads.
 */
enum claim_verdict claims_take(struct claims *c, const struct claim_key *k, char *winner,
			       size_t winner_len, int64_t *wait_ms);

/* A notification k sent unclaimed has gone out: counted. */
void claims_sent_unclaimed(struct claims *c);

/*
 * Records k, sent unclaimed, as this hub's claim (reconcile). Returns 1
 * (recorded), 0 (another hub had claimed it: winner says which; a
 * duplicate went out, counted), or a negative errno (PostgreSQL away:
 * try later). Notifier threads.
 */
int claims_record(struct claims *c, const struct claim_key *k, char *winner,
		  size_t winner_len);

/* A hub status message (topic <prefix>/hub/<client id>/status, retained,
 * the Last Will "offline"): tracks the priority-1 hub. paho's thread. */
void claims_hub_status(struct claims *c, const void *payload, size_t len);

/* The Last Will and status fields of this hub: ,"ha":{...} (with the
 * leading comma), into buf. Returns the length or -ENOSPC. */
int claims_status_fields(struct claims *c, char *buf, size_t len);

/* Prometheus text for /metrics (agri_gateway_notifications_unclaimed_total,
 * agri_gateway_claims_*). Any thread. Returns the length or -ENOSPC. */
int claims_metrics_text(struct claims *c, char *buf, size_t len);

#endif
