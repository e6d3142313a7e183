"""A small OGC SensorThings API v1.1 server for the upstream tests: it
checks the request shapes of the spec (entity JSON fields, navigation
links to existing entities, the Data Array extension's CreateObservations
format), assigns ids, answers name and phenomenonTime filters, and records
every entity creation and observation so a test can tell "created once"
and "arrived once". Faults: `down` (503 to everything) and
`drop_after_commit` (store a CreateObservations, then close the connection
without an answer: the client cannot know it was stored). Paging:
`page_max` caps a listing's $top (more pages, each with an @iot.nextLink on
this server); a hostile server sets `next_link` to the link it hands out
instead (another host, port or scheme, a file:// URL). Two hubs, told apart
by the Host they name the server with (one "localhost", the other
"127.0.0.1"): `refuse_host` answers that Host's CreateObservations 503
without storing (its link is down), `drop_host` limits `drop_after_commit`
to it, and `drop_hold_s` keeps the dropped connection open that long
first (the client is still waiting when its hub is killed); `obs_hosts`
says which Host sent each observation."""
import calendar
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
OBS_COMPONENTS = {"id", "phenomenonTime", "result", "resultTime", "resultQuality",
                  "validTime", "parameters", "FeatureOfInterest/id"}
REQUIRED = {
    "Things": ("name", "description"),
    "Sensors": ("name", "description", "encodingType", "metadata"),
    "ObservedProperties": ("name", "definition", "description"),
    "Datastreams": ("name", "description", "observationType", "unitOfMeasurement",
                    "Thing", "Sensor", "ObservedProperty"),
}
SENSOR_ENCODINGS = {"application/pdf", "http://www.opengis.net/doc/IS/SensorML/2.0", "text/html"}


