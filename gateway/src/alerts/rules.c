/*
 * rules.json reader (see rules.h). A rule is read through one table into
 * a parse-time struct (the rule plus what is only needed to build it:
 * above/below and the "or" list), then checked against its kind: each
 * key belongs to some kinds (kind_keys[]) and a key of another kind is an
 * error rather than silently ignored. Defaults live in rule_defaults().
 */
#include "gateway/rules.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/topic.h"


#define SENSOR_N_DEFAULT 3 /* suspect readings in a row before a sensor alert */

/* Kinds as bit masks for kind_keys[]. */
#define K_THR (1u << RULE_THRESHOLD)
#define K_LAD (1u << RULE_LADDER)
#define K_WIN (1u << RULE_WINDOW)
#define K_PEAK (1u << RULE_PEAK)
#define K_NIGHTS ((1u << RULE_PEAK) | (1u << RULE_RISING))
#define K_RATE (1u << RULE_RATE)
#define K_NOD (1u << RULE_NO_DATA)
#define K_QUAL ((1u << RULE_QUALITY) | (1u << RULE_SENSOR))
#define K_EVT ((1u << RULE_MISBEHAVING) | (1u << RULE_CLOCK) | (1u << RULE_HUB) | \
	       (1u << RULE_CALIBRATION))
#define K_ALL ((1u << RULE_KIND_COUNT) - 1)
#define K_LEVELS (K_THR | K_LAD | K_WIN | K_RATE)

static const char *const kind_names[RULE_KIND_COUNT] = {
	"threshold", "ladder", "window", "peak", "rate", "no_data", "quality",
	"misbehaving", "clock", "hub", "sensor", "rising", "calibration",
};
static const char *const severity_names[] = {"info", "warning", "alarm", "critical"};
static const char *const agg_names[] = {"sum", "mean", "max", "min", "count"};

/* Which kinds each key belongs to (every key of the rule table is here). */
static const struct {
	const char *key;
	unsigned kinds;
} kind_keys[] = {
	{"id", K_ALL}, {"kind", K_ALL}, {"metric", K_ALL}, {"stations", K_ALL},
	{"sensors", K_ALL}, {"active", K_ALL}, {"severity", K_ALL & ~K_LAD},
	{"notify", K_ALL}, {"renotify_s", K_ALL}, {"escalate", K_ALL},
	{"message", K_ALL}, {"description", K_ALL},
	{"above", K_THR | K_WIN | K_RATE}, {"below", K_THR | K_WIN | K_RATE},
	{"or", K_THR}, {"levels", K_LEVELS}, {"hysteresis", K_LEVELS},
	{"for_s", K_LEVELS}, {"window_s", K_WIN | K_RATE}, {"agg", K_WIN},
	{"max_points", K_WIN | K_RATE}, {"k", K_NIGHTS}, {"nights", K_NIGHTS},
	{"min_nights", K_PEAK}, {"floor", K_NIGHTS}, {"night_start_h", K_NIGHTS},
	{"night_end_h", K_NIGHTS},
	{"after_s", K_NOD | K_EVT}, {"per", K_NOD}, {"n", K_QUAL}, {"q", 1u << RULE_QUALITY},
};

bool rule_kind_is_event(enum rule_kind k)
{
	return k == RULE_MISBEHAVING || k == RULE_CLOCK || k == RULE_HUB || k == RULE_CALIBRATION;
}

const char *rule_kind_name(enum rule_kind k)
{
	return (unsigned)k < RULE_KIND_COUNT ? kind_names[k] : NULL;
}

const char *alert_severity_name(enum alert_severity s)
{
	return (unsigned)s < AGRI_ARRAY_SIZE(severity_names) ? severity_names[s] : NULL;
}

