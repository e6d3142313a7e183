/*
 * Notification channels over libcurl (see notify.h, docs/notify.md):
 * webhook (JSON POST), e-mail (SMTP) and SMS (an HTTP gateway from a URL
 * and a body template). One CURL handle a channel, reset before each
 * request so its connections are reused; results are classified once here
 * into delivered / refused for good (-EPERM) / transient.
 *
 * TLS is verified wherever it is used: libcurl's defaults (VERIFYPEER,
 * VERIFYHOST) are never turned off. SMTP requires STARTTLS (or smtps://)
 * unless notify.smtp.tls is "none", which the config allows for a
 * loopback host only; a server that offers no STARTTLS gets nothing and
 * the row stays in the outbox with the reason (docs/notify.md).
 */
#include "notify/notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agri/buf.h"
#include "agri/err.h"
#include "agri/msg.h"
#include "agri/time.h"
#include "notify/outbox.h"

#define EMAIL_MAX (64 * 1024)
#define BODY_MAX (16 * 1024)
#define SMS_REQ_MAX 4096
#define RESP_SNIPPET 120

struct notify_channel {
	enum notify_kind kind;
	char name[GW_NAME_MAX];
	char url[GW_URL_MAX];
	int64_t timeout_ms;
	CURL *curl;              /* owned by the channel's one caller thread */
	char curl_err[CURL_ERROR_SIZE];
	char resp[RESP_SNIPPET]; /* start of the last response body */
	size_t resp_len;
	union {
		struct {
			char from[GW_NAME_MAX * 2];
			size_t n_to;
			char to[GW_SMTP_TO_MAX][GW_NAME_MAX * 2];
			char username[GW_NAME_MAX];
			char password[GW_SECRET_MAX];
			bool tls_none;           /* plain SMTP: a loopback host */
			char ca_file[PATH_MAX];  /* "" = the system's CAs */
		} smtp;
		struct {
			char method[8];
			char body[GW_SMS_BODY_MAX];
			char content_type[GW_NAME_MAX * 2];
			size_t n_to;
			char to[GW_SMS_TO_MAX][32];
			char username[GW_NAME_MAX];
			char password[GW_SECRET_MAX];
		} sms;
	} u;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- channels ---------------------------------------------------------------- */

static struct notify_channel *chan_new(enum notify_kind kind, const char *name,
				       const char *url, int64_t timeout_ms)
{
	struct notify_channel *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->kind = kind;
	snprintf(ch->name, sizeof(ch->name), "%s", name);
	snprintf(ch->url, sizeof(ch->url), "%s", url);
	ch->timeout_ms = timeout_ms > 0 ? timeout_ms : NOTIFY_TIMEOUT_MS_DEFAULT;
	ch->curl = curl_easy_init();
	if (!ch->curl) {
		free(ch);
		return NULL;
	}
	return ch;
}

void notify_channel_free(struct notify_channel *ch)
{
	if (!ch)
		return;
	curl_easy_cleanup(ch->curl);
	memset(&ch->u, 0, sizeof(ch->u)); /* passwords */
	free(ch);
}

const char *notify_channel_name(const struct notify_channel *ch)
{
	return ch->name;
}

enum notify_kind notify_channel_kind(const struct notify_channel *ch)
{
	return ch->kind;
}

size_t notify_channel_names(const struct gateway_config *cfg, const char **names,
			    size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->notify.n_webhooks && n < max; i++)
		names[n++] = cfg->notify.webhooks[i].name;
	if (cfg->notify.has_smtp && n < max)
		names[n++] = cfg->notify.smtp.name;
	if (cfg->notify.has_sms && n < max)
		names[n++] = cfg->notify.sms.name;
	return n;
}

int notify_channels_new(const struct gateway_config *cfg, int64_t timeout_ms,
			struct notify_channel **out, size_t max)
{
	const struct gateway_webhook *w;
	struct notify_channel *ch;
	size_t n = 0;

