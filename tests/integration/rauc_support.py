"""Helpers for the over-the-air update tests (test_update_*.py, docs/update.md):
Debian's RAUC 1.8 for real, one emulated board per station.

    pki = ReleasePki(work)                 # a release CA and signing certificate
    img = rootfs_image(work, "0.2.0", bins) # an ext4 root filesystem image
    b = bundle(work, img, "agri-test", "0.2.0", pki)
    board = Board(work, "ST1", "agri-test", pki.ca)
    board.install_slot("A", img0, "0.1.0")
    board.power_on()                       # bootloader -> rauc service with that slot
    bin = board.station_bin()              # the agri-station the booted slot carries

A Board is a private dbus-daemon (its own config and socket:
DBUS_SYSTEM_BUS_ADDRESS in board.env), `rauc service` with
--override-boot-slot (standing in for rauc.slot= on the kernel command line),
two slot files A and B, and bootloader=custom with rauc_backend.py (boot
order, boot counting). Plain bundles: verity needs device-mapper, which the
boards have and this machine may not. The station's reboot command writes
board.dir/reboot; OtaStack.reboot() then does what a reboot does.

OtaStack puts it together: the shipped broker (TLS, per-station accounts and
ACL), the real gateway over HTTPS serving bundles to stations, agri-sim, a
technician's key, and N stations each on its own board."""
import hashlib
import json
import os
import shutil
import subprocess
import time

import broker_support
import gateway_peer
import harness as H
import station_support as S

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "rauc_backend.py")
COMPATIBLE = "agri-it-board"


def have_rauc():
    """True when rauc, dbus-daemon, mksquashfs and the loop devices RAUC
    mounts plain bundles with are there (root)."""
    return (os.geteuid() == 0 and shutil.which("rauc") and shutil.which("dbus-daemon")
            and shutil.which("mksquashfs") and shutil.which("mkfs.ext4")
            and shutil.which("debugfs") and os.path.exists("/dev/loop-control"))


def run(argv, env=None, check=True, timeout=120):
    r = H.run(argv, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(argv), r.returncode, r.stdout,
                                                     r.stderr))
    return r


class ReleasePki:
    """A release CA and a signing certificate under it (no codeSigning
    extendedKeyUsage: RAUC 1.8 checks it only with check-purpose=codesign)."""

    def __init__(self, work, name="release"):
        self.dir = os.path.join(work, "pki-" + name)
        os.makedirs(self.dir)
        d = self.dir
        self.ca = os.path.join(d, "ca.pem")
        self.cert = os.path.join(d, "signing.pem")
        self.key = os.path.join(d, "signing.key")
        ca_key = os.path.join(d, "ca.key")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", ca_key, "-out", self.ca, "-days", "3650",
             "-subj", "/O=agri/CN=%s CA" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        csr = os.path.join(d, "signing.csr")
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", self.key, "-out", csr, "-subj", "/O=agri/CN=%s signing" % name])
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key,
             "-CAcreateserial", "-out", self.cert, "-days", "3650", "-extfile", ext])


