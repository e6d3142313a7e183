"""agri-gateway: two gateways in one MQTT v5 shared subscription group, each
with its own database, split one province's load: every reading is stored
once across both, both get a share, every batch is acked by the gateway
that committed it. Storage only: a group gateway with alert rules or
forecasts is refused at start, naming the field (each would judge half of
every series; docs/gateway.md)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_gateway_shared")
STATIONS, BATCHES, PER = 4, 300, 6
d = harness.tmpdir()
mq = harness.Mosquitto(os.path.join(d, "mq")).start()

# With forecasts on (the default): refused, nothing started.
bad = gp.write_config(d, mq.port, db="bad.db", client_id="gw-bad", shared_group="province")
p = harness.Proc([harness.bin_path("agri-gateway"), "--config", bad], os.path.join(d, "bad.log"))
rc = p.p.wait(10)
R.check(rc != 0 and "broker.shared_group: storage only" in p.log_text()
        and "forecast.enabled" in p.log_text() and not os.path.exists(os.path.join(d, "bad.db")),
        "a shared-group gateway with forecasts is refused, naming the field (%s)"
        % p.log_text().strip()[-160:])

gws = [gp.Gateway(d, gp.write_config(d, mq.port, db="gw%d.db" % i, client_id="gw%d" % i,
                                     shared_group="province",
                                     extra={"forecast": {"enabled": False}}),
                  name="gw%d" % i).start()
       for i in range(2)]
stations = [gp.Station(mq.port, "SH%02d" % i, ack_timeout=15.0) for i in range(STATIONS)]
for s in stations:
    s.connected.wait(5)
for seq in range(1, BATCHES + 1):
    for s in stations:
        s.publish(seq, gp.batch(s.name, seq, PER))
    time.sleep(0.002)
harness.wait_for(lambda: all(s.pending() == 0 for s in stations), 60, 0.2, what="every batch acked")
R.check(all(s.pending() == 0 for s in stations), "every batch acked")
rows = []
counts = []
for i in range(2):
    r = gp.query(os.path.join(d, "gw%d.db" % i), "SELECT station, sensor, metric, ts FROM v_readings")
    counts.append(len(r))
    rows += r
total = STATIONS * BATCHES * PER
R.check(len(rows) == total and len(set(rows)) == total,
        "each reading stored once across both gateways (%d + %d = %d of %d)" % (counts[0], counts[1], len(rows), total))
R.check(min(counts) > total // 10, "load split between both gateways: %s" % counts)
gaps = gp.query(os.path.join(d, "gw0.db"), "SELECT gaps FROM v_stations")
R.check(all(g[0] is None for g in gaps), "gaps not counted per gateway in a shared group")
R.check(sum(s.resends for s in stations) == 0, "no resends needed")
for g in gws:
    R.check(g.stop() == 0, "%s exits 0" % g.name)
for s in stations:
    s.close()
mq.stop()
R.done()
