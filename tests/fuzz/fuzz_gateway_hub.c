/*
 * libFuzzer harness for the messages one hub's gateway reads from the
 * other's over the MQTT bridge (docs/ha.md), all hostile input:
 * acknowledgements shared between hubs (alerts/hub_ack.h), catch-up
 * digests and details (core/catchup.h) and hub statuses (core/hubs.h).
 *
 * The first byte picks the parser (its low two bits: 0 ack, 1 digest, 2
 * detail, 3 hub status) and a few knobs (the topic prefix, a decoder's
 * cap, the comparison's out_cap, ...). The rest is "<topic>\0<payload>",
 * or a payload alone on the default topic, for acks and statuses, and
 * "<theirs>\0<ours>" (ours optional) for digests and details. Checked,
 * whatever the bytes (anything else aborts):
 *
 * - a refused message returns -EBADMSG and says why, on one line (no
 *   control character: a reason is logged and dead-lettered; an ack's
 *   may quote the topic's level, so when that has none); one over its
 *   size limit is always refused;
 * - hub_ack_topic_match() and hubs_topic() say what the scheme
 *   <prefix>/hub/<one level>/ack|status says, and copy that level (an
 *   ack topic's level over 64 bytes comes back over 64, so that
 *   hub_ack_decode() refuses it, as hub_acks.c's caller relies on); the
 *   level rebuilds the topic;
 * - an accepted ack is the topic's hub's, with an id
 *   <rule>/<station>[/<sensor>], an episode after 0, one of the four
 *   severities, a "by" of 1-63 bytes without control characters and a
 *   time in range; it encodes within the 1 KiB a peer takes, decodes again
 *   to the same fields and encodes again to the same bytes; and
 *   hub_ack_judge() never applies or dismisses it as a duplicate against
 *   another episode, never against a later one (stale), never when the
 *   rule is unknown, never over worse news;
 * - an accepted digest or detail has at most cap entries, valid hub, peer
 *   and station ids, from a whole hour, to after it and at most 721 hours
 *   later, counts below 2^53, entries sorted and unique (by station; a
 *   detail's by hour, each whole and within [from, to)); it encodes (and
 *   one byte short says -ENOSPC), decodes again to the same fields,
 *   encodes again to the same bytes, and is never taken for the other
 *   kind;
 * - cu_digest_lacking() of theirs against ours (the input's second part,
 *   or theirs altered, both ways round) gives at most out_cap indexes,
 *   increasing, below theirs' n: exactly the first out_cap of what a
 *   brute-force comparison by the rule in catchup_digest.c finds;
 * - an accepted hub status has the topic's id, a ts in (1970, 2100), and
 *   keeps only well-formed optional fields (fw of [A-Za-z0-9_.-?], a valid
 *   hub_id, MQTT URLs without quotes or spaces, at most 8 newest_by_url,
 *   no two the same hub); written back as gateway.c writes a status it
 *   parses to the same, and refusing gives the same answer without a why
 *   buffer.
 *
 * Every input is copied to the heap at its exact size, so ASan sees any
 * over-read; a digest decoded with a small cap (0, 1 or 3), and the
 * comparison's indexes, get arrays exactly that long.
 * Seeds: tests/fuzz/corpus/gateway_hub/.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/msg.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "alerts/hub_ack.h"
#include "core/catchup.h"
#include "core/hubs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TIME_MS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z (agri/time.h) */
#define HUBS_TIME_MAX 4102444800000LL /* 2100-01-01: hubs.c's bound */
#define NUM_MAX 9007199254740991LL    /* 2^53 - 1 */
#define DETAILS_ASKED 32              /* catchup.c's on_digest: DETAILS_MAX * 4 */
#define DEFAULT_HUB "agri-gateway-a"

static const char *const prefixes[4] = {"agri/v1", "agri", "mekong/delta/agri/v1", "p"};
static const char *const severities[4] = {"info", "warning", "alarm", "critical"};

static void check(int cond)
{
	if (!cond)
		abort();
}

/* No control character: a reason is logged and dead-lettered as one line
 * (agri/err.h: keys from the input become '?'). */
