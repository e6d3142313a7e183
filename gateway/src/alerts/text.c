/*
 * Alert messages (see alert_text.h). One table of metric names and
 * units, one sentence per rule kind and language, and a tiny template
 * expander: "{value}" style placeholders, unknown ones left as written.
 */
#include "alerts/text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agri/buf.h"

static const struct {
	const char *metric, *en, *vi, *unit, *unit_vi;
} metrics[] = {
	{"salinity", "Salinity", "Độ mặn", "g/L", "‰"}, /* bulletins: "4,7‰" (phần ngàn) */
	{"conductivity", "Conductivity", "Độ dẫn điện", "mS/cm", "mS/cm"},
	{"specific_conductance", "Specific conductance (25 °C)", "Độ dẫn điện quy về 25 °C", "mS/cm",
	 "mS/cm"},
	{"water_temperature", "Water temperature", "Nhiệt độ nước", "°C", "°C"},
	{"ph", "pH", "pH", "", ""},
	{"dissolved_oxygen", "Dissolved oxygen", "Oxy hòa tan", "mg/L", "mg/L"},
	{"turbidity", "Turbidity", "Độ đục", "NTU", "NTU"},
	{"water_level", "Water level", "Mực nước", "m", "m"},
	{"insect_count", "Insect count", "Số côn trùng vào bẫy", "", "con"},
	{"air_temperature", "Air temperature", "Nhiệt độ không khí", "°C", "°C"},
	{"air_humidity", "Air humidity", "Độ ẩm không khí", "%", "%"},
	{"lamp_on", "Trap lamp", "Đèn bẫy", "", ""},
	{"battery_voltage", "Battery voltage", "Điện áp ắc quy", "V", "V"},
	{"battery_soc", "Battery charge", "Dung lượng ắc quy", "%", "%"},
	{"pv_power", "Solar power", "Công suất pin mặt trời", "W", "W"},
};

static const char *const sev_en[] = {"info", "warning", "alarm", "critical"};
static const char *const sev_vi[] = {"thông tin", "cảnh báo", "báo động", "nguy hiểm"};

const char *alert_metric_name(const char *metric, enum alert_lang lang)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(metrics); i++)
		if (!strcmp(metrics[i].metric, metric))
			return lang == ALERT_LANG_VI ? metrics[i].vi : metrics[i].en;
	return metric;
}

const char *alert_metric_unit(const char *metric, enum alert_lang lang)
{
	for (size_t i = 0; i < AGRI_ARRAY_SIZE(metrics); i++)
		if (!strcmp(metrics[i].metric, metric))
			return lang == ALERT_LANG_VI ? metrics[i].unit_vi : metrics[i].unit;
	return "";
}

const char *alert_severity_text(enum alert_severity s, enum alert_lang lang)
{
	if ((unsigned)s > ALERT_SEV_CRITICAL)
		return "?";
	return lang == ALERT_LANG_VI ? sev_vi[s] : sev_en[s];
}

void alert_format_number(char *buf, size_t len, double v)
{
	char *dot, *end;

	if (!isfinite(v)) {
		snprintf(buf, len, "?");
		return;
	}
	if (fabs(v) >= 10 && v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, len, "%.0f", v);
		return;
	}
	if (v != 0 && fabs(v) < 0.1) {
		snprintf(buf, len, "%.2g", v);
		return;
	}
	snprintf(buf, len, "%.2f", v);
	dot = strchr(buf, '.');
	if (!dot)
		return;
	end = buf + strlen(buf) - 1;
	while (end > dot + 1 && *end == '0')
		*end-- = '\0';
}

void alert_text_utf8_trim(char *s)
{
	size_t n = strlen(s), i = n, need;
	unsigned char c;

	/* Find the start of the last sequence and check it is complete. */
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && n - i < 3)
		i--;
	if (i == 0)
		return;
	c = (unsigned char)s[i - 1];
	if (c < 0x80)
		return;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

/* Appends printf output to buf at *pos, clamping at len - 1. */
static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t len, size_t *pos, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*pos >= len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *pos, len - *pos, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	*pos += (size_t)n;
	if (*pos > len - 1)
		*pos = len - 1;
}

