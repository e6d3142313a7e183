/* agri-gateway dashboard (docs/dashboard.md): the gateway's own API drawn
 * with plain DOM and SVG; no build step, no third-party code.
 *
 * First load: /api/v1/today and /api/v1/alerts only, so a phone on 3G
 * sees what is salty now and when to pump within a few seconds. Charts
 * and the stations' technical telemetry load when scrolled into view.
 * Polls every REFRESH_MS with If-None-Match: an unchanged answer is a 304.
 * A gateway whose reads need a token (http.public_reads off) gets it from
 * the link's #token=... (dropped from the address bar at once) or asks for
 * it when a read answers 401; it is kept for the browser session.
 * Times are Vietnam time and "now" is the gateway's clock (the demo runs
 * a simulated one). */
'use strict';

const REFRESH_MS = 10000;
const TZ = 'Asia/Ho_Chi_Minh';
const TZ_OFFSET_MS = 7 * 3600e3;          /* nights are counted in local time */
const LADDER = [0.5, 1, 2, 4];            /* salinity ladder, g/L */
/* The intake levels shown per canal: the crops each one protects. */
const LEVELS = [{ below: 0.5, crop: 'durian' }, { below: 1, crop: 'fruit' }, { below: 2, crop: 'rice' }];
const SAL_WINDOW_MS = 48 * 3600e3;        /* measured salinity charted */
const NIGHTS = 14;                        /* light-trap nights charted */
const STALE_MS = 3 * 3600e3;              /* a reading older than this is flagged */
const CHARTS_MS = 5 * 60e3;               /* charts fetch their data again after (real time) */
const STATIONS_MS = 60e3;                 /* technical telemetry, likewise */
const SVGNS = 'http://www.w3.org/2000/svg';
const SEVERITY = ['critical', 'alarm', 'warning', 'info'];

