"""One hostile station can't blind the province (issue: one station's
credentials stopped every alert in the province, for good).

Through the SHIPPED broker configuration (TLS station listener, per-station
accounts and ACL from `agrictl provision`, the hub's accounts on loopback),
20 honest stations (python3-paho-mqtt, one batch a second each, readings
stamped now) report while one station's account (python3-paho-mqtt, in its
own process) does everything it can:

- 330,000 new series (330 batches of 1,000 new sensor names, values above
  the salinity threshold: before the budgets, this filled the alert engine's
  global key table and the writer retried one batch forever);
- 10 MiB packets;
- 2,000 messages a second;
- readings 5 years ahead, 20 and 100 years back;
- connecting with the gateway's client id and with another station's.

Midway the gateway is killed (-9) and restarted. Throughout and after:
every honest batch is committed and acked end to end (p99 <= 2 s); an
honest salinity crossing raises within 5 s (before and after the restart);
the gateway's peak RSS stays <= 64 MiB; its database grows by no more than
the budgets allow (figures printed); the hostile station gets its
"misbehaving" and "clock" alerts and holds at most its 256 series.

AGRI_HOSTILE_S (default 40) sets the flood's length in seconds."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

PREFIX = "agri/v1"
EVIL = "DT-EVIL"
GW_ID = "agri-gateway"  # the documented default client id


def iso_now(off_ms=0):
    return gp.iso(int(time.time() * 1000) + off_ms)


# --- the hostile station (its own process: --evil PORT CA PASSWORD SECONDS OUT) --------------

def evil_main(port, ca, password, seconds, out):
    import ssl
    import paho.mqtt.client as mqtt

    stats = {"series_batches": 0, "big": 0, "flood": 0, "clock": 0, "takeovers": 0,
             "takeover_connacks": [], "disconnects": 0}
    connected = threading.Event()

    class Client(mqtt.Client):
        """paho 1.6 lets an SSL error on a socket the broker closed (an
        SSLEOFError mid-write: the 10 MiB connection below takes over this
        one's client id, the listener's user name) escape its network
        thread, which dies: the flood then stops without a word. As a
        connection lost: paho reconnects."""

        def _sock_send(self, buf):
            try:
                return super()._sock_send(buf)
            except ssl.SSLError as e:  # want-read/write: BlockingIOError already
                raise ConnectionResetError(str(e))

        def _sock_recv(self, bufsize):
            try:
                return super()._sock_recv(bufsize)
            except ssl.SSLError as e:  # want-read/write: BlockingIOError already
                raise ConnectionResetError(str(e))

    def client(cid):
        c = Client(client_id=cid, clean_session=True)
        c.username_pw_set(EVIL, password)
        c.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        return c

    c = client(EVIL)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_connect = lambda cl, u, f, rc: connected.set() if rc == 0 else None

    def on_disc(cl, u, rc):
        connected.clear()
        stats["disconnects"] += 1
    c.on_disconnect = on_disc
    c.reconnect_delay_set(0.05, 0.5)
    c.connect_async("localhost", port, 30)
    c.loop_start()
    connected.wait(10)
    topic = "%s/%s/telemetry" % (PREFIX, EVIL)
    seq = [1]

    def send(readings, qos=1):
        b = {"v": 1, "station": EVIL, "seq": seq[0], "sent_at": iso_now(), "readings": readings}
        seq[0] += 1
        if not connected.is_set():
            connected.wait(2)
        c.publish(topic, json.dumps(b, separators=(",", ":")), qos=qos)

    def reading(sensor, off_ms=0, value=9.0, metric="salinity"):
        return {"ts": iso_now(off_ms), "sensor": sensor, "metric": metric, "value": value,
                "unit": "g/L", "q": "ok"}

    stop = threading.Event()

    def takeovers():  # as the gateway and as another station, again and again
        while not stop.is_set():
            for cid in (GW_ID, "DT-H01"):
                t = client(cid)
                rcs = []
                t.on_connect = lambda cl, u, f, rc: rcs.append(rc)
                try:
                    t.connect("localhost", port, 30)
                    t.loop_start()
                    time.sleep(0.3)
                    t.loop_stop()
                    t.disconnect()
                except OSError:
                    pass
                stats["takeovers"] += 1
                stats["takeover_connacks"] = (stats["takeover_connacks"] + rcs)[-10:]
            time.sleep(0.5)

    th = threading.Thread(target=takeovers, daemon=True)
    th.start()
    # A wrong clock first, while the station is still within its message
    # budget (past it, what it sends is dropped at the door and only sampled):
    # 5 years ahead, 20 and 100 years back.
    for _ in range(5):
        send([reading("sonde1", 5 * 365 * 86400000), reading("sonde1", -20 * 365 * 86400000),
              reading("sonde1", -100 * 365 * 86400000)])
        stats["clock"] += 1
    t_end = time.time() + seconds
    n = 0
    while time.time() < t_end:
        # 330,000 new series: 1,000 new sensor names a batch (spread over the run)
        if stats["series_batches"] < 330:
            k = stats["series_batches"]
            send([reading("x%d-%d" % (k, i), -i) for i in range(1000)])
            stats["series_batches"] += 1
        # 2,000 messages a second for a tenth of a second, every loop (QoS 0:
        # a flood does not wait for PUBACKs, so it never queues up behind us)
        t0 = time.time()
        for i in range(200):
            send([reading("sonde1", -i, 1.0)], qos=0)
            stats["flood"] += 1
        # the wrong clock again
        send([reading("sonde1", 5 * 365 * 86400000), reading("sonde1", -20 * 365 * 86400000),
              reading("sonde1", -100 * 365 * 86400000)])
        stats["clock"] += 1
        # now and then a 10 MiB packet, on a connection of its own (the broker
        # cuts it as soon as the packet's header announces the size)
        n += 1
        if n % 25 == 0:
            big = client(EVIL)
            try:
                big.connect("localhost", port, 30)
                big.publish(topic, b"{" + b" " * (10 * 1024 * 1024) + b"}", qos=1)
                for _ in range(20):
                    if big.loop(0.05) != 0:
                        break
                stats["big"] += 1
            except (OSError, ValueError):
                stats["big"] += 1
            try:
                big.disconnect()
            except Exception:
                pass
        time.sleep(max(0.0, 0.1 - (time.time() - t0)))
    stop.set()
    th.join(5)
    # What paho still holds goes out before the end (at most 10 s).
    t_drain = time.time() + 10
    while time.time() < t_drain and (c._out_messages or c._out_packet):
        time.sleep(0.1)
    c.loop_stop()
    with open(out, "w") as f:
        json.dump(stats, f)


if len(sys.argv) > 1 and sys.argv[1] == "--evil":
    evil_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), sys.argv[6])
    sys.exit(0)

# --- the test ---------------------------------------------------------------------------------

import broker_support  # noqa: E402

R = harness.Result("test_gateway_hostile")
try:
    harness.bin_path("agrictl")
except FileNotFoundError as e:
    print("SKIP: %s" % e)
    sys.exit(77)
FLOOD_S = float(os.environ.get("AGRI_HOSTILE_S", "40"))
N_HONEST = 20
d = harness.tmpdir()
b = broker_support.ShippedBroker(d)
honest_names = ["DT-H%02d" % i for i in range(1, N_HONEST + 1)]
pw = {s: b.provision(s) for s in honest_names + [EVIL]}
gw_pw = b.hub_account("gateway")
with open(os.path.join(d, "gateway.pass"), "w") as f:
    f.write(gw_pw + "\n")
b.start()

db = os.path.join(d, "agri.db")
rules = harness.write_json(os.path.join(d, "rules.json"), {"rules": [
    {"id": "salinity-high", "metric": "salinity", "above": 4.0, "hysteresis": 0.3, "severity": "critical"},
    {"id": "salinity-low", "metric": "salinity", "below": 0.01}]})
cfg = harness.write_json(os.path.join(d, "gateway.json"), {
    "broker": {"url": "tcp://127.0.0.1:%d" % b.loop_port, "username": "gateway",
               "password_file": "gateway.pass", "client_id": GW_ID, "keepalive_s": 10},
    "db": {"path": "agri.db"}, "rules_file": "rules.json"})
gw = gp.Gateway(d, cfg).start()


def peak_rss_kib(proc):
    try:
        with open("/proc/%d/status" % proc.pid) as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def db_bytes():
    return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))


stations = {s: gp.Station(b.tls_port, s, ack_timeout=3.0, user=s, password=pw[s], ca=b.ca)
            for s in honest_names}
R.check(all(s.connected.wait(10) for s in stations.values()),
        "%d honest stations connect over TLS with their own accounts" % N_HONEST)
seqs = {s: 0 for s in honest_names}
salinity = {"DT-H01": 1.0}
stop_honest = threading.Event()
honest_readings = [0]


def honest_loop():
    while not stop_honest.is_set():
        t0 = time.time()
        for s in honest_names:
            seqs[s] += 1
            now = int(time.time() * 1000)
            rs = [{"ts": gp.iso(now - 500 + i), "sensor": "sonde1", "metric": m, "value": v,
                   "unit": u, "q": "ok"}
                  for i, (m, v, u) in enumerate((("salinity", salinity.get(s, 0.5), "g/L"),
                                                 ("water_temperature", 29.0, "°C"),
                                                 ("ph", 7.1, "pH"), ("battery_voltage", 12.8, "V")))]
            stations[s].publish(seqs[s], {"v": 1, "station": s, "seq": seqs[s],
                                          "sent_at": gp.iso(now), "readings": rs})
            honest_readings[0] += len(rs)
        time.sleep(max(0.0, 1.0 - (time.time() - t0)))


def crossing(label):
    """DT-H01's salinity goes to 4.6: seconds until the alert is active."""
    salinity["DT-H01"] = 4.6
    t0 = time.time()
    try:
        harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM alerts WHERE id = ?"
                                          " AND state = 'active'",
                                          ("salinity-high/DT-H01/sonde1",))[0][0] == 1,
                         30, 0.1, what="crossing " + label)
    except TimeoutError:
        return None
    return time.time() - t0


