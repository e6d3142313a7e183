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

#define MSG_QUOTA 1u /* a sample of messages dropped at the door (ingest_offer) */

struct msg {
	int64_t received_ms;
	unsigned flags;
	size_t orig_len;           /* MSG_QUOTA: the sampled message's size */
	uint64_t over_msgs, over_bytes; /* MSG_QUOTA: dropped since the last sample */
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

/* A token bucket: `rate` tokens a ms, at most `burst`; a take may leave
 * it in debt (a batch bigger than the burst still passes once, then waits
 * its turn), so its owner cannot starve and cannot exceed the rate. */
struct bucket {
	double tokens, rate, burst;
	int64_t last_ms; /* monotonic */
};

#define QUOTA_BUCKETS 1024   /* hash buckets (power of two) */
#define QUOTA_MAX 65536      /* stations tracked; more share one entry */
#define QUOTA_SAMPLE_MAX 8192 /* bytes of a dropped message kept as its sample */
#define QUOTA_SAMPLE_MS 60000 /* at most one sample a station this often */

/* One station's budgets. msgs, bytes, over_* and sample_ms are the paho
 * thread's, under qmu; readings/dead are the writer's alone. */
struct quota {
	struct quota *next;
	struct bucket msgs, bytes;
	uint64_t over_msgs, over_bytes; /* dropped since the last sample */
	int64_t sample_ms;              /* monotonic: last sample queued */
	struct bucket readings, dead;
	char station[AGRI_ID_MAX + 1];
};

struct ingest {
	struct store *st;
	struct ingest_options opt;
	char prefix[65];
	char hub_id[65];
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

	/* Per-station budgets: the table is guarded by qmu (the paho thread
	 * adds entries; the writer looks them up). */
	pthread_mutex_t qmu;
	struct quota *qtab[QUOTA_BUCKETS];
	size_t n_quota;
	struct quota q_overflow;

	/* writer thread only */
	int poison;        /* != 0: apply() dead-letters each message (isolation) */
	int64_t hub_fail_since_ms; /* the store has failed since (wall clock), 0: fine */
	int hub_fail_errno;
	bool hub_event_due;        /* tell the hooks at the next tick */
	int64_t hub_down_ms;       /* ... how long it lasted */
	int64_t next_dead_expiry_ms;
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

/* --- per-station budgets ------------------------------------------------ */

static void bucket_init(struct bucket *b, int64_t per_min)
{
	b->rate = per_min > 0 ? (double)per_min / 60000.0 : 0;
	b->burst = per_min > 0 ? 2.0 * (double)per_min : 0;
	b->tokens = b->burst;
	b->last_ms = util_mono_ms();
}

/* Takes n tokens when there are any (possibly going into debt); false
 * when the bucket is empty or in debt. A bucket without a rate always
 * gives. */
static bool bucket_take(struct bucket *b, double n, int64_t now)
{
	if (b->rate <= 0)
		return true;
	if (now > b->last_ms) {
		b->tokens += (double)(now - b->last_ms) * b->rate;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_ms = now;
	}
	if (b->tokens <= 0)
		return false;
	b->tokens -= n;
	return true;
}

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void quota_init(struct ingest *in, struct quota *q, const char *station)
{
	snprintf(q->station, sizeof(q->station), "%s", station);
	bucket_init(&q->msgs, in->opt.messages_per_min);
	bucket_init(&q->bytes, in->opt.bytes_per_min);
	bucket_init(&q->readings, in->opt.readings_per_min);
	bucket_init(&q->dead, in->opt.dead_letters_per_min);
}

/* The budgets of station ("" for messages without one). Under qmu. */
static struct quota *quota_get(struct ingest *in, const char *station)
{
	struct quota **b = &in->qtab[str_hash(station) & (QUOTA_BUCKETS - 1)], *q;

	for (q = *b; q; q = q->next)
		if (strcmp(q->station, station) == 0)
			return q;
	if (in->n_quota >= QUOTA_MAX || !(q = calloc(1, sizeof(*q))))
		return &in->q_overflow; /* shared: bounded memory */
	quota_init(in, q, station);
	q->next = *b;
	*b = q;
	in->n_quota++;
	return q;
}

/* The writer's side of a station's budgets. */
static struct quota *quota_of(struct ingest *in, const char *station)
{
	struct quota *q;

