"""agri-gateway HTTP API (docs/interfaces.md §7, §13; docs/api.md) against a running
gateway with a seeded database: every endpoint, every filter, every error
path; acknowledgement without or with a wrong token is 401 and changes
nothing; a slow client does not stall the server."""
import json
import os
import socket
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import gateway_peer as gp  # noqa: E402
import api_support as A  # noqa: E402

R = harness.Result("test_gateway_api")
d = harness.tmpdir()
st = A.Stack(d)
end_ms, sent = A.seed(st)
alerts_from = A.ensure_alerts(st, end_ms)
forecast_from = A.ensure_forecast(st, "DT-W01", end_ms)
print("seeded %d readings; alerts: %s; forecast: %s" % (sent, alerts_from, forecast_from))
get = lambda path, **kw: A.request(st.url(path), **kw)  # noqa: E731
q = urllib.parse.quote


def is_err(r, code, words=""):
    try:
        body = r.json()
    except ValueError:
        return False
    return (r.status == code and isinstance(body.get("error"), str) and words in body["error"]
            and r.headers.get("Content-Type", "").startswith("application/json"))


# --- /healthz ------------------------------------------------------------
r = get("/healthz")
R.check(r.status == 200 and r.json()["status"] == "ok" and r.json()["connected"] is True,
        "healthz 200 when connected and writable: %s" % r.text.strip())

# --- /api/v1/stations ----------------------------------------------------
r = get("/api/v1/stations")
sts = {s["station"]: s for s in r.json()["stations"]}
R.check(r.status == 200 and set(sts) == {"DT-W01", "DT-W02", "TRAP-01"}, "stations listed: %s" % sorted(sts))
R.check(list(sts) == sorted(sts), "stations sorted by name")
w1 = sts["DT-W01"]
R.check(w1["state"] == "online" and w1["last_seen"].endswith("Z") and w1["fw"] == "1.2.0",
        "state, last_seen, fw from status")
lat = {(l["sensor"], l["metric"]): l for l in w1["latest"]}
R.check(set(lat) == {("sonde1", "salinity"), ("sonde1", "water_temperature"),
                     ("sonde1", "dissolved_oxygen"), ("pwr", "battery_voltage")},
        "latest of each series: %s" % sorted(lat))
R.check(lat[("sonde1", "salinity")]["ts"] == A.iso(end_ms) and
        abs(lat[("sonde1", "salinity")]["value"] - A.salinity_at("DT-W01", end_ms)) < 1e-9,
        "latest salinity is the newest reading")
R.check(len(sts["TRAP-01"]["latest"]) == 6, "trap: 5 insect classes + lamp")
R.check(is_err(get("/api/v1/stations?x=1"), 400, "unknown parameter"), "stations: unknown parameter 400")

# --- /api/v1/readings -----------------------------------------------------
base = "/api/v1/readings?station=DT-W01&metric=salinity"
r = get(base + "&limit=100000")
rows = r.json()["readings"]
R.check(r.status == 200 and len(rows) == 3 * 96 + 1 and r.json()["truncated"] is False,
        "all salinity readings of DT-W01 (%d)" % len(rows))
R.check([x["ts"] for x in rows] == sorted(x["ts"] for x in rows), "oldest first")
R.check(set(rows[0]) == {"station", "sensor", "metric", "ts", "value", "unit", "q", "received_at"},
        "reading fields as v_readings")
r = get(base)
R.check(r.json()["count"] == len(rows) and r.json()["limit"] == 1000, "default limit 1000")
r = get(base + "&limit=10")
j = r.json()
R.check(j["count"] == 10 and j["truncated"] is True and j["next_from"] == rows[10]["ts"],
        "limit truncates with next_from")
r2 = get(base + "&limit=10&from=" + q(j["next_from"]))
R.check(r2.json()["readings"][0]["ts"] == rows[10]["ts"], "paging with next_from continues")
f, t = A.iso(end_ms - 24 * A.HOUR), A.iso(end_ms)
r = get(base + "&from=%s&to=%s" % (q(f), q(t)))
R.check(len(r.json()["readings"]) == 96 and r.json()["readings"][0]["ts"] == f and
        r.json()["readings"][-1]["ts"] < t, "24 h window: from inclusive, to exclusive (96)")