	/* libcurl's global set-up initialises OpenSSL (~3 MiB resident): only
	 * when a channel will use it. */
	if (!cfg->notify.n_webhooks && !cfg->notify.has_smtp && !cfg->notify.has_sms)
		return 0;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->notify.n_webhooks; i++) {
		w = &cfg->notify.webhooks[i];
		if (n >= max)
			goto nospc;
		ch = chan_new(NOTIFY_WEBHOOK, w->name, w->url, timeout_ms);
		if (!ch)
			goto nomem;
		out[n++] = ch;
	}
	if (cfg->notify.has_smtp) {
		if (n >= max)
			goto nospc;
		ch = chan_new(NOTIFY_SMTP, cfg->notify.smtp.name, cfg->notify.smtp.url, timeout_ms);
		if (!ch)
			goto nomem;
		memcpy(ch->u.smtp.from, cfg->notify.smtp.from, sizeof(ch->u.smtp.from));
		ch->u.smtp.n_to = cfg->notify.smtp.n_to;
		memcpy(ch->u.smtp.to, cfg->notify.smtp.to, sizeof(ch->u.smtp.to));
		memcpy(ch->u.smtp.username, cfg->notify.smtp.username, sizeof(ch->u.smtp.username));
		memcpy(ch->u.smtp.password, cfg->notify.smtp.password, sizeof(ch->u.smtp.password));
		ch->u.smtp.tls_none = strcmp(cfg->notify.smtp.tls, "none") == 0;
		memcpy(ch->u.smtp.ca_file, cfg->notify.smtp.ca_file, sizeof(ch->u.smtp.ca_file));
		out[n++] = ch;
	}
	if (cfg->notify.has_sms) {
		if (n >= max)
			goto nospc;
		ch = chan_new(NOTIFY_SMS, cfg->notify.sms.name, cfg->notify.sms.url, timeout_ms);
		if (!ch)
			goto nomem;
		memcpy(ch->u.sms.method, cfg->notify.sms.method, sizeof(ch->u.sms.method));
		memcpy(ch->u.sms.body, cfg->notify.sms.body, sizeof(ch->u.sms.body));
		memcpy(ch->u.sms.content_type, cfg->notify.sms.content_type,
		       sizeof(ch->u.sms.content_type));
		ch->u.sms.n_to = cfg->notify.sms.n_to;
		memcpy(ch->u.sms.to, cfg->notify.sms.to, sizeof(ch->u.sms.to));
		memcpy(ch->u.sms.username, cfg->notify.sms.username, sizeof(ch->u.sms.username));
		memcpy(ch->u.sms.password, cfg->notify.sms.password, sizeof(ch->u.sms.password));
		out[n++] = ch;
	}
	return (int)n;
nospc:
	while (n)
		notify_channel_free(out[--n]);
	return -ENOSPC;
nomem:
	while (n)
		notify_channel_free(out[--n]);
	return -ENOMEM;
}

/* --- small text helpers ------------------------------------------------------ */

/* A header value: control characters (CR, LF) become spaces. */
static void sb_header(struct agri_buf *b, const char *s)
{
	for (; *s; s++) {
		char c = (unsigned char)*s < 0x20 ? ' ' : *s;

		agri_buf_put(b, &c, 1);
	}
}

static void sb_base64(struct agri_buf *b, const unsigned char *s, size_t n)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char q[4];

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)s[i + 1] << 8;
		if (i + 2 < n)
			v |= s[i + 2];
		q[0] = tbl[(v >> 18) & 63];
		q[1] = tbl[(v >> 12) & 63];
		q[2] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? tbl[v & 63] : '=';
		agri_buf_put(b, q, 4);
	}
}

/* Length of the longest prefix of s, at most max bytes, that ends on a
 * UTF-8 character boundary. */
static size_t utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

