/*
 * Catch-up digests and details: hashing, encoding, a strict decoder and
 * the comparison (see catchup.h). Pure: no I/O, no globals.
 */
#include "core/catchup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "agri/json.h"
#include "agri/msg.h"
#include "agri/util.h"

#define NUM_MAX 9007199254740991.0 /* 2^53 - 1: exact in a double */

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	h ^= 0xff; /* a separator: ("ab", "c") != ("a", "bc") */
	return h * 0x100000001b3ULL;
}

uint64_t cu_group_hash(const char *sensor, const char *metric, int64_t hour_ms,
		       uint64_t n, uint64_t ts_sum)
{
	uint64_t h = fnv(fnv(0xcbf29ce484222325ULL, sensor), metric);

	return mix(h ^ mix((uint64_t)hour_ms ^ mix(n ^ mix(ts_sum))));
}

static bool put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static bool put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *pos)
		return false;
	*pos += (size_t)n;
	return true;
}

int cu_digest_encode(const struct cu_digest *d, char *buf, size_t len)
{
	bool detail = d->station[0] != '\0';
	size_t pos = 0;

	if (!put(buf, len, &pos, "{\"v\":1,\"hub\":\"%s\"", d->hub))
		return -ENOSPC;
	if (detail && !put(buf, len, &pos, ",\"peer\":\"%s\",\"station\":\"%s\"", d->peer,
			   d->station))
		return -ENOSPC;
	if (!put(buf, len, &pos, ",\"from\":%" PRId64 ",\"to\":%" PRId64 ",\"%s\":[", d->from_ms,
		 d->to_ms, detail ? "hours" : "stations"))
		return -ENOSPC;
	for (size_t i = 0; i < d->n; i++) {
		const struct cu_entry *e = &d->e[i];
		bool ok = detail ? put(buf, len, &pos, "%s[%" PRId64 ",%" PRIu64 ",\"%016" PRIx64 "\"]",
				       i ? "," : "", e->hour_ms, e->n, e->hash)
				 : put(buf, len, &pos, "%s[\"%s\",%" PRIu64 ",\"%016" PRIx64 "\"]",
				       i ? "," : "", e->key, e->n, e->hash);
		if (!ok)
			return -ENOSPC;
	}
	if (!put(buf, len, &pos, "]}"))
		return -ENOSPC;
	return (int)pos;
}

/* A non-negative integer below 2^53 (ms, counts). */
static bool get_int(const cJSON *o, const char *key, int64_t *out)
{
	const cJSON *v = key ? cJSON_GetObjectItemCaseSensitive(o, key) : o;

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > NUM_MAX ||
	    v->valuedouble != (double)(int64_t)v->valuedouble)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool get_id(const cJSON *o, const char *key, char *out, bool station)
{
	const cJSON *v = key ? cJSON_GetObjectItemCaseSensitive(o, key) : o;

	if (!cJSON_IsString(v) || strlen(v->valuestring) > AGRI_ID_MAX ||
	    !(station ? agri_station_id_valid(v->valuestring) : agri_ident_valid(v->valuestring)))
		return false;
	snprintf(out, AGRI_ID_MAX + 1, "%s", v->valuestring);
	return true;
}

