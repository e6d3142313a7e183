/*
 * agrictl's Vietnamese catalogue (tools/agrictl/msgs.c, issue 22): every
 * entry's Vietnamese takes the same conversions in the same order as its
 * English (a printf with the wrong one would crash or lie); T() gives the
 * Vietnamese under a vi locale and the English otherwise, and the English
 * itself for a text the catalogue lacks. (test_agrictl_toolbox.py checks
 * that every text the code prints through T() is in the catalogue.)
 */
#include <stdlib.h>
#include <string.h>

#include "msgs.h"
#include "test.h"

/* The conversions of a printf format, as "s d .4f" (flags and widths kept). */
static void conversions(const char *f, char *out, size_t len)
{
	size_t n = 0;

	out[0] = '\0';
	for (; *f; f++) {
		if (*f != '%')
			continue;
		f++;
		if (*f == '%')
			continue;
		while (*f && !strchr("diouxXeEfgGcsp", *f) && n + 2 < len)
			out[n++] = *f++;
		if (*f && n + 2 < len) {
			out[n++] = *f;
			out[n++] = ' ';
		}
		if (!*f)
			break;
	}
	out[n] = '\0';
}

int main(void)
{
	const char *en, *vi;
	char a[256], b[256];
	size_t i;

	for (i = 0; msgs_entry(i, &en, &vi); i++) {
		CHECK(en && vi && vi[0]);
		conversions(en, a, sizeof(a));
		conversions(vi, b, sizeof(b));
		if (strcmp(a, b))
			fprintf(stderr, "  entry %zu: \"%s\"\n", i, en);
		CHECK_STR(a, b);
	}
	CHECK(i > 200);
	msgs_set_lang(1);
	CHECK(msgs_vi());
	CHECK_STR(T("no answer (timeout)"), "không trả lời (hết thời gian chờ)");
	CHECK_STR(T("a text nobody wrote"), "a text nobody wrote");
	msgs_set_lang(0);
	CHECK_STR(T("no answer (timeout)"), "no answer (timeout)");
	setenv("LANG", "vi_VN.UTF-8", 1);
	unsetenv("LC_ALL");
	unsetenv("LC_MESSAGES");
	msgs_set_lang(-1);
	CHECK(msgs_vi());
	setenv("LC_ALL", "C.UTF-8", 1);
	msgs_set_lang(-1);
	CHECK(!msgs_vi());
	return test_main("test_agrictl_msgs");
}
