/*
 * GET /api/v1/readings and readings.csv (docs/api.md): parse the
 * parameters, list the matching series, then send one page of rows in
 * key order (ts, then series id).
 *
 * A page is found in one read transaction: the rows are walked up to
 * limit + 1, which gives the next page's first key (the `next` link and
 * the Link header) and the ETag (a hash of the page's keys: readings never
 * change once stored), while the first chunk is rendered. A page that fits
 * in one chunk (most: a day of a station) is sent as it is, with its length;
 * a longer one is streamed: libmicrohttpd
 * asks for more when the socket takes it, and each refill is its own short
 * read transaction that walks on from the last key sent. A response thus
 * holds CHUNK (256 KiB) however many rows it carries and a slow reader
 * holds no snapshot. Rows that arrive late inside a page while it is sent are sent
 * with it; none is skipped or repeated from one page to the next.
 *
 * Plans: up to MERGE_MAX series are merged in C, each walked on its own
 * primary key (series_id, ts); with more, the keys are read along the
 * readings_by_ts index alone and the rows of the listed series' keys are
 * read by key (a WITHOUT ROWID table reads a row for every index entry
 * otherwise, wanted or not). Both stop at the page's end instead of
 * sorting the range.
 *
 * Threads: everything here runs on the HTTP worker thread that owns the
 * connection (libmicrohttpd calls a response's reader on that thread), so
 * the thread's read connection and statements are used without locks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/json.h"
#include "agri/log.h"
#include "agri/time.h"
#include "agri/topic.h"
#include "agri/util.h"
#include "http/http_int.h"

#define CHUNK (256 * 1024) /* rows rendered per fill, bytes */
#define TAIL_ROOM 1024     /* kept free for the JSON tail */
#define LINK_MAX 512

struct series_name {
	int64_t id;
	char *station, *sensor, *metric;
};

/* The matching series (a small table), sorted by id. */
struct series_list {
	struct series_name *v;
	size_t n, cap;
};

static void series_free(struct series_list *sl)
{
	for (size_t i = 0; i < sl->n; i++) {
		free(sl->v[i].station);
		free(sl->v[i].sensor);
		free(sl->v[i].metric);
	}
	free(sl->v);
	memset(sl, 0, sizeof(*sl));
}

