"""The SHIPPED broker configuration (broker/mosquitto.conf, acl.head,
make-certs), rendered as the demo renders it (scripts/province.py
setup_broker) and run by a real mosquitto on free ports:

- `agrictl provision` makes two stations A and B (its "$7$" PBKDF2-SHA512
  password entries are accepted by mosquitto 2.0); the gateway's account is
  made with mosquitto_passwd -b;
- a real agri-station, provisioned, publishes over TLS under its own id and
  the gateway account (python3-paho-mqtt) receives it;
- station A publishing under B's id (telemetry, status, config ack) or on a
  gateway topic is refused: nothing reaches the subscriber; A does not get
  B's config; A gets its own;
- a wrong password and anonymous clients are refused (CONNACK not
  authorized), on both listeners;
- TLS with the generated CA connects; TLS with another CA (a second
  make-certs) fails; plain MQTT on the TLS port fails.
"""
import json
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

R = harness.Result("test_broker_security")
try:
    CTL = harness.bin_path("agrictl")
except FileNotFoundError as e:  # a build without the gateway (-DAGRI_WITH_GATEWAY=OFF) has no agrictl
    print("SKIP: %s" % e)
    sys.exit(77)
BROKER = os.path.join(harness.SRC, "broker")
A, B = "DT-SA1", "DT-SB2"


def render_broker(work):
    """As scripts/province.py setup_broker: returns (conf, loop_port, tls_port, passwd, acl, certs)."""
    bdir = os.path.join(work, "broker")
    os.makedirs(os.path.join(bdir, "data"))
    certs = os.path.join(bdir, "certs")
    subprocess.run([os.path.join(BROKER, "make-certs"), certs, "localhost"], check=True,
                   stdout=subprocess.DEVNULL)
    loop_port, tls_port = harness.free_port(), harness.free_port()
    while tls_port == loop_port:
        tls_port = harness.free_port()
    with open(os.path.join(BROKER, "mosquitto.conf")) as f:
        conf = f.read()
    conf = (conf.replace("@CONF_DIR@", bdir).replace("@DATA_DIR@", os.path.join(bdir, "data"))
            .replace("@LOOPBACK_PORT@", str(loop_port)).replace("@TLS_PORT@", str(tls_port))
            .replace("@TLS_BIND@", "127.0.0.1"))
    res = subprocess.run([os.path.join(BROKER, "render-conf"), bdir, os.path.join(bdir, "data"), str(loop_port),
                          str(tls_port), "127.0.0.1"], capture_output=True, text=True)
    R.check(res.returncode == 0 and res.stdout == conf and not re.search(r"@[A-Z_]+@", conf),
            "broker/render-conf renders the template as the demo does, every placeholder filled")
    if os.geteuid() == 0:  # root mosquitto drops to user "mosquitto", which can't read work/
        conf += "\nuser %s\n" % pwd.getpwuid(os.geteuid()).pw_name
    path = os.path.join(bdir, "mosquitto.conf")
    with open(path, "w") as f:
        f.write(conf)
    acl = os.path.join(bdir, "acl")
    shutil.copy(os.path.join(BROKER, "acl.head"), acl)
    passwd = os.path.join(bdir, "passwd")
    open(passwd, "w").close()
    return path, loop_port, tls_port, passwd, acl, certs


class Client:
    """A paho client that records the CONNACK code and what it receives."""

    def __init__(self, port, user=None, password=None, ca=None, client_id=""):
        self.rc = None
        self.msgs = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.c = mqtt.Client(client_id=client_id, clean_session=True)
        if user is not None:
            self.c.username_pw_set(user, password)
        if ca:
            self.c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.port = port
        self.error = None

    def _on_connect(self, c, u, flags, rc):
        self.rc = rc
        self.connected.set()

    def _on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload))

    def connect(self, timeout=5.0):
        """Returns the CONNACK code, or None when the connection (TLS) failed."""
        try:
            self.c.connect("localhost" if self.c._ssl else "127.0.0.1", self.port, 30)
        except (ssl.SSLError, OSError) as e:
            self.error = e
            return None
        self.c.loop_start()
        self.connected.wait(timeout)
        return self.rc

    def received(self, topic=None):
        with self.lock:
            return [m for m in self.msgs if topic is None or m[0] == topic]

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def read_pass(path):
    with open(path) as f:
        return f.read().strip()


