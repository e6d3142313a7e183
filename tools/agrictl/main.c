/*
 * agrictl: the technicians' tool (docs/interfaces.md §11). This file holds
 * the command line, the bus commands (scan, read), salinity and
 * provision's options; the other commands have a file each (agrictl.h).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/exit.h"
#include "agri/profiles.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/units.h"
#include "agri/util.h"
#include "agrictl.h"
#include "modbus_probe.h"
#include "provision.h"
#include "technician.h"


static void usage(FILE *f)
{
	fputs("usage: agrictl COMMAND [OPTIONS]\n"
	      "\n"
	      "  scan (--rtu DEV [--baud N] [--parity N|E|O] | --tcp HOST:PORT) [--from 1] [--to 247]\n"
	      "       [--timeout-ms 200] [--profiles-dir DIR] [--json]\n"
	      "      find the slaves that answer on a bus and guess each one's profile\n"
	      "  read --profile NAME (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT) --slave N\n"
	      "       [--timeout-ms 500] [--profiles-dir DIR] [--json]\n"
	      "      read one device and print each metric decoded, with its raw registers\n"
	      "  config validate FILE\n"
	      "      validate a station, gateway, rules or profile file (exit 0 ok, 78 invalid)\n"
	      "  config push --station ID --broker URL --key NAME.key [--technician NAME]\n"
	      "       [--username U --password-file F] [--topic-prefix P] [--timeout-s 30] [--ca-file CA]\n"
	      "       [--force] FILE\n"
	      "      sign FILE with the technician's key and publish it as the station's desired config\n"
	      "      (next version), wait for its ack (exit 0 applied, 1 rejected, 3 no ack in time)\n"
	      "  provision --station ID --out DIR --passwd FILE --acl FILE [--broker URL] [--topic-prefix P]\n"
	      "       [--technicians KEYDIR]\n"
	      "      create a station's credentials, broker password/ACL entries and a station.json;\n"
	      "      --technicians copies KEYDIR/NAME.pub to DIR/technicians/: the technicians whose\n"
	      "      signed configs the station applies (none installed: it refuses every pushed config)\n"
	      "  provision --technician NAME --out DIR\n"
	      "      make a technician's signing key pair: DIR/NAME.key (private, 0600) and DIR/NAME.pub\n"
	      "  salinity --ec MS_PER_CM --temp C [--pressure DBAR]\n"
	      "      practical salinity (PSS-78 with the low-salinity extension)\n"
	      "  level-offset --measured M (--reading R [--offset O] | --profile NAME\n"
	      "       (--rtu DEV | --tcp HOST:PORT) --slave N)\n"
	      "      the sensors[].level_offset_m that makes a level sensor report the gauge's M\n"
	      "  dead-letters --db GATEWAY.db [--station ID] [--kind KIND] [--limit 20] [--json]\n"
	      "      what the gateway could not accept: counters per kind, the newest dead letters\n"
	      "  flash IMAGE DEVICE [--station ID --from DIR] [--yes]\n"
	      "      write a station image to an SD card / eMMC / USB disk, read it back; with\n"
	      "      --station, put the station's credentials and station.json (agrictl provision's\n"
	      "      DIR) on its data partition (docs/update.md)\n"
	      "  update push BUNDLE (--station ID ... | --all) [--canary N] --broker URL --key NAME.key\n"
	      "       [--bundles-dir DIR] [--keyring CA.pem] [--timeout-s 1800] [broker options]\n"
	      "      update stations over the air through the hub, follow them to good or rolled-back\n"
	      "  update status --broker URL [--station ID ...] [--json] [broker options]\n"
	      "      the fleet's firmware, system versions and update states\n"
	      "  token new [--out FILE [--group GROUP] [--force]]\n"
	      "      a token for the gateway's HTTP API (32 random bytes, base64url): printed, or\n"
	      "      written to FILE (0600; 0640 with GROUP), never replacing one without --force\n"
	      "\n"
	      "  --help  this text\n",
	      f);
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("agrictl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see agrictl --help)\n", stderr);
	return AGRI_EXIT_USAGE;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int cmd_salinity(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ec", required_argument, 0, 'e'}, {"temp", required_argument, 0, 't'},
		{"pressure", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {0}};
	double ec = NAN, t = NAN, p = 0, sp;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (util_parse_double(optarg, -1e9, 1e9, &ec) < 0 || ec < 0)
				return bad_usage("--ec: expected a conductivity >= 0 in mS/cm, got \"%s\"", optarg);
			break;
		case 't':
			if (util_parse_double(optarg, -1e9, 1e9, &t) < 0 || t < -5 || t > 50)
				return bad_usage("--temp: expected a temperature in °C (-5..50), got \"%s\"", optarg);
			break;
		case 'p':
			if (util_parse_double(optarg, -1e9, 1e9, &p) < 0 || p < 0)
				return bad_usage("--pressure: expected dbar >= 0, got \"%s\"", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return AGRI_EXIT_USAGE;
		}
	}
	if (isnan(ec) || isnan(t))
		return bad_usage("salinity needs --ec and --temp");
	sp = agri_sp_from_c(ec, t, p);
	printf("salinity %.4f (PSS-78 practical salinity, ~g/L) at EC %.4g mS/cm, %.2f °C\n", sp, ec, t);
	return 0;
}

struct bus_opts {
	struct probe_link link;
	const char *profiles_dir;
	bool json;
};

/* Common bus options; returns 1 when consumed, 0 when not, <0 on error. */
static int bus_opt(int c, struct bus_opts *b)
{
	switch (c) {
	case 'R':
		b->link.rtu_dev = optarg;
		return 1;
	case 'T':
		b->link.tcp = optarg;
		return 1;
	case 'b':
		if (parse_int(optarg, 300, 4000000, &b->link.baud) < 0)
			return -bad_usage("--baud: expected a baud rate, got \"%s\"", optarg);
		return 1;
	case 'P':
		if (strlen(optarg) != 1 || !strchr("NEO", optarg[0]))
			return -bad_usage("--parity: expected N, E or O, got \"%s\"", optarg);
		b->link.parity = optarg[0];
		return 1;
	case 'm':
		if (parse_int(optarg, 10, 60000, &b->link.timeout_ms) < 0)
			return -bad_usage("--timeout-ms: expected 10..60000, got \"%s\"", optarg);
		return 1;
	case 'D':
		b->profiles_dir = optarg;
		return 1;
	case 'j':
		b->json = true;
		return 1;
	}
	return 0;
}

