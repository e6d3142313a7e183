/*
 * station.json reader: field tables per object (defaults set in one place,
 * config_defaults(), before the tables read over them), then one
 * cross-field check (config_check) that resolves bus and profile
 * references and loads the profiles. Errors carry the JSON path.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/profiles.h"
#include "agri/topic.h"
#include "config.h"
#include "agri/util.h"

/* The defaults of station.json (docs/interfaces.md), in one place. */
static void config_defaults(struct station_config *c)
{
	memset(c, 0, sizeof(*c));
	c->broker.keepalive_s = 30;
	c->broker.home_holddown_s = 300;
	snprintf(c->broker.topic_prefix, sizeof(c->broker.topic_prefix), "%s",
		 AGRI_TOPIC_PREFIX_DEFAULT);
	c->spool_max_mb = 64;
	c->publish_interval_s = 60;
	c->ack_timeout_s = 300;
	c->probation_s = 60;
	c->watchdog.timeout_s = 60;
}

static void bus_defaults(void *elem)
{
	struct station_bus *b = elem;

	memset(b, 0, sizeof(*b));
	b->timeout_ms = 500;
	b->gap_ms = 20;
	b->baud = 9600;
	strcpy(b->parity_s, "N");
	b->data_bits = 8;
	b->stop_bits = 1;
}

static void sensor_defaults(void *elem)
{
	struct station_sensor *s = elem;

	memset(s, 0, sizeof(*s));
	s->interval_s = 60;
	s->stuck_reads = 30;
}

#define SC struct station_config
#define SB struct station_bus
#define SS struct station_sensor

/* site and watchdog: sections over the whole config. */
static const struct agri_cfg_field site_fields[] = {
	AGRI_FIELD_STR(SC, "name", site.name, false),
	AGRI_FIELD_DOUBLE(SC, "lat", site.lat, -90, 90),
	AGRI_FIELD_DOUBLE(SC, "lon", site.lon, -180, 180),
};

static int parse_site(const cJSON *item, void *cfg, const char *path,
		      struct agri_err *err)
{
	return agri_cfg_read(item, path, site_fields, AGRI_ARRAY_SIZE(site_fields), cfg,
			     false, err);
}

#define SBR struct station_broker

static const struct agri_cfg_array urls_array = {
	.value = &(const struct agri_cfg_field){.type = AGRI_CFG_STR, .size = STATION_URL_MAX},
	.elem_size = STATION_URL_MAX, .min = 1, .max = STATION_BROKER_URLS_MAX,
	.what = "broker URLs",
};

static const struct agri_cfg_field broker_fields[] = {
	AGRI_FIELD_STR(SBR, "url", url, false),
	AGRI_FIELD_ARRAY(SBR, "urls", urls, n_urls, &urls_array, false),
	AGRI_FIELD_STR(SBR, "username", username, false),
	AGRI_FIELD_STR(SBR, "password_file", password_file, false),
	AGRI_FIELD_STR(SBR, "ca_file", ca_file, false),
	AGRI_FIELD_STR(SBR, "cert_file", cert_file, false),
	AGRI_FIELD_STR(SBR, "key_file", key_file, false),
	AGRI_FIELD_INT(SBR, "keepalive_s", keepalive_s, 5, 3600),
	AGRI_FIELD_INT(SBR, "home_holddown_s", home_holddown_s, 1, 86400),
	AGRI_FIELD_STR(SBR, "topic_prefix", topic_prefix, false),
};

#undef SBR

/* broker.url (one hub) or broker.urls (several, the home hub first): one
 * of them, never both, so nobody has to guess which one wins. Afterwards
 * urls[] holds every hub and url the home hub, whichever was given. */
static int parse_broker(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct station_broker *b = field;
	const cJSON *u;
	bool has_url, has_urls;
	char sub[AGRI_ERR_PATH_MAX];
	int rc;

	rc = agri_cfg_read(item, path, broker_fields, AGRI_ARRAY_SIZE(broker_fields),
			   field, false, err);
	if (rc)
		return rc;
	u = cJSON_GetObjectItemCaseSensitive(item, "url");
	has_url = u && !cJSON_IsNull(u);
	has_urls = cJSON_GetObjectItemCaseSensitive(item, "urls") != NULL;
	if (has_url && has_urls) {
		agri_path_key(sub, sizeof(sub), path, "urls");
		agri_err_set(err, sub, "give either url (one hub) or urls (a list), not both");
		return -EINVAL;
	}
	if (!has_url && !has_urls) {
		agri_path_key(sub, sizeof(sub), path, "url");
		agri_err_set(err, sub, "is required (or urls: a list of hubs, the home hub first)");
		return -EINVAL;
	}
	if (has_url) {
		memcpy(b->urls[0], b->url, sizeof(b->url));
		b->n_urls = 1;
	} else {
		memcpy(b->url, b->urls[0], sizeof(b->url));
	}
	return 0;
}

