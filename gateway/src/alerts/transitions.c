/*
 * Alert transitions: raising an episode, changing its severity, clearing
 * it, and the emission of each (docs/alerts.md, Lifecycle); the no_data
 * kind's raise and clear.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/topic.h"
#include "alerts/engine_int.h"

/* ---- transitions ------------------------------------------------------- */

enum alert_lang ae_primary(const struct alert_engine *eng)
{
	return eng->rules->lang_vi ? ALERT_LANG_VI : ALERT_LANG_EN;
}

static void rec_messages(const struct alert_engine *eng, struct arec *rec,
			 const struct alert_text_args *args)
{
	alert_text_build(args, ALERT_LANG_EN, rec->msg_en, sizeof(rec->msg_en));
	alert_text_build(args, ALERT_LANG_VI, rec->msg_vi, sizeof(rec->msg_vi));
	memcpy(rec->a.message, ae_primary(eng) == ALERT_LANG_VI ? rec->msg_vi : rec->msg_en,
	       sizeof(rec->a.message));
}

void ae_emit(struct alert_engine *eng, struct out *o, const struct akey *k,
	     enum alert_event ev, const char *prefix_who, int prefix)
{
	struct alert_transition t;
	const struct arec *rec = k->rec;

	memset(&t, 0, sizeof(t));
	t.alert = rec->a;
	t.event = ev;
	t.rule = ae_key_rule(eng, k);
	t.acked = rec->acked;
	memcpy(t.message_en, rec->msg_en, sizeof(t.message_en));
	memcpy(t.message_vi, rec->msg_vi, sizeof(t.message_vi));
	if (prefix >= 0) {
		alert_text_prefix(t.message_en, sizeof(t.message_en), prefix, prefix_who,
				  ALERT_LANG_EN);
		alert_text_prefix(t.message_vi, sizeof(t.message_vi), prefix, prefix_who,
				  ALERT_LANG_VI);
		memcpy(t.alert.message, ae_primary(eng) == ALERT_LANG_VI ? t.message_vi
								      : t.message_en,
		       sizeof(t.alert.message));
	}
	snprintf(t.who, sizeof(t.who), "%s", rec->who);
	t.store = ev != ALERT_EV_RENOTIFY && ev != ALERT_EV_ESCALATED;
	t.retain_empty = ev == ALERT_EV_CLOSED ||
			 (ev == ALERT_EV_CLEARED && rec->acked);
	t.publish = t.store && !t.retain_empty;
	t.notify = ev != ALERT_EV_ESCALATED;
	t.notify_escalation = rec->escalated;
	t.night_day = -1;
	if (ev == ALERT_EV_RAISED && o->has_night)
		t.night_day = o->night_day;
	o->has_night = false;
	t.event_ms = o->ev_ms != NONE ? o->ev_ms : o->now_ms;
	t.end_ms = t.old_start_ms = t.old_end_ms = ALERT_TS_NONE;
	t.arrived_ms = o->now_ms;
	if (ae_capture(eng, k, &t))
		return; /* a replay: compared with what was told first */
	ae_told(eng, o, (struct akey *)k, &t);
	o->count++;
	if (o->fn)
		o->fn(o->ctx, &t);
}

/* What a rule key's message is built from (besides the kind). */
struct alert_text_args ae_text_args(const struct rule *R, const struct akey *k,
				    enum alert_text_what what)
{
	return (struct alert_text_args){
		.what = what, .rule = R, .station = k->station, .sensor = k->sensor,
		.metric = R->metric, .unit = "",
	};
}

static bool what_has_threshold(enum alert_text_what what)
{
	return what != ALERT_TEXT_OFFLINE && what != ALERT_TEXT_SILENT &&
	       what != ALERT_TEXT_EVENT;
}

/* Opens a new episode on k (replacing a cleared one) and emits RAISED. */
int ae_raise_alert(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct alert_text_args *args, int level,
		   enum alert_severity sev, int64_t at_ms, int64_t now_ms)
{
	const struct rule *R = ae_key_rule(eng, k);
	struct arec *rec = k->rec;

	if (!rec) {
		struct akey *st = ae_key_find(eng, -1, k->station, "");

		/* A station's budget of open alerts (its own events always
		 * raise): past it the raise waits; the condition, still on,
		 * raises it once one of the station's alerts has closed. */
		if (eng->open_per_station && st && st->st_open >= eng->open_per_station &&
		    !rule_kind_is_event(R->kind)) {
			eng->raises_refused++;
			return 0;
		}
		rec = calloc(1, sizeof(*rec));
		if (!rec)
			return -ENOMEM;
		k->rec = rec;
		ae_open_add(eng, k, +1);
	} else {
		memset(rec, 0, sizeof(*rec));
	}
	ae_rec_fill_ids(rec, R, k);
	snprintf(rec->a.metric, sizeof(rec->a.metric), "%s", args->metric ? args->metric : "");
	snprintf(rec->a.severity, sizeof(rec->a.severity), "%s", alert_severity_name(sev));
	rec->a.state = AGRI_ALERT_ACTIVE;
	rec->peak = (uint8_t)sev;
	rec->a.value = args->has_value ? args->value : 0;
	rec->a.has_value = args->has_value;
	rec->a.threshold = args->threshold;
	rec->a.has_threshold = what_has_threshold(args->what);
	rec->a.raised_at_ms = rec->a.updated_at_ms = at_ms;
	rec->level = level;
	rec->active_since_ms = rec->last_notify_ms = now_ms;
	rec_messages(eng, rec, args);
	o->has_night = args->what == ALERT_TEXT_PEAK;
	o->night_day = args->night_day;
	ae_emit(eng, o, k, ALERT_EV_RAISED, NULL, -1);
	return 0;
}

