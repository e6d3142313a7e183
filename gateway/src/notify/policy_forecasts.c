/*
 * The policy's forecast inputs (see policy_int.h; docs/notify.md "Intake
 * windows"): a station's new intake windows, recorded for the bulletins
 * (notify_window) and compared, for each person who follows the station,
 * with what their last bulletin announced (notify_announced): a window
 * cancelled, moved by more than window_move or given a hole longer than
 * that becomes an item (and a moved one the announced one); and a pest
 * advisory, recorded once for the bulletins (notify_advice) and, while its
 * sowing window is ahead, an item for each person who follows its station
 * and pest. policy_input() hands it the "windows" and "advisory" inputs
 * (pol_on_windows(), pol_on_advisory()); policy_bulletin.c reads what it
 * records.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "notify/policy_int.h"

/* --- forecasts: announced windows ---------------------------------------------- */

int pol_on_windows(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
{
	const char *station = pol_jstr(in, "station");
	const cJSON *ws = cJSON_GetObjectItemCaseSensitive(in, "windows"), *w;
	int64_t made = pol_jint(in, "made_at", at), move = p->people.window_move_ms;
	int rc = 0;

	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_window WHERE station = ?", "t", station), &rc);
	cJSON_ArrayForEach(w, ws) {
		if (rc < 0)
			return rc;
		rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_window(station, below, sluice, from_ms,"
				      " to_ms, tide, made_at) VALUES(?, ?, ?, ?, ?, ?, ?)", "tdiiiti",
				      station, pol_jnum(w, "below", 0), (int64_t)pol_jbool(w, "sluice"),
				      pol_jint(w, "from", 0), pol_jint(w, "to", 0),
				      pol_jstr(w, "tide")[0] ? pol_jstr(w, "tide") : NULL, made), &rc);
	}
	if (rc < 0)
		return rc;
	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_announced WHERE station = ? AND"
			      " min(to_ms, until_ms) <= ?", "ti", station, at), &rc);
	for (size_t i = 0; i < p->people.n && rc >= 0; i++) {
		const struct recipient *r = &p->people.v[i];
		sqlite3_stmt *q;
		struct { double below; int64_t from, to, until; } ann[16];
		size_t na = 0;

		if (!recipient_follows_station(r, station, pol_jstr(in, "district")))
			continue;
		q = pol_prep(db, &rc, "SELECT below, from_ms, to_ms, until_ms FROM notify_announced WHERE"
			     " person = ? AND station = ? ORDER BY from_ms", "tt", r->name, station);
		while (q && sqlite3_step(q) == SQLITE_ROW && na < AGRI_ARRAY_SIZE(ann)) {
			ann[na].below = sqlite3_column_double(q, 0);
			ann[na].from = sqlite3_column_int64(q, 1);
			ann[na].to = sqlite3_column_int64(q, 2);
			ann[na].until = sqlite3_column_int64(q, 3);
			na++;
		}
		sqlite3_finalize(q);
		for (size_t a = 0; a < na && rc >= 0; a++) {
			int64_t nf = 0, nt = 0, gap = 0, prev_to = 0;
			/* what was announced: the window within the bulletin's day (a
			 * window to the forecast's horizon said "from ... on") */
			int64_t until = ann[a].until, old_to = ann[a].to < until ? ann[a].to : until;
			int hits = 0;
			/* a window that has begun (or begins at the forecast's first
			 * step) cannot move its start: only its end and its holes count */
			int64_t begun = made + 15 * MIN_MS;
			cJSON *it;

			cJSON_ArrayForEach(w, ws) {
				int64_t f = pol_jint(w, "from", 0), t = pol_jint(w, "to", 0);

				if (pol_jbool(w, "sluice") || fabs(pol_jnum(w, "below", 0) - ann[a].below) > 1e-9 ||
				    t <= ann[a].from || f >= old_to)
					continue;
				if (!hits++)
					nf = f;
				else if (f > prev_to)
					gap += f - prev_to;
				prev_to = nt = t;
			}
			if (hits && nf <= begun && ann[a].from <= begun)
				nf = ann[a].from;
			if (hits && llabs(nf - ann[a].from) <= move &&
			    llabs((nt < until ? nt : until) - old_to) <= move && gap <= move)
				continue; /* within the hour: nothing to say */
			if (!(it = pol_item_new(hits ? "window-moved" : "window-cancelled", in, at)))
				return -ENOMEM;
			cJSON_AddNumberToObject(it, "level", ann[a].below);
			cJSON_AddNumberToObject(it, "old_from", (double)ann[a].from);
			cJSON_AddNumberToObject(it, "old_to", (double)ann[a].to);
			if (hits) {
				cJSON_AddNumberToObject(it, "from", (double)nf);
				cJSON_AddNumberToObject(it, "to", (double)nt);
				if (gap > move)
					cJSON_AddNumberToObject(it, "gap_min", (double)(gap / MIN_MS));
			}
			rc = pol_item_add(p, db, r, at, it, false, ITEM_NOW);
			cJSON_Delete(it);
			if (rc < 0)
				break;
			if (hits)
				rc = pol_run(pol_prep(db, &rc, "UPDATE notify_announced SET from_ms = ?, to_ms = ?"
						      " WHERE person = ? AND station = ? AND below = ? AND"
						      " from_ms = ?", "iittdi", nf, nt, r->name, station,
						      ann[a].below, ann[a].from), &rc);
			else
				rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_announced WHERE person = ? AND"
						      " station = ? AND below = ? AND from_ms = ?", "ttdi",
						      r->name, station, ann[a].below, ann[a].from), &rc);
		}
	}
	return rc;
}

