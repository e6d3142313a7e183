"""Signed remote configs and the closed config schema (docs/station.md "Remote
config", docs/security.md, "A station's config"), against a real agri-station, a real
mosquitto and agri-sim over Modbus TCP. Hostile configs are published
with Debian's python3-paho-mqtt as any account allowed to write the
station's config topic could; signatures are made with the openssl CLI,
independently of agrictl.

- no technician keys installed: a correctly signed config is refused
  ("no technician keys installed");
- with alice's key installed, each of these is rejected with a config/ack
  naming the reason, while the old config keeps running (status keeps
  config_version 0, batches keep coming at the old 1 s interval):
  watchdog.device at the spool, /dev/watchdog0/../.. and /dev/sda (signed);
  an unsigned config; a tampered one (a byte changed after signing); one
  signed with a key the station does not know, under another name and
  under alice's name; one signed for another station; one whose signed
  version was raised after signing (a replay of an old config as new); a
  signature that is not the last member; a serial port outside /dev/tty*;
  a changed profiles_dir;
- a correctly signed config is applied: config/ack "applied" with
  "signed_by": "alice", the status carries config_version and
  config_signed_by, the new interval is in force; config.json keeps the
  signed message; replaying an older signed config is ignored;
- a restart re-verifies the persisted config (kept, signer recorded);
  with alice's key removed the persisted config is ignored and the file
  runs; so is a config.json forged in the state directory (unsigned, or
  signed by an untrusted key);
- a local --config with watchdog.device outside /dev/watchdog* stops the
  station with exit 78 and the reason;
- `agrictl provision --technicians DIR` installs the public keys in
  OUT/technicians/.
"""
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

R = H.Result("test_station_config_signed")
ST = "DT-SIG1"