int alert_severity_parse(const char *s, enum alert_severity *out)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(severity_names); i++) {
		if (!strcmp(s, severity_names[i])) {
			*out = (enum alert_severity)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- parse-time structs ------------------------------------------------ */

struct level_tmp {
	struct rule_level l;
	double above, below, hyst;
	bool has_above, has_below, has_hyst, has_severity;
	char metric[AGRI_ID_MAX + 1];
};

struct rule_tmp {
	struct rule r;
	double above, below;
	bool has_above, has_below, has_severity, has_hyst, has_levels, has_metric;
	bool has_window, has_after, has_n, has_k, has_nights, has_night_start, has_night_end;
	size_t n_or;
	struct level_tmp or_levels[RULE_LEVELS_MAX - 1];
	struct level_tmp levels[RULE_LEVELS_MAX];
	char per[16];
	char description[512];
};

static void rule_defaults(struct rule_tmp *t)
{
	memset(t, 0, sizeof(*t));
	t->r.kind = RULE_THRESHOLD;
	t->r.severity = ALERT_SEV_WARNING;
	t->r.agg = RULE_AGG_SUM;
	t->r.max_points = 4096;
	t->r.window_s = 3600;
	t->r.k = 3.0;
	t->r.nights = 7;
	t->r.min_nights = 0; /* 0: = nights (filled in the check) */
	t->r.night_start_h = 6; /* the morning's lamp-off */
	t->r.n_bad = 5;
	t->r.bad_error = true;
	t->r.bad_suspect = true;
}

/* ---- custom field parsers ---------------------------------------------- */

static int parse_kind(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (cJSON_IsString(item)) {
		for (int k = 0; k < RULE_KIND_COUNT; k++) {
			if (!strcmp(item->valuestring, kind_names[k])) {
				*(enum rule_kind *)field = (enum rule_kind)k;
				return 0;
			}
		}
	}
	agri_err_set(err, path, "expected one of threshold, ladder, window, peak, rate, no_data, quality");
	return -EINVAL;
}

static int parse_severity(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	if (!cJSON_IsString(item) ||
	    alert_severity_parse(item->valuestring, field) < 0) {
		agri_err_set(err, path, "expected info, warning, alarm or critical");
		return -EINVAL;
	}
	return 0;
}

static int parse_agg(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	if (cJSON_IsString(item)) {
		for (size_t i = 0; i < AGRI_ARRAY_SIZE(agg_names); i++) {
			if (!strcmp(item->valuestring, agg_names[i])) {
				*(enum rule_agg *)field = (enum rule_agg)i;
				return 0;
			}
		}
	}
	agri_err_set(err, path, "expected sum, mean, max, min or count");
	return -EINVAL;
}

static int parse_metric(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	if (!cJSON_IsString(item) || !agri_ident_valid(item->valuestring)) {
		agri_err_set(err, path, "expected a metric name ([A-Za-z0-9_-]{1,32})");
		return -EINVAL;
	}
	snprintf(field, AGRI_ID_MAX + 1, "%s", item->valuestring);
	return 0;
}

/* Reads an array of at most max strings of at most size-1 bytes into
 * buf[max][size]; *n gets the count. what names an element in errors. */
static int parse_str_list(const cJSON *item, char *buf, size_t size,
			  size_t max, size_t *n, const char *path,
			  const char *what, struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	size_t i = 0;

	if (!cJSON_IsArray(item)) {
		agri_err_set(err, path, "expected an array of %ss", what);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		agri_path_index(sub, sizeof(sub), path, (int)i);
		if (i >= max) {
			agri_err_set(err, sub, "more than %zu %ss", max, what);
			return -EINVAL;
		}
		if (!cJSON_IsString(e) || !e->valuestring[0]) {
			agri_err_set(err, sub, "expected a %s", what);
			return -EINVAL;
		}
		if (strlen(e->valuestring) >= size) {
			agri_err_set(err, sub, "too long (max %zu bytes)", size - 1);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(buf + j * size, e->valuestring)) {
				agri_err_set(err, sub, "duplicate %s \"%s\"", what,
					     e->valuestring);
				return -EINVAL;
			}
		}
		snprintf(buf + i * size, size, "%s", e->valuestring);
		i++;
	}
	*n = i;
	return 0;
}

static int parse_stations(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	struct rule *r = field;

	return parse_str_list(item, r->stations[0], RULE_GLOB_MAX, RULE_GLOBS_MAX,
			      &r->n_stations, path, "pattern", err);
}

static int parse_sensors(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct rule *r = field;

	return parse_str_list(item, r->sensors[0], RULE_GLOB_MAX, RULE_GLOBS_MAX,
			      &r->n_sensors, path, "pattern", err);
}

static int parse_notify(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct rule *r = field;

	return parse_str_list(item, r->notify[0], RULE_CHANNEL_MAX,
			      RULE_CHANNELS_MAX, &r->n_notify, path,
			      "channel name", err);
}

static int parse_escalate_notify(const cJSON *item, void *field,
				 const char *path, struct agri_err *err)
{
	struct rule *r = field;

	return parse_str_list(item, r->escalate[0], RULE_CHANNEL_MAX,
			      RULE_CHANNELS_MAX, &r->n_escalate, path,
			      "channel name", err);
}

static const struct agri_cfg_field escalate_fields[] = {
	{.key = "after_s", .type = AGRI_CFG_INT, .required = true,
	 .offset = offsetof(struct rule, escalate_after_s), .min = 1, .max = 31536000},
	{.key = "notify", .type = AGRI_CFG_CUSTOM, .required = true, .offset = 0,
	 .parse = parse_escalate_notify},
};

static int parse_escalate(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	struct rule *r = field;
	int rc = agri_cfg_read(item, path, escalate_fields, AGRI_ARRAY_SIZE(escalate_fields), r,
			       false, err);

	if (rc == 0)
		r->has_escalate = true;
	return rc;
}

/* "MM-DD" -> month * 100 + day (Feb 29 allowed). */
static int parse_md(const cJSON *item, void *field, const char *path,
		    struct agri_err *err)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *s = cJSON_IsString(item) ? item->valuestring : "";
	int m, d;

	if (strlen(s) != 5 || s[2] != '-' || sscanf(s, "%2d-%2d", &m, &d) != 2 ||
	    s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9' ||
	    s[3] < '0' || s[3] > '9' || s[4] < '0' || s[4] > '9' ||
	    m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) {
		agri_err_set(err, path, "expected a month-day \"MM-DD\"");
		return -EINVAL;
	}
	*(int *)field = m * 100 + d;
	return 0;
}

