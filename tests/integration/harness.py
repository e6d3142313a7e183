"""Test harness for integration tests: real peers, started on free ports,
waited for until they accept, stopped by pid (never killall).

Used by tests/integration/test_*.py, run by ctest with AGRI_BUILD_DIR and
AGRI_SOURCE_DIR set (or from the source tree: defaults to ./build).
Uses only Debian's python3 packages (python3-paho-mqtt, python3-pymodbus).
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("AGRI_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("AGRI_BUILD_DIR") or os.path.join(SRC, "build")
PROFILES = os.path.join(SRC, "protocols", "profiles")
# Programs can be run under an emulator (arm64 builds under qemu-aarch64):
# AGRI_EXEC_WRAPPER="qemu-aarch64 -L /" wraps those started with wrap=True
# (`-L /`, not `-L /usr/aarch64-linux-gnu`: boards/rpi-arm64/toolchain.cmake).
EXEC_WRAPPER = os.environ.get("AGRI_EXEC_WRAPPER", "").split()
# AGRI_STATION_BIN: the agri-station to test, e.g. the arm64 one while
# AGRI_BUILD_DIR is the host build. Then only that binary runs under
# AGRI_EXEC_WRAPPER; the other programs (agri-sim) are the native ones.
STATION_BIN = os.environ.get("AGRI_STATION_BIN")

_procs = []
_tmpdirs = []


def bin_path(name):
    """Path of a built program (agri-sim, agri-station, agri-gateway, agrictl)."""
    if name == "agri-station" and STATION_BIN:
        return STATION_BIN
    for sub in ("", "bin", "tools/sim", "tools/agrictl", "firmware", "gateway"):
        p = os.path.join(BUILD, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError("%s not built under %s" % (name, BUILD))


def tmpdir(prefix="agri-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited (rc=%s) before port %d opened: %s"
                               % (proc.returncode, port, proc.describe()))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("port %d did not open in %.1fs" % (port, timeout))


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))


def _argv(argv, wrap):
    """argv, under EXEC_WRAPPER when wrap (with AGRI_STATION_BIN set: only
    for that binary)."""
    argv = list(argv)
    if wrap and (not STATION_BIN or argv[0] == STATION_BIN):
        return EXEC_WRAPPER + argv
    return argv


class Proc:
    """A started process, logged to a file, stopped by pid."""

    def __init__(self, argv, log_path, env=None, wrap=False, cwd=None):
        self.argv = _argv(argv, wrap)
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(self.argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  env=e, cwd=cwd, start_new_session=True)
        self.pid = self.p.pid
        _procs.append(self)

    def poll(self):
        return self.p.poll()

    @property
    def returncode(self):
        return self.p.returncode

    def describe(self):
        return "%s (log %s):\n%s" % (" ".join(self.argv), self.log_path, self.log_tail())

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, timeout=5.0):
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        return self.p.returncode

    def kill9(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.logf.close()


def run(argv, timeout=60, wrap=False, env=None, input=None):
    """Runs a command to completion: returns CompletedProcess (text)."""
    argv = _argv(argv, wrap)
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e, input=input)


class Mosquitto:
    """A real mosquitto on a free loopback port, with persistence in its
    own directory and queue limits that never drop QoS 1 silently."""

    def __init__(self, workdir, port=None, extra_conf=""):
        self.dir = workdir
        self.port = port or free_port()
        self.extra = extra_conf
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "mosquitto.conf")

    def start(self):
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\n" % self.port)
            f.write("allow_anonymous true\n")
            f.write("persistence true\npersistence_location %s/\n" % self.dir)
            f.write("max_queued_messages 0\nmax_queued_bytes 0\nmax_inflight_messages 0\n")
            f.write("set_tcp_nodelay true\n")
            f.write("log_dest stderr\nlog_type error\nlog_type warning\n")
            f.write(self.extra)
        self.proc = Proc(["mosquitto", "-c", self.conf], os.path.join(self.dir, "mosquitto.log"))
        wait_port(self.port, 10, self.proc)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def kill9(self):
        if self.proc:
            self.proc.kill9()
            self.proc = None

    @property
    def url(self):
        return "tcp://127.0.0.1:%d" % self.port


class PtyPair:
    """Two linked pseudo-terminals (socat): a Modbus master opens .a, a
    slave (agri-sim) opens .b."""

    def __init__(self, workdir):
        self.a = os.path.join(workdir, "tty-master")
        self.b = os.path.join(workdir, "tty-slave")
        self.proc = Proc(["socat", "-d", "pty,raw,echo=0,link=%s" % self.a,
                          "pty,raw,echo=0,link=%s" % self.b],
                         os.path.join(workdir, "socat.log"))
        wait_for(lambda: os.path.exists(self.a) and os.path.exists(self.b), 5, what="socat ptys")

    def stop(self):
        self.proc.stop()


def mqtt_client(port, client_id="", clean=True):
    """A connected python3-paho-mqtt client (independent MQTT peer)."""
    import paho.mqtt.client as mqtt
    c = mqtt.Client(client_id=client_id, clean_session=clean)
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    return c


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
    return path


def _cleanup():
    for p in reversed(_procs):
        try:
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait(5)
        except Exception:
            pass
    if not os.environ.get("AGRI_KEEP_TMP"):
        for d in _tmpdirs:
            shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


def _on_signal(signum, frame):
    _cleanup()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)


class Result:
    """Counts checks; prints 'N passed, N failed' and exits non-zero on failure."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   %s" % what, flush=True)
        else:
            self.failed += 1
            print("FAIL %s" % what, flush=True)
        return cond

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed or not self.passed else 0)
