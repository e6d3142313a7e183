#!/usr/bin/env python3
"""The SensorThings sink against a local server that checks the OGC
SensorThings API v1.1 request shapes (sta_server.py): 3 stations publish
6,000 readings; the server is down (503) for a while, then stores one
CreateObservations but drops the connection before answering, and the
gateway is kill -9ed once. Every Thing, Sensor, ObservedProperty and
Datastream is created once; every reading arrives once as an Observation
with phenomenonTime = its ts; nothing breaks the spec's shapes. A lost
local id table is recovered by name lookups, creating nothing."""
import collections
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer  # noqa: E402
import sta_server  # noqa: E402
import upstream_support as us  # noqa: E402

STATIONS = ["STA-1", "STA-2", "STA-3"]
BATCHES = 40
PER_BATCH = 50


def observed(srv):
    """(station/sensor/metric, ms) -> count, as the server holds them."""
    names = dict((i, e["name"]) for i, e in srv.state.entities["Datastreams"].items())
    with srv.state.lock:
        return collections.Counter((names[d], ms) for d, ms, _, _ in srv.state.observations)


def main():
    res = harness.Result("test_upstream_sta")
    d = harness.tmpdir()
    db = os.path.join(d, "agri.db")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    srv = sta_server.StaServer(harness.free_port())
    cfg = us.write_config(d, mq.port, sensorthings=srv.url, db=db)
    gw = gateway_peer.Gateway(d, cfg).start()
    stations = {n: gateway_peer.Station(mq.port, n, ack_timeout=3.0) for n in STATIONS}
    for s in stations.values():
        s.connected.wait(10)

    total = len(STATIONS) * BATCHES
    for k in range(total):
        name = STATIONS[k % len(STATIONS)]
        seq = k // len(STATIONS) + 1
        stations[name].publish(seq, gateway_peer.batch(name, seq, n=PER_BATCH))
        if k == total // 4:
            srv.state.down = True
            print("server down", flush=True)
        if k == total // 4 + 20:
            srv.state.down = False
            srv.state.drop_after_commit = 1
            print("server up; the next CreateObservations is stored but not answered", flush=True)
        if k == total // 2:
            harness.wait_for(lambda: srv.state.dropped == 1, 30, what="the dropped answer")
            gw.kill9()
            gw.start()
            print("gateway kill -9ed and restarted", flush=True)
        time.sleep(0.05)
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 120,
                     what="every batch acked")
    want = dict(((a + "/" + b + "/" + c), 0) for a, b, c, _ in us.gateway_readings(db))
    gw_obs = set(("%s/%s/%s" % (a, b, c), t) for a, b, c, t in us.gateway_readings(db))
    harness.wait_for(lambda: set(observed(srv)) >= gw_obs, 60, interval=0.2,
                     what="every reading observed")
    time.sleep(2)
    obs = observed(srv)
    res.check(len(gw_obs) == total * PER_BATCH, "the gateway stored %d readings" % len(gw_obs))
    res.check(set(obs) == gw_obs, "the server holds exactly the gateway's readings")
    dups = sum(1 for v in obs.values() if v > 1)
    res.check(dups == 0, "every observation arrived once (%d duplicated)" % dups)
    res.check(srv.state.dropped == 1, "one answer was lost after the server stored the batch")
    st = srv.state
    for coll, n in (("Things", len(STATIONS)), ("Sensors", len(STATIONS)),
                    ("ObservedProperties", 3), ("Datastreams", len(want))):
        c = collections.Counter(st.created[coll])
        res.check(len(c) == n and max(c.values()) == 1,
                  "%s created once each (%d names, max %d)" % (coll, len(c), max(c.values())))
    res.check(not st.violations, "no spec violations (%s)" % st.violations[:3])
    q = set(qq for _, _, _, qq in st.observations)
    res.check(q == {"ok"}, "resultQuality carries q (%s)" % q)
    log = gw.proc.log_text()
    res.check(log.count("sink down sink=sensorthings") >= 1, "the outage was logged")
    res.check(gw.stop() == 0, "the gateway stops cleanly")

    # The local id table is lost: entities are found by name, not created again.
    con = sqlite3.connect(db)
    con.execute("DELETE FROM upstream_sta_ids")
    con.commit()
    con.close()
    before = dict((k, len(v)) for k, v in st.created.items())
    gw.start()
    for name in STATIONS:
        stations[name].publish(BATCHES + 1, gateway_peer.batch(name, BATCHES + 1, n=PER_BATCH))
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 60,
                     what="the last batches acked")
    harness.wait_for(lambda: len(observed(srv)) == len(gw_obs) + len(STATIONS) * PER_BATCH, 30,
                     interval=0.2, what="the last batches observed")
    after = dict((k, len(v)) for k, v in st.created.items())
    res.check(before == after, "no entity created again after the id table was lost (%s)" % after)
    res.check(max(observed(srv).values()) == 1, "still every observation once")
    for s in stations.values():
        s.close()
    res.check(gw.stop() == 0, "the gateway stops cleanly again")
    srv.stop()
    mq.stop()
    res.done()


if __name__ == "__main__":
    main()
