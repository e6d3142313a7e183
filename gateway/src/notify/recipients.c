/*
 * The recipients file (see recipients.h, docs/notify.md "People"): one
 * table for the top level, one for a person, lists read by
 * agri_cfg_read_array(), then a per-person check (levels from crops, a
 * bulletin outside the quiet hours, a way to reach them that exists) and
 * the document-wide one (unique names).
 */
#include "gateway/recipients.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/topic.h"
#include "agri/util.h"

#define P struct recipient
#define R struct recipients
#define STRING_VALUE(n) (&(const struct agri_cfg_field){.type = AGRI_CFG_STR, .size = (n)})

static const struct {
	const char *key;
	double g_l;
} crop_levels[] = {
	/* docs/delta.md §1: the intake ladder */
	{"durian", 0.5}, {"fruit", 1.0}, {"vegetables", 1.0}, {"rice", 2.0}, {"all", 4.0},
};

void recipients_defaults(struct recipients *r)
{
	memset(r, 0, sizeof(*r));
	r->group_wait_ms = RCPT_GROUP_WAIT_S * 1000LL;
	r->bulletin_min = RCPT_BULLETIN_MIN;
	r->utc_offset_min = 420;
	r->tidal_day_ms = RCPT_TIDAL_DAY_S * 1000LL;
	r->window_move_ms = RCPT_WINDOW_MOVE_S * 1000LL;
	r->flap_changes = RCPT_FLAP_CHANGES;
	r->flap_window_ms = RCPT_FLAP_WINDOW_S * 1000LL;
	r->flap_stable_ms = RCPT_FLAP_STABLE_S * 1000LL;
}

double recipient_crop_level(const char *crop)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(crop_levels); i++)
		if (strcmp(crop, crop_levels[i].key) == 0)
			return crop_levels[i].g_l;
	return 0;
}

int recipient_kind_parse(const char *s, enum rule_kind *out)
{
	for (int k = 0; k < RULE_KIND_COUNT; k++)
		if (rule_kind_name((enum rule_kind)k) &&
		    strcmp(s, rule_kind_name((enum rule_kind)k)) == 0) {
			*out = (enum rule_kind)k;
			return 0;
		}
	return -EINVAL;
}

/* --- value checks ---------------------------------------------------------- */

static int want(bool ok, const char *noun, const char *path, struct agri_err *err)
{
	if (ok)
		return 0;
	agri_err_set(err, path, "expected %s", noun);
	return -EINVAL;
}

static bool text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool phone_ok(const char *s)
{
	size_t digits = strspn(s + (*s == '+'), "0123456789");

	return digits >= 3 && s[(*s == '+') + digits] == '\0';
}

static bool email_ok(const char *s)
{
	const char *at = strchr(s, '@');

	return at && at > s && at[1] && !strchr(at + 1, '@') && text_ok(s) && !strpbrk(s, " <>,;\"");
}

static bool glob_ok(const char *s)
{
	return s[0] && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			      "0123456789_-*?[]!") == strlen(s);
}

static int check_glob(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(glob_ok(elem), "a pattern of [A-Za-z0-9_-] and * ? [ ]", path, err);
}

static int check_district(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(((char *)elem)[0] && text_ok(elem), "a district name", path, err);
}

static int check_crop(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(recipient_crop_level(elem) > 0,
		    "a crop: durian, fruit, vegetables, rice or all", path, err);
}

static int check_pest(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(agri_ident_valid(elem), "a pest key (bph)", path, err);
}

static int check_kind(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	enum rule_kind k;

	(void)it;
	return want(recipient_kind_parse(elem, &k) == 0, "a rule kind (ladder, threshold, ...)",
		    path, err);
}

/* "HH:MM" into minutes of the day. */
static int parse_clock(const cJSON *item, void *field, const char *path, struct agri_err *err)
{
	const char *s = cJSON_IsString(item) ? item->valuestring : "";
	int h, m, n = 0;

	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || (size_t)n != strlen(s) || strlen(s) != 5 ||
	    h < 0 || h > 23 || m < 0 || m > 59) {
		agri_err_set(err, path, "expected a local time HH:MM");
		return -EINVAL;
	}
	*(int *)field = h * 60 + m;
	return 0;
}

static int parse_severity(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	if (!cJSON_IsString(item) || alert_severity_parse(item->valuestring, field) < 0) {
		agri_err_set(err, path, "expected info, warning, alarm or critical");
		return -EINVAL;
	}
	return 0;
}

