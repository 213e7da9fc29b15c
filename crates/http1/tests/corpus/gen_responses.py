#!/usr/bin/env python3
"""Response corpus for ringlb-http1: edge-case and hostile server responses to a GET.

ringlb's expected verdict is written by hand:
  502          rejected, the client gets a 502 and the server connection is closed
  ok / ok+N    one complete response (N bytes left over on the server connection)
  close        the body runs until the server closes
  partial      accepted so far, more bytes needed

With --haproxy, each response is served by a raw origin behind a real haproxy 2.6 on loopback
(the origin sends the bytes, waits 0.5 s, closes) and the status line the client received is
recorded ("none" when the client got nothing). Usage: python3 gen_responses.py [--haproxy]
"""
import os, re, signal, socket, subprocess, sys, tempfile, threading, time

CASES = []
def case(name, expect, data):
    CASES.append((name, expect, data))

OK = b"HTTP/1.1 200 OK\r\n"
def r(fields, body=b""):
    return OK + fields + b"\r\n" + body

case("cl", "ok", r(b"Content-Length: 2\r\n", b"ok"))
case("cl-short", "partial", r(b"Content-Length: 5\r\n", b"ok"))
case("cl-extra", "ok+3", r(b"Content-Length: 2\r\n", b"okxyz"))
case("cl-dup-same", "ok", r(b"Content-Length: 2\r\nContent-Length: 2\r\n", b"ok"))
case("cl-comma-same", "ok", r(b"Content-Length: 2, 2\r\n", b"ok"))
case("cl-dup-diff", "502", r(b"Content-Length: 2\r\nContent-Length: 3\r\n", b"okk"))
case("cl-negative", "502", r(b"Content-Length: -2\r\n", b"ok"))
case("cl-alpha", "502", r(b"Content-Length: 2x\r\n", b"ok"))
case("cl-overflow", "502", r(b"Content-Length: 99999999999999999999\r\n", b"ok"))
case("no-length", "close", r(b"X-A: 1\r\n", b"body"))
case("http10-no-length", "close", b"HTTP/1.0 200 OK\r\n\r\nbody")
case("chunked", "ok", r(b"Transfer-Encoding: chunked\r\n", b"2\r\nok\r\n0\r\n\r\n"))
case("gzip-chunked", "502", r(b"Transfer-Encoding: gzip, chunked\r\n", b"2\r\nok\r\n0\r\n\r\n"))
case("gzip-only", "502", r(b"Transfer-Encoding: gzip\r\n", b"ok"))
case("chunked-gzip", "502", r(b"Transfer-Encoding: chunked, gzip\r\n", b"ok"))
case("chunked-twice", "502", r(b"Transfer-Encoding: chunked, chunked\r\n", b"2\r\nok\r\n0\r\n\r\n"))
case("cl-and-chunked", "ok", r(b"Content-Length: 9\r\nTransfer-Encoding: chunked\r\n", b"2\r\nok\r\n0\r\n\r\n"))
case("chunked-http10", "502", b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
case("chunked-bad-size", "502", r(b"Transfer-Encoding: chunked\r\n", b"zz\r\nok\r\n0\r\n\r\n"))
case("chunked-overflow", "502", r(b"Transfer-Encoding: chunked\r\n", b"ffffffffffffffffff\r\nok\r\n0\r\n\r\n"))
case("chunked-ext-lf", "502", r(b"Transfer-Encoding: chunked\r\n", b"2;a\nb\r\nok\r\n0\r\n\r\n"))
case("chunked-bare-lf", "502", r(b"Transfer-Encoding: chunked\r\n", b"2\nok\n0\n\n"))
case("chunked-trailer", "ok", r(b"Transfer-Encoding: chunked\r\n", b"2\r\nok\r\n0\r\nX-T: 1\r\n\r\n"))
case("chunked-incomplete", "partial", r(b"Transfer-Encoding: chunked\r\n", b"2\r\nok\r\n"))
case("bare-lf-head", "502", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
case("bare-lf-one", "502", r(b"X-A: 1\nContent-Length: 2\r\n", b"ok"))
case("obs-fold", "502", r(b"X-A: 1\r\n 2\r\nContent-Length: 2\r\n", b"ok"))
case("space-before-colon", "502", r(b"Content-Length : 2\r\n", b"ok"))
case("nul-value", "502", r(b"X-A: a\x00b\r\nContent-Length: 2\r\n", b"ok"))
case("ctl-value", "502", r(b"X-A: a\x01b\r\nContent-Length: 2\r\n", b"ok"))
case("bad-name", "502", r(b"X(A): 1\r\nContent-Length: 2\r\n", b"ok"))
case("status-2-digits", "502", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok")
case("status-4-digits", "502", b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok")
case("status-099", "502", b"HTTP/1.1 099 X\r\nContent-Length: 2\r\n\r\nok")
case("status-600", "502", b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok")
case("status-no-reason", "ok", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok")
case("version-20", "502", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
case("version-09", "502", b"ok")
case("garbage", "502", b"garbage\r\n\r\n")
case("204-with-cl", "ok+2", b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok")
case("304-with-cl", "ok", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
case("100-then-200", "ok+38", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
case("103-then-200", "ok+38", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
case("too-many-headers", "502", OK + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"Content-Length: 0\r\n\r\n")
case("100-headers-ok", "ok", OK + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"Content-Length: 0\r\n\r\n")
case("head-too-large", "502", r(b"X-B: " + b"a" * 16000 + b"\r\nContent-Length: 0\r\n"))


def escape(b):
    out = []
    for c in b:
        if c == 0x5c: out.append("\\\\")
        elif c == 0x0d: out.append("\\r")
        elif c == 0x0a: out.append("\\n")
        elif c == 0x09: out.append("\\t")
        elif c in (0x7b, 0x7d): out.append("\\x%02x" % c)
        elif 0x20 <= c < 0x7f: out.append(chr(c))
        else: out.append("\\x%02x" % c)
    return re.sub(r"(a)\1{63,}", lambda m: "{%d*a}" % len(m.group(0)), "".join(out))


def run_haproxy(cases):
    port_ha, port_or = 28190, 28191
    current = [b""]
    stop = [False]
    def origin():
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port_or)); s.listen(16); s.settimeout(0.2)
        while not stop[0]:
            try: c, _ = s.accept()
            except socket.timeout: continue
            threading.Thread(target=handle, args=(c,), daemon=True).start()
        s.close()
    def handle(c):
        c.settimeout(1.0); rec = b""
        try:
            while b"\r\n\r\n" not in rec:
                d = c.recv(65536)
                if not d: break
                rec += d
            c.sendall(current[0]); time.sleep(0.5)
        except Exception: pass
        c.close()
    t = threading.Thread(target=origin, daemon=True); t.start()
    cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    cfg.write(f"""defaults
    mode http
    timeout connect 1s
    timeout client 3s
    timeout server 2s
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
            current[0] = data
            c = socket.create_connection(("127.0.0.1", port_ha)); c.settimeout(1.5)
            c.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"); out = b""
            try:
                while True:
                    d = c.recv(65536)
                    if not d: break
                    out += d
            except socket.timeout: pass
            c.close()
            statuses = re.findall(rb"HTTP/1\.[01] (\d{3})", out)
            verdicts[name] = ",".join(s.decode() for s in statuses) or "none"
    finally:
        p.send_signal(signal.SIGTERM); p.wait(timeout=5); stop[0] = True; t.join(); os.unlink(cfg.name)
    return verdicts


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "responses.txt")
    assert len({c[0] for c in CASES}) == len(CASES)
    if "--haproxy" in sys.argv:
        ha = run_haproxy(CASES)
    else:
        ha = {}
        if os.path.exists(path):
            for line in open(path):
                if line.startswith("#") or not line.strip(): continue
                f = line.rstrip("\n").split("\t"); ha[f[0]] = f[2]
    print("# ringlb-http1 response corpus (responses to GET), generated by gen_responses.py.")
    print("# name<TAB>ringlb verdict (hand-written)<TAB>haproxy 2.6.12 observed: statuses the client got<TAB>bytes")
    print("# verdicts: 502 rejected; ok one response; ok+N one response and N bytes left; close; partial.")
    print("# bytes: \\r \\n \\t \\\\ \\xNN escapes (braces too); {N*a} is N times 'a'.")
    for name, expect, data in CASES:
        print(f"{name}\t{expect}\t{ha.get(name, '?')}\t{escape(data)}")

main()
