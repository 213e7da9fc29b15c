#!/usr/bin/env python3
"""Request corpus for ringlb-http1: hostile and edge-case HTTP/1 requests.

Each case carries ringlb's expected verdict, written by hand from the rules in README.md:
  400 / 422   rejected (head or chunked body), connection closed
  ok          one complete message, nothing left over
  ok+N        one complete message, N bytes left over (parsed later as the next request)
  partial     accepted so far, more bytes needed

With --haproxy, each case is also sent through a real haproxy 2.6 on loopback to a raw origin
and haproxy's verdict is recorded: "<first status or none>/<requests the origin received>".
Without it, the haproxy column of the existing corpus file is kept.

Usage: python3 gen_requests.py [--haproxy] > requests.txt
"""
import os, re, signal, socket, subprocess, sys, tempfile, threading, time

P = b"POST /a HTTP/1.1\r\nHost: x\r\n"
G = b"GET /a HTTP/1.1\r\nHost: x\r\n"
Z = b"0\r\n\r\n"

def post(fields, body=b""):
    return P + fields + b"\r\n" + body

def get(fields):
    return G + fields + b"\r\n"

CASES = []
def case(name, expect, data):
    CASES.append((name, expect, data))

# --- Transfer-Encoding values (TE.TE obfuscations) -------------------------------------
for name, value, expect in [
    ("te-chunked", b"chunked", "ok"), ("te-Chunked", b"Chunked", "ok"), ("te-CHUNKED", b"CHUNKED", "ok"),
    ("te-mixedcase", b"cHuNkEd", "ok"), ("te-lead-sp", b"  chunked", "ok"), ("te-trail-sp", b"chunked  ", "ok"),
    ("te-lead-tab", b"\tchunked", "ok"), ("te-xchunked", b"xchunked", "400"), ("te-chunkedx", b"chunkedx", "400"),
    ("te-chunk", b"chunk", "400"), ("te-chunked-identity", b"chunked, identity", "400"),
    ("te-identity-chunked", b"identity, chunked", "422"), ("te-gzip-chunked", b"gzip, chunked", "422"),
    ("te-compress-chunked", b"compress, chunked", "422"), ("te-chunked-gzip", b"chunked, gzip", "400"),
    ("te-chunked-chunked", b"chunked, chunked", "400"), ("te-chunked-param", b"chunked;q=1", "400"),
    ("te-quoted", b"\"chunked\"", "400"), ("te-trailing-comma", b"chunked,", "400"),
    ("te-leading-comma", b",chunked", "400"), ("te-empty", b"", "400"), ("te-identity", b"identity", "400"),
    ("te-deflate", b"deflate", "400"), ("te-space-inside", b"ch unked", "400"),
    ("te-vt", b"chunked\x0b", "400"), ("te-nul", b"chunked\x00", "400"), ("te-ff", b"\x0cchunked", "400"),
    ("te-del", b"chunked\x7f", "400"), ("te-utf8", b"chunked\xc2\xa0", "400"),
]:
    case(name, expect, post(b"Transfer-Encoding: " + value + b"\r\n", Z))

