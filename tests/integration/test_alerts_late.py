"""Late and out-of-order readings end to end (issue 21; docs/alerts.md,
"Reading order"): real processes, accelerated clocks.

1. offline: agri-sim (a salinity sonde and a light trap) -> agri-station ->
   mosquitto -> agri-gateway -> a webhook receiver, at 1,440 times real
   time. Light-trap history is imported first (the peak rule needs its
   median). The broker is down for 6 simulated hours across an upward
   salinity crossing and the morning that confirms a planthopper peak
   night; the station spools, reconnects and drains. Both alerts are
   raised once, marked late with their reading times, each notified once
   ("Salinity 4.09 g/L >= 4.0 g/L at DT-W05 (sonde1), at 06:42 (still
   on); Cleared: ... at 03:36, reported at 15:16 after the station was
   offline"); the station's no_data alert closes with the gap's true
   extent (its backlog fills it); the backlog sent again (a station that
   lost its acks) notifies nothing.
2. an out-of-order day: 20 stations publish a day of batches (all late),
   30 % of them out of order and 10 % twice. The gateway's episodes equal
   the ones the readings make in order, and it sends at most one
   notification per (station, rule) episode: the count is printed.

AGRI_LATE_PARTS=1 or 2 runs one part.
"""
import collections
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import station_support as ss  # noqa: E402
import test_alerts_e2e as e2e  # noqa: E402  (its receiver, sim and series helpers)

R = harness.Result("test_alerts_late")
PARTS = set(int(x) for x in os.environ.get("AGRI_LATE_PARTS", "1,2").split(","))
LOCAL_MS = 7 * 3600 * 1000
HOUR = 3600 * 1000


def q(db, sql, args=()):
    return gp.query(db, sql, args)


