/*
 * OGC SensorThings API v1.1 sink (docs/upstream.md). Entities are made on
 * first use and remembered in upstream_sta_ids (per server URL): a Thing
 * per station, a Sensor per station sensor, an ObservedProperty per metric
 * and a Datastream per (station, sensor, metric), each looked up by name
 * before it is created, so a lost local table does not duplicate them.
 * Observations go in CreateObservations batches (Data Array extension)
 * with phenomenonTime = the reading's ts.
 *
 * SensorThings servers do not deduplicate. After a restart, or after a
 * request whose outcome is unknown (timeout, reset, 5xx), the next batch
 * is first reconciled: for each of its Datastreams the observations in
 * the batch's time range are listed and rows already there are skipped.
 *
 * With two hubs (ha, docs/upstream.md "Two hubs") every observation is
 * claimed in the province's PostgreSQL before it is POSTed, by its
 * Datastream name and phenomenonTime (notify/claims.h): the other hub's
 * observations are skipped, one it holds unsent waits (the cursor stops
 * there) until it is sent or its lease lapses, and what this hub sent
 * without a claim is kept in upstream_sta_unrecorded until the claims
 * database takes it. Entities are made under the database's lock, so the
 * two hubs never create the same one twice.
 *
 * The server is not trusted with where the gateway connects: a listing's
 * @iot.nextLink is followed only on the configured server's scheme, host
 * and port (upstream_sta_link_allowed); any other makes the reconciliation
 * fail (nothing is sent blind) and is logged once with the reason.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "agri/buf.h"
#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/util.h"
#include "notify/claims.h"
#include "upstream/sink.h"

#define RESP_MAX (16 * 1024 * 1024)
#define ID_MAX 96
#define PAGES_MAX 64
#define LOG "upstream"
#define TIMEOUT_MS 30000L       /* one request */
#define LEASE_MARGIN_MS 1000    /* a claimed POST ends this long before its lease */
#define RECORD_BUDGET_MS 2000   /* recording unclaimed sends, each sync */
#define WAIT_POLL_MS 1000       /* a row the other hub holds unsent: look again */
#define KEY_MAX (3 * AGRI_ID_MAX + 3)

static const char *const q_names[] = {"ok", "suspect", "error", "maint"};

struct sta {
	char url[GW_URL_MAX];       /* without a trailing '/' */
	CURL *c;
	struct curl_slist *hdrs;
	atomic_bool cancelled;
	sqlite3 *db;
	sqlite3_stmt *id_sel, *id_ins;
	bool uncertain;             /* the server may have rows past our cursor */
	char *resp;
	size_t resp_len;
	bool resp_too_big;
	char location[GW_URL_MAX];
	struct log_complaint foreign_link; /* a nextLink off the server was refused */
	long post_timeout_ms;       /* the next POST's bound */
	/* forwarding claims (NULL: one hub) */
	struct claims *claims;
	int64_t wait_ms;            /* an entity the other hub is making: ask again */
	sqlite3_stmt *unrec_ins, *unrec_sel, *unrec_del;
	struct log_complaint unrec_fail;
	/* per batch */
	int *grp;                   /* row -> group */
	bool *skip;
	bool *check;                /* group -> reconcile it */
	char (*keys)[KEY_MAX];      /* row -> its Datastream name */
	struct claim_obs *obs;
	size_t *obs_row;            /* obs -> row */
	size_t n_obs;
	bool *flags;
	size_t cap;
};

/* --- HTTP ---------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *ctx)
{
	struct sta *s = ctx;
	size_t len = sz * n;
	char *b;

	if (s->resp_len + len + 1 > RESP_MAX) {
		s->resp_too_big = true;
		return 0;
	}
	b = realloc(s->resp, s->resp_len + len + 1);
	if (!b)
		return 0;
	s->resp = b;
	memcpy(s->resp + s->resp_len, p, len);
	s->resp_len += len;
	s->resp[s->resp_len] = '\0';
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ctx)
{
	struct sta *s = ctx;
	size_t len = sz * n;

	if (len > 9 && strncasecmp(p, "Location:", 9) == 0) {
		size_t a = 9, b = len;

		while (a < b && (p[a] == ' ' || p[a] == '\t'))
			a++;
		while (b > a && (p[b - 1] == '\r' || p[b - 1] == '\n' || p[b - 1] == ' '))
			b--;
		snprintf(s->location, sizeof(s->location), "%.*s", (int)(b - a), p + a);
	}
	return len;
}

static int on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct sta *s = ctx;

	return atomic_load(&s->cancelled) ? 1 : 0;
}

/* Performs one request (body NULL: GET). Returns the HTTP status, or
 * -errno with err. The response is in s->resp, Location in s->location. */
