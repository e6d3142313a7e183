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

struct agri_buf;
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
 * agri_gateway_claims_*, and with forwarding claims agri_gateway_sta_*).
 * Any thread. Returns the length or -ENOSPC. */
int claims_metrics_text(struct claims *c, char *buf, size_t len);

/*
 * Forwarding claims (docs/upstream.md, "Two hubs"): the SensorThings sink
 * of each hub claims every observation before it POSTs it, by
 * (Datastream name, phenomenonTime) -- the reading's own identity, which
 * both hubs derive alike however their forwarders batch it -- in
 * agri_sta_claims. The claim row says who claimed it and when, and when it
 * was sent: a claim older than the lease (ha.takeover_s) without a sent
 * mark may be taken over by either hub (the claimer died, or cannot reach
 * the server), and rows taken over are reconciled against the server
 * first. When the database cannot be reached the priority rules of
 * notifications apply; sends made without a claim are kept by the sink
 * and recorded once it is back (claims_obs_record). The sink's thread
 * only.
 */
#define CLAIMS_OBS_KEEP_MS (12LL * 3600 * 1000) /* sent claims are pruned after */

enum obs_verdict {
	OBS_SEND = 0,    /* claimed now, fresh: send */
	OBS_SEND_CHECK,  /* ours, but claimed before (taken over, or our own
			    earlier claim): reconcile with the server, then send */
	OBS_DONE,        /* sent already, by either hub: skip */
	OBS_WAIT,        /* the other hub holds it unsent, within its lease */
};

struct claim_obs {
	const char *datastream; /* "station/sensor/metric" */
	int64_t ts_ms;          /* the phenomenonTime */
	/* claims_obs_take's answers */
	uint8_t verdict;        /* enum obs_verdict */
	bool peer;              /* OBS_DONE, OBS_WAIT: the other hub's claim */
	bool taken_over;        /* OBS_SEND_CHECK: from the other hub */
	int64_t lease_left_ms;  /* OBS_SEND*: how long the claim stays ours;
				   OBS_WAIT: when to ask again */
};

/* The sink will claim observations: the table is made at connect. Main
 * thread, before anything connects. */
void claims_want_observations(struct claims *c);
/* The lease of an unsent claim (ha.takeover_s), ms. */
int64_t claims_lease_ms(const struct claims *c);
/* Wall-clock ms when the database last came back after being away (0:
 * never away). Rows stored before it plus the grace may have been sent
 * unclaimed by the other hub: the sink reconciles them. */
int64_t claims_back_ms(struct claims *c);

/*
 * Claims o[0..n) for this hub. CLAIM_WON: each o[i].verdict says what to
 * do with it; CLAIM_UNCLAIMED: the database is away and this hub sends
 * everything unclaimed (then claims_obs_unclaimed, and record later);
 * CLAIM_WAIT: nothing now, ask again after *wait_ms (the database is away
 * and the priority-1 hub online; a grace after it came back; a lock
 * conflict).
 */
enum claim_verdict claims_obs_take(struct claims *c, struct claim_obs *o, size_t n,
				   int64_t *wait_ms);
/* Marks this hub's claims of o[0..n) sent (those with a verdict
 * OBS_SEND*; others are ignored). 0, or a negative errno (away: record
 * later). */
int claims_obs_sent(struct claims *c, const struct claim_obs *o, size_t n);
/* n observations went out without a claim: counted. */
void claims_obs_unclaimed(struct claims *c, size_t n);
/* n observations skipped because the other hub sent them: counted. */
void claims_obs_peer(struct claims *c, size_t n);
/*
 * Records sends made without a claim (unclaimed[i]) or whose sent mark
 * failed, as this hub's sent claims. 0: every one is settled (recorded,
 * or held by the other hub: a duplicate when unclaimed[i], counted), or a
 * negative errno (away: try later).
 */
int claims_obs_record(struct claims *c, const struct claim_obs *o, const bool *unclaimed,
		      size_t n);
/* Deletes sent claims older than CLAIMS_OBS_KEEP_MS, a chunk at a time
 * and at most every few minutes. Quiet when the database is away. */
void claims_obs_prune(struct claims *c);

/*
 * Creating a SensorThings entity (a Thing, a Datastream...): a lookup by
 * name, then a create, which two hubs must not both do. CLAIM_WON: this
 * hub holds the lock (PostgreSQL's advisory lock on key) until
 * claims_entity_unlock; CLAIM_UNCLAIMED: the database is away, go ahead
 * (the priority rules); CLAIM_WAIT: the other hub is at it, or wait as
 * above (*wait_ms).
 */
enum claim_verdict claims_entity_lock(struct claims *c, const char *key, int64_t *wait_ms);
void claims_entity_unlock(struct claims *c, const char *key);

/* A PostgreSQL array literal of n texts ({"a","b\"c"}) appended to b:
 * each quoted and escaped. */
void claims_pg_array(struct agri_buf *b, const char *const *v, size_t n);

#endif
