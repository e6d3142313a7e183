/*
 * The documents the policy makes of what it is given (see policy.h;
 * docs/notify.md "Preview"): the JSON inputs (policy_doc_*(): an alert
 * transition, a station's intake windows, an advisory, the sites), which
 * the gateway hands to policy_input() and the journal keeps for a replay;
 * and the people page (policy_publish_people(): each person of the
 * recipients file, their addresses masked, in notify_people for
 * GET /api/v1/recipients). Nothing here decides.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/alert.h"
#include "forecast/model.h"
#include "notify/policy_int.h"

/* --- documents -------------------------------------------------------------------- */

static char *print_free(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	return s;
}

static void add_site(const struct policy *p, cJSON *o, const char *station)
{
	cJSON_AddStringToObject(o, "station", station);
	cJSON_AddStringToObject(o, "district", policy_district(p, station));
	cJSON_AddStringToObject(o, "place", policy_place(p, station));
}

int policy_doc_alert(const struct policy *p, const struct alert_transition *t, char **out)
{
	const struct agri_alert *a = &t->alert;
	cJSON *o = cJSON_CreateObject(), *lv;

	if (!o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "in", "alert");
	cJSON_AddStringToObject(o, "id", a->id);
	cJSON_AddStringToObject(o, "rule", a->rule);
	cJSON_AddStringToObject(o, "kind", t->rule && rule_kind_name(t->rule->kind)
				? rule_kind_name(t->rule->kind) : "threshold");
	add_site(p, o, a->station);
	cJSON_AddStringToObject(o, "sensor", a->sensor);
	cJSON_AddStringToObject(o, "metric", a->metric);
	cJSON_AddStringToObject(o, "event", alert_event_name(t->event));
	cJSON_AddStringToObject(o, "severity", a->severity);
	cJSON_AddStringToObject(o, "state", agri_alert_state_name(a->state));
	if (a->has_value)
		cJSON_AddNumberToObject(o, "value", a->value);
	if (a->has_threshold)
		cJSON_AddNumberToObject(o, "threshold", a->threshold);
	cJSON_AddNumberToObject(o, "event_at", (double)(t->event_ms != ALERT_TS_NONE && t->event_ms
							? t->event_ms : a->updated_at_ms));
	cJSON_AddBoolToObject(o, "late", t->late || t->event == ALERT_EV_LATE ||
				       t->event == ALERT_EV_PAST);
	cJSON_AddStringToObject(o, "vi", t->message_vi);
	cJSON_AddStringToObject(o, "en", t->message_en);
	if (t->rule && t->rule->kind == RULE_LADDER && (lv = cJSON_AddArrayToObject(o, "levels"))) {
		for (size_t i = 0; i < t->rule->n_levels; i++) {
			const struct rule_level *L = &t->rule->levels[i];
			cJSON *e = cJSON_CreateObject();

			if (!e)
				break;
			cJSON_AddNumberToObject(e, "t", L->threshold);
			cJSON_AddStringToObject(e, "s", alert_severity_name(L->severity));
			if (L->op == RULE_BELOW)
				cJSON_AddBoolToObject(e, "below", true);
			cJSON_AddStringToObject(e, "vi", L->label.vi);
			cJSON_AddStringToObject(e, "en", L->label.en);
			cJSON_AddItemToArray(lv, e);
		}
	}
	*out = print_free(o);
	return *out ? 0 : -ENOMEM;
}

int policy_doc_windows(const struct policy *p, const char *station, int64_t made_at_ms,
		       const struct forecast_window *w, size_t n, char **out)
{
	cJSON *o = cJSON_CreateObject(), *arr;

	if (!o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "in", "windows");
	add_site(p, o, station);
	cJSON_AddNumberToObject(o, "made_at", (double)made_at_ms);
	arr = cJSON_AddArrayToObject(o, "windows");
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *e = cJSON_CreateObject();

		if (!e)
			break;
		cJSON_AddNumberToObject(e, "below", w[i].below);
		cJSON_AddNumberToObject(e, "from", (double)w[i].from_ms);
		cJSON_AddNumberToObject(e, "to", (double)w[i].to_ms);
		if (w[i].sluice)
			cJSON_AddBoolToObject(e, "sluice", true);
		if (forecast_tide_name(w[i].tide))
			cJSON_AddStringToObject(e, "tide", forecast_tide_name(w[i].tide));
		cJSON_AddItemToArray(arr, e);
	}
	*out = print_free(o);
	return *out ? 0 : -ENOMEM;
}

int policy_doc_advisory(const struct policy *p, const struct advisory *a, double count,
			const char *text_en, const char *text_vi, char **out)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "in", "advisory");
	cJSON_AddStringToObject(o, "id", a->id);
	cJSON_AddStringToObject(o, "pest", "bph");
	add_site(p, o, a->station);
	cJSON_AddNumberToObject(o, "peak_at", (double)a->peak_at_ms);
	cJSON_AddNumberToObject(o, "sow_from", (double)a->sow_from_ms);
	cJSON_AddNumberToObject(o, "sow_to", (double)a->sow_to_ms);
	cJSON_AddNumberToObject(o, "hatch_from", (double)a->hatch_from_ms);
	cJSON_AddNumberToObject(o, "hatch_to", (double)a->hatch_to_ms);
	cJSON_AddNumberToObject(o, "count", count);
	cJSON_AddStringToObject(o, "vi", text_vi);
	cJSON_AddStringToObject(o, "en", text_en);
	*out = print_free(o);
	return *out ? 0 : -ENOMEM;
}

