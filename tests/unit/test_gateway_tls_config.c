/*
 * gateway.json's TLS rules (docs/security.md "The hub's other doors"),
 * case by case through gateway_config_load():
 * - upstream.postgres.conninfo: the sslmode the sink will use (the
 *   conninfo's, else verify-full for a host that is not this machine,
 *   prefer for loopback or a Unix socket), and a weak sslmode to a remote
 *   host refused;
 * - notify.smtp.tls: "required" by default, "none" only for a loopback
 *   host and never with smtps://.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "agri/buf.h"
#include "gateway/config.h"

static char dir[] = "/tmp/gw-tlscfg-XXXXXX";

/* Loads a config with the given "upstream" or "notify" member (JSON text).
 * Returns 0 or the error "path: reason" in msg. */
static int load(const char *member, struct gateway_config *cfg, char *msg, size_t len)
{
	char path[256];
	struct agri_err err;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/gw.json", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\"},\"db\":{\"path\":\"x.db\"},%s}",
		member);
	fclose(f);
	memset(&err, 0, sizeof(err));
	rc = gateway_config_load(path, cfg, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

static void test_postgres(struct gateway_config *cfg)
{
	static const struct {
		const char *conninfo;
		const char *mode; /* the sslmode used, or NULL: refused */
		const char *err;  /* part of the refusal */
	} t[] = {
		/* Not this machine: verified TLS by default, nothing weaker. */
		{"host=db.example port=5432 dbname=agri user=agri", "verify-full", NULL},
		{"host=10.200.0.1 dbname=agri", "verify-full", NULL},
		{"host=db.example sslmode=verify-full sslrootcert=/etc/agri/pg-ca.crt", "verify-full", NULL},
		{"host=db.example sslmode=verify-ca", "verify-ca", NULL},
		{"host=db.example sslmode=require", NULL, "sslmode=require to a host that is not this machine (db.example)"},
		{"host=db.example sslmode=prefer", NULL, "sslmode=prefer to a host"},
		{"host=db.example sslmode=allow", NULL, "sslmode=allow to a host"},
		{"host=10.200.0.1 sslmode=disable", NULL, "sslmode=disable to a host that is not this machine (10.200.0.1)"},
		{"postgresql://agri@db.example/agri?sslmode=disable", NULL, "sslmode=disable"},
		{"postgresql://agri@db.example:5433/agri", "verify-full", NULL},
		/* A list is local only when every host is. */
		{"host=/run/postgresql,db.example", "verify-full", NULL},
		{"host=127.0.0.1,db.example sslmode=prefer", NULL, "(127.0.0.1,db.example)"},
		/* hostaddr is where libpq connects: it must be local too. */
		{"host=localhost hostaddr=10.0.0.9 sslmode=disable", NULL, "(10.0.0.9)"},
		{"host=db.example hostaddr=10.0.0.9", "verify-full", NULL},
		/* This machine: prefer by default, anything allowed. */
		{"host=127.0.0.1 port=5432 dbname=agri", "prefer", NULL},
		{"host=127.3.4.5 sslmode=disable", "disable", NULL},
		{"host=localhost sslmode=disable", "disable", NULL},
		{"host=::1", "prefer", NULL},
		{"host=/var/run/postgresql dbname=agri", "prefer", NULL},
		{"dbname=agri", "prefer", NULL},           /* libpq's default socket */
		{"postgresql:///agri?host=/tmp/pg", "prefer", NULL},
		{"host=127.0.0.1 sslmode=verify-full", "verify-full", NULL},
		/* Nonsense is caught here, not at the first connect. */
		{"host=db.example sslmode=bogus", NULL, "unknown sslmode \"bogus\""},
		{"host=db.example nosuchkey=1", NULL, "invalid connection option"},
	};
	char member[512], msg[400];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		int rc;

		snprintf(member, sizeof(member), "\"upstream\":{\"postgres\":{\"conninfo\":\"%s\"}}",
			 t[i].conninfo);
		rc = load(member, cfg, msg, sizeof(msg));
		if (t[i].mode) {
			if (rc < 0)
				fprintf(stderr, "%s: refused: %s\n", t[i].conninfo, msg);
			CHECK_INT(rc, 0);
			if (rc == 0 && strcmp(cfg->upstream.postgres_sslmode, t[i].mode) != 0)
				fprintf(stderr, "%s: sslmode %s\n", t[i].conninfo,
					cfg->upstream.postgres_sslmode);
			CHECK(rc != 0 || strcmp(cfg->upstream.postgres_sslmode, t[i].mode) == 0);
			continue;
		}
		CHECK(rc < 0);
		if (!strstr(msg, t[i].err) || strncmp(msg, "upstream.postgres.conninfo: ", 28) != 0)
			fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", t[i].conninfo, msg, t[i].err);
		CHECK(strstr(msg, t[i].err) != NULL);
	}
	/* Where the conninfo names no host, libpq takes PGHOST: so does the check. */
	setenv("PGHOST", "db.example", 1);
	CHECK(load("\"upstream\":{\"postgres\":{\"conninfo\":\"dbname=agri sslmode=disable\"}}",
		   cfg, msg, sizeof(msg)) < 0);
	CHECK_INT(load("\"upstream\":{\"postgres\":{\"conninfo\":\"dbname=agri\"}}", cfg, msg,
		       sizeof(msg)), 0);
	CHECK_STR(cfg->upstream.postgres_sslmode, "verify-full");
	unsetenv("PGHOST");
}