static const struct agri_cfg_field range_fields[] = {
	{.key = "from", .type = AGRI_CFG_CUSTOM, .required = true,
	 .offset = offsetof(struct rule_range, from_md), .parse = parse_md},
	{.key = "to", .type = AGRI_CFG_CUSTOM, .required = true,
	 .offset = offsetof(struct rule_range, to_md), .parse = parse_md},
};

static int parse_active(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct rule *r = field;
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	size_t i = 0;
	int rc;

	if (!cJSON_IsArray(item)) {
		agri_err_set(err, path, "expected an array of {\"from\": \"MM-DD\", \"to\": \"MM-DD\"}");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		agri_path_index(sub, sizeof(sub), path, (int)i);
		if (i >= RULE_RANGES_MAX) {
			agri_err_set(err, sub, "more than %d date ranges", RULE_RANGES_MAX);
			return -EINVAL;
		}
		rc = agri_cfg_read(e, sub, range_fields, AGRI_ARRAY_SIZE(range_fields),
				   &r->active[i], false, err);
		if (rc < 0)
			return rc;
		i++;
	}
	r->n_active = i;
	return 0;
}

/* A text: a string (the same in both languages) or {"en": .., "vi": ..}. */
static int parse_text(const cJSON *item, char *en, char *vi, size_t size,
		      const char *path, struct agri_err *err)
{
	const struct agri_cfg_field fields[] = {
		{.key = "en", .type = AGRI_CFG_STR, .offset = 0, .size = size},
		{.key = "vi", .type = AGRI_CFG_STR, .offset = size, .size = size},
	};
	char *both;
	int rc;

	if (cJSON_IsString(item)) {
		if (strlen(item->valuestring) >= size) {
			agri_err_set(err, path, "too long (max %zu bytes)", size - 1);
			return -EINVAL;
		}
		snprintf(en, size, "%s", item->valuestring);
		snprintf(vi, size, "%s", item->valuestring);
		return 0;
	}
	if (!cJSON_IsObject(item)) {
		agri_err_set(err, path, "expected a string or {\"en\": .., \"vi\": ..}");
		return -EINVAL;
	}
	both = calloc(2, size);
	if (!both) {
		agri_err_set(err, path, "out of memory");
		return -ENOMEM;
	}
	rc = agri_cfg_read(item, path, fields, AGRI_ARRAY_SIZE(fields), both, false, err);
	if (rc == 0) {
		memcpy(en, both, size);
		memcpy(vi, both + size, size);
		if (!en[0])
			memcpy(en, vi, size);
		if (!vi[0])
			memcpy(vi, en, size);
	}
	free(both);
	return rc;
}

static int parse_message(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct rule_text *t = field;

	return parse_text(item, t->en, t->vi, RULE_TEMPLATE_MAX, path, err);
}

static int parse_label(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	struct rule_label *l = field;

	return parse_text(item, l->en, l->vi, RULE_LABEL_MAX, path, err);
}

static int parse_per(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	if (!cJSON_IsString(item) || (strcmp(item->valuestring, "station") &&
				      strcmp(item->valuestring, "sensor"))) {
		agri_err_set(err, path, "expected \"station\" or \"sensor\"");
		return -EINVAL;
	}
	snprintf(field, 16, "%s", item->valuestring);
	return 0;
}

static int parse_q(const cJSON *item, void *field, const char *path,
		   struct agri_err *err)
{
	struct rule *r = field;
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int i = 0;

	if (!cJSON_IsArray(item) || !cJSON_GetArraySize(item)) {
		agri_err_set(err, path, "expected a non-empty array of \"error\"/\"suspect\"");
		return -EINVAL;
	}
	r->bad_error = r->bad_suspect = false;
	cJSON_ArrayForEach(e, item) {
		agri_path_index(sub, sizeof(sub), path, i++);
		if (cJSON_IsString(e) && !strcmp(e->valuestring, "error")) {
			r->bad_error = true;
		} else if (cJSON_IsString(e) && !strcmp(e->valuestring, "suspect")) {
			r->bad_suspect = true;
		} else {
			agri_err_set(err, sub, "expected \"error\" or \"suspect\"");
			return -EINVAL;
		}
	}
	return 0;
}

