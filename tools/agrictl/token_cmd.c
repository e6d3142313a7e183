/*
 * `agrictl token new`: an API token for the gateway's HTTP API
 * (http.token_file, http.read_token_file; docs/api.md, "Tokens"): 32 bytes
 * from the kernel's random source in base64url, 43 characters, which is
 * what the gateway's config check asks for at least. Printed, or written
 * to a file that never has a wider mode than asked, under any name
 * (provision_write_file).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agri/exit.h"
#include "agrictl.h"
#include "gateway/config.h"
#include "provision.h"

#define TOKEN_BYTES 32

/* 32 random bytes as base64url without padding into out[64]. 0 or -errno. */
static int token_make(char out[64])
{
	unsigned char raw[TOKEN_BYTES];
	size_t got = 0;
	int n;

	while (got < sizeof(raw)) {
		ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		got += (size_t)r;
	}
	n = EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return (int)strlen(out) >= GW_TOKEN_MIN ? 0 : -EIO;
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "agrictl: token: %s (see agrictl --help)\n", msg);
	return AGRI_EXIT_USAGE;
}

int agrictl_token(int argc, char **argv)
{
	static const struct option opts[] = {
		{"out", required_argument, 0, 'o'}, {"group", required_argument, 0, 'g'},
		{"force", no_argument, 0, 'f'}, {"help", no_argument, 0, 'h'}, {0}};
	const char *out = NULL, *group = NULL;
	char tok[64], line[66];
	gid_t gid = (gid_t)-1;
	bool force = false;
	int c, rc;

	if (argc < 2 || strcmp(argv[1], "new") != 0)
		return usage_error("expected \"token new\"");
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			out = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		case 'f':
			force = true;
			break;
		case 'h':
			printf("agrictl token new [--out FILE [--group GROUP] [--force]]\n");
			return 0;
		default:
			return AGRI_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument");
	if (group && !out)
		return usage_error("--group goes with --out");
	if (group) {
		struct group *gr = getgrnam(group);

		if (!gr) {
			fprintf(stderr, "agrictl: token: no group \"%s\"\n", group);
			return AGRI_EXIT_USAGE;
		}
		gid = gr->gr_gid;
	}
	if (out && !force && access(out, F_OK) == 0) {
		fprintf(stderr, "agrictl: token: %s exists: --force replaces it (every client of the "
			"old token then needs the new one)\n", out);
		return 1;
	}
	if ((rc = token_make(tok)) < 0) {
		fprintf(stderr, "agrictl: token: no random bytes: %s\n", strerror(-rc));
		return 1;
	}
	if (!out) {
		printf("%s\n", tok);
		OPENSSL_cleanse(tok, sizeof(tok));
		return 0;
	}
	snprintf(line, sizeof(line), "%s\n", tok);
	rc = provision_write_file(out, line, strlen(line), group ? 0640 : 0600, (uid_t)-1, gid);
	OPENSSL_cleanse(tok, sizeof(tok));
	OPENSSL_cleanse(line, sizeof(line));
	if (rc < 0) {
		fprintf(stderr, "agrictl: token: %s: %s\n", out, strerror(-rc));
		return 1;
	}
	printf("token written to %s (%s%s%s): name it in gateway.json as http.token_file"
	       " (reads and writes) or http.read_token_file (reads)\n", out,
	       group ? "0640, group " : "0600", group ? group : "", "");
	return 0;
}