static long http(struct sta *s, const char *url, const char *body, char *err, size_t errlen)
{
	long status = 0;
	CURLcode rc;

	s->resp_len = 0;
	s->resp_too_big = false;
	s->location[0] = '\0';
	if (s->resp)
		s->resp[0] = '\0';
	curl_easy_setopt(s->c, CURLOPT_URL, url);
	/* A POST goes on a fresh connection: libcurl silently sends a request
	 * again when a reused connection turns out closed before any answer,
	 * and the server may have stored it the first time (a duplicate that
	 * nobody sees). GETs reuse the connection. */
	curl_easy_setopt(s->c, CURLOPT_FRESH_CONNECT, body ? 1L : 0L);
	curl_easy_setopt(s->c, CURLOPT_TIMEOUT_MS, body ? s->post_timeout_ms : TIMEOUT_MS);
	if (body) {
		curl_easy_setopt(s->c, CURLOPT_POST, 1L);
		curl_easy_setopt(s->c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(s->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else {
		curl_easy_setopt(s->c, CURLOPT_HTTPGET, 1L);
	}
	rc = curl_easy_perform(s->c);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s", curl_easy_strerror(rc));
		return rc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED
		       : rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
	}
	curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static void http_err(char *err, size_t errlen, const char *what, long status, const char *resp)
{
	snprintf(err, errlen, "%s: HTTP %ld %.120s", what, status, resp ? resp : "");
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '"')
			*p = *p == '"' ? '\'' : ' ';
}

static cJSON *parse_resp(struct sta *s)
{
	cJSON *j = NULL;
	struct agri_err e;

	if (!s->resp || agri_json_parse(s->resp, s->resp_len, RESP_MAX, 64, &j, &e) < 0)
		return NULL;
	return j;
}

/* --- ids --------------------------------------------------------------- */

/* An @iot.id as JSON text ("42" or "\"abc\"") -> its URL form "(42)". */
static void id_path(const char *lit, char *out, size_t len)
{
	if (lit[0] == '"')
		snprintf(out, len, "('%.*s')", (int)strlen(lit) - 2, lit + 1);
	else
		snprintf(out, len, "(%s)", lit);
}

static int id_from_json(const cJSON *id, char *out, size_t len)
{
	char *t;

	if (!id || (!cJSON_IsNumber(id) && !cJSON_IsString(id)))
		return -EBADMSG;
	t = cJSON_PrintUnformatted(id);
	if (!t)
		return -ENOMEM;
	snprintf(out, len, "%s", t);
	cJSON_free(t);
	return 0;
}

/* The id in a Location "…/Things(42)" or "…/Things('x')". */
static int id_from_location(const char *loc, char *out, size_t len)
{
	const char *a = strrchr(loc, '('), *b = a ? strchr(a, ')') : NULL;

	if (!a || !b || b - a < 2)
		return -EBADMSG;
	a++;
	if (*a == '\'')
		snprintf(out, len, "\"%.*s\"", (int)(b - a - 2), a + 1);
	else
		snprintf(out, len, "%.*s", (int)(b - a), a);
	return 0;
}

static int id_get(struct sta *s, const char *key, char *out, size_t len)
{
	int rc;

	sqlite3_bind_text(s->id_sel, 1, s->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->id_sel, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s->id_sel);
	if (rc == SQLITE_ROW)
		snprintf(out, len, "%s", (const char *)sqlite3_column_text(s->id_sel, 0));
	sqlite3_reset(s->id_sel);
	return rc == SQLITE_ROW ? 1 : 0;
}

static void id_put(struct sta *s, const char *key, const char *id)
{
	sqlite3_bind_text(s->id_ins, 1, s->url, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->id_ins, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->id_ins, 3, id, -1, SQLITE_STATIC);
	sqlite3_step(s->id_ins); /* lost: looked up by name next time */
	sqlite3_reset(s->id_ins);
}

/*
 * Finds the entity of collection named name (GET ?$filter=name eq '…'),
 * or creates it from body (owned: deleted here). key caches the id.
 */
static int ensure(struct sta *s, const char *key, const char *collection, const char *name,
		  cJSON *body, char *id, size_t idlen, char *err, size_t errlen)
{
	char url[GW_URL_MAX * 2], filter[256], lock[GW_URL_MAX], *esc = NULL, *text = NULL;
	bool locked = false;
	cJSON *j = NULL;
	long st;
	int rc;

	if (id_get(s, key, id, idlen)) {
		cJSON_Delete(body);
		return 0;
	}
	/* Two hubs: one looks up and creates at a time, the other finds it. */
	snprintf(lock, sizeof(lock), "sta:%s/%s", collection, name);
	if (s->claims) {
		enum claim_verdict v = claims_entity_lock(s->claims, lock, &s->wait_ms);

		if (v == CLAIM_WAIT) {
			cJSON_Delete(body);
			return -EAGAIN;
		}
		locked = v == CLAIM_WON;
	}
	snprintf(filter, sizeof(filter), "name eq '%s'", name); /* names are [A-Za-z0-9_/-] */
	esc = curl_easy_escape(s->c, filter, 0);
	if (!esc) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/%s?$filter=%s", s->url, collection, esc);
	st = http(s, url, NULL, err, errlen);
	if (st < 0) {
		rc = (int)st;
		goto out;
	}
	if (st != 200) {
		http_err(err, errlen, "lookup failed", st, s->resp);
		rc = -EIO;
		goto out;
	}
	j = parse_resp(s);
	{
		cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, "value") : NULL;

		if (!cJSON_IsArray(v)) {
			snprintf(err, errlen, "lookup of %s: no value array in the response", collection);
			rc = -EBADMSG;
			goto out;
		}
		if (cJSON_GetArraySize(v) > 0 &&
		    id_from_json(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(v, 0), "@iot.id"),
				 id, idlen) == 0) {
			id_put(s, key, id);
			rc = 0;
			goto out;
		}
	}
	text = cJSON_PrintUnformatted(body);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/%s", s->url, collection);
	st = http(s, url, text, err, errlen);
	if (st < 0) {
		rc = (int)st;
		goto out;
	}
	if (st != 201 && st != 200) {
		http_err(err, errlen, "create failed", st, s->resp);
		rc = -EIO;
		goto out;
	}
	rc = id_from_location(s->location, id, idlen);
	if (rc < 0) {
		cJSON_Delete(j);
		j = parse_resp(s);
		rc = id_from_json(j ? cJSON_GetObjectItemCaseSensitive(j, "@iot.id") : NULL, id, idlen);
	}
	if (rc < 0) {
		snprintf(err, errlen, "created %s without an id in Location or body", collection);
		goto out;
	}
	id_put(s, key, id);
out:
	if (locked)
		claims_entity_unlock(s->claims, lock);
	cJSON_Delete(body);
	cJSON_Delete(j);
	curl_free(esc);
	cJSON_free(text);
	return rc;
}

