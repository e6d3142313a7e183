"""The dashboard in a real browser: Debian's chromium, headless, driven over
the Chrome DevTools protocol (python3-websocket), against a running
agri-gateway fed with station telemetry. Sees the stations and the charts,
switches language, acknowledges an alert through the page (wrong token
first, then the right one), and saves phone (390x844) and desktop
(1280x800) screenshots under $AGRI_BUILD_DIR/artifacts/."""
import base64
import json
import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import api_support as A  # noqa: E402

R = harness.Result("test_dashboard")
browser = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    import websocket  # python3-websocket
except ImportError:
    websocket = None
if not browser or not websocket:
    print("SKIP: needs chromium and python3-websocket (scripts/install-deps)")
    sys.exit(77)

ART = os.path.join(harness.BUILD, "artifacts")
os.makedirs(ART, exist_ok=True)
d = harness.tmpdir()
st = A.Stack(d)
end_ms, sent = A.seed(st)
alerts_from = A.ensure_alerts(st, end_ms)
A.ensure_forecast(st, "DT-W01", end_ms)
AID = "salinity-high/DT-W01/sonde1"
print("seeded %d readings; alerts: %s" % (sent, alerts_from))

cdp_port = harness.free_port()
profile = harness.tmpdir("agri-chromium-")
chrome = harness.Proc([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                       "--no-first-run", "--disable-background-networking", "--disable-component-update",
                       "--disable-sync", "--hide-scrollbars", "--user-data-dir=" + profile,
                       "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=%d" % cdp_port,
                       "--remote-allow-origins=*", "about:blank"], os.path.join(d, "chromium.log"))
harness.wait_port(cdp_port, 30, chrome)


def targets():
    with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % cdp_port, timeout=5) as r:
        return [t for t in json.load(r) if t.get("type") == "page"]


page = harness.wait_for(lambda: targets(), 15, what="a page target")[0]
ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
_id = [0]


def cdp(method, **params):
    _id[0] += 1
    ws.send(json.dumps({"id": _id[0], "method": method, "params": params}))
    while True:
        m = json.loads(ws.recv())
        if m.get("id") == _id[0]:
            if "error" in m:
                raise RuntimeError("%s: %s" % (method, m["error"]))
            return m.get("result", {})


def js(expr):
    r = cdp("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
    if "exceptionDetails" in r:
        raise RuntimeError("js %s: %s" % (expr, r["exceptionDetails"]))
    return r["result"].get("value")


def wait_js(expr, timeout=20, what=None):
    return harness.wait_for(lambda: js(expr), timeout, 0.1, what=what or expr)


def size(w, h, mobile):
    cdp("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=2 if mobile else 1,
        mobile=mobile)


def load():
    n = js("document.body && document.body.dataset.refreshes ? +document.body.dataset.refreshes : 0") or 0
    cdp("Page.navigate", url=st.url("/"))
    time.sleep(0.3)
    wait_js("document.body && +(document.body.dataset.refreshes || 0) >= 1", 20, "first refresh")
    return n


def shot(name, full=False):
    params = {"format": "png"}
    if full:
        h = js("document.documentElement.scrollHeight")
        w = js("document.documentElement.clientWidth")
        params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
    data = cdp("Page.captureScreenshot", **params)["data"]
    path = os.path.join(ART, name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))
    print("screenshot", path)
    return path


cdp("Page.enable")
cdp("Runtime.enable")
# --- phone ------------------------------------------------------------
size(390, 844, True)
load()
R.check(js("document.documentElement.lang") == "vi", "Vietnamese by default")
R.check(js("document.querySelectorAll('#stations .station').length") == 3, "three station cards")
R.check(js("[...document.querySelectorAll('#stations .station')].map(e => e.dataset.station).join()")
        == "DT-W01,DT-W02,TRAP-01", "stations named")
