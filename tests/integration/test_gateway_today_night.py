"""A light trap's night on /api/v1/today ends at the morning's lamp-off
(06:00 local), as the peak and rising rules count it (docs/alerts.md,
night_end_h): at 09:00 local the night just ended is "last night" and
tonight has not started. With nights cut at noon, the morning's page named
the night that ended at 06:00 "tonight" — the hours farmers read it.

The gateway runs on a fixed clock (AGRI_CLOCK) at 09:00 local on
2026-04-02; the trap caught 18:00-06:00 on the night of 2026-04-01 only."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import api_support as A  # noqa: E402
import gateway_peer as gp  # noqa: E402

HOUR = 3600 * 1000
NOW = "2026-04-02T02:00:00.000Z"  # 09:00 in Vietnam (UTC+7)

R = harness.Result("test_gateway_today_night")
os.environ["AGRI_CLOCK"] = NOW + "@1"
st = A.Stack(harness.tmpdir(), rules=False)
try:
    now_ms = 1775095200000  # NOW in ms
    assert A.iso(now_ms).startswith("2026-04-02T02:00:00")
    trap = gp.Station(st.mq.port, "TRAP-01", ack_timeout=3.0)
    trap.connected.wait(5)
    readings, total = [], 0
    for ts in range(now_ms - 30 * HOUR, now_ms + 1, HOUR):
        local_h = ((ts + 7 * HOUR) // HOUR) % 24
        n = 10 if (local_h >= 18 or local_h < 6) else 0
        # the night of 04-01: 18:00 04-01 to 06:00 04-02 local
        if n and A.iso(ts) < "2026-04-01T11:00":
            n = 0
        total += n
        readings.append({"ts": A.iso(ts), "sensor": "trap1-bph", "metric": "insect_count",
                         "value": n, "unit": "count", "q": "ok"})
    A._publish_all(trap, "TRAP-01", readings)
    harness.wait_for(lambda: trap.pending() == 0, 30, 0.1, what="trap batches acked")
    trap.close()
    r = A.request(st.url("/api/v1/today?nights=3"), headers={"Authorization": "Bearer " + A.TOKEN})
    R.check(r.status == 200, "GET /api/v1/today: %d" % r.status)
    doc = r.json() if r.status == 200 else {}
    traps = doc.get("traps") or {}
    t = traps.get("TRAP-01") if isinstance(traps, dict) else next((x for x in traps if x.get("station") == "TRAP-01"), None)
    t = t or {}
    nights = t.get("nights") or []
    print("now %s; night %s; nights %s" % (doc.get("now"), t.get("night"), nights))
    R.check(t.get("night") == "2026-04-02", "at 09:00 tonight is the night of 04-02 (%s)" % t.get("night"))
    R.check(len(nights) == 3 and nights[-1].get("bph") in (None, 0),
            "tonight has caught nothing yet (%s)" % (nights[-1] if nights else None))
    last = [n for n in nights if n.get("night") == "2026-04-01"]
    R.check(last and last[0].get("bph") == total,
            "last night (04-01, lamp-off to lamp-off) holds the whole catch, %d (%s)" % (total, last))
finally:
    st.stop()
R.done()