static void upper(char *dst, size_t len, const char *s)
{
	size_t i = 0;

	for (; s[i] && i + 1 < len; i++)
		dst[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
	dst[i] = '\0';
}

/* --- e-mail ------------------------------------------------------------------- */

static void rfc5322_date(int64_t ms, char *buf, size_t len)
{
	static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
		 tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

/* RFC 2047: "=?UTF-8?B?...?=" words of at most 45 bytes (whole
 * characters), folded. */
static void sb_encoded_words(struct agri_buf *b, const char *s)
{
	size_t n = strlen(s);
	bool first = true;

	while (n > 0) {
		size_t k = utf8_cut(s, 45);

		if (k == 0)
			k = n < 45 ? n : 45;
		if (!first)
			agri_buf_puts(b, "\r\n ");
		agri_buf_puts(b, "=?UTF-8?B?");
		sb_base64(b, (const unsigned char *)s, k);
		agri_buf_puts(b, "?=");
		s += k;
		n -= k;
		first = false;
	}
}

static void mail_domain(const char *from, char *buf, size_t len)
{
	const char *at = strrchr(from, '@');
	size_t i = 0;

	if (at)
		for (at++; *at && *at != '>' && i + 1 < len; at++)
			if (*at > ' ')
				buf[i++] = *at;
	buf[i] = '\0';
	if (!buf[0])
		snprintf(buf, len, "agri-gateway");
}

/* A person's message: the payload says their language. */
static bool person_lang_en(const struct notify_message *m)
{
	return m->payload && strstr(m->payload, "\"lang\":\"en\"") != NULL;
}

/* The e-mail of a person's message (docs/notify.md "People"): the
 * subject is the first line of their language's text, the body that text
 * then the other language's. */
static int format_person_email(const char *from, const char *const *to, size_t n_to,
			       const struct notify_message *m, char *out, size_t len)
{
	struct agri_buf b;
	struct agri_buf body = AGRI_BUF_HEAP(BODY_MAX);
	bool en = person_lang_en(m);
	const char *first = en ? m->text_en : m->text_vi, *second = en ? m->text_vi : m->text_en;
	char date[64], dom[128], subject[400];
	size_t line = strcspn(first, "\n"), cut = utf8_cut(first, line < 200 ? line : 200);

	agri_buf_init(&b, out, len);
	snprintf(subject, sizeof(subject), "[agri] %.*s", (int)(cut < line ? cut : line), first);
	rfc5322_date(m->created_at_ms, date, sizeof(date));
	mail_domain(from, dom, sizeof(dom));
	agri_buf_puts(&b, "Date: ");
	agri_buf_puts(&b, date);
	agri_buf_puts(&b, "\r\nFrom: ");
	sb_header(&b, from);
	agri_buf_puts(&b, "\r\nTo: ");
	for (size_t i = 0; i < n_to; i++) {
		if (i)
			agri_buf_puts(&b, ",\r\n ");
		sb_header(&b, to[i]);
	}
	agri_buf_puts(&b, "\r\nSubject: ");
	sb_encoded_words(&b, subject);
	/* the message's stable id: the same mail from a resend or another hub */
	agri_buf_puts(&b, "\r\nMessage-ID: <agri.");
	for (const char *c = m->alert_id; *c; c++)
		agri_buf_put(&b, (*c == '/' || *c == ':' || *c == '<' || *c == '>' ||
				  (unsigned char)*c < 0x21) ? "." : c, 1);
	agri_buf_printf(&b, "@%s>\r\n", dom);
	agri_buf_puts(&b, "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: base64\r\n"
		   "X-Agri-Message: ");
	sb_header(&b, m->alert_id);
	agri_buf_puts(&b, "\r\nX-Agri-Event: ");
	sb_header(&b, m->event);
	agri_buf_puts(&b, "\r\n\r\n");
	agri_buf_puts(&body, first);
	agri_buf_puts(&body, "\n\n--\n");
	agri_buf_puts(&body, second);
	agri_buf_puts(&body, "\n");
	for (size_t i = 0; !body.err && i < body.len; i += 57) {
		size_t k = body.len - i < 57 ? body.len - i : 57;

		sb_base64(&b, (const unsigned char *)body.p + i, k);
		agri_buf_puts(&b, "\r\n");
	}
	agri_buf_free(&body);
	return body.err ? body.err : agri_buf_end(&b);
}

int notify_format_email(const char *from, const char *const *to, size_t n_to,
			const struct notify_message *m, char *out, size_t len)
{
	struct agri_buf b;
	struct agri_buf body = AGRI_BUF_HEAP(BODY_MAX);
	struct agri_alert a;
	struct agri_err err;
	char sev[16], date[64], dom[128], subject[400], t1[40], t2[40];
	bool have = agri_alert_decode(m->payload, m->payload_len, &a, &err) == 0;
	size_t cut;

	if (!len)
		return -ENOSPC;
	if (m->person && m->person[0])
		return format_person_email(from, to, n_to, m, out, len);
	agri_buf_init(&b, out, len);

	upper(sev, sizeof(sev), have ? a.severity : "alert");
	cut = utf8_cut(m->text_vi[0] ? m->text_vi : m->text_en, 200);
	snprintf(subject, sizeof(subject), "[agri] %s %s %s: %.*s", sev,
		 have ? a.rule : m->alert_id, have ? a.station : "", (int)cut,
		 m->text_vi[0] ? m->text_vi : m->text_en);
	rfc5322_date(m->created_at_ms, date, sizeof(date));
	mail_domain(from, dom, sizeof(dom));

	agri_buf_puts(&b, "Date: ");
	agri_buf_puts(&b, date);
	agri_buf_puts(&b, "\r\nFrom: ");
	sb_header(&b, from);
	agri_buf_puts(&b, "\r\nTo: ");
	for (size_t i = 0; i < n_to; i++) {
		if (i)
			agri_buf_puts(&b, ",\r\n ");
		sb_header(&b, to[i]);
	}
	agri_buf_puts(&b, "\r\nSubject: ");
	sb_encoded_words(&b, subject);
	agri_buf_printf(&b, "\r\nMessage-ID: <agri.%" PRId64 ".%" PRId64 "@%s>\r\n", m->id,
	       m->created_at_ms, dom);
	agri_buf_puts(&b, "MIME-Version: 1.0\r\n"
		   "Content-Type: text/plain; charset=utf-8\r\n"
		   "Content-Transfer-Encoding: base64\r\n"
		   "X-Agri-Alert: ");
	sb_header(&b, m->alert_id);
	agri_buf_puts(&b, "\r\nX-Agri-Event: ");
	sb_header(&b, m->event);
	agri_buf_puts(&b, "\r\n\r\n");

	/* The body: Vietnamese, English, then the facts and the JSON. */
	agri_buf_puts(&body, m->text_vi);
	agri_buf_puts(&body, "\n\n");
	agri_buf_puts(&body, m->text_en);
	agri_buf_puts(&body, "\n\n");
	if (have) {
		agri_buf_printf(&body, "Cảnh báo / Alert: %s\n", a.id);
		agri_buf_printf(&body, "Sự kiện / Event: %s\n", m->event);
		agri_buf_printf(&body, "Trạng thái / State: %s\n", agri_alert_state_name(a.state));
		agri_buf_printf(&body, "Mức độ / Severity: %s\n", a.severity);
		agri_buf_printf(&body, "Trạm / Station: %s%s%s\n", a.station, a.sensor[0] ? " / " : "",
		       a.sensor);
		if (a.has_value)
			agri_buf_printf(&body, "Giá trị / Value: %g (%s)\n", a.value, a.metric);
		if (a.has_threshold)
			agri_buf_printf(&body, "Ngưỡng / Threshold: %g\n", a.threshold);
		if (agri_time_format(a.raised_at_ms, t1, sizeof(t1)) >= 0 &&
		    agri_time_format(a.updated_at_ms, t2, sizeof(t2)) >= 0)
			agri_buf_printf(&body, "Bắt đầu / Raised: %s\nCập nhật / Updated: %s\n", t1, t2);
		agri_buf_puts(&body, "\n");
	}
	agri_buf_put(&body, m->payload, m->payload_len);
	agri_buf_puts(&body, "\n");

	for (size_t i = 0; !body.err && i < body.len; i += 57) {
		size_t k = body.len - i < 57 ? body.len - i : 57;

		sb_base64(&b, (const unsigned char *)body.p + i, k);
		agri_buf_puts(&b, "\r\n");
	}
	agri_buf_free(&body);
	return body.err ? body.err : agri_buf_end(&b);
}

/* --- SMS ------------------------------------------------------------------------ */

/* GSM 03.38's basic set (7 bits a character; the few that take two in the
 * extension table are counted as two). */
static size_t gsm7_units(const char *s)
{
	static const char basic[] = "@$\n\r !\"#%&'()*+,-./0123456789:;<=>?"
				    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
	static const char ext[] = "^{}\\[~]|";
	size_t n = 0;

	for (; *s; s++) {
		if (*s && strchr(ext, *s))
			n += 2;
		else if (*s && strchr(basic, *s))
			n++;
		else
			return SIZE_MAX; /* not GSM-7: the message goes as UCS-2 */
	}
	return n;
}

/* UTF-16 code units of s (UCS-2 SMS). */
static size_t utf16_units(const char *s)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			n += *p >= 0xF0 ? 2 : 1; /* a 4-byte sequence is a surrogate pair */
	return n;
}

int notify_sms_segments(const char *s)
{
	size_t n = gsm7_units(s);

	if (n != SIZE_MAX)
		return n <= 160 ? 1 : (int)((n + 152) / 153);
	n = utf16_units(s);
	return n <= 70 ? 1 : (int)((n + 66) / 67);
}

/* The longest prefix of s (a character boundary) within max UTF-16 units. */
static size_t utf16_cut(const char *s, size_t max)
{
	size_t n = 0, i = 0, last = 0;

	for (; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c & 0xC0) == 0x80)
			continue;
		last = i;
		n += c >= 0xF0 ? 2 : 1;
		if (n > max)
			return last;
	}
	return i;
}

