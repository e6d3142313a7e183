/*
 * Property test of event-time alerting (docs/alerts.md, "Reading order";
 * issue 21): for random series with crossings of every reading-driven rule
 * kind, delivered shuffled, split into batches, in random order with
 * duplicates, late or fresh, the alert episodes (rule, key, start, end)
 * equal those of the same series delivered in order. In process: the
 * engine reads its "store" (an in-memory one, deduplicating like the
 * gateway's) through its source.
 *
 * SEEDS=N (default 1000) seeds; SEED=S runs seed S alone and prints its
 * transitions (scripts/prop-alerts runs 100,000). Also: late news never
 * notifies more than once per episode when everything arrives late, a
 * backlog sent again notifies nothing, a station whose backlog fills
 * its gap closes its no_data alert with the gap's true extent, and a
 * power cut that loses a key's deferred evidence still gives the episodes
 * of the stored readings in reading order.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "alerts/alert.h"
#include "alerts/text.h"
#include "test.h"

#define S 1000LL
#define MIN (60 * S)
#define H (3600 * S)
#define DAY (24 * H)
#define T0 (20454 * DAY) /* 2026-01-01T00:00:00Z */
#define STATION "DT-P01"
#define NONE_TS INT64_MIN

/* ---- random ------------------------------------------------------------------ */

static uint64_t rng_s;

static uint64_t rnd(void)
{
	rng_s ^= rng_s >> 12;
	rng_s ^= rng_s << 25;
	rng_s ^= rng_s >> 27;
	return rng_s * 0x2545f4914f6cdd1dull;
}

static int rint_(int n)
{
	return (int)(rnd() % (uint64_t)n);
}

static double runi(void)
{
	return (double)(rnd() >> 11) / 9007199254740992.0;
}

/* ---- the store: readings by (sensor, metric), deduplicated --------------------- */

#define SERIES_MAX 8
#define ROWS_MAX 2048

struct series {
	char station[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1], metric[AGRI_ID_MAX + 1];
	struct alert_row rows[ROWS_MAX];
	int n;
};

struct store {
	struct series s[SERIES_MAX];
	int n;
	uint64_t reads;
};

static struct series *series_of(struct store *st, const char *station, const char *sensor,
				const char *metric, bool add)
{
	for (int i = 0; i < st->n; i++)
		if (!strcmp(st->s[i].station, station) && !strcmp(st->s[i].sensor, sensor) &&
		    !strcmp(st->s[i].metric, metric))
			return &st->s[i];
	if (!add || st->n == SERIES_MAX)
		return NULL;
	snprintf(st->s[st->n].station, sizeof(st->s[0].station), "%s", station);
	snprintf(st->s[st->n].sensor, sizeof(st->s[0].sensor), "%s", sensor);
	snprintf(st->s[st->n].metric, sizeof(st->s[0].metric), "%s", metric);
	st->s[st->n].n = 0;
	return &st->s[st->n++];
}

/* 1 when new, 0 when already stored (same series and ts). */
static int store_put(struct store *st, const char *station, const struct agri_reading *r)
{
	struct series *se = series_of(st, station, r->sensor, r->metric, true);
	int i;

	if (!se || se->n == ROWS_MAX)
		return -ENOSPC;
	for (i = se->n; i > 0 && se->rows[i - 1].ts >= r->ts_ms; i--)
		if (se->rows[i - 1].ts == r->ts_ms)
			return 0;
	memmove(&se->rows[i + 1], &se->rows[i], (size_t)(se->n - i) * sizeof(se->rows[0]));
	se->rows[i] = (struct alert_row){.ts = r->ts_ms, .value = r->value, .has_value = r->has_value,
					 .q = r->q};
	snprintf(se->rows[i].why, sizeof(se->rows[i].why), "%s", r->why);
	se->n++;
	return 1;
}

static int src_metrics(void *ctx, const char *station, const char *sensor,
		       char (*out)[AGRI_ID_MAX + 1], size_t max)
{
	struct store *st = ctx;
	size_t n = 0;

	for (int i = 0; i < st->n && n < max; i++)
		if (!strcmp(st->s[i].station, station) && !strcmp(st->s[i].sensor, sensor))
			snprintf(out[n++], AGRI_ID_MAX + 1, "%s", st->s[i].metric);
	return (int)n;
}

