#!/usr/bin/env python3
"""Issue 23 acceptance: `agrictl flash` onto a loop device (docs/update.md,
"Flash a new station"). The small host image is written to a loop device
standing in for an SD card with --station, read back and verified; the
device then holds the image's partitions and files byte for byte, and its
data partition the station's station.json, password (0640) and technicians'
keys from `agrictl provision`. Refused, with nothing written: a device with a
mounted partition, a partition instead of the disk, a regular file, an image
whose .sha256 does not match or is missing, a device too small."""
import hashlib
import os
import shutil
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import image_support as I  # noqa: E402
import station_support as S  # noqa: E402

MIB = 1 << 20


def sha256_prefix(path, n):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = n
        while left:
            b = f.read(min(left, 4 * MIB))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


def flash(*args):
    return H.run([H.bin_path("agrictl"), "flash"] + list(args) + ["--yes"], timeout=120)


def main():
    t = H.Result("agrictl_flash")
    if not I.have_loop():
        print("SKIP: needs root, loop devices, sfdisk, mkfs.vfat, mcopy")
        return 77
    work = H.tmpdir("agri-flash-")
    img = I.build_small(work)
    size = os.path.getsize(img)
    # The station's credentials, as a technician makes them.
    keys = os.path.join(work, "keys")
    S.make_technician(keys, "lan")
    os.unlink(os.path.join(keys, "lan.key"))
    st_dir = os.path.join(work, "DT-W99")
    r = H.run([H.bin_path("agrictl"), "provision", "--station", "DT-W99", "--out", st_dir,
               "--passwd", os.path.join(work, "passwd"), "--acl", os.path.join(work, "acl"),
               "--broker", "ssl://hub.local:8883", "--technicians", keys])
    t.check(r.returncode == 0, "agrictl provision makes the station's files")
    card = os.path.join(work, "card.img")
    with open(card, "wb") as f:
        f.truncate(size + 64 * MIB)
    dev = I.loop_attach(card, parts=False)  # a blank card: no partitions yet
    try:
        t0 = time.time()
        r = flash(img, dev, "--station", "DT-W99", "--from", st_dir)
        t_flash = time.time() - t0
        t.check(r.returncode == 0, "agrictl flash --station exits 0 (%s)" % r.stderr[-300:])
        t.check("verifying" in r.stderr and "%" in r.stderr, "it shows progress bars")
        pt = I.partitions(dev)
        I.rescan(dev)
        t.check(len(pt["partitions"]) == 4 and pt["partitions"][0]["type"] == "c",
                "the card has the image's 4 partitions")
        for n in (2, 3):
            ours = sha256_prefix(dev + "p%d" % n, 8 * MIB)
            with open(img, "rb") as f:
                f.seek(pt["partitions"][n - 1]["start"] * 512)
                want = hashlib.sha256(f.read(8 * MIB)).hexdigest()
            t.check(ours == want, "partition %d holds the image's bytes" % n)
        root = I.mount(dev + "p2", os.path.join(work, "m-root"), fstype="ext4")
        t.check(os.path.exists(os.path.join(root, "usr/bin/agri-station")), "rootfs A: agri-station")
        I.umount(root)
        data = I.mount(dev + "p4", os.path.join(work, "m-data"), fstype="ext4")
        etc = os.path.join(data, "etc/agri")
        cfg = open(os.path.join(etc, "station.json")).read()
        t.check('"DT-W99"' in cfg, "data: the station's station.json")
        mode = stat.S_IMODE(os.stat(os.path.join(etc, "station.pass")).st_mode)
        t.check(open(os.path.join(etc, "station.pass")).read() ==
                open(os.path.join(st_dir, "station.pass")).read() and mode == 0o640,
                "data: its password, 0640 (%o)" % mode)
        t.check(os.path.exists(os.path.join(etc, "technicians/lan.pub")),
                "data: the technicians' keys it trusts")
        t.check(os.path.exists(os.path.join(etc, "update.json")), "data: the image's update.json kept")

        # A mounted device is refused, and nothing is written.
        before = sha256_prefix(dev, 2 * MIB)
        r = flash(img, dev)
        t.check(r.returncode == 1 and "mounted" in r.stderr,
                "a device with a mounted partition is refused (%s)" % r.stderr.strip()[-120:])
        t.check(sha256_prefix(dev, 2 * MIB) == before, "  ...and not written")
        I.umount(data)
        r = flash(img, dev + "p4")
        t.check(r.returncode == 1 and "partition" in r.stderr, "a partition is refused")
        r = flash(img, card)
        t.check(r.returncode == 1 and "not a block device" in r.stderr, "a regular file is refused")

        # An image that does not verify is refused.
        bad = os.path.join(work, "bad.img")
        shutil.copy(img, bad)
        shutil.copy(img + ".sha256", bad + ".sha256")
        with open(bad, "r+b") as f:
            f.seek(size // 2)
            f.write(b"\x01" * 512)
        r = flash(bad, dev)
        t.check(r.returncode == 1 and "does not verify" in r.stderr,
                "a corrupted image is refused (%s)" % r.stderr.strip()[-120:])
        os.unlink(bad + ".sha256")
        r = flash(bad, dev)
        t.check(r.returncode == 1 and "cannot be verified" in r.stderr,
                "an image without its .sha256 is refused")
        t.check(sha256_prefix(dev, 2 * MIB) == before, "  ...and nothing was written")

        # A device smaller than the image.
        small = os.path.join(work, "small.img")
        with open(small, "wb") as f:
            f.truncate(32 * MIB)
        sdev = I.loop_attach(small, parts=False)
        r = flash(img, sdev)
        t.check(r.returncode == 1 and "needs" in r.stderr, "a device too small is refused")
        print("flash of %d MiB with read-back: %.1f s" % (size // MIB, t_flash))
    finally:
        I._cleanup()
    return t.done()


if __name__ == "__main__":
    sys.exit(main())