static bool one_line(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* A refusal says why, on one line. */
static void check_refused(int rc, const char *why)
{
	check(rc == -EBADMSG);
	check(why[0] != '\0' && one_line(why));
}

/* b[0..n) on the heap, exactly n bytes, or n + 1 with a NUL (a C string). */
static char *copy(const uint8_t *b, size_t n, bool nul)
{
	size_t len = n + (nul ? 1 : 0);
	char *p = malloc(len ? len : 1);

	if (!p)
		abort();
	if (n)
		memcpy(p, b, n);
	if (nul)
		p[n] = '\0';
	return p;
}

/* "<a>\0<b>": b only when there is a NUL. */
struct parts {
	const uint8_t *a, *b;
	size_t alen, blen;
	bool two;
};

static struct parts split(const uint8_t *d, size_t n)
{
	const uint8_t *z = n ? memchr(d, 0, n) : NULL;
	struct parts p = {.a = d, .alen = n};

	if (z) {
		p.alen = (size_t)(z - d);
		p.b = z + 1;
		p.blen = n - p.alen - 1;
		p.two = true;
	}
	return p;
}

static bool level_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

static bool level_ok(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!level_char(s[i]))
			return false;
	return true;
}

static int rank(const char *sev)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(sev, severities[i]))
			return i;
	return -1;
}

/* --- acknowledgements ---------------------------------------------------- */

/* <rule>/<station>[/<sensor>], said independently of hub_ack.c. */
static bool alert_id_ok(const char *id)
{
	char buf[HUB_ACK_ID_MAX], *part[3];
	size_t n = 1;

	if (strlen(id) >= sizeof(buf))
		return false;
	memcpy(buf, id, strlen(id) + 1);
	part[0] = buf;
	for (char *s = buf; *s; s++)
		if (*s == '/') {
			if (n == 3)
				return false;
			*s = '\0';
			part[n++] = s + 1;
		}
	return n >= 2 && agri_rule_id_valid(part[0]) && agri_station_id_valid(part[1]) &&
	       (n == 2 || agri_ident_valid(part[2]));
}

static void check_judge(const struct hub_ack *a, uint8_t knob)
{
	static const int64_t delta[3] = {-1, 0, 1};
	struct agri_alert cur;

	memset(&cur, 0, sizeof(cur));
	snprintf(cur.id, sizeof(cur.id), "%s", a->id);
	snprintf(cur.severity, sizeof(cur.severity), "%s", severities[knob & 3]);
	for (int covered = 0; covered < 2; covered++)
		for (int known = 0; known < 2; known++) {
			enum hub_ack_verdict v = hub_ack_judge(a, covered, NULL, known);

			check(v == (!covered ? HUB_ACK_UNKNOWN : known ? HUB_ACK_OVER : HUB_ACK_WAIT));
			for (int d = 0; d < 3; d++)
				for (int st = AGRI_ALERT_ACTIVE; st <= AGRI_ALERT_ACKNOWLEDGED; st++) {
					cur.raised_at_ms = a->raised_at_ms + delta[d];
					cur.state = (enum agri_alert_state)st;
					v = hub_ack_judge(a, covered, &cur, known);
					check(strcmp(hub_ack_verdict_name(v), "?") != 0);
					if (!covered) {
						check(v == HUB_ACK_UNKNOWN);
						continue;
					}
					/* a later episode is never acknowledged */
					if (delta[d] > 0)
						check(v == HUB_ACK_STALE);
					/* applied, duplicate or worse: that episode only */
					if (v == HUB_ACK_APPLY || v == HUB_ACK_DUPLICATE ||
					    v == HUB_ACK_WORSE)
						check(delta[d] == 0);
					if (delta[d] == 0)
						check(v == (st == AGRI_ALERT_ACKNOWLEDGED ? HUB_ACK_DUPLICATE :
							    rank(cur.severity) > rank(a->severity) ?
							    HUB_ACK_WORSE : HUB_ACK_APPLY));
				}
		}
}

