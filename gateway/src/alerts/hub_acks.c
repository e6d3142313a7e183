/*
 * Acknowledgements shared with another hub (docs/ha.md), the wiring's
 * side: the tables hub_acks_sent and hub_acks_waiting on the writer's
 * connection, and the verdicts of hub_ack.c (the message, pure) applied
 * through the engine. The ingest hook's on_message is
 * hub_acks_on_message(); wiring.c calls the rest from its hook
 * (before_commit, on_tick, a rollback) and from the API's
 * acknowledgement. Both share struct alerting through wiring_int.h.
 *
 * An acknowledgement this hub's API took is published for the other hub
 * (after the commit, QoS 1, not retained) and kept a day in hub_acks_sent,
 * to be published again after every reconnect: a publication lost with a
 * broker that restarted is not lost for the other hub, to which a second
 * copy is a duplicate. Another hub's acknowledgement comes through the
 * ingest's queue, in the order of the messages before it, and is judged
 * (hub_ack_judge) and applied here in the writer's transaction, as the API
 * would apply it, but never published again. One whose episode this hub
 * has not had yet waits in hub_acks_waiting (at most HUB_ACK_WAIT_MAX, a
 * day) and is applied in the transaction that raises that episode. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "alerts/alert.h"
#include "alerts/hub_ack.h"
#include "alerts/wiring_int.h"
#include "core/store.h"

void hub_acks_count(struct alerting *a)
{
	sqlite3_stmt *q = a->ack_wait_count;

	a->n_waiting = sqlite3_step(q) == SQLITE_ROW ? (size_t)sqlite3_column_int64(q, 0) : 0;
	sqlite3_reset(q);
	atomic_store(&a->acks_waiting, a->n_waiting);
}

/* Whether this hub has ever had k's episode (its history, not retracted). */
static int episode_known(struct alerting *a, const struct hub_ack *k, bool *known)
{
	sqlite3_stmt *q = a->ep_known;
	int rc;

	sqlite3_bind_text(q, 1, k->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, k->raised_at_ms);
	rc = sqlite3_step(q);
	*known = rc == SQLITE_ROW;
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
}

static int wait_put(struct alerting *a, const struct hub_ack *k, const char *episode,
		    int64_t received_ms)
{
	sqlite3_stmt *q = a->ack_wait_put;
	int rc;

	if (a->n_waiting >= HUB_ACK_WAIT_MAX) { /* the oldest make room */
		sqlite3_bind_int64(a->ack_wait_trim, 1, (int64_t)(a->n_waiting - HUB_ACK_WAIT_MAX + 1));
		if ((rc = al_step_reset(a->ack_wait_trim)) < 0)
			return rc;
		log_warn(LOG, "hub acks: %d waiting for their episode, the oldest dropped",
			 HUB_ACK_WAIT_MAX);
		atomic_fetch_add(&a->acks_expired, (uint64_t)sqlite3_changes(store_db(a->st)));
		a->n_waiting -= (size_t)sqlite3_changes(store_db(a->st));
	}
	sqlite3_bind_text(q, 1, episode, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, k->hub, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, k->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 4, k->raised_at_ms);
	sqlite3_bind_text(q, 5, k->severity, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 6, k->by, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 7, k->at_ms);
	sqlite3_bind_int64(q, 8, received_ms);
	if ((rc = al_step_reset(q)) < 0)
		return rc;
	a->n_waiting += (size_t)sqlite3_changes(store_db(a->st));
	return 0;
}

/*
 * Judges another hub's acknowledgement k and applies it (writer thread,
 * inside the transaction). waited: it comes from hub_acks_waiting (it is
 * not put there again, nor logged as new). Returns the verdict or a
 * negative errno.
 */