#define BUS_LONG_OPTS                                                             \
	{"rtu", required_argument, 0, 'R'}, {"tcp", required_argument, 0, 'T'},   \
	{"baud", required_argument, 0, 'b'}, {"parity", required_argument, 0, 'P'}, \
	{"timeout-ms", required_argument, 0, 'm'},                                \
	{"profiles-dir", required_argument, 0, 'D'}, {"json", no_argument, 0, 'j'}, \
	{"help", no_argument, 0, 'h'}

static int check_link(const struct bus_opts *b)
{
	if (!!b->link.rtu_dev == !!b->link.tcp)
		return bad_usage("give exactly one of --rtu DEV or --tcp HOST:PORT");
	return 0;
}

/* One slave of scan --json: {"slave":N,"profile":NAME|null[,"also_fits":[...]]}. */
static void print_scan_json(int slave, const char *guess, const struct agri_profile *profiles,
			    const int *also, size_t na, bool comma)
{
	char text[2048]; /* 1 + PROBE_ALSO_MAX names of 32 bytes, escaped (6 a byte) */
	struct agri_buf j;

	agri_buf_init(&j, text, sizeof(text));
	agri_buf_printf(&j, "%s{\"slave\":%d,\"profile\":", comma ? "," : "", slave);
	agri_buf_json_str(&j, guess);
	if (na) {
		agri_buf_puts(&j, ",\"also_fits\":[");
		for (size_t k = 0; k < na; k++) {
			agri_buf_puts(&j, k ? "," : "");
			agri_buf_json_str(&j, profiles[also[k]].name);
		}
		agri_buf_puts(&j, "]");
	}
	agri_buf_puts(&j, "}");
	if (agri_buf_end(&j) >= 0)
		fputs(text, stdout);
}

