/*
 * The alert engine's key table: a chained hash (lookup) and an array
 * (creation order, for deterministic tick and export), per-station counts
 * (its budgets), the dirty and deferred lists export walks, and touch(),
 * the one way to change a key.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/buf.h"
#include "agri/topic.h"
#include "alerts/engine_int.h"

/* ---- keys ---------------------------------------------------------------- */

/* A key's hash in two steps: its station and sensor (once per reading),
 * then its rule. */
uint64_t ae_place_hash(const char *station, const char *sensor)
{
	static const unsigned char sep = 0xff; /* not in a name */
	uint64_t h = agri_hash64_bytes(AGRI_HASH64_INIT, station, strlen(station));

	h = agri_hash64_bytes(h, &sep, 1);
	return agri_hash64_bytes(h, sensor, strlen(sensor));
}

uint64_t ae_rule_hash(uint64_t place, int rule)
{
	uint64_t h = (place ^ (uint64_t)(uint32_t)rule) * 0x9e3779b97f4a7c15ull;

	return h ^ (h >> 29);
}

static uint64_t key_hash(int rule, const char *station, const char *sensor)
{
	return ae_rule_hash(ae_place_hash(station, sensor), rule);
}

struct akey *ae_key_find_h(const struct alert_engine *eng, uint64_t h, int rule,
			   const char *station, const char *sensor)
{
	struct akey *k;

	for (k = eng->tab[h & (eng->tab_n - 1)]; k; k = k->hnext)
		if (k->hash == h && k->rule == rule && !strcmp(k->station, station) &&
		    !strcmp(k->sensor, sensor))
			return k;
	return NULL;
}

struct akey *ae_key_find(const struct alert_engine *eng, int rule,
			 const char *station, const char *sensor)
{
	return ae_key_find_h(eng, key_hash(rule, station, sensor), rule, station, sensor);
}

static int tab_grow(struct alert_engine *eng)
{
	size_t n = eng->tab_n * 2;
	struct akey **tab = calloc(n, sizeof(*tab));

	if (!tab)
		return -ENOMEM;
	for (size_t i = 0; i < eng->n; i++) {
		struct akey *k = eng->keys[i];

		k->hnext = tab[k->hash & (n - 1)];
		tab[k->hash & (n - 1)] = k;
	}
	free(eng->tab);
	eng->tab = tab;
	eng->tab_n = n;
	return 0;
}

bool ae_key_push(struct alert_engine *eng, struct akey ***v, size_t *n,
		 size_t *cap, struct akey *k)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct akey **nv = realloc(*v, c * sizeof(*nv));

		if (!nv) {
			eng->dirty_oom = true; /* the next export visits every key */
			return false;
		}
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = k;
	return true;
}

/* Marks k dirty for the next export (which visits dirtyv, and defv now
 * and then, not every key). */
static void mark_dirty(struct alert_engine *eng, struct akey *k)
{
	k->dirty = true;
	if (!k->in_new)
		k->in_new = ae_key_push(eng, &eng->dirtyv, &eng->n_dirty, &eng->cap_dirty, k);
}

/* Rebuilds the lists from the keys (after keys were freed or a failed
 * export): every dirty key is new again. */
void ae_dirty_rebuild(struct alert_engine *eng)
{
	eng->n_dirty = eng->n_def = eng->def_head = 0;
	eng->dirty_oom = false;
	for (size_t i = 0; i < eng->n; i++) {
		eng->keys[i]->in_new = eng->keys[i]->deferred = false;
		if (eng->keys[i]->dirty)
			mark_dirty(eng, eng->keys[i]);
	}
}

/* Finds or creates a key. NULL on ENOMEM or when a cap is reached
 * (eng->refused then says so): the engine holds at most ALERT_KEYS_MAX
 * keys, a station at most keys_per_station rule keys. Its station's
 * record (rule -1) is created first: it counts the station's keys. */
