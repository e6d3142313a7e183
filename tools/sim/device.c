/*
 * A simulated slave (see device.h): register values from the models,
 * encoded with the protocols library's agri_reg_pack, and the request
 * handling of a real device including its exception codes, its commands
 * (start measurement, wipers, the compensation coefficient) and faults.
 */
#include "device.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "agri/regmap.h"

/* The command of the profile a request is, or NULL. */
static const struct agri_command *find_command(const struct agri_profile *p, uint8_t fc,
					       uint16_t addr)
{
	for (size_t i = 0; i < p->n_init + p->n_before; i++) {
		const struct agri_command *c = i < p->n_init ? &p->init[i] :
						      &p->before_read[i - p->n_init];
		if (c->fc == fc && c->addr == addr)
			return c;
	}
	return NULL;
}

static bool has_start(const struct agri_profile *p)
{
	for (size_t i = 0; i < p->n_init + p->n_before; i++) {
		const struct agri_command *c = i < p->n_init ? &p->init[i] :
						      &p->before_read[i - p->n_init];
		if (c->role == AGRI_CMD_START)
			return true;
	}
	return false;
}

void device_init(struct device *d, int slave, const struct agri_profile *prof,
		 const struct model_params *params, int64_t sim_start_ms)
{
	memset(d, 0, sizeof(*d));
	d->slave = slave;
	d->prof = *prof;
	d->params = *params;
	d->params.slave = slave;
	d->sim_start_ms = sim_start_ms;
	for (size_t i = 0; i < AGRI_PROFILE_REGS_MAX; i++)
		d->counter_last_ms[i] = sim_start_ms;
	d->started = !has_start(prof);
	/* The coefficient the device compensates with: the parameter (a
	 * technician changed it), else its profile's, else the common 2 %. */
	d->coef_pct = 2.0;
	for (size_t i = 0; i < prof->n_regs; i++)
		if (prof->regs[i].specific && !isnan(prof->regs[i].coef_pct)) {
			d->coef_pct = prof->regs[i].coef_pct;
			break;
		}
	if (!isnan(params->coef_pct))
		d->coef_pct = params->coef_pct;
	d->plugged = params->plugged != 0;
	d->cal_slope = 1;
	d->cal_metric = -1;
	for (size_t i = 0; i < prof->n_settings && d->cal_metric < 0; i++) {
		const struct agri_register *r = prof->settings[i].metric[0] ?
			agri_profile_find(prof, prof->settings[i].metric) : NULL;

		if (r)
			d->cal_metric = (int)(r - prof->regs);
	}
	for (size_t i = 0; i < prof->n_settings; i++)
		device_setting_words(d, i, d->setting_words[i]);
}

int device_add_fault(struct device *d, const struct fault *f)
{
	if (d->n_faults >= DEVICE_FAULTS_MAX)
		return -ENOSPC;
	d->faults[d->n_faults++] = *f;
	return 0;
}

static const struct fault *find_fault(const struct device *d,
				      enum fault_mode m)
{
	for (size_t i = 0; i < d->n_faults; i++)
		if (d->faults[i].mode == m)
			return &d->faults[i];
	return NULL;
}

static bool is_error_like(const char *m)
{
	return strstr(m, "error") || strstr(m, "fault") || strstr(m, "quality") ||
	       strstr(m, "code") || strstr(m, "status");
}

/* A plausible value for a metric no model knows: the middle of its range. */
static double fallback_value(const struct device *d,
			     const struct agri_register *r, int64_t sim_ms)
{
	double v = 0;

	if (r->stable || is_error_like(r->metric))
		return r->has_min && r->min > 0 ? r->min : 0;
	if (r->has_min && r->has_max) {
		v = (r->min + r->max) / 2;
		if (d->params.noise) {
			int64_t step = sim_ms / 60000;
			uint64_t h = model_hash(d->params.seed, (uint64_t)d->slave,
						(uint64_t)r->addr, (uint64_t)step);
			v += (r->max - r->min) * 0.005 * model_gauss(h);
		}
	} else if (r->has_min) {
		v = r->min;
	}
	return v;
}

/* A conductivity register: the cell a dry probe or fouling affects. */
static bool is_conductivity(const struct agri_register *r)
{
	return r->specific || r->dry_below > 0 || strstr(r->metric, "conductiv");
}

/* Physics the probe's fouling does not change (temperature, pressure, level). */
static bool drift_free(const struct agri_register *r)
{
	return strstr(r->metric, "temp") || strstr(r->metric, "pressure") ||
	       strstr(r->metric, "level") || strstr(r->metric, "depth");
}