static void duration(char *buf, size_t len, int64_t s, enum alert_lang lang)
{
	bool vi = lang == ALERT_LANG_VI;

	if (s < 120)
		snprintf(buf, len, "%lld %s", (long long)s, vi ? "giây" : "s");
	else if (s < 2 * 3600)
		snprintf(buf, len, "%lld %s", (long long)(s / 60), vi ? "phút" : "min");
	else if (s < 2 * 86400) {
		char n[32];

		alert_format_number(n, sizeof(n), (double)s / 3600.0);
		snprintf(buf, len, "%s %s", n, vi ? "giờ" : "h");
	} else {
		char n[32];

		alert_format_number(n, sizeof(n), (double)s / 86400.0);
		snprintf(buf, len, "%s %s", n, vi ? "ngày" : "days");
	}
}

static void night_date(char *buf, size_t len, int64_t day, enum alert_lang lang)
{
	int y, m, d;

	rules_civil_from_days(day, &y, &m, &d);
	if (lang == ALERT_LANG_VI)
		snprintf(buf, len, "%02d/%02d/%04d", d, m, y);
	else
		snprintf(buf, len, "%04d-%02d-%02d", y, m, d);
}

/* " at DT-W01 (sonde1)" / " tại DT-W01 (sonde1)" */
static void where(char *buf, size_t len, size_t *pos,
		  const struct alert_text_args *a, enum alert_lang lang)
{
	put(buf, len, pos, " %s %s", lang == ALERT_LANG_VI ? "tại" : "at", a->station);
	if (a->sensor && a->sensor[0])
		put(buf, len, pos, " (%s)", a->sensor);
}

static const char *op_text(enum rule_op op, bool cleared, enum alert_lang lang)
{
	bool vi = lang == ALERT_LANG_VI;

	if (op == RULE_ABOVE)
		return cleared ? "<" : vi ? "≥" : ">=";
	return cleared ? ">" : vi ? "≤" : "<=";
}

static const char *agg_text(enum rule_agg agg, enum alert_lang lang)
{
	static const char *const en[] = {"sum", "mean", "max", "min", "count"};
	static const char *const vi[] = {"tổng", "trung bình", "cao nhất",
					 "thấp nhất", "số lần đo"};

	if ((unsigned)agg > RULE_AGG_COUNT)
		return "?";
	return lang == ALERT_LANG_VI ? vi[agg] : en[agg];
}

/* A number for people in the language: a decimal comma in Vietnamese. */
static void number_lang(char *buf, size_t len, double v, enum alert_lang lang)
{
	char *dot;

	alert_format_number(buf, len, v);
	if (lang == ALERT_LANG_VI && (dot = strchr(buf, '.')))
		*dot = ',';
}

/* "4.3 g/L"; in Vietnamese a decimal comma, and ‰ without a space, as
 * salinity bulletins write it: "4,3‰". */
static void value_unit(char *buf, size_t len, double v, const char *unit, enum alert_lang lang)
{
	char n[32];

	number_lang(n, sizeof(n), v, lang);
	snprintf(buf, len, "%s%s%s", n, unit[0] && strcmp(unit, "‰") != 0 ? " " : "", unit);
}

/* What a station's reason for a suspect reading means, and what a
 * technician should check (docs/alerts.md, Sensor checks). */
struct sensor_reason {
	const char *why;
	const char *what_en, *check_en;
	const char *what_vi, *check_vi;
};

