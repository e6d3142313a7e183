#!/usr/bin/python3
"""The notification policy in a running gateway (issue 29): mosquitto,
agri-gateway on a simulated clock (12x, starting at 05:25 local), a rules
channel for machines ("ops"), the people's webhook and an SMS gateway
(both sinks here), and a recipients file with two people.

- The 05:30 bulletin reaches "an" on the webhook and as SMS: its intake
  windows below her level (2 g/L) are exactly the windows of
  GET /api/v1/forecast at that level for the day ahead; its SMS form, as the
  SMS gateway received it, fits two UCS-2 segments.
- A critical crossing at a canal "binh" follows reaches him within
  group_wait (2 simulated minutes), with a stable X-Agri-Message id, while
  the rule's own channel still gets the alert JSON.
- A kill -9 between the crossing's commit and its message, then a restart:
  the message goes out once, with the same id.
- /api/v1/recipients says who receives what; /metrics counts messages per
  person.
- /api/v1/recipients counts each person's messages per local day.
About 50 s.
"""
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import api_support as api  # noqa: E402
import gateway_peer as gp  # noqa: E402

SPEED = 12
HOUR = 3600_000
CLOCK0 = 1775168700000  # 2026-04-02T22:25:00Z: 05:25 local (UTC+7) on 3 April


