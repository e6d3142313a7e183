/*
 * The MQTT topic scheme of docs/interfaces.md §2: station ids, prefixes, and the
 * build/parse pair every component uses so that no topic string is ever
 * assembled by hand elsewhere. Parsing is strict: a topic either is one
 * of the scheme's, with every id valid, or it is rejected.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/topic.h"

#define PREFIX_MAX 64

static const char *const reserved[] = {"alerts", "forecast", "advisory"};

static const char *const suffixes[] = {
	[AGRI_TOPIC_TELEMETRY] = "telemetry",
	[AGRI_TOPIC_STATUS] = "status",
	[AGRI_TOPIC_ACK] = "ack",
	[AGRI_TOPIC_CONFIG] = "config",
	[AGRI_TOPIC_CONFIG_ACK] = "config/ack",
};

/* True when s[0..n) matches [A-Za-z0-9_-]{1,max}. */
static bool ident_valid_n(const char *s, size_t n, size_t max)
{
	if (n < 1 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static bool station_valid_n(const char *s, size_t n)
{
	if (!ident_valid_n(s, n, AGRI_ID_MAX))
		return false;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(reserved); i++)
		if (strlen(reserved[i]) == n && !memcmp(s, reserved[i], n))
			return false;
	return true;
}

bool agri_ident_valid(const char *id)
{
	return id && ident_valid_n(id, strnlen(id, AGRI_ID_MAX + 1), AGRI_ID_MAX);
}

bool agri_snake_valid(const char *s, size_t max)
{
	size_t n = s ? strnlen(s, max + 1) : 0;

	if (n == 0 || n > max || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '_'))
			return false;
	return true;
}

bool agri_station_id_valid(const char *id)
{
	return id && station_valid_n(id, strnlen(id, AGRI_ID_MAX + 1));
}

bool agri_rule_id_valid(const char *id)
{
	return id && ident_valid_n(id, strnlen(id, AGRI_RULE_ID_MAX + 1),
				   AGRI_RULE_ID_MAX);
}