#define LOFF(m) offsetof(struct level_tmp, m)
static const struct agri_cfg_field level_fields[] = {
	{.key = "metric", .type = AGRI_CFG_CUSTOM, .offset = LOFF(metric), .parse = parse_metric},
	{.key = "above", .type = AGRI_CFG_DOUBLE, .offset = LOFF(above),
	 .min = -1e12, .max = 1e12, .present_offset = LOFF(has_above)},
	{.key = "below", .type = AGRI_CFG_DOUBLE, .offset = LOFF(below),
	 .min = -1e12, .max = 1e12, .present_offset = LOFF(has_below)},
	{.key = "hysteresis", .type = AGRI_CFG_DOUBLE, .offset = LOFF(hyst),
	 .min = 0, .max = 1e12, .present_offset = LOFF(has_hyst)},
	{.key = "severity", .type = AGRI_CFG_CUSTOM, .offset = LOFF(l.severity),
	 .parse = parse_severity, .present_offset = LOFF(has_severity)},
	{.key = "label", .type = AGRI_CFG_CUSTOM, .offset = LOFF(l.label), .parse = parse_label},
};

/* Reads an array of level objects into out[0..max); *n the count.
 * is_or: elements of "or" (metric allowed, severity/label not). */
static int parse_level_list(const cJSON *item, struct level_tmp *out,
			    size_t max, size_t *n, bool is_or, const char *path,
			    struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX], key[AGRI_ERR_PATH_MAX];
	const cJSON *e, *m;
	size_t i = 0;
	int rc;

	if (!cJSON_IsArray(item) || !cJSON_GetArraySize(item)) {
		agri_err_set(err, path, "expected a non-empty array of conditions");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		agri_path_index(sub, sizeof(sub), path, (int)i);
		if (i >= max) {
			agri_err_set(err, sub, "more than %zu %s", max,
				     is_or ? "\"or\" conditions" : "levels");
			return -EINVAL;
		}
		rc = agri_cfg_read(e, sub, level_fields, AGRI_ARRAY_SIZE(level_fields), &out[i],
				   false, err);
		if (rc < 0)
			return rc;
		for (m = e->child; m; m = m->next) {
			bool bad = is_or ? (!strcmp(m->string, "severity") ||
					    !strcmp(m->string, "label"))
					 : !strcmp(m->string, "metric");
			if (bad) {
				agri_path_key(key, sizeof(key), sub, m->string);
				agri_err_set(err, key, "not allowed in %s",
					     is_or ? "\"or\"" : "a level");
				return -EINVAL;
			}
		}
		if (out[i].has_above == out[i].has_below) {
			agri_err_set(err, sub, "needs exactly one of \"above\" and \"below\"");
			return -EINVAL;
		}
		if (is_or && !out[i].metric[0]) {
			agri_path_key(key, sizeof(key), sub, "metric");
			agri_err_set(err, key, "is required");
			return -EINVAL;
		}
		if (!is_or && !out[i].has_severity) {
			agri_path_key(key, sizeof(key), sub, "severity");
			agri_err_set(err, key, "is required");
			return -EINVAL;
		}
		i++;
	}
	*n = i;
	return 0;
}

static int parse_levels(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct rule_tmp *t = field;

	t->has_levels = true;
	return parse_level_list(item, t->levels, RULE_LEVELS_MAX, &t->r.n_levels,
				false, path, err);
}

static int parse_or(const cJSON *item, void *field, const char *path,
		    struct agri_err *err)
{
	struct rule_tmp *t = field;

	return parse_level_list(item, t->or_levels, RULE_LEVELS_MAX - 1, &t->n_or,
				true, path, err);
}

