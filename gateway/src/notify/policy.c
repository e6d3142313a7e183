/*
 * The notification policy's decisions (see policy.h, docs/notify.md):
 * inputs routed to people, per-key damping and flapping state, items
 * waiting for their group, their quiet hours' end or the bulletin, and
 * the timers that turn them into messages. All state is in SQLite tables
 * on the caller's connection, read and written in the caller's
 * transaction; the struct holds the configuration and the counters.
 */
#include "gateway/policy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "agri/sqlite_errno.h"
#include "agri/time.h"
#include "agri/util.h"
#include "alerts/alert.h"
#include "forecast/model.h"
#include "notify/policy_int.h"

#define LOG "notify"
#define ADVANCE_STEPS_MAX 100000 /* timers fired in one advance (a guard) */
#define HELD_TO_BULLETIN_MS (2 * 3600000LL) /* quiet-held news this close to the bulletin joins it */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS notify_journal(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" at INTEGER NOT NULL, doc TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS notify_journal_at ON notify_journal(at);"
	"CREATE TABLE IF NOT EXISTS notify_meta(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS notify_key(person TEXT NOT NULL, key TEXT NOT NULL,"
	" st TEXT NOT NULL, updated INTEGER NOT NULL, timer INTEGER,"
	" PRIMARY KEY(person, key)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS notify_key_timer ON notify_key(timer) WHERE timer IS NOT NULL;"
	"CREATE TABLE IF NOT EXISTS notify_item(id INTEGER PRIMARY KEY, person TEXT NOT NULL,"
	" at INTEGER NOT NULL, due INTEGER, bulletin INTEGER NOT NULL DEFAULT 0,"
	" urgent INTEGER NOT NULL DEFAULT 0, doc TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS notify_item_due ON notify_item(due) WHERE due IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS notify_item_person ON notify_item(person, id);"
	"CREATE TABLE IF NOT EXISTS notify_message(id TEXT PRIMARY KEY, person TEXT NOT NULL,"
	" kind TEXT NOT NULL, at INTEGER NOT NULL, day INTEGER NOT NULL, items INTEGER NOT NULL,"
	" text_vi TEXT NOT NULL, text_en TEXT NOT NULL, sms TEXT NOT NULL, payload TEXT NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS notify_message_by_person ON notify_message(person, at);"
	"CREATE TABLE IF NOT EXISTS notify_clock(person TEXT PRIMARY KEY, last_bulletin INTEGER,"
	" more INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS notify_window(station TEXT NOT NULL, below REAL NOT NULL,"
	" sluice INTEGER NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,"
	" tide TEXT, made_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS notify_window_by_station ON notify_window(station);"
	"CREATE TABLE IF NOT EXISTS notify_announced(person TEXT NOT NULL, station TEXT NOT NULL,"
	" below REAL NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,"
	" until_ms INTEGER NOT NULL);" /* the end of the bulletin's day */
	"CREATE INDEX IF NOT EXISTS notify_announced_by ON notify_announced(person, station);"
	"CREATE TABLE IF NOT EXISTS notify_advice(id TEXT PRIMARY KEY, station TEXT NOT NULL,"
	" pest TEXT NOT NULL, at INTEGER NOT NULL, sow_from INTEGER NOT NULL,"
	" sow_to INTEGER NOT NULL, hatch_from INTEGER NOT NULL, doc TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS notify_people(person TEXT PRIMARY KEY, doc TEXT NOT NULL)"
	" WITHOUT ROWID;"
	"DROP VIEW IF EXISTS main.v_notify_messages;"
	"CREATE VIEW v_notify_messages AS SELECT id, person, kind,"
	" strftime('%Y-%m-%dT%H:%M:%fZ', at / 1000.0, 'unixepoch') AS at, items, text_vi,"
	" text_en, sms FROM notify_message;";

