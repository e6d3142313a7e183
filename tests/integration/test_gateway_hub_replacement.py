#!/usr/bin/env python3
"""A dead hub replaced from yesterday's backup (issue 25; docs/recovery.md),
end to end with real processes: mosquitto, PostgreSQL, agri-gateway and
five station peers that keep every batch until it is acked end to end
(gateway_peer.Station, the spool's contract).

1. The hub ingests and forwards to PostgreSQL; `agri-gateway backup` takes
   "yesterday's" backup while it ingests (no stop), and the scheduled
   backup (gateway.json `backup`) appears in its directory by itself.
2. The hub goes on ingesting ("today"), then dies: kill -9, and its
   directory is gone for good; the broker on it too (a new mosquitto with
   an empty persistence directory: the broker is re-provisioned).
3. The stations keep measuring while there is no hub: their batches wait
   unacked.
4. On a new, empty directory: `agri-gateway restore` refuses a missing or
   damaged backup, restores yesterday's one, refuses to overwrite without
   --force and while the new gateway runs; the new gateway starts.
5. The stations' spools fill the gap; the forwarder resumes from the
   backup's cursor (the replay is absorbed by PostgreSQL's key).

Checked: PostgreSQL holds every reading the stations ever produced exactly
once (set and count, values included); the new hub holds the backup's
readings plus everything sent since the old hub died; what the old hub
acked after the backup is in PostgreSQL only (counted, as recovery.md
says)."""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import upstream_support as us  # noqa: E402

STATIONS = ["HR-%02d" % i for i in range(1, 6)]
PER_BATCH = 6
RATE = 40.0  # batches/s, all stations together


def write_config(d, mq_port, pg, backup_dir=None):
    cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % mq_port, "client_id": "gw-hub",
                      "keepalive_s": 10},
           "db": {"path": os.path.join(d, "agri.db"), "retention_days": 400},
           "upstream": {"postgres": {"conninfo": pg.conninfo}}}
    if backup_dir:
        cfg["backup"] = {"dir": backup_dir, "every_h": 24, "keep": 2}
    return harness.write_json(os.path.join(d, "gateway.json"), cfg)


def cli(*args, timeout=120):
    t0 = time.time()
    r = subprocess.run([harness.bin_path("agri-gateway")] + list(args), capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr, time.time() - t0


class Feed:
    """The stations' production: seq per station, every reading kept."""

    def __init__(self, stations):
        self.stations = stations
        self.seq = {n: 0 for n in stations}
        self.readings = {}  # (station, sensor, metric, ts ms) -> value

    def run(self, batches):
        t0 = time.time()
        for k in range(batches):
            name = STATIONS[k % len(STATIONS)]
            self.seq[name] += 1
            b = gp.batch(name, self.seq[name], n=PER_BATCH)
            for r in b["readings"]:
                self.readings[(name, r["sensor"], r["metric"], ts_ms(r["ts"]))] = r["value"]
            self.stations[name].publish(self.seq[name], b)
            time.sleep(max(0.0, (k + 1) / RATE - (time.time() - t0)))


def ts_ms(iso):
    import calendar
    base, frac = iso[:-1].split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac)


def pending(stations):
    return sum(s.pending() for s in stations.values())


