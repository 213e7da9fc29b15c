#!/usr/bin/env python3
"""Records haproxy 2.6's decisions (status, backend, Location) for the guide's routing and
filtering rules over a set of requests; tests/haproxy_diff.rs replays them through ringlb.
Writes fixtures/haproxy_routing.cfg (the config, shared by both) and haproxy_routing.tsv.
Usage: python3 crates/rules/tests/record_haproxy_routing.py (needs `haproxy`; loopback only)."""
import os, socket, subprocess, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "fixtures", "haproxy_routing.cfg")
OUT = os.path.join(HERE, "fixtures", "haproxy_routing.tsv")

# The guide's rules (seed sections "content switching" and "API gateway"); X-Src sets the
# client address so source ACLs can be exercised from loopback. `date_hour`/`date_dow` are
# ringlb extensions haproxy rejects, so they are left out here (tested with a fixed clock).
BODY = r"""
frontend fe
 bind 127.0.0.1:@PORT@
 stick-table type ip size 100k expire 30s store http_req_rate(10s)
 http-request set-src hdr(x-src) if { hdr(x-src) -m found }
 http-request track-sc0 src
 acl is_api_host hdr(host) -i api.example.com
 acl is_admin hdr(host) -i admin.example.com
 acl is_websocket hdr(Upgrade) -i websocket
 acl is_api path_beg /api/
 acl is_static path_beg /static/ /images/ /css/ /js/
 acl is_graphql path /graphql
 acl is_mobile hdr_sub(User-Agent) -i mobile android iphone
 acl is_grpc hdr(Content-Type) -i application/grpc
 acl is_delete method DELETE
 acl is_options method OPTIONS
 acl is_internal src 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16
 acl is_office src 203.0.113.0/24
 acl is_debug url_param(debug) -m str true
 acl is_abuser sc_http_req_rate(0) gt 100
 http-request return status 200 content-type text/plain if is_options
 http-request deny deny_status 403 if is_delete !is_office
 http-request deny deny_status 429 if is_abuser
 http-request deny deny_status 403 if is_debug !is_internal
 http-request redirect scheme https code 301 if { path_beg /secure } !{ ssl_fc }
 http-request redirect prefix https://m.example.com code 302 if is_mobile { path / }
 use_backend grpc_servers if is_grpc
 use_backend api_servers if is_api_host || is_api
 use_backend admin_servers if is_admin is_internal
 use_backend cdn_servers if is_static
 use_backend graphql_servers if is_graphql
 use_backend websocket_servers if is_websocket
 default_backend web
"""
BACKENDS = ["web", "api_servers", "admin_servers", "cdn_servers", "graphql_servers", "grpc_servers", "websocket_servers"]

REQUESTS = [
    # method, path, headers ("Name: value" joined by "|")
    ("GET", "/", "Host: www.example.com"),
    ("GET", "/", "Host: API.example.com"),
    ("GET", "/users", "Host: api.example.com"),
    ("GET", "/api/v1/users", "Host: www.example.com"),
    ("GET", "/apix", "Host: www.example.com"),
    ("GET", "/static/app.js", "Host: www.example.com"),
    ("GET", "/images/a.png?v=2", "Host: www.example.com"),
    ("GET", "/css", "Host: www.example.com"),
    ("POST", "/graphql", "Host: www.example.com"),
    ("POST", "/graphql/", "Host: www.example.com"),
    ("POST", "/svc.Method", "Host: www.example.com|Content-Type: application/grpc"),
    ("POST", "/svc.Method", "Host: www.example.com|Content-Type: application/GRPC"),
    ("POST", "/svc.Method", "Host: www.example.com|Content-Type: application/grpc+proto"),
    ("GET", "/chat", "Host: www.example.com|Upgrade: WebSocket"),
    ("GET", "/", "Host: admin.example.com"),
    ("GET", "/", "Host: admin.example.com|X-Src: 10.9.8.7"),
    ("GET", "/", "Host: admin.example.com|X-Src: 172.31.0.1"),
    ("GET", "/", "Host: admin.example.com|X-Src: 172.32.0.1"),
    ("DELETE", "/api/users/1", "Host: api.example.com"),
    ("DELETE", "/api/users/1", "Host: api.example.com|X-Src: 203.0.113.9"),
    ("DELETE", "/api/users/1", "Host: api.example.com|X-Src: 203.0.114.9"),
    ("OPTIONS", "/api/users", "Host: api.example.com|Origin: https://app.example.com"),
    ("GET", "/api/x?debug=true", "Host: www.example.com"),
    ("GET", "/api/x?debug=true", "Host: www.example.com|X-Src: 192.168.1.1"),
    ("GET", "/api/x?debug=TRUE", "Host: www.example.com"),
    ("GET", "/api/x?a=1&debug=true&b=2", "Host: www.example.com"),
    ("GET", "/secure/login?next=/", "Host: shop.example.com"),
    ("GET", "/", "Host: www.example.com|User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 16_0)"),
    ("GET", "/?x=1", "Host: www.example.com|User-Agent: Android"),
    ("GET", "/p", "Host: www.example.com|User-Agent: Android"),
    ("GET", "/static/x", "Host: api.example.com"),
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config(port):
    head = "defaults\n mode http\n timeout connect 1s\n timeout client 5s\n timeout server 5s\n"
    be = "".join(
        f"backend {b}\n http-request return status 200 content-type text/plain lf-string \"%[be_name]\"\n"
        for b in BACKENDS
    )
    return head + BODY.replace("@PORT@", str(port)).lstrip("\n") + be


def main():
    port = free_port()
    with open(CFG, "w") as f:
        f.write(config(0).replace("127.0.0.1:0", "127.0.0.1:8080"))
    out = []
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "h.cfg")
        with open(path, "w") as f:
            f.write(config(port))
        proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for m, p, h in REQUESTS:
                hdrs = "".join(f"{x}\r\n" for x in h.split("|"))
                raw = f"{m} {p} HTTP/1.1\r\n{hdrs}Content-Length: 0\r\nConnection: close\r\n\r\n"
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    s.sendall(raw.encode())
                    data = b""
                    while True:
                        c = s.recv(65536)
                        if not c:
                            break
                        data += c
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                status = lines[0].split(" ")[1]
                loc = next((l.split(": ", 1)[1] for l in lines[1:] if l.lower().startswith("location:")), "")
                b = body.decode("latin-1") if status == "200" else ""
                out.append((m, p, h, status, b, loc))
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    with open(OUT, "w") as f:
        f.write("# recorded from haproxy 2.6 by record_haproxy_routing.py: method, path, headers, status, backend (200 body), location\n")
        for row in out:
            f.write("\t".join(row) + "\n")
    print(f"wrote {len(out)} decisions to {OUT}")


if __name__ == "__main__":
    main()
