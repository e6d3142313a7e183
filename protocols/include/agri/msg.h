/*
 * Payload codecs (docs/interfaces.md §2, §3, §5): telemetry batches, station
 * status, end-to-end acks, config acks, the config envelope, and alerts.
 *
 * Decoders parse with cJSON and validate strictly: every error names the
 * JSON path and the reason ("readings[3].value: expected a number").
 * Encoders write canonical JSON (fixed key order, no spaces, shortest
 * round-tripping numbers) into a caller buffer, so decode(encode(x))
 * re-encodes byte for byte. Nothing here allocates beyond cJSON's own parse
 * tree, which is freed before return. Pure: no I/O, no globals.
 */
#ifndef AGRI_MSG_H
#define AGRI_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/err.h"
#include "agri/topic.h"

#define AGRI_MSG_VERSION 1
#define AGRI_BATCH_MAX_BYTES (256 * 1024)
#define AGRI_BATCH_MAX_READINGS 1000
#define AGRI_UNIT_MAX 15
#define AGRI_JSON_DEPTH_MAX 16 /* deeper documents are rejected */

enum agri_quality {
	AGRI_Q_OK = 0,
	AGRI_Q_SUSPECT,
	AGRI_Q_ERROR, /* read failed; value is null */
	AGRI_Q_MAINT,
};

/* "ok", "suspect", "error", "maint"; NULL for an out-of-range value. */
const char *agri_quality_name(enum agri_quality q);
/* Returns 0 and writes *q, or -EINVAL. */
int agri_quality_parse(const char *s, enum agri_quality *q);

/*
 * Why a reading is "suspect" (the optional "why" member, only with q
 * "suspect"): a short token [a-z][a-z0-9_]{0,15}. The station sends these;
 * a consumer must accept any well-formed token (newer stations may add
 * reasons) and treat unknown ones as "suspect, reason unknown".
 */
#define AGRI_WHY_MAX 16
#define AGRI_WHY_RANGE "range"           /* outside the register's min/max */
#define AGRI_WHY_FULL_SCALE "full_scale" /* pinned at the device's full scale */
#define AGRI_WHY_STUCK "stuck"           /* the same value for too long */
#define AGRI_WHY_DRY "dry"               /* the probe is out of the water */
#define AGRI_WHY_MAP "map"               /* the device does not match its profile */

/* True when s is a well-formed reason token (not ""). */
bool agri_why_valid(const char *s);

struct agri_reading {
	int64_t ts_ms;
	char sensor[AGRI_ID_MAX + 1];
	char metric[AGRI_ID_MAX + 1];
	char unit[AGRI_UNIT_MAX + 1];
	double value;   /* meaningful when has_value */
	bool has_value; /* false <=> JSON null (required for q "error") */
	enum agri_quality q;
	char why[AGRI_WHY_MAX + 1]; /* "" or a reason (q "suspect" only) */
};

/*
 * A telemetry batch. The readings array is owned by the caller: set
 * `readings` to an array of `cap` elements before decoding
 * (AGRI_BATCH_MAX_READINGS holds any valid batch).
 */
struct agri_telemetry {
	char station[AGRI_ID_MAX + 1];
	uint64_t seq;
	int64_t sent_at_ms;
	struct agri_reading *readings;
	size_t n;   /* valid readings stored in readings[] */
	size_t cap; /* capacity of readings[] */
	/* Filled by the decoder: */
	size_t n_invalid;  /* readings skipped as invalid */
	bool has_station;  /* station could be read (even if the batch failed) */
	bool has_seq;      /* seq could be read (even if the batch failed) */
};

/*
 * Decodes a telemetry batch. Outcomes:
 *   0        the batch is valid; every reading in readings[0..n).
 *   1        the envelope is valid but n_invalid > 0 readings were
 *            skipped; *err describes the first of them. The valid
 *            readings are in readings[0..n) (keep them: interfaces.md §4).
 *   -EBADMSG the batch is invalid as a whole (bad JSON, version, envelope,
 *            limits); *err says why; has_station/has_seq tell whether
 *            station/seq could still be read (for the end-to-end ack).
 *   -E2BIG   more than AGRI_BATCH_MAX_BYTES (checked before parsing).
 *   -ENOSPC  a valid envelope with more readings than out->cap.
 * Validation: v == 1; station valid id; seq integer >= 0 (< 2^53); sent_at
 * RFC 3339; readings array of 1..1000 objects, each with ts, sensor, metric,
 * value (finite number, or null iff q == "error"), unit (string, <= 15
 * bytes), q, and optionally why (a reason token, only when q is
 * "suspect"); no unknown keys anywhere; depth <= 16.
 */
