/*
 * What the policy's messages say (see policy_int.h, docs/notify.md
 * "Messages"): the texts of each item, a group of items as one message
 * ("3 kênh ≥ 4 g/L: ..."), and the morning bulletin, each in a long form
 * (both languages: e-mail, webhook, dashboard) and an SMS form in the
 * person's language that fits two UCS-2 segments. Pure: no SQL, no clock.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agri/time.h"
#include "notify/policy_int.h"

#define ELLIPSIS "…"

/* --- formatting ------------------------------------------------------------------ */

void policy_fmt_num(char *buf, size_t len, double v, bool en)
{
	char *dot;

	snprintf(buf, len, fabs(v) >= 10 ? "%.1f" : "%.2f", v);
	if ((dot = strchr(buf, '.'))) {
		size_t n = strlen(buf);

		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
		if (!en && (dot = strchr(buf, '.')))
			*dot = ',';
	}
	if (strcmp(buf, "-0") == 0)
		snprintf(buf, len, "0");
}

static void local_tm(int64_t ms, int64_t off_min, int *y, int *mo, int *d, int *h, int *mi)
{
	int64_t l = ms + off_min * 60000;
	int64_t day = l >= 0 ? l / 86400000 : -((-l + 86399999) / 86400000);
	int64_t in = l - day * 86400000;

	rules_civil_from_days(day, y, mo, d);
	*h = (int)(in / 3600000);
	*mi = (int)(in / 60000 % 60);
}

void policy_fmt_clock(char *buf, size_t len, int64_t ms, int64_t off)
{
	int y, mo, d, h, mi;

	local_tm(ms, off, &y, &mo, &d, &h, &mi);
	snprintf(buf, len, "%02d:%02d", h, mi);
}

void policy_fmt_date(char *buf, size_t len, int64_t ms, int64_t off)
{
	int y, mo, d, h, mi;

	local_tm(ms, off, &y, &mo, &d, &h, &mi);
	snprintf(buf, len, "%02d/%02d", d, mo);
}

/* A window's times on the safe side: the start rounded up to the minute,
 * the end down. */
static void fmt_span(char *buf, size_t len, int64_t from, int64_t to, int64_t off,
		     const char *dash)
{
	char a[8], b[8];

	policy_fmt_clock(a, sizeof(a), (from + 59999) / 60000 * 60000, off);
	policy_fmt_clock(b, sizeof(b), to / 60000 * 60000, off);
	snprintf(buf, len, "%s%s%s", a, dash, b);
}

/* A window in the bulletin's day [b, b + 24 h): clock times on the safe
 * side, "now" for one already open, "on" for one lasting past the day.
 * vi, en: the long forms; sms: the short one in the person's language. */
static void day_span(char *vi, char *en, char *sms, size_t len, int64_t from, int64_t to,
		     int64_t b, int64_t off, bool sms_en)
{
	char a[8], z[8];
	bool begun = from <= b, on = to >= b + 86400000LL;

	policy_fmt_clock(a, sizeof(a), (from + 59999) / 60000 * 60000, off);
	policy_fmt_clock(z, sizeof(z), to / 60000 * 60000, off);
	if (begun && on) {
		snprintf(vi, len, "cả 24 giờ");
		snprintf(en, len, "all 24 h");
		snprintf(sms, len, "%s", sms_en ? "all day" : "cả ngày");
	} else if (begun) {
		snprintf(vi, len, "đang mở đến %s", z);
		snprintf(en, len, "open now until %s", z);
		snprintf(sms, len, sms_en ? "now-%s" : "đến %s", z);
	} else if (on) {
		snprintf(vi, len, "từ %s trở đi", a);
		snprintf(en, len, "from %s on", a);
		snprintf(sms, len, sms_en ? "from %s" : "từ %s", a);
	} else {
		snprintf(vi, len, "%s–%s", a, z);
		snprintf(en, len, "%s–%s", a, z);
		snprintf(sms, len, "%s-%s", a, z);
	}
}

void policy_short_place(char *buf, size_t len, const char *place)
{
	const char *paren = strstr(place, " (");
	size_t n = paren ? (size_t)(paren - place) : strlen(place);

	snprintf(buf, len, "%.*s", (int)n, place);
}

size_t policy_utf16_units(const char *s)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if ((*p & 0xC0) != 0x80)
			n += *p >= 0xF0 ? 2 : 1;
	return n;
}