const T = {
  vi: {
    title: 'Mặn và rầy nâu', h_water: 'Nước tưới hôm nay', h_pests: 'Rầy nâu và lịch gieo sạ',
    h_alerts: 'Cảnh báo đang mở', h_sal_charts: 'Độ mặn: 48 giờ qua và dự báo 72 giờ',
    h_ins_charts: 'Côn trùng vào đèn theo đêm', h_stations: 'Các trạm', loading: 'Đang tải…',
    no_alerts: 'Không có cảnh báo.', no_data: 'Chưa có dữ liệu.', no_water: 'Chưa có trạm đo mặn.',
    no_traps: 'Chưa có bẫy đèn.', old_advice: 'Khuyến cáo đã hết hạn', no_old_advice: 'Không có.',
    people: 'Ai nhận tin gì', no_people: 'Chưa có danh sách người nhận (recipients_file).',
    p_all: 'mọi trạm', p_levels: 'mức mặn', p_quiet: 'giờ yên lặng', p_bulletin: 'bản tin lúc',
    p_today: (n) => `hôm nay ${n} tin`,
    footer: 'Tự làm mới mỗi 10 giây. Giờ Việt Nam.', updated: 'Cập nhật', lang_btn: 'EN', lang_name: 'English',
    load_failed: 'Không tải được dữ liệu từ trạm chủ', stale: 'số đo cũ',
    meaning: ['Tưới được mọi cây trồng', 'Lúa, cây ăn trái được; không tưới sầu riêng',
      'Lúa được; không tưới cây ăn trái, rau màu', 'Hại lúa mạ; chỉ lấy nước khi thật cần',
      'Đóng cống, không lấy nước cho cây trồng'],
    up: '↑ tăng', down: '↓ giảm', steady: '→ ổn định', at: 'lúc',
    crops: { durian: 'sầu riêng', fruit: 'cây ăn trái', vegetables: 'rau màu', rice: 'lúa', shrimp: 'tôm' },
    now: 'bây giờ', today: 'hôm nay', tomorrow: 'mai', yesterday: 'hôm qua',
    days: ['CN', 'T2', 'T3', 'T4', 'T5', 'T6', 'T7'],
    none_short: (h) => `không có trong ${h} giờ tới`,
    none_full: (lv, h) => `Không có cửa sổ dưới ${lv} g/L trong ${h} giờ tới`,
    win_full: (lv, txt) => `Cửa sổ lấy nước dưới ${lv} g/L: ${txt}`,
    no_fc: 'chưa có dự báo', fc_little: 'chưa đủ số đo để dự báo', fc_old: 'dự báo theo số đo cũ',
    tonight: 'Đêm nay', last_night: 'Đêm qua', not_started: 'chưa bắt đầu', insects: 'con', no_count: 'không có số đếm',
    sow_open: (a, b, n) => `Gieo sạ né rầy đến ${b}: còn ${n} ngày (từ ${a})`,
    sow_soon: (a, b, n) => `Gieo sạ né rầy từ ${a} đến ${b} (bắt đầu sau ${n} ngày)`,
    hatch: (a, b) => `Rầy cám dự kiến nở ${a}–${b}: thăm đồng, phòng trừ khi rầy tuổi 2–3 vượt ngưỡng.`,
    no_advice: 'Chưa có khuyến cáo gieo sạ đang mở.',
    adv_old: (a, b, s) => `gieo sạ ${a}–${b} (${s})`, expired: 'đã hết hạn', superseded: 'đã có khuyến cáo mới hơn',
    critical: 'nghiêm trọng', alarm: 'báo động', warning: 'cảnh báo', info: 'thông tin',
    acked: 'đã xác nhận', acked_by: (w) => `đã xác nhận: ${w}`, ack: 'Xác nhận', ack_title: 'Xác nhận cảnh báo',
    ack_name: 'Tên người xác nhận', token_prompt: 'Mã truy cập (hỏi một lần)', cancel: 'Hủy',
    login_title: 'Cần mã truy cập', login_why: 'Cổng này chỉ cho xem số liệu khi có mã. Hỏi người quản trị cổng.',
    login_ok: 'Mở', read_only: 'Mã này chỉ để xem, không xác nhận được.',
    bad_token: 'Mã truy cập sai.', ack_failed: 'Không xác nhận được', ack_busy: 'Hệ thống cảnh báo đang bận hoặc chưa chạy',
    val_now: 'Bây giờ', val_raised: 'lúc báo', since: 'từ',
    al_sal: (lv) => `Độ mặn vượt ${lv} g/L`, al_peak: (c) => `Đỉnh ${c} vào đèn: gieo sạ né rầy ngay sau đỉnh`,
    al_rising: (c) => `${c} vào đèn tăng mỗi đêm: lứa rầy sắp tới đỉnh, ngâm ủ giống để gieo sạ ngay sau đỉnh`,
    al_acid: (v) => `Nước phèn (pH ${v}): không tưới lúa mạ`, al_acid_hard: (v) => `Nước phèn nặng (pH ${v}): đóng cống`,
    al_offline: 'Trạm mất kết nối', al_battery: 'Ắc quy yếu', al_quality: 'Cảm biến đọc lỗi hoặc nghi ngờ',
    al_other: 'Sự cố tại trạm', per_night: 'con/đêm',
    online: 'trực tuyến', offline: 'mất kết nối', unknown: 'chưa rõ', last_seen: 'Lần cuối', never: 'chưa có',
    tech: 'Kỹ thuật', fw: 'Phần mềm trạm', system: 'Hệ thống (khe)', update: 'Cập nhật', board: 'Bo mạch', config_version: 'Phiên bản cấu hình',
    spool_depth: 'Bản tin chờ gửi', gaps: 'Bản tin bị thiếu', code: 'Mã trạm', yes: 'có', no: 'không',
    h_hubs: 'Trạm chủ', hub_up: 'đang chạy', hub_off: 'mất liên lạc', hub_this: 'trạm chủ này',
    hub_heard: 'Nghe lần cuối', hub_st: (n) => `${n} trạm kết nối`, hub_st_unknown: 'không rõ trạm nào (chưa khai station_url)',
    hub_step: 'Đồng bộ với trạm chủ kia', hub_behind: (m) => `Chậm ${m} phút so với trạm chủ kia`,
    hub_lag_unknown: 'Chưa rõ độ trễ', hub_newest: 'Số đo mới nhất', hub_why_will: 'trạm chủ báo ngắt',
    hub_why_silent: 'quá 3 phút không nghe', hub_other: 'Trạm trên địa chỉ khác', hub_none: 'Trạm không kết nối',
    no_hubs: 'Chưa nghe trạm chủ nào.',
    measured: 'Đo', forecast_line: 'Dự báo', band: 'Khoảng tin cậy', thr_key: 'Ngưỡng 0,5 · 1 · 2 · 4 g/L',
    lanes_key: 'Dải dưới trục: cửa sổ lấy nước theo ngưỡng', none_lane: 'không có', bph: 'Rầy nâu', other: 'Côn trùng khác',
    night_of: 'Đêm', no_chart: 'Chưa vẽ được: chưa có số đo.',
    metrics: {
      salinity: 'Độ mặn', conductivity: 'Độ dẫn điện', specific_conductance: 'Độ dẫn điện (25 °C)',
      water_temperature: 'Nhiệt độ nước', ph: 'pH', dissolved_oxygen: 'Oxy hòa tan', do_saturation: 'Bão hòa oxy',
      turbidity: 'Độ đục', water_level: 'Mực nước', tds: 'Tổng chất rắn hòa tan', orp: 'Thế oxy hóa khử',
      chlorophyll: 'Diệp lục', bga: 'Tảo lam', pressure: 'Áp suất', salinity_probe: 'Độ mặn (đầu đo)',
      insect_count: 'Côn trùng vào đèn', air_temperature: 'Nhiệt độ không khí', air_humidity: 'Độ ẩm không khí',
      rain: 'Mưa', lamp_on: 'Đèn bẫy', battery_voltage: 'Điện áp ắc quy', battery_soc: 'Dung lượng ắc quy',
      battery_current: 'Dòng ắc quy (+ sạc)', battery_status: 'Tình trạng ắc quy', charging_status: 'Tình trạng sạc',
      controller_temperature: 'Nhiệt độ bộ sạc', pv_voltage: 'Điện áp pin mặt trời', pv_current: 'Dòng pin mặt trời',
      pv_power: 'Công suất pin mặt trời',
    },
    classes: { bph: 'rầy nâu', wbph: 'rầy lưng trắng', 'green-leafhopper': 'rầy xanh', 'stem-borer': 'sâu đục thân', 'leaf-folder': 'sâu cuốn lá' },
    charge: ['không sạc', 'sạc nổi', 'sạc tăng cường', 'sạc cân bằng'], charge_fault: 'lỗi bộ sạc',
    pv_in: ['', 'không có điện mặt trời', 'điện vào quá cao', 'lỗi đầu vào'],
    batt: ['bình thường', 'quá áp', 'thấp áp', 'đã ngắt tải', 'lỗi'], batt_temp: ['', 'quá nóng', 'quá lạnh'],
    q: { suspect: 'nghi ngờ', error: 'lỗi', maint: 'bảo trì' },
  },
  en: {
    title: 'Salinity & pests', h_water: 'Irrigation water today', h_pests: 'Planthoppers and sowing',
    h_alerts: 'Open alerts', h_sal_charts: 'Salinity: last 48 hours and 72-hour forecast',
    h_ins_charts: 'Light-trap catch per night', h_stations: 'Stations', loading: 'Loading…',
    no_alerts: 'No alerts.', no_data: 'No data yet.', no_water: 'No salinity stations yet.',
    no_traps: 'No light traps yet.', old_advice: 'Expired advice', no_old_advice: 'None.',
    people: 'Who receives what', no_people: 'No recipients file yet (recipients_file).',
    p_all: 'every station', p_levels: 'salinity levels', p_quiet: 'quiet hours', p_bulletin: 'bulletin at',
    p_today: (n) => `${n} message${n === 1 ? '' : 's'} today`,
    footer: 'Refreshes every 10 seconds. Vietnam time.', updated: 'Updated', lang_btn: 'VI', lang_name: 'Tiếng Việt',
    load_failed: 'Cannot load data from the hub', stale: 'old reading',
    meaning: ['Fine for all crops', 'Rice and fruit trees OK; not for durian',
      'Rice OK; not for fruit trees or vegetables', 'Harms rice seedlings; take water only if you must',
      'Close the sluice: no water for any crop'],
    up: '↑ rising', down: '↓ falling', steady: '→ steady', at: 'at',
    crops: { durian: 'durian', fruit: 'fruit trees', vegetables: 'vegetables', rice: 'rice', shrimp: 'shrimp' },
    now: 'now', today: 'today', tomorrow: 'tomorrow', yesterday: 'yesterday',
    days: ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'],
    none_short: (h) => `none in the next ${h} h`,
    none_full: (lv, h) => `No window below ${lv} g/L in the next ${h} hours`,
    win_full: (lv, txt) => `Intake window below ${lv} g/L: ${txt}`,
    no_fc: 'no forecast yet', fc_little: 'too few readings for a forecast yet', fc_old: 'forecast from old readings',
    tonight: 'Tonight', last_night: 'Last night', not_started: 'not started', insects: '', no_count: 'no count',
    sow_open: (a, b, n) => `Sow to escape planthoppers until ${b}: ${n} day${n === 1 ? '' : 's'} left (from ${a})`,
    sow_soon: (a, b, n) => `Sow to escape planthoppers from ${a} to ${b} (starts in ${n} day${n === 1 ? '' : 's'})`,
    hatch: (a, b) => `Next generation expected to hatch ${a}–${b}: survey the fields, treat at instar 2–3 if above threshold.`,
    no_advice: 'No open sowing advice.',
    adv_old: (a, b, s) => `sow ${a}–${b} (${s})`, expired: 'expired', superseded: 'replaced by newer advice',
    critical: 'critical', alarm: 'alarm', warning: 'warning', info: 'info',
    acked: 'acknowledged', acked_by: (w) => `acknowledged by ${w}`, ack: 'Acknowledge', ack_title: 'Acknowledge alert',
    ack_name: 'Your name', token_prompt: 'Access token (asked once)', cancel: 'Cancel',
    login_title: 'Access token needed', login_why: 'This gateway shows its data only with a token. Ask its operator.',
    login_ok: 'Open', read_only: 'This token can only read, not acknowledge.',
    bad_token: 'Wrong access token.', ack_failed: 'Could not acknowledge', ack_busy: 'The alert engine is busy or not running',
    val_now: 'Now', val_raised: 'when raised', since: 'since',
    al_sal: (lv) => `Salinity above ${lv} g/L`, al_peak: (c) => `${c} light-trap peak: sow right after the peak`,
    al_rising: (c) => `${c} catches rising night after night: a brood is near its peak, soak seed to sow right after it`,
    al_acid: (v) => `Acid water (pH ${v}): do not irrigate rice seedlings`, al_acid_hard: (v) => `Strongly acid water (pH ${v}): close intakes`,
    al_offline: 'Station offline', al_battery: 'Battery low', al_quality: 'Sensor reads errors or suspect values',
    al_other: 'Problem at the station', per_night: 'per night',
    online: 'online', offline: 'offline', unknown: 'unknown', last_seen: 'Last seen', never: 'never',
    tech: 'Technical', fw: 'Station firmware', system: 'System (slot)', update: 'Update', board: 'Board', config_version: 'Config version',
    spool_depth: 'Messages waiting to send', gaps: 'Messages missing', code: 'Station code', yes: 'yes', no: 'no',
    h_hubs: 'Hubs', hub_up: 'up', hub_off: 'offline', hub_this: 'this hub',
    hub_heard: 'Last heard', hub_st: (n) => `${n} station${n === 1 ? '' : 's'} on it`, hub_st_unknown: 'stations unknown (no station_url)',
    hub_step: 'In step with the other hub', hub_behind: (m) => `Behind the other hub by ${m} min`,
    hub_lag_unknown: 'Lag not known yet', hub_newest: 'Newest reading', hub_why_will: 'its broker says it stopped',
    hub_why_silent: 'not heard for 3 minutes', hub_other: 'Stations on another address', hub_none: 'Stations not connected',
    no_hubs: 'No hub heard yet.',
    measured: 'Measured', forecast_line: 'Forecast', band: 'Confidence band', thr_key: 'Limits 0.5 · 1 · 2 · 4 g/L',
    lanes_key: 'Strips under the axis: intake windows per limit', none_lane: 'none', bph: 'Brown planthopper', other: 'Other insects',
    night_of: 'Night of', no_chart: 'Nothing to draw yet: no readings.',
    metrics: {
      salinity: 'Salinity', conductivity: 'Conductivity', specific_conductance: 'Conductivity (25 °C)',
      water_temperature: 'Water temperature', ph: 'pH', dissolved_oxygen: 'Dissolved oxygen', do_saturation: 'Oxygen saturation',
      turbidity: 'Turbidity', water_level: 'Water level', tds: 'Dissolved solids', orp: 'Redox potential',
      chlorophyll: 'Chlorophyll', bga: 'Blue-green algae', pressure: 'Pressure', salinity_probe: 'Salinity (probe)',
      insect_count: 'Insects in the trap', air_temperature: 'Air temperature', air_humidity: 'Air humidity',
      rain: 'Rain', lamp_on: 'Trap lamp', battery_voltage: 'Battery voltage', battery_soc: 'Battery charge',
      battery_current: 'Battery current (+ charging)', battery_status: 'Battery state', charging_status: 'Charging state',
      controller_temperature: 'Charger temperature', pv_voltage: 'Solar panel voltage', pv_current: 'Solar panel current',
      pv_power: 'Solar power',
    },
    classes: { bph: 'brown planthopper', wbph: 'white-backed planthopper', 'green-leafhopper': 'green leafhopper', 'stem-borer': 'stem borer', 'leaf-folder': 'leaf folder' },
    charge: ['not charging', 'float charging', 'boost charging', 'equalizing'], charge_fault: 'charger fault',
    pv_in: ['', 'no solar input', 'input too high', 'input error'],
    batt: ['normal', 'over-voltage', 'under-voltage', 'load disconnected', 'fault'], batt_temp: ['', 'too hot', 'too cold'],
    q: { suspect: 'suspect', error: 'error', maint: 'maintenance' },
  },
};

