/*
 * The update agent's state machine (update.h, docs/update.md):
 *
 *   command (signed, new id) -> downloading -> installing -> rebooting
 *      -> [boot into the new slot] -> checking -> good
 *                                           \-> (health failed: mark-bad,
 *                                                reboot) -> rolled-back
 *   any refusal (signature, station, compatible, size, download,
 *   SHA-256, rauc install) -> failed, the running system untouched.
 *
 * The state lives in STATE_DIR/update/state.json, written atomically at
 * each transition, so a power cut at any point resumes from the last one:
 * a download goes on from the bytes on disk (Range), an install starts
 * again from the verified bundle (RAUC marked the target slot bad before
 * writing it and activates it only after the last byte, so a cut install
 * leaves the old slot primary).
 *
 * Locking rules: `lock` guards `s` (the persisted state) and the worker
 * flags; the worker thread writes `s` only under it and persists it under
 * it. Everything else belongs to the main thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/log.h"
#include "agri/sign.h"
#include "agri/util.h"
#include "trust.h"
#include "update.h"
#include "update_fetch.h"
#include "update_rauc.h"

#define LOG "update"
#define ARGS_MAX 8
#define VERSION_MAX 64
#define BUNDLE_NAME_MAX 128
#define ERROR_MAX 256
#define RETRY_BASE_MS 5000
#define RETRY_CAP_MS 300000
#define INSTALL_TIMEOUT_S 3600
#define REBOOT_DELAY_MS 2000 /* let the "rebooting" status reach the broker */

/* update.json */
struct update_config {
	char hub_url[256];
	char ca_file[STATION_PATH_MAX];
	char rauc[STATION_PATH_MAX];
	char reboot[ARGS_MAX][STATION_PATH_MAX];
	size_t n_reboot;
	double health_timeout_s;
	int64_t download_kbps;
	int64_t max_bundle_mb;
};

/* The persisted state (state.json). */
struct ustate {
	int64_t id;
	char version[VERSION_MAX];
	char bundle[BUNDLE_NAME_MAX + 1];
	uint64_t size;
	char sha256[65];
	char compatible[RAUC_NAME_MAX];
	char state[16]; /* "" idle, downloading, installing, rebooting, checking,
			   good, rolled-back, failed */
	char error[ERROR_MAX];
	char from[RAUC_NAME_MAX], target[RAUC_NAME_MAX];
};

struct update {
	bool enabled;
	char off_why[160];
	struct update_config cfg;
	char station[AGRI_ID_MAX + 1];
	char username[128];
	char password_file[STATION_PATH_MAX];
	char trust_dir[STATION_PATH_MAX + 16];
	char dir[STATION_PATH_MAX + 16];
	char state_path[STATION_PATH_MAX + 64];
	char part_path[STATION_PATH_MAX + 64];
	char bundle_path[STATION_PATH_MAX + 64];
	char topic[AGRI_TOPIC_MAX];
	void (*wake)(void *);
	void *wake_ctx;

	pthread_mutex_t lock;
	struct ustate s;
	bool worker_live;       /* a worker thread exists (join it when done) */
	bool worker_done;
	bool reboot_due;        /* the worker installed: reboot soon */
	pthread_t worker;
	atomic_bool cancel;
	atomic_bool dirty;      /* the state changed: publish the status */
	atomic_uint_fast64_t have;

	/* main thread only */
	struct rauc_status rs;
	bool rs_ok;
	char *pending;         /* a command waiting for the worker to finish */
	size_t pending_len;
	bool checking;
	int64_t check_deadline;
	int64_t reboot_at;
	char *doc;
};

/* ---- update.json ---- */

static int parse_reboot(const cJSON *item, void *field, const char *path,
			struct agri_err *err)
{
	struct update_config *c = (struct update_config *)((char *)field -
							   offsetof(struct update_config, reboot));
	const cJSON *e;
	size_t n = 0;

	if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) < 1 ||
	    cJSON_GetArraySize(item) > ARGS_MAX) {
		agri_err_set(err, path, "expected an array of 1 to %d strings", ARGS_MAX);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, item) {
		if (!cJSON_IsString(e) || !e->valuestring[0] ||
		    strlen(e->valuestring) >= sizeof(c->reboot[0])) {
			agri_err_set(err, path, "expected non-empty strings");
			return -EINVAL;
		}
		snprintf(c->reboot[n++], sizeof(c->reboot[0]), "%s", e->valuestring);
	}
	c->n_reboot = n;
	return 0;
}

