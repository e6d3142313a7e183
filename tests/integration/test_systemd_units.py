#!/usr/bin/env python3
"""The systemd units' sandboxes (docs/security.md "The services").

1. `systemd-analyze security --offline=yes UNIT_FILE` (systemd 252, no
   running systemd needed) for every unit in the tree: its findings and
   exposure are printed; each must be "OK" at 3.0 or less.
   `systemd-analyze verify` must find nothing but the missing /usr/bin
   programs of this build tree.
2. The daemons still work in their sandboxes. systemd cannot run here, so
   each daemon runs as an unprivileged user (nobody, as its own user would)
   under strace, doing its real work: the gateway with its broker, a
   telemetry batch, the HTTP API and a SensorThings sink; the station
   polling agri-sim over Modbus TCP and an RS-485 pty, publishing, and
   notifying systemd (READY=1, WATCHDOG=1 on a NOTIFY_SOCKET). Every system
   call it makes must pass its unit's SystemCallFilter= (the sets expanded
   by `systemd-analyze syscall-filter`), every socket its
   RestrictAddressFamilies=, no mapping may be writable and executable
   (MemoryDenyWriteExecute=), and it may create or write files only in its
   state directory (ReadWritePaths=) and the devices the unit allows.
"""
import base64
import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAX_EXPOSURE = 3.0
# Sockets glibc opens and copes without: getaddrinfo(AI_ADDRCONFIG) asks
# the kernel for the host's addresses over netlink and, refused, assumes
# both IPv4 and IPv6 (sysdeps/unix/sysv/linux/check_pf.c).
TOLERATED_FAMILIES = {"AF_NETLINK"}


def units():
    out = []
    for p in sorted(glob.glob(os.path.join(harness.SRC, "**", "*.service"), recursive=True)
                    + glob.glob(os.path.join(harness.SRC, "**", "*.socket"), recursive=True)
                    + glob.glob(os.path.join(harness.SRC, "**", "*.timer"), recursive=True)):
        rel = os.path.relpath(p, harness.SRC)
        if rel.split(os.sep)[0].startswith("build") or "/." in "/" + rel:
            continue
        out.append(p)
    return out


def unit_values(path, key):
    vals = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(key + "="):
                vals.append(line[len(key) + 1:])
    return vals


# --- 1. scores -----------------------------------------------------------

def score(res, path):
    name = os.path.basename(path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                       capture_output=True, text=True)
    lines = r.stdout.splitlines()
    findings = [l for l in lines if l.startswith("✗")]
    passed = sum(1 for l in lines if l.startswith("✓"))
    overall = [l for l in lines if "Overall exposure level" in l]
    print("--- systemd-analyze security --offline=yes %s" % os.path.relpath(path, harness.SRC))
    for l in findings:
        print("  " + re.sub(r"\s{2,}", "  ", l))
    print("  (%d settings pass)" % passed)
    print("  " + (overall[0] if overall else "no overall line: %s" % r.stderr.strip()))
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", overall[0] if overall else "")
    res.check(m is not None and float(m.group(1)) <= MAX_EXPOSURE and m.group(2) == "OK",
              "%s: exposure %s %s (<= %.1f, OK)" % (name, m.group(1) if m else "?",
                                                   m.group(2) if m else "?", MAX_EXPOSURE))
    res.check(not r.stderr.strip(), "%s: systemd-analyze security has no complaint%s"
              % (name, (": " + r.stderr.strip()) if r.stderr.strip() else ""))
    v = subprocess.run(["systemd-analyze", "verify", "--man=no", path], capture_output=True,
                       text=True)
    other = [l for l in (v.stdout + v.stderr).splitlines()
             if l.strip() and not re.search(r"Command /usr/bin/\S+ is not executable", l)]
    res.check(not other, "%s: systemd-analyze verify finds nothing else than this tree's"
              " uninstalled programs%s" % (name, (": " + "; ".join(other)) if other else ""))


# --- 2. the daemons in their sandboxes ------------------------------------

def expand(group, seen=None):
    """A SystemCallFilter= set (@group or a name) as syscall names."""
    if not group.startswith("@"):
        return {group}
    r = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True,
                       text=True, check=True)
    out = set()
    for line in r.stdout.splitlines()[1:]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out |= expand(line)
    return out


def allowed_syscalls(unit):
    """The names the unit's SystemCallFilter= lets through; None: no filter."""
    if not unit_values(unit, "SystemCallFilter"):
        return None
    allow, deny = None, set()
    for v in unit_values(unit, "SystemCallFilter"):
        if v.startswith("~"):
            for g in v[1:].split():
                deny |= expand(g)
        else:
            s = set()
            for g in v.split():
                s |= expand(g)
            allow = s if allow is None else allow | s
    return (allow or set()) - deny


LINE = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")


