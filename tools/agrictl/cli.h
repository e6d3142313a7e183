/*
 * What agrictl's commands share on the command line: the one-line usage
 * error (exit 2), numbers, the bus options (--rtu/--tcp, --baud,
 * --parity, --timeout-ms, --profiles-dir, --json) and loading a profile
 * by name with the nearest names when there is none. Single thread.
 */
#ifndef AGRICTL_CLI_H
#define AGRICTL_CLI_H

#include <getopt.h>
#include <stdbool.h>

#include "agri/profile.h"
#include "modbus_probe.h"

/* Prints "agrictl: <message> (see agrictl CMD --help)" and returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses an integer in lo..hi (decimal, or 0x hexadecimal when hex). 0 or
 * -EINVAL. */
int cli_int(const char *s, long lo, long hi, bool hex, long *out);

struct bus_opts {
	struct probe_link link;
	const char *profiles_dir;
	bool json;
	bool timeout_given;
};

/* getopt_long rows of the bus options (letters R T b P m D j). */
#define BUS_LONG_OPTS                                                             \
	{"rtu", required_argument, 0, 'R'}, {"tcp", required_argument, 0, 'T'},   \
	{"baud", required_argument, 0, 'b'}, {"parity", required_argument, 0, 'P'}, \
	{"timeout-ms", required_argument, 0, 'm'},                                \
	{"profiles-dir", required_argument, 0, 'D'}, {"json", no_argument, 0, 'j'}

/* One bus option: 1 consumed, 0 not a bus option, -2 (the exit code,
 * negated) on a bad value. */
int bus_opt(const char *cmd, int c, const char *arg, struct bus_opts *b);

/* Exactly one of --rtu and --tcp: 0, or the usage error's exit code. */
int bus_check(const char *cmd, const struct bus_opts *b);

/*
 * Loads profile name from dir (NULL: the default). Returns 0, or prints
 * why not and returns the exit code: 2 when there is no such profile
 * (with the nearest names and the list), 78 when it is invalid.
 */
int cli_profile(const char *dir, const char *name, struct agri_profile *out);

/* The profile's serial defaults where the command line gave none. */
void bus_defaults_from(struct bus_opts *b, const struct agri_profile *p);

#endif
