/*
 * The alert engine's insides, shared by its files (not a public API; see
 * alert.h): the key table (keys.c), the blob codec every key is saved,
 * undone and restored with (codec.c), transitions (transitions.c), the
 * rule kinds' conditions (kinds.c), event time (hold.c, replay.c,
 * readback.c) and the public entry points (engine.c). One thread owns an
 * engine: no locking here.
 */
#ifndef GATEWAY_ALERTS_ENGINE_INT_H
#define GATEWAY_ALERTS_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts/alert.h"
#include "alerts/text.h"

#define NONE INT64_MIN
#define QUAL_METRICS_MAX 6
#define BLOB_MAGIC 0xa1
#define BLOB_VERSION 4
#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

/* Event time (hold.c, replay.c, readback.c; docs/alerts.md "Reading order"). */
#define CK_MAX 5                /* checkpoints a key keeps */
#define CK_EVERY_MS (3 * HOUR_MS) /* one at least this often in reading time */
#define CK_GAP_MS (15 * 60000LL) /* ... and one before a gap this long */
#define LED_MAX 16              /* episodes a key remembers as told */
#define CAP_MAX 8               /* transitions of one episode held during a replay */
#define HOLD_MAX 4096           /* readings a station holds before a release */
#define NEWS_HOLD_MS 60000      /* late news waits at most this long (mono) */
#define BACKLOG_WAIT_MS 120000  /* an announced backlog is waited for this long */
#define FLUSH_ROWS_MAX 400000   /* rows one flush replays, all stations */
#define FLUSH_STATION_ROWS_MAX 100000 /* ... one station */
#define ROWS_CHUNK 512          /* rows read from the source at a time */
#define MERGE_MAX 16            /* metrics of one sensor a replay reads */

/* Which parts of a key a blob holds (blob version 2 and after). */
enum {
	P_EV = 1,     /* evidence: last seen, newest ts, last level values */
	P_PTS = 2,    /* window/rate ring points */
	P_MSGS = 4,   /* the open alert's messages */
	P_LED = 8,    /* told episodes, held readings, late news */
	P_CK = 16,    /* checkpoints */
	P_FULL = 31,
	P_MAJOR = P_MSGS | P_LED, /* the decision state (deferred evidence) */
	P_CKPT = P_EV,            /* a checkpoint: no points, messages or history */
};

struct arec {
	struct agri_alert a;        /* id, rule, station, sensor fixed at creation */
	char msg_en[sizeof(((struct agri_alert *)0)->message)];
	char msg_vi[sizeof(((struct agri_alert *)0)->message)];
	bool acked, escalated;
	int level;                  /* level index (level kinds), else -1 */
	int64_t active_since_ms;    /* now-time it last became active */
	int64_t last_notify_ms;     /* now-time of its last notification */
	char who[64];
	bool late;                  /* its episode's evidence came late */
	uint8_t peak;               /* the worst enum alert_severity of its episode
				     * so far (blob version 4; before: its severity) */
	int64_t arrived_ms;         /* now-time its last transition was known */
	int64_t gap_from;           /* no_data: the station's newest reading ts at raise */
	bool back;                  /* no_data: data came back, the clear waits for the
				     * station's backlog (its true extent) */
};

struct pt {
	int64_t ts;
	double v;
};

struct lvl_slot {
	int64_t held_since;     /* enter condition held since (NONE) */
	int64_t lts;            /* last reading ts of the level */
	double lval;            /* last value of the level */
};

struct lvl_state {
	uint8_t on;             /* bit i: level i is on */
	struct lvl_slot *s;     /* the rule's n_levels slots, right after this
				 * struct in the key's own allocation */
	struct pt *pts;         /* window/rate ring */
	size_t pcap, phead, pn;
};

