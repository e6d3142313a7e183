"""`agrictl config push` round trip against a running agri-station (real
mosquitto, agri-sim over Modbus TCP), docs/interfaces.md §11 and docs/station.md
"Remote config":

- `agrictl provision --technician alice --out DIR` makes alice.key (0600)
  and alice.pub (0644), and never replaces an existing key; alice.pub is
  installed in technicians/ beside the station's station.json;
- a valid config, signed with --key alice.key → exit 0 "applied (signed by
  alice)"; the station's retained status then carries the new
  config_version and config_signed_by, and its batches come at the new
  interval (1 s → 3 s); the published message is the signature envelope;
- no --key (and no AGRI_TECHNICIAN_KEY) → exit 2; a key the station does
  not trust → exit 1 "rejected" "unknown technician";
- the next push gets the next version (the broker's retained one + 1);
- a broken config (a sensor naming a bus that does not exist) is refused
  locally (exit 78, `FILE:LINE:COLUMN: path: reason`); with --force the station gets it
  and rejects it → exit 1 "rejected" with the station's reason; the station
  keeps running the previous config;
- a config for another station is refused locally (exit 78);
- no station listening → exit 3 after --timeout-s.
"""
import json
import os
import re
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

R = harness.Result("test_agrictl_push")
try:
    CTL = harness.bin_path("agrictl")
except FileNotFoundError as e:  # a build without the gateway (-DAGRI_WITH_GATEWAY=OFF) has no agrictl
    print("SKIP: %s" % e)
    sys.exit(77)
ST = "DT-PUSH1"


class Watcher:
    """Records the station's status and telemetry arrival times."""

    def __init__(self, port):
        self.lock = threading.Lock()
        self.status = None
        self.batches = []  # (monotonic time, seq)
        self.c = mqtt.Client(client_id="push-watcher", clean_session=True)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe(
            [("agri/v1/%s/status" % ST, 1), ("agri/v1/%s/telemetry" % ST, 1)])
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
            else:
                self.batches.append((time.monotonic(), doc.get("seq")))
                # ack it, as a gateway would, so the spool stays small
                c.publish("agri/v1/%s/ack" % ST, json.dumps(
                    {"v": 1, "station": ST, "seqs": [[doc["seq"], doc["seq"]]]}), qos=1)

    def config_version(self):
        with self.lock:
            if self.status is None:
                return None
            return self.status.get("config_version", 0)  # absent while 0

    def signed_by(self):
        with self.lock:
            return (self.status or {}).get("config_signed_by")

    def seals_since(self, t0):
        """Publish rounds since t0: batches less than 0.25 s apart are one round (a
        station may seal two batches at once when a poll lands during the seal)."""
        with self.lock:
            ts = sorted(t for t, _ in self.batches if t >= t0)
        return sum(1 for i, t in enumerate(ts) if i == 0 or t - ts[i - 1] > 0.25)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


KEY = None  # alice's private key, made in main()


def push(broker, path, *extra, timeout=30, key=True):
    argv = [CTL, "config", "push", "--station", ST, "--broker", broker]
    if key:
        argv += ["--key", KEY]
    return harness.run(argv + list(extra) + [path], timeout=timeout)