static cJSON *link_to(const char *id)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddItemToObject(o, "@iot.id", cJSON_CreateRaw(id));
	return o;
}

/* UCUM codes of the canonical units (docs/interfaces.md §3). */
static const char *ucum(const char *unit)
{
	static const char *const map[][2] = {
		{"g/L", "g/L"}, {"mS/cm", "mS/cm"}, {"°C", "Cel"}, {"pH", "[pH]"},
		{"mg/L", "mg/L"}, {"NTU", "[NTU]"}, {"m", "m"}, {"count", "{count}"},
		{"%", "%"}, {"0/1", "1"}, {"V", "V"}, {"W", "W"},
	};

	for (size_t i = 0; i < AGRI_ARRAY_SIZE(map); i++)
		if (strcmp(map[i][0], unit) == 0)
			return map[i][1];
	return NULL;
}

/* The Datastream of r (and the Thing, Sensor, ObservedProperty it needs). */
static int datastream(struct sta *s, const struct upstream_row *r, char *id, size_t idlen,
		      char *err, size_t errlen)
{
	char key[3 * AGRI_ID_MAX + 16], name[3 * AGRI_ID_MAX + 8], desc[256], def[128];
	char thing[ID_MAX], sensor[ID_MAX], prop[ID_MAX];
	const char *code;
	cJSON *b, *u;
	int rc;

	snprintf(key, sizeof(key), "D:%s/%s/%s", r->station, r->sensor, r->metric);
	if (id_get(s, key, id, idlen))
		return 0;
	/* Thing */
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", r->station);
	snprintf(desc, sizeof(desc), "agri station %s", r->station);
	cJSON_AddStringToObject(b, "description", desc);
	cJSON_AddStringToObject(cJSON_AddObjectToObject(b, "properties"), "station", r->station);
	snprintf(key, sizeof(key), "T:%s", r->station);
	if ((rc = ensure(s, key, "Things", r->station, b, thing, sizeof(thing), err, errlen)) < 0)
		return rc;
	/* Sensor */
	snprintf(name, sizeof(name), "%s/%s", r->station, r->sensor);
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", name);
	snprintf(desc, sizeof(desc), "sensor %s of station %s", r->sensor, r->station);
	cJSON_AddStringToObject(b, "description", desc);
	cJSON_AddStringToObject(b, "encodingType", "text/html");
	cJSON_AddStringToObject(b, "metadata", desc);
	snprintf(key, sizeof(key), "S:%s", name);
	if ((rc = ensure(s, key, "Sensors", name, b, sensor, sizeof(sensor), err, errlen)) < 0)
		return rc;
	/* ObservedProperty */
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", r->metric);
	snprintf(def, sizeof(def), "urn:agri:metric:%s", r->metric);
	cJSON_AddStringToObject(b, "definition", def);
	snprintf(desc, sizeof(desc), "%s (agri canonical metric)", r->metric);
	cJSON_AddStringToObject(b, "description", desc);
	snprintf(key, sizeof(key), "O:%s", r->metric);
	if ((rc = ensure(s, key, "ObservedProperties", r->metric, b, prop, sizeof(prop), err,
			 errlen)) < 0)
		return rc;
	/* Datastream */
	snprintf(name, sizeof(name), "%s/%s/%s", r->station, r->sensor, r->metric);
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "name", name);
	snprintf(desc, sizeof(desc), "%s of %s at station %s", r->metric, r->sensor, r->station);
	cJSON_AddStringToObject(b, "description", desc);
	cJSON_AddStringToObject(b, "observationType",
				"http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement");
	u = cJSON_AddObjectToObject(b, "unitOfMeasurement");
	cJSON_AddStringToObject(u, "name", r->unit);
	cJSON_AddStringToObject(u, "symbol", r->unit);
	code = ucum(r->unit);
	if (code)
		snprintf(def, sizeof(def), "http://unitsofmeasure.org/ucum.html#%s", code);
	else
		snprintf(def, sizeof(def), "urn:agri:unit:%s", r->unit);
	cJSON_AddStringToObject(u, "definition", def);
	cJSON_AddItemToObject(b, "Thing", link_to(thing));
	cJSON_AddItemToObject(b, "Sensor", link_to(sensor));
	cJSON_AddItemToObject(b, "ObservedProperty", link_to(prop));
	snprintf(key, sizeof(key), "D:%s", name);
	return ensure(s, key, "Datastreams", name, b, id, idlen, err, errlen);
}