static const struct agri_cfg_field config_fields[] = {
	AGRI_FIELD_STR(struct update_config, "hub_url", hub_url, true),
	AGRI_FIELD_STR(struct update_config, "ca_file", ca_file, false),
	AGRI_FIELD_STR(struct update_config, "rauc", rauc, false),
	AGRI_FIELD_CUSTOM(struct update_config, "reboot_command", reboot, parse_reboot, false),
	AGRI_FIELD_DOUBLE(struct update_config, "health_timeout_s", health_timeout_s, 1, 3600),
	AGRI_FIELD_INT(struct update_config, "download_kbps", download_kbps, 0, 1000000),
	AGRI_FIELD_INT(struct update_config, "max_bundle_mb", max_bundle_mb, 1, 65536),
};

static void config_defaults(struct update_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->rauc, sizeof(c->rauc), "rauc");
	snprintf(c->reboot[0], sizeof(c->reboot[0]), "systemctl");
	snprintf(c->reboot[1], sizeof(c->reboot[1]), "reboot");
	c->n_reboot = 2;
	c->health_timeout_s = 300;
	c->max_bundle_mb = 1024;
}

/* Reads update.json beside config_path. Returns 0, -ENOENT when there is
 * none, or -EINVAL with *err. */
static int config_load(const char *config_path, const struct station_config *scfg,
		       struct update_config *c, struct agri_err *err)
{
	char path[STATION_PATH_MAX + 16], *buf = NULL;
	cJSON *doc = NULL;
	size_t len;
	int rc;

	config_defaults(c);
	if (util_path_relative_to(path, sizeof(path), config_path, UPDATE_FILE) < 0)
		return -ENAMETOOLONG;
	rc = util_read_file(path, 64 * 1024, &buf, &len);
	if (rc == -ENOENT)
		return rc;
	if (rc < 0) {
		agri_err_set(err, "", "cannot read: %s", strerror(-rc));
		return -EINVAL;
	}
	rc = agri_json_parse(buf, len, 64 * 1024, 8, &doc, err);
	if (rc == 0)
		rc = agri_cfg_read(doc, "", config_fields, AGRI_ARRAY_SIZE(config_fields), c,
				   false, err);
	if (rc == 0 && strncmp(c->hub_url, "https://", 8)) {
		/* The station's password goes with every request: never in clear. */
		agri_err_set(err, "hub_url", "expected an https:// URL");
		rc = -EINVAL;
	}
	if (rc == 0) {
		size_t n = strlen(c->hub_url);

		while (n > 0 && c->hub_url[n - 1] == '/')
			c->hub_url[--n] = '\0';
		if (!c->ca_file[0])
			snprintf(c->ca_file, sizeof(c->ca_file), "%s", scfg->broker.ca_file);
		else if (c->ca_file[0] != '/') {
			char tmp[STATION_PATH_MAX];

			if (util_path_relative_to(tmp, sizeof(tmp), config_path, c->ca_file) < 0) {
				agri_err_set(err, "ca_file", "path too long");
				rc = -EINVAL;
			} else {
				snprintf(c->ca_file, sizeof(c->ca_file), "%s", tmp);
			}
		}
	}
	cJSON_Delete(doc);
	free(buf);
	return rc < 0 ? -EINVAL : 0;
}

/* ---- the persisted state ---- */

