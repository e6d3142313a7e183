#!/usr/bin/python3
"""Hub catch-up (issue 27, docs/ha.md "Catch-up"): two real mosquittos bridged
(A carries the bridge, `topic agri/v1/# both 1`, plain TCP written here: the
shipped TLS adds nothing to what is tested), a real agri-gateway with `ha` on
each, one PostgreSQL for the notification claims, a webhook receiver, and a
station publishing to hub A.

1. Hub B misses readings A acked: gateway B is SIGKILLed (broker B queues for
   its session what the bridge brings), the station sends a salinity
   crossing (raise, clear) that A stores, acks and notifies, then broker B
   is SIGKILLed with that queue in memory and restarted. Its session is
   gone: the readings exist on A only, for good (the bridge's queue was
   the only copy). Before catch-up they stayed so (the test fails there).
2. Within a bounded time B holds exactly A's readings (set equality of
   (station, sensor, metric, ts, value)), none twice, the same alert
   episodes, and the crossing was notified once (B's episodes find A's
   claims). B's station seq tracking is untouched (no ack from a replay).
3. Hostile: a malformed replay and one too big are dead letters of kind
   "replay" with their reason; one of hours nobody asked for is dropped and
   counted (agri_gateway_catchup_readings_unasked_total: after a restart the
   predecessor's answers arrive so, and are no fault); nothing stored;
   a digest claiming huge counts for thousands of stations and an
   unsolicited detail make B ask a bounded amount (details, hours).
About 20 s."""
import json
import os
import re
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_peer as gp  # noqa: E402
import harness  # noqa: E402
import upstream_support as us  # noqa: E402

EVERY_S = 2
CATCHUP_LIMIT_S = 45


class Sink(BaseHTTPRequestHandler):
    got = []  # (path, alert)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
        with Sink.lock:
            Sink.got.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def deliveries(station):
    with Sink.lock:
        return [(p.strip("/"), a["id"], a["state"]) for p, a in Sink.got
                if a.get("station") == station]


def metrics(port):
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError:
        return {}
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(agri_gateway_catchup_\w+) (\S+)$", text, re.M)}


class Hub:
    def __init__(self, d, name, mq, sink, pg, priority):
        self.name = name
        self.dir = os.path.join(d, name)
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "agri.db")
        self.http_port = harness.free_port()
        rules = {"rules": [{"id": "salinity-high", "metric": "salinity", "above": 4.0,
                            "hysteresis": 0.3, "for_s": 0, "severity": "critical",
                            "notify": ["ops"]}]}
        harness.write_json(os.path.join(self.dir, "rules.json"), rules)
        cfg = {"broker": {"url": mq.url, "client_id": "agri-gateway-" + name, "keepalive_s": 5},
               "db": {"path": "agri.db"}, "rules_file": "rules.json",
               "forecast": {"enabled": False},
               "notify": {"webhooks": [{"name": "ops", "url": "%s/%s" % (sink, name)}]},
               "http": {"listen": "127.0.0.1:%d" % self.http_port},
               "ha": {"hub_id": "hub-" + name, "claims": pg.conninfo, "priority": priority,
                      "takeover_s": 30, "catchup_every_s": EVERY_S, "catchup_settle_s": 1,
                      "catchup_window_h": 3}}
        self.gw = gp.Gateway(self.dir, harness.write_json(os.path.join(self.dir, "gateway.json"), cfg),
                             name="gw-" + name)

    def start(self):
        self.gw.start()
        harness.wait_port(self.http_port, 15, self.gw.proc)
        return self

    def readings(self):
        return gp.query(self.db, "SELECT station, sensor, metric, ts, value FROM v_readings")

    def episodes(self):
        return gp.query(self.db, "SELECT id, start, end, severity FROM v_alert_episodes")

    def dead(self, kind):
        return gp.query(self.db, "SELECT reason FROM v_dead_letters WHERE kind = ?", (kind,))

    def metrics(self):
        return metrics(self.http_port)


def send(st, seq, salinity):
    now = int(time.time() * 1000) // 1000 * 1000 + seq  # distinct whatever the pace
    st.publish(seq, {"v": 1, "station": st.name, "seq": seq, "sent_at": gp.iso(now), "readings": [
        {"ts": gp.iso(now), "sensor": "sonde1", "metric": "salinity", "value": salinity,
         "unit": "g/L", "q": "ok"},
        {"ts": gp.iso(now), "sensor": "sonde1", "metric": "temperature", "value": 28.0 + seq / 10,
         "unit": "Cel", "q": "ok"}]})