bool agri_topic_prefix_valid(const char *prefix)
{
	size_t n;

	if (!prefix)
		return false;
	n = strnlen(prefix, PREFIX_MAX + 1);
	if (n < 1 || n > PREFIX_MAX || prefix[0] == '/' || prefix[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (prefix[i] == '+' || prefix[i] == '#' ||
		    (prefix[i] == '/' && prefix[i + 1] == '/'))
			return false;
	return true;
}

/* snprintf into buf: the length, or -ENOSPC. */
static int put(size_t len, int n)
{
	if (n < 0)
		return -EINVAL;
	return (size_t)n >= len ? -ENOSPC : n;
}

int agri_topic_build(char *buf, size_t len, const char *prefix,
		     enum agri_topic_kind kind, const char *station)
{
	const char *suffix;

	if (!buf || !agri_topic_prefix_valid(prefix) ||
	    !agri_station_id_valid(station))
		return -EINVAL;
	if (kind == AGRI_TOPIC_ADVISORY)
		return put(len, snprintf(buf, len, "%s/advisory/%s",
					      prefix, station));
	if ((unsigned)kind >= AGRI_ARRAY_SIZE(suffixes))
		return -EINVAL;
	suffix = suffixes[kind];
	return put(len, snprintf(buf, len, "%s/%s/%s", prefix, station,
				      suffix));
}

int agri_topic_build_alert(char *buf, size_t len, const char *prefix,
			   const char *station, const char *rule,
			   const char *sensor)
{
	if (!buf || !agri_topic_prefix_valid(prefix) ||
	    !agri_station_id_valid(station) || !agri_rule_id_valid(rule))
		return -EINVAL;
	if (sensor && sensor[0]) {
		if (!agri_ident_valid(sensor))
			return -EINVAL;
		return put(len, snprintf(buf, len, "%s/alerts/%s/%s/%s",
					      prefix, station, rule, sensor));
	}
	return put(len, snprintf(buf, len, "%s/alerts/%s/%s", prefix,
				      station, rule));
}

int agri_topic_build_forecast(char *buf, size_t len, const char *prefix,
			      const char *station, const char *metric)
{
	if (!buf || !agri_topic_prefix_valid(prefix) ||
	    !agri_station_id_valid(station) || !agri_ident_valid(metric))
		return -EINVAL;
	return put(len, snprintf(buf, len, "%s/forecast/%s/%s", prefix,
				      station, metric));
}

/* Splits s into at most max '/'-separated levels; returns the count, or
 * -1 when there are more than max. */
static int split(const char *s, const char **lv, size_t *lvn, int max)
{
	int n = 0;

	for (;;) {
		const char *slash = strchr(s, '/');

		if (n == max)
			return -1;
		lv[n] = s;
		lvn[n] = slash ? (size_t)(slash - s) : strlen(s);
		n++;
		if (!slash)
			return n;
		s = slash + 1;
	}
}

static bool level_is(const char *lv, size_t n, const char *word)
{
	return strlen(word) == n && !memcmp(lv, word, n);
}

static void copy(char *dst, const char *src, size_t n)
{
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int agri_topic_parse(const char *topic, const char *prefix,
		     struct agri_topic *out)
{
	struct agri_topic t;
	const char *lv[5];
	size_t lvn[5], plen;
	int n;

	if (!topic || !out || !agri_topic_prefix_valid(prefix) ||
	    strnlen(topic, AGRI_TOPIC_MAX + 1) > AGRI_TOPIC_MAX)
		return -EINVAL;
	plen = strlen(prefix);
	if (strncmp(topic, prefix, plen) || topic[plen] != '/')
		return -EINVAL;
	n = split(topic + plen + 1, lv, lvn, 5);
	if (n < 2)
		return -EINVAL;
	memset(&t, 0, sizeof(t));
	if (level_is(lv[0], lvn[0], "alerts")) {
		if (n < 3 || n > 4 || !station_valid_n(lv[1], lvn[1]) ||
		    !ident_valid_n(lv[2], lvn[2], AGRI_RULE_ID_MAX) ||
		    (n == 4 && !ident_valid_n(lv[3], lvn[3], AGRI_ID_MAX)))
			return -EINVAL;
		t.kind = AGRI_TOPIC_ALERT;
		copy(t.rule, lv[2], lvn[2]);
		if (n == 4)
			copy(t.sensor, lv[3], lvn[3]);
	} else if (level_is(lv[0], lvn[0], "forecast")) {
		if (n != 3 || !station_valid_n(lv[1], lvn[1]) ||
		    !ident_valid_n(lv[2], lvn[2], AGRI_ID_MAX))
			return -EINVAL;
		t.kind = AGRI_TOPIC_FORECAST;
		copy(t.metric, lv[2], lvn[2]);
	} else if (level_is(lv[0], lvn[0], "advisory")) {
		if (n != 2 || !station_valid_n(lv[1], lvn[1]))
			return -EINVAL;
		t.kind = AGRI_TOPIC_ADVISORY;
	} else {
		if (!station_valid_n(lv[0], lvn[0]))
			return -EINVAL;
		if (n == 2 && level_is(lv[1], lvn[1], "telemetry"))
			t.kind = AGRI_TOPIC_TELEMETRY;
		else if (n == 2 && level_is(lv[1], lvn[1], "status"))
			t.kind = AGRI_TOPIC_STATUS;
		else if (n == 2 && level_is(lv[1], lvn[1], "ack"))
			t.kind = AGRI_TOPIC_ACK;
		else if (n == 2 && level_is(lv[1], lvn[1], "config"))
			t.kind = AGRI_TOPIC_CONFIG;
		else if (n == 3 && level_is(lv[1], lvn[1], "config") &&
			 level_is(lv[2], lvn[2], "ack"))
			t.kind = AGRI_TOPIC_CONFIG_ACK;
		else
			return -EINVAL;
		copy(t.station, lv[0], lvn[0]);
		*out = t;
		return 0;
	}
	copy(t.station, lv[1], lvn[1]);
	*out = t;
	return 0;
}