static void json_str(char *out, size_t cap, size_t *at, const char *s)
{
	size_t n = *at;

	if (n + 1 < cap)
		out[n++] = '"';
	for (; *s && n + 7 < cap; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	if (n + 1 < cap)
		out[n++] = '"';
	out[n < cap ? n : cap - 1] = '\0';
	*at = n;
}

static void addf(char *out, size_t cap, size_t *at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void addf(char *out, size_t cap, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *at, cap - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n < cap - *at ? (size_t)n : cap - *at - 1;
}

/* Writes u->s to state.json. Caller holds lock (or is the only thread). */
static void state_save(struct update *u)
{
	char buf[2048];
	size_t n = 0;
	int rc;

	addf(buf, sizeof(buf), &n, "{\"id\":%" PRId64 ",\"version\":", u->s.id);
	json_str(buf, sizeof(buf), &n, u->s.version);
	addf(buf, sizeof(buf), &n, ",\"bundle\":");
	json_str(buf, sizeof(buf), &n, u->s.bundle);
	addf(buf, sizeof(buf), &n, ",\"size\":%" PRIu64 ",\"sha256\":", u->s.size);
	json_str(buf, sizeof(buf), &n, u->s.sha256);
	addf(buf, sizeof(buf), &n, ",\"compatible\":");
	json_str(buf, sizeof(buf), &n, u->s.compatible);
	addf(buf, sizeof(buf), &n, ",\"state\":");
	json_str(buf, sizeof(buf), &n, u->s.state);
	addf(buf, sizeof(buf), &n, ",\"error\":");
	json_str(buf, sizeof(buf), &n, u->s.error);
	addf(buf, sizeof(buf), &n, ",\"from\":");
	json_str(buf, sizeof(buf), &n, u->s.from);
	addf(buf, sizeof(buf), &n, ",\"target\":");
	json_str(buf, sizeof(buf), &n, u->s.target);
	addf(buf, sizeof(buf), &n, "}\n");
	rc = util_write_file_atomic(u->state_path, buf, n);
	if (rc < 0)
		log_error(LOG, "cannot write path=%s: %s", u->state_path, strerror(-rc));
}

static void state_load(struct update *u)
{
	char *buf = NULL;
	size_t len;
	cJSON *doc;
	const cJSON *v;

	if (util_read_file(u->state_path, 64 * 1024, &buf, &len) < 0)
		return;
	doc = cJSON_ParseWithLength(buf, len);
	free(buf);
	if (!doc) {
		log_warn(LOG, "state file unreadable, ignored path=%s", u->state_path);
		return;
	}
#define S(k, f) do { v = cJSON_GetObjectItemCaseSensitive(doc, k); \
	if (cJSON_IsString(v)) snprintf(u->s.f, sizeof(u->s.f), "%s", v->valuestring); } while (0)
	S("version", version); S("bundle", bundle); S("sha256", sha256);
	S("compatible", compatible); S("state", state); S("error", error);
	S("from", from); S("target", target);
#undef S
	v = cJSON_GetObjectItemCaseSensitive(doc, "id");
	if (cJSON_IsNumber(v))
		u->s.id = (int64_t)v->valuedouble;
	v = cJSON_GetObjectItemCaseSensitive(doc, "size");
	if (cJSON_IsNumber(v) && v->valuedouble >= 0)
		u->s.size = (uint64_t)v->valuedouble;
	cJSON_Delete(doc);
}

/* Sets state (and error, "" to clear) and persists; any thread. */
static void set_state(struct update *u, const char *state, const char *error)
{
	pthread_mutex_lock(&u->lock);
	snprintf(u->s.state, sizeof(u->s.state), "%s", state);
	snprintf(u->s.error, sizeof(u->s.error), "%s", error ? error : "");
	state_save(u);
	pthread_mutex_unlock(&u->lock);
	atomic_store(&u->dirty, true);
	if (error && error[0])
		log_warn(LOG, "state=%s version=%s error=\"%s\"", state, u->s.version, error);
	else
		log_info(LOG, "state=%s version=%s", state, u->s.version);
	if (u->wake)
		u->wake(u->wake_ctx);
}

/* ---- the worker: download, verify, install ---- */

static bool sleep_cancellable(struct update *u, int64_t ms)
{
	int64_t until = util_mono_ms() + ms;

	while (util_mono_ms() < until) {
		if (atomic_load(&u->cancel))
			return false;
		util_sleep_ms(200);
	}
	return !atomic_load(&u->cancel);
}

static int worker_download(struct update *u)
{
	char url[512], why[ERROR_MAX], hex[65], pass[256] = "", msg[ERROR_MAX + 64];
	struct fetch_req r = {0};
	uint32_t rng = (uint32_t)util_now_ms();
	int attempt = 0, rc;

	snprintf(url, sizeof(url), "%s/api/v1/bundles/%s", u->cfg.hub_url, u->s.bundle);
	if (u->password_file[0] && util_read_secret(u->password_file, pass, sizeof(pass)) < 0) {
		set_state(u, "failed", "download: cannot read the station's password file");
		return -EPERM;
	}
	r.url = url;
	r.path = u->part_path;
	r.username = u->username;
	r.password = pass;
	r.ca_file = u->cfg.ca_file;
	r.size = u->s.size;
	r.max_bps = u->cfg.download_kbps * 1024;
	r.cancel = &u->cancel;
	r.have = &u->have;
	for (;;) {
		struct stat sb;

		if (stat(u->part_path, &sb) == 0 && sb.st_size > 0 &&
		    (uint64_t)sb.st_size < u->s.size)
			log_info(LOG, "download resumed from=%lld size=%" PRIu64,
				 (long long)sb.st_size, u->s.size);
		rc = fetch_run(&r, why, sizeof(why));
		if (rc != -EAGAIN)
			break;
		snprintf(msg, sizeof(msg), "download: %s (will retry)", why);
		set_state(u, "downloading", msg);
		if (!sleep_cancellable(u, util_backoff_ms(attempt++, RETRY_BASE_MS, RETRY_CAP_MS,
							  &rng)))
			return -ECANCELED;
	}
	explicit_bzero(pass, sizeof(pass));
	if (rc == -ECANCELED)
		return rc;
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "download: %s", why);
		unlink(u->part_path);
		set_state(u, "failed", msg);
		return rc;
	}
	rc = fetch_sha256(u->part_path, hex);
	if (rc < 0 || strcmp(hex, u->s.sha256)) {
		snprintf(msg, sizeof(msg), "download: SHA-256 %s does not match the command's %.16s...: "
			 "corrupted", rc < 0 ? "unreadable" : hex, u->s.sha256);
		unlink(u->part_path);
		set_state(u, "failed", msg);
		return -EBADMSG;
	}
	if (rename(u->part_path, u->bundle_path) < 0) {
		snprintf(msg, sizeof(msg), "download: cannot rename: %s", strerror(errno));
		set_state(u, "failed", msg);
		return -EIO;
	}
	log_info(LOG, "downloaded and verified bundle=%s bytes=%" PRIu64, u->s.bundle, u->s.size);
	return 0;
}

