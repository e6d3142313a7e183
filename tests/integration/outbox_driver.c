/*
 * A test driver for the outbox and the notification channels
 * (tests/integration/test_gateway_notify.py): stages synthetic alert
 * transitions the way the gateway's writer does (outbox_stage in a
 * transaction, then a wake) and runs the real notifiers over the channels
 * of a gateway.json, so webhook outages and kill -9 can be tested before
 * the alert engine (the notices it would stage are made here).
 *
 *   outbox_driver CONFIG stage FIRST N [--hold]   stage only; --hold: print
 *                                                 "committed", then sleep
 *   outbox_driver CONFIG run [FIRST N] [--gap-ms G]  notifiers (and stage
 *                                                 FIRST..FIRST+N-1, one
 *                                                 transaction each) until
 *                                                 SIGTERM; prints metrics
 * Options: --cap-ms C (backoff cap, default 500), --base-ms B (default 50).
 * Alert i is "salinity/DT-W01/s<i>" on every channel of CONFIG.
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agri/util.h"
#include "agri/msg.h"
#include "gateway/config.h"
#include "notify/notify.h"
#include "notify/outbox.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Alert seq as the alert engine would stage its raise. */
struct notice {
	struct agri_alert alert;
	char en[sizeof(((struct agri_alert *)0)->message)], vi[sizeof(((struct agri_alert *)0)->message)];
	struct outbox_notice no;
};

static void make_notice(struct notice *n, long seq)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->alert.rule, sizeof(n->alert.rule), "salinity");
	snprintf(n->alert.station, sizeof(n->alert.station), "DT-W01");
	snprintf(n->alert.sensor, sizeof(n->alert.sensor), "s%ld", seq);
	snprintf(n->alert.id, sizeof(n->alert.id), "salinity/DT-W01/s%ld", seq);
	snprintf(n->alert.metric, sizeof(n->alert.metric), "salinity");
	snprintf(n->alert.severity, sizeof(n->alert.severity), "critical");
	n->alert.state = AGRI_ALERT_ACTIVE;
	n->alert.value = 4.3;
	n->alert.has_value = true;
	n->alert.threshold = 4.0;
	n->alert.has_threshold = true;
	n->alert.raised_at_ms = n->alert.updated_at_ms = util_now_ms();
	snprintf(n->alert.message, sizeof(n->alert.message),
		 "Salinity 4.3 g/L >= 4.0 g/L at DT-W01 (s%ld)", seq);
	snprintf(n->en, sizeof(n->en), "%s", n->alert.message);
	snprintf(n->vi, sizeof(n->vi), "Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01 (s%ld)", seq);
	n->no = (struct outbox_notice){.alert = &n->alert, .event = "raised", .text_en = n->en,
				       .text_vi = n->vi};
}

static int stage(sqlite3 *db, long seq, const char *const *names, size_t n)
{
	struct notice no;
	int rc;

	make_notice(&no, seq);
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -EBUSY;
	rc = outbox_stage(db, &no.no, names, n);
	if (rc < 0) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

int main(int argc, char **argv)
{
	static struct gateway_config cfg;
	struct notify_channel *nch[NOTIFY_CHANNELS_MAX];
	struct outbox_channel och[NOTIFY_CHANNELS_MAX];
	const char *names[NOTIFY_CHANNELS_MAX];
	struct outbox_options opt = {.backoff_base_ms = 50, .backoff_cap_ms = 500, .poll_ms = 1000};
	struct outbox *ob = NULL;
	struct agri_err err;
	sqlite3 *db = NULL;
	long first = 0, count = 0, gap_ms = 0;
	bool hold = false, run;
	size_t n_names;
	int n = 0, rc, pos = 0;
	char metrics[16384];

	if (argc < 3 || (strcmp(argv[2], "stage") && strcmp(argv[2], "run"))) {
		fprintf(stderr, "usage: %s CONFIG stage|run [FIRST N] [--hold] [--gap-ms G]"
			" [--cap-ms C] [--base-ms B]\n", argv[0]);
		return 64;
	}
	run = strcmp(argv[2], "run") == 0;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--hold") == 0)
			hold = true;
		else if (strcmp(argv[i], "--gap-ms") == 0 && i + 1 < argc)
			gap_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--cap-ms") == 0 && i + 1 < argc)
			opt.backoff_cap_ms = atol(argv[++i]);
		else if (strcmp(argv[i], "--base-ms") == 0 && i + 1 < argc)
			opt.backoff_base_ms = atol(argv[++i]);
		else if (pos == 0 && ++pos)
			first = atol(argv[i]);
		else if (pos == 1 && ++pos)
			count = atol(argv[i]);
	}
	util_now_ms();
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (gateway_config_load(argv[1], &cfg, &err) < 0) {
		fprintf(stderr, "%s: %s: %s\n", argv[1], err.path, err.msg);
		return 78;
	}
	n_names = notify_channel_names(&cfg, names, NOTIFY_CHANNELS_MAX);
	if (sqlite3_open(cfg.db.path, &db) != SQLITE_OK)
		return 1;
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (outbox_init(db) < 0)
		return 1;

	if (run) {
		n = notify_channels_new(&cfg, 2000, nch, NOTIFY_CHANNELS_MAX);
		if (n < 0)
			return 1;
		for (int i = 0; i < n; i++)
			och[i] = (struct outbox_channel){.name = notify_channel_name(nch[i]),
							 .deliver = notify_outbox_deliver,
							 .ctx = nch[i]};
		opt.sync_full = true;
		ob = outbox_new(cfg.db.path, och, (size_t)n, &opt, &rc);
		if (!ob || outbox_start(ob) < 0)
			return 1;
	}
	for (long s = first; s < first + count && !stop; s++) {
		rc = stage(db, s, names, n_names);
		if (rc < 0) {
			fprintf(stderr, "stage %ld: %s\n", s, strerror(-rc));
			return 1;
		}
		outbox_wake(ob); /* what the ingest hook's on_commit does */
		if (gap_ms)
			util_sleep_ms(gap_ms);
	}
	printf("committed %ld\n", count);
	fflush(stdout);
	if (hold)
		for (;;)
			pause();
	while (run && !stop)
		util_sleep_ms(50);
	if (ob) {
		outbox_stop(ob);
		if (outbox_metrics_text(ob, metrics, sizeof(metrics)) > 0)
			fputs(metrics, stdout);
		outbox_free(ob);
	}
	for (int i = 0; i < n; i++)
		notify_channel_free(nch[i]);
	sqlite3_close(db);
	return 0;
}
