/*
 * Dead letters (docs/store.md, Budgets): a payload prefix with its size and
 * SHA-256, counters per kind that never reset, the oldest deleted first
 * past the byte budget, expiry by age. Writer thread.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "core/store_int.h"
#include "agri/sqlite_errno.h"

/* --- dead letters ----------------------------------------------------- */

static int count_dead(struct store *st, const char *kind, int64_t stored,
		      int64_t suppressed, int64_t evicted)
{
	sqlite3_stmt *q = st->s[S_DEAD_COUNT];

	sqlite3_bind_text(q, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, stored);
	sqlite3_bind_int64(q, 3, suppressed);
	sqlite3_bind_int64(q, 4, evicted);
	return st_step_done(q);
}

/* Runs an eviction statement (RETURNING bytes, kind): counts what went.
 * Returns the number of rows deleted or a negative errno. */
static int dead_delete(struct store *st, sqlite3_stmt *q)
{
	int rc, n = 0;

	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		char kind[32];

		st->dl_txn -= sqlite3_column_int64(q, 0);
		snprintf(kind, sizeof(kind), "%s", (const char *)sqlite3_column_text(q, 1));
		n++;
		/* RETURNING rows come before the statement completes: count
		 * after it, per row, on a second statement. */
		if ((rc = count_dead(st, kind, 0, 0, 1)) < 0) {
			sqlite3_reset(q);
			return rc;
		}
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_DONE ? n : agri_sqlite_errno(rc);
}

static void sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (!EVP_Digest(p, len, md, &n, EVP_sha256(), NULL) || n != 32) {
		out[0] = '\0';
		return;
	}
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int store_put_dead_letter(struct store *st, const struct store_dead_letter *dl)
{
	sqlite3_stmt *q = st->s[S_DEAD_INS];
	size_t keep = dl->len;
	const char *kind = dl->kind && *dl->kind ? dl->kind : "invalid";
	char hash[65];
	int rc;

	if (st->opt.dead_payload_max && keep > st->opt.dead_payload_max)
		keep = st->opt.dead_payload_max;
	sha256_hex(dl->payload, dl->len, hash);
	sqlite3_bind_int64(q, 1, dl->received_ms);
	sqlite3_bind_text(q, 2, dl->topic, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, dl->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text64(q, 4, dl->payload, keep, SQLITE_STATIC, SQLITE_UTF8);
	sqlite3_bind_int64(q, 5, (int64_t)dl->len);
	sqlite3_bind_text(q, 6, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 7, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 8, dl->station ? dl->station : "", -1, SQLITE_STATIC);
	if ((rc = st_step_done(q)) < 0 || (rc = count_dead(st, kind, 1, 0, 0)) < 0)
		return rc;
	st->dl_txn += (int64_t)(keep + strlen(dl->topic) + strlen(dl->reason) + 64);
	while (st->opt.dead_bytes_max > 0 && st->dl_bytes + st->dl_txn > st->opt.dead_bytes_max) {
		if ((rc = dead_delete(st, st->s[S_DEAD_EVICT])) <= 0)
			return rc;
	}
	return 0;
}

int store_count_dead_letters(struct store *st, const char *kind, int64_t n)
{
	return count_dead(st, kind && *kind ? kind : "invalid", 0, n, 0);
}

int store_expire_dead_letters(struct store *st, int64_t before_ms)
{
	int rc, n;

	if ((rc = store_begin(st)) < 0)
		return rc;
	sqlite3_bind_int64(st->s[S_DEAD_EXPIRE], 1, before_ms);
	if ((n = dead_delete(st, st->s[S_DEAD_EXPIRE])) < 0) {
		store_rollback(st);
		return n;
	}
	if (n == 0) {
		store_rollback(st); /* nothing written */
		return 0;
	}
	return (rc = store_commit(st)) < 0 ? rc : n;
}

int64_t store_dead_letter_bytes(const struct store *st)
{
	return st->dl_bytes + st->dl_txn;
}
