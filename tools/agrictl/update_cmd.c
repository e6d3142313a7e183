/*
 * `agrictl update push` and `agrictl update status` (docs/update.md):
 * over-the-air updates of stations through the hub.
 *
 * push: reads the bundle's compatible and version with `rauc info`
 * (checking its signature against --keyring when given), copies it into
 * the gateway's bundles directory, signs one update command per station
 * with the technician's key (the envelope of signed configs, agri/sign.h)
 * and publishes it retained on <prefix>/<station>/update; then follows the
 * stations' retained status until each says good, rolled-back or failed.
 * With --canary N the first N stations go first; the rest are sent the
 * command only when every canary is good.
 *
 * status: the fleet's versions and update states from the retained
 * status topics.
 *
 * paho's synchronous MQTTClient: a CLI has nothing else to do meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <cjson/cJSON.h>

#include "agri/exit.h"
#include "agri/sign.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "agrictl.h"
#include "update_fetch.h"
#include "update_rauc.h"

#define FLEET_MAX 1024
#define EXIT_TIMEOUT 3

struct fleet_entry {
	char station[AGRI_ID_MAX + 1];
	cJSON *status;      /* the retained status, or NULL */
	bool sent;
	char state[24];     /* the update's state for our id, "" = not yet */
	char error[256];
	int progress;
	char printed[48];   /* the last state line printed */
};

struct opts {
	const char *broker, *username, *password_file, *ca_file, *prefix;
	const char *key_file, *keyring, *bundles_dir, *rauc;
	char technician[SIGN_NAME_MAX + 1];
	const char *stations[FLEET_MAX];
	size_t n_stations;
	bool all, json;
	int canary, timeout_s;
};

struct run {
	MQTTClient c;
	char password[256];
	struct fleet_entry *fleet;
	size_t n;
	int64_t id;
};

static int fleet_find(struct run *r, const char *station)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->fleet[i].station, station))
			return (int)i;
	return -1;
}

static int fleet_add(struct run *r, const char *station)
{
	int i = fleet_find(r, station);

	if (i >= 0)
		return i;
	if (r->n >= FLEET_MAX)
		return -1;
	memset(&r->fleet[r->n], 0, sizeof(r->fleet[0]));
	snprintf(r->fleet[r->n].station, sizeof(r->fleet[0].station), "%s", station);
	return (int)r->n++;
}

