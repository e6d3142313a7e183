/*
 * Logging to stderr, one line an event: "LEVEL component: message k=v".
 * Each line goes out in one write(2) so lines from threads never mix.
 */
#include "agri/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_LVL_INFO;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(enum log_level lvl)
{
	log_threshold = lvl;
}

bool log_enabled(enum log_level lvl)
{
	return lvl <= log_threshold;
}

int log_level_parse(const char *s, enum log_level *lvl)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*lvl = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static void log_vmsg(enum log_level lvl, const char *component,
		     const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;

	if (!log_enabled(lvl))
		return;
	n = snprintf(line, sizeof(line), "%s %s: ", level_names[lvl], component);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, component, fmt, ap);
	va_end(ap);
}

void log_complain(struct log_complaint *c, enum log_level lvl,
		  const char *component, const char *fmt, ...)
{
	va_list ap;

	if (c->complained)
		return;
	c->complained = true;
	va_start(ap, fmt);
	log_vmsg(lvl, component, fmt, ap);
	va_end(ap);
}

void log_release(struct log_complaint *c, const char *component,
		 const char *fmt, ...)
{
	va_list ap;

	if (!c->complained)
		return;
	c->complained = false;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_INFO, component, fmt, ap);
	va_end(ap);
}
