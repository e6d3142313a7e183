/*
 * The hubs of a province (see hubs.h): the registry behind GET
 * /api/v1/hubs and the dashboard's hubs panel.
 *
 * "Behind by" is a proxy, said as such in docs/dashboard.md: mosquitto
 * does not publish a bridge session's queue, so each hub says, per
 * station-facing URL, the newest reading it has stored from the stations
 * on that URL; a hub whose newest for a URL is older than another's is
 * behind by the difference (in reading time), which is what the bridge's
 * queue (or its own backlog) still holds for it.
 */
#include "core/hubs.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "core/ingest.h"

#define LOG "hubs"
#define URL_SLOTS (2 * HUBS_URLS_MAX) /* stations may name more than hubs say */
#define TIME_MAX_MS 4102444800000LL /* 2100-01-01: a time past it is not one */

struct station {
	char name[AGRI_ID_MAX + 1];
	int url;           /* a slot of urls[], -1: on no hub (offline) */
	int64_t newest_ms; /* the newest reading stored here (its ts) */
};

struct hubs {
	const struct gateway_config *cfg;
	struct ingest_hook hook;
	pthread_mutex_t mu;
	struct hub_status hub[HUBS_MAX];
	size_t n_hub;
	struct {
		char url[HUBS_URL_MAX];
		int refs; /* stations on it; 0: free */
	} urls[URL_SLOTS];
	struct station *st; /* sorted by name */
	size_t n_st, cap_st;
	struct log_complaint refused;
};

/* --- parsing (untrusted) ------------------------------------------------- */

static bool id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

int hubs_topic(const char *prefix, const char *topic, size_t topic_len, char *id)
{
	size_t pl = strlen(prefix), n;

	if (topic_len < pl + 5 + 7 || strncmp(topic, prefix, pl) != 0 ||
	    strncmp(topic + pl, "/hub/", 5) != 0 ||
	    strncmp(topic + topic_len - 7, "/status", 7) != 0)
		return 0;
	n = topic_len - pl - 5 - 7;
	if (n == 0 || n > GW_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!id_char(topic[pl + 5 + i]))
			return -1; /* a '/' too: not one level */
	memcpy(id, topic + pl + 5, n);
	id[n] = '\0';
	return 1;
}

/* A station-facing URL we keep: an MQTT scheme, printable ASCII, no
 * quote or backslash (it is shown on a page and sent in JSON). */
static bool url_ok(const char *u)
{
	static const char *const schemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://",
					      "ws://", "wss://"};
	size_t n = strlen(u);
	bool scheme = false;

	if (n == 0 || n >= HUBS_URL_MAX)
		return false;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(schemes); i++)
		scheme |= strncmp(u, schemes[i], strlen(schemes[i])) == 0;
	for (const char *p = u; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' ||
		    *p == '\\' || *p == '<' || *p == '>')
			return false;
	return scheme;
}

/* The same hub? tcp:// is mqtt://, ssl:// is mqtts://; the host's case
 * does not matter. */
static const char *url_rest(const char *u, int *kind)
{
	static const struct {
		const char *s;
		int kind;
	} k[] = {{"tcp://", 1}, {"mqtt://", 1}, {"ssl://", 2}, {"mqtts://", 2},
		 {"ws://", 3}, {"wss://", 4}};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(k); i++)
		if (strncmp(u, k[i].s, strlen(k[i].s)) == 0) {
			*kind = k[i].kind;
			return u + strlen(k[i].s);
		}
	*kind = 0;
	return u;
}

static bool url_same(const char *a, const char *b)
{
	int ka, kb;
	const char *ra = url_rest(a, &ka), *rb = url_rest(b, &kb);

	return a[0] && b[0] && ka == kb && strcasecmp(ra, rb) == 0;
}

static void copy_str(char *dst, size_t len, const cJSON *it)
{
	size_t i = 0;

	if (cJSON_IsString(it))
		for (const char *p = it->valuestring; *p && i + 1 < len; p++)
			dst[i++] = id_char(*p) ? *p : '?';
	dst[i] = '\0';
}

