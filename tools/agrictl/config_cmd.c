/*
 * `agrictl config validate` and `agrictl config push`, and the signed push
 * that `agrictl maint` shares (agrictl_push_doc).
 *
 * Validation runs the daemons' own parsers (station_config_parse,
 * gateway_config_load, the rules parser, agri_profile_parse) and reports
 * every error, each as FILE:LINE:COLUMN: path: reason: after an error the
 * offending member (or, when it is missing, its object) is taken out of
 * the document and the parser runs again, until it passes or nothing is
 * left to take out; each error's position is that of the member in the
 * file as written (jsonpos.c), followed through the removals by node.
 *
 * Push serialises the document with the next version, signs exactly those
 * bytes with the technician's Ed25519 key and publishes them in the
 * signature envelope (agri/sign.h) as the station's retained desired
 * config, then waits for the station's config/ack (hub.c's MQTTClient).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
#include "hub.h"
#include "jsonpos.h"
#include "msgs.h"

#define CONFIG_MAX (1024 * 1024) /* gateway.json's limit; the others' are lower */
#define ERRORS_MAX 25

enum file_kind { KIND_UNKNOWN, KIND_STATION, KIND_GATEWAY, KIND_RULES, KIND_PROFILE };
static const char *const kind_names[] = {"unknown", "station", "gateway", "rules", "profile"};

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

/* ---- validation ---- */

/* Where each node of the document as written is: its path there. */
struct node_path {
	const cJSON *node;
	char path[AGRI_ERR_PATH_MAX];
};

struct validation {
	const char *file;        /* the file as named on the command line */
	const char *text;        /* its bytes */
	size_t len;
	enum file_kind kind;
	cJSON *doc;              /* the document, trimmed as errors are found */
	struct node_path *paths; /* every node of the original document */
	size_t n_paths, cap_paths;
	char reported[ERRORS_MAX][AGRI_ERR_PATH_MAX];
	size_t n_errors;
	bool more_hidden; /* the loop stopped before the parser passed */
};

static void map_paths(struct validation *v, const cJSON *node, const char *path)
{
	char sub[AGRI_ERR_PATH_MAX];
	int i = 0;

	if (v->n_paths == v->cap_paths) {
		size_t cap = v->cap_paths ? v->cap_paths * 2 : 256;
		struct node_path *p = realloc(v->paths, cap * sizeof(*p));

		if (!p)
			return;
		v->paths = p;
		v->cap_paths = cap;
	}
	v->paths[v->n_paths].node = node;
	snprintf(v->paths[v->n_paths++].path, AGRI_ERR_PATH_MAX, "%s", path);
	for (const cJSON *c = node->child; c; c = c->next, i++) {
		if (cJSON_IsArray(node))
			agri_path_index(sub, sizeof(sub), path, i);
		else
			agri_path_key(sub, sizeof(sub), path, c->string ? c->string : "");
		map_paths(v, c, sub);
	}
}

static const char *orig_path(const struct validation *v, const cJSON *node)
{
	for (size_t i = 0; i < v->n_paths; i++)
		if (v->paths[i].node == node)
			return v->paths[i].path;
	return NULL;
}

/* The node at path in the current document, or NULL; *deepest the
 * deepest node that path reaches and *rest the part of path below it
 * (a missing key: "bus", "[3]"). */
static cJSON *walk(cJSON *doc, const char *path, cJSON **deepest, const char **rest)
{
	cJSON *at = doc;
	const char *p = path;

	while (*p) {
		cJSON *next;
		const char *seg;

		if (*p == '.') {
			p++;
			continue;
		}
		seg = p;
		if (*p == '[') {
			char *end;
			long n = strtol(p + 1, &end, 10);

			next = *end == ']' && cJSON_IsArray(at) ? cJSON_GetArrayItem(at, (int)n) : NULL;
			p = *end == ']' ? end + 1 : p + strlen(p);
		} else {
			size_t k = strcspn(p, ".[");
			char key[AGRI_ERR_PATH_MAX];

			snprintf(key, sizeof(key), "%.*s", (int)k, p);
			next = cJSON_IsObject(at) ? cJSON_GetObjectItemCaseSensitive(at, key) : NULL;
			p += k;
		}
		if (!next) {
			*deepest = at;
			*rest = seg;
			return NULL;
		}
		at = next;
	}
	*deepest = at;
	*rest = p;
	return at;
}