static const struct agri_cfg_field watchdog_fields[] = {
	AGRI_FIELD_STR(SC, "device", watchdog.device, true),
	AGRI_FIELD_INT(SC, "timeout_s", watchdog.timeout_s, 5, 600),
};

static int parse_watchdog(const cJSON *item, void *cfg, const char *path,
			  struct agri_err *err)
{
	if (cJSON_IsNull(item))
		return 0;
	return agri_cfg_read(item, path, watchdog_fields, AGRI_ARRAY_SIZE(watchdog_fields),
			     cfg, false, err);
}

/* rtu and tcp: sections over their bus. */
static const struct agri_cfg_field rtu_fields[] = {
	AGRI_FIELD_STR(SB, "device", device, true),
	AGRI_FIELD(SB, "baud", AGRI_CFG_INT, baud, false, AGRI_RANGE(300, 1000000),
		   AGRI_PRESENT(SB, has_baud)),
	AGRI_FIELD_STR(SB, "parity", parity_s, false),
	AGRI_FIELD_INT(SB, "data_bits", data_bits, 7, 8),
	AGRI_FIELD_INT(SB, "stop_bits", stop_bits, 1, 2),
};

static int parse_rtu(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	struct station_bus *b = field;
	char sub[AGRI_ERR_PATH_MAX];
	int rc;

	rc = agri_cfg_read(item, path, rtu_fields, AGRI_ARRAY_SIZE(rtu_fields), b,
			   false, err);
	if (rc)
		return rc;
	if (strcmp(b->parity_s, "N") && strcmp(b->parity_s, "E") &&
	    strcmp(b->parity_s, "O")) {
		agri_path_key(sub, sizeof(sub), path, "parity");
		agri_err_set(err, sub, "expected \"N\", \"E\" or \"O\"");
		return -EINVAL;
	}
	return 0;
}

static const struct agri_cfg_field tcp_fields[] = {
	AGRI_FIELD_STR(SB, "host", host, true),
	AGRI_FIELD_INT(SB, "port", port, 1, 65535),
};

static int parse_tcp(const cJSON *item, void *field, const char *path,
		     struct agri_err *err)
{
	struct station_bus *b = field;

	b->port = 502;
	b->is_tcp = true;
	return agri_cfg_read(item, path, tcp_fields, AGRI_ARRAY_SIZE(tcp_fields), b,
			     false, err);
}

static const struct agri_cfg_field bus_fields[] = {
	AGRI_FIELD_STR(SB, "name", name, true),
	AGRI_FIELD_SECTION("rtu", parse_rtu, false),
	AGRI_FIELD_SECTION("tcp", parse_tcp, false),
	AGRI_FIELD_INT(SB, "timeout_ms", timeout_ms, 10, 60000),
	AGRI_FIELD_INT(SB, "gap_ms", gap_ms, 0, 10000),
};

static int check_bus_link(const cJSON *item, void *elem, const char *path,
			  struct agri_err *err)
{
	bool has_rtu = cJSON_GetObjectItemCaseSensitive(item, "rtu") != NULL;
	bool has_tcp = cJSON_GetObjectItemCaseSensitive(item, "tcp") != NULL;

	(void)elem;
	if (has_rtu == has_tcp) {
		agri_err_set(err, path, "needs exactly one of \"rtu\" or \"tcp\"");
		return -EINVAL;
	}
	return 0;
}

static const struct agri_cfg_array buses_array = {
	.fields = bus_fields, .n_fields = AGRI_ARRAY_SIZE(bus_fields),
	.elem_size = sizeof(struct station_bus), .min = 1, .max = STATION_BUSES_MAX,
	.what = "buses", .init = bus_defaults, .check = check_bus_link,
};

