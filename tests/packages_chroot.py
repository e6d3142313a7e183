"""The Debian packages installed, upgraded, removed and purged in a Debian 12
chroot, as an image builder and then an operator would (docs/packaging.md).
Run by scripts/test-packages-chroot (`make test-packages-chroot`), not by
`make test`: it needs mmdebstrap's chroot and takes a minute or two.

    packages_chroot.py BASE_TAR OLD_DEBS_DIR NEW_DEBS_DIR WORKDIR

BASE_TAR is a bookworm chroot made by mmdebstrap with the packages' runtime
dependencies (scripts/test-packages-chroot makes and caches it), so every
install here is offline, as in an image build. OLD_DEBS_DIR and NEW_DEBS_DIR
hold the amd64 packages of the same tree at two versions (NEW higher).

systemd does not run in a chroot. The first install is the image build: no
/run/systemd/system, so nothing may be started, but the units must be
enabled (their multi-user.target.wants links made by deb-systemd-helper).
Then the chroot plays a booted system: /run/systemd/system exists and a
stand-in /usr/bin/systemctl (below) starts and stops the units' ExecStart
with start-stop-daemon as their User=, so deb-systemd-invoke in the
maintainer scripts acts on real processes: the upgrade must restart both
daemons on the new binaries, the removal must stop them. Purge must remove
what the packages made, but keep (and say so) a spool with unacknowledged
batches and a gateway database with readings, also when sqlite3 is missing.
Last, a hub set up before the services had their own users (the shared
user agri) is installed over: its spool, database and configs become
agri-station's and agri-gateway's, and nothing else changes owner.
Exit 0 when every check passed.
"""
import glob
import os
import shutil
import subprocess
import sys
import time

SYSTEMCTL_STUB = r"""#!/bin/sh
# Stand-in for systemctl in the agri package test chroot
# (tests/packages_chroot.py): systemd does not run in a chroot. start, stop
# and restart run the unit's ExecStart as its User= with start-stop-daemon,
# after doing what systemd does for StateDirectory= (a directory whose owner
# is not User= is handed over, recursively); is-enabled looks at the
# multi-user.target.wants link; every call is logged.
dir=/run/agri-test
mkdir -p $dir
echo "systemctl $*" >> $dir/systemctl.log
action=""
units=""
for a in "$@"; do
	case $a in
	-*) ;;
	*) if [ -z "$action" ]; then action=$a; else units="$units $a"; fi ;;
	esac
done
unitfile() {
	for d in /etc/systemd/system /lib/systemd/system; do
		if [ -f $d/$1 ]; then echo $d/$1; return 0; fi
	done
	return 1
}
active() { start-stop-daemon --status --pidfile $dir/$1.pid; }
start() {
	f=$(unitfile $1) || { echo "Unit $1 not found." >&2; return 5; }
	cmd=$(sed -n 's/^ExecStart=//p' $f)
	user=$(sed -n 's/^User=//p' $f)
	group=$(sed -n 's/^Group=//p' $f)
	for sd in $(sed -n 's/^StateDirectory=//p' $f); do
		mkdir -p /var/lib/$sd
		[ "$(stat -c %U:%G /var/lib/$sd)" = "$user:$group" ] ||
			chown -R -P "$user:$group" /var/lib/$sd
	done
	start-stop-daemon --start --quiet --background --make-pidfile --pidfile $dir/$1.pid \
		--chuid "${user:-root}" --output $dir/$1.log --exec ${cmd%% *} -- ${cmd#* }
}
stop() {
	start-stop-daemon --stop --quiet --retry TERM/15/KILL/5 --pidfile $dir/$1.pid --remove-pidfile || true
}
rc=0
case $action in
is-enabled)
	for u in $units; do
		if [ -e /etc/systemd/system/multi-user.target.wants/$u ]; then echo enabled; else echo disabled; rc=1; fi
	done ;;
is-active) for u in $units; do active $u || rc=3; done ;;
start) for u in $units; do active $u || start $u || rc=$?; done ;;
stop) for u in $units; do stop $u; done ;;
restart) for u in $units; do stop $u; start $u || rc=$?; done ;;
esac
exit $rc
"""

