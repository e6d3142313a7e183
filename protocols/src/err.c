/*
 * Validation errors: every parser in protocols/ reports a JSON path and a
 * one-line reason through struct agri_err, and callers print them as
 * "path: reason" (dead letters) or "FILE: path: reason" (config files).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agri/err.h"

void agri_err_set(struct agri_err *err, const char *path, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	snprintf(err->path, sizeof(err->path), "%s", path ? path : "");
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* Keys come from the input: keep the reason on one line. */
	for (char *p = err->path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* Returns 0, or -ENOSPC when buf was too small (it then holds a truncated,
 * NUL-terminated prefix). */
int agri_err_format(const struct agri_err *err, char *buf, size_t len)
{
	int n;

	if (!err || !buf || !len)
		return -EINVAL;
	if (err->path[0])
		n = snprintf(buf, len, "%s: %s", err->path, err->msg);
	else
		n = snprintf(buf, len, "%s", err->msg);
	return (n < 0 || (size_t)n >= len) ? -ENOSPC : 0;
}
