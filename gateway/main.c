/*
 * agri-gateway: the hub's daemon (CONTRACT §1). Parses the command line,
 * loads gateway.json (exit 78 on a bad one), assembles the pipeline
 * (store → alerts → notifications, forwarders, forecasts; HTTP API), runs
 * it until SIGTERM/SIGINT, then stops gracefully within 5 s. With
 * --import FILE it loads history through the same pipeline and exits.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/log.h"
#include "alerts/alerting.h"
#include "gateway/config.h"
#include "forecast/forecasting.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "core/import.h"
#include "notify/notify.h"
#include "notify/outbox.h"
#include "upstream/upstream.h"

#define EX_USAGE_BAD 2
#define EX_CONFIG 78
#define METRICS_PART_MAX 16384

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
		"       agri-gateway --config gateway.json --import history.csv\n"
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

/* Everything beyond the core ingest, each optional. */
struct parts {
	struct gateway *gw;
	struct alerting *alerts;
	struct notify_channel *chans[NOTIFY_CHANNELS_MAX];
	size_t n_chans;
	struct outbox *outbox;
	struct ingest_hook outbox_hook;
	struct upstream *up;
	struct forecasting *fc;
	struct http_server *http;
};

static int ack_alert(void *ctx, const char *id, const char *who, struct http_ack_result *res)
{
	struct parts *p = ctx;

	return p->alerts ? alerting_ack(p->alerts, id, who, res) : -ENOENT;
}

