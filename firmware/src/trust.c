/*
 * Signed pushed configs: the technicians' key directory and the check of
 * a message's signature envelope against it (trust.h). Every refusal
 * names its reason under the path "signature", for the config/ack.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agri/sign.h"
#include "agri/util.h"
#include "trust.h"

#define TRUST_DIR_NAME "technicians"

int trust_dir(const char *config_path, char *out, size_t len)
{
	return util_path_relative_to(out, len, config_path, TRUST_DIR_NAME);
}

/* True when dir holds at least one <name>.pub with a valid name. */
static bool keys_installed(const char *dir)
{
	struct dirent *e;
	bool any = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!any && (e = readdir(d))) {
		char name[SIGN_NAME_MAX + 8];
		size_t n = strlen(e->d_name);

		if (n <= 4 || n - 4 > SIGN_NAME_MAX || strcmp(e->d_name + n - 4, ".pub"))
			continue;
		memcpy(name, e->d_name, n - 4);
		name[n - 4] = '\0';
		any = sign_name_valid(name);
	}
	closedir(d);
	return any;
}

int trust_open(const char *dir, const char *msg, size_t len, char *doc,
	       size_t cap, size_t *doc_len, char by[AGRI_ID_MAX + 1],
	       struct agri_err *err)
{
	unsigned char sig[SIGN_ED25519_LEN];
	char name[SIGN_NAME_MAX + 1], path[4096];
	struct sign_key *key = NULL;
	size_t head;
	int rc;

	if (!keys_installed(dir)) {
		agri_err_set(err, "signature", "no technician keys installed in %s: "
			     "remote configs are refused", dir);
		return -EPERM;
	}
	rc = sign_envelope_open(msg, len, &head, name, sig);
	if (rc == -ENOMSG && !memmem(msg, len, "\"signature\"", 11)) {
		agri_err_set(err, "signature", "missing: a pushed config must be signed by a "
			     "technician (agrictl config push --key)");
		return -EPERM;
	}
	if (rc < 0) {
		agri_err_set(err, "signature", "malformed: expected the last member "
			     "\"signature\":{\"by\":NAME,\"ed25519\":BASE64}");
		return -EPERM;
	}
	if (snprintf(path, sizeof(path), "%s/%s.pub", dir, name) >= (int)sizeof(path)) {
		agri_err_set(err, "signature", "key path too long");
		return -EPERM;
	}
	rc = sign_key_read_public(path, &key);
	if (rc == -ENOENT) {
		agri_err_set(err, "signature", "unknown technician \"%s\" (no %s.pub installed)",
			     name, name);
		return -EPERM;
	}
	if (rc < 0) {
		agri_err_set(err, "signature", "technician \"%s\": %s", name,
			     rc == -EBADMSG ? "key file is not an Ed25519 public key"
					    : strerror(-rc));
		return -EPERM;
	}
	if (head + 2 > cap) {
		sign_key_free(key);
		return -ENOSPC;
	}
	memcpy(doc, msg, head);
	doc[head] = '}';
	doc[head + 1] = '\0';
	rc = sign_verify(key, doc, head + 1, sig);
	sign_key_free(key);
	if (rc < 0) {
		agri_err_set(err, "signature", "does not verify with technician \"%s\"'s key "
			     "(altered, or signed with another key)", name);
		return -EPERM;
	}
	*doc_len = head + 1;
	memcpy(by, name, strlen(name) + 1);
	return 0;
}
