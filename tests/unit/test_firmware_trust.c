/*
 * Unit tests of signed configs: the Ed25519 helpers against RFC 8032's
 * test vectors, strict base64, the signature envelope (common/src/sign.c)
 * and the station's check of a pushed message against its technicians'
 * keys (firmware/src/trust.c), with key files in a temporary directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/sign.h"
#include "agri/util.h"
#include "test.h"
#include "trust.h"

static void unhex(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

/* Writes an Ed25519 public key (raw 32 bytes) as a PEM SubjectPublicKeyInfo. */
static void write_raw_pub(const char *path, const unsigned char pk[32])
{
	static const unsigned char spki[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
					       0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
	unsigned char der[44];
	char b64[64], pem[160];
	int n;

	memcpy(der, spki, sizeof(spki));
	memcpy(der + sizeof(spki), pk, 32);
	sign_base64_encode(der, sizeof(der), b64, sizeof(b64));
	n = snprintf(pem, sizeof(pem), "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", b64);
	CHECK_INT(util_write_file_atomic(path, pem, (size_t)n), 0);
}

static void test_rfc8032(const char *dir)
{
	static const struct {
		const char *pk, *msg, *sig;
	} v[] = {
		{"d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
		 "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
		 "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
		{"3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
		 "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e"
		 "458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
	};
	char path[512];

	snprintf(path, sizeof(path), "%s/rfc.pub", dir);
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(v); i++) {
		unsigned char pk[32], msg[1], sig[64];
		size_t mlen = strlen(v[i].msg) / 2;
		struct sign_key *k = NULL;

		unhex(v[i].pk, pk, 32);
		unhex(v[i].msg, msg, mlen);
		unhex(v[i].sig, sig, 64);
		write_raw_pub(path, pk);
		CHECK_INT(sign_key_read_public(path, &k), 0);
		if (!k)
			continue;
		CHECK_INT(sign_verify(k, msg, mlen, sig), 0);
		sig[10] ^= 1;
		CHECK_INT(sign_verify(k, msg, mlen, sig), -EBADMSG);
		sig[10] ^= 1;
		CHECK_INT(sign_verify(k, "x", 1, sig), -EBADMSG);
		/* A public key cannot sign. */
		CHECK_INT(sign_ed25519(k, msg, mlen, sig), -EINVAL);
		sign_key_free(k);
	}
}

static void test_base64(void)
{
	static const struct {
		const char *in;
		int want; /* length, or -errno */
		const char *out;
	} cases[] = {
		{"", 0, ""}, {"Zg==", 1, "f"}, {"Zm8=", 2, "fo"}, {"Zm9v", 3, "foo"},
		{"Zm9vYmFy", 6, "foobar"},
		{"Zh==", -EBADMSG, NULL},   /* unused bits set: not canonical */
		{"Zm9=", -EBADMSG, NULL},
		{"Zg=", -EBADMSG, NULL},    /* length */
		{"Z===", -EBADMSG, NULL},
		{"Zg==Zg==", -EBADMSG, NULL}, /* padding inside */
		{"Zm9v\n", -EBADMSG, NULL},
		{"Zm-v", -EBADMSG, NULL},   /* base64url is not accepted */
		{"=Zm9", -EBADMSG, NULL},
	};
	unsigned char out[16];
	char enc[32];

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(cases); i++) {
		int n = sign_base64_decode(cases[i].in, strlen(cases[i].in), out, sizeof(out));

		CHECK_INT(n, cases[i].want);
		if (n >= 0 && cases[i].out) {
			CHECK(memcmp(out, cases[i].out, (size_t)n) == 0);
			CHECK_INT(sign_base64_encode(out, (size_t)n, enc, sizeof(enc)), strlen(cases[i].in));
			CHECK_STR(enc, cases[i].in);
		}
	}
	CHECK_INT(sign_base64_decode("Zm9vYmFy", 8, out, 5), -ENOSPC);
	CHECK_INT(sign_base64_encode((const unsigned char *)"foo", 3, enc, 4), -ENOSPC);
}

static void test_envelope(struct sign_key *k)
{
	static const char doc[] = "{\"station\":\"DT-W01\",\"version\":3}";
	unsigned char sig[64], got[64];
	char msg[512], by[SIGN_NAME_MAX + 1], bad[512];
	size_t head = 0;
	int n;

	CHECK_INT(sign_ed25519(k, doc, strlen(doc), sig), 0);
	CHECK_INT(sign_verify(k, doc, strlen(doc), sig), 0);
	n = sign_envelope_seal(doc, strlen(doc), "alice", sig, msg, sizeof(msg));
	CHECK(n > 0);
	CHECK(strncmp(msg, "{\"station\":\"DT-W01\",\"version\":3,\"signature\":{\"by\":\"alice\","
		      "\"ed25519\":\"", 63) == 0);
	CHECK_INT(msg[n - 1], '}');
	CHECK_INT(sign_envelope_open(msg, (size_t)n, &head, by, got), 0);
	CHECK_INT(head, strlen(doc) - 1);
	CHECK_STR(by, "alice");
	CHECK(memcmp(got, sig, 64) == 0);

	/* Seal refuses what it cannot frame. */
	CHECK_INT(sign_envelope_seal("[1]", 3, "alice", sig, bad, sizeof(bad)), -EINVAL);
	CHECK_INT(sign_envelope_seal(doc, strlen(doc), "al ice", sig, bad, sizeof(bad)), -EINVAL);
	CHECK_INT(sign_envelope_seal(doc, strlen(doc), "alice", sig, bad, 40), -ENOSPC);

	/* Unsigned, or the envelope not at the very end: -ENOMSG. */
	CHECK_INT(sign_envelope_open(doc, strlen(doc), &head, by, got), -ENOMSG);
	memcpy(bad, msg, (size_t)n);
	bad[n] = '\n';
	CHECK_INT(sign_envelope_open(bad, (size_t)n + 1, &head, by, got), -ENOMSG);
	CHECK_INT(sign_envelope_open(msg, (size_t)n - 1, &head, by, got), -ENOMSG);
	/* The tail is there but the rest is wrong: -EBADMSG. */
	{
		static const char *const heads[] = {
			/* empty name */
			"{\"a\":1,\"signature\":{\"by\":\"\",\"ed25519\":\"",
			/* 33 characters */
			"{\"a\":1,\"signature\":{\"by\":\"abcdefghijklmnopqrstuvwxyz0123456\",\"ed25519\":\"",
			/* a name character outside the set */
			"{\"a\":1,\"signature\":{\"by\":\"al.ice\",\"ed25519\":\"",
			/* another key before the name */
			"{\"a\":1,\"signature\":{\"who\":\"alice\",\"ed25519\":\"",
			/* no comma: the signature alone is not a document */
			"{\"signature\":{\"by\":\"alice\",\"ed25519\":\"",
			/* spaces */
			"{\"a\":1, \"signature\":{\"by\":\"alice\",\"ed25519\":\"",
		};
		char s64[SIGN_B64_LEN + 1];

		sign_base64_encode(sig, 64, s64, sizeof(s64));
		for (size_t i = 0; i < AGRI_ARRAY_SIZE(heads); i++) {
			int m = snprintf(bad, sizeof(bad), "%s%s\"}}", heads[i], s64);

			CHECK_INT(sign_envelope_open(bad, (size_t)m, &head, by, got), -EBADMSG);
		}
		/* The base64: a wrong character, a non-canonical last character. */
		memcpy(bad, msg, (size_t)n);
		bad[n - 3 - 10] = '*';
		CHECK_INT(sign_envelope_open(bad, (size_t)n, &head, by, got), -EBADMSG);
		memcpy(bad, msg, (size_t)n);
		bad[n - 3 - 3] = 'B'; /* before "==": value 1, an unused bit set */
		CHECK_INT(sign_envelope_open(bad, (size_t)n, &head, by, got), -EBADMSG);
	}
}

/* trust_open against a key directory: each refusal and its reason. */
static void test_trust(const char *dir, struct sign_key *alice, struct sign_key *mallory)
{
	static char msg[1024], doc[1024], pem[1024], path[1024], tdir[512];
	static const char cfgdoc[] = "{\"station\":\"DT-W01\",\"version\":7}";
	struct agri_err err = {{0}, {0}};
	char by[AGRI_ID_MAX + 1], text[300];
	unsigned char sig[64];
	size_t doc_len = 0;
	int n, m;

	snprintf(path, sizeof(path), "%s/etc/station.json", dir);
	CHECK_INT(trust_dir(path, tdir, sizeof(tdir)), 0);
	snprintf(path, sizeof(path), "%s/etc/technicians", dir);
	CHECK_STR(tdir, path);

	sign_ed25519(alice, cfgdoc, strlen(cfgdoc), sig);
	n = sign_envelope_seal(cfgdoc, strlen(cfgdoc), "alice", sig, msg, sizeof(msg));

#define REFUSED(m_, len_, want)                                                          \
	do {                                                                            \
		memset(&err, 0, sizeof(err));                                           \
		CHECK_INT(trust_open(tdir, m_, len_, doc, sizeof(doc), &doc_len, by, &err), \
			  -EPERM);                                                      \
		agri_err_format(&err, text, sizeof(text));                              \
		if (!strstr(text, want))                                                \
			fprintf(stderr, "got \"%s\", want \"%s\"\n", text, want);       \
		CHECK(strstr(text, want) != NULL);                                      \
	} while (0)

	/* No directory, then an empty one: remote configs are off. */
	REFUSED(msg, (size_t)n, "signature: no technician keys installed");
	CHECK_INT(util_mkdirs(tdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/README", tdir);
	util_write_file_atomic(path, "x", 1);
	snprintf(path, sizeof(path), "%s/bad name.pub", tdir);
	util_write_file_atomic(path, "x", 1);
	REFUSED(msg, (size_t)n, "signature: no technician keys installed");

	m = sign_key_public_pem(alice, pem, sizeof(pem));
	snprintf(path, sizeof(path), "%s/alice.pub", tdir);
	CHECK_INT(util_write_file_atomic(path, pem, (size_t)m), 0);

	/* Good: the document comes back, byte for byte, with its signer. */
	memset(&err, 0, sizeof(err));
	CHECK_INT(trust_open(tdir, msg, (size_t)n, doc, sizeof(doc), &doc_len, by, &err), 0);
	CHECK_INT(doc_len, strlen(cfgdoc));
	CHECK_STR(doc, cfgdoc);
	CHECK_STR(by, "alice");
	CHECK_INT(trust_open(tdir, msg, (size_t)n, doc, 8, &doc_len, by, &err), -ENOSPC);

	REFUSED(cfgdoc, strlen(cfgdoc), "signature: missing");
	/* Tampered: one byte of the document. */
	msg[12] = 'X';
	REFUSED(msg, (size_t)n, "signature: does not verify with technician \"alice\"");
	msg[12] = cfgdoc[12];
	/* The version raised after signing. */
	{
		char *v = strstr(msg, "\"version\":7");

		v[10] = '9';
		REFUSED(msg, (size_t)n, "signature: does not verify");
		v[10] = '7';
	}
	/* Signed by a key the station does not know, under its own name and alice's. */
	sign_ed25519(mallory, cfgdoc, strlen(cfgdoc), sig);
	m = sign_envelope_seal(cfgdoc, strlen(cfgdoc), "mallory", sig, msg, sizeof(msg));
	REFUSED(msg, (size_t)m, "signature: unknown technician \"mallory\"");
	m = sign_envelope_seal(cfgdoc, strlen(cfgdoc), "alice", sig, msg, sizeof(msg));
	REFUSED(msg, (size_t)m, "signature: does not verify with technician \"alice\"");
	/* The signature not the last member. */
	REFUSED("{\"signature\":{\"by\":\"alice\",\"ed25519\":\"\"},\"station\":\"DT-W01\"}", 61,
		"signature: malformed");
	/* A .pub that is not an Ed25519 public key. */
	snprintf(path, sizeof(path), "%s/eve.pub", tdir);
	util_write_file_atomic(path, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 56);
	m = sign_envelope_seal(cfgdoc, strlen(cfgdoc), "eve", sig, msg, sizeof(msg));
	REFUSED(msg, (size_t)m, "technician \"eve\": key file is not an Ed25519 public key");
	/* A private key file in place of the public one. */
	m = sign_key_private_pem(mallory, pem, sizeof(pem));
	util_write_file_atomic(path, pem, (size_t)m);
	m = sign_envelope_seal(cfgdoc, strlen(cfgdoc), "eve", sig, msg, sizeof(msg));
	REFUSED(msg, (size_t)m, "technician \"eve\": key file is not an Ed25519 public key");
#undef REFUSED
}

static void test_keys(const char *dir, struct sign_key *k)
{
	char pem[1024], path[512];
	struct sign_key *pub = NULL, *priv = NULL, *other = NULL;
	unsigned char sig[64];
	int n;

	n = sign_key_private_pem(k, pem, sizeof(pem));
	CHECK(n > 0 && strstr(pem, "BEGIN PRIVATE KEY"));
	snprintf(path, sizeof(path), "%s/k.key", dir);
	util_write_file_atomic(path, pem, (size_t)n);
	CHECK_INT(sign_key_read_private(path, &priv), 0);
	CHECK_INT(sign_key_read_public(path, &other), -EBADMSG); /* not a public key file */
	n = sign_key_public_pem(k, pem, sizeof(pem));
	CHECK(n > 0 && strstr(pem, "BEGIN PUBLIC KEY"));
	snprintf(path, sizeof(path), "%s/k.pub", dir);
	util_write_file_atomic(path, pem, (size_t)n);
	CHECK_INT(sign_key_read_public(path, &pub), 0);
	CHECK_INT(sign_key_read_private(path, &other), -EBADMSG); /* not a private key file */
	CHECK_INT(sign_key_public_pem(k, pem, 10), -ENOSPC);
	snprintf(path, sizeof(path), "%s/missing.pub", dir);
	CHECK_INT(sign_key_read_public(path, &other), -ENOENT);
	if (priv && pub) {
		CHECK_INT(sign_ed25519(priv, "abc", 3, sig), 0);
		CHECK_INT(sign_verify(pub, "abc", 3, sig), 0);
		CHECK_INT(sign_verify(pub, "abd", 3, sig), -EBADMSG);
	}
	CHECK(sign_name_valid("alice") && sign_name_valid("Nguyen_Van-A1"));
	CHECK(!sign_name_valid("") && !sign_name_valid("a/b") && !sign_name_valid("..") &&
	      !sign_name_valid("abcdefghijklmnopqrstuvwxyz0123456"));
	sign_key_free(priv);
	sign_key_free(pub);
	sign_key_free(NULL);
}

int main(void)
{
	char dir[] = "/tmp/agri-trust-XXXXXX", cmd[64];
	struct sign_key *alice = NULL, *mallory = NULL;

	if (!mkdtemp(dir))
		return 1;
	CHECK_INT(sign_key_new(&alice), 0);
	CHECK_INT(sign_key_new(&mallory), 0);
	test_rfc8032(dir);
	test_base64();
	if (alice && mallory) {
		test_keys(dir, alice);
		test_envelope(alice);
		test_trust(dir, alice, mallory);
	}
	sign_key_free(alice);
	sign_key_free(mallory);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_main("test_firmware_trust");
}
