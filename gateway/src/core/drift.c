/*
 * A probe that drifts against its neighbours (see drift.h).
 */
#include "core/drift.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/store.h"

#define LOG "drift"
#define CHECK_EVERY_MS 5000       /* the gateway's clock */
#define EVAL_STEP_MS 3600000LL    /* a sensor is evaluated again an hour of readings on */
#define SENSORS_MAX 4             /* salinity sensors of one site */
#define SLOTS_MAX (GW_SITES_MAX * SENSORS_MAX)
#define ROWS_MAX 200000           /* readings of one window read back */
#define DAYS_MAX 60
#define WHY "drift"

/* What a fouled conductivity cell gets wrong, on the flagged sensor. */
#define DRIFT_METRICS "'salinity', 'salinity_probe', 'specific_conductance', 'conductivity', 'tds'"
static const char *const drift_metrics[] = {
	"salinity", "salinity_probe", "specific_conductance", "conductivity", "tds",
};

static const char *const schema =
	"CREATE TABLE IF NOT EXISTS drift_flags("
	" station TEXT NOT NULL, sensor TEXT NOT NULL, since INTEGER NOT NULL,"
	" flagged_at INTEGER NOT NULL, fall_pct REAL NOT NULL, against TEXT NOT NULL,"
	" refs TEXT NOT NULL, PRIMARY KEY(station, sensor)) WITHOUT ROWID;"
	"CREATE VIEW IF NOT EXISTS v_drift AS SELECT station, sensor,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', since / 1000.0, 'unixepoch') AS since,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', flagged_at / 1000.0, 'unixepoch') AS flagged_at,"
	" fall_pct, against FROM drift_flags;";

struct flag {
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	int64_t since_ms;   /* readings at or after it are "drift" */
	int64_t flagged_ms; /* the gateway's clock */
	double fall_pct;
	size_t n_ref;       /* the ratio before the drift, per neighbour */
	char ref_station[GW_SITE_NEIGHBOURS_MAX][AGRI_ID_MAX + 1];
	double ref[GW_SITE_NEIGHBOURS_MAX];
};

struct seen {
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	int64_t evaluated_to; /* the newest reading at the last evaluation */
};

struct kv {
	int k;
	double v;
};

struct drift {
	const struct gateway_config *cfg;
	struct store *st;
	struct flag flags[SLOTS_MAX];
	size_t n_flags;
	struct seen seen[SLOTS_MAX];
	size_t n_seen;
	bool reload; /* a tick rolled back: the table is the truth */
	int64_t next_check_ms;
	struct kv *rows;
	struct ingest_hook hook;
};

/* --- the arithmetic --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double drift_median(double *v, size_t n)
{
	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double drift_iqm(double *v, size_t n)
{
	size_t lo = n / 4, hi = n - n / 4;
	double sum = 0;

	if (!n)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	for (size_t i = lo; i < hi; i++)
		sum += v[i];
	return sum / (double)(hi - lo);
}

/* ln(s/nb) of day k, or NAN when a level is missing or below min_g_l. */
static double day_ratio(const double *s, const double *nb, size_t k, double min_g_l)
{
	if (!(s[k] >= min_g_l && nb[k] >= min_g_l && s[k] > 0 && nb[k] > 0))
		return NAN;
	return log(s[k] / nb[k]);
}

/* The ratio before: the median over the older half of the window. */
static double ref_ratio(const double *s, const double *nb, size_t days, double min_g_l)
{
	double v[DAYS_MAX];
	size_t n = 0;

	for (size_t k = days / 2; k < days && k < DAYS_MAX; k++)
		if (!isnan(v[n] = day_ratio(s, nb, k, min_g_l)))
			n++;
	return drift_median(v, n);
}

