/*
 * RFC 3339 UTC timestamps with milliseconds ("2026-11-22T15:04:05.123Z"),
 * both ways. Time inside the project is int64 milliseconds since the Unix
 * epoch (UTC); on the wire it is always this exact 24-character form.
 */
#ifndef AGRI_TIME_H
#define AGRI_TIME_H

#include <stdint.h>
#include <stddef.h>

#define AGRI_TIME_LEN 24 /* strlen("2026-11-22T15:04:05.123Z") */

/*
 * Parses an RFC 3339 timestamp. Accepted: "YYYY-MM-DDTHH:MM:SS[.fff...]Z"
 * and numeric offsets "+HH:MM"/"-HH:MM" (converted to UTC); fractions beyond
 * milliseconds are truncated. Rejects out-of-range fields (month 13, Feb 30,
 * hour 24, second 61), years outside 1970..9999, and trailing garbage.
 * Returns 0 and writes *ms, or -EINVAL.
 */
int agri_time_parse(const char *s, int64_t *ms);

/* Same, with an explicit length (s need not be NUL-terminated). */
int agri_time_parse_n(const char *s, size_t len, int64_t *ms);

/*
 * Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at least
 * AGRI_TIME_LEN + 1 bytes). Returns 0, -EINVAL when ms is outside
 * years 1970..9999, or -ENOSPC when buf is too small.
 */
int agri_time_format(int64_t ms, char *buf, size_t len);

#endif