let lang = localStorage.getItem('agri-lang') === 'en' ? 'en' : 'vi';
const state = {
  today: null, alerts: [], now: Date.now(), refreshes: 0, etags: {}, bodies: {},
  stations: null, fc: {}, sal: {}, nights: null, chartsAt: 0, stationsAt: 0, chartsOn: false, stationsOn: false, hubs: null, hubsOn: false,
};
const $ = (id) => document.getElementById(id);
const t = (k) => (T[lang][k] !== undefined ? T[lang][k] : T.vi[k] !== undefined ? T.vi[k] : k);

/* --- helpers ------------------------------------------------------------ */

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

/* A place name: Vietnamese whatever the page's language (lang="vi"). */
function named(tag, cls, text) {
  const e = el(tag, cls, text);
  e.lang = 'vi';
  return e;
}

function locale() { return lang === 'vi' ? 'vi-VN' : 'en-GB'; }

function fmtNum(v, digits) {
  if (v === null || v === undefined || !isFinite(v)) return '–';
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits === undefined ? 2 : digits }).format(v);
}

/* Salinity with sensible digits: 0,42 · 1,8 · 17 */
function fmtSal(v) { return fmtNum(v, v < 1 ? 2 : v < 10 ? 1 : 0); }

function hhmm(ms) {
  const d = new Date(ms + TZ_OFFSET_MS);
  return String(d.getUTCHours()).padStart(2, '0') + ':' + String(d.getUTCMinutes()).padStart(2, '0');
}

function localDay(ms) { return Math.floor((ms + TZ_OFFSET_MS) / 86400e3); }

function ddmm(ms) {
  const d = new Date(ms + TZ_OFFSET_MS);
  return String(d.getUTCDate()).padStart(2, '0') + '/' + String(d.getUTCMonth() + 1).padStart(2, '0');
}

/* "hôm nay", "mai", "hôm qua" or "T7 05/04", relative to the gateway's now. */
function dayWord(ms) {
  const d = localDay(ms) - localDay(state.now);
  if (d === 0) return t('today');
  if (d === 1) return t('tomorrow');
  if (d === -1) return t('yesterday');
  return t('days')[new Date(ms + TZ_OFFSET_MS).getUTCDay()] + ' ' + ddmm(ms);
}

function whenText(ms) { return dayWord(ms) + ' ' + hhmm(ms); }

function level(v) {
  let i = 0;
  while (i < LADDER.length && v >= LADDER[i]) i++;
  return i;
}

function metricLabel(m) { return T[lang].metrics[m] || T.vi.metrics[m] || m.replace(/_/g, ' '); }

function place(s) { return (s && s.name) || (s && s.station) || ''; }

/* A station's name and district from whatever answer carries them. */
function siteOf(code) {
  const all = [].concat(state.today ? state.today.water.concat(state.today.traps) : [], state.stations || []);
  return all.find((s) => s.station === code) || { station: code, name: null, district: null };
}

/* The token reads are sent with: the acknowledging one, else a reading one. */
function readToken() {
  return sessionStorage.getItem('agri-token') || sessionStorage.getItem('agri-read-token');
}

/* A link's #token=... becomes the session's reading token, and leaves the
 * address bar and the history at once. */
function takeLinkToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem('agri-read-token', decodeURIComponent(m[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

/* Asks for the reading token (a read answered 401). Resolves true when one
 * was given. */
function askReadToken() {
  return new Promise((resolve) => {
    const dlg = $('login'), tok = $('read-token');
    tok.value = '';
    dlg.hidden = false;
    tok.focus();
    $('login-form').onsubmit = (ev) => {
      ev.preventDefault();
      if (!tok.value.trim()) return;
      sessionStorage.setItem('agri-read-token', tok.value.trim());
      dlg.hidden = true;
      $('login-form').onsubmit = null;
      resolve(true);
    };
  });
}

/* GET with the last ETag: a 304 keeps the last body. Returns {status, ok, body}. */
async function api(path, opts) {
  const o = Object.assign({ cache: 'no-store' }, opts || {});
  const get = !o.method || o.method === 'GET';
  if (get && readToken()) o.headers = Object.assign({ Authorization: 'Bearer ' + readToken() }, o.headers || {});
  if (get && state.etags[path]) o.headers = Object.assign({ 'If-None-Match': state.etags[path] }, o.headers || {});
  const r = await fetch(path, o);
  if (get && r.status === 304 && state.bodies[path] !== undefined)
    return { status: 200, ok: true, body: state.bodies[path], same: true };
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (get && r.ok && r.headers.get('ETag')) {
    state.etags[path] = r.headers.get('ETag');
    state.bodies[path] = body;
  }
  return { status: r.status, ok: r.ok, body };
}

/* --- language ------------------------------------------------------------ */

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((e) => { e.textContent = t(e.dataset.i18n); });
  $('lang').textContent = t('lang_btn');
  $('lang').setAttribute('aria-label', t('lang_name'));
}

/* --- today: canals ----------------------------------------------------- */

/* The first window below `below` that has not ended, or null. */
function nextWindow(w, below) {
  const fc = w.forecast;
  if (!fc) return null;
  return fc.windows.filter((x) => x.below === below && Date.parse(x.to) > state.now)
    .sort((a, b) => Date.parse(a.from) - Date.parse(b.from))[0] || null;
}

/* Clock times of a window, on the safe side: the start rounded up to the
 * minute, the end down; "bây giờ" when it has begun. Short (for the card:
 * an end two or more days away by its date only) or full (every time). */
function windowText(win, full) {
  const f = Date.parse(win.from), to = Math.floor(Date.parse(win.to) / 60e3) * 60e3;
  const from = Math.max(f, state.now);
  const start = f <= state.now ? t('now') : whenText(Math.ceil(f / 60e3) * 60e3);
  let end;
  if (localDay(to) === localDay(from)) end = hhmm(to);
  else if (full || localDay(to) - localDay(state.now) <= 1) end = whenText(to);
  else end = dayWord(to);
  return start + '\u2009–\u2009' + end;
}

function horizonHours(fc) {
  return Math.max(1, Math.round((Date.parse(fc.until) - state.now) / 3600e3));
}

function noForecastText(w) {
  if (w.forecast_why && /too little data/.test(w.forecast_why)) return t('fc_little');
  return t('no_fc');
}

function canalCard(w) {
  const s = w.salinity;
  const lv = s ? level(s.value) : null;
  const card = el('article', 'card canal' + (lv === null ? '' : ' b' + lv));
  card.dataset.station = w.station;
  const head = el('div', 'canal-head');
  head.appendChild(named('h3', 'place', place(w)));
  if (s) {
    const chip = el('span', 'sal lvl' + lv, fmtSal(s.value) + ' ');
    chip.dataset.value = s.value;
    chip.appendChild(el('span', 'unit', 'g/L'));
    head.appendChild(chip);
  }
  card.appendChild(head);
  /* district (the code when unnamed), trend, time of the reading */
  const sub = el('p', 'where');
  if (w.name ? w.district : w.station) sub.appendChild(named('span', null, w.name ? w.district : w.station));
  if (s) {
    const tr = w.trend_per_h;
    if (tr !== null && tr !== undefined) {
      const small = Math.abs(tr) < Math.max(0.02, 0.03 * s.value);
      sub.appendChild(el('span', 'trend', (sub.textContent ? ' · ' : '') + (small ? t('steady') : tr > 0 ? t('up') : t('down'))));
    }
    const ts = Date.parse(s.ts);
    const old = state.now - ts > STALE_MS;
    sub.appendChild(el('span', old ? 'at stale-data' : 'at',
      (sub.textContent ? ' · ' : '') + (old ? t('stale') + ' ' + whenText(ts) : t('at') + ' ' + hhmm(ts))));
  }
  card.appendChild(sub);
  card.appendChild(el('p', 'meaning', s ? t('meaning')[lv] : t('no_data')));
  const ul = el('ul', 'windows');
  const fc = w.forecast;
  for (const L of LEVELS) {
    const li = el('li');
    li.dataset.level = L.below;
    const lab = el('span', 'lv');
    lab.appendChild(el('b', null, '< ' + fmtNum(L.below) + ' g/L'));
    lab.appendChild(document.createTextNode(' ' + t('crops')[L.crop]));
    li.appendChild(lab);
    let text, full;
    const win = nextWindow(w, L.below);
    if (!fc) {
      li.className = 'nofc';
      text = noForecastText(w);
      full = text;
    } else if (!win) {
      li.className = 'none';
      text = t('none_short')(horizonHours(fc));
      full = t('none_full')(fmtNum(L.below), horizonHours(fc));
    } else {
      li.className = Date.parse(win.from) <= state.now ? 'win ongoing' : 'win';
      li.dataset.from = win.from;
      li.dataset.to = win.to;
      text = windowText(win, false);
      full = t('win_full')(fmtNum(L.below), windowText(win, true));
    }
    li.appendChild(el('span', 'when', text));
    li.setAttribute('aria-label', full);
    li.title = full;
    ul.appendChild(li);
  }
  card.appendChild(ul);
  if (fc && state.now - Date.parse(fc.from_data_until) > 6 * 3600e3)
    card.appendChild(el('p', 'meaning stale-data', t('fc_old')));
  return card;
}

function renderCanals() {
  const box = $('canals');
  const water = state.today ? state.today.water : [];
  box.replaceChildren(...water.map(canalCard));
  if (!water.length) box.appendChild(el('p', 'muted', t('no_water')));
}

/* --- today: planthoppers per district ---------------------------------- */

function advisoryDates(a) {
  const from = Date.parse(a.sow_from), to = Date.parse(a.sow_to) - 1; /* sow_to is exclusive */
  return { from, to, a: ddmm(from), b: ddmm(to) };
}

function adviceLine(a) {
  if (!a || a.state !== 'open') {
    const p = el('p', 'advice none', t('no_advice'));
    return p;
  }
  const d = advisoryDates(a);
  const p = el('p', 'advice open');
  p.dataset.advisory = a.id;
  p.dataset.advisoryState = a.state;
  const text = d.from > state.now
    ? t('sow_soon')(d.a, d.b, Math.max(1, Math.ceil((d.from - state.now) / 86400e3)))
    : t('sow_open')(d.a, d.b, Math.max(1, Math.ceil((d.to - state.now) / 86400e3)));
  p.appendChild(el('span', 'left', text));
  p.appendChild(document.createElement('br'));
  p.appendChild(document.createTextNode(t('hatch')(ddmm(Date.parse(a.hatch_from)), ddmm(Date.parse(a.hatch_to) - 1))));
  return p;
}

function countText(n, tonight) {
  if (!n || n.bph === null || n.bph === undefined) {
    const localH = new Date(state.now + TZ_OFFSET_MS).getUTCHours();
    return tonight && localH >= 12 && localH < 18 ? t('not_started') : t('no_count');
  }
  if (tonight && n.bph === 0) {
    const localH = new Date(state.now + TZ_OFFSET_MS).getUTCHours();
    if (localH >= 12 && localH < 18) return t('not_started');
  }
  return fmtNum(n.bph, 0) + (t('insects') ? ' ' + t('insects') : '');
}

function renderDistricts() {
  const box = $('districts');
  const traps = state.today ? state.today.traps : [];
  const groups = new Map();
  for (const tr of traps) {
    const d = tr.district || place(tr);
    if (!groups.has(d)) groups.set(d, []);
    groups.get(d).push(tr);
  }
  const names = [...groups.keys()].sort((a, b) => a.localeCompare(b, 'vi'));
  const cards = names.map((d) => {
    const card = el('article', 'card district');
    card.dataset.district = d;
    card.appendChild(named('h3', null, d));
    for (const tr of groups.get(d)) {
      const div = el('div', 'trap');
      div.dataset.station = tr.station;
      div.appendChild(named('div', 'where', [tr.name, tr.station].filter(Boolean).join(' · ')));
      const n = tr.nights || [];
      const c = el('div', 'counts');
      const tn = el('span', 'tonight', t('tonight') + ': ');
      tn.appendChild(el('b', null, countText(n[n.length - 1], true)));
      const ln = el('span', 'last-night', t('last_night') + ': ');
      ln.appendChild(el('b', null, countText(n[n.length - 2], false)));
      c.append(tn, ln);
      div.appendChild(c);
      div.appendChild(adviceLine(tr.advisory));
      card.appendChild(div);
    }
    return card;
  });
  box.replaceChildren(...cards);
  if (!cards.length) box.appendChild(el('p', 'muted', t('no_traps')));
}

async function loadOldAdvice() {
  const r = await api('/api/v1/advisories').catch(() => ({ ok: false }));
  const ul = $('old-advice-list');
  ul.textContent = '';
  if (!r.ok) { ul.appendChild(el('li', null, t('no_old_advice'))); return; }
  const old = r.body.advisories.filter((a) => a.state !== 'open');
  for (const a of old) {
    const d = advisoryDates(a);
    const li = el('li', 'adv-' + a.state);
    li.appendChild(named('span', null, place(a) + (a.district && a.district !== place(a) ? ', ' + a.district : '')));
    li.appendChild(document.createTextNode(': ' + t('adv_old')(d.a, d.b, t(a.state))));
    li.dataset.advisory = a.id;
    li.dataset.advisoryState = a.state;
    ul.appendChild(li);
  }
  if (!old.length) ul.appendChild(el('li', null, t('no_old_advice')));
}

/* Who receives what (GET /api/v1/recipients), loaded when opened: names,
 * roles, districts and masked addresses are the people's own words
 * (lang="vi"); what they follow, in the page's language. */
async function loadPeople() {
  const r = await api('/api/v1/recipients').catch(() => ({ ok: false }));
  const ul = $('people-list');
  ul.textContent = '';
  const people = r.ok ? r.body.recipients : [];
  for (const p of people) {
    const li = el('li');
    li.dataset.person = p.name;
    li.appendChild(named('strong', null, p.display || p.name));
    if (p.role) li.appendChild(named('span', 'muted', ' · ' + p.role));
    const where = [].concat(p.stations || [], p.districts || []);
    const line = el('div');
    line.appendChild(named('span', null, where.length ? where.join(', ') : ''));
    if (!where.length) line.appendChild(el('span', null, t('p_all')));
    line.appendChild(el('span', null, ' · ' + t('p_levels') + ' ' +
      (p.salinity_g_l || []).map((v) => fmtNum(v, 1)).join(' / ') + ' g/L'));
    if (p.quiet) line.appendChild(el('span', null, ' · ' + t('p_quiet') + ' ' + p.quiet));
    if (p.bulletin) line.appendChild(el('span', null, ' · ' + t('p_bulletin') + ' ' + p.bulletin));
    line.appendChild(el('span', null, ' · ' + t('p_today')(p.today || 0)));
    li.appendChild(line);
    li.appendChild(named('div', 'muted', (p.channels || []).join(', ')));
    ul.appendChild(li);
  }
  if (!people.length) ul.appendChild(el('li', null, t('no_people')));
}

/* --- alerts: grouped per station, in a stable order --------------------- */

function sevRank(s) { const i = SEVERITY.indexOf(s); return i < 0 ? SEVERITY.length : i; }

function classOf(sensor) {
  for (const c of Object.keys(T.vi.classes)) if (sensor && sensor.endsWith('-' + c)) return c;
  return null;
}

/* The alert in words, in the page's language, from its fields (the
 * engine's message is in one language only and names codes). */
function alertText(a) {
  const unit = a.current && a.current.unit ? a.current.unit : (a.metric === 'salinity' ? 'g/L' : '');
  if (a.metric === 'salinity' && a.threshold !== null) {
    const i = LADDER.indexOf(a.threshold);
    return t('al_sal')(fmtNum(a.threshold)) + ': ' + t('meaning')[i >= 0 ? i + 1 : level(a.threshold)].toLowerCase();
  }
  if (a.metric === 'insect_count') {
    const c = classOf(a.sensor);
    const name = c ? T[lang].classes[c] : metricLabel('insect_count');
    const cap = name.charAt(0).toUpperCase() + name.slice(1);
    return /peak/.test(a.rule) ? t('al_peak')(cap) : /ris/.test(a.rule) ? t('al_rising')(cap)
      : cap + ': ' + fmtNum(a.value, 0) + ' ' + t('per_night');
  }
  if (a.metric === 'ph' && a.threshold !== null && a.value !== null && a.value < 7)
    return (a.threshold <= 4 ? t('al_acid_hard') : t('al_acid'))(fmtNum(a.value, 1));
  if (!a.metric && /offline|no.?data|silent/.test(a.rule)) return t('al_offline');
  if (a.metric === 'battery_voltage') return t('al_battery') + ': ' + fmtNum(a.value) + ' V';
  if (/quality/.test(a.rule)) return t('al_quality') + (a.metric ? ' (' + metricLabel(a.metric) + ')' : '');
  if (a.metric && a.threshold !== null && a.value !== null)
    return metricLabel(a.metric) + ' ' + fmtNum(a.value) + ' ' + unit + ' ' + (a.value >= a.threshold ? '≥' : '≤') + ' ' +
      fmtNum(a.threshold) + ' ' + unit;
  return lang === 'vi' && a.message ? a.message : t('al_other');
}

function alertValues(a) {
  const unit = a.current && a.current.unit ? a.current.unit : '';
  const parts = [];
  if (a.metric === 'insect_count') {
    const v = a.raised_value !== null && a.raised_value !== undefined ? a.raised_value : a.value;
    if (v !== null) parts.push([t('val_raised'), fmtNum(v, 0) + ' ' + t('per_night')]);
  } else if (a.metric) {
    if (a.current && a.current.value !== null) parts.push([t('val_now'), fmtNum(a.current.value) + ' ' + unit]);
    const v = a.raised_value !== null && a.raised_value !== undefined ? a.raised_value : a.value;
    if (v !== null) parts.push([t('val_raised'), fmtNum(v) + ' ' + unit]);
  }
  return parts;
}

function renderAlerts() {
  const ul = $('alerts');
  const open = state.alerts.filter((a) => a.state === 'active' || a.state === 'acknowledged');
  const groups = new Map();
  for (const a of open) {
    if (!groups.has(a.station)) groups.set(a.station, []);
    groups.get(a.station).push(a);
  }
  const order = [...groups.entries()].map(([st, list]) => {
    list.sort((x, y) => sevRank(x.severity) - sevRank(y.severity) || x.id.localeCompare(y.id));
    return { st, list, rank: sevRank(list[0].severity), name: place(siteOf(st)) || st };
  }).sort((x, y) => x.rank - y.rank || x.name.localeCompare(y.name, 'vi') || x.st.localeCompare(y.st));
  const items = order.map((g) => {
    const li = el('li', 'card alert-group ' + g.list[0].severity);
    li.dataset.station = g.st;
    const s = siteOf(g.st);
    const h = el('h3');
    h.appendChild(named('span', null, g.name + ' '));
    h.appendChild(named('span', 'where', [s.district, g.st].filter(Boolean).join(' · ')));
    li.appendChild(h);
    for (const a of g.list) {
      const row = el('div', 'alert ' + a.severity + ' ' + a.state);
      row.dataset.id = a.id;
      const body = el('div', 'body');
      const top = el('div');
      top.appendChild(el('span', 'badge ' + a.severity, t(a.severity)));
      if (a.state === 'acknowledged')
        top.appendChild(el('span', 'badge acknowledged', a.acknowledged_by ? t('acked_by')(a.acknowledged_by) : t('acked')));
      top.appendChild(el('span', 'msg', alertText(a)));
      body.appendChild(top);
      const vals = alertValues(a);
      const v = el('div', 'vals');
      vals.forEach(([k, val], i) => {
        if (i) v.appendChild(document.createTextNode(' · '));
        v.appendChild(document.createTextNode(k + ' '));
        v.appendChild(el('b', null, val));
      });
      v.appendChild(document.createTextNode((vals.length ? ' · ' : '') + t('since') + ' ' + whenText(Date.parse(a.raised_at))));
      body.appendChild(v);
      row.appendChild(body);
      if (a.state === 'active') {
        const b = el('button', 'ack', t('ack'));
        b.type = 'button';
        b.addEventListener('click', () => ack(a, b));
        row.appendChild(b);
      }
      li.appendChild(row);
    }
    return li;
  });
  ul.replaceChildren(...items);
  $('no-alerts').hidden = items.length > 0;
}

/* The acknowledgement dialog: names the alert and its place, asks the
 * person's name (remembered on this device) and, once a session, the token. */
function askAck(a) {
  return new Promise((resolve) => {
    const dlg = $('ack'), name = $('ack-name'), tok = $('token');
    const s = siteOf(a.station);
    $('ack-what').replaceChildren(document.createTextNode(alertText(a) + ' — '),
      named('span', null, (place(s) || a.station) + (s.district ? ', ' + s.district : '')));
    name.value = localStorage.getItem('agri-person') || '';
    tok.value = '';
    const needToken = !sessionStorage.getItem('agri-token');
    $('ack-token-row').hidden = !needToken;
    tok.required = needToken;
    dlg.hidden = false;
    (name.value ? (needToken ? tok : $('ack-ok')) : name).focus();
    const done = (v) => {
      dlg.hidden = true;
      $('ack-form').onsubmit = null;
      $('ack-cancel').onclick = null;
      resolve(v);
    };
    $('ack-form').onsubmit = (ev) => {
      ev.preventDefault();
      const who = name.value.trim();
      if (!who) return;
      done({ who, token: needToken ? tok.value.trim() : null });
    };
    $('ack-cancel').onclick = () => done(null);
  });
}

async function ack(a, button) {
  const res = await askAck(a);
  if (!res) return;
  localStorage.setItem('agri-person', res.who);
  if (res.token) sessionStorage.setItem('agri-token', res.token);
  const token = sessionStorage.getItem('agri-token');
  button.disabled = true;
  const r = await api('/api/v1/alerts/' + encodeURIComponent(a.id) + '/ack', {
    method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ by: res.who }),
  }).catch(() => ({ status: 0, body: null }));
  if (r.status === 401) {
    sessionStorage.removeItem('agri-token');
    showError(t('bad_token'));
  } else if (r.status === 403 && r.body && /only reads/.test(r.body.error || '')) {
    sessionStorage.removeItem('agri-token');
    showError(t('read_only'));
  } else if (r.status === 503) {
    showError(t('ack_busy') + (r.body && r.body.error ? ' (' + r.body.error + ')' : ''));
  } else if (r.status !== 200) {
    showError(t('ack_failed') + ': ' + (r.body && r.body.error ? r.body.error : 'HTTP ' + r.status));
  } else {
    showError(null);
  }
  button.disabled = false;
  await refreshAlerts();
}

