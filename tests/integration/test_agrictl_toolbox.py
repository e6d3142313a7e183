"""The technician's toolbox (issue 22), one part per finding, against agri-sim
on a socat pseudo-terminal and on TCP, hostile TCP peers written here, and a
real mosquitto. (Finding 1, a config applied on probation, and `agrictl
status` against a station: test_station_probation.py.)

2. scan tells the truth: a TCP server that accepts and closes, and one that
   answers random bytes, list no slave (exit 1, saying why) instead of 247
   phantoms; a slave counts only for a well-formed Modbus reply; vendor and
   model in the text; progress and ETA on stderr; ids cost ~60 ms at
   9600 Bd, not 200 ms; --sweep; --emit-config writes entries `config
   validate` takes.
3. errors say what to do: a silent slave id on a bus where another answers
   ("the bus works") against a bus where nothing does; a Modbus exception in
   words; a host name resolved (localhost) or refused with the resolver's
   reason; a wrong broker password is CONNACK 5 in words; a push the broker's
   ACL dropped is not "retained"; an unknown profile lists the nearest names.
4. --version.
5. two sensors shipped as slave 1 are given ids 2 and 3 with `agrictl write`
   (connected one at a time: agri-sim's plugged=0 and SIGUSR1), then found by
   scan at their new ids; a dangerous register (baud) and a taken id are
   refused without --yes; calibrate writes the SenseCAP's 1413 µS/cm point and
   records who and when in the gateway's database; the gateway raises
   "calibration due" after calibration.interval_days and clears it after the
   next calibration.
6. read shows the derived salinity, the light trap's species, status words
   as integers with their bits, --watch --count, --timeout-ms on
   level-offset.
7. per-command --help; config --help exits 0; a JSON syntax error and every
   validation error with line and column; Vietnamese under LANG=vi_VN; every
   text printed through T() is in the catalogue.
"""
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

R = H.Result("test_agrictl_toolbox")
try:
    CTL = H.bin_path("agrictl")
except FileNotFoundError as e:
    print("SKIP: %s" % e)
    sys.exit(77)
SIM = H.bin_path("agri-sim")
START = "2025-04-02T05:00"


def ctl(*args, timeout=120, env=None):
    return H.run([CTL] + [str(a) for a in args], timeout=timeout, env=env)


class BadPeer:
    """A TCP server on a free port: mode "close" accepts and closes at once,
    "random" answers every request with random bytes."""

    def __init__(self, mode):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.mode = mode
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            if self.mode == "close":
                c.close()
                continue
            threading.Thread(target=self._random, args=(c,), daemon=True).start()

    @staticmethod
    def _random(c):
        try:
            while True:
                d = c.recv(512)
                if not d:
                    break
                c.sendall(os.urandom(len(d) + 7))
        except OSError:
            pass
        c.close()


def part_scan_truth():
    for mode in ("close", "random"):
        peer = BadPeer(mode)
        t = time.monotonic()
        res = ctl("scan", "--tcp", "127.0.0.1:%d" % peer.port, timeout=120)
        el = time.monotonic() - t
        R.check(res.returncode == 1 and "slave" not in res.stdout and "no slave answered" in res.stderr
                and el < 15,
                "scan 1..247 of a TCP server that %s: no phantom slave, exit 1, why (%.1f s): %r %s"
                % ("accepts and closes" if mode == "close" else "answers random bytes", el,
                   res.stdout[:200], res.stderr.strip().splitlines()[-1:]))