int agri_telemetry_decode(const char *json, size_t len,
			  struct agri_telemetry *out, struct agri_err *err);

/* Encodes t (readings[0..n)) canonically, NUL-terminated. Returns the
 * length (excluding NUL), or -ENOSPC, or -EINVAL when t holds something
 * the decoder would refuse (including a result over 256 KiB). The other
 * encoders below return the same way. */
int agri_telemetry_encode(const struct agri_telemetry *t, char *buf,
			  size_t len);

#define AGRI_STATUS_ERROR_MAX 159 /* bytes of a health reason ("last_error") */

/* Per-sensor health in a status message. */
struct agri_sensor_health {
	char name[AGRI_ID_MAX + 1];
	char profile[AGRI_ID_MAX + 1];
	uint64_t reads_ok;
	uint64_t reads_failed;
	uint64_t timeouts, crc_errors, exceptions;
	int64_t last_ok_ms;    /* "last_ok": the last good read; 0 when absent */
	int64_t last_error_ms; /* "last_error_at"; 0 when absent */
	/* "last_error": the reason of the last failed poll, for people
	 * ("timeout: slave 3 does not answer; other sensors on lan do"); ""
	 * when absent. */
	char last_error[AGRI_STATUS_ERROR_MAX + 1];
	bool maintenance;      /* "maintenance": this sensor is in maintenance */
};

/* Per-bus health: whether the link is open, and why not. */
struct agri_bus_health {
	char name[AGRI_ID_MAX + 1];
	bool open;             /* "state": "open" | "down" */
	int64_t since_ms;      /* "since": the state's start; 0 when absent */
	char error[AGRI_STATUS_ERROR_MAX + 1]; /* "error": why it is down; "" */
};

#define AGRI_STATUS_SENSORS_MAX 32
#define AGRI_STATUS_BUSES_MAX 8

struct agri_status {
	char station[AGRI_ID_MAX + 1];
	bool online;                   /* "state": "online" | "offline" */
	char fw[AGRI_ID_MAX + 1];      /* "" when absent */
	char board[AGRI_ID_MAX + 1];   /* "" when absent */
	char broker[256];              /* the hub's URL the station is on
					  (broker.urls); "" when absent */
	int64_t config_version;        /* 0 when absent */
	int64_t ts_ms;                 /* "ts"; 0 when absent */
	uint64_t uptime_s;
	uint64_t spool_depth;          /* batches waiting for an ack */
	uint64_t spool_dropped;        /* batches dropped because the spool was full */
	uint64_t last_seq;
	bool maintenance;
	char config_signed_by[AGRI_ID_MAX + 1]; /* technician who signed the running
						   config; "" for the local file */
	int64_t probation_version;     /* "probation": a pushed config on trial; 0 */
	/* "config_failed": {"version", "at", "error"}: the last pushed config
	 * that failed its probation and was rolled back; version 0: none. */
	int64_t config_failed_version, config_failed_ms;
	char config_failed_error[256];
	int64_t spool_oldest_ms;       /* "spool_oldest": when the oldest unacked
					  batch was sealed; 0 when absent */
	/* Over-the-air updates (docs/update.md): the booted slot's system
	 * version and bootname, and "update": {id, version, state, error} of
	 * the last update command ("" / 0 when absent). */
	char system[65];
	char slot[9];
	int64_t update_id;
	char update_version[65];
	char update_state[16];
	char update_error[256];
	size_t n_buses;
	struct agri_bus_health buses[AGRI_STATUS_BUSES_MAX];
	size_t n_sensors;
	struct agri_sensor_health sensors[AGRI_STATUS_SENSORS_MAX];
};

/*
 * Status: required v, station, state. Optional: fw, board, broker, config_version,
 * config_signed_by, probation, config_failed ({version, at, error}), ts,
 * uptime_s, spool_depth, spool_oldest,
 * spool_dropped, last_seq, maintenance, buses ([{name, state, since,
 * error}], at most 8), sensors
 * ([{name, profile, reads_ok, reads_failed, timeouts, crc_errors,
 * exceptions, last_ok, last_error, last_error_at, maintenance}]).
 * Unknown keys are accepted and ignored (health counters may
 * grow; a gateway must not dead-letter a newer station's status).
 * The Last Will is the minimal form {"v":1,"station":"X","state":"offline"}.
 * Returns 0 or -EBADMSG/-E2BIG with *err. The encoder writes optional keys
 * only when non-zero/non-empty (so the Last Will is canonical), and every
 * counter of each sensor. Messages other than telemetry are at most 64 KiB.
 */
int agri_status_decode(const char *json, size_t len, struct agri_status *out,
		       struct agri_err *err);
