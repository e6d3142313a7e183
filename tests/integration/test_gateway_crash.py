"""agri-gateway acceptance: 20,000 readings published by stations speaking
the end-to-end ack protocol while the gateway is kill -9ed 5 times and
restarted: every reading is in v_readings exactly once, every batch acked.
AGRI_GW_LONG=1 multiplies the load by 5."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_gateway_crash")
scale = 5 if os.environ.get("AGRI_GW_LONG") else 1
STATIONS, BATCHES, PER = 5, 800 * scale, 5  # 20,000 readings by default

d = harness.tmpdir()
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
gw = gp.Gateway(d, gp.write_config(d, mq.port)).start()
stations = [gp.Station(mq.port, "ST%02d" % i, ack_timeout=2.0) for i in range(STATIONS)]
for s in stations:
    s.connected.wait(5)

expected = set()
for s in stations:
    for seq in range(1, BATCHES + 1):
        for r in gp.batch(s.name, seq, PER)["readings"]:
            expected.add((s.name, r["sensor"], r["metric"], r["ts"]))


def publisher():
    for seq in range(1, BATCHES + 1):
        for s in stations:
            s.publish(seq, gp.batch(s.name, seq, PER))
        time.sleep(0.01 / scale)


t = threading.Thread(target=publisher)
t.start()
kills = 0
while kills < 5:
    time.sleep(1.5)
    gw.kill9()
    kills += 1
    time.sleep(0.3)
    gw.start()
t.join()
R.check(kills == 5, "gateway kill -9ed 5 times during the stream")
harness.wait_for(lambda: all(s.pending() == 0 for s in stations), 120, 0.5,
                 what="every batch acked")
R.check(all(s.pending() == 0 for s in stations), "every batch acked end to end")
db = os.path.join(d, "agri.db")
rows = gp.query(db, "SELECT station, sensor, metric, ts FROM v_readings")
R.check(len(rows) == len(expected) == STATIONS * BATCHES * PER,
        "v_readings has %d rows for %d readings" % (len(rows), len(expected)))
R.check(len(set(rows)) == len(rows), "no reading stored twice")
R.check(set(rows) == expected, "every published reading is stored")
st = gp.query(db, "SELECT station, last_seq, gaps FROM v_stations ORDER BY station")
R.check(all(r[1] == BATCHES and r[2] == 0 for r in st), "v_stations: last_seq %d, no gaps: %s" % (BATCHES, st[:2]))
R.check(gp.query(db, "PRAGMA integrity_check")[0][0] == "ok", "database integrity ok")
print("resends:", sum(s.resends for s in stations))
R.check(gw.stop() == 0, "gateway exits 0 on SIGTERM")
for s in stations:
    s.close()
mq.stop()
R.done()
