/*
 * agri-sim's core: the command line (docs/interfaces.md §1), loading each
 * slave's profile and parameters into struct device, the simulated clock, the
 * serving loop (server.c) and the non-serving --series mode (series.c).
 * main.c only wires these together, so tests link the same code.
 */
#ifndef SIM_SIM_H
#define SIM_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "device.h"

#define SIM_SLAVES_MAX 32
#define SIM_FAULTS_MAX 32
#define SIM_PATH_MAX 512

enum sim_transport { SIM_NONE = 0, SIM_RTU, SIM_TCP };

enum sim_scenario {
	SIM_SCN_SALINITY = 0, /* salinity-intrusion (default) */
	SIM_SCN_FRESHWATER,
	SIM_SCN_BPH,
	SIM_SCN_SOLAR,
};

struct sim_slave_spec {
	int id;
	char profile[AGRI_ID_MAX + 1 + 32]; /* "" = --profile */
	char params[256];                  /* "k=v,k=v" */
};

struct sim {
	/* Options. */
	char profile_default[AGRI_ID_MAX + 1 + 32];
	enum sim_transport transport;
	char rtu_dev[SIM_PATH_MAX];
	int baud;     /* 0: from the first slave's profile, else 9600 */
	char parity;  /* 0: from the profile, else 'N' */
	char tcp_host[128];
	int tcp_port;
	struct sim_slave_spec slaves[SIM_SLAVES_MAX];
	size_t n_slaves;
	enum sim_scenario scenario;
	double speed;
	uint64_t seed;
	int64_t start_ms; /* simulated start, UTC ms */
	char profiles_dir[SIM_PATH_MAX];
	struct fault faults[SIM_FAULTS_MAX];
	size_t n_faults;
	bool series;
	double hours, step_s;
	bool noise;

	/* Loaded by sim_load. */
	struct device *devs; /* n_slaves entries */
	int64_t start_mono_ms;
};

/*
 * Parses argv into s (defaults first). Returns 0 to run, 1 when --help was
 * printed, or -EINVAL with a one-line reason in why.
 */
int sim_parse_args(struct sim *s, int argc, char **argv, char *why,
		   size_t why_len);

/* Prints the usage text. */
void sim_usage(FILE *out);

/*
 * Loads every slave's profile (profiles_dir/<name>.json) and parameters
 * into s->devs and attaches the faults. Returns 0, or -EINVAL with
 * "FILE: path: reason" in err (exit 78).
 */
int sim_load(struct sim *s, char *err, size_t err_len);

/* Frees what sim_load allocated. */
void sim_free(struct sim *s);

/* The device answering slave id (plugged in), or NULL. */
struct device *sim_device(struct sim *s, int id);
/* Every plugged device at slave id (two: they collide on a line). */
size_t sim_devices_at(struct sim *s, int id, struct device **out, size_t cap);

/* SIGUSR1 ("a technician connects the next sensor"): main.c counts, the
 * serving loop plugs in the next device given plugged=0. */
extern volatile sig_atomic_t sim_plug_requests;
void sim_plug_pending(struct sim *s);
/* Devices that were written a new slave id take it (after their reply). */
void sim_take_new_ids(struct sim *s);

/* Simulated time (UTC ms) at monotonic time mono_ms. */
int64_t sim_time(const struct sim *s, int64_t mono_ms);

/* Parses "YYYY-MM-DD[THH:MM[:SS]][Z]" (UTC). Returns 0 or -EINVAL. */
int sim_parse_start(const char *text, int64_t *ms);

/* --series: writes "ts,metric,value" CSV of the true values to out. */
int sim_series(struct sim *s, FILE *out);

/* Serves the slaves over s->transport until *stop is set. Returns 0, or
 * a negative errno when the device or socket cannot be opened. */
int server_run(struct sim *s, volatile sig_atomic_t *stop);

#endif
