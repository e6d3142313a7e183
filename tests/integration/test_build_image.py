#!/usr/bin/env python3
"""The station image's smoke test (docs/update.md, docs/packaging.md): the
small variant of scripts/build-image for the host board, its partition
table, and its files seen by a loop mount of each partition: the boot
partition, rootfs A (the station, its unit, RAUC's config and keyring, the
fstab binding the data partition, the update agent's D-Bus and polkit
rights, the release), an empty rootfs B, and the data partition (etc/agri,
the station's state directory, RAUC's status naming the release). The full
image (mmdebstrap, arm64) is `scripts/build-image rpi-arm64`, not run here."""
import os
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import image_support as I  # noqa: E402

MIB = 1 << 20


def main():
    t = H.Result("build_image")
    if not I.have_loop():
        print("SKIP: needs root, loop devices, sfdisk, mkfs.vfat, mcopy")
        return 77
    work = H.tmpdir("agri-img-")
    t0 = time.time()
    img = I.build_small(work)
    t_build = time.time() - t0
    t.check(os.path.exists(img + ".sha256"), "the image comes with its .sha256")
    pt = I.partitions(img)
    parts = pt["partitions"]
    t.check(pt["label"] == "dos" and len(parts) == 4, "an MBR with 4 partitions")
    t.check(parts[0]["type"] == "c" and parts[0].get("bootable"), "1: boot, FAT32 LBA, bootable")
    t.check(all(p["type"] == "83" for p in parts[1:]), "2-4: Linux")
    t.check(parts[1]["size"] == parts[2]["size"], "rootfs A and B are the same size")
    t.check(parts[0]["start"] == 2048, "aligned at 1 MiB")
    dev = I.loop_attach(img)
    mnt = os.path.join(work, "mnt")
    try:
        # FAT through mtools: a kernel without vfat (some CI sandboxes) reads it too.
        r = H.run(["mtype", "-i", dev + "p1", "::README.txt"])
        t.check(r.returncode == 0 and "agri" in r.stdout,
                "the boot partition is FAT and holds its files")
        root = I.mount(dev + "p2", os.path.join(mnt, "a"), fstype="ext4")
        st = os.stat(os.path.join(root, "usr/bin/agri-station"))
        t.check(stat.S_ISREG(st.st_mode) and st.st_mode & 0o111, "rootfs A: /usr/bin/agri-station")
        r = H.run([os.path.join(root, "usr/bin/agri-station"), "--help"])
        t.check(r.returncode == 0 and "usage: agri-station" in r.stdout, "  ...which runs")
        t.check(os.path.exists(os.path.join(root, "lib/systemd/system/agri-station.service")) and
                os.path.islink(os.path.join(
                    root, "etc/systemd/system/multi-user.target.wants/agri-station.service")),
                "rootfs A: the unit, enabled")
        conf = open(os.path.join(root, "etc/rauc/system.conf")).read()
        t.check("compatible=agri-host" in conf and "bootname=A" in conf and "bootname=B" in conf
                and "statusfile=/data/rauc/status" in conf and "@" not in conf,
                "rootfs A: RAUC's system.conf for the board, filled in")
        t.check(os.path.exists(os.path.join(root, "etc/rauc/keyring.pem")), "rootfs A: the keyring")
        fstab = open(os.path.join(root, "etc/fstab")).read()
        t.check("LABEL=agri-data" in fstab and "/data/etc/agri" in fstab and
                "/var/lib/agri/station" in fstab, "rootfs A: fstab binds the data partition")
        t.check(os.path.exists(os.path.join(root, "etc/dbus-1/system.d/agri-station-rauc.conf")) and
                os.path.exists(os.path.join(root, "etc/polkit-1/rules.d/50-agri-station-reboot.rules")),
                "rootfs A: the update agent may call rauc and reboot")
        t.check(open(os.path.join(root, "etc/agri-release")).read().strip() != "",
                "rootfs A: /etc/agri-release")
        with open(dev + "p3", "rb") as f:
            t.check(f.read(MIB) == b"\0" * MIB, "rootfs B is empty until the first update")
        data = I.mount(dev + "p4", os.path.join(mnt, "data"), fstype="ext4")
        t.check(os.path.isdir(os.path.join(data, "etc/agri/technicians")) and
                os.path.isdir(os.path.join(data, "station")), "data: etc/agri and the state directory")
        t.check("hub_url" in open(os.path.join(data, "etc/agri/update.json")).read(),
                "data: update.json to fill in")
        status = open(os.path.join(data, "rauc/status")).read()
        t.check("[slot.rootfs.0]" in status and "bundle.version=" in status,
                "data: RAUC's status names the release in slot A")
        label = open(dev + "p4", "rb").read(2048)[1024 + 0x78:1024 + 0x78 + 9]
        t.check(label == b"agri-data", "data: label agri-data")
    finally:
        I._cleanup()
    # The board's update bundle (scripts/bundle, what scripts/package makes
    # with a release key), here signed with a test PKI.
    t1 = time.time()
    r = H.run([os.path.join(H.SRC, "scripts", "bundle"), "host", "--out", os.path.join(work, "b"),
               "--version", "9.9.9"], timeout=300,
              env={"AGRI_STATION_BIN": H.bin_path("agri-station"), "AGRI_RELEASE_TEST": "1"})
    bundle = r.stdout.strip().splitlines()[-1] if r.returncode == 0 else ""
    t.check(r.returncode == 0 and bundle.endswith("agri-host-9.9.9.raucb") and
            "TEST key" in r.stderr, "scripts/bundle host makes a bundle, saying it is a test key")
    if bundle:
        info = H.run(["rauc", "info", "--output-format=json", "--keyring",
                      os.path.join(work, "b", "test-pki", "ca.pem"), bundle])
        doc = __import__("json").loads(info.stdout) if info.returncode == 0 else {}
        t.check(doc.get("compatible") == "agri-host" and doc.get("version") == "9.9.9",
                "  ...which verifies, for compatible agri-host, version 9.9.9")
        print("bundle: %d bytes in %.1f s" % (os.path.getsize(bundle), time.time() - t1))
        r = H.run([os.path.join(H.SRC, "scripts", "bundle"), "host", "--out",
                   os.path.join(work, "b2")], env={"AGRI_RELEASE_TEST": ""})
        t.check(r.returncode == 2 and "AGRI_RELEASE_KEY" in r.stderr,
                "without a release key (or AGRI_RELEASE_TEST) no bundle is made")
    print("small image: %d MiB apparent, built in %.1f s; test %.1f s"
          % (os.path.getsize(img) // MIB, t_build, time.time() - t0))
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
