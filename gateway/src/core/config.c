/*
 * gateway.json reader (see config.h). Each section is a table of fields
 * read by agri_cfg_read(); sections and arrays are CUSTOM fields whose
 * parsers read their own tables. Offsets are all relative to struct
 * gateway_config, so a section parser receives the whole config. The
 * cross-field checks, path resolution and secret reads come after.
 */
#include "gateway/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/topic.h"
#include "agri/util.h"

#define CFG_FILE_MAX (1024 * 1024)
/* Every section's rows are relative to the whole config (agri/json.h's
 * dialect, shortened for the tables below). */
#define GW struct gateway_config
#define STR(k, m, req) AGRI_FIELD_STR(GW, k, m, req)
#define INT(k, m, lo, hi) AGRI_FIELD_INT(GW, k, m, lo, hi)
#define BOOL(k, m) AGRI_FIELD_BOOL(GW, k, m)
#define SECTION(k, fn, req) AGRI_FIELD_SECTION(k, fn, req)

void gateway_config_defaults(struct gateway_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->broker.client_id, sizeof(c->broker.client_id), "agri-gateway");
	snprintf(c->broker.topic_prefix, sizeof(c->broker.topic_prefix), "%s",
		 AGRI_TOPIC_PREFIX_DEFAULT);
	c->broker.keepalive_s = 30;
	c->broker.session_expiry_s = 7 * 86400;
	c->db.retention_days = 400;
	c->backup.every_h = 24;
	c->backup.keep = 7;
	snprintf(c->db.synchronous, sizeof(c->db.synchronous), "full");
	c->db.cache_kib = 2048;
	c->db.queue_max = 1024;
	c->db.batch_max = 256;
	c->limits.series_per_station = 256;
	c->limits.series_idle_days = 7;
	c->limits.readings_per_min = 30000;
	c->limits.messages_per_min = 6000;
	c->limits.kib_per_min = 16384;
	c->limits.max_clock_skew_s = 600;
	c->limits.max_backlog_days = 60;
	c->limits.alert_keys_per_station = 2048;
	c->limits.open_alerts_per_station = 64;
	c->limits.dead_letters_per_min = 60;
	c->dead_letters.max_mb = 64;
	c->dead_letters.max_age_days = 30;
	c->dead_letters.payload_max_kib = 8;
	snprintf(c->notify.smtp.tls, sizeof(c->notify.smtp.tls), "required");
	snprintf(c->notify.sms.method, sizeof(c->notify.sms.method), "POST");
	snprintf(c->notify.sms.body, sizeof(c->notify.sms.body), "to={to}&text={text}");
	snprintf(c->notify.sms.content_type, sizeof(c->notify.sms.content_type),
		 "application/x-www-form-urlencoded");
	snprintf(c->http.listen, sizeof(c->http.listen), "127.0.0.1:8080");
	c->http.rate_per_s = 50;
	c->http.rate_burst = 200;
	c->forecast.enabled = true;
	c->forecast.sow_from_d = 1;
	c->forecast.sow_to_d = 7;
	c->forecast.hatch_from_d = 10;
	c->forecast.hatch_to_d = 12;
	c->forecast.margin = 0.05;
	c->calibration.interval_days = 180;
	c->drift.window_days = 7;
	c->drift.fall_pct = 10;
	c->drift.min_g_l = 0.2;
	c->ha.takeover_s = 120;
	c->ha.catchup = true;
	c->ha.catchup_window_h = 48;
	c->ha.catchup_every_s = 120;
	c->ha.catchup_settle_s = 600;
}

static const struct agri_cfg_field broker_fields[] = {
	STR("url", broker.url, true),
	STR("username", broker.username, false),
	STR("password_file", broker.password_file, false),
	STR("client_id", broker.client_id, false),
	STR("shared_group", broker.shared_group, false),
	STR("topic_prefix", broker.topic_prefix, false),
	STR("ca_file", broker.ca_file, false),
	STR("cert_file", broker.cert_file, false),
	STR("key_file", broker.key_file, false),
	STR("station_url", broker.station_url, false),
	INT("keepalive_s", broker.keepalive_s, 5, 3600),
	INT("session_expiry_s", broker.session_expiry_s, 60, 4294967295.0),
};

static const struct agri_cfg_field db_fields[] = {
	STR("path", db.path, true),
	INT("retention_days", db.retention_days, 1, 36500),
	STR("synchronous", db.synchronous, false),
	INT("cache_kib", db.cache_kib, 256, 1048576),
	INT("queue_max", db.queue_max, 16, 1000000),
	INT("batch_max", db.batch_max, 1, 10000),
};

static int read_section(const cJSON *item, void *cfg, const char *path,
			struct agri_err *err, const struct agri_cfg_field *f,
			size_t n)
{
	return agri_cfg_read(item, path, f, n, cfg, false, err);
}

static int parse_broker(const cJSON *item, void *cfg, const char *path,
			struct agri_err *err)
{
	return read_section(item, cfg, path, err, broker_fields, AGRI_ARRAY_SIZE(broker_fields));
}

static int parse_db(const cJSON *item, void *cfg, const char *path,
		    struct agri_err *err)
{
	return read_section(item, cfg, path, err, db_fields, AGRI_ARRAY_SIZE(db_fields));
}

static const struct agri_cfg_field webhook_fields[] = {
	AGRI_FIELD_STR(struct gateway_webhook, "name", name, true),
	AGRI_FIELD_STR(struct gateway_webhook, "url", url, true),
};

static const struct agri_cfg_array webhooks_array = {
	.fields = webhook_fields, .n_fields = AGRI_ARRAY_SIZE(webhook_fields),
	.elem_size = sizeof(struct gateway_webhook), .max = GW_WEBHOOKS_MAX, .what = "webhooks",
};

/* Lists of strings: each element a non-empty string read whole, then
 * accepted by one of these checks (its noun in the error). */
static int want(const void *elem, bool (*ok)(const char *), const char *noun,
		const char *path, struct agri_err *err)
{
	if (((const char *)elem)[0] && ok(elem))
		return 0;
	agri_err_set(err, path, "expected %s", noun);
	return -EINVAL;
}

static bool is_email(const char *s)
{
	return strchr(s, '@') != NULL;
}