def part_rtu(work):
    pty = H.PtyPair(work)
    slaves = ["--slave", "1:sensecap-s-ec-01", "--slave", "1:sensecap-s-ec-01,plugged=0",
              "--slave", "5:agri-lighttrap", "--slave", "6:epever-tracer"]
    sim = H.Proc([SIM, "--rtu", pty.b, "--baud", "9600", "--start", START, "--speed", "0.001"] + slaves,
                 os.path.join(work, "sim-rtu.log"))
    time.sleep(0.5)
    rtu = ["--rtu", pty.a, "--baud", "9600"]

    # 2. truthful and faster, with progress
    t = time.monotonic()
    res = ctl("scan", *rtu, "--from", 1, "--to", 60)
    el = time.monotonic() - t
    lines = res.stdout.splitlines()
    R.check(res.returncode == 0 and [ln.split(":")[0] for ln in lines] == ["slave 1", "slave 5", "slave 6"]
            and lines[0].startswith("slave 1: sensecap-s-ec-01 (Seeed SenseCAP S-EC-01)"),
            "scan lists slaves 1, 5, 6 with vendor and model: %r" % lines)
    R.check("ETA" in res.stderr and re.search(r"3 slave\(s\) answer", res.stderr),
            "scan: progress and ETA on stderr, a summary: %r" % res.stderr.strip().splitlines()[-2:])
    R.check(el < 60 * 0.1, "scan of 60 ids at 9600 Bd: %.1f s, under 100 ms an id (was 200 ms)" % el)
    print("scan: 60 ids at 9600 Bd in %.1f s (%.0f ms an id; 247 ids: ~%.0f s)" % (el, el / 60 * 1000, el / 60 * 247))
    res = ctl("scan", "--rtu", pty.a, "--sweep", "--to", 2)
    R.check(res.returncode == 0 and "slave 1: sensecap-s-ec-01" in res.stdout and " at 9600 8N1" in res.stdout
            and "19200 8E1" in res.stderr,
            "scan --sweep tries the usual line settings and says at which one a slave answers: %r"
            % res.stdout.splitlines()[:2])
    emit = os.path.join(work, "found.json")
    res = ctl("scan", *rtu, "--from", 1, "--to", 6, "--emit-config", emit)
    try:
        with open(emit) as f:
            found = json.load(f)
    except (OSError, ValueError):
        found = {"buses": [{"rtu": {}}], "sensors": []}
    station = {"station": "DT-EMIT", "broker": {"url": "tcp://127.0.0.1:1883"},
               "state_dir": os.path.join(work, "st"), "profiles_dir": H.PROFILES}
    station.update(found)
    spath = H.write_json(os.path.join(work, "emitted-station.json"), station)
    v = ctl("config", "validate", spath)
    R.check(res.returncode == 0 and [s["name"] for s in found["sensors"]] == ["sonde1", "trap1", "solar1"]
            and found["buses"][0]["rtu"]["device"] == pty.a and v.returncode == 0,
            "scan --emit-config: buses and sensors a station.json takes (%s; validate %s)"
            % ([(s["name"], s["slave"], s["profile"]) for s in found["sensors"]], v.stdout.strip() or v.stderr.strip()))

    # 3. a silent id on a live bus; a Modbus exception in words
    res = ctl("read", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 9, "--timeout-ms", 100)
    R.check(res.returncode == 1 and "the bus works: slave 1 answers; slave 9 does not" in res.stderr,
            "read of a silent id where another answers: the bus works, this id does not: %r"
            % res.stderr.strip())
    res = ctl("read", *rtu, "--profile", "yosemitech-y532", "--slave", 1)
    R.check(res.returncode == 1 and "exception 02, illegal data address" in res.stderr
            and "wrong profile" in res.stderr,
            "a Modbus exception in words: %r" % res.stderr.strip())

    # 6. derived metrics, species, status words, --watch
    res = ctl("read", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 1, "--json")
    doc = json.loads(res.stdout) if res.returncode == 0 else {}
    rd = {r["metric"]: r for r in doc.get("readings", []) if "class" not in r}
    R.check(rd.get("salinity", {}).get("derived") == "pss78" and rd["salinity"]["value"] is not None
            and rd["salinity"]["q"] == "ok",
            "read shows the derived salinity: %s" % rd.get("salinity"))
    res = ctl("read", *rtu, "--profile", "agri-lighttrap", "--slave", 5)
    R.check(res.returncode == 0 and "insect_count[bph]" in res.stdout and "brown planthopper" in res.stdout
            and "leaf-folder moths" in res.stdout,
            "read of the light trap names each class's insect")
    res = ctl("read", *rtu, "--profile", "epever-tracer", "--slave", 6)
    st = [ln for ln in res.stdout.splitlines() if "charging_status" in ln]
    R.check(res.returncode == 0 and st and not re.search(r"\d\.\d{4}", st[0]),
            "read prints status words as integers (with their bits): %r" % st)
    res = ctl("read", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 1, "--watch=0.2", "--count", 3)
    R.check(res.returncode == 0 and res.stdout.count("slave 1: sensecap-s-ec-01") == 3,
            "read --watch --count 3 reads three times")

    # 5. two sensors shipped as slave 1, one at a time
    res = ctl("write", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 1, "--set", "slave_id=2")
    R.check(res.returncode == 0 and "slave 1 is now slave 2" in res.stdout,
            "write --set slave_id=2 to the first sensor: it answers at 2 (%s)" % (res.stdout + res.stderr).strip())
    os.kill(sim.pid, signal.SIGUSR1)  # the technician connects the second sensor
    time.sleep(0.3)
    res = ctl("write", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 1, "--set", "slave_id=2")
    R.check(res.returncode == 2 and "slave 2 already answers" in res.stderr,
            "a new id another device answers at is refused without --yes: %r" % res.stderr.strip())
    res = ctl("write", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 1, "--set", "slave_id=3")
    R.check(res.returncode == 0 and "slave 1 is now slave 3" in res.stdout, "the second sensor becomes slave 3")
    res = ctl("scan", *rtu, "--from", 1, "--to", 6)
    R.check(res.returncode == 0 and [ln.split(":")[0] for ln in res.stdout.splitlines()]
            == ["slave 2", "slave 3", "slave 5", "slave 6"],
            "scan finds the two sensors at their new ids 2 and 3: %r" % res.stdout.splitlines())
    res = ctl("write", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 3, "--set", "baud=19200")
    R.check(res.returncode == 2 and "dangerous" in res.stderr and "--yes" in res.stderr,
            "a dangerous register (baud) is refused without --yes: %r" % res.stderr.strip())
    res = ctl("write", *rtu, "--profile", "sensecap-s-ec-01", "--slave", 3, "--register", "0x0201",
              "--value", 4)
    R.check(res.returncode == 2 and "dangerous" in res.stderr,
            "... also as a raw --register write when --profile is given")
    sim.stop()

    # 3. a dead bus: nothing answers at all
    os.makedirs(os.path.join(work, "dead"))
    dead = H.PtyPair(os.path.join(work, "dead"))
    res = ctl("read", "--rtu", dead.a, "--profile", "sensecap-s-ec-01", "--slave", 1, "--timeout-ms", 60)
    R.check(res.returncode == 1 and "nothing answers on" in res.stderr and "wiring" in res.stderr,
            "read on a dead bus: nothing answers on it (power, wiring, settings): %r" % res.stderr.strip())
    dead.stop()
    pty.stop()


