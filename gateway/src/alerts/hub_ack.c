/* Acknowledgements shared between hubs: the message and its verdict (see
 * hub_ack.h). */
#include "alerts/hub_ack.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/time.h"
#include "agri/topic.h"

int hub_ack_topic(char *buf, size_t len, const char *prefix, const char *hub)
{
	int n = snprintf(buf, len, "%s/hub/%s/ack", prefix, hub);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

bool hub_ack_topic_match(const char *topic, const char *prefix, char *hub, size_t len)
{
	size_t pl = strlen(prefix), tl = strlen(topic), hl;

	if (tl < pl + 5 + 1 + 4 || strncmp(topic, prefix, pl) != 0 ||
	    strncmp(topic + pl, "/hub/", 5) != 0 || strcmp(topic + tl - 4, "/ack") != 0)
		return false;
	hl = tl - 4 - (pl + 5);
	if (hl == 0 || memchr(topic + pl + 5, '/', hl))
		return false;
	snprintf(hub, len, "%.*s", (int)hl, topic + pl + 5);
	return true;
}

int hub_ack_episode(const struct hub_ack *a, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s@%" PRId64, a->id, a->raised_at_ms);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int hub_ack_encode(const struct hub_ack *a, char *buf, size_t len)
{
	char ep[HUB_ACK_ID_MAX + 24];
	struct agri_buf b;

	if (hub_ack_episode(a, ep, sizeof(ep)) < 0)
		return -ENOSPC;
	agri_buf_init(&b, buf, len);
	agri_buf_puts(&b, "{\"v\":1,\"hub\":");
	agri_buf_json_text(&b, a->hub);
	agri_buf_puts(&b, ",\"id\":");
	agri_buf_json_text(&b, a->id);
	agri_buf_puts(&b, ",\"episode\":");
	agri_buf_json_text(&b, ep);
	agri_buf_puts(&b, ",\"severity\":");
	agri_buf_json_text(&b, a->severity);
	agri_buf_puts(&b, ",\"by\":");
	agri_buf_json_text(&b, a->by);
	agri_buf_puts(&b, ",\"at\":");
	agri_buf_json_time(&b, a->at_ms);
	agri_buf_puts(&b, "}");
	return agri_buf_end(&b);
}

static bool hub_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > HUB_ACK_HUB_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_-.", *s)))
			return false;
	return true;
}

/* <rule>/<station>[/<sensor>], as the API's ack route checks it. */
static bool alert_id_valid(const char *id)
{
	char buf[HUB_ACK_ID_MAX], *parts[3], *save = NULL, *tok;
	int n = 0;

	if (strlen(id) >= sizeof(buf) || id[0] == '/' || strstr(id, "//") ||
	    id[strlen(id) - 1] == '/')
		return false;
	snprintf(buf, sizeof(buf), "%s", id);
	for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == 3)
			return false;
		parts[n++] = tok;
	}
	return n >= 2 && agri_rule_id_valid(parts[0]) && agri_station_id_valid(parts[1]) &&
	       (n == 2 || agri_ident_valid(parts[2]));
}

static int severity_rank(const char *s)
{
	static const char *const names[] = {"info", "warning", "alarm", "critical"};

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

static int refuse(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/* A string member of 1..max bytes into dst, or NULL. */
static const char *str_of(const cJSON *doc, const char *key, size_t max)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, key);

	if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > max)
		return NULL;
	return it->valuestring;
}