#define ROFF(m) offsetof(struct rule_tmp, m)
#define RSZ(m) sizeof(((struct rule_tmp *)0)->m)
static const struct agri_cfg_field rule_fields[] = {
	{.key = "id", .type = AGRI_CFG_STR, .required = true, .offset = ROFF(r.id), .size = RSZ(r.id)},
	{.key = "kind", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r.kind), .parse = parse_kind},
	{.key = "metric", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r.metric),
	 .parse = parse_metric, .present_offset = ROFF(has_metric)},
	{.key = "stations", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_stations},
	{.key = "sensors", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_sensors},
	{.key = "active", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_active},
	{.key = "severity", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r.severity),
	 .parse = parse_severity, .present_offset = ROFF(has_severity)},
	{.key = "notify", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_notify},
	{.key = "renotify_s", .type = AGRI_CFG_INT, .offset = ROFF(r.renotify_s), .min = 0, .max = 31536000},
	{.key = "escalate", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_escalate},
	{.key = "message", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r.message), .parse = parse_message},
	{.key = "description", .type = AGRI_CFG_STR, .offset = ROFF(description), .size = RSZ(description)},
	{.key = "above", .type = AGRI_CFG_DOUBLE, .offset = ROFF(above),
	 .min = -1e12, .max = 1e12, .present_offset = ROFF(has_above)},
	{.key = "below", .type = AGRI_CFG_DOUBLE, .offset = ROFF(below),
	 .min = -1e12, .max = 1e12, .present_offset = ROFF(has_below)},
	{.key = "or", .type = AGRI_CFG_CUSTOM, .offset = 0, .parse = parse_or},
	{.key = "levels", .type = AGRI_CFG_CUSTOM, .offset = 0, .parse = parse_levels},
	{.key = "hysteresis", .type = AGRI_CFG_DOUBLE, .offset = ROFF(r.hysteresis),
	 .min = 0, .max = 1e12, .present_offset = ROFF(has_hyst)},
	{.key = "for_s", .type = AGRI_CFG_INT, .offset = ROFF(r.for_s), .min = 0, .max = 31536000},
	{.key = "window_s", .type = AGRI_CFG_INT, .offset = ROFF(r.window_s),
	 .min = 1, .max = 31536000, .present_offset = ROFF(has_window)},
	{.key = "agg", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r.agg), .parse = parse_agg},
	{.key = "max_points", .type = AGRI_CFG_INT, .offset = ROFF(r.max_points), .min = 2, .max = RULE_POINTS_MAX},
	{.key = "k", .type = AGRI_CFG_DOUBLE, .offset = ROFF(r.k), .min = 1, .max = 1e6,
	 .present_offset = ROFF(has_k)},
	{.key = "nights", .type = AGRI_CFG_INT, .offset = ROFF(r.nights), .min = 1,
	 .max = RULE_PEAK_NIGHTS_MAX, .present_offset = ROFF(has_nights)},
	{.key = "min_nights", .type = AGRI_CFG_INT, .offset = ROFF(r.min_nights), .min = 1, .max = RULE_PEAK_NIGHTS_MAX},
	{.key = "floor", .type = AGRI_CFG_DOUBLE, .offset = ROFF(r.floor), .min = 0, .max = 1e12},
	{.key = "night_start_h", .type = AGRI_CFG_INT, .offset = ROFF(r.night_start_h), .min = 0,
	 .max = 23, .present_offset = ROFF(has_night_start)},
	{.key = "night_end_h", .type = AGRI_CFG_INT, .offset = ROFF(r.night_start_h), .min = 0,
	 .max = 23, .present_offset = ROFF(has_night_end)},
	{.key = "after_s", .type = AGRI_CFG_INT, .offset = ROFF(r.after_s), .min = 1,
	 .max = 31536000, .present_offset = ROFF(has_after)},
	{.key = "per", .type = AGRI_CFG_CUSTOM, .offset = ROFF(per), .parse = parse_per},
	{.key = "n", .type = AGRI_CFG_INT, .offset = ROFF(r.n_bad), .min = 1, .max = 100000,
	 .present_offset = ROFF(has_n)},
	{.key = "q", .type = AGRI_CFG_CUSTOM, .offset = ROFF(r), .parse = parse_q},
};

static void copy_level(struct rule_level *dst, const struct level_tmp *src,
		       const struct rule_tmp *t, enum alert_severity sev)
{
	*dst = src->l;
	snprintf(dst->metric, sizeof(dst->metric), "%s",
		 src->metric[0] ? src->metric : t->r.metric);
	dst->op = src->has_above ? RULE_ABOVE : RULE_BELOW;
	dst->threshold = src->has_above ? src->above : src->below;
	dst->hysteresis = src->has_hyst ? src->hyst : t->r.hysteresis;
	dst->severity = sev;
}

/* A level kind's conditions: "levels" (ladder order, severities), or
 * above/below plus "or"; builds t->r.levels. */
static int check_conditions(struct rule_tmp *t, const char *path, struct agri_err *err)
{
	struct rule *r = &t->r;
	char sub[AGRI_ERR_PATH_MAX];

	if (r->kind == RULE_LADDER && !t->has_levels) {
		agri_path_key(sub, sizeof(sub), path, "levels");
		agri_err_set(err, sub, "is required for kind \"ladder\"");
		return -EINVAL;
	}
	if (t->has_levels) {
		if (t->has_above || t->has_below || t->n_or) {
			agri_err_set(err, path, "\"levels\" excludes \"above\", \"below\" and \"or\"");
			return -EINVAL;
		}
		if (t->has_severity) {
			agri_path_key(sub, sizeof(sub), path, "severity");
			agri_err_set(err, sub, "not used with \"levels\" (each level has its own)");
			return -EINVAL;
		}
		r->kind = r->kind == RULE_THRESHOLD ? RULE_LADDER : r->kind;
		for (size_t i = 0; i < r->n_levels; i++) {
			const struct rule_level *p;

			copy_level(&r->levels[i], &t->levels[i], t, t->levels[i].l.severity);
			if (i == 0)
				continue;
			p = &r->levels[i - 1];
			{
				char lv[AGRI_ERR_PATH_MAX];

				agri_path_key(lv, sizeof(lv), path, "levels");
				agri_path_index(sub, sizeof(sub), lv, (int)i);
			}
			if (r->levels[i].op != p->op) {
				agri_err_set(err, sub, "every level must use the same \"above\"/\"below\"");
				return -EINVAL;
			}
			if (p->op == RULE_ABOVE ? r->levels[i].threshold <= p->threshold
						: r->levels[i].threshold >= p->threshold) {
				agri_err_set(err, sub, "thresholds must be strictly %s",
					     p->op == RULE_ABOVE ? "increasing" : "decreasing");
				return -EINVAL;
			}
			if (r->levels[i].severity < p->severity) {
				agri_err_set(err, sub, "severity must not fall from level to level");
				return -EINVAL;
			}
		}
		return 0;
	}
	if (t->has_above == t->has_below) {
		agri_err_set(err, path, "needs exactly one of \"above\", \"below\" and \"levels\"");
		return -EINVAL;
	}
	{
		struct level_tmp self = {.above = t->above, .below = t->below,
					 .has_above = t->has_above, .has_below = t->has_below};

		copy_level(&r->levels[0], &self, t, r->severity);
	}
	for (size_t i = 0; i < t->n_or; i++)
		copy_level(&r->levels[i + 1], &t->or_levels[i], t, r->severity);
	r->n_levels = 1 + t->n_or;
	return 0;
}