void policy_sms_fit(char *s, size_t max)
{
	size_t n = 0, i = 0, cut = 0;

	if (policy_utf16_units(s) <= max)
		return;
	/* keep max - 1 units, then the ellipsis (one unit) */
	for (; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c & 0xC0) == 0x80)
			continue;
		if (n + (c >= 0xF0 ? 2 : 1) > max - 1)
			break;
		n += c >= 0xF0 ? 2 : 1;
		cut = i + 1;
		while (s[cut] && ((unsigned char)s[cut] & 0xC0) == 0x80)
			cut++;
	}
	while (cut > 0 && (s[cut - 1] == ' ' || s[cut - 1] == ';' || s[cut - 1] == ','))
		cut--;
	memcpy(s + cut, ELLIPSIS, sizeof(ELLIPSIS));
}

/* --- items ----------------------------------------------------------------------- */

static const char *js(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum_(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool jb(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void put(cJSON *o, const char *k, const char *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, k);
	cJSON_AddStringToObject(o, k, v);
}

int compose_item(const struct policy *pol, const struct recipient *r, cJSON *it)
{
	int64_t off = pol->people.utc_offset_min;
	const char *kind = js(it, "kind"), *place = js(it, "place")[0] ? js(it, "place")
							   : js(it, "station");
	const char *rule = js(it, "rule");
	char shortp[96], lvi[24], len_[24], vvi[24], ven[24], hm[8], dm[8];
	char vi[1024], en[1024], svi[512], sen[512], pvi[160], pen[160], grp[200];
	const char *late_vi = jb(it, "late") ? " (báo muộn)" : "";
	const char *late_en = jb(it, "late") ? " (late report)" : "";
	bool sal = jb(it, "salinity");

	(void)r;
	policy_short_place(shortp, sizeof(shortp), place);
	policy_fmt_num(lvi, sizeof(lvi), jnum_(it, "level"), false);
	policy_fmt_num(len_, sizeof(len_), jnum_(it, "level"), true);
	policy_fmt_num(vvi, sizeof(vvi), jnum_(it, "value"), false);
	policy_fmt_num(ven, sizeof(ven), jnum_(it, "value"), true);
	policy_fmt_clock(hm, sizeof(hm), (int64_t)jnum_(it, "at"), off);
	policy_fmt_date(dm, sizeof(dm), (int64_t)jnum_(it, "at"), off);
	snprintf(grp, sizeof(grp), "%s:%s", kind, js(it, "alert"));
	pvi[0] = pen[0] = '\0';

	if ((!strcmp(kind, "crossing") || !strcmp(kind, "recross")) && sal) {
		snprintf(vi, sizeof(vi), "Độ mặn tại %s lên %s g/L, vượt %s g/L lúc %s: %s%s.", place,
			 vvi, lvi, hm, js(it, "label_vi"), late_vi);
		snprintf(en, sizeof(en), "Salinity at %s rose to %s g/L, above %s g/L at %s: %s%s.",
			 place, ven, len_, hm, js(it, "label_en"), late_en);
		snprintf(svi, sizeof(svi), "Mặn ≥%s g/L: %s %s lúc %s (%s)%s", lvi, shortp, vvi, hm,
			 js(it, "label_vi"), late_vi);
		snprintf(sen, sizeof(sen), "Salinity >=%s g/L: %s %s at %s (%s)%s", len_, shortp, ven,
			 hm, js(it, "label_en"), late_en);
		snprintf(pvi, sizeof(pvi), "%s %s", shortp, vvi);
		snprintf(pen, sizeof(pen), "%s %s", shortp, ven);
		snprintf(grp, sizeof(grp), "sal:%s", len_);
		put(it, "gvi", "kênh");
		put(it, "gen", "canals");
		put(it, "glvi", lvi);
		put(it, "glen", len_);
	} else if (!strcmp(kind, "clear") && sal) {
		char since[16];

		policy_fmt_clock(since, sizeof(since), (int64_t)jnum_(it, "since"), off);
		policy_fmt_date(dm, sizeof(dm), (int64_t)jnum_(it, "since"), off);
		snprintf(vi, sizeof(vi), "Hết mặn tại %s: dưới %s g/L suốt một ngày triều (từ %s %s).",
			 place, lvi, since, dm);
		snprintf(en, sizeof(en), "All clear at %s: below %s g/L for a whole tidal day (since %s %s).",
			 place, len_, since, dm);
		snprintf(svi, sizeof(svi), "Hết mặn %s: dưới %s g/L suốt 1 ngày triều", shortp, lvi);
		snprintf(sen, sizeof(sen), "All clear %s: below %s g/L for a tidal day", shortp, len_);
	} else if (!strcmp(kind, "clear")) {
		snprintf(vi, sizeof(vi), "Đã hết %s tại %s suốt một ngày triều.", rule, place);
		snprintf(en, sizeof(en), "All clear: %s at %s for a whole tidal day.", rule, place);
		snprintf(svi, sizeof(svi), "Đã hết %s %s", rule, shortp);
		snprintf(sen, sizeof(sen), "All clear %s %s", rule, shortp);
	} else if (!strcmp(kind, "flapping")) {
		char h[16];

		policy_fmt_num(h, sizeof(h), jnum_(it, "window_h"), false);
		snprintf(vi, sizeof(vi), "%s tại %s chập chờn: %d lần bật/tắt trong %s giờ; tạm không báo"
			 " đến khi ổn định.", rule, place, (int)jnum_(it, "changes"), h);
		policy_fmt_num(h, sizeof(h), jnum_(it, "window_h"), true);
		snprintf(en, sizeof(en), "%s at %s is flapping: %d changes in %s h; quiet until it is"
			 " stable.", rule, place, (int)jnum_(it, "changes"), h);
		snprintf(svi, sizeof(svi), "%s %s chập chờn, tạm không báo", rule, shortp);
		snprintf(sen, sizeof(sen), "%s %s flapping, quiet until stable", rule, shortp);
	} else if (!strcmp(kind, "stable")) {
		bool on = jb(it, "active");

		snprintf(vi, sizeof(vi), "%s tại %s đã ổn định: %s%s", rule, place,
			 on ? "vẫn đang báo: " : "đã hết.", on ? js(it, "msg_vi") : "");
		snprintf(en, sizeof(en), "%s at %s is stable again: %s%s", rule, place,
			 on ? "still active: " : "clear.", on ? js(it, "msg_en") : "");
		snprintf(svi, sizeof(svi), "%s %s ổn định: %s", rule, shortp, on ? "đang báo" : "đã hết");
		snprintf(sen, sizeof(sen), "%s %s stable: %s", rule, shortp, on ? "active" : "clear");
	} else if (!strcmp(kind, "window-moved") || !strcmp(kind, "window-cancelled")) {
		char old_vi[24], old_en[24], nw_vi[24], nw_en[24];
		bool moved = !strcmp(kind, "window-moved");

		fmt_span(old_vi, sizeof(old_vi), (int64_t)jnum_(it, "old_from"), (int64_t)jnum_(it, "old_to"),
			 off, "–");
		fmt_span(old_en, sizeof(old_en), (int64_t)jnum_(it, "old_from"), (int64_t)jnum_(it, "old_to"),
			 off, "-");
		fmt_span(nw_vi, sizeof(nw_vi), (int64_t)jnum_(it, "from"), (int64_t)jnum_(it, "to"), off, "–");
		fmt_span(nw_en, sizeof(nw_en), (int64_t)jnum_(it, "from"), (int64_t)jnum_(it, "to"), off, "-");
		if (moved) {
			snprintf(vi, sizeof(vi), "Cửa sổ lấy nước dưới %s g/L tại %s dời: %s → %s%s (dự báo"
				 " mới).", lvi, place, old_vi, nw_vi,
				 jnum_(it, "gap_min") > 0 ? ", có quãng mặn ở giữa" : "");
			snprintf(en, sizeof(en), "Intake window below %s g/L at %s moved: %s → %s%s (new"
				 " forecast).", len_, place, old_vi, nw_vi,
				 jnum_(it, "gap_min") > 0 ? ", with a salty gap inside" : "");
			snprintf(svi, sizeof(svi), "Lấy nước <%s g/L %s dời: %s → %s", lvi, shortp, old_en,
				 nw_en);
			snprintf(sen, sizeof(sen), "Intake <%s g/L %s moved: %s -> %s", len_, shortp, old_en,
				 nw_en);
		} else {
			snprintf(vi, sizeof(vi), "Hủy cửa sổ lấy nước dưới %s g/L tại %s %s: dự báo mới không"
				 " còn cửa sổ này, đừng lấy nước lúc đó.", lvi, place, old_vi);
			snprintf(en, sizeof(en), "Intake window below %s g/L at %s %s cancelled by the new"
				 " forecast: do not take water then.", len_, place, old_vi);
			snprintf(svi, sizeof(svi), "Hủy lấy nước <%s g/L %s %s: dự báo mới mặn", lvi, shortp,
				 old_en);
			snprintf(sen, sizeof(sen), "Intake <%s g/L %s %s cancelled: salty in new forecast",
				 len_, shortp, old_en);
		}
	} else {
		/* alert, cleared, note, past, pest, advisory, another ladder's
		 * crossing: the room's own message, with the place */
		bool past = !strcmp(kind, "past");
		const char *pre_vi = past ? "Báo muộn: " : "";
		const char *pre_en = past ? "Late report: " : "";

		if (past)
			late_vi = late_en = "";

		snprintf(vi, sizeof(vi), "%s%s: %s%s", pre_vi, place, js(it, "msg_vi"), late_vi);
		snprintf(en, sizeof(en), "%s%s: %s%s", pre_en, place, js(it, "msg_en"), late_en);
		snprintf(svi, sizeof(svi), "%s%s: %s", pre_vi, shortp, js(it, "msg_vi"));
		snprintf(sen, sizeof(sen), "%s%s: %s", pre_en, shortp, js(it, "msg_en"));
	}
	put(it, "vi", vi);
	put(it, "en", en);
	put(it, "svi", svi);
	put(it, "sen", sen);
	put(it, "pvi", pvi[0] ? pvi : svi);
	put(it, "pen", pen[0] ? pen : sen);
	put(it, "grp", grp);
	return 0;
}

/* --- messages ---------------------------------------------------------------------- */

void composed_init(struct composed *c)
{
	agri_buf_init_heap(&c->vi, POLICY_TEXT_MAX);
	agri_buf_init_heap(&c->en, POLICY_TEXT_MAX);
	agri_buf_init_heap(&c->sms, 1024);
	agri_buf_init_heap(&c->payload, POLICY_PAYLOAD_MAX);
}

void composed_free(struct composed *c)
{
	agri_buf_free(&c->vi);
	agri_buf_free(&c->en);
	agri_buf_free(&c->sms);
	agri_buf_free(&c->payload);
}

/* The facts of an item for the payload: its document without the texts. */
static cJSON *item_facts(const cJSON *doc, bool urgent)
{
	static const char *const drop[] = {"vi", "en", "svi", "sen", "pvi", "pen", "grp", "gvi",
					   "gen", "glvi", "glen", "msg_vi", "msg_en", "label_vi",
					   "label_en"};
	cJSON *o = cJSON_Duplicate(doc, true);

	if (!o)
		return NULL;
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(drop); i++)
		cJSON_DeleteItemFromObjectCaseSensitive(o, drop[i]);
	if (urgent)
		cJSON_AddBoolToObject(o, "urgent", true);
	return o;
}

static void time_item(cJSON *o, const char *k, int64_t ms)
{
	char ts[40];

	if (agri_time_format(ms, ts, sizeof(ts)) >= 0)
		cJSON_AddStringToObject(o, k, ts);
}

/* The payload's common head. */
static cJSON *payload_head(const struct recipient *r, const char *id, const char *kind,
			   int64_t at, const struct composed *c)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "v", 1);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "person", r->name);
	cJSON_AddStringToObject(o, "kind", kind);
	cJSON_AddStringToObject(o, "lang", r->lang_en ? "en" : "vi");
	time_item(o, "at", at);
	cJSON_AddStringToObject(o, "text", r->lang_en ? c->en.p : c->vi.p);
	cJSON_AddStringToObject(o, "text_vi", c->vi.p);
	cJSON_AddStringToObject(o, "text_en", c->en.p);
	cJSON_AddStringToObject(o, "sms", c->sms.p);
	return o;
}

