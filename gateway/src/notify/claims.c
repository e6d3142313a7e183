/*
 * Notification and forwarding claims in the province's PostgreSQL (see
 * claims.h, docs/ha.md, docs/upstream.md): one connection, asynchronous
 * connect and queries each bounded by CLAIMS_IO_MS, retried with jittered
 * backoff; the priority-1 hub's status as the fallback when the database
 * is away.
 */
#include "notify/claims.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "gateway/config.h"

#define LOG "claims"
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 5000
#define WAIT_MS 1000      /* priority 2, waiting: ask again this often */
#define HUB_MAX 64
#define CONFLICT_WAIT_MS 200 /* a lock conflict between the hubs: again soon */
#define PRUNE_EVERY_MS (5 * 60 * 1000)
#define PRUNE_CHUNK 20000
#define OBS_ARRAYS_MAX (4 * 1024 * 1024) /* a batch's keys as array literals */

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS agri_notify_claims ("
	" episode text NOT NULL, transition text NOT NULL, channel text NOT NULL,"
	" recipient text NOT NULL DEFAULT '', hub_id text NOT NULL,"
	" claimed_at timestamptz NOT NULL DEFAULT now(),"
	" unclaimed boolean NOT NULL DEFAULT false,"  /* recorded after an unclaimed send */
	" PRIMARY KEY (episode, transition, channel, recipient))";

/* The INSERT's own row when it won; else the row that was there (not
 * visible yet when the other hub's insert committed during ours: none). */
static const char claim_sql[] =
	"WITH ins AS (INSERT INTO agri_notify_claims(episode, transition, channel, recipient,"
	" hub_id, unclaimed) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
	" RETURNING hub_id)"
	" SELECT hub_id, true FROM ins UNION ALL"
	" SELECT hub_id, false FROM agri_notify_claims WHERE episode = $1 AND transition = $2"
	" AND channel = $3 AND recipient = $4";

/* Late news (transitions "past", "late": a hub that missed an episode
 * tells it afterwards) of an episode the other hub has told already, on
 * any transition, is not news: that hub's claim wins. */
static const char late_sql[] =
	"WITH told AS (SELECT hub_id FROM agri_notify_claims WHERE episode = $1 AND channel = $3"
	" AND recipient = $4 AND hub_id <> $5 LIMIT 1),"
	" ins AS (INSERT INTO agri_notify_claims(episode, transition, channel, recipient, hub_id,"
	" unclaimed) SELECT $1, $2, $3, $4, $5, $6::boolean WHERE NOT EXISTS (SELECT 1 FROM told)"
	" ON CONFLICT DO NOTHING RETURNING hub_id)"
	" SELECT hub_id, true FROM ins UNION ALL SELECT hub_id, false FROM told UNION ALL"
	" SELECT hub_id, false FROM agri_notify_claims WHERE episode = $1 AND transition = $2"
	" AND channel = $3 AND recipient = $4";

/* Forwarding claims: one row an observation (docs/upstream.md, "Two
 * hubs"). claims counts how often the row was claimed (1: never taken
 * over); sent_at is set once the observation is on the server. */
static const char obs_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS agri_sta_claims ("
	" datastream text NOT NULL, phenomenon_time timestamptz NOT NULL,"
	" hub_id text NOT NULL, claimed_at timestamptz NOT NULL DEFAULT now(),"
	" claims integer NOT NULL DEFAULT 1, sent_at timestamptz,"
	" unclaimed boolean NOT NULL DEFAULT false,"  /* sent without a claim, recorded after */
	" PRIMARY KEY (datastream, phenomenon_time))";

/*
 * Claims a batch: $1 Datastream names, $2 phenomenonTimes, $3 this hub,
 * $4 the lease (ms). A row nobody holds is inserted; one held unsent past
 * the lease is taken over (by either hub, the claimer too). Rows are
 * locked in key order, so two hubs claiming overlapping batches never
 * deadlock. The answer, a row a distinct key (i: its first ordinal):
 * claims when this statement holds it now, and the row as it was before
 * (invisible when the other hub inserted it during this statement).
 */
static const char obs_take_sql[] =
	"WITH k AS (SELECT d, t, min(i) AS i FROM unnest($1::text[], $2::timestamptz[])"
	"  WITH ORDINALITY AS u(d, t, i) GROUP BY d, t),"
	" ins AS (INSERT INTO agri_sta_claims AS c (datastream, phenomenon_time, hub_id)"
	"  SELECT d, t, $3 FROM k ORDER BY d, t"
	"  ON CONFLICT (datastream, phenomenon_time) DO UPDATE SET hub_id = excluded.hub_id,"
	"  claimed_at = now(), claims = c.claims + 1"
	"  WHERE c.sent_at IS NULL AND c.claimed_at < now() - $4::bigint * interval '1 millisecond'"
	"  RETURNING c.datastream, c.phenomenon_time, c.claims)"
	" SELECT k.i, ins.claims, o.hub_id, o.sent_at IS NOT NULL,"
	"  (extract(epoch FROM now() - o.claimed_at) * 1000)::bigint"
	" FROM k LEFT JOIN ins ON ins.datastream = k.d AND ins.phenomenon_time = k.t"
	" LEFT JOIN agri_sta_claims o ON o.datastream = k.d AND o.phenomenon_time = k.t";

/* This hub's claims of $1/$2 are sent (locked in key order). */
static const char obs_sent_sql[] =
	"WITH l AS (SELECT datastream, phenomenon_time FROM agri_sta_claims"
	"  WHERE (datastream, phenomenon_time) IN"
	"  (SELECT * FROM unnest($1::text[], $2::timestamptz[])) AND hub_id = $3"
	"  AND sent_at IS NULL ORDER BY datastream, phenomenon_time FOR UPDATE)"
	" UPDATE agri_sta_claims c SET sent_at = now() FROM l"
	" WHERE c.datastream = l.datastream AND c.phenomenon_time = l.phenomenon_time";

/* Sends already made ($4: without a claim) as this hub's sent claims; a
 * key the other hub holds is not returned. */
static const char obs_record_sql[] =
	"WITH k AS (SELECT d, t, bool_or(u) AS u, min(i) AS i FROM"
	"  unnest($1::text[], $2::timestamptz[], $4::boolean[]) WITH ORDINALITY AS x(d, t, u, i)"
	"  GROUP BY d, t),"
	" ins AS (INSERT INTO agri_sta_claims AS c (datastream, phenomenon_time, hub_id, unclaimed,"
	"  sent_at) SELECT d, t, $3, u, now() FROM k ORDER BY d, t"
	"  ON CONFLICT (datastream, phenomenon_time) DO UPDATE SET"
	"  sent_at = coalesce(c.sent_at, now()), unclaimed = c.unclaimed OR excluded.unclaimed"
	"  WHERE c.hub_id = excluded.hub_id"
	"  RETURNING c.datastream, c.phenomenon_time)"
	" SELECT k.i, ins.datastream IS NOT NULL FROM k"
	" LEFT JOIN ins ON ins.datastream = k.d AND ins.phenomenon_time = k.t";

static const char obs_prune_sql[] =
	"DELETE FROM agri_sta_claims WHERE ctid = ANY (ARRAY(SELECT ctid FROM agri_sta_claims"
	" WHERE sent_at < now() - $1::bigint * interval '1 millisecond' LIMIT $2::integer))";

static const char who_sql[] =
	"SELECT hub_id FROM agri_notify_claims WHERE episode = $1 AND transition = $2"
	" AND channel = $3 AND recipient = $4";

static bool late_news(const char *transition)
{
	return strcmp(transition, "past") == 0 || strcmp(transition, "late") == 0;
}

struct claims {
	char hub_id[GW_NAME_MAX];
	char conninfo[GW_URL_MAX];
	char sslmode[16];
	int priority;
	int64_t takeover_ms;
	atomic_bool cancelled;

	/* mu: the connection and its retry state (notifier threads) */
	pthread_mutex_t mu;
	PGconn *conn;
	int attempt;
	int64_t next_try_ms;   /* monotonic */
	int64_t grace_until_ms; /* monotonic: priority 2 after an outage */
	bool was_down;
	char sqlstate[6];      /* of the last failed query */
	uint32_t rng;
	struct log_complaint down;

	/* peer_mu: the priority-1 hub as its status says (paho's thread) */
	pthread_mutex_t peer_mu;
	bool peer_online;
	int64_t peer_since_ms; /* monotonic: since when online/offline */
	char peer_id[HUB_MAX];
	struct log_complaint same_priority;

	atomic_uint_least64_t won, lost, unclaimed, reconciled, duplicates;
	atomic_bool up;

	/* forwarding claims (the SensorThings sink's thread; back_ms any) */
	bool want_obs;
	int64_t next_prune_ms;  /* monotonic */
	atomic_int_least64_t back_ms; /* wall clock: the database back after an outage */
	atomic_uint_least64_t obs_won, obs_taken, obs_peer, obs_unclaimed, obs_reconciled,
		obs_duplicates;
};

struct claims *claims_new(const struct gateway_config *cfg, int *err)
{
	struct claims *c;

	*err = 0;
	if (!cfg->ha.enabled)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c) {
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(c->hub_id, sizeof(c->hub_id), "%s", cfg->ha.hub_id);
	snprintf(c->conninfo, sizeof(c->conninfo), "%s", cfg->ha.claims);
	snprintf(c->sslmode, sizeof(c->sslmode), "%s",
		 cfg->ha.claims_sslmode[0] ? cfg->ha.claims_sslmode : "verify-full");
	c->priority = (int)cfg->ha.priority;
	c->takeover_ms = cfg->ha.takeover_s * 1000;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->peer_mu, NULL);
	c->rng = (uint32_t)util_now_ms() | 1u;
	/* Never heard: offline since we started (a priority-2 hub alone takes
	 * over takeover_s after its start). */
	c->peer_since_ms = util_mono_ms();
	log_info(LOG, "notification claims hub_id=%s priority=%d takeover_s=%" PRId64,
		 c->hub_id, c->priority, cfg->ha.takeover_s);
	return c;
}

void claims_cancel(struct claims *c)
{
	if (c)
		atomic_store(&c->cancelled, true);
}

static void disconnect(struct claims *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
	atomic_store(&c->up, false);
}

void claims_free(struct claims *c)
{
	if (!c)
		return;
	disconnect(c);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->peer_mu);
	free(c);
}

