/*
 * `agrictl notify preview --db GATEWAY.db --recipients FILE --person NAME
 * [--from T] [--to T] [--json]`: what a person would have received. The
 * gateway journals every input its notification policy takes (alert
 * transitions, forecast refits, advisories: notify_journal); this replays
 * the journal between --from and --to through a fresh policy over FILE
 * (the live one, or one being tuned), reading the stored readings for the
 * bulletins, and prints the person's messages, then their count per local
 * day. The database is opened read-only (the policy's own state lives in
 * memory), so it works beside a running gateway. docs/notify.md, "Preview".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/exit.h"
#include "agri/time.h"
#include "agrictl.h"
#include "gateway/policy.h"
#include "gateway/recipients.h"

#define SITES_MAX 1024
#define DAYS_MAX 400

struct preview {
	const char *person;
	bool json;
	int n;
	int64_t day[DAYS_MAX];
	int per_day[DAYS_MAX][2];
	size_t n_days;
	int64_t utc_offset_min;
};

static void count_day(struct preview *pv, int64_t at, bool bulletin)
{
	int64_t d = policy_local_day(at, pv->utc_offset_min);
	size_t i = 0;

	while (i < pv->n_days && pv->day[i] != d)
		i++;
	if (i == pv->n_days) {
		if (pv->n_days == DAYS_MAX)
			return;
		pv->day[pv->n_days++] = d;
	}
	pv->per_day[i][bulletin]++;
}

/* The policy's message callback: the person's messages, printed. */
static int on_message(void *ctx, sqlite3 *db, const struct policy_message *m)
{
	struct preview *pv = ctx;
	char at[40];

	(void)db;
	if (strcmp(m->person->name, pv->person) != 0)
		return 0;
	pv->n++;
	count_day(pv, m->at_ms, strcmp(m->kind, "bulletin") == 0);
	if (pv->json) {
		fputs(m->payload, stdout);
		fputc('\n', stdout);
		return 0;
	}
	agri_time_format(m->at_ms, at, sizeof(at));
	printf("%s  %-8s %s (%d item%s)\n  SMS: %s\n  ", at, m->kind, m->id, m->items,
	       m->items == 1 ? "" : "s", m->sms);
	for (const char *p = m->person->lang_en ? m->text_en : m->text_vi; *p; p++) {
		putchar(*p);
		if (*p == '\n')
			fputs("  ", stdout);
	}
	fputs("\n\n", stdout);
	return 0;
}

/* Stations' places and districts as the journal's documents named them. */
static size_t journal_sites(sqlite3 *db, struct policy_site *s, size_t max)
{
	sqlite3_stmt *q;
	size_t n = 0;

	if (sqlite3_prepare_v2(db, "SELECT DISTINCT json_extract(doc, '$.station'),"
			       " json_extract(doc, '$.place'), json_extract(doc, '$.district')"
			       " FROM src.notify_journal WHERE json_extract(doc, '$.station') IS NOT NULL",
			       -1, &q, NULL) != SQLITE_OK)
		return 0;
	while (sqlite3_step(q) == SQLITE_ROW && n < max) {
		const char *st = (const char *)sqlite3_column_text(q, 0);
		bool dup = false;

		for (size_t i = 0; i < n && !dup; i++)
			dup = strcmp(s[i].station, st) == 0;
		if (dup)
			continue;
		snprintf(s[n].station, sizeof(s[n].station), "%s", st);
		snprintf(s[n].name, sizeof(s[n].name), "%s",
			 sqlite3_column_text(q, 1) ? (const char *)sqlite3_column_text(q, 1) : "");
		snprintf(s[n].district, sizeof(s[n].district), "%s",
			 sqlite3_column_text(q, 2) ? (const char *)sqlite3_column_text(q, 2) : "");
		n++;
	}
	sqlite3_finalize(q);
	return n;
}

static int usage(FILE *f)
{
	fputs("usage: agrictl notify preview --db GATEWAY.db --recipients FILE --person NAME\n"
	      "       [--from RFC3339] [--to RFC3339] [--json]\n"
	      "  replays the gateway's notification journal through the policy of FILE and\n"
	      "  prints what NAME would have received, then messages per local day\n", f);
	return f == stdout ? 0 : AGRI_EXIT_USAGE;
}

