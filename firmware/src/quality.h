/*
 * Reading quality: whether a probe that answers is telling the truth.
 * The bus thread decodes a register (agri_register_decode: ok, or suspect
 * outside min/max), then quality_judge() looks at it against the
 * register's failure modes in its profile and the probe's recent history:
 *
 *   dry         the value is at or below dry_below while the probe's last
 *               reading above it (within a day) said brackish water
 *               (>= 20 x dry_below), or the station's water level is below
 *               the probe; latched until the value comes back
 *   full_scale  pinned at the device's full scale (SenseCAP: 20 mS/cm)
 *   stuck       the same value, to the last digit, stuck_reads times in a
 *               row or for longer than stuck_after_s
 *   range       outside the register's min/max
 *
 * in that order of precedence; each makes the reading "suspect" with that
 * reason (agri_reading.why). Derived metrics inherit their inputs' reason
 * (quality_inherit). Pure: no I/O, no clock (times are the readings').
 * docs/station.md "Readings".
 */
#ifndef STATION_QUALITY_H
#define STATION_QUALITY_H

#include <stdbool.h>
#include <stdint.h>

#include "agri/msg.h"
#include "agri/profile.h"

/* "Brackish" history for the dry check: this many times dry_below. */
#define QUALITY_WET_FACTOR 20
/* How long a wet reading stays the probe's history (ms of reading time). */
#define QUALITY_WET_MEMORY_MS (24LL * 3600 * 1000)

/* One register's history; owned by the bus thread polling it. */
struct quality_state {
	double last;           /* last value, NaN when none */
	int64_t repeats;       /* identical values in a row, the last included */
	int64_t same_since_ms; /* ts of the first of them */
	double wet;            /* the last value above dry_below, NaN when none */
	int64_t wet_ms;        /* its ts */
	bool dry;              /* latched: the probe is out of the water */
};

void quality_init(struct quality_state *st);

/*
 * Judges reading r (has_value, q ok or suspect from the range check) of
 * register reg and updates st. stuck_after_s is the register's limit or
 * its profile's default (0 = off); stuck_reads the station's count limit
 * (0 = off); level_dry is true when the station's water level says this
 * probe is above the water. Sets r->q and r->why; leaves readings without
 * a value alone.
 */
void quality_judge(const struct agri_register *reg, double stuck_after_s,
		   int64_t stuck_reads, bool level_dry, struct quality_state *st,
		   struct agri_reading *r);

/* A derived reading d from inputs a and b (b may be NULL): suspect with
 * the first suspect input's reason. */
void quality_inherit(struct agri_reading *d, const struct agri_reading *a,
		     const struct agri_reading *b);

/* Marks r suspect with reason why (a reading with a value only). */
void quality_mark(struct agri_reading *r, const char *why);

#endif
