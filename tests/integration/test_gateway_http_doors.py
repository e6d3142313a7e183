"""The HTTP API's door (docs/security.md "The HTTP API"; docs/api.md), each
finding of issue 24 against a running gateway:

- a client sending 2,000 requests a second gets 429s with Retry-After while
  another client's requests keep succeeding (their p99 printed, <= 50 ms);
  a client with a valid token is not limited;
- a request whose Host (or Origin) is not one of the gateway's names, such
  as "Host: evil.example" (DNS rebinding), is refused; loopback names and
  http.hosts are answered;
- with public_reads off, reads need a read or write token, a read token
  cannot write; a loopback listener's reads stay open by default;
- tokens under 32 random bytes stop the gateway at start, saying which file
  and why;
- wrong tokens are slowed per client: past five, that client's token tries
  are refused for a time, another client's are not;
- readings come in pages with a next link (and a Link header) that visit
  every row once, over both plans (merged series, the time index); large
  pages are streamed (chunked); the ETag gives 304;
- CSV cells that start with = + - @ tab or CR are quoted as text (Python's
  csv module reads them back with the leading ').

Against the code before issue 24 (AGRI_GATEWAY_BIN), each finding's check
fails. Ports and addresses: 127.0.0.1 and 127.0.0.2 (two clients on the
loopback device)."""
import csv
import http.client
import io
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import api_support as A  # noqa: E402

R = harness.Result("test_gateway_http_doors")
READ_TOKEN = "read-only-Qm8xT2vB7nK4pL9sD3fH6jR1wY5zC0gA8uE"
AUTH = {"Authorization": "Bearer " + A.TOKEN}


def req(port, path, method="GET", headers=None, body=None, source="127.0.0.1", timeout=10):
    """One request from source (an address on the loopback device).
    Returns (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def err_of(body):
    try:
        return json.loads(body).get("error", "")
    except ValueError:
        return ""


# --- 1. the default stack: loopback listener, reads open ------------------------------
st = A.Stack(harness.tmpdir(), rules=False)
end_ms, sent = A.seed(st, days=1)
port = st.http_port
print("seeded %d readings" % sent)


def flood(port, rate, seconds, source, headers, q):
    """A keep-alive client at `rate` requests a second (paced)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    codes, retry = {}, set()
    t0 = time.monotonic()
    n = 0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds:
            break
        due = t0 + n / rate
        if due > now:
            time.sleep(due - now)
        n += 1
        try:
            c.request("GET", "/api/v1/stations", headers=headers)
            r = c.getresponse()
            r.read()
            codes[r.status] = codes.get(r.status, 0) + 1
            if r.status == 429:
                retry.add(r.getheader("Retry-After"))
        except (OSError, http.client.HTTPException):
            codes["error"] = codes.get("error", 0) + 1
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    q.put((codes, sorted(x for x in retry if x), time.monotonic() - t0))


def victim(port, rate, seconds, source, q):
    """Another client asking `rate` times a second: its latencies."""
    lat, codes = [], {}
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        due = t0 + n / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        n += 1
        a = time.monotonic()
        c.request("GET", "/api/v1/stations")
        r = c.getresponse()
        r.read()
        lat.append(time.monotonic() - a)
        codes[r.status] = codes.get(r.status, 0) + 1
    q.put((codes, lat))


def run_flood(headers, seconds=5.0, flooders=2, rate=2000):
    q, qv = mp.Queue(), mp.Queue()
    ps = [mp.Process(target=flood, args=(port, rate / flooders, seconds, "127.0.0.2", headers, q))
          for _ in range(flooders)]
    pv = mp.Process(target=victim, args=(port, 20, seconds, "127.0.0.1", qv))
    for p in ps + [pv]:
        p.start()
    res = [q.get() for _ in ps]
    vcodes, lat = qv.get()
    for p in ps + [pv]:
        p.join()
    codes, retry = {}, set()
    for c_, r_, _ in res:
        for k, v in c_.items():
            codes[k] = codes.get(k, 0) + v
        retry.update(r_)
    sent_ = sum(codes.values())
    took = max(x[2] for x in res)
    return codes, sorted(retry), sent_ / took, vcodes, sorted(lat)