/* The object or array holding node, or NULL. */
static cJSON *holder_of(cJSON *doc, const cJSON *node)
{
	for (cJSON *c = doc->child; c; c = c->next) {
		cJSON *h;

		if (c == node)
			return doc;
		if (c->child && (h = holder_of(c, node)))
			return h;
	}
	return NULL;
}

/* Runs the file's own parser over the document as it is now: 0 or <0
 * with *e. Gateway and rules files are read from a file beside the
 * original (their relative paths resolve the same); when that cannot be
 * written, from the original once (only its first error). */
static int run_parser(struct validation *v, bool first, struct agri_err *e)
{
	static struct station_config scfg;
	static struct gateway_config gcfg;
	static struct agri_profile prof;
	char *text = first ? NULL : cJSON_PrintUnformatted(v->doc);
	const char *t = first ? v->text : text;
	size_t len = first ? v->len : (text ? strlen(text) : 0);
	char tmp[PATH_MAX];
	int rc = -EINVAL, fd = -1;

	if (!t) {
		agri_err_set(e, "", "out of memory");
		return -ENOMEM;
	}
	switch (v->kind) {
	case KIND_STATION:
		rc = station_config_parse(t, len, v->file, &scfg, e);
		break;
	case KIND_PROFILE:
		rc = agri_profile_parse(t, len, &prof, e);
		break;
	case KIND_GATEWAY:
	case KIND_RULES:
		if (first) {
			snprintf(tmp, sizeof(tmp), "%s", v->file);
		} else {
			const char *slash = strrchr(v->file, '/');

			snprintf(tmp, sizeof(tmp), "%.*s.agrictl-validate-XXXXXX",
				 slash ? (int)(slash - v->file + 1) : 0, v->file);
			fd = mkstemp(tmp);
			if (fd < 0 || write(fd, t, len) != (ssize_t)len) {
				if (fd >= 0) {
					close(fd);
					unlink(tmp);
				}
				cJSON_free(text);
				return 1; /* cannot go on: stop after the first error */
			}
			close(fd);
		}
		rc = v->kind == KIND_GATEWAY ? gateway_config_load(tmp, &gcfg, e)
					     : rules_validate_file(tmp, e);
		if (!first)
			unlink(tmp);
		break;
	default:
		agri_err_set(e, "", "not a station, gateway, rules or profile file "
			     "(expected a \"station\", \"db\", \"rules\" or \"registers\" key)");
		rc = -EINVAL;
	}
	cJSON_free(text);
	return rc < 0 ? rc : 0;
}

static void report(struct validation *v, const char *path, const char *msg)
{
	int line, col;
	size_t off = jsonpos_find(v->text, v->len, path);

	jsonpos_of_offset(v->text, v->len, off, &line, &col);
	fprintf(stderr, "%s:%d:%d: %s%s%s\n", v->file, line, col, path, *path ? ": " : "", msg);
	if (v->n_errors < ERRORS_MAX) {
		size_t n = strnlen(path, AGRI_ERR_PATH_MAX - 1);

		memcpy(v->reported[v->n_errors], path, n);
		v->reported[v->n_errors][n] = '\0';
	}
	v->n_errors++;
}

static bool was_reported(const struct validation *v, const char *path)
{
	for (size_t i = 0; i < v->n_errors && i < ERRORS_MAX; i++)
		if (!strcmp(v->reported[i], path))
			return true;
	return false;
}