double device_value(const struct device *d, size_t i, int64_t sim_ms,
		    int64_t since_ms, bool with_faults)
{
	const struct agri_register *r = &d->prof.regs[i];
	const struct fault *stuck, *drift, *dry;
	double v;

	if (r->counter) {
		const char *cls = r->sensor_suffix[0] ? r->sensor_suffix : r->metric;
		return model_count(&d->params, model_class_factor(cls), since_ms, sim_ms);
	}
	/* Not started (Yosemitech): nothing measured, the registers read 0. */
	if (with_faults && !d->started && !r->stable)
		return r->has_min && r->min > 0 ? r->min : 0;
	if (with_faults && !r->stable && (stuck = find_fault(d, FAULT_STUCK))) {
		int64_t at = d->sim_start_ms + (int64_t)(stuck->arg * 3600000.0);
		if (sim_ms > at)
			sim_ms = at;
	}
	if (r->specific) {
		/* What the device computes: the in-situ conductivity compensated
		 * to ref_c with its own coefficient and its own temperature. */
		double t = model_water_temperature(&d->params, sim_ms);

		if (model_value(&d->params, "conductivity", r->unit, sim_ms, &v) != 0)
			v = 0;
		v /= 1 + d->coef_pct / 100 * (t - r->ref_c);
	} else if (model_value(&d->params, r->metric, r->unit, sim_ms, &v) != 0) {
		v = fallback_value(d, r, sim_ms);
	}
	if (with_faults && is_conductivity(r) && (dry = find_fault(d, FAULT_DRY)) &&
	    sim_ms >= d->sim_start_ms + (int64_t)(dry->arg * 3600000.0))
		v = 0; /* an open cell: nothing conducts */
	if (with_faults && !r->stable && !drift_free(r) && (drift = find_fault(d, FAULT_DRIFT))) {
		/* fouling that began arg2 days before the start */
		double days = (double)(sim_ms - d->sim_start_ms) / 86400000.0 + drift->arg2;
		double f = 1.0 - drift->arg / 100.0 * days;
		v *= f < 0 ? 0 : f;
	}
	/* The probe's calibration: its error, and the device's correction. */
	if ((int)i == d->cal_metric)
		v = d->cal_slope * (v + d->params.cal_error) + d->cal_offset;
	/* A real sensor saturates at the ends of its range. */
	if (r->has_min && v < r->min)
		v = r->min;
	if (r->has_max && v > r->max)
		v = r->max;
	return v;
}

void device_setting_words(const struct device *d, size_t i, uint16_t *w)
{
	const struct agri_setting *s = &d->prof.settings[i];
	double v = s->has_standard ? 0 : !strcmp(s->name, "slave_id") ? d->slave :
		   !strcmp(s->name, "cal_slope") ? d->cal_slope :
		   !strcmp(s->name, "cal_offset") ? d->cal_offset : NAN;

	if (isnan(v)) { /* as written last (a baud code: the profile's serial) */
		if (!strcmp(s->name, "baud") && s->n_codes) {
			memset(w, 0, 4 * sizeof(*w));
			for (size_t k = 0; k < s->n_codes; k++)
				if (s->codes[k] == d->prof.serial.baud)
					w[0] = (uint16_t)k;
		}
		return;
	}
	memset(w, 0, 4 * sizeof(*w));
	if (agri_setting_encode(s, v, w) < 0)
		(void)agri_reg_pack(s->type, s->order, v * s->scale, w);
}

static int fc_present(const struct agri_profile *p, uint8_t fc)
{
	if (fc == 3 && p->n_settings)
		return 1;
	for (size_t i = 0; i < p->n_regs; i++)
		if (p->regs[i].fc == fc || (p->regs[i].has_coef_reg && p->regs[i].coef_reg.fc == fc))
			return 1;
	for (size_t i = 0; i < p->n_expect; i++)
		if (p->expect[i].fc == fc)
			return 1;
	return 0;
}

/*
 * Words the device holds beyond its polled registers: the compensation
 * coefficient and the expected words. Marks those in [addr, addr+count)
 * in covered[] and, when words is not NULL, writes them. Returns whether
 * any was in range.
 */
