"""Helpers for the upstream forwarders' tests and benchmark: a real
PostgreSQL server (initdb in a temp dir, a free port, its socket in the
same dir; run as `nobody` when the tests run as root, since postgres refuses
root), and a gateway config with an `upstream` section."""
import os
import shutil
import signal
import subprocess
import time

import harness

PG_BIN = os.environ.get("AGRI_PG_BIN", "/usr/lib/postgresql/15/bin")


def _as_postgres_user():
    if os.geteuid() != 0:
        return []
    # setpriv execs in place: the pid we hold is postgres itself.
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


class Postgres:
    """listen: listen_addresses; settings: more -c NAME=VALUE (e.g. ssl)."""

    def __init__(self, workdir, port=None, fsync=True, listen="127.0.0.1", settings=None):
        self.dir = os.path.join(workdir, "pg")
        self.data = os.path.join(self.dir, "data")
        self.port = port or harness.free_port()
        self.fsync = fsync
        self.listen = listen
        self.settings = dict(settings or {})
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(workdir, 0o755)
        os.chmod(self.dir, 0o777)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "nobody", "nogroup")
        r = subprocess.run(_as_postgres_user() + [
            os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "agri", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("initdb failed: %s%s" % (r.stdout, r.stderr))
        self.log = os.path.join(self.dir, "postgres.log")
        if os.geteuid() == 0:
            open(self.log, "a").close()

    @property
    def conninfo(self):
        return "host=%s port=%d dbname=agri user=agri" % (self.dir, self.port)

    def start(self, timeout=30):
        argv = _as_postgres_user() + [
            os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
            "-k", self.dir, "-c", "listen_addresses=%s" % self.listen,
            "-c", "fsync=%s" % ("on" if self.fsync else "off"),
            "-c", "max_wal_size=1GB", "-c", "shared_buffers=128MB"]
        for k, v in self.settings.items():
            argv += ["-c", "%s=%s" % (k, v)]
        self.proc = harness.Proc(argv, self.log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: %s" % self.proc.describe())
            r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-h", self.dir, "-p",
                                str(self.port)], capture_output=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("postgres did not accept connections: %s" % self.proc.describe())
        if self.psql("SELECT 1 FROM pg_database WHERE datname = 'agri'", db="postgres") != "1":
            self.psql("CREATE DATABASE agri", db="postgres")
        return self

    def stop(self):
        """Fast shutdown (SIGINT): disconnects clients, like maintenance."""
        if self.proc and self.proc.poll() is None:
            self.proc.p.send_signal(signal.SIGINT)
            self.proc.p.wait(30)
        if self.proc:
            self.proc.logf.close()
        self.proc = None

    def psql(self, sql, db="agri", timeout=120):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-v",
                            "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port), "-U",
                            "agri", "-d", db, "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout.strip()

    def psql_file(self, path, db="agri", timeout=600):
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-v",
                            "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port), "-U",
                            "agri", "-d", db, "-f", path],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr)
        return r.stdout.strip()


def write_config(d, mqtt_port, postgres=None, sensorthings=None, db="agri.db",
                 client_id="gw-up", retention_days=400):
    up = {}
    if postgres:
        up["postgres"] = {"conninfo": postgres}
    if sensorthings:
        up["sensorthings"] = {"url": sensorthings}
    cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % mqtt_port, "client_id": client_id,
                      "keepalive_s": 10},
           "db": {"path": db, "retention_days": retention_days},
           "upstream": up}
    return harness.write_json(os.path.join(d, "gateway-%s.json" % client_id), cfg)


def gateway_readings(db):
    """The gateway's readings as a set of (station, sensor, metric, ts ms)."""
    import gateway_peer
    rows = gateway_peer.query(db, "SELECT st.name, se.sensor, se.metric, r.ts FROM readings r"
                                  " JOIN series se ON se.id = r.series_id"
                                  " JOIN stations st ON st.id = se.station_id")
    return set((a, b, c, int(t)) for a, b, c, t in rows)


def pg_readings(pg):
    out = pg.psql("SELECT station, sensor, metric,"
                  " (extract(epoch from ts) * 1000)::bigint FROM agri.readings")
    rows = [l.split("|") for l in out.splitlines() if l]
    return [(a, b, c, int(t)) for a, b, c, t in rows]
