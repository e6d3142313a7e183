/*
 * One Modbus bus (a serial port or a Modbus TCP connection) and its
 * scheduler: one thread, the single master on the link. Each sensor is
 * polled at its own interval on a fixed-rate schedule, staggered into its
 * own slot so that a sensor that times out costs only its own slot; a
 * sensor that keeps failing is backed off (its missed polls still emit
 * error readings). Readings go to a sink; counters to per-sensor stats.
 * After bus_start() the thread allocates nothing.
 */
#ifndef STATION_BUS_H
#define STATION_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/msg.h"
#include "config.h"

/* Per-sensor counters; written by the bus thread, read by anyone. */
struct bus_sensor_stats {
	atomic_uint_fast64_t reads_ok, reads_failed, skipped;
	atomic_uint_fast64_t timeouts, crc_errors, exceptions, other_errors;
	atomic_int_fast64_t last_ok_ms; /* wall clock of the last good read */
	/* The last failed poll: its errno (libmodbus's EMB* codes included;
	 * ENOTCONN while the bus is down) and wall-clock time; 0 = none. */
	atomic_int last_errno;
	atomic_int_fast64_t last_error_ms;
	/* The sensor's last good water level (um) and its reading time (0 =
	 * none): the buses of the station read it to tell a dry probe. */
	atomic_int_fast64_t level_um, level_ts_ms;
};

/* Where readings go. Called on the bus thread with n <= BUS_READINGS_MAX
 * readings of one poll of one sensor; may block (back-pressure). */
struct bus_sink {
	void (*emit)(void *ctx, const struct agri_reading *r, size_t n);
	void *ctx;
};

#define BUS_READINGS_MAX (AGRI_PROFILE_REGS_MAX + AGRI_PROFILE_DERIVED_MAX)

struct bus;

/*
 * Creates bus `index` of cfg (cfg must outlive the bus). stats is indexed
 * by the sensor's index in cfg->sensors; maint is read before each poll.
 * Returns NULL on allocation failure.
 */
struct bus *bus_new(const struct station_config *cfg, size_t index,
		    struct bus_sensor_stats *stats, const atomic_bool *maint,
		    struct bus_sink sink);
/* Starts the scheduler thread. Returns 0 or -errno. */
int bus_start(struct bus *b);
/* Asks the thread to stop after the poll in progress and joins it. */
void bus_stop(struct bus *b);
void bus_free(struct bus *b);
/* Monotonic ms of the thread's last loop turn (watchdog health). */
int64_t bus_heartbeat_ms(const struct bus *b);

/* The link's state, for the status and a config's probation. */
struct bus_link_health {
	bool open;       /* connected now */
	bool ever_open;  /* since bus_new */
	int error;       /* why it is down: the errno of the last open or I/O */
	int64_t since_ms; /* wall clock of the last change (0: never tried) */
};
/* Any thread. */
void bus_link_health(const struct bus *b, struct bus_link_health *out);
/* Polls every sensor of the bus once on the calling thread (--once).
 * Returns the number of sensors read successfully. */
int bus_poll_once(struct bus *b);

#endif