int hub_ack_decode(const char *payload, size_t len, const char *topic_hub,
		   struct hub_ack *out, char *why, size_t why_len)
{
	struct agri_err err = {0};
	cJSON *doc = NULL;
	const cJSON *v;
	const char *s, *at;
	char *end;
	size_t idl;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > HUB_ACK_MSG_MAX)
		return refuse(why, why_len, "hub ack: %zu bytes, at most %d", len, HUB_ACK_MSG_MAX);
	if (agri_json_parse(payload, len, HUB_ACK_MSG_MAX, 2, &doc, &err) < 0 ||
	    !cJSON_IsObject(doc)) {
		char e[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];

		agri_err_format(&err, e, sizeof(e));
		rc = refuse(why, why_len, "hub ack: not a JSON object%s%s", e[0] ? ": " : "", e);
		goto out;
	}
	v = cJSON_GetObjectItemCaseSensitive(doc, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != 1) {
		rc = refuse(why, why_len, "hub ack: v: expected 1");
		goto out;
	}
	if (!(s = str_of(doc, "hub", HUB_ACK_HUB_MAX)) || !hub_valid(s) ||
	    strcmp(s, topic_hub) != 0) {
		rc = refuse(why, why_len, "hub ack: hub: expected \"%s\", the topic's", topic_hub);
		goto out;
	}
	snprintf(out->hub, sizeof(out->hub), "%s", s);
	if (!(s = str_of(doc, "id", HUB_ACK_ID_MAX - 1)) || !alert_id_valid(s)) {
		rc = refuse(why, why_len, "hub ack: id: expected <rule>/<station>[/<sensor>]");
		goto out;
	}
	snprintf(out->id, sizeof(out->id), "%s", s);
	idl = strlen(out->id);
	/* "<id>@<ms>": the id's own, then digits only */
	if (!(s = str_of(doc, "episode", HUB_ACK_ID_MAX + 24)) || strncmp(s, out->id, idl) != 0 ||
	    s[idl] != '@' || s[idl + 1] < '0' || s[idl + 1] > '9' || strlen(s + idl + 1) > 16) {
		rc = refuse(why, why_len, "hub ack: episode: expected \"%s@<raised_at ms>\"", out->id);
		goto out;
	}
	errno = 0;
	out->raised_at_ms = strtoll(s + idl + 1, &end, 10);
	if (errno || *end || out->raised_at_ms <= 0) {
		rc = refuse(why, why_len, "hub ack: episode: expected \"%s@<raised_at ms>\"", out->id);
		goto out;
	}
	if (!(s = str_of(doc, "severity", sizeof(out->severity) - 1)) || severity_rank(s) < 0) {
		rc = refuse(why, why_len, "hub ack: severity: expected info, warning, alarm or critical");
		goto out;
	}
	snprintf(out->severity, sizeof(out->severity), "%s", s);
	if (!(s = str_of(doc, "by", HUB_ACK_BY_MAX))) {
		rc = refuse(why, why_len, "hub ack: by: expected a name of 1 to %d bytes",
			    HUB_ACK_BY_MAX);
		goto out;
	}
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			rc = refuse(why, why_len, "hub ack: by: has control characters");
			goto out;
		}
	snprintf(out->by, sizeof(out->by), "%s", s);
	if (!(at = str_of(doc, "at", 40)) || agri_time_parse(at, &out->at_ms) < 0) {
		rc = refuse(why, why_len, "hub ack: at: expected an RFC 3339 time");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(doc);
	return rc;
}

const char *hub_ack_verdict_name(enum hub_ack_verdict v)
{
	static const char *const names[] = {"applied", "duplicate", "stale", "worse", "over",
					    "waiting", "unknown"};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

enum hub_ack_verdict hub_ack_judge(const struct hub_ack *a, bool covered,
				   const struct agri_alert *cur, bool known)
{
	if (!covered)
		return HUB_ACK_UNKNOWN;
	if (cur && cur->raised_at_ms == a->raised_at_ms) {
		if (cur->state == AGRI_ALERT_ACKNOWLEDGED)
			return HUB_ACK_DUPLICATE;
		/* Rising re-activates an acknowledged alert (docs/alerts.md):
		 * an acknowledgement of the milder news does not cover it. */
		if (severity_rank(cur->severity) > severity_rank(a->severity))
			return HUB_ACK_WORSE;
		return HUB_ACK_APPLY;
	}
	if (cur && cur->raised_at_ms > a->raised_at_ms)
		return HUB_ACK_STALE;
	/* No open alert, or an older one (this hub is behind): an episode it
	 * has had is over here; one it has never had may be on its way. */
	return known ? HUB_ACK_OVER : HUB_ACK_WAIT;
}
