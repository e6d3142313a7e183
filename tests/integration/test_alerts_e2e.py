"""Alerts end to end with real processes (issue 6 acceptance; docs/alerts.md,
docs/notify.md): agri-sim -> agri-station -> mosquitto -> agri-gateway ->
a local webhook receiver (http.server) and a local SMTP sink (smtpd).

1. salinity-intrusion at 30 km on an accelerated clock (2 simulated days a
   minute): the critical threshold alert (above 4.0, hysteresis 0.3) is
   raised at the first crossing, cleared once the tide has fallen below 3.7,
   raised once per crossing -- checked reading by reading against the stored
   readings and against the sim's --series truth; every transition is a
   webhook POST and an e-mail in Vietnamese.
2. bph-migration: 58 nights of light-trap history imported with
   `agri-gateway --import` of `agri-sim --series`, then a live run over the
   next brood: the default bph-peak rule fires once per brood, on the truth's
   peak night, never on a baseline night; one advisory per peak.
3. the webhook is down (503, then connection refused) while ten minutes of
   readings raise and clear alerts: afterwards every notification arrives,
   in commit order, once (compared with the outbox and alert_events).
4. kill -9 of the gateway after an alert is committed and before its
   notification could be delivered: after the restart it goes out exactly
   once, and the restored engine state neither re-raises nor loses it.

AGRI_E2E_PARTS=1,3 runs a subset.
"""
import calendar
import collections
import email
import email.policy
import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import station_support as ss  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402
    import smtpd  # noqa: E402

R = harness.Result("test_alerts_e2e")
PARTS = set(int(x) for x in os.environ.get("AGRI_E2E_PARTS", "1,2,3,4").split(","))
LOCAL_MS = 7 * 3600 * 1000  # UTC+7, rules' utc_offset_min 420
DAY_MS = 86400 * 1000


# ---- peers ------------------------------------------------------------------

