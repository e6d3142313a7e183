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

/* The bridge accounts' namespace: no station may log in under it. */
#define BRIDGE_PREFIX "bridge-"

int provision_station_id_check(const char *id)
{
	if (!agri_ident_valid(id))
		return -EINVAL;
	if (!agri_station_id_valid(id) || provision_name_reserved(id, strlen(id)) ||
	    strncasecmp(id, BRIDGE_PREFIX, strlen(BRIDGE_PREFIX)) == 0)
		return -EPERM;
	return 0;
}

int provision_bridge_user_check(const char *user)
{
	size_t pn = strlen(BRIDGE_PREFIX);

	if (!agri_ident_valid(user) || strlen(user) <= pn || strncmp(user, BRIDGE_PREFIX, pn) != 0)
		return -EINVAL;
	return 0;
}

/* A DNS name as mosquitto and getaddrinfo take it: labels of letters,
 * digits and '-', not starting or ending with '-', dots between. An IPv4
 * address is such a name too. */
static bool dns_name_valid(const char *h, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			   (c == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && h[n - 1] != '-';
}

static int url_fail(char *why, size_t why_len, const char *text)
{
	snprintf(why, why_len, "%s", text);
	return -EINVAL;
}

int provision_peer_url(const char *url, struct peer_url *out, char *why, size_t why_len)
{
	static const struct {
		const char *scheme;
		bool tls;
	} schemes[] = {{"mqtts://", true}, {"ssl://", true}, {"tcp://", false}, {"mqtt://", false}};
	const char *h = NULL, *colon;
	size_t hn;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(schemes) && !h; i++) {
		if (strncmp(url, schemes[i].scheme, strlen(schemes[i].scheme)) == 0) {
			h = url + strlen(schemes[i].scheme);
			out->tls = schemes[i].tls;
		}
	}
	if (!h)
		return url_fail(why, why_len, "expected mqtts://HOST:PORT (TLS, the peer's station "
				"listener) or tcp://HOST:PORT");
	/* mosquitto 2.0's bridge address splits HOST:PORT at the first ':', so
	 * an IPv6 literal cannot be given: a name that resolves to it can. */
	if (*h == '[')
		return url_fail(why, why_len, "an IPv6 address cannot be a bridge's address in "
				"mosquitto 2.0: give a DNS name that resolves to it");
	colon = h + strcspn(h, ":");
	hn = (size_t)(colon - h);
	if (!dns_name_valid(h, hn))
		return url_fail(why, why_len, hn ? "the host is not a DNS name or IPv4 address "
				"(no user@, path or spaces)" : "no host");
	memcpy(out->host, h, hn);
	out->port = out->tls ? 8883 : 1883;
	if (*colon == ':') {
		char *e;
		long port;

		errno = 0;
		port = strtol(colon + 1, &e, 10);
		if (colon[1] < '0' || colon[1] > '9' || errno || *e || port < 1 || port > 65535)
			return url_fail(why, why_len, "the port is not a number in 1..65535 "
					"(nothing may follow it)");
		out->port = (int)port;
	}
	return 0;
}

int provision_bridge_conf(const struct bridge_params *p, char *out, size_t len)
{
	const struct peer_url *u = p->peer;
	int n, m = 0;

	/*
	 * The comments are for whoever opens the file on a hub; mosquitto
	 * skips them. Nothing from the command line reaches the file
	 * unchecked: host, user and prefix were validated, the password is
	 * base64url and the caller refuses a CA path with a newline.
	 */
	n = snprintf(out, len,
		     "# The bridge to the province's other hub (docs/ha.md), written by\n"
		     "# `agrictl provision --peer-hub`. mosquitto reads it at start (include_dir in\n"
		     "# mosquitto.conf): restart it after a change. This hub connects; the peer\n"
		     "# only has the account. One bridge between two hubs, never one each way:\n"
		     "# two would hand every message back and forth for ever.\n"
		     "# It holds the bridge's password (mosquitto reads it from nowhere else):\n"
		     "# 0640, the broker's group, like the password files.\n"
		     "connection agri-peer\n"
		     "address %s:%d\n"
		     "# Everything under the prefix, both ways, QoS 1: each gateway, subscribed\n"
		     "# to its own broker only, sees every station's telemetry and status, and an\n"
		     "# ack from either gateway reaches the station on either hub.\n"
		     "topic %s/# both 1\n"
		     "# A persistent session on both sides: while the link is down each broker\n"
		     "# queues for the other, up to max_queued_messages / max_queued_bytes (per\n"
		     "# session, mosquitto.conf), sized for a day's cut (docs/ha.md, Sizing).\n"
		     "cleansession false\n"
		     "# The peer knows this client is a bridge and never sends a message back\n"
		     "# the way it came.\n"
		     "try_private true\n"
		     "bridge_protocol_version mqttv311\n"
		     "# The peer's station listener makes the user name the client id.\n"
		     "remote_clientid %s\n"
		     "remote_username %s\n"
		     "remote_password %s\n"
		     "# Link state on this hub only ($SYS/broker/connection/%s/state: 1 up,\n"
		     "# 0 down): the peer's ACL gives the account the prefix and nothing else.\n"
		     "notifications true\n"
		     "notifications_local_only true\n"
		     "keepalive_interval 30\n"
		     "# Reconnect 2 s after a cut, backing off to a minute.\n"
		     "restart_timeout 2 60\n",
		     u->host, u->port, p->prefix, p->user, p->user, p->password, p->user);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	if (u->tls)
		m = snprintf(out + n, len - (size_t)n,
			     "# TLS: the peer's certificate must be signed by the province's CA and\n"
			     "# name the host above.\n"
			     "bridge_cafile %s\n"
			     "bridge_insecure false\n"
			     "bridge_tls_version tlsv1.2\n",
			     p->ca_file);
	return (m < 0 || (size_t)m >= len - (size_t)n) ? -ENOSPC : 0;
}

int provision_bridge_acl(const char *user, const char *prefix, char *out, size_t len)
{
	int n = snprintf(out, len,
			 "\n# bridge %s: the other hub's broker (agrictl provision --peer-hub), "
			 "everything under the prefix both ways\n"
			 "user %s\n"
			 "topic readwrite %s/#\n",
			 user, user, prefix);

	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
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