static void check_ack(const struct hub_ack *k, const char *topic_hub)
{
	size_t by = strlen(k->by);

	check(!strcmp(k->hub, topic_hub) && level_ok(k->hub, strlen(k->hub), HUB_ACK_HUB_MAX));
	check(alert_id_ok(k->id));
	check(k->raised_at_ms > 0 && k->raised_at_ms <= 9999999999999999LL);
	check(rank(k->severity) >= 0);
	check(by >= 1 && by <= HUB_ACK_BY_MAX);
	for (size_t i = 0; i < by; i++)
		check((unsigned char)k->by[i] >= 0x20 && k->by[i] != 0x7f);
	check(k->at_ms >= 0 && k->at_ms <= TIME_MS_MAX);
}

static bool ack_same(const struct hub_ack *a, const struct hub_ack *b)
{
	return !strcmp(a->hub, b->hub) && !strcmp(a->id, b->id) &&
	       a->raised_at_ms == b->raised_at_ms && !strcmp(a->severity, b->severity) &&
	       !strcmp(a->by, b->by) && a->at_ms == b->at_ms;
}

static void fuzz_ack(uint8_t sel, const uint8_t *rest, size_t size)
{
	const char *prefix = prefixes[(sel >> 2) & 3], *topic_hub = DEFAULT_HUB;
	struct parts p = split(rest, size);
	char hub[HUB_ACK_HUB_MAX + 2]; /* as wiring.c's: one more */
	char again[256], ep[HUB_ACK_ID_MAX + 24], why[256] = "";
	static char enc[2][HUB_ACK_MSG_MAX + 1];
	struct hub_ack k, k2;
	char *topic, *payload;
	const uint8_t *pay;
	size_t plen, pl = strlen(prefix), tl;
	bool want, match;
	int rc, n0, n1;

	if (p.two) {
		topic = copy(p.a, p.alen, true);
		pay = p.b;
		plen = p.blen;
	} else {
		topic = malloc(128);
		if (!topic)
			abort();
		check(hub_ack_topic(topic, 128, prefix, DEFAULT_HUB) > 0);
		pay = p.a;
		plen = p.alen;
	}
	tl = strlen(topic);

	/* <prefix>/hub/<one level>/ack */
	want = tl >= pl + 5 + 1 + 4 && !strncmp(topic, prefix, pl) &&
	       !strncmp(topic + pl, "/hub/", 5) && !strcmp(topic + tl - 4, "/ack") &&
	       !memchr(topic + pl + 5, '/', tl - 4 - pl - 5);
	memset(hub, 'x', sizeof(hub));
	match = hub_ack_topic_match(topic, prefix, hub, sizeof(hub));
	check(match == want);
	if (match) {
		size_t lv = tl - 4 - pl - 5, hl = strlen(hub);

		/* the level, or its first 65 bytes: never a valid hub */
		check(hl == (lv < sizeof(hub) ? lv : sizeof(hub) - 1));
		check(!memcmp(hub, topic + pl + 5, hl));
		if (lv <= HUB_ACK_HUB_MAX) {
			check(hub_ack_topic(again, sizeof(again), prefix, hub) == (int)tl);
			check(!strcmp(again, topic));
		}
		topic_hub = hub;
	}

	payload = copy(pay, plen, false);
	rc = hub_ack_decode(payload, plen, topic_hub, &k, why, sizeof(why));
	if (plen > HUB_ACK_MSG_MAX || strlen(topic_hub) > HUB_ACK_HUB_MAX)
		check(rc != 0);
	if (rc) {
		/* the reason may quote the topic's level, and the ingest logs
		 * the topic as it is anyway: one line when the topic is */
		check(rc == -EBADMSG && why[0]);
		check(one_line(why) || !one_line(topic_hub));
		goto out;
	}
	check_ack(&k, topic_hub);
	n0 = hub_ack_episode(&k, ep, sizeof(ep));
	check(n0 > 0 && !strncmp(ep, k.id, strlen(k.id)) && ep[strlen(k.id)] == '@');

	/* what this gateway would publish, its peer takes, byte for byte */
	n0 = hub_ack_encode(&k, enc[0], sizeof(enc[0]));
	check(n0 > 0 && n0 <= HUB_ACK_MSG_MAX);
	check(hub_ack_encode(&k, enc[1], (size_t)n0) < 0); /* no room for the NUL */
	why[0] = '\0';
	check(hub_ack_decode(enc[0], (size_t)n0, topic_hub, &k2, why, sizeof(why)) == 0);
	check(ack_same(&k, &k2));
	n1 = hub_ack_encode(&k2, enc[1], sizeof(enc[1]));
	check(n1 == n0 && !memcmp(enc[0], enc[1], (size_t)n0));
	check_judge(&k, (uint8_t)(sel >> 4));
out:
	free(payload);
	free(topic);
}

