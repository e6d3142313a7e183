/*
 * agrictl's rooms: main.c parses the command line (the list of commands,
 * --version, salinity, provision's options); each other command has its
 * own file, entered through the functions below: status_cmd.c (a
 * station's health), scan_cmd.c, read_cmd.c, write_cmd.c,
 * calibrate_cmd.c over modbus_probe.c (the Modbus master) and output.c (a
 * read printed); maint_cmd.c and config_cmd.c (validate, push) over hub.c
 * (the broker); provision_cmd.c (station credentials, over provision.c's
 * password and ACL files) and technician.c (signing keys);
 * dead_letters_cmd.c, level_cmd.c, token, update and flash. cli.c holds
 * the shared options, errtext.c every library error in words, msgs.c the
 * Vietnamese catalogue (T()). Every command returns its exit code
 * (agri/exit.h, docs/interfaces.md §1).
 */
#ifndef AGRICTL_H
#define AGRICTL_H

#include <stdbool.h>
#include <stdio.h>

#include <MQTTClient.h>
#include <cjson/cJSON.h>

#include "agri/profile.h"
#include "agri/sign.h"
#include "hub.h"
#include "modbus_probe.h"

/* Prints a read (output.c): the registers, der[0..p->n_derived) (may be
 * NULL), as a table or --json. */
void agrictl_print_read(FILE *f, const struct agri_profile *p, int slave, const char *ts,
			const struct probe_value *vals, const struct probe_derived *der,
			bool json);
/* The insect a light-trap class counts ("brown planthopper ..."), or NULL. */
const char *agrictl_species(const char *suffix);
int agrictl_provision(const char *station, const char *out_dir,
		      const char *passwd_file, const char *acl_file,
		      const char *broker, const char *prefix);
/* 0 when station may be provisioned; else prints why not and returns 2. */
int agrictl_provision_check_id(const char *station);
/* 0 when out_dir holds no station.json nor station.pass (or force); else
 * prints why and returns 1. */
int agrictl_provision_check_out(const char *out_dir, bool force);
/* `agrictl provision --peer-hub` (provision_cmd.c): the bridge to the
 * province's other hub (docs/ha.md). NULL members take their defaults. */
struct peer_opts {
	const char *peer;         /* mqtts://HOST:PORT or tcp://HOST:PORT */
	const char *passwd_file;  /* the station listener's: the account goes here */
	const char *acl_file;
	const char *conf_file;    /* default: conf.d/agri-bridge.conf beside passwd_file */
	const char *user;         /* default: bridge-<this host's name> */
	const char *ca_file;      /* default: certs/ca.crt beside passwd_file (TLS) */
	const char *prefix;
	bool force;               /* replace an existing bridge config */
};
/* Writes the bridge config and its account; returns the exit code. */
int agrictl_provision_peer(const struct peer_opts *o);
/* `agrictl config validate|push|--help`: argv[0] is "config". */
int agrictl_config(int argc, char **argv);
int agrictl_config_validate(int argc, char **argv);
int agrictl_config_push(int argc, char **argv);

/* A signed config push (config_cmd.c), shared with `agrictl maint`. */
struct push_target {
	const char *station;
	struct hub_opts hub;
	const char *key_file;                /* the technician's private key */
	char technician[SIGN_NAME_MAX + 1];  /* the name stations know it by */
	int timeout_s;
};
/* --key (default $AGRI_TECHNICIAN_KEY) and the technician's name (default:
 * the key file's, without .key). 0 or the usage error's exit code. */
int agrictl_push_key(struct push_target *p, const char *technician);
/*
 * Signs doc, its "version" set to one past the retained config's (or its
 * own when higher), publishes it retained as the station's desired config
 * over c and waits for the station's ack; prints the outcome (what: a
 * words for the change, "maintenance on"). Returns 0 applied, 1 rejected,
 * 3 no ack in time (saying whether the broker kept it), 78 too large.
 */
int agrictl_push_doc(const struct push_target *p, MQTTClient c, cJSON *doc, const char *what);
/* The retained config on topic: its version (0: none) and, with doc, its
 * document without the signature (free with cJSON_Delete). 0, -ENOENT
 * (none), -EBADMSG or -EIO. */
int agrictl_retained_config(MQTTClient c, const char *topic, cJSON **doc, int64_t *version);

/* The commands: argv[0] is the command's name. Each returns its exit code. */
int agrictl_status(int argc, char **argv);
int agrictl_scan(int argc, char **argv);
int agrictl_read(int argc, char **argv);
int agrictl_write(int argc, char **argv);
int agrictl_calibrate(int argc, char **argv);
int agrictl_maint(int argc, char **argv);
/* The calibrations table and view in the gateway's database. */
extern const char *const agrictl_calibration_schema;
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
/* `agrictl recipients list|validate|add|remove` (recipients_cmd.c): argv[0]
 * is "recipients". */
int agrictl_recipients(int argc, char **argv);
/* `agrictl notify preview` (notify_cmd.c): argv[0] is "notify". */
int agrictl_notify(int argc, char **argv);

#endif
