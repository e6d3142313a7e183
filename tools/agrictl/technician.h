/*
 * Technicians' signing keys (docs/station.md "Remote config"): each
 * technician has an Ed25519 key pair; `agrictl config push` signs with the
 * private key, stations trust the public keys installed in the
 * `technicians/` directory beside their station.json.
 */
#ifndef AGRICTL_TECHNICIAN_H
#define AGRICTL_TECHNICIAN_H

/*
 * `agrictl provision --technician NAME --out DIR`: makes DIR/NAME.key
 * (PKCS#8 PEM, mode 0600 from the moment it has a name; an existing one is
 * never replaced) and DIR/NAME.pub (PEM, 0644). Prints what it made.
 * Returns an exit code: 0, 1 (I/O), 2 (bad name).
 */
int technician_new(const char *name, const char *out_dir);

/*
 * `agrictl provision --station ... --technicians DIR`: copies each valid
 * DIR/NAME.pub (an Ed25519 public key) into OUT/technicians/ (0644), the
 * directory a station reads beside OUT/station.json. Returns 0, or 1 when
 * DIR has no usable key or a copy fails (the reason printed).
 */
int technician_install(const char *from_dir, const char *out_dir);

#endif
