"""agri-gateway: invalid input is kept, never silently dropped (docs/interfaces.md §4).
1,000 malformed messages interleaved with valid batches: all dead-lettered
with a reason, all valid readings stored, the gateway still running. Also:
a partly invalid batch keeps its valid readings and is acked; a station
mismatch is never acked; status and the Last Will fill the registry.
Then the bounds (issue: a station must not fill the hub's disk with dead
letters): with the default budget of 60 dead letters a minute a station's
300 malformed messages store about 120 (the 2-minute burst) and count the
rest, per kind, in v_dead_letter_counts; each dead letter keeps the size
and SHA-256 of its payload, and a payload over 8 KiB only its prefix."""
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_gateway_dead_letters")
d = harness.tmpdir()
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
# This part checks that every malformed message is kept: a budget above the flood.
gw = gp.Gateway(d, gp.write_config(d, mq.port, extra={"limits": {"dead_letters_per_min": 100000}})).start()
st = gp.Station(mq.port, "DL01", ack_timeout=3.0)
st.connected.wait(5)


def malformed(i):
    b = gp.batch("DL01", 100000 + i, 2)
    kind = i % 8
    if kind == 0:
        return "{not json"
    if kind == 1:
        b["v"] = 2
    elif kind == 2:
        del b["readings"]
    elif kind == 3:
        b["readings"] = []
    elif kind == 4:
        b["seq"] = "x"
    elif kind == 5:
        b["extra"] = 1
    elif kind == 6:
        b["readings"][0]["value"] = "high"
        b["readings"][1]["value"] = "low"  # every reading invalid
    else:
        return "\xff\xfe binary"
    return json.dumps(b)


valid = 0
for i in range(1000):
    st.raw("telemetry", malformed(i))
    if i % 2 == 0:
        valid += 1
        st.publish(valid, gp.batch("DL01", valid, 6))

# A partly invalid batch: 5 valid readings, one wrong.
part = gp.batch("DL01", 900001, 6)
part["readings"][2]["value"] = "oops"
st.publish(900001, part)
# A batch whose station differs from its topic: dead letter, never acked.
st.raw("telemetry", json.dumps(gp.batch("OTHER", 900002, 3)))
# Status, then the Last Will form.
st.raw("status", json.dumps({"v": 1, "station": "DL01", "state": "online", "fw": "1.0.3",
                             "board": "rpi-cm4", "config_version": 7, "spool_depth": 2,
                             "spool_dropped": 0}))
harness.wait_for(lambda: st.pending() == 0, 60, 0.2, what="valid batches acked")
R.check(st.pending() == 0, "all %d valid batches and the partly invalid one acked" % valid)
db = os.path.join(d, "agri.db")
harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM v_dead_letters")[0][0] >= 1002, 20, 0.2,
                 what="dead letters")
n = gp.query(db, "SELECT count(*) FROM v_readings")[0][0]
R.check(n == valid * 6 + 5, "valid readings all stored (%d, want %d)" % (n, valid * 6 + 5))
dl = gp.query(db, "SELECT topic, reason, payload, received_at FROM v_dead_letters")
R.check(len(dl) == 1002, "1,000 malformed + 1 partly invalid + 1 mismatch dead-lettered (%d)" % len(dl))
R.check(all(r[1] for r in dl), "every dead letter has a reason")
R.check(all(r[0] == "agri/v1/DL01/telemetry" for r in dl), "dead letters keep their topic")
R.check(all(len(r[3]) == 24 and r[3].endswith("Z") for r in dl), "received_at is RFC 3339 with ms")
R.check(any(r[2] == "{not json" for r in dl), "payload kept whole")
reasons = set(r[1] for r in dl)
print("sample reasons:", sorted(reasons)[:8])
R.check(any("differs from the topic" in r for r in reasons), "station mismatch reason")
R.check(any("invalid reading" in r for r in reasons), "partly invalid batch reason")
R.check(900002 not in st.acked, "mismatched batch not acked")
harness.wait_for(lambda: gp.query(db, "SELECT fw FROM v_stations WHERE station='DL01'")[0][0] == "1.0.3", 10,
                 what="status stored")
