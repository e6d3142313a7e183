#!/usr/bin/python3
"""The province in a box (`make run`): a local mosquitto with the shipped
config and generated credentials, the gateway, simulated sensors and the 21
stations of Dong Thap (6 water-quality stations along the Tien river from the
mouth inland, 15 light traps), all on one accelerated clock (a simulated
dry-season day in about a minute by default).

Everything lives under run/ in the checkout: broker data, the gateway's
SQLite database, station spools, logs, and the notification log. Ctrl-C (or
--duration S) stops every process it started, by pid.

    scripts/run [--duration S] [--speed X] [--start 2026-04-01] [--history-days 21]
"""
import argparse
import datetime as dt
import http.server
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("AGRI_BUILD_DIR", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "bin")
RUN = os.path.join(ROOT, "run")  # --run-dir changes it

# Six water-quality stations along the Tien river, mouth (Cua Tieu) inland to
# Cao Lanh: the estuary ones see intrusion, the inland ones stay fresh.
WATER = [
    ("DT-W01", "Cửa Tiểu (Tân Thành)", 8, "salinity-intrusion", "yosemitech-y4000"),
    ("DT-W02", "Vàm Kênh", 18, "salinity-intrusion", "sensecap-s-ec-01"),
    ("DT-W03", "Hòa Bình (Chợ Gạo)", 30, "salinity-intrusion", "sensecap-s-ec-01"),
    ("DT-W04", "Mỹ Tho", 48, "salinity-intrusion", "yosemitech-y520"),
    ("DT-W05", "Cái Bè", 80, "freshwater", "sensecap-s-ec-01"),
    ("DT-W06", "Cao Lãnh", 130, "freshwater", "yosemitech-y4000"),
]
# Each canal's district and the crops its intake waters (gateway.json
# "sites": the dashboard names places, not codes; docs/dashboard.md).
WATER_SITES = {
    "DT-W01": ("Tân Phú Đông", ["rice"]),
    "DT-W02": ("Gò Công Đông", ["rice", "vegetables"]),
    "DT-W03": ("Chợ Gạo", ["fruit", "rice"]),
    "DT-W04": ("Mỹ Tho", ["fruit", "vegetables"]),
    "DT-W05": ("Cái Bè", ["durian", "fruit"]),
    "DT-W06": ("Cao Lãnh", ["rice", "fruit"]),
}
# Two canals also carry a level sensor (a vented pressure transmitter at the
# bottom, 3 m of water at mean tide) put on the province's datum by its
# offset, and a sluice whose operators close at 0.7 g/L and need the level
# above min_level_m for gravity intake (docs/forecast.md, "Sluices and tides").
LEVEL = {"DT-W03": -1.5, "DT-W04": -1.5}  # level_offset_m
SLUICES = {"DT-W03": {"below_g_l": 0.7, "min_level_m": 1.2},
           "DT-W04": {"below_g_l": 0.7, "min_level_m": 1.0}}
# A probe that falls dry (hours into the live run): its conductivity reads 0,
# the station marks it suspect ("dry") and technicians get a sensor alert.
DRY = {"DT-W01": 18}
# A conductivity cell fouling since five days before the live run, 3 % a
# day: no single reading shows it; against its neighbours upstream and
# downstream it does, and the gateway marks its readings suspect ("drift",
# docs/gateway.md "Drift"). (% per day, days before the start)
DRIFT = {"DT-W02": (3.0, 5.0)}
# The brackish stations' neighbours along the river (gateway.json sites[]
# "neighbours"): each probe is compared with those on either side.
NEIGHBOURS = {"DT-W01": ["DT-W02"], "DT-W02": ["DT-W01", "DT-W03"],
              "DT-W03": ["DT-W02", "DT-W04"], "DT-W04": ["DT-W03"]}
# Fifteen light traps across the rice districts; pulses offset by district.
TRAPS = [
    ("DT-T%02d" % (i + 1), name, phase)
    for i, (name, phase) in enumerate([
        ("Tháp Mười", 0), ("Tam Nông", 2), ("Thanh Bình", 4), ("Cao Lãnh", 1),
        ("Lấp Vò", 6), ("Lai Vung", 8), ("Châu Thành", 10), ("Hồng Ngự", 3),
        ("Tân Hồng", 5), ("Cai Lậy", 12), ("Cái Bè", 14), ("Tân Phước", 7),
        ("Châu Thành TG", 9), ("Chợ Gạo", 11), ("Gò Công Tây", 13)])
]

