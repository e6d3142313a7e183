/*
 * Payload codecs of docs/interfaces.md §2, §3, §5. Each decoder parses with
 * agri_json_parse() and reads objects through agri_cfg_read() tables, so
 * every failure names a JSON path and a reason; all decoder failures are
 * -EBADMSG (or -E2BIG before parsing). Encoders validate what the
 * decoders would refuse (-EINVAL), then write the canonical form (keys in
 * interfaces.md's order, no spaces) through an agri_buf over the caller's
 * buffer (agri/buf.h: sticky errors, nothing allocated).
 * Decoded structs are written only on success, except the telemetry
 * envelope fields documented in msg.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/time.h"
#include "agri/topic.h"

#define MSG_MAX_BYTES (64 * 1024) /* every message but telemetry */
#define SAFE_INT_MAX 9007199254740991.0 /* 2^53 - 1 */
#define SAFE_UINT_MAX 9007199254740991ULL

#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static const char *const quality_names[] = {"ok", "suspect", "error", "maint"};
static const char *const alert_state_names[] = {"active", "acknowledged", "cleared"};
static const char *const severities[] = {"info", "warning", "alarm", "critical"};

static int name_index(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (!strcmp(names[i], s))
			return (int)i;
	return -1;
}

const char *agri_quality_name(enum agri_quality q)
{
	return (unsigned)q < AGRI_ARRAY_SIZE(quality_names) ? quality_names[q] : NULL;
}

int agri_quality_parse(const char *s, enum agri_quality *q)
{
	int i = name_index(quality_names, AGRI_ARRAY_SIZE(quality_names), s);

	if (i < 0 || !q)
		return -EINVAL;
	*q = (enum agri_quality)i;
	return 0;
}

const char *agri_alert_state_name(enum agri_alert_state s)
{
	return (unsigned)s < AGRI_ARRAY_SIZE(alert_state_names) ? alert_state_names[s] : NULL;
}

int agri_alert_state_parse(const char *s, enum agri_alert_state *out)
{
	int i = name_index(alert_state_names, AGRI_ARRAY_SIZE(alert_state_names), s);

	if (i < 0 || !out)
		return -EINVAL;
	*out = (enum agri_alert_state)i;
	return 0;
}

/* ---- field parsers for the tables (agri_cfg_field.parse) ---- */

static int parse_version(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	double d = item->valuedouble;

	(void)field;
	if (!cJSON_IsNumber(item) || !isfinite(d) || d != floor(d)) {
		agri_err_set(err, path, "expected an integer");
		return -EINVAL;
	}
	if (d != AGRI_MSG_VERSION) {
		agri_err_set(err, path, "unsupported version %.0f (expected %d)",
			     d, AGRI_MSG_VERSION);
		return -EINVAL;
	}
	return 0;
}

static int parse_station(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	const char *s = item->valuestring;

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (!agri_station_id_valid(s)) {
		agri_err_set(err, path, agri_ident_valid(s) ?
			     "reserved word, not a station id" :
			     "invalid id (expected [A-Za-z0-9_-]{1,32})");
		return -EINVAL;
	}
	strcpy(field, s);
	return 0;
}

static int parse_ident(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (!agri_ident_valid(item->valuestring)) {
		agri_err_set(err, path, "invalid id (expected [A-Za-z0-9_-]{1,32})");
		return -EINVAL;
	}
	strcpy(field, item->valuestring);
	return 0;
}

static int parse_rule(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (!agri_rule_id_valid(item->valuestring)) {
		agri_err_set(err, path, "invalid rule id (expected [A-Za-z0-9_-]{1,64})");
		return -EINVAL;
	}
	strcpy(field, item->valuestring);
	return 0;
}

static int parse_time(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	int64_t ms;

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (agri_time_parse(item->valuestring, &ms)) {
		agri_err_set(err, path, "invalid RFC 3339 timestamp");
		return -EINVAL;
	}
	memcpy(field, &ms, sizeof(ms));
	return 0;
}

/* A finite number, or null stored as NaN. */
static int parse_num_or_null(const cJSON *item, void *field, const char *path,
			     struct agri_err *err)
{
	double d = NAN;

	if (!cJSON_IsNull(item)) {
		if (!cJSON_IsNumber(item)) {
			agri_err_set(err, path, "expected a number");
			return -EINVAL;
		}
		d = item->valuedouble;
		if (!isfinite(d)) {
			agri_err_set(err, path, "number too large");
			return -EINVAL;
		}
	}
	memcpy(field, &d, sizeof(d));
	return 0;
}

/* A string from names[], stored as its index (an enum). */
static int parse_enum(const cJSON *item, const char *const *names, size_t n,
		      const char *expected, int *out, const char *path,
		      struct agri_err *err)
{
	int i;

	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	i = name_index(names, n, item->valuestring);
	if (i < 0) {
		agri_err_set(err, path, "expected %s", expected);
		return -EINVAL;
	}
	*out = i;
	return 0;
}

static int parse_quality(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	int i;

	if (parse_enum(item, quality_names, AGRI_ARRAY_SIZE(quality_names),
		       "\"ok\", \"suspect\", \"error\" or \"maint\"", &i, path, err))
		return -EINVAL;
	*(enum agri_quality *)field = (enum agri_quality)i;
	return 0;
}

bool agri_why_valid(const char *s)
{
	return agri_snake_valid(s, AGRI_WHY_MAX);
}

static int parse_why(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	if (agri_cfg_want_string(item, path, err))
		return -EINVAL;
	if (!agri_why_valid(item->valuestring)) {
		agri_err_set(err, path, "expected a reason [a-z][a-z0-9_]{0,15}");
		return -EINVAL;
	}
	strcpy(field, item->valuestring);
	return 0;
}