static int hub_ack_take(struct alerting *a, const struct hub_ack *k, int64_t received_ms,
			bool waited)
{
	struct agri_alert cur;
	char episode[HUB_ACK_ID_MAX + 24], at[32] = "";
	bool covered = alert_engine_covers(a->eng, k->id), has = false, known = false;
	enum hub_ack_verdict v;
	int rc;

	if (hub_ack_episode(k, episode, sizeof(episode)) < 0)
		return -EINVAL;
	if (covered)
		has = alert_engine_get(a->eng, k->id, &cur) == 0;
	if (covered && !(has && cur.raised_at_ms >= k->raised_at_ms) &&
	    (rc = episode_known(a, k, &known)) < 0)
		return rc;
	v = hub_ack_judge(k, covered, has ? &cur : NULL, known);
	agri_time_format(k->at_ms, at, sizeof(at));
	switch (v) {
	case HUB_ACK_APPLY:
		rc = alert_engine_ack(a->eng, k->id, k->by, util_now_ms(), al_on_transition, a);
		if (rc < 0 || (rc = a->emit_err) < 0)
			return rc;
		log_info(LOG, "acknowledged on hub %s id=%s episode=%s by=%s at=%s%s", k->hub, k->id,
			 episode, k->by, at, waited ? " (it waited for its episode)" : "");
		break;
	case HUB_ACK_WAIT:
		if (waited)
			return v;
		if ((rc = wait_put(a, k, episode, received_ms)) < 0)
			return rc;
		log_info(LOG, "hub ack from %s waits for its episode id=%s episode=%s by=%s"
			 " (this hub has %s)", k->hub, k->id, episode, k->by,
			 has ? "an older one open" : "none open");
		break;
	case HUB_ACK_DUPLICATE:
	case HUB_ACK_OVER:
		log_debug(LOG, "hub ack from %s: %s id=%s episode=%s", k->hub, hub_ack_verdict_name(v),
			  k->id, episode);
		break;
	default:
		log_info(LOG, "hub ack from %s ignored: %s id=%s episode=%s by=%s", k->hub,
			 v == HUB_ACK_STALE ? "this hub's open alert is a later episode"
			 : v == HUB_ACK_WORSE ? "the alert has risen since to a severity not acknowledged"
			 : "no such alert in this hub's rules",
			 k->id, episode, k->by);
		break;
	}
	atomic_fetch_add(&a->acks_judged[v], 1);
	return v;
}

/* The waiting acknowledgements whose episode this transaction raised. */
int hub_acks_check_waiting(struct alerting *a)
{
	sqlite3_stmt *q = a->ack_wait_all;
	struct hub_ack *v = calloc(a->n_waiting < HUB_ACK_WAIT_MAX ? a->n_waiting : HUB_ACK_WAIT_MAX,
				   sizeof(*v));
	int64_t *recv;
	size_t n = 0, cap = a->n_waiting < HUB_ACK_WAIT_MAX ? a->n_waiting : HUB_ACK_WAIT_MAX;
	int rc = 0;

	a->raised = false;
	recv = v ? calloc(cap, sizeof(*recv)) : NULL;
	if (!v || !recv) {
		free(v);
		return -ENOMEM;
	}
	while (n < cap && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct hub_ack *k = &v[n];

		snprintf(k->hub, sizeof(k->hub), "%s", (const char *)sqlite3_column_text(q, 0));
		snprintf(k->id, sizeof(k->id), "%s", (const char *)sqlite3_column_text(q, 1));
		k->raised_at_ms = sqlite3_column_int64(q, 2);
		snprintf(k->severity, sizeof(k->severity), "%s",
			 (const char *)sqlite3_column_text(q, 3));
		snprintf(k->by, sizeof(k->by), "%s", (const char *)sqlite3_column_text(q, 4));
		k->at_ms = sqlite3_column_int64(q, 5);
		recv[n++] = sqlite3_column_int64(q, 6);
	}
	sqlite3_reset(q);
	rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char episode[HUB_ACK_ID_MAX + 24];
		int r = hub_ack_take(a, &v[i], recv[i], true);

		if (r < 0) {
			rc = r;
		} else if (r != HUB_ACK_WAIT && hub_ack_episode(&v[i], episode, sizeof(episode)) > 0) {
			sqlite3_bind_text(a->ack_wait_del, 1, episode, -1, SQLITE_TRANSIENT);
			if ((rc = al_step_reset(a->ack_wait_del)) == 0 && a->n_waiting)
				a->n_waiting--;
		}
	}
	free(v);
	free(recv);
	return rc;
}

