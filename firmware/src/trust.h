/*
 * Whom a station trusts with its config: the technicians whose Ed25519
 * public keys are installed beside its config file, one PEM file each,
 * `technicians/<name>.pub` (/etc/agri/technicians/ for
 * /etc/agri/station.json). The directory follows from the --config path
 * alone, so no config, pushed or local, can move it; the service user
 * cannot write there (root's /etc/agri). A pushed config is applied only
 * when trust_open() finds it signed by one of them (docs/station.md
 * "Remote config"); with no keys installed every pushed config is refused.
 */
#ifndef STATION_TRUST_H
#define STATION_TRUST_H

#include <stddef.h>

#include "agri/err.h"
#include "agri/topic.h"

/* The technicians' directory for config file config_path into out.
 * Returns 0 or -ENAMETOOLONG. */
int trust_dir(const char *config_path, char *out, size_t len);

/*
 * Checks msg (len bytes), a config in its signature envelope (agri/sign.h):
 * keys installed in dir, the envelope's shape, the signer's key file
 * dir/<name>.pub, the Ed25519 signature over the document's bytes. The
 * keys are read at each call: a key added or removed counts from the next
 * config. On success copies the signed document, NUL-terminated, into doc
 * (cap bytes) with its length in *doc_len and the signer in by, and
 * returns 0. Otherwise returns -EPERM with *err ("signature: ..."), or
 * -ENOSPC when doc is too small. Main thread (no shared state).
 */
int trust_open(const char *dir, const char *msg, size_t len, char *doc,
	       size_t cap, size_t *doc_len, char by[AGRI_ID_MAX + 1],
	       struct agri_err *err);

#endif