static bool is_phone(const char *s)
{
	return strspn(s, "+0123456789") == strlen(s);
}

static int check_email(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, is_email, "an e-mail address", path, err);
}

static int check_phone(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, is_phone, "a phone number (+84...)", path, err);
}

static int check_ident(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, agri_ident_valid, "a name ([a-z0-9_-])", path, err);
}

/* The value row of a list of char[n]: the element itself. */
#define STRING_VALUE(n) (&(const struct agri_cfg_field){.type = AGRI_CFG_STR, .size = (n)})
#define ELEM_SIZE(m) sizeof(((GW *)0)->m[0])
#define ELEMS(m) AGRI_ARRAY_SIZE(((GW *)0)->m)

static const struct agri_cfg_array smtp_to_array = {
	.value = STRING_VALUE(ELEM_SIZE(notify.smtp.to)), .elem_size = ELEM_SIZE(notify.smtp.to),
	.min = 1, .max = ELEMS(notify.smtp.to), .what = "e-mail addresses", .check = check_email,
};

static const struct agri_cfg_array sms_to_array = {
	.value = STRING_VALUE(ELEM_SIZE(notify.sms.to)), .elem_size = ELEM_SIZE(notify.sms.to),
	.min = 1, .max = ELEMS(notify.sms.to), .what = "phone numbers", .check = check_phone,
};

static const struct agri_cfg_array forecast_notify_array = {
	.value = STRING_VALUE(ELEM_SIZE(forecast.notify)), .elem_size = ELEM_SIZE(forecast.notify),
	.max = ELEMS(forecast.notify), .what = "channel names", .check = check_ident,
};

static const struct agri_cfg_field smtp_fields[] = {
	STR("name", notify.smtp.name, true),
	STR("url", notify.smtp.url, true),
	STR("from", notify.smtp.from, true),
	AGRI_FIELD_ARRAY(GW, "to", notify.smtp.to, notify.smtp.n_to, &smtp_to_array, true),
	STR("username", notify.smtp.username, false),
	STR("password_file", notify.smtp.password_file, false),
	STR("tls", notify.smtp.tls, false),
	STR("ca_file", notify.smtp.ca_file, false),
};

static int parse_smtp(const cJSON *item, void *cfgp, const char *path,
		      struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->notify.has_smtp = true;
	return read_section(item, cfg, path, err, smtp_fields, AGRI_ARRAY_SIZE(smtp_fields));
}

static const struct agri_cfg_field sms_fields[] = {
	STR("name", notify.sms.name, true),
	STR("url", notify.sms.url, true),
	STR("method", notify.sms.method, false),
	STR("body", notify.sms.body, false),
	STR("content_type", notify.sms.content_type, false),
	AGRI_FIELD_ARRAY(GW, "to", notify.sms.to, notify.sms.n_to, &sms_to_array, true),
	STR("username", notify.sms.username, false),
	STR("password_file", notify.sms.password_file, false),
};

static int parse_sms(const cJSON *item, void *cfgp, const char *path,
		     struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->notify.has_sms = true;
	return read_section(item, cfg, path, err, sms_fields, AGRI_ARRAY_SIZE(sms_fields));
}

static const struct agri_cfg_field notify_fields[] = {
	AGRI_FIELD_ARRAY(GW, "webhooks", notify.webhooks, notify.n_webhooks, &webhooks_array, false),
	SECTION("smtp", parse_smtp, false),
	SECTION("sms", parse_sms, false),
};

static int parse_notify(const cJSON *item, void *cfg, const char *path,
			struct agri_err *err)
{
	if (cJSON_IsNull(item))
		return 0;
	return read_section(item, cfg, path, err, notify_fields, AGRI_ARRAY_SIZE(notify_fields));
}

static const struct agri_cfg_field postgres_fields[] = {
	STR("conninfo", upstream.postgres_conninfo, true),
};
static const struct agri_cfg_field sensorthings_fields[] = {
	STR("url", upstream.sensorthings_url, true),
};

static int parse_postgres(const cJSON *item, void *cfgp, const char *path,
			  struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->upstream.has_postgres = true;
	return read_section(item, cfg, path, err, postgres_fields, AGRI_ARRAY_SIZE(postgres_fields));
}

static int parse_sensorthings(const cJSON *item, void *cfgp, const char *path,
			      struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->upstream.has_sensorthings = true;
	return read_section(item, cfg, path, err, sensorthings_fields,
			    AGRI_ARRAY_SIZE(sensorthings_fields));
}

static const struct agri_cfg_field upstream_fields[] = {
	SECTION("postgres", parse_postgres, false),
	SECTION("sensorthings", parse_sensorthings, false),
};

static int parse_upstream(const cJSON *item, void *cfg, const char *path,
			  struct agri_err *err)
{
	if (cJSON_IsNull(item))
		return 0;
	return read_section(item, cfg, path, err, upstream_fields, AGRI_ARRAY_SIZE(upstream_fields));
}

/* http.hosts: a host name or address as a Host header carries it,
 * without port or scheme. */
static bool is_host(const char *s)
{
	size_t n = strlen(s);

	if (s[0] == '[')
		return n > 2 && s[n - 1] == ']' && strspn(s + 1, "0123456789abcdefABCDEF:.") == n - 2;
	return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n &&
	       s[0] != '.' && s[0] != '-';
}

static int check_host(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, is_host, "a host name or address, without port (gateway.lan, "
		    "192.168.1.10, [fd00::10])", path, err);
}

static const struct agri_cfg_array http_hosts_array = {
	.value = STRING_VALUE(ELEM_SIZE(http.hosts)), .elem_size = ELEM_SIZE(http.hosts),
	.max = ELEMS(http.hosts), .what = "host names", .check = check_host,
};

static const struct agri_cfg_field http_fields[] = {
	STR("listen", http.listen, false),
	STR("token_file", http.token_file, false),
	STR("read_token_file", http.read_token_file, false),
	AGRI_FIELD(GW, "public_reads", AGRI_CFG_BOOL, http.public_reads, false,
		   AGRI_PRESENT(GW, http.has_public_reads)),
	AGRI_FIELD_ARRAY(GW, "hosts", http.hosts, http.n_hosts, &http_hosts_array, false),
	INT("rate_per_s", http.rate_per_s, 1, 100000),
	INT("rate_burst", http.rate_burst, 1, 100000),
	STR("cert_file", http.cert_file, false),
	STR("key_file", http.key_file, false),
	STR("bundles_dir", http.bundles_dir, false),
	STR("stations_passwd_file", http.stations_passwd_file, false),
};