static void *worker_main(void *arg)
{
	struct update *u = arg;
	char *argv[] = {u->cfg.rauc, "install", u->bundle_path, NULL};
	char err[ERROR_MAX], msg[ERROR_MAX + 32], hex[65], out[8192];
	struct rauc_status rs;
	int rc;

	if (access(u->bundle_path, F_OK) == 0) {
		/* A bundle from before a power cut: verify it again. */
		if (fetch_sha256(u->bundle_path, hex) < 0 || strcmp(hex, u->s.sha256)) {
			unlink(u->bundle_path);
			set_state(u, "downloading", NULL);
		}
	}
	if (access(u->bundle_path, F_OK) != 0) {
		if (strcmp(u->s.state, "downloading"))
			set_state(u, "downloading", NULL);
		if (worker_download(u) < 0)
			goto done;
	}
	set_state(u, "installing", NULL);
	for (int tries = 0;; tries++) {
		rc = rauc_run(argv, INSTALL_TIMEOUT_S, out, sizeof(out), err, sizeof(err));
		/* The rauc service may still be busy with an install this
		 * station started before it was stopped: let it finish. */
		if (rc == 0 || tries >= 120 || (!strstr(out, "lready processing") &&
						!strstr(err, "lready processing")))
			break;
		log_info(LOG, "rauc is busy; trying the install again in 5 s");
		if (!sleep_cancellable(u, 5000))
			goto done;
	}
	if (rc != 0) {
		/* rauc says why on its standard output: "LastError: ..." */
		const char *le = strstr(out, "LastError: ");

		if (le) {
			size_t n = strcspn(le + 11, "\r\n");

			snprintf(err, sizeof(err), "%.*s", (int)(n < sizeof(err) - 1 ? n : sizeof(err) - 1),
				 le + 11);
		}
		snprintf(msg, sizeof(msg), "install: %s", err[0] ? err : "rauc install failed");
		unlink(u->bundle_path);
		set_state(u, "failed", msg);
		goto done;
	}
	unlink(u->bundle_path);
	if (rauc_status(u->cfg.rauc, &rs, err, sizeof(err)) < 0 || !rs.primary[0]) {
		snprintf(msg, sizeof(msg), "install: installed, but %s", err[0] ? err :
			 "rauc names no primary slot");
		set_state(u, "failed", msg);
		goto done;
	}
	pthread_mutex_lock(&u->lock);
	snprintf(u->s.from, sizeof(u->s.from), "%s", rs.booted);
	snprintf(u->s.target, sizeof(u->s.target), "%s", rs.primary);
	u->reboot_due = true;
	pthread_mutex_unlock(&u->lock);
	set_state(u, "rebooting", NULL);
done:
	pthread_mutex_lock(&u->lock);
	u->worker_done = true;
	pthread_mutex_unlock(&u->lock);
	if (u->wake)
		u->wake(u->wake_ctx);
	return NULL;
}

