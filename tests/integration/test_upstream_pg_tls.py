#!/usr/bin/env python3
"""The PostgreSQL forwarder to a server that is not this machine speaks
verified TLS or nothing (docs/upstream.md "TLS", docs/security.md "A remote
PostgreSQL").

The test runs in a network namespace of its own (unshare --net, as root):
its only interfaces are a loopback and a veth pair carrying 10.200.0.1/24
(or, where veth is missing, that address on the namespace's loopback
device), so the "remote" server is reached through a non-loopback address
without touching any real network. A real PostgreSQL (initdb, as
test_upstream_pg.py) listens there and on 127.0.0.1:

- without TLS: the default config is refused (no plain-text connection, no
  schema created; the log says why); sslmode=disable or prefer to that
  address stop the gateway at start (exit 78); 127.0.0.1 still connects
  (loopback keeps libpq's prefer);
- with TLS (a certificate for pg.agri.test from broker/make-certs' CA):
  connects with sslrootcert (pg_stat_ssl shows TLS), refuses a server
  whose certificate names another host, and refuses when no CA is given.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import upstream_support as us  # noqa: E402

NETNS_ENV = "AGRI_IT_PG_NETNS"
ADDR = "10.200.0.1"
NAME = "pg.agri.test"


def enter_netns():
    """Re-executes this test in a new network namespace (root only)."""
    if os.environ.get(NETNS_ENV):
        return
    if os.geteuid() != 0 or not shutil.which("unshare") or \
            subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        print("skip: needs root and network namespaces (unshare --net)")
        sys.exit(77)
    os.environ[NETNS_ENV] = "1"
    sys.stdout.flush()
    os.execvp("unshare", ["unshare", "--net", "--", sys.executable,
                          os.path.abspath(__file__)] + sys.argv[1:])


def ip(*args):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True).returncode == 0


def setup_net():
    if not ip("link", "set", "lo", "up"):
        raise RuntimeError("cannot bring lo up in the namespace")
    if ip("link", "add", "agri-pg0", "type", "veth", "peer", "name", "agri-pg1") and \
            ip("addr", "add", ADDR + "/24", "dev", "agri-pg0") and \
            ip("link", "set", "agri-pg0", "up") and ip("link", "set", "agri-pg1", "up"):
        return "veth agri-pg0"
    if ip("addr", "add", ADDR + "/24", "dev", "lo"):
        return "the namespace's lo"
    raise RuntimeError("cannot add %s in the namespace" % ADDR)


def run_gateway(work, name, conninfo, timeout=10.0):
    """Starts agri-gateway with conninfo; returns (proc, outcome), outcome
    'connected', 'exit N: ...' or the sink's error."""
    cfg = {"broker": {"url": "tcp://127.0.0.1:1", "client_id": "gw-" + name},
           "db": {"path": os.path.join(work, name + ".db")},
           "upstream": {"postgres": {"conninfo": conninfo}}}
    path = harness.write_json(os.path.join(work, name + ".json"), cfg)
    PG[0].psql("DROP SCHEMA IF EXISTS agri CASCADE")  # each run starts without it
    p = harness.Proc([harness.bin_path("agri-gateway"), "--config", path, "--log-level", "info"],
                     os.path.join(work, name + ".log"))
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = p.log_text()
        if p.poll() is not None:
            return p, "exit %d: %s" % (p.returncode, log.strip().splitlines()[-1] if log else "")
        for line in log.splitlines():
            if "sink down sink=postgres" in line:
                return p, line.split("error=", 1)[-1]
        if "sink started sink=postgres" in log and schema(PG[0]):
            return p, "connected"
        time.sleep(0.05)
    return p, "nothing in %.0fs" % timeout


PG = [None]


def schema(pg):
    return pg.psql("SELECT count(*) FROM information_schema.schemata"
                   " WHERE schema_name = 'agri'") == "1"


