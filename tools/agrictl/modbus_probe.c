/*
 * agrictl's Modbus master (see modbus_probe.h): a device read by its
 * profile's plan (after the commands its profile says it needs, as the
 * station sends them) and its derived metrics, the presence probe and
 * profile guess behind `agrictl scan`, register writes.
 */
#include "modbus_probe.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "errtext.h"
#include "msgs.h"

/* "host:port", "[v6]:port": 0 or -EINVAL. */
static int split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon, *hs = s, *he;

	if (*s == '[') {
		he = strchr(s, ']');
		if (!he || he[1] != ':')
			return -EINVAL;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		he = colon;
	}
	if (!colon || he == hs || (size_t)(he - hs) >= hlen || !colon[1] ||
	    strlen(colon + 1) >= plen || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

modbus_t *probe_open(const struct probe_link *l, char *errbuf, size_t len)
{
	modbus_t *ctx;
	int ms = l->timeout_ms > 0 ? l->timeout_ms : 500;

	if (l->rtu_dev) {
		ctx = modbus_new_rtu(l->rtu_dev, l->baud ? l->baud : 9600,
				     l->parity ? l->parity : 'N', 8, 1);
	} else {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		char host[256], port[16];
		int rc;

		if (split_hostport(l->tcp, host, sizeof(host), port, sizeof(port)) < 0) {
			snprintf(errbuf, len, T("--tcp: expected HOST:PORT, got \"%s\""), l->tcp);
			return NULL;
		}
		/* Host names are resolved here (libmodbus' modbus_new_tcp takes an
		 * IPv4 address only), so a wrong one says so. */
		rc = getaddrinfo(host, port, &hints, &res);
		if (rc) {
			snprintf(errbuf, len, T("cannot resolve the host name \"%s\": %s (give an IP "
						"address, or a name in /etc/hosts or the DNS)"),
				 host, gai_strerror(rc));
			return NULL;
		}
		freeaddrinfo(res);
		ctx = modbus_new_tcp_pi(host, port);
	}
	if (!ctx) {
		snprintf(errbuf, len, T("cannot set up %s: %s"), l->rtu_dev ? l->rtu_dev : l->tcp,
			 errtext_open(errno, !l->rtu_dev));
		return NULL;
	}
	probe_set_timeout(ctx, ms);
	/* A gap this long between bytes of one reply is no Modbus device. */
	modbus_set_byte_timeout(ctx, 0, 100000);
	errno = 0;
	if (modbus_connect(ctx) < 0) {
		int e = errno ? errno : EIO;

		snprintf(errbuf, len, T("cannot open %s: %s"), l->rtu_dev ? l->rtu_dev : l->tcp,
			 errtext_open(e, !l->rtu_dev));
		modbus_free(ctx);
		return NULL;
	}
	return ctx;
}

void probe_close(modbus_t *ctx)
{
	if (!ctx)
		return;
	modbus_close(ctx);
	modbus_free(ctx);
}

void probe_set_timeout(modbus_t *ctx, int ms)
{
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
}

long probe_char_us(const struct probe_link *l)
{
	int baud = l->baud ? l->baud : 9600;
	int bits = 1 + 8 + 1 + (l->parity && l->parity != 'N' ? 1 : 0);

	return l->rtu_dev ? (long)bits * 1000000L / baud : 0;
}

void probe_link_name(const struct probe_link *l, char *buf, size_t len)
{
	if (l->rtu_dev)
		snprintf(buf, len, "%d 8%c1", l->baud ? l->baud : 9600, l->parity ? l->parity : 'N');
	else
		snprintf(buf, len, "%s", l->tcp);
}

bool probe_is_answer(int e)
{
	return e >= EMBXILFUN && e <= EMBXMEMPAR;
}

bool probe_is_garbled(int e)
{
	return e == EMBBADCRC || e == EMBBADDATA || e == EMBBADEXC || e == EMBUNKEXC ||
	       e == EMBMDATA || e == EMBBADSLAVE;
}

bool probe_is_link_error(int e)
{
	return e == ECONNRESET || e == EPIPE || e == EBADF || e == ENOTCONN || e == ECONNREFUSED;
}

static int read_req(modbus_t *ctx, const struct agri_read_req *r, uint16_t *dst)
{
	int n;

	errno = 0;
	if (r->fc == 4)
		n = modbus_read_input_registers(ctx, r->addr, r->count, dst);
	else
		n = modbus_read_registers(ctx, r->addr, r->count, dst);
	if (n == r->count)
		return 0;
	return n < 0 ? -(errno ? errno : EIO) : -EMBBADDATA;
}

int probe_presence(modbus_t *ctx, int slave, const struct agri_read_req *req)
{
	uint16_t w[AGRI_MODBUS_MAX_REGS];
	int rc;

	modbus_set_slave(ctx, slave);
	rc = read_req(ctx, req, w);
	if (rc == 0 || probe_is_answer(-rc))
		return 1;
	if (rc == -ETIMEDOUT || rc == -EMBXGPATH || rc == -EMBXGTAR)
		return 0;
	modbus_flush(ctx);
	return rc;
}

/*
 * Sends commands (a profile's init, then before_read) as raw requests and
 * waits the longest wait_ms. A device that answers with an exception is
 * let be (it may not need them); no answer is an error (-errno).
 */
static int send_commands(modbus_t *ctx, int slave, const struct agri_profile *p)
{
	uint32_t wait = 0;

	for (size_t i = 0; i < p->n_init + p->n_before; i++) {
		const struct agri_command *c = i < p->n_init ? &p->init[i] :
						      &p->before_read[i - p->n_init];
		uint8_t req[8 + 2 * AGRI_CMD_VALUES_MAX], rsp[MODBUS_MAX_ADU_LENGTH];
		int n = 1 + (int)agri_command_pdu(c, req + 1);

		req[0] = (uint8_t)slave;
		errno = 0;
		if (modbus_send_raw_request(ctx, req, n) < 0 || modbus_receive_confirmation(ctx, rsp) < 0) {
			int e = errno ? errno : EIO;

			if (probe_is_answer(e))
				continue;
			modbus_flush(ctx);
			return -e;
		}
		if (c->wait_ms > wait)
			wait = c->wait_ms;
	}
	if (wait) {
		struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
	return 0;
}

int probe_read_device(modbus_t *ctx, int slave, const struct agri_profile *p,
		      struct probe_value *vals)
{
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	uint16_t data[AGRI_PLAN_MAX][AGRI_MODBUS_MAX_REGS];
	int n, rc;

	n = agri_plan_reads(p, reqs, AGRI_PLAN_MAX);
	if (n < 0)
		return n;
	modbus_set_slave(ctx, slave);
	rc = send_commands(ctx, slave, p);
	if (rc < 0)
		return rc;
	for (int i = 0; i < n; i++) {
		rc = read_req(ctx, &reqs[i], data[i]);
		if (rc < 0) {
			modbus_flush(ctx);
			return rc;
		}
	}
	for (size_t i = 0; i < p->n_regs; i++) {
		const struct agri_register *r = &p->regs[i];
		size_t ri, off;
		unsigned w = agri_regtype_words(r->type);

		if (agri_plan_locate(reqs, (size_t)n, r, &ri, &off) < 0)
			return -ENOENT;
		vals[i].reg = r;
		memset(vals[i].words, 0, sizeof(vals[i].words));
		memcpy(vals[i].words, &data[ri][off], w * sizeof(uint16_t));
		agri_register_decode(r, vals[i].words, &vals[i].value,
				     &vals[i].has_value, &vals[i].q);
	}
	return 0;
}

/* The device's compensation coefficient (%/°C) from its coef_reg; NaN. */
static double device_coef(modbus_t *ctx, int slave, const struct agri_register *r)
{
	const struct agri_reg_ref *c = &r->coef_reg;
	struct agri_read_req q = {c->fc, c->addr, (uint16_t)agri_regtype_words(c->type)};
	uint16_t w[4];
	double raw;

	if (!r->has_coef_reg)
		return NAN;
	modbus_set_slave(ctx, slave);
	if (read_req(ctx, &q, w) < 0 || agri_reg_unpack(c->type, c->order, w, &raw) < 0)
		return NAN;
	raw *= c->scale;
	return raw >= 0 && raw <= 10 ? raw : NAN;
}

int probe_derive(modbus_t *ctx, int slave, const struct agri_profile *p,
		 const struct probe_value *vals, struct probe_derived *out)
{
	for (size_t i = 0; i < p->n_derived; i++) {
		const struct agri_derived *d = &p->derived[i];
		struct probe_derived *o = &out[i];
		double in[2] = {NAN, NAN}, air = NAN, coef = NAN;

		o->d = d;
		o->has_value = false;
		o->q = AGRI_Q_OK;
		for (int k = 0; k < 2; k++) {
			const struct probe_value *v = d->from_reg[k] >= 0 ? &vals[d->from_reg[k]] : NULL;

			if (!v)
				continue;
			if (v->has_value)
				in[k] = v->value;
			if (v->q > o->q)
				o->q = v->q;
		}
		if (d->air_reg >= 0 && vals[d->air_reg].has_value)
			air = vals[d->air_reg].value;
		if (d->fn == AGRI_DERIVED_PSS78)
			coef = device_coef(ctx, slave, &p->regs[d->from_reg[0]]);
		if (agri_derive(p, d, in, air, coef, 0, &o->value) == 0) {
			o->has_value = true;
			if (d->fn == AGRI_DERIVED_PSS78 && o->value > 42 && o->q == AGRI_Q_OK)
				o->q = AGRI_Q_SUSPECT;
		} else {
			o->q = AGRI_Q_ERROR;
		}
	}
	return 0;
}

/*
 * The profile as scan probes it: without its counter registers, so that a
 * scan does not clear a light trap's clear-on-read insect counts (the
 * station would lose them). A profile made only of counters is kept whole.
 */
static void probe_view(const struct agri_profile *p, struct agri_profile *out)
{
	size_t k = 0;

	*out = *p;
	/* A scan only reads: it never sends a device commands meant for another. */
	out->n_init = out->n_before = 0;
	for (size_t i = 0; i < p->n_regs; i++)
		if (!p->regs[i].counter)
			out->regs[k++] = p->regs[i];
	if (k == 0)
		return;
	out->n_regs = k;
	out->n_derived = 0; /* derived inputs may have been counters */
}

int probe_guess(modbus_t *ctx, int slave, const struct agri_profile *profiles,
		size_t n, int *also, size_t *n_also)
{
	static struct agri_profile view;
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	int best = -1, rc;
	size_t best_regs = 0, na = 0;
	bool answered = false;

	for (size_t i = 0; i < n; i++) {
		bool fits = true;

		probe_view(&profiles[i], &view);
		rc = probe_read_device(ctx, slave, &view, vals);
		/* Only a well-formed reply says someone is there: a Modbus TCP
		 * gateway's exception 0A/0B for a unit id says nobody is. */
		if (rc < 0 && !probe_is_answer(-rc))
			continue;
		if (rc == -EMBXGPATH || rc == -EMBXGTAR)
			continue;
		answered = true;
		if (rc < 0)
			continue;
		for (size_t k = 0; k < view.n_regs; k++)
			if (vals[k].q != AGRI_Q_OK)
				fits = false;
		if (!fits)
			continue;
		if (view.n_regs > best_regs) {
			best = (int)i;
			best_regs = view.n_regs;
			na = 0;
		} else if (view.n_regs == best_regs && also && na < PROBE_ALSO_MAX) {
			also[na++] = (int)i; /* the same registers answer: can't tell */
		}
	}
	if (n_also)
		*n_also = best >= 0 ? na : 0;
	if (best >= 0)
		return best;
	return answered ? -ENOENT : -ETIMEDOUT;
}

int probe_read_holding(modbus_t *ctx, int slave, uint16_t addr, int n, uint16_t *w)
{
	struct agri_read_req q = {3, addr, (uint16_t)n};

	modbus_set_slave(ctx, slave);
	return read_req(ctx, &q, w);
}

int probe_write(modbus_t *ctx, int slave, int fc, uint16_t addr, const uint16_t *w, int n)
{
	int rc;

	modbus_set_slave(ctx, slave);
	errno = 0;
	if (fc == 6 && n == 1)
		rc = modbus_write_register(ctx, addr, w[0]);
	else
		rc = modbus_write_registers(ctx, addr, n, w);
	if (rc < 0) {
		int e = errno ? errno : EIO;

		if (!probe_is_answer(e))
			modbus_flush(ctx);
		return -e;
	}
	return 0;
}
