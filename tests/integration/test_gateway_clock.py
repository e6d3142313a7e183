"""A station's clock is never trusted (issue: one reading stamped years ahead
made every true reading "old" for the alert engine, so that sensor never
alerted again).

A station whose RTC is 5 years ahead sends one reading; then, its clock
fixed, true readings crossing a threshold. The crossing raises; the future
reading is a dead letter of kind "clock" (the rest of its batch stored);
the station gets one "clock" alert for technicians. Readings 20 years back
are refused the same way. A status whose clock is ahead shows the offset in
v_stations.clock_offset_s and raises the clock alert too; another station
is untouched throughout."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_gateway_clock")
d = harness.tmpdir()
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
cfg = gp.write_config(d, mq.port)
rules = harness.write_json(os.path.join(d, "rules.json"), {"rules": [
    {"id": "salinity-high", "metric": "salinity", "above": 4.0, "hysteresis": 0.3}]})
with open(cfg) as f:
    c = json.load(f)
c["rules_file"] = rules
harness.write_json(cfg, c)
gw = gp.Gateway(d, cfg).start()
db = os.path.join(d, "agri.db")
st = gp.Station(mq.port, "DT-CLK", ack_timeout=2.0)
ok = gp.Station(mq.port, "DT-OK", ack_timeout=2.0)
st.connected.wait(5)
ok.connected.wait(5)
now = int(time.time() * 1000)
YEAR = 365 * 86400 * 1000


def sal(ts, v):
    return {"ts": gp.iso(ts), "sensor": "sonde1", "metric": "salinity", "value": v,
            "unit": "g/L", "q": "ok"}


def tel(station, seq, readings):
    return {"v": 1, "station": station, "seq": seq, "sent_at": gp.iso(now), "readings": readings}


# 1. One reading 5 years ahead, with one true reading in the same batch.
st.publish(1, tel("DT-CLK", 1, [sal(now + 5 * YEAR, 1.0), sal(now - 60_000, 1.0)]))
# 2. True readings crossing 4 g/L.
st.publish(2, tel("DT-CLK", 2, [sal(now - 30_000 + i * 1000, v) for i, v in enumerate((2.0, 3.5, 4.2, 4.5))]))
# 3. Readings 20 years back (a dead RTC battery reads 2006; before 1970 the decoder refuses the timestamp itself).
st.publish(3, tel("DT-CLK", 3, [sal(now - 20 * YEAR, 9.0)]))
ok.publish(1, tel("DT-OK", 1, [sal(now - 1000, 4.6)]))
harness.wait_for(lambda: st.pending() == 0 and ok.pending() == 0, 20, what="batches acked")
R.check(st.pending() == 0, "every batch acked end to end (a wrong clock is content, not a reason to resend)")
harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM v_alerts WHERE rule = 'clock'")[0][0] == 1, 10,
                 what="clock alert")
raised = gp.query(db, "SELECT id FROM v_alerts WHERE rule = 'salinity-high' AND state = 'active' ORDER BY id")
R.check(raised == [("salinity-high/DT-CLK/sonde1",), ("salinity-high/DT-OK/sonde1",)],
        "the true crossing raises after a reading 5 years ahead (%s)" % raised)
dl = gp.query(db, "SELECT kind, station, reason FROM v_dead_letters ORDER BY received_at")
R.check(len(dl) == 2 and all(k == "clock" and s == "DT-CLK" for k, s, _ in dl),
        "the future and the ancient reading are clock dead letters: %s" % dl)
R.check(dl and "5.0 years ahead" in dl[0][2] and "20.0 years behind" in dl[-1][2],
        "the reasons say how far off: %s" % [r for _, _, r in dl])
n = gp.query(db, "SELECT count(*) FROM v_readings WHERE station = 'DT-CLK'")[0][0]
R.check(n == 5, "the rest of each batch stored (%d of 5 true readings)" % n)
R.check(gp.query(db, "SELECT count(*) FROM v_readings WHERE ts > '2030'")[0][0] == 0,
        "nothing stamped in the future is stored")
clk = gp.query(db, "SELECT id, severity, state, message FROM v_alerts WHERE rule = 'clock'")
R.check(clk and clk[0][0] == "clock/DT-CLK" and clk[0][2] == "active" and "5.0 years ahead" in clk[0][3],
        "one clock alert for the station, with the offset: %s" % (clk[0] if clk else None,))

# 4. Status with a clock 2 hours ahead: the offset is shown.
ok.raw("status", json.dumps({"v": 1, "station": "DT-OK", "state": "online", "fw": "1.0",
                             "ts": gp.iso(now + 2 * 3600 * 1000)}))
harness.wait_for(lambda: (gp.query(db, "SELECT clock_offset_s FROM v_stations WHERE station = 'DT-OK'")[0][0]
                          or 0) > 7000, 10, what="clock offset")
off = gp.query(db, "SELECT clock_offset_s FROM v_stations WHERE station = 'DT-OK'")[0][0]
R.check(7100 < off < 7300, "v_stations.clock_offset_s shows the station's clock 2 h ahead (%.0f s)" % off)
harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM v_alerts WHERE id = 'clock/DT-OK'")[0][0] == 1,
                 10, what="status clock alert")
R.check(True, "a status 2 h ahead raises the clock alert of that station")
R.check(gw.alive() and gw.stop() == 0, "gateway running, exits 0")
st.close()
ok.close()
mq.stop()
R.done()