static bool device_extras(const struct device *d, uint8_t fc, uint16_t addr, uint16_t count,
			  uint8_t *covered, uint16_t *words)
{
	const struct agri_profile *p = &d->prof;
	uint32_t end = (uint32_t)addr + count;
	bool any = false;

	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_reg_ref *c = &p->regs[i].coef_reg;
		uint32_t n = agri_regtype_words(c->type);
		uint16_t packed[4];

		if (!p->regs[i].has_coef_reg || c->fc != fc || c->addr + n <= addr || c->addr >= end)
			continue;
		any = true;
		(void)agri_reg_pack(c->type, c->order, d->coef_pct / c->scale, packed);
		for (uint32_t k = 0; k < n; k++)
			if (c->addr + k >= addr && c->addr + k < end) {
				covered[c->addr + k - addr] = 1;
				if (words)
					words[c->addr + k - addr] = packed[k];
			}
	}
	for (size_t i = 0; i < p->n_expect; i++) {
		const struct agri_expect *x = &p->expect[i];

		if (x->fc != fc || x->addr < addr || x->addr >= end)
			continue;
		any = true;
		covered[x->addr - addr] = 1;
		if (words)
			words[x->addr - addr] = x->value;
	}
	/* The settings read back with FC 03 (slave id, calibration). */
	for (size_t i = 0; fc == 3 && i < p->n_settings; i++) {
		const struct agri_setting *s = &p->settings[i];
		uint32_t n = agri_regtype_words(s->type);

		if (!s->readable || s->addr + n <= addr || s->addr >= end)
			continue;
		any = true;
		for (uint32_t k = 0; k < n; k++)
			if (s->addr + k >= addr && s->addr + k < end) {
				covered[s->addr + k - addr] = 1;
				if (words)
					words[s->addr + k - addr] = d->setting_words[i][k];
			}
	}
	return any;
}

int device_read(struct device *d, uint8_t fc, uint16_t addr, uint16_t count,
		int64_t sim_ms, uint16_t *words, bool clear_counters)
{
	const struct agri_profile *p = &d->prof;
	uint32_t end = (uint32_t)addr + count, lo = UINT32_MAX, hi = 0;
	bool gaps_ok = p->max_gap > 0 || p->even_align, touched = false;
	uint8_t covered[AGRI_MODBUS_MAX_REGS];
	int max_regs = p->max_regs > 0 ? p->max_regs : AGRI_MODBUS_MAX_REGS;

	if (!fc_present(p, fc))
		return MB_EX_ILLEGAL_FUNCTION;
	if (count < 1 || count > AGRI_MODBUS_MAX_REGS || count > max_regs)
		return MB_EX_ILLEGAL_VALUE;
	if (end > 65536)
		return MB_EX_ILLEGAL_ADDRESS;
	if (p->even_align && ((addr & 1) || (count & 1)))
		return MB_EX_ILLEGAL_ADDRESS;
	memset(covered, 0, sizeof(covered));
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *r = &p->regs[i];
		uint32_t ra = r->addr, re = ra + agri_regtype_words(r->type);
		if (r->fc != fc)
			continue;
		lo = ra < lo ? ra : lo;
		hi = re > hi ? re : hi;
		if (re <= addr || ra >= end)
			continue;
		touched = true;
		for (uint32_t w = ra > addr ? ra : addr; w < re && w < end; w++)
			covered[w - addr] = 1;
	}
	if (device_extras(d, fc, addr, count, covered, NULL))
		touched = true;
	if (!touched)
		return MB_EX_ILLEGAL_ADDRESS;
	if (p->even_align) {
		lo &= ~1u;
		hi = (hi + 1) & ~1u;
	}
	for (uint32_t w = 0; w < count; w++) {
		if (covered[w])
			continue;
		if (!gaps_ok || addr + w < lo || addr + w >= hi)
			return MB_EX_ILLEGAL_ADDRESS;
		/* Undocumented words inside a span: 0, or NaN on devices
		 * that pad with NaN (YSI's reserved area). */
		words[w] = p->even_align ? 0xFFFF : 0x0000;
	}
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *r = &p->regs[i];
		uint32_t ra = r->addr, n = agri_regtype_words(r->type);
		uint16_t packed[4];
		double v;
		if (r->fc != fc || ra + n <= addr || ra >= end)
			continue;
		v = device_value(d, i, sim_ms, d->counter_last_ms[i], true);
		if (r->counter && clear_counters)
			d->counter_last_ms[i] = sim_ms;
		(void)agri_reg_pack(r->type, r->order, agri_register_raw(r, v), packed);
		for (uint32_t k = 0; k < n; k++)
			if (ra + k >= addr && ra + k < end)
				words[ra + k - addr] = packed[k];
	}
	(void)device_extras(d, fc, addr, count, covered, words);
	return 0;
}