int policy_init(sqlite3 *db)
{
	int rc = sqlite3_exec(db, schema, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : agri_sqlite_errno(rc);
}

/* --- small SQL helpers ------------------------------------------------------ */

/*
 * Prepares sql and binds the arguments described by types: 't' text
 * (const char *, NULL binds NULL), 'i' int64_t, 'd' double, 'n' NULL.
 * Returns the statement or NULL (*rc set).
 */
sqlite3_stmt *pol_prep(sqlite3 *db, int *rc, const char *sql, const char *types, ...)
{
	sqlite3_stmt *q = NULL;
	va_list ap;
	int r;

	r = sqlite3_prepare_v2(db, sql, -1, &q, NULL);
	if (r != SQLITE_OK) {
		log_error(LOG, "cannot prepare error=\"%s\" sql=\"%.60s\"", sqlite3_errmsg(db), sql);
		*rc = agri_sqlite_errno(r);
		return NULL;
	}
	va_start(ap, types);
	for (int i = 0; types && types[i]; i++) {
		switch (types[i]) {
		case 't': {
			const char *s = va_arg(ap, const char *);

			if (s)
				sqlite3_bind_text(q, i + 1, s, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(q, i + 1);
			break;
		}
		case 'i': sqlite3_bind_int64(q, i + 1, va_arg(ap, int64_t)); break;
		case 'd': sqlite3_bind_double(q, i + 1, va_arg(ap, double)); break;
		default: /* 'n': NULL (its int64_t argument is skipped) */
			(void)va_arg(ap, int64_t);
			sqlite3_bind_null(q, i + 1);
			break;
		}
	}
	va_end(ap);
	*rc = 0;
	return q;
}

/* Runs a statement without rows; finalizes it. Returns 0 or a negative errno. */
int pol_run(sqlite3_stmt *q, const int *rc)
{
	int r;

	if (!q)
		return *rc;
	r = sqlite3_step(q);
	sqlite3_finalize(q);
	return r == SQLITE_DONE || r == SQLITE_ROW ? 0 : agri_sqlite_errno(r);
}

/* The first column of the first row as an int64 (def when none or NULL). */
int64_t pol_one_int(sqlite3_stmt *q, int64_t def, int *rc)
{
	int64_t v = def;
	int r;

	if (!q)
		return def;
	r = sqlite3_step(q);
	if (r == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(q, 0);
	else if (r != SQLITE_ROW && r != SQLITE_DONE)
		*rc = agri_sqlite_errno(r);
	sqlite3_finalize(q);
	return v;
}

static int64_t meta_get(sqlite3 *db, const char *k, int64_t def, int *rc)
{
	return pol_one_int(pol_prep(db, rc, "SELECT v FROM notify_meta WHERE k = ?", "t", k), def, rc);
}

int pol_meta_set(sqlite3 *db, const char *k, int64_t v)
{
	int rc;

	return pol_run(pol_prep(db, &rc, "INSERT OR REPLACE INTO notify_meta(k, v) VALUES(?, ?)",
				"ti", k, v), &rc);
}

int64_t policy_clock(sqlite3 *db)
{
	int rc = 0;

	return meta_get(db, "clock", 0, &rc);
}

/* --- time -------------------------------------------------------------------- */

int64_t policy_local_day(int64_t ms, int64_t off_min)
{
	int64_t l = ms + off_min * MIN_MS;

	return l >= 0 ? l / DAY_MS : -((-l + DAY_MS - 1) / DAY_MS);
}

int policy_local_minute(int64_t ms, int64_t off_min)
{
	int64_t l = ms + off_min * MIN_MS;

	return (int)(((l % DAY_MS) + DAY_MS) % DAY_MS / MIN_MS);
}

/* The first instant after `after` whose local time is minute m:00.000. */
static int64_t next_local(int64_t after, int m, int64_t off_min)
{
	int64_t t = policy_local_day(after, off_min) * DAY_MS + m * MIN_MS - off_min * MIN_MS;

	while (t <= after)
		t += DAY_MS;
	return t;
}

static bool quiet_at(const struct policy *p, const struct recipient *r, int64_t ms)
{
	return recipient_quiet_at(r, policy_local_minute(ms, p->people.utc_offset_min));
}

/* --- the object ----------------------------------------------------------------- */

struct policy *policy_new(const struct policy_options *o)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->people = *o->people;
	p->sites = calloc(o->n_sites ? o->n_sites : 1, sizeof(*p->sites));
	if (!p->sites) {
		free(p);
		return NULL;
	}
	if (o->n_sites)
		memcpy(p->sites, o->sites, o->n_sites * sizeof(*p->sites));
	p->n_sites = o->n_sites;
	p->journal = o->journal;
	p->keep_ms = o->keep_ms > 0 ? o->keep_ms : POLICY_KEEP_DAYS * DAY_MS;
	p->on_message = o->on_message;
	p->ctx = o->ctx;
	pthread_mutex_init(&p->mu, NULL);
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	pthread_mutex_destroy(&p->mu);
	free(p->sites);
	free(p);
}

const struct recipients *policy_people(const struct policy *p)
{
	return &p->people;
}

static const struct policy_site *site_of(const struct policy *p, const char *station)
{
	for (size_t i = 0; i < p->n_sites; i++)
		if (strcmp(p->sites[i].station, station) == 0)
			return &p->sites[i];
	return NULL;
}

const char *policy_place(const struct policy *p, const char *station)
{
	const struct policy_site *s = site_of(p, station);

	return s && s->name[0] ? s->name : station;
}

const char *policy_district(const struct policy *p, const char *station)
{
	const struct policy_site *s = site_of(p, station);

	return s ? s->district : "";
}

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

/* --- reading documents ------------------------------------------------------- */

const char *pol_jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

double pol_jnum(const cJSON *o, const char *k, double def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int64_t pol_jint(const cJSON *o, const char *k, int64_t def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : def;
}

bool pol_jbool(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

enum alert_severity pol_sev_of(const char *s)
{
	enum alert_severity v = ALERT_SEV_WARNING;

	(void)alert_severity_parse(s, &v);
	return v;
}

/* --- per-key state ----------------------------------------------------------- */

/* The state of (person, key) as a JSON object (a new empty one when none). */
cJSON *pol_key_load(sqlite3 *db, const char *person, const char *key, int *rc)
{
	sqlite3_stmt *q = pol_prep(db, rc, "SELECT st FROM notify_key WHERE person = ? AND key = ?",
				   "tt", person, key);
	cJSON *o = NULL;

	if (!q)
		return NULL;
	if (sqlite3_step(q) == SQLITE_ROW)
		o = cJSON_Parse((const char *)sqlite3_column_text(q, 0));
	sqlite3_finalize(q);
	return o ? o : cJSON_CreateObject();
}

/* Saves st (timer: INT64_MIN for none), keeping at most POLICY_KEYS_MAX
 * rows a person (the least recently changed without a timer go first). */
int pol_key_save(sqlite3 *db, const char *person, const char *key, cJSON *st, int64_t at,
		 int64_t timer)
{
	char *s = cJSON_PrintUnformatted(st);
	sqlite3_stmt *q;
	int rc, n;

	if (!s)
		return -ENOMEM;
	q = pol_prep(db, &rc, "INSERT OR REPLACE INTO notify_key(person, key, st, updated, timer)"
		     " VALUES(?, ?, ?, ?, ?)", timer == INT64_MIN ? "ttti" : "tttii", person, key, s,
		     at, timer);
	free(s);
	if ((rc = pol_run(q, &rc)) < 0)
		return rc;
	n = (int)pol_one_int(pol_prep(db, &rc, "SELECT count(*) FROM notify_key WHERE person = ?", "t",
				      person), 0, &rc);
	if (n > POLICY_KEYS_MAX)
		rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_key WHERE person = ?1 AND key IN (SELECT key"
				      " FROM notify_key WHERE person = ?1 ORDER BY timer IS NOT NULL, updated"
				      " LIMIT ?2)", "ti", person, (int64_t)(n - POLICY_KEYS_MAX)), &rc);
	return rc;
}

void pol_set_num(cJSON *o, const char *k, double v)
{
	cJSON *e = cJSON_GetObjectItemCaseSensitive(o, k);

	if (e)
		cJSON_SetNumberValue(e, v);
	else
		cJSON_AddNumberToObject(o, k, v);
}

void pol_set_str(cJSON *o, const char *k, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddStringToObject(o, k, v ? v : "");
}

void pol_set_bool(cJSON *o, const char *k, bool v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddBoolToObject(o, k, v);
}

/* --- items -------------------------------------------------------------------- */

static int person_index(const struct policy *p, const struct recipient *r)
{
	return (int)(r - p->people.v);
}

/*
 * Queues an item for r: at once (due at + group_wait; held over r's
 * quiet hours unless urgent, and folded into the bulletin when that
 * comes within two hours of their end) or for the bulletin. doc (facts,
 * owned by the caller) gets its texts from compose.c.
 */
int pol_item_add(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t at,
		 cJSON *doc, bool urgent, enum item_mode mode)
{
	int64_t gw = p->people.group_wait_ms, due = at + gw, n;
	bool bulletin = mode == ITEM_BULLETIN;
	char *s;
	int rc = 0;

	if ((rc = compose_item(p, r, doc)) < 0)
		return rc;
	if (!bulletin && !urgent && quiet_at(p, r, due)) {
		if (!quiet_at(p, r, at)) {
			/* just before the quiet hours begin */
			due = next_local(at, r->quiet_from_min, p->people.utc_offset_min) - 1;
		} else {
			due = next_local(at, r->quiet_to_min, p->people.utc_offset_min);
			if (r->bulletin) {
				int64_t b = next_local(at, r->bulletin_min, p->people.utc_offset_min);

				if (b >= due && b - due <= HELD_TO_BULLETIN_MS)
					bulletin = true;
			}
		}
	}
	if (!bulletin && !urgent && due < at)
		due = at;
	n = pol_one_int(pol_prep(db, &rc, "SELECT count(*) FROM notify_item WHERE person = ?", "t",
				 r->name), 0, &rc);
	if (rc < 0)
		return rc;
	if (n >= POLICY_ITEMS_MAX) {
		/* bounded: the oldest item that is not urgent makes room (counted) */
		int64_t old = pol_one_int(pol_prep(db, &rc, "SELECT id FROM notify_item WHERE person = ?"
						   " AND urgent = 0 ORDER BY id LIMIT 1", "t", r->name),
					  -1, &rc);

		if (old < 0 && !urgent)
			old = INT64_MAX; /* every waiting item is urgent: drop this one */
		if (old == INT64_MAX || old < 0) {
			rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_clock(person, more) VALUES(?, 1)"
					      " ON CONFLICT(person) DO UPDATE SET more = more + 1", "t",
					      r->name), &rc);
			return rc;
		}
		rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_item WHERE id = ?", "i", old), &rc);
		rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_clock(person, more) VALUES(?, 1)"
				      " ON CONFLICT(person) DO UPDATE SET more = more + 1", "t", r->name), &rc);
		if (rc < 0)
			return rc;
	}
	if (!(s = cJSON_PrintUnformatted(doc)))
		return -ENOMEM;
	rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_item(person, at, due, bulletin, urgent, doc)"
			      " VALUES(?, ?, ?, ?, ?, ?)", bulletin ? "tinii" "t" : "tiiiit", r->name, at,
			      bulletin ? (int64_t)0 : due, (int64_t)bulletin, (int64_t)urgent, s), &rc);
	free(s);
	return rc;
}

