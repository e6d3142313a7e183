#!/usr/bin/env python3
"""Issue 23 acceptance: updates that must be refused are refused and
reported, and the old version keeps running (docs/update.md, "Refusals"):

- a bundle signed by a key the station's RAUC keyring does not trust;
- a bundle for another board (compatible);
- a truncated download; a corrupted download (same size, other bytes);
- a command signed by a technician the station does not know.

After each: the status says failed with the reason, the same station
process runs on slot A with system 0.1.0, slot B was never written (its
first MiB is still zeros) and never made primary."""
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import rauc_support as R  # noqa: E402
import station_support as S  # noqa: E402

NAME = "OTA-R1"


def main():
    t = H.Result("update_refused")
    if not R.have_rauc():
        print("SKIP: needs root, rauc, dbus-daemon, mksquashfs, debugfs, loop devices")
        return 77
    work = H.tmpdir("agri-otar-")
    t0 = time.time()
    stack = R.OtaStack(work, 1, names=[NAME])
    try:
        stack.start_all()
        board = stack.boards[NAME]
        proc = stack.stations[NAME]
        zeros = b"\0" * (1 << 20)
        img = R.rootfs_image(work, "0.2.0", R.station_rootfs_files(), pad_mb=1)

        def untouched(what):
            st = stack.status(NAME)
            t.check(proc.poll() is None and NAME in stack.stations and
                    stack.stations[NAME] is proc, "%s: the same station process runs" % what)
            t.check(st.get("slot") == "A" and st.get("system") == "0.1.0",
                    "%s: still slot A, system 0.1.0 (%s/%s)" % (what, st.get("slot"),
                                                                 st.get("system")))
            t.check(board.slot_bytes("B") == zeros, "%s: slot B never written" % what)
            t.check(board.boot_info()["order"][0] == "A", "%s: slot A stays primary" % what)

        def failed_with(what, needle, timeout=60):
            st = stack.wait_status(NAME, lambda s: s.get("update", {}).get("state") == "failed"
                                   and needle in s["update"].get("error", ""),
                                   timeout, "reports failed: %s (%s)" % (needle, what))
            t.check(True, "%s: reported: %s" % (what, st["update"].get("error")))
            return st

        # 1. Signed by a key the keyring does not know: agrictl without
        # --keyring sends it; the station's rauc refuses it.
        rogue = R.ReleasePki(work, "rogue")
        b1 = R.bundle(work, img, R.COMPATIBLE, "0.2.0", rogue, name="rogue")
        r = stack.agrictl(*stack.push_args(b1, "--station", NAME, "--timeout-s", "60",
                                           keyring=False))
        t.check(r.returncode == 1, "push of a rogue bundle exits 1 (%d)" % r.returncode)
        failed_with("unknown signing key", "install: signature verification failed")
        untouched("unknown key")
        # agrictl itself refuses it with the keyring.
        r = stack.agrictl(*stack.push_args(b1, "--station", NAME, "--timeout-s", "30"))
        t.check(r.returncode == 1 and "not a bundle that verifies" in r.stderr + r.stdout,
                "agrictl --keyring refuses the rogue bundle before sending (%s)" % r.stderr[-200:])

        # 2. For another board: refused before any download.
        b2 = R.bundle(work, img, "agri-other-board", "0.2.0", stack.pki, name="other")
        served = len(stack.served())
        r = stack.agrictl(*stack.push_args(b2, "--station", NAME, "--timeout-s", "60"))
        t.check(r.returncode == 1, "push of another board's bundle exits 1")
        failed_with("wrong compatible", "compatible: the bundle is for \"agri-other-board\"")
        t.check(len(stack.served()) == served, "nothing was downloaded for another board")
        untouched("wrong compatible")
        # ...and rauc refuses it too when the command lies about compatible.
        shutil.copy(b2, os.path.join(stack.bundles, "liar.raucb"))
        stack.publish_command(NAME, R.command(NAME, int(time.time() * 1000), b2, "liar.raucb"))
        failed_with("compatible hidden from the station", "install: Installation error: Compatible mismatch")
        untouched("compatible hidden from the station")

        # 3. Truncated on the hub: the command's size and SHA-256 are the
        # whole bundle's, the hub serves half.
        good = R.bundle(work, img, R.COMPATIBLE, "0.2.0", stack.pki, name="good")
        half = os.path.join(stack.bundles, "half.raucb")
        with open(good, "rb") as f, open(half, "wb") as g:
            g.write(f.read(os.path.getsize(good) // 2))
        stack.publish_command(NAME, R.command(NAME, int(time.time() * 1000), good, "half.raucb"))
        failed_with("truncated download", "truncated")
        untouched("truncated download")

        # 4. Corrupted: same size, bytes changed in the middle.
        bad = os.path.join(stack.bundles, "bad.raucb")
        shutil.copy(good, bad)
        with open(bad, "r+b") as f:
            f.seek(os.path.getsize(good) // 2)
            f.write(b"\xff" * 4096)
        stack.publish_command(NAME, R.command(NAME, int(time.time() * 1000), good, "bad.raucb"))
        failed_with("corrupted download", "SHA-256")
        t.check(not os.path.exists(os.path.join(board.dir, "data/state/update/bundle.raucb")) and
                not os.path.exists(os.path.join(board.dir, "data/state/update/bundle.raucb.part")),
                "the corrupted download is deleted")
        untouched("corrupted download")

        # 5. A command signed by a technician the station does not trust.
        key, _ = S.make_technician(os.path.join(work, "keys2"), "mallory")
        shutil.copy(good, os.path.join(stack.bundles, "good.raucb"))
        stack.publish_command(NAME, R.command(NAME, int(time.time() * 1000), good, "good.raucb"),
                              key=key, by="mallory")
        failed_with("unknown technician", "unknown technician \"mallory\"")
        untouched("unknown technician")
        print("refusal cases: %.1f s" % (time.time() - t0))
    finally:
        stack.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
