"""Two hubs, one province (issue 27, docs/ha.md): what the two-hub tests
share (test_two_hubs.py, test_notify_claims.py, test_ha_faults.py).

    a = Hub(wd, "A", gw_extra={...})      # shipped broker + agri-gateway
    b = Hub(wd, "B", ca_from=a, ...)      # the province's one CA
    bridge(a, b)                          # agrictl provision --peer-hub on A
    sink = Sink()                         # a webhook receiver, per hub path
    cut = BridgeCut(a, b); cut.start()    # iptables: only A's bridge to B
"""
import atexit
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import broker_support as B
import gateway_peer as gp
import harness as H

PREFIX = "agri/v1"


class Hub:
    """A shipped broker (its certificate from the province's CA) and an
    agri-gateway on its loopback listener. gw_extra: more gateway.json keys
    (rules_file, notify, ha); http: give the gateway an HTTP port (metrics)."""

    def __init__(self, wd, name, ca_from=None, gw_extra=None, http=False, keepalive_s=10):
        self.name = name
        self.work = os.path.join(wd, name)
        if ca_from:  # one CA for the province: stations trust both hubs
            os.makedirs(os.path.join(self.work, "broker", "certs"))
            for f in ("ca.crt", "ca.key"):
                shutil.copy(os.path.join(ca_from.br.certs, f),
                            os.path.join(self.work, "broker", "certs", f))
        self.br = B.ShippedBroker(self.work)
        self.gw_pass = self.br.hub_account("gateway")
        self.ctl_pass = self.br.hub_account("agrictl")
        self.gwd = os.path.join(self.work, "gw")
        os.makedirs(self.gwd)
        with open(os.path.join(self.gwd, "gw.pass"), "w") as f:
            f.write(self.gw_pass)
        self.client_id = "agri-gateway-" + name.lower()
        cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % self.br.loop_port,
                          "client_id": self.client_id, "username": "gateway",
                          "password_file": "gw.pass", "keepalive_s": keepalive_s},
               "db": {"path": "agri.db", "retention_days": 400}}
        self.http_port = None
        if http:
            self.http_port = H.free_port()
            cfg["http"] = {"listen": "127.0.0.1:%d" % self.http_port}
        cfg.update(gw_extra or {})
        self.db = os.path.join(self.gwd, "agri.db")
        self.gw = gp.Gateway(self.gwd, H.write_json(os.path.join(self.gwd, "gateway.json"), cfg),
                             name="gw-" + name)
        self.url = "ssl://localhost:%d" % self.br.tls_port
        self.seen = []  # (monotonic, station, broker URL, state) of every status seen here
        self.lock = threading.Lock()
        self.obs = None

    def start_gateway(self):
        self.gw.start()
        if self.http_port:
            H.wait_port(self.http_port, 15, self.gw.proc)

    def observe(self, on_message=None, user="agrictl", password=None, topics=None):
        """An MQTT client on the hub listener (agrictl's account unless told),
        reading the stations' status as it is published (live, not retained);
        on_message(hub, msg) sees every message of topics too."""
        import paho.mqtt.client as mqtt
        c = mqtt.Client(client_id="%s-obs-%s" % (user, self.name))
        c.username_pw_set(user, password or self.ctl_pass)
        subs = [(PREFIX + "/+/status", 1)] + [(t, 1) for t in topics or ()]
        c.on_connect = lambda c, u, f, rc: c.subscribe(subs)

        def on_msg(c, u, m):
            if on_message:
                on_message(self, m)
            if not m.topic.endswith("/status") or m.retain:
                return  # a retained status is from before (a restarted broker's snapshot)
            try:
                d = json.loads(m.payload)
            except ValueError:
                return
            with self.lock:
                self.seen.append((time.monotonic(), d.get("station"), d.get("broker"),
                                  d.get("state")))
        c.on_message = on_msg
        c.reconnect_delay_set(0.1, 0.5)
        c.connect_async("127.0.0.1", self.br.loop_port, 30)
        c.loop_start()
        self.obs = c

    def reader_account(self, user="observer"):
        """A test's read-only account on the hub listener: every topic under
        the prefix (agrictl's may not read telemetry and acks). Before start."""
        pw = self.br.hub_account(user)
        acl = B.listener_files(open(self.br.conf).read())[self.br.loop_port]["acl_file"]
        with open(acl, "a") as f:
            f.write("\n# a test's observer\nuser %s\ntopic read %s/#\n" % (user, PREFIX))
        return pw

    def on_since(self, station, url, since):
        """When a status seen here first said station is online on url after since."""
        with self.lock:
            ts = [t for t, s, b, st in self.seen
                  if t > since and s == station and b == url and st == "online"]
        return min(ts) if ts else None

    def seqs(self):
        """{station: set of seqs} the gateway committed (seq_ranges)."""
        out = {}
        for st, first, last in gp.query(self.db, "SELECT s.name, r.first, r.last FROM seq_ranges r "
                                                 "JOIN stations s ON s.id = r.station_id"):
            out.setdefault(st, set()).update(range(first, last + 1))
        return out

    def readings(self):
        return gp.query(self.db, "SELECT station, sensor, metric, ts FROM v_readings")

    def episodes(self):
        """The alert episodes (v_alert_episodes: retracted ones left out)."""
        return gp.query(self.db, "SELECT id, start, end, severity FROM v_alert_episodes")

    def outbox(self, where="1"):
        return gp.query(self.db, "SELECT alert_id, event, episode, transition, claim FROM outbox"
                                 " WHERE " + where + " ORDER BY id")

    def metric(self, name):
        return metric(self.http_port, name)