/* A fact object for an item: its kind and the alert's place. */
cJSON *pol_item_new(const char *kind, const cJSON *in, int64_t at)
{
	cJSON *it = cJSON_CreateObject();

	if (!it)
		return NULL;
	cJSON_AddStringToObject(it, "kind", kind);
	cJSON_AddNumberToObject(it, "at", (double)at);
	if (in) {
		cJSON_AddStringToObject(it, "station", pol_jstr(in, "station"));
		cJSON_AddStringToObject(it, "place", pol_jstr(in, "place"));
		if (pol_jstr(in, "id")[0])
			cJSON_AddStringToObject(it, "alert", pol_jstr(in, "id"));
		if (pol_jstr(in, "rule")[0])
			cJSON_AddStringToObject(it, "rule", pol_jstr(in, "rule"));
		if (pol_jbool(in, "late"))
			cJSON_AddBoolToObject(it, "late", true);
	}
	return it;
}

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
static int pol_ladder_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
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
static int pol_other_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
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

static int pol_on_alert(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
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

/* --- forecasts: announced windows ---------------------------------------------- */

static int pol_on_windows(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
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

static int pol_on_advisory(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at)
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

/* --- messages ---------------------------------------------------------------------- */

/* Records message m (its id made unique if a bug ever repeated one) and
 * hands it to on_message. */
int pol_message_emit(struct policy *p, sqlite3 *db, const struct recipient *r, const char *kind,
		     int64_t at, int n_items, struct composed *c, char *id, size_t id_len)
{
	struct policy_message m;
	int rc = 0, k = strcmp(kind, "bulletin") == 0 ? 1 : 0;
	int idx = person_index(p, r);

	for (int tries = 2; pol_one_int(pol_prep(db, &rc, "SELECT count(*) FROM notify_message"
						 " WHERE id = ?", "t", id), 0, &rc) > 0 && tries < 100;
	     tries++) {
		size_t l = strlen(id);

		snprintf(id + l, id_len - l, "-%d", tries);
	}
	if (rc < 0)
		return rc;
	rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_message(id, person, kind, at, day, items,"
			      " text_vi, text_en, sms, payload) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			      "tttiiitttt", id, r->name, kind, at,
			      policy_local_day(at, p->people.utc_offset_min),
			      (int64_t)n_items, c->vi.p, c->en.p, c->sms.p, c->payload.p), &rc);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&p->mu);
	p->staged[idx][k]++;
	if (!k) {
		int64_t d = policy_local_day(at, p->people.utc_offset_min);

		if (p->staged_day[idx] != d) {
			p->staged_day[idx] = d;
			p->staged_today[idx] = 0;
		}
		p->staged_today[idx]++;
	}
	pthread_mutex_unlock(&p->mu);
	m = (struct policy_message){.id = id, .person = r, .kind = kind, .at_ms = at,
				    .text_vi = c->vi.p, .text_en = c->en.p, .sms = c->sms.p,
				    .payload = c->payload.p, .items = n_items};
	log_info(LOG, "message id=%s person=%s kind=%s items=%d", id, r->name, kind, n_items);
	return p->on_message ? p->on_message(p->ctx, db, &m) : 0;
}

