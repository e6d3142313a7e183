/*
 * The hubs of a province as this gateway hears them (docs/dashboard.md,
 * "Hubs"; docs/api.md, GET /api/v1/hubs): every gateway's retained status
 * <prefix>/hub/<client id>/status (its own included, back from its
 * broker), which URL each station says it is on (its status' `broker`),
 * and the newest reading each hub has stored from the stations on each
 * URL, which it says in its status so that the others can tell how far
 * behind they are.
 *
 * Everything here is in memory and bounded: at most HUBS_MAX hubs,
 * HUBS_STATIONS_MAX stations, HUBS_URLS_MAX station-facing URLs, a hub
 * status of at most HUBS_PAYLOAD_MAX bytes. Hub statuses are what the
 * broker holds: untrusted, parsed strictly, refused whole when malformed.
 *
 * Threads: hubs_offer() on paho's thread, the ingest hook on the writer,
 * hubs_status_fields() on the main loop, hubs_json() on HTTP workers; one
 * mutex guards it all (every operation is a bounded scan).
 */
#ifndef GATEWAY_HUBS_H
#define GATEWAY_HUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/topic.h"
#include "gateway/config.h"

#define HUBS_MAX 64
#define HUBS_STATIONS_MAX 4096
#define HUBS_URLS_MAX 8            /* station-facing URLs (a province has two) */
#define HUBS_URL_MAX 256           /* as a station status' broker */
#define HUBS_PAYLOAD_MAX 8192
#define HUBS_SILENT_MS (3 * 60000) /* three missed statuses: not up */
#define HUBS_IN_STEP_MS (2 * 60000) /* statuses go out once a minute */

struct ingest_hook;

/* Per station-facing URL: the newest reading time a hub has stored from
 * the stations on it. */
struct hub_newest {
	char url[HUBS_URL_MAX];
	int64_t ms;
};

/* One hub status, parsed. */
struct hub_status {
	char id[GW_NAME_MAX + 1];     /* its client id: the topic's level */
	char hub_id[AGRI_ID_MAX + 1]; /* ha.hub_id, "" without ha */
	char fw[AGRI_ID_MAX + 1];
	char station_url[HUBS_URL_MAX]; /* "" when it does not say */
	bool online;                  /* "state": "online" (else its Last Will) */
	bool db_writable;
	int64_t ts_ms;                /* when it wrote it (its clock) */
	int64_t newest_ms;            /* "newest_reading"; 0 when absent */
	size_t n_newest;
	struct hub_newest newest[HUBS_URLS_MAX];
};

/*
 * Is topic <prefix>/hub/<id>/status? Copies the id (1-GW_NAME_MAX of
 * [A-Za-z0-9_.-]) into id[GW_NAME_MAX + 1]. 1 yes, 0 another topic, -1 a
 * hub status topic with an id that is not valid.
 */
int hubs_topic(const char *prefix, const char *topic, size_t topic_len, char *id);

/*
 * Parses a hub status published on the topic of hub id. Returns 0, or
 * -EBADMSG with why (a line) when it is not one: over HUBS_PAYLOAD_MAX,
 * not JSON, v not 1, "hub" not the topic's, no state or ts. Optional
 * fields that are malformed are left out, not fatal.
 */
int hubs_parse(const char *id, const void *payload, size_t len, struct hub_status *out,
	       char *why, size_t why_len);

struct hubs *hubs_new(const struct gateway_config *cfg);
void hubs_free(struct hubs *h);

/*
 * A message on paho's thread: 1 when it is a hub status (taken, valid or
 * not; an empty payload removes the hub), 0 when it is another topic.
 */
int hubs_offer(struct hubs *h, const char *topic, size_t topic_len, const void *payload,
	       size_t len);

/* The ingest hook (station statuses, telemetry): writer thread. */
const struct ingest_hook *hubs_hook(struct hubs *h);

/* Station-side updates, also for tests (the hook calls these). */
void hubs_station_status(struct hubs *h, const char *station, bool online, const char *url);
void hubs_station_reading(struct hubs *h, const char *station, int64_t newest_ms);

/* This hub's status fields, with the leading comma:
 * ,"station_url":..,"newest_reading":..,"newest_by_url":{..}. Returns the
 * length or -ENOSPC. */
int hubs_status_fields(struct hubs *h, char *buf, size_t len);

/* The GET /api/v1/hubs document at now_ms into buf. Returns its length
 * or -ENOSPC. */
int hubs_json(struct hubs *h, int64_t now_ms, char *buf, size_t len);

#endif
