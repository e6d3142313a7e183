/*
 * `agrictl recipients list|validate|add|remove FILE ...`: the people of the
 * gateway's recipients file (docs/notify.md, "People"), managed without an
 * editor. Every change is checked with the gateway's own parser
 * (recipients_parse) before the file is replaced (atomically), so a file
 * agrictl wrote is one the gateway starts with; keys agrictl does not know
 * (a "description", a person's "role") are kept as they are.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agri/exit.h"
#include "agri/util.h"
#include "agrictl.h"
#include "gateway/recipients.h"

static int usage(FILE *f)
{
	fputs("usage: agrictl recipients list FILE [--json]\n"
	      "       agrictl recipients validate FILE\n"
	      "       agrictl recipients add FILE --name NAME [--display TEXT] [--role TEXT]\n"
	      "            [--lang vi|en] [--sms +84...] [--email ADDR] [--webhook CHANNEL]\n"
	      "            [--station GLOB]... [--district NAME]... [--crop CROP]... [--level G_L]...\n"
	      "            [--no-critical] [--pest KEY]... [--rule GLOB]... [--kind KIND]...\n"
	      "            [--min-severity SEV] [--at-once SEV,...] [--quiet HH:MM-HH:MM]\n"
	      "            [--bulletin HH:MM|off] [--replace]\n"
	      "       agrictl recipients remove FILE --name NAME\n"
	      "  the people of the gateway's recipients file: who hears what, how, when\n", f);
	return f == stdout ? 0 : AGRI_EXIT_USAGE;
}

/* Reads and checks FILE: 0, or AGRI_EXIT_CONFIG with "FILE: path: reason". */
static int load(const char *path, struct recipients *r)
{
	struct agri_err e = {0};

	if (recipients_load(path, r, &e) < 0) {
		fprintf(stderr, "%s: %s%s%s\n", path, e.path, e.path[0] ? ": " : "", e.msg);
		return AGRI_EXIT_CONFIG;
	}
	return 0;
}

static void print_list(const char *label, const char (*v)[RCPT_GLOB_MAX], size_t n)
{
	printf("  %-10s", label);
	for (size_t i = 0; i < n; i++)
		printf("%s%s", i ? ", " : "", v[i]);
	printf("%s\n", n ? "" : "all");
}

static int list(const char *path, bool json)
{
	static struct recipients r;
	char *buf = NULL;
	size_t len = 0;
	int rc = load(path, &r);

	if (rc)
		return rc;
	if (json) { /* the file itself, checked */
		if (util_read_file(path, RECIPIENTS_FILE_MAX, &buf, &len) < 0)
			return 1;
		fputs(buf, stdout);
		free(buf);
		return 0;
	}
	printf("%zu %s; group_wait %llds, bulletin %02d:%02d, tidal day %lld min, UTC%+lld min\n",
	       r.n, r.n == 1 ? "person" : "people", (long long)(r.group_wait_ms / 1000),
	       r.bulletin_min / 60, r.bulletin_min % 60, (long long)(r.tidal_day_ms / 60000),
	       (long long)r.utc_offset_min);
	for (size_t i = 0; i < r.n; i++) {
		const struct recipient *p = &r.v[i];

		printf("%s%s%s%s (%s)\n", p->name, p->display[0] ? " — " : "", p->display,
		       p->role[0] ? ", " : "", p->lang_en ? "en" : "vi");
		printf("  %-10s%s%s%s%s%s%s%s\n", "reach", p->sms[0] ? "sms " : "", p->sms,
		       p->email[0] ? " email " : "", p->email, p->webhook[0] ? " webhook " : "",
		       p->webhook, !p->sms[0] && !p->email[0] && !p->webhook[0] ? "nobody (preview only)" : "");
		print_list("stations", p->stations, p->n_stations);
		if (p->n_districts) {
			printf("  %-10s", "districts");
			for (size_t k = 0; k < p->n_districts; k++)
				printf("%s%s", k ? ", " : "", p->districts[k]);
			printf("\n");
		}
		printf("  %-10s", "salinity");
		for (size_t k = 0; k < p->n_levels; k++)
			printf("%s%g", k ? ", " : "", p->levels[k]);
		printf(" g/L\n");
		print_list("rules", p->rules, p->n_rules);
		if (p->n_pests) {
			printf("  %-10s", "pests");
			for (size_t k = 0; k < p->n_pests; k++)
				printf("%s%s", k ? ", " : "", p->pests[k]);
			printf("\n");
		}
		printf("  %-10sfrom %s; at once:", "severity", alert_severity_name(p->min_severity));
		for (int s = ALERT_SEV_INFO; s <= ALERT_SEV_CRITICAL; s++)
			if (p->at_once & (1u << s))
				printf(" %s", alert_severity_name((enum alert_severity)s));
		printf("\n");
		if (p->has_quiet)
			printf("  %-10s%02d:%02d-%02d:%02d (critical still at once)\n", "quiet",
			       p->quiet_from_min / 60, p->quiet_from_min % 60, p->quiet_to_min / 60,
			       p->quiet_to_min % 60);
		if (p->bulletin)
			printf("  %-10s%02d:%02d\n", "bulletin", p->bulletin_min / 60, p->bulletin_min % 60);
		else
			printf("  %-10soff\n", "bulletin");
	}
	return 0;
}