/* --- advisories ------------------------------------------------------------------ */

int pol_on_advisory(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
{
	const char *pest = pol_jstr(in, "pest")[0] ? pol_jstr(in, "pest") : "bph";
	char *s = cJSON_PrintUnformatted(in);
	int rc = 0;

	if (!s)
		return -ENOMEM;
	rc = pol_run(pol_prep(db, &rc, "INSERT OR IGNORE INTO notify_advice(id, station, pest, at,"
			      " sow_from, sow_to, hatch_from, doc) VALUES(?, ?, ?, ?, ?, ?, ?, ?)", "tttiiiit",
			      pol_jstr(in, "id"), pol_jstr(in, "station"), pest, at, pol_jint(in, "sow_from", 0),
			      pol_jint(in, "sow_to", 0), pol_jint(in, "hatch_from", 0), s), &rc);
	free(s);
	if (rc < 0 || sqlite3_changes(db) == 0)
		return rc; /* the same advisory again */
	/* recorded for the bulletins; not announced when it is history (the
	 * gateway's first start) or its sowing window has passed (late news) */
	if (pol_jbool(in, "history") || pol_jint(in, "sow_to", 0) <= at)
		return 0;
	for (size_t i = 0; i < p->people.n && rc >= 0; i++) {
		const struct recipient *r = &p->people.v[i];
		cJSON *it;

		if (!recipient_follows_station(r, pol_jstr(in, "station"), pol_jstr(in, "district")) ||
		    !recipient_follows_pest(r, pest))
			continue;
		if (!(it = pol_item_new("advisory", in, at)))
			return -ENOMEM;
		cJSON_AddStringToObject(it, "msg_vi", pol_jstr(in, "vi"));
		cJSON_AddStringToObject(it, "msg_en", pol_jstr(in, "en"));
		cJSON_AddNumberToObject(it, "sow_from", pol_jnum(in, "sow_from", 0));
		cJSON_AddNumberToObject(it, "sow_to", pol_jnum(in, "sow_to", 0));
		cJSON_AddNumberToObject(it, "hatch_from", pol_jnum(in, "hatch_from", 0));
		rc = pol_item_add(p, db, r, at, it, false, ITEM_NOW);
		cJSON_Delete(it);
	}
	return rc;
}
