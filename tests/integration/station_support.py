"""Helpers for the agri-station integration tests (test_station_*.py):
a gateway stand-in that stores readings and sends end-to-end acks per
docs/interfaces.md §2, agri-sim / station launchers, the spool reader, and an
independent PSS-78 (UNESCO 1983 + Hill 1986, as TEOS-10 gsw_sp_from_c)."""
import json
import math
import os
import sqlite3
import threading
import time

import harness as H


def sp_from_c(c, t):
    """Practical salinity from conductivity (mS/cm) and temperature (°C), p=0."""
    a = (0.0080, -0.1692, 25.3851, 14.0941, -7.0261, 2.7081)
    b = (0.0005, -0.0056, -0.0066, -0.0375, 0.0636, -0.0144)
    cc = (0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7, 1.0031e-9)
    k = 0.0162
    t68 = t * 1.00024
    ft68 = (t68 - 15.0) / (1.0 + k * (t68 - 15.0))
    r = c / 42.914
    if r <= 0:
        return 0.0
    rt = r / (cc[0] + (cc[1] + (cc[2] + (cc[3] + cc[4] * t68) * t68) * t68) * t68)
    x = math.sqrt(rt)
    sp = (a[0] + (a[1] + (a[2] + (a[3] + (a[4] + a[5] * x) * x) * x) * x) * x
          + ft68 * (b[0] + (b[1] + (b[2] + (b[3] + (b[4] + b[5] * x) * x) * x) * x) * x))
    if sp < 2:
        hx = 400.0 * rt
        sqrty = 10.0 * x
        part1 = 1.0 + hx * (1.5 + hx)
        part2 = 1.0 + sqrty * (1.0 + sqrty * (1.0 + sqrty))
        sp = max(sp - a[0] / part1 - b[0] * ft68 / part2, 0.0)
    return sp


class Gateway:
    """A gateway stand-in: a persistent MQTT session that stores readings
    (dedup by (station, sensor, metric, ts)) and acks the seqs that
    ack_pred(seq) accepts, after storing them (commit, then ack)."""

    def __init__(self, port, prefix="agri/v1", client_id="gw-standin", ack_pred=None):
        self.port = port
        self.prefix = prefix
        self.client_id = client_id
        self.ack_pred = ack_pred or (lambda seq: True)
        self.lock = threading.Lock()
        self.readings = {}      # (station, sensor, metric, ts) -> (value, q)
        self.arrivals = {}      # seq -> [monotonic times received]
        self.status = {}        # station -> last status dict
        self.config_acks = []   # config/ack payloads
        self.client = None

    def start(self):
        import paho.mqtt.client as mqtt
        c = mqtt.Client(client_id=self.client_id, clean_session=False)
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.connect("127.0.0.1", self.port, 30)
        c.loop_start()
        self.client = c
        H.wait_for(lambda: c.is_connected(), 10, what="gateway stand-in connected")
        return self

    def stop(self):
        if self.client:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None

    def _on_connect(self, c, userdata, flags, rc):
        c.subscribe([(self.prefix + "/+/telemetry", 1), (self.prefix + "/+/status", 1),
                     (self.prefix + "/+/config/ack", 1)])

    def _on_message(self, c, userdata, msg):
        try:
            doc = json.loads(msg.payload.decode("utf-8")) if msg.payload else None
        except ValueError:
            return
        if msg.topic.endswith("/status"):
            with self.lock:
                if doc:
                    self.status[doc.get("station")] = doc
            return
        if msg.topic.endswith("/config/ack"):
            with self.lock:
                self.config_acks.append(doc)
            return
        seq = doc["seq"]
        with self.lock:
            for r in doc["readings"]:
                self.readings[(doc["station"], r["sensor"], r["metric"], r["ts"])] = (r["value"], r["q"])
            self.arrivals.setdefault(seq, []).append(time.monotonic())
        if self.ack_pred(seq):
            ack = {"v": 1, "station": doc["station"], "seqs": [[seq, seq]]}
            c.publish("%s/%s/ack" % (self.prefix, doc["station"]), json.dumps(ack), qos=1)

    def seqs(self):
        with self.lock:
            return set(self.arrivals)

    def series(self, sensor, metric):
        """[(ts, value, q)] sorted by ts."""
        with self.lock:
            out = [(k[3], v[0], v[1]) for k, v in self.readings.items()
                   if k[1] == sensor and k[2] == metric]
        return sorted(out)


