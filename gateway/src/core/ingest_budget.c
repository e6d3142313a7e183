/*
 * Per-station budgets (docs/gateway.md, Delivery semantics): token
 * buckets of messages and bytes checked at the door (paho's thread, before
 * the queue), of readings and dead letters checked by the writer.
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
bool in_bucket_take(struct bucket *b, double n, int64_t now)
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

void in_quota_init(struct ingest *in, struct quota *q, const char *station)
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
	struct quota **b = &in->qtab[agri_hash32(station) & (QUOTA_BUCKETS - 1)], *q;

	for (q = *b; q; q = q->next)
		if (strcmp(q->station, station) == 0)
			return q;
	if (in->n_quota >= QUOTA_MAX || !(q = calloc(1, sizeof(*q))))
		return &in->q_overflow; /* shared: bounded memory */
	in_quota_init(in, q, station);
	q->next = *b;
	*b = q;
	in->n_quota++;
	return q;
}

/* The writer's side of a station's budgets. */
struct quota *in_quota_of(struct ingest *in, const char *station)
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
bool in_quota_door(struct ingest *in, struct msg *m, bool *sample)
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
	drop = !in_bucket_take(&q->msgs, 1, now) || !in_bucket_take(&q->bytes, (double)m->len, now);
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
