#!/usr/bin/env python3
"""Issue 23 acceptance, end to end with Debian's rauc (docs/update.md):
`agrictl update push` sends a bundle to 3 stations through the hub; each
downloads it from the gateway over HTTPS (its own broker account), verifies
it, installs it into its other slot and asks for a reboot; the test reboots
it (rauc service on the other boot slot, the station binary the new slot
carries); each passes its health check and marks the slot good. The fleet
view (`agrictl update status`) shows the new version, and no reading is lost
across the update: every reading an independent subscriber saw is in the
gateway's database, no seq is missing, and every spool is empty."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import rauc_support as R  # noqa: E402


class Counter:
    """Every distinct reading on the stations' telemetry, seen with the
    gateway's account from a persistent session of its own."""

    def __init__(self, stack):
        import paho.mqtt.client as mqtt
        self.keys = {}
        self.seqs = {}
        self.lock = threading.Lock()
        c = mqtt.Client(client_id="it-counter", clean_session=False)
        c.username_pw_set("gateway", stack.gw_pass)
        c.on_connect = lambda cl, u, f, rc: cl.subscribe("agri/v1/+/telemetry", 1)
        c.on_message = self._msg
        c.connect("127.0.0.1", stack.broker.loop_port, 30)
        c.loop_start()
        self.c = c

    def _msg(self, c, u, m):
        doc = json.loads(m.payload)
        with self.lock:
            k = self.keys.setdefault(doc["station"], set())
            self.seqs.setdefault(doc["station"], set()).add(doc["seq"])
            for r in doc["readings"]:
                k.add((r["sensor"], r["metric"], r["ts"]))

    def counts(self):
        with self.lock:
            return {s: len(k) for s, k in self.keys.items()}

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    t = H.Result("update_ota")
    if not R.have_rauc():
        print("SKIP: needs root, rauc, dbus-daemon, mksquashfs, debugfs, loop devices")
        return 77
    work = H.tmpdir("agri-ota-")
    t0 = time.time()
    stack = R.OtaStack(work, 3, health_timeout_s=30)
    counter = Counter(stack)
    try:
        stack.start_all()
        t_setup = time.time() - t0
        img_b = R.rootfs_image(work, "0.2.0", R.station_rootfs_files(
            {"/etc/agri-release": b"0.2.0\n"}), pad_mb=2)
        bundle = R.bundle(work, img_b, R.COMPATIBLE, "0.2.0", stack.pki)
        size = os.path.getsize(bundle)
        time.sleep(3)  # readings flow before the update

        t1 = time.time()
        push = stack.push_async(bundle, *sum((["--station", n] for n in stack.names), []),
                                "--timeout-s", "240")
        for n in stack.names:
            stack.wait_reboot_request(n, 60)
            st = stack.status(n)
            t.check(st.get("update", {}).get("state") == "rebooting",
                    "%s reports rebooting before the reboot (%s)" % (n, st.get("update")))
            b = stack.boards[n]
            info = b.boot_info()
            t.check(info["order"][0] == "B", "%s: rauc made slot B primary" % n)
            print("%.1f s: %s asked for a reboot" % (time.time() - t1, n), flush=True)
            stack.reboot(n)
            print("%.1f s: %s restarted" % (time.time() - t1, n), flush=True)
            t.check(b.booted == "B", "%s: the bootloader booted slot B" % n)
        for n in stack.names:
            stack.wait_status(n, lambda s: s.get("update", {}).get("state") == "good"
                              and s.get("slot") == "B" and s.get("system") == "0.2.0", 60,
                              "good on slot B, system 0.2.0")
            print("%.1f s: %s good" % (time.time() - t1, n), flush=True)
            t.check("set-state B good" in stack.boards[n].boot_log(),
                    "%s: the health check marked slot B good" % n)
        H.wait_for(lambda: push.poll() is not None, 60, what="agrictl update push exits")
        out = push.log_text()
        t.check(push.returncode == 0, "agrictl update push exits 0 (%s)" % out[-400:])
        t.check("3 of 3 station(s) updated to 0.2.0" in out, "push says all 3 are updated")
        t_update = time.time() - t1
        dl = [ln for n in stack.names for ln in stack.stations[n].log_text().splitlines()]
        served = [ln for ln in stack.gw.proc.log_text().splitlines() if "bundle served" in ln]
        t.check(len(served) >= 3, "the gateway served the bundle to each station over HTTPS")

        r = stack.agrictl("update", "status", "--broker",
                          "tcp://127.0.0.1:%d" % stack.broker.loop_port, "--username", "agrictl",
                          "--password-file", os.path.join(work, "agrictl.pass"), "--json")
        fleet = {e["station"]: e for e in json.loads(r.stdout)} if r.returncode == 0 else {}
        t.check(r.returncode == 0 and all(fleet.get(n, {}).get("system") == "0.2.0" and
                                          fleet[n]["update"]["state"] == "good"
                                          for n in stack.names),
                "agrictl update status shows 0.2.0 good on every station (%s)" % r.stdout[:300])
        r = stack.agrictl("update", "status", "--broker",
                          "tcp://127.0.0.1:%d" % stack.broker.loop_port, "--username", "agrictl",
                          "--password-file", os.path.join(work, "agrictl.pass"))
        print(r.stdout)
        # The gateway's API (over HTTPS, the hub's CA) shows the same.
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=stack.broker.ca)
        with urllib.request.urlopen("https://localhost:%d/api/v1/stations" % stack.http_port,
                                    context=ctx, timeout=10) as resp:
            api = {e["station"]: e for e in json.loads(resp.read())["stations"]}
        t.check(all(api[n]["system"] == "0.2.0" and api[n]["slot"] == "B" and
                    api[n]["update"]["state"] == "good" for n in stack.names),
                "GET /api/v1/stations shows 0.2.0 on slot B, good, for every station")
        # Bundles go to stations only: no credentials, or a wrong password: 401.
        import base64
        import urllib.error
        name = os.listdir(stack.bundles)[0]
        for auth in (None, "OTA-1:wrong", "agrictl:" + stack.tech_pass):
            req = urllib.request.Request("https://localhost:%d/api/v1/bundles/%s"
                                         % (stack.http_port, name))
            if auth:
                req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                urllib.request.urlopen(req, context=ctx, timeout=10)
                code = 200
            except urllib.error.HTTPError as e:
                code = e.code
            t.check(code == 401, "a bundle is refused without a station's account (%s): %d"
                    % (auth.split(":")[0] if auth else "none", code))

        # No reading lost: stop the stations (they seal what they hold),
        # let the gateway ack, count.
        time.sleep(3)
        for n in stack.names:
            stack.stations[n].stop(10)
        stack.stations.clear()
        for n in stack.names:
            p = stack.start_station(n, slot="B")
        H.wait_for(lambda: all(R.S.spool_depth(os.path.join(stack.boards[n].dir, "data", "state"))
                               == 0 for n in stack.names), 30, what="spools drained")
        time.sleep(1)
        seen = counter.counts()
        stored = stack.readings_stored()
        for n in stack.names:
            seqs = sorted(counter.seqs.get(n, ()))
            t.check(seen.get(n, 0) > 20 and stored.get(n) == seen.get(n),
                    "%s: every reading published is stored (seen %s, stored %s)"
                    % (n, seen.get(n), stored.get(n)))
            t.check(seqs and seqs == list(range(seqs[0], seqs[-1] + 1)),
                    "%s: no telemetry seq is missing across the update" % n)
        _ = p, dl
        print("bundle %d bytes; setup %.1f s; update of 3 stations %.1f s; test %.1f s"
              % (size, t_setup, t_update, time.time() - t0))
    finally:
        counter.stop()
        stack.stop()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
