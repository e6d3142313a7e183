#!/usr/bin/python3
"""SensorThings forwarding claimed across two hubs (issue 27, docs/upstream.md
"Two hubs"): one mosquitto, two real agri-gateways on it (hub A and hub B:
each gets every station message, as over the bridge), one PostgreSQL
holding the claims, one SensorThings server (sta_server.py) that tells the
hubs apart by the Host they use (A "localhost", B "127.0.0.1").

1. Without "ha" both hubs forward: every Observation is created twice (the
   failure the claims remove, and proof this test can fail).
2. With ha (A priority 1, B priority 2): every Observation is created
   exactly once, every entity once, agri_sta_claims holds one sent row an
   observation, split between the hubs.
3. A claims a batch while B is stopped, and its link to the server is down
   (503): B takes the claims over once their lease (takeover_s) lapses.
4. A's POST is stored but never answered, and A is SIGKILLed waiting:
   B takes over after the lease, reconciles, finds them and sends nothing.
5. PostgreSQL stopped: A (priority 1) sends at once, unclaimed (counted);
   B waits while A is online. Back: A records its sends as claims, B
   finds them after its grace: still once each.
6. PostgreSQL away and A SIGKILLed: B sends once A's Last Will has said
   offline for takeover_s.
About 2 minutes."""
import collections
import os
import re
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_peer as gp  # noqa: E402
import harness  # noqa: E402
import sta_server  # noqa: E402
import upstream_support as us  # noqa: E402

TAKEOVER_S = 8
KEEPALIVE_S = 5
STATIONS = ["HA-1", "HA-2", "HA-3"]
PER_BATCH = 20
# Recent readings: the claims, not the reconciliation of old ones, are on
# trial (a reading older than half the claims' keeping is reconciled).
T_BASE = (int(time.time()) - 3600) * 1000


def batch(name, seq):
    return gp.batch(name, seq, n=PER_BATCH, base_ms=T_BASE + seq * 1000)


def metric(port, name, labels=""):
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except OSError:
        return None
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def observed(srv):
    """(station/sensor/metric, ms) -> count, as the server holds them."""
    with srv.state.lock:
        names = dict((i, e["name"]) for i, e in srv.state.entities["Datastreams"].items())
        return collections.Counter((names[d], ms) for d, ms, _, _ in srv.state.observations)


def by_host(srv):
    with srv.state.lock:
        return collections.Counter(srv.state.obs_hosts)


class Hub:
    def __init__(self, d, name, mq, url, ha=None):
        self.name = name
        self.dir = os.path.join(d, name + ("-ha" if ha else ""))
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "agri.db")
        self.http_port = harness.free_port()
        cfg = {"broker": {"url": mq.url, "client_id": "agri-gateway-" + name,
                          "keepalive_s": KEEPALIVE_S},
               "db": {"path": "agri.db"}, "forecast": {"enabled": False},
               "upstream": {"sensorthings": {"url": url}},
               "http": {"listen": "127.0.0.1:%d" % self.http_port}}
        if ha:
            cfg["ha"] = ha
        self.gw = gp.Gateway(self.dir, harness.write_json(os.path.join(self.dir, "gateway.json"), cfg),
                             name="gw-" + name)

    def start(self):
        self.gw.start()
        harness.wait_port(self.http_port, 15, self.gw.proc)
        return self

    def m(self, name, labels=""):
        return metric(self.http_port, name, labels)

    def backlog(self):
        return self.m("agri_upstream_backlog_rows", '{sink="sensorthings"}')

    def readings(self):
        return set(("%s/%s/%s" % (a, b, c), t) for a, b, c, t in us.gateway_readings(self.db))

    def signal(self, sig):
        os.kill(self.gw.proc.pid, sig)