static const struct agri_cfg_field sensor_fields[] = {
	AGRI_FIELD_STR(SS, "name", name, true),
	AGRI_FIELD_STR(SS, "bus", bus, true),
	AGRI_FIELD(SS, "slave", AGRI_CFG_INT, slave, true, AGRI_RANGE(1, 247)),
	AGRI_FIELD_STR(SS, "profile", profile, true),
	AGRI_FIELD_DOUBLE(SS, "interval_s", interval_s, 0.1, 86400),
	AGRI_FIELD_DOUBLE(SS, "warmup_s", warmup_s, 0, 3600),
	AGRI_FIELD_INT(SS, "stuck_reads", stuck_reads, 0, 100000),
	AGRI_FIELD(SS, "level_offset_m", AGRI_CFG_DOUBLE, level_offset_m, false,
		   AGRI_RANGE(-10000, 10000), AGRI_PRESENT(SS, has_level_offset)),
	AGRI_FIELD(SS, "probe_level_m", AGRI_CFG_DOUBLE, probe_level_m, false,
		   AGRI_RANGE(-10000, 10000), AGRI_PRESENT(SS, has_probe_level)),
	AGRI_FIELD_BOOL(SS, "maintenance", maintenance),
};

static const struct agri_cfg_array sensors_array = {
	.fields = sensor_fields, .n_fields = AGRI_ARRAY_SIZE(sensor_fields),
	.elem_size = sizeof(struct station_sensor), .min = 1, .max = STATION_SENSORS_MAX,
	.what = "sensors", .init = sensor_defaults,
};

static const struct agri_cfg_field top_fields[] = {
	AGRI_FIELD_STR(SC, "station", station, true),
	AGRI_FIELD_INT(SC, "version", version, 0, 9007199254740991.0),
	AGRI_FIELD_SECTION("site", parse_site, false),
	AGRI_FIELD_CUSTOM(SC, "broker", broker, parse_broker, true),
	AGRI_FIELD_STR(SC, "state_dir", state_dir, false),
	AGRI_FIELD_STR(SC, "profiles_dir", profiles_dir, false),
	AGRI_FIELD_INT(SC, "spool_max_mb", spool_max_mb, 1, 65536),
	AGRI_FIELD_DOUBLE(SC, "publish_interval_s", publish_interval_s, 0.1, 86400),
	AGRI_FIELD_DOUBLE(SC, "ack_timeout_s", ack_timeout_s, 0.5, 86400),
	AGRI_FIELD_DOUBLE(SC, "probation_s", probation_s, 0, 3600),
	AGRI_FIELD_BOOL(SC, "maintenance", maintenance),
	AGRI_FIELD_SECTION("watchdog", parse_watchdog, false),
	AGRI_FIELD_ARRAY(SC, "buses", buses, n_buses, &buses_array, true),
	AGRI_FIELD_ARRAY(SC, "sensors", sensors, n_sensors, &sensors_array, true),
};

#undef SC
#undef SB
#undef SS

/* Resolves an optional path field in place against base_path. */
static int resolve(char *p, size_t len, const char *base_path,
		   const char *where, struct agri_err *err)
{
	char tmp[STATION_PATH_MAX];

	if (!p[0] || !base_path)
		return 0;
	if (util_path_relative_to(tmp, sizeof(tmp), base_path, p) < 0 ||
	    strlen(tmp) >= len) {
		agri_err_set(err, where, "path too long");
		return -EINVAL;
	}
	memcpy(p, tmp, strlen(tmp) + 1);
	return 0;
}

static int load_profile(const char *dir, const char *name,
			struct agri_profile *p, const char *where,
			struct agri_err *err)
{
	char file[STATION_PATH_MAX + 64], msg[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX];
	struct agri_err perr = {{0}, {0}};
	int rc;

	rc = profiles_load(dir, name, p, file, sizeof(file), &perr);
	if (rc == -ENOENT) {
		char hint[AGRI_ERR_MSG_MAX];

		profiles_suggest(dir, name, false, hint, sizeof(hint));
		agri_err_set(err, where, "no profile \"%s\": %s", name, hint);
		return -EINVAL;
	}
	if (rc < 0) {
		agri_err_format(&perr, msg, sizeof(msg));
		agri_err_set(err, where, "profile \"%s\": %s", name, msg);
		return -EINVAL;
	}
	return 0;
}

/* True for the hardware watchdog's device nodes: "/dev/watchdog" and
 * "/dev/watchdogN". Nothing else: the station opens it for writing. */
