/*
 * Positions in JSON text (see jsonpos.h). The walker trusts that the text
 * parsed (agri_json_parse ran first) and stops where it does not.
 */
#include "jsonpos.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void jsonpos_of_offset(const char *text, size_t len, size_t off, int *line, int *col)
{
	int l = 1, c = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		unsigned char ch = (unsigned char)text[i];

		if (ch == '\n') {
			l++;
			c = 1;
		} else if ((ch & 0xC0) != 0x80) { /* not a UTF-8 continuation byte */
			c++;
		}
	}
	*line = l;
	*col = c;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && strchr(" \t\r\n", s[i]) && s[i])
		i++;
	return i;
}

/* Past the string whose quote is at s[i]. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
	for (i++; i < len && s[i] != '"'; i++)
		if (s[i] == '\\')
			i++;
	return i < len ? i + 1 : len;
}

/* Past the value at s[i]. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
	int depth = 0;

	if (i >= len)
		return len;
	if (s[i] == '"')
		return skip_string(s, len, i);
	if (s[i] != '{' && s[i] != '[') {
		while (i < len && !strchr(",}] \t\r\n", s[i]))
			i++;
		return i;
	}
	for (; i < len; i++) {
		if (s[i] == '"') {
			i = skip_string(s, len, i) - 1;
		} else if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (--depth == 0)
				return i + 1;
		}
	}
	return len;
}

/* The value of member key of the object at s[i]; 0 when absent. */
static size_t member(const char *s, size_t len, size_t i, const char *key, size_t klen)
{
	if (i >= len || s[i] != '{')
		return 0;
	i = skip_ws(s, len, i + 1);
	while (i < len && s[i] == '"') {
		size_t kend = skip_string(s, len, i), v;
		bool match = kend - i - 2 == klen && memcmp(s + i + 1, key, klen) == 0;

		v = skip_ws(s, len, kend);
		if (v >= len || s[v] != ':')
			return 0;
		v = skip_ws(s, len, v + 1);
		if (match)
			return v;
		i = skip_ws(s, len, skip_value(s, len, v));
		if (i < len && s[i] == ',')
			i = skip_ws(s, len, i + 1);
	}
	return 0;
}

/* Element n of the array at s[i]; 0 when absent. */
static size_t element(const char *s, size_t len, size_t i, long n)
{
	if (i >= len || s[i] != '[')
		return 0;
	i = skip_ws(s, len, i + 1);
	for (long k = 0; i < len && s[i] != ']'; k++) {
		if (k == n)
			return i;
		i = skip_ws(s, len, skip_value(s, len, i));
		if (i < len && s[i] == ',')
			i = skip_ws(s, len, i + 1);
	}
	return 0;
}

size_t jsonpos_find(const char *text, size_t len, const char *path)
{
	size_t at = skip_ws(text, len, 0), next;
	const char *p = path;

	while (*p) {
		if (*p == '.') {
			p++;
			continue;
		}
		if (*p == '[') {
			char *end;
			long n = strtol(p + 1, &end, 10);

			if (*end != ']')
				break;
			next = element(text, len, at, n);
			p = end + 1;
		} else {
			size_t k = strcspn(p, ".[");

			next = member(text, len, at, p, k);
			p += k;
		}
		if (!next)
			break;
		at = next;
	}
	return at;
}
