/*
 * `agrictl read`: one device read by its profile, each metric decoded with
 * its raw registers, the metrics the station derives from them, the
 * insect each light-trap class counts and status words with their bits
 * (output.c). --watch reads again every few seconds. A read that gets no
 * answer says which of two things it is: the bus works but this slave id
 * does not answer (another id does), or nothing answers on the bus.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/exit.h"
#include "agri/time.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "errtext.h"
#include "modbus_probe.h"
#include "msgs.h"

#define NEIGHBOURS 16 /* ids tried when a slave is silent */

static const char *const cmd = "read";
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fputs("usage: agrictl read --profile NAME (--rtu DEV [--baud N] [--parity N|E|O] | --tcp HOST:PORT)\n"
	      "       --slave N [--timeout-ms 500] [--profiles-dir DIR] [--json]\n"
	      "       [--watch[=S]] [--count N]\n"
	      "  read one device and print each metric decoded, with its raw registers, the\n"
	      "  metrics the station derives (salinity, water level), what each light-trap\n"
	      "  class counts, status words with their bits\n"
	      "  --watch[=S]  read again every S seconds (default 2) until Ctrl-C\n"
	      "  --count N    stop after N reads\n"
	      "  reading a light trap clears its insect counters: the station loses those\n"
	      "exit 0, 1 when a read failed\n", f);
}

/* Slave id did not answer: is it the id or the bus? Prints which. */
static void diagnose_silence(modbus_t *ctx, const struct probe_link *l, int slave,
			     const struct agri_profile *p)
{
	struct agri_read_req reqs[AGRI_PLAN_MAX];
	char name[300];
	int quick = l->rtu_dev ? (int)(9 * probe_char_us(l) / 1000) + 50 : 100;
	unsigned garbled = 0;

	if (agri_plan_reads(p, reqs, AGRI_PLAN_MAX) < 1)
		return;
	probe_link_name(l, name, sizeof(name));
	probe_set_timeout(ctx, quick);
	for (int id = 1; id <= NEIGHBOURS; id++) {
		int rc;

		if (id == slave)
			continue;
		rc = probe_presence(ctx, id, &reqs[0]);
		if (rc == 1) {
			fprintf(stderr, T("agrictl: the bus works: slave %d answers; slave %d does not "
					  "(is --slave right? is that device powered and wired? "
					  "agrictl scan lists the slaves)\n"), id, slave);
			return;
		}
		if (rc < 0 && probe_is_garbled(-rc))
			garbled++;
		if (rc < 0 && probe_is_link_error(-rc))
			break;
	}
	if (garbled)
		fprintf(stderr, T("agrictl: replies come on %s but they are not Modbus at these "
				  "settings: the line settings (--baud, --parity; agrictl scan "
				  "--sweep), or two devices with one id\n"),
			l->rtu_dev ? l->rtu_dev : l->tcp);
	else if (l->rtu_dev)
		fprintf(stderr, T("agrictl: nothing answers on %s at %s (ids 1..%d tried): check "
				  "the power, the wiring (A/B swapped?), the termination and the line "
				  "settings (agrictl scan --sweep)\n"), l->rtu_dev, name, NEIGHBOURS);
	else
		fprintf(stderr, T("agrictl: %s accepts the connection, but no unit id answers "
				  "(ids 1..%d tried)\n"), l->tcp, NEIGHBOURS);
}

int agrictl_read(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"profile", required_argument, 0, 'p'},
		{"slave", required_argument, 0, 's'}, {"watch", optional_argument, 0, 'w'},
		{"count", required_argument, 0, 'n'}, {"help", no_argument, 0, 'h'}, {0}};
	static struct agri_profile prof;
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	struct probe_derived der[AGRI_PROFILE_DERIVED_MAX];
	struct bus_opts b = {0};
	const char *profile = NULL;
	char err[512], ts[AGRI_TIME_LEN + 1];
	double every = 0;
	long v, count = 0;
	int slave = 0, c, rc, result = 0;
	modbus_t *ctx;

	optind = 1;
	stop = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(cmd, c, optarg, &b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		switch (c) {
		case 'p': profile = optarg; break;
		case 's':
			if (cli_int(optarg, 1, 247, false, &v) < 0)
				return cli_usage(cmd, T("--slave: expected 1..247, got \"%s\""), optarg);
			slave = (int)v;
			break;
		case 'w':
			every = 2;
			if (optarg && (util_parse_double(optarg, 0.1, 86400, &every) < 0))
				return cli_usage(cmd, T("--watch: expected seconds, got \"%s\""), optarg);
			break;
		case 'n':
			if (cli_int(optarg, 1, 1000000, false, &count) < 0)
				return cli_usage(cmd, T("--count: expected a number of reads, got \"%s\""),
						 optarg);
			break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if ((rc = bus_check(cmd, &b)) != 0)
		return rc;
	if (!profile || !slave)
		return cli_usage(cmd, "%s", T("read needs --profile NAME and --slave N"));
	if ((rc = cli_profile(b.profiles_dir, profile, &prof)) != 0)
		return rc;
	/* The profile's serial defaults unless given on the command line. */
	bus_defaults_from(&b, &prof);
	if (!b.timeout_given)
		b.link.timeout_ms = 500;
	ctx = probe_open(&b.link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	if (every > 0 || count > 1) {
		for (size_t i = 0; i < prof.n_regs; i++)
			if (prof.regs[i].counter) {
				fprintf(stderr, T("agrictl: every read of %s clears its counters: the "
						  "station loses those counts\n"), prof.name);
				break;
			}
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		if (every <= 0)
			every = 2;
	}
	for (long n = 1; !stop; n++) {
		int64_t t0 = util_mono_ms();

		probe_set_timeout(ctx, b.link.timeout_ms);
		rc = probe_read_device(ctx, slave, &prof, vals);
		if (rc < 0) {
			fprintf(stderr, T("agrictl: slave %d (%s): read failed: %s\n"), slave, profile,
				errtext_modbus(-rc));
			if (rc == -ETIMEDOUT)
				diagnose_silence(ctx, &b.link, slave, &prof);
			if (rc == -ECONNRESET || rc == -EPIPE) /* a TCP peer that closed */
				modbus_close(ctx), modbus_connect(ctx);
			result = 1;
		} else {
			probe_derive(ctx, slave, &prof, vals, der);
			agri_time_format(util_now_ms(), ts, sizeof(ts));
			agrictl_print_read(stdout, &prof, slave, ts, vals, der, b.json);
			fflush(stdout);
		}
		if (every <= 0 || (count && n >= count))
			break;
		while (!stop && util_mono_ms() - t0 < (int64_t)(every * 1000))
			util_sleep_ms(50);
	}
	probe_close(ctx);
	return result;
}
