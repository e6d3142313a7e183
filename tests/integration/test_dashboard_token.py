"""The dashboard on a gateway whose reads need a token (http.public_reads
off; docs/dashboard.md, docs/api.md "Who may ask"), in headless chromium
(cdp_support.py): without a token the page asks for one and then shows the
canals; a link with #token=... shows them at once and drops the token from
the address bar; a wrong one is asked again. Its polls keep answering 304
with the token. Exits 77 (skip) without chromium or python3-websocket."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import api_support as A  # noqa: E402
import cdp_support as C  # noqa: E402

if not C.available():
    print("SKIP: chromium or python3-websocket missing")
    sys.exit(77)

R = harness.Result("test_dashboard_token")
READ = "dash-read-Hf4Kq9Xz2Lw7Nc5Vb8Mt3Rp6Yd1Sg0JaUe"
d = harness.tmpdir()
with open(os.path.join(d, "read.token"), "w") as f:
    f.write(READ + "\n")
st = A.Stack(d, rules=False, http={"public_reads": False, "read_token_file": "read.token"})
end_ms, sent = A.seed(st, days=1)
R.check(A.request(st.url("/api/v1/today")).status == 401, "this gateway's reads need a token")
b = C.Browser(d)
b.size(390, 844, True)


# null-safe: the page may still be loading when the condition is first asked
SHOWN = "!!document.getElementById('login') && !document.getElementById('login').hidden"


def load(url):
    b.navigate("about:blank")
    b.wait_js("location.href === 'about:blank'", 10)
    b.navigate(url)


def canals():
    return b.js("document.querySelectorAll('#canals .canal').length")


load(st.url("/"))
b.wait_js(SHOWN, 20, "the token asked")
R.check(True, "without a token: the page asks for one")
b.js("document.getElementById('read-token').value = 'wrong-token-wrong-token-wrong-token-wrong';"
     "document.getElementById('login-ok').click()")
b.wait_js(SHOWN, 20, "asked again")
R.check(True, "a wrong token: asked again")
b.js("document.getElementById('read-token').value = %r; document.getElementById('login-ok').click()" % READ)
b.wait_js("document.body && +(document.body.dataset.refreshes || 0) >= 1 && document.getElementById('login').hidden", 30,
          "the first refresh")
R.check(canals() > 0 and b.js("document.getElementById('error').hidden"),
        "with the token: the canals are shown (%d) and no error" % canals())

load(st.url("/#token=" + READ))
b.wait_js("document.body && +(document.body.dataset.refreshes || 0) >= 1", 30, "the first refresh")
R.check(b.js("document.getElementById('login').hidden") and canals() > 0,
        "a link with #token=: the canals at once, nothing asked")
R.check(b.js("location.hash") == "" and READ not in b.js("location.href"),
        "the token left the address bar (%s)" % b.js("location.href"))
n = b.js("+document.body.dataset.refreshes")
b.js("performance.clearResourceTimings()")
# two polls: an answer whose "now" moved to the next minute is a 200, the other a 304
b.wait_js("+document.body.dataset.refreshes > %d" % (n + 1), 35, "two polls")
time.sleep(0.5)
st304 = b.js("JSON.stringify(performance.getEntriesByType('resource')"
             ".filter(e => e.name.indexOf('/api/v1/today') >= 0).map(e => e.responseStatus))")
R.check("304" in st304, "its polls still answer 304 with the token (%s)" % st304)
b.close()
st.stop()
R.done()
