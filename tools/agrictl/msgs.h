/*
 * agrictl's messages in the technician's language: English, or
 * Vietnamese when the locale says so (LC_ALL, else LC_MESSAGES, else LANG
 * starting with "vi"). A catalogue keyed by the English text, as the
 * gateway's alert texts keep one table of both languages
 * (gateway/src/alerts/text.c): T("no slave answered on %s") returns the
 * Vietnamese format when there is one and the locale is vi, else the
 * English itself. Both formats take the same arguments in the same order
 * (test_agrictl_msgs checks every entry). Runs in agrictl's single thread.
 */
#ifndef AGRICTL_MSGS_H
#define AGRICTL_MSGS_H

#include <stdbool.h>
#include <stddef.h>

/* The message en in the technician's language (never NULL). */
const char *T(const char *en) __attribute__((format_arg(1)));

/* True when messages are Vietnamese. */
bool msgs_vi(void);

/* For tests: forces the language (1 vi, 0 en, -1 from the environment). */
void msgs_set_lang(int vi);

/* The catalogue, for tests: entry i's English and Vietnamese texts;
 * returns false past the end. */
bool msgs_entry(size_t i, const char **en, const char **vi);

#endif
