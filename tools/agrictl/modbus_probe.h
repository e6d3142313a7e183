/*
 * agrictl's Modbus side: opening a bus (RTU or TCP), reading one device by
 * its profile, and guessing the profile of a slave that answers (scan).
 * Runs in agrictl's single thread.
 */
#ifndef AGRICTL_MODBUS_PROBE_H
#define AGRICTL_MODBUS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modbus/modbus.h>

#include "agri/profile.h"

struct probe_link {
	const char *rtu_dev; /* or NULL */
	int baud;
	char parity;
	const char *tcp;     /* "host:port" or NULL */
	int timeout_ms;
};

/* Opens and connects; returns NULL with a message in errbuf. */
modbus_t *probe_open(const struct probe_link *l, char *errbuf, size_t len);

/* One decoded register of a device read. */
struct probe_value {
	const struct agri_register *reg;
	uint16_t words[4];
	double value;
	bool has_value;
	enum agri_quality q;
};

/*
 * Reads every register of profile p from slave by its read plan, after
 * sending the profile's init and before_read commands (waiting their
 * wait_ms: a Yosemitech Y520 measures 10 s after its start). Fills
 * vals[0..p->n_regs). Returns 0, or -errno of the first failed request
 * (libmodbus codes: EMBXILADD etc. are > 0 errno values, returned negated).
 */
int probe_read_device(modbus_t *ctx, int slave, const struct agri_profile *p,
		      struct probe_value *vals);

/*
 * Guesses which of profiles[0..n) slave is: a profile fits when every
 * planned read succeeds and every value decodes within its range; among
 * fits, the one with the most registers wins (the first on a tie). Other
 * fits with as many registers go to also[0..*n_also) (at most
 * PROBE_ALSO_MAX; also may be NULL): devices whose maps differ only in what
 * a register means (Yosemitech Y504 vs Y520 at 0x2600) cannot be told
 * apart by reading, only by their values' ranges.
 * Counter registers ("kind": "counter", the light trap's clear-on-read
 * insect counts) are not read, so a scan never steals a station's counts.
 * Returns the index, -ENOENT when the slave answers but fits none,
 * -ETIMEDOUT when it does not answer.
 */
#define PROBE_ALSO_MAX 8
int probe_guess(modbus_t *ctx, int slave, const struct agri_profile *profiles,
		size_t n, int *also, size_t *n_also);

#endif
