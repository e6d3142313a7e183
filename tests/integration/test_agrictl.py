"""agrictl against agri-sim (docs/interfaces.md §11):

- `scan` on ONE RTU pseudo-terminal with agri-sim answering as slaves 1, 3
  and 7 with three different profiles lists exactly those three with the
  right profile guesses, as text and --json; a range nobody answers exits 1;
  over Modbus TCP the ids agri-sim does not serve (exception 0B) are not
  listed; two devices whose maps differ only in meaning are flagged;
- `read --json` decodes the values the simulator holds (compared with its
  own --series truth at the same, nearly frozen, simulated instant);
- `salinity` gives the PSS-78 check values (UNESCO 1983: C(35, 15 °C IPTS-68,
  0) = 42.914 mS/cm; R = 1.888091 at 40 °C, 10000 dbar is S 40) and the
  low-salinity extension's values (gsw);
- `config validate` on good and bad station, gateway, rules and profile files
  (exit 0 `ok`, 78 `FILE:LINE:COLUMN: path: reason`); `--help` 0, a bad flag 2.
(issue 22's findings: test_agrictl_toolbox.py.)
"""
import csv
import io
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

R = harness.Result("test_agrictl")
SIM = harness.bin_path("agri-sim")
try:
    CTL = harness.bin_path("agrictl")
except FileNotFoundError as e:  # a build without the gateway (-DAGRI_WITH_GATEWAY=OFF) has no agrictl
    print("SKIP: %s" % e)
    sys.exit(77)
START = "2025-04-02T05:00"  # 12:00 local; 18 km from the mouth: brackish
SLAVES = {1: "sensecap-s-ec-01", 3: "epever-tracer", 7: "yosemitech-y520"}


def ctl(*args, timeout=60):
    return harness.run([CTL] + [str(a) for a in args], timeout=timeout)


def slave_args(slaves):
    out = []
    for sid, prof in sorted(slaves.items()):
        out += ["--slave", "%d:%s" % (sid, prof)]
    return out


def described(prof):
    """What scan prints after a profile's name: (vendor model)."""
    with open(os.path.join(harness.PROFILES, prof + ".json")) as f:
        doc = json.load(f)
    return "%s (%s %s)" % (prof, doc.get("vendor", ""), doc.get("model", ""))


def truth(slaves):
    res = harness.run([SIM, "--series", "--start", START, "--hours", "0.01", "--step-s", "30"]
                      + slave_args(slaves))
    out = {}
    for row in csv.DictReader(io.StringIO(res.stdout)):
        if row["ts"].startswith(START):
            sid, metric = row["metric"].split("/", 1)
            out.setdefault(int(sid), {})[metric] = float(row["value"])
    return out


