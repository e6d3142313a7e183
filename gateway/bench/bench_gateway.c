/*
 * Load generator for scripts/bench-gateway: publishes telemetry batches
 * (docs/interfaces.md, "Telemetry"; 6 readings each by default) for many stations through a
 * real broker with paho MQTTAsync (QoS 1, a window of in-flight
 * publishes), listens to the gateway's end-to-end acks and reports:
 * publish rate, the time until every batch was acked, and the
 * publish->ack latency percentiles (an upper bound of publish->commit: the
 * gateway acks right after its commit). One line of key=value results.
 * --disorder PCT sends that share of each station's batches late: each held
 * back 1-20 places behind later ones (docs/alerts.md, "Reading order").
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "agri/msg.h"
#include "agri/util.h"
#include "agri/time.h"
#include "agri/topic.h"

struct bench {
	MQTTAsync c;
	int stations, per, window;
	long total;       /* batches to publish */
	double rate;      /* batches/s; 0 = as fast as the window allows */
	atomic_long inflight, acked_batches;
	int64_t *pub_us;  /* [station * max_seq + seq] publish time, 0 = none */
	int64_t *lat_us;  /* ack latencies */
	long max_seq;
	double disorder;  /* share of batches held back (0..1) */
	long *order;      /* [station * max_seq + k]: the k-th seq it sends */
	long n_out;       /* batches sent after a later one */
	atomic_bool connected;
	pthread_mutex_t mu;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void on_sent(void *ctx, MQTTAsync_successData *r)
{
	struct bench *b = ctx;

	(void)r;
	atomic_fetch_sub(&b->inflight, 1);
}

static void on_send_fail(void *ctx, MQTTAsync_failureData *r)
{
	struct bench *b = ctx;

	(void)r;
	atomic_fetch_sub(&b->inflight, 1);
}

static int on_msg(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
	struct bench *b = ctx;
	struct agri_ack a;
	struct agri_err err;
	int64_t t = now_us();
	int st;

	(void)tlen;
	if (agri_ack_decode(m->payload, (size_t)m->payloadlen, &a, &err) == 0 &&
	    sscanf(a.station, "B%d", &st) == 1 && st >= 0 && st < b->stations) {
		pthread_mutex_lock(&b->mu);
		for (size_t i = 0; i < a.n; i++) {
			for (uint64_t s = a.ranges[i].first; s <= a.ranges[i].last && (long)s < b->max_seq; s++) {
				int64_t *p = &b->pub_us[(long)st * b->max_seq + (long)s];

				if (*p > 0) {
					b->lat_us[atomic_fetch_add(&b->acked_batches, 1)] = t - *p;
					*p = -1;
				}
			}
		}
		pthread_mutex_unlock(&b->mu);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void on_connected(void *ctx, char *cause)
{
	struct bench *b = ctx;

	(void)cause;
	MQTTAsync_subscribe(b->c, "agri/v1/+/ack", 1, NULL);
	atomic_store(&b->connected, true);
}

static int cmp64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, c = *(const int64_t *)y;

	return a < c ? -1 : a > c;
}

/* Readings' ts base: 20 days ago, so that a day's catch-up or a --full run
 * (a few days of batches a minute apart) stays inside the gateway's clock
 * window (now - 60 days .. now + 10 minutes). */
static int64_t ts_base_ms;

static int make_batch(char *buf, size_t len, int st, long seq, int per, int64_t t_ms)
{
	static struct agri_reading r[AGRI_BATCH_MAX_READINGS];
	struct agri_telemetry tel = {.readings = r, .n = (size_t)per, .cap = AGRI_BATCH_MAX_READINGS};
	static const char *const metrics[] = {"salinity", "conductivity", "water_temperature",
					      "ph", "dissolved_oxygen", "water_level"};

	snprintf(tel.station, sizeof(tel.station), "B%04d", st);
	tel.seq = (uint64_t)seq;
	tel.sent_at_ms = t_ms;
	for (int i = 0; i < per; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		/* one batch a minute, as stations send (unique per station) */
		r[i].ts_ms = ts_base_ms + seq * 60000 + i / 6;
		snprintf(r[i].sensor, sizeof(r[i].sensor), "sonde%d", i / 6 + 1);
		snprintf(r[i].metric, sizeof(r[i].metric), "%s", metrics[i % 6]);
		snprintf(r[i].unit, sizeof(r[i].unit), "u");
		r[i].value = (double)(seq % 1000) / 10.0 + i;
		r[i].has_value = true;
		r[i].q = AGRI_Q_OK;
	}
	return agri_telemetry_encode(&tel, buf, len);
}

struct bench_opts {
	const char *url;
	double ack_timeout_s;
};

/* The command line into b and o. Returns -1 to go on, else the exit code. */
static int bench_parse_args(int argc, char **argv, struct bench *b, struct bench_opts *o)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},
		{"stations", required_argument, NULL, 's'},
		{"batches", required_argument, NULL, 'n'},
		{"readings", required_argument, NULL, 'r'},
		{"rate", required_argument, NULL, 'R'},
		{"window", required_argument, NULL, 'w'},
		{"ack-timeout", required_argument, NULL, 't'},
		{"disorder", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "u:s:n:r:R:w:t:d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 's': b->stations = atoi(optarg); break;
		case 'n': b->total = atol(optarg); break;
		case 'r': b->per = atoi(optarg); break;
		case 'R': b->rate = atof(optarg); break;
		case 'w': b->window = atoi(optarg); break;
		case 't': o->ack_timeout_s = atof(optarg); break;
		case 'd': b->disorder = atof(optarg) / 100.0; break;
		case 'h':
			printf("usage: agri-bench-gateway [--url U] [--stations N] [--batches N]"
			       " [--readings N] [--rate BATCHES_PER_S] [--window N] [--ack-timeout S]"
			       " [--disorder PCT]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (b->stations < 1 || b->per < 1 || b->per > 1000 || b->total < 1 || b->window < 1 ||
	    b->disorder < 0 || b->disorder > 1)
		return 2;
	return -1;
}

