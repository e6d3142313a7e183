/*
 * The gateway, whole (docs/gateway.md): gateway_new() builds every room the
 * config asks for — the store, the ingest and the broker link, the alert
 * engine, the notification channels, the forwarders, the forecasts and the
 * HTTP API — so that the daemon (main.c: argv, signals, exit codes), the
 * tests and the benchmarks run the same gateway. Nothing connects before
 * gateway_start().
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"

struct gateway;

enum gateway_mode {
	GATEWAY_LIVE,   /* MQTT, notifications, forwarders, forecasts, HTTP */
	GATEWAY_IMPORT, /* history through the same store, rules and forecasts,
			 * quietly: no MQTT, no notifications, no forwarders, no HTTP */
};

/*
 * Opens the store and builds the rooms (cfg must outlive the gateway).
 * Returns NULL with *err (a negative errno; -EINVAL: a bad rules file) and
 * why[] one line for the operator ("rules.json: rules[2].above: expected a
 * number", "cannot open the database agri.db: ...").
 */
struct gateway *gateway_new(const struct gateway_config *cfg, enum gateway_mode mode, int *err,
			    char *why, size_t why_len);
/* GATEWAY_LIVE: starts the writer and acker threads, the broker
 * connection, the notifiers, the forwarders, the forecaster and the HTTP
 * API. Returns 0 or a negative errno with why[]. */
int gateway_start(struct gateway *gw, char *why, size_t why_len);
/* GATEWAY_IMPORT: loads a history CSV (station,sensor,metric,ts,value,
 * unit,q) through the pipeline. Returns the readings stored or a negative
 * errno (-EINVAL: a bad file, naming its line in msg); msg[] says what
 * happened either way. */
long gateway_import(struct gateway *gw, const char *file, char *msg, size_t len);
/* Runs the main loop (reconnects, checkpoints, the hub's status, stats)
 * until *stop becomes non-zero. Main thread. */
void gateway_run(struct gateway *gw, volatile sig_atomic_t *stop);
/* Graceful stop within budget_ms: commit and ack what is queued,
 * disconnect (keeping the broker session), let the notifiers and
 * forwarders finish their current item. */
void gateway_stop(struct gateway *gw, int64_t budget_ms);
/* Stops (if needed) and frees; accepts NULL. */
void gateway_free(struct gateway *gw);

#endif
