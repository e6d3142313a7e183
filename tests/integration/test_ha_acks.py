"""An alert acknowledged on one hub is acknowledged on the other (issue 27,
docs/ha.md "Acknowledgements"): two brokers with the shipped configuration
bridged by the file `agrictl provision --peer-hub` writes, a real
agri-gateway on each (its own broker only, HTTP API, the same rule with
reminders every 3 s, a webhook "ops" per hub), stations as python peers over
TLS on hub A.

1. A crossing raises the alert on both hubs (B through the bridge); an
   agronomist acknowledges it through A's API: within seconds B's API shows
   it acknowledged by the same person, and neither hub reminds about it any
   more (before: B kept reminding). A's message crossed the bridge; B
   published none (no ping-pong).
2. Hostile messages on the topic (not JSON, oversized, another hub's name,
   an episode of another alert, a rule B does not have, an episode older
   than B's) are dead letters or ignored with a log line, and change
   nothing.
3. The clear and a new crossing make a new episode; A's acknowledgement of
   the first one, replayed, does not acknowledge it.
4. An acknowledgement that comes before its episode waits, and applies
   when the crossing comes.
5. A config push and a maintenance flag made with agrictl on hub A reach a
   real agri-station on hub B over the bridge (signed, acked back).
Prints the propagation time. About 40 s."""
import json
import os
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api_support as A  # noqa: E402
import broker_support as B  # noqa: E402
import gateway_peer as gp  # noqa: E402
import ha_support as ha  # noqa: E402
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

RENOTIFY_S = 3
ALERT = "salinity-high/CL-01/sonde1"


class Sink(BaseHTTPRequestHandler):
    got = []  # (time, hub, event, alert JSON)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
        with Sink.lock:
            Sink.got.append((time.time(), self.path.strip("/"), self.headers.get("X-Agri-Event"),
                             json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def reminders(hub, alert_id, since):
    with Sink.lock:
        return [t for t, h, ev, al in Sink.got
                if h == hub and ev == "renotify" and al.get("id") == alert_id and t >= since]


class Hub:
    def __init__(self, wd, name, sink, ca_from=None):
        self.name = name
        work = os.path.join(wd, name)
        if ca_from:  # one CA for the province
            os.makedirs(os.path.join(work, "broker", "certs"))
            for f in ("ca.crt", "ca.key"):
                shutil.copy(os.path.join(ca_from.certs, f), os.path.join(work, "broker", "certs", f))
        self.br = B.ShippedBroker(work)
        self.gw_pass = self.br.hub_account("gateway")
        self.ctl_pass = self.br.hub_account("agrictl")
        self.dir = os.path.join(work, "gw")
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "gw.pass"), "w") as f:
            f.write(self.gw_pass)
        with open(os.path.join(self.dir, "api.token"), "w") as f:
            f.write(A.TOKEN + "\n")
        self.ctl_pass_file = os.path.join(self.dir, "ctl.pass")
        with open(self.ctl_pass_file, "w") as f:
            f.write(self.ctl_pass)
        H.write_json(os.path.join(self.dir, "rules.json"), {"rules": [
            {"id": "salinity-high", "metric": "salinity", "above": 4.0, "hysteresis": 0.3,
             "severity": "critical", "stations": ["CL-*"], "notify": ["ops"],
             "renotify_s": RENOTIFY_S}]})
        self.http_port = H.free_port()
        self.client_id = "agri-gateway-" + name.lower()
        cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % self.br.loop_port,
                          "client_id": self.client_id, "username": "gateway",
                          "password_file": "gw.pass", "keepalive_s": 10},
               "db": {"path": "agri.db"}, "rules_file": "rules.json",
               "forecast": {"enabled": False},
               "notify": {"webhooks": [{"name": "ops", "url": "%s/%s" % (sink, name)}]},
               "http": {"listen": "127.0.0.1:%d" % self.http_port, "token_file": "api.token"}}
        self.db = os.path.join(self.dir, "agri.db")
        self.gw = gp.Gateway(self.dir, H.write_json(os.path.join(self.dir, "gateway.json"), cfg),
                             name="gw-" + name)

    def start(self):
        self.gw.start()
        H.wait_port(self.http_port, 15, self.gw.proc)

    def alert(self, alert_id):
        r = A.request("http://127.0.0.1:%d/api/v1/alerts?history=0" % self.http_port)
        for al in r.json()["alerts"]:
            if al["id"] == alert_id:
                return al
        return None

    def state(self, alert_id):
        al = self.alert(alert_id)
        return (al["state"], al["acknowledged_by"], al["raised_at"]) if al else None

    def ack(self, alert_id, by):
        return A.request("http://127.0.0.1:%d/api/v1/alerts/%s/ack" % (self.http_port,
                                                                       quote(alert_id, safe="")),
                         method="POST", data=json.dumps({"by": by}).encode(),
                         headers={"Authorization": "Bearer " + A.TOKEN,
                                  "Content-Type": "application/json"})

    def dead_letters(self):
        return gp.query(self.db, "SELECT topic, kind, reason FROM dead_letters"
                                 " WHERE topic LIKE 'agri/v1/hub/%' ORDER BY id")

    def log(self):
        return self.gw.proc.log_text()

    def mqtt(self, user, client_id):
        """A client of the hub listener (the hub's own accounts)."""
        import paho.mqtt.client as mqtt
        c = mqtt.Client(client_id=client_id)
        c.username_pw_set(user, self.gw_pass if user == "gateway" else self.ctl_pass)
        c.connect("127.0.0.1", self.br.loop_port, 30)
        c.loop_start()
        return c


