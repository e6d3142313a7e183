/*
 * `agrictl level-offset`: the sensors[].level_offset_m that makes a level
 * sensor report the water level a technician reads on the staff gauge
 * (docs/station.md "Water level"). Either from the water_level the station
 * reports now (--reading, with the offset it runs with), or by reading the
 * device once by its profile and evaluating the profile's level function
 * without an offset. Runs in agrictl's single thread.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/profiles.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "errtext.h"
#include "msgs.h"
#include "modbus_probe.h"


static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "agrictl: level-offset: %s%s%s%s (see agrictl level-offset --help)\n", msg,
		arg ? " \"" : "", arg ? arg : "", arg ? "\"" : "");
	return AGRI_EXIT_USAGE;
}

static int number(const char *s, double lo, double hi, double *out)
{
	return util_parse_double(s, lo, hi, out);
}

/* The device's water level without an offset, by its profile. Returns 0,
 * 1 (read failed, printed) or AGRI_EXIT_CONFIG/AGRI_EXIT_USAGE. */
static int device_level(const char *profile, const char *dir, struct probe_link *link,
			int slave, double *level)
{
	static struct agri_profile prof;
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	const struct agri_derived *d = NULL;
	char err[512];
	double in[2], air = NAN;
	modbus_t *ctx;
	int rc;

	if ((rc = cli_profile(dir, profile, &prof)) != 0)
		return rc;
	for (size_t i = 0; i < prof.n_derived && !d; i++)
		if (prof.derived[i].fn == AGRI_DERIVED_LEVEL)
			d = &prof.derived[i];
	if (!d) {
		fprintf(stderr, "agrictl: profile \"%s\" derives no water level\n", profile);
		return AGRI_EXIT_USAGE;
	}
	if (!link->baud)
		link->baud = prof.serial.baud;
	if (!link->parity)
		link->parity = prof.serial.parity;
	ctx = probe_open(link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	rc = probe_read_device(ctx, slave, &prof, vals);
	modbus_close(ctx);
	modbus_free(ctx);
	if (rc < 0) {
		fprintf(stderr, T("agrictl: slave %d (%s): read failed: %s\n"), slave, profile,
			errtext_modbus(-rc));
		return 1;
	}
	for (int k = 0; k < 2; k++)
		in[k] = d->from_reg[k] >= 0 && vals[d->from_reg[k]].has_value ?
				vals[d->from_reg[k]].value : NAN;
	if (d->air_reg >= 0 && vals[d->air_reg].has_value)
		air = vals[d->air_reg].value;
	if (agri_derive(&prof, d, in, air, NAN, 0, level) < 0) {
		fprintf(stderr, "agrictl: slave %d (%s): no water level from the values read\n",
			slave, profile);
		return 1;
	}
	return 0;
}

int agrictl_level_offset(int argc, char **argv)
{
	static const struct option opts[] = {
		{"measured", required_argument, 0, 'M'}, {"reading", required_argument, 0, 'r'},
		{"offset", required_argument, 0, 'o'}, {"profile", required_argument, 0, 'p'},
		{"rtu", required_argument, 0, 'R'}, {"tcp", required_argument, 0, 'T'},
		{"baud", required_argument, 0, 'b'}, {"parity", required_argument, 0, 'P'},
		{"slave", required_argument, 0, 's'}, {"profiles-dir", required_argument, 0, 'D'},
		{"timeout-ms", required_argument, 0, 'm'},
		{"help", no_argument, 0, 'h'}, {0}};
	struct probe_link link = {.timeout_ms = 1000};
	const char *profile = NULL, *dir = NULL;
	double measured = NAN, reading = NAN, offset = 0, level, v;
	int c, slave = 0, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'M':
			if (number(optarg, -10000, 10000, &measured))
				return usage_error("--measured: expected a level in m, got", optarg);
			break;
		case 'r':
			if (number(optarg, -10000, 10000, &reading))
				return usage_error("--reading: expected a level in m, got", optarg);
			break;
		case 'o':
			if (number(optarg, -10000, 10000, &offset))
				return usage_error("--offset: expected metres, got", optarg);
			break;
		case 'p': profile = optarg; break;
		case 'R': link.rtu_dev = optarg; break;
		case 'T': link.tcp = optarg; break;
		case 'D': dir = optarg; break;
		case 'b':
			if (number(optarg, 300, 4000000, &v))
				return usage_error("--baud: expected a baud rate, got", optarg);
			link.baud = (int)v;
			break;
		case 'P':
			if (strlen(optarg) != 1 || !strchr("NEO", optarg[0]))
				return usage_error("--parity: expected N, E or O, got", optarg);
			link.parity = optarg[0];
			break;
		case 'm':
			if (number(optarg, 10, 60000, &v) || v != floor(v))
				return usage_error("--timeout-ms: expected 10..60000, got", optarg);
			link.timeout_ms = (int)v;
			break;
		case 's':
			if (number(optarg, 1, 247, &v) || v != floor(v))
				return usage_error("--slave: expected 1..247, got", optarg);
			slave = (int)v;
			break;
		case 'h':
			printf("usage: agrictl level-offset --measured M (--reading R [--offset O] |\n"
			       "       --profile NAME (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT)\n"
			       "       --slave N [--timeout-ms 1000] [--profiles-dir DIR])\n");
			return 0;
		default:
			return AGRI_EXIT_USAGE;
		}
	}
	if (isnan(measured))
		return usage_error("needs --measured (the level read on the staff gauge, m)", NULL);
	if (!isnan(reading) == !!profile)
		return usage_error("give either --reading R or --profile with a device", NULL);
	if (profile) {
		if (!!link.rtu_dev == !!link.tcp || !slave)
			return usage_error("--profile needs --slave and one of --rtu or --tcp", NULL);
		rc = device_level(profile, dir, &link, slave, &level);
		if (rc)
			return rc;
		offset = 0;
	} else {
		level = reading;
	}
	/* The station reports level + offset; the new offset makes that measured. */
	printf("level_offset_m %.4f (the sensor gives %.4f m with offset %.4f; the gauge reads %.4f m)\n",
	       offset + measured - level, level, offset, measured);
	return 0;
}
