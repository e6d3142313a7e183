/*
 * Power cuts against the gateway's database (the real store, ingest batch
 * code, alert engine wiring, outbox and upstream queue, in-process over
 * the power-cut VFS: powercut_vfs.h). Three stations send telemetry
 * batches (salinity crossing an alert threshold, plus three other
 * metrics); the writer's own batch function (in_apply, as the writer
 * thread calls it) commits them with the alert transitions, their outbox
 * rows and the upstream queue rows; the outbox notifier delivers rows
 * (outbox_step) to a receiver that lives outside the power cut; the main
 * thread's checkpoint runs now and then. At a random mutating I/O call the
 * power goes; everything is closed, the disk keeps a random part of what
 * was not synced, and the whole stack is opened again. After every crash
 * point:
 *
 *   - PRAGMA integrity_check is "ok";
 *   - every batch the gateway acked (its seq was in the committed batch's
 *     ack list) is in v_readings exactly once, values intact, and its seq
 *     is in the station's received ranges;
 *   - no reading exists that no station sent;
 *   - every outbox row that committed is still there; every event told
 *     live has exactly one outbox row, late ones at most one row of late
 *     news per late event; the stored episodes equal those of the stored
 *     readings taken in reading order, each raised once;
 *   - the upstream queue holds every stored reading exactly once;
 *   - at the end of each run of crash points the outbox is drained: every
 *     committed row reaches the receiver, each delivery id once (a resend
 *     after a crash between the delivery and its mark carries the same
 *     id, as docs/notify.md says; those are counted).
 *
 * Unacked batches are resent after every restart, as a station's spool
 * does.
 *
 * Usage: test_powercut_gateway [crash points (default 2000)] [seed]
 * (POWERCUT_POINTS in the environment overrides the default;
 * POWERCUT_SYNC=normal runs the gateway with db.synchronous "normal", to
 * see what docs/store.md says it costs: acked batches lost).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "alerts/alerting.h"
#include "core/health.h"
#include "core/ingest_int.h"
#include "core/store.h"
#include "gateway/config.h"
#include "notify/outbox.h"
#include "powercut_vfs.h"
#include "test.h"
#include "upstream/upstream.h"

#define STATIONS 3
#define MAX_SEQ 4096         /* batches per station per run */
#define READINGS 4           /* per batch: salinity + m1..m3 */
#define RUN_POINTS 40        /* crash points on one database before a fresh one */
#define STEPS_MAX 40
#define OUTBOX_MAX 20000     /* rows tracked per run */
#define SEQ_MS 60000

enum { B_NONE, B_SENT, B_ACKED };

static const char *const station_names[STATIONS] = {"PC-S1", "PC-S2", "PC-S3"};
static unsigned char bstate[STATIONS][MAX_SEQ];
static uint64_t next_seq[STATIONS];
static int64_t t0_ms;

/* Outbox rows seen committed: id -> (alert id, event); receiver counts. */
struct orow {
	bool committed;
	char alert_id[128];
	char event[16];
	int64_t created;
	int delivered; /* times the receiver got it */
	bool marked;   /* its delivered_at committed before any crash */
};
static int64_t last_delivered_id;
static struct orow orows[OUTBOX_MAX];
static int64_t last_row_id;

static char dir[64] = "/tmp/agri-powercut-gw-XXXXXX";
static char db_path[300], cfg_path[300];
static struct gateway_config cfg;
static bool quiet;

static uint64_t n_points, n_commits, n_acked, n_failed_commits, n_delivered, n_redelivered,
	n_steps, n_ckpt;
static uint64_t v_corrupt, v_lost, v_dup, v_phantom, v_ranges, v_outbox_lost, v_episode,
	v_queue, v_undelivered, v_open, v_renotified;
static struct pc_cut_stats cut_sum;

/* --- the stack ----------------------------------------------------------- */

struct stack {
	struct gateway_health health;
	struct store *st;
	struct ingest *in;
	struct alerting *al;
	struct outbox *ob;
	struct ingest_hook ob_hook;
	struct upstream *up;
};

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return t0_ms + 86400000;
}