static int parse_alert_state(const cJSON *item, void *field, const char *path,
			     struct agri_err *err)
{
	int i;

	if (parse_enum(item, alert_state_names, AGRI_ARRAY_SIZE(alert_state_names),
		       "\"active\", \"acknowledged\" or \"cleared\"", &i, path, err))
		return -EINVAL;
	*(enum agri_alert_state *)field = (enum agri_alert_state)i;
	return 0;
}

static int parse_severity(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	int i;

	if (parse_enum(item, severities, AGRI_ARRAY_SIZE(severities),
		       "\"info\", \"warning\", \"alarm\" or \"critical\"", &i, path, err))
		return -EINVAL;
	strcpy(field, severities[i]);
	return 0;
}

static int parse_online(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	static const char *const states[] = {"offline", "online"};
	int i;

	if (parse_enum(item, states, 2, "\"online\" or \"offline\"", &i, path, err))
		return -EINVAL;
	*(bool *)field = i;
	return 0;
}

static int parse_result(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	static const char *const results[] = {"rejected", "applied"};
	int i;

	if (parse_enum(item, results, 2, "\"applied\" or \"rejected\"", &i, path, err))
		return -EINVAL;
	*(bool *)field = i;
	return 0;
}

/* An array of min..max elements; writes nothing. */
static int check_array(const cJSON *item, int min, int max, const char *what,
		       const char *path, struct agri_err *err)
{
	int n;

	if (!cJSON_IsArray(item)) {
		agri_err_set(err, path, "expected an array");
		return -EINVAL;
	}
	n = cJSON_GetArraySize(item);
	if (n < min || n > max) {
		agri_err_set(err, path, "must hold %d to %d %s", min, max, what);
		return -EINVAL;
	}
	return 0;
}

static int parse_readings(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	(void)field;
	return check_array(item, 1, AGRI_BATCH_MAX_READINGS, "readings", path, err);
}

/* "v" of every message (its parser checks it, stores nothing). */
#define F_VERSION AGRI_FIELD_SECTION("v", parse_version, true)

/* ---- telemetry ---- */

static const struct agri_cfg_field telemetry_fields[] = {
	F_VERSION,
	AGRI_FIELD_CUSTOM(struct agri_telemetry, "station", station, parse_station, true),
	AGRI_FIELD(struct agri_telemetry, "seq", AGRI_CFG_UINT, seq, true,
		   AGRI_RANGE(0, SAFE_INT_MAX)),
	AGRI_FIELD_CUSTOM(struct agri_telemetry, "sent_at", sent_at_ms, parse_time, true),
	AGRI_FIELD_CUSTOM(struct agri_telemetry, "readings", readings, parse_readings, true),
};

static const struct agri_cfg_field reading_fields[] = {
	AGRI_FIELD_CUSTOM(struct agri_reading, "ts", ts_ms, parse_time, true),
	AGRI_FIELD_CUSTOM(struct agri_reading, "sensor", sensor, parse_ident, true),
	AGRI_FIELD_CUSTOM(struct agri_reading, "metric", metric, parse_ident, true),
	AGRI_FIELD_CUSTOM(struct agri_reading, "value", value, parse_num_or_null, true),
	AGRI_FIELD_STR(struct agri_reading, "unit", unit, true),
	AGRI_FIELD_CUSTOM(struct agri_reading, "q", q, parse_quality, true),
	AGRI_FIELD_CUSTOM(struct agri_reading, "why", why, parse_why, false),
};

/* Parses json into *root and checks it is an object. */
static int doc_parse(const char *json, size_t len, size_t max, cJSON **root,
		     struct agri_err *err)
{
	int ret;

	if (!json)
		return -EINVAL;
	ret = agri_json_parse(json, len, max, AGRI_JSON_DEPTH_MAX, root, err);
	if (ret)
		return ret == -E2BIG || ret == -EINVAL ? ret : -EBADMSG;
	if (!cJSON_IsObject(*root)) {
		agri_err_set(err, "", "expected an object");
		cJSON_Delete(*root);
		*root = NULL;
		return -EBADMSG;
	}
	return 0;
}

/* The member named key when it occurs exactly once, else NULL. */
static const cJSON *unique_member(const cJSON *obj, const char *key)
{
	const cJSON *found = NULL;

	for (const cJSON *it = obj->child; it; it = it->next) {
		if (strcmp(it->string, key))
			continue;
		if (found)
			return NULL;
		found = it;
	}
	return found;
}

static int reading_decode(const cJSON *obj, const char *path,
			  struct agri_reading *out, struct agri_err *err)
{
	struct agri_reading r = {0};
	char sub[AGRI_ERR_PATH_MAX];

	if (agri_cfg_read(obj, path, reading_fields, AGRI_ARRAY_SIZE(reading_fields),
			  &r, false, err))
		return -EBADMSG;
	r.has_value = !isnan(r.value);
	if (r.has_value != (r.q != AGRI_Q_ERROR)) {
		agri_path_key(sub, sizeof(sub), path, "value");
		agri_err_set(err, sub, r.has_value ? "must be null when q is \"error\"" :
			     "null is only allowed when q is \"error\"");
		return -EBADMSG;
	}
	if (r.why[0] && r.q != AGRI_Q_SUSPECT) {
		agri_path_key(sub, sizeof(sub), path, "why");
		agri_err_set(err, sub, "only allowed when q is \"suspect\"");
		return -EBADMSG;
	}
	if (!r.has_value)
		r.value = 0;
	*out = r;
	return 0;
}