# --- Transfer-Encoding header name / line tricks ---------------------------------------
case("te-space-before-colon", "400", post(b"Transfer-Encoding : chunked\r\n", Z))
case("te-tab-before-colon", "400", post(b"Transfer-Encoding\t: chunked\r\n", Z))
case("te-leading-space-line", "400", post(b" Transfer-Encoding: chunked\r\n", Z))
case("te-obs-fold-value", "400", post(b"Transfer-Encoding:\r\n chunked\r\n", Z))
case("te-obs-fold-after", "400", post(b"X-A: b\r\n Transfer-Encoding: chunked\r\n", Z))
case("te-underscore", "ok+5", post(b"Transfer_Encoding: chunked\r\n", Z))
case("te-nul-name", "400", post(b"Transfer-Encoding\x00: chunked\r\n", Z))
case("te-two-headers", "400", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", Z))
case("te-two-headers-identity", "400", post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", Z))
case("te-two-headers-gzip-first", "422", post(b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", Z))
case("te-bare-lf-before", "400", post(b"X-A: b\nTransfer-Encoding: chunked\r\n", Z))
case("te-cr-inside", "400", post(b"X-A: b\rTransfer-Encoding: chunked\r\n", Z))
case("te-http10", "400", b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + Z)
case("te-http10-identity", "400", b"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n")

# --- Content-Length (CL.CL) ------------------------------------------------------------
for name, value, expect in [
    ("cl-5", b"5", "ok"), ("cl-leading-zero", b"005", "ok"), ("cl-trailing-sp", b"5  ", "ok"),
    ("cl-leading-sp", b"  5", "ok"), ("cl-comma-same", b"5, 5", "ok"), ("cl-comma-same-nosp", b"5,5", "ok"),
    ("cl-comma-same-3", b"5,5 , 5", "ok"), ("cl-comma-diff", b"5, 6", "400"), ("cl-plus", b"+5", "400"),
    ("cl-minus", b"-5", "400"), ("cl-hex", b"0x5", "400"), ("cl-decimal", b"5.0", "400"),
    ("cl-exponent", b"5e0", "400"), ("cl-empty", b"", "400"), ("cl-alpha", b"abc", "400"),
    ("cl-digit-alpha", b"5a", "400"), ("cl-overflow", b"99999999999999999999", "400"),
    ("cl-u64-plus-one", b"18446744073709551616", "400"), ("cl-space-inside", b"1 2", "400"),
    ("cl-trailing-comma", b"5,", "400"), ("cl-leading-comma", b",5", "400"), ("cl-double-comma", b"5,,5", "400"),
    ("cl-nul", b"5\x00", "400"), ("cl-tab-inside", b"1\t2", "400"), ("cl-arabic-digit", b"\xd9\xa5", "400"),
    ("cl-quoted", b"\"5\"", "400"),
]:
    case(name, expect, post(b"Content-Length: " + value + b"\r\n", b"hello"))
case("cl-zero-body-pipelined", "ok+5", post(b"Content-Length: 0\r\n", b"hello"))
case("cl-short-body", "ok+2", post(b"Content-Length: 3\r\n", b"hello"))
case("cl-long-body", "partial", post(b"Content-Length: 10\r\n", b"hello"))
case("cl-huge", "partial", post(b"Content-Length: 18446744073709551615\r\n", b"hello"))
case("cl-dup-same", "ok", post(b"Content-Length: 5\r\nContent-Length: 5\r\n", b"hello"))
case("cl-dup-diff", "400", post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"hello"))
case("cl-dup-diff-reverse", "400", post(b"Content-Length: 6\r\nContent-Length: 5\r\n", b"hello"))
case("cl-dup-one-bad", "400", post(b"Content-Length: 5\r\nContent-Length: x\r\n", b"hello"))
case("cl-dup-comma-mixed", "400", post(b"Content-Length: 5\r\nContent-Length: 5, 6\r\n", b"hello"))
case("cl-space-before-colon", "400", post(b"Content-Length : 5\r\n", b"hello"))
case("cl-second-space-before-colon", "400", post(b"Content-Length: 5\r\nContent-Length : 6\r\n", b"hello"))
case("cl-obs-fold", "400", post(b"Content-Length:\r\n 5\r\n", b"hello"))
case("cl-underscore", "ok+5", post(b"Content_Length: 5\r\n", b"hello"))
case("cl-get-with-body", "ok", get(b"Content-Length: 5\r\n") + b"hello")

# --- CL.TE / TE.CL ---------------------------------------------------------------------
case("clte-cl-first", "ok", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", Z))
case("clte-te-first", "ok", post(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", Z))
case("clte-smuggle-after-chunked", "ok+26", post(b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", Z + b"GET /smuggled HTTP/1.1\r\n\r\n"))
case("tecl-smuggle", "ok+26", post(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", Z + b"GET /smuggled HTTP/1.1\r\n\r\n"))
case("clte-bad-cl", "400", post(b"Content-Length: abc\r\nTransfer-Encoding: chunked\r\n", Z))
case("clte-xchunked", "400", post(b"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", Z))
case("clte-te-space-colon", "400", post(b"Content-Length: 5\r\nTransfer-Encoding : chunked\r\n", Z))
case("clte-te-obs-fold", "400", post(b"Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n", Z))
case("clte-dup-cl-diff", "400", post(b"Content-Length: 5\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n", Z))
case("clte-http10", "400", b"POST /a HTTP/1.0\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + Z)

# --- chunked bodies ---------------------------------------------------------------------
TE = b"Transfer-Encoding: chunked\r\n"
for name, body, expect in [
    ("chunk-simple", b"5\r\nhello\r\n0\r\n\r\n", "ok"),
    ("chunk-upper-hex", b"A\r\n0123456789\r\n0\r\n\r\n", "ok"),
    ("chunk-leading-zeros", b"0005\r\nhello\r\n0\r\n\r\n", "ok"),
    ("chunk-bws", b"5 \r\nhello\r\n0\r\n\r\n", "ok"),
    ("chunk-ext", b"5;a=b\r\nhello\r\n0;c\r\n\r\n", "ok"),
    ("chunk-ext-quoted", b"5;a=\"x y\"\r\nhello\r\n0\r\n\r\n", "ok"),
    ("chunk-trailer", b"5\r\nhello\r\n0\r\nX-T: v\r\n\r\n", "ok"),
    ("chunk-incomplete", b"5\r\nhel", "partial"),
    ("chunk-no-last", b"5\r\nhello\r\n", "partial"),
    ("chunk-overflow", b"ffffffffffffffffff\r\n", "400"),
    ("chunk-overflow-17", b"10000000000000000\r\nx", "400"),
    ("chunk-0x", b"0x5\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-empty-size", b"\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-ext-only", b";a\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-negative", b"-5\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-plus", b"+5\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-leading-space", b" 5\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-size-bare-lf", b"5\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-ext-bare-lf", b"2;a\nb\r\nab\r\n0\r\n\r\n", "400"),
    ("chunk-ext-nul", b"5;a\x00\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-ext-ctl", b"5;a\x01\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-ext-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-size-cr-only", b"5\rhello\r\n0\r\n\r\n", "400"),
    ("chunk-data-too-long", b"3\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-data-bare-lf", b"5\r\nhello\n0\r\n\r\n", "400"),
    ("chunk-data-no-crlf", b"5\r\nhelloX\r\n0\r\n\r\n", "400"),
    ("chunk-last-bare-lf", b"5\r\nhello\r\n0\n\r\n", "400"),
    ("chunk-final-bare-lf", b"5\r\nhello\r\n0\r\n\n", "400"),
    ("chunk-trailer-obs-fold", b"0\r\nX-T: v\r\n w\r\n\r\n", "400"),
    ("chunk-trailer-no-colon", b"0\r\nX-T\r\n\r\n", "400"),
    ("chunk-trailer-space-colon", b"0\r\nX-T : v\r\n\r\n", "400"),
    ("chunk-trailer-nul", b"0\r\nX-T: a\x00b\r\n\r\n", "400"),
    ("chunk-trailer-bare-lf", b"0\r\nX-T: v\n\r\n", "400"),
    ("chunk-space-in-size", b"5 5\r\nhello\r\n0\r\n\r\n", "400"),
    ("chunk-then-pipelined", b"0\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", "ok+28"),
]:
    case(name, expect, post(TE, body))

# --- line endings and obs-fold ----------------------------------------------------------
case("lf-everywhere", "400", b"GET /a HTTP/1.1\nHost: x\n\n")
case("lf-request-line", "400", b"GET /a HTTP/1.1\nHost: x\r\n\r\n")
case("lf-one-header", "400", b"GET /a HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n")
case("lf-final", "400", b"GET /a HTTP/1.1\r\nHost: x\r\n\n")
case("lf-leading", "400", b"\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
case("cr-lone-in-value", "400", b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n")
case("cr-lone-request-line", "400", b"GET /a HTTP/1.1\rHost: x\r\n\r\n")
case("cr-double", "400", b"GET /a HTTP/1.1\r\r\nHost: x\r\n\r\n")
case("crlf-leading-ok", "ok", b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
case("obs-fold-space", "400", get(b"X-A: a\r\n b\r\n"))
case("obs-fold-tab", "400", get(b"X-A: a\r\n\tb\r\n"))
case("obs-fold-first-header", "400", b"GET /a HTTP/1.1\r\n Host: x\r\n\r\n")

# --- header names -----------------------------------------------------------------------
for i, ch in enumerate(b"()<>@,;\\\"/[]?={} \t\x00\x01\x7f\x80"):
    case("name-char-%02x" % ch, "400", get(b"X" + bytes([ch]) + b"A: v\r\n"))
case("name-empty", "400", get(b": v\r\n"))
case("name-no-colon", "400", get(b"X-A v\r\n"))
case("name-token-chars-ok", "ok", get(b"X!#$%&'*+-.^_`|~09azAZ: v\r\n"))

# --- header values ----------------------------------------------------------------------
for ch in [0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f]:
    case("value-ctl-%02x" % ch, "400", get(b"X-A: a" + bytes([ch]) + b"b\r\n"))
case("value-obs-text-ok", "ok", get(b"X-A: caf\xc3\xa9\r\n"))
case("value-tab-ok", "ok", get(b"X-A:\ta\tb\t\r\n"))
case("value-empty-ok", "ok", get(b"X-A:\r\n"))

# --- request target ---------------------------------------------------------------------
for name, target, expect in [
    ("target-fragment", b"/a#frag", "400"), ("target-backslash", b"/a\\b", "400"),
    ("target-nonascii", b"/caf\xc3\xa9", "400"), ("target-del", b"/a\x7f", "400"),
    ("target-nul", b"/a\x00", "400"), ("target-ctl", b"/a\x01", "400"),
    ("target-pipe-ok", b"/a|b", "ok"), ("target-braces-ok", b"/a{b}", "ok"), ("target-quote-ok", b"/a\"b", "ok"),
    ("target-pct-ok", b"/a%20b?x=%00", "ok"), ("target-star-get", b"*", "400"),
    ("target-relative", b"a", "400"), ("target-authority-get", b"x:80", "400"),
    ("target-abs-same-host", b"http://x/p", "ok"), ("target-abs-conflict", b"http://y/p", "400"),
    ("target-abs-case", b"http://X/p", "ok"), ("target-abs-default-port", b"http://x:80/p", "ok"),
    ("target-abs-other-port", b"http://x:81/p", "400"), ("target-abs-userinfo", b"http://u@x/p", "400"),
    ("target-abs-no-slashes", b"http:x/p", "400"), ("target-abs-empty-authority", b"http:///p", "400"),
]:
    case(name, expect, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
case("target-star-options", "ok", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
case("target-connect-origin-form", "400", b"CONNECT /a HTTP/1.1\r\nHost: x\r\n\r\n")
case("target-two-spaces", "400", b"GET /a /b HTTP/1.1\r\nHost: x\r\n\r\n")

# --- request line -------------------------------------------------------------------------
for name, line, expect in [
    ("version-09", b"GET /a", "400"), ("version-12", b"GET /a HTTP/1.2", "400"),
    ("version-20", b"GET /a HTTP/2.0", "400"), ("version-lower", b"GET /a http/1.1", "400"),
    ("version-10-ok", b"GET /a HTTP/1.0", "ok"), ("line-double-space", b"GET  /a HTTP/1.1", "400"),
    ("line-trailing-space", b"GET /a HTTP/1.1 ", "400"), ("line-leading-space", b" GET /a HTTP/1.1", "400"),
    ("line-tab-separator", b"GET\t/a HTTP/1.1", "400"), ("method-bad-char", b"G(T /a HTTP/1.1", "400"),
    ("method-lower-ok", b"get /a HTTP/1.1", "ok"), ("method-unknown-ok", b"PROPFIND /a HTTP/1.1", "ok"),
]:
    case(name, expect, line + b"\r\nHost: x\r\n\r\n")

# --- Host -------------------------------------------------------------------------------
case("host-duplicate", "400", b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n")
case("host-duplicate-same", "400", b"GET /a HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n")
case("host-space", "400", b"GET /a HTTP/1.1\r\nHost: x y\r\n\r\n")
case("host-slash", "400", b"GET /a HTTP/1.1\r\nHost: x/y\r\n\r\n")
case("host-userinfo", "400", b"GET /a HTTP/1.1\r\nHost: u@x\r\n\r\n")
case("host-missing-ok", "ok", b"GET /a HTTP/1.1\r\n\r\n")
case("host-empty-ok", "ok", b"GET /a HTTP/1.1\r\nHost:\r\n\r\n")
case("host-ipv6-ok", "ok", b"GET /a HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n")

# --- HTTP/1.0, upgrade, pipelining --------------------------------------------------------
case("http10-body-no-length", "ok+3", b"POST /a HTTP/1.0\r\nHost: x\r\n\r\nabc")
case("ws-without-key", "400", get(b"Connection: Upgrade\r\nUpgrade: websocket\r\n"))
case("ws-with-key", "ok", get(b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
case("ws-bytes-before-101", "ok+4", get(b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") + b"\x81\x00\x81\x00")
case("pipelined-two", "ok+28", get(b"") + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
case("pipelined-after-bad", "400", get(b"X-A : 1\r\n") + b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")

# --- limits ---------------------------------------------------------------------------------
case("maxhdr-100-ok", "ok", b"GET /a HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n")
case("maxhdr-101", "400", b"GET /a HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n")
case("head-too-large", "400", b"GET /a HTTP/1.1\r\nX-B: " + b"a" * 16000 + b"\r\n\r\n")


def escape(b):
    out = []
    for c in b:
        if c == 0x5c: out.append("\\\\")
        elif c == 0x0d: out.append("\\r")
        elif c == 0x0a: out.append("\\n")
        elif c == 0x09: out.append("\\t")
        elif c in (0x7b, 0x7d): out.append("\\x%02x" % c)  # braces mark {N*a} runs
        elif 0x20 <= c < 0x7f: out.append(chr(c))
        else: out.append("\\x%02x" % c)
    return "".join(out)


def compress(s):
    # Long runs (limits cases) are stored as {N*c} to keep the file readable.
    return re.sub(r"(a)\1{63,}", lambda m: "{%d*a}" % len(m.group(0)), s)


def run_haproxy(cases):
    port_ha, port_or = 28180, 28181
    seen = []
    def origin():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port_or)); s.listen(16); s.settimeout(0.2)
        while not stop[0]:
            try: c, _ = s.accept()
            except socket.timeout: continue
            threading.Thread(target=handle, args=(c,), daemon=True).start()
        s.close()
    def handle(c):
        rec = bytearray(); seen.append(rec); c.settimeout(0.4); n = 0
        try:
            while True:
                d = c.recv(65536)
                if not d: break
                rec += d
                heads = rec.count(b"\r\n\r\n")
                while n < heads:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); n += 1
        except Exception: pass
        c.close()
    stop = [False]
    t = threading.Thread(target=origin, daemon=True); t.start()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    cfg.write(f"""defaults
    mode http
    timeout connect 1s
    timeout client 2s
    timeout server 2s
    timeout http-request 1s
frontend fe
    bind 127.0.0.1:{port_ha}
    default_backend be
backend be
    server s1 127.0.0.1:{port_or}
""")
    cfg.close()
    p = subprocess.Popen(["haproxy", "-f", cfg.name, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    verdicts = {}
    try:
        for name, _, data in cases:
            seen.clear()
            c = socket.create_connection(("127.0.0.1", port_ha)); c.settimeout(0.5)
            c.sendall(data); out = b""
            try:
                while True:
                    d = c.recv(65536)
                    if not d: break
                    out += d
            except socket.timeout: pass
            c.close(); time.sleep(0.3)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", out)
            status = m.group(1).decode() if m else "none"
            reqs = sum(len(re.findall(rb"(?:^|\r\n\r\n)[A-Za-z]+ \S+ HTTP/1\.[01]\r\n", bytes(r))) for r in seen)
            first = bytes(seen[0]) if seen else b""
            forwarded = first.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if b"\r\n\r\n" in first else b""
            verdicts[name] = (f"{status}/{reqs}", forwarded)
    finally:
        p.send_signal(signal.SIGTERM); p.wait(timeout=5); stop[0] = True; t.join(); os.unlink(cfg.name)
    return verdicts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "requests.txt")
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    if "--haproxy" in sys.argv:
        ha = {k: (v[0], compress(escape(v[1])) or "-") for k, v in run_haproxy(CASES).items()}
    else:
        ha = {}
        if os.path.exists(path):
            for line in open(path):
                if line.startswith("#") or not line.strip(): continue
                f = line.rstrip("\n").split("\t")
                ha[f[0]] = (f[2], f[4] if len(f) > 4 else "-")
    print("# ringlb-http1 request corpus, generated by gen_requests.py (edit the script, not this file).")
    print("# name<TAB>ringlb verdict (hand-written)<TAB>haproxy 2.6.12 observed: status/requests at origin<TAB>bytes<TAB>head haproxy forwarded (- if none)")
    print("# verdicts: 400|422 rejected; ok one message; ok+N one message and N bytes left; partial.")
    print("# bytes: \\r \\n \\t \\\\ \\xNN escapes (braces too); {N*a} is N times 'a'.")
    for name, expect, data in CASES:
        status, fwd = ha.get(name, ("?", "-"))
        print(f"{name}\t{expect}\t{status}\t{compress(escape(data))}\t{fwd}")

main()
