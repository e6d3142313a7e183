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
 * Before a sensor's first read, and again after it was gone (2 failed
 * polls), the bus sends its profile's init commands (Yosemitech's start
 * measurement, a brush), waits their wait_ms without blocking the other
 * sensors, and reads what the profile wants checked once: the device's
 * compensation coefficient (a warning when it differs from the profile;
 * the device's value is used) and expected words (a mismatch marks the
 * register's readings suspect, why "map"). before_read commands precede
 * every read. Readings are judged by quality.c (dry, full scale, stuck,
 * range); derived ones (salinity, water level) inherit their inputs'
 * reason.
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
#include "quality.h"

#define BUS_BACKOFF_MAX_SKIPS 16
#define BUS_WAIT_MAX_MS 5000 /* heartbeat at least this often */
#define BUS_RECONNECT_MAX_MS 30000
#define BUS_LEVEL_MAX_AGE_MS (6LL * 3600 * 1000) /* a level older says nothing */

enum poll_result { POLL_FAILED, POLL_OK, POLL_DEFERRED };

struct bus_slot {
	const struct station_sensor *cfg;
	const struct agri_profile *profile;
	struct bus_sensor_stats *stats;
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	size_t n_reqs;
	size_t loc_req[AGRI_PROFILE_REGS_MAX];
	size_t loc_off[AGRI_PROFILE_REGS_MAX];
	struct quality_state qs[AGRI_PROFILE_REGS_MAX];
	double coef[AGRI_PROFILE_REGS_MAX]; /* the device's %/°C; NaN: the profile's */
	bool map_bad[AGRI_PROFILE_REGS_MAX]; /* an expected word disagrees */
	bool need_init;                      /* init + start-up reads before the next read */
	int64_t due_ms;
	int64_t interval_ms;
	int fails;     /* consecutive failed polls */
	int skip_left; /* polls still to skip (backoff) */
	struct log_complaint complaint;
	struct log_complaint cmd_complaint;
};

struct bus {
	const struct station_config *cfg;
	const struct station_bus *bcfg;
	const atomic_bool *maint;
	struct bus_sink sink;
	struct bus_sensor_stats *all_stats; /* every sensor of the station */
	size_t n_all;
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
	/* The link's health (bus_link_health), written by the bus thread. */
	atomic_bool link_open, link_ever;
	atomic_int link_errno;
	atomic_int_fast64_t link_since_ms;
	pthread_mutex_t lock; /* with cond: wakes the thread on stop */
	pthread_cond_t cond;
};

struct bus *bus_new(const struct station_config *cfg, size_t index,
		    struct bus_sensor_stats *stats, const atomic_bool *maint,
		    struct bus_sink sink)
{
	const struct station_bus *bc = &cfg->buses[index];
	struct bus *b;
	int64_t offset_ms = 0, start = util_mono_ms();
	char port[16];

	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->cfg = cfg;
	b->bcfg = bc;
	b->maint = maint;
	b->sink = sink;
	b->all_stats = stats;
	b->n_all = cfg->n_sensors;
	b->rng = (uint32_t)(start ^ (int64_t)index << 16) | 1;
	atomic_init(&b->stop, false);
	atomic_init(&b->heartbeat_ms, start);
	atomic_init(&b->link_open, false);
	atomic_init(&b->link_ever, false);
	atomic_init(&b->link_errno, 0);
	atomic_init(&b->link_since_ms, 0);
	pthread_mutex_init(&b->lock, NULL);
	util_cond_init_mono(&b->cond);

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
			quality_init(&sl->qs[r]);
			sl->coef[r] = NAN;
		}
		sl->need_init = true;
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

void bus_link_health(const struct bus *b, struct bus_link_health *out)
{
	struct bus *m = (struct bus *)b;

	out->open = atomic_load(&m->link_open);
	out->ever_open = atomic_load(&m->link_ever);
	out->error = atomic_load(&m->link_errno);
	out->since_ms = atomic_load(&m->link_since_ms);
}

/* Records the link's state (bus thread). */
static void bus_link_state(struct bus *b, bool open, int error)
{
	if (open != atomic_load(&b->link_open) || !atomic_load(&b->link_since_ms))
		atomic_store(&b->link_since_ms, util_now_ms());
	atomic_store(&b->link_errno, error);
	atomic_store(&b->link_open, open);
	if (open)
		atomic_store(&b->link_ever, true);
}

/* Opens the link if it is closed and its retry time has come. */
static bool bus_link_up(struct bus *b, int64_t now)
{
	if (b->connected)
		return true;
	if (now < b->reconnect_at_ms)
		return false;
	errno = 0;
	if (modbus_connect(b->ctx) < 0) {
		int e = errno ? errno : EIO;

		log_complain(&b->link_complaint, LOG_LVL_WARN, "bus",
			     "cannot open bus=%s: %s", b->bcfg->name, modbus_strerror(e));
		bus_link_state(b, false, e);
		b->reconnect_at_ms = now + util_backoff_ms(b->connect_fails++, 1000,
							   BUS_RECONNECT_MAX_MS, &b->rng);
		return false;
	}
	log_release(&b->link_complaint, "bus", "bus=%s open", b->bcfg->name);
	bus_link_state(b, true, 0);
	b->connected = true;
	b->connect_fails = 0;
	return true;
}

static void bus_link_down(struct bus *b, int e)
{
	modbus_close(b->ctx);
	b->connected = false;
	bus_link_state(b, false, e);
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

/* Keeps gap_ms between requests on the link. */
static void bus_gap(struct bus *b)
{
	int64_t wait = b->last_io_ms + b->bcfg->gap_ms - util_mono_ms();

	if (wait > 0)
		util_sleep_ms(wait);
}

/* Sends one profile command as is (libmodbus's raw request: Yosemitech's
 * FC10 with no registers is not a request libmodbus would build). Returns
 * 0 when the device answered without an exception, else the errno. */
static int bus_command(struct bus *b, struct bus_slot *sl, const struct agri_command *c)
{
	uint8_t req[8 + 2 * AGRI_CMD_VALUES_MAX], rsp[MODBUS_MAX_ADU_LENGTH];
	int n, rc, off;

	req[0] = (uint8_t)sl->cfg->slave;
	n = 1 + (int)agri_command_pdu(c, req + 1);
	bus_gap(b);
	modbus_set_slave(b->ctx, (int)sl->cfg->slave);
	rc = modbus_send_raw_request(b->ctx, req, n);
	if (rc >= 0)
		rc = modbus_receive_confirmation(b->ctx, rsp);
	b->last_io_ms = util_mono_ms();
	if (rc < 0)
		return errno ? errno : EIO;
	off = modbus_get_header_length(b->ctx);
	if (rc > off + 1 && (rsp[off] & 0x80))
		return MODBUS_ENOBASE + rsp[off + 1];
	return 0;
}

/* Reads a word (or words) the profile checks once. 0 or the errno. */
static int bus_read_ref(struct bus *b, struct bus_slot *sl, uint8_t fc, uint16_t addr,
			enum agri_regtype type, enum agri_order order, double *raw)
{
	uint16_t w[4];
	int n = (int)agri_regtype_words(type), rc;

	bus_gap(b);
	modbus_set_slave(b->ctx, (int)sl->cfg->slave);
	if (fc == 4)
		rc = modbus_read_input_registers(b->ctx, addr, n, w);
	else
		rc = modbus_read_registers(b->ctx, addr, n, w);
	b->last_io_ms = util_mono_ms();
	if (rc != n)
		return rc < 0 ? (errno ? errno : EIO) : EMBBADDATA;
	return agri_reg_unpack(type, order, w, raw) < 0 ? EMBBADDATA : 0;
}

/* True for an error that says the device is not there (as opposed to a
 * device that answered "no": an exception). */
static bool bus_absent(int e)
{
	return !(e >= EMBXILFUN && e <= EMBXGTAR);
}

/*
 * Init commands and the start-up reads of a sensor (see the file comment).
 * Returns 0 and the longest wait_ms asked for in *wait_ms, or the errno
 * when the device does not answer (the poll fails).
 */
static int bus_startup(struct bus *b, struct bus_slot *sl, int64_t *wait_ms)
{
	const struct agri_profile *p = sl->profile;
	const char *name = sl->cfg->name;
	int e;

	*wait_ms = 0;
	for (size_t i = 0; i < p->n_init; i++) {
		e = bus_command(b, sl, &p->init[i]);
		if (e && bus_absent(e))
			return e;
		if (e)
			log_warn("bus", "sensor=%s init command %zu (fc=%d addr=%d) refused: %s",
				 name, i, p->init[i].fc, p->init[i].addr, modbus_strerror(e));
		if (p->init[i].wait_ms > *wait_ms)
			*wait_ms = p->init[i].wait_ms;
	}
	for (size_t r = 0; r < p->n_regs; r++) {
		const struct agri_register *reg = &p->regs[r];
		const struct agri_reg_ref *c = &reg->coef_reg;
		double raw;

		sl->coef[r] = NAN;
		sl->map_bad[r] = false;
		if (!reg->has_coef_reg)
			continue;
		e = bus_read_ref(b, sl, c->fc, c->addr, c->type, c->order, &raw);
		if (e && bus_absent(e))
			return e;
		if (e || !(raw * c->scale >= 0 && raw * c->scale <= 10)) {
			log_warn("bus", "sensor=%s metric=%s: cannot read the device's compensation "
				 "coefficient (fc=%d addr=%d): %s; using the profile's %.2f %%/°C",
				 name, reg->metric, c->fc, c->addr,
				 e ? modbus_strerror(e) : "out of 0..10 %/°C", reg->coef_pct);
			continue;
		}
		sl->coef[r] = raw * c->scale;
		if (fabs(sl->coef[r] - reg->coef_pct) > 0.005)
			log_warn("bus", "sensor=%s metric=%s: the device compensates with %.2f %%/°C, "
				 "profile %s says %.2f: salinity uses the device's value", name,
				 reg->metric, sl->coef[r], p->name, reg->coef_pct);
	}
	for (size_t i = 0; i < p->n_expect; i++) {
		const struct agri_expect *x = &p->expect[i];
		double raw;

		e = bus_read_ref(b, sl, x->fc, x->addr, AGRI_REG_U16, AGRI_ORDER_ABCD, &raw);
		if (e && bus_absent(e))
			return e;
		if (e) {
			log_warn("bus", "sensor=%s cannot check fc=%d addr=%d of profile %s: %s", name,
				 x->fc, x->addr, p->name, modbus_strerror(e));
			continue;
		}
		if (raw == x->value)
			continue;
		log_error("bus", "sensor=%s does not match profile %s: fc=%d addr=%d reads %.0f, "
			  "expected %u; %s readings are suspect (why=map)", name, p->name, x->fc,
			  x->addr, raw, x->value, x->metric[0] ? x->metric : "all its");
		for (size_t r = 0; r < p->n_regs; r++)
			if (!x->metric[0] || !strcmp(x->metric, p->regs[r].metric))
				sl->map_bad[r] = true;
	}
	return 0;
}

/* The before_read commands; 0 or the errno of a device gone. */
static int bus_before_read(struct bus *b, struct bus_slot *sl)
{
	const struct agri_profile *p = sl->profile;
	int64_t wait = 0;

	for (size_t i = 0; i < p->n_before; i++) {
		int e = bus_command(b, sl, &p->before_read[i]);

		if (e && bus_absent(e))
			return e;
		if (e)
			log_complain(&sl->cmd_complaint, LOG_LVL_WARN, "bus",
				     "sensor=%s before_read command %zu refused: %s",
				     sl->cfg->name, i, modbus_strerror(e));
		if (p->before_read[i].wait_ms > wait)
			wait = p->before_read[i].wait_ms;
	}
	if (wait > 0)
		util_sleep_ms(wait);
	return 0;
}

/* Reads the plan into b->words. Returns 0 or the failing errno. */
static int bus_read_plan(struct bus *b, struct bus_slot *sl)
{
	for (size_t i = 0; i < sl->n_reqs; i++) {
		const struct agri_read_req *q = &sl->reqs[i];
		int rc;

		bus_gap(b);
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
	r->why[0] = '\0';
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

/* The station's water level now (any sensor's, the newest, m): false
 * when none is known or it is older than BUS_LEVEL_MAX_AGE_MS. */
static bool station_level(const struct bus *b, int64_t now, double *level)
{
	int64_t best = 0;

	for (size_t i = 0; i < b->n_all; i++) {
		int64_t ts = atomic_load(&b->all_stats[i].level_ts_ms);

		if (ts > best && now - ts <= BUS_LEVEL_MAX_AGE_MS) {
			best = ts;
			*level = (double)atomic_load(&b->all_stats[i].level_um) / 1e6;
		}
	}
	return best > 0;
}

/* Judges the register readings out[0..n_regs) (quality.c): dry (also by
 * the station's water level against the probe's height), full scale,
 * stuck, range, and "map" when the device failed an expected word. */
static void bus_judge(struct bus *b, struct bus_slot *sl, struct agri_reading *out,
		      int64_t ts)
{
	const struct agri_profile *p = sl->profile;
	double level;
	bool level_dry = sl->cfg->has_probe_level && station_level(b, ts, &level) &&
			 level < sl->cfg->probe_level_m;

	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *reg = &p->regs[i];
		double after = reg->stuck_after_s > 0 ? reg->stuck_after_s : p->stuck_after_s;

		quality_judge(reg, after, sl->cfg->stuck_reads, level_dry && reg->dry_below > 0,
			      &sl->qs[i], &out[i]);
		if (sl->map_bad[i])
			quality_mark(&out[i], AGRI_WHY_MAP);
	}
}

/* The value of register reading x for a derived input: NaN unless read. */
static double input(const struct agri_reading *x)
{
	return x && x->has_value ? x->value : NAN;
}

/*
 * Derived metrics of one poll, after out[0..n_regs) were decoded and
 * judged: each inherits its inputs' reason; a good water level is kept for
 * the station's dry checks (the next poll of every probe uses it).
 * Returns the new count.
 */
static size_t bus_derive(struct bus_slot *sl, struct agri_reading *out, size_t n, int64_t ts)
{
	const struct agri_profile *p = sl->profile;

	for (size_t d = 0; d < p->n_derived; d++) {
		const struct agri_derived *dv = &p->derived[d];
		struct agri_reading *r = &out[n + d];
		const struct agri_reading *a = &out[dv->from_reg[0]];
		const struct agri_reading *t = dv->from_reg[1] >= 0 ? &out[dv->from_reg[1]] : NULL;
		const struct agri_reading *air = dv->air_reg >= 0 ? &out[dv->air_reg] : NULL;
		double in[2] = {input(a), input(t)}, v;

		fill(r, ts, sl->cfg->name, dv->metric, dv->unit);
		if ((t && !t->has_value) || (air && !air->has_value) ||
		    agri_derive(p, dv, in, input(air), sl->coef[dv->from_reg[0]],
				sl->cfg->level_offset_m, &v) < 0)
			continue;
		r->value = v;
		r->has_value = true;
		r->q = AGRI_Q_OK;
		quality_inherit(r, a, t);
		if (r->q == AGRI_Q_OK && air)
			quality_inherit(r, air, NULL);
		if (dv->fn == AGRI_DERIVED_PSS78 && v > 42)
			quality_mark(r, AGRI_WHY_RANGE);
		if (dv->fn == AGRI_DERIVED_LEVEL && r->q == AGRI_Q_OK) {
			atomic_store(&sl->stats->level_um, llround(v * 1e6));
			atomic_store(&sl->stats->level_ts_ms, ts);
		}
	}
	return n + p->n_derived;
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

/* Decodes b->words into readings (range check only; bus_judge does the rest). */
static size_t bus_decode(struct bus *b, struct bus_slot *sl, int64_t ts)
{
	const struct agri_profile *p = sl->profile;
	bool maint = atomic_load(b->maint) || sl->cfg->maintenance;
	size_t n = 0;

	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *reg = &p->regs[i];
		struct agri_reading *r = &b->out[n++];

		fill_reg(r, ts, sl->cfg->name, reg);
		if (sl->loc_req[i] == SIZE_MAX)
			continue;
		agri_register_decode(reg, &b->words[sl->loc_req[i]][sl->loc_off[i]],
				     &r->value, &r->has_value, &r->q);
		if (!r->has_value)
			r->q = AGRI_Q_ERROR;
	}
	bus_judge(b, sl, b->out, ts);
	n = bus_derive(sl, b->out, n, ts);
	if (maint)
		for (size_t i = 0; i < n; i++)
			if (b->out[i].has_value) {
				b->out[i].q = AGRI_Q_MAINT;
				b->out[i].why[0] = '\0';
			}
	return n;
}

/* Polls one sensor (or skips it while backed off); emits its readings.
 * Returns POLL_OK when the read succeeded, POLL_DEFERRED when init asked
 * for a wait (due_ms moved; nothing emitted), else POLL_FAILED. With
 * force (--once) waits are slept through and backoff is ignored. */
static enum poll_result bus_poll(struct bus *b, struct bus_slot *sl, bool force)
{
	int64_t now = util_mono_ms(), wait = 0;
	int e = 0;
	size_t n;

	if (!force && sl->skip_left > 0) {
		sl->skip_left--;
		atomic_fetch_add(&sl->stats->skipped, 1);
		n = bus_error_readings(b, sl, util_now_ms());
		b->sink.emit(b->sink.ctx, b->out, n);
		return POLL_FAILED;
	}
	if (!bus_link_up(b, now))
		e = ENOTCONN;
	else if (sl->n_reqs == 0)
		e = EINVAL;
	else if (sl->need_init && (e = bus_startup(b, sl, &wait)) == 0) {
		sl->need_init = false;
		if (wait > 0 && !force) {
			sl->due_ms = util_mono_ms() + wait;
			return POLL_DEFERRED;
		}
		if (wait > 0)
			util_sleep_ms(wait);
	}
	if (e == 0)
		e = bus_before_read(b, sl);
	if (e == 0)
		e = bus_read_plan(b, sl);
	if (e == 0) {
		n = bus_decode(b, sl, util_now_ms());
		/* last_ok first: the main thread takes reads_ok rising as
		 * "answered" (probation) and then reports last_ok. */
		atomic_store(&sl->stats->last_ok_ms, util_now_ms());
		atomic_fetch_add(&sl->stats->reads_ok, 1);
		if (sl->fails)
			log_release(&sl->complaint, "bus", "sensor=%s answers again bus=%s",
				    sl->cfg->name, b->bcfg->name);
		sl->fails = 0;
		sl->skip_left = 0;
		b->sink.emit(b->sink.ctx, b->out, n);
		return POLL_OK;
	}
	atomic_fetch_add(&sl->stats->reads_failed, 1);
	atomic_store(&sl->stats->last_errno, e);
	atomic_store(&sl->stats->last_error_ms, util_now_ms());
	if (e == ENOTCONN) {
		atomic_fetch_add(&sl->stats->other_errors, 1);
	} else {
		const char *kind = bus_classify(sl->stats, e);

		log_complain(&sl->complaint, LOG_LVL_WARN, "bus",
			     "read failed sensor=%s bus=%s slave=%d error=%s reason=\"%s\"",
			     sl->cfg->name, b->bcfg->name, (int)sl->cfg->slave, kind,
			     modbus_strerror(e));
		if (b->bcfg->is_tcp && link_error(e))
			bus_link_down(b, e);
		else if (b->connected)
			modbus_flush(b->ctx);
	}
	sl->fails++;
	/* Gone for two polls: it may have restarted, so init it again. */
	if (sl->fails >= 2)
		sl->need_init = true;
	if (sl->fails >= 2 && !force) {
		int k = sl->fails - 2;

		sl->skip_left = k >= 4 ? BUS_BACKOFF_MAX_SKIPS : (1 << k);
	}
	n = bus_error_readings(b, sl, util_now_ms());
	b->sink.emit(b->sink.ctx, b->out, n);
	return POLL_FAILED;
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
			util_deadline(&ts, CLOCK_MONOTONIC, wait);
			pthread_mutex_lock(&b->lock);
			if (!atomic_load(&b->stop))
				pthread_cond_timedwait(&b->cond, &b->lock, &ts);
			pthread_mutex_unlock(&b->lock);
			continue;
		}
		if (bus_poll(b, next, false) == POLL_DEFERRED)
			continue; /* due_ms moved to the end of the device's wait */
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
		if (bus_poll(b, &b->slots[i], true) == POLL_OK)
			ok++;
	}
	return ok;
}