r = get(base + "&from=" + q(A.iso(end_ms - A.HOUR).replace(".000Z", "+07:00")))
R.check(r.status == 200 and len(r.json()["readings"]) == 4 * 8 + 1, "from with a +07:00 offset")
r = get("/api/v1/readings?station=DT-W01&limit=100000")
R.check({x["metric"] for x in r.json()["readings"]} ==
        {"salinity", "water_temperature", "dissolved_oxygen", "battery_voltage"}, "station filter only")
mixed = r.json()["readings"]
R.check(all(mixed[i]["ts"] <= mixed[i + 1]["ts"] for i in range(len(mixed) - 1)),
        "several series merged oldest first")
r = get("/api/v1/readings?station=DT-W01&sensor=pwr&limit=100000")
R.check(r.json()["count"] in (72, 73) and all(x["sensor"] == "pwr" for x in r.json()["readings"]),
        "sensor filter")
r = get("/api/v1/readings?metric=salinity&limit=100000&from=" + q(f))
R.check({x["station"] for x in r.json()["readings"]} == {"DT-W01", "DT-W02"} and
        r.json()["count"] == 2 * (96 + 1), "metric filter across stations")
r = get("/api/v1/readings?station=TRAP-01&metric=insect_count&sensor=trap1-bph&limit=5")
R.check(r.json()["count"] == 5 and r.json()["readings"][0]["unit"] == "count", "insect counts by sensor")
r = get("/api/v1/readings?station=DT-W02&metric=ph")
R.check(r.status == 200 and r.json()["readings"] == [], "canonical metric never reported: empty list")
r = get("/api/v1/readings?station=DT-W01&sensor=nope")
R.check(r.status == 200 and r.json()["readings"] == [], "unknown sensor: empty list")

