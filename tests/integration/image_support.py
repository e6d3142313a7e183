"""Helpers for the station image tests (test_build_image.py,
test_agrictl_flash.py; docs/update.md): the small image of the host board,
loop devices with their partitions (losetup -P), mounts, all undone by the
harness at exit, or by the test's own finally."""
import atexit
import json
import os
import shutil
import subprocess

import harness as H

_loops = []
_mounts = []


def have_loop():
    """Root, loop devices with partition scanning, and the image tools."""
    if os.geteuid() != 0 or not os.path.exists("/dev/loop-control"):
        return False
    return all(shutil.which(t) for t in ("losetup", "sfdisk", "mkfs.ext4", "mkfs.vfat",
                                         "mcopy", "mount"))


def build_small(work, board="host"):
    """scripts/build-image BOARD --small into work/img: the image's path."""
    out = os.path.join(work, "img")
    env = {"AGRI_STATION_BIN": H.bin_path("agri-station")}
    r = H.run([os.path.join(H.SRC, "scripts", "build-image"), board, "--small", "--out", out],
              timeout=300, env=env)
    if r.returncode != 0:
        raise RuntimeError("build-image failed: %s%s" % (r.stdout, r.stderr))
    return r.stdout.strip().splitlines()[-1]


def partitions(path):
    r = subprocess.run(["sfdisk", "--json", path], capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["partitiontable"]


def loop_attach(path, parts=True):
    """A loop device over path, its partitions scanned (/dev/loopNpM)."""
    r = subprocess.run(["losetup", "-P", "-f", "--show", path], capture_output=True, text=True,
                       check=True)
    dev = r.stdout.strip()
    _loops.append(dev)
    if not parts:
        return dev
    try:
        H.wait_for(lambda: os.path.exists(dev + "p1"), 2, what="partitions of " + dev)
    except TimeoutError:  # some kernels scan only when asked again
        subprocess.run(["partx", "-a", dev], capture_output=True)
        H.wait_for(lambda: os.path.exists(dev + "p1"), 10, what="partitions of " + dev)
    return dev


def rescan(dev):
    """The kernel's view of dev's partitions, anew (partx)."""
    subprocess.run(["partx", "-d", dev], capture_output=True)
    subprocess.run(["partx", "-a", dev], capture_output=True)
    H.wait_for(lambda: os.path.exists(dev + "p1"), 10, what="partitions of " + dev)


def loop_detach(dev):
    subprocess.run(["losetup", "-d", dev], capture_output=True)
    if dev in _loops:
        _loops.remove(dev)


def mount(dev, where, ro=True, fstype=None):
    os.makedirs(where, exist_ok=True)
    argv = ["mount"] + (["-o", "ro"] if ro else []) + (["-t", fstype] if fstype else []) + \
        [dev, where]
    subprocess.run(argv, check=True, capture_output=True)
    _mounts.append(where)
    return where


def umount(where):
    subprocess.run(["umount", where], capture_output=True)
    if where in _mounts:
        _mounts.remove(where)


def _cleanup():
    for m in reversed(list(_mounts)):
        umount(m)
    for d in list(_loops):
        loop_detach(d)


# Before harness's own exit handler removes the temporary directories
# (atexit runs in reverse order of registration).
atexit.register(_cleanup)