static bool watchdog_device_valid(const char *p)
{
	static const char prefix[] = "/dev/watchdog";

	if (strncmp(p, prefix, sizeof(prefix) - 1))
		return false;
	for (p += sizeof(prefix) - 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static bool url_is_tls(const char *u)
{
	return !strncmp(u, "ssl://", 6) || !strncmp(u, "mqtts://", 8);
}

/* Each hub's URL as broker.url always was; all with TLS or none (paho
 * keeps TLS on once one URL used it, and a station that falls back to
 * plain MQTT when its TLS hub is away would be a downgrade), no twice. */
static int check_broker_urls(const struct station_broker *b, struct agri_err *err)
{
	char where[AGRI_ERR_PATH_MAX];

	for (size_t i = 0; i < b->n_urls; i++) {
		const char *u = b->urls[i];

		if (b->n_urls == 1)
			snprintf(where, sizeof(where), "broker.url");
		else
			agri_path_index(where, sizeof(where), "broker.urls", (int)i);
		if (strncmp(u, "tcp://", 6) && strncmp(u, "mqtt://", 7) && !url_is_tls(u)) {
			agri_err_set(err, where, "expected tcp://, mqtt://, ssl:// or mqtts://HOST:PORT");
			return -EINVAL;
		}
		if ((b->ca_file[0] || b->cert_file[0]) && !url_is_tls(u)) {
			agri_err_set(err, where, "TLS files are set: expected ssl:// or mqtts://");
			return -EINVAL;
		}
		if (url_is_tls(u) != url_is_tls(b->urls[0])) {
			agri_err_set(err, where, "every hub with TLS (ssl://, mqtts://) or none");
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(b->urls[j], u)) {
				agri_err_set(err, where, "the same hub as broker.urls[%zu]", j);
				return -EINVAL;
			}
	}
	return 0;
}

/* The station, its broker and its watchdog, each on its own. */
static int check_station(const struct station_config *c, struct agri_err *err)
{
	if (!agri_station_id_valid(c->station)) {
		agri_err_set(err, "station", "expected [A-Za-z0-9_-]{1,32}, not a reserved word");
		return -EINVAL;
	}
	if (!agri_topic_prefix_valid(c->broker.topic_prefix)) {
		agri_err_set(err, "broker.topic_prefix", "not a valid topic prefix");
		return -EINVAL;
	}
	if (check_broker_urls(&c->broker, err))
		return -EINVAL;
	if (!c->broker.cert_file[0] != !c->broker.key_file[0]) {
		agri_err_set(err, c->broker.cert_file[0] ? "broker.key_file" : "broker.cert_file",
			     "cert_file and key_file go together");
		return -EINVAL;
	}
	if (c->broker.password_file[0] && !c->broker.username[0]) {
		agri_err_set(err, "broker.username", "is required with password_file");
		return -EINVAL;
	}
	if (c->watchdog.device[0] && !watchdog_device_valid(c->watchdog.device)) {
		agri_err_set(err, "watchdog.device", "expected /dev/watchdog or /dev/watchdogN");
		return -EINVAL;
	}
	return 0;
}

/* The file paths against base_path, with state_dir's and profiles_dir's
 * defaults. */
static int resolve_paths(struct station_config *c, const char *base_path,
			 struct agri_err *err)
{
	if (!c->state_dir[0])
		snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/agri-station/%s",
			 c->station);
	if (resolve(c->broker.password_file, sizeof(c->broker.password_file), base_path,
		    "broker.password_file", err) ||
	    resolve(c->broker.ca_file, sizeof(c->broker.ca_file), base_path, "broker.ca_file", err) ||
	    resolve(c->broker.cert_file, sizeof(c->broker.cert_file), base_path,
		    "broker.cert_file", err) ||
	    resolve(c->broker.key_file, sizeof(c->broker.key_file), base_path,
		    "broker.key_file", err) ||
	    resolve(c->state_dir, sizeof(c->state_dir), base_path, "state_dir", err) ||
	    resolve(c->profiles_dir, sizeof(c->profiles_dir), base_path, "profiles_dir", err))
		return -EINVAL;
	if (!c->profiles_dir[0])
		snprintf(c->profiles_dir, sizeof(c->profiles_dir), "%s",
			 profiles_default_dir());
	return 0;
}

/* Bus names: valid and unique; RTU devices resolved against base_path. */
static int check_buses(struct station_config *c, const char *base_path,
		       struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX], where[AGRI_ERR_PATH_MAX];

	for (size_t i = 0; i < c->n_buses; i++) {
		struct station_bus *b = &c->buses[i];

		agri_path_index(sub, sizeof(sub), "buses", (int)i);
		if (!agri_ident_valid(b->name)) {
			agri_path_key(where, sizeof(where), sub, "name");
			agri_err_set(err, where, "expected [A-Za-z0-9_-]{1,32}");
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->buses[j].name, b->name)) {
				agri_path_key(where, sizeof(where), sub, "name");
				agri_err_set(err, where, "duplicate bus name \"%s\"", b->name);
				return -EINVAL;
			}
		if (!b->is_tcp) {
			agri_path_key(where, sizeof(where), sub, "rtu.device");
			if (resolve(b->device, sizeof(b->device), base_path, where, err))
				return -EINVAL;
		}
	}
	return 0;
}