def part_tcp(work):
    port = H.free_port()
    sim = H.Proc([SIM, "--tcp", "127.0.0.1:%d" % port, "--start", START, "--speed", "0.001",
                  "--slave", "4:sensecap-s-ec-01,conductivity=1.413,temperature=25,cal_error=0.2"],
                 os.path.join(work, "sim-tcp.log"))
    H.wait_port(port, 10, sim)
    res = ctl("scan", "--tcp", "localhost:%d" % port, "--to", 5)
    R.check(res.returncode == 0 and res.stdout.startswith("slave 4: sensecap-s-ec-01"),
            "a host name (localhost) is resolved: %r %s" % (res.stdout, res.stderr.strip()[-200:]))
    res = ctl("read", "--tcp", "no-such-host.invalid:502", "--profile", "sensecap-s-ec-01", "--slave", 1)
    R.check(res.returncode == 1 and "cannot resolve the host name \"no-such-host.invalid\"" in res.stderr,
            "an unknown host name is refused with the resolver's reason: %r" % res.stderr.strip())
    res = ctl("read", "--tcp", "127.0.0.1:%d" % port, "--profile", "sensecap", "--slave", 4)
    R.check(res.returncode == 2 and "did you mean \"sensecap-s-ec-01\"" in res.stderr
            and "epever-tracer" in res.stderr,
            "an unknown profile lists the nearest names and the others: %r" % res.stderr.strip())

    # 5. calibrate against the 1413 µS/cm standard, recorded with who and when
    db = os.path.join(work, "gw.db")
    sqlite3.connect(db).close()
    res = ctl("calibrate", "--station", "DT-CAL", "--sensor", "sonde1", "--standard", "1.413",
              "--profile", "sensecap-s-ec-01", "--tcp", "127.0.0.1:%d" % port, "--slave", 4,
              "--samples", 1, "--by", "lan", "--db", db)
    con = sqlite3.connect(db)
    row = con.execute("SELECT station, sensor, metric, standard, before, after, method, written, by, at"
                      " FROM v_calibrations").fetchall()
    con.close()
    ok = (res.returncode == 0 and len(row) == 1 and row[0][:4] == ("DT-CAL", "sonde1", "specific_conductance", 1.413)
          and abs(row[0][4] - 1.613) < 0.003 and abs(row[0][5] - 1.413) < 0.003 and row[0][6] == "point"
          and row[0][7].startswith("cal_1413") and row[0][8] == "lan" and row[0][9].endswith("Z"))
    R.check(ok, "calibrate writes the 1413 point (1.613 -> 1.413 mS/cm) and records who and when: %s %s"
            % (row, (res.stdout + res.stderr).strip()[-300:]))
    sim.stop()

    # 3. the broker: a wrong password is CONNACK 5 in words; a push its ACL drops
    bdir = os.path.join(work, "mq-auth")
    os.makedirs(bdir)
    pw = os.path.join(bdir, "passwd")
    open(pw, "w").close()
    subprocess.run(["mosquitto_passwd", "-b", pw, "tech", "right-password"], check=True)
    acl = os.path.join(bdir, "acl")
    with open(acl, "w") as f:
        f.write("user tech\ntopic read agri/v1/#\n")
    extra = "allow_anonymous false\npassword_file %s\nacl_file %s\n" % (pw, acl)
    if os.geteuid() == 0:  # root mosquitto drops to user "mosquitto", who cannot read work/
        import pwd
        extra += "user %s\n" % pwd.getpwuid(os.geteuid()).pw_name
    mq = H.Mosquitto(bdir, extra_conf=extra).start()
    wrong = os.path.join(work, "wrong.pass")
    with open(wrong, "w") as f:
        f.write("wrong-password\n")
    res = ctl("status", "DT-X", "--broker", mq.url, "--username", "tech", "--password-file", wrong)
    R.check(res.returncode == 1 and "CONNACK 5" in res.stderr and "--password-file" in res.stderr,
            "a wrong broker password: CONNACK 5 in words: %r" % res.stderr.strip())
    right = os.path.join(work, "right.pass")
    with open(right, "w") as f:
        f.write("right-password\n")
    keys = os.path.join(work, "keys")
    ctl("provision", "--technician", "lan", "--out", keys)
    cfg = H.write_json(os.path.join(work, "push.json"), {
        "station": "DT-ACL", "broker": {"url": "tcp://127.0.0.1:1"}, "state_dir": os.path.join(work, "s"),
        "profiles_dir": H.PROFILES, "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": 1}}],
        "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01"}]})
    res = ctl("config", "push", "--station", "DT-ACL", "--broker", mq.url, "--username", "tech",
              "--password-file", right, "--key", os.path.join(keys, "lan.key"), "--timeout-s", 2, cfg)
    R.check(res.returncode == 3 and "did not keep the config" in res.stderr and "stays retained" not in res.stderr,
            "a push the broker's ACL dropped is not called retained: %r" % res.stderr.strip())
    mq.stop()


