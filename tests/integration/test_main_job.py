"""The main job (issue 11): `scripts/run --duration 90` (what `make run
DURATION=90` runs) brings up the whole province in a box headless, and at
the end: readings from all 21 stations were stored live, at least one
salinity alert at an estuary station and one planthopper peak alert were
raised and notified, no inland (fresh) station raised a salinity alert,
the run reported itself healthy (exit 0) and left no process behind."""
import json
import os
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

notes = [json.loads(line) for line in open(os.path.join(run_dir, "notifications.log")) if line.strip()]
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
R.check(con.execute("SELECT count(*) FROM forecasts WHERE doc IS NOT NULL").fetchone()[0] >= 4,
        "salinity forecasts were made for the water stations")
con.close()

ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
left = [line for line in ps.splitlines() if run_dir in line]
R.check(not left, "no process left behind (%s)" % left)
R.done()
