/*
 * Unit tests of `agrictl provision`'s broker-file edits and id checks
 * (tools/agrictl/provision.c): the password file rewritten from text without
 * a trailing newline, with very long lines, comments and CRLF; an entry
 * replaced, never doubled; the users mosquitto would read; the ACL's user
 * lines; reserved and malformed ids; the temporary file of a secret having
 * its final mode and group before a byte is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "provision.h"
#include "agri/buf.h"
#include "test.h"

/* provision_passwd_put on a NUL-terminated text; returns the new text (static). */
static const char *put(const char *in, const char *user, const char *entry)
{
	static char *last;
	size_t n = 0;
	char *out = NULL;

	free(last);
	last = NULL;
	if (provision_passwd_put(in, strlen(in), user, entry, &out, &n) < 0)
		return "(error)";
	CHECK_INT(strlen(out), n);
	last = out;
	return out;
}

static void test_passwd_put(void)
{
	char *out = NULL;
	size_t n = 0;

	CHECK_STR(put("", "DT-A", "DT-A:$7$x"), "DT-A:$7$x\n");
	/* No trailing newline: the last line is ended, not glued to the entry. */
	CHECK_STR(put("DT-B:$7$b", "DT-A", "DT-A:$7$x"), "DT-B:$7$b\nDT-A:$7$x\n");
	CHECK_STR(put("DT-B:$7$b\n", "DT-A", "DT-A:$7$x"), "DT-B:$7$b\nDT-A:$7$x\n");
	/* Replaced, wherever it was, and the last line without its newline. */
	CHECK_STR(put("DT-A:$7$old\nDT-B:$7$b", "DT-A", "DT-A:$7$new"), "DT-B:$7$b\nDT-A:$7$new\n");
	CHECK_STR(put("DT-B:$7$b\nDT-A:$7$old", "DT-A", "DT-A:$7$new"), "DT-B:$7$b\nDT-A:$7$new\n");
	/* Every line of that user (mosquitto keeps one; a hand-edited file may have two). */
	CHECK_STR(put("DT-A:1\nDT-A:2\nDT-B:3\n", "DT-A", "DT-A:new"), "DT-B:3\nDT-A:new\n");
	/* A user is matched whole, as mosquitto reads it (blanks, leading ':'s). */
	CHECK_STR(put("DT-AB:1\nDT-:2\n  DT-A :3\n::DT-A:4\n", "DT-A", "DT-A:n"), "DT-AB:1\nDT-:2\nDT-A:n\n");
	/* Comments, CRLF lines, lines without ':' kept byte for byte; empty lines dropped. */
	CHECK_STR(put("# DT-A:x\n\n\nDT-C:c\r\nnocolon\n", "DT-A", "DT-A:n"),
		  "# DT-A:x\nDT-C:c\r\nnocolon\nDT-A:n\n");
	/* Entries that are not user's, or span lines: refused. */
	CHECK_INT(provision_passwd_put("", 0, "DT-A", "DT-B:x", &out, &n), -EINVAL);
	CHECK_INT(provision_passwd_put("", 0, "DT-A", "DT-A", &out, &n), -EINVAL);
	CHECK_INT(provision_passwd_put("", 0, "DT-A", "DT-A:x\nDT-B:y", &out, &n), -EINVAL);
	CHECK_INT(provision_passwd_put("", 0, "", ":x", &out, &n), -EINVAL);
}

static void test_passwd_long_lines(void)
{
	size_t big = 3u << 20, n = 0;
	char *in = malloc(big + 64), *out = NULL;

	/* One 3 MiB line, no newline anywhere. */
	memset(in, 'h', big);
	memcpy(in, "DT-LONG:", 8);
	CHECK_INT(provision_passwd_put(in, big, "DT-A", "DT-A:e", &out, &n), 0);
	CHECK_INT(n, big + 1 + 7);
	CHECK(out && memcmp(out, in, big) == 0 && out[big] == '\n' && strcmp(out + big + 1, "DT-A:e\n") == 0);
	free(out);
	/* The same line is the user's: replaced by the short entry. */
	memcpy(in, "DT-A:", 5);
	CHECK_INT(provision_passwd_put(in, big, "DT-A", "DT-A:e", &out, &n), 0);
	CHECK_STR(out, "DT-A:e\n");
	free(out);
	/* A 3 MiB user name. */
	memset(in, 'u', big);
	in[big - 1] = ':';
	CHECK_INT(provision_passwd_put(in, big, "DT-A", "DT-A:e", &out, &n), 0);
	CHECK_INT(n, big + 1 + 7);
	free(out);
	/* Text with NUL bytes: copied by length, not by string. */
	CHECK_INT(provision_passwd_put("a:\0b\nDT-A:x", 11, "DT-A", "DT-A:y", &out, &n), 0);
	CHECK_INT(n, 5 + 7);
	CHECK(out && memcmp(out, "a:\0b\nDT-A:y\n", 12) == 0);
	free(out);
	free(in);
}