class Receiver:
    """Webhook receiver: mode ok | fail (503); stop()/start() on the same
    port for a hard outage. Records every delivered POST in arrival order."""

    def __init__(self, port=None):
        self.port = port or harness.free_port()
        self.mode = "ok"
        self.lock = threading.Lock()
        self.posts = []   # dicts: t, delivery, event, alert
        self.failed = 0
        self.srv = None

    def start(self):
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                t = time.time()
                if rcv.mode == "fail":
                    with rcv.lock:
                        rcv.failed += 1
                    return self.reply(503)
                with rcv.lock:
                    rcv.posts.append({"t": t, "delivery": self.headers.get("X-Agri-Delivery"),
                                      "event": self.headers.get("X-Agri-Event"),
                                      "ctype": self.headers.get("Content-Type"),
                                      "alert": json.loads(body.decode("utf-8"))})
                self.reply(200)

            def reply(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.srv = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def list(self, rule=None):
        with self.lock:
            return [p for p in self.posts if rule is None or p["alert"]["rule"] == rule]

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port


class SmtpSink(smtpd.SMTPServer):
    def __init__(self, port):
        super().__init__(("127.0.0.1", port), None, decode_data=False)
        self.msgs = []
        self.lock = threading.Lock()

    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        with self.lock:
            self.msgs.append(email.message_from_bytes(data, policy=email.policy.default))


_smtp = {}


def smtp_sink():
    """One SMTP sink for the whole run (asyncore has one global map)."""
    if not _smtp:
        port = harness.free_port()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            _smtp["sink"] = SmtpSink(port)
        threading.Thread(target=lambda: asyncore.loop(timeout=0.05), daemon=True).start()
        harness.wait_port(port)
        _smtp["port"] = port
    return _smtp["sink"], _smtp["port"]


def gateway_config(d, mq, rules, hook_url, mail_port=None, forecast=False, client_id="gw-e2e"):
    rules_path = harness.write_json(os.path.join(d, "rules.json"), rules)
    cfg = {"broker": {"url": mq.url, "client_id": client_id, "keepalive_s": 10},
           "db": {"path": os.path.join(d, "agri.db"), "retention_days": 400},
           "rules_file": rules_path,
           "notify": {"webhooks": [{"name": "hook", "url": hook_url}]}}
    if mail_port:
        # smtpd has no STARTTLS: plain SMTP, allowed on loopback only.
        cfg["notify"]["smtp"] = {"name": "mail", "url": "smtp://127.0.0.1:%d" % mail_port,
                                 "from": "agri@farm.vn", "to": ["agronomist@localhost"],
                                 "tls": "none"}
    if forecast:
        cfg["forecast"] = {"enabled": True}
    return harness.write_json(os.path.join(d, "gateway.json"), cfg)


class Gw:
    def __init__(self, d, config, env=None):
        self.d, self.config, self.env = d, config, env
        self.proc, self.starts = None, 0

    def start(self):
        self.starts += 1
        self.proc = harness.Proc([harness.bin_path("agri-gateway"), "--config", self.config,
                                  "--log-level", "info"],
                                 os.path.join(self.d, "gw%d.log" % self.starts), env=self.env)
        harness.wait_for(lambda: "subscribed topics" in self.proc.log_text()
                         or (self.proc.poll() is not None and gp._raise(self.proc)),
                         30, what="gateway subscribed")
        return self


def q(db, sql, args=()):
    return gp.query(db, sql, args)


def ms_of(iso):
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(iso[20:23])


def iso(ms):
    return gp.iso(int(ms))


def start_sim(d, name, slave, start, speed, seed, scenario=None):
    port = harness.free_port()
    argv = [harness.bin_path("agri-sim"), "--tcp", "127.0.0.1:%d" % port, "--slave", slave,
            "--start", start, "--speed", str(speed), "--seed", str(seed),
            "--profiles-dir", harness.PROFILES]
    if scenario:
        argv += ["--scenario", scenario]
    p = harness.Proc(argv, os.path.join(d, name + ".log"), wrap=True)
    harness.wait_port(port, 10, p)
    return p, port


def start_station(d, mq, station, sim_port, sensor, profile, interval_s, env):
    cfg = ss.station_config(d, mq.port,
                            [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port},
                              "timeout_ms": 1000}],
                            [{"name": sensor, "bus": "lan", "slave": 1, "profile": profile,
                              "interval_s": interval_s, "stuck_reads": 0}],
                            station=station, state_dir=os.path.join(d, "state-" + station))
    path = harness.write_json(os.path.join(d, station + ".json"), cfg)
    return harness.Proc([harness.bin_path("agri-station"), "--config", path],
                        os.path.join(d, station + ".log"), env=env, wrap=True)


def series(slave, start, hours, step_s, seed, scenario=None):
    argv = [harness.bin_path("agri-sim"), "--series", "--slave", slave, "--start", start,
            "--hours", str(hours), "--step-s", str(step_s), "--seed", str(seed),
            "--profiles-dir", harness.PROFILES]
    if scenario:
        argv += ["--scenario", scenario]
    r = harness.run(argv, timeout=120, wrap=True)
    assert r.returncode == 0, r.stderr
    return [(ms_of(ts), m, float(v)) for ts, m, v in
            (line.split(",") for line in r.stdout.splitlines()[1:])]


def episodes(points, above, hyst):
    """Threshold transitions of (ts, value) points: [(state, ts, value)]."""
    on, out = False, []
    for ts, v in points:
        if not on and v >= above:
            on = True
            out.append(("active", ts, v))
        elif on and v < above - hyst:
            on = False
            out.append(("cleared", ts, v))
    return out


def drained(db):
    """No pending outbox row (every notification delivered or dropped)."""
    r = q(db, "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND dropped_at IS NULL")
    return r[0][0] == 0


# ---- 1. salinity intrusion --------------------------------------------------