# errors
for path, code, words, what in [
    ("/api/v1/readings?station=NOPE", 404, "unknown station", "unknown station 404"),
    ("/api/v1/readings?station=bad%20id", 400, "bad station", "malformed station 400"),
    ("/api/v1/readings?metric=foo_bar", 400, "unknown metric", "unknown metric 400"),
    ("/api/v1/readings?metric=a.b", 400, "bad metric", "malformed metric 400"),
    ("/api/v1/readings?sensor=" + "x" * 40, 400, "bad sensor", "malformed sensor 400"),
    ("/api/v1/readings?from=yesterday", 400, "bad from", "bad from 400"),
    ("/api/v1/readings?to=2026-02-30T00:00:00Z", 400, "bad to", "impossible date 400"),
    ("/api/v1/readings?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 400, "before", "from after to 400"),
    ("/api/v1/readings?limit=0", 400, "bad limit", "limit 0 400"),
    ("/api/v1/readings?limit=100001", 400, "bad limit", "huge limit 400"),
    ("/api/v1/readings?limit=-5", 400, "bad limit", "negative limit 400"),
    ("/api/v1/readings?limit=10x", 400, "bad limit", "non-numeric limit 400"),
    ("/api/v1/readings?limit=99999999999999999999", 400, "bad limit", "overflowing limit 400"),
    ("/api/v1/readings?station=DT-W01&station=DT-W02", 400, "twice", "repeated parameter 400"),
    ("/api/v1/readings?stations=DT-W01", 400, "unknown parameter", "unknown parameter 400"),
]:
    r = get(path)
    R.check(is_err(r, code, words), "%s (%d %s)" % (what, r.status, r.text.strip()[:90]))

# --- CSV --------------------------------------------------------------------
r = get("/api/v1/readings.csv?station=DT-W01&metric=salinity&limit=100000")
lines = r.text.splitlines()
R.check(r.status == 200 and r.headers["Content-Type"].startswith("text/csv"), "csv content type")
R.check(lines[0] == "station,sensor,metric,ts,value,unit,q,received_at", "csv header row")
R.check(len(lines) == len(rows) + 1 and lines[1].split(",")[3] == rows[0]["ts"] and
        float(lines[1].split(",")[4]) == rows[0]["value"], "csv rows match JSON")
r = get("/api/v1/readings.csv?station=DT-W01&sensor=sonde1&metric=water_temperature&limit=1")
R.check(r.text.splitlines()[1].split(",")[5] == "°C", "csv keeps UTF-8 units")
R.check(is_err(get("/api/v1/readings.csv?limit=1000000"), 400, "bad limit"), "csv: same checks (400)")

# --- alerts ------------------------------------------------------------------
r = get("/api/v1/alerts")
al = {a["id"]: a for a in r.json()["alerts"]}
R.check(r.status == 200 and "salinity-high/DT-W01/sonde1" in al, "alerts: all (%d)" % len(al))
a = al["salinity-high/DT-W01/sonde1"]
R.check(a["state"] == "active" and a["severity"] == "critical" and a["raised_at"].endswith("Z")
        and a["v"] == 1 and isinstance(a["events"], list) and a["events"][0]["state"] == "active",
        "alert document with its history")
r = get("/api/v1/alerts?state=active&history=0")
R.check(all(x["state"] == "active" for x in r.json()["alerts"]) and
        all("events" not in x for x in r.json()["alerts"]), "state=active, history=0")
if alerts_from == "inserted":
    R.check(len(get("/api/v1/alerts?state=cleared").json()["alerts"]) == 1, "state=cleared")
    ev = al["do-low/DT-W02/sonde1"]["events"]
    R.check([e["state"] for e in ev] == ["active", "cleared"], "events oldest first")
    R.check("sensor" not in al["station-offline/DT-W03"], "per-station alert: no sensor key")
R.check(all(x["station"] == "DT-W01" for x in get("/api/v1/alerts?station=DT-W01").json()["alerts"]),
        "station filter")
for path, words in [("/api/v1/alerts?state=bogus", "bad state"), ("/api/v1/alerts?limit=0", "bad limit"),
                    ("/api/v1/alerts?history=x", "bad history"), ("/api/v1/alerts?foo=1", "unknown parameter")]:
    R.check(is_err(get(path), 400, words), "alerts: %s 400" % words)

# --- acknowledgement ---------------------------------------------------------
aid = "salinity-high/DT-W01/sonde1"
ack_path = "/api/v1/alerts/%s/ack" % q(aid, safe="")
before = gp.query(st.db, "SELECT state, updated_at FROM alerts WHERE id = ?", (aid,))
n_events = gp.query(st.db, "SELECT count(*) FROM alert_events")[0][0]
for hdrs, what in [({}, "no token"), ({"Authorization": "Bearer wrong"}, "wrong token"),
                   ({"Authorization": "Bearer " + A.TOKEN + "x"}, "token with a suffix"),
                   ({"Authorization": "Bearer " + A.TOKEN[:-1]}, "token prefix"),
                   ({"Authorization": "Basic " + A.TOKEN}, "wrong scheme")]:
    r = get(ack_path, method="POST", headers=hdrs)
    R.check(is_err(r, 401, "token") and "Bearer" in r.headers.get("WWW-Authenticate", ""),
            "ack with %s: 401" % what)
R.check(gp.query(st.db, "SELECT state, updated_at FROM alerts WHERE id = ?", (aid,)) == before and
        gp.query(st.db, "SELECT count(*) FROM alert_events")[0][0] == n_events,
        "refused acknowledgements changed nothing")
auth = {"Authorization": "Bearer " + A.TOKEN}
R.check(is_err(get(ack_path, headers=auth), 405), "GET on ack: 405")
R.check(is_err(get("/api/v1/alerts/bad%20id/ack", method="POST", headers=auth), 400, "bad alert id"),
        "malformed alert id: 400")
R.check(is_err(get(ack_path, method="POST", headers=auth, data=b"{nope"), 400, "bad body"), "bad body: 400")
R.check(is_err(get(ack_path, method="POST", headers=auth, data=b"x" * 5000), 413), "huge body: 413")
r = get("/api/v1/alerts/%s/ack" % q("salinity-high/DT-W09/sonde1", safe=""), method="POST", headers=auth)
if r.status == 503:
    R.check(is_err(r, 503, "no alert engine"), "no alert engine wired: 503")
    print("NOTE: this build has no alert engine behind the API: the 200/404 paths are not tested")
else:
    R.check(is_err(r, 404, "unknown alert"), "unknown alert: 404 (%d)" % r.status)
    r = get(ack_path, method="POST", headers=auth, data=json.dumps({"by": "agronomist-1"}).encode())
    R.check(r.status == 200 and r.json()["state"] == "acknowledged" and r.json()["changed"] is True,
            "ack with the token: 200 %s" % r.text.strip())
    harness.wait_for(lambda: gp.query(st.db, "SELECT state FROM alerts WHERE id = ?", (aid,))[0][0]
                     == "acknowledged", 5, what="acknowledged in the store")
    R.check(get("/api/v1/alerts?state=acknowledged").json()["alerts"][0]["id"] == aid,
            "acknowledged alert listed as such")
    r = get(ack_path, method="POST", headers=auth)
    R.check(r.status == 200 and r.json()["changed"] is False, "second ack: 200, unchanged")

# --- forecast, advisories ----------------------------------------------------
r = get("/api/v1/forecast?station=DT-W01&metric=salinity")
R.check(r.status == 200 and r.json()["station"] == "DT-W01" and len(r.json()["points"]) == 288,
        "forecast document (%d)" % r.status)
R.check(is_err(get("/api/v1/forecast?station=DT-W02"), 404, "no forecast yet"), "no forecast: 404 with why")
R.check(is_err(get("/api/v1/forecast?station=NOPE"), 404, "no forecast yet"), "unknown station: 404")
R.check(is_err(get("/api/v1/forecast"), 400, "station is required"), "forecast needs a station")
R.check(is_err(get("/api/v1/forecast?station=DT-W01&metric=a.b"), 400, "bad metric"), "forecast: bad metric")
r = get("/api/v1/advisories")
R.check(r.status in (200, 404) and (r.status == 404 or isinstance(r.json()["advisories"], list)),
        "advisories list (%d)" % r.status)
if forecast_from == "inserted":
    R.check(r.json()["advisories"][0]["kind"] == "sow_after_peak", "advisory fields")

# --- /metrics ----------------------------------------------------------------
r = get("/metrics")
m = {}
for line in r.text.splitlines():
    if line and not line.startswith("#"):
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
R.check(r.status == 200 and r.headers["Content-Type"].startswith("text/plain"), "metrics text format")
R.check(m.get("agri_gateway_readings_stored_total", 0) >= sent, "ingest counter (%s)" % m.get("agri_gateway_readings_stored_total"))
R.check('agri_gateway_alerts{state="active"}' in m and 'agri_gateway_alerts{state="cleared"}' in m,
        "alerts by state")
R.check(m.get("agri_gateway_store_bytes", 0) > 100000, "store size")
R.check("agri_gateway_dead_letters_total" in m and "agri_gateway_dead_letters_stored" in m, "dead letters")
R.check(m.get('agri_gateway_stations{state="online"}') == 3, "stations by state")
R.check(m.get("agri_gateway_broker_connected") == 1, "broker connected gauge")

# --- the dashboard, headers, methods ----------------------------------------------
r = get("/")
csp = r.headers.get("Content-Security-Policy", "")
R.check(r.status == 200 and b"/app.js" in r.body and "script-src 'self'" in csp and
        "unsafe-inline" not in csp, "dashboard with a strict CSP")
R.check(r.headers.get("X-Content-Type-Options") == "nosniff", "nosniff")
R.check(b"<script>" not in r.body and b" style=" not in r.body, "no inline script or style")
R.check(get("/app.js").headers["Content-Type"].startswith("text/javascript"), "app.js served")
R.check(get("/style.css").headers["Content-Type"].startswith("text/css"), "style.css served")
R.check(is_err(get("/nope"), 404), "unknown page: JSON 404")
R.check(is_err(get("/api/v1/nope"), 404, "no such endpoint"), "unknown endpoint: 404")
R.check(is_err(get("/api/v1/stations", method="DELETE"), 405), "DELETE: 405")
R.check(is_err(get("/api/v1/stations", method="POST", data=b""), 405), "POST on a read: 405")
R.check(get("/api/v1/stations", method="HEAD").status == 200, "HEAD")

# --- a slow client does not stall the server ------------------------------------
slow = []
for _ in range(20):  # connect and send half a request line, then nothing
    s = socket.create_connection(("127.0.0.1", st.http_port))
    s.sendall(b"GET /api/v1/stat")
    slow.append(s)
big = socket.create_connection(("127.0.0.1", st.http_port))  # a reader that never reads
big.sendall(b"GET /api/v1/readings.csv?limit=100000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
t0 = time.time()
ok = all(get("/api/v1/stations").status == 200 for _ in range(50))
R.check(ok and time.time() - t0 < 5, "50 requests beside 21 stalled clients in %.2fs" % (time.time() - t0))
for s in slow + [big]:
    s.close()

# --- healthz turns 503 when the broker is gone ------------------------------------
st.mq.stop()
harness.wait_for(lambda: get("/healthz").status == 503, 15, 0.2, what="healthz 503")
r = get("/healthz")
R.check(r.status == 503 and r.json()["connected"] is False, "healthz 503 without the broker")
R.check(get("/api/v1/stations").status == 200, "reads still served without the broker")
R.check(st.gw.stop() == 0, "gateway exits 0 on SIGTERM")
R.done()