int drift_fit(const double *s, const double *nb, size_t days, double min_g_l,
	      double fall_pct, struct drift_fit *out)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
	double x_new = 0, x_old = 0, y_second = 0, den, vy;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	for (size_t k = 0; k < days; k++) {
		double x, y;

		if (isnan(y = day_ratio(s, nb, k, min_g_l)))
			continue;
		x = -((double)k + 0.5);
		if (!n) {
			x_new = x;
			out->r_newest = y;
		} else if (n == 1) {
			y_second = y;
		}
		x_old = x;
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
		syy += y * y;
		n++;
	}
	out->n = n;
	if (n < 4 || x_new - x_old < 3)
		return -ENODATA;
	den = (double)n * sxx - sx * sx;
	vy = (double)n * syy - sy * sy;
	out->slope = ((double)n * sxy - sx * sy) / den;
	out->r2 = vy > 1e-12 ? ((double)n * sxy - sx * sy) * ((double)n * sxy - sx * sy) / (den * vy) : 0;
	out->r_ref = ref_ratio(s, nb, days, min_g_l);
	out->fall = 1 - exp(out->r_newest - out->r_ref);
	/* A steady fall: the newest day fall_pct below the older half, the
	 * day before it at least half that, and a line that follows. */
	out->falls = out->fall * 100 >= fall_pct && y_second - out->r_ref <= log(1 - fall_pct / 200) &&
		     out->slope < 0 && out->r2 >= 0.5;
	return 0;
}

double drift_onset_x(const double *s, const double *nb, size_t days, double min_g_l,
		     double fall_pct, const struct drift_fit *f)
{
	double lim = f->r_ref + log(1 - fall_pct / 400), y, x_on;
	double sx = 0, sy = 0, sxx = 0, sxy = 0, b;
	size_t on = 0, n = 0;

	for (size_t k = 0; k < days; k++) {
		if (isnan(y = day_ratio(s, nb, k, min_g_l)))
			continue; /* a day without data neither starts nor ends it */
		if (y >= lim)
			break;
		on = k + 1;
		sx += -((double)k + 0.5);
		sy += y;
		sxx += ((double)k + 0.5) * ((double)k + 0.5);
		sxy += -((double)k + 0.5) * y;
		n++;
	}
	if (n < 2 || (b = ((double)n * sxy - sx * sy) / ((double)n * sxx - sx * sx)) >= 0)
		return -(double)on;
	/* A fouling cell falls steadily: the line through the days below
	 * the limit meets the ratio before where the fall began. */
	x_on = ((f->r_ref - (sy - b * sx) / (double)n)) / b;
	if (x_on > -((double)on - 0.5))
		x_on = -((double)on - 0.5);
	return x_on < -(double)days ? -(double)days : x_on;
}

/* --- flags ------------------------------------------------------------------ */

static struct flag *flag_find(struct drift *d, const char *station, const char *sensor)
{
	for (size_t i = 0; i < d->n_flags; i++)
		if (!strcmp(d->flags[i].station, station) && !strcmp(d->flags[i].sensor, sensor))
			return &d->flags[i];
	return NULL;
}

static const struct gateway_site *site_of(const struct drift *d, const char *station)
{
	for (size_t i = 0; i < d->cfg->sites.n; i++)
		if (!strcmp(d->cfg->sites.site[i].station, station))
			return &d->cfg->sites.site[i];
	return NULL;
}

/* "DT-W01=-0.123456;DT-W03=0.5": each neighbour's ratio before the drift. */
static void refs_format(const struct flag *f, char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < f->n_ref && pos < len; i++) {
		int n = snprintf(buf + pos, len - pos, "%s%s=%.6f", i ? ";" : "", f->ref_station[i],
				 f->ref[i]);
		pos += n > 0 ? (size_t)n : 0;
	}
}

static void refs_parse(struct flag *f, const char *s)
{
	char tmp[512], *save = NULL, *tok;

	snprintf(tmp, sizeof(tmp), "%s", s ? s : "");
	f->n_ref = 0;
	for (tok = strtok_r(tmp, ";", &save); tok && f->n_ref < GW_SITE_NEIGHBOURS_MAX;
	     tok = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(tok, '=');
		double v;

		if (!eq)
			continue;
		*eq = '\0';
		if (!agri_station_id_valid(tok) || util_parse_double(eq + 1, -50, 50, &v))
			continue;
		snprintf(f->ref_station[f->n_ref], sizeof(f->ref_station[0]), "%.*s", AGRI_ID_MAX, tok);
		f->ref[f->n_ref++] = v;
	}
}

/* The flags of the table. A station no longer configured with neighbours
 * is left out (nothing would ever clear its flag); its row stays. */
