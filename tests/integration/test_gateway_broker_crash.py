"""agri-gateway acceptance: the broker is kill -9ed and restarted mid-stream
(losing its in-memory queues and the gateway's session): stations resend
what was never acked end to end, and every reading is stored exactly once."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_gateway_broker_crash")
STATIONS, BATCHES, PER = 4, 500, 6

d = harness.tmpdir()
mqdir = os.path.join(d, "mq")
mq = harness.Mosquitto(mqdir).start()
gw = gp.Gateway(d, gp.write_config(d, mq.port)).start()
stations = [gp.Station(mq.port, "BR%02d" % i, ack_timeout=2.0) for i in range(STATIONS)]
for s in stations:
    s.connected.wait(5)


def publisher():
    for seq in range(1, BATCHES + 1):
        for s in stations:
            s.publish(seq, gp.batch(s.name, seq, PER))
        time.sleep(0.008)


t = threading.Thread(target=publisher)
t.start()
time.sleep(1.5)
mq.kill9()
time.sleep(1.0)
mq = harness.Mosquitto(mqdir, port=mq.port).start()
time.sleep(1.5)
mq.kill9()
mq = harness.Mosquitto(mqdir, port=mq.port).start()
t.join()
harness.wait_for(lambda: all(s.pending() == 0 for s in stations), 90, 0.5, what="every batch acked")
R.check(all(s.pending() == 0 for s in stations), "every batch acked after two broker crashes")
R.check(gw.alive(), "gateway still running")
db = os.path.join(d, "agri.db")
n, distinct = gp.query(db, "SELECT count(*), count(DISTINCT station||sensor||metric||ts) FROM v_readings")[0]
R.check(n == distinct == STATIONS * BATCHES * PER, "every reading stored exactly once (%d/%d)" % (n, STATIONS * BATCHES * PER))
R.check("connected url" in gw.proc.log_text(), "gateway reconnected")
print("resends:", sum(s.resends for s in stations))
R.check(gw.stop() == 0, "gateway exits 0")
for s in stations:
    s.close()
mq.stop()
R.done()
