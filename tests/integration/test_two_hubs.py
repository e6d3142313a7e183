"""Two hubs, one province (issue 27, docs/ha.md): two brokers with the shipped
configuration, bridged by the file `agrictl provision --peer-hub` writes, a
real agri-gateway on each subscribed to its own broker only, and three real
agri-station processes on agri-sim over TLS: ST-1 and ST-2 with broker.urls
[A, B], ST-3 with [B, A] (a province puts half its stations at home on each
hub, and the ack path over the bridge needs a station on B).

1. Both gateways store every reading, whichever hub its station is on.
2. Gateway B is SIGKILLed: ST-3 (on B) keeps getting acks, from gateway A
   through the bridge; its spool drains. Gateway B catches up when back.
3. Broker A is SIGKILLed: ST-1 and ST-2 move to B (failover seconds
   printed); gateway B stores everything; when A is back, the bridge's queue
   on B gives gateway A what it missed and the stations go home.
At the end both gateways hold the same (station, seq) sets, every sealed
batch 1..last of each station once (v_readings: the same count, no
duplicate), and nothing is lost."""
import os
import re
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import gateway_peer as gp  # noqa: E402
import ha_support as ha  # noqa: E402
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

KEEPALIVE_S = 5
HOLDDOWN_S = 5
STATIONS = ["ST-1", "ST-2", "ST-3"]
HOME_B = {"ST-3"}


