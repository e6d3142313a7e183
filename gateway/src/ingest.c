/*
 * Ingest queue, writer thread and acker thread (see ingest.h). Locking
 * rules: `mu` guards the ring (q, head, count, bytes) and the flags
 * stopping and busy; `amu` guards the publication ring and the pending
 * acks; the writer thread alone touches the store, the decode buffers and
 * the ack list. Health counters are atomics.
 *
 * Acks are coalesced: committed seqs wait per station in a range set and
 * one ack message carries all of a station's ranges committed since its
 * last ack. When the acker falls behind (a province-wide catch-up, where
 * paho's receive thread holds paho's lock while it waits for queue room)
 * the acks grow instead of queueing up: memory stays bounded by the
 * number of stations and gaps, no ack is ever dropped, and the number of
 * publications the acker needs shrinks as the backlog grows.
 */
#include "gateway/ingest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/log.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "gateway/store.h"

#define LOG "ingest"
#define BATCH_BYTES_MAX (1024 * 1024)
#define RETENTION_EVERY_MS 1000
#define RETENTION_ROWS 2000
#define TICK_EVERY_MS 1000
#define BUSY_BATCH 128         /* a batch this big: a backlog, full page cache */
#define BUSY_LINGER_MS 10000   /* ... until no such batch for this long */
#define FULL_SLICE_MS 5    /* ingest_offer(): a full queue is re-checked this often */
#define INLINE_ACKS_MAX 64 /* ... and this many waiting acks sent meanwhile */

/* A function to run on the writer thread (ingest_call). */
struct call {
	ingest_call_fn fn;
	void *ctx;
	int rc;
	bool done, abandoned;
	struct call *next;
};

struct msg {
	int64_t received_ms;
	size_t len;      /* payload bytes */
	char *topic;     /* NUL-terminated, inside the same allocation */
	char payload[];  /* len bytes + NUL */
};

struct ack_pair {
	char station[AGRI_ID_MAX + 1];
	uint64_t seq;
};

/* An encoded ack waiting for the acker thread. */
struct ack_out {
	size_t len;
	bool retained;
	char topic[AGRI_TOPIC_MAX];
	char payload[];
};

#define ACKQ_MAX 4096     /* retained publications (alerts, forecasts) */
#define ACK_BUCKETS 1024  /* pending-ack hash buckets (power of two) */

#define ACK_INFLIGHT_MS 10000 /* an ack whose PUBACK never came stops blocking after this */

/* Seqs of one station committed but not yet acked (sorted, disjoint,
 * non-adjacent ranges). At most one ack per station is in flight (sent,
 * its PUBACK not yet back): what commits meanwhile joins the next one.
 * Without that limit a catch-up left ~11,000 acks in paho's memory (their
 * PUBACKs queue behind the incoming backlog). Entries live until
 * ingest_free(). */
struct ack_pend {
	struct ack_pend *hnext;  /* hash chain */
	struct ack_pend *rnext;  /* ready list */
	bool ready;              /* on the ready list (seqs.n > 0) */
	int64_t inflight_until;  /* monotonic ms; 0: no ack in flight */
	struct ingest_sent sent; /* its PUBACK (or failure) clears inflight_until */
	struct ingest *in;
	struct agri_seq_set seqs; /* committed, not yet acked */
	char station[AGRI_ID_MAX + 1];
};

struct counts {
	uint64_t batches, stored, dup, status, dead;
};

struct ingest {
	struct store *st;
	struct ingest_options opt;
	char prefix[65];
	struct ingest_publisher pub;
	struct gateway_health *health;
	struct ingest_hook hooks[INGEST_HOOKS_MAX];
	size_t n_hooks;

	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full, idle;
	struct msg **q;
	size_t head, count, bytes;
	bool stopping, busy, started;
	int64_t deadline_ms; /* monotonic: give up retrying after it */
	struct call *calls, **calls_tail; /* guarded by mu */
	pthread_cond_t call_done;
	pthread_t thread;

	/* The acker thread publishes acks, so the writer never waits for
	 * paho (paho holds its own lock while ingest_offer() waits for room).
	 * `amu` guards the ack ring and acker_stop. */
	pthread_mutex_t amu;
	pthread_cond_t ack_ready, ack_drained;
	struct ack_out **aq;
	size_t ahead, acount;
	struct ack_pend *ahash[ACK_BUCKETS];
	struct ack_pend *ready, **ready_tail; /* stations with pending acks */
	bool acker_stop, acker_busy;
	pthread_t acker;
	struct agri_ack acker_ack; /* acker thread only */

	/* writer thread only */
	struct msg **batch;
	struct agri_reading *readings;
	bool *fresh;
	struct ack_pair *acks;
	size_t n_acks;
	struct counts c;
	struct log_complaint db_complaint;
	uint32_t rng;
	int64_t next_retention_ms;
	int64_t next_tick_ms;
	int64_t busy_until_ms;     /* monotonic; the store's cache is big until then */
	bool cache_busy;
	atomic_bool backlog;       /* busy_until_ms is ahead (any thread reads) */
};

