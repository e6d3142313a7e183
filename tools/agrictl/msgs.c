/*
 * agrictl's message catalogue (see msgs.h): the English text, as written in
 * the code, and its Vietnamese. The table is in msgs_vi.h, one entry a
 * message, in the order of the files that print them.
 */
#include "msgs.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *en, *vi;
} catalogue[] = {
#include "msgs_vi.h"
};

#define N_ENTRIES (sizeof(catalogue) / sizeof(catalogue[0]))

static int lang = -1; /* -1: not decided yet */

static bool env_vi(void)
{
	static const char *const vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};

	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(vars[i]);

		if (v && *v)
			return strncmp(v, "vi", 2) == 0;
	}
	return false;
}

bool msgs_vi(void)
{
	if (lang < 0)
		lang = env_vi() ? 1 : 0;
	return lang == 1;
}

void msgs_set_lang(int vi)
{
	lang = vi;
}

const char *T(const char *en)
{
	if (!en || !msgs_vi())
		return en;
	for (size_t i = 0; i < N_ENTRIES; i++)
		if (catalogue[i].en && !strcmp(catalogue[i].en, en))
			return catalogue[i].vi;
	return en;
}

bool msgs_entry(size_t i, const char **en, const char **vi)
{
	if (i >= N_ENTRIES)
		return false;
	*en = catalogue[i].en;
	*vi = catalogue[i].vi;
	return true;
}