const char *claims_hub_id(const struct claims *c)
{
	return c->hub_id;
}

/* One line, no quotes breaking key="...". */
static void set_err(char *err, size_t len, const char *what, PGconn *conn)
{
	const char *m = conn ? PQerrorMessage(conn) : "";
	size_t n;

	snprintf(err, len, "%s%s%s", what, m[0] ? ": " : "", m);
	n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\t' || *p == '"')
			*p = *p == '"' ? '\'' : ' ';
}

/* Waits until conn's socket is ready for events, at most until deadline
 * (monotonic). 0, or -ETIMEDOUT (or cancelled). mu held. */
static int wait_socket(struct claims *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = PQsocket(c->conn), .events = events};
		int64_t left = deadline - util_mono_ms();
		int r;

		if (atomic_load(&c->cancelled) || left <= 0 || pfd.fd < 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, left < 100 ? (int)left : 100);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -EIO;
	}
}

/* Runs sql with params, the first result into *out (NULL on failure).
 * Bounded by CLAIMS_IO_MS. mu held. Returns 0 or a negative errno. */
static int query(struct claims *c, const char *sql, int n, const char *const *v,
		 PGresult **out, char *err, size_t errlen)
{
	int64_t deadline = util_mono_ms() + CLAIMS_IO_MS;
	PGresult *r;
	int rc = 0, f;

	*out = NULL;
	if (!PQsendQueryParams(c->conn, sql, n, NULL, v, NULL, NULL, 0)) {
		set_err(err, errlen, "cannot send", c->conn);
		return -EIO;
	}
	while ((f = PQflush(c->conn)) == 1)
		if ((rc = wait_socket(c, POLLOUT | POLLIN, deadline)) < 0)
			goto timeout;
	if (f < 0) {
		set_err(err, errlen, "cannot send", c->conn);
		return -EIO;
	}
	for (;;) {
		while (PQisBusy(c->conn)) {
			if ((rc = wait_socket(c, POLLIN, deadline)) < 0)
				goto timeout;
			if (!PQconsumeInput(c->conn)) {
				set_err(err, errlen, "connection lost", c->conn);
				rc = -EIO;
				goto fail; /* a first result (the server's FATAL) may be in */
			}
		}
		if (!(r = PQgetResult(c->conn)))
			break;
		if (!*out)
			*out = r;
		else
			PQclear(r);
	}
	if (!*out || (PQresultStatus(*out) != PGRES_TUPLES_OK &&
		      PQresultStatus(*out) != PGRES_COMMAND_OK)) {
		const char *state = *out ? PQresultErrorField(*out, PG_DIAG_SQLSTATE) : NULL;

		snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
		set_err(err, errlen, "query failed", c->conn);
		/* A deadlock or serialization failure (class 40) between the two
		 * hubs on a live connection: the database is there, try again. */
		rc = state && strncmp(state, "40", 2) == 0 &&
		     PQstatus(c->conn) == CONNECTION_OK ? -EAGAIN : -EIO;
		PQclear(*out);
		*out = NULL;
		return rc;
	}
	return 0;
timeout:
	snprintf(err, errlen, "no answer within %d ms", CLAIMS_IO_MS);
	rc = -ETIMEDOUT;
fail:
	PQclear(*out);
	*out = NULL;
	return rc;
}