static void test_smtp(struct gateway_config *cfg)
{
	static const struct {
		const char *url, *tls; /* tls NULL: the key absent */
		const char *err;       /* NULL: accepted */
	} t[] = {
		{"smtp://mail.example:587", NULL, NULL},
		{"smtp://mail.example:587", "required", NULL},
		{"smtps://mail.example:465", NULL, NULL},
		{"smtp://127.0.0.1:2525", "none", NULL},
		{"smtp://localhost", "none", NULL},
		{"smtp://[::1]:25", "none", NULL},
		{"smtp://user@127.0.0.1:25", "none", NULL},
		{"smtp://mail.example:25", "none", "notify.smtp.tls: \"none\" is only for a loopback host"},
		{"smtp://10.200.0.1:25", "none", "only for a loopback host"},
		{"smtp://127.0.0.1.evil.example:25", "none", "only for a loopback host"},
		{"smtps://127.0.0.1:465", "none", "notify.smtp.tls: \"none\" with an smtps:// URL"},
		{"smtp://mail.example", "starttls", "notify.smtp.tls: expected \"required\""},
	};
	char member[512], msg[400];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(t); i++) {
		char tls[64] = "";
		int rc;

		if (t[i].tls)
			snprintf(tls, sizeof(tls), ",\"tls\":\"%s\"", t[i].tls);
		snprintf(member, sizeof(member), "\"notify\":{\"smtp\":{\"name\":\"mail\",\"url\":\"%s\","
			 "\"from\":\"agri@farm.vn\",\"to\":[\"a@farm.vn\"]%s}}", t[i].url, tls);
		rc = load(member, cfg, msg, sizeof(msg));
		if (!t[i].err) {
			if (rc < 0)
				fprintf(stderr, "%s tls=%s: refused: %s\n", t[i].url, t[i].tls, msg);
			CHECK_INT(rc, 0);
			CHECK(rc != 0 || strcmp(cfg->notify.smtp.tls, t[i].tls ? t[i].tls : "required") == 0);
			continue;
		}
		CHECK(rc < 0);
		if (!strstr(msg, t[i].err))
			fprintf(stderr, "%s tls=%s: \"%s\" lacks \"%s\"\n", t[i].url, t[i].tls, msg,
				t[i].err);
		CHECK(strstr(msg, t[i].err) != NULL);
	}
	/* ca_file is resolved against the config's directory. */
	CHECK_INT(load("\"notify\":{\"smtp\":{\"name\":\"mail\",\"url\":\"smtp://mail.example\","
		       "\"from\":\"agri@farm.vn\",\"to\":[\"a@farm.vn\"],\"ca_file\":\"mail-ca.crt\"}}",
		       cfg, msg, sizeof(msg)), 0);
	CHECK(strncmp(cfg->notify.smtp.ca_file, dir, strlen(dir)) == 0 &&
	      strstr(cfg->notify.smtp.ca_file, "/mail-ca.crt") != NULL);
}

int main(void)
{
	struct gateway_config *cfg = malloc(sizeof(*cfg));
	char cmd[300];

	if (!cfg || !mkdtemp(dir))
		return 2;
	unsetenv("PGHOST");
	unsetenv("PGHOSTADDR");
	test_postgres(cfg);
	test_smtp(cfg);
	free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_main("test_gateway_tls_config");
}
