/*
 * The persistent outbox (see outbox.h, docs/notify.md): rows staged in the
 * writer's transaction, delivered by one notifier thread a channel, each on
 * its own SQLite connection, strictly in id order, the head row retried
 * with jittered exponential backoff until its channel takes it.
 */
#include "notify/outbox.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/sqlite_errno.h"
#include "agri/buf.h"
#include "agri/log.h"
#include "agri/msg.h"
#include "agri/util.h"
#include "core/ingest.h"
#include "core/store.h"
#include "notify/claims.h"

#define LOG "outbox"
#define PAYLOAD_MAX 4096
#define ERR_MAX 256
#define STATS_EVERY_MS 1000
#define PRUNE_EVERY_MS (10 * 60 * 1000)
#define PRUNE_ROWS 1000
#define MARK_TRIES 50
#define BUSY_TIMEOUT_MS 5000
#define HUB_ID_MAX 72

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS outbox("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" channel TEXT NOT NULL,"
	" alert_id TEXT NOT NULL,"
	" event TEXT NOT NULL,"
	" payload TEXT NOT NULL,"
	" text_en TEXT NOT NULL DEFAULT '',"
	" text_vi TEXT NOT NULL DEFAULT '',"
	" created_at INTEGER NOT NULL,"      /* ms, wall clock */
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_at INTEGER NOT NULL DEFAULT 0," /* ms: not before */
	" delivered_at INTEGER,"
	" dropped_at INTEGER,"               /* refused for good */
	" error TEXT,"
	" person TEXT, address TEXT, sms TEXT," /* a person's message */
	" episode TEXT, transition TEXT," /* its claim key (docs/ha.md) */
	" claim TEXT);" /* NULL (no claims), won, peer:<hub>, unclaimed, reconciled, duplicate:<hub> */
	"CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(channel, id)"
	" WHERE delivered_at IS NULL AND dropped_at IS NULL;";

enum {
	Q_HEAD, Q_DELIVERED, Q_DROPPED, Q_RETRY, Q_COUNT, Q_PRUNE, Q_WAIT, Q_PEER,
	Q_UNCLAIMED, Q_SETCLAIM, Q_N
};

static const char *const sql[Q_N] = {
	[Q_HEAD] = "SELECT id, alert_id, event, payload, text_en, text_vi, created_at,"
		   " attempts, next_at, coalesce(person, ''), coalesce(address, ''),"
		   " coalesce(sms, ''), coalesce(episode, ''), coalesce(transition, '')"
		   " FROM outbox WHERE channel = ?1"
		   " AND delivered_at IS NULL AND dropped_at IS NULL ORDER BY id LIMIT 1",
	[Q_DELIVERED] = "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1,"
			" error = NULL, claim = ?3 WHERE id = ?1",
	[Q_DROPPED] = "UPDATE outbox SET dropped_at = ?2, attempts = attempts + 1,"
		      " error = ?3 WHERE id = ?1",
	[Q_RETRY] = "UPDATE outbox SET next_at = ?2, attempts = attempts + 1,"
		    " error = ?3 WHERE id = ?1",
	[Q_COUNT] = "SELECT count(*), min(created_at) FROM outbox WHERE channel = ?1"
		    " AND delivered_at IS NULL AND dropped_at IS NULL",
	[Q_PRUNE] = "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
		    " WHERE channel = ?1 AND coalesce(delivered_at, dropped_at) < ?2"
		    " LIMIT 1000)",
	/* claims (docs/ha.md): a row that waits for the claims database or
	 * the peer hub, without counting an attempt; a row the peer claimed */
	[Q_WAIT] = "UPDATE outbox SET next_at = ?2, error = ?3 WHERE id = ?1",
	[Q_PEER] = "UPDATE outbox SET delivered_at = ?2, error = NULL, claim = ?3 WHERE id = ?1",
	[Q_UNCLAIMED] = "SELECT id, episode, transition, coalesce(person, ''),"
			" coalesce(address, '') FROM outbox WHERE channel = ?1"
			" AND claim = 'unclaimed' ORDER BY id LIMIT 64",
	[Q_SETCLAIM] = "UPDATE outbox SET claim = ?3 WHERE id = ?1 AND ?2 IS NOT NULL",
};

struct chan {
	struct outbox *ob;
	size_t idx;
	char name[64];
	outbox_deliver_fn deliver;
	void *ctx;
	/* notifier thread only (or the outbox_step caller) */
	sqlite3 *db;
	sqlite3_stmt *q[Q_N];
	uint32_t rng;
	struct log_complaint down;
	int64_t stats_mono_ms, prune_mono_ms;
	bool reconcile_due;   /* rows sent unclaimed may wait for their claim */
	pthread_t thread;
	bool running;
	/* any thread */
	atomic_uint_least64_t delivered, failed, dropped, pending;
	atomic_int_least64_t oldest_ms;
	atomic_bool up;
	atomic_uint_least64_t peer; /* rows another hub claimed */
};

struct outbox {
	struct outbox_options opt;
	size_t n;
	struct chan *ch;
	pthread_mutex_t mu;   /* guards wake_seq, stopping */
	pthread_cond_t cond;  /* CLOCK_MONOTONIC */
	uint64_t wake_seq;
	bool stopping, started;
};

static int64_t real_now_ms(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_ms(const struct outbox *ob)
{
	return ob->opt.now_ms(ob->opt.clock_ctx);
}

/* An outbox made before people's messages gets their columns. */
static int upgrade(sqlite3 *db)
{
	static const char *const cols[] = {"person", "address", "sms", "episode", "transition",
					   "claim"};
	char stmt[96];
	int rc = SQLITE_OK;

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cols) && rc == SQLITE_OK; i++) {
		snprintf(stmt, sizeof(stmt), "SELECT %s FROM outbox LIMIT 0", cols[i]);
		if (sqlite3_exec(db, stmt, NULL, NULL, NULL) == SQLITE_OK)
			continue;
		snprintf(stmt, sizeof(stmt), "ALTER TABLE outbox ADD COLUMN %s TEXT", cols[i]);
		rc = sqlite3_exec(db, stmt, NULL, NULL, NULL);
	}
	return rc;
}

