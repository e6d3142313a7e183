/*
 * The station's main loop (see station.h and docs/station.md).
 *
 * Threads:
 *   - one thread per bus (bus.c) emits readings into the ring;
 *   - paho's threads deliver link events, acks and pushed configs into
 *     small queues;
 *   - the main thread does everything else: seals readings into spooled
 *     batches, publishes and republishes them, applies acks and configs,
 *     publishes the status, pets the watchdogs.
 *
 * Locking rules: `lock` guards the ring (ring_head, ring_n), the ack
 * queue, the pending config and the event flags; `cond` wakes the main
 * thread, `space` wakes bus threads waiting for room in the ring. Nothing
 * calls into paho, SQLite or libmodbus with `lock` held. Everything else
 * in struct station belongs to the main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/watchdog.h>

#include "agri/msg.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "bus.h"
#include "health.h"
#include "agri/log.h"
#include "mqtt.h"
#include "spool.h"
#include "station.h"
#include "trust.h"
#include "update.h"
#include "agri/util.h"

#define RING_CAP (2 * AGRI_BATCH_MAX_READINGS)
#define INFLIGHT_MAX 20   /* publications waiting for their PUBACK */
#define ACK_WINDOW 64     /* batches sent and waiting for the end-to-end ack */
#define ACKQ_MAX 1024
#define STATUS_EVERY_MS 60000
#define RECONNECT_BASE_MS 1000
#define RECONNECT_CAP_MS 30000
#define SETTLE_MS 250      /* after a lost link: 250..500 ms before the next hub */
/* A connect with no answer at all (neither success nor failure from paho)
 * after its own 10 s timeout and this margin is taken as failed: seen
 * once under load right after a voluntary disconnect from another hub. */
#define CONNECT_GIVEUP_MS 15000
#define PROBE_MIN_MS 1000   /* the home hub's probe: holddown / 5 within these */
#define PROBE_MAX_MS 60000
#define RESEND_CAP_FACTOR 8 /* resend backoff caps at 8 x ack_timeout_s */
#define RESEND_CAP_MAX_MS (3600 * 1000)
#define STATUS_BUF 32768
#define PROBATION_CHECK_MS 250 /* how often a config on probation is checked */

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP };

struct station {
	struct station_config *cfg, *cand;
	char config_path[STATION_PATH_MAX];
	char trust_dir[STATION_PATH_MAX + 16]; /* the technicians' keys (trust.h) */
	struct spool *spool;
	struct mqtt *mqtt;
	struct bus *buses[STATION_BUSES_MAX];
	size_t n_buses;
	struct bus_sensor_stats stats[STATION_SENSORS_MAX];
	atomic_bool maint;
	atomic_bool stop;

	pthread_mutex_t lock;
	pthread_cond_t cond, space;
	struct agri_reading *ring;
	size_t ring_head, ring_n;
	bool buses_stopping;
	uint64_t readings_dropped;
	struct agri_seq_range ackq[ACKQ_MAX];
	size_t n_ackq;
	char *cfg_msg;
	size_t cfg_len;
	bool cfg_pending;
	bool ev_connected, ev_lost;
	char lost_why[160];
	int probe_result; /* the home hub's last probe: 0 none, 1 up, -1 down */
	char *upd_msg;      /* an update command from paho (update.h) */
	size_t upd_len;
	bool upd_pending, ev_update;

	/* main thread only */
	struct agri_reading *batch;
	char *buf;      /* encode/publish buffer, AGRI_BATCH_MAX_BYTES + 1 */
	char *cfg_work; /* a pushed config being applied, in its envelope */
	char *cfg_doc;  /* the document its signature covers */
	struct agri_seq_range acks[ACKQ_MAX];
	struct agri_status status;
	char status_buf[STATUS_BUF];
	char topic_telemetry[AGRI_TOPIC_MAX], topic_status[AGRI_TOPIC_MAX];
	char topic_cfg_ack[AGRI_TOPIC_MAX];
	enum link_state link;
	int reconnect_attempt;  /* passes over the whole list that failed */
	int64_t reconnect_at;
	int64_t connect_deadline; /* LINK_CONNECTING: no answer by then = failed */
	/* Hubs (docs/station.md "Hubs"): the one tried or in use, the
	 * failed attempts of this pass over the list, and the home hub's
	 * probes while on another: answering since (0: not), next probe. */
	size_t hub;
	size_t pass_fails;
	bool probing;
	int64_t home_since, next_probe;
	uint32_t rng;
	struct log_complaint link_complaint;
	uint64_t fresh_floor;
	bool alt;
	int64_t started, next_seal, next_status;
	bool status_dirty;
	int wd_fd;
	int64_t sd_wd_every_ms, next_sd_wd;
	/* A pushed config on probation (docs/station.md "Probation"): applied,
	 * not yet persisted nor acked; the previous config waits in cand. */
	struct {
		bool on;
		int64_t version, started, deadline; /* monotonic ms */
		char by[AGRI_ID_MAX + 1];
		char *msg; /* the signed message, persisted once it passes */
		size_t len;
		uint64_t base_ok[STATION_SENSORS_MAX]; /* reads_ok when it began */
		/* Already failing, unchanged, under the previous config: the
		 * new one did not break them, so they do not hold it back. */
		bool old_sensor[STATION_SENSORS_MAX], old_bus[STATION_BUSES_MAX];
	} prob;
	uint32_t link_sig;      /* the buses' states last published (status) */
	int64_t failed_version; /* newest pushed version that failed probation */
	int64_t failed_ms;      /* when (wall clock) */
	char failed_error[256]; /* why: the config ack's error */
	struct update *update; /* NULL when update.json is broken (logged) */
	char *upd_work;
	uint64_t spool_writes; /* batches spooled since start (health check) */
};

/* ---- systemd notify, without libsystemd ---- */

static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t sl;
	int fd;

	if (!path || !path[0] || strlen(path) >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, strlen(path));
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
	close(fd);
}

/* ---- readings: bus threads -> ring ---- */

/* Bus thread: copies one poll's readings into the ring (blocks while it
 * is full, unless the buses are being stopped). */