static void no_notices(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* an unlock of a lock a new session never took: harmless */
}

/* A CREATE ... IF NOT EXISTS that lost to another session's: unique
 * violation on the catalogue (23505), or the object there already (42P07
 * table, 42710 object). */
static bool concurrent_create(const char *sqlstate)
{
	return !strcmp(sqlstate, "23505") || !strcmp(sqlstate, "42P07") ||
	       !strcmp(sqlstate, "42710");
}

/* Connects and creates the table, at most CLAIMS_IO_MS each. mu held. */
static int connect_now(struct claims *c, char *err, size_t errlen)
{
	/* Our bounds first: the conninfo (expanded from dbname) may add to them. */
	const char *keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
			      "keepalives_count", "tcp_user_timeout", "options",
			      "application_name", "sslmode", "dbname", NULL};
	const char *vals[] = {"3", "5", "2", "2", "3000", "-c statement_timeout=3000",
			      "agri-gateway-claims", c->sslmode, c->conninfo, NULL};
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	int64_t deadline = util_mono_ms() + CLAIMS_IO_MS;
	PGresult *r = NULL;
	int rc;

	c->conn = PQconnectStartParams(keys, vals, 1);
	if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD) {
		set_err(err, errlen, "cannot connect", c->conn);
		return -ECONNREFUSED;
	}
	while (ps != PGRES_POLLING_OK && ps != PGRES_POLLING_FAILED) {
		if (wait_socket(c, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline) < 0) {
			snprintf(err, errlen, "cannot connect: %s",
				 atomic_load(&c->cancelled) ? "cancelled" : "timeout");
			return -ETIMEDOUT;
		}
		ps = PQconnectPoll(c->conn);
	}
	if (ps == PGRES_POLLING_FAILED) {
		set_err(err, errlen, "cannot connect", c->conn);
		return -ECONNREFUSED;
	}
	if (PQsetnonblocking(c->conn, 1) != 0) {
		set_err(err, errlen, "cannot connect", c->conn);
		return -EIO;
	}
	PQsetNoticeProcessor(c->conn, no_notices, NULL);
	rc = query(c, schema_sql, 0, NULL, &r, err, errlen);
	PQclear(r);
	if (rc < 0 && concurrent_create(c->sqlstate)) {
		/* Both hubs started together (after a power cut, say) and
		 * created the table at once: one of them loses the race inside
		 * PostgreSQL's catalogue even with IF NOT EXISTS. The table is
		 * there now; failing here would make the priority-1 hub send
		 * its first notifications unclaimed, the other hub too. */
		rc = query(c, schema_sql, 0, NULL, &r, err, errlen);
		PQclear(r);
	}
	if (rc == 0 && c->want_obs) { /* forwarding claims: the same race */
		rc = query(c, obs_schema_sql, 0, NULL, &r, err, errlen);
		PQclear(r);
		if (rc < 0 && concurrent_create(c->sqlstate)) {
			rc = query(c, obs_schema_sql, 0, NULL, &r, err, errlen);
			PQclear(r);
		}
	}
	return rc;
}