int agri_telemetry_decode(const char *json, size_t len,
			  struct agri_telemetry *out, struct agri_err *err)
{
	struct agri_telemetry env = {0};
	const cJSON *arr, *it, *m;
	cJSON *root = NULL;
	char path[AGRI_ERR_PATH_MAX];
	int ret, i = 0;

	if (!json || !out)
		return -EINVAL;
	out->station[0] = '\0';
	out->n = out->n_invalid = 0;
	out->has_station = out->has_seq = false;
	ret = doc_parse(json, len, AGRI_BATCH_MAX_BYTES, &root, err);
	if (ret)
		return ret;
	/* Station and seq on their own, for the end-to-end ack (interfaces.md §4). */
	m = unique_member(root, "station");
	if (m && cJSON_IsString(m) && agri_station_id_valid(m->valuestring)) {
		strcpy(out->station, m->valuestring);
		out->has_station = true;
	}
	m = unique_member(root, "seq");
	if (m && cJSON_IsNumber(m) && m->valuedouble >= 0 &&
	    m->valuedouble <= SAFE_INT_MAX && m->valuedouble == floor(m->valuedouble)) {
		out->seq = (uint64_t)m->valuedouble;
		out->has_seq = true;
	}
	if (agri_cfg_read(root, "", telemetry_fields, AGRI_ARRAY_SIZE(telemetry_fields),
			  &env, false, err)) {
		ret = -EBADMSG;
		goto out;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, "readings");
	if ((size_t)cJSON_GetArraySize(arr) > out->cap || !out->readings) {
		agri_err_set(err, "readings", "more readings than the caller's buffer holds");
		ret = -ENOSPC;
		goto out;
	}
	cJSON_ArrayForEach(it, arr) {
		agri_path_index(path, sizeof(path), "readings", i++);
		if (!reading_decode(it, path, &out->readings[out->n],
				    out->n_invalid ? NULL : err))
			out->n++;
		else
			out->n_invalid++;
	}
	out->sent_at_ms = env.sent_at_ms;
	ret = out->n_invalid ? 1 : 0;
out:
	cJSON_Delete(root);
	return ret;
}

/* ---- the canonical writer: agri_buf over the caller's buffer ---- */

static void w_check(struct agri_buf *w, bool ok)
{
	if (!ok)
		agri_buf_fail(w, -EINVAL);
}

static void w_uint(struct agri_buf *w, uint64_t v)
{
	w_check(w, v <= SAFE_UINT_MAX);
	agri_buf_printf(w, "%" PRIu64, v);
}

/* ,"key": */
static void w_key(struct agri_buf *w, const char *key)
{
	agri_buf_puts(w, ",\"");
	agri_buf_puts(w, key);
	agri_buf_puts(w, "\":");
}

/* Over buf[0..len). Without a buffer, a zeroed agri_buf: the checks that
 * come before the first write still report -EINVAL, then -ENOSPC. */
static void w_open(struct agri_buf *w, char *buf, size_t len)
{
	if (buf && len)
		agri_buf_init(w, buf, len);
	else
		*w = (struct agri_buf){0};
}

static void w_begin(struct agri_buf *w, char *buf, size_t len, const char *station)
{
	w_open(w, buf, len);
	w_check(w, agri_station_id_valid(station));
	agri_buf_puts(w, "{\"v\":1,\"station\":");
	agri_buf_json_str(w, station);
}

static int w_end(struct agri_buf *w, size_t max)
{
	agri_buf_puts(w, "}");
	if (!w->err && w->len > max)
		agri_buf_fail(w, -EINVAL);
	return agri_buf_end(w);
}

static bool str_fits(const char *s, size_t size)
{
	return strnlen(s, size) < size;
}

int agri_telemetry_encode(const struct agri_telemetry *t, char *buf,
			  size_t len)
{
	struct agri_buf w;

	if (!t)
		return -EINVAL;
	w_begin(&w, buf, len, t->station);
	w_check(&w, t->n >= 1 && t->n <= AGRI_BATCH_MAX_READINGS && t->readings);
	w_key(&w, "seq");
	w_uint(&w, t->seq);
	w_key(&w, "sent_at");
	agri_buf_json_time(&w, t->sent_at_ms);
	agri_buf_puts(&w, ",\"readings\":[");
	for (size_t i = 0; i < t->n && !w.err; i++) {
		const struct agri_reading *r = &t->readings[i];

		w_check(&w, agri_ident_valid(r->sensor) && agri_ident_valid(r->metric) &&
			str_fits(r->unit, sizeof(r->unit)) && agri_quality_name(r->q) &&
			r->has_value == (r->q != AGRI_Q_ERROR) &&
			(!r->why[0] || (r->q == AGRI_Q_SUSPECT && agri_why_valid(r->why))));
		agri_buf_puts(&w, i ? ",{\"ts\":" : "{\"ts\":");
		agri_buf_json_time(&w, r->ts_ms);
		w_key(&w, "sensor");
		agri_buf_json_str(&w, r->sensor);
		w_key(&w, "metric");
		agri_buf_json_str(&w, r->metric);
		w_key(&w, "value");
		if (r->has_value)
			agri_buf_json_num(&w, r->value);
		else
			agri_buf_puts(&w, "null");
		w_key(&w, "unit");
		agri_buf_json_str(&w, r->unit);
		w_key(&w, "q");
		agri_buf_json_str(&w, agri_quality_name(r->q));
		if (r->why[0]) {
			w_key(&w, "why");
			agri_buf_json_str(&w, r->why);
		}
		agri_buf_puts(&w, "}");
	}
	agri_buf_puts(&w, "]");
	return w_end(&w, AGRI_BATCH_MAX_BYTES);
}

