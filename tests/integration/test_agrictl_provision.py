"""`agrictl provision` on its own (no broker): which station ids it takes,
how it edits the broker's password file and ACL, and the modes and groups of
what it writes.

- reserved ids (the hub's accounts, topic levels and client-id namespaces:
  gateway, agrictl, alerts, forecast, advisory, hub, agri-*, agrictl-*,
  gateway-*, hub-*, any case) and malformed ids are refused with exit 2 and
  a reason, and nothing is written;
- a password file or ACL that holds one of the hub's accounts is refused
  (exit 1): stations' files hold stations only;
- a password file without a trailing newline, with lines of 1 MiB, comments
  and CRLF lines: every other line is kept byte for byte, the station's
  entry replaced, never doubled;
- the password file and the ACL keep their mode, owner and group; new ones
  are 0640 with their directory's group; a symlink stays a symlink;
- station.pass is 0600 from the moment it exists (a watcher thread stats
  every station.pass* name while provisioning runs, with umask 000), and no
  temporary file is left behind.
"""
import grp
import os
import stat
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

R = harness.Result("test_agrictl_provision")
try:
    CTL = harness.bin_path("agrictl")
except FileNotFoundError as e:
    print("SKIP: %s" % e)
    sys.exit(77)


def provision(work, station, passwd, acl, out=None, umask=None, force=False):
    out = out or os.path.join(work, "out-" + station.replace("/", "_")[:40])
    pre = (lambda: os.umask(umask)) if umask is not None else None
    import subprocess
    res = subprocess.run([CTL, "provision", "--station", station, "--out", out, "--passwd", passwd,
                          "--acl", acl, "--broker", "ssl://hub.local:8883"] + (["--force"] if force else []),
                         capture_output=True, text=True, timeout=60, preexec_fn=pre)
    return res, out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def other_group():
    """A group other than ours (root can give files any group)."""
    for name in ("nogroup", "daemon", "staff", "users"):
        try:
            g = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        if g != os.getegid():
            return g
    return None


