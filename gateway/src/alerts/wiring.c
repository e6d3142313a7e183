/*
 * The alert engine wired into the ingest pipeline (see alerting.h): the
 * hook's callbacks feed the engine inside the writer's transaction, store
 * what it emits (alert rows, events, episodes, its per-key state) on the
 * writer's connection, stage the publications sent after the commit, and
 * rebuild the engine after a rollback. The acknowledgements shared with
 * another hub are hub_acks.c's; struct alerting, which both use, and its
 * locking rules are in wiring_int.h.
 */
#include "alerts/alerting.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/sqlite_errno.h"
#include "agri/buf.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "alerts/alert.h"
#include "alerts/hub_ack.h"
#include "alerts/wiring_int.h"
#include "notify/notify.h"
#include "notify/outbox.h"
#include "gateway/rules.h"
#include "core/store.h"

#define STATE_DEFER_MS 5000 /* see before_commit() */
#define PENDING_MAX 4096
#define ALERT_JSON_MAX 2048
/* A severity's rank in SQL, as enum alert_severity orders them. */
#define SEV_RANK(x) "(CASE " x " WHEN 'info' THEN 0 WHEN 'warning' THEN 1 WHEN 'alarm' THEN 2" \
		    " WHEN 'critical' THEN 3 ELSE -1 END)"

/* A publication staged in the transaction, sent after its commit. */
struct pending {
	char topic[AGRI_TOPIC_MAX];
	size_t len;
	char *payload; /* NULL when len == 0 (the empty retained message) */
	bool retained; /* alert states are; acknowledgements for the other hub not */
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS alert_state(key TEXT PRIMARY KEY, blob BLOB NOT NULL)"
	" WITHOUT ROWID;"
	/* acknowledgements this hub's API took, as published (sent again on a
	 * reconnect for a day: the other hub ignores a duplicate) */
	"CREATE TABLE IF NOT EXISTS hub_acks_sent(episode TEXT PRIMARY KEY,"
	" at INTEGER NOT NULL, payload TEXT NOT NULL) WITHOUT ROWID;"
	/* another hub's, for an episode this hub has not had yet */
	"CREATE TABLE IF NOT EXISTS hub_acks_waiting(episode TEXT PRIMARY KEY,"
	" hub TEXT NOT NULL, alert_id TEXT NOT NULL, raised_at INTEGER NOT NULL,"
	" severity TEXT NOT NULL, by TEXT NOT NULL, at INTEGER NOT NULL,"
	" received_at INTEGER NOT NULL) WITHOUT ROWID;";

static void pending_clear(struct alerting *a)
{
	for (size_t i = 0; i < a->n_pending; i++)
		free(a->pending[i].payload);
	a->n_pending = 0;
}

/* Stages a publication of topic (a copy of payload[0..len)). */
void al_stage_raw(struct alerting *a, const char *topic, const char *payload, size_t len,
		  bool retained)
{
	struct pending *p;

	if (a->n_pending == PENDING_MAX) {
		log_warn(LOG, "too many publications in one batch; topic=%s not published now", topic);
		return;
	}
	p = &a->pending[a->n_pending];
	if (snprintf(p->topic, sizeof(p->topic), "%s", topic) >= (int)sizeof(p->topic) ||
	    !(p->payload = malloc(len ? len : 1)))
		return;
	memcpy(p->payload, payload, len);
	p->len = len;
	p->retained = retained;
	a->n_pending++;
}

static void stage_publish(struct alerting *a, const struct agri_alert *al, bool empty)
{
	struct pending *p;
	char buf[ALERT_JSON_MAX];
	int n = 0;

	if (a->n_pending == PENDING_MAX) {
		log_warn(LOG, "too many alert publications in one batch; alert=%s not published now", al->id);
		return;
	}
	p = &a->pending[a->n_pending];
	if (agri_topic_build_alert(p->topic, sizeof(p->topic), a->prefix, al->station, al->rule,
				   al->sensor[0] ? al->sensor : NULL) < 0) {
		log_warn(LOG, "cannot build the topic of alert=%s", al->id);
		return;
	}
	p->payload = NULL;
	if (!empty) {
		n = agri_alert_encode(al, buf, sizeof(buf));
		if (n < 0 || !(p->payload = malloc((size_t)n))) {
			log_warn(LOG, "cannot encode alert=%s rc=%d", al->id, n);
			return;
		}
		memcpy(p->payload, buf, (size_t)n);
	}
	p->len = (size_t)n;
	p->retained = true;
	a->n_pending++;
}

static int bind_text_or_null(sqlite3_stmt *q, int i, const char *s)
{
	return s && *s ? sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(q, i);
}

int al_step_reset(sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
}

static void bind_time(sqlite3_stmt *q, int i, int64_t ms)
{
	if (ms == ALERT_TS_NONE)
		sqlite3_bind_null(q, i);
	else
		sqlite3_bind_int64(q, i, ms);
}

/* The alert's row: its current state (not for an older episode's
 * transitions, which only go to its history). */
static int store_alert_row(struct alerting *a, const struct alert_transition *t)
{
	const struct agri_alert *al = &t->alert;
	sqlite3_stmt *q = a->upsert_alert;

	sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, al->rule, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, al->station, -1, SQLITE_TRANSIENT);
	bind_text_or_null(q, 4, al->sensor);
	bind_text_or_null(q, 5, al->metric);
	sqlite3_bind_text(q, 6, al->severity, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 7, agri_alert_state_name(al->state), -1, SQLITE_STATIC);
	if (al->has_value)
		sqlite3_bind_double(q, 8, al->value);
	if (al->has_threshold)
		sqlite3_bind_double(q, 9, al->threshold);
	sqlite3_bind_int64(q, 10, al->raised_at_ms);
	sqlite3_bind_int64(q, 11, al->updated_at_ms);
	sqlite3_bind_text(q, 12, al->message, -1, SQLITE_TRANSIENT);
	if (t->acked)
		bind_text_or_null(q, 13, t->who);
	bind_text_or_null(q, 14, t->message_en);
	bind_text_or_null(q, 15, t->message_vi);
	sqlite3_bind_int(q, 16, t->late);
	bind_time(q, 17, t->event_ms);
	bind_time(q, 18, t->arrived_ms);
	return al_step_reset(q);
}