/* Connects, subscribes to the acks and waits for both. Returns 0 or 1. */
static int bench_connect(struct bench *b, const char *url)
{
	MQTTAsync_createOptions cr = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	char cid[64];

	cr.maxBufferedMessages = 100000;
	snprintf(cid, sizeof(cid), "bench-%d", (int)getpid());
	if (MQTTAsync_createWithOptions(&b->c, url, cid, MQTTCLIENT_PERSISTENCE_NONE, NULL, &cr) != 0)
		return 1;
	MQTTAsync_setCallbacks(b->c, b, NULL, on_msg, NULL);
	MQTTAsync_setConnected(b->c, b, on_connected);
	co.cleansession = 1;
	co.keepAliveInterval = 30;
	co.maxInflight = 65535;
	if (MQTTAsync_connect(b->c, &co) != 0)
		return 1;
	for (int i = 0; i < 500 && !atomic_load(&b->connected); i++)
		usleep(10000);
	if (!atomic_load(&b->connected)) {
		fprintf(stderr, "bench: cannot connect to %s\n", url);
		return 1;
	}
	usleep(200000); /* the ack subscription */
	util_tcp_nodelay_to(url); /* as the gateway and stations do */
	return 0;
}

/* Each station's sending order: seq 1.. in order, but --disorder of them
 * held back 1-20 places (a fixed seed: the same plan every run). Counts
 * the batches that then arrive after a later one. */
