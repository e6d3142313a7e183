/*
 * rules.json (docs/interfaces.md §9, docs/alerts.md): the alert rules the engine in
 * alert.h evaluates. Read through agri_cfg_read() tables, then a per-rule
 * cross-field check (keys that do not belong to the rule's kind, ladder
 * order, date ranges), then document-wide checks (duplicate ids, channels
 * named in notify/escalate must exist). Errors are "path: reason", e.g.
 * "rules[2].above: expected a number". Pure: no I/O beyond rules_load().
 * Shared with agrictl (`agrictl config validate`).
 */
#ifndef GATEWAY_RULES_H
#define GATEWAY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/err.h"
#include "agri/topic.h"

#define RULES_MAX 256           /* rules in one file */
#define RULES_FILE_MAX (1024 * 1024)
#define RULE_LEVELS_MAX 8       /* ladder levels, or threshold + "or" conditions */
#define RULE_GLOBS_MAX 16       /* patterns in "stations" / "sensors" */
#define RULE_GLOB_MAX 64        /* bytes of one pattern, with NUL */
#define RULE_CHANNELS_MAX 8     /* names in "notify" / escalate.notify */
#define RULE_CHANNEL_MAX 64     /* bytes of one channel name, with NUL */
#define RULE_RANGES_MAX 8       /* "active" date ranges */
#define RULE_LABEL_MAX 96       /* bytes of a label, one language */
#define RULE_TEMPLATE_MAX 256   /* bytes of a message template, one language */
#define RULE_PEAK_NIGHTS_MAX 31
#define RULE_POINTS_MAX 65536   /* window/rate ring buffer cap (per key) */
#define RULES_LATE_AFTER_S 900  /* defaults of the top-level late keys */
#define RULES_LATE_SETTLE_S 10
#define RULES_REPLAY_MAX_S (48 * 3600)

enum rule_kind {
	RULE_THRESHOLD = 0, /* above/below (+ "or" conditions) */
	RULE_LADDER,        /* levels: one alert whose severity rises and falls */
	RULE_WINDOW,        /* sum/mean/max/min/count over window_s */
	RULE_PEAK,          /* nightly total >= k x trailing median, confirmed peak */
	RULE_RATE,          /* change per hour (least squares over window_s) */
	RULE_NO_DATA,       /* station (or sensor) silent / offline */
	RULE_QUALITY,       /* n error/suspect readings in a row */
	/* Raised by what the gateway itself sees, not by readings (one alert
	 * per station, cleared after_s after the last event): */
	RULE_MISBEHAVING,   /* a station past one of its budgets */
	RULE_CLOCK,         /* a station stamping readings outside the clock window */
	RULE_HUB,           /* the hub could not store (station = the hub's id) */
	RULE_SENSOR,        /* n suspect readings in a row with the station's reason */
	RULE_RISING,        /* nightly totals rising night after night (a brood coming) */
	RULE_CALIBRATION,   /* an event: a sensor's last calibration is too old
			     * (gateway/src/core/calibration.c) */
	RULE_KIND_COUNT
};

enum alert_severity {
	ALERT_SEV_INFO = 0,
	ALERT_SEV_WARNING,
	ALERT_SEV_ALARM,
	ALERT_SEV_CRITICAL,
};

enum rule_op { RULE_ABOVE = 0, RULE_BELOW };
enum rule_agg { RULE_AGG_SUM = 0, RULE_AGG_MEAN, RULE_AGG_MAX, RULE_AGG_MIN, RULE_AGG_COUNT };

/* A text in both languages (UTF-8); "" when absent. */
struct rule_text {
	char en[RULE_TEMPLATE_MAX];
	char vi[RULE_TEMPLATE_MAX];
};

struct rule_label {
	char en[RULE_LABEL_MAX];
	char vi[RULE_LABEL_MAX];
};

/*
 * One condition. A threshold rule has one (its own metric/above/below)
 * plus one per "or" element, all at the rule's severity; a ladder has one
 * per level, on the rule's metric; window and rate rules apply theirs to
 * the derived value. Each level is on or off on its own (entered at
 * >= above / <= below held for for_s, left beyond threshold by
 * hysteresis); the alert's severity is that of the highest level on.
 */
struct rule_level {
	char metric[AGRI_ID_MAX + 1];
	enum rule_op op;
	double threshold;
	double hysteresis;
	enum alert_severity severity;
	struct rule_label label;
};

struct rule_range {
	int from_md, to_md; /* month * 100 + day; from > to wraps the year */
};