static int parse_http(const cJSON *item, void *cfgp, const char *path,
		      struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->http.enabled = true;
	return read_section(item, cfg, path, err, http_fields, AGRI_ARRAY_SIZE(http_fields));
}

static const struct agri_cfg_field forecast_fields[] = {
	BOOL("enabled", forecast.enabled),
	AGRI_FIELD_ARRAY(GW, "notify", forecast.notify, forecast.n_notify, &forecast_notify_array,
			 false),
	INT("sow_from_d", forecast.sow_from_d, 0, 60),
	INT("sow_to_d", forecast.sow_to_d, 0, 60),
	INT("hatch_from_d", forecast.hatch_from_d, 0, 60),
	INT("hatch_to_d", forecast.hatch_to_d, 0, 60),
	AGRI_FIELD_DOUBLE(GW, "margin", forecast.margin, 0, 0.5),
};

static int parse_forecast(const cJSON *item, void *cfg, const char *path,
			  struct agri_err *err)
{
	if (cJSON_IsNull(item))
		return 0;
	return read_section(item, cfg, path, err, forecast_fields, AGRI_ARRAY_SIZE(forecast_fields));
}

static const struct agri_cfg_field limits_fields[] = {
	INT("series_per_station", limits.series_per_station, 1, 1000000),
	INT("series_idle_days", limits.series_idle_days, 1, 3650),
	INT("readings_per_min", limits.readings_per_min, 1, 100000000),
	INT("messages_per_min", limits.messages_per_min, 1, 10000000),
	INT("kib_per_min", limits.kib_per_min, 1, 100000000),
	INT("max_clock_skew_s", limits.max_clock_skew_s, 1, 86400 * 365),
	INT("max_backlog_days", limits.max_backlog_days, 1, 36500),
	INT("alert_keys_per_station", limits.alert_keys_per_station, 16, 1000000),
	INT("open_alerts_per_station", limits.open_alerts_per_station, 1, 100000),
	INT("dead_letters_per_min", limits.dead_letters_per_min, 1, 1000000),
};

static int parse_limits(const cJSON *item, void *cfg, const char *path,
			struct agri_err *err)
{
	return read_section(item, cfg, path, err, limits_fields, AGRI_ARRAY_SIZE(limits_fields));
}

static const struct agri_cfg_field dead_letters_fields[] = {
	INT("max_mb", dead_letters.max_mb, 1, 1000000),
	INT("max_age_days", dead_letters.max_age_days, 1, 36500),
	INT("payload_max_kib", dead_letters.payload_max_kib, 1, 256),
};

static int parse_dead_letters(const cJSON *item, void *cfg, const char *path,
			      struct agri_err *err)
{
	return read_section(item, cfg, path, err, dead_letters_fields, AGRI_ARRAY_SIZE(dead_letters_fields));
}

/* "sites": {"DT-W01": {"name": "...", "district": "...", "crops": ["durian"]}}:
 * names for people, never used to route or store anything. */
static bool site_text_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int check_crop(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, agri_ident_valid, "a crop key", path, err);
}

static const struct agri_cfg_array crops_array = {
	.value = STRING_VALUE(GW_SITE_CROP_MAX), .elem_size = GW_SITE_CROP_MAX,
	.max = GW_SITE_CROPS_MAX, .what = "crop keys", .check = check_crop,
};

static const struct agri_cfg_field sluice_fields[] = {
	AGRI_FIELD(struct gateway_site, "below_g_l", AGRI_CFG_DOUBLE, sluice_below_g_l, true,
		   AGRI_RANGE(0.05, 40)),
	AGRI_FIELD(struct gateway_site, "min_level_m", AGRI_CFG_DOUBLE, sluice_min_level_m, false,
		   AGRI_RANGE(-100, 100), AGRI_PRESENT(struct gateway_site, has_min_level)),
};

/* "sluice": {"below_g_l": 0.7, "min_level_m": 1.2}. A limit on the
 * ladder (0.5, 1, 2, 4) without a level would repeat its windows. */
static int parse_sluice(const cJSON *item, void *sitep, const char *path,
			struct agri_err *err)
{
	static const double ladder[] = {0.5, 1, 2, 4};
	struct gateway_site *s = sitep;
	int rc;

	if (cJSON_IsNull(item))
		return 0;
	if ((rc = agri_cfg_read(item, path, sluice_fields, AGRI_ARRAY_SIZE(sluice_fields), s,
				false, err)) < 0)
		return rc;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(ladder) && !s->has_min_level; i++)
		if (s->sluice_below_g_l == ladder[i]) {
			agri_err_set(err, path, "below_g_l %g is on the ladder, whose windows are made "
				     "anyway: give the sluice's own limit (e.g. 0.7) or a min_level_m", ladder[i]);
			return -EINVAL;
		}
	s->has_sluice = true;
	return 0;
}

static int check_neighbour(const cJSON *it, void *elem, const char *path, struct agri_err *err)
{
	(void)it;
	return want(elem, agri_station_id_valid, "a station id", path, err);
}

static const struct agri_cfg_array neighbours_array = {
	.value = STRING_VALUE(33), .elem_size = 33,
	.max = GW_SITE_NEIGHBOURS_MAX, .what = "stations", .check = check_neighbour,
};

static const struct agri_cfg_field site_fields[] = {
	AGRI_FIELD_STR(struct gateway_site, "name", name, true),
	AGRI_FIELD_STR(struct gateway_site, "district", district, false),
	AGRI_FIELD_ARRAY(struct gateway_site, "crops", crops, n_crops, &crops_array, false),
	AGRI_FIELD_SECTION("sluice", parse_sluice, false),
	AGRI_FIELD_ARRAY(struct gateway_site, "neighbours", neighbours, n_neighbours,
			 &neighbours_array, false),
};