static int bench_order(struct bench *b)
{
	unsigned long long x = 0x9e3779b97f4a7c15ull;
	long n = b->total / b->stations + 1;

	if (!(b->order = calloc((size_t)b->stations * (size_t)b->max_seq, sizeof(long))))
		return -1;
	for (int st = 0; st < b->stations; st++) {
		long *o = b->order + (long)st * b->max_seq, hi = 0;

		for (long k = 0; k < n; k++)
			o[k] = k + 1;
		for (long k = 0; k < n && b->disorder > 0; k++) {
			long j, v;

			x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
			if ((double)((x * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0 >= b->disorder)
				continue;
			x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
			j = k + 1 + (long)((x * 0x2545f4914f6cdd1dull) % 20);
			if (j >= n)
				j = n - 1;
			v = o[k];
			memmove(&o[k], &o[k + 1], (size_t)(j - k) * sizeof(long));
			o[j] = v;
		}
		for (long k = 0; k < n; k++) {
			if (o[k] < hi)
				b->n_out++;
			else
				hi = o[k];
		}
	}
	return 0;
}

/* Publishes every batch, at --rate and within --window, from t0. Returns
 * 0 or 1 (a batch that cannot be encoded). */
static int bench_publish(struct bench *b, int64_t t0)
{
	static char buf[AGRI_BATCH_MAX_BYTES];
	char topic[AGRI_TOPIC_MAX];

	for (long i = 0; i < b->total; i++) {
		int st = (int)(i % b->stations);
		long seq = b->order[(long)st * b->max_seq + i / b->stations];
		MQTTAsync_message m = MQTTAsync_message_initializer;
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		int n;

		if (b->rate > 0) {
			int64_t due = t0 + (int64_t)((double)i * 1e6 / b->rate);

			while (now_us() < due)
				usleep(50);
		}
		while (atomic_load(&b->inflight) >= b->window)
			usleep(20);
		n = make_batch(buf, sizeof(buf), st, seq, b->per, now_us() / 1000);
		if (n < 0)
			return 1;
		snprintf(topic, sizeof(topic), "agri/v1/B%04d/telemetry", st);
		m.payload = buf;
		m.payloadlen = n;
		m.qos = 1;
		ro.onSuccess = on_sent;
		ro.onFailure = on_send_fail;
		ro.context = b;
		pthread_mutex_lock(&b->mu);
		b->pub_us[(long)st * b->max_seq + seq] = now_us();
		pthread_mutex_unlock(&b->mu);
		atomic_fetch_add(&b->inflight, 1);
		if (MQTTAsync_sendMessage(b->c, topic, &m, &ro) != 0) {
			atomic_fetch_sub(&b->inflight, 1);
			usleep(1000);
			i--;
		}
	}
	return 0;
}

/* The one line of results. */
static void bench_report(struct bench *b, long acked, int64_t t0, int64_t t_pub_end,
			 int64_t t_ack_end)
{
	qsort(b->lat_us, (size_t)acked, sizeof(int64_t), cmp64);
	printf("batches=%ld readings=%ld acked=%ld pub_start_us=%lld pub_end_us=%lld ack_end_us=%lld"
	       " pub_rate=%.0f e2e_rate=%.0f readings_per_s=%.0f ack_p50_ms=%.2f ack_p99_ms=%.2f ack_max_ms=%.2f"
	       " out_of_order=%ld\n",
	       b->total, b->total * b->per, acked, (long long)t0, (long long)t_pub_end,
	       (long long)t_ack_end,
	       (double)b->total / ((double)(t_pub_end - t0) / 1e6),
	       (double)acked / ((double)(t_ack_end - t0) / 1e6),
	       (double)acked * b->per / ((double)(t_ack_end - t0) / 1e6),
	       acked ? (double)b->lat_us[acked / 2] / 1000.0 : -1,
	       acked ? (double)b->lat_us[acked * 99 / 100] / 1000.0 : -1,
	       acked ? (double)b->lat_us[acked - 1] / 1000.0 : -1, b->n_out);
}

int main(int argc, char **argv)
{
	struct bench b = {.stations = 50, .per = 6, .window = 1000, .total = 10000};
	struct bench_opts o = {.url = "tcp://127.0.0.1:1883", .ack_timeout_s = 60};
	int64_t t0, t_pub_end, t_ack_end, deadline;
	long acked;
	int rc;

	ts_base_ms = (now_us() / 60000000) * 60000 - 20 * 86400000LL;
	rc = bench_parse_args(argc, argv, &b, &o);
	if (rc >= 0)
		return rc;
	b.max_seq = b.total / b.stations + 2;
	b.pub_us = calloc((size_t)b.stations * (size_t)b.max_seq, sizeof(int64_t));
	b.lat_us = calloc((size_t)b.total + 1, sizeof(int64_t));
	pthread_mutex_init(&b.mu, NULL);
	if (!b.pub_us || !b.lat_us || bench_order(&b) < 0)
		return 1;
	if (bench_connect(&b, o.url))
		return 1;
	t0 = now_us();
	if (bench_publish(&b, t0))
		return 1;
	t_pub_end = now_us();
	deadline = t_pub_end + (int64_t)(o.ack_timeout_s * 1e6);
	while ((acked = atomic_load(&b.acked_batches)) < b.total && now_us() < deadline)
		usleep(1000);
	t_ack_end = now_us();
	acked = atomic_load(&b.acked_batches);
	bench_report(&b, acked, t0, t_pub_end, t_ack_end);
	/* Every publication the broker's PUBACK took before leaving: with
	 * --ack-timeout 0 (a backlog queued for a session that is away,
	 * scripts/bench-bridge) the last window would otherwise be lost. */
	deadline = now_us() + 30000000;
	while (atomic_load(&b.inflight) > 0 && now_us() < deadline)
		usleep(1000);
	MQTTAsync_disconnect(b.c, NULL);
	usleep(100000);
	MQTTAsync_destroy(&b.c);
	return acked == b.total ? 0 : 1;
}
