/*
 * Notification claims in the province's PostgreSQL (see claims.h,
 * docs/ha.md): one connection, asynchronous connect and queries each
 * bounded by CLAIMS_IO_MS, retried with jittered backoff; the priority-1
 * hub's status as the fallback when the database is away.
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

#include "agri/json.h"
#include "agri/log.h"
#include "agri/util.h"
#include "gateway/config.h"

#define LOG "claims"
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 5000
#define WAIT_MS 1000      /* priority 2, waiting: ask again this often */
#define HUB_MAX 64

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
				return -EIO;
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
		PQclear(*out);
		*out = NULL;
		return -EIO;
	}
	return 0;
timeout:
	snprintf(err, errlen, "no answer within %d ms", CLAIMS_IO_MS);
	return -ETIMEDOUT;
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
		log_complain(&c->down, LOG_LVL_WARN, LOG, "claims database away, notifying %s"
			     " error=\"%s\"", c->priority == 1 ? "unclaimed (priority 1)"
			     : "only after the priority-1 hub is offline", err);
		return rc;
	}
	c->attempt = 0;
	atomic_store(&c->up, true);
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
	log_complain(&c->down, LOG_LVL_WARN, LOG, "claims database away, notifying %s"
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

enum claim_verdict claims_take(struct claims *c, const struct claim_key *k, char *winner,
			       size_t winner_len, int64_t *wait_ms)
{
	int64_t off;
	int rc;

	*wait_ms = 0;
	winner[0] = '\0';
	if (atomic_load(&c->cancelled)) { /* stopping: the row stays for the next run */
		*wait_ms = WAIT_MS;
		return CLAIM_WAIT;
	}
	pthread_mutex_lock(&c->mu);
	if (ensure(c) == 0 && util_mono_ms() < c->grace_until_ms) {
		*wait_ms = c->grace_until_ms - util_mono_ms();
		pthread_mutex_unlock(&c->mu);
		return CLAIM_WAIT;
	}
	rc = insert(c, k, false, winner, winner_len);
	pthread_mutex_unlock(&c->mu);
	if (rc >= 0) {
		atomic_fetch_add(rc ? &c->won : &c->lost, 1);
		return rc ? CLAIM_WON : CLAIM_PEER;
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
	int n = snprintf(buf, len, ",\"ha\":{\"hub_id\":\"%s\",\"priority\":%d},"
			 "\"notifications_unclaimed\":%llu", c->hub_id, c->priority,
			 (unsigned long long)atomic_load(&c->unclaimed));

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
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}