static void test_reserved(void)
{
	static const char *const hub[] = {"gateway", "agrictl", "alerts", "forecast", "advisory",
					  "hub", "Gateway", "AGRICTL", "agri-gateway", "agri-gateway-1",
					  "Agri-x", "agrictl-123-456", "gateway-b", "hub-a"};
	static const char *const bad[] = {"", "a/b", "a b", "a+b", "#", "x:y",
					  "123456789012345678901234567890123"};
	static const char *const ok[] = {"DT-W01", "gateways", "hubert", "agri", "agrix-1", "my-gateway",
					 "x", "12345678901234567890123456789012"};
	char name[16];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(hub); i++)
		CHECK_INT(provision_station_id_check(hub[i]), -EPERM);
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad); i++)
		CHECK_INT(provision_station_id_check(bad[i]), -EINVAL);
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(ok); i++)
		CHECK_INT(provision_station_id_check(ok[i]), 0);

	CHECK_INT(provision_passwd_reserved("DT-A:x\nDT-B:y", 13, name, sizeof(name)), 0);
	CHECK_INT(provision_passwd_reserved("DT-A:x\n gateway :y", 18, name, sizeof(name)), 1);
	CHECK_STR(name, "gateway");
	CHECK_INT(provision_passwd_reserved("# gateway:x\nagrictl", 19, name, sizeof(name)), 0);
	CHECK_INT(provision_passwd_reserved("agri-gateway-with-a-long-name:x", 31, name, 8), 1);
	CHECK_STR(name, "agri-ga"); /* truncated to the buffer */

	CHECK_INT(provision_acl_reserved("user DT-A\ntopic read x\n", 23, name, sizeof(name)), 0);
	CHECK_INT(provision_acl_reserved("# user gateway\nuser  agrictl \t\r\n", 32, name, sizeof(name)), 1);
	CHECK_STR(name, "agrictl");
}

static void test_acl_has_user(void)
{
	const char *acl = "# user DT-C\nuser DT-A\ntopic write agri/v1/DT-A/telemetry\n"
			  "  user   DT-B  \r\nusers DT-D\nuser\tDT-E\nuser DT-F";

	CHECK(provision_acl_has_user(acl, strlen(acl), "DT-A"));
	CHECK(provision_acl_has_user(acl, strlen(acl), "DT-B"));  /* leading spaces, blanks, CR */
	CHECK(!provision_acl_has_user(acl, strlen(acl), "DT-C")); /* a comment */
	CHECK(!provision_acl_has_user(acl, strlen(acl), "DT-D")); /* not the keyword */
	CHECK(!provision_acl_has_user(acl, strlen(acl), "DT-E")); /* mosquitto splits on spaces only */
	CHECK(provision_acl_has_user(acl, strlen(acl), "DT-F"));  /* the last line, no newline */
	CHECK(!provision_acl_has_user(acl, strlen(acl), "DT-"));
	CHECK(!provision_acl_has_user("", 0, "DT-A"));
	CHECK(!provision_acl_has_user("user", 4, "user"));
}