static int src_rows(void *ctx, const char *station, const char *sensor, const char *metric,
		    int64_t after, struct alert_row *out, size_t max)
{
	struct store *st = ctx;
	struct series *se = series_of(st, station, sensor, metric, false);
	int lo = 0, hi, n = 0;

	if (!se)
		return 0;
	hi = se->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (se->rows[mid].ts <= after)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (int i = lo; i < se->n && (size_t)n < max; i++)
		out[n++] = se->rows[i];
	st->reads += (uint64_t)n;
	return n;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int src_holes(void *ctx, const char *station, int64_t from, int64_t to, int64_t gap,
		     int64_t (*out)[2], size_t max)
{
	struct store *st = ctx;
	static int64_t ts[SERIES_MAX * ROWS_MAX + 1];
	size_t n = 0, k = 0;

	ts[n++] = from;
	for (int i = 0; i < st->n; i++)
		for (int j = 0; j < st->s[i].n && !strcmp(st->s[i].station, station); j++)
			if (st->s[i].rows[j].ts > from && st->s[i].rows[j].ts <= to)
				ts[n++] = st->s[i].rows[j].ts;
	qsort(ts, n, sizeof(ts[0]), cmp_i64);
	for (size_t i = 1; i < n && k < max; i++)
		if (ts[i] - ts[i - 1] > gap) {
			out[k][0] = ts[i - 1];
			out[k][1] = ts[i];
			k++;
		}
	return (int)k;
}

/* ---- what the gateway would store: episodes per alert ---------------------- */

#define EPS_MAX 4096

struct episode {
	char id[160];
	int64_t start, end; /* end ALERT_TS_NONE: open */
	int peak;           /* the worst severity it reached (as alert_episodes) */
};

static int sev_rank(const char *name)
{
	enum alert_severity s = ALERT_SEV_INFO;

	(void)alert_severity_parse(name, &s);
	return (int)s;
}

struct run {
	struct episode ep[EPS_MAX];
	int n_ep;
	int notified, news, errors, transitions;
	bool verbose;
	char why[256];
};

static struct episode *ep_find(struct run *r, const char *id, int64_t start, bool open)
{
	for (int i = r->n_ep; i-- > 0;)
		if (!strcmp(r->ep[i].id, id) &&
		    (open ? r->ep[i].end == ALERT_TS_NONE : r->ep[i].start == start))
			return &r->ep[i];
	return NULL;
}

static void bad(struct run *r, const char *what, const struct alert_transition *t)
{
	r->errors++;
	snprintf(r->why, sizeof(r->why), "%s: %s %s at %lld", what, alert_event_name(t->event),
		 t->alert.id, (long long)((t->event_ms - T0) / MIN));
}

static void record(void *ctx, const struct alert_transition *t)
{
	struct run *r = ctx;
	struct episode *e;

	r->transitions++;
	if (r->verbose)
		printf("  %-10s %-28s ev=%+7lld end=%+7lld old=%+lld/%+lld late=%d notify=%d%s %s\n",
		       alert_event_name(t->event), t->alert.id,
		       (long long)((t->event_ms - T0) / MIN),
		       t->end_ms == ALERT_TS_NONE ? -1LL : (long long)((t->end_ms - T0) / MIN),
		       t->old_start_ms == ALERT_TS_NONE ? -1LL : (long long)((t->old_start_ms - T0) / MIN),
		       t->old_end_ms == ALERT_TS_NONE ? -1LL : (long long)((t->old_end_ms - T0) / MIN),
		       t->late, t->notify, t->history ? " history" : "", t->message_en);
	if (t->notify)
		r->notified++;
	switch (t->event) {
	case ALERT_EV_RAISED:
		if (!t->history && ep_find(r, t->alert.id, 0, true))
			bad(r, "raised while open", t);
		if (r->n_ep < EPS_MAX) {
			e = &r->ep[r->n_ep++];
			snprintf(e->id, sizeof(e->id), "%s", t->alert.id);
			e->start = t->event_ms;
			e->end = ALERT_TS_NONE;
			e->peak = sev_rank(t->peak ? t->peak : t->alert.severity);
		}
		break;
	case ALERT_EV_SEVERITY:
		if ((e = ep_find(r, t->alert.id, t->alert.raised_at_ms, false)) ||
		    (e = ep_find(r, t->alert.id, 0, true)))
			e->peak = sev_rank(t->alert.severity) > e->peak ? sev_rank(t->alert.severity)
									: e->peak;
		break;
	case ALERT_EV_CLEARED:
		if (!(e = ep_find(r, t->alert.id, t->alert.raised_at_ms, false)) ||
		    e->end != ALERT_TS_NONE)
			bad(r, "cleared while none open", t);
		else
			e->end = t->event_ms;
		break;
	case ALERT_EV_REVISED:
		if (!(e = ep_find(r, t->alert.id, t->old_start_ms, false)) || e->end != t->old_end_ms)
			bad(r, "revised an unknown episode", t);
		else {
			e->start = t->event_ms;
			e->end = t->end_ms;
			if (t->peak)
				e->peak = sev_rank(t->peak);
		}
		break;
	case ALERT_EV_RETRACTED:
		if (!(e = ep_find(r, t->alert.id, t->event_ms, false)))
			bad(r, "retracted an unknown episode", t);
		else
			*e = r->ep[--r->n_ep];
		break;
	case ALERT_EV_PAST:
	case ALERT_EV_LATE:
		r->news++;
		break;
	default:
		break;
	}
}

static int cmp_ep(const void *a, const void *b)
{
	const struct episode *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	return c ? c : x->start < y->start ? -1 : x->start > y->start;
}

/* ---- series and deliveries -------------------------------------------------- */

#define READINGS_MAX 1200
#define BATCHES_MAX 600

static const char rules_json[] =
	"{\"utc_offset_min\": 420, \"replay_max_s\": 2592000, \"rules\": ["
	"{\"id\": \"thr\", \"metric\": \"salinity\", \"above\": 4.0, \"hysteresis\": 0.3,"
	" \"for_s\": 600},"
	"{\"id\": \"or\", \"metric\": \"water_level\", \"above\": 2.0, \"hysteresis\": 0.2,"
	" \"or\": [{\"metric\": \"ph\", \"above\": 8.5, \"hysteresis\": 0.2}]},"
	"{\"id\": \"lad\", \"kind\": \"ladder\", \"metric\": \"salinity\", \"hysteresis\": 0.2,"
	" \"levels\": [{\"above\": 1, \"severity\": \"info\"}, {\"above\": 2, \"severity\": \"warning\"},"
	" {\"above\": 4, \"severity\": \"critical\"}]},"
	"{\"id\": \"win\", \"kind\": \"window\", \"metric\": \"salinity\", \"window_s\": 3600,"
	" \"agg\": \"mean\", \"above\": 3.0, \"hysteresis\": 0.3, \"max_points\": 8},"
	"{\"id\": \"wmax\", \"kind\": \"window\", \"metric\": \"ph\", \"window_s\": 7200,"
	" \"agg\": \"max\", \"below\": 7.2, \"hysteresis\": 0.1},"
	"{\"id\": \"rate\", \"kind\": \"rate\", \"metric\": \"salinity\", \"window_s\": 3600,"
	" \"above\": 1.0, \"hysteresis\": 0.2},"
	"{\"id\": \"peak\", \"kind\": \"peak\", \"metric\": \"insect_count\", \"k\": 3, \"nights\": 5,"
	" \"min_nights\": 3, \"floor\": 100},"
	"{\"id\": \"rise\", \"kind\": \"rising\", \"metric\": \"insect_count\", \"floor\": 60},"
	"{\"id\": \"qual\", \"kind\": \"quality\", \"n\": 3, \"sensors\": [\"s1\"]},"
	"{\"id\": \"sens\", \"kind\": \"sensor\", \"n\": 3}"
	"]}";

struct batch {
	int first, n; /* readings[first .. first+n) */
};

static struct agri_reading readings[READINGS_MAX];
static int n_readings;
static struct batch batches[BATCHES_MAX];
static int n_batches;

static void add(int64_t ts, const char *sensor, const char *metric, double v,
		enum agri_quality q, const char *why)
{
	struct agri_reading *r = &readings[n_readings++];

	memset(r, 0, sizeof(*r));
	r->ts_ms = ts;
	snprintf(r->sensor, sizeof(r->sensor), "%s", sensor);
	snprintf(r->metric, sizeof(r->metric), "%s", metric);
	r->value = v;
	r->has_value = q != AGRI_Q_ERROR;
	r->q = q;
	snprintf(r->why, sizeof(r->why), "%s", why);
}

static int cmp_reading(const void *a, const void *b)
{
	const struct agri_reading *x = a, *y = b;

	return x->ts_ms < y->ts_ms ? -1 : x->ts_ms > y->ts_ms;
}

/* A series with crossings of every rule: a water sonde (salinity, ph,
 * water_level) every 2-10 minutes with gaps, bad and suspect readings,
 * and a light trap counting hourly through nights with a brood. Every
 * reading has its own ts. */
static void generate(void)
{
	int64_t t = T0 + 18 * H;
	double sal = 0.5 + runi() * 3, ph = 7.5, wl = 1.5;
	int n_water = 150 + rint_(200), nights = 9 + rint_(5), brood = 3 + rint_(nights - 4);

	n_readings = 0;
	for (int i = 0; i < n_water; i++) {
		enum agri_quality q = AGRI_Q_OK;
		const char *why = "";
		int u = rint_(100);

		t += (2 + rint_(9)) * MIN + rint_(1000);
		if (rint_(40) == 0)
			t += (20 + rint_(200)) * MIN; /* a gap */
		sal += (runi() - 0.5) * 0.9;
		if (rint_(15) == 0)
			sal += (runi() - 0.4) * 4;
		sal = sal < 0 ? 0.1 : sal > 9 ? 9 : sal;
		ph += (runi() - 0.5) * 0.4;
		ph = ph < 6.5 ? 6.6 : ph > 9.5 ? 9.4 : ph;
		wl += (runi() - 0.5) * 0.3;
		if (u < 4) {
			q = AGRI_Q_ERROR;
		} else if (u < 12) {
			q = AGRI_Q_SUSPECT;
			why = u < 9 ? "dry" : "";
		} else if (u < 13) {
			q = AGRI_Q_MAINT;
		}
		switch (rint_(3)) {
		case 0: add(t, "s1", "salinity", sal, q, why); break;
		case 1: add(t, "s1", "ph", ph, q, why); break;
		default: add(t, "s1", "water_level", wl, q, why); break;
		}
	}
	/* the trap: every hour from 18:00 to 06:00 local, nights from the start */
	for (int n = 0; n < nights; n++) {
		int64_t night = T0 + n * DAY + 11 * H; /* 18:00 local */
		double mean = 3 + runi() * 2;

		if (n >= brood && n < brood + 4)
			mean *= n == brood + 1 ? 40 + rint_(30) : 8 + rint_(10);
		if (n == brood - 2 || n == brood - 1)
			mean *= 1.6 + n - brood + 2;
		for (int h = 0; h <= 12; h += 1 + rint_(3)) {
			double v = floor(mean * (0.5 + runi()));

			add(night + h * H + rint_(60) * S + 7, "trap1-bph", "insect_count", v, AGRI_Q_OK, "");
		}
	}
	qsort(readings, (size_t)n_readings, sizeof(readings[0]), cmp_reading);
	for (int i = 1; i < n_readings; i++)
		if (readings[i].ts_ms <= readings[i - 1].ts_ms)
			readings[i].ts_ms = readings[i - 1].ts_ms + 1;
	n_batches = 0;
	for (int i = 0; i < n_readings && n_batches < BATCHES_MAX;) {
		int n = 1 + rint_(6);

		if (i + n > n_readings)
			n = n_readings - i;
		batches[n_batches++] = (struct batch){.first = i, .n = n};
		i += n;
	}
}

static int64_t batch_end(int b)
{
	return readings[batches[b].first + batches[b].n - 1].ts_ms;
}

struct delivery {
	int batch;
	int64_t now;    /* gateway clock */
	bool settle;    /* a settle tick after it */
};

/* ---- one run ----------------------------------------------------------------- */

struct engine_run {
	struct rules *rules;
	struct alert_engine *eng;
	struct store store;
	struct alert_source src;
	int64_t mono;
};

static void er_init(struct engine_run *er, struct rules *rules)
{
	memset(&er->store, 0, sizeof(er->store));
	er->rules = rules;
	er->eng = alert_engine_new(rules);
	er->src = (struct alert_source){.ctx = &er->store, .metrics = src_metrics,
					.rows = src_rows, .holes = src_holes};
	alert_engine_set_source(er->eng, &er->src);
	er->mono = 1000000;
}

static void deliver(struct engine_run *er, struct run *r, int b, int64_t now)
{
	struct agri_telemetry t = {.readings = &readings[batches[b].first], .n = (size_t)batches[b].n};
	bool fresh[8];

	snprintf(t.station, sizeof(t.station), STATION);
	for (int i = 0; i < batches[b].n; i++)
		fresh[i] = store_put(&er->store, STATION, &readings[batches[b].first + i]) == 1;
	er->mono += 50;
	alert_engine_set_mono(er->eng, er->mono);
	alert_engine_begin(er->eng);
	if (alert_engine_batch(er->eng, &t, fresh, now, record, r) < 0 ||
	    alert_engine_flush(er->eng, now, record, r) < 0)
		r->errors++;
	alert_engine_commit(er->eng);
}

static void settle(struct engine_run *er, struct run *r, int64_t now)
{
	er->mono += 11 * S + rint_(5) * S;
	alert_engine_set_mono(er->eng, er->mono);
	alert_engine_begin(er->eng);
	if (alert_engine_tick(er->eng, now, record, r) < 0)
		r->errors++;
	alert_engine_commit(er->eng);
}

static struct delivery plan[2 * BATCHES_MAX];

/* Delivery orders: 0 a backlog all late, shuffled, with duplicates, in
 * one go; 1 a station's drain (in order live, an outage, then fresh
 * batches interleaved with the backlog oldest first); 2 each batch
 * arriving 0-3 h after its readings (fresh and late stragglers); 3 all
 * late, newest first; 4 as 0 in bursts (the station settles between
 * them). Returns the number of deliveries. */
static int make_plan(int mode, int64_t *end_now)
{
	int n = 0;
	int64_t end = batch_end(n_batches - 1);

	switch (mode) {
	case 0:
	case 4: {
		int order[BATCHES_MAX];

		for (int i = 0; i < n_batches; i++)
			order[i] = i;
		for (int i = n_batches - 1; i > 0; i--) {
			int j = rint_(i + 1), x = order[i];

			order[i] = order[j];
			order[j] = x;
		}
		for (int i = 0; i < n_batches; i++) {
			plan[n++] = (struct delivery){order[i], end + H + i * S,
						      mode == 4 && rint_(12) == 0};
			if (rint_(10) == 0) /* a duplicate: sent again */
				plan[n++] = (struct delivery){order[rint_(i + 1)], end + H + i * S,
							      false};
		}
		break;
	}
	case 1: {
		int p = n_batches / 4 + rint_(n_batches / 2), q = p + 1 + rint_(n_batches - p - 1);
		int b = p;

		for (int i = 0; i < p; i++)
			plan[n++] = (struct delivery){i, batch_end(i) + 30 * S, false};
		/* offline for [p, q): then fresh from q on, each with one backlog batch */
		for (int f = q; f < n_batches || b < q; f++) {
			int64_t now = batch_end(f < n_batches ? f : n_batches - 1) + 30 * S;

			if (f < n_batches)
				plan[n++] = (struct delivery){f, now, false};
			for (int k = 0; k < 1 + (f >= n_batches ? 3 : rint_(2)) && b < q; k++)
				plan[n++] = (struct delivery){b++, now, rint_(30) == 0};
		}
		for (int i = 0; i < 5 && n_batches; i++) /* the backlog sent again */
			plan[n++] = (struct delivery){p + rint_(q - p), end + 2 * H, false};
		break;
	}
	case 2: {
		int64_t at[BATCHES_MAX];
		int order[BATCHES_MAX];

		for (int i = 0; i < n_batches; i++) {
			at[i] = batch_end(i) + (rint_(3) ? rint_(5) * MIN : rint_(180) * MIN);
			order[i] = i;
		}
		for (int i = 1; i < n_batches; i++) /* by arrival */
			for (int j = i; j > 0 && at[order[j]] < at[order[j - 1]]; j--) {
				int x = order[j];

				order[j] = order[j - 1];
				order[j - 1] = x;
			}
		for (int i = 0; i < n_batches; i++)
			plan[n++] = (struct delivery){order[i], at[order[i]], rint_(8) == 0};
		break;
	}
	default:
		for (int i = n_batches; i-- > 0;)
			plan[n++] = (struct delivery){i, end + H + (n_batches - i) * S, false};
		break;
	}
	*end_now = end + 6 * H;
	return n;
}

static int episodes_of(struct run *r)
{
	qsort(r->ep, (size_t)r->n_ep, sizeof(r->ep[0]), cmp_ep);
	return r->n_ep;
}

static struct run ref, got;
static struct engine_run er_ref, er_got;

/* One seed; returns true when it holds. */
static bool one_seed(struct rules *rules, uint64_t seed, bool verbose)
{
	int64_t end_now;
	int mode, n;
	bool ok = true;

	rng_s = seed * 0x9e3779b97f4a7c15ull + 1;
	generate();
	mode = (int)(seed % 5);
	memset(&ref, 0, sizeof(ref));
	memset(&got, 0, sizeof(got));
	got.verbose = ref.verbose = verbose;
	er_init(&er_ref, rules);
	er_init(&er_got, rules);
	if (verbose)
		printf("seed %llu mode %d: %d readings in %d batches\nin order:\n",
		       (unsigned long long)seed, mode, n_readings, n_batches);
	for (int b = 0; b < n_batches; b++)
		deliver(&er_ref, &ref, b, batch_end(b) + 30 * S);
	settle(&er_ref, &ref, batch_end(n_batches - 1) + H);
	n = make_plan(mode, &end_now);
	if (verbose)
		printf("delivered:\n");
	for (int i = 0; i < n; i++) {
		if (verbose)
			printf(" batch %d (%+lld .. %+lld) at %+lld\n", plan[i].batch,
			       (long long)((readings[batches[plan[i].batch].first].ts_ms - T0) / MIN),
			       (long long)((batch_end(plan[i].batch) - T0) / MIN),
			       (long long)((plan[i].now - T0) / MIN));
		deliver(&er_got, &got, plan[i].batch, plan[i].now);
		if (plan[i].settle)
			settle(&er_got, &got, plan[i].now);
	}
	settle(&er_got, &got, end_now);
	settle(&er_got, &got, end_now + MIN);
	/* The whole backlog sent again (a station that lost its acks): nothing. */
	{
		int before = got.transitions;

		for (int b = 0; b < n_batches; b++)
			deliver(&er_got, &got, b, end_now + 2 * MIN);
		settle(&er_got, &got, end_now + 3 * MIN);
		if (got.transitions != before) {
			fprintf(stderr, "seed %llu: the backlog sent again made %d transitions\n",
				(unsigned long long)seed, got.transitions - before);
			ok = false;
		}
	}
	episodes_of(&ref);
	episodes_of(&got);
	if (ref.errors || got.errors) {
		fprintf(stderr, "seed %llu: inconsistent transitions: %s%s\n", (unsigned long long)seed,
			ref.why, got.why);
		ok = false;
	}
	if (ref.n_ep != got.n_ep) {
		ok = false;
	} else {
		for (int i = 0; i < ref.n_ep && ok; i++)
			ok = !strcmp(ref.ep[i].id, got.ep[i].id) && ref.ep[i].start == got.ep[i].start &&
			     ref.ep[i].end == got.ep[i].end && ref.ep[i].peak == got.ep[i].peak;
	}
	if (!ok || verbose) {
		fprintf(stderr, "seed %llu mode %d: %d episodes in order, %d delivered%s\n",
			(unsigned long long)seed, mode, ref.n_ep, got.n_ep, ok ? "" : ": DIFFER");
		for (int i = 0, j = 0; !ok && (i < ref.n_ep || j < got.n_ep);) {
			int c = i == ref.n_ep ? 1 : j == got.n_ep ? -1 : cmp_ep(&ref.ep[i], &got.ep[j]);
			const struct episode *e = c <= 0 ? &ref.ep[i] : &got.ep[j];
			bool same = c == 0 && ref.ep[i].end == got.ep[j].end &&
				    ref.ep[i].peak == got.ep[j].peak;

			fprintf(stderr, "  %s %-28s %+7lld .. %+7lld peak %d\n",
				same ? "  " : c < 0 ? "- " : c > 0 ? "+ " : "~ ", e->id,
				(long long)((e->start - T0) / MIN),
				e->end == ALERT_TS_NONE ? -1LL : (long long)((e->end - T0) / MIN), e->peak);
			if (c == 0 && !same)
				fprintf(stderr, "  + %-28s %+7lld .. %+7lld peak %d\n", got.ep[j].id,
					(long long)((got.ep[j].start - T0) / MIN),
					got.ep[j].end == ALERT_TS_NONE ? -1LL
						: (long long)((got.ep[j].end - T0) / MIN), got.ep[j].peak);
			i += c <= 0;
			j += c >= 0;
		}
	}
	/* All late (backlogs): at most one notification per episode. */
	if (ok && (mode == 0 || mode == 3) && got.notified > got.n_ep) {
		fprintf(stderr, "seed %llu mode %d: %d notifications for %d episodes\n",
			(unsigned long long)seed, mode, got.notified, got.n_ep);
		ok = false;
	}
	alert_engine_free(er_ref.eng);
	alert_engine_free(er_got.eng);
	return ok;
}

static struct rules *load_rules(void)
{
	struct agri_err err;
	struct rules *r = rules_parse(rules_json, sizeof(rules_json) - 1, NULL, 0, &err);

	if (!r)
		fprintf(stderr, "rules: %s: %s\n", err.path, err.msg);
	return r;
}

static void test_property(void)
{
	struct rules *rules = load_rules();
	const char *e = getenv("SEEDS"), *one = getenv("SEED");
	uint64_t seeds = e ? strtoull(e, NULL, 10) : 1000, failed = 0, eps = 0, kinds = 0;
	bool seen[16] = {false};
	clock_t c0 = clock();

	CHECK(rules != NULL);
	if (!rules)
		return;
	if (one) {
		CHECK(one_seed(rules, strtoull(one, NULL, 10), true));
		rules_free(rules);
		return;
	}
	for (uint64_t s = 1; s <= seeds; s++) {
		bool ok = one_seed(rules, s, false);

		if (!ok && ++failed > 5)
			break;
		eps += (uint64_t)ref.n_ep;
		for (int i = 0; i < ref.n_ep; i++)
			for (size_t k = 0; k < rules->n; k++)
				if (!strncmp(ref.ep[i].id, rules->v[k].id, strlen(rules->v[k].id)) &&
				    ref.ep[i].id[strlen(rules->v[k].id)] == '/')
					seen[k] = true;
	}
	for (size_t k = 0; k < rules->n && k < 16; k++)
		kinds += seen[k];
	printf("test_gateway_alert_order: %llu seeds, %llu episodes compared, %llu of %zu rules"
	       " with episodes, %.1f s\n", (unsigned long long)seeds, (unsigned long long)eps,
	       (unsigned long long)kinds, rules->n, (double)(clock() - c0) / CLOCKS_PER_SEC);
	CHECK_INT(failed, 0);
	/* every rule of the file (not the built-ins) raised somewhere */
	for (size_t k = 0; k < rules->n && k < 16; k++)
		if (!rule_kind_is_event(rules->v[k].kind) && strcmp(rules->v[k].id, "sensor-check"))
			CHECK(seen[k]);
	rules_free(rules);
}

/* ---- scenarios ---------------------------------------------------------------- */

#define L7 (7 * H) /* local time UTC+7 */

static struct alert_transition seen[256];
static int n_seen;

static void keep(void *ctx, const struct alert_transition *t)
{
	(void)ctx;
	if (n_seen < 256)
		seen[n_seen] = *t;
	n_seen++;
}

static struct agri_reading rd(int64_t ts, const char *sensor, const char *metric, double v)
{
	struct agri_reading r = {.ts_ms = ts, .value = v, .has_value = true, .q = AGRI_Q_OK};

	snprintf(r.sensor, sizeof(r.sensor), "%s", sensor);
	snprintf(r.metric, sizeof(r.metric), "%s", metric);
	return r;
}

/* Stores and feeds one batch of n readings of station at now (a txn). */
static int feed_batch(struct engine_run *er, const char *station, struct agri_reading *r,
		      size_t n, int64_t now)
{
	struct agri_telemetry t = {.readings = r, .n = n};
	bool fresh[64];
	int rc;

	snprintf(t.station, sizeof(t.station), "%s", station);
	for (size_t i = 0; i < n; i++)
		fresh[i] = store_put(&er->store, station, &r[i]) == 1;
	er->mono += 20;
	alert_engine_set_mono(er->eng, er->mono);
	alert_engine_begin(er->eng);
	rc = alert_engine_batch(er->eng, &t, fresh, now, keep, NULL);
	if (rc >= 0) {
		int f = alert_engine_flush(er->eng, now, keep, NULL);

		rc = f < 0 ? f : rc + f;
	}
	alert_engine_commit(er->eng);
	return rc;
}

static int tick_at(struct engine_run *er, int64_t now, int64_t mono_step)
{
	int rc;

	er->mono += mono_step;
	alert_engine_set_mono(er->eng, er->mono);
	alert_engine_begin(er->eng);
	rc = alert_engine_tick(er->eng, now, keep, NULL);
	alert_engine_commit(er->eng);
	return rc;
}

static int count_ev(enum alert_event ev, bool notified)
{
	int n = 0;

	for (int i = 0; i < n_seen && i < 256; i++)
		n += seen[i].event == ev && (!notified || seen[i].notify);
	return n;
}

static int notified(void)
{
	int n = 0;

	for (int i = 0; i < n_seen && i < 256; i++)
		n += seen[i].notify;
	return n;
}

static struct rules *rules_json_(const char *json)
{
	char buf[4096];
	struct agri_err err;
	struct rules *r;
	size_t i;

	for (i = 0; json[i] && i < sizeof(buf) - 1; i++)
		buf[i] = json[i] == '\'' ? '"' : json[i];
	buf[i] = '\0';
	r = rules_parse(buf, i, NULL, 0, &err);
	if (!r)
		fprintf(stderr, "rules: %s: %s\n", err.path, err.msg);
	return r;
}

static void test_late_text(void)
{
	char b[512], c[512];
	int64_t day = T0 + 3 * DAY - L7; /* local midnight */

	alert_text_late(b, sizeof(b), "Salinity 4.6 g/L >= 4.0 g/L at DT-W01 (s1)", 1, true, false,
			day + 3 * H + 10 * MIN, day + 3 * H + 10 * MIN, INT64_MIN,
			day + 9 * H + 42 * MIN, true, 420, ALERT_LANG_EN);
	CHECK_STR(b, "Salinity 4.6 g/L >= 4.0 g/L at DT-W01 (s1), at 03:10 (still on),"
		     " reported at 09:42 after the station was offline");
	alert_text_late(b, sizeof(b), "Độ mặn 4,6‰ ≥ 4,0‰ tại DT-W01 (s1)", 1, false, false,
			day + 3 * H + 10 * MIN, day + 3 * H + 10 * MIN, day + 5 * H,
			day + 9 * H + 42 * MIN, true, 420, ALERT_LANG_VI);
	CHECK_STR(b, "Độ mặn 4,6‰ ≥ 4,0‰ tại DT-W01 (s1), từ 03:10 đến 05:00,"
		     " báo lúc 09:42 sau khi trạm mất kết nối");
	alert_text_late(b, sizeof(b), "X", 3, false, false, day - 2 * H, day + 4 * H, day + 5 * H,
			day + 9 * H, true, 420, ALERT_LANG_EN);
	CHECK_STR(b, "X, 3 times from 03/01 22:00 to 05:00, reported at 09:00 after the station"
		     " was offline");
	alert_text_late(b, sizeof(b), "Cleared: Y", 0, false, true, NONE_TS, NONE_TS, day + 5 * H,
			day + 9 * H, true, 420, ALERT_LANG_EN);
	CHECK_STR(b, "Cleared: Y, at 05:00, reported at 09:00 after the station was offline");
	/* an episode told before cleared, a new one on: both said, the time
	 * of the report once, at the end */
	alert_text_late(b, sizeof(b), "Z", 1, true, false, day + 6 * H, day + 6 * H, INT64_MIN,
			day + 9 * H, false, 420, ALERT_LANG_EN);
	CHECK_STR(b, "Z, at 06:00 (still on)");
	alert_text_late(c, sizeof(c), "Cleared: Y", 0, false, true, NONE_TS, NONE_TS, day + 5 * H,
			day + 9 * H, true, 420, ALERT_LANG_EN);
	alert_text_join(b, sizeof(b), c);
	CHECK_STR(b, "Z, at 06:00 (still on); Cleared: Y, at 05:00, reported at 09:00 after the"
		     " station was offline");
	snprintf(c, 14, "Z at 06:00"); /* cut, not in the middle of a character */
	alert_text_join(c, 14, "Đã hết");
	CHECK_STR(c, "Z at 06:00; ");
}

/*
 * The e2e scenario in process: a station live until 03:00, offline six
 * hours across a salinity crossing (03:10-05:00) and a light trap's peak
 * night, back at 09:42 draining fresh-first with its backlog interleaved
 * (docs/spool.md): each raised once, late, with its reading times; the
 * backlog sent again notifies nothing.
 */
static void test_offline_drain(void)
{
	struct rules *rules = rules_json_(
		"{'utc_offset_min': 420, 'rules': ["
		"{'id': 'sal', 'metric': 'salinity', 'above': 4.0, 'hysteresis': 0.3,"
		" 'notify': []},"
		"{'id': 'peak', 'kind': 'peak', 'metric': 'insect_count', 'k': 3, 'nights': 3,"
		" 'floor': 100}]}");
	struct engine_run er;
	int64_t day = T0 + 10 * DAY - L7, back = day + 9 * H + 42 * MIN, t;
	struct agri_reading r[64];
	size_t n;
	int past = -1, peak = -1;

	CHECK(rules != NULL);
	if (!rules)
		return;
	er_init(&er, rules);
	n_seen = 0;
	/* four quiet nights, then the peak night (day-1 18:00 .. day 06:00),
	 * live: a count every 2 h; salinity every 10 min until 03:00 */
	for (int d = -5; d <= -1; d++)
		for (int h = 18; h <= 30; h += 2) {
			t = day + d * DAY + h * H;
			r[0] = rd(t, "trap1-bph", "insect_count", d == -1 ? 400 : 10);
			feed_batch(&er, "DT-W01", r, 1, t + MIN);
		}
	for (t = day; t < day + 3 * H; t += 10 * MIN) {
		r[0] = rd(t, "s1", "salinity", 2.0);
		feed_batch(&er, "DT-W01", r, 1, t + MIN);
	}
	CHECK_INT(n_seen, 0);
	/* back at 09:42: the fresh batch first (salinity low, the trap's
	 * first count of the day completes night -1 ... nothing yet) */
	r[0] = rd(back - MIN, "s1", "salinity", 2.1);
	feed_batch(&er, "DT-W01", r, 1, back);
	/* the backlog 03:00-09:40, oldest first, one batch an hour, with
	 * fresh batches in between */
	for (int h = 3; h < 10; h++) {
		n = 0;
		for (t = day + h * H; t < day + (h + 1) * H && t < back - MIN; t += 10 * MIN) {
			double v = t >= day + 3 * H + 10 * MIN && t < day + 5 * H ? 4.6 : 2.0;

			r[n++] = rd(t, "s1", "salinity", v);
		}
		if (h == 6)
			r[n++] = rd(day + 6 * H + 1, "trap1-bph", "insect_count", 12);
		feed_batch(&er, "DT-W01", r, n, back + (h - 2) * S);
		r[0] = rd(back + (h - 2) * MIN, "s1", "salinity", 2.1);
		feed_batch(&er, "DT-W01", r, 1, back + (h - 2) * MIN + S);
	}
	/* ... then the night after the peak completes (it confirms it) */
	r[0] = rd(day + 24 * H + 7 * H, "trap1-bph", "insect_count", 15);
	r[1] = rd(day + 24 * H + 7 * H + 1, "trap1-bph", "insect_count", 0);
	CHECK_INT(count_ev(ALERT_EV_RAISED, true), 0); /* nothing told yet: all late */
	tick_at(&er, back + 10 * MIN, 11 * S); /* settled */
	for (int i = 0; i < n_seen && i < 256; i++) {
		if (seen[i].event == ALERT_EV_PAST && !strcmp(seen[i].alert.rule, "sal"))
			past = i;
	}
	CHECK_INT(notified(), 1);
	CHECK(past >= 0);
	if (past >= 0) {
		CHECK(seen[past].late);
		CHECK_INT(seen[past].event_ms, day + 3 * H + 10 * MIN);
		CHECK_INT(seen[past].end_ms, day + 5 * H);
		CHECK_STR(seen[past].message_en,
			  "Salinity 4.6 g/L >= 4.0 g/L at DT-W01 (s1), from 03:10 to 05:00,"
			  " reported at 09:52 after the station was offline");
		CHECK_STR(seen[past].message_vi,
			  "Độ mặn 4,6‰ ≥ 4,0‰ tại DT-W01 (s1), từ 03:10 đến 05:00,"
			  " báo lúc 09:52 sau khi trạm mất kết nối");
	}
	CHECK_INT(count_ev(ALERT_EV_RAISED, false), 1);
	CHECK_INT(count_ev(ALERT_EV_CLEARED, false), 1);
	/* the peak: confirmed when the lower night after it completes */
	n_seen = 0;
	feed_batch(&er, "DT-W01", r, 2, day + 24 * H + 7 * H + 2 * MIN);
	for (int i = 0; i < n_seen && i < 256; i++)
		if (seen[i].event == ALERT_EV_RAISED && !strcmp(seen[i].alert.rule, "peak"))
			peak = i;
	CHECK(peak >= 0);
	if (peak >= 0) {
		CHECK(!seen[peak].late); /* the confirming reading is fresh */
		CHECK_INT(seen[peak].night_day, (day - DAY + L7) / DAY);
	}
	/* the whole backlog sent again: duplicates, nothing */
	n_seen = 0;
	for (t = day + 3 * H; t < back - MIN; t += 10 * MIN) {
		r[0] = rd(t, "s1", "salinity", t >= day + 3 * H + 10 * MIN && t < day + 5 * H ? 4.6 : 2.0);
		feed_batch(&er, "DT-W01", r, 1, back + 2 * H);
	}
	tick_at(&er, back + 2 * H + MIN, 11 * S);
	CHECK_INT(n_seen, 0);
	alert_engine_free(er.eng);
	rules_free(rules);
}

/*
 * A station back with an announced backlog (its status: spool_depth > 1)
 * sends its fresh batch first: a window's mean over the last hour would
 * be that one reading (3.5 >= 3.0) and the gap's readings (2.0) are still
 * to come. The window waits for them: nothing is raised, nothing
 * retracted, nobody told. Without the announcement the fresh reading
 * raises at once and the backlog retracts it (two notifications, the
 * first wrong): what the wait is for.
 */
static int backlog_window_run(bool announce, int *retracted)
{
	struct rules *rules = rules_json_(
		"{'utc_offset_min': 420, 'rules': [{'id': 'win', 'kind': 'window',"
		" 'metric': 'salinity', 'window_s': 3600, 'agg': 'mean', 'above': 3.0,"
		" 'hysteresis': 0.3, 'notify': []}]}");
	struct engine_run er;
	int64_t day = T0 + 12 * DAY - L7, back = day + 9 * H + 42 * MIN, t;
	struct agri_reading r[64];
	int raised_at_once;
	size_t n;

	CHECK(rules != NULL);
	if (!rules)
		return -1;
	er_init(&er, rules);
	n_seen = 0;
	for (t = day; t < day + 3 * H; t += 10 * MIN) {
		r[0] = rd(t, "s1", "salinity", 2.0);
		feed_batch(&er, "DT-W01", r, 1, t + MIN);
	}
	if (announce)
		alert_engine_backlog(er.eng, "DT-W01", 24);
	r[0] = rd(back - MIN, "s1", "salinity", 3.5);
	feed_batch(&er, "DT-W01", r, 1, back);
	raised_at_once = count_ev(ALERT_EV_RAISED, false);
	for (int h = 3; h < 10; h++) {
		n = 0;
		for (t = day + h * H; t < day + (h + 1) * H && t < back - MIN; t += 10 * MIN)
			r[n++] = rd(t, "s1", "salinity", 2.0);
		feed_batch(&er, "DT-W01", r, n, back + (h - 2) * S);
	}
	if (announce)
		alert_engine_backlog(er.eng, "DT-W01", 1); /* drained */
	tick_at(&er, back + 10 * MIN, 11 * S);
	tick_at(&er, back + 12 * MIN, 61 * S);
	*retracted = count_ev(ALERT_EV_RETRACTED, false);
	CHECK_INT(count_ev(ALERT_EV_RAISED, false), raised_at_once);
	alert_engine_free(er.eng);
	rules_free(rules);
	return raised_at_once;
}

static void test_backlog_wait(void)
{
	int retracted = -1;

	CHECK_INT(backlog_window_run(true, &retracted), 0);
	CHECK_INT(retracted, 0);
	CHECK_INT(notified(), 0);
	CHECK_INT(backlog_window_run(false, &retracted), 1);
	CHECK_INT(retracted, 1);
}

/*
 * Late news that says two things: an alert told live (salinity on at
 * 02:00) whose episode ended in the backlog (03:30), and a new one there
 * (06:00, still on): one notification, the new episode first (what is
 * true now), then the clear, the report's time once.
 */
static void test_news_both(void)
{
	struct rules *rules = rules_json_(
		"{'utc_offset_min': 420, 'rules': [{'id': 'sal', 'metric': 'salinity',"
		" 'above': 4.0, 'hysteresis': 0.3, 'notify': []}]}");
	struct engine_run er;
	int64_t day = T0 + 14 * DAY - L7, back = day + 9 * H + 42 * MIN, t;
	struct agri_reading r[64];
	int news = -1;
	size_t n;

	CHECK(rules != NULL);
	if (!rules)
		return;
	er_init(&er, rules);
	n_seen = 0;
	for (t = day; t < day + 3 * H; t += 10 * MIN) {
		r[0] = rd(t, "s1", "salinity", t >= day + 2 * H ? 4.6 : 2.0);
		feed_batch(&er, "DT-W01", r, 1, t + MIN);
	}
	CHECK_INT(count_ev(ALERT_EV_RAISED, true), 1); /* live, at 02:00 */
	n_seen = 0;
	alert_engine_backlog(er.eng, "DT-W01", 24);
	r[0] = rd(back - MIN, "s1", "salinity", 4.8);
	feed_batch(&er, "DT-W01", r, 1, back);
	for (int h = 3; h < 10; h++) {
		n = 0;
		for (t = day + h * H; t < day + (h + 1) * H && t < back - MIN; t += 10 * MIN)
			r[n++] = rd(t, "s1", "salinity",
				    t >= day + 3 * H + 30 * MIN && t < day + 6 * H ? 2.0 : 4.7);
		feed_batch(&er, "DT-W01", r, n, back + (h - 2) * S);
	}
	tick_at(&er, back + 10 * MIN, 11 * S);
	for (int i = 0; i < n_seen && i < 256; i++)
		if (seen[i].notify)
			news = i;
	CHECK_INT(notified(), 1);
	CHECK(news >= 0);
	if (news >= 0) {
		CHECK_INT(seen[news].event, ALERT_EV_LATE);
		CHECK_STR(seen[news].message_en,
			  "Salinity 4.7 g/L >= 4.0 g/L at DT-W01 (s1), at 06:00 (still on);"
			  " Cleared: Salinity 2.0 g/L < 4.0 g/L at DT-W01 (s1), at 03:30,"
			  " reported at 09:52 after the station was offline");
		CHECK_STR(seen[news].message_vi,
			  "Độ mặn 4,7‰ ≥ 4,0‰ tại DT-W01 (s1), lúc 06:00 (vẫn còn);"
			  " Đã hết: Độ mặn 2,0‰ < 4,0‰ tại DT-W01 (s1), lúc 03:30,"
			  " báo lúc 09:52 sau khi trạm mất kết nối");
	}
	alert_engine_free(er.eng);
	rules_free(rules);
}

/*
 * A hostile station: 200,000 late readings newest first (every one out
 * of order). Its keys keep O(1) memory (a mark, not the readings), each
 * flush replays at most its budget, and another station's fresh reading
 * in the same transaction is evaluated at once.
 */
static void test_hostile_station(void)
{
	struct rules *rules = rules_json_(
		"{'rules': [{'id': 'sal', 'metric': 'salinity', 'above': 4.0, 'notify': []}]}");
	struct engine_run er;
	struct alert_engine_stats st;
	int64_t now = T0 + 30 * DAY;
	struct agri_reading r[64];
	int rc;

	CHECK(rules != NULL);
	if (!rules)
		return;
	er_init(&er, rules);
	n_seen = 0;
	for (int b = 0; b < 200000 / 50; b++) {
		for (int i = 0; i < 50; i++)
			r[i] = rd(now - 2 * H - ((int64_t)b * 50 + i) * S, "s1", "salinity", 1.0);
		if (b < 40) /* the store is bounded in this test */
			feed_batch(&er, "DT-X99", r, 50, now);
		else {
			struct agri_telemetry t = {.readings = r, .n = 50};
			bool fresh[50];

			snprintf(t.station, sizeof(t.station), "DT-X99");
			for (int i = 0; i < 50; i++)
				fresh[i] = true;
			alert_engine_begin(er.eng);
			alert_engine_batch(er.eng, &t, fresh, now, keep, NULL);
			alert_engine_commit(er.eng);
		}
	}
	alert_engine_stats(er.eng, &st);
	CHECK_INT(st.keys, 2);           /* its record and one key: no reading kept */
	CHECK(st.held + st.late_dropped >= 199999 && st.late_dropped > 0); /* past 48 h: dropped */
	CHECK(st.replayed_rows < 2000 + 200); /* the first flush's rows, not 200,000 */
	/* a fresh reading of another station raises at once */
	n_seen = 0;
	r[0] = rd(now, "s1", "salinity", 5.0);
	rc = feed_batch(&er, "DT-W01", r, 1, now + S);
	CHECK_INT(rc, 1);
	CHECK_INT(count_ev(ALERT_EV_RAISED, true), 1);
	alert_engine_free(er.eng);
	rules_free(rules);
}

/*
 * no_data by event time: a station silent for 2 h (raised by the tick),
 * back with a backlog (its status says spool_depth > 0) that fills the
 * gap but for 40 minutes: the alert closes once the backlog has settled,
 * saying what is really missing.
 */
static void test_nodata_extent(void)
{
	struct rules *rules = rules_json_(
		"{'utc_offset_min': 420, 'rules': [{'id': 'off', 'kind': 'no_data', 'after_s': 900,"
		" 'notify': []}]}");
	struct engine_run er;
	int64_t day = T0 + 5 * DAY - L7, t;
	struct agri_reading r[64];
	int cleared = -1;

	CHECK(rules != NULL);
	if (!rules)
		return;
	er_init(&er, rules);
	n_seen = 0;
	for (t = day; t <= day + H; t += 5 * MIN) {
		r[0] = rd(t, "s1", "salinity", 1.0);
		feed_batch(&er, "DT-W01", r, 1, t + S);
	}
	tick_at(&er, day + H + 16 * MIN, S);
	CHECK_INT(count_ev(ALERT_EV_RAISED, false), 1);
	/* back at 03:00 with a backlog */
	alert_engine_backlog(er.eng, "DT-W01", 24);
	r[0] = rd(day + 3 * H, "s1", "salinity", 1.0);
	n_seen = 0;
	feed_batch(&er, "DT-W01", r, 1, day + 3 * H + S);
	CHECK_INT(count_ev(ALERT_EV_CLEARED, false), 0); /* waits for the backlog */
	for (t = day + H + 5 * MIN; t < day + 3 * H; t += 5 * MIN) {
		if (t > day + H + 30 * MIN && t < day + H + 70 * MIN)
			continue; /* 01:35 .. 02:10 never measured */
		r[0] = rd(t, "s1", "salinity", 1.0);
		feed_batch(&er, "DT-W01", r, 1, day + 3 * H + 2 * S);
	}
	CHECK_INT(count_ev(ALERT_EV_CLEARED, false), 0);
	tick_at(&er, day + 3 * H + 20 * S, 11 * S);
	for (int i = 0; i < n_seen && i < 256; i++)
		if (seen[i].event == ALERT_EV_CLEARED)
			cleared = i;
	CHECK(cleared >= 0);
	if (cleared >= 0) {
		CHECK_STR(seen[cleared].message_en,
			  "Station DT-W01 is sending data again; data missing 01:30–02:10");
		CHECK_STR(seen[cleared].message_vi,
			  "Trạm DT-W01 đã gửi dữ liệu trở lại; thiếu số liệu 01:30–02:10");
		CHECK(seen[cleared].notify);
	}
	alert_engine_free(er.eng);
	rules_free(rules);
}

/* ---- restarts ----------------------------------------------------------------- */

#define BLOBS_MAX 16

struct blobs {
	char key[BLOBS_MAX][200];
	uint8_t *blob[BLOBS_MAX];
	size_t len[BLOBS_MAX];
	int n;
};

static int save_blob(void *ctx, const char *key, const void *blob, size_t len)
{
	struct blobs *b = ctx;

	if (b->n == BLOBS_MAX || !(b->blob[b->n] = malloc(len)))
		return -ENOMEM;
	snprintf(b->key[b->n], sizeof(b->key[0]), "%s", key);
	memcpy(b->blob[b->n], blob, len);
	b->len[b->n++] = len;
	return 0;
}

/* A restart as the gateway's wiring does it: every key exported, a new
 * engine importing them, reading the same store. */
static void restart(struct engine_run *er)
{
	struct blobs b = {.n = 0};

	CHECK(alert_engine_export(er->eng, false, save_blob, &b) > 0);
	alert_engine_free(er->eng);
	er->eng = alert_engine_new(er->rules);
	alert_engine_set_source(er->eng, &er->src);
	for (int i = 0; i < b.n; i++) {
		CHECK_INT(alert_engine_import(er->eng, b.key[i], b.blob[i], b.len[i]), 0);
		free(b.blob[i]);
	}
	alert_engine_start(er->eng, er->mono);
}

/*
 * An episode told live, a restart (the state exported and imported as
 * the wiring does), then a reading inside the episode that the station
 * resends only after the restart, older than what the key applied: the
 * replay matches the episode told, whether it starts from before the
 * first reading (mode 0) or from a checkpoint taken while the alert was
 * on (mode 1: readings over more than CK_EVERY_MS), and tells nothing.
 * A resent reading that really splits the episode (mode 2) revises the
 * one told and tells the second part once, as late news: what in-order
 * arrival would have stored, and the case tests/powercut meets.
 */
static void test_restart_replay(void)
{
	struct rules *rules = rules_json_(
		"{'rules': [{'id': 'sal', 'metric': 'salinity', 'above': 4.0, 'hysteresis': 0.3,"
		" 'notify': []}]}");
	int64_t day = T0 + 7 * DAY;

	CHECK(rules != NULL);
	if (!rules)
		return;
	for (int mode = 0; mode < 3; mode++) {
		/* every 10 min for 8 h (a checkpoint every 3 h): on from 02:00
		 * to 06:00; 04:05 missing until it is resent after the restart */
		int64_t step = 10 * MIN, gone = day + 4 * H + 5 * MIN, back = day + 8 * H + 2 * MIN;
		double gone_v = mode == 2 ? 3.5 : 4.1;
		struct engine_run er;
		struct agri_reading r[1];
		int revised = -1, raised = -1;

		er_init(&er, rules);
		n_seen = 0;
		for (int64_t t = day; t <= day + 8 * H; t += step) {
			double v = t >= day + 2 * H && t < day + 6 * H ? 4.5 : 3.0;

			if (mode == 0 && t > day + H)
				break; /* short: a replay from before the first reading */
			if (mode == 0)
				v = t >= day + 20 * MIN && t < day + 50 * MIN ? 4.5 : 3.0;
			r[0] = rd(t, "s1", "salinity", v);
			CHECK(feed_batch(&er, "DT-W01", r, 1, t + S) >= 0);
		}
		CHECK_INT(count_ev(ALERT_EV_RAISED, true), 1);
		CHECK_INT(count_ev(ALERT_EV_CLEARED, true), 1);
		restart(&er);
		n_seen = 0;
		if (mode == 0) {
			gone = day + 35 * MIN;
			back = day + H + 2 * MIN;
		}
		r[0] = rd(gone, "s1", "salinity", gone_v);
		CHECK(feed_batch(&er, "DT-W01", r, 1, back) >= 0);
		CHECK(tick_at(&er, back + 20 * S, 11 * S) >= 0);
		for (int i = 0; i < n_seen && i < 256; i++) {
			if (seen[i].event == ALERT_EV_REVISED)
				revised = i;
			if (seen[i].event == ALERT_EV_RAISED)
				raised = i;
		}
		if (mode < 2) {
			/* the same episode: nothing to tell */
			if (n_seen)
				printf("mode %d: %d transitions, the first %s\n", mode, n_seen,
				       alert_event_name(seen[0].event));
			CHECK_INT(n_seen, 0);
		} else {
			/* 02:00-04:05 and 04:10-06:00 */
			CHECK_INT(count_ev(ALERT_EV_RAISED, false), 1);
			CHECK_INT(count_ev(ALERT_EV_CLEARED, false), 1);
			CHECK_INT(count_ev(ALERT_EV_REVISED, false), 1);
			CHECK(revised >= 0 && raised >= 0);
			if (revised >= 0 && raised >= 0) {
				CHECK(seen[revised].old_start_ms == day + 2 * H &&
				      seen[revised].event_ms == day + 2 * H &&
				      seen[revised].end_ms == gone);
				CHECK(seen[raised].event_ms == gone + 5 * MIN && seen[raised].late);
			}
			/* one notification: the late news of the second part */
			CHECK_INT(notified(), 1);
		}
		alert_engine_free(er.eng);
	}
	rules_free(rules);
}

/*
 * The two-hub soak's case (docs/ha.md "Catch-up"): a key told live with a
 * hole in its readings, the gateway restarted meanwhile, and the hole
 * filled by the catch-up a day later (within replay_max_s, but after
 * more than CK_MAX checkpoints' worth of readings). The episode must
 * become what in-order arrival gives: the sensor check of a solar charger
 * whose pv_current is stuck at 0 at night, raised at the third suspect
 * reading and cleared at the first good one, which was in the hole.
 * Readings every 20 minutes (each one a CK_GAP_MS gap: a checkpoint
 * before every reading) for three days; mode 1 without the restart.
 */
#define SOLAR_N 6

struct blobs;
static int feed_saved(struct engine_run *er, const char *station, struct agri_reading *r,
		      size_t n, int64_t now, struct blobs *saved);
static void crash(struct engine_run *er, struct blobs *saved);
static struct blobs *blobs_new(void);
static void blobs_free(struct blobs *b);

/* A charger's readings at t: at night (stuck) all but the battery's
 * voltage are suspect. */
static void solar(struct agri_reading *r, int64_t t, bool stuck)
{
	static const char *const metrics[SOLAR_N] = {"battery_voltage", "battery_current",
		"controller_temperature", "pv_current", "pv_power", "pv_voltage"};

	for (int i = 0; i < SOLAR_N; i++) {
		r[i] = rd(t, "solar", metrics[i], stuck ? 0.0 : 0.5 + i);
		if (stuck && i > 0) {
			r[i].q = AGRI_Q_SUSPECT;
			snprintf(r[i].why, sizeof(r[i].why), "stuck");
		}
	}
}

static void test_catchup_hole(void)
{
	struct rules *rules = rules_json_("{'rules': [{'id': 'sens', 'kind': 'sensor', 'n': 3,"
					  " 'notify': []}]}");
	int64_t day = T0 + 7 * DAY, step = 20 * MIN;
	int64_t bad_from = day + 2 * DAY + 21 * H + 23 * MIN, bad_to = day + 2 * DAY + 23 * H + 3 * MIN;
	int64_t hole_from = day + 2 * DAY + 22 * H + 43 * MIN, hole_to = day + 2 * DAY + 23 * H + 43 * MIN;
	int64_t kill = day + 2 * DAY + 21 * H, end = day + 3 * DAY + 21 * H + 3 * MIN;
	int64_t down_from = kill, down_to = day + 2 * DAY + 23 * H;

	CHECK(rules != NULL);
	if (!rules)
		return;
	for (int mode = 0; mode < 3; mode++) {
		struct engine_run er;
		int64_t now;
		struct agri_reading r[SOLAR_N];
		int64_t start = -1, stop = -1, next_kill = kill + 3 * H;
		bool restarted = mode == 1;
		struct blobs *saved = blobs_new();

		er_init(&er, rules);
		n_seen = 0;
		for (int64_t t = day + 3 * MIN; t <= end; t += step) {
			if (t >= hole_from && t <= hole_to)
				continue;
			if (!restarted && t > kill) {
				restart(&er);
				restarted = true;
			}
			solar(r, t, t >= bad_from && t <= bad_to);
			/* down from 21:00 to 23:00: what it missed comes from the spool */
			now = t >= down_from && t < down_to ? down_to + (t - down_from) / 100 : t + 30 * S;
			if (mode < 2) {
				CHECK(feed_batch(&er, "DT-T06", r, SOLAR_N, now) >= 0);
				continue;
			}
			/* mode 2: killed (SIGKILL: what was not written yet is lost)
			 * every 3 hours until the hole comes, 5 s a reading (x240) */
			er.mono += 5 * S;
			CHECK(feed_saved(&er, "DT-T06", r, SOLAR_N, now, saved) >= 0);
			if (t >= next_kill && t < end - 6 * H) {
				crash(&er, saved);
				next_kill = t + 3 * H;
			}
		}
		CHECK(tick_at(&er, end + MIN, 11 * S) >= 0);
		/* the catch-up: the hole, a day late */
		for (int64_t t = hole_from; t <= hole_to; t += step) {
			solar(r, t, t <= bad_to);
			CHECK(feed_batch(&er, "DT-T06", r, SOLAR_N, end + 9 * MIN) >= 0);
		}
		CHECK(tick_at(&er, end + 10 * MIN, 11 * S) >= 0);
		CHECK(tick_at(&er, end + 11 * MIN, 11 * S) >= 0);
		for (int i = 0; i < n_seen && i < 256; i++) {
			const struct alert_transition *t = &seen[i];

			if (t->event == ALERT_EV_RAISED && t->event_ms >= bad_from)
				start = t->event_ms, stop = -1;
			if (t->event == ALERT_EV_CLEARED && t->alert.raised_at_ms == start)
				stop = t->event_ms;
			if (t->event == ALERT_EV_REVISED && t->old_start_ms == start)
				start = t->event_ms, stop = t->end_ms;
		}
		printf("mode %d: episode %+lld .. %+lld min (want %+lld .. %+lld)\n", mode,
		       (long long)((start - day) / MIN), (long long)((stop - day) / MIN),
		       (long long)((bad_from + 2 * step - day) / MIN),
		       (long long)((bad_to + step - day) / MIN));
		CHECK(start == bad_from + 2 * step && stop == bad_to + step);
		blobs_free(saved);
		alert_engine_free(er.eng);
	}
	rules_free(rules);
}

/*
 * A checkpoint before any late reading of the window (hold.c, ck_push):
 * salinity every 20 minutes for three days, an episode on day 1 whose
 * clearing readings reach the hub 23 hours late (caught up from the
 * other hub), after the key's first checkpoint has passed replay_max_s.
 * With the old retention (3, the expired anchor dropped for the next,
 * hours old) the late readings found no checkpoint and were dropped
 * unevaluated: the episode kept the end the live data gave it.
 */
static void test_ck_anchor(void)
{
	struct rules *rules = rules_json_(
		"{'rules': [{'id': 'sal', 'metric': 'salinity', 'above': 4.0, 'hysteresis': 0.3,"
		" 'notify': []}]}");
	int64_t day = T0 + 11 * DAY, step = 20 * MIN;
	int64_t on = day + DAY + 21 * H, off = day + DAY + 23 * H + 20 * MIN;
	int64_t hole_from = day + DAY + 22 * H, hole_to = day + DAY + 23 * H + 40 * MIN;
	int64_t fill_at = day + 2 * DAY + 21 * H, start = -1, stop = -1;
	struct engine_run er;
	struct agri_reading r[1];

	CHECK(rules != NULL);
	if (!rules)
		return;
	er_init(&er, rules);
	n_seen = 0;
	for (int64_t t = day; t <= fill_at; t += step) {
		if (t >= hole_from && t <= hole_to)
			continue;
		r[0] = rd(t, "s1", "salinity", t >= on && t < off ? 4.5 : 3.0);
		CHECK(feed_batch(&er, "DT-W02", r, 1, t + 30 * S) >= 0);
	}
	for (int64_t t = hole_from; t <= hole_to; t += step) {
		r[0] = rd(t, "s1", "salinity", t < off ? 4.5 : 3.0);
		CHECK(feed_batch(&er, "DT-W02", r, 1, fill_at + MIN) >= 0);
	}
	CHECK(tick_at(&er, fill_at + 2 * MIN, 11 * S) >= 0);
	CHECK(tick_at(&er, fill_at + 3 * MIN, 11 * S) >= 0);
	for (int i = 0; i < n_seen && i < 256; i++) {
		if (seen[i].event == ALERT_EV_RAISED)
			start = seen[i].event_ms, stop = -1;
		if (seen[i].event == ALERT_EV_CLEARED && seen[i].alert.raised_at_ms == start)
			stop = seen[i].event_ms;
		if (seen[i].event == ALERT_EV_REVISED && seen[i].old_start_ms == start)
			start = seen[i].event_ms, stop = seen[i].end_ms;
	}
	printf("anchor: episode %+lld .. %+lld min (want %+lld .. %+lld)\n",
	       (long long)((start - day) / MIN), (long long)((stop - day) / MIN),
	       (long long)((on - day) / MIN), (long long)((off - day) / MIN));
	CHECK(start == on && stop == off);
	alert_engine_free(er.eng);
	rules_free(rules);
}

/* The alert_state table: one blob a key, replaced on write. */
static int upsert_blob(void *ctx, const char *key, const void *blob, size_t len)
{
	struct blobs *b = ctx;
	int i;

	for (i = 0; i < b->n && strcmp(b->key[i], key); i++)
		;
	if (i == BLOBS_MAX)
		return -ENOMEM;
	if (i == b->n) {
		snprintf(b->key[i], sizeof(b->key[0]), "%s", key);
		b->blob[i] = NULL;
		b->n++;
	}
	free(b->blob[i]);
	if (!(b->blob[i] = malloc(len)))
		return -ENOMEM;
	memcpy(b->blob[i], blob, len);
	b->len[i] = len;
	return 0;
}

/* One batch as the gateway's writer commits it: fed, flushed, the due
 * keys written (deferred evidence, 5 s) into *saved, committed. */
static int feed_saved(struct engine_run *er, const char *station, struct agri_reading *r,
		      size_t n, int64_t now, struct blobs *saved)
{
	struct agri_telemetry t = {.readings = r, .n = n};
	bool fresh[64];
	int rc, f;

	snprintf(t.station, sizeof(t.station), "%s", station);
	for (size_t i = 0; i < n; i++)
		fresh[i] = store_put(&er->store, station, &r[i]) == 1;
	er->mono += 20;
	alert_engine_set_mono(er->eng, er->mono);
	alert_engine_begin(er->eng);
	rc = alert_engine_batch(er->eng, &t, fresh, now, keep, NULL);
	if (rc >= 0 && (f = alert_engine_flush(er->eng, now, keep, NULL)) < 0)
		rc = f;
	if (rc >= 0 && (f = alert_engine_export_due(er->eng, er->mono, 5000, upsert_blob,
						    saved)) < 0)
		rc = f;
	alert_engine_commit(er->eng);
	return rc;
}

/* A SIGKILL: the engine restarts from what alert_state holds (saved). */
static void crash(struct engine_run *er, struct blobs *saved)
{
	alert_engine_free(er->eng);
	er->eng = alert_engine_new(er->rules);
	alert_engine_set_source(er->eng, &er->src);
	for (int i = 0; i < saved->n; i++)
		CHECK_INT(alert_engine_import(er->eng, saved->key[i], saved->blob[i], saved->len[i]), 0);
	alert_engine_start(er->eng, er->mono);
}

static struct blobs *blobs_new(void)
{
	return calloc(1, sizeof(struct blobs));
}

static void blobs_free(struct blobs *b)
{
	for (int i = 0; b && i < b->n; i++)
		free(b->blob[i]);
	free(b);
}

/*
 * A power cut that loses deferred evidence (docs/alerts.md "Persistence"):
 * readings that changed no decision were applied and stored, but the key
 * was last written before them, so the engine restarts believing it has
 * applied less than the store holds. A batch lost in the cut and resent
 * after it, older than those stored readings but newer than the key's
 * saved ev_ts, must still be evaluated in reading order with them: here
 * it clears the alert (3.5 < 3.7) and the stored readings after it raise
 * it again. Mode 1: a resent value that changes nothing tells nothing.
 * (tests/powercut/test_powercut_gateway met it: an episode never raised,
 * one ended a reading late.)
 */
static void test_crash_lost_evidence(void)
{
	struct rules *rules = rules_json_(
		"{'rules': [{'id': 'sal', 'metric': 'salinity', 'above': 4.0, 'hysteresis': 0.3,"
		" 'notify': []}]}");
	int64_t day = T0 + 9 * DAY;

	CHECK(rules != NULL);
	if (!rules)
		return;
	for (int mode = 0; mode < 2; mode++) {
		int64_t gone = day + 5 * MIN;
		struct blobs saved = {.n = 0};
		struct engine_run er;
		struct agri_reading r[1];
		int cleared = -1, raised = -1;

		er_init(&er, rules);
		n_seen = 0;
		/* every minute: 3.0, then 4.5 from 00:03 (raised, written); the
		 * rest changes nothing and waits to be written; 00:05 is lost */
		for (int64_t t = day; t <= day + 9 * MIN; t += MIN) {
			if (t == gone)
				continue;
			r[0] = rd(t, "s1", "salinity", t >= day + 3 * MIN ? 4.5 : 3.0);
			CHECK(feed_saved(&er, "DT-W01", r, 1, t + S, &saved) >= 0);
		}
		CHECK_INT(count_ev(ALERT_EV_RAISED, false), 1);
		/* the cut: what alert_state holds, over the same store */
		alert_engine_free(er.eng);
		er.eng = alert_engine_new(er.rules);
		alert_engine_set_source(er.eng, &er.src);
		for (int i = 0; i < saved.n; i++) {
			CHECK_INT(alert_engine_import(er.eng, saved.key[i], saved.blob[i],
						      saved.len[i]), 0);
			free(saved.blob[i]);
		}
		alert_engine_start(er.eng, er.mono);
		saved.n = 0;
		n_seen = 0;
		r[0] = rd(gone, "s1", "salinity", mode == 0 ? 3.5 : 4.4);
		CHECK(feed_saved(&er, "DT-W01", r, 1, day + 10 * MIN, &saved) >= 0);
		CHECK(tick_at(&er, day + 10 * MIN + 20 * S, 11 * S) >= 0);
		for (int i = 0; i < n_seen && i < 256; i++) {
			if (seen[i].event == ALERT_EV_CLEARED)
				cleared = i;
			if (seen[i].event == ALERT_EV_RAISED)
				raised = i;
		}
		if (mode == 0) {
			/* in reading order: cleared at 00:05, raised at 00:06 */
			CHECK_INT(count_ev(ALERT_EV_CLEARED, false), 1);
			CHECK_INT(count_ev(ALERT_EV_RAISED, false), 1);
			CHECK(cleared >= 0 && seen[cleared].event_ms == gone);
			CHECK(raised >= 0 && seen[raised].event_ms == gone + MIN);
		} else {
			if (n_seen)
				printf("lost evidence, mode 1: %d transitions, the first %s\n", n_seen,
				       alert_event_name(seen[0].event));
			CHECK_INT(n_seen, 0);
		}
		for (int i = 0; i < saved.n; i++)
			free(saved.blob[i]);
		alert_engine_free(er.eng);
	}
	rules_free(rules);
}

int main(void)
{
	test_late_text();
	test_offline_drain();
	test_backlog_wait();
	test_news_both();
	test_hostile_station();
	test_nodata_extent();
	test_restart_replay();
	test_crash_lost_evidence();
	test_catchup_hole();
	test_ck_anchor();
	test_property();
	return test_main("test_gateway_alert_order");
}
