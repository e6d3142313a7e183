"""The Debian packages (CPack DEB, packaging/CMakeLists.txt, scripts/package):

- amd64 (host): agri-station, agri-gateway, agri-tools build from the build
  under test (AGRI_BUILD_DIR's own CPack config, so nothing is recompiled);
  `dpkg-deb -c` shows the programs in /usr/bin, the units in
  /lib/systemd/system (their ExecStart names the packaged program),
  /etc/agri/*.json, the profiles under /usr/share/agri/profiles and the
  broker config; `dpkg-deb -I` shows the dependencies, the postinst (which
  creates the service's own user, agri-station or agri-gateway, and its
  directory under /var/lib/agri) and the conffiles; every library
  a packaged program needs (DT_NEEDED) is covered by its package's Depends;
  the packaged programs run (--help);
- as Debian expects them (docs/packaging.md), amd64 and arm64 alike:
  `lintian` finds no error and no warning beyond LINTIAN_ACCEPTED (each
  with its reason); the programs are stripped, with a build-id and a debug
  link, their debug symbols in agri-*-dbgsym (/usr/lib/debug/.build-id/,
  the same build-id); each package has a copyright file, a changelog and an
  extended description; the manual pages are in their program's package;
  the maintainer scripts are in dh_installsystemd's shape (deb-systemd-helper
  enables, deb-systemd-invoke starts or stops, prerm stops on remove, postrm
  purges); the station's postinst, run as dpkg runs it for an image built
  offline (DPKG_ROOT, no systemd), enables agri-station.service: the
  multi-user.target.wants link is in the image;
- arm64: `scripts/package rpi-arm64` cross-builds all three (the gateway's
  libpq and GSL from build-sysroot-arm64/, scripts/arm64-sysroot) into
  AGRI_BUILD_DIR/pkg-rpi-arm64 (kept, so a second run is incremental), with
  the same contents and Depends checks as amd64; the programs extracted from
  the packages (dpkg-deb -x) run under qemu-aarch64: agri-station `--help`
  and `--once` against agri-sim (host build, Modbus TCP), with the package's
  own profiles, reading what the host build reads; agrictl and agri-gateway
  `--help`; agri-gateway against a real mosquitto, storing and acking the
  batches of a python station peer (the arm64 libpq5 and libgsl27 are the
  :arm64 packages scripts/install-deps installs, not the sysroot's).
Exit 77 (skipped) when dpkg-deb/cpack are missing, or when the arm64 cross
toolchain or qemu-aarch64 is missing (after the amd64 checks passed).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

R = harness.Result("test_packages")
SRC = harness.SRC
BUILD = os.path.abspath(harness.BUILD)
# the multiarch libc6:arm64 for loader and libraries (boards/rpi-arm64/toolchain.cmake)
QEMU = ["qemu-aarch64", "-L", "/"]


def sh(argv, timeout=600, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def contents(deb):
    res = sh(["dpkg-deb", "-c", deb])
    return {line.split()[5].lstrip(".") for line in res.stdout.splitlines() if len(line.split()) >= 6}


def info(deb):
    return sh(["dpkg-deb", "-I", deb]).stdout


def field(deb, name):
    res = sh(["dpkg-deb", "-f", deb, name])
    return res.stdout.strip()


def member(deb, path):
    """The text of one file in the package."""
    p1 = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    out = subprocess.run(["tar", "-xO", "." + path], stdin=p1.stdout, capture_output=True)
    p1.wait()
    return out.stdout.decode("utf-8", "replace")


def control_file(deb, name, work):
    d = os.path.join(work, "ctrl-" + os.path.basename(deb))
    shutil.rmtree(d, ignore_errors=True)
    sh(["dpkg-deb", "-e", deb, d])
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return f.read()


# Debian 12 package of each shared library the programs link (DT_NEEDED), for
# the check that every one is in the package's Depends; "a|b": either.
SONAME_PKG = {
    "libc.so.6": "libc6", "libm.so.6": "libc6", "libcjson.so.1": "libcjson1",
    "libmodbus.so.5": "libmodbus5", "libsqlite3.so.0": "libsqlite3-0",
    "libpaho-mqtt3as.so.1": "libpaho-mqtt1.3", "libpaho-mqtt3cs.so.1": "libpaho-mqtt1.3",
    "libcrypto.so.3": "libssl3", "libssl.so.3": "libssl3", "libcurl.so.4": "libcurl4",
    "libmicrohttpd.so.12": "libmicrohttpd12", "libpq.so.5": "libpq5", "libgsl.so.27": "libgsl27",
    "libgslcblas.so.0": "libgsl27|libgslcblas0",
}


def needed(prog):
    """The DT_NEEDED sonames of a program (binutils' readelf reads any ELF)."""
    out = sh(["readelf", "-d", prog]).stdout
    return [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]


def check_needed(deb, root):
    """Every library the package's programs need is in its Depends."""
    deps = {d.strip().split()[0] for d in field(deb, "Depends").split(",") if d.strip()}
    progs = sorted(f for f in contents(deb) if f.startswith("/usr/bin/") and not f.endswith("/"))
    bad = []
    for f in progs:
        for so in needed(root + f):
            if not set(SONAME_PKG.get(so, "?" + so).split("|")) & deps:
                bad.append("%s: %s (%s)" % (os.path.basename(f), so, SONAME_PKG.get(so, "no known package")))
    R.check(progs and not bad, "%s: every DT_NEEDED library of %s is in Depends (missing %s)"
            % (os.path.basename(deb), ", ".join(os.path.basename(f) for f in progs), bad))


def check_gateway(deb, arch, work):
    files = contents(deb)
    want = ["/usr/bin/agri-gateway", "/lib/systemd/system/agri-gateway.service", "/etc/agri/gateway.json",
            "/etc/agri/rules.json", "/usr/share/agri/broker/mosquitto.conf",
            "/usr/share/agri/broker/acl.head", "/usr/share/agri/broker/acl.hub",
            "/usr/share/agri/broker/make-certs",
            "/usr/share/agri/broker/render-conf",
            "/usr/share/doc/agri-gateway/broker.md"]
    missing = [f for f in want if f not in files]
    R.check(not missing, "%s: program, unit, configs, broker config (missing %s)"
            % (os.path.basename(deb), missing))
    R.check(field(deb, "Architecture") == arch and field(deb, "Package") == "agri-gateway",
            "agri-gateway is Architecture %s" % arch)
    dep = field(deb, "Depends")
    R.check(all(d in dep for d in ("libpq5", "libgsl27", "libmicrohttpd12", "libcurl4", "adduser")),
            "agri-gateway Depends: %s" % dep)
    R.check("mosquitto" in field(deb, "Recommends"), "agri-gateway Recommends mosquitto")
    unit = member(deb, "/lib/systemd/system/agri-gateway.service")
    R.check("ExecStart=/usr/bin/agri-gateway --config /etc/agri/gateway.json" in unit,
            "the gateway unit runs /usr/bin/agri-gateway")
    post = control_file(deb, "postinst", work) or ""
    R.check(re.search(r"adduser (--quiet )?--system --ingroup agri-gateway", post)
            and "/var/lib/agri/gateway" in post, "the gateway postinst creates its own user, agri-gateway")
    R.check("User=agri-gateway" in unit and "ReadWritePaths=/var/lib/agri/gateway" in unit,
            "the gateway unit runs as agri-gateway, writing only /var/lib/agri/gateway")
    conff = (control_file(deb, "conffiles", work) or "").split()
    R.check("/etc/agri/gateway.json" in conff and "/etc/agri/rules.json" in conff,
            "gateway.json and rules.json are conffiles")


def check_tools(deb, arch):
    files = contents(deb)
    R.check(field(deb, "Architecture") == arch and {"/usr/bin/agrictl", "/usr/bin/agri-sim"} <= files,
            "agri-tools (%s): agrictl and agri-sim" % arch)
    R.check(all(d in field(deb, "Depends") for d in ("libmodbus5", "libssl3")),
            "agri-tools Depends: %s" % field(deb, "Depends"))


def profiles():
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(harness.PROFILES, "*.json")))