class Watcher:
    """Status, telemetry arrival times and config acks of ST; acks telemetry as
    a gateway would."""

    def __init__(self, port):
        self.lock = threading.Lock()
        self.status = None
        self.batches = []
        self.acks = []
        self.c = mqtt.Client(client_id="sig-watcher", clean_session=True)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe(
            [("agri/v1/%s/status" % ST, 1), ("agri/v1/%s/telemetry" % ST, 1),
             ("agri/v1/%s/config/ack" % ST, 1)])
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()

    def _on_message(self, c, u, m):
        try:
            doc = json.loads(m.payload)
        except ValueError:
            return
        with self.lock:
            if m.topic.endswith("/status"):
                self.status = doc
            elif m.topic.endswith("/config/ack"):
                self.acks.append(doc)
            else:
                self.batches.append(time.monotonic())
                c.publish("agri/v1/%s/ack" % ST, json.dumps(
                    {"v": 1, "station": ST, "seqs": [[doc["seq"], doc["seq"]]]}), qos=1)

    def get(self, key, default=None):
        with self.lock:
            return (self.status or {}).get(key, default)

    def ack(self, version, timeout=10):
        try:
            return H.wait_for(lambda: self._ack(version), timeout, what="config/ack %d" % version)
        except TimeoutError:
            return None

    def _ack(self, version):
        with self.lock:
            for a in self.acks:
                if a and a.get("version") == version:
                    return a
        return None

    def rounds_since(self, t0):
        with self.lock:
            ts = sorted(t for t in self.batches if t >= t0)
        return sum(1 for i, t in enumerate(ts) if i == 0 or t - ts[i - 1] > 0.25)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def main():
    work = H.tmpdir("agri-sig-")
    mq = H.Mosquitto(os.path.join(work, "mq")).start()
    sim_port = H.free_port()
    S.start_sim(work, "sim", ["1:sensecap-s-ec-01", "3:epever-tracer"], tcp_port=sim_port)
    keys = os.path.join(work, "keys")
    alice_key, alice_pub = S.make_technician(keys, "alice")
    mallory_key, _ = S.make_technician(os.path.join(work, "other-keys"), "mallory")

    other_profiles = os.path.join(work, "profiles")  # a copy: the profiles load, the rule refuses it
    os.makedirs(other_profiles)
    shutil.copy(os.path.join(H.PROFILES, "sensecap-s-ec-01.json"), other_profiles)
    sdir = os.path.join(work, "etc")
    os.makedirs(sdir)
    state = os.path.join(work, "state")
    cfg = {
        "station": ST,
        "broker": {"url": mq.url, "keepalive_s": 5},
        "state_dir": state,
        "profiles_dir": H.PROFILES,
        "publish_interval_s": 1,
        "ack_timeout_s": 5,
        "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port}, "timeout_ms": 500}],
        "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01",
                     "interval_s": 0.5}],
    }
    spath = H.write_json(os.path.join(sdir, "station.json"), cfg)
    w = Watcher(mq.port)
    pub = H.mqtt_client(mq.port, "hostile-publisher")
    topic = "agri/v1/%s/config" % ST

    def start():
        return H.Proc([H.bin_path("agri-station"), "--config", spath, "--log-level", "info"],
                      os.path.join(work, "station.log"), wrap=True)

    def publish(payload):
        pub.publish(topic, payload, qos=1, retain=True).wait_for_publish()

    def config(version, **changes):
        d = json.loads(json.dumps(cfg))
        d["version"] = version
        d["publish_interval_s"] = 2
        d.update(changes)
        return d

    def expect_rejected(version, payload, want, what):
        publish(payload)
        a = w.ack(version)
        R.check(a is not None and a.get("result") == "rejected" and want in a.get("error", ""),
                "%s: rejected, config/ack names the reason (%r in %s)" % (what, want, a))
        return a

    station = start()
    H.wait_for(lambda: w.get("state") == "online", 15, what="station online")
    H.wait_for(lambda: len(w.batches) >= 2, 15, what="first batches")

    # 0. No technician keys installed: even a correctly signed config is refused.
    expect_rejected(1, S.sign_config(config(1), alice_key, "alice"), "no technician keys installed",
                    "no keys installed, a config signed by alice")

    # Alice's key is installed beside station.json (read at each push, no restart).
    S.install_technician(spath, alice_pub)
    v = 2
    cases = [
        (S.sign_config(config(v, watchdog={"device": os.path.join(state, "spool.db"), "timeout_s": 30}),
                       alice_key, "alice"),
         "watchdog.device: expected /dev/watchdog", "watchdog.device = the spool, signed"),
        (S.sign_config(config(v + 1, watchdog={"device": "/dev/watchdog0/../../" + state + "/spool.db"}),
                       alice_key, "alice"),
         "watchdog.device: expected /dev/watchdog", "watchdog.device = /dev/watchdog0/../..spool, signed"),
        (S.sign_config(config(v + 2, watchdog={"device": "/dev/sda"}), alice_key, "alice"),
         "watchdog.device", "watchdog.device = /dev/sda, signed"),
        (json.dumps(config(v + 3)).encode(), "signature: missing", "an unsigned config"),
        (S.sign_config(config(v + 4), alice_key, "alice").replace(b'"publish_interval_s":2',
                                                                  b'"publish_interval_s":9'),
         "signature: does not verify", "a config altered after signing"),
        (S.sign_config(config(v + 5), mallory_key, "mallory"), "signature: unknown technician \"mallory\"",
         "a config signed by an unknown technician"),
        (S.sign_config(config(v + 6), mallory_key, "alice"), "signature: does not verify",
         "a config signed with another key under alice's name"),
        (S.sign_config(config(v + 7, station="DT-OTHER"), alice_key, "alice"),
         "station: this config is for \"DT-OTHER\"", "a config signed by alice for another station"),
        (S.sign_config(config(v + 8, buses=cfg["buses"] + [{"name": "rs485", "rtu": {"device": spath}}]),
                       alice_key, "alice"),
         "buses[1].rtu.device: a pushed config may name /dev/tty*", "a serial port outside /dev, signed"),
        (S.sign_config(config(v + 9, profiles_dir=other_profiles), alice_key, "alice"),
         "profiles_dir: cannot be changed remotely", "a changed profiles_dir, signed"),
    ]
    for payload, want, what in cases:
        expect_rejected(v, payload, want, what)
        v += 1
    # The signature as the first member, and a newline after the envelope.
    signed = S.sign_config(config(v), alice_key, "alice")
    head, env = signed[:signed.index(b',"signature"')], signed[signed.index(b',"signature"') + 1:-1]
    expect_rejected(v, b"{" + env + b"," + head[1:] + b"}", "signature: malformed",
                    "the signature member first, not last")
    v += 1
    expect_rejected(v, S.sign_config(config(v), alice_key, "alice") + b"\n", "signature: malformed",
                    "bytes after the envelope")
    v += 1
    # A config whose signed version is raised after signing (a replay of an
    # old, once valid config as a new one).
    old_signed = S.sign_config(config(v), alice_key, "alice")
    expect_rejected(v + 5, old_signed.replace(b'"version":%d' % v, b'"version":%d' % (v + 5)),
                    "signature: does not verify", "a signed config whose version was raised after")
    v += 6

    t = time.monotonic()
    time.sleep(4)
    n = w.rounds_since(t)
    R.check(station.poll() is None and w.get("config_version", 0) == 0 and n >= 3,
            "after every rejection the old config runs: status config_version %s, %d batch rounds "
            "in 4 s at the old 1 s interval" % (w.get("config_version", 0), n))
    R.check(not os.path.exists(os.path.join(state, "config.json")), "nothing rejected was persisted")
    log = open(os.path.join(work, "station.log"), errors="replace").read()
    R.check("pushed config rejected" in log and "signature: missing" in log,
            "the station logs each rejection with its reason")

    # A correctly signed config is applied and its signer recorded.
    good = S.sign_config(config(v), alice_key, "alice")
    publish(good)
    a = w.ack(v)
    R.check(a is not None and a.get("result") == "applied" and a.get("signed_by") == "alice",
            "a config signed by alice: applied, config/ack signed_by alice (%s)" % a)
    try:
        H.wait_for(lambda: w.get("config_version") == v and w.get("config_signed_by") == "alice", 10,
                   what="status with the new config")
    except TimeoutError:
        pass
    R.check(w.get("config_version") == v and w.get("config_signed_by") == "alice",
            "the status carries config_version %d and config_signed_by alice (%s, %s)"
            % (v, w.get("config_version"), w.get("config_signed_by")))
    t = time.monotonic()
    time.sleep(6.5)
    n = w.rounds_since(t)
    R.check(1 <= n <= 4, "the new 2 s interval is in force (%d rounds in 6.5 s)" % n)
    persisted = os.path.join(state, "config.json")
    R.check(os.path.exists(persisted) and open(persisted, "rb").read() == good,
            "config.json keeps the message exactly as signed")
    log = open(os.path.join(work, "station.log"), errors="replace").read()
    R.check("config applied version=%d signed_by=alice" % v in log, "the log records who signed")
    # An older signed config replayed: ignored (no ack), the new one keeps running.
    with w.lock:
        n_acks = len(w.acks)
    publish(S.sign_config(config(v - 1), alice_key, "alice"))
    time.sleep(2)
    with w.lock:
        n_acks = len(w.acks) - n_acks
    R.check(n_acks == 0 and w.get("config_version") == v,
            "an older signed config replayed is ignored (status still %s)" % w.get("config_version"))
    publish(b"")  # clear the retained config

    # A restart re-verifies the persisted config.
    R.check(station.stop() == 0, "the station exits 0 on SIGTERM")
    with w.lock:
        w.status = None
    station = start()
    try:
        H.wait_for(lambda: w.get("state") == "online", 15, what="station online again")
    except TimeoutError:
        pass
    R.check(w.get("config_version") == v and w.get("config_signed_by") == "alice",
            "after a restart the persisted signed config runs (%s, %s)"
            % (w.get("config_version"), w.get("config_signed_by")))
    R.check(station.stop() == 0, "the station exits 0 on SIGTERM")
    # Alice's key removed: the persisted config no longer verifies; the file runs.
    os.unlink(os.path.join(sdir, "technicians", "alice.pub"))
    with w.lock:
        w.status = None
    station = start()
    try:
        H.wait_for(lambda: w.get("state") == "online", 15, what="station online again")
    except TimeoutError:
        pass
    R.check(w.get("state") == "online" and w.get("config_version", 0) == 0
            and not w.get("config_signed_by"),
            "with alice's key removed the persisted config is ignored: the file runs (%s)"
            % w.get("config_version", 0))
    log = open(os.path.join(work, "station.log"), errors="replace").read()
    R.check("persisted config ignored" in log and "no technician keys installed" in log,
            "the station logs why it ignored the persisted config")
    R.check(station.stop() == 0, "the station exits 0 on SIGTERM")
    # A config.json forged in the state directory (writable by the station's user):
    # unsigned, or signed by a key the station does not trust. Alice is trusted again.
    S.install_technician(spath, alice_pub)
    forged_wd = {"device": os.path.join(state, "spool.db"), "timeout_s": 30}
    for forged, why in ((json.dumps(config(v + 50, watchdog=forged_wd)).encode(), "signature: missing"),
                        (S.sign_config(config(v + 50), mallory_key, "mallory"),
                         "signature: unknown technician")):
        with open(persisted, "wb") as f:
            f.write(forged)
        with w.lock:
            w.status = None
        station = start()
        try:
            H.wait_for(lambda: w.get("state") == "online", 15, what="station online again")
        except TimeoutError:
            pass
        log = open(os.path.join(work, "station.log"), errors="replace").read()
        R.check(w.get("state") == "online" and w.get("config_version", 0) == 0
                and log.count("persisted config ignored") >= 2 and why in log.split("persisted config ignored")[-1],
                "a forged config.json (%s) is ignored at start: the file runs (%s)"
                % (why, w.get("config_version", 0)))
        R.check(station.stop() == 0, "the station exits 0 on SIGTERM")

    # The local file obeys the watchdog rule too.
    bad = dict(cfg, watchdog={"device": os.path.join(state, "spool.db"), "timeout_s": 30})
    bpath = H.write_json(os.path.join(sdir, "bad.json"), bad)
    try:
        res = H.run([H.bin_path("agri-station"), "--config", bpath], timeout=10, wrap=True)
        rc, err = res.returncode, res.stderr.strip()
    except Exception as e:  # it started, with the spool as its "watchdog"
        rc, err = None, "still running after 10 s (%s)" % e.__class__.__name__
    R.check(rc == 78 and "watchdog.device: expected /dev/watchdog" in err,
            "a local config with watchdog.device outside /dev/watchdog*: exit 78 with the reason "
            "(rc=%s %s)" % (rc, err))

    # agrictl provision --technicians installs the public keys beside station.json.
    try:
        ctl = H.bin_path("agrictl")
    except FileNotFoundError:
        ctl = None
    if ctl:
        out = os.path.join(work, "prov")
        res = H.run([ctl, "provision", "--station", ST, "--out", out, "--passwd",
                     os.path.join(work, "passwd"), "--acl", os.path.join(work, "acl"),
                     "--technicians", keys])
        inst = os.path.join(out, "technicians", "alice.pub")
        R.check(res.returncode == 0 and os.path.exists(inst)
                and open(inst).read() == open(alice_pub).read()
                and not os.path.exists(os.path.join(out, "technicians", "alice.key")),
                "agrictl provision --technicians copies alice.pub (only the .pub) into "
                "OUT/technicians/ (rc=%d %s%s)" % (res.returncode, res.stdout.strip(), res.stderr.strip()))
        res = H.run([ctl, "provision", "--station", ST + "b", "--out", os.path.join(work, "prov2"),
                     "--passwd", os.path.join(work, "passwd"), "--acl", os.path.join(work, "acl"),
                     "--technicians", os.path.join(work, "etc")])
        R.check(res.returncode == 1 and "no NAME.pub key" in res.stderr,
                "--technicians with no key there: exit 1 (%s)" % res.stderr.strip())
    pub.disconnect()
    pub.loop_stop()
    w.close()
    mq.stop()
    R.done()


if __name__ == "__main__":
    main()