/* ---- status ---- */

#define SH struct agri_sensor_health
static const struct agri_cfg_field sensor_fields[] = {
	AGRI_FIELD_CUSTOM(SH, "name", name, parse_ident, true),
	AGRI_FIELD_CUSTOM(SH, "profile", profile, parse_ident, false),
	AGRI_FIELD(SH, "reads_ok", AGRI_CFG_UINT, reads_ok, false),
	AGRI_FIELD(SH, "reads_failed", AGRI_CFG_UINT, reads_failed, false),
	AGRI_FIELD(SH, "timeouts", AGRI_CFG_UINT, timeouts, false),
	AGRI_FIELD(SH, "crc_errors", AGRI_CFG_UINT, crc_errors, false),
	AGRI_FIELD(SH, "exceptions", AGRI_CFG_UINT, exceptions, false),
	AGRI_FIELD_CUSTOM(SH, "last_ok", last_ok_ms, parse_time, false),
	AGRI_FIELD_STR(SH, "last_error", last_error, false),
	AGRI_FIELD_CUSTOM(SH, "last_error_at", last_error_ms, parse_time, false),
	AGRI_FIELD_BOOL(SH, "maintenance", maintenance),
};
#undef SH

static const struct agri_cfg_array sensors_array = {
	.fields = sensor_fields, .n_fields = AGRI_ARRAY_SIZE(sensor_fields),
	.elem_size = sizeof(struct agri_sensor_health), .max = AGRI_STATUS_SENSORS_MAX,
	.what = "sensors", .allow_unknown = true,
};

static int parse_bus_state(const cJSON *item, void *field, const char *path,
			   struct agri_err *err)
{
	static const char *const states[] = {"down", "open"};
	int i;

	if (parse_enum(item, states, 2, "\"open\" or \"down\"", &i, path, err))
		return -EINVAL;
	*(bool *)field = i;
	return 0;
}

#define CF struct agri_status
static const struct agri_cfg_field config_failed_fields[] = {
	AGRI_FIELD_INT(CF, "version", config_failed_version, 1, SAFE_INT_MAX),
	AGRI_FIELD_CUSTOM(CF, "at", config_failed_ms, parse_time, false),
	AGRI_FIELD_STR(CF, "error", config_failed_error, false),
};
#undef CF

/* "config_failed": a section over the whole status. */
static int parse_config_failed(const cJSON *item, void *field, const char *path,
			       struct agri_err *err)
{
	return agri_cfg_read(item, path, config_failed_fields,
			     AGRI_ARRAY_SIZE(config_failed_fields), field, true, err);
}

#define UP struct agri_status
static const struct agri_cfg_field update_fields[] = {
	AGRI_FIELD_INT(UP, "id", update_id, 0, SAFE_INT_MAX),
	AGRI_FIELD_STR(UP, "version", update_version, false),
	AGRI_FIELD_STR(UP, "state", update_state, true),
	AGRI_FIELD_STR(UP, "error", update_error, false),
};
#undef UP

/* "update": a section over the whole status (docs/update.md); newer
 * members ("progress") are accepted and ignored. */
static int parse_update(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	return agri_cfg_read(item, path, update_fields, AGRI_ARRAY_SIZE(update_fields), field,
			     true, err);
}

#define BH struct agri_bus_health
static const struct agri_cfg_field bus_fields[] = {
	AGRI_FIELD_CUSTOM(BH, "name", name, parse_ident, true),
	AGRI_FIELD_CUSTOM(BH, "state", open, parse_bus_state, true),
	AGRI_FIELD_CUSTOM(BH, "since", since_ms, parse_time, false),
	AGRI_FIELD_STR(BH, "error", error, false),
};
#undef BH

static const struct agri_cfg_array buses_array = {
	.fields = bus_fields, .n_fields = AGRI_ARRAY_SIZE(bus_fields),
	.elem_size = sizeof(struct agri_bus_health), .max = AGRI_STATUS_BUSES_MAX,
	.what = "buses", .allow_unknown = true,
};

/* field is &status->buses. */
static int parse_buses(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	struct agri_status *s = container_of(field, struct agri_status, buses);

	if (check_array(item, 0, AGRI_STATUS_BUSES_MAX, "buses", path, err))
		return -EINVAL;
	return agri_cfg_read_array(item, path, &buses_array, s->buses, &s->n_buses, err);
}

/* field is &status->sensors. The count's wording is the messages' own
 * ("must hold 0 to 32 sensors"), checked first. */
static int parse_sensors(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct agri_status *s = container_of(field, struct agri_status, sensors);

	if (check_array(item, 0, AGRI_STATUS_SENSORS_MAX, "sensors", path, err))
		return -EINVAL;
	return agri_cfg_read_array(item, path, &sensors_array, s->sensors, &s->n_sensors,
				   err);
}

