/*
 * `agrictl provision --technician` and `--technicians` (technician.h).
 * Files are written under a temporary name made by mkstemp (mode 0600
 * from creation), given their final mode, synced, and only then linked
 * (private key: never replacing one) or renamed to their final name, so
 * no reader ever sees a partial key or a private key with a wider mode.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agri/sign.h"
#include "agri/util.h"
#include "technician.h"

#define PEM_MAX 1024

/* Writes data to path with mode: replace=false fails with -EEXIST when
 * path exists. Returns 0 or -errno. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode,
		      bool replace)
{
	char tmp[4096];
	size_t off = 0;
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0)
		rc = -errno;
	while (rc == 0 && off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else
			off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && replace && rename(tmp, path) < 0)
		rc = -errno;
	if (rc == 0 && !replace && link(tmp, path) < 0)
		rc = -errno;
	if (rc < 0 || !replace)
		unlink(tmp);
	return rc;
}

int technician_new(const char *name, const char *out_dir)
{
	char key_path[4096], pub_path[4096], pem[PEM_MAX];
	struct sign_key *k = NULL;
	int rc, n, result = 1;

	if (!sign_name_valid(name)) {
		fprintf(stderr, "agrictl: --technician: \"%s\" is not a valid name "
			"([A-Za-z0-9_-]{1,32})\n", name);
		return 2;
	}
	snprintf(key_path, sizeof(key_path), "%s/%s.key", out_dir, name);
	snprintf(pub_path, sizeof(pub_path), "%s/%s.pub", out_dir, name);
	if ((rc = util_mkdirs(out_dir, 0700)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", out_dir, strerror(-rc));
		return 1;
	}
	if (access(key_path, F_OK) == 0) {
		fprintf(stderr, "agrictl: %s exists: remove it first to make a new key "
			"(stations trust the old one until its .pub is replaced)\n", key_path);
		return 1;
	}
	if (sign_key_new(&k) < 0) {
		fprintf(stderr, "agrictl: cannot make a key pair\n");
		return 1;
	}
	n = sign_key_private_pem(k, pem, sizeof(pem));
	if (n < 0 || (rc = write_file(key_path, pem, (size_t)n, 0600, false)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", key_path,
			n < 0 ? "cannot encode the key" : strerror(-rc));
		goto out;
	}
	n = sign_key_public_pem(k, pem, sizeof(pem));
	if (n < 0 || (rc = write_file(pub_path, pem, (size_t)n, 0644, true)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", pub_path,
			n < 0 ? "cannot encode the key" : strerror(-rc));
		unlink(key_path);
		goto out;
	}
	printf("technician %s: private key %s (0600: keep it to yourself), public key %s "
	       "(install it on stations: agrictl provision --station ... --technicians %s)\n",
	       name, key_path, pub_path, out_dir);
	result = 0;
out:
	memset(pem, 0, sizeof(pem));
	sign_key_free(k);
	return result;
}

int technician_install(const char *from_dir, const char *out_dir)
{
	char dst_dir[4096], src[4096], dst[4096], name[SIGN_NAME_MAX + 1], pem[PEM_MAX];
	struct dirent *e;
	int rc, n, installed = 0, result = 0;
	DIR *d;

	if (snprintf(dst_dir, sizeof(dst_dir), "%s/technicians", out_dir) >= (int)sizeof(dst_dir))
		return 1;
	d = opendir(from_dir);
	if (!d) {
		fprintf(stderr, "agrictl: --technicians %s: %s\n", from_dir, strerror(errno));
		return 1;
	}
	if ((rc = util_mkdirs(dst_dir, 0755)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", dst_dir, strerror(-rc));
		closedir(d);
		return 1;
	}
	while ((e = readdir(d))) {
		struct sign_key *k = NULL;
		size_t len = strlen(e->d_name);

		if (len <= 4 || strcmp(e->d_name + len - 4, ".pub"))
			continue;
		if (len - 4 > SIGN_NAME_MAX) {
			fprintf(stderr, "agrictl: skipping %s/%s: not a technician name\n", from_dir,
				e->d_name);
			continue;
		}
		memcpy(name, e->d_name, len - 4);
		name[len - 4] = '\0';
		if (snprintf(src, sizeof(src), "%s/%s", from_dir, e->d_name) >= (int)sizeof(src) ||
		    !sign_name_valid(name) || sign_key_read_public(src, &k) < 0) {
			fprintf(stderr, "agrictl: skipping %s: not NAME.pub with an Ed25519 public key\n",
				src);
			continue;
		}
		n = sign_key_public_pem(k, pem, sizeof(pem));
		sign_key_free(k);
		if (snprintf(dst, sizeof(dst), "%s/%s.pub", dst_dir, name) >= (int)sizeof(dst))
			n = -ENAMETOOLONG;
		if (n < 0 || (rc = write_file(dst, pem, (size_t)n, 0644, true)) < 0) {
			fprintf(stderr, "agrictl: %s: %s\n", dst, n < 0 ? "cannot encode" : strerror(-rc));
			result = 1;
			continue;
		}
		printf("technician %s: trusted (%s)\n", name, dst);
		installed++;
	}
	closedir(d);
	if (!installed && !result) {
		fprintf(stderr, "agrictl: --technicians %s: no NAME.pub key there "
			"(make one with agrictl provision --technician NAME --out DIR)\n", from_dir);
		result = 1;
	}
	return result;
}