def check_station(deb, arch, work):
    files = contents(deb)
    want = ["/usr/bin/agri-station", "/lib/systemd/system/agri-station.service", "/etc/agri/station.json",
            "/usr/share/doc/agri-station/station.md"]
    want += ["/usr/share/agri/profiles/" + p for p in profiles()]
    missing = [f for f in want if f not in files]
    R.check(not missing, "%s: dpkg-deb -c shows the program, unit, config, docs and %d profiles (missing %s)"
            % (os.path.basename(deb), len(profiles()), missing))
    R.check(field(deb, "Architecture") == arch and field(deb, "Package") == "agri-station",
            "agri-station is Architecture %s" % arch)
    dep = field(deb, "Depends")
    R.check(all(d in dep for d in ("libmodbus5", "libpaho-mqtt1.3", "libsqlite3-0", "libcjson1", "adduser")),
            "agri-station Depends: %s" % dep)
    inf = info(deb)
    R.check("postinst" in inf and "conffiles" in inf, "dpkg-deb -I lists postinst and conffiles")
    post = control_file(deb, "postinst", work) or ""
    R.check(re.search(r"adduser (--quiet )?--system --ingroup agri-station", post)
            and "/var/lib/agri/station" in post and sh(["sh", "-n"], input=post).returncode == 0,
            "the postinst creates the station's own user agri-station and /var/lib/agri/station"
            " (and parses)")
    R.check("install -d -o root -g root -m 0755 /etc/agri/technicians" in post,
            "the postinst creates /etc/agri/technicians, root's (the keys of trusted technicians)")
    conff = control_file(deb, "conffiles", work) or ""
    R.check("/etc/agri/station.json" in conff.split(), "/etc/agri/station.json is a conffile")
    unit = member(deb, "/lib/systemd/system/agri-station.service")
    R.check("ExecStart=/usr/bin/agri-station --config /etc/agri/station.json" in unit
            and "User=agri-station" in unit
            and "ReadWritePaths=/var/lib/agri/station /var/lib/agri-station" in unit,
            "the unit runs /usr/bin/agri-station as agri-station, writing only its state directories")
    cfg = json.loads(member(deb, "/etc/agri/station.json"))
    R.check(cfg.get("profiles_dir") == "/usr/share/agri/profiles"
            and cfg.get("state_dir", "").startswith("/var/lib/agri/"),
            "/etc/agri/station.json points at the packaged profiles and /var/lib/agri")


