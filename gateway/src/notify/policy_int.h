/*
 * The policy's rooms (policy.h): policy.c decides (inputs, per-key state,
 * items, messages, timers) with its sections, policy_alerts.c (ladders,
 * flapping), policy_forecasts.c (intake windows, advisories) and
 * policy_bulletin.c (the morning bulletin); policy_docs.c makes its input
 * documents and the people page; compose.c writes (the texts of items,
 * group messages and bulletins, their SMS forms). Shared here, nowhere
 * else: the struct, what compose.c reads and writes, and the decision's
 * own helpers (pol_*), which its sections share.
 */
#ifndef GATEWAY_POLICY_INT_H
#define GATEWAY_POLICY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "gateway/policy.h"

#define POLICY_TEXT_MAX (16 * 1024)  /* a message's long form, one language */
#define POLICY_PAYLOAD_MAX (64 * 1024)

/*
 * Locking rules: one caller at a time (the gateway's writer thread, or the
 * preview; policy.h) reads and writes all of it but the counters without a
 * lock: the configuration, set by policy_new() (the sites replaced by a
 * "sites" input), and nothing else, since the state is in SQLite tables on
 * the caller's connection, in the caller's transaction. The counters are
 * under mu: staged by pol_message_emit(), committed or dropped with the
 * transaction (policy_commit(), policy_rollback()), read by
 * policy_metrics_text() from any thread.
 */
struct policy {
	struct recipients people;
	struct policy_site *sites;
	size_t n_sites;
	bool journal;
	int64_t keep_ms;
	policy_message_fn on_message;
	void *ctx;
	/* Counters (mu): committed, and staged in the open transaction. */
	pthread_mutex_t mu;
	uint64_t total[RECIPIENTS_MAX][2];   /* [person][0 alert, 1 bulletin] */
	uint64_t staged[RECIPIENTS_MAX][2];
	int64_t day[RECIPIENTS_MAX];         /* local day of today_n */
	uint64_t today_n[RECIPIENTS_MAX];    /* messages besides bulletins that day */
	int64_t staged_day[RECIPIENTS_MAX];
	uint64_t staged_today[RECIPIENTS_MAX];
};

/* An item as compose.c reads it: its JSON document (notify_item.doc). */
struct policy_item {
	int64_t id;
	int64_t at_ms;
	bool urgent;
	cJSON *doc;   /* owned by the caller */
};

/* What a bulletin says, gathered by policy_bulletin.c (the data and the
 * state), written by compose.c. */
struct bulletin_station {
	char station[33];
	const char *place;     /* borrowed from the sites, or the code */
	bool has_range;
	double min, max;
	int recross;           /* damped re-crossings of the person's level */
	int n_windows;         /* windows at the person's level overlapping today */
	int64_t win[8][2];
	int n_sluice;
	int64_t sluice[4][2];
	bool has_forecast;     /* a forecast made at or before the bulletin */
	double level;          /* the person's crop level */
};

struct bulletin_trap {
	char station[33];
	const char *place;
	double count;
};

struct bulletin_advice {
	char station[33];
	const char *place;
	int64_t sow_from, sow_to, hatch_from;
};

#define BULLETIN_STATIONS_MAX 64
#define BULLETIN_TRAPS_MAX 32
#define BULLETIN_ADVICE_MAX 8

struct bulletin {
	int64_t at_ms;
	const struct recipient *person;
	size_t n_stations;
	struct bulletin_station st[BULLETIN_STATIONS_MAX];
	size_t n_traps;
	struct bulletin_trap traps[BULLETIN_TRAPS_MAX];
	size_t n_advice;
	struct bulletin_advice advice[BULLETIN_ADVICE_MAX];
	struct policy_item *notes;   /* bulletin-only and held items */
	size_t n_notes;
	int more;                    /* items left out (the person's cap) */
};

/* Texts of one message, written by compose_*(): long forms, SMS form
 * (<= 2 segments in the person's language), webhook payload. */
struct composed {
	struct agri_buf vi, en, sms, payload;
};

void composed_init(struct composed *c);
void composed_free(struct composed *c);

/* Adds an item's texts to its facts (policy.c's pol_item_new and the kind's
 * own keys): "vi", "en" (long), "svi", "sen" (SMS), "pvi", "pen" (its part
 * in a group line) and "grp" (items with the same grp share one line). */
int compose_item(const struct policy *pol, const struct recipient *r, cJSON *it);

/* The group message of items[0..n) for p at at_ms (id: the message's). */
int compose_group(const struct policy *pol, const struct recipient *p, const char *id,
		  int64_t at_ms, struct policy_item *items, size_t n, int more,
		  struct composed *out);
/* The bulletin b. */
int compose_bulletin(const struct policy *pol, const char *id, const struct bulletin *b,
		     struct composed *out);