void pol_message_id(char *id, size_t len, const char *person, const char *kind, int64_t at)
{
	char ts[40];

	agri_time_format(at, ts, sizeof(ts));
	snprintf(id, len, "%s/%s/%s", person, kind, ts);
}

void pol_items_free(struct policy_item *it, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(it[i].doc);
	free(it);
}

/* Reads items of person (where: an SQL condition on notify_item, with ?1
 * the person and ?2 an int). *out: malloc'd, ordered by id. */
int pol_items_read(sqlite3 *db, const char *person, const char *where, int64_t arg,
		   struct policy_item **out, size_t *n)
{
	char sql[256];
	sqlite3_stmt *q;
	struct policy_item *v = calloc(POLICY_ITEMS_MAX + 1, sizeof(*v));
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!v)
		return -ENOMEM;
	snprintf(sql, sizeof(sql), "SELECT id, at, urgent, doc FROM notify_item WHERE person = ?1"
		 " AND (%s) ORDER BY id LIMIT %d", where, POLICY_ITEMS_MAX + 1);
	q = pol_prep(db, &rc, sql, "ti", person, arg);
	while (q && sqlite3_step(q) == SQLITE_ROW) {
		struct policy_item *it = &v[*n];

		it->id = sqlite3_column_int64(q, 0);
		it->at_ms = sqlite3_column_int64(q, 1);
		it->urgent = sqlite3_column_int(q, 2) != 0;
		it->doc = cJSON_Parse((const char *)sqlite3_column_text(q, 3));
		if (it->doc)
			(*n)++;
	}
	sqlite3_finalize(q);
	*out = v;
	return rc;
}

