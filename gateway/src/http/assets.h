/*
 * The dashboard's files (gateway/www), embedded into the binary as C
 * arrays by gateway/www/embed.cmake at build time. Read-only; any thread.
 */
#ifndef GATEWAY_HTTP_ASSETS_H
#define GATEWAY_HTTP_ASSETS_H

#include <stddef.h>

struct http_asset {
	const char *path;         /* "/index.html", "/app.js", ... */
	const char *content_type;
	const unsigned char *data;
	size_t len;
	const unsigned char *gz;  /* the same, gzipped (RFC 1952) */
	size_t gz_len;
	const char *etag;         /* "\"<hex of its SHA-256>\"", quoted */
	const char *etag_gz;      /* "\"<the same>-gz\"": the gzipped one's */
};

extern const struct http_asset http_assets[];
extern const size_t http_n_assets;

#endif
