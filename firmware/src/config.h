/*
 * station.json (docs/interfaces.md §8): the station's configuration, read
 * through field tables (one per object, defaults in config_defaults()) and
 * then cross-checked (buses exist, sensor names unique, profiles load). The same
 * parser checks a file at start-up, a config pushed over MQTT and
 * `agrictl config validate`. docs/station.md explains every key.
 */
#ifndef STATION_CONFIG_H
#define STATION_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agri/err.h"
#include "agri/profile.h"
#include "agri/topic.h"

#define STATION_BUSES_MAX 8
#define STATION_SENSORS_MAX 32 /* = AGRI_STATUS_SENSORS_MAX */
#define STATION_PATH_MAX 256
#define STATION_CONFIG_MAX_BYTES (64 * 1024)
#define STATION_BROKER_URLS_MAX 8 /* broker.urls: the hubs a station may use */
#define STATION_URL_MAX 256

struct station_bus {
	char name[AGRI_ID_MAX + 1];
	bool is_tcp;
	/* rtu */
	char device[STATION_PATH_MAX];
	int64_t baud;
	char parity_s[2]; /* "N" | "E" | "O" */
	int64_t data_bits, stop_bits;
	bool has_baud; /* else the first sensor's profile's baud, else 9600 */
	/* tcp */
	char host[128];
	int64_t port;
	int64_t timeout_ms, gap_ms;
};

struct station_sensor {
	char name[AGRI_ID_MAX + 1];
	char bus[AGRI_ID_MAX + 1];
	int64_t slave;
	char profile[AGRI_ID_MAX + 1];
	double interval_s;
	double warmup_s;     /* delay before the first poll after the bus starts */
	int64_t stuck_reads; /* identical raw values in a row -> suspect; 0 = off */
	double level_offset_m; /* added to the profile's derived water level */
	double probe_level_m;  /* the probe's height on the level datum: below
				  it the station's water level says "dry" */
	bool has_level_offset, has_probe_level;
	bool maintenance;      /* its readings are q "maint"; probation does not
				  wait for it (agrictl maint ID on --sensor S) */
	/* Resolved by the cross-check: */
	int bus_index;
	int profile_index;
};

struct station_broker {
	/* The home hub: broker.url, or broker.urls[0]. */
	char url[STATION_URL_MAX];
	/* Every hub in the order they are tried (docs/station.md "Hubs"):
	 * broker.urls, or the one broker.url. */
	char urls[STATION_BROKER_URLS_MAX][STATION_URL_MAX];
	size_t n_urls;
	/* How long the home hub must have answered before a station on
	 * another hub goes back to it. */
	int64_t home_holddown_s;
	char username[128];
	char password_file[STATION_PATH_MAX];
	char ca_file[STATION_PATH_MAX];
	char cert_file[STATION_PATH_MAX];
	char key_file[STATION_PATH_MAX];
	int64_t keepalive_s;
	char topic_prefix[65];
};

struct station_config {
	char station[AGRI_ID_MAX + 1];
	int64_t version; /* 0 when the document has none */
	/* The technician whose signature the station verified on this config
	 * (trust.h); "" for the local file. Not a station.json key. */
	char signed_by[AGRI_ID_MAX + 1];
	struct {
		char name[128];
		double lat, lon;
	} site;
	struct station_broker broker;
	char state_dir[STATION_PATH_MAX];
	char profiles_dir[STATION_PATH_MAX];
	int64_t spool_max_mb;
	double publish_interval_s;
	double ack_timeout_s;
	/* A pushed config runs on probation this long: acked "applied" once
	 * every bus opened and every sensor answered, else rolled back and
	 * "rejected" (docs/station.md). 0: acked at once. */
	double probation_s;
	bool maintenance; /* the whole station, as <state_dir>/maintenance */
	struct {
		char device[STATION_PATH_MAX]; /* "" = none; else /dev/watchdog[N] */
		int64_t timeout_s;
	} watchdog;
	size_t n_buses;
	struct station_bus buses[STATION_BUSES_MAX];
	size_t n_sensors;
	struct station_sensor sensors[STATION_SENSORS_MAX];
	size_t n_profiles; /* distinct profiles the sensors use */
	struct agri_profile profiles[STATION_SENSORS_MAX];
};

/*
 * Parses and validates a station.json document. base_path is the file the
 * document came from (relative paths resolve against its directory; for a
 * pushed config, the station's own config file). Returns 0, or -EINVAL /
 * -EBADMSG with *err ("sensors[2].bus: no bus named \"x\""). cfg is
 * overwritten (~230 KiB: allocate it once).
 */
int station_config_parse(const char *json, size_t len, const char *base_path,
			 struct station_config *cfg, struct agri_err *err);

/* Reads path and parses it; -errno when unreadable (with *err). */
int station_config_load(const char *path, struct station_config *cfg,
			struct agri_err *err);

/* True when a and b differ in something that needs a restart (station id,
 * broker, state_dir); writes the first such key to what. */
bool station_config_needs_restart(const struct station_config *a,
				  const struct station_config *b,
				  const char **what);

/*
 * The closed schema of a pushed config, beyond what every config obeys
 * (watchdog.device only /dev/watchdog[N]): pushed must keep the running
 * config's station, broker, state_dir and profiles_dir, and each RTU bus
 * names /dev/tty* or /dev/serial* (no "..") or a device running already
 * uses. Returns 0, or -EINVAL with *err ("station: this config is for
 * ..."). Both are parsed configs (paths resolved).
 */
int station_config_remote_check(const struct station_config *running,
				const struct station_config *pushed,
				struct agri_err *err);

#endif