int pol_items_delete(sqlite3 *db, const struct policy_item *it, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc >= 0; i++)
		rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_item WHERE id = ?", "i", it[i].id), &rc);
	return rc;
}

int pol_more_take(sqlite3 *db, const char *person, int *more)
{
	int rc = 0;

	*more = (int)pol_one_int(pol_prep(db, &rc, "SELECT more FROM notify_clock WHERE person = ?", "t",
					  person), 0, &rc);
	if (rc >= 0 && *more)
		rc = pol_run(pol_prep(db, &rc, "UPDATE notify_clock SET more = 0 WHERE person = ?", "t",
				      person), &rc);
	return rc;
}

/* The person's group falling due at t: everything waiting that is not
 * held (for quiet hours or the bulletin) becomes one message. */
static int flush(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t t)
{
	struct policy_item *items = NULL;
	struct composed c;
	char id[160];
	size_t n = 0;
	int rc, more = 0;
	bool urgent = false;

	rc = pol_items_read(db, r->name, "bulletin = 0 AND due <= ?2", t + p->people.group_wait_ms,
			    &items, &n);
	if (rc < 0 || n == 0) {
		pol_items_free(items, n);
		return rc;
	}
	for (size_t i = 0; i < n; i++)
		urgent |= items[i].urgent;
	if (p->people.max_per_day && !urgent) {
		int64_t today = pol_one_int(pol_prep(db, &rc, "SELECT count(*) FROM notify_message WHERE"
						     " person = ? AND day = ? AND kind != 'bulletin'", "ti",
						     r->name, policy_local_day(t, p->people.utc_offset_min)),
					    0, &rc);

		if (rc >= 0 && today >= p->people.max_per_day) {
			/* the person's day is full: the bulletin says the rest */
			for (size_t i = 0; i < n && rc >= 0; i++)
				rc = pol_run(pol_prep(db, &rc, "UPDATE notify_item SET bulletin = 1, due = NULL"
						      " WHERE id = ?", "i", items[i].id), &rc);
			pol_items_free(items, n);
			return rc;
		}
	}
	if ((rc = pol_more_take(db, r->name, &more)) < 0) {
		pol_items_free(items, n);
		return rc;
	}
	pol_message_id(id, sizeof(id), r->name, "alert", t);
	composed_init(&c);
	rc = compose_group(p, r, id, t, items, n, more, &c);
	if (rc >= 0)
		rc = pol_items_delete(db, items, n);
	if (rc >= 0)
		rc = pol_message_emit(p, db, r, "alert", t, (int)n, &c, id, sizeof(id));
	composed_free(&c);
	pol_items_free(items, n);
	return rc < 0 ? rc : 1;
}

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