/* A command of the profile arrived: start measuring, run the wiper. */
static void device_command(struct device *d, const struct agri_command *c)
{
	d->n_commands++;
	if (c->role == AGRI_CMD_START)
		d->started = true;
	else if (c->role == AGRI_CMD_WIPE)
		d->n_wipes++;
}

/*
 * FC 06 / 16: the profile's commands, and a new compensation coefficient
 * written to coef_reg (FC 06, 16-bit). Writes anywhere else: exception
 * 02, or 01 on a device that takes none. Returns 0 or the exception.
 */
/*
 * A write to one of the profile's settings (FC 06, or 16 with all its
 * words): a new slave id (taken after the reply), a calibration point (the
 * device corrects its reading to the standard: one point, an offset) or
 * coefficient, a baud code (kept; a pty has no speed). Returns 0, -1 when
 * addr is no setting, or the exception.
 */
static int device_write_setting(struct device *d, uint8_t fc, uint16_t addr,
				const uint8_t *data, unsigned nwords, int64_t sim_ms)
{
	const struct agri_profile *p = &d->prof;

	for (size_t i = 0; i < p->n_settings; i++) {
		const struct agri_setting *s = &p->settings[i];
		unsigned n = agri_regtype_words(s->type);
		uint16_t w[4] = {0};
		double v;

		if (s->addr != addr || (fc == 0x06) != (s->fc == 6))
			continue;
		if (nwords != n)
			return MB_EX_ILLEGAL_VALUE;
		for (unsigned k = 0; k < n; k++)
			w[k] = (uint16_t)(data[2 * k] << 8 | data[2 * k + 1]);
		if (agri_setting_decode(s, w, &v) < 0 || (s->has_min && v < s->min) ||
		    (s->has_max && v > s->max))
			return MB_EX_ILLEGAL_VALUE;
		if (!strcmp(s->name, "slave_id")) {
			d->new_slave = (int)v;
		} else if (!strcmp(s->name, "cal_slope")) {
			d->cal_slope = v;
		} else if (!strcmp(s->name, "cal_offset")) {
			d->cal_offset = v;
		} else if (s->has_standard && d->cal_metric >= 0) {
			/* In the standard now: what it reads becomes v. */
			double now;

			d->cal_offset = 0;
			now = device_value(d, (size_t)d->cal_metric, sim_ms, 0, true);
			d->cal_offset = v - now;
		}
		memcpy(d->setting_words[i], w, sizeof(w));
		if (strcmp(s->name, "baud"))
			device_setting_words(d, i, d->setting_words[i]);
		return 0;
	}
	return -1;
}

static int device_write(struct device *d, const uint8_t *pdu, size_t len, int64_t sim_ms)
{
	const struct agri_profile *p = &d->prof;
	uint8_t fc = pdu[0];
	uint16_t addr = (uint16_t)(pdu[1] << 8 | pdu[2]);
	const struct agri_command *c = find_command(p, fc, addr);
	bool writable = p->n_settings > 0;
	int ex;

	if (fc == 0x10 && (len < 6 || len != 6u + pdu[5] || pdu[5] != 2 * (pdu[3] << 8 | pdu[4])))
		return MB_EX_ILLEGAL_VALUE;
	if (fc == 0x06 && len != 5)
		return MB_EX_ILLEGAL_VALUE;
	if (c) {
		device_command(d, c);
		return 0;
	}
	ex = fc == 0x06 ? device_write_setting(d, fc, addr, pdu + 3, 1, sim_ms)
			: device_write_setting(d, fc, addr, pdu + 6, pdu[5] / 2u, sim_ms);
	if (ex >= 0)
		return ex;
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *r = &p->regs[i];

		if (!r->has_coef_reg)
			continue;
		writable = true;
		if (fc == 0x06 && r->coef_reg.addr == addr && r->coef_reg.fc == 3 &&
		    agri_regtype_words(r->coef_reg.type) == 1) {
			double v = (double)(pdu[3] << 8 | pdu[4]) * r->coef_reg.scale;

			if (v < 0 || v > 10)
				return MB_EX_ILLEGAL_VALUE;
			d->coef_pct = v;
			return 0;
		}
	}
	for (size_t i = 0; i < p->n_init + p->n_before && !writable; i++) {
		const struct agri_command *k = i < p->n_init ? &p->init[i] : &p->before_read[i - p->n_init];
		writable = k->fc == 6 || k->fc == 16;
	}
	return writable ? MB_EX_ILLEGAL_ADDRESS : MB_EX_ILLEGAL_FUNCTION;
}

