/*
 * GET /api/v1/bundles/{name}: RAUC update bundles for the stations
 * (docs/update.md). Only an authenticated station gets one: HTTP Basic
 * with its broker account, checked against the broker's password file for
 * stations (http.stations_passwd_file, mosquitto's "$7$" PBKDF2-SHA512
 * lines that `agrictl provision` writes; read at each request, so a
 * station provisioned or removed counts at once). Range requests ("bytes=
 * N-" and "bytes=N-M") let a station resume a cut download; the file is
 * sent from its descriptor by libmicrohttpd, never read into memory. Over
 * HTTPS when http.cert_file/key_file are set (server.c).
 *
 * Called on libmicrohttpd's threads; no shared state but the server's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gateway/config.h"
#include "http/http_int.h"

#define PASSWD_MAX (4u << 20)
#define USER_MAX 128
#define PASS_MAX 256

static bool name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 128 || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* Standard base64 (EVP_DecodeBlock), padding accounted for. Returns the
 * decoded length or -1. */
static int b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	int len;

	if (n == 0 || n % 4 || n / 4 * 3 > cap)
		return -1;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	if (in[n - 1] == '=')
		len--;
	if (in[n - 2] == '=')
		len--;
	return len;
}

/* Checks password against one mosquitto "$7$ITER$SALT$HASH" entry. */
static bool hash_ok(const char *entry, size_t n, const char *password)
{
	unsigned char salt[64], want[128], got[64];
	char buf[512], *iter_s, *salt_s, *hash_s, *end;
	int sl, hl;
	long iter;

	if (n >= sizeof(buf) || n < 4 || strncmp(entry, "$7$", 3))
		return false;
	memcpy(buf, entry, n);
	buf[n] = '\0';
	iter_s = buf + 3;
	salt_s = strchr(iter_s, '$');
	if (!salt_s)
		return false;
	*salt_s++ = '\0';
	hash_s = strchr(salt_s, '$');
	if (!hash_s)
		return false;
	*hash_s++ = '\0';
	iter = strtol(iter_s, &end, 10);
	if (*end || iter < 1 || iter > 10000000)
		return false;
	sl = b64_decode(salt_s, strlen(salt_s), salt, sizeof(salt));
	hl = b64_decode(hash_s, strlen(hash_s), want, sizeof(want));
	if (sl < 1 || hl != (int)sizeof(got))
		return false;
	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sl, (int)iter, EVP_sha512(),
			      (int)sizeof(got), got) != 1)
		return false;
	return CRYPTO_memcmp(got, want, sizeof(got)) == 0;
}

/* True when user:password is a station account in the password file. */
static bool station_ok(const char *passwd_file, const char *user, const char *password)
{
	size_t ul = strlen(user), len;
	bool ok = false;
	char *buf = NULL;

	if (util_read_file(passwd_file, PASSWD_MAX, &buf, &len) < 0) {
		log_error(LOG, "cannot read http.stations_passwd_file=%s", passwd_file);
		return false;
	}
	for (size_t at = 0; at < len && !ok;) {
		const char *line = buf + at, *nl = memchr(line, '\n', len - at);
		size_t n = nl ? (size_t)(nl - line) : len - at;

		at += n + 1;
		if (n > ul + 1 && line[ul] == ':' && !memcmp(line, user, ul))
			ok = hash_ok(line + ul + 1, n - ul - 1 - (line[n - 1] == '\r'), password);
	}
	free(buf);
	return ok;
}

/* The Basic credentials of the request into user/pass. */
static bool basic_auth(struct MHD_Connection *c, char user[USER_MAX], char pass[PASS_MAX])
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	unsigned char dec[USER_MAX + PASS_MAX + 4];
	char *colon;
	int n;

	if (!h || strncasecmp(h, "Basic ", 6))
		return false;
	h += 6;
	while (*h == ' ')
		h++;
	n = b64_decode(h, strlen(h), dec, sizeof(dec) - 1);
	if (n < 3)
		return false;
	dec[n] = '\0';
	colon = strchr((char *)dec, ':');
	if (!colon || (size_t)(colon - (char *)dec) >= USER_MAX ||
	    strlen(colon + 1) >= PASS_MAX || colon == (char *)dec)
		return false;
	*colon = '\0';
	memcpy(user, dec, strlen((char *)dec) + 1);
	memcpy(pass, colon + 1, strlen(colon + 1) + 1);
	OPENSSL_cleanse(dec, sizeof(dec));
	return true;
}