static int pol_bulletin_make(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t t)
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

/* --- timers ------------------------------------------------------------------------ */

/* When r's next bulletin falls due (INT64_MAX: none). */
static int64_t next_bulletin(const struct policy *p, const struct recipient *r, int64_t last,
			     int64_t start)
{
	if (!r->bulletin)
		return INT64_MAX;
	return next_local(last ? last : start - 1, r->bulletin_min, p->people.utc_offset_min);
}

static int fire_keys(struct policy *p, sqlite3 *db, int64_t t)
{
	sqlite3_stmt *q;
	struct { char person[RCPT_NAME_MAX]; char key[200]; } due[32];
	size_t n = 0;
	int rc = 0;

	q = pol_prep(db, &rc, "SELECT person, key FROM notify_key WHERE timer = ? ORDER BY person, key"
		     " LIMIT 32", "i", t);
	while (q && sqlite3_step(q) == SQLITE_ROW) {
		snprintf(due[n].person, sizeof(due[n].person), "%s", sqlite3_column_text(q, 0));
		snprintf(due[n].key, sizeof(due[n].key), "%s", sqlite3_column_text(q, 1));
		n++;
	}
	sqlite3_finalize(q);
	for (size_t i = 0; i < n && rc >= 0; i++) {
		const struct recipient *r = recipients_find(&p->people, due[i].person);
		cJSON *st;

		if (!r) { /* no longer in the file */
			rc = pol_run(pol_prep(db, &rc, "UPDATE notify_key SET timer = NULL WHERE person = ?"
					      " AND key = ?", "tt", due[i].person, due[i].key), &rc);
			continue;
		}
		if (!(st = pol_key_load(db, r->name, due[i].key, &rc)))
			return rc < 0 ? rc : -ENOMEM;
		if (strcmp(pol_jstr(st, "t"), "ladder") == 0)
			rc = pol_ladder_timer(p, db, r, due[i].key, st, t);
		else
			rc = pol_other_timer(p, db, r, due[i].key, st, t);
		cJSON_Delete(st);
	}
	return rc;
}