int notify_format_sms_text(const struct notify_message *m, char *buf, size_t len)
{
	static const char *const sev[][2] = {{"info", "THÔNG TIN"}, {"warning", "CẢNH BÁO"},
					     {"alarm", "BÁO ĐỘNG"}, {"critical", "NGUY HIỂM"}};
	struct agri_alert a;
	struct agri_err err;
	const char *label = "CẢNH BÁO";
	const char *text = m->text_vi[0] ? m->text_vi : m->text_en;
	size_t cut;
	int w;

	if (!len)
		return -ENOSPC;
	if (m->person && m->person[0] && m->sms && m->sms[0]) {
		/* a person's message brings its own SMS form (two segments) */
		w = snprintf(buf, len, "%s", m->sms);
		if (w < 0)
			return -ENOSPC;
		cut = utf16_cut(buf, NOTIFY_SMS_UNITS_MAX);
		if (cut >= len)
			cut = utf8_cut(buf, len - 1);
		buf[cut] = '\0';
		return (int)cut;
	}
	if (agri_alert_decode(m->payload, m->payload_len, &a, &err) == 0)
		for (size_t i = 0; i < AGRI_ARRAY_SIZE(sev); i++)
			if (!strcmp(a.severity, sev[i][0]))
				label = sev[i][1];
	/* Vietnamese only, in at most two segments (diacritics make it UCS-2:
	 * 2 x 67 UTF-16 units), cut on a character boundary. */
	w = snprintf(buf, len, "[%s] %s", label, text);
	if (w < 0)
		return -ENOSPC;
	cut = utf16_cut(buf, NOTIFY_SMS_UNITS_MAX);
	if (cut >= len)
		cut = utf8_cut(buf, len - 1);
	buf[cut] = '\0';
	return (int)cut;
}

