#!/usr/bin/python3
"""An A/B bootloader with boot counting, for RAUC's `bootloader=custom`
(tests only; docs/update.md). RAUC calls it as its custom backend:

    rauc_backend.py STATE get-primary | set-primary SLOT | get-state SLOT
                          | set-state SLOT good|bad

and the test harness, standing in for the board's firmware at power-on:

    rauc_backend.py STATE boot     prints the slot to boot

like U-Boot's boot script with BOOT_ORDER and BOOT_x_LEFT: the first slot in
the order that is good and has tries left is booted and loses a try; a slot
out of tries is bad. set-primary puts a slot first, good, with 3 tries;
set-state good gives it 3 tries again, bad none. STATE is a JSON file; every
call is appended to STATE.log."""
import json
import os
import sys

TRIES = 3


def main():
    path, verb, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        with open(path) as f:
            s = json.load(f)
    except FileNotFoundError:
        s = {"order": ["A", "B"], "A": {"state": "good", "tries": TRIES},
             "B": {"state": "good", "tries": TRIES}}
    with open(path + ".log", "a") as f:
        f.write(" ".join([verb] + args) + "\n")
    out = None
    if verb == "get-primary":
        out = s["order"][0]
    elif verb == "set-primary":
        slot = args[0]
        s["order"] = [slot] + [x for x in s["order"] if x != slot]
        s[slot] = {"state": "good", "tries": TRIES}
    elif verb == "get-state":
        out = s[args[0]]["state"]
    elif verb == "set-state":
        slot, state = args
        s[slot] = {"state": state, "tries": TRIES if state == "good" else 0}
    elif verb == "boot":
        for slot in s["order"]:
            if s[slot]["state"] == "good" and s[slot]["tries"] > 0:
                s[slot]["tries"] -= 1
                out = slot
                break
            s[slot] = {"state": "bad", "tries": 0}
        if out is None:
            out = s["order"][-1]
    else:
        sys.stderr.write("unknown verb %s\n" % verb)
        return 1
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(s, f)
    os.replace(tmp, path)
    if out is not None:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