struct akey *ae_key_get_h(struct alert_engine *eng, uint64_t h, int rule,
			  const char *station, const char *sensor)
{
	struct akey *k = ae_key_find_h(eng, h, rule, station, sensor), *st = NULL;

	eng->refused = false;
	if (k)
		return k;
	if (rule >= 0) {
		st = ae_key_get_h(eng, key_hash(-1, station, ""), -1, station, "");
		if (!st)
			return NULL;
		if (eng->keys_per_station && st->st_keys >= eng->keys_per_station &&
		    !rule_kind_is_event(eng->rules->v[rule].kind)) {
			eng->keys_refused++;
			eng->refused = true;
			return NULL;
		}
	}
	if (eng->n >= ALERT_KEYS_MAX) {
		eng->keys_refused++;
		eng->refused = true;
		return NULL;
	}
	if (eng->n == eng->cap) {
		size_t cap = eng->cap * 2;
		struct akey **keys = realloc(eng->keys, cap * sizeof(*keys));

		if (!keys)
			return NULL;
		eng->keys = keys;
		eng->cap = cap;
	}
	if (eng->n >= eng->tab_n && tab_grow(eng) < 0)
		return NULL;
	k = calloc(1, offsetof(struct akey, u) + ae_state_size(eng, rule));
	if (!k)
		return NULL;
	k->rule = rule;
	snprintf(k->station, sizeof(k->station), "%s", station);
	snprintf(k->sensor, sizeof(k->sensor), "%s", sensor);
	k->hash = h;
	ae_state_reset(eng, k);
	k->hnext = eng->tab[k->hash & (eng->tab_n - 1)];
	eng->tab[k->hash & (eng->tab_n - 1)] = k;
	eng->keys[eng->n++] = k;
	if (st) {
		st->st_keys++;
		k->st_next = st->u.st.keys; /* its station's list (hold.c) */
		st->u.st.keys = k;
	}
	mark_dirty(eng, k);
	k->txn_touched = eng->in_txn; /* rollback deletes it: no undo image */
	return k;
}

struct akey *ae_key_get(struct alert_engine *eng, int rule,
			const char *station, const char *sensor)
{
	return ae_key_get_h(eng, key_hash(rule, station, sensor), rule, station, sensor);
}

void ae_key_unlink(struct alert_engine *eng, struct akey *k)
{
	struct akey **pp = &eng->tab[k->hash & (eng->tab_n - 1)];

	while (*pp && *pp != k)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = k->hnext;
}

void ae_key_free(struct alert_engine *eng, struct akey *k)
{
	struct akey *st;

	if (!k)
		return;
	ae_state_reset(eng, k);
	ae_station_unlink(eng, k);
	if (k->rule >= 0 && (st = ae_key_find(eng, -1, k->station, "")) && st->st_keys > 0)
		st->st_keys--;
	free(k);
}

/* Call before changing k. Returns 0 or -ENOMEM (inside a transaction,
 * when the undo image cannot be saved: the caller must not change k). */
int ae_touch(struct alert_engine *eng, struct akey *k)
{
	struct wbuf w = {0};

	/* Keys created in the transaction are born touched (no undo image). */
	if (eng->in_txn && !k->txn_touched && !eng->no_undo) {
		if (eng->n_undo == eng->cap_undo) {
			size_t cap = eng->cap_undo ? eng->cap_undo * 2 : 64;
			struct undo *u = realloc(eng->undo, cap * sizeof(*u));

			if (!u)
				return -ENOMEM;
			eng->undo = u;
			eng->cap_undo = cap;
		}
		ae_key_encode(eng, k, &w);
		if (w.oom) {
			free(w.p);
			return -ENOMEM;
		}
		eng->undo[eng->n_undo++] = (struct undo){
			.k = k, .dirty = k->dirty, .ev_stale = k->ev_stale, .blob = w.p, .len = w.n};
		k->txn_touched = true;
	}
	mark_dirty(eng, k);
	return 0;
}
