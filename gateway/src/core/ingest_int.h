/*
 * The ingest's insides, shared by its files (see ingest.h for the API):
 * the queue and the writer thread (ingest.c), per-station budgets
 * (ingest_budget.c), one batch from messages to rows (ingest_batch.c),
 * publications and coalesced acks (ingest_acks.c).
 *
 * Locking rules: `mu` guards the ring (q, head, count, bytes), the calls
 * and the flags stopping and busy; `amu` guards the publication ring and
 * the pending acks; `qmu` the budgets' table and the door's buckets; the
 * writer thread alone touches the store, the decode buffers, the ack
 * list and the writer's buckets. Health counters are atomics.
 */
#ifndef GATEWAY_CORE_INGEST_INT_H
#define GATEWAY_CORE_INGEST_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agri/msg.h"
#include "agri/topic.h"
#include "core/ingest.h"

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
	int poison;        /* != 0: in_apply() dead-letters each message (isolation) */
	int64_t hub_fail_since_ms; /* the store has failed since (wall clock), 0: fine */
	int hub_fail_errno;
	bool hub_event_due;        /* tell the hooks at the next tick */
	int64_t hub_down_ms;       /* ... how long it lasted */
	int64_t next_dead_expiry_ms;
	int64_t refused_log_ms;    /* monotonic: a hook's refusal last logged */
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

/* ingest.c: the queue and the writer thread */
void in_tick(struct ingest *in);

/* ingest_budget.c: per-station budgets (docs/gateway.md, Delivery semantics) */
bool in_bucket_take(struct bucket *b, double n, int64_t now);
void in_quota_init(struct ingest *in, struct quota *q, const char *station);
struct quota *in_quota_of(struct ingest *in, const char *station);
bool in_quota_door(struct ingest *in, struct msg *m, bool *sample);

/* ingest_batch.c: one batch, from messages to rows */
int in_run_event_hooks(struct ingest *in, const struct ingest_event *ev);
void in_span_text(char *buf, size_t len, int64_t ms);
int in_before_commit(struct ingest *in);
int in_apply(struct ingest *in, struct msg **msgs, size_t n);

/* ingest_acks.c: publications and coalesced end-to-end acks */
void in_acks_post(struct ingest *in);
void *in_acker_main(void *arg);
void in_acks_send_inline(struct ingest *in, int max);

#endif
