/*
 * The policy's alerts (see policy_int.h; docs/notify.md "Routing",
 * "Tide-aware damping", "Flapping"): an alert transition routed to each
 * person who follows it (station or district, rule, kind, severity, a
 * light trap's pest); then a ladder's crossings of the person's levels
 * damped over a tidal day, with its all-clear once it has stayed below
 * them a whole tidal day, any other rule's changes watched for flapping,
 * with one message once it settles, and late news of an episode already
 * over left to the bulletin. What is to be said becomes items
 * (pol_item_add()); each (person, alert) keeps its state in a notify_key
 * row, whose timer policy.c fires back here (pol_ladder_timer(),
 * pol_other_timer()). policy_input() hands it the "alert" inputs
 * (pol_on_alert()).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "notify/policy_int.h"

/* --- alerts: ladders ------------------------------------------------------------- */

struct ladder {
	size_t n;
	double t[RULE_LEVELS_MAX];
	enum alert_severity s[RULE_LEVELS_MAX];
	bool below;
	const cJSON *lv[RULE_LEVELS_MAX];
};

static void ladder_read(const cJSON *in, struct ladder *L)
{
	const cJSON *e;

	memset(L, 0, sizeof(*L));
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(in, "levels")) {
		if (L->n == RULE_LEVELS_MAX)
			break;
		L->t[L->n] = pol_jnum(e, "t", 0);
		L->s[L->n] = pol_sev_of(pol_jstr(e, "s"));
		L->below = pol_jbool(e, "below");
		L->lv[L->n++] = e;
	}
}

/* The person's levels as ladder indices, ascending: salinity by g/L (each
 * at the first ladder level at or above it), others by severity. */
static size_t person_levels(const struct recipient *r, const struct ladder *L, bool salinity,
			    int *out)
{
	size_t k = 0;

	for (size_t j = 0; j < L->n; j++) {
		bool want = false;

		if (salinity) {
			for (size_t i = 0; i < r->n_levels && !want; i++) {
				/* the smallest ladder level at or above r's level i */
				size_t first = L->n;

				for (size_t m = 0; m < L->n; m++)
					if (L->t[m] >= r->levels[i] - 1e-9) {
						first = m;
						break;
					}
				want = first == j;
			}
		} else {
			want = L->s[j] >= r->min_severity;
		}
		if (want)
			out[k++] = (int)j;
	}
	return k;
}

/* The ladder index on after the transition (-1: none). */
static int ladder_on(const cJSON *in, const struct ladder *L)
{
	const char *state = pol_jstr(in, "state");
	double thr = pol_jnum(in, "threshold", NAN);
	enum alert_severity s = pol_sev_of(pol_jstr(in, "severity"));
	int on = -1;

	if (strcmp(state, "cleared") == 0 || strcmp(state, "closed") == 0)
		return -1;
	for (size_t j = 0; j < L->n; j++)
		if (!isnan(thr) && fabs(L->t[j] - thr) < 1e-9)
			return (int)j;
	for (size_t j = 0; j < L->n; j++) /* the rule changed: by severity */
		if (L->s[j] == s)
			on = (int)j;
	return on;
}