def part_salinity(mq):
    d = harness.tmpdir("agri-e2e-sal-")
    start, speed, seed, km = "2026-04-01T10:00", 2880, 7, 30
    env = {"AGRI_CLOCK": "%s:00.000Z@%d" % (start, speed)}
    rcv = Receiver().start()
    sink, mail_port = smtp_sink()
    mails0 = len(sink.msgs)
    # late_after_s: at 2,880 times real time a batch's readings are up to
    # an hour (of simulated time) old when they arrive; they are live here.
    rules = {"utc_offset_min": 420, "lang": "vi", "late_after_s": 6 * 3600, "rules": [
        {"id": "salinity-critical", "metric": "salinity", "above": 4.0, "hysteresis": 0.3,
         "severity": "critical", "stations": ["DT-W03"], "notify": ["hook", "mail"]}]}
    cfg = gateway_config(d, mq, rules, rcv.url, mail_port)
    db = os.path.join(d, "agri.db")
    gw = Gw(d, cfg, env).start()
    sim, sim_port = start_sim(d, "sim-sal", "1:sensecap-s-ec-01,distance_km=%d" % km,
                              start, speed, seed, "salinity-intrusion")
    st = start_station(d, mq, "DT-W03", sim_port, "sonde1", "sensecap-s-ec-01", 0.25, env)
    t0 = time.time()
    # 38 simulated hours: three high-water episodes at 30 km (about 48 s).
    until = ms_of(start + ":00.000Z") + 38 * 3600 * 1000

    def newest():
        r = q(db, "SELECT max(ts) FROM readings")
        return r[0][0] if r and r[0][0] else 0
    try:
        harness.wait_for(lambda: newest() >= until or st.poll() is not None
                         or gw.proc.poll() is not None, 180, 0.5, "38 simulated hours stored")
    except TimeoutError:
        pass
    R.check(st.poll() is None and gw.proc.poll() is None,
            "salinity: station and gateway ran for %.0f s" % (time.time() - t0))
    st.stop()
    sim.stop()
    harness.wait_for(lambda: drained(db), 60, 0.2, "outbox drained")
    time.sleep(1.0)
    R.check(gw.proc.stop() == 0, "salinity: gateway stops cleanly")

    pts = q(db, "SELECT r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id "
                "WHERE s.metric = 'salinity' AND r.q = 0 ORDER BY r.ts")
    R.check(len(pts) >= 150, "salinity: %d ok salinity readings stored (%s .. %s)"
            % (len(pts), iso(pts[0][0]) if pts else "-", iso(pts[-1][0]) if pts else "-"))
    want = episodes(pts, 4.0, 0.3)
    raises = [w for w in want if w[0] == "active"]
    clears = [w for w in want if w[0] == "cleared"]
    got = q(db, "SELECT e.state, e.at, e.value FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                "WHERE a.rule = 'salinity-critical' ORDER BY e.seq")
    R.check(len(raises) >= 2 and len(clears) >= 2,
            "salinity: the stored readings cross 4.0 g/L %d times and fall below 3.7 %d times"
            % (len(raises), len(clears)))
    R.check([(s, a) for s, a, _ in got] == [(s, a) for s, a, _ in want],
            "salinity: alert_events == the readings' crossings, reading by reading "
            "(%d events; first raise at %s on %.2f g/L, the first reading >= 4.0)"
            % (len(got), iso(got[0][1]) if got else "-", got[0][2] if got else 0))
    R.check(all(abs(g[2] - w[2]) < 1e-6 for g, w in zip(got, want)),
            "salinity: each event carries the crossing reading's value")
    # The noisy tide crosses 4.0 upwards more often than it starts an
    # episode: the hysteresis keeps those re-crossings from re-raising.
    ups = sum(1 for i in range(1, len(pts)) if pts[i - 1][1] < 4.0 <= pts[i][1])
    R.check(len(raises) <= ups,
            "salinity: %d raises for %d upward crossings of 4.0 (%d episodes)"
            % (len([g for g in got if g[0] == "active"]), ups, len(raises)))
    # Truth: the same model's --series over the stored span (the station's
    # clock starts a fraction of a second after the sim's: up to an hour at
    # this speed, so matches are within 90 simulated minutes).
    span_h = (pts[-1][0] - ms_of(start + ":00.000Z")) / 3600e3
    truth = series("1:sensecap-s-ec-01,distance_km=%d" % km, start, "%.2f" % span_h, 300, seed,
                   "salinity-intrusion")
    tw = episodes([(ts, v) for ts, m, v in truth if m == "salinity"], 4.0, 0.3)
    lo, hi = pts[0][0] + 90 * 60000, pts[-1][0] - 90 * 60000
    tr = [ts for s, ts, _ in tw if s == "active" and lo <= ts <= hi]
    tr_all = [ts for s, ts, _ in tw if s == "active"]
    dr = [ts for s, ts, _ in got if s == "active"]
    near = lambda a, xs: any(abs(a - b) <= 90 * 60000 for b in xs)  # noqa: E731
    match = all(near(a, dr) for a in tr) and all(near(a, tr_all) for a in dr if lo <= a <= hi)
    R.check(match and tr, "salinity: raises match the --series truth's crossings within 90 min "
            "(truth %s; gateway %s)" % (", ".join(iso(t)[5:16] for t in tr),
                                         ", ".join(iso(t)[5:16] for t in dr)))

    posts = rcv.list("salinity-critical")
    R.check([(p["alert"]["state"], ms_of(p["alert"]["updated_at"])) for p in posts] ==
            [(s, a) for s, a, _ in got],
            "salinity: webhook POSTs == alert_events (%d: %d active, %d cleared), in order"
            % (len(posts), sum(p["alert"]["state"] == "active" for p in posts),
               sum(p["alert"]["state"] == "cleared" for p in posts)))
    R.check(sum(p["alert"]["state"] == "active" for p in posts) == len(raises),
            "salinity: raised no more than once per crossing (%d active POSTs, %d episodes)"
            % (sum(p["alert"]["state"] == "active" for p in posts), len(raises)))
    R.check(len(set(p["delivery"] for p in posts)) == len(posts) and
            all(p["ctype"] == "application/json" and p["event"] in ("raised", "cleared") for p in posts),
            "salinity: one delivery id per POST, JSON, X-Agri-Event raised/cleared")
    active = [p for p in posts if p["alert"]["state"] == "active"]
    R.check(bool(active) and active[0]["alert"]["severity"] == "critical" and
            active[0]["alert"]["message"].startswith("Độ mặn"),
            "salinity: webhook message in Vietnamese (lang vi): %r"
            % (active[0]["alert"]["message"] if active else None))

    with sink.lock:
        mails = sink.msgs[mails0:]
    subj = [m["Subject"] for m in mails]
    R.check(len(mails) == len(got),
            "salinity: %d e-mails for %d transitions" % (len(mails), len(got)))
    first = mails[0] if mails else None
    body = first.get_content() if first else ""
    R.check(first is not None and subj[0].startswith("[agri] CRITICAL salinity-critical DT-W03: Độ mặn")
            and "≥ 4,0‰ tại DT-W03 (sonde1)" in subj[0] and body.startswith("Độ mặn")
            and first.get_content_charset() == "utf-8",
            "salinity: the e-mail is in Vietnamese (UTF-8): %r" % (subj[0] if subj else None))
    R.check(any(s.startswith("[agri] CRITICAL salinity-critical DT-W03: Đã hết") for s in subj),
            "salinity: the clearing e-mail says 'Đã hết' (%r)"
            % ([s for s in subj if "Đã hết" in s][:1]))
    rcv.stop()


# ---- 2. bph-migration -------------------------------------------------------

def night_of(ts_ms):
    """The peak rule's night: cut at the morning's lamp-off, 06:00 local
    (night_end_h 6): a peak is confirmed at 06:00 the morning after the
    lower night."""
    return (ts_ms + LOCAL_MS - 6 * 3600 * 1000) // DAY_MS


def day_str(n):
    return time.strftime("%Y-%m-%d", time.gmtime(n * 86400))


def broods(totals, floor):
    """Runs of consecutive nights at or above floor: [(first, last, peak)]."""
    out, run = [], []
    for n in sorted(totals):
        if totals[n] >= floor and (not run or n == run[-1] + 1):
            run.append(n)
        else:
            if run:
                out.append(run)
            run = [n] if totals[n] >= floor else []
    if run:
        out.append(run)
    return [(r[0], r[-1], max(r, key=lambda n: totals[n])) for r in out]


def part_bph(mq):
    d = harness.tmpdir("agri-e2e-bph-")
    seed, slave = 4, "1:agri-lighttrap,phase_d=0"
    hist_start, live_start, speed = "2026-01-28T05:00", "2026-03-27T05:00", 14400
    env = {"AGRI_CLOCK": "%s:00.000Z@%d" % (live_start, speed)}
    rcv = Receiver().start()
    default = json.load(open(os.path.join(harness.SRC, "gateway", "rules.default.json")))
    rule = [r for r in default["rules"] if r["id"] == "bph-peak"][0]
    rule["notify"] = ["hook"]
    default["rules"] = [rule]
    default["late_after_s"] = 30 * 86400  # 4 simulated hours a second: live
    floor = rule["floor"]
    cfg = gateway_config(d, mq, default, rcv.url, forecast=True)
    db = os.path.join(d, "agri.db")

    # History: the sim's truth up to the live start, imported as the
    # station would have sent it.
    t0 = time.time()
    hours = (ms_of(live_start + ":00.000Z") - ms_of(hist_start + ":00.000Z")) // 3600000
    prof = json.load(open(os.path.join(harness.PROFILES, "agri-lighttrap.json")))
    units = {r["metric"] + ("." + r["sensor_suffix"] if r.get("sensor_suffix") else ""): r.get("unit", "")
             for r in prof["registers"]}
    hist = series(slave, hist_start, hours, 3600, seed)
    with open(os.path.join(d, "history.csv"), "w") as f:
        f.write("station,sensor,metric,ts,value,unit,q\n")
        for ts, m, v in hist:
            unit, name = units.get(m, ""), "trap1"
            if "." in m:
                m, suffix = m.split(".", 1)
                name += "-" + suffix
            f.write("DT-T01,%s,%s,%s,%r,%s,ok\n" % (name, m, iso(ts), v, unit))
    r = harness.run([harness.bin_path("agri-gateway"), "--config", cfg, "--import",
                     os.path.join(d, "history.csv")], timeout=300, env=env, wrap=True)
    R.check(r.returncode == 0, "bph: %d h of history imported (rc %d) in %.1f s: %s"
            % (hours, r.returncode, time.time() - t0, (r.stderr.strip().splitlines() or [""])[-1][:160]))
    hist_raises = q(db, "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                        "WHERE a.rule = 'bph-peak' AND e.state = 'active'")[0][0]

    # Live: the next brood (peak on the night of 03-30) on a 4 h/s clock,
    # one trap reading per simulated hour.
    gw = Gw(d, cfg, env).start()
    sim, sim_port = start_sim(d, "sim-bph", slave, live_start, speed, seed)
    st = start_station(d, mq, "DT-T01", sim_port, "trap1", "agri-lighttrap", 0.25, env)
    t1 = time.time()
    until = ms_of("2026-04-02T05:30:00.000Z")  # night 04-01 complete: 03-31 confirmed the peak

    def live_done():
        r = q(db, "SELECT max(r.ts) FROM readings r JOIN series s ON s.id = r.series_id "
                  "WHERE s.sensor = 'trap1-bph'")
        return (r[0][0] or 0) >= until or st.poll() is not None or gw.proc.poll() is not None
    try:
        harness.wait_for(live_done, 150, 0.5, "the live brood")
    except TimeoutError:
        pass
    R.check(st.poll() is None and gw.proc.poll() is None,
            "bph: live trap ran %.0f s (simulated %s .. 04-02 05:30)" % (time.time() - t1, live_start))
    st.stop()
    sim.stop()
    harness.wait_for(lambda: drained(db), 60, 0.2, "outbox drained")
    time.sleep(0.5)
    gw.proc.stop()

    # The truth: nights of the same model, hour by hour, over the whole span.
    truth = series(slave, hist_start, hours + 6 * 24, 3600, seed)
    ttot = collections.Counter()
    for ts, m, v in truth:
        if m == "insect_count.bph" and ts <= until:
            ttot[night_of(ts - 1)] += v
    first_n, last_n = min(ttot), night_of(until) - 1
    ttot = {n: ttot[n] for n in range(first_n + 1, last_n + 1)}  # whole nights only
    tb = broods(ttot, floor)
    R.check(len(tb) == 3 and all(ttot[n] < floor for n in ttot
                                 if not any(a <= n <= b for a, b, _ in tb)),
            "bph: truth has 3 broods, peaks %s; baseline nights all < floor %g (max %.0f)"
            % (", ".join("%s (%.0f)" % (day_str(p), ttot[p]) for _, _, p in tb), floor,
               max(v for n, v in ttot.items() if not any(a <= n <= b for a, b, _ in tb))))

    # What the gateway stored, per rule night.
    stot = collections.Counter()
    for ts, v in q(db, "SELECT r.ts, r.value FROM readings r JOIN series s ON s.id = r.series_id "
                       "WHERE s.sensor = 'trap1-bph' AND r.q = 0"):
        stot[night_of(ts)] += v
    sb = broods({n: stot[n] for n in range(first_n + 1, last_n + 1)}, floor)
    R.check([p for _, _, p in sb] == [p for _, _, p in tb],
            "bph: the stored catch has the same peak nights (%s)"
            % ", ".join("%s %.0f" % (day_str(p), stot[p]) for _, _, p in sb))

    ev = q(db, "SELECT e.state, e.value, e.at FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
               "WHERE a.rule = 'bph-peak' ORDER BY e.seq")
    raised = [(v, at) for s, v, at in ev if s == "active"]
    R.check(len(raised) == len(tb) == 3 and hist_raises == 2,
            "bph: one peak alert per brood: %d raised (%d from the history, %d live)"
            % (len(raised), hist_raises, len(raised) - hist_raises))
    ok_nights = []
    for (v, at), (a, b, p) in zip(raised, sb):
        # Confirmed when the night after the peak completes, named for the
        # peak night's total.
        ok_nights.append(abs(v - stot[p]) < 0.5 and night_of(at) == p + 2)
    R.check(len(ok_nights) == 3 and all(ok_nights),
            "bph: each alert carries its peak night's total and is confirmed the night after "
            "(%s)" % ", ".join("%.0f at %s" % (v, iso(at)[:16]) for v, at in raised))
    R.check(all(any(a <= night_of(at) - 2 <= b for a, b, _ in tb) for _, at in raised),
            "bph: no alert on a baseline night")
    adv = q(db, "SELECT id, peak_at, sow_from, message FROM v_advisories ORDER BY peak_at")
    adv_days = [day_str(night_of(ms_of(p))) for _, p, _, _ in adv]
    R.check(adv_days == [day_str(p) for _, _, p in tb],
            "bph: one advisory per peak night in v_advisories (%s)" % ", ".join(adv_days))
    R.check(all("Gieo sạ né rầy" in m for _, _, _, m in adv), "bph: advisories say when to sow (vi)")
    posts = rcv.list("bph-peak")
    R.check([p["alert"]["state"] for p in posts] in (["active"], ["active", "cleared"]) and
            "Brown planthopper peak at DT-T01 (trap1-bph)" in posts[0]["alert"]["message"],
            "bph: the live peak is notified once by webhook (the history import is quiet): %s"
            % [(p["alert"]["state"], p["alert"]["message"][:70]) for p in posts])
    rcv.stop()


# ---- 3. webhook down --------------------------------------------------------

def part_outage(mq):
    d = harness.tmpdir("agri-e2e-out-")
    rcv = Receiver().start()
    rules = {"rules": [{"id": "sal-hi", "metric": "salinity", "above": 4.0, "hysteresis": 0.3,
                        "severity": "alarm", "notify": ["hook"]}]}
    cfg = gateway_config(d, mq, rules, rcv.url, client_id="gw-e2e-out")
    db = os.path.join(d, "agri.db")
    gw = Gw(d, cfg).start()
    station = gp.Station(mq.port, "DT-X03", ack_timeout=2.0)
    station.connected.wait(10)
    # Ten minutes of readings, every 10 s, three probes on different tides:
    # each crosses 4.0 up and down every 50 s of reading time.
    base = (int(time.time()) - 600) * 1000  # live: within late_after_s (15 min)
    sensors = ["p1", "p2", "p3"]

    def value(i, k):
        return 5.0 if ((i + 2 * k) // 5) % 2 == 0 else 3.0
    expect = {s: episodes([(base + i * 10000, value(i, k)) for i in range(60)], 4.0, 0.3)
              for k, s in enumerate(sensors)}
    n_expect = sum(len(v) for v in expect.values())
    rcv.mode = "fail"
    t0 = time.time()
    for i in range(60):
        if i == 30:
            rcv.stop()  # second half: connection refused
        rd = [{"ts": iso(base + i * 10000), "sensor": s, "metric": "salinity", "value": value(i, k),
               "unit": "g/L", "q": "ok"} for k, s in enumerate(sensors)]
        station.publish(i + 1, {"v": 1, "station": "DT-X03", "seq": i + 1,
                                "sent_at": iso(base + i * 10000 + 1), "readings": rd})
        time.sleep(0.2)
    harness.wait_for(lambda: station.pending() == 0, 60, 0.2, "every batch acked")
    n_ev = q(db, "SELECT count(*) FROM alert_events")[0][0]
    R.check(n_ev == n_expect, "outage: %d transitions committed during the outage (expected %d)"
            % (n_ev, n_expect))
    R.check(rcv.failed >= 1 and rcv.list() == [],
            "outage: the webhook refused %d attempts (503), nothing delivered" % rcv.failed)
    time.sleep(3)  # down hard a little longer
    outage = time.time() - t0
    rows = q(db, "SELECT id, created_at, alert_id, event, payload FROM outbox "
                 "WHERE channel = 'hook' ORDER BY id")
    pend = q(db, "SELECT count(*), max(attempts) FROM outbox WHERE channel = 'hook' AND delivered_at IS NULL")
    R.check(len(rows) == n_expect and pend[0][0] == n_expect,
            "outage: %d outbox rows pending after %.0f s down (head row tried %d times)"
            % (pend[0][0], outage, pend[0][1] or 0))
    rcv.mode = "ok"
    rcv.start()
    t1 = time.time()
    harness.wait_for(lambda: len(rcv.list()) >= n_expect, 120, 0.2, "every notification after recovery")
    took = time.time() - t1
    harness.wait_for(lambda: drained(db), 30, 0.2, "outbox drained")
    time.sleep(2.0)
    posts = rcv.list()
    ids = [int(p["delivery"].split(".")[0]) for p in posts]
    R.check(ids == [r[0] for r in rows],
            "outage: %d notifications delivered in commit order, each once, %.1f s after the "
            "webhook came back" % (len(posts), took))
    R.check([json.loads(r[4]) == p["alert"] for r, p in zip(rows, posts)] == [True] * len(rows),
            "outage: each POST body is its outbox row's payload")
    ev = q(db, "SELECT alert_id, state, at FROM alert_events ORDER BY seq")
    R.check([(p["alert"]["id"], p["alert"]["state"], ms_of(p["alert"]["updated_at"])) for p in posts]
            == [(a, s, at) for a, s, at in ev],
            "outage: the POSTs are alert_events, in order")
    R.check(all([(st, ts) for st, ts, _ in expect[s]] ==
                [(p["alert"]["state"], ms_of(p["alert"]["updated_at"])) for p in posts
                 if p["alert"]["sensor"] == s] for s in sensors),
            "outage: per probe, every crossing of the ten minutes (%s)"
            % ", ".join("%s %d" % (s, len(expect[s])) for s in sensors))
    station.close()
    gw.proc.stop()
    log = gw.proc.log_text()
    R.check(log.count("channel=hook down") == 1 and "channel=hook delivering again" in log,
            "outage: logged once down, once recovered")
    rcv.stop()


# ---- 4. kill -9 between raise and notify ------------------------------------

def part_kill(mq):
    d = harness.tmpdir("agri-e2e-kill-")
    port = harness.free_port()  # nothing listens here until after the crash
    rules = {"rules": [{"id": "sal-hi", "metric": "salinity", "above": 4.0, "hysteresis": 0.3,
                        "severity": "critical", "notify": ["hook"]}]}
    cfg = gateway_config(d, mq, rules, "http://127.0.0.1:%d/hook" % port, client_id="gw-e2e-kill")
    db = os.path.join(d, "agri.db")
    gw = Gw(d, cfg).start()
    station = gp.Station(mq.port, "DT-X04", ack_timeout=2.0)
    station.connected.wait(10)
    base = (int(time.time()) - 60) * 1000

    def send(seq, v):
        station.publish(seq, {"v": 1, "station": "DT-X04", "seq": seq, "sent_at": iso(base + seq * 1000),
                              "readings": [{"ts": iso(base + seq * 1000), "sensor": "s1",
                                            "metric": "salinity", "value": v, "unit": "g/L",
                                            "q": "ok"}]})
    send(1, 3.0)
    send(2, 4.6)
    harness.wait_for(lambda: q(db, "SELECT count(*) FROM alert_events")[0][0] == 1, 30, 0.1,
                     "the alert raised and committed")
    harness.wait_for(lambda: (q(db, "SELECT max(attempts) FROM outbox")[0][0] or 0) >= 1, 30, 0.1,
                     "a failed delivery attempt")
    gw.proc.kill9()
    row = q(db, "SELECT id, event, delivered_at, attempts FROM outbox")
    R.check(len(row) == 1 and row[0][1] == "raised" and row[0][2] is None,
            "kill -9: raised and committed, notification pending (outbox %s)" % row)
    rcv = Receiver(port).start()
    gw = Gw(d, cfg).start()
    harness.wait_for(lambda: len(rcv.list()) >= 1, 60, 0.1, "the notification after the restart")
    # The restored engine state: still above the threshold is no new alert;
    # falling below clears the same alert.
    send(3, 4.8)
    harness.wait_for(lambda: station.pending() == 0, 30, 0.1, "reading 3 acked")
    send(4, 3.2)
    harness.wait_for(lambda: len(rcv.list()) >= 2, 60, 0.1, "the clearing notification")
    harness.wait_for(lambda: drained(db), 30, 0.1, "outbox drained")
    time.sleep(2.0)
    posts = rcv.list()
    R.check([(p["alert"]["state"], p["alert"]["value"]) for p in posts] == [("active", 4.6), ("cleared", 3.2)],
            "kill -9: the raise went out exactly once after the restart, then the clear "
            "(%s)" % [(p["alert"]["state"], p["alert"]["value"], p["delivery"]) for p in posts])
    R.check(posts[0]["delivery"].split(".")[0] == str(row[0][0]) if row and posts else False,
            "kill -9: delivered from the row committed before the crash")
    ev = q(db, "SELECT state, value FROM alert_events ORDER BY seq")
    R.check(ev == [("active", 4.6), ("cleared", 3.2)],
            "kill -9: no duplicate raise after the restart (alert_events %s)" % ev)
    station.close()
    R.check(gw.proc.stop() == 0, "kill -9: restarted gateway stops cleanly")
    rcv.stop()


def main():
    d = harness.tmpdir("agri-e2e-")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    for n, fn in ((1, part_salinity), (2, part_bph), (3, part_outage), (4, part_kill)):
        if n in PARTS:
            t = time.time()
            try:
                fn(mq)
            except Exception as e:  # a part's failure must not hide the others
                import traceback
                traceback.print_exc()
                R.check(False, "part %d raised %s: %s" % (n, type(e).__name__, e))
            print("part %d: %.1f s" % (n, time.time() - t), flush=True)
    mq.stop()
    R.done()


if __name__ == "__main__":
    main()
