/*
 * agrictl's Modbus master: one device read by its profile's plan (after
 * the commands its profile says it needs, as the station sends them), and
 * the profile guess behind `agrictl scan`.
 */
#include "modbus_probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

modbus_t *probe_open(const struct probe_link *l, char *errbuf, size_t len)
{
	modbus_t *ctx;
	int ms = l->timeout_ms > 0 ? l->timeout_ms : 500;

	if (l->rtu_dev) {
		ctx = modbus_new_rtu(l->rtu_dev, l->baud ? l->baud : 9600,
				     l->parity ? l->parity : 'N', 8,
				     1);
	} else {
		char host[256];
		const char *colon = strrchr(l->tcp, ':');
		int port;

		if (!colon || colon == l->tcp ||
		    (size_t)(colon - l->tcp) >= sizeof(host) ||
		    (port = atoi(colon + 1)) <= 0 || port > 65535) {
			snprintf(errbuf, len, "--tcp: expected HOST:PORT, got \"%s\"", l->tcp);
			return NULL;
		}
		memcpy(host, l->tcp, (size_t)(colon - l->tcp));
		host[colon - l->tcp] = '\0';
		ctx = modbus_new_tcp(host, port);
	}
	if (!ctx) {
		snprintf(errbuf, len, "cannot create Modbus context: %s", modbus_strerror(errno));
		return NULL;
	}
	modbus_set_response_timeout(ctx, (uint32_t)(ms / 1000), (uint32_t)(ms % 1000) * 1000);
	if (modbus_connect(ctx) < 0) {
		snprintf(errbuf, len, "cannot open %s: %s", l->rtu_dev ? l->rtu_dev : l->tcp,
			 modbus_strerror(errno));
		modbus_free(ctx);
		return NULL;
	}
	return ctx;
}

static int read_req(modbus_t *ctx, const struct agri_read_req *r, uint16_t *dst)
{
	int n;

	if (r->fc == 4)
		n = modbus_read_input_registers(ctx, r->addr, r->count, dst);
	else
		n = modbus_read_registers(ctx, r->addr, r->count, dst);
	if (n == r->count)
		return 0;
	return n < 0 ? -errno : -EPROTO;
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
		if (modbus_send_raw_request(ctx, req, n) < 0 || modbus_receive_confirmation(ctx, rsp) < 0) {
			int e = errno;

			if (e >= EMBXILFUN && e <= EMBXGTAR)
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
		/* A Modbus TCP gateway answers for unit ids it cannot reach with
		 * exception 0A/0B: nobody there either. */
		if (rc == -EMBXGPATH || rc == -EMBXGTAR)
			rc = -ETIMEDOUT;
		if (rc == -ETIMEDOUT) {
			if (!answered && i == 0)
				return -ETIMEDOUT; /* nobody there: don't wait n times */
			continue;
		}
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