/* --- catch-up digests and details ---------------------------------------- */

static struct cu_entry theirs_e[CU_STATIONS_MAX], again_e[CU_STATIONS_MAX],
	ours_e[CU_STATIONS_MAX];
static size_t ref[CU_STATIONS_MAX];
static char denc[2][2 * CU_DIGEST_BYTES_MAX];

static void check_digest(const struct cu_digest *d, bool detail)
{
	check(d->n <= d->cap);
	check(agri_ident_valid(d->hub));
	if (detail)
		check(agri_ident_valid(d->peer) && agri_station_id_valid(d->station));
	else
		check(!d->peer[0] && !d->station[0]);
	check(d->from_ms >= 0 && d->from_ms % CU_HOUR_MS == 0 && d->to_ms > d->from_ms &&
	      d->to_ms <= NUM_MAX && d->to_ms - d->from_ms <= CU_HOURS_MAX * CU_HOUR_MS);
	for (size_t i = 0; i < d->n; i++) {
		const struct cu_entry *e = &d->e[i];

		check(e->n <= (uint64_t)NUM_MAX);
		if (detail) {
			check(e->hour_ms % CU_HOUR_MS == 0 && e->hour_ms >= d->from_ms &&
			      e->hour_ms < d->to_ms);
			check(i == 0 || e->hour_ms > d->e[i - 1].hour_ms);
		} else {
			check(agri_station_id_valid(e->key));
			check(i == 0 || strcmp(e->key, d->e[i - 1].key) > 0);
		}
	}
}

