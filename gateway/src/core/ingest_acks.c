/*
 * Publications and end-to-end acks (docs/gateway.md, Pipeline): committed
 * seqs wait per station as ranges, at most one ack in flight per station;
 * the acker thread publishes them (and the hooks' retained publications),
 * so the writer never waits for paho's lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/buf.h"
#include "agri/log.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "core/ingest_int.h"
#include "core/store.h"

/* --- publications and acks (the acker thread) ------------------------------ */

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
	struct ack_pend **b = &in->ahash[agri_hash32(station) & (ACK_BUCKETS - 1)], *p;

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
void in_acks_post(struct ingest *in)
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

void *in_acker_main(void *arg)
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
			util_deadline(&until, CLOCK_MONOTONIC, 100);
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
void in_acks_send_inline(struct ingest *in, int max)
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