/* The episode table (v_alert_episodes): one row per episode, revised as
 * late readings move it, retracted when it did not happen. */
static int store_episode(struct alerting *a, const struct alert_transition *t)
{
	const struct agri_alert *al = &t->alert;
	sqlite3_stmt *q;

	switch (t->event) {
	case ALERT_EV_RAISED:
		q = a->ep_insert;
		sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, t->event_ms);
		sqlite3_bind_text(q, 3, t->peak ? t->peak : al->severity, -1, SQLITE_TRANSIENT);
		if (al->has_value)
			sqlite3_bind_double(q, 4, al->value);
		sqlite3_bind_int(q, 5, t->late);
		sqlite3_bind_int64(q, 6, t->arrived_ms);
		return al_step_reset(q);
	case ALERT_EV_CLEARED:
		q = a->ep_close;
		sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, al->raised_at_ms);
		sqlite3_bind_int64(q, 3, t->event_ms);
		return al_step_reset(q);
	case ALERT_EV_SEVERITY:
		q = a->ep_severity;
		sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, al->raised_at_ms);
		sqlite3_bind_text(q, 3, al->severity, -1, SQLITE_TRANSIENT);
		return al_step_reset(q);
	case ALERT_EV_REVISED:
		q = a->ep_revise;
		sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, t->old_start_ms);
		sqlite3_bind_int64(q, 3, t->event_ms);
		bind_time(q, 4, t->end_ms);
		bind_text_or_null(q, 5, t->peak);
		return al_step_reset(q);
	case ALERT_EV_RETRACTED:
		q = a->ep_retract;
		sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(q, 2, t->event_ms);
		return al_step_reset(q);
	default:
		return 0;
	}
}

static int store_transition(struct alerting *a, const struct alert_transition *t)
{
	const struct agri_alert *al = &t->alert;
	bool episode_only = t->event == ALERT_EV_REVISED || t->event == ALERT_EV_RETRACTED;
	sqlite3_stmt *q;
	int rc;

	/* an older episode's transitions, and revisions of any but the
	 * current one, leave the alert's row as it is */
	if ((!t->history && !episode_only) || (episode_only && (t->publish || t->retain_empty))) {
		if ((rc = store_alert_row(a, t)) < 0)
			return rc;
	}
	if ((rc = store_episode(a, t)) < 0 || episode_only)
		return rc;
	q = a->insert_event;
	sqlite3_bind_text(q, 1, al->id, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, t->event == ALERT_EV_CLOSED ? "closed" :
				agri_alert_state_name(al->state), -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, al->severity, -1, SQLITE_TRANSIENT);
	if (al->has_value)
		sqlite3_bind_double(q, 4, al->value);
	sqlite3_bind_int64(q, 5, t->history && t->event_ms != ALERT_TS_NONE ? t->event_ms
									      : al->updated_at_ms);
	sqlite3_bind_int(q, 6, t->late);
	bind_time(q, 7, t->arrived_ms);
	return al_step_reset(q);
}

/* ---- the engine's source: the stored readings, on the writer's
 * connection (inside the transaction: what it just stored is there) ---- */

static int src_metrics(void *ctx, const char *station, const char *sensor,
		       char (*out)[AGRI_ID_MAX + 1], size_t max)
{
	struct alerting *a = ctx;
	sqlite3_stmt *q = a->src_metrics;
	size_t n = 0;
	int rc;

	sqlite3_bind_text(q, 1, station, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, sensor, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < max)
		snprintf(out[n++], AGRI_ID_MAX + 1, "%s", (const char *)sqlite3_column_text(q, 0));
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? (int)n : agri_sqlite_errno(rc);
}