def test_scan_rtu(work):
    pty = harness.PtyPair(work)
    # One line, one line setting: the EPEVER defaults to 115200, so the bus runs at 9600.
    sim = harness.Proc([SIM, "--rtu", pty.b, "--baud", "9600", "--start", START, "--speed", "0.001"]
                       + slave_args(SLAVES), os.path.join(work, "sim-rtu.log"))
    time.sleep(0.5)  # agri-sim opens the pty
    R.check(sim.poll() is None, "agri-sim serves slaves 1, 3, 7 on one pty at 9600 Bd")
    # A Y520 reads 0 until its start command (profile init), which read sends.
    ctl("read", "--rtu", pty.a, "--baud", "9600", "--profile", "yosemitech-y520", "--slave", 7)
    res = ctl("scan", "--rtu", pty.a, "--baud", "9600", "--from", 1, "--to", 12)
    want = "".join("slave %d: %s\n" % (s, described(p)) for s, p in sorted(SLAVES.items()))
    R.check(res.returncode == 0 and res.stdout == want,
            "scan RTU 1..12 lists exactly slaves 1, 3, 7 with their profiles (rc=%d):\n%s%s"
            % (res.returncode, res.stdout, res.stderr))
    res = ctl("scan", "--rtu", pty.a, "--baud", "9600", "--from", 1, "--to", 8, "--json")
    try:
        got = json.loads(res.stdout)
    except ValueError:
        got = None
    R.check(res.returncode == 0 and [{"slave": g["slave"], "profile": g["profile"]} for g in got or []]
            == [{"slave": s, "profile": p} for s, p in sorted(SLAVES.items())]
            and all(g.get("vendor") and g.get("model") for g in got),
            "scan --json, with vendor and model: %s" % res.stdout.strip())
    res = ctl("scan", "--rtu", pty.a, "--baud", "9600", "--from", 8, "--to", 11, "--timeout-ms", 100)
    R.check(res.returncode == 1 and res.stdout == "" and "no slave answered" in res.stderr,
            "scan of ids nobody answers: exit 1, nothing listed (rc=%d %r %r)"
            % (res.returncode, res.stdout, res.stderr.strip()))

    # read, RTU, --json: the decoded values are the simulator's own
    tru = truth(SLAVES)
    for sid, prof in sorted(SLAVES.items()):
        res = ctl("read", "--rtu", pty.a, "--baud", "9600", "--profile", prof, "--slave", sid, "--json")
        try:
            doc = json.loads(res.stdout)
        except ValueError:
            doc = None
        ok = res.returncode == 0 and doc and doc["slave"] == sid and doc["profile"] == prof
        bad = []
        for rd in (doc or {}).get("readings", []):
            if rd.get("derived"):
                continue  # test_agrictl_toolbox checks the derived metrics
            t = tru.get(sid, {}).get(rd["metric"])
            if rd["q"] != "ok" or rd["value"] is None or not rd["raw"]:
                bad.append(rd)
            elif t is not None and abs(rd["value"] - t) > max(0.02 * abs(t), 0.02):
                bad.append((rd["metric"], rd["value"], t))
        R.check(ok and not bad and len(doc["readings"]) > 1,
                "read --json slave %d (%s) decodes the simulator's values (rc=%d, mismatches %s)"
                % (sid, prof, res.returncode, bad or res.stderr.strip()))
    res = ctl("read", "--rtu", pty.a, "--baud", "9600", "--profile", "sensecap-s-ec-01", "--slave", 1)
    R.check(res.returncode == 0 and "specific_conductance" in res.stdout and "03:0x0002" in res.stdout,
            "read (text) prints metrics with fc:addr and raw words")
    res = ctl("read", "--rtu", pty.a, "--baud", "9600", "--profile", "sensecap-s-ec-01", "--slave", 9,
              "--timeout-ms", 100)
    R.check(res.returncode == 1 and "read failed" in res.stderr,
            "read of a slave that does not answer: exit 1 (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    res = ctl("read", "--rtu", pty.a, "--profile", "no-such-profile", "--slave", 1)
    R.check(res.returncode == 2 and "sensecap-s-ec-01" in res.stderr,
            "read of an unknown profile: exit 2, the profiles listed (rc=%d %s)"
            % (res.returncode, res.stderr.strip()))
    rc = sim.stop()
    R.check(rc == 0, "agri-sim exits 0 on SIGTERM")
    pty.stop()


def test_scan_tcp(work):
    port = harness.free_port()
    # Y504 (DO) and Y520 (conductivity) read the same two floats at 0x2600: in fresh
    # water both fit both maps, and scan says so instead of guessing silently.
    slaves = {2: "yosemitech-y504", 5: "agri-lighttrap", 9: "keller-acculevel"}
    sim = harness.Proc([SIM, "--tcp", "127.0.0.1:%d" % port, "--start", START, "--speed", "0.001",
                        "--scenario", "freshwater"] + slave_args(slaves),
                       os.path.join(work, "sim-tcp.log"))
    harness.wait_port(port, 10, sim)
    res = ctl("scan", "--tcp", "127.0.0.1:%d" % port, "--from", 1, "--to", 30)
    lines = res.stdout.splitlines()
    R.check(res.returncode == 0 and [ln.split(":")[0] for ln in lines] == ["slave 2", "slave 5", "slave 9"],
            "scan TCP 1..30 lists only the served unit ids (exception 0B is nobody): %r" % lines)
    R.check(len(lines) == 3 and lines[1] == "slave 5: " + described("agri-lighttrap")
            and lines[2] == "slave 9: " + described("keller-acculevel"),
            "scan TCP guesses the light trap and the Keller")
    R.check(len(lines) == 3 and lines[0].startswith("slave 2: yosemitech-y504")
            and "also fits: yosemitech-y520" in lines[0],
            "scan flags the Y504/Y520 ambiguity: %r" % (lines[:1],))
    res = ctl("scan", "--tcp", "127.0.0.1:%d" % port, "--from", 2, "--to", 2, "--json")
    got = json.loads(res.stdout) if res.returncode == 0 else []
    R.check(res.returncode == 0 and [{k: g[k] for k in ("slave", "profile", "also_fits") if k in g}
                                     for g in got] ==
            [{"slave": 2, "profile": "yosemitech-y504", "also_fits": ["yosemitech-y520"]}],
            "scan --json carries also_fits: %s" % res.stdout.strip())
    sim.stop()


def test_salinity():
    cases = [
        # (ec mS/cm, t °C ITS-90, p dbar, expected SP) — 4 decimals
        (42.914, 14.9964, None, 35.0000),  # PSS-78's definition: T68 = 15 °C
        (42.914, 15, None, 34.9968),       # the same conductivity at 15 °C ITS-90
        (1.888091 * 42.914, 39.990402, 10000, 40.0000),  # UNESCO 1983 check value
        (1.0, 25, None, 0.4925),           # low-salinity extension (Hill 1986), gsw
        (0.1, 25, None, 0.0462),
        (15.0, 28, None, 8.1770),
    ]
    for ec, t, p, want in cases:
        argv = ["salinity", "--ec", repr(ec), "--temp", repr(t)]
        if p is not None:
            argv += ["--pressure", str(p)]
        res = ctl(*argv)
        try:
            got = float(res.stdout.split()[1])
        except (IndexError, ValueError):
            got = None
        R.check(res.returncode == 0 and got is not None and abs(got - want) <= 0.00015,
                "salinity --ec %g --temp %g%s = %s (want %.4f)"
                % (ec, t, " --pressure %d" % p if p else "", got, want))
    res = ctl("salinity", "--ec", "abc", "--temp", "25")
    R.check(res.returncode == 2 and res.stderr.count("\n") == 1, "salinity with a bad --ec: exit 2, one line")
    res = ctl("salinity", "--ec", "1")
    R.check(res.returncode == 2, "salinity without --temp: exit 2")


def test_validate(work):
    def w(name, obj):
        p = os.path.join(work, name)
        with open(p, "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj, indent=1))
        return p

    with open(os.path.join(work, "gw.pass"), "w") as f:
        f.write("secret\n")
    station = {
        "station": "DT-T01", "broker": {"url": "tcp://127.0.0.1:1883"},
        "state_dir": os.path.join(work, "state"), "profiles_dir": harness.PROFILES,
        "buses": [{"name": "rs485", "rtu": {"device": "/dev/ttyUSB0", "baud": 9600}}],
        "sensors": [{"name": "sonde1", "bus": "rs485", "slave": 1, "profile": "sensecap-s-ec-01",
                     "interval_s": 60}]}
    gateway = {"broker": {"url": "tcp://127.0.0.1:1883", "username": "gateway", "password_file": "gw.pass"},
               "db": {"path": os.path.join(work, "gw.db")}}
    with open(os.path.join(harness.SRC, "gateway", "rules.default.json")) as f:
        rules = json.load(f)
    with open(os.path.join(harness.PROFILES, "yosemitech-y520.json")) as f:
        profile = json.load(f)

    bad_station = json.loads(json.dumps(station))
    bad_station["sensors"][0]["bus"] = "rs232"
    bad_gateway = json.loads(json.dumps(gateway))
    bad_gateway["db"]["retention_days"] = "forever"
    bad_rules = json.loads(json.dumps(rules))
    bad_rules["rules"][0]["bogus_key"] = 1
    bad_profile = json.loads(json.dumps(profile))
    bad_profile["registers"][1]["type"] = "u24"

    good = [("station", w("station.json", station)), ("gateway", w("gateway.json", gateway)),
            ("rules", w("rules.json", rules)), ("profile", w("profile.json", profile))]
    for kind, path in good:
        res = ctl("config", "validate", path)
        R.check(res.returncode == 0 and res.stdout.strip() == "%s: ok (%s)" % (path, kind),
                "config validate good %s: exit 0 ok (rc=%d %s%s)"
                % (kind, res.returncode, res.stdout.strip(), res.stderr.strip()))
    bad = [("station", w("bad-station.json", bad_station), "sensors[0].bus"),
           ("gateway", w("bad-gateway.json", bad_gateway), "db.retention_days"),
           ("rules", w("bad-rules.json", bad_rules), "rules[0]"),
           ("profile", w("bad-profile.json", bad_profile), "registers[1].type"),
           ("not json", w("bad.json", "{\"station\": "), ""),
           ("unknown kind", w("other.json", {"hello": 1}), "")]
    for kind, path, jpath in bad:
        res = ctl("config", "validate", path)
        line = res.stderr.strip()
        R.check(res.returncode == 78 and re.match(re.escape(path) + r":\d+:\d+: ", line) and jpath in line
                and line.count("\n") == 0 and res.stdout == "",
                "config validate bad %s: exit 78 `FILE:LINE:COLUMN: path: reason` (rc=%d %r)"
                % (kind, res.returncode, line))
    res = ctl("config", "validate", os.path.join(work, "missing.json"))
    R.check(res.returncode == 78, "config validate of a missing file: exit 78")


def test_cli():
    res = ctl("--help")
    R.check(res.returncode == 0 and "scan" in res.stdout and "provision" in res.stdout, "--help: exit 0, usage")
    for sub in (["scan", "--help"], ["read", "--help"], ["config", "push", "--help"],
                ["config", "validate", "--help"], ["provision", "--help"], ["salinity", "--help"]):
        res = ctl(*sub)
        R.check(res.returncode == 0, "%s: exit 0" % " ".join(sub))
    for argv in (["--bogus"], ["scan", "--bogus"], ["scan", "--rtu", "/dev/null", "--baud", "x"],
                 ["scan"], ["read", "--tcp", "h:1"], ["frobnicate"], [],
                 ["config", "push", "--station", "bad id!", "--broker", "tcp://x:1", "f"]):
        res = ctl(*argv)
        R.check(res.returncode == 2 and res.stderr.strip(),
                "agrictl %s: exit 2 with a message (rc=%d)" % (" ".join(argv), res.returncode))


def main():
    work = harness.tmpdir("agri-ctl-")
    test_cli()
    test_salinity()
    test_validate(work)
    test_scan_rtu(work)
    test_scan_tcp(work)
    R.done()


if __name__ == "__main__":
    main()
