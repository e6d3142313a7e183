/*
 * `agrictl write`: holding registers of one device, raw (--register ADDR
 * --value V[,V...]) or through its profile's settings (--set
 * slave_id=2, --set baud=19200: docs/profiles.md "Settings"). New sensors
 * all ship as slave 1: connect one at a time and give each its own id.
 *
 * Safety: a register the profile marks dangerous (a baud rate, a
 * calibration) is written only with --yes; a new slave id that another
 * device already answers at is refused without --yes (two devices with one
 * id garble each other). After a slave id change the device is read at its
 * new id to show it took it; a setting taken at the next power-up says so.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "errtext.h"
#include "modbus_probe.h"
#include "msgs.h"

#define VALUES_MAX 32

static const char *const cmd = "write";

static void usage(FILE *f)
{
	fputs("usage: agrictl write (--rtu DEV [--baud N] [--parity N|E|O] | --tcp HOST:PORT) --slave N\n"
	      "       (--profile NAME --set NAME=VALUE | --register ADDR --value V[,V...] [--fc 6|16]\n"
	      "       [--profile NAME]) [--yes] [--timeout-ms 500] [--profiles-dir DIR]\n"
	      "  write holding registers; --set uses the profile's settings: slave_id, baud and\n"
	      "  the others it lists (agrictl write --profile NAME --list)\n"
	      "  --list      the profile's settings: name, register, values, dangerous or not\n"
	      "  --yes       write a register the profile marks dangerous (baud rate,\n"
	      "              calibration), or a slave id another device already answers at\n"
	      "exit 0 written (and, for slave_id, the device answers at its new id), 1 failed,\n"
	      "2 refused\n", f);
}

static void list_settings(const struct agri_profile *p)
{
	if (!p->n_settings) {
		printf(T("%s has no settings in its profile: agrictl write --register ADDR --value V\n"),
		       p->name);
		return;
	}
	for (size_t i = 0; i < p->n_settings; i++) {
		const struct agri_setting *s = &p->settings[i];

		printf("%-12s fc %2u addr %5u (0x%04X)", s->name, s->fc, s->addr, s->addr);
		if (s->n_codes) {
			printf(" %s", T("values"));
			for (size_t k = 0; k < s->n_codes; k++)
				printf("%s%g", k ? "," : " ", s->codes[k]);
		} else if (s->has_min && s->has_max) {
			printf(" %g..%g", s->min, s->max);
		}
		if (s->has_standard)
			printf(T(" calibration point %g (%s)"), s->standard, s->metric);
		if (s->dangerous)
			printf(" %s", T("DANGEROUS: needs --yes"));
		if (s->after_restart)
			printf(" %s", T("(taken at the next power-up)"));
		putchar('\n');
	}
}

/* The profile's setting covering register addr, or NULL. */
static const struct agri_setting *setting_at(const struct agri_profile *p, unsigned addr)
{
	for (size_t i = 0; p && i < p->n_settings; i++) {
		const struct agri_setting *s = &p->settings[i];

		if (addr >= s->addr && addr < s->addr + agri_regtype_words(s->type))
			return s;
	}
	return NULL;
}

/* Parses "1,2,0x10" into w. Returns the count or -EINVAL. */
static int parse_values(const char *arg, uint16_t *w, int cap)
{
	char buf[512], *save = NULL, *tok;
	int n = 0;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		long v;

		if (n == cap || cli_int(tok, 0, 65535, true, &v) < 0)
			return -EINVAL;
		w[n++] = (uint16_t)v;
	}
	return n ? n : -EINVAL;
}

/* After a slave id change: does the device answer at its new id? */
static int check_new_id(modbus_t *ctx, const struct agri_profile *p, int old_id, int new_id)
{
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	int rc;

	util_sleep_ms(200); /* a device may store the id before it answers */
	rc = probe_read_device(ctx, new_id, p, vals);
	if (rc == 0 || probe_is_answer(-rc)) {
		printf(T("slave %d is now slave %d: it answers there\n"), old_id, new_id);
		return 0;
	}
	fprintf(stderr, T("agrictl: the write was acknowledged, but nothing answers at slave %d "
			  "(%s): this device may take a new id only after a power cycle\n"),
		new_id, errtext_modbus(-rc));
	return 1;
}