static const struct agri_cfg_field status_fields[] = {
	F_VERSION,
	AGRI_FIELD_CUSTOM(struct agri_status, "station", station, parse_station, true),
	AGRI_FIELD_CUSTOM(struct agri_status, "state", online, parse_online, true),
	AGRI_FIELD_STR(struct agri_status, "fw", fw, false),
	AGRI_FIELD_STR(struct agri_status, "board", board, false),
	AGRI_FIELD_STR(struct agri_status, "broker", broker, false),
	AGRI_FIELD_INT(struct agri_status, "config_version", config_version, 0, SAFE_INT_MAX),
	AGRI_FIELD_CUSTOM(struct agri_status, "ts", ts_ms, parse_time, false),
	AGRI_FIELD(struct agri_status, "uptime_s", AGRI_CFG_UINT, uptime_s, false),
	AGRI_FIELD(struct agri_status, "spool_depth", AGRI_CFG_UINT, spool_depth, false),
	AGRI_FIELD(struct agri_status, "spool_dropped", AGRI_CFG_UINT, spool_dropped, false),
	AGRI_FIELD(struct agri_status, "last_seq", AGRI_CFG_UINT, last_seq, false),
	AGRI_FIELD_BOOL(struct agri_status, "maintenance", maintenance),
	AGRI_FIELD_CUSTOM(struct agri_status, "config_signed_by", config_signed_by, parse_ident,
			  false),
	AGRI_FIELD_INT(struct agri_status, "probation", probation_version, 0, SAFE_INT_MAX),
	AGRI_FIELD_SECTION("config_failed", parse_config_failed, false),
	AGRI_FIELD_CUSTOM(struct agri_status, "spool_oldest", spool_oldest_ms, parse_time, false),
	AGRI_FIELD_STR(struct agri_status, "system", system, false),
	AGRI_FIELD_STR(struct agri_status, "slot", slot, false),
	AGRI_FIELD_SECTION("update", parse_update, false),
	AGRI_FIELD_CUSTOM(struct agri_status, "buses", buses, parse_buses, false),
	AGRI_FIELD_CUSTOM(struct agri_status, "sensors", sensors, parse_sensors, false),
};

int agri_status_decode(const char *json, size_t len, struct agri_status *out,
		       struct agri_err *err)
{
	struct agri_status s = {0};
	cJSON *root = NULL;
	int ret;

	if (!out)
		return -EINVAL;
	ret = doc_parse(json, len, MSG_MAX_BYTES, &root, err);
	if (ret)
		return ret;
	if (agri_cfg_read(root, "", status_fields, AGRI_ARRAY_SIZE(status_fields),
			  &s, true, err))
		ret = -EBADMSG;
	else
		*out = s;
	cJSON_Delete(root);
	return ret;
}

/* Optional members are written only when they differ from their zero
 * default, so the Last Will's minimal form is canonical. */
int agri_status_encode(const struct agri_status *s, char *buf, size_t len)
{
	static const struct {
		const char *key;
		size_t off;
	} counters[] = {
		{"uptime_s", offsetof(struct agri_status, uptime_s)},
		{"spool_depth", offsetof(struct agri_status, spool_depth)},
		{"spool_dropped", offsetof(struct agri_status, spool_dropped)},
		{"last_seq", offsetof(struct agri_status, last_seq)},
	};
	struct agri_buf w;

	if (!s)
		return -EINVAL;
	w_begin(&w, buf, len, s->station);
	agri_buf_puts(&w, s->online ? ",\"state\":\"online\"" : ",\"state\":\"offline\"");
	if (str_fits(s->fw, sizeof(s->fw)) && s->fw[0]) {
		w_key(&w, "fw");
		agri_buf_json_str(&w, s->fw);
	}
	if (str_fits(s->board, sizeof(s->board)) && s->board[0]) {
		w_key(&w, "board");
		agri_buf_json_str(&w, s->board);
	}
	if (str_fits(s->broker, sizeof(s->broker)) && s->broker[0]) {
		w_key(&w, "broker");
		agri_buf_json_str(&w, s->broker);
	}
	w_check(&w, str_fits(s->fw, sizeof(s->fw)) &&
		str_fits(s->board, sizeof(s->board)) &&
		str_fits(s->broker, sizeof(s->broker)) && s->config_version >= 0 &&
		s->n_sensors <= AGRI_STATUS_SENSORS_MAX);
	if (s->config_version) {
		w_key(&w, "config_version");
		w_uint(&w, (uint64_t)s->config_version);
	}
	if (s->config_signed_by[0]) {
		w_check(&w, agri_ident_valid(s->config_signed_by));
		w_key(&w, "config_signed_by");
		agri_buf_json_str(&w, s->config_signed_by);
	}
	if (s->probation_version) {
		w_check(&w, s->probation_version > 0);
		w_key(&w, "probation");
		w_uint(&w, (uint64_t)s->probation_version);
	}
	if (s->config_failed_version) {
		w_check(&w, s->config_failed_version > 0 &&
			str_fits(s->config_failed_error, sizeof(s->config_failed_error)));
		agri_buf_puts(&w, ",\"config_failed\":{\"version\":");
		w_uint(&w, (uint64_t)s->config_failed_version);
		if (s->config_failed_ms) {
			w_key(&w, "at");
			agri_buf_json_time(&w, s->config_failed_ms);
		}
		if (s->config_failed_error[0]) {
			w_key(&w, "error");
			agri_buf_json_str(&w, s->config_failed_error);
		}
		agri_buf_puts(&w, "}");
	}
	if (s->ts_ms) {
		w_key(&w, "ts");
		agri_buf_json_time(&w, s->ts_ms);
	}
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(counters); i++) {
		uint64_t v;

		memcpy(&v, (const char *)s + counters[i].off, sizeof(v));
		if (v) {
			w_key(&w, counters[i].key);
			w_uint(&w, v);
		}
		if (s->spool_oldest_ms && counters[i].off == offsetof(struct agri_status,
								       spool_depth)) {
			w_key(&w, "spool_oldest");
			agri_buf_json_time(&w, s->spool_oldest_ms);
		}
	}
	if (s->maintenance)
		agri_buf_puts(&w, ",\"maintenance\":true");
	w_check(&w, s->n_buses <= AGRI_STATUS_BUSES_MAX);
	if (s->n_buses && !w.err) {
		agri_buf_puts(&w, ",\"buses\":[");
		for (size_t i = 0; i < s->n_buses; i++) {
			const struct agri_bus_health *b = &s->buses[i];

			w_check(&w, agri_ident_valid(b->name) &&
				str_fits(b->error, sizeof(b->error)));
			agri_buf_puts(&w, i ? ",{\"name\":" : "{\"name\":");
			agri_buf_json_str(&w, b->name);
			agri_buf_puts(&w, b->open ? ",\"state\":\"open\"" : ",\"state\":\"down\"");
			if (b->since_ms) {
				w_key(&w, "since");
				agri_buf_json_time(&w, b->since_ms);
			}
			if (b->error[0]) {
				w_key(&w, "error");
				agri_buf_json_str(&w, b->error);
			}
			agri_buf_puts(&w, "}");
		}
		agri_buf_puts(&w, "]");
	}
	if (s->n_sensors && !w.err) {
		agri_buf_puts(&w, ",\"sensors\":[");
		for (size_t i = 0; i < s->n_sensors; i++) {
			const struct agri_sensor_health *h = &s->sensors[i];

			w_check(&w, agri_ident_valid(h->name) &&
				(!h->profile[0] || agri_ident_valid(h->profile)));
			agri_buf_puts(&w, i ? ",{\"name\":" : "{\"name\":");
			agri_buf_json_str(&w, h->name);
			if (h->profile[0]) {
				w_key(&w, "profile");
				agri_buf_json_str(&w, h->profile);
			}
			w_key(&w, "reads_ok");
			w_uint(&w, h->reads_ok);
			w_key(&w, "reads_failed");
			w_uint(&w, h->reads_failed);
			w_key(&w, "timeouts");
			w_uint(&w, h->timeouts);
			w_key(&w, "crc_errors");
			w_uint(&w, h->crc_errors);
			w_key(&w, "exceptions");
			w_uint(&w, h->exceptions);
			if (h->last_ok_ms) {
				w_key(&w, "last_ok");
				agri_buf_json_time(&w, h->last_ok_ms);
			}
			if (h->last_error[0]) {
				w_check(&w, str_fits(h->last_error, sizeof(h->last_error)));
				w_key(&w, "last_error");
				agri_buf_json_str(&w, h->last_error);
			}
			if (h->last_error_ms) {
				w_key(&w, "last_error_at");
				agri_buf_json_time(&w, h->last_error_ms);
			}
			if (h->maintenance)
				agri_buf_puts(&w, ",\"maintenance\":true");
			agri_buf_puts(&w, "}");
		}
		agri_buf_puts(&w, "]");
	}
	return w_end(&w, MSG_MAX_BYTES);
}

