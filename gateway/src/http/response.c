/*
 * Responses of the HTTP API: a capped growing buffer with JSON helpers
 * (values straight from SQLite columns), and the send functions (JSON
 * errors, counters of 4xx and 5xx).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/assets.h"
#include "http/http_int.h"

/* --- JSON values for responses ---------------------------------------- */

/* A number; non-finite -> null (a response says "no value", it does not fail). */
void http_json_num(struct agri_buf *b, double d)
{
	if (isfinite(d))
		agri_buf_json_num(b, d);
	else
		agri_buf_puts(b, "null");
}

/* An RFC 3339 time from ms, quoted; out of range -> null. */
void http_json_time(struct agri_buf *b, int64_t ms)
{
	char t[AGRI_TIME_LEN + 1];

	if (agri_time_format(ms, t, sizeof(t)) < 0)
		agri_buf_puts(b, "null");
	else
		agri_buf_printf(b, "\"%s\"", t);
}

void http_db_col_str(struct agri_buf *b, sqlite3_stmt *q, int i)
{
	agri_buf_json_text(b, sqlite3_column_type(q, i) == SQLITE_NULL ? NULL
		     : (const char *)sqlite3_column_text(q, i));
}

void http_db_col_num(struct agri_buf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		agri_buf_puts(b, "null");
	else
		http_json_num(b, sqlite3_column_double(q, i));
}

void http_db_col_int(struct agri_buf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		agri_buf_puts(b, "null");
	else
		agri_buf_printf(b, "%lld", (long long)sqlite3_column_int64(q, i));
}

void http_db_col_time(struct agri_buf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		agri_buf_puts(b, "null");
	else
		http_json_time(b, sqlite3_column_int64(q, i));
}

static const char *const q_names[] = {"ok", "suspect", "error", "maint"};

const char *http_q_name(int q)
{
	return q >= 0 && q < 4 ? q_names[q] : "maint";
}

/* --- responses ------------------------------------------------------- */

/* The headers every answer carries; page: the dashboard's (its CSP). */
static void common_headers(struct MHD_Response *r, const char *type, bool page)
{
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	if (page) {
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'none'; script-src 'self'; style-src 'self';"
					" img-src 'self' data:; connect-src 'self'; base-uri 'none';"
					" form-action 'none'; frame-ancestors 'none'");
		MHD_add_response_header(r, "Cache-Control", "no-cache");
	} else {
		MHD_add_response_header(r, "Content-Security-Policy",
					"default-src 'none'; frame-ancestors 'none'");
		MHD_add_response_header(r, "Cache-Control", "no-store");
	}
}

/* Queues r with code, counts it and releases r. */
static enum MHD_Result queue(struct http_server *srv, struct MHD_Connection *c,
			     unsigned code, struct MHD_Response *r)
{
	enum MHD_Result ret = MHD_queue_response(c, code, r);

	MHD_destroy_response(r);
	atomic_fetch_add(&srv->requests, 1);
	if (code >= 500)
		atomic_fetch_add(&srv->errors_5xx, 1);
	else if (code >= 400)
		atomic_fetch_add(&srv->errors_4xx, 1);
	return ret;
}

enum MHD_Result http_send_buf(struct http_server *srv, struct MHD_Connection *c,
			      unsigned code, const char *type, char *p, size_t len,
			      bool must_free, bool page)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(len, p, must_free ? MHD_RESPMEM_MUST_FREE
							      : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(p);
		return MHD_NO;
	}
	common_headers(r, type, page);
	if (code == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"agri-gateway\"");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
	return queue(srv, c, code, r);
}