def main():
    global KEY
    work = harness.tmpdir("agri-push-")
    keys = os.path.join(work, "keys")
    res = harness.run([CTL, "provision", "--technician", "alice", "--out", keys])
    KEY = os.path.join(keys, "alice.key")
    modes = [os.stat(os.path.join(keys, f)).st_mode & 0o777 if os.path.exists(os.path.join(keys, f)) else None
             for f in ("alice.key", "alice.pub")]
    R.check(res.returncode == 0 and modes == [0o600, 0o644],
            "provision --technician alice: alice.key 0600, alice.pub 0644 (rc=%d %s %s)"
            % (res.returncode, [oct(m) if m else m for m in modes], res.stderr.strip()))
    with open(KEY, "rb") as f:
        key_before = f.read()
    res = harness.run([CTL, "provision", "--technician", "alice", "--out", keys])
    with open(KEY, "rb") as f:
        R.check(res.returncode == 1 and "exists" in res.stderr and f.read() == key_before,
                "provision --technician again: exit 1, the existing key is kept (%s)" % res.stderr.strip())
    res = harness.run([CTL, "provision", "--technician", "../x", "--out", keys])
    R.check(res.returncode == 2, "provision --technician ../x: exit 2 (%s)" % res.stderr.strip())
    res = harness.run([CTL, "provision", "--technician", "bob", "--out", os.path.join(work, "bob")])
    R.check(res.returncode == 0, "a second technician, bob, whom the station will not trust")
    mq = harness.Mosquitto(os.path.join(work, "mq")).start()
    sim_port = harness.free_port()
    sim = harness.Proc([harness.bin_path("agri-sim"), "--tcp", "127.0.0.1:%d" % sim_port,
                        "--slave", "1:sensecap-s-ec-01", "--slave", "3:epever-tracer"],
                       os.path.join(work, "sim.log"), wrap=True)
    harness.wait_port(sim_port, 10, sim)
    cfg = {
        "station": ST,
        "broker": {"url": mq.url, "keepalive_s": 5},
        "state_dir": os.path.join(work, "state"),
        "profiles_dir": harness.PROFILES,
        "publish_interval_s": 1,
        "ack_timeout_s": 5,
        "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port}, "timeout_ms": 500}],
        "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01",
                     "interval_s": 0.5}],
    }
    spath = harness.write_json(os.path.join(work, "station.json"), cfg)
    os.makedirs(os.path.join(work, "technicians"))
    shutil.copy(os.path.join(keys, "alice.pub"), os.path.join(work, "technicians"))
    w = Watcher(mq.port)
    station = harness.Proc([harness.bin_path("agri-station"), "--config", spath, "--log-level", "info"],
                           os.path.join(work, "station.log"), wrap=True)
    harness.wait_for(lambda: w.config_version() is not None, 15, what="station status")
    R.check(w.config_version() == 0, "the station runs config version 0 (%s)" % w.config_version())
    harness.wait_for(lambda: len(w.batches) >= 2, 15, what="batches at 1 s")
    t = time.monotonic()
    time.sleep(5)
    n = w.seals_since(t)
    R.check(n >= 3, "before the push: batches every 1 s (%d rounds in 5 s)" % n)

    # 1. a valid config: slower publishing, a second sensor
    new = json.loads(json.dumps(cfg))
    new["publish_interval_s"] = 3
    new["sensors"].append({"name": "solar", "bus": "lan", "slave": 3, "profile": "epever-tracer",
                           "interval_s": 1})
    npath = harness.write_json(os.path.join(work, "new.json"), new)
    res = push(mq.url, npath, "--timeout-s", "5", key=False)
    R.check(res.returncode == 2 and "--key" in res.stderr,
            "push without --key: exit 2, nothing sent (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    res = push(mq.url, npath, "--key", os.path.join(work, "bob", "bob.key"), "--timeout-s", "20", key=False)
    R.check(res.returncode == 1 and "version 1 rejected" in res.stdout and "unknown technician \"bob\"" in res.stdout,
            "push signed by bob, whom the station does not trust: exit 1, rejected (rc=%d %s%s)"
            % (res.returncode, res.stdout, res.stderr))
    res = push(mq.url, npath, "--timeout-s", "20")
    R.check(res.returncode == 0 and "version 2 applied (signed by alice)" in res.stdout,
            "push a valid config signed by alice: exit 0, \"applied (signed by alice)\" (rc=%d %s%s)"
            % (res.returncode, res.stdout, res.stderr))
    try:
        harness.wait_for(lambda: w.config_version() == 2, 10, what="status config_version 2")
    except TimeoutError:
        pass
    R.check(w.config_version() == 2 and w.signed_by() == "alice",
            "the station's status carries config_version 2, config_signed_by alice (%s, %s)"
            % (w.config_version(), w.signed_by()))
    t1 = time.monotonic()
    time.sleep(7)
    n = w.seals_since(t1)
    R.check(1 <= n <= 3, "batches now come every 3 s, not every 1 s: %d rounds in 7 s" % n)
    persisted = os.path.join(cfg["state_dir"], "config.json")
    R.check(os.path.exists(persisted), "the station persisted the pushed config (%s)" % persisted)
    with open(persisted, "rb") as f:
        msg = f.read()
    R.check(re.search(rb',"version":2,"signature":\{"by":"alice","ed25519":"[A-Za-z0-9+/]{86}=="\}\}$', msg)
            is not None, "the message is the signature envelope, version last before it: ...%r" % msg[-140:])

    # 2. the next push gets the next version (the key from AGRI_TECHNICIAN_KEY)
    new["publish_interval_s"] = 1.5
    harness.write_json(npath, new)
    res = harness.run([CTL, "config", "push", "--station", ST, "--broker", mq.url, "--timeout-s", "20", npath],
                      env={"AGRI_TECHNICIAN_KEY": KEY})
    R.check(res.returncode == 0 and "version 3 applied" in res.stdout,
            "the next push is version 3, applied; the key from AGRI_TECHNICIAN_KEY (rc=%d %s)"
            % (res.returncode, res.stdout.strip()))

    # 3. a broken config: a sensor on a bus that does not exist
    bad = json.loads(json.dumps(new))
    bad["sensors"][1]["bus"] = "rs485-missing"
    bpath = harness.write_json(os.path.join(work, "bad.json"), bad)
    res = push(mq.url, bpath, "--timeout-s", "10")
    R.check(res.returncode == 78 and re.match(re.escape(bpath) + r":\d+:\d+: sensors\[1\]\.bus", res.stderr),
            "a broken config is refused before it is sent: exit 78 (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    res = push(mq.url, bpath, "--force", "--timeout-s", "20")
    R.check(res.returncode == 1 and "version 4 rejected" in res.stdout and "sensors[1].bus" in res.stdout
            and "rs485-missing" in res.stdout,
            "with --force the station rejects it: exit 1, \"rejected\" with the reason (rc=%d %s%s)"
            % (res.returncode, res.stdout, res.stderr))
    time.sleep(1)
    R.check(station.poll() is None and w.config_version() == 3,
            "the station keeps running version 3 (status %s)" % w.config_version())

    # 4. a config for another station
    other = json.loads(json.dumps(new))
    other["station"] = "DT-OTHER"
    opath = harness.write_json(os.path.join(work, "other.json"), other)
    res = push(mq.url, opath, "--timeout-s", "5")
    R.check(res.returncode == 78 and "station" in res.stderr,
            "a config naming another station is refused: exit 78 (%s)" % res.stderr.strip())

    # 5. no station: exit 3 after --timeout-s
    R.check(station.stop() == 0, "the station exits 0 on SIGTERM")
    t = time.monotonic()
    res = push(mq.url, npath, "--timeout-s", "2")
    el = time.monotonic() - t
    R.check(res.returncode == 3 and "no ack" in res.stderr and 1.8 < el < 8,
            "no station running: exit 3 after --timeout-s 2 (rc=%d, %.1f s, %s)"
            % (res.returncode, el, res.stderr.strip()))
    # an unreachable broker
    res = push("tcp://127.0.0.1:%d" % harness.free_port(), npath, "--timeout-s", "2")
    R.check(res.returncode == 1 and "cannot reach the broker" in res.stderr
            and "connection refused" in res.stderr,
            "an unreachable broker: exit 1 (rc=%d %s)" % (res.returncode, res.stderr.strip()))

    w.close()
    sim.stop()
    mq.stop()
    R.done()


if __name__ == "__main__":
    main()
