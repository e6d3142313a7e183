/*
 * agrictl's Modbus master: opening a bus (RTU, or TCP with the host name
 * resolved), telling a slave that answers from a line that only carries
 * noise (a reply counts only when it is well-formed Modbus: data, or an
 * exception other than a TCP gateway's 0A/0B), reading one device by its
 * profile with its derived metrics, guessing the profile of a slave that
 * answers (scan), and writing registers (write, calibrate). Runs in
 * agrictl's single thread.
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

/* Opens and connects; returns NULL with a reason a technician can act on
 * in errbuf (the host name, the port, the device node, its permissions). */
modbus_t *probe_open(const struct probe_link *l, char *errbuf, size_t len);
void probe_close(modbus_t *ctx);

/* Sets the response timeout (ms) of an open link. */
void probe_set_timeout(modbus_t *ctx, int ms);

/* The time one character takes on the wire, µs (0 for TCP). */
long probe_char_us(const struct probe_link *l);

/* "9600 8N1", "host:port" */
void probe_link_name(const struct probe_link *l, char *buf, size_t len);

/* True for a libmodbus errno that means a well-formed reply came (an
 * exception other than a gateway's 0A/0B). */
bool probe_is_answer(int e);
/* True for an errno that means bytes came that are not a Modbus reply
 * for this request (CRC, length, slave id, exception code). */
bool probe_is_garbled(int e);
/* True for an errno of a TCP link that is broken (reset, closed). */
bool probe_is_link_error(int e);

/*
 * Sends one read request to slave: 1 when a well-formed reply came, 0
 * when nothing (or a gateway's 0A/0B) did, else -errno of what came
 * (garbled, or the link broke).
 */
int probe_presence(modbus_t *ctx, int slave, const struct agri_read_req *req);

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

/* A derived metric of a read. */
struct probe_derived {
	const struct agri_derived *d;
	double value;
	bool has_value;
	enum agri_quality q; /* its inputs' worst */
};

/*
 * The profile's derived metrics from a read's values (out[0..p->n_derived)),
 * as the station computes them: salinity with the device's compensation
 * coefficient (read from its coef_reg when the profile has one), water
 * level without an offset. Returns 0 (a derived value that cannot be
 * computed has has_value false).
 */
int probe_derive(modbus_t *ctx, int slave, const struct agri_profile *p,
		 const struct probe_value *vals, struct probe_derived *out);

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
 * Returns the index, -ENOENT when the slave answers (well-formed) but fits
 * none, -ETIMEDOUT when it does not answer.
 */
#define PROBE_ALSO_MAX 8
int probe_guess(modbus_t *ctx, int slave, const struct agri_profile *profiles,
		size_t n, int *also, size_t *n_also);

/* Holding registers: reads n words at addr (FC 03), writes words with FC
 * 06 (n == 1) or 16. 0 or -errno. */
int probe_read_holding(modbus_t *ctx, int slave, uint16_t addr, int n, uint16_t *w);
int probe_write(modbus_t *ctx, int slave, int fc, uint16_t addr, const uint16_t *w, int n);

#endif
