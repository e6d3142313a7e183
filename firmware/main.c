/*
 * agri-station: the field station firmware (docs/interfaces.md §1).
 *   agri-station --config station.json [--once] [--log-level L]
 * Reads the config (exit 78 on a bad one), then runs the station until
 * SIGTERM/SIGINT (exit 0), or with --once polls every sensor once and
 * prints the readings as JSON (exit 0, or 1 when every read failed).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "agri/exit.h"
#include "agri/log.h"
#include "station.h"


static void usage(FILE *f)
{
	fprintf(f,
		"usage: agri-station --config FILE [--once] [--log-level error|warn|info|debug]\n"
		"  --config FILE     station.json (see docs/station.md)\n"
		"  --once            poll every sensor once, print the readings as JSON, exit\n"
		"  --log-level L     log threshold (default info)\n"
		"  --help            this text\n"
		"Maintenance mode: create STATE_DIR/maintenance; remove it to leave.\n"
		"Remote configs are applied only when signed by a technician whose public key\n"
		"is installed as technicians/NAME.pub beside FILE (docs/station.md).\n");
}

struct sigctx {
	sigset_t set;
	struct station *st;
};

static void *signal_thread(void *arg)
{
	struct sigctx *c = arg;
	int sig;

	for (;;) {
		if (sigwait(&c->set, &sig) != 0)
			continue;
		log_info("station", "signal received sig=%s", sig == SIGTERM ? "TERM" : "INT");
		station_request_stop(c->st);
		return NULL;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"once", no_argument, NULL, 'o'},
		{"log-level", required_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	struct station_config *cfg;
	struct agri_err err = {{0}, {0}};
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 8];
	struct station *st = NULL;
	struct sigctx sc;
	pthread_t sigthr;
	enum log_level lvl;
	bool once = false;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "c:ol:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'l':
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "agri-station: bad --log-level \"%s\"\n", optarg);
				return AGRI_EXIT_USAGE;
			}
			log_set_level(lvl);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "agri-station: unknown or incomplete option \"%s\"\n",
				argv[optind - 1]);
			return AGRI_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "agri-station: unexpected argument \"%s\"\n", argv[optind]);
		return AGRI_EXIT_USAGE;
	}
	if (!config) {
		fprintf(stderr, "agri-station: --config FILE is required\n");
		return AGRI_EXIT_USAGE;
	}
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return 1;
	if (station_config_load(config, cfg, &err) < 0) {
		agri_err_format(&err, msg, sizeof(msg));
		fprintf(stderr, "%s: %s\n", config, msg);
		free(cfg);
		return AGRI_EXIT_CONFIG;
	}
	if (once) {
		rc = station_once(cfg);
		free(cfg);
		if (rc < 0) {
			fprintf(stderr, "agri-station: --once failed: %s\n", strerror(-rc));
			return 1;
		}
		return rc > 0 ? 0 : 1;
	}
	station_config_prefer_persisted(cfg, config);

	/* Signals go to one thread (sigwait); every other thread blocks them. */
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGTERM);
	sigaddset(&sc.set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = station_new(cfg, config, &st);
	if (rc < 0) {
		fprintf(stderr, "agri-station: cannot start: %s\n", strerror(-rc));
		free(cfg);
		return 1;
	}
	sc.st = st;
	if (pthread_create(&sigthr, NULL, signal_thread, &sc) != 0) {
		station_free(st);
		return 1;
	}
	pthread_detach(sigthr);
	rc = station_run(st);
	station_free(st);
	return rc < 0 ? 1 : 0;
}
