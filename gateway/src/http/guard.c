/*
 * What the HTTP server remembers about each client (guard.h): a token
 * bucket that paces requests made without a valid token, and the count of
 * its failed token tries, which locks its tokens out for a time that
 * doubles with each further failure. A client is its address; an IPv6
 * client is its /64 (one host holds a whole /64). The table is fixed
 * (GUARD_SLOTS, open addressing over a keyed hash, GUARD_PROBE slots per
 * key): a full neighbourhood gives up the client seen least recently,
 * which then starts again with a full bucket.
 *
 * Locking rules: one mutex over the table; every function takes it for a
 * few hundred nanoseconds. Called on the HTTP worker threads.
 */
#include "http/guard.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#define GUARD_SLOTS 4096   /* a power of two */
#define GUARD_PROBE 8
#define FAIL_FREE 5        /* failed tries before the first lockout */
#define FAIL_LOCK_MS 1000  /* the first lockout; doubles per failure after */
#define FAIL_LOCK_MAX_MS (5 * 60 * 1000)
#define FAIL_FORGET_MS (15 * 60 * 1000) /* failures older than this are forgotten */

struct client {
	uint8_t addr[16];        /* IPv4 as ::ffff:a.b.c.d; IPv6 with its low 64 bits zero */
	bool used;
	double tokens;
	int64_t refill_ms;       /* when tokens was last refilled */
	int64_t seen_ms;         /* last request (who gives up a slot) */
	uint32_t fails;          /* failed token tries since the last success */
	int64_t fail_ms;         /* the last failure */
	int64_t locked_until_ms; /* token tries refused until then */
};

struct http_guard {
	pthread_mutex_t mu;
	double rate_per_ms, burst;
	uint64_t seed;
	struct client c[GUARD_SLOTS];
};

struct http_guard *http_guard_new(double rate_per_s, double burst)
{
	struct http_guard *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	pthread_mutex_init(&g->mu, NULL);
	g->rate_per_ms = rate_per_s / 1000.0;
	g->burst = burst;
	if (getrandom(&g->seed, sizeof(g->seed), 0) != sizeof(g->seed))
		g->seed = (uint64_t)(uintptr_t)g ^ 0x9e3779b97f4a7c15ull;
	return g;
}

void http_guard_free(struct http_guard *g)
{
	if (!g)
		return;
	pthread_mutex_destroy(&g->mu);
	free(g);
}

/* The client's key from its socket address; false for another family. */
static bool key_of(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &in->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(key, &in6->sin6_addr, 16);
		if (!IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			memset(key + 8, 0, 8); /* the /64 */
		return true;
	}
	return false;
}

/* A keyed FNV-1a over the key (the seed is secret: nobody aims a set of
 * addresses at one neighbourhood of the table). */
static size_t slot_of(const struct http_guard *g, const uint8_t key[16])
{
	uint64_t h = 14695981039346656037ull ^ g->seed;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	h ^= h >> 29;
	return (size_t)(h & (GUARD_SLOTS - 1));
}

/* The client's entry, made (with a full bucket) when it is new. With g->mu. */
static struct client *client_get(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	uint8_t key[16];
	struct client *oldest = NULL;
	size_t s;

	if (!key_of(sa, key))
		memset(key, 0, sizeof(key)); /* a Unix socket or unknown: one shared client */
	s = slot_of(g, key);
	for (int i = 0; i < GUARD_PROBE; i++) {
		struct client *c = &g->c[(s + (size_t)i) & (GUARD_SLOTS - 1)];

		if (c->used && memcmp(c->addr, key, 16) == 0) {
			c->seen_ms = now_ms;
			return c;
		}
		if (!c->used) {
			oldest = c;
			break;
		}
		if (!oldest || c->seen_ms < oldest->seen_ms)
			oldest = c;
	}
	memset(oldest, 0, sizeof(*oldest));
	memcpy(oldest->addr, key, 16);
	oldest->used = true;
	oldest->tokens = g->burst;
	oldest->refill_ms = oldest->seen_ms = now_ms;
	return oldest;
}

/* Seconds until ms have passed, at least 1. */
static int seconds(double ms)
{
	double s = ceil(ms / 1000.0);

	return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}

int http_guard_take(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	struct client *c;
	int wait = 0;

	pthread_mutex_lock(&g->mu);
	c = client_get(g, sa, now_ms);
	if (now_ms > c->refill_ms) {
		c->tokens += (double)(now_ms - c->refill_ms) * g->rate_per_ms;
		if (c->tokens > g->burst)
			c->tokens = g->burst;
		c->refill_ms = now_ms;
	}
	if (c->tokens >= 1.0)
		c->tokens -= 1.0;
	else
		wait = seconds((1.0 - c->tokens) / g->rate_per_ms);
	pthread_mutex_unlock(&g->mu);
	return wait;
}

int http_guard_locked(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	struct client *c;
	int wait = 0;

	pthread_mutex_lock(&g->mu);
	c = client_get(g, sa, now_ms);
	if (c->locked_until_ms > now_ms)
		wait = seconds((double)(c->locked_until_ms - now_ms));
	pthread_mutex_unlock(&g->mu);
	return wait;
}

int http_guard_failed(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	struct client *c;
	uint32_t n;
	int wait = 0;

	pthread_mutex_lock(&g->mu);
	c = client_get(g, sa, now_ms);
	if (now_ms - c->fail_ms > FAIL_FORGET_MS)
		c->fails = 0;
	c->fails++;
	c->fail_ms = now_ms;
	n = c->fails;
	if (n > FAIL_FREE) {
		int64_t lock = FAIL_LOCK_MS;

		for (uint32_t i = FAIL_FREE + 1; i < n && lock < FAIL_LOCK_MAX_MS; i++)
			lock *= 2;
		if (lock > FAIL_LOCK_MAX_MS)
			lock = FAIL_LOCK_MAX_MS;
		c->locked_until_ms = now_ms + lock;
		wait = seconds((double)lock);
	}
	pthread_mutex_unlock(&g->mu);
	return wait;
}

void http_guard_passed(struct http_guard *g, const struct sockaddr *sa, int64_t now_ms)
{
	struct client *c;

	pthread_mutex_lock(&g->mu);
	c = client_get(g, sa, now_ms);
	c->fails = 0;
	c->locked_until_ms = 0;
	pthread_mutex_unlock(&g->mu);
}
