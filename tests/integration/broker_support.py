"""The SHIPPED broker configuration (broker/mosquitto.conf, acl.head, acl.hub,
make-certs), rendered as the demo renders it and run by a real mosquitto on
free ports, for tests that need stations on the TLS listener with their own
accounts and ACL, and the hub's accounts on the loopback listener.

    b = ShippedBroker(workdir)            # certificates, rendered config
    pw = b.provision("DT-W01")            # agrictl provision: passwd + ACL
    gw_pw = b.hub_account("gateway")      # mosquitto_passwd on the hub file
    b.start(); ...; b.stop()
"""
import os
import pwd
import shutil
import subprocess

import harness

BROKER = os.path.join(harness.SRC, "broker")


def listener_files(conf):
    """{port: {"password_file":..., "acl_file":...}}: what the rendered conf
    gives each listener (values before the first listener apply to all)."""
    glob, per, cur = {}, {}, None
    for ln in conf.splitlines():
        parts = ln.split()
        if not parts or parts[0].startswith("#"):
            continue
        if parts[0] == "listener":
            cur = int(parts[1])
            per[cur] = {}
        elif parts[0] in ("password_file", "acl_file"):
            (per[cur] if cur is not None else glob)[parts[0]] = parts[1]
    return {port: dict(glob, **d) for port, d in per.items()}


class ShippedBroker:
    def __init__(self, work, server_name="localhost"):
        self.dir = os.path.join(work, "broker")
        os.makedirs(os.path.join(self.dir, "data"))
        os.makedirs(os.path.join(self.dir, "conf.d"))  # include_dir: a peer hub's bridge
        self.certs = os.path.join(self.dir, "certs")
        subprocess.run([os.path.join(BROKER, "make-certs"), self.certs, server_name], check=True,
                       stdout=subprocess.DEVNULL)
        self.ca = os.path.join(self.certs, "ca.crt")
        self.loop_port = harness.free_port()
        self.tls_port = harness.free_port()
        while self.tls_port == self.loop_port:
            self.tls_port = harness.free_port()
        res = subprocess.run([os.path.join(BROKER, "render-conf"), self.dir,
                              os.path.join(self.dir, "data"), str(self.loop_port),
                              str(self.tls_port), "127.0.0.1"],
                             capture_output=True, text=True, check=True)
        conf = res.stdout
        if os.geteuid() == 0:  # root mosquitto drops to user "mosquitto", which can't read work/
            conf += "\nuser %s\n" % pwd.getpwuid(os.geteuid()).pw_name
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        files = listener_files(conf)
        self.passwd = files[self.tls_port]["password_file"]
        self.acl = files[self.tls_port]["acl_file"]
        self.hub_passwd = files[self.loop_port]["password_file"]
        hub_acl = files[self.loop_port]["acl_file"]
        shutil.copy(os.path.join(BROKER, "acl.head"), self.acl)
        if hub_acl != self.acl:
            shutil.copy(os.path.join(BROKER, "acl.hub"), hub_acl)
        for p in {self.passwd, self.hub_passwd}:
            open(p, "a").close()
        self.proc = None
        self.wrap = []  # an argv prefix for mosquitto (ha_support.BridgeCut: its group)

    def provision(self, station):
        """A station's credentials through `agrictl provision`; its password."""
        out = os.path.join(self.dir, "st-" + station)
        subprocess.run([harness.bin_path("agrictl"), "provision", "--station", station, "--out", out,
                        "--passwd", self.passwd, "--acl", self.acl,
                        "--broker", "ssl://localhost:%d" % self.tls_port],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "station.pass")) as f:
            return f.read().strip()

    def hub_account(self, user):
        """The hub's own account (gateway, agrictl) as docs/broker.md makes it."""
        pw = "hub-%s-%s" % (user, os.urandom(8).hex())
        subprocess.run(["mosquitto_passwd", "-b", self.hub_passwd, user, pw], check=True)
        return pw

    def start(self):
        self.proc = harness.Proc(self.wrap + ["mosquitto", "-c", self.conf], os.path.join(self.dir, "mosquitto.log"))
        harness.wait_port(self.loop_port, 10, self.proc)
        harness.wait_port(self.tls_port, 10, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None
