"""agri-gateway started while its database's disk is full (the soak's
"hub disk full" with a gateway restart inside it): it does not exit (under
systemd five quick restarts in ten seconds stop the unit for good, long
before an operator frees the disk), it says why and when it tries again,
and it starts by itself once space frees: then a station's batch is stored
and acked. SIGTERM while it waits ends it cleanly.
Needs mount(8) permission (root); skipped with a message otherwise."""
import atexit
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402

d = harness.tmpdir()
fs = os.path.join(d, "fs")
os.makedirs(fs)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", fs],
                  capture_output=True).returncode != 0:
    print("SKIP test_gateway_start_diskfull: cannot mount a tmpfs here (needs root)")
    sys.exit(0)
atexit.register(lambda: subprocess.run(["umount", "-l", fs], capture_output=True))


def fill():
    """Fills the tmpfs to the last byte."""
    with open(os.path.join(fs, "filler"), "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass


R = harness.Result("test_gateway_start_diskfull")
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
cfg = gp.write_config(d, mq.port, db="fs/agri.db")

# 1. A full disk, a gateway started on it: it waits, it does not exit.
fill()
gw = gp.Gateway(d, cfg).start(wait=False)
harness.wait_for(lambda: "trying again" in gw.proc.log_text() or gw.proc.poll() is not None, 15,
                 what="the gateway's first try")
time.sleep(3)
log = gw.proc.log_text()
R.check(gw.alive(), "started on a full disk, the gateway is still running 3 s later (%s)"
        % (gw.proc.describe() if not gw.alive() else "running"))
line = [ln for ln in log.splitlines() if "trying again" in ln][:1]
R.check(line and "cannot open the database" in line[0] and "agri.db" in line[0],
        "it says which database, why and when it tries again: %r" % line)

# 2. Space comes back: it starts by itself and stores a station's batch.
os.unlink(os.path.join(fs, "filler"))
t = time.monotonic()
ok = True
try:
    gw.wait_subscribed(timeout=40)
except Exception as e:  # noqa: BLE001
    ok = False
    print("not started: %s" % e)
R.check(ok, "once space frees it starts by itself (%.1f s after)" % (time.monotonic() - t))
if ok:
    st = gp.Station(mq.port, "SD01", ack_timeout=1.0)
    st.connected.wait(5)
    st.publish(1, gp.batch("SD01", 1, 6))
    harness.wait_for(lambda: st.pending() == 0, 15, what="the batch acked")
    n = gp.query(os.path.join(fs, "agri.db"), "SELECT count(*) FROM v_readings WHERE station='SD01'")[0][0]
    R.check(n == 6, "the station's batch is stored (%d readings) and acked" % n)
    st.close()
rc = gw.stop()
R.check(rc == 0, "SIGTERM: exit 0 (%s)" % rc)

# 3. SIGTERM while it waits: a clean exit, at once.
for ext in ("", "-wal", "-shm"):
    p = os.path.join(fs, "agri.db" + ext)
    if os.path.exists(p):
        os.unlink(p)
fill()
gw2 = gp.Gateway(d, cfg, name="gw2").start(wait=False)
harness.wait_for(lambda: "trying again" in gw2.proc.log_text() or gw2.proc.poll() is not None, 15,
                 what="the second gateway's first try")
t = time.monotonic()
rc = gw2.stop()
R.check(rc == 0 and time.monotonic() - t < 2, "SIGTERM while waiting: exit 0 within 2 s (%s, %.1f s)"
        % (rc, time.monotonic() - t))
mq.stop()
R.done()