/* ---- end-to-end ack ---- */

/* One [first, last] pair of "seqs": field is its struct agri_seq_range. */
static int parse_seq_range(const cJSON *item, void *field, const char *path,
			   struct agri_err *err)
{
	static const struct agri_cfg_field seq = {
		.key = "", .type = AGRI_CFG_UINT, .max = SAFE_INT_MAX,
	};
	struct agri_seq_range *r = field;
	char el[AGRI_ERR_PATH_MAX];
	int64_t v[2];

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2) {
		agri_err_set(err, path, "expected [first, last]");
		return -EINVAL;
	}
	for (int k = 0; k < 2; k++) {
		agri_path_index(el, sizeof(el), path, k);
		if (agri_cfg_read_value(cJSON_GetArrayItem(item, k), &seq, &v[k], el, err))
			return -EINVAL;
	}
	if (v[0] > v[1]) {
		agri_err_set(err, path, "first is greater than last");
		return -EINVAL;
	}
	r->first = (uint64_t)v[0];
	r->last = (uint64_t)v[1];
	return 0;
}

static const struct agri_cfg_field seq_range = {
	.type = AGRI_CFG_CUSTOM, .parse = parse_seq_range,
};

static const struct agri_cfg_array seqs_array = {
	.value = &seq_range, .elem_size = sizeof(struct agri_seq_range),
	.min = 1, .max = AGRI_ACK_RANGES_MAX, .what = "ranges",
};

/* field is &ack->ranges; the count's wording as parse_sensors'. */
static int parse_seqs(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	struct agri_ack *a = container_of(field, struct agri_ack, ranges);

	if (check_array(item, 1, AGRI_ACK_RANGES_MAX, "ranges", path, err))
		return -EINVAL;
	return agri_cfg_read_array(item, path, &seqs_array, a->ranges, &a->n, err);
}

static const struct agri_cfg_field ack_fields[] = {
	F_VERSION,
	AGRI_FIELD_CUSTOM(struct agri_ack, "station", station, parse_station, true),
	AGRI_FIELD_CUSTOM(struct agri_ack, "seqs", ranges, parse_seqs, true),
};

/* Decodes with table into a scratch copy of size bytes, then *out. */
static int decode_simple(const char *json, size_t len,
			 const struct agri_cfg_field *fields, size_t n_fields,
			 void *scratch, void *out, size_t size,
			 struct agri_err *err)
{
	cJSON *root = NULL;
	int ret;

	if (!out)
		return -EINVAL;
	ret = doc_parse(json, len, MSG_MAX_BYTES, &root, err);
	if (ret)
		return ret;
	if (agri_cfg_read(root, "", fields, n_fields, scratch, false, err))
		ret = -EBADMSG;
	else
		memcpy(out, scratch, size);
	cJSON_Delete(root);
	return ret;
}

int agri_ack_decode(const char *json, size_t len, struct agri_ack *out,
		    struct agri_err *err)
{
	struct agri_ack a = {0};

