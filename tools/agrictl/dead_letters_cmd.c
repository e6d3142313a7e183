/*
 * `agrictl dead-letters --db FILE [--station ID] [--kind K] [--limit N]
 * [--json]`: what the gateway could not accept, read straight from its
 * database (read-only, so it works while the gateway is down): the
 * counters per kind (they never reset) and the newest dead letters with
 * their reason, size and SHA-256. docs/store.md, "Dead letters".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/exit.h"
#include "agri/topic.h"
#include "agrictl.h"

#define DL_JSON_STR_MAX (16 * 1024 * 1024) /* a payload escaped: 6 bytes a byte at most */

/* s as a JSON string ("" for NULL), through agri_buf's writer: control
 * characters escaped, bytes that are not UTF-8 as U+FFFD (a hostile
 * station's payload stays valid JSON). */
static void put_json_str(FILE *f, const unsigned char *s)
{
	struct agri_buf b = AGRI_BUF_HEAP(DL_JSON_STR_MAX);

	agri_buf_json_text(&b, s ? (const char *)s : "");
	fputs(agri_buf_end(&b) < 0 ? "null" : b.p, f);
	agri_buf_free(&b);
}

/* A payload for a terminal: printable ASCII, the rest as '.', cut at 120. */
static void put_excerpt(FILE *f, const unsigned char *s, int n)
{
	for (int i = 0; i < n && i < 120; i++)
		fputc(s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '.', f);
	if (n > 120)
		fputs("...", f);
}

struct dl_opts {
	const char *path, *station, *kind;
	long limit;
	bool json;
};

/* The command line. Returns 0, -1 after --help, or the usage exit code. */
static int dl_parse_args(int argc, char **argv, struct dl_opts *o)
{
	static const struct option opts[] = {
		{"db", required_argument, 0, 'd'}, {"station", required_argument, 0, 's'},
		{"kind", required_argument, 0, 'k'}, {"limit", required_argument, 0, 'n'},
		{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
	char *end;
	int c;

	*o = (struct dl_opts){.limit = 20};
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o->path = optarg; break;
		case 's': o->station = optarg; break;
		case 'k': o->kind = optarg; break;
		case 'n':
			o->limit = strtol(optarg, &end, 10);
			if (*end || o->limit < 1 || o->limit > 100000) {
				fprintf(stderr, "agrictl: --limit expects 1-100000\n");
				return AGRI_EXIT_USAGE;
			}
			break;
		case 'j': o->json = true; break;
		case 'h':
			puts("usage: agrictl dead-letters --db GATEWAY.db [--station ID] [--kind KIND]"
			     " [--limit 20] [--json]");
			return -1;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (!o->path) {
		fprintf(stderr, "agrictl: dead-letters needs --db FILE (the gateway's db.path)\n");
		return AGRI_EXIT_USAGE;
	}
	if (o->station && !agri_station_id_valid(o->station)) {
		fprintf(stderr, "agrictl: --station: expected [A-Za-z0-9_-]{1,32}\n");
		return AGRI_EXIT_USAGE;
	}
	return 0;
}

/* The counters per kind (v_dead_letter_counts). Returns a SQLite code. */
static int print_counts(sqlite3 *db, bool json)
{
	sqlite3_stmt *q = NULL;
	int rc, n = 0;

	rc = sqlite3_prepare_v2(db, "SELECT kind, stored, suppressed, evicted"
				" FROM v_dead_letter_counts ORDER BY kind", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if (json)
		fputs("{\"counts\":[", stdout);
	else
		printf("%-10s %10s %10s %10s\n", "kind", "stored", "suppressed", "evicted");
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (json) {
			printf("%s{\"kind\":", n++ ? "," : "");
			put_json_str(stdout, sqlite3_column_text(q, 0));
			printf(",\"stored\":%lld,\"suppressed\":%lld,\"evicted\":%lld}",
			       sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2),
			       sqlite3_column_int64(q, 3));
		} else {
			printf("%-10s %10lld %10lld %10lld\n", sqlite3_column_text(q, 0),
			       sqlite3_column_int64(q, 1), sqlite3_column_int64(q, 2),
			       sqlite3_column_int64(q, 3));
		}
	}
	sqlite3_finalize(q);
	return SQLITE_OK;
}

/* One dead letter of the query below, as JSON or for a terminal. */
static void print_letter(sqlite3_stmt *q, bool json, bool first)
{
	const unsigned char *payload = sqlite3_column_text(q, 7);
	int plen = sqlite3_column_bytes(q, 7);

	if (json) {
		static const char *const keys[] = {"received_at", "topic", "kind", "station",
						   "reason"};

		fputs(first ? "{" : ",{", stdout);
		for (int i = 0; i < 5; i++) {
			printf("%s\"%s\":", i ? "," : "", keys[i]);
			put_json_str(stdout, sqlite3_column_text(q, i));
		}
		printf(",\"size\":%lld,\"sha256\":", sqlite3_column_int64(q, 5));
		put_json_str(stdout, sqlite3_column_text(q, 6));
		fputs(",\"payload\":", stdout);
		put_json_str(stdout, payload);
		fputc('}', stdout);
		return;
	}
	printf("%s %s %s [%s] %s\n    %lld bytes sha256 %.16s... ",
	       sqlite3_column_text(q, 0), sqlite3_column_text(q, 3)
		       ? (const char *)sqlite3_column_text(q, 3) : "-",
	       sqlite3_column_text(q, 2), sqlite3_column_text(q, 1),
	       sqlite3_column_text(q, 4), sqlite3_column_int64(q, 5),
	       sqlite3_column_text(q, 6) ? (const char *)sqlite3_column_text(q, 6) : "-");
	put_excerpt(stdout, payload, plen);
	fputc('\n', stdout);
}

/* The newest dead letters, filtered. Returns a SQLite code (DONE when
 * all were printed). */
static int print_letters(sqlite3 *db, const struct dl_opts *o)
{
	sqlite3_stmt *q = NULL;
	int rc, n = 0;

	rc = sqlite3_prepare_v2(db, "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', received_at / 1000.0,"
				" 'unixepoch'), topic, coalesce(kind, 'invalid'), station, reason,"
				" coalesce(size, length(CAST(payload AS BLOB))), sha256, payload"
				" FROM dead_letters WHERE (?1 IS NULL OR station = ?1)"
				" AND (?2 IS NULL OR coalesce(kind, 'invalid') = ?2)"
				" ORDER BY id DESC LIMIT ?3", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if (o->station)
		sqlite3_bind_text(q, 1, o->station, -1, SQLITE_STATIC);
	if (o->kind)
		sqlite3_bind_text(q, 2, o->kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, o->limit);
	fputs(o->json ? "],\"dead_letters\":[" : "\n", stdout);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		print_letter(q, o->json, n++ == 0);
	sqlite3_finalize(q);
	if (rc == SQLITE_DONE) {
		if (o->json)
			fputs("]}\n", stdout);
		else if (n == 0)
			puts("no dead letters");
	}
	return rc;
}

int agrictl_dead_letters(int argc, char **argv)
{
	struct dl_opts o;
	sqlite3 *db = NULL;
	char uri[4200];
	int rc;

	rc = dl_parse_args(argc, argv, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", o.path);
	rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	if (rc == SQLITE_OK)
		rc = print_counts(db, o.json);
	if (rc == SQLITE_OK)
		rc = print_letters(db, &o);
	if (rc != SQLITE_DONE)
		fprintf(stderr, "agrictl: %s: %s\n", o.path,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : AGRI_EXIT_FAIL;
}
