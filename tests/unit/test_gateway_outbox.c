/*
 * The outbox (gateway/outbox.h) and the channel renderers (notify.h):
 * staging inside a transaction (a rollback leaves nothing), strict id
 * order per channel, the same row retried with exponential backoff on an
 * injected clock, one channel down never delaying another, refusals
 * dropped, the notifier threads woken by outbox_wake, metrics text, and
 * the e-mail / SMS / template texts.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agri/buf.h"
#include "agri/msg.h"
#include "agri/util.h"
#include "notify/notify.h"
#include "notify/outbox.h"
#include "test.h"

static char db_path[256];
static int64_t fake_now = 1750000000000;

static int64_t clock_fn(void *ctx)
{
	(void)ctx;
	return fake_now;
}

/* A fake channel: records what it got; fails while fail_left > 0. */
struct fake {
	int fail_left;
	int fail_rc;
	int64_t got[256];
	atomic_int n;
};

static int fake_deliver(void *ctx, const struct outbox_item *it, char *err, size_t len)
{
	struct fake *f = ctx;

	if (f->fail_left > 0) {
		f->fail_left--;
		snprintf(err, len, "fake down");
		return f->fail_rc;
	}
	if (atomic_load(&f->n) < 256) {
		f->got[atomic_load(&f->n)] = strtoll(strrchr(it->alert_id, '/') + 2, NULL, 10);
		atomic_fetch_add(&f->n, 1);
	}
	return 0;
}

/* A notice as the alert engine's wiring stages it for its raise. */
struct notice {
	struct agri_alert alert;
	char en[sizeof(((struct agri_alert *)0)->message)], vi[sizeof(((struct agri_alert *)0)->message)];
	struct outbox_notice no;
};

static void make_tr(struct notice *n, int seq)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->alert.rule, sizeof(n->alert.rule), "salinity");
	snprintf(n->alert.station, sizeof(n->alert.station), "DT-W01");
	snprintf(n->alert.sensor, sizeof(n->alert.sensor), "s%d", seq);
	snprintf(n->alert.id, sizeof(n->alert.id), "salinity/DT-W01/s%d", seq);
	snprintf(n->alert.metric, sizeof(n->alert.metric), "salinity");
	snprintf(n->alert.severity, sizeof(n->alert.severity), "critical");
	n->alert.state = AGRI_ALERT_ACTIVE;
	n->alert.value = 4.3;
	n->alert.has_value = true;
	n->alert.threshold = 4.0;
	n->alert.has_threshold = true;
	n->alert.raised_at_ms = n->alert.updated_at_ms = 1750000000000;
	snprintf(n->alert.message, sizeof(n->alert.message), "Salinity 4.3 g/L >= 4.0 g/L");
	snprintf(n->en, sizeof(n->en), "Salinity 4.3 g/L >= 4.0 g/L at DT-W01");
	snprintf(n->vi, sizeof(n->vi), "Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01");
	n->no = (struct outbox_notice){.alert = &n->alert, .event = "raised", .text_en = n->en,
				       .text_vi = n->vi};
}

/* The seq number at the end of the alert id is the sensor "s<seq>". */
static int64_t seq_of_alert(const char *id)
{
	return strtoll(strrchr(id, '/') + 2, NULL, 10);
}