procs = []  # (name, Popen)


def log(msg):
    print(msg, flush=True)


def free_port(preferred=None):
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("exited before listening on %d" % port)
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


def start(name, argv, logname, env=None):
    e = dict(os.environ)
    e.update(env or {})
    f = open(os.path.join(RUN, "logs", logname), "ab")
    p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=e,
                         start_new_session=True)
    procs.append((name, p))
    return p


def stop_all():
    for name, p in reversed(procs):
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.time() + 6
    for name, p in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


class Notifications(http.server.BaseHTTPRequestHandler):
    """The receivers, standing in for phones and machines: the people's
    webhook (/hook: each person's messages and bulletins, as the
    notification policy decided them; docs/notify.md) appends to
    run/notifications.log, the SMS gateway (/sms) to run/sms.log, and the
    rules' machine channel (/ops: every alert transition and forecast, the
    stream everyone used to get) to run/alerts.log."""
    path_log = None
    lock = threading.Lock()
    count = 0
    logs = {"/hook": "notifications.log", "/sms": "sms.log", "/ops": "alerts.log"}

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n).decode("utf-8", "replace")
        name = Notifications.logs.get(self.path.split("?")[0])
        if self.path.startswith("/sms"):
            f = urllib.parse.parse_qs(body)
            body = "%s %s" % (f.get("to", ["?"])[0], f.get("text", [""])[0])
        with Notifications.lock:
            if name == "notifications.log":
                Notifications.count += 1
            if name:
                with open(os.path.join(os.path.dirname(Notifications.path_log), name), "a") as f:
                    f.write(body.strip() + "\n")
        self.send_response(200 if name else 404)
        self.end_headers()

    def log_message(self, *a):
        pass


def setup_broker(args):
    bdir = os.path.join(RUN, "broker")
    os.makedirs(os.path.join(bdir, "data"), exist_ok=True)
    os.makedirs(os.path.join(bdir, "conf.d"), exist_ok=True)  # include_dir (a peer hub's bridge)
    certs = os.path.join(bdir, "certs")
    subprocess.run([os.path.join(ROOT, "broker", "make-certs"), certs, "localhost"],
                   check=True, stdout=subprocess.DEVNULL)
    loop_port = free_port(args.mqtt_port)
    tls_port = free_port(args.mqtt_port + 7000 if args.mqtt_port else None)
    conf = open(os.path.join(ROOT, "broker", "mosquitto.conf")).read()
    conf = (conf.replace("@CONF_DIR@", bdir).replace("@DATA_DIR@", os.path.join(bdir, "data"))
            .replace("@LOOPBACK_PORT@", str(loop_port)).replace("@TLS_PORT@", str(tls_port))
            .replace("@TLS_BIND@", "127.0.0.1"))
    # mosquitto started as root drops to user "mosquitto", which could not
    # read run/: it keeps the user that runs the demo.
    conf += "\nuser %s\n" % pwd.getpwuid(os.geteuid()).pw_name
    with open(os.path.join(bdir, "mosquitto.conf"), "w") as f:
        f.write(conf)
    # Stations' accounts and ACL (TLS listener; agrictl provision fills them), the
    # hub's (loopback listener: the gateway's account only exists there).
    shutil.copy(os.path.join(ROOT, "broker", "acl.head"), os.path.join(bdir, "acl"))
    shutil.copy(os.path.join(ROOT, "broker", "acl.hub"), os.path.join(bdir, "hub.acl"))
    passwd = os.path.join(bdir, "passwd")
    open(passwd, "w").close()
    hub_passwd = os.path.join(bdir, "hub.passwd")
    open(hub_passwd, "w").close()
    gw_pass = os.urandom(18).hex()
    with open(os.path.join(RUN, "gateway", "gateway.pass"), "w") as f:
        f.write(gw_pass + "\n")
    subprocess.run(["mosquitto_passwd", "-b", hub_passwd, "gateway", gw_pass], check=True)
    # The technicians' account (agrictl status, config push), as on a hub.
    ctl_pass = os.urandom(18).hex()
    with open(os.path.join(RUN, "agrictl.pass"), "w") as f:
        f.write(ctl_pass + "\n")
    subprocess.run(["mosquitto_passwd", "-b", hub_passwd, "agrictl", ctl_pass], check=True)
    return bdir, loop_port, tls_port, passwd