# lintian warnings that stay, each with its reason (docs/packaging.md). Errors
# are never accepted. None remains today: an entry needs a reason an operator
# would accept.
LINTIAN_ACCEPTED = {
}
# The maintainer scripts of the packages with a unit: what each must call.
UNITS = {"agri-station": "agri-station.service", "agri-gateway": "agri-gateway.service"}
PAGES = {"agri-station": ["/usr/share/man/man8/agri-station.8.gz"],
         "agri-gateway": ["/usr/share/man/man8/agri-gateway.8.gz"],
         "agri-tools": ["/usr/share/man/man1/agrictl.1.gz", "/usr/share/man/man1/agri-sim.1.gz",
                        "/usr/share/man/vi/man1/agrictl.1.gz"]}


def split_debs(paths):
    """{package: path} of the packages and of their -dbgsym packages."""
    main, dbg = {}, {}
    for d in paths:
        name = os.path.basename(d).split("_")[0]
        (dbg if name.endswith("-dbgsym") else main)[name] = d
    return main, dbg


def check_lintian(debs, arch):
    """lintian on every package: no error, no warning beyond LINTIAN_ACCEPTED."""
    if not shutil.which("lintian"):
        R.check(False, "lintian is installed (scripts/install-deps installs it)")
        return
    res = sh(["lintian", "--tag-display-limit", "0"] + sorted(debs), timeout=600, cwd="/")
    tags = [ln for ln in res.stdout.splitlines() if re.match(r"^[EW]: ", ln)]
    errors = [t for t in tags if t.startswith("E: ")]
    warnings = [t for t in tags if t.startswith("W: ") and t.split()[2] not in LINTIAN_ACCEPTED]
    R.check(not errors and res.returncode in (0, 1) and "E:" not in res.stderr,
            "lintian %s (%d packages): no error (%s)" % (arch, len(debs), errors[:6] or res.stderr.strip()[-200:]))
    R.check(not warnings, "lintian %s: no warning beyond the accepted ones (%s)" % (arch, warnings[:6]))


