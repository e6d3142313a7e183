/*
 * Hub catch-up: the thread, its SQLite reads and the protocol (see
 * catchup.h and docs/ha.md, "Catch-up"). Locking rules: `mu` guards the
 * inbox, the wants (read by the writer through expect() while this
 * thread waits in ingest_call()) and `stop`; everything else is this
 * thread's; counters are atomics.
 */
#include "core/catchup.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "agri/json.h"
#include "agri/log.h"
#include "agri/msg.h"
#include "agri/time.h"
#include "agri/util.h"

#define LOG "catchup"
#define INBOX_MAX 64                /* messages waiting for the thread */
#define INBOX_BYTES_MAX (4u << 20)  /* ... and their bytes */
#define REPLAY_BYTES_MAX AGRI_BATCH_MAX_BYTES
#define REPLAY_KEEP 8192            /* bytes kept of a replay too big (its dead letter) */
#define REQUEST_BYTES_MAX 1024
#define CHUNK 500                   /* readings a replay message */
#define HOUR_READINGS_MAX 50000     /* readings served for one station-hour */
#define WANTS_MAX 256               /* station-hours wanted, asked or just done */
#define INFLIGHT_MAX 4              /* hours asked and not yet done */
#define ASK_TIMEOUT_MS 30000        /* an hour asked with no "done" since: asked again */
#define ASKS_MAX 4                  /* ... this many times, then left to the next digests */
#define LATE_OK_MS 300000           /* replays of an hour asked still taken this long */
#define DONE_GRACE_MS 10000         /* replays of a done hour still accepted */
#define DETAILS_MAX 8               /* details asked and not yet come */
#define SEEN_TWICE 2                /* a station must differ on this many digests running */
#define SERVE_RATE_PER_S 4.0        /* requests served a second (burst 16) */
#define SERVE_BURST 16.0
#define LOG_LINES_PER_MIN 30

enum kind { K_DIGEST, K_DETAIL, K_REQUEST, K_DONE, K_REPLAY };
static const char *const kind_names[] = {"digest", "detail", "request", "done", "replay"};

struct inmsg {
	struct inmsg *next;
	enum kind kind;
	char hub[AGRI_ID_MAX + 1];
	char topic[AGRI_TOPIC_MAX + 1];
	size_t len, orig_len;
	char payload[]; /* len + NUL */
};

enum want_state { W_FREE, W_WANTED, W_ASKED, W_DONE };

struct want {
	enum want_state state;
	char station[AGRI_ID_MAX + 1];
	char hub[AGRI_ID_MAX + 1];
	int64_t hour_ms;
	int64_t until;      /* monotonic: W_ASKED times out, W_DONE's grace ends */
	int64_t late_ok;    /* monotonic: its replays are taken until then (asked) */
	unsigned asks;
	size_t received, stored;
};

struct detail_ask {
	bool used;
	char station[AGRI_ID_MAX + 1];
	char hub[AGRI_ID_MAX + 1];
	int64_t from_ms, to_ms, until;
};

struct seen {
	char station[AGRI_ID_MAX + 1];
	int times;
};

struct catchup {
	const struct gateway_config *cfg;
	struct ingest *in;
	struct ingest_publisher pub;
	char prefix[65], hub_id[GW_NAME_MAX];
	int64_t window_ms, every_ms, settle_ms;
	sqlite3 *db;
	pthread_t thread;
	bool started;

	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stop;
	struct inmsg *head, **tail;
	size_t n_in, in_bytes;
	struct want wants[WANTS_MAX];

	/* the thread's */
	struct detail_ask details[DETAILS_MAX];
	struct seen *seen;         /* stations that differed on the last digest, sorted */
	size_t n_seen;
	struct seen *seen_next;
	char seen_hub[AGRI_ID_MAX + 1]; /* the hub whose digests the list follows */
	int64_t seen_at;                /* monotonic: its last digest */
	struct cu_entry *ours_e, *theirs_e;
	struct cu_digest ours, theirs;
	struct agri_reading *readings;
	char *buf;                 /* CU_DIGEST_BYTES_MAX: encoded digests, replays */
	int64_t next_digest, last_digest_in;
	double serve_tokens;
	int64_t serve_at;
	int64_t log_minute;
	int log_lines;
	uint64_t log_skipped;
	uint32_t rng;

	atomic_uint_least64_t digests_sent, digests_received, details_requested, hours_requested,
		requests_served, readings_sent, readings_received, readings_stored, readings_unasked,
		dropped, refused,
		digest_bytes, stations_differing;
	atomic_int_least64_t matched_at_ms;
	char peer[AGRI_ID_MAX + 1];
	pthread_mutex_t peer_mu;
};

/* --- the read connection ------------------------------------------------- */

/* Per station (station == NULL) or per hour of one station: counts and
 * hashes of what this hub holds in [from, to), sorted. */
static int aggregate(struct catchup *c, const char *station, int64_t from, int64_t to,
		     struct cu_digest *d)
{
	static const char *const all_sql =
		"SELECT st.name, se.sensor, se.metric, r.ts / 3600000 * 3600000 AS h, count(*),"
		" sum(r.ts % 3600000) FROM stations st JOIN series se ON se.station_id = st.id"
		" CROSS JOIN readings r ON r.series_id = se.id WHERE r.ts >= ?1 AND r.ts < ?2"
		" GROUP BY se.id, h ORDER BY st.name";
	static const char *const one_sql =
		"SELECT ?3, se.sensor, se.metric, r.ts / 3600000 * 3600000 AS h, count(*),"
		" sum(r.ts % 3600000) FROM series se CROSS JOIN readings r ON r.series_id = se.id"
		" WHERE se.station_id = (SELECT id FROM stations WHERE name = ?3)"
		" AND r.ts >= ?1 AND r.ts < ?2 GROUP BY se.id, h ORDER BY h";
	sqlite3_stmt *q = NULL;
	int rc;