static int src_rows(void *ctx, const char *station, const char *sensor, const char *metric,
		    int64_t after_ms, struct alert_row *out, size_t max)
{
	struct alerting *a = ctx;
	sqlite3_stmt *q = a->src_rows;
	size_t n = 0;
	int rc;

	sqlite3_bind_text(q, 1, station, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 2, sensor, -1, SQLITE_TRANSIENT);
	sqlite3_bind_text(q, 3, metric, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 4, after_ms);
	sqlite3_bind_int64(q, 5, (int64_t)max);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < max) {
		struct alert_row *r = &out[n++];
		const char *why = (const char *)sqlite3_column_text(q, 3);

		r->ts = sqlite3_column_int64(q, 0);
		r->has_value = sqlite3_column_type(q, 1) != SQLITE_NULL;
		r->value = r->has_value ? sqlite3_column_double(q, 1) : 0;
		r->q = (enum agri_quality)sqlite3_column_int(q, 2);
		snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? (int)n : agri_sqlite_errno(rc);
}

static int src_holes(void *ctx, const char *station, int64_t from_ms, int64_t to_ms,
		     int64_t min_gap_ms, int64_t (*out)[2], size_t max)
{
	struct alerting *a = ctx;
	sqlite3_stmt *q = a->src_holes;
	size_t n = 0;
	int rc;

	sqlite3_bind_text(q, 1, station, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(q, 2, from_ms);
	sqlite3_bind_int64(q, 3, to_ms);
	sqlite3_bind_int64(q, 4, min_gap_ms);
	sqlite3_bind_int64(q, 5, (int64_t)max);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < max) {
		out[n][0] = sqlite3_column_int64(q, 0);
		out[n][1] = sqlite3_column_int64(q, 1);
		n++;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? (int)n : agri_sqlite_errno(rc);
}

/* The engine's emit callback (writer thread). */
void al_on_transition(void *ctx, const struct alert_transition *t)
{
	struct alerting *a = ctx;
	int rc;

	if (a->emit_err)
		return;
	atomic_fetch_add(&a->transitions, 1);
	if (t->event == ALERT_EV_RAISED || t->event == ALERT_EV_REVISED)
		a->raised = true; /* an acknowledgement may have waited for it */
	log_info(LOG, "%s id=%s severity=%s state=%s value=%g%s", alert_event_name(t->event),
		 t->alert.id, t->alert.severity, agri_alert_state_name(t->alert.state),
		 t->alert.has_value ? t->alert.value : 0.0, t->late ? " late=1" : "");
	if (t->store && (rc = store_transition(a, t)) < 0) {
		a->emit_err = rc;
		return;
	}
	if (t->publish || t->retain_empty)
		stage_publish(a, &t->alert, t->retain_empty && !t->publish);
	if ((t->notify || t->notify_escalation) && !a->quiet) {
		const char *names[2 * RULE_CHANNELS_MAX];
		size_t n = alert_transition_channels(t, names, 2 * RULE_CHANNELS_MAX);
		char remind[32] = "";
		struct outbox_notice no = {.alert = &t->alert, .event = alert_event_name(t->event),
					   .text_en = t->message_en, .text_vi = t->message_vi,
					   .transition = remind};

		/* Reminders repeat within an episode: the n-th one, counted from
		 * the episode's start as both hubs see it (docs/ha.md). */
		if (t->event == ALERT_EV_RENOTIFY && t->rule && t->rule->renotify_s > 0)
			snprintf(remind, sizeof(remind), "renotify#%lld",
				 (long long)((t->arrived_ms - t->alert.raised_at_ms +
					      t->rule->renotify_s * 500) / (t->rule->renotify_s * 1000)));

		if (n && (rc = outbox_stage(store_db(a->st), &no, names, n)) < 0) {
			a->emit_err = rc;
			return;
		}
	}
	/* Every transition worth telling goes to the people's policy too, in
	 * this transaction (rules' channels above stay for machines). */
	if (t->notify && !a->quiet && a->on_notice && (rc = a->on_notice(a->notice_ctx, t)) < 0) {
		a->emit_err = rc;
		return;
	}
	if (t->event == ALERT_EV_RAISED && t->night_day >= 0 && a->on_peak &&
	    (rc = a->on_peak(a->peak_ctx, t->alert.station, t->night_day, t->alert.value,
			     t->late)) < 0)
		a->emit_err = rc;
}

void alerting_set_quiet(struct alerting *a, bool quiet)
{
	a->quiet = quiet;
	alert_engine_set_quiet(a->eng, quiet);
}

void alerting_on_peak(struct alerting *a, alerting_peak_fn fn, void *ctx)
{
	a->on_peak = fn;
	a->peak_ctx = ctx;
}

void alerting_on_notice(struct alerting *a, alerting_notice_fn fn, void *ctx)
{
	a->on_notice = fn;
	a->notice_ctx = ctx;
}

static int save_state(void *ctx, const char *key, const void *blob, size_t len)
{
	struct alerting *a = ctx;
	sqlite3_stmt *q = len ? a->put_state : a->del_state;

	sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
	if (len)
		sqlite3_bind_blob(q, 2, blob, (int)len, SQLITE_TRANSIENT);
	return al_step_reset(q);
}

/* Enters the engine's transaction (once per store transaction). */
int al_enter(struct alerting *a)
{
	int rc;

	if (a->in_txn)
		return 0;
	if ((rc = alert_engine_begin(a->eng)) < 0)
		return rc;
	alert_engine_set_mono(a->eng, util_mono_ms());
	a->in_txn = true;
	a->emit_err = 0;
	a->raised = false;
	return 0;
}

/* After feeding the engine: the first emit error. */
static int leave(struct alerting *a, int rc)
{
	if (rc < 0)
		return rc;
	return a->emit_err;
}

/* The keys the transaction changed, written once just before its COMMIT;
 * a key whose only change is its evidence (newest reading, last seen)
 * waits up to STATE_DEFER_MS (a tick writes it), except at shutdown. */
static int before_commit(void *ctx, struct store *st)
{
	struct alerting *a = ctx;

	int rc;

	(void)st;
	if (!a->in_txn)
		return 0;
	/* fresh readings out of order, full holds: replayed before the commit */
	if ((rc = alert_engine_flush(a->eng, util_now_ms(), al_on_transition, a)) < 0 ||
	    (rc = a->emit_err) < 0)
		return rc;
	/* another hub's acknowledgements whose episode has just begun here */
	if (a->raised && a->n_waiting && (rc = hub_acks_check_waiting(a)) < 0)
		return rc;
	return alert_engine_export_due(a->eng, util_mono_ms(),
				       ingest_stopping(a->in) ? 0 : STATE_DEFER_MS,
				       save_state, a);
}

static int on_telemetry(void *ctx, struct store *st, const struct agri_telemetry *t,
			const bool *fresh, int64_t received_ms)
{
	struct alerting *a = ctx;
	int rc;

	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	return leave(a, alert_engine_batch(a->eng, t, fresh, received_ms, al_on_transition, a));
}

static int on_status(void *ctx, struct store *st, const struct agri_status *s,
		     int64_t received_ms)
{
	struct alerting *a = ctx;
	int rc;

	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	if (s->online)
		alert_engine_backlog(a->eng, s->station, (uint64_t)s->spool_depth);
	return leave(a, alert_engine_status(a->eng, s->station, s->online, received_ms,
					    al_on_transition, a));
}

/* A station past its budgets or with a wrong clock, or the hub's storage
 * (ingest_event): its built-in or configured alert. */
static int on_event(void *ctx, struct store *st, const struct ingest_event *ev)
{
	struct alerting *a = ctx;
	enum rule_kind kind = ev->kind == INGEST_EV_QUOTA ? RULE_MISBEHAVING
			      : ev->kind == INGEST_EV_CLOCK ? RULE_CLOCK
			      : ev->kind == INGEST_EV_CALIBRATION ? RULE_CALIBRATION : RULE_HUB;
	char id[AGRI_ID_MAX + 1];
	int rc;

	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	/* The hub's id is its MQTT client id: made a valid station id. */
	snprintf(id, sizeof(id), "%s", ev->station);
	for (char *c = id; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
			*c = '-';
	if (!agri_station_id_valid(id))
		return 0;
	return leave(a, alert_engine_event(a->eng, kind, id, ev->value, ev->detail_en,
					   ev->detail_vi, ev->at_ms, al_on_transition, a));
}

static int save_state(void *ctx, const char *key, const void *blob, size_t len);

static int on_series_retired(void *ctx, struct store *st, const char *station,
			     const char *sensor, const char *metric)
{
	struct alerting *a = ctx;
	int rc;

	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	rc = alert_engine_forget(a->eng, station, sensor, metric, save_state, a);
	if (rc > 0)
		log_info(LOG, "forgot the alert state of a retired series station=%s sensor=%s"
			 " metric=%s keys=%d", station, sensor, metric, rc);
	return rc < 0 ? rc : 0;
}

static int on_tick(void *ctx, struct store *st, int64_t now_ms)
{
	struct alerting *a = ctx;
	int rc;

	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	if ((rc = hub_acks_expire(a, now_ms)) < 0)
		return rc;
	return leave(a, alert_engine_tick(a->eng, now_ms, al_on_transition, a));
}

static void update_stats(struct alerting *a)
{
	struct alert_engine_stats s;

	alert_engine_stats(a->eng, &s);
	atomic_store(&a->keys, s.keys);
	atomic_store(&a->open_alerts, s.open_alerts);
	atomic_store(&a->held, s.held);
	atomic_store(&a->replayed_rows, s.replayed_rows);
	atomic_store(&a->late_dropped, s.late_dropped);
	atomic_store(&a->acks_waiting, a->n_waiting);
}

static void on_commit(void *ctx)
{
	struct alerting *a = ctx;

	if (!a->in_txn)
		return;
	alert_engine_commit(a->eng);
	a->in_txn = false;
	log_release(&a->reload_note, LOG, "alert engine committing again");
	for (size_t i = 0; i < a->n_pending; i++) {
		struct pending *p = &a->pending[i];

		ingest_publish_later(a->in, p->topic, p->payload ? p->payload : "", p->len,
				     p->retained);
	}
	pending_clear(a);
	update_stats(a);
}

static int import_state(struct alerting *a, sqlite3 *db);

/* After a rollback: the engine (which keeps no undo images) is rebuilt from
 * alert_state, i.e. from the last commit. Evidence that was waiting to be
 * written is lost as in a crash (docs/alerts.md). */
static void reload(struct alerting *a)
{
	struct alert_engine *old = a->eng, *eng = alert_engine_new(a->rules);

	if (!eng) {
		log_error(LOG, "cannot rebuild the alert engine after a rollback: keeping its state");
		return;
	}
	alert_engine_set_undo(eng, false);
	alert_engine_set_limits(eng, a->keys_per_station, a->open_per_station);
	alert_engine_set_source(eng, &a->src);
	alert_engine_set_quiet(eng, a->quiet);
	a->eng = eng;
	if (import_state(a, store_db(a->st)) < 0) {
		log_error(LOG, "cannot reload alert state after a rollback: keeping the engine's state");
		a->eng = old;
		alert_engine_free(eng);
		return;
	}
	alert_engine_start(eng, alert_engine_started(old));
	alert_engine_free(old);
	hub_acks_count(a); /* a rolled-back insert or delete */
	update_stats(a);
	log_complain(&a->reload_note, LOG_LVL_INFO, LOG,
		     "alert engine rebuilt from the database after a rollback keys=%zu",
		     atomic_load(&a->keys));
}

static void on_rollback(void *ctx)
{
	struct alerting *a = ctx;

	if (!a->in_txn)
		return;
	alert_engine_rollback(a->eng);
	a->in_txn = false;
	pending_clear(a);
	reload(a);
}

struct ack_req {
	struct alerting *a;
	const char *id, *who;
	struct http_ack_result *res;
};

static int ack_fn(void *ctx, struct ingest *in, struct store *st)
{
	struct ack_req *r = ctx;
	struct agri_alert al, before;
	int64_t now = util_now_ms();
	bool had;
	int rc;

	(void)in;
	(void)st;
	if ((rc = al_enter(r->a)) < 0)
		return rc;
	had = alert_engine_get(r->a->eng, r->id, &before) == 0;
	rc = alert_engine_ack(r->a->eng, r->id, r->who, now, al_on_transition, r->a);
	if (rc < 0)
		return rc;
	r->res->changed = rc > 0;
	/* made here: the other hub is told (it never tells it back) */
	if (rc > 0 && had && (rc = hub_acks_share(r->a, &before, r->who, now)) < 0)
		return rc;
	if (alert_engine_get(r->a->eng, r->id, &al) == 0)
		snprintf(r->res->state, sizeof(r->res->state), "%s", agri_alert_state_name(al.state));
	else
		snprintf(r->res->state, sizeof(r->res->state), "cleared"); /* closed */
	rc = leave(r->a, 0);
	return rc < 0 ? rc : 0;
}

int alerting_ack(void *ctx, const char *id, const char *who, struct http_ack_result *res)
{
	struct ack_req r = {.a = ctx, .id = id, .who = who, .res = res};

	return ingest_call(r.a->in, ack_fn, &r, 5000);
}

static void republish_one(void *ctx, const struct agri_alert *al)
{
	stage_publish(ctx, al, false);
}

static int republish_fn(void *ctx, struct ingest *in, struct store *st)
{
	struct alerting *a = ctx;
	sqlite3_stmt *q = a->ack_sent_recent;
	int rc;

	(void)in;
	(void)st;
	if ((rc = al_enter(a)) < 0)
		return rc;
	alert_engine_foreach(a->eng, republish_one, a);
	/* this hub's acknowledgements of the last day, for the other hub: one
	 * lost with a broker that restarted is not lost (a duplicate there) */
	sqlite3_bind_int64(q, 1, util_now_ms() - HUB_ACK_KEEP_MS);
	sqlite3_bind_int(q, 2, HUB_ACK_RESEND_MAX);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		al_stage_raw(a, a->ack_topic, (const char *)sqlite3_column_text(q, 0),
			     (size_t)sqlite3_column_bytes(q, 0), false);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? 0 : agri_sqlite_errno(rc);
}

int alerting_republish(struct alerting *a)
{
	return ingest_call(a->in, republish_fn, a, 10000);
}

int alerting_metrics_text(void *ctx, char *buf, size_t len)
{
	struct alerting *a = ctx;
	int n = snprintf(buf, len,
			 "# HELP agri_gateway_alert_keys Per-key states held by the alert engine.\n"
			 "# TYPE agri_gateway_alert_keys gauge\n"
			 "agri_gateway_alert_keys %zu\n"
			 "# HELP agri_gateway_alerts_open Alerts active, acknowledged or cleared-unacknowledged.\n"
			 "# TYPE agri_gateway_alerts_open gauge\n"
			 "agri_gateway_alerts_open %zu\n"
			 "# HELP agri_gateway_alert_transitions_total Alert transitions since start.\n"
			 "# TYPE agri_gateway_alert_transitions_total counter\n"
			 "agri_gateway_alert_transitions_total %llu\n"
			 "# HELP agri_gateway_alert_late_held_total Readings older than what their"
			 " rule had seen, held to be evaluated in reading order.\n"
			 "# TYPE agri_gateway_alert_late_held_total counter\n"
			 "agri_gateway_alert_late_held_total %llu\n"
			 "# HELP agri_gateway_alert_replayed_rows_total Stored readings read back to"
			 " evaluate late ones in reading order.\n"
			 "# TYPE agri_gateway_alert_replayed_rows_total counter\n"
			 "agri_gateway_alert_replayed_rows_total %llu\n"
			 "# HELP agri_gateway_alert_late_dropped_total Late readings no rule evaluated"
			 " (older than replay_max_s or than their key's checkpoints).\n"
			 "# TYPE agri_gateway_alert_late_dropped_total counter\n"
			 "agri_gateway_alert_late_dropped_total %llu\n"
			 "# HELP agri_gateway_hub_acks_total Acknowledgements shared with another hub:"
			 " sent (taken by this hub's API), own (this hub's, back from the broker),"
			 " refused (malformed: dead letters), expired (never found their episode),"
			 " and another hub's by what was done with them.\n"
			 "# TYPE agri_gateway_hub_acks_total counter\n"
			 "agri_gateway_hub_acks_total{result=\"sent\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"own\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"refused\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"expired\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"applied\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"duplicate\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"stale\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"worse\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"over\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"waiting\"} %llu\n"
			 "agri_gateway_hub_acks_total{result=\"unknown\"} %llu\n"
			 "# HELP agri_gateway_hub_acks_waiting Another hub's acknowledgements"
			 " waiting for their episode to begin here.\n"
			 "# TYPE agri_gateway_hub_acks_waiting gauge\n"
			 "agri_gateway_hub_acks_waiting %zu\n",
			 atomic_load(&a->keys), atomic_load(&a->open_alerts),
			 (unsigned long long)atomic_load(&a->transitions),
			 (unsigned long long)atomic_load(&a->held),
			 (unsigned long long)atomic_load(&a->replayed_rows),
			 (unsigned long long)atomic_load(&a->late_dropped),
			 (unsigned long long)atomic_load(&a->acks_sent),
			 (unsigned long long)atomic_load(&a->acks_own),
			 (unsigned long long)atomic_load(&a->acks_refused),
			 (unsigned long long)atomic_load(&a->acks_expired),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_APPLY]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_DUPLICATE]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_STALE]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_WORSE]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_OVER]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_WAIT]),
			 (unsigned long long)atomic_load(&a->acks_judged[HUB_ACK_UNKNOWN]),
			 atomic_load(&a->acks_waiting));

	return (n < 0 || (size_t)n >= len) ? -ENOSPC : n;
}