static void station_emit(void *ctx, const struct agri_reading *r, size_t n)
{
	struct station *st = ctx;

	pthread_mutex_lock(&st->lock);
	while (st->ring_n + n > RING_CAP && !st->buses_stopping)
		pthread_cond_wait(&st->space, &st->lock);
	if (st->ring_n + n > RING_CAP) {
		st->readings_dropped += n;
		pthread_mutex_unlock(&st->lock);
		log_error("station", "reading ring full: readings dropped n=%zu", n);
		return;
	}
	for (size_t i = 0; i < n; i++)
		st->ring[(st->ring_head + st->ring_n + i) % RING_CAP] = r[i];
	st->ring_n += n;
	if (st->ring_n >= AGRI_BATCH_MAX_READINGS)
		pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

/* Main thread: seals every reading in the ring into spooled batches.
 * Returns 0, or -errno when the spool refused a batch (the readings stay
 * in the ring for the next try). */
static int station_seal(struct station *st)
{
	for (;;) {
		struct agri_telemetry t = {.readings = st->batch, .cap = AGRI_BATCH_MAX_READINGS};
		size_t n;
		int len, rc;

		pthread_mutex_lock(&st->lock);
		n = st->ring_n < AGRI_BATCH_MAX_READINGS ? st->ring_n : AGRI_BATCH_MAX_READINGS;
		for (size_t i = 0; i < n; i++)
			st->batch[i] = st->ring[(st->ring_head + i) % RING_CAP];
		pthread_mutex_unlock(&st->lock);
		if (n == 0)
			return 0;
		snprintf(t.station, sizeof(t.station), "%s", st->cfg->station);
		t.seq = spool_next_seq(st->spool);
		t.sent_at_ms = util_now_ms();
		for (;;) {
			t.n = n;
			len = agri_telemetry_encode(&t, st->buf, AGRI_BATCH_MAX_BYTES + 1);
			if (len != -ENOSPC || n == 1)
				break;
			n /= 2; /* over 256 KiB: seal in two */
		}
		if (len < 0) {
			log_error("station", "cannot encode batch n=%zu rc=%d: readings dropped", n, len);
			rc = 0; /* drop what cannot be encoded rather than block */
		} else {
			rc = spool_put(st->spool, t.seq, st->buf, (size_t)len, util_now_ms());
			if (rc < 0) {
				log_error("station", "cannot spool batch seq=%" PRIu64 ": %s", t.seq,
					  strerror(-rc));
				return rc;
			}
			st->spool_writes++;
			log_debug("station", "sealed seq=%" PRIu64 " readings=%zu bytes=%d", t.seq, n,
				  len);
		}
		pthread_mutex_lock(&st->lock);
		st->ring_head = (st->ring_head + n) % RING_CAP;
		st->ring_n -= n;
		pthread_cond_broadcast(&st->space);
		pthread_mutex_unlock(&st->lock);
	}
}

/* ---- MQTT callbacks (paho threads) ---- */

static void on_connected(void *ctx)
{
	struct station *st = ctx;

	pthread_mutex_lock(&st->lock);
	st->ev_connected = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void on_lost(void *ctx, const char *why)
{
	struct station *st = ctx;

	pthread_mutex_lock(&st->lock);
	st->ev_lost = true;
	snprintf(st->lost_why, sizeof(st->lost_why), "%s", why);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void on_probed(void *ctx, size_t hub, bool up)
{
	struct station *st = ctx;

	(void)hub;
	pthread_mutex_lock(&st->lock);
	st->probe_result = up ? 1 : -1;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void on_delivered(void *ctx)
{
	struct station *st = ctx;

	pthread_mutex_lock(&st->lock);
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static bool topic_ends(const char *topic, const char *suffix)
{
	size_t a = strlen(topic), b = strlen(suffix);

	return a > b && !strcmp(topic + a - b, suffix) && topic[a - b - 1] == '/';
}

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct station *st = ctx;
	struct agri_err err = {{0}, {0}};

	if (topic_ends(topic, "update")) {
		if (len > UPDATE_CMD_MAX) {
			log_warn("station", "update command too large bytes=%zu", len);
			return;
		}
		pthread_mutex_lock(&st->lock);
		memcpy(st->upd_msg, payload, len);
		st->upd_len = len;
		st->upd_pending = true;
		pthread_cond_signal(&st->cond);
		pthread_mutex_unlock(&st->lock);
	} else if (topic_ends(topic, "config") && !topic_ends(topic, "config/ack")) {
		if (len == 0)
			return; /* retained config cleared */
		if (len > STATION_CONFIG_MAX_BYTES) {
			log_warn("station", "pushed config too large bytes=%zu", len);
			return;
		}
		pthread_mutex_lock(&st->lock);
		memcpy(st->cfg_msg, payload, len);
		st->cfg_len = len;
		st->cfg_pending = true;
		pthread_cond_signal(&st->cond);
		pthread_mutex_unlock(&st->lock);
	} else if (topic_ends(topic, "ack")) {
		struct agri_ack *a = malloc(sizeof(*a));
		char msg[256];

		if (!a)
			return;
		if (agri_ack_decode(payload, len, a, &err) < 0) {
			agri_err_format(&err, msg, sizeof(msg));
			log_warn("station", "bad ack ignored: %s", msg);
		} else {
			pthread_mutex_lock(&st->lock);
			for (size_t i = 0; i < a->n && st->n_ackq < ACKQ_MAX; i++)
				st->ackq[st->n_ackq++] = a->ranges[i];
			pthread_cond_signal(&st->cond);
			pthread_mutex_unlock(&st->lock);
		}
		free(a);
	}
}

/* ---- buses ---- */

static int station_start_buses(struct station *st)
{
	struct bus_sink sink = {station_emit, st};

	pthread_mutex_lock(&st->lock);
	st->buses_stopping = false;
	pthread_mutex_unlock(&st->lock);
	st->n_buses = 0;
	for (size_t i = 0; i < st->cfg->n_buses; i++) {
		struct bus *b = bus_new(st->cfg, i, st->stats, &st->maint, sink);

		if (!b)
			return -ENOMEM;
		st->buses[st->n_buses++] = b;
		if (bus_start(b) < 0)
			return -EAGAIN;
	}
	return 0;
}

static void station_stop_buses(struct station *st)
{
	pthread_mutex_lock(&st->lock);
	st->buses_stopping = true;
	pthread_cond_broadcast(&st->space);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < st->n_buses; i++) {
		bus_stop(st->buses[i]);
		bus_free(st->buses[i]);
		st->buses[i] = NULL;
	}
	st->n_buses = 0;
}

static bool station_buses_healthy(struct station *st, int64_t now)
{
	for (size_t i = 0; i < st->n_buses; i++) {
		int64_t limit = 30000 + st->cfg->buses[i].timeout_ms * AGRI_PLAN_MAX;

		if (now - bus_heartbeat_ms(st->buses[i]) > limit)
			return false;
	}
	return true;
}

/* ---- status ---- */

/* Sensor i's last error in words (health.c), or "" when it has none. */
static void station_sensor_reason(struct station *st, size_t i, char *buf, size_t len)
{
	const struct station_sensor *s = &st->cfg->sensors[i];
	struct health_bus_facts f = {0};
	struct bus_link_health lh = {0};
	int e = atomic_load(&st->stats[i].last_errno);
	int64_t now = util_now_ms();

	buf[0] = '\0';
	if (!e || s->bus_index < 0)
		return;
	if ((size_t)s->bus_index < st->n_buses)
		bus_link_health(st->buses[s->bus_index], &lh);
	f.bus_open = lh.open;
	f.bus_error = lh.error;
	for (size_t j = 0; j < st->cfg->n_sensors; j++) {
		const struct station_sensor *o = &st->cfg->sensors[j];
		int64_t ok = atomic_load(&st->stats[j].last_ok_ms);

		if (j == i || o->bus_index != s->bus_index || o->maintenance)
			continue;
		f.others++;
		/* Recently: within three of its polls (and a minute). */
		if (ok && now - ok <= (int64_t)(3 * o->interval_s * 1000) + 60000)
			f.others_answering++;
	}
	health_sensor_reason(s, &st->cfg->buses[s->bus_index], e, &f, buf, len);
}

static void station_publish_status(struct station *st, bool online)
{
	struct agri_status *s = &st->status;
	int len;

	memset(s, 0, sizeof(*s));
	snprintf(s->station, sizeof(s->station), "%s", st->cfg->station);
	s->online = online;
	snprintf(s->fw, sizeof(s->fw), "%s", AGRI_VERSION);
	snprintf(s->board, sizeof(s->board), "%s", AGRI_BOARD);
	snprintf(s->broker, sizeof(s->broker), "%s", mqtt_url(st->mqtt));
	s->config_version = st->cfg->version;
	snprintf(s->config_signed_by, sizeof(s->config_signed_by), "%s", st->cfg->signed_by);
	s->ts_ms = util_now_ms();
	s->uptime_s = (uint64_t)((util_mono_ms() - st->started) / 1000);
	s->spool_depth = spool_depth(st->spool);
	s->spool_dropped = spool_dropped(st->spool);
	s->last_seq = spool_next_seq(st->spool) - 1;
	s->spool_oldest_ms = spool_oldest_ms(st->spool);
	s->maintenance = atomic_load(&st->maint);
	s->probation_version = st->prob.on ? st->prob.version : 0;
	s->config_failed_version = st->failed_version;
	s->config_failed_ms = st->failed_ms;
	snprintf(s->config_failed_error, sizeof(s->config_failed_error), "%s", st->failed_error);
	s->n_buses = st->n_buses < AGRI_STATUS_BUSES_MAX ? st->n_buses : AGRI_STATUS_BUSES_MAX;
	for (size_t i = 0; i < s->n_buses; i++) {
		struct agri_bus_health *h = &s->buses[i];
		struct bus_link_health lh;

		bus_link_health(st->buses[i], &lh);
		snprintf(h->name, sizeof(h->name), "%s", st->cfg->buses[i].name);
		h->open = lh.open;
		h->since_ms = lh.since_ms;
		if (!lh.open && lh.error)
			health_bus_reason(&st->cfg->buses[i], lh.error, h->error, sizeof(h->error));
	}
	s->n_sensors = st->cfg->n_sensors;
	for (size_t i = 0; i < st->cfg->n_sensors && i < AGRI_STATUS_SENSORS_MAX; i++) {
		struct agri_sensor_health *h = &s->sensors[i];
		struct bus_sensor_stats *c = &st->stats[i];

		snprintf(h->name, sizeof(h->name), "%s", st->cfg->sensors[i].name);
		snprintf(h->profile, sizeof(h->profile), "%s", st->cfg->sensors[i].profile);
		h->reads_ok = atomic_load(&c->reads_ok);
		h->reads_failed = atomic_load(&c->reads_failed) + atomic_load(&c->skipped);
		h->timeouts = atomic_load(&c->timeouts);
		h->crc_errors = atomic_load(&c->crc_errors);
		h->exceptions = atomic_load(&c->exceptions);
		h->last_ok_ms = atomic_load(&c->last_ok_ms);
		h->last_error_ms = atomic_load(&c->last_error_ms);
		h->maintenance = st->cfg->sensors[i].maintenance;
		station_sensor_reason(st, i, h->last_error, sizeof(h->last_error));
	}
	len = agri_status_encode(s, st->status_buf, sizeof(st->status_buf));
	if (len < 0) {
		log_error("station", "cannot encode status rc=%d", len);
		return;
	}
	if (st->update && online)
		len = (int)update_status_append(st->update, st->status_buf, (size_t)len,
						sizeof(st->status_buf));
	if (mqtt_publish(st->mqtt, st->topic_status, st->status_buf, (size_t)len, true,
			 false) == 0) {
		st->status_dirty = false;
		st->next_status = util_mono_ms() + STATUS_EVERY_MS;
	}
}

/* ---- remote config ---- */

/* signed_by: the technician whose signature verified, or "". */
static void station_config_ack(struct station *st, int64_t version, const char *error,
			       const char *signed_by)
{
	struct agri_config_ack a = {.version = version, .applied = error == NULL};
	char buf[768];
	int len;

	snprintf(a.station, sizeof(a.station), "%s", st->cfg->station);
	if (error)
		snprintf(a.error, sizeof(a.error), "%s", error);
	snprintf(a.signed_by, sizeof(a.signed_by), "%s", signed_by);
	len = agri_config_ack_encode(&a, buf, sizeof(buf));
	if (len > 0)
		mqtt_publish(st->mqtt, st->topic_cfg_ack, buf, (size_t)len, false, false);
}

/* Moves the counters of sensors that keep their name to their new index. */
static void station_carry_stats(struct station *st, const struct station_config *old,
				const struct station_config *neu)
{
	static struct bus_sensor_stats tmp[STATION_SENSORS_MAX];

	memset(tmp, 0, sizeof(tmp));
	for (size_t i = 0; i < neu->n_sensors; i++)
		for (size_t j = 0; j < old->n_sensors; j++) {
			if (strcmp(neu->sensors[i].name, old->sensors[j].name))
				continue;
#define MV(f) atomic_store(&tmp[i].f, atomic_load(&st->stats[j].f))
			MV(reads_ok); MV(reads_failed); MV(skipped); MV(timeouts);
			MV(crc_errors); MV(exceptions); MV(other_errors); MV(last_ok_ms);
			MV(last_errno); MV(last_error_ms);
#undef MV
		}
	memcpy(st->stats, tmp, sizeof(tmp));
}

/*
 * A pushed config (json: the message, in its signature envelope): ignored
 * unless its version is above the running one; then the signature, the
 * document, its version again (the signed one), the closed schema of
 * remote configs. Rejected: config/ack with the reason, nothing changes.
 * Accepted: persisted (the message as signed), applied, acked. Main thread.
 */
static void station_swap_config(struct station *st);
static void station_probation_known_failures(struct station *st);

static void station_apply_config(struct station *st, const char *json, size_t len)
{
	struct agri_err err = {{0}, {0}};
	char msg[640], path[STATION_PATH_MAX + 16], by[AGRI_ID_MAX + 1] = "";
	int64_t version = 0;
	size_t doc_len;
	int rc;

	if (agri_config_version(json, len, &version, &err) < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		log_warn("station", "pushed config rejected: %s", msg);
		station_config_ack(st, version, msg, "");
		return;
	}
	if (version <= st->cfg->version) {
		log_debug("station", "pushed config ignored version=%" PRId64 " running=%" PRId64,
			  version, st->cfg->version);
		return;
	}
	if (version <= st->failed_version) {
		log_debug("station", "pushed config ignored version=%" PRId64 ": version %" PRId64
			  " failed its probation", version, st->failed_version);
		return;
	}
	rc = trust_open(st->trust_dir, json, len, st->cfg_doc, STATION_CONFIG_MAX_BYTES,
			&doc_len, by, &err);
	if (rc == 0)
		rc = station_config_parse(st->cfg_doc, doc_len, st->config_path, st->cand, &err);
	if (rc == 0 && st->cand->version <= st->cfg->version) {
		agri_err_set(&err, "version", "the signed version %" PRId64 " is not above the "
			     "running %" PRId64, st->cand->version, st->cfg->version);
		rc = -EINVAL;
	}
	if (rc == 0)
		rc = station_config_remote_check(st->cfg, st->cand, &err);
	if (rc < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		log_warn("station", "pushed config rejected version=%" PRId64 " signed_by=%s: %s",
			 version, by[0] ? by : "-", msg);
		station_config_ack(st, version, msg, by);
		return;
	}
	version = st->cand->version;
	snprintf(st->cand->signed_by, sizeof(st->cand->signed_by), "%s", by);
	if (st->cand->probation_s <= 0) {
		/* No probation: persisted, applied and acked at once. */
		snprintf(path, sizeof(path), "%s/config.json", st->cfg->state_dir);
		rc = util_write_file_atomic(path, json, len);
		if (rc < 0) {
			snprintf(msg, sizeof(msg), "cannot persist %s: %s", path, strerror(-rc));
			log_error("station", "pushed config rejected: %s", msg);
			station_config_ack(st, version, msg, by);
			return;
		}
		station_swap_config(st);
		log_info("station", "config applied version=%" PRId64 " signed_by=%s sensors=%zu",
			 version, by, st->cfg->n_sensors);
		station_config_ack(st, version, NULL, by);
		return;
	}
	/* On probation: the old config waits in cand until the new one has
	 * shown that every bus opens and every sensor answers. */
	memcpy(st->prob.msg, json, len);
	st->prob.len = len;
	st->prob.version = version;
	snprintf(st->prob.by, sizeof(st->prob.by), "%s", by);
	station_probation_known_failures(st);
	station_swap_config(st);
	for (size_t i = 0; i < st->cfg->n_sensors; i++)
		st->prob.base_ok[i] = atomic_load(&st->stats[i].reads_ok);
	st->prob.started = util_mono_ms();
	st->prob.deadline = st->prob.started + (int64_t)llround(st->cfg->probation_s * 1000);
	st->prob.on = true;
	log_info("station", "config on probation version=%" PRId64 " signed_by=%s sensors=%zu "
		 "probation_s=%g", version, by, st->cfg->n_sensors, st->cfg->probation_s);
}

/* The same link: an RTU port at the same settings, or the same TCP peer. */
static bool same_link(const struct station_bus *a, const struct station_bus *b)
{
	if (a->is_tcp != b->is_tcp)
		return false;
	if (a->is_tcp)
		return !strcmp(a->host, b->host) && a->port == b->port;
	return !strcmp(a->device, b->device) && a->baud == b->baud &&
	       !strcmp(a->parity_s, b->parity_s) && a->data_bits == b->data_bits &&
	       a->stop_bits == b->stop_bits;
}

/*
 * Before a pushed config (st->cand) replaces the running one: the buses and
 * sensors it keeps as they are that fail under the running config (a bus
 * down, a sensor whose last poll failed). A config that changes an
 * interval must not be rolled back for a probe that was dead before it.
 */
static void station_probation_known_failures(struct station *st)
{
	const struct station_config *old = st->cfg, *neu = st->cand;

	memset(st->prob.old_sensor, 0, sizeof(st->prob.old_sensor));
	memset(st->prob.old_bus, 0, sizeof(st->prob.old_bus));
	for (size_t k = 0; k < neu->n_buses; k++)
		for (size_t j = 0; j < old->n_buses && j < st->n_buses; j++) {
			struct bus_link_health lh;

			bus_link_health(st->buses[j], &lh);
			if (same_link(&neu->buses[k], &old->buses[j]) && !lh.open && lh.error)
				st->prob.old_bus[k] = true;
		}
	for (size_t i = 0; i < neu->n_sensors; i++) {
		const struct station_sensor *n = &neu->sensors[i];

		for (size_t j = 0; j < old->n_sensors; j++) {
			const struct station_sensor *o = &old->sensors[j];
			const struct bus_sensor_stats *c = &st->stats[j];

			if (strcmp(n->name, o->name) || n->slave != o->slave ||
			    strcmp(n->profile, o->profile) ||
			    !same_link(&neu->buses[n->bus_index], &old->buses[o->bus_index]))
				continue;
			st->prob.old_sensor[i] = atomic_load(&c->last_error_ms) >
						 atomic_load(&c->last_ok_ms);
		}
	}
}

/*
 * Runs st->cand in place of st->cfg (and keeps the old one in cand): the
 * buses finish their poll in progress and start again with the new
 * schedule; readings already in the ring stay there and are sealed as
 * usual; counters of sensors that keep their name carry over.
 */
static void station_swap_config(struct station *st)
{
	struct station_config *old;
	int rc;

	station_stop_buses(st);
	old = st->cfg;
	st->cfg = st->cand;
	st->cand = old;
	station_carry_stats(st, old, st->cfg);
	spool_set_max_bytes(st->spool, (uint64_t)st->cfg->spool_max_mb << 20);
	rc = station_start_buses(st);
	if (rc < 0)
		log_error("station", "cannot start buses: %s", strerror(-rc));
	st->next_seal = util_mono_ms() + (int64_t)llround(st->cfg->publish_interval_s * 1000);
	st->status_dirty = true;
}

/* The first thing that keeps the config on probation from passing, in
 * words ("bus rs485: /dev/ttyUSB9: no such device"); "" when all is
 * well. Main thread. */
static void station_probation_failure(struct station *st, char *buf, size_t len)
{
	char why[AGRI_STATUS_ERROR_MAX + 1];
	size_t bad = 0, pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < st->n_buses; i++) {
		struct bus_link_health lh;

		bus_link_health(st->buses[i], &lh);
		if (lh.ever_open || st->prob.old_bus[i])
			continue;
		if (bad++ == 0) {
			health_bus_reason(&st->cfg->buses[i], lh.error, why, sizeof(why));
			pos = (size_t)snprintf(buf, len, "bus %s: %s", st->cfg->buses[i].name, why);
		}
	}
	for (size_t i = 0; i < st->cfg->n_sensors; i++) {
		const struct station_sensor *s = &st->cfg->sensors[i];
		struct bus_link_health lh = {0};

		if (s->bus_index >= 0 && (size_t)s->bus_index < st->n_buses)
			bus_link_health(st->buses[s->bus_index], &lh);
		/* A sensor on a bus that never opened: the bus is the reason. */
		if (s->maintenance || !lh.ever_open || st->prob.old_sensor[i] ||
		    atomic_load(&st->stats[i].reads_ok) > st->prob.base_ok[i])
			continue;
		if (bad++ == 0) {
			station_sensor_reason(st, i, why, sizeof(why));
			pos = (size_t)snprintf(buf, len, "sensor %s: %s", s->name,
					       why[0] ? why : "no good read yet");
		}
	}
	if (bad > 1 && pos < len)
		snprintf(buf + pos, len - pos, " (and %zu more)", bad - 1);
}

/*
 * A config on probation: passes (persisted, acked "applied") as soon as
 * every bus has opened and every sensor not in maintenance has answered
 * once; at the deadline it is rolled back (the previous config runs
 * again) and acked "rejected" with the reason, and its version is not
 * tried again. Main thread.
 */
static void station_probation(struct station *st, int64_t now)
{
	char why[200], msg[256], path[STATION_PATH_MAX + 16], rec[512];
	int rc;

	if (!st->prob.on)
		return;
	station_probation_failure(st, why, sizeof(why));
	if (!why[0]) {
		snprintf(path, sizeof(path), "%s/config.json", st->cfg->state_dir);
		rc = util_write_file_atomic(path, st->prob.msg, st->prob.len);
		if (rc == 0) {
			st->prob.on = false;
			st->status_dirty = true;
			log_info("station", "config applied version=%" PRId64 " signed_by=%s sensors=%zu"
				 " probation_ms=%" PRId64, st->prob.version, st->prob.by,
				 st->cfg->n_sensors, now - st->prob.started);
			station_config_ack(st, st->prob.version, NULL, st->prob.by);
			return;
		}
		snprintf(why, sizeof(why), "cannot persist %.100s: %.80s", path, strerror(-rc));
	} else if (now < st->prob.deadline) {
		return;
	}
	/* Failed: the previous config runs again. */
	st->prob.on = false;
	station_swap_config(st);
	snprintf(msg, sizeof(msg), "probation: %.190s (version %" PRId64 " runs again)", why,
		 st->cfg->version);
	log_warn("station", "pushed config rejected version=%" PRId64 " signed_by=%s: %s",
		 st->prob.version, st->prob.by, msg);
	/* Remembered (STATE_DIR/config.failed: version, time, reason), so the
	 * retained config is not tried again at each reconnect or restart,
	 * and the status says what happened to it. */
	st->failed_version = st->prob.version;
	st->failed_ms = util_now_ms();
	snprintf(st->failed_error, sizeof(st->failed_error), "%s", msg);
	snprintf(path, sizeof(path), "%s/config.failed", st->cfg->state_dir);
	snprintf(rec, sizeof(rec), "%" PRId64 "\n%" PRId64 "\n%s\n", st->failed_version,
		 st->failed_ms, st->failed_error);
	if ((rc = util_write_file_atomic(path, rec, strlen(rec))) < 0)
		log_warn("station", "cannot write %s: %s", path, strerror(-rc));
	station_config_ack(st, st->prob.version, msg, st->prob.by);
}

/* ---- link and publishing ---- */

/* The hub after st->hub was tried and failed (connect failed or link
 * lost): the next one at once, or, once every hub of the list failed in
 * this pass, the first again after a backoff. The list is never narrowed:
 * each pass tries every hub, the home hub first. After a lost link the
 * next hub waits a short random settle time: paho finishes with the old
 * link, and a hub's stations do not all arrive at the other in the same
 * millisecond. */
static void station_next_hub(struct station *st, int64_t now, bool lost)
{
	size_t n = st->cfg->broker.n_urls;

	st->hub = (st->hub + 1) % n;
	if (++st->pass_fails < n) {
		st->reconnect_at = now + (lost ? SETTLE_MS + (int64_t)(util_rand32(&st->rng) %
								      SETTLE_MS) : 0);
		return;
	}
	st->pass_fails = 0;
	st->hub = 0;
	st->reconnect_at = now + util_backoff_ms(st->reconnect_attempt++, RECONNECT_BASE_MS,
						 RECONNECT_CAP_MS, &st->rng);
}

static int64_t station_probe_every(const struct station *st)
{
	int64_t ms = st->cfg->broker.home_holddown_s * 1000 / 5;

	return ms < PROBE_MIN_MS ? PROBE_MIN_MS : ms > PROBE_MAX_MS ? PROBE_MAX_MS : ms;
}

/*
 * On another hub than the home hub: probe the home hub every
 * home_holddown_s / 5; once it has answered every probe for
 * home_holddown_s, leave this hub cleanly and connect to the home hub. If
 * that connect fails, the next hub is tried at once as after any failed
 * connect, and the home hub has to answer for a whole hold-down again.
 */
static void station_home(struct station *st, int64_t now, int result)
{
	int64_t hold = st->cfg->broker.home_holddown_s * 1000;

	if (result) {
		st->probing = false;
		st->next_probe = now + station_probe_every(st);
	}
	if (st->link != LINK_UP || st->hub == 0) {
		st->home_since = 0;
		return;
	}
	if (result < 0)
		st->home_since = 0;
	else if (result > 0 && !st->home_since)
		st->home_since = now;
	if (st->home_since && now - st->home_since >= hold) {
		log_info("mqtt", "home hub url=%s answered for %" PRId64 " s: leaving url=%s",
			 st->cfg->broker.urls[0], (now - st->home_since) / 1000,
			 mqtt_url(st->mqtt));
		mqtt_disconnect(st->mqtt, 1000);
		st->link = LINK_DOWN;
		st->home_since = 0;
		st->hub = 0;
		st->pass_fails = 0;
		st->reconnect_at = now + SETTLE_MS; /* paho finishes the disconnect */
		return;
	}
	if (!st->probing && now >= st->next_probe) {
		if (mqtt_probe(st->mqtt, 0) == 0)
			st->probing = true;
		else
			st->next_probe = now + station_probe_every(st);
	}
}

static void station_link_events(struct station *st, int64_t now)
{
	bool connected, lost;
	int probe;
	char why[160];

	pthread_mutex_lock(&st->lock);
	connected = st->ev_connected;
	lost = st->ev_lost;
	probe = st->probe_result;
	st->ev_connected = st->ev_lost = false;
	st->probe_result = 0;
	snprintf(why, sizeof(why), "%s", st->lost_why);
	pthread_mutex_unlock(&st->lock);

	if (lost && st->link != LINK_DOWN && !(connected && mqtt_is_connected(st->mqtt))) {
		bool was_up = st->link == LINK_UP;

		log_complain(&st->link_complaint, LOG_LVL_WARN, "mqtt", "broker unreachable: %s",
			     why);
		if (st->cfg->broker.n_urls > 1)
			log_warn("mqtt", "hub url=%s %s: %s", mqtt_url(st->mqtt),
				 was_up ? "lost" : "unreachable", why);
		st->link = LINK_DOWN;
		station_next_hub(st, now, was_up);
	}
	if (connected && mqtt_is_connected(st->mqtt) && st->link != LINK_UP) {
		bool complained = st->link_complaint.complained;

		st->link = LINK_UP;
		st->reconnect_attempt = 0;
		st->pass_fails = 0;
		st->home_since = 0;
		st->next_probe = now + station_probe_every(st);
		if (complained)
			log_release(&st->link_complaint, "mqtt", "connected url=%s",
				    mqtt_url(st->mqtt));
		else
			log_info("mqtt", "connected url=%s", mqtt_url(st->mqtt));
		spool_resend_all(st->spool); /* unacked batches go again, on this hub */
		st->fresh_floor = spool_next_seq(st->spool);
		st->status_dirty = true;
	}
	/* (A link that went down always says so through lost: acting on
	 * mqtt_is_connected() alone here could take its late lost event for
	 * the failure of the next hub's attempt.) */
	station_home(st, now, probe);
	if (st->link == LINK_CONNECTING && now >= st->connect_deadline) {
		log_warn("mqtt", "hub url=%s: no answer to the connect in %d s", mqtt_url(st->mqtt),
			 CONNECT_GIVEUP_MS / 1000);
		mqtt_disconnect(st->mqtt, 0);
		st->link = LINK_DOWN;
		station_next_hub(st, now, false);
	}
	if (st->link == LINK_DOWN && now >= st->reconnect_at) {
		int rc = mqtt_connect(st->mqtt, st->hub);

		if (rc == 0) {
			st->link = LINK_CONNECTING;
			st->connect_deadline = now + CONNECT_GIVEUP_MS;
		}
		else if (rc == -EBUSY)
			st->reconnect_at = now + SETTLE_MS;
		else
			station_next_hub(st, now, false);
	}
}

/* Publishes due batches: the backlog oldest first, interleaved with the
 * newest fresh batch, within the in-flight and ack windows. */
static void station_publish(struct station *st, int64_t now)
{
	int64_t timeout_ms = (int64_t)llround(st->cfg->ack_timeout_s * 1000);
	int64_t cap_ms = timeout_ms * RESEND_CAP_FACTOR;

	if (cap_ms > RESEND_CAP_MAX_MS)
		cap_ms = RESEND_CAP_MAX_MS;
	if (cap_ms < timeout_ms)
		cap_ms = timeout_ms;
	while (st->link == LINK_UP && mqtt_inflight(st->mqtt) < INFLIGHT_MAX &&
	       spool_outstanding(st->spool, now) < ACK_WINDOW) {
		uint64_t seq;
		size_t len;
		int rc;

		st->alt = !st->alt;
		/* The oldest due batch first; the newest fresh one jumps the
		 * queue only while a backlog from before the connection drains.
		 * Without a backlog (two fresh batches due at once: a poll
		 * that landed during a seal, a resend) the batches go in seq
		 * order, or the gateway's rules would see the newer readings
		 * first and skip the older ones as late (docs/alerts.md). */
		rc = spool_pick(st->spool, now, false, 0, &seq, st->buf,
				AGRI_BATCH_MAX_BYTES + 1, &len);
		if (rc == 0 && st->alt && seq < st->fresh_floor) {
			uint64_t nseq;
			size_t nlen;

			if (spool_pick(st->spool, now, true, st->fresh_floor, &nseq, st->buf,
				       AGRI_BATCH_MAX_BYTES + 1, &nlen) == 0) {
				seq = nseq; /* (a failed pick leaves buf alone) */
				len = nlen;
			}
		}
		if (rc < 0)
			break;
		rc = mqtt_publish(st->mqtt, st->topic_telemetry, st->buf, len, false, true);
		if (rc < 0)
			break;
		spool_mark_sent(st->spool, seq, now, timeout_ms, cap_ms);
		log_debug("station", "published seq=%" PRIu64 " bytes=%zu", seq, len);
	}
}

static void station_take_acks(struct station *st)
{
	size_t n;

	pthread_mutex_lock(&st->lock);
	n = st->n_ackq;
	memcpy(st->acks, st->ackq, n * sizeof(st->acks[0]));
	st->n_ackq = 0;
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		int rc = spool_ack(st->spool, st->acks[i].first, st->acks[i].last);

		if (rc > 0)
			log_debug("station", "acked first=%" PRIu64 " last=%" PRIu64 " batches=%d",
				  st->acks[i].first, st->acks[i].last, rc);
	}
}

static void station_take_config(struct station *st)
{
	size_t len;

	pthread_mutex_lock(&st->lock);
	if (!st->cfg_pending || st->prob.on) { /* a newer one waits for the probation */
		pthread_mutex_unlock(&st->lock);
		return;
	}
	len = st->cfg_len;
	memcpy(st->cfg_work, st->cfg_msg, len);
	st->cfg_pending = false;
	pthread_mutex_unlock(&st->lock);
	station_apply_config(st, st->cfg_work, len);
}

/* Update agent (update.h): its wake hook (worker thread), the command
 * paho queued, and a turn of its state machine with the health it asks. */
static void station_update_wake(void *ctx)
{
	struct station *st = ctx;

	pthread_mutex_lock(&st->lock);
	st->ev_update = true;
	pthread_cond_signal(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

static void station_update(struct station *st, int64_t now)
{
	struct update_health h = {.connected = st->link == LINK_UP,
				  .spool_ok = st->spool_writes > 0, .sensors_read = true};
	size_t len = 0;
	int r;

	pthread_mutex_lock(&st->lock);
	if (st->upd_pending) {
		len = st->upd_len;
		memcpy(st->upd_work, st->upd_msg, len);
		st->upd_pending = false;
	}
	st->ev_update = false;
	pthread_mutex_unlock(&st->lock);
	if (!st->update)
		return;
	if (len)
		update_command(st->update, st->upd_work, len);
	for (size_t i = 0; i < st->cfg->n_sensors; i++)
		if (atomic_load(&st->stats[i].reads_ok) == 0)
			h.sensors_read = false;
	r = update_tick(st->update, &h);
	if (r & UPDATE_DIRTY)
		st->status_dirty = true;
	if (r & UPDATE_WANT_SEAL)
		st->next_seal = now; /* the health check waits for a spool write */
}

/* A bus that opened or went down (or failed another way), a sensor that
 * started failing or answers again, change the status: it is published
 * again (a failure that repeats does not). */
static void station_check_links(struct station *st)
{
	uint32_t sig = 2166136261u;

	for (size_t i = 0; i < st->n_buses; i++) {
		struct bus_link_health lh;

		bus_link_health(st->buses[i], &lh);
		sig = (sig ^ (uint32_t)(lh.open | lh.ever_open << 1)) * 16777619u;
		sig = (sig ^ (uint32_t)lh.error) * 16777619u;
	}
	for (size_t i = 0; i < st->cfg->n_sensors; i++) {
		const struct bus_sensor_stats *c = &st->stats[i];
		bool failing = atomic_load(&c->last_error_ms) > atomic_load(&c->last_ok_ms);

		sig = (sig ^ (uint32_t)failing) * 16777619u;
		sig = (sig ^ (uint32_t)(failing ? atomic_load(&c->last_errno) : 0)) * 16777619u;
	}
	if (sig != st->link_sig) {
		st->link_sig = sig;
		st->status_dirty = true;
	}
}

static void station_check_maint(struct station *st)
{
	char path[STATION_PATH_MAX + 16];
	bool m;

	snprintf(path, sizeof(path), "%s/maintenance", st->cfg->state_dir);
	m = access(path, F_OK) == 0 || st->cfg->maintenance;
	if (m != atomic_load(&st->maint)) {
		atomic_store(&st->maint, m);
		st->status_dirty = true;
		log_info("station", "maintenance mode %s", m ? "on" : "off");
	}
}

static void station_watchdogs(struct station *st, int64_t now)
{
	if (!station_buses_healthy(st, now))
		return; /* let the watchdog bite */
	if (st->wd_fd >= 0)
		(void)ioctl(st->wd_fd, WDIOC_KEEPALIVE, 0);
	if (st->sd_wd_every_ms > 0 && now >= st->next_sd_wd) {
		sd_notify_msg("WATCHDOG=1");
		st->next_sd_wd = now + st->sd_wd_every_ms;
	}
}

static void station_open_watchdog(struct station *st)
{
	const char *usec = getenv("WATCHDOG_USEC");
	int t;

	st->wd_fd = -1;
	if (usec && atoll(usec) > 0)
		st->sd_wd_every_ms = atoll(usec) / 2000;
	if (!st->cfg->watchdog.device[0])
		return;
	st->wd_fd = open(st->cfg->watchdog.device, O_WRONLY | O_CLOEXEC);
	if (st->wd_fd < 0) {
		log_error("station", "cannot open watchdog device=%s: %s",
			  st->cfg->watchdog.device, strerror(errno));
		return;
	}
	t = (int)st->cfg->watchdog.timeout_s;
	if (ioctl(st->wd_fd, WDIOC_SETTIMEOUT, &t) < 0)
		log_warn("station", "watchdog timeout not set: %s", strerror(errno));
	log_info("station", "hardware watchdog armed device=%s timeout_s=%d",
		 st->cfg->watchdog.device, t);
}

static void station_close_watchdog(struct station *st)
{
	if (st->wd_fd < 0)
		return;
	if (write(st->wd_fd, "V", 1) != 1) /* magic close: disarm */
		log_warn("station", "watchdog magic close failed");
	close(st->wd_fd);
	st->wd_fd = -1;
}

static void station_wait(struct station *st, int64_t until)
{
	struct timespec ts;
	int64_t wait = until - util_mono_ms();

	if (wait <= 0)
		return;
	util_deadline(&ts, CLOCK_MONOTONIC, wait);
	pthread_mutex_lock(&st->lock);
	if (!atomic_load(&st->stop) && !st->ev_connected && !st->ev_lost && !st->probe_result &&
	    !st->cfg_pending &&
	    !st->upd_pending && !st->ev_update && st->n_ackq == 0 &&
	    st->ring_n < AGRI_BATCH_MAX_READINGS)
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	pthread_mutex_unlock(&st->lock);
}

int station_run(struct station *st)
{
	int64_t seal_ms = (int64_t)llround(st->cfg->publish_interval_s * 1000);
	int rc;

	st->started = util_mono_ms();
	st->next_seal = st->started + seal_ms;
	station_open_watchdog(st);
	station_check_maint(st);
	rc = station_start_buses(st);
	if (rc < 0) {
		log_error("station", "cannot start buses: %s", strerror(-rc));
		station_stop_buses(st);
		return rc;
	}
	log_info("station", "started station=%s sensors=%zu buses=%zu spool_depth=%" PRIu64
		 " next_seq=%" PRIu64, st->cfg->station, st->cfg->n_sensors, st->cfg->n_buses,
		 spool_depth(st->spool), spool_next_seq(st->spool));
	sd_notify_msg("READY=1");

	while (!atomic_load(&st->stop)) {
		int64_t now = util_mono_ms(), until;
		size_t ring_n;

		station_link_events(st, now);
		station_take_acks(st);
		station_take_config(st);
		station_probation(st, now);
		station_check_links(st);
		station_update(st, now);
		station_check_maint(st);
		pthread_mutex_lock(&st->lock);
		ring_n = st->ring_n;
		pthread_mutex_unlock(&st->lock);
		seal_ms = (int64_t)llround(st->cfg->publish_interval_s * 1000);
		if (now >= st->next_seal || ring_n >= AGRI_BATCH_MAX_READINGS) {
			station_seal(st);
			if (now >= st->next_seal)
				st->next_seal += seal_ms * ((now - st->next_seal) / seal_ms + 1);
		}
		if (st->link == LINK_UP) {
			if (st->status_dirty || now >= st->next_status)
				station_publish_status(st, true);
			station_publish(st, now);
		}
		station_watchdogs(st, now);

		until = now + ((st->wd_fd >= 0 || st->sd_wd_every_ms) ? 1000 : 5000);
		if (st->next_seal < until)
			until = st->next_seal;
		if (st->prob.on && now + PROBATION_CHECK_MS < until)
			until = now + PROBATION_CHECK_MS;
		if (st->update)
			until = now + update_next_ms(st->update, until - now);
		if (st->link == LINK_DOWN && st->reconnect_at < until)
			until = st->reconnect_at;
		if (st->link == LINK_CONNECTING && st->connect_deadline < until)
			until = st->connect_deadline;
		if (st->link == LINK_UP && st->hub != 0 && !st->probing && st->next_probe < until)
			until = st->next_probe;
		if (st->link == LINK_UP && st->home_since &&
		    st->home_since + st->cfg->broker.home_holddown_s * 1000 < until)
			until = st->home_since + st->cfg->broker.home_holddown_s * 1000;
		if (st->link == LINK_UP) {
			int64_t due = spool_next_due(st->spool);

			if (st->next_status < until)
				until = st->next_status;
			if (due < until)
				until = due;
		}
		station_wait(st, until);
	}

	log_info("station", "stopping: sealing pending readings");
	sd_notify_msg("STOPPING=1");
	station_seal(st);
	station_stop_buses(st);
	station_seal(st);
	if (st->link == LINK_UP) {
		station_publish_status(st, false);
		mqtt_disconnect(st->mqtt, 1000);
	}
	station_close_watchdog(st);
	log_info("station", "stopped spool_depth=%" PRIu64, spool_depth(st->spool));
	return 0;
}

void station_request_stop(struct station *st)
{
	atomic_store(&st->stop, true);
	pthread_mutex_lock(&st->lock);
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
}

int station_new(struct station_config *cfg, const char *config_path, struct station **out)
{
	struct mqtt_handlers h;
	struct station *st;
	char path[STATION_PATH_MAX + 16];
	int rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->cfg = cfg;
	st->wd_fd = -1;
	snprintf(st->config_path, sizeof(st->config_path), "%s", config_path);
	if (trust_dir(config_path, st->trust_dir, sizeof(st->trust_dir)) < 0) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	pthread_mutex_init(&st->lock, NULL);
	util_cond_init_mono(&st->cond);
	pthread_cond_init(&st->space, NULL);
	atomic_init(&st->maint, false);
	atomic_init(&st->stop, false);
	st->rng = (uint32_t)util_now_ms() ^ (uint32_t)getpid();
	st->cand = malloc(sizeof(*st->cand));
	st->ring = malloc(RING_CAP * sizeof(*st->ring));
	st->batch = malloc(AGRI_BATCH_MAX_READINGS * sizeof(*st->batch));
	st->buf = malloc(AGRI_BATCH_MAX_BYTES + 1);
	st->cfg_msg = malloc(STATION_CONFIG_MAX_BYTES);
	st->cfg_work = malloc(STATION_CONFIG_MAX_BYTES);
	st->cfg_doc = malloc(STATION_CONFIG_MAX_BYTES);
	st->prob.msg = malloc(STATION_CONFIG_MAX_BYTES);
	st->upd_msg = malloc(UPDATE_CMD_MAX);
	st->upd_work = malloc(UPDATE_CMD_MAX);
	if (!st->cand || !st->ring || !st->batch || !st->buf || !st->cfg_msg || !st->cfg_work ||
	    !st->cfg_doc || !st->prob.msg || !st->upd_msg || !st->upd_work) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = util_mkdirs(cfg->state_dir, 0750);
	if (rc < 0) {
		log_error("station", "cannot create state_dir=%s: %s", cfg->state_dir,
			  strerror(-rc));
		goto fail;
	}
	/* A pushed version that failed its probation is not tried again. */
	snprintf(path, sizeof(path), "%s/config.failed", cfg->state_dir);
	{
		char *fv = NULL;
		size_t fl;

		if (util_read_file(path, 1024, &fv, &fl) == 0) {
			char *p = fv, *nl;

			st->failed_version = strtoll(p, &p, 10);
			if (*p == '\n')
				st->failed_ms = strtoll(p + 1, &p, 10);
			if (*p == '\n' && (nl = strchr(++p, '\n')))
				*nl = '\0';
			if (*p && st->failed_ms)
				snprintf(st->failed_error, sizeof(st->failed_error), "%s", p);
			free(fv);
		}
	}
	snprintf(path, sizeof(path), "%s/spool.db", cfg->state_dir);
	rc = spool_open(path, (uint64_t)cfg->spool_max_mb << 20, &st->spool);
	if (rc < 0)
		goto fail;
	agri_topic_build(st->topic_telemetry, sizeof(st->topic_telemetry),
			 cfg->broker.topic_prefix, AGRI_TOPIC_TELEMETRY, cfg->station);
	agri_topic_build(st->topic_status, sizeof(st->topic_status), cfg->broker.topic_prefix,
			 AGRI_TOPIC_STATUS, cfg->station);
	agri_topic_build(st->topic_cfg_ack, sizeof(st->topic_cfg_ack), cfg->broker.topic_prefix,
			 AGRI_TOPIC_CONFIG_ACK, cfg->station);
	h = (struct mqtt_handlers){on_connected, on_lost, on_message, on_delivered, on_probed,
				   st};
	st->mqtt = mqtt_new(cfg, &h);
	if (!st->mqtt) {
		rc = -EINVAL;
		goto fail;
	}
	{
		struct agri_err uerr = {{0}, {0}};
		char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 8];

		/* A broken update.json must not stop the readings: the station
		 * runs with updates off and says why. */
		if (update_open(config_path, cfg, station_update_wake, st, &st->update, &uerr) < 0) {
			agri_err_format(&uerr, msg, sizeof(msg));
			log_error("station", "updates off: %s: %s", UPDATE_FILE, msg);
			st->update = NULL;
		}
	}
	st->link = LINK_DOWN;
	*out = st;
	return 0;
fail:
	st->cfg = NULL; /* the caller keeps cfg on failure */
	station_free(st);
	return rc;
}

void station_free(struct station *st)
{
	if (!st)
		return;
	update_free(st->update);
	mqtt_free(st->mqtt);
	spool_close(st->spool);
	free(st->cfg);
	free(st->cand);
	free(st->ring);
	free(st->batch);
	free(st->buf);
	free(st->cfg_msg);
	free(st->cfg_work);
	free(st->cfg_doc);
	free(st->prob.msg);
	free(st->upd_msg);
	free(st->upd_work);
	pthread_cond_destroy(&st->cond);
	pthread_cond_destroy(&st->space);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

bool station_config_prefer_persisted(struct station_config *cfg, const char *config_path)
{
	struct station_config *p;
	struct agri_err err = {{0}, {0}};
	char path[STATION_PATH_MAX + 16], msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 8];
	char dir[STATION_PATH_MAX + 16], by[AGRI_ID_MAX + 1];
	char *buf, *doc = NULL;
	bool won = false;
	size_t len, doc_len;
	int rc;

	snprintf(path, sizeof(path), "%s/config.json", cfg->state_dir);
	if (util_read_file(path, STATION_CONFIG_MAX_BYTES, &buf, &len) < 0)
		return false;
	p = malloc(sizeof(*p));
	doc = malloc(len + 2);
	if (!p || !doc) {
		free(p);
		free(doc);
		free(buf);
		return false;
	}
	/* The same checks as when it was pushed, against the file's config:
	 * a key removed since, or a file that moved the broker, state_dir or
	 * a serial port, leaves the file in charge. */
	rc = trust_dir(config_path, dir, sizeof(dir));
	if (rc == 0)
		rc = trust_open(dir, buf, len, doc, len + 2, &doc_len, by, &err);
	if (rc == 0)
		rc = station_config_parse(doc, doc_len, config_path, p, &err);
	if (rc == 0 && p->version > cfg->version)
		rc = station_config_remote_check(cfg, p, &err);
	if (rc < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		log_warn("station", "persisted config ignored: %s: %s", path, msg);
	} else if (p->version > cfg->version) {
		log_info("station", "using persisted config %s version=%" PRId64 " signed_by=%s"
			 " (file has version=%" PRId64 ")", path, p->version, by, cfg->version);
		snprintf(p->signed_by, sizeof(p->signed_by), "%s", by);
		memcpy(cfg, p, sizeof(*cfg));
		won = true;
	}
	free(p);
	free(doc);
	free(buf);
	return won;
}

/* ---- --once ---- */

struct once_sink {
	struct agri_reading *r;
	size_t n, cap;
};

static void once_emit(void *ctx, const struct agri_reading *r, size_t n)
{
	struct once_sink *o = ctx;

	for (size_t i = 0; i < n && o->n < o->cap; i++)
		o->r[o->n++] = r[i];
}

int station_once(const struct station_config *cfg)
{
	struct bus_sensor_stats *stats = calloc(STATION_SENSORS_MAX, sizeof(*stats));
	struct once_sink o = {.cap = AGRI_BATCH_MAX_READINGS};
	struct agri_telemetry t = {.seq = 0};
	char path[STATION_PATH_MAX + 16];
	atomic_bool maint;
	char *buf = malloc(AGRI_BATCH_MAX_BYTES + 1);
	int ok = 0, len, rc = 0;

	o.r = malloc(o.cap * sizeof(*o.r));
	if (!stats || !buf || !o.r) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/maintenance", cfg->state_dir);
	atomic_init(&maint, access(path, F_OK) == 0);
	for (size_t i = 0; i < cfg->n_buses; i++) {
		struct bus *b = bus_new(cfg, i, stats, &maint, (struct bus_sink){once_emit, &o});

		if (!b) {
			rc = -ENOMEM;
			goto out;
		}
		ok += bus_poll_once(b);
		bus_free(b);
	}
	snprintf(t.station, sizeof(t.station), "%s", cfg->station);
	t.sent_at_ms = util_now_ms();
	t.readings = o.r;
	t.n = o.n;
	t.cap = o.cap;
	len = agri_telemetry_encode(&t, buf, AGRI_BATCH_MAX_BYTES + 1);
	if (len < 0) {
		rc = len;
		goto out;
	}
	fwrite(buf, 1, (size_t)len, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	rc = ok;
out:
	free(stats);
	free(buf);
	free(o.r);
	return rc;
}
