"""The dashboard in a real browser (issue 20): Debian's chromium, headless,
driven over the DevTools protocol (cdp_support.py), against one
agri-gateway with the alert engine, the forecaster and named sites, fed
through MQTT with three canals and two light traps. One gateway and one
browser for every check, to keep the default test run short.

- first load: bytes on the wire (HTML, JS, CSS, the first API calls) and
  the time to the first useful paint (the today view), also on emulated
  "Regular 3G"; printed, target <= 150 KiB;
- phone (390x844): the first screen shows every canal's salinity and its
  next intake window per crop level (0.5 / 1 / 2 g/L), by name;
- intake windows: a canal whose forecast never goes below 1 g/L shows no
  window below 1 g/L anywhere (list or chart); one that does shows the
  forecast API's window with its clock times;
- advisories: one whose sowing window has passed is `expired` in the API
  and not among the open ones on the page; a replaced one `superseded`;
- contrast >= 4.5:1 of every rendered text against its background, from
  computed styles, and no text under 14 px on the phone, in VI and EN;
- alerts: grouped per canal, in an order that two refreshes (and an
  acknowledgement elsewhere) keep; acknowledging through the page names
  the alert, asks the person's name once and records it;
- English mode: no Vietnamese outside place names, no model strings;
- telemetry folded under "Kỹ thuật"; desktop grid; refreshes by itself;
- who receives what: the recipients file's person, when opened.

Screenshots go to $AGRI_ARTIFACTS_DIR or <build>/artifacts/dashboard/ (kept
after the run; their paths are printed). Exits 77 (skip) without chromium."""
import json
import math
import os
import re
import sqlite3
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import api_support as A  # noqa: E402
import cdp_support as C  # noqa: E402

R = harness.Result("test_dashboard")
T_START = time.time()
if not C.available():
    print("SKIP: needs chromium and python3-websocket (scripts/install-deps)")
    sys.exit(77)

ART = os.environ.get("AGRI_ARTIFACTS_DIR") or os.path.join(harness.BUILD, "artifacts", "dashboard")
os.makedirs(ART, exist_ok=True)
HOUR = A.HOUR
DAY = 24 * HOUR
STEP = A.STEP
BUDGET = 150 * 1024

SITES = {
    "DT-W01": {"name": "Cửa Tiểu (Tân Thành)", "district": "Tân Phú Đông", "crops": ["rice"]},
    "DT-W02": {"name": "Vàm Kênh", "district": "Gò Công Đông", "crops": ["rice", "vegetables"]},
    "DT-W03": {"name": "Hòa Bình", "district": "Chợ Gạo", "crops": ["fruit"]},
    "DT-T01": {"name": "Bẫy đèn số 1", "district": "Tháp Mười", "crops": ["rice"]},
    "DT-T02": {"name": "Bẫy đèn số 2", "district": "Tam Nông", "crops": ["rice"]},
}
RULES = {"utc_offset_min": 420, "lang": "vi", "rules": [
    {"id": "salinity", "kind": "ladder", "metric": "salinity", "hysteresis": 0.05, "notify": [], "levels": [
        {"above": 0.5, "severity": "info", "label": {"en": "do not irrigate durian", "vi": "không tưới sầu riêng"}},
        {"above": 1.0, "severity": "warning", "label": {"en": "fruit trees", "vi": "cây ăn trái"}},
        {"above": 2.0, "severity": "alarm", "label": {"en": "rice seedlings", "vi": "lúa mạ"}},
        {"above": 4.0, "severity": "critical", "label": {"en": "all crops", "vi": "mọi cây trồng"}}]},
    {"id": "do-low", "metric": "dissolved_oxygen", "below": 6.0, "severity": "warning", "notify": []},
]}
# Canals: W01 salty (2.2-4.8 g/L: its forecast has windows below 4 g/L only),
# W02 brackish (0.1-1.7 g/L: windows below 1 and 0.5 g/L), W03 two days
# only (too little data for a forecast).
CANALS = {"DT-W01": (3.5, 1.0, 3), "DT-W02": (0.9, 0.6, 3), "DT-W03": (1.6, 0.4, 2)}