/* The receiver: outside the power cut. */
static int deliver(void *ctx, const struct outbox_item *it, char *err, size_t len)
{
	(void)ctx;
	(void)err;
	(void)len;
	if (it->id <= 0 || it->id >= OUTBOX_MAX)
		return -EPERM;
	orows[it->id].delivered++;
	if (orows[it->id].delivered > 1)
		n_redelivered++;
	if (orows[it->id].marked)
		v_renotified++; /* marked delivered, yet sent again */
	last_delivered_id = it->id;
	n_delivered++;
	return 0;
}

static int no_publish(void *ctx, const char *topic, const void *p, size_t len, bool retained,
		      struct ingest_sent *sent)
{
	return -ENOTCONN;
}

static void stack_close(struct stack *s)
{
	upstream_free(s->up);
	outbox_free(s->ob);
	ingest_free(s->in);
	alerting_free(s->al);
	store_close(s->st);
	memset(s, 0, sizeof(*s));
}

/* Opens everything as gateway_new() does. 0, or -errno (crashed or broken). */
static int stack_open(struct stack *s)
{
	struct store_options so = {.sync_full = cfg.db.sync_full, .track_gaps = true};
	struct ingest_options io = {.hub_id = "pc-gw"};
	struct ingest_publisher pub = {.publish = no_publish};
	struct outbox_channel oc = {.name = "ops", .deliver = deliver};
	struct outbox_options oo = {.sync_full = cfg.db.sync_full, .now_ms = fake_clock,
				    .seed = 7, .backoff_base_ms = 1, .backoff_cap_ms = 1};
	struct agri_err e = {0};
	int rc = 0;

	memset(s, 0, sizeof(*s));
	if (!(s->st = store_open(db_path, &so, &rc)))
		return rc ? rc : -EIO;
	if (!(s->in = ingest_new(s->st, &io, &pub, &s->health)))
		return -ENOMEM;
	if (!(s->al = alerting_new(&cfg, s->st, s->in, &e, &rc)))
		return rc ? rc : -EIO;
	if ((rc = ingest_add_hook(s->in, alerting_hook(s->al))) < 0)
		return rc;
	if (!(s->ob = outbox_new(db_path, &oc, 1, &oo, &rc)))
		return rc ? rc : -EIO;
	outbox_hook(s->ob, &s->ob_hook);
	if ((rc = ingest_add_hook(s->in, &s->ob_hook)) < 0)
		return rc;
	if (!(s->up = upstream_new(&cfg, &rc)))
		return rc ? rc : -EIO;
	return ingest_add_hook(s->in, upstream_hook(s->up));
}

/* --- the stations ------------------------------------------------------------ */

static double salinity_of(int station, uint64_t seq)
{
	/* Crosses 4.0 (hysteresis 0.3) every few batches. */
	return 4.0 + 1.2 * sin((double)seq / 2.5 + station);
}

static double value_of(int station, uint64_t seq, int i)
{
	return i == 0 ? salinity_of(station, seq) : (double)(station * 1000000 + seq * 10 + i);
}

static int64_t ts_of(uint64_t seq, int i)
{
	return t0_ms + (int64_t)seq * SEQ_MS + i;
}

static struct msg *make_msg(int station, uint64_t seq)
{
	char payload[2048], topic[128], ts[32], sent[32];
	size_t len = 0, tlen;
	struct msg *m;

	agri_time_format(ts_of(seq, READINGS), sent, sizeof(sent));
	len += (size_t)snprintf(payload + len, sizeof(payload) - len,
				"{\"v\":1,\"station\":\"%s\",\"seq\":%" PRIu64
				",\"sent_at\":\"%s\",\"readings\":[",
				station_names[station], seq, sent);
	for (int i = 0; i < READINGS; i++) {
		agri_time_format(ts_of(seq, i), ts, sizeof(ts));
		len += (size_t)snprintf(payload + len, sizeof(payload) - len,
					"%s{\"ts\":\"%s\",\"sensor\":\"%s\",\"metric\":\"%s\","
					"\"value\":%.6f,\"unit\":\"%s\",\"q\":\"ok\"}",
					i ? "," : "", ts, i == 0 ? "sonde" : "aux",
					i == 0 ? "salinity" : (i == 1 ? "m1" : i == 2 ? "m2" : "m3"),
					value_of(station, seq, i), i == 0 ? "g/L" : "1");
	}
	len += (size_t)snprintf(payload + len, sizeof(payload) - len, "]}");
	tlen = (size_t)snprintf(topic, sizeof(topic), "agri/v1/%s/telemetry", station_names[station]);
	m = malloc(sizeof(*m) + len + 1 + tlen + 1);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	/* Received a second after it was sent: live readings, whose alerts
	 * are notified at once (late ones wait for their station's backlog,
	 * docs/alerts.md). */
	m->received_ms = ts_of(seq, READINGS) + 1000;
	m->len = len;
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->topic = m->payload + len + 1;
	memcpy(m->topic, topic, tlen + 1);
	return m;
}

