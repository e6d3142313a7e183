/*
 * gateway.json's http section as issue 24 left it (docs/api.md, "Who may
 * ask"), case by case through gateway_config_load(): API tokens of 32
 * random bytes or more, refused with the file, the field and the reason
 * otherwise; public_reads by the listen address; http.hosts; the request
 * rate keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "agri/buf.h"
#include "gateway/config.h"

static char dir[] = "/tmp/gw-httpcfg-XXXXXX";

#define GOOD "Zt3Qv9_x7LmN2pR8sKc4WdYh6TgBfJ0aE5uVoXiH1nA"      /* 43, base64url */
#define GOOD2 "n8Kp2Qr5St7Uv9Wx1Yz3Ab5Cd7Ef9Gh1Ij3Kl5Mn7Op9Q"    /* another */
#define HEX "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"

static void write_token(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "%s\n", text);
	fclose(f);
}

/* Loads a config whose "http" member is http (JSON text). Returns 0 or
 * the error "path: reason" in msg. */
static int load(const char *http, struct gateway_config *cfg, char *msg, size_t len)
{
	char path[256];
	struct agri_err err;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/gw.json", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "{\"broker\":{\"url\":\"tcp://127.0.0.1:1883\"},\"db\":{\"path\":\"x.db\"},"
		"\"http\":%s}", http);
	fclose(f);
	memset(&err, 0, sizeof(err));
	rc = gateway_config_load(path, cfg, &err);
	msg[0] = '\0';
	if (rc < 0)
		agri_err_format(&err, msg, len);
	return rc;
}

static void test_tokens(struct gateway_config *cfg)
{
	static const struct {
		const char *text;
		const char *err; /* part of the refusal, NULL: accepted */
	} t[] = {
		{GOOD, NULL},
		{HEX, NULL},
		{GOOD "and-more", NULL},
		{"t0k3n-for-tests-only", "the token is 20 characters, need at least 43 (32 random"
		 " bytes): make one with `agrictl token new`"},
		{"0123456789abcdef0123456789abcdef", "the token is 32 characters"}, /* 16 bytes hex */
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "the token has only 1 distinct characters"},
		{"abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc", "the token has only 3 distinct characters"},
		{"Zt3Qv9 x7LmN2pR8sKc4WdYh6TgBfJ0aE5uVoXiH1nAb", "the token holds ' '"},
		{"Zt3Qv9!x7LmN2pR8sKc4WdYh6TgBfJ0aE5uVoXiH1nAb", "the token holds '!'"},
	};
	char msg[512], want[512];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc;

		write_token("t.token", t[i].text);
		rc = load("{\"listen\":\"127.0.0.1:8080\",\"token_file\":\"t.token\"}", cfg, msg,
			  sizeof(msg));
		if (!t[i].err) {
			CHECK_INT(rc, 0);
			CHECK_STR(cfg->http.token, t[i].text);
			if (rc)
				fprintf(stderr, "  %s: %s\n", t[i].text, msg);
			continue;
		}
		/* the field, the file, the reason */
		snprintf(want, sizeof(want), "http.token_file: %s/t.token: %s", dir, t[i].err);
		CHECK(rc < 0 && strstr(msg, want) != NULL);
		if (!(rc < 0 && strstr(msg, want)))
			fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", t[i].text, msg, want);
	}
	/* the read token obeys the same rule, and may not be the write token */
	write_token("t.token", GOOD);
	write_token("r.token", "short");
	CHECK(load("{\"token_file\":\"t.token\",\"read_token_file\":\"r.token\"}", cfg, msg,
		   sizeof(msg)) < 0 &&
	      strstr(msg, "http.read_token_file: ") && strstr(msg, "the token is 5 characters"));
	write_token("r.token", GOOD);
	CHECK(load("{\"token_file\":\"t.token\",\"read_token_file\":\"r.token\"}", cfg, msg,
		   sizeof(msg)) < 0 && strstr(msg, "a read token must not write"));
	write_token("r.token", GOOD2);
	CHECK_INT(load("{\"token_file\":\"t.token\",\"read_token_file\":\"r.token\"}", cfg, msg,
		       sizeof(msg)), 0);
	CHECK_STR(cfg->http.read_token, GOOD2);
}