int agri_status_encode(const struct agri_status *s, char *buf, size_t len);

/* End-to-end ack: {"v":1,"station":..,"seqs":[[first,last],...]}, 1..256
 * ranges, first <= last < 2^53, in any order (agri_ack_add sorts). */
#define AGRI_ACK_RANGES_MAX 256
struct agri_seq_range {
	uint64_t first, last; /* inclusive, first <= last */
};
struct agri_ack {
	char station[AGRI_ID_MAX + 1];
	size_t n;
	struct agri_seq_range ranges[AGRI_ACK_RANGES_MAX];
};
int agri_ack_decode(const char *json, size_t len, struct agri_ack *out,
		    struct agri_err *err);
int agri_ack_encode(const struct agri_ack *a, char *buf, size_t len);
/* Adds seq to a, merging with an adjacent/overlapping range (ranges kept
 * sorted). Returns 0, or -ENOSPC when a new range would not fit. */
int agri_ack_add(struct agri_ack *a, uint64_t seq);

/* A growable set of seqs kept as sorted, disjoint, non-adjacent ranges
 * (the gateway's received seqs per station, its pending acks). Zeroed =
 * empty; agri_seq_set_free() releases it. */
struct agri_seq_set {
	struct agri_seq_range *r;
	size_t n, cap;
};
/* Adds seq. Returns 1 if it was new, 0 if already there, -ENOMEM. */
int agri_seq_set_add(struct agri_seq_set *s, uint64_t seq);
/* Room for n ranges (to append sorted ranges directly). 0 or -ENOMEM. */
int agri_seq_set_reserve(struct agri_seq_set *s, size_t n);
void agri_seq_set_free(struct agri_seq_set *s);

/* Config ack: {"v":1,"station":..,"version":N,"result":"applied"|"rejected","error":".."} */
struct agri_config_ack {
	char station[AGRI_ID_MAX + 1];
	int64_t version;
	bool applied;
	char error[256]; /* "" when applied; encoded only when non-empty */
	char signed_by[AGRI_ID_MAX + 1]; /* the technician whose signature
					    verified; encoded only when non-empty */
};
int agri_config_ack_decode(const char *json, size_t len,
			   struct agri_config_ack *out, struct agri_err *err);
int agri_config_ack_encode(const struct agri_config_ack *a, char *buf,
			   size_t len);

/*
 * The config envelope: the retained desired config is a station.json
 * document with an integer "version" >= 1. This checks only that the
 * payload is a JSON object (<= 64 KiB, depth <= 16) with such a version;
 * the station validates the rest with its own config parser.
 */
int agri_config_version(const char *json, size_t len, int64_t *version,
			struct agri_err *err);

/* Alerts (docs/interfaces.md §5). */
enum agri_alert_state {
	AGRI_ALERT_ACTIVE = 0,
	AGRI_ALERT_ACKNOWLEDGED,
	AGRI_ALERT_CLEARED,
};
const char *agri_alert_state_name(enum agri_alert_state s);
int agri_alert_state_parse(const char *s, enum agri_alert_state *out);

struct agri_alert {
	char id[160];  /* "<rule>/<station>[/<sensor>]" */
	char rule[64 + 1];
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1]; /* "" when the alert is per station */
	char metric[AGRI_ID_MAX + 1]; /* "" when none (no_data) */
	char severity[16];            /* "info", "warning", "alarm", "critical" */
	enum agri_alert_state state;
	double value;                 /* meaningful when has_value */
	bool has_value;
	double threshold;
	bool has_threshold;
	int64_t raised_at_ms;
	int64_t updated_at_ms;
	char message[512];            /* UTF-8 */
};
/* Optional keys are written as null (value/threshold) or omitted (sensor,
 * metric when ""). The id must be "<rule>/<station>[/<sensor>]" of the
 * alert's own fields; message is required. */
int agri_alert_decode(const char *json, size_t len, struct agri_alert *out,
		      struct agri_err *err);
int agri_alert_encode(const struct agri_alert *a, char *buf, size_t len);

/* Appends s JSON-escaped (with quotes) to buf at *pos and keeps buf
 * NUL-terminated; -ENOSPC if it does not fit, -EINVAL if s is not valid
 * UTF-8 (*pos unchanged on failure). The plain-buffer form of
 * agri_buf_json_str() (agri/buf.h), which the encoders use. */
int agri_json_put_str(char *buf, size_t len, size_t *pos, const char *s);
/* Appends the shortest decimal that round-trips d ("%.15g", else "%.17g").
 * d must be finite: -EINVAL otherwise. As agri_buf_json_num(). */
int agri_json_put_num(char *buf, size_t len, size_t *pos, double d);

#endif
