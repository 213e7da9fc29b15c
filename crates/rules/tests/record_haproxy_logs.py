#!/usr/bin/env python3
"""Records haproxy 2.6 log lines for a log-format of request-derived variables and flags
(tests/haproxy_diff.rs replays them). Writes fixtures/haproxy_logs.tsv: request line, log.
Usage: python3 crates/rules/tests/record_haproxy_logs.py (needs `haproxy`; loopback only)."""
import os, socket, subprocess, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "haproxy_logs.tsv")
FMT = ('%HM|%HP|%HPO|%HQ|%HU|%HV|%r|%{+Q}r|%{+Q}HP|%{+E}HU|%f|%{+Q}f|%ci|%{+X}ci|%{+Q}ci|'
       '%[var(txn.none)]|%{+Q}[var(txn.none)]|%{+Q}[str(a)]|%{+Q,+E}[var(txn.q)]|%{+X}[int(255)]|%%|%{+Q}o %b %[var(txn.p)]')
XQ = 'q"u]o\\te'
REQUESTS = [
    "GET /a/b?x=1 HTTP/1.1",
    "GET http://h.example:8080/p/q?z=2&y HTTP/1.1",
    "POST /nq HTTP/1.0",
    "GET /?%20a HTTP/1.1",
    "GET /x? HTTP/1.1",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    port = free_port()
    fmt = FMT.replace("\\", "\\\\").replace('"', '\\"')
    cfg = f"""global
 log stdout format raw local0
defaults
 mode http
 log global
 timeout connect 1s
 timeout client 5s
 timeout server 5s
frontend f
 bind 127.0.0.1:{port}
 log-format "{fmt}"
 http-request set-var(txn.q) req.hdr(x-q)
 http-request set-var(txn.p) path
 http-request return status 200 content-type text/plain string ok
"""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "h.cfg")
        with open(path, "w") as f:
            f.write(cfg)
        logf = open(os.path.join(d, "log"), "w+")
        proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=logf, stderr=subprocess.STDOUT)
        try:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for r in REQUESTS:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    host = "h.example:8080" if "://" in r else "h"
                    s.sendall(f"{r}\r\nHost: {host}\r\nX-Q: {XQ}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode())
                    while s.recv(65536):
                        pass
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=5)
        logf.seek(0)
        # The readiness probe connects without a request: skip its <BADREQ> line.
        lines = [l.rstrip("\n") for l in logf if "|" in l and not l.startswith("<BADREQ>")]
    assert len(lines) == len(REQUESTS), lines
    with open(OUT, "w") as f:
        f.write(f"# recorded from haproxy 2.6 by record_haproxy_logs.py; format: {FMT}\n")
        for r, l in zip(REQUESTS, lines):
            f.write(f"{r}\t{l}\n")
    print(f"wrote {len(lines)} lines to {OUT}")


if __name__ == "__main__":
    main()
