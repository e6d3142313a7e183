/*
 * gateway.json (docs/interfaces.md §9): read through tables (agri_cfg_read), then a
 * cross-field check. Every section is validated even where a later part
 * implements it; unknown keys are errors. Relative paths are resolved
 * against the config file's directory; secrets (broker password, HTTP
 * token) are read from their files here and never logged.
 * Shared with agrictl (`agrictl config validate`).
 */
#ifndef GATEWAY_CONFIG_H
#define GATEWAY_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "agri/err.h"

#define GW_NAME_MAX 64
#define GW_URL_MAX 512
#define GW_WEBHOOKS_MAX 16
#define GW_SMTP_TO_MAX 16
#define GW_SECRET_MAX 256
#define GW_SMS_TO_MAX 16
#define GW_SMS_BODY_MAX 1024
#define GW_SITES_MAX 256
#define GW_SITE_TEXT_MAX 80  /* a place or district name, UTF-8 bytes + NUL */
#define GW_SITE_CROPS_MAX 6
#define GW_SITE_NEIGHBOURS_MAX 4 /* stations a site's probes are compared with */
#define GW_SITE_CROP_MAX 16  /* a crop key ("durian", "rice"), + NUL */
#define GW_HTTP_HOSTS_MAX 16
#define GW_HOST_MAX 128
/* An API token's least length: 32 random bytes in base64url (agrictl token
 * new); 64 in hex. */
#define GW_TOKEN_MIN 43

struct gateway_webhook {
	char name[GW_NAME_MAX];
	char url[GW_URL_MAX];
};

/* A station's place, from the optional "sites" section: what the API and
 * the dashboard show beside the station's code (docs/dashboard.md). */
struct gateway_site {
	char station[33];                /* the station id (AGRI_ID_MAX + 1) */
	char name[GW_SITE_TEXT_MAX];     /* "Cửa Tiểu (Tân Thành)" */
	char district[GW_SITE_TEXT_MAX]; /* "Tân Phú Đông"; "" = not given */
	size_t n_crops;
	char crops[GW_SITE_CROPS_MAX][GW_SITE_CROP_MAX]; /* crop keys grown there */
	/* The intake sluice (docs/forecast.md "Sluices and tides"): its
	 * operators' salinity limit and, with has_min_level, the water level
	 * (m on the station's datum) gravity intake needs. */
	bool has_sluice, has_min_level;
	double sluice_below_g_l;
	double sluice_min_level_m;
	/* Stations on the same water whose salinity this one's is compared
	 * with, to catch a probe that drifts low (docs/gateway.md "Drift"). */
	size_t n_neighbours;
	char neighbours[GW_SITE_NEIGHBOURS_MAX][33];
};