static bool digest_same(const struct cu_digest *a, const struct cu_digest *b, bool detail)
{
	if (strcmp(a->hub, b->hub) || strcmp(a->peer, b->peer) || strcmp(a->station, b->station) ||
	    a->from_ms != b->from_ms || a->to_ms != b->to_ms || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if ((detail ? a->e[i].hour_ms != b->e[i].hour_ms : strcmp(a->e[i].key, b->e[i].key)) ||
		    a->e[i].n != b->e[i].n || a->e[i].hash != b->e[i].hash)
			return false;
	return true;
}

/* The rule of cu_digest_lacking (catchup_digest.c), by brute force: each
 * entry of theirs whose (n, hash) differs from ours (absent: 0, 0), that
 * they hold something of, and, for an hour, not fewer than ours (where we
 * hold more, they ask us; a station is asked for whatever the difference). */
static size_t lacking_ref(const struct cu_digest *ours, const struct cu_digest *theirs,
			  bool by_hour)
{
	size_t k = 0;

	for (size_t j = 0; j < theirs->n; j++) {
		const struct cu_entry *t = &theirs->e[j];
		uint64_t on = 0, oh = 0;

		for (size_t i = 0; i < ours->n; i++)
			if (by_hour ? ours->e[i].hour_ms == t->hour_ms : !strcmp(ours->e[i].key, t->key)) {
				on = ours->e[i].n;
				oh = ours->e[i].hash;
				break;
			}
		if ((t->n == on && t->hash == oh) || t->n == 0 || (by_hour && t->n < on))
			continue;
		ref[k++] = j;
	}
	return k;
}

static void check_lacking(const struct cu_digest *ours, const struct cu_digest *theirs,
			  bool by_hour, uint8_t knob)
{
	size_t caps[4] = {0, 1, theirs->n, by_hour ? CU_HOURS_MAX : DETAILS_ASKED};
	size_t cap = caps[knob & 3], *out = malloc(cap ? cap * sizeof(*out) : 1);
	size_t n, want;

	if (!out)
		abort();
	n = cu_digest_lacking(ours, theirs, by_hour, out, cap);
	want = lacking_ref(ours, theirs, by_hour);
	check(n <= cap && n <= theirs->n);
	check(n == (want < cap ? want : cap));
	for (size_t i = 0; i < n; i++) {
		check(out[i] < theirs->n && (i == 0 || out[i] > out[i - 1]));
		check(out[i] == ref[i]);
	}
	free(out);
}

/* Ours from theirs: each entry kept, dropped, or kept with another count
 * or hash (still sorted, as a decoded digest is). */
static void alter(const struct cu_digest *theirs, struct cu_digest *ours, uint32_t seed)
{
	ours->n = 0;
	for (size_t j = 0; j < theirs->n; j++) {
		struct cu_entry *e = &ours->e[ours->n];

		seed = seed * 1103515245u + 12345u;
		*e = theirs->e[j];
		switch ((seed >> 16) % 6) {
		case 0:
			continue; /* we have none */
		case 1:
			e->n++;
			break;
		case 2:
			e->n = e->n ? e->n - 1 : 0;
			break;
		case 3:
			e->hash ^= 1;
			break;
		case 4:
			e->n = 0;
			e->hash = 0;
			break;
		default:
			break; /* the same */
		}
		ours->n++;
	}
}

static void fuzz_digest(uint8_t sel, bool detail, const uint8_t *rest, size_t size)
{
	static const size_t small[4] = {0, 0, 1, 3};
	size_t gw_cap = detail ? CU_HOURS_MAX : CU_STATIONS_MAX; /* as catchup.c sets it */
	int ci = (sel >> 2) & 3;
	struct parts p = split(rest, size);
	struct cu_digest d = {.e = theirs_e, .cap = ci ? small[ci] : gw_cap};
	struct cu_digest r = {.e = again_e, .cap = CU_STATIONS_MAX};
	struct cu_digest o = {.e = ours_e, .cap = CU_STATIONS_MAX};
	char why[256] = "";
	char *json = copy(p.a, p.alen, false), *second = NULL;
	int rc, n0, n1;

	if (ci) { /* exactly cap entries: ASan sees one more */
		d.e = malloc(d.cap ? d.cap * sizeof(*d.e) : 1);
		if (!d.e)
			abort();
	}
	/* what a decode must overwrite */
	snprintf(d.peer, sizeof(d.peer), "stale-peer");
	snprintf(d.station, sizeof(d.station), "stale-station");
	rc = cu_digest_decode(json, p.alen, detail, &d, why, sizeof(why));
	if (p.alen > CU_DIGEST_BYTES_MAX)
		check(rc != 0);
	if (rc) {
		check_refused(rc, why);
		goto out;
	}
	check_digest(&d, detail);

	n0 = cu_digest_encode(&d, denc[0], sizeof(denc[0]));
	check(n0 > 0);
	check(cu_digest_encode(&d, denc[1], (size_t)n0) == -ENOSPC); /* no room for the NUL */
	/* Canonical numbers may be longer than the input's (1e6): only an
	 * input near the limit may encode past it. */
	if (n0 > CU_DIGEST_BYTES_MAX) {
		check(p.alen > CU_DIGEST_BYTES_MAX / 2);
		goto out;
	}
	why[0] = '\0';
	check(cu_digest_decode(denc[0], (size_t)n0, detail, &r, why, sizeof(why)) == 0);
	check(digest_same(&d, &r, detail));
	n1 = cu_digest_encode(&r, denc[1], sizeof(denc[1]));
	check(n1 == n0 && !memcmp(denc[0], denc[1], (size_t)n0));
	/* a digest is no detail, a detail no digest */
	why[0] = '\0';
	rc = cu_digest_decode(denc[0], (size_t)n0, !detail, &r, why, sizeof(why));
	check_refused(rc, why);

	/* The comparison, against ours: the second part, else theirs altered;
	 * and the other way round. */
	rc = -EBADMSG;
	if (p.two) {
		second = copy(p.b, p.blen, false);
		rc = cu_digest_decode(second, p.blen, detail, &o, why, sizeof(why));
		if (rc == 0)
			check_digest(&o, detail);
	}
	if (rc)
		alter(&d, &o, (uint32_t)sel * 2654435761u + (uint32_t)size);
	check_lacking(&o, &d, detail, (uint8_t)(sel >> 4));
	check_lacking(&d, &o, detail, (uint8_t)(sel >> 6));
out:
	if (ci)
		free(d.e);
	free(second);
	free(json);
}

/* --- hub statuses -------------------------------------------------------- */

/* A URL hubs.c keeps (said independently): an MQTT scheme, printable
 * ASCII without quotes, backslashes or angle brackets. */
static const char *url_rest(const char *u, int *kind)
{
	static const struct {
		const char *s;
		int kind;
	} k[] = {{"tcp://", 1}, {"mqtt://", 1}, {"ssl://", 2}, {"mqtts://", 2},
		 {"ws://", 3}, {"wss://", 4}};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(k); i++)
		if (!strncmp(u, k[i].s, strlen(k[i].s))) {
			*kind = k[i].kind;
			return u + strlen(k[i].s);
		}
	*kind = 0;
	return u;
}

