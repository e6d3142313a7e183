"""A probe that lies is caught, not believed (issue 19), with real
agri-sim, agri-station, mosquitto and agri-gateway on one accelerated
clock (an hour a second; AGRI_CLOCK for station and gateway):

- a SenseCAP in brackish water that dries out (agri-sim --fault dry):
  its conductivity and the salinity from it are "suspect", why "dry";
- one whose value freezes (--fault stuck) is "stuck" once the same value
  lasted longer than its profile's stuck_after_s (6 h);
- one in water past its 20 mS/cm full scale is "full_scale", and so is
  its salinity (the SenseCAP saturates near 12 g/L);
- a probe mounted above the station's water level (sensors[].probe_level_m
  over the Keller's water_level) is "dry"; one below it is not;
- an Aqua TROLL whose parameter ID disagrees with the station's copy of
  its profile is "map" (and logged);
- a Yosemitech Y520 measures: the station sent its start command;
- healthy probes stay "ok" with no reason.

The wire format is checked on the telemetry itself (a stand-in that keeps
every reading as sent); the real gateway stores the suspect readings (no
dead letters).
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
import gateway_peer as gp  # noqa: E402
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

START = "2026-04-01T10:00"
SPEED = 3600


class Wire(S.Gateway):
    """The stand-in, keeping each reading's "why" too."""

    def _on_message(self, c, userdata, msg):
        if msg.topic.endswith("/telemetry"):
            doc = json.loads(msg.payload.decode("utf-8"))
            with self.lock:
                for r in doc["readings"]:
                    self.whys = getattr(self, "whys", {})
                    self.whys[(r["sensor"], r["metric"], r["ts"])] = r.get("why")
        super()._on_message(c, userdata, msg)

    def rows(self, sensor, metric):
        """[(ts, value, q, why)] in time order."""
        with self.lock:
            whys = dict(getattr(self, "whys", {}))
        return [(t, v, q, whys.get((sensor, metric, t))) for t, v, q in self.series(sensor, metric)]


