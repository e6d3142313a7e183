#!/usr/bin/env python3
"""E-mail alerts travel over verified TLS, or not at all (docs/notify.md
"TLS", docs/security.md "An SMTP stripper").

A small SMTP server written here (python3's smtpd has no STARTTLS and is
gone in 3.12) that can offer STARTTLS or not, or speak TLS from the first
byte (smtps), with certificates from broker/make-certs. The real outbox
and libcurl channel run in tests/integration/outbox_driver.c:

- a server that offers no STARTTLS (what a man in the middle who strips it
  looks like) gets no mail under the default config; the outbox keeps
  every row, pending, with the reason;
- STARTTLS with a certificate for the host, from notify.smtp.ca_file:
  delivered, over TLS;
- STARTTLS with a certificate for another name, and smtps:// with a CA
  the gateway does not trust: nothing sent, the reason kept;
- "tls": "none" on loopback: delivered in plain text (as the other notify
  tests run); "none" for another host is a config error (exit 78)."""
import json
import os
import socket
import socketserver
import sqlite3
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAKE_CERTS = os.path.join(harness.SRC, "broker", "make-certs")


class Smtp:
    """mode: 'plain' (no STARTTLS offered), 'starttls' or 'smtps'.
    Records (mailfrom, rcpts, data, over_tls) per accepted message."""

    def __init__(self, mode, certdir=None):
        self.mode = mode
        self.msgs = []
        self.sessions = 0
        self.ctx = None
        if certdir:
            self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ctx.load_cert_chain(os.path.join(certdir, "server.crt"),
                                     os.path.join(certdir, "server.key"))
        me = self

        class H(socketserver.StreamRequestHandler):
            def setup(self):
                self.tls = False
                if me.mode == "smtps":
                    try:
                        self.request = me.ctx.wrap_socket(self.request, server_side=True)
                    except (ssl.SSLError, OSError):
                        self.request = None
                        return
                    self.tls = True
                super().setup()

            def send(self, line):
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            def handle(self):
                if self.request is None:
                    return
                me.sessions += 1
                self.send("220 test ESMTP")
                mailfrom, rcpts = None, []
                while True:
                    raw = self.rfile.readline(4096)
                    if not raw:
                        return
                    cmd = raw.decode("ascii", "replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        offer = me.mode == "starttls" and not self.tls
                        self.send("250-test" if offer else "250 test")
                        if offer:
                            self.send("250 STARTTLS")
                    elif verb == "STARTTLS" and me.mode == "starttls" and not self.tls:
                        self.send("220 go ahead")
                        try:
                            self.request = me.ctx.wrap_socket(self.request, server_side=True)
                        except (ssl.SSLError, OSError):
                            return
                        self.tls = True
                        self.rfile = self.request.makefile("rb")
                        self.wfile = self.request.makefile("wb")
                    elif verb == "MAIL":
                        mailfrom, rcpts = cmd[10:], []
                        self.send("250 ok")
                    elif verb == "RCPT":
                        rcpts.append(cmd[8:])
                        self.send("250 ok")
                    elif verb == "DATA":
                        self.send("354 go")
                        data = b""
                        while True:
                            line = self.rfile.readline(65536)
                            if not line or line in (b".\r\n", b".\n"):
                                break
                            data += line
                        me.msgs.append((mailfrom, rcpts, data, self.tls))
                        self.send("250 queued")
                    elif verb == "QUIT":
                        self.send("221 bye")
                        return
                    else:
                        self.send("250 ok" if verb in ("RSET", "NOOP") else "502 no")

        class S(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.srv = S(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def certs(work, name):
    d = os.path.join(work, "certs-" + name)
    subprocess.run([MAKE_CERTS, d, name], check=True, capture_output=True)
    return d


def pending(db):
    if not os.path.exists(db):
        return []
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT attempts, error FROM outbox WHERE delivered_at IS NULL"
                           " AND dropped_at IS NULL ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def deliver(work, name, smtp, srv, n=3, wait=10.0):
    """Runs the outbox driver with one SMTP channel over n alerts until the
    server has them all or the head row failed twice; returns (driver exit
    code, its log, pending rows [(attempts, error)], head first)."""
    d = os.path.join(work, name)
    os.makedirs(d)
    cfg = {"broker": {"url": "tcp://127.0.0.1:1"}, "db": {"path": "gw.db"},
           "notify": {"smtp": dict({"name": "mail", "from": "agri@farm.vn",
                                    "to": ["agronomist@farm.vn"]}, **smtp)}}
    path = harness.write_json(os.path.join(d, "gateway.json"), cfg)
    p = harness.Proc([harness.bin_path("outbox_driver"), path, "run", "1", str(n)],
                     os.path.join(d, "driver.log"))
    db = os.path.join(d, "gw.db")
    start = len(srv.msgs)
    deadline = time.time() + wait
    while time.time() < deadline and p.poll() is None:
        rows = pending(db)
        if len(srv.msgs) - start >= n or (rows and rows[0][0] >= 2):
            break
        time.sleep(0.05)
    time.sleep(0.2)
    rc = p.stop()
    return rc, p.log_text(), pending(db)


def main():
    res = harness.Result("test_gateway_smtp_tls")
    work = harness.tmpdir("agri-smtptls-")
    good = certs(work, "localhost")
    other = certs(work, "other.example")
    ca = os.path.join(good, "ca.crt")

    # 1. No STARTTLS offered: nothing sent, every row kept with the reason.
    srv = Smtp("plain")
    rc, log, rows = deliver(work, "plain", {"url": "smtp://127.0.0.1:%d" % srv.port}, srv)
    print("server without STARTTLS, default config: %d mails received, %d rows pending: %s"
          % (len(srv.msgs), len(rows), rows[0][1] if rows else "-"))
    res.check(rc == 0 and not srv.msgs, "a server that offers no STARTTLS gets no mail")
    res.check(len(rows) == 3 and rows[0][0] >= 1 and "STARTTLS" in (rows[0][1] or ""),
              "the outbox keeps every row, pending, the head with the reason")
    res.check(log.count("channel=mail down") == 1 and "STARTTLS" in log, "the log says why, once")

    # 5. ... unless the operator said so, for a loopback host.
    rc, log, rows = deliver(work, "plain-none", {"url": "smtp://127.0.0.1:%d" % srv.port,
                                                 "tls": "none"}, srv)
    print("the same server with \"tls\": \"none\": %d mails received, %d pending"
          % (len(srv.msgs), len(rows)))
    res.check(rc == 0 and len(srv.msgs) == 3 and not rows and not any(t for *_, t in srv.msgs),
              "\"tls\": \"none\" on loopback: delivered in plain text")
    srv.stop()
    bad = harness.write_json(os.path.join(work, "none-remote.json"), {
        "broker": {"url": "tcp://127.0.0.1:1"}, "db": {"path": "gw.db"},
        "notify": {"smtp": {"name": "mail", "url": "smtp://mail.example:25", "tls": "none",
                            "from": "agri@farm.vn", "to": ["a@farm.vn"]}}})
    r = harness.run([harness.bin_path("agrictl"), "config", "validate", bad])
    print("\"tls\": \"none\" for mail.example: exit %d %s" % (r.returncode, r.stderr.strip()))
    res.check(r.returncode == 78 and "notify.smtp.tls" in r.stderr,
              "\"tls\": \"none\" for a host that is not loopback is a config error")

    # 2. STARTTLS, the right name, the CA from notify.smtp.ca_file.
    srv = Smtp("starttls", good)
    rc, log, rows = deliver(work, "starttls", {"url": "smtp://localhost:%d" % srv.port,
                                               "ca_file": ca}, srv)
    print("STARTTLS, certificate for localhost: %d mails received (over TLS: %s), %d pending"
          % (len(srv.msgs), all(t for *_, t in srv.msgs) if srv.msgs else "-", len(rows)))
    res.check(rc == 0 and len(srv.msgs) == 3 and all(t for *_, t in srv.msgs) and not rows,
              "STARTTLS with a verified certificate: delivered, over TLS")
    srv.stop()

    # 3. STARTTLS, a certificate for another name (same CA).
    srv = Smtp("starttls", other)
    rc, log, rows = deliver(work, "wrong-name", {"url": "smtp://localhost:%d" % srv.port,
                                                 "ca_file": os.path.join(other, "ca.crt")}, srv)
    print("STARTTLS, certificate for other.example: %d mails, %d pending: %s"
          % (len(srv.msgs), len(rows), rows[0][1] if rows else "-"))
    res.check(not srv.msgs and len(rows) == 3 and "target host name" in (rows[0][1] or ""),
              "a certificate for another name: nothing sent, the reason kept")
    srv.stop()

    # 4. smtps:// from a CA the gateway does not trust (the system's CAs).
    srv = Smtp("smtps", good)
    rc, log, rows = deliver(work, "smtps-untrusted", {"url": "smtps://localhost:%d" % srv.port}, srv)
    print("smtps, certificate from an unknown CA: %d mails, %d pending: %s"
          % (len(srv.msgs), len(rows), rows[0][1] if rows else "-"))
    res.check(not srv.msgs and len(rows) == 3 and "certificate" in (rows[0][1] or ""),
              "smtps:// is verified: an unknown CA gets nothing, the reason kept")
    rc, log, rows = deliver(work, "smtps-ok", {"url": "smtps://localhost:%d" % srv.port,
                                               "ca_file": ca}, srv)
    res.check(len(srv.msgs) == 3 and not rows, "smtps:// with its CA: delivered")
    srv.stop()
    res.done()


if __name__ == "__main__":
    main()