static bool get_hash(const cJSON *v, uint64_t *out)
{
	char *end;

	if (!cJSON_IsString(v) || strlen(v->valuestring) != 16)
		return false;
	for (const char *p = v->valuestring; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	*out = strtoull(v->valuestring, &end, 16);
	return *end == '\0';
}

int cu_digest_decode(const char *json, size_t len, bool detail, struct cu_digest *d,
		     char *why, size_t why_len)
{
	static const char *const digest_keys[] = {"v", "hub", "from", "to", "stations"};
	static const char *const detail_keys[] = {"v", "hub", "peer", "station", "from", "to",
						  "hours"};
	const char *const *keys = detail ? detail_keys : digest_keys;
	size_t n_keys = detail ? 7 : 5;
	struct agri_err err = {0};
	cJSON *root = NULL;
	const cJSON *arr, *it;
	int64_t v;
	int rc = -EBADMSG;

	d->n = 0;
	d->station[0] = d->peer[0] = '\0';
	if (agri_json_parse(json, len, CU_DIGEST_BYTES_MAX, 4, &root, &err) < 0) {
		util_why(why, why_len, "%s%s%s", err.path, err.path[0] ? ": " : "", err.msg);
		return -EBADMSG;
	}
	if (!cJSON_IsObject(root)) {
		util_why(why, why_len, "expected an object");
		goto out;
	}
	cJSON_ArrayForEach(it, root) {
		size_t k = 0;

		while (k < n_keys && strcmp(it->string, keys[k]) != 0)
			k++;
		if (k == n_keys) {
			/* the key is the peer's: on one line (agri_err_set) */
			agri_err_set(&err, it->string, "unknown key");
			util_why(why, why_len, "%s: %s", err.path, err.msg);
			goto out;
		}
	}
	if (!get_int(root, "v", &v) || v != 1) {
		util_why(why, why_len, "v: expected 1");
		goto out;
	}
	if (!get_id(root, "hub", d->hub, false)) {
		util_why(why, why_len, "hub: expected 1-32 of [A-Za-z0-9_-]");
		goto out;
	}
	if (detail && !get_id(root, "peer", d->peer, false)) {
		util_why(why, why_len, "peer: expected 1-32 of [A-Za-z0-9_-]");
		goto out;
	}
	if (detail && !get_id(root, "station", d->station, true)) {
		util_why(why, why_len, "station: expected a station id");
		goto out;
	}
	if (!get_int(root, "from", &d->from_ms) || !get_int(root, "to", &d->to_ms) ||
	    d->from_ms % CU_HOUR_MS != 0 || d->to_ms <= d->from_ms ||
	    d->to_ms - d->from_ms > CU_HOURS_MAX * CU_HOUR_MS) {
		util_why(why, why_len, "from, to: expected ms, from a whole hour, at most %d hours"
			" before to", CU_HOURS_MAX);
		goto out;
	}
	arr = cJSON_GetObjectItemCaseSensitive(root, detail ? "hours" : "stations");
	if (!cJSON_IsArray(arr)) {
		util_why(why, why_len, "%s: expected an array", detail ? "hours" : "stations");
		goto out;
	}
	cJSON_ArrayForEach(it, arr) {
		struct cu_entry *e = &d->e[d->n];
		const cJSON *k = cJSON_GetArrayItem(it, 0);
		int64_t n;

		if (d->n == d->cap) {
			util_why(why, why_len, "%s: more than %zu entries", detail ? "hours" : "stations",
				d->cap);
			goto out;
		}
		memset(e, 0, sizeof(*e));
		if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3 ||
		    !(detail ? get_int(k, NULL, &e->hour_ms) : get_id(k, NULL, e->key, true)) ||
		    !get_int(cJSON_GetArrayItem(it, 1), NULL, &n) ||
		    !get_hash(cJSON_GetArrayItem(it, 2), &e->hash)) {
			util_why(why, why_len, "%s[%zu]: expected [%s, count, \"16 hex digits\"]",
				detail ? "hours" : "stations", d->n, detail ? "hour ms" : "station");
			goto out;
		}
		e->n = (uint64_t)n;
		if (detail && (e->hour_ms % CU_HOUR_MS != 0 || e->hour_ms < d->from_ms ||
			       e->hour_ms >= d->to_ms)) {
			util_why(why, why_len, "hours[%zu]: not a whole hour within [from, to)", d->n);
			goto out;
		}
		if (d->n > 0 && (detail ? e->hour_ms <= d->e[d->n - 1].hour_ms
				       : strcmp(e->key, d->e[d->n - 1].key) <= 0)) {
			util_why(why, why_len, "%s[%zu]: not sorted, or repeated",
				detail ? "hours" : "stations", d->n);
			goto out;
		}
		d->n++;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

static int cmp_entry(const struct cu_entry *a, const struct cu_entry *b, bool by_hour)
{
	if (by_hour)
		return a->hour_ms < b->hour_ms ? -1 : a->hour_ms > b->hour_ms;
	return strcmp(a->key, b->key);
}

size_t cu_digest_lacking(const struct cu_digest *ours, const struct cu_digest *theirs,
			 bool by_hour, size_t *out, size_t out_cap)
{
	size_t i = 0, n = 0;

	for (size_t j = 0; j < theirs->n && n < out_cap; j++) {
		const struct cu_entry *t = &theirs->e[j];
		uint64_t on = 0, oh = 0;
		int c = 1;

		while (i < ours->n && (c = cmp_entry(&ours->e[i], t, by_hour)) < 0)
			i++;
		if (i < ours->n && c == 0) {
			on = ours->e[i].n;
			oh = ours->e[i].hash;
		}
		if (t->n == on && t->hash == oh)
			continue;
		/* An hour: only where they hold more, or as many other ones
		 * (where we hold more, they ask us). A station: any
		 * difference, its hours tell. */
		if (by_hour && t->n < on)
			continue;
		if (t->n == 0)
			continue;
		out[n++] = j;
	}
	return n;
}