static int64_t count_rows(sqlite3 *db, const char *where)
{
	char q[256];
	sqlite3_stmt *st;
	int64_t n = -1;

	snprintf(q, sizeof(q), "SELECT count(*) FROM outbox WHERE %s", where);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static sqlite3 *open_writer(void)
{
	sqlite3 *db = NULL;

	CHECK(sqlite3_open(db_path, &db) == SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	CHECK_INT(outbox_init(db), 0);
	return db;
}

static void stage_one(sqlite3 *db, int seq, const char *const *chans, size_t n)
{
	struct notice tr;

	make_tr(&tr, seq);
	CHECK_INT(outbox_stage(db, &tr.no, chans, n), (int)n);
}

static void test_stage_tx(void)
{
	sqlite3 *db = open_writer();
	const char *chans[] = {"ops", "mail", "ops"};
	struct notice tr;

	make_tr(&tr, 1);
	/* Rolled back: nothing. */
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	CHECK_INT(outbox_stage(db, &tr.no, chans, 3), 2); /* "ops" once */
	CHECK_INT(count_rows(db, "1"), 2);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	CHECK_INT(count_rows(db, "1"), 0);
	/* Committed: one row a channel, pending, due now. */
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	CHECK_INT(outbox_stage(db, &tr.no, chans, 3), 2);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	CHECK_INT(count_rows(db, "channel='ops' AND delivered_at IS NULL AND next_at=0"), 1);
	CHECK_INT(count_rows(db, "channel='mail' AND event='raised' AND text_vi LIKE 'Độ mặn%'"), 1);
	CHECK_INT(count_rows(db, "payload LIKE '{\"v\":1,\"id\":\"salinity/DT-W01/s1\"%'"), 2);
	/* The episode key both hubs derive alike (docs/ha.md): the alert id
	 * and its reading-time start; the transition; a severity change
	 * names its new level and when. */
	CHECK_INT(count_rows(db, "episode='salinity/DT-W01/s1@1750000000000' AND"
			     " transition='raised' AND claim IS NULL"), 2);
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	tr.no.event = "severity";
	tr.alert.updated_at_ms += 60000;
	CHECK_INT(outbox_stage(db, &tr.no, chans, 1), 1);
	tr.no.event = "renotify";
	tr.no.transition = "renotify#2";
	CHECK_INT(outbox_stage(db, &tr.no, chans, 1), 1);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	CHECK_INT(count_rows(db, "transition='severity:critical@1750000060000' AND"
			     " episode='salinity/DT-W01/s1@1750000000000'"), 1);
	CHECK_INT(count_rows(db, "transition='renotify#2'"), 1);
	tr.no.event = "raised";
	tr.no.transition = NULL;
	/* Bad names. */
	{
		const char *bad[] = {"ops", ""};

		CHECK_INT(outbox_stage(db, &tr.no, bad, 2), -EINVAL);
	}
	sqlite3_exec(db, "DELETE FROM outbox", NULL, NULL, NULL);
	sqlite3_close(db);
}

static void test_order_backoff(void)
{
	sqlite3 *db = open_writer();
	const char *a[] = {"a"}, *b[] = {"b"};
	struct fake fa = {.fail_rc = -EIO}, fb = {0};
	struct outbox_channel ch[] = {
		{.name = "a", .deliver = fake_deliver, .ctx = &fa},
		{.name = "b", .deliver = fake_deliver, .ctx = &fb},
	};
	struct outbox_options opt = {
		.backoff_base_ms = 1000, .backoff_cap_ms = 8000, .now_ms = clock_fn, .seed = 7,
	};
	struct outbox_stats s;
	struct outbox *ob;
	int64_t next, prev_delay = 0;
	int err = 0, rc;
	char metrics[8192];

	ob = outbox_new(db_path, ch, 2, &opt, &err);
	CHECK(ob != NULL);
	if (!ob)
		return;
	CHECK_INT(outbox_step(ob, 0, &next), 0);
	CHECK(next == INT64_MAX);
	for (int i = 1; i <= 10; i++) {
		stage_one(db, i, a, 1);
		stage_one(db, i, b, 1);
	}
	/* a is down for 5 attempts: the same row each time, backoff doubling
	 * (jittered into [0.5, 1) of base * 2^attempt, capped). */
	fa.fail_left = 5;
	for (int k = 0; k < 5; k++) {
		int64_t lo, hi, d;

		rc = outbox_step(ob, 0, &next);
		CHECK_INT(rc, -EIO);
		d = next - fake_now;
		hi = 1000LL << k;
		if (hi > 8000)
			hi = 8000;
		lo = hi / 2;
		CHECK(d >= lo && d < hi);
		if (k > 0 && k < 4)
			CHECK(d > prev_delay / 2);
		prev_delay = d;
		/* Not due yet: nothing happens, even asked again. */
		fake_now = next - 1;
		CHECK_INT(outbox_step(ob, 0, &next), 0);
		CHECK_INT(atomic_load(&fa.n), 0);
		fake_now = next;
		/* b is never held up by a. */
		if (k == 0)
			for (int j = 0; j < 10; j++)
				CHECK_INT(outbox_step(ob, 1, &next), 1);
	}
	CHECK_INT(atomic_load(&fb.n), 10);
	CHECK_INT(count_rows(db, "channel='a' AND attempts=5 AND error='fake down'"), 1);
	/* Back up: everything in order, once. */
	while ((rc = outbox_step(ob, 0, &next)) == 1)
		;
	CHECK_INT(rc, 0);
	CHECK_INT(atomic_load(&fa.n), 10);
	for (int i = 0; i < 10; i++)
		CHECK_INT(fa.got[i], i + 1);
	CHECK_INT(count_rows(db, "delivered_at IS NULL"), 0);
	outbox_stats(ob, 0, &s);
	CHECK_INT(s.delivered, 10);
	CHECK_INT(s.failed_attempts, 5);
	CHECK_INT(s.pending, 0);
	CHECK(s.up);
	rc = outbox_metrics_text(ob, metrics, sizeof(metrics));
	CHECK(rc > 0);
	CHECK(strstr(metrics, "agri_gateway_outbox_delivered_total{channel=\"a\"} 10\n") != NULL);
	CHECK(strstr(metrics, "agri_gateway_outbox_failed_attempts_total{channel=\"a\"} 5\n") != NULL);
	CHECK(strstr(metrics, "agri_gateway_outbox_pending{channel=\"b\"} 0\n") != NULL);
	CHECK(strstr(metrics, "# TYPE agri_gateway_outbox_up gauge\n") != NULL);
	CHECK_INT(outbox_metrics_text(ob, metrics, 100), -ENOSPC);

	/* A refusal drops the row and the next one goes out. */
	stage_one(db, 11, a, 1);
	stage_one(db, 12, a, 1);
	fa.fail_left = 1;
	fa.fail_rc = -EPERM;
	CHECK_INT(outbox_step(ob, 0, &next), 1);
	CHECK_INT(outbox_step(ob, 0, &next), 1);
	CHECK_INT(count_rows(db, "dropped_at IS NOT NULL AND error='fake down'"), 1);
	outbox_stats(ob, 0, &s);
	CHECK_INT(s.dropped, 1);
	CHECK_INT(s.delivered, 11);
	outbox_free(ob);
	sqlite3_exec(db, "DELETE FROM outbox", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* Order check on the ids the fake recorded through the alert id. */
static int order_deliver(void *ctx, const struct outbox_item *it, char *err, size_t len)
{
	struct fake *f = ctx;
	int n = atomic_load(&f->n);

	(void)err;
	(void)len;
	if (f->fail_left > 0) {
		f->fail_left--;
		return -ECONNREFUSED;
	}
	if (n < 256) {
		f->got[n] = seq_of_alert(it->alert_id);
		atomic_fetch_add(&f->n, 1);
	}
	return 0;
}

static void test_threads(void)
{
	sqlite3 *db = open_writer();
	const char *a[] = {"a"};
	struct fake fa = {.fail_left = 3};
	struct outbox_channel ch[] = {{.name = "a", .deliver = order_deliver, .ctx = &fa}};
	struct outbox_options opt = {.backoff_base_ms = 20, .backoff_cap_ms = 50, .poll_ms = 10000};
	struct outbox *ob;
	int err = 0;
	bool ordered = true;

	ob = outbox_new(db_path, ch, 1, &opt, &err);
	CHECK(ob != NULL);
	if (!ob)
		return;
	CHECK_INT(outbox_start(ob), 0);
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	for (int i = 1; i <= 100; i++)
		stage_one(db, i, a, 1);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	outbox_wake(ob); /* no wait for the 10 s poll */
	for (int i = 0; i < 300 && atomic_load(&fa.n) < 100; i++)
		usleep(10000);
	CHECK_INT(atomic_load(&fa.n), 100);
	for (int i = 0; i < 100; i++)
		if (fa.got[i] != i + 1)
			ordered = false;
	CHECK(ordered);
	outbox_free(ob);
	CHECK_INT(count_rows(db, "delivered_at IS NULL"), 0);
	sqlite3_close(db);
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

static size_t b64dec(const char *s, char *out, size_t max)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t n = 0;

	for (; *s && *s != '?'; s++) {
		int v = b64val(*s);

		if (v < 0)
			continue;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8 && n + 1 < max) {
			bits -= 8;
			out[n++] = (char)((acc >> bits) & 0xFF);
		}
	}
	out[n] = '\0';
	return n;
}

static void test_texts(void)
{
	struct notice tr;
	char payload[2048], mail[16384], body[8192], text[400], buf[1024];
	const char *to[] = {"agronomist@localhost", "lan@example.vn"};
	struct notify_message m = {.id = 42, .created_at_ms = 1750000000000,
				   .alert_id = "salinity/DT-W01/s1", .event = "raised"};
	const char *p;
	int n;

	make_tr(&tr, 1);
	n = agri_alert_encode(&tr.alert, payload, sizeof(payload));
	CHECK(n > 0);
	m.payload = payload;
	m.payload_len = (size_t)n;
	m.text_en = tr.en;
	m.text_vi = tr.vi;

	n = notify_format_email("agri@farm.vn", to, 2, &m, mail, sizeof(mail));
	CHECK(n > 0);
	CHECK(strstr(mail, "Date: Sun, 15 Jun 2025 15:06:40 +0000\r\n") == mail);
	CHECK(strstr(mail, "\r\nFrom: agri@farm.vn\r\n") != NULL);
	CHECK(strstr(mail, "\r\nTo: agronomist@localhost,\r\n lan@example.vn\r\n") != NULL);
	CHECK(strstr(mail, "\r\nMessage-ID: <agri.42.1750000000000@farm.vn>\r\n") != NULL);
	CHECK(strstr(mail, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
	p = strstr(mail, "Subject: =?UTF-8?B?");
	CHECK(p != NULL);
	if (p) {
		char subj[512] = "";
		size_t k = 0;
		const char *w = p;

		/* Concatenate the encoded words. */
		while ((w = strstr(w, "=?UTF-8?B?")) && w < strstr(p, "\r\nMessage-ID")) {
			w += 10;
			k += b64dec(w, subj + k, sizeof(subj) - k);
		}
		CHECK_STR(subj, "[agri] CRITICAL salinity DT-W01: Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01");
	}
	p = strstr(mail, "\r\n\r\n");
	CHECK(p != NULL);
	if (p) {
		b64dec(p + 4, body, sizeof(body));
		CHECK(strstr(body, "Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01\n\nSalinity 4.3") == body);
		CHECK(strstr(body, "Trạng thái / State: active\n") != NULL);
		CHECK(strstr(body, payload) != NULL);
	}
	CHECK_INT(notify_format_email("a@b", to, 2, &m, mail, 200), -ENOSPC);

	n = notify_format_sms_text(&m, text, sizeof(text));
	CHECK_STR(text, "[NGUY HIỂM] Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01");
	CHECK_INT(notify_sms_segments(text), 1);
	{
		/* The longest texts our rules write, in two segments at most. */
		static const char *const texts[] = {
			"Độ mặn 4,7‰ ≥ 4,0‰ tại DT-W03 (sonde1): đóng cống, không lấy nước cho mọi cây trồng",
			"Đỉnh Số côn trùng vào bẫy tại DT-T04 (trap1-bph): 1200 con đêm 28/03/2026, ≥ 60 con (3 × trung vị 7 đêm trước)",
			"Cảm biến sonde1 tại trạm DT-W02: Độ mặn chạm ngưỡng tối đa của đầu đo; kiểm tra: nước vượt thang đo của đầu đo (SenseCAP tối đa khoảng 12 g/L): giá trị bị chặn",
		};

		for (size_t i = 0; i < AGRI_ARRAY_SIZE(texts); i++) {
			m.text_vi = texts[i];
			n = notify_format_sms_text(&m, text, sizeof(text));
			CHECK(n > 0 && notify_sms_segments(text) <= 2);
			printf("sms %zu: %d segments, %d bytes: %s\n", i, notify_sms_segments(text), n, text);
		}
		m.text_vi = "";
		m.text_en = "Salinity 4.7 g/L >= 4.0 g/L at DT-W03";
		n = notify_format_sms_text(&m, text, sizeof(text));
		CHECK_STR(text, "[NGUY HIỂM] Salinity 4.7 g/L >= 4.0 g/L at DT-W03");
		CHECK_INT(notify_sms_segments("Salinity 4.7 g/L >= 4.0 g/L at DT-W03"), 1); /* GSM-7 */
		CHECK_INT(notify_sms_segments("Độ mặn"), 1);
		{
			char long_vi[400] = "";

			for (int i = 0; i < 80; i++)
				strcat(long_vi, "Đ");
			CHECK_INT(notify_sms_segments(long_vi), 2); /* 80 UCS-2 units: 67 + 13 */
			m.text_vi = long_vi;
			n = notify_format_sms_text(&m, text, sizeof(text));
			CHECK_INT(notify_sms_segments(text), 2);
			CHECK(n % 2 == 0 || 1); /* cut on a character boundary: */
			CHECK(((unsigned char)text[n - 1] & 0xC0) == 0x80 || (unsigned char)text[n - 1] < 0x80);
		}
	}

	n = notify_expand_template("to={to}&text={text}", "application/x-www-form-urlencoded",
				   "+84901234567", "Độ mặn 4 g/L & x", buf, sizeof(buf));
	CHECK_STR(buf, "to=%2B84901234567&text=%C4%90%E1%BB%99%20m%E1%BA%B7n%204%20g%2FL%20%26%20x");
	n = notify_expand_template("{\"to\":\"{to}\",\"text\":\"{text}\"}", "application/json",
				   "+84901234567", "Độ \"mặn\"\n\\", buf, sizeof(buf));
	CHECK_STR(buf, "{\"to\":\"+84901234567\",\"text\":\"Độ \\\"mặn\\\"\\n\\\\\"}");
	CHECK_INT(notify_expand_template("{text}{text}", "json", "", "abcdef", buf, 8), -ENOSPC);
	(void)n;
}

static void test_channels_from_config(void)
{
	struct gateway_config cfg;
	struct notify_channel *ch[NOTIFY_CHANNELS_MAX];
	const char *names[NOTIFY_CHANNELS_MAX];
	int n;

	gateway_config_defaults(&cfg);
	cfg.notify.n_webhooks = 1;
	snprintf(cfg.notify.webhooks[0].name, GW_NAME_MAX, "ops");
	snprintf(cfg.notify.webhooks[0].url, GW_URL_MAX, "http://127.0.0.1:1/hook");
	cfg.notify.has_sms = true;
	snprintf(cfg.notify.sms.name, GW_NAME_MAX, "sms");
	snprintf(cfg.notify.sms.url, GW_URL_MAX, "http://127.0.0.1:1/sms");
	cfg.notify.sms.n_to = 1;
	snprintf(cfg.notify.sms.to[0], 32, "+84901234567");
	CHECK_INT(notify_channel_names(&cfg, names, NOTIFY_CHANNELS_MAX), 2);
	CHECK_STR(names[1], "sms");
	n = notify_channels_new(&cfg, 500, ch, NOTIFY_CHANNELS_MAX);
	CHECK_INT(n, 2);
	if (n == 2) {
		struct notify_message m = {.alert_id = "x/y", .event = "raised", .payload = "{}",
					   .payload_len = 2, .text_en = "a", .text_vi = "b"};
		char err[256];

		CHECK_INT(notify_channel_kind(ch[0]), NOTIFY_WEBHOOK);
		CHECK_STR(notify_channel_name(ch[1]), "sms");
		/* Nothing listens on port 1: transient, with a reason. */
		CHECK_INT(notify_deliver(ch[0], &m, err, sizeof(err)), -ECONNREFUSED);
		CHECK(err[0] != '\0');
		CHECK_INT(notify_deliver(ch[1], &m, err, sizeof(err)), -ECONNREFUSED);
		notify_channel_free(ch[0]);
		notify_channel_free(ch[1]);
	}
	CHECK_INT(notify_channels_new(&cfg, 500, ch, 1), -ENOSPC);
}

int main(void)
{
	char dir[] = "/tmp/agri-outbox-XXXXXX";

	if (!mkdtemp(dir))
		return 2;
	snprintf(db_path, sizeof(db_path), "%s/gw.db", dir);
	test_stage_tx();
	test_order_backoff();
	test_threads();
	test_texts();
	test_channels_from_config();
	unlink(db_path);
	{
		char p[300];

		snprintf(p, sizeof(p), "%s-wal", db_path);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", db_path);
		unlink(p);
	}
	rmdir(dir);
	return test_main("test_gateway_outbox");
}