/* Connected (0), or not now (a negative errno: in backoff, or the connect
 * failed and the next try is scheduled). mu held. */
static int ensure(struct claims *c)
{
	char err[256];
	int64_t now = util_mono_ms();
	int rc;

	if (c->conn && PQstatus(c->conn) == CONNECTION_OK)
		return 0;
	disconnect(c);
	if (now < c->next_try_ms || atomic_load(&c->cancelled))
		return -ENOTCONN;
	if ((rc = connect_now(c, err, sizeof(err))) < 0) {
		disconnect(c);
		c->next_try_ms = util_mono_ms() + util_backoff_ms(c->attempt < 8 ? c->attempt : 8,
								  BACKOFF_BASE_MS, BACKOFF_CAP_MS,
								  &c->rng);
		c->attempt++;
		c->was_down = true;
		log_complain(&c->down, LOG_LVL_WARN, LOG, "claims database away, sending %s"
			     " error=\"%s\"", c->priority == 1 ? "unclaimed (priority 1)"
			     : "only after the priority-1 hub is offline", err);
		return rc;
	}
	c->attempt = 0;
	atomic_store(&c->up, true);
	if (c->was_down)
		atomic_store(&c->back_ms, util_now_ms());
	if (c->was_down && c->priority != 1)
		c->grace_until_ms = util_mono_ms() + CLAIMS_GRACE_MS;
	c->was_down = false;
	log_release(&c->down, LOG, "claims database back");
	return 0;
}

/* A query failed on a live connection: drop it, retry after backoff. */
static void failed(struct claims *c, const char *err)
{
	disconnect(c);
	c->next_try_ms = util_mono_ms() + util_backoff_ms(0, BACKOFF_BASE_MS, BACKOFF_CAP_MS,
							  &c->rng);
	c->attempt = 1;
	c->was_down = true;
	log_complain(&c->down, LOG_LVL_WARN, LOG, "claims database away, sending %s"
		     " error=\"%s\"", c->priority == 1 ? "unclaimed (priority 1)"
		     : "only after the priority-1 hub is offline", err);
}

/* Inserts k (unclaimed: a send already made). 1: ours, 0: another hub's
 * (winner), negative: not reachable. mu held. */
static int insert(struct claims *c, const struct claim_key *k, bool unclaimed, char *winner,
		  size_t winner_len)
{
	const char *v[6] = {k->episode, k->transition, k->channel, k->recipient ? k->recipient : "",
			    c->hub_id, unclaimed ? "true" : "false"};
	char err[256];
	PGresult *r;
	int rc;

	if ((rc = ensure(c)) < 0)
		return rc;
	if ((rc = query(c, late_news(k->transition) ? late_sql : claim_sql, 6, v, &r, err,
			sizeof(err))) < 0) {
		if (rc != -EAGAIN)
			failed(c, err);
		return rc;
	}
	if (PQntuples(r) == 0) {
		/* The other hub's insert committed during ours: not in our
		 * statement's snapshot, in the next one. Lost either way. */
		PQclear(r);
		snprintf(winner, winner_len, "?");
		if (query(c, who_sql, 4, v, &r, err, sizeof(err)) == 0 && PQntuples(r) > 0)
			snprintf(winner, winner_len, "%s", PQgetvalue(r, 0, 0));
		rc = 0;
	} else {
		snprintf(winner, winner_len, "%s", PQgetvalue(r, 0, 0));
		rc = strcmp(winner, c->hub_id) == 0 ? 1 : 0;
	}
	PQclear(r);
	return rc;
}

/* How long the priority-1 hub has been offline (ms), 0 when online. */
static int64_t peer_offline_ms(struct claims *c)
{
	int64_t d;

	pthread_mutex_lock(&c->peer_mu);
	d = c->peer_online ? 0 : util_mono_ms() - c->peer_since_ms;
	pthread_mutex_unlock(&c->peer_mu);
	return d;
}

/* The database cannot be reached (rc): what this hub does without a
 * claim. The priority-1 hub goes ahead; the other waits while the
 * priority-1 hub's status says online, and goes ahead once it has said
 * offline for takeover_s. */
static enum claim_verdict away(struct claims *c, int rc, int64_t *wait_ms)
{
	int64_t off;

