/*
 * Ed25519 through libcrypto's EVP interface (one-shot EVP_DigestSign /
 * EVP_DigestVerify with no digest: Ed25519 hashes the message itself),
 * strict base64 and the config signature envelope (agri/sign.h).
 * OpenSSL's error queue is cleared after each failed call so a later
 * caller never reads a stale error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "agri/sign.h"
#include "agri/util.h"

#define HEAD ",\"signature\":{\"by\":\""
#define MID "\",\"ed25519\":\""
#define TAIL "\"}}"
#define LIT_LEN(s) (sizeof(s) - 1)

struct sign_key {
	EVP_PKEY *pkey;
	bool has_private;
};

static struct sign_key *key_wrap(EVP_PKEY *pkey, bool has_private)
{
	struct sign_key *k;

	if (!pkey)
		return NULL;
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k = malloc(sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	k->has_private = has_private;
	return k;
}

int sign_key_new(struct sign_key **out)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;

	if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &pkey) != 1) {
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		return -EIO;
	}
	EVP_PKEY_CTX_free(ctx);
	*out = key_wrap(pkey, true);
	return *out ? 0 : -EIO;
}

static int key_read(const char *path, bool private_key, struct sign_key **out)
{
	EVP_PKEY *pkey;
	size_t len;
	char *buf;
	BIO *bio;
	int rc;

	rc = util_read_file(path, SIGN_KEY_FILE_MAX, &buf, &len);
	if (rc < 0)
		return rc;
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!bio) {
		free(buf);
		return -ENOMEM;
	}
	pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
			   : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(buf, len);
	free(buf);
	ERR_clear_error();
	*out = key_wrap(pkey, private_key);
	return *out ? 0 : -EBADMSG;
}

int sign_key_read_public(const char *path, struct sign_key **out)
{
	return key_read(path, false, out);
}

int sign_key_read_private(const char *path, struct sign_key **out)
{
	return key_read(path, true, out);
}

static int key_pem(const struct sign_key *k, bool private_key, char *buf, size_t len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int ok;

	if (!bio)
		return -ENOMEM;
	ok = private_key ? PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)
			 : PEM_write_bio_PUBKEY(bio, k->pkey);
	n = BIO_get_mem_data(bio, &data);
	if (ok != 1 || n <= 0) {
		BIO_free(bio);
		ERR_clear_error();
		return -EIO;
	}
	if ((size_t)n >= len) {
		BIO_free(bio);
		return -ENOSPC;
	}
	memcpy(buf, data, (size_t)n);
	buf[n] = '\0';
	OPENSSL_cleanse(data, (size_t)n);
	BIO_free(bio);
	return (int)n;
}

int sign_key_public_pem(const struct sign_key *k, char *buf, size_t len)
{
	return key_pem(k, false, buf, len);
}

int sign_key_private_pem(const struct sign_key *k, char *buf, size_t len)
{
	if (!k->has_private)
		return -EINVAL;
	return key_pem(k, true, buf, len);
}

void sign_key_free(struct sign_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int sign_ed25519(const struct sign_key *k, const void *msg, size_t len,
		 unsigned char sig[SIGN_ED25519_LEN])
{
	size_t siglen = SIGN_ED25519_LEN;
	EVP_MD_CTX *ctx;
	int rc = 0;

	if (!k->has_private)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != SIGN_ED25519_LEN) {
		ERR_clear_error();
		rc = -EIO;
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}

int sign_verify(const struct sign_key *k, const void *msg, size_t len,
		const unsigned char sig[SIGN_ED25519_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -EBADMSG;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, SIGN_ED25519_LEN, msg, len) == 1)
		rc = 0;
	ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	return rc;
}

static const char b64[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int sign_base64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
	size_t need = (n + 2) / 3 * 4, o = 0;

	if (need + 1 > cap)
		return -ENOSPC;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? b64[v & 63] : '=';
	}
	out[o] = '\0';
	return (int)o;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int sign_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	size_t o = 0;

	if (n % 4)
		return -EBADMSG;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		unsigned w;

		for (int j = 0; j < 4; j++) {
			v[j] = b64_value(in[i + j]);
			if (v[j] >= 0 && pad)
				return -EBADMSG; /* data after "=" */
			if (v[j] < 0) {
				if (in[i + j] != '=' || j < 2 || i + 4 != n)
					return -EBADMSG;
				pad++;
				v[j] = 0;
			}
		}
		w = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -EBADMSG; /* non-zero unused bits: not the canonical encoding */
		if (o + 3 - (size_t)pad > cap)
			return -ENOSPC;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	return (int)o;
}

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

