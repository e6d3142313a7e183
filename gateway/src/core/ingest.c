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
#include "core/ingest.h"

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
#include "core/store.h"
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
#include "core/ingest_int.h"
#include "core/store.h"

/* --- queue ------------------------------------------------------------ */

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
	snprintf(in->hub_id, sizeof(in->hub_id), "%s", in->opt.hub_id ? in->opt.hub_id : "agri-gateway");
	in->opt.hub_id = in->hub_id;
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
	util_cond_init_mono(&in->not_empty);
	util_cond_init_mono(&in->not_full);
	util_cond_init_mono(&in->idle);
	util_cond_init_mono(&in->call_done);
	in->calls_tail = &in->calls;
	pthread_mutex_init(&in->amu, NULL);
	pthread_mutex_init(&in->qmu, NULL);
	in_quota_init(in, &in->q_overflow, "");
	in->ready_tail = &in->ready;
	util_cond_init_mono(&in->ack_ready);
	util_cond_init_mono(&in->ack_drained);
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
	size_t keep = len;
	bool full, sample = false;

	if (topic_len == 0)
		topic_len = strlen(topic);
	m = malloc(sizeof(*m) + len + 1 + topic_len + 1);
	if (!m)
		return 0;
	m->received_ms = util_now_ms();
	m->flags = 0;
	m->orig_len = len;
	m->over_msgs = m->over_bytes = 0;
	m->len = len;
	memcpy(m->payload, payload, len);
	m->payload[len] = '\0';
	m->topic = m->payload + len + 1;
	memcpy(m->topic, topic, topic_len);
	m->topic[topic_len] = '\0';
	if (in_quota_door(in, m, &sample)) {
		if (!sample) {
			free(m);
			return 1; /* taken and dropped: no end-to-end ack */
		}
		/* The sample keeps a prefix of the payload. */
		keep = len < QUOTA_SAMPLE_MAX ? len : QUOTA_SAMPLE_MAX;
		m->len = keep;
		memmove(m->payload + keep + 1, m->topic, topic_len + 1);
		m->payload[keep] = '\0';
		m->topic = m->payload + keep + 1;
	}

	give_up = util_mono_ms() + in->opt.full_wait_ms;
	pthread_mutex_lock(&in->mu);
	for (;;) {
		if (in->stopping)
			goto refuse; /* paho keeps it; the station resends it */
		full = in->count == in->opt.queue_max ||
		       (in->count > 0 && in->bytes + keep > in->opt.queue_bytes_max);
		if (!full)
			break;
		if (sample || util_mono_ms() >= give_up)
			goto refuse; /* a sample never waits: the next one will do */
		/* While this (paho's) thread waits, the acks the writer makes
		 * go out from here: the acker would wait for paho's lock. */
		pthread_mutex_unlock(&in->mu);
		in_acks_send_inline(in, INLINE_ACKS_MAX);
		pthread_mutex_lock(&in->mu);
		util_deadline(&until, CLOCK_MONOTONIC, FULL_SLICE_MS);
		if (in->count == in->opt.queue_max ||
		    (in->count > 0 && in->bytes + keep > in->opt.queue_bytes_max))
			pthread_cond_timedwait(&in->not_full, &in->mu, &until);
	}
	in->q[(in->head + in->count) % in->opt.queue_max] = m;
	in->count++;
	in->bytes += keep;
	atomic_store(&in->health->queue_depth, in->count);
	pthread_cond_signal(&in->not_empty);
	pthread_mutex_unlock(&in->mu);
	atomic_fetch_add(&in->health->received, 1);
	return 1;
refuse:
	pthread_mutex_unlock(&in->mu);
	free(m);
	if (sample)
		return 1; /* dropped (counted); no end-to-end ack */
	atomic_fetch_add(&in->health->deferred, 1);
	return 0;
}

/* --- the writer thread ------------------------------------------------- */

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

/* A failure of the database itself (disk full, I/O error, locked,
 * read-only, corrupt, out of memory): retried with backoff, nothing acked
 * meanwhile. Anything else comes from what the messages carry. */