static int refuse(char *why, size_t why_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	if (why && why_len) {
		va_start(ap, fmt);
		vsnprintf(why, why_len, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

int hubs_parse(const char *id, const void *payload, size_t len, struct hub_status *out,
	       char *why, size_t why_len)
{
	struct agri_err e = {0};
	cJSON *o = NULL;
	const cJSON *it, *ha, *m;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (len > HUBS_PAYLOAD_MAX)
		return refuse(why, why_len, "%s: over 8 KiB", "payload");
	if (agri_json_parse(payload, len, HUBS_PAYLOAD_MAX, 8, &o, &e) < 0 || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return refuse(why, why_len, "%s: not a JSON object", "payload");
	}
	it = cJSON_GetObjectItemCaseSensitive(o, "v");
	if (!cJSON_IsNumber(it) || it->valuedouble != 1) {
		rc = refuse(why, why_len, "%s: expected 1", "v");
		goto out;
	}
	it = cJSON_GetObjectItemCaseSensitive(o, "hub");
	if (!cJSON_IsString(it) || strcmp(it->valuestring, id) != 0) {
		rc = refuse(why, why_len, "hub: not the topic's \"%s\"", id);
		goto out;
	}
	snprintf(out->id, sizeof(out->id), "%s", id);
	it = cJSON_GetObjectItemCaseSensitive(o, "state");
	if (!cJSON_IsString(it) ||
	    (strcmp(it->valuestring, "online") && strcmp(it->valuestring, "offline"))) {
		rc = refuse(why, why_len, "%s: expected \"online\" or \"offline\"", "state");
		goto out;
	}
	out->online = strcmp(it->valuestring, "online") == 0;
	it = cJSON_GetObjectItemCaseSensitive(o, "ts");
	if (!cJSON_IsString(it) || agri_time_parse(it->valuestring, &out->ts_ms) < 0 ||
	    out->ts_ms <= 0 || out->ts_ms >= TIME_MAX_MS) {
		rc = refuse(why, why_len, "%s: expected an RFC 3339 time", "ts");
		goto out;
	}
	/* The rest is optional: a malformed field is left out. */
	copy_str(out->fw, sizeof(out->fw), cJSON_GetObjectItemCaseSensitive(o, "fw"));
	out->db_writable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "db_writable"));
	ha = cJSON_GetObjectItemCaseSensitive(o, "ha");
	it = cJSON_GetObjectItemCaseSensitive(ha, "hub_id");
	if (cJSON_IsString(it) && agri_ident_valid(it->valuestring))
		snprintf(out->hub_id, sizeof(out->hub_id), "%s", it->valuestring);
	it = cJSON_GetObjectItemCaseSensitive(o, "station_url");
	if (cJSON_IsString(it) && url_ok(it->valuestring))
		snprintf(out->station_url, sizeof(out->station_url), "%s", it->valuestring);
	it = cJSON_GetObjectItemCaseSensitive(o, "newest_reading");
	if (!cJSON_IsString(it) || agri_time_parse(it->valuestring, &out->newest_ms) < 0 ||
	    out->newest_ms < 0 || out->newest_ms >= TIME_MAX_MS)
		out->newest_ms = 0;
	m = cJSON_GetObjectItemCaseSensitive(o, "newest_by_url");
	for (it = cJSON_IsObject(m) ? m->child : NULL; it; it = it->next) {
		struct hub_newest *n = &out->newest[out->n_newest];
		bool dup = false;

		if (out->n_newest == HUBS_URLS_MAX)
			break;
		if (!it->string || !url_ok(it->string) || !cJSON_IsString(it) ||
		    agri_time_parse(it->valuestring, &n->ms) < 0 || n->ms <= 0 ||
		    n->ms >= TIME_MAX_MS)
			continue;
		for (size_t k = 0; k < out->n_newest; k++)
			dup |= url_same(out->newest[k].url, it->string);
		if (dup)
			continue;
		snprintf(n->url, sizeof(n->url), "%s", it->string);
		out->n_newest++;
	}
out:
	cJSON_Delete(o);
	return rc;
}

/* --- the registry ---------------------------------------------------------- */

static int station_ingest_status(void *ctx, struct store *st, const struct agri_status *s,
				 int64_t received_ms);
static int station_ingest_telemetry(void *ctx, struct store *st, const struct agri_telemetry *t,
				    const bool *fresh, int64_t received_ms);

struct hubs *hubs_new(const struct gateway_config *cfg)
{
	struct hubs *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->cfg = cfg;
	pthread_mutex_init(&h->mu, NULL);
	h->hook = (struct ingest_hook){.name = "hubs", .ctx = h,
				       .on_status = station_ingest_status,
				       .on_telemetry = station_ingest_telemetry};
	return h;
}

void hubs_free(struct hubs *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->mu);
	free(h->st);
	free(h);
}

