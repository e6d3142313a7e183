/*
 * agrictl: the technicians' tool (docs/interfaces.md §11). This file holds
 * the command line: the list of commands (--help), --version, and the
 * small commands salinity and provision; every other command has a file
 * (agrictl.h) and its own --help.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/topic.h"
#include "agri/units.h"
#include "agri/util.h"
#include "agrictl.h"
#include "cli.h"
#include "msgs.h"
#include "provision.h"
#include "technician.h"

static void usage(FILE *f)
{
	fputs("usage: agrictl COMMAND [OPTIONS]   (agrictl COMMAND --help: the command's own)\n"
	      "\n"
	      "  status (ID... | --all) [--broker URL] [--username U --password-file F] [--ca-file CA]\n"
	      "       [--topic-prefix P] [--db GATEWAY.db] [--json]\n"
	      "      a station's health: online since when, versions, probation, spool, each bus\n"
	      "      and sensor with its last error, open alerts\n"
	      "  scan (--rtu DEV [--baud N] [--parity N|E|O] [--sweep] | --tcp HOST:PORT) [--from 1]\n"
	      "       [--to 247] [--timeout-ms MS] [--profiles-dir DIR] [--json] [--emit-config FILE]\n"
	      "      find the slaves that answer on a bus and guess each one's profile\n"
	      "  read --profile NAME (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT) --slave N\n"
	      "       [--timeout-ms 500] [--profiles-dir DIR] [--json] [--watch[=S]] [--count N]\n"
	      "      read one device: each metric decoded with its raw registers, derived metrics\n"
	      "  write (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT) --slave N\n"
	      "       (--profile NAME --set NAME=VALUE | --register ADDR --value V[,V...] [--fc 6|16])\n"
	      "       [--list] [--yes] [--timeout-ms 500] [--profiles-dir DIR]\n"
	      "      write holding registers: a device's slave id, baud rate (profile settings)\n"
	      "  calibrate --station ID --sensor NAME --standard VALUE [--metric M] (--profile NAME\n"
	      "       (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT) --slave N [--samples 3] |\n"
	      "       --before V [--after V]) [--by NAME] [--note TEXT] [--db GATEWAY.db]\n"
	      "       [--timeout-ms 500] [--profiles-dir DIR]\n"
	      "      calibrate a sensor in a standard solution and record it in the gateway's database\n"
	      "  maint ID on|off [--sensor NAME]... --key NAME.key [--technician NAME] [--broker URL]\n"
	      "       [--username U --password-file F] [--ca-file CA] [--topic-prefix P] [--timeout-s 30]\n"
	      "      put a station or sensors into maintenance (readings q \"maint\", no alerts)\n"
	      "  config validate FILE\n"
	      "      validate a station, gateway, rules or profile file: every error, FILE:LINE:COLUMN\n"
	      "  config push --station ID --key NAME.key [--technician NAME] [--broker URL]\n"
	      "       [--username U --password-file F] [--topic-prefix P] [--timeout-s 30] [--ca-file CA]\n"
	      "       [--force] FILE\n"
	      "      sign FILE with the technician's key and publish it as the station's desired config\n"
	      "      (next version), wait for its ack (exit 0 applied, 1 rejected, 3 no ack in time)\n"
	      "  provision --station ID --out DIR --passwd FILE --acl FILE [--broker URL] [--topic-prefix P]\n"
	      "       [--technicians KEYDIR] [--force]\n"
	      "      create a station's credentials, broker password/ACL entries and a station.json;\n"
	      "      --technicians copies KEYDIR/NAME.pub to DIR/technicians/: the technicians whose\n"
	      "      signed configs the station applies (none installed: it refuses every pushed config)\n"
	      "  provision --technician NAME --out DIR\n"
	      "      make a technician's signing key pair: DIR/NAME.key (private, 0600) and DIR/NAME.pub\n"
	      "  provision --peer-hub URL --passwd FILE --acl FILE [--bridge-conf FILE]\n"
	      "       [--bridge-user NAME] [--ca-file CA] [--topic-prefix P] [--force]\n"
	      "      bridge this hub's broker to the province's other hub (mqtts://HOST:PORT): the\n"
	      "      bridge config (conf.d/agri-bridge.conf beside FILE) and its account and ACL\n"
	      "  salinity --ec MS_PER_CM --temp C [--pressure DBAR]\n"
	      "      practical salinity (PSS-78 with the low-salinity extension)\n"
	      "  level-offset --measured M (--reading R [--offset O] | --profile NAME\n"
	      "       (--rtu DEV [--baud N] [--parity P] | --tcp HOST:PORT) --slave N [--timeout-ms MS])\n"
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
	      "  recipients list|validate|add|remove FILE ...\n"
	      "       list FILE [--json] | validate FILE | remove FILE --name NAME |\n"
	      "       add FILE --name NAME [--display TEXT] [--role TEXT] [--lang vi|en] [--sms +84...]\n"
	      "       [--email ADDR] [--webhook CHANNEL] [--station GLOB]... [--district NAME]...\n"
	      "       [--crop CROP]... [--level G_L]... [--no-critical] [--pest KEY]... [--rule GLOB]...\n"
	      "       [--kind KIND]... [--min-severity SEV] [--at-once SEV,...] [--quiet HH:MM-HH:MM]\n"
	      "       [--bulletin HH:MM|off] [--replace]\n"
	      "      the people the gateway notifies: who hears what, how and when (docs/notify.md)\n"
	      "  notify preview --db GATEWAY.db --recipients FILE --person NAME [--from T] [--to T]\n"
	      "       [--json]\n"
	      "      what NAME would have received: the gateway's journal replayed through FILE\n"
	      "\n"
	      "  --help     this text\n"
	      "  --version  agrictl's version\n"
	      "Messages are in Vietnamese when the locale is (LANG=vi_VN.UTF-8), else English.\n",
	      f);
}

static int cmd_salinity(int argc, char **argv)
{
	static const struct option opts[] = {
		{"ec", required_argument, 0, 'e'}, {"temp", required_argument, 0, 't'},
		{"pressure", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {0}};
	static const char *const cmd = "salinity";
	double ec = NAN, t = NAN, p = 0, sp;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
			if (util_parse_double(optarg, -1e9, 1e9, &ec) < 0 || ec < 0)
				return cli_usage(cmd, T("--ec: expected a conductivity >= 0 in mS/cm, got "
							"\"%s\""), optarg);
			break;
		case 't':
			if (util_parse_double(optarg, -1e9, 1e9, &t) < 0 || t < -5 || t > 50)
				return cli_usage(cmd, T("--temp: expected a temperature in °C (-5..50), got "
							"\"%s\""), optarg);
			break;
		case 'p':
			if (util_parse_double(optarg, -1e9, 1e9, &p) < 0 || p < 0)
				return cli_usage(cmd, T("--pressure: expected dbar >= 0, got \"%s\""), optarg);
			break;
		case 'h':
			puts("usage: agrictl salinity --ec MS_PER_CM --temp C [--pressure DBAR]\n"
			     "  practical salinity (PSS-78 with the low-salinity extension) of an in-situ\n"
			     "  conductivity (mS/cm) at a water temperature (°C, ITS-90)");
			return 0;
		default:
			return AGRI_EXIT_USAGE;
		}
	}
	if (isnan(ec) || isnan(t))
		return cli_usage(cmd, "%s", T("salinity needs --ec and --temp"));
	sp = agri_sp_from_c(ec, t, p);
	printf(T("salinity %.4f (PSS-78 practical salinity, ~g/L) at EC %.4g mS/cm, %.2f °C\n"), sp,
	       ec, t);
	return 0;
}

static int cmd_provision(int argc, char **argv)
{
	static const struct option opts[] = {
		{"station", required_argument, 0, 's'}, {"out", required_argument, 0, 'o'},
		{"passwd", required_argument, 0, 'p'}, {"acl", required_argument, 0, 'a'},
		{"broker", required_argument, 0, 'b'}, {"topic-prefix", required_argument, 0, 't'},
		{"technician", required_argument, 0, 'T'}, {"technicians", required_argument, 0, 'K'},
		{"peer-hub", required_argument, 0, 'P'}, {"bridge-conf", required_argument, 0, 'C'},
		{"bridge-user", required_argument, 0, 'U'}, {"ca-file", required_argument, 0, 'A'},
		{"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0}};
	static const char *const cmd = "provision";
	const char *station = NULL, *out = NULL, *passwd = NULL, *acl = NULL;
	const char *technician = NULL, *technicians = NULL;
	const char *broker = NULL, *prefix = AGRI_TOPIC_PREFIX_DEFAULT;
	struct peer_opts peer = {0};
	bool force = false;
	int c;

	optind = 1;
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
		case 'P': peer.peer = optarg; break;
		case 'C': peer.conf_file = optarg; break;
		case 'U': peer.user = optarg; break;
		case 'A': peer.ca_file = optarg; break;
		case 'f': force = true; break;
		case 'h':
			puts("usage: agrictl provision --station ID --out DIR --passwd FILE --acl FILE\n"
			     "       [--broker URL] [--topic-prefix P] [--technicians KEYDIR] [--force]\n"
			     "       agrictl provision --technician NAME --out DIR\n"
			     "       agrictl provision --peer-hub URL --passwd FILE --acl FILE\n"
			     "       [--bridge-conf FILE] [--bridge-user NAME] [--ca-file CA]\n"
			     "       [--topic-prefix P] [--force]\n"
			     "  a station's credentials (DIR/station.pass, its entry in the broker's password\n"
			     "  file, its ACL block) and a station.json to start from; --technicians copies\n"
			     "  KEYDIR/NAME.pub to DIR/technicians/. A DIR that holds a station.json or\n"
			     "  station.pass already is refused unless --force (a new password: the old one\n"
			     "  stops working; the station.json is written anew).\n"
			     "  --technician NAME: a technician's signing key pair, DIR/NAME.key (0600) and\n"
			     "  DIR/NAME.pub; an existing key is never replaced\n"
			     "  --peer-hub URL (mqtts://HOST:PORT, or tcp://HOST:PORT): bridge this hub's\n"
			     "  broker to the province's other hub (docs/ha.md). Writes the bridge config,\n"
			     "  --bridge-conf (default conf.d/agri-bridge.conf beside --passwd; 0640, it holds\n"
			     "  the bridge's password), and the bridge account's entry and ACL block in\n"
			     "  --passwd and --acl, which the peer hub needs too. --bridge-user: bridge-NAME\n"
			     "  (default bridge-<host name>); --ca-file: the CA of the peer's certificate\n"
			     "  (default certs/ca.crt beside --passwd). Run it on one hub only. An existing\n"
			     "  bridge config is replaced only with --force");
			return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (peer.peer) {
		if (station || out || technician || technicians || broker)
			return cli_usage(cmd, "%s",
					 T("provision --peer-hub takes no --station, --out, --broker, --technician(s)"));
		if (!passwd || !acl)
			return cli_usage(cmd, "%s", T("provision --peer-hub needs --passwd and --acl"));
		if (!agri_topic_prefix_valid(prefix))
			return cli_usage(cmd, T("--topic-prefix: invalid prefix \"%s\""), prefix);
		peer.passwd_file = passwd;
		peer.acl_file = acl;
		peer.prefix = prefix;
		peer.force = force;
		return agrictl_provision_peer(&peer);
	}
	if (peer.conf_file || peer.user || peer.ca_file)
		return cli_usage(cmd, "%s", T("--bridge-conf, --bridge-user, --ca-file need --peer-hub"));
	if (!broker)
		broker = "ssl://gateway.local:8883";
	if (technician) {
		if (station || passwd || acl || technicians || !out)
			return cli_usage(cmd, "%s", T("provision --technician NAME takes --out DIR only"));
		return technician_new(technician, out);
	}
	if (!station || !out || !passwd || !acl)
		return cli_usage(cmd, "%s", T("provision needs --station, --out, --passwd and --acl"));
	if (!agri_topic_prefix_valid(prefix))
		return cli_usage(cmd, T("--topic-prefix: invalid prefix \"%s\""), prefix);
	/* A malformed id, or one reserved for the hub: exit 2, nothing written. */
	if ((c = agrictl_provision_check_id(station)) != 0)
		return c;
	if ((c = agrictl_provision_check_out(out, force)) != 0)
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
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
		printf("agrictl %s (%s)\n", AGRI_VERSION, AGRI_BOARD);
		return 0;
	}
	argc--;
	argv++;
	if (strcmp(cmd, "status") == 0)
		return agrictl_status(argc, argv);
	if (strcmp(cmd, "scan") == 0)
		return agrictl_scan(argc, argv);
	if (strcmp(cmd, "read") == 0)
		return agrictl_read(argc, argv);
	if (strcmp(cmd, "write") == 0)
		return agrictl_write(argc, argv);
	if (strcmp(cmd, "calibrate") == 0)
		return agrictl_calibrate(argc, argv);
	if (strcmp(cmd, "maint") == 0)
		return agrictl_maint(argc, argv);
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
	if (strcmp(cmd, "config") == 0)
		return agrictl_config(argc, argv);
	if (strcmp(cmd, "recipients") == 0)
		return agrictl_recipients(argc, argv);
	if (strcmp(cmd, "notify") == 0)
		return agrictl_notify(argc, argv);
	return cli_usage(NULL, T("unknown command \"%s\""), cmd);
}
