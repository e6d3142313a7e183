#!/usr/bin/python3
"""Issue 29's acceptance replay: 7 simulated dry-season days of the demo's
stations (make run's six canals, two level gauges and fifteen light traps,
after 21 days of history) through the gateway's own alert engine, forecast
model and notification policy (agri-notify-replay), for the demo's three
people (gateway/recipients.demo.json): a durian adviser for two estuary
canals (0.5 g/L), the rice agronomist of Chợ Gạo district (2 and 4 g/L)
and the province office (critical only).

Prints messages per person per day, today's behaviour (every transition
and forecast notice to the one channel the demo's rules name) beside the
new one, and checks, against the simulator's series (not the engine's
records):
  - at most 4 messages a person a day besides the bulletin;
  - every first crossing of a person's level in a tidal day, and each new
    daily maximum of their levels, is in a message within group_wait
    (held ones, that fell in quiet hours, in a later message);
  - no critical crossing is delayed longer than group_wait;
  - nothing but critical news in a person's quiet hours;
  - each bulletin's intake windows are the forecast's windows at the
    person's level (the latest refit before it), its SMS form <= 2 UCS-2
    segments;
  - `agrictl notify preview` replaying the stored journal gives the same
    messages, ids and texts.
The salinity ladder runs with for_s 0 here, so the delay measured is the
policy's own. About 40 s.
"""
import collections
import datetime as dt
import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

LIVE = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
DAYS = 7
HISTORY_DAYS = 21
SEED = 2026
GW_MS = 120000
TD_MS = (24 * 3600 + 50 * 60) * 1000
OFF_MS = 7 * 3600 * 1000
DAY_MS = 86400000
LADDER = [0.5, 1.0, 2.0, 4.0]
HYST = 0.15


