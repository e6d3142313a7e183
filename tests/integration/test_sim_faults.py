"""agri-sim faults and several slaves on one line, seen by independent
clients: a raw RTU master written here (frames and CRC-16/Modbus by hand)
and python3-pymodbus. Five slaves share one RTU pty; one never answers
(timeout), one answers with a corrupted CRC, one answers exception 04, and
the healthy ones answer every interleaved request correctly. Over TCP:
rate-limited exceptions, dropouts and a stuck value; a probe that drifts
low with fouling (only its conductivity, by the given %/day) and one that
dries out (conductivity 0, the temperature still read). Then the scenario
acceptance on --series: 18 km from the mouth in early April crosses 4 g/L
every day, the same seed gives the same series, brood peaks fall on the
third night and light traps count nothing while the lamp is off.
"""
import collections
import csv
import datetime
import io
import os
import select
import struct
import sys
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from pymodbus.client import ModbusSerialClient, ModbusTcpClient  # noqa: E402

R = harness.Result("test_sim_faults")
SIM = harness.bin_path("agri-sim")


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class RawMaster:
    """A minimal RTU master on a pty: sends a request, collects the reply
    until 50 ms of silence."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)

    def request(self, slave, fc, addr, count, timeout=0.4):
        body = struct.pack(">BBHH", slave, fc, addr, count)
        c = crc16(body)
        os.write(self.fd, body + bytes([c & 0xFF, c >> 8]))
        buf = b""
        deadline = time.time() + timeout
        while True:
            wait = (deadline - time.time()) if not buf else 0.05
            if wait <= 0:
                break
            r, _, _ = select.select([self.fd], [], [], wait)
            if not r:
                break
            buf += os.read(self.fd, 512)
        return buf

    @staticmethod
    def classify(reply):
        if not reply:
            return "timeout"
        if len(reply) < 5 or crc16(reply[:-2]) != (reply[-2] | reply[-1] << 8):
            return "crc"
        if reply[1] & 0x80:
            return "exception%02d" % reply[2]
        return "ok"

    def close(self):
        os.close(self.fd)


def rtu_faults(d):
    pty = harness.PtyPair(d)
    sim = harness.Proc([SIM, "--rtu", pty.b, "--baud", "9600", "--start", "2025-04-02T05:00",
                        "--slave", "1:sensecap-s-ec-01", "--slave", "2:yosemitech-y520",
                        "--slave", "3:epever-tracer", "--slave", "4:yosemitech-y504",
                        "--slave", "5:agri-lighttrap",
                        "--fault", "2:timeout", "--fault", "3:crc", "--fault", "4:exception"],
                       os.path.join(d, "sim-rtu.log"), wrap=True)
    harness.wait_for(lambda: "serving rtu" in sim.log_text() or sim.poll() is not None, 10,
                     what="agri-sim on the pty")
    m = RawMaster(pty.a)
    plan = [(1, 3, 0, 5), (2, 3, 9728, 4), (3, 4, 13082, 3), (4, 3, 9728, 4), (5, 4, 0, 10)]
    seen = collections.defaultdict(collections.Counter)
    t0 = time.time()
    for _ in range(6):
        for slave, fc, addr, count in plan:
            seen[slave][RawMaster.classify(m.request(slave, fc, addr, count))] += 1
    dt = time.time() - t0
    R.check(seen[1] == {"ok": 6}, "rtu: healthy slave 1 answers all 6 interleaved reads (%s)" % dict(seen[1]))
    R.check(seen[5] == {"ok": 6}, "rtu: healthy slave 5 answers all 6 interleaved reads (%s)" % dict(seen[5]))
    R.check(seen[2] == {"timeout": 6}, "rtu: timeout-faulted slave 2 never answers (%s)" % dict(seen[2]))
    R.check(seen[3] == {"crc": 6}, "rtu: crc-faulted slave 3 replies with a bad CRC (%s)" % dict(seen[3]))
    R.check(seen[4] == {"exception04": 6}, "rtu: exception-faulted slave 4 replies exception 04 (%s)" % dict(seen[4]))
    R.check(dt < 15, "rtu: 30 requests in %.1fs" % dt)
    # A request to an id nobody serves: silence; a corrupted request: silence.
    R.check(m.request(9, 3, 0, 1, 0.3) == b"", "rtu: unknown slave id stays silent")
    os.write(m.fd, bytes([1, 3, 0, 0, 0, 5, 0x12, 0x34]))
    time.sleep(0.3)
    r, _, _ = select.select([m.fd], [], [], 0.05)
    R.check(not r, "rtu: a request with a bad CRC is ignored")
    R.check(RawMaster.classify(m.request(1, 3, 0, 5)) == "ok", "rtu: slave 1 still answers after line noise")
    m.close()

    # The same line through pymodbus.
    c = ModbusSerialClient(port=pty.a, baudrate=9600, timeout=1, retries=0)
    c.connect()
    ok1 = c.read_holding_registers(0, 5, slave=1)
    to2 = c.read_holding_registers(9728, 4, slave=2)
    ex4 = c.read_holding_registers(9728, 4, slave=4)
    crc3 = c.read_input_registers(13082, 3, slave=3)
    ok5 = c.read_input_registers(0, 10, slave=5)
    R.check(not ok1.isError() and not ok5.isError(), "pymodbus rtu: healthy slaves 1 and 5 read")
    R.check(to2.isError() and not hasattr(to2, "exception_code"),
            "pymodbus rtu: slave 2 is a timeout (%s)" % to2)
    R.check(ex4.isError() and getattr(ex4, "exception_code", None) == 4,
            "pymodbus rtu: slave 4 is exception 04 (%s)" % ex4)
    R.check(crc3.isError() and not hasattr(crc3, "exception_code"),
            "pymodbus rtu: slave 3's corrupted reply is rejected (%s)" % crc3)
    c.close()
    R.check(sim.stop() == 0, "rtu: clean exit")
    pty.stop()


def tcp_faults(d):
    port = harness.free_port()
    sim = harness.Proc([SIM, "--tcp", "127.0.0.1:%d" % port, "--speed", "3600", "--seed", "3",
                        "--start", "2025-04-02T00:00",
                        "--slave", "1:sensecap-s-ec-01", "--slave", "2:yosemitech-y520",
                        "--slave", "3:yosemitech-y520", "--slave", "4:sensecap-s-ec-01",
                        "--fault", "1:exception:0.5", "--fault", "2:dropout:3/1.5",
                        "--fault", "3:stuck", "--fault", "4:crc"],
                       os.path.join(d, "sim-tcp.log"), wrap=True)
    harness.wait_port(port, 10, sim)
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    c.connect()
    # The Y520s measure once started (their profile's init), as a station does.
    for slave in (2, 3):
        for _ in range(5):
            if not c.write_registers(0x1C00, [], slave=slave).isError():
                break
            time.sleep(0.2)
    ex = sum(1 for _ in range(200) if getattr(c.read_holding_registers(0, 1, slave=1), "exception_code", None) == 4)
    R.check(40 < ex < 160, "tcp: exception rate 0.5 -> %d/200 exceptions" % ex)
    answered = missed = 0
    t_end = time.time() + 6.5
    while time.time() < t_end:
        rr = c.read_holding_registers(9728, 4, slave=2)
        if rr.isError():
            missed += 1
            c.close()
            c.connect()
        else:
            answered += 1
        time.sleep(0.1)
    R.check(answered >= 5 and missed >= 3, "tcp: dropout 3/1.5 -> %d answered, %d missed" % (answered, missed))
    vals = []
    for _ in range(3):
        vals.append(tuple(c.read_holding_registers(9728, 4, slave=3).registers))
        time.sleep(0.6)
    R.check(len(set(vals)) == 1 and vals[0] != (0, 0, 0, 0),
            "tcp: stuck slave 3 repeats its value over simulated hours (%s)" % (vals[0],))
    rr = c.read_holding_registers(0, 5, slave=4)
    R.check(rr.isError(), "tcp: crc fault garbles the reply (%s)" % rr)
    c.close()
    R.check(sim.stop() == 0, "tcp: clean exit")


def probe_faults(d):
    """drift: fouling reads the conductivity low by ARG %/simulated day, the
    temperature is untouched; dry: from ARG hours on, the cell reads 0."""
    port = harness.free_port()
    speed = 86400  # a simulated day each second
    fixed = "salinity=4,temperature=29"
    sim = harness.Proc([SIM, "--tcp", "127.0.0.1:%d" % port, "--speed", str(speed),
                        "--start", "2025-04-02T00:00", "--slave", "1:sensecap-s-ec-01," + fixed,
                        "--slave", "2:sensecap-s-ec-01," + fixed, "--slave", "3:sensecap-s-ec-01," + fixed,
                        "--fault", "1:drift:10", "--fault", "2:dry:12"],
                       os.path.join(d, "sim-probe.log"), wrap=True)
    t0 = time.time()
    harness.wait_port(port, 10, sim)
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    c.connect()

    def ec_temp(slave):
        rr = c.read_holding_registers(0, 5, slave=slave)
        return rr.registers[2] * 0.001, rr.registers[0] * 0.01

    ratios = []
    for _ in range(3):
        t = time.time()
        (e1, t1), (e3, t3) = ec_temp(1), ec_temp(3)
        days = (t - t0) * speed / 86400
        ratios.append((days, e1 / e3))
        R.check(abs(t1 - t3) < 0.011, "drift: the temperature does not drift (%.2f vs %.2f)" % (t1, t3))
        time.sleep(1.0)
    R.check(all(abs(r - (1 - 0.10 * days)) < 0.04 for days, r in ratios) and ratios[-1][1] < ratios[0][1] - 0.1,
            "drift 10 %%/day: conductivity / clean probe %s" %
            ["%.2f d: %.3f" % (days, r) for days, r in ratios])
    (e2, t2), (e3, t3) = ec_temp(2), ec_temp(3)
    R.check(e2 == 0 and e3 > 6 and abs(t2 - 29) < 0.01,
            "dry after 12 h: conductivity %.3f mS/cm (clean probe %.3f), temperature %.2f °C" % (e2, e3, t2))
    c.close()
    R.check(sim.stop() == 0, "probe faults: clean exit")


def series(argv):
    r = harness.run([SIM, "--series"] + argv)
    if r.returncode != 0:
        R.check(False, "series %s: %s" % (argv, r.stderr))
    return r.stdout


def scenarios():
    base = ["--slave", "1:sensecap-s-ec-01,distance_km=18", "--scenario", "salinity-intrusion",
            "--start", "2025-04-01", "--hours", "240", "--step-s", "600", "--seed", "11"]
    a = series(base)
    R.check(a == series(base), "series: the same seed gives the same series")
    R.check(a != series(base[:-1] + ["12"]), "series: another seed gives another series")
    days = collections.defaultdict(list)
    for row in csv.DictReader(io.StringIO(a)):
        if row["metric"] == "salinity":
            # local day (UTC+7)
            t = datetime.datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
            day = (t + datetime.timedelta(hours=7)).date()
            days[day].append(float(row["value"]))
    full = [v for k, v in sorted(days.items()) if len(v) == 144]
    crossing = [max(v) > 4 and min(v) < 4 for v in full]
    R.check(len(full) >= 8 and all(crossing),
            "salinity-intrusion 18 km, 1-10 April: crosses 4 g/L on %d/%d days (max %s, min %s)" %
            (sum(crossing), len(full), [round(max(v), 1) for v in full], [round(min(v), 1) for v in full]))

    fresh = series(["--slave", "1:yosemitech-y520", "--scenario", "freshwater", "--start", "2025-04-01",
                    "--hours", "72", "--step-s", "1800"])
    sal = [float(r["value"]) for r in csv.DictReader(io.StringIO(fresh)) if r["metric"] == "salinity"]
    R.check(sal and 0.05 <= min(sal) and max(sal) <= 0.3, "freshwater: 0.05..0.3 g/L (%.3f..%.3f)" % (min(sal), max(sal)))

    trap = series(["--slave", "1:agri-lighttrap,rain=0,baseline=2", "--scenario", "bph-migration",
                   "--start", "2025-03-01T11:00", "--hours", "%d" % (24 * 90), "--step-s", "3600"])
    nights = collections.defaultdict(int)
    lamp_off_counts = 0
    lamp = {}
    rows = list(csv.DictReader(io.StringIO(trap)))
    for row in rows:
        if row["metric"] == "lamp_on":
            lamp[row["ts"]] = float(row["value"])
    for row in rows:
        if row["metric"] == "insect_count.bph":
            ts = row["ts"]
            v = float(row["value"])
            # counts in the hour ending at ts; the lamp was on during it iff on at ts-30min
            hour = (int(ts[11:13]) + 7 - 1) % 24  # local hour the interval started
            if 6 <= hour < 18:
                lamp_off_counts += v
            # night index: local date of the evening
            nights[(ts[:10], int(ts[11:13]))] = v
    R.check(lamp_off_counts == 0, "bph: no insects counted while the lamp is off")
    R.check(all(v in (0.0, 1.0) for v in lamp.values()) and 1.0 in lamp.values(), "bph: lamp_on is 0/1")
    # Nightly totals: the night starting at 18:00 local = 11:00Z; the
    # hourly interval ending at 12:00Z..23:00Z lies inside it.
    per_night = collections.OrderedDict()
    for row in rows:
        hz = int(row["ts"][11:13])
        if row["metric"] == "insect_count.bph" and 12 <= hz <= 23:
            per_night[row["ts"][:10]] = per_night.get(row["ts"][:10], 0) + float(row["value"])
    totals = list(per_night.values())
    med = sorted(totals)[len(totals) // 2]
    pulses = []  # (length, night of the peak within the pulse, 1-based)
    i = 0
    while i < len(totals):
        if totals[i] > 8 * med + 10:
            j = i
            while j < len(totals) and totals[j] > 8 * med + 10:
                j += 1
            seg = totals[i:j]
            pulses.append((len(seg), seg.index(max(seg)) + 1))
            i = j
        else:
            i += 1
    R.check(len(pulses) >= 3, "bph: %d brood pulses in 90 nights (median night %.0f)" % (len(pulses), med))
    R.check(all(n in (5, 6) and k == 3 for n, k in pulses),
            "bph: pulses of 5-6 nights peak on the third night (length, peak) = %s" % pulses)


def main():
    d = harness.tmpdir()
    rtu_faults(d)
    tcp_faults(d)
    probe_faults(d)
    scenarios()
    R.done()


if __name__ == "__main__":
    main()