enum alert_severity ae_rec_severity(const struct arec *rec)
{
	enum alert_severity s = ALERT_SEV_WARNING;

	(void)alert_severity_parse(rec->a.severity, &s);
	return s;
}

/* A ladder level changed with the severity: emits SEVERITY. Rising
 * re-activates an acknowledged alert (a person must see it again). */
void ae_severity_change(struct alert_engine *eng, struct out *o,
			struct akey *k, const struct alert_text_args *args,
			int level, enum alert_severity sev, int64_t at_ms,
			int64_t now_ms)
{
	struct arec *rec = k->rec;

	if (sev > ae_rec_severity(rec) && rec->a.state != AGRI_ALERT_ACTIVE) {
		rec->a.state = AGRI_ALERT_ACTIVE;
		rec->acked = false;
		rec->who[0] = '\0';
		rec->active_since_ms = now_ms;
	}
	snprintf(rec->a.severity, sizeof(rec->a.severity), "%s", alert_severity_name(sev));
	if ((unsigned)sev > rec->peak)
		rec->peak = (uint8_t)sev;
	snprintf(rec->a.metric, sizeof(rec->a.metric), "%s", args->metric ? args->metric : "");
	rec->a.value = args->value;
	rec->a.has_value = args->has_value;
	rec->a.threshold = args->threshold;
	rec->level = level;
	if (at_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = at_ms;
	rec->last_notify_ms = now_ms;
	rec_messages(eng, rec, args);
	ae_emit(eng, o, k, ALERT_EV_SEVERITY, NULL, -1);
}

/* The condition ended: emits CLEARED; an acknowledged episode is over. */
void ae_clear_alert(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct alert_text_args *args, int64_t at_ms,
		    int64_t now_ms)
{
	struct arec *rec = k->rec;

	rec->a.state = AGRI_ALERT_CLEARED;
	if (args->has_value) {
		rec->a.value = args->value;
		rec->a.has_value = true;
	}
	if (at_ms > rec->a.updated_at_ms)
		rec->a.updated_at_ms = at_ms;
	rec->last_notify_ms = now_ms;
	rec->level = -1;
	rec_messages(eng, rec, args);
	ae_emit(eng, o, k, ALERT_EV_CLEARED, NULL, -1);
	if (rec->acked) {
		free(rec);
		k->rec = NULL;
		ae_open_add(eng, k, -1);
	}
}

bool ae_rec_open_active(const struct akey *k)
{
	return k->rec && k->rec->a.state != AGRI_ALERT_CLEARED;
}


/* ---- no_data ------------------------------------------------------------- */

int ae_nodata_raise(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct rule *R, bool offline, int64_t now_ms)
{
	struct alert_text_args a = ae_text_args(R, k, offline ? ALERT_TEXT_OFFLINE
						: ALERT_TEXT_SILENT);

	struct akey *st = ae_key_find(eng, -1, k->station, "");
	int64_t at = now_ms, ev = o->ev_ms;
	int rc;

	/*
	 * An offline station's gap began after its newest reading: that is
	 * the episode's start, not this hub's clock. Two hubs get the same
	 * readings and the same Last Will in the same order over the bridge,
	 * so they derive the same episode key and claim its notification once
	 * (docs/ha.md); by the clock they were a millisecond apart and both
	 * sent it. A newest reading older than after_s is another story (the
	 * station was silent first): the hub's clock, as for silence. The
	 * episode row starts there too (the transition's event time), where
	 * its clear will look for it.
	 */
	if (offline && st && st->ev_ts != NONE && st->ev_ts <= now_ms &&
	    now_ms - st->ev_ts < R->after_s * 1000)
		o->ev_ms = at = st->ev_ts;
	a.metric = R->metric;
	a.aux = R->after_s;
	rc = ae_raise_alert(eng, o, k, &a, -1, R->severity, at, now_ms);
	o->ev_ms = ev;
	if (rc == 0 && k->rec) {
		k->rec->gap_from = st ? st->ev_ts : NONE;
		k->rec->back = false;
	}
	return rc;
}

void ae_nodata_clear(struct alert_engine *eng, struct out *o, struct akey *k,
		     const struct rule *R, int64_t now_ms)
{
	struct alert_text_args a = ae_text_args(R, k, k->sensor[0] ? ALERT_TEXT_SILENT
						: ALERT_TEXT_OFFLINE);

	a.metric = R->metric;
	a.cleared = true;
	ae_clear_alert(eng, o, k, &a, now_ms, now_ms);
}