enum MHD_Result http_send_asset(struct http_server *srv, struct MHD_Connection *c,
				const struct http_asset *a, bool gz, bool not_modified)
{
	struct MHD_Response *r;

	if (not_modified)
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	else
		r = MHD_create_response_from_buffer(gz ? a->gz_len : a->len,
						    (void *)(gz ? a->gz : a->data),
						    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	common_headers(r, a->content_type, true);
	MHD_add_response_header(r, "ETag", gz ? a->etag_gz : a->etag);
	MHD_add_response_header(r, "Vary", "Accept-Encoding");
	if (gz && !not_modified)
		MHD_add_response_header(r, "Content-Encoding", "gzip");
	return queue(srv, c, not_modified ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
}

/* Sends b (taking its memory); a failed buffer becomes a 413/500 error. */

enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *fmt, ...)
{
	struct agri_buf b = AGRI_BUF_HEAP(RESP_MAX);
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agri_buf_puts(&b, "{\"error\":");
	agri_buf_json_text(&b, msg);
	agri_buf_puts(&b, "}\n");
	if (b.err) {
		agri_buf_free(&b);
		return MHD_NO;
	}
	return http_send_buf(srv, c, code, "application/json", b.p, b.len, true, false);
}

enum MHD_Result http_send_limited(struct http_server *srv, struct MHD_Connection *c,
				  int retry_s, const char *fmt, ...)
{
	char msg[256], body[400], retry[16];
	struct agri_buf b;
	struct MHD_Response *r;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agri_buf_init(&b, body, sizeof(body));
	agri_buf_puts(&b, "{\"error\":");
	agri_buf_json_text(&b, msg);
	agri_buf_puts(&b, "}\n");
	r = MHD_create_response_from_buffer(b.len, body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	common_headers(r, "application/json", false);
	snprintf(retry, sizeof(retry), "%d", retry_s);
	MHD_add_response_header(r, "Retry-After", retry);
	return queue(srv, c, MHD_HTTP_TOO_MANY_REQUESTS, r);
}

/* FNV-1a, 64 bits: an answer's ETag (tells a poller nothing changed). */
static uint64_t fnv64(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

enum MHD_Result http_send_dbuf(struct http_server *srv, struct MHD_Connection *c,
			       unsigned code, const char *type, struct agri_buf *b)
{
	struct MHD_Response *r;
	char etag[24];

	if (b->err) {
		int e = b->err;

		agri_buf_free(b);
		if (e == -ENOSPC)
			return http_send_error(srv, c, MHD_HTTP_CONTENT_TOO_LARGE,
					       "response over %u MiB: ask for less (limit, history, from, to)",
					       RESP_MAX >> 20);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (!b->p)
		agri_buf_puts(b, "");
	if (code != MHD_HTTP_OK)
		return http_send_buf(srv, c, code, type, b->p, b->len, true, false);
	/* A 200 carries an ETag; a client that sends it back in If-None-Match
	 * (the dashboard's polls) gets a 304 without the body when nothing
	 * changed. Cache-Control stays no-store: nothing is kept by caches. */
	snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)fnv64(b->p, b->len));
	if (http_etag_matches(c, etag)) {
		agri_buf_free(b);
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_MODIFIED;
	} else {
		r = MHD_create_response_from_buffer(b->len, b->p, MHD_RESPMEM_MUST_FREE);
		if (!r)
			agri_buf_free(b);
	}
	if (!r)
		return MHD_NO;
	common_headers(r, type, false);
	MHD_add_response_header(r, "ETag", etag);
	return queue(srv, c, code, r);
}

bool http_etag_matches(struct MHD_Connection *c, const char *etag)
{
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);

	return inm && strstr(inm, etag);
}

enum MHD_Result http_send_page(struct http_server *srv, struct MHD_Connection *c,
			       const char *type, const char *etag, const char *link,
			       char *body, size_t len, bool must_free, MHD_ContentReaderCallback crc,
			       void *cls, MHD_ContentReaderFreeCallback crfc)
{
	unsigned code = MHD_HTTP_OK;
	struct MHD_Response *r;

	if (http_etag_matches(c, etag)) {
		if (crfc)
			crfc(cls);
		if (must_free)
			free(body);
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_MODIFIED;
	} else if (crc) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, crc, cls, crfc);
		if (!r && crfc)
			crfc(cls);
	} else {
		r = MHD_create_response_from_buffer(len, body, must_free ? MHD_RESPMEM_MUST_FREE
									 : MHD_RESPMEM_MUST_COPY);
		if (!r && must_free)
			free(body);
	}
	if (!r)
		return MHD_NO;
	common_headers(r, type, false);
	MHD_add_response_header(r, "ETag", etag);
	if (link && *link)
		MHD_add_response_header(r, "Link", link);
	return queue(srv, c, code, r);
}