/* --- charts (loaded when scrolled into view) ---------------------------- */

function chartWidth(box) { return Math.max(300, Math.min(1200, Math.floor(box.clientWidth || 340))); }

function chartCard(id, title) {
  let card = document.getElementById(id);
  if (!card) {
    card = el('div', 'card chart-card');
    card.id = id;
    card.append(el('h3'), el('div', 'plot'), el('div', 'keys'));
  }
  card.querySelector('h3').replaceChildren(named('span', null, title));
  return card;
}

function key(cls, text) {
  const s = el('span');
  s.appendChild(el('span', 'swatch ' + cls));
  s.appendChild(document.createTextNode(text));
  return s;
}

function timeAxis(s, x, t0, t1, W, m, yText) {
  const step = [3, 6, 12, 24, 48].map((h) => h * 3600e3)
    .find((st) => (t1 - t0) / st <= (W - m.l - m.r) / 80) || 96 * 3600e3;
  for (let tt = Math.ceil((t0 + TZ_OFFSET_MS) / step) * step - TZ_OFFSET_MS; tt <= t1; tt += step) {
    s.appendChild(svg('line', { class: 'grid', x1: x(tt), x2: x(tt), y1: m.t, y2: yText - 14 }));
    const midnight = ((tt + TZ_OFFSET_MS) % 86400e3) === 0;
    s.appendChild(svg('text', { x: x(tt), y: yText, 'text-anchor': 'middle' }, midnight ? ddmm(tt) : hhmm(tt)));
  }
}