static int cmd_scan(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"from", required_argument, 0, 'f'},
		{"to", required_argument, 0, 'u'}, {0}};
	static struct agri_profile profiles[64];
	char names[64][AGRI_ID_MAX + 1], err[256], file[512];
	struct bus_opts b = {.link = {.timeout_ms = 200}};
	int from = 1, to = 247, c, n, found = 0, rc;
	size_t np = 0;
	modbus_t *ctx;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(c, &b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		if (c == 'f' && parse_int(optarg, 1, 247, &from) == 0)
			continue;
		if (c == 'u' && parse_int(optarg, 1, 247, &to) == 0)
			continue;
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == 'f' || c == 'u')
			return bad_usage("--from/--to: expected a slave id 1..247, got \"%s\"", optarg);
		return AGRI_EXIT_USAGE;
	}
	if ((rc = check_link(&b)) != 0)
		return rc;
	n = profiles_list(b.profiles_dir, names, 64);
	if (n < 0) {
		fprintf(stderr, "agrictl: cannot list profiles in %s: %s\n",
			b.profiles_dir ? b.profiles_dir : profiles_default_dir(), strerror(-n));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct agri_err e;

		if (profiles_load(b.profiles_dir, names[i], &profiles[np], file, sizeof(file), &e) == 0)
			np++;
		else
			fprintf(stderr, "agrictl: skipping %s: %s: %s\n", file, e.path, e.msg);
	}
	ctx = probe_open(&b.link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	if (b.json)
		printf("[");
	for (int s = from; s <= to; s++) {
		int also[PROBE_ALSO_MAX];
		size_t na = 0;
		int g = probe_guess(ctx, s, profiles, np, also, &na);
		const char *guess;

		if (g == -ETIMEDOUT)
			continue;
		guess = g >= 0 ? profiles[g].name : "unknown";
		if (b.json) {
			print_scan_json(s, g >= 0 ? guess : NULL, profiles, also, na, found > 0);
		} else {
			printf("slave %d: %s", s, guess);
			for (size_t k = 0; k < na; k++)
				printf("%s%s", k ? ", " : " (also fits: ", profiles[also[k]].name);
			printf("%s\n", na ? "; same registers, check the label)" : "");
		}
		fflush(stdout);
		found++;
	}
	if (b.json)
		printf("]\n");
	modbus_close(ctx);
	modbus_free(ctx);
	if (!found)
		fprintf(stderr, "agrictl: no slave answered on %s (ids %d..%d)\n",
			b.link.rtu_dev ? b.link.rtu_dev : b.link.tcp, from, to);
	return found ? 0 : 1;
}

static int cmd_read(int argc, char **argv)
{
	static const struct option opts[] = {
		BUS_LONG_OPTS, {"profile", required_argument, 0, 'p'},
		{"slave", required_argument, 0, 's'}, {0}};
	static struct agri_profile prof;
	struct probe_value vals[AGRI_PROFILE_REGS_MAX];
	struct bus_opts b = {0};
	const char *profile = NULL;
	char err[256], file[512], ts[AGRI_TIME_LEN + 1];
	struct agri_err e;
	int slave = 0, c, rc;
	modbus_t *ctx;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((rc = bus_opt(c, &b)) != 0) {
			if (rc < 0)
				return -rc;
			continue;
		}
		if (c == 'p') {
			profile = optarg;
		} else if (c == 's') {
			if (parse_int(optarg, 1, 247, &slave) < 0)
				return bad_usage("--slave: expected 1..247, got \"%s\"", optarg);
		} else if (c == 'h') {
			usage(stdout);
			return 0;
		} else {
			return AGRI_EXIT_USAGE;
		}
	}
	if ((rc = check_link(&b)) != 0)
		return rc;
	if (!profile || !slave)
		return bad_usage("read needs --profile NAME and --slave N");
	rc = profiles_load(b.profiles_dir, profile, &prof, file, sizeof(file), &e);
	if (rc == -ENOENT) {
		fprintf(stderr, "agrictl: no profile \"%s\" (%s)\n", profile, file);
		return AGRI_EXIT_USAGE;
	} else if (rc < 0) {
		fprintf(stderr, "%s: %s%s%s\n", file, e.path, *e.path ? ": " : "", e.msg);
		return AGRI_EXIT_CONFIG;
	}
	/* The profile's serial defaults unless given on the command line. */
	if (!b.link.baud)
		b.link.baud = prof.serial.baud;
	if (!b.link.parity)
		b.link.parity = prof.serial.parity;
	ctx = probe_open(&b.link, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "agrictl: %s\n", err);
		return 1;
	}
	rc = probe_read_device(ctx, slave, &prof, vals);
	modbus_close(ctx);
	modbus_free(ctx);
	if (rc < 0) {
		fprintf(stderr, "agrictl: slave %d (%s): read failed: %s\n", slave, profile,
			modbus_strerror(-rc));
		return 1;
	}
	agri_time_format(util_now_ms(), ts, sizeof(ts));
	agrictl_print_read(stdout, &prof, slave, ts, vals, b.json);
	return 0;
}