STATION_JSON = """{
  "station": "DT-CHROOT1",
  "broker": {"url": "tcp://127.0.0.1:1", "topic_prefix": "agri/v1"},
  "state_dir": "/var/lib/agri/station",
  "profiles_dir": "/usr/share/agri/profiles",
  "publish_interval_s": 0.5,
  "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": 1}, "timeout_ms": 200}],
  "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01", "interval_s": 0.5}]
}
"""
GATEWAY_JSON = """{
  "broker": {"url": "tcp://127.0.0.1:1", "client_id": "agri-gateway-chroot"},
  "db": {"path": "/var/lib/agri/gateway/agri.db", "retention_days": 400},
  "rules_file": "rules.json"
}
"""
UNITS = ("agri-station.service", "agri-gateway.service")


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   " + what, flush=True)
        else:
            self.failed += 1
            print("FAIL " + what, flush=True)
        return cond


C = Checks()


class Chroot:
    def __init__(self, root):
        self.root = root

    def path(self, p):
        return os.path.join(self.root, p.lstrip("/"))

    def run(self, argv, timeout=300, env=None):
        e = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
        e.update(env or {})
        return subprocess.run(["chroot", self.root] + argv, capture_output=True, text=True,
                              timeout=timeout, env=e)

    def sh(self, script, timeout=300):
        return self.run(["sh", "-c", script], timeout=timeout)

    def write(self, p, text, mode=0o644):
        with open(self.path(p), "w") as f:
            f.write(text)
        os.chmod(self.path(p), mode)

    def read(self, p):
        try:
            with open(self.path(p)) as f:
                return f.read()
        except OSError:
            return None

    def exists(self, p):
        return os.path.lexists(self.path(p))

    def pid(self, unit):
        """The pid of a running unit (stand-in's pidfile), or None."""
        text = self.read("/run/agri-test/%s.pid" % unit)
        try:
            pid = int(text)
        except (TypeError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        # a zombie or another process with a reused pid is not the daemon
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return None
            return pid if os.readlink("/proc/%d/root" % pid) == os.path.realpath(self.root) else None
        except OSError:
            return None

    def exe(self, pid):
        try:
            return os.readlink("/proc/%d/exe" % pid)
        except OSError:
            return ""

    def calls(self):
        return (self.read("/run/agri-test/systemctl.log") or "").splitlines()


def wait(pred, timeout, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def debs(d, dbgsym=True):
    out = sorted(glob.glob(os.path.join(d, "*.deb")))
    return [p for p in out if dbgsym or "-dbgsym_" not in p]


def version_of(d):
    return os.path.basename(debs(d)[0]).split("_")[1]


def install(ch, d, what):
    names = [os.path.basename(p) for p in debs(d)]
    res = ch.run(["dpkg", "-i"] + ["/tmp/agri/%s/%s" % (os.path.basename(d), n) for n in names])
    C.check(res.returncode == 0, "%s: dpkg -i %s%s" % (what, " ".join(names), "" if res.returncode == 0 else
                                                        " (rc=%d %s)" % (res.returncode, (res.stderr + res.stdout).strip()[-600:])))
    return res


def installed(ch, pkg):
    res = ch.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Version}", pkg])
    return res.stdout.strip() if res.returncode == 0 else ""


def wants(ch, unit):
    link = "/etc/systemd/system/multi-user.target.wants/" + unit
    return ch.exists(link) and os.readlink(ch.path(link)) == "/lib/systemd/system/" + unit


def stat_owner(ch, p):
    st = os.stat(ch.path(p))
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def uid_of(ch, user):
    for line in (ch.read("/etc/passwd") or "").splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2])
    return None


def gid_of(ch, group):
    for line in (ch.read("/etc/group") or "").splitlines():
        f = line.split(":")
        if f[0] == group:
            return int(f[2])
    return None