static const struct sensor_reason sensor_reasons[] = {
	{"dry", "reads as a dry probe", "lower or remount the probe so it stays under water",
	 "đọc như đầu đo bị khô", "hạ thấp hoặc gắn lại đầu đo cho ngập nước"},
	{"stuck", "is stuck on one value", "the cable, the power, the probe itself",
	 "đứng yên một giá trị", "dây cáp, nguồn điện, chính đầu đo"},
	{"full_scale", "is at the probe's full scale",
	 "the water is above the probe's range (a SenseCAP tops near 12 g/L): values are capped",
	 "chạm ngưỡng tối đa của đầu đo",
	 "nước vượt thang đo của đầu đo (SenseCAP tối đa khoảng 12 g/L): giá trị bị chặn"},
	{"range", "is out of the probe's range", "the calibration and the device's units",
	 "ngoài thang đo", "hiệu chuẩn và đơn vị của thiết bị"},
	{"map", "does not match its profile", "the device's profile and units in station.json",
	 "không khớp với hồ sơ thiết bị", "hồ sơ thiết bị và đơn vị trong station.json"},
	/* the gateway's own reason (core/drift.h) */
	{"drift", "reads lower and lower against its neighbouring stations (fouling?)",
	 "clean the conductivity cell, then check it in a standard solution (agrictl calibrate)",
	 "đọc thấp dần so với các trạm lân cận (bám bẩn?)",
	 "vệ sinh điện cực đo độ dẫn, rồi kiểm tra trong dung dịch chuẩn (agrictl calibrate)"},
};

static const struct sensor_reason *sensor_reason(const char *why)
{
	static const struct sensor_reason other = {"", "is suspect", "the probe and its wiring",
						   "đáng ngờ", "đầu đo và dây nối"};

	for (size_t i = 0; why && i < AGRI_ARRAY_SIZE(sensor_reasons); i++)
		if (!strcmp(sensor_reasons[i].why, why))
			return &sensor_reasons[i];
	return &other;
}

