"""agri-gateway command line: --help, a bad flag (exit 2), bad configs
(exit 78 with FILE: path: reason), a database written by a newer version."""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

R = harness.Result("test_gateway_cli")
gw = harness.bin_path("agri-gateway")
d = harness.tmpdir()

r = harness.run([gw, "--help"])
R.check(r.returncode == 0 and "--config" in r.stdout, "--help exits 0 with usage")
r = harness.run([gw, "--frobnicate"])
R.check(r.returncode == 2 and r.stderr.count("\n") == 1, "bad flag: exit 2, one line")
r = harness.run([gw, "--config", "x.json", "--log-level", "loud"])
R.check(r.returncode == 2, "bad --log-level: exit 2")

cases = [
    ('{"broker":{"url":"tcp://127.0.0.1:1"}}', "db: is required"),
    ('{"broker":{"url":"tcp://127.0.0.1:1","port":1},"db":{"path":"a.db"}}', "broker.port: unknown key"),
    ('{"broker":{"url":"tcp://127.0.0.1:1"},"db":{"path":"a.db","retention_days":"x"}}', "db.retention_days: "),
    ('{"broker":{"url":"tcp://127.0.0.1:1","username":"g","password_file":"nope"},"db":{"path":"a.db"}}',
     "broker.password_file: cannot read"),
    ('{"broker":', "invalid JSON"),
]
for i, (text, want) in enumerate(cases):
    p = os.path.join(d, "bad%d.json" % i)
    with open(p, "w") as f:
        f.write(text)
    r = harness.run([gw, "--config", p])
    R.check(r.returncode == 78 and r.stderr.startswith("%s: %s" % (p, want)),
            "bad config %d: exit 78, '%s'" % (i, r.stderr.strip()))

# The password never appears in logs.
with open(os.path.join(d, "gw.pass"), "w") as f:
    f.write("TOPSECRET-123\n")
db = os.path.join(d, "new.db")
con = sqlite3.connect(db)
con.execute("PRAGMA user_version = 42")
con.commit()
con.close()
p = harness.write_json(os.path.join(d, "gw.json"), {
    "broker": {"url": "tcp://127.0.0.1:1", "username": "gateway", "password_file": "gw.pass"},
    "db": {"path": "new.db"}})
r = harness.run([gw, "--config", p, "--log-level", "debug"], timeout=10)
R.check(r.returncode != 0 and "newer" in r.stderr, "a database from a newer version is refused")
R.check("TOPSECRET" not in r.stderr + r.stdout, "password never logged")
R.done()