/* A required member taken out: put back a sibling's (the same key of
 * another element of the same array), so the parser goes on to the rest.
 * True when one was found. */
static bool borrow_sibling(struct validation *v, cJSON *holder, const char *key)
{
	cJSON *array = holder_of(v->doc, holder);

	if (!array || !cJSON_IsArray(array) || !key || strchr(key, '[') || strchr(key, '.'))
		return false;
	for (cJSON *e = array->child; e; e = e->next) {
		const cJSON *val = e == holder ? NULL : cJSON_GetObjectItemCaseSensitive(e, key);

		if (val) {
			cJSON_AddItemToObject(holder, key, cJSON_Duplicate(val, true));
			return true;
		}
	}
	return false;
}

/* Every error of the document (see the file comment). Stops when the
 * only way on is to take out a whole element or object: the errors that
 * would follow could be its consequences. */
static void validate_loop(struct validation *v)
{
	for (int round = 0; round < 4 * ERRORS_MAX && v->n_errors < ERRORS_MAX; round++) {
		struct agri_err e = {0};
		char path[2 * AGRI_ERR_PATH_MAX];
		cJSON *node, *deepest, *holder;
		const char *rest, *op;
		bool repeat;
		int rc = run_parser(v, round == 0, &e);

		if (rc == 0)
			return;
		/* The error's place in the file as written. */
		node = walk(v->doc, e.path, &deepest, &rest);
		op = orig_path(v, node ? node : deepest);
		if (!op)
			snprintf(path, sizeof(path), "%s", e.path);
		else if (node)
			snprintf(path, sizeof(path), "%s", op);
		else
			snprintf(path, sizeof(path), "%s%s%s", op, *op && *rest != '[' ? "." : "",
				 rest);
		repeat = was_reported(v, path);
		if (!repeat)
			report(v, path, e.msg);
		if (rc > 0 || !e.path[0])
			break; /* the document as a whole: nothing to take out */
		if (node && !repeat && node != v->doc && (holder = holder_of(v->doc, node))) {
			/* The offending member out; the parser's default takes over. */
			cJSON_Delete(cJSON_DetachItemViaPointer(holder, node));
			continue;
		}
		/* It is required (or missing): a sibling's value, else stop. */
		if (!node && deepest && cJSON_IsObject(deepest) && borrow_sibling(v, deepest, rest))
			continue;
		if (node && repeat && (holder = holder_of(v->doc, node)) && cJSON_IsObject(holder) &&
		    node->string) {
			char key[AGRI_ERR_PATH_MAX];

			snprintf(key, sizeof(key), "%s", node->string);
			cJSON_Delete(cJSON_DetachItemViaPointer(holder, node));
			if (borrow_sibling(v, holder, key))
				continue;
		}
		if (run_parser(v, false, &e) != 0)
			v->more_hidden = true;
		break;
	}
}

/* Validates path, printing every error; on success writes its kind.
 * Returns 0 or 78. */
static int validate_file(const char *path, enum file_kind *kind_out)
{
	struct validation v = {.file = path};
	struct agri_err e = {0};
	char *buf = NULL;
	size_t len;
	int rc;

	rc = util_read_file(path, CONFIG_MAX, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, T("%s: cannot read: %s\n"), path,
			rc == -EFBIG ? T("larger than 1 MiB") : strerror(-rc));
		return AGRI_EXIT_CONFIG;
	}
	v.text = buf;
	v.len = len;
	rc = agri_json_parse(buf, len, CONFIG_MAX, AGRI_JSON_DEPTH_MAX, &v.doc, &e);
	if (rc < 0) {
		/* "invalid JSON at byte 54": the line and column of that byte. */
		const char *at = strstr(e.msg, "at byte ");
		int line = 1, col = 1;

		if (at)
			jsonpos_of_offset(buf, len, (size_t)strtoull(at + 8, NULL, 10), &line, &col);
		fprintf(stderr, "%s:%d:%d: %s\n", path, line, col, e.msg);
		free(buf);
		return AGRI_EXIT_CONFIG;
	}
	v.kind = detect(v.doc);
	map_paths(&v, v.doc, "");
	validate_loop(&v);
	if (v.n_errors > 1)
		fprintf(stderr, v.more_hidden ? T("%s: %zu error(s); more may follow from them: fix "
						   "these and validate again\n") :
			T("%s: %zu errors\n"), path, v.n_errors);
	cJSON_Delete(v.doc);
	free(v.paths);
	free(buf);
	if (v.n_errors)
		return AGRI_EXIT_CONFIG;
	*kind_out = v.kind;
	return 0;
}