static int ladder_step(struct policy *p, sqlite3 *db, const struct recipient *r, const cJSON *in,
		       int64_t at, bool salinity)
{
	struct ladder L;
	int lv[RULE_LEVELS_MAX], on, i = 0, cur, rc = 0;
	size_t k;
	int64_t day, max, timer = INT64_MIN;
	const char *key = pol_jstr(in, "id");
	cJSON *st;

	ladder_read(in, &L);
	k = person_levels(r, &L, salinity, lv);
	if (!k)
		return 0;
	on = ladder_on(in, &L);
	while ((size_t)i < k && lv[i] <= on)
		i++;
	if (!(st = pol_key_load(db, r->name, key, &rc)))
		return rc < 0 ? rc : -ENOMEM;
	cur = (int)pol_jint(st, "cur", 0);
	day = pol_jint(st, "day", 0);
	max = pol_jint(st, "max", 0);
	if (i > cur) {
		int j = lv[i - 1];
		bool tell = false;

		if (!day || at >= day + p->people.tidal_day_ms) {
			day = at;
			max = i;
			tell = true;
		} else if (i > max) {
			max = i;
			tell = true;
		}
		{
			cJSON *it = pol_item_new(tell ? "crossing" : "recross", in, at);
			bool urgent = L.s[j] == ALERT_SEV_CRITICAL;
			bool now = salinity || (r->at_once & (1u << L.s[j]));

			if (!it) {
				rc = -ENOMEM;
				goto out;
			}
			cJSON_AddNumberToObject(it, "level", L.t[j]);
			cJSON_AddStringToObject(it, "severity", alert_severity_name(L.s[j]));
			cJSON_AddNumberToObject(it, "value", pol_jnum(in, "value", L.t[j]));
			cJSON_AddBoolToObject(it, "salinity", salinity);
			cJSON_AddStringToObject(it, "label_vi", pol_jstr(L.lv[j], "vi"));
			cJSON_AddStringToObject(it, "label_en", pol_jstr(L.lv[j], "en"));
			cJSON_AddStringToObject(it, "msg_vi", pol_jstr(in, "vi"));
			cJSON_AddStringToObject(it, "msg_en", pol_jstr(in, "en"));
			if (L.below)
				cJSON_AddBoolToObject(it, "below", true);
			rc = pol_item_add(p, db, r, at, it, urgent && tell,
					  tell && now ? ITEM_NOW : ITEM_BULLETIN);
			cJSON_Delete(it);
			if (rc < 0)
				goto out;
			if (tell && now)
				pol_set_bool(st, "told", true);
		}
		pol_set_num(st, "below_at", 0);
		pol_set_num(st, "low", L.t[lv[0]]);
		pol_set_str(st, "low_vi", pol_jstr(L.lv[lv[0]], "vi"));
	} else if (i < cur && i == 0) {
		pol_set_num(st, "below_at", (double)at);
		if (pol_jbool(st, "told"))
			timer = at + p->people.tidal_day_ms;
	} else if (i == 0 && pol_jbool(st, "told") && pol_jint(st, "below_at", 0)) {
		timer = pol_jint(st, "below_at", 0) + p->people.tidal_day_ms;
	}
	pol_set_num(st, "cur", i);
	pol_set_num(st, "day", (double)day);
	pol_set_num(st, "max", (double)max);
	pol_set_str(st, "t", "ladder");
	pol_set_str(st, "station", pol_jstr(in, "station"));
	pol_set_str(st, "place", pol_jstr(in, "place"));
	pol_set_str(st, "rule", pol_jstr(in, "rule"));
	pol_set_bool(st, "salinity", salinity);
	if (L.below)
		pol_set_bool(st, "below", true);
	rc = pol_key_save(db, r->name, key, st, at, timer);
out:
	cJSON_Delete(st);
	return rc;
}

/* A ladder's all-clear timer: below the person's lowest level for a
 * whole tidal day. */
int pol_ladder_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
		     const char *key, cJSON *st, int64_t t)
{
	int rc;

	if (pol_jint(st, "cur", 0) == 0 && pol_jbool(st, "told")) {
		cJSON *it = pol_item_new("clear", NULL, t);

		if (!it)
			return -ENOMEM;
		cJSON_AddStringToObject(it, "station", pol_jstr(st, "station"));
		cJSON_AddStringToObject(it, "place", pol_jstr(st, "place"));
		cJSON_AddStringToObject(it, "alert", key);
		cJSON_AddStringToObject(it, "rule", pol_jstr(st, "rule"));
		cJSON_AddNumberToObject(it, "level", pol_jnum(st, "low", 0));
		cJSON_AddNumberToObject(it, "since", pol_jnum(st, "below_at", 0));
		cJSON_AddBoolToObject(it, "salinity", pol_jbool(st, "salinity"));
		if (pol_jbool(st, "below"))
			cJSON_AddBoolToObject(it, "below", true);
		rc = pol_item_add(p, db, r, t, it, false, ITEM_NOW);
		cJSON_Delete(it);
		if (rc < 0)
			return rc;
	}
	pol_set_bool(st, "told", false);
	pol_set_num(st, "day", 0);
	pol_set_num(st, "max", 0);
	return pol_key_save(db, r->name, key, st, t, INT64_MIN);
}

/* --- alerts: everything else ------------------------------------------------------ */