struct peak_state {
	int64_t night;          /* night being summed, NONE before the first */
	double total;
	double hist[RULE_PEAK_NIGHTS_MAX]; /* completed nights, ring */
	uint8_t hn, hpos;
	bool prev_valid, prev_q, in_run, run_raised;
	double prev_total, run_max, run_thr;
	int64_t prev_night, run_night, raised_night;
};

struct qmetric {
	char metric[AGRI_ID_MAX + 1];
	uint32_t count;
	int64_t last_ts;
};

struct qual_state {
	uint8_t n;
	struct qmetric m[QUAL_METRICS_MAX];
};

#define STATION_RAIN_MAX 16

struct akey;

/* A station record's own state: when it rained (a light trap's rain
 * register, hours of rain readings), so that peak and rising rules can set
 * a rain night aside; and its late readings (hold.c). */
struct station_state {
	int64_t rain[STATION_RAIN_MAX]; /* ms, whole hours, a ring */
	uint8_t n, pos;
	bool holding;          /* its late readings wait for a release */
	bool flush_now;        /* a fresh reading came out of order: replay now */
	bool backlog;          /* its online status announced a spool backlog ... */
	bool backlog_late;     /* ... and late readings came since */
	bool queued;           /* on eng->hq */
	uint32_t held;         /* readings held since the last release */
	int64_t late_mono;     /* mono ms of its last late reading (NONE) */
	int64_t news_mono;     /* mono ms its oldest unsent late news waits since */
	int64_t backlog_mono;  /* mono ms of the announcement (NONE: before a restart) */
	struct akey *keys;     /* its rule keys, through akey->st_next (not saved) */
};

/* A checkpoint: a key's condition and alert (no messages, no ring
 * points) as they were once its readings up to ts were applied. */
struct ck {
	int64_t ts;
	uint32_t len;
	uint8_t blob[];
};

enum { EP_PENDING = 1, EP_LIVE = 2, EP_LATE = 4 };
/* Bits 3-4 of an episode's flags: the worst severity it reached (an
 * enum alert_severity; saved with the key, older states read as info). */
#define EP_PEAK_SHIFT 3
#define EP_PEAK_MASK (3u << EP_PEAK_SHIFT)

/* An episode as stored and told (start and end in reading time; end NONE
 * while open). */
struct ep {
	int64_t start, end;
	uint8_t flags;
};

static inline enum alert_severity ep_peak(const struct ep *e)
{
	return (enum alert_severity)((e->flags & EP_PEAK_MASK) >> EP_PEAK_SHIFT);
}

static inline void ep_set_peak(struct ep *e, enum alert_severity s)
{
	e->flags = (uint8_t)((e->flags & ~EP_PEAK_MASK) | (((unsigned)s << EP_PEAK_SHIFT) &
							    EP_PEAK_MASK));
}

/* Late news of one alert not notified yet (a summary at the station's
 * settle: one notification per alert). */
struct news {
	uint16_t n;            /* late episodes told (which: EP_PENDING in led) */
	bool cleared;          /* an episode told live ended in the late data ... */
	int64_t end;           /* ... at this reading time */
	char *en, *vi;         /* the first late episode's message (NULL: none) */
	char *cen, *cvi;       /* the clear's message (cleared) */
};

/* What a key keeps about its past (allocated on first use). */
struct kx {
	struct ck *ck[CK_MAX]; /* oldest first */
	uint8_t n_ck, n_led, cap_led;
	int64_t hold_from;     /* its readings from this ts wait for a replay (NONE) */
	struct ep *led;        /* told episodes, oldest first (grown to LED_MAX) */
	int64_t led_floor;     /* episodes ending before this were forgotten (NONE) */
	struct news nw;
};