static int payload_end(cJSON *o, struct composed *c)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	if (!s)
		return -ENOMEM;
	agri_buf_puts(&c->payload, s);
	free(s);
	return 0;
}

static int finish(struct composed *c)
{
	int rc;

	if ((rc = agri_buf_end(&c->vi)) < 0 || (rc = agri_buf_end(&c->en)) < 0 ||
	    (rc = agri_buf_end(&c->sms)) < 0 || (rc = agri_buf_end(&c->payload)) < 0)
		return rc;
	return 0;
}

/* Writes sms (the person's language) cut to two segments into c->sms. */
static void put_sms(struct composed *c, char *sms)
{
	policy_sms_fit(sms, POLICY_SMS_UNITS);
	agri_buf_puts(&c->sms, sms);
}

int compose_group(const struct policy *pol, const struct recipient *r, const char *id,
		  int64_t at_ms, struct policy_item *items, size_t n, int more,
		  struct composed *out)
{
	char *sms = calloc(1, 4096);
	bool *done = calloc(n ? n : 1, sizeof(*done)), urgent = false, first = true;
	cJSON *pl, *arr;
	int rc;

	(void)pol;
	if (!sms || !done) {
		free(sms);
		free(done);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		urgent |= items[i].urgent;
	if (urgent)
		snprintf(sms, 4096, "%s", r->lang_en ? "[URGENT] " : "[KHẨN] ");
	for (size_t i = 0; i < n; i++) {
		const cJSON *d = items[i].doc;
		const char *g = js(d, "grp");
		size_t cnt = 0;
		size_t l = strlen(sms);

		if (done[i])
			continue;
		for (size_t k = i; k < n; k++)
			cnt += !done[k] && !strcmp(js(items[k].doc, "grp"), g);
		if (out->vi.len) {
			agri_buf_puts(&out->vi, "\n");
			agri_buf_puts(&out->en, "\n");
		}
		if (!first)
			snprintf(sms + l, 4096 - l, " | ");
		first = false;
		if (cnt == 1 || !js(d, "gvi")[0]) {
			agri_buf_puts(&out->vi, js(d, "vi"));
			agri_buf_puts(&out->en, js(d, "en"));
			l = strlen(sms);
			snprintf(sms + l, 4096 - l, "%s", js(d, r->lang_en ? "sen" : "svi"));
			done[i] = true;
			continue;
		}
		/* "3 kênh ≥ 4 g/L: Hòa Bình 4,31; Mỹ Tho 4,1 (đóng cống ...)" */
		agri_buf_printf(&out->vi, "%zu %s ≥ %s g/L: ", cnt, js(d, "gvi"), js(d, "glvi"));
		agri_buf_printf(&out->en, "%zu %s ≥ %s g/L: ", cnt, js(d, "gen"), js(d, "glen"));
		l = strlen(sms);
		snprintf(sms + l, 4096 - l, r->lang_en ? "%zu %s >=%s g/L: " : "%zu %s ≥%s g/L: ", cnt,
			 js(d, r->lang_en ? "gen" : "gvi"), js(d, r->lang_en ? "glen" : "glvi"));
		for (size_t k = i, m = 0; k < n; k++) {
			const cJSON *e = items[k].doc;
			char hm[8];

			if (done[k] || strcmp(js(e, "grp"), g))
				continue;
			policy_fmt_clock(hm, sizeof(hm), (int64_t)jnum_(e, "at"), pol->people.utc_offset_min);
			agri_buf_printf(&out->vi, "%s%s lúc %s", m ? "; " : "", js(e, "pvi"), hm);
			agri_buf_printf(&out->en, "%s%s at %s", m ? "; " : "", js(e, "pen"), hm);
			l = strlen(sms);
			snprintf(sms + l, 4096 - l, "%s%s", m ? "; " : "", js(e, r->lang_en ? "pen" : "pvi"));
			done[k] = true;
			m++;
		}
		agri_buf_printf(&out->vi, " (%s).", js(d, "label_vi"));
		agri_buf_printf(&out->en, " (%s).", js(d, "label_en"));
		l = strlen(sms);
		snprintf(sms + l, 4096 - l, " (%s)", js(d, r->lang_en ? "label_en" : "label_vi"));
	}
	if (more > 0) {
		agri_buf_printf(&out->vi, "\n(+%d tin khác đã lược, xem bản tin sáng)", more);
		agri_buf_printf(&out->en, "\n(+%d more left out, see the morning bulletin)", more);
	}
	put_sms(out, sms);
	pl = payload_head(r, id, "alert", at_ms, out);
	if ((arr = pl ? cJSON_AddArrayToObject(pl, "items") : NULL))
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(arr, item_facts(items[i].doc, items[i].urgent));
	if (pl && more)
		cJSON_AddNumberToObject(pl, "more", more);
	rc = payload_end(pl, out);
	free(sms);
	free(done);
	return rc < 0 ? rc : finish(out);
}

/* --- the bulletin ------------------------------------------------------------------- */

/* Appends piece to sms when it still fits (with room for an ellipsis);
 * else marks it full. */
static void sms_add(char *sms, size_t cap, bool *full, const char *piece)
{
	size_t l = strlen(sms);

	if (*full)
		return;
	if (policy_utf16_units(sms) + policy_utf16_units(piece) > POLICY_SMS_UNITS - 1 ||
	    l + strlen(piece) + 4 >= cap) {
		*full = true;
		return;
	}
	memcpy(sms + l, piece, strlen(piece) + 1);
}

static bool listed(const struct bulletin *b, const char *station)
{
	for (size_t i = 0; i < b->n_stations; i++)
		if (b->st[i].has_range && !strcmp(b->st[i].station, station))
			return true;
	return false;
}

int compose_bulletin(const struct policy *pol, const char *id, const struct bulletin *b,
		     struct composed *out)
{
	const struct recipient *r = b->person;
	int64_t off = pol->people.utc_offset_min;
	bool en = r->lang_en, full = false;
	char hm[8], dm[8], lvi[24], len_[24], a[24], c_[24], piece[512];
	char sms[1024] = "";
	double level = r->n_levels ? r->levels[0] : RCPT_CRITICAL_G_L;
	cJSON *pl, *bo, *arr;
	int rc;