int agrictl_write(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"profile", required_argument, 0, 'p'},
		{"slave", required_argument, 0, 's'}, {"set", required_argument, 0, 'S'},
		{"register", required_argument, 0, 'r'}, {"value", required_argument, 0, 'v'},
		{"fc", required_argument, 0, 'F'}, {"yes", no_argument, 0, 'y'},
		{"list", no_argument, 0, 'l'}, {"help", no_argument, 0, 'h'}, {0}};
	static struct agri_profile prof;
	struct bus_opts b = {0};
	const struct agri_setting *st = NULL;
	const char *profile = NULL, *set = NULL, *values = NULL;
	uint16_t w[VALUES_MAX];
	char err[512], name[AGRI_ID_MAX + 1];
	long v, reg = -1, fc = 0;
	double value = 0;
	bool yes = false, list = false;
	int slave = 0, c, rc, n;
	modbus_t *ctx;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(cmd, c, optarg, &b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		switch (c) {
		case 'p': profile = optarg; break;
		case 'S': set = optarg; break;
		case 'v': values = optarg; break;
		case 'y': yes = true; break;
		case 'l': list = true; break;
		case 's':
			if (cli_int(optarg, 1, 247, false, &v) < 0)
				return cli_usage(cmd, T("--slave: expected 1..247, got \"%s\""), optarg);
			slave = (int)v;
			break;
		case 'r':
			if (cli_int(optarg, 0, 65535, true, &reg) < 0)
				return cli_usage(cmd, T("--register: expected an address 0..65535 (or 0x...), "
							"got \"%s\""), optarg);
			break;
		case 'F':
			if (cli_int(optarg, 6, 16, false, &fc) < 0 || (fc != 6 && fc != 16))
				return cli_usage(cmd, T("--fc: expected 6 or 16, got \"%s\""), optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (profile && (rc = cli_profile(b.profiles_dir, profile, &prof)) != 0)
		return rc;
	if (list) {
		if (!profile)
			return cli_usage(cmd, "%s", T("--list needs --profile NAME"));
		list_settings(&prof);
		return 0;
	}
	if ((rc = bus_check(cmd, &b)) != 0)
		return rc;
	if (!slave)
		return cli_usage(cmd, "%s", T("write needs --slave N (the device's id now)"));
	if (!!set == (reg >= 0))
		return cli_usage(cmd, "%s", T("give either --set NAME=VALUE (with --profile) or "
					      "--register ADDR --value V"));
	if (set) {
		const char *eq = strchr(set, '=');

		if (!profile)
			return cli_usage(cmd, "%s", T("--set needs --profile NAME: the profile says "
						      "where the setting lives"));
		if (!eq || eq == set || (size_t)(eq - set) > AGRI_ID_MAX ||
		    util_parse_double(eq + 1, -1e15, 1e15, &value) < 0)
			return cli_usage(cmd, T("--set: expected NAME=NUMBER, got \"%s\""), set);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - set), set);
		st = agri_profile_setting(&prof, name);
		if (!st) {
			fprintf(stderr, T("agrictl: profile %s has no setting \"%s\"; it has:\n"),
				prof.name, name);
			list_settings(&prof);
			return AGRI_EXIT_USAGE;
		}
		n = agri_setting_encode(st, value, w);
		if (n < 0) {
			fprintf(stderr, T("agrictl: %s=%g is not a value %s takes:\n"), name, value,
				prof.name);
			list_settings(&prof);
			return AGRI_EXIT_USAGE;
		}
		reg = st->addr;
		fc = st->fc;
		if (st->name[0] && !strcmp(st->name, "slave_id") && (int)value == slave)
			return cli_usage(cmd, T("the device is slave %d already"), slave);
	} else {
		if (!values)
			return cli_usage(cmd, "%s", T("--register needs --value V[,V...]"));
		n = parse_values(values, w, VALUES_MAX);
		if (n < 0)
			return cli_usage(cmd, T("--value: expected up to %d values 0..65535, got \"%s\""),
					 VALUES_MAX, values);
		if (!fc)
			fc = n == 1 ? 6 : 16;
		if (fc == 6 && n != 1)
			return cli_usage(cmd, "%s", T("--fc 6 writes one register"));
		if (reg + n - 1 > 65535)
			return cli_usage(cmd, "%s", T("--register + the values run past 65535"));
		for (int k = 0; k < n && !st; k++)
			st = setting_at(profile ? &prof : NULL, (unsigned)(reg + k));
	}
	if (st && st->dangerous && !yes) {
		fprintf(stderr, T("agrictl: %s (register %u) is dangerous on %s: %s; give --yes to "
				  "write it\n"), st->name, st->addr, prof.name,
			st->has_standard || st->metric[0] ?
			T("it changes the device's calibration") :
			T("the device may stop answering at the line settings you use now"));
		return AGRI_EXIT_USAGE;
	}
	if (profile)
		bus_defaults_from(&b, &prof);
	if (!b.timeout_given)
		b.link.timeout_ms = 500;
	ctx = probe_open(&b.link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	if (st && !strcmp(st->name, "slave_id") && !yes) {
		struct agri_read_req reqs[AGRI_PLAN_MAX];

		/* Is the new id taken? */
		if (agri_plan_reads(&prof, reqs, AGRI_PLAN_MAX) > 0 &&
		    probe_presence(ctx, (int)value, &reqs[0]) == 1) {
			fprintf(stderr, T("agrictl: slave %d already answers on this bus: two devices "
					  "with one id garble each other (give --yes to write anyway)\n"),
				(int)value);
			probe_close(ctx);
			return AGRI_EXIT_USAGE;
		}
	}
	rc = probe_write(ctx, slave, (int)fc, (uint16_t)reg, w, n);
	if (rc < 0) {
		fprintf(stderr, T("agrictl: slave %d: write of register %ld failed: %s\n"), slave, reg,
			errtext_modbus(-rc));
		probe_close(ctx);
		return 1;
	}
	if (st)
		printf(T("slave %d: %s = %g written (fc %ld, register %ld)\n"), slave, st->name,
		       set ? value : (double)w[0], fc, reg);
	else
		printf(T("slave %d: %d register(s) written at %ld (fc %ld)\n"), slave, n, reg, fc);
	rc = 0;
	if (st && set && !strcmp(st->name, "slave_id") && !st->after_restart)
		rc = check_new_id(ctx, &prof, slave, (int)value);
	else if (st && st->after_restart)
		printf(T("%s takes the new %s at its next power-up: power-cycle it%s\n"), prof.name,
		       st->name, !strcmp(st->name, "baud") ?
		       T(", then talk to it at that baud rate (agrictl scan --baud ...)") : "");
	probe_close(ctx);
	return rc;
}