def salinity(station, ms):
    mean, amp, _ = CANALS[station]
    h = ms / HOUR
    return round(mean + amp * math.sin(2 * math.pi * h / 12.42) + 0.3 * amp * math.sin(2 * math.pi * h / 23.93 + 1), 3)


def seed(st, end_ms):
    stations = {n: gp.Station(st.mq.port, n, ack_timeout=3.0) for n in list(CANALS) + ["DT-T01", "DT-T02"]}
    for s in stations.values():
        s.connected.wait(5)
    sent = 0
    for name, (_, _, days) in CANALS.items():
        rs = []
        for ts in range(end_ms - days * DAY, end_ms + 1, STEP):
            rs.append({"ts": A.iso(ts), "sensor": "sonde1", "metric": "salinity", "value": salinity(name, ts),
                       "unit": "g/L", "q": "ok"})
            if ts % HOUR == 0:
                rs.append({"ts": A.iso(ts), "sensor": "sonde1", "metric": "dissolved_oxygen", "value": 5.1,
                           "unit": "mg/L", "q": "ok"})
                rs.append({"ts": A.iso(ts), "sensor": "solar", "metric": "battery_voltage", "value": 12.6,
                           "unit": "V", "q": "ok"})
                rs.append({"ts": A.iso(ts), "sensor": "solar", "metric": "charging_status", "value": 9,
                           "unit": "", "q": "ok"})
        sent += A._publish_all(stations[name], name, rs)
    for i, name in enumerate(("DT-T01", "DT-T02")):
        rs = []
        peak = end_ms - (2 + 3 * i) * DAY
        for ts in range((end_ms // HOUR) * HOUR - 14 * DAY, end_ms + 1, HOUR):
            bph = A.night_catch(ts, peak)
            for cls, frac in (("bph", 1.0), ("wbph", 0.3), ("green-leafhopper", 0.2)):
                rs.append({"ts": A.iso(ts), "sensor": "trap1-" + cls, "metric": "insect_count",
                           "value": int(bph * frac), "unit": "count", "q": "ok"})
            rs.append({"ts": A.iso(ts), "sensor": "trap1", "metric": "lamp_on", "value": 1 if bph else 0,
                       "unit": "0/1", "q": "ok"})
        sent += A._publish_all(stations[name], name, rs)
    for name, s in stations.items():
        s.raw("status", json.dumps({"v": 1, "station": name, "state": "online", "fw": "1.2.0",
                                    "board": "rpi-cm4", "config_version": 3}), retain=True)
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 60, 0.1, what="seed acked")
    for s in stations.values():
        s.close()
    return sent


def advisories(st, now_ms):
    """Four advisories written as the forecaster writes them: DT-T01's old
    one (its sowing window ended 12 days ago) and its current one; DT-T02's
    current one and the one it replaced."""
    def row(station, peak, tag):
        sow_from, sow_to = peak + DAY, peak + 8 * DAY
        return ("sow_after_peak/%s/%s" % (station, tag), station, "sow_after_peak", peak, sow_from, sow_to,
                peak + 11 * DAY, peak + 13 * DAY, 900.0, "Gieo sạ né rầy ... / Sow ...", now_ms)
    rows = [row("DT-T01", now_ms - 20 * DAY, "old"), row("DT-T01", now_ms - 2 * DAY, "new"),
            row("DT-T02", now_ms - 5 * DAY, "replaced"), row("DT-T02", now_ms - 1 * DAY, "new")]
    con = sqlite3.connect(st.db, timeout=10)
    try:
        con.executemany("INSERT INTO advisories(id, station, kind, peak_at, sow_from, sow_to, hatch_from,"
                        " hatch_to, count, message, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
        con.commit()
    finally:
        con.close()
    return [r[0] for r in rows]


def get(path):
    return A.request(st.url(path))


class Check:
    """A named group of checks: an exception fails it (and the run goes on)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        print("--- %s (%.1f s)" % (self.name, time.time() - T_START), flush=True)
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None:
            traceback.print_exception(kind, exc, tb)
            R.check(False, "%s: %s" % (self.name, exc))
        return True


# --- one gateway for everything ------------------------------------------------
d = harness.tmpdir()
harness.write_json(os.path.join(d, "rules.json"), RULES)
# One person (docs/notify.md, "People"), for "who receives what".
harness.write_json(os.path.join(d, "recipients.json"), {"utc_offset_min": 420, "recipients": [
    {"name": "lan", "display": "Lê Thị Lan", "role": "Khuyến nông Gò Công Đông", "webhook": "ops",
     "districts": ["Gò Công Đông"], "crops": ["rice"], "quiet": {"from": "22:00", "to": "05:00"}}]})
PEOPLE = {"recipients_file": "recipients.json",
          "notify": {"webhooks": [{"name": "ops", "url": "http://127.0.0.1:9/hook"}]}}
try:
    st = A.Stack(d, rules=False, extra=dict(PEOPLE, rules_file="rules.json", sites=SITES))
except RuntimeError:
    # A gateway without the "sites" section (AGRI_GATEWAY_BIN, an older
    # build): run it unnamed, so each check says what it lacks.
    print("NOTE: this gateway refuses gateway.json 'sites': running without names")
    st = A.Stack(d, rules=False, extra=dict(PEOPLE, rules_file="rules.json"))
end_ms = (int(time.time() * 1000) // STEP) * STEP
sent = seed(st, end_ms)
adv_ids = advisories(st, int(time.time() * 1000))
ADV_OLD, ADV_T1, ADV_REPLACED, ADV_T2 = adv_ids

b = C.Browser(d)
URL = st.url("/")


def load(url=URL):
    b.navigate("about:blank")
    b.wait_js("location.href === 'about:blank'", 10)
    b.navigate(url)
    b.wait_js("document.body && +(document.body.dataset.refreshes || 0) >= 1", 30, "first refresh")


# The page refreshes by itself (every 10 s) while the forecaster fits.
b.size(390, 844, True)
load()
n_refresh = b.js("+document.body.dataset.refreshes")
for s in ("DT-W01", "DT-W02"):
    harness.wait_for(lambda: get("/api/v1/forecast?station=%s" % s).status == 200, 90, 0.5,
                     what="the forecast of " + s)
harness.wait_for(lambda: len(get("/api/v1/alerts?state=open").json()["alerts"]) >= 4, 30, 0.3, what="alerts")
print("seeded %d readings; %d open alerts" % (sent, len(get("/api/v1/alerts?state=open").json()["alerts"])))
with Check("refreshes by itself"):
    b.wait_js("+document.body.dataset.refreshes > %d" % n_refresh, 15, "an automatic refresh")
    R.check(True, "refreshed by itself")


def forecast_windows(station):
    r = get("/api/v1/forecast?station=%s" % station)
    return r.json()["windows"] if r.status == 200 else []


def local_hhmm(ms):
    return time.strftime("%H:%M", time.gmtime(ms / 1000 + 7 * 3600))


def parse_ms(iso):
    return int(time.mktime(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 + int(iso[20:23])


# --- first load: bytes and time to the first useful paint -----------------------
with Check("first load"):
    b.cdp("Network.enable")
    b.cdp("Network.setCacheDisabled", cacheDisabled=True)
    b.navigate("about:blank")
    time.sleep(0.3)
    b.events()
    b.navigate(URL)
    total, rows = C.transfer(b, idle_s=1.0)
    for url, n in sorted(rows, key=lambda r: -r[1]):
        print("  %7d B  %s" % (n, url.replace(URL[:-1], "")))
    paint = b.js("(performance.getEntriesByName('agri-today')[0] || {}).startTime || null")
    print("first load: %d bytes (%.1f KiB) in %d requests; today view painted at %s ms"
          % (total, total / 1024, len(rows), paint))
    R.check(paint is not None, "first useful paint (the today view) marked: %s ms" % paint)
    R.check(0 < total <= BUDGET, "first load %.1f KiB <= 150 KiB (HTML, JS, CSS, first API calls)" % (total / 1024))
    R.check(not any("/api/v1/readings" in u or "/api/v1/stations" in u for u, _ in rows),
            "first load leaves charts and technical telemetry for later")
    b.cdp("Network.emulateNetworkConditions", **C.REGULAR_3G)
    b.navigate("about:blank")
    time.sleep(0.3)
    b.events()
    b.navigate(URL)
    t0 = time.time()
    b.wait_js("performance.getEntriesByName('agri-today').length > 0", 60, "today view on 3G")
    paint3g = b.js("performance.getEntriesByName('agri-today')[0].startTime")
    total3g, _ = C.transfer(b, idle_s=1.0, timeout=60)
    print("first load on emulated Regular 3G (750 kbit/s, 100 ms): today view painted at %d ms, %.1f KiB"
          % (paint3g, total3g / 1024))
    R.check(paint3g < 8000, "today view within 8 s on Regular 3G (%d ms)" % paint3g)
    b.cdp("Network.emulateNetworkConditions", offline=False, latency=0, downloadThroughput=-1,
          uploadThroughput=-1)
    b.cdp("Network.setCacheDisabled", cacheDisabled=False)
    b.navigate("about:blank")
    time.sleep(0.3)
    b.events()
    b.navigate(URL)
    again, rows = C.transfer(b, idle_s=1.0)
    print("reload with the browser cache: %.1f KiB (%s)" % (again / 1024,
          ", ".join("%s %d" % (u.replace(URL[:-1], ""), n) for u, n in rows)))
    b.cdp("Network.disable")

# --- phone: the first screen --------------------------------------------------
with Check("phone first screen"):
    load()
    b.js("window.scrollTo(0, 0)")
    R.check(b.js("document.documentElement.lang") == "vi", "Vietnamese by default")
    cards = b.js("""[...document.querySelectorAll('#canals .canal')].map((c) => ({
        st: c.dataset.station, name: c.querySelector('.place').textContent,
        sal: c.querySelector('.sal') ? +c.querySelector('.sal').dataset.value : null,
        levels: [...c.querySelectorAll('.windows li')].map((l) => [+l.dataset.level, l.querySelector('.when').textContent]),
        bottom: c.getBoundingClientRect().bottom}))""")
    R.check([c["st"] for c in cards] == list(CANALS), "a card per canal: %s" % [c["st"] for c in cards])
    for c in cards:
        R.check(c["name"] == SITES[c["st"]]["name"], "%s named %s" % (c["st"], c["name"]))
        R.check(c["sal"] is not None and abs(c["sal"] - salinity(c["st"], end_ms)) < 1e-6,
                "%s salinity now %.3f g/L" % (c["st"], c["sal"] or -1))
        R.check([lv for lv, _ in c["levels"]] == [0.5, 1, 2] and all(txt for _, txt in c["levels"]),
                "%s: next intake window per crop level %s" % (c["st"], c["levels"]))
        R.check(c["bottom"] <= 844, "%s within the first screen (bottom %d px)" % (c["st"], c["bottom"]))
    R.check(b.js("document.querySelector('#canals').getBoundingClientRect().top < 150"), "the today view comes first")
    R.check(b.js("document.documentElement.scrollWidth <= 390"), "no horizontal scrolling on a phone")
    w3 = b.js("document.querySelector('.canal[data-station=\"DT-W03\"] .windows li').className")
    R.check(w3 == "nofc", "DT-W03 (two days of data): no window claimed, no forecast said (%s)" % w3)
    b.shot(os.path.join(ART, "dashboard-phone.png"))

# --- intake windows: none claimed where the forecast has none ---------------------
with Check("intake windows"):
    r = get("/api/v1/today")
    now = parse_ms(r.json()["now"]) if r.status == 200 else int(time.time() * 1000)
    w1 = forecast_windows("DT-W01")
    R.check(w1 and not any(w["below"] <= 1 for w in w1),
            "DT-W01's forecast never goes below 1 g/L (its windows: below %s)" % sorted({w["below"] for w in w1}))
    li = b.js("""[...document.querySelectorAll('.canal[data-station="DT-W01"] .windows li')].map((l) =>
        ({lv: +l.dataset.level, cls: l.className, from: l.dataset.from || null, text: l.textContent,
          label: l.getAttribute('aria-label')}))""")
    R.check([x["lv"] for x in li] == [0.5, 1, 2], "DT-W01 lists its three levels (%s)" % [x["lv"] for x in li])
    for x in li:
        if x["lv"] <= 1:
            R.check(x["cls"] == "none" and x["from"] is None and "không có" in x["text"],
                    "DT-W01 below %g g/L: none claimed (%s)" % (x["lv"], x["text"]))
    one = ([x for x in li if x["lv"] == 1] or [{"label": None}])[0]
    R.check(re.match(r"Không có cửa sổ dưới 1 g/L trong \d+ giờ tới", one["label"] or ""), "said in full: %s" % one["label"])
    w2 = sorted([w for w in forecast_windows("DT-W02") if w["below"] == 1 and parse_ms(w["to"]) > now],
                key=lambda w: w["from"])
    R.check(bool(w2), "DT-W02's forecast goes below 1 g/L (%d windows)" % len(w2))
    li2 = b.js("""(() => { const l = document.querySelector('.canal[data-station="DT-W02"] li[data-level="1"]');
        return l ? {from: l.dataset.from, to: l.dataset.to, text: l.querySelector('.when').textContent}
                 : {from: null, to: null, text: ''}; })()""")
    if w2:
        f, t = parse_ms(w2[0]["from"]), parse_ms(w2[0]["to"])
        want_from = "bây giờ" if f <= now else local_hhmm(math.ceil(f / 60000) * 60000)
        want_to = local_hhmm(t // 60000 * 60000)
        R.check(li2["from"] == w2[0]["from"] and li2["to"] == w2[0]["to"],
                "DT-W02 below 1 g/L: the forecast API's window %s - %s" % (w2[0]["from"], w2[0]["to"]))
        R.check(want_from in li2["text"] and want_to in li2["text"],
                "DT-W02 below 1 g/L in clock times: '%s' (%s, %s)" % (li2["text"], want_from, want_to))
    # the charts (scrolled into view): windows drawn per level, each labelled
    b.js("document.getElementById('salinity-charts').scrollIntoView()")
    b.wait_js("document.querySelectorAll('#salinity-charts svg.chart path.line').length >= 3", 30, "salinity charts")
    b.wait_js("document.querySelectorAll('#salinity-charts svg[data-station=\"DT-W02\"] rect.window').length > 0", 20,
              "DT-W02's windows drawn")
    rects = b.js("""[...document.querySelectorAll('#salinity-charts svg.chart')].map((s) => [s.dataset.station,
        [...s.querySelectorAll('rect.window')].map((r) => [r.dataset.below ? +r.dataset.below : null, r.dataset.from || null,
                                                           r.dataset.to || null])])""")
    rects = dict((k, v) for k, v in rects)
    keys1 = b.js("""(() => { const c = document.querySelector('#salinity-charts svg[data-station="DT-W01"]');
        return c ? c.closest('.chart-card').querySelector('.keys').textContent : ''; })()""")
    bad = [lv for lv, _, _ in rects.get("DT-W01", []) if lv is None or lv <= 1]
    R.check(not bad, "DT-W01 chart: no window drawn that is, or may be taken for, one below 1 g/L (%d drawn"
            " without their level or below 1 g/L; legend '%s')" % (len(bad), keys1))
    api1 = sorted((w["from"], w["to"]) for w in forecast_windows("DT-W02") if w["below"] == 1)
    R.check(sorted((f, t) for lv, f, t in rects.get("DT-W02", []) if lv == 1) == api1,
            "DT-W02 chart: its windows below 1 g/L are the forecast API's (%d)" % len(api1))
    labels = b.js("""[...document.querySelectorAll('#salinity-charts svg[data-station="DT-W02"] text.lbl')].map((e) => e.textContent)""")
    R.check(all(x in labels for x in ("< 0,5", "< 1", "< 2", "0,5", "1", "2", "4", "bây giờ")),
            "lanes, ladder lines and 'now' labelled: %s" % labels)
    R.check(not b.js("document.body.innerText.includes('harmonic')"), "no model string shown")

# --- advisories: state in the API, open ones on the page -------------------------
with Check("advisories"):
    r = get("/api/v1/advisories")
    states = {a["id"]: a.get("state") for a in r.json()["advisories"]}
    R.check(states.get(ADV_OLD) == "expired", "API: the advisory whose window passed is expired (%s)" % states.get(ADV_OLD))
    R.check(states.get(ADV_REPLACED) == "superseded", "API: a replaced advisory is superseded (%s)" % states.get(ADV_REPLACED))
    R.check(states.get(ADV_T1) == "open" and states.get(ADV_T2) == "open", "API: the current ones are open")
    r = get("/api/v1/advisories?state=open")
    R.check(r.status == 200 and sorted(a["id"] for a in r.json()["advisories"]) == sorted([ADV_T1, ADV_T2]),
            "API: ?state=open (%d)" % r.status)
    R.check(r.status == 200 and all(a.get("district") == SITES[a["station"]]["district"] for a in r.json()["advisories"]),
            "API: advisories name their district")
    b.js("window.scrollTo(0, 0)")
    open_ids = b.js("[...document.querySelectorAll('[data-advisory-state=\"open\"]')].map((e) => e.dataset.advisory)")
    R.check(sorted(open_ids) == sorted([ADV_T1, ADV_T2]), "page: the open advisories only (%s)" % open_ids)
    R.check(ADV_OLD not in open_ids, "page: the expired advisory is not among the open ones")
    txt = b.js("(document.querySelector('.district[data-district=\"Tháp Mười\"]') || {}).innerText || ''")
    R.check("Gieo sạ né rầy" in txt and "còn" in txt and "Đêm qua" in txt, "page: Tháp Mười's catch and sowing advice")
    b.js("document.getElementById('old-advice').open = true")
    b.wait_js("document.querySelector('#old-advice-list [data-advisory]') !== null", 10, "expired advice folded")
    old = b.js("[...document.querySelectorAll('#old-advice-list [data-advisory]')].map((e) => [e.dataset.advisory, e.dataset.advisoryState])")
    R.check(sorted(old) == sorted([[ADV_OLD, "expired"], [ADV_REPLACED, "superseded"]]), "the others folded apart: %s" % old)

# --- alerts: grouped, stable order, acknowledged by a named person ----------------
AID_ORDER = "[...document.querySelectorAll('#alerts .alert')].map((e) => e.dataset.id)"


def refreshes():
    return b.js("+document.body.dataset.refreshes")


def two_refreshes():
    """Two refreshes in a row, through the page's own refresh()."""
    n = refreshes()
    b.js("refresh().then(() => refresh())")
    b.wait_js("+document.body.dataset.refreshes >= %d" % (n + 2), 20, "two refreshes")


with Check("alerts"):
    api_open = get("/api/v1/alerts?state=open").json()["alerts"]
    R.check(all(a.get("name") == SITES[a["station"]]["name"] for a in api_open), "API: alerts carry the place name")
    sal = [a for a in api_open if a["rule"] == "salinity" and a["station"] == "DT-W01"]
    R.check(sal and sal[0].get("current") and abs(sal[0]["current"]["value"] - salinity("DT-W01", end_ms)) < 1e-6,
            "API: the current value beside the value at raise (%s, raised %s)"
            % (sal and sal[0].get("current"), sal and sal[0].get("raised_value")))
    groups = b.js("[...document.querySelectorAll('#alerts .alert-group')].map((g) => [g.dataset.station, g.querySelectorAll('.alert').length])")
    R.check(len(groups) == len({g for g, _ in groups}) and any(n > 1 for _, n in groups),
            "alerts grouped per station, repeated ones together: %s" % groups)
    before = b.js(AID_ORDER)
    sev = [s for s in b.js("[...document.querySelectorAll('#alerts .alert-group')].map((g) => g.className.split(' ').pop())")]
    rank = ["critical", "alarm", "warning", "info"]
    R.check(sev == sorted(sev, key=rank.index), "groups by severity first: %s" % sev)
    # another person acknowledges the last alert elsewhere: its updated_at moves
    last = before[-1]
    r = A.request(st.url("/api/v1/alerts/%s/ack" % last.replace("/", "%2F")), "POST",
                  {"Authorization": "Bearer " + A.TOKEN}, json.dumps({"by": "Hai"}).encode())
    R.check(r.status == 200, "acknowledged %s elsewhere (%d)" % (last, r.status))
    two_refreshes()
    after = b.js(AID_ORDER)
    R.check(after == before, "two refreshes and an acknowledgement keep the alert order\n  %s\n  %s" % (before, after))
    # acknowledge through the page: the dialog names the alert and asks who
    target = [i for i in before if i.startswith("salinity/DT-W01")][0]
    sel = "document.querySelector('#alerts .alert[data-id=\"%s\"] button.ack')" % target
    b.js(sel + ".click()")
    b.wait_js("!document.getElementById('ack').hidden", 5, "the acknowledgement dialog")
    what = b.js("document.getElementById('ack-what').textContent")
    R.check("Cửa Tiểu" in what and "mặn" in what.lower(), "the dialog names the alert and its place: %s" % what)
    R.check(not b.js("document.getElementById('ack-token-row').hidden"), "the token asked (first time)")
    b.js("document.getElementById('ack-name').value = 'Lan Nguyen'; document.getElementById('token').value = %s;"
         " document.getElementById('ack-form').requestSubmit()" % json.dumps(A.TOKEN))
    b.wait_js("document.querySelector('#alerts .alert[data-id=\"%s\"]').classList.contains('acknowledged')" % target,
              15, "acknowledged on the page")
    a = [x for x in get("/api/v1/alerts?state=open").json()["alerts"] if x["id"] == target][0]
    R.check(a["state"] == "acknowledged" and a.get("acknowledged_by") == "Lan Nguyen",
            "the person's name recorded: %s by %s" % (a["state"], a.get("acknowledged_by")))
    msg = gp.query(st.db, "SELECT message FROM alerts WHERE id = ?", (target,))[0][0]
    R.check("Lan Nguyen" in msg, "... in the store: %s" % msg)
    R.check("Lan Nguyen" in b.js("document.querySelector('#alerts .alert[data-id=\"%s\"]').textContent" % target),
            "the page says who acknowledged")
    R.check(b.js("localStorage.getItem('agri-person')") == "Lan Nguyen", "the name remembered on the device")
    nxt = [i for i in b.js(AID_ORDER) if b.js("!!document.querySelector('#alerts .alert[data-id=\"%s\"] button.ack')" % i)][0]
    b.js("document.querySelector('#alerts .alert[data-id=\"%s\"] button.ack').click()" % nxt)
    b.wait_js("!document.getElementById('ack').hidden", 5, "the dialog again")
    R.check(b.js("document.getElementById('ack-name').value") == "Lan Nguyen" and
            b.js("document.getElementById('ack-token-row').hidden"), "asked once: name filled in, no token asked")
    b.js("document.getElementById('ack-cancel').click()")
    R.check(b.js(AID_ORDER) == before, "order unchanged after acknowledging")

# --- telemetry folded under Kỹ thuật ----------------------------------------------
with Check("technical telemetry"):
    b.js("document.getElementById('stations-section').scrollIntoView()")
    b.wait_js("document.querySelectorAll('#stations .station').length == 5", 20, "station cards")
    R.check(b.js("[...document.querySelectorAll('#stations .station')].every((s) => s.querySelector('details.tech summary').textContent === 'Kỹ thuật')"),
            "each station's telemetry folded under Kỹ thuật")
    R.check(not b.js("[...document.querySelectorAll('#stations .station > :not(details)')].some((e) => /Điện áp|Tình trạng sạc/.test(e.textContent))"),
            "no battery or charger values outside the fold")
    b.js("document.querySelectorAll('details').forEach((d) => d.open = true)")
    tech = b.js("document.querySelector('.station[data-station=\"DT-W01\"] details').innerText")
    R.check("sạc tăng cường" in tech and "Điện áp ắc quy" in tech, "charger state decoded, labels in Vietnamese")

# --- contrast and text size, every rendered text ---------------------------------
def contrast(label):
    items = b.js(C.CONTRAST_JS)
    low = [x for x in items if x["ratio"] < 4.5]
    small = [x for x in items if x["size"] < 13.95]
    worst = min(items, key=lambda x: x["ratio"]) if items else None
    print("%s: %d text elements, lowest contrast %.2f:1 (%s), smallest %.1f px"
          % (label, len(items), worst["ratio"] if worst else 0, worst and worst["text"],
             min(x["size"] for x in items) if items else 0))
    for x in low[:10] + small[:10]:
        print("   ", x)
    R.check(items and not low, "%s: every text >= 4.5:1 (%d below)" % (label, len(low)))
    R.check(items and not small, "%s: no text under 14 px (%d)" % (label, len(small)))


with Check("who receives what"):
    b.js("document.getElementById('people').open = true")
    b.wait_js("!!document.querySelector('#people-list li[data-person=\"lan\"]')", 10, "the person")
    li = b.js("""(() => { const li = document.querySelector('#people-list li[data-person="lan"]');
        const n = li.querySelector('strong');
        return {text: li.textContent, name: n.textContent, vi: !!n.closest('[lang="vi"]')}; })()""")
    R.check(li["name"] == "Lê Thị Lan" and li["vi"] and "Gò Công Đông" in li["text"]
            and "webhook ops" in li["text"] and "22:00-05:00" in li["text"] and "hôm nay 0 tin" in li["text"],
            "who receives what: the person, her district, channel, quiet hours and today's count (%r)"
            % li["text"])

with Check("contrast"):
    b.wait_js("document.querySelectorAll('#insect-charts svg.chart').length >= 2", 20, "light-trap charts")
    contrast("phone, Vietnamese, every section open")
    b.js("document.querySelector('#alerts .alert button.ack').click()")
    b.wait_js("!document.getElementById('ack').hidden", 5, "the dialog")
    contrast("phone, the acknowledgement dialog")
    b.js("document.getElementById('ack-cancel').click()")

# --- English --------------------------------------------------------------------
VI_LETTERS = re.compile(r"[ăâđêôơưĂÂĐÊÔƠƯáàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ]", re.I)
with Check("English"):
    b.js("document.getElementById('lang').click()")
    R.check(b.js("document.documentElement.lang") == "en", "lang attribute follows")
    b.js("document.getElementById('old-advice').open = true")
    time.sleep(1.0)
    texts = b.js("""(() => { const out = [];
        const w = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n; (n = w.nextNode());) {
          const e = n.parentElement, t = n.textContent.trim();
          if (!t || !e.getClientRects().length || e.closest('[lang="vi"]')) continue;
          out.push(t);
        } return out; })()""")
    vi = [x for x in texts if VI_LETTERS.search(x)]
    R.check(texts and not vi, "English mode: no Vietnamese outside place names (%s)" % vi[:8])
    contrast("phone, English")
    b.js("document.getElementById('lang').click()")

# --- desktop ----------------------------------------------------------------------
with Check("desktop"):
    b.size(1280, 800, False)
    load()
    b.js("document.getElementById('charts').scrollIntoView()")
    b.wait_js("document.querySelectorAll('#salinity-charts svg.chart path.line').length >= 3", 20, "charts on desktop")
    R.check(b.js("getComputedStyle(document.getElementById('canals')).gridTemplateColumns.split(' ').length") >= 3,
            "desktop: canals in a grid")
    b.js("window.scrollTo(0, 0)")
    b.shot(os.path.join(ART, "dashboard-desktop.png"))
    b.shot(os.path.join(ART, "dashboard-desktop-full.png"), full=True)
    b.size(390, 844, True)
    load()
    b.js("document.getElementById('stations-section').scrollIntoView()")
    b.wait_js("document.querySelectorAll('#insect-charts svg.chart').length >= 2", 20, "all sections")
    b.js("window.scrollTo(0, 0)")
    b.shot(os.path.join(ART, "dashboard-phone-full.png"), full=True)

b.close()
R.check(st.stop() == 0, "gateway exits 0")
R.done()
