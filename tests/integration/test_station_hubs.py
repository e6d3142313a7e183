"""agri-station with two hubs (issue 27, docs/station.md "Hubs"): broker.urls
[A, B] against two real mosquitto brokers (no bridge: a gateway stand-in on
each acks what reaches it). A vanishes (SIGSTOP: no FIN, no RST) -> the
station is on B within 1.5 x keepalive_s; A comes back and B dies -> the
station is back on A within one backoff cycle, where paho's own
serverURIs + automaticReconnect (paho_failover, beside it) stays offline;
A dies and comes back while the station is on B -> the station returns to A
after home_holddown_s. Prints failover seconds; no sealed batch is lost."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

KEEPALIVE_S = 5
HOLDDOWN_S = 8
STATION = "ST-HUBS"


class Hub:
    """A mosquitto and a gateway stand-in on it (acks, records arrivals)."""

    def __init__(self, wd, name):
        self.name = name
        self.mq = H.Mosquitto(os.path.join(wd, "mq-" + name)).start()
        self.gw = S.Gateway(self.mq.port, client_id="gw-" + name).start()
        self.gw.client.reconnect_delay_set(0.1, 0.5)

    @property
    def url(self):
        return self.mq.url

    def start(self):
        self.mq.start()
        H.wait_for(lambda: self.gw.client.is_connected(), 10, what="stand-in on %s" % self.name)

    def kill9(self):
        self.mq.kill9()

    def stop_signal(self, sig):
        os.kill(self.mq.proc.pid, sig)

    def last_arrival(self):
        with self.gw.lock:
            return max((t for ts in self.gw.arrivals.values() for t in ts), default=0.0)

    def status_broker(self):
        with self.gw.lock:
            return (self.gw.status.get(STATION) or {}).get("broker")


def on_hub(hub, since, timeout, what):
    """Seconds from since until telemetry arrives on hub, or None."""
    try:
        H.wait_for(lambda: hub.last_arrival() > since, timeout, what=what)
    except Exception:
        return None
    return min(t for ts in hub.gw.arrivals.values() for t in ts if t > since) - since


def paho_lines(p):
    out = []
    for line in p.log_text().splitlines():
        f = line.split()
        if len(f) >= 2:
            out.append((float(f[0]), f[1], f[2] if len(f) > 2 else ""))
    return out


def paho_connected_since(p, since):
    return [e for e in paho_lines(p) if e[0] > since and e[1] == "connected"]


def main():
    res = H.Result("test_station_hubs")
    wd = H.tmpdir("agri-st-hubs-")
    tcp_port = H.free_port()
    S.start_sim(wd, "sim", ["1:sensecap-s-ec-01"], tcp_port=tcp_port)
    a, b = Hub(wd, "A"), Hub(wd, "B")
    buses = [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": tcp_port}, "timeout_ms": 300}]
    sensors = [{"name": "a", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01",
                "interval_s": 0.5}]
    cfg = S.station_config(wd, a.mq.port, buses, sensors, station=STATION, ack_timeout_s=2)
    del cfg["broker"]["url"]
    cfg["broker"].update({"urls": [a.url, b.url], "keepalive_s": KEEPALIVE_S,
                          "home_holddown_s": HOLDDOWN_S})
    st, _ = S.start_station(wd, cfg)
    paho = H.Proc([H.bin_path("paho_failover"), "paho-demo", a.url, b.url],
                  os.path.join(wd, "paho_failover.log"))
    t_start = time.monotonic()

    H.wait_for(lambda: a.last_arrival() > 0, 15, what="telemetry on A")
    H.wait_for(lambda: a.status_broker() == a.url, 10, what="status on A says A")
    res.check(True, "the station starts on its home hub A and its status says so")
    H.wait_for(lambda: paho_connected_since(paho, 0), 10, what="paho client connected")

    # 1. A vanishes without closing its connections.
    t = time.monotonic()
    a.stop_signal(signal.SIGSTOP)
    s1 = on_hub(b, t, 3 * KEEPALIVE_S, "telemetry on B after A vanished")
    print("   A vanished (SIGSTOP): on B after %s s (keepalive_s %d)"
          % (None if s1 is None else round(s1, 2), KEEPALIVE_S), flush=True)
    res.check(s1 is not None and s1 <= 1.5 * KEEPALIVE_S + 1.5,
              "a hub that vanishes is noticed and left within 1.5 x keepalive_s")
    H.wait_for(lambda: b.status_broker() == b.url, 5, what="status on B says B")
    out = H.run([H.bin_path("agrictl"), "status", STATION, "--broker", b.url], timeout=30)
    res.check("connected to hub %s" % b.url in out.stdout,
              "agrictl status on B names the hub the station is on: %r"
              % [ln for ln in out.stdout.splitlines() if "hub" in ln])
    res.check(True, "the status on B says the station is on B")
    H.wait_for(lambda: any(e[2] == str(b.mq.port) for e in paho_connected_since(paho, t)),
               15, what="paho client on B")
    a.stop_signal(signal.SIGCONT)
    a.kill9()
    time.sleep(1)
    last = [e for e in paho_lines(paho)][-1]
    on_b = last[1] == "connected" and last[2] == str(b.mq.port)

    # 2. A comes back, B dies: the case paho's own reconnect gets wrong.
    a.start()
    t = time.monotonic()
    b.kill9()
    s2 = on_hub(a, t, 10, "telemetry on A after B died")
    print("   A back, B killed: on A after %s s"
          % (None if s2 is None else round(s2, 2)), flush=True)
    res.check(s2 is not None and s2 <= 4.0,
              "back on A within one backoff cycle over the list (<= 4 s)")
    time.sleep(max(0.0, 6.0 - (time.monotonic() - t)))
    pc = paho_connected_since(paho, t)
    print("   paho serverURIs + automaticReconnect, 6 s after B died: %s"
          % ("connected to port %s" % pc[0][2] if pc else "still offline"), flush=True)
    res.check(on_b and not pc,
              "paho's own reconnect, on B before, stays offline when B dies (issue 1661)")
    H.wait_for(lambda: a.status_broker() == a.url, 5, what="status on A says A again")

    # 3. On B while A comes back: the home hub is taken back after the hold-down.
    b.start()
    time.sleep(1)
    t = time.monotonic()
    a.kill9()
    s3 = on_hub(b, t, 10, "telemetry on B after A was killed")
    print("   A killed: on B after %s s" % (None if s3 is None else round(s3, 2)), flush=True)
    res.check(s3 is not None and s3 <= 4.0, "a hub that closes is left within a few seconds")
    time.sleep(2)
    a.start()
    t = time.monotonic()
    s4 = on_hub(a, t, HOLDDOWN_S + 15, "telemetry on A after the hold-down")
    print("   A back while on B: on A after %s s (home_holddown_s %d)"
          % (None if s4 is None else round(s4, 2), HOLDDOWN_S), flush=True)
    res.check(s4 is not None and HOLDDOWN_S - 0.5 <= s4 <= HOLDDOWN_S + 6,
              "the home hub is taken back once it answered for the hold-down")
    H.wait_for(lambda: a.status_broker() == a.url, 5, what="status on A says A at the end")
    time.sleep(2)
    res.check(b.last_arrival() < t + s4 + 1.0, "the station left B for A (no telemetry on B)")

    # No batch lost: every sealed seq reached a hub and was acked; what is
    # sealed on the way out stays in the spool for the next start.
    H.wait_for(lambda: S.spool_depth(cfg["state_dir"]) == 0, 30, what="spool empty")
    seqs = a.gw.seqs() | b.gw.seqs()
    last = max(seqs)
    rc = st.stop()
    res.check(rc == 0, "the station stops cleanly")
    left = S.spool_seqs(cfg["state_dir"])
    lost = sorted(set(range(1, last + 1)) - seqs)
    print("   seqs 1..%d: %d on A, %d on B, lost %s, kept for the next start %s (%.0f s)"
          % (last, len(a.gw.seqs()), len(b.gw.seqs()), lost[:10], left,
             time.monotonic() - t_start), flush=True)
    res.check(not lost and all(s > last for s in left),
              "no batch lost: every sealed seq (1..%d) reached a hub and was acked" % last)
    paho.stop()
    for h in (a, b):
        h.gw.stop()
        h.mq.stop()
    res.done()


if __name__ == "__main__":
    main()
