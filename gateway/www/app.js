/* agri-gateway dashboard: reads the gateway's own API (docs/api.md) and
 * draws stations, alerts and charts with plain DOM and SVG. No build step,
 * no third-party code. Refreshes itself every REFRESH_MS. */
'use strict';

const REFRESH_MS = 10000;
const TZ = 'Asia/Ho_Chi_Minh';
const TZ_OFFSET_MS = 7 * 3600e3;          /* nights are counted in local time */
const LADDER = [0.5, 1, 2, 4];            /* salinity alert ladder, g/L */
const SAL_WINDOW_MS = 48 * 3600e3;        /* measured salinity shown */
const NIGHTS = 14;                        /* light-trap nights shown */
const SVGNS = 'http://www.w3.org/2000/svg';

const T = {
  vi: {
    title: 'Giám sát mặn và rầy nâu', alerts: 'Cảnh báo đang mở', no_alerts: 'Không có cảnh báo.',
    stations: 'Trạm quan trắc', salinity_charts: 'Độ mặn theo thời gian',
    insect_charts: 'Số rầy vào đèn theo đêm', token_prompt: 'Mã truy cập để xác nhận cảnh báo',
    cancel: 'Hủy', ok: 'Đồng ý', footer: 'Tự làm mới mỗi 10 giây', ack: 'Xác nhận',
    acked: 'đã xác nhận', active: 'đang hoạt động', cleared: 'đã hết',
    online: 'trực tuyến', offline: 'mất kết nối', unknown: 'chưa rõ',
    last_seen: 'Lần cuối', never: 'chưa có dữ liệu', raised: 'Từ', health_title: 'Tình trạng gateway',
    updated: 'Cập nhật', no_data: 'Chưa có dữ liệu.', bad_token: 'Mã truy cập sai.',
    ack_failed: 'Không xác nhận được', load_failed: 'Không tải được dữ liệu từ gateway',
    forecast: 'Dự báo (dải tin cậy)', windows: 'Cửa sổ lấy nước', below: 'dưới',
    measured: 'Đo', no_forecast: 'Chưa có dự báo', bph: 'Rầy nâu', other: 'Côn trùng khác',
    night_of: 'Đêm', trap: 'Bẫy đèn', on: 'bật', off: 'tắt',
    critical: 'nghiêm trọng', alarm: 'báo động', warning: 'cảnh báo', info: 'thông tin',
    lvl: ['< 0,5 g/L', '0,5–1', '1–2', '2–4', '≥ 4 g/L'],
    metrics: {
      salinity: 'Độ mặn', conductivity: 'Độ dẫn điện', water_temperature: 'Nhiệt độ nước',
      ph: 'pH', dissolved_oxygen: 'Oxy hòa tan', turbidity: 'Độ đục', water_level: 'Mực nước',
      insect_count: 'Côn trùng', air_temperature: 'Nhiệt độ không khí', air_humidity: 'Độ ẩm',
      lamp_on: 'Đèn bẫy', battery_voltage: 'Điện áp ắc quy', battery_soc: 'Dung lượng pin',
      pv_power: 'Công suất mặt trời',
    },
  },
  en: {
    title: 'Salinity and planthopper monitor', alerts: 'Open alerts', no_alerts: 'No alerts.',
    stations: 'Stations', salinity_charts: 'Salinity over time',
    insect_charts: 'Light-trap catch per night', token_prompt: 'Access token to acknowledge alerts',
    cancel: 'Cancel', ok: 'OK', footer: 'Refreshes every 10 seconds', ack: 'Acknowledge',
    acked: 'acknowledged', active: 'active', cleared: 'cleared',
    online: 'online', offline: 'offline', unknown: 'unknown',
    last_seen: 'Last seen', never: 'no data yet', raised: 'Since', health_title: 'Gateway health',
    updated: 'Updated', no_data: 'No data yet.', bad_token: 'Wrong access token.',
    ack_failed: 'Could not acknowledge', load_failed: 'Cannot load data from the gateway',
    forecast: 'Forecast (band)', windows: 'Intake windows', below: 'below',
    measured: 'Measured', no_forecast: 'No forecast yet', bph: 'Brown planthopper', other: 'Other insects',
    night_of: 'Night of', trap: 'Light trap', on: 'on', off: 'off',
    critical: 'critical', alarm: 'alarm', warning: 'warning', info: 'info',
    lvl: ['< 0.5 g/L', '0.5–1', '1–2', '2–4', '≥ 4 g/L'],
    metrics: {
      salinity: 'Salinity', conductivity: 'Conductivity', water_temperature: 'Water temperature',
      ph: 'pH', dissolved_oxygen: 'Dissolved oxygen', turbidity: 'Turbidity', water_level: 'Water level',
      insect_count: 'Insects', air_temperature: 'Air temperature', air_humidity: 'Humidity',
      lamp_on: 'Trap lamp', battery_voltage: 'Battery voltage', battery_soc: 'Battery',
      pv_power: 'Solar power',
    },
  },
};

