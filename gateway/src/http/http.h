/*
 * The gateway's HTTP API and dashboard (docs/interfaces.md §7, §13; docs/api.md):
 * libmicrohttpd with a small pool of threads, each with its own read-only
 * SQLite connection on the store (WAL: reads run beside the ingest writer
 * and never block it). Every response is built in memory inside one short
 * read transaction and then sent without holding the database, so a slow
 * client costs a connection slot (bounded, timed out), never a snapshot or
 * a thread. Writes (alert acknowledgement) are never done here: they go
 * through hooks to the module that owns the state (the alert engine).
 */
#ifndef GATEWAY_HTTP_H
#define GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "gateway/config.h"
#include "core/health.h"

struct http_server;

/* What an acknowledgement did (written by the ack_alert hook). */
struct http_ack_result {
	char state[16]; /* the alert's state after: "acknowledged", ... */
	bool changed;   /* false when it was acknowledged already */
};

/*
 * Optional callbacks into the rest of the gateway. Every hook is called
 * on an HTTP worker thread, possibly on several at once; NULL = absent.
 */
struct http_hooks {
	void *ctx;
	/*
	 * Acknowledges alert id on behalf of who (a short name, "api" when the
	 * request names nobody). Returns 0 with *res written; -ENOENT when no
	 * such alert exists (404); -EINVAL when the alert cannot be
	 * acknowledged in its state (409); -EBUSY/-EAGAIN (503); any other
	 * negative errno (500). Absent: every acknowledgement answers 503.
	 */
	int (*ack_alert)(void *ctx, const char *id, const char *who,
			 struct http_ack_result *res);
	/*
	 * Appends extra Prometheus text (sink backlogs, engine counters) to
	 * buf[0..len), NUL-terminated. Returns the bytes written or a
	 * negative errno (the section is then left out).
	 */
	int (*metrics)(void *ctx, char *buf, size_t len);
	/*
	 * The §13 forecast document of station/metric. Returns its length in
	 * buf, or -ENODATA with the reason (plain text) in buf (404), or
	 * another negative errno (500). Absent: read from the store's
	 * v_forecasts view when it exists (docs/api.md).
	 */
	int (*forecast)(void *ctx, const char *station, const char *metric,
			char *buf, size_t len);
	/*
	 * The GET /api/v1/hubs document (core/hubs.h) into buf. Returns its
	 * length or a negative errno (500). Absent: no hubs heard.
	 */
	int (*hubs)(void *ctx, char *buf, size_t len);
};

/*
 * Starts serving cfg->http.listen (cfg->http.enabled must be true). cfg,
 * health and hooks (copied) must outlive the server; health may be NULL
 * (healthz then reports 503). Returns the server, or NULL with *err:
 * -EADDRINUSE, -EADDRNOTAVAIL (bad host), -ENOMEM, -EIO. Main thread.
 */
struct http_server *http_start(const struct gateway_config *cfg,
			       struct gateway_health *health,
			       const struct http_hooks *hooks, int *err);

/* Stops accepting, finishes in-flight requests (they are short: built in
 * memory) and frees the server; accepts NULL. Main thread. */
void http_stop(struct http_server *srv);

/* The port actually bound (useful with port 0 in tests). */
int http_port(const struct http_server *srv);

#endif