static int worker_start(struct update *u)
{
	atomic_store(&u->cancel, false);
	u->worker_done = false;
	if (pthread_create(&u->worker, NULL, worker_main, u) != 0) {
		set_state(u, "failed", "cannot start the update thread");
		return -EAGAIN;
	}
	u->worker_live = true;
	return 0;
}

static void worker_reap(struct update *u)
{
	bool done;

	if (!u->worker_live)
		return;
	pthread_mutex_lock(&u->lock);
	done = u->worker_done;
	pthread_mutex_unlock(&u->lock);
	if (!done)
		return;
	pthread_join(u->worker, NULL);
	u->worker_live = false;
	atomic_store(&u->dirty, true);
}

/* ---- commands ---- */

struct command {
	int64_t v, id;
	char station[AGRI_ID_MAX + 1];
	char version[VERSION_MAX];
	char bundle[BUNDLE_NAME_MAX + 1];
	int64_t size;
	char sha256[65];
	char compatible[RAUC_NAME_MAX];
};

static const struct agri_cfg_field command_fields[] = {
	AGRI_FIELD(struct command, "v", AGRI_CFG_INT, v, true, AGRI_RANGE(1, 1)),
	AGRI_FIELD_STR(struct command, "station", station, true),
	AGRI_FIELD(struct command, "id", AGRI_CFG_INT, id, true, AGRI_RANGE(1, 9007199254740991.0)),
	AGRI_FIELD_STR(struct command, "version", version, true),
	AGRI_FIELD_STR(struct command, "bundle", bundle, true),
	AGRI_FIELD(struct command, "size", AGRI_CFG_INT, size, true,
		   AGRI_RANGE(1, 9007199254740991.0)),
	AGRI_FIELD_STR(struct command, "sha256", sha256, true),
	AGRI_FIELD_STR(struct command, "compatible", compatible, true),
};

static bool bundle_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > BUNDLE_NAME_MAX || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