struct gateway_config {
	char file[PATH_MAX]; /* the config file itself */
	struct {
		char url[GW_URL_MAX];
		char username[GW_NAME_MAX];
		char password_file[PATH_MAX];
		char password[GW_SECRET_MAX]; /* read from password_file */
		char client_id[GW_NAME_MAX + 1];
		char shared_group[GW_NAME_MAX]; /* "" = none */
		char topic_prefix[65];
		char ca_file[PATH_MAX], cert_file[PATH_MAX], key_file[PATH_MAX];
		/* The URL stations use for this hub (as in their broker.urls),
		 * said in the hub status so that the hubs' panel can tell which
		 * stations are on which hub; "" = not said (docs/dashboard.md). */
		char station_url[256];
		int64_t keepalive_s;
		int64_t session_expiry_s;
	} broker;
	struct {
		char path[PATH_MAX];
		int64_t retention_days;
		char synchronous[8];  /* "full" (default) | "normal" */
		bool sync_full;
		int64_t cache_kib;
		int64_t queue_max;    /* messages held in memory for the writer */
		int64_t batch_max;    /* messages per commit */
	} db;
	/* What one station may cost the hub (docs/security.md): past a budget
	 * the excess is a dead letter with reason "quota" and the station
	 * gets a "misbehaving" alert; readings outside the clock window are
	 * dead letters with reason "clock". */
	struct {
		int64_t series_per_station;   /* distinct (sensor, metric) */
		int64_t series_idle_days;     /* a series silent this long may be retired */
		int64_t readings_per_min;     /* token bucket, burst = 2 minutes' worth */
		int64_t messages_per_min;
		int64_t kib_per_min;
		int64_t max_clock_skew_s;     /* readings stamped later than now + this */
		int64_t max_backlog_days;     /* ... or older than now - this */
		int64_t alert_keys_per_station;
		int64_t open_alerts_per_station;
		int64_t dead_letters_per_min; /* stored per station; the rest only counted */
	} limits;
	struct {
		int64_t max_mb;          /* all dead letters; the oldest go first */
		int64_t max_age_days;
		int64_t payload_max_kib; /* a payload is kept up to this prefix */
	} dead_letters;
	char rules_file[PATH_MAX]; /* "" = no rules */
	char recipients_file[PATH_MAX]; /* people and the policy (docs/notify.md); "" = none */
	struct {
		size_t n_webhooks;
		struct gateway_webhook webhooks[GW_WEBHOOKS_MAX];
		bool has_smtp;
		struct {
			char name[GW_NAME_MAX];
			char url[GW_URL_MAX];
			char from[GW_NAME_MAX * 2];
			size_t n_to;
			char to[GW_SMTP_TO_MAX][GW_NAME_MAX * 2];
			char username[GW_NAME_MAX];
			char password_file[PATH_MAX];
			char password[GW_SECRET_MAX]; /* read from password_file */
			/* "required" (default): STARTTLS or smtps://, verified;
			 * "none": plain SMTP, a loopback host only. */
			char tls[16];
			char ca_file[PATH_MAX]; /* "" = the system's CAs */
		} smtp;
		bool has_sms; /* an HTTP SMS gateway (docs/notify.md) */
		struct {
			char name[GW_NAME_MAX];
			char url[GW_URL_MAX];       /* may hold {to} {text} */
			char method[8];             /* "POST" (default) | "PUT" | "GET" */
			char body[GW_SMS_BODY_MAX]; /* template with {to} {text} */
			char content_type[GW_NAME_MAX * 2]; /* default form-urlencoded */
			size_t n_to;
			char to[GW_SMS_TO_MAX][32];
			char username[GW_NAME_MAX]; /* HTTP basic auth, optional */
			char password_file[PATH_MAX];
			char password[GW_SECRET_MAX];
		} sms;
	} notify;
	struct {
		bool has_postgres;
		char postgres_conninfo[GW_URL_MAX];
		/* Derived, not a key: the conninfo's sslmode, else "verify-full"
		 * for a host that is not local, "prefer" for loopback or a Unix
		 * socket (docs/upstream.md). */
		char postgres_sslmode[16];
		bool has_sensorthings;
		char sensorthings_url[GW_URL_MAX];
	} upstream;
	struct {
		bool enabled;
		char listen[GW_NAME_MAX];
		char host[GW_NAME_MAX];
		int port;
		char token_file[PATH_MAX];
		char token[GW_SECRET_MAX]; /* read from token_file: reads and writes */
		char read_token_file[PATH_MAX];
		char read_token[GW_SECRET_MAX]; /* read from read_token_file: reads */
		/* Reads without a token (GET /api/..., /metrics). Default: true
		 * when listen is a loopback address, false otherwise. */
		bool public_reads, has_public_reads;
		/* Names the API answers to in Host and Origin, beside the loopback
		 * names and the listen address (DNS rebinding; docs/api.md). */
		size_t n_hosts;
		char hosts[GW_HTTP_HOSTS_MAX][GW_HOST_MAX];
		/* Each client's (address; an IPv6 /64) token bucket for requests
		 * without a valid token: rate_per_s refill, rate_burst deep. */
		int64_t rate_per_s, rate_burst;
		/* HTTPS when both are set (PEM); docs/update.md */
		char cert_file[PATH_MAX];
		char key_file[PATH_MAX];
		/* Update bundles served to stations (GET /api/v1/bundles/NAME,
		 * HTTP Basic against the broker's station password file). */
		char bundles_dir[PATH_MAX];
		char stations_passwd_file[PATH_MAX];
	} http;
	struct {
		bool enabled; /* default true */
		/* Channels told when a new intake window or advisory opens. */
		size_t n_notify;
		char notify[GW_WEBHOOKS_MAX + 2][GW_NAME_MAX];
		/* Advisory biology, days after the peak night (docs/forecast.md). */
		int64_t sow_from_d, sow_to_d, hatch_from_d, hatch_to_d;
		/* Intake windows keep hi below threshold x (1 - margin). */
		double margin;
	} forecast;
	struct {
		size_t n;
		struct gateway_site site[GW_SITES_MAX];
	} sites;
	/* Scheduled backups of the database (docs/recovery.md): every
	 * every_h hours a consistent copy into dir, the newest keep kept.
	 * dir "" = none scheduled (agri-gateway backup DEST still works). */
	struct {
		char dir[PATH_MAX];
		int64_t every_h; /* default 24 */
		int64_t keep;    /* default 7 */
	} backup;
	/* Two hubs, one province (docs/ha.md): notification claims in the
	 * province's PostgreSQL, so that one hub sends each transition.
	 * enabled false (no "ha" section): the gateway is the only hub. */
	struct {
		bool enabled;
		char hub_id[GW_NAME_MAX];  /* [A-Za-z0-9_-], 1-32 */
		char claims[GW_URL_MAX];   /* a libpq conninfo */
		/* Derived, not a key: claims' sslmode, as upstream.postgres's. */
		char claims_sslmode[16];
		int64_t priority;          /* 1: sends at once without PostgreSQL */
		int64_t takeover_s;        /* 2: after the 1's status said offline this long */
		/* Catch-up with the other hub (docs/ha.md "Catch-up"): on by
		 * default with ha; digests over catchup_window_h hours, every
		 * catchup_every_s, of readings older than catchup_settle_s. */
		bool catchup;
		int64_t catchup_window_h;  /* 1-720, default 48 */
		int64_t catchup_every_s;   /* 2-3600, default 120 */
		int64_t catchup_settle_s;  /* 0-3600, default 600 */
	} ha;
	/* "Calibration due" (docs/gateway.md "Calibration"): a sensor's last
	 * recorded calibration older than this raises its station's built-in
	 * calibration-due alert. 0: off. */
	struct {
		double interval_days; /* default 180 */
	} calibration;
	/* A probe that drifts low against its neighbours (sites[].neighbours;
	 * docs/gateway.md "Drift"): over window_days of daily medians, the
	 * ratio to every neighbour falls by fall_pct or more, on days when
	 * both medians are at least min_g_l. */
	struct {
		double window_days; /* default 7 */
		double fall_pct;    /* default 10 */
		double min_g_l;     /* default 0.2 */
	} drift;
};

/* Fills *cfg with the defaults (what an absent key means). */
void gateway_config_defaults(struct gateway_config *cfg);

/*
 * Loads and validates path into *cfg. Returns 0, or a negative errno with
 * *err set to the failing path and reason (print "FILE: path: reason",
 * exit 78). Reads the secret files it names.
 */
int gateway_config_load(const char *path, struct gateway_config *cfg,
			struct agri_err *err);

#endif