/* "at_once": ["alarm", "critical"] into a bit per severity. */
static int parse_at_once(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	unsigned mask = 0;
	const cJSON *e;
	int i = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) > 4) {
		agri_err_set(err, path, "expected an array of at most 4 severities");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		char sub[AGRI_ERR_PATH_MAX];
		enum alert_severity s;

		agri_path_index(sub, sizeof(sub), path, i++);
		if (parse_severity(e, &s, sub, err) < 0)
			return -EINVAL;
		mask |= 1u << s;
	}
	*(unsigned *)field = mask;
	return 0;
}

/* "salinity_g_l": 0.5 or [2, 4]. Into levels[]; the count after it. */
static int parse_levels(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	P *p = (P *)((char *)field - offsetof(P, levels));
	const cJSON *e;
	int i = 0;

	if (cJSON_IsNumber(item)) {
		e = item;
		goto one;
	}
	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 ||
	    cJSON_GetArraySize(item) > RCPT_LEVELS_MAX - 1) {
		agri_err_set(err, path, "expected a level in g/L or an array of 1 to %d",
			     RCPT_LEVELS_MAX - 1);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		char sub[AGRI_ERR_PATH_MAX];

		agri_path_index(sub, sizeof(sub), path, i++);
		if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0.05 && e->valuedouble <= 40)) {
			agri_err_set(err, sub, "expected a salinity in g/L (0.05 to 40)");
			return -EINVAL;
		}
		p->levels[p->n_levels++] = e->valuedouble;
	}
	return 0;
one:
	if (!(e->valuedouble >= 0.05 && e->valuedouble <= 40)) {
		agri_err_set(err, path, "expected a salinity in g/L (0.05 to 40)");
		return -EINVAL;
	}
	p->levels[p->n_levels++] = e->valuedouble;
	return 0;
}

/* --- tables ------------------------------------------------------------------ */

/* "description": any text, for people reading the file. */
static int ignore(const cJSON *item, void *field, const char *path, struct agri_err *err)
{
	(void)item;
	(void)field;
	(void)path;
	(void)err;
	return 0;
}


static const struct agri_cfg_array stations_array = {
	.value = STRING_VALUE(RCPT_GLOB_MAX), .elem_size = RCPT_GLOB_MAX,
	.max = RCPT_GLOBS_MAX, .what = "station patterns", .check = check_glob,
};
static const struct agri_cfg_array rules_array = {
	.value = STRING_VALUE(RCPT_GLOB_MAX), .elem_size = RCPT_GLOB_MAX,
	.max = RCPT_GLOBS_MAX, .what = "rule patterns", .check = check_glob,
};
static const struct agri_cfg_array districts_array = {
	.value = STRING_VALUE(RCPT_DISTRICT_MAX), .elem_size = RCPT_DISTRICT_MAX,
	.max = RCPT_DISTRICTS_MAX, .what = "districts", .check = check_district,
};
static const struct agri_cfg_array crops_array = {
	.value = STRING_VALUE(RCPT_KEY_MAX), .elem_size = RCPT_KEY_MAX,
	.max = RCPT_CROPS_MAX, .what = "crops", .check = check_crop,
};
static const struct agri_cfg_array pests_array = {
	.value = STRING_VALUE(RCPT_KEY_MAX), .elem_size = RCPT_KEY_MAX,
	.max = RCPT_PESTS_MAX, .what = "pests", .check = check_pest,
};
static const struct agri_cfg_array kinds_array = {
	.value = STRING_VALUE(RCPT_KEY_MAX), .elem_size = RCPT_KEY_MAX,
	.max = RCPT_KINDS_MAX, .what = "rule kinds", .check = check_kind,
};

/* A person while read: the struct plus what only the reader needs. */
struct person_in {
	P p;
	char lang[8];
	bool critical, has_critical;
	const cJSON *bulletin; /* "bulletin" when given (borrowed) */
};

static int parse_bulletin(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	struct person_in *in = (struct person_in *)((char *)field - offsetof(struct person_in, bulletin));

	in->bulletin = item; /* given */
	if (cJSON_IsBool(item)) {
		in->p.bulletin = cJSON_IsTrue(item);
		return 0;
	}
	if (parse_clock(item, &in->p.bulletin_min, path, err) < 0) {
		agri_err_set(err, path, "expected true, false or a local time HH:MM");
		return -EINVAL;
	}
	in->p.bulletin = true;
	return 0;
}