/* Salinity on a log scale (0.5, 1, 2, 4 g/L evenly apart), measured then
 * forecast with its band; the ladder lines labelled on the right; under
 * the plot one lane per intake level with that level's windows. */
function drawSalinity(box, station, series, fc) {
  const W = chartWidth(box), PH = W < 500 ? 190 : 220, LANE = 18;
  const m = { l: 48, r: 34, t: 22, b: 0 };
  const lanesTop = m.t + PH + 6, H = lanesTop + LEVELS.length * LANE + 24;
  let t0 = Infinity, t1 = -Infinity, vmax = 5, vmin = 0.1;
  for (const pts of Object.values(series)) for (const p of pts) {
    t0 = Math.min(t0, p.t); t1 = Math.max(t1, p.t); vmax = Math.max(vmax, p.v);
  }
  const tMeasEnd = t1;
  const fpts = fc && fc.points ? fc.points.map((p) => ({ t: Date.parse(p.ts), v: p.value, lo: p.lo, hi: p.hi })) : [];
  for (const p of fpts) { t1 = Math.max(t1, p.t); vmax = Math.max(vmax, p.hi); if (!isFinite(t0)) t0 = p.t; }
  if (!isFinite(t0)) return null;
  if (t1 <= t0) t1 = t0 + 3600e3;
  vmax *= 1.2;
  const x = (tt) => m.l + (tt - t0) / (t1 - t0) * (W - m.l - m.r);
  const ly = (v) => Math.log(Math.max(v, vmin));
  const y = (v) => m.t + PH - (ly(v) - ly(vmin)) / (ly(vmax) - ly(vmin)) * PH;
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-station': station,
    'aria-label': metricLabel('salinity') + ' ' + (place(siteOf(station)) || station) });
  for (const v of [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]) {
    if (v > vmax) break;
    s.appendChild(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    s.appendChild(svg('text', { x: m.l - 4, y: y(v) + 5, 'text-anchor': 'end' }, fmtNum(v)));
  }
  s.appendChild(svg('text', { x: 2, y: 15 }, 'g/L'));
  const colors = ['#1e7a46', '#5d9a2a', '#9a7b00', '#b0182c'];
  LADDER.forEach((v, i) => {
    s.appendChild(svg('line', { class: 'thr', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: colors[i] }));
    s.appendChild(svg('text', { class: 'lbl', x: W - m.r + 3, y: y(v) + 5 }, fmtNum(v)));
  });
  if (fpts.length) {
    let band = fpts.map((p) => `${x(p.t).toFixed(1)},${y(p.hi).toFixed(1)}`).join(' ');
    band += ' ' + fpts.slice().reverse().map((p) => `${x(p.t).toFixed(1)},${y(Math.max(vmin, p.lo)).toFixed(1)}`).join(' ');
    s.appendChild(svg('polygon', { class: 'band', points: band }));
    s.appendChild(svg('polyline', { class: 'fc-line', points: fpts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
  }
  const lineColors = ['#0b6e4f', '#2b5ea8', '#7b3fa0', '#8a3c00'];
  Object.keys(series).sort().forEach((sensor, i) => {
    let d = '', prev = null;
    const pts = series[sensor];
    const gap = Math.max(3 * medianStep(pts), 20 * 60e3);
    for (const p of pts) {
      d += (prev === null || p.t - prev > gap ? 'M' : 'L') + x(p.t).toFixed(1) + ',' + y(p.v).toFixed(1);
      prev = p.t;
    }
    s.appendChild(svg('path', { class: 'line', d, stroke: lineColors[i % lineColors.length], 'data-sensor': sensor }));
  });
  if (isFinite(tMeasEnd)) {
    s.appendChild(svg('line', { class: 'now', x1: x(tMeasEnd), x2: x(tMeasEnd), y1: m.t - 4, y2: lanesTop + LEVELS.length * LANE }));
    s.appendChild(svg('text', { class: 'lbl', x: x(tMeasEnd), y: m.t - 7, 'text-anchor': x(tMeasEnd) > W - 70 ? 'end' : 'middle' },
      t('now')));
  }
  s.appendChild(svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: m.t + PH, y2: m.t + PH }));
  /* the intake lanes */
  const fStart = fpts.length ? fpts[0].t : null, fEnd = fpts.length ? fpts[fpts.length - 1].t : null;
  LEVELS.forEach((L, i) => {
    const ly0 = lanesTop + i * LANE;
    s.appendChild(svg('text', { class: 'lbl', x: m.l - 4, y: ly0 + 14, 'text-anchor': 'end' }, '< ' + fmtNum(L.below)));
    if (fStart === null) return;
    s.appendChild(svg('rect', { class: 'lane', x: x(fStart), y: ly0 + 2, width: Math.max(1, x(fEnd) - x(fStart)), height: LANE - 4 }));
    const wins = (fc.windows || []).filter((w) => w.below === L.below);
    for (const w of wins) {
      const a = x(Date.parse(w.from)), b = x(Date.parse(w.to));
      const r = svg('rect', { class: 'window win' + i, x: a, y: ly0 + 2, width: Math.max(2, b - a), height: LANE - 4,
        'data-below': L.below, 'data-from': w.from, 'data-to': w.to });
      r.appendChild(svg('title', {}, t('win_full')(fmtNum(L.below), whenText(Date.parse(w.from)) + ' – ' + whenText(Date.parse(w.to)))));
      s.appendChild(r);
    }
    if (!wins.length)
      s.appendChild(svg('text', { x: x(fStart) + 4, y: ly0 + 14 }, t('none_lane')));
  });
  timeAxis(s, x, t0, t1, W, m, H - 6);
  return s;
}

function medianStep(pts) {
  if (pts.length < 3) return 60e3;
  const d = [];
  for (let i = 1; i < pts.length; i += Math.max(1, Math.floor(pts.length / 50))) d.push(pts[i].t - pts[i - 1].t);
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)] || 60e3;
}

