"""agri-gateway with its database on a full filesystem (a small tmpfs): no
crash, no end-to-end ack without a commit, the failure logged once, and
recovery by itself once space frees; every reading then stored once.
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
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", fs],
                  capture_output=True).returncode != 0:
    print("SKIP test_gateway_diskfull: cannot mount a tmpfs here (needs root)")
    sys.exit(0)
atexit.register(lambda: subprocess.run(["umount", "-l", fs], capture_output=True))

R = harness.Result("test_gateway_diskfull")
mq = harness.Mosquitto(os.path.join(d, "mq")).start()
gw = gp.Gateway(d, gp.write_config(d, mq.port, db="fs/agri.db")).start()
st = gp.Station(mq.port, "DF01", ack_timeout=1.0)
st.connected.wait(5)
db = os.path.join(fs, "agri.db")

for seq in range(1, 51):
    st.publish(seq, gp.batch("DF01", seq, 6))
harness.wait_for(lambda: st.pending() == 0, 20, what="first batches acked")
R.check(st.pending() == 0, "before the disk fills: acked")

# Fill the filesystem.
subprocess.run(["dd", "if=/dev/zero", "of=" + os.path.join(fs, "filler"), "bs=16k"], capture_output=True)
acked_before = set(st.acked)
seq = 51
deadline = time.time() + 30
while time.time() < deadline and "cannot store" not in gw.proc.log_text():
    for _ in range(50):
        st.publish(seq, gp.batch("DF01", seq, 20, sensor="big%d" % (seq % 7)))
        seq += 1
    time.sleep(0.2)
R.check("cannot store" in gw.proc.log_text(), "the full disk is noticed (after %d batches)" % (seq - 51))
time.sleep(3)
R.check(gw.alive(), "gateway keeps running on a full disk")
# No ack without a commit: every acked batch's readings are in the database.
acked = set(st.acked)
stored_seqs = set()
for (v,) in gp.query(db, "SELECT DISTINCT value FROM v_readings WHERE sensor LIKE 'big%' OR sensor = 's1'"):
    stored_seqs.add(int(v))
R.check(acked <= stored_seqs | acked_before, "no ack without commit (%d acked, %d stored)" % (len(acked), len(stored_seqs)))
R.check(st.pending() > 0, "batches wait unacked while the disk is full (%d)" % st.pending())
R.check(gw.proc.log_text().count("cannot store") == 1, "logged once")

os.unlink(os.path.join(fs, "filler"))
last = seq - 1
harness.wait_for(lambda: st.pending() == 0, 60, 0.5, what="recovery")
R.check(st.pending() == 0, "recovered by itself: every batch acked")
R.check("storing again" in gw.proc.log_text(), "recovery logged")
n, distinct = gp.query(db, "SELECT count(*), count(DISTINCT station||sensor||metric||ts) FROM v_readings")[0]
want = 50 * 6 + (last - 50) * 20
R.check(n == distinct == want, "every reading stored exactly once (%d of %d)" % (n, want))
R.check(gw.stop() == 0, "gateway exits 0")
st.close()
mq.stop()
R.done()