struct rule {
	char id[AGRI_RULE_ID_MAX + 1];
	enum rule_kind kind;
	char metric[AGRI_ID_MAX + 1]; /* "" = any (no_data, quality) */
	size_t n_stations;            /* 0 = all */
	char stations[RULE_GLOBS_MAX][RULE_GLOB_MAX];
	size_t n_sensors;             /* 0 = all */
	char sensors[RULE_GLOBS_MAX][RULE_GLOB_MAX];
	size_t n_active;              /* 0 = all year */
	struct rule_range active[RULE_RANGES_MAX];
	enum alert_severity severity; /* default warning */
	size_t n_notify;
	char notify[RULE_CHANNELS_MAX][RULE_CHANNEL_MAX];
	int64_t renotify_s;           /* 0 = never */
	bool has_escalate;
	int64_t escalate_after_s;
	size_t n_escalate;
	char escalate[RULE_CHANNELS_MAX][RULE_CHANNEL_MAX];
	struct rule_text message;     /* templates; "" = built-in text */

	/* threshold, ladder, window, rate */
	size_t n_levels;
	struct rule_level levels[RULE_LEVELS_MAX];
	double hysteresis;            /* default for every level */
	int64_t for_s;
	/* window, rate */
	int64_t window_s;
	enum rule_agg agg;
	int64_t max_points;
	/* peak */
	double k;
	int64_t nights;               /* trailing nights in the median */
	int64_t min_nights;           /* history needed before any peak */
	double floor;
	int64_t night_start_h;        /* local hour nights are cut at: the trap's lamp-off,
				       * "night_end_h" (6; "night_start_h" is the old name) */
	/* no_data; misbehaving, clock, hub: cleared after_s after the last event */
	int64_t after_s;
	bool per_sensor;
	/* quality */
	int64_t n_bad;                /* "n" */
	bool bad_error, bad_suspect;  /* which q count as bad ("q") */
};

struct rules {
	size_t n;
	struct rule *v;          /* n rules, in file order */
	int64_t utc_offset_min;  /* local time for nights and seasons; +420 */
	bool lang_vi;            /* "lang": "vi" puts Vietnamese in alert.message */
	/* Late and out-of-order readings (docs/alerts.md, Reading order): */
	int64_t late_after_s;    /* a transition whose evidence is older is late (900) */
	int64_t late_settle_s;   /* a station's late data is summarised once it has
				  * sent none for this long (10) */
	int64_t replay_max_s;    /* how far back a late reading can still be
				  * evaluated in order (172800 = 48 h) */
};

/*
 * Parses a rules document json[0..len). channels[0..n_channels) are the
 * channel names configured in gateway.json; every name in notify and
 * escalate.notify must be one of them. Returns a new struct rules (free
 * with rules_free()), or NULL with *err set ("rules[2].above: expected a
 * number"; -errno not needed: every failure is a bad document or ENOMEM,
 * which reports "out of memory").
 */
struct rules *rules_parse(const char *json, size_t len,
			  const char *const *channels, size_t n_channels,
			  struct agri_err *err);

/* Reads path (at most RULES_FILE_MAX bytes) and parses it. NULL with *err
 * (path "" and reason "cannot read: ..." when the file cannot be read). */
struct rules *rules_load(const char *path, const char *const *channels,
			 size_t n_channels, struct agri_err *err);

/*
 * Validates a rules file on its own (`agrictl config validate`): every
 * check of rules_load() except that notify/escalate channel names are not
 * looked up (gateway.json is not known here). Returns 0, or -EINVAL with
 * *err ("rules[2].above: expected a number").
 */
int rules_validate_file(const char *path, struct agri_err *err);

void rules_free(struct rules *r);

/* True for the kinds raised by gateway events (misbehaving, clock, hub). */
bool rule_kind_is_event(enum rule_kind k);

/* The rule named id, or NULL. */
const struct rule *rules_find(const struct rules *r, const char *id);

/* A fingerprint of what a rule evaluates (kind, metric, scope, levels,
 * windows...): the engine keeps condition state across a restart only
 * when the fingerprint is unchanged. */
uint64_t rule_fingerprint(const struct rule *rule);

/* True when the rule applies to station/sensor (its glob lists). sensor
 * may be "" for station-level checks (then only stations are matched). */
bool rule_matches(const struct rule *rule, const char *station,
		  const char *sensor);

/* True when ts_ms (UTC) falls in one of the rule's "active" date ranges
 * (local time, utc_offset_min), or the rule has none. */
bool rule_active_at(const struct rule *rule, int64_t ts_ms,
		    int64_t utc_offset_min);

const char *rule_kind_name(enum rule_kind k);
const char *alert_severity_name(enum alert_severity s);
/* Returns 0 and writes *out, or -EINVAL. */
int alert_severity_parse(const char *s, enum alert_severity *out);

/* Local civil date of ts_ms: days since 1970-01-01 -> y/m/d. */
void rules_civil_from_days(int64_t days, int *y, int *m, int *d);

#endif
