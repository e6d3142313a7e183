#!/usr/bin/env python3
"""The gateway's own broker link over TLS checks the broker's name, not
only its chain (docs/security.md, "The hub's other doors").

A mosquitto with a TLS listener on 127.0.0.1 whose certificate is made by
broker/make-certs for another name ("other.example"; make-certs also puts
IP 127.0.0.1 in every server certificate, so the gateway connects by the
name "localhost", which the certificate does not hold): the gateway, with
the right CA, must refuse it and say why. The same gateway config against
a certificate for "localhost" from the same CA connects (the control), and
a certificate from another CA is refused as before."""
import os
import pwd
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer  # noqa: E402

MAKE_CERTS = os.path.join(harness.SRC, "broker", "make-certs")


def certs(d, name):
    subprocess.run([MAKE_CERTS, d, name], check=True, capture_output=True)
    return d


def tls_broker(work, name, certdir):
    conf = ("cafile %s/ca.crt\ncertfile %s/server.crt\nkeyfile %s/server.key\n"
            % (certdir, certdir, certdir))
    if os.geteuid() == 0:  # root mosquitto drops to user "mosquitto", which can't read work/
        conf += "user %s\n" % pwd.getpwuid(os.geteuid()).pw_name
    return harness.Mosquitto(os.path.join(work, name), extra_conf=conf).start()


def gateway(work, name, port, ca):
    cfg = {"broker": {"url": "ssl://localhost:%d" % port, "client_id": "gw-" + name,
                      "ca_file": ca, "keepalive_s": 10},
           "db": {"path": os.path.join(work, name + ".db")}}
    path = harness.write_json(os.path.join(work, name + ".json"), cfg)
    return gateway_peer.Gateway(work, path, name=name).start(wait=False)


def outcome(gw, timeout=6.0):
    """'connected' or the reason the gateway logged for not connecting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = gw.proc.log_text()
        if "subscribed topics" in log:
            return "connected", log
        for line in log.splitlines():
            if "cannot connect" in line:
                return line.split("reason=", 1)[-1], log
        if gw.proc.poll() is not None:
            raise RuntimeError("gateway exited: %s" % gw.proc.describe())
        time.sleep(0.05)
    return "nothing logged in %.0fs" % timeout, gw.proc.log_text()


def main():
    res = harness.Result("test_gateway_broker_tls")
    work = harness.tmpdir("agri-brokertls-")
    wrong = certs(os.path.join(work, "certs-other"), "other.example")
    right = certs(os.path.join(work, "certs-localhost"), "localhost")
    # A second CA's certificate for the right name.
    alien = certs(os.path.join(work, "certs-alien"), "localhost")

    b_wrong = tls_broker(work, "mq-wrong", wrong)
    gw = gateway(work, "gw-wrong", b_wrong.port, os.path.join(wrong, "ca.crt"))
    what, log = outcome(gw)
    print("broker with a certificate for other.example, reached as localhost: %s" % what)
    res.check(what != "connected",
              "the gateway refuses a broker whose certificate names another host (right CA)")
    res.check("cannot connect" in log and "url=ssl://localhost:%d" % b_wrong.port in log,
              "the gateway logs why it does not connect")
    gw.stop()
    b_wrong.stop()

    b_right = tls_broker(work, "mq-right", right)
    gw = gateway(work, "gw-right", b_right.port, os.path.join(right, "ca.crt"))
    what, _ = outcome(gw)
    print("broker with a certificate for localhost: %s" % what)
    res.check(what == "connected", "the same config connects to a broker with the right name")
    gw.stop()

    gw = gateway(work, "gw-alien", b_right.port, os.path.join(alien, "ca.crt"))
    what, _ = outcome(gw)
    print("broker whose certificate is from another CA: %s" % what)
    res.check(what != "connected", "a certificate from another CA is refused")
    gw.stop()
    b_right.stop()
    res.done()


if __name__ == "__main__":
    main()