/* Helpers shared by both rooms. */
const char *policy_place(const struct policy *p, const char *station);
const char *policy_district(const struct policy *p, const char *station);
/* "0,5" / "0.5": at most 2 decimals (1 from 10 up), zeros trimmed. */
void policy_fmt_num(char *buf, size_t len, double v, bool en);
/* Local "HH:MM" and "dd/mm". */
void policy_fmt_clock(char *buf, size_t len, int64_t ms, int64_t utc_offset_min);
void policy_fmt_date(char *buf, size_t len, int64_t ms, int64_t utc_offset_min);
/* The place's short form for SMS: its name up to " (", else the code. */
void policy_short_place(char *buf, size_t len, const char *place);
/* s cut to at most max UTF-16 units on a character boundary, with "…"
 * when cut. */
void policy_sms_fit(char *s, size_t max_units);
size_t policy_utf16_units(const char *s);

/* --- the decision's helpers (policy.c), shared by its sections ------------ */

#define DAY_MS 86400000LL
#define MIN_MS 60000LL

/* How pol_item_add() queues an item: with the person's next group (held
 * over their quiet hours unless urgent), or for their bulletin. */
enum item_mode { ITEM_NOW, ITEM_BULLETIN };

/* SQL on the caller's connection, in its transaction: a statement prepared
 * with its arguments bound ('t' text, 'i' int64_t, 'd' double, 'n' NULL;
 * NULL and *rc set on an error), run once and finalized, or its first
 * column read as one integer. */
sqlite3_stmt *pol_prep(sqlite3 *db, int *rc, const char *sql, const char *types, ...);
int pol_run(sqlite3_stmt *q, const int *rc);
int64_t pol_one_int(sqlite3_stmt *q, int64_t def, int *rc);
/* Sets k in notify_meta (the policy's clock, its start, the people's UTC
 * offset). */
int pol_meta_set(sqlite3 *db, const char *k, int64_t v);

/* Reading an input document or a key's state: a missing or mistyped key
 * reads as "", def or false; a severity not known as a warning. */
const char *pol_jstr(const cJSON *o, const char *k);
double pol_jnum(const cJSON *o, const char *k, double def);
int64_t pol_jint(const cJSON *o, const char *k, int64_t def);
bool pol_jbool(const cJSON *o, const char *k);
enum alert_severity pol_sev_of(const char *s);

/* Per-key state: a JSON object for each (person, alert key) in notify_key,
 * with its timer (INT64_MIN: none). */
cJSON *pol_key_load(sqlite3 *db, const char *person, const char *key, int *rc);
int pol_key_save(sqlite3 *db, const char *person, const char *key, cJSON *st, int64_t at,
		 int64_t timer);
void pol_set_num(cJSON *o, const char *k, double v);
void pol_set_str(cJSON *o, const char *k, const char *v);
void pol_set_bool(cJSON *o, const char *k, bool v);

/* Items: a new fact object of a kind (in: the input it is about, or NULL),
 * and queueing it for r with its texts (doc stays the caller's). */
cJSON *pol_item_new(const char *kind, const cJSON *in, int64_t at);
int pol_item_add(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t at,
		 cJSON *doc, bool urgent, enum item_mode mode);

/* Messages: the waiting items read (where: an SQL condition, ?1 the
 * person, ?2 arg), freed and deleted, the count of items left out taken,
 * a message's id made and the message recorded and handed on. */
int pol_items_read(sqlite3 *db, const char *person, const char *where, int64_t arg,
		   struct policy_item **out, size_t *n);
void pol_items_free(struct policy_item *it, size_t n);
int pol_items_delete(sqlite3 *db, const struct policy_item *it, size_t n);
int pol_more_take(sqlite3 *db, const char *person, int *more);
void pol_message_id(char *id, size_t len, const char *person, const char *kind, int64_t at);
int pol_message_emit(struct policy *p, sqlite3 *db, const struct recipient *r, const char *kind,
		     int64_t at, int n_items, struct composed *c, char *id, size_t id_len);

/* --- the decision's sections, which policy.c calls -------------------------- */

/* policy_alerts.c: an "alert" input; the timers of its keys' state. */
int pol_on_alert(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at);
int pol_ladder_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
		     const char *key, cJSON *st, int64_t t);
int pol_other_timer(struct policy *p, sqlite3 *db, const struct recipient *r,
		    const char *key, cJSON *st, int64_t t);

/* policy_forecasts.c: the "windows" and "advisory" inputs. */
int pol_on_windows(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at);
int pol_on_advisory(struct policy *p, sqlite3 *db, const cJSON *in, int64_t at);

/* policy_bulletin.c: r's bulletin due at t (1: made, 0: nothing to say). */
int pol_bulletin_make(struct policy *p, sqlite3 *db, const struct recipient *r, int64_t t);

#endif