	policy_fmt_clock(hm, sizeof(hm), b->at_ms, off);
	policy_fmt_date(dm, sizeof(dm), b->at_ms, off);
	policy_fmt_num(lvi, sizeof(lvi), level, false);
	policy_fmt_num(len_, sizeof(len_), level, true);
	agri_buf_printf(&out->vi, "Bản tin sáng %s %s cho %s", hm, dm, r->display[0] ? r->display : r->name);
	agri_buf_printf(&out->en, "Morning bulletin %s %s for %s", hm, dm, r->display[0] ? r->display : r->name);
	snprintf(sms, sizeof(sms), en ? "Bulletin %s:" : "Bản tin %s:", dm);

	/* Intake windows first: what farmers act on before they pump. */
	if (b->n_stations) {
		bool any = false;

		agri_buf_printf(&out->vi, "\n\nLấy nước dưới %s g/L trong 24 giờ tới (dự báo):", lvi);
		agri_buf_printf(&out->en, "\n\nIntake below %s g/L in the next 24 h (forecast):", len_);
		snprintf(piece, sizeof(piece), en ? " Intake <%s:" : " Lấy nước <%s:", en ? len_ : lvi);
		sms_add(sms, sizeof(sms), &full, piece);
		for (size_t i = 0; i < b->n_stations; i++) {
			const struct bulletin_station *s = &b->st[i];
			char shortp[96];

			policy_short_place(shortp, sizeof(shortp), s->place);
			agri_buf_printf(&out->vi, "\n- %s: ", s->place);
			agri_buf_printf(&out->en, "\n- %s: ", s->place);
			snprintf(piece, sizeof(piece), "%s %s", any ? ";" : "", shortp);
			if (!s->has_forecast) {
				agri_buf_puts(&out->vi, "chưa có dự báo");
				agri_buf_puts(&out->en, "no forecast yet");
				continue;
			}
			if (!s->n_windows) {
				agri_buf_printf(&out->vi, "không có cửa sổ dưới %s g/L trong 24 giờ", lvi);
				agri_buf_printf(&out->en, "no window below %s g/L in 24 h", len_);
				snprintf(piece + strlen(piece), sizeof(piece) - strlen(piece), " %s",
					 en ? "none" : "không có");
			}
			for (int w = 0; w < s->n_windows; w++) {
				char vi[48], en_[48], sm[48];

				day_span(vi, en_, sm, sizeof(vi), s->win[w][0], s->win[w][1], b->at_ms,
					 off, en);
				agri_buf_printf(&out->vi, "%s%s", w ? ", " : "", vi);
				agri_buf_printf(&out->en, "%s%s", w ? ", " : "", en_);
				snprintf(piece + strlen(piece), sizeof(piece) - strlen(piece), "%s%s",
					 w ? "," : " ", sm);
			}
			for (int w = 0; w < s->n_sluice; w++) {
				char vi[48], en_[48], sm[48];

				day_span(vi, en_, sm, sizeof(vi), s->sluice[w][0], s->sluice[w][1], b->at_ms,
					 off, en);
				agri_buf_printf(&out->vi, "%s%s", w ? ", " : " (cống mở được: ", vi);
				agri_buf_printf(&out->en, "%s%s", w ? ", " : " (sluice: ", en_);
			}
			if (s->n_sluice) {
				agri_buf_puts(&out->vi, ")");
				agri_buf_puts(&out->en, ")");
			}
			sms_add(sms, sizeof(sms), &full, piece);
			any = true;
		}
		sms_add(sms, sizeof(sms), &full, ".");
		agri_buf_puts(&out->vi, "\n\nĐộ mặn 24 giờ qua (thấp nhất–cao nhất):");
		agri_buf_puts(&out->en, "\n\nSalinity over the last 24 h (lowest–highest):");
		sms_add(sms, sizeof(sms), &full, en ? " Salinity g/L:" : " Mặn g/L:");
		any = false;
		for (size_t i = 0; i < b->n_stations; i++) {
			const struct bulletin_station *s = &b->st[i];
			char shortp[96];

			policy_short_place(shortp, sizeof(shortp), s->place);
			if (!s->has_range) {
				agri_buf_printf(&out->vi, "\n- %s: không có số đo", s->place);
				agri_buf_printf(&out->en, "\n- %s: no readings", s->place);
				continue;
			}
			policy_fmt_num(a, sizeof(a), s->min, false);
			policy_fmt_num(c_, sizeof(c_), s->max, false);
			agri_buf_printf(&out->vi, "\n- %s: %s–%s g/L", s->place, a, c_);
			snprintf(piece, sizeof(piece), "%s %s %s-%s", any ? ";" : "", shortp,
				 en ? "" : a, en ? "" : c_);
			if (s->recross)
				agri_buf_printf(&out->vi, " (thêm %d lần vượt ngưỡng trong ngày triều,"
						" gộp vào bản tin)", s->recross);
			policy_fmt_num(a, sizeof(a), s->min, true);
			policy_fmt_num(c_, sizeof(c_), s->max, true);
			agri_buf_printf(&out->en, "\n- %s: %s–%s g/L", s->place, a, c_);
			if (s->recross)
				agri_buf_printf(&out->en, " (%d more crossings in the tidal day, kept for"
						" the bulletin)", s->recross);
			if (en)
				snprintf(piece, sizeof(piece), "%s %s %s-%s", any ? ";" : "", shortp, a, c_);
			sms_add(sms, sizeof(sms), &full, piece);
			any = true;
		}
		sms_add(sms, sizeof(sms), &full, ".");
	}
	if (b->n_traps) {
		agri_buf_puts(&out->vi, "\n\nRầy nâu vào đèn 24 giờ qua:");
		agri_buf_puts(&out->en, "\n\nBrown planthoppers at the light traps, last 24 h:");
		sms_add(sms, sizeof(sms), &full, en ? " BPH:" : " Rầy:");
		for (size_t i = 0; i < b->n_traps; i++) {
			char shortp[96];

			policy_short_place(shortp, sizeof(shortp), b->traps[i].place);
			agri_buf_printf(&out->vi, "\n- %s: %.0f con", b->traps[i].place, b->traps[i].count);
			agri_buf_printf(&out->en, "\n- %s: %.0f", b->traps[i].place, b->traps[i].count);
			static const char trap[] = "Bẫy đèn "; /* the demo's "light trap <district>" */

			snprintf(piece, sizeof(piece), "%s %s %.0f", i ? ";" : "",
				 strncmp(shortp, trap, sizeof(trap) - 1) == 0 ? shortp + sizeof(trap) - 1
									     : shortp,
				 b->traps[i].count);
			sms_add(sms, sizeof(sms), &full, piece);
		}
		sms_add(sms, sizeof(sms), &full, ".");
	}
	if (b->n_advice) {
		agri_buf_puts(&out->vi, "\n\nKhuyến cáo gieo sạ đang mở:");
		agri_buf_puts(&out->en, "\n\nOpen sowing advice:");
		for (size_t i = 0; i < b->n_advice; i++) {
			const struct bulletin_advice *ad = &b->advice[i];
			char f[8], t[8], h[8];

			policy_fmt_date(f, sizeof(f), ad->sow_from, off);
			policy_fmt_date(t, sizeof(t), ad->sow_to - 1, off);
			policy_fmt_date(h, sizeof(h), ad->hatch_from, off);
			agri_buf_printf(&out->vi, "\n- %s: gieo sạ né rầy từ %s đến %s; rầy cám lứa mới nở"
					" từ %s", ad->place, f, t, h);
			agri_buf_printf(&out->en, "\n- %s: sow from %s to %s to escape the migrants; the"
					" next generation hatches from %s", ad->place, f, t, h);
			if (i == 0) {
				snprintf(piece, sizeof(piece), en ? " Sow %s-%s." : " Gieo sạ %s-%s.", f, t);
				sms_add(sms, sizeof(sms), &full, piece);
			}
		}
	}
	if (b->n_notes || b->more) {
		size_t shown = 0;

		agri_buf_puts(&out->vi, "\n\nTin trong ngày:");
		agri_buf_puts(&out->en, "\n\nNews of the day:");
		for (size_t i = 0; i < b->n_notes; i++) {
			const cJSON *d = b->notes[i].doc;

			if (!strcmp(js(d, "kind"), "recross") && jb(d, "salinity") &&
			    listed(b, js(d, "station")))
				continue; /* counted on its station's line */
			agri_buf_printf(&out->vi, "\n- %s", js(d, "vi"));
			agri_buf_printf(&out->en, "\n- %s", js(d, "en"));
			shown++;
		}
		if (b->more) {
			agri_buf_printf(&out->vi, "\n- (+%d tin khác đã lược)", b->more);
			agri_buf_printf(&out->en, "\n- (+%d more left out)", b->more);
		}
		if (!shown && !b->more) {
			agri_buf_puts(&out->vi, "\n- không có tin mới ngoài các lần vượt ngưỡng trên");
			agri_buf_puts(&out->en, "\n- nothing besides the crossings above");
		}
		if (shown + (size_t)b->more) {
			snprintf(piece, sizeof(piece), en ? " +%zu news." : " +%zu tin.",
				 shown + (size_t)b->more);
			sms_add(sms, sizeof(sms), &full, piece);
		}
	}
	if (full) {
		size_t l = strlen(sms);

		snprintf(sms + l, sizeof(sms) - l, ELLIPSIS);
	}
	put_sms(out, sms);