static int load_flags(struct drift *d)
{
	sqlite3 *db = store_db(d->st);
	sqlite3_stmt *q = NULL;
	int rc;

	d->n_flags = 0;
	rc = sqlite3_prepare_v2(db, "SELECT station, sensor, since, flagged_at, fall_pct, refs"
				" FROM drift_flags ORDER BY station, sensor", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && d->n_flags < SLOTS_MAX) {
		const char *station = (const char *)sqlite3_column_text(q, 0);
		const char *sensor = (const char *)sqlite3_column_text(q, 1);
		const struct gateway_site *site;
		struct flag *f = &d->flags[d->n_flags];

		if (!station || !sensor || !agri_station_id_valid(station) || !agri_ident_valid(sensor) ||
		    !(site = site_of(d, station)) || !site->n_neighbours)
			continue;
		memset(f, 0, sizeof(*f));
		snprintf(f->station, sizeof(f->station), "%.*s", AGRI_ID_MAX, station);
		snprintf(f->sensor, sizeof(f->sensor), "%.*s", AGRI_ID_MAX, sensor);
		f->since_ms = sqlite3_column_int64(q, 2);
		f->flagged_ms = sqlite3_column_int64(q, 3);
		f->fall_pct = sqlite3_column_double(q, 4);
		refs_parse(f, (const char *)sqlite3_column_text(q, 5));
		d->n_flags++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	return 0;
}

static int exec_bound(struct drift *d, const char *sql, const char *a, const char *b,
		      int64_t c)
{
	sqlite3 *db = store_db(d->st);
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL);

	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, b, -1, SQLITE_STATIC);
	if (sqlite3_bind_parameter_count(q) >= 3)
		sqlite3_bind_int64(q, 3, c);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? sqlite3_changes(db) : agri_sqlite_errno(rc);
}

/* Flags f (filled in) and marks its stored readings from f->since_ms. */
static int flag_set(struct drift *d, const struct flag *f, const char *against)
{
	sqlite3 *db = store_db(d->st);
	sqlite3_stmt *q = NULL;
	char refs[512], since[AGRI_TIME_LEN + 1];
	int rc, marked;

	if (d->n_flags >= SLOTS_MAX)
		return 0;
	refs_format(f, refs, sizeof(refs));
	rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO drift_flags(station, sensor, since,"
				" flagged_at, fall_pct, against, refs) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
				-1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, f->station, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, f->sensor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, f->since_ms);
	sqlite3_bind_int64(q, 4, f->flagged_ms);
	sqlite3_bind_double(q, 5, f->fall_pct);
	sqlite3_bind_text(q, 6, against, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, refs, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	marked = exec_bound(d, "UPDATE readings SET q = 1, why = '" WHY "' WHERE series_id IN"
			    " (SELECT se.id FROM series se JOIN stations st ON st.id = se.station_id"
			    "  WHERE st.name = ?1 AND se.sensor = ?2 AND se.metric IN (" DRIFT_METRICS "))"
			    " AND ts >= ?3 AND q = 0", f->station, f->sensor, f->since_ms);
	if (marked < 0)
		return marked;
	d->flags[d->n_flags++] = *f;
	agri_time_format(f->since_ms, since, sizeof(since));
	log_warn(LOG, "station=%s sensor=%s: salinity falls %.0f %% against %s over the window"
		 " (a fouling probe?): %d readings since %s marked suspect (drift)",
		 f->station, f->sensor, f->fall_pct, against, marked, since);
	return 0;
}

static int flag_clear(struct drift *d, struct flag *f, const char *how)
{
	int rc = exec_bound(d, "DELETE FROM drift_flags WHERE station = ?1 AND sensor = ?2",
			    f->station, f->sensor, 0);

	if (rc < 0)
		return rc;
	log_info(LOG, "station=%s sensor=%s: no longer drifting (%s)", f->station, f->sensor, how);
	*f = d->flags[--d->n_flags];
	return 0;
}

/* --- reading back ----------------------------------------------------------- */

static int cmp_kv(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;

	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return (x->v > y->v) - (x->v < y->v);
}

/* Daily levels (drift_iqm) of a station's salinity (one sensor, or all of
 * them when sensor is NULL) in the days before newest_ms, newest first; NAN for a
 * day with fewer than DRIFT_BIN_MIN readings. own: the flagged sensor's
 * own "drift" readings count too (the ratio that clears its flag). */
static int daily_levels(struct drift *d, const char *station, const char *sensor, bool own,
			 int64_t newest_ms, size_t days, double *med)
{
	sqlite3_stmt *q = NULL;
	size_t n = 0;
	int rc;

	for (size_t k = 0; k < days; k++)
		med[k] = NAN;
	rc = sqlite3_prepare_v2(store_db(d->st),
				"SELECT r.ts, r.value FROM readings r"
				" JOIN series se ON se.id = r.series_id"
				" JOIN stations st ON st.id = se.station_id"
				" WHERE st.name = ?1 AND se.metric = 'salinity'"
				" AND (?2 IS NULL OR se.sensor = ?2)"
				" AND r.ts > ?3 AND r.ts <= ?4 AND r.value IS NOT NULL"
				" AND (r.q = 0 OR (?5 AND r.q = 1 AND r.why = '" WHY "'))"
				" LIMIT ?6", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	if (sensor)
		sqlite3_bind_text(q, 2, sensor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, newest_ms - (int64_t)days * DRIFT_DAY_MS);
	sqlite3_bind_int64(q, 4, newest_ms);
	sqlite3_bind_int(q, 5, own);
	sqlite3_bind_int(q, 6, ROWS_MAX);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t age = newest_ms - sqlite3_column_int64(q, 0);

		d->rows[n].k = (int)(age / DRIFT_DAY_MS);
		d->rows[n].v = sqlite3_column_double(q, 1);
		if (d->rows[n].k >= 0 && (size_t)d->rows[n].k < days && isfinite(d->rows[n].v))
			n++;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return agri_sqlite_errno(rc);
	qsort(d->rows, n, sizeof(*d->rows), cmp_kv);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i; j < n && d->rows[j].k == d->rows[i].k; j++)
			;
		if (j - i >= DRIFT_BIN_MIN) {
			size_t lo = (j - i) / 4, hi = (j - i) - (j - i) / 4;
			double sum = 0;

			for (size_t m = i + lo; m < i + hi; m++) /* sorted: the interquartile mean */
				sum += d->rows[m].v;
			med[d->rows[i].k] = sum / (double)(hi - lo);
		}
	}
	return 0;
}

