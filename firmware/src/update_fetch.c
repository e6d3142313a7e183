/*
 * Bundle download with resume, and file hashing (update_fetch.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "update_fetch.h"

struct sink {
	const struct fetch_req *req;
	int fd;
	uint64_t at;     /* bytes in the file */
	bool overflow;   /* the server sent more than size */
	bool started;    /* the status and offset were checked */
	long code;
	CURL *c;
	bool restart;    /* a 200 to a Range request: start the file again */
};

static size_t on_data(char *p, size_t sz, size_t n, void *ctx)
{
	struct sink *s = ctx;
	size_t len = sz * n;

	if (atomic_load(s->req->cancel))
		return 0;
	if (!s->started) {
		curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &s->code);
		s->started = true;
		if (s->code == 200 && s->at > 0) {
			/* The server ignored the Range: start again. */
			if (ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0)
				return 0;
			s->at = 0;
			s->restart = true;
		}
		if (s->code != 200 && s->code != 206)
			return len; /* an error page: read and ignore */
	}
	if (s->code != 200 && s->code != 206)
		return len;
	if (s->at + len > s->req->size) {
		s->overflow = true;
		return 0;
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(s->fd, p + off, len - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		off += (size_t)w;
	}
	s->at += len;
	atomic_store(s->req->have, s->at);
	return len;
}

int fetch_run(const struct fetch_req *req, char *why, size_t why_len)
{
	char range[48], errbuf[CURL_ERROR_SIZE] = "";
	struct sink s = {.req = req, .fd = -1};
	struct stat sb;
	CURLcode cc;
	int rc;

	s.fd = open(req->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (s.fd < 0) {
		snprintf(why, why_len, "cannot open %s: %s", req->path, strerror(errno));
		return -errno;
	}
	if (fstat(s.fd, &sb) < 0) {
		rc = -errno;
		close(s.fd);
		return rc;
	}
	s.at = (uint64_t)sb.st_size;
	atomic_store(req->have, s.at);
	if (s.at > req->size) { /* not this bundle's bytes */
		if (ftruncate(s.fd, 0) < 0) {
			close(s.fd);
			return -EIO;
		}
		s.at = 0;
	}
	if (s.at == req->size) {
		close(s.fd);
		return 0;
	}
	s.c = curl_easy_init();
	if (!s.c) {
		close(s.fd);
		return -ENOMEM;
	}
	curl_easy_setopt(s.c, CURLOPT_URL, req->url);
	curl_easy_setopt(s.c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(s.c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s.c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(s.c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(s.c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s.c, CURLOPT_CONNECTTIMEOUT, 20L);
	/* A link that stalls below 64 bytes/s for 60 s is dropped; the next
	 * attempt resumes where this one stopped. */
	curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_LIMIT, 64L);
	curl_easy_setopt(s.c, CURLOPT_LOW_SPEED_TIME, 60L);
	/* The peer's chain and name are checked: libcurl's defaults, which
	 * nothing here changes (tests/integration/test_tls_settings.py). */
	if (req->ca_file && req->ca_file[0])
		curl_easy_setopt(s.c, CURLOPT_CAINFO, req->ca_file);
	if (req->username && req->username[0]) {
		curl_easy_setopt(s.c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(s.c, CURLOPT_USERNAME, req->username);
		curl_easy_setopt(s.c, CURLOPT_PASSWORD, req->password);
	}
	if (req->max_bps > 0)
		curl_easy_setopt(s.c, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)req->max_bps);
	if (s.at > 0) {
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)s.at);
		curl_easy_setopt(s.c, CURLOPT_RANGE, range);
	}
	cc = curl_easy_perform(s.c);
	if (!s.started)
		curl_easy_getinfo(s.c, CURLINFO_RESPONSE_CODE, &s.code);
	curl_easy_cleanup(s.c);
	if (fsync(s.fd) < 0 && cc == CURLE_OK)
		cc = CURLE_WRITE_ERROR;
	close(s.fd);

	if (atomic_load(req->cancel)) {
		snprintf(why, why_len, "cancelled");
		return -ECANCELED;
	}
	if (s.overflow) {
		snprintf(why, why_len, "the hub has more than the %llu bytes the command gives",
			 (unsigned long long)req->size);
		return -EFBIG;
	}
	if (s.code == 401 || s.code == 403) {
		snprintf(why, why_len, "the hub refused this station's credentials (HTTP %ld)",
			 s.code);
		return -EPERM;
	}
	if (s.code == 404) {
		snprintf(why, why_len, "the hub has no such bundle (HTTP 404)");
		return -ENOENT;
	}
	if (s.code == 416) { /* nothing past what we have: the file is short */
		snprintf(why, why_len, "truncated: the hub has %llu bytes, the command gives %llu",
			 (unsigned long long)s.at, (unsigned long long)req->size);
		return -EMSGSIZE;
	}
	if (cc != CURLE_OK) {
		snprintf(why, why_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
		return -EAGAIN;
	}
	if (s.code >= 500 || (s.code != 200 && s.code != 206)) {
		snprintf(why, why_len, "HTTP %ld from the hub", s.code);
		return -EAGAIN;
	}
	if (s.at < req->size) {
		snprintf(why, why_len, "truncated: the hub sent %llu of %llu bytes",
			 (unsigned long long)s.at, (unsigned long long)req->size);
		return -EMSGSIZE;
	}
	return 0;
}

int fetch_sha256(const char *path, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		rc = -EIO;
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
	return rc;
}