static size_t exception(uint8_t fc, uint8_t code, uint8_t *resp)
{
	resp[0] = fc | 0x80;
	resp[1] = code;
	return 2;
}

size_t device_request(struct device *d, const uint8_t *pdu, size_t len,
		      int64_t sim_ms, int64_t elapsed_ms, uint8_t *resp,
		      size_t cap, enum device_action *act)
{
	uint16_t words[AGRI_MODBUS_MAX_REGS], addr, count;
	const struct fault *f;
	uint64_t n = d->n_requests++;
	uint8_t fc;
	size_t out;
	int ex;

	*act = DEVICE_REPLY;
	if (len < 1 || cap < 253) {
		*act = DEVICE_SILENT;
		return 0;
	}
	fc = pdu[0];
	for (size_t i = 0; i < d->n_faults; i++) {
		f = &d->faults[i];
		if ((f->mode == FAULT_DROPOUT && fault_dropped(f, elapsed_ms)) ||
		    (f->mode == FAULT_TIMEOUT && fault_fires(f, d->params.seed, n))) {
			*act = DEVICE_SILENT;
			d->n_silent++;
			return 0;
		}
	}
	if ((f = find_fault(d, FAULT_EXCEPTION)) && fault_fires(f, d->params.seed, n)) {
		d->n_exceptions++;
		out = exception(fc, MB_EX_DEVICE_FAILURE, resp);
		goto corrupt;
	}
	if (fc == 0x06 || fc == 0x10) {
		ex = len >= 5 ? device_write(d, pdu, len, sim_ms) : MB_EX_ILLEGAL_VALUE;
		if (ex) {
			d->n_exceptions++;
			out = exception(fc, (uint8_t)ex, resp);
			goto corrupt;
		}
		memcpy(resp, pdu, 5); /* FC 06 echoes; FC 16 answers addr + count */
		out = 5;
		d->n_replies++;
		goto corrupt;
	}
	if (fc != 0x03 && fc != 0x04) {
		d->n_exceptions++;
		out = exception(fc, MB_EX_ILLEGAL_FUNCTION, resp);
		goto corrupt;
	}
	if (len == 5) {
		/* A read the profile sends as a command (Yosemitech 0x2500). */
		const struct agri_command *c = find_command(&d->prof, fc,
							    (uint16_t)(pdu[1] << 8 | pdu[2]));
		uint16_t cnt = (uint16_t)(pdu[3] << 8 | pdu[4]);

		if (c && c->count == cnt && cnt <= AGRI_MODBUS_MAX_REGS) {
			device_command(d, c);
			resp[0] = fc;
			resp[1] = (uint8_t)(2 * cnt);
			memset(resp + 2, 0, 2 * (size_t)cnt);
			out = 2 + 2 * (size_t)cnt;
			d->n_replies++;
			goto corrupt;
		}
	}
	if (len != 5) {
		d->n_exceptions++;
		out = exception(fc, MB_EX_ILLEGAL_VALUE, resp);
		goto corrupt;
	}
	addr = (uint16_t)(pdu[1] << 8 | pdu[2]);
	count = (uint16_t)(pdu[3] << 8 | pdu[4]);
	/* A faulted reply must not clear the counters: decide first. */
	f = find_fault(d, FAULT_CRC);
	bool corrupting = f && fault_fires(f, d->params.seed, n);
	ex = device_read(d, fc, addr, count, sim_ms, words, !corrupting);
	if (ex) {
		d->n_exceptions++;
		out = exception(fc, (uint8_t)ex, resp);
		goto corrupt;
	}
	resp[0] = fc;
	resp[1] = (uint8_t)(count * 2);
	for (uint16_t i = 0; i < count; i++) {
		resp[2 + 2 * i] = (uint8_t)(words[i] >> 8);
		resp[3 + 2 * i] = (uint8_t)(words[i] & 0xFF);
	}
	out = 2 + 2 * (size_t)count;
	d->n_replies++;
corrupt:
	f = find_fault(d, FAULT_CRC);
	if (f && fault_fires(f, d->params.seed, n)) {
		*act = DEVICE_CORRUPT;
		d->n_corrupt++;
	}
	return out;
}
