/*
 * Station credentials for the shipped mosquitto configuration: a random
 * password, its mosquitto password-file entry (PBKDF2-SHA512, the "$7$"
 * format mosquitto_passwd 2.x writes), and ACL lines limiting the station
 * to its own topics.
 */
#ifndef AGRICTL_PROVISION_H
#define AGRICTL_PROVISION_H

#include <stddef.h>

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

#endif
