/*
 * Injected faults (--fault SLAVE:MODE[:ARG]): what a misbehaving sensor
 * does to its master. Per request: no answer (timeout, dropout), a reply
 * with a corrupted CRC (crc), an exception 04 reply (exception); per value:
 * frozen (stuck), slowly drifting low (drift, fouling) or out of the water
 * (dry). A fault belongs
 * to one slave and never touches the others. Pure decisions: randomness is
 * hashed from (seed, slave, mode, request number).
 */
#ifndef SIM_FAULT_H
#define SIM_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum fault_mode {
	FAULT_TIMEOUT,   /* ARG: rate 0..1 or "always" (default) */
	FAULT_CRC,       /* ARG: rate */
	FAULT_EXCEPTION, /* ARG: rate; replies exception 04 */
	FAULT_STUCK,     /* ARG: simulated hours after start (default 0) */
	FAULT_DRIFT,     /* ARG: percent per simulated day (default 2) [/days it began before the start] */
	FAULT_DROPOUT,   /* ARG: EVERY_S[/FOR_S] wall seconds (default 120/30) */
	FAULT_DRY,       /* ARG: simulated hours after start (default 0); the probe is
			    out of the water: conductivity reads 0 */
};

struct fault {
	int slave;
	enum fault_mode mode;
	double rate;   /* timeout, crc, exception */
	double arg;    /* stuck, dry: hours; drift: %/day; dropout: period s */
	double arg2;   /* dropout: duration s; drift: days it began before the start */
};

/* Parses "SLAVE:MODE[:ARG]". Returns 0, or -EINVAL with a reason in why. */
int fault_parse(const char *spec, struct fault *out, const char **why);

const char *fault_mode_name(enum fault_mode m);

/*
 * True when a rate fault fires for request number n of this slave
 * (deterministic in seed). Only for timeout, crc, exception.
 */
bool fault_fires(const struct fault *f, uint64_t seed, uint64_t n);

/* True when a dropout fault silences the slave elapsed_ms after start. */
bool fault_dropped(const struct fault *f, int64_t elapsed_ms);

#endif