def make_spool(ch, batches):
    """A spool as the station leaves it (docs/spool.md), with `batches` rows."""
    rows = "".join("INSERT INTO batches VALUES(%d, x'7b7d', 0, 2);" % (i + 1) for i in range(batches))
    return ch.sh("install -d -o agri-station -g agri-station -m 0750 /var/lib/agri/station && "
                 "sqlite3 /var/lib/agri/station/spool.db 'CREATE TABLE batches(seq INTEGER PRIMARY KEY, "
                 "payload BLOB, created INTEGER, bytes INTEGER); %s' && "
                 "chown agri-station:agri-station /var/lib/agri/station/spool.db" % rows)


def image_build(ch, old):
    """The first install, offline: nothing runs, the units are enabled."""
    res = install(ch, old, "image build (no systemd)")
    for pkg in ("agri-station", "agri-gateway", "agri-tools"):
        C.check(installed(ch, pkg).startswith("ii "), "%s is installed: %s" % (pkg, installed(ch, pkg)))
    for unit in UNITS:
        C.check(wants(ch, unit), "offline: %s is enabled (multi-user.target.wants link made by "
                                 "deb-systemd-helper)" % unit)
    C.check(not ch.calls(), "offline: no systemctl call (nothing started without systemd): %s" % ch.calls())
    uid = dict((u, uid_of(ch, u)) for u in ("agri-station", "agri-gateway"))
    C.check(all(v is not None and v < 1000 for v in uid.values())
            and uid["agri-station"] != uid["agri-gateway"] and uid_of(ch, "agri") is None,
            "one system user per service, none shared: %s" % uid)
    C.check("agri-station" in (ch.run(["id", "-nG", "agri-station"]).stdout.split())
            and "dialout" in ch.run(["id", "-nG", "agri-station"]).stdout.split()
            and "dialout" not in ch.run(["id", "-nG", "agri-gateway"]).stdout.split(),
            "agri-station is in group dialout (RS-485), agri-gateway is not")
    C.check(stat_owner(ch, "/var/lib/agri/station")[0] == uid["agri-station"]
            and stat_owner(ch, "/var/lib/agri/gateway")[0] == uid["agri-gateway"]
            and all(stat_owner(ch, d)[2] == 0o750 for d in ("/var/lib/agri/station", "/var/lib/agri/gateway"))
            and stat_owner(ch, "/var/lib/agri")[0] == 0 and stat_owner(ch, "/var/lib/agri")[2] == 0o755,
            "/var/lib/agri/station is agri-station's, /var/lib/agri/gateway agri-gateway's (0750),"
            " /var/lib/agri root's")
    gid = dict((g, gid_of(ch, g)) for g in ("agri-station", "agri-gateway"))
    C.check(stat_owner(ch, "/etc/agri/station.json")[1:] == (gid["agri-station"], 0o640)
            and stat_owner(ch, "/etc/agri/gateway.json")[1:] == (gid["agri-gateway"], 0o640),
            "the configs are 0640, root:agri-station and root:agri-gateway")
    C.check(ch.exists("/etc/agri/technicians"), "/etc/agri/technicians exists")
    res = ch.run(["agrictl", "salinity", "--ec", "12.5", "--temp", "28.6"])
    C.check(res.returncode == 0 and "salinity" in res.stdout, "agrictl runs in the image: %s" % res.stdout.strip())
    return uid


