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

#define STR(s, k, m, req) {.key = k, .type = AGRI_CFG_STR, .required = req, \
	.offset = offsetof(s, m), .size = sizeof(((s *)0)->m)}
#define INT(s, k, m, lo, hi) {.key = k, .type = AGRI_CFG_INT, \
	.offset = offsetof(s, m), .min = lo, .max = hi}
#define DBL(s, k, m, lo, hi) {.key = k, .type = AGRI_CFG_DOUBLE, \
	.offset = offsetof(s, m), .min = lo, .max = hi}
#define CUS(s, k, m, fn, req) {.key = k, .type = AGRI_CFG_CUSTOM, \
	.required = req, .offset = offsetof(s, m), .parse = fn}

/* The defaults of CONTRACT.md §8, in one place. */
static void config_defaults(struct station_config *c)
{
	memset(c, 0, sizeof(*c));
	c->broker.keepalive_s = 30;
	snprintf(c->broker.topic_prefix, sizeof(c->broker.topic_prefix), "%s",
		 AGRI_TOPIC_PREFIX_DEFAULT);
	c->spool_max_mb = 64;
	c->publish_interval_s = 60;
	c->ack_timeout_s = 300;
	c->watchdog.timeout_s = 60;
}

static void bus_defaults(struct station_bus *b)
{
	memset(b, 0, sizeof(*b));
	b->timeout_ms = 500;
	b->gap_ms = 20;
	b->baud = 9600;
	strcpy(b->parity_s, "N");
	b->data_bits = 8;
	b->stop_bits = 1;
}

static void sensor_defaults(struct station_sensor *s)
{
	memset(s, 0, sizeof(*s));
	s->interval_s = 60;
	s->stuck_reads = 30;
}

static const struct agri_cfg_field site_fields[] = {
	STR(struct station_config, "name", site.name, false),
	DBL(struct station_config, "lat", site.lat, -90, 90),
	DBL(struct station_config, "lon", site.lon, -180, 180),
};

static int parse_site(const cJSON *item, void *field, const char *path,
		      struct agri_err *err)
{
	/* field points at cfg->site; the table's offsets are from cfg */
	char *cfg = (char *)field - offsetof(struct station_config, site);

	return agri_cfg_read(item, path, site_fields, AGRI_ARRAY_SIZE(site_fields), cfg,
			     false, err);
}

static const struct agri_cfg_field broker_fields[] = {
	STR(struct station_broker, "url", url, true),
	STR(struct station_broker, "username", username, false),
	STR(struct station_broker, "password_file", password_file, false),
	STR(struct station_broker, "ca_file", ca_file, false),
	STR(struct station_broker, "cert_file", cert_file, false),
	STR(struct station_broker, "key_file", key_file, false),
	INT(struct station_broker, "keepalive_s", keepalive_s, 5, 3600),
	STR(struct station_broker, "topic_prefix", topic_prefix, false),
};

static int parse_broker(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	return agri_cfg_read(item, path, broker_fields, AGRI_ARRAY_SIZE(broker_fields),
			     field, false, err);
}

static const struct agri_cfg_field watchdog_fields[] = {
	STR(struct station_config, "device", watchdog.device, true),
	INT(struct station_config, "timeout_s", watchdog.timeout_s, 5, 600),
};

static int parse_watchdog(const cJSON *item, void *field, const char *path,
			  struct agri_err *err)
{
	char *cfg = (char *)field - offsetof(struct station_config, watchdog);

	if (cJSON_IsNull(item))
		return 0;
	return agri_cfg_read(item, path, watchdog_fields,
			     AGRI_ARRAY_SIZE(watchdog_fields), cfg, false, err);
}

static const struct agri_cfg_field rtu_fields[] = {
	STR(struct station_bus, "device", device, true),
	{.key = "baud", .type = AGRI_CFG_INT, .offset = offsetof(struct station_bus, baud),
	 .min = 300, .max = 1000000,
	 .present_offset = offsetof(struct station_bus, has_baud)},
	STR(struct station_bus, "parity", parity_s, false),
	INT(struct station_bus, "data_bits", data_bits, 7, 8),
	INT(struct station_bus, "stop_bits", stop_bits, 1, 2),
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
	STR(struct station_bus, "host", host, true),
	INT(struct station_bus, "port", port, 1, 65535),
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
	STR(struct station_bus, "name", name, true),
	CUS(struct station_bus, "rtu", name, parse_rtu, false),
	CUS(struct station_bus, "tcp", name, parse_tcp, false),
	INT(struct station_bus, "timeout_ms", timeout_ms, 10, 60000),
	INT(struct station_bus, "gap_ms", gap_ms, 0, 10000),
};

/* The bus table's rtu/tcp entries get the bus itself (offset of name = 0). */
_Static_assert(offsetof(struct station_bus, name) == 0, "name first");

