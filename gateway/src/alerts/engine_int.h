/*
 * The alert engine's insides, shared by its files (not a public API; see
 * alert.h): the key table (keys.c), the blob codec every key is saved,
 * undone and restored with (codec.c), transitions (transitions.c), the
 * rule kinds' conditions (kinds.c) and the public entry points
 * (engine.c). One thread owns an engine: no locking here.
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
#define BLOB_VERSION 1
#define DAY_MS 86400000LL
#define HOUR_MS 3600000LL

struct arec {
	struct agri_alert a;        /* id, rule, station, sensor fixed at creation */
	char msg_en[sizeof(((struct agri_alert *)0)->message)];
	char msg_vi[sizeof(((struct agri_alert *)0)->message)];
	bool acked, escalated;
	int level;                  /* level index (level kinds), else -1 */
	int64_t active_since_ms;    /* now-time it last became active */
	int64_t last_notify_ms;     /* now-time of its last notification */
	char who[64];
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

/* A station record's own state: when it rained (a light trap's rain
 * register, hours of rain readings), so that peak and rising rules can set
 * a rain night aside. */
struct station_state {
	int64_t rain[STATION_RAIN_MAX]; /* ms, whole hours, a ring */
	uint8_t n, pos;
};

struct akey {
	struct akey *hnext;
	uint64_t hash;
	int rule;                   /* index in rules->v; -1: station record */
	char station[AGRI_ID_MAX + 1];
	char sensor[AGRI_ID_MAX + 1];
	bool dirty, txn_touched;
	bool in_new;                /* on eng->dirtyv */
	bool deferred;              /* on eng->defv */
	uint64_t saved_major;       /* hash of the decision state last written (0: unknown) */
	int64_t queued_ms;          /* when it joined eng->defv (export's now) */
	struct arec *rec;
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
	bool dirty;
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
	size_t open;
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