/*
 * Loads alert_state into the engine. A row the engine refuses (its rule
 * was removed or rescoped, its blob is corrupt, or its station is past
 * its budget of keys) is deleted, so that a restart never reloads what
 * made the last run fail. With a transaction open (a rebuild after a
 * rollback) nothing is deleted: the next clean start does it.
 */
static int import_state(struct alerting *a, sqlite3 *db)
{
	sqlite3_stmt *q;
	int rc, n = 0, dropped = 0, deleted = 0;
	bool can_delete = sqlite3_get_autocommit(db) != 0;

	rc = sqlite3_prepare_v2(db, "SELECT key, blob FROM alert_state", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	if (can_delete)
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(q, 0);
		int r = alert_engine_import(a->eng, key, sqlite3_column_blob(q, 1),
					    (size_t)sqlite3_column_bytes(q, 1));

		if (r == 0) {
			n++;
			continue;
		}
		if (r == -ENOMEM)
			break; /* not the row's fault: keep it */
		dropped++; /* rule removed or changed scope, corrupt, past a budget */
		if (can_delete && save_state(a, key, NULL, 0) == 0)
			deleted++;
	}
	sqlite3_finalize(q);
	if (can_delete)
		sqlite3_exec(db, rc == SQLITE_DONE ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc != SQLITE_DONE)
		return rc == SQLITE_ROW ? -ENOMEM : agri_sqlite_errno(rc);
	if (n || dropped)
		log_info(LOG, "alert state restored keys=%d dropped=%d deleted=%d", n, dropped,
			 deleted);
	return 0;
}

