/*
 * The update agent's bundle download (update.h): HTTPS GET from the hub
 * with HTTP Basic authentication (the station's broker account), resumed
 * with a Range request from the bytes already on disk, capped at the size
 * the signed command gives, optionally rate-limited; and the SHA-256 of a
 * file. libcurl's easy interface on the agent's worker thread.
 */
#ifndef STATION_UPDATE_FETCH_H
#define STATION_UPDATE_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fetch_req {
	const char *url;
	const char *path;      /* the partial file, appended to */
	const char *username;  /* "" = none */
	const char *password;
	const char *ca_file;   /* "" = the system's CAs */
	uint64_t size;         /* the bundle's size from the command */
	int64_t max_bps;       /* 0 = unlimited */
	atomic_bool *cancel;   /* set: stop at the next chunk */
	/* progress, written by fetch_run */
	atomic_uint_fast64_t *have;
};

/*
 * Fetches the rest of req->url into req->path. Returns 0 when the file
 * holds size bytes; -EAGAIN for a transient failure (network, 5xx: try
 * again later, the bytes so far are kept); -EPERM (401/403), -ENOENT
 * (404), -EFBIG (the server has more than size bytes), -EMSGSIZE (it has
 * fewer: truncated), -ECANCELED. why gets a one-line reason.
 */
int fetch_run(const struct fetch_req *req, char *why, size_t why_len);

/* The SHA-256 of path as 64 lowercase hex digits. Returns 0 or -errno. */
int fetch_sha256(const char *path, char hex[65]);

#endif
