#!/usr/bin/python3
"""One notification per transition across two hubs (issue 27, docs/ha.md):
one mosquitto, two real agri-gateways on it (hub A and hub B: each gets
every station message, as over the bridge), one PostgreSQL holding the
claims, and a webhook receiver counting deliveries; both hubs have the same
rule and the same channel "ops" (each pointing at its own path of the
receiver, so a delivery says which hub sent it). A salinity crossing is a
raise (4.6 g/L >= 4.0) then a clear (0.5 g/L).

1. Without "ha" both hubs notify: every transition arrives twice (the
   failure the claims remove, and proof this test can fail).
2. With ha (A priority 1, B priority 2): each transition arrives exactly
   once; agri_notify_claims holds one row each, and the hub that lost
   marked its outbox row done by its peer. Hub B SIGKILLed during a
   crossing: A sends it; B, restarted, catches up from its broker session,
   derives the same episode keys and sends nothing.
3. PostgreSQL stopped, then a crossing: hub A sends at once, counted in
   agri_gateway_notifications_unclaimed_total; hub B does not send while A
   is online. PostgreSQL back: A records its claim (reconcile), B, after its
   grace, finds it and never sends.
4. PostgreSQL still away and hub A SIGKILLed: B sends only once A's Last
   Will has said offline for takeover_s.
About 55 s."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gateway_peer as gp  # noqa: E402
import ha_support as ha  # noqa: E402
import harness  # noqa: E402
import upstream_support as us  # noqa: E402

TAKEOVER_S = 8
KEEPALIVE_S = 5


SINK = None  # ha_support.Sink: what each hub's webhook received


def deliveries(station, hub=None):
    """(hub path, alert id, raised_at, state, time) of station's alerts."""
    return [(p.strip("/"), a["id"], a["raised_at"], a["state"], t) for t, p, a, e, ev in SINK.all()
            if a.get("station") == station and (hub is None or p == "/" + hub)]


def per_transition(station):
    """{(alert id, raised_at, state): deliveries} of station."""
    out = {}
    for hub, aid, raised, state, t in deliveries(station):
        out[(aid, raised, state)] = out.get((aid, raised, state), 0) + 1
    return out


class Hub:
    def __init__(self, d, name, mq, sink, ha=None):
        self.name = name
        self.dir = os.path.join(d, name + ("-ha" if ha else ""))
        os.makedirs(self.dir, exist_ok=True)
        self.db = os.path.join(self.dir, "agri.db")
        self.http_port = harness.free_port()
        rules = {"rules": [{"id": "salinity-high", "metric": "salinity", "above": 4.0,
                            "hysteresis": 0.3, "for_s": 0, "severity": "critical",
                            "notify": ["ops"]}]}
        harness.write_json(os.path.join(self.dir, "rules.json"), rules)
        cfg = {"broker": {"url": mq.url, "client_id": "agri-gateway-" + name,
                          "keepalive_s": KEEPALIVE_S},
               "db": {"path": "agri.db"}, "rules_file": "rules.json",
               "forecast": {"enabled": False},
               "notify": {"webhooks": [{"name": "ops", "url": "%s/%s" % (sink, name)}]},
               "http": {"listen": "127.0.0.1:%d" % self.http_port}}
        if ha:
            cfg["ha"] = ha
        self.gw = gp.Gateway(self.dir, harness.write_json(os.path.join(self.dir, "gateway.json"), cfg),
                             name="gw-" + name)

    def start(self):
        self.gw.start()
        harness.wait_port(self.http_port, 15, self.gw.proc)
        return self

    def outbox(self, where="1"):
        return gp.query(self.db, "SELECT alert_id, event, episode, transition, claim FROM outbox"
                                 " WHERE " + where + " ORDER BY id")

    def unclaimed(self):
        return ha.metric(self.http_port, "agri_gateway_notifications_unclaimed_total")


def crossing(st, seq, value):
    now = int(time.time() * 1000)
    st.publish(seq, {"v": 1, "station": st.name, "seq": seq, "sent_at": gp.iso(now), "readings": [
        {"ts": gp.iso(now), "sensor": "sonde1", "metric": "salinity", "value": value,
         "unit": "g/L", "q": "ok"}]})
    harness.wait_for(lambda: st.pending() == 0, 15, 0.05, what="%s seq %d acked" % (st.name, seq))