print("== a client at 2,000 requests/s (127.0.0.2, no token), another at 20/s (127.0.0.1)")
codes, retry, achieved, vcodes, lat = run_flood({})
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
print("flooder: %.0f requests/s achieved, answers %s, Retry-After %s" % (achieved, codes, retry))
print("other client: %d requests, answers %s, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (len(lat), vcodes, lat[len(lat) // 2] * 1000, p99, lat[-1] * 1000))
R.check(achieved >= 1800, "the flooder sent about 2,000 requests a second (%.0f)" % achieved)
R.check(codes.get(429, 0) > 0.9 * sum(codes.values()) and codes.get(200, 0) > 0,
        "the flooder gets 429s past its burst (%s)" % codes)
R.check(retry and all(x.isdigit() and int(x) >= 1 for x in retry), "429s carry Retry-After (%s)" % retry)
R.check(vcodes == {200: len(lat)}, "the other client's requests all succeed (%s)" % vcodes)
R.check(p99 <= 50, "the other client's p99 %.1f ms <= 50 ms" % p99)
for _ in range(400):  # the bucket refilled a little since: empty it again
    s, h, b = req(port, "/api/v1/stations", source="127.0.0.2")
    if s == 429:
        break
R.check(s == 429 and "try again" in err_of(b) and h.get("content-type", "").startswith("application/json"),
        "a 429 says why, in JSON: %s" % err_of(b))
s, h, b = req(port, "/metrics")
R.check(s == 200 and "agri_gateway_http_limited_total" in b.decode(), "/metrics counts the 429s")

print("== the same flood with the write token (authorized: not limited)")
codes, retry, achieved, vcodes, lat = run_flood(AUTH, seconds=2.0, rate=1000)
print("token client: %.0f requests/s, answers %s" % (achieved, codes))
R.check(codes == {200: sum(codes.values())}, "a client with a valid token is not limited (%s)" % codes)

# --- 2. names: Host and Origin ------------------------------------------------------
time.sleep(1.0)
for host, ok in [("evil.example", False), ("evil.example:%d" % port, False),
                 ("127.0.0.1.evil.example", False), ("localhost.evil.example:%d" % port, False),
                 ("127.0.0.1:%d" % port, True), ("localhost:%d" % port, True),
                 ("LOCALHOST", True), ("[::1]:%d" % port, True), ("127.0.0.7", True)]:
    s, h, b = req(port, "/api/v1/stations", headers={"Host": host})
    if ok:
        R.check(s == 200, "Host: %s is answered (%d)" % (host, s))
    else:
        R.check(s in (403, 421) and "Host" in err_of(b), "Host: %s is refused: %d %s" % (host, s, err_of(b)))
s, h, b = req(port, "/", headers={"Host": "evil.example"})
R.check(s in (403, 421), "the dashboard page too is refused to Host: evil.example (%d)" % s)
s, h, b = req(port, "/api/v1/readings.csv?limit=5", headers={"Host": "evil.example"})
R.check(s in (403, 421) and b"station" not in b, "no readings to Host: evil.example (%d)" % s)
aid = q_aid = urllib.parse.quote("salinity-high/DT-W01/sonde1", safe="")
for origin, ok in [("http://evil.example", False), ("null", False), ("file://", False),
                   ("http://127.0.0.1:%d" % port, True), ("http://localhost:%d" % port, True)]:
    s, h, b = req(port, "/api/v1/alerts/%s/ack" % q_aid, method="POST",
                  headers=dict(AUTH, Origin=origin), body=b"{}")
    if ok:
        R.check(s not in (403, 421) or "Origin" not in err_of(b), "Origin: %s passes (%d)" % (origin, s))
    else:
        R.check(s == 403 and "Origin" in err_of(b), "Origin: %s is refused (%d %s)" % (origin, s, err_of(b)))

# --- 3. failed token tries, slowed per client ---------------------------------------
print("== wrong tokens from 127.0.0.2")
seen = []
for i in range(8):
    s, h, b = req(port, "/api/v1/stations", headers={"Authorization": "Bearer wrong-%d" % i},
                  source="127.0.0.2")
    seen.append((s, h.get("retry-after")))
print("answers: %s" % seen)
R.check([x[0] for x in seen[:6]] == [401] * 6, "the first six wrong tokens: 401")
R.check(seen[6][0] == 429 and seen[6][1] and int(seen[6][1]) >= 1,
        "then the client's token tries wait: 429, Retry-After %s" % seen[6][1])
s, h, b = req(port, "/api/v1/stations", headers=AUTH, source="127.0.0.2")
R.check(s == 429, "during the lockout even the right token from that client waits (%d)" % s)
s, h, b = req(port, "/api/v1/stations", headers=AUTH, source="127.0.0.1")
R.check(s == 200, "another client's right token is answered (%d)" % s)
s, h, b = req(port, "/api/v1/stations", source="127.0.0.2")
R.check(s in (200, 429) and (s == 200 or "token" not in err_of(b)),
        "requests without a token are not locked out (%d)" % s)
time.sleep(int(seen[6][1] or 1) + 0.2 if seen[6][1] else 1)
s, h, b = req(port, "/api/v1/stations", headers=AUTH, source="127.0.0.2")
R.check(s == 200, "after Retry-After the right token works again (%d)" % s)

# --- 4. readings: pages, next links, streaming, ETag --------------------------------
print("== readings pages")
# a station with 40 series: more than are merged in C, so pages walk readings_by_ts
many = gp.Station(st.mq.port, "DT-MANY", ack_timeout=3.0)
many.connected.wait(5)
rows = [{"ts": A.iso(end_ms - i * A.STEP), "sensor": "s%02d" % k, "metric": "water_level",
         "value": k + i / 100, "unit": "m", "q": "ok"} for i in range(25) for k in range(40)]
A._publish_all(many, "DT-MANY", rows)
harness.wait_for(lambda: many.pending() == 0, 30, what="DT-MANY acked")
many.close()


def get_json(path, headers=AUTH):
    """With the token: a walk of hundreds of pages is not slowed."""
    s, h, b = req(port, path, headers=headers)
    return s, h, (json.loads(b) if s == 200 else None)


def walk(path, limit):
    """Follows the next links from path; returns (rows, pages, links ok)."""
    out, pages, links_ok = [], 0, True
    url = path + "&limit=%d" % limit
    while url and pages < 10000:
        s, h, j = get_json(url)
        if s != 200:
            return None, pages, False
        pages += 1
        out += j["readings"]
        nxt = j.get("next")
        if j["truncated"] and not nxt:
            return out, pages, False
        if nxt and h.get("link") != "<%s>; rel=\"next\"" % nxt:
            links_ok = False
        url = nxt
    return out, pages, links_ok


def key(r):
    return (r["ts"], r["station"], r["sensor"], r["metric"])


for what, path in [("one station, 4 series merged", "/api/v1/readings?station=DT-W01"),
                   ("every series (54): the time index", "/api/v1/readings?from=" +
                    urllib.parse.quote(A.iso(end_ms - 6 * A.HOUR))),
                   ("40 series of one station: the time index", "/api/v1/readings?station=DT-MANY")]:
    s, h, whole = get_json(path + "&limit=100000")
    paged, pages, links_ok = walk(path, 7)
    ok = whole is not None and paged is not None
    R.check(ok and paged == whole["readings"] and len(set(map(key, paged))) == len(paged),
            "%s: %d rows in %d pages of 7, each once, in the order of one page" %
            (what, len(paged or []), pages))
    R.check(ok and links_ok, "%s: each page's Link header is its next link" % what)
    R.check(ok and all(paged[i]["ts"] <= paged[i + 1]["ts"] for i in range(len(paged) - 1)),
            "%s: oldest first across pages" % what)
# next_from (the old way) repeats rows at a shared timestamp; the cursor does not
s, h, j = get_json("/api/v1/readings?station=DT-MANY&limit=30")
R.check(s == 200 and "cursor=" in (j.get("next") or "") and j["next_from"] == j["readings"][-1]["ts"],
        "a page cut inside a timestamp: next goes on inside it (%s)" % (j or {}).get("next"))
s, h, b = req(port, "/api/v1/readings?cursor=zz")
R.check(s == 400 and "cursor" in err_of(b), "a bad cursor: 400 (%s)" % err_of(b))
# CSV pages: the Link header
s, h, b = req(port, "/api/v1/readings.csv?station=DT-W01&limit=5")
R.check(s == 200 and h.get("link", "").startswith("</api/v1/readings.csv?station=DT-W01&limit=5&cursor="),
        "a CSV page says where the next is in Link (%s)" % h.get("link"))
# a large page is streamed, not built whole
s, h, b = req(port, "/api/v1/readings?limit=100000")
j = json.loads(b) if s == 200 else {}
R.check(s == 200 and h.get("transfer-encoding") == "chunked" and "content-length" not in h and
        j.get("count") == len(j.get("readings", [])) and len(b) > 300000,
        "a %d-byte page is streamed (chunked), whole JSON with count %s" % (len(b), j.get("count")))
s, h, b = req(port, "/api/v1/readings?station=DT-W01&metric=salinity&limit=10")
s2, h2, b2 = req(port, "/api/v1/readings?station=DT-W01&metric=salinity&limit=10",
                 headers={"If-None-Match": h.get("etag", "x")})
R.check(s == 200 and h.get("etag") and s2 == 304 and b2 == b"", "a readings page's ETag gives 304")
s3, h3, b3 = req(port, "/api/v1/readings?limit=100000", headers={"If-None-Match": "x"})
s4, h4, b4 = req(port, "/api/v1/readings?limit=100000", headers={"If-None-Match": h3.get("etag", "x")})
R.check(s3 == 200 and s4 == 304, "a streamed page's ETag gives 304 too")

# --- 5. CSV cells a spreadsheet would run -----------------------------------------
print("== CSV formulas")
sus = gp.Station(st.mq.port, "DT-CSV", ack_timeout=3.0)
sus.connected.wait(5)
nasty = [("-cmd", "=1+2", -1.5), ("plus", "+SUM(A1:A9)", 2.0), ("at", "@SUM(A1)", 3.0),
         ("tab", "\t=1", 4.0), ("cr", "\r=1", 5.0), ("ok", "g/L", 6.0), ("quote", 'a"b,c', 7.0)]
A._publish_all(sus, "DT-CSV", [{"ts": A.iso(end_ms), "sensor": s_, "metric": "turbidity", "value": v,
                                 "unit": u, "q": "ok"} for s_, u, v in nasty])
harness.wait_for(lambda: sus.pending() == 0, 30, what="DT-CSV acked")
sus.close()
stored = dict(gp.query(st.db, "SELECT se.sensor, r.unit FROM readings r JOIN series se ON se.id = r.series_id"
                              " JOIN stations st ON st.id = se.station_id WHERE st.name = 'DT-CSV'"))
print("stored units: %r" % stored)
s, h, b = req(port, "/api/v1/readings.csv?station=DT-CSV&limit=100")
rows = list(csv.reader(io.StringIO(b.decode("utf-8"), newline="")))
by_sensor = {r[1]: r for r in rows[1:]}
R.check(s == 200 and rows[0] == ["station", "sensor", "metric", "ts", "value", "unit", "q", "received_at"]
        and len(rows) == 1 + len(stored), "the export reads back with csv (%d rows)" % (len(rows) - 1))
for sensor, unit in sorted(stored.items()):
    r = by_sensor.get("'" + sensor if sensor[0] in "=+-@\t\r" else sensor)
    if r is None:
        R.check(False, "sensor %r: its row (sensors: %s)" % (sensor, sorted(by_sensor)))
        continue
    want = "'" + unit if unit[:1] in ("=", "+", "-", "@", "\t", "\r") else unit
    R.check(r[5] == want, "unit %r reads back as %r (%r)" % (unit, want, r[5]))
R.check(by_sensor.get("'-cmd", [None] * 5)[4] == "-1.5", "a negative value stays a number (-1.5)")
R.check(not any(c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not c[1:2].isdigit())
                for r in rows for c in r), "no cell of the export starts a formula")