bool sign_name_valid(const char *name)
{
	size_t n = 0;

	for (; name[n]; n++)
		if (n >= SIGN_NAME_MAX || !name_char(name[n]))
			return false;
	return n > 0;
}

int sign_envelope_seal(const char *doc, size_t doc_len, const char *by,
		       const unsigned char sig[SIGN_ED25519_LEN], char *out,
		       size_t cap)
{
	char s64[SIGN_B64_LEN + 1];
	size_t o, nb;

	if (doc_len < 2 || doc[0] != '{' || doc[doc_len - 1] != '}' || !sign_name_valid(by))
		return -EINVAL;
	nb = strlen(by);
	if (doc_len - 1 + SIGN_ENVELOPE_MAX + 1 > cap ||
	    sign_base64_encode(sig, SIGN_ED25519_LEN, s64, sizeof(s64)) != SIGN_B64_LEN)
		return -ENOSPC;
	memcpy(out, doc, doc_len - 1);
	o = doc_len - 1;
	memcpy(out + o, HEAD, LIT_LEN(HEAD));
	o += LIT_LEN(HEAD);
	memcpy(out + o, by, nb);
	o += nb;
	memcpy(out + o, MID, LIT_LEN(MID));
	o += LIT_LEN(MID);
	memcpy(out + o, s64, SIGN_B64_LEN);
	o += SIGN_B64_LEN;
	memcpy(out + o, TAIL, LIT_LEN(TAIL));
	o += LIT_LEN(TAIL);
	out[o] = '\0';
	return (int)o;
}

int sign_envelope_open(const char *msg, size_t len, size_t *head_len,
		       char by[SIGN_NAME_MAX + 1],
		       unsigned char sig[SIGN_ED25519_LEN])
{
	size_t end, name_end, name_start;
	const char *s64;

	/* From the end: TAIL, the base64, MID, the name, HEAD; "{" first. */
	if (len < 1 + LIT_LEN(HEAD) + 1 + LIT_LEN(MID) + SIGN_B64_LEN + LIT_LEN(TAIL) ||
	    msg[0] != '{' || memcmp(msg + len - LIT_LEN(TAIL), TAIL, LIT_LEN(TAIL)))
		return -ENOMSG;
	end = len - LIT_LEN(TAIL) - SIGN_B64_LEN;
	s64 = msg + end;
	if (end < LIT_LEN(MID) || memcmp(msg + end - LIT_LEN(MID), MID, LIT_LEN(MID)))
		return -ENOMSG;
	name_end = end - LIT_LEN(MID);
	name_start = name_end;
	while (name_start > 0 && name_end - name_start <= SIGN_NAME_MAX &&
	       name_char(msg[name_start - 1]))
		name_start--;
	/* TAIL and MID are there: from here on a mismatch is a malformed
	 * envelope, not an unsigned document. */
	if (name_start < 1 + LIT_LEN(HEAD) ||
	    memcmp(msg + name_start - LIT_LEN(HEAD), HEAD, LIT_LEN(HEAD)) ||
	    name_end == name_start || name_end - name_start > SIGN_NAME_MAX)
		return -EBADMSG;
	if (sign_base64_decode(s64, SIGN_B64_LEN, sig, SIGN_ED25519_LEN) != SIGN_ED25519_LEN)
		return -EBADMSG;
	memcpy(by, msg + name_start, name_end - name_start);
	by[name_end - name_start] = '\0';
	*head_len = name_start - LIT_LEN(HEAD);
	return 0;
}
