/*
 * Device profiles (docs/interfaces.md §10, docs/profiles.md): one JSON
 * file per device model, read by one generic decoder. A profile names the
 * device's serial defaults, its registers (function code, wire address,
 * type, word order, scale, offset, unit, valid range) and derived metrics
 * (salinity via PSS-78).
 *
 * Profile keys beyond docs/interfaces.md §10's example (all optional):
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
 * What a register measures and how it fails (issue 19):
 *   metric "specific_conductance": conductivity the device compensated to
 *              "ref_c" (required) with "coef_pct_per_c" (%/°C, linear;
 *              absent = unknown), whose live value the station may read
 *              from "coef_reg": {"fc", "addr", "type", "order", "scale"}
 *   register "full_scale": the value the device saturates at
 *   register "dry_below": below it, the probe is out of the water when
 *              the recent history says brackish (>= 20 x dry_below)
 *   "stuck_after_s" (profile default, or per register): the same value
 *              for longer than this is a flatline
 *   "expect": [{"fc", "addr", "value", "metric"}]: u16 words the device
 *              must hold (parameter IDs, unit codes), checked at start-up
 *   "init", "before_read": [{"fc", "addr", "count", "values", "wait_ms",
 *              "role"}]: commands the device needs (Yosemitech's start
 *              measurement, wipers), before the first poll / every poll
 *   derived "fn": "level": water level from a pressure (or depth)
 *              register, optional temperature and "air" pressure
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
#define AGRI_PROFILE_CMDS_MAX 4     /* per list: init, before_read */
#define AGRI_CMD_VALUES_MAX 8
#define AGRI_PROFILE_EXPECT_MAX 8
#define AGRI_PLAN_MAX 16
#define AGRI_MODBUS_MAX_REGS 125

struct agri_serial {
	int baud;      /* 0 = unspecified */
	char parity;   /* 'N', 'E', 'O' */
	int data_bits; /* 7 or 8 */
	int stop_bits; /* 1 or 2 */
};

/* A device word read once at start-up rather than polled. */
struct agri_reg_ref {
	uint8_t fc;
	uint16_t addr;
	enum agri_regtype type;
	enum agri_order order;
	double scale;
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
	bool state;      /* "kind": "state": a flag or status word, not a measure */
	bool stable;
	char sensor_suffix[AGRI_ID_MAX + 1]; /* "" or the "sensor_suffix" key */
	/* Specific conductance (metric "specific_conductance"): */
	bool specific;
	double ref_c;    /* reference temperature, °C */
	double coef_pct; /* linear compensation, %/°C; NaN = unknown */
	bool has_coef_reg;
	struct agri_reg_ref coef_reg; /* where the device keeps it (%/°C after scale) */
	/* Failure modes: */
	double full_scale; /* the device saturates here */
	bool has_full_scale;
	double dry_below;  /* 0 = no dry check */
	double stuck_after_s; /* 0 = no time-based flatline check */
};

enum agri_derived_fn {
	AGRI_DERIVED_PSS78, /* from: [(specific) conductivity mS/cm, temperature °C] */
	AGRI_DERIVED_LEVEL, /* from: [pressure or depth, (temperature °C)], air */
};

struct agri_derived {
	char metric[AGRI_ID_MAX + 1];
	enum agri_derived_fn fn;
	size_t n_from; /* 2 for pss78, 1 or 2 for level */
	char from[2][AGRI_ID_MAX + 1];
	char air[AGRI_ID_MAX + 1]; /* level: barometric pressure metric, or "" */
	char unit[AGRI_UNIT_MAX + 1];
	/* Resolved by the parser: */
	int from_reg[2], air_reg; /* indices into regs[], -1 when absent */
	bool depth;               /* level: from[0] is a depth, not a pressure */
	double in_factor;         /* level: Pa (or m) per unit of from[0] */
	double air_factor;        /* level: Pa per unit of air */
};

/* Commands a device needs: a read or write sent as is, its reply ignored. */
enum agri_cmd_role {
	AGRI_CMD_OTHER = 0,
	AGRI_CMD_START, /* the device measures only after it (Yosemitech) */
	AGRI_CMD_WIPE,  /* runs a wiper or brush */
};

struct agri_command {
	uint8_t fc;       /* 3, 4 (count registers), 6 (one value), 16 (values) */
	uint16_t addr;
	uint16_t count;   /* 3/4: registers read; 6: 1; 16: n values (0 allowed) */
	uint16_t values[AGRI_CMD_VALUES_MAX];
	uint32_t wait_ms; /* after sending, before the device is read */
	enum agri_cmd_role role;
};

