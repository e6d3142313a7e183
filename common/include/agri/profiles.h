/*
 * Finding and loading device profiles (<dir>/<name>.json) for the
 * programs: the station, agri-sim and agrictl share this lookup.
 * Default directory: $AGRI_PROFILES_DIR, else the installed
 * ${prefix}/share/agri/profiles, else the source tree's protocols/profiles
 * (a program run from its build folder).
 */
#ifndef AGRI_PROFILES_H
#define AGRI_PROFILES_H

#include <stddef.h>

#include "agri/err.h"
#include "agri/profile.h"

/* The default profiles directory (never NULL). */
const char *profiles_default_dir(void);

/*
 * Loads <dir>/<name>.json (dir NULL = default). Returns 0, -ENOENT when
 * there is no such profile, or -EINVAL with *err (path/reason inside the
 * file) and the file's path in file[].
 */
int profiles_load(const char *dir, const char *name, struct agri_profile *out,
		  char *file, size_t file_len, struct agri_err *err);

/*
 * Lists profile names in dir (NULL = default), sorted, into names[cap]
 * (each AGRI_ID_MAX + 1 bytes). Returns the count or -errno.
 */
int profiles_list(const char *dir, char (*names)[AGRI_ID_MAX + 1], size_t cap);

/*
 * For a profile name that is not in dir (NULL = default): writes into out
 * what a technician can act on: "did you mean \"sensecap-s-ec-01\"?" for
 * the nearest names (edit distance, or a name containing it), then (with
 * list_all, or when none is near) "profiles: a, b, c", those in dir.
 * Always NUL-terminates out.
 */
void profiles_suggest(const char *dir, const char *name, bool list_all, char *out, size_t len);

#endif