static const struct series_name *series_find(const struct series_list *sl, int64_t id)
{
	size_t lo = 0, hi = sl->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (sl->v[mid].id == id)
			return &sl->v[mid];
		if (sl->v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* A CSV cell. Text that a spreadsheet would read as a formula (it begins
 * with = + - @, a tab or a CR: OWASP's CSV injection rule) is quoted and
 * prefixed with ' so that it stays text; a cell with , " CR or LF is
 * quoted. Only names and units come here: numbers and times are ours. */
static void csv_field(struct agri_buf *b, const char *s)
{
	bool formula, quote;

	if (!s)
		return;
	formula = s[0] && strchr("=+-@\t\r", s[0]);
	quote = formula || strpbrk(s, ",\"\r\n");
	if (!quote) {
		agri_buf_puts(b, s);
		return;
	}
	agri_buf_puts(b, formula ? "\"'" : "\"");
	for (; *s; s++) {
		if (*s == '"')
			agri_buf_put(b, "\"", 1);
		agri_buf_put(b, s, 1);
	}
	agri_buf_put(b, "\"", 1);
}

/* A key of the readings: the page order. */
struct key {
	int64_t ts, sid;
};

static int key_cmp(struct key a, struct key b)
{
	if (a.ts != b.ts)
		return a.ts < b.ts ? -1 : 1;
	return a.sid < b.sid ? -1 : a.sid > b.sid;
}

/* What the request asks for (copied: a streamed page outlives the
 * handler's call). "" = any. */
struct readings_query {
	char station[AGRI_ID_MAX + 1], metric[AGRI_ID_MAX + 1], sensor[AGRI_ID_MAX + 1];
	bool has_from, has_to, has_cursor;
	int64_t from, to;   /* ms, [from, to) */
	struct key cursor;  /* the first key of this page (the `next` of the previous) */
	long limit;
	bool csv;
};

static const char *opt(const char *s)
{
	return s[0] ? s : NULL;
}

/* "TS:SID", two decimal integers (a `next` link's cursor). */
static bool cursor_parse(const char *s, struct key *k)
{
	char *end;
	long long ts, sid;

	errno = 0;
	ts = strtoll(s, &end, 10);
	if (errno || end == s || *end != ':')
		return false;
	s = end + 1;
	sid = strtoll(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+')
		return false;
	k->ts = ts;
	k->sid = sid;
	return true;
}

/* Parses and checks the parameters into *q. NULL, or why not (400): a
 * constant or bad[] (the parameters' own complaint outlives them there). */
static const char *readings_parse(struct MHD_Connection *c, struct readings_query *q,
				  char *bad, size_t bad_len)
{
	static const char *const allowed[] = {"station", "metric", "sensor", "from", "to",
					      "limit", "cursor", NULL};
	struct params p;
	const char *s;

	q->from = INT64_MIN;
	q->to = INT64_MAX;
	q->limit = LIMIT_DEFAULT;
	if (!http_params_read(c, &p, allowed)) {
		snprintf(bad, bad_len, "%s", p.bad[0] ? p.bad : "too many parameters");
		return bad; /* not p.bad: p ends with this function */
	}
	if ((s = http_param(&p, "station"))) {
		if (!agri_station_id_valid(s))
			return "bad station: expected [A-Za-z0-9_-]{1,32}";
		snprintf(q->station, sizeof(q->station), "%s", s);
	}
	if ((s = http_param(&p, "metric"))) {
		if (!agri_ident_valid(s))
			return "bad metric: expected [A-Za-z0-9_-]{1,32}";
		snprintf(q->metric, sizeof(q->metric), "%s", s);
	}
	if ((s = http_param(&p, "sensor"))) {
		if (!agri_ident_valid(s))
			return "bad sensor: expected [A-Za-z0-9_-]{1,32}";
		snprintf(q->sensor, sizeof(q->sensor), "%s", s);
	}
	if ((s = http_param(&p, "from")) && agri_time_parse(s, &q->from) < 0)
		return "bad from: expected an RFC 3339 time like 2026-11-22T15:04:05Z";
	if ((s = http_param(&p, "to")) && agri_time_parse(s, &q->to) < 0)
		return "bad to: expected an RFC 3339 time like 2026-11-22T15:04:05Z";
	q->has_from = http_param(&p, "from") != NULL;
	q->has_to = http_param(&p, "to") != NULL;
	if (q->from >= q->to)
		return "from must be before to";
	if ((s = http_param(&p, "limit")) && !http_parse_limit(s, LIMIT_MAX, &q->limit))
		return "bad limit: expected an integer from 1 to 100000";
	if ((s = http_param(&p, "cursor"))) {
		if (!cursor_parse(s, &q->cursor))
			return "bad cursor: use the next link of the previous page";
		if (q->cursor.ts < q->from || q->cursor.ts >= q->to)
			return "bad cursor: outside from/to";
		q->has_cursor = true;
	}
	return NULL;
}

/* SQLITE_ROW when st finds value, SQLITE_DONE when not, else an error. */
static int exists(sqlite3_stmt *st, const char *value)
{
	sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
	return http_step_reset(st);
}

/* The series that match q, in id order. SQLITE_DONE, or an SQLite error,
 * or SQLITE_NOMEM. */
static int readings_series(struct rconn *rc, const struct readings_query *q,
			   struct series_list *sl)
{
	sqlite3_stmt *st = rc->q[Q_SERIES];
	int r;

	http_bind_opt(st, 1, opt(q->station));
	http_bind_opt(st, 2, opt(q->metric));
	http_bind_opt(st, 3, opt(q->sensor));
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		struct series_name *e;

		if (sl->n == sl->cap) {
			size_t nc = sl->cap ? sl->cap * 2 : 16;
			struct series_name *t = realloc(sl->v, nc * sizeof(*t));

			if (!t) {
				r = SQLITE_NOMEM;
				break;
			}
			sl->v = t;
			sl->cap = nc;
		}
		e = &sl->v[sl->n++];
		e->id = sqlite3_column_int64(st, 0);
		e->station = strdup((const char *)sqlite3_column_text(st, 1));
		e->sensor = strdup((const char *)sqlite3_column_text(st, 2));
		e->metric = strdup((const char *)sqlite3_column_text(st, 3));
		if (!e->station || !e->sensor || !e->metric) {
			r = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

/* --- the walk: a page's rows in key order ----------------------------- */

/*
 * Inside one read transaction. Its statements are the thread's: Q_MERGE_0
 * + i for the merge, each returning ts, value, unit, q, received_at,
 * series_id; Q_READ_TS for the index walk, returning keys only (the index
 * covers them: a key of a series not asked for costs no row read), and
 * Q_READ_ROW for the row of a key that is kept.
 */
struct walk {
	const struct series_list *sl;
	sqlite3_stmt *st[MERGE_MAX];
	int state[MERGE_MAX]; /* the statement's last step: SQLITE_ROW = a head row */
	size_t n;
	int cur;              /* the statement whose row was handed out, -1 none */
	bool index;           /* the index walk (else the merge) */
	sqlite3_stmt *row;    /* the index walk: Q_READ_ROW */
	bool row_live;        /* row holds a row (to reset) */
};

/* Opens w at key lo (inclusive), rows before q->to. 0 or an SQLite error. */
static int walk_open(struct walk *w, struct rconn *rc, const struct readings_query *q,
		     const struct series_list *sl, struct key lo)
{
	memset(w, 0, sizeof(*w));
	w->sl = sl;
	w->cur = -1;
	if (sl->n == 0)
		return 0;
	if (sl->n <= MERGE_MAX) {
		for (size_t i = 0; i < sl->n; i++) {
			sqlite3_stmt *st = rc->q[Q_MERGE_0 + i];
			int64_t from = lo.ts;

			if (sl->v[i].id < lo.sid) /* this series' row at lo.ts came before lo */
				from = lo.ts == INT64_MAX ? INT64_MAX : lo.ts + 1;
			sqlite3_bind_int64(st, 1, sl->v[i].id);
			sqlite3_bind_int64(st, 2, from);
			sqlite3_bind_int64(st, 3, q->to);
			w->st[i] = st;
			w->n = i + 1;
			w->state[i] = sqlite3_step(st);
			if (w->state[i] != SQLITE_ROW && w->state[i] != SQLITE_DONE)
				return w->state[i];
		}
		return 0;
	}
	w->index = true;
	w->row = rc->q[Q_READ_ROW];
	w->st[0] = rc->q[Q_READ_TS];
	w->n = 1;
	w->cur = 0; /* stepped by the first walk_next() */
	sqlite3_bind_int64(w->st[0], 1, lo.ts);
	sqlite3_bind_int64(w->st[0], 2, lo.sid);
	sqlite3_bind_int64(w->st[0], 3, q->to);
	return 0;
}

/* The index walk's next key of a listed series; with need_row, its row in
 * w->row. SQLITE_ROW, SQLITE_DONE or an SQLite error. */
static int walk_next_index(struct walk *w, bool need_row, sqlite3_stmt **st, struct key *k)
{
	int r;

	if (w->row_live) {
		sqlite3_reset(w->row);
		w->row_live = false;
	}
	while ((r = sqlite3_step(w->st[0])) == SQLITE_ROW) {
		k->ts = sqlite3_column_int64(w->st[0], 0);
		k->sid = sqlite3_column_int64(w->st[0], 1);
		if (!series_find(w->sl, k->sid))
			continue;
		if (!need_row)
			return SQLITE_ROW;
		sqlite3_bind_int64(w->row, 1, k->sid);
		sqlite3_bind_int64(w->row, 2, k->ts);
		r = sqlite3_step(w->row);
		w->row_live = true;
		if (r == SQLITE_ROW)
			*st = w->row;
		return r == SQLITE_DONE ? SQLITE_CORRUPT : r; /* a key without its row */
	}
	return r;
}

/* The next row: SQLITE_ROW with its key and, when need_row, *st
 * positioned on it; or SQLITE_DONE, or an SQLite error. */
static int walk_next(struct walk *w, bool need_row, sqlite3_stmt **st, struct key *k)
{
	int best = -1;

	if (w->index)
		return walk_next_index(w, need_row, st, k);
	if (w->cur >= 0) {
		w->state[w->cur] = sqlite3_step(w->st[w->cur]);
		if (w->state[w->cur] != SQLITE_ROW && w->state[w->cur] != SQLITE_DONE)
			return w->state[w->cur];
	}
	for (size_t i = 0; i < w->n; i++) {
		struct key ki;

		if (w->state[i] != SQLITE_ROW)
			continue;
		ki.ts = sqlite3_column_int64(w->st[i], 0);
		ki.sid = sqlite3_column_int64(w->st[i], 5);
		if (best < 0 || key_cmp(ki, *k) < 0) {
			best = (int)i;
			*k = ki;
		}
	}
	w->cur = best;
	if (best < 0)
		return SQLITE_DONE;
	*st = w->st[best];
	return SQLITE_ROW;
}

static void walk_close(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		sqlite3_reset(w->st[i]);
		sqlite3_clear_bindings(w->st[i]);
	}
	if (w->row) {
		sqlite3_reset(w->row);
		sqlite3_clear_bindings(w->row);
	}
	w->n = 0;
	w->row = NULL;
}

/* --- a page ----------------------------------------------------------- */

/* One response's state, from the handler to the last refill. */
struct page {
	struct http_server *srv;
	struct readings_query q;
	struct series_list sl;
	struct key lo;           /* the next row to render */
	bool has_end;            /* the page ends before end (the next page's first row) */
	struct key end;
	long count;              /* rows rendered */
	bool finished;           /* every row and the tail are in the chunk */
	char link[LINK_MAX];     /* the next page, "" = none */
	struct agri_buf b;       /* the chunk being sent (heap, up to CHUNK + TAIL_ROOM) */
	size_t off;              /* bytes of b already handed to libmicrohttpd */
};

static void page_free(void *p)
{
	struct page *pg = p;

	if (!pg)
		return;
	series_free(&pg->sl);
	agri_buf_free(&pg->b);
	free(pg);
}

/* Renders the row st holds at the end of the chunk. False (nothing
 * added) when the chunk is full. */
static bool render_row(struct page *pg, sqlite3_stmt *st, struct key k)
{
	const struct series_name *se = series_find(&pg->sl, k.sid);
	struct agri_buf *b = &pg->b;
	size_t before = b->len;
	const char *qn = http_q_name(sqlite3_column_int(st, 3));
	char t1[AGRI_TIME_LEN + 1] = "", t2[AGRI_TIME_LEN + 1] = "";

	if (!se)
		return true; /* a series newer than the list: not in the snapshot */
	agri_time_format(k.ts, t1, sizeof(t1));
	agri_time_format(sqlite3_column_int64(st, 4), t2, sizeof(t2));
	if (pg->q.csv) {
		csv_field(b, se->station);
		agri_buf_put(b, ",", 1);
		csv_field(b, se->sensor);
		agri_buf_put(b, ",", 1);
		csv_field(b, se->metric);
		agri_buf_printf(b, ",%s,", t1);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			http_json_num(b, sqlite3_column_double(st, 1));
		agri_buf_put(b, ",", 1);
		csv_field(b, (const char *)sqlite3_column_text(st, 2));
		agri_buf_printf(b, ",%s,%s\r\n", qn, t2);
	} else {
		agri_buf_puts(b, pg->count == 0 ? "{\"station\":" : ",{\"station\":");
		agri_buf_json_text(b, se->station);
		agri_buf_puts(b, ",\"sensor\":");
		agri_buf_json_text(b, se->sensor);
		agri_buf_puts(b, ",\"metric\":");
		agri_buf_json_text(b, se->metric);
		agri_buf_printf(b, ",\"ts\":\"%s\",\"value\":", t1);
		http_db_col_num(b, st, 1);
		agri_buf_puts(b, ",\"unit\":");
		http_db_col_str(b, st, 2);
		agri_buf_printf(b, ",\"q\":\"%s\",\"received_at\":\"%s\"}", qn, t2);
	}
	if (b->err || b->len > CHUNK) { /* take it back: it goes in the next chunk */
		b->err = 0;
		b->len = before;
		b->p[before] = '\0';
		return false;
	}
	pg->count++;
	return true;
}

/* The JSON tail after the last row (fits in TAIL_ROOM). */
static void page_tail(struct page *pg)
{
	struct agri_buf *b = &pg->b;

	pg->finished = true;
	if (pg->q.csv)
		return;
	agri_buf_printf(b, "],\"count\":%ld,\"limit\":%ld,\"truncated\":%s", pg->count,
			pg->q.limit, pg->has_end ? "true" : "false");
	if (pg->has_end) {
		agri_buf_puts(b, ",\"next_from\":");
		http_json_time(b, pg->end.ts);
		agri_buf_puts(b, ",\"next\":");
		agri_buf_json_text(b, pg->link);
	}
	agri_buf_puts(b, "}\n");
}

/* The next page's path: this request's filters and the end key. */
static void page_link(struct page *pg)
{
	struct agri_buf b;
	char t[AGRI_TIME_LEN + 1];
	const struct readings_query *q = &pg->q;

	agri_buf_init(&b, pg->link, sizeof(pg->link));
	agri_buf_puts(&b, q->csv ? "/api/v1/readings.csv?" : "/api/v1/readings?");
	if (q->station[0])
		agri_buf_printf(&b, "station=%s&", q->station);
	if (q->metric[0])
		agri_buf_printf(&b, "metric=%s&", q->metric);
	if (q->sensor[0])
		agri_buf_printf(&b, "sensor=%s&", q->sensor);
	if (q->has_from && agri_time_format(q->from, t, sizeof(t)) == 0)
		agri_buf_printf(&b, "from=%s&", t);
	if (q->has_to && agri_time_format(q->to, t, sizeof(t)) == 0)
		agri_buf_printf(&b, "to=%s&", t);
	agri_buf_printf(&b, "limit=%ld&cursor=%" PRId64 ":%" PRId64, q->limit, pg->end.ts,
			pg->end.sid);
}

/* libmicrohttpd's reader: hands out the chunk, refilled from pg->lo in a
 * read transaction of its own. HTTP worker thread of the connection. */
static ssize_t page_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct page *pg = cls;
	struct rconn *rc = NULL;
	struct walk w;
	sqlite3_stmt *st = NULL;
	struct key k = {0};
	int r;

	(void)pos;
	if (pg->off == pg->b.len) {
		if (pg->finished)
			return MHD_CONTENT_READER_END_OF_STREAM;
		pg->b.len = 0; /* the same storage again */
		pg->off = 0;
		rc = http_rconn(pg->srv);
		if (!rc || http_rtx_begin(rc) < 0)
			goto fail;
		r = walk_open(&w, rc, &pg->q, &pg->sl, pg->lo);
		while (r == SQLITE_OK && (r = walk_next(&w, true, &st, &k)) == SQLITE_ROW) {
			if (pg->has_end && key_cmp(k, pg->end) >= 0) {
				r = SQLITE_DONE;
				break;
			}
			if (!render_row(pg, st, k)) {
				pg->lo = k;
				break;
			}
			r = SQLITE_OK;
		}
		walk_close(&w);
		http_rtx_end(rc);
		if (r == SQLITE_DONE)
			page_tail(pg);
		else if (r != SQLITE_ROW || pg->b.len == 0)
			goto fail; /* an SQLite error, or a row larger than a chunk */
	}
	if (max > pg->b.len - pg->off)
		max = pg->b.len - pg->off;
	memcpy(buf, pg->b.p + pg->off, max);
	pg->off += max;
	return (ssize_t)max;
fail:
	log_warn(LOG, "readings page cut short rows=%ld error=\"%s\"", pg->count,
		 rc ? sqlite3_errmsg(rc->db) : "database not readable");
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Walks the page from its first key: renders the first chunk, finds the
 * end (the limit + 1-th row) and hashes the keys into the ETag. Returns
 * SQLITE_DONE or an SQLite error. Inside the handler's read transaction. */
static int page_plan(struct page *pg, struct rconn *rc, char *etag, size_t etag_len)
{
	struct walk w;
	sqlite3_stmt *st = NULL;
	struct key k = {0};
	uint64_t h = AGRI_HASH64_INIT;
	bool rendering = true;
	long n = 0;
	int r;

	h = agri_hash64_bytes(h, pg->q.csv ? "csv" : "json", pg->q.csv ? 3 : 4);
	r = walk_open(&w, rc, &pg->q, &pg->sl, pg->lo);
	while (r == SQLITE_OK && (r = walk_next(&w, rendering, &st, &k)) == SQLITE_ROW) {
		if (n == pg->q.limit) {
			pg->has_end = true;
			pg->end = k;
			r = SQLITE_DONE;
			break;
		}
		h = agri_hash64_bytes(h, &k, sizeof(k));
		n++;
		if (rendering && !render_row(pg, st, k)) {
			rendering = false;
			pg->lo = k;
		}
		r = SQLITE_OK;
	}
	if (r == SQLITE_OK)
		r = SQLITE_DONE; /* no series */
	walk_close(&w);
	if (r != SQLITE_DONE)
		return r;
	if (pg->has_end) {
		page_link(pg);
		h = agri_hash64_bytes(h, &pg->end, sizeof(pg->end));
	}
	h = agri_hash64_bytes(h, &n, sizeof(n));
	snprintf(etag, etag_len, "\"r%016" PRIx64 "\"", h);
	if (rendering)
		page_tail(pg);
	return SQLITE_DONE;
}

/* Parse, then in one read transaction check, list the series and plan the
 * page; then send it (whole, or its first chunk and a reader). */
enum MHD_Result http_api_readings(const struct http_call *k)
{
	struct http_server *srv = k->srv;
	struct MHD_Connection *c = k->c;
	struct rconn *rc = k->rc;
	struct page *pg;
	const char *why, *type;
	char etag[24], link[LINK_MAX + 16], bad[sizeof(((struct params *)0)->bad)];
	enum MHD_Result ret;
	int r;

	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	pg->srv = srv;
	pg->q.csv = k->variant == 1;
	type = pg->q.csv ? "text/csv; charset=utf-8" : "application/json";
	if ((why = readings_parse(c, &pg->q, bad, sizeof(bad)))) {
		page_free(pg);
		return http_send_error(srv, c, MHD_HTTP_BAD_REQUEST, "%s", why);
	}
	pg->lo = pg->q.has_cursor ? pg->q.cursor : (struct key){pg->q.from, INT64_MIN};
	agri_buf_init_heap(&pg->b, CHUNK + TAIL_ROOM);
	agri_buf_puts(&pg->b, pg->q.csv ? "station,sensor,metric,ts,value,unit,q,received_at\r\n"
				     : "{\"readings\":[");
	if (http_rtx_begin(rc) < 0) {
		page_free(pg);
		return http_send_db_error(srv, c, rc, sqlite3_errcode(rc->db));
	}
	r = SQLITE_DONE;
	if (pg->q.station[0] && (r = exists(rc->q[Q_STATION_EXISTS], pg->q.station)) != SQLITE_ROW) {
		http_rtx_end(rc);
		ret = r == SQLITE_DONE ? http_send_error(srv, c, MHD_HTTP_NOT_FOUND,
							 "unknown station: %s", pg->q.station)
				       : http_send_db_error(srv, c, rc, r);
		page_free(pg);
		return ret;
	}
	if (pg->q.metric[0] && !http_metric_canonical(pg->q.metric) &&
	    (r = exists(rc->q[Q_METRIC_SEEN], pg->q.metric)) != SQLITE_ROW) {
		http_rtx_end(rc);
		ret = r == SQLITE_DONE ? http_send_error(srv, c, MHD_HTTP_BAD_REQUEST,
							 "unknown metric: %s (not canonical, never"
							 " reported)", pg->q.metric)
				       : http_send_db_error(srv, c, rc, r);
		page_free(pg);
		return ret;
	}
	if ((r = readings_series(rc, &pg->q, &pg->sl)) == SQLITE_DONE)
		r = page_plan(pg, rc, etag, sizeof(etag));
	http_rtx_end(rc);
	if (r != SQLITE_DONE) {
		page_free(pg);
		if (r == SQLITE_NOMEM)
			return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return http_send_db_error(srv, c, rc, r);
	}
	link[0] = '\0';
	if (pg->has_end)
		snprintf(link, sizeof(link), "<%s>; rel=\"next\"", pg->link);
	if (pg->b.err) { /* the header did not fit: out of memory */
		page_free(pg);
		return http_send_error(srv, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	if (pg->finished || http_etag_matches(c, etag)) { /* one chunk (given away), or a 304 */
		char *body = pg->b.p;
		size_t len = pg->b.len;

		pg->b.p = NULL;
		page_free(pg);
		return http_send_page(srv, c, type, etag, link, body, len, true, NULL, NULL, NULL);
	}
	return http_send_page(srv, c, type, etag, link, NULL, 0, false, page_read, pg, page_free);
}