static bool calibrated_since(struct drift *d, const struct flag *f)
{
	sqlite3_stmt *q = NULL;
	bool yes = false;

	if (sqlite3_prepare_v2(store_db(d->st), "SELECT 1 FROM calibrations WHERE station = ?1"
			       " AND sensor = ?2 AND at > ?3 LIMIT 1", -1, &q, NULL) != SQLITE_OK)
		return false; /* no calibrations table (yet) */
	sqlite3_bind_text(q, 1, f->station, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, f->sensor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, f->flagged_ms);
	yes = sqlite3_step(q) == SQLITE_ROW;
	sqlite3_finalize(q);
	return yes;
}

/* --- evaluation ------------------------------------------------------------- */

/* A flagged sensor is back when, against every neighbour it has a ratio
 * for and data today, the newest day's ratio is within a quarter of
 * fall_pct of the ratio before the drift. */
static int check_back(struct drift *d, struct flag *f, const struct gateway_site *site,
		      const double *s, int64_t newest, size_t days)
{
	double nb[DAYS_MAX], lim = log(1 - d->cfg->drift.fall_pct / 400);
	double min = d->cfg->drift.min_g_l;
	size_t seen = 0, back = 0;
	int rc;

	if (calibrated_since(d, f))
		return flag_clear(d, f, "calibrated");
	(void)site;
	for (size_t i = 0; i < f->n_ref; i++) {
		if ((rc = daily_levels(d, f->ref_station[i], NULL, false, newest, days, nb)) < 0)
			return rc;
		if (!(s[0] >= min && nb[0] >= min))
			continue;
		seen++;
		if (log(s[0] / nb[0]) >= f->ref[i] + lim)
			back++;
	}
	return seen && back == seen ? flag_clear(d, f, "back in line with its neighbours") : 0;
}