row = gp.query(db, "SELECT state, fw, board, config_version FROM v_stations WHERE station='DL01'")[0]
R.check(row == ("online", "1.0.3", "rpi-cm4", 7), "status fills the registry: %s" % (row,))
st.raw("status", json.dumps({"v": 1, "station": "DL01", "state": "offline"}))
harness.wait_for(lambda: gp.query(db, "SELECT state FROM v_stations WHERE station='DL01'")[0][0] == "offline",
                 10, what="LWT stored")
row = gp.query(db, "SELECT state, fw FROM v_stations WHERE station='DL01'")[0]
R.check(row == ("offline", "1.0.3"), "the Last Will sets offline, keeps the rest")
ts = gp.query(db, "SELECT ts FROM v_readings ORDER BY ts LIMIT 1")[0][0]
R.check(ts == gp.iso(gp.T0_MS + gp.SEQ_MS), "v_readings.ts is RFC 3339 UTC with ms: %s" % ts)
R.check(gw.alive(), "gateway still running")
t0 = time.time()
rc = gw.stop()
R.check(rc == 0 and time.time() - t0 < 5, "SIGTERM: exit 0 within 5 s (%.2fs)" % (time.time() - t0))
st.close()

# The bounds, with the default limits.
gw2 = gp.Gateway(d, gp.write_config(d, mq.port, db="bounded.db", client_id="gw-bounded"),
                 name="gw-bounded").start()
bad = gp.Station(mq.port, "DL02", ack_timeout=30.0)
bad.connected.wait(5)
for i in range(300):
    bad.raw("telemetry", "{not json %d" % i)
other = gp.Station(mq.port, "DL03", ack_timeout=30.0)
other.connected.wait(5)
other.raw("telemetry", "x" * 20000)
db2 = os.path.join(d, "bounded.db")


def counts():
    return {k: (s_, u) for k, s_, u, _ in gp.query(db2, "SELECT * FROM v_dead_letter_counts")}


harness.wait_for(lambda: sum(s_ + u for s_, u in counts().values()) >= 301, 20, 0.2,
                 what="dead letters counted")
stored = gp.query(db2, "SELECT count(*) FROM dead_letters WHERE station = 'DL02'")[0][0]
c = counts()
R.check(110 <= stored <= 130, "a station's 300 malformed messages: %d stored (budget: 120 at once)" % stored)
R.check(c["invalid"][0] + c["invalid"][1] == 301 and c["invalid"][1] == 300 - stored,
        "the rest counted, not stored: v_dead_letter_counts invalid = %s" % (c["invalid"],))
row = gp.query(db2, "SELECT size, length(CAST(payload AS BLOB)), sha256, kind FROM v_dead_letters"
               " WHERE station = 'DL03'")
R.check(row and row[0][0] == 20000 and row[0][1] == 8192 and
        row[0][2] == hashlib.sha256(b"x" * 20000).hexdigest() and row[0][3] == "invalid",
        "another station's 20 KiB dead letter stored: size, 8 KiB prefix, SHA-256 (%s)"
        % ((row[0][:2], row[0][3]) if row else None,))
# The technician's view, straight from the database (the gateway may be down).
res = harness.run([harness.bin_path("agrictl"), "dead-letters", "--db", db2, "--station", "DL03", "--json"])
out = json.loads(res.stdout) if res.returncode == 0 else {}
R.check(out.get("dead_letters") and out["dead_letters"][0]["size"] == 20000 and
        out["dead_letters"][0]["sha256"] == hashlib.sha256(b"x" * 20000).hexdigest() and
        {c_["kind"]: c_["suppressed"] for c_ in out["counts"]}.get("invalid") == 300 - stored,
        "agrictl dead-letters --json lists them with the counters (rc %d)" % res.returncode)
res = harness.run([harness.bin_path("agrictl"), "dead-letters", "--db", db2, "--limit", "3"])
R.check(res.returncode == 0 and "suppressed" in res.stdout and res.stdout.count("bytes sha256") == 3,
        "agrictl dead-letters prints a table and the newest 3:\n%s" % res.stdout)
R.check(gw2.stop() == 0, "bounded gateway stops cleanly")
bad.close()
other.close()
mq.stop()
R.done()