def main():
    res = H.Result("test_station_quality")
    wd = H.tmpdir("agri-st-q-")
    env = {"AGRI_CLOCK": "%s:00.000Z@%d" % (START, SPEED)}
    broker = H.Mosquitto(os.path.join(wd, "mq")).start()
    wire = Wire(broker.port, client_id="wire").start()
    gw = gp.Gateway(wd, gp.write_config(wd, broker.port, db=os.path.join(wd, "agri.db"),
                                        client_id="gw-q"))
    gw.proc = H.Proc([H.bin_path("agri-gateway"), "--config", gw.config, "--log-level", "info"],
                     os.path.join(wd, "gw.log"), env=env)
    gw.starts = 1
    gw.wait_subscribed()

    # The station's profiles: the shipped ones, but its Aqua TROLL expects
    # parameter ID 11 where the device (the shipped map) has 9.
    pdir = os.path.join(wd, "profiles")
    shutil.copytree(H.PROFILES, pdir)
    at = json.load(open(os.path.join(pdir, "insitu-aquatroll-400.json")))
    at["expect"][0]["value"] = 11
    json.dump(at, open(os.path.join(pdir, "insitu-aquatroll-400.json"), "w"))

    brackish = "salinity=4,temperature=29"
    port = H.free_port()
    sim = S.start_sim(wd, "sim", [
        "1:sensecap-s-ec-01," + brackish,                 # dries out after 4 h
        "2:sensecap-s-ec-01,distance_km=18",              # freezes after 1 h
        "3:sensecap-s-ec-01,salinity=14,temperature=29",  # past full scale
        "4:sensecap-s-ec-01," + brackish,                 # mounted above the water
        "5:sensecap-s-ec-01,distance_km=30",              # mounted below the water
        "6:keller-acculevel,depth_m=3",                   # the station's water level
        "7:insitu-aquatroll-400,distance_km=30",          # parameter ID mismatch
        "8:yosemitech-y520," + brackish,                  # needs its start command
        "9:sensecap-s-ec-01,distance_km=30",              # healthy
    ], tcp_port=port, extra=["--profiles-dir", H.PROFILES, "--start", START, "--speed", str(SPEED),
                             "--fault", "1:dry:4", "--fault", "2:stuck:1"])
    sensors = [{"name": n, "bus": "lan", "slave": i + 1, "profile": p, "interval_s": 1}
               for i, (n, p) in enumerate([
                   ("dry", "sensecap-s-ec-01"), ("frozen", "sensecap-s-ec-01"),
                   ("vamkenh", "sensecap-s-ec-01"), ("high", "sensecap-s-ec-01"),
                   ("low", "sensecap-s-ec-01"), ("level", "keller-acculevel"),
                   ("troll", "insitu-aquatroll-400"), ("y520", "yosemitech-y520"),
                   ("ok", "sensecap-s-ec-01")])]
    sensors[3]["probe_level_m"] = 10.0   # 10 m above the gauge's zero: never wet
    sensors[4]["probe_level_m"] = -5.0   # always under water
    sensors[5]["level_offset_m"] = 0.0
    cfg = S.station_config(wd, broker.port,
                           [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": port},
                             "timeout_ms": 500, "gap_ms": 5}], sensors,
                           station="DT-W09", profiles_dir=pdir)
    path = H.write_json(os.path.join(wd, "station.json"), cfg)
    st = H.Proc([H.bin_path("agri-station"), "--config", path], os.path.join(wd, "station.log"),
                env=env, wrap=True)

    # 15 s = 15 simulated hours: dry after 4 h, stuck 6 h after 1 h.
    H.wait_for(lambda: len(wire.rows("frozen", "specific_conductance")) >= 12
               and any(w == "stuck" for _, _, _, w in wire.rows("frozen", "specific_conductance"))
               and len([r for r in wire.rows("y520", "specific_conductance") if r[1] is not None]) >= 2,
               60, interval=0.5, what="the frozen probe flagged stuck, the Y520 read")

    def whys(sensor, metric):
        return [w for _, v, q, w in wire.rows(sensor, metric) if v is not None]

    def qs(sensor, metric):
        return set((q, w) for _, v, q, w in wire.rows(sensor, metric) if v is not None)

    rows = wire.rows("dry", "specific_conductance")
    wet = [r for r in rows if r[1] and r[1] > 1]
    dry = [r for r in rows if r[1] == 0]
    res.check(wet and dry and all(q == "ok" and w is None for _, _, q, w in wet)
              and all(q == "suspect" and w == "dry" for _, _, q, w in dry),
              "dry probe: %d brackish readings ok, then %d at 0 mS/cm suspect/dry" % (len(wet), len(dry)))
    sal = dict((t, (q, w)) for t, v, q, w in wire.rows("dry", "salinity"))
    res.check(dry and all(sal.get(t) == ("suspect", "dry") for t, _, _, _ in dry),
              "dry probe: the salinity derived from it is suspect/dry too (%s)"
              % [sal.get(t) for t, _, _, _ in dry][:4])

    fr = wire.rows("frozen", "specific_conductance")
    stuck = [r for r in fr if r[3] == "stuck"]
    first = stuck[0][0] if stuck else None
    frozen_from = [t for t, v, q, w in fr if v == stuck[-1][1]][0] if stuck else None
    span_h = (S.ts_seconds(first) - S.ts_seconds(frozen_from)) / 3600 if stuck else 0
    res.check(stuck and 6 <= span_h <= 9 and all(w == "stuck" for t, v, q, w in fr if t > first),
              "flatline: the same value for %.1f simulated h before it turned suspect/stuck" % span_h)

    res.check(qs("vamkenh", "specific_conductance") == {("suspect", "full_scale")}
              and qs("vamkenh", "salinity") == {("suspect", "full_scale")},
              "past full scale: conductivity and salinity suspect/full_scale (%s, %s)"
              % (qs("vamkenh", "specific_conductance"), qs("vamkenh", "salinity")))
    sal = [v for _, v, _, _ in wire.rows("vamkenh", "salinity") if v is not None]
    res.check(sal and 11.5 < max(sal) < 12.3, "the SenseCAP saturates near 12 g/L (%.2f)" % max(sal))

    # Once the station knows its water level (the Keller polls after these).
    lv_rows = wire.rows("level", "water_level")
    t_lv = lv_rows[0][0] if lv_rows else "9"

    def after_level(sensor, metric):
        return set((q, w) for t, v, q, w in wire.rows(sensor, metric) if v is not None and t > t_lv)
    res.check(after_level("high", "specific_conductance") == {("suspect", "dry")}
              and after_level("high", "salinity") == {("suspect", "dry")}
              and after_level("low", "specific_conductance") == {("ok", None)},
              "above the water level: dry (%s); below it: ok (%s)"
              % (after_level("high", "specific_conductance"), after_level("low", "specific_conductance")))
    lv = [v for _, v, q, w in lv_rows if q == "ok"]
    res.check(lv and all(1.5 < v < 4.5 for v in lv), "water_level reported (%.2f..%.2f m)" % (min(lv), max(lv)))

    res.check(qs("troll", "conductivity") == {("suspect", "map")}
              and qs("troll", "salinity") == {("suspect", "map")}
              and qs("troll", "specific_conductance") == {("ok", None)},
              "profile/device mismatch: conductivity and its salinity suspect/map, the rest ok")
    res.check("does not match profile insitu-aquatroll-400: fc=3 addr=547 reads 9, expected 11"
              in st.log_text(), "the mismatch is logged with the word and both values")

    y = [v for _, v, q, w in wire.rows("y520", "specific_conductance") if v is not None]
    res.check(y and all(v > 5 for v in y), "the Y520 measures: the station sent its start command (%s)"
              % (y[:3],))
    res.check(qs("ok", "specific_conductance") == {("ok", None)} and qs("ok", "salinity") == {("ok", None)},
              "a healthy probe stays ok, without a reason")

    db = os.path.join(wd, "agri.db")
    H.wait_for(lambda: S.spool_depth(cfg["state_dir"]) == 0, 30, what="spool drained")
    stored = gp.query(db, "SELECT sensor, q, count(*) FROM v_readings WHERE station='DT-W09' "
                          "AND q='suspect' GROUP BY sensor")
    dead = gp.query(db, "SELECT count(*) FROM v_dead_letters")[0][0]
    res.check(dead == 0 and {s for s, q, n in stored} >= {"dry", "frozen", "vamkenh", "high", "troll"},
              "the gateway stores the suspect readings, no dead letters (%s, dead %d)" % (stored, dead))
    res.check(st.poll() is None and sim.poll() is None, "station and simulator still running")
    res.done()


if __name__ == "__main__":
    main()