static void acks_send_inline(struct ingest *in, int max);

/* --- queue ------------------------------------------------------------ */

static void timespec_in(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t a;
	int rc;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	rc = pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return -rc;
}

struct ingest *ingest_new(struct store *st, const struct ingest_options *opt,
			  const struct ingest_publisher *pub,
			  struct gateway_health *health)
{
	struct ingest *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->st = st;
	if (opt)
		in->opt = *opt;
	snprintf(in->prefix, sizeof(in->prefix), "%s",
		 in->opt.topic_prefix ? in->opt.topic_prefix : AGRI_TOPIC_PREFIX_DEFAULT);
	in->opt.topic_prefix = in->prefix;
	if (!in->opt.queue_max)
		in->opt.queue_max = 1024;
	if (!in->opt.queue_bytes_max)
		in->opt.queue_bytes_max = 1u << 20;
	if (!in->opt.batch_max)
		in->opt.batch_max = 256;
	if (in->opt.full_wait_ms <= 0)
		in->opt.full_wait_ms = 1000;
	if (pub)
		in->pub = *pub;
	in->health = health;
	in->rng = (uint32_t)util_now_ms() | 1u;
	pthread_mutex_init(&in->mu, NULL);
	cond_init_mono(&in->not_empty);
	cond_init_mono(&in->not_full);
	cond_init_mono(&in->idle);
	cond_init_mono(&in->call_done);
	in->calls_tail = &in->calls;
	pthread_mutex_init(&in->amu, NULL);
	in->ready_tail = &in->ready;
	cond_init_mono(&in->ack_ready);
	cond_init_mono(&in->ack_drained);
	in->aq = calloc(ACKQ_MAX, sizeof(*in->aq));
	in->q = calloc(in->opt.queue_max, sizeof(*in->q));
	in->batch = calloc(in->opt.batch_max, sizeof(*in->batch));
	in->acks = calloc(in->opt.batch_max, sizeof(*in->acks));
	in->readings = calloc(AGRI_BATCH_MAX_READINGS, sizeof(*in->readings));
	in->fresh = calloc(AGRI_BATCH_MAX_READINGS, sizeof(*in->fresh));
	if (!in->q || !in->aq || !in->batch || !in->acks || !in->readings || !in->fresh) {
		ingest_free(in);
		return NULL;
	}
	return in;
}

int ingest_add_hook(struct ingest *in, const struct ingest_hook *hook)
{
	if (in->n_hooks == INGEST_HOOKS_MAX || in->started)
		return -ENOSPC;
	in->hooks[in->n_hooks++] = *hook;
	return 0;
}

int ingest_offer(struct ingest *in, const char *topic, size_t topic_len,
		 const void *payload, size_t len)
{
	struct msg *m;
	struct timespec until;
	int64_t give_up;
	bool full;

	if (topic_len == 0)
		topic_len = strlen(topic);
	m = malloc(sizeof(*m) + len + 1 + topic_len + 1);
	if (!m)
		return 0;
	m->received_ms = util_now_ms();
	m->len = len;
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->topic = m->payload + len + 1;
	memcpy(m->topic, topic, topic_len);
	m->topic[topic_len] = '\0';

	give_up = util_mono_ms() + in->opt.full_wait_ms;
	pthread_mutex_lock(&in->mu);
	for (;;) {
		if (in->stopping)
			goto refuse; /* paho keeps it; the station resends it */
		full = in->count == in->opt.queue_max ||
		       (in->count > 0 && in->bytes + len > in->opt.queue_bytes_max);
		if (!full)
			break;
		if (util_mono_ms() >= give_up)
			goto refuse;
		/* While this (paho's) thread waits, the acks the writer makes
		 * go out from here: the acker would wait for paho's lock. */
		pthread_mutex_unlock(&in->mu);
		acks_send_inline(in, INLINE_ACKS_MAX);
		pthread_mutex_lock(&in->mu);
		timespec_in(&until, FULL_SLICE_MS);
		if (in->count == in->opt.queue_max ||
		    (in->count > 0 && in->bytes + len > in->opt.queue_bytes_max))
			pthread_cond_timedwait(&in->not_full, &in->mu, &until);
	}
	in->q[(in->head + in->count) % in->opt.queue_max] = m;
	in->count++;
	in->bytes += len;
	atomic_store(&in->health->queue_depth, in->count);
	pthread_cond_signal(&in->not_empty);
	pthread_mutex_unlock(&in->mu);
	atomic_fetch_add(&in->health->received, 1);
	return 1;
refuse:
	pthread_mutex_unlock(&in->mu);
	atomic_fetch_add(&in->health->deferred, 1);
	free(m);
	return 0;
}