/* Nightly light-trap catch: brown planthoppers, other classes stacked above. */
function drawNights(box, station, nights) {
  const W = chartWidth(box), H = W < 500 ? 200 : 230;
  const m = { l: 48, r: 18, t: 10, b: 26 };
  if (!nights.length) return null;
  const tot = (n) => (n.bph || 0) + (n.other || 0);
  const vmax = Math.max(10, ...nights.map(tot)) * 1.1;
  const bw = (W - m.l - m.r) / nights.length;
  const y = (v) => H - m.b - v / vmax * (H - m.t - m.b);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-station': station,
    'aria-label': t('h_ins_charts') + ' ' + (place(siteOf(station)) || station) });
  const span = vmax / 4, mag = Math.pow(10, Math.floor(Math.log10(span)));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((st) => st >= span) || span;
  for (let v = 0; v <= vmax; v += step) {
    s.appendChild(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    s.appendChild(svg('text', { x: m.l - 4, y: y(v) + 5, 'text-anchor': 'end' }, fmtNum(v, 0)));
  }
  const every = Math.ceil(nights.length / Math.max(1, Math.floor((W - m.l - m.r) / 52)));
  nights.forEach((n, i) => {
    const x0 = m.l + i * bw + bw * 0.15, w = bw * 0.7;
    const b = svg('rect', { class: 'bar-bph', x: x0, y: y(n.bph || 0), width: w, height: Math.max(0, y(0) - y(n.bph || 0)) });
    b.appendChild(svg('title', {}, `${t('night_of')} ${n.night.slice(8)}/${n.night.slice(5, 7)}: ${t('bph')} ${fmtNum(n.bph, 0)}, ${t('other')} ${fmtNum(n.other, 0)}`));
    s.appendChild(b);
    s.appendChild(svg('rect', { class: 'bar-other', x: x0, y: y(tot(n)), width: w, height: Math.max(0, y(n.bph || 0) - y(tot(n))) }));
    if ((nights.length - 1 - i) % every === 0)
      s.appendChild(svg('text', { x: x0 + w / 2, y: H - 6, 'text-anchor': 'middle' }, n.night.slice(8) + '/' + n.night.slice(5, 7)));
  });
  s.appendChild(svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  return s;
}

/* The measured series and the forecast of a canal; fetched again only
 * when the chart data is CHARTS_MS old (refetch) and they changed. */
async function loadSalinity(w, refetch) {
  const c = state.sal[w.station] || {};
  const latest = w.salinity ? w.salinity.ts : null;
  if (refetch && latest && c.latest !== latest) {
    const from = new Date(Date.parse(latest) - SAL_WINDOW_MS).toISOString();
    let r = await api(`/api/v1/readings?station=${encodeURIComponent(w.station)}&metric=salinity&from=${from}&limit=100000`);
    const rows = r.ok ? r.body.readings.slice() : [];
    for (let n = 0; r.ok && r.body.next && n < 10; n++) { /* more pages (docs/api.md) */
      r = await api(r.body.next);
      if (r.ok) rows.push(...r.body.readings);
    }
    if (r.ok) {
      const series = {};
      for (const p of rows) {
        if (p.value === null || p.q === 'error') continue;
        (series[p.sensor] = series[p.sensor] || []).push({ t: Date.parse(p.ts), v: p.value });
      }
      c.series = series;
      c.latest = latest;
    }
  }
  const madeAt = w.forecast ? w.forecast.made_at : null;
  if (madeAt && (!state.fc[w.station] || (refetch && state.fc[w.station].made_at !== madeAt))) {
    const r = await api(`/api/v1/forecast?station=${encodeURIComponent(w.station)}&metric=salinity`);
    if (r.ok) state.fc[w.station] = r.body;
  }
  state.sal[w.station] = c;
  return c;
}

/* Draws the charts; their data is fetched again every CHARTS_MS at most
 * (a phone on 3G pays for every reading), redraws reuse it. */
async function refreshCharts() {
  if (!state.chartsOn || !state.today) return;
  const refetch = Date.now() - state.chartsAt >= CHARTS_MS;
  if (refetch) state.chartsAt = Date.now();
  const salBox = $('salinity-charts'), insBox = $('insect-charts');
  const salCards = [];
  for (const w of state.today.water) {
    const c = await loadSalinity(w, refetch);
    const card = chartCard('sal-' + w.station, (place(w) || w.station) + ' · ' + w.station);
    if (card.parentNode !== salBox) salBox.appendChild(card);
    const fc = w.forecast ? state.fc[w.station] : null;
    const plot = card.querySelector('.plot');
    const g = c.series ? drawSalinity(plot, w.station, c.series, fc) : null;
    plot.replaceChildren(g || el('p', 'muted', t('no_chart')));
    const keys = card.querySelector('.keys');
    keys.replaceChildren(key('sw-meas', t('measured')), key('sw-thr', t('thr_key')));
    if (fc) keys.append(key('sw-fc', t('forecast_line')), key('sw-band', t('band')), key('sw-window', t('lanes_key')));
    else keys.append(el('span', null, noForecastText(w)));
    salCards.push(card);
  }
  salBox.replaceChildren(...salCards);
  if (!salCards.length) salBox.appendChild(el('p', 'muted', t('no_data')));
  if (!state.nights || refetch) {
    const r = await api('/api/v1/today?nights=' + NIGHTS);
    if (r.ok) state.nights = r.body.traps;
  }
  const insCards = (state.nights || []).map((tr) => {
    const card = chartCard('ins-' + tr.station, (place(tr) || tr.station) + ' · ' + tr.station);
    if (card.parentNode !== insBox) insBox.appendChild(card);
    const plot = card.querySelector('.plot');
    plot.replaceChildren(drawNights(plot, tr.station, tr.nights) || el('p', 'muted', t('no_chart')));
    card.querySelector('.keys').replaceChildren(key('sw-bph', t('bph')), key('sw-other', t('other')));
    return card;
  });
  insBox.replaceChildren(...insCards);
  if (!insCards.length) insBox.appendChild(el('p', 'muted', t('no_data')));
}

/* --- stations and their technical telemetry ----------------------------- */

function techValue(l) {
  if (l.value === null) return '–';
  const v = l.value;
  if (l.metric === 'charging_status') {
    const parts = [t('charge')[(v >> 2) & 3]];
    if (v & 2) parts.push(t('charge_fault'));
    if ((v >> 14) & 3) parts.push(t('pv_in')[(v >> 14) & 3]);
    return parts.join(', ');
  }
  if (l.metric === 'battery_status') {
    const parts = [t('batt')[v & 15] || '?'];
    if ((v >> 4) & 15) parts.push(t('batt_temp')[(v >> 4) & 15] || '?');
    return parts.join(', ');
  }
  if (l.unit === '0/1') return v ? t('yes') : t('no');
  return fmtNum(v) + (l.unit && l.unit !== 'count' ? ' ' + l.unit : '');
}

function renderStations() {
  if (!state.stations) return;
  const box = $('stations');
  const cards = state.stations.map((s) => {
    const card = el('article', 'card station');
    card.dataset.station = s.station;
    const head = el('div', 'head');
    head.appendChild(named('h3', 'name', place(s)));
    head.appendChild(el('span', 'state ' + s.state, t(s.state)));
    card.appendChild(head);
    const seen = el('div', 'seen');
    seen.appendChild(named('span', null, [s.district, s.station].filter(Boolean).join(' · ')));
    seen.appendChild(document.createTextNode(' · ' + t('last_seen') + ': ' +
      (s.last_seen ? whenText(Date.parse(s.last_seen)) : t('never'))));
    card.appendChild(seen);
    const det = el('details', 'tech');
    det.appendChild(el('summary', null, t('tech')));
    const dl = el('dl', 'values');
    const add = (k, v, cls) => { dl.appendChild(el('dt', null, k)); dl.appendChild(el('dd', cls, v)); };
    const counts = {};
    s.latest.forEach((l) => { counts[l.metric] = (counts[l.metric] || 0) + 1; });
    for (const l of s.latest) {
      let label = metricLabel(l.metric);
      if (l.metric === 'insect_count') label += ' · ' + (T[lang].classes[classOf(l.sensor)] || l.sensor);
      else if (counts[l.metric] > 1) label += ' · ' + l.sensor;
      const q = l.q !== 'ok' ? ' (' + (t('q')[l.q] || l.q) + ')' : '';
      add(label, techValue(l) + q, l.q);
    }
    add(t('code'), s.station);
    if (s.fw) add(t('fw'), s.fw);
    if (s.system) add(t('system'), s.system + (s.slot ? ' (' + s.slot + ')' : ''));
    if (s.update) add(t('update'), s.update.version + ': ' + s.update.state +
                      (s.update.error ? ' (' + s.update.error + ')' : ''),
                      s.update.state === 'rolled-back' || s.update.state === 'failed' ? 'suspect' : null);
    if (s.board) add(t('board'), s.board);
    if (s.config_version !== null) add(t('config_version'), String(s.config_version));
    if (s.spool_depth !== null) add(t('spool_depth'), fmtNum(s.spool_depth, 0));
    if (s.gaps !== null) add(t('gaps'), fmtNum(s.gaps, 0));
    det.appendChild(dl);
    card.appendChild(det);
    return card;
  });
  /* keep open folds open across refreshes */
  const open = new Set([...box.querySelectorAll('details[open]')].map((d) => d.closest('.station').dataset.station));
  cards.forEach((c) => { if (open.has(c.dataset.station)) c.querySelector('details').open = true; });
  box.replaceChildren(...cards);
}

/* --- hubs: which is up, how far behind, which stations are on which ------ */

/* GET /api/v1/hubs (docs/api.md): every hub's retained status as this
 * gateway hears it. "Behind" compares the newest readings each hub has
 * stored per station-facing URL; statuses go out once a minute, so under
 * in_step_s (2 minutes) it says in step. */
function stationNames(list) {
  return list.map((c) => { const s = siteOf(c); return (s && s.name) || c; }).join(', ');
}

function renderHubs() {
  const d = state.hubs;
  if (!d) return;
  const box = $('hubs');
  const cards = d.hubs.map((h) => {
    const card = el('article', 'card station hub');
    card.dataset.hub = h.id;
    card.dataset.state = h.state;
    const head = el('div', 'head');
    head.appendChild(el('h3', 'name', (h.hub_id || h.id) + (h.self ? ' (' + t('hub_this') + ')' : '')));
    head.appendChild(el('span', 'state ' + (h.state === 'up' ? 'online' : 'offline'),
      h.state === 'up' ? t('hub_up') : t('hub_off')));
    card.appendChild(head);
    const seen = el('div', 'seen', t('hub_heard') + ': ' + whenText(Date.parse(h.last_heard)) +
      (h.why ? ' · ' + (h.why === 'offline' ? t('hub_why_will') : t('hub_why_silent')) : ''));
    card.appendChild(seen);
    const dl = el('dl', 'values');
    const add = (k, v, cls) => { dl.appendChild(el('dt', null, k)); dl.appendChild(el('dd', cls, v)); };
    if (h.stations) {
      const dd = el('dd', 'hub-stations');
      dl.appendChild(el('dt', null, t('hub_st')(h.stations.length)));
      dd.appendChild(named('span', null, stationNames(h.stations)));
      dl.appendChild(dd);
    } else {
      add(t('hub_st_unknown'), '');
    }
    if (h.state === 'up')
      add(h.behind_s === null ? t('hub_lag_unknown') : h.behind_s < d.in_step_s ? t('hub_step')
          : t('hub_behind')(Math.round(h.behind_s / 60)), '', 'hub-lag');
    if (h.newest_reading) add(t('hub_newest'), whenText(Date.parse(h.newest_reading)));
    if (h.station_url) add('URL', h.station_url);
    card.appendChild(dl);
    return card;
  });
  const extra = (title, list) => {
    const p = el('p', 'seen hub-extra', title + ': ');
    p.appendChild(named('span', null, stationNames(list)));
    return p;
  };
  for (const o of d.other_urls) cards.push(extra(t('hub_other') + ' ' + o.url, o.stations));
  if (d.on_no_hub.length) cards.push(extra(t('hub_none'), d.on_no_hub));
  if (!d.hubs.length) cards.push(el('p', 'muted', t('no_hubs')));
  box.replaceChildren(...cards);
}

async function refreshHubs() {
  if (!state.hubsOn) return;
  const r = await api('/api/v1/hubs');
  if (r.ok && !r.same) { state.hubs = r.body; renderHubs(); }
}

async function refreshStations() {
  if (!state.stationsOn || Date.now() - state.stationsAt < STATIONS_MS) return;
  state.stationsAt = Date.now();
  const r = await api('/api/v1/stations');
  if (r.ok && !r.same) { state.stations = r.body.stations; renderStations(); }
}

/* --- refresh loop ------------------------------------------------------- */

function showError(msg) {
  const e = $('error');
  e.hidden = !msg;
  e.textContent = msg || '';
}

async function refreshAlerts() {
  const r = await api('/api/v1/alerts?state=open&history=0');
  if (r.ok) state.alerts = r.body.alerts;
  renderAlerts();
}

function renderAll() {
  renderCanals();
  renderDistricts();
  renderAlerts();
  renderStations();
  renderHubs();
}

let timer = null, firstPaint = false;
async function refresh() {
  clearTimeout(timer);
  try {
    const [td, al] = await Promise.all([api('/api/v1/today'), api('/api/v1/alerts?state=open&history=0')]);
    if (td.status === 401) { /* reads need a token here: ask, then again */
      sessionStorage.removeItem('agri-read-token');
      if (await askReadToken()) { refresh(); return; }
    }
    if (!td.ok) throw new Error(td.body && td.body.error ? td.body.error : 'HTTP ' + td.status);
    state.today = td.body;
    state.now = Date.parse(td.body.now);
    if (al.ok) state.alerts = al.body.alerts;
    renderCanals();
    renderDistricts();
    renderAlerts();
    if (!firstPaint) {
      firstPaint = true;
      requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('agri-today')));
      watchLazy(); /* now that the today view fills the first screen */
    }
    $('updated').textContent = t('updated') + ' ' + hhmm(state.now);
    $('updated').className = 'updated';
    $('updated').dataset.at = String(Date.now());
    if ($('error').dataset.load) { showError(null); delete $('error').dataset.load; }
    await refreshStations();
    await refreshHubs();
    await refreshCharts();
  } catch (e) {
    showError(t('load_failed') + ': ' + e.message);
    $('error').dataset.load = '1';
  }
  state.refreshes++;
  document.body.dataset.refreshes = String(state.refreshes);
  timer = setTimeout(refresh, REFRESH_MS);
}