static int preview(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, 0, 'd'}, {"recipients", required_argument, 0, 'r'},
		{"person", required_argument, 0, 'p'}, {"from", required_argument, 0, 'f'},
		{"to", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
		{"help", no_argument, 0, 'h'}, {0}};
	const char *db_path = NULL, *people_path = NULL;
	struct preview pv = {0};
	struct recipients *people = malloc(sizeof(*people));
	struct policy_site *sites = calloc(SITES_MAX, sizeof(*sites));
	struct policy *pol = NULL;
	struct agri_err e = {0};
	int64_t from = INT64_MIN, to = INT64_MAX, last = 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	char *att = NULL;
	int c, rc = 1;

	if (!people || !sites) {
		fprintf(stderr, "agrictl: out of memory\n");
		goto out;
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db_path = optarg; break;
		case 'r': people_path = optarg; break;
		case 'p': pv.person = optarg; break;
		case 'f':
		case 't':
			if (agri_time_parse(optarg, c == 'f' ? &from : &to) < 0) {
				fprintf(stderr, "agrictl: --%s: expected an RFC 3339 time, got \"%s\"\n",
					c == 'f' ? "from" : "to", optarg);
				rc = AGRI_EXIT_USAGE;
				goto out;
			}
			break;
		case 'j': pv.json = true; break;
		case 'h': rc = usage(stdout); goto out;
		default: rc = AGRI_EXIT_USAGE; goto out;
		}
	}
	if (!db_path || !people_path || !pv.person) {
		fprintf(stderr, "agrictl: notify preview needs --db, --recipients and --person\n");
		rc = AGRI_EXIT_USAGE;
		goto out;
	}
	if (recipients_load(people_path, people, &e) < 0) {
		fprintf(stderr, "%s: %s%s%s\n", people_path, e.path, e.path[0] ? ": " : "", e.msg);
		rc = AGRI_EXIT_CONFIG;
		goto out;
	}
	if (!recipients_find(people, pv.person)) {
		fprintf(stderr, "agrictl: no person named \"%s\" in %s\n", pv.person, people_path);
		rc = AGRI_EXIT_USAGE;
		goto out;
	}
	pv.utc_offset_min = people->utc_offset_min;
	/* the policy's state in memory; the gateway's database attached
	 * read-only: its readings and journal are found by name */
	att = sqlite3_mprintf("ATTACH 'file:%q?mode=ro' AS src", db_path);
	if (sqlite3_open(":memory:", &db) != SQLITE_OK || !att ||
	    sqlite3_exec(db, att, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT at, doc FROM src.notify_journal WHERE at >= ? AND at < ?"
			       " ORDER BY seq", -1, &q, NULL) != SQLITE_OK ||
	    policy_init(db) < 0) {
		fprintf(stderr, "agrictl: cannot read the notification journal of %s: %s\n", db_path,
			db ? sqlite3_errmsg(db) : "out of memory");
		goto out;
	}
	pol = policy_new(&(struct policy_options){.people = people, .sites = sites,
						  .n_sites = journal_sites(db, sites, SITES_MAX),
						  .on_message = on_message, .ctx = &pv});
	if (!pol) {
		fprintf(stderr, "agrictl: out of memory\n");
		goto out;
	}
	sqlite3_bind_int64(q, 1, from);
	sqlite3_bind_int64(q, 2, to);
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	while (sqlite3_step(q) == SQLITE_ROW) {
		int r;

		last = sqlite3_column_int64(q, 0);
		r = policy_input(pol, db, (const char *)sqlite3_column_text(q, 1), last);
		if (r < 0 && r != -EINVAL) { /* -EINVAL: a document it cannot read, skipped */
			fprintf(stderr, "agrictl: replay failed: %s\n", sqlite3_errmsg(db));
			goto out;
		}
	}
	if (policy_advance(pol, db, to != INT64_MAX ? to : last) < 0) {
		fprintf(stderr, "agrictl: replay failed: %s\n", sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (!pv.json) {
		printf("%s: %d message%s\n", pv.person, pv.n, pv.n == 1 ? "" : "s");
		for (size_t i = 0; i < pv.n_days; i++) {
			int y, m, d;

			rules_civil_from_days(pv.day[i], &y, &m, &d);
			printf("  %04d-%02d-%02d  %d besides the bulletin, %d bulletin%s\n", y, m, d,
			       pv.per_day[i][0], pv.per_day[i][1], pv.per_day[i][1] == 1 ? "" : "s");
		}
	}
	rc = 0;
out:
	sqlite3_finalize(q);
	sqlite3_free(att);
	policy_free(pol);
	sqlite3_close(db);
	free(people);
	free(sites);
	return rc;
}

int agrictl_notify(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "preview") == 0)
		return preview(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")))
		return usage(stdout);
	fprintf(stderr, "agrictl: notify: expected \"preview\" (see agrictl notify --help)\n");
	return AGRI_EXIT_USAGE;
}
