"""Helpers for the HTTP API and dashboard tests (and scripts/bench-api): a
mosquitto + agri-gateway with HTTP on free ports, a realistic seed (water
stations with a tidal salinity series, a light trap with nightly catches,
status messages) published through MQTT like stations do, alerts, and a
small urllib client. Only Debian python3 packages."""
import json
import math
import os
import sqlite3
import time
import urllib.error
import urllib.request

import harness
import gateway_peer as gp

TOKEN = "tests-only-Zt3Qv9_x7LmN2pR8sKc4WdYh6TgBfJ0aE5u"  # 43+ characters: the config check
HOUR = 3600_000
STEP = 15 * 60_000  # salinity every 15 minutes


def gateway_bin():
    """AGRI_GATEWAY_BIN overrides the built agri-gateway (a dev build)."""
    return os.environ.get("AGRI_GATEWAY_BIN") or harness.bin_path("agri-gateway")


def iso(ms):
    return gp.iso(int(ms))


class Stack:
    """mosquitto + agri-gateway (HTTP on a free port, token file, rules)."""

    def __init__(self, d, rules=True, token=TOKEN, extra=None, http=None):
        self.d = d
        self.mq = harness.Mosquitto(os.path.join(d, "mq")).start()
        self.http_port = harness.free_port()
        self.db = os.path.join(d, "agri.db")
        with open(os.path.join(d, "api.token"), "w") as f:
            f.write(token + "\n")
        cfg = {"broker": {"url": self.mq.url, "client_id": "gw-api", "keepalive_s": 10},
               "db": {"path": "agri.db"},
               "http": {"listen": "127.0.0.1:%d" % self.http_port, "token_file": "api.token"}}
        cfg["http"].update(http or {})  # more http keys (issue 24: hosts, read tokens, rates)
        if extra:
            cfg.update(extra)
        self.rules = False
        if rules:
            harness.write_json(os.path.join(d, "rules.json"), {"rules": [
                {"id": "salinity-high", "metric": "salinity", "above": 4.0, "hysteresis": 3.99,
                 "severity": "critical", "notify": []}]})
            cfg_r = dict(cfg, rules_file="rules.json")
            harness.write_json(os.path.join(d, "gateway.json"), cfg_r)
            self.rules = True
        else:
            harness.write_json(os.path.join(d, "gateway.json"), cfg)
        self.config = os.path.join(d, "gateway.json")
        self.gw = None
        self.start()

    def start(self):
        log = os.path.join(self.d, "gw.log")
        self.gw = harness.Proc([gateway_bin(), "--config", self.config, "--log-level", "info"], log)
        time.sleep(0.3)
        if self.gw.poll() is not None and self.rules:
            # This build does not take rules yet: run without them.
            self.rules = False
            cfg = json.load(open(self.config))
            cfg.pop("rules_file", None)
            harness.write_json(self.config, cfg)
            self.gw = harness.Proc([gateway_bin(), "--config", self.config, "--log-level", "info"], log)
        harness.wait_for(lambda: "subscribed" in self.gw.log_text() or
                         (self.gw.poll() is not None and _raise(self.gw)), 15, what="gateway subscribed")
        harness.wait_port(self.http_port, 10, self.gw)
        return self

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def stop(self):
        rc = self.gw.stop() if self.gw else 0
        self.mq.stop()
        return rc


def _raise(proc):
    raise RuntimeError("gateway exited: %s" % proc.describe())


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8")


def request(url, method="GET", headers=None, data=None, timeout=30):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Resp(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.headers, e.read())


def salinity_at(station, ms):
    """A tidal salinity (g/L): M2 + K1 around a station's mean."""
    mean, amp = {"DT-W01": (2.6, 1.8), "DT-W02": (0.7, 0.45)}.get(station, (1.0, 0.5))
    h = ms / HOUR
    v = mean + amp * math.sin(2 * math.pi * h / 12.42) + 0.3 * amp * math.sin(2 * math.pi * h / 23.93 + 1)
    return round(max(0.05, v), 3)