struct akey {
	struct akey *hnext;
	uint64_t hash;
	int rule;                   /* index in rules->v; -1: station record */
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	bool dirty, txn_touched;
	bool ev_stale;              /* imported: the store may hold readings it applied
				     * after its evidence was last written (replayed) */
	bool in_new;                /* on eng->dirtyv */
	bool deferred;              /* on eng->defv */
	uint64_t saved_major;       /* hash of the decision state last written (0: unknown) */
	int64_t queued_ms;          /* when it joined eng->defv (export's now) */
	struct arec *rec;
	struct akey *st_next;       /* its station's next key */
	struct kx *x;               /* checkpoints, episodes, held readings */
	int64_t ev_ts;              /* newest reading ts applied (event time) */
	int64_t first_ts;           /* the first one (NONE once past replay_max_s) */
	int64_t last_ts;            /* newest reading ts (window/rate/peak) */
	int64_t seen_ms;            /* now-time of the last data (no_data, station) */
	bool offline;               /* station record: status offline */
	uint32_t st_keys, st_open;  /* station record: its rule keys, open alerts */
	union {
		struct lvl_state lv;
		struct peak_state pk;
		struct qual_state q;
		struct station_state st; /* the station record (rule -1) */
	} u;
};

struct undo {
	struct akey *k;
	bool dirty, ev_stale;
	uint8_t *blob;
	size_t len;
};

/* The rules a reading of one metric goes through, in rule order (a
 * reading meets ~17 of 100 rules: found once per reading, not with a
 * strcmp per rule). */
struct metric_rules {
	const char *metric;         /* NULL: any metric not named by a rule */
	int *rule;
	size_t n;
};

struct alert_engine {
	const struct rules *rules;
	uint64_t *fp;               /* fingerprint per rule */
	struct akey **tab;
	size_t tab_n;               /* power of two */
	struct akey **keys;
	size_t n, cap;
	struct metric_rules *by_metric; /* the rules a reading of each metric meets */
	size_t n_by_metric;             /* ... the last entry: any other metric */
	int64_t start_ms;
	bool in_txn;
	size_t txn_first;           /* keys[txn_first..n) were created in the txn */
	struct undo *undo;
	size_t n_undo, cap_undo;
	struct akey **dirtyv;       /* keys touched since the last export */
	size_t n_dirty, cap_dirty;
	struct akey **defv;         /* dirty keys whose write waits (evidence only), */
	size_t def_head, n_def, cap_def; /* a queue: defv[def_head..n_def) */
	double def_credit;          /* ... written at a pace (export_waiting()) */
	int64_t def_last_ms;
	bool no_undo;               /* alert_engine_set_undo(false) */
	bool dirty_oom;             /* dirtyv could not grow: export scans every key */
	uint8_t *buf;               /* export scratch */
	size_t buf_cap;
	uint64_t keys_refused, late, raises_refused;
	uint64_t held, replays, replayed_rows, late_dropped;
	size_t open;
	const struct alert_source *src; /* the store's readings (readback.c, hold.c) */
	int64_t mono_ms;            /* the real clock (alert_engine_set_mono) */
	bool quiet;                 /* late news is not summarised (imports) */
	struct replay *rp;          /* the replay in progress (captures emits) */
	struct akey **hq;           /* station records with work (held, news) */
	size_t n_hq, cap_hq;
	struct alert_row *rowbuf;   /* readback.c's read buffers */
	struct replay *rpbuf;
	struct rowcache *rcache;    /* ... the rows of a release (readback.c) */
	size_t keys_per_station, open_per_station; /* 0: no limit */
	bool refused;               /* the last ae_key_get_h() hit a cap (not ENOMEM) */
};

/* Emission context shared by the helpers. */
struct out {
	alert_emit_fn fn;
	void *ctx;
	int count;
	bool has_night;   /* the RAISED being emitted is a peak (night_day) */
	int64_t night_day;
	int64_t ev_ms;    /* the evidence of what is emitted (reading ts) */
	int64_t now_ms;
};

/* One metric's rows in a merge, read ROWS_CHUNK at a time (readback.c). */
struct cursor {
	char metric[AGRI_ID_MAX + 1];
	struct alert_row *rows;
	int n, pos;
	int64_t after;
	bool done;
};

