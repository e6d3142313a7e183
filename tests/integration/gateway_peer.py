"""Helpers for the gateway's integration tests: an independent station peer
(python3-paho-mqtt) speaking the end-to-end ack protocol of docs/interfaces.md §2,
a started agri-gateway, and readers of its SQLite views."""
import json
import os
import sqlite3
import threading
import time

import harness

PREFIX = "agri/v1"
# Readings' ts base: 30 days ago (whole minutes), inside the gateway's clock
# window (now + 10 min .. now - 60 days) whatever day the tests run; seq n
# is stamped n seconds later, so even 900,000 seqs stay 20 days in the past.
T0_MS = (int(time.time()) // 60 * 60 - 30 * 86400) * 1000
SEQ_MS = 1000


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def batch(station, seq, n=6, base_ms=None, sensor="s1"):
    """A valid telemetry batch: n readings with distinct metrics/ts."""
    base = T0_MS + seq * SEQ_MS if base_ms is None else base_ms
    readings = [{"ts": iso(base + i), "sensor": sensor, "metric": "m%d" % (i % 3),
                 "value": seq + i / 10.0, "unit": "g/L", "q": "ok"} for i in range(n)]
    return {"v": 1, "station": station, "seq": seq, "sent_at": iso(base + n),
            "readings": readings}


class Station:
    """A station's publisher: keeps every batch until the gateway acks its
    seq, resends unacked batches after ack_timeout and after reconnects."""

    def __init__(self, port, name, ack_timeout=2.0, user=None, password=None, ca=None):
        """user/password/ca: a station account on a TLS listener (the
        shipped broker configuration), else an anonymous local broker."""
        import paho.mqtt.client as mqtt
        import ssl
        self.name = name
        self.port = port
        self.ack_timeout = ack_timeout
        self.lock = threading.Lock()
        self.unacked = {}      # seq -> (payload, last_sent)
        self.first_sent = {}   # seq -> first publish time
        self.latencies = []    # first publish -> end-to-end ack, s
        self.acked = set()
        self.ack_msgs = 0
        self.resends = 0
        self.connected = threading.Event()
        self.c = mqtt.Client(client_id=name if user else "st-" + name, clean_session=True)
        if user:
            self.c.username_pw_set(user, password)
        if ca:
            self.c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED,
                           tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.c.on_connect = self._on_connect
        self.disconnects = 0
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.reconnect_delay_set(0.1, 1.0)
        self.c.connect_async("localhost" if ca else "127.0.0.1", port, 10)
        self.c.loop_start()
        self._stop = False
        self.t = threading.Thread(target=self._resender, daemon=True)
        self.t.start()

    def _on_disconnect(self, c, u, rc):
        self.disconnects += 1
        self.connected.clear()

    def _on_connect(self, c, u, flags, rc):
        if rc != 0:
            return
        c.subscribe("%s/%s/ack" % (PREFIX, self.name), qos=1)
        self.connected.set()
        with self.lock:  # resend everything unacked after a reconnect
            for seq in self.unacked:
                p, _ = self.unacked[seq]
                self.unacked[seq] = (p, 0.0)

    def _on_message(self, c, u, m):
        try:
            a = json.loads(m.payload)
        except ValueError:
            return
        now = time.time()
        with self.lock:
            self.ack_msgs += 1
            for first, last in a.get("seqs", []):
                for s in range(first, last + 1):
                    if self.unacked.pop(s, None) is not None and s in self.first_sent:
                        self.latencies.append(now - self.first_sent.pop(s))
                    self.acked.add(s)

    def publish(self, seq, payload, expect_ack=True):
        if isinstance(payload, dict):
            payload = json.dumps(payload, separators=(",", ":"))
        now = time.time()
        if expect_ack:
            with self.lock:
                self.unacked[seq] = (payload, now)
                self.first_sent.setdefault(seq, now)
        if self.connected.is_set():
            self.c.publish("%s/%s/telemetry" % (PREFIX, self.name), payload, qos=1)

    def raw(self, topic_suffix, payload, qos=1, retain=False):
        self.c.publish("%s/%s/%s" % (PREFIX, self.name, topic_suffix), payload, qos=qos, retain=retain)

    def _resender(self):
        while not self._stop:
            time.sleep(0.2)
            if not self.connected.is_set():
                continue
            now = time.time()
            with self.lock:
                due = [(s, p) for s, (p, t) in self.unacked.items() if now - t >= self.ack_timeout]
                for s, p in due:
                    self.unacked[s] = (p, now)
            for s, p in sorted(due)[:500]:
                self.resends += 1
                self.c.publish("%s/%s/telemetry" % (PREFIX, self.name), p, qos=1)

    def pending(self):
        with self.lock:
            return len(self.unacked)

    def close(self):
        self._stop = True
        self.c.loop_stop()
        self.c.disconnect()


def write_config(d, port, db="agri.db", client_id="gw-test", shared_group=None, extra_db=None,
                 extra=None):
    cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % port, "client_id": client_id,
                      "shared_group": shared_group, "keepalive_s": 10},
           "db": dict({"path": db, "retention_days": 400}, **(extra_db or {}))}
    cfg.update(extra or {})
    return harness.write_json(os.path.join(d, "gateway-%s.json" % client_id), cfg)


class Gateway:
    def __init__(self, d, config, name="gw"):
        self.d = d
        self.config = config
        self.name = name
        self.proc = None
        self.starts = 0

    def start(self, wait=True):
        self.starts += 1
        log = os.path.join(self.d, "%s.log" % self.name)
        self.proc = harness.Proc([harness.bin_path("agri-gateway"), "--config", self.config,
                                  "--log-level", "info"], log)
        if wait:
            self.wait_subscribed()
        return self

    def wait_subscribed(self, timeout=15):
        n = self.starts
        harness.wait_for(lambda: self.proc.log_text().count("subscribed topics") >= n
                         or (self.proc.poll() is not None and _raise(self.proc)),
                         timeout, what="%s subscribed" % self.name)

    def kill9(self):
        self.proc.kill9()

    def stop(self):
        return self.proc.stop()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


def _raise(proc):
    raise RuntimeError("gateway exited: %s" % proc.describe())


def query(db, sql, args=()):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()
