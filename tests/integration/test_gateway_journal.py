"""agri-gateway's log lines carry their syslog priority when, and only when,
stderr is the systemd journal (docs/logging.md).

systemd tells a service that its stderr is the journal with JOURNAL_STREAM=
DEV:INO, the device and inode of that stream (sd-daemon(3)). Here stderr is
a file; the variable names it (as systemd would), names another file (a
parent's journal stream, stderr redirected), or is unset:

- a broker nobody listens on: `<4>WARN broker: cannot connect ...` and
  `<6>INFO gateway: started ...`, every log line with its prefix;
- an HTTP listener whose port is taken: `<3>ERROR http: cannot listen ...`,
  exit 1;
- JOURNAL_STREAM of another file, or unset: the same lines without a prefix.
"""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

R = harness.Result("test_gateway_journal")
LEVEL_LINE = re.compile(r"^(<\d>)?(ERROR|WARN|INFO|DEBUG) [\w-]+: ")


def dev_ino(path):
    st = os.stat(path)
    return "%d:%d" % (st.st_dev, st.st_ino)


def start(work, name, cfg, journal):
    """Starts the gateway with stderr (and stdout) to work/name.log.
    journal: "self" (JOURNAL_STREAM names that file), "other" (names
    another file) or None (unset)."""
    log = os.path.join(work, name + ".log")
    open(log, "wb").close()
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal == "self":
        env["JOURNAL_STREAM"] = dev_ino(log)
    elif journal == "other":
        other = os.path.join(work, name + ".other")
        open(other, "wb").close()
        env["JOURNAL_STREAM"] = dev_ino(other)
    # harness.Proc opens the log for appending: the same inode.
    return harness.Proc([harness.bin_path("agri-gateway"), "--config", cfg, "--log-level", "info"],
                        log, env=env)


def level_lines(proc):
    return [ln for ln in proc.log_text().splitlines() if LEVEL_LINE.match(ln)]


def unreachable_broker(work, journal):
    port = harness.free_port()  # closed again: nobody listens there
    cfg = harness.write_json(os.path.join(work, "gw-%s.json" % journal), {
        "broker": {"url": "tcp://127.0.0.1:%d" % port, "client_id": "gw-journal"},
        "db": {"path": os.path.join(work, "agri-%s.db" % journal)}})
    gw = start(work, "broker-%s" % journal, cfg, journal)
    try:
        harness.wait_for(lambda: "cannot connect" in gw.log_text() or gw.poll() is not None, 20,
                         what="the gateway's warning about the broker")
    except TimeoutError:
        pass
    rc = gw.stop()
    return gw, rc


def main():
    work = harness.tmpdir("agri-journal-")

    gw, rc = unreachable_broker(work, "self")
    lines = level_lines(gw)
    warn = [ln for ln in lines if " broker: cannot connect" in ln]
    R.check(warn and all(ln.startswith("<4>WARN broker: ") for ln in warn),
            "JOURNAL_STREAM is stderr: the broker warning starts with <4> (%s)" % (warn[:1] or gw.log_tail(5)))
    R.check(any(ln.startswith("<6>INFO gateway: started") for ln in lines),
            "JOURNAL_STREAM is stderr: the start line starts with <6>")
    bare = [ln for ln in lines if not ln.startswith("<")]
    R.check(lines and not bare, "every log line carries its priority (without: %s)" % bare[:3])
    R.check(rc == 0, "the gateway stops on SIGTERM with exit 0 (rc=%s)" % rc)

    # An error: the HTTP listener's port is taken.
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    cfg = harness.write_json(os.path.join(work, "gw-http.json"), {
        "broker": {"url": "tcp://127.0.0.1:1", "client_id": "gw-journal-http"},
        "db": {"path": os.path.join(work, "agri-http.db")},
        "http": {"listen": "127.0.0.1:%d" % taken.getsockname()[1]}})
    gw = start(work, "http", cfg, "self")
    try:
        harness.wait_for(lambda: gw.poll() is not None, 20, what="the gateway to exit without its listener")
    except TimeoutError:
        pass
    taken.close()
    err = [ln for ln in level_lines(gw) if "cannot listen" in ln]
    R.check(gw.poll() == 1 and err and re.match(r"^<3>ERROR [\w-]+: cannot listen", err[0]),
            "an HTTP port that is taken: <3>ERROR ... cannot listen, exit 1 (rc=%s: %s)"
            % (gw.poll(), gw.log_tail(3).replace("\n", " | ")))
    gw.stop()

    for journal in ("other", None):
        gw, rc = unreachable_broker(work, journal or "unset")
        lines = level_lines(gw)
        R.check(any(" broker: cannot connect" in ln for ln in lines)
                and not any(ln.startswith("<") for ln in lines),
                "JOURNAL_STREAM %s: plain lines, no priority prefix (%s)"
                % ("names another file" if journal else "unset", lines[:2]))
    R.done()


if __name__ == "__main__":
    main()