/* Readings of several metrics of one sensor, merged in (ts, metric)
 * order, read ROWS_CHUNK at a time. */
struct merge {
	struct alert_engine *eng;
	const char *station, *sensor;
	struct cursor c[MERGE_MAX];
	int n;
	int64_t until;             /* rows after it are not read (INT64_MAX: all) */
	uint64_t rows;
	int err;
};

static inline int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The kinds that sum a light trap's catches per night. */
static inline bool nights_kind(enum rule_kind k)
{
	return k == RULE_PEAK || k == RULE_RISING;
}

static inline bool level_kind(enum rule_kind k)
{
	return k == RULE_THRESHOLD || k == RULE_LADDER || k == RULE_WINDOW ||
	       k == RULE_RATE;
}

/* A growing byte buffer the codec writes a blob into (oom: a write failed). */
struct wbuf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
};

/* codec.c: the blob codec, key state size and reset */
const struct rule *ae_key_rule(const struct alert_engine *eng,
			       const struct akey *k);
void ae_ring_point(const struct lvl_state *lv, size_t i, struct pt *out);
void ae_key_encode(const struct alert_engine *eng, const struct akey *k,
		   struct wbuf *w);
void ae_key_encode_ck(const struct alert_engine *eng, const struct akey *k,
		      struct wbuf *w);
int ae_ck_decode(struct alert_engine *eng, struct akey *k, const void *blob, size_t len);
void ae_cond_reset(struct alert_engine *eng, struct akey *k);
bool ae_deferrable(const struct alert_engine *eng, const struct akey *k);
uint64_t ae_major_hash(const struct alert_engine *eng, const struct akey *k,
		       struct wbuf *w);
size_t ae_state_size(const struct alert_engine *eng, int rule);
void ae_open_add(struct alert_engine *eng, const struct akey *k, int d);
void ae_state_reset(struct alert_engine *eng, struct akey *k);
void ae_rec_fill_ids(struct arec *rec, const struct rule *R,
		     const struct akey *k);
int ae_key_decode(struct alert_engine *eng, struct akey *k,
		  const void *blob, size_t len);

/* keys.c: the key table, dirty lists, touch() */
uint64_t ae_place_hash(const char *station, const char *sensor);
uint64_t ae_rule_hash(uint64_t place, int rule);
struct akey *ae_key_find_h(const struct alert_engine *eng, uint64_t h, int rule,
			   const char *station, const char *sensor);
struct akey *ae_key_find(const struct alert_engine *eng, int rule,
			 const char *station, const char *sensor);
bool ae_key_push(struct alert_engine *eng, struct akey ***v, size_t *n,
		 size_t *cap, struct akey *k);
void ae_dirty_rebuild(struct alert_engine *eng);
struct akey *ae_key_get_h(struct alert_engine *eng, uint64_t h, int rule,
			  const char *station, const char *sensor);
struct akey *ae_key_get(struct alert_engine *eng, int rule,
			const char *station, const char *sensor);
void ae_key_unlink(struct alert_engine *eng, struct akey *k);
void ae_key_free(struct alert_engine *eng, struct akey *k);
int ae_touch(struct alert_engine *eng, struct akey *k);

/* transitions.c: raising, changing and clearing an alert */
enum alert_lang ae_primary(const struct alert_engine *eng);
void ae_emit(struct alert_engine *eng, struct out *o, const struct akey *k,
	     enum alert_event ev, const char *prefix_who, int prefix);
struct alert_text_args ae_text_args(const struct rule *R, const struct akey *k,
				    enum alert_text_what what);
int ae_raise_alert(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct alert_text_args *args, int level,
		   enum alert_severity sev, int64_t at_ms, int64_t now_ms);
enum alert_severity ae_rec_severity(const struct arec *rec);
void ae_severity_change(struct alert_engine *eng, struct out *o,
			struct akey *k, const struct alert_text_args *args,
			int level, enum alert_severity sev, int64_t at_ms,
			int64_t now_ms);