struct alerting *alerting_new(const struct gateway_config *cfg, struct store *st,
			      struct ingest *in, struct agri_err *e, int *err)
{
	const char *channels[NOTIFY_CHANNELS_MAX];
	size_t n_ch = 0;
	struct alerting *a = calloc(1, sizeof(*a));
	sqlite3 *db = store_db(st);
	int rc;

	if (!a) {
		*err = -ENOMEM;
		return NULL;
	}
	n_ch = notify_channel_names(cfg, channels, AGRI_ARRAY_SIZE(channels));
	a->in = in;
	a->st = st;
	snprintf(a->prefix, sizeof(a->prefix), "%s", cfg->broker.topic_prefix);
	snprintf(a->hub, sizeof(a->hub), "%s", cfg->broker.client_id);
	if (hub_ack_topic(a->ack_topic, sizeof(a->ack_topic), a->prefix, a->hub) < 0) {
		*err = -EINVAL;
		agri_err_set(e, "broker.client_id", "too long for a topic");
		goto fail;
	}
	a->rules = rules_load(cfg->rules_file, channels, n_ch, e);
	if (!a->rules) {
		*err = -EINVAL;
		goto fail;
	}
	a->eng = alert_engine_new(a->rules);
	a->pending = calloc(PENDING_MAX, sizeof(*a->pending));
	if (!a->eng || !a->pending) {
		*err = -ENOMEM;
		goto fail;
	}
	a->keys_per_station = (size_t)cfg->limits.alert_keys_per_station;
	a->open_per_station = (size_t)cfg->limits.open_alerts_per_station;
	alert_engine_set_limits(a->eng, a->keys_per_station, a->open_per_station);
	if ((rc = sqlite3_exec(db, schema, NULL, NULL, NULL)) != SQLITE_OK ||
	    (rc = outbox_init(db)) < 0) {
		*err = rc < 0 ? rc : agri_sqlite_errno(rc);
		agri_err_set(e, "", "cannot create the alert tables: %s", sqlite3_errmsg(db));
		goto fail;
	}
#define PREP(stmt, sql)                                                          \
	if ((rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &a->stmt, \
				     NULL)) != SQLITE_OK) {                     \
		*err = agri_sqlite_errno(rc);                                          \
		agri_err_set(e, "", "cannot prepare: %s", sqlite3_errmsg(db));   \
		goto fail;                                                       \
	}
	PREP(upsert_alert,
	     "INSERT INTO alerts(id, rule, station, sensor, metric, severity, state, value,"
	     " threshold, raised_at, updated_at, message, acked_by, message_en, message_vi,"
	     " late, event_at, arrived_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
	     " ON CONFLICT(id) DO UPDATE SET severity=excluded.severity, state=excluded.state,"
	     " value=excluded.value, threshold=excluded.threshold, raised_at=excluded.raised_at,"
	     " updated_at=excluded.updated_at, message=excluded.message,"
	     " sensor=excluded.sensor, metric=excluded.metric, acked_by=excluded.acked_by,"
	     " message_en=excluded.message_en, message_vi=excluded.message_vi,"
	     " late=excluded.late, event_at=excluded.event_at, arrived_at=excluded.arrived_at");
	PREP(insert_event,
	     "INSERT INTO alert_events(alert_id, state, severity, value, at, late, arrived_at)"
	     " VALUES(?,?,?,?,?,?,?)");
	PREP(ep_insert,
	     "INSERT INTO alert_episodes(alert_id, start, severity, value, late, arrived_at)"
	     " VALUES(?,?,?,?,?,?)");
	PREP(ep_close,
	     "UPDATE alert_episodes SET end = ?3 WHERE alert_id = ?1 AND start = ?2"
	     " AND end IS NULL AND retracted = 0");
	/* an episode's severity is the worst it reached (docs/alerts.md) */
	PREP(ep_severity,
	     "UPDATE alert_episodes SET severity = ?3 WHERE alert_id = ?1 AND start = ?2"
	     " AND retracted = 0 AND " SEV_RANK("?3") " > " SEV_RANK("severity"));
	PREP(ep_revise,
	     "UPDATE alert_episodes SET start = ?3, end = ?4, severity = coalesce(?5, severity)"
	     " WHERE id = (SELECT id FROM"
	     " alert_episodes WHERE alert_id = ?1 AND start = ?2 AND retracted = 0"
	     " ORDER BY id DESC LIMIT 1)");
	PREP(ep_retract,
	     "UPDATE alert_episodes SET retracted = 1 WHERE id = (SELECT id FROM"
	     " alert_episodes WHERE alert_id = ?1 AND start = ?2 AND retracted = 0"
	     " ORDER BY id DESC LIMIT 1)");
	PREP(src_metrics,
	     "SELECT se.metric FROM series se JOIN stations st ON st.id = se.station_id"
	     " WHERE st.name = ?1 AND se.sensor = ?2 ORDER BY se.metric");
	PREP(src_rows,
	     "SELECT r.ts, r.value, r.q, r.why FROM readings r WHERE r.series_id ="
	     " (SELECT se.id FROM series se JOIN stations st ON st.id = se.station_id"
	     " WHERE st.name = ?1 AND se.sensor = ?2 AND se.metric = ?3)"
	     " AND r.ts > ?4 ORDER BY r.ts LIMIT ?5");
	PREP(src_holes,
	     "WITH t(ts) AS (SELECT ?2 UNION ALL SELECT r.ts FROM readings r"
	     " JOIN series se ON se.id = r.series_id JOIN stations st ON st.id = se.station_id"
	     " WHERE st.name = ?1 AND r.ts > ?2 AND r.ts <= ?3),"
	     " d(a, b) AS (SELECT lag(ts) OVER (ORDER BY ts), ts FROM t)"
	     " SELECT a, b FROM d WHERE b - a > ?4 ORDER BY a LIMIT ?5");
	PREP(ack_sent_put, "INSERT OR REPLACE INTO hub_acks_sent(episode, at, payload) VALUES(?,?,?)");
	PREP(ack_sent_recent, "SELECT payload FROM hub_acks_sent WHERE at >= ?1 ORDER BY at LIMIT ?2");
	PREP(ack_sent_expire, "DELETE FROM hub_acks_sent WHERE at < ?1");
	PREP(ack_wait_put,
	     "INSERT OR IGNORE INTO hub_acks_waiting(episode, hub, alert_id, raised_at, severity,"
	     " by, at, received_at) VALUES(?,?,?,?,?,?,?,?)");
	PREP(ack_wait_all,
	     "SELECT hub, alert_id, raised_at, severity, by, at, received_at FROM hub_acks_waiting");
	PREP(ack_wait_del, "DELETE FROM hub_acks_waiting WHERE episode = ?1");
	PREP(ack_wait_expire, "DELETE FROM hub_acks_waiting WHERE received_at < ?1");
	PREP(ack_wait_trim,
	     "DELETE FROM hub_acks_waiting WHERE episode IN (SELECT episode FROM hub_acks_waiting"
	     " ORDER BY received_at LIMIT ?1)");
	PREP(ack_wait_count, "SELECT count(*) FROM hub_acks_waiting");
	PREP(ep_known,
	     "SELECT 1 FROM alert_episodes WHERE alert_id = ?1 AND start = ?2 AND retracted = 0"
	     " LIMIT 1");
	PREP(put_state, "INSERT OR REPLACE INTO alert_state(key, blob) VALUES(?, ?)");
	PREP(del_state, "DELETE FROM alert_state WHERE key = ?");