/* --- where a server may send us ------------------------------------------ */

struct origin {
	char scheme[16];
	char host[256];
	char port[8];
	bool has_user;
};

/* link (absolute, or relative to base) parsed by libcurl into its origin;
 * the port is the scheme's default when the URL has none. */
static int origin_of(const char *base, const char *link, struct origin *o)
{
	CURLU *u = curl_url();
	char *p = NULL;
	int rc = -EINVAL;

	memset(o, 0, sizeof(*o));
	if (!u)
		return -ENOMEM;
	if ((base && curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK) ||
	    curl_url_set(u, CURLUPART_URL, link, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &p, 0) != CURLUE_OK)
		goto out;
	snprintf(o->scheme, sizeof(o->scheme), "%s", p);
	curl_free(p);
	p = NULL;
	if (curl_url_get(u, CURLUPART_HOST, &p, 0) == CURLUE_OK)
		snprintf(o->host, sizeof(o->host), "%s", p);
	curl_free(p);
	p = NULL;
	if (curl_url_get(u, CURLUPART_PORT, &p, CURLU_DEFAULT_PORT) == CURLUE_OK)
		snprintf(o->port, sizeof(o->port), "%s", p);
	curl_free(p);
	p = NULL;
	if (curl_url_get(u, CURLUPART_USER, &p, 0) == CURLUE_OK)
		o->has_user = true;
	curl_free(p);
	rc = 0;
out:
	curl_url_cleanup(u);
	return rc;
}

/* For a log line: at most 64 bytes, no control characters or quotes. */
static void clean(char *dst, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 1 < len && n < 64; s++)
		dst[n++] = (unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f ? '?' : *s;
	dst[n] = '\0';
}

int upstream_sta_link_allowed(const char *server, const char *current, const char *link,
			      char *why, size_t len)
{
	struct origin want, got;
	char a[72], b[72];

	if (strlen(link) >= GW_URL_MAX * 2) {
		snprintf(why, len, "the link is longer than %d bytes", GW_URL_MAX * 2 - 1);
		return -EPERM;
	}
	if (origin_of(NULL, server, &want) < 0)
		return -EINVAL;
	if (origin_of(current, link, &got) < 0) {
		clean(a, sizeof(a), link);
		snprintf(why, len, "not a URL: %s", a);
		return -EPERM;
	}
	clean(a, sizeof(a), got.scheme);
	if (strcasecmp(got.scheme, want.scheme) != 0) {
		snprintf(why, len, "scheme %s is not the configured server's %s", a, want.scheme);
		return -EPERM;
	}
	clean(a, sizeof(a), got.host[0] ? got.host : "(none)");
	clean(b, sizeof(b), want.host);
	if (strcasecmp(got.host, want.host) != 0) {
		snprintf(why, len, "host %s is not the configured server's %s", a, b);
		return -EPERM;
	}
	if (strcmp(got.port, want.port) != 0) {
		clean(a, sizeof(a), got.port);
		snprintf(why, len, "port %s is not the configured server's %s", a, want.port);
		return -EPERM;
	}
	if (got.has_user && !want.has_user) {
		snprintf(why, len, "the link carries credentials");
		return -EPERM;
	}
	return 0;
}

/* --- reconciliation ----------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* Marks skip[i] for the rows of group g already on the server. */
static int reconcile(struct sta *s, const char *ds, const struct upstream_row *rows, size_t n,
		     size_t taken, int g, struct upstream_send_result *res, char *err,
		     size_t errlen)
{
	char t1[AGRI_TIME_LEN + 1], t2[AGRI_TIME_LEN + 1], filter[128], path[ID_MAX + 4];
	char url[GW_URL_MAX * 2], *esc;
	int64_t lo = INT64_MAX, hi = INT64_MIN, *have = NULL;
	size_t n_have = 0, cap = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (s->grp[i] != g)
			continue;
		lo = rows[i].ts_ms < lo ? rows[i].ts_ms : lo;
		hi = rows[i].ts_ms > hi ? rows[i].ts_ms : hi;
	}
	if (agri_time_format(lo, t1, sizeof(t1)) < 0 || agri_time_format(hi, t2, sizeof(t2)) < 0)
		return 0;
	snprintf(filter, sizeof(filter), "phenomenonTime ge %s and phenomenonTime le %s", t1, t2);
	esc = curl_easy_escape(s->c, filter, 0);
	if (!esc)
		return -ENOMEM;
	id_path(ds, path, sizeof(path));
	snprintf(url, sizeof(url), "%s/Datastreams%s/Observations?$filter=%s&$select=phenomenonTime"
		 "&$top=1000", s->url, path, esc);
	curl_free(esc);
	for (int page = 0; page < PAGES_MAX && url[0]; page++) {
		long st = http(s, url, NULL, err, errlen);
		cJSON *j, *v, *o, *next;

		if (st < 0)
			return (int)st;
		if (st != 200) {
			http_err(err, errlen, "reconcile failed", st, s->resp);
			rc = -EIO;
			goto out;
		}
		j = parse_resp(s);
		v = j ? cJSON_GetObjectItemCaseSensitive(j, "value") : NULL;
		cJSON_ArrayForEach(o, v) {
			cJSON *pt = cJSON_GetObjectItemCaseSensitive(o, "phenomenonTime");
			int64_t ms;

			if (!cJSON_IsString(pt) || agri_time_parse(pt->valuestring, &ms) < 0)
				continue;
			if (n_have == cap) {
				int64_t *h = realloc(have, (cap = cap ? cap * 2 : 256) * sizeof(*h));

				if (!h) {
					cJSON_Delete(j);
					rc = -ENOMEM;
					goto out;
				}
				have = h;
			}
			have[n_have++] = ms;
		}
		next = j ? cJSON_GetObjectItemCaseSensitive(j, "@iot.nextLink") : NULL;
		if (cJSON_IsString(next)) {
			char why[200];

			if (upstream_sta_link_allowed(s->url, url, next->valuestring, why,
						      sizeof(why)) < 0) {
				log_complain(&s->foreign_link, LOG_LVL_WARN, LOG,
					     "@iot.nextLink not followed sink=sensorthings reason=\"%s\""
					     " url=%s (nothing is sent until a listing completes on"
					     " the configured server; logged once)", why, s->url);
				snprintf(err, errlen, "reconcile: @iot.nextLink not followed: %s", why);
				cJSON_Delete(j);
				rc = -EPERM;
				goto out;
			}
			snprintf(url, sizeof(url), "%s", next->valuestring);
		} else {
			url[0] = '\0';
		}
		cJSON_Delete(j);
	}
	log_release(&s->foreign_link, LOG, "listing complete again sink=sensorthings url=%s",
		    s->url);
	if (n_have)
		qsort(have, n_have, sizeof(*have), cmp_i64);
	for (size_t i = 0; i < n && n_have; i++) {
		if (s->grp[i] != g || s->skip[i])
			continue;
		if (bsearch(&rows[i].ts_ms, have, n_have, sizeof(*have), cmp_i64)) {
			s->skip[i] = true;
			if (i < taken) /* the rest is counted when the cursor passes it */
				res->duplicates++;
		}
	}