static void validate_usage(FILE *f)
{
	fputs("usage: agrictl config validate FILE\n"
	      "  validate a station, gateway, rules or profile file with the daemons' own code;\n"
	      "  every error as FILE:LINE:COLUMN: path: reason\n"
	      "exit 0 \"FILE: ok (kind)\", 78 invalid\n", f);
}

int agrictl_config_validate(int argc, char **argv)
{
	enum file_kind kind;
	int rc;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		validate_usage(stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(T("agrictl: usage: agrictl config validate FILE\n"), stderr);
		return AGRI_EXIT_USAGE;
	}
	rc = validate_file(argv[1], &kind);
	if (rc == 0)
		printf(T("%s: ok (%s)\n"), argv[1], kind_names[kind]);
	return rc;
}

/* ---- push ---- */

#define PUSH_NO_ACK 3 /* exit code: published, no ack within --timeout-s */

/* Retained config messages of one topic (hub_collect's callback). */
struct retained {
	char *msg;
	size_t len;
};

static void keep_retained(void *ctx, const char *topic, const void *payload, size_t len)
{
	struct retained *r = ctx;

	(void)topic;
	free(r->msg);
	r->msg = malloc(len + 1);
	if (!r->msg) {
		r->len = 0;
		return;
	}
	memcpy(r->msg, payload, len);
	r->msg[len] = '\0';
	r->len = len;
}

int agrictl_retained_config(MQTTClient c, const char *topic, cJSON **doc, int64_t *version)
{
	struct retained r = {0};
	struct agri_err e;
	char by[SIGN_NAME_MAX + 1];
	unsigned char sig[SIGN_ED25519_LEN];
	size_t head;
	int rc = -ENOENT;

	if (doc)
		*doc = NULL;
	*version = 0;
	if (hub_collect(c, topic, 700, 3000, keep_retained, &r) < 0)
		return -EIO;
	if (!r.msg || !r.len)
		goto out;
	agri_config_version(r.msg, r.len, version, &e);
	rc = 0;
	if (!doc)
		goto out;
	/* The document the signature covers: the head, then "}". */
	if (sign_envelope_open(r.msg, r.len, &head, by, sig) == 0) {
		r.msg[head] = '}';
		r.len = head + 1;
	}
	if (agri_json_parse(r.msg, r.len, STATION_CONFIG_MAX_BYTES, AGRI_JSON_DEPTH_MAX, doc,
			    &e) < 0)
		rc = -EBADMSG;
out:
	free(r.msg);
	return rc;
}

/* Waits --timeout-s for the station's config/ack of version. Returns 0
 * (applied), 1 (rejected) or PUSH_NO_ACK. */
