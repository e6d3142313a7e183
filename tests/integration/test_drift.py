"""A probe that drifts against its neighbours (issue 19 part 2; docs/gateway.md
"Drift"), end to end: python3-paho-mqtt stations -> mosquitto -> agri-gateway.

Three water stations on one river share its tide (DT-W01 at the mouth,
DT-W02, DT-W03 upstream), each with its own noise; DT-W02's conductivity
cell fouls and reads 3 % lower a day from five days before the end of its
history. DT-W02 names both others as neighbours (so do they, each other).

- Only DT-W02's sensor is flagged, with an onset within a day of the true
  one; its stored salinity and specific conductance from the onset are
  suspect with why "drift", none before it, nobody else's.
- The flag survives kill -9 and a restart: the next drifting readings are
  stored suspect ("drift") too, and the built-in sensor-check alert is
  raised for DT-W02 with what to check.
- Those readings cross 4 g/L at every tide, yet the salinity rule on
  DT-W02 makes no transition from them (it makes plenty on the clean
  history before the drift).
- The probe is cleaned: once its ratio to the neighbours is back, the flag
  ends and new readings are ok again.
"""
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_drift")
DAY = 86400 * 1000
STEP = 30 * 60 * 1000
TIDE_MS = 12.42 * 3600 * 1000
NOW = int(time.time()) // 60 * 60 * 1000
S0 = NOW - 14 * DAY             # history from
E = NOW - 3 * DAY               # history to
ONSET = E - 5 * DAY             # the cell starts to foul
CLEANED = E + 12 * 3600 * 1000  # the technician cleans it
LEVEL = {"DT-W01": 8.0, "DT-W02": 5.0, "DT-W03": 2.0}
RATE = 0.03                     # per day


def truth(station, t, rnd):
    tide = 1 + 0.5 * math.sin(2 * math.pi * (t - S0) / TIDE_MS)
    return LEVEL[station] * tide * (1 + rnd.uniform(-0.03, 0.03))


def fouled(t):
    if t < ONSET or t >= CLEANED:
        return 1.0
    return 1 - RATE * (t - ONSET) / DAY


def readings(station, t_from, t_to, rnd):
    out = []
    t = t_from
    while t < t_to:
        v = truth(station, t, rnd)
        if station == "DT-W02":
            v *= fouled(t)
            # specific conductance, as a SenseCAP reports it (~1.8 mS/cm per g/L)
            out.append({"ts": gp.iso(t), "sensor": "sonde1", "metric": "specific_conductance",
                        "value": round(v * 1.8, 4), "unit": "mS/cm", "q": "ok"})
        out.append({"ts": gp.iso(t), "sensor": "sonde1", "metric": "salinity",
                    "value": round(v, 4), "unit": "g/L", "q": "ok"})
        t += STEP
    return out


class Fleet:
    def __init__(self, port):
        self.st = {s: gp.Station(port, s, ack_timeout=3.0) for s in LEVEL}
        self.seq = {s: 0 for s in LEVEL}
        self.rnd = {s: random.Random(i) for i, s in enumerate(sorted(LEVEL))}
        for s in self.st.values():
            s.connected.wait(10)

    def send(self, t_from, t_to, only=None):
        # the neighbours first: DT-W02's windows are judged on theirs whole
        for name in ("DT-W01", "DT-W03", "DT-W02"):
            if only and name not in only:
                continue
            rs = readings(name, t_from, t_to, self.rnd[name])
            for i in range(0, len(rs), 400):
                self.seq[name] += 1
                chunk = rs[i:i + 400]
                self.st[name].publish(self.seq[name], {
                    "v": 1, "station": name, "seq": self.seq[name],
                    "sent_at": chunk[-1]["ts"], "readings": chunk})
        harness.wait_for(lambda: all(s.pending() == 0 for s in self.st.values()), 60,
                         what="every batch acked")

    def close(self):
        for s in self.st.values():
            s.close()


def config(d, mq):
    rules = {"utc_offset_min": 420, "lang": "en", "late_settle_s": 1,
             "rules": [{"id": "salinity-high", "metric": "salinity", "above": 4.0,
                        "hysteresis": 0.2, "severity": "alarm", "stations": ["DT-W02"],
                        "notify": []}]}
    rules_path = harness.write_json(os.path.join(d, "rules.json"), rules)
    cfg = {"broker": {"url": mq.url, "client_id": "gw-drift", "keepalive_s": 10},
           "db": {"path": os.path.join(d, "agri.db"), "retention_days": 400},
           "rules_file": rules_path,
           "sites": {"DT-W01": {"name": "Cửa Tiểu", "neighbours": ["DT-W02"]},
                     "DT-W02": {"name": "Vàm Kênh", "neighbours": ["DT-W01", "DT-W03"]},
                     "DT-W03": {"name": "Hòa Bình", "neighbours": ["DT-W02"]}},
           "drift": {"window_days": 7, "fall_pct": 10}}
    return harness.write_json(os.path.join(d, "gateway.json"), cfg)


def q(db, sql, args=()):
    return gp.query(db, sql, args)