static const struct agri_cfg_field quiet_fields[] = {
	AGRI_FIELD(P, "from", AGRI_CFG_CUSTOM, quiet_from_min, true, .parse = parse_clock),
	AGRI_FIELD(P, "to", AGRI_CFG_CUSTOM, quiet_to_min, true, .parse = parse_clock),
};

static int parse_quiet(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	P *p = field; /* offset 0: the person itself */
	int rc;

	if (cJSON_IsNull(item))
		return 0;
	rc = agri_cfg_read(item, path, quiet_fields, AGRI_ARRAY_SIZE(quiet_fields), p, false, err);
	if (rc < 0)
		return rc;
	if (p->quiet_from_min == p->quiet_to_min) {
		agri_err_set(err, path, "from and to are the same time");
		return -EINVAL;
	}
	p->has_quiet = true;
	return 0;
}

#define PI struct person_in
static const struct agri_cfg_field person_fields[] = {
	AGRI_FIELD_STR(PI, "name", p.name, true),
	AGRI_FIELD_STR(PI, "display", p.display, false),
	AGRI_FIELD_STR(PI, "role", p.role, false),
	AGRI_FIELD_STR(PI, "lang", lang, false),
	AGRI_FIELD_STR(PI, "sms", p.sms, false),
	AGRI_FIELD_STR(PI, "email", p.email, false),
	AGRI_FIELD_STR(PI, "webhook", p.webhook, false),
	AGRI_FIELD_ARRAY(PI, "stations", p.stations, p.n_stations, &stations_array, false),
	AGRI_FIELD_ARRAY(PI, "districts", p.districts, p.n_districts, &districts_array, false),
	AGRI_FIELD_ARRAY(PI, "crops", p.crops, p.n_crops, &crops_array, false),
	AGRI_FIELD(PI, "salinity_g_l", AGRI_CFG_CUSTOM, p.levels, false, .parse = parse_levels),
	AGRI_FIELD(PI, "critical", AGRI_CFG_BOOL, critical, false,
		   AGRI_PRESENT(PI, has_critical)),
	AGRI_FIELD_ARRAY(PI, "pests", p.pests, p.n_pests, &pests_array, false),
	AGRI_FIELD_ARRAY(PI, "rules", p.rules, p.n_rules, &rules_array, false),
	AGRI_FIELD_ARRAY(PI, "kinds", p.kinds, p.n_kinds, &kinds_array, false),
	AGRI_FIELD(PI, "min_severity", AGRI_CFG_CUSTOM, p.min_severity, false,
		   .parse = parse_severity),
	AGRI_FIELD(PI, "at_once", AGRI_CFG_CUSTOM, p.at_once, false, .parse = parse_at_once),
	AGRI_FIELD(PI, "quiet", AGRI_CFG_CUSTOM, p, false, .parse = parse_quiet),
	AGRI_FIELD(PI, "bulletin", AGRI_CFG_CUSTOM, bulletin, false, .parse = parse_bulletin),
	{.key = "description", .type = AGRI_CFG_CUSTOM, .parse = ignore},
};
#undef PI

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void add_level(P *p, double g_l)
{
	for (size_t i = 0; i < p->n_levels; i++)
		if (fabs(p->levels[i] - g_l) < 1e-9)
			return;
	if (p->n_levels < RCPT_LEVELS_MAX)
		p->levels[p->n_levels++] = g_l;
}

