#!/usr/bin/env python3
"""A SensorThings server does not choose where the gateway connects
(docs/upstream.md "SensorThings API", docs/security.md "A malicious
SensorThings server").

The sink lists a Datastream's observations (following @iot.nextLink) to
reconcile after an answer was lost. sta_server.py pages one observation at
a time and, for each case, stores a CreateObservations without answering
(so the sink must reconcile) while handing out a nextLink:

- on the configured server (the control): followed, nothing duplicated;
- on another host (an HTTP server on 127.0.0.2 that records every hit),
  another port of the same host, another scheme (file:///etc/passwd):
  not followed, nothing fetched there, nothing sent blind, and the gateway
  says why, once; when the server's links are right again the sink
  recovers and every reading is on the server exactly once."""
import collections
import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import gateway_peer  # noqa: E402
import sta_server  # noqa: E402
import upstream_support as us  # noqa: E402

MARK = "@iot.nextLink not followed"


class Elsewhere:
    """An HTTP server where no request should ever arrive."""

    def __init__(self, host):
        self.hits = []
        me = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                me.hits.append(self.path)
                data = b'{"value": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.srv = http.server.ThreadingHTTPServer((host, 0), H)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def observed(srv):
    names = dict((i, e["name"]) for i, e in srv.state.entities["Datastreams"].items())
    with srv.state.lock:
        return collections.Counter((names[d], ms) for d, ms, _, _ in srv.state.observations)


def main():
    res = harness.Result("test_upstream_sta_nextlink")
    d = harness.tmpdir("agri-nextlink-")
    db = os.path.join(d, "agri.db")
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    srv = sta_server.StaServer(harness.free_port())
    srv.state.page_max = 1
    other_host = Elsewhere("127.0.0.2")
    other_port = Elsewhere("127.0.0.1")
    cfg = us.write_config(d, mq.port, sensorthings=srv.url, db=db)
    gw = gateway_peer.Gateway(d, cfg).start()
    st = gateway_peer.Station(mq.port, "NL-1", ack_timeout=3.0)
    st.connected.wait(10)
    seq = [0]

    def publish():
        seq[0] += 1
        st.publish(seq[0], gateway_peer.batch("NL-1", seq[0], n=6))
        harness.wait_for(lambda: st.pending() == 0, 20, what="batch %d acked" % seq[0])

    def caught_up():
        cur = gateway_peer.query(db, "SELECT seq FROM upstream_cursor WHERE sink = 'sensorthings'")
        head = gateway_peer.query(db, "SELECT max(seq) FROM upstream_queue")
        return cur and head and cur[0][0] == head[0][0]

    def stored():
        return len(srv.state.observations)

    def lost_answer(link):
        """The next CreateObservations is stored, its answer lost; the sink
        reconciles and meets link (None: this server's own)."""
        srv.state.next_link = link
        srv.state.drop_after_commit = 1
        publish()
        harness.wait_for(lambda: srv.state.drop_after_commit == 0, 20, what="the lost answer")

    publish()
    harness.wait_for(lambda: stored() == 6, 20, what="the first batch observed")

    # Control: links on the configured server are followed, page by page.
    pages = srv.state.pages_served
    lost_answer(None)
    harness.wait_for(caught_up, 20, what="the sink caught up after the lost answer")
    obs = observed(srv)
    res.check(srv.state.pages_served - pages >= 6 and stored() == 12
              and max(obs.values()) == 1,
              "nextLinks on the configured server are followed: %d pages read, 12 observations,"
              " none twice" % (srv.state.pages_served - pages))

    cases = [
        ("another host", "http://127.0.0.2:%d%s/Datastreams(1)/Observations?$skip=1"
         % (other_host.port, srv.httpd.prefix), "host 127.0.0.2 is not the configured server's"),
        ("another port", "http://127.0.0.1:%d%s/Datastreams(1)/Observations?$skip=1"
         % (other_port.port, srv.httpd.prefix), "port %d is not the configured server's"
         % other_port.port),
        ("another scheme", "file:///etc/passwd", "scheme file is not the configured server's http"),
    ]
    for name, link, reason in cases:
        before = stored()
        creates = srv.state.create_obs_requests
        marks = gw.proc.log_text().count(MARK)
        lost_answer(link)
        try:
            harness.wait_for(lambda: gw.proc.log_text().count(MARK) > marks, 10,
                             what="the gateway saying why")
        except TimeoutError:
            pass
        time.sleep(1.2)  # retries with backoff (0.5 s, 1 s)
        lines = [l for l in gw.proc.log_text().splitlines() if MARK in l][marks:]
        print("%s: %s" % (name, lines[0] if lines else "no line logged"))
        res.check(len(lines) == 1 and reason in lines[0],
                  "%s: the nextLink is not followed and the gateway says why, once" % name)
        res.check(not other_host.hits and not other_port.hits,
                  "%s: nothing fetched elsewhere (%d requests arrived there)"
                  % (name, len(other_host.hits) + len(other_port.hits)))
        res.check(stored() == before + 6 and srv.state.create_obs_requests == creates + 1,
                  "%s: nothing sent blind while the listing is incomplete" % name)
        srv.state.next_link = None
        harness.wait_for(caught_up, 30, what="the sink caught up on the configured server")

    publish()
    want = set(("%s/%s/%s" % (a, b, c), t) for a, b, c, t in us.gateway_readings(db))
    harness.wait_for(lambda: set(observed(srv)) >= want, 30, what="every reading observed")
    time.sleep(0.5)
    obs = observed(srv)
    res.check(set(obs) == want and max(obs.values()) == 1,
              "afterwards every reading is on the server once (%d readings, %d observations)"
              % (len(want), sum(obs.values())))
    res.check(not srv.state.violations, "no request broke the spec's shapes: %s"
              % srv.state.violations[:3])
    st.close()
    gw.stop()
    mq.stop()
    res.done()


if __name__ == "__main__":
    main()
