"""The main job (issue 11): `scripts/run --duration 90` (what `make run
DURATION=90` runs) brings up the whole province in a box headless, and at
the end: readings from all 21 stations were stored live, at least one
salinity alert at an estuary station and one planthopper peak alert were
raised and notified, no inland (fresh) station raised a salinity alert,
the run reported itself healthy (exit 0) and left no process behind; and
the field-truth parts show: water levels with tides and a sluice, a dry
probe marked suspect with a sensor alert, a fouling probe caught drifting
against its neighbours, a rising planthopper warning; and
the notification policy: the demo's people got their bulletins in the
notification log, the summary prints their messages per day."""
import json
import os
import re
import sqlite3
import subprocess
import sys

import harness

R = harness.Result("test_main_job")
run_dir = harness.tmpdir("agri-main-")
env = dict(os.environ, AGRI_BUILD_DIR=harness.BUILD)
p = subprocess.run(["/usr/bin/python3", os.path.join(harness.SRC, "scripts", "province.py"),
                    "--duration", "90", "--run-dir", run_dir, "--mqtt-port", "0", "--http-port", "0"],
                   capture_output=True, text=True, timeout=400, env=env)
print(p.stdout[-3000:])
print(p.stderr[-2000:], file=sys.stderr)
R.check(p.returncode == 0, "the run exits 0 (healthy) (rc=%d)" % p.returncode)
R.check("healthy" in p.stdout and "NOT healthy" not in p.stdout, "the summary says healthy")

db = os.path.join(run_dir, "gateway", "agri.db")
con = sqlite3.connect(db)
stations = ["DT-W%02d" % i for i in range(1, 7)] + ["DT-T%02d" % i for i in range(1, 16)]
start = "2026-04-01T00:00:00.000Z"
live = dict(con.execute("SELECT station, count(*) FROM v_readings WHERE ts >= ? GROUP BY station", (start,)))
R.check(all(live.get(s, 0) > 0 for s in stations),
        "live readings stored from all 21 stations (%s)" % ", ".join("%s=%d" % (s, live.get(s, 0)) for s in stations))
R.check(all(con.execute("SELECT count(*) FROM v_readings WHERE station=? AND sensor='solar' AND ts >= ?",
                        (s, start)).fetchone()[0] > 0 for s in stations),
        "every station's EPEVER solar controller was polled")

# The rules' channel (machines) gets every transition; people get what the
# notification policy decides for them (gateway/recipients.demo.json).
notes = [json.loads(line) for line in open(os.path.join(run_dir, "alerts.log")) if line.strip()]
estuary = {"DT-W01", "DT-W02", "DT-W03", "DT-W04"}
inland = {"DT-W05", "DT-W06"}
sal = [n for n in notes if n["rule"] == "salinity" and n["station"] in estuary and n["state"] == "active"]
R.check(len(sal) >= 1, "a salinity alert at an estuary station was notified (%d notifications)" % len(sal))
peaks = [n for n in notes if n["rule"] == "bph-peak" and n["state"] == "active"]
R.check(len(peaks) >= 1, "a planthopper peak alert was raised and notified (%s)" %
        ", ".join(n["id"] for n in peaks))
R.check(con.execute("SELECT count(*) FROM alerts WHERE rule='bph-peak' AND raised_at >= "
                    "CAST(strftime('%s', ?) AS INTEGER) * 1000", (start,)).fetchone()[0] >= 1,
        "the peak alert was raised by the live run")
inland_alerts = con.execute("SELECT id FROM alerts WHERE rule='salinity' AND station IN ('DT-W05','DT-W06')").fetchall()
R.check(not inland_alerts and not [n for n in notes if n["rule"] == "salinity" and n["station"] in inland],
        "no inland station raised a salinity alert (%s)" % inland_alerts)
R.check(con.execute("SELECT count(*) FROM v_advisories").fetchone()[0] >= 1, "pest advisories were made")
# The policy (issue 29): the demo has people; each got a 05:30 bulletin in
# the notification log (and its SMS form in sms.log), the summary prints
# their messages per day beside the rules' stream.
msgs = [json.loads(line) for line in open(os.path.join(run_dir, "notifications.log")) if line.strip()]
people = ["hoa", "office", "tuan"]
bulletins = {m["person"] for m in msgs if m.get("kind") == "bulletin"}
R.check({"hoa", "tuan"} <= bulletins and all(m.get("person") in people and m.get("id") for m in msgs),
        "the notification log holds the people's messages and their bulletins (%d messages, bulletins for %s)"
        % (len(msgs), sorted(bulletins)))
b = next((m for m in msgs if m.get("kind") == "bulletin" and m["person"] == "tuan"), {})
R.check("05:30" in b.get("text_vi", "") + b.get("text_en", "") and b.get("bulletin", {}).get("stations"),
        "tuan's bulletin is the 05:30 one with his stations (%s)" % b.get("sms"))
sms = open(os.path.join(run_dir, "sms.log")).read() if os.path.exists(os.path.join(run_dir, "sms.log")) else ""
R.check("+84901000001 " in sms and b.get("sms", "-") in sms, "the SMS gateway got tuan's bulletin as SMS")
per = dict(con.execute("SELECT person, count(*) FROM notify_message WHERE kind != 'bulletin' GROUP BY person"))
R.check(sum(per.values()) < len(notes), "people got fewer messages than the rules' channel (%s vs %d)"
        % (per, len(notes)))
R.check("notifications per person per local day" in p.stdout and
        all(re.search(r"^    %s +\S" % n, p.stdout, re.M) for n in people) and
        re.search(r"^    before +\(the rules' channel\)", p.stdout, re.M),
        "the summary prints messages per person per day beside the rules' channel")