def part_cli(work):
    res = ctl("--version")
    R.check(res.returncode == 0 and re.match(r"agrictl \d+\.\d+\.\d+", res.stdout), "--version: %r" % res.stdout)
    for cmd in ("scan", "read", "write", "status", "calibrate", "maint"):
        res = ctl(cmd, "--help")
        R.check(res.returncode == 0 and res.stdout.startswith("usage: agrictl %s" % cmd),
                "%s --help prints its own usage, not the global one" % cmd)
    res = ctl("config", "--help")
    R.check(res.returncode == 0 and "validate" in res.stdout, "config --help: exit 0 (rc=%d)" % res.returncode)
    p = os.path.join(work, "syntax.json")
    with open(p, "w") as f:
        f.write('{\n  "station": "DT-T01",\n  "buses": [,]\n}\n')
    res = ctl("config", "validate", p)
    R.check(res.returncode == 78 and res.stderr.startswith(p + ":3:13: invalid JSON"),
            "a JSON syntax error with its line and column: %r" % res.stderr.strip())
    p = os.path.join(work, "many.json")
    with open(p, "w") as f:
        f.write('{\n'
                '  "station": "DT-T01",\n'
                '  "broker": {"url": "tcp://127.0.0.1:1883"},\n'
                '  "bogus": 1,\n'
                '  "publish_interval_s": -5,\n'
                '  "profiles_dir": "%s",\n'
                '  "buses": [{"name": "rs485", "rtu": {"device": "/dev/ttyUSB0", "parity": "X"}}],\n'
                '  "sensors": [\n'
                '    {"name": "sonde1", "bus": "rs485", "slave": 1, "profile": "sensecap-s-ec-01"},\n'
                '    {"name": "sonde2", "bus": "rs485", "slave": 300, "profile": "sensecap"}\n'
                '  ]\n'
                '}\n' % H.PROFILES)
    res = ctl("config", "validate", p)
    got = [ln[len(p) + 1:] for ln in res.stderr.splitlines() if ln.startswith(p + ":") and ln[len(p) + 1].isdigit()]
    want = ["4:12: bogus: unknown key", "5:25: publish_interval_s: must be between",
            "7:75: buses[0].rtu.parity: expected", "10:49: sensors[1].slave: must be between",
            "10:65: sensors[1].profile: no profile \"sensecap\": did you mean \"sensecap-s-ec-01\"?"]
    R.check(res.returncode == 78 and len(got) == len(want) and all(g.startswith(w) for g, w in zip(got, want)),
            "validate reports every error with its line and column:\n%s" % res.stderr)
    vi = {"LANG": "vi_VN.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""}
    res = ctl("read", "--tcp", "127.0.0.1:%d" % H.free_port(), "--profile", "sensecap-s-ec-01", "--slave", 1,
              env=vi)
    R.check(res.returncode == 1 and "không mở được" in res.stderr and "kết nối bị từ chối" in res.stderr,
            "LANG=vi_VN: the message in Vietnamese: %r" % res.stderr.strip())
    res = ctl("read", "--tcp", "127.0.0.1:%d" % H.free_port(), "--profile", "sensecap-s-ec-01", "--slave", 1,
              env={"LANG": "C.UTF-8", "LC_ALL": "", "LC_MESSAGES": ""})
    R.check("cannot open" in res.stderr and "connection refused" in res.stderr, "otherwise English")
    # every text the code prints through T() has its Vietnamese
    with open(os.path.join(H.SRC, "tools", "agrictl", "msgs_vi.h"), encoding="utf-8") as f:
        cat = f.read()
    missing = []
    src = os.path.join(H.SRC, "tools", "agrictl")
    for name in sorted(os.listdir(src)):
        if not name.endswith(".c"):
            continue
        with open(os.path.join(src, name), encoding="utf-8") as f:
            text = f.read()
        for m in re.finditer(r'(?<![A-Za-z0-9_])T\(((?:\s*"(?:[^"\\]|\\.)*"|\s*PRI[a-z0-9]+)+)\s*\)', text):
            parts = re.findall(r'"(?:[^"\\]|\\.)*"|PRI[a-z0-9]+', m.group(1))
            if "{%s," % " ".join(parts) not in cat:
                missing.append("%s: %s" % (name, " ".join(parts)[:80]))
    R.check(not missing, "every text printed through T() is in the Vietnamese catalogue (missing %s)" % missing[:5])
    res = ctl("level-offset", "--measured", "2", "--profile", "keller-acculevel", "--tcp",
              "127.0.0.1:%d" % H.free_port(), "--slave", 1, "--timeout-ms", 100)
    R.check(res.returncode == 1 and "--timeout-ms" not in res.stderr, "level-offset takes --timeout-ms")


def part_calibration_due(work):
    """The gateway raises calibration-due once a sensor's last recorded
    calibration is older than calibration.interval_days, and clears it after
    the next one (gateway and agrictl on one accelerated clock: an hour a
    second)."""
    d = os.path.join(work, "gw-cal")
    os.makedirs(d)
    mq = H.Mosquitto(os.path.join(d, "mq")).start()
    db = os.path.join(d, "agri.db")
    rules = H.write_json(os.path.join(d, "rules.json"), {"rules": []})
    cfg = H.write_json(os.path.join(d, "gateway.json"), {
        "broker": {"url": mq.url, "client_id": "gw-cal"}, "db": {"path": db},
        "rules_file": rules, "calibration": {"interval_days": 0.05}})
    clock = {"AGRI_CLOCK": "2026-01-01T00:00:00.000Z@3600"}
    gw = H.Proc([H.bin_path("agri-gateway"), "--config", cfg], os.path.join(d, "gateway.log"), env=clock)
    alerts = []
    c = H.mqtt_client(mq.port, "cal-watcher")
    c.on_message = lambda cl, u, m: alerts.append(json.loads(m.payload)) if m.payload else None
    c.subscribe("agri/v1/alerts/DT-CAL/#", 1)
    H.wait_for(lambda: os.path.exists(db), 10, what="the gateway's database")
    time.sleep(1)

    def calibrate():
        return ctl("calibrate", "--station", "DT-CAL", "--sensor", "sonde1", "--metric", "specific_conductance",
                   "--standard", "1.413", "--before", "1.52", "--after", "1.413", "--by", "lan", "--db", db,
                   env=clock)

    res = calibrate()
    R.check(res.returncode == 0 and "recorded" in res.stdout, "a calibration made with the vendor's tool is recorded")

    def state(s):
        return [a for a in alerts if a.get("rule") == "calibration-due" and a.get("state") == s]
    try:
        H.wait_for(lambda: state("active"), 20, what="calibration-due active")
    except TimeoutError:
        pass
    act = state("active")
    R.check(act and "sonde1" in act[-1]["message"] and "needs calibrating" in act[-1]["message"],
            "once 0.05 days have passed, the station's calibration-due alert is raised: %s"
            % (act[-1]["message"] if act else gw.log_tail(5)))
    calibrate()
    try:
        H.wait_for(lambda: state("cleared"), 20, what="calibration-due cleared")
    except TimeoutError:
        pass
    R.check(state("cleared"), "calibrated again, the alert clears")
    c.loop_stop()
    R.check(gw.stop() == 0, "agri-gateway exits 0")
    mq.stop()


def main():
    work = H.tmpdir("agri-toolbox-")
    t0 = time.monotonic()
    part_cli(work)
    part_scan_truth()
    part_rtu(work)
    part_tcp(work)
    part_calibration_due(work)
    print("test_agrictl_toolbox: %.1f s" % (time.monotonic() - t0))
    R.done()


if __name__ == "__main__":
    main()