	d->n = 0;
	d->from_ms = from;
	d->to_ms = to;
	rc = sqlite3_prepare_v2(c->db, station ? one_sql : all_sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(q, 1, from);
	sqlite3_bind_int64(q, 2, to);
	if (station)
		sqlite3_bind_text(q, 3, station, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(q, 0);
		int64_t hour = sqlite3_column_int64(q, 3);
		uint64_t n = (uint64_t)sqlite3_column_int64(q, 4);
		uint64_t h = cu_group_hash((const char *)sqlite3_column_text(q, 1),
					   (const char *)sqlite3_column_text(q, 2), hour, n,
					   (uint64_t)sqlite3_column_int64(q, 5));
		struct cu_entry *e = d->n ? &d->e[d->n - 1] : NULL;

		if (!name || strlen(name) > AGRI_ID_MAX)
			continue;
		if (!e || (station ? e->hour_ms != hour : strcmp(e->key, name) != 0)) {
			if (d->n == d->cap)
				break; /* bounded: the rest next time */
			e = &d->e[d->n++];
			memset(e, 0, sizeof(*e));
			snprintf(e->key, sizeof(e->key), "%s", name);
			e->hour_ms = hour;
		}
		e->n += n;
		e->hash += h;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -EIO;
}

static int open_db(struct catchup *c)
{
	if (c->db)
		return 0;
	if (sqlite3_open_v2(c->cfg->db.path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		sqlite3_close(c->db);
		c->db = NULL;
		return -EIO;
	}
	sqlite3_busy_timeout(c->db, 2000);
	return 0;
}

/* --- publishing ------------------------------------------------------------ */

static int publish(struct catchup *c, const char *kind, const char *payload, size_t len)
{
	char topic[AGRI_TOPIC_MAX + 1];

	snprintf(topic, sizeof(topic), "%s/hub/%s/catchup/%s", c->prefix, c->hub_id, kind);
	return c->pub.publish(c->pub.ctx, topic, payload, len, false, NULL);
}

static void send_digest(struct catchup *c)
{
	int64_t now = util_now_ms();
	int64_t to = now - c->settle_ms;
	int64_t from = (to - c->window_ms) / CU_HOUR_MS * CU_HOUR_MS;
	int n;

	if (open_db(c) < 0 || aggregate(c, NULL, from, to, &c->ours) < 0) {
		log_debug(LOG, "cannot read the database for a digest");
		return;
	}
	snprintf(c->ours.hub, sizeof(c->ours.hub), "%.32s", c->hub_id);
	c->ours.station[0] = '\0';
	n = cu_digest_encode(&c->ours, c->buf, CU_DIGEST_BYTES_MAX);
	if (n < 0) {
		log_warn(LOG, "digest too big (%zu stations): not sent", c->ours.n);
		return;
	}
	if (publish(c, "digest", c->buf, (size_t)n) == 0) {
		atomic_fetch_add(&c->digests_sent, 1);
		atomic_store(&c->digest_bytes, (uint64_t)n);
	}
}

/* A line per station-hour caught up, at most LOG_LINES_PER_MIN a minute. */
static bool may_log(struct catchup *c)
{
	int64_t minute = util_mono_ms() / 60000;

	if (minute != c->log_minute) {
		if (c->log_skipped)
			log_info(LOG, "%llu more catch-up lines not logged",
				 (unsigned long long)c->log_skipped);
		c->log_minute = minute;
		c->log_lines = 0;
		c->log_skipped = 0;
	}
	if (c->log_lines >= LOG_LINES_PER_MIN) {
		c->log_skipped++;
		return false;
	}
	c->log_lines++;
	return true;
}

/* --- wants: the station-hours this hub asked for -------------------------- */

static struct want *want_find(struct catchup *c, const char *station, int64_t hour)
{
	for (size_t i = 0; i < WANTS_MAX; i++)
		if (c->wants[i].state != W_FREE && c->wants[i].hour_ms == hour &&
		    strcmp(c->wants[i].station, station) == 0)
			return &c->wants[i];
	return NULL;
}

/* The writer, inside a replay's ingest_call (this thread waits meanwhile). */
static bool expect(void *ctx, const char *station, int64_t ts_ms)
{
	struct catchup *c = ctx;
	struct want *w;
	bool ok;

	pthread_mutex_lock(&c->mu);
	w = want_find(c, station, ts_ms - ((ts_ms % CU_HOUR_MS) + CU_HOUR_MS) % CU_HOUR_MS);
	ok = w && (w->state == W_ASKED || w->state == W_DONE ||
		   (w->asks && util_mono_ms() < w->late_ok));
	pthread_mutex_unlock(&c->mu);
	return ok;
}

static void want_add(struct catchup *c, const char *station, const char *hub, int64_t hour)
{
	pthread_mutex_lock(&c->mu);
	if (!want_find(c, station, hour)) {
		for (size_t i = 0; i < WANTS_MAX; i++) {
			struct want *w = &c->wants[i];

			if (w->state != W_FREE)
				continue;
			memset(w, 0, sizeof(*w));
			w->state = W_WANTED;
			snprintf(w->station, sizeof(w->station), "%s", station);
			snprintf(w->hub, sizeof(w->hub), "%s", hub);
			w->hour_ms = hour;
			break;
		}
	}
	pthread_mutex_unlock(&c->mu);
}

/* Expires what timed out and asks for what is wanted, INFLIGHT_MAX at a time. */
static void wants_step(struct catchup *c)
{
	int64_t now = util_mono_ms();
	size_t asked = 0;
	struct want ask[INFLIGHT_MAX];
	size_t n_ask = 0;

	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < WANTS_MAX; i++) {
		struct want *w = &c->wants[i];

		if ((w->state == W_ASKED || w->state == W_DONE) && now >= w->until) {
			/* An answer may still be on its way (behind a bridge's
			 * backlog): asked again, its replays still taken. */
			if (w->state == W_ASKED && w->asks < ASKS_MAX) {
				log_debug(LOG, "no answer for station=%s hour=%lld: asked again",
					  w->station, (long long)w->hour_ms);
				w->state = W_WANTED;
			} else {
				w->state = W_FREE;
			}
		}
		asked += w->state == W_ASKED;
	}
	for (size_t i = 0; i < WANTS_MAX && asked < INFLIGHT_MAX; i++) {
		struct want *w = &c->wants[i];

		if (w->state != W_WANTED)
			continue;
		w->state = W_ASKED;
		w->until = now + ASK_TIMEOUT_MS;
		w->late_ok = now + LATE_OK_MS;
		w->asks++;
		ask[n_ask++] = *w;
		asked++;
	}
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < n_ask; i++) {
		char body[256];
		int n = snprintf(body, sizeof(body), "{\"v\":1,\"hub\":\"%s\",\"peer\":\"%s\","
				 "\"want\":\"hour\",\"station\":\"%s\",\"hour\":%" PRId64 "}",
				 c->hub_id, ask[i].hub, ask[i].station, ask[i].hour_ms);

		if (publish(c, "request", body, (size_t)n) == 0)
			atomic_fetch_add(&c->hours_requested, 1);
	}
}

/* --- what the peer sends --------------------------------------------------- */

/* How many stations differ, either way (for "matched"). */
static size_t differing(const struct cu_digest *a, const struct cu_digest *b)
{
	size_t i = 0, j = 0, n = 0;

	while (i < a->n || j < b->n) {
		int cmp = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->e[i].key, b->e[j].key);

		if (cmp == 0) {
			n += a->e[i].n != b->e[j].n || a->e[i].hash != b->e[j].hash;
			i++;
			j++;
		} else {
			n++;
			cmp < 0 ? i++ : j++;
		}
	}
	return n;
}