def main():
    res = harness.Result("test_gateway_hub_replacement")
    root = harness.tmpdir("agri-hub-")
    old, new, vault = (os.path.join(root, x) for x in ("old-hub", "new-hub", "vault"))
    for x in (old, new, vault):
        os.makedirs(x)
    pg = us.Postgres(root, fsync=False).start()
    mq = harness.Mosquitto(os.path.join(old, "mq")).start()
    cfg_old = write_config(old, mq.port, pg, backup_dir=os.path.join(old, "backups"))
    gw = gp.Gateway(old, cfg_old, name="old-hub").start()
    stations = {n: gp.Station(mq.port, n, ack_timeout=2.0) for n in STATIONS}
    for s in stations.values():
        s.connected.wait(10)
    feed = Feed(stations)

    # 1. Yesterday: ingest, forward, a backup while ingesting.
    feed.run(400)
    import threading
    out = {}
    t = threading.Thread(target=lambda: out.update(r=cli("backup", "--config", cfg_old,
                                                         os.path.join(vault, "yesterday.db"))))
    t.start()
    feed.run(200)  # the backup runs while batches keep arriving
    t.join()
    rc, text, secs = out["r"]
    print(text.strip(), flush=True)
    res.check(rc == 0 and os.path.exists(os.path.join(vault, "yesterday.db")),
              "agri-gateway backup while ingesting: exit %d in %.2f s" % (rc, secs))
    res.check(not os.path.exists(os.path.join(vault, "yesterday.db-wal")),
              "the backup is one standalone file (no -wal beside it)")
    in_backup = set((a, b, c, int(t)) for a, b, c, t in gp.query(
        os.path.join(vault, "yesterday.db"),
        "SELECT st.name, se.sensor, se.metric, r.ts FROM readings r JOIN series se"
        " ON se.id = r.series_id JOIN stations st ON st.id = se.station_id"))
    res.check(0 < len(in_backup) <= len(feed.readings),
              "the backup holds %d of the %d readings produced by then"
              % (len(in_backup), len(feed.readings)))
    harness.wait_for(lambda: any(f.startswith("agri-") for f in os.listdir(
        os.path.join(old, "backups"))), 40, what="the scheduled backup")
    res.check(True, "the scheduled backup appeared: %s" % sorted(os.listdir(
        os.path.join(old, "backups"))))
    rc, text, _ = cli("restore", "--check", os.path.join(vault, "yesterday.db"))
    res.check(rc == 0 and "readings" in text, "restore --check: %s" % text.strip())

    # 2. Today: more data, everything acked and forwarded; then the hub dies.
    feed.run(600)
    harness.wait_for(lambda: pending(stations) == 0, 60, what="every batch acked")
    want = len(feed.readings)
    harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM agri.readings")) >= want, 60,
                     interval=0.5, what="postgres caught up")
    acked_by_old = set(feed.readings)
    gw.kill9()
    mq.kill9()
    shutil.rmtree(old)  # the old board's disk is gone, broker state included
    print("old hub and its broker killed, its directory removed", flush=True)

    # 3. No hub: the stations keep measuring; nothing is acked.
    mq = harness.Mosquitto(os.path.join(new, "mq"), port=mq.port)
    feed.run(400)
    res.check(pending(stations) > 0, "with no hub, %d batches wait in the stations' spools"
              % pending(stations))

    # 4. The new board: restore yesterday's backup, start.
    cfg_new = write_config(new, mq.port, pg)
    rc, text, _ = cli("restore", "--config", cfg_new, os.path.join(vault, "missing.db"))
    res.check(rc == 1 and "no such file" in text, "restore of a missing file refused")
    bad = os.path.join(vault, "damaged.db")
    with open(os.path.join(vault, "yesterday.db"), "rb") as f:
        data = bytearray(f.read())
    for i in range(len(data) // 2, len(data) // 2 + 8192):
        data[i] ^= 0x5a
    with open(bad, "wb") as f:
        f.write(data)
    rc, text, _ = cli("restore", "--config", cfg_new, bad)
    res.check(rc == 1 and not os.path.exists(os.path.join(new, "agri.db")),
              "a damaged backup is refused: %s" % text.strip()[:160])
    rc, text, secs = cli("restore", "--config", cfg_new, os.path.join(vault, "yesterday.db"))
    print(text.strip(), flush=True)
    res.check(rc == 0 and os.path.exists(os.path.join(new, "agri.db")),
              "restore onto the new board: exit %d in %.2f s" % (rc, secs))
    rc, text, _ = cli("restore", "--config", cfg_new, os.path.join(vault, "yesterday.db"))
    res.check(rc == 1 and "--force" in text, "a second restore without --force is refused")
    mq.start()
    gw = gp.Gateway(new, cfg_new, name="new-hub").start()
    rc, text, _ = cli("restore", "--force", "--config", cfg_new,
                      os.path.join(vault, "yesterday.db"))
    res.check(rc == 1 and "in use" in text, "restore while the gateway runs is refused")

    # 5. The spools fill the gap; a little more live data.
    feed.run(200)
    harness.wait_for(lambda: pending(stations) == 0, 120, what="every batch acked by the new hub")
    want = len(feed.readings)
    harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM agri.readings")) >= want, 120,
                     interval=0.5, what="postgres caught up")
    time.sleep(2)  # anything more would be a duplicate: give it the chance
    rows = us.pg_readings(pg)
    got = set(rows)
    res.check(len(rows) == len(got), "no duplicate in PostgreSQL (%d rows)" % len(rows))
    res.check(got == set(feed.readings),
              "PostgreSQL has every reading exactly once: %d of %d (missing %d, extra %d)"
              % (len(got & set(feed.readings)), len(feed.readings),
                 len(set(feed.readings) - got), len(got - set(feed.readings))))
    vals = pg.psql("SELECT station, sensor, metric, (extract(epoch from ts) * 1000)::bigint,"
                   " value FROM agri.readings")
    bad_vals = 0
    for line in vals.splitlines():
        a, b, c, t, v = line.split("|")
        if abs(float(v) - feed.readings[(a, b, c, int(t))]) > 1e-9:
            bad_vals += 1
    res.check(bad_vals == 0, "values in PostgreSQL are the stations' (%d differ)" % bad_vals)
    hub = us.gateway_readings(os.path.join(new, "agri.db"))
    after_death = set(feed.readings) - acked_by_old
    only_pg = acked_by_old - in_backup
    res.check(in_backup <= hub and after_death <= hub,
              "the new hub has the backup's %d readings and the %d produced since the old hub"
              " died" % (len(in_backup), len(after_death)))
    res.check(hub | only_pg == set(feed.readings),
              "what the old hub acked after the backup (%d readings) is in PostgreSQL only"
              % len(only_pg - hub))
    gw.stop()
    for s in stations.values():
        s.close()
    mq.stop()
    pg.stop()
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