static void sb_urlenc(struct agri_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~') {
			agri_buf_put(b, s, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};

			agri_buf_put(b, e, 3);
		}
	}
}

int notify_expand_template(const char *tmpl, const char *content_type,
			   const char *to, const char *text, char *buf, size_t len)
{
	struct agri_buf b;
	bool json = content_type && strstr(content_type, "json");

	if (!len)
		return -ENOSPC;
	agri_buf_init(&b, buf, len);
	while (*tmpl) {
		const char *v = NULL;
		size_t skip = 0;

		if (strncmp(tmpl, "{to}", 4) == 0) {
			v = to;
			skip = 4;
		} else if (strncmp(tmpl, "{text}", 6) == 0) {
			v = text;
			skip = 6;
		}
		if (v) {
			if (json)
				agri_buf_json_inner(&b, v);
			else
				sb_urlenc(&b, v);
			tmpl += skip;
		} else {
			agri_buf_put(&b, tmpl, 1);
			tmpl++;
		}
	}
	return agri_buf_end(&b);
}

/* --- libcurl ----------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
	struct notify_channel *ch = ctx;
	size_t len = size * n, room = sizeof(ch->resp) - 1 - ch->resp_len;
	size_t k = len < room ? len : room;

	memcpy(ch->resp + ch->resp_len, p, k);
	ch->resp_len += k;
	ch->resp[ch->resp_len] = '\0';
	return len;
}

static void common_opts(struct notify_channel *ch)
{
	CURL *c = ch->curl;

	curl_easy_reset(c); /* keeps the live connections */
	ch->curl_err[0] = '\0';
	ch->resp[0] = '\0';
	ch->resp_len = 0;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ch->curl_err);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ch->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(ch->timeout_ms < 5000 ? ch->timeout_ms : 5000));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, ch);
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	case CURLE_LOGIN_DENIED: return -EACCES;
	default: return -EIO;
	}
}