/* --- one batch -------------------------------------------------------- */

static int dead_letter(struct ingest *in, const struct msg *m, const char *reason)
{
	int rc = store_put_dead_letter(in->st, m->topic, m->payload, m->len,
				       reason, m->received_ms);

	if (rc == 0) {
		in->c.dead++;
		log_debug(LOG, "dead letter topic=%s reason=\"%s\"", m->topic, reason);
	}
	return rc;
}

static int ack_later(struct ingest *in, const char *station, uint64_t seq)
{
	struct ack_pair *a = &in->acks[in->n_acks++];

	snprintf(a->station, sizeof(a->station), "%s", station);
	a->seq = seq;
	return 0;
}

/* Stores t's readings, noting in in->fresh which were new. */
static int store_readings(struct ingest *in, const struct agri_telemetry *t,
			  int64_t received_ms)
{
	int rc, n = 0;

	for (size_t i = 0; i < t->n; i++) {
		rc = store_put_reading(in->st, t->station, &t->readings[i], received_ms);
		if (rc < 0)
			return rc;
		in->fresh[i] = rc == 1;
		if (rc == 1) {
			in->c.stored++;
			n++;
		} else {
			in->c.dup++;
		}
	}
	return n;
}

static int run_telemetry_hooks(struct ingest *in, const struct agri_telemetry *t,
			       int64_t received_ms)
{
	int rc;

	for (size_t h = 0; h < in->n_hooks; h++) {
		if (in->hooks[h].on_telemetry &&
		    (rc = in->hooks[h].on_telemetry(in->hooks[h].ctx, in->st, t,
						    in->fresh, received_ms)) < 0)
			return rc;
	}
	return 0;
}

int ingest_put_readings(struct ingest *in, const struct agri_telemetry *t,
			int64_t received_ms)
{
	int n, rc;

	if (t->n > AGRI_BATCH_MAX_READINGS)
		return -E2BIG;
	if ((n = store_readings(in, t, received_ms)) < 0)
		return n;
	if ((rc = store_touch_station(in->st, t->station, received_ms)) < 0)
		return rc;
	if ((rc = run_telemetry_hooks(in, t, received_ms)) < 0)
		return rc;
	return n;
}

