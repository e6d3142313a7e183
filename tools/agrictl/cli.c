/*
 * agrictl's shared command-line pieces (see cli.h).
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/exit.h"
#include "agri/profiles.h"
#include "msgs.h"

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("agrictl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, T(" (see agrictl %s --help)\n"), cmd);
	else
		fputs(T(" (see agrictl --help)\n"), stderr);
	return AGRI_EXIT_USAGE;
}

int cli_int(const char *s, long lo, long hi, bool hex, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, hex ? 0 : 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int bus_opt(const char *cmd, int c, const char *arg, struct bus_opts *b)
{
	long v;

	switch (c) {
	case 'R':
		b->link.rtu_dev = arg;
		return 1;
	case 'T':
		b->link.tcp = arg;
		return 1;
	case 'b':
		if (cli_int(arg, 300, 4000000, false, &v) < 0)
			return -cli_usage(cmd, T("--baud: expected a baud rate, got \"%s\""), arg);
		b->link.baud = (int)v;
		return 1;
	case 'P':
		if (strlen(arg) != 1 || !strchr("NEO", arg[0]))
			return -cli_usage(cmd, T("--parity: expected N, E or O, got \"%s\""), arg);
		b->link.parity = arg[0];
		return 1;
	case 'm':
		if (cli_int(arg, 10, 60000, false, &v) < 0)
			return -cli_usage(cmd, T("--timeout-ms: expected 10..60000, got \"%s\""), arg);
		b->link.timeout_ms = (int)v;
		b->timeout_given = true;
		return 1;
	case 'D':
		b->profiles_dir = arg;
		return 1;
	case 'j':
		b->json = true;
		return 1;
	}
	return 0;
}

int bus_check(const char *cmd, const struct bus_opts *b)
{
	if (!!b->link.rtu_dev == !!b->link.tcp)
		return cli_usage(cmd, "%s", T("give exactly one of --rtu DEV or --tcp HOST:PORT"));
	return 0;
}

int cli_profile(const char *dir, const char *name, struct agri_profile *out)
{
	char file[512], hint[1024];
	struct agri_err e = {0};
	int rc = profiles_load(dir, name, out, file, sizeof(file), &e);

	if (rc == -ENOENT || (rc < 0 && !agri_ident_valid(name))) {
		profiles_suggest(dir, name, true, hint, sizeof(hint));
		fprintf(stderr, T("agrictl: no profile \"%s\": %s\n"), name, hint);
		return AGRI_EXIT_USAGE;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s%s%s\n", file, e.path, *e.path ? ": " : "", e.msg);
		return AGRI_EXIT_CONFIG;
	}
	return 0;
}

void bus_defaults_from(struct bus_opts *b, const struct agri_profile *p)
{
	if (!b->link.baud)
		b->link.baud = p->serial.baud;
	if (!b->link.parity)
		b->link.parity = p->serial.parity;
}