const struct ingest_hook *hubs_hook(struct hubs *h)
{
	return &h->hook;
}

int hubs_offer(struct hubs *h, const char *topic, size_t topic_len, const void *payload,
	       size_t len)
{
	char id[GW_NAME_MAX + 1], why[160];
	struct hub_status *s;
	size_t i;
	int k = hubs_topic(h->cfg->broker.topic_prefix, topic, topic_len, id);

	if (k == 0)
		return 0;
	if (k < 0) {
		log_complain(&h->refused, LOG_LVL_WARN, LOG, "hub status refused: the topic's"
			     " client id is not 1-%d of [A-Za-z0-9_.-]", GW_NAME_MAX);
		return 1;
	}
	s = malloc(sizeof(*s));
	if (!s)
		return 1;
	if (len && hubs_parse(id, payload, len, s, why, sizeof(why)) < 0) {
		log_complain(&h->refused, LOG_LVL_WARN, LOG, "hub status of %s refused: %s", id,
			     why);
		free(s);
		return 1;
	}
	pthread_mutex_lock(&h->mu);
	for (i = 0; i < h->n_hub && strcmp(h->hub[i].id, id) != 0; i++)
		;
	if (!len) { /* the retained status deleted: the hub is gone */
		if (i < h->n_hub)
			h->hub[i] = h->hub[--h->n_hub];
	} else if (i < h->n_hub) {
		if (s->ts_ms >= h->hub[i].ts_ms || s->online != h->hub[i].online)
			h->hub[i] = *s;
	} else if (h->n_hub < HUBS_MAX) {
		h->hub[h->n_hub++] = *s;
	} else {
		/* full: the hub heard longest ago makes room for a newer one */
		size_t old = 0;

		for (size_t j = 1; j < h->n_hub; j++)
			if (h->hub[j].ts_ms < h->hub[old].ts_ms)
				old = j;
		if (h->hub[old].ts_ms < s->ts_ms)
			h->hub[old] = *s;
	}
	pthread_mutex_unlock(&h->mu);
	free(s);
	return 1;
}

/* Under mu: the station's row, created (in name order) when asked. */
static struct station *station_find(struct hubs *h, const char *name, bool create)
{
	size_t lo = 0, hi = h->n_st;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(h->st[mid].name, name);

		if (c == 0)
			return &h->st[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!create || h->n_st == HUBS_STATIONS_MAX || strlen(name) > AGRI_ID_MAX)
		return NULL;
	if (h->n_st == h->cap_st) {
		size_t cap = h->cap_st ? h->cap_st * 2 : 64;
		struct station *p = realloc(h->st, cap * sizeof(*p));

		if (!p)
			return NULL;
		h->st = p;
		h->cap_st = cap;
	}
	memmove(&h->st[lo + 1], &h->st[lo], (h->n_st - lo) * sizeof(h->st[0]));
	h->n_st++;
	memset(&h->st[lo], 0, sizeof(h->st[0]));
	snprintf(h->st[lo].name, sizeof(h->st[lo].name), "%s", name);
	h->st[lo].url = -1;
	return &h->st[lo];
}

/* Under mu: the slot of url, taken when new (a free one: no station on
 * it), or -1 when all are taken. */
