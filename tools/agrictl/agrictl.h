/*
 * agrictl's rooms: main.c parses the command line and runs the bus
 * commands (scan, read) over modbus_probe.c, the Modbus master, and
 * salinity; output.c prints a read. Each other command has its own file,
 * entered through the functions below: provision_cmd.c (station
 * credentials, over provision.c's password and ACL files) and
 * technician.c (signing keys), config_cmd.c (validate, push),
 * dead_letters_cmd.c, level_cmd.c. Every command returns its exit code
 * (agri/exit.h, docs/interfaces.md §1).
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
/* `agrictl token new`: argv[0] is "token". Returns the exit code. */
int agrictl_token(int argc, char **argv);
/* `agrictl update push|status` (update_cmd.c): argv[0] is "update". */
int agrictl_update(int argc, char **argv);
/* `agrictl flash` (flash_cmd.c): argv[0] is "flash". */
int agrictl_flash(int argc, char **argv);

#endif
