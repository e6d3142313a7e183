"""Prometheus's own linter on the gateway's live /metrics (docs/api.md): the
metrics stay clean as they grow.

A gateway with every part that adds metrics (ingest, store, alert engine,
notification outbox, upstream forwarder, claims, forecasts) is seeded through MQTT
with three days of readings (api_support.seed) and raises alerts; its
/metrics is then piped to `promtool check metrics` (Debian's prometheus
package), which must print nothing and exit 0: every family has HELP and
TYPE, counters end in _total, units are base units, names are snake_case,
no sample is repeated. First, promtool is shown a bad exposition and must
complain, so a promtool that checks nothing cannot pass.
Exit 77 (skipped) when promtool is not installed (scripts/install-deps
installs prometheus).
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import api_support as A  # noqa: E402

R = harness.Result("test_metrics_promtool")
BAD = ("# TYPE agri_bad counter\nagri_bad 1\n"
       "agri_no_help_total 2\n"
       "# HELP agri_ms_latency latency\n# TYPE agri_ms_latency gauge\nagri_ms_latency 3\n")


def promtool(text):
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=60)


def main():
    if not shutil.which("promtool"):
        print("SKIP test_metrics_promtool: promtool is not installed (Debian: prometheus)")
        sys.exit(77)
    res = promtool(BAD)
    R.check(res.returncode != 0 and "counter" in (res.stdout + res.stderr),
            "promtool complains about a bad exposition (rc=%d: %s)"
            % (res.returncode, (res.stdout + res.stderr).strip().replace("\n", " | ")[:300]))

    d = harness.tmpdir("agri-promtool-")
    closed = harness.free_port()  # nobody listens: the outbox and the forwarder have a backlog
    st = A.Stack(d, extra={
        "notify": {"webhooks": [{"name": "ops", "url": "http://127.0.0.1:%d/hook" % closed}]},
        "upstream": {"sensorthings": {"url": "http://127.0.0.1:%d/FROST-Server/v1.1" % closed}},
        # claims without their database: the notifications' and forwarding's families
        "ha": {"hub_id": "hub-a", "claims": "host=127.0.0.1 port=%d dbname=agri sslmode=disable"
               % closed, "priority": 1},
    })
    try:
        end_ms, sent = A.seed(st)
        A.ensure_alerts(st, end_ms)
        r = A.request(st.url("/metrics"))
        text = r.text
        families = sorted({ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")})
        R.check(r.status == 200 and len(families) >= 10,
                "/metrics of a seeded gateway (%d readings): %d families" % (sent, len(families)))
        prefixes = sorted({f.split("_")[2] if f.startswith("agri_gateway_") else f for f in families})
        print("families by part: %s" % prefixes)
        res = promtool(text)
        out = (res.stdout + res.stderr).strip()
        R.check(res.returncode == 0 and not out,
                "promtool check metrics on the live /metrics: clean (rc=%d: %s)"
                % (res.returncode, out.replace("\n", " | ")[:600]))
    finally:
        st.stop()
    R.done()


if __name__ == "__main__":
    main()