static bool store_failure(int rc)
{
	return rc == -ENOSPC || rc == -EIO || rc == -EBUSY || rc == -EROFS ||
	       rc == -EUCLEAN || rc == -EACCES || rc == -ENOMEM || rc == -EAGAIN ||
	       rc == -EDQUOT;
}

#define NOMEM_TRIES 3 /* -ENOMEM this often on the same messages: their content */

/* The hub alarm: raised (log, health, /metrics, the hub's status topic)
 * while the store fails; when it works again the hooks hear of it at the
 * next tick (the notification channels, once the outbox can be written). */
static void hub_failing(struct ingest *in, int rc)
{
	struct gateway_health *h = in->health;

	if (!in->hub_fail_since_ms) {
		in->hub_fail_since_ms = util_now_ms();
		in->hub_fail_errno = -rc;
		atomic_store(&h->hub_alarm_since_ms, in->hub_fail_since_ms);
		atomic_store(&h->hub_alarm_errno, -rc);
		atomic_store(&h->hub_alarm, true);
		log_error(LOG, "HUB ALARM: the database cannot be written; stations are not acked"
			  " until it can error=\"%s\"", strerror(-rc));
	}
}

static void hub_recovered(struct ingest *in)
{
	if (!in->hub_fail_since_ms)
		return;
	in->hub_down_ms = util_now_ms() - in->hub_fail_since_ms;
	in->hub_event_due = true;
	atomic_store(&in->health->hub_alarm, false);
	log_warn(LOG, "hub alarm over: storing again after %lld s error was=\"%s\"",
		 (long long)(in->hub_down_ms / 1000), strerror(in->hub_fail_errno));
}

/* Commits msgs[0..n), retrying while the store itself fails (or until
 * shutdown's deadline: -ESHUTDOWN). Returns 0, -ESHUTDOWN, or the error a
 * message's content caused (nothing committed). */
static int commit_retrying(struct ingest *in, struct msg **msgs, size_t n)
{
	struct gateway_health *h = in->health;
	int rc, nomem = 0;

	for (int attempt = 0;; attempt++) {
		rc = in_apply(in, msgs, n);
		if (rc == 0)
			break;
		run_hooks_after(in, false);
		atomic_fetch_add(&h->commit_failures, 1);
		if (!store_failure(rc) || (rc == -ENOMEM && ++nomem >= NOMEM_TRIES))
			return rc;
		atomic_store(&h->db_writable, false);
		hub_failing(in, rc);
		log_complain(&in->db_complaint, LOG_LVL_ERROR, LOG,
			     "cannot store a batch, not acking; retrying messages=%zu error=\"%s\"",
			     n, strerror(-rc));
		if (stop_now(in)) {
			log_error(LOG, "shutdown: %zu messages not stored (their stations will resend)", n);
			return -ESHUTDOWN;
		}
		util_sleep_ms(util_backoff_ms(attempt < 6 ? attempt : 6, 50, 2000, &in->rng));
	}
	atomic_store(&h->db_writable, true);
	log_release(&in->db_complaint, LOG, "storing again");
	hub_recovered(in);
	in->hub_fail_since_ms = 0;
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
	in_acks_post(in);
	run_hooks_after(in, true);
	return 0;
}

/*
 * Commits msgs[0..n), then acks and frees them. The writer never blocks on
 * content: when the batch fails for what a message carries (not for the
 * database), its messages are committed one by one, and one that fails
 * alone becomes a dead letter ("internal"), acked like any rejected batch.
 */