def iso_ms(s):
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$", s)
    if not m:
        raise ValueError(s)
    sec = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "0").ljust(3, "0")[:3]
    return sec * 1000 + int(frac)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.next_id = 1
        self.entities = {k: {} for k in REQUIRED}   # collection -> id -> entity
        self.created = {k: [] for k in REQUIRED}    # collection -> [name, ...]
        self.observations = []                      # (datastream id, ms, result, quality)
        self.violations = []
        self.requests = 0
        self.create_obs_requests = 0
        self.down = False
        self.drop_after_commit = 0                  # how many CreateObservations to drop
        self.dropped = 0
        self.page_max = None                        # cap on $top: forces paging
        self.next_link = None                       # the nextLink handed out instead
        self.pages_served = 0                       # Observations listings answered
        self.obs_hosts = []                         # the Host of each observation
        self.refuse_host = None                     # its CreateObservations: 503
        self.drop_host = None                       # drop_after_commit for it only
        self.drop_hold_s = 0                        # a dropped answer's connection, held
        self.refused = 0

    def violate(self, what):
        self.violations.append(what)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sta-test/1"

    def log_message(self, *a):
        pass

    @property
    def st(self):
        return self.server.state

    def base(self):
        return "http://%s:%d%s" % (self.server.server_address[0], self.server.server_address[1],
                                   self.server.prefix)

    def reply(self, code, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def path_parts(self):
        u = urllib.parse.urlsplit(self.path)
        if not u.path.startswith(self.server.prefix):
            return None, None
        return u.path[len(self.server.prefix):], urllib.parse.parse_qs(u.query)

    def do_GET(self):
        with self.st.lock:
            self.st.requests += 1
            if self.st.down:
                return self.reply(503, {"error": "maintenance"})
        path, qs = self.path_parts()
        if path is None:
            return self.reply(404, {"error": "not here"})
        if path in ("", "/"):
            return self.reply(200, {"value": [{"name": c, "url": self.base() + "/" + c}
                                              for c in list(REQUIRED) + ["Observations"]]})
        m = re.match(r"^/(\w+)$", path)
        if m and m.group(1) in REQUIRED:
            coll = m.group(1)
            flt = qs.get("$filter", [""])[0]
            fm = re.match(r"^name eq '((?:[^']|'')*)'$", flt)
            if not fm:
                self.st.violate("GET %s: unsupported filter %r" % (coll, flt))
                return self.reply(400, {"error": "filter"})
            name = fm.group(1).replace("''", "'")
            with self.st.lock:
                found = [dict(e, **{"@iot.id": i}) for i, e in self.st.entities[coll].items()
                         if e["name"] == name]
            return self.reply(200, {"value": found})
        m = re.match(r"^/Datastreams\((\d+)\)/Observations$", path)
        if m:
            ds = int(m.group(1))
            flt = qs.get("$filter", [""])[0]
            fm = re.match(r"^phenomenonTime ge (\S+) and phenomenonTime le (\S+)$", flt)
            if not fm:
                self.st.violate("GET Observations: unsupported filter %r" % flt)
                return self.reply(400, {"error": "filter"})
            lo, hi = iso_ms(fm.group(1)), iso_ms(fm.group(2))
            top = int(qs.get("$top", ["100"])[0])
            if self.st.page_max:
                top = min(top, self.st.page_max)
            skip = int(qs.get("$skip", ["0"])[0])
            with self.st.lock:
                if ds not in self.st.entities["Datastreams"]:
                    return self.reply(404, {"error": "no such Datastream"})
                hits = sorted(ms for d, ms, _, _ in self.st.observations
                              if d == ds and lo <= ms <= hi)
            page = hits[skip:skip + top]
            body = {"value": [{"phenomenonTime": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                time.gmtime(ms // 1000))
                               + ".%03dZ" % (ms % 1000)} for ms in page]}
            if skip + top < len(hits):
                q = dict((k, v[0]) for k, v in qs.items())
                q["$skip"] = str(skip + top)
                body["@iot.nextLink"] = self.st.next_link or "%s/Datastreams(%d)/Observations?%s" % (
                    self.base(), ds, urllib.parse.urlencode(q))
            with self.st.lock:
                self.st.pages_served += 1
            return self.reply(200, body)
        return self.reply(404, {"error": "unknown path %s" % path})

    def read_json(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            self.st.violate("POST without Content-Type application/json")
        return json.loads(raw)

    def link(self, ent, key, coll):
        v = ent.get(key)
        if not isinstance(v, dict) or set(v) != {"@iot.id"} or \
                v["@iot.id"] not in self.st.entities[coll]:
            self.st.violate("%s link %r does not name an existing %s" % (key, v, coll))
            return False
        return True

    def do_POST(self):
        with self.st.lock:
            self.st.requests += 1
            if self.st.down:
                self.read_json()
                return self.reply(503, {"error": "maintenance"})
        path, _ = self.path_parts()
        try:
            body = self.read_json()
        except ValueError:
            self.st.violate("POST %s: body is not JSON" % path)
            return self.reply(400, {"error": "json"})
        m = re.match(r"^/(\w+)$", path or "")
        if m and m.group(1) in REQUIRED:
            return self.create(m.group(1), body)
        if path == "/CreateObservations":
            host = (self.headers.get("Host") or "").split(":")[0]
            with self.st.lock:
                refuse = self.st.refuse_host is not None and host == self.st.refuse_host
                if refuse:
                    self.st.refused += 1
            if refuse:
                return self.reply(503, {"error": "link down for %s" % host})
            return self.create_observations(body, host)
        return self.reply(404, {"error": "unknown path"})

    def create(self, coll, ent):
        ok = isinstance(ent, dict)
        for f in REQUIRED[coll]:
            if not ok or f not in ent:
                self.st.violate("%s without %s: %r" % (coll, f, ent))
                ok = False
        if ok and "@iot.id" in ent:
            self.st.violate("%s with a client id" % coll)
        if ok and coll == "Sensors" and ent["encodingType"] not in SENSOR_ENCODINGS:
            self.st.violate("Sensor encodingType %r" % ent["encodingType"])
        if ok and coll == "ObservedProperties" and ":" not in ent["definition"]:
            self.st.violate("ObservedProperty definition is not a URI")
        with self.st.lock:
            if ok and coll == "Datastreams":
                u = ent["unitOfMeasurement"]
                if not isinstance(u, dict) or not {"name", "symbol", "definition"} <= set(u):
                    self.st.violate("unitOfMeasurement %r" % u)
                if not str(ent["observationType"]).startswith(
                        "http://www.opengis.net/def/observationType/OGC-OM/2.0/"):
                    self.st.violate("observationType %r" % ent["observationType"])
                ok = (self.link(ent, "Thing", "Things") & self.link(ent, "Sensor", "Sensors")
                      & self.link(ent, "ObservedProperty", "ObservedProperties"))
            if not ok:
                return self.reply(400, {"error": "bad entity"})
            i = self.st.next_id
            self.st.next_id += 1
            self.st.entities[coll][i] = ent
            self.st.created[coll].append(ent["name"])
        return self.reply(201, dict(ent, **{"@iot.id": i}),
                          {"Location": "%s/%s(%d)" % (self.base(), coll, i)})

    def create_observations(self, body, host=""):
        out = []
        with self.st.lock:
            self.st.create_obs_requests += 1
            if not isinstance(body, list):
                self.st.violate("CreateObservations body is not an array")
                return self.reply(400, {"error": "not an array"})
            for g in body:
                if not isinstance(g, dict) or set(g) - {"Datastream", "components", "dataArray",
                                                        "dataArray@iot.count"}:
                    self.st.violate("CreateObservations element keys %r" % list(g))
                    continue
                if not self.link(g, "Datastream", "Datastreams"):
                    continue
                comp = g.get("components")
                if not isinstance(comp, list) or "result" not in comp or \
                        not set(comp) <= OBS_COMPONENTS or len(set(comp)) != len(comp):
                    self.st.violate("components %r" % comp)
                    continue
                arr = g.get("dataArray")
                if not isinstance(arr, list) or not arr:
                    self.st.violate("dataArray %r" % arr)
                    continue
                if "dataArray@iot.count" in g and g["dataArray@iot.count"] != len(arr):
                    self.st.violate("dataArray@iot.count %r != %d" % (g["dataArray@iot.count"],
                                                                      len(arr)))
                ds = g["Datastream"]["@iot.id"]
                for row in arr:
                    if not isinstance(row, list) or len(row) != len(comp):
                        self.st.violate("dataArray row %r" % row)
                        out.append("error")
                        continue
                    o = dict(zip(comp, row))
                    pt = o.get("phenomenonTime")
                    if not isinstance(pt, str) or not ISO.match(pt) or \
                            not isinstance(o["result"], (int, float)):
                        self.st.violate("observation %r" % o)
                        out.append("error")
                        continue
                    self.st.observations.append((ds, iso_ms(pt), o["result"],
                                                 o.get("resultQuality")))
                    self.st.obs_hosts.append(host)
                    out.append("%s/Observations(%d)" % (self.base(), len(self.st.observations)))
            drop = self.st.drop_after_commit > 0 and self.st.drop_host in (None, host)
            if drop:
                self.st.drop_after_commit -= 1
                self.st.dropped += 1
            hold = self.st.drop_hold_s
        if drop:  # committed, but the client never hears about it
            if hold:
                time.sleep(hold)
            self.close_connection = True
            self.connection.close()
            return
        return self.reply(201, out)


class StaServer:
    def __init__(self, port, prefix="/FROST-Server/v1.1"):
        self.state = State()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.state = self.state
        self.httpd.prefix = prefix
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d%s" % (port, prefix)
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