	if (rc == -EAGAIN) { /* a conflict, not an outage */
		*wait_ms = CONFLICT_WAIT_MS;
		return CLAIM_WAIT;
	}
	if (c->priority == 1)
		return CLAIM_UNCLAIMED;
	off = peer_offline_ms(c);
	if (off >= c->takeover_ms)
		return CLAIM_UNCLAIMED;
	*wait_ms = off ? (c->takeover_ms - off < WAIT_MS ? c->takeover_ms - off : WAIT_MS)
		       : WAIT_MS;
	return CLAIM_WAIT;
}

/* Whether a claim may be made now: 0, or CLAIM_WAIT (stopping; the grace
 * of a priority-2 hub after an outage). mu held. */
static int may_claim(struct claims *c, int64_t *wait_ms)
{
	if (atomic_load(&c->cancelled)) { /* stopping: the row stays for the next run */
		*wait_ms = WAIT_MS;
		return -EAGAIN;
	}
	if (ensure(c) == 0 && util_mono_ms() < c->grace_until_ms) {
		*wait_ms = c->grace_until_ms - util_mono_ms();
		return -EAGAIN;
	}
	return 0;
}

enum claim_verdict claims_take(struct claims *c, const struct claim_key *k, char *winner,
			       size_t winner_len, int64_t *wait_ms)
{
	int rc;

	*wait_ms = 0;
	winner[0] = '\0';
	pthread_mutex_lock(&c->mu);
	if (may_claim(c, wait_ms) < 0) {
		pthread_mutex_unlock(&c->mu);
		return CLAIM_WAIT;
	}
	rc = insert(c, k, false, winner, winner_len);
	pthread_mutex_unlock(&c->mu);
	if (rc >= 0) {
		atomic_fetch_add(rc ? &c->won : &c->lost, 1);
		return rc ? CLAIM_WON : CLAIM_PEER;
	}
	return away(c, rc, wait_ms);
}

void claims_sent_unclaimed(struct claims *c)
{
	atomic_fetch_add(&c->unclaimed, 1);
}

int claims_record(struct claims *c, const struct claim_key *k, char *winner,
		  size_t winner_len)
{
	int rc;

	pthread_mutex_lock(&c->mu);
	rc = insert(c, k, true, winner, winner_len);
	pthread_mutex_unlock(&c->mu);
	if (rc == 1)
		atomic_fetch_add(&c->reconciled, 1);
	else if (rc == 0)
		atomic_fetch_add(&c->duplicates, 1);
	return rc;
}

/* --- forwarding claims ---------------------------------------------------- */

void claims_want_observations(struct claims *c)
{
	c->want_obs = true;
}

int64_t claims_lease_ms(const struct claims *c)
{
	return c->takeover_ms;
}

int64_t claims_back_ms(struct claims *c)
{
	return atomic_load(&c->back_ms);
}

static void pg_elem(struct agri_buf *b, const char *s, bool first)
{
	agri_buf_puts(b, first ? "\"" : ",\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			agri_buf_put(b, "\\", 1);
		agri_buf_put(b, s, 1);
	}
	agri_buf_put(b, "\"", 1);
}

void claims_pg_array(struct agri_buf *b, const char *const *v, size_t n)
{
	agri_buf_put(b, "{", 1);
	for (size_t i = 0; i < n; i++)
		pg_elem(b, v[i], i == 0);
	agri_buf_put(b, "}", 1);
}

static bool sending(const struct claim_obs *o)
{
	return o->verdict == OBS_SEND || o->verdict == OBS_SEND_CHECK;
}

/* o's Datastream names and times as array literals (only those being
 * sent when sent_only), and their flags when u. The number of keys, or a
 * negative errno. */
static int obs_arrays(const struct claim_obs *o, size_t n, bool sent_only, const bool *flags,
		      struct agri_buf *d, struct agri_buf *t, struct agri_buf *u)
{
	char ts[AGRI_TIME_LEN + 1];
	size_t k = 0;
	int rc;

	agri_buf_put(d, "{", 1);
	agri_buf_put(t, "{", 1);
	if (u)
		agri_buf_put(u, "{", 1);
	for (size_t i = 0; i < n; i++) {
		if (sent_only && !sending(&o[i]))
			continue;
		if (agri_time_format(o[i].ts_ms, ts, sizeof(ts)) < 0)
			return -EINVAL;
		pg_elem(d, o[i].datastream, k == 0);
		pg_elem(t, ts, k == 0);
		if (u)
			agri_buf_puts(u, k == 0 ? (flags[i] ? "t" : "f") : (flags[i] ? ",t" : ",f"));
		k++;
	}
	agri_buf_put(d, "}", 1);
	agri_buf_put(t, "}", 1);
	if (u)
		agri_buf_put(u, "}", 1);
	if ((rc = agri_buf_end(d)) < 0 || (rc = agri_buf_end(t)) < 0 ||
	    (u && (rc = agri_buf_end(u)) < 0))
		return rc;
	return (int)k;
}

/* Runs sql on the claims connection (connecting first). A failure other
 * than a conflict drops the connection (failed: backoff, logged once).
 * mu held. */