def elf_sections(path):
    out = sh(["readelf", "-S", "-W", path]).stdout
    return set(re.findall(r"\]\s+(\.\S+)", out))


def build_id(path):
    m = re.search(r"Build ID: ([0-9a-f]+)", sh(["readelf", "-n", path]).stdout)
    return m.group(1) if m else None


def check_debian_shape(main, dbg, arch, work):
    """Stripped programs and their -dbgsym packages, copyright, changelog,
    descriptions, manual pages, maintainer scripts."""
    R.check(sorted(dbg) == sorted(n + "-dbgsym" for n in main),
            "%s: a -dbgsym package for each package (%s)" % (arch, sorted(dbg)))
    root = os.path.join(work, "shape-" + arch)
    for d in list(main.values()) + list(dbg.values()):
        sh(["dpkg-deb", "-x", d, root])
    for name, deb in sorted(main.items()):
        files = contents(deb)
        progs = sorted(f for f in files if f.startswith("/usr/bin/") and not f.endswith("/"))
        unstripped, nolink, nodebug = [], [], []
        for f in progs:
            secs = elf_sections(root + f)
            if ".symtab" in secs or any(x.startswith(".debug_") for x in secs):
                unstripped.append(f)
            if ".gnu_debuglink" not in secs:
                nolink.append(f)
            bid = build_id(root + f)
            dfile = bid and "/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:])
            dbg_deb = dbg.get(name + "-dbgsym")
            if not (dfile and dbg_deb and dfile in contents(dbg_deb)
                    and ".debug_info" in elf_sections(root + dfile)):
                nodebug.append(f)
        R.check(progs and not unstripped and not nolink,
                "%s %s: %s stripped, with a debug link (unstripped %s, no link %s)"
                % (name, arch, [os.path.basename(p) for p in progs], unstripped, nolink))
        R.check(not nodebug, "%s %s: the debug symbols of each program are in %s-dbgsym under "
                "its build-id (missing for %s)" % (name, arch, name, nodebug))
        doc = "/usr/share/doc/%s/" % name
        R.check({doc + "copyright", doc + "changelog.gz"} <= files,
                "%s %s: %scopyright and changelog.gz" % (name, arch, doc))
        desc = field(deb, "Description").splitlines()
        maint = field(deb, "Maintainer")
        R.check(len(desc) >= 4 and len(desc[0]) <= 60 and re.match(r"^[^<>]+ <[^@\s]+@[^@\s]+\.[a-z]+>$", maint)
                and "localhost" not in maint,
                "%s %s: a short synopsis, an extended description, a maintainer address (%r, %s)"
                % (name, arch, desc[0] if desc else "", maint))
        missing = [p for p in PAGES.get(name, []) if p not in files]
        R.check(not missing, "%s %s: its manual pages (missing %s)" % (name, arch, missing))
        if name in UNITS:
            check_scripts(deb, name, UNITS[name], work)
    for name, deb in sorted(dbg.items()):
        R.check(field(deb, "Depends") == "%s (= %s)" % (name[:-7], field(main[name[:-7]], "Version"))
                and field(deb, "Section") == "debug",
                "%s %s: Section debug, Depends on its package's exact version" % (name, arch))


def check_scripts(deb, name, unit, work):
    post = control_file(deb, "postinst", work) or ""
    prerm = control_file(deb, "prerm", work) or ""
    postrm = control_file(deb, "postrm", work) or ""
    R.check("deb-systemd-helper enable '%s'" % unit in post and "deb-systemd-invoke $_dh_action '%s'" % unit in post
            and not re.search(r"systemctl\s+(enable|start|restart)", post),
            "%s postinst: deb-systemd-helper enables %s (also offline), deb-systemd-invoke starts it" % (name, unit))
    R.check(re.search(r'"\$1" = remove \] && \[ -d /run/systemd/system \]', prerm)
            and "deb-systemd-invoke stop '%s'" % unit in prerm,
            "%s prerm: stops %s on remove where systemd runs" % (name, unit))
    R.check("deb-systemd-helper purge '%s'" % unit in postrm and "purge)" in postrm,
            "%s postrm: deb-systemd-helper purge and the package's state on purge" % name)
    R.check(all(sh(["sh", "-n"], input=t).returncode == 0 for t in (post, prerm, postrm) if t),
            "%s: the maintainer scripts parse" % name)


