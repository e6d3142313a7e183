"""Notification channels and the persistent outbox (docs/notify.md), driven
through tests/integration/outbox_driver.c (real outbox, real libcurl
channels) against a local webhook / SMS receiver (http.server) and a local
SMTP sink (python3's smtpd):

1. the webhook is down (503, then connection refused) while 50 alerts are
   staged: e-mail and SMS are not held up, and afterwards every webhook
   notification arrives, in order, once;
2. kill -9 after the commit and before any delivery: the restarted driver
   delivers every notification exactly once on every channel;
3. kill -9 in the middle of deliveries to a slow receiver: everything
   arrives, in order; at most the one in-flight row is sent twice, with
   the same delivery id (at-least-once, documented);
4. e-mails carry UTF-8 Vietnamese (subject and body), SMS bodies the
   Vietnamese text first.
"""
import email
import email.header
import email.policy
import http.server
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore  # noqa: E402
    import smtpd  # noqa: E402


class Receiver:
    """Webhook (/hook) and SMS (/sms) receiver. mode: ok | fail (503) |
    slow (ok after delay). Stop/start on the same port for outages."""

    def __init__(self):
        self.port = harness.free_port()
        self.mode = "ok"
        self.delay = 0.0
        self.lock = threading.Lock()
        self.hooks = []   # (delivery id, alert json)
        self.sms = []     # form dict
        self.failed = 0
        self.srv = None

    def start(self):
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if rcv.mode == "fail":
                    with rcv.lock:
                        rcv.failed += 1
                    return self.reply(503)
                if rcv.delay:
                    time.sleep(rcv.delay)
                with rcv.lock:
                    if self.path == "/hook":
                        assert self.headers["Content-Type"] == "application/json"
                        rcv.hooks.append((self.headers["X-Agri-Delivery"],
                                          json.loads(body.decode("utf-8"))))
                    elif self.path == "/sms":
                        rcv.sms.append(urllib.parse.parse_qs(body.decode("ascii")))
                self.reply(200)

            def reply(self, code):
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class S(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # connections cut by kill -9 and by stop()

        self.srv = S(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.srv = None

    def seqs(self):
        with self.lock:
            return [int(a["id"].rsplit("/s", 1)[1]) for _, a in self.hooks]


class SmtpSink(smtpd.SMTPServer):
    def __init__(self, port):
        super().__init__(("127.0.0.1", port), None, decode_data=False)
        self.msgs = []
        self.lock = threading.Lock()

    def process_message(self, peer, mailfrom, rcpttos, data, **kw):
        with self.lock:
            self.msgs.append((mailfrom, rcpttos, data))


def start_smtp():
    port = harness.free_port()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sink = SmtpSink(port)
    threading.Thread(target=lambda: asyncore.loop(timeout=0.05), daemon=True).start()
    harness.wait_port(port)
    return sink, port


def mail_seq(data):
    m = email.message_from_bytes(data, policy=email.policy.default)
    return int(m["X-Agri-Alert"].rsplit("/s", 1)[1])


def main():
    work = harness.tmpdir("agri-notify-")
    rcv = Receiver().start()
    sink, smtp_port = start_smtp()
    cfg = {
        "broker": {"url": "tcp://127.0.0.1:1"},
        "db": {"path": "gw.db"},
        "notify": {
            "webhooks": [{"name": "ops", "url": "http://127.0.0.1:%d/hook" % rcv.port}],
            # smtpd has no STARTTLS: plain SMTP, allowed on loopback only
            # (test_gateway_smtp_tls.py tests the default, TLS required).
            "smtp": {"name": "mail", "url": "smtp://127.0.0.1:%d" % smtp_port,
                     "from": "agri@farm.vn", "to": ["agronomist@localhost"], "tls": "none"},
            "sms": {"name": "sms", "url": "http://127.0.0.1:%d/sms" % rcv.port,
                    "body": "to={to}&text={text}", "to": ["+84901234567"]},
        },
    }
    cfg_path = os.path.join(work, "gateway.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    drv = harness.bin_path("outbox_driver")
    db_path = os.path.join(work, "gw.db")
    n_runs = [0]

    def start(*args):
        n_runs[0] += 1
        return harness.Proc([drv, cfg_path] + list(args),
                            os.path.join(work, "driver%d.log" % n_runs[0]))

    def wait_committed(p, timeout=20):
        harness.wait_for(lambda: "committed" in p.log_text() or p.poll() is not None,
                         timeout, what="driver commit")
        assert "committed" in p.log_text(), p.describe()

    # --- 1. webhook down while 50 alerts are staged ----------------------
    t0 = time.time()
    rcv.mode = "fail"
    p = start("run", "1", "50", "--gap-ms", "10")
    wait_committed(p)
    # Mail is never held up by the webhook.
    harness.wait_for(lambda: len(sink.msgs) == 50, 20, what="50 e-mails while the webhook is down")
    harness.wait_for(lambda: rcv.failed >= 3, 10, what="failed webhook attempts")
    assert rcv.seqs() == [], rcv.seqs()
    # Now down hard: connection refused.
    rcv.stop()
    time.sleep(1.0)
    rcv.mode = "ok"
    rcv.start()
    harness.wait_for(lambda: len(rcv.hooks) >= 50, 20, what="50 webhook calls after recovery")
    time.sleep(0.5)
    assert rcv.seqs() == list(range(1, 51)), rcv.seqs()
    with rcv.lock:
        assert len(set(d for d, _ in rcv.hooks)) == 50
    harness.wait_for(lambda: len(rcv.sms) == 50, 20, what="50 SMS")
    assert p.stop() == 0, p.describe()
    out = p.log_text()
    assert 'agri_gateway_outbox_delivered_total{channel="ops"} 50' in out, out
    assert 'agri_gateway_outbox_pending{channel="ops"} 0' in out, out
    assert "channel=ops down" in out and "channel=ops delivering again" in out, out
    # Logged once, not per attempt.
    assert out.count("channel=ops down") == 1, out
    print("outage: 50 webhook notifications in order, once, after %.1fs" % (time.time() - t0))

    # E-mail: UTF-8 Vietnamese subject and body, the alert JSON inside.
    m = email.message_from_bytes(sink.msgs[0][2], policy=email.policy.default)
    assert m["Subject"] == ("[agri] CRITICAL salinity DT-W01: "
                            "Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01 (s1)"), m["Subject"]
    assert m.get_content_type() == "text/plain" and m.get_content_charset() == "utf-8"
    body = m.get_content()
    assert body.startswith("Độ mặn 4.3 g/L ≥ 4.0 g/L tại DT-W01 (s1)\n\nSalinity 4.3"), body
    assert '"id":"salinity/DT-W01/s1"' in body
    assert m["Message-ID"].startswith("<agri.") and m["Date"]
    assert [mail_seq(d) for _, _, d in sink.msgs] == list(range(1, 51))
    sms = rcv.sms[0]
    assert sms["to"] == ["+84901234567"], sms
    assert sms["text"][0].startswith("[NGUY HIỂM] Độ mặn 4.3 g/L"), sms
    assert "Salinity" not in sms["text"][0], sms  # Vietnamese only: two segments at most

    # --- 2. kill -9 after the commit, before any delivery ----------------
    p = start("stage", "51", "10", "--hold")
    wait_committed(p)
    p.kill9()
    con = sqlite3.connect(db_path)
    pending = con.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]
    con.close()
    assert pending == 30, pending
    p = start("run")
    harness.wait_for(lambda: len(rcv.hooks) >= 60 and len(sink.msgs) >= 60 and len(rcv.sms) >= 60,
                     20, what="the staged notifications after the restart")
    time.sleep(0.7)
    assert p.stop() == 0
    assert rcv.seqs() == list(range(1, 61)), rcv.seqs()
    assert [mail_seq(d) for _, _, d in sink.msgs] == list(range(1, 61))
    assert len(rcv.sms) == 60
    print("kill -9 before delivery: exactly once on every channel")

    # --- 3. kill -9 in the middle of deliveries -------------------------
    rcv.delay = 0.1
    p = start("run", "61", "20")
    wait_committed(p)
    harness.wait_for(lambda: len(rcv.hooks) >= 65, 20, what="some deliveries")
    p.kill9()
    rcv.delay = 0.0
    p = start("run")
    harness.wait_for(lambda: len(set(rcv.seqs())) == 80, 20, what="all 80 after the restart")

    def outbox_pending():
        con = sqlite3.connect(db_path, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL"
                               ).fetchone()[0]
        finally:
            con.close()

    harness.wait_for(lambda: outbox_pending() == 0, 20, what="every channel drained")
    time.sleep(0.3)
    assert p.stop() == 0
    seqs = rcv.seqs()
    firsts = sorted(set(seqs), key=seqs.index)
    assert firsts == list(range(1, 81)), seqs
    dups = len(seqs) - 80
    assert dups <= 1, seqs
    if dups:
        with rcv.lock:
            ids = [d for d, _ in rcv.hooks]
        assert len(set(ids)) == 80, "a resend must keep its delivery id"
    assert len(set(mail_seq(d) for _, _, d in sink.msgs)) == 80
    assert len(sink.msgs) <= 81 and len(rcv.sms) <= 81
    print("kill -9 during delivery: all 80 in order, %d resent once (at-least-once)" % dups)
    rcv.stop()
    print("ok (%.1fs)" % (time.time() - t0))


if __name__ == "__main__":
    main()