def rootfs_image(work, name, files, pad_mb=0, size_mb=24):
    """An ext4 root filesystem image (mkfs.ext4 -d, no mount) holding
    files {path in the rootfs: host path or bytes}; pad_mb of random bytes
    in /usr/share/agri/pad so the bundle has some weight to download."""
    root = os.path.join(work, "rootfs-" + name)
    for rel, src in files.items():
        dst = os.path.join(root, rel.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if isinstance(src, bytes):
            with open(dst, "wb") as f:
                f.write(src)
            os.chmod(dst, 0o755)
        else:
            shutil.copy2(src, dst)
    if pad_mb:
        pad = os.path.join(root, "usr/share/agri/pad")
        os.makedirs(os.path.dirname(pad), exist_ok=True)
        with open(pad, "wb") as f:
            f.write(os.urandom(pad_mb << 20))
    img = os.path.join(work, "rootfs-%s.ext4" % name)
    run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-d", root, img, "%dM" % size_mb])
    return img


def bundle(work, image, compatible, version, pki, name=None, hooks=None):
    """A plain RAUC bundle of image for slot class rootfs, signed by pki.
    hooks: a shell script run as the image's post-install hook."""
    name = name or "%s-%s" % (compatible, version)
    d = os.path.join(work, "bundle-" + name)
    os.makedirs(d)
    shutil.copy(image, os.path.join(d, "rootfs.ext4"))
    manifest = ["[update]", "compatible=%s" % compatible, "version=%s" % version, "",
                "[bundle]", "format=plain", ""]
    if hooks:
        with open(os.path.join(d, "hook.sh"), "w") as f:
            f.write(hooks)
        os.chmod(os.path.join(d, "hook.sh"), 0o755)
        manifest += ["[hooks]", "filename=hook.sh", ""]
    manifest += ["[image.rootfs]", "filename=rootfs.ext4"]
    if hooks:
        manifest += ["hooks=post-install"]
    with open(os.path.join(d, "manifest.raucm"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    out = os.path.join(work, name + ".raucb")
    run(["rauc", "bundle", "--cert", pki.cert, "--key", pki.key, d, out])
    return out


DBUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


class Board:
    """One emulated station board: slots A and B, the bootloader state, a
    private system bus and the rauc service."""

    def __init__(self, work, name, compatible, keyring, slot_mb=32):
        self.name = name
        self.dir = os.path.join(work, "board-" + name)
        os.makedirs(self.dir)
        self.slots = {s: os.path.join(self.dir, "slot%s.img" % s) for s in "AB"}
        for p in self.slots.values():
            with open(p, "wb") as f:
                f.truncate(slot_mb << 20)
        self.boot_state = os.path.join(self.dir, "boot.json")
        self.sock = os.path.join(self.dir, "bus.sock")
        self.env = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + self.sock}
        self.reboot_flag = os.path.join(self.dir, "reboot")
        self.reboot_cmd = ["/bin/sh", "-c", "echo requested > '%s'" % self.reboot_flag]
        backend = os.path.join(self.dir, "bootloader")
        with open(backend, "w") as f:
            f.write("#!/bin/sh\nexec /usr/bin/python3 '%s' '%s' \"$@\"\n" % (BACKEND, self.boot_state))
        os.chmod(backend, 0o755)
        self.backend = backend
        self.statusfile = os.path.join(self.dir, "rauc.status")
        self.conf = os.path.join(self.dir, "system.conf")
        with open(self.conf, "w") as f:
            f.write("[system]\ncompatible=%s\nbootloader=custom\nstatusfile=%s\n"
                    "mountprefix=%s\n\n"
                    "[keyring]\npath=%s\n\n[handlers]\nbootloader-custom-backend=%s\n\n"
                    "[slot.rootfs.0]\ndevice=%s\ntype=ext4\nbootname=A\n\n"
                    "[slot.rootfs.1]\ndevice=%s\ntype=ext4\nbootname=B\n"
                    % (compatible, self.statusfile, os.path.join(self.dir, "mnt"), keyring,
                       backend, self.slots["A"], self.slots["B"]))
        os.makedirs(os.path.join(self.dir, "mnt"))
        with open(os.path.join(self.dir, "dbus.conf"), "w") as f:
            f.write(DBUS_CONF % self.sock)
        self.bus = None
        self.rauc = None
        self.booted = None
        self.boots = []

    def install_slot(self, slot, image, version):
        """The factory image: image written into slot, its version in RAUC's
        status file (as scripts/build-image seeds it)."""
        with open(image, "rb") as src, open(self.slots[slot], "r+b") as dst:
            shutil.copyfileobj(src, dst)
        idx = "0" if slot == "A" else "1"
        with open(self.statusfile, "a") as f:
            f.write("[slot.rootfs.%s]\nbundle.compatible=%s\nbundle.version=%s\nstatus=ok\n\n"
                    % (idx, COMPATIBLE, version))

    def start_bus(self):
        if self.bus and self.bus.poll() is None:
            return
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.bus = H.Proc(["dbus-daemon", "--nofork", "--nopidfile",
                           "--config-file=" + os.path.join(self.dir, "dbus.conf")],
                          os.path.join(self.dir, "dbus.log"))
        H.wait_for(lambda: os.path.exists(self.sock), 10, what="%s: dbus socket" % self.name)

    def power_on(self, slot=None):
        """What a boot does: the bootloader picks a slot (or slot), the
        kernel tells RAUC (--override-boot-slot), the rauc service starts."""
        self.start_bus()
        if slot is None:
            slot = run([self.backend, "boot"]).stdout.strip()
        self.booted = slot
        self.boots.append(slot)
        self.rauc = H.Proc(["rauc", "service", "-c", self.conf, "--override-boot-slot=" + slot],
                           os.path.join(self.dir, "rauc-service.log"), env=self.env)

        def up():
            if self.rauc.poll() is not None:
                raise RuntimeError("rauc service exited: " + self.rauc.describe())
            return self.rauc_cli("status", "--output-format=json", check=False).returncode == 0
        H.wait_for(up, 20, interval=0.2, what="%s: rauc service" % self.name)
        return slot

    def rauc_cli(self, *args, check=True):
        return run(["rauc"] + list(args), env=self.env, check=check)

    def status(self):
        return json.loads(self.rauc_cli("status", "--detailed", "--output-format=json").stdout)

    def stop_rauc(self, kill=False):
        if self.rauc:
            if kill:
                self.rauc.kill9()
            else:
                self.rauc.stop()
            self.rauc = None
        self.unmount_all()

    def unmount_all(self):
        """What a power cut does to mounts: rauc's mounts under this board
        (the bundle, a slot it was writing) are gone, their loop devices
        detached."""
        with open("/proc/self/mountinfo") as f:
            points = [ln.split()[4] for ln in f]
        for mp in reversed(points):
            if mp.startswith(self.dir + "/"):
                subprocess.run(["umount", "-l", mp], capture_output=True)
        r = subprocess.run(["losetup", "-a"], capture_output=True, text=True)
        for ln in r.stdout.splitlines():
            dev, _, rest = ln.partition(":")
            if self.dir + "/" in rest:
                subprocess.run(["losetup", "-d", dev], capture_output=True)

    def stop(self):
        self.stop_rauc()
        if self.bus:
            self.bus.stop()
            self.bus = None

    def boot_log(self):
        try:
            with open(self.boot_state + ".log") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def boot_info(self):
        with open(self.boot_state) as f:
            return json.load(f)

    def station_bin(self, slot=None):
        """The agri-station the slot carries (its /usr/bin, read with debugfs:
        no mount)."""
        slot = slot or self.booted
        out = os.path.join(self.dir, "root-%s-%d" % (slot, len(self.boots)))
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        run(["debugfs", "-R", "rdump /usr/bin %s" % out, self.slots[slot]])
        path = os.path.join(out, "bin", "agri-station")
        if not os.path.exists(path):
            raise RuntimeError("slot %s has no /usr/bin/agri-station" % slot)
        return path

    def slot_bytes(self, slot, n=1 << 20):
        with open(self.slots[slot], "rb") as f:
            return f.read(n)


def station_rootfs_files(extra=None):
    files = {"/usr/bin/agri-station": H.bin_path("agri-station")}
    files.update(extra or {})
    return files


def broken_network_files():
    """A release whose station cannot reach the broker: its agri-station
    runs the real binary in a network namespace of its own (no network)."""
    wrapper = (b"#!/bin/sh\nexec unshare -n \"$(dirname \"$0\")/agri-station.real\" \"$@\"\n")
    return {"/usr/bin/agri-station": wrapper,
            "/usr/bin/agri-station.real": H.bin_path("agri-station")}


class OtaStack:
    """Broker, gateway (HTTPS, bundles), agri-sim and n stations on boards."""

    def __init__(self, work, n, health_timeout_s=20, download_kbps=0, names=None):
        self.work = work
        self.names = names or ["OTA-%d" % (i + 1) for i in range(n)]
        self.pki = ReleasePki(work)
        self.broker = broker_support.ShippedBroker(work)
        self.passwords = {s: self.broker.provision(s) for s in self.names}
        self.gw_pass = self.broker.hub_account("gateway")
        self.tech_pass = self.broker.hub_account("agrictl")
        with open(os.path.join(work, "agrictl.pass"), "w") as f:
            f.write(self.tech_pass)
        self.broker.start()
        self.tech_key, self.tech_pub = S.make_technician(os.path.join(work, "keys"), "lan")
        self.bundles = os.path.join(work, "bundles")
        os.makedirs(self.bundles)
        # The gateway: loopback MQTT with its hub account, HTTPS with the
        # broker's server certificate, bundles for the stations' accounts.
        gwd = os.path.join(work, "gw")
        os.makedirs(gwd)
        with open(os.path.join(gwd, "gw.pass"), "w") as f:
            f.write(self.gw_pass)
        self.http_port = H.free_port()
        cfg = {"broker": {"url": "tcp://127.0.0.1:%d" % self.broker.loop_port,
                          "client_id": "agri-gateway-1", "username": "gateway",
                          "password_file": "gw.pass", "keepalive_s": 10},
               "db": {"path": "agri.db", "retention_days": 400},
               "http": {"listen": "127.0.0.1:%d" % self.http_port,
                        "cert_file": os.path.join(self.broker.certs, "server.crt"),
                        "key_file": os.path.join(self.broker.certs, "server.key"),
                        "bundles_dir": self.bundles,
                        "stations_passwd_file": self.broker.passwd}}
        self.gw_db = os.path.join(gwd, "agri.db")
        self.gw = gateway_peer.Gateway(gwd, H.write_json(os.path.join(gwd, "gateway.json"), cfg))
        self.gw.start()
        H.wait_port(self.http_port, 10, self.gw.proc)
        # One simulated sensor per station, on one Modbus TCP server.
        self.sim_port = H.free_port()
        self.sim = S.start_sim(work, "sim", ["%d:sensecap-s-ec-01" % (i + 1)
                                             for i in range(len(self.names))],
                               tcp_port=self.sim_port)
        self.img_a = rootfs_image(work, "0.1.0", station_rootfs_files(
            {"/etc/agri-release": b"0.1.0\n"}))
        self.boards, self.stations, self.configs = {}, {}, {}
        self.health_timeout_s = health_timeout_s
        self.download_kbps = download_kbps
        for i, name in enumerate(self.names):
            self._station_files(i, name)

    def _station_files(self, i, name):
        b = Board(self.work, name, COMPATIBLE, self.pki.ca)
        b.install_slot("A", self.img_a, "0.1.0")
        self.boards[name] = b
        etc = os.path.join(b.dir, "data", "etc", "agri")  # the data partition
        os.makedirs(etc)
        with open(os.path.join(etc, "station.pass"), "w") as f:
            f.write(self.passwords[name])
        shutil.copy(self.broker.ca, os.path.join(etc, "ca.crt"))
        S.install_technician(os.path.join(etc, "station.json"), self.tech_pub)
        cfg = S.station_config(
            b.dir, 0, [{"name": "lan", "tcp": {"host": "127.0.0.1", "port": self.sim_port},
                        "timeout_ms": 1000}],
            [{"name": "sonde1", "bus": "lan", "slave": i + 1, "profile": "sensecap-s-ec-01",
              "interval_s": 1}],
            station=name, state_dir=os.path.join(b.dir, "data", "state"))
        cfg["broker"] = {"url": "ssl://localhost:%d" % self.broker.tls_port, "username": name,
                         "password_file": "station.pass", "ca_file": "ca.crt", "keepalive_s": 5}
        self.configs[name] = H.write_json(os.path.join(etc, "station.json"), cfg)
        H.write_json(os.path.join(etc, "update.json"),
                     {"hub_url": "https://localhost:%d" % self.http_port,
                      "health_timeout_s": self.health_timeout_s,
                      "download_kbps": self.download_kbps,
                      "reboot_command": b.reboot_cmd})

    def start_station(self, name, slot=None):
        """Powers the board on and starts the station its booted slot carries."""
        b = self.boards[name]
        b.power_on(slot)
        binary = b.station_bin()
        log = os.path.join(b.dir, "station.log")
        self.stations[name] = H.Proc([binary, "--config", self.configs[name], "--log-level",
                                      "info"], log, env=b.env)
        return self.stations[name]

    def start_all(self):
        for n in self.names:
            self.start_station(n)
        for n in self.names:
            self.wait_status(n, lambda s: s.get("state") == "online" and s.get("slot") == "A",
                             30, "online on slot A")

    def reboot(self, name, kill=False):
        """A reboot (asked for by the station, or a power cut with kill):
        the station and rauc stop, the bootloader picks a slot, both start."""
        b = self.boards[name]
        p = self.stations.pop(name)
        if kill:
            p.kill9()
        else:
            p.stop(10)
        b.stop_rauc(kill=kill)
        if os.path.exists(b.reboot_flag):
            os.unlink(b.reboot_flag)
        return self.start_station(name)

    def wait_reboot_request(self, name, timeout):
        b = self.boards[name]
        H.wait_for(lambda: os.path.exists(b.reboot_flag) or self._dead(name), timeout,
                   interval=0.2, what="%s asks for a reboot" % name)

    def _dead(self, name):
        p = self.stations.get(name)
        if p is not None and p.poll() is not None:
            raise RuntimeError("station exited: " + p.describe())
        return False

    def status(self, name):
        """The station's retained status, read by an independent client on
        the hub listener (agrictl's account)."""
        import paho.mqtt.client as mqtt
        got = {}
        c = mqtt.Client(client_id="it-status-%d" % os.getpid(), clean_session=True)
        c.username_pw_set("agrictl", self.tech_pass)
        c.on_message = lambda cl, u, m: got.__setitem__("s", m.payload)
        c.connect("127.0.0.1", self.broker.loop_port, 10)
        c.subscribe("agri/v1/%s/status" % name, 1)
        t = time.time() + 3
        while time.time() < t and "s" not in got:
            c.loop(0.1)
        c.disconnect()
        return json.loads(got["s"]) if got.get("s") else {}

    def wait_status(self, name, pred, timeout, what):
        last = {}

        def ok():
            nonlocal last
            self._dead(name)
            last = self.status(name)
            return pred(last)
        try:
            H.wait_for(ok, timeout, interval=0.5, what="%s %s" % (name, what))
        except TimeoutError:
            raise TimeoutError("%s: %s; last status %s\n%s" % (name, what, last,
                                                               self.stations[name].log_tail(15)
                                                               if name in self.stations else ""))
        return last

    def agrictl(self, *args, timeout=300):
        argv = [H.bin_path("agrictl")] + list(args)
        return H.run(argv, timeout=timeout)

    def push_args(self, bundle_path, *rest, keyring=True):
        return ["update", "push", bundle_path, "--broker",
                "tcp://127.0.0.1:%d" % self.broker.loop_port, "--username", "agrictl",
                "--password-file", os.path.join(self.work, "agrictl.pass"),
                "--key", self.tech_key, "--bundles-dir", self.bundles] + \
            (["--keyring", self.pki.ca] if keyring else []) + list(rest)

    def push_async(self, bundle_path, *rest, keyring=True):
        return H.Proc([H.bin_path("agrictl")] + self.push_args(bundle_path, *rest,
                                                               keyring=keyring),
                      os.path.join(self.work, "push-%d.log" % int(time.time() * 1000)))

    def publish_command(self, name, doc, key=None, by="lan", raw=None):
        """A hand-made update command, signed like agrictl signs it
        (docs/update.md), published retained with agrictl's account."""
        import paho.mqtt.client as mqtt
        msg = raw if raw is not None else S.sign_config(doc, key or self.tech_key, by)
        c = mqtt.Client(client_id="it-cmd-%d" % os.getpid(), clean_session=True)
        c.username_pw_set("agrictl", self.tech_pass)
        c.connect("127.0.0.1", self.broker.loop_port, 10)
        c.loop_start()
        c.publish("agri/v1/%s/update" % name, msg, qos=1, retain=True).wait_for_publish(10)
        c.loop_stop()
        c.disconnect()

    def served(self):
        """The gateway's "bundle served" log lines."""
        return [ln for ln in self.gw.proc.log_text().splitlines() if "bundle served" in ln]

    def readings_stored(self):
        rows = gateway_peer.query(self.gw_db,
                                  "SELECT st.name, count(*) FROM readings r JOIN series se"
                                  " ON r.series_id = se.id JOIN stations st ON st.id = se.station_id"
                                  " GROUP BY st.name")
        return dict(rows)

    def stop(self):
        for n, p in list(self.stations.items()):
            p.stop(10)
        for b in self.boards.values():
            b.stop()
        self.sim.stop()
        self.gw.stop()
        self.broker.stop()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def command(station, cmd_id, bundle_path, name, compatible=COMPATIBLE, version="0.2.0"):
    """An update command's document (docs/update.md) for bundle_path served
    as name."""
    return {"v": 1, "station": station, "id": cmd_id, "version": version, "bundle": name,
            "size": os.path.getsize(bundle_path), "sha256": sha256(bundle_path),
            "compatible": compatible}
