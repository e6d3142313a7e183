/*
 * Device profiles (CONTRACT.md §10): one JSON file per device model, read
 * by one generic decoder. A profile names the device's serial defaults,
 * its registers (function code, wire address, type, word order, scale,
 * offset, unit, valid range) and derived metrics (salinity via PSS-78).
 *
 * Profile keys beyond the contract's example (all optional):
 *   "serial": {"baud", "parity": "N"|"E"|"O", "data_bits", "stop_bits"}
 *   "max_gap": registers a read may span that the plan does not need
 *              (default 0: the device answers only documented registers)
 *   "max_regs": registers per request (default 125, the Modbus limit)
 *   "even_align": true when requests must start at an even address and
 *              read an even count (YSI ODO RTU)
 *   "probe": {"fc", "addr", "count"}: a read that tells this device apart
 *              (agrictl scan); default: the first planned request
 *   register "doc_ref": free text (vendor's register number)
 *   register "kind": "measure" (default) | "counter" (per-interval count,
 *              e.g. insect counts cleared on read) | "state" (0/1 flags)
 *   register "stable": true when the value is expected to repeat (state,
 *              rated values): never flagged as stuck; implied by "counter"
 *              and "state"
 *   register "sensor_suffix": [A-Za-z0-9_-]{1,16}; the reading's sensor is
 *              "<sensor name>-<suffix>" (one sensor per class, e.g. the
 *              light trap's "insect_count" per species). Metrics must be
 *              unique per suffix.
 * See docs/profiles.md.
 */
#ifndef AGRI_PROFILE_H
#define AGRI_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/err.h"
#include "agri/msg.h"
#include "agri/regmap.h"
#include "agri/topic.h"

#define AGRI_PROFILE_REGS_MAX 48
#define AGRI_PROFILE_DERIVED_MAX 8
#define AGRI_PLAN_MAX 16
#define AGRI_MODBUS_MAX_REGS 125

struct agri_serial {
	int baud;      /* 0 = unspecified */
	char parity;   /* 'N', 'E', 'O' */
	int data_bits; /* 7 or 8 */
	int stop_bits; /* 1 or 2 */
};

struct agri_register {
	char metric[AGRI_ID_MAX + 1];
	uint8_t fc; /* 3 (holding) or 4 (input) */
	uint16_t addr;
	enum agri_regtype type;
	enum agri_order order;
	double scale;  /* default 1 */
	double offset; /* default 0 */
	char unit[AGRI_UNIT_MAX + 1];
	double min, max; /* valid range of the scaled value */
	bool has_min, has_max;
	bool counter;    /* "kind": "counter" */
	bool stable;
	char sensor_suffix[AGRI_ID_MAX + 1]; /* "" or the "sensor_suffix" key */
};

enum agri_derived_fn {
	AGRI_DERIVED_PSS78, /* from: [conductivity mS/cm, temperature °C] */
};

struct agri_derived {
	char metric[AGRI_ID_MAX + 1];
	enum agri_derived_fn fn;
	char from[2][AGRI_ID_MAX + 1];
	char unit[AGRI_UNIT_MAX + 1];
};

struct agri_read_req {
	uint8_t fc;
	uint16_t addr;
	uint16_t count;
};

struct agri_profile {
	char name[AGRI_ID_MAX + 1];
	char vendor[64];
	char model[64];
	struct agri_serial serial;
	int max_gap;
	int max_regs;
	bool even_align;
	bool has_probe;
	struct agri_read_req probe;
	size_t n_regs;
	struct agri_register regs[AGRI_PROFILE_REGS_MAX];
	size_t n_derived;
	struct agri_derived derived[AGRI_PROFILE_DERIVED_MAX];
};

/*
 * Parses and validates a profile document. Checks: required profile (valid
 * id), registers (1..48); each register's metric (snake_case id), fc 3|4,
 * addr 0..65535 and addr + words - 1 <= 65535, type, order (only for
 * multi-word types), scale non-zero finite, min <= max; no two registers
 * overlapping in the same fc space; no duplicate metric; derived inputs name
 * existing metrics. Unknown keys are errors. Returns 0 or -EINVAL/-EBADMSG
 * with *err ("registers[2].type: unknown type \"u24\"").
 */
int agri_profile_parse(const char *json, size_t len, struct agri_profile *out,
		       struct agri_err *err);

/*
 * Plans the fewest read requests covering every register: per function
 * code, registers sorted by address are coalesced while the span stays
 * within max_regs and the hole between them is at most max_gap; with
 * even_align, requests start even and have even counts. Returns the
 * number of requests written to reqs (<= cap), or -ENOSPC.
 */
int agri_plan_reads(const struct agri_profile *p, struct agri_read_req *reqs,
		    size_t cap);

/*
 * Where a register's words are in the data read by a plan: the request
 * index and word offset within it. Returns 0 or -ENOENT.
 */
int agri_plan_locate(const struct agri_read_req *reqs, size_t n_reqs,
		     const struct agri_register *r, size_t *req_index,
		     size_t *word_offset);

/*
 * Decodes one register from its words: value = raw * scale + offset, then
 * range-checks into *q (AGRI_Q_OK or AGRI_Q_SUSPECT; a NaN/Inf sentinel
 * gives AGRI_Q_ERROR with has_value false). Returns 0.
 */
int agri_register_decode(const struct agri_register *r, const uint16_t *words,
			 double *value, bool *has_value, enum agri_quality *q);

/* The raw register value for a scaled value (inverse of the above). */
double agri_register_raw(const struct agri_register *r, double value);

/* Finds a register by metric among those without a sensor_suffix (the
 * ones derived metrics may name); NULL when absent. */
const struct agri_register *agri_profile_find(const struct agri_profile *p,
					      const char *metric);

#endif
