/*
 * The morning bulletin (see policy_int.h; docs/notify.md "The morning
 * bulletin"): for one person at its time, the last day of salinity at the
 * stations they follow with today's intake windows at their level, last
 * night's catch at the traps of their pests, the open sowing advisories
 * and the items that waited for it, made one message (compose_bulletin(),
 * pol_message_emit()); the windows it gives are recorded as announced
 * (notify_announced), which policy_forecasts.c measures a refit against.
 * policy.c's timers make it when it falls due (pol_bulletin_make()).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify/policy_int.h"

/* --- bulletins ------------------------------------------------------------------- */

static bool station_listed(const struct bulletin *b, const char *station)
{
	for (size_t i = 0; i < b->n_stations; i++)
		if (strcmp(b->st[i].station, station) == 0)
			return true;
	return false;
}

/* The stations r follows that measure salinity, with their last day. */
static int gather_salinity(struct policy *p, sqlite3 *db, const struct recipient *r,
			   struct bulletin *b)
{
	int64_t from = b->at_ms - DAY_MS, to = b->at_ms, day_end = b->at_ms + DAY_MS;
	double level = r->n_levels ? r->levels[0] : RCPT_CRITICAL_G_L;
	sqlite3_stmt *q;
	int rc = 0;

	q = pol_prep(db, &rc, "SELECT st.name, min(r.value), max(r.value) FROM readings r"
		     " JOIN series se ON se.id = r.series_id JOIN stations st ON st.id = se.station_id"
		     " WHERE se.metric = 'salinity' AND r.q = 0 AND r.value IS NOT NULL"
		     " AND r.ts >= ?1 AND r.ts < ?2 AND r.received_at <= ?2"
		     " GROUP BY st.name ORDER BY st.name", "ii", from, to);
	while (q && sqlite3_step(q) == SQLITE_ROW && b->n_stations < BULLETIN_STATIONS_MAX) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		struct bulletin_station *s = &b->st[b->n_stations];

		if (!name || !recipient_follows_station(r, name, policy_district(p, name)))
			continue;
		memset(s, 0, sizeof(*s));
		snprintf(s->station, sizeof(s->station), "%s", name);
		s->has_range = true;
		s->min = sqlite3_column_double(q, 1);
		s->max = sqlite3_column_double(q, 2);
		s->level = level;
		b->n_stations++;
	}
	sqlite3_finalize(q);
	if (rc < 0)
		return rc;
	/* stations with a forecast but no readings in the day still get their windows */
	q = pol_prep(db, &rc, "SELECT DISTINCT station FROM notify_window WHERE made_at <= ?"
		     " ORDER BY station", "i", to);
	while (q && sqlite3_step(q) == SQLITE_ROW && b->n_stations < BULLETIN_STATIONS_MAX) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		struct bulletin_station *s = &b->st[b->n_stations];

		if (!name || station_listed(b, name) ||
		    !recipient_follows_station(r, name, policy_district(p, name)))
			continue;
		memset(s, 0, sizeof(*s));
		snprintf(s->station, sizeof(s->station), "%s", name);
		s->level = level;
		b->n_stations++;
	}
	sqlite3_finalize(q);
	for (size_t i = 0; i < b->n_stations && rc >= 0; i++) {
		struct bulletin_station *s = &b->st[i];

		s->place = policy_place(p, s->station);
		s->has_forecast = pol_one_int(pol_prep(db, &rc, "SELECT count(*) FROM notify_window WHERE"
						       " station = ? AND made_at <= ?", "ti", s->station, to),
					      0, &rc) > 0;
		q = pol_prep(db, &rc, "SELECT from_ms, to_ms, sluice FROM notify_window WHERE station = ?"
			     " AND to_ms > ? AND from_ms < ? AND made_at <= ? AND (sluice = 1 OR"
			     " abs(below - ?) < 1e-9) ORDER BY sluice, from_ms", "tiiid", s->station,
			     to, day_end, to, level);
		while (q && sqlite3_step(q) == SQLITE_ROW) {
			int64_t f = sqlite3_column_int64(q, 0), t = sqlite3_column_int64(q, 1);

			if (sqlite3_column_int(q, 2)) {
				if (s->n_sluice < 4) {
					s->sluice[s->n_sluice][0] = f;
					s->sluice[s->n_sluice++][1] = t;
				}
			} else if (s->n_windows < 8) {
				s->win[s->n_windows][0] = f;
				s->win[s->n_windows++][1] = t;
			}
		}
		sqlite3_finalize(q);
	}
	return rc;
}

static int gather_pests(struct policy *p, sqlite3 *db, const struct recipient *r,
			struct bulletin *b)
{
	sqlite3_stmt *q;
	int rc = 0;