/* The cross-field check of one person (after its table). */
static int person_check(struct person_in *in, int default_bulletin, const char *path,
			struct agri_err *err)
{
	P *p = &in->p;
	char sub[AGRI_ERR_PATH_MAX];

#define FAIL(key, ...)                                                 \
	do {                                                           \
		agri_path_key(sub, sizeof(sub), path, key);            \
		agri_err_set(err, sub, __VA_ARGS__);                   \
		return -EINVAL;                                        \
	} while (0)
	if (!agri_station_id_valid(p->name))
		FAIL("name", "expected a name of [A-Za-z0-9_-]{1,32}");
	if (!text_ok(p->display) || !text_ok(p->role))
		FAIL(p->display[0] && !text_ok(p->display) ? "display" : "role",
		     "expected text without control characters");
	if (in->lang[0] && strcmp(in->lang, "vi") != 0 && strcmp(in->lang, "en") != 0)
		FAIL("lang", "expected \"vi\" or \"en\"");
	p->lang_en = strcmp(in->lang, "en") == 0;
	if (p->sms[0] && !phone_ok(p->sms))
		FAIL("sms", "expected a phone number (+84...)");
	if (p->email[0] && !email_ok(p->email))
		FAIL("email", "expected an e-mail address");
	if (p->webhook[0] && !agri_station_id_valid(p->webhook))
		FAIL("webhook", "expected a webhook channel name of gateway.json");
	for (size_t i = 0; i < p->n_crops; i++)
		add_level(p, recipient_crop_level(p->crops[i]));
	if (!in->has_critical || in->critical)
		add_level(p, RCPT_CRITICAL_G_L);
	qsort(p->levels, p->n_levels, sizeof(p->levels[0]), cmp_double);
	for (size_t i = 1; i < p->n_levels; i++)
		if (fabs(p->levels[i] - p->levels[i - 1]) < 1e-9)
			FAIL("salinity_g_l", "a level is given twice");
	if (!in->bulletin)
		p->bulletin = true;
	if (p->bulletin && p->bulletin_min < 0)
		p->bulletin_min = default_bulletin;
	if (p->bulletin && p->has_quiet && recipient_quiet_at(p, p->bulletin_min))
		FAIL("bulletin", "the bulletin (%02d:%02d) falls in the quiet hours",
		     p->bulletin_min / 60, p->bulletin_min % 60);
#undef FAIL
	return 0;
}

/* --- the document -------------------------------------------------------------- */

struct doc_in {
	R r;
	const cJSON *people;
	int64_t group_wait_s, tidal_day_s, window_move_s;
	int64_t flap_window_s, flap_stable_s, flap_changes;
	int64_t max_per_day;
};

static int keep_item(const cJSON *item, void *field, const char *path, struct agri_err *err)
{
	(void)path;
	(void)err;
	*(const cJSON **)field = item;
	return 0;
}

#define D struct doc_in
static const struct agri_cfg_field doc_fields[] = {
	AGRI_FIELD_INT(D, "group_wait_s", group_wait_s, 0, 3600),
	AGRI_FIELD(D, "bulletin_at", AGRI_CFG_CUSTOM, r.bulletin_min, false, .parse = parse_clock),
	AGRI_FIELD_INT(D, "utc_offset_min", r.utc_offset_min, -720, 840),
	AGRI_FIELD_INT(D, "tidal_day_s", tidal_day_s, 3600, 7 * 86400),
	AGRI_FIELD_INT(D, "window_move_s", window_move_s, 60, 86400),
	AGRI_FIELD_INT(D, "flap_changes", flap_changes, 2, 100),
	AGRI_FIELD_INT(D, "flap_window_s", flap_window_s, 60, 7 * 86400),
	AGRI_FIELD_INT(D, "flap_stable_s", flap_stable_s, 60, 7 * 86400),
	AGRI_FIELD_INT(D, "max_per_day", max_per_day, 0, 1000),
	AGRI_FIELD(D, "recipients", AGRI_CFG_CUSTOM, people, true, .parse = keep_item),
	{.key = "description", .type = AGRI_CFG_CUSTOM, .parse = ignore},
};
#undef D

int recipients_parse(const char *json, size_t len, struct recipients *out,
		     struct agri_err *err)
{
	struct doc_in *d = calloc(1, sizeof(*d));
	struct person_in *in = calloc(1, sizeof(*in));
	cJSON *root = NULL;
	const cJSON *e;
	int rc, i = 0;