static int push_wait_ack(const struct push_target *p, MQTTClient c, int64_t version,
			 const char *what)
{
	int64_t deadline = util_mono_ms() + (int64_t)p->timeout_s * 1000;
	struct agri_err e;

	while (util_mono_ms() < deadline) {
		struct agri_config_ack a;
		MQTTClient_message *m = NULL;
		char *t = NULL;
		int tl = 0, rc;

		if (MQTTClient_receive(c, &t, &tl, &m, 500) != MQTTCLIENT_SUCCESS || !m) {
			if (t)
				MQTTClient_free(t);
			continue;
		}
		rc = agri_config_ack_decode(m->payload, (size_t)m->payloadlen, &a, &e);
		MQTTClient_freeMessage(&m);
		MQTTClient_free(t);
		if (rc < 0 || a.version != version)
			continue;
		if (a.applied) {
			printf(T("%s: version %lld applied (signed by %s)%s%s\n"), p->station,
			       (long long)version, a.signed_by[0] ? a.signed_by : p->technician,
			       what ? ": " : "", what ? what : "");
			return 0;
		}
		printf(T("%s: version %lld rejected: %s\n"), p->station, (long long)version, a.error);
		return AGRI_EXIT_FAIL;
	}
	return PUSH_NO_ACK;
}

int agrictl_push_doc(const struct push_target *p, MQTTClient c, cJSON *doc, const char *what)
{
	MQTTClient_message msg = MQTTClient_message_initializer;
	char topic[AGRI_TOPIC_MAX], ack_topic[AGRI_TOPIC_MAX];
	unsigned char sig[SIGN_ED25519_LEN];
	struct sign_key *key = NULL;
	char *out = NULL, *sealed = NULL;
	const cJSON *ver;
	int64_t version, retained;
	int sealed_len = 0, result, rc;
	size_t len;

	if (agri_topic_build(topic, sizeof(topic), p->hub.prefix, AGRI_TOPIC_CONFIG, p->station) < 0 ||
	    agri_topic_build(ack_topic, sizeof(ack_topic), p->hub.prefix, AGRI_TOPIC_CONFIG_ACK,
			     p->station) < 0) {
		fprintf(stderr, T("agrictl: invalid station id or topic prefix\n"));
		return AGRI_EXIT_USAGE;
	}
	if ((rc = sign_key_read_private(p->key_file, &key)) < 0) {
		fprintf(stderr, "agrictl: --key %s: %s\n", p->key_file,
			rc == -EBADMSG ? T("not an Ed25519 private key (agrictl provision --technician)")
				       : strerror(-rc));
		return AGRI_EXIT_FAIL;
	}
	if (MQTTClient_subscribe(c, ack_topic, 1) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, T("agrictl: cannot subscribe to %s: may this account read it? "
				  "(the broker's ACL)\n"), ack_topic);
		result = AGRI_EXIT_FAIL;
		goto out;
	}
	/* The version: one past the retained config's, or the document's own
	 * when that is higher. */
	agrictl_retained_config(c, topic, NULL, &retained);
	version = retained + 1;
	ver = cJSON_GetObjectItemCaseSensitive(doc, "version");
	if (cJSON_IsNumber(ver) && ver->valuedouble >= (double)version)
		version = (int64_t)ver->valuedouble;
	cJSON_DeleteItemFromObjectCaseSensitive(doc, "version");
	cJSON_AddNumberToObject(doc, "version", (double)version);
	/* The document as sent, version and station inside; the signature
	 * covers exactly its bytes. */
	out = cJSON_PrintUnformatted(doc);
	len = out ? strlen(out) : 0;
	sealed = malloc(len + SIGN_ENVELOPE_MAX + 1);
	if (!out || !sealed || sign_ed25519(key, out, len, sig) < 0 ||
	    (sealed_len = sign_envelope_seal(out, len, p->technician, sig, sealed,
					     len + SIGN_ENVELOPE_MAX + 1)) < 0) {
		fprintf(stderr, T("agrictl: cannot sign the config\n"));
		result = AGRI_EXIT_FAIL;
		goto out;
	}
	if (sealed_len > STATION_CONFIG_MAX_BYTES) {
		fprintf(stderr, T("agrictl: signed, the config is %d bytes: a station takes at most %d\n"),
			sealed_len, STATION_CONFIG_MAX_BYTES);
		result = AGRI_EXIT_CONFIG;
		goto out;
	}
	msg.payload = sealed;
	msg.payloadlen = sealed_len;
	msg.qos = 1;
	msg.retained = 1;
	if ((rc = MQTTClient_publishMessage(c, topic, &msg, NULL)) != MQTTCLIENT_SUCCESS) {
		fprintf(stderr, T("agrictl: publish to %s failed: %s\n"), topic, MQTTClient_strerror(rc));
		result = AGRI_EXIT_FAIL;
		goto out;
	}
	printf(T("pushed version %lld signed by %s to %s; waiting for the station's ack...\n"),
	       (long long)version, p->technician, topic);
	fflush(stdout);
	result = push_wait_ack(p, c, version, what);
	if (result == PUSH_NO_ACK) {
		/* MQTT 3.1.1 acknowledges a publication the ACL drops: whether the
		 * config is waiting for the station, only the broker can say. */
		agrictl_retained_config(c, topic, NULL, &retained);
		if (retained == version)
			fprintf(stderr, T("agrictl: no ack from %s within %d s: the config stays "
					  "retained; the station applies it when it connects (its "
					  "status: agrictl status %s)\n"), p->station, p->timeout_s,
				p->station);
		else
			fprintf(stderr, T("agrictl: no ack from %s within %d s, and the broker did not "
					  "keep the config (it retains version %lld): this account may "
					  "not write %s (the broker's ACL), nothing waits for the "
					  "station\n"), p->station, p->timeout_s, (long long)retained,
				topic);
	}
