/*
 * Hub catch-up (docs/ha.md, "Catch-up"): anti-entropy between the two
 * gateways of a province, over the bridge. The bridge's queue is the only
 * copy for the other hub of what a gateway has acked; a broker killed with
 * a backlog, or a cut longer than the queue, loses it there for good. So
 * each gateway with ha publishes, every ha.catchup_every_s (jittered), a
 * digest of what it holds over the last ha.catchup_window_h hours, up to
 * ha.catchup_settle_s ago: per station, the number of readings and a hash
 * of its (sensor, metric, hour, count, sum of ts) groups. The peer
 * computes the same over the same span; a station that differs on two
 * digests running gets its per-hour detail asked for, and each hour where
 * the peer holds more (or as many, differently) is asked for and replayed
 * as telemetry readings on the peer's replay topic. The replay is stored
 * like telemetry (validated, the station's budgets and clock window, the
 * readings table's key making repeats no-ops) and fed to the hooks as late
 * readings, but never acked and never counted as a seq.
 *
 *   <prefix>/hub/<hub_id>/catchup/digest   {"v":1,"hub":..,"from":ms,"to":ms,
 *                                           "stations":[[id,n,"hash"],..]}
 *   <prefix>/hub/<hub_id>/catchup/request  {"v":1,"hub":..,"peer":..,"want":"detail",
 *                                           "station":..,"from":ms,"to":ms}
 *                                          {..,"want":"hour","station":..,"hour":ms}
 *   <prefix>/hub/<hub_id>/catchup/detail   {"v":1,"hub":..,"peer":..,"station":..,
 *                                           "from":ms,"to":ms,"hours":[[ms,n,"hash"],..]}
 *   <prefix>/hub/<hub_id>/catchup/done     {"v":1,"hub":..,"peer":..,"station":..,
 *                                           "hour":ms,"readings":n}
 *   <prefix>/hub/<hub_id>/catchup/replay   a telemetry batch (docs/interfaces.md §3)
 *
 * Only gateways (the hub listener's gateway account) and the bridge
 * account may write under <prefix>/hub/ (broker/acl.hub; a station's ACL
 * names only its own topics and "hub" is no station's id). Everything is
 * bounded: a digest's stations, the inbox, the requests in flight, the
 * readings served per hour and the requests served per second.
 *
 * Threads: catchup_offer() on paho's thread (copies into the bounded
 * inbox); one catch-up thread does the rest with its own read-only SQLite
 * connection, and stores replays through ingest_call() (the writer).
 */
#ifndef GATEWAY_CATCHUP_H
#define GATEWAY_CATCHUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/topic.h"
#include "core/ingest.h"
#include "gateway/config.h"

struct catchup;

#define CU_HOUR_MS 3600000LL
#define CU_STATIONS_MAX 4096     /* stations in a digest */
#define CU_DIGEST_BYTES_MAX (256 * 1024)
#define CU_HOURS_MAX 721         /* hours in a detail (catchup_window_h <= 720) */

/* NULL (and *err 0) without ha or with catchup off. */
struct catchup *catchup_new(const struct gateway_config *cfg, struct ingest *in,
			    const struct ingest_publisher *pub, int *err);
int catchup_start(struct catchup *c);
void catchup_stop(struct catchup *c);
void catchup_free(struct catchup *c);

/* paho's thread: 1 when topic is a catch-up topic (taken, or dropped when
 * it is our own, the inbox is full or the kind unknown), 0 when not. */
int catchup_offer(struct catchup *c, const char *topic, size_t topic_len,
		  const void *payload, size_t len);

/* /metrics lines; the hub status' "catchup":{..} member (with its comma). */
int catchup_metrics_text(struct catchup *c, char *buf, size_t len);
int catchup_status_fields(struct catchup *c, char *buf, size_t len);

/* --- pure pieces (tests/unit/test_gateway_catchup.c) --------------------- */

/* One (sensor, metric, hour) group: its count and the sum of its
 * readings' ts offsets in the hour (exact integers: both hubs that hold
 * the same readings get the same, whatever order they came in). */
uint64_t cu_group_hash(const char *sensor, const char *metric, int64_t hour_ms,
		       uint64_t n, uint64_t ts_sum);

struct cu_entry {
	char key[AGRI_ID_MAX + 1]; /* a station (digest) */
	int64_t hour_ms;           /* an hour (detail) */
	uint64_t n;
	uint64_t hash;             /* the wrapping sum of its groups' hashes */
};

/* A digest or a detail, as sent or received. */
struct cu_digest {
	char hub[AGRI_ID_MAX + 1];
	char peer[AGRI_ID_MAX + 1];    /* detail: the hub that asked */
	char station[AGRI_ID_MAX + 1]; /* detail */
	int64_t from_ms, to_ms;
	struct cu_entry *e;            /* caller's array */
	size_t n, cap;
};

/* Encodes a digest (station == "") or a detail; returns the length or
 * -ENOSPC. */
int cu_digest_encode(const struct cu_digest *d, char *buf, size_t len);
/* Decodes, strictly (size, schema, ids, counts < 2^53, at most d->cap
 * entries, entries sorted and unique, hours aligned within [from, to)).
 * Returns 0 or -EBADMSG with why. detail: expects a detail. */
int cu_digest_decode(const char *json, size_t len, bool detail, struct cu_digest *d,
		     char *why, size_t why_len);

/* Where ours lacks what theirs holds: for each entry of theirs whose
 * (n, hash) differs from ours (absent: n 0) and whose n is at least ours,
 * its index in out (at most out_cap). Both sorted by key (digest) or
 * hour (detail). Returns how many. */
size_t cu_digest_lacking(const struct cu_digest *ours, const struct cu_digest *theirs,
			 bool by_hour, size_t *out, size_t out_cap);

#endif