static int run(struct claims *c, const char *sql, int n, const char *const *v, PGresult **r)
{
	char err[256];
	int rc;

	*r = NULL;
	if ((rc = ensure(c)) < 0)
		return rc;
	if ((rc = query(c, sql, n, v, r, err, sizeof(err))) < 0 && rc != -EAGAIN)
		failed(c, err);
	return rc;
}

enum claim_verdict claims_obs_take(struct claims *c, struct claim_obs *o, size_t n,
				   int64_t *wait_ms)
{
	struct agri_buf d = AGRI_BUF_HEAP(OBS_ARRAYS_MAX), t = AGRI_BUF_HEAP(OBS_ARRAYS_MAX);
	char lease[24];
	const char *v[4];
	PGresult *r = NULL;
	uint64_t won = 0, taken = 0;
	int rc;

	*wait_ms = 0;
	for (size_t i = 0; i < n; i++) /* a key twice in a batch: its first one decides */
		o[i] = (struct claim_obs){.datastream = o[i].datastream, .ts_ms = o[i].ts_ms,
					  .verdict = OBS_DONE};
	if ((rc = obs_arrays(o, n, false, NULL, &d, &t, NULL)) < 0) {
		agri_buf_free(&d);
		agri_buf_free(&t);
		*wait_ms = WAIT_MS;
		return CLAIM_WAIT;
	}
	snprintf(lease, sizeof(lease), "%" PRId64, c->takeover_ms);
	v[0] = d.p;
	v[1] = t.p;
	v[2] = c->hub_id;
	v[3] = lease;
	pthread_mutex_lock(&c->mu);
	if (may_claim(c, wait_ms) < 0) {
		pthread_mutex_unlock(&c->mu);
		agri_buf_free(&d);
		agri_buf_free(&t);
		return CLAIM_WAIT;
	}
	rc = run(c, obs_take_sql, 4, v, &r);
	pthread_mutex_unlock(&c->mu);
	agri_buf_free(&d);
	agri_buf_free(&t);
	if (rc < 0)
		return away(c, rc, wait_ms);
	for (int j = 0; j < PQntuples(r); j++) {
		long long i = strtoll(PQgetvalue(r, j, 0), NULL, 10) - 1;
		bool ours = !PQgetisnull(r, j, 1), had = !PQgetisnull(r, j, 2);
		bool mine = had && strcmp(PQgetvalue(r, j, 2), c->hub_id) == 0;
		bool sent = had && PQgetvalue(r, j, 3)[0] == 't';
		int64_t age = had && !PQgetisnull(r, j, 4) ? strtoll(PQgetvalue(r, j, 4), NULL, 10)
							    : 0;
		struct claim_obs *x;

		if (i < 0 || (size_t)i >= n)
			continue;
		x = &o[i];
		if (ours) { /* inserted now (1), or taken over past its lease */
			bool again = strtol(PQgetvalue(r, j, 1), NULL, 10) > 1;

			x->verdict = again ? OBS_SEND_CHECK : OBS_SEND;
			x->taken_over = again && !mine;
			x->lease_left_ms = c->takeover_ms;
			won++;
			taken += x->taken_over;
		} else if (!had) { /* the other hub's insert, during ours */
			x->verdict = OBS_WAIT;
			x->peer = true;
			x->lease_left_ms = CONFLICT_WAIT_MS;
		} else if (sent) {
			x->verdict = OBS_DONE;
			x->peer = !mine;
		} else if (mine) { /* our own earlier claim, still within its lease */
			x->verdict = OBS_SEND_CHECK;
			x->lease_left_ms = c->takeover_ms - age;
		} else {
			x->verdict = OBS_WAIT;
			x->peer = true;
			x->lease_left_ms = c->takeover_ms - age > CONFLICT_WAIT_MS
						   ? c->takeover_ms - age : CONFLICT_WAIT_MS;
		}
	}
	PQclear(r);
	atomic_fetch_add(&c->obs_won, won);
	atomic_fetch_add(&c->obs_taken, taken);
	return CLAIM_WON;
}

int claims_obs_sent(struct claims *c, const struct claim_obs *o, size_t n)
{
	struct agri_buf d = AGRI_BUF_HEAP(OBS_ARRAYS_MAX), t = AGRI_BUF_HEAP(OBS_ARRAYS_MAX);
	const char *v[3];
	PGresult *r = NULL;
	int rc = obs_arrays(o, n, true, NULL, &d, &t, NULL);

	if (rc > 0) {
		v[0] = d.p;
		v[1] = t.p;
		v[2] = c->hub_id;
		pthread_mutex_lock(&c->mu);
		rc = run(c, obs_sent_sql, 3, v, &r);
		pthread_mutex_unlock(&c->mu);
		PQclear(r);
	}
	agri_buf_free(&d);
	agri_buf_free(&t);
	return rc < 0 ? rc : 0;
}

void claims_obs_unclaimed(struct claims *c, size_t n)
{
	atomic_fetch_add(&c->obs_unclaimed, n);
}

void claims_obs_peer(struct claims *c, size_t n)
{
	atomic_fetch_add(&c->obs_peer, n);
}