static int seen_times(const struct catchup *c, const char *station)
{
	size_t lo = 0, hi = c->n_seen;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(c->seen[mid].station, station);

		if (cmp == 0)
			return c->seen[mid].times;
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void ask_detail(struct catchup *c, const char *station, const char *hub, int64_t from,
		       int64_t to)
{
	int64_t now = util_mono_ms();
	struct detail_ask *slot = NULL;
	char body[320];
	int n;

	for (size_t i = 0; i < DETAILS_MAX; i++) {
		struct detail_ask *d = &c->details[i];

		if (d->used && now >= d->until)
			d->used = false;
		if (d->used && strcmp(d->station, station) == 0)
			return; /* already asked */
		if (!d->used && !slot)
			slot = d;
	}
	if (!slot)
		return;
	*slot = (struct detail_ask){.used = true, .from_ms = from, .to_ms = to,
				    .until = now + ASK_TIMEOUT_MS};
	snprintf(slot->station, sizeof(slot->station), "%s", station);
	snprintf(slot->hub, sizeof(slot->hub), "%s", hub);
	n = snprintf(body, sizeof(body), "{\"v\":1,\"hub\":\"%s\",\"peer\":\"%s\",\"want\":\"detail\","
		     "\"station\":\"%s\",\"from\":%" PRId64 ",\"to\":%" PRId64 "}",
		     c->hub_id, hub, station, from, to);
	if (publish(c, "request", body, (size_t)n) == 0)
		atomic_fetch_add(&c->details_requested, 1);
	else
		slot->used = false;
}

static void on_digest(struct catchup *c, const struct inmsg *m)
{
	int64_t now = util_now_ms(), mono = util_mono_ms();
	size_t idx[DETAILS_MAX * 4], n, diff, n_next = 0;
	char why[160];
	bool owner;

	/* A digest costs a read of the window: at most one per a quarter
	 * of our own period, whatever the peer sends. */
	if (c->last_digest_in && mono - c->last_digest_in < c->every_ms / 4) {
		atomic_fetch_add(&c->dropped, 1);
		return;
	}
	c->theirs.cap = CU_STATIONS_MAX;
	if (cu_digest_decode(m->payload, m->len, false, &c->theirs, why, sizeof(why)) < 0 ||
	    strcmp(c->theirs.hub, m->hub) != 0 || c->theirs.to_ms > now + 600000) {
		atomic_fetch_add(&c->refused, 1);
		log_warn(LOG, "refused a digest from hub=%s: %s", m->hub,
			 strcmp(c->theirs.hub, m->hub) ? "hub differs from its topic's" : why);
		return;
	}
	c->last_digest_in = mono;
	atomic_fetch_add(&c->digests_received, 1);
	/* One peer: the hub whose digests we follow, until it has been
	 * silent for three periods. Another hub's digests (a third gateway
	 * misconfigured, a stolen gateway account) are compared but can
	 * neither ask for anything nor reset the peer's count. */
	owner = !c->seen_hub[0] || strcmp(c->seen_hub, m->hub) == 0 ||
		mono - c->seen_at > 3 * c->every_ms;
	if (!owner) {
		atomic_fetch_add(&c->dropped, 1);
		return;
	}
	snprintf(c->seen_hub, sizeof(c->seen_hub), "%s", m->hub);
	c->seen_at = mono;
	pthread_mutex_lock(&c->peer_mu);
	snprintf(c->peer, sizeof(c->peer), "%s", m->hub);
	pthread_mutex_unlock(&c->peer_mu);
	if (open_db(c) < 0 || aggregate(c, NULL, c->theirs.from_ms, c->theirs.to_ms, &c->ours) < 0)
		return;
	diff = differing(&c->ours, &c->theirs);
	atomic_store(&c->stations_differing, diff);
	if (diff == 0)
		atomic_store(&c->matched_at_ms, now);
	/* Stations where we may lack something, seen twice running: the
	 * bridge may simply be behind the first time. */
	n = cu_digest_lacking(&c->ours, &c->theirs, false, idx, sizeof(idx) / sizeof(idx[0]));
	for (size_t k = 0; k < n; k++) {
		const char *st = c->theirs.e[idx[k]].key;
		int times = seen_times(c, st) + 1;

		snprintf(c->seen_next[n_next].station, sizeof(c->seen_next[0].station), "%s", st);
		c->seen_next[n_next++].times = times;
		if (times >= SEEN_TWICE)
			ask_detail(c, st, m->hub, c->theirs.from_ms, c->theirs.to_ms);
	}
	{
		struct seen *t = c->seen;

		c->seen = c->seen_next;
		c->seen_next = t;
		c->n_seen = n_next;
	}
}

static void on_detail(struct catchup *c, const struct inmsg *m)
{
	struct detail_ask *ask = NULL;
	size_t idx[CU_HOURS_MAX], n;
	char why[160];

	c->theirs.cap = CU_HOURS_MAX;
	if (cu_digest_decode(m->payload, m->len, true, &c->theirs, why, sizeof(why)) < 0 ||
	    strcmp(c->theirs.hub, m->hub) != 0) {
		atomic_fetch_add(&c->refused, 1);
		log_warn(LOG, "refused a detail from hub=%s: %s", m->hub,
			 strcmp(c->theirs.hub, m->hub) ? "hub differs from its topic's" : why);
		return;
	}
	if (strcmp(c->theirs.peer, c->hub_id) != 0)
		return; /* for another hub */
	for (size_t i = 0; i < DETAILS_MAX; i++) {
		struct detail_ask *d = &c->details[i];

		if (d->used && strcmp(d->station, c->theirs.station) == 0 &&
		    strcmp(d->hub, m->hub) == 0 && d->from_ms == c->theirs.from_ms &&
		    d->to_ms == c->theirs.to_ms)
			ask = d;
	}
	if (!ask) {
		atomic_fetch_add(&c->dropped, 1); /* not asked for (or too late) */
		return;
	}
	ask->used = false;
	if (aggregate(c, c->theirs.station, c->theirs.from_ms, c->theirs.to_ms, &c->ours) < 0)
		return;
	n = cu_digest_lacking(&c->ours, &c->theirs, true, idx, CU_HOURS_MAX);
	for (size_t k = 0; k < n; k++)
		want_add(c, c->theirs.station, m->hub, c->theirs.e[idx[k]].hour_ms);
	if (n)
		log_debug(LOG, "station=%s: %zu hours to ask hub=%s for", c->theirs.station, n, m->hub);
}

/* A request (detail or hour) from the peer, within SERVE_RATE_PER_S. */
struct request {
	char hub[AGRI_ID_MAX + 1], peer[AGRI_ID_MAX + 1], station[AGRI_ID_MAX + 1];
	bool hour;
	int64_t from_ms, to_ms, hour_ms;
};

static int request_decode(const struct inmsg *m, struct request *r)
{
	cJSON *root = NULL;
	const cJSON *v, *it;
	struct agri_err err = {0};
	int rc = -EBADMSG;
	int keys = 0;

	memset(r, 0, sizeof(*r));
	if (agri_json_parse(m->payload, m->len, REQUEST_BYTES_MAX, 2, &root, &err) < 0)
		return -EBADMSG;
	if (!cJSON_IsObject(root))
		goto out;
	cJSON_ArrayForEach(it, root)
		keys++;
#define STR_ID(key, dst, station) \
	(cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(root, key)) && \
	 strlen(v->valuestring) <= AGRI_ID_MAX && \
	 ((station) ? agri_station_id_valid(v->valuestring) : agri_ident_valid(v->valuestring)) && \
	 snprintf(dst, AGRI_ID_MAX + 1, "%s", v->valuestring) >= 0)
#define MS(key, dst) \
	(cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, key)) && \
	 v->valuedouble >= 0 && v->valuedouble <= 9007199254740991.0 && \
	 v->valuedouble == (double)(int64_t)v->valuedouble && ((dst) = (int64_t)v->valuedouble, 1))
	if (!cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(root, "v")) || v->valuedouble != 1 ||
	    !STR_ID("hub", r->hub, false) || !STR_ID("peer", r->peer, false) ||
	    !STR_ID("station", r->station, true) ||
	    !cJSON_IsString(v = cJSON_GetObjectItemCaseSensitive(root, "want")))
		goto out;
	if (strcmp(v->valuestring, "hour") == 0) {
		r->hour = true;
		if (keys != 6 || !MS("hour", r->hour_ms) || r->hour_ms % CU_HOUR_MS)
			goto out;
	} else if (strcmp(v->valuestring, "detail") == 0) {
		if (keys != 7 || !MS("from", r->from_ms) || !MS("to", r->to_ms) ||
		    r->from_ms % CU_HOUR_MS || r->to_ms <= r->from_ms ||
		    r->to_ms - r->from_ms > CU_HOURS_MAX * CU_HOUR_MS)
			goto out;
	} else {
		goto out;
	}
