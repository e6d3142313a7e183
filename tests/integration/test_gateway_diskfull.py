"""agri-gateway with its database on a full filesystem (a small tmpfs): no
crash, no end-to-end ack without a commit, the failure logged once per
outage (not per retry), and
recovery by itself once space frees; every reading then stored once.
With alert rules loaded whose thresholds are crossed only by batches sent
while the disk is full: after the rollbacks the alert engine (which keeps
no undo images) is rebuilt from the database (logged), and every crossing
is recorded exactly once after recovery (none lost, none doubled). Where
SQLite fails (an INSERT before the engine saw the batch, or the COMMIT
after) is up to SQLite; both must give the same result.
The hub alarm: logged once per outage, on the hub's retained status topic
(<prefix>/hub/<client id>/status) while it lasts, and a hub-storage alert
once the database can be written again.
Then a full disk caused by a station: a hostile station floods big batches
while an honest one reports; once the disk is full neither is acked (the
hub alarm again); when space returns the honest station is acked again
within 30 s, and every batch acked to either is in the database.
Needs mount(8) permission (root); skipped with a message otherwise."""
import atexit
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

d = harness.tmpdir()
fs = os.path.join(d, "fs")
os.makedirs(fs)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", fs],
                  capture_output=True).returncode != 0:
    print("SKIP test_gateway_diskfull: cannot mount a tmpfs here (needs root)")
    sys.exit(0)
atexit.register(lambda: subprocess.run(["umount", "-l", fs], capture_output=True))

R = harness.Result("test_gateway_diskfull")
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
cfg = gp.write_config(d, mq.port, db="fs/agri.db")
rules = harness.write_json(os.path.join(d, "rules.json"), {"rules": [
    # values are seq + i/10: crossed at seq 60, inside the disk-full phase
    {"id": "hi", "metric": "m0", "above": 60, "hysteresis": 1},
    {"id": "wmax", "kind": "window", "metric": "m1", "window_s": 3600, "agg": "max", "above": 65}]})
with open(cfg) as f:
    c = json.load(f)
c["rules_file"] = rules
harness.write_json(cfg, c)
gw = gp.Gateway(d, cfg).start()
hub_status = []
watch = harness.mqtt_client(mq.port, "hub-watch")
watch.on_message = lambda c, u, m: hub_status.append(json.loads(m.payload) if m.payload else None)
watch.subscribe("agri/v1/hub/+/status", qos=1)
st = gp.Station(mq.port, "DF01", ack_timeout=1.0)
st.connected.wait(5)
db = os.path.join(fs, "agri.db")

for seq in range(1, 51):
    st.publish(seq, gp.batch("DF01", seq, 6))
harness.wait_for(lambda: st.pending() == 0, 20, what="first batches acked")
R.check(st.pending() == 0, "before the disk fills: acked")

# Fill the filesystem.
subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(fs, "filler"), "bs=16k"], capture_output=True)
acked_before = set(st.acked)
seq = 51
deadline = time.time() + 30
while time.time() < deadline and "cannot store" not in gw.proc.log_text():
    for _ in range(50):
        st.publish(seq, gp.batch("DF01", seq, 20, sensor="big%d" % (seq % 7)))
        seq += 1
    time.sleep(0.2)
R.check("cannot store" in gw.proc.log_text(), "the full disk is noticed (after %d batches)" % (seq - 51))
time.sleep(3)
R.check(gw.alive(), "gateway keeps running on a full disk")
# No ack without a commit: every acked batch's readings are in the database.
acked = set(st.acked)
stored_seqs = set()
for (v,) in gp.query(db, "SELECT DISTINCT value FROM v_readings WHERE sensor LIKE 'big%' OR sensor = 's1'"):
    stored_seqs.add(int(v))
R.check(acked <= stored_seqs | acked_before, "no ack without commit (%d acked, %d stored)" % (len(acked), len(stored_seqs)))
R.check(st.pending() > 0, "batches wait unacked while the disk is full (%d)" % st.pending())
# Logged once per outage, not once per retry. A rollback can free a little
# space (SQLite gives back what the failed transaction took), so the hub may
# really store a batch or two and fill the disk again: a second outage, its
# end logged between them, is the truth, not a repeat.
log = gw.proc.log_text()
outages = log.count("HUB ALARM")
R.check(1 <= outages <= 3 and log.count("cannot store") == outages
        and log.count("hub alarm over") == outages - 1,
        "logged once per outage, not per retry (%d outages, %d batches retried)"
        % (outages, st.pending()))
harness.wait_for(lambda: hub_status and hub_status[-1] and hub_status[-1]["alarm"], 10,
                 what="the hub alarm on the hub's status topic")
R.check(hub_status[-1]["alarm"]["kind"] == "storage" and not hub_status[-1]["db_writable"] and
        "space" in hub_status[-1]["alarm"]["error"],
        "the hub's retained status carries the alarm: %s" % (hub_status[-1]["alarm"],))