static bool url_kept(const char *u)
{
	int kind;

	if (!u[0] || strlen(u) >= HUBS_URL_MAX)
		return false;
	for (const char *c = u; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || strchr("\"\\<>", *c))
			return false;
	url_rest(u, &kind);
	return kind != 0;
}

static bool url_same(const char *a, const char *b)
{
	int ka, kb;
	const char *ra = url_rest(a, &ka), *rb = url_rest(b, &kb);

	if (ka != kb || strlen(ra) != strlen(rb))
		return false;
	for (size_t i = 0; ra[i]; i++) {
		char x = ra[i], y = rb[i];

		x = (char)(x >= 'A' && x <= 'Z' ? x + 32 : x);
		y = (char)(y >= 'A' && y <= 'Z' ? y + 32 : y);
		if (x != y)
			return false;
	}
	return true;
}

static void check_status(const struct hub_status *s, const char *id)
{
	check(!strcmp(s->id, id));
	check(s->ts_ms > 0 && s->ts_ms < HUBS_TIME_MAX);
	check(s->newest_ms >= 0 && s->newest_ms < HUBS_TIME_MAX);
	for (const char *c = s->fw; *c; c++)
		check(level_char(*c) || *c == '?');
	check(!s->hub_id[0] || agri_ident_valid(s->hub_id));
	check(!s->station_url[0] || url_kept(s->station_url));
	check(s->n_newest <= HUBS_URLS_MAX);
	for (size_t i = 0; i < s->n_newest; i++) {
		check(url_kept(s->newest[i].url));
		check(s->newest[i].ms > 0 && s->newest[i].ms < HUBS_TIME_MAX);
		for (size_t j = 0; j < i; j++)
			check(!url_same(s->newest[i].url, s->newest[j].url));
	}
}

/* What hubs_parse kept, written as gateway.c's hub_status() and
 * hubs_status_fields() write a status. */
static int status_write(const struct hub_status *s, char *buf, size_t len)
{
	struct agri_buf b;

	agri_buf_init(&b, buf, len);
	agri_buf_puts(&b, "{\"v\":1,\"hub\":");
	agri_buf_json_text(&b, s->id);
	agri_buf_puts(&b, s->online ? ",\"state\":\"online\"" : ",\"state\":\"offline\"");
	if (s->fw[0]) {
		agri_buf_puts(&b, ",\"fw\":");
		agri_buf_json_text(&b, s->fw);
	}
	agri_buf_puts(&b, ",\"ts\":");
	agri_buf_json_time(&b, s->ts_ms);
	agri_buf_puts(&b, s->db_writable ? ",\"db_writable\":true" : ",\"db_writable\":false");
	if (s->hub_id[0]) {
		agri_buf_puts(&b, ",\"ha\":{\"hub_id\":");
		agri_buf_json_text(&b, s->hub_id);
		agri_buf_puts(&b, ",\"priority\":1}");
	}
	if (s->station_url[0]) {
		agri_buf_puts(&b, ",\"station_url\":");
		agri_buf_json_text(&b, s->station_url);
	}
	if (s->newest_ms) {
		agri_buf_puts(&b, ",\"newest_reading\":");
		agri_buf_json_time(&b, s->newest_ms);
	}
	agri_buf_puts(&b, ",\"newest_by_url\":{");
	for (size_t i = 0; i < s->n_newest; i++) {
		agri_buf_puts(&b, i ? "," : "");
		agri_buf_json_text(&b, s->newest[i].url);
		agri_buf_puts(&b, ":");
		agri_buf_json_time(&b, s->newest[i].ms);
	}
	agri_buf_puts(&b, "}}");
	return agri_buf_end(&b);
}