/* A station is not its own neighbour, nor anyone's twice. */
static int check_neighbours(const struct gateway_site *s, const char *path, struct agri_err *err)
{
	for (size_t i = 0; i < s->n_neighbours; i++) {
		if (!strcmp(s->neighbours[i], s->station)) {
			agri_err_set(err, path, "neighbours: %s is the station itself", s->station);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->neighbours[i], s->neighbours[j])) {
				agri_err_set(err, path, "neighbours: %s given twice", s->neighbours[i]);
				return -EINVAL;
			}
	}
	return 0;
}

static int parse_sites(const cJSON *item, void *cfgp, const char *path,
		       struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *e;
	int rc;

	if (cJSON_IsNull(item))
		return 0;
	if (!cJSON_IsObject(item)) {
		agri_err_set(err, path, "expected an object keyed by station id");
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		struct gateway_site *s = &cfg->sites.site[cfg->sites.n];

		agri_path_key(sub, sizeof(sub), path, e->string);
		if (!agri_station_id_valid(e->string)) {
			agri_err_set(err, sub, "not a station id ([A-Za-z0-9_-]{1,32})");
			return -EINVAL;
		}
		for (size_t i = 0; i < cfg->sites.n; i++)
			if (strcmp(cfg->sites.site[i].station, e->string) == 0) {
				agri_err_set(err, sub, "given twice");
				return -EINVAL;
			}
		if (cfg->sites.n >= GW_SITES_MAX) {
			agri_err_set(err, sub, "more than %d sites", GW_SITES_MAX);
			return -EINVAL;
		}
		memset(s, 0, sizeof(*s));
		snprintf(s->station, sizeof(s->station), "%s", e->string);
		rc = agri_cfg_read(e, sub, site_fields, AGRI_ARRAY_SIZE(site_fields), s, false, err);
		if (rc < 0)
			return rc;
		if (!s->name[0] || !site_text_ok(s->name) || !site_text_ok(s->district)) {
			agri_err_set(err, sub, "name and district: text without control characters");
			return -EINVAL;
		}
		if ((rc = check_neighbours(s, sub, err)) < 0)
			return rc;
		cfg->sites.n++;
	}
	return 0;
}

static const struct agri_cfg_field backup_fields[] = {
	STR("dir", backup.dir, true),
	INT("every_h", backup.every_h, 1, 24 * 366),
	INT("keep", backup.keep, 1, 1000),
};

static int parse_backup(const cJSON *item, void *cfg, const char *path, struct agri_err *err)
{
	if (cJSON_IsNull(item))
		return 0;
	return read_section(item, cfg, path, err, backup_fields, AGRI_ARRAY_SIZE(backup_fields));
}

static const struct agri_cfg_field calibration_fields[] = {
	AGRI_FIELD_DOUBLE(GW, "interval_days", calibration.interval_days, 0, 3650),
};

static int parse_calibration(const cJSON *item, void *cfg, const char *path,
			     struct agri_err *err)
{
	return read_section(item, cfg, path, err, calibration_fields,
			    AGRI_ARRAY_SIZE(calibration_fields));
}

static const struct agri_cfg_field drift_fields[] = {
	AGRI_FIELD_DOUBLE(GW, "window_days", drift.window_days, 3, 60),
	AGRI_FIELD_DOUBLE(GW, "fall_pct", drift.fall_pct, 2, 90),
	AGRI_FIELD_DOUBLE(GW, "min_g_l", drift.min_g_l, 0, 40),
};

static int parse_drift(const cJSON *item, void *cfg, const char *path, struct agri_err *err)
{
	return read_section(item, cfg, path, err, drift_fields, AGRI_ARRAY_SIZE(drift_fields));
}

static const struct agri_cfg_field ha_fields[] = {
	STR("hub_id", ha.hub_id, true),
	STR("claims", ha.claims, true),
	AGRI_FIELD(GW, "priority", AGRI_CFG_INT, ha.priority, true, AGRI_RANGE(1, 2)),
	INT("takeover_s", ha.takeover_s, 1, 86400),
	BOOL("catchup", ha.catchup),
	INT("catchup_window_h", ha.catchup_window_h, 1, 720),
	INT("catchup_every_s", ha.catchup_every_s, 2, 3600),
	INT("catchup_settle_s", ha.catchup_settle_s, 0, 3600),
};

static int parse_ha(const cJSON *item, void *cfgp, const char *path, struct agri_err *err)
{
	struct gateway_config *cfg = cfgp;

	if (cJSON_IsNull(item))
		return 0;
	cfg->ha.enabled = true;
	return read_section(item, cfg, path, err, ha_fields, AGRI_ARRAY_SIZE(ha_fields));
}

static const struct agri_cfg_field top_fields[] = {
	SECTION("broker", parse_broker, true),
	SECTION("db", parse_db, true),
	STR("rules_file", rules_file, false),
	STR("recipients_file", recipients_file, false),
	SECTION("notify", parse_notify, false),
	SECTION("upstream", parse_upstream, false),
	SECTION("http", parse_http, false),
	SECTION("forecast", parse_forecast, false),
	SECTION("limits", parse_limits, false),
	SECTION("dead_letters", parse_dead_letters, false),
	SECTION("sites", parse_sites, false),
	SECTION("backup", parse_backup, false),
	SECTION("calibration", parse_calibration, false),
	SECTION("drift", parse_drift, false),
	SECTION("ha", parse_ha, false),
};

/* --- cross-field checks ----------------------------------------------- */

static bool has_scheme(const char *url, const char *const *schemes)
{
	for (; *schemes; schemes++) {
		size_t n = strlen(*schemes);

		if (strncmp(url, *schemes, n) == 0 && url[n] != '\0' && url[n] != '/')
			return true;
	}
	return false;
}

static int resolve(const struct gateway_config *cfg, char *path, size_t len,
		   const char *what, struct agri_err *err)
{
	char tmp[PATH_MAX];

	if (!path[0])
		return 0;
	if (util_path_relative_to(tmp, sizeof(tmp), cfg->file, path) < 0 ||
	    strlen(tmp) >= len) {
		agri_err_set(err, what, "path too long");
		return -EINVAL;
	}
	memcpy(path, tmp, strlen(tmp) + 1);
	return 0;
}

