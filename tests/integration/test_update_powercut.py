#!/usr/bin/env python3
"""Issue 23 acceptance: power cuts during an update (docs/update.md,
"Power cuts"). SIGKILL of the station and of the rauc service:

1. during the download (rate-limited by update.json's download_kbps): after
   the power comes back the station boots slot A and the download goes on
   from the bytes on disk (a Range request: the gateway serves from N > 0);
2. during the install: a post-install hook in the bundle holds rauc after
   slot B is written but before it is activated; the cut there leaves slot B
   marked bad and A primary, so the board boots A (the half-installed slot is
   never activated); the station installs again from its verified bundle,
   reboots into B, passes its health check: good."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import rauc_support as R  # noqa: E402

NAME = "OTA-P1"
KBPS = 512


def main():
    t = H.Result("update_powercut")
    if not R.have_rauc():
        print("SKIP: needs root, rauc, dbus-daemon, mksquashfs, debugfs, loop devices")
        return 77
    work = H.tmpdir("agri-otap-")
    t0 = time.time()
    stack = R.OtaStack(work, 1, names=[NAME], download_kbps=KBPS)
    try:
        stack.start_all()
        b = stack.boards[NAME]
        upd = os.path.join(b.dir, "data", "state", "update")
        part = os.path.join(upd, "bundle.raucb.part")
        hold = os.path.join(b.dir, "hold")
        ran = os.path.join(b.dir, "hook-ran")
        hook = ("#!/bin/sh\ncase \"$1\" in\nslot-post-install)\n  touch '%s'\n"
                "  while [ -e '%s' ]; do sleep 0.2; done;;\nesac\nexit 0\n" % (ran, hold))
        img = R.rootfs_image(work, "0.2.0", R.station_rootfs_files(), pad_mb=3)
        bundle = R.bundle(work, img, R.COMPATIBLE, "0.2.0", stack.pki, hooks=hook)
        size = os.path.getsize(bundle)
        open(hold, "w").close()
        t1 = time.time()
        push = stack.push_async(bundle, "--station", NAME, "--timeout-s", "240")

        # 1. Power cut during the download.
        H.wait_for(lambda: os.path.exists(part) and os.path.getsize(part) > size // 4, 60,
                   interval=0.1, what="a quarter downloaded")
        cut_at = os.path.getsize(part)
        stack.reboot(NAME, kill=True)
        t.check(b.booted == "A", "after the cut during the download the board boots A")
        kept = os.path.getsize(part)
        t.check(kept >= cut_at, "the bytes downloaded before the cut are kept (%d)" % kept)
        H.wait_for(lambda: os.path.exists(ran), 90, interval=0.2,
                   what="the download finished and rauc is installing")
        t_dl = time.time() - t1
        log = stack.stations[NAME].log_text()
        m = re.search(r"download resumed from=(\d+)", log)
        t.check(m and int(m.group(1)) >= cut_at, "the download resumed from %s" %
                (m.group(1) if m else "?"))
        froms = [int(x) for x in re.findall(r"bundle=\S+ from=(\d+)", "\n".join(stack.served()))]
        t.check(len(froms) >= 2 and froms[0] == 0 and froms[-1] > 0,
                "the gateway served a Range from byte %s after the cut" % froms)
        t.check(sum(froms[1:]) < size, "the resumed download did not start over")

        # 2. Power cut during the install: slot B written, not activated.
        t.check(b.boot_info()["B"]["state"] == "bad", "rauc marked slot B bad before writing it")
        t.check(b.boot_info()["order"][0] == "A", "slot A is still primary during the install")
        stack.reboot(NAME, kill=True)
        t.check(b.booted == "A", "after the cut during the install the board boots A")
        t.check(b.boot_info()["B"]["state"] == "bad", "the half-installed slot B stays bad")
        os.unlink(hold)  # the hook lets the next install through
        stack.wait_reboot_request(NAME, 90)
        t.check(b.boot_info()["order"][0] == "B", "the install, done again, activates B")
        stack.reboot(NAME)
        t.check(b.booted == "B", "the board boots B")
        stack.wait_status(NAME, lambda s: s.get("update", {}).get("state") == "good"
                          and s.get("system") == "0.2.0", 60, "good on 0.2.0")
        H.wait_for(lambda: push.poll() is not None, 60, what="agrictl exits")
        t.check(push.returncode == 0, "agrictl update push exits 0 (%s)" % push.log_tail(5))
        t.check(not os.path.exists(part) and
                not os.path.exists(os.path.join(upd, "bundle.raucb")),
                "the bundle is removed from the data partition once installed")
        print("bundle %d bytes at %d KiB/s: download with one cut %.1f s; test %.1f s"
              % (size, KBPS, t_dl, time.time() - t0))
    finally:
        stack.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