int policy_advance(struct policy *p, sqlite3 *db, int64_t now)
{
	int64_t last[RECIPIENTS_MAX] = {0}, start, clock;
	int rc = 0, made = 0;
	sqlite3_stmt *q;

	clock = meta_get(db, "clock", 0, &rc);
	start = meta_get(db, "start", 0, &rc);
	if (rc < 0)
		return rc;
	if (now < clock)
		now = clock;
	if (!start) {
		start = now;
		if ((rc = pol_meta_set(db, "start", start)) < 0)
			return rc;
		if (p->journal && (rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_journal(at, doc)"
							 " VALUES(?, '{\"in\":\"start\"}')", "i", now), &rc)) < 0)
			return rc;
	}
	q = pol_prep(db, &rc, "SELECT person, last_bulletin FROM notify_clock", NULL);
	while (q && sqlite3_step(q) == SQLITE_ROW) {
		const struct recipient *r = recipients_find(&p->people, (const char *)sqlite3_column_text(q, 0));

		if (r)
			last[person_index(p, r)] = sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	if (rc < 0)
		return rc;
	for (int step = 0; step < ADVANCE_STEPS_MAX; step++) {
		int64_t t_key = pol_one_int(pol_prep(db, &rc, "SELECT min(timer) FROM notify_key", NULL),
					    INT64_MAX, &rc);
		int64_t t_item = pol_one_int(pol_prep(db, &rc, "SELECT min(due) FROM notify_item WHERE"
						      " due IS NOT NULL", NULL), INT64_MAX, &rc);
		int64_t t_bul = INT64_MAX, t;

		if (rc < 0)
			return rc;
		for (size_t i = 0; i < p->people.n; i++) {
			int64_t b = next_bulletin(p, &p->people.v[i], last[i], start);

			if (b < t_bul)
				t_bul = b;
		}
		t = t_key < t_item ? t_key : t_item;
		t = t_bul < t ? t_bul : t;
		if (t > now)
			break;
		if (t == t_key) {
			rc = fire_keys(p, db, t);
		} else if (t == t_bul) {
			for (size_t i = 0; i < p->people.n && rc >= 0; i++) {
				int64_t tb = t;

				if (next_bulletin(p, &p->people.v[i], last[i], start) != t)
					continue;
				/* a gateway that was down: one bulletin, the latest due */
				while (next_bulletin(p, &p->people.v[i], tb, start) <= now)
					tb = next_bulletin(p, &p->people.v[i], tb, start);
				rc = pol_bulletin_make(p, db, &p->people.v[i], tb);
				made += rc > 0;
				last[i] = tb;
			}
		} else {
			const char *person;
			char name[RCPT_NAME_MAX] = "";

			q = pol_prep(db, &rc, "SELECT person FROM notify_item WHERE due = ? ORDER BY id"
				     " LIMIT 1", "i", t);
			if (q && sqlite3_step(q) == SQLITE_ROW)
				snprintf(name, sizeof(name), "%s", sqlite3_column_text(q, 0));
			sqlite3_finalize(q);
			person = name;
			if (recipients_find(&p->people, person)) {
				rc = flush(p, db, recipients_find(&p->people, person), t);
				made += rc > 0;
			} else {
				rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_item WHERE person = ?", "t",
						      person), &rc);
			}
		}
		if (rc < 0)
			return rc;
	}
	if ((rc = pol_meta_set(db, "clock", now)) < 0)
		return rc;
	return made;
}

/* --- inputs ------------------------------------------------------------------------ */

/* The stations' places and districts as the gateway had them (journaled at
 * each start, so a replay routes by district as live did). */
static int on_sites(struct policy *p, const cJSON *in)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(in, "sites"), *e;
	int n = cJSON_GetArraySize(arr), k = 0;
	struct policy_site *v = calloc(n > 0 ? (size_t)n : 1, sizeof(*v));

	if (!v)
		return -ENOMEM;
	cJSON_ArrayForEach(e, arr) {
		if (k == n)
			break;
		snprintf(v[k].station, sizeof(v[k].station), "%s", pol_jstr(e, "station"));
		snprintf(v[k].name, sizeof(v[k].name), "%s", pol_jstr(e, "name"));
		snprintf(v[k].district, sizeof(v[k].district), "%s", pol_jstr(e, "district"));
		k++;
	}
	free(p->sites);
	p->sites = v;
	p->n_sites = (size_t)k;
	return 0;
}