st.stop()

# --- 6. reads behind a token ----------------------------------------------------------
print("== public_reads: false, a read token")
d = harness.tmpdir()
with open(os.path.join(d, "read.token"), "w") as f:
    f.write(READ_TOKEN + "\n")
st2 = None
try:
    st2 = A.Stack(d, rules=False, http={"public_reads": False, "read_token_file": "read.token",
                                       "hosts": ["gateway.lan"]})
except (RuntimeError, TimeoutError):
    R.check(False, "a gateway with public_reads, read_token_file and hosts starts (%s)"
            % open(os.path.join(d, "gw.log")).read().strip()[-200:])
if st2:
    p2 = st2.http_port
    rt = {"Authorization": "Bearer " + READ_TOKEN}
    for path in ("/api/v1/stations", "/api/v1/readings?limit=1", "/api/v1/readings.csv?limit=1",
                 "/api/v1/alerts", "/api/v1/today", "/metrics"):
        s, h, b = req(p2, path)
        R.check(s == 401 and "Bearer" in h.get("www-authenticate", ""), "%s without a token: 401 (%d)" % (path, s))
        R.check(req(p2, path, headers=rt)[0] == 200, "%s with the read token: 200" % path)
        R.check(req(p2, path, headers=AUTH)[0] == 200, "%s with the write token: 200" % path)
    R.check(req(p2, "/healthz")[0] == 200 and req(p2, "/")[0] == 200, "healthz and the page need none")
    s, h, b = req(p2, "/api/v1/alerts/%s/ack" % aid, method="POST", headers=rt, body=b"{}")
    R.check(s == 403 and "only reads" in err_of(b), "the read token cannot write: 403 (%s)" % err_of(b))
    R.check(req(p2, "/api/v1/stations", headers=dict(rt, Host="gateway.lan:%d" % p2))[0] == 200,
            "Host: gateway.lan (http.hosts) is answered")
    R.check(req(p2, "/api/v1/stations", headers=dict(rt, Host="GATEWAY.LAN."))[0] == 200,
            "Host: GATEWAY.LAN. is the same name")
    R.check(req(p2, "/api/v1/stations", headers=dict(rt, Host="other.lan"))[0] == 403,
            "Host: other.lan is not")
    st2.stop()