static int parse_buses(const cJSON *item, void *field, const char *path,
		       struct agri_err *err)
{
	struct station_config *c =
		(struct station_config *)((char *)field - offsetof(struct station_config, n_buses));
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *it;
	int i = 0, rc;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1) {
		agri_err_set(err, path, "expected a non-empty array");
		return -EINVAL;
	}
	if (cJSON_GetArraySize(item) > STATION_BUSES_MAX) {
		agri_err_set(err, path, "at most %d buses", STATION_BUSES_MAX);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, item) {
		struct station_bus *b = &c->buses[i];
		bool has_rtu, has_tcp;

		agri_path_index(sub, sizeof(sub), path, i);
		bus_defaults(b);
		rc = agri_cfg_read(it, sub, bus_fields, AGRI_ARRAY_SIZE(bus_fields), b,
				   false, err);
		if (rc)
			return rc;
		has_rtu = cJSON_GetObjectItemCaseSensitive(it, "rtu") != NULL;
		has_tcp = cJSON_GetObjectItemCaseSensitive(it, "tcp") != NULL;
		if (has_rtu == has_tcp) {
			agri_err_set(err, sub, "needs exactly one of \"rtu\" or \"tcp\"");
			return -EINVAL;
		}
		i++;
	}
	c->n_buses = (size_t)i;
	return 0;
}

static const struct agri_cfg_field sensor_fields[] = {
	STR(struct station_sensor, "name", name, true),
	STR(struct station_sensor, "bus", bus, true),
	{.key = "slave", .type = AGRI_CFG_INT, .required = true,
	 .offset = offsetof(struct station_sensor, slave), .min = 1, .max = 247},
	STR(struct station_sensor, "profile", profile, true),
	DBL(struct station_sensor, "interval_s", interval_s, 0.1, 86400),
	DBL(struct station_sensor, "warmup_s", warmup_s, 0, 3600),
	INT(struct station_sensor, "stuck_reads", stuck_reads, 0, 100000),
	{.key = "level_offset_m", .type = AGRI_CFG_DOUBLE, .min = -10000, .max = 10000,
	 .offset = offsetof(struct station_sensor, level_offset_m),
	 .present_offset = offsetof(struct station_sensor, has_level_offset)},
	{.key = "probe_level_m", .type = AGRI_CFG_DOUBLE, .min = -10000, .max = 10000,
	 .offset = offsetof(struct station_sensor, probe_level_m),
	 .present_offset = offsetof(struct station_sensor, has_probe_level)},
};

static int parse_sensors(const cJSON *item, void *field, const char *path,
			 struct agri_err *err)
{
	struct station_config *c =
		(struct station_config *)((char *)field - offsetof(struct station_config, n_sensors));
	char sub[AGRI_ERR_PATH_MAX];
	const cJSON *it;
	int i = 0, rc;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1) {
		agri_err_set(err, path, "expected a non-empty array");
		return -EINVAL;
	}
	if (cJSON_GetArraySize(item) > STATION_SENSORS_MAX) {
		agri_err_set(err, path, "at most %d sensors", STATION_SENSORS_MAX);
		return -EINVAL;
	}
	cJSON_ArrayForEach(it, item) {
		agri_path_index(sub, sizeof(sub), path, i);
		sensor_defaults(&c->sensors[i]);
		rc = agri_cfg_read(it, sub, sensor_fields, AGRI_ARRAY_SIZE(sensor_fields),
				   &c->sensors[i], false, err);
		if (rc)
			return rc;
		i++;
	}
	c->n_sensors = (size_t)i;
	return 0;
}

static const struct agri_cfg_field top_fields[] = {
	STR(struct station_config, "station", station, true),
	INT(struct station_config, "version", version, 0, 9007199254740991.0),
	CUS(struct station_config, "site", site, parse_site, false),
	CUS(struct station_config, "broker", broker, parse_broker, true),
	STR(struct station_config, "state_dir", state_dir, false),
	STR(struct station_config, "profiles_dir", profiles_dir, false),
	INT(struct station_config, "spool_max_mb", spool_max_mb, 1, 65536),
	DBL(struct station_config, "publish_interval_s", publish_interval_s, 0.1, 86400),
	DBL(struct station_config, "ack_timeout_s", ack_timeout_s, 0.5, 86400),
	CUS(struct station_config, "watchdog", watchdog, parse_watchdog, false),
	CUS(struct station_config, "buses", n_buses, parse_buses, true),
	CUS(struct station_config, "sensors", n_sensors, parse_sensors, true),
};

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
		agri_err_set(err, where, "no profile \"%s\" in %s", name, dir);
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

static int config_check(struct station_config *c, const char *base_path,
			struct agri_err *err)
{
	char sub[AGRI_ERR_PATH_MAX];
	size_t i, j;