def check_offline_enable(deb, work):
    """The station's postinst as dpkg runs it for an image built offline
    (mmdebstrap with DPKG_ROOT, no systemd running): the unit's wants link is
    made in the image. The commands that would act on this machine (adduser,
    install, chown, systemctl, ...) are stubs; deb-systemd-helper is Debian's."""
    img = os.path.join(work, "image")
    os.makedirs(os.path.join(img, "etc", "systemd", "system"))
    sh(["dpkg-deb", "-x", deb, img])
    post = control_file(deb, "postinst", work)
    stubs = os.path.join(work, "stubs")
    os.makedirs(stubs)
    calls = os.path.join(work, "stub-calls")
    for cmd in ("adduser", "addgroup", "getent", "install", "chown", "chmod", "systemctl",
                "deb-systemd-invoke", "invoke-rc.d"):
        with open(os.path.join(stubs, cmd), "w") as f:
            f.write("#!/bin/sh\necho \"%s $*\" >> '%s'\nexit 0\n" % (cmd, calls))
        os.chmod(os.path.join(stubs, cmd), 0o755)
    env = dict(os.environ, DPKG_ROOT=img, DPKG_MAINTSCRIPT_PACKAGE="agri-station",
               DPKG_MAINTSCRIPT_NAME="postinst", PATH=stubs + ":/usr/sbin:/usr/bin:/sbin:/bin")
    if not post or not shutil.which("deb-systemd-helper"):
        R.check(False, "the station postinst and deb-systemd-helper (init-system-helpers) exist")
        return
    res = subprocess.run(["sh", "-e", "-s", "configure"], input=post, capture_output=True, text=True,
                         env=env, timeout=60)
    link = os.path.join(img, "etc", "systemd", "system", "multi-user.target.wants", "agri-station.service")
    R.check(res.returncode == 0 and os.path.islink(link)
            and os.readlink(link) == "/lib/systemd/system/agri-station.service",
            "the station postinst, offline into an image (DPKG_ROOT, no systemd): "
            "multi-user.target.wants/agri-station.service -> /lib/systemd/system/agri-station.service "
            "(rc=%d %s)" % (res.returncode, res.stderr.strip()[-200:]))


def host_packages(work):
    out = os.path.join(work, "deb-host")
    os.makedirs(out)
    cpack_cfg = os.path.join(BUILD, "CPackConfig.cmake")
    if os.path.exists(cpack_cfg):
        # The build under test, packaged as is (its own CPack config: prefix /usr).
        res = sh(["cpack", "-G", "DEB", "--config", cpack_cfg, "-B", out], cwd=BUILD)
    else:
        env = dict(os.environ, AGRI_PKG_BUILD_DIR=os.path.join(work, "pkg-host"))
        res = sh([os.path.join(SRC, "scripts", "package"), "host"], env=env)
        for d in glob.glob(os.path.join(work, "pkg-host", "*.deb")):
            shutil.copy(d, out)
    debs, dbg = split_debs(glob.glob(os.path.join(out, "*.deb")))
    R.check(res.returncode == 0 and sorted(debs) == ["agri-gateway", "agri-station", "agri-tools"],
            "amd64 packages build: %s (rc=%d %s)" % (sorted(os.path.basename(d) for d in debs.values()),
                                                  res.returncode, res.stderr.strip()[-300:]))
    if "agri-station" not in debs:
        return
    root = check_package_set(debs, "amd64", work)
    check_debian_shape(debs, dbg, "amd64", work)
    check_lintian(list(debs.values()) + list(dbg.values()), "amd64")
    check_offline_enable(debs["agri-station"], work)

    # The packaged programs run.
    for prog in ("agri-station", "agri-gateway", "agrictl", "agri-sim"):
        p = os.path.join(root, "usr", "bin", prog)
        res = sh([p, "--help"], timeout=30) if os.path.exists(p) else None
        R.check(res is not None and res.returncode == 0 and "usage" in res.stdout.lower(),
                "packaged amd64 %s --help: exit 0" % prog)


