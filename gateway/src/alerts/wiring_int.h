/*
 * The alert wiring's insides, shared by its files (see alerting.h for the
 * API; not a public header): struct alerting, the writer's transaction,
 * the alert rows and the publications staged for after the commit
 * (wiring.c), and the acknowledgements shared with another hub
 * (hub_acks.c; the message itself and its verdict are the pure
 * hub_ack.c).
 */
#ifndef GATEWAY_ALERTS_WIRING_INT_H
#define GATEWAY_ALERTS_WIRING_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/topic.h"
#include "alerts/alert.h"
#include "alerts/alerting.h"
#include "alerts/hub_ack.h"

#define LOG "alerts"
/* Acknowledgements shared with another hub (docs/ha.md, "Acknowledgements") */
#define HUB_ACK_KEEP_MS (24 * 3600 * 1000LL) /* an own one is sent again on a
					      * reconnect, another's waits: a day */
#define HUB_ACK_WAIT_MAX 1000   /* another hub's waiting for their episode */
#define HUB_ACK_RESEND_MAX 256  /* own ones sent again on a reconnect */
#define HUB_ACK_EXPIRE_EVERY_MS 60000

struct pending;

/*
 * Locking rules: everything in struct alerting except the atomics is
 * touched by the ingest writer thread alone (hook callbacks and the
 * functions it runs for ingest_call); alerting_ack() and
 * alerting_republish() only queue work for it.
 */
struct alerting {
	struct rules *rules;
	struct alert_engine *eng;
	struct ingest *in;
	struct store *st;
	char prefix[65];
	struct ingest_hook hook;
	bool in_txn;
	int emit_err; /* first error inside an emit callback */
	sqlite3_stmt *upsert_alert, *insert_event, *put_state, *del_state;
	sqlite3_stmt *ep_insert, *ep_close, *ep_revise, *ep_retract, *ep_severity;
	sqlite3_stmt *src_metrics, *src_rows, *src_holes; /* the engine's source */
	struct alert_source src;
	struct pending *pending;
	size_t n_pending;
	atomic_size_t keys, open_alerts;
	atomic_uint_fast64_t transitions;
	atomic_uint_fast64_t held, replayed_rows, late_dropped; /* event time */
	alerting_peak_fn on_peak;
	void *peak_ctx;
	alerting_notice_fn on_notice; /* the people's policy (notify/people.h) */
	void *notice_ctx;
	bool quiet;
	struct log_complaint reload_note; /* logged once until a commit */
	size_t keys_per_station, open_per_station;
	/* Acknowledgements shared with another hub (hub_ack.h) */
	char hub[GW_NAME_MAX + 1];        /* this gateway's client id */
	char ack_topic[AGRI_TOPIC_MAX];   /* <prefix>/hub/<client id>/ack */
	sqlite3_stmt *ack_sent_put, *ack_sent_recent, *ack_sent_expire;
	sqlite3_stmt *ack_wait_put, *ack_wait_all, *ack_wait_del, *ack_wait_expire,
		*ack_wait_trim, *ack_wait_count, *ep_known;
	size_t n_waiting;                 /* rows of hub_acks_waiting */
	bool raised;                      /* an episode began or moved in this
					   * transaction: check the waiting ones */
	int64_t next_ack_expiry_ms;       /* monotonic */
	atomic_uint_fast64_t acks_sent, acks_own, acks_refused, acks_expired;
	atomic_uint_fast64_t acks_judged[HUB_ACK_UNKNOWN + 1];
	atomic_size_t acks_waiting;
};

/* wiring.c: the writer's transaction, its publications and rows */
int al_enter(struct alerting *a);
void al_stage_raw(struct alerting *a, const char *topic, const char *payload, size_t len,
		  bool retained);
int al_step_reset(sqlite3_stmt *q);
void al_on_transition(void *ctx, const struct alert_transition *t);

/* hub_acks.c: acknowledgements shared with another hub (docs/ha.md) */
void hub_acks_count(struct alerting *a);
int hub_acks_check_waiting(struct alerting *a);
int hub_acks_expire(struct alerting *a, int64_t now_ms);
int hub_acks_share(struct alerting *a, const struct agri_alert *before, const char *who,
		   int64_t now_ms);
int hub_acks_on_message(void *ctx, struct store *st, const char *topic, const void *payload,
			size_t len, int64_t received_ms, char *why, size_t why_len);

#endif