/* The cross-field check of one rule read into t; builds t->r.levels. */
static int rule_check(struct rule_tmp *t, const cJSON *obj, const char *path,
		      struct agri_err *err)
{
	struct rule *r = &t->r;
	unsigned kbit = 1u << r->kind;
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *m;

	if (!agri_rule_id_valid(r->id)) {
		agri_path_key(sub, sizeof(sub), path, "id");
		agri_err_set(err, sub, "expected a rule id ([A-Za-z0-9_-]{1,64})");
		return -EINVAL;
	}
	for (m = obj->child; m; m = m->next) {
		for (size_t i = 0; i < AGRI_ARRAY_SIZE(kind_keys); i++) {
			if (strcmp(kind_keys[i].key, m->string))
				continue;
			if (!(kind_keys[i].kinds & kbit)) {
				agri_path_key(sub, sizeof(sub), path, m->string);
				agri_err_set(err, sub, "not used by kind \"%s\"",
					     kind_names[r->kind]);
				return -EINVAL;
			}
		}
	}
	agri_path_key(sub, sizeof(sub), path, "metric");
	if (rule_kind_is_event(r->kind)) {
		if (t->has_metric) {
			agri_err_set(err, sub, "not used by kind \"%s\"", kind_names[r->kind]);
			return -EINVAL;
		}
		if (!t->has_after)
			r->after_s = r->kind == RULE_MISBEHAVING ? 3600 : r->kind == RULE_CLOCK ||
				     r->kind == RULE_CALIBRATION ? 900 : 600;
		return 0;
	}
	if (r->kind == RULE_SENSOR && !t->has_n)
		r->n_bad = SENSOR_N_DEFAULT;
	if (!t->has_metric && r->kind != RULE_NO_DATA && r->kind != RULE_QUALITY &&
	    r->kind != RULE_SENSOR) {
		agri_err_set(err, sub, "is required for kind \"%s\"", kind_names[r->kind]);
		return -EINVAL;
	}
	if (r->kind == RULE_NO_DATA) {
		agri_path_key(sub, sizeof(sub), path, "after_s");
		if (!t->has_after) {
			agri_err_set(err, sub, "is required for kind \"no_data\"");
			return -EINVAL;
		}
		r->per_sensor = !strcmp(t->per, "sensor");
		if (t->has_metric && !r->per_sensor) {
			agri_path_key(sub, sizeof(sub), path, "metric");
			agri_err_set(err, sub, "needs \"per\": \"sensor\"");
			return -EINVAL;
		}
	}
	if (t->has_night_start && t->has_night_end) {
		agri_path_key(sub, sizeof(sub), path, "night_end_h");
		agri_err_set(err, sub, "give night_end_h or its old name night_start_h, not both");
		return -EINVAL;
	}
	if (r->kind == RULE_RISING) {
		if (!t->has_k)
			r->k = 1.5;   /* each night at least 1.5 x the one before */
		if (!t->has_nights)
			r->nights = 2; /* two rises in a row: three nights */
	}
	if (r->kind == RULE_PEAK) {
		if (!r->min_nights)
			r->min_nights = r->nights;
		if (r->min_nights > r->nights) {
			agri_path_key(sub, sizeof(sub), path, "min_nights");
			agri_err_set(err, sub, "must be <= nights (%lld)", (long long)r->nights);
			return -EINVAL;
		}
	}
	if (r->kind == RULE_RATE && !t->has_window)
		r->window_s = 3600;
	if (r->kind == RULE_WINDOW && !t->has_window) {
		agri_path_key(sub, sizeof(sub), path, "window_s");
		agri_err_set(err, sub, "is required for kind \"window\"");
		return -EINVAL;
	}
	if (!(kbit & K_LEVELS))
		return 0;
	return check_conditions(t, path, err);
}

static int rule_read(const cJSON *obj, const char *path, struct rule_tmp *t,
		     struct agri_err *err)
{
	int rc;