static void test_secret_file(void)
{
	char dir[] = "/tmp/agri-provision-XXXXXX", path[256], tmp[300], buf[16];
	struct stat st;
	int fd;
	mode_t old_umask = umask(0);

	if (!mkdtemp(dir)) {
		CHECK(0);
		return;
	}
	snprintf(path, sizeof(path), "%s/station.pass", dir);
	/* The temporary file has its final mode before anything is written. */
	fd = provision_tmp_open(path, 0600, (uid_t)-1, (gid_t)-1, tmp, sizeof(tmp));
	CHECK(fd >= 0);
	CHECK(stat(tmp, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == 0);
	close(fd);
	unlink(tmp);
	fd = provision_tmp_open(path, 0640, (uid_t)-1, (gid_t)-1, tmp, sizeof(tmp));
	CHECK(fd >= 0 && stat(tmp, &st) == 0 && (st.st_mode & 07777) == 0640);
	close(fd);
	unlink(tmp);
	/* Root gives it the group it must have (here 65534, nogroup) before any byte. */
	if (geteuid() == 0) {
		fd = provision_tmp_open(path, 0640, 0, 65534, tmp, sizeof(tmp));
		CHECK(fd >= 0 && stat(tmp, &st) == 0 && (st.st_mode & 07777) == 0640 &&
		      st.st_gid == 65534 && st.st_uid == 0 && st.st_size == 0);
		close(fd);
		unlink(tmp);
	}
	CHECK_INT(provision_write_file(path, "secret\n", 7, 0600, (uid_t)-1, (gid_t)-1), 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_size == 7);
	fd = open(path, O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 7 && memcmp(buf, "secret\n", 7) == 0);
	if (fd >= 0)
		close(fd);
	/* A rewrite replaces it whole, with the mode asked for. */
	CHECK_INT(provision_write_file(path, "x\n", 2, 0640, (uid_t)-1, (gid_t)-1), 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640 && st.st_size == 2);
	/* Into a directory that does not exist: an error, nothing left. */
	snprintf(tmp, sizeof(tmp), "%s/no/such", dir);
	CHECK_INT(provision_write_file(tmp, "x", 1, 0600, (uid_t)-1, (gid_t)-1), -ENOENT);
	unlink(path);
	CHECK(rmdir(dir) == 0); /* empty: no temporary file left */
	umask(old_umask);
}

/* --peer-hub: what is a peer's URL, what is a bridge account, and what the
 * bridge config says (the lines the two-hub test relies on). */
static void test_peer(void)
{
	static const char *const bad[] = {"", "hub-b:8883", "http://hub-b:80", "mqtts://",
					  "mqtts://:8883", "mqtts://a b:1", "mqtts://h:0",
					  "mqtts://h:65536", "mqtts://h:12x", "mqtts://h:", "tcp://u@h:1",
					  "mqtts://[::1]:8883", "mqtts://h:1/x", "tcp://-h:1", "tcp://h-:1",
					  "tcp://a..b:1", "mqtts://h:+1"};
	struct bridge_params bp = {.user = "bridge-a", .password = "pw", .prefix = "agri/v1",
				   .ca_file = "/etc/mosquitto/agri/certs/ca.crt"};
	struct peer_url u;
	char why[160], conf[4096], acl[256];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(bad); i++)
		CHECK_INT(provision_peer_url(bad[i], &u, why, sizeof(why)), -EINVAL);
	CHECK_INT(provision_peer_url("mqtts://hub-b.local:18883", &u, why, sizeof(why)), 0);
	CHECK(u.tls && u.port == 18883 && strcmp(u.host, "hub-b.local") == 0);
	CHECK_INT(provision_peer_url("ssl://10.0.0.2", &u, why, sizeof(why)), 0);
	CHECK(u.tls && u.port == 8883 && strcmp(u.host, "10.0.0.2") == 0);
	CHECK_INT(provision_peer_url("tcp://hub-b", &u, why, sizeof(why)), 0);
	CHECK(!u.tls && u.port == 1883);

	CHECK_INT(provision_bridge_user_check("bridge-a"), 0);
	CHECK_INT(provision_bridge_user_check("bridge-"), -EINVAL);
	CHECK_INT(provision_bridge_user_check("gateway"), -EINVAL);
	CHECK_INT(provision_bridge_user_check("bridge-a b"), -EINVAL);
	CHECK_INT(provision_bridge_user_check("bridge-12345678901234567890123456"), -EINVAL);
	/* No station may take a bridge's session. */
	CHECK_INT(provision_station_id_check("bridge-a"), -EPERM);
	CHECK_INT(provision_station_id_check("Bridge-A"), -EPERM);
	CHECK_INT(provision_station_id_check("bridges"), 0);

	CHECK_INT(provision_peer_url("mqtts://hub-b.local:8883", &u, why, sizeof(why)), 0);
	bp.peer = &u;
	CHECK_INT(provision_bridge_conf(&bp, conf, sizeof(conf)), 0);
	CHECK(strstr(conf, "\naddress hub-b.local:8883\n") != NULL);
	CHECK(strstr(conf, "\ntopic agri/v1/# both 1\n") != NULL);
	CHECK(strstr(conf, "\ncleansession false\n") != NULL);
	CHECK(strstr(conf, "\ntry_private true\n") != NULL);
	CHECK(strstr(conf, "\nremote_clientid bridge-a\nremote_username bridge-a\n"
			   "remote_password pw\n") != NULL);
	CHECK(strstr(conf, "\nbridge_cafile /etc/mosquitto/agri/certs/ca.crt\n") != NULL);
	CHECK_INT(provision_bridge_conf(&bp, conf, 200), -ENOSPC);
	CHECK_INT(provision_peer_url("tcp://hub-b:1883", &u, why, sizeof(why)), 0);
	CHECK_INT(provision_bridge_conf(&bp, conf, sizeof(conf)), 0);
	CHECK(strstr(conf, "bridge_cafile") == NULL);
	CHECK_INT(provision_bridge_acl("bridge-a", "agri/v1", acl, sizeof(acl)), 0);
	CHECK(strstr(acl, "\nuser bridge-a\ntopic readwrite agri/v1/#\n") != NULL);
	CHECK(provision_acl_has_user(acl, strlen(acl), "bridge-a"));
	/* The bridge account is not one of the hub's: station files may hold it. */
	CHECK_INT(provision_acl_reserved(acl, strlen(acl), why, sizeof(why)), 0);
}

int main(void)
{
	test_passwd_put();
	test_passwd_long_lines();
	test_reserved();
	test_acl_has_user();
	test_secret_file();
	test_peer();
	return test_main("test_agrictl_provision");
}