static int read_secret(const char *file, char *out, size_t len, const char *what,
		       struct agri_err *err)
{
	int rc = util_read_secret(file, out, len);

	if (rc == -EINVAL)
		agri_err_set(err, what, "%s is empty", file);
	else if (rc < 0)
		agri_err_set(err, what, "cannot read %s: %s", file, strerror(-rc));
	return rc < 0 ? -EINVAL : 0;
}

/* An API token read from file: at least GW_TOKEN_MIN characters of
 * base64, base64url or hex (32 random bytes; `agrictl token new`), not a
 * word repeated. Returns 0 or -EINVAL with *err on what. */
static int check_token(const char *token, const char *file, const char *what,
		       struct agri_err *err)
{
	size_t n = strlen(token), distinct = 0;
	bool seen[256] = {false};

	if (n < GW_TOKEN_MIN) {
		agri_err_set(err, what, "%s: the token is %zu characters, need at least %d "
			     "(32 random bytes): make one with `agrictl token new`", file, n,
			     GW_TOKEN_MIN);
		return -EINVAL;
	}
	for (const char *p = token; *p; p++) {
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-", *p)) {
			agri_err_set(err, what, "%s: the token holds '%c': expected base64url or hex "
				     "(`agrictl token new`)", file, *p >= ' ' && *p < 127 ? *p : '?');
			return -EINVAL;
		}
		distinct += !seen[(unsigned char)*p];
		seen[(unsigned char)*p] = true;
	}
	if (distinct < 10) {
		agri_err_set(err, what, "%s: the token has only %zu distinct characters: not random "
			     "(`agrictl token new`)", file, distinct);
		return -EINVAL;
	}
	return 0;
}

static bool client_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > GW_NAME_MAX)
		return false;
	for (; *id; id++)
		if (!((*id >= 'a' && *id <= 'z') || (*id >= 'A' && *id <= 'Z') ||
		      (*id >= '0' && *id <= '9') || strchr("_-.", *id)))
			return false;
	return true;
}

static const char *const mqtt_schemes[] = {"tcp://", "mqtt://", "ssl://",
					   "mqtts://", "ws://", "wss://", NULL};
static const char *const http_schemes[] = {"http://", "https://", NULL};
static const char *const smtp_schemes[] = {"smtp://", "smtps://", NULL};

/* A host that is this machine: "", a Unix socket ("/dir", "@abstract"),
 * localhost, 127.0.0.0/8, ::1 (or ::ffff:127.x). A list ("a,b", libpq's
 * multi-host form) is local when every element is. */
