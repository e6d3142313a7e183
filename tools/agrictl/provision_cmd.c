/*
 * `agrictl provision`: a new station's password file, its hashed entry in
 * the station listener's password file (replacing an older entry of the
 * same user), its ACL block (added once), and a station.json to start from.
 * Everything is checked before anything is written: a malformed or
 * reserved id, or a password file or ACL holding one of the hub's accounts
 * (they belong in the loopback listener's files, docs/broker.md), writes
 * nothing. Secret files get their final mode, owner and group before they
 * hold a byte (provision_write_file); the broker's files keep theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agri/exit.h"
#include "agri/util.h"
#include "agrictl.h"
#include "msgs.h"
#include "provision.h"

#define PBKDF2_ITERATIONS 101 /* mosquitto_passwd 2.0's default; the password is 192 random bits */
#define BROKER_FILE_MAX (64 << 20)

/* A broker file as read before provisioning: its text and the mode, owner
 * and group its rewrite keeps. path is the file itself (a symlink's target:
 * the rewrite replaces the target, the link stays). */
struct broker_file {
	char path[PATH_MAX];
	char *text;
	size_t len;
	mode_t mode;
	uid_t uid;
	gid_t gid;
};

/*
 * Reads a broker file (password file, ACL). A missing one reads as empty
 * and will be created 0640 with its directory's group, as the install
 * recipe makes them (root:mosquitto). Returns 0 or -errno.
 */