#undef STR_ID
#undef MS
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

static void serve_detail(struct catchup *c, const struct request *r)
{
	int n;

	c->ours.cap = CU_HOURS_MAX;
	if (aggregate(c, r->station, r->from_ms, r->to_ms, &c->ours) < 0) {
		c->ours.cap = CU_STATIONS_MAX;
		return;
	}
	c->ours.cap = CU_STATIONS_MAX;
	snprintf(c->ours.hub, sizeof(c->ours.hub), "%.32s", c->hub_id);
	snprintf(c->ours.peer, sizeof(c->ours.peer), "%s", r->hub);
	snprintf(c->ours.station, sizeof(c->ours.station), "%s", r->station);
	n = cu_digest_encode(&c->ours, c->buf, CU_DIGEST_BYTES_MAX);
	c->ours.station[0] = '\0';
	if (n > 0 && publish(c, "detail", c->buf, (size_t)n) == 0)
		atomic_fetch_add(&c->requests_served, 1);
}

/* The readings of one station-hour, CHUNK a message, then "done". */
static void serve_hour(struct catchup *c, const struct request *r)
{
	static const char *const sql =
		"SELECT se.sensor, se.metric, r.ts, r.value, r.unit, r.q, coalesce(r.why, '')"
		" FROM series se CROSS JOIN readings r ON r.series_id = se.id"
		" WHERE se.station_id = (SELECT id FROM stations WHERE name = ?1)"
		" AND r.ts >= ?2 AND r.ts < ?3 ORDER BY r.ts LIMIT ?4";
	struct agri_telemetry t = {.readings = c->readings, .cap = CHUNK,
				   .seq = (uint64_t)(r->hour_ms / CU_HOUR_MS)};
	sqlite3_stmt *q = NULL;
	size_t total = 0;
	char body[320];
	int rc, n;

	snprintf(t.station, sizeof(t.station), "%s", r->station);
	if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_text(q, 1, r->station, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, r->hour_ms);
	sqlite3_bind_int64(q, 3, r->hour_ms + CU_HOUR_MS);
	sqlite3_bind_int64(q, 4, HOUR_READINGS_MAX);
	for (;;) {
		rc = sqlite3_step(q);
		if (rc == SQLITE_ROW) {
			struct agri_reading *x = &c->readings[t.n];
			const char *s = (const char *)sqlite3_column_text(q, 0);
			const char *mt = (const char *)sqlite3_column_text(q, 1);
			const char *u = (const char *)sqlite3_column_text(q, 4);
			const char *why = (const char *)sqlite3_column_text(q, 6);
			int qv = sqlite3_column_int(q, 5);

			memset(x, 0, sizeof(*x));
			snprintf(x->sensor, sizeof(x->sensor), "%s", s ? s : "");
			snprintf(x->metric, sizeof(x->metric), "%s", mt ? mt : "");
			snprintf(x->unit, sizeof(x->unit), "%s", u ? u : "");
			x->ts_ms = sqlite3_column_int64(q, 2);
			x->has_value = sqlite3_column_type(q, 3) != SQLITE_NULL;
			x->value = x->has_value ? sqlite3_column_double(q, 3) : 0;
			x->q = qv >= AGRI_Q_OK && qv <= AGRI_Q_MAINT ? (enum agri_quality)qv : AGRI_Q_SUSPECT;
			if (x->q == AGRI_Q_SUSPECT && why && agri_why_valid(why))
				snprintf(x->why, sizeof(x->why), "%s", why);
			t.n++;
		}
		if (t.n == CHUNK || (rc != SQLITE_ROW && t.n > 0)) {
			t.sent_at_ms = util_now_ms();
			n = agri_telemetry_encode(&t, c->buf, CU_DIGEST_BYTES_MAX);
			if (n > 0 && publish(c, "replay", c->buf, (size_t)n) == 0) {
				atomic_fetch_add(&c->readings_sent, t.n);
				total += t.n;
			}
			t.n = 0;
		}
		if (rc != SQLITE_ROW)
			break;
	}
	sqlite3_finalize(q);
	if (total >= HOUR_READINGS_MAX)
		log_warn(LOG, "station=%s hour=%lld: served the first %d readings only",
			 r->station, (long long)r->hour_ms, HOUR_READINGS_MAX);
	n = snprintf(body, sizeof(body), "{\"v\":1,\"hub\":\"%s\",\"peer\":\"%s\",\"station\":\"%s\","
		     "\"hour\":%" PRId64 ",\"readings\":%zu}", c->hub_id, r->hub, r->station,
		     r->hour_ms, total);
	if (publish(c, "done", body, (size_t)n) == 0)
		atomic_fetch_add(&c->requests_served, 1);
}