static bool hex64_valid(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* Reports a refusal that is not persisted (the command was not
 * trustworthy enough to take its id): status only. */
static void refuse_unsigned(struct update *u, const char *why)
{
	pthread_mutex_lock(&u->lock);
	snprintf(u->s.state, sizeof(u->s.state), "failed");
	snprintf(u->s.error, sizeof(u->s.error), "%s", why);
	pthread_mutex_unlock(&u->lock);
	log_warn(LOG, "update command refused: %s", why);
	atomic_store(&u->dirty, true);
}

static void command_apply(struct update *u, const char *msg, size_t len)
{
	struct agri_err err = {{0}, {0}};
	char why[ERROR_MAX], by[AGRI_ID_MAX + 1] = "";
	struct command c = {0};
	cJSON *doc = NULL;
	size_t doc_len;
	int rc;

	if (!u->enabled) {
		refuse_unsigned(u, u->off_why);
		return;
	}
	rc = trust_open(u->trust_dir, msg, len, u->doc, UPDATE_CMD_MAX, &doc_len, by, &err);
	if (rc == 0)
		rc = agri_json_parse(u->doc, doc_len, UPDATE_CMD_MAX, 4, &doc, &err);
	if (rc == 0)
		rc = agri_cfg_read(doc, "", command_fields, AGRI_ARRAY_SIZE(command_fields), &c,
				   false, &err);
	cJSON_Delete(doc);
	if (rc < 0) {
		agri_err_format(&err, why, sizeof(why));
		refuse_unsigned(u, why);
		return;
	}
	if (strcmp(c.station, u->station)) {
		snprintf(why, sizeof(why), "station: this command is for \"%s\", not this station",
			 c.station);
		refuse_unsigned(u, why);
		return;
	}
	if (c.id <= u->s.id) {
		log_debug(LOG, "update command ignored id=%" PRId64 " handled=%" PRId64, c.id,
			  u->s.id);
		return;
	}
	log_info(LOG, "update command id=%" PRId64 " version=%s bundle=%s signed_by=%s", c.id,
		 c.version, c.bundle, by);
	pthread_mutex_lock(&u->lock);
	memset(&u->s, 0, sizeof(u->s));
	u->s.id = c.id;
	snprintf(u->s.version, sizeof(u->s.version), "%s", c.version);
	snprintf(u->s.bundle, sizeof(u->s.bundle), "%s", c.bundle);
	u->s.size = (uint64_t)c.size;
	snprintf(u->s.sha256, sizeof(u->s.sha256), "%s", c.sha256);
	snprintf(u->s.compatible, sizeof(u->s.compatible), "%s", c.compatible);
	snprintf(u->s.from, sizeof(u->s.from), "%s", u->rs.booted);
	pthread_mutex_unlock(&u->lock);
	atomic_store(&u->have, 0);
	unlink(u->part_path);
	unlink(u->bundle_path);
	atomic_store(&u->dirty, true);

	if (!bundle_name_valid(c.bundle) || !hex64_valid(c.sha256)) {
		set_state(u, "failed", "command: bundle must be [A-Za-z0-9._-]{1,128}, "
			  "sha256 64 lowercase hex digits");
		return;
	}
	if (!u->rs_ok) {
		char rerr[ERROR_MAX];

		u->rs_ok = rauc_status(u->cfg.rauc, &u->rs, rerr, sizeof(rerr)) == 0;
	}
	if (!u->rs_ok) {
		set_state(u, "failed", "rauc: cannot tell which slot booted (is the rauc service "
			  "running?)");
		return;
	}
	if (strcmp(c.compatible, u->rs.compatible)) {
		snprintf(why, sizeof(why), "compatible: the bundle is for \"%s\", this station is "
			 "\"%s\"", c.compatible, u->rs.compatible);
		set_state(u, "failed", why);
		return;
	}
	if ((uint64_t)c.size > (uint64_t)u->cfg.max_bundle_mb << 20) {
		snprintf(why, sizeof(why), "size: %" PRId64 " bytes is above max_bundle_mb %" PRId64,
			 c.size, u->cfg.max_bundle_mb);
		set_state(u, "failed", why);
		return;
	}
	set_state(u, "downloading", NULL);
	worker_start(u);
}

/* True while an update is under way: the worker, a reboot due, a trial. */
static bool update_busy(struct update *u)
{
	bool reboot;

	pthread_mutex_lock(&u->lock);
	reboot = u->reboot_due;
	pthread_mutex_unlock(&u->lock);
	return u->worker_live || u->checking || reboot;
}

void update_command(struct update *u, const char *msg, size_t len)
{
	if (len == 0)
		return; /* retained command cleared */
	if (len > UPDATE_CMD_MAX) {
		refuse_unsigned(u, "command: larger than 4 KiB");
		return;
	}
	if (update_busy(u)) {
		/* One update at a time: a command that arrives meanwhile waits
		 * for the current one to end, its reboot and health check
		 * included (the newest one waiting wins). */
		memcpy(u->pending, msg, len);
		u->pending_len = len;
		return;
	}
	command_apply(u, msg, len);
}

/* ---- boot: resolve what the previous boot left ---- */

static void mark(struct update *u, const char *how, const char *slot)
{
	char *argv[] = {u->cfg.rauc, "status", (char *)how, (char *)slot, NULL};
	char err[ERROR_MAX];
	int rc = rauc_run(argv, 60, NULL, 0, err, sizeof(err));

	if (rc != 0)
		log_error(LOG, "rauc status %s %s failed rc=%d: %s", how, slot, rc, err);
}

static void resolve_boot(struct update *u)
{
	const char *st = u->s.state;

	if (!strcmp(st, "downloading") || !strcmp(st, "installing")) {
		log_info(LOG, "resuming after a restart state=%s version=%s", st, u->s.version);
		worker_start(u);
		return;
	}
	if (strcmp(st, "rebooting") && strcmp(st, "checking"))
		return;
	if (!strcmp(u->rs.booted, u->s.target)) {
		/* The new system: its health decides. */
		u->checking = true;
		u->check_deadline = util_mono_ms() + (int64_t)(u->cfg.health_timeout_s * 1000);
		set_state(u, "checking", NULL);
		return;
	}
	if (!strcmp(st, "rebooting") && !strcmp(u->rs.primary, u->s.target) &&
	    strcmp(u->rs.other_state, "bad")) {
		/* Installed, but the reboot did not happen (a crash before it). */
		log_info(LOG, "installed slot=%s, reboot pending", u->s.target);
		pthread_mutex_lock(&u->lock);
		u->reboot_due = true;
		pthread_mutex_unlock(&u->lock);
		u->reboot_at = util_mono_ms() + REBOOT_DELAY_MS;
		return;
	}
	/* Back on the old slot: the new one failed its health check or did
	 * not boot, and the bootloader fell back. Make the fallback final. */
	{
		char why[ERROR_MAX];

		if (u->s.error[0])
			snprintf(why, sizeof(why), "%s", u->s.error);
		else
			snprintf(why, sizeof(why), "slot %s did not come up healthy; booted %s again",
				 u->s.target, u->rs.booted);
		mark(u, "mark-good", "booted");
		mark(u, "mark-active", "booted");
		set_state(u, "rolled-back", why);
	}
}

/* ---- the station's side ---- */

int update_topic(const struct station_config *cfg, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s/update", cfg->broker.topic_prefix, cfg->station);

	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int update_open(const char *config_path, const struct station_config *cfg,
		void (*wake)(void *), void *ctx, struct update **out, struct agri_err *err)
{
	struct update *u = calloc(1, sizeof(*u));
	char rerr[ERROR_MAX];
	int rc;

	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	atomic_init(&u->cancel, false);
	atomic_init(&u->dirty, false);
	atomic_init(&u->have, 0);
	u->wake = wake;
	u->wake_ctx = ctx;
	u->pending = malloc(UPDATE_CMD_MAX);
	u->doc = malloc(UPDATE_CMD_MAX);
	if (!u->pending || !u->doc) {
		rc = -ENOMEM;
		goto fail;
	}
	snprintf(u->station, sizeof(u->station), "%s", cfg->station);
	snprintf(u->username, sizeof(u->username), "%s", cfg->broker.username);
	snprintf(u->password_file, sizeof(u->password_file), "%s", cfg->broker.password_file);
	update_topic(cfg, u->topic, sizeof(u->topic));
	if (trust_dir(config_path, u->trust_dir, sizeof(u->trust_dir)) < 0) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	snprintf(u->dir, sizeof(u->dir), "%s/update", cfg->state_dir);
	snprintf(u->state_path, sizeof(u->state_path), "%s/state.json", u->dir);
	snprintf(u->part_path, sizeof(u->part_path), "%s/bundle.raucb.part", u->dir);
	snprintf(u->bundle_path, sizeof(u->bundle_path), "%s/bundle.raucb", u->dir);

	rc = config_load(config_path, cfg, &u->cfg, err);
	if (rc == -ENOENT) {
		snprintf(u->off_why, sizeof(u->off_why), "updates are off: no %s beside the "
			 "station's config", UPDATE_FILE);
		*out = u;
		return 0;
	}
	if (rc < 0)
		goto fail;
	rc = util_mkdirs(u->dir, 0750);
	if (rc < 0) {
		agri_err_set(err, "", "cannot create %s: %s", u->dir, strerror(-rc));
		goto fail;
	}
	u->enabled = true;
	state_load(u);
	rc = rauc_status(u->cfg.rauc, &u->rs, rerr, sizeof(rerr));
	u->rs_ok = rc == 0;
	if (!u->rs_ok)
		log_error(LOG, "rauc status failed: %s", rerr);
	else
		log_info(LOG, "booted slot=%s system=%s compatible=%s", u->rs.booted,
			 u->rs.version[0] ? u->rs.version : "-", u->rs.compatible);
	if (u->rs_ok) {
		/* A slot the station runs on outside an update's trial is good:
		 * its boot counter starts again (rauc-mark-good.service's job).
		 * Before resolve_boot, which may start an install (the rauc
		 * service takes one method at a time). */
		if (strcmp(u->s.state, "rebooting") && strcmp(u->s.state, "checking"))
			mark(u, "mark-good", "booted");
		resolve_boot(u);
	}
	*out = u;
	return 0;
fail:
	update_free(u);
	return rc;
}

void update_free(struct update *u)
{
	if (!u)
		return;
	if (u->worker_live) {
		atomic_store(&u->cancel, true);
		/* An install in progress is not interrupted: rauc finishes it
		 * (or a power cut does, which the next boot resolves). */
		pthread_join(u->worker, NULL);
	}
	free(u->pending);
	free(u->doc);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static void reboot_now(struct update *u)
{
	char *argv[ARGS_MAX + 1];
	char err[ERROR_MAX];
	int rc;

	for (size_t i = 0; i < u->cfg.n_reboot; i++)
		argv[i] = u->cfg.reboot[i];
	argv[u->cfg.n_reboot] = NULL;
	log_info(LOG, "rebooting into slot=%s version=%s", u->s.target, u->s.version);
	rc = rauc_run(argv, 120, NULL, 0, err, sizeof(err));
	if (rc != 0) {
		log_error(LOG, "reboot command failed rc=%d: %s (trying again in 60 s)", rc, err);
		u->reboot_at = util_mono_ms() + 60000;
		return;
	}
	u->reboot_at = util_mono_ms() + 60000; /* still here a minute later: again */
}

static void health_step(struct update *u, const struct update_health *h)
{
	char why[ERROR_MAX];
	char *argv[] = {u->cfg.rauc, "status", "mark-good", "booted", NULL};
	int rc;

	if (h->connected && h->sensors_read && h->spool_ok) {
		rc = rauc_run(argv, 60, NULL, 0, why, sizeof(why));
		if (rc != 0) {
			log_error(LOG, "health check passed, but mark-good failed: %s", why);
			return; /* try again next turn, until the deadline */
		}
		u->checking = false;
		set_state(u, "good", NULL);
		return;
	}
	if (util_mono_ms() < u->check_deadline)
		return;
	snprintf(why, sizeof(why), "health check failed after %.0f s on slot %s: %s",
		 u->cfg.health_timeout_s, u->s.target,
		 !h->connected ? "broker not connected" :
		 !h->sensors_read ? "not every sensor was read" : "the spool was not written");
	u->checking = false;
	set_state(u, "checking", why);
	mark(u, "mark-bad", "booted");
	pthread_mutex_lock(&u->lock);
	u->reboot_due = true;
	pthread_mutex_unlock(&u->lock);
	u->reboot_at = util_mono_ms();
}

int update_tick(struct update *u, const struct update_health *h)
{
	int64_t now = util_mono_ms();
	bool reboot;
	int out = 0;

	worker_reap(u);
	if (u->pending_len && !update_busy(u)) {
		size_t len = u->pending_len;

		u->pending_len = 0;
		command_apply(u, u->pending, len);
	}
	if (u->checking) {
		health_step(u, h);
		if (u->checking && h->connected && h->sensors_read && !h->spool_ok)
			out |= UPDATE_WANT_SEAL;
	}
	pthread_mutex_lock(&u->lock);
	reboot = u->reboot_due;
	pthread_mutex_unlock(&u->lock);
	if (reboot) {
		if (u->reboot_at == 0)
			u->reboot_at = now + REBOOT_DELAY_MS;
		else if (now >= u->reboot_at)
			reboot_now(u);
	}
	if (atomic_exchange(&u->dirty, false))
		out |= UPDATE_DIRTY;
	return out;
}

int64_t update_next_ms(struct update *u, int64_t cap_ms)
{
	bool reboot;

	pthread_mutex_lock(&u->lock);
	reboot = u->reboot_due;
	pthread_mutex_unlock(&u->lock);
	if (u->checking || reboot)
		return cap_ms < 500 ? cap_ms : 500;
	return cap_ms;
}

size_t update_status_append(struct update *u, char *buf, size_t len, size_t cap)
{
	char tmp[1024];
	size_t n = 0;

	if (len < 2 || buf[len - 1] != '}')
		return len;
	if (u->rs_ok) {
		addf(tmp, sizeof(tmp), &n, ",\"system\":");
		json_str(tmp, sizeof(tmp), &n, u->rs.version);
		addf(tmp, sizeof(tmp), &n, ",\"slot\":");
		json_str(tmp, sizeof(tmp), &n, u->rs.booted);
		addf(tmp, sizeof(tmp), &n, ",\"compatible\":");
		json_str(tmp, sizeof(tmp), &n, u->rs.compatible);
	}
	pthread_mutex_lock(&u->lock);
	if (u->s.state[0]) {
		addf(tmp, sizeof(tmp), &n, ",\"update\":{\"id\":%" PRId64 ",\"version\":", u->s.id);
		json_str(tmp, sizeof(tmp), &n, u->s.version);
		addf(tmp, sizeof(tmp), &n, ",\"state\":");
		json_str(tmp, sizeof(tmp), &n, u->s.state);
		if (u->s.error[0]) {
			addf(tmp, sizeof(tmp), &n, ",\"error\":");
			json_str(tmp, sizeof(tmp), &n, u->s.error);
		}
		if (!strcmp(u->s.state, "downloading") && u->s.size)
			addf(tmp, sizeof(tmp), &n, ",\"progress\":%u",
			     (unsigned)(atomic_load(&u->have) * 100 / u->s.size));
		addf(tmp, sizeof(tmp), &n, "}");
	}
	pthread_mutex_unlock(&u->lock);
	if (n == 0 || n >= sizeof(tmp) - 1 || len - 1 + n + 1 > cap)
		return len;
	memcpy(buf + len - 1, tmp, n);
	buf[len - 1 + n] = '}';
	return len + n;
}