def local_hhmm(ms):
    return time.strftime("%H:%M", time.gmtime((ms + LOCAL_MS) // 1000))


# ---- 1. a station offline six hours ----------------------------------------

def part_offline():
    d = harness.tmpdir("agri-late-off-")
    speed = 1440  # a real second is 24 simulated minutes
    hist_start, live_start = "2026-03-17T12:00", "2026-03-31T12:00"
    t_live = e2e.ms_of(live_start + ":00.000Z")
    off_from = t_live + 8 * HOUR + 40 * 60000
    env = {"AGRI_CLOCK": "%s:00.000Z@%d" % (live_start, speed)}
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    rcv = e2e.Receiver().start()
    default = json.load(open(os.path.join(harness.SRC, "gateway", "rules.default.json")))
    peak = [r for r in default["rules"] if r["id"] == "bph-peak"][0]
    peak["notify"] = ["hook"]
    # Late: older than two hours of simulated time. Each process's clock
    # starts at its own first call (AGRI_CLOCK), so the station's readings
    # reach the gateway up to an hour "old" while live; settled after 3 s.
    rules = {"utc_offset_min": 420, "lang": "en", "late_after_s": 7200, "late_settle_s": 3,
             "rules": [
                 {"id": "salinity-high", "metric": "salinity", "above": 4.0, "hysteresis": 0.3,
                  "severity": "critical", "stations": ["DT-W05"], "notify": ["hook"]},
                 peak,
                 {"id": "offline", "kind": "no_data", "after_s": 3600, "notify": ["hook"]}]}
    cfg = e2e.gateway_config(d, mq, rules, rcv.url, forecast=True, client_id="gw-late")
    db = os.path.join(d, "agri.db")

    # Two weeks of the trap's truth, imported (quiet) as the station would
    # have sent it: the peak rule's median of previous nights.
    prof = json.load(open(os.path.join(harness.PROFILES, "agri-lighttrap.json")))
    units = {r["metric"] + ("." + r["sensor_suffix"] if r.get("sensor_suffix") else ""):
             r.get("unit", "") for r in prof["registers"]}
    hours = (t_live - e2e.ms_of(hist_start + ":00.000Z")) // HOUR
    hist = e2e.series("2:agri-lighttrap,phase_d=0", hist_start, hours, 3600, 4)
    with open(os.path.join(d, "history.csv"), "w") as f:
        f.write("station,sensor,metric,ts,value,unit,q\n")
        for ts, m, v in hist:
            if ts >= t_live:
                continue
            unit, name = units.get(m, ""), "trap1"
            if "." in m:
                m, suffix = m.split(".", 1)
                name += "-" + suffix
            f.write("DT-W05,%s,%s,%s,%r,%s,ok\n" % (name, m, e2e.iso(ts), v, unit))
    r = harness.run([harness.bin_path("agri-gateway"), "--config", cfg, "--import",
                     os.path.join(d, "history.csv")], timeout=300, env=env, wrap=True)
    R.check(r.returncode == 0, "offline: %d h of trap history imported (rc %d)" % (hours, r.returncode))

    gw = e2e.Gw(d, cfg, env).start()
    port = harness.free_port()
    sim = harness.Proc([harness.bin_path("agri-sim"), "--tcp", "127.0.0.1:%d" % port,
                        "--slave", "1:sensecap-s-ec-01,distance_km=20",
                        "--slave", "2:agri-lighttrap,phase_d=0", "--scenario", "salinity-intrusion",
                        "--start", live_start, "--speed", str(speed), "--seed", "7",
                        "--profiles-dir", harness.PROFILES],
                       os.path.join(d, "sim.log"), wrap=True)
    harness.wait_port(port, 10, sim)
    scfg = ss.station_config(d, mq.port,
                             [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": port},
                               "timeout_ms": 1000}],
                             [{"name": "sonde1", "bus": "lan", "slave": 1,
                               "profile": "sensecap-s-ec-01", "interval_s": 0.25, "stuck_reads": 0},
                              {"name": "trap1", "bus": "lan", "slave": 2, "profile": "agri-lighttrap",
                               "interval_s": 0.25, "stuck_reads": 0}],
                             station="DT-W05", state_dir=os.path.join(d, "state"))
    st = harness.Proc([harness.bin_path("agri-station"), "--config",
                       harness.write_json(os.path.join(d, "station.json"), scfg)],
                      os.path.join(d, "station.log"), env=env, wrap=True)
    # Every batch on the wire (to send the backlog again at the end).
    seen = {}
    sub = harness.mqtt_client(mq.port, "late-spy")

    def spy(c, u, m):
        try:
            doc = json.loads(m.payload)
            seen[doc["seq"]] = m.payload
        except (ValueError, KeyError):
            pass
    sub.on_message = spy
    sub.subscribe("agri/v1/DT-W05/telemetry", qos=1)
    sub.loop_start()

    t_real0 = time.time()

    def newest():
        return q(db, "SELECT coalesce(max(ts), 0) FROM readings r JOIN series s"
                     " ON s.id = r.series_id WHERE s.sensor = 'sonde1'")[0][0]
    # The broker down for 6 simulated hours (15 real seconds) from 20:40
    # UTC (03:40 local): the tide's next rise above 4.0 g/L (23:40) and the
    # morning that completes the night after the peak (23:00) fall inside.
    harness.wait_for(lambda: newest() >= off_from - 30 * 60000, 120, 0.05, "the outage's start")
    mq.stop()
    sub.loop_stop()
    down_at = newest()
    time.sleep(6 * HOUR / speed / 1000.0)
    mq.start()
    sub = harness.mqtt_client(mq.port, "late-spy")
    sub.on_message = spy
    sub.subscribe("agri/v1/DT-W05/telemetry", qos=1)
    sub.loop_start()
    until = t_live + 15 * HOUR  # the outage ended (~14:10) and the station sends fresh again
    harness.wait_for(lambda: newest() >= until or st.poll() is not None, 120, 0.2, "15 simulated hours")
    # ... and the backlog drained (a spool of at most one fresh batch)
    harness.wait_for(lambda: (ss.spool_depth(os.path.join(d, "state")) or 0) <= 1
                     and q(db, "SELECT count(*) FROM readings WHERE ts > ? AND ts < ?",
                           (down_at, down_at + 5 * HOUR))[0][0] > 0, 60, 0.2, "the backlog drained")
    R.check(st.poll() is None and gw.proc.poll() is None,
            "offline: station and gateway ran %.0f s; broker down from %s (local, the station's"
            " newest reading) for 6 simulated hours" % (time.time() - t_real0, local_hhmm(down_at)))
    st.stop()
    sim.stop()
    time.sleep(5)  # settled (late_settle_s 3 s)
    harness.wait_for(lambda: e2e.drained(db), 60, 0.2, "outbox drained")

    # What the readings say: the upward crossings of 4.0 g/L stored while
    # the station was away (their readings arrived hours after their time).
    pts = q(db, "SELECT r.ts, r.value, r.received_at FROM readings r JOIN series s"
                " ON s.id = r.series_id WHERE s.metric = 'salinity' AND r.q = 0 ORDER BY r.ts")
    cross = [(ts, v) for (ts, v, rcv_at), (_, pv, _) in zip(pts[1:], pts)
             if pv < 4.0 <= v and rcv_at - ts > 7200 * 1000]
    R.check(len(cross) == 1, "offline: the readings cross 4.0 g/L once in the backlog (%s, local)"
            % ", ".join("%s %.2f" % (local_hhmm(t), v) for t, v in cross))
    ev = q(db, "SELECT e.state, e.at, e.late, e.arrived_at FROM alert_events e"
               " JOIN alerts a ON a.id = e.alert_id WHERE a.rule = 'salinity-high' ORDER BY e.seq")
    late_raise = [e for e in ev if e[0] == "active" and e[2] == 1]
    R.check(len(late_raise) == 1 and cross and late_raise[0][1] == cross[0][0] and
            late_raise[0][3] - late_raise[0][1] > 7200 * 1000,
            "offline: salinity raised once, late, at its reading's time %s (arrived %s)"
            % (local_hhmm(late_raise[0][1]) if late_raise else "-",
               local_hhmm(late_raise[0][3]) if late_raise else "-"))
    pk = q(db, "SELECT e.state, e.at, e.late, e.value FROM alert_events e JOIN alerts a"
               " ON a.id = e.alert_id WHERE a.rule = 'bph-peak' ORDER BY e.seq")
    pk_late = [e for e in pk if e[0] == "active" and e[2] == 1]
    R.check(len([e for e in pk if e[0] == "active"]) == 1 and len(pk_late) == 1,
            "offline: the planthopper peak raised once, late, confirmed at %s (local) by a"
            " reading of the backlog (%s)" % (local_hhmm(pk_late[0][1]) if pk_late else "-",
                                             [(s, local_hhmm(a), l) for s, a, l, _ in pk]))
    api = q(db, "SELECT late, event_at, arrived_at FROM v_alerts WHERE rule = 'salinity-high'")
    R.check(api and api[0][0] == 1 and api[0][1] and api[0][2],
            "offline: v_alerts says late with its event and arrival times %s" % (api,))
    eps = q(db, "SELECT id, start, end, late FROM v_alert_episodes WHERE id LIKE 'salinity-high/%'"
                " OR id LIKE 'bph-peak/%'")
    R.check(any(l == 1 for _, _, _, l in eps), "offline: v_alert_episodes: %s" % eps)
    posts = rcv.list()
    sal = [p for p in posts if p["alert"]["rule"] == "salinity-high" and p["event"] == "late"]
    bph = [p for p in posts if p["alert"]["rule"] == "bph-peak"]
    R.check(len(sal) == 1 and cross and
            sal[0]["alert"]["message"].startswith("Salinity") and
            "at %s (still on)" % local_hhmm(cross[0][0]) in sal[0]["alert"]["message"]
            and "after the station was offline" in sal[0]["alert"]["message"],
            "offline: salinity notified once, saying when: %r" % (sal[0]["alert"]["message"] if sal else None))
    R.check(len(bph) == 1 and bph[0]["event"] == "late" and "reported at" in bph[0]["alert"]["message"],
            "offline: the peak notified once, saying when: %r"
            % ([(p["event"], p["alert"]["message"]) for p in bph],))
    adv = q(db, "SELECT id, late FROM v_advisories")
    R.check(any(l == 1 for _, l in adv), "offline: its advisory is marked late: %s" % adv)
    off = [p for p in posts if p["alert"]["rule"] == "offline"]
    off = off[:2]  # (it goes offline again once the test stops the station)
    R.check([p["alert"]["state"] for p in off] == ["active", "cleared"] and
            "its backlog fills the gap" in off[1]["alert"]["message"],
            "offline: the data-gap alert raised during the outage, closed once the backlog"
            " settled with its true extent: %s" % [p["alert"]["message"] for p in off])

    # The backlog sent again, as a station that lost its acks: nothing
    # (but the offline alert: the station has stopped).
    def counts():
        return (len([p for p in rcv.list() if p["alert"]["rule"] != "offline"]),
                q(db, "SELECT count(*) FROM alert_events WHERE alert_id NOT LIKE 'offline/%'")[0][0])
    n_posts, n_ev = counts()
    again = [seen[s] for s in sorted(seen)]
    pub = harness.mqtt_client(mq.port, "late-again")
    pub.loop_start()
    for p in again:
        pub.publish("agri/v1/DT-W05/telemetry", p, qos=1).wait_for_publish()
    time.sleep(6)
    pub.loop_stop()
    R.check(len(again) > 20 and counts() == (n_posts, n_ev),
            "offline: %d batches sent again: no notification, no transition" % len(again))
    R.check(gw.proc.stop() == 0, "offline: gateway stops cleanly")
    sub.loop_stop()
    rcv.stop()
    mq.stop()


# ---- 2. an out-of-order day of 20 stations ----------------------------------

def level_episodes(points, on_at, off_below):
    """(start, end) of a threshold with hysteresis over (ts, value) in order."""
    out, start = [], None
    for ts, v in points:
        if start is None and v >= on_at:
            start = ts
        elif start is not None and v < off_below:
            out.append((start, ts))
            start = None
    if start is not None:
        out.append((start, None))
    return out


def ladder_peak(points, start, end):
    """The worst level of part_day's ladder reached in [start, end)."""
    top = max(v for ts, v in points if ts >= start and (end is None or ts < end))
    return "critical" if top >= 5.0 else "warning" if top >= 3.0 else "info"


def part_day():
    d = harness.tmpdir("agri-late-day-")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    rcv = e2e.Receiver().start()
    rules = {"late_settle_s": 3, "rules": [
        {"id": "sal", "metric": "salinity", "above": 4.0, "hysteresis": 0.3, "notify": ["hook"]},
        {"id": "lvl", "kind": "ladder", "metric": "salinity", "hysteresis": 0.2, "notify": ["hook"],
         "levels": [{"above": 2.0, "severity": "info"}, {"above": 3.0, "severity": "warning"},
                    {"above": 5.0, "severity": "critical"}]}]}
    cfg = e2e.gateway_config(d, mq, rules, rcv.url, client_id="gw-late-day")
    db = os.path.join(d, "agri.db")
    gw = e2e.Gw(d, cfg).start()
    rnd = random.Random(21)
    base = (int(time.time()) // 60 * 60 - 26 * 3600) * 1000  # yesterday: every reading late
    stations = ["DT-D%02d" % i for i in range(20)]
    truth, plans, peaks = {}, {}, {}
    for s in stations:
        v, pts, batches = 1.0 + rnd.random() * 2, [], []
        for b in range(144):  # a batch every 10 minutes
            rd = []
            for i in range(5):
                ts = base + b * 600000 + i * 120000
                v = min(9.0, max(0.1, v + (rnd.random() - 0.5) * 0.8 +
                                 (rnd.random() - 0.45) * 3 * (rnd.random() < 0.05)))
                pts.append((ts, round(v, 3)))
                rd.append({"ts": gp.iso(ts), "sensor": "sonde1", "metric": "salinity",
                           "value": round(v, 3), "unit": "g/L", "q": "ok"})
            batches.append({"v": 1, "station": s, "seq": b + 1, "sent_at": gp.iso(base + b * 600000 + 599000),
                            "readings": rd})
        truth[(s, "sal")] = level_episodes(pts, 4.0, 3.7)
        truth[(s, "lvl")] = level_episodes(pts, 2.0, 1.8)
        # an episode's severity is the worst it reached (docs/alerts.md)
        peaks[s] = [ladder_peak(pts, a, b) for a, b in truth[(s, "lvl")]]
        # 30 % of the batches out of order (each held back 1-20 places),
        # 10 % sent twice.
        order = list(range(144))
        for i in range(144):
            if rnd.random() < 0.3:
                j = min(143, i + rnd.randint(1, 20))
                order.insert(j, order.pop(order.index(i)))
        order += [rnd.randrange(144) for _ in range(14)]
        plans[s] = [batches[i] for i in order]
    peers = {s: gp.Station(mq.port, s, ack_timeout=5.0) for s in stations}
    for p in peers.values():
        p.connected.wait(10)
    t0 = time.time()
    for k in range(max(len(p) for p in plans.values())):
        for s in stations:
            if k < len(plans[s]):
                doc = plans[s][k]
                peers[s].publish(doc["seq"], doc)
        time.sleep(0.01)
    harness.wait_for(lambda: all(p.pending() == 0 for p in peers.values()), 120, 0.2, "every batch acked")
    took = time.time() - t0
    time.sleep(6)  # settled: late news goes out
    harness.wait_for(lambda: e2e.drained(db), 60, 0.2, "outbox drained")
    got = collections.defaultdict(list)
    for i, start, end in q(db, "SELECT alert_id, start, end FROM alert_episodes WHERE retracted = 0"
                                " ORDER BY alert_id, start"):
        rule, st = i.split("/")[:2]
        got[(st, rule)].append((start, end))
    same = all(got[k] == truth[k] for k in truth)
    sev = {}
    for i, sv in q(db, "SELECT alert_id, severity FROM alert_episodes WHERE retracted = 0"
                       " AND alert_id LIKE 'lvl/%' ORDER BY alert_id, start"):
        sev.setdefault(i.split("/")[1], []).append(sv)
    R.check(all(sev.get(s, []) == peaks[s] for s in stations),
            "day: each ladder episode's severity is the worst it reached (%d episodes; first"
            " difference: %s)" % (sum(len(v) for v in peaks.values()),
                                  next(((s, peaks[s], sev.get(s)) for s in stations
                                        if sev.get(s, []) != peaks[s]), None)))
    n_ep = sum(len(v) for v in truth.values())
    R.check(same, "day: the episodes of 20 stations' shuffled day equal the in-order ones "
            "(%d episodes; first difference: %s)"
            % (n_ep, next(((k, truth[k], got[k]) for k in truth if got[k] != truth[k]), None)))
    per = collections.Counter((p["alert"]["station"], p["alert"]["rule"]) for p in rcv.list())
    over = [(k, per[k], len(truth[k])) for k in per if per[k] > max(1, len(truth[k]))]
    print("day: %d notifications for %d episodes of 20 stations x 2 rules"
          " (a day each, 30 %% of batches out of order, 10 %% twice; drained in %.1f s)"
          % (sum(per.values()), n_ep, took))
    R.check(not over and sum(per.values()) <= n_ep,
            "day: at most one notification per (station, rule) episode: %d for %d%s"
            % (sum(per.values()), n_ep, (", over: %s" % over[:3]) if over else ""))
    # (each close waits up to a second for its network loop: together)
    closing = [threading.Thread(target=p.close) for p in peers.values()]
    for t in closing:
        t.start()
    for t in closing:
        t.join()
    R.check(gw.proc.stop() == 0, "day: gateway stops cleanly")
    rcv.stop()
    mq.stop()


if __name__ == "__main__":
    for n, fn in ((1, part_offline), (2, part_day)):
        if n in PARTS:
            t = time.time()
            fn()
            print("part %d: %.1f s" % (n, time.time() - t))
    sys.exit(R.done())