/* Sensor i's name: valid and unique among the sensors before it. */
static int check_sensor_name(const struct station_config *c, size_t i, const char *sub,
			     struct agri_err *err)
{
	const struct station_sensor *s = &c->sensors[i];
	char where[AGRI_ERR_PATH_MAX];

	agri_path_key(where, sizeof(where), sub, "name");
	if (!agri_ident_valid(s->name)) {
		agri_err_set(err, where, "expected [A-Za-z0-9_-]{1,32}");
		return -EINVAL;
	}
	for (size_t j = 0; j < i; j++)
		if (!strcmp(c->sensors[j].name, s->name)) {
			agri_err_set(err, where, "duplicate sensor name \"%s\"", s->name);
			return -EINVAL;
		}
	return 0;
}

/* Resolves s->bus and s->profile to indexes, loading each profile the
 * first time a sensor names it. */
static int resolve_sensor(struct station_config *c, struct station_sensor *s,
			  const char *sub, struct agri_err *err)
{
	char where[AGRI_ERR_PATH_MAX];

	s->bus_index = -1;
	for (size_t j = 0; j < c->n_buses; j++)
		if (!strcmp(c->buses[j].name, s->bus))
			s->bus_index = (int)j;
	if (s->bus_index < 0) {
		agri_path_key(where, sizeof(where), sub, "bus");
		agri_err_set(err, where, "no bus named \"%s\"", s->bus);
		return -EINVAL;
	}
	s->profile_index = -1;
	for (size_t j = 0; j < c->n_profiles; j++)
		if (!strcmp(c->profiles[j].name, s->profile))
			s->profile_index = (int)j;
	if (s->profile_index >= 0)
		return 0;
	agri_path_key(where, sizeof(where), sub, "profile");
	if (!agri_ident_valid(s->profile)) {
		agri_err_set(err, where, "not a profile name");
		return -EINVAL;
	}
	if (load_profile(c->profiles_dir, s->profile, &c->profiles[c->n_profiles], where, err))
		return -EINVAL;
	s->profile_index = (int)c->n_profiles++;
	return 0;
}

/* What the sensor asks of its profile: a water level to offset, and room
 * for its class readings' names. */
static int check_sensor_profile(const struct station_sensor *s,
				const struct agri_profile *p, const char *sub,
				struct agri_err *err)
{
	char where[AGRI_ERR_PATH_MAX];