let lang = localStorage.getItem('agri-lang') === 'en' ? 'en' : 'vi';
const state = { stations: [], alerts: [], pendingAck: null, sal: {}, ins: {}, fc: {}, refreshes: 0 };
const $ = (id) => document.getElementById(id);
const t = (k) => T[lang][k] !== undefined ? T[lang][k] : k;

/* --- small helpers ---------------------------------------------------- */

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

function fmtNum(v, digits) {
  if (v === null || v === undefined) return '–';
  return new Intl.NumberFormat(lang === 'vi' ? 'vi-VN' : 'en-GB',
    { maximumFractionDigits: digits === undefined ? 2 : digits }).format(v);
}

function fmtTime(iso, withDate) {
  if (!iso) return t('never');
  const d = new Date(iso);
  const o = { timeZone: TZ, hour: '2-digit', minute: '2-digit', hour12: false };
  if (withDate !== false) { o.day = '2-digit'; o.month = '2-digit'; }
  return d.toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB', o);
}

function level(v) {
  let i = 0;
  while (i < LADDER.length && v >= LADDER[i]) i++;
  return i;
}

const LEVEL_COLORS = ['#2e9d5b', '#9cc43a', '#f0c419', '#f08a24', '#d7263d'];

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ cache: 'no-store' }, opts || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  return { status: r.status, ok: r.ok, body };
}

function metricLabel(m) { return T[lang].metrics[m] || m.replace(/_/g, ' '); }

/* --- language --------------------------------------------------------- */

function applyLang() {
  document.documentElement.lang = lang;
  document.querySelectorAll('[data-i18n]').forEach((e) => { e.textContent = t(e.dataset.i18n); });
  document.querySelectorAll('[data-i18n-title]').forEach((e) => { e.title = t(e.dataset.i18nTitle); });
  $('lang').textContent = lang === 'vi' ? 'EN' : 'VI';
  const lg = $('ladder');
  lg.textContent = '';
  t('lvl').forEach((s, i) => lg.appendChild(el('span', 'lvl' + i, s)));
}

/* --- alerts ------------------------------------------------------------ */

function renderAlerts() {
  const ul = $('alerts');
  ul.textContent = '';
  const open = state.alerts.filter((a) => a.state === 'active' || a.state === 'acknowledged');
  $('no-alerts').hidden = open.length > 0;
  for (const a of open) {
    const li = el('li', 'alert ' + a.severity + ' ' + a.state);
    li.dataset.id = a.id;
    const body = el('div', 'body');
    const top = el('div');
    top.appendChild(el('span', 'badge ' + a.severity, t(a.severity)));
    if (a.state === 'acknowledged') top.appendChild(el('span', 'badge acknowledged', t('acked')));
    top.appendChild(el('span', 'msg', a.message || a.id));
    body.appendChild(top);
    body.appendChild(el('div', 'meta', a.station + (a.sensor ? ' / ' + a.sensor : '') + ' · ' +
      t('raised') + ' ' + fmtTime(a.raised_at)));
    li.appendChild(body);
    if (a.state === 'active') {
      const b = el('button', 'ack', t('ack'));
      b.type = 'button';
      b.addEventListener('click', () => ack(a.id, b));
      li.appendChild(b);
    }
    ul.appendChild(li);
  }
}

function askToken() {
  return new Promise((resolve) => {
    const dlg = $('auth');
    const inp = $('token');
    inp.value = '';
    dlg.hidden = false;
    inp.focus();
    const done = (v) => {
      dlg.hidden = true;
      $('auth-form').onsubmit = null;
      $('auth-cancel').onclick = null;
      resolve(v);
    };
    $('auth-form').onsubmit = (ev) => { ev.preventDefault(); done(inp.value.trim() || null); };
    $('auth-cancel').onclick = () => done(null);
  });
}

