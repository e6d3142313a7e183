/*
 * Profile lookup shared by agri-station, agri-sim and agrictl.
 */
#include "agri/profiles.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agri/topic.h"
#include "agri/util.h"

#ifndef AGRI_PROFILES_INSTALL_DIR
#define AGRI_PROFILES_INSTALL_DIR "/usr/share/agri/profiles"
#endif

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *profiles_default_dir(void)
{
	const char *env = getenv("AGRI_PROFILES_DIR");

	if (env && *env)
		return env;
	if (is_dir(AGRI_PROFILES_INSTALL_DIR))
		return AGRI_PROFILES_INSTALL_DIR;
	return AGRI_SOURCE_DIR "/protocols/profiles";
}

int profiles_load(const char *dir, const char *name, struct agri_profile *out,
		  char *file, size_t file_len, struct agri_err *err)
{
	char *buf;
	size_t len;
	int rc;

	if (!agri_ident_valid(name)) {
		agri_err_set(err, "", "invalid profile name \"%.40s\"", name);
		snprintf(file, file_len, "%s", name);
		return -EINVAL;
	}
	if (!dir)
		dir = profiles_default_dir();
	if (snprintf(file, file_len, "%s/%s.json", dir, name) >= (int)file_len)
		return -ENAMETOOLONG;
	rc = util_read_file(file, 256 * 1024, &buf, &len);
	if (rc < 0) {
		agri_err_set(err, "", "cannot read profile: %s", strerror(-rc));
		return rc;
	}
	rc = agri_profile_parse(buf, len, out, err);
	free(buf);
	if (rc == 0 && strcmp(out->name, name) != 0) {
		agri_err_set(err, "profile", "\"%s\" does not match the file name",
			     out->name);
		rc = -EINVAL;
	}
	return rc < 0 ? -EINVAL : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

int profiles_list(const char *dir, char (*names)[AGRI_ID_MAX + 1], size_t cap)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (!dir)
		dir = profiles_default_dir();
	d = opendir(dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < cap) {
		size_t l = strlen(de->d_name);

		if (l <= 5 || l - 5 > AGRI_ID_MAX ||
		    strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		memcpy(names[n], de->d_name, l - 5);
		names[n][l - 5] = '\0';
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(names[0]), name_cmp);
	return (int)n;
}

/* Levenshtein distance of a and b (both at most AGRI_ID_MAX + 40 bytes). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[80], cur[80];

	if (la >= 80 || lb >= 80)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

void profiles_suggest(const char *dir, const char *name, bool list_all, char *out, size_t len)
{
	static char names[64][AGRI_ID_MAX + 1];
	size_t best = SIZE_MAX, pos = 0;
	int n;

	if (!len)
		return;
	out[0] = '\0';
	if (!dir)
		dir = profiles_default_dir();
	n = profiles_list(dir, names, 64);
	if (n <= 0) {
		snprintf(out, len, "no profiles in %s", dir);
		return;
	}
	for (int i = 0; i < n; i++) {
		size_t d = edit_distance(name, names[i]);

		if (name[0] && strstr(names[i], name))
			d = 0; /* "sensecap" -> "sensecap-s-ec-01" */
		if (d < best)
			best = d;
	}
	/* Near: within a third of the name's length (typos), or containing it. */
	if (best <= strlen(name) / 3 + 1) {
		bool first = true;

		for (int i = 0; i < n && pos < len; i++) {
			size_t d = edit_distance(name, names[i]);

			if (name[0] && strstr(names[i], name))
				d = 0;
			if (d != best)
				continue;
			pos += (size_t)snprintf(out + pos, len - pos, "%s\"%s\"",
						first ? "did you mean " : " or ", names[i]);
			first = false;
		}
		if (pos < len)
			pos += (size_t)snprintf(out + pos, len - pos, "?%s", list_all ? " " : "");
		if (!list_all)
			return;
	}
	if (pos < len)
		pos += (size_t)snprintf(out + pos, len - pos, "profiles:");
	for (int i = 0; i < n && pos < len; i++)
		pos += (size_t)snprintf(out + pos, len - pos, "%s %s", i ? "," : "", names[i]);
}
