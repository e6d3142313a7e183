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

int agrictl_dead_letters(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, 0, 'd'}, {"station", required_argument, 0, 's'},
		{"kind", required_argument, 0, 'k'}, {"limit", required_argument, 0, 'n'},
		{"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0}};
	const char *path = NULL, *station = NULL, *kind = NULL;
	long limit = 20;
	bool json = false;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	char *end, uri[4200];
	int c, rc, n = 0, out = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': path = optarg; break;
		case 's': station = optarg; break;
		case 'k': kind = optarg; break;
		case 'n':
			limit = strtol(optarg, &end, 10);
			if (*end || limit < 1 || limit > 100000) {
				fprintf(stderr, "agrictl: --limit expects 1-100000\n");
				return AGRI_EXIT_USAGE;
			}
			break;
		case 'j': json = true; break;
		case 'h':
			puts("usage: agrictl dead-letters --db GATEWAY.db [--station ID] [--kind KIND]"
			     " [--limit 20] [--json]");
			return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (!path) {
		fprintf(stderr, "agrictl: dead-letters needs --db FILE (the gateway's db.path)\n");
		return AGRI_EXIT_USAGE;
	}
	if (station && !agri_station_id_valid(station)) {
		fprintf(stderr, "agrictl: --station: expected [A-Za-z0-9_-]{1,32}\n");
		return AGRI_EXIT_USAGE;
	}
	snprintf(uri, sizeof(uri), "file:%s?mode=ro", path);
	rc = sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT kind, stored, suppressed, evicted"
					" FROM v_dead_letter_counts ORDER BY kind", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "agrictl: %s: %s\n", path,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto done;
	}
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
	q = NULL;
	rc = sqlite3_prepare_v2(db, "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', received_at / 1000.0,"
				" 'unixepoch'), topic, coalesce(kind, 'invalid'), station, reason,"
				" coalesce(size, length(CAST(payload AS BLOB))), sha256, payload"
				" FROM dead_letters WHERE (?1 IS NULL OR station = ?1)"
				" AND (?2 IS NULL OR coalesce(kind, 'invalid') = ?2)"
				" ORDER BY id DESC LIMIT ?3", -1, &q, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "agrictl: %s: %s\n", path, sqlite3_errmsg(db));
		goto done;
	}
	if (station)
		sqlite3_bind_text(q, 1, station, -1, SQLITE_STATIC);
	if (kind)
		sqlite3_bind_text(q, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, limit);
	fputs(json ? "],\"dead_letters\":[" : "\n", stdout);
	n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const unsigned char *payload = sqlite3_column_text(q, 7);
		int plen = sqlite3_column_bytes(q, 7);

		if (json) {
			static const char *const keys[] = {"received_at", "topic", "kind", "station",
							   "reason"};

			fputs(n++ ? ",{" : "{", stdout);
			for (int i = 0; i < 5; i++) {
				printf("%s\"%s\":", i ? "," : "", keys[i]);
				put_json_str(stdout, sqlite3_column_text(q, i));
			}
			printf(",\"size\":%lld,\"sha256\":", sqlite3_column_int64(q, 5));
			put_json_str(stdout, sqlite3_column_text(q, 6));
			fputs(",\"payload\":", stdout);
			put_json_str(stdout, payload);
			fputc('}', stdout);
		} else {
			n++;
			printf("%s %s %s [%s] %s\n    %lld bytes sha256 %.16s... ",
			       sqlite3_column_text(q, 0), sqlite3_column_text(q, 3)
				       ? (const char *)sqlite3_column_text(q, 3) : "-",
			       sqlite3_column_text(q, 2), sqlite3_column_text(q, 1),
			       sqlite3_column_text(q, 4), sqlite3_column_int64(q, 5),
			       sqlite3_column_text(q, 6) ? (const char *)sqlite3_column_text(q, 6)
							 : "-");
			put_excerpt(stdout, payload, plen);
			fputc('\n', stdout);
		}
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "agrictl: %s: %s\n", path, sqlite3_errmsg(db));
		goto done;
	}
	if (json)
		fputs("]}\n", stdout);
	else if (n == 0)
		puts("no dead letters");
	out = 0;
done:
	sqlite3_finalize(q);
	sqlite3_close(db);
	return out;
}