static int do_connect(const struct opts *o, struct run *r)
{
	MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	char client_id[64];
	int rc;

	if (o->password_file &&
	    (rc = util_read_secret(o->password_file, r->password, sizeof(r->password))) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", o->password_file, strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	snprintf(client_id, sizeof(client_id), "agrictl-%d-%ld", (int)getpid(), (long)time(NULL));
	if (MQTTClient_create(&r->c, o->broker, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
	    MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: bad broker URL \"%s\"\n", o->broker);
		return AGRI_EXIT_USAGE;
	}
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.username = o->username;
	co.password = r->password[0] ? r->password : NULL;
	if (!strncmp(o->broker, "ssl://", 6) || !strncmp(o->broker, "mqtts://", 8)) {
		ssl.trustStore = o->ca_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	if ((rc = MQTTClient_connect(r->c, &co)) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: cannot connect to %s (%s)\n", o->broker,
			MQTTClient_strerror(rc));
		MQTTClient_destroy(&r->c);
		r->c = NULL;
		return AGRI_EXIT_FAIL;
	}
	return 0;
}

/* The station of "<prefix>/<station>/status", or NULL. */
static const char *status_station(const char *prefix, const char *topic, char *out, size_t len)
{
	size_t pl = strlen(prefix), tl = strlen(topic);
	const char *s = topic + pl + 1;

	if (tl <= pl + 1 + 7 || strncmp(topic, prefix, pl) || topic[pl] != '/' ||
	    strcmp(topic + tl - 7, "/status"))
		return NULL;
	if ((size_t)(topic + tl - 7 - s) >= len)
		return NULL;
	snprintf(out, len, "%.*s", (int)(topic + tl - 7 - s), s);
	return agri_station_id_valid(out) ? out : NULL;
}

/* Takes one message (waiting up to wait_ms) into the fleet table.
 * Returns 1 when a status was taken, 0 otherwise. */
static int take_status(const struct opts *o, struct run *r, int wait_ms, bool add)
{
	char *t = NULL, station[AGRI_ID_MAX + 1];
	MQTTClient_message *m = NULL;
	int tl = 0, i, got = 0;

	if (MQTTClient_receive(r->c, &t, &tl, &m, (unsigned long)wait_ms) != MQTTCLIENT_SUCCESS ||
	    !m)
		return 0;
	if (status_station(o->prefix, t, station, sizeof(station)) && m->payloadlen > 0) {
		cJSON *doc = cJSON_ParseWithLength(m->payload, (size_t)m->payloadlen);

		i = add ? fleet_add(r, station) : fleet_find(r, station);
		if (doc && i >= 0) {
			struct fleet_entry *e = &r->fleet[i];
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "update");
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(u, "id");
			const cJSON *st = cJSON_GetObjectItemCaseSensitive(u, "state");
			const cJSON *er = cJSON_GetObjectItemCaseSensitive(u, "error");
			const cJSON *pr = cJSON_GetObjectItemCaseSensitive(u, "progress");

			cJSON_Delete(e->status);
			e->status = doc;
			doc = NULL;
			if (r->id && cJSON_IsNumber(id) && (int64_t)id->valuedouble == r->id &&
			    cJSON_IsString(st)) {
				snprintf(e->state, sizeof(e->state), "%s", st->valuestring);
				snprintf(e->error, sizeof(e->error), "%s",
					 cJSON_IsString(er) ? er->valuestring : "");
				e->progress = cJSON_IsNumber(pr) ? (int)pr->valuedouble : -1;
			} else if (r->id && e->sent && cJSON_IsString(st) &&
				   !strcmp(st->valuestring, "failed") && !cJSON_IsNumber(id)) {
				/* refused before its id was taken (signature, station) */
				snprintf(e->state, sizeof(e->state), "failed");
				snprintf(e->error, sizeof(e->error), "%s",
					 cJSON_IsString(er) ? er->valuestring : "");
			}
			got = 1;
		}
		cJSON_Delete(doc);
	}
	MQTTClient_freeMessage(&m);
	MQTTClient_free(t);
	return got;
}