int outbox_init(sqlite3 *db)
{
	int rc = sqlite3_exec(db, schema, NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		rc = upgrade(db);
	return rc == SQLITE_OK ? 0 : agri_sqlite_errno(rc);
}

/* --- staging (writer thread) -------------------------------------------- */

int outbox_episode_key(const struct agri_alert *a, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s@%" PRId64, a->id, a->raised_at_ms);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

/* The transition part of a notice's claim key (see outbox_notice). */
static int transition_key(const struct outbox_notice *no, char *buf, size_t len)
{
	int n;

	if (no->transition && no->transition[0])
		n = snprintf(buf, len, "%s", no->transition);
	else if (strcmp(no->event, "severity") == 0)
		n = snprintf(buf, len, "severity:%s@%" PRId64, no->alert->severity,
			     no->alert->updated_at_ms);
	else
		n = snprintf(buf, len, "%s", no->event);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int outbox_stage(sqlite3 *db, const struct outbox_notice *no,
		 const char *const *channels, size_t n)
{
	static const char ins[] =
		"INSERT INTO outbox(channel, alert_id, event, payload, text_en,"
		" text_vi, created_at, episode, transition) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
		" ?8, ?9)";
	char payload[PAYLOAD_MAX], episode[224], transition[96];
	sqlite3_stmt *q = NULL;
	int64_t now = real_now_ms(NULL);
	int rc, rows = 0, len;

	if (!db || !no || !no->alert || (n && !channels))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!channels[i] || !channels[i][0])
			return -EINVAL;
	if (n == 0)
		return 0;
	len = agri_alert_encode(no->alert, payload, sizeof(payload));
	if (len < 0)
		return len;
	if (!no->event || (rc = outbox_episode_key(no->alert, episode, sizeof(episode))) < 0 ||
	    (rc = transition_key(no, transition, sizeof(transition))) < 0)
		return no->event ? rc : -EINVAL;
	rc = sqlite3_prepare_v2(db, ins, -1, &q, NULL);
	if (rc != SQLITE_OK) {
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		for (size_t j = 0; j < i; j++)
			if (strcmp(channels[i], channels[j]) == 0)
				dup = true;
		if (dup)
			continue;
		sqlite3_bind_text(q, 1, channels[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, no->alert->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, no->event, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, payload, len, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, no->text_en, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 6, no->text_vi, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 7, now);
		sqlite3_bind_text(q, 8, episode, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 9, transition, -1, SQLITE_STATIC);
		rc = sqlite3_step(q);
		sqlite3_reset(q);
		if (rc != SQLITE_DONE) {
			rc = agri_sqlite_errno(rc);
			goto out;
		}
		rows++;
	}
	rc = rows;
out:
	sqlite3_finalize(q);
	return rc;
}

int outbox_stage_message(sqlite3 *db, const struct outbox_message *m,
			 const struct outbox_route *routes, size_t n)
{
	static const char ins[] =
		"INSERT INTO outbox(channel, alert_id, event, payload, text_en, text_vi,"
		" created_at, person, address, sms, episode, transition)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?2, ?3)";
	sqlite3_stmt *q = NULL;
	int64_t now = real_now_ms(NULL);
	int rc, rows = 0;

	if (!db || !m || !m->id || !m->payload || (n && !routes))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!routes[i].channel || !routes[i].channel[0])
			return -EINVAL;
	if (n == 0)
		return 0;
	rc = sqlite3_prepare_v2(db, ins, -1, &q, NULL);
	if (rc != SQLITE_OK) {
		rc = agri_sqlite_errno(rc);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *addr = routes[i].address ? routes[i].address : "";
		bool dup = false;

		for (size_t j = 0; j < i; j++)
			if (strcmp(routes[i].channel, routes[j].channel) == 0 &&
			    strcmp(addr, routes[j].address ? routes[j].address : "") == 0)
				dup = true;
		if (dup)
			continue;
		sqlite3_bind_text(q, 1, routes[i].channel, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, m->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, m->kind ? m->kind : "alert", -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 4, m->payload, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 5, m->text_en ? m->text_en : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 6, m->text_vi ? m->text_vi : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 7, now);
		sqlite3_bind_text(q, 8, m->person ? m->person : "", -1, SQLITE_STATIC);
		if (addr[0])
			sqlite3_bind_text(q, 9, addr, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 9);
		sqlite3_bind_text(q, 10, m->sms ? m->sms : "", -1, SQLITE_STATIC);
		rc = sqlite3_step(q);
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
		if (rc != SQLITE_DONE) {
			rc = agri_sqlite_errno(rc);
			goto out;
		}
		rows++;
	}
	rc = rows;
out:
	sqlite3_finalize(q);
	return rc;
}

/* --- the outbox ------------------------------------------------------------ */

static void chan_close(struct chan *c)
{
	for (int i = 0; i < Q_N; i++) {
		sqlite3_finalize(c->q[i]);
		c->q[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

static int chan_open(struct outbox *ob, struct chan *c, const char *path)
{
	char pragma[96];
	int rc;

	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return agri_sqlite_errno(rc);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	snprintf(pragma, sizeof(pragma), "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
		 ob->opt.sync_full ? "FULL" : "NORMAL");
	rc = sqlite3_exec(c->db, pragma, NULL, NULL, NULL);
	if (rc == SQLITE_OK && c->idx == 0)
		rc = sqlite3_exec(c->db, schema, NULL, NULL, NULL);
	if (rc == SQLITE_OK && c->idx == 0)
		rc = upgrade(c->db);
	for (int i = 0; rc == SQLITE_OK && i < Q_N; i++)
		rc = sqlite3_prepare_v3(c->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&c->q[i], NULL);
	if (rc != SQLITE_OK) {
		log_error(LOG, "cannot open the outbox channel=%s error=\"%s\"", c->name,
			  sqlite3_errmsg(c->db));
		return agri_sqlite_errno(rc);
	}
	return 0;
}

struct outbox *outbox_new(const char *db_path, const struct outbox_channel *chans,
			  size_t n, const struct outbox_options *opt, int *err)
{
	struct outbox *ob = calloc(1, sizeof(*ob));
	int rc = -ENOMEM;

	if (!ob)
		goto fail;
	if (opt)
		ob->opt = *opt;
	if (ob->opt.backoff_base_ms <= 0)
		ob->opt.backoff_base_ms = 1000;
	if (ob->opt.backoff_cap_ms <= 0)
		ob->opt.backoff_cap_ms = 60000;
	if (ob->opt.poll_ms <= 0)
		ob->opt.poll_ms = 5000;
	if (ob->opt.keep_s <= 0)
		ob->opt.keep_s = 7 * 86400;
	if (!ob->opt.now_ms)
		ob->opt.now_ms = real_now_ms;
	pthread_mutex_init(&ob->mu, NULL);
	util_cond_init_mono(&ob->cond);
	if (n > OUTBOX_CHANNELS_MAX) {
		rc = -EINVAL;
		goto fail;
	}
	ob->ch = calloc(n ? n : 1, sizeof(*ob->ch));
	if (!ob->ch)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct chan *c = &ob->ch[i];

		if (!chans[i].name || !chans[i].name[0] || !chans[i].deliver ||
		    strlen(chans[i].name) >= sizeof(c->name)) {
			rc = -EINVAL;
			goto fail;
		}
		c->ob = ob;
		c->idx = i;
		snprintf(c->name, sizeof(c->name), "%s", chans[i].name);
		c->deliver = chans[i].deliver;
		c->ctx = chans[i].ctx;
		c->rng = ob->opt.seed ? ob->opt.seed + (uint32_t)i * 7919u
				      : (uint32_t)util_mono_ms() * 2654435761u + (uint32_t)i + 1;
		if (!c->rng)
			c->rng = 1;
		atomic_init(&c->up, true);
		c->reconcile_due = true; /* rows a previous run sent unclaimed */
		ob->n = i + 1;
		rc = chan_open(ob, c, db_path);
		if (rc < 0)
			goto fail;
	}
	return ob;
fail:
	*err = rc;
	outbox_free(ob);
	return NULL;
}

static void refresh_stats(struct chan *c, bool force)
{
	sqlite3_stmt *q = c->q[Q_COUNT];
	int64_t mono = util_mono_ms();

	if (!force && c->stats_mono_ms && mono - c->stats_mono_ms < STATS_EVERY_MS)
		return;
	c->stats_mono_ms = mono;
	sqlite3_bind_text(q, 1, c->name, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW) {
		atomic_store(&c->pending, (uint64_t)sqlite3_column_int64(q, 0));
		atomic_store(&c->oldest_ms, sqlite3_column_int64(q, 1));
	}
	sqlite3_reset(q);
}

static void prune(struct chan *c, int64_t now)
{
	sqlite3_stmt *q = c->q[Q_PRUNE];
	int64_t mono = util_mono_ms();

	if (c->prune_mono_ms && mono - c->prune_mono_ms < PRUNE_EVERY_MS)
		return;
	c->prune_mono_ms = mono;
	sqlite3_bind_text(q, 1, c->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, now - c->ob->opt.keep_s * 1000);
	if (sqlite3_step(q) != SQLITE_DONE)
		log_warn(LOG, "cannot prune old rows channel=%s error=\"%s\"", c->name,
			 sqlite3_errmsg(c->db));
	sqlite3_reset(q);
}

/* Runs an UPDATE of row id, retrying while the database is busy: the
 * delivered mark is what keeps a notification from going out twice.
 * error: the error column, or the claim column for Q_DELIVERED/Q_PEER. */
static int mark(struct chan *c, int which, int64_t id, int64_t at, const char *error)
{
	sqlite3_stmt *q = c->q[which];
	int rc = SQLITE_OK;

	for (int i = 0; i < MARK_TRIES; i++) {
		sqlite3_bind_int64(q, 1, id);
		sqlite3_bind_int64(q, 2, at);
		sqlite3_bind_text(q, 3, error, -1, SQLITE_STATIC); /* Q_DELIVERED, Q_PEER: the claim */
		rc = sqlite3_step(q);
		sqlite3_reset(q);
		if (rc == SQLITE_DONE)
			return 0;
		if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		util_sleep_ms(100);
	}
	log_error(LOG, "cannot update row channel=%s id=%" PRId64 " error=\"%s\"",
		  c->name, id, sqlite3_errmsg(c->db));
	return agri_sqlite_errno(rc);
}

static char *dup_col(sqlite3_stmt *q, int col)
{
	const unsigned char *s = sqlite3_column_text(q, col);
	int len = sqlite3_column_bytes(q, col);
	char *d = malloc((size_t)len + 1);

	if (d) {
		if (len)
			memcpy(d, s, (size_t)len);
		d[len] = '\0';
	}
	return d;
}

/* The recipient part of a row's claim key. */
static void claim_recipient(const char *person, const char *address, char *buf, size_t len)
{
	if (person[0] || address[0])
		snprintf(buf, len, "%s:%s", person, address);
	else
		buf[0] = '\0';
}

/*
 * Rows this channel sent unclaimed (the claims database was away) are
 * recorded as claims once it answers (docs/ha.md), a few dozen a step;
 * each gets claim "reconciled", or "duplicate:<hub>" when the other hub
 * had claimed and sent it too. Notifier thread.
 */
static void reconcile(struct chan *c)
{
	struct {
		int64_t id;
		char claim[16 + HUB_ID_MAX];
	} done[64];
	sqlite3_stmt *q = c->q[Q_UNCLAIMED];
	size_t n = 0;
	bool stopped = false;
	int rc;

	sqlite3_bind_text(q, 1, c->name, -1, SQLITE_STATIC);
	while (n < AGRI_ARRAY_SIZE(done) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		char recipient[256], winner[HUB_ID_MAX];
		struct claim_key k = {.episode = (const char *)sqlite3_column_text(q, 1),
				      .transition = (const char *)sqlite3_column_text(q, 2),
				      .channel = c->name, .recipient = recipient};

		claim_recipient((const char *)sqlite3_column_text(q, 3),
				(const char *)sqlite3_column_text(q, 4), recipient, sizeof(recipient));
		if (!k.episode || !k.transition)
			continue;
		rc = claims_record(c->ob->opt.claims, &k, winner, sizeof(winner));
		if (rc < 0) {
			stopped = true;
			break;
		}
		done[n].id = sqlite3_column_int64(q, 0);
		if (rc == 1)
			snprintf(done[n].claim, sizeof(done[n].claim), "reconciled");
		else
			snprintf(done[n].claim, sizeof(done[n].claim), "duplicate:%s", winner);
		if (rc == 0)
			log_warn(LOG, "sent by both hubs while the claims database was away channel=%s"
				 " episode=%s transition=%s peer=%s", c->name, k.episode, k.transition,
				 winner);
		n++;
	}
	sqlite3_reset(q);
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *u = c->q[Q_SETCLAIM];

		sqlite3_bind_int64(u, 1, done[i].id);
		sqlite3_bind_int(u, 2, 1);
		sqlite3_bind_text(u, 3, done[i].claim, -1, SQLITE_STATIC);
		if (sqlite3_step(u) != SQLITE_DONE)
			stopped = true;
		sqlite3_reset(u);
	}
	if (n)
		log_info(LOG, "claims recorded for unclaimed sends channel=%s rows=%zu", c->name, n);
	if (!stopped && n < AGRI_ARRAY_SIZE(done))
		c->reconcile_due = false;
}

int outbox_step(struct outbox *ob, size_t idx, int64_t *next_ms)
{
	struct chan *c;
	sqlite3_stmt *q;
	struct outbox_item it = {0};
	char *alert_id = NULL, *event = NULL, *payload = NULL, *en = NULL, *vi = NULL;
	char *person = NULL, *address = NULL, *sms = NULL, *episode = NULL, *transition = NULL;
	char err[ERR_MAX] = "", winner[HUB_ID_MAX] = "", claim[16 + HUB_ID_MAX];
	const char *claimed = NULL; /* the claim column once delivered */
	int64_t now, next_at, backoff;
	int rc;

	if (!ob || idx >= ob->n)
		return -ENOENT;
	c = &ob->ch[idx];
	q = c->q[Q_HEAD];
	now = now_ms(ob);
	*next_ms = INT64_MAX;
	prune(c, now);
	if (ob->opt.claims && c->reconcile_due)
		reconcile(c);
	sqlite3_bind_text(q, 1, c->name, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(q);
		atomic_store(&c->pending, 0);
		atomic_store(&c->oldest_ms, 0);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		log_complain(&c->down, LOG_LVL_ERROR, LOG, "cannot read the outbox channel=%s error=\"%s\"",
			     c->name, sqlite3_errmsg(c->db));
		sqlite3_reset(q);
		*next_ms = now + ob->opt.backoff_cap_ms;
		return agri_sqlite_errno(rc);
	}
	next_at = sqlite3_column_int64(q, 8);
	if (next_at > now) {
		sqlite3_reset(q);
		refresh_stats(c, false);
		*next_ms = next_at;
		return 0;
	}
	it.id = sqlite3_column_int64(q, 0);
	it.channel = c->name;
	it.alert_id = alert_id = dup_col(q, 1);
	it.event = event = dup_col(q, 2);
	it.payload = payload = dup_col(q, 3);
	it.payload_len = (size_t)sqlite3_column_bytes(q, 3);
	it.text_en = en = dup_col(q, 4);
	it.text_vi = vi = dup_col(q, 5);
	it.created_at_ms = sqlite3_column_int64(q, 6);
	it.attempts = sqlite3_column_int(q, 7);
	it.person = person = dup_col(q, 9);
	it.address = address = dup_col(q, 10);
	it.sms = sms = dup_col(q, 11);
	it.episode = episode = dup_col(q, 12);
	it.transition = transition = dup_col(q, 13);
	sqlite3_reset(q); /* no read transaction held during the delivery */
	refresh_stats(c, false);
	if (!alert_id || !event || !payload || !en || !vi || !person || !address || !sms ||
	    !episode || !transition) {
		rc = -ENOMEM;
		*next_ms = now + ob->opt.backoff_base_ms;
		goto out;
	}
	if (ob->opt.claims && episode[0]) {
		char recipient[256];
		struct claim_key k = {.episode = episode, .transition = transition,
				      .channel = c->name, .recipient = recipient};
		int64_t wait_ms;

		claim_recipient(person, address, recipient, sizeof(recipient));
		switch (claims_take(ob->opt.claims, &k, winner, sizeof(winner), &wait_ms)) {
		case CLAIM_WON:
			claimed = "won";
			break;
		case CLAIM_UNCLAIMED:
			claimed = "unclaimed";
			break;
		case CLAIM_PEER:
			now = now_ms(ob);
			snprintf(claim, sizeof(claim), "peer:%s", winner);
			mark(c, Q_PEER, it.id, now, claim);
			atomic_fetch_add(&c->peer, 1);
			if (atomic_load(&c->pending) > 0)
				atomic_fetch_sub(&c->pending, 1);
			log_info(LOG, "sent by the other hub channel=%s id=%" PRId64 " episode=%s"
				 " transition=%s hub=%s", c->name, it.id, episode, transition, winner);
			*next_ms = now;
			rc = 1;
			goto out;
		case CLAIM_WAIT:
			now = now_ms(ob);
			*next_ms = now + (wait_ms > 0 ? wait_ms : 1000);
			mark(c, Q_WAIT, it.id, *next_ms, "waiting: claims database away, the"
			     " priority-1 hub online");
			rc = 0;
			goto out;
		}
	}

	rc = c->deliver(c->ctx, &it, err, sizeof(err));
	now = now_ms(ob);
	if (rc == 0) {
		mark(c, Q_DELIVERED, it.id, now, claimed);
		if (claimed && strcmp(claimed, "unclaimed") == 0) {
			claims_sent_unclaimed(ob->opt.claims);
			c->reconcile_due = true;
			log_warn(LOG, "sent without a claim channel=%s id=%" PRId64 " episode=%s"
				 " transition=%s", c->name, it.id, episode, transition);
		}
		atomic_fetch_add(&c->delivered, 1);
		if (atomic_load(&c->pending) > 0)
			atomic_fetch_sub(&c->pending, 1);
		atomic_store(&c->up, true);
		log_release(&c->down, LOG, "channel=%s delivering again id=%" PRId64
			    " attempts=%d", c->name, it.id, it.attempts + 1);
		log_debug(LOG, "delivered channel=%s id=%" PRId64 " alert=%s event=%s",
			  c->name, it.id, it.alert_id, it.event);
		*next_ms = now;
		rc = 1;
	} else if (rc == -EPERM) {
		mark(c, Q_DROPPED, it.id, now, err[0] ? err : "refused");
		atomic_fetch_add(&c->dropped, 1);
		if (atomic_load(&c->pending) > 0)
			atomic_fetch_sub(&c->pending, 1);
		log_error(LOG, "notification refused for good, dropped channel=%s id=%" PRId64
			  " alert=%s event=%s error=\"%s\"", c->name, it.id, it.alert_id,
			  it.event, err);
		*next_ms = now;
		rc = 1;
	} else {
		backoff = util_backoff_ms(it.attempts, ob->opt.backoff_base_ms,
					  ob->opt.backoff_cap_ms, &c->rng);
		*next_ms = now + backoff;
		mark(c, Q_RETRY, it.id, *next_ms, err[0] ? err : strerror(-rc));
		atomic_fetch_add(&c->failed, 1);
		atomic_store(&c->up, false);
		log_complain(&c->down, LOG_LVL_WARN, LOG, "channel=%s down, retrying id=%" PRId64
			     " error=\"%s\"", c->name, it.id, err[0] ? err : strerror(-rc));
	}
out:
	free(alert_id);
	free(event);
	free(payload);
	free(en);
	free(vi);
	free(person);
	free(address);
	free(sms);
	free(episode);
	free(transition);
	return rc;
}

/* --- threads ---------------------------------------------------------------- */

static void *notifier_main(void *arg)
{
	struct chan *c = arg;
	struct outbox *ob = c->ob;
	uint64_t seen;

	pthread_mutex_lock(&ob->mu);
	seen = ob->wake_seq;
	pthread_mutex_unlock(&ob->mu);
	for (;;) {
		int64_t next, wait_ms;
		struct timespec ts;
		int rc;

		pthread_mutex_lock(&ob->mu);
		if (ob->stopping) {
			pthread_mutex_unlock(&ob->mu);
			break;
		}
		seen = ob->wake_seq;
		pthread_mutex_unlock(&ob->mu);

		rc = outbox_step(ob, c->idx, &next);
		if (rc == 1)
			continue;
		wait_ms = ob->opt.poll_ms;
		if (next != INT64_MAX) {
			int64_t d = next - now_ms(ob);

			if (d < wait_ms)
				wait_ms = d < 0 ? 0 : d;
		}
		if (wait_ms == 0)
			continue;
		util_deadline(&ts, CLOCK_MONOTONIC, wait_ms);
		pthread_mutex_lock(&ob->mu);
		/* A wake only helps when the head row is due: a failing row
		 * keeps its backoff, however often rows are committed. */
		while (!ob->stopping && (ob->wake_seq == seen || rc < 0) &&
		       pthread_cond_timedwait(&ob->cond, &ob->mu, &ts) == 0)
			;
		pthread_mutex_unlock(&ob->mu);
	}
	return NULL;
}

int outbox_start(struct outbox *ob)
{
	for (size_t i = 0; i < ob->n; i++) {
		int rc = pthread_create(&ob->ch[i].thread, NULL, notifier_main, &ob->ch[i]);

		if (rc) {
			outbox_stop(ob);
			return -rc;
		}
		ob->ch[i].running = true;
	}
	ob->started = true;
	log_info(LOG, "started channels=%zu", ob->n);
	return 0;
}

void outbox_wake(struct outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->wake_seq++;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
}

static void hook_commit(void *ctx)
{
	outbox_wake(ctx);
}

void outbox_hook(struct outbox *ob, struct ingest_hook *hook)
{
	memset(hook, 0, sizeof(*hook));
	hook->name = "outbox";
	hook->ctx = ob;
	hook->on_commit = hook_commit;
}

void outbox_stop(struct outbox *ob)
{
	if (!ob)
		return;
	pthread_mutex_lock(&ob->mu);
	ob->stopping = true;
	pthread_cond_broadcast(&ob->cond);
	pthread_mutex_unlock(&ob->mu);
	for (size_t i = 0; i < ob->n; i++) {
		if (ob->ch[i].running) {
			pthread_join(ob->ch[i].thread, NULL);
			ob->ch[i].running = false;
		}
	}
}

void outbox_free(struct outbox *ob)
{
	if (!ob)
		return;
	outbox_stop(ob);
	for (size_t i = 0; i < ob->n; i++)
		chan_close(&ob->ch[i]);
	free(ob->ch);
	pthread_cond_destroy(&ob->cond);
	pthread_mutex_destroy(&ob->mu);
	free(ob);
}

/* --- counters ---------------------------------------------------------------- */

int outbox_stats(struct outbox *ob, size_t idx, struct outbox_stats *out)
{
	struct chan *c;

	if (!ob || idx >= ob->n)
		return -ENOENT;
	c = &ob->ch[idx];
	out->delivered = atomic_load(&c->delivered);
	out->failed_attempts = atomic_load(&c->failed);
	out->dropped = atomic_load(&c->dropped);
	out->pending = atomic_load(&c->pending);
	out->oldest_pending_ms = atomic_load(&c->oldest_ms);
	out->up = atomic_load(&c->up);
	out->peer = atomic_load(&c->peer);
	return 0;
}

int outbox_metrics_text(void *obp, char *buf, size_t len)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
		{"delivered_total", "counter", "notifications delivered since start"},
		{"failed_attempts_total", "counter", "delivery attempts that failed and will be retried"},
		{"dropped_total", "counter", "notifications refused for good by the receiver"},
		{"pending", "gauge", "notifications waiting in the outbox"},
		{"oldest_pending_seconds", "gauge", "age of the oldest waiting notification"},
		{"up", "gauge", "1 when the channel's last delivery attempt succeeded"},
	};
	struct outbox *ob = obp;
	size_t pos = 0;
	int64_t now;

	if (!ob || !buf || !len)
		return -EINVAL;
	buf[0] = '\0';
	now = now_ms(ob);
	for (size_t k = 0; k < AGRI_ARRAY_SIZE(m); k++) {
		int w = snprintf(buf + pos, len - pos, "# HELP agri_gateway_outbox_%s %s\n"
				 "# TYPE agri_gateway_outbox_%s %s\n", m[k].name, m[k].help,
				 m[k].name, m[k].type);

		if (w < 0 || (size_t)w >= len - pos)
			return -ENOSPC;
		pos += (size_t)w;
		for (size_t i = 0; i < ob->n; i++) {
			struct outbox_stats s;
			double v = 0;

			outbox_stats(ob, i, &s);
			switch (k) {
			case 0: v = (double)s.delivered; break;
			case 1: v = (double)s.failed_attempts; break;
			case 2: v = (double)s.dropped; break;
			case 3: v = (double)s.pending; break;
			case 4: v = s.pending && s.oldest_pending_ms ?
				    (double)(now - s.oldest_pending_ms) / 1000.0 : 0; break;
			default: v = s.up ? 1 : 0; break;
			}
			w = snprintf(buf + pos, len - pos, "agri_gateway_outbox_%s{channel=\"%s\"} %.17g\n",
				     m[k].name, ob->ch[i].name, v);
			if (w < 0 || (size_t)w >= len - pos)
				return -ENOSPC;
			pos += (size_t)w;
		}
	}
	return (int)pos;
}