def audit(res, name, unit, trace, program, write_ok):
    """Checks a strace -f log against the unit's sandbox, from the execve
    of program on (before it, setpriv was becoming the service user)."""
    allow = allowed_syscalls(unit)
    families = set(" ".join(unit_values(unit, "RestrictAddressFamilies")).split()) or None
    used, bad_fam, wx, writes = set(), set(), [], set()
    started = False
    with open(trace, errors="replace") as f:
        for line in f:
            if not started:
                started = re.search(r'execve\("%s"' % re.escape(program), line) is not None
                if not started:
                    continue
            m = LINE.match(line)
            if not m:
                continue
            call = m.group(2) or m.group(3)
            rest = m.group(4)
            used.add(call)
            if call in ("socket", "socketpair") and m.group(3):
                fam = rest.split(",", 1)[0].strip()
                if families is not None and fam not in families | TOLERATED_FAMILIES:
                    bad_fam.add(fam)
            if call in ("mmap", "mprotect", "pkey_mprotect") and "PROT_WRITE" in rest \
                    and "PROT_EXEC" in rest:
                wx.append(line.strip())
            if call in ("openat", "open", "creat") and re.search(r"O_(WRONLY|RDWR|CREAT)", rest) \
                    and "= -1" not in rest:
                p = re.search(r'"([^"]*)"', rest)
                if p:
                    writes.add(p.group(1))
            if call in ("mkdir", "mkdirat", "unlink", "unlinkat", "rename", "renameat",
                        "renameat2") and "= -1" not in rest:
                for p in re.findall(r'"([^"]*)"', rest):
                    writes.add(p)
    denied = sorted(c for c in used if allow is not None and c not in allow)
    print("%s: %d distinct system calls under strace: %s" % (name, len(used), " ".join(sorted(used))))
    res.check(not denied, "%s: every system call passes SystemCallFilter=%s" % (
        name, (" (denied: %s)" % " ".join(denied)) if denied else ""))
    res.check(not bad_fam, "%s: every socket is of RestrictAddressFamilies=%s" % (
        name, (" (not: %s)" % " ".join(sorted(bad_fam))) if bad_fam else ""))
    res.check(not wx, "%s: no writable and executable mapping (MemoryDenyWriteExecute=)%s"
              % (name, (": " + wx[0]) if wx else ""))
    outside = sorted(p for p in writes if not any(p.startswith(w) for w in write_ok))
    res.check(not outside, "%s: creates and writes files only in its state directory and"
              " allowed devices%s" % (name, (" (also: %s)" % ", ".join(outside[:5])) if outside else ""))


def as_service_user(work, paths):
    """The daemon runs as nobody, owning its state like its service user."""
    for p in paths:
        os.makedirs(p, exist_ok=True)
        shutil.chown(p, "nobody", "nogroup")
    os.chmod(work, 0o755)
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--no-new-privs",
            "--"]


def installed(work, name):
    """A copy of a built program where the service user can reach it, as
    /usr/bin is: a checkout may sit in a directory only root may enter
    (a CI clone in `mktemp -d`, 0700)."""
    d = os.path.join(work, "bin")
    os.makedirs(d, mode=0o755, exist_ok=True)
    dst = os.path.join(d, name)
    if not os.path.exists(dst):
        shutil.copy2(harness.bin_path(name), dst)
        os.chmod(dst, 0o755)
    return dst


def traced(work, name, argv, env=None):
    trace = os.path.join(work, name + ".strace")
    p = harness.Proc(["strace", "-f", "-qq", "-o", trace] + argv,
                     os.path.join(work, name + ".log"), env=env)
    return p, trace


def traced_pid(trace):
    """The daemon's pid: the first in the trace (strace's own is not traced)."""
    harness.wait_for(lambda: os.path.exists(trace) and os.path.getsize(trace) > 0, 10,
                     what="the trace")
    with open(trace) as f:
        return int(f.readline().split()[0])


def stop_traced(p, trace):
    pid = traced_pid(trace)
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        pass
    try:
        p.p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill9()
    p.stop()
    return p.returncode