def boot_and_upgrade(ch, new, uid):
    """systemd "runs": the daemons start; the upgrade restarts them on the new binaries."""
    os.makedirs(ch.path("/run/systemd/system"), exist_ok=True)
    ch.write("/etc/agri/station.json", STATION_JSON, 0o640)
    ch.write("/etc/agri/gateway.json", GATEWAY_JSON, 0o640)
    ch.run(["chown", "root:agri-station", "/etc/agri/station.json"])
    ch.run(["chown", "root:agri-gateway", "/etc/agri/gateway.json"])
    res = ch.run(["systemctl", "start"] + list(UNITS))
    pids = {u: wait(lambda u=u: ch.pid(u), 10) for u in UNITS}
    C.check(res.returncode == 0 and all(pids.values()),
            "boot: both daemons run (%s; %s %s)" % (pids, res.stderr.strip(),
                                                   (ch.read("/run/agri-test/agri-station.service.log") or "")[-300:]))
    C.check(wait(lambda: ch.exists("/var/lib/agri/station/spool.db")
                 and "batches" in ch.run(["sqlite3", "/var/lib/agri/station/spool.db",
                                          "SELECT 'batches', count(*) FROM batches"]).stdout
                 and ch.run(["sqlite3", "/var/lib/agri/station/spool.db",
                             "SELECT count(*) FROM batches"]).stdout.strip() not in ("", "0"), 20),
            "the station spools batches no gateway acknowledges (the broker is unreachable)")
    before = len(ch.calls())
    res = install(ch, new, "upgrade to %s (systemd running)" % version_of(new))
    calls = ch.calls()[before:]
    for pkg in ("agri-station", "agri-gateway", "agri-tools"):
        C.check(installed(ch, pkg).split() == ["ii", version_of(new)],
                "%s upgraded: %s" % (pkg, installed(ch, pkg)))
    for u in UNITS:
        C.check(any(c.endswith("restart %s" % u) for c in calls),
                "upgrade: the postinst restarts %s (deb-systemd-invoke restart)" % u)
        pid = wait(lambda u=u: ch.pid(u), 10)
        exe = ch.exe(pid) if pid else ""
        C.check(pid and pid != pids[u] and exe.endswith("/usr/bin/" + u.split(".")[0]) and "deleted" not in exe,
                "upgrade: %s runs again, on the new binary (pid %s -> %s, exe %s)" % (u, pids[u], pid, exe))
    C.check(ch.read("/etc/agri/station.json") == STATION_JSON and ch.read("/etc/agri/gateway.json") == GATEWAY_JSON,
            "upgrade: the edited conffiles are kept")
    C.check(all(wants(ch, u) for u in UNITS), "upgrade: the units stay enabled")
    C.check(all(uid_of(ch, u) == uid[u] for u in uid), "upgrade: the users are the same (%s)" % uid)
    log = subprocess.run(["zcat", ch.path("/usr/share/doc/agri-station/changelog.gz")],
                         capture_output=True, text=True).stdout
    C.check(log.startswith("agri (%s)" % version_of(new)), "the changelog's newest entry is %s" % version_of(new))


def remove_and_purge(ch):
    pids = {u: ch.pid(u) for u in UNITS}
    before = len(ch.calls())
    pkgs = ["agri-station-dbgsym", "agri-gateway-dbgsym", "agri-tools-dbgsym",
            "agri-station", "agri-gateway", "agri-tools"]
    res = ch.run(["dpkg", "-r"] + pkgs)
    calls = ch.calls()[before:]
    C.check(res.returncode == 0, "dpkg -r: rc %d %s" % (res.returncode, res.stderr.strip()[-300:]))
    for u in UNITS:
        C.check(any(c.endswith("stop %s" % u) for c in calls), "remove: the prerm stops %s" % u)
        gone = wait(lambda u=u: not ch.pid(u) and not (pids[u] and os.path.exists("/proc/%d" % pids[u])), 20)
        C.check(pids[u] and gone, "remove: %s (pid %s) is no longer running" % (u, pids[u]))
    C.check(not ch.exists("/usr/bin/agri-station") and ch.exists("/etc/agri/station.json")
            and ch.exists("/var/lib/agri/station/spool.db"),
            "remove: the programs are gone, the conffiles and the spool stay")

    res = ch.run(["dpkg", "-P"] + pkgs)
    out = res.stdout + res.stderr
    C.check(res.returncode == 0, "dpkg -P: rc %d%s" % (res.returncode, "" if res.returncode == 0 else " " + out.strip()[-300:]))
    C.check("agri-station: kept /var/lib/agri/station" in out and "no gateway has acknowledged" in out
            and ch.exists("/var/lib/agri/station/spool.db"),
            "purge: the spool with unacknowledged batches is kept, and purge says so (%s)"
            % [ln for ln in out.splitlines() if "kept" in ln])
    C.check(not ch.exists("/var/lib/agri/gateway"), "purge: the gateway's state (a database with no reading) is gone")
    C.check(not any(ch.exists("/etc/systemd/system/multi-user.target.wants/" + u) for u in UNITS)
            and not glob.glob(ch.path("/var/lib/systemd/deb-systemd-helper-enabled/agri-*")),
            "purge: the wants links and deb-systemd-helper's state are gone")
    C.check(not ch.exists("/etc/agri/station.json") and not ch.exists("/etc/agri/gateway.json"),
            "purge: the conffiles are gone")
    ch.run(["rm", "-rf", "/var/lib/agri/station"])


