/*
 * Why a bus or a sensor does not work, in words a technician can act on:
 * the reasons the station puts in its status (buses[].error,
 * sensors[].last_error) and in the config ack of a config that failed its
 * probation (docs/station.md, "Probation"). A timeout says whether the
 * bus works (another sensor on it answers: this slave id does not) or
 * nothing on it answers (power, wiring, line settings). Pure: no I/O, no
 * state; station.c gathers the facts.
 */
#ifndef STATION_HEALTH_H
#define STATION_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* A short text for an errno of opening a link or of a request: "no such
 * device", "permission denied (...)", "connection refused", libmodbus's
 * codes in words. Never NULL. */
const char *health_errno_text(int e);

/* Why bus b is down: "/dev/ttyUSB9: no such device",
 * "10.0.0.5:502: connection refused". e 0: "not opened yet". */
void health_bus_reason(const struct station_bus *b, int e, char *buf, size_t len);

/* What the station knows about sensor s's bus when its poll failed. */
struct health_bus_facts {
	bool bus_open;        /* the link is open */
	int bus_error;        /* why it is not (errno) */
	int others;           /* other sensors on the bus (not in maintenance) */
	int others_answering; /* of them, those with a good read recently */
};

/*
 * The reason of sensor s's failed poll with errno e, e.g.
 * "timeout: slave 9 does not answer; other sensors on lan do (wrong slave
 * id, or its power or cable)" or "timeout: nothing answers on rs485 (...)".
 */
void health_sensor_reason(const struct station_sensor *s, const struct station_bus *b,
			  int e, const struct health_bus_facts *f, char *buf, size_t len);

#endif