static int evaluate(struct drift *d, const struct gateway_site *site, const char *sensor,
		    int64_t newest, int64_t now_ms)
{
	const double pct = d->cfg->drift.fall_pct, min = d->cfg->drift.min_g_l;
	size_t days = (size_t)floor(d->cfg->drift.window_days);
	double s[DAYS_MAX], nb[DAYS_MAX];
	struct flag f = {0}, *old;
	char against[GW_SITE_NEIGHBOURS_MAX * (AGRI_ID_MAX + 2) + 1] = "";
	bool any = false, all = true;
	double fall = 1;
	int rc;

	if (days > DAYS_MAX)
		days = DAYS_MAX;
	if ((rc = daily_levels(d, site->station, sensor, true, newest, days, s)) < 0)
		return rc;
	if ((old = flag_find(d, site->station, sensor)))
		return check_back(d, old, site, s, newest, days);
	snprintf(f.station, sizeof(f.station), "%.*s", AGRI_ID_MAX, site->station);
	snprintf(f.sensor, sizeof(f.sensor), "%.*s", AGRI_ID_MAX, sensor);
	f.since_ms = newest - (int64_t)days * DRIFT_DAY_MS;
	for (size_t i = 0; i < site->n_neighbours && all; i++) {
		struct drift_fit fit;
		int64_t since;

		if ((rc = daily_levels(d, site->neighbours[i], NULL, false, newest, days, nb)) < 0)
			return rc;
		if (drift_fit(s, nb, days, min, pct, &fit) < 0)
			continue; /* not enough brackish days in common: no verdict */
		log_debug(LOG, "station=%s sensor=%s against %s: %zu days, fall %.1f %%, slope %.4f/day,"
			  " r2 %.2f", site->station, sensor, site->neighbours[i], fit.n, fit.fall * 100,
			  fit.slope, fit.r2);
		any = true;
		if (!fit.falls) {
			all = false;
			break;
		}
		if (fit.fall < fall)
			fall = fit.fall;
		since = newest + (int64_t)llround(drift_onset_x(s, nb, days, min, pct, &fit) *
						  DRIFT_DAY_MS);
		if (since > f.since_ms)
			f.since_ms = since;
		snprintf(f.ref_station[f.n_ref], sizeof(f.ref_station[0]), "%.*s", AGRI_ID_MAX,
			 site->neighbours[i]);
		f.ref[f.n_ref++] = fit.r_ref;
		snprintf(against + strlen(against), sizeof(against) - strlen(against), "%s%s",
			 f.n_ref > 1 ? ", " : "", site->neighbours[i]);
	}
	if (!any || !all)
		return 0;
	f.flagged_ms = now_ms;
	f.fall_pct = fall * 100;
	return flag_set(d, &f, against);
}

static struct seen *seen_get(struct drift *d, const char *station, const char *sensor)
{
	for (size_t i = 0; i < d->n_seen; i++)
		if (!strcmp(d->seen[i].station, station) && !strcmp(d->seen[i].sensor, sensor))
			return &d->seen[i];
	if (d->n_seen == SLOTS_MAX)
		return NULL;
	memset(&d->seen[d->n_seen], 0, sizeof(d->seen[0]));
	snprintf(d->seen[d->n_seen].station, sizeof(d->seen[0].station), "%.*s", AGRI_ID_MAX, station);
	snprintf(d->seen[d->n_seen].sensor, sizeof(d->seen[0].sensor), "%.*s", AGRI_ID_MAX, sensor);
	d->seen[d->n_seen].evaluated_to = INT64_MIN / 2;
	return &d->seen[d->n_seen++];
}

/* Every site with neighbours whose salinity moved an hour on since it was
 * last looked at. Writer thread, in the tick's transaction. */