def purge_cycles(ch, old):
    """Purge with an empty spool; a gateway database with readings; no sqlite3."""
    shutil.rmtree(ch.path("/run/systemd"), ignore_errors=True)
    install(ch, old, "reinstall")
    make_spool(ch, 0)
    res = ch.run(["dpkg", "-P", "agri-station-dbgsym", "agri-station"])
    out = res.stdout + res.stderr
    C.check(res.returncode == 0 and "kept" not in out and not ch.exists("/var/lib/agri/station")
            and not ch.exists("/etc/agri/technicians"),
            "purge with an empty spool: /var/lib/agri/station and /etc/agri/technicians are gone (%s)"
            % [ln for ln in out.splitlines() if "kept" in ln or "agri-station:" in ln])

    ch.sh("sqlite3 /var/lib/agri/gateway/agri.db 'CREATE TABLE IF NOT EXISTS readings(x); "
          "CREATE TABLE IF NOT EXISTS readings_hourly(x); INSERT INTO readings VALUES(1);'")
    res = ch.run(["dpkg", "-P", "agri-gateway-dbgsym", "agri-gateway"])
    out = res.stdout + res.stderr
    C.check(res.returncode == 0 and "agri-gateway: kept /var/lib/agri/gateway" in out
            and ch.exists("/var/lib/agri/gateway/agri.db"),
            "purge: a gateway database with readings is kept, and purge says so (%s)"
            % [ln for ln in out.splitlines() if "kept" in ln])
    ch.run(["rm", "-rf", "/var/lib/agri/gateway"])

    install(ch, old, "reinstall")
    make_spool(ch, 3)
    ch.run(["mv", "/usr/bin/sqlite3", "/usr/bin/sqlite3.hidden"])
    res = ch.run(["dpkg", "-P", "agri-station-dbgsym", "agri-station"])
    ch.run(["mv", "/usr/bin/sqlite3.hidden", "/usr/bin/sqlite3"])
    out = res.stdout + res.stderr
    C.check(res.returncode == 0 and "cannot tell" in out and ch.exists("/var/lib/agri/station/spool.db"),
            "purge without sqlite3: the spool is kept, and purge says why (%s)"
            % [ln for ln in out.splitlines() if "kept" in ln])
    ch.run(["rm", "-rf", "/var/lib/agri/station"])
    res = ch.run(["dpkg", "-P", "agri-gateway-dbgsym", "agri-gateway", "agri-tools-dbgsym", "agri-tools"])
    left = [p for p in ("/var/lib/agri", "/etc/agri", "/usr/share/agri", "/usr/share/doc/agri-station")
            if ch.exists(p)]
    C.check(res.returncode == 0 and not left, "everything purged: nothing of agri is left (%s)" % left)
    C.check(uid_of(ch, "agri-station") is not None and uid_of(ch, "agri-gateway") is not None,
            "the agri-station and agri-gateway users stay after purge (Debian keeps system users)")


