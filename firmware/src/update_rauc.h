/*
 * The update agent's hands on RAUC (update.h): runs the `rauc` command
 * line (it talks to the rauc service on the system D-Bus) and reads what
 * `rauc status` says. Any thread; each call forks one child.
 */
#ifndef STATION_UPDATE_RAUC_H
#define STATION_UPDATE_RAUC_H

#include <stddef.h>

#define RAUC_NAME_MAX 64

struct rauc_status {
	char compatible[RAUC_NAME_MAX];
	char booted[RAUC_NAME_MAX];         /* the booted slot's bootname ("A") */
	char primary[RAUC_NAME_MAX];        /* bootname of the slot booted next */
	char other[RAUC_NAME_MAX];          /* the other rootfs slot's bootname */
	char other_state[16];               /* its boot_status: good | bad | "" */
	char version[RAUC_NAME_MAX];        /* the booted slot's bundle version, or "" */
};

/*
 * Runs argv (argv[0] looked up in PATH) with a deadline; its standard
 * output into out (cap bytes, NUL-terminated, may be NULL), the last
 * non-empty line of its standard error into err. Returns the exit status
 * (0..255), or -ETIMEDOUT (killed), -errno when it could not start.
 */
int rauc_run(char *const argv[], int timeout_s, char *out, size_t cap, char *err,
	     size_t err_len);

/* `RAUC status --detailed --output-format=json` into *st. Returns 0 or
 * -errno with err. */
int rauc_status(const char *rauc, struct rauc_status *st, char *err, size_t err_len);

#endif