static int other_step(struct policy *p, sqlite3 *db, const struct recipient *r, const cJSON *in,
		      int64_t at, bool pest)
{
	enum alert_severity sev = pol_sev_of(pol_jstr(in, "severity"));
	const char *ev = pol_jstr(in, "event"), *key = pol_jstr(in, "id");
	bool active = strcmp(pol_jstr(in, "state"), "cleared") != 0;
	int64_t timer = INT64_MIN, recent[64];
	size_t n = 0;
	cJSON *st, *ch, *e;
	int rc = 0;

	if (!pest && active && sev < r->min_severity)
		return 0;
	if (!(st = pol_key_load(db, r->name, key, &rc)))
		return rc < 0 ? rc : -ENOMEM;
	if (strcmp(ev, "late") != 0 && pol_jbool(st, "seen") && pol_jbool(st, "active") == active)
		goto out; /* no change of state (a repeated raise) */
	/* the recent changes, for flapping */
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "ch"))
		if (cJSON_IsNumber(e) && (int64_t)e->valuedouble > at - p->people.flap_window_ms &&
		    n < AGRI_ARRAY_SIZE(recent) - 1)
			recent[n++] = (int64_t)e->valuedouble;
	while (n >= (size_t)p->people.flap_changes)
		memmove(recent, recent + 1, --n * sizeof(recent[0]));
	recent[n++] = at;
	cJSON_DeleteItemFromObjectCaseSensitive(st, "ch");
	if ((ch = cJSON_AddArrayToObject(st, "ch")))
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(ch, cJSON_CreateNumber((double)recent[i]));
	pol_set_str(st, "vi", pol_jstr(in, "vi"));
	pol_set_str(st, "en", pol_jstr(in, "en"));
	pol_set_str(st, "station", pol_jstr(in, "station"));
	pol_set_str(st, "place", pol_jstr(in, "place"));
	pol_set_str(st, "rule", pol_jstr(in, "rule"));
	pol_set_str(st, "severity", pol_jstr(in, "severity"));
	pol_set_str(st, "t", "other");
	pol_set_bool(st, "seen", true);
	pol_set_bool(st, "active", active);
	if (pest) {
		if (active) {
			cJSON *it = pol_item_new("pest", in, at);

			if (!it) {
				rc = -ENOMEM;
				goto out;
			}
			cJSON_AddStringToObject(it, "msg_vi", pol_jstr(in, "vi"));
			cJSON_AddStringToObject(it, "msg_en", pol_jstr(in, "en"));
			rc = pol_item_add(p, db, r, at, it, sev == ALERT_SEV_CRITICAL, ITEM_NOW);
			cJSON_Delete(it);
		}
		goto save;
	}
	if (pol_jbool(st, "flap")) {
		timer = at + p->people.flap_stable_ms;
		goto save;
	}
	if ((int)n >= p->people.flap_changes) {
		cJSON *it = pol_item_new("flapping", in, at);

		if (!it) {
			rc = -ENOMEM;
			goto out;
		}
		cJSON_AddNumberToObject(it, "changes", (double)n);
		cJSON_AddNumberToObject(it, "window_h", (double)p->people.flap_window_ms / 3600000.0);
		/* said the way the alert itself would have been: at once or in
		 * the bulletin */
		rc = pol_item_add(p, db, r, at, it, false,
				  (r->at_once & (1u << sev)) ? ITEM_NOW : ITEM_BULLETIN);
		cJSON_Delete(it);
		pol_set_bool(st, "flap", true);
		timer = at + p->people.flap_stable_ms;
		goto save;
	}
	{
		bool now = r->at_once & (1u << sev);
		bool told = pol_jbool(st, "told");
		cJSON *it = NULL;

		if (active) {
			it = pol_item_new(now ? "alert" : "note", in, at);
			told = now;
		} else if (told) {
			it = pol_item_new("cleared", in, at);
			told = false;
		}
		if (it) {
			cJSON_AddStringToObject(it, "severity", pol_jstr(in, "severity"));
			cJSON_AddStringToObject(it, "msg_vi", pol_jstr(in, "vi"));
			cJSON_AddStringToObject(it, "msg_en", pol_jstr(in, "en"));
			if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(in, "value")))
				cJSON_AddNumberToObject(it, "value", pol_jnum(in, "value", 0));
			rc = pol_item_add(p, db, r, at, it, active && sev == ALERT_SEV_CRITICAL,
					  active && !now ? ITEM_BULLETIN : ITEM_NOW);
			cJSON_Delete(it);
		}
		pol_set_bool(st, "told", told);
	}