static int put_telemetry(struct ingest *in, const struct msg *m,
			 const struct agri_topic *t)
{
	struct agri_telemetry tel = {.readings = in->readings,
				     .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 128], e[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	int rc, drc;

	drc = agri_telemetry_decode(m->payload, m->len, &tel, &err);
	agri_err_format(&err, e, sizeof(e));
	if (drc < 0) {
		bool same = tel.has_station && strcmp(tel.station, t->station) == 0;

		snprintf(reason, sizeof(reason), "%s", e);
		if ((rc = dead_letter(in, m, reason)) < 0)
			return rc;
		/* §4: acked when station and seq are readable and match */
		if (same && tel.has_seq) {
			if ((rc = store_note_seq(in->st, t->station, tel.seq, m->received_ms)) < 0)
				return rc;
			ack_later(in, t->station, tel.seq);
		}
		return 0;
	}
	if (strcmp(tel.station, t->station) != 0) {
		snprintf(reason, sizeof(reason),
			 "station: \"%s\" differs from the topic's \"%s\"", tel.station,
			 t->station);
		return dead_letter(in, m, reason); /* never acked */
	}
	if ((rc = store_readings(in, &tel, m->received_ms)) < 0)
		return rc;
	if (drc == 1) { /* valid readings kept; the batch as a whole kept too */
		snprintf(reason, sizeof(reason), "%zu invalid reading%s skipped, first: %s",
			 tel.n_invalid, tel.n_invalid == 1 ? "" : "s", e);
		if ((rc = dead_letter(in, m, reason)) < 0)
			return rc;
	}
	if ((rc = store_note_seq(in->st, tel.station, tel.seq, m->received_ms)) < 0)
		return rc;
	if ((rc = run_telemetry_hooks(in, &tel, m->received_ms)) < 0)
		return rc;
	in->c.batches++;
	return ack_later(in, tel.station, tel.seq);
}

static int put_status(struct ingest *in, const struct msg *m,
		      const struct agri_topic *t)
{
	struct agri_status s;
	struct agri_err err = {0};
	char reason[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 128];
	int rc;

	if (agri_status_decode(m->payload, m->len, &s, &err) < 0) {
		agri_err_format(&err, reason, sizeof(reason));
		return dead_letter(in, m, reason);
	}
	if (strcmp(s.station, t->station) != 0) {
		snprintf(reason, sizeof(reason),
			 "station: \"%s\" differs from the topic's \"%s\"", s.station,
			 t->station);
		return dead_letter(in, m, reason);
	}
	if ((rc = store_put_status(in->st, &s, m->received_ms)) < 0)
		return rc;
	for (size_t h = 0; h < in->n_hooks; h++) {
		if (in->hooks[h].on_status &&
		    (rc = in->hooks[h].on_status(in->hooks[h].ctx, in->st, &s,
						 m->received_ms)) < 0)
			return rc;
	}
	in->c.status++;
	return 0;
}

static int before_commit(struct ingest *in)
{
	int rc;

	for (size_t k = 0; k < in->n_hooks; k++)
		if (in->hooks[k].before_commit &&
		    (rc = in->hooks[k].before_commit(in->hooks[k].ctx, in->st)) < 0)
			return rc;
	return 0;
}

/* Stores msgs[0..n) in one transaction. Returns 0 or a negative errno
 * (the transaction is then rolled back). */
static int apply(struct ingest *in, struct msg **msgs, size_t n)
{
	struct agri_topic t;
	int rc;

	memset(&in->c, 0, sizeof(in->c));
	in->n_acks = 0;
	if ((rc = store_begin(in->st)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct msg *m = msgs[i];

		if (agri_topic_parse(m->topic, in->prefix, &t) < 0)
			rc = dead_letter(in, m, "topic: not a telemetry or status topic");
		else if (t.kind == AGRI_TOPIC_TELEMETRY)
			rc = put_telemetry(in, m, &t);
		else if (t.kind == AGRI_TOPIC_STATUS)
			rc = put_status(in, m, &t);
		else
			rc = dead_letter(in, m, "topic: not a telemetry or status topic");
	}
	if (rc == 0)
		rc = before_commit(in);
	if (rc == 0)
		rc = store_commit(in->st);
	else
		store_rollback(in->st);
	return rc;
}

/* Queues a publication for the publisher (acker) thread. A full queue
 * drops it (counted in ack_failures). */
static int publish_enqueue(struct ingest *in, const char *topic,
			   const void *payload, size_t len, bool retained)
{
	struct ack_out *o = malloc(sizeof(*o) + len);

	if (!o)
		return -ENOMEM;
	if (snprintf(o->topic, sizeof(o->topic), "%s", topic) >= (int)sizeof(o->topic)) {
		free(o);
		return -EINVAL;
	}
	memcpy(o->payload, payload, len);
	o->len = len;
	o->retained = retained;
	pthread_mutex_lock(&in->amu);
	if (in->acount == ACKQ_MAX) {
		pthread_mutex_unlock(&in->amu);
		free(o);
		atomic_fetch_add(&in->health->ack_failures, 1);
		return -ENOSPC;
	}
	in->aq[(in->ahead + in->acount) % ACKQ_MAX] = o;
	in->acount++;
	pthread_cond_signal(&in->ack_ready);
	pthread_mutex_unlock(&in->amu);
	return 0;
}

int ingest_publish_later(struct ingest *in, const char *topic,
			 const void *payload, size_t len, bool retained)
{
	return publish_enqueue(in, topic, payload, len, retained);
}

/* --- pending acks (under amu) ------------------------------------------ */

static void ack_sent(struct ingest_sent *s, bool ok);

static struct ack_pend *pend_get(struct ingest *in, const char *station)
{
	uint32_t h = 2166136261u;
	struct ack_pend **b, *p;

	for (const char *c = station; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	b = &in->ahash[h & (ACK_BUCKETS - 1)];
	for (p = *b; p; p = p->hnext)
		if (strcmp(p->station, station) == 0)
			return p;
	if (!(p = calloc(1, sizeof(*p))))
		return NULL;
	snprintf(p->station, sizeof(p->station), "%s", station);
	p->in = in;
	p->sent.fn = ack_sent;
	p->hnext = *b;
	*b = p;
	return p;
}

static void ready_push(struct ingest *in, struct ack_pend *p)
{
	p->ready = true;
	p->rnext = NULL;
	*in->ready_tail = p;
	in->ready_tail = &p->rnext;
}

/* Moves the ranges (at most one message's worth) of the first waiting
 * station without an ack in flight into *a and marks its ack in flight.
 * Returns that station, or NULL when none can be acked now. */
static struct ack_pend *pend_take(struct ingest *in, struct agri_ack *a)
{
	struct ack_pend **pp = &in->ready, *p, *prev = NULL;
	int64_t now = util_mono_ms();
	size_t k;

	for (; (p = *pp); prev = p, pp = &p->rnext)
		if (p->inflight_until == 0 || now >= p->inflight_until)
			break;
	if (!p)
		return NULL;
	*pp = p->rnext;
	if (in->ready_tail == &p->rnext)
		in->ready_tail = prev ? &prev->rnext : &in->ready;
	k = p->seqs.n < AGRI_ACK_RANGES_MAX ? p->seqs.n : AGRI_ACK_RANGES_MAX;
	snprintf(a->station, sizeof(a->station), "%s", p->station);
	memcpy(a->ranges, p->seqs.r, k * sizeof(*p->seqs.r));
	a->n = k;
	memmove(p->seqs.r, p->seqs.r + k, (p->seqs.n - k) * sizeof(*p->seqs.r));
	p->seqs.n -= k;
	p->ready = false;
	p->inflight_until = now + ACK_INFLIGHT_MS;
	if (p->seqs.n)
		ready_push(in, p); /* the rest in a later message */
	return p;
}

/* The broker has p's ack (or it failed: its station resends). */
static void ack_sent(struct ingest_sent *s, bool ok)
{
	struct ack_pend *p = (struct ack_pend *)((char *)s - offsetof(struct ack_pend, sent));
	struct ingest *in = p->in;

	if (!ok)
		atomic_fetch_add(&in->health->ack_failures, 1);
	pthread_mutex_lock(&in->amu);
	p->inflight_until = 0;
	if (p->ready)
		pthread_cond_signal(&in->ack_ready);
	pthread_mutex_unlock(&in->amu);
}

/* Hands the acks of a committed batch to the acker (writer thread). */
static void acks_post(struct ingest *in)
{
	pthread_mutex_lock(&in->amu);
	for (size_t i = 0; i < in->n_acks; i++) {
		struct ack_pend *p = pend_get(in, in->acks[i].station);

		if (!p || agri_seq_set_add(&p->seqs, in->acks[i].seq) < 0) {
			/* Out of memory: this seq goes unacked, its station resends. */
			atomic_fetch_add(&in->health->ack_failures, 1);
			continue;
		}
		if (!p->ready)
			ready_push(in, p);
	}
	pthread_cond_signal(&in->ack_ready);
	pthread_mutex_unlock(&in->amu);
}

/* Encodes and publishes p's ack a (any thread but the writer). */
static void ack_send(struct ingest *in, struct ack_pend *p, const struct agri_ack *a)
{
	char buf[AGRI_ACK_RANGES_MAX * 48 + 128], topic[AGRI_TOPIC_MAX];
	int n = agri_ack_encode(a, buf, sizeof(buf));

	if (n >= 0 && agri_topic_build(topic, sizeof(topic), in->prefix, AGRI_TOPIC_ACK,
				       a->station) >= 0 &&
	    in->pub.publish &&
	    in->pub.publish(in->pub.ctx, topic, buf, (size_t)n, false, &p->sent) == 0) {
		atomic_fetch_add(&in->health->acks_sent, 1);
		return;
	}
	if (n < 0)
		log_error(LOG, "cannot encode ack station=%s rc=%d", a->station, n);
	atomic_fetch_add(&in->health->ack_failures, 1);
	pthread_mutex_lock(&in->amu);
	p->inflight_until = 0; /* lost: the station resends those batches */
	pthread_mutex_unlock(&in->amu);
}

static void *acker_main(void *arg)
{
	struct ingest *in = arg;

	pthread_mutex_lock(&in->amu);
	for (;;) {
		struct ack_out *o = NULL;
		struct ack_pend *p = NULL;

		in->acker_busy = false;
		if (in->acount == 0 && !in->ready)
			pthread_cond_broadcast(&in->ack_drained);
		for (;;) {
			struct timespec until;

			if (in->acount > 0) {
				o = in->aq[in->ahead];
				in->ahead = (in->ahead + 1) % ACKQ_MAX;
				in->acount--;
				break;
			}
			if ((p = pend_take(in, &in->acker_ack)) || in->acker_stop)
				break;
			if (!in->ready) {
				pthread_cond_wait(&in->ack_ready, &in->amu);
				continue;
			}
			/* Acks waiting, each behind its station's ack in flight:
			 * a PUBACK signals ack_ready (the timeout covers a lost one). */
			timespec_in(&until, 100);
			pthread_cond_timedwait(&in->ack_ready, &in->amu, &until);
		}
		if (!o && !p)
			break; /* stopping */
		in->acker_busy = true;
		pthread_mutex_unlock(&in->amu);
		if (p) {
			ack_send(in, p, &in->acker_ack);
		} else {
			if (in->pub.publish &&
			    in->pub.publish(in->pub.ctx, o->topic, o->payload, o->len, o->retained,
					    NULL) == 0)
				atomic_fetch_add(&in->health->acks_sent, 1);
			else
				atomic_fetch_add(&in->health->ack_failures, 1);
			free(o);
		}
		pthread_mutex_lock(&in->amu);
	}
	pthread_mutex_unlock(&in->amu);
	return NULL;
}

/* On the thread in ingest_offer() (paho's receive thread, which holds
 * paho's lock while it waits for queue room, so the acker cannot publish
 * meanwhile): publishes up to max waiting acks itself. */
static void acks_send_inline(struct ingest *in, int max)
{
	struct agri_ack a;

	for (int i = 0; i < max; i++) {
		struct ack_pend *p;

		pthread_mutex_lock(&in->amu);
		p = pend_take(in, &a);
		pthread_mutex_unlock(&in->amu);
		if (!p)
			return;
		ack_send(in, p, &a);
	}
}

static bool stop_now(struct ingest *in)
{
	bool stop;

	pthread_mutex_lock(&in->mu);
	stop = in->stopping && util_mono_ms() >= in->deadline_ms;
	pthread_mutex_unlock(&in->mu);
	return stop;
}

static void run_hooks_after(struct ingest *in, bool committed)
{
	for (size_t k = 0; k < in->n_hooks; k++) {
		if (committed && in->hooks[k].on_commit)
			in->hooks[k].on_commit(in->hooks[k].ctx);
		else if (!committed && in->hooks[k].on_rollback)
			in->hooks[k].on_rollback(in->hooks[k].ctx);
	}
}

/* Commits msgs[0..n), retrying until it works (or shutdown's deadline),
 * then acks and frees them. */
static void process(struct ingest *in, struct msg **msgs, size_t n)
{
	struct gateway_health *h = in->health;
	int rc;

	for (int attempt = 0;; attempt++) {
		rc = apply(in, msgs, n);
		if (rc == 0)
			break;
		run_hooks_after(in, false);
		atomic_fetch_add(&h->commit_failures, 1);
		atomic_store(&h->db_writable, false);
		log_complain(&in->db_complaint, LOG_LVL_ERROR, LOG,
			     "cannot store a batch, not acking; retrying messages=%zu error=\"%s\"",
			     n, strerror(-rc));
		if (stop_now(in)) {
			log_error(LOG, "shutdown: %zu messages not stored (their stations will resend)", n);
			goto out;
		}
		util_sleep_ms(util_backoff_ms(attempt < 6 ? attempt : 6, 50, 2000, &in->rng));
	}
	atomic_store(&h->db_writable, true);
	log_release(&in->db_complaint, LOG, "storing again");
	if (log_enabled(LOG_LVL_DEBUG))
		log_debug(LOG, "committed messages=%zu readings=%llu waited_ms=%lld",
			  n, (unsigned long long)in->c.stored,
			  (long long)(util_now_ms() - msgs[0]->received_ms));
	atomic_fetch_add(&h->commits, 1);
	atomic_store(&h->last_commit_ms, util_now_ms());
	atomic_fetch_add(&h->batches, in->c.batches);
	atomic_fetch_add(&h->readings_stored, in->c.stored);
	atomic_fetch_add(&h->readings_duplicate, in->c.dup);
	atomic_fetch_add(&h->status_msgs, in->c.status);
	atomic_fetch_add(&h->dead_letters, in->c.dead);
	acks_post(in);
	run_hooks_after(in, true);
out:
	for (size_t i = 0; i < n; i++)
		free(msgs[i]);
}

/* The oldest reading any hook still needs (INT64_MAX: none). */
static int64_t retention_floor(struct ingest *in)
{
	int64_t floor = INT64_MAX;

	for (size_t k = 0; k < in->n_hooks; k++) {
		if (in->hooks[k].retention_floor_ms) {
			int64_t f = in->hooks[k].retention_floor_ms(in->hooks[k].ctx);

			if (f < floor)
				floor = f;
		}
	}
	return floor;
}

static void housekeeping(struct ingest *in)
{
	int64_t now = util_mono_ms(), now_ms, keep, floor;
	int rc;

	if (in->opt.retention_days <= 0 || now < in->next_retention_ms)
		return;
	in->next_retention_ms = now + RETENTION_EVERY_MS;
	/* Never fold away readings a forwarder has not taken yet: move the
	 * cutoff back so that it stays at or before the oldest pending one. */
	now_ms = util_now_ms();
	keep = (int64_t)in->opt.retention_days * 86400000LL;
	floor = retention_floor(in);
	if (floor != INT64_MAX && floor < now_ms - keep)
		now_ms = floor + keep;
	rc = store_retention_step(in->st, now_ms, in->opt.retention_days, RETENTION_ROWS);
	if (rc > 0) {
		atomic_fetch_add(&in->health->retention_moved, (uint64_t)rc);
		in->next_retention_ms = now; /* more may be due: continue when idle */
	} else if (rc < 0) {
		log_debug(LOG, "retention step failed: %s", strerror(-rc));
	}
}

/* Runs fn in a transaction; acks queued by it (none today) go out. */
static int run_in_txn(struct ingest *in, ingest_call_fn fn, void *ctx)
{
	int rc;

	memset(&in->c, 0, sizeof(in->c));
	in->n_acks = 0;
	if ((rc = store_begin(in->st)) < 0)
		return rc;
	rc = fn(ctx, in, in->st);
	if (rc >= 0) {
		int crc = before_commit(in);

		if (crc == 0)
			crc = store_commit(in->st);
		else
			store_rollback(in->st);

		if (crc < 0)
			rc = crc;
	} else {
		store_rollback(in->st);
	}
	run_hooks_after(in, rc >= 0);
	atomic_fetch_add(&in->health->readings_stored, in->c.stored);
	atomic_fetch_add(&in->health->readings_duplicate, in->c.dup);
	return rc;
}

static int tick_fn(void *ctx, struct ingest *in, struct store *st)
{
	int64_t now_ms = util_now_ms();
	int rc;

	(void)ctx;
	for (size_t k = 0; k < in->n_hooks; k++)
		if (in->hooks[k].on_tick && (rc = in->hooks[k].on_tick(in->hooks[k].ctx, st, now_ms)) < 0)
			return rc;
	return 0;
}

static void tick(struct ingest *in)
{
	int64_t now = util_mono_ms();
	bool any = false;
	int rc;

	if (now < in->next_tick_ms)
		return;
	in->next_tick_ms = now + TICK_EVERY_MS;
	for (size_t k = 0; k < in->n_hooks; k++)
		any |= in->hooks[k].on_tick != NULL;
	if (any && (rc = run_in_txn(in, tick_fn, NULL)) < 0)
		log_debug(LOG, "tick failed: %s", strerror(-rc));
}

/* Runs the queued ingest_call()s (writer thread). */
static void run_calls(struct ingest *in)
{
	for (;;) {
		struct call *c;

		pthread_mutex_lock(&in->mu);
		c = in->calls;
		if (c) {
			in->calls = c->next;
			if (!in->calls)
				in->calls_tail = &in->calls;
		}
		pthread_mutex_unlock(&in->mu);
		if (!c)
			return;
		c->rc = run_in_txn(in, c->fn, c->ctx);
		pthread_mutex_lock(&in->mu);
		c->done = true;
		if (c->abandoned)
			free(c);
		else
			pthread_cond_broadcast(&in->call_done);
		pthread_mutex_unlock(&in->mu);
	}
}

int ingest_call(struct ingest *in, ingest_call_fn fn, void *ctx, int64_t timeout_ms)
{
	struct call *c = calloc(1, sizeof(*c));
	struct timespec until;
	int rc;

	if (!c)
		return -ENOMEM;
	c->fn = fn;
	c->ctx = ctx;
	timespec_in(&until, timeout_ms);
	pthread_mutex_lock(&in->mu);
	if (in->stopping || !in->started) {
		pthread_mutex_unlock(&in->mu);
		free(c);
		return -ESHUTDOWN;
	}
	*in->calls_tail = c;
	in->calls_tail = &c->next;
	pthread_cond_signal(&in->not_empty);
	while (!c->done) {
		if (pthread_cond_timedwait(&in->call_done, &in->mu, &until) == ETIMEDOUT)
			break;
	}
	if (!c->done) {
		c->abandoned = true; /* the writer frees it */
		pthread_mutex_unlock(&in->mu);
		return -ETIMEDOUT;
	}
	rc = c->rc;
	pthread_mutex_unlock(&in->mu);
	free(c);
	return rc;
}

/* A backlog gets SQLite's full page cache; a writer that keeps up
 * (1,000 messages/s come one at a time) gets a quarter of it: 1.5 MiB
 * less resident with the default cache_kib, the throughput kept. */
static void cache_follow_load(struct ingest *in, size_t n)
{
	int64_t now = util_mono_ms();
	bool busy;

	if (n >= BUSY_BATCH)
		in->busy_until_ms = now + BUSY_LINGER_MS;
	busy = now < in->busy_until_ms;
	atomic_store(&in->backlog, busy);
	if (busy != in->cache_busy && store_set_busy(in->st, busy) == 0)
		in->cache_busy = busy;
}

static void *writer_main(void *arg)
{
	struct ingest *in = arg;

	for (;;) {
		struct timespec until;
		size_t n = 0, bytes = 0;
		bool calls;

		pthread_mutex_lock(&in->mu);
		in->busy = false;
		if (in->count == 0 && !in->calls)
			pthread_cond_broadcast(&in->idle);
		while (in->count == 0 && !in->calls && !in->stopping) {
			timespec_in(&until, TICK_EVERY_MS);
			if (pthread_cond_timedwait(&in->not_empty, &in->mu, &until) == ETIMEDOUT)
				break;
		}
		if (in->stopping && (in->count == 0 || util_mono_ms() >= in->deadline_ms)) {
			pthread_mutex_unlock(&in->mu);
			/* A last tick: hooks write what they deferred
			 * (ingest_stopping() tells them). */
			in->next_tick_ms = 0;
			tick(in);
			break;
		}
		while (in->count > 0 && n < in->opt.batch_max && bytes < BATCH_BYTES_MAX) {
			struct msg *m = in->q[in->head];

			in->head = (in->head + 1) % in->opt.queue_max;
			in->count--;
			in->bytes -= m->len;
			bytes += m->len;
			in->batch[n++] = m;
		}
		calls = in->calls != NULL;
		in->busy = n > 0 || calls;
		atomic_store(&in->health->queue_depth, in->count);
		if (n)
			pthread_cond_broadcast(&in->not_full);
		pthread_mutex_unlock(&in->mu);
		if (n)
			process(in, in->batch, n);
		cache_follow_load(in, n);
		if (calls)
			run_calls(in);
		tick(in);
		if (!n && !calls)
			housekeeping(in);
	}
	/* Calls that will never run: wake their callers. */
	pthread_mutex_lock(&in->mu);
	while (in->calls) {
		struct call *c = in->calls;

		in->calls = c->next;
		c->rc = -ESHUTDOWN;
		c->done = true;
		if (c->abandoned)
			free(c);
	}
	in->calls_tail = &in->calls;
	pthread_cond_broadcast(&in->call_done);
	pthread_mutex_unlock(&in->mu);
	return NULL;
}

int ingest_start(struct ingest *in)
{
	int rc = pthread_create(&in->acker, NULL, acker_main, in);

	if (rc)
		return -rc;
	rc = pthread_create(&in->thread, NULL, writer_main, in);
	if (rc) {
		pthread_mutex_lock(&in->amu);
		in->acker_stop = true;
		pthread_cond_signal(&in->ack_ready);
		pthread_mutex_unlock(&in->amu);
		pthread_join(in->acker, NULL);
		return -rc;
	}
	in->started = true;
	return 0;
}

bool ingest_stopping(struct ingest *in)
{
	bool stopping;

	pthread_mutex_lock(&in->mu);
	stopping = in->stopping;
	pthread_mutex_unlock(&in->mu);
	return stopping;
}

bool ingest_backlogged(struct ingest *in)
{
	return atomic_load(&in->backlog);
}

int ingest_flush(struct ingest *in, int64_t timeout_ms)
{
	struct timespec until;
	int rc = 0;

	timespec_in(&until, timeout_ms);
	pthread_mutex_lock(&in->mu);
	while ((in->count > 0 || in->busy) && rc == 0)
		if (pthread_cond_timedwait(&in->idle, &in->mu, &until) == ETIMEDOUT)
			rc = -ETIMEDOUT;
	pthread_mutex_unlock(&in->mu);
	return rc;
}

void ingest_stop(struct ingest *in, int64_t deadline_ms)
{
	pthread_mutex_lock(&in->mu);
	if (in->stopping) {
		pthread_mutex_unlock(&in->mu);
		return;
	}
	in->stopping = true;
	in->deadline_ms = deadline_ms;
	pthread_cond_broadcast(&in->not_empty);
	pthread_cond_broadcast(&in->not_full);
	pthread_mutex_unlock(&in->mu);
	if (!in->started)
		return;
	pthread_join(in->thread, NULL);
	/* Send the last acks (until the deadline), then stop the acker. */
	pthread_mutex_lock(&in->amu);
	while ((in->acount > 0 || in->ready || in->acker_busy) && util_mono_ms() < deadline_ms) {
		struct timespec until;

		timespec_in(&until, 50);
		pthread_cond_timedwait(&in->ack_drained, &in->amu, &until);
	}
	in->acker_stop = true;
	pthread_cond_signal(&in->ack_ready);
	pthread_mutex_unlock(&in->amu);
	pthread_join(in->acker, NULL);
	in->started = false;
}

void ingest_free(struct ingest *in)
{
	if (!in)
		return;
	ingest_stop(in, util_mono_ms());
	for (size_t i = 0; in->q && i < in->count; i++)
		free(in->q[(in->head + i) % in->opt.queue_max]);
	for (size_t i = 0; in->aq && i < in->acount; i++)
		free(in->aq[(in->ahead + i) % ACKQ_MAX]);
	for (size_t b = 0; b < ACK_BUCKETS; b++) {
		while (in->ahash[b]) {
			struct ack_pend *p = in->ahash[b];

			in->ahash[b] = p->hnext;
			agri_seq_set_free(&p->seqs);
			free(p);
		}
	}
	free(in->q);
	free(in->aq);
	free(in->batch);
	free(in->acks);
	free(in->readings);
	free(in->fresh);
	pthread_mutex_destroy(&in->mu);
	pthread_cond_destroy(&in->not_empty);
	pthread_cond_destroy(&in->not_full);
	pthread_cond_destroy(&in->idle);
	pthread_cond_destroy(&in->call_done);
	pthread_mutex_destroy(&in->amu);
	pthread_cond_destroy(&in->ack_ready);
	pthread_cond_destroy(&in->ack_drained);
	free(in);
}
