/*
 * The station's update agent (docs/update.md): signed A/B system updates
 * with RAUC, over the air through the hub.
 *
 * A technician's signed update command arrives on the retained topic
 * <prefix>/<station>/update (same envelope and trust as a pushed config:
 * technicians/NAME.pub beside the config file). The agent downloads the
 * bundle it names from the hub over HTTPS with resume (update_fetch.c),
 * checks its size and SHA-256, has `rauc install` verify its signature
 * (the RAUC keyring) and compatible and write it into the other slot,
 * and reboots. After the boot the station's health check (broker
 * connected, every sensor read once, the spool written, within
 * health_timeout_s) marks the slot good, or marks it bad and reboots into
 * the old slot, which then reports rolled-back. Every step is persisted
 * in STATE_DIR/update/state.json (the data partition survives updates)
 * and reported in the station's status ("update" member, docs/update.md).
 *
 * The agent is configured by update.json beside the station's config
 * file (root's, like technicians/); without it updates are off and every
 * update command is refused (reported as failed).
 *
 * Threads: update_* functions are called from the station's main thread;
 * the download and install run on the agent's own worker thread, which
 * calls the wake hook (any thread may) when the main thread should look.
 */
#ifndef STATION_UPDATE_H
#define STATION_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define UPDATE_FILE "update.json"
#define UPDATE_CMD_MAX 4096 /* a signed update command */

struct update;

/* What the station tells the health check, at each update_tick. */
struct update_health {
	bool connected;    /* MQTT link up */
	bool sensors_read; /* every configured sensor read once since start */
	bool spool_ok;     /* a batch was written to the spool since start */
};

/* update_tick's answer (bits). */
enum {
	UPDATE_DIRTY = 1,     /* the status should be published */
	UPDATE_WANT_SEAL = 2, /* the health check waits for a spool write */
};

/*
 * Opens the agent for a station running cfg from config_path: reads
 * update.json (absent: updates off), the persisted state, and asks rauc
 * which slot booted. A state left by the previous boot is resolved here:
 * a download or install cut by a power loss resumes, a new slot starts
 * its health check, a fallback to the old slot becomes rolled-back.
 * wake(ctx) is called from the worker thread. Returns 0 or -errno; a bad
 * update.json is -EINVAL with *err ("update.json: path: reason").
 */
int update_open(const char *config_path, const struct station_config *cfg,
		void (*wake)(void *), void *ctx, struct update **out,
		struct agri_err *err);
void update_free(struct update *u);

/* The update topic (<prefix>/<station>/update) into buf. */
int update_topic(const struct station_config *cfg, char *buf, size_t len);

/* A message on the update topic (main thread; the caller keeps msg). */
void update_command(struct update *u, const char *msg, size_t len);

/* Advances the state machine (main thread, every loop turn). Returns
 * UPDATE_* bits. */
int update_tick(struct update *u, const struct update_health *h);

/* Milliseconds until update_tick wants to run again (<= cap_ms). */
int64_t update_next_ms(struct update *u, int64_t cap_ms);

/*
 * Appends the status members ,"system":"V","slot":"A","update":{...}
 * to a status document in buf (len bytes, ending in '}'), in place.
 * Returns the new length, or len unchanged when nothing fits or there is
 * nothing to say.
 */
size_t update_status_append(struct update *u, char *buf, size_t len, size_t cap);

#endif
