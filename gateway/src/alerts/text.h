/*
 * Alert messages in English and Vietnamese (UTF-8): the names and units
 * of the canonical metrics (docs/interfaces.md §3), the built-in sentence of each
 * rule kind, and rule message templates with {placeholders}
 * (docs/alerts.md). Pure; used by the alert engine and by notifiers that
 * want a metric's name.
 */
#ifndef GATEWAY_ALERT_TEXT_H
#define GATEWAY_ALERT_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/rules.h"

enum alert_lang { ALERT_LANG_EN = 0, ALERT_LANG_VI };

/* The metric's display name ("Salinity", "Độ mặn"); the metric itself
 * when it is not a canonical one. */
const char *alert_metric_name(const char *metric, enum alert_lang lang);
/* The metric's canonical unit ("g/L"; "con" for insect_count in
 * Vietnamese), or "" when unknown or unitless. */
const char *alert_metric_unit(const char *metric, enum alert_lang lang);
/* Severity in the language ("critical", "nguy hiểm"). */
const char *alert_severity_text(enum alert_severity s, enum alert_lang lang);

/* A number for people: "4.3", "4.0", "0.62", "1200". */
void alert_format_number(char *buf, size_t len, double v);

/* What a message is about. */
enum alert_text_what {
	ALERT_TEXT_LEVEL = 0,   /* threshold/ladder: value vs threshold */
	ALERT_TEXT_WINDOW,      /* aggregate over window_s */
	ALERT_TEXT_RATE,        /* change per hour */
	ALERT_TEXT_PEAK,        /* nightly total peak; night = local day */
	ALERT_TEXT_OFFLINE,     /* station status offline */
	ALERT_TEXT_SILENT,      /* station or sensor sent nothing for after_s */
	ALERT_TEXT_QUALITY,     /* aux bad readings in a row on metric */
	ALERT_TEXT_EVENT,       /* misbehaving, clock, hub: detail says what */
	ALERT_TEXT_SENSOR,      /* a probe's readings suspect: detail is the station's reason */
	ALERT_TEXT_RISING,      /* nightly totals climbing: detail is the totals "40 → 90 → 210" */
};

struct alert_text_args {
	enum alert_text_what what;
	const struct rule *rule;
	const char *station, *sensor; /* sensor "" for a station */
	const char *metric, *unit;    /* unit "" = the metric's canonical one */
	double value, threshold;
	bool has_value;
	enum rule_op op;
	enum alert_severity severity;
	const struct rule_label *label; /* NULL or a ladder level's label */
	int64_t night_day;              /* PEAK: local day number of the night */
	int64_t aux;                    /* QUALITY: count; SILENT: seconds */
	bool cleared;                   /* the condition ended */
	const char *detail_en, *detail_vi; /* EVENT: what happened, with figures */
};

/* Builds the message into buf (always NUL-terminated, valid UTF-8, cut at
 * a character boundary). A rule template (rule->message) is used for
 * messages of an active condition; cleared ones use the built-in text. */
void alert_text_build(const struct alert_text_args *a, enum alert_lang lang,
		      char *buf, size_t len);

/* Prefixes buf (in place) with "Acknowledged by who: ", "Reminder: ",
 * "Escalated: " or their Vietnamese forms; keeps valid UTF-8. kind: 0 ack,
 * 1 reminder, 2 escalation. */
void alert_text_prefix(char *buf, size_t len, int kind, const char *who,
		       enum alert_lang lang);

/* A reading time for people, local (utc_offset_min): "03:10", or
 * "28/03 03:10" when it is not on ref_ms's local day. */
void alert_text_time(char *buf, size_t len, int64_t ms, int64_t ref_ms, int64_t utc_offset_min);

/*
 * Late news of one alert (docs/alerts.md, Reading order): base (the
 * message of its first late episode, or of its clear) followed by when it
 * happened and when it was reported: n episodes, the first starting at
 * first, the last at last, over at end (open: the last is still on;
 * cleared: an episode told before ended at end), reported at now_ms
 * (when reported: else the times only).
 *   "Salinity 4.6 g/L >= 4.0 g/L at DT-W01 (sonde1), at 03:10, reported at
 *    09:42 after the station was offline"
 */
void alert_text_late(char *buf, size_t len, const char *base, unsigned n, bool open,
		     bool cleared, int64_t first, int64_t last, int64_t end, int64_t now_ms,
		     bool reported, int64_t utc_offset_min, enum alert_lang lang);

/* Appends "; after" to buf (late news that says two things). */
void alert_text_join(char *buf, size_t len, const char *after);

/* Cuts s (in place) so it does not end in a partial UTF-8 sequence. */
void alert_text_utf8_trim(char *s);

#endif