def main():
    res = harness.Result("test_ha_catchup")
    d = harness.tmpdir("agri-catchup-")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sink = "http://127.0.0.1:%d" % srv.server_address[1]
    pg = us.Postgres(d, fsync=False).start()
    mq_b = harness.Mosquitto(os.path.join(d, "mq-b")).start()
    bridge = ("connection bridge-a\naddress 127.0.0.1:%d\ntopic agri/v1/# both 1\n"
              "cleansession false\ntry_private true\nrestart_timeout 1 2\n"
              "keepalive_interval 5\n" % mq_b.port)
    mq_a = harness.Mosquitto(os.path.join(d, "mq-a"), extra_conf=bridge).start()
    a = Hub(d, "a", mq_a, sink, pg, 1).start()
    b = Hub(d, "b", mq_b, sink, pg, 2).start()
    st = gp.Station(mq_a.port, "CL-01", ack_timeout=2.0)
    st.connected.wait(10)

    # Both hubs store what the bridge carries.
    seq = 0
    for v in (0.5, 0.6, 0.7):
        seq += 1
        send(st, seq, v)
    harness.wait_for(lambda: len(a.readings()) == 6 and len(b.readings()) == 6, 20, 0.1,
                     what="both hubs store the first batches")

    # 1. Gateway B down: broker B queues for it what the bridge brings.
    b.gw.kill9()
    for v in (0.8, 1.0, 4.6, 4.8, 4.7, 0.5, 0.4, 0.6):
        seq += 1
        send(st, seq, v)
        time.sleep(0.1)
    harness.wait_for(lambda: st.pending() == 0, 20, 0.05, what="hub A acked the stretch")
    harness.wait_for(lambda: len([x for x in deliveries("CL-01") if x[0] == "a"]) >= 2, 20, 0.1,
                     what="hub A notified the raise and the clear")
    time.sleep(0.5)  # the bridge has forwarded to broker B: its queue for gateway B
    mq_b.kill9()
    mq_b.start()
    t_back = time.time()
    b.start()
    harness.wait_for(lambda: gp.query(b.db, "SELECT 1 FROM v_stations WHERE station = 'CL-01'"), 10,
                     0.1, what="gateway B back")
    time.sleep(0.5)
    lost = len(set(a.readings()) - set(b.readings()))
    res.check(lost > 0, "broker B killed with its queue for gateway B: B lacks %d readings A"
              " acked (the bridge's queue was the only copy)" % lost)

    # 2. Catch-up: B ends with exactly A's readings.
    ok = True
    try:
        harness.wait_for(lambda: set(a.readings()) == set(b.readings()), CATCHUP_LIMIT_S, 0.2,
                         what="B holds A's readings")
    except TimeoutError:
        ok = False
    took = time.time() - t_back
    ra, rb = a.readings(), b.readings()
    res.check(ok and set(ra) == set(rb) and len(ra) == 2 * seq,
              "caught up: B holds exactly A's readings (%d of %d) %.1f s after it was back"
              % (len(set(ra) & set(rb)), len(ra), took))
    res.check(len(rb) == len(set(rb)), "no reading twice on B (%d rows)" % len(rb))
    mb = b.metrics()
    res.check(mb.get("agri_gateway_catchup_readings_stored_total", 0) == lost,
              "B's metrics: readings stored by catch-up %s (lost %d), hours requested %s,"
              " digests received %s" % (mb.get("agri_gateway_catchup_readings_stored_total"),
                                         lost, mb.get("agri_gateway_catchup_replays_requested_total"),
                                         mb.get("agri_gateway_catchup_digests_received_total")))
    harness.wait_for(lambda: a.episodes() == b.episodes() and len(a.episodes()) == 1, 20, 0.2,
                     what="the same episodes")
    res.check(a.episodes() == b.episodes() and len(a.episodes()) == 1,
              "the same alert episodes on both hubs (%s)" % (b.episodes(),))
    time.sleep(4)  # B's notifier claims what its catch-up raised
    dl = deliveries("CL-01")
    res.check(sorted(x[2] for x in dl) == ["active", "cleared"] and all(x[0] == "a" for x in dl),
              "the crossing notified once: by A, B found its claims (%s)" % dl)
    gaps = gp.query(b.db, "SELECT last_seq FROM v_stations WHERE station = 'CL-01'")
    res.check(gaps and gaps[0][0] == 3 and st.pending() == 0,
              "B's seq tracking untouched by replays: last_seq %s (only what came by MQTT)" % gaps)
    res.check(any("caught up station=CL-01" in line for line in b.gw.proc.log_text().splitlines()),
              "B logged the catch-up (a line per station-hour)")
    ma = a.metrics()
    res.check(ma.get("agri_gateway_catchup_digest_bytes", 0) > 0,
              "digest size for 1 station: %d bytes" % ma.get("agri_gateway_catchup_digest_bytes", 0))

    # 3. Hostile replays and digests, published as a third "hub" on broker B
    # (on the shipped brokers only gateways and the bridge may write there).
    evil = harness.mqtt_client(mq_b.port, "evil")
    topic = "agri/v1/hub/hub-x/catchup/"
    n_before = len(b.readings())
    unasked_before = b.metrics().get("agri_gateway_catchup_readings_unasked_total", 0)
    evil.publish(topic + "replay", b"{not json", qos=1)
    evil.publish(topic + "replay", b"x" * (300 * 1024), qos=1)
    now = int(time.time() * 1000)
    evil.publish(topic + "replay", json.dumps(gp.batch("CL-01", 1, n=3, base_ms=now - 7200000)), qos=1)
    try:
        harness.wait_for(lambda: len(b.dead("replay")) >= 2 and b.metrics().get(
            "agri_gateway_catchup_readings_unasked_total", 0) >= unasked_before + 3, 15, 0.1,
            what="the replays' dead letters")
    except TimeoutError:
        print("dead letters: %s; metrics %s; gateway %s" % (b.dead("replay"), b.metrics(),
                                                           b.gw.proc.describe()))
    reasons = [r[0] for r in b.dead("replay")]
    unasked = b.metrics().get("agri_gateway_catchup_readings_unasked_total", 0) - unasked_before
    res.check(any("hub-x" in r and "expected" in r or "invalid" in r.lower() or "offset" in r
                  for r in reasons) and any("more than" in r for r in reasons) and
              not any("not asked" in r for r in reasons) and unasked >= 3 and
              len(b.readings()) == n_before,
              "malformed and too big replays: dead letters of kind replay; an unasked one (another"
              " hub's answer, or one asked before a restart): its %d readings dropped and counted,"
              " not a dead letter; nothing stored (%s)" % (unasked, reasons))
    base = b.metrics()
    stations = [["X%04d" % i, 2 ** 50, "%016x" % i] for i in range(4000)]
    digest = {"v": 1, "hub": "hub-x", "from": (now - 7200000) // 3600000 * 3600000, "to": now,
              "stations": stations}
    for _ in range(3):
        evil.publish(topic + "digest", json.dumps(digest, separators=(",", ":")), qos=1)
        time.sleep(0.7)
    time.sleep(0.5)
    mid = b.metrics()
    # ... and the same as if from the peer itself (a stolen gateway account)
    digest["hub"] = "hub-a"
    for _ in range(4):
        evil.publish("agri/v1/hub/hub-a/catchup/digest", json.dumps(digest, separators=(",", ":")),
                     qos=1)
        time.sleep(0.6)
    detail = {"v": 1, "hub": "hub-a", "peer": "hub-b", "station": "CL-01",
              "from": digest["from"], "to": now,
              "hours": [[digest["from"] + h * 3600000, 2 ** 50, "%016x" % h] for h in range(3)]}
    evil.publish("agri/v1/hub/hub-a/catchup/detail", json.dumps(detail), qos=1)
    time.sleep(2 * EVERY_S)
    after = b.metrics()

    def delta(m0, m1, k):
        k = "agri_gateway_catchup_%s_total" % k
        return m1.get(k, 0) - m0.get(k, 0)
    res.check(delta(base, mid, "digests_received") + delta(base, mid, "dropped") >= 3 and
              delta(base, mid, "details_requested") == 0,
              "a third hub's digest claiming 2^50 readings for 4,000 stations: compared, nothing"
              " asked (only the peer's digests may ask)")
    dd, dh = delta(mid, after, "details_requested"), delta(mid, after, "replays_requested")
    dr = delta(mid, after, "digests_received")
    res.check(dd <= 8 * dr and dh == 0 and delta(mid, after, "dropped") >= 1,
              "the same as if from the peer: %d details asked over %d digests compared (at most"
              " 8 a digest, 8 in flight), %d hours; an unsolicited detail dropped" % (dd, dr, dh))
    res.check(b.gw.proc.poll() is None and set(a.readings()) == set(b.readings()),
              "B still runs and still holds exactly A's readings")
    evil.disconnect()

    st.close()
    a.gw.stop()
    b.gw.stop()
    mq_a.stop()
    mq_b.stop()
    pg.stop()
    srv.shutdown()
    res.done()


if __name__ == "__main__":
    main()
