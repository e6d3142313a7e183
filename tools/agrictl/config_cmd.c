/*
 * `agrictl config validate` and `agrictl config push`. Validation runs the
 * daemons' own parsers (station_config_parse, gateway_config_load, the
 * rules parser, agri_profile_parse). Push serialises the file with the
 * next version, signs exactly those bytes with the technician's Ed25519
 * key and publishes them in the signature envelope (agri/sign.h) as the
 * station's retained desired config, then waits for the station's
 * config/ack (paho's synchronous MQTTClient: a CLI has nothing else to do
 * meanwhile).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTClient.h>
#include <cjson/cJSON.h>

#include "agri/exit.h"
#include "agri/json.h"
#include "agri/msg.h"
#include "agri/profile.h"
#include "agri/sign.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "agrictl.h"
#include "config.h"          /* firmware: station_config_parse */
#include "gateway/config.h"  /* gateway_config_load */
#include "gateway/rules.h"   /* gateway: rules_validate_file */

#define CONFIG_MAX (256 * 1024)

enum file_kind { KIND_UNKNOWN, KIND_STATION, KIND_GATEWAY, KIND_RULES, KIND_PROFILE };

static enum file_kind detect(const cJSON *doc)
{
	if (!cJSON_IsObject(doc))
		return KIND_UNKNOWN;
	if (cJSON_GetObjectItemCaseSensitive(doc, "registers"))
		return KIND_PROFILE;
	if (cJSON_GetObjectItemCaseSensitive(doc, "rules"))
		return KIND_RULES;
	if (cJSON_GetObjectItemCaseSensitive(doc, "db"))
		return KIND_GATEWAY;
	if (cJSON_GetObjectItemCaseSensitive(doc, "station") ||
	    cJSON_GetObjectItemCaseSensitive(doc, "sensors"))
		return KIND_STATION;
	return KIND_UNKNOWN;
}

static void print_err(const char *file, const struct agri_err *e)
{
	fprintf(stderr, "%s: %s%s%s\n", file, e->path, *e->path ? ": " : "", e->msg);
}

/* Validates path; on success writes its kind. Returns 0 or 78. */
static int validate_file(const char *path, enum file_kind *kind_out)
{
	static struct station_config scfg;
	static struct gateway_config gcfg;
	static struct agri_profile prof;
	struct agri_err e = {0};
	cJSON *doc = NULL;
	char *buf = NULL;
	size_t len;
	int rc;
	enum file_kind kind;

	rc = util_read_file(path, CONFIG_MAX, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-rc));
		return AGRI_EXIT_CONFIG;
	}
	rc = agri_json_parse(buf, len, CONFIG_MAX, AGRI_JSON_DEPTH_MAX, &doc, &e);
	if (rc < 0) {
		print_err(path, &e);
		free(buf);
		return AGRI_EXIT_CONFIG;
	}
	kind = detect(doc);
	cJSON_Delete(doc);
	switch (kind) {
	case KIND_STATION:
		rc = station_config_parse(buf, len, path, &scfg, &e);
		break;
	case KIND_GATEWAY:
		rc = gateway_config_load(path, &gcfg, &e);
		break;
	case KIND_RULES:
		rc = rules_validate_file(path, &e);
		break;
	case KIND_PROFILE:
		rc = agri_profile_parse(buf, len, &prof, &e);
		break;
	default:
		agri_err_set(&e, "", "not a station, gateway, rules or profile file "
			     "(expected a \"station\", \"db\", \"rules\" or \"registers\" key)");
		rc = -EINVAL;
	}
	free(buf);
	if (rc < 0) {
		print_err(path, &e);
		return AGRI_EXIT_CONFIG;
	}
	*kind_out = kind;
	return 0;
}

int agrictl_config_validate(int argc, char **argv)
{
	static const char *const names[] = {"unknown", "station", "gateway", "rules", "profile"};
	enum file_kind kind;
	int rc;

	if (argc != 2 || argv[1][0] == '-') {
		if (argc == 2 && strcmp(argv[1], "--help") == 0) {
			puts("usage: agrictl config validate FILE");
			return 0;
		}
		fprintf(stderr, "agrictl: usage: agrictl config validate FILE\n");
		return 2;
	}
	rc = validate_file(argv[1], &kind);
	if (rc == 0)
		printf("%s: ok (%s)\n", argv[1], names[kind]);
	return rc;
}

struct push {
	const char *station, *broker, *username, *password_file, *prefix, *file, *ca_file;
	const char *key_file;          /* the technician's private key */
	char technician[SIGN_NAME_MAX + 1];
	int timeout_s;
	bool force;
};