def run_gateway(res, work, unit):
    import gateway_peer
    import sta_server
    state = os.path.join(work, "gw-state")
    pre = as_service_user(work, [state])
    mq = harness.Mosquitto(os.path.join(work, "mq")).start()
    srv = sta_server.StaServer(harness.free_port())
    http_port = harness.free_port()
    token = os.path.join(work, "api.token")
    with open(token, "w") as f:
        f.write(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
    os.chmod(token, 0o644)
    cfg = {"broker": {"url": mq.url, "client_id": "gw-units", "keepalive_s": 10},
           "db": {"path": os.path.join(state, "agri.db")},
           "upstream": {"sensorthings": {"url": srv.url}},
           "http": {"listen": "127.0.0.1:%d" % http_port, "token_file": token}}
    path = harness.write_json(os.path.join(work, "gateway.json"), cfg)
    os.chmod(path, 0o644)
    exe = installed(work, "agri-gateway")
    p, trace = traced(work, "gateway", pre + [exe, "--config", path, "--log-level", "info"])
    harness.wait_for(lambda: "subscribed topics" in p.log_text() or p.poll() is not None, 20,
                     what="the gateway subscribed")
    st = gateway_peer.Station(mq.port, "UNIT-1")
    st.connected.wait(10)
    st.publish(1, gateway_peer.batch("UNIT-1", 1))
    harness.wait_for(lambda: st.pending() == 0, 20, what="the batch acked")
    harness.wait_for(lambda: len(srv.state.observations) >= 6, 20, what="observations upstream")
    harness.wait_port(http_port, 10)
    for path_ in ("/healthz", "/metrics", "/api/v1/stations"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (http_port, path_),
                                     headers={"Authorization": "Bearer " + "t" * 40})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception as e:  # the point is the calls it made, not the answer
            print("GET %s: %s" % (path_, e))
    st.close()
    rc = stop_traced(p, trace)
    mq.stop()
    srv.stop()
    res.check(rc == 0, "the gateway ran as an unprivileged user under strace and stopped with 0"
              " (%s)" % rc)
    audit(res, "agri-gateway", unit, trace, exe, [state, "/dev/null"])


def run_station(res, work, unit):
    import station_support as S
    state = os.path.join(work, "st-state")
    pre = as_service_user(work, [state])
    mq = harness.Mosquitto(os.path.join(work, "mq-st")).start()
    gw = S.Gateway(mq.port).start()
    tcp_port = harness.free_port()
    S.start_sim(work, "sim-tcp", ["1:sensecap-s-ec-01"], tcp_port=tcp_port)
    pty = harness.PtyPair(work)
    S.start_sim(work, "sim-rtu", ["5:sensecap-s-ec-01"], rtu_dev=pty.b)
    os.chmod(os.path.realpath(pty.a), 0o666)  # dialout's, in the field
    notify = os.path.join(work, "notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(notify)
    os.chmod(notify, 0o666)
    msgs = []
    threading.Thread(target=lambda: [msgs.append(ns.recv(4096)) for _ in iter(int, 1)],
                     daemon=True).start()
    buses = [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": tcp_port}, "timeout_ms": 400},
             {"name": "rs485", "rtu": {"device": pty.a, "baud": 9600}, "timeout_ms": 400}]
    sensors = [{"name": "s1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01",
                "interval_s": 1},
               {"name": "r5", "bus": "rs485", "slave": 5, "profile": "sensecap-s-ec-01",
                "interval_s": 1}]
    cfg = S.station_config(work, mq.port, buses, sensors, state_dir=state)
    cfg["profiles_dir"] = os.path.join(work, "profiles")  # as /usr/share is: readable
    shutil.copytree(harness.PROFILES, cfg["profiles_dir"])
    path = harness.write_json(os.path.join(work, "station.json"), cfg)
    os.chmod(path, 0o644)
    exe = installed(work, "agri-station")
    p, trace = traced(work, "station", pre + [exe, "--config", path, "--log-level", "info"],
                      env={"NOTIFY_SOCKET": notify, "WATCHDOG_USEC": "2000000"})
    harness.wait_for(lambda: len(gw.series("r5", "salinity")) >= 2
                     and len(gw.series("s1", "salinity")) >= 2 or p.poll() is not None, 30,
                     what="readings from both buses through the broker")
    harness.wait_for(lambda: any(b"WATCHDOG=1" in m for m in msgs) or p.poll() is not None, 10,
                     what="WATCHDOG=1")
    rc = stop_traced(p, trace)
    gw.stop()
    mq.stop()
    pty.stop()
    res.check(rc == 0 and any(b"READY=1" in m for m in msgs)
              and any(b"WATCHDOG=1" in m for m in msgs),
              "the station ran as an unprivileged user under strace: both buses read, READY=1 and"
              " WATCHDOG=1 sent, stopped with 0 (%s)" % rc)
    audit(res, "agri-station", unit, trace, exe,
          [state, os.path.realpath(pty.a), "/dev/null"])


def main():
    res = harness.Result("test_systemd_units")
    if not shutil.which("systemd-analyze"):
        print("skip: systemd-analyze is not installed (Debian's systemd package)")
        sys.exit(77)
    found = units()
    names = [os.path.basename(u) for u in found]
    res.check({"agri-station.service", "agri-gateway.service"} <= set(names),
              "units in the tree: %s" % ", ".join(os.path.relpath(u, harness.SRC) for u in found))
    for u in found:
        score(res, u)
        user = (unit_values(u, "User") or [""])[0]
        res.check(user and user != "root" and not unit_values(u, "DynamicUser"),
                  "%s: runs as its own user %s" % (os.path.basename(u), user))
    users = [(unit_values(u, "User") or [""])[0] for u in found]
    res.check(len(set(users)) == len(users), "one user per service: %s" % ", ".join(users))

    if not shutil.which("strace") or os.geteuid() != 0:
        print("sandbox run skipped: needs strace and root (to run the daemons as nobody)")
        res.done()
    work = harness.tmpdir("agri-units-")
    unit = dict((os.path.basename(u), u) for u in found)
    run_gateway(res, work, unit["agri-gateway.service"])
    run_station(res, work, unit["agri-station.service"])
    res.done()


if __name__ == "__main__":
    main()
