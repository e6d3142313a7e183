/*
 * Alerting: the alert engine (alert.h, pure) attached to the gateway's
 * pipeline as an ingest hook. Every transition commits in the same SQLite
 * transaction as the readings or status that caused it, with the engine's
 * per-key state (table alert_state), the alert row and its history
 * (alerts, alert_events: v_alerts, v_alert_events) and the notifications
 * it asks for (the outbox). After the commit the alert's current state is
 * published retained on <prefix>/alerts/<station>/<rule>[/<sensor>] (an
 * empty retained message once a cleared alert is acknowledged). A restart
 * imports alert_state, so nothing is notified twice or lost.
 *
 * Threads: the hook's callbacks run on the ingest writer thread; timers
 * run there through on_tick; alerting_ack() may be called from any thread
 * (it hands the acknowledgement to the writer with ingest_call()).
 */
#ifndef GATEWAY_ALERTING_H
#define GATEWAY_ALERTING_H

#include "gateway/config.h"
#include "http/http.h"
#include "core/ingest.h"

struct alerting;
struct store;

/*
 * Loads cfg->rules_file (the channel names are gateway.json's notify
 * channels), creates the tables it needs and imports the saved engine
 * state from st. Returns NULL with *err when the rules are invalid (and
 * *e describes why: "rules[2].above: expected a number") or on a database
 * error. Before ingest_start().
 */
struct alerting *alerting_new(const struct gateway_config *cfg,
			      struct store *st, struct ingest *in,
			      struct agri_err *e, int *err);
/* Quiet: transitions are stored and published but not notified (history
 * import: agronomists are not woken for last month's tides). */
void alerting_set_quiet(struct alerting *a, bool quiet);
/* The ingest hook to attach with gateway_add_hook(). */
const struct ingest_hook *alerting_hook(struct alerting *a);
/* A peak rule confirmed a light-trap peak (writer thread, inside the
 * transaction that raises the alert: what fn writes through store_db()
 * commits with it). night_day: local day number of the peak night; late:
 * the peak was found in late readings (older than late_after_s). */
typedef int (*alerting_peak_fn)(void *ctx, const char *station, int64_t night_day,
				double count, bool late);
void alerting_on_peak(struct alerting *a, alerting_peak_fn fn, void *ctx);
/* A transition to notify (t->notify, not quiet), handed on in its
 * transaction after the rules' channels are staged (writer thread): the
 * people's policy (notify/people.h). A negative errno rolls back. */
struct alert_transition;
typedef int (*alerting_notice_fn)(void *ctx, const struct alert_transition *t);
void alerting_on_notice(struct alerting *a, alerting_notice_fn fn, void *ctx);
/* Republishes every open alert's retained state (after a reconnect).
 * Any thread. */
int alerting_republish(struct alerting *a);
/* http_hooks.ack_alert: acknowledges id on the writer thread. */
int alerting_ack(void *a, const char *id, const char *who,
		 struct http_ack_result *res);
/* Prometheus lines about the engine (keys, open alerts). Any thread. */
int alerting_metrics_text(void *a, char *buf, size_t len);
void alerting_free(struct alerting *a);

#endif
