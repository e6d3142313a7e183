"""The dashboard shows both hubs (issue 27; docs/dashboard.md "Hubs",
docs/api.md GET /api/v1/hubs): two brokers with the shipped configuration
bridged by the file `agrictl provision --peer-hub` writes, a real
agri-gateway on each (its own broker only, `ha` so that each has a Last
Will, `broker.station_url` its TLS listener), stations as python peers over
TLS: two on hub A, one on hub B, each with a retained status naming its hub
(`broker`), one more whose status says offline.

1. GET /api/v1/hubs on either gateway lists both hubs up, with the right
   stations on each and the offline one on no hub.
2. In headless chromium (cdp_support.py), A's page shows the hubs' panel:
   both hubs up, their stations by name.
3. Gateway B SIGKILLed: its broker publishes its Last Will, the bridge
   carries it, and A's endpoint and page show B offline within seconds
   (printed); B's stations stay listed under it.
About 20 s."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_support as A  # noqa: E402
import broker_support as B  # noqa: E402
import cdp_support as C  # noqa: E402
import gateway_peer as gp  # noqa: E402
import ha_support as HA  # noqa: E402
import harness as H  # noqa: E402


class Hub:
    def __init__(self, wd, name, ca_from=None):
        self.name = name
        work = os.path.join(wd, name)
        if ca_from:  # one CA for the province
            os.makedirs(os.path.join(work, "broker", "certs"))
            for f in ("ca.crt", "ca.key"):
                shutil.copy(os.path.join(ca_from.certs, f), os.path.join(work, "broker", "certs", f))
        self.br = B.ShippedBroker(work)
        gw_pass = self.br.hub_account("gateway")
        self.dir = os.path.join(work, "gw")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "gw.pass"), "w") as f:
            f.write(gw_pass)
        self.http_port = H.free_port()
        self.client_id = "agri-gateway-" + name.lower()
        self.station_url = "mqtts://localhost:%d" % self.br.tls_port
        # claims: a PostgreSQL nobody listens on; with no notify channel
        # nothing is ever claimed, but ha gives the hub its Last Will
        cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % self.br.loop_port,
                          "client_id": self.client_id, "username": "gateway",
                          "password_file": "gw.pass", "keepalive_s": 10,
                          "station_url": self.station_url},
               "db": {"path": "agri.db"}, "forecast": {"enabled": False},
               "ha": {"hub_id": "hub-" + name.lower(), "priority": 1 if name == "A" else 2,
                      "claims": "host=127.0.0.1 port=%d dbname=agri user=agri connect_timeout=1"
                                % H.free_port()},
               "sites": {"CL-01": {"name": "Cống Cái Lân"}},
               "http": {"listen": "127.0.0.1:%d" % self.http_port}}
        self.gw = gp.Gateway(self.dir, H.write_json(os.path.join(self.dir, "gateway.json"), cfg),
                             name="gw-" + name)

    def start(self):
        self.gw.start()
        H.wait_port(self.http_port, 15, self.gw.proc)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def hubs(self):
        r = A.request(self.url("/api/v1/hubs"))
        return r.json() if r.status == 200 else None


def by_id(doc, client_id):
    for h in (doc or {}).get("hubs", []):
        if h["id"] == client_id:
            return h
    return None


def status(st, url, online=True):
    body = {"v": 1, "station": st.name, "state": "online" if online else "offline",
            "ts": gp.iso(int(time.time() * 1000)), "fw": "0.1.0"}
    if online:
        body["broker"] = url
    st.c.publish("agri/v1/%s/status" % st.name, gp.json.dumps(body), qos=1, retain=True)


def main():
    res = H.Result("test_dashboard_hubs")
    wd = H.tmpdir("agri-dash-hubs-")
    a = Hub(wd, "A")
    b = Hub(wd, "B", ca_from=a.br)
    names = ["CL-01", "CL-02", "CL-03", "CL-04"]
    passwords = {s: a.br.provision(s) for s in names}
    r, _ = HA.bridge(a, b)
    res.check(r.returncode == 0, "agrictl provision --peer-hub writes the bridge")
    b.br.start()
    a.br.start()
    H.wait_for(lambda: "bridge-a" in open(b.br.proc.log_path).read(), 15,
               what="the bridge connected to B")
    a.start()
    b.start()

    home = {"CL-01": a, "CL-02": a, "CL-03": b, "CL-04": a}
    sts = {}
    for n in names:
        hub = home[n]
        st = gp.Station(hub.br.tls_port, n, ack_timeout=2.0, user=n, password=passwords[n],
                        ca=hub.br.ca)
        st.connected.wait(10)
        status(st, hub.station_url, online=n != "CL-04")
        ts = int(time.time() * 1000)
        st.publish(1, {"v": 1, "station": n, "seq": 1, "sent_at": gp.iso(ts), "readings": [
            {"ts": gp.iso(ts), "sensor": "sonde1", "metric": "salinity", "value": 0.4,
             "unit": "g/L", "q": "ok"}]})
        sts[n] = st

    # 1. both hubs up, the stations on each, from either gateway
    def listed(hub):
        d = hub.hubs()
        ha, hb = by_id(d, a.client_id), by_id(d, b.client_id)
        return (ha and hb and ha["state"] == "up" and hb["state"] == "up" and
                ha["stations"] == ["CL-01", "CL-02"] and hb["stations"] == ["CL-03"] and
                d["on_no_hub"] == ["CL-04"]) and d
    for hub in (a, b):
        d = None
        try:
            d = H.wait_for(lambda: listed(hub), 20, 0.2, what="both hubs on %s" % hub.name)
        except Exception as e:  # noqa: BLE001
            print("GET /api/v1/hubs on %s: %s (%s)" % (hub.name, hub.hubs(), e))
        res.check(bool(d), "GET /api/v1/hubs on %s: both hubs up, CL-01 and CL-02 on A, CL-03 on B,"
                  " CL-04 on none" % hub.name)
        if d:
            me = by_id(d, hub.client_id)
            res.check(me["self"] and me["hub_id"] == "hub-" + hub.name.lower() and
                      me["station_url"] == hub.station_url and me["last_heard"] and
                      "behind_s" in me and d["in_step_s"] == 120 and d["silent_s"] == 180,
                      "%s: itself, its hub_id, its station URL, last heard, behind_s" % hub.name)
    for st in sts.values():
        H.wait_for(lambda: st.pending() == 0, 15, 0.05, what="%s acked" % st.name)

    # 2. the page's panel, on A
    browser = None
    if C.available():
        browser = C.Browser(wd)
        browser.size(390, 844, True)
        browser.navigate(a.url("/"))
        browser.wait_js("document.body && +(document.body.dataset.refreshes || 0) >= 1", 30,
                        "the first refresh")
        browser.js("document.getElementById('hubs-section').scrollIntoView()")
        try:
            browser.wait_js("document.querySelectorAll('#hubs .hub[data-state=up]').length === 2", 20,
                            "both hubs on the page")
            ok = True
        except Exception as e:  # noqa: BLE001
            print("the page: %s" % e)
            ok = False
        text = browser.js("document.getElementById('hubs').innerText")
        res.check(ok and "hub-a" in text and "hub-b" in text and "Cống Cái Lân" in text and
                  "CL-02" in text and "CL-03" in text,
                  "the page's hubs panel: both hubs up, the stations on each by name")
        browser.shot(os.path.join(wd, "dashboard-hubs.png"))
    else:
        print("SKIP (page): chromium or python3-websocket missing")

    # 3. B SIGKILLed: its Last Will, through the bridge, on A
    t0 = time.monotonic()
    b.gw.kill9()

    def b_offline():
        hb = by_id(a.hubs(), b.client_id)
        return hb and hb["state"] == "offline" and hb["why"] == "offline" and hb
    hb = None
    try:
        hb = H.wait_for(b_offline, 15, 0.05, what="B offline on A")
    except Exception as e:  # noqa: BLE001
        print("A's hubs: %s (%s)" % (a.hubs(), e))
    took = time.monotonic() - t0
    res.check(bool(hb), "gateway B SIGKILLed: A's endpoint says it is offline (its Last Will)"
              " %.2f s later" % took)
    ha = by_id(a.hubs(), a.client_id)
    res.check(ha and ha["state"] == "up", "A itself still up")
    if browser:
        try:
            browser.wait_js("!!document.querySelector('#hubs .hub[data-hub=\"%s\"][data-state=offline]')"
                            % b.client_id, 25, "B offline on the page")
            ok = True
        except Exception as e:  # noqa: BLE001
            print("the page: %s" % e)
            ok = False
        res.check(ok, "the page shows B offline (polled every 10 s) %.1f s after the kill"
                  % (time.monotonic() - t0))
        browser.close()
    for st in sts.values():
        st.close()
    a.gw.stop()
    a.br.stop()
    b.br.stop()
    res.done()


if __name__ == "__main__":
    main()