int claims_obs_record(struct claims *c, const struct claim_obs *o, const bool *unclaimed,
		      size_t n)
{
	struct agri_buf d = AGRI_BUF_HEAP(OBS_ARRAYS_MAX), t = AGRI_BUF_HEAP(OBS_ARRAYS_MAX),
			u = AGRI_BUF_HEAP(OBS_ARRAYS_MAX);
	const char *v[4];
	PGresult *r = NULL;
	uint64_t rec = 0, dup = 0;
	int rc = obs_arrays(o, n, false, unclaimed, &d, &t, &u);

	if (rc > 0) {
		v[0] = d.p;
		v[1] = t.p;
		v[2] = c->hub_id;
		v[3] = u.p;
		pthread_mutex_lock(&c->mu);
		rc = run(c, obs_record_sql, 4, v, &r);
		pthread_mutex_unlock(&c->mu);
	}
	agri_buf_free(&d);
	agri_buf_free(&t);
	agri_buf_free(&u);
	if (rc < 0)
		return rc;
	for (int j = 0; r && j < PQntuples(r); j++) {
		long long i = strtoll(PQgetvalue(r, j, 0), NULL, 10) - 1;

		if (i < 0 || (size_t)i >= n || !unclaimed[i])
			continue;
		if (PQgetvalue(r, j, 1)[0] == 't')
			rec++;
		else
			dup++; /* the other hub holds it too: both sent it */
	}
	PQclear(r);
	atomic_fetch_add(&c->obs_reconciled, rec);
	atomic_fetch_add(&c->obs_duplicates, dup);
	return 0;
}

void claims_obs_prune(struct claims *c)
{
	char keep[24], chunk[16];
	const char *v[2] = {keep, chunk};
	int64_t now = util_mono_ms();
	PGresult *r = NULL;
	char err[256];

	snprintf(keep, sizeof(keep), "%lld", (long long)CLAIMS_OBS_KEEP_MS);
	snprintf(chunk, sizeof(chunk), "%d", PRUNE_CHUNK);
	pthread_mutex_lock(&c->mu);
	if (now >= c->next_prune_ms && !atomic_load(&c->cancelled) && c->conn &&
	    PQstatus(c->conn) == CONNECTION_OK) {
		/* A prune that fails is no outage: the connection is made again
		 * at the next claim, without the priority fallback. */
		if (query(c, obs_prune_sql, 2, v, &r, err, sizeof(err)) < 0) {
			log_warn(LOG, "cannot prune agri_sta_claims error=\"%s\"", err);
			disconnect(c);
			c->next_prune_ms = now + PRUNE_EVERY_MS;
		} else {
			/* a whole chunk: there is more, go on at the next call */
			c->next_prune_ms = strtol(PQcmdTuples(r), NULL, 10) >= PRUNE_CHUNK
						   ? now : now + PRUNE_EVERY_MS;
		}
		PQclear(r);
	}
	pthread_mutex_unlock(&c->mu);
}

enum claim_verdict claims_entity_lock(struct claims *c, const char *key, int64_t *wait_ms)
{
	PGresult *r = NULL;
	bool got;
	int rc;