/* A word the device must hold for the map to be right. */
struct agri_expect {
	uint8_t fc;
	uint16_t addr;
	uint16_t value;
	char metric[AGRI_ID_MAX + 1]; /* the register it vouches for; "" = all */
};

struct agri_read_req {
	uint8_t fc;
	uint16_t addr;
	uint16_t count;
};

#define AGRI_PROFILE_SETTINGS_MAX 8
#define AGRI_SETTING_CODES_MAX 12

/*
 * A register a technician writes (agrictl write, agrictl calibrate): the
 * device's slave id or baud rate, a calibration coefficient or point.
 * Names with a meaning: "slave_id", "baud" (the helpers of agrictl write),
 * "cal_slope", "cal_offset" (a linear correction of metric: value =
 * slope x raw + offset); any setting with a standard is a calibration
 * point: written while the probe sits in that standard solution.
 */
struct agri_setting {
	char name[AGRI_ID_MAX + 1];
	uint8_t fc;            /* 6 (one register) or 16 */
	uint16_t addr;
	enum agri_regtype type;
	enum agri_order order;
	double scale;          /* the word(s) written: value x scale, as type */
	double min, max;       /* allowed values (before scale) */
	bool has_min, has_max;
	size_t n_codes;        /* with codes, value codes[i] is written as i */
	double codes[AGRI_SETTING_CODES_MAX];
	bool dangerous;        /* agrictl write asks for --yes */
	bool readable;         /* FC 03 at addr reads it back */
	bool after_restart;    /* "applies": "restart": taken at the next power-up */
	char metric[AGRI_ID_MAX + 1]; /* calibration: the register it corrects */
	bool has_standard;
	double standard;       /* a calibration point: the standard, metric's unit */
	uint32_t wait_ms;      /* after writing, before the device is read */
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
	double stuck_after_s; /* default for registers that set none; 0 = off */
	size_t n_init, n_before;
	struct agri_command init[AGRI_PROFILE_CMDS_MAX];
	struct agri_command before_read[AGRI_PROFILE_CMDS_MAX];
	size_t n_expect;
	struct agri_expect expect[AGRI_PROFILE_EXPECT_MAX];
	size_t n_settings;
	struct agri_setting settings[AGRI_PROFILE_SETTINGS_MAX];
};

/*
 * Parses and validates a profile document ("settings": the registers a
 * technician writes, struct agri_setting). Checks: required profile (valid
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

/*
 * Evaluates derived metric d of profile p (pure; docs/units.md):
 *   pss78: in[0] the conductivity register's value, in[1] the
 *          temperature. For specific conductance the compensation is
 *          undone with coef_pct (%/°C; NaN: the profile's), and PSS-78
 *          runs at the water temperature; with no coefficient known it
 *          runs at ref_c. p = 0.
 *   level: in[0] pressure (or depth), in[1] temperature (NaN: 25 °C),
 *          air the barometric pressure (NaN: a vented, gauge sensor):
 *          (p - p_air) / (rho(t) g) + offset_m, or depth + offset_m.
 * Returns 0 with *out, or -EDOM when an input is missing (NaN) or the
 * result is not finite. coef_pct is ignored for level, offset_m for pss78.
 */
int agri_derive(const struct agri_profile *p, const struct agri_derived *d,
		const double in[2], double air, double coef_pct, double offset_m,
		double *out);

/* The setting called name, or NULL. */
const struct agri_setting *agri_profile_setting(const struct agri_profile *p,
						const char *name);

/*
 * The words that write value to setting s: its code with codes, else
 * value x scale packed as s->type in s->order. Returns the number of words
 * (1..4) written to words, or -ERANGE when value is outside min..max, not
 * one of the codes, or does not fit the type.
 */
int agri_setting_encode(const struct agri_setting *s, double value, uint16_t *words);

/* The value words (as read back) hold. Returns 0 or -ERANGE (a code the
 * profile does not know). */
int agri_setting_decode(const struct agri_setting *s, const uint16_t *words,
			double *value);

/* Builds the raw request PDU of command c (function code first, no
 * address or checksum) into pdu (>= 6 + 2 * AGRI_CMD_VALUES_MAX bytes).
 * Returns its length. */
size_t agri_command_pdu(const struct agri_command *c, uint8_t *pdu);

#endif