static int url_slot(struct hubs *h, const char *url)
{
	int free_slot = -1;

	for (int i = 0; i < (int)URL_SLOTS; i++) {
		if (h->urls[i].refs > 0 && url_same(h->urls[i].url, url))
			return i;
		if (h->urls[i].refs == 0 && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0)
		snprintf(h->urls[free_slot].url, sizeof(h->urls[0].url), "%s", url);
	return free_slot;
}

void hubs_station_status(struct hubs *h, const char *station, bool online, const char *url)
{
	struct station *s;

	pthread_mutex_lock(&h->mu);
	if ((s = station_find(h, station, true)) != NULL) {
		int slot = online && url && url_ok(url) ? url_slot(h, url) : -1;

		if (s->url >= 0)
			h->urls[s->url].refs--;
		if (slot >= 0)
			h->urls[slot].refs++;
		s->url = slot;
	}
	pthread_mutex_unlock(&h->mu);
}

void hubs_station_reading(struct hubs *h, const char *station, int64_t newest_ms)
{
	struct station *s;

	pthread_mutex_lock(&h->mu);
	if ((s = station_find(h, station, true)) != NULL && newest_ms > s->newest_ms)
		s->newest_ms = newest_ms;
	pthread_mutex_unlock(&h->mu);
}

static int station_ingest_status(void *ctx, struct store *st, const struct agri_status *s,
				 int64_t received_ms)
{
	(void)st;
	(void)received_ms;
	hubs_station_status(ctx, s->station, s->online, s->broker);
	return 0;
}

static int station_ingest_telemetry(void *ctx, struct store *st, const struct agri_telemetry *t,
				    const bool *fresh, int64_t received_ms)
{
	int64_t newest = 0;

	(void)st;
	(void)fresh;
	(void)received_ms;
	for (size_t i = 0; i < t->n; i++)
		if (t->readings[i].ts_ms > newest)
			newest = t->readings[i].ts_ms;
	/* not past our own clock: a station's fast clock must not make every
	 * other hub look behind (the clock window dead-letters worse) */
	if (newest > received_ms + 60000)
		newest = received_ms + 60000;
	if (newest > 0)
		hubs_station_reading(ctx, t->station, newest);
	return 0;
}

/* --- what this hub says, and the page's document ----------------------------- */

/* Under mu: the newest reading from the stations on slot (0: none). */
static int64_t slot_newest(const struct hubs *h, int slot)
{
	int64_t n = 0;

	for (size_t i = 0; i < h->n_st; i++)
		if (h->st[i].url == slot && h->st[i].newest_ms > n)
			n = h->st[i].newest_ms;
	return n;
}

int hubs_status_fields(struct hubs *h, char *buf, size_t len)
{
	struct agri_buf b;
	int64_t all = 0;
	size_t n = 0;

	agri_buf_init(&b, buf, len);
	if (h->cfg->broker.station_url[0]) {
		agri_buf_puts(&b, ",\"station_url\":");
		agri_buf_json_text(&b, h->cfg->broker.station_url);
	}
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < h->n_st; i++)
		if (h->st[i].newest_ms > all)
			all = h->st[i].newest_ms;
	if (all) {
		agri_buf_puts(&b, ",\"newest_reading\":");
		agri_buf_json_time(&b, all);
	}
	agri_buf_puts(&b, ",\"newest_by_url\":{");
	for (int i = 0; i < (int)URL_SLOTS && n < HUBS_URLS_MAX; i++) {
		int64_t t = h->urls[i].refs > 0 ? slot_newest(h, i) : 0;

		if (!t)
			continue;
		agri_buf_puts(&b, n++ ? "," : "");
		agri_buf_json_text(&b, h->urls[i].url);
		agri_buf_puts(&b, ":");
		agri_buf_json_time(&b, t);
	}
	pthread_mutex_unlock(&h->mu);
	agri_buf_puts(&b, "}");
	return agri_buf_end(&b) < 0 ? -ENOSPC : (int)b.len;
}

/* Under mu: how far hub s is behind the newest any up hub has, over the
 * URLs it reports (ms); -1 when it reports none. */
static int64_t behind_ms(const struct hubs *h, const struct hub_status *s, const bool *up)
{
	int64_t worst = -1;

	for (size_t u = 0; u < s->n_newest; u++) {
		int64_t best = s->newest[u].ms;

		for (size_t j = 0; j < h->n_hub; j++)
			for (size_t v = 0; up[j] && v < h->hub[j].n_newest; v++)
				if (url_same(h->hub[j].newest[v].url, s->newest[u].url) &&
				    h->hub[j].newest[v].ms > best)
					best = h->hub[j].newest[v].ms;
		if (best - s->newest[u].ms > worst)
			worst = best - s->newest[u].ms;
	}
	return worst;
}

/* Under mu: the stations on url slots matching url ("" : on no hub), as
 * a JSON array of names. */
static size_t put_stations(struct agri_buf *b, const struct hubs *h, const char *url)
{
	size_t n = 0;

	agri_buf_puts(b, "[");
	for (size_t i = 0; i < h->n_st; i++) {
		int u = h->st[i].url;

		if (url[0] ? u < 0 || !url_same(h->urls[u].url, url) : u >= 0)
			continue;
		agri_buf_puts(b, n++ ? "," : "");
		agri_buf_json_text(b, h->st[i].name);
	}
	agri_buf_puts(b, "]");
	return n;
}

