/*
 * Credentials for a new station and the broker files they go in. The
 * password-file entry is the one mosquitto 2.0's mosquitto_passwd writes:
 * PBKDF2-HMAC-SHA512 with a 12-byte salt and a 64-byte hash, base64-encoded,
 * "$7$" marking the type. The password-file and ACL readers work on
 * buffers of any content (fuzzed: tests/fuzz/fuzz_provision.c) and read a
 * line's user the way mosquitto 2.0 does (src/security_default.c), so what
 * they find is what the broker will load.
 */
#include "provision.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "agri/buf.h"
#include "agri/topic.h"

/* The hub's own names (docs/broker.md "Identities"), compared without case. */
static const char *const reserved_names[] = {"gateway", "agrictl", "alerts",
					     "forecast", "advisory", "hub"};
static const char *const reserved_prefixes[] = {"agri-", "agrictl-", "gateway-", "hub-"};

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
			 "\n# station %s: publishes only under its own id, reads only its config, acks "
			 "and update commands\n"
			 "user %s\n"
			 "topic write %s/%s/telemetry\n"
			 "topic write %s/%s/status\n"
			 "topic write %s/%s/config/ack\n"
			 "topic read %s/%s/config\n"
			 "topic read %s/%s/ack\n"
			 "topic read %s/%s/update\n",
			 station, station, prefix, station, prefix, station, prefix,
			 station, prefix, station, prefix, station, prefix, station);

	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}

bool provision_name_reserved(const char *name, size_t n)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(reserved_names); i++)
		if (strlen(reserved_names[i]) == n && strncasecmp(name, reserved_names[i], n) == 0)
			return true;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(reserved_prefixes); i++) {
		size_t pn = strlen(reserved_prefixes[i]);

		if (n >= pn && strncasecmp(name, reserved_prefixes[i], pn) == 0)
			return true;
	}
	return false;
}

int provision_station_id_check(const char *id)
{
	if (!agri_ident_valid(id))
		return -EINVAL;
	if (!agri_station_id_valid(id) || provision_name_reserved(id, strlen(id)))
		return -EPERM;
	return 0;
}

/* isspace() of the C locale, as mosquitto's misc__trimblanks() trims. */
static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The next line of in[0..len) from *pos (its start and length, without its
 * '\n'); false at the end. The last line may lack its newline. */
static bool next_line(const char *in, size_t len, size_t *pos, const char **line, size_t *n)
{
	const char *nl;

	if (*pos >= len)
		return false;
	*line = in + *pos;
	nl = memchr(*line, '\n', len - *pos);
	*n = nl ? (size_t)(nl - *line) : len - *pos;
	*pos += *n + (nl ? 1 : 0);
	return true;
}

/* Trims blanks around s[*b..*e). */
static void trim(const char *s, size_t *b, size_t *e)
{
	while (*b < *e && blank(s[*b]))
		(*b)++;
	while (*e > *b && blank(s[*e - 1]))
		(*e)--;
}

/* A password-file line's user, as mosquitto 2.0's pwfile__parse() reads
 * it: '#' lines and lines without ':' have none; strtok_r(":") skips
 * leading ':'s; blanks trimmed. False when the line names no user. */
static bool passwd_line_user(const char *line, size_t n, const char **user, size_t *user_n)
{
	const char *colon;
	size_t b = 0, e;

	if (n == 0 || line[0] == '#' || !memchr(line, ':', n))
		return false;
	while (b < n && line[b] == ':')
		b++;
	colon = memchr(line + b, ':', n - b);
	e = colon ? (size_t)(colon - line) : n;
	trim(line, &b, &e);
	*user = line + b;
	*user_n = e - b;
	return *user_n > 0;
}

/* An ACL line's "user" name, as mosquitto 2.0's aclfile__parse() reads it:
 * trailing blanks trimmed, '#' lines are comments, the keyword is the
 * first token split on spaces, the name the rest of the line trimmed. */