static void builtin(const struct alert_text_args *a, enum alert_lang lang,
		    char *buf, size_t len)
{
	bool vi = lang == ALERT_LANG_VI;
	const char *name = alert_metric_name(a->metric ? a->metric : "", lang);
	const char *unit = a->unit && a->unit[0] ? a->unit
						 : alert_metric_unit(a->metric ? a->metric : "", lang);
	char v[64], t[64], d[48];
	size_t pos = 0;

	buf[0] = '\0';
	value_unit(v, sizeof(v), a->value, unit, lang);
	value_unit(t, sizeof(t), a->threshold, unit, lang);
	switch (a->what) {
	case ALERT_TEXT_LEVEL:
	case ALERT_TEXT_WINDOW:
	case ALERT_TEXT_RATE:
		if (a->cleared)
			put(buf, len, &pos, "%s", vi ? "Đã hết: " : "Cleared: ");
		put(buf, len, &pos, "%s", name);
		if (a->what == ALERT_TEXT_WINDOW) {
			duration(d, sizeof(d), a->rule ? a->rule->window_s : 0, lang);
			put(buf, len, &pos, vi ? " (%s %s)" : " (%s over %s)",
			    agg_text(a->rule ? a->rule->agg : RULE_AGG_SUM, lang), d);
		} else if (a->what == ALERT_TEXT_RATE) {
			put(buf, len, &pos, "%s", vi ? " thay đổi" : " change");
			snprintf(d, sizeof(d), "%s", vi ? "/giờ" : "/h");
			strncat(v, d, sizeof(v) - strlen(v) - 1);
			strncat(t, d, sizeof(t) - strlen(t) - 1);
		}
		put(buf, len, &pos, " %s %s %s", a->has_value ? v : "?",
		    op_text(a->op, a->cleared, lang), t);
		where(buf, len, &pos, a, lang);
		if (!a->cleared && a->label && a->label->en[0])
			put(buf, len, &pos, ": %s", vi ? a->label->vi : a->label->en);
		break;
	case ALERT_TEXT_PEAK:
		night_date(d, sizeof(d), a->night_day, lang);
		if (a->cleared) {
			put(buf, len, &pos, vi ? "%s trở về mức nền" : "%s back to baseline", name);
			where(buf, len, &pos, a, lang);
			put(buf, len, &pos, vi ? ": %s đêm %s" : ": %s on the night of %s", v, d);
		} else {
			char k[32];

			snprintf(k, sizeof(k), "%g", a->rule ? a->rule->k : 0);
			put(buf, len, &pos, vi ? "Đỉnh %s" : "%s peak", name);
			where(buf, len, &pos, a, lang);
			put(buf, len, &pos, vi ? ": %s đêm %s, ≥ %s (%s × trung vị %lld đêm trước)"
					       : ": %s on the night of %s, >= %s (%s x median of the previous %lld nights)",
			    v, d, t, k, (long long)(a->rule ? a->rule->nights : 0));
		}
		break;
	case ALERT_TEXT_RISING:
		night_date(d, sizeof(d), a->night_day, lang);
		if (a->cleared) {
			put(buf, len, &pos, vi ? "%s thôi tăng" : "%s no longer rising", name);
			where(buf, len, &pos, a, lang);
			put(buf, len, &pos, vi ? ": %s đêm %s" : ": %s on the night of %s", v, d);
		} else {
			put(buf, len, &pos, vi ? "%s đang tăng" : "%s rising", name);
			where(buf, len, &pos, a, lang);
			put(buf, len, &pos, vi ? ": %s đến đêm %s; lứa rầy đang tới, ngâm ủ giống ngay"
					       : ": %s to the night of %s; a brood is coming, soak seed now",
			    a->detail_en ? a->detail_en : v, d);
		}
		break;
	case ALERT_TEXT_OFFLINE:
		if (a->cleared)
			put(buf, len, &pos, vi ? "Trạm %s đã gửi dữ liệu trở lại%s"
					       : "Station %s is sending data again%s", a->station,
			    (vi ? a->detail_vi : a->detail_en) ? (vi ? a->detail_vi : a->detail_en) : "");
		else
			put(buf, len, &pos, vi ? "Trạm %s mất kết nối" : "Station %s is offline",
			    a->station);
		break;
	case ALERT_TEXT_SILENT:
		duration(d, sizeof(d), a->aux, lang);
		if (a->sensor && a->sensor[0]) {
			if (a->cleared)
				put(buf, len, &pos, vi ? "Cảm biến %s tại trạm %s đã gửi dữ liệu trở lại"
						       : "Sensor %s at %s is sending data again",
				    a->sensor, a->station);
			else
				put(buf, len, &pos, vi ? "Không nhận được dữ liệu từ cảm biến %s tại trạm %s trong %s"
						       : "No data from sensor %s at %s for %s",
				    a->sensor, a->station, d);
		} else if (a->cleared) {
			put(buf, len, &pos, vi ? "Trạm %s đã gửi dữ liệu trở lại"
					       : "Station %s is sending data again", a->station);
		} else {
			put(buf, len, &pos, vi ? "Không nhận được dữ liệu từ trạm %s trong %s"
					       : "No data from station %s for %s", a->station, d);
		}
		break;
	case ALERT_TEXT_QUALITY:
		if (a->cleared)
			put(buf, len, &pos, vi ? "Cảm biến %s tại trạm %s đọc bình thường trở lại"
					       : "Sensor %s at %s reads normally again",
			    a->sensor, a->station);
		else
			put(buf, len, &pos, vi ? "Cảm biến %s tại trạm %s: %lld lần đọc lỗi hoặc nghi ngờ liên tiếp (%s)"
					       : "Sensor %s at %s: %lld error or suspect readings in a row (%s)",
			    a->sensor, a->station, (long long)a->aux, name);
		break;
	case ALERT_TEXT_SENSOR: {
		const struct sensor_reason *sr = sensor_reason(a->detail_en);

		if (a->cleared)
			put(buf, len, &pos, vi ? "Cảm biến %s tại trạm %s đọc bình thường trở lại (%s)"
					       : "Sensor %s at %s reads normally again (%s)",
			    a->sensor, a->station, name);
		else
			put(buf, len, &pos, vi ? "Cảm biến %s tại trạm %s: %s %s; kiểm tra: %s"
					       : "Sensor %s at %s: %s %s; check: %s",
			    a->sensor, a->station, name, vi ? sr->what_vi : sr->what_en,
			    vi ? sr->check_vi : sr->check_en);
		break;
	}
	case ALERT_TEXT_EVENT: {
		enum rule_kind k = a->rule ? a->rule->kind : RULE_MISBEHAVING;
		const char *who = k == RULE_HUB ? (vi ? "Trạm chủ" : "Hub") : (vi ? "Trạm" : "Station");
		const char *detail = vi ? a->detail_vi : a->detail_en;

		if (a->cleared) {
			duration(d, sizeof(d), a->aux, lang);
			put(buf, len, &pos, "%s%s %s: ", vi ? "Đã hết: " : "Cleared: ", who, a->station);
			put(buf, len, &pos, k == RULE_HUB ? (vi ? "lưu trữ bình thường trong %s"
								: "storing normally for %s")
				     : k == RULE_CLOCK ? (vi ? "đồng hồ đúng trong %s"
							     : "clock in the window for %s")
				     : k == RULE_CALIBRATION ? (vi ? "đã hiệu chuẩn (%s trước)"
								   : "calibrated (%s ago)")
						       : (vi ? "trong hạn mức trong %s"
							     : "within its budgets for %s"), d);
		} else {
			put(buf, len, &pos, "%s %s %s", who, a->station,
			    detail && *detail ? detail : (vi ? "có sự cố" : "has a problem"));
		}
		break;
	}
	}
	alert_text_utf8_trim(buf);
}


