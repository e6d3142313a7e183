/*
 * One simulated slave: a device profile (its register map), the model
 * parameters that feed it, its faults, and the little state a real device
 * keeps (insect counters cleared on read). device_request() answers one
 * Modbus PDU the way the real device would: FC 03/04 reads encoded with
 * the profile's type, word order, scale and offset; exception 01 for a
 * function the device lacks, 02 for addresses it does not have, 03 for a
 * bad count. The transport (RTU or TCP framing) lives in server.c.
 */
#ifndef SIM_DEVICE_H
#define SIM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/profile.h"
#include "fault.h"
#include "model.h"

#define DEVICE_FAULTS_MAX 8

/* Exception codes (Modbus application protocol §7). */
#define MB_EX_ILLEGAL_FUNCTION 0x01
#define MB_EX_ILLEGAL_ADDRESS 0x02
#define MB_EX_ILLEGAL_VALUE 0x03
#define MB_EX_DEVICE_FAILURE 0x04
#define MB_EX_GATEWAY_NO_RESPONSE 0x0B

enum device_action {
	DEVICE_REPLY,   /* send the response */
	DEVICE_SILENT,  /* send nothing (timeout, dropout) */
	DEVICE_CORRUPT, /* send the response with a corrupted check */
};

struct device {
	int slave;
	struct agri_profile prof;
	struct model_params params;
	struct fault faults[DEVICE_FAULTS_MAX];
	size_t n_faults;
	int64_t sim_start_ms;  /* simulated time at start (stuck, drift) */
	uint64_t n_requests;   /* requests addressed to this slave */
	int64_t counter_last_ms[AGRI_PROFILE_REGS_MAX]; /* last read, sim ms */
	bool started;      /* measuring (always, unless the profile has a start) */
	double coef_pct;   /* the EC compensation it applies, %/°C */
	uint64_t n_commands, n_wipes;
	/* What a technician writes (the profile's settings, issue 22). */
	bool plugged;          /* on the line (agri-sim SIGUSR1 plugs the next) */
	int new_slave;         /* a slave id written: taken after the reply */
	int cal_metric;        /* the register calibration corrects, or -1 */
	double cal_slope, cal_offset; /* reported = slope x (true + cal_error) + offset */
	uint16_t setting_words[AGRI_PROFILE_SETTINGS_MAX][4]; /* as written, read back */
	/* Statistics, for the log at exit. */
	uint64_t n_replies, n_exceptions, n_silent, n_corrupt;
};

/* Sets up d for slave id with profile prof and params (copied). */
void device_init(struct device *d, int slave, const struct agri_profile *prof,
		 const struct model_params *params, int64_t sim_start_ms);

/* Adds a fault; returns 0 or -ENOSPC. */
int device_add_fault(struct device *d, const struct fault *f);

/* The words setting i reads back now (the id, the calibration, ...). */
void device_setting_words(const struct device *d, size_t i, uint16_t *w);

/*
 * The value register r_index holds at sim_ms, in the profile's unit,
 * faults (stuck, drift) applied when with_faults. Counters return the
 * count since *since_ms (not updated here).
 */
double device_value(const struct device *d, size_t r_index, int64_t sim_ms,
		    int64_t since_ms, bool with_faults);

/*
 * Answers one request PDU (function code + data) at simulated time sim_ms,
 * elapsed_ms of wall time after start (for dropouts). Writes the response
 * PDU to resp (cap >= 253) and returns its length, with *act telling the
 * transport what to do with it. Reading a counter register clears it.
 */
size_t device_request(struct device *d, const uint8_t *pdu, size_t len,
		      int64_t sim_ms, int64_t elapsed_ms, uint8_t *resp,
		      size_t cap, enum device_action *act);

/*
 * Fills words[0..count) for a read of fc/addr/count, as the device would.
 * Returns 0 or an exception code (MB_EX_...). Counters read are cleared
 * when clear_counters.
 */
int device_read(struct device *d, uint8_t fc, uint16_t addr, uint16_t count,
		int64_t sim_ms, uint16_t *words, bool clear_counters);

#endif