def main():
    res = H.Result("test_two_hubs")
    t0 = time.monotonic()
    wd = H.tmpdir("agri-two-hubs-")
    a = ha.Hub(wd, "A")
    b = ha.Hub(wd, "B", ca_from=a)
    # Stations and the bridge account: provisioned on A, into the station
    # listener's files that both hubs share (docs/ha.md).
    passwords = {s: a.br.provision(s) for s in STATIONS}
    r, bridge_conf = ha.bridge(a, b)
    res.check(r.returncode == 0, "agrictl provision --peer-hub writes the bridge (%s)"
              % (r.stdout + r.stderr).strip()[:200])
    res.check(os.stat(bridge_conf).st_mode & 0o777 == 0o640,
              "the bridge config (it holds a password) is 0640")
    b.br.start()
    a.br.start()
    H.wait_for(lambda: "bridge-a" in open(b.br.proc.log_path).read(), 15,
               what="the bridge connected to B")
    for h in (a, b):
        h.start_gateway()
        h.observe()

    tcp_port = H.free_port()
    S.start_sim(wd, "sim", ["%d:sensecap-s-ec-01" % (i + 1) for i in range(len(STATIONS))],
                tcp_port=tcp_port)
    procs, cfgs = {}, {}
    for i, name in enumerate(STATIONS):
        sd = os.path.join(wd, name)
        os.makedirs(sd)
        with open(os.path.join(sd, "station.pass"), "w") as f:
            f.write(passwords[name])
        shutil.copy(a.br.ca, os.path.join(sd, "ca.crt"))
        cfg = S.station_config(
            sd, 0, [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": tcp_port},
                     "timeout_ms": 500}],
            [{"name": "sonde1", "bus": "lan", "slave": i + 1, "profile": "sensecap-s-ec-01",
              "interval_s": 0.5}],
            station=name, ack_timeout_s=3)
        urls = [b.url, a.url] if name in HOME_B else [a.url, b.url]
        cfg["broker"] = {"urls": urls, "username": name, "password_file": "station.pass",
                         "ca_file": "ca.crt", "keepalive_s": KEEPALIVE_S,
                         "home_holddown_s": HOLDDOWN_S}
        cfgs[name] = cfg
        procs[name], _ = S.start_station(sd, cfg, name=name)

    # 1. Every reading on both hubs, whichever hub its station is on.
    def both_have_all():
        sa, sb = a.seqs(), b.seqs()
        return all(len(sa.get(s, ())) >= 3 and len(sb.get(s, ())) >= 3 for s in STATIONS)
    H.wait_for(both_have_all, 20, 0.2, what="every station's batches on both gateways")
    res.check(True, "both gateways store batches of every station (ST-1, ST-2 on A, ST-3 on B)")
    res.check(a.on_since("ST-3", b.url, 0) is not None and a.on_since("ST-1", a.url, 0) is not None,
              "gateway A's hub sees ST-3's status (on B) through the bridge, and ST-1's (on A)")

    # agrictl status --all on hub A names both hubs (each gateway's retained
    # status crosses the bridge) and which stations are on which.
    def status_a():
        pf = os.path.join(wd, "ctl-a.pass")
        with open(pf, "w") as f:
            f.write(a.ctl_pass)
        return H.run([H.bin_path("agrictl"), "status", "--all", "--broker",
                      "tcp://127.0.0.1:%d" % a.br.loop_port, "--username", "agrictl",
                      "--password-file", pf], timeout=30).stdout
    H.wait_for(lambda: "hubs: 2" in status_a(), 15, 1.0, what="both hubs in agrictl status --all")
    out = status_a()
    res.check(re.search(r"^  hub agri-gateway-a: online, heard ", out, re.M)
              and re.search(r"^  hub agri-gateway-b: online, heard ", out, re.M)
              and re.search(r"stations by the hub they are on:.*%s 2.*%s 1|stations by the hub they"
                            r" are on:.*%s 1.*%s 2" % (re.escape(a.url), re.escape(b.url),
                                                      re.escape(b.url), re.escape(a.url)), out),
              "agrictl status --all on hub A: both hubs online, 2 stations on A, 1 on B:\n%s"
              % "\n".join(out.splitlines()[:4]))

    # 2. Gateway B dies: ST-3's acks come from gateway A, across the bridge.
    st3 = cfgs["ST-3"]["state_dir"]
    at_kill = max(a.seqs()["ST-3"])
    b.gw.kill9()
    t = time.monotonic()
    depth = []

    def drained():
        depth.append(S.spool_depth(st3) or 0)
        return max(a.seqs()["ST-3"]) >= at_kill + 4 and depth[-1] == 0
    ok = True
    try:
        H.wait_for(drained, 20, 0.25, what="ST-3's spool drained while gateway B is dead")
    except TimeoutError:
        ok = False
    print("   gateway B SIGKILLed: ST-3 sealed %d more batches, spool depth max %d, %s after %.1f s"
          % (max(a.seqs()["ST-3"]) - at_kill, max(depth), "drained" if ok else "NOT drained",
             time.monotonic() - t), flush=True)
    res.check(ok, "a station on B gets its acks while gateway B is dead (gateway A's, "
              "over the bridge): its spool drains")
    b.gw.start()

    # 3. Broker A dies (after its periodic save: autosave_interval 60 in the
    # shipped config; SIGUSR1 makes mosquitto save now, so gateway A's
    # persistent session survives as it would on a hub that ran a while).
    os.kill(a.br.proc.pid, signal.SIGUSR1)
    time.sleep(0.5)
    t = time.monotonic()
    a_down_ms = int(time.time() * 1000)
    a.br.proc.kill9()
    fail = {}
    for s in STATIONS:
        if s in HOME_B:
            continue
        try:
            H.wait_for(lambda: b.on_since(s, b.url, t), 3 * KEEPALIVE_S, 0.1,
                       what="%s online on B" % s)
            fail[s] = b.on_since(s, b.url, t) - t
        except TimeoutError:
            fail[s] = None
    print("   broker A SIGKILLed: on B after %s s (keepalive_s %d)"
          % (", ".join("%s %s" % (s, None if v is None else round(v, 2))
                       for s, v in sorted(fail.items())), KEEPALIVE_S), flush=True)
    res.check(all(v is not None and v <= 1.5 * KEEPALIVE_S for v in fail.values()),
              "every station of A is on B within 1.5 x keepalive_s of A's broker dying")
    time.sleep(4)
    a_up_ms = int(time.time() * 1000)
    a.br.start()
    t = time.monotonic()
    home = {}
    for s in STATIONS:
        if s in HOME_B:
            continue
        try:
            H.wait_for(lambda: a.on_since(s, a.url, t), HOLDDOWN_S + 15, 0.1,
                       what="%s back on A" % s)
            home[s] = a.on_since(s, a.url, t) - t
        except TimeoutError:
            home[s] = None
    print("   broker A back: stations home after %s s (home_holddown_s %d)"
          % (", ".join("%s %s" % (s, None if v is None else round(v, 2))
                       for s, v in sorted(home.items())), HOLDDOWN_S), flush=True)
    res.check(all(v is not None and HOLDDOWN_S - 0.5 <= v <= HOLDDOWN_S + 6
                  for v in home.values()),
              "the stations go home to A after the hold-down")

    # The end: stations stop; what they sealed and a gateway acked is on
    # both hubs once the bridge's queue has been delivered.
    time.sleep(2)
    for s in STATIONS:
        res.check(procs[s].stop() == 0, "%s stops cleanly" % s)
    left = {s: set(S.spool_seqs(cfgs[s]["state_dir"])) for s in STATIONS}

    def same():
        sa, sb = a.seqs(), b.seqs()
        return all(sa.get(s, set()) | left[s] == sb.get(s, set()) | left[s] and
                   sa.get(s) == sb.get(s) for s in STATIONS)
    t = time.monotonic()
    try:
        H.wait_for(same, 30, 0.5, what="the same (station, seq) sets on both gateways")
    except TimeoutError:
        pass
    sa, sb = a.seqs(), b.seqs()
    ra, rb = a.readings(), b.readings()
    lost = {}
    for s in STATIONS:
        last = max(sa.get(s, {0}) | sb.get(s, {0}) | left[s])
        lost[s] = sorted(set(range(1, last + 1)) - sa.get(s, set()) - left[s])
        print("   %s: seqs 1..%d; A %d, B %d, only A %s, only B %s, still spooled %d, lost on A %s"
              % (s, last, len(sa.get(s, ())), len(sb.get(s, ())),
                 sorted(sa.get(s, set()) - sb.get(s, set()))[:8],
                 sorted(sb.get(s, set()) - sa.get(s, set()))[:8], len(left[s]), lost[s][:8]),
              flush=True)
    print("   v_readings: A %d rows (%d distinct), B %d rows (%d distinct); converged in %.1f s; "
          "test %.0f s" % (len(ra), len(set(ra)), len(rb), len(set(rb)), time.monotonic() - t,
                           time.monotonic() - t0), flush=True)
    # What gateway B stored while broker A was down reached gateway A only
    # through the bridge's queue on B: the stations had their acks from B.
    queued = set(gp.query(b.db, "SELECT station, sensor, metric, ts FROM v_readings "
                                "WHERE received_at BETWEEN ? AND ?", (gp.iso(a_down_ms), gp.iso(a_up_ms))))
    print("   readings gateway B stored while broker A was down: %d, of them on A: %d"
          % (len(queued), len(queued & set(ra))), flush=True)
    res.check(queued and queued <= set(ra),
              "the bridge's queue on B delivered to A what B stored while A was down")
    res.check(all(sa.get(s) == sb.get(s) for s in STATIONS),
              "both gateways hold the same (station, seq) sets")
    res.check(not any(lost.values()), "no sealed batch lost: every seq up to the last is stored "
              "or still in its station's spool")
    res.check(len(ra) == len(rb) and len(set(ra)) == len(ra) and set(ra) == set(rb),
              "v_readings: the same readings on both hubs, none twice")
    for h in (a, b):
        h.obs.loop_stop()
        res.check(h.gw.stop() == 0, "gateway %s exits 0" % h.name)
        h.br.stop()
    res.done()


if __name__ == "__main__":
    main()
