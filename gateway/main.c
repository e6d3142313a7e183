/*
 * agri-gateway: the hub's daemon (docs/gateway.md). Parses the command
 * line, loads gateway.json (exit 78 on a bad one), builds the gateway
 * (gateway.h: every room the config asks for), runs it until SIGTERM or
 * SIGINT, then stops gracefully within 5 s. With --import FILE it loads
 * history through the same pipeline and exits (65: a bad file).
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/log.h"
#include "agri/util.h"
#include "gateway/backup.h"
#include "gateway/config.h"
#include "gateway/gateway.h"

#define STOP_BUDGET_MS 3500 /* of the 5 s a SIGTERM allows */

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

/*
 * The database cannot be opened for now: the disk is full, or it answered
 * with an I/O error (a USB disk settling, a full tmpfs), or another
 * process holds it. Exiting would hand the retry to systemd, whose start
 * limit (five starts in ten seconds) stops the unit for good long before
 * an operator frees the disk; the gateway waits instead, with backoff,
 * and says so (docs/gateway.md, "Start").
 */
static bool storage_waits(int rc)
{
	return rc == -EIO || rc == -ENOSPC || rc == -EDQUOT || rc == -EBUSY || rc == -EAGAIN;
}

#define STORAGE_WAIT_MAX_MS 30000

/* Sleeps the attempt's backoff (1 s doubling to 30 s); -EINTR on SIGTERM. */
static int wait_storage(int attempt, const char *why)
{
	int64_t ms = attempt >= 5 ? STORAGE_WAIT_MAX_MS : 1000LL << attempt;

	if (attempt < 5 || attempt % 10 == 0)
		log_warn("gateway", "%s: trying again in %lld s", why, (long long)(ms / 1000));
	for (int64_t t = 0; t < ms; t += 100) {
		if (stop_flag)
			return -EINTR;
		util_sleep_ms(100);
	}
	return stop_flag ? -EINTR : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agri-gateway --config gateway.json [--log-level error|warn|info|debug]\n"
		"       agri-gateway --config gateway.json --import history.csv\n"
		"       agri-gateway backup [--config gateway.json] DEST\n"
		"       agri-gateway restore [--config gateway.json] [-f|--force] SRC\n"
		"       agri-gateway restore -k|--check SRC\n"
		"\n"
		"Ingests every station's telemetry and status from MQTT into SQLite, exactly\n"
		"once, acknowledges each batch end to end after it is committed, raises and\n"
		"notifies alerts, forecasts salinity, forwards readings upstream and serves\n"
		"the HTTP API and dashboard (docs/gateway.md).\n"
		"\n"
		"  -c, --config FILE     gateway configuration (see docs/gateway.md)\n"
		"  -i, --import FILE     import history (CSV: station,sensor,metric,ts,value,unit,q)\n"
		"                        through the same checks, store and rules, then exit\n"
		"  -l, --log-level L     error, warn, info (default) or debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"import", required_argument, NULL, 'i'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct gateway_config cfg;
	struct gateway *gw;
	char why[1024];
	long n;
	const char *config = NULL, *import = NULL;
	struct agri_err err = {0};
	struct sigaction sa;
	enum log_level lvl;
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int c, rc;

	/* The hub's backups and their restore (docs/recovery.md). */
	if (argc >= 2 && (strcmp(argv[1], "backup") == 0 || strcmp(argv[1], "restore") == 0))
		return backup_main(argc - 1, argv + 1);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:i:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'i':
			import = optarg;
			break;
		case 'l':
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "agri-gateway: bad --log-level '%s' (error, warn, info, debug)\n", optarg);
				return AGRI_EXIT_USAGE;
			}
			log_set_level(lvl);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("agri-gateway %s\n", AGRI_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "agri-gateway: option '%s' needs a value\n", argv[optind - 1]);
			return AGRI_EXIT_USAGE;
		default:
			fprintf(stderr, "agri-gateway: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return AGRI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agri-gateway: unexpected argument '%s' (try --help)\n", argv[optind]);
		return AGRI_EXIT_USAGE;
	}
	if (!config) {
		fprintf(stderr, "agri-gateway: --config FILE is required (try --help)\n");
		return AGRI_EXIT_USAGE;
	}
	if (gateway_config_load(config, &cfg, &err) < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		fprintf(stderr, "%s: %s\n", config, msg);
		return AGRI_EXIT_CONFIG;
	}

	/* Messages are allocated on paho's thread and freed on the writer's:
	 * without a cap glibc grows an arena per thread (RSS target 16 MiB). */
	mallopt(M_ARENA_MAX, 2);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (int attempt = 0;; attempt++) {
		gw = gateway_new(&cfg, import ? GATEWAY_IMPORT : GATEWAY_LIVE, &rc, why, sizeof(why));
		if (gw || import || !storage_waits(rc))
			break;
		if (wait_storage(attempt, why) < 0)
			return 0; /* SIGTERM while waiting: nothing started, nothing lost */
	}
	if (!gw) { /* a bad rules file is a bad config: FILE: path: reason, 78 */
		if (rc == -EINVAL)
			fprintf(stderr, "%s\n", why);
		else
			log_error("gateway", "%s", why); /* journald: priority 3 */
		return rc == -EINVAL ? AGRI_EXIT_CONFIG : AGRI_EXIT_FAIL;
	}
	if (import) {
		n = gateway_import(gw, import, why, sizeof(why));
		log_info("import", "%s", why);
		if (n < 0)
			fprintf(stderr, "%s\n", why);
		gateway_free(gw);
		return n < 0 ? (n == -EINVAL ? AGRI_EXIT_DATAERR : AGRI_EXIT_FAIL) : 0;
	}
	if ((rc = gateway_start(gw, why, sizeof(why))) < 0) {
		log_error("gateway", "%s", why);
		gateway_free(gw);
		return AGRI_EXIT_FAIL;
	}
	gateway_run(gw, &stop_flag);
	log_info("gateway", "stopping");
	gateway_stop(gw, STOP_BUDGET_MS);
	gateway_free(gw);
	log_info("gateway", "stopped");
	return 0;
}