static void test_public_reads(struct gateway_config *cfg)
{
	static const struct {
		const char *http;
		int public_reads; /* -1: refused */
		const char *err;
	} t[] = {
		/* As before: a loopback listener's reads stay open. */
		{"{}", 1, NULL},
		{"{\"listen\":\"127.0.0.1:8080\"}", 1, NULL},
		{"{\"listen\":\"127.0.0.2:8080\"}", 1, NULL},
		{"{\"listen\":\"[::1]:8080\"}", 1, NULL},
		{"{\"listen\":\"localhost:8080\"}", 1, NULL},
		/* Anywhere else reads need a token... */
		{"{\"listen\":\"0.0.0.0:8080\",\"token_file\":\"t.token\"}", 0, NULL},
		{"{\"listen\":\"192.168.1.10:8080\",\"read_token_file\":\"r.token\"}", 0, NULL},
		{"{\"listen\":\"0.0.0.0:8080\"}", -1,
		 "http.public_reads: reads need a token on 0.0.0.0: set http.read_token_file (or"
		 " token_file), or public_reads: true"},
		{"{\"listen\":\"[::]:8080\"}", -1, "reads need a token on [::]"},
		/* ...unless the operator says otherwise, either way. */
		{"{\"listen\":\"0.0.0.0:8080\",\"public_reads\":true}", 1, NULL},
		{"{\"listen\":\"127.0.0.1:8080\",\"public_reads\":false,\"token_file\":\"t.token\"}", 0,
		 NULL},
		{"{\"listen\":\"127.0.0.1:8080\",\"public_reads\":false}", -1, "reads need a token"},
		{"{\"public_reads\":\"yes\"}", -1, "http.public_reads"},
	};
	char msg[512];

	write_token("t.token", GOOD);
	write_token("r.token", GOOD2);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = load(t[i].http, cfg, msg, sizeof(msg));

		if (t[i].public_reads >= 0) {
			CHECK_INT(rc, 0);
			CHECK_INT(cfg->http.public_reads, t[i].public_reads);
			if (rc || cfg->http.public_reads != (t[i].public_reads == 1))
				fprintf(stderr, "  %s: %s public_reads=%d\n", t[i].http, msg,
					cfg->http.public_reads);
		} else {
			CHECK(rc < 0 && strstr(msg, t[i].err) != NULL);
			if (!(rc < 0 && strstr(msg, t[i].err)))
				fprintf(stderr, "  %s: got \"%s\"\n", t[i].http, msg);
		}
	}
}

static void test_hosts_and_rates(struct gateway_config *cfg)
{
	static const struct {
		const char *http;
		const char *err; /* NULL: accepted */
	} t[] = {
		{"{\"hosts\":[\"gateway.lan\",\"192.168.1.10\",\"[fd00::10]\",\"hub-1.agri.example.vn\"]}",
		 NULL},
		{"{\"hosts\":[]}", NULL},
		{"{\"hosts\":[\"gateway.lan:8080\"]}", "http.hosts[0]: expected a host name or address,"
		 " without port"},
		{"{\"hosts\":[\"ok.lan\",\"http://gateway.lan\"]}", "http.hosts[1]"},
		{"{\"hosts\":[\"\"]}", "http.hosts[0]"},
		{"{\"hosts\":[\"*.example\"]}", "http.hosts[0]"},
		{"{\"hosts\":[\"[fd00::zz]\"]}", "http.hosts[0]"},
		{"{\"hosts\":\"gateway.lan\"}", "http.hosts"},
		{"{\"rate_per_s\":5,\"rate_burst\":10}", NULL},
		{"{\"rate_per_s\":0}", "http.rate_per_s"},
		{"{\"rate_burst\":1000000}", "http.rate_burst"},
		{"{\"rate\":5}", "http.rate"},
	};
	char msg[512];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = load(t[i].http, cfg, msg, sizeof(msg));

		if (!t[i].err) {
			CHECK_INT(rc, 0);
			if (rc)
				fprintf(stderr, "  %s: %s\n", t[i].http, msg);
		} else {
			CHECK(rc < 0 && strstr(msg, t[i].err) != NULL);
			if (!(rc < 0 && strstr(msg, t[i].err)))
				fprintf(stderr, "  %s: got \"%s\"\n", t[i].http, msg);
		}
	}
	CHECK_INT(load("{\"hosts\":[\"gateway.lan\",\"[fd00::10]\"]}", cfg, msg, sizeof(msg)), 0);
	CHECK_INT(cfg->http.n_hosts, 2);
	CHECK_STR(cfg->http.hosts[1], "[fd00::10]");
	CHECK_INT(cfg->http.rate_per_s, 50); /* the defaults */
	CHECK_INT(cfg->http.rate_burst, 200);
	CHECK_INT(load("{\"rate_per_s\":5,\"rate_burst\":10}", cfg, msg, sizeof(msg)), 0);
	CHECK_INT(cfg->http.rate_per_s, 5);
	CHECK_INT(cfg->http.rate_burst, 10);
}

int main(void)
{
	struct gateway_config *cfg = malloc(sizeof(*cfg));
	char cmd[300];

	if (!cfg || !mkdtemp(dir))
		return 1;
	test_tokens(cfg);
	test_public_reads(cfg);
	test_hosts_and_rates(cfg);
	free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_main("test_gateway_http_config");
}