void ae_clear_alert(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct alert_text_args *args, int64_t at_ms,
		    int64_t now_ms);
bool ae_rec_open_active(const struct akey *k);
int ae_nodata_raise(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct rule *R, bool offline, int64_t now_ms);
void ae_nodata_clear(struct alert_engine *eng, struct out *o, struct akey *k,
		     const struct rule *R, int64_t now_ms);

/* hold.c: event time as readings come (checkpoints, holds, the queue) */
bool ae_replayable(const struct rule *R);
void ae_ck_maybe(struct alert_engine *eng, struct akey *k, int64_t ts);
int ae_hold(struct alert_engine *eng, struct akey *st, struct akey *k, int64_t ts, bool late);
int ae_unseen_rows(struct alert_engine *eng, const struct akey *k, const struct rule *R,
		   const struct agri_reading *r);
void ae_held_note(struct alert_engine *eng, struct akey *st);
bool ae_gap_waits(const struct akey *st, const struct akey *k, const struct rule *R,
		  const struct agri_reading *r);
void ae_late_note(struct alert_engine *eng, struct akey *st, bool late);
void ae_kx_free(struct akey *k);
struct kx *ae_kx(struct akey *k);
void ae_news_clear(struct news *nw);
void ae_station_unlink(struct alert_engine *eng, struct akey *k);
void ae_queue(struct alert_engine *eng, struct akey *st);
int ae_apply(struct alert_engine *eng, struct out *o, struct akey *k, const struct rule *R,
	     const struct agri_reading *r, int64_t now_ms);
bool ae_rule_takes(const struct rule *R, const struct agri_reading *r);
int ae_replay_due(struct alert_engine *eng, int64_t now_ms, bool settle, alert_emit_fn fn,
		  void *ctx);
void ae_queue_rebuild(struct alert_engine *eng);
int ae_ring_push(struct lvl_state *lv, size_t max_points, int64_t ts, double v);
int ae_nodata_back(struct alert_engine *eng, struct out *o, struct akey *st, struct akey *k,
		   const struct rule *R, const struct agri_reading *r, bool late, int64_t now_ms);

/* replay.c: replaying a key, reconciling what it told, late news */
bool ae_capture(struct alert_engine *eng, const struct akey *k,
		const struct alert_transition *t);
void ae_told(struct alert_engine *eng, struct out *o, struct akey *k,
	     const struct alert_transition *t);
int64_t ae_replay_key(struct alert_engine *eng, struct out *o, struct akey *k);
void ae_news_send(struct alert_engine *eng, struct out *o, struct akey *k);

/* readback.c: the stored readings read back, merged in (ts, metric) order */
void ae_rowcache_free(struct alert_engine *eng);
void ae_rowcache_drop(struct alert_engine *eng);
int ae_merge_open(struct alert_engine *eng, struct merge *m, const struct akey *k,
		  const struct rule *R, int64_t after);
bool ae_merge_next(struct merge *m, struct agri_reading *r);

/* kinds.c: the conditions of each rule kind */
int ae_levels_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct rule *R, const char *metric, double v,
		   int64_t ts, int64_t now_ms);
int ae_series_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		   const struct rule *R, double v, int64_t ts, int64_t now_ms);
int ae_peak_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		 const struct rule *R, double v, int64_t ts, int64_t now_ms);
/* Notes rain at a station record (a light trap's rain register). */
void ae_rain_note(struct akey *st, int64_t ts);
/* A sensor key that a good reading of metric must see (a run or an open
 * alert); otherwise the reading can skip it. */
bool ae_sensor_counting(const struct akey *k, const char *metric);
int ae_quality_feed(struct alert_engine *eng, struct out *o, struct akey *k,
		    const struct rule *R, const struct agri_reading *r,
		    int64_t now_ms);

#endif