lvl = js("document.querySelector('.station[data-station=\"DT-W01\"] .sal').className")
want = A.salinity_at("DT-W01", end_ms)
want_lvl = sum(1 for t in (0.5, 1, 2, 4) if want >= t)
R.check(lvl == "sal lvl%d" % want_lvl, "salinity %.2f coloured by the ladder (%s)" % (want, lvl))
wait_js("document.querySelectorAll('#salinity-charts svg.chart path.line').length >= 2", 20, "salinity charts")
R.check(js("document.querySelectorAll('#salinity-charts svg.chart').length") == 2, "a salinity chart per water station")
R.check(js("document.querySelector('#salinity-charts svg[data-station=\"DT-W01\"] polygon.band') !== null"),
        "forecast band drawn after the measured series")
R.check(js("document.querySelectorAll('#salinity-charts svg[data-station=\"DT-W01\"] rect.window').length") > 0,
        "intake windows shaded")
R.check(js("document.querySelectorAll('#insect-charts svg.chart rect.bar-bph').length") >= 10,
        "nightly light-trap bars")
R.check(js("document.documentElement.scrollWidth <= 390"), "no horizontal scrolling on a phone")
R.check(js("document.querySelectorAll('#alerts .alert button.ack').length") >= 1, "active alerts with an ack button")
shot("dashboard-phone.png")
shot("dashboard-phone-full.png", full=True)

# --- acknowledge through the page: a wrong token first --------------------------
sel = "document.querySelector('#alerts .alert[data-id=\"%s\"] button.ack')" % AID
js(sel + ".click()")
wait_js("!document.getElementById('auth').hidden", 5, "the token dialog")
js("document.getElementById('token').value = 'wrong'; document.getElementById('auth-form').requestSubmit()")
wait_js("!document.getElementById('error').hidden", 10, "an error shown")
R.check("sai" in js("document.getElementById('error').textContent"), "wrong token: the page says so")
R.check(js("sessionStorage.getItem('agri-token')") is None, "wrong token forgotten")
R.check(gp.query(st.db, "SELECT state FROM alerts WHERE id = ?", (AID,))[0][0] == "active", "nothing changed")
js(sel + ".click()")
wait_js("!document.getElementById('auth').hidden", 5, "the token dialog again")
js("document.getElementById('token').value = %s; document.getElementById('auth-form').requestSubmit()"
   % json.dumps(A.TOKEN))
R.check(wait_js("sessionStorage.getItem('agri-token')", 5) == A.TOKEN, "token kept in sessionStorage")
engine = True
try:
    wait_js("document.querySelector('#alerts .alert[data-id=\"%s\"]').classList.contains('acknowledged')" % AID,
            10, "alert shown acknowledged")
except TimeoutError:
    engine = False
if engine:
    R.check(gp.query(st.db, "SELECT state FROM alerts WHERE id = ?", (AID,))[0][0] == "acknowledged",
            "alert acknowledged in the store")
    R.check(js(sel) is None, "no ack button on an acknowledged alert")
else:
    err = js("document.getElementById('error').textContent")
    R.check("no alert engine" in err, "no alert engine in this build: the page shows the 503 (%s)" % err)
    print("NOTE: acknowledgement needs the alert engine wired behind the API")

# --- language toggle --------------------------------------------------------------
js("document.getElementById('lang').click()")
R.check(js("document.querySelector('h1').textContent") == "Salinity and planthopper monitor", "English labels")
R.check(js("document.documentElement.lang") == "en", "lang attribute follows")

# --- desktop ----------------------------------------------------------------------
size(1280, 800, False)
js("localStorage.setItem('agri-lang', 'vi')")
load()
wait_js("document.querySelectorAll('#salinity-charts svg.chart path.line').length >= 2", 20, "charts on desktop")
R.check(js("getComputedStyle(document.getElementById('stations')).gridTemplateColumns.split(' ').length") >= 3,
        "desktop: stations in a grid")
shot("dashboard-desktop.png")
shot("dashboard-desktop-full.png", full=True)

# --- refreshes by itself -------------------------------------------------------------
n = js("+document.body.dataset.refreshes")
wait_js("+document.body.dataset.refreshes > %d" % n, 15, "an automatic refresh")
R.check(True, "refreshed by itself")
ws.close()
chrome.stop()
R.check(st.stop() == 0, "gateway exits 0")
R.done()