	pl = payload_head(r, id, "bulletin", b->at_ms, out);
	if (pl && (bo = cJSON_AddObjectToObject(pl, "bulletin"))) {
		cJSON_AddNumberToObject(bo, "level", level);
		arr = cJSON_AddArrayToObject(bo, "stations");
		for (size_t i = 0; arr && i < b->n_stations; i++) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "station", b->st[i].station);
			cJSON_AddStringToObject(e, "place", b->st[i].place);
			if (b->st[i].has_range) {
				cJSON_AddNumberToObject(e, "min", b->st[i].min);
				cJSON_AddNumberToObject(e, "max", b->st[i].max);
			}
			cJSON_AddNumberToObject(e, "recross", b->st[i].recross);
			cJSON_AddBoolToObject(e, "forecast", b->st[i].has_forecast);
			cJSON_AddItemToArray(arr, e);
		}
		arr = cJSON_AddArrayToObject(bo, "windows");
		for (size_t i = 0; arr && i < b->n_stations; i++)
			for (int w = 0; w < b->st[i].n_windows + b->st[i].n_sluice; w++) {
				cJSON *e = cJSON_CreateObject();
				bool sl = w >= b->st[i].n_windows;
				const int64_t *span = sl ? b->st[i].sluice[w - b->st[i].n_windows]
							 : b->st[i].win[w];

				cJSON_AddStringToObject(e, "station", b->st[i].station);
				if (!sl)
					cJSON_AddNumberToObject(e, "below", level);
				else
					cJSON_AddBoolToObject(e, "sluice", true);
				time_item(e, "from", span[0]);
				time_item(e, "to", span[1]);
				cJSON_AddItemToArray(arr, e);
			}
		arr = cJSON_AddArrayToObject(bo, "traps");
		for (size_t i = 0; arr && i < b->n_traps; i++) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "station", b->traps[i].station);
			cJSON_AddNumberToObject(e, "count", b->traps[i].count);
			cJSON_AddItemToArray(arr, e);
		}
		arr = cJSON_AddArrayToObject(bo, "advice");
		for (size_t i = 0; arr && i < b->n_advice; i++) {
			cJSON *e = cJSON_CreateObject();

			cJSON_AddStringToObject(e, "station", b->advice[i].station);
			time_item(e, "sow_from", b->advice[i].sow_from);
			time_item(e, "sow_to", b->advice[i].sow_to);
			time_item(e, "hatch_from", b->advice[i].hatch_from);
			cJSON_AddItemToArray(arr, e);
		}
		arr = cJSON_AddArrayToObject(pl, "items");
		for (size_t i = 0; arr && i < b->n_notes; i++)
			cJSON_AddItemToArray(arr, item_facts(b->notes[i].doc, b->notes[i].urgent));
	}
	rc = payload_end(pl, out);
	return rc < 0 ? rc : finish(out);
}