/* Subscribes to every station's status and takes the retained ones. */
static int gather(const struct opts *o, struct run *r, bool add)
{
	char topic[AGRI_TOPIC_MAX];
	int64_t quiet_until;

	snprintf(topic, sizeof(topic), "%s/+/status", o->prefix);
	if (MQTTClient_subscribe(r->c, topic, 1) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: cannot subscribe to %s\n", topic);
		return AGRI_EXIT_FAIL;
	}
	/* Retained messages come right after the SUBACK: stop after 1 s of
	 * silence. */
	quiet_until = util_mono_ms() + 1500;
	while (util_mono_ms() < quiet_until)
		if (take_status(o, r, 200, add))
			quiet_until = util_mono_ms() + 1000;
	return 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- status ---- */

static void print_fleet(const struct opts *o, struct run *r)
{
	if (o->json) {
		cJSON *arr = cJSON_CreateArray();
		char *s;

		for (size_t i = 0; i < r->n; i++) {
			const cJSON *st = r->fleet[i].status;
			cJSON *e = cJSON_CreateObject();
			const cJSON *u = cJSON_GetObjectItemCaseSensitive(st, "update");

			cJSON_AddStringToObject(e, "station", r->fleet[i].station);
			cJSON_AddStringToObject(e, "state", jstr(st, "state"));
			cJSON_AddStringToObject(e, "fw", jstr(st, "fw"));
			cJSON_AddStringToObject(e, "board", jstr(st, "board"));
			cJSON_AddStringToObject(e, "compatible", jstr(st, "compatible"));
			cJSON_AddStringToObject(e, "system", jstr(st, "system"));
			cJSON_AddStringToObject(e, "slot", jstr(st, "slot"));
			if (u)
				cJSON_AddItemToObject(e, "update", cJSON_Duplicate(u, true));
			cJSON_AddItemToArray(arr, e);
		}
		s = cJSON_PrintUnformatted(arr);
		puts(s ? s : "[]");
		free(s);
		cJSON_Delete(arr);
		return;
	}
	printf("%-12s %-8s %-10s %-12s %-4s %-12s %-12s %s\n", "STATION", "LINK", "FW", "SYSTEM",
	       "SLOT", "UPDATE", "STATE", "ERROR");
	for (size_t i = 0; i < r->n; i++) {
		const cJSON *st = r->fleet[i].status;
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(st, "update");

		printf("%-12s %-8s %-10s %-12s %-4s %-12s %-12s %s\n", r->fleet[i].station,
		       jstr(st, "state"), jstr(st, "fw")[0] ? jstr(st, "fw") : "-",
		       jstr(st, "system")[0] ? jstr(st, "system") : "-",
		       jstr(st, "slot")[0] ? jstr(st, "slot") : "-",
		       jstr(u, "version")[0] ? jstr(u, "version") : "-",
		       jstr(u, "state")[0] ? jstr(u, "state") : "-", jstr(u, "error"));
	}
}

/* ---- push ---- */

struct bundle {
	char path[4096];
	char compatible[RAUC_NAME_MAX], version[64], sha256[65], name[160];
	uint64_t size;
};

static int bundle_read(const struct opts *o, const char *path, struct bundle *b)
{
	char keyring[4200], *out = malloc(65536), err[256];
	char *argv[6];
	int n = 0, rc;
	cJSON *doc;
	struct stat sb;

	if (!out)
		return AGRI_EXIT_FAIL;
	argv[n++] = (char *)o->rauc;
	argv[n++] = "info";
	argv[n++] = "--output-format=json";
	if (o->keyring) {
		snprintf(keyring, sizeof(keyring), "--keyring=%s", o->keyring);
		argv[n++] = keyring;
	} else {
		argv[n++] = "--no-verify";
	}
	argv[n++] = (char *)path;
	argv[n] = NULL;
	rc = rauc_run(argv, 120, out, 65536, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "agrictl: %s: not a bundle that verifies: %s\n", path, err);
		free(out);
		return AGRI_EXIT_FAIL;
	}
	doc = cJSON_Parse(out);
	free(out);
	snprintf(b->compatible, sizeof(b->compatible), "%s", jstr(doc, "compatible"));
	snprintf(b->version, sizeof(b->version), "%s", jstr(doc, "version"));
	cJSON_Delete(doc);
	if (!b->compatible[0] || !b->version[0]) {
		fprintf(stderr, "agrictl: %s: rauc info gives no compatible or version\n", path);
		return AGRI_EXIT_FAIL;
	}
	if (stat(path, &sb) < 0 || (rc = fetch_sha256(path, b->sha256)) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", path, strerror(errno));
		return AGRI_EXIT_FAIL;
	}
	b->size = (uint64_t)sb.st_size;
	snprintf(b->path, sizeof(b->path), "%s", path);
	snprintf(b->name, sizeof(b->name), "%s-%s-%.12s.raucb", b->compatible, b->version,
		 b->sha256);
	for (char *p = b->name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'))
			*p = '_';
	return 0;
}

/* Copies the bundle into the gateway's bundles directory (atomically). */
static int bundle_publish(const struct opts *o, const struct bundle *b)
{
	char dst[4400], tmp[4500], buf[65536];
	int in, out, rc = 0;
	ssize_t n;

	snprintf(dst, sizeof(dst), "%s/%s", o->bundles_dir, b->name);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", dst, (int)getpid());
	in = open(b->path, O_RDONLY | O_CLOEXEC);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (in < 0 || out < 0) {
		fprintf(stderr, "agrictl: cannot copy %s to %s: %s\n", b->path, tmp, strerror(errno));
		rc = AGRI_EXIT_FAIL;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = AGRI_EXIT_FAIL;
			break;
		}
	if (n < 0 || rc || fsync(out) < 0 || rename(tmp, dst) < 0) {
		fprintf(stderr, "agrictl: cannot copy %s to %s: %s\n", b->path, dst, strerror(errno));
		unlink(tmp);
		rc = AGRI_EXIT_FAIL;
	}
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return rc;
}

static int send_command(const struct opts *o, struct run *r, struct sign_key *key,
			const struct bundle *b, struct fleet_entry *e)
{
	char doc[1024], msg[1024 + SIGN_ENVELOPE_MAX + 1], topic[AGRI_TOPIC_MAX];
	unsigned char sig[SIGN_ED25519_LEN];
	MQTTClient_message m = MQTTClient_message_initializer;
	int n, len;

	n = snprintf(doc, sizeof(doc),
		     "{\"v\":1,\"station\":\"%s\",\"id\":%" PRId64 ",\"version\":\"%s\","
		     "\"bundle\":\"%s\",\"size\":%" PRIu64 ",\"sha256\":\"%s\",\"compatible\":\"%s\"}",
		     e->station, r->id, b->version, b->name, b->size, b->sha256, b->compatible);
	if (n < 0 || (size_t)n >= sizeof(doc) || strchr(b->version, '"') ||
	    strchr(b->compatible, '"') || strchr(b->version, '\\') || strchr(b->compatible, '\\'))
		return AGRI_EXIT_FAIL;
	if (sign_ed25519(key, doc, (size_t)n, sig) < 0 ||
	    (len = sign_envelope_seal(doc, (size_t)n, o->technician, sig, msg, sizeof(msg))) < 0) {
		fprintf(stderr, "agrictl: cannot sign the update command\n");
		return AGRI_EXIT_FAIL;
	}
	snprintf(topic, sizeof(topic), "%s/%s/update", o->prefix, e->station);
	m.payload = msg;
	m.payloadlen = len;
	m.qos = 1;
	m.retained = 1;
	if (MQTTClient_publishMessage(r->c, topic, &m, NULL) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: cannot publish to %s\n", topic);
		return AGRI_EXIT_FAIL;
	}
	e->sent = true;
	e->state[0] = '\0';
	printf("%s: update %s sent (id %" PRId64 ")\n", e->station, b->version, r->id);
	fflush(stdout);
	return 0;
}

static bool final_state(const char *s)
{
	return !strcmp(s, "good") || !strcmp(s, "rolled-back") || !strcmp(s, "failed");
}

/* Follows the stations in wave[0..n) until each is in a final state or
 * the deadline. Returns the number that are not good. */
static int follow(const struct opts *o, struct run *r, int *wave, size_t n, int64_t deadline,
		  bool *timed_out)
{
	size_t done = 0;

	*timed_out = false;
	while (done < n) {
		if (util_mono_ms() > deadline) {
			*timed_out = true;
			break;
		}
		take_status(o, r, 500, false);
		done = 0;
		for (size_t i = 0; i < n; i++) {
			struct fleet_entry *e = &r->fleet[wave[i]];
			char line[48];

			if (e->state[0] && e->progress >= 0 && !strcmp(e->state, "downloading"))
				snprintf(line, sizeof(line), "%s %d%%", e->state, e->progress / 25 * 25);
			else
				snprintf(line, sizeof(line), "%s", e->state);
			if (e->state[0] && strcmp(line, e->printed)) {
				printf("%s: %s%s%s\n", e->station, line, e->error[0] ? ": " : "", e->error);
				fflush(stdout);
				snprintf(e->printed, sizeof(e->printed), "%s", line);
			}
			if (final_state(e->state))
				done++;
		}
	}
	done = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(r->fleet[wave[i]].state, "good"))
			done++;
	return (int)done;
}