	pthread_mutex_lock(&in->qmu);
	q = quota_get(in, station);
	pthread_mutex_unlock(&in->qmu);
	return q;
}

static bool limits_on(const struct ingest *in)
{
	return in->opt.messages_per_min > 0 || in->opt.bytes_per_min > 0;
}

/*
 * At the door (paho's thread): a station's message past its message or
 * byte budget is dropped before it costs the writer anything. It is not
 * acked end to end, so an honest station that merely bursts loses
 * nothing (its spool resends); once a minute a sample of what was dropped
 * goes to the writer as a "quota" dead letter. Returns true to drop m
 * (*sample: queue this copy instead, already marked).
 */
static bool quota_door(struct ingest *in, struct msg *m, bool *sample)
{
	struct agri_topic t;
	struct quota *q;
	int64_t now;
	bool drop;

	*sample = false;
	if (!limits_on(in) || agri_topic_parse(m->topic, in->prefix, &t) < 0 ||
	    (t.kind != AGRI_TOPIC_TELEMETRY && t.kind != AGRI_TOPIC_STATUS))
		return false;
	now = util_mono_ms();
	pthread_mutex_lock(&in->qmu);
	q = quota_get(in, t.station);
	drop = !bucket_take(&q->msgs, 1, now) || !bucket_take(&q->bytes, (double)m->len, now);
	if (drop) {
		q->over_msgs++;
		q->over_bytes += m->len;
		if (q->sample_ms == 0 || now - q->sample_ms >= QUOTA_SAMPLE_MS) {
			q->sample_ms = now;
			*sample = true;
			m->flags |= MSG_QUOTA;
			m->over_msgs = q->over_msgs;
			m->over_bytes = q->over_bytes;
			q->over_msgs = q->over_bytes = 0;
		}
	}
	pthread_mutex_unlock(&in->qmu);
	if (drop) {
		atomic_fetch_add(&in->health->quota_messages, 1);
		atomic_fetch_add(&in->health->quota_bytes, m->len);
	}
	return drop;
}

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
	cond_init_mono(&in->not_empty);
	cond_init_mono(&in->not_full);
	cond_init_mono(&in->idle);
	cond_init_mono(&in->call_done);
	in->calls_tail = &in->calls;
	pthread_mutex_init(&in->amu, NULL);
	pthread_mutex_init(&in->qmu, NULL);
	quota_init(in, &in->q_overflow, "");
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
	if (quota_door(in, m, &sample)) {
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
		acks_send_inline(in, INLINE_ACKS_MAX);
		pthread_mutex_lock(&in->mu);
		timespec_in(&until, FULL_SLICE_MS);
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

/* --- one batch -------------------------------------------------------- */

#define REASON_MAX (AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 160)

/* Stores m as a dead letter of kind (station: "" when unknown), within
 * the station's dead-letter budget; past it the dead letter is only
 * counted (per kind, for good). */
static int dead_letter(struct ingest *in, const struct msg *m, const char *station,
		       const char *kind, const char *reason)
{
	struct quota *q = quota_of(in, station ? station : "");
	struct store_dead_letter dl = {
		.topic = m->topic, .payload = m->payload, .len = m->len, .reason = reason,
		.kind = kind, .station = station, .received_ms = m->received_ms,
	};
	int rc;

	if (!bucket_take(&q->dead, 1, util_mono_ms())) {
		if ((rc = store_count_dead_letters(in->st, kind, 1)) == 0)
			atomic_fetch_add(&in->health->dead_suppressed, 1);
		return rc;
	}
	if (m->flags & MSG_QUOTA)
		dl.len = m->len; /* a sample: its prefix is all there is */
	if ((rc = store_put_dead_letter(in->st, &dl)) == 0) {
		in->c.dead++;
		log_debug(LOG, "dead letter topic=%s kind=%s reason=\"%s\"", m->topic, kind, reason);
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

static int run_event_hooks(struct ingest *in, const struct ingest_event *ev)
{
	int rc;

	for (size_t h = 0; h < in->n_hooks; h++)
		if (in->hooks[h].on_event &&
		    (rc = in->hooks[h].on_event(in->hooks[h].ctx, in->st, ev)) < 0)
			return rc;
	return 0;
}

/* Tells the hooks about the series the store retired in this transaction. */
static int run_retired_hooks(struct ingest *in)
{
	const struct store_retired *r;
	size_t n = store_retired(in->st, &r);
	int rc;

	for (size_t i = 0; i < n; i++)
		for (size_t h = 0; h < in->n_hooks; h++)
			if (in->hooks[h].on_series_retired &&
			    (rc = in->hooks[h].on_series_retired(in->hooks[h].ctx, in->st,
								 r[i].station, r[i].sensor,
								 r[i].metric)) < 0)
				return rc;
	return 0;
}

/* Stores t's readings, noting in in->fresh which were new. A reading
 * that would start a series past the station's budget is refused (not
 * fresh) and counted in *refused. */
static int store_readings(struct ingest *in, const struct agri_telemetry *t,
			  int64_t received_ms, size_t *refused)
{
	int rc, n = 0;

	for (size_t i = 0; i < t->n; i++) {
		rc = store_put_reading(in->st, t->station, &t->readings[i], received_ms);
		if (rc == -EDQUOT) {
			in->fresh[i] = false;
			(*refused)++;
			continue;
		}
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

	if ((rc = run_retired_hooks(in)) < 0)
		return rc;
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
	size_t refused = 0;
	int n, rc;

	if (t->n > AGRI_BATCH_MAX_READINGS)
		return -E2BIG;
	if ((n = store_readings(in, t, received_ms, &refused)) < 0)
		return n;
	if (refused)
		log_warn(LOG, "import: %zu readings of station=%s refused: past its series budget",
			 refused, t->station);
	if ((rc = store_touch_station(in->st, t->station, received_ms)) < 0)
		return rc;
	if ((rc = run_telemetry_hooks(in, t, received_ms)) < 0)
		return rc;
	return n;
}

/* "5.0 years", "3.2 hours", "40 s": how far apart two clocks are. */
static void span_text(char *buf, size_t len, int64_t ms)
{
	double s = (double)(ms < 0 ? -ms : ms) / 1000.0;

	if (s >= 86400.0 * 365)
		snprintf(buf, len, "%.1f years", s / (86400.0 * 365.25));
	else if (s >= 86400.0 * 2)
		snprintf(buf, len, "%.1f days", s / 86400.0);
	else if (s >= 3600.0)
		snprintf(buf, len, "%.1f hours", s / 3600.0);
	else
		snprintf(buf, len, "%.0f s", s);
}

static int clock_event(struct ingest *in, const char *station, int64_t offset_ms,
		       const char *what_en, const char *what_vi, int64_t at_ms)
{
	struct ingest_event ev = {.kind = INGEST_EV_CLOCK, .station = station,
				  .value = (double)offset_ms / 1000.0, .at_ms = at_ms};
	char span[32];

	span_text(span, sizeof(span), offset_ms);
	snprintf(ev.detail_en, sizeof(ev.detail_en), "%s %s %s the hub's clock", what_en, span,
		 offset_ms > 0 ? "ahead of" : "behind");
	snprintf(ev.detail_vi, sizeof(ev.detail_vi), "%s %s %s đồng hồ của trạm chủ", what_vi,
		 offset_ms > 0 ? "nhanh" : "chậm", span);
	return run_event_hooks(in, &ev);
}

static int quota_event(struct ingest *in, const char *station, double over,
		       const char *en, const char *vi, int64_t at_ms)
{
	struct ingest_event ev = {.kind = INGEST_EV_QUOTA, .station = station,
				  .value = over, .at_ms = at_ms};

	snprintf(ev.detail_en, sizeof(ev.detail_en), "%s", en);
	snprintf(ev.detail_vi, sizeof(ev.detail_vi), "%s", vi);
	return run_event_hooks(in, &ev);
}

/* Moves the readings outside the clock window out of t (they are kept in
 * the dead letter): returns how many, with the first one's offset. */
static size_t clock_filter(struct ingest *in, struct agri_telemetry *t, int64_t now_ms,
			   int64_t *first_off)
{
	size_t kept = 0, out = 0;

	if (in->opt.clock_skew_ms <= 0 && in->opt.backlog_ms <= 0)
		return 0;
	for (size_t i = 0; i < t->n; i++) {
		int64_t ts = t->readings[i].ts_ms;

		if ((in->opt.clock_skew_ms > 0 && ts > now_ms + in->opt.clock_skew_ms) ||
		    (in->opt.backlog_ms > 0 && ts < now_ms - in->opt.backlog_ms)) {
			if (out++ == 0)
				*first_off = ts - now_ms;
			continue;
		}
		if (kept != i)
			t->readings[kept] = t->readings[i];
		kept++;
	}
	t->n = kept;
	return out;
}

static int put_telemetry(struct ingest *in, const struct msg *m,
			 const struct agri_topic *t)
{
	struct agri_telemetry tel = {.readings = in->readings,
				     .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[REASON_MAX], e[AGRI_ERR_PATH_MAX + AGRI_ERR_MSG_MAX + 4];
	char en[256], vi[256];
	size_t n_all, off_clock, refused = 0;
	int64_t first_off = 0;
	int rc, drc;

	drc = agri_telemetry_decode(m->payload, m->len, &tel, &err);
	agri_err_format(&err, e, sizeof(e));
	if (drc < 0) {
		bool same = tel.has_station && strcmp(tel.station, t->station) == 0;

		snprintf(reason, sizeof(reason), "%s", e);
		if ((rc = dead_letter(in, m, t->station, "invalid", reason)) < 0)
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
		return dead_letter(in, m, t->station, "mismatch", reason); /* never acked */
	}
	/* Readings past the station's rate: nothing stored, not acked (its
	 * spool resends them when the budget has refilled). */
	if (!bucket_take(&quota_of(in, t->station)->readings, (double)tel.n, util_mono_ms())) {
		atomic_fetch_add(&in->health->quota_readings, tel.n);
		snprintf(reason, sizeof(reason),
			 "readings over the station's budget (%lld a minute): %zu readings not stored,"
			 " not acked", (long long)in->opt.readings_per_min, tel.n);
		snprintf(en, sizeof(en), "sends more readings than its budget of %lld a minute",
			 (long long)in->opt.readings_per_min);
		snprintf(vi, sizeof(vi), "gửi quá hạn mức %lld số đo mỗi phút",
			 (long long)in->opt.readings_per_min);
		if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0 ||
		    (rc = quota_event(in, t->station, (double)tel.n, en, vi, m->received_ms)) < 0)
			return rc;
		return 0;
	}
	n_all = tel.n;
	off_clock = clock_filter(in, &tel, m->received_ms, &first_off);
	if ((rc = store_readings(in, &tel, m->received_ms, &refused)) < 0)
		return rc;
	if (drc == 1) { /* valid readings kept; the batch as a whole kept too */
		snprintf(reason, sizeof(reason), "%zu invalid reading%s skipped, first: %s",
			 tel.n_invalid, tel.n_invalid == 1 ? "" : "s", e);
		if ((rc = dead_letter(in, m, t->station, "partial", reason)) < 0)
			return rc;
	}
	if (off_clock) {
		char span[32];

		atomic_fetch_add(&in->health->clock_readings, off_clock);
		span_text(span, sizeof(span), first_off);
		snprintf(reason, sizeof(reason),
			 "%zu of %zu readings outside the clock window (now +%llds / -%lld days):"
			 " first stamped %s %s", off_clock, n_all,
			 (long long)(in->opt.clock_skew_ms / 1000),
			 (long long)(in->opt.backlog_ms / 86400000), span,
			 first_off > 0 ? "ahead" : "behind");
		if ((rc = dead_letter(in, m, t->station, "clock", reason)) < 0 ||
		    (rc = clock_event(in, t->station, first_off, "stamps readings",
				      "ghi thời gian số đo", m->received_ms)) < 0)
			return rc;
	}
	if (refused) {
		atomic_fetch_add(&in->health->quota_readings, refused);
		snprintf(reason, sizeof(reason),
			 "%zu readings of new series refused: the station has its budget of %d series",
			 refused, store_series_max(in->st));
		snprintf(en, sizeof(en), "sends more series (sensor x metric) than its budget of %d",
			 store_series_max(in->st));
		snprintf(vi, sizeof(vi), "gửi nhiều chuỗi số liệu hơn hạn mức %d",
			 store_series_max(in->st));
		if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0 ||
		    (rc = quota_event(in, t->station, (double)refused, en, vi, m->received_ms)) < 0)
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
	char reason[REASON_MAX];
	int rc;

	if (agri_status_decode(m->payload, m->len, &s, &err) < 0) {
		agri_err_format(&err, reason, sizeof(reason));
		return dead_letter(in, m, t->station, "invalid", reason);
	}
	if (strcmp(s.station, t->station) != 0) {
		snprintf(reason, sizeof(reason),
			 "station: \"%s\" differs from the topic's \"%s\"", s.station,
			 t->station);
		return dead_letter(in, m, t->station, "mismatch", reason);
	}
	if ((rc = store_put_status(in->st, &s, m->received_ms)) < 0)
		return rc;
	if (s.online && s.ts_ms) {
		int64_t off = s.ts_ms - m->received_ms;

		if ((rc = store_put_clock_offset(in->st, s.station, off)) < 0)
			return rc;
		/* Only a clock ahead is sure: a retained status may be old. */
		if (in->opt.clock_skew_ms > 0 && off > in->opt.clock_skew_ms &&
		    (rc = clock_event(in, s.station, off, "its clock is", "đồng hồ trạm",
				      m->received_ms)) < 0)
			return rc;
	}
	for (size_t h = 0; h < in->n_hooks; h++) {
		if (in->hooks[h].on_status &&
		    (rc = in->hooks[h].on_status(in->hooks[h].ctx, in->st, &s,
						 m->received_ms)) < 0)
			return rc;
	}
	in->c.status++;
	return 0;
}

/* A sample of the messages a station had dropped at the door. */
static int put_quota_sample(struct ingest *in, const struct msg *m,
			    const struct agri_topic *t)
{
	char reason[REASON_MAX], en[256], vi[256];
	int rc;

	snprintf(reason, sizeof(reason),
		 "messages over the station's budget (%lld a minute, %lld KiB a minute):"
		 " %llu messages, %llu bytes dropped, not acked; this one was %zu bytes",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs, (unsigned long long)m->over_bytes, m->orig_len);
	snprintf(en, sizeof(en),
		 "sends more than its budget of %lld messages and %lld KiB a minute"
		 " (%llu messages dropped)",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs);
	snprintf(vi, sizeof(vi), "gửi quá hạn mức %lld tin và %lld KiB mỗi phút (%llu tin bị bỏ)",
		 (long long)in->opt.messages_per_min, (long long)(in->opt.bytes_per_min / 1024),
		 (unsigned long long)m->over_msgs);
	if ((rc = dead_letter(in, m, t->station, "quota", reason)) < 0)
		return rc;
	return quota_event(in, t->station, (double)m->over_msgs, en, vi, m->received_ms);
}

/* Isolation: m made its batch fail for what it carries (in->poison):
 * it becomes a dead letter, acked end to end like any rejected batch when
 * its station and seq can be read. */
static int put_poison(struct ingest *in, const struct msg *m, const struct agri_topic *t,
		      bool has_topic)
{
	struct agri_telemetry tel = {.readings = in->readings, .cap = AGRI_BATCH_MAX_READINGS};
	struct agri_err err = {0};
	char reason[REASON_MAX];
	int rc;

	snprintf(reason, sizeof(reason), "could not be stored: %s (the rest of its batch was)",
		 strerror(-in->poison));
	if ((rc = dead_letter(in, m, has_topic ? t->station : "", "internal", reason)) < 0)
		return rc;
	if (has_topic && t->kind == AGRI_TOPIC_TELEMETRY && !(m->flags & MSG_QUOTA) &&
	    agri_telemetry_decode(m->payload, m->len, &tel, &err) >= 0 &&
	    strcmp(tel.station, t->station) == 0) {
		if ((rc = store_note_seq(in->st, t->station, tel.seq, m->received_ms)) < 0)
			return rc;
		ack_later(in, t->station, tel.seq);
	}
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

static int put_one(struct ingest *in, const struct msg *m)
{
	struct agri_topic t;
	bool has_topic = agri_topic_parse(m->topic, in->prefix, &t) == 0 &&
			 (t.kind == AGRI_TOPIC_TELEMETRY || t.kind == AGRI_TOPIC_STATUS);

	if (in->poison)
		return put_poison(in, m, &t, has_topic);
	if (!has_topic)
		return dead_letter(in, m, "", "topic", "topic: not a telemetry or status topic");
	if (m->flags & MSG_QUOTA)
		return put_quota_sample(in, m, &t);
	if (t.kind == AGRI_TOPIC_TELEMETRY)
		return put_telemetry(in, m, &t);
	return put_status(in, m, &t);
}

/* Stores msgs[0..n) in one transaction. Returns 0 or a negative errno
 * (the transaction is then rolled back). */
static int apply(struct ingest *in, struct msg **msgs, size_t n)
{
	int rc;

	memset(&in->c, 0, sizeof(in->c));
	in->n_acks = 0;
	if ((rc = store_begin(in->st)) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = put_one(in, msgs[i]);
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
		rc = apply(in, msgs, n);
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
	acks_post(in);
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
	if (in->hub_event_due) {
		struct ingest_event ev = {.kind = INGEST_EV_HUB, .station = in->opt.hub_id,
					  .value = (double)in->hub_down_ms / 1000.0, .at_ms = now_ms};
		char span[32];

		span_text(span, sizeof(span), in->hub_down_ms);
		snprintf(ev.detail_en, sizeof(ev.detail_en),
			 "could not store readings for %s (%s); nothing acknowledged was lost,"
			 " stations resent the rest", span, strerror(in->hub_fail_errno));
		snprintf(ev.detail_vi, sizeof(ev.detail_vi),
			 "không lưu được số liệu trong %s (%s); không mất số liệu đã xác nhận",
			 span, strerror(in->hub_fail_errno));
		if ((rc = run_event_hooks(in, &ev)) < 0)
			return rc;
	}
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