def before_the_split(ch, old):
    """A hub installed before the services had their own users: everything
    the shared user agri owned becomes the service's, nothing else."""
    ch.sh("addgroup --quiet --system agri && adduser --quiet --system --ingroup agri"
          " --home /var/lib/agri --no-create-home agri && "
          "install -d -o agri -g agri -m 0750 /var/lib/agri /var/lib/agri/station /var/lib/agri/gateway && "
          "install -d -m 0755 /etc/agri && "
          "echo old > /var/lib/agri/station/from-agri && echo old > /var/lib/agri/gateway/from-agri && "
          "chown agri:agri /var/lib/agri/station/from-agri /var/lib/agri/gateway/from-agri && "
          "printf secret > /etc/agri/gateway.pass && chown root:agri /etc/agri/gateway.pass && "
          "chmod 0640 /etc/agri/gateway.pass")
    agri = uid_of(ch, "agri")
    install(ch, old, "offline install over a hub of the shared user agri")
    C.check(stat_owner(ch, "/var/lib/agri/station/from-agri")[0] == agri
            and stat_owner(ch, "/var/lib/agri/gateway")[0] == agri
            and stat_owner(ch, "/var/lib/agri")[:1] == (0,),
            "before the split: the postinst leaves the state directories to systemd"
            " (only /var/lib/agri becomes root's)")
    C.check(stat_owner(ch, "/etc/agri/gateway.pass")[1:] == (gid_of(ch, "agri-gateway"), 0o640),
            "before the split: gateway.pass is root:agri-gateway 0640 (no longer the shared group's)")
    os.makedirs(ch.path("/run/systemd/system"), exist_ok=True)
    ch.write("/etc/agri/station.json", STATION_JSON, 0o640)
    ch.write("/etc/agri/gateway.json", GATEWAY_JSON, 0o640)
    ch.run(["chown", "root:agri-station", "/etc/agri/station.json"])
    ch.run(["chown", "root:agri-gateway", "/etc/agri/gateway.json"])
    ch.run(["systemctl", "start"] + list(UNITS))
    pids = {u: wait(lambda u=u: ch.pid(u), 10) for u in UNITS}
    st, gw = uid_of(ch, "agri-station"), uid_of(ch, "agri-gateway")
    C.check(all(pids.values())
            and stat_owner(ch, "/var/lib/agri/station/from-agri")[0] == st
            and stat_owner(ch, "/var/lib/agri/gateway/from-agri")[0] == gw
            and wait(lambda: ch.exists("/var/lib/agri/station/spool.db")
                     and ch.exists("/var/lib/agri/gateway/agri.db"), 10),
            "before the split: at start (StateDirectory=) the state becomes agri-station's and"
            " agri-gateway's, and both daemons run and write there (%s)" % pids)
    ch.run(["systemctl", "stop"] + list(UNITS))
    shutil.rmtree(ch.path("/run/systemd"), ignore_errors=True)
    ch.run(["dpkg", "-P", "agri-station-dbgsym", "agri-station", "agri-gateway-dbgsym",
            "agri-gateway", "agri-tools-dbgsym", "agri-tools"])
    ch.run(["rm", "-rf", "/var/lib/agri", "/etc/agri"])


def main():
    if len(sys.argv) != 5:
        print(__doc__.split("\n\n")[1])
        sys.exit(2)
    base, old, new, work = sys.argv[1:]
    root = os.path.join(work, "root")
    if os.path.exists(root):
        subprocess.run(["umount", "-l", os.path.join(root, "proc")], capture_output=True)
        shutil.rmtree(root)
    os.makedirs(root)
    subprocess.run(["tar", "-xf", base, "-C", root], check=True)
    ch = Chroot(root)
    for d in (old, new):
        dest = ch.path("/tmp/agri/" + os.path.basename(d))
        os.makedirs(dest)
        for p in debs(d):
            shutil.copy(p, dest)
    # /usr/local/bin: deb-systemd-invoke and the scripts find it in PATH, while
    # deb-systemd-helper, which looks for /usr/bin/systemctl (systemd
    # installed), makes the wants links itself, as in an image without systemd.
    ch.write("/usr/local/bin/systemctl", SYSTEMCTL_STUB, 0o755)
    subprocess.run(["mount", "-t", "proc", "proc", ch.path("/proc")], check=True)
    try:
        uid = image_build(ch, old)
        boot_and_upgrade(ch, new, uid)
        remove_and_purge(ch)
        purge_cycles(ch, old)
        before_the_split(ch, old)
    finally:
        # Stop what this test started, by pid (the stand-in's pidfiles; ch.pid
        # checks that the process lives in this chroot).
        for u in UNITS:
            pid = ch.pid(u)
            if pid:
                os.kill(pid, 9)
        subprocess.run(["umount", "-l", ch.path("/proc")], capture_output=True)
    print("packages_chroot: %d passed, %d failed" % (C.passed, C.failed))
    sys.exit(1 if C.failed or not C.passed else 0)


if __name__ == "__main__":
    main()