static void process(struct ingest *in, struct msg **msgs, size_t n)
{
	int rc = commit_retrying(in, msgs, n);

	for (size_t i = 0; rc != 0 && rc != -ESHUTDOWN && i < n; i++) {
		int one = n == 1 ? rc : commit_retrying(in, &msgs[i], 1);

		if (one == 0 || one == -ESHUTDOWN)
			continue;
		atomic_fetch_add(&in->health->content_failures, 1);
		log_warn(LOG, "a message made its batch fail: dead-lettered topic=%s error=\"%s\"",
			 msgs[i]->topic, strerror(-one));
		in->poison = one;
		if ((one = commit_retrying(in, &msgs[i], 1)) != 0 && one != -ESHUTDOWN)
			log_error(LOG, "cannot dead-letter a message topic=%s error=\"%s\"",
				  msgs[i]->topic, strerror(-one));
		in->poison = 0;
	}
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

	if (in->opt.dead_max_age_ms > 0 && now >= in->next_dead_expiry_ms) {
		rc = store_expire_dead_letters(in->st, util_now_ms() - in->opt.dead_max_age_ms);
		in->next_dead_expiry_ms = now + (rc > 0 ? 0 : 60000);
		if (rc > 0)
			log_debug(LOG, "expired dead letters n=%d", rc);
	}

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
		int crc = in_before_commit(in);

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
	if (rc >= 0)
		atomic_fetch_add(&in->health->dead_letters, in->c.dead);
	return rc;
}

static int tick_fn(void *ctx, struct ingest *in, struct store *st)
{
	int64_t now_ms = util_now_ms();
	int rc;

	(void)ctx;
	if (in->hub_event_due) {
		struct ingest_event ev = {.kind = INGEST_EV_HUB, .station = in->opt.hub_id,
					  .value = (double)in->hub_down_ms / 1000.0, .at_ms = now_ms};
		char span[32];

		in_span_text(span, sizeof(span), in->hub_down_ms);
		snprintf(ev.detail_en, sizeof(ev.detail_en),
			 "could not store readings for %s (%s); nothing acknowledged was lost,"
			 " stations resent the rest", span, strerror(in->hub_fail_errno));
		snprintf(ev.detail_vi, sizeof(ev.detail_vi),
			 "không lưu được số liệu trong %s (%s); không mất số liệu đã xác nhận",
			 span, strerror(in->hub_fail_errno));
		if ((rc = in_run_event_hooks(in, &ev)) < 0)
			return rc;
	}
	for (size_t k = 0; k < in->n_hooks; k++)
		if (in->hooks[k].on_tick && (rc = in->hooks[k].on_tick(in->hooks[k].ctx, st, now_ms)) < 0)
			return rc;
	return 0;
}

void in_tick(struct ingest *in)
{
	int64_t now = util_mono_ms();
	bool any = false;
	int rc;

	if (now < in->next_tick_ms)
		return;
	in->next_tick_ms = now + TICK_EVERY_MS;
	for (size_t k = 0; k < in->n_hooks; k++)
		any |= in->hooks[k].on_tick != NULL;
	any |= in->hub_event_due;
	if (any && (rc = run_in_txn(in, tick_fn, NULL)) < 0)
		log_debug(LOG, "tick failed: %s", strerror(-rc));
	else if (any)
		in->hub_event_due = false;
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
	util_deadline(&until, CLOCK_MONOTONIC, timeout_ms);
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
			util_deadline(&until, CLOCK_MONOTONIC, TICK_EVERY_MS);
			if (pthread_cond_timedwait(&in->not_empty, &in->mu, &until) == ETIMEDOUT)
				break;
		}
		if (in->stopping && (in->count == 0 || util_mono_ms() >= in->deadline_ms)) {
			pthread_mutex_unlock(&in->mu);
			/* A last tick: hooks write what they deferred
			 * (ingest_stopping() tells them). */
			in->next_tick_ms = 0;
			in_tick(in);
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
		in_tick(in);
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
	int rc = pthread_create(&in->acker, NULL, in_acker_main, in);

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

	util_deadline(&until, CLOCK_MONOTONIC, timeout_ms);
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

		util_deadline(&until, CLOCK_MONOTONIC, 50);
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
	for (size_t b = 0; b < QUOTA_BUCKETS; b++) {
		while (in->qtab[b]) {
			struct quota *q = in->qtab[b];

			in->qtab[b] = q->next;
			free(q);
		}
	}
	pthread_mutex_destroy(&in->qmu);
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