static bool host_local(const char *hosts)
{
	char h[256];
	const char *p = hosts;

	do {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct in_addr a4;
		struct in6_addr a6;

		if (n >= sizeof(h))
			return false;
		memcpy(h, p, n);
		h[n] = '\0';
		if (n > 2 && h[0] == '[' && h[n - 1] == ']') { /* a URL's [::1] */
			memmove(h, h + 1, n - 2);
			h[n - 2] = '\0';
		}
		if (!(h[0] == '\0' || h[0] == '/' || h[0] == '@' || strcasecmp(h, "localhost") == 0 ||
		      strcasecmp(h, "localhost.") == 0 ||
		      (inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
		      (inet_pton(AF_INET6, h, &a6) == 1 &&
		       (IN6_IS_ADDR_LOOPBACK(&a6) ||
			(IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127)))))
			return false;
		p = e ? e + 1 : NULL;
	} while (p);
	return true;
}

/* A libpq conninfo at path (upstream.postgres.conninfo, ha.claims):
 * parsed as libpq will (keywords or a URI), its hosts (or PGHOST/PGHOSTADDR where it names none) and the sslmode
 * that follows: a weak one only where the connection stays on this
 * machine. */
static int check_conninfo(const char *conninfo, const char *path, char *sslmode,
			  size_t sslmode_len, struct agri_err *err)
{
	/* libpq's, weakest first: the last two verify the server. */
	static const char *const modes[] = {"disable", "allow", "prefer", "require",
					    "verify-ca", "verify-full"};
	const char *host = NULL, *hostaddr = NULL, *mode = NULL;
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
	bool local;
	size_t m;
	int rc = -EINVAL;

	if (!opts) {
		size_t n = msg ? strlen(msg) : 0;

		while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			msg[--n] = '\0';
		agri_err_set(err, path, "%s", msg ? msg : "out of memory");
		PQfreemem(msg);
		return -EINVAL;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
		else if (strcmp(o->keyword, "sslmode") == 0)
			mode = o->val;
	}
	if (!host)
		host = getenv("PGHOST");
	if (!hostaddr)
		hostaddr = getenv("PGHOSTADDR");
	/* hostaddr, when given, is where libpq connects; host still names
	 * the server (and is what verify-full checks). Both must be local. */
	local = host_local(host ? host : "") && host_local(hostaddr ? hostaddr : "");
	if (!mode)
		mode = local ? "prefer" : "verify-full";
	for (m = 0; m < AGRI_ARRAY_SIZE(modes) && strcmp(mode, modes[m]) != 0; m++)
		;
	if (m == AGRI_ARRAY_SIZE(modes)) {
		agri_err_set(err, path, "unknown sslmode \"%s\"", mode);
		goto out;
	}
	if (m < AGRI_ARRAY_SIZE(modes) - 2 && !local) {
		agri_err_set(err, path, "sslmode=%s to a host that is not this machine (%.40s):"
			     " use verify-full (the default) and sslrootcert", mode,
			     host && !host_local(host) ? host : hostaddr ? hostaddr : "?");
		goto out;
	}
	snprintf(sslmode, sslmode_len, "%s", mode);
	rc = 0;
out:
	PQconninfoFree(opts);
	return rc;
}

/* notify.smtp.tls: STARTTLS is required unless "none", and "none" only for
 * a loopback host (the mail would cross no network). */
static int check_smtp_tls(struct gateway_config *cfg, struct agri_err *err)
{
	CURLU *u;
	char *host = NULL;
	bool local;

	if (strcmp(cfg->notify.smtp.tls, "required") == 0)
		return 0;
	if (strcmp(cfg->notify.smtp.tls, "none") != 0) {
		agri_err_set(err, "notify.smtp.tls", "expected \"required\" (the default) or \"none\"");
		return -EINVAL;
	}
	if (strncmp(cfg->notify.smtp.url, "smtps://", 8) == 0) {
		agri_err_set(err, "notify.smtp.tls", "\"none\" with an smtps:// URL (TLS from the"
			     " first byte): use smtp://");
		return -EINVAL;
	}
	u = curl_url();
	if (!u)
		return -ENOMEM;
	local = curl_url_set(u, CURLUPART_URL, cfg->notify.smtp.url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host_local(host);
	curl_free(host);
	curl_url_cleanup(u);
	if (!local) {
		agri_err_set(err, "notify.smtp.tls", "\"none\" is only for a loopback host"
			     " (localhost, 127.0.0.1, ::1), not %.60s", cfg->notify.smtp.url);
		return -EINVAL;
	}
	return 0;
}

/* broker and db */
static int check_broker_db(struct gateway_config *cfg, struct agri_err *err)
{
	if (!has_scheme(cfg->broker.url, mqtt_schemes)) {
		agri_err_set(err, "broker.url", "expected tcp://HOST:PORT (or mqtt, ssl, mqtts, ws, wss)");
		return -EINVAL;
	}
	if (!client_id_valid(cfg->broker.client_id)) {
		agri_err_set(err, "broker.client_id", "expected 1-%d of [A-Za-z0-9_.-]", GW_NAME_MAX);
		return -EINVAL;
	}
	if (cfg->broker.station_url[0] && (!has_scheme(cfg->broker.station_url, mqtt_schemes) ||
					   strpbrk(cfg->broker.station_url, "\"\\ "))) {
		agri_err_set(err, "broker.station_url", "expected the URL stations use for this hub,"
			     " mqtts://HOST:PORT (or tcp, mqtt, ssl, ws, wss)");
		return -EINVAL;
	}
	if (cfg->broker.shared_group[0] && !agri_ident_valid(cfg->broker.shared_group)) {
		agri_err_set(err, "broker.shared_group", "expected 1-32 of [A-Za-z0-9_-]");
		return -EINVAL;
	}
	/* Storage-only load splitting: each gateway of the group gets part of
	 * every station's messages, round robin. */
	if (cfg->broker.shared_group[0] && cfg->rules_file[0]) {
		agri_err_set(err, "broker.shared_group", "storage only (each gateway gets part of"
			     " every series): leave out rules_file, or bridge a second hub"
			     " (docs/ha.md)");
		return -EINVAL;
	}
	if (cfg->broker.shared_group[0] && cfg->forecast.enabled) {
		agri_err_set(err, "broker.shared_group", "storage only (each gateway gets part of"
			     " every series): set forecast.enabled false, or bridge a second hub"
			     " (docs/ha.md)");
		return -EINVAL;
	}
	if (!agri_topic_prefix_valid(cfg->broker.topic_prefix)) {
		agri_err_set(err, "broker.topic_prefix", "not a valid topic prefix");
		return -EINVAL;
	}
	if (cfg->broker.password_file[0] && !cfg->broker.username[0]) {
		agri_err_set(err, "broker.password_file", "needs broker.username");
		return -EINVAL;
	}
	if (strcmp(cfg->db.synchronous, "full") == 0) {
		cfg->db.sync_full = true;
	} else if (strcmp(cfg->db.synchronous, "normal") == 0) {
		cfg->db.sync_full = false;
	} else {
		agri_err_set(err, "db.synchronous", "expected \"full\" or \"normal\"");
		return -EINVAL;
	}
	if (!cfg->db.path[0]) {
		agri_err_set(err, "db.path", "must not be empty");
		return -EINVAL;
	}
	return 0;
}

/* notify: webhooks, smtp, sms: names unique, URLs, recipients */
static int check_notify(struct gateway_config *cfg, struct agri_err *err)
{
	for (size_t i = 0; i < cfg->notify.n_webhooks; i++) {
		char p[AGRI_ERR_PATH_MAX];
		const struct gateway_webhook *w = &cfg->notify.webhooks[i];

		snprintf(p, sizeof(p), "notify.webhooks[%zu].url", i);
		if (!has_scheme(w->url, http_schemes)) {
			agri_err_set(err, p, "expected an http:// or https:// URL");
			return -EINVAL;
		}
		snprintf(p, sizeof(p), "notify.webhooks[%zu].name", i);
		if (!agri_ident_valid(w->name)) {
			agri_err_set(err, p, "expected 1-32 of [A-Za-z0-9_-]");
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(cfg->notify.webhooks[j].name, w->name) == 0) {
				agri_err_set(err, p, "duplicate channel name \"%s\"", w->name);
				return -EINVAL;
			}
		}
		if (cfg->notify.has_smtp && strcmp(cfg->notify.smtp.name, w->name) == 0) {
			agri_err_set(err, "notify.smtp.name", "duplicate channel name \"%s\"", w->name);
			return -EINVAL;
		}
	}
	if (cfg->notify.has_smtp) {
		if (!agri_ident_valid(cfg->notify.smtp.name)) {
			agri_err_set(err, "notify.smtp.name", "expected 1-32 of [A-Za-z0-9_-]");
			return -EINVAL;
		}
		if (!has_scheme(cfg->notify.smtp.url, smtp_schemes)) {
			agri_err_set(err, "notify.smtp.url", "expected an smtp:// or smtps:// URL");
			return -EINVAL;
		}
		if (!strchr(cfg->notify.smtp.from, '@')) {
			agri_err_set(err, "notify.smtp.from", "expected an e-mail address");
			return -EINVAL;
		}
		if (cfg->notify.smtp.n_to == 0) {
			agri_err_set(err, "notify.smtp.to", "needs at least one recipient");
			return -EINVAL;
		}
		if (check_smtp_tls(cfg, err) < 0)
			return -EINVAL;
	}
	if (cfg->notify.has_sms) {
		const char *n = cfg->notify.sms.name;

		if (!agri_ident_valid(n)) {
			agri_err_set(err, "notify.sms.name", "expected 1-32 of [A-Za-z0-9_-]");
			return -EINVAL;
		}
		for (size_t j = 0; j < cfg->notify.n_webhooks; j++) {
			if (strcmp(cfg->notify.webhooks[j].name, n) == 0) {
				agri_err_set(err, "notify.sms.name", "duplicate channel name \"%s\"", n);
				return -EINVAL;
			}
		}
		if (cfg->notify.has_smtp && strcmp(cfg->notify.smtp.name, n) == 0) {
			agri_err_set(err, "notify.sms.name", "duplicate channel name \"%s\"", n);
			return -EINVAL;
		}
		if (!has_scheme(cfg->notify.sms.url, http_schemes)) {
			agri_err_set(err, "notify.sms.url", "expected an http:// or https:// URL");
			return -EINVAL;
		}
		if (strcmp(cfg->notify.sms.method, "POST") != 0 &&
		    strcmp(cfg->notify.sms.method, "PUT") != 0 &&
		    strcmp(cfg->notify.sms.method, "GET") != 0) {
			agri_err_set(err, "notify.sms.method", "expected \"POST\", \"PUT\" or \"GET\"");
			return -EINVAL;
		}
		if (!strstr(cfg->notify.sms.url, "{text}") && !strstr(cfg->notify.sms.body, "{text}")) {
			agri_err_set(err, "notify.sms.body", "neither url nor body has a {text} placeholder");
			return -EINVAL;
		}
		if (cfg->notify.sms.password_file[0] && !cfg->notify.sms.username[0]) {
			agri_err_set(err, "notify.sms.password_file", "needs notify.sms.username");
			return -EINVAL;
		}
	}
	return 0;
}

/* forecast channels and biology, upstream */
static int check_forecast_upstream(struct gateway_config *cfg, struct agri_err *err)
{
	for (size_t i = 0; i < cfg->forecast.n_notify; i++) {
		const char *n = cfg->forecast.notify[i];
		bool found = (cfg->notify.has_smtp && strcmp(cfg->notify.smtp.name, n) == 0) ||
			     (cfg->notify.has_sms && strcmp(cfg->notify.sms.name, n) == 0);

		for (size_t j = 0; j < cfg->notify.n_webhooks; j++)
			found |= strcmp(cfg->notify.webhooks[j].name, n) == 0;
		if (!found) {
			char p[AGRI_ERR_PATH_MAX];

			agri_path_index(p, sizeof(p), "forecast.notify", (int)i);
			agri_err_set(err, p, "no channel named \"%s\" in notify", n);
			return -EINVAL;
		}
	}
	if (cfg->forecast.sow_from_d > cfg->forecast.sow_to_d) {
		agri_err_set(err, "forecast.sow_to_d", "must not be before sow_from_d");
		return -EINVAL;
	}
	if (cfg->forecast.hatch_from_d > cfg->forecast.hatch_to_d) {
		agri_err_set(err, "forecast.hatch_to_d", "must not be before hatch_from_d");
		return -EINVAL;
	}
	if (cfg->upstream.has_postgres && !cfg->upstream.postgres_conninfo[0]) {
		agri_err_set(err, "upstream.postgres.conninfo", "must not be empty");
		return -EINVAL;
	}
	if (cfg->upstream.has_postgres &&
	    check_conninfo(cfg->upstream.postgres_conninfo, "upstream.postgres.conninfo",
			   cfg->upstream.postgres_sslmode, sizeof(cfg->upstream.postgres_sslmode),
			   err) < 0)
		return -EINVAL;
	if (cfg->upstream.has_sensorthings &&
	    !has_scheme(cfg->upstream.sensorthings_url, http_schemes)) {
		agri_err_set(err, "upstream.sensorthings.url", "expected an http:// or https:// URL");
		return -EINVAL;
	}
	return 0;
}

/* ha: the hub's name, the claims database (checked as upstream.postgres's
 * conninfo is: a weak sslmode only on this machine). */
static int check_ha(struct gateway_config *cfg, struct agri_err *err)
{
	if (!cfg->ha.enabled)
		return 0;
	if (!agri_ident_valid(cfg->ha.hub_id)) {
		agri_err_set(err, "ha.hub_id", "expected 1-32 of [A-Za-z0-9_-]");
		return -EINVAL;
	}
	if (!cfg->ha.claims[0]) {
		agri_err_set(err, "ha.claims", "must not be empty (a libpq conninfo: the"
			     " province's PostgreSQL)");
		return -EINVAL;
	}
	return check_conninfo(cfg->ha.claims, "ha.claims", cfg->ha.claims_sslmode,
			      sizeof(cfg->ha.claims_sslmode), err);
}

/* http.listen into host and port */
static int check_http(struct gateway_config *cfg, struct agri_err *err)
{
	char *colon, *end;
	long port;

	if (cfg->http.enabled) {
		colon = strrchr(cfg->http.listen, ':');
		if (!colon || colon == cfg->http.listen ||
		    (size_t)(colon - cfg->http.listen) >= sizeof(cfg->http.host)) {
			agri_err_set(err, "http.listen", "expected HOST:PORT");
			return -EINVAL;
		}
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (errno || *end || end == colon + 1 || port < 1 || port > 65535) {
			agri_err_set(err, "http.listen", "port must be 1-65535");
			return -EINVAL;
		}
		memcpy(cfg->http.host, cfg->http.listen, (size_t)(colon - cfg->http.listen));
		cfg->http.host[colon - cfg->http.listen] = '\0';
		cfg->http.port = (int)port;
		/* Reads stay open by default only where only this machine can ask. */
		if (!cfg->http.has_public_reads)
			cfg->http.public_reads = host_local(cfg->http.host);
		if (!cfg->http.public_reads && !cfg->http.token_file[0] &&
		    !cfg->http.read_token_file[0]) {
			agri_err_set(err, "http.public_reads", "reads need a token on %s: set "
				     "http.read_token_file (or token_file), or public_reads: true",
				     cfg->http.host);
			return -EINVAL;
		}
	}
	return 0;
}

/* Paths relative to the config file. */
static int resolve_paths(struct gateway_config *cfg, struct agri_err *err)
{
	int rc;

	if ((rc = resolve(cfg, cfg->broker.password_file, sizeof(cfg->broker.password_file), "broker.password_file", err)) ||
	    (rc = resolve(cfg, cfg->broker.ca_file, sizeof(cfg->broker.ca_file), "broker.ca_file", err)) ||
	    (rc = resolve(cfg, cfg->broker.cert_file, sizeof(cfg->broker.cert_file), "broker.cert_file", err)) ||
	    (rc = resolve(cfg, cfg->broker.key_file, sizeof(cfg->broker.key_file), "broker.key_file", err)) ||
	    (rc = resolve(cfg, cfg->db.path, sizeof(cfg->db.path), "db.path", err)) ||
	    (rc = resolve(cfg, cfg->rules_file, sizeof(cfg->rules_file), "rules_file", err)) ||
	    (rc = resolve(cfg, cfg->recipients_file, sizeof(cfg->recipients_file),
			  "recipients_file", err)) ||
	    (rc = resolve(cfg, cfg->notify.smtp.password_file, sizeof(cfg->notify.smtp.password_file), "notify.smtp.password_file", err)) ||
	    (rc = resolve(cfg, cfg->notify.smtp.ca_file, sizeof(cfg->notify.smtp.ca_file), "notify.smtp.ca_file", err)) ||
	    (rc = resolve(cfg, cfg->notify.sms.password_file, sizeof(cfg->notify.sms.password_file), "notify.sms.password_file", err)) ||
	    (rc = resolve(cfg, cfg->http.token_file, sizeof(cfg->http.token_file), "http.token_file", err)) ||
	    (rc = resolve(cfg, cfg->http.read_token_file, sizeof(cfg->http.read_token_file), "http.read_token_file", err)) ||
	    (rc = resolve(cfg, cfg->http.cert_file, sizeof(cfg->http.cert_file), "http.cert_file", err)) ||
	    (rc = resolve(cfg, cfg->http.key_file, sizeof(cfg->http.key_file), "http.key_file", err)) ||
	    (rc = resolve(cfg, cfg->http.bundles_dir, sizeof(cfg->http.bundles_dir), "http.bundles_dir", err)) ||
	    (rc = resolve(cfg, cfg->http.stations_passwd_file, sizeof(cfg->http.stations_passwd_file), "http.stations_passwd_file", err)) ||
	    (rc = resolve(cfg, cfg->backup.dir, sizeof(cfg->backup.dir), "backup.dir", err)))
		return rc;
	if (!cfg->http.cert_file[0] != !cfg->http.key_file[0]) {
		agri_err_set(err, cfg->http.cert_file[0] ? "http.key_file" : "http.cert_file",
			     "cert_file and key_file go together (HTTPS)");
		return -EINVAL;
	}
	if (cfg->http.bundles_dir[0] && !cfg->http.stations_passwd_file[0]) {
		agri_err_set(err, "http.stations_passwd_file",
			     "required with bundles_dir: bundles go to authenticated stations only");
		return -EINVAL;
	}
	return 0;
}

/* The secrets the (resolved) paths name. */
static int read_secrets(struct gateway_config *cfg, struct agri_err *err)
{
	if (cfg->broker.password_file[0] &&
	    read_secret(cfg->broker.password_file, cfg->broker.password,
			sizeof(cfg->broker.password), "broker.password_file", err))
		return -EINVAL;
	if (cfg->notify.has_smtp && cfg->notify.smtp.password_file[0] &&
	    read_secret(cfg->notify.smtp.password_file, cfg->notify.smtp.password,
			sizeof(cfg->notify.smtp.password), "notify.smtp.password_file", err))
		return -EINVAL;
	if (cfg->notify.has_sms && cfg->notify.sms.password_file[0] &&
	    read_secret(cfg->notify.sms.password_file, cfg->notify.sms.password,
			sizeof(cfg->notify.sms.password), "notify.sms.password_file", err))
		return -EINVAL;
	if (cfg->http.enabled && cfg->http.token_file[0] &&
	    (read_secret(cfg->http.token_file, cfg->http.token, sizeof(cfg->http.token),
			 "http.token_file", err) ||
	     check_token(cfg->http.token, cfg->http.token_file, "http.token_file", err)))
		return -EINVAL;
	if (cfg->http.enabled && cfg->http.read_token_file[0] &&
	    (read_secret(cfg->http.read_token_file, cfg->http.read_token,
			 sizeof(cfg->http.read_token), "http.read_token_file", err) ||
	     check_token(cfg->http.read_token, cfg->http.read_token_file, "http.read_token_file",
			 err)))
		return -EINVAL;
	if (cfg->http.token[0] && strcmp(cfg->http.token, cfg->http.read_token) == 0) {
		agri_err_set(err, "http.read_token_file", "the same token as token_file: a read "
			     "token must not write");
		return -EINVAL;
	}
	return 0;
}

static int check(struct gateway_config *cfg, struct agri_err *err)
{
	int rc;

	if ((rc = check_broker_db(cfg, err)) < 0 || (rc = check_notify(cfg, err)) < 0 ||
	    (rc = check_forecast_upstream(cfg, err)) < 0 || (rc = check_ha(cfg, err)) < 0 ||
	    (rc = check_http(cfg, err)) < 0 ||
	    (rc = resolve_paths(cfg, err)) < 0 || (rc = read_secrets(cfg, err)) < 0)
		return rc;
	return 0;
}

int gateway_config_load(const char *path, struct gateway_config *cfg,
			struct agri_err *err)
{
	cJSON *root = NULL;
	char *buf = NULL;
	size_t len;
	int rc;

	gateway_config_defaults(cfg);
	if (strlen(path) >= sizeof(cfg->file)) {
		agri_err_set(err, "", "path too long");
		return -ENAMETOOLONG;
	}
	snprintf(cfg->file, sizeof(cfg->file), "%s", path);
	rc = util_read_file(path, CFG_FILE_MAX, &buf, &len);
	if (rc < 0) {
		agri_err_set(err, "", "cannot read: %s", strerror(-rc));
		return rc;
	}
	rc = agri_json_parse(buf, len, CFG_FILE_MAX, AGRI_JSON_DEPTH_MAX, &root, err);
	if (rc < 0)
		goto out;
	rc = agri_cfg_read(root, "", top_fields, AGRI_ARRAY_SIZE(top_fields), cfg, false, err);
	if (rc < 0)
		goto out;
	rc = check(cfg, err);
out:
	cJSON_Delete(root);
	free(buf);
	return rc < 0 ? rc : 0;
}
