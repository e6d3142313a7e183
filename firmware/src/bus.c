/*
 * The bus scheduler: one thread per bus, the only master on its link.
 *
 * Schedule: sensor i is first due at start + warmup_s + the slots of the
 * sensors before it on the bus (a slot = the time one poll may take: its
 * timeout plus gaps), then every interval_s at a fixed rate. Staggering
 * means a slave that stops answering burns only its own slot and the
 * others keep their period. After two failed polls in a row a sensor is
 * backed off: the next 1, 2, 4 .. 16 scheduled polls are skipped (still
 * emitting error readings) before it is tried again.
 *
 * Reads follow agri_plan_reads() (fewest requests); words are located
 * once at start-up; a poll allocates nothing. Errors are classified as
 * timeout, CRC, exception or other, counted per sensor, and logged once
 * per failure run (log_complain).
 *
 * Threads: the bus thread owns everything here except `stop` and
 * `heartbeat_ms`, which are atomics read/written by the station.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modbus/modbus.h>

#include "agri/profile.h"
#include "agri/units.h"
#include "bus.h"
#include "agri/log.h"
#include "agri/util.h"

#define BUS_BACKOFF_MAX_SKIPS 16
#define BUS_WAIT_MAX_MS 5000 /* heartbeat at least this often */
#define BUS_RECONNECT_MAX_MS 30000

struct bus_slot {
	const struct station_sensor *cfg;
	const struct agri_profile *profile;
	struct bus_sensor_stats *stats;
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	size_t n_reqs;
	size_t loc_req[AGRI_PROFILE_REGS_MAX];
	size_t loc_off[AGRI_PROFILE_REGS_MAX];
	double last_raw[AGRI_PROFILE_REGS_MAX];
	int64_t repeats[AGRI_PROFILE_REGS_MAX];
	int64_t due_ms;
	int64_t interval_ms;
	int fails;     /* consecutive failed polls */
	int skip_left; /* polls still to skip (backoff) */
	struct log_complaint complaint;
};

struct bus {
	const struct station_config *cfg;
	const struct station_bus *bcfg;
	const atomic_bool *maint;
	struct bus_sink sink;
	modbus_t *ctx;
	bool connected;
	int connect_fails;
	int64_t reconnect_at_ms;
	int64_t last_io_ms; /* end of the last request on the link (gap) */
	uint32_t rng;
	struct log_complaint link_complaint;
	size_t n_slots;
	struct bus_slot slots[STATION_SENSORS_MAX];
	uint16_t words[AGRI_PLAN_MAX][AGRI_MODBUS_MAX_REGS];
	struct agri_reading out[BUS_READINGS_MAX];

	pthread_t thread;
	bool started;
	atomic_bool stop;
	atomic_int_fast64_t heartbeat_ms;
	pthread_mutex_t lock; /* with cond: wakes the thread on stop */
	pthread_cond_t cond;
};

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

struct bus *bus_new(const struct station_config *cfg, size_t index,
		    struct bus_sensor_stats *stats, const atomic_bool *maint,
		    struct bus_sink sink)
{
	const struct station_bus *bc = &cfg->buses[index];
	struct bus *b;
	pthread_condattr_t ca;
	int64_t offset_ms = 0, start = util_mono_ms();
	char port[16];

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = cfg;
	b->bcfg = bc;
	b->maint = maint;
	b->sink = sink;
	b->rng = (uint32_t)(start ^ (int64_t)index << 16) | 1;
	atomic_init(&b->stop, false);
	atomic_init(&b->heartbeat_ms, start);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);

	if (bc->is_tcp) {
		snprintf(port, sizeof(port), "%d", (int)bc->port);
		b->ctx = modbus_new_tcp_pi(bc->host, port);
	} else {
		b->ctx = modbus_new_rtu(bc->device, (int)bc->baud, bc->parity_s[0],
					(int)bc->data_bits, (int)bc->stop_bits);
	}
	if (!b->ctx) {
		log_error("bus", "cannot create modbus context bus=%s: %s", bc->name,
			  modbus_strerror(errno));
		bus_free(b);
		return NULL;
	}
	modbus_set_response_timeout(b->ctx, (uint32_t)(bc->timeout_ms / 1000),
				    (uint32_t)(bc->timeout_ms % 1000) * 1000);

	for (size_t i = 0; i < cfg->n_sensors; i++) {
		const struct station_sensor *s = &cfg->sensors[i];
		struct bus_slot *sl;
		int n;

		if (s->bus_index != (int)index)
			continue;
		sl = &b->slots[b->n_slots++];
		sl->cfg = s;
		sl->profile = &cfg->profiles[s->profile_index];
		sl->stats = &stats[i];
		n = agri_plan_reads(sl->profile, sl->reqs, AGRI_PLAN_MAX);
		if (n < 0) {
			log_error("bus", "cannot plan reads sensor=%s profile=%s", s->name,
				  s->profile);
			n = 0;
		}
		sl->n_reqs = (size_t)n;
		for (size_t r = 0; r < sl->profile->n_regs; r++) {
			if (agri_plan_locate(sl->reqs, sl->n_reqs, &sl->profile->regs[r],
					     &sl->loc_req[r], &sl->loc_off[r]) < 0)
				sl->loc_req[r] = SIZE_MAX;
			sl->last_raw[r] = NAN;
		}
		sl->interval_ms = (int64_t)llround(s->interval_s * 1000);
		sl->due_ms = start + (int64_t)llround(s->warmup_s * 1000) + offset_ms;
		/* The slot one poll of this sensor may take. */
		offset_ms += bc->timeout_ms + (int64_t)sl->n_reqs * (bc->gap_ms + 20);
	}
	return b;
}