def check_package_set(debs, arch, work):
    """Each package's contents, then all of them unpacked into one root
    whose programs' libraries must be covered by the Depends. Returns the root."""
    check_station(debs["agri-station"], arch, work)
    if "agri-gateway" in debs:
        check_gateway(debs["agri-gateway"], arch, work)
    if "agri-tools" in debs:
        check_tools(debs["agri-tools"], arch)
    root = os.path.join(work, "root-" + arch)
    for d in debs.values():
        sh(["dpkg-deb", "-x", d, root])
    for d in debs.values():
        check_needed(d, root)
    return root


def once_config(work, root, sim_port, name):
    return harness.write_json(os.path.join(work, name + ".json"), {
        "station": "DT-PKG1",
        "broker": {"url": "tcp://127.0.0.1:1"},
        "state_dir": os.path.join(work, name + "-state"),
        "profiles_dir": os.path.join(root, "usr", "share", "agri", "profiles"),
        "buses": [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": sim_port}, "timeout_ms": 2000}],
        "sensors": [{"name": "sonde1", "bus": "lan", "slave": 1, "profile": "sensecap-s-ec-01"},
                    {"name": "solar", "bus": "lan", "slave": 3, "profile": "epever-tracer"}],
    })


def arm64_packages(work):
    env = dict(os.environ, AGRI_PKG_BUILD_DIR=os.path.join(BUILD, "pkg-rpi-arm64"))
    res = sh([os.path.join(SRC, "scripts", "package"), "rpi-arm64"], env=env, timeout=900)
    debs, dbg = split_debs(glob.glob(os.path.join(BUILD, "pkg-rpi-arm64", "*.deb")))
    ok = res.returncode == 0 and sorted(debs) == ["agri-gateway", "agri-station", "agri-tools"]
    R.check(ok, "scripts/package rpi-arm64 builds agri-station, agri-gateway and agri-tools: %s (rc=%d%s)"
            % (sorted(debs), res.returncode, "" if ok else " " + res.stderr.strip()[-500:]))
    if "agri-station" not in debs:
        return
    root = check_package_set(debs, "arm64", work)
    check_debian_shape(debs, dbg, "arm64", work)
    check_lintian(list(debs.values()) + list(dbg.values()), "arm64")
    prog = os.path.join(root, "usr", "bin", "agri-station")
    res = sh(["file", "-b", prog])
    R.check("aarch64" in res.stdout, "the packaged agri-station is an aarch64 program (%s)" % res.stdout.strip()[:60])
    res = sh(QEMU + [prog, "--help"], timeout=60)
    R.check(res.returncode == 0 and "--once" in res.stdout,
            "arm64 agri-station --help under qemu-aarch64: exit 0 (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    for name in ("agri-gateway", "agrictl"):
        p = os.path.join(root, "usr", "bin", name)
        res = sh(QEMU + [p, "--help"], timeout=60) if os.path.exists(p) else None
        R.check(res is not None and res.returncode == 0 and "usage" in res.stdout.lower(),
                "arm64 %s --help under qemu-aarch64: exit 0 (%s)"
                % (name, "missing" if res is None else "rc=%d %s" % (res.returncode, res.stderr.strip()[-300:])))
    if os.path.exists(os.path.join(root, "usr", "bin", "agri-gateway")):
        arm64_gateway(work, os.path.join(root, "usr", "bin", "agri-gateway"))

    sim_port = harness.free_port()
    sim = harness.Proc([harness.bin_path("agri-sim"), "--tcp", "127.0.0.1:%d" % sim_port, "--start",
                        "2025-04-02T05:00", "--speed", "0.001",
                        "--slave", "1:sensecap-s-ec-01", "--slave", "3:epever-tracer"],
                       os.path.join(work, "sim.log"))
    harness.wait_port(sim_port, 10, sim)
    res = sh(QEMU + [prog, "--config", once_config(work, root, sim_port, "arm64"), "--once"], timeout=60)
    try:
        doc = json.loads(res.stdout)
    except ValueError:
        doc = None
    R.check(res.returncode == 0 and doc is not None,
            "arm64 agri-station --once under qemu-aarch64 against agri-sim: exit 0, JSON (rc=%d %s)"
            % (res.returncode, res.stderr.strip()[-300:]))
    host_root = os.path.join(work, "root-host-profiles")
    os.makedirs(os.path.join(host_root, "usr", "share", "agri"))
    os.symlink(harness.PROFILES, os.path.join(host_root, "usr", "share", "agri", "profiles"))
    hres = sh([harness.bin_path("agri-station"), "--config", once_config(work, host_root, sim_port, "host"),
               "--once"], timeout=60)
    sim.stop()
    if not doc:
        return
    rd = {(r["sensor"], r["metric"]): r for r in doc.get("readings", [])}
    R.check(doc.get("station") == "DT-PKG1" and all(r.get("q") == "ok" for r in rd.values())
            and (("sonde1", "conductivity") in rd or ("sonde1", "specific_conductance") in rd)
            and ("sonde1", "salinity") in rd
            and ("solar", "battery_voltage") in rd,
            "arm64 --once reads the sonde (with PSS-78 salinity) and the solar controller, all ok (%d readings)"
            % len(rd))
    try:
        hdoc = json.loads(hres.stdout)
    except ValueError:
        hdoc = {}
    hrd = {(r["sensor"], r["metric"]): r for r in hdoc.get("readings", [])}
    diff = [k for k in hrd if k not in rd or abs(hrd[k]["value"] - rd[k]["value"]) > 1e-3 * max(1, abs(hrd[k]["value"]))]
    R.check(hrd and not diff and set(hrd) == set(rd),
            "arm64 and amd64 builds read the same values from the nearly frozen simulator (differ: %s)" % diff)


def arm64_gateway(work, prog):
    """The packaged arm64 agri-gateway under qemu against a real mosquitto:
    two python stations publish 10 batches each; all are acked and stored."""
    d = os.path.join(work, "gw-arm64")
    os.makedirs(d)
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    db = os.path.join(d, "agri.db")
    gw = harness.Proc(QEMU + [prog, "--config", gp.write_config(d, mq.port, db=db), "--log-level", "info"],
                      os.path.join(d, "gw.log"))
    stations = []
    try:
        harness.wait_for(lambda: "subscribed topics" in gw.log_text() or gw.poll() is not None, 30,
                         what="arm64 gateway subscribed")
        stations = [gp.Station(mq.port, "DT-ARM%d" % i) for i in range(2)]
        for s in stations:
            s.connected.wait(10)
        for seq in range(1, 11):
            for s in stations:
                s.publish(seq, gp.batch(s.name, seq, 5))
        harness.wait_for(lambda: all(not s.pending() for s in stations) or gw.poll() is not None, 30,
                         what="arm64 gateway acks")
    except TimeoutError as e:
        print("arm64 gateway: %s" % e)
    n = gp.query(db, "SELECT count(*) FROM v_readings")[0][0] if os.path.exists(db) else 0
    acked = bool(stations) and all(not s.pending() for s in stations)
    for s in stations:
        s.close()
    rc = gw.stop()
    mq.stop()
    R.check(acked and n == 100 and rc == 0,
            "arm64 agri-gateway under qemu-aarch64 with mosquitto: 20 batches acked, %d/100 readings stored, "
            "stop rc=%s (%s)" % (n, rc, gw.log_tail(5).strip().replace("\n", " | ")[-400:]))


def main():
    for tool in ("dpkg-deb", "cpack"):
        if not shutil.which(tool):
            print("SKIP test_packages: %s is not installed (Debian: dpkg, cmake)" % tool)
            sys.exit(77)
    work = harness.tmpdir("agri-pkg-")
    host_packages(work)
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if not shutil.which(t)]
    if missing or not os.path.isdir("/usr/aarch64-linux-gnu"):
        print("SKIP arm64 packages: the cross toolchain is missing (%s; scripts/install-deps installs "
              "gcc-aarch64-linux-gnu, qemu-user and the :arm64 libraries)" % (", ".join(missing) or
                                                                           "/usr/aarch64-linux-gnu"))
        if R.failed:
            R.done()
        print("test_packages: %d passed, %d failed (arm64 skipped)" % (R.passed, R.failed))
        sys.exit(77)
    arm64_packages(work)
    R.done()


if __name__ == "__main__":
    main()