def bridge(a, b, user="bridge-a"):
    """The bridge from a's broker to b's, written by `agrictl provision
    --peer-hub` on a; the station listener's passwd and acl (stations and
    the bridge account) copied to b, as docs/ha.md says. Before both start.
    Returns (the agrictl run, the bridge file's path)."""
    r = H.run([H.bin_path("agrictl"), "provision", "--peer-hub",
               "mqtts://127.0.0.1:%d" % b.br.tls_port, "--passwd", a.br.passwd, "--acl", a.br.acl,
               "--bridge-user", user])
    for f in ("passwd", "acl"):
        shutil.copy(os.path.join(a.br.dir, f), os.path.join(b.br.dir, f))
    return r, os.path.join(a.br.dir, "conf.d", "agri-bridge.conf")


def bridge_connected(b, user="bridge-a", since=0):
    """Whether b's broker log says the bridge (re)connected past since bytes."""
    with open(b.br.proc.log_path, "rb") as f:
        f.seek(since)
        return re.search(rb"New (?:bridge|client) connected from \S+ as %s " % user.encode(), f.read())


def metric(port, name):
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError:
        return None
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


class Sink:
    """A webhook receiver: every POST with its path (which hub sent it),
    the alert JSON and the X-Agri-Episode and X-Agri-Event headers."""

    def __init__(self):
        self.got = []  # (time, path, alert JSON, episode, event)
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink.lock:
                    sink.got.append((time.time(), self.path, json.loads(body.decode("utf-8")),
                                     self.headers.get("X-Agri-Episode"),
                                     self.headers.get("X-Agri-Event")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]

    def all(self):
        with self.lock:
            return list(self.got)

    def stop(self):
        self.srv.shutdown()


def iptables_ok():
    """Whether this machine lets the test cut a connection with iptables
    (root, and iptables answers)."""
    if os.geteuid() != 0 or not shutil.which("iptables") or not shutil.which("setpriv"):
        return False
    return subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True).returncode == 0


class BridgeCut:
    """Cuts the bridge between two running hubs and only it: both brokers and
    every station connection stay up. Hub a's broker (the one carrying the
    bridge) runs under a group id of its own (gid, still root's uid, so its
    files are as before); an iptables rule rejects, with a TCP reset, every
    packet a process of that group sends to b's station port. The bridge's
    established connection is reset at its next packet (b's side at the next
    packet it sends to the closed socket) and every reconnect is refused
    until the rule is gone, as when the link between two offices fails
    (a refused path rather than a silent one, so both sides know at once)."""

    def __init__(self, a, b, gid):
        self.a, self.b, self.gid = a, b, gid
        self.rule = ["OUTPUT", "-p", "tcp", "--dport", str(b.br.tls_port), "-m", "owner",
                     "--gid-owner", str(gid), "-j", "REJECT", "--reject-with", "tcp-reset"]
        self.on = False
        atexit.register(self.stop)  # never leave the rule behind

    def wrap(self):
        """The argv prefix that starts a's broker under the group."""
        return ["setpriv", "--regid=%d" % self.gid, "--clear-groups", "--"]

    def start(self):
        subprocess.run(["iptables", "-I"] + self.rule, check=True)
        self.on = True

    def stop(self):
        if self.on:
            self.on = False
            subprocess.run(["iptables", "-D"] + self.rule, check=True)