def main():
    work = harness.tmpdir("agri-broker-")
    conf, loop_port, tls_port, passwd, acl, certs = render_broker(work)
    ca = os.path.join(certs, "ca.crt")
    R.check(all(os.path.exists(os.path.join(certs, f)) for f in ("ca.crt", "server.crt", "server.key")),
            "make-certs made the CA and the server certificate")
    wrong = os.path.join(work, "other-ca")
    subprocess.run([os.path.join(BROKER, "make-certs"), wrong, "localhost"], check=True,
                   stdout=subprocess.DEVNULL)

    # Provision A and B; the gateway's account as the demo makes it.
    sdirs = {}
    for st in (A, B):
        sdirs[st] = os.path.join(work, st)
        res = harness.run([CTL, "provision", "--station", st, "--out", sdirs[st], "--passwd", passwd,
                           "--acl", acl, "--broker", "ssl://localhost:%d" % tls_port])
        R.check(res.returncode == 0, "agrictl provision %s (rc=%d %s)" % (st, res.returncode, res.stderr.strip()))
    res = harness.run([CTL, "provision", "--station", A, "--out", sdirs[A], "--passwd", passwd, "--acl", acl,
                       "--broker", "ssl://localhost:%d" % tls_port])
    R.check(res.returncode == 0, "provisioning A again rotates its password")
    with open(passwd) as f:
        entries = [ln for ln in f.read().splitlines() if ln]
    with open(acl) as f:
        acl_text = f.read()
    R.check(sorted(e.split(":")[0] for e in entries) == sorted([A, B])
            and all(e.split(":", 1)[1].startswith("$7$101$") for e in entries),
            "the password file has one $7$ (PBKDF2-SHA512) entry per station: %s"
            % [e[:24] for e in entries])
    R.check(acl_text.count("\nuser %s\n" % A) == 1 and "topic write agri/v1/%s/telemetry" % B in acl_text,
            "the ACL has one block per station")
    pass_mode = os.stat(os.path.join(sdirs[A], "station.pass")).st_mode & 0o777
    R.check(pass_mode == 0o600, "station.pass is 0600 (%o)" % pass_mode)
    gw_pass = "gw-" + os.urandom(8).hex()
    subprocess.run(["mosquitto_passwd", "-b", passwd, "gateway", gw_pass], check=True)

    mosq = harness.Proc(["mosquitto", "-c", conf], os.path.join(work, "mosquitto.log"))
    harness.wait_port(loop_port, 10, mosq)
    harness.wait_port(tls_port, 10, mosq)

    gw = Client(loop_port, "gateway", gw_pass, client_id="gw-test")
    rc = gw.connect()
    R.check(rc == 0, "gateway account connects on the loopback listener (rc=%s)" % rc)
    gw.c.subscribe([("agri/v1/+/telemetry", 1), ("agri/v1/+/status", 1), ("agri/v1/+/config/ack", 1),
                    ("agri/v1/+/ack", 1), ("agri/v1/alerts/#", 1)])
    time.sleep(0.3)

    # A real agri-station with the provisioned credentials, over TLS.
    sim_port = harness.free_port()
    sim = harness.Proc([harness.bin_path("agri-sim"), "--tcp", "127.0.0.1:%d" % sim_port,
                        "--slave", "1:sensecap-s-ec-01"], os.path.join(work, "sim.log"), wrap=True)
    harness.wait_port(sim_port, 10, sim)
    with open(os.path.join(sdirs[A], "station.json")) as f:
        scfg = json.load(f)
    scfg["broker"]["ca_file"] = ca
    scfg["broker"]["keepalive_s"] = 5
    scfg.update({"state_dir": os.path.join(sdirs[A], "state"), "profiles_dir": harness.PROFILES,
                 "publish_interval_s": 1, "ack_timeout_s": 5,
                 "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port}}],
                 "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01",
                              "interval_s": 1}]})
    spath = harness.write_json(os.path.join(sdirs[A], "station.json"), scfg)
    res = harness.run([CTL, "config", "validate", spath])
    R.check(res.returncode == 0, "the provisioned station.json (edited) validates (%s)" % res.stderr.strip())
    station = harness.Proc([harness.bin_path("agri-station"), "--config", spath, "--log-level", "info"],
                           os.path.join(work, "station-A.log"), wrap=True)
    try:
        harness.wait_for(lambda: gw.received("agri/v1/%s/telemetry" % A), 20, what="A's telemetry")
        got = True
    except TimeoutError:
        got = False
    R.check(got, "a provisioned agri-station publishes over TLS under its own id; the gateway receives it")
    if got:
        doc = json.loads(gw.received("agri/v1/%s/telemetry" % A)[0][1])
        R.check(doc.get("station") == A and doc.get("readings"), "the batch is A's, with readings")
    R.check(bool(gw.received("agri/v1/%s/status" % A)), "A's status reaches the gateway")

    # agrictl's own account pushes a config to the running station over TLS (the ACL lets
    # it write configs and read config acks; the station reads its config, writes its ack).
    ctl_pass = os.path.join(work, "agrictl.pass")
    with open(ctl_pass, "w") as f:
        f.write("ctl-" + os.urandom(8).hex() + "\n")
    subprocess.run(["mosquitto_passwd", "-b", passwd, "agrictl", read_pass(ctl_pass)], check=True)
    mosq.p.send_signal(signal.SIGHUP)  # reload the password file, as after provisioning
    time.sleep(0.5)
    scfg["publish_interval_s"] = 2
    npath = harness.write_json(os.path.join(work, "push.json"), scfg)
    # Pushed configs are signed: a technician's key, trusted by A (its .pub in technicians/
    # beside A's station.json, docs/station.md "Remote config").
    res = harness.run([CTL, "provision", "--technician", "tech1", "--out", os.path.join(work, "tech")])
    R.check(res.returncode == 0, "agrictl provision --technician tech1 (%s)" % res.stderr.strip())
    os.makedirs(os.path.join(sdirs[A], "technicians"), exist_ok=True)
    shutil.copy(os.path.join(work, "tech", "tech1.pub"), os.path.join(sdirs[A], "technicians"))
    push = [CTL, "config", "push", "--station", A, "--broker", "ssl://localhost:%d" % tls_port,
            "--username", "agrictl", "--password-file", ctl_pass, "--timeout-s", "15"]
    push += ["--key", os.path.join(work, "tech", "tech1.key")]
    res = harness.run(push + ["--ca-file", ca, npath])
    R.check(res.returncode == 0 and "applied" in res.stdout,
            "agrictl config push over TLS with the agrictl account: applied (rc=%d %s%s)"
            % (res.returncode, res.stdout.strip(), res.stderr.strip()))
    res = harness.run(push + ["--ca-file", os.path.join(wrong, "ca.crt"), npath])
    R.check(res.returncode == 1 and "cannot connect" in res.stderr,
            "agrictl config push with a wrong CA: cannot connect, exit 1 (rc=%d %s)"
            % (res.returncode, res.stderr.strip()))
    station.stop()
    sim.stop()

    # Station A's own password, as a plain MQTT client over TLS.
    pa = read_pass(os.path.join(sdirs[A], "station.pass"))
    ca_ok = Client(tls_port, A, pa, ca=ca, client_id=A)
    rc = ca_ok.connect()
    R.check(rc == 0, "TLS with the generated CA and A's provisioned ($7$) password connects (rc=%s %s)"
            % (rc, ca_ok.error))
    # The gateway publishes configs for both (retained); A may read only its own.
    gw.c.publish("agri/v1/%s/config" % A, json.dumps({"station": A, "version": 1}), qos=1, retain=True)
    gw.c.publish("agri/v1/%s/config" % B, json.dumps({"station": B, "version": 1}), qos=1, retain=True)
    time.sleep(0.3)
    ca_ok.c.subscribe([("agri/v1/%s/config" % A, 1), ("agri/v1/%s/config" % B, 1), ("agri/v1/#", 1)])
    time.sleep(0.2)
    n0 = len(gw.received())
    for topic in ("agri/v1/%s/telemetry" % B, "agri/v1/%s/status" % B, "agri/v1/%s/config/ack" % B,
                  "agri/v1/%s/ack" % B, "agri/v1/%s/ack" % A, "agri/v1/alerts/%s/x" % B):
        ca_ok.c.publish(topic, b'{"forged":1}', qos=1).wait_for_publish()
    # A's own publish last: once it is delivered, anything A sent before it would have been.
    ca_ok.c.publish("agri/v1/%s/telemetry" % A, b'{"own":1}', qos=1).wait_for_publish()
    own = ("agri/v1/%s/telemetry" % A, b'{"own":1}')
    try:
        harness.wait_for(lambda: own in gw.received(), 5, what="A's own publish")
    except TimeoutError:
        pass
    time.sleep(0.3)
    new = gw.received()[n0:]
    R.check(own in new, "A's own publish reaches the subscriber")
    forged = [m for m in new if b"forged" in m[1]]
    R.check(not forged, "A publishing under B's id (telemetry, status, config/ack), as the gateway "
            "(ack) or an alert: nothing reaches the subscriber (%s)" % forged)
    cfg_a = ca_ok.received("agri/v1/%s/config" % A)
    cfg_b = [m for m in ca_ok.received() if ("/%s/" % B) in m[0]]
    R.check(len(cfg_a) >= 1, "A reads its own retained config")
    R.check(not cfg_b, "A reads nothing of B's (config, forged or not): %s" % cfg_b)
    ca_ok.close()

    # Wrong password, anonymous, wrong CA, plain MQTT on the TLS port.
    for port, tls, label in ((tls_port, ca, "TLS"), (loop_port, None, "loopback")):
        c = Client(port, A, pa[:-1] + ("x" if pa[-1] != "x" else "y"), ca=tls)
        rc = c.connect()
        R.check(rc == 5, "a wrong password is refused on the %s listener (CONNACK %s: not authorized)"
                % (label, rc))
        c.close()
        c = Client(port, None, None, ca=tls)
        rc = c.connect()
        R.check(rc == 5, "anonymous is refused on the %s listener (CONNACK %s)" % (label, rc))
        c.close()
        c = Client(port, "nobody", "whatever", ca=tls)
        rc = c.connect()
        R.check(rc == 5, "an unknown user is refused on the %s listener (CONNACK %s)" % (label, rc))
        c.close()
    c = Client(tls_port, A, pa, ca=os.path.join(wrong, "ca.crt"))
    rc = c.connect()
    R.check(rc is None and isinstance(c.error, ssl.SSLError),
            "TLS with a wrong CA fails (%s)" % (c.error,))
    c.close()
    c = Client(tls_port, A, pa)
    rc = c.connect(timeout=3)
    R.check(rc != 0, "plain MQTT on the TLS port does not connect (rc=%s)" % rc)
    c.close()
    # Station B's password works for B and not for A.
    pb = read_pass(os.path.join(sdirs[B], "station.pass"))
    c = Client(tls_port, A, pb, ca=ca)
    R.check(c.connect() == 5, "B's password does not log in as A")
    c.close()
    c = Client(tls_port, B, pb, ca=ca)
    R.check(c.connect() == 0, "B's password logs in as B")
    c.close()

    gw.close()
    R.check(mosq.stop() == 0, "mosquitto exits 0")
    R.done()


if __name__ == "__main__":
    main()
