"""agri-sim serves every shipped profile over Modbus TCP and over an RTU
pseudo-terminal; an independent client (Debian's python3-pymodbus) reads
each register, decodes it here (type, word order, scale, offset written
independently of the C code) and compares it with the simulator's own
--series truth at the same simulated instant and with physical bounds.
Also checks the exception codes a real device gives (02 for addresses it
lacks, 01 for a function it lacks), PSS-78 consistency of conductivity
(salinity derived from the read EC equals the true salinity), --help,
bad flags (exit 2), a bad profile (exit 78) and SIGTERM (exit 0 < 1 s).

Issue 19: a device computes what the real one does. The SenseCAP and the
Yosemitechs serve specific conductance compensated to 25 °C with their
coefficient (the SenseCAP's also readable at 0x0022); PSS-78 of the
compensation undone gives the true salinity. A Yosemitech Y520 gives no
fresh readings (0) until it gets its start measurement (FC 10 at 0x1C00
with no registers), which a client sends from the profile's "init".
"""
import csv
import glob
import io
import json
import math
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

from pymodbus.client import ModbusTcpClient, ModbusSerialClient  # noqa: E402

R = harness.Result("test_sim_modbus")
SIM = harness.bin_path("agri-sim")
START = "2025-04-02T05:00"  # 12:00 local: sun up, lamp off
WORDS = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "f32": 2, "u64": 4, "s64": 4, "f64": 4}


def load_profiles():
    out = []
    for path in sorted(glob.glob(os.path.join(harness.PROFILES, "*.json"))):
        with open(path) as f:
            out.append(json.load(f))
    return out


def decode(reg, words):
    """Independent decoder: words (host-order uint16) -> scaled value."""
    t = reg["type"]
    order = reg.get("order", "ABCD")
    n = WORDS[t]
    ws = list(words[:n])
    if n > 1:
        if order in ("CDAB", "DCBA"):
            ws.reverse()
        if order in ("BADC", "DCBA"):
            ws = [((w & 0xFF) << 8) | (w >> 8) for w in ws]
    raw_bytes = b"".join(struct.pack(">H", w) for w in ws)
    fmt = {"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i", "f32": ">f",
           "u64": ">Q", "s64": ">q", "f64": ">d"}[t]
    raw = struct.unpack(fmt, raw_bytes)[0]
    return raw * reg.get("scale", 1) + reg.get("offset", 0)


def key(reg):
    return reg["metric"] + ("." + reg["sensor_suffix"] if reg.get("sensor_suffix") else "")


def series_truth(profiles, start, extra=()):
    """The true values at `start` for every slave (one --series run)."""
    argv = [SIM, "--series", "--start", start, "--hours", "0.01", "--step-s", "30"]
    for i, p in enumerate(profiles):
        argv += ["--slave", "%d:%s" % (i + 1, p["profile"])]
    argv += list(extra)
    res = harness.run(argv)
    R.check(res.returncode == 0, "--series runs (rc=%d %s)" % (res.returncode, res.stderr.strip()))
    truth = {}
    for row in csv.DictReader(io.StringIO(res.stdout)):
        if row["ts"].startswith(start.replace("T", "T")[:16]):
            slave, metric = row["metric"].split("/", 1) if "/" in row["metric"] else ("1", row["metric"])
            truth.setdefault(int(slave), {})[metric] = float(row["value"])
    return truth


def tolerance(reg, truth):
    res = abs(reg.get("scale", 1)) if reg["type"] in ("u16", "s16", "u32", "s32", "u64", "s64") else 1e-5
    # a few seconds of simulated drift plus the register's resolution
    return max(res * 1.01, 0.01 * abs(truth) + 0.02)


BOUNDS = {
    "water_temperature": (20, 40), "conductivity": (0, 80), "specific_conductance": (0, 80),
    "dissolved_oxygen": (0.5, 15),
    "ph": (6, 9), "turbidity": (0, 1000), "pressure": (0, 1.5), "battery_voltage": (12.2, 14.4),
    "battery_soc": (0, 100), "air_temperature": (15, 45), "air_humidity": (30, 100),
    "lamp_on": (0, 0), "rain": (0, 1), "do_saturation": (5, 200), "pv_voltage": (0, 25),
}


def read_all(client, profiles, truth, label, slave_of):
    """Reads every register of every profile; returns counts."""
    for i, p in enumerate(profiles):
        slave = slave_of(i)
        bad = []
        for reg in p["registers"]:
            n = WORDS[reg["type"]]
            fn = client.read_holding_registers if reg["fc"] == 3 else client.read_input_registers
            rr = fn(reg["addr"], n, slave=slave)
            if rr.isError():
                bad.append("%s: %s" % (key(reg), rr))
                continue
            v = decode(reg, rr.registers)
            t = truth.get(i + 1, {}).get(key(reg))
            if reg.get("kind") == "counter":
                if not (0 <= v < 65535):
                    bad.append("%s=%r" % (key(reg), v))
                continue
            if t is None or not math.isfinite(v) or abs(v - t) > tolerance(reg, t):
                bad.append("%s=%r truth=%r" % (key(reg), v, t))
                continue
            lo_hi = BOUNDS.get(reg["metric"])
            if lo_hi and not (lo_hi[0] - 1e-9 <= v <= lo_hi[1] + 1e-9):
                bad.append("%s=%r outside %r" % (key(reg), v, lo_hi))
        R.check(not bad, "%s: %s slave %d decodes every register%s" %
                (label, p["profile"], slave, (" " + "; ".join(bad)) if bad else ""))


