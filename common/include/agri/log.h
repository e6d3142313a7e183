/*
 * Logging for the daemons: one line an event on stderr, journald-friendly:
 *   LEVEL component: message key=value ...
 * When stderr is the systemd journal (JOURNAL_STREAM names its device and
 * inode, sd-daemon(3)), each line starts with its syslog priority, "<3>"
 * error, "<4>" warning, "<6>" info, "<7>" debug, so `journalctl -p` filters
 * them; anywhere else the lines are written as above (docs/logging.md).
 * A failure that repeats is logged once and again when it recovers
 * (log_complain / log_release, after collectd's c_complain). Thread-safe:
 * each line is written with a single write(2).
 */
#ifndef AGRI_LOG_H
#define AGRI_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the global threshold; lines above it are not written. */
void log_set_level(enum log_level lvl);
/* Parses "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *lvl);
bool log_enabled(enum log_level lvl);

/* Looks again whether stderr is the journal (JOURNAL_STREAM against
 * fstat(2) of fd 2) and returns the answer. The first line logged looks by
 * itself; call this only after replacing fd 2 or the variable (tests), from
 * one thread while no other logs. */
bool log_detect_journal(void);

void log_msg(enum log_level lvl, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(c, ...) log_msg(LOG_LVL_ERROR, c, __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_LVL_WARN, c, __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_LVL_INFO, c, __VA_ARGS__)
#define log_debug(c, ...) log_msg(LOG_LVL_DEBUG, c, __VA_ARGS__)

/* A repeating failure: logs at lvl the first time (complained == false),
 * then stays quiet until log_release. */
struct log_complaint {
	bool complained;
};
void log_complain(struct log_complaint *c, enum log_level lvl,
		  const char *component, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Logs the recovery at INFO if a complaint was logged, and resets it. */
void log_release(struct log_complaint *c, const char *component,
		 const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