def main():
    res = harness.Result("test_notify_claims")
    global SINK
    d = harness.tmpdir("agri-claims-")
    SINK = ha.Sink()
    sink = SINK.url
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    pg = us.Postgres(d, fsync=False).start()

    # 0. Both hubs claim their first notification at the same moment (they
    # started together): the table's creation races inside PostgreSQL, and
    # the loser must not take the database for unreachable.
    r = subprocess.run([harness.bin_path("claims_race"), pg.conninfo, "20"],
                       capture_output=True, text=True, timeout=120)
    res.check(r.returncode == 0, "two hubs' first claims at once: one wins, the other sees it,"
              " every round (%s)" % r.stdout.strip().replace("\n", "; "))

    # 1. no ha: both hubs notify every transition
    a, b = Hub(d, "a", mq, sink).start(), Hub(d, "b", mq, sink).start()
    st = gp.Station(mq.port, "CL-01", ack_timeout=2.0)
    st.connected.wait(10)
    crossing(st, 1, 0.5)
    crossing(st, 2, 4.6)
    crossing(st, 3, 0.5)
    harness.wait_for(lambda: sum(per_transition("CL-01").values()) >= 4, 20, 0.1,
                     what="both hubs' notifications")
    time.sleep(2)
    pt = per_transition("CL-01")
    res.check(len(pt) == 2 and all(n == 2 for n in pt.values()),
              "without ha: each transition notified twice, once by each hub (%s)"
              % sorted(pt.values()))
    eps = set(e for t, p, al, e, ev in SINK.all() if al.get("station") == "CL-01")
    res.check(a.outbox("episode IS NOT NULL")[0][2] == b.outbox("episode IS NOT NULL")[0][2] and
              eps == {a.outbox()[0][2]},
              "both hubs derive the same episode key, in X-Agri-Episode (%s)" % sorted(eps))
    a.gw.stop()
    b.gw.stop()
    st.close()

    # 2. ha: one notification per transition
    ha_a = {"hub_id": "hub-a", "claims": pg.conninfo, "priority": 1, "takeover_s": TAKEOVER_S}
    ha_b = {"hub_id": "hub-b", "claims": pg.conninfo, "priority": 2, "takeover_s": TAKEOVER_S}
    a, b = Hub(d, "a", mq, sink, ha_a).start(), Hub(d, "b", mq, sink, ha_b).start()
    st = gp.Station(mq.port, "CL-02", ack_timeout=2.0)
    st.connected.wait(10)
    t0 = time.time()
    crossing(st, 1, 0.5)
    crossing(st, 2, 4.6)
    crossing(st, 3, 0.5)
    settled = lambda: (len(a.outbox("delivered_at IS NULL")) == 0 and  # noqa: E731
                       len(b.outbox("delivered_at IS NULL")) == 0 and len(a.outbox()) == 2)
    harness.wait_for(settled, 20, 0.1, what="both outboxes settled")
    took = time.time() - t0
    time.sleep(2)
    pt = per_transition("CL-02")
    res.check(len(pt) == 2 and all(n == 1 for n in pt.values()),
              "with claims: each transition notified exactly once (%s, %.1f s for the crossing)"
              % (sorted(pt.values()), took))
    rows = pg.psql("SELECT transition, hub_id, unclaimed FROM agri_notify_claims"
                   " WHERE episode LIKE 'salinity-high/CL-02/%' ORDER BY transition").splitlines()
    res.check(len(rows) == 2 and all(r.endswith("|f") for r in rows),
              "agri_notify_claims: one claim a transition (%s)" % rows)
    claims = [r[4] for r in a.outbox() + b.outbox()]
    res.check(sorted(c.split(":")[0] for c in claims) == ["peer", "peer", "won", "won"],
              "each transition won by one hub, marked done by its peer on the other (%s)" % claims)

    # 2b. hub B down during a crossing: A claims and sends; B, back, catches
    # up from its broker session, derives the same episode and sends nothing
    b.gw.kill9()
    st5 = gp.Station(mq.port, "CL-05", ack_timeout=2.0)
    st5.connected.wait(10)
    crossing(st5, 1, 0.5)
    crossing(st5, 2, 4.6)
    crossing(st5, 3, 0.5)
    harness.wait_for(lambda: len(deliveries("CL-05")) >= 2, 20, 0.1, what="hub A's sends")
    t_back = time.time()
    b.gw.start()
    harness.wait_for(lambda: len(b.outbox("alert_id LIKE 'salinity-high/CL-05/%' AND"
                                          " delivered_at IS NOT NULL")) == 2, 30, 0.2,
                     what="hub B's catch-up settled")
    time.sleep(2)
    pt = per_transition("CL-05")
    res.check(len(pt) == 2 and all(n == 1 for n in pt.values()) and
              all(r[4] == "peer:hub-a" for r in b.outbox("alert_id LIKE 'salinity-high/CL-05/%'")),
              "hub B down during a crossing: A sent each transition once; B, back, derived the same"
              " episodes from its queue and found A's claims (%s, %.1f s)"
              % (sorted(pt.values()), time.time() - t_back))

    # 3. PostgreSQL away during a crossing
    pg.stop()
    st2 = gp.Station(mq.port, "CL-03", ack_timeout=2.0)
    st2.connected.wait(10)
    crossing(st2, 1, 0.5)
    t_cross = time.time()
    crossing(st2, 2, 4.6)
    harness.wait_for(lambda: deliveries("CL-03", "a"), 20, 0.1, what="hub A's unclaimed send")
    t_a = deliveries("CL-03", "a")[0][4] - t_cross
    time.sleep(6)
    res.check(len(deliveries("CL-03", "a")) == 1 and not deliveries("CL-03", "b"),
              "PostgreSQL away: the priority-1 hub sent the raise in %.1f s, the other nothing"
              " while it is online (6 s more)" % t_a)
    res.check(a.unclaimed() == 1 and b.unclaimed() == 0,
              "counted: notifications_unclaimed A=%s B=%s" % (a.unclaimed(), b.unclaimed()))
    waiting = b.outbox("delivered_at IS NULL")
    res.check(len(waiting) == 1 and waiting[0][4] is None,
              "hub B's row waits (%s)" % (waiting,))
    pg.start()
    t_pg = time.time()
    harness.wait_for(lambda: len(b.outbox("delivered_at IS NULL")) == 0, 40, 0.2,
                     what="hub B's waiting row settled after PostgreSQL came back")
    t_b = time.time() - t_pg
    time.sleep(1)
    rows = pg.psql("SELECT hub_id, unclaimed FROM agri_notify_claims"
                   " WHERE episode LIKE 'salinity-high/CL-03/%'").splitlines()
    res.check(rows == ["hub-a|t"], "PostgreSQL back: hub A's unclaimed send recorded as its claim (%s)"
              % rows)
    res.check(len(deliveries("CL-03")) == 1 and b.outbox("1")[-1][4] == "peer:hub-a" and
              a.outbox("1")[-1][4] == "reconciled",
              "hub B found the claim %.1f s later and did not send: 1 delivery (%s / %s)"
              % (t_b, a.outbox("1")[-1][4], b.outbox("1")[-1][4]))

    # 4. PostgreSQL away and hub A gone: B takes over after takeover_s
    pg.stop()
    st3 = gp.Station(mq.port, "CL-04", ack_timeout=2.0)
    st3.connected.wait(10)
    crossing(st3, 1, 0.5)
    t_kill = time.time()  # before: A's Last Will may go out while kill9() waits for it
    a.gw.kill9()
    crossing(st3, 2, 4.6)
    harness.wait_for(lambda: deliveries("CL-04", "b"), 2 * KEEPALIVE_S + TAKEOVER_S + 20, 0.2,
                     what="hub B's takeover")
    t_b = deliveries("CL-04", "b")[0][4] - t_kill
    res.check(t_b >= TAKEOVER_S and not deliveries("CL-04", "a"),
              "hub A killed: hub B sent %.1f s later, after A's Last Will (at once: its socket closed) + takeover_s (%d s)"
              % (t_b, TAKEOVER_S))
    res.check(b.unclaimed() == 1, "counted on B: notifications_unclaimed=%s" % b.unclaimed())

    for s in (st, st2, st3, st5):
        s.close()
    b.gw.stop()
    pg.stop()
    mq.stop()
    SINK.stop()
    res.done()


if __name__ == "__main__":
    main()