/* Sections below the first screen load when they come near the viewport. */
function watchLazy() {
  const on = (id, fn) => {
    const target = $(id);
    if (!('IntersectionObserver' in window)) { fn(); return; }
    const io = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) { io.disconnect(); fn(); }
    }, { rootMargin: '200px' });
    io.observe(target);
  };
  on('charts', () => { state.chartsOn = true; refreshCharts(); });
  on('stations-section', () => { state.stationsOn = true; refreshStations(); });
  on('hubs-section', () => { state.hubsOn = true; refreshHubs(); });
}

document.addEventListener('DOMContentLoaded', () => {
  takeLinkToken();
  applyLang();
  $('lang').addEventListener('click', () => {
    lang = lang === 'vi' ? 'en' : 'vi';
    localStorage.setItem('agri-lang', lang);
    applyLang();
    renderAll();
    refreshCharts();
    if ($('old-advice').open) loadOldAdvice();
    if ($('people').open) loadPeople();
    if (state.today) $('updated').textContent = t('updated') + ' ' + hhmm(state.now);
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
  let rt = null;
  window.addEventListener('resize', () => { clearTimeout(rt); rt = setTimeout(refreshCharts, 250); });
  setInterval(() => {
    const at = +($('updated').dataset.at || 0);
    if (at && Date.now() - at > 60e3) $('updated').className = 'updated stale';
  }, 5000);
  $('old-advice').addEventListener('toggle', () => { if ($('old-advice').open) loadOldAdvice(); });
  $('people').addEventListener('toggle', () => { if ($('people').open) loadPeople(); });
  refresh();
});