static bool acl_line_user(const char *line, size_t n, const char **user, size_t *user_n)
{
	size_t b = 0, e = n;

	while (e > 0 && blank(line[e - 1]))
		e--;
	if (e == 0 || line[0] == '#')
		return false;
	while (b < e && line[b] == ' ')
		b++;
	if (e - b < 5 || memcmp(line + b, "user", 4) != 0 || line[b + 4] != ' ')
		return false;
	b += 5;
	trim(line, &b, &e);
	*user = line + b;
	*user_n = e - b;
	return *user_n > 0;
}

static void copy_name(char *name, size_t cap, const char *s, size_t n)
{
	if (cap == 0)
		return;
	if (n >= cap)
		n = cap - 1;
	memcpy(name, s, n);
	name[n] = '\0';
}

int provision_passwd_put(const char *in, size_t len, const char *user,
			 const char *entry, char **out, size_t *out_len)
{
	size_t ulen = strlen(user), elen = strlen(entry), pos = 0, w = 0, n, un;
	const char *line, *u;
	char *buf;

	if (ulen == 0 || elen <= ulen || strncmp(entry, user, ulen) != 0 ||
	    entry[ulen] != ':' || strpbrk(entry, "\r\n"))
		return -EINVAL;
	/* Every kept line plus a '\n' it may have lacked (the last one), the
	 * entry, its '\n' and the NUL. */
	if (len > SIZE_MAX - elen - 3)
		return -ENOMEM;
	buf = malloc(len + elen + 3);
	if (!buf)
		return -ENOMEM;
	while (next_line(in, len, &pos, &line, &n)) {
		if (n == 0)
			continue;
		if (passwd_line_user(line, n, &u, &un) && un == ulen && memcmp(u, user, ulen) == 0)
			continue; /* rotated: the new entry replaces it */
		memcpy(buf + w, line, n);
		w += n;
		buf[w++] = '\n';
	}
	memcpy(buf + w, entry, elen);
	w += elen;
	buf[w++] = '\n';
	buf[w] = '\0';
	*out = buf;
	*out_len = w;
	return 0;
}

int provision_passwd_reserved(const char *in, size_t len, char *name, size_t cap)
{
	const char *line, *u;
	size_t pos = 0, n, un;

	while (next_line(in, len, &pos, &line, &n)) {
		if (passwd_line_user(line, n, &u, &un) && provision_name_reserved(u, un)) {
			copy_name(name, cap, u, un);
			return 1;
		}
	}
	return 0;
}

bool provision_acl_has_user(const char *in, size_t len, const char *user)
{
	const char *line, *u;
	size_t pos = 0, n, un, ulen = strlen(user);

	while (next_line(in, len, &pos, &line, &n))
		if (acl_line_user(line, n, &u, &un) && un == ulen && memcmp(u, user, ulen) == 0)
			return true;
	return false;
}

int provision_acl_reserved(const char *in, size_t len, char *name, size_t cap)
{
	const char *line, *u;
	size_t pos = 0, n, un;

	while (next_line(in, len, &pos, &line, &n)) {
		if (acl_line_user(line, n, &u, &un) && provision_name_reserved(u, un)) {
			copy_name(name, cap, u, un);
			return 1;
		}
	}
	return 0;
}

int provision_tmp_open(const char *path, mode_t mode, uid_t uid, gid_t gid,
		       char *tmp, size_t tmp_len)
{
	int fd, rc, n = snprintf(tmp, tmp_len, "%s.XXXXXX", path);

	if (n < 0 || (size_t)n >= tmp_len)
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, 0600 */
	if (fd < 0)
		return -errno;
	/* Owner and group first (a chown may clear mode bits), then the mode. */
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
		goto fail;
	if (fchmod(fd, mode) < 0)
		goto fail;
	return fd;
fail:
	rc = -errno;
	close(fd);
	unlink(tmp);
	return rc;
}

int provision_write_file(const char *path, const void *data, size_t len,
			 mode_t mode, uid_t uid, gid_t gid)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *p = data;
	char *slash;
	int fd, dfd, rc = 0;

	fd = provision_tmp_open(path, mode, uid, gid, tmp, sizeof(tmp));
	if (fd < 0)
		return fd;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = -errno;
			break;
		}
		p += w;
		len -= (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}
