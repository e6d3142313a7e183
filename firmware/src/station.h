/*
 * The station: ties the bus schedulers (producers of readings), the
 * spool and the MQTT link together on one main thread (docs/station.md).
 *
 *   bus threads --emit--> reading ring --seal--> spool (SQLite, durable)
 *        --pick/publish--> MQTT telemetry ...gateway ack--> spool_ack
 *
 * Also: the retained status, remote config (validate, apply without
 * restart, persist, ack), maintenance mode (a `maintenance` file in
 * state_dir), the hardware watchdog and systemd notify.
 */
#ifndef STATION_STATION_H
#define STATION_STATION_H

#include <stdbool.h>

#include "config.h"

struct station;

/*
 * Creates a station from cfg (ownership passes to the station: it must be
 * malloc'd) loaded from config_path. Opens the spool in cfg->state_dir.
 * Returns 0 or -errno.
 */
int station_new(struct station_config *cfg, const char *config_path,
		struct station **out);
void station_free(struct station *st);

/* Runs until station_request_stop (any thread, async-signal-safe). Seals
 * pending readings on the way out. Returns 0 or -errno. */
int station_run(struct station *st);
void station_request_stop(struct station *st);

/* Polls every sensor once and prints one telemetry-like JSON document on
 * stdout. Returns the number of sensors read successfully, or -errno. */
int station_once(const struct station_config *cfg);

/*
 * The config to run with: the file's, unless state_dir/config.json (the
 * last config applied remotely) has a higher version. *cfg is overwritten
 * only when the persisted one wins. Returns true then.
 */
bool station_config_prefer_persisted(struct station_config *cfg,
				     const char *config_path);

#endif