def main():
    enter_netns()
    res = harness.Result("test_upstream_pg_tls")
    how = setup_net()
    print("network namespace: %s carries %s/24" % (how, ADDR))
    work = harness.tmpdir("agri-pgtls-")
    certs = os.path.join(work, "certs")
    subprocess.run([os.path.join(harness.SRC, "broker", "make-certs"), certs, NAME], check=True,
                   capture_output=True)
    ca = os.path.join(certs, "ca.crt")
    os.chmod(certs, 0o755)

    pg = us.Postgres(work, fsync=False, listen="%s,127.0.0.1" % ADDR)
    PG[0] = pg
    with open(os.path.join(pg.data, "pg_hba.conf"), "a") as f:
        f.write("host all all %s/24 trust\n" % ADDR)
    for f in ("server.crt", "server.key"):
        shutil.copy(os.path.join(certs, f), os.path.join(pg.dir, f))
        if os.geteuid() == 0:
            shutil.chown(os.path.join(pg.dir, f), "nobody", "nogroup")
    os.chmod(os.path.join(pg.dir, "server.key"), 0o600)
    base = "port=%d dbname=agri user=agri connect_timeout=5" % pg.port

    # --- a server without TLS --------------------------------------------
    pg.start()
    p, what = run_gateway(work, "plain-default", "host=%s %s" % (ADDR, base))
    print("no TLS, default config, host %s: %s" % (ADDR, what))
    res.check(what != "connected" and not schema(pg),
              "a PostgreSQL without TLS at %s is refused under the default config" % ADDR)
    res.check("SSL" in what, "the gateway says why (%s)" % what[:80])
    p.stop()

    for mode in ("disable", "prefer"):
        p, what = run_gateway(work, "plain-" + mode, "host=%s %s sslmode=%s" % (ADDR, base, mode))
        print("no TLS, sslmode=%s, host %s: %s" % (mode, ADDR, what))
        res.check(what.startswith("exit 78") and "upstream.postgres.conninfo: sslmode=%s" % mode
                  in what and not schema(pg),
                  "sslmode=%s to %s stops the gateway at start (exit 78)" % (mode, ADDR))
        p.stop()
    r = harness.run([harness.bin_path("agrictl"), "config", "validate",
                     os.path.join(work, "plain-disable.json")])
    res.check(r.returncode == 78 and "sslmode=disable" in r.stderr + r.stdout,
              "agrictl config validate says the same (exit %d)" % r.returncode)

    p, what = run_gateway(work, "plain-loopback", "host=127.0.0.1 %s" % base)
    print("no TLS, default config, host 127.0.0.1: %s" % what)
    res.check(what == "connected", "loopback keeps libpq's prefer: 127.0.0.1 connects")
    p.stop()
    pg.stop()

    # --- a server with TLS -----------------------------------------------
    pg.settings.update({"ssl": "on", "ssl_cert_file": os.path.join(pg.dir, "server.crt"),
                        "ssl_key_file": os.path.join(pg.dir, "server.key")})
    pg.start()
    p, what = run_gateway(work, "tls-ok", "host=%s hostaddr=%s %s sslrootcert=%s"
                          % (NAME, ADDR, base, ca))
    tls = pg.psql("SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s JOIN pg_stat_activity a"
                  " USING (pid) WHERE a.application_name = 'agri-gateway'")
    print("TLS, certificate for %s, sslrootcert: %s (pg_stat_ssl: %s)" % (NAME, what, tls))
    res.check(what == "connected" and tls == "true",
              "a server whose certificate names %s connects, over TLS" % NAME)
    p.stop()

    p, what = run_gateway(work, "tls-wrong-name", "host=wrong.agri.test hostaddr=%s %s"
                          " sslrootcert=%s" % (ADDR, base, ca))
    print("TLS, certificate for %s, reached as wrong.agri.test: %s" % (NAME, what))
    res.check(what != "connected" and not schema(pg) and "does not match host name" in what,
              "a server whose certificate names another host is refused, saying so")
    p.stop()

    if not os.path.exists(os.path.expanduser("~/.postgresql/root.crt")):
        p, what = run_gateway(work, "tls-no-ca", "host=%s hostaddr=%s %s" % (NAME, ADDR, base))
        print("TLS, no sslrootcert: %s" % what)
        res.check(what != "connected" and not schema(pg) and "root certificate" in what,
                  "without a CA to verify with, nothing connects")
        p.stop()
    pg.stop()
    res.done()


if __name__ == "__main__":
    main()