def publish(stations, seqs, pause=0.05):
    for seq in seqs:
        for name in STATIONS:
            stations[name].publish(seq, batch(name, seq))
        time.sleep(pause)
    harness.wait_for(lambda: all(s.pending() == 0 for s in stations.values()), 60,
                     what="batches %d-%d acked" % (seqs[0], seqs[-1]))


def expect(seqs, stations=STATIONS):
    return set(("%s/s1/m%d" % (name, i % 3), T_BASE + seq * 1000 + i)
               for name in stations for seq in seqs for i in range(PER_BATCH))


def wait_observed(srv, want, timeout, what):
    harness.wait_for(lambda: set(observed(srv)) >= want, timeout, interval=0.2, what=what)


def once(srv):
    """(observations, how many arrived more than once)."""
    obs = observed(srv)
    return len(obs), sum(1 for v in obs.values() if v > 1)


def main():
    res = harness.Result("test_upstream_sta_claims")
    d = harness.tmpdir("agri-sta-claims-")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    pg = us.Postgres(d, fsync=False).start()
    stations = {n: gp.Station(mq.port, n, ack_timeout=2.0) for n in STATIONS}
    for s in stations.values():
        s.connected.wait(10)

    # 1. no ha: both hubs forward everything
    srv = sta_server.StaServer(harness.free_port())
    a = Hub(d, "a", mq, srv.url.replace("127.0.0.1", "localhost")).start()
    b = Hub(d, "b", mq, srv.url).start()
    publish(stations, range(1, 11))
    want = expect(range(1, 11))
    wait_observed(srv, want, 60, "every reading observed")
    harness.wait_for(lambda: a.backlog() == 0 and b.backlog() == 0, 30, interval=0.2,
                     what="both forwarders caught up")
    time.sleep(1)
    obs = observed(srv)
    # Not all: a hub reconciles its first batch after a start, and skips
    # what the other hub sent there already, when both found one Datastream.
    twice = sum(1 for v in obs.values() if v == 2)
    res.check(set(obs) == want and twice >= len(want) // 2 and max(obs.values()) == 2,
              "without ha: %d of %d observations created twice, once by each hub (%s)"
              % (twice, len(want), dict(by_host(srv))))
    a.gw.stop()
    b.gw.stop()
    srv.stop()

    # 2. ha: once each
    srv = sta_server.StaServer(harness.free_port())
    ha_a = {"hub_id": "hub-a", "claims": pg.conninfo, "priority": 1, "takeover_s": TAKEOVER_S}
    ha_b = {"hub_id": "hub-b", "claims": pg.conninfo, "priority": 2, "takeover_s": TAKEOVER_S}
    a = Hub(d, "a", mq, srv.url.replace("127.0.0.1", "localhost"), ha_a).start()
    b = Hub(d, "b", mq, srv.url, ha_b).start()
    t0 = time.time()
    publish(stations, range(11, 31), pause=0.3)  # each batch reaches both hubs at once: contested
    want = expect(range(11, 31))
    wait_observed(srv, want, 60, "every reading observed")
    took = time.time() - t0
    harness.wait_for(lambda: a.backlog() == 0 and b.backlog() == 0, 30, interval=0.2,
                     what="both forwarders caught up")
    time.sleep(1)
    n, dups = once(srv)
    res.check(set(observed(srv)) == want and dups == 0,
              "with claims: each of %d observations created exactly once (%d twice; %.1f s for"
              " 20 batches 0.3 s apart; sent by %s)" % (n, dups, took, dict(by_host(srv))))
    res.check(a.readings() == b.readings() == want, "both hubs stored every reading")
    st = srv.state
    for coll, k in (("Things", 3), ("Sensors", 3), ("ObservedProperties", 3), ("Datastreams", 9)):
        c = collections.Counter(st.created[coll])
        res.check(len(c) == k and max(c.values()) == 1,
                  "%s created once each, across both hubs (%d names, max %d)"
                  % (coll, len(c), max(c.values())))
    res.check(not st.violations, "no spec violations (%s)" % st.violations[:3])
    rows = pg.psql("SELECT hub_id, count(*), count(sent_at), max(claims) FROM agri_sta_claims"
                   " GROUP BY hub_id ORDER BY hub_id").splitlines()
    total = sum(int(r.split("|")[1]) for r in rows)
    res.check(total == len(want) and all(r.split("|")[1] == r.split("|")[2] for r in rows),
              "agri_sta_claims: one sent claim an observation (%d; per hub, claims, sent, max"
              " claimed: %s)" % (total, rows))
    won = (a.m("agri_gateway_sta_claims_won_total"), b.m("agri_gateway_sta_claims_won_total"))
    peer = (a.m("agri_gateway_sta_claims_peer_total"), b.m("agri_gateway_sta_claims_peer_total"))
    res.check(won[0] + won[1] == len(want) and peer[0] == won[1] and peer[1] == won[0],
              "claims won A=%d B=%d, each skipped the other's (peer A=%d B=%d)"
              % (won + peer))

    # 3. A claims, then cannot reach the server: B takes over after the lease
    srv.state.refuse_host = "localhost"
    b.signal(signal.SIGSTOP)
    stations["HA-1"].publish(31, batch("HA-1", 31))
    harness.wait_for(lambda: stations["HA-1"].pending() == 0, 20, what="seq 31 acked by A")
    harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM agri_sta_claims WHERE"
                                         " hub_id = 'hub-a' AND sent_at IS NULL")) == PER_BATCH,
                     20, interval=0.1, what="hub A's claims of seq 31")
    t_claim = time.time()
    b.signal(signal.SIGCONT)
    want31 = expect([31], ["HA-1"])
    wait_observed(srv, want31, TAKEOVER_S + 30, "seq 31 observed")
    t_over = time.time() - t_claim
    n, dups = once(srv)
    rows = pg.psql("SELECT hub_id, claims, sent_at IS NOT NULL FROM agri_sta_claims WHERE"
                   " datastream LIKE 'HA-1/%' AND phenomenon_time >= to_timestamp(" +
                   str((T_BASE + 31000) / 1000.0) + ") GROUP BY 1, 2, 3").splitlines()
    res.check(dups == 0 and t_over >= TAKEOVER_S - 1 and srv.state.refused >= 1 and
              rows and all(r.startswith("hub-b|") and r.endswith("|t") and
                           int(r.split("|")[1]) >= 2 for r in rows),
              "A claimed seq 31 and got 503s (%d): B took the claims over %.1f s later (lease %d s),"
              " sent each once (%s; taken over on B: %s)"
              % (srv.state.refused, t_over, TAKEOVER_S, rows,
                 b.m("agri_gateway_sta_claims_taken_over_total")))
    srv.state.refuse_host = None

    # 4. A's POST is stored, never answered, and A dies waiting: B takes over
    # after the lease, finds the observations and sends nothing again
    srv.state.drop_host = "localhost"
    srv.state.drop_after_commit = 1
    srv.state.drop_hold_s = 15
    b.signal(signal.SIGSTOP)
    stations["HA-2"].publish(32, batch("HA-2", 32))
    harness.wait_for(lambda: srv.state.dropped == 1, 20, interval=0.05,
                     what="A's CreateObservations stored, its answer held")
    a.gw.kill9()
    t_kill = time.time()
    b.signal(signal.SIGCONT)
    dup0 = b.m("agri_upstream_duplicates_skipped_total", '{sink="sensorthings"}') or 0
    harness.wait_for(lambda: int(pg.psql("SELECT count(*) FROM agri_sta_claims WHERE"
                                         " datastream LIKE 'HA-2/%' AND sent_at IS NULL")) == 0,
                     TAKEOVER_S + 30, interval=0.2, what="A's claims settled by B")
    t_set = time.time() - t_kill
    time.sleep(1)
    n, dups = once(srv)
    dup1 = b.m("agri_upstream_duplicates_skipped_total", '{sink="sensorthings"}') or 0
    res.check(dups == 0 and dup1 - dup0 == PER_BATCH,
              "A stored seq 32 on the server and died unanswered: B took over %.1f s later,"
              " found its %d observations there (reconciled) and sent none again"
              % (t_set, dup1 - dup0))
    srv.state.drop_host = None
    srv.state.drop_hold_s = 0
    a.start()
    publish(stations, [33])
    wait_observed(srv, expect(range(11, 31)) | want31 | expect([32], ["HA-2"]) | expect([33]), 30,
                  "seq 33 observed")
    harness.wait_for(lambda: a.backlog() == 0 and b.backlog() == 0, 30, interval=0.2,
                     what="both caught up after A's restart")
    n, dups = once(srv)
    res.check(dups == 0, "A, restarted, found its seq 32 sent (by B's claim): nothing twice")

    # 5. PostgreSQL away: A sends unclaimed, B waits; back: recorded, once
    pg.stop()
    t_down = time.time()
    publish(stations, range(34, 39))
    want5 = expect(range(34, 39))
    wait_observed(srv, want5, 30, "A's unclaimed sends")
    t_a = time.time() - t_down
    time.sleep(4)
    n, dups = once(srv)
    unc = a.m("agri_gateway_sta_unclaimed_total")
    res.check(dups == 0 and unc == len(want5) and
              b.m("agri_gateway_sta_unclaimed_total") == 0 and b.backlog() >= len(want5),
              "PostgreSQL away: A (priority 1) sent %d observations unclaimed within %.1f s;"
              " B sent none while A is online (backlog %s)" % (unc, t_a, b.backlog()))
    pg.start()
    t_pg = time.time()
    harness.wait_for(lambda: b.backlog() == 0, 60, interval=0.2, what="B caught up")
    t_b = time.time() - t_pg
    harness.wait_for(lambda: a.m("agri_gateway_sta_claims_reconciled_total") == len(want5), 30,
                     interval=0.2, what="A's unclaimed sends recorded")
    time.sleep(1)
    n, dups = once(srv)
    rec = pg.psql("SELECT hub_id, count(*) FROM agri_sta_claims WHERE unclaimed"
                  " GROUP BY hub_id").splitlines()
    res.check(dups == 0 and rec == ["hub-a|%d" % len(want5)],
              "PostgreSQL back: A recorded its %d unclaimed sends (%s), B caught up %.1f s later"
              " without sending any again" % (len(want5), rec, t_b))

    # 6. PostgreSQL away and A gone: B sends after A's Last Will + takeover_s
    pg.stop()
    a.gw.kill9()
    t_kill = time.time()
    publish(stations, [39])
    want6 = expect([39])
    wait_observed(srv, want6, 2 * KEEPALIVE_S + TAKEOVER_S + 30, "B's takeover")
    t_b = time.time() - t_kill
    n, dups = once(srv)
    res.check(dups == 0 and t_b >= TAKEOVER_S and
              b.m("agri_gateway_sta_unclaimed_total") == len(want6),
              "PostgreSQL away, A killed: B sent %.1f s later, unclaimed (%s), after A's Last Will"
              " + takeover_s (%d s)" % (t_b, b.m("agri_gateway_sta_unclaimed_total"), TAKEOVER_S))
    pg.start()
    harness.wait_for(lambda: b.m("agri_gateway_sta_claims_reconciled_total") == len(want6), 40,
                     interval=0.2, what="B's unclaimed sends recorded")
    res.check(True, "PostgreSQL back: B recorded its %d unclaimed sends" % len(want6))
    res.check(not srv.state.violations, "no spec violations (%s)" % srv.state.violations[:3])
    res.check(b.gw.stop() == 0, "hub B stops cleanly")

    for s in stations.values():
        s.close()
    pg.stop()
    srv.stop()
    mq.stop()
    res.done()


if __name__ == "__main__":
    main()