out:
	MQTTClient_unsubscribe(c, ack_topic);
	sign_key_free(key);
	free(sealed);
	cJSON_free(out);
	return result;
}

int agrictl_push_key(struct push_target *p, const char *technician)
{
	char name[48];

	if (!p->key_file)
		p->key_file = getenv("AGRI_TECHNICIAN_KEY");
	if (!p->key_file || !p->key_file[0]) {
		fprintf(stderr, T("agrictl: a signed push needs --key FILE, a technician's private "
				  "key (agrictl provision --technician NAME --out DIR makes one)\n"));
		return AGRI_EXIT_USAGE;
	}
	if (!technician) {
		/* NAME.key -> NAME */
		const char *base = strrchr(p->key_file, '/') ? strrchr(p->key_file, '/') + 1
							      : p->key_file;
		size_t bl = strlen(base);

		if (bl > 4 && !strcmp(base + bl - 4, ".key"))
			bl -= 4;
		snprintf(name, sizeof(name), "%.*s", (int)(bl < 40 ? bl : 40), base);
		technician = name;
	}
	if (!sign_name_valid(technician)) {
		fprintf(stderr, T("agrictl: the technician's name \"%s\" is not [A-Za-z0-9_-]{1,32}: "
				  "give --technician NAME\n"), technician);
		return AGRI_EXIT_USAGE;
	}
	memcpy(p->technician, technician, strlen(technician) + 1); /* <= SIGN_NAME_MAX */
	return 0;
}

static void push_usage(FILE *f)
{
	fputs("usage: agrictl config push --station ID --broker URL --key NAME.key [--technician NAME]\n"
	      "       [--username U --password-file F] [--topic-prefix P] [--timeout-s 30]\n"
	      "       [--ca-file CA] [--force] FILE\n"
	      "  --key FILE         the technician's private key (agrictl provision --technician);\n"
	      "                     default $AGRI_TECHNICIAN_KEY. The config is signed with it:\n"
	      "                     a station applies it only if it trusts that technician\n"
	      "  --technician NAME  the name stations know the key by (default: FILE's name\n"
	      "                     without .key)\n"
	      "  --ca-file CA       the CA of an ssl:// broker (the hub's ca.crt)\n"
	      "  --force            push even if local validation fails (the station decides)\n"
	      "The station runs it on probation (probation_s) and acks once every bus opened\n"
	      "and every sensor answered, or rolls it back.\n"
	      "exit 0 applied, 1 rejected (the station's reason printed), 3 no ack in time\n", f);
}