static enum MHD_Result unauthorized(struct http_server *srv, struct MHD_Connection *c)
{
	const char *body = "{\"error\":\"a station's broker account is required (HTTP Basic)\"}\n";
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				"Basic realm=\"agri bundles\", charset=\"UTF-8\"");
	ret = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&srv->errors_4xx, 1);
	return ret;
}

/* "bytes=N-" or "bytes=N-M" into [*from, *to] (inclusive). Returns 1 for a
 * range, 0 for none (or one we do not serve partially: the whole file),
 * -1 for one past the end. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
	unsigned long long a, b;
	char *end;

	if (!h || strncmp(h, "bytes=", 6) || !(h[6] >= '0' && h[6] <= '9'))
		return 0;
	a = strtoull(h + 6, &end, 10);
	if (*end != '-')
		return 0;
	end++;
	if (*end == '\0') {
		b = size ? size - 1 : 0;
	} else {
		char *e2;

		b = strtoull(end, &e2, 10);
		if (*e2 || b < a)
			return 0;
		if (b >= size)
			b = size ? size - 1 : 0;
	}
	if (a >= size)
		return -1;
	*from = a;
	*to = b;
	return 1;
}

enum MHD_Result http_api_bundle(const struct http_call *k)
{
	const struct gateway_config *cfg = k->srv->cfg;
	char user[USER_MAX] = "", pass[PASS_MAX] = "", path[PATH_MAX + 160], hdr[96];
	struct MHD_Response *r;
	uint64_t from = 0, to = 0, size;
	enum MHD_Result ret;
	struct stat sb;
	bool ok;
	int fd, rng;

	if (!cfg->http.bundles_dir[0])
		return http_send_error(k->srv, k->c, MHD_HTTP_NOT_FOUND,
				       "no bundles served: no http.bundles_dir in the gateway config");
	ok = basic_auth(k->c, user, pass) && station_ok(cfg->http.stations_passwd_file, user, pass);
	OPENSSL_cleanse(pass, sizeof(pass));
	if (!ok) {
		log_warn(LOG, "bundle refused: no or wrong station credentials user=%s",
			 user[0] ? user : "-");
		return unauthorized(k->srv, k->c);
	}
	if (!k->id || !name_valid(k->id))
		return http_send_error(k->srv, k->c, MHD_HTTP_BAD_REQUEST,
				       "a bundle name is [A-Za-z0-9._-]{1,128}");
	snprintf(path, sizeof(path), "%s/%s", cfg->http.bundles_dir, k->id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		return http_send_error(k->srv, k->c, MHD_HTTP_NOT_FOUND, "no such bundle: %s", k->id);
	}
	size = (uint64_t)sb.st_size;
	rng = parse_range(MHD_lookup_connection_value(k->c, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
			  size, &from, &to);
	if (rng < 0) {
		close(fd);
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		snprintf(hdr, sizeof(hdr), "bytes */%" PRIu64, size);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
		ret = MHD_queue_response(k->c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
		MHD_destroy_response(r);
		atomic_fetch_add(&k->srv->errors_4xx, 1);
		return ret;
	}
	if (rng == 0) {
		from = 0;
		to = size ? size - 1 : 0;
	}
	r = MHD_create_response_from_fd_at_offset64(size ? to - from + 1 : 0, fd, from);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (rng > 0) {
		snprintf(hdr, sizeof(hdr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, to, size);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
	}
	log_info(LOG, "bundle served station=%s bundle=%s from=%" PRIu64 " bytes=%" PRIu64, user,
		 k->id, from, size ? to - from + 1 : 0);
	ret = MHD_queue_response(k->c, rng > 0 ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
	MHD_destroy_response(r); /* closes fd once sent */
	return ret;
}