def clear_crossing():
    salinity["DT-H01"] = 1.0
    harness.wait_for(lambda: gp.query(db, "SELECT count(*) FROM alerts WHERE id = ?"
                                      " AND state = 'active'",
                                      ("salinity-high/DT-H01/sonde1",))[0][0] == 0,
                     30, 0.2, what="crossing cleared")


th = threading.Thread(target=honest_loop, daemon=True)
th.start()
time.sleep(3)
harness.wait_for(lambda: all(s.pending() <= 1 for s in stations.values()), 20, what="honest steady")
size0 = db_bytes()
t_flood = time.time()
evil_out = os.path.join(d, "evil.json")
evil = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--evil", str(b.tls_port), b.ca,
                         pw[EVIL], str(FLOOD_S), evil_out])

# During the flood: a crossing, then the gateway killed and restarted, then another.
time.sleep(FLOOD_S * 0.25)
lat1 = crossing("during the flood")
R.check(lat1 is not None and lat1 <= 5.0,
        "an honest salinity crossing raises during the flood within 5 s (%s s)"
        % ("%.2f" % lat1 if lat1 is not None else "never"))
clear_crossing()
rss1 = peak_rss_kib(gw.proc)
time.sleep(max(0.0, t_flood + FLOOD_S * 0.5 - time.time()))
gw.kill9()
gw.start()
lat2 = crossing("after the restart")
R.check(lat2 is not None and lat2 <= 5.0,
        "after a kill -9 and restart mid-flood, an honest crossing raises within 5 s (%s s)"
        % ("%.2f" % lat2 if lat2 is not None else "never"))