def start_devices(client, profiles, label):
    """What a master does first: each profile's init commands. A device
    with a start command reads 0 everywhere until then."""
    for i, p in enumerate(profiles):
        cmds = p.get("init", [])
        if any(c.get("role") == "start" for c in cmds):
            regs = [r for r in p["registers"] if r.get("kind", "measure") == "measure"]
            before = []
            for reg in regs:
                rr = client.read_holding_registers(reg["addr"], WORDS[reg["type"]], slave=i + 1)
                before.append(None if rr.isError() else decode(reg, rr.registers))
            R.check(all(v == 0 for v in before),
                    "%s: %s gives no fresh readings before its start command (%s)" %
                    (label, p["profile"], before))
        for c in cmds:
            if c["fc"] == 16:
                rr = client.write_registers(c["addr"], c.get("values", []), slave=i + 1)
            elif c["fc"] == 6:
                rr = client.write_register(c["addr"], c["values"][0], slave=i + 1)
            else:
                fn = client.read_holding_registers if c["fc"] == 3 else client.read_input_registers
                rr = fn(c["addr"], c["count"], slave=i + 1)
            R.check(not rr.isError(), "%s: %s init command fc=%d addr=0x%04X answered (%s)" %
                    (label, p["profile"], c["fc"], c["addr"], rr))


def exceptions(client, profiles, label):
    sensecap = next(i for i, p in enumerate(profiles) if p["profile"] == "sensecap-s-ec-01") + 1
    rr = client.read_holding_registers(100, 1, slave=sensecap)
    R.check(rr.isError() and getattr(rr, "exception_code", None) == 2,
            "%s: a register the device lacks -> exception 02 (%s)" % (label, rr))
    rr = client.read_input_registers(0, 1, slave=next(
        i for i, p in enumerate(profiles) if p["profile"] == "yosemitech-y520") + 1)
    R.check(rr.isError() and getattr(rr, "exception_code", None) == 1,
            "%s: FC 04 on a holding-only device -> exception 01 (%s)" % (label, rr))
    # One planned read spanning the SenseCAP's undocumented register 1.
    rr = client.read_holding_registers(0, 5, slave=sensecap)
    R.check(not rr.isError() and len(rr.registers) == 5 and rr.registers[1] == 0,
            "%s: planned read 0..4 across the gap answers (%s)" % (label, rr))
    if not rr.isError():
        ec = rr.registers[2] * 0.001
        temp = struct.unpack(">h", struct.pack(">H", rr.registers[0]))[0] * 0.01
        R.check(0 < ec <= 20 and 20 < temp < 40, "%s: EC %.3f mS/cm at %.2f °C plausible" % (label, ec, temp))
    # The SenseCAP's EC&TEMP COFF (0x0022): 20 = 2.0 %/°C, factory default.
    rr = client.read_holding_registers(0x22, 1, slave=sensecap)
    R.check(not rr.isError() and rr.registers == [20],
            "%s: SenseCAP EC&TEMP COFF at 0x0022 reads 20 (2.0 %%/°C) (%s)" % (label, rr))


def pss78(c_mscm, t90):
    """UNESCO 1983 PSS-78 at sea pressure 0 (valid 2..42), written here
    independently of protocols/src/units.c."""
    a = [0.0080, -0.1692, 25.3851, 14.0941, -7.0261, 2.7081]
    b = [0.0005, -0.0056, -0.0066, -0.0375, 0.0636, -0.0144]
    c = [0.6766097, 2.00564e-2, 1.104259e-4, -6.9698e-7, 1.0031e-9]
    t = t90 * 1.00024
    rt = sum(c[i] * t ** i for i in range(5))
    r = (c_mscm / 42.914) / rt
    ds = (t - 15) / (1 + 0.0162 * (t - 15))
    return sum((a[i] + ds * b[i]) * r ** (i / 2) for i in range(6))


