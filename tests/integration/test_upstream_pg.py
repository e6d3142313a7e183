#!/usr/bin/env python3
"""The PostgreSQL sink, exactly once through an outage and a crash
(issue 7 acceptance): 50,000 readings from 5 stations are published through
a real mosquitto; PostgreSQL (a real server, initdb in a temp dir) is
stopped for 30 s in the middle; the gateway is kill -9ed once during the
outage and restarts into it. At the end
agri.readings holds exactly the gateway's readings, values included: no
gaps, no duplicates; the outage is logged once a process and its recovery
once. Then the crash window between PostgreSQL's commit and the cursor
update is replayed on purpose (cursor rewound by 20,000): nothing changes."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer  # noqa: E402
import upstream_support as us  # noqa: E402

STATIONS = ["UP-%02d" % i for i in range(1, 6)]
BATCHES = 100          # per station
PER_BATCH = 100        # readings per batch
RATE = 10.0            # batches/s, all stations together


def main():
    res = harness.Result("test_upstream_pg")
    d = harness.tmpdir()
    db = os.path.join(d, "agri.db")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    pg = us.Postgres(d, fsync=False).start()
    # agri.readings as a database made before suspect reasons existed: the
    # sink adds the why column (docs/interfaces.md §12).
    pg.psql("CREATE SCHEMA agri; CREATE TABLE agri.readings(station text NOT NULL,"
            " sensor text NOT NULL, metric text NOT NULL, ts timestamptz NOT NULL,"
            " value double precision, unit text, q text, received_at timestamptz,"
            " PRIMARY KEY (station, sensor, metric, ts))")
    cfg = us.write_config(d, mq.port, postgres=pg.conninfo, db=db)
    gw = gateway_peer.Gateway(d, cfg).start()
    stations = {n: gateway_peer.Station(mq.port, n, ack_timeout=3.0) for n in STATIONS}
    for s in stations.values():
        s.connected.wait(10)

    total = len(STATIONS) * BATCHES
    expected = set()
    t0 = time.time()
    pg_stopped_at = pg_started_at = killed_at = None
    for k in range(total):
        name = STATIONS[k % len(STATIONS)]
        seq = k // len(STATIONS) + 1
        b = gateway_peer.batch(name, seq, n=PER_BATCH)
        for r in b["readings"]:
            expected.add((name, r["sensor"], r["metric"], r["ts"]))
        stations[name].publish(seq, b)
        now = time.time() - t0
        if pg_stopped_at is None and k >= total // 5:
            pg.stop()
            pg_stopped_at = time.time()
            print("postgres stopped after %d batches" % k, flush=True)
        if pg_stopped_at and pg_started_at is None and time.time() - pg_stopped_at >= 30:
            pg.start()
            pg_started_at = time.time()
            print("postgres started again after %.1f s" % (pg_started_at - pg_stopped_at),
                  flush=True)
        if pg_stopped_at and killed_at is None and time.time() - pg_stopped_at >= 15:
            gw.kill9()
            killed_at = time.time()
            gw.start()
            print("gateway kill -9ed and restarted during the outage", flush=True)
        time.sleep(max(0.0, (k + 1) / RATE - now))
    # The outage may outlast the stream.
    if pg_started_at is None:
        time.sleep(max(0.0, 30 - (time.time() - pg_stopped_at)))
        pg.start()
        pg_started_at = time.time()
    if killed_at is None:
        gw.kill9()
        gw.start()
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 120,
                     what="every batch acked")
    want = len(expected)
    t_catch = time.time()
    harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM agri.readings")) >= want, 120,
                     interval=0.5, what="postgres caught up")
    print("postgres caught up %.1f s after the last ack" % (time.time() - t_catch), flush=True)
    time.sleep(2)  # anything late would show as a duplicate or an extra row

    gw_rows = us.gateway_readings(db)
    pg_rows = us.pg_readings(pg)
    pg_set = set(pg_rows)
    exp = set((a, b, c, _ms(t)) for a, b, c, t in expected)
    res.check(len(exp) == len(STATIONS) * BATCHES * PER_BATCH, "50,000 distinct readings published")
    res.check(gw_rows == exp, "the gateway stored every published reading (%d)" % len(gw_rows))
    res.check(len(pg_rows) == len(pg_set), "no duplicates in agri.readings (%d rows)" % len(pg_rows))
    res.check(pg_set == gw_rows, "agri.readings == the gateway's readings (missing %d, extra %d)"
              % (len(gw_rows - pg_set), len(pg_set - gw_rows)))
    # Values, units and quality too, row by row.
    diff = pg.psql("SELECT count(*) FROM agri.readings WHERE unit <> 'g/L' OR q <> 'ok'"
                   " OR value IS NULL")
    res.check(diff == "0", "units, q and values arrived")
    gwv = dict(((a, b, c, int(t)), v) for a, b, c, t, v in gateway_peer.query(
        db, "SELECT st.name, se.sensor, se.metric, r.ts, r.value FROM readings r"
            " JOIN series se ON se.id = r.series_id JOIN stations st ON st.id = se.station_id"))
    out = pg.psql("SELECT station, sensor, metric, (extract(epoch from ts) * 1000)::bigint,"
                  " value FROM agri.readings")
    bad = 0
    for line in out.splitlines():
        a, b, c, t, v = line.split("|")
        if abs(gwv.get((a, b, c, int(t)), 1e300) - float(v)) > 1e-9:
            bad += 1
    res.check(bad == 0, "every value equals the gateway's (%d differ)" % bad)
    harness.wait_for(lambda: pg.psql("SELECT count(*) FROM agri.stations") == str(len(STATIONS)),
                     15, interval=0.5, what="stations mirrored")
    res.check(True, "agri.stations mirrors the %d stations" % len(STATIONS))
    log = gw.proc.log_text()
    down = len(re.findall(r"sink down sink=postgres", log))
    up = re.findall(r"sink recovered sink=postgres caught_up_rows=(\d+)", log)
    # One outage line per gateway process that saw the outage (at most 2).
    res.check(1 <= down <= 2, "the outage was logged once per process (%d lines)" % down)
    res.check(len(up) >= 1 and int(up[-1]) > 0,
              "the recovery was logged with the rows caught up (%s)" % ",".join(up))
    print("log lines:\n  " + "\n  ".join(l for l in log.splitlines() if "upstream" in l))
    backlog = gateway_peer.query(db, "SELECT (SELECT max(seq) FROM upstream_queue) - seq"
                                     " FROM upstream_cursor WHERE sink = 'postgres'")
    res.check(backlog and (backlog[0][0] or 0) == 0, "the sink's backlog is empty")
    res.check(gw.stop() == 0, "the gateway stops cleanly")

    # The crash window: PostgreSQL committed batches whose cursor update
    # never happened. Rewinding the cursor replays 20,000 committed rows.
    import sqlite3
    con = sqlite3.connect(db)
    con.execute("UPDATE upstream_cursor SET seq = seq - 20000 WHERE sink = 'postgres'")
    con.commit()
    con.close()
    gw.start()
    harness.wait_for(lambda: gateway_peer.query(
        db, "SELECT coalesce((SELECT max(seq) FROM upstream_queue), 0) - seq"
            " FROM upstream_cursor WHERE sink = 'postgres'")[0][0] <= 0, 60, interval=0.2,
        what="the replay taken")
    pg_rows = us.pg_readings(pg)
    res.check(len(pg_rows) == len(gw_rows) and set(pg_rows) == gw_rows,
              "a replay of 20,000 committed rows adds nothing (%d rows)" % len(pg_rows))
    # A suspect reading's reason reaches the agriculture database.
    st = stations[STATIONS[0]]
    base = int(time.time() * 1000) // 1000 * 1000 - 3600 * 1000
    sus = {"v": 1, "station": STATIONS[0], "seq": BATCHES + 1, "sent_at": gateway_peer.iso(base),
           "readings": [{"ts": gateway_peer.iso(base), "sensor": "sonde9", "metric": "conductivity",
                         "value": 0.0, "unit": "mS/cm", "q": "suspect", "why": "dry"},
                        {"ts": gateway_peer.iso(base), "sensor": "sonde9", "metric": "water_temperature",
                         "value": 28.1, "unit": "°C", "q": "ok"}]}
    st.publish(BATCHES + 1, sus)
    harness.wait_for(lambda: pg.psql("SELECT count(*) FROM agri.readings WHERE sensor = 'sonde9'") == "2",
                     30, interval=0.3, what="the suspect batch forwarded")
    got = pg.psql("SELECT metric, q, coalesce(why, '-') FROM agri.readings WHERE sensor = 'sonde9'"
                  " ORDER BY metric")
    res.check(got.splitlines() == ["conductivity|suspect|dry", "water_temperature|ok|-"],
              "a suspect reading's reason is forwarded, an ok one has none (%s)" % got.replace("\n", "; "))
    for s in stations.values():
        s.close()
    res.check(gw.stop() == 0, "the gateway stops cleanly after the replay")
    pg.stop()
    mq.stop()
    res.done()


def _ms(iso):
    import calendar
    return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(iso[20:23])


if __name__ == "__main__":
    main()
