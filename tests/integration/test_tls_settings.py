#!/usr/bin/env python3
"""Nothing in the programs turns TLS verification off (docs/security.md
"The hub's other doors"): a scan of every C source of the gateway, the
station, the tools and common/ for the settings that would.

- libcurl: CURLOPT_SSL_VERIFYPEER, CURLOPT_SSL_VERIFYHOST (and the proxy
  ones) are never set (libcurl's defaults verify), CURLOPT_SSL_OPTIONS
  never carries CURLSSLOPT_NO_REVOKE/ALLOW_BEAST-like weakenings,
  CURLUSESSL_TRY (opportunistic STARTTLS) is never used;
- paho: every SSL options struct (MQTTAsync_/MQTTClient_SSLOptions) is
  followed in its file by enableServerCertAuth = 1 and verify = 1;
- libpq: no sslmode is written in the code (gateway.json's check decides,
  docs/upstream.md)."""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DIRS = ("gateway", "firmware", "tools", "common", "protocols")
FORBIDDEN = [
    (re.compile(r"CURLOPT_(PROXY_)?SSL_VERIFY(PEER|HOST|STATUS)"), "sets libcurl's verification"),
    (re.compile(r"CURLUSESSL_TRY"), "opportunistic STARTTLS"),
    (re.compile(r"CURLSSLOPT_(ALLOW_BEAST|NO_REVOKE|NO_PARTIALCHAIN)"), "weakens libcurl's TLS"),
    (re.compile(r"SSL_VERIFY_NONE|SSL_CTX_set_verify\s*\("), "sets OpenSSL's verification"),
    (re.compile(r"\b(enableServerCertAuth|verify)\s*=\s*0\b"), "turns paho's verification off"),
    (re.compile(r"sslmode\s*=\s*(disable|allow|prefer|require)\b"), "a weak libpq sslmode in code"),
]


def sources():
    for d in DIRS:
        for p in glob.glob(os.path.join(harness.SRC, d, "**", "*.[ch]"), recursive=True):
            yield p


def strip_comments(text):
    return re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def main():
    res = harness.Result("test_tls_settings")
    files = list(sources())
    hits, paho = [], []
    curl_files = 0
    for p in files:
        with open(p, errors="replace") as f:
            text = strip_comments(f.read())
        rel = os.path.relpath(p, harness.SRC)
        if "curl_easy_init" in text:
            curl_files += 1
        for n, line in enumerate(text.splitlines(), 1):
            for rx, why in FORBIDDEN:
                if rx.search(line):
                    hits.append("%s:%d: %s (%s)" % (rel, n, line.strip(), why))
        opts = len(re.findall(r"MQTT(Async|Client)_SSLOptions_initializer", text))
        if opts:
            ok = (len(re.findall(r"\.enableServerCertAuth\s*=\s*1\b", text)) >= opts
                  and len(re.findall(r"\.verify\s*=\s*1\b", text)) >= opts)
            paho.append((rel, opts, ok))
    print("scanned %d C files; libcurl handles in %d; paho TLS options in %s"
          % (len(files), curl_files, ", ".join("%s (%d)" % (r, n) for r, n, _ in paho)))
    for h in hits:
        print("  " + h)
    res.check(files and curl_files >= 2, "the scan sees the sources (%d files)" % len(files))
    res.check(not hits, "nothing sets or weakens TLS verification (%d findings)" % len(hits))
    res.check(paho and all(ok for _, _, ok in paho),
              "every paho TLS connection checks the chain and the name: %s"
              % ", ".join("%s %s" % (r, "ok" if ok else "MISSING verify") for r, _, ok in paho))
    res.done()


if __name__ == "__main__":
    main()
