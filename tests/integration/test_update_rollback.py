#!/usr/bin/env python3
"""Issue 23 acceptance: a new version that cannot reach the broker is rolled
back, and a canary rollout halts (docs/update.md, "Rollback", "Canary").

`agrictl update push --all --canary 1` to 3 stations with a release whose
agri-station runs without a network: the canary (the first station) installs
it, reboots into slot B, fails its health check after health_timeout_s (no
broker), marks B bad and asks for a reboot; the bootloader boots A again and
the old station reports rolled-back with the reason. agrictl halts: the other
two stations never get the command and never write their slot B."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import rauc_support as R  # noqa: E402

HEALTH_S = 8


def main():
    t = H.Result("update_rollback")
    if not R.have_rauc():
        print("SKIP: needs root, rauc, dbus-daemon, mksquashfs, debugfs, loop devices")
        return 77
    if not H.run(["unshare", "-n", "true"]).returncode == 0:
        print("SKIP: unshare -n (a network namespace) is not allowed here")
        return 77
    work = H.tmpdir("agri-otab-")
    t0 = time.time()
    stack = R.OtaStack(work, 3, health_timeout_s=HEALTH_S)
    try:
        stack.start_all()
        canary, others = stack.names[0], stack.names[1:]
        zeros = b"\0" * (1 << 20)
        img = R.rootfs_image(work, "0.3.0", R.broken_network_files())
        bundle = R.bundle(work, img, R.COMPATIBLE, "0.3.0", stack.pki)
        t1 = time.time()
        push = stack.push_async(bundle, "--all", "--canary", "1", "--timeout-s", "120")
        stack.wait_reboot_request(canary, 60)
        stack.reboot(canary)
        b = stack.boards[canary]
        t.check(b.booted == "B", "the canary boots the new slot B")
        # The new system cannot reach the broker: its health check fails
        # after health_timeout_s, it marks B bad and asks for a reboot.
        stack.wait_reboot_request(canary, HEALTH_S + 30)
        t_fail = time.time() - t1
        t.check("set-state B bad" in b.boot_log()[-3:] or
                b.boot_info()["B"]["state"] == "bad", "the health check marked slot B bad")
        stack.reboot(canary)
        t.check(b.booted == "A", "the bootloader falls back to slot A")
        st = stack.wait_status(canary, lambda s: s.get("update", {}).get("state") == "rolled-back",
                               30, "reports rolled-back from slot A")
        err = st["update"].get("error", "")
        t.check(st.get("slot") == "A" and st.get("system") == "0.1.0",
                "the canary runs the old system 0.1.0 on slot A again")
        t.check("health check failed" in err and "broker not connected" in err,
                "the reason is the health check's: %s" % err)
        t.check(b.boot_info()["order"][0] == "A", "slot A is primary again")
        H.wait_for(lambda: push.poll() is not None, 30, what="agrictl update push exits")
        out = push.log_text()
        t.check(push.returncode == 1 and "halted" in out,
                "agrictl halts the rollout and exits 1 (%d: %s)" % (push.returncode, out[-300:]))
        for n in others:
            st = stack.status(n)
            t.check("update" not in st and st.get("slot") == "A",
                    "%s was not sent the update (%s)" % (n, st.get("update")))
            t.check(stack.boards[n].slot_bytes("B") == zeros, "%s: slot B never written" % n)
            t.check(n + ": update" not in out, "agrictl sent nothing to %s" % n)
        print("health check failure detected %.1f s after the push (health_timeout_s %d);"
              " test %.1f s" % (t_fail, HEALTH_S, time.time() - t0))
    finally:
        stack.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