/* The next batch a station would publish: its oldest unacked sent one
 * (a resend after the restart) or a new one. */
static bool draining; /* the end of a run: resends only */

static bool pick_batch(int station, uint32_t *rng, uint64_t *seq)
{
	if (draining || pc_rand(rng) % 3 == 0)
		for (uint64_t q = 1; q < next_seq[station]; q++)
			if (bstate[station][q] == B_SENT) {
				*seq = q;
				return true;
			}
	if (draining || next_seq[station] >= MAX_SEQ)
		return false;
	*seq = next_seq[station]++;
	bstate[station][*seq] = B_SENT;
	return true;
}

static int find_station(const char *name)
{
	for (int i = 0; i < STATIONS; i++)
		if (strcmp(name, station_names[i]) == 0)
			return i;
	return -1;
}

/* Remembers the outbox rows a commit made (on the writer's connection). */
static void note_outbox_rows(struct stack *s)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(store_db(s->st),
			       "SELECT id, alert_id, event, created_at FROM outbox WHERE id > ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, last_row_id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);

		if (id <= 0 || id >= OUTBOX_MAX)
			continue;
		orows[id].committed = true;
		snprintf(orows[id].alert_id, sizeof(orows[id].alert_id), "%s",
			 (const char *)sqlite3_column_text(st, 1));
		snprintf(orows[id].event, sizeof(orows[id].event), "%s",
			 (const char *)sqlite3_column_text(st, 2));
		orows[id].created = sqlite3_column_int64(st, 3);
		if (id > last_row_id)
			last_row_id = id;
	}
	sqlite3_finalize(st);
}

/* One writer cycle: 1..4 messages in one transaction, as the writer thread. */
static int one_batch(struct stack *s, uint32_t *rng)
{
	struct msg *msgs[4];
	size_t n = 1 + pc_rand(rng) % 4, k = 0;
	int rc;

	for (size_t i = 0; i < n; i++) {
		int station = (int)(pc_rand(rng) % STATIONS);
		uint64_t seq;

		if (pick_batch(station, rng, &seq) && (msgs[k] = make_msg(station, seq)))
			k++;
	}
	if (!k)
		return 0;
	rc = in_apply(s->in, msgs, k);
	for (size_t h = 0; h < s->in->n_hooks; h++) {
		if (rc == 0 && s->in->hooks[h].on_commit)
			s->in->hooks[h].on_commit(s->in->hooks[h].ctx);
		else if (rc != 0 && s->in->hooks[h].on_rollback)
			s->in->hooks[h].on_rollback(s->in->hooks[h].ctx);
	}
	if (rc == 0) {
		n_commits++;
		for (size_t a = 0; a < s->in->n_acks; a++) {
			int st = find_station(s->in->acks[a].station);
			uint64_t q = s->in->acks[a].seq;

			if (st >= 0 && q < MAX_SEQ && bstate[st][q] != B_ACKED) {
				bstate[st][q] = B_ACKED;
				n_acked++;
			}
		}
		note_outbox_rows(s);
	} else {
		n_failed_commits++;
	}
	for (size_t i = 0; i < k; i++)
		free(msgs[i]);
	return rc;
}

static void run_until_crash(struct stack *s, uint32_t *rng)
{
	for (int step = 0; !pc_crashed(); step++) {
		uint32_t r = pc_rand(rng) % 20;
		int64_t next;
		int rc = 0;

		n_steps++;
		if (step == STEPS_MAX)
			pc_arm(1);
		if (r < 14) {
			rc = one_batch(s, rng);
		} else if (r < 18) {
			last_delivered_id = 0;
			rc = outbox_step(s->ob, 0, &next);
			if (rc > 0 && !pc_crashed() && last_delivered_id)
				orows[last_delivered_id].marked = true;
			rc = rc > 0 ? 0 : rc;
		} else {
			n_ckpt++;
			rc = store_checkpoint(s->st);
			rc = rc > 0 ? 0 : rc;
		}
		if (rc < 0 && !pc_crashed()) {
			v_open++;
			if (!quiet)
				printf("powercut gateway: step failed without a crash: %s\n",
				       strerror(-rc));
			pc_arm(1);
		}
	}
}