out:
	free(have);
	return rc;
}

/* --- the sink ------------------------------------------------------------ */

static void *sta_open(const struct gateway_config *cfg, sqlite3 *db)
{
	struct sta *s = calloc(1, sizeof(*s));
	size_t n;

	if (!s)
		return NULL;
	snprintf(s->url, sizeof(s->url), "%s", cfg->upstream.sensorthings_url);
	n = strlen(s->url);
	while (n && s->url[n - 1] == '/')
		s->url[--n] = '\0';
	s->db = db;
	s->uncertain = true; /* a previous run may have sent past the cursor */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	s->c = curl_easy_init();
	s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	s->hdrs = curl_slist_append(s->hdrs, "Accept: application/json");
	if (!s->c || !s->hdrs)
		goto fail;
	curl_easy_setopt(s->c, CURLOPT_HTTPHEADER, s->hdrs);
	/* Never anything but the server's own protocols (no file://, no
	 * redirects: FOLLOWLOCATION stays off), and TLS verified: libcurl's
	 * defaults (VERIFYPEER, VERIFYHOST) are left on. */
	curl_easy_setopt(s->c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s->c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(s->c, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(s->c, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(s->c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(s->c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(s->c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(s->c, CURLOPT_USERAGENT, "agri-gateway/" AGRI_VERSION);
	s->post_timeout_ms = TIMEOUT_MS;
	if (sqlite3_prepare_v3(db, "SELECT id FROM upstream_sta_ids WHERE url = ?1 AND key = ?2", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->id_sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT OR REPLACE INTO upstream_sta_ids(url, key, id)"
			       " VALUES (?1, ?2, ?3)", -1, SQLITE_PREPARE_PERSISTENT, &s->id_ins,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT INTO upstream_sta_unrecorded(datastream, ts, unclaimed)"
			       " VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET"
			       " unclaimed = unclaimed OR excluded.unclaimed", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->unrec_ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "SELECT datastream, ts, unclaimed FROM upstream_sta_unrecorded"
			       " LIMIT ?1", -1, SQLITE_PREPARE_PERSISTENT, &s->unrec_sel,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "DELETE FROM upstream_sta_unrecorded WHERE datastream = ?1"
			       " AND ts = ?2", -1, SQLITE_PREPARE_PERSISTENT, &s->unrec_del,
			       NULL) != SQLITE_OK)
		goto fail;
	return s;
fail:
	if (s->c)
		curl_easy_cleanup(s->c);
	curl_slist_free_all(s->hdrs);
	sqlite3_finalize(s->id_sel);
	sqlite3_finalize(s->id_ins);
	sqlite3_finalize(s->unrec_ins);
	sqlite3_finalize(s->unrec_sel);
	sqlite3_finalize(s->unrec_del);
	free(s);
	return NULL;
}

static int sta_connect(void *ctx, char *err, size_t errlen)
{
	struct sta *s = ctx;
	long st;

	st = http(s, s->url, NULL, err, errlen); /* the service root lists the collections */
	if (st < 0)
		return (int)st;
	if (st != 200) {
		http_err(err, errlen, "service root", st, s->resp);
		return -EIO;
	}
	return 0;
}

/* Per-batch arrays for n rows (kept between batches). */
static int reserve_rows(struct sta *s, size_t n)
{
	void *p;

	if (n <= s->cap)
		return 0;
#define GROW(f)                                                   \
	do {                                                      \
		if (!(p = realloc(s->f, n * sizeof(*s->f))))      \
			return -ENOMEM;                           \
		s->f = p;                                         \
	} while (0)
	GROW(grp);
	GROW(skip);
	GROW(check);
	GROW(keys);
	GROW(obs);
	GROW(obs_row);
	GROW(flags);
#undef GROW
	s->cap = n;
	return 0;
}

/* Whether row r may already be on the server for a reason the claims do
 * not cover: its claim may have been pruned (an observation older than
 * half the claims' keeping), or it was stored before the claims database
 * came back, and the other hub may have sent it unclaimed meanwhile. */
static bool in_doubt(struct sta *s, const struct upstream_row *r, int64_t now)
{
	int64_t back = claims_back_ms(s->claims);

	return r->ts_ms < now - CLAIMS_OBS_KEEP_MS / 2 ||
	       (back > 0 && r->received_ms < back + CLAIMS_GRACE_MS);
}

/* Sends made that the claims database does not know yet (unclaimed[i],
 * or a sent mark that failed): kept until sta_sync records them. */
static void keep_unrecorded(struct sta *s, const struct upstream_row *rows, size_t n,
			    bool unclaimed)
{
	int rc = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);

	for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
		if (s->skip[i])
			continue;
		sqlite3_bind_text(s->unrec_ins, 1, s->keys[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->unrec_ins, 2, rows[i].ts_ms);
		sqlite3_bind_int(s->unrec_ins, 3, unclaimed);
		rc = sqlite3_step(s->unrec_ins) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
		sqlite3_reset(s->unrec_ins);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		log_complain(&s->unrec_fail, LOG_LVL_WARN, LOG, "cannot keep sends to record as"
			     " claims sink=sensorthings error=\"%s\" (the other hub may send them"
			     " again; logged once)", sqlite3_errmsg(s->db));
	} else {
		log_release(&s->unrec_fail, LOG, "sends to record kept again sink=sensorthings");
	}
}

/*
 * The claims of rows[0..upto): fills skip, check (per group), and returns
 * the claims' verdict; *taken is how far the cursor may pass (the first
 * row another hub holds unsent), *lease_ms how long the rows to send stay
 * ours (from before the claim), *wait_ms when to ask again, *peer how many
 * rows before *taken the other hub sent.
 */
static enum claim_verdict claim_rows(struct sta *s, const struct upstream_row *rows, size_t upto,
				     size_t *taken, int64_t *lease_ms, int64_t *wait_ms,
				     uint64_t *peer)
{
	enum claim_verdict v;
	int64_t now = util_now_ms();
	size_t k = 0;

	*taken = upto;
	*lease_ms = INT64_MAX;
	*peer = 0;
	s->n_obs = 0;
	for (size_t i = 0; i < upto; i++) {
		snprintf(s->keys[i], KEY_MAX, "%s/%s/%s", rows[i].station, rows[i].sensor,
			 rows[i].metric);
		if (s->skip[i])
			continue;
		s->obs[k] = (struct claim_obs){.datastream = s->keys[i], .ts_ms = rows[i].ts_ms};
		s->obs_row[k++] = i;
	}
	if (!k)
		return CLAIM_WON;
	v = claims_obs_take(s->claims, s->obs, k, wait_ms);
	if (v == CLAIM_UNCLAIMED) /* the other hub may have sent some: check */
		for (size_t i = 0; i < upto; i++)
			s->check[s->grp[i]] = true;
	if (v != CLAIM_WON)
		return v;
	s->n_obs = k;
	for (size_t j = 0; j < k; j++) {
		const struct claim_obs *o = &s->obs[j];
		size_t i = s->obs_row[j];

		switch (o->verdict) {
		case OBS_WAIT: {
			/* the other hub is most likely posting it now: look again
			 * soon, until it is sent or its lease lapses */
			int64_t w = o->lease_left_ms < WAIT_POLL_MS ? o->lease_left_ms : WAIT_POLL_MS;

			if (i < *taken)
				*taken = i;
			if (w < *wait_ms || *wait_ms == 0)
				*wait_ms = w;
		}
			/* fall through */
		case OBS_DONE:
			s->skip[i] = true;
			break;
		case OBS_SEND_CHECK:
			s->check[s->grp[i]] = true;
			/* fall through */
		default:
			if (in_doubt(s, &rows[i], now))
				s->check[s->grp[i]] = true;
			if (o->lease_left_ms < *lease_ms)
				*lease_ms = o->lease_left_ms;
			break;
		}
	}
	for (size_t j = 0; j < k; j++)
		if (s->obs[j].verdict == OBS_DONE && s->obs[j].peer && s->obs_row[j] < *taken)
			(*peer)++;
	return CLAIM_WON;
}

static int sta_send(void *ctx, const struct upstream_row *rows, size_t n,
		    struct upstream_send_result *res, char *err, size_t errlen)
{
	struct sta *s = ctx;
	char (*ids)[ID_MAX] = NULL, url[GW_URL_MAX + 32], t[AGRI_TIME_LEN + 1], *text = NULL;
	enum claim_verdict cv = CLAIM_WON;
	int64_t t0 = 0, lease_ms = INT64_MAX, wait_ms = 0;
	int n_groups = 0, rc = 0;
	cJSON *body = NULL, *j = NULL, **arrays = NULL;
	size_t sent = 0, upto = n, taken = n, *order = NULL;
	long st;

	if ((rc = reserve_rows(s, n)) < 0)
		return rc;
	ids = calloc(n, sizeof(*ids));
	arrays = calloc(n, sizeof(*arrays));
	order = calloc(n, sizeof(*order));
	if (!ids || !arrays || !order) {
		rc = -ENOMEM;
		goto out;
	}
	/* Group the rows by Datastream (created on first use). */
	for (size_t i = 0; i < n; i++) {
		char id[ID_MAX];
		int g;

		rc = datastream(s, &rows[i], id, sizeof(id), err, errlen);
		if (rc == -EAGAIN) { /* the other hub is making it: the rows before now */
			upto = taken = i;
			wait_ms = s->wait_ms;
			rc = 0;
			break;
		}
		if (rc < 0)
			goto out;
		for (g = 0; g < n_groups && strcmp(ids[g], id) != 0; g++)
			;
		if (g == n_groups) {
			snprintf(ids[n_groups], ID_MAX, "%s", id);
			s->check[n_groups++] = false;
		}
		s->grp[i] = g;
		s->skip[i] = !rows[i].has_value; /* an Observation needs a result */
	}
	/* Two hubs: claim them; skip what the other hub sends. */
	s->n_obs = 0;
	if (s->claims && upto) {
		t0 = util_mono_ms();
		cv = claim_rows(s, rows, upto, &taken, &lease_ms, &wait_ms, &res->skipped);
		if (cv == CLAIM_WAIT)
			upto = taken = 0;
		claims_obs_peer(s->claims, res->skipped);
	}
	res->partial = taken < n;
	res->taken = taken;
	res->wait_ms = wait_ms;
	if (!upto)
		goto out;
	for (size_t i = 0; i < taken; i++)
		if (!rows[i].has_value)
			res->rejected++;
	for (int g = 0; g < n_groups; g++)
		if (s->uncertain || s->check[g])
			if ((rc = reconcile(s, ids[g], rows, upto, taken, g, res, err, errlen)) < 0)
				goto out;
	body = cJSON_CreateArray();
	for (int g = 0; g < n_groups; g++) {
		cJSON *o = cJSON_CreateObject(), *comp;

		cJSON_AddItemToObject(o, "Datastream", link_to(ids[g]));
		comp = cJSON_AddArrayToObject(o, "components");
		cJSON_AddItemToArray(comp, cJSON_CreateString("phenomenonTime"));
		cJSON_AddItemToArray(comp, cJSON_CreateString("result"));
		cJSON_AddItemToArray(comp, cJSON_CreateString("resultQuality"));
		cJSON_AddNumberToObject(o, "dataArray@iot.count", 0);
		arrays[g] = cJSON_AddArrayToObject(o, "dataArray");
		cJSON_AddItemToArray(body, o);
	}
	for (size_t i = 0; i < upto; i++) {
		cJSON *row;

		if (s->skip[i])
			continue;
		row = cJSON_CreateArray();
		agri_time_format(rows[i].ts_ms, t, sizeof(t));
		cJSON_AddItemToArray(row, cJSON_CreateString(t));
		cJSON_AddItemToArray(row, cJSON_CreateNumber(rows[i].value));
		cJSON_AddItemToArray(row, cJSON_CreateString(rows[i].q >= 0 && rows[i].q < 4
							     ? q_names[rows[i].q] : "error"));
		cJSON_AddItemToArray(arrays[s->grp[i]], row);
		sent++;
	}
	/* The order of the server's answer: group by group, rows in order. */
	for (int g = 0, k = 0; g < n_groups; g++)
		for (size_t i = 0; i < upto; i++)
			if (s->grp[i] == g && !s->skip[i])
				order[k++] = i;
	/* Drop empty groups; set the counts. */
	for (int g = n_groups - 1; g >= 0; g--) {
		cJSON *o = cJSON_GetArrayItem(body, g);
		int k = cJSON_GetArraySize(arrays[g]);

		if (k == 0)
			cJSON_DeleteItemFromArray(body, g);
		else
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "dataArray@iot.count"), k);
	}
	if (sent == 0)
		goto done;
	/* A claimed POST ends before its lease does: past it, the other hub
	 * may take the rows over. Too little left: let the claims lapse and
	 * take them again (this hub or the other). */
	s->post_timeout_ms = TIMEOUT_MS;
	if (lease_ms != INT64_MAX) {
		int64_t left = t0 + lease_ms - LEASE_MARGIN_MS - util_mono_ms();

		if (left < LEASE_MARGIN_MS) {
			for (size_t i = 0; i < taken; i++)
				if (!s->skip[i]) {
					res->taken = taken = i;
					break;
				}
			res->partial = true;
			res->wait_ms = 2 * LEASE_MARGIN_MS;
			goto out;
		}
		if (left < s->post_timeout_ms)
			s->post_timeout_ms = (long)left;
	}
	text = cJSON_PrintUnformatted(body);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/CreateObservations", s->url);
	st = http(s, url, text, err, errlen);
	s->post_timeout_ms = TIMEOUT_MS;
	if (st < 0) {
		rc = (int)st;
		goto out;
	}
	if (st != 201 && st != 200) {
		http_err(err, errlen, "CreateObservations", st, s->resp);
		rc = -EIO;
		if (st >= 400 && st < 500)
			rc = -EPROTO; /* the request itself was refused: nothing stored */
		goto out;
	}
	/* One entry per row: its URL, or "error" for a row the server refused. */
	j = parse_resp(s);
	if (cJSON_IsArray(j)) {
		cJSON *e;
		size_t k = 0;

		/* rows after taken are counted when the cursor passes them */
		cJSON_ArrayForEach(e, j) {
			if (cJSON_IsString(e) && strcmp(e->valuestring, "error") == 0 && k < sent &&
			    order[k] < taken)
				res->rejected++;
			k++;
		}
	}
done:
	/* Two hubs: the claims are sent (those the server had too); what the
	 * database did not take yet is recorded later (sta_sync). */
	if (s->claims && cv == CLAIM_UNCLAIMED && sent) {
		claims_obs_unclaimed(s->claims, sent);
		keep_unrecorded(s, rows, upto, true);
	} else if (s->claims && cv == CLAIM_WON && s->n_obs &&
		   claims_obs_sent(s->claims, s->obs, s->n_obs) < 0) {
		for (size_t i = 0; i < upto; i++) /* the rows this hub holds */
			s->skip[i] = true;
		for (size_t k = 0; k < s->n_obs; k++)
			if (s->obs[k].verdict == OBS_SEND || s->obs[k].verdict == OBS_SEND_CHECK)
				s->skip[s->obs_row[k]] = false;
		keep_unrecorded(s, rows, upto, false);
	}
	if (upto == n) /* every row in doubt was reconciled, or is another hub's */
		s->uncertain = false;
out:
	if (rc < 0 && rc != -EPROTO && rc != -ECONNREFUSED)
		s->uncertain = true; /* the server may have committed some of it */
	cJSON_Delete(body);
	cJSON_Delete(j);
	cJSON_free(text);
	free(ids);
	free(arrays);
	free(order);
	return rc;
}

/*
 * Two hubs: records what was sent without a claim (or whose sent mark
 * failed) in the claims database, a batch at a time for at most
 * RECORD_BUDGET_MS, and prunes old claims. Never fails the sink: the
 * claims database being away is not the server being away.
 */
static int sta_sync(void *ctx, char *err, size_t errlen)
{
	struct sta *s = ctx;
	const size_t chunk = upstream_sta_ops.batch_rows;
	int64_t end = util_mono_ms() + RECORD_BUDGET_MS;

	(void)err;
	(void)errlen;
	if (!s->claims || reserve_rows(s, chunk) < 0)
		return 0;
	while (util_mono_ms() < end) {
		size_t n = 0;

		sqlite3_bind_int64(s->unrec_sel, 1, (int64_t)chunk);
		while (n < chunk && sqlite3_step(s->unrec_sel) == SQLITE_ROW) {
			const unsigned char *d = sqlite3_column_text(s->unrec_sel, 0);

			snprintf(s->keys[n], KEY_MAX, "%s", d ? (const char *)d : "");
			s->obs[n] = (struct claim_obs){.datastream = s->keys[n],
						       .ts_ms = sqlite3_column_int64(s->unrec_sel, 1)};
			s->flags[n++] = sqlite3_column_int(s->unrec_sel, 2) != 0;
		}
		sqlite3_reset(s->unrec_sel);
		if (!n || claims_obs_record(s->claims, s->obs, s->flags, n) < 0)
			break;
		if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
			break;
		for (size_t i = 0; i < n; i++) {
			sqlite3_bind_text(s->unrec_del, 1, s->keys[i], -1, SQLITE_STATIC);
			sqlite3_bind_int64(s->unrec_del, 2, s->obs[i].ts_ms);
			sqlite3_step(s->unrec_del);
			sqlite3_reset(s->unrec_del);
		}
		if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			break; /* recorded again next time: harmless */
		}
		if (n < chunk)
			break;
	}
	claims_obs_prune(s->claims);
	return 0;
}

static void sta_set_claims(void *ctx, struct claims *c)
{
	struct sta *s = ctx;

	s->claims = c;
	claims_want_observations(c);
}

static void sta_disconnect(void *ctx)
{
	(void)ctx; /* curl keeps (or drops) the connection by itself */
}

static void sta_cancel(void *ctx)
{
	struct sta *s = ctx;

	atomic_store(&s->cancelled, true);
}

static void sta_close(void *ctx)
{
	struct sta *s = ctx;

	if (!s)
		return;
	curl_easy_cleanup(s->c);
	curl_slist_free_all(s->hdrs);
	sqlite3_finalize(s->id_sel);
	sqlite3_finalize(s->id_ins);
	sqlite3_finalize(s->unrec_ins);
	sqlite3_finalize(s->unrec_sel);
	sqlite3_finalize(s->unrec_del);
	free(s->resp);
	free(s->grp);
	free(s->skip);
	free(s->check);
	free(s->keys);
	free(s->obs);
	free(s->obs_row);
	free(s->flags);
	free(s);
}

const struct upstream_sink_ops upstream_sta_ops = {
	.name = "sensorthings",
	.batch_rows = 500,
	.open = sta_open,
	.connect = sta_connect,
	.send = sta_send,
	.sync = sta_sync,
	.disconnect = sta_disconnect,
	.cancel = sta_cancel,
	.close = sta_close,
	.set_claims = sta_set_claims,
};