/* Checks the edited document with the gateway's parser, then writes it. */
static int save(const char *path, cJSON *root)
{
	static struct recipients r;
	struct agri_err e = {0};
	char *s = cJSON_Print(root);
	int rc;

	if (!s)
		return 1;
	if (recipients_parse(s, strlen(s), &r, &e) < 0) {
		fprintf(stderr, "agrictl: the change would make %s invalid: %s%s%s\n", path, e.path,
			e.path[0] ? ": " : "", e.msg);
		free(s);
		return AGRI_EXIT_USAGE;
	}
	rc = util_write_file_atomic(path, s, strlen(s));
	free(s);
	if (rc < 0) {
		fprintf(stderr, "agrictl: cannot write %s: %s\n", path, strerror(-rc));
		return 1;
	}
	return 0;
}

static cJSON *read_doc(const char *path, bool create)
{
	char *buf = NULL;
	size_t len = 0;
	cJSON *root;
	int rc = util_read_file(path, RECIPIENTS_FILE_MAX, &buf, &len);

	if (rc == -ENOENT && create) {
		root = cJSON_CreateObject();
		cJSON_AddArrayToObject(root, "recipients");
		return root;
	}
	if (rc < 0) {
		fprintf(stderr, "agrictl: cannot read %s: %s\n", path, strerror(-rc));
		return NULL;
	}
	root = cJSON_Parse(buf);
	free(buf);
	if (!cJSON_IsObject(root) || !cJSON_IsArray(cJSON_GetObjectItem(root, "recipients"))) {
		fprintf(stderr, "%s: not a recipients file (agrictl recipients validate says why)\n", path);
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static int find(cJSON *arr, const char *name)
{
	int i = 0;
	cJSON *e;

	cJSON_ArrayForEach(e, arr) {
		cJSON *n = cJSON_GetObjectItem(e, "name");

		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return i;
		i++;
	}
	return -1;
}

static void add_to(cJSON *p, const char *key, cJSON *v)
{
	cJSON *arr = cJSON_GetObjectItem(p, key);

	if (!arr)
		arr = cJSON_AddArrayToObject(p, key);
	cJSON_AddItemToArray(arr, v);
}

static int add(int argc, char **argv, const char *path)
{
	static const struct option opts[] = {
		{"name", 1, 0, 'n'}, {"display", 1, 0, 'D'}, {"role", 1, 0, 'R'}, {"lang", 1, 0, 'L'},
		{"sms", 1, 0, 's'}, {"email", 1, 0, 'e'}, {"webhook", 1, 0, 'w'},
		{"station", 1, 0, 'S'}, {"district", 1, 0, 'd'}, {"crop", 1, 0, 'c'},
		{"level", 1, 0, 'l'}, {"no-critical", 0, 0, 'N'}, {"pest", 1, 0, 'p'},
		{"rule", 1, 0, 'r'}, {"kind", 1, 0, 'k'}, {"min-severity", 1, 0, 'm'},
		{"at-once", 1, 0, 'a'}, {"quiet", 1, 0, 'q'}, {"bulletin", 1, 0, 'b'},
		{"replace", 0, 0, 'x'}, {"help", 0, 0, 'h'}, {0}};
	cJSON *root = NULL, *p = cJSON_CreateObject(), *arr;
	const char *name = NULL;
	bool replace = false;
	int c, rc = AGRI_EXIT_USAGE, at;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char a[8], b[8], *tok, *save = NULL, list[64];
		double g;

		switch (c) {
		case 'n': name = optarg; cJSON_AddStringToObject(p, "name", optarg); break;
		case 'D': cJSON_AddStringToObject(p, "display", optarg); break;
		case 'R': cJSON_AddStringToObject(p, "role", optarg); break;
		case 'L': cJSON_AddStringToObject(p, "lang", optarg); break;
		case 's': cJSON_AddStringToObject(p, "sms", optarg); break;
		case 'e': cJSON_AddStringToObject(p, "email", optarg); break;
		case 'w': cJSON_AddStringToObject(p, "webhook", optarg); break;
		case 'S': add_to(p, "stations", cJSON_CreateString(optarg)); break;
		case 'd': add_to(p, "districts", cJSON_CreateString(optarg)); break;
		case 'c': add_to(p, "crops", cJSON_CreateString(optarg)); break;
		case 'p': add_to(p, "pests", cJSON_CreateString(optarg)); break;
		case 'r': add_to(p, "rules", cJSON_CreateString(optarg)); break;
		case 'k': add_to(p, "kinds", cJSON_CreateString(optarg)); break;
		case 'l':
			if (util_parse_double(optarg, 0.05, 40, &g) < 0) {
				fprintf(stderr, "agrictl: --level: expected g/L (0.05 to 40), got \"%s\"\n", optarg);
				goto out;
			}
			add_to(p, "salinity_g_l", cJSON_CreateNumber(g));
			break;
		case 'N': cJSON_AddFalseToObject(p, "critical"); break;
		case 'm': cJSON_AddStringToObject(p, "min_severity", optarg); break;
		case 'a':
			snprintf(list, sizeof(list), "%s", optarg);
			for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
				add_to(p, "at_once", cJSON_CreateString(tok));
			if (!cJSON_GetObjectItem(p, "at_once"))
				cJSON_AddArrayToObject(p, "at_once");
			break;
		case 'q':
			if (strlen(optarg) != 11 || optarg[5] != '-') {
				fprintf(stderr, "agrictl: --quiet: expected HH:MM-HH:MM, got \"%s\"\n", optarg);
				goto out;
			}
			snprintf(a, sizeof(a), "%.5s", optarg);
			snprintf(b, sizeof(b), "%.5s", optarg + 6);
			{
				cJSON *q = cJSON_AddObjectToObject(p, "quiet");

				cJSON_AddStringToObject(q, "from", a);
				cJSON_AddStringToObject(q, "to", b);
			}
			break;
		case 'b':
			if (strcmp(optarg, "off") == 0)
				cJSON_AddFalseToObject(p, "bulletin");
			else
				cJSON_AddStringToObject(p, "bulletin", optarg);
			break;
		case 'x': replace = true; break;
		case 'h': rc = usage(stdout); goto out;
		default: goto out;
		}
	}
	if (!name) {
		fprintf(stderr, "agrictl: recipients add needs --name NAME\n");
		goto out;
	}
	if (!(root = read_doc(path, true))) {
		rc = 1;
		goto out;
	}
	arr = cJSON_GetObjectItem(root, "recipients");
	at = find(arr, name);
	if (at >= 0 && !replace) {
		fprintf(stderr, "agrictl: %s already has \"%s\" (--replace to change them)\n", path, name);
		goto out;
	}
	if (at >= 0) {
		/* what the command line does not say stays as it was (role, notes) */
		cJSON *old = cJSON_GetArrayItem(arr, at), *k;

		cJSON_ArrayForEach(k, old)
			if (!cJSON_GetObjectItem(p, k->string))
				cJSON_AddItemToObject(p, k->string, cJSON_Duplicate(k, true));
		cJSON_ReplaceItemInArray(arr, at, p);
	} else {
		cJSON_AddItemToArray(arr, p);
	}
	p = NULL;
	rc = save(path, root);
	if (rc == 0)
		printf("%s: %s %s\n", path, at >= 0 ? "changed" : "added", name);
out:
	cJSON_Delete(p);
	cJSON_Delete(root);
	return rc;
}

static int remove_person(int argc, char **argv, const char *path)
{
	static const struct option opts[] = {{"name", 1, 0, 'n'}, {"help", 0, 0, 'h'}, {0}};
	const char *name = NULL;
	cJSON *root;
	int c, at, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			name = optarg;
		else
			return c == 'h' ? usage(stdout) : AGRI_EXIT_USAGE;
	}
	if (!name) {
		fprintf(stderr, "agrictl: recipients remove needs --name NAME\n");
		return AGRI_EXIT_USAGE;
	}
	if (!(root = read_doc(path, false)))
		return 1;
	at = find(cJSON_GetObjectItem(root, "recipients"), name);
	if (at < 0) {
		fprintf(stderr, "agrictl: no person named \"%s\" in %s\n", name, path);
		cJSON_Delete(root);
		return 1;
	}
	cJSON_DeleteItemFromArray(cJSON_GetObjectItem(root, "recipients"), at);
	rc = save(path, root);
	if (rc == 0)
		printf("%s: removed %s\n", path, name);
	cJSON_Delete(root);
	return rc;
}

int agrictl_recipients(int argc, char **argv)
{
	const char *sub = argc >= 2 ? argv[1] : "", *path = argc >= 3 ? argv[2] : NULL;

	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help"))
		return usage(stdout);
	if (!path || path[0] == '-') {
		fprintf(stderr, "agrictl: recipients %s: expected a FILE (see agrictl recipients --help)\n",
			sub);
		return AGRI_EXIT_USAGE;
	}
	if (!strcmp(sub, "list"))
		return list(path, argc >= 4 && !strcmp(argv[3], "--json"));
	if (!strcmp(sub, "validate")) {
		static struct recipients r;
		int rc = load(path, &r);

		if (rc == 0)
			printf("%s: ok (%zu %s)\n", path, r.n, r.n == 1 ? "person" : "people");
		return rc;
	}
	if (!strcmp(sub, "add"))
		return add(argc - 2, argv + 2, path);
	if (!strcmp(sub, "remove"))
		return remove_person(argc - 2, argv + 2, path);
	fprintf(stderr, "agrictl: recipients: expected list, validate, add or remove\n");
	return AGRI_EXIT_USAGE;
}