int policy_doc_sites(const struct policy *p, char **out)
{
	cJSON *o = cJSON_CreateObject(), *arr;

	if (!o)
		return -ENOMEM;
	cJSON_AddStringToObject(o, "in", "sites");
	arr = cJSON_AddArrayToObject(o, "sites");
	for (size_t i = 0; arr && i < p->n_sites; i++) {
		cJSON *e = cJSON_CreateObject();

		if (!e)
			break;
		cJSON_AddStringToObject(e, "station", p->sites[i].station);
		cJSON_AddStringToObject(e, "name", p->sites[i].name);
		cJSON_AddStringToObject(e, "district", p->sites[i].district);
		cJSON_AddItemToArray(arr, e);
	}
	*out = print_free(o);
	return *out ? 0 : -ENOMEM;
}

/* --- the people, for the dashboard -------------------------------------------------- */

/* "+8490•••4567", "l•••@example.vn": enough to recognise, not to use. */
static void mask(char *out, size_t len, const char *s, bool email)
{
	size_t n = strlen(s);

	if (!n) {
		out[0] = '\0';
		return;
	}
	if (email) {
		const char *at = strchr(s, '@');

		snprintf(out, len, "%c•••%s", s[0], at ? at : "");
	} else if (n > 7) {
		snprintf(out, len, "%.5s•••%s", s, s + n - 3);
	} else {
		snprintf(out, len, "•••");
	}
}

int policy_publish_people(struct policy *p, sqlite3 *db)
{
	int rc = 0;

	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_people", NULL), &rc);
	/* the local day of notify_message.day, for GET /api/v1/recipients */
	if (rc >= 0)
		rc = pol_meta_set(db, "utc_offset_min", p->people.utc_offset_min);
	for (size_t i = 0; i < p->people.n && rc >= 0; i++) {
		const struct recipient *r = &p->people.v[i];
		cJSON *o = cJSON_CreateObject(), *a;
		char m[160], *s;

		if (!o)
			return -ENOMEM;
		cJSON_AddStringToObject(o, "name", r->name);
		cJSON_AddStringToObject(o, "display", r->display[0] ? r->display : r->name);
		cJSON_AddStringToObject(o, "role", r->role);
		cJSON_AddStringToObject(o, "lang", r->lang_en ? "en" : "vi");
		a = cJSON_AddArrayToObject(o, "channels");
		if (r->sms[0]) {
			mask(m, sizeof(m), r->sms, false);
			cJSON_AddItemToArray(a, cJSON_CreateString(m));
		}
		if (r->email[0]) {
			mask(m, sizeof(m), r->email, true);
			cJSON_AddItemToArray(a, cJSON_CreateString(m));
		}
		if (r->webhook[0]) {
			snprintf(m, sizeof(m), "webhook %s", r->webhook);
			cJSON_AddItemToArray(a, cJSON_CreateString(m));
		}
		a = cJSON_AddArrayToObject(o, "stations");
		for (size_t k = 0; k < r->n_stations; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(r->stations[k]));
		a = cJSON_AddArrayToObject(o, "districts");
		for (size_t k = 0; k < r->n_districts; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(r->districts[k]));
		a = cJSON_AddArrayToObject(o, "salinity_g_l");
		for (size_t k = 0; k < r->n_levels; k++)
			cJSON_AddItemToArray(a, cJSON_CreateNumber(r->levels[k]));
		a = cJSON_AddArrayToObject(o, "pests");
		for (size_t k = 0; k < r->n_pests; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(r->pests[k]));
		a = cJSON_AddArrayToObject(o, "rules");
		for (size_t k = 0; k < r->n_rules; k++)
			cJSON_AddItemToArray(a, cJSON_CreateString(r->rules[k]));
		cJSON_AddStringToObject(o, "min_severity", alert_severity_name(r->min_severity));
		a = cJSON_AddArrayToObject(o, "at_once");
		for (int sv = ALERT_SEV_INFO; sv <= ALERT_SEV_CRITICAL; sv++)
			if (r->at_once & (1u << sv))
				cJSON_AddItemToArray(a, cJSON_CreateString(alert_severity_name(sv)));
		if (r->has_quiet) {
			snprintf(m, sizeof(m), "%02d:%02d-%02d:%02d", r->quiet_from_min / 60,
				 r->quiet_from_min % 60, r->quiet_to_min / 60, r->quiet_to_min % 60);
			cJSON_AddStringToObject(o, "quiet", m);
		} else {
			cJSON_AddNullToObject(o, "quiet");
		}
		if (r->bulletin) {
			snprintf(m, sizeof(m), "%02d:%02d", r->bulletin_min / 60, r->bulletin_min % 60);
			cJSON_AddStringToObject(o, "bulletin", m);
		} else {
			cJSON_AddNullToObject(o, "bulletin");
		}
		s = print_free(o);
		if (!s)
			return -ENOMEM;
		rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_people(person, doc) VALUES(?, ?)", "tt",
				      r->name, s), &rc);
		free(s);
	}
	return rc;
}