int agrictl_config_push(int argc, char **argv)
{
	static const struct option opts[] = {
		HUB_LONG_OPTS, {"station", required_argument, 0, 's'},
		{"timeout-s", required_argument, 0, 'w'}, {"force", no_argument, 0, 'f'},
		{"key", required_argument, 0, 'k'}, {"technician", required_argument, 0, 'n'},
		{"help", no_argument, 0, 'h'}, {0}};
	struct push_target p = {.timeout_s = 30};
	const char *technician = NULL, *file;
	struct agri_err e = {0};
	enum file_kind kind;
	cJSON *doc = NULL;
	const cJSON *st;
	MQTTClient c = NULL;
	char *buf = NULL;
	size_t len;
	bool force = false;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (hub_opt(&p.hub, ch, optarg))
			continue;
		switch (ch) {
		case 's': p.station = optarg; break;
		case 'w': p.timeout_s = atoi(optarg); break;
		case 'f': force = true; break;
		case 'k': p.key_file = optarg; break;
		case 'n': technician = optarg; break;
		case 'h': push_usage(stdout); return 0;
		default: return AGRI_EXIT_USAGE;
		}
	}
	hub_defaults(&p.hub);
	if (!p.station || optind != argc - 1) {
		fprintf(stderr, T("agrictl: config push needs --station ID and FILE (see "
				  "agrictl config push --help)\n"));
		return AGRI_EXIT_USAGE;
	}
	if (!agri_station_id_valid(p.station)) {
		fprintf(stderr, T("agrictl: --station: \"%s\" is not a valid station id\n"), p.station);
		return AGRI_EXIT_USAGE;
	}
	if (p.timeout_s <= 0 || p.timeout_s > 3600) {
		fprintf(stderr, T("agrictl: --timeout-s: expected 1..3600\n"));
		return AGRI_EXIT_USAGE;
	}
	if ((rc = agrictl_push_key(&p, technician)) != 0)
		return rc;
	file = argv[optind];
	if (!force && (rc = validate_file(file, &kind)) != 0)
		return rc; /* the reasons are printed; --force pushes anyway */
	if (util_read_file(file, CONFIG_MAX, &buf, &len) < 0 ||
	    agri_json_parse(buf, len, CONFIG_MAX, AGRI_JSON_DEPTH_MAX, &doc, &e) < 0 ||
	    !cJSON_IsObject(doc)) {
		fprintf(stderr, "%s: %s\n", file, *e.msg ? e.msg : T("not a JSON object"));
		rc = AGRI_EXIT_CONFIG;
		goto out;
	}
	st = cJSON_GetObjectItemCaseSensitive(doc, "station");
	if (!force && (!cJSON_IsString(st) || strcmp(st->valuestring, p.station) != 0)) {
		fprintf(stderr, T("%s: station: is not \"%s\" (the --station given)\n"), file, p.station);
		rc = AGRI_EXIT_CONFIG;
		goto out;
	}
	if ((rc = hub_connect(&p.hub, &c)) != 0)
		goto out;
	rc = agrictl_push_doc(&p, c, doc, NULL);
out:
	hub_close(&c);
	cJSON_Delete(doc);
	free(buf);
	return rc;
}

static void config_usage(FILE *f)
{
	fputs("usage: agrictl config validate FILE\n"
	      "       agrictl config push --station ID --key NAME.key [options] FILE\n"
	      "  validate  check a station, gateway, rules or profile file (every error,\n"
	      "            FILE:LINE:COLUMN: path: reason)\n"
	      "  push      sign a station.json and send it to the station (agrictl config push --help)\n",
	      f);
}

int agrictl_config(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "validate") == 0)
		return agrictl_config_validate(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "push") == 0)
		return agrictl_config_push(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		config_usage(stdout);
		return 0;
	}
	fprintf(stderr, T("agrictl: config: expected \"validate\" or \"push\" (see agrictl config "
			  "--help)\n"));
	return AGRI_EXIT_USAGE;
}
