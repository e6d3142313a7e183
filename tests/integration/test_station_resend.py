"""agri-station's end-to-end delivery (docs/interfaces.md §2): a stand-in that
acks only some seqs gets exactly the unacked batches again, with backoff;
a broker kill -9 while the gateway is down loses nothing because unacked
batches are resent; a station kill -9 while the broker is down loses
nothing that was spooled."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as H  # noqa: E402
import station_support as S  # noqa: E402


def setup(wd, broker, tcp_port, **kw):
    buses = [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": tcp_port}, "timeout_ms": 300}]
    sensors = [{"name": "a", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01", "interval_s": 0.5},
               {"name": "b", "bus": "lan", "slave": 2, "profile": "sensecap-s-ec-01", "interval_s": 0.5}]
    return S.station_config(wd, broker.port, buses, sensors, **kw)


def partial_acks(res, wd, tcp_port):
    broker = H.Mosquitto(os.path.join(wd, "mq1")).start()
    acking = {"all": False}
    gw = S.Gateway(broker.port, client_id="gw-partial",
                   ack_pred=lambda seq: acking["all"] or seq % 2 == 0).start()
    cfg = setup(wd, broker, tcp_port, ack_timeout_s=1, state_dir=os.path.join(wd, "state1"))
    st, _ = S.start_station(wd, cfg, "station1")
    time.sleep(9)
    with gw.lock:
        arr = {k: list(v) for k, v in gw.arrivals.items()}
    first = sorted(arr)[:4]
    even_once = all(len(arr[s]) == 1 for s in arr if s % 2 == 0)
    res.check(even_once, "acked seqs are never resent")
    odd = [s for s in first if s % 2 == 1]
    resent = bool(odd) and all(len(arr[s]) >= 3 for s in odd)
    res.check(resent, "unacked seqs are resent (%s)" % {s: len(arr[s]) for s in odd})
    gaps_ok = bool(odd)
    for s in odd:
        t = arr[s]
        g = [b - a for a, b in zip(t, t[1:])]
        # ack_timeout 1 s, doubling: ~1, 2, 4 ...
        if len(g) < 2 or not all(g[i + 1] > g[i] * 1.5 for i in range(len(g) - 1)) or g[0] < 0.8:
            gaps_ok = False
        print("   seq %d resent after %s s" % (s, [round(x, 2) for x in g]))
    res.check(gaps_ok, "resends back off exponentially")
    acking["all"] = True
    H.wait_for(lambda: S.spool_depth(cfg["state_dir"]) == 0, 30, what="spool empty once acked")
    res.check(True, "once acked, the spool empties")
    st.stop()
    gw.stop()
    broker.stop()


def broker_crash(res, wd, tcp_port):
    broker = H.Mosquitto(os.path.join(wd, "mq2")).start()
    gw = S.Gateway(broker.port, client_id="gw-crash").start()
    cfg = setup(wd, broker, tcp_port, ack_timeout_s=1, state_dir=os.path.join(wd, "state2"))
    st, _ = S.start_station(wd, cfg, "station2")
    H.wait_for(lambda: len(gw.seqs()) >= 2, 15, what="first batches")
    gw.stop()                      # the gateway goes down; its session stays
    time.sleep(4)                  # the broker PUBACKs batches and queues them in memory
    queued_max = max(S.spool_seqs(cfg["state_dir"]) or [0])
    broker.kill9()                 # ... and loses them
    broker.start()
    time.sleep(2)
    gw.start()                     # a fresh session: the queue is gone
    H.wait_for(lambda: S.spool_depth(cfg["state_dir"]) == 0, 45, what="spool drained via resends")
    seqs = gw.seqs()
    res.check(queued_max > 0 and set(range(1, queued_max + 1)) <= seqs,
              "after a broker kill -9 every batch (1..%d) still reached the gateway" % queued_max)
    st.stop()
    gw.stop()
    broker.stop()


def station_crash(res, wd, tcp_port):
    broker = H.Mosquitto(os.path.join(wd, "mq3")).start()
    gw = S.Gateway(broker.port, client_id="gw-st-crash").start()
    cfg = setup(wd, broker, tcp_port, ack_timeout_s=2, state_dir=os.path.join(wd, "state3"))
    st, path = S.start_station(wd, cfg, "station3")
    H.wait_for(lambda: len(gw.seqs()) >= 2, 15, what="first batches")
    broker.stop()
    time.sleep(4)
    spooled = S.spool_seqs(cfg["state_dir"])
    st.kill9()
    res.check(len(spooled) >= 3, "batches spooled while the broker is down (%d)" % len(spooled))
    st2 = H.Proc([H.bin_path("agri-station"), "--config", path], os.path.join(wd, "station3b.log"),
                 wrap=True)
    time.sleep(1.5)
    broker.start()
    H.wait_for(lambda: S.spool_depth(cfg["state_dir"]) == 0, 45, what="spool drained after restart")
    seqs = gw.seqs()
    res.check(set(spooled) <= seqs, "every batch spooled before the kill -9 arrived (%d)" % len(spooled))
    res.check(seqs == set(range(1, max(seqs) + 1)), "seq continues after restart, no gap (1..%d)"
              % max(seqs))
    rc = st2.stop()
    res.check(rc == 0, "restarted station exits 0")
    gw.stop()
    broker.stop()


def main():
    res = H.Result("test_station_resend")
    wd = H.tmpdir("agri-st-resend-")
    tcp_port = H.free_port()
    S.start_sim(wd, "sim", ["1:sensecap-s-ec-01", "2:sensecap-s-ec-01,distance_km=15"], tcp_port=tcp_port)
    partial_acks(res, wd, tcp_port)
    broker_crash(res, wd, tcp_port)
    station_crash(res, wd, tcp_port)
    res.done()


if __name__ == "__main__":
    main()