def pss78_check(client, profiles, truth, label):
    """Salinity from the Y520's EC (f32 DCBA, no saturation) is the truth
    once its compensation (2 %/°C to 25 °C, from the profile) is undone;
    PSS-78 of the compensated value at the water temperature is not."""
    i = next(i for i, p in enumerate(profiles) if p["profile"] == "yosemitech-y520")
    p = profiles[i]
    rr = client.read_holding_registers(9728, 4, slave=i + 1)
    if not R.check(not rr.isError(), "%s: Y520 block read" % label):
        return
    temp = decode(p["registers"][0], rr.registers[0:2])
    sc = decode(p["registers"][1], rr.registers[2:4])
    reg = p["registers"][1]
    ec = sc * (1 + reg["coef_pct_per_c"] / 100 * (temp - reg["ref_c"]))
    sp, want = pss78(ec, temp), truth[i + 1]["salinity"]
    R.check(abs(sp - want) < 0.01 * want + 0.02,
            "%s: PSS-78 of the read EC %.3f mS/cm (specific %.3f) at %.2f C = %.3f ~ true salinity %.3f" %
            (label, ec, sc, temp, sp, want))
    R.check(temp > 26 and pss78(sc, temp) < 0.97 * want,
            "%s: the Y520 serves compensated EC: PSS-78 of it at %.2f C is %.3f, not %.3f" %
            (label, temp, pss78(sc, temp), want))


def cli_checks(profiles):
    r = harness.run([SIM, "--help"])
    R.check(r.returncode == 0 and "usage" in r.stdout, "--help exits 0")
    r = harness.run([SIM, "--tcp", "127.0.0.1:1", "--slave", "1:sensecap-s-ec-01", "--bogus"])
    R.check(r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1,
            "bad flag exits 2 with one line (%r)" % r.stderr.strip())
    r = harness.run([SIM, "--tcp", "127.0.0.1:1", "--slave", "1:sensecap-s-ec-01,bogus=1"])
    R.check(r.returncode == 2, "unknown slave parameter exits 2 (%r)" % r.stderr.strip())
    d = harness.tmpdir()
    with open(os.path.join(d, "broken.json"), "w") as f:
        json.dump({"profile": "broken", "registers": [{"metric": "x", "fc": 3, "addr": 0, "type": "u24"}]}, f)
    r = harness.run([SIM, "--tcp", "127.0.0.1:1", "--profiles-dir", d, "--slave", "1:broken"])
    line = r.stderr.strip()
    R.check(r.returncode == 78 and line.startswith(os.path.join(d, "broken.json") + ": ")
            and "registers[0]" in line and len(line.splitlines()) == 1,
            "bad profile exits 78 with FILE: path: reason (%r)" % line)


def main():
    profiles = load_profiles()
    R.check(len(profiles) >= 10, "%d shipped profiles found" % len(profiles))
    cli_checks(profiles)
    truth = series_truth(profiles, START)
    slaves = []
    for i, p in enumerate(profiles):
        slaves += ["--slave", "%d:%s" % (i + 1, p["profile"])]

    # --- Modbus TCP -------------------------------------------------------
    port = harness.free_port()
    d = harness.tmpdir()
    sim = harness.Proc([SIM, "--tcp", "127.0.0.1:%d" % port, "--start", START] + slaves,
                       os.path.join(d, "sim-tcp.log"), wrap=True)
    harness.wait_port(port, 10, sim)
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    R.check(client.connect(), "tcp: client connects")
    start_devices(client, profiles, "tcp")
    read_all(client, profiles, truth, "tcp", lambda i: i + 1)
    exceptions(client, profiles, "tcp")
    pss78_check(client, profiles, truth, "tcp")
    # A second client at the same time.
    c2 = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    c2.connect()
    rr1 = c2.read_holding_registers(0, 1, slave=next(
        i for i, p in enumerate(profiles) if p["profile"] == "sensecap-s-ec-01") + 1)
    rr2 = client.read_holding_registers(0, 1, slave=next(
        i for i, p in enumerate(profiles) if p["profile"] == "sensecap-s-ec-01") + 1)
    R.check(not rr1.isError() and not rr2.isError(), "tcp: two clients served")
    c2.close()
    client.close()
    t0 = time.time()
    rc = sim.stop()
    R.check(rc == 0 and time.time() - t0 < 1.0, "tcp: SIGTERM exits 0 within 1 s (rc=%s, %.2fs)" % (rc, time.time() - t0))
    log = sim.log_text()
    R.check("INFO sim: serving tcp" in log and "slave stats" in log,
            "tcp: log lines are 'LEVEL sim: message key=value'")

    # --- Modbus RTU on a pty ------------------------------------------------
    pty = harness.PtyPair(d)
    sim = harness.Proc([SIM, "--rtu", pty.b, "--baud", "9600", "--start", START] + slaves,
                       os.path.join(d, "sim-rtu.log"), wrap=True)
    harness.wait_for(lambda: "serving rtu" in sim.log_text() or sim.poll() is not None, 10,
                     what="agri-sim on the pty")
    client = ModbusSerialClient(port=pty.a, baudrate=9600, timeout=1, retries=0)
    R.check(client.connect(), "rtu: client opens the pty")
    start_devices(client, profiles, "rtu")
    read_all(client, profiles, truth, "rtu", lambda i: i + 1)
    exceptions(client, profiles, "rtu")
    pss78_check(client, profiles, truth, "rtu")
    client.close()
    t0 = time.time()
    rc = sim.stop()
    R.check(rc == 0 and time.time() - t0 < 1.0, "rtu: SIGTERM exits 0 within 1 s (rc=%s)" % rc)
    pty.stop()
    R.done()


if __name__ == "__main__":
    main()