save:
	if (rc >= 0)
		rc = pol_key_save(db, r->name, key, st, at, timer);
out:
	cJSON_Delete(st);
	return rc;
}

/* Flapping settled: one message with the state it settled in. */
int pol_other_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
		    const char *key, cJSON *st, int64_t t)
{
	bool active = pol_jbool(st, "active");
	cJSON *it;
	int rc;

	if (pol_jbool(st, "flap")) {
		if (!(it = pol_item_new("stable", NULL, t)))
			return -ENOMEM;
		cJSON_AddStringToObject(it, "station", pol_jstr(st, "station"));
		cJSON_AddStringToObject(it, "place", pol_jstr(st, "place"));
		cJSON_AddStringToObject(it, "alert", key);
		cJSON_AddStringToObject(it, "rule", pol_jstr(st, "rule"));
		cJSON_AddBoolToObject(it, "active", active);
		cJSON_AddStringToObject(it, "msg_vi", pol_jstr(st, "vi"));
		cJSON_AddStringToObject(it, "msg_en", pol_jstr(st, "en"));
		cJSON_AddNumberToObject(it, "stable_h", (double)p->people.flap_stable_ms / 3600000.0);
		rc = pol_item_add(p, db, r, t, it, false,
				  (r->at_once & (1u << pol_sev_of(pol_jstr(st, "severity")))) ? ITEM_NOW
										: ITEM_BULLETIN);
		cJSON_Delete(it);
		if (rc < 0)
			return rc;
	}
	pol_set_bool(st, "flap", false);
	pol_set_bool(st, "told", active && (r->at_once & (1u << pol_sev_of(pol_jstr(st, "severity")))));
	cJSON_DeleteItemFromObjectCaseSensitive(st, "ch");
	return pol_key_save(db, r->name, key, st, t, INT64_MIN);
}

/* The pest a light-trap alert is about: its sensor's suffix ("trap1-bph"). */
static const char *pest_of(const cJSON *in)
{
	const char *s = pol_jstr(in, "sensor"), *d = strrchr(s, '-');

	return strcmp(pol_jstr(in, "metric"), "insect_count") == 0 && d ? d + 1 : NULL;
}

int pol_on_alert(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
{
	const char *ev = pol_jstr(in, "event"), *pest = pest_of(in);
	enum rule_kind kind = RULE_THRESHOLD;
	bool ladder, salinity, live = !strcmp(ev, "raised") || !strcmp(ev, "severity") ||
				      !strcmp(ev, "cleared") || !strcmp(ev, "late");
	bool past = !strcmp(ev, "past") || !strcmp(ev, "retracted");
	int rc = 0;

	if (!live && !past)
		return 0; /* acknowledged, closed, renotify, escalated, revised */
	(void)recipient_kind_parse(pol_jstr(in, "kind"), &kind);
	ladder = kind == RULE_LADDER && cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(in, "levels")) > 0;
	salinity = ladder && strcmp(pol_jstr(in, "metric"), "salinity") == 0;
	for (size_t i = 0; i < p->people.n && rc >= 0; i++) {
		const struct recipient *r = &p->people.v[i];

		if (!recipient_follows_station(r, pol_jstr(in, "station"), pol_jstr(in, "district")) ||
		    !recipient_follows_rule(r, pol_jstr(in, "rule"), kind))
			continue;
		if (pest && !recipient_follows_pest(r, pest))
			continue;
		if (!pest && !salinity && pol_sev_of(pol_jstr(in, "severity")) < r->min_severity &&
		    strcmp(pol_jstr(in, "state"), "cleared") != 0)
			continue;
		if (past) {
			/* late news of an episode already over: the bulletin's, never live */
			cJSON *it = pol_item_new("past", in, at);

			if (!it)
				return -ENOMEM;
			cJSON_AddStringToObject(it, "msg_vi", pol_jstr(in, "vi"));
			cJSON_AddStringToObject(it, "msg_en", pol_jstr(in, "en"));
			rc = pol_item_add(p, db, r, at, it, false, ITEM_BULLETIN);
			cJSON_Delete(it);
		} else if (ladder && !pest) {
			rc = ladder_step(p, db, r, in, at, salinity);
		} else {
			rc = other_step(p, db, r, in, at, pest != NULL);
		}
	}
	return rc;
}
