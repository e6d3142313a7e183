/*
 * Signed station configs (docs/station.md "Remote config"): Ed25519 keys,
 * signatures and verification through OpenSSL's libcrypto, strict base64,
 * and the signature envelope a pushed config travels in. agrictl signs
 * (config push) and makes key pairs (provision --technician); the station
 * verifies. Library agri_sign (common/CMakeLists.txt), not agri_common:
 * only the programs that sign or verify link libcrypto through it.
 *
 * The envelope, byte for byte: the signed document D is a JSON object
 * ("{...}"); the message on the wire is D without its closing brace, then
 *
 *     ,"signature":{"by":"NAME","ed25519":"BASE64"}}
 *
 * NAME is the technician ([A-Za-z0-9_-]{1,32}), BASE64 the 64-byte
 * signature over exactly D's bytes (88 characters, standard alphabet,
 * "==" padding). Nothing may follow, not even a newline. A reader cuts the
 * suffix off and puts the brace back: no JSON parser needed to find what
 * was signed, and nothing in D can move the signature.
 */
#ifndef AGRI_SIGN_H
#define AGRI_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#define SIGN_ED25519_LEN 64     /* signature bytes */
#define SIGN_B64_LEN 88         /* its base64 */
#define SIGN_NAME_MAX 32        /* technician name, [A-Za-z0-9_-] */
#define SIGN_KEY_FILE_MAX 4096  /* a PEM key file is ~120 bytes */
/* The envelope's bytes beyond D's (D's closing brace is reused). */
#define SIGN_ENVELOPE_MAX (sizeof(",\"signature\":{\"by\":\"\",\"ed25519\":\"\"}}") - 1 + \
			   SIGN_NAME_MAX + SIGN_B64_LEN)

/* An Ed25519 key, private (can sign) or public (verifies only). */
struct sign_key;

/* A fresh key pair (RAND_bytes). Returns 0, or -EIO. */
int sign_key_new(struct sign_key **out);

/*
 * Reads a PEM key file (at most SIGN_KEY_FILE_MAX bytes): a public key
 * ("BEGIN PUBLIC KEY", what `openssl pkey -pubout` writes) or a private
 * one (PKCS#8 "BEGIN PRIVATE KEY"; an encrypted one makes OpenSSL ask for
 * its passphrase on the terminal). Returns 0, -errno when unreadable,
 * -EBADMSG when it is not an Ed25519 key of that kind.
 */
int sign_key_read_public(const char *path, struct sign_key **out);
int sign_key_read_private(const char *path, struct sign_key **out);

/* The key's PEM text (public, or PKCS#8 private, unencrypted) into buf;
 * returns its length, or -ENOSPC / -EINVAL (no private half) / -EIO. */
int sign_key_public_pem(const struct sign_key *k, char *buf, size_t len);
int sign_key_private_pem(const struct sign_key *k, char *buf, size_t len);

void sign_key_free(struct sign_key *k);

/* Signs msg with a private key. Returns 0, or -EINVAL / -EIO. */
int sign_ed25519(const struct sign_key *k, const void *msg, size_t len,
		 unsigned char sig[SIGN_ED25519_LEN]);

/* Returns 0 when sig is k's signature of msg, else -EBADMSG. */
int sign_verify(const struct sign_key *k, const void *msg, size_t len,
		const unsigned char sig[SIGN_ED25519_LEN]);

/* Standard base64 with padding; writes a NUL. Returns the length, or
 * -ENOSPC. */
int sign_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap);

/*
 * Strict base64: standard alphabet, length a multiple of 4, "=" only as
 * the padding, the unused bits of the last character zero (one encoding
 * per byte string). Returns the decoded length, or -EBADMSG / -ENOSPC.
 */
int sign_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* True for a technician name: [A-Za-z0-9_-]{1,SIGN_NAME_MAX}. */
bool sign_name_valid(const char *name);

/*
 * Appends the envelope to document doc (doc_len bytes, ending in "}"):
 * writes doc without its "}", the signature member, "}" and a NUL into
 * out. Returns the message length, or -EINVAL (doc not ending in "}" or a
 * bad name) / -ENOSPC.
 */
int sign_envelope_seal(const char *doc, size_t doc_len, const char *by,
		       const unsigned char sig[SIGN_ED25519_LEN], char *out,
		       size_t cap);

/*
 * Finds the envelope at the end of msg (pure: no I/O, no allocation).
 * On success writes the length of msg's part before the signature member
 * to *head_len (D is msg[0, head_len) followed by "}"), the signer's name
 * and the signature. Returns 0; -ENOMSG when msg does not end in the
 * envelope's last part (`","ed25519":"` 88 characters `"}}`); -EBADMSG
 * when it does but the rest (the head, the name, the base64) is wrong.
 */
int sign_envelope_open(const char *msg, size_t len, size_t *head_len,
		       char by[SIGN_NAME_MAX + 1],
		       unsigned char sig[SIGN_ED25519_LEN]);

#endif