int policy_input(struct policy *p, sqlite3 *db, const char *doc, int64_t at)
{
	cJSON *in = cJSON_Parse(doc);
	const char *kind;
	int rc = 0;
	int64_t clock;

	if (!cJSON_IsObject(in)) {
		cJSON_Delete(in);
		return -EINVAL;
	}
	kind = pol_jstr(in, "in");
	clock = meta_get(db, "clock", 0, &rc);
	if (rc < 0)
		goto out;
	if (at < clock)
		at = clock;
	if (p->journal && strcmp(kind, "start") != 0 &&
	    (rc = pol_run(pol_prep(db, &rc, "INSERT INTO notify_journal(at, doc) VALUES(?, ?)", "it", at,
				   doc), &rc)) < 0)
		goto out;
	if ((rc = policy_advance(p, db, at)) < 0)
		goto out;
	if (strcmp(kind, "alert") == 0)
		rc = pol_on_alert(p, db, in, at);
	else if (strcmp(kind, "windows") == 0)
		rc = pol_on_windows(p, db, in, at);
	else if (strcmp(kind, "advisory") == 0)
		rc = pol_on_advisory(p, db, in, at);
	else if (strcmp(kind, "sites") == 0)
		rc = on_sites(p, in);
	else if (strcmp(kind, "start") != 0)
		rc = -EINVAL;
	if (rc >= 0)
		rc = 0;
out:
	cJSON_Delete(in);
	return rc;
}

int policy_prune(struct policy *p, sqlite3 *db, int64_t now)
{
	int rc = 0, n = 0;

	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_journal WHERE seq IN (SELECT seq FROM"
			      " notify_journal WHERE at < ? ORDER BY seq LIMIT 1000)", "i", now - p->keep_ms), &rc);
	n += sqlite3_changes(db);
	rc = pol_run(pol_prep(db, &rc, "DELETE FROM notify_message WHERE id IN (SELECT id FROM"
			      " notify_message WHERE at < ? LIMIT 1000)", "i", now - p->keep_ms), &rc);
	n += sqlite3_changes(db);
	return rc < 0 ? rc : n;
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

/* --- counters ---------------------------------------------------------------------- */

void policy_commit(struct policy *p)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->people.n; i++) {
		p->total[i][0] += p->staged[i][0];
		p->total[i][1] += p->staged[i][1];
		p->staged[i][0] = p->staged[i][1] = 0;
		if (p->staged_today[i]) {
			if (p->day[i] != p->staged_day[i]) {
				p->day[i] = p->staged_day[i];
				p->today_n[i] = 0;
			}
			p->today_n[i] += p->staged_today[i];
			p->staged_today[i] = 0;
		}
	}
	pthread_mutex_unlock(&p->mu);
}

void policy_rollback(struct policy *p)
{
	pthread_mutex_lock(&p->mu);
	memset(p->staged, 0, sizeof(p->staged));
	memset(p->staged_today, 0, sizeof(p->staged_today));
	pthread_mutex_unlock(&p->mu);
}

int policy_metrics_text(void *pp, char *buf, size_t len)
{
	struct policy *p = pp;
	struct agri_buf b;
	int64_t day = policy_local_day(util_now_ms(), p->people.utc_offset_min);

	agri_buf_init(&b, buf, len);
	agri_buf_puts(&b, "# HELP agri_gateway_notify_messages_total Messages made for each person"
		      " since start, by kind (alert: besides the bulletin).\n"
		      "# TYPE agri_gateway_notify_messages_total counter\n");
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; i < p->people.n; i++)
		agri_buf_printf(&b, "agri_gateway_notify_messages_total{person=\"%s\",kind=\"alert\"}"
				" %" PRIu64 "\nagri_gateway_notify_messages_total{person=\"%s\","
				"kind=\"bulletin\"} %" PRIu64 "\n", p->people.v[i].name, p->total[i][0],
				p->people.v[i].name, p->total[i][1]);
	agri_buf_puts(&b, "# HELP agri_gateway_notify_messages_today Messages for each person in"
		      " today's local day, besides the bulletin.\n"
		      "# TYPE agri_gateway_notify_messages_today gauge\n");
	for (size_t i = 0; i < p->people.n; i++)
		agri_buf_printf(&b, "agri_gateway_notify_messages_today{person=\"%s\"} %" PRIu64 "\n",
				p->people.v[i].name, p->day[i] == day ? p->today_n[i] : 0);
	pthread_mutex_unlock(&p->mu);
	return agri_buf_end(&b);
}