static void on_request(struct catchup *c, const struct inmsg *m)
{
	struct request r;
	int64_t now = util_mono_ms();

	if (request_decode(m, &r) < 0 || strcmp(r.hub, m->hub) != 0) {
		atomic_fetch_add(&c->refused, 1);
		log_warn(LOG, "refused a catch-up request from hub=%s: malformed", m->hub);
		return;
	}
	if (strcmp(r.peer, c->hub_id) != 0)
		return; /* for another hub */
	c->serve_tokens += (double)(now - c->serve_at) * SERVE_RATE_PER_S / 1000.0;
	if (c->serve_tokens > SERVE_BURST)
		c->serve_tokens = SERVE_BURST;
	c->serve_at = now;
	if (c->serve_tokens < 1.0) {
		atomic_fetch_add(&c->dropped, 1); /* the peer asks again */
		return;
	}
	c->serve_tokens -= 1.0;
	if (open_db(c) < 0)
		return;
	if (r.hour)
		serve_hour(c, &r);
	else
		serve_detail(c, &r);
}

static void on_done(struct catchup *c, const struct inmsg *m)
{
	cJSON *root = NULL;
	const cJSON *st, *hr, *n;
	struct agri_err err = {0};
	struct want *w;
	char station[AGRI_ID_MAX + 1] = "";
	int64_t hour = -1;
	size_t received = 0, stored = 0;
	bool log = false;

	if (agri_json_parse(m->payload, m->len, REQUEST_BYTES_MAX, 2, &root, &err) < 0)
		goto bad;
	st = cJSON_GetObjectItemCaseSensitive(root, "station");
	hr = cJSON_GetObjectItemCaseSensitive(root, "hour");
	n = cJSON_GetObjectItemCaseSensitive(root, "readings");
	if (!cJSON_IsString(st) || !agri_station_id_valid(st->valuestring) || !cJSON_IsNumber(hr) ||
	    !cJSON_IsNumber(n))
		goto bad;
	snprintf(station, sizeof(station), "%s", st->valuestring);
	hour = (int64_t)hr->valuedouble;
	cJSON_Delete(root);
	pthread_mutex_lock(&c->mu);
	w = want_find(c, station, hour);
	if (w && w->state == W_ASKED && strcmp(w->hub, m->hub) == 0) {
		w->state = W_DONE;
		w->until = util_mono_ms() + DONE_GRACE_MS;
		received = w->received;
		stored = w->stored;
		log = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (log && may_log(c)) {
		char at[32];

		agri_time_format(hour, at, sizeof(at));
		log_info(LOG, "caught up station=%s hour=%s from=%s readings=%zu stored=%zu",
			 station, at, m->hub, received, stored);
	}
	return;
bad:
	cJSON_Delete(root);
	atomic_fetch_add(&c->refused, 1);
}

struct replay_call {
	struct catchup *c;
	struct ingest_replay r;
};

static int replay_fn(void *ctx, struct ingest *in, struct store *st)
{
	struct replay_call *rc = ctx;

	(void)st;
	return ingest_put_replay(in, &rc->r);
}

static void on_replay(struct catchup *c, const struct inmsg *m)
{
	struct replay_call call = {.c = c, .r = {
		.topic = m->topic, .from_hub = m->hub, .payload = m->payload, .len = m->len,
		.orig_len = m->orig_len, .max_len = REPLAY_BYTES_MAX, .expect = expect, .ctx = c}};
	int rc = ingest_call(c->in, replay_fn, &call, 30000);

	if (rc < 0) {
		log_warn(LOG, "a replay from hub=%s not stored: %s (asked again later)", m->hub,
			 strerror(-rc));
		return;
	}
	if (call.r.refused)
		atomic_fetch_add(&c->refused, 1);
	if (call.r.unasked) {
		atomic_fetch_add(&c->readings_unasked, call.r.unasked);
		if (may_log(c))
			log_info(LOG, "a replay from hub=%s for station=%s: %zu readings of hours"
				 " not asked for (or no longer), dropped", m->hub, call.r.station,
				 call.r.unasked);
	}
	atomic_fetch_add(&c->readings_received, call.r.received);
	atomic_fetch_add(&c->readings_stored, call.r.stored);
	if (call.r.received) {
		struct want *w;
		int64_t ts = call.r.first_ts_ms;

		pthread_mutex_lock(&c->mu);
		w = want_find(c, call.r.station, ts - ts % CU_HOUR_MS);
		if (w) {
			w->received += call.r.received;
			w->stored += call.r.stored;
		}
		pthread_mutex_unlock(&c->mu);
	}
}

/* --- the thread ------------------------------------------------------------ */

static void schedule_digest(struct catchup *c)
{
	/* every_s +- 25 %: two hubs started together do not stay in step */
	int64_t j = c->every_ms / 2;

	c->next_digest = util_mono_ms() + c->every_ms - j / 2 +
			 (j > 0 ? (int64_t)(util_rand32(&c->rng) % (uint32_t)j) : 0);
}

static void *thread_main(void *arg)
{
	struct catchup *c = arg;

	schedule_digest(c);
	for (;;) {
		struct inmsg *m;
		struct timespec until;

		pthread_mutex_lock(&c->mu);
		if (!c->head && !c->stop) {
			util_deadline(&until, CLOCK_MONOTONIC, 500);
			pthread_cond_timedwait(&c->wake, &c->mu, &until);
		}
		if (c->stop) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		m = c->head;
		if (m) {
			c->head = m->next;
			if (!c->head)
				c->tail = &c->head;
			c->n_in--;
			c->in_bytes -= m->len;
		}
		pthread_mutex_unlock(&c->mu);
		if (m) {
			switch (m->kind) {
			case K_DIGEST: on_digest(c, m); break;
			case K_DETAIL: on_detail(c, m); break;
			case K_REQUEST: on_request(c, m); break;
			case K_DONE: on_done(c, m); break;
			case K_REPLAY: on_replay(c, m); break;
			}
			free(m);
		}
		if (util_mono_ms() >= c->next_digest) {
			send_digest(c);
			schedule_digest(c);
		}
		wants_step(c);
	}
	return NULL;
}

int catchup_offer(struct catchup *c, const char *topic, size_t topic_len, const void *payload,
		  size_t len)
{
	size_t pl = strlen(c->prefix), keep = len, max;
	const char *p, *hub, *slash;
	struct inmsg *m;
	int kind = -1;

	/* <prefix>/hub/<hub>/catchup/<kind> */
	if (topic_len <= pl + 5 || topic_len > AGRI_TOPIC_MAX || strncmp(topic, c->prefix, pl) != 0 ||
	    strncmp(topic + pl, "/hub/", 5) != 0)
		return 0;
	hub = topic + pl + 5;
	slash = memchr(hub, '/', topic_len - (size_t)(hub - topic));
	if (!slash || (size_t)(slash - hub) > AGRI_ID_MAX || slash == hub)
		return 0;
	p = slash + 1;
	if ((size_t)(topic + topic_len - p) < 9 || strncmp(p, "catchup/", 8) != 0)
		return 0;
	p += 8;
	for (int k = 0; k <= K_REPLAY; k++)
		if ((size_t)(topic + topic_len - p) == strlen(kind_names[k]) &&
		    strncmp(p, kind_names[k], strlen(kind_names[k])) == 0)
			kind = k;
	if (kind < 0 || ((size_t)(slash - hub) == strlen(c->hub_id) &&
			 strncmp(hub, c->hub_id, (size_t)(slash - hub)) == 0))
		return 1; /* not a kind we know, or our own: taken, dropped */
	max = kind == K_REPLAY ? REPLAY_BYTES_MAX : kind == K_DIGEST || kind == K_DETAIL
			       ? CU_DIGEST_BYTES_MAX : REQUEST_BYTES_MAX;
	if (len > max) {
		if (kind != K_REPLAY) {
			atomic_fetch_add(&c->refused, 1);
			return 1;
		}
		keep = REPLAY_KEEP; /* its dead letter says why */
	}
	m = malloc(sizeof(*m) + keep + 1);
	if (!m) {
		atomic_fetch_add(&c->dropped, 1);
		return 1;
	}
	m->next = NULL;
	m->kind = (enum kind)kind;
	snprintf(m->hub, sizeof(m->hub), "%.*s", (int)(slash - hub), hub);
	snprintf(m->topic, sizeof(m->topic), "%.*s", (int)topic_len, topic);
	memcpy(m->payload, payload, keep);
	m->payload[keep] = '\0';
	m->len = keep;
	m->orig_len = len;
	pthread_mutex_lock(&c->mu);
	if (c->stop || c->n_in >= INBOX_MAX || c->in_bytes + keep > INBOX_BYTES_MAX) {
		pthread_mutex_unlock(&c->mu);
		free(m);
		atomic_fetch_add(&c->dropped, 1); /* asked again at the next round */
		return 1;
	}
	*c->tail = m;
	c->tail = &m->next;
	c->n_in++;
	c->in_bytes += keep;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->mu);
	return 1;
}