	if (!agri_station_id_valid(c->station)) {
		agri_err_set(err, "station", "expected [A-Za-z0-9_-]{1,32}, not a reserved word");
		return -EINVAL;
	}
	if (!agri_topic_prefix_valid(c->broker.topic_prefix)) {
		agri_err_set(err, "broker.topic_prefix", "not a valid topic prefix");
		return -EINVAL;
	}
	if (strncmp(c->broker.url, "tcp://", 6) && strncmp(c->broker.url, "ssl://", 6) &&
	    strncmp(c->broker.url, "mqtt://", 7) && strncmp(c->broker.url, "mqtts://", 8)) {
		agri_err_set(err, "broker.url", "expected tcp://, mqtt://, ssl:// or mqtts://HOST:PORT");
		return -EINVAL;
	}
	if ((c->broker.ca_file[0] || c->broker.cert_file[0]) &&
	    strncmp(c->broker.url, "ssl://", 6) && strncmp(c->broker.url, "mqtts://", 8)) {
		agri_err_set(err, "broker.url", "TLS files are set: expected ssl:// or mqtts://");
		return -EINVAL;
	}
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

	for (i = 0; i < c->n_buses; i++) {
		struct station_bus *b = &c->buses[i];
		char where[AGRI_ERR_PATH_MAX];

		agri_path_index(sub, sizeof(sub), "buses", (int)i);
		if (!agri_ident_valid(b->name)) {
			agri_path_key(where, sizeof(where), sub, "name");
			agri_err_set(err, where, "expected [A-Za-z0-9_-]{1,32}");
			return -EINVAL;
		}
		for (j = 0; j < i; j++)
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
	c->n_profiles = 0;
	for (i = 0; i < c->n_sensors; i++) {
		struct station_sensor *s = &c->sensors[i];
		char where[AGRI_ERR_PATH_MAX];

		agri_path_index(sub, sizeof(sub), "sensors", (int)i);
		if (!agri_ident_valid(s->name)) {
			agri_path_key(where, sizeof(where), sub, "name");
			agri_err_set(err, where, "expected [A-Za-z0-9_-]{1,32}");
			return -EINVAL;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(c->sensors[j].name, s->name)) {
				agri_path_key(where, sizeof(where), sub, "name");
				agri_err_set(err, where, "duplicate sensor name \"%s\"", s->name);
				return -EINVAL;
			}
		s->bus_index = -1;
		for (j = 0; j < c->n_buses; j++)
			if (!strcmp(c->buses[j].name, s->bus))
				s->bus_index = (int)j;
		if (s->bus_index < 0) {
			agri_path_key(where, sizeof(where), sub, "bus");
			agri_err_set(err, where, "no bus named \"%s\"", s->bus);
			return -EINVAL;
		}
		s->profile_index = -1;
		for (j = 0; j < c->n_profiles; j++)
			if (!strcmp(c->profiles[j].name, s->profile))
				s->profile_index = (int)j;
		if (s->profile_index < 0) {
			agri_path_key(where, sizeof(where), sub, "profile");
			if (!agri_ident_valid(s->profile)) {
				agri_err_set(err, where, "not a profile name");
				return -EINVAL;
			}
			if (load_profile(c->profiles_dir, s->profile,
					 &c->profiles[c->n_profiles], where, err))
				return -EINVAL;
			s->profile_index = (int)c->n_profiles++;
		}
		if (s->has_level_offset) {
			const struct agri_profile *p = &c->profiles[s->profile_index];
			bool level = false;

			for (j = 0; j < p->n_derived; j++)
				level = level || p->derived[j].fn == AGRI_DERIVED_LEVEL;
			if (!level) {
				agri_path_key(where, sizeof(where), sub, "level_offset_m");
				agri_err_set(err, where, "profile \"%s\" derives no water level",
					     s->profile);
				return -EINVAL;
			}
		}
		/* Class registers (light-trap counts) name "<sensor>-<suffix>". */
		for (j = 0; j < c->profiles[s->profile_index].n_regs; j++) {
			const char *sfx = c->profiles[s->profile_index].regs[j].sensor_suffix;

			if (sfx[0] && strlen(s->name) + 1 + strlen(sfx) > AGRI_ID_MAX) {
				agri_path_key(where, sizeof(where), sub, "name");
				agri_err_set(err, where, "too long for profile \"%s\": its readings are "
					     "named \"%s-%s\" (at most %d characters)", s->profile,
					     s->name, sfx, AGRI_ID_MAX);
				return -EINVAL;
			}
		}
	}
	/* An RTU bus without a baud takes its first sensor's profile's. */
	for (i = 0; i < c->n_buses; i++) {
		struct station_bus *b = &c->buses[i];

		if (b->is_tcp || b->has_baud)
			continue;
		for (j = 0; j < c->n_sensors; j++) {
			const struct agri_profile *p =
				&c->profiles[c->sensors[j].profile_index];

			if (c->sensors[j].bus_index == (int)i && p->serial.baud > 0) {
				b->baud = p->serial.baud;
				break;
			}
		}
	}
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
