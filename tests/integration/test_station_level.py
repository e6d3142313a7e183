"""Water level (issue 19, part 4), with real agri-sim, agri-station,
mosquitto and agri-gateway: a Keller Acculevel (vented, gauge pressure) at
the bottom of a canal where agri-sim runs its tide. The station derives
water_level = p / (rho(T) g) + sensors[].level_offset_m; the technician
sets the offset with `agrictl level-offset` from a staff-gauge reading,
either by reading the device or from the level the station reports.

- the simulator's level follows the tide (a day of --series);
- without an offset the station reports the water column above the
  sensor, equal to the simulator's truth at the reading's time (2 mm);
- `agrictl level-offset --measured 5.000 --profile ... --slave 1` prints
  the offset; restarted with it, the station reports 5.000 m plus what
  the tide did since (5 mm);
- `agrictl level-offset --measured M --reading R --offset O` gives
  O + M - R;
- the gateway stores water_level.
"""
import bisect
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import gateway_peer as gp  # noqa: E402
import harness as H  # noqa: E402
import station_support as S  # noqa: E402

SLAVE = "1:keller-acculevel,depth_m=2,distance_km=18,scenario=freshwater"


def iso_now(offset_s=0):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + offset_s))


def truth(start, hours, step_s):
    """{epoch s: water_level} of the simulator's --series (seed 7, as start_sim)."""
    r = H.run([H.bin_path("agri-sim"), "--series", "--slave", SLAVE, "--start", start,
               "--hours", str(hours), "--step-s", str(step_s), "--seed", "7",
               "--profiles-dir", H.PROFILES], timeout=60, wrap=True)
    out = {}
    for line in r.stdout.splitlines()[1:]:
        ts, metric, value = line.split(",")
        if metric == "water_level":
            out[calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))] = float(value)
    return out


def at(series, t):
    """Linear interpolation of a {s: v} series at t (s)."""
    keys = sorted(series)
    i = bisect.bisect_right(keys, t)
    if i == 0 or i == len(keys):
        return None
    t0, t1 = keys[i - 1], keys[i]
    return series[t0] + (series[t1] - series[t0]) * (t - t0) / (t1 - t0)


def agrictl(*args):
    return H.run([H.bin_path("agrictl"), "level-offset"] + [str(a) for a in args], timeout=30)


def main():
    res = H.Result("test_station_level")
    wd = H.tmpdir("agri-st-lv-")

    day = truth(iso_now(-3600)[:16], 25, 600)
    lv = list(day.values())
    res.check(len(lv) > 100 and max(lv) - min(lv) > 0.2 and 1.0 < min(lv) and max(lv) < 3.0,
              "the simulator's level follows the tide: %.2f..%.2f m over a day" % (min(lv), max(lv)))

    broker = H.Mosquitto(os.path.join(wd, "mq")).start()
    gw = gp.Gateway(wd, gp.write_config(wd, broker.port, db=os.path.join(wd, "agri.db"),
                                        client_id="gw-lv")).start()
    wire = S.Gateway(broker.port, client_id="wire-lv").start()
    port = H.free_port()
    t_start = iso_now(-5)
    S.start_sim(wd, "sim", [SLAVE], tcp_port=port, extra=["--profiles-dir", H.PROFILES])
    bus = [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": port}, "timeout_ms": 500}]
    sensor = {"name": "gauge", "bus": "lan", "slave": 1, "profile": "keller-acculevel",
              "interval_s": 1}
    cfg = S.station_config(wd, broker.port, bus, [sensor], station="DT-W02")
    st, _ = S.start_station(wd, cfg)
    H.wait_for(lambda: len(wire.series("gauge", "water_level")) >= 5, 30, what="water_level readings")
    st.stop()
    secs = truth(t_start, 0.1, 1)
    rows = [(S.ts_seconds(t), v, q) for t, v, q in wire.series("gauge", "water_level")]
    diffs = [v - at(secs, t) for t, v, q in rows if at(secs, t) is not None]
    res.check(diffs and all(q == "ok" for _, _, q in rows) and max(abs(d) for d in diffs) < 0.002,
              "no offset: water_level = the column above the sensor (max diff %.4f m over %d readings)"
              % (max(abs(d) for d in diffs) if diffs else -1, len(diffs)))

    # The technician reads 5.000 m on the gauge and asks agrictl.
    r = agrictl("--measured", "5.000", "--profile", "keller-acculevel", "--tcp", "127.0.0.1:%d" % port,
                "--slave", 1, "--profiles-dir", H.PROFILES)
    t_measured = time.time()
    m = re.match(r"level_offset_m (-?[0-9.]+) ", r.stdout)
    res.check(r.returncode == 0 and m, "agrictl level-offset reads the device: %r" % r.stdout.strip())
    offset = float(m.group(1)) if m else 0.0
    col = at(secs, t_measured)
    res.check(col is not None and abs(offset - (5.0 - col)) < 0.003,
              "the offset (%.4f m) is the gauge minus the water column (%.4f m)" % (offset, col or -1))

    sensor["level_offset_m"] = offset
    cfg = S.station_config(wd, broker.port, bus, [sensor], station="DT-W02",
                           state_dir=os.path.join(wd, "state2"))
    st, _ = S.start_station(wd, cfg, name="station2")
    H.wait_for(lambda: len([1 for t, v, q in wire.series("gauge", "water_level")
                            if S.ts_seconds(t) > t_measured]) >= 3, 30, what="levels with the offset")
    secs = truth(t_start, 0.2, 1)
    after = [(S.ts_seconds(t), v) for t, v, q in wire.series("gauge", "water_level") if S.ts_seconds(t) > t_measured]
    want = [5.0 + at(secs, t) - at(secs, t_measured) for t, v in after]
    err = max(abs(v - w) for (t, v), w in zip(after, want))
    res.check(err < 0.005, "with level_offset_m %.4f the station reports the gauge's level: %s (max err %.4f m)"
              % (offset, ["%.3f" % v for t, v in after[:4]], err))

    last = after[-1][1]
    r = agrictl("--measured", "4.2", "--reading", "%.4f" % last, "--offset", "%.4f" % offset)
    m = re.match(r"level_offset_m (-?[0-9.]+) ", r.stdout)
    res.check(r.returncode == 0 and m and abs(float(m.group(1)) - (offset + 4.2 - last)) < 1e-4,
              "from the reported level: %r" % r.stdout.strip())
    r = agrictl("--measured", "4.2")
    res.check(r.returncode == 2 and r.stderr.count("\n") == 1, "without a reading or a device: exit 2, one line")

    db = os.path.join(wd, "agri.db")
    H.wait_for(lambda: gp.query(db, "SELECT count(*) FROM v_readings WHERE metric='water_level' "
                                    "AND station='DT-W02'")[0][0] >= 8, 30, what="water_level stored")
    res.check(True, "the gateway stores water_level")
    st.stop()
    res.done()


if __name__ == "__main__":
    main()