static int check_site(struct drift *d, const struct gateway_site *site, int64_t now_ms)
{
	struct {
		char sensor[AGRI_ID_MAX + 1];
		int64_t newest;
	} sn[SENSORS_MAX];
	sqlite3_stmt *q = NULL;
	size_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(store_db(d->st),
				"SELECT se.sensor, (SELECT max(ts) FROM readings r WHERE r.series_id = se.id)"
				" FROM series se JOIN stations st ON st.id = se.station_id"
				" WHERE st.name = ?1 AND se.metric = 'salinity' AND se.retired = 0"
				" ORDER BY se.sensor LIMIT ?2", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_bind_text(q, 1, site->station, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, SENSORS_MAX);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < SENSORS_MAX) {
		const char *sensor = (const char *)sqlite3_column_text(q, 0);

		if (!sensor || sqlite3_column_type(q, 1) == SQLITE_NULL)
			continue;
		snprintf(sn[n].sensor, sizeof(sn[n].sensor), "%.*s", AGRI_ID_MAX, sensor);
		sn[n++].newest = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return agri_sqlite_errno(rc);
	for (size_t i = 0; i < n; i++) {
		struct seen *s = seen_get(d, site->station, sn[i].sensor);

		if (!s || sn[i].newest < s->evaluated_to + EVAL_STEP_MS)
			continue;
		s->evaluated_to = sn[i].newest;
		if ((rc = evaluate(d, site, sn[i].sensor, sn[i].newest, now_ms)) < 0)
			return rc;
	}
	return 0;
}

static int on_tick(void *ctx, struct store *st, int64_t now_ms)
{
	struct drift *d = ctx;
	int rc;

	(void)st;
	if (d->reload) {
		if ((rc = load_flags(d)) < 0)
			return rc;
		d->reload = false;
	}
	if (now_ms < d->next_check_ms)
		return 0;
	d->next_check_ms = now_ms + CHECK_EVERY_MS;
	for (size_t i = 0; i < d->cfg->sites.n; i++) {
		const struct gateway_site *site = &d->cfg->sites.site[i];

		if (site->n_neighbours && (rc = check_site(d, site, now_ms)) < 0) {
			log_warn(LOG, "cannot check station=%s: %s", site->station, strerror(-rc));
			return rc; /* rolled back, retried at the next check */
		}
	}
	return 0;
}

static void on_rollback(void *ctx)
{
	struct drift *d = ctx;

	d->reload = true;
	d->n_seen = 0; /* evaluate again what the rollback undid */
}

/* A flagged sensor's readings from its onset on: suspect, "drift". */
static int on_readings(void *ctx, struct store *st, struct agri_telemetry *t)
{
	struct drift *d = ctx;

	(void)st;
	if (!d->n_flags)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		struct agri_reading *r = &t->readings[i];
		const struct flag *f;
		bool conductive = false;

		if (r->q != AGRI_Q_OK)
			continue;
		for (size_t m = 0; m < AGRI_ARRAY_SIZE(drift_metrics) && !conductive; m++)
			conductive = !strcmp(r->metric, drift_metrics[m]);
		if (conductive && (f = flag_find(d, t->station, r->sensor)) && r->ts_ms >= f->since_ms) {
			r->q = AGRI_Q_SUSPECT;
			snprintf(r->why, sizeof(r->why), "%s", WHY);
		}
	}
	return 0;
}

struct drift *drift_new(const struct gateway_config *cfg, struct store *st, int *err)
{
	struct drift *d = calloc(1, sizeof(*d));
	char *msg = NULL;
	int rc;

	if (!d || !(d->rows = malloc(ROWS_MAX * sizeof(*d->rows)))) {
		if (d)
			free(d);
		*err = -ENOMEM;
		return NULL;
	}
	d->cfg = cfg;
	d->st = st;
	rc = sqlite3_exec(store_db(st), schema, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		log_error(LOG, "cannot create the drift_flags table: %s", msg ? msg : "?");
		sqlite3_free(msg);
		drift_free(d);
		*err = agri_sqlite_errno(rc);
		return NULL;
	}
	if ((rc = load_flags(d)) < 0) {
		drift_free(d);
		*err = rc;
		return NULL;
	}
	for (size_t i = 0; i < d->n_flags; i++)
		log_info(LOG, "station=%s sensor=%s: flagged as drifting (since %lld)",
			 d->flags[i].station, d->flags[i].sensor, (long long)d->flags[i].since_ms);
	d->hook = (struct ingest_hook){.name = "drift", .ctx = d, .on_readings = on_readings,
				       .on_tick = on_tick, .on_rollback = on_rollback};
	return d;
}

const struct ingest_hook *drift_hook(struct drift *d)
{
	return &d->hook;
}

void drift_free(struct drift *d)
{
	if (!d)
		return;
	free(d->rows);
	free(d);
}
