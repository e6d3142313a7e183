/*
 * `agrictl provision`: a new station's password file, its hashed entry in
 * the broker's password file (replacing an older entry of the same user),
 * its ACL block (added once), and a station.json to start from.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agri/util.h"
#include "agrictl.h"
#include "provision.h"

#define PBKDF2_ITERATIONS 101 /* mosquitto_passwd 2.0's default; the password is 192 random bits */

/* Replaces user's line in a mosquitto password file, or appends it. */
static int passwd_put(const char *path, const char *user, const char *entry)
{
	char *old = NULL, *out, *line, *save = NULL;
	size_t len = 0, ulen = strlen(user), pos = 0;
	int rc = util_read_file(path, 16 << 20, &old, &len);

	if (rc == -ENOENT) {
		old = strdup("");
		len = 0;
	} else if (rc < 0) {
		return rc;
	}
	out = malloc(len + strlen(entry) + 2);
	if (!out || !old) {
		free(old);
		free(out);
		return -ENOMEM;
	}
	for (line = strtok_r(old, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, user, ulen) == 0 && line[ulen] == ':')
			continue; /* rotated: the new entry replaces it */
		pos += (size_t)sprintf(out + pos, "%s\n", line);
	}
	pos += (size_t)sprintf(out + pos, "%s\n", entry);
	rc = util_write_file_atomic(path, out, pos);
	free(old);
	free(out);
	return rc;
}

static int acl_put(const char *path, const char *station, const char *block)
{
	char *old = NULL, marker[128];
	size_t len = 0;
	FILE *f;
	int rc = util_read_file(path, 16 << 20, &old, &len);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	snprintf(marker, sizeof(marker), "\nuser %s\n", station);
	if (old && strstr(old, marker)) {
		free(old);
		return 0; /* already there */
	}
	free(old);
	f = fopen(path, "a");
	if (!f)
		return -errno;
	fputs(block, f);
	rc = fclose(f) ? -errno : 0;
	return rc;
}

int agrictl_provision(const char *station, const char *out_dir,
		      const char *passwd_file, const char *acl_file,
		      const char *broker, const char *prefix)
{
	char password[64], entry[512], acl[1024], path[4096], json[2048];
	bool tls = strncmp(broker, "ssl://", 6) == 0 || strncmp(broker, "mqtts://", 8) == 0;
	int rc, n;

	if ((rc = util_mkdirs(out_dir, 0750)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", out_dir, strerror(-rc));
		return 1;
	}
	if (provision_password(password, sizeof(password)) < 0 ||
	    provision_passwd_entry(station, password, PBKDF2_ITERATIONS, entry, sizeof(entry)) < 0 ||
	    provision_acl(station, prefix, acl, sizeof(acl)) < 0) {
		fprintf(stderr, "agrictl: cannot make credentials\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/station.pass", out_dir);
	n = snprintf(json, sizeof(json), "%s\n", password);
	if ((rc = util_write_file_atomic(path, json, (size_t)n)) < 0 || chmod(path, 0600) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", path, strerror(rc < 0 ? -rc : errno));
		return 1;
	}
	if ((rc = passwd_put(passwd_file, station, entry)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", passwd_file, strerror(-rc));
		return 1;
	}
	if ((rc = acl_put(acl_file, station, acl)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", acl_file, strerror(-rc));
		return 1;
	}
	n = snprintf(json, sizeof(json),
		     "{\n"
		     "  \"station\": \"%s\",\n"
		     "  \"broker\": {\"url\": \"%s\", \"username\": \"%s\", \"password_file\": \"station.pass\",\n"
		     "             \"ca_file\": %s, \"topic_prefix\": \"%s\"},\n"
		     "  \"state_dir\": \"/var/lib/agri/station\",\n"
		     "  \"buses\": [\n"
		     "    {\"name\": \"rs485\", \"rtu\": {\"device\": \"/dev/ttyAMA0\", \"baud\": 9600}}\n"
		     "  ],\n"
		     "  \"sensors\": [\n"
		     "    {\"name\": \"sonde1\", \"bus\": \"rs485\", \"slave\": 1, \"profile\": \"sensecap-s-ec-01\", \"interval_s\": 60}\n"
		     "  ]\n"
		     "}\n",
		     station, broker, station, tls ? "\"ca.crt\"" : "null", prefix);
	snprintf(path, sizeof(path), "%s/station.json", out_dir);
	if ((rc = util_write_file_atomic(path, json, (size_t)n)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", path, strerror(-rc));
		return 1;
	}
	memset(password, 0, sizeof(password));
	printf("provisioned %s: %s/station.json, %s/station.pass (0600); "
	       "entry in %s, ACL in %s (reload the broker: kill -HUP)\n",
	       station, out_dir, out_dir, passwd_file, acl_file);
	return 0;
}
