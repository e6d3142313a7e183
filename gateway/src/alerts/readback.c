/*
 * Reading back, for event time (see replay.c): the stored readings of a
 * key's metrics, merged in (ts, metric) order, read through the engine's
 * source (struct alert_source: the writer's connection, inside its
 * transaction), with a cache of the rows one release reads, since the
 * keys of a metric replay over the same rows. replay.c reads through
 * ae_merge_open() and ae_merge_next(); hold.c drops the cache around a
 * release. One thread (the engine's).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts/engine_int.h"

#define CACHE_ROWS_MAX 8192 /* rows of one metric a release keeps in memory */

/*
 * The rows of one station's sensor that its release has read, per metric:
 * the ~17 keys of a metric (one per rule) replay over the same rows, and
 * each reading them through its own queries made the store's reads most
 * of a replay. Valid for one release (the store does not change under
 * it); the keys' different checkpoints extend a metric's rows back.
 */
struct rowcache_m {
	char metric[AGRI_ID_MAX + 1];
	struct alert_row *rows;
	int n, cap;
	int64_t from;              /* rows cached: those after from ... */
	bool complete;             /* ... to the newest stored (else up to rows[n - 1]) */
};

struct rowcache {
	bool valid;
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	struct rowcache_m m[MERGE_MAX];
	int n;
};

static int merge_add(struct merge *m, const char *metric, int64_t after)
{
	struct cursor *c;

	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->c[i].metric, metric))
			return 0;
	if (m->n == MERGE_MAX)
		return 0; /* a sensor with more metrics: the rest is not replayed */
	c = &m->c[m->n];
	snprintf(c->metric, sizeof(c->metric), "%s", metric);
	c->rows = m->eng->rowbuf + (size_t)m->n * ROWS_CHUNK;
	c->n = c->pos = 0;
	c->after = after;
	c->done = false;
	m->n++;
	return 0;
}

/* Sets up m for key k's metrics, from after. */
int ae_merge_open(struct alert_engine *eng, struct merge *m, const struct akey *k,
		  const struct rule *R, int64_t after)
{
	memset(m, 0, sizeof(*m));
	m->eng = eng;
	m->station = k->station;
	m->sensor = k->sensor;
	m->until = INT64_MAX;
	if (!eng->rowbuf &&
	    !(eng->rowbuf = malloc((size_t)MERGE_MAX * ROWS_CHUNK * sizeof(*eng->rowbuf))))
		return -ENOMEM;
	if (R->kind == RULE_THRESHOLD) {
		for (size_t i = 0; i < R->n_levels; i++)
			merge_add(m, R->levels[i].metric, after);
	} else if (R->metric[0]) {
		merge_add(m, R->metric, after);
	} else {
		char names[MERGE_MAX][AGRI_ID_MAX + 1];
		int n = eng->src->metrics(eng->src->ctx, k->station, k->sensor, names, MERGE_MAX);

		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			merge_add(m, names[i], after);
	}
	return 0;
}

void ae_rowcache_free(struct alert_engine *eng)
{
	struct rowcache *rc = eng->rcache;

	if (!rc)
		return;
	for (int i = 0; i < MERGE_MAX; i++)
		free(rc->m[i].rows);
	free(rc);
	eng->rcache = NULL;
}

void ae_rowcache_drop(struct alert_engine *eng)
{
	if (eng->rcache)
		eng->rcache->valid = false;
}

/* Appends the rows of e's metric after `after` to e, up to its cap.
 * Returns 0 or a negative errno; e->complete once the newest is in. */
static int rowcache_read(struct alert_engine *eng, const struct rowcache *rc,
			 struct rowcache_m *e, int64_t after)
{
	e->complete = false;
	while (e->n < CACHE_ROWS_MAX) {
		int want = CACHE_ROWS_MAX - e->n < ROWS_CHUNK ? CACHE_ROWS_MAX - e->n : ROWS_CHUNK;
		int n;

		if (e->cap - e->n < want) {
			int cap = e->cap ? e->cap * 2 : 2 * ROWS_CHUNK;
			struct alert_row *p;

			if (cap > CACHE_ROWS_MAX)
				cap = CACHE_ROWS_MAX;
			if (!(p = realloc(e->rows, (size_t)cap * sizeof(*p))))
				return 0; /* what it has: the rest is read from the store */
			e->rows = p;
			e->cap = cap;
		}
		n = eng->src->rows(eng->src->ctx, rc->station, rc->sensor, e->metric, after,
				   e->rows + e->n, (size_t)want);
		if (n < 0)
			return n;
		e->n += n;
		if (n < want) {
			e->complete = true;
			break;
		}
		after = e->rows[e->n - 1].ts;
	}
	return 0;
}