def main():
    work = harness.tmpdir("agri-provision-")
    passwd, acl = os.path.join(work, "passwd"), os.path.join(work, "acl")

    # Reserved and malformed ids: exit 2, a reason, nothing written.
    for sid in ("gateway", "agrictl", "alerts", "forecast", "advisory", "hub", "Gateway", "AGRICTL",
                "agri-gateway", "agri-gateway-1", "agrictl-123-456", "gateway-b", "hub-a"):
        res, out = provision(work, sid, passwd, acl)
        R.check(res.returncode == 2 and "reserved" in res.stderr and not os.path.exists(out)
                and not os.path.exists(passwd) and not os.path.exists(acl),
                "station id %r is refused as the hub's (rc=%d %s)" % (sid, res.returncode, res.stderr.strip()))
    for sid in ("", "a/b", "x" * 33, "a b", "a+b", "#", "DT:W1", "é"):
        res, out = provision(work, sid, passwd, acl)
        R.check(res.returncode == 2 and "not a valid station id" in res.stderr and not os.path.exists(passwd),
                "station id %r is refused as malformed (rc=%d %s)" % (sid, res.returncode, res.stderr.strip()))
    res, _ = provision(work, "x" * 32, passwd, acl)
    R.check(res.returncode == 0, "a 32-character id is a station's (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    os.unlink(passwd)
    os.unlink(acl)

    # A password file without a trailing newline, with very long lines.
    long_comment = b"#" + b"c" * (1 << 20)
    long_user = b"LONG-" + b"u" * 100000 + b":$7$101$" + b"h" * (1 << 20)
    lines = [b"DT-OLD1:$7$101$salt$hash", long_comment, b"DT-CR:$7$101$s$h\r", long_user,
             b"DT-TARGET:$7$101$oldsalt$oldhash", b"DT-LAST:$7$101$s$h"]
    with open(passwd, "wb") as f:
        f.write(b"\n".join(lines))  # no newline after DT-LAST
    with open(acl, "wb") as f:
        f.write(b"# head\nuser DT-OLD1\ntopic write agri/v1/DT-OLD1/telemetry")  # no trailing newline
    res, out = provision(work, "DT-NEW", passwd, acl)
    R.check(res.returncode == 0, "provisioning with a password file and ACL lacking their last newline "
            "(and 1 MiB lines) succeeds (rc=%d %s)" % (res.returncode, res.stderr.strip()[:300]))
    got = read(passwd)
    glines = got.split(b"\n")
    R.check(got.endswith(b"\n") and glines[:-2] == lines and glines[-2].startswith(b"DT-NEW:$7$101$"),
            "every old line kept byte for byte (CRLF, comments, 1 MiB lines), DT-LAST ended, "
            "DT-NEW appended (%d lines)" % len(glines))
    a = read(acl)
    R.check(a.startswith(b"# head\nuser DT-OLD1\ntopic write agri/v1/DT-OLD1/telemetry\n")
            and a.count(b"\nuser DT-NEW\n") == 1,
            "the ACL's last line stays intact and DT-NEW's block follows it")
    res, _ = provision(work, "DT-TARGET", passwd, acl)
    got2 = read(passwd)
    R.check(res.returncode == 0 and got2.count(b"DT-TARGET:") == 1 and b"oldhash" not in got2
            and got2.split(b"\n")[-2].startswith(b"DT-TARGET:$7$101$"),
            "provisioning an existing station replaces its entry (rc=%d)" % res.returncode)
    before = (read(passwd), read(acl))
    res, out = provision(work, "DT-NEW", passwd, acl)
    R.check(res.returncode == 1 and "--force" in res.stderr and "station.json" in res.stderr
            and (read(passwd), read(acl)) == before,
            "provisioning DT-NEW again into the same DIR: exit 1, nothing written without --force (%s)"
            % res.stderr.strip())
    res, _ = provision(work, "DT-NEW", passwd, acl, force=True)
    R.check(res.returncode == 0 and read(passwd).count(b"\nDT-NEW:") == 1 and read(acl).count(b"\nuser DT-NEW\n") == 1,
            "provisioning DT-NEW again with --force: one entry, one ACL block")

    # A stations' file holding a hub account is refused, nothing written.
    for which, content in (("password file", b"DT-A:$7$x\ngateway:$7$101$s$h\n"),
                           ("password file", b"agrictl:$7$101$s$h"),
                           ("ACL", b"user gateway\ntopic read agri/v1/#\n")):
        p2, a2 = os.path.join(work, "p-hub"), os.path.join(work, "a-hub")
        with open(p2 if which == "password file" else a2, "wb") as f:
            f.write(content)
        if which == "password file":
            open(a2, "w").close()
        else:
            open(p2, "w").close()
        before = (read(p2), read(a2))
        res, out = provision(work, "DT-HUB", p2, a2)
        R.check(res.returncode == 1 and "hub's account" in res.stderr and (read(p2), read(a2)) == before
                and not os.path.exists(out),
                "a stations' %s holding a hub account is refused, nothing written (rc=%d %s)"
                % (which, res.returncode, res.stderr.strip()))
        os.unlink(p2)
        os.unlink(a2)

    # Modes, owners and groups.
    g = other_group() if os.geteuid() == 0 else None
    p3, a3 = os.path.join(work, "p3"), os.path.join(work, "a3")
    with open(p3, "w") as f:
        f.write("DT-A:$7$101$s$h\n")
    with open(a3, "w") as f:
        f.write("# acl\n")
    os.chmod(p3, 0o640)
    os.chmod(a3, 0o644)
    if g is not None:
        os.chown(p3, 0, g)
        os.chown(a3, 0, g)
    st0p, st0a = os.stat(p3), os.stat(a3)
    res, out = provision(work, "DT-MODE", p3, a3, umask=0o077)
    stp, sta = os.stat(p3), os.stat(a3)
    R.check(res.returncode == 0 and (stp.st_mode, stp.st_uid, stp.st_gid) == (st0p.st_mode, st0p.st_uid, st0p.st_gid),
            "the password file keeps its mode 0640, owner and group %s (now %o %d:%d)"
            % (g, stp.st_mode & 0o7777, stp.st_uid, stp.st_gid))
    R.check((sta.st_mode, sta.st_uid, sta.st_gid) == (st0a.st_mode, st0a.st_uid, st0a.st_gid),
            "the ACL keeps its mode 0644, owner and group (now %o %d:%d)"
            % (sta.st_mode & 0o7777, sta.st_uid, sta.st_gid))
    sp = os.stat(os.path.join(out, "station.pass"))
    R.check(stat.S_IMODE(sp.st_mode) == 0o600 and sp.st_uid == os.geteuid() and sp.st_gid == os.getegid(),
            "station.pass is 0600, ours (%o %d:%d)" % (stat.S_IMODE(sp.st_mode), sp.st_uid, sp.st_gid))
    if g is not None:
        d = os.path.join(work, "newdir")
        os.mkdir(d)
        os.chown(d, 0, g)
        res, _ = provision(work, "DT-FRESH", os.path.join(d, "passwd"), os.path.join(d, "acl"), umask=0)
        stn = os.stat(os.path.join(d, "passwd"))
        R.check(res.returncode == 0 and stat.S_IMODE(stn.st_mode) == 0o640 and stn.st_gid == g,
                "a new password file is 0640 with its directory's group, whatever the umask (%o gid %d)"
                % (stat.S_IMODE(stn.st_mode), stn.st_gid))
    # A password file that is a symlink: the target is rewritten, the link stays.
    target = os.path.join(work, "real-passwd")
    with open(target, "w") as f:
        f.write("DT-A:$7$101$s$h\n")
    link = os.path.join(work, "link-passwd")
    os.symlink(target, link)
    res, _ = provision(work, "DT-LINK", link, a3)
    R.check(res.returncode == 0 and os.path.islink(link) and b"\nDT-LINK:" in read(target),
            "a password file given as a symlink: its target gets the entry, the link stays (rc=%d %s)"
            % (res.returncode, res.stderr.strip()))
    leftovers = [n for d in (work, out) for n in os.listdir(d) if ".tmp" in n or "XXXX" in n
                 or n.startswith(("p3.", "a3.", "station.pass.", "passwd.", "acl.", "real-passwd."))]
    R.check(not leftovers, "no temporary file left behind (%s)" % leftovers)

    # station.pass is never seen with another mode: a watcher stats every
    # station.pass* name in the output directory while provisioning runs.
    odir = os.path.join(work, "watched")
    os.makedirs(odir)
    seen, bad, stop = set(), [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                names = os.listdir(odir)
            except OSError:
                continue
            for n in names:
                if not n.startswith("station.pass"):
                    continue
                try:
                    m = stat.S_IMODE(os.lstat(os.path.join(odir, n)).st_mode)
                except OSError:
                    continue
                seen.add(n)
                if m != 0o600:
                    bad.append((n, oct(m)))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    rcs = []
    for i in range(30):
        res, _ = provision(work, "DT-W%02d" % i, passwd, acl, out=odir, umask=0, force=True)
        rcs.append(res.returncode)
    stop.set()
    t.join()
    R.check(all(rc == 0 for rc in rcs) and not bad,
            "station.pass is 0600 under every name it ever has, umask 000, 30 runs "
            "(names seen: %d, other modes: %s)" % (len(seen), bad[:5]))
    R.done()


if __name__ == "__main__":
    main()
