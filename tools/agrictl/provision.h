/*
 * Station credentials for the shipped mosquitto configuration: a random
 * password, its mosquitto password-file entry (PBKDF2-SHA512, the "$7$"
 * format mosquitto_passwd 2.x writes), and ACL lines limiting the station
 * to its own topics; which ids a station may have; the password-file and
 * ACL edits `agrictl provision` makes, on buffers (no I/O: unit tests and
 * tests/fuzz/fuzz_provision.c call them); and the one way it writes a
 * secret file (final mode, owner and group before it has a byte or a name).
 */
#ifndef AGRICTL_PROVISION_H
#define AGRICTL_PROVISION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Writes a random password of 32 base64url chars (192 bits) into out[33].
 * Returns 0 or -EIO. */
int provision_password(char *out, size_t len);

/*
 * Formats "user:$7$<iterations>$<salt b64>$<hash b64>" (no newline) for
 * password with a fresh 12-byte salt. Returns 0 or -errno.
 */
int provision_passwd_entry(const char *user, const char *password,
			   int iterations, char *out, size_t len);

/* The ACL block for station id under topic prefix (newline-terminated). */
int provision_acl(const char *station, const char *prefix, char *out,
		  size_t len);

/*
 * Whether name (n bytes) is one of the hub's own names, compared without
 * regard to case: the accounts and topic levels "gateway", "agrictl",
 * "alerts", "forecast", "advisory", "hub", and the hub's client ids, which
 * start with "agri-", "agrictl-", "gateway-" or "hub-". A station's client
 * id is its user name (use_username_as_clientid on the station listener),
 * so a station with one of these names could take over a hub client's
 * session; the broker's hub accounts must never be station accounts.
 */
bool provision_name_reserved(const char *name, size_t n);

/*
 * 0 when id may be a station's: [A-Za-z0-9_-]{1,32}, not a reserved topic
 * level (docs/interfaces.md §2), not reserved for the hub (above) and not
 * a bridge account's (below); -EINVAL when malformed, -EPERM when reserved.
 */
int provision_station_id_check(const char *id);

/*
 * The bridge from one hub's broker to its peer's (docs/ha.md) logs in on
 * the peer's station listener, whose client id is the user name, under an
 * account named "bridge-..." that no station may have (a station with it
 * could take over the bridge's session). 0 when user is such a name
 * ("bridge-" and [A-Za-z0-9_-], at most 32 in all), else -EINVAL.
 */
int provision_bridge_user_check(const char *user);

/* A peer hub's address, from --peer-hub. */
struct peer_url {
	char host[254];  /* a DNS name or an IPv4 address */
	int port;
	bool tls;
};

/*
 * Parses "mqtts://HOST:PORT" (or ssl://, TLS) or "tcp://HOST:PORT" (or
 * mqtt://, plain); the port may be left out (8883 with TLS, 1883 without).
 * HOST is a DNS name or an IPv4 address (mosquitto 2.0's bridge cannot
 * take an IPv6 literal); nothing may follow the port. Returns 0, or -EINVAL with why[why_len] saying what
 * is wrong.
 */
int provision_peer_url(const char *url, struct peer_url *out, char *why, size_t why_len);

/* What a bridge configuration names. */
struct bridge_params {
	const struct peer_url *peer;
	const char *user;      /* the bridge's account on the peer */
	const char *password;  /* its password: mosquitto reads it only from here */
	const char *prefix;    /* the topic prefix bridged, both ways */
	const char *ca_file;   /* the CA of the peer's certificate (TLS only) */
};

/* The mosquitto bridge configuration (conf.d/agri-bridge.conf) into out[len].
 * Returns 0 or -ENOSPC. */
int provision_bridge_conf(const struct bridge_params *p, char *out, size_t len);

/* The ACL block of the bridge account on the station listener. */
int provision_bridge_acl(const char *user, const char *prefix, char *out, size_t len);

/*
 * A mosquitto password file's text (in, len bytes; lines of any length,
 * the last one with or without its newline) with user's entry replaced by
 * entry, or entry appended. Other lines are kept byte for byte, each ended
 * by '\n'; empty lines are dropped. A line's user is what mosquitto reads:
 * the text before its first ':' (after leading ':'s), blanks trimmed;
 * '#' lines are comments. On success *out is malloc'd (NUL-terminated, the
 * caller frees) and *out_len its length. Returns 0, -EINVAL (user empty,
 * entry not "user:..." or with a newline) or -ENOMEM.
 */
int provision_passwd_put(const char *in, size_t len, const char *user,
			 const char *entry, char **out, size_t *out_len);

/*
 * The first account of password-file text in[0..len) whose user is
 * reserved (provision_name_reserved), copied into name[cap] (truncated).
 * Returns 1 when there is one, 0 when none.
 */
int provision_passwd_reserved(const char *in, size_t len, char *name,
			      size_t cap);

/* Whether ACL text in[0..len) has a "user <user>" line, read as mosquitto
 * reads it (leading spaces, blanks around the name). */
bool provision_acl_has_user(const char *in, size_t len, const char *user);

/* The first "user" of ACL text in[0..len) that is reserved, into
 * name[cap]. Returns 1 when there is one, 0 when none. */
int provision_acl_reserved(const char *in, size_t len, char *name, size_t cap);

/*
 * Creates the temporary file a secret for path is written to: a new name
 * beside path (mkstemp: O_CREAT|O_EXCL, mode 0600), then given mode, uid
 * and gid with fchown/fchmod before anything is written to it (uid or gid
 * (uid_t)-1 / (gid_t)-1: the caller's). Its name goes to tmp[tmp_len].
 * Returns the open descriptor, or -errno (nothing left behind).
 */
int provision_tmp_open(const char *path, mode_t mode, uid_t uid, gid_t gid,
		       char *tmp, size_t tmp_len);

/*
 * Writes data to path as provision_tmp_open's file: written, fsynced,
 * renamed over path, directory fsynced. The file never has another mode,
 * owner or group under any name. Returns 0 or -errno (path unchanged).
 */
int provision_write_file(const char *path, const void *data, size_t len,
			 mode_t mode, uid_t uid, gid_t gid);

#endif