struct catchup *catchup_new(const struct gateway_config *cfg, struct ingest *in,
			    const struct ingest_publisher *pub, int *err)
{
	struct catchup *c;

	*err = 0;
	if (!cfg->ha.enabled || !cfg->ha.catchup)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	c->cfg = cfg;
	c->in = in;
	c->pub = *pub;
	snprintf(c->prefix, sizeof(c->prefix), "%s", cfg->broker.topic_prefix);
	snprintf(c->hub_id, sizeof(c->hub_id), "%s", cfg->ha.hub_id);
	c->window_ms = cfg->ha.catchup_window_h * CU_HOUR_MS;
	c->every_ms = cfg->ha.catchup_every_s * 1000;
	c->settle_ms = cfg->ha.catchup_settle_s * 1000;
	c->rng = (uint32_t)util_now_ms() | 1u;
	c->serve_tokens = SERVE_BURST;
	c->serve_at = util_mono_ms();
	c->tail = &c->head;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->peer_mu, NULL);
	util_cond_init_mono(&c->wake);
	c->ours_e = calloc(CU_STATIONS_MAX, sizeof(*c->ours_e));
	c->theirs_e = calloc(CU_STATIONS_MAX, sizeof(*c->theirs_e));
	c->seen = calloc(CU_STATIONS_MAX, sizeof(*c->seen));
	c->seen_next = calloc(CU_STATIONS_MAX, sizeof(*c->seen_next));
	c->readings = calloc(CHUNK, sizeof(*c->readings));
	c->buf = malloc(CU_DIGEST_BYTES_MAX);
	if (!c->ours_e || !c->theirs_e || !c->seen || !c->seen_next || !c->readings || !c->buf) {
		catchup_free(c);
		*err = -ENOMEM;
		return NULL;
	}
	c->ours = (struct cu_digest){.e = c->ours_e, .cap = CU_STATIONS_MAX};
	c->theirs = (struct cu_digest){.e = c->theirs_e, .cap = CU_STATIONS_MAX};
	return c;
}