void bus_free(struct bus *b)
{
	if (!b)
		return;
	if (b->ctx) {
		modbus_close(b->ctx);
		modbus_free(b->ctx);
	}
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

int64_t bus_heartbeat_ms(const struct bus *b)
{
	return atomic_load(&((struct bus *)b)->heartbeat_ms);
}

/* Opens the link if it is closed and its retry time has come. */
static bool bus_link_up(struct bus *b, int64_t now)
{
	if (b->connected)
		return true;
	if (now < b->reconnect_at_ms)
		return false;
	if (modbus_connect(b->ctx) < 0) {
		int e = errno;

		log_complain(&b->link_complaint, LOG_LVL_WARN, "bus",
			     "cannot open bus=%s: %s", b->bcfg->name, modbus_strerror(e));
		b->reconnect_at_ms = now + util_backoff_ms(b->connect_fails++, 1000,
							   BUS_RECONNECT_MAX_MS, &b->rng);
		return false;
	}
	log_release(&b->link_complaint, "bus", "bus=%s open", b->bcfg->name);
	b->connected = true;
	b->connect_fails = 0;
	return true;
}

static void bus_link_down(struct bus *b)
{
	modbus_close(b->ctx);
	b->connected = false;
	b->reconnect_at_ms = util_mono_ms() + 500;
}

/* Classifies a libmodbus errno into the counters; returns a short name. */
static const char *bus_classify(struct bus_sensor_stats *st, int e)
{
	if (e == ETIMEDOUT) {
		atomic_fetch_add(&st->timeouts, 1);
		return "timeout";
	}
	if (e == EMBBADCRC) {
		atomic_fetch_add(&st->crc_errors, 1);
		return "crc";
	}
	if (e >= EMBXILFUN && e <= EMBXGTAR) {
		atomic_fetch_add(&st->exceptions, 1);
		return "exception";
	}
	atomic_fetch_add(&st->other_errors, 1);
	return "other";
}

static bool link_error(int e)
{
	return e == ECONNRESET || e == EPIPE || e == EBADF || e == ENOTCONN ||
	       e == ECONNREFUSED || e == EIO || e == ENXIO;
}

/* Reads the plan into b->words. Returns 0 or the failing errno. */
static int bus_read_plan(struct bus *b, struct bus_slot *sl)
{
	for (size_t i = 0; i < sl->n_reqs; i++) {
		const struct agri_read_req *q = &sl->reqs[i];
		int64_t wait = b->last_io_ms + b->bcfg->gap_ms - util_mono_ms();
		int rc;

		if (wait > 0)
			sleep_ms(wait);
		modbus_set_slave(b->ctx, (int)sl->cfg->slave);
		if (q->fc == 4)
			rc = modbus_read_input_registers(b->ctx, q->addr, q->count, b->words[i]);
		else
			rc = modbus_read_registers(b->ctx, q->addr, q->count, b->words[i]);
		b->last_io_ms = util_mono_ms();
		if (rc != q->count)
			return rc < 0 ? (errno ? errno : EIO) : EMBBADDATA;
	}
	return 0;
}

static size_t find_metric(const struct agri_reading *r, size_t n, const char *metric)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].metric, metric))
			return i;
	return SIZE_MAX;
}