	rule_defaults(t);
	rc = agri_cfg_read(obj, path, rule_fields, AGRI_ARRAY_SIZE(rule_fields), t, false, err);
	if (rc < 0)
		return rc;
	return rule_check(t, obj, path, err);
}

static bool channel_known(const char *name, const char *const *channels,
			  size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (channels[i] && !strcmp(channels[i], name))
			return true;
	return false;
}

static int channels_check(const struct rule *r, const char *path,
			  const char *const *channels, size_t n_channels,
			  struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX], key[AGRI_ERR_PATH_MAX];

	for (size_t i = 0; i < r->n_notify; i++) {
		if (channel_known(r->notify[i], channels, n_channels))
			continue;
		agri_path_key(key, sizeof(key), path, "notify");
		agri_path_index(sub, sizeof(sub), key, (int)i);
		agri_err_set(err, sub, "no channel named \"%s\" in gateway.json", r->notify[i]);
		return -EINVAL;
	}
	for (size_t i = 0; i < r->n_escalate; i++) {
		if (channel_known(r->escalate[i], channels, n_channels))
			continue;
		agri_path_key(key, sizeof(key), path, "escalate.notify");
		agri_path_index(sub, sizeof(sub), key, (int)i);
		agri_err_set(err, sub, "no channel named \"%s\" in gateway.json", r->escalate[i]);
		return -EINVAL;
	}
	return 0;
}

static int parse_lang(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (!cJSON_IsString(item) || (strcmp(item->valuestring, "en") &&
				      strcmp(item->valuestring, "vi"))) {
		agri_err_set(err, path, "expected \"en\" or \"vi\"");
		return -EINVAL;
	}
	*(bool *)field = !strcmp(item->valuestring, "vi");
	return 0;
}

/* "description": documentation for people, checked to be a string. */
static int ignore_value(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	if (!cJSON_IsString(item)) {
		agri_err_set(err, path, "expected a string");
		return -EINVAL;
	}
	return 0;
}

struct doc_tmp {
	struct rules *out;
	const cJSON *rules;
	int64_t utc_offset_min;
	bool lang_vi;
	int64_t late_after_s, late_settle_s, replay_max_s;
};

static int parse_rules_array(const cJSON *item, void *field, const char *path,
			     struct agri_err *err)
{
	if (!cJSON_IsArray(item)) {
		agri_err_set(err, path, "expected an array of rules");
		return -EINVAL;
	}
	*(const cJSON **)field = item;
	return 0;
}

static const struct agri_cfg_field doc_fields[] = {
	{.key = "rules", .type = AGRI_CFG_CUSTOM, .required = true,
	 .offset = offsetof(struct doc_tmp, rules), .parse = parse_rules_array},
	{.key = "utc_offset_min", .type = AGRI_CFG_INT,
	 .offset = offsetof(struct doc_tmp, utc_offset_min), .min = -720, .max = 840},
	{.key = "lang", .type = AGRI_CFG_CUSTOM, .offset = offsetof(struct doc_tmp, lang_vi),
	 .parse = parse_lang},
	{.key = "description", .type = AGRI_CFG_CUSTOM, .offset = 0, .parse = ignore_value},
	{.key = "late_after_s", .type = AGRI_CFG_INT,
	 .offset = offsetof(struct doc_tmp, late_after_s), .min = 60, .max = 30 * 86400},
	{.key = "late_settle_s", .type = AGRI_CFG_INT,
	 .offset = offsetof(struct doc_tmp, late_settle_s), .min = 1, .max = 3600},
	{.key = "replay_max_s", .type = AGRI_CFG_INT,
	 .offset = offsetof(struct doc_tmp, replay_max_s), .min = 3600, .max = 60 * 86400},
};

/* The rules every gateway has, unless rules.json gives one of the kind
 * itself (docs/alerts.md, Built-in rules): a station past its budgets,
 * a station's clock, the hub's own storage. */
static const struct {
	const char *id;
	enum rule_kind kind;
	enum alert_severity severity;
	int64_t after_s;
	bool all_channels; /* notify every channel of gateway.json */
} builtin[] = {
	{"misbehaving", RULE_MISBEHAVING, ALERT_SEV_WARNING, 3600, false},
	{"clock", RULE_CLOCK, ALERT_SEV_WARNING, 900, false},
	{"hub-storage", RULE_HUB, ALERT_SEV_CRITICAL, 600, true},
	/* raised every minute while due: cleared 15 min after a calibration */
	{"calibration-due", RULE_CALIBRATION, ALERT_SEV_WARNING, 900, false},
	{"sensor-check", RULE_SENSOR, ALERT_SEV_WARNING, 0, false},
};