/* --- the checks ---------------------------------------------------------------- */

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* count(*) of table, 0 when the table is not there yet (the crash came
 * before the stack had created it). */
static int64_t q_count(sqlite3 *db, const char *table)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sqlite_master WHERE name = '%s'", table);
	if (q_int(db, sql) != 1)
		return 0;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	return q_int(db, sql);
}

static bool integrity_ok(sqlite3 *db)
{
	sqlite3_stmt *st;
	bool ok = false;

	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	return ok;
}

/* Readings, batches and ranges. Returns false when the database is broken. */
static bool check_readings(sqlite3 *db)
{
	sqlite3_stmt *st = NULL, *rg = NULL;
	int64_t total = 0, present_batches = 0;

	if (q_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'readings'") != 1) {
		/* cut before the schema was made */
		for (int i = 0; i < STATIONS; i++)
			for (uint64_t q = 1; q < next_seq[i]; q++)
				v_lost += bstate[i][q] == B_ACKED;
		return true;
	}
	if (sqlite3_prepare_v2(db,
			       "SELECT count(*), sum(r.value) FROM readings r JOIN series se ON"
			       " se.id = r.series_id JOIN stations s ON s.id = se.station_id"
			       " WHERE s.name = ?1 AND r.ts >= ?2 AND r.ts < ?3",
			       -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT count(*) FROM seq_ranges g JOIN stations s ON"
			       " s.id = g.station_id WHERE s.name = ?1 AND ?2 BETWEEN g.first AND g.last",
			       -1, &rg, NULL) != SQLITE_OK) {
		sqlite3_finalize(st);
		return false;
	}
	for (int i = 0; i < STATIONS; i++) {
		for (uint64_t q = 1; q < next_seq[i]; q++) {
			int64_t n = 0;
			double sum = 0, want = 0;

			sqlite3_bind_text(st, 1, station_names[i], -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, ts_of(q, 0));
			sqlite3_bind_int64(st, 3, ts_of(q, READINGS));
			if (sqlite3_step(st) == SQLITE_ROW) {
				n = sqlite3_column_int64(st, 0);
				sum = sqlite3_column_double(st, 1);
			}
			sqlite3_reset(st);
			for (int k = 0; k < READINGS; k++)
				want += value_of(i, q, k);
			if (n)
				present_batches++;
			total += n;
			if (bstate[i][q] == B_ACKED && n != READINGS) {
				v_lost++;
				if (!quiet)
					printf("powercut gateway: acked batch %s/%" PRIu64 " has %lld of %d"
					       " readings\n", station_names[i], q, (long long)n, READINGS);
			} else if (n != 0 && n != READINGS) {
				v_dup++; /* a batch is all or nothing */
			} else if (n == READINGS && fabs(sum - want) > 1e-6 * fabs(want) + 1e-6) {
				v_lost++;
				if (!quiet)
					printf("powercut gateway: batch %s/%" PRIu64 " values changed\n",
					       station_names[i], q);
			}
			if (bstate[i][q] == B_ACKED) {
				int64_t in_range = 0;

				sqlite3_bind_text(rg, 1, station_names[i], -1, SQLITE_STATIC);
				sqlite3_bind_int64(rg, 2, (sqlite3_int64)q);
				if (sqlite3_step(rg) == SQLITE_ROW)
					in_range = sqlite3_column_int64(rg, 0);
				sqlite3_reset(rg);
				if (in_range != 1)
					v_ranges++;
			}
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(rg);
	if (q_count(db, "readings") != total) {
		v_phantom++; /* a reading from no batch any station sent */
		if (!quiet)
			printf("powercut gateway: %lld readings, %lld from batches sent\n",
			       (long long)q_count(db, "readings"), (long long)total);
	}
	if (q_count(db, "v_readings") != total)
		v_phantom++;
	/* The upstream queue: every stored reading exactly once. */
	if (q_count(db, "upstream_queue") != total ||
	    (total && q_int(db, "SELECT count(*) FROM (SELECT DISTINCT series_id, ts FROM"
			    " upstream_queue) q JOIN readings r USING (series_id, ts)") != total)) {
		v_queue++;
		if (!quiet)
			printf("powercut gateway: upstream queue %lld rows for %lld readings\n",
			       (long long)q_count(db, "upstream_queue"),
			       (long long)total);
	}
	(void)present_batches;
	return true;
}

/* Outbox rows and alert episodes. */
static void check_outbox(sqlite3 *db)
{
	sqlite3_stmt *st;

	/* Every committed row is still there, unchanged. */
	if (sqlite3_prepare_v2(db, "SELECT alert_id, event FROM outbox WHERE id = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		for (int64_t id = 1; id <= last_row_id; id++) {
			if (!orows[id].committed)
				continue;
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) != SQLITE_ROW ||
			    strcmp((const char *)sqlite3_column_text(st, 0), orows[id].alert_id) != 0 ||
			    strcmp((const char *)sqlite3_column_text(st, 1), orows[id].event) != 0) {
				v_outbox_lost++;
				if (!quiet)
					printf("powercut gateway: outbox row %lld lost or changed\n",
					       (long long)id);
			}
			sqlite3_reset(st);
		}
		sqlite3_finalize(st);
	}
	/* The rows after last_row_id committed after all (a commit cut short
	 * that reached the disk): remember them. */
	if (sqlite3_prepare_v2(db, "SELECT id, alert_id, event, created_at FROM outbox WHERE id > ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, last_row_id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(st, 0);

			if (id <= 0 || id >= OUTBOX_MAX)
				continue;
			orows[id].committed = true;
			snprintf(orows[id].alert_id, sizeof(orows[id].alert_id), "%s",
				 (const char *)sqlite3_column_text(st, 1));
			snprintf(orows[id].event, sizeof(orows[id].event), "%s",
				 (const char *)sqlite3_column_text(st, 2));
			orows[id].created = sqlite3_column_int64(st, 3);
			last_row_id = id;
		}
		sqlite3_finalize(st);
	}
	/*
	 * Each event told live (late 0) has its one outbox row; an event whose
	 * readings came late (a replay's, late 1) has none of its own: its
	 * alert's late news says it, one row ("past" or "late") for one or
	 * more of them, and that row may still wait for the station to settle
	 * (gateway/src/alerts/replay.c, "Late news"). So the rows do not equal
	 * the events one for one once a resent batch moves an episode.
	 */
	if (q_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('outbox', 'alert_events')") != 2)
		return; /* cut before the stack made them */
	if (q_int(db, "SELECT count(*) FROM alert_events WHERE late = 0") !=
	    q_int(db, "SELECT count(*) FROM outbox WHERE event IN ('raised', 'cleared', 'severity',"
		      " 'acknowledged', 'closed')")) {
		v_episode++;
		if (!quiet)
			printf("powercut gateway: %lld events told live, %lld outbox rows for them\n",
			       (long long)q_int(db, "SELECT count(*) FROM alert_events WHERE late = 0"),
			       (long long)q_int(db, "SELECT count(*) FROM outbox WHERE event IN"
					       " ('raised', 'cleared', 'severity', 'acknowledged',"
					       " 'closed')"));
	}
	if (q_int(db, "SELECT count(*) FROM (SELECT alert_id, count(*) AS n FROM outbox WHERE"
		      " event IN ('past', 'late') GROUP BY alert_id) o WHERE o.n > (SELECT count(*)"
		      " FROM alert_events e WHERE e.alert_id = o.alert_id AND e.late = 1)") > 0) {
		v_episode++;
		if (!quiet)
			printf("powercut gateway: more late news rows than late events\n");
	}
}

/*
 * No episode stored or told twice, none missing: the episodes of each
 * station's salinity alert (alert_episodes, retracted ones aside) equal
 * the crossings of its stored readings taken in reading order (raised on
 * the first reading >= 4.0, cleared on the first < 3.7), whatever order
 * the batches arrived in; and each episode, even one retracted, was
 * raised once. (alert_events alone cannot say it: it keeps the
 * transitions as told, and a resent batch that splits an episode told
 * live revises that episode's end in alert_episodes only, so its events
 * read raised, raised (the late part), cleared, cleared in reading time.)
 */
#define EPS_MAX 1024
static void check_episodes(sqlite3 *db)
{
	static int64_t want[EPS_MAX][2], got[EPS_MAX][2];
	sqlite3_stmt *rd = NULL, *ep = NULL;

	if (q_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('alert_episodes',"
		      " 'alert_events')") != 2)
		return;
	if (q_int(db, "SELECT count(*) FROM alert_episodes") !=
	    q_int(db, "SELECT count(*) FROM alert_events WHERE state = 'active'")) {
		v_episode++;
		if (!quiet)
			printf("powercut gateway: %lld episodes, %lld raised\n",
			       (long long)q_int(db, "SELECT count(*) FROM alert_episodes"),
			       (long long)q_int(db, "SELECT count(*) FROM alert_events"
					       " WHERE state = 'active'"));
	}
	if (sqlite3_prepare_v2(db,
			       "SELECT r.ts, r.value FROM readings r JOIN series se ON"
			       " se.id = r.series_id JOIN stations s ON s.id = se.station_id"
			       " WHERE s.name = ?1 AND se.metric = 'salinity' ORDER BY r.ts",
			       -1, &rd, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT start, ifnull(end, -1) FROM alert_episodes WHERE alert_id = ?1"
			       " AND retracted = 0 ORDER BY start",
			       -1, &ep, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < STATIONS; i++) {
		char id[64];
		int nw = 0, ng = 0;
		bool on = false;

		sqlite3_bind_text(rd, 1, station_names[i], -1, SQLITE_STATIC);
		while (sqlite3_step(rd) == SQLITE_ROW && nw < EPS_MAX) {
			int64_t ts = sqlite3_column_int64(rd, 0);
			double v = sqlite3_column_double(rd, 1);

			if (!on && v >= 4.0) {
				want[nw][0] = ts;
				want[nw][1] = -1;
				on = true;
			} else if (on && v < 3.7 - 1e-9) {
				want[nw++][1] = ts;
				on = false;
			}
		}
		nw += on;
		sqlite3_reset(rd);
		snprintf(id, sizeof(id), "sal-hi/%s/sonde", station_names[i]);
		sqlite3_bind_text(ep, 1, id, -1, SQLITE_TRANSIENT);
		while (sqlite3_step(ep) == SQLITE_ROW && ng < EPS_MAX) {
			got[ng][0] = sqlite3_column_int64(ep, 0);
			got[ng++][1] = sqlite3_column_int64(ep, 1);
		}
		sqlite3_reset(ep);
		if (nw == ng && (!nw || !memcmp(want, got, (size_t)nw * sizeof(want[0]))))
			continue;
		v_episode++;
		if (quiet)
			continue;
		printf("powercut gateway: %s episodes (minutes from t0) differ from its"
		       " readings':\n  stored", id);
		for (int k = 0; k < ng; k++)
			printf(" [%.2f, %.2f]", (double)(got[k][0] - t0_ms) / 60000.0,
			       got[k][1] < 0 ? -1.0 : (double)(got[k][1] - t0_ms) / 60000.0);
		printf("\n  truth ");
		for (int k = 0; k < nw; k++)
			printf(" [%.2f, %.2f]", (double)(want[k][0] - t0_ms) / 60000.0,
			       want[k][1] < 0 ? -1.0 : (double)(want[k][1] - t0_ms) / 60000.0);
		printf("\n");
	}
out:
	sqlite3_finalize(rd);
	sqlite3_finalize(ep);
}

static bool verify(void)
{
	sqlite3 *db = NULL;
	bool ok = false;

	const char *why = "cannot open";

	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
		why = "integrity_check is not ok";
		if (integrity_ok(db)) {
			why = "cannot read the tables";
			ok = check_readings(db);
			check_outbox(db);
			check_episodes(db);
		}
	}
	if (!ok) {
		v_corrupt++;
		if (!quiet)
			printf("powercut gateway: after a power cut: %s (%s)\n", why,
			       db ? sqlite3_errmsg(db) : "-");
	}
	sqlite3_close(db);
	return ok;
}

/* End of a run: the stations resend, the outbox drains; every committed
 * row reaches the receiver. */
static void drain(void)
{
	struct stack s;
	uint32_t rng = 1;
	int64_t next;

	if (stack_open(&s) < 0) {
		v_corrupt++;
		stack_close(&s);
		return;
	}
	draining = true;
	for (int guard = 0; guard < 10000; guard++) {
		bool any = false;

		for (int i = 0; i < STATIONS; i++)
			for (uint64_t q = 1; q < next_seq[i]; q++)
				any |= bstate[i][q] == B_SENT;
		if (!any)
			break;
		if (one_batch(&s, &rng) < 0)
			break;
	}
	draining = false;
	while (outbox_step(s.ob, 0, &next) > 0)
		;
	stack_close(&s);
	for (int64_t id = 1; id <= last_row_id; id++)
		if (orows[id].committed && orows[id].delivered == 0) {
			v_undelivered++;
			if (!quiet)
				printf("powercut gateway: outbox row %lld never delivered\n", (long long)id);
		}
	for (int i = 0; i < STATIONS; i++)
		for (uint64_t q = 1; q < next_seq[i]; q++)
			if (bstate[i][q] != B_ACKED)
				v_lost++;
}

static void remove_files(void)
{
	char p[320];

	unlink(db_path);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	unlink(p);
}

static void new_run(void)
{
	pc_reset();
	remove_files();
	memset(bstate, 0, sizeof(bstate));
	memset(orows, 0, sizeof(orows));
	last_row_id = 0;
	for (int i = 0; i < STATIONS; i++)
		next_seq[i] = 1;
}

static uint64_t violations(void)
{
	return v_corrupt + v_lost + v_dup + v_phantom + v_ranges + v_outbox_lost + v_episode +
	       v_queue + v_undelivered + v_open + v_renotified;
}

static uint64_t run_points(uint64_t points, uint32_t *rng, double *secs)
{
	struct timespec t0, t1;

	n_points = n_commits = n_acked = n_failed_commits = n_delivered = n_redelivered = 0;
	n_steps = n_ckpt = 0;
	v_corrupt = v_lost = v_dup = v_phantom = v_ranges = v_outbox_lost = v_episode = 0;
	v_queue = v_undelivered = v_open = v_renotified = 0;
	memset(&cut_sum, 0, sizeof(cut_sum));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	new_run();
	for (uint64_t i = 0; i < points; i++) {
		struct stack s;
		struct pc_cut_stats cs;
		int rc;

		pc_arm(1 + pc_rand(rng) % 120);
		rc = stack_open(&s);
		if (rc == 0)
			run_until_crash(&s, rng);
		else if (!pc_crashed()) {
			v_open++;
			if (!quiet)
				printf("powercut gateway: cannot open: %s\n", strerror(-rc));
		}
		if (!pc_crashed())
			pc_arm(1);
		stack_close(&s);
		CHECK_INT(pc_powercut(rng, &cs), 0);
		cut_sum.files += cs.files;
		cut_sum.pages_kept += cs.pages_kept;
		cut_sum.pages_lost += cs.pages_lost;
		cut_sum.torn += cs.torn;
		cut_sum.garbled += cs.garbled;
		n_points++;
		if (!verify()) {
			new_run(); /* beyond repair (the self-check's lying disk) */
			continue;
		}
		if ((i + 1) % RUN_POINTS == 0 || i + 1 == points) {
			drain();
			if (!verify())
				v_corrupt++;
			new_run();
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return violations();
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -EIO;
}

static void print_run(const char *what, uint64_t bad, double secs, uint32_t seed)
{
	printf("powercut gateway%s: %" PRIu64 " crash points (seed 0x%08x) in %.1f s: %" PRIu64
	       " commits (%" PRIu64 " cut short), %" PRIu64 " batches acked, %" PRIu64
	       " checkpoints, %" PRIu64 " notifications delivered (%" PRIu64
	       " resent with the same delivery id); disk kept %" PRIu64 " unsynced pages, lost %" PRIu64
	       ", tore %" PRIu64 ", garbled %" PRIu64 "\n",
	       what, n_points, seed, secs, n_commits, n_failed_commits, n_acked, n_ckpt, n_delivered,
	       n_redelivered, cut_sum.pages_kept, cut_sum.pages_lost, cut_sum.torn, cut_sum.garbled);
	printf("powercut gateway%s: invariants (%" PRIu64 " violations): corrupt %" PRIu64
	       ", acked lost %" PRIu64 ", partial %" PRIu64 ", phantom %" PRIu64 ", ranges %" PRIu64
	       ", outbox rows lost %" PRIu64 ", episodes %" PRIu64 ", upstream queue %" PRIu64
	       ", undelivered %" PRIu64 ", notified again after marked %" PRIu64
	       ", errors %" PRIu64 "\n",
	       what, bad, v_corrupt, v_lost, v_dup, v_phantom, v_ranges, v_outbox_lost, v_episode,
	       v_queue, v_undelivered, v_renotified, v_open);
}

int main(int argc, char **argv)
{
	const char *env = getenv("POWERCUT_POINTS");
	uint64_t points = argc > 1 ? strtoull(argv[1], NULL, 10) : env ? strtoull(env, NULL, 10) : 2000;
	uint32_t seed = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 0x5eed2025u;
	uint32_t rng = seed;
	struct agri_err err = {0};
	char rules[320], text[1024];
	uint64_t bad;
	double secs;
	int saved_err = dup(2), null_fd = open("/dev/null", O_WRONLY);

	/* In memory when there is a tmpfs: the files are rewritten at every
	 * crash point, and the disk's durability is simulated anyway. */
	if (access("/dev/shm", W_OK) == 0)
		snprintf(dir, sizeof(dir), "/dev/shm/agri-powercut-gw-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(db_path, sizeof(db_path), "%s/agri.db", dir);
	snprintf(cfg_path, sizeof(cfg_path), "%s/gateway.json", dir);
	snprintf(rules, sizeof(rules), "%s/rules.json", dir);
	CHECK_INT(write_file(rules, "{\"rules\":[{\"id\":\"sal-hi\",\"metric\":\"salinity\","
				   "\"above\":4.0,\"hysteresis\":0.3,\"severity\":\"alarm\","
				   "\"notify\":[\"ops\"]}]}\n"), 0);
	snprintf(text, sizeof(text),
		 "{\"broker\":{\"url\":\"tcp://127.0.0.1:9\",\"client_id\":\"pc-gw\"},"
		 "\"db\":{\"path\":\"%s\",\"synchronous\":\"%s\"},\"rules_file\":\"%s\","
		 "\"notify\":{\"webhooks\":[{\"name\":\"ops\",\"url\":\"http://127.0.0.1:9/hook\"}]},"
		 "\"upstream\":{\"postgres\":{\"conninfo\":\"host=127.0.0.1 port=9 dbname=agri\"}},"
		 "\"forecast\":{\"enabled\":false}}\n",
		 db_path, getenv("POWERCUT_SYNC") ? getenv("POWERCUT_SYNC") : "full", rules);
	CHECK_INT(write_file(cfg_path, text), 0);
	if (gateway_config_load(cfg_path, &cfg, &err) < 0) {
		agri_err_format(&err, text, sizeof(text));
		fprintf(stderr, "gateway.json: %s\n", text);
		return 1;
	}
	CHECK(cfg.db.sync_full || getenv("POWERCUT_SYNC"));
	t0_ms = (util_now_ms() / 3600000 - 24 * 20) * 3600000;
	CHECK_INT(pc_vfs_register(true), SQLITE_OK);
	if (!getenv("POWERCUT_VERBOSE") && null_fd >= 0)
		dup2(null_fd, 2); /* every crash makes the gateway log I/O errors */

	/* Self-check: a disk that ignores fsync must lose acked batches. */
	quiet = true;
	pc_set_lying_disk(true);
	bad = run_points(80, &rng, &secs);
	pc_set_lying_disk(false);
	quiet = false;
	print_run(" self-check (a disk that ignores fsync)", bad, secs, seed);
	CHECK(bad > 0);

	bad = run_points(points, &rng, &secs);
	print_run("", bad, secs, seed);
	if (saved_err >= 0)
		dup2(saved_err, 2);
	CHECK_INT(bad, 0);
	CHECK_INT(n_points, points);
	CHECK(n_acked > 0 && n_delivered > 0 && cut_sum.pages_lost > 0 && cut_sum.torn > 0);
	pc_reset();
	remove_files();
	unlink(rules);
	unlink(cfg_path);
	rmdir(dir);
	return test_main("test_powercut_gateway");
}