static void fill(struct agri_reading *r, int64_t ts, const char *sensor,
		 const char *metric, const char *unit)
{
	r->ts_ms = ts;
	snprintf(r->sensor, sizeof(r->sensor), "%s", sensor);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	snprintf(r->unit, sizeof(r->unit), "%s", unit);
	r->value = 0;
	r->has_value = false;
	r->q = AGRI_Q_ERROR;
}

/* A register's reading: metric and unit from the register; the sensor is
 * the configured name, or "<name>-<suffix>" for a register that names one
 * of several classes of the same metric (light-trap counts per insect). */
static void fill_reg(struct agri_reading *r, int64_t ts, const char *sensor,
		     const struct agri_register *reg)
{
	fill(r, ts, sensor, reg->metric, reg->unit);
	if (reg->sensor_suffix[0]) {
		/* config.c keeps name + 1 + suffix within AGRI_ID_MAX */
		size_t n = strlen(r->sensor), m = strlen(reg->sensor_suffix);

		if (n + 1 + m > AGRI_ID_MAX)
			n = AGRI_ID_MAX - 1 - m;
		r->sensor[n] = '-';
		memcpy(r->sensor + n + 1, reg->sensor_suffix, m + 1);
	}
}

/* Derived metrics (PSS-78 salinity) from the decoded readings out[0..n). */
static size_t bus_derive(const struct agri_profile *p, struct agri_reading *out,
			 size_t n, int64_t ts, const char *sensor)
{
	for (size_t d = 0; d < p->n_derived; d++) {
		const struct agri_derived *dv = &p->derived[d];
		struct agri_reading *r = &out[n];
		size_t ic = find_metric(out, n, dv->from[0]);
		size_t it = find_metric(out, n, dv->from[1]);

		fill(r, ts, sensor, dv->metric, dv->unit);
		if (ic == SIZE_MAX || it == SIZE_MAX || !out[ic].has_value ||
		    !out[it].has_value) {
			n++;
			continue;
		}
		if (dv->fn == AGRI_DERIVED_PSS78) {
			double sp = agri_sp_from_c(out[ic].value, out[it].value, 0);

			if (isfinite(sp)) {
				r->value = sp;
				r->has_value = true;
				r->q = (out[ic].q == AGRI_Q_SUSPECT || out[it].q == AGRI_Q_SUSPECT ||
					sp > 42) ? AGRI_Q_SUSPECT : AGRI_Q_OK;
			}
		}
		n++;
	}
	return n;
}

/* Error readings for every metric of a sensor (a failed or skipped poll). */
static size_t bus_error_readings(struct bus *b, const struct bus_slot *sl, int64_t ts)
{
	const struct agri_profile *p = sl->profile;
	size_t n = 0;

	for (size_t r = 0; r < p->n_regs; r++)
		fill_reg(&b->out[n++], ts, sl->cfg->name, &p->regs[r]);
	for (size_t d = 0; d < p->n_derived; d++)
		fill(&b->out[n++], ts, sl->cfg->name, p->derived[d].metric, p->derived[d].unit);
	return n;
}

/* Decodes b->words into readings; stuck check; maintenance. */
static size_t bus_decode(struct bus *b, struct bus_slot *sl, int64_t ts)
{
	const struct agri_profile *p = sl->profile;
	bool maint = atomic_load(b->maint);
	size_t n = 0;

	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *reg = &p->regs[i];
		struct agri_reading *r = &b->out[n++];

		fill_reg(r, ts, sl->cfg->name, reg);
		if (sl->loc_req[i] == SIZE_MAX)
			continue;
		agri_register_decode(reg, &b->words[sl->loc_req[i]][sl->loc_off[i]],
				     &r->value, &r->has_value, &r->q);
		if (!r->has_value) {
			r->q = AGRI_Q_ERROR;
			continue;
		}
		/* Stuck: the same value N times in a row for a register that
		 * should move. */
		if (sl->cfg->stuck_reads > 0 && !reg->stable && !reg->counter) {
			if (r->value == sl->last_raw[i])
				sl->repeats[i]++;
			else
				sl->repeats[i] = 1;
			sl->last_raw[i] = r->value;
			if (sl->repeats[i] >= sl->cfg->stuck_reads && r->q == AGRI_Q_OK)
				r->q = AGRI_Q_SUSPECT;
		}
	}
	n = bus_derive(p, b->out, n, ts, sl->cfg->name);
	if (maint)
		for (size_t i = 0; i < n; i++)
			if (b->out[i].has_value)
				b->out[i].q = AGRI_Q_MAINT;
	return n;
}