def night_catch(ms, peak_night_ms):
    """Hourly light-trap catch of BPH: only at night (18:00-06:00 local),
    rising to a peak night."""
    local_h = ((ms + 7 * HOUR) // HOUR) % 24
    if 6 <= local_h < 18:
        return 0
    days = abs(ms - peak_night_ms) / (24 * HOUR)
    return int(round(300 * math.exp(-days * days / 8.0) * (1.0 if local_h in (19, 20, 21) else 0.4))) + 3


def seed(stack, end_ms=None, days=3):
    """Publishes `days` of telemetry for DT-W01, DT-W02 (water) and
    TRAP-01 (light trap), plus status. Returns (end_ms, readings sent)."""
    end_ms = end_ms or (int(time.time() * 1000) // STEP) * STEP
    start_ms = end_ms - days * 24 * HOUR
    sent = 0
    stations = {}
    for name in ("DT-W01", "DT-W02", "TRAP-01"):
        stations[name] = gp.Station(stack.mq.port, name, ack_timeout=3.0)
    for s in stations.values():
        s.connected.wait(5)
    # water stations
    for name in ("DT-W01", "DT-W02"):
        readings = []
        # DT-W02 has 2 days only: too little for a forecast (the 404 path)
        first = start_ms if name == "DT-W01" else end_ms - 2 * 24 * HOUR
        for ts in range(first, end_ms + 1, STEP):
            sal = salinity_at(name, ts)
            readings.append({"ts": iso(ts), "sensor": "sonde1", "metric": "salinity",
                             "value": sal, "unit": "g/L", "q": "ok"})
            readings.append({"ts": iso(ts), "sensor": "sonde1", "metric": "water_temperature",
                             "value": round(28 + math.sin(ts / HOUR / 24 * 2 * math.pi), 2),
                             "unit": "°C", "q": "ok"})
            if ts % HOUR == 0:
                readings.append({"ts": iso(ts), "sensor": "sonde1", "metric": "dissolved_oxygen",
                                 "value": 5.1, "unit": "mg/L", "q": "ok"})
                readings.append({"ts": iso(ts), "sensor": "pwr", "metric": "battery_voltage",
                                 "value": 12.6, "unit": "V", "q": "ok"})
        sent += _publish_all(stations[name], name, readings)
    # the light trap: hourly counts for 5 classes, peak 2 nights ago
    readings = []
    peak = end_ms - 2 * 24 * HOUR
    for ts in range((start_ms // HOUR) * HOUR - 11 * 24 * HOUR, end_ms + 1, HOUR):
        bph = night_catch(ts, peak)
        for cls, frac in (("bph", 1.0), ("wbph", 0.3), ("green-leafhopper", 0.2),
                          ("stem-borer", 0.05), ("leaf-folder", 0.08)):
            readings.append({"ts": iso(ts), "sensor": "trap1-" + cls, "metric": "insect_count",
                             "value": int(bph * frac), "unit": "count", "q": "ok"})
        readings.append({"ts": iso(ts), "sensor": "lamp", "metric": "lamp_on",
                         "value": 1 if bph else 0, "unit": "0/1", "q": "ok"})
    sent += _publish_all(stations["TRAP-01"], "TRAP-01", readings)
    for name, s in stations.items():
        s.raw("status", json.dumps({"v": 1, "station": name, "state": "online", "fw": "1.2.0",
                                    "board": "rpi-cm4", "config_version": 3}), retain=True)
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 60, 0.1,
                     what="seed batches acked")
    for s in stations.values():
        s.close()
    return end_ms, sent


def _publish_all(st, name, readings):
    seq = getattr(st, "_seq", 0)
    for i in range(0, len(readings), 500):
        seq += 1
        chunk = readings[i:i + 500]
        st.publish(seq, {"v": 1, "station": name, "seq": seq, "sent_at": chunk[-1]["ts"],
                         "readings": chunk})
    st._seq = seq
    return len(readings)


def ensure_alerts(stack, end_ms, wait_s=5.0):
    """Alerts to look at: those the engine raised from the seed (salinity
    above 4 g/L at DT-W01) or, when this build has no engine wired, rows
    written into the alert tables. Returns 'engine' or 'inserted'."""
    def have():
        return gp.query(stack.db, "SELECT count(*) FROM alerts")[0][0] > 0
    try:
        harness.wait_for(have, wait_s, 0.2, what="engine alerts")
        return "engine"
    except TimeoutError:
        pass
    con = sqlite3.connect(stack.db, timeout=10)
    try:
        rows = [
            ("salinity-high/DT-W01/sonde1", "salinity-high", "DT-W01", "sonde1", "salinity", "critical",
             "active", 4.3, 4.0, end_ms - 5 * HOUR, end_ms - 5 * HOUR, "Độ mặn 4.3 g/L >= 4.0 g/L"),
            ("station-offline/DT-W03", "station-offline", "DT-W03", None, None, "warning",
             "active", None, None, end_ms - HOUR, end_ms - HOUR, "Station DT-W03 sent nothing for 900 s"),
            ("do-low/DT-W02/sonde1", "do-low", "DT-W02", "sonde1", "dissolved_oxygen", "warning",
             "cleared", 2.4, 2.0, end_ms - 30 * HOUR, end_ms - 20 * HOUR, "DO 1.8 mg/L <= 2.0 mg/L"),
        ]
        con.executemany("INSERT INTO alerts(id, rule, station, sensor, metric, severity, state, value,"
                        " threshold, raised_at, updated_at, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        con.executemany("INSERT INTO alert_events(alert_id, state, severity, value, at) VALUES (?,?,?,?,?)", [
            ("salinity-high/DT-W01/sonde1", "active", "critical", 4.3, end_ms - 5 * HOUR),
            ("station-offline/DT-W03", "active", "warning", None, end_ms - HOUR),
            ("do-low/DT-W02/sonde1", "active", "warning", 1.8, end_ms - 30 * HOUR),
            ("do-low/DT-W02/sonde1", "cleared", "warning", 2.4, end_ms - 20 * HOUR),
        ])
        con.commit()
    finally:
        con.close()
    return "inserted"


def ensure_forecast(stack, station, end_ms):
    """A forecast to draw: when this gateway has no v_forecasts view (the
    forecast worker is not in this build), a stand-in table and view with
    one interfaces.md §13 document for station. Returns 'gateway' or 'inserted'."""
    if gp.query(stack.db, "SELECT count(*) FROM sqlite_master WHERE name = 'v_forecasts'")[0][0]:
        # the gateway's forecaster fits new data within seconds
        harness.wait_for(lambda: request(stack.url("/api/v1/forecast?station=%s" % station)).status == 200,
                         60, 0.5, what="the gateway's forecast for " + station)
        return "gateway"
    pts = []
    for i in range(1, 289):
        ts = end_ms + i * STEP
        v = salinity_at(station, ts)
        pts.append({"ts": iso(ts), "value": v, "lo": round(v * 0.85, 3), "hi": round(v * 1.15 + 0.05, 3)})
    windows = []
    for thr in (0.5, 1.0, 2.0, 4.0):
        cur = None
        for p in pts:
            if p["hi"] < thr * 0.95:
                cur = cur or {"below": thr, "from": p["ts"], "to": p["ts"]}
                cur["to"] = p["ts"]
            elif cur:
                windows.append(cur)
                cur = None
        if cur:
            windows.append(cur)
    doc = {"v": 1, "station": station, "metric": "salinity", "unit": "g/L", "made_at": iso(end_ms),
           "from_data_until": iso(end_ms), "model": "harmonic M2 S2 N2 K1 O1 M4 + trend (test)",
           "fit_days": 3.0, "residual_sd": 0.12, "points": pts, "windows": windows}
    con = sqlite3.connect(stack.db, timeout=10)
    try:
        con.executescript("CREATE TABLE test_forecasts(station TEXT, metric TEXT, made_at TEXT, doc TEXT, why TEXT);"
                          "CREATE VIEW v_forecasts AS SELECT * FROM test_forecasts;"
                          "CREATE TABLE test_advisories(id TEXT, station TEXT, kind TEXT, peak_at TEXT,"
                          " sow_from TEXT, sow_to TEXT, hatch_from TEXT, hatch_to TEXT, message TEXT);"
                          "CREATE VIEW v_advisories AS SELECT * FROM test_advisories;")
        con.execute("INSERT INTO test_forecasts VALUES (?, 'salinity', ?, ?, NULL)",
                    (station, iso(end_ms), json.dumps(doc)))
        con.execute("INSERT INTO test_forecasts VALUES ('DT-W02', 'salinity', ?, NULL,"
                    " 'too little data: 2.1 days of readings, need 3.0')", (iso(end_ms),))
        con.execute("INSERT INTO test_advisories VALUES ('sow_after_peak/TRAP-01/2026-11-20', 'TRAP-01',"
                    " 'sow_after_peak', ?, ?, ?, ?, ?, 'Gieo sạ từ ... / Sow from ...')",
                    (iso(end_ms - 48 * HOUR), iso(end_ms), iso(end_ms + 6 * 24 * HOUR),
                     iso(end_ms + 8 * 24 * HOUR), iso(end_ms + 11 * 24 * HOUR)))
        con.commit()
    finally:
        con.close()
    return "inserted"