evil.wait(FLOOD_S + 60)
t_flood_end = time.time()
stop_honest.set()
th.join(5)
harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 30, 0.2,
                 what="every honest batch acked")
rss2 = peak_rss_kib(gw.proc)
pending = sum(s.pending() for s in stations.values())
lat = sorted(x for s in stations.values() for x in s.latencies)
p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("inf")
R.check(pending == 0, "every honest batch committed and acked end to end (%d batches, %d pending)"
        % (sum(seqs.values()), pending))
R.check(p99 <= 2.0, "honest publish -> end-to-end ack: p50 %.3f s, p99 %.3f s, max %.3f s (p99 <= 2 s)"
        % (lat[len(lat) // 2], p99, lat[-1]) if lat else "no latencies")
n_honest = gp.query(db, "SELECT count(*) FROM v_readings WHERE station LIKE 'DT-H%'")[0][0]
R.check(n_honest == honest_readings[0], "every honest reading stored once (%d of %d)"
        % (n_honest, honest_readings[0]))
peak = max(rss1, rss2) / 1024.0
R.check(0 < peak <= 64.0, "gateway peak RSS %.1f MiB (first run %.1f, after the restart %.1f; <= 64)"
        % (peak, rss1 / 1024.0, rss2 / 1024.0))

with open(evil_out) as f:
    ev = json.load(f)
print("hostile station sent: %d series batches (%d new series), %d flood messages, %d clock batches, "
      "%d 10 MiB packets, %d takeover attempts (CONNACKs %s), %d disconnects"
      % (ev["series_batches"], ev["series_batches"] * 1000, ev["flood"], ev["clock"], ev["big"],
         ev["takeovers"], ev["takeover_connacks"], ev["disconnects"]))
R.check(ev["series_batches"] >= 330 or ev["series_batches"] * 1000 >= 100000,
        "the flood ran (%d new series names sent)" % (ev["series_batches"] * 1000))
series = gp.query(db, "SELECT count(*) FROM series se JOIN stations st ON st.id = se.station_id"
                      " WHERE st.name = ? AND se.retired = 0", (EVIL,))[0][0]
R.check(series <= 256, "the hostile station holds %d series (budget 256)" % series)
evil_readings = gp.query(db, "SELECT count(*) FROM v_readings WHERE station = ?", (EVIL,))[0][0]
dead = gp.query(db, "SELECT kind, stored, suppressed, evicted FROM v_dead_letter_counts ORDER BY kind")
dl_bytes = gp.query(db, "SELECT coalesce(sum(length(CAST(payload AS BLOB)) + length(reason) + length(topic)),"
                        " 0), count(*) FROM dead_letters")[0]
growth = db_bytes() - size0
minutes = (t_flood_end - t_flood) / 60.0
# What the budgets allow the hostile station: 30,000 readings a minute (burst
# 60,000), 256 series, 60 dead letters a minute (burst 120) of at most 8 KiB;
# the honest stations' readings besides. ~100 bytes a stored reading with its
# index and the WAL's slack.
allowed_readings = 60000 + 30000 * minutes
allowed = (allowed_readings + honest_readings[0]) * 100 + (120 + 60 * minutes) * 9000 + 8 * 2**20
print("database: %.1f MiB before, %.1f MiB after (+%.1f MiB in %.1f min); hostile readings stored %d "
      "(budget allows %d); dead letters %d (%.1f MiB); per kind %s"
      % (size0 / 2**20, db_bytes() / 2**20, growth / 2**20, minutes, evil_readings, allowed_readings,
         dl_bytes[1], dl_bytes[0] / 2**20, dead))
R.check(evil_readings <= allowed_readings, "the hostile station stored %d readings, within its budget (%d)"
        % (evil_readings, allowed_readings))
R.check(growth <= allowed, "the database grew %.1f MiB, within what the budgets allow (%.1f MiB)"
        % (growth / 2**20, allowed / 2**20))
kinds = {k: (s_, u) for k, s_, u, _ in dead}
R.check("quota" in kinds and "clock" in kinds, "the flood is dead-lettered as quota and clock: %s" % kinds)
R.check(gp.query(db, "SELECT count(*) FROM v_readings WHERE station = ? AND (ts > ? OR ts < ?)",
                 (EVIL, iso_now(3600 * 1000), iso_now(-61 * 86400 * 1000)))[0][0] == 0,
        "nothing outside the clock window stored")
alerts = dict(gp.query(db, "SELECT rule, count(*) FROM v_alerts WHERE station = ? GROUP BY rule", (EVIL,)))
R.check(alerts.get("misbehaving") == 1 and alerts.get("clock") == 1,
        "the hostile station gets one misbehaving and one clock alert (%s)" % alerts)
msg = gp.query(db, "SELECT message FROM v_alerts WHERE id = ?", ("misbehaving/" + EVIL,))
R.check(msg and "budget" in msg[0][0], "the misbehaving alert gives the figures: %s" % (msg[0][0] if msg else None))
others = gp.query(db, "SELECT count(*) FROM v_alerts WHERE rule IN ('misbehaving', 'clock')"
                      " AND station != ?", (EVIL,))[0][0]
R.check(others == 0, "no honest station is called misbehaving or off-clock (%d)" % others)
R.check(gp.query(db, "SELECT count(*) FROM v_alerts WHERE station = ? AND rule LIKE 'salinity%%'",
                 (EVIL,))[0][0] <= 64, "the hostile station's salinity alerts stay within its budget of 64")
log = gw.proc.log_text()
R.check(log.count("subscribed topics") >= 1 and "connection lost" not in log,
        "the gateway's session was never taken over (no connection lost in its log)")
drops = {s.name: s.disconnects for s in stations.values() if s.disconnects}
R.check(not drops, "no honest station was ever disconnected (takeover attempts as DT-H01: %d) %s"
        % (ev["takeovers"], drops or ""))
R.check(gw.alive() and gw.stop() == 0, "gateway alive, exits 0")
for s in stations.values():
    s.close()
b.stop()
R.done()
