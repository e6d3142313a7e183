/*
 * UTF-8 validation shared inside protocols/: the JSON pre-scan (json.c)
 * refuses what the writers (buf.c) would refuse or replace, by the same
 * rule (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF). Internal: not installed with include/agri/.
 */
#ifndef AGRI_UTF8_H
#define AGRI_UTF8_H

#include <stddef.h>

/* The length of the valid multi-byte sequence at s[0..n) (s[0] >= 0x80),
 * or 0 when it is not one. */
static inline size_t agri_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t k;

	if (c >= 0xc2 && c <= 0xdf)
		k = 1;
	else if (c >= 0xe0 && c <= 0xef)
		k = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 3;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* > U+10FFFF */
	if (k >= n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i <= k; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return k + 1;
}

#endif