	if (!d || !in) {
		agri_err_set(err, "", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = agri_json_parse(json, len, RECIPIENTS_FILE_MAX, 16, &root, err);
	if (rc < 0)
		goto out;
	recipients_defaults(&d->r);
	d->group_wait_s = d->r.group_wait_ms / 1000;
	d->tidal_day_s = d->r.tidal_day_ms / 1000;
	d->window_move_s = d->r.window_move_ms / 1000;
	d->flap_changes = d->r.flap_changes;
	d->flap_window_s = d->r.flap_window_ms / 1000;
	d->flap_stable_s = d->r.flap_stable_ms / 1000;
	if (!cJSON_IsObject(root)) {
		agri_err_set(err, "", "expected an object");
		rc = -EINVAL;
		goto out;
	}
	rc = agri_cfg_read(root, "", doc_fields, AGRI_ARRAY_SIZE(doc_fields), d, false, err);
	if (rc < 0)
		goto out;
	d->r.group_wait_ms = d->group_wait_s * 1000;
	d->r.tidal_day_ms = d->tidal_day_s * 1000;
	d->r.window_move_ms = d->window_move_s * 1000;
	d->r.flap_changes = (int)d->flap_changes;
	d->r.flap_window_ms = d->flap_window_s * 1000;
	d->r.flap_stable_ms = d->flap_stable_s * 1000;
	d->r.max_per_day = (int)d->max_per_day;
	if (!cJSON_IsArray(d->people) || cJSON_GetArraySize(d->people) > RECIPIENTS_MAX) {
		agri_err_set(err, "recipients", "expected an array of at most %d people",
			     RECIPIENTS_MAX);
		rc = -EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(e, d->people) {
		char path[AGRI_ERR_PATH_MAX];

		agri_path_index(path, sizeof(path), "recipients", i++);
		memset(in, 0, sizeof(*in));
		in->p.min_severity = ALERT_SEV_WARNING;
		in->p.at_once = 1u << ALERT_SEV_ALARM | 1u << ALERT_SEV_CRITICAL;
		in->p.bulletin_min = -1;
		if (!cJSON_IsObject(e)) {
			agri_err_set(err, path, "expected an object");
			rc = -EINVAL;
			goto out;
		}
		if ((rc = agri_cfg_read(e, path, person_fields, AGRI_ARRAY_SIZE(person_fields), in, false, err)) < 0 ||
		    (rc = person_check(in, d->r.bulletin_min, path, err)) < 0)
			goto out;
		for (size_t k = 0; k < d->r.n; k++)
			if (strcmp(d->r.v[k].name, in->p.name) == 0) {
				char sub[AGRI_ERR_PATH_MAX];

				agri_path_key(sub, sizeof(sub), path, "name");
				agri_err_set(err, sub, "duplicate name \"%s\" (also recipients[%zu])",
					     in->p.name, k);
				rc = -EINVAL;
				goto out;
			}
		d->r.v[d->r.n++] = in->p;
	}
	*out = d->r;
	rc = 0;
out:
	cJSON_Delete(root);
	free(d);
	free(in);
	return rc;
}

int recipients_load(const char *path, struct recipients *out, struct agri_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = util_read_file(path, RECIPIENTS_FILE_MAX, &buf, &len);

	if (rc < 0) {
		agri_err_set(err, "", "cannot read: %s", rc == -EFBIG ? "file too large"
								 : strerror(-rc));
		return rc;
	}
	rc = recipients_parse(buf, len, out, err);
	free(buf);
	return rc;
}

const struct recipient *recipients_find(const struct recipients *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].name, name) == 0)
			return &r->v[i];
	return NULL;
}

static bool glob_any(const char (*pats)[RCPT_GLOB_MAX], size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (fnmatch(pats[i], s, 0) == 0)
			return true;
	return false;
}

bool recipient_follows_station(const struct recipient *p, const char *station,
			       const char *district)
{
	if (!p->n_stations && !p->n_districts)
		return true;
	if (glob_any(p->stations, p->n_stations, station))
		return true;
	for (size_t i = 0; district && district[0] && i < p->n_districts; i++)
		if (strcmp(p->districts[i], district) == 0)
			return true;
	return false;
}

bool recipient_follows_rule(const struct recipient *p, const char *rule, enum rule_kind kind)
{
	bool kind_ok = p->n_kinds == 0;

	for (size_t i = 0; i < p->n_kinds && !kind_ok; i++)
		kind_ok = strcmp(p->kinds[i], rule_kind_name(kind) ? rule_kind_name(kind) : "") == 0;
	return kind_ok && (p->n_rules == 0 || glob_any(p->rules, p->n_rules, rule));
}

bool recipient_follows_pest(const struct recipient *p, const char *pest)
{
	for (size_t i = 0; i < p->n_pests; i++)
		if (strcmp(p->pests[i], pest) == 0)
			return true;
	return false;
}

bool recipient_quiet_at(const struct recipient *p, int m)
{
	if (!p->has_quiet)
		return false;
	if (p->quiet_from_min < p->quiet_to_min)
		return m >= p->quiet_from_min && m < p->quiet_to_min;
	return m >= p->quiet_from_min || m < p->quiet_to_min; /* over midnight */
}