static bool status_same(const struct hub_status *a, const struct hub_status *b)
{
	if (strcmp(a->id, b->id) || strcmp(a->hub_id, b->hub_id) || strcmp(a->fw, b->fw) ||
	    strcmp(a->station_url, b->station_url) || a->online != b->online ||
	    a->db_writable != b->db_writable || a->ts_ms != b->ts_ms ||
	    a->newest_ms != b->newest_ms || a->n_newest != b->n_newest)
		return false;
	for (size_t i = 0; i < a->n_newest; i++)
		if (strcmp(a->newest[i].url, b->newest[i].url) || a->newest[i].ms != b->newest[i].ms)
			return false;
	return true;
}

static void fuzz_hubs(uint8_t sel, const uint8_t *rest, size_t size)
{
	const char *prefix = prefixes[(sel >> 2) & 3], *pid = DEFAULT_HUB;
	struct parts p = split(rest, size);
	static struct hub_status s, s2;
	static char text[HUBS_PAYLOAD_MAX + 1];
	char id[GW_NAME_MAX + 1], why[256] = "";
	char *topic, *payload;
	const uint8_t *pay;
	size_t plen, tl, pl = strlen(prefix);
	int k, want = 0, rc, n;

	if (p.two) {
		topic = copy(p.a, p.alen, false); /* not NUL-terminated, as paho's */
		tl = p.alen;
		pay = p.b;
		plen = p.blen;
	} else {
		char t[128];

		tl = (size_t)snprintf(t, sizeof(t), "%s/hub/%s/status", prefix, DEFAULT_HUB);
		topic = copy((const uint8_t *)t, tl, false);
		pay = p.a;
		plen = p.alen;
	}

	/* <prefix>/hub/<level>/status: 1 with a valid level, -1 without */
	if (tl >= pl + 5 + 7 && !memcmp(topic, prefix, pl) && !memcmp(topic + pl, "/hub/", 5) &&
	    !memcmp(topic + tl - 7, "/status", 7))
		want = level_ok(topic + pl + 5, tl - pl - 5 - 7, GW_NAME_MAX) ? 1 : -1;
	memset(id, 'x', sizeof(id));
	k = hubs_topic(prefix, topic, tl, id);
	check(k == want);
	if (k == 1) {
		check(strlen(id) == tl - pl - 5 - 7 && !memcmp(id, topic + pl + 5, strlen(id)));
		pid = id;
	}

	payload = copy(pay, plen, false);
	rc = hubs_parse(pid, payload, plen, &s, why, sizeof(why));
	if (plen > HUBS_PAYLOAD_MAX)
		check(rc != 0);
	if ((sel >> 4) & 1) /* no why buffer: the same answer */
		check(hubs_parse(pid, payload, plen, &s2, NULL, 0) == rc && (rc || status_same(&s, &s2)));
	if (rc) {
		check_refused(rc, why);
		goto out;
	}
	check_status(&s, pid);
	n = status_write(&s, text, sizeof(text));
	check(n > 0 && n <= HUBS_PAYLOAD_MAX);
	why[0] = '\0';
	check(hubs_parse(pid, text, (size_t)n, &s2, why, sizeof(why)) == 0);
	check(status_same(&s, &s2));
out:
	free(payload);
	free(topic);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	switch (data[0] & 3) {
	case 0:
		fuzz_ack(data[0], data + 1, size - 1);
		break;
	case 1:
		fuzz_digest(data[0], false, data + 1, size - 1);
		break;
	case 2:
		fuzz_digest(data[0], true, data + 1, size - 1);
		break;
	default:
		fuzz_hubs(data[0], data + 1, size - 1);
		break;
	}
	return 0;
}