static void add_builtins(struct rules *out, const char *const *channels, size_t n_channels)
{
	for (size_t b = 0; b < AGRI_ARRAY_SIZE(builtin); b++) {
		struct rule *r;
		bool have = false;

		for (size_t i = 0; i < out->n && !have; i++)
			have = out->v[i].kind == builtin[b].kind;
		if (have)
			continue;
		r = &out->v[out->n];
		memset(r, 0, sizeof(*r));
		snprintf(r->id, sizeof(r->id), "%s", builtin[b].id);
		for (size_t i = 0; i < out->n; i++) /* the id is taken: a suffix */
			if (!strcmp(out->v[i].id, r->id))
				snprintf(r->id, sizeof(r->id), "%s-builtin", builtin[b].id);
		r->kind = builtin[b].kind;
		r->severity = builtin[b].severity;
		r->after_s = builtin[b].after_s;
		r->n_bad = SENSOR_N_DEFAULT; /* (used by the sensor kind only) */
		for (size_t c = 0; builtin[b].all_channels && c < n_channels &&
				   r->n_notify < RULE_CHANNELS_MAX; c++)
			snprintf(r->notify[r->n_notify++], RULE_CHANNEL_MAX, "%s", channels[c]);
		out->n++;
	}
}

static struct rules *parse(const char *json, size_t len, bool check_channels,
			   const char *const *channels, size_t n_channels,
			   struct agri_err *err)
{
	struct doc_tmp doc = {.utc_offset_min = 420, .late_after_s = RULES_LATE_AFTER_S,
			      .late_settle_s = RULES_LATE_SETTLE_S, .replay_max_s = RULES_REPLAY_MAX_S};
	struct rule_tmp *t = NULL;
	struct rules *out = NULL;
	char path[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	cJSON *root = NULL;
	size_t n, i = 0;

	if (agri_json_parse(json, len, RULES_FILE_MAX, AGRI_JSON_DEPTH_MAX, &root,
			    err) < 0)
		goto fail;
	if (agri_cfg_read(root, "", doc_fields, AGRI_ARRAY_SIZE(doc_fields), &doc, false, err) < 0)
		goto fail;
	n = (size_t)cJSON_GetArraySize(doc.rules);
	if (n > RULES_MAX) {
		agri_err_set(err, "rules", "more than %d rules", RULES_MAX);
		goto fail;
	}
	out = calloc(1, sizeof(*out));
	t = malloc(sizeof(*t));
	if (!out || !t || !(out->v = calloc(n + AGRI_ARRAY_SIZE(builtin), sizeof(*out->v)))) {
		agri_err_set(err, "", "out of memory");
		goto fail;
	}
	out->utc_offset_min = doc.utc_offset_min;
	out->lang_vi = doc.lang_vi;
	out->late_after_s = doc.late_after_s;
	out->late_settle_s = doc.late_settle_s;
	out->replay_max_s = doc.replay_max_s;
	cJSON_ArrayForEach(e, doc.rules) {
		agri_path_index(path, sizeof(path), "rules", (int)i);
		if (rule_read(e, path, t, err) < 0)
			goto fail;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(out->v[j].id, t->r.id)) {
				char sub[AGRI_ERR_PATH_MAX];

				agri_path_key(sub, sizeof(sub), path, "id");
				agri_err_set(err, sub, "duplicate id \"%s\" (also rules[%zu])",
					     t->r.id, j);
				goto fail;
			}
		}
		if (check_channels &&
		    channels_check(&t->r, path, channels, n_channels, err) < 0)
			goto fail;
		out->v[i++] = t->r;
	}
	out->n = i;
	add_builtins(out, channels, check_channels ? n_channels : 0);
	free(t);
	cJSON_Delete(root);
	return out;
fail:
	free(t);
	rules_free(out);
	cJSON_Delete(root);
	return NULL;
}

struct rules *rules_parse(const char *json, size_t len,
			  const char *const *channels, size_t n_channels,
			  struct agri_err *err)
{
	return parse(json, len, true, channels, n_channels, err);
}

static struct rules *load(const char *path, bool check_channels,
			  const char *const *channels, size_t n_channels,
			  struct agri_err *err)
{
	struct rules *r = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f = fopen(path, "rb");

	if (!f) {
		agri_err_set(err, "", "cannot read: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		size_t got;

		if (len == cap) {
			char *nb;

			if (cap > RULES_FILE_MAX) {
				agri_err_set(err, "", "larger than %d bytes", RULES_FILE_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 16384;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				agri_err_set(err, "", "out of memory");
				goto out;
			}
			buf = nb;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f)) {
				agri_err_set(err, "", "cannot read: %s", strerror(errno));
				goto out;
			}
			break;
		}
	}
	r = parse(buf ? buf : "", len, check_channels, channels, n_channels, err);
out:
	free(buf);
	fclose(f);
	return r;
}

struct rules *rules_load(const char *path, const char *const *channels,
			 size_t n_channels, struct agri_err *err)
{
	return load(path, true, channels, n_channels, err);
}

int rules_validate_file(const char *path, struct agri_err *err)
{
	struct rules *r = load(path, false, NULL, 0, err);

	if (!r)
		return -EINVAL;
	rules_free(r);
	return 0;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	free(r->v);
	free(r);
}