/* Expands tpl: {station} {sensor} {rule} {metric} {metric_name} {value}
 * {threshold} {unit} {severity} {label} {night}. */
static void expand(const char *tpl, const struct alert_text_args *a,
		   enum alert_lang lang, char *buf, size_t len)
{
	const char *unit = a->unit && a->unit[0] ? a->unit
						 : alert_metric_unit(a->metric ? a->metric : "", lang);
	size_t pos = 0;
	char tmp[64];

	buf[0] = '\0';
	for (const char *p = tpl; *p && pos < len - 1;) {
		const char *end = *p == '{' ? strchr(p, '}') : NULL;
		const char *val = NULL;
		size_t k = end ? (size_t)(end - p - 1) : 0;

#define IS(name) (k == sizeof(name) - 1 && !strncmp(p + 1, name, k))
		if (end) {
			if (IS("station")) {
				val = a->station;
			} else if (IS("sensor")) {
				val = a->sensor ? a->sensor : "";
			} else if (IS("rule")) {
				val = a->rule ? a->rule->id : "";
			} else if (IS("metric")) {
				val = a->metric ? a->metric : "";
			} else if (IS("metric_name")) {
				val = alert_metric_name(a->metric ? a->metric : "", lang);
			} else if (IS("value")) {
				if (a->has_value)
					number_lang(tmp, sizeof(tmp), a->value, lang);
				else
					snprintf(tmp, sizeof(tmp), "?");
				val = tmp;
			} else if (IS("threshold")) {
				number_lang(tmp, sizeof(tmp), a->threshold, lang);
				val = tmp;
			} else if (IS("unit")) {
				val = unit;
			} else if (IS("severity")) {
				val = alert_severity_text(a->severity, lang);
			} else if (IS("label")) {
				val = a->label ? (lang == ALERT_LANG_VI ? a->label->vi : a->label->en) : "";
			} else if (IS("night")) {
				night_date(tmp, sizeof(tmp), a->night_day, lang);
				val = tmp;
			}
		}
#undef IS
		if (val) {
			put(buf, len, &pos, "%s", val);
			p = end + 1;
		} else {
			buf[pos++] = *p++;
			buf[pos] = '\0';
		}
	}
	alert_text_utf8_trim(buf);
}

void alert_text_build(const struct alert_text_args *a, enum alert_lang lang,
		      char *buf, size_t len)
{
	const char *tpl = NULL;

	if (!len)
		return;
	if (a->rule && !a->cleared)
		tpl = lang == ALERT_LANG_VI ? a->rule->message.vi : a->rule->message.en;
	if (tpl && tpl[0])
		expand(tpl, a, lang, buf, len);
	else
		builtin(a, lang, buf, len);
}

/* Years 1..9999 in ms around the epoch, with room for the UTC offset. */
#define AGRI_TEXT_TIME_MAX 253402300799999LL

