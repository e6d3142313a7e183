/*
 * The interface between the upstream core (cursor.c: queue, cursor,
 * threads, backoff, metrics) and one target (pg.c, sta.c). A sink's functions are called by its own thread only,
 * except cancel(), which the main thread calls to abort blocking I/O
 * during shutdown.
 */
#ifndef GATEWAY_UPSTREAM_SINK_H
#define GATEWAY_UPSTREAM_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"
#include "gateway/config.h"

struct sqlite3;
struct claims;

#define UPSTREAM_ERR_MAX 256

/* One queued reading joined to its identity and values. */
struct upstream_row {
	int64_t seq;
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	char metric[AGRI_ID_MAX + 1];
	int64_t ts_ms;
	bool has_value;
	double value;
	char unit[AGRI_UNIT_MAX + 1];
	int q;               /* enum agri_quality as stored: 0 ok 1 suspect 2 error 3 maint */
	char why[AGRI_WHY_MAX + 1]; /* a suspect reading's reason ("dry"), or "" */
	int64_t received_ms;
};

/* What a sink reports back for one send(). The counts are of the rows the
 * cursor passes (all n, or the first `taken` when partial). */
struct upstream_send_result {
	uint64_t rejected;   /* rows the target refused for good */
	uint64_t duplicates; /* rows found already in the target */
	uint64_t skipped;    /* rows another hub sends (forwarding claims) */
	/* Partial progress, not a failure: the cursor passes rows[0..taken)
	 * only, and the sink is asked again after wait_ms (another hub holds
	 * the next row's claim; the claims database says wait). */
	bool partial;
	size_t taken;
	int64_t wait_ms;
};

struct upstream_sink_ops {
	const char *name;
	size_t batch_rows;   /* rows per send() and per cursor update */
	/* Creates the sink's state; db is the sink thread's own connection
	 * (it may keep prepared statements on it). NULL on ENOMEM. */
	void *(*open)(const struct gateway_config *cfg, struct sqlite3 *db);
	/* Connects and checks/creates the remote schema. 0 or -errno with err. */
	int (*connect)(void *s, char *err, size_t errlen);
	/* Sends rows[0..n) in one remote transaction (or as close as the
	 * target allows). 0: every row is now in the target (or rejected for
	 * good, counted in *res); -errno: nothing may be assumed, the rows are
	 * sent again after a backoff. */
	int (*send)(void *s, const struct upstream_row *rows, size_t n,
		    struct upstream_send_result *res, char *err, size_t errlen);
	/* Mirrors station and alert state (optional; NULL when none). Called
	 * every few seconds while connected. 0 or -errno with err. */
	int (*sync)(void *s, char *err, size_t errlen);
	void (*disconnect)(void *s);
	/* Any thread: aborts blocking I/O as soon as possible. */
	void (*cancel)(void *s);
	void (*close)(void *s);
	/* Forwarding claims between two hubs (optional; NULL: the sink needs
	 * none, as PostgreSQL's idempotent inserts). Main thread, before
	 * the sink's thread starts. */
	void (*set_claims)(void *s, struct claims *c);
};

extern const struct upstream_sink_ops upstream_pg_ops;
extern const struct upstream_sink_ops upstream_sta_ops;

/*
 * Whether the SensorThings sink may follow link (an @iot.nextLink found in
 * the page at current; absolute or relative) on the configured server:
 * only with the server's scheme, host and port (default ports filled in),
 * and no credentials it does not have. 0, or -EPERM with why (a line for
 * the log: what differs, cleaned of control characters).
 */
int upstream_sta_link_allowed(const char *server, const char *current, const char *link,
			      char *why, size_t len);

/* "2026-11-22 15:04:05.123+00" (PostgreSQL) into buf (>= 32 bytes). */
void upstream_pg_time(int64_t ms, char *buf, size_t len);

#endif
