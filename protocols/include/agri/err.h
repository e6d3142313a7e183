/*
 * Validation errors shared by every parser in protocols/: a JSON path
 * ("readings[3].value") and a one-line reason ("expected a number").
 * Parsers fill a struct agri_err on failure; callers print
 * "FILE: path: reason" or store "path: reason" in a dead letter.
 */
#ifndef AGRI_ERR_H
#define AGRI_ERR_H

#include <stddef.h>

#define AGRI_ERR_PATH_MAX 96
#define AGRI_ERR_MSG_MAX 160

struct agri_err {
	char path[AGRI_ERR_PATH_MAX]; /* "" for the document itself */
	char msg[AGRI_ERR_MSG_MAX];
};

/* Sets err (if not NULL) to path/message; printf-style message. Both are
 * truncated to fit; control characters in path become '?'. */
void agri_err_set(struct agri_err *err, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes "path: msg" (or just "msg" when path is empty) into buf.
 * Returns 0, or -ENOSPC when it was truncated to fit. */
int agri_err_format(const struct agri_err *err, char *buf, size_t len);

#endif
