/*
 * The gateway assembled: config -> store -> ingest (writer thread) ->
 * broker (paho threads), plus the main thread's loop (reconnects, WAL
 * checkpoints, periodic stats). main.c is a thin shell around this so
 * tests and benchmarks run the same core in-process.
 */
#ifndef GATEWAY_GATEWAY_H
#define GATEWAY_GATEWAY_H

#include <signal.h>

#include "gateway/config.h"
#include "core/health.h"
#include "core/ingest.h"

struct gateway;
struct store;

/* Opens the store and prepares the pipeline (nothing connects yet).
 * cfg must outlive the gateway. Returns NULL with *err. */
struct gateway *gateway_new(const struct gateway_config *cfg, int *err);
/* Attaches a pipeline stage (alerts, forwarders) before gateway_start(). */
int gateway_add_hook(struct gateway *gw, const struct ingest_hook *hook);
/* Starts the writer thread and the broker connection. */
int gateway_start(struct gateway *gw);
/* Starts only the writer thread, with no broker connection (history
 * import: agri-gateway --import). */
int gateway_start_local(struct gateway *gw);
/* Calls fn(ctx) on the main thread each time the broker connection comes
 * up (republish retained state the broker may have lost). Before
 * gateway_run(). */
void gateway_on_reconnect(struct gateway *gw, void (*fn)(void *ctx), void *ctx);
/* Runs the main loop until *stop becomes non-zero. Main thread. */
void gateway_run(struct gateway *gw, volatile sig_atomic_t *stop);
/* Graceful stop within budget_ms: commit and ack what is queued,
 * disconnect (keeping the broker session). */
void gateway_stop(struct gateway *gw, int64_t budget_ms);
void gateway_free(struct gateway *gw);

struct gateway_health *gateway_health(struct gateway *gw);
struct ingest *gateway_ingest(struct gateway *gw);
struct store *gateway_store(struct gateway *gw);

#endif
