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
#include "http/http_int.h"

/* --- growing response buffer (capped) ------------------------------- */


static void db_reserve(struct dbuf *b, size_t more)
{
	size_t want = b->len + more + 1, cap;
	char *p;

	if (b->err || want <= b->cap)
		return;
	if (want > RESP_MAX) {
		b->err = -E2BIG;
		return;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap < want)
		cap *= 2;
	if (cap > RESP_MAX)
		cap = RESP_MAX;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return;
	}
	b->p = p;
	b->cap = cap;
}

void http_db_put(struct dbuf *b, const char *s, size_t n)
{
	db_reserve(b, n);
	if (b->err)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void http_db_puts(struct dbuf *b, const char *s)
{
	http_db_put(b, s, strlen(s));
}

void http_db_printf(struct dbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void http_db_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	db_reserve(b, (size_t)n);
	if (b->err)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* A JSON string (quoted); NULL -> null. Control characters escaped,
 * everything else (UTF-8) passed through. */
void http_db_jstr(struct dbuf *b, const char *s)
{
	if (!s) {
		http_db_puts(b, "null");
		return;
	}
	http_db_put(b, "\"", 1);
	for (const char *run = s;; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		http_db_put(b, run, (size_t)(s - run));
		if (!c)
			break;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};

			http_db_put(b, e, 2);
		} else {
			http_db_printf(b, "\\u%04x", c);
		}
		run = s + 1;
	}
	http_db_put(b, "\"", 1);
}

void http_db_jnum(struct dbuf *b, double d)
{
	char tmp[32];

	if (!isfinite(d)) {
		http_db_puts(b, "null");
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof(tmp), "%.17g", d);
	http_db_puts(b, tmp);
}

/* An RFC 3339 time from ms, quoted; out of range -> null. */
void http_db_jtime(struct dbuf *b, int64_t ms)
{
	char t[AGRI_TIME_LEN + 1];

	if (agri_time_format(ms, t, sizeof(t)) < 0) {
		http_db_puts(b, "null");
		return;
	}
	http_db_printf(b, "\"%s\"", t);
}

/* Column helpers: NULL columns become JSON null. */
void http_db_col_str(struct dbuf *b, sqlite3_stmt *q, int i)
{
	http_db_jstr(b, sqlite3_column_type(q, i) == SQLITE_NULL ? NULL
		     : (const char *)sqlite3_column_text(q, i));
}

void http_db_col_num(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		http_db_puts(b, "null");
	else
		http_db_jnum(b, sqlite3_column_double(q, i));
}

void http_db_col_int(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		http_db_puts(b, "null");
	else
		http_db_printf(b, "%lld", (long long)sqlite3_column_int64(q, i));
}

void http_db_col_time(struct dbuf *b, sqlite3_stmt *q, int i)
{
	if (sqlite3_column_type(q, i) == SQLITE_NULL)
		http_db_puts(b, "null");
	else
		http_db_jtime(b, sqlite3_column_int64(q, i));
}

static const char *const q_names[] = {"ok", "suspect", "error", "maint"};

const char *http_q_name(int q)
{
	return q >= 0 && q < 4 ? q_names[q] : "maint";
}

/* --- responses ------------------------------------------------------- */

enum MHD_Result http_send_buf(struct http_server *srv, struct MHD_Connection *c,
			      unsigned code, const char *type, char *p, size_t len,
			      bool must_free, bool page)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, p, must_free ? MHD_RESPMEM_MUST_FREE
							      : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(p);
		return MHD_NO;
	}
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
	if (code == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"agri-gateway\"");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	atomic_fetch_add(&srv->requests, 1);
	if (code >= 500)
		atomic_fetch_add(&srv->errors_5xx, 1);
	else if (code >= 400)
		atomic_fetch_add(&srv->errors_4xx, 1);
	return ret;
}

/* Sends b (taking its memory); a failed buffer becomes a 413/500 error. */

enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

enum MHD_Result http_send_error(struct http_server *srv, struct MHD_Connection *c,
				unsigned code, const char *fmt, ...)
{
	struct dbuf b = {0};
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	http_db_puts(&b, "{\"error\":");
	http_db_jstr(&b, msg);
	http_db_puts(&b, "}\n");
	if (b.err) {
		free(b.p);
		return MHD_NO;
	}
	return http_send_buf(srv, c, code, "application/json", b.p, b.len, true, false);
}

enum MHD_Result http_send_dbuf(struct http_server *srv, struct MHD_Connection *c,
			       unsigned code, const char *type, struct dbuf *b)
{
	if (b->err) {
		int e = b->err;

		free(b->p);
		if (e == -E2BIG)
			return http_send_error(srv, c, MHD_HTTP_CONTENT_TOO_LARGE,
					       "response over %u MiB: ask for less (limit, from, to)",
					       RESP_MAX >> 20);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (!b->p)
		http_db_puts(b, "");
	return http_send_buf(srv, c, code, type, b->p, b->len, true, false);
}
