/*
 * The notification policy (docs/notify.md, "People and the policy"): what
 * each person of the recipients file hears, between the rooms that raise
 * things (alert transitions, forecast refits, pest advisories) and the
 * outbox that delivers.
 *
 *   input (a JSON document: an alert transition, a station's new intake
 *   windows, an advisory), with the time the gateway learned it
 *     -> journal row (notify_journal), so `agrictl notify preview` can
 *        replay it
 *     -> per person: routing (stations, districts, rules, kinds,
 *        severities, pests), then tide-aware damping of ladders (the first
 *        upward crossing of a person's level in a tidal day and each new
 *        daily maximum at once; re-crossings into the bulletin; an
 *        all-clear after a whole tidal day below), flapping of other rules,
 *        window changes against what the bulletin announced
 *     -> items (notify_item) due at +group_wait, held over quiet hours
 *   policy_advance(now): timers in time order (all-clears, flapping that
 *   settled, bulletins, groups falling due) -> messages (notify_message,
 *   each with a stable id "<person>/<kind>/<time>") -> on_message()
 *   (the gateway stages them in the outbox, in the same transaction).
 *
 * Every decision is a function of the inputs and their times only (never
 * of when ticks happen: timers fire at their own due times), and all state
 * lives in SQLite tables written in the caller's transaction, so a crash
 * loses or doubles nothing (a rolled-back batch stages nothing, its retry
 * decides the same), and replaying the journal through a fresh policy
 * gives the same messages with the same ids. Per person the state is
 * bounded: one row per (person, alert key) it follows (at most
 * POLICY_KEYS_MAX, the least recently changed forgotten first), at most
 * POLICY_ITEMS_MAX waiting items (the oldest non-urgent folded into a
 * count), messages and journal kept keep_ms.
 *
 * Threads: one caller at a time (the gateway's writer thread, or the
 * preview); the struct holds the configuration only, and counters read by
 * policy_metrics_text() from any thread (mu).
 */
#ifndef GATEWAY_POLICY_H
#define GATEWAY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/recipients.h"

struct sqlite3;
struct policy;

#define POLICY_KEYS_MAX 1024   /* state rows a person */
#define POLICY_ITEMS_MAX 64    /* waiting items a person */
#define POLICY_KEEP_DAYS 35    /* messages and journal kept */
#define POLICY_SMS_UNITS 134   /* two UCS-2 segments */

/* A station's place, for routing by district and for texts. */
struct policy_site {
	char station[33];
	char name[81];      /* "Hòa Bình (Chợ Gạo)" ("" = the code) */
	char district[81];
};

/* A message as decided: valid during on_message(). */
struct policy_message {
	const char *id;        /* "<person>/<kind>/<RFC 3339 time>": stable */
	const struct recipient *person;
	const char *kind;      /* "bulletin" or "alert" */
	int64_t at_ms;         /* when it falls due (policy clock) */
	const char *text_vi, *text_en; /* the long forms */
	const char *sms;       /* the SMS form, person's language, <= 2 segments */
	const char *payload;   /* the webhook body (docs/notify.md) */
	int items;             /* news items in it */
};

/* Told of each message, inside the caller's transaction; a negative errno
 * rolls it back. */
typedef int (*policy_message_fn)(void *ctx, struct sqlite3 *db, const struct policy_message *m);

struct policy_options {
	const struct recipients *people;  /* copied */
	const struct policy_site *sites;  /* copied */
	size_t n_sites;
	bool journal;                     /* record inputs (live); not the preview */
	int64_t keep_ms;                  /* 0: POLICY_KEEP_DAYS */
	policy_message_fn on_message;
	void *ctx;
};

/* Creates the policy's tables (IF NOT EXISTS) on db. Returns 0 or a
 * negative errno. */
int policy_init(struct sqlite3 *db);

/* A policy over o's people and sites; NULL on ENOMEM. */
struct policy *policy_new(const struct policy_options *o);
void policy_free(struct policy *p);

/* The people it serves (borrowed from the policy). */
const struct recipients *policy_people(const struct policy *p);

/*
 * One input (docs/notify.md, "Inputs"), at_ms when the gateway learned it
 * (the policy's clock never goes back: an earlier at_ms counts as the
 * clock). Journals it (options.journal), advances the timers to at_ms,
 * then decides. In the caller's transaction on db. Returns 0, -EINVAL for
 * a document it cannot read (nothing done), or a SQLite error as a
 * negative errno (roll back).
 */
int policy_input(struct policy *p, struct sqlite3 *db, const char *doc, int64_t at_ms);

/* Fires every timer due at or before now_ms, in time order. Returns the
 * number of messages made, or a negative errno (roll back). */
int policy_advance(struct policy *p, struct sqlite3 *db, int64_t now_ms);

/* The policy's clock: the last time it advanced to (0: never). */
int64_t policy_clock(struct sqlite3 *db);

/*
 * Documents for policy_input, from what the rooms hand over. Each writes a
 * malloc'd JSON string into *out (caller frees) and returns 0 or -ENOMEM.
 * The station's district and place name are the policy's sites'.
 */
struct alert_transition;
struct forecast_window;
struct advisory;
int policy_doc_alert(const struct policy *p, const struct alert_transition *t, char **out);
int policy_doc_windows(const struct policy *p, const char *station, int64_t made_at_ms,
		       const struct forecast_window *w, size_t n, char **out);
int policy_doc_advisory(const struct policy *p, const struct advisory *a, double count,
			const char *text_en, const char *text_vi, char **out);
/* The policy's own sites, to journal at start (a replay then routes by
 * district and names places as live did). */
int policy_doc_sites(const struct policy *p, char **out);

/* Deletes journal rows and messages older than keep_ms before now_ms
 * (at most 1000 rows a call). Returns rows deleted or a negative errno. */
int policy_prune(struct policy *p, struct sqlite3 *db, int64_t now_ms);

/* Writes the people as the dashboard shows them (table notify_people:
 * name, role, what they follow, how they are reached, masked). */
int policy_publish_people(struct policy *p, struct sqlite3 *db);

/* Counts of messages made, per person: since start (the policy object),
 * by kind. Called after the transaction committed (policy_commit) or
 * rolled back (policy_rollback), so counters only count what is durable. */
void policy_commit(struct policy *p);
void policy_rollback(struct policy *p);
/*
 * Prometheus text: agri_gateway_notify_messages_total{person,kind} and
 * agri_gateway_notify_messages_today{person} (messages besides the
 * bulletin in the person's local day). Any thread. Returns the length or
 * -ENOSPC.
 */
int policy_metrics_text(void *p, char *buf, size_t len);

/* Local minute of the day and local day number of ms (utc_offset_min). */
int policy_local_minute(int64_t ms, int64_t utc_offset_min);
int64_t policy_local_day(int64_t ms, int64_t utc_offset_min);

#endif
