/*
 * Credentials for a new station. The password-file entry is the one
 * mosquitto 2.0's mosquitto_passwd writes: PBKDF2-HMAC-SHA512 with a
 * 12-byte salt and a 64-byte hash, base64-encoded, "$7$" marking the type.
 */
#include "provision.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

int provision_password(char *out, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[32];

	if (len < 33)
		return -ENOSPC;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	for (size_t i = 0; i < 32; i++)
		out[i] = alphabet[raw[i] & 63];
	out[32] = '\0';
	return 0;
}

int provision_passwd_entry(const char *user, const char *password,
			   int iterations, char *out, size_t len)
{
	unsigned char salt[12], hash[64];
	char salt64[32], hash64[100];
	int n;

	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -EIO;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sizeof(salt),
			      iterations, EVP_sha512(), sizeof(hash), hash) != 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)salt64, salt, sizeof(salt));
	EVP_EncodeBlock((unsigned char *)hash64, hash, sizeof(hash));
	n = snprintf(out, len, "%s:$7$%d$%s$%s", user, iterations, salt64, hash64);
	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

int provision_acl(const char *station, const char *prefix, char *out,
		  size_t len)
{
	int n = snprintf(out, len,
			 "\n# station %s: publishes only under its own id, reads only its config and acks\n"
			 "user %s\n"
			 "topic write %s/%s/telemetry\n"
			 "topic write %s/%s/status\n"
			 "topic write %s/%s/config/ack\n"
			 "topic read %s/%s/config\n"
			 "topic read %s/%s/ack\n",
			 station, station, prefix, station, prefix, station, prefix,
			 station, prefix, station, prefix, station);

	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}