void alert_text_time(char *buf, size_t len, int64_t ms, int64_t ref_ms, int64_t utc_offset_min)
{
	int64_t off = utc_offset_min * 60000, l, day, ref_day;
	int64_t min_of_day;
	int y, m, d;

	/* No time (INT64_MIN) or none a calendar holds: nothing to say. */
	if (ms < -AGRI_TEXT_TIME_MAX || ms > AGRI_TEXT_TIME_MAX ||
	    ref_ms < -AGRI_TEXT_TIME_MAX || ref_ms > AGRI_TEXT_TIME_MAX) {
		snprintf(buf, len, "?");
		return;
	}
	l = ms + off;
	day = l / 86400000;
	if (l < 0 && l % 86400000)
		day--;
	ref_day = (ref_ms + off) / 86400000 - ((ref_ms + off) < 0 && (ref_ms + off) % 86400000);
	min_of_day = (l - day * 86400000) / 60000;
	if (day == ref_day) {
		snprintf(buf, len, "%02d:%02d", (int)(min_of_day / 60), (int)(min_of_day % 60));
		return;
	}
	rules_civil_from_days(day, &y, &m, &d);
	snprintf(buf, len, "%02d/%02d %02d:%02d", d, m, (int)(min_of_day / 60),
		 (int)(min_of_day % 60));
}

void alert_text_late(char *buf, size_t len, const char *base, unsigned n, bool open,
		     bool cleared, int64_t first, int64_t last, int64_t end, int64_t now_ms,
		     bool reported, int64_t utc_offset_min, enum alert_lang lang)
{
	bool vi = lang == ALERT_LANG_VI;
	char f[32], l[32], e[32], now[32], tmp[1024];
	size_t pos = 0;

	if (!len)
		return;
	snprintf(tmp, sizeof(tmp), "%s", base ? base : "");
	alert_text_time(f, sizeof(f), first, now_ms, utc_offset_min);
	alert_text_time(l, sizeof(l), last, now_ms, utc_offset_min);
	alert_text_time(e, sizeof(e), end, now_ms, utc_offset_min);
	alert_text_time(now, sizeof(now), now_ms, now_ms, utc_offset_min);
	buf[0] = '\0';
	put(buf, len, &pos, "%s", tmp);
	if (n == 0 && cleared) {
		put(buf, len, &pos, vi ? ", lúc %s" : ", at %s", e);
	} else if (n <= 1) {
		if (open)
			put(buf, len, &pos, vi ? ", lúc %s (vẫn còn)" : ", at %s (still on)", f);
		else if (end != INT64_MIN)
			put(buf, len, &pos, vi ? ", từ %s đến %s" : ", from %s to %s", f, e);
		else
			put(buf, len, &pos, vi ? ", lúc %s" : ", at %s", f);
	} else {
		put(buf, len, &pos, vi ? ", %u lần từ %s" : ", %u times from %s", n, f);
		if (open)
			put(buf, len, &pos, vi ? ", lần cuối từ %s vẫn còn" : ", the last since %s still on",
			    l);
		else if (end != INT64_MIN)
			put(buf, len, &pos, vi ? " đến %s" : " to %s", e);
		if (cleared)
			put(buf, len, &pos, "%s", vi ? " (sau khi đã báo)" : " (after one reported before)");
	}
	if (reported)
		put(buf, len, &pos, vi ? ", báo lúc %s sau khi trạm mất kết nối"
				       : ", reported at %s after the station was offline", now);
	alert_text_utf8_trim(buf);
}

void alert_text_join(char *buf, size_t len, const char *after)
{
	size_t pos = strlen(buf);

	put(buf, len, &pos, "; %s", after);
	alert_text_utf8_trim(buf);
}

void alert_text_prefix(char *buf, size_t len, int kind, const char *who,
		       enum alert_lang lang)
{
	char tmp[1024];
	bool vi = lang == ALERT_LANG_VI;

	switch (kind) {
	case 0:
		if (who && who[0])
			snprintf(tmp, sizeof(tmp), vi ? "Đã xác nhận bởi %s: %s"
						      : "Acknowledged by %s: %s", who, buf);
		else
			snprintf(tmp, sizeof(tmp), vi ? "Đã xác nhận: %s" : "Acknowledged: %s", buf);
		break;
	case 1:
		snprintf(tmp, sizeof(tmp), vi ? "Nhắc lại: %s" : "Reminder: %s", buf);
		break;
	default:
		snprintf(tmp, sizeof(tmp), vi ? "Chuyển cấp: %s" : "Escalated: %s", buf);
		break;
	}
	snprintf(buf, len, "%s", tmp);
	alert_text_utf8_trim(buf);
}