def provision(station, passwd, acl):
    sdir = os.path.join(RUN, "stations", station)
    subprocess.run([os.path.join(BIN, "agrictl"), "provision", "--station", station,
                    "--out", sdir, "--passwd", passwd, "--acl", acl],
                   check=True, stdout=subprocess.DEVNULL)
    return sdir


def station_config(station, sdir, name, bus, sensors, tls_port, certs, lat, lon):
    write_json(os.path.join(sdir, "station.json"), {
        "station": station,
        "site": {"name": name, "lat": lat, "lon": lon},
        "broker": {"url": "ssl://127.0.0.1:%d" % tls_port, "username": station,
                   "password_file": "station.pass",
                   "ca_file": os.path.join(certs, "ca.crt"), "keepalive_s": 30},
        "state_dir": os.path.join(sdir, "state"),
        "publish_interval_s": 2,
        "ack_timeout_s": 10,
        "buses": [bus],
        "sensors": sensors,
    })
    return os.path.join(sdir, "station.json")


def sites():
    """gateway.json "sites": each station's place and district."""
    out = {}
    for sid, name, km, scen, profile in WATER:
        district, crops = WATER_SITES[sid]
        out[sid] = {"name": name, "district": district, "crops": crops}
        if sid in SLUICES:
            out[sid]["sluice"] = SLUICES[sid]
        if sid in NEIGHBOURS:
            out[sid]["neighbours"] = NEIGHBOURS[sid]
    for sid, name, phase in TRAPS:
        out[sid] = {"name": "Bẫy đèn " + name, "district": name, "crops": ["rice"]}
    return out


