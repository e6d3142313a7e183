/*
 * Logging to stderr, one line an event: "LEVEL component: message k=v".
 * Each line goes out in one write(2) so lines from threads never mix.
 * Under systemd, whose journal reads a service's stderr, a line starts with
 * its syslog priority ("<4>WARN ...", sd-daemon(3)): journald strips the
 * prefix and files the line at that priority. The prefix is written only
 * when fd 2 is the stream JOURNAL_STREAM names, so a terminal, a pipe or a
 * log file (or a child whose stderr was redirected) sees plain lines.
 */
#include "agri/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_LVL_INFO;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const char *const level_prefixes[] = {"<3>", "<4>", "<6>", "<7>"};

/* Whether fd 2 is the journal: 0 not looked yet, 1 no, 2 yes. Threads that
 * log their first lines together may each look; they find the same. */
static atomic_int journal_state;

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

/* Parses "DEV:INO" (decimal, as systemd writes JOURNAL_STREAM). */
static int parse_dev_ino(const char *s, unsigned long long *dev, unsigned long long *ino)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*dev = strtoull(s, &end, 10);
	if (errno || *end != ':' || end[1] < '0' || end[1] > '9')
		return -EINVAL;
	*ino = strtoull(end + 1, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

bool log_detect_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	bool yes;

	yes = env && parse_dev_ino(env, &dev, &ino) == 0 && fstat(STDERR_FILENO, &st) == 0 &&
	      (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	atomic_store_explicit(&journal_state, yes ? 2 : 1, memory_order_relaxed);
	return yes;
}

static bool to_journal(void)
{
	int state = atomic_load_explicit(&journal_state, memory_order_relaxed);

	return state ? state == 2 : log_detect_journal();
}

static void log_vmsg(enum log_level lvl, const char *component,
		     const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
static void log_vmsg(enum log_level lvl, const char *component,
		     const char *fmt, va_list ap)
{
	char line[1024];
	int n, m;

	if (!log_enabled(lvl))
		return;
	n = snprintf(line, sizeof(line), "%s%s %s: ", to_journal() ? level_prefixes[lvl] : "",
		     level_names[lvl], component);
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