#undef PREP
	if ((rc = import_state(a, db)) < 0) {
		*err = rc;
		agri_err_set(e, "", "cannot read the saved alert state");
		goto fail;
	}
	hub_acks_count(a);
	alert_engine_set_undo(a->eng, false);
	a->src = (struct alert_source){.ctx = a, .metrics = src_metrics, .rows = src_rows,
				       .holes = src_holes};
	alert_engine_set_source(a->eng, &a->src);
	alert_engine_start(a->eng, util_now_ms());
	update_stats(a);
	a->hook = (struct ingest_hook){
		.name = "alerts",
		.ctx = a,
		.on_telemetry = on_telemetry,
		.on_status = on_status,
		.before_commit = before_commit,
		.on_commit = on_commit,
		.on_rollback = on_rollback,
		.on_tick = on_tick,
		.on_event = on_event,
		.on_series_retired = on_series_retired,
		.on_message = hub_acks_on_message,
	};
	return a;
fail:
	alerting_free(a);
	return NULL;
}

const struct ingest_hook *alerting_hook(struct alerting *a)
{
	return &a->hook;
}

void alerting_free(struct alerting *a)
{
	if (!a)
		return;
	pending_clear(a);
	free(a->pending);
	sqlite3_finalize(a->upsert_alert);
	sqlite3_finalize(a->insert_event);
	sqlite3_finalize(a->put_state);
	sqlite3_finalize(a->del_state);
	sqlite3_finalize(a->ep_insert);
	sqlite3_finalize(a->ep_close);
	sqlite3_finalize(a->ep_revise);
	sqlite3_finalize(a->ep_retract);
	sqlite3_finalize(a->ep_severity);
	sqlite3_finalize(a->src_metrics);
	sqlite3_finalize(a->src_rows);
	sqlite3_finalize(a->src_holes);
	sqlite3_finalize(a->ack_sent_put);
	sqlite3_finalize(a->ack_sent_recent);
	sqlite3_finalize(a->ack_sent_expire);
	sqlite3_finalize(a->ack_wait_put);
	sqlite3_finalize(a->ack_wait_all);
	sqlite3_finalize(a->ack_wait_del);
	sqlite3_finalize(a->ack_wait_expire);
	sqlite3_finalize(a->ack_wait_trim);
	sqlite3_finalize(a->ack_wait_count);
	sqlite3_finalize(a->ep_known);
	alert_engine_free(a->eng);
	rules_free(a->rules);
	free(a);
}