	return decode_simple(json, len, ack_fields, AGRI_ARRAY_SIZE(ack_fields), &a,
			     out, sizeof(a), err);
}

int agri_ack_encode(const struct agri_ack *a, char *buf, size_t len)
{
	struct agri_buf w;

	if (!a)
		return -EINVAL;
	w_begin(&w, buf, len, a->station);
	w_check(&w, a->n >= 1 && a->n <= AGRI_ACK_RANGES_MAX);
	agri_buf_puts(&w, ",\"seqs\":[");
	for (size_t i = 0; i < a->n && !w.err; i++) {
		w_check(&w, a->ranges[i].first <= a->ranges[i].last);
		agri_buf_puts(&w, i ? ",[" : "[");
		w_uint(&w, a->ranges[i].first);
		agri_buf_puts(&w, ",");
		w_uint(&w, a->ranges[i].last);
		agri_buf_puts(&w, "]");
	}
	agri_buf_puts(&w, "]");
	return w_end(&w, MSG_MAX_BYTES);
}

int agri_ack_add(struct agri_ack *a, uint64_t seq)
{
	size_t i;

	if (!a || seq > SAFE_UINT_MAX || a->n > AGRI_ACK_RANGES_MAX)
		return -EINVAL;
	/* i: the first range that ends at or after seq - 1. */
	for (i = 0; i < a->n && a->ranges[i].last + 1 < seq; i++)
		;
	if (i < a->n && a->ranges[i].first <= seq + 1) {
		struct agri_seq_range *r = &a->ranges[i];

		if (seq < r->first)
			r->first = seq;
		if (seq > r->last)
			r->last = seq;
		/* seq may have bridged the gap to the next range. */
		if (i + 1 < a->n && a->ranges[i + 1].first <= r->last + 1) {
			r->last = a->ranges[i + 1].last;
			memmove(r + 1, r + 2, (a->n - i - 2) * sizeof(*r));
			a->n--;
		}
		return 0;
	}
	if (a->n == AGRI_ACK_RANGES_MAX)
		return -ENOSPC;
	memmove(&a->ranges[i + 1], &a->ranges[i], (a->n - i) * sizeof(a->ranges[0]));
	a->ranges[i].first = a->ranges[i].last = seq;
	a->n++;
	return 0;
}

int agri_seq_set_reserve(struct agri_seq_set *s, size_t n)
{
	struct agri_seq_range *r;
	size_t cap;

	if (n <= s->cap)
		return 0;
	cap = s->cap ? s->cap * 2 : 4;
	while (cap < n)
		cap *= 2;
	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

int agri_seq_set_add(struct agri_seq_set *s, uint64_t seq)
{
	size_t lo = 0, hi = s->n;

	/* lo: the first range with last >= seq */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].last < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < s->n && s->r[lo].first <= seq)
		return 0;
	if (lo > 0 && s->r[lo - 1].last + 1 == seq) {
		s->r[lo - 1].last = seq;
		if (lo < s->n && s->r[lo].first == seq + 1) {
			s->r[lo - 1].last = s->r[lo].last;
			memmove(&s->r[lo], &s->r[lo + 1], (s->n - lo - 1) * sizeof(*s->r));
			s->n--;
		}
		return 1;
	}
	if (lo < s->n && s->r[lo].first == seq + 1) {
		s->r[lo].first = seq;
		return 1;
	}
	if (agri_seq_set_reserve(s, s->n + 1) < 0)
		return -ENOMEM;
	memmove(&s->r[lo + 1], &s->r[lo], (s->n - lo) * sizeof(*s->r));
	s->r[lo].first = s->r[lo].last = seq;
	s->n++;
	return 1;
}

void agri_seq_set_free(struct agri_seq_set *s)
{
	free(s->r);
	*s = (struct agri_seq_set){0};
}

/* ---- config ack and the config envelope ---- */

static const struct agri_cfg_field config_ack_fields[] = {
	F_VERSION,
	AGRI_FIELD_CUSTOM(struct agri_config_ack, "station", station, parse_station, true),
	AGRI_FIELD(struct agri_config_ack, "version", AGRI_CFG_INT, version, true,
		   AGRI_RANGE(0, SAFE_INT_MAX)),
	AGRI_FIELD_CUSTOM(struct agri_config_ack, "result", applied, parse_result, true),
	AGRI_FIELD_STR(struct agri_config_ack, "error", error, false),
	AGRI_FIELD_CUSTOM(struct agri_config_ack, "signed_by", signed_by, parse_ident, false),
};

int agri_config_ack_decode(const char *json, size_t len,
			   struct agri_config_ack *out, struct agri_err *err)
{
	struct agri_config_ack a = {0};

	return decode_simple(json, len, config_ack_fields,
			     AGRI_ARRAY_SIZE(config_ack_fields), &a, out, sizeof(a), err);
}

int agri_config_ack_encode(const struct agri_config_ack *a, char *buf,
			   size_t len)
{
	struct agri_buf w;

	if (!a)
		return -EINVAL;
	w_begin(&w, buf, len, a->station);
	w_check(&w, a->version >= 0 && str_fits(a->error, sizeof(a->error)));
	w_key(&w, "version");
	w_uint(&w, (uint64_t)a->version);
	agri_buf_puts(&w, a->applied ? ",\"result\":\"applied\"" : ",\"result\":\"rejected\"");
	if (!w.err && a->error[0]) {
		w_key(&w, "error");
		agri_buf_json_str(&w, a->error);
	}
	if (!w.err && a->signed_by[0]) {
		w_check(&w, agri_ident_valid(a->signed_by));
		w_key(&w, "signed_by");
		agri_buf_json_str(&w, a->signed_by);
	}
	return w_end(&w, MSG_MAX_BYTES);
}