	for (size_t k = 0; k < r->n_pests && rc >= 0; k++) {
		char like[RCPT_KEY_MAX + 4];

		snprintf(like, sizeof(like), "%%-%s", r->pests[k]);
		q = pol_prep(db, &rc, "SELECT st.name, sum(r.value) FROM readings r"
			     " JOIN series se ON se.id = r.series_id JOIN stations st ON st.id = se.station_id"
			     " WHERE se.metric = 'insect_count' AND se.sensor LIKE ?3 AND r.q = 0"
			     " AND r.ts >= ?1 AND r.ts < ?2 AND r.received_at <= ?2"
			     " GROUP BY st.name ORDER BY st.name", "iit", b->at_ms - DAY_MS, b->at_ms, like);
		while (q && sqlite3_step(q) == SQLITE_ROW && b->n_traps < BULLETIN_TRAPS_MAX) {
			const char *name = (const char *)sqlite3_column_text(q, 0);
			struct bulletin_trap *t = &b->traps[b->n_traps];

			if (!name || !recipient_follows_station(r, name, policy_district(p, name)))
				continue;
			snprintf(t->station, sizeof(t->station), "%s", name);
			t->place = policy_place(p, name);
			t->count = sqlite3_column_double(q, 1);
			b->n_traps++;
		}
		sqlite3_finalize(q);
		q = pol_prep(db, &rc, "SELECT station, sow_from, sow_to, hatch_from FROM notify_advice"
			     " WHERE pest = ? AND at <= ? AND sow_to > ? ORDER BY sow_from, station", "tii",
			     r->pests[k], b->at_ms, b->at_ms);
		while (q && sqlite3_step(q) == SQLITE_ROW && b->n_advice < BULLETIN_ADVICE_MAX) {
			const char *name = (const char *)sqlite3_column_text(q, 0);
			struct bulletin_advice *a = &b->advice[b->n_advice];

			if (!name || !recipient_follows_station(r, name, policy_district(p, name)))
				continue;
			snprintf(a->station, sizeof(a->station), "%s", name);
			a->place = policy_place(p, name);
			a->sow_from = sqlite3_column_int64(q, 1);
			a->sow_to = sqlite3_column_int64(q, 2);
			a->hatch_from = sqlite3_column_int64(q, 3);
			b->n_advice++;
		}
		sqlite3_finalize(q);
	}
	return rc;
}

int pol_bulletin_make(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t t)
{
	struct bulletin *b = calloc(1, sizeof(*b));
	struct composed c;
	char id[160];
	int rc = 0;

	if (!b)
		return -ENOMEM;
	b->at_ms = t;
	b->person = r;
	if ((rc = gather_salinity(p, db, r, b)) < 0 || (rc = gather_pests(p, db, r, b)) < 0 ||
	    (rc = pol_items_read(db, r->name, "bulletin = 1 OR due <= ?2", t + p->people.group_wait_ms,
				 &b->notes, &b->n_notes)) < 0 ||
	    (rc = pol_more_take(db, r->name, &b->more)) < 0)
		goto out;
	/* damped re-crossings: a count on their station's line */
	for (size_t i = 0; i < b->n_notes; i++) {
		const cJSON *d = b->notes[i].doc;

		if (strcmp(pol_jstr(d, "kind"), "recross") != 0 || !pol_jbool(d, "salinity"))
			continue;
		for (size_t k = 0; k < b->n_stations; k++)
			if (strcmp(b->st[k].station, pol_jstr(d, "station")) == 0)
				b->st[k].recross++;
	}
	rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_clock(person, last_bulletin) VALUES(?, ?)"
			      " ON CONFLICT(person) DO UPDATE SET last_bulletin = excluded.last_bulletin",
			      "ti", r->name, t), &rc);
	if (rc < 0)
		goto out;
	if (!b->n_stations && !b->n_traps && !b->n_advice && !b->n_notes)
		goto out; /* nothing followed has data: no bulletin */
	/* what the bulletin announces: the windows a change is measured against */
	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_announced WHERE person = ?", "t",
			      r->name), &rc);
	for (size_t i = 0; i < b->n_stations && rc >= 0; i++)
		for (int w = 0; w < b->st[i].n_windows && rc >= 0; w++)
			rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_announced(person, station, below,"
					      " from_ms, to_ms, until_ms) VALUES(?, ?, ?, ?, ?, ?)", "ttdiii",
					      r->name, b->st[i].station, b->st[i].level, b->st[i].win[w][0],
					      b->st[i].win[w][1], t + DAY_MS), &rc);
	if (rc < 0)
		goto out;
	pol_message_id(id, sizeof(id), r->name, "bulletin", t);
	composed_init(&c);
	rc = compose_bulletin(p, id, b, &c);
	if (rc >= 0)
		rc = pol_items_delete(db, b->notes, b->n_notes);
	if (rc >= 0)
		rc = pol_message_emit(p, db, r, "bulletin", t, (int)b->n_notes, &c, id, sizeof(id));
	composed_free(&c);
	if (rc >= 0)
		rc = 1;
out:
	pol_items_free(b->notes, b->n_notes);
	free(b);
	return rc;
}