os.unlink(os.path.join(fs, "filler"))
last = seq - 1
harness.wait_for(lambda: st.pending() == 0, 60, 0.5, what="recovery")
R.check(st.pending() == 0, "recovered by itself: every batch acked")
R.check("storing again" in gw.proc.log_text(), "recovery logged")
n, distinct = gp.query(db, "SELECT count(*), count(DISTINCT station||sensor||metric||ts) FROM v_readings")[0]
want = 50 * 6 + (last - 50) * 20
R.check(n == distinct == want, "every reading stored exactly once (%d of %d)" % (n, want))

def crossings():
    return gp.query(db, "SELECT a.rule, a.sensor, count(*) FROM alert_events e JOIN alerts a"
                        " ON a.id = e.alert_id WHERE e.state = 'active' AND a.rule != 'hub-storage'"
                        " GROUP BY a.id ORDER BY a.rule, a.sensor")


# A crossing whose transaction was rolled back is evaluated again from the
# store: its resent readings are late (their timestamps are old), so the
# rebuilt keys hold them until the station settles (late_settle_s, 10 s;
# docs/alerts.md "Reading order"). Wait for all 14, then a little longer
# for a double to show.
want_raised = [(r, "big%d" % k, 1) for r in ("hi", "wmax") for k in range(7)]
harness.wait_for(lambda: len(crossings()) >= len(want_raised), 40, 0.5, what="the crossings")
time.sleep(1)
raised = crossings()
R.check(raised == want_raised,
        "each sensor's crossing recorded once across the rollbacks (%s)" % raised)
log = gw.proc.log_text()
R.check("alert engine rebuilt from the database" in log and "cannot rebuild" not in log
        and "cannot reload" not in log, "the alert engine rebuilt from the database after rollbacks")
harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM v_alerts WHERE rule = 'hub-storage'")[0][0] == 1,
                 10, what="the hub-storage alert")
hub = gp.query(db, "SELECT id, severity, message FROM v_alerts WHERE rule = 'hub-storage'")
R.check(hub and hub[0][0] == "hub-storage/gw-test" and hub[0][1] == "critical" and
        "could not store readings" in hub[0][2] and "No space left" in hub[0][2],
        "once it can write, the hub raises its storage alert: %s" % (hub[0] if hub else None,))
harness.wait_for(lambda: hub_status and hub_status[-1] and hub_status[-1]["alarm"] is None, 70,
                 what="the hub's status without the alarm")
R.check(hub_status[-1]["alarm"] is None and hub_status[-1]["db_writable"],
        "the hub's status is clear again")

# A full disk caused by a station. Leave ~1 MiB, then one station floods.
free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(fs, "ballast"), "bs=64k",
                "count=%d" % max(1, (free - 1024 * 1024) // 65536)], capture_output=True)
evil = gp.Station(mq.port, "DF-EVIL", ack_timeout=1.0)
honest = gp.Station(mq.port, "DF-OK", ack_timeout=1.0)
evil.connected.wait(5)
honest.connected.wait(5)
alarms = gw.proc.log_text().count("HUB ALARM")
eseq = hseq = 1
deadline = time.time() + 60
while time.time() < deadline and gw.proc.log_text().count("HUB ALARM") == alarms:
    for _ in range(5):
        evil.publish(eseq, gp.batch("DF-EVIL", eseq, 500, sensor="e%d" % (eseq % 50)))
        eseq += 1
    honest.publish(hseq, gp.batch("DF-OK", hseq, 6))
    hseq += 1
    time.sleep(0.1)
R.check(gw.proc.log_text().count("HUB ALARM") == alarms + 1,
        "a station's flood fills the disk: the hub alarm is raised (%d big batches)" % eseq)
for _ in range(20):  # the honest station keeps reporting meanwhile
    honest.publish(hseq, gp.batch("DF-OK", hseq, 6))
    hseq += 1
    time.sleep(0.1)
R.check(honest.pending() > 0, "no ack while the disk is full (%d honest batches waiting)" % honest.pending())
evil_acked_full = set(evil.acked)
evil.close()  # the flood stops; space returns
t_space = time.time()
os.unlink(os.path.join(fs, "ballast"))
harness.wait_for(lambda: honest.pending() == 0, 30, 0.2, what="honest station acked again")
R.check(honest.pending() == 0, "space returned: the honest station acked again after %.1f s (<= 30)"
        % (time.time() - t_space))
stored = {(st_, int(v)) for st_, v in gp.query(db, "SELECT DISTINCT station, CAST(value AS INT) FROM v_readings"
                                                " WHERE station IN ('DF-EVIL', 'DF-OK')")}
R.check(all(("DF-OK", s_) in stored for s_ in honest.acked) and
        all(("DF-EVIL", s_) in stored for s_ in evil_acked_full),
        "nothing acked is lost: %d honest and %d flood batches acked, all stored"
        % (len(honest.acked), len(evil_acked_full)))
R.check(gw.stop() == 0, "gateway exits 0")
watch.loop_stop()
honest.close()
st.close()
mq.stop()
R.done()