/* Polls one sensor (or skips it while backed off); emits its readings.
 * Returns true when the read succeeded. */
static bool bus_poll(struct bus *b, struct bus_slot *sl, bool force)
{
	int64_t now = util_mono_ms();
	int e = 0;
	size_t n;

	if (!force && sl->skip_left > 0) {
		sl->skip_left--;
		atomic_fetch_add(&sl->stats->skipped, 1);
		n = bus_error_readings(b, sl, util_now_ms());
		b->sink.emit(b->sink.ctx, b->out, n);
		return false;
	}
	if (!bus_link_up(b, now))
		e = ENOTCONN;
	else if (sl->n_reqs == 0)
		e = EINVAL;
	else
		e = bus_read_plan(b, sl);
	if (e == 0) {
		n = bus_decode(b, sl, util_now_ms());
		atomic_fetch_add(&sl->stats->reads_ok, 1);
		atomic_store(&sl->stats->last_ok_ms, util_now_ms());
		if (sl->fails)
			log_release(&sl->complaint, "bus", "sensor=%s answers again bus=%s",
				    sl->cfg->name, b->bcfg->name);
		sl->fails = 0;
		sl->skip_left = 0;
		b->sink.emit(b->sink.ctx, b->out, n);
		return true;
	}
	atomic_fetch_add(&sl->stats->reads_failed, 1);
	if (e == ENOTCONN) {
		atomic_fetch_add(&sl->stats->other_errors, 1);
	} else {
		const char *kind = bus_classify(sl->stats, e);

		log_complain(&sl->complaint, LOG_LVL_WARN, "bus",
			     "read failed sensor=%s bus=%s slave=%d error=%s reason=\"%s\"",
			     sl->cfg->name, b->bcfg->name, (int)sl->cfg->slave, kind,
			     modbus_strerror(e));
		if (b->bcfg->is_tcp && link_error(e))
			bus_link_down(b);
		else if (b->connected)
			modbus_flush(b->ctx);
	}
	sl->fails++;
	if (sl->fails >= 2 && !force) {
		int k = sl->fails - 2;

		sl->skip_left = k >= 4 ? BUS_BACKOFF_MAX_SKIPS : (1 << k);
	}
	n = bus_error_readings(b, sl, util_now_ms());
	b->sink.emit(b->sink.ctx, b->out, n);
	return false;
}

static void *bus_main(void *arg)
{
	struct bus *b = arg;

	while (!atomic_load(&b->stop)) {
		int64_t now = util_mono_ms(), due = INT64_MAX;
		struct bus_slot *next = NULL;

		atomic_store(&b->heartbeat_ms, now);
		for (size_t i = 0; i < b->n_slots; i++)
			if (b->slots[i].due_ms < due) {
				due = b->slots[i].due_ms;
				next = &b->slots[i];
			}
		if (!next || due > now) {
			int64_t wait = next ? due - now : BUS_WAIT_MAX_MS;
			struct timespec ts;

			if (wait > BUS_WAIT_MAX_MS)
				wait = BUS_WAIT_MAX_MS;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_mutex_lock(&b->lock);
			if (!atomic_load(&b->stop))
				pthread_cond_timedwait(&b->cond, &b->lock, &ts);
			pthread_mutex_unlock(&b->lock);
			continue;
		}
		bus_poll(b, next, false);
		/* Fixed rate; a poll that overran its next slot skips it. */
		now = util_mono_ms();
		do
			next->due_ms += next->interval_ms;
		while (next->due_ms <= now);
	}
	return NULL;
}

int bus_start(struct bus *b)
{
	int rc;

	atomic_store(&b->stop, false);
	rc = pthread_create(&b->thread, NULL, bus_main, b);
	if (rc)
		return -rc;
	b->started = true;
	return 0;
}

void bus_stop(struct bus *b)
{
	if (!b || !b->started)
		return;
	pthread_mutex_lock(&b->lock);
	atomic_store(&b->stop, true);
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	b->started = false;
}

int bus_poll_once(struct bus *b)
{
	int ok = 0;

	for (size_t i = 0; i < b->n_slots; i++) {
		b->reconnect_at_ms = 0;
		if (bus_poll(b, &b->slots[i], true))
			ok++;
	}
	return ok;
}