/* /metrics beyond the ingest counters: engine, outbox, forwarders. */
static int metrics(void *ctx, char *buf, size_t len)
{
	struct parts *p = ctx;
	size_t pos = 0;
	int n;

	if (p->alerts && (n = alerting_metrics_text(p->alerts, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (p->outbox && (n = outbox_metrics_text(p->outbox, buf + pos, len - pos)) > 0)
		pos += (size_t)n;
	if (p->up && (n = upstream_metrics_text(p->up, buf + pos, len - pos)) > 0 &&
	    (size_t)n < len - pos)
		pos += (size_t)n;
	return (int)pos;
}

static int forecast_doc(void *ctx, const char *station, const char *metric, char *buf,
			size_t len)
{
	struct parts *p = ctx;

	return forecasting_http(p->fc, station, metric, buf, len);
}

static void republish(void *ctx)
{
	struct parts *p = ctx;

	if (p->alerts)
		alerting_republish(p->alerts);
	if (p->fc)
		forecasting_republish(p->fc);
}

/* Builds the optional parts and attaches their hooks. Returns 0, or an
 * exit code after printing why. */
static int assemble(struct parts *p, const struct gateway_config *cfg, bool import)
{
	struct agri_err e = {0};
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int rc = 0;

	if (cfg->rules_file[0]) {
		p->alerts = alerting_new(cfg, gateway_store(p->gw), gateway_ingest(p->gw), &e, &rc);
		if (!p->alerts) {
			agri_err_format(&e, msg, sizeof(msg));
			fprintf(stderr, "%s: %s\n", cfg->rules_file, msg);
			return rc == -EINVAL ? EX_CONFIG : 1;
		}
		gateway_add_hook(p->gw, alerting_hook(p->alerts));
		alerting_set_quiet(p->alerts, import);
	}
	if (!import) {
		struct outbox_channel oc[NOTIFY_CHANNELS_MAX];
		int n = notify_channels_new(cfg, NOTIFY_TIMEOUT_MS_DEFAULT, p->chans, NOTIFY_CHANNELS_MAX);

		if (n < 0) {
			fprintf(stderr, "agri-gateway: cannot set up the notification channels: %s\n",
				strerror(-n));
			return 1;
		}
		p->n_chans = (size_t)n;
		for (size_t i = 0; i < p->n_chans; i++)
			oc[i] = (struct outbox_channel){.name = notify_channel_name(p->chans[i]),
							.deliver = notify_outbox_deliver,
							.ctx = p->chans[i]};
		if (p->n_chans) {
			struct outbox_options oo = {.sync_full = cfg->db.sync_full};

			p->outbox = outbox_new(cfg->db.path, oc, p->n_chans, &oo, &rc);
			if (!p->outbox) {
				fprintf(stderr, "agri-gateway: cannot open the outbox: %s\n", strerror(-rc));
				return 1;
			}
			outbox_hook(p->outbox, &p->outbox_hook);
			gateway_add_hook(p->gw, &p->outbox_hook);
		}
		/* Forwarders (docs/upstream.md): NULL with rc == 0 when none is configured. */
		p->up = upstream_new(cfg, &rc);
		if ((!p->up && rc < 0) || (p->up && (rc = gateway_add_hook(p->gw, upstream_hook(p->up))) < 0)) {
			fprintf(stderr, "agri-gateway: cannot start the upstream forwarders: %s\n",
				strerror(-rc));
			return 1;
		}
	}
	p->fc = forecasting_new(cfg, gateway_ingest(p->gw), &rc);
	if (!p->fc && rc < 0) {
		fprintf(stderr, "agri-gateway: cannot set up forecasts: %s\n", strerror(-rc));
		return 1;
	}
	if (p->fc) {
		if ((rc = forecasting_attach(p->fc, gateway_store(p->gw))) < 0)
			return 1;
		gateway_add_hook(p->gw, forecasting_hook(p->fc));
		forecasting_set_quiet(p->fc, import);
		if (p->alerts)
			alerting_on_peak(p->alerts, forecasting_on_peak, p->fc);
	}
	return 0;
}

static int start_rest(struct parts *p, const struct gateway_config *cfg)
{
	int rc;

	if ((p->outbox && (rc = outbox_start(p->outbox)) < 0) ||
	    (rc = upstream_start(p->up)) < 0 || (p->fc && (rc = forecasting_start(p->fc)) < 0)) {
		fprintf(stderr, "agri-gateway: cannot start: %s\n", strerror(-rc));
		return 1;
	}
	if (cfg->http.enabled) {
		struct http_hooks hooks = {.ctx = p, .ack_alert = ack_alert, .metrics = metrics,
					   .forecast = p->fc ? forecast_doc : NULL};

		p->http = http_start(cfg, gateway_health(p->gw), &hooks, &rc);
		if (!p->http) {
			fprintf(stderr, "agri-gateway: cannot serve HTTP on %s: %s\n", cfg->http.listen,
				strerror(-rc));
			return 1;
		}
	}
	return 0;
}

static void teardown(struct parts *p)
{
	http_stop(p->http);
	forecasting_stop(p->fc);
	gateway_stop(p->gw, 3500);
	upstream_stop(p->up);
	outbox_stop(p->outbox);
	gateway_free(p->gw);
	forecasting_free(p->fc);
	upstream_free(p->up);
	outbox_free(p->outbox);
	for (size_t i = 0; i < p->n_chans; i++)
		notify_channel_free(p->chans[i]);
	alerting_free(p->alerts);
}

static int run_import(struct parts *p, const char *file)
{
	char msg[512];
	long n;
	int rc;

	if ((rc = gateway_start_local(p->gw)) < 0) {
		fprintf(stderr, "agri-gateway: cannot start: %s\n", strerror(-rc));
		return 1;
	}
	n = import_csv(gateway_ingest(p->gw), file, msg, sizeof(msg));
	log_info("import", "%s", msg);
	if (n < 0)
		fprintf(stderr, "%s\n", msg);
	return n < 0 ? (n == -EINVAL ? 65 : 1) : 0;
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
	static struct parts p;
	const char *config = NULL, *import = NULL;
	struct agri_err err = {0};
	struct sigaction sa;
	enum log_level lvl;
	char msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int c, rc;

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

	p.gw = gateway_new(&cfg, &rc);
	if (!p.gw)
		return 1;
	if ((rc = assemble(&p, &cfg, import != NULL)) != 0) {
		teardown(&p);
		return rc;
	}
	if (import) {
		rc = run_import(&p, import);
		teardown(&p);
		return rc;
	}
	gateway_on_reconnect(p.gw, republish, &p);
	if ((rc = gateway_start(p.gw)) < 0) {
		fprintf(stderr, "agri-gateway: cannot start: %s\n", strerror(-rc));
		teardown(&p);
		return 1;
	}
	if ((rc = start_rest(&p, &cfg)) != 0) {
		teardown(&p);
		return rc;
	}
	gateway_run(p.gw, &stop_flag);
	log_info("gateway", "stopping");
	teardown(&p);
	log_info("gateway", "stopped");
	return 0;
}
