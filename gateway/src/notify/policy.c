/*
 * The notification policy's decisions (see policy.h, docs/notify.md):
 * inputs routed to people, per-key damping and flapping state, items
 * waiting for their group, their quiet hours' end or the bulletin, and
 * the timers that turn them into messages. All state is in SQLite tables
 * on the caller's connection, read and written in the caller's
 * transaction; the struct holds the configuration and the counters.
 * This file keeps the tables, the helpers its sections share (pol_*,
 * policy_int.h), per-key state, items, group messages, the timers and the
 * inputs' dispatch; the sections are policy_alerts.c (ladders, flapping),
 * policy_forecasts.c (intake windows, advisories) and policy_bulletin.c;
 * the input documents and the people page are policy_docs.c's.
 */
#include "gateway/policy.h"

#include <errno.h>
#include <inttypes.h>
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