static int broker_file_read(struct broker_file *f, const char *path)
{
	struct stat st;
	char dir[4096];
	char *slash;
	int rc;

	memset(f, 0, sizeof(*f));
	if (!realpath(path, f->path) && snprintf(f->path, sizeof(f->path), "%s", path) >= (int)sizeof(f->path))
		return -ENAMETOOLONG;
	rc = util_read_file(f->path, BROKER_FILE_MAX, &f->text, &f->len);
	if (rc == 0) {
		if (stat(f->path, &st) < 0)
			return -errno;
		f->mode = st.st_mode & 07777;
		f->uid = st.st_uid;
		f->gid = st.st_gid;
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	f->text = strdup("");
	if (!f->text)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s", f->path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	if (stat(dir, &st) < 0)
		return -errno;
	f->mode = 0640;
	f->uid = (uid_t)-1;
	f->gid = st.st_gid;
	return 0;
}

static int broker_file_write(const struct broker_file *f, const char *text, size_t len)
{
	return provision_write_file(f->path, text, len, f->mode, f->uid, f->gid);
}

/* Refuses a broker file that holds one of the hub's accounts. */
static bool broker_file_has_hub_account(const struct broker_file *f, bool acl)
{
	char name[64];
	int found = acl ? provision_acl_reserved(f->text, f->len, name, sizeof(name))
			: provision_passwd_reserved(f->text, f->len, name, sizeof(name));

	if (found)
		fprintf(stderr, "agrictl: %s: has the hub's account \"%s\": stations' %s must hold "
			"stations only (the hub's accounts go in the loopback listener's hub.%s; "
			"docs/broker.md)\n", f->path, name, acl ? "ACL" : "password file",
			acl ? "acl" : "passwd");
	return found;
}

int agrictl_provision_check_id(const char *station)
{
	int rc = provision_station_id_check(station);

	if (rc == -EINVAL)
		fprintf(stderr, "agrictl: --station: \"%s\" is not a valid station id "
			"([A-Za-z0-9_-]{1,32})\n", station);
	else if (rc == -EPERM)
		fprintf(stderr, "agrictl: --station: \"%s\" is reserved for the hub (gateway, agrictl, "
			"alerts, forecast, advisory, hub, and ids starting agri-, agrictl-, gateway-, "
			"hub-: the hub's client ids and topics; bridge-: the accounts of bridges "
			"between hubs)\n", station);
	return rc < 0 ? AGRI_EXIT_USAGE : 0;
}

int agrictl_provision_check_out(const char *out_dir, bool force)
{
	static const char *const files[] = {"station.json", "station.pass"};
	char path[4096];

	for (size_t i = 0; i < 2 && !force; i++) {
		snprintf(path, sizeof(path), "%s/%s", out_dir, files[i]);
		if (access(path, F_OK) == 0) {
			fprintf(stderr, T("agrictl: %s exists: provisioning again makes a new password "
					  "(the old one stops working) and a new station.json (your edits "
					  "are lost); nothing written. Give --force to do so (copy "
					  "station.json first)\n"), path);
			return AGRI_EXIT_FAIL;
		}
	}
	return 0;
}

int agrictl_provision(const char *station, const char *out_dir,
		      const char *passwd_file, const char *acl_file,
		      const char *broker, const char *prefix)
{
	char password[64], entry[512], acl[1024], path[4096], json[2048];
	bool tls = strncmp(broker, "ssl://", 6) == 0 || strncmp(broker, "mqtts://", 8) == 0;
	struct broker_file pw = {0}, ac = {0};
	char *pw_new = NULL, *ac_new = NULL;
	size_t pw_new_len = 0, ac_new_len = 0;
	bool acl_there;
	int rc, n, status = 1;

	if ((rc = agrictl_provision_check_id(station)) != 0)
		return rc;
	if ((rc = broker_file_read(&pw, passwd_file)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", passwd_file, strerror(-rc));
		goto out;
	}
	if ((rc = broker_file_read(&ac, acl_file)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", acl_file, strerror(-rc));
		goto out;
	}
	if (broker_file_has_hub_account(&pw, false) || broker_file_has_hub_account(&ac, true))
		goto out;
	if ((rc = util_mkdirs(out_dir, 0750)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", out_dir, strerror(-rc));
		goto out;
	}
	if (provision_password(password, sizeof(password)) < 0 ||
	    provision_passwd_entry(station, password, PBKDF2_ITERATIONS, entry, sizeof(entry)) < 0 ||
	    provision_acl(station, prefix, acl, sizeof(acl)) < 0 ||
	    provision_passwd_put(pw.text, pw.len, station, entry, &pw_new, &pw_new_len) < 0) {
		fprintf(stderr, "agrictl: cannot make credentials\n");
		goto out;
	}
	acl_there = provision_acl_has_user(ac.text, ac.len, station);
	if (!acl_there) {
		ac_new_len = ac.len + strlen(acl);
		ac_new = malloc(ac_new_len + 1);
		if (!ac_new) {
			fprintf(stderr, "agrictl: %s: %s\n", acl_file, strerror(ENOMEM));
			goto out;
		}
		memcpy(ac_new, ac.text, ac.len);
		memcpy(ac_new + ac.len, acl, strlen(acl) + 1); /* the block starts with a newline */
	}

	/* The station's copy of its password: 0600 from its creation. */
	snprintf(path, sizeof(path), "%s/station.pass", out_dir);
	n = snprintf(json, sizeof(json), "%s\n", password);
	rc = provision_write_file(path, json, (size_t)n, 0600, (uid_t)-1, (gid_t)-1);
	memset(json, 0, sizeof(json));
	if (rc < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", path, strerror(-rc));
		goto out;
	}
	if ((rc = broker_file_write(&pw, pw_new, pw_new_len)) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", passwd_file, strerror(-rc),
			rc == -EPERM ? " (cannot keep its owner and group)" : "");
		goto out;
	}
	if (!acl_there && (rc = broker_file_write(&ac, ac_new, ac_new_len)) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", acl_file, strerror(-rc),
			rc == -EPERM ? " (cannot keep its owner and group)" : "");
		goto out;
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
		goto out;
	}
	printf("provisioned %s: %s/station.json, %s/station.pass (0600); "
	       "entry in %s, ACL in %s (reload the broker: kill -HUP)\n",
	       station, out_dir, out_dir, passwd_file, acl_file);
	status = 0;
out:
	memset(password, 0, sizeof(password));
	if (pw_new)
		memset(pw_new, 0, pw_new_len);
	free(pw_new);
	free(ac_new);
	free(pw.text);
	free(ac.text);
	return status;
}

/* dir of path (its parent; "." for a bare name) into out[len]. */
static void dir_of(const char *path, char *out, size_t len)
{
	char *slash;

	snprintf(out, len, "%s", path);
	slash = strrchr(out, '/');
	if (slash == out)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(out, len, ".");
}

/* "bridge-" and this host's name up to its first dot, in the characters
 * an account may have, into out[len] (at most 32). */
static void default_bridge_user(char *out, size_t len)
{
	char host[256] = "";
	size_t n = strlen("bridge-");

	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0])
		snprintf(host, sizeof(host), "hub");
	snprintf(out, len, "bridge-");
	for (const char *c = host; *c && *c != '.' && n < 32 && n + 1 < len; c++)
		out[n++] = (char)(((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				   (*c >= '0' && *c <= '9') || *c == '-' || *c == '_') ? *c : '-');
	out[n] = '\0';
}

int agrictl_provision_peer(const struct peer_opts *o)
{
	char why[160], user[40], conf_path[PATH_MAX], ca[PATH_MAX], dir[PATH_MAX], real[PATH_MAX];
	char password[64], entry[512], acl[512], conf[4096];
	struct peer_url url;
	struct broker_file pw = {0}, ac = {0}, bc = {0};
	char *pw_new = NULL, *ac_new = NULL;
	size_t pw_new_len = 0, ac_new_len = 0;
	bool acl_there;
	int rc, status = 1;

	if (provision_peer_url(o->peer, &url, why, sizeof(why)) < 0) {
		fprintf(stderr, "agrictl: --peer-hub: \"%s\": %s\n", o->peer, why);
		return AGRI_EXIT_USAGE;
	}
	if (o->user)
		snprintf(user, sizeof(user), "%s", o->user);
	else
		default_bridge_user(user, sizeof(user));
	if (provision_bridge_user_check(user) < 0) {
		fprintf(stderr, "agrictl: --bridge-user: \"%s\" is not a bridge account: \"bridge-\" "
			"and [A-Za-z0-9_-], at most 32 characters (no station may have such a name)\n",
			user);
		return AGRI_EXIT_USAGE;
	}
	dir_of(o->passwd_file, dir, sizeof(dir));
	if (o->conf_file)
		snprintf(conf_path, sizeof(conf_path), "%s", o->conf_file);
	else if (snprintf(conf_path, sizeof(conf_path), "%s/conf.d/agri-bridge.conf", dir) >=
		 (int)sizeof(conf_path))
		return AGRI_EXIT_USAGE;
	if (o->ca_file && !url.tls) {
		fprintf(stderr, "agrictl: --ca-file: the peer hub's URL \"%s\" is not TLS "
			"(mqtts://)\n", o->peer);
		return AGRI_EXIT_USAGE;
	}
	if (url.tls) {
		int n = o->ca_file ? snprintf(ca, sizeof(ca), "%s", o->ca_file)
				   : snprintf(ca, sizeof(ca), "%s/certs/ca.crt", dir);

		if (n < 0 || n >= (int)sizeof(ca))
			return AGRI_EXIT_USAGE;
		/* mosquitto would refuse to start on a CA it cannot read: say so now. */
		if (strpbrk(ca, "\n\r") || access(ca, R_OK) < 0) {
			fprintf(stderr, "agrictl: %s: %s (the province's CA, which signed the peer "
				"hub's certificate: --ca-file)\n", ca,
				strpbrk(ca, "\n\r") ? "a path with a newline" : strerror(errno));
			return AGRI_EXIT_USAGE;
		}
		/* Absolute: the broker's working directory is not ours. */
		if (realpath(ca, real))
			snprintf(ca, sizeof(ca), "%s", real);
	}

	if ((rc = broker_file_read(&pw, o->passwd_file)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", o->passwd_file, strerror(-rc));
		goto out;
	}
	if ((rc = broker_file_read(&ac, o->acl_file)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", o->acl_file, strerror(-rc));
		goto out;
	}
	if ((rc = broker_file_read(&bc, conf_path)) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", conf_path, strerror(-rc),
			rc == -ENOENT ? " (its directory: mosquitto.conf's include_dir, "
			"docs/broker.md)" : "");
		goto out;
	}
	if (bc.len && !o->force) {
		fprintf(stderr, "agrictl: %s exists: provisioning the bridge again makes a new "
			"password (the peer must get the new password file); nothing written. "
			"Give --force to do so\n", bc.path);
		goto out;
	}
	if (broker_file_has_hub_account(&pw, false) || broker_file_has_hub_account(&ac, true))
		goto out;
	if (provision_password(password, sizeof(password)) < 0 ||
	    provision_passwd_entry(user, password, PBKDF2_ITERATIONS, entry, sizeof(entry)) < 0 ||
	    provision_bridge_acl(user, o->prefix, acl, sizeof(acl)) < 0 ||
	    provision_passwd_put(pw.text, pw.len, user, entry, &pw_new, &pw_new_len) < 0) {
		fprintf(stderr, "agrictl: cannot make credentials\n");
		goto out;
	}
	{
		struct bridge_params bp = {.peer = &url, .user = user, .password = password,
					   .prefix = o->prefix, .ca_file = ca};

		if (provision_bridge_conf(&bp, conf, sizeof(conf)) < 0) {
			fprintf(stderr, "agrictl: %s: too long\n", conf_path);
			goto out;
		}
	}
	acl_there = provision_acl_has_user(ac.text, ac.len, user);
	if (!acl_there) {
		ac_new_len = ac.len + strlen(acl);
		ac_new = malloc(ac_new_len + 1);
		if (!ac_new) {
			fprintf(stderr, "agrictl: %s: %s\n", o->acl_file, strerror(ENOMEM));
			goto out;
		}
		memcpy(ac_new, ac.text, ac.len);
		memcpy(ac_new + ac.len, acl, strlen(acl) + 1);
	}
	/* The password file first: a bridge config whose account the peer does
	 * not know yet only fails to connect; the reverse would leave a
	 * password nobody has. */
	if ((rc = broker_file_write(&pw, pw_new, pw_new_len)) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", o->passwd_file, strerror(-rc),
			rc == -EPERM ? " (cannot keep its owner and group)" : "");
		goto out;
	}
	if (!acl_there && (rc = broker_file_write(&ac, ac_new, ac_new_len)) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", o->acl_file, strerror(-rc),
			rc == -EPERM ? " (cannot keep its owner and group)" : "");
		goto out;
	}
	if ((rc = broker_file_write(&bc, conf, strlen(conf))) < 0) {
		fprintf(stderr, "agrictl: %s: %s%s\n", conf_path, strerror(-rc),
			rc == -EPERM ? " (cannot keep its owner and group)" : "");
		goto out;
	}
	printf("bridge to %s:%d%s as %s: %s (0%o); its account in %s and %s: copy both to "
	       "the peer hub (they are the province's station accounts), reload it "
	       "(kill -HUP), restart this hub's mosquitto\n",
	       url.host, url.port, url.tls ? " (TLS)" : "", user, bc.path, (unsigned)bc.mode,
	       pw.path, ac.path);
	status = 0;
out:
	memset(password, 0, sizeof(password));
	memset(conf, 0, sizeof(conf));
	if (pw_new)
		memset(pw_new, 0, pw_new_len);
	free(pw_new);
	free(ac_new);
	free(pw.text);
	free(ac.text);
	if (bc.text)
		memset(bc.text, 0, bc.len);
	free(bc.text);
	return status;
}