async function ack(id, button) {
  let token = sessionStorage.getItem('agri-token');
  if (!token) {
    token = await askToken();
    if (!token) return;
    sessionStorage.setItem('agri-token', token);
  }
  button.disabled = true;
  const r = await api('/api/v1/alerts/' + encodeURIComponent(id) + '/ack', {
    method: 'POST', headers: { Authorization: 'Bearer ' + token },
  }).catch(() => ({ status: 0, body: null }));
  if (r.status === 401) {
    sessionStorage.removeItem('agri-token');
    showError(t('bad_token'));
  } else if (r.status !== 200) {
    showError(t('ack_failed') + ': ' + (r.body && r.body.error ? r.body.error : 'HTTP ' + r.status));
  } else {
    showError(null);
  }
  button.disabled = false;
  await refreshAlerts();
}

/* --- stations ---------------------------------------------------------- */

function renderStations() {
  const box = $('stations');
  box.textContent = '';
  if (!state.stations.length) box.appendChild(el('p', 'muted', t('no_data')));
  for (const s of state.stations) {
    const card = el('article', 'station');
    card.dataset.station = s.station;
    const head = el('div', 'head');
    head.appendChild(el('span', 'name', s.station));
    head.appendChild(el('span', 'state ' + s.state, t(s.state)));
    card.appendChild(head);
    card.appendChild(el('div', 'seen', t('last_seen') + ': ' + fmtTime(s.last_seen)));
    const sal = s.latest.filter((l) => l.metric === 'salinity' && l.value !== null);
    for (const l of sal) {
      const chip = el('div', 'sal lvl' + level(l.value), fmtNum(l.value) + ' ');
      chip.dataset.metric = 'salinity';
      chip.appendChild(el('small', null, 'g/L' + (sal.length > 1 ? ' · ' + l.sensor : '')));
      card.appendChild(chip);
    }
    const dl = el('dl', 'values');
    const counts = {};
    s.latest.forEach((l) => { counts[l.metric] = (counts[l.metric] || 0) + 1; });
    for (const l of s.latest) {
      if (l.metric === 'salinity') continue;
      let label = metricLabel(l.metric);
      if (counts[l.metric] > 1) label += ' · ' + l.sensor;
      dl.appendChild(el('dt', null, label));
      let text = l.value === null ? '–' : fmtNum(l.value) + ' ' + (l.unit === 'count' ? '' : l.unit);
      if (l.metric === 'lamp_on' && l.value !== null) text = l.value ? t('on') : t('off');
      const dd = el('dd', l.q, text);
      dd.title = l.q + ' · ' + fmtTime(l.ts);
      dl.appendChild(dd);
    }
    card.appendChild(dl);
    box.appendChild(card);
  }
}

/* --- charts --------------------------------------------------------------- */