def reading(st, seq, value, ts_ms=None):
    ts = ts_ms or int(time.time() * 1000)
    st.publish(seq, {"v": 1, "station": st.name, "seq": seq, "sent_at": gp.iso(ts), "readings": [
        {"ts": gp.iso(ts), "sensor": "sonde1", "metric": "salinity", "value": value,
         "unit": "g/L", "q": "ok"}]})
    H.wait_for(lambda: st.pending() == 0, 15, 0.05, what="%s seq %d acked" % (st.name, seq))


def main():
    res = H.Result("test_ha_acks")
    t_start = time.monotonic()
    wd = H.tmpdir("agri-ha-acks-")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sink = "http://127.0.0.1:%d" % srv.server_address[1]
    a = Hub(wd, "A", sink)
    b = Hub(wd, "B", sink, ca_from=a.br)
    stations = ["CL-01", "CL-02", "CL-03", "ST-B"]
    passwords = {s: a.br.provision(s) for s in stations}
    r, _ = ha.bridge(a, b)
    res.check(r.returncode == 0, "agrictl provision --peer-hub writes the bridge")
    b.br.start()
    a.br.start()
    H.wait_for(lambda: "bridge-a" in open(b.br.proc.log_path).read(), 15,
               what="the bridge connected to B")
    a.start()
    b.start()

    # What crosses on B's broker under agri/v1/hub/+/ack (agrictl's account reads hub/#).
    seen, seen_lock = [], threading.Lock()
    obs = b.mqtt("agrictl", "agrictl-obs-b")

    def on_msg(c, u, m):
        with seen_lock:
            seen.append((time.time(), m.topic, m.payload))
    obs.on_message = on_msg
    obs.subscribe("agri/v1/hub/+/ack", 1)

    def station(name):
        st = gp.Station(a.br.tls_port, name, ack_timeout=2.0, user=name, password=passwords[name],
                        ca=a.br.ca)
        st.connected.wait(10)
        return st

    # 1. A crossing, on both hubs; acknowledged on A.
    st = station("CL-01")
    reading(st, 1, 0.5)
    reading(st, 2, 4.6)
    H.wait_for(lambda: a.state(ALERT) and b.state(ALERT), 15, 0.1, what="the alert on both hubs")
    res.check(a.state(ALERT)[0] == "active" and b.state(ALERT)[0] == "active" and
              a.state(ALERT)[2] == b.state(ALERT)[2],
              "the crossing raised the alert on both hubs, the same episode (raised_at %s)"
              % a.state(ALERT)[2])
    H.wait_for(lambda: reminders("B", ALERT, 0) and reminders("A", ALERT, 0), 3 * RENOTIFY_S, 0.1,
               what="reminders from both hubs")
    t_ack = time.time()
    r = a.ack(ALERT, "lan")
    res.check(r.status == 200 and r.json()["changed"], "acknowledged through A's API by lan")
    try:
        H.wait_for(lambda: b.state(ALERT)[0] == "acknowledged", 10, 0.02,
                   what="B showing it acknowledged")
        took = time.time() - t_ack
    except TimeoutError:
        took = None
    print("   acknowledged on A: B's API shows it %s" % ("after %.2f s" % took if took is not None
                                                        else "NOT within 10 s"), flush=True)
    res.check(took is not None and took < 5 and b.state(ALERT)[1] == "lan",
              "B's API shows it acknowledged by lan within 5 s (%s)" % (b.state(ALERT),))
    time.sleep(0.5)
    t_quiet = time.time()
    time.sleep(3 * RENOTIFY_S + 1)
    res.check(not reminders("B", ALERT, t_quiet) and not reminders("A", ALERT, t_quiet),
              "no reminder from either hub in the %d s after (B: %d, A: %d; every %d s before)"
              % (3 * RENOTIFY_S + 1, len(reminders("B", ALERT, t_quiet)),
                 len(reminders("A", ALERT, t_quiet)), RENOTIFY_S))
    with seen_lock:
        msgs = [(t, tp, json.loads(p)) for t, tp, p in seen]
    from_a = [m for t, tp, m in msgs if tp == "agri/v1/hub/agri-gateway-a/ack"]
    res.check(len(from_a) == 1 and from_a[0]["by"] == "lan" and from_a[0]["hub"] == "agri-gateway-a"
              and from_a[0]["episode"].startswith(ALERT + "@") and from_a[0]["severity"] == "critical",
              "A's acknowledgement crossed the bridge: %s" % (from_a[:1],))
    res.check(not [1 for t, tp, m in msgs if "agri-gateway-b" in tp],
              "B published no acknowledgement of its own (no ping-pong)")
    if not from_a:
        res.done()  # nothing to replay: the rest cannot run
    ep1 = [p for t, tp, p in seen if tp == "agri/v1/hub/agri-gateway-a/ack"][0]
    ep1_ms = int(from_a[0]["episode"].rsplit("@", 1)[1])

    # 2. Hostile messages, published on B's hub listener by a hub account.
    st2 = station("CL-02")
    reading(st2, 1, 4.8)
    al2 = "salinity-high/CL-02/sonde1"
    H.wait_for(lambda: b.state(al2), 15, 0.1, what="CL-02's alert on B")
    raised2 = b.alert(al2)["raised_at"]
    ev = gp.query(b.db, "SELECT start FROM alert_episodes WHERE alert_id = ?", (al2,))[0][0]
    dl0 = len(b.dead_letters())
    h = b.mqtt("gateway", "agri-gateway-x")
    topic = "agri/v1/hub/agri-gateway-x/ack"

    def ack_msg(**kw):
        m = {"v": 1, "hub": "agri-gateway-x", "id": al2, "episode": "%s@%d" % (al2, ev),
             "severity": "critical", "by": "mallory", "at": gp.iso(int(time.time() * 1000))}
        m.update(kw)
        return json.dumps(m)
    hostile = [
        ("not JSON", b"\x00\xffnot json", True),
        ("oversized", ack_msg(by="x", pad="y" * 2000), True),
        ("another hub's name", ack_msg(hub="agri-gateway-a"), True),
        ("the episode of another alert", ack_msg(episode="%s@%d" % (ALERT, ep1_ms)), True),
        ("control characters in by", ack_msg(by="mal\u0007lory"), True),
        ("a rule B does not have", ack_msg(id="nitrate/CL-02/sonde1",
                                           episode="nitrate/CL-02/sonde1@%d" % ev), False),
        ("an episode older than B's", ack_msg(episode="%s@%d" % (al2, ev - 60000)), False),
    ]
    for what, payload, _ in hostile:
        h.publish(topic, payload, qos=1).wait_for_publish(5)
    n_dead = sum(1 for _, _, d in hostile if d)
    try:
        H.wait_for(lambda: len(b.dead_letters()) - dl0 >= n_dead, 10, 0.1, what="dead letters")
    except TimeoutError:
        pass
    time.sleep(1)
    dls = b.dead_letters()[dl0:]
    res.check(len(dls) == n_dead and all(k == "invalid" and t == topic for t, k, _ in dls),
              "B: the %d malformed ones are dead letters of kind invalid (%s)"
              % (n_dead, [reason for _, _, reason in dls]))
    log = b.log()
    res.check("refused topic=agri/v1/hub/agri-gateway-x/ack" in log and
              "no such alert in this hub's rules id=nitrate/CL-02/sonde1" in log and
              "this hub's open alert is a later episode id=%s" % al2 in log,
              "B logged the refusals and the two it ignored")
    res.check(b.state(al2) == ("active", None, raised2) and a.state(al2)[0] == "active",
              "nothing changed: CL-02's alert still active and unacknowledged on both hubs")

    # 3. The clear and a new crossing: a new episode, which the first
    # episode's acknowledgement (replayed on B's broker) does not touch.
    reading(st, 3, 0.5)
    H.wait_for(lambda: b.state(ALERT) is None or b.state(ALERT)[0] != "acknowledged", 10, 0.1,
               what="the clear on B")
    time.sleep(1)
    reading(st, 4, 4.7)
    H.wait_for(lambda: (b.state(ALERT) or ("",))[0] == "active" and
               (a.state(ALERT) or ("",))[0] == "active", 10, 0.1, what="the new episode on both")
    raised_new = b.state(ALERT)[2]
    h2 = b.mqtt("gateway", "agri-gateway-replay")
    h2.publish("agri/v1/hub/agri-gateway-a/ack", ep1, qos=1).wait_for_publish(5)
    H.wait_for(lambda: b.log().count("this hub's open alert is a later episode id=%s" % ALERT) >= 1,
               10, 0.1, what="B's verdict on the replay")
    time.sleep(1)
    res.check(b.state(ALERT) == ("active", None, raised_new) and a.state(ALERT)[0] == "active",
              "the first episode's acknowledgement, replayed, leaves the new episode active and"
              " unacknowledged (%s)" % (b.state(ALERT),))

    # 4. An acknowledgement before its episode (a hub ahead of B, here
    # agri-gateway-x) waits, and applies when the crossing comes.
    al3 = "salinity-high/CL-03/sonde1"
    ts3 = int(time.time() * 1000) - 5000
    h.publish(topic, json.dumps({"v": 1, "hub": "agri-gateway-x", "id": al3,
                                 "episode": "%s@%d" % (al3, ts3), "severity": "critical",
                                 "by": "hoa", "at": gp.iso(int(time.time() * 1000))}),
              qos=1).wait_for_publish(5)
    H.wait_for(lambda: "waits for its episode id=%s" % al3 in b.log(), 10, 0.1,
               what="B keeping the early acknowledgement")
    st3 = station("CL-03")
    reading(st3, 1, 0.5, ts3 - 1000)
    reading(st3, 2, 4.9, ts3)
    try:
        H.wait_for(lambda: (b.state(al3) or ("",))[0] == "acknowledged", 10, 0.1,
                   what="CL-03 acknowledged on B")
    except TimeoutError:
        pass
    res.check(b.state(al3) and b.state(al3)[:2] == ("acknowledged", "hoa") and
              "(it waited for its episode)" in b.log(),
              "an acknowledgement that came before its episode applied when it began (%s)"
              % (b.state(al3),))

    # 5. Config push and maintenance flag from hub A to a station on hub B.
    sim_port = H.free_port()
    S.start_sim(wd, "sim", ["1:sensecap-s-ec-01"], tcp_port=sim_port)
    sd = os.path.join(wd, "ST-B")
    os.makedirs(sd)
    with open(os.path.join(sd, "station.pass"), "w") as f:
        f.write(passwords["ST-B"])
    shutil.copy(a.br.ca, os.path.join(sd, "ca.crt"))
    scfg = S.station_config(sd, 0, [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port},
                                     "timeout_ms": 500}],
                            [{"name": "sonde1", "bus": "lan", "slave": 1,
                              "profile": "sensecap-s-ec-01", "interval_s": 1}], station="ST-B")
    scfg["broker"] = {"urls": ["ssl://localhost:%d" % b.br.tls_port], "username": "ST-B",
                      "password_file": "station.pass", "ca_file": "ca.crt", "keepalive_s": 5}
    keys = os.path.join(wd, "keys")
    r = H.run([H.bin_path("agrictl"), "provision", "--technician", "alice", "--out", keys])
    S.install_technician(os.path.join(sd, "ST-B.json"), os.path.join(keys, "alice.pub"))
    proc, spath = S.start_station(sd, scfg, name="ST-B")
    H.wait_for(lambda: gp.query(a.db, "SELECT count(*) FROM v_readings WHERE station = 'ST-B'")[0][0]
               > 0, 20, 0.2, what="ST-B's readings on A, over the bridge")
    push = dict(scfg, probation_s=0, publish_interval_s=2)
    ppath = H.write_json(os.path.join(wd, "push.json"), push)
    ctl = [H.bin_path("agrictl")]
    broker_a = ["--broker", "tcp://127.0.0.1:%d" % a.br.loop_port, "--username", "agrictl",
                "--password-file", a.ctl_pass_file, "--key", os.path.join(keys, "alice.key"),
                "--timeout-s", "20"]
    r = H.run(ctl + ["config", "push", "--station", "ST-B"] + broker_a + [ppath], timeout=40)
    res.check(r.returncode == 0 and "applied" in r.stdout,
              "agrictl config push on hub A, station on hub B: applied (%s)"
              % (r.stdout + r.stderr).strip()[-200:])
    r = H.run(ctl + ["maint", "ST-B", "on"] + broker_a, timeout=40)
    res.check(r.returncode == 0 and "applied" in r.stdout,
              "agrictl maint ST-B on, on hub A: applied by the station on B (%s)"
              % (r.stdout + r.stderr).strip()[-200:])
    H.wait_for(lambda: gp.query(a.db, "SELECT maintenance FROM stations WHERE name = 'ST-B'")[0][0]
               in (1, "1", "true"), 15, 0.2, what="ST-B's status in maintenance on A")
    res.check(True, "ST-B's status on gateway A (over the bridge) says maintenance")
    proc.stop()

    print("   test %.0f s" % (time.monotonic() - t_start), flush=True)
    for c in (obs, h, h2):
        c.loop_stop()
        c.disconnect()
    for s in (st, st2, st3):
        s.close()
    for hub in (a, b):
        res.check(hub.gw.stop() == 0, "gateway %s exits 0" % hub.name)
    for hub in (a, b):
        hub.br.stop()
    srv.shutdown()
    res.done()


if __name__ == "__main__":
    main()