def ts_seconds(ts):
    """RFC 3339 ms UTC -> seconds since the epoch (float)."""
    import calendar
    base, frac = ts[:19], ts[20:23]
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(frac) / 1000.0


def spool_depth(state_dir):
    """Batches in the station's spool (read-only; WAL allows a concurrent reader)."""
    path = os.path.join(state_dir, "spool.db")
    if not os.path.exists(path):
        return None
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return db.execute("SELECT count(*) FROM batches").fetchone()[0]
    finally:
        db.close()


def spool_seqs(state_dir):
    path = os.path.join(state_dir, "spool.db")
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        return [r[0] for r in db.execute("SELECT seq FROM batches ORDER BY seq")]
    finally:
        db.close()


def start_sim(workdir, name, slaves, tcp_port=None, rtu_dev=None, extra=()):
    """agri-sim serving slaves ([\"1:sensecap-s-ec-01\", ...]) on TCP or an RTU pty."""
    argv = [H.bin_path("agri-sim")]
    if tcp_port:
        argv += ["--tcp", "127.0.0.1:%d" % tcp_port]
    else:
        argv += ["--rtu", rtu_dev]
    for s in slaves:
        argv += ["--slave", s]
    argv += ["--seed", "7"] + list(extra)
    p = H.Proc(argv, os.path.join(workdir, name + ".log"), wrap=True)
    if tcp_port:
        H.wait_port(tcp_port, 10, p)
    else:
        time.sleep(0.3)
    return p


def station_config(workdir, broker_port, buses, sensors, **kw):
    cfg = {
        "station": kw.pop("station", "ST-IT1"),
        "broker": {"url": "tcp://127.0.0.1:%d" % broker_port, "keepalive_s": 5},
        "state_dir": os.path.join(workdir, "state"),
        "publish_interval_s": 1,
        "ack_timeout_s": 3,
        "profiles_dir": H.PROFILES,
        "buses": buses,
        "sensors": sensors,
    }
    cfg.update(kw)
    return cfg


def make_technician(keydir, name):
    """A technician's Ed25519 key pair made with the openssl CLI (independent of
    agrictl): (keydir/NAME.key, keydir/NAME.pub)."""
    import subprocess
    os.makedirs(keydir, exist_ok=True)
    key = os.path.join(keydir, name + ".key")
    pub = os.path.join(keydir, name + ".pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    return key, pub


def install_technician(config_path, pub):
    """Trusts a technician on a station: its NAME.pub into the technicians/
    directory beside the station's config file (docs/station.md)."""
    import shutil
    d = os.path.join(os.path.dirname(os.path.abspath(config_path)), "technicians")
    os.makedirs(d, exist_ok=True)
    shutil.copy(pub, os.path.join(d, os.path.basename(pub)))


def ed25519_sign(key, data):
    """Signs bytes with a PEM private key (openssl pkeyutl -rawin, which reads
    Ed25519's one-shot input from a file, not a pipe): 64 bytes."""
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        r = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", f.name],
                           check=True, capture_output=True)
    return r.stdout


def sign_config(doc, key, by):
    """A pushed config in its signature envelope (docs/station.md "Remote config"):
    D (doc as compact JSON, or bytes), its closing brace replaced by
    ,"signature":{"by":BY,"ed25519":BASE64}} where the signature covers D's bytes."""
    import base64
    d = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
    sig = base64.b64encode(ed25519_sign(key, d)).decode()
    return d[:-1] + (',"signature":{"by":"%s","ed25519":"%s"}}' % (by, sig)).encode()


def start_station(workdir, cfg, name="station", log_level="info"):
    path = H.write_json(os.path.join(workdir, name + ".json"), cfg)
    p = H.Proc([H.bin_path("agri-station"), "--config", path, "--log-level", log_level],
               os.path.join(workdir, name + ".log"), wrap=True)
    return p, path