R.check(con.execute("SELECT count(*) FROM forecasts WHERE doc IS NOT NULL").fetchone()[0] >= 4,
        "salinity forecasts were made for the water stations")
# Field truth (docs/station.md, docs/forecast.md): two canals report their
# water level, whose forecast names the tides and gates a sluice; a probe
# that fell dry is marked suspect and a technician alerted; catches that
# climb raise a "rising" warning.
lvl = dict(con.execute("SELECT station, count(*) FROM v_readings WHERE metric='water_level' AND q='ok' "
                       "AND ts >= ? GROUP BY station", (start,)))
R.check(lvl.get("DT-W03", 0) > 0 and lvl.get("DT-W04", 0) > 0, "live water levels from DT-W03 and DT-W04 (%s)" % lvl)
docs = {st: json.loads(doc) for st, doc in con.execute(
    "SELECT station, doc FROM forecasts WHERE metric='salinity' AND doc IS NOT NULL")}
R.check(all(len(docs.get(st, {}).get("tides", [])) >= 6 for st in ("DT-W03", "DT-W04")),
        "the level stations' forecasts list high and low waters (%s)"
        % {st: len(docs.get(st, {}).get("tides", [])) for st in ("DT-W03", "DT-W04")})
R.check(all(w.get("tide") for st in ("DT-W03", "DT-W04") for w in docs.get(st, {}).get("windows", [])),
        "every window at a level station names its tide stage")
R.check(not any("tides" in docs.get(st, {}) for st in ("DT-W01", "DT-W05")),
        "stations without a level sensor get no tides")
sluice = [w for w in docs.get("DT-W04", {}).get("windows", []) if w.get("sluice")]
R.check(all(w["below"] == 0.7 and w.get("min_level_m") == 1.0 for w in sluice),
        "DT-W04's sluice windows keep its limit and level (%d windows)" % len(sluice))
R.check("water level (m on the datum)" in p.stdout and "next " in p.stdout, "the summary shows levels and tides")
dry = con.execute("SELECT count(*) FROM v_readings WHERE station='DT-W01' AND q='suspect' AND why='dry'").fetchone()[0]
R.check(dry > 0, "the probe that fell dry is marked suspect, dry (%d readings)" % dry)
R.check(con.execute("SELECT count(*) FROM alerts WHERE rule='sensor-check' AND station='DT-W01'").fetchone()[0] >= 1,
        "a sensor-check alert tells technicians about the dry probe")
R.check("suspect readings: DT-W01 dry" in p.stdout, "the summary shows the suspect reasons")
# DT-W02's cell fouls (scripts/province.py DRIFT): caught against its
# neighbours, never anyone else (docs/gateway.md "Drift").
drift = con.execute("SELECT station, count(*) FROM v_readings WHERE why='drift' GROUP BY 1").fetchall()
R.check([d[0] for d in drift] == ["DT-W02"],
        "the fouling probe's readings, and only its, are suspect (drift): %s" % drift)
R.check(con.execute("SELECT count(*) FROM alerts WHERE rule='sensor-check' AND station='DT-W02'"
                    " AND message LIKE '%trạm lân cận%'").fetchone()[0] == 1,
        "a sensor-check alert tells technicians to clean DT-W02's cell")
R.check("DT-W02 drift" in p.stdout and "(suspect: drift)" in p.stdout,
        "the summary shows the drift and that DT-W02's newest salinity is suspect")
R.check(con.execute("SELECT count(*) FROM alerts WHERE rule='bph-rising'").fetchone()[0] >= 1,
        "a rising planthopper catch raised a warning")
con.close()

# `agrictl status --all` against the demo (issue 22): every station's health.
try:
    with open(os.path.join(run_dir, "status.json")) as f:
        health = {h["station"]: h for h in json.load(f)}
except (OSError, ValueError):
    health = {}
bad = []
for s in stations:
    h = health.get(s, {})
    st = h.get("status") or {}
    hub = h.get("hub") or {}
    sensors = {x["name"]: x for x in st.get("sensors", [])}
    want = ["sonde1", "solar"] if s.startswith("DT-W") else ["trap1", "solar"]
    if not (st.get("state") == "online" and st.get("fw") and st.get("ts") and "uptime_s" in st
            and [b["state"] for b in st.get("buses", [])] == ["open"]
            and set(want) <= set(sensors) and all(x.get("last_ok") and x.get("reads_ok", 0) > 0
                                                       for x in sensors.values())
            and isinstance(h.get("alerts"), list) and hub.get("last_seen") and "clock_offset_s" in hub
            and "battery_voltage" in hub):
        bad.append((s, st.get("state"), st.get("buses"), sorted(sensors), sorted(hub)))
R.check(len(health) == len(stations) and not bad,
        "agrictl status --all --json: every station online, its bus open, each sensor's last good read, "
        "alerts, the hub's last seen, clock offset and battery (bad: %s)" % bad[:3])
with open(os.path.join(run_dir, "status.txt")) as f:
    text = f.read()
R.check(all(re.search(r"^%s: online since " % s, text, re.M) for s in stations)
        and text.count("  bus ") == len(stations) and "alerts:" in text,
        "agrictl status --all prints every station's health (%d lines)" % len(text.splitlines()))
R.check(text.startswith("hubs: 1\n") and re.search(r"^  hub agri-gateway-demo: online, heard .* ago", text, re.M),
        "agrictl status --all starts with the hub, heard from: %r" % text[:160])

ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
left = [line for line in ps.splitlines() if run_dir in line]
R.check(not left, "no process left behind (%s)" % left)
R.done()