int agri_config_version(const char *json, size_t len, int64_t *version,
			struct agri_err *err)
{
	static const struct agri_cfg_field fields[] = {
		{ .key = "version", .type = AGRI_CFG_INT, .required = true,
		  .min = 1, .max = SAFE_INT_MAX },
	};
	int64_t v = 0;
	cJSON *root = NULL;
	int ret;

	if (!version)
		return -EINVAL;
	ret = doc_parse(json, len, MSG_MAX_BYTES, &root, err);
	if (ret)
		return ret;
	if (agri_cfg_read(root, "", fields, 1, &v, true, err))
		ret = -EBADMSG;
	else
		*version = v;
	cJSON_Delete(root);
	return ret;
}

/* ---- alerts ---- */

static const struct agri_cfg_field alert_fields[] = {
	F_VERSION,
	AGRI_FIELD_STR(struct agri_alert, "id", id, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "rule", rule, parse_rule, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "station", station, parse_station, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "sensor", sensor, parse_ident, false),
	AGRI_FIELD_CUSTOM(struct agri_alert, "metric", metric, parse_ident, false),
	AGRI_FIELD_CUSTOM(struct agri_alert, "severity", severity, parse_severity, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "state", state, parse_alert_state, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "value", value, parse_num_or_null, false),
	AGRI_FIELD_CUSTOM(struct agri_alert, "threshold", threshold, parse_num_or_null, false),
	AGRI_FIELD_CUSTOM(struct agri_alert, "raised_at", raised_at_ms, parse_time, true),
	AGRI_FIELD_CUSTOM(struct agri_alert, "updated_at", updated_at_ms, parse_time, true),
	AGRI_FIELD_STR(struct agri_alert, "message", message, true),
};

/* True when a->id is "<rule>/<station>[/<sensor>]". */
static bool alert_id_matches(const struct agri_alert *a)
{
	char id[sizeof(a->id)];
	int n = snprintf(id, sizeof(id), "%s/%s%s%s", a->rule, a->station,
			 a->sensor[0] ? "/" : "", a->sensor);

	return n > 0 && (size_t)n < sizeof(id) && !strcmp(id, a->id);
}

int agri_alert_decode(const char *json, size_t len, struct agri_alert *out,
		      struct agri_err *err)
{
	struct agri_alert a = {.value = NAN, .threshold = NAN};
	cJSON *root = NULL;
	int ret;

	if (!out)
		return -EINVAL;
	ret = doc_parse(json, len, MSG_MAX_BYTES, &root, err);
	if (ret)
		return ret;
	if (agri_cfg_read(root, "", alert_fields, AGRI_ARRAY_SIZE(alert_fields), &a,
			  false, err)) {
		ret = -EBADMSG;
		goto out;
	}
	if (!alert_id_matches(&a)) {
		agri_err_set(err, "id", "must be \"<rule>/<station>[/<sensor>]\"");
		ret = -EBADMSG;
		goto out;
	}
	a.has_value = !isnan(a.value);
	a.has_threshold = !isnan(a.threshold);
	if (!a.has_value)
		a.value = 0;
	if (!a.has_threshold)
		a.threshold = 0;
	*out = a;
out:
	cJSON_Delete(root);
	return ret;
}

static void w_opt_num(struct agri_buf *w, const char *key, bool has, double d)
{
	w_key(w, key);
	if (has)
		agri_buf_json_num(w, d);
	else
		agri_buf_puts(w, "null");
}

int agri_alert_encode(const struct agri_alert *a, char *buf, size_t len)
{
	struct agri_buf w;

	if (!a)
		return -EINVAL;
	w_open(&w, buf, len);
	w_check(&w, str_fits(a->id, sizeof(a->id)) && agri_rule_id_valid(a->rule) &&
		agri_station_id_valid(a->station) &&
		(!a->sensor[0] || agri_ident_valid(a->sensor)) &&
		(!a->metric[0] || agri_ident_valid(a->metric)) &&
		name_index(severities, AGRI_ARRAY_SIZE(severities), a->severity) >= 0 &&
		agri_alert_state_name(a->state) &&
		str_fits(a->message, sizeof(a->message)));
	if (!w.err)
		w_check(&w, alert_id_matches(a));
	agri_buf_puts(&w, "{\"v\":1,\"id\":");
	agri_buf_json_str(&w, a->id);
	w_key(&w, "rule");
	agri_buf_json_str(&w, a->rule);
	w_key(&w, "station");
	agri_buf_json_str(&w, a->station);
	if (a->sensor[0]) {
		w_key(&w, "sensor");
		agri_buf_json_str(&w, a->sensor);
	}
	if (a->metric[0]) {
		w_key(&w, "metric");
		agri_buf_json_str(&w, a->metric);
	}
	w_key(&w, "severity");
	agri_buf_json_str(&w, a->severity);
	w_key(&w, "state");
	agri_buf_json_str(&w, agri_alert_state_name(a->state));
	w_opt_num(&w, "value", a->has_value, a->value);
	w_opt_num(&w, "threshold", a->has_threshold, a->threshold);
	w_key(&w, "raised_at");
	agri_buf_json_time(&w, a->raised_at_ms);
	w_key(&w, "updated_at");
	agri_buf_json_time(&w, a->updated_at_ms);
	w_key(&w, "message");
	agri_buf_json_str(&w, a->message);
	return w_end(&w, MSG_MAX_BYTES);
}