/* What a push holds while it runs; push_close() releases it all. */
struct push_run {
	char topic[AGRI_TOPIC_MAX], ack_topic[AGRI_TOPIC_MAX];
	char password[256];
	struct sign_key *key;
	char *buf;        /* the file */
	cJSON *doc;       /* the file, parsed */
	char *out;        /* the document as sent (version set) */
	char *signed_msg; /* out in the signature envelope */
	int signed_len;
	MQTTClient c;
};

#define PUSH_NO_ACK 3 /* exit code: published, no ack within --timeout-s */

/* The version of the retained config the broker holds now (0 if none). */
static int64_t retained_version(MQTTClient c, const char *topic)
{
	int64_t version = 0, deadline;
	struct agri_err e;

	if (MQTTClient_subscribe(c, topic, 1) != MQTTCLIENT_SUCCESS)
		return -1;
	deadline = util_mono_ms() + 1500; /* retained messages come right after SUBACK */
	while (util_mono_ms() < deadline) {
		char *t = NULL;
		int tl = 0;
		MQTTClient_message *m = NULL;

		if (MQTTClient_receive(c, &t, &tl, &m, 200) != MQTTCLIENT_SUCCESS || !m)
			continue;
		if (strcmp(t, topic) == 0 && m->payloadlen > 0)
			agri_config_version(m->payload, (size_t)m->payloadlen, &version, &e);
		MQTTClient_freeMessage(&m);
		MQTTClient_free(t);
		break;
	}
	MQTTClient_unsubscribe(c, topic);
	return version;
}

/* The file (validated unless --force), its station, the signing key.
 * Returns 0 or the exit code (the reason printed). */