def main():
    d = harness.tmpdir("agri-drift-")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    cfg = config(d, mq)
    db = os.path.join(d, "agri.db")
    argv = [harness.bin_path("agri-gateway"), "--config", cfg, "--log-level", os.environ.get("DRIFT_LOG", "info")]
    gw = harness.Proc(argv, os.path.join(d, "gw1.log"))
    harness.wait_for(lambda: "subscribed topics" in gw.log_text(), 30, what="gateway subscribed")
    fleet = Fleet(mq.port)
    try:
        fleet.send(S0, E)
        harness.wait_for(lambda: q(db, "SELECT count(*) FROM drift_flags")[0][0] > 0, 30,
                         interval=0.2, what="a drift flag")
        time.sleep(2)  # every site evaluated (once a minute of the clock: the first tick)
        flags = q(db, "SELECT station, sensor, since, against, fall_pct FROM drift_flags")
        R.check([f[:2] for f in flags] == [("DT-W02", "sonde1")],
                "only DT-W02's sonde is flagged: %s" % [f[:2] for f in flags])
        since = flags[0][2]
        R.check(abs(since - ONSET) <= 0.75 * DAY,
                "onset estimated %+.1f days from the true one (within 0.75)" % ((since - ONSET) / DAY))
        R.check(flags[0][3] == "DT-W01, DT-W03", "against both neighbours: %r" % flags[0][3])
        print("  flagged: fall %.1f %% over the window, onset %s (true %s)"
              % (flags[0][4], gp.iso(since), gp.iso(ONSET)))
        marked = q(db, "SELECT station, metric, min(ts), count(*) FROM v_readings WHERE why = 'drift'"
                       " GROUP BY 1, 2 ORDER BY 1, 2")
        R.check([m[:2] for m in marked] == [("DT-W02", "salinity"), ("DT-W02", "specific_conductance")],
                "salinity and specific conductance of DT-W02 marked, nothing else: %s" % marked)
        R.check(all(m[2] >= gp.iso(ONSET - 0.75 * DAY) for m in marked),
                "nothing 18 h or more before the true onset marked")
        before = q(db, "SELECT count(*) FROM v_readings WHERE station = 'DT-W02' AND q = 'ok'"
                       " AND metric = 'salinity' AND ts < ?", (gp.iso(since),))[0][0]
        after_ok = q(db, "SELECT count(*) FROM v_readings WHERE station = 'DT-W02' AND q = 'ok'"
                         " AND metric = 'salinity' AND ts >= ?", (gp.iso(since),))[0][0]
        R.check(before > 300 and after_ok == 0,
                "DT-W02's salinity before the onset ok (%d), after it none ok (%d)" % (before, after_ok))

        # kill -9: the flag is the table's; the next readings are marked too.
        gw.kill9()
        gw = harness.Proc(argv, os.path.join(d, "gw2.log"))
        harness.wait_for(lambda: "subscribed topics" in gw.log_text(), 30, what="gateway back")
        R.check("flagged as drifting" in gw.log_text(), "the restarted gateway reloads the flag")
        events0 = q(db, "SELECT count(*) FROM alert_events WHERE alert_id LIKE 'salinity-high/%'")[0][0]
        fleet.send(E, CLEANED)
        late = q(db, "SELECT q, why, count(*) FROM v_readings WHERE station = 'DT-W02'"
                     " AND metric = 'salinity' AND ts >= ? GROUP BY 1, 2", (gp.iso(E),))
        R.check(late == [("suspect", "drift", 24)], "the drifting readings after the restart: %s" % late)
        crossings = q(db, "SELECT count(*) FROM v_readings WHERE station = 'DT-W02' AND metric = 'salinity'"
                          " AND ts >= ? AND value >= 4.0", (gp.iso(E),))[0][0]
        harness.wait_for(lambda: q(db, "SELECT count(*) FROM alerts WHERE rule = 'sensor-check'"
                                       " AND station = 'DT-W02' AND state != 'cleared'")[0][0] == 1,
                         20, interval=0.2, what="the sensor-check alert")
        msg = q(db, "SELECT message FROM alerts WHERE rule = 'sensor-check' AND station = 'DT-W02'")[0][0]
        R.check("neighbouring" in msg and "clean the conductivity cell" in msg,
                "sensor-check says what and what to check: %r" % msg)
        time.sleep(3)  # the late readings settle (late_settle_s 1) and replay
        events1 = q(db, "SELECT count(*) FROM alert_events WHERE alert_id LIKE 'salinity-high/%'")[0][0]
        R.check(events0 > 4, "the salinity rule did act on the clean history (%d transitions)" % events0)
        R.check(events1 == events0 and crossings > 0,
                "no salinity transition from %d drifting readings at or above 4 g/L (%d -> %d)"
                % (crossings, events0, events1))

        # Cleaned: back in line within a day; new readings ok again.
        fleet.send(CLEANED, NOW - 60 * 60 * 1000)
        harness.wait_for(lambda: q(db, "SELECT count(*) FROM drift_flags")[0][0] == 0, 30,
                         interval=0.2, what="the flag ends")
        R.check("no longer drifting" in gw.log_text(), "the log says the flag ended")
        fleet.send(NOW - 60 * 60 * 1000, NOW - 5 * 60 * 1000, only=["DT-W02"])
        last = q(db, "SELECT q FROM v_readings WHERE station = 'DT-W02' AND metric = 'salinity'"
                     " ORDER BY ts DESC LIMIT 1")
        R.check(last == [("ok",)], "a cleaned probe's readings are ok again: %s" % last)
    finally:
        fleet.close()
        gw.stop()
        mq.stop()
    return R.done()


if __name__ == "__main__":
    sys.exit(main())