def province():
    spec = importlib.util.spec_from_file_location(
        "province", os.path.join(harness.SRC, "scripts", "province.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def ms(s):
    return int(dt.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def iso(t):
    return dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def local_min(t):
    return ((t + OFF_MS) % DAY_MS) // 60000


def local_day(t):
    return (t + OFF_MS) // DAY_MS


def quiet(p, t):
    q = p.get("quiet")
    if not q:
        return False
    f = int(q["from"][:2]) * 60 + int(q["from"][3:])
    to = int(q["to"][:2]) * 60 + int(q["to"][3:])
    m = local_min(t)
    return f <= m < to if f < to else (m >= f or m < to)


def sms_segments(s):
    basic = set("@$\n\r !\"#%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
    if all(c in basic for c in s):
        return 1 if len(s) <= 160 else -(-len(s) // 153)
    units = sum(2 if ord(c) > 0xFFFF else 1 for c in s)
    return 1 if units <= 70 else -(-units // 67)


def series(prov, out):
    """The demo's sensors as agri-sim gives them: history at 15 min (traps
    hourly), the live week at 1 min. Returns {station: [(ts_ms, salinity)]}."""
    sim = harness.bin_path("agri-sim")
    rows, truth = [], collections.defaultdict(list)
    hist = LIVE - dt.timedelta(days=HISTORY_DAYS)
    jobs = []
    for sid, name, km, scen, profile in prov.WATER:
        slave = "1:%s,distance_km=%g,scenario=%s" % (profile, km, scen)
        jobs.append((sid, "sonde1", slave, ("salinity", "dissolved_oxygen", "ph")))
        if sid in prov.LEVEL:
            jobs.append((sid, "level1", "3:keller-acculevel,distance_km=%g,scenario=%s" % (km, scen),
                         ("water_level",)))
    for i, (sid, name, phase) in enumerate(prov.TRAPS):
        jobs.append((sid, "trap1", "%d:agri-lighttrap,phase_d=%d" % (2 * i + 1, phase),
                     ("insect_count.bph", "rain")))
    for sid, sensor, slave, metrics in jobs:
        trap = sensor == "trap1"
        for start, hours, step in ((hist, HISTORY_DAYS * 24, 3600 if trap else 900),
                                   (LIVE, DAYS * 24, 3600 if trap else 60)):
            r = harness.run([sim, "--series", "--slave", slave, "--start", start.strftime("%Y-%m-%dT%H:%M"),
                             "--hours", str(hours), "--step-s", str(step), "--seed", str(SEED)], timeout=120)
            assert r.returncode == 0, r.stderr
            for line in r.stdout.splitlines()[1:]:
                ts, metric, value = line.split(",")
                if metric not in metrics:
                    continue
                if metric == "water_level":
                    value = "%.4f" % (float(value) + prov.LEVEL[sid])
                name = sensor
                if "." in metric:
                    metric, suffix = metric.split(".", 1)
                    name = sensor + "-" + suffix
                rows.append((ts, sid, name, metric, value))
                if metric == "salinity":
                    truth[sid].append((ms(ts), float(value)))
    rows.sort(key=lambda r: (r[0], r[1], r[2], r[3]))
    with open(out, "w") as f:
        f.write("station,sensor,metric,ts,value\n")
        for ts, sid, name, metric, value in rows:
            f.write("%s,%s,%s,%s,%s\n" % (sid, name, metric, ts, value))
    return truth


def expected_crossings(person, samples, live_ms):
    """The first crossing of the person's level in each tidal day, and each
    new daily maximum of their levels, computed from the series with the
    ladder's own hysteresis (each level on at >= its threshold, off below
    it less the hysteresis; the tidal day starts at its first crossing).
    The history before live_ms only sets the levels on; the person has
    been told nothing when the live days begin, and their level counts as
    reached when the ladder next moves."""
    plev = sorted({next(j for j, t in enumerate(LADDER) if t >= lv - 1e-9) for lv in person["levels"]})
    on = [False] * len(LADDER)
    cur, day, mx, out, top = 0, None, 0, [], -1
    for ts, v in samples:
        for j, t in enumerate(LADDER):
            if not on[j] and v >= t:
                on[j] = True
            elif on[j] and v < t - HYST:
                on[j] = False
        was, top = top, max([j for j in range(len(LADDER)) if on[j]], default=-1)
        if ts < live_ms or top == was:
            continue
        i = sum(1 for j in plev if on[j])
        if i > cur:
            if day is None or ts >= day + TD_MS:
                day, mx = ts, i
                out.append((ts, LADDER[plev[i - 1]]))
            elif i > mx:
                mx = i
                out.append((ts, LADDER[plev[i - 1]]))
        cur = i
    return out


def main():
    prov = province()
    work = harness.tmpdir("agri-notify-replay-")
    csv = os.path.join(work, "readings.csv")
    truth = series(prov, csv)
    rules = json.load(open(os.path.join(harness.SRC, "gateway", "rules.demo.json")))
    for r in rules["rules"]:
        r["notify"] = ["agronomists"]  # today: everything to the agronomists' channel
        if r["id"] == "salinity":
            r["for_s"] = 0
    harness.write_json(os.path.join(work, "rules.json"), rules)
    harness.write_json(os.path.join(work, "sites.json"), prov.sites())
    people_file = os.path.join(harness.SRC, "gateway", "recipients.demo.json")
    people = json.load(open(people_file))["recipients"]
    crops = {"durian": 0.5, "fruit": 1, "vegetables": 1, "rice": 2, "all": 4}
    for p in people:
        lv = p.get("salinity_g_l", [])
        lv = [lv] if isinstance(lv, (int, float)) else list(lv)
        lv += [crops[c] for c in p.get("crops", [])]
        p["levels"] = sorted(set(lv + [4.0]))
    end = LIVE + dt.timedelta(days=DAYS)
    db = os.path.join(work, "agri.db")
    r = harness.run([harness.bin_path("agri-notify-replay"), "--readings", csv, "--rules",
                     os.path.join(work, "rules.json"), "--recipients", people_file, "--sites",
                     os.path.join(work, "sites.json"), "--db", db, "--live", iso(LIVE.timestamp() * 1000),
                     "--end", iso(end.timestamp() * 1000), "--refit-h", "3", "--out", work], timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    msgs = [json.loads(l) for l in open(os.path.join(work, "messages.jsonl"))]
    base = [json.loads(l) for l in open(os.path.join(work, "baseline.jsonl"))]
    fcs = [json.loads(l) for l in open(os.path.join(work, "forecasts.jsonl"))]
    live_ms, end_ms = int(LIVE.timestamp() * 1000), int(end.timestamp() * 1000)
    days = sorted({local_day(t) for t in range(live_ms, end_ms, DAY_MS // 4)})
    full_days = [d for d in days if d * DAY_MS - OFF_MS >= live_ms and (d + 1) * DAY_MS - OFF_MS <= end_ms]
    failures = []

    # --- the table: messages per person per local day, today beside the new ---
    today = collections.Counter(local_day(b["at_ms"]) for b in base)
    print("messages per person per local day (UTC+7), %s to %s; today: every transition and"
          " forecast notice on the agronomists' channel, to each of them" % (iso(live_ms)[:10], iso(end_ms)[:10]))
    head = "%-10s" % "day" + "".join("%22s" % p["name"] for p in people)
    print(head)
    print("%-10s" % "" + "".join("%22s" % "today -> new (+bull.)" for p in people))
    for d in days:
        cells = []
        for p in people:
            n_alert = sum(1 for m in msgs if m["person"] == p["name"] and m["kind"] == "alert" and local_day(m["at_ms"]) == d)
            n_bul = sum(1 for m in msgs if m["person"] == p["name"] and m["kind"] == "bulletin" and local_day(m["at_ms"]) == d)
            cells.append("%22s" % ("%d -> %d (+%d)" % (today[d], n_alert, n_bul)))
            if d in full_days and n_alert > 4:
                failures.append("%s got %d messages on day %s besides the bulletin" % (p["name"], n_alert, d))
        print("%-10s" % dt.datetime.fromtimestamp(d * 86400, dt.timezone.utc).strftime("%m-%d") + "".join(cells))
    kinds = collections.Counter(b["kind"] for b in base)
    print("today's messages: %d (%s); new: %s" % (
        len(base), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
        ", ".join("%s %d + %d bulletins" % (p["name"],
                                            sum(1 for m in msgs if m["person"] == p["name"] and m["kind"] == "alert"),
                                            sum(1 for m in msgs if m["person"] == p["name"] and m["kind"] == "bulletin"))
                  for p in people)))

    # --- every first daily crossing in a message within group_wait ---
    checked = 0
    for p in people:
        mine = [m for m in msgs if m["person"] == p["name"]]
        follows = [s for s in truth
                   if (p.get("stations") and s in p["stations"]) or
                   (p.get("districts") and prov.sites()[s]["district"] in p["districts"]) or
                   (not p.get("stations") and not p.get("districts"))]
        for s in follows:
            for ts, level in expected_crossings(p, truth[s], live_ms):
                checked += 1
                got = [m for m in mine for it in m.get("items", [])
                       if it.get("kind") == "crossing" and it.get("station") == s and
                       int(it.get("at", 0)) == ts and abs(it.get("level", 0) - level) < 1e-9]
                crit = level >= 4
                if not got:
                    failures.append("%s: no message for %s crossing %g g/L at %s" % (p["name"], s, level, iso(ts)))
                    continue
                delay = got[0]["at_ms"] - ts
                held = not crit and (quiet(p, ts) or quiet(p, ts + GW_MS))
                if (not held or crit) and delay > GW_MS:
                    failures.append("%s: %s crossing %g g/L at %s told %d s later" % (p["name"], s, level, iso(ts), delay // 1000))
        for m in mine:
            if m["kind"] == "alert" and quiet(p, m["at_ms"]) and not all(it.get("urgent") for it in m["items"]):
                failures.append("%s: non-critical message %s in quiet hours" % (p["name"], m["id"]))
    print("first daily crossings checked against the series: %d" % checked)

    # --- bulletins: windows as the forecast's, SMS in two segments ---
    n_bul = 0
    for m in msgs:
        if m["kind"] != "bulletin":
            continue
        n_bul += 1
        seg = sms_segments(m["sms"])
        if seg > 2:
            failures.append("bulletin %s: SMS takes %d segments: %s" % (m["id"], seg, m["sms"]))
        b = m["bulletin"]
        B = m["at_ms"]
        for st in b["stations"]:
            prior = [f for f in fcs if f["station"] == st["station"] and f["made_at"] <= B]
            want = []
            if prior:
                want = [(w["from"], w["to"]) for w in prior[-1]["windows"]
                        if abs(w["below"] - b["level"]) < 1e-9 and w["to"] > B and w["from"] < B + DAY_MS]
            got = [(ms(w["from"]), ms(w["to"])) for w in b["windows"]
                   if w["station"] == st["station"] and not w.get("sluice")]
            if want != got:
                failures.append("bulletin %s: %s windows %s, the forecast's %s" % (m["id"], st["station"], got, want))
    sms_max = max((sms_segments(m["sms"]) for m in msgs if m["kind"] == "bulletin"), default=0)
    print("bulletins: %d, SMS form at most %d segment(s); e.g. %s" % (
        n_bul, sms_max, next((m["sms"] for m in msgs if m["kind"] == "bulletin" and m["person"] == "tuan"), "-")))
    if n_bul < len(people) * (DAYS - 1):
        failures.append("only %d bulletins" % n_bul)

    # --- the preview replays the journal into the same messages ---
    agrictl = harness.bin_path("agrictl")
    for p in people:
        r = harness.run([agrictl, "notify", "preview", "--db", db, "--recipients", people_file,
                         "--person", p["name"], "--from", iso(live_ms - DAY_MS), "--to", iso(end_ms), "--json"],
                        timeout=120)
        if r.returncode != 0:
            failures.append("agrictl notify preview --person %s: exit %d %s" % (p["name"], r.returncode, r.stderr.strip()))
            continue
        got = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        want = [m for m in msgs if m["person"] == p["name"]]
        if [(g["id"], g["sms"], g["text_vi"]) for g in got] != [(w["id"], w["sms"], w["text_vi"]) for w in want]:
            failures.append("preview for %s: %d messages, live made %d (first difference: %s)" % (
                p["name"], len(got), len(want),
                next(((g["id"], w["id"]) for g, w in zip(got, want) if g["id"] != w["id"] or g["sms"] != w["sms"]), "count")))
    print("preview of the journal: %s" % ("the same messages for all %d people" % len(people)
                                           if not any("preview" in f for f in failures) else "DIFFERENT"))

    for f in failures[:30]:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
