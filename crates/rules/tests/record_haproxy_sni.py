#!/usr/bin/env python3
"""Records haproxy 2.6's TLS-passthrough routing on real ClientHellos (made by Python's
OpenSSL, never completed): for each SNI, the backend haproxy picked with `req.ssl_sni`, plus
`req.ssl_ver` / `req.ssl_hello_type`. Writes fixtures/haproxy_sni.tsv with the ClientHello
bytes in hex, replayed by tests/haproxy_diff.rs. Loopback only; processes stopped by pid."""
import os, socket, ssl, subprocess, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "haproxy_sni.tsv")
CFG_OUT = os.path.join(HERE, "fixtures", "haproxy_sni.cfg")
SNIS = ["api.example.com", "API.Example.COM", "www.example.com", "other.example.org", None]


def client_hello(sni, tls13):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if not tls13:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def name_server(name, port, stop):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        c.sendall(name.encode())
        c.close()
    srv.close()


BODY = """frontend fe
 bind 127.0.0.1:@PORT@
 mode tcp
 tcp-request inspect-delay 2s
 tcp-request content set-var(sess.ver) req.ssl_ver
 tcp-request content set-var(sess.hello) req.ssl_hello_type
 tcp-request content accept if { req.ssl_hello_type 1 }
 use_backend api if { req.ssl_sni -i api.example.com }
 use_backend www if { req.ssl_sni -m end .example.com }
 use_backend nosni unless { req.ssl_sni -m found }
 default_backend other
"""


def config(port, ports):
    head = "defaults\n mode tcp\n timeout connect 1s\n timeout client 5s\n timeout server 5s\n"
    be = "".join(f"backend {n}\n mode tcp\n server s 127.0.0.1:{p}\n" for n, p in ports.items())
    return head + BODY.replace("@PORT@", str(port)) + be


def main():
    names = ["api", "www", "nosni", "other"]
    ports = {n: free_port() for n in names}
    with open(CFG_OUT, "w") as f:
        f.write(config(8443, {n: 9000 + i for i, n in enumerate(names)}))
    stop = threading.Event()
    threads = [threading.Thread(target=name_server, args=(n, p, stop), daemon=True) for n, p in ports.items()]
    for t in threads:
        t.start()
    port = free_port()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "h.cfg")
        with open(path, "w") as f:
            f.write(config(port, ports))
        proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            for sni in SNIS:
                for tls13 in (True, False):
                    hello = client_hello(sni, tls13)
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        s.sendall(hello)
                        got = s.recv(100).decode()
                    rows.append((sni or "-", hello.hex(), got))
        finally:
            proc.terminate()
            proc.wait(timeout=5)
            stop.set()
    with open(OUT, "w") as f:
        f.write("# recorded from haproxy 2.6 by record_haproxy_sni.py: sni, ClientHello hex, backend\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