def sms_segments(s):
    basic = set("@$\n\r !\"#%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
    if all(c in basic for c in s):
        return 1 if len(s) <= 160 else -(-len(s) // 153)
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in s)
    return 1 if units <= 70 else -(-units // 67)


class Sink(BaseHTTPRequestHandler):
    got = []  # (path, headers, body)
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
        with Sink.lock:
            Sink.got.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def people_messages():
    with Sink.lock:
        return [(h, json.loads(b)) for p, h, b in Sink.got if p == "/people"]


def sms_texts():
    with Sink.lock:
        return [urllib.parse.parse_qs(b) for p, h, b in Sink.got if p == "/sms"]


def main():
    failures = []

    def check(ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    d = harness.tmpdir("agri-notify-gw-")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sink = "http://127.0.0.1:%d" % srv.server_address[1]
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    http_port = harness.free_port()
    with open(os.path.join(d, "api.token"), "w") as f:
        f.write(api.TOKEN + "\n")
    rules = json.load(open(os.path.join(harness.SRC, "gateway", "rules.demo.json")))
    rules["rules"] = [r for r in rules["rules"] if r["id"] == "salinity"]
    rules["rules"][0]["for_s"] = 0
    rules["rules"][0]["notify"] = ["ops"]
    harness.write_json(os.path.join(d, "rules.json"), rules)
    harness.write_json(os.path.join(d, "recipients.json"), {
        "group_wait_s": 120, "bulletin_at": "05:30", "recipients": [
            {"name": "an", "display": "Lê Thị An", "webhook": "people", "sms": "+84900000001",
             "stations": ["DT-W01"], "crops": ["rice"]},
            {"name": "binh", "lang": "en", "webhook": "people", "stations": ["DT-W03"],
             "crops": ["durian"]}]})
    harness.write_json(os.path.join(d, "gateway.json"), {
        "broker": {"url": mq.url, "client_id": "gw-notify", "keepalive_s": 10},
        "db": {"path": "agri.db"}, "rules_file": "rules.json", "recipients_file": "recipients.json",
        "notify": {"webhooks": [{"name": "ops", "url": sink + "/ops"},
                                {"name": "people", "url": sink + "/people"}],
                   "sms": {"name": "sms", "url": sink + "/sms", "to": ["+84999999999"]}},
        "http": {"listen": "127.0.0.1:%d" % http_port, "token_file": "api.token"},
        "sites": {"DT-W01": {"name": "Cửa Tiểu (Tân Thành)", "district": "Tân Phú Đông"},
                  "DT-W03": {"name": "Hòa Bình (Chợ Gạo)", "district": "Chợ Gạo"}}})
    cfg = os.path.join(d, "gateway.json")
    clock = {"t0": 0.0, "sim0": CLOCK0}

    def start_gw():
        clock["t0"] = time.time()
        env = {"AGRI_CLOCK": "%s@%d" % (api.iso(clock["sim0"]), SPEED)}
        gw = harness.Proc([api.gateway_bin(), "--config", cfg, "--log-level", "info"],
                          os.path.join(d, "gw.log"), env=env)
        harness.wait_port(http_port, 15, gw)
        return gw

    def sim_now():
        return int(clock["sim0"] + (time.time() - clock["t0"]) * 1000 * SPEED)

    gw = start_gw()
    # four days of tidal salinity at DT-W01 (and DT-W02, a trap) up to now
    stack = type("S", (), {"mq": mq, "db": os.path.join(d, "agri.db")})()
    end_ms = (CLOCK0 // api.STEP) * api.STEP
    api.seed(stack, end_ms=end_ms, days=4)
    seeded = sim_now()
    check(seeded < CLOCK0 + 4 * 60_000, "4 days of readings stored before the bulletin (in %.1f s, by %s)"
          % (time.time() - clock["t0"], api.iso(seeded)))
    bulletin_at = CLOCK0 + 5 * 60_000
    harness.wait_for(lambda: any(m["kind"] == "bulletin" and m["person"] == "an" for h, m in people_messages()),
                     (bulletin_at - CLOCK0) / SPEED / 1000 + 30, 0.2, what="an's 05:30 bulletin")
    h, b = next((h, m) for h, m in people_messages() if m["kind"] == "bulletin" and m["person"] == "an")
    B = gp.query(stack.db, "SELECT at FROM notify_message WHERE id = ?", (b["id"],))[0][0]
    check(B == bulletin_at, "the bulletin falls due at 05:30 local (%s)" % b["at"])
    check(h.get("X-Agri-Message") == b["id"] and h.get("X-Agri-Person") == "an",
          "webhook headers name the message and the person")
    fc = api.request("http://127.0.0.1:%d/api/v1/forecast?station=DT-W01" % http_port).json()
    want = [(w["from"], w["to"]) for w in fc.get("windows", [])
            if w["below"] == 2 and not w.get("sluice") and
            gp_ms(w["to"]) > B and gp_ms(w["from"]) < B + 24 * HOUR]
    got = [(w["from"], w["to"]) for w in b["bulletin"]["windows"]
           if w["station"] == "DT-W01" and not w.get("sluice")]
    check(bool(fc.get("windows")) and got == want,
          "bulletin windows below 2 g/L = /api/v1/forecast's (%d: %s)" % (len(want), want[:2]))
    sms = [s for s in sms_texts() if s.get("to") == ["+84900000001"] and s["text"][0] == b["sms"]]
    check(len(sms) == 1 and sms_segments(sms[0]["text"][0]) <= 2,
          "the SMS gateway got an's bulletin in %d segment(s): %s" % (
              sms_segments(sms[0]["text"][0]) if sms else 0, sms[0]["text"][0] if sms else "-"))

    # a critical crossing at DT-W03 (binh's): told within group_wait
    st = gp.Station(mq.port, "DT-W03", ack_timeout=2.0)
    st.connected.wait(5)
    t = sim_now()
    st.publish(900001, {"v": 1, "station": "DT-W03", "seq": 900001, "sent_at": api.iso(t), "readings": [
        {"ts": api.iso(t - 60_000), "sensor": "sonde1", "metric": "salinity", "value": 0.1, "unit": "g/L", "q": "ok"},
        {"ts": api.iso(t), "sensor": "sonde1", "metric": "salinity", "value": 4.6, "unit": "g/L", "q": "ok"}]})
    harness.wait_for(lambda: st.pending() == 0, 10, 0.05, what="the crossing acked (committed)")
    staged = gp.query(stack.db, "SELECT count(*) FROM notify_item WHERE person = 'binh'")[0][0]
    # kill -9 before group_wait ends: the decision is committed, the message not made
    gw.kill9()
    check(staged == 1 and not any(m["person"] == "binh" for h, m in people_messages()),
          "crossing committed as a waiting item, not yet a message, when the gateway is killed")
    clock["sim0"] = sim_now()
    gw = start_gw()
    harness.wait_for(lambda: any(m["person"] == "binh" for h, m in people_messages()), 60, 0.2,
                     what="binh's message after the restart")
    time.sleep(130_000 / SPEED / 1000 + 2)  # another group_wait: nothing more
    mine = [(h, m) for h, m in people_messages() if m["person"] == "binh"]
    ids = [m["id"] for h, m in people_messages()]
    check(len(mine) == 1 and mine[0][1]["items"][0]["kind"] == "crossing" and
          mine[0][1]["items"][0]["level"] == 4 and mine[0][1]["items"][0].get("urgent"),
          "binh got the critical crossing once: %s" % (mine[0][1]["sms"] if mine else "-"))
    m_at = gp.query(stack.db, "SELECT at FROM notify_message WHERE person = 'binh'")[0][0] if mine else 0
    check(mine and 0 <= m_at - t <= 120_000 + 5000 * SPEED,
          "within group_wait of its arrival (%.0f s simulated)" % ((m_at - t) / 1000))
    check(len(ids) == len(set(ids)), "no message id delivered twice (%d messages)" % len(ids))
    check(mine and mine[0][0].get("X-Agri-Message") == mine[0][1]["id"], "the id survives the restart")
    with Sink.lock:
        ops = [json.loads(bd) for p, h, bd in Sink.got if p == "/ops"]
    check(any(o.get("station") == "DT-W03" and o.get("severity") == "critical" for o in ops),
          "the rule's own channel still gets the alert JSON (%d)" % len(ops))

    rc = api.request("http://127.0.0.1:%d/api/v1/recipients" % http_port).json()
    names = [p["name"] for p in rc["recipients"]]
    an = next((p for p in rc["recipients"] if p["name"] == "an"), {})
    check(names == ["an", "binh"] and an.get("salinity_g_l") == [2, 4] and an.get("last_bulletin") and
          "+8490•••001" in an.get("channels", []),
          "/api/v1/recipients says who receives what (%s)" % names)
    binh = next((p for p in rc["recipients"] if p["name"] == "binh"), {})
    check(binh.get("today") == 1 and binh.get("days") == [{"day": "2026-04-03", "messages": 1, "bulletins": 0}]
          and an.get("last_bulletin", {}).get("id") == b["id"] and
          [(x["day"], x["bulletins"]) for x in an.get("days", [])] == [("2026-04-03", 1)],
          "/api/v1/recipients counts messages per local day (binh %s, an %s)"
          % (binh.get("days"), an.get("days")))
    met = api.request("http://127.0.0.1:%d/metrics" % http_port,
                      headers={"Authorization": "Bearer " + api.TOKEN}).text
    check('agri_gateway_notify_messages_total{person="binh",kind="alert"} 1' in met and
          'agri_gateway_notify_messages_today{person="binh"}' in met,
          "/metrics counts messages per person")
    st.close()
    gw.stop()
    mq.stop()
    srv.shutdown()
    return 1 if failures else 0


def gp_ms(s):
    import datetime as dt
    return int(dt.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


if __name__ == "__main__":
    sys.exit(main())