def main():
    ap = argparse.ArgumentParser(description="Run the province in a box.")
    ap.add_argument("--duration", type=float, default=0, help="headless: stop after S seconds, print a summary")
    ap.add_argument("--speed", type=float, default=1440, help="simulated seconds per real second (1440: a day a minute)")
    ap.add_argument("--start", default="2026-04-01", help="simulated start date (dry season: Feb-Apr)")
    ap.add_argument("--history-days", type=int, default=21, help="days of simulated history loaded before the live run")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--mqtt-port", type=int, default=1883)
    ap.add_argument("--http-port", type=int, default=8080)
    ap.add_argument("--run-dir", default=RUN, help="where state and logs go (default: run/ in the checkout)")
    args = ap.parse_args()
    globals()["RUN"] = os.path.abspath(args.run_dir)

    if os.path.isdir(RUN):
        shutil.rmtree(RUN)
    for d in ("logs", "gateway", "stations"):
        os.makedirs(os.path.join(RUN, d), exist_ok=True)
    start_dt = dt.datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    clock = "%s@%g" % (start_dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"), args.speed)
    env = {"AGRI_CLOCK": clock, "AGRI_PROFILES_DIR": os.path.join(ROOT, "protocols", "profiles")}

    # Notification sink (the agronomists' phones).
    Notifications.path_log = os.path.join(RUN, "notifications.log")
    open(Notifications.path_log, "w").close()
    hook_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Notifications)
    threading.Thread(target=hook_srv.serve_forever, daemon=True).start()
    hook_base = "http://127.0.0.1:%d" % hook_srv.server_address[1]
    hook_url = hook_base + "/hook"

    bdir, loop_port, tls_port, passwd = setup_broker(args)
    acl = os.path.join(bdir, "acl")
    stations = [w[0] for w in WATER] + [t[0] for t in TRAPS]
    sdirs = {s: provision(s, passwd, acl) for s in stations}

    broker = start("mosquitto", ["mosquitto", "-c", os.path.join(bdir, "mosquitto.conf")], "mosquitto.log")
    wait_port(loop_port, broker)
    wait_port(tls_port, broker)

    # The gateway.
    gdir = os.path.join(RUN, "gateway")
    # The API token, made as an operator makes one (docs/api.md, "Tokens").
    subprocess.run([os.path.join(BIN, "agrictl"), "token", "new", "--force", "--out",
                    os.path.join(gdir, "api.token")], check=True, stdout=subprocess.DEVNULL)
    rules = json.load(open(os.path.join(ROOT, "gateway", "rules.demo.json")))
    # The rules name the machines' channel; people hear what the policy
    # decides for them (gateway/recipients.demo.json, docs/notify.md).
    for r in rules["rules"]:
        r["notify"] = ["ops"]
    # "Late" is reading time behind arrival (docs/alerts.md, "Reading
    # order"). At a day a minute the default 15 minutes is 0.6 real
    # seconds, less than a loaded machine's scheduling: live readings
    # would be told as late news. Ten real seconds, in simulated time.
    rules["late_after_s"] = max(900, int(10 * args.speed))
    write_json(os.path.join(gdir, "rules.json"), rules)
    http_port = free_port(args.http_port)
    write_json(os.path.join(gdir, "gateway.json"), {
        "broker": {"url": "tcp://127.0.0.1:%d" % loop_port, "username": "gateway",
                   "password_file": "gateway.pass", "client_id": "agri-gateway-demo"},
        "db": {"path": "agri.db", "retention_days": 400},
        "rules_file": "rules.json",
        "recipients_file": os.path.join(ROOT, "gateway", "recipients.demo.json"),
        "notify": {"webhooks": [{"name": "agronomists", "url": hook_url},
                                {"name": "ops", "url": hook_base + "/ops"}],
                   "sms": {"name": "sms", "url": hook_base + "/sms", "to": ["+84900000000"]}},
        "forecast": {"notify": ["ops"]},
        "http": {"listen": "127.0.0.1:%d" % http_port, "token_file": "api.token"},
        "sites": sites(),
    })
    gw_cfg = os.path.join(gdir, "gateway.json")
    db = os.path.join(gdir, "agri.db")
    token_file = os.path.join(gdir, "api.token")
    health = [os.path.join(BIN, "agrictl"), "status", "--all", "--broker", "tcp://127.0.0.1:%d" % loop_port,
              "--username", "agrictl", "--password-file", os.path.join(RUN, "agrictl.pass"), "--db", db]
    where = ("  database      sqlite3 %s 'select * from v_stations'\n"
             "  live MQTT     mosquitto_sub -p %d -u gateway -P $(cat %s) -t 'agri/v1/#' -v\n"
             "  dashboard     http://127.0.0.1:%d/   (API token in %s)\n"
             "  health        AGRI_CLOCK=%s %s\n"
             "  notifications %s (people; SMS in sms.log, the rules' channel in alerts.log)\n"
             "  preview       %s notify preview --db %s --recipients %s --person hoa\n"
             "  logs          %s/") % (db, loop_port, os.path.join(gdir, "gateway.pass"), http_port,
                                      token_file, clock, " ".join(health), Notifications.path_log,
                                      os.path.join(BIN, "agrictl"), db,
                                      os.path.join(ROOT, "gateway", "recipients.demo.json"),
                                      os.path.join(RUN, "logs"))
    # Where to look, before the history import: also when the output is a
    # log (headless), not only on the interactive screen.
    log("where to look:\n" + where)
    log("  token         %s   (acknowledging alerts on the dashboard asks for it once)"
        % open(token_file).read().strip())

    # History: the last weeks of the same simulated sensors, imported so the
    # forecasts and the light-trap peak rule have their trailing windows.
    if args.history_days > 0:
        log("loading %d days of simulated history..." % args.history_days)
        load_history(args, start_dt, gw_cfg, env)

    args.gw_real_ms = int(time.time() * 1000)  # the gateway's clock starts at --start now
    gateway = start("agri-gateway", [os.path.join(BIN, "agri-gateway"), "--config", gw_cfg], "gateway.log", env)
    wait_port(http_port, gateway, 30)
    log("dashboard ready: http://127.0.0.1:%d/" % http_port)

    # Sensors: each water station has its own RS-485 line (a socat pty pair)
    # with its sonde (slave 1) and solar controller (slave 2); the traps sit on
    # one Modbus TCP simulator, two unit ids each.
    sim_common = ["--speed", str(args.speed), "--seed", str(args.seed),
                  "--start", start_dt.strftime("%Y-%m-%dT%H:%M")]
    for i, (sid, name, km, scen, profile) in enumerate(WATER):
        sdir = sdirs[sid]
        a, b = os.path.join(sdir, "tty-station"), os.path.join(sdir, "tty-sensors")
        start("socat-" + sid, ["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b], "socat-%s.log" % sid)
        deadline = time.time() + 5
        while not (os.path.exists(a) and os.path.exists(b)) and time.time() < deadline:
            time.sleep(0.02)
        sim_argv = [os.path.join(BIN, "agri-sim"), "--rtu", b, "--baud", "9600",
                    "--slave", "1:%s,distance_km=%g,scenario=%s" % (profile, km, scen),
                    "--slave", "2:epever-tracer,pv_w=120"]
        sensors = [{"name": "sonde1", "bus": "rs485", "slave": 1, "profile": profile, "interval_s": 1},
                   {"name": "solar", "bus": "rs485", "slave": 2, "profile": "epever-tracer", "interval_s": 5}]
        if sid in LEVEL:
            sim_argv += ["--slave", "3:keller-acculevel,distance_km=%g,scenario=%s" % (km, scen)]
            sensors.append({"name": "level1", "bus": "rs485", "slave": 3, "profile": "keller-acculevel",
                            "interval_s": 2, "level_offset_m": LEVEL[sid]})
        if sid in DRY:
            sim_argv += ["--fault", "1:dry:%g" % DRY[sid]]
        if sid in DRIFT:
            sim_argv += ["--fault", "1:drift:%g/%g" % DRIFT[sid]]
        start("sim-" + sid, sim_argv + sim_common, "sim-%s.log" % sid, env)
        cfg = station_config(sid, sdir, name,
                             {"name": "rs485", "rtu": {"device": a, "baud": 9600}, "timeout_ms": 300, "gap_ms": 5},
                             sensors, tls_port, os.path.join(bdir, "certs"), 10.35 - 0.002 * km, 106.75 - 0.01 * km)
        start(sid, [os.path.join(BIN, "agri-station"), "--config", cfg], "station-%s.log" % sid, env)

    trap_port = free_port()
    slaves = []
    for i, (sid, name, phase) in enumerate(TRAPS):
        slaves += ["--slave", "%d:agri-lighttrap,phase_d=%d" % (2 * i + 1, phase),
                   "--slave", "%d:epever-tracer,pv_w=80" % (2 * i + 2)]
    sim = start("sim-traps", [os.path.join(BIN, "agri-sim"), "--tcp", "127.0.0.1:%d" % trap_port] + slaves + sim_common,
                "sim-traps.log", env)
    wait_port(trap_port, sim)
    for i, (sid, name, phase) in enumerate(TRAPS):
        cfg = station_config(sid, sdirs[sid], name,
                             {"name": "lan", "tcp": {"host": "127.0.0.1", "port": trap_port}, "timeout_ms": 500},
                             [{"name": "trap1", "bus": "lan", "slave": 2 * i + 1, "profile": "agri-lighttrap", "interval_s": 2},
                              {"name": "solar", "bus": "lan", "slave": 2 * i + 2, "profile": "epever-tracer", "interval_s": 5}],
                             tls_port, os.path.join(bdir, "certs"), 10.5 + 0.02 * i, 105.6 + 0.03 * i)
        start(sid, [os.path.join(BIN, "agri-station"), "--config", cfg], "station-%s.log" % sid, env)

    interactive = sys.stdout.isatty() and not args.duration
    stop = {"flag": False}

    def on_sig(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGINT, on_sig)
    signal.signal(signal.SIGTERM, on_sig)

    t0 = time.time()
    last_print = 0
    while not stop["flag"]:
        if args.duration and time.time() - t0 >= args.duration:
            break
        time.sleep(0.25)
        if time.time() - last_print >= (2 if interactive else 15):
            last_print = time.time()
            text = summary(db, args, t0, where)
            if interactive:
                sys.stdout.write("\033[H\033[2J" + text + "\n  Ctrl-C stops everything.\n")
                sys.stdout.flush()
            else:
                log(text.splitlines()[0] if text else "")
    dead = [name for name, p in procs if p.poll() is not None]
    # Every station's health as a technician sees it (agrictl status), kept
    # in run/status.txt and run/status.json.
    for ext, extra in (("txt", []), ("json", ["--json"])):
        r = subprocess.run(health + extra, capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, **env))
        with open(os.path.join(RUN, "status." + ext), "w") as f:
            f.write(r.stdout)
        if r.returncode != 0:
            log("agrictl status: exit %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
    final = summary(db, args, t0, where)
    stop_all()
    hook_srv.shutdown()
    healthy = verdict(db, stations, dead)
    print(final)
    print(healthy[1])
    left = [name for name, p in procs if p.poll() is None]
    if left:
        print("still running after stop: %s" % ", ".join(left))
    sys.exit(0 if healthy[0] and not left else 1)


def profile_units(name):
    prof = json.load(open(os.path.join(ROOT, "protocols", "profiles", name + ".json")))
    units = {r["metric"] + ("." + r["sensor_suffix"] if r.get("sensor_suffix") else ""): r.get("unit", "")
             for r in prof["registers"]}
    units.update({d["metric"]: d.get("unit", "") for d in prof.get("derived", [])})
    return units


def load_history(args, start_dt, gw_cfg, env):
    """Generates the previous history_days of every sensor with agri-sim
    --series (same seed and parameters as the live simulators) and imports
    them with `agri-gateway --import`, which runs them through the same
    validation, store and rules as live telemetry."""
    hist_start = start_dt - dt.timedelta(days=args.history_days)
    csv_path = os.path.join(RUN, "gateway", "history.csv")
    jobs = [(sid, "sonde1", profile, "1:%s,distance_km=%g,scenario=%s" % (profile, km, scen), 900)
            for sid, name, km, scen, profile in WATER]
    jobs += [(sid, "level1", "keller-acculevel", "3:keller-acculevel,distance_km=%g,scenario=%s" % (km, scen), 900)
             for sid, name, km, scen, profile in WATER if sid in LEVEL]
    jobs += [(sid, "trap1", "agri-lighttrap", "%d:agri-lighttrap,phase_d=%d" % (2 * i + 1, phase), 3600)
             for i, (sid, name, phase) in enumerate(TRAPS)]
    rows = []
    for sid, sensor, profile, slave, step in jobs:
        units = profile_units(profile)
        r = subprocess.run([os.path.join(BIN, "agri-sim"), "--series", "--slave", slave,
                            "--start", hist_start.strftime("%Y-%m-%dT%H:%M"),
                            "--hours", str(args.history_days * 24), "--step-s", str(step),
                            "--seed", str(args.seed)],
                           capture_output=True, text=True, env=dict(os.environ, **env), check=True)
        lines = r.stdout.splitlines()[1:]
        if sid in DRIFT and sensor == "sonde1":
            lines = fouled_history(lines, DRIFT[sid], start_dt)
        for line in lines:
            ts, metric, value = line.split(",")
            unit = units.get(metric, "")
            if metric == "water_level":  # the station adds its sensor's offset
                value = "%.4f" % (float(value) + LEVEL.get(sid, 0))
            name = sensor
            if "." in metric:
                metric, suffix = metric.split(".", 1)
                name = sensor + "-" + suffix
            rows.append("%s,%s,%s,%s,%s,%s,ok\n" % (sid, name, metric, ts, value, unit))
    rows.sort(key=lambda l: l.split(",")[3])  # time order, as the stations would have sent them
    with open(csv_path, "w") as out:
        out.write("station,sensor,metric,ts,value,unit,q\n")
        out.writelines(rows)
    r = subprocess.run([os.path.join(BIN, "agri-gateway"), "--config", gw_cfg, "--import", csv_path],
                       capture_output=True, text=True, env=dict(os.environ, **env))
    if r.returncode != 0:
        raise RuntimeError("history import failed: " + r.stderr.strip())
    log(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "history imported")


def fouled_history(lines, drift, start_dt):
    """The series (true values) as the fouling sonde read them: its
    conductivity registers low by drift[0] % a day from drift[1] days before
    the start (as agri-sim --fault 1:drift:PCT/DAYS serves them live), and
    the salinity the station derives from that conductivity (PSS-78, the
    independent tests/integration/pss78_ref.py)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
    import pss78_ref
    pct, days = drift
    onset = start_dt - dt.timedelta(days=days)
    temp = {}
    for line in lines:
        ts, metric, value = line.split(",")
        if metric == "water_temperature":
            temp[ts] = float(value)
    out = []
    for line in lines:
        ts, metric, value = line.split(",")
        t = dt.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
        f = max(0.0, 1 - pct / 100 * (t - onset).total_seconds() / 86400) if t > onset else 1.0
        if f < 1 and metric in ("specific_conductance", "conductivity", "salinity_probe", "tds"):
            value = "%.6g" % (float(value) * f)
        elif f < 1 and metric == "salinity" and ts in temp:
            c = pss78_ref.c_from_sp(float(value), temp[ts])
            value = "%.6g" % pss78_ref.sp_from_c(c * f, temp[ts])
        out.append("%s,%s,%s" % (ts, metric, value))
    return out


def q(db, sql, *params):
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=1)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def summary(db, args, t0, where):
    now = time.time() - t0
    sim_h = now * args.speed / 3600
    start = dt.datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    sim_now = (start + dt.timedelta(hours=sim_h)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rows = q(db, "SELECT station, state, last_seen FROM v_stations ORDER BY station")
    online = sum(1 for r in rows if r[1] == "online")
    nread = q(db, "SELECT count(*) FROM readings")
    lines = ["province in a box: %.0f s real, %.1f h simulated (%s); %d/%d stations online; %s readings stored"
             % (now, sim_h, sim_now[:16].replace("T", " "), online, len(WATER) + len(TRAPS), nread[0][0] if nread else 0)]
    lines.append("")
    lines.append("  salinity now (g/L)          next intake window (< 1 g/L)")
    for sid, name, km, scen, profile in WATER:
        # the newest reading, whatever its quality: a suspect one says why
        v = q(db, "SELECT value, ts, q, why FROM v_readings WHERE station=? AND metric='salinity' "
                  "AND value IS NOT NULL ORDER BY ts DESC LIMIT 1", sid)
        win = q(db, "SELECT window_from, window_to FROM v_forecast_windows WHERE station=? AND below=1.0 "
                    "AND window_to > ? ORDER BY window_from LIMIT 1", sid, sim_now)
        val = "%6.2f" % v[0][0] if v else "     -"
        w = ("%s → %s" % (win[0][0][5:16].replace("T", " "), win[0][1][5:16].replace("T", " "))) if win else "-"
        if v and v[0][2] != "ok":
            w = "(suspect: %s)%s" % (v[0][3] or v[0][2], "" if w == "-" else "   " + w)
        lines.append("  %-7s %-22s %3d km %s   %s" % (sid, name[:22], km, val, w))
    levels = []
    for sid in sorted(LEVEL):
        v = q(db, "SELECT value FROM v_readings WHERE station=? AND metric='water_level' AND q='ok' "
                  "ORDER BY ts DESC LIMIT 1", sid)
        doc = q(db, "SELECT doc FROM v_forecasts WHERE station=? AND metric='salinity'", sid)
        tide, sluice = "-", "-"
        try:
            d = json.loads(doc[0][0]) if doc and doc[0][0] else {}
            nxt = [t for t in d.get("tides", []) if t["ts"] > sim_now]
            if nxt:
                tide = "next %s water %s %.2f m" % (nxt[0]["stage"], nxt[0]["ts"][11:16], nxt[0]["level_m"])
            sw = [w for w in d.get("windows", []) if w.get("sluice") and w["to"] > sim_now]
            if sw:
                sluice = "sluice opens %s → %s (%s tide)" % (sw[0]["from"][5:16].replace("T", " "),
                                                            sw[0]["to"][11:16], sw[0].get("tide", "?"))
            elif d.get("note"):
                sluice = d["note"]
            elif d:
                sluice = "no sluice window in 72 h"
        except (ValueError, KeyError, TypeError):
            pass
        levels.append("  %-7s level %s m   %s   %s" % (sid, "%5.2f" % v[0][0] if v else "    -", tide, sluice))
    if levels:
        lines.append("")
        lines.append("  water level (m on the datum), tide and sluice (< 0.7 g/L, level high enough)")
        lines.extend(levels)
    sus = q(db, "SELECT station, why, count(*) FROM v_readings WHERE q='suspect' AND why IS NOT NULL "
                "GROUP BY station, why ORDER BY station, why")
    if sus:
        lines.append("  suspect readings: " + ", ".join("%s %s ×%d" % r for r in sus))
    lines.append("")
    lines.append("  last night's brown planthopper catch per trap")
    cells = []
    for sid, name, phase in TRAPS:
        v = q(db, "SELECT CAST(sum(value) AS INTEGER) FROM v_readings WHERE station=? AND sensor LIKE '%-bph' "
                  "AND metric='insect_count' AND ts >= (SELECT strftime('%Y-%m-%dT%H:%M:%fZ', max(ts)/1000.0 - 86400, 'unixepoch') "
                  "FROM readings r JOIN series s ON s.id=r.series_id JOIN stations st ON st.id=s.station_id WHERE st.name=?)",
              sid, sid)
        cells.append("%s %5s" % (sid[3:], v[0][0] if v and v[0][0] is not None else "-"))
    for i in range(0, len(cells), 5):
        lines.append("  " + "   ".join(cells[i:i + 5]))
    lines.append("")
    alerts = q(db, "SELECT id, severity, state, message FROM v_alerts WHERE state != 'cleared' ORDER BY updated_at DESC")
    lines.append("  active alerts: %d" % len(alerts))
    for a in alerts[:10]:
        lines.append("    [%-8s] %-34s %s" % (a[1], a[0][:34], a[3][:70]))
    adv = q(db, "SELECT station, sow_from, sow_to, hatch_from FROM v_advisories ORDER BY peak_at DESC")
    lines.append("  pest advisories: %d" % len(adv))
    for a in adv[:6]:
        lines.append("    %s: sow %s → %s, next generation hatches from %s" % (a[0], a[1][:10], a[2][:10], a[3][:10]))
    lines.append("")
    lines.extend(notification_lines(db, args))
    lines.append("")
    lines.append("  where to look:")
    lines.append(where)
    return "\n".join(lines)


def notification_lines(db, args):
    """Messages per person per local day (the notification policy's
    notify_message), beside what the rules' channel got: every alert
    transition and forecast, which everyone received before people had a
    policy (docs/notify.md, "The policy")."""
    start = dt.datetime.strptime(args.start, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    start_ms = int(start.timestamp() * 1000)
    off = 7 * 3600  # recipients.demo.json: utc_offset_min 420
    # the outbox stamps rows with real time: onto the gateway's clock
    real0 = getattr(args, "gw_real_ms", 0)
    old = dict(q(db, "SELECT date((? + (created_at - ?) * ?) / 1000 + ?, 'unixepoch'), count(*)"
                     " FROM outbox WHERE channel = 'ops' AND person IS NULL AND created_at >= ?"
                     " GROUP BY 1", start_ms, real0, args.speed, off, real0))
    people = q(db, "SELECT person, json_extract(doc, '$.display') FROM notify_people ORDER BY person")
    per = q(db, "SELECT person, date(day * 86400, 'unixepoch'), sum(kind != 'bulletin'), sum(kind = 'bulletin')"
                " FROM notify_message WHERE at >= ? GROUP BY person, day ORDER BY person, day", start_ms)
    days = sorted(set(old) | set(r[1] for r in per))
    out = ["  notifications per person per local day: messages + bulletins (before: every alert"
           " transition and forecast to everyone)"]
    out.append("    %-8s %-24s %s" % ("", "", "   ".join("%-9s" % d[5:] for d in days)))
    out.append("    %-8s %-24s %s" % ("before", "(the rules' channel)", "   ".join(
        "%-9s" % old.get(d, 0) for d in days)))
    for person, display in people:
        cells = {r[1]: "%d + %d" % (r[2], r[3]) for r in per if r[0] == person}
        out.append("    %-8s %-24s %s" % (person, (display or "")[:24], "   ".join(
            "%-9s" % cells.get(d, "0 + 0") for d in days)))
    return out


def verdict(db, stations, dead):
    missing = [s for s in stations
               if not q(db, "SELECT 1 FROM v_readings WHERE station=? LIMIT 1", s)]
    sal = q(db, "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                "WHERE a.rule='salinity' AND e.state='active'")
    bph = q(db, "SELECT count(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                "WHERE a.rule='bph-peak' AND e.state='active'")
    problems = []
    if dead:
        problems.append("processes that died: " + ", ".join(dead))
    if missing:
        problems.append("no readings stored from: " + ", ".join(missing))
    text = ("run summary: %d stations stored readings; salinity alert transitions %d, planthopper peak alerts %d; %s"
            % (len(stations) - len(missing), sal[0][0] if sal else 0, bph[0][0] if bph else 0,
               "healthy" if not problems else "NOT healthy: " + "; ".join(problems)))
    return (not problems, text)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        stop_all()
        print("province: %s" % e, file=sys.stderr)
        sys.exit(1)