function niceTicks(lo, hi, n) {
  const span = hi - lo || 1;
  const raw = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

function chartWidth(box) {
  return Math.max(280, Math.min(1200, Math.floor(box.clientWidth || 340)));
}

/* Salinity line chart: measured series (per sensor), the forecast band and
 * line after it, the ladder as dashed lines, intake windows shaded. */
function drawSalinity(box, station, series, fc) {
  const W = chartWidth(box), H = W < 500 ? 210 : 240;
  const m = { l: 36, r: 8, t: 8, b: 24 };
  let t0 = Infinity, t1 = -Infinity, vmax = 0.6;
  for (const pts of Object.values(series)) for (const p of pts) {
    t0 = Math.min(t0, p.t); t1 = Math.max(t1, p.t); vmax = Math.max(vmax, p.v);
  }
  const fpts = fc && fc.points ? fc.points.map((p) => ({ t: Date.parse(p.ts), v: p.value, lo: p.lo, hi: p.hi })) : [];
  const tMeasEnd = t1;
  for (const p of fpts) { t1 = Math.max(t1, p.t); vmax = Math.max(vmax, p.hi); }
  if (!isFinite(t0)) return null;
  if (t1 <= t0) t1 = t0 + 3600e3;
  vmax = Math.min(vmax * 1.08, 45);
  const x = (tt) => m.l + (tt - t0) / (t1 - t0) * (W - m.l - m.r);
  const y = (v) => H - m.b - v / vmax * (H - m.t - m.b);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-station': station,
    'aria-label': metricLabel('salinity') + ' ' + station });
  for (const v of niceTicks(0, vmax, 5)) {
    s.appendChild(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    s.appendChild(svg('text', { x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v, 1)));
  }
  if (fc && fc.windows) {
    const best = fc.windows.length ? Math.min(...fc.windows.map((w) => w.below)) : null;
    const pick = LADDER.includes(1) && fc.windows.some((w) => w.below === 1) ? 1 : best;
    for (const w of fc.windows.filter((w) => w.below === pick)) {
      const a = x(Date.parse(w.from)), b = x(Date.parse(w.to));
      s.appendChild(svg('rect', { class: 'window', x: a, y: m.t, width: Math.max(1, b - a), height: H - m.t - m.b }));
    }
  }
  LADDER.forEach((v, i) => {
    if (v > vmax) return;
    s.appendChild(svg('line', { class: 'thr', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: LEVEL_COLORS[i + 1] }));
  });
  /* time axis: local time, ticks at least 70 px apart */
  const step = [3, 6, 12, 24, 48].map((h) => h * 3600e3)
    .find((st) => (t1 - t0) / st <= (W - m.l - m.r) / 70) || 96 * 3600e3;
  for (let tt = Math.ceil((t0 + TZ_OFFSET_MS) / step) * step - TZ_OFFSET_MS; tt <= t1; tt += step) {
    s.appendChild(svg('line', { class: 'grid', x1: x(tt), x2: x(tt), y1: m.t, y2: H - m.b }));
    const d = new Date(tt);
    const midnight = ((tt + TZ_OFFSET_MS) % 86400e3) === 0;
    s.appendChild(svg('text', { x: x(tt), y: H - 8, 'text-anchor': 'middle' },
      midnight ? d.toLocaleDateString(lang === 'vi' ? 'vi-VN' : 'en-GB', { timeZone: TZ, day: '2-digit', month: '2-digit' })
        : fmtTime(new Date(tt).toISOString(), false)));
  }
  s.appendChild(svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  if (fpts.length) {
    let band = fpts.map((p) => `${x(p.t).toFixed(1)},${y(p.hi).toFixed(1)}`).join(' ');
    band += ' ' + fpts.slice().reverse().map((p) => `${x(p.t).toFixed(1)},${y(Math.max(0, p.lo)).toFixed(1)}`).join(' ');
    s.appendChild(svg('polygon', { class: 'band', points: band }));
    s.appendChild(svg('polyline', { class: 'fc-line', points: fpts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
    s.appendChild(svg('line', { class: 'now', x1: x(tMeasEnd), x2: x(tMeasEnd), y1: m.t, y2: H - m.b }));
  }
  const colors = ['#0b6e4f', '#3772c0', '#7b3fa0', '#b05a00'];
  Object.keys(series).sort().forEach((sensor, i) => {
    const pts = series[sensor];
    /* break the line where readings are missing for over 3 intervals */
    let d = '', prev = null;
    const gap = Math.max(3 * medianStep(pts), 20 * 60e3);
    for (const p of pts) {
      d += (prev === null || p.t - prev > gap ? 'M' : 'L') + x(p.t).toFixed(1) + ',' + y(p.v).toFixed(1);
      prev = p.t;
    }
    s.appendChild(svg('path', { class: 'line', d, stroke: colors[i % colors.length], 'data-sensor': sensor }));
  });
  return s;
}

function medianStep(pts) {
  if (pts.length < 3) return 60e3;
  const d = [];
  for (let i = 1; i < pts.length; i += Math.max(1, Math.floor(pts.length / 50))) d.push(pts[i].t - pts[i - 1].t);
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)] || 60e3;
}

/* Nightly light-trap catch: bars of BPH and, stacked above, other classes. */
function drawNights(box, station, nights) {
  const W = chartWidth(box), H = W < 500 ? 190 : 220;
  const m = { l: 40, r: 8, t: 8, b: 24 };
  const keys = Object.keys(nights).sort().slice(-NIGHTS);
  if (!keys.length) return null;
  const vmax = Math.max(10, ...keys.map((k) => nights[k].bph + nights[k].other)) * 1.08;
  const bw = (W - m.l - m.r) / keys.length;
  const y = (v) => H - m.b - v / vmax * (H - m.t - m.b);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'data-station': station,
    'aria-label': t('insect_charts') + ' ' + station });
  for (const v of niceTicks(0, vmax, 4)) {
    s.appendChild(svg('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
    s.appendChild(svg('text', { x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(v, 0)));
  }
  keys.forEach((k, i) => {
    const n = nights[k];
    const x0 = m.l + i * bw + bw * 0.15, w = bw * 0.7;
    const b = svg('rect', { class: 'bar-bph', x: x0, y: y(n.bph), width: w, height: Math.max(0, y(0) - y(n.bph)) });
    b.appendChild(svg('title', {}, `${t('night_of')} ${k}: ${t('bph')} ${fmtNum(n.bph, 0)}, ${t('other')} ${fmtNum(n.other, 0)}`));
    s.appendChild(b);
    s.appendChild(svg('rect', { class: 'bar-other', x: x0, y: y(n.bph + n.other), width: w, height: Math.max(0, y(n.bph) - y(n.bph + n.other)) }));
    if (keys.length <= 8 || i % 2 === keys.length % 2 || W >= 500)
      s.appendChild(svg('text', { x: x0 + w / 2, y: H - 8, 'text-anchor': 'middle' }, k.slice(8) + '/' + k.slice(5, 7)));
  });
  s.appendChild(svg('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  return s;
}

function chartCard(id, title) {
  let card = document.getElementById(id);
  if (!card) {
    card = el('div', 'chart-card');
    card.id = id;
    card.appendChild(el('h3'));
    card.appendChild(el('div', 'plot'));
    card.appendChild(el('div', 'keys'));
    card.appendChild(el('p', 'note'));
  }
  card.querySelector('h3').textContent = title;
  return card;
}

function key(cls, text) {
  const s = el('span');
  s.appendChild(el('span', 'swatch ' + cls));
  s.appendChild(document.createTextNode(text));
  return s;
}

async function loadSalinity(st, latest) {
  const c = state.sal[st] || {};
  if (c.latest !== latest) {
    const from = new Date(Date.parse(latest) - SAL_WINDOW_MS).toISOString();
    const r = await api(`/api/v1/readings?station=${encodeURIComponent(st)}&metric=salinity&from=${from}&limit=100000`);
    if (!r.ok) return c;
    const series = {};
    for (const p of r.body.readings) {
      if (p.value === null || p.q === 'error') continue;
      (series[p.sensor] = series[p.sensor] || []).push({ t: Date.parse(p.ts), v: p.value });
    }
    c.series = series;
    c.latest = latest;
  }
  const f = state.fc[st];
  if (!f || Date.now() - f.at > 60e3) {
    const r = await api(`/api/v1/forecast?station=${encodeURIComponent(st)}&metric=salinity`);
    state.fc[st] = { at: Date.now(), doc: r.ok ? r.body : null, why: r.ok ? null : (r.body && r.body.error) };
  }
  state.sal[st] = c;
  return c;
}

async function loadInsects(st, latest) {
  const c = state.ins[st] || {};
  if (c.latest === latest) return c;
  const from = new Date(Date.parse(latest) - (NIGHTS + 1) * 86400e3).toISOString();
  const r = await api(`/api/v1/readings?station=${encodeURIComponent(st)}&metric=insect_count&from=${from}&limit=100000`);
  if (!r.ok) return c;
  const traps = {};
  for (const p of r.body.readings) {
    if (p.value === null || p.q === 'error') continue;
    const [trap, cls] = trapClass(p.sensor);
    /* the night of D runs from 18:00 on D to 06:00 on D+1, local time */
    const night = new Date(Date.parse(p.ts) + TZ_OFFSET_MS - 12 * 3600e3).toISOString().slice(0, 10);
    const n = ((traps[trap] = traps[trap] || {})[night] = traps[trap][night] || { bph: 0, other: 0 });
    if (cls === 'bph') n.bph += p.value; else n.other += p.value;
  }
  c.traps = traps;
  c.latest = latest;
  state.ins[st] = c;
  return c;
}

const TRAP_CLASSES = ['green-leafhopper', 'stem-borer', 'leaf-folder', 'wbph', 'bph'];

/* "trap1-green-leafhopper" -> ["trap1", "green-leafhopper"] */
function trapClass(sensor) {
  for (const c of TRAP_CLASSES) {
    if (sensor.endsWith('-' + c) && sensor.length > c.length + 1) return [sensor.slice(0, -c.length - 1), c];
  }
  const cut = sensor.indexOf('-');
  return cut > 0 ? [sensor.slice(0, cut), sensor.slice(cut + 1)] : [sensor, sensor];
}

/* Draws one chart into its card once the card is in the page (so the
 * plot's real width is known). */
function place(box, card, cards, draw) {
  if (card.parentNode !== box) box.appendChild(card);
  const plot = card.querySelector('.plot');
  const g = draw(plot);
  plot.textContent = '';
  if (g) plot.appendChild(g); else plot.appendChild(el('p', 'muted', t('no_data')));
  cards.push(card);
}

async function refreshCharts() {
  const salBox = $('salinity-charts'), insBox = $('insect-charts');
  const salCards = [], insCards = [];
  for (const p of salBox.querySelectorAll(':scope > p')) p.remove();
  for (const p of insBox.querySelectorAll(':scope > p')) p.remove();
  for (const s of state.stations) {
    const sal = s.latest.filter((l) => l.metric === 'salinity').map((l) => l.ts).sort().pop();
    if (sal) {
      const c = await loadSalinity(s.station, sal);
      const card = chartCard('sal-' + s.station, s.station + ' · ' + metricLabel('salinity') + ' (g/L)');
      const f = state.fc[s.station];
      place(salBox, card, salCards, (plot) => c.series ? drawSalinity(plot, s.station, c.series, f && f.doc) : null);
      const keys = card.querySelector('.keys');
      keys.textContent = '';
      if (f && f.doc) {
        keys.appendChild(key('sw-band', t('forecast')));
        keys.appendChild(key('sw-window', t('windows') + ' (' + t('below') + ' 1 g/L)'));
      }
      const note = card.querySelector('.note');
      note.textContent = f && f.doc ? (f.doc.model || '') : t('no_forecast') + (f && f.why ? ': ' + f.why.replace(/^no forecast yet: /, '') : '');
    }
    const ins = s.latest.filter((l) => l.metric === 'insect_count').map((l) => l.ts).sort().pop();
    if (ins) {
      const c = await loadInsects(s.station, ins);
      for (const trap of Object.keys(c.traps || {}).sort()) {
        const card = chartCard('ins-' + s.station + '-' + trap, s.station + ' · ' + t('trap') + ' ' + trap);
        place(insBox, card, insCards, (plot) => drawNights(plot, s.station, c.traps[trap]));
        const keys = card.querySelector('.keys');
        keys.textContent = '';
        keys.appendChild(key('sw-bph', t('bph')));
        keys.appendChild(key('sw-other', t('other')));
      }
    }
  }
  salBox.replaceChildren(...salCards);
  insBox.replaceChildren(...insCards);
  if (!salCards.length) salBox.appendChild(el('p', 'muted', t('no_data')));
  if (!insCards.length) insBox.appendChild(el('p', 'muted', t('no_data')));
}

/* --- refresh loop -------------------------------------------------------- */

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

let timer = null;
async function refresh() {
  clearTimeout(timer);
  try {
    const [h, st] = await Promise.all([api('/healthz'), api('/api/v1/stations')]);
    $('health').className = 'health ' + (h.status === 200 ? 'ok' : 'bad');
    if (!st.ok) throw new Error(st.body && st.body.error ? st.body.error : 'HTTP ' + st.status);
    state.stations = st.body.stations;
    renderStations();
    await refreshAlerts();
    await refreshCharts();
    $('updated').textContent = t('updated') + ' ' + new Date().toLocaleTimeString(lang === 'vi' ? 'vi-VN' : 'en-GB', { hour12: false });
    if ($('error').dataset.load) { showError(null); delete $('error').dataset.load; }
  } catch (e) {
    showError(t('load_failed') + ': ' + e.message);
    $('error').dataset.load = '1';
    $('health').className = 'health bad';
  }
  state.refreshes++;
  document.body.dataset.refreshes = String(state.refreshes);
  timer = setTimeout(refresh, REFRESH_MS);
}

function redraw() {
  applyLang();
  renderStations();
  renderAlerts();
  refreshCharts();
}

document.addEventListener('DOMContentLoaded', () => {
  applyLang();
  $('lang').addEventListener('click', () => {
    lang = lang === 'vi' ? 'en' : 'vi';
    localStorage.setItem('agri-lang', lang);
    redraw();
  });
  let rt = null;
  window.addEventListener('resize', () => { clearTimeout(rt); rt = setTimeout(refreshCharts, 250); });
  refresh();
});