static int cmd_provision(int argc, char **argv)
{
	static const struct option opts[] = {
		{"station", required_argument, 0, 's'}, {"out", required_argument, 0, 'o'},
		{"passwd", required_argument, 0, 'p'}, {"acl", required_argument, 0, 'a'},
		{"broker", required_argument, 0, 'b'}, {"topic-prefix", required_argument, 0, 't'},
		{"technician", required_argument, 0, 'T'}, {"technicians", required_argument, 0, 'K'},
		{"help", no_argument, 0, 'h'}, {0}};
	const char *station = NULL, *out = NULL, *passwd = NULL, *acl = NULL;
	const char *technician = NULL, *technicians = NULL;
	const char *broker = "ssl://gateway.local:8883", *prefix = AGRI_TOPIC_PREFIX_DEFAULT;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': station = optarg; break;
		case 'o': out = optarg; break;
		case 'p': passwd = optarg; break;
		case 'a': acl = optarg; break;
		case 'b': broker = optarg; break;
		case 't': prefix = optarg; break;
		case 'T': technician = optarg; break;
		case 'K': technicians = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (technician) {
		if (station || passwd || acl || technicians || !out)
			return bad_usage("provision --technician NAME takes --out DIR only");
		return technician_new(technician, out);
	}
	if (!station || !out || !passwd || !acl)
		return bad_usage("provision needs --station, --out, --passwd and --acl");
	if (!agri_topic_prefix_valid(prefix))
		return bad_usage("--topic-prefix: invalid prefix \"%s\"", prefix);
	/* A malformed id, or one reserved for the hub: exit 2, nothing written. */
	if ((c = agrictl_provision_check_id(station)) != 0)
		return c;
	if (technicians && technician_install(technicians, out) != 0)
		return 1;
	return agrictl_provision(station, out, passwd, acl, broker, prefix);
}

int main(int argc, char **argv)
{
	const char *cmd;

	if (argc < 2) {
		usage(stderr);
		return AGRI_EXIT_USAGE;
	}
	cmd = argv[1];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	argc--;
	argv++;
	if (strcmp(cmd, "scan") == 0)
		return cmd_scan(argc, argv);
	if (strcmp(cmd, "read") == 0)
		return cmd_read(argc, argv);
	if (strcmp(cmd, "salinity") == 0)
		return cmd_salinity(argc, argv);
	if (strcmp(cmd, "provision") == 0)
		return cmd_provision(argc, argv);
	if (strcmp(cmd, "dead-letters") == 0)
		return agrictl_dead_letters(argc, argv);
	if (strcmp(cmd, "token") == 0)
		return agrictl_token(argc, argv);
	if (strcmp(cmd, "level-offset") == 0)
		return agrictl_level_offset(argc, argv);
	if (strcmp(cmd, "update") == 0)
		return agrictl_update(argc, argv);
	if (strcmp(cmd, "flash") == 0)
		return agrictl_flash(argc, argv);
	if (strcmp(cmd, "config") == 0) {
		if (argc >= 2 && strcmp(argv[1], "validate") == 0)
			return agrictl_config_validate(argc - 1, argv + 1);
		if (argc >= 2 && strcmp(argv[1], "push") == 0)
			return agrictl_config_push(argc - 1, argv + 1);
		return bad_usage("config: expected \"validate\" or \"push\"");
	}
	return bad_usage("unknown command \"%s\"", cmd);
}