/* HTTP statuses that blame the message, not the channel: retrying the
 * same request cannot succeed. Auth, missing URLs, rate limits and server
 * errors are the channel's and are retried. */
static bool http_permanent(long code)
{
	switch (code) {
	case 400: case 405: case 406: case 410: case 411: case 413: case 414:
	case 415: case 422:
		return true;
	default:
		return false;
	}
}

static int http_result(struct notify_channel *ch, CURLcode rc, char *err, size_t err_len)
{
	long code = 0;
	size_t i;

	if (rc != CURLE_OK) {
		snprintf(err, err_len, "%s", ch->curl_err[0] ? ch->curl_err : curl_easy_strerror(rc));
		return curl_errno(rc);
	}
	curl_easy_getinfo(ch->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300)
		return 0;
	for (i = 0; i < ch->resp_len; i++)
		if ((unsigned char)ch->resp[i] < 0x20 || ch->resp[i] == '"')
			ch->resp[i] = ' ';
	snprintf(err, err_len, "HTTP %ld %s", code, ch->resp);
	return http_permanent(code) ? -EPERM : -EIO;
}

static int deliver_webhook(struct notify_channel *ch, const struct notify_message *m,
			   char *err, size_t err_len)
{
	struct curl_slist *h = NULL, *t;
	char hdr[256];
	CURLcode rc;
	int ret;

	common_opts(ch);
	curl_easy_setopt(ch->curl, CURLOPT_URL, ch->url);
	curl_easy_setopt(ch->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(ch->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(ch->curl, CURLOPT_POSTFIELDS, m->payload);
	curl_easy_setopt(ch->curl, CURLOPT_POSTFIELDSIZE, (long)m->payload_len);
	h = curl_slist_append(h, "Content-Type: application/json");
	snprintf(hdr, sizeof(hdr), "X-Agri-Delivery: %" PRId64 ".%" PRId64, m->id,
		 m->created_at_ms);
	if (h && (t = curl_slist_append(h, hdr)))
		h = t;
	snprintf(hdr, sizeof(hdr), "X-Agri-Event: %s", m->event);
	if (h && (t = curl_slist_append(h, hdr)))
		h = t;
	if (m->episode && m->episode[0] && !(m->person && m->person[0])) {
		/* the alert's episode key, the same from either hub (docs/ha.md) */
		snprintf(hdr, sizeof(hdr), "X-Agri-Episode: %s", m->episode);
		if (h && (t = curl_slist_append(h, hdr)))
			h = t;
	}
	if (m->person && m->person[0]) {
		/* a person's message: its stable id, the same from any hub */
		snprintf(hdr, sizeof(hdr), "X-Agri-Message: %s", m->alert_id);
		if (h && (t = curl_slist_append(h, hdr)))
			h = t;
		snprintf(hdr, sizeof(hdr), "X-Agri-Person: %s", m->person);
		if (h && (t = curl_slist_append(h, hdr)))
			h = t;
	}
	if (h && (t = curl_slist_append(h, "Expect:")))
		h = t;
	if (!h) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	curl_easy_setopt(ch->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(ch->curl, CURLOPT_USERAGENT, "agri-gateway");
	rc = curl_easy_perform(ch->curl);
	ret = http_result(ch, rc, err, err_len);
	curl_easy_setopt(ch->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	return ret;
}

struct upload {
	const char *p;
	size_t len, pos;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ctx)
{
	struct upload *u = ctx;
	size_t k = size * n;

	if (k > u->len - u->pos)
		k = u->len - u->pos;
	memcpy(buf, u->p + u->pos, k);
	u->pos += k;
	return k;
}

static int deliver_smtp(struct notify_channel *ch, const struct notify_message *m,
			char *err, size_t err_len)
{
	const char *to[GW_SMTP_TO_MAX];
	struct curl_slist *rcpt = NULL, *t;
	struct upload up = {0};
	char addr[GW_NAME_MAX * 2 + 4];
	char *msg = malloc(EMAIL_MAX);
	size_t n_to = ch->u.smtp.n_to;
	long code = 0;
	CURLcode rc;
	int ret;

	if (!msg) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_to; i++)
		to[i] = ch->u.smtp.to[i];
	if (m->address && m->address[0]) { /* a person's own address */
		to[0] = m->address;
		n_to = 1;
	}
	ret = notify_format_email(ch->u.smtp.from, to, n_to, m, msg, EMAIL_MAX);
	if (ret < 0) {
		snprintf(err, err_len, "message too large");
		free(msg);
		return -EPERM;
	}
	up.p = msg;
	up.len = (size_t)ret;
	for (size_t i = 0; i < n_to; i++) {
		snprintf(addr, sizeof(addr), "<%s>", to[i]);
		t = curl_slist_append(rcpt, addr);
		if (!t) {
			curl_slist_free_all(rcpt);
			free(msg);
			snprintf(err, err_len, "out of memory");
			return -ENOMEM;
		}
		rcpt = t;
	}
	common_opts(ch);
	curl_easy_setopt(ch->curl, CURLOPT_URL, ch->url);
	curl_easy_setopt(ch->curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	snprintf(addr, sizeof(addr), "<%s>", ch->u.smtp.from);
	curl_easy_setopt(ch->curl, CURLOPT_MAIL_FROM, addr);
	curl_easy_setopt(ch->curl, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(ch->curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(ch->curl, CURLOPT_READDATA, &up);
	curl_easy_setopt(ch->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(ch->curl, CURLOPT_INFILESIZE, (long)up.len);
	if (ch->u.smtp.username[0]) {
		curl_easy_setopt(ch->curl, CURLOPT_USERNAME, ch->u.smtp.username);
		curl_easy_setopt(ch->curl, CURLOPT_PASSWORD, ch->u.smtp.password);
	}
	/* STARTTLS required (smtps:// is TLS from the start): a server, or a
	 * man in the middle, that does not offer it gets neither the alert
	 * nor the password. Opportunistic TLS (CURLUSESSL_TRY) would let
	 * anyone on the path strip it. */
	curl_easy_setopt(ch->curl, CURLOPT_USE_SSL,
			 (long)(ch->u.smtp.tls_none ? CURLUSESSL_NONE : CURLUSESSL_ALL));
	if (ch->u.smtp.ca_file[0])
		curl_easy_setopt(ch->curl, CURLOPT_CAINFO, ch->u.smtp.ca_file);
	rc = curl_easy_perform(ch->curl);
	curl_easy_getinfo(ch->curl, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_setopt(ch->curl, CURLOPT_MAIL_RCPT, NULL);
	curl_slist_free_all(rcpt);
	free(msg);
	if (rc == CURLE_OK)
		return 0;
	if (rc == CURLE_USE_SSL_FAILED) {
		snprintf(err, err_len, "the server offers no STARTTLS (notify.smtp.tls is"
			 " \"required\"): nothing sent");
		return -EIO; /* the channel's, not this message's: kept, retried */
	}
	snprintf(err, err_len, "SMTP %ld %s", code,
		 ch->curl_err[0] ? ch->curl_err : curl_easy_strerror(rc));
	/* 5yz is a permanent refusal (RFC 5321 §4.2.1), except authentication,
	 * which is the channel's configuration, not this message. */
	if (code >= 500 && code < 600 && code != 530 && code != 534 && code != 535 &&
	    code != 538 && rc != CURLE_LOGIN_DENIED)
		return -EPERM;
	return curl_errno(rc);
}

static int deliver_sms(struct notify_channel *ch, const struct notify_message *m,
		       char *err, size_t err_len)
{
	char text[NOTIFY_SMS_TEXT_MAX + 64];
	char *url = NULL, *body = NULL;
	struct curl_slist *h = NULL;
	char ct[GW_NAME_MAX * 2 + 16];
	bool get = strcmp(ch->u.sms.method, "GET") == 0;
	int ret = 0;

	if (notify_format_sms_text(m, text, sizeof(text)) < 0) {
		snprintf(err, err_len, "text too long");
		return -EPERM;
	}
	url = malloc(SMS_REQ_MAX);
	body = malloc(SMS_REQ_MAX);
	snprintf(ct, sizeof(ct), "Content-Type: %s", ch->u.sms.content_type);
	h = curl_slist_append(NULL, ct);
	if (!url || !body || !h) {
		snprintf(err, err_len, "out of memory");
		ret = -ENOMEM;
		goto out;
	}
	/* One request a recipient; a failure retries the whole row (the
	 * recipients before it may get the text twice). */
	for (size_t i = 0; i < (m->address && m->address[0] ? 1 : ch->u.sms.n_to); i++) {
		const char *num = m->address && m->address[0] ? m->address : ch->u.sms.to[i];
		CURLcode rc;

		if (notify_expand_template(ch->url, NULL, num, text, url, SMS_REQ_MAX) < 0 ||
		    notify_expand_template(ch->u.sms.body, ch->u.sms.content_type, num, text, body,
					   SMS_REQ_MAX) < 0) {
			snprintf(err, err_len, "request too long");
			ret = -EPERM;
			goto out;
		}
		common_opts(ch);
		curl_easy_setopt(ch->curl, CURLOPT_URL, url);
		curl_easy_setopt(ch->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(ch->curl, CURLOPT_USERAGENT, "agri-gateway");
		if (!get) {
			curl_easy_setopt(ch->curl, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(ch->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
			curl_easy_setopt(ch->curl, CURLOPT_CUSTOMREQUEST, ch->u.sms.method);
			curl_easy_setopt(ch->curl, CURLOPT_HTTPHEADER, h);
		}
		if (ch->u.sms.username[0]) {
			curl_easy_setopt(ch->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
			curl_easy_setopt(ch->curl, CURLOPT_USERNAME, ch->u.sms.username);
			curl_easy_setopt(ch->curl, CURLOPT_PASSWORD, ch->u.sms.password);
		}
		rc = curl_easy_perform(ch->curl);
		curl_easy_setopt(ch->curl, CURLOPT_HTTPHEADER, NULL);
		ret = http_result(ch, rc, err, err_len);
		if (ret < 0)
			goto out;
	}
out:
	curl_slist_free_all(h);
	free(url);
	free(body);
	return ret;
}

int notify_deliver(struct notify_channel *ch, const struct notify_message *m,
		   char *err, size_t err_len)
{
	if (err_len)
		err[0] = '\0';
	switch (ch->kind) {
	case NOTIFY_WEBHOOK: return deliver_webhook(ch, m, err, err_len);
	case NOTIFY_SMTP: return deliver_smtp(ch, m, err, err_len);
	case NOTIFY_SMS: return deliver_sms(ch, m, err, err_len);
	}
	return -EINVAL;
}

int notify_outbox_deliver(void *ctx, const struct outbox_item *it, char *err,
			  size_t err_len)
{
	struct notify_message m = {
		.id = it->id,
		.created_at_ms = it->created_at_ms,
		.alert_id = it->alert_id,
		.event = it->event,
		.payload = it->payload,
		.payload_len = it->payload_len,
		.text_en = it->text_en,
		.text_vi = it->text_vi,
		.person = it->person,
		.address = it->address,
		.sms = it->sms,
		.episode = it->episode,
	};

	return notify_deliver(ctx, &m, err, err_len);
}