int catchup_start(struct catchup *c)
{
	int rc;

	if (!c)
		return 0;
	if ((rc = pthread_create(&c->thread, NULL, thread_main, c)) != 0)
		return -rc;
	c->started = true;
	return 0;
}

void catchup_stop(struct catchup *c)
{
	if (!c || !c->started)
		return;
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	c->started = false;
}

void catchup_free(struct catchup *c)
{
	if (!c)
		return;
	catchup_stop(c);
	while (c->head) {
		struct inmsg *m = c->head;

		c->head = m->next;
		free(m);
	}
	sqlite3_close(c->db);
	free(c->ours_e);
	free(c->theirs_e);
	free(c->seen);
	free(c->seen_next);
	free(c->readings);
	free(c->buf);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->peer_mu);
	pthread_cond_destroy(&c->wake);
	free(c);
}

int catchup_metrics_text(struct catchup *c, char *buf, size_t len)
{
	int n;

	if (!c)
		return 0;
	n = snprintf(buf, len,
		     "# HELP agri_gateway_catchup_digests_sent_total digests of this hub's readings"
		     " published for the other hub\n"
		     "# TYPE agri_gateway_catchup_digests_sent_total counter\n"
		     "agri_gateway_catchup_digests_sent_total %llu\n"
		     "# HELP agri_gateway_catchup_digests_received_total the other hub's digests"
		     " compared with this hub's readings\n"
		     "# TYPE agri_gateway_catchup_digests_received_total counter\n"
		     "agri_gateway_catchup_digests_received_total %llu\n"
		     "# HELP agri_gateway_catchup_digest_bytes size of the last digest sent\n"
		     "# TYPE agri_gateway_catchup_digest_bytes gauge\n"
		     "agri_gateway_catchup_digest_bytes %llu\n"
		     "# HELP agri_gateway_catchup_stations_differing stations whose readings differed"
		     " from the other hub's at the last digest\n"
		     "# TYPE agri_gateway_catchup_stations_differing gauge\n"
		     "agri_gateway_catchup_stations_differing %llu\n"
		     "# HELP agri_gateway_catchup_details_requested_total stations whose hours were"
		     " asked of the other hub\n"
		     "# TYPE agri_gateway_catchup_details_requested_total counter\n"
		     "agri_gateway_catchup_details_requested_total %llu\n"
		     "# HELP agri_gateway_catchup_replays_requested_total replays of a station-hour"
		     " asked of the other hub\n"
		     "# TYPE agri_gateway_catchup_replays_requested_total counter\n"
		     "agri_gateway_catchup_replays_requested_total %llu\n"
		     "# HELP agri_gateway_catchup_requests_served_total the other hub's requests"
		     " answered\n"
		     "# TYPE agri_gateway_catchup_requests_served_total counter\n"
		     "agri_gateway_catchup_requests_served_total %llu\n"
		     "# HELP agri_gateway_catchup_readings_sent_total readings replayed to the other"
		     " hub\n"
		     "# TYPE agri_gateway_catchup_readings_sent_total counter\n"
		     "agri_gateway_catchup_readings_sent_total %llu\n"
		     "# HELP agri_gateway_catchup_readings_received_total readings replayed by the"
		     " other hub and accepted\n"
		     "# TYPE agri_gateway_catchup_readings_received_total counter\n"
		     "agri_gateway_catchup_readings_received_total %llu\n"
		     "# HELP agri_gateway_catchup_readings_stored_total replayed readings this hub"
		     " lacked\n"
		     "# TYPE agri_gateway_catchup_readings_stored_total counter\n"
		     "agri_gateway_catchup_readings_stored_total %llu\n"
		     "# HELP agri_gateway_catchup_readings_unasked_total replayed readings of hours"
		     " this hub did not ask for (another hub's answer, or one asked before a"
		     " restart): dropped\n"
		     "# TYPE agri_gateway_catchup_readings_unasked_total counter\n"
		     "agri_gateway_catchup_readings_unasked_total %llu\n"
		     "# HELP agri_gateway_catchup_dropped_total catch-up messages dropped (inbox"
		     " full, over the rate, a detail not asked for)\n"
		     "# TYPE agri_gateway_catchup_dropped_total counter\n"
		     "agri_gateway_catchup_dropped_total %llu\n"
		     "# HELP agri_gateway_catchup_refused_total catch-up messages refused as"
		     " malformed (replays: dead letters)\n"
		     "# TYPE agri_gateway_catchup_refused_total counter\n"
		     "agri_gateway_catchup_refused_total %llu\n"
		     "# HELP agri_gateway_catchup_matched_timestamp_seconds when this hub last held"
		     " exactly the other hub's readings (0: not yet)\n"
		     "# TYPE agri_gateway_catchup_matched_timestamp_seconds gauge\n"
		     "agri_gateway_catchup_matched_timestamp_seconds %lld\n",
		     (unsigned long long)atomic_load(&c->digests_sent),
		     (unsigned long long)atomic_load(&c->digests_received),
		     (unsigned long long)atomic_load(&c->digest_bytes),
		     (unsigned long long)atomic_load(&c->stations_differing),
		     (unsigned long long)atomic_load(&c->details_requested),
		     (unsigned long long)atomic_load(&c->hours_requested),
		     (unsigned long long)atomic_load(&c->requests_served),
		     (unsigned long long)atomic_load(&c->readings_sent),
		     (unsigned long long)atomic_load(&c->readings_received),
		     (unsigned long long)atomic_load(&c->readings_stored),
		     (unsigned long long)atomic_load(&c->readings_unasked),
		     (unsigned long long)atomic_load(&c->dropped),
		     (unsigned long long)atomic_load(&c->refused),
		     (long long)(atomic_load(&c->matched_at_ms) / 1000));
	return n < 0 || (size_t)n >= len ? 0 : n;
}

int catchup_status_fields(struct catchup *c, char *buf, size_t len)
{
	int64_t at = atomic_load(&c->matched_at_ms);
	char ts[32] = "";
	char peer[AGRI_ID_MAX + 1];
	int n;

	if (at)
		agri_time_format(at, ts, sizeof(ts));
	pthread_mutex_lock(&c->peer_mu);
	snprintf(peer, sizeof(peer), "%s", c->peer);
	pthread_mutex_unlock(&c->peer_mu);
	n = snprintf(buf, len, ",\"catchup\":{\"peer\":%s%s%s,\"matched_at\":%s%s%s,"
		     "\"stations_differing\":%llu}",
		     peer[0] ? "\"" : "", peer[0] ? peer : "null", peer[0] ? "\"" : "",
		     at ? "\"" : "", at ? ts : "null", at ? "\"" : "",
		     (unsigned long long)atomic_load(&c->stations_differing));
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}
