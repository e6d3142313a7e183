/*
 * libFuzzer harness for agri/topic.h. The input is "prefix\ntopic" (or
 * just a topic under the default prefix). A topic that parses must build
 * back to exactly itself; an id that validates must build a topic that
 * parses back to it. Seeds: tests/fuzz/corpus/topic/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agri/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static void round_trip(const char *prefix, const char *topic)
{
	char buf[AGRI_TOPIC_MAX + 1];
	struct agri_topic t;
	int n;

	if (agri_topic_parse(topic, prefix, &t))
		return;
	check(agri_station_id_valid(t.station));
	if (t.kind == AGRI_TOPIC_ALERT)
		n = agri_topic_build_alert(buf, sizeof(buf), prefix, t.station, t.rule, t.sensor);
	else if (t.kind == AGRI_TOPIC_FORECAST)
		n = agri_topic_build_forecast(buf, sizeof(buf), prefix, t.station, t.metric);
	else
		n = agri_topic_build(buf, sizeof(buf), prefix, t.kind, t.station);
	check(n > 0 && (size_t)n == strlen(topic) && !strcmp(buf, topic));
}

static void ids(const char *prefix, const char *id)
{
	char buf[AGRI_TOPIC_MAX + 1];
	struct agri_topic t;

	if (agri_station_id_valid(id)) {
		check(agri_ident_valid(id));
		check(agri_topic_build(buf, sizeof(buf), prefix, AGRI_TOPIC_CONFIG_ACK, id) > 0);
		check(agri_topic_parse(buf, prefix, &t) == 0);
		check(t.kind == AGRI_TOPIC_CONFIG_ACK && !strcmp(t.station, id));
	}
	if (agri_rule_id_valid(id)) {
		check(agri_topic_build_alert(buf, sizeof(buf), prefix, "S", id, NULL) > 0);
		check(agri_topic_parse(buf, prefix, &t) == 0 && !strcmp(t.rule, id));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *nl;
	const char *prefix = AGRI_TOPIC_PREFIX_DEFAULT, *topic;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	topic = s;
	nl = strchr(s, '\n');
	if (nl) {
		*nl = '\0';
		prefix = s;
		topic = nl + 1;
	}
	if (agri_topic_prefix_valid(prefix)) {
		round_trip(prefix, topic);
		ids(prefix, topic);
	}
	free(s);
	return 0;
}