/* The cached rows of metric for m's sensor, holding those after `after`
 * (NULL: read them from the store, e.g. more than CACHE_ROWS_MAX). */
static struct rowcache_m *rowcache_get(struct merge *m, const char *metric, int64_t after,
				       int *err)
{
	struct alert_engine *eng = m->eng;
	struct rowcache *rc = eng->rcache;
	struct rowcache_m *e = NULL;

	*err = 0;
	if (!rc && !(rc = eng->rcache = calloc(1, sizeof(*rc))))
		return NULL; /* (read from the store instead) */
	if (!rc->valid || strcmp(rc->station, m->station) || strcmp(rc->sensor, m->sensor)) {
		snprintf(rc->station, sizeof(rc->station), "%s", m->station);
		snprintf(rc->sensor, sizeof(rc->sensor), "%s", m->sensor);
		rc->n = 0;
		rc->valid = true;
	}
	for (int i = 0; i < rc->n && !e; i++)
		if (!strcmp(rc->m[i].metric, metric))
			e = &rc->m[i];
	if (!e) {
		if (rc->n == MERGE_MAX)
			return NULL;
		e = &rc->m[rc->n++];
		snprintf(e->metric, sizeof(e->metric), "%s", metric);
		e->n = 0;
		e->from = after;
		if ((*err = rowcache_read(eng, rc, e, after)) < 0) {
			rc->n--;
			return NULL;
		}
		return e;
	}
	if (after < e->from) {
		/* a key with an older checkpoint than the keys before it: read
		 * again from there (rare: a metric's keys checkpoint together) */
		e->n = 0;
		e->from = after;
		if ((*err = rowcache_read(eng, rc, e, after)) < 0) {
			e->n = 0;
			e->complete = false;
			return NULL;
		}
	}
	return e;
}

/* Fills cursor c (its metric's rows after c->after): from the release's
 * cache, else from the store. Returns the rows or a negative errno. */
static int cursor_fill(struct merge *m, struct cursor *c)
{
	struct rowcache_m *e = rowcache_get(m, c->metric, c->after, &m->err);
	int lo, hi, n;

	if (m->err < 0)
		return m->err;
	if (e) {
		lo = 0;
		hi = e->n;
		while (lo < hi) { /* the first row after c->after */
			int mid = lo + (hi - lo) / 2;

			if (e->rows[mid].ts > c->after)
				hi = mid;
			else
				lo = mid + 1;
		}
		if (lo < e->n || e->complete) {
			n = e->n - lo < ROWS_CHUNK ? e->n - lo : ROWS_CHUNK;
			memcpy(c->rows, e->rows + lo, (size_t)n * sizeof(*c->rows));
			c->done = lo + n == e->n && e->complete;
			return n;
		}
	}
	n = m->eng->src->rows(m->eng->src->ctx, m->station, m->sensor, c->metric, c->after,
			      c->rows, ROWS_CHUNK);
	if (n >= 0)
		c->done = n < ROWS_CHUNK;
	return n;
}

static void copy_id(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* The next row in (ts, metric) order into *r; false at the end or on an
 * error (m->err). */
bool ae_merge_next(struct merge *m, struct agri_reading *r)
{
	struct cursor *best = NULL;

	for (int i = 0; i < m->n; i++) {
		struct cursor *c = &m->c[i];

		if (c->pos == c->n && !c->done) {
			int n = cursor_fill(m, c);

			if (n < 0) {
				m->err = n;
				return false;
			}
			c->n = n;
			c->pos = 0;
			if (n)
				c->after = c->rows[n - 1].ts;
		}
		if (c->pos == c->n || c->rows[c->pos].ts > m->until)
			continue;
		if (!best || c->rows[c->pos].ts < best->rows[best->pos].ts ||
		    (c->rows[c->pos].ts == best->rows[best->pos].ts &&
		     strcmp(c->metric, best->metric) < 0))
			best = c;
	}
	if (!best)
		return false;
	{
		const struct alert_row *w = &best->rows[best->pos++];

		/* (no snprintf: a replay copies tens of millions of rows) */
		memset(r, 0, sizeof(*r));
		r->ts_ms = w->ts;
		r->value = w->value;
		r->has_value = w->has_value;
		r->q = w->q;
		copy_id(r->sensor, sizeof(r->sensor), m->sensor);
		copy_id(r->metric, sizeof(r->metric), best->metric);
		copy_id(r->why, sizeof(r->why), w->why);
	}
	m->rows++;
	return true;
}
