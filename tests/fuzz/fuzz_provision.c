/*
 * libFuzzer harness for `agrictl provision`'s broker-file readers
 * (tools/agrictl/provision.c): arbitrary bytes as a mosquitto password
 * file and as an ACL. The password file is rewritten with a station's entry
 * (ended, replaced, appended: the result must end with the entry, hold no
 * more than the input plus the entry, keep the hub accounts the input had,
 * and a second rewrite must change nothing); the ACL with the station's
 * block appended must name the station. Seeds: tests/fuzz/corpus/provision/
 * (files without a trailing newline, very long lines, CRLF, comments).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provision.h"

#define REQUIRE(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char user[] = "DT-A", entry[] = "DT-A:$7$101$c2FsdA==$aGFzaA==";
	const char *in = (const char *)data;
	char *out = NULL, *again = NULL, *acl, name_in[64], name_out[64], block[1024];
	size_t n = 0, n2 = 0, elen = strlen(entry);
	int r_in, r_out;

	REQUIRE(provision_passwd_put(in, size, user, entry, &out, &n) == 0);
	REQUIRE(n >= elen + 1 && n <= size + elen + 2);
	REQUIRE(out[n] == '\0' && out[n - 1] == '\n');
	REQUIRE(memcmp(out + n - 1 - elen, entry, elen) == 0);
	REQUIRE(n == elen + 1 || out[n - 2 - elen] == '\n');
	REQUIRE(provision_passwd_put(out, n, user, entry, &again, &n2) == 0);
	REQUIRE(n2 == n && memcmp(again, out, n) == 0);
	r_in = provision_passwd_reserved(in, size, name_in, sizeof(name_in));
	r_out = provision_passwd_reserved(out, n, name_out, sizeof(name_out));
	REQUIRE(r_in == r_out && (!r_in || strcmp(name_in, name_out) == 0));
	free(again);
	free(out);

	(void)provision_acl_reserved(in, size, name_in, sizeof(name_in));
	(void)provision_acl_has_user(in, size, user);
	REQUIRE(provision_acl(user, "agri/v1", block, sizeof(block)) == 0);
	acl = malloc(size + strlen(block) + 1);
	REQUIRE(acl);
	memcpy(acl, in, size);
	memcpy(acl + size, block, strlen(block) + 1);
	REQUIRE(provision_acl_has_user(acl, size + strlen(block), user));
	free(acl);
	return 0;
}
