/*
 * The recipients file (docs/notify.md, "People"): the people who hear
 * about alerts, forecasts and advisories, how to reach each (an SMS
 * number, an e-mail address, a webhook channel of gateway.json), what each
 * follows (stations or districts, the salinity level of their crop, pests,
 * rules and severities, the severities wanted at once), their quiet hours
 * and their morning bulletin, plus the policy's timing (group_wait, the
 * tidal day, the bulletin's hour). Read through agri_cfg tables like every
 * config; errors are "path: reason" ("recipients[1].quiet.from: expected
 * HH:MM"). Pure: no I/O beyond recipients_load(). Shared with agrictl
 * (`agrictl recipients`, `agrictl notify preview`).
 */
#ifndef GATEWAY_RECIPIENTS_H
#define GATEWAY_RECIPIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/err.h"
#include "gateway/rules.h"

#define RECIPIENTS_MAX 64          /* people in one file */
#define RECIPIENTS_FILE_MAX (256 * 1024)
#define RCPT_NAME_MAX 33           /* [A-Za-z0-9_-]{1,32} + NUL */
#define RCPT_TEXT_MAX 81           /* display name, role: UTF-8 bytes + NUL */
#define RCPT_PHONE_MAX 24
#define RCPT_EMAIL_MAX 128
#define RCPT_CHANNEL_MAX 64
#define RCPT_GLOBS_MAX 32          /* "stations", "rules" patterns */
#define RCPT_GLOB_MAX 65
#define RCPT_DISTRICTS_MAX 16
#define RCPT_DISTRICT_MAX 81
#define RCPT_CROPS_MAX 6
#define RCPT_KEY_MAX 17            /* a crop, pest or kind key */
#define RCPT_LEVELS_MAX 6          /* salinity levels, g/L */
#define RCPT_PESTS_MAX 8
#define RCPT_KINDS_MAX 12

/* Defaults (docs/notify.md). */
#define RCPT_GROUP_WAIT_S 120
#define RCPT_BULLETIN_MIN (5 * 60 + 30) /* 05:30 local */
#define RCPT_TIDAL_DAY_S (24 * 3600 + 50 * 60)
#define RCPT_WINDOW_MOVE_S 3600
#define RCPT_FLAP_CHANGES 4
#define RCPT_FLAP_WINDOW_S (6 * 3600)
#define RCPT_FLAP_STABLE_S (2 * 3600)
#define RCPT_CRITICAL_G_L 4.0

struct recipient {
	char name[RCPT_NAME_MAX];         /* the id: "lan" */
	char display[RCPT_TEXT_MAX];      /* "Nguyễn Thị Lan" ("" = name) */
	char role[RCPT_TEXT_MAX];         /* free text for the dashboard */
	bool lang_en;                     /* "lang": "en" (default "vi") */
	/* How to reach them (any of the three; none: preview only). */
	char sms[RCPT_PHONE_MAX];         /* "+84901234567" on the sms channel */
	char email[RCPT_EMAIL_MAX];       /* on the smtp channel */
	char webhook[RCPT_CHANNEL_MAX];   /* a webhook channel's name */
	/* What they follow. No stations and no districts: every station. */
	size_t n_stations;
	char stations[RCPT_GLOBS_MAX][RCPT_GLOB_MAX];  /* fnmatch globs */
	size_t n_districts;
	char districts[RCPT_DISTRICTS_MAX][RCPT_DISTRICT_MAX]; /* sites' district */
	size_t n_crops;
	char crops[RCPT_CROPS_MAX][RCPT_KEY_MAX];      /* durian fruit vegetables rice all */
	size_t n_levels;
	double levels[RCPT_LEVELS_MAX];   /* salinity levels g/L, ascending: from
					   * "salinity_g_l" and "crops", plus 4
					   * unless "critical": false */
	size_t n_pests;
	char pests[RCPT_PESTS_MAX][RCPT_KEY_MAX];      /* "bph": sensors *-bph, advisories */
	size_t n_rules;
	char rules[RCPT_GLOBS_MAX][RCPT_GLOB_MAX];     /* rule id globs; 0 = all */
	size_t n_kinds;
	char kinds[RCPT_KINDS_MAX][RCPT_KEY_MAX];      /* rule kinds; 0 = all */
	enum alert_severity min_severity; /* lower: not routed at all (warning) */
	unsigned at_once;                 /* bit per severity sent at once (alarm,
					   * critical); the others wait for the bulletin */
	bool has_quiet;
	int quiet_from_min, quiet_to_min; /* local minutes of the day [from, to) */
	bool bulletin;                    /* a morning bulletin (default true) */
	int bulletin_min;                 /* its local minute of the day */
};

struct recipients {
	int64_t group_wait_ms;    /* what falls due within it is one message */
	int bulletin_min;         /* default bulletin time, local minutes */
	int64_t utc_offset_min;   /* local time (+420, UTC+7) */
	int64_t tidal_day_ms;     /* 24 h 50 min */
	int64_t window_move_ms;   /* an announced window moved more: a message */
	int flap_changes;         /* raises + clears within flap_window: flapping */
	int64_t flap_window_ms, flap_stable_ms;
	int max_per_day;          /* messages a person a local day besides the
				   * bulletin, past which non-critical news waits
				   * for the bulletin (0: no cap) */
	size_t n;
	struct recipient v[RECIPIENTS_MAX];
};

/* The defaults and no people. */
void recipients_defaults(struct recipients *r);

/*
 * Parses a recipients document json[0..len) into *out (a caller's struct,
 * about 300 KiB: heap or static). Returns 0, or -EINVAL with *err
 * ("recipients[1].sms: expected a phone number (+84...)"), -ENOMEM.
 */
int recipients_parse(const char *json, size_t len, struct recipients *out,
		     struct agri_err *err);

/* Reads path (at most RECIPIENTS_FILE_MAX bytes) and parses it; a read
 * error is path "" and "cannot read: ...". */
int recipients_load(const char *path, struct recipients *out, struct agri_err *err);

/* The person named name, or NULL. */
const struct recipient *recipients_find(const struct recipients *r, const char *name);

/* True when p follows station (in district, "" when unknown). */
bool recipient_follows_station(const struct recipient *p, const char *station,
			       const char *district);

/* True when p's rules and kinds admit rule (of kind). */
bool recipient_follows_rule(const struct recipient *p, const char *rule, enum rule_kind kind);

/* True when p follows pest ("bph"). */
bool recipient_follows_pest(const struct recipient *p, const char *pest);

/* The salinity level of a crop key (durian 0.5, fruit 1, vegetables 1,
 * rice 2, all 4), or 0 when it is not one. */
double recipient_crop_level(const char *crop);

/* True when local minute m (0..1439) is inside p's quiet hours. */
bool recipient_quiet_at(const struct recipient *p, int m);

/* A rule kind from its name ("ladder": rule_kind_name()'s inverse).
 * Returns 0 or -EINVAL. */
int recipient_kind_parse(const char *s, enum rule_kind *out);

#endif