static int do_push(const struct opts *o, const char *bundle_path)
{
	struct run r = {0};
	struct bundle b = {0};
	struct sign_key *key = NULL;
	int *order = NULL, rc, bad;
	size_t n = 0, first;
	int64_t deadline;
	bool timed_out = false;

	if ((rc = sign_key_read_private(o->key_file, &key)) < 0) {
		fprintf(stderr, "agrictl: --key %s: %s\n", o->key_file,
			rc == -EBADMSG ? "not an Ed25519 private key" : strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	if ((rc = bundle_read(o, bundle_path, &b)) != 0)
		goto out;
	printf("bundle %s: compatible %s, version %s, %" PRIu64 " bytes, sha256 %.16s...\n",
	       bundle_path, b.compatible, b.version, b.size, b.sha256);
	if ((rc = bundle_publish(o, &b)) != 0)
		goto out;
	r.fleet = calloc(FLEET_MAX, sizeof(*r.fleet));
	order = calloc(FLEET_MAX, sizeof(*order));
	if (!r.fleet || !order) {
		rc = AGRI_EXIT_FAIL;
		goto out;
	}
	if ((rc = do_connect(o, &r)) != 0)
		goto out;
	for (size_t i = 0; i < o->n_stations; i++)
		fleet_add(&r, o->stations[i]);
	if ((rc = gather(o, &r, o->all)) != 0)
		goto out;
	for (size_t i = 0; i < r.n; i++) {
		const char *c = jstr(r.fleet[i].status, "compatible");

		if (o->all && c[0] && strcmp(c, b.compatible)) {
			printf("%s: skipped: its system is %s, the bundle is for %s\n",
			       r.fleet[i].station, c, b.compatible);
			continue;
		}
		order[n++] = (int)i;
	}
	if (n == 0) {
		fprintf(stderr, "agrictl: no station to update\n");
		rc = AGRI_EXIT_FAIL;
		goto out;
	}
	r.id = util_now_ms();
	deadline = util_mono_ms() + (int64_t)o->timeout_s * 1000;
	first = o->canary > 0 && (size_t)o->canary < n ? (size_t)o->canary : n;
	for (size_t i = 0; i < first; i++)
		if ((rc = send_command(o, &r, key, &b, &r.fleet[order[i]])) != 0)
			goto out;
	bad = follow(o, &r, order, first, deadline, &timed_out);
	if (first < n) {
		if (bad || timed_out) {
			printf("canary failed: halted; %zu station(s) not updated:", n - first);
			for (size_t i = first; i < n; i++)
				printf(" %s", r.fleet[order[i]].station);
			printf("\n");
			rc = timed_out ? EXIT_TIMEOUT : AGRI_EXIT_FAIL;
			goto out;
		}
		printf("canary good: updating the other %zu station(s)\n", n - first);
		for (size_t i = first; i < n; i++)
			if ((rc = send_command(o, &r, key, &b, &r.fleet[order[i]])) != 0)
				goto out;
		bad = follow(o, &r, order + first, n - first, deadline, &timed_out);
	}
	if (timed_out) {
		printf("timed out after %d s: some stations have not finished\n", o->timeout_s);
		rc = EXIT_TIMEOUT;
	} else {
		printf("%zu of %zu station(s) updated to %s\n", n - (size_t)bad, n, b.version);
		rc = bad ? AGRI_EXIT_FAIL : 0;
	}
out:
	if (r.c) {
		MQTTClient_disconnect(r.c, 1000);
		MQTTClient_destroy(&r.c);
	}
	for (size_t i = 0; r.fleet && i < r.n; i++)
		cJSON_Delete(r.fleet[i].status);
	free(r.fleet);
	free(order);
	sign_key_free(key);
	return rc;
}

static int do_status(const struct opts *o)
{
	struct run r = {0};
	int rc;

	r.fleet = calloc(FLEET_MAX, sizeof(*r.fleet));
	if (!r.fleet)
		return AGRI_EXIT_FAIL;
	for (size_t i = 0; i < o->n_stations; i++)
		fleet_add(&r, o->stations[i]);
	rc = do_connect(o, &r);
	if (rc == 0)
		rc = gather(o, &r, o->n_stations == 0);
	if (rc == 0)
		print_fleet(o, &r);
	if (r.c) {
		MQTTClient_disconnect(r.c, 1000);
		MQTTClient_destroy(&r.c);
	}
	for (size_t i = 0; i < r.n; i++)
		cJSON_Delete(r.fleet[i].status);
	free(r.fleet);
	return rc;
}

static void usage(FILE *f)
{
	fputs("usage: agrictl update push BUNDLE (--station ID ... | --all) [--canary N]\n"
	      "           --broker URL --key NAME.key [--technician NAME] [--username U\n"
	      "           --password-file F] [--ca-file CA] [--topic-prefix P]\n"
	      "           [--bundles-dir DIR] [--keyring CA.pem] [--timeout-s 1800]\n"
	      "       agrictl update status --broker URL [--station ID ...] [--username U\n"
	      "           --password-file F] [--ca-file CA] [--topic-prefix P] [--json]\n"
	      "  --bundles-dir DIR  the gateway's http.bundles_dir (default\n"
	      "                     /var/lib/agri-gateway/bundles)\n"
	      "  --keyring CA.pem   check the bundle's signature before sending it\n"
	      "  --canary N         update N stations first; the rest only if all N are good\n"
	      "exit 0 every station good, 1 a refusal or rollback (or a canary's: halted),\n"
	      "3 not finished within --timeout-s\n", f);
}

int agrictl_update(int argc, char **argv)
{
	static const struct option opts[] = {
		{"station", required_argument, 0, 's'}, {"all", no_argument, 0, 'a'},
		{"canary", required_argument, 0, 'C'}, {"broker", required_argument, 0, 'b'},
		{"username", required_argument, 0, 'u'}, {"password-file", required_argument, 0, 'p'},
		{"ca-file", required_argument, 0, 'c'}, {"topic-prefix", required_argument, 0, 't'},
		{"key", required_argument, 0, 'k'}, {"technician", required_argument, 0, 'n'},
		{"bundles-dir", required_argument, 0, 'd'}, {"keyring", required_argument, 0, 'K'},
		{"timeout-s", required_argument, 0, 'w'}, {"json", no_argument, 0, 'j'},
		{"rauc", required_argument, 0, 'R'}, {"help", no_argument, 0, 'h'}, {0}};
	struct opts o = {.prefix = AGRI_TOPIC_PREFIX_DEFAULT, .timeout_s = 1800,
			 .bundles_dir = "/var/lib/agri-gateway/bundles", .rauc = "rauc"};
	const char *sub, *technician = NULL;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? AGRI_EXIT_USAGE : 0;
	}
	sub = argv[1];
	if (strcmp(sub, "push") && strcmp(sub, "status")) {
		fprintf(stderr, "agrictl: update: expected \"push\" or \"status\"\n");
		return AGRI_EXIT_USAGE;
	}
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (o.n_stations >= FLEET_MAX || !agri_station_id_valid(optarg)) {
				fprintf(stderr, "agrictl: --station: \"%s\" is not a valid station id\n",
					optarg);
				return AGRI_EXIT_USAGE;
			}
			o.stations[o.n_stations++] = optarg;
			break;
		case 'a': o.all = true; break;
		case 'C': o.canary = atoi(optarg); break;
		case 'b': o.broker = optarg; break;
		case 'u': o.username = optarg; break;
		case 'p': o.password_file = optarg; break;
		case 'c': o.ca_file = optarg; break;
		case 't': o.prefix = optarg; break;
		case 'k': o.key_file = optarg; break;
		case 'n': technician = optarg; break;
		case 'd': o.bundles_dir = optarg; break;
		case 'K': o.keyring = optarg; break;
		case 'w': o.timeout_s = atoi(optarg); break;
		case 'j': o.json = true; break;
		case 'R': o.rauc = optarg; break;
		case 'h': usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	if (!o.broker) {
		fprintf(stderr, "agrictl: update %s needs --broker URL\n", sub);
		return AGRI_EXIT_USAGE;
	}
	if (!agri_topic_prefix_valid(o.prefix)) {
		fprintf(stderr, "agrictl: --topic-prefix: invalid prefix \"%s\"\n", o.prefix);
		return AGRI_EXIT_USAGE;
	}
	if (!strcmp(sub, "status")) {
		if (optind != argc) {
			fprintf(stderr, "agrictl: update status takes no file\n");
			return AGRI_EXIT_USAGE;
		}
		return do_status(&o);
	}
	if (optind != argc - 1 || (!o.all == !o.n_stations)) {
		fprintf(stderr, "agrictl: update push needs BUNDLE and --station ID ... or --all\n");
		return AGRI_EXIT_USAGE;
	}
	if (o.canary < 0 || o.timeout_s < 1 || o.timeout_s > 86400) {
		fprintf(stderr, "agrictl: --canary N >= 0, --timeout-s 1..86400\n");
		return AGRI_EXIT_USAGE;
	}
	if (!o.key_file)
		o.key_file = getenv("AGRI_TECHNICIAN_KEY");
	if (!o.key_file || !o.key_file[0]) {
		fprintf(stderr, "agrictl: update push needs --key FILE, a technician's private key\n");
		return AGRI_EXIT_USAGE;
	}
	if (!technician) {
		const char *base = strrchr(o.key_file, '/') ? strrchr(o.key_file, '/') + 1 : o.key_file;
		size_t bl = strlen(base);

		if (bl > 4 && !strcmp(base + bl - 4, ".key"))
			bl -= 4;
		snprintf(o.technician, sizeof(o.technician), "%.*s",
			 (int)(bl < SIGN_NAME_MAX ? bl : SIGN_NAME_MAX), base);
	} else {
		snprintf(o.technician, sizeof(o.technician), "%s", technician);
	}
	if (!sign_name_valid(o.technician)) {
		fprintf(stderr, "agrictl: the technician's name \"%s\" is not [A-Za-z0-9_-]{1,32}\n",
			o.technician);
		return AGRI_EXIT_USAGE;
	}
	return do_push(&o, argv[optind]);
}
