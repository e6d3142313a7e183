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
#include "upstream/sink.h"

#define RESP_MAX (16 * 1024 * 1024)
#define ID_MAX 96
#define PAGES_MAX 64
#define LOG "upstream"

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
	/* per batch */
	int *grp;                   /* row -> group */
	bool *skip;
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
	char url[GW_URL_MAX * 2], filter[256], *esc = NULL, *text = NULL;
	cJSON *j = NULL;
	long st;
	int rc;

	if (id_get(s, key, id, idlen)) {
		cJSON_Delete(body);
		return 0;
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
		     int g, struct upstream_send_result *res, char *err, size_t errlen)
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
	if (sqlite3_prepare_v3(db, "SELECT id FROM upstream_sta_ids WHERE url = ?1 AND key = ?2", -1,
			       SQLITE_PREPARE_PERSISTENT, &s->id_sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v3(db, "INSERT OR REPLACE INTO upstream_sta_ids(url, key, id)"
			       " VALUES (?1, ?2, ?3)", -1, SQLITE_PREPARE_PERSISTENT, &s->id_ins,
			       NULL) != SQLITE_OK)
		goto fail;
	return s;
fail:
	if (s->c)
		curl_easy_cleanup(s->c);
	curl_slist_free_all(s->hdrs);
	sqlite3_finalize(s->id_sel);
	sqlite3_finalize(s->id_ins);
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

static int reserve_rows(struct sta *s, size_t n)
{
	int *g;
	bool *k;

	if (n <= s->cap)
		return 0;
	g = realloc(s->grp, n * sizeof(*g));
	if (g)
		s->grp = g;
	k = realloc(s->skip, n * sizeof(*k));
	if (k)
		s->skip = k;
	if (!g || !k)
		return -ENOMEM;
	s->cap = n;
	return 0;
}

static int sta_send(void *ctx, const struct upstream_row *rows, size_t n,
		    struct upstream_send_result *res, char *err, size_t errlen)
{
	struct sta *s = ctx;
	char (*ids)[ID_MAX] = NULL, url[GW_URL_MAX + 32], t[AGRI_TIME_LEN + 1], *text = NULL;
	int n_groups = 0, rc = 0;
	cJSON *body = NULL, *j = NULL, **arrays = NULL;
	long st;
	size_t sent = 0;

	if ((rc = reserve_rows(s, n)) < 0)
		return rc;
	ids = calloc(n, sizeof(*ids));
	arrays = calloc(n, sizeof(*arrays));
	if (!ids || !arrays) {
		rc = -ENOMEM;
		goto out;
	}
	/* Group the rows by Datastream (created on first use). */
	for (size_t i = 0; i < n; i++) {
		char id[ID_MAX];
		int g;

		s->skip[i] = !rows[i].has_value; /* an Observation needs a result */
		if (s->skip[i])
			res->rejected++;
		if ((rc = datastream(s, &rows[i], id, sizeof(id), err, errlen)) < 0)
			goto out;
		for (g = 0; g < n_groups && strcmp(ids[g], id) != 0; g++)
			;
		if (g == n_groups)
			snprintf(ids[n_groups++], ID_MAX, "%s", id);
		s->grp[i] = g;
	}
	if (s->uncertain)
		for (int g = 0; g < n_groups; g++)
			if ((rc = reconcile(s, ids[g], rows, n, g, res, err, errlen)) < 0)
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
	for (size_t i = 0; i < n; i++) {
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
	text = cJSON_PrintUnformatted(body);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/CreateObservations", s->url);
	st = http(s, url, text, err, errlen);
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

		cJSON_ArrayForEach(e, j)
			if (cJSON_IsString(e) && strcmp(e->valuestring, "error") == 0)
				res->rejected++;
	}
done:
	s->uncertain = false;
out:
	if (rc < 0 && rc != -EPROTO && rc != -ECONNREFUSED)
		s->uncertain = true; /* the server may have committed some of it */
	cJSON_Delete(body);
	cJSON_Delete(j);
	cJSON_free(text);
	free(ids);
	free(arrays);
	return rc;
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
	free(s->resp);
	free(s->grp);
	free(s->skip);
	free(s);
}

const struct upstream_sink_ops upstream_sta_ops = {
	.name = "sensorthings",
	.batch_rows = 500,
	.open = sta_open,
	.connect = sta_connect,
	.send = sta_send,
	.sync = NULL,
	.disconnect = sta_disconnect,
	.cancel = sta_cancel,
	.close = sta_close,
};
