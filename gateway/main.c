/*
 * agri-gateway: the hub's daemon (CONTRACT §1). Parses the command line,
 * loads gateway.json (exit 78 on a bad one), runs the gateway until
 * SIGTERM/SIGINT, then stops gracefully within 5 s.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/log.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/upstream.h"

#define EX_USAGE_BAD 2
#define EX_CONFIG 78

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: agri-gateway --config gateway.json [--log-level error|warn|info|debug]\n"
		"\n"
		"Ingests every station's telemetry and status from MQTT into SQLite, exactly\n"
		"once, and acknowledges each batch end to end after it is committed.\n"
		"\n"
		"  -c, --config FILE     gateway configuration (see docs/gateway.md)\n"
		"  -l, --log-level L     error, warn, info (default) or debug\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	static struct gateway_config cfg;
	const char *config = NULL;
	struct agri_err err = {0};
	struct sigaction sa;
	struct gateway *gw;
	struct upstream *up;
	enum log_level lvl;
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:l:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'l':
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "agri-gateway: bad --log-level '%s' (error, warn, info, debug)\n", optarg);
				return EX_USAGE_BAD;
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
			return EX_USAGE_BAD;
		default:
			fprintf(stderr, "agri-gateway: unknown option '%s' (try --help)\n", argv[optind - 1]);
			return EX_USAGE_BAD;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agri-gateway: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EX_USAGE_BAD;
	}
	if (!config) {
		fprintf(stderr, "agri-gateway: --config FILE is required (try --help)\n");
		return EX_USAGE_BAD;
	}
	if (gateway_config_load(config, &cfg, &err) < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		fprintf(stderr, "%s: %s\n", config, msg);
		return EX_CONFIG;
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

	gw = gateway_new(&cfg, &rc);
	if (!gw)
		return 1;
	/* Forwarders (docs/upstream.md): NULL with rc == 0 when none is configured. */
	up = upstream_new(&cfg, &rc);
	if ((!up && rc < 0) || (up && (rc = gateway_add_hook(gw, upstream_hook(up))) < 0)) {
		fprintf(stderr, "agri-gateway: cannot start the upstream forwarders: %s\n",
			strerror(-rc));
		upstream_free(up);
		gateway_free(gw);
		return 1;
	}
	if ((rc = gateway_start(gw)) < 0 || (rc = upstream_start(up)) < 0) {
		fprintf(stderr, "agri-gateway: cannot start: %s\n", strerror(-rc));
		gateway_free(gw);
		upstream_free(up);
		return 1;
	}
	gateway_run(gw, &stop_flag);
	log_info("gateway", "stopping");
	gateway_stop(gw, 4000);
	upstream_stop(up);
	gateway_free(gw);
	upstream_free(up);
	log_info("gateway", "stopped");
	return 0;
}
