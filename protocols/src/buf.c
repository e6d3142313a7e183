/*
 * The capped text buffer and its JSON writers (see agri/buf.h).
 */
#include "agri/buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/time.h"
#include "utf8.h"

void agri_buf_init(struct agri_buf *b, char *storage, size_t size)
{
	*b = (struct agri_buf){.p = storage, .cap = size, .max = size};
	if (storage && size)
		storage[0] = '\0';
	else
		b->err = -ENOSPC;
}

void agri_buf_init_heap(struct agri_buf *b, size_t max)
{
	*b = (struct agri_buf){.max = max, .heap = true};
}

void agri_buf_free(struct agri_buf *b)
{
	if (b->heap) {
		free(b->p);
		b->p = NULL;
		b->cap = b->len = 0;
	}
}

int agri_buf_end(const struct agri_buf *b)
{
	return b->err ? b->err : (int)b->len;
}

void agri_buf_fail(struct agri_buf *b, int err)
{
	if (!b->err)
		b->err = err;
}

/* Room for n more bytes and the NUL. */
static bool reserve(struct agri_buf *b, size_t n)
{
	size_t want = b->len + n + 1, cap;
	char *p;

	if (b->err)
		return false;
	if (want <= b->cap)
		return true;
	if (!b->heap || want > b->max) {
		agri_buf_fail(b, -ENOSPC);
		return false;
	}
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	if (!(p = realloc(b->p, cap))) {
		agri_buf_fail(b, -ENOMEM);
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void agri_buf_put(struct agri_buf *b, const void *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void agri_buf_puts(struct agri_buf *b, const char *s)
{
	agri_buf_put(b, s, strlen(s));
}

void agri_buf_printf(struct agri_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		agri_buf_fail(b, -EINVAL);
		return;
	}
	if (!reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void escape(struct agri_buf *b, const char *str, bool strict)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);

	for (size_t i = 0; i < n && !b->err;) {
		size_t j = i, k;

		while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
			j++;
		if (j > i) {
			agri_buf_put(b, s + i, j - i);
			i = j;
		} else if (s[i] >= 0x80) {
			if ((k = agri_utf8_len(s + i, n - i))) {
				agri_buf_put(b, s + i, k);
				i += k;
			} else if (strict) {
				agri_buf_fail(b, -EINVAL);
			} else {
				agri_buf_puts(b, "\\ufffd");
				i++;
			}
		} else {
			const char *e = s[i] == '"' ? "\\\"" : s[i] == '\\' ? "\\\\" :
					s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" :
					s[i] == '\t' ? "\\t" : s[i] == '\b' ? "\\b" :
					s[i] == '\f' ? "\\f" : NULL;

			if (e)
				agri_buf_puts(b, e);
			else
				agri_buf_printf(b, "\\u%04x", s[i]);
			i++;
		}
	}
}

void agri_buf_json_str(struct agri_buf *b, const char *s)
{
	if (!s) {
		agri_buf_puts(b, "null");
		return;
	}
	agri_buf_put(b, "\"", 1);
	escape(b, s, true);
	agri_buf_put(b, "\"", 1);
}

void agri_buf_json_text(struct agri_buf *b, const char *s)
{
	if (!s) {
		agri_buf_puts(b, "null");
		return;
	}
	agri_buf_put(b, "\"", 1);
	escape(b, s, false);
	agri_buf_put(b, "\"", 1);
}

void agri_buf_json_inner(struct agri_buf *b, const char *s)
{
	escape(b, s, false);
}

void agri_buf_json_num(struct agri_buf *b, double d)
{
	char tmp[32];

	if (!isfinite(d)) {
		agri_buf_fail(b, -EINVAL);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%.15g", d);
	if (strtod(tmp, NULL) != d)
		snprintf(tmp, sizeof(tmp), "%.17g", d);
	agri_buf_puts(b, tmp);
}

void agri_buf_json_time(struct agri_buf *b, int64_t ms)
{
	char t[AGRI_TIME_LEN + 1];

	if (agri_time_format(ms, t, sizeof(t)) < 0) {
		agri_buf_fail(b, -EINVAL);
		return;
	}
	agri_buf_put(b, "\"", 1);
	agri_buf_puts(b, t);
	agri_buf_put(b, "\"", 1);
}