/* A day on: another hub's that never found their episode, and this hub's
 * own (no longer sent again on a reconnect). */
int hub_acks_expire(struct alerting *a, int64_t now_ms)
{
	int64_t mono = util_mono_ms();
	int rc, n;

	if (mono < a->next_ack_expiry_ms)
		return 0;
	a->next_ack_expiry_ms = mono + HUB_ACK_EXPIRE_EVERY_MS;
	sqlite3_bind_int64(a->ack_sent_expire, 1, now_ms - HUB_ACK_KEEP_MS);
	if ((rc = al_step_reset(a->ack_sent_expire)) < 0)
		return rc;
	if (!a->n_waiting)
		return 0;
	sqlite3_bind_int64(a->ack_wait_expire, 1, now_ms - HUB_ACK_KEEP_MS);
	if ((rc = al_step_reset(a->ack_wait_expire)) < 0)
		return rc;
	if ((n = sqlite3_changes(store_db(a->st))) > 0) {
		log_info(LOG, "hub acks: %d never found their episode here within a day: dropped", n);
		atomic_fetch_add(&a->acks_expired, (uint64_t)n);
		a->n_waiting = a->n_waiting > (size_t)n ? a->n_waiting - (size_t)n : 0;
	}
	return 0;
}

/* This hub's API acknowledged before (the alert as it was): published for
 * the other hub after the commit, and kept for a day. */
int hub_acks_share(struct alerting *a, const struct agri_alert *before, const char *who,
		   int64_t now_ms)
{
	struct hub_ack k = {.raised_at_ms = before->raised_at_ms, .at_ms = now_ms};
	char buf[HUB_ACK_MSG_MAX], episode[HUB_ACK_ID_MAX + 24];
	int n, rc;

	snprintf(k.hub, sizeof(k.hub), "%s", a->hub);
	snprintf(k.id, sizeof(k.id), "%s", before->id);
	snprintf(k.severity, sizeof(k.severity), "%s", before->severity);
	snprintf(k.by, sizeof(k.by), "%s", who && who[0] ? who : "api");
	if ((n = hub_ack_encode(&k, buf, sizeof(buf))) < 0 ||
	    hub_ack_episode(&k, episode, sizeof(episode)) < 0) {
		log_warn(LOG, "cannot encode the acknowledgement of id=%s for the other hub", k.id);
		return 0; /* this hub's acknowledgement stands */
	}
	sqlite3_bind_text(a->ack_sent_put, 1, episode, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(a->ack_sent_put, 2, now_ms);
	sqlite3_bind_text(a->ack_sent_put, 3, buf, n, SQLITE_TRANSIENT);
	if ((rc = al_step_reset(a->ack_sent_put)) < 0)
		return rc;
	al_stage_raw(a, a->ack_topic, buf, (size_t)n, false);
	atomic_fetch_add(&a->acks_sent, 1);
	return 0;
}

/* The ingest's on_message: <prefix>/hub/<client id>/ack of another hub. */
int hub_acks_on_message(void *ctx, struct store *st, const char *topic, const void *payload,
			size_t len, int64_t received_ms, char *why, size_t why_len)
{
	struct alerting *a = ctx;
	char hub[HUB_ACK_HUB_MAX + 2]; /* one more: a longer one is never ours */
	struct hub_ack k;
	int rc;

	(void)st;
	if (!hub_ack_topic_match(topic, a->prefix, hub, sizeof(hub)))
		return 0;
	if (strcmp(hub, a->hub) == 0) { /* our own, back from the broker */
		atomic_fetch_add(&a->acks_own, 1);
		return 1;
	}
	if (hub_ack_decode(payload, len, hub, &k, why, why_len) < 0) {
		atomic_fetch_add(&a->acks_refused, 1);
		return -EBADMSG;
	}
	if ((rc = al_enter(a)) < 0 || (rc = hub_ack_take(a, &k, received_ms, false)) < 0)
		return rc;
	return 1;
}
