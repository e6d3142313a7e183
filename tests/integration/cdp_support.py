"""Headless chromium driven over the Chrome DevTools protocol
(python3-websocket), for the dashboard's browser tests: start it on a free
port, evaluate JS, wait for conditions, emulate a phone or a 3G network,
count the bytes a page load moves, save screenshots. Debian packages only
(chromium, python3-websocket); no test framework, no downloaded browser."""
import base64
import json
import os
import shutil
import time
import urllib.request

import harness

try:
    import websocket  # python3-websocket
except ImportError:
    websocket = None

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")

# Chrome DevTools' "Regular 3G" preset: 750 kbit/s down, 250 up, 100 ms.
REGULAR_3G = {"offline": False, "latency": 100, "downloadThroughput": 750 * 1024 / 8,
              "uploadThroughput": 250 * 1024 / 8, "connectionType": "cellular3g"}


def available():
    return bool(BROWSER and websocket)


class Browser:
    """One chromium with one page; events are kept until read (events())."""

    def __init__(self, log_dir):
        self.port = harness.free_port()
        profile = harness.tmpdir("agri-chromium-")
        self.proc = harness.Proc([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                  "--no-first-run", "--disable-background-networking",
                                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                                  "--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1",
                                  "--remote-debugging-port=%d" % self.port, "--remote-allow-origins=*",
                                  "about:blank"], os.path.join(log_dir, "chromium.log"))
        harness.wait_port(self.port, 30, self.proc)
        page = harness.wait_for(self._pages, 15, what="a page target")[0]
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._id = 0
        self._events = []
        self.cdp("Page.enable")
        self.cdp("Runtime.enable")

    def _pages(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port, timeout=5) as r:
            return [t for t in json.load(r) if t.get("type") == "page"]

    def cdp(self, method, **params):
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError("%s: %s" % (method, m["error"]))
                return m.get("result", {})
            if "method" in m:
                self._events.append(m)

    def events(self, method=None):
        """The events received so far (and forgets them)."""
        self.ws.settimeout(0.05)
        try:
            while True:
                m = json.loads(self.ws.recv())
                if "method" in m:
                    self._events.append(m)
        except (websocket.WebSocketTimeoutException, BlockingIOError):
            pass
        finally:
            self.ws.settimeout(60)
        out = [e for e in self._events if method is None or e["method"] == method]
        self._events = [e for e in self._events if not (method is None or e["method"] == method)]
        return out

    def js(self, expr):
        r = self.cdp("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError("js %s: %s" % (expr[:200], r["exceptionDetails"]))
        return r["result"].get("value")

    def wait_js(self, expr, timeout=20, what=None):
        return harness.wait_for(lambda: self.js(expr), timeout, 0.1, what=what or expr[:120])

    def size(self, w, h, mobile):
        self.cdp("Emulation.setDeviceMetricsOverride", width=w, height=h,
                 deviceScaleFactor=2 if mobile else 1, mobile=mobile)

    def navigate(self, url):
        self.cdp("Page.navigate", url=url)

    def shot(self, path, full=False):
        params = {"format": "png"}
        if full:
            h = self.js("document.documentElement.scrollHeight")
            w = self.js("document.documentElement.clientWidth")
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": w, "height": h, "scale": 1})
        data = self.cdp("Page.captureScreenshot", **params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        print("screenshot", path, flush=True)
        return path

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.stop()


def transfer(browser, idle_s=1.5, timeout=30):
    """Bytes on the wire (headers and bodies) of every request since the
    events were last read, once the network has been idle for idle_s.
    Returns (total, [(url, bytes)])."""
    sizes, urls = {}, {}
    last = time.time()
    deadline = time.time() + timeout
    pending = set()
    while time.time() < deadline:
        evs = browser.events()
        for e in evs:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
                pending.add(p["requestId"])
            elif e["method"] == "Network.responseReceived" and p["response"].get("status") == 304:
                # a 304 has no loadingFinished: its headers are all it moved
                sizes[p["requestId"]] = p["response"].get("encodedDataLength", 0)
                pending.discard(p["requestId"])
            elif e["method"] == "Network.loadingFinished":
                sizes[p["requestId"]] = p.get("encodedDataLength", 0)
                pending.discard(p["requestId"])
            elif e["method"] == "Network.loadingFailed":
                pending.discard(p["requestId"])
        if evs:
            last = time.time()
        if not pending and time.time() - last >= idle_s:
            break
        time.sleep(0.05)
    rows = [(urls.get(k, k), v) for k, v in sizes.items()]
    return sum(v for _, v in rows), rows


# Contrast (WCAG 2.x) of every rendered text against what is behind it,
# from computed styles: text colour (SVG: fill) over the stack of
# background colours up to the page, each blended by its alpha. Also the
# font size in CSS px (SVG text scaled by its screen transform).
CONTRAST_JS = r"""
(() => {
  const parse = (c) => {
    const m = c && c.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bot) => [0, 1, 2].map((i) => top[i] * top[3] + bot[i] * (1 - top[3])).concat([1]);
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const background = (e) => {
    const layers = [];
    let opacity = 1;
    for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
      const cs = getComputedStyle(n);
      opacity *= parseFloat(cs.opacity);
      const c = parse(cs.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return [bg, opacity];
  };
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const own = [...e.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent.trim()).join(' ');
    if (!own) continue;
    const rects = e.getClientRects();
    if (!rects.length || (rects[0].width === 0 && rects[0].height === 0)) continue;
    const cs = getComputedStyle(e);
    if (cs.visibility === 'hidden' || cs.display === 'none') continue;
    const isSvg = e instanceof SVGElement;
    let fg = parse(isSvg ? cs.fill : cs.color);
    if (!fg) continue;
    const [bg, opacity] = background(e);
    fg = over([fg[0], fg[1], fg[2], fg[3] * opacity], bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    let size = parseFloat(cs.fontSize);
    if (isSvg && e.getScreenCTM) size *= e.getScreenCTM().a;
    out.push({ text: own.slice(0, 60), tag: e.tagName.toLowerCase(), cls: String(e.className && e.className.baseVal !== undefined ? e.className.baseVal : e.className),
               ratio: Math.round(ratio * 100) / 100, size: Math.round(size * 10) / 10,
               fg: fg.slice(0, 3).map(Math.round), bg: bg.slice(0, 3).map(Math.round) });
  }
  return out;
})()
"""
