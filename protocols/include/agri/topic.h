/*
 * MQTT topic scheme (docs/interfaces.md §2): build, parse, validate station ids.
 *
 *   <prefix>/<station>/telemetry|status|ack|config|config/ack
 *   <prefix>/alerts/<station>/<rule_id>[/<sensor>]
 *   <prefix>/forecast/<station>/<metric>
 *   <prefix>/advisory/<station>
 *
 * <station> matches [A-Za-z0-9_-]{1,32}; "alerts", "forecast" and
 * "advisory" are reserved. The prefix defaults to "agri/v1".
 */
#ifndef AGRI_TOPIC_H
#define AGRI_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define AGRI_TOPIC_PREFIX_DEFAULT "agri/v1"
#define AGRI_ID_MAX 32     /* station, sensor, rule id, metric: max chars */
#define AGRI_TOPIC_MAX 256 /* longest topic we build or accept */
#define AGRI_RULE_ID_MAX 64 /* alert rule id: max chars */

enum agri_topic_kind {
	AGRI_TOPIC_TELEMETRY,
	AGRI_TOPIC_STATUS,
	AGRI_TOPIC_ACK,
	AGRI_TOPIC_CONFIG,
	AGRI_TOPIC_CONFIG_ACK,
	AGRI_TOPIC_ALERT,
	AGRI_TOPIC_FORECAST,
	AGRI_TOPIC_ADVISORY,
};

struct agri_topic {
	enum agri_topic_kind kind;
	char station[AGRI_ID_MAX + 1];
	char rule[AGRI_RULE_ID_MAX + 1];  /* ALERT only */
	char sensor[AGRI_ID_MAX + 1];     /* ALERT (may be ""), */
	char metric[AGRI_ID_MAX + 1];     /* FORECAST only */
};

/* True when id matches [A-Za-z0-9_-]{1,32} and is not a reserved word. */
bool agri_station_id_valid(const char *id);

/* True when id matches [A-Za-z0-9_-]{1,32} (sensor names, metrics). */
bool agri_ident_valid(const char *id);

/* True when id matches [A-Za-z0-9_-]{1,64} (alert rule ids). */
bool agri_rule_id_valid(const char *id);

/* True when s matches [a-z][a-z0-9_]* in 1..max characters (snake_case
 * tokens: a profile's metric names, a suspect reading's reason). */
bool agri_snake_valid(const char *s, size_t max);

/* True when a topic prefix is 1..64 chars, no wildcards, no leading or
 * trailing '/', no empty levels. */
bool agri_topic_prefix_valid(const char *prefix);

/*
 * Builds the topic of a station-level kind (TELEMETRY, STATUS, ACK, CONFIG,
 * CONFIG_ACK, ADVISORY). Returns the length written (excluding NUL), or
 * -EINVAL (bad prefix/station/kind) or -ENOSPC (buffer too small).
 */
int agri_topic_build(char *buf, size_t len, const char *prefix,
		     enum agri_topic_kind kind, const char *station);

/* <prefix>/alerts/<station>/<rule>[/<sensor>]; sensor may be NULL or "". */
int agri_topic_build_alert(char *buf, size_t len, const char *prefix,
			   const char *station, const char *rule,
			   const char *sensor);

/* <prefix>/forecast/<station>/<metric> */
int agri_topic_build_forecast(char *buf, size_t len, const char *prefix,
			      const char *station, const char *metric);

/*
 * Parses topic under prefix into *out. Returns 0, or -EINVAL when the
 * topic is not one of the scheme's (wrong prefix, bad station id, unknown
 * suffix, extra levels). *out is written only on success.
 */
int agri_topic_parse(const char *topic, const char *prefix,
		     struct agri_topic *out);

#endif