	*wait_ms = 0;
	pthread_mutex_lock(&c->mu);
	if (may_claim(c, wait_ms) < 0) {
		pthread_mutex_unlock(&c->mu);
		return CLAIM_WAIT;
	}
	rc = run(c, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", 1, &key, &r);
	pthread_mutex_unlock(&c->mu);
	if (rc < 0)
		return away(c, rc, wait_ms);
	got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (got)
		return CLAIM_WON;
	*wait_ms = CONFLICT_WAIT_MS; /* the other hub is making it: then look it up */
	return CLAIM_WAIT;
}

void claims_entity_unlock(struct claims *c, const char *key)
{
	PGresult *r = NULL;
	char err[256];

	pthread_mutex_lock(&c->mu);
	/* A connection lost since took the lock with it. */
	if (c->conn && PQstatus(c->conn) == CONNECTION_OK &&
	    query(c, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", 1, &key, &r, err,
		  sizeof(err)) < 0)
		disconnect(c); /* the lock goes with the session */
	PQclear(r);
	pthread_mutex_unlock(&c->mu);
}

void claims_hub_status(struct claims *c, const void *payload, size_t len)
{
	struct agri_err e = {0};
	cJSON *root = NULL;
	const cJSON *ha, *id, *prio, *state;
	bool online;

	if (!len || agri_json_parse(payload, len, 8192, 8, &root, &e) < 0)
		return;
	ha = cJSON_GetObjectItemCaseSensitive(root, "ha");
	id = cJSON_GetObjectItemCaseSensitive(ha, "hub_id");
	prio = cJSON_GetObjectItemCaseSensitive(ha, "priority");
	state = cJSON_GetObjectItemCaseSensitive(root, "state");
	if (!cJSON_IsString(id) || !cJSON_IsNumber(prio) || !cJSON_IsString(state) ||
	    strcmp(id->valuestring, c->hub_id) == 0)
		goto out;
	if ((int)prio->valuedouble == c->priority)
		log_complain(&c->same_priority, LOG_LVL_WARN, LOG, "hub %s has ha.priority %d too:"
			     " give one hub of the pair 1, the other 2", id->valuestring, c->priority);
	if ((int)prio->valuedouble != 1)
		goto out;
	online = strcmp(state->valuestring, "online") == 0;
	pthread_mutex_lock(&c->peer_mu);
	if (online != c->peer_online || strcmp(c->peer_id, id->valuestring) != 0) {
		log_info(LOG, "priority-1 hub %s is %s", id->valuestring, online ? "online" : "offline");
		c->peer_online = online;
		c->peer_since_ms = util_mono_ms();
		snprintf(c->peer_id, sizeof(c->peer_id), "%s", id->valuestring);
	}
	pthread_mutex_unlock(&c->peer_mu);
out:
	cJSON_Delete(root);
}

int claims_status_fields(struct claims *c, char *buf, size_t len)
{
	char obs[64] = "";
	int n;

	if (c->want_obs)
		snprintf(obs, sizeof(obs), ",\"observations_unclaimed\":%llu",
			 (unsigned long long)atomic_load(&c->obs_unclaimed));
	n = snprintf(buf, len, ",\"ha\":{\"hub_id\":\"%s\",\"priority\":%d},"
		     "\"notifications_unclaimed\":%llu%s", c->hub_id, c->priority,
		     (unsigned long long)atomic_load(&c->unclaimed), obs);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int claims_metrics_text(struct claims *c, char *buf, size_t len)
{
	int n;

	if (!c)
		return 0;
	n = snprintf(buf, len,
		     "# HELP agri_gateway_notifications_unclaimed_total notifications sent without a"
		     " claim (the claims database away)\n"
		     "# TYPE agri_gateway_notifications_unclaimed_total counter\n"
		     "agri_gateway_notifications_unclaimed_total %llu\n"
		     "# HELP agri_gateway_claims_won_total notifications this hub claimed\n"
		     "# TYPE agri_gateway_claims_won_total counter\n"
		     "agri_gateway_claims_won_total %llu\n"
		     "# HELP agri_gateway_claims_peer_total notifications the other hub had claimed"
		     " (not sent here)\n"
		     "# TYPE agri_gateway_claims_peer_total counter\n"
		     "agri_gateway_claims_peer_total %llu\n"
		     "# HELP agri_gateway_claims_reconciled_total unclaimed sends recorded as claims"
		     " afterwards\n"
		     "# TYPE agri_gateway_claims_reconciled_total counter\n"
		     "agri_gateway_claims_reconciled_total %llu\n"
		     "# HELP agri_gateway_claims_duplicates_total unclaimed sends the other hub had"
		     " claimed too\n"
		     "# TYPE agri_gateway_claims_duplicates_total counter\n"
		     "agri_gateway_claims_duplicates_total %llu\n"
		     "# HELP agri_gateway_claims_up 1 when the claims database is connected\n"
		     "# TYPE agri_gateway_claims_up gauge\n"
		     "agri_gateway_claims_up %d\n",
		     (unsigned long long)atomic_load(&c->unclaimed),
		     (unsigned long long)atomic_load(&c->won),
		     (unsigned long long)atomic_load(&c->lost),
		     (unsigned long long)atomic_load(&c->reconciled),
		     (unsigned long long)atomic_load(&c->duplicates), atomic_load(&c->up) ? 1 : 0);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	if (c->want_obs) {
		int m = snprintf(buf + n, len - (size_t)n,
			"# HELP agri_gateway_sta_claims_won_total observations this hub claimed"
			" for SensorThings (taken over included)\n"
			"# TYPE agri_gateway_sta_claims_won_total counter\n"
			"agri_gateway_sta_claims_won_total %llu\n"
			"# HELP agri_gateway_sta_claims_taken_over_total observations whose claim"
			" by the other hub lapsed unsent (its lease) and this hub took over\n"
			"# TYPE agri_gateway_sta_claims_taken_over_total counter\n"
			"agri_gateway_sta_claims_taken_over_total %llu\n"
			"# HELP agri_gateway_sta_claims_peer_total observations the other hub sent"
			" (skipped here)\n"
			"# TYPE agri_gateway_sta_claims_peer_total counter\n"
			"agri_gateway_sta_claims_peer_total %llu\n"
			"# HELP agri_gateway_sta_unclaimed_total observations sent to SensorThings"
			" without a claim (the claims database away)\n"
			"# TYPE agri_gateway_sta_unclaimed_total counter\n"
			"agri_gateway_sta_unclaimed_total %llu\n"
			"# HELP agri_gateway_sta_claims_reconciled_total unclaimed observations"
			" recorded as claims afterwards\n"
			"# TYPE agri_gateway_sta_claims_reconciled_total counter\n"
			"agri_gateway_sta_claims_reconciled_total %llu\n"
			"# HELP agri_gateway_sta_claims_duplicates_total unclaimed observations the"
			" other hub had claimed too\n"
			"# TYPE agri_gateway_sta_claims_duplicates_total counter\n"
			"agri_gateway_sta_claims_duplicates_total %llu\n",
			(unsigned long long)atomic_load(&c->obs_won),
			(unsigned long long)atomic_load(&c->obs_taken),
			(unsigned long long)atomic_load(&c->obs_peer),
			(unsigned long long)atomic_load(&c->obs_unclaimed),
			(unsigned long long)atomic_load(&c->obs_reconciled),
			(unsigned long long)atomic_load(&c->obs_duplicates));

		if (m < 0 || (size_t)m >= len - (size_t)n)
			return -ENOSPC;
		n += m;
	}
	return n;
}