static int push_load(const struct push *p, struct push_run *r)
{
	struct agri_err e = {0};
	const cJSON *st;
	enum file_kind kind;
	size_t len;
	int rc;

	if (!p->force && (rc = validate_file(p->file, &kind)) != 0)
		return rc; /* the reason is printed; --force pushes anyway */
	if ((rc = sign_key_read_private(p->key_file, &r->key)) < 0) {
		fprintf(stderr, "agrictl: --key %s: %s\n", p->key_file,
			rc == -EBADMSG ? "not an Ed25519 private key (agrictl provision --technician)"
				       : strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	if (util_read_file(p->file, CONFIG_MAX, &r->buf, &len) < 0 ||
	    agri_json_parse(r->buf, len, CONFIG_MAX, AGRI_JSON_DEPTH_MAX, &r->doc, &e) < 0 ||
	    !cJSON_IsObject(r->doc)) {
		fprintf(stderr, "%s: %s\n", p->file, *e.msg ? e.msg : "not a JSON object");
		return AGRI_EXIT_CONFIG;
	}
	st = cJSON_GetObjectItemCaseSensitive(r->doc, "station");
	if (!p->force && (!cJSON_IsString(st) || strcmp(st->valuestring, p->station) != 0)) {
		fprintf(stderr, "%s: station: is not \"%s\" (the --station given)\n", p->file, p->station);
		return AGRI_EXIT_CONFIG;
	}
	return 0;
}

/* Connects to the broker and subscribes to the station's config/ack.
 * Returns 0 or the exit code. */
static int push_connect(const struct push *p, struct push_run *r)
{
	MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
	char client_id[64];
	int rc;

	if (agri_topic_build(r->topic, sizeof(r->topic), p->prefix, AGRI_TOPIC_CONFIG,
			     p->station) < 0 ||
	    agri_topic_build(r->ack_topic, sizeof(r->ack_topic), p->prefix, AGRI_TOPIC_CONFIG_ACK,
			     p->station) < 0) {
		fprintf(stderr, "agrictl: invalid station id or topic prefix\n");
		return AGRI_EXIT_USAGE;
	}
	r->password[0] = '\0';
	if (p->password_file &&
	    (rc = util_read_secret(p->password_file, r->password, sizeof(r->password))) < 0) {
		fprintf(stderr, "agrictl: %s: %s\n", p->password_file, strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	snprintf(client_id, sizeof(client_id), "agrictl-%d-%ld", (int)getpid(), (long)time(NULL));
	if (MQTTClient_create(&r->c, p->broker, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL) !=
	    MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: bad broker URL \"%s\"\n", p->broker);
		return AGRI_EXIT_USAGE;
	}
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.username = p->username;
	co.password = r->password[0] ? r->password : NULL;
	if (strncmp(p->broker, "ssl://", 6) == 0 || strncmp(p->broker, "mqtts://", 8) == 0) {
		/* The hub's TLS listener: the server certificate and its name are checked
		 * against the agri CA (--ca-file), else against the system's CAs. */
		ssl.trustStore = p->ca_file;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		co.ssl = &ssl;
	}
	if ((rc = MQTTClient_connect(r->c, &co)) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: cannot connect to %s (%s)\n", p->broker, MQTTClient_strerror(rc));
		return AGRI_EXIT_FAIL;
	}
	if (MQTTClient_subscribe(r->c, r->ack_topic, 1) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: cannot subscribe to %s\n", r->ack_topic);
		return AGRI_EXIT_FAIL;
	}
	return 0;
}

/* The version to send: one past the retained config's, or the file's own
 * when that is higher. */
static int64_t push_version(const struct push_run *r)
{
	const cJSON *ver = cJSON_GetObjectItemCaseSensitive(r->doc, "version");
	int64_t version = retained_version(r->c, r->topic) + 1;

	if (cJSON_IsNumber(ver) && ver->valuedouble >= (double)version)
		version = (int64_t)ver->valuedouble;
	return version;
}

/* Sets version in the document, signs exactly the bytes sent and seals
 * them in the envelope. Returns 0 or the exit code. */
static int push_seal(const struct push *p, struct push_run *r, int64_t version)
{
	unsigned char sig[SIGN_ED25519_LEN];
	size_t len;

	cJSON_DeleteItemFromObjectCaseSensitive(r->doc, "version");
	cJSON_AddNumberToObject(r->doc, "version", (double)version);
	/* D: the document as sent, version and station inside; the signature
	 * covers exactly its bytes. */
	r->out = cJSON_PrintUnformatted(r->doc);
	len = r->out ? strlen(r->out) : 0;
	r->signed_msg = malloc(len + SIGN_ENVELOPE_MAX + 1);
	if (!r->out || !r->signed_msg || sign_ed25519(r->key, r->out, len, sig) < 0 ||
	    (r->signed_len = sign_envelope_seal(r->out, len, p->technician, sig, r->signed_msg,
						len + SIGN_ENVELOPE_MAX + 1)) < 0) {
		fprintf(stderr, "agrictl: cannot sign %s\n", p->file);
		return AGRI_EXIT_FAIL;
	}
	if (r->signed_len > STATION_CONFIG_MAX_BYTES) {
		fprintf(stderr, "%s: signed, it is %d bytes: a station takes at most %d\n", p->file,
			r->signed_len, STATION_CONFIG_MAX_BYTES);
		return AGRI_EXIT_CONFIG;
	}
	return 0;
}

/* Waits --timeout-s for the station's config/ack of version. Returns 0
 * (applied), 1 (rejected) or PUSH_NO_ACK. */
static int push_wait_ack(const struct push *p, struct push_run *r, int64_t version)
{
	int64_t deadline = util_mono_ms() + (int64_t)p->timeout_s * 1000;
	struct agri_err e;

	while (util_mono_ms() < deadline) {
		struct agri_config_ack a;
		MQTTClient_message *m = NULL;
		char *t = NULL;
		int tl = 0, rc;

		if (MQTTClient_receive(r->c, &t, &tl, &m, 500) != MQTTCLIENT_SUCCESS || !m)
			continue;
		rc = agri_config_ack_decode(m->payload, (size_t)m->payloadlen, &a, &e);
		MQTTClient_freeMessage(&m);
		MQTTClient_free(t);
		if (rc < 0 || a.version != version)
			continue;
		if (a.applied) {
			printf("%s: version %lld applied (signed by %s)\n", p->station,
			       (long long)version, a.signed_by[0] ? a.signed_by : p->technician);
			return 0;
		}
		printf("%s: version %lld rejected: %s\n", p->station, (long long)version, a.error);
		return AGRI_EXIT_FAIL;
	}
	fprintf(stderr, "agrictl: no ack from %s within %d s (the config stays retained; "
		"the station applies it when it connects)\n", p->station, p->timeout_s);
	return PUSH_NO_ACK;
}

static void push_close(struct push_run *r)
{
	if (r->c) {
		MQTTClient_disconnect(r->c, 1000);
		MQTTClient_destroy(&r->c);
	}
	memset(r->password, 0, sizeof(r->password));
	sign_key_free(r->key);
	free(r->signed_msg);
	cJSON_free(r->out);
	cJSON_Delete(r->doc);
	free(r->buf);
}

/* config push, phase by phase: load, connect, version, seal, publish,
 * wait for the ack. Returns the exit code. */
static int do_push(const struct push *p)
{
	MQTTClient_message msg = MQTTClient_message_initializer;
	struct push_run r = {0};
	int64_t version;
	int result;

	if ((result = push_load(p, &r)) != 0 || (result = push_connect(p, &r)) != 0)
		goto out;
	version = push_version(&r);
	if ((result = push_seal(p, &r, version)) != 0)
		goto out;
	msg.payload = r.signed_msg;
	msg.payloadlen = r.signed_len;
	msg.qos = 1;
	msg.retained = 1;
	if (MQTTClient_publishMessage(r.c, r.topic, &msg, NULL) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, "agrictl: publish to %s failed\n", r.topic);
		result = AGRI_EXIT_FAIL;
		goto out;
	}
	printf("pushed %s as version %lld signed by %s to %s; waiting for the station's ack...\n",
	       p->file, (long long)version, p->technician, r.topic);
	fflush(stdout);
	result = push_wait_ack(p, &r, version);
out:
	push_close(&r);
	return result;
}

int agrictl_config_push(int argc, char **argv)
{
	static const struct option opts[] = {
		{"station", required_argument, 0, 's'}, {"broker", required_argument, 0, 'b'},
		{"username", required_argument, 0, 'u'}, {"password-file", required_argument, 0, 'p'},
		{"topic-prefix", required_argument, 0, 't'}, {"timeout-s", required_argument, 0, 'w'},
		{"ca-file", required_argument, 0, 'c'}, {"force", no_argument, 0, 'f'},
		{"key", required_argument, 0, 'k'}, {"technician", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'}, {0}};
	struct push p = {.prefix = AGRI_TOPIC_PREFIX_DEFAULT, .timeout_s = 30};
	const char *technician = NULL;
	char name[48];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': p.station = optarg; break;
		case 'b': p.broker = optarg; break;
		case 'u': p.username = optarg; break;
		case 'p': p.password_file = optarg; break;
		case 't': p.prefix = optarg; break;
		case 'w': p.timeout_s = atoi(optarg); break;
		case 'c': p.ca_file = optarg; break;
		case 'f': p.force = true; break;
		case 'k': p.key_file = optarg; break;
		case 'n': technician = optarg; break;
		case 'h':
			puts("usage: agrictl config push --station ID --broker URL --key NAME.key [--technician NAME]\n"
			     "       [--username U --password-file F] [--topic-prefix P] [--timeout-s 30]\n"
			     "       [--ca-file CA] [--force] FILE\n"
			     "  --key FILE         the technician's private key (agrictl provision --technician);\n"
			     "                     default $AGRI_TECHNICIAN_KEY. The config is signed with it:\n"
			     "                     a station applies it only if it trusts that technician\n"
			     "  --technician NAME  the name stations know the key by (default: FILE's name\n"
			     "                     without .key)\n"
			     "  --ca-file CA       the CA of an ssl:// broker (the hub's ca.crt)\n"
			     "  --force            push even if local validation fails (the station decides)\n"
			     "exit 0 applied, 1 rejected (the station's reason printed), 3 no ack in time");
			return 0;
		default: return 2;
		}
	}
	if (!p.station || !p.broker || optind != argc - 1) {
		fprintf(stderr, "agrictl: config push needs --station ID --broker URL FILE (see --help)\n");
		return 2;
	}
	if (!agri_station_id_valid(p.station)) {
		fprintf(stderr, "agrictl: --station: \"%s\" is not a valid station id\n", p.station);
		return 2;
	}
	if (p.timeout_s <= 0 || p.timeout_s > 3600) {
		fprintf(stderr, "agrictl: --timeout-s: expected 1..3600\n");
		return 2;
	}
	if (!p.key_file)
		p.key_file = getenv("AGRI_TECHNICIAN_KEY");
	if (!p.key_file || !p.key_file[0]) {
		fprintf(stderr, "agrictl: config push needs --key FILE, a technician's private key "
			"(agrictl provision --technician NAME --out DIR makes one)\n");
		return 2;
	}
	if (!technician) {
		/* NAME.key -> NAME */
		const char *base = strrchr(p.key_file, '/') ? strrchr(p.key_file, '/') + 1 : p.key_file;
		size_t bl = strlen(base);

		if (bl > 4 && !strcmp(base + bl - 4, ".key"))
			bl -= 4;
		snprintf(name, sizeof(name), "%.*s", (int)(bl < 40 ? bl : 40), base);
		technician = name;
	}
	if (!sign_name_valid(technician)) {
		fprintf(stderr, "agrictl: the technician's name \"%s\" is not [A-Za-z0-9_-]{1,32}: "
			"give --technician NAME\n", technician);
		return 2;
	}
	memcpy(p.technician, technician, strlen(technician) + 1); /* <= SIGN_NAME_MAX */
	p.file = argv[optind];
	return do_push(&p);
}