# --- 7. short tokens stop the gateway at start -------------------------------------
print("== token length")
for tok, why in [("t0k3n-for-tests-only", "the token is 20 characters, need at least 43"),
                 (os.urandom(16).hex(), "the token is 32 characters")]:
    d = harness.tmpdir()
    mq = harness.Mosquitto(os.path.join(d, "mq")).start()
    with open(os.path.join(d, "api.token"), "w") as f:
        f.write(tok + "\n")
    cfg = harness.write_json(os.path.join(d, "gateway.json"), {
        "broker": {"url": mq.url}, "db": {"path": "agri.db"},
        "http": {"listen": "127.0.0.1:%d" % harness.free_port(), "token_file": "api.token"}})
    want = "%s: http.token_file: %s: %s" % (cfg, os.path.join(d, "api.token"), why)
    try:
        r = harness.run([A.gateway_bin(), "--config", cfg], timeout=10)
        R.check(r.returncode == 78 and want in r.stderr,
                "a %d-character token: exit 78, \"%s\" (%d: %s)" % (len(tok), want, r.returncode,
                                                                 r.stderr.strip()[:160]))
    except subprocess.TimeoutExpired:
        R.check(False, "a %d-character token stops the gateway at start (it ran)" % len(tok))
    mq.stop()
agrictl = harness.bin_path("agrictl")
r = harness.run([agrictl, "token", "new"])
tok = r.stdout.strip()
R.check(r.returncode == 0 and len(tok) == 43 and
        all(c.isalnum() or c in "-_" for c in tok), "agrictl token new: 43 base64url characters (%s...)" % tok[:6])
R.check(harness.run([agrictl, "token", "new"]).stdout.strip() != tok, "a new one each time")
d = harness.tmpdir()
out = os.path.join(d, "api.token")
r = harness.run([agrictl, "token", "new", "--out", out])
R.check(r.returncode == 0 and oct(os.stat(out).st_mode & 0o777) == "0o600" and
        len(open(out).read().strip()) == 43, "agrictl token new --out: a 0600 file")
r = harness.run([agrictl, "token", "new", "--out", out])
R.check(r.returncode == 1 and "exists" in r.stderr, "and it never replaces one without --force")
R.done()
