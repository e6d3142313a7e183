/*
 * agrictl's subcommands beyond the Modbus probe: printing a device read,
 * provisioning, config validation and push.
 */
#ifndef AGRICTL_H
#define AGRICTL_H

#include <stdbool.h>
#include <stdio.h>

#include "agri/profile.h"
#include "modbus_probe.h"

void agrictl_print_read(FILE *f, const struct agri_profile *p, int slave,
			const char *ts, const struct probe_value *vals, bool json);
int agrictl_provision(const char *station, const char *out_dir,
		      const char *passwd_file, const char *acl_file,
		      const char *broker, const char *prefix);
/* 0 when station may be provisioned; else prints why not and returns 2. */
int agrictl_provision_check_id(const char *station);
int agrictl_config_validate(int argc, char **argv);
int agrictl_config_push(int argc, char **argv);
/* `agrictl dead-letters`: argv[0] is "dead-letters". Returns the exit code. */
int agrictl_dead_letters(int argc, char **argv);
/* `agrictl level-offset`: argv[0] is "level-offset". Returns the exit code. */
int agrictl_level_offset(int argc, char **argv);

#endif