int hubs_json(struct hubs *h, int64_t now_ms, char *buf, size_t len)
{
	struct agri_buf b;
	bool up[HUBS_MAX], seen[URL_SLOTS] = {false};
	size_t order[HUBS_MAX], n_other = 0;

	agri_buf_init(&b, buf, len);
	pthread_mutex_lock(&h->mu);
	/* by client id: the page's order never moves */
	for (size_t i = 0; i < h->n_hub; i++) {
		size_t j = i;

		up[i] = h->hub[i].online && now_ms - h->hub[i].ts_ms <= HUBS_SILENT_MS;
		while (j > 0 && strcmp(h->hub[order[j - 1]].id, h->hub[i].id) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	agri_buf_puts(&b, "{\"hubs\":[");
	for (size_t k = 0; k < h->n_hub; k++) {
		const struct hub_status *s = &h->hub[order[k]];
		int64_t behind = behind_ms(h, s, up);

		agri_buf_puts(&b, k ? ",{\"id\":" : "{\"id\":");
		agri_buf_json_text(&b, s->id);
		agri_buf_puts(&b, ",\"hub_id\":");
		agri_buf_json_text(&b, s->hub_id[0] ? s->hub_id : NULL);
		agri_buf_printf(&b, ",\"self\":%s,\"state\":\"%s\",\"why\":",
				strcmp(s->id, h->cfg->broker.client_id) ? "false" : "true",
				up[order[k]] ? "up" : "offline");
		agri_buf_puts(&b, up[order[k]] ? "null" : s->online ? "\"not heard\"" : "\"offline\"");
		agri_buf_puts(&b, ",\"last_heard\":");
		agri_buf_json_time(&b, s->ts_ms);
		agri_buf_puts(&b, ",\"fw\":");
		agri_buf_json_text(&b, s->fw[0] ? s->fw : NULL);
		agri_buf_printf(&b, ",\"db_writable\":%s,\"station_url\":",
				s->db_writable ? "true" : "false");
		agri_buf_json_text(&b, s->station_url[0] ? s->station_url : NULL);
		agri_buf_puts(&b, ",\"stations\":");
		if (s->station_url[0]) {
			put_stations(&b, h, s->station_url);
			for (int u = 0; u < (int)URL_SLOTS; u++)
				seen[u] |= h->urls[u].refs > 0 &&
					   url_same(h->urls[u].url, s->station_url);
		} else {
			agri_buf_puts(&b, "null");
		}
		agri_buf_puts(&b, ",\"newest_reading\":");
		if (s->newest_ms)
			agri_buf_json_time(&b, s->newest_ms);
		else
			agri_buf_puts(&b, "null");
		agri_buf_puts(&b, ",\"behind_s\":");
		if (behind >= 0)
			agri_buf_printf(&b, "%lld", (long long)(behind / 1000));
		else
			agri_buf_puts(&b, "null");
		agri_buf_puts(&b, "}");
	}
	/* stations on a URL no hub says is its own */
	agri_buf_puts(&b, "],\"other_urls\":[");
	for (int u = 0; u < (int)URL_SLOTS; u++) {
		if (h->urls[u].refs <= 0 || seen[u])
			continue;
		for (int v = u + 1; v < (int)URL_SLOTS; v++)
			seen[v] |= h->urls[v].refs > 0 && url_same(h->urls[v].url, h->urls[u].url);
		agri_buf_puts(&b, n_other++ ? ",{\"url\":" : "{\"url\":");
		agri_buf_json_text(&b, h->urls[u].url);
		agri_buf_puts(&b, ",\"stations\":");
		put_stations(&b, h, h->urls[u].url);
		agri_buf_puts(&b, "}");
	}
	agri_buf_puts(&b, "],\"on_no_hub\":");
	put_stations(&b, h, "");
	pthread_mutex_unlock(&h->mu);
	agri_buf_printf(&b, ",\"silent_s\":%d,\"in_step_s\":%d,\"now\":", HUBS_SILENT_MS / 1000,
			HUBS_IN_STEP_MS / 1000);
	agri_buf_json_time(&b, now_ms - now_ms % 60000); /* a poll's ETag moves once a minute */
	agri_buf_puts(&b, "}\n");
	return agri_buf_end(&b) < 0 ? -ENOSPC : (int)b.len;
}