	if (s->has_level_offset) {
		bool level = false;

		for (size_t j = 0; j < p->n_derived; j++)
			level = level || p->derived[j].fn == AGRI_DERIVED_LEVEL;
		if (!level) {
			agri_path_key(where, sizeof(where), sub, "level_offset_m");
			agri_err_set(err, where, "profile \"%s\" derives no water level",
				     s->profile);
			return -EINVAL;
		}
	}
	/* Class registers (light-trap counts) name "<sensor>-<suffix>". */
	for (size_t j = 0; j < p->n_regs; j++) {
		const char *sfx = p->regs[j].sensor_suffix;

		if (sfx[0] && strlen(s->name) + 1 + strlen(sfx) > AGRI_ID_MAX) {
			agri_path_key(where, sizeof(where), sub, "name");
			agri_err_set(err, where, "too long for profile \"%s\": its readings are "
				     "named \"%s-%s\" (at most %d characters)", s->profile,
				     s->name, sfx, AGRI_ID_MAX);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_sensors(struct station_config *c, struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX];

	c->n_profiles = 0;
	for (size_t i = 0; i < c->n_sensors; i++) {
		struct station_sensor *s = &c->sensors[i];

		agri_path_index(sub, sizeof(sub), "sensors", (int)i);
		if (check_sensor_name(c, i, sub, err) || resolve_sensor(c, s, sub, err) ||
		    check_sensor_profile(s, &c->profiles[s->profile_index], sub, err))
			return -EINVAL;
	}
	return 0;
}

/* An RTU bus without a baud takes its first sensor's profile's. */
static void default_bauds(struct station_config *c)
{
	for (size_t i = 0; i < c->n_buses; i++) {
		struct station_bus *b = &c->buses[i];

		if (b->is_tcp || b->has_baud)
			continue;
		for (size_t j = 0; j < c->n_sensors; j++) {
			const struct agri_profile *p =
				&c->profiles[c->sensors[j].profile_index];

			if (c->sensors[j].bus_index == (int)i && p->serial.baud > 0) {
				b->baud = p->serial.baud;
				break;
			}
		}
	}
}

/* The cross-field check, phase by phase: the first failure is the error. */
static int config_check(struct station_config *c, const char *base_path,
			struct agri_err *err)
{
	if (check_station(c, err) || resolve_paths(c, base_path, err) ||
	    check_buses(c, base_path, err) || check_sensors(c, err))
		return -EINVAL;
	default_bauds(c);
	return 0;
}

int station_config_parse(const char *json, size_t len, const char *base_path,
			 struct station_config *cfg, struct agri_err *err)
{
	cJSON *root = NULL;
	int rc;

	config_defaults(cfg);
	rc = agri_json_parse(json, len, STATION_CONFIG_MAX_BYTES, AGRI_JSON_DEPTH_MAX,
			     &root, err);
	if (rc < 0)
		return rc;
	rc = agri_cfg_read(root, "", top_fields, AGRI_ARRAY_SIZE(top_fields), cfg, false, err);
	cJSON_Delete(root);
	if (rc < 0)
		return rc;
	return config_check(cfg, base_path, err);
}

int station_config_load(const char *path, struct station_config *cfg,
			struct agri_err *err)
{
	size_t len;
	char *buf;
	int rc;

	rc = util_read_file(path, STATION_CONFIG_MAX_BYTES, &buf, &len);
	if (rc < 0) {
		agri_err_set(err, "", "%s", rc == -EFBIG ? "file too large" : strerror(-rc));
		return rc;
	}
	rc = station_config_parse(buf, len, path, cfg, err);
	free(buf);
	return rc;
}

bool station_config_needs_restart(const struct station_config *a,
				  const struct station_config *b,
				  const char **what)
{
	if (strcmp(a->station, b->station))
		*what = "station";
	else if (memcmp(&a->broker, &b->broker, sizeof(a->broker)))
		*what = "broker";
	else if (strcmp(a->state_dir, b->state_dir))
		*what = "state_dir";
	else
		return false;
	return true;
}

/* A serial device a pushed config may name: /dev/tty* or /dev/serial*
 * (the udev by-id/by-path links), with no ".." in it. */
static bool remote_rtu_device_valid(const char *p)
{
	if (strncmp(p, "/dev/tty", 8) && strncmp(p, "/dev/serial", 11))
		return false;
	return strstr(p, "/..") == NULL;
}

int station_config_remote_check(const struct station_config *running,
				const struct station_config *pushed,
				struct agri_err *err)
{
	char where[AGRI_ERR_PATH_MAX], sub[AGRI_ERR_PATH_MAX];
	const char *what;
	size_t i, j;

	if (strcmp(running->station, pushed->station)) {
		agri_err_set(err, "station", "this config is for \"%s\", not this station (\"%s\")",
			     pushed->station, running->station);
		return -EINVAL;
	}
	if (station_config_needs_restart(running, pushed, &what)) {
		agri_err_set(err, what, "cannot be changed remotely (needs a new file and a restart)");
		return -EINVAL;
	}
	if (strcmp(running->profiles_dir, pushed->profiles_dir)) {
		agri_err_set(err, "profiles_dir", "cannot be changed remotely (is \"%s\")",
			     running->profiles_dir);
		return -EINVAL;
	}
	for (i = 0; i < pushed->n_buses; i++) {
		const struct station_bus *b = &pushed->buses[i];
		bool known = false;

		if (b->is_tcp || remote_rtu_device_valid(b->device))
			continue;
		for (j = 0; j < running->n_buses; j++)
			if (!running->buses[j].is_tcp && !strcmp(running->buses[j].device, b->device))
				known = true;
		if (!known) {
			agri_path_index(sub, sizeof(sub), "buses", (int)i);
			agri_path_key(where, sizeof(where), sub, "rtu.device");
			agri_err_set(err, where, "a pushed config may name /dev/tty* or /dev/serial* "
				     "or a device the running config uses, not \"%s\"", b->device);
			return -EINVAL;
		}
	}
	return 0;
}
