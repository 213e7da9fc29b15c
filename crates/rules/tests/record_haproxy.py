#!/usr/bin/env python3
"""Records what haproxy 2.6 answers for sample expressions and ACLs, so ringlb-rules can be
compared with the real thing (tests/haproxy_diff.rs replays the fixture).

Usage: python3 crates/rules/tests/record_haproxy.py   (needs the `haproxy` binary)
Writes crates/rules/tests/fixtures/haproxy_samples.tsv: kind, expression, request, output.
Every process it starts is stopped by pid; everything listens on 127.0.0.1 only.
"""
import os, socket, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "haproxy_samples.tsv")

# The one request every sample expression sees (the Rust side builds the same).
REQ_LINE = "GET /foo/bar.php?user=alice&page=12;sid=xyz&empty= HTTP/1.1"
REQ_HEADERS = [
    ("Host", "www.example.com"),
    ("Accept", "text/html, application/json;q=0.9"),
    ("Accept", "*/*"),
    ("User-Agent", "Mozilla/5.0 (X11, Linux)"),
    ("Cookie", "SESSID=abc; lang=fr"),
    ("Cookie", "SESSID=def"),
    ("X-Forwarded-For", "10.1.1.1, 192.168.0.9"),
    ("X-Path", "/////a///b/c/xzxyz/"),
    ("X-Ugly", 'Very "Ugly" UA 1/2'),
]

EXPRS = """path
base32
url32
baseq
base32+src,hex
url32+src,hex
url
query
pathq
base
method
req.ver
url_param(user)
urlp(page)
urlp(sid)
urlp(empty)
urlp
urlp_val(page)
req.hdr(accept)
req.hdr(accept,1)
req.hdr(accept,2)
req.hdr(accept,-2)
req.fhdr(accept,1)
req.fhdr(accept)
req.hdr_cnt(accept)
req.fhdr_cnt(accept)
req.hdr_cnt
req.hdr(user-agent)
req.fhdr(user-agent)
req.hdr(host)
req.cook(SESSID)
req.cook(lang)
req.cook
req.cook_cnt(SESSID)
req.cook_cnt
req.cook_val(SESSID)
req.hdr_ip(x-forwarded-for)
req.hdr_ip(x-forwarded-for,1)
req.hdr_val(x-forwarded-for)
src
str(HeLLo),lower
str(HeLLo),upper
str(AB),hex
str(ff),hex2i
str(hello),base64
str(aGVsbG8=),b64dec
str(??>),ub64enc
str(Pz8-),ub64dec
str(a%20b+c%2Fd),url_dec
str(a%20b+c),url_dec(1)
str(/p?a=b+c),url_dec
str(a b/c),url_enc
str(f1_f2_f3__f5),field(5,_)
str(f1_f2_f3__f5),field(2,_,0)
str(f1_f2_f3__f5),field(2,_,2)
str(f1_f2_f3__f5),field(-2,_,3)
str(f1_f2_f3__f5),field(-3,_,0)
str(f1_f2_f3__f5),field(4,_)
str(f1_f2_f3__f5),field(9,_)
str(f1_f2_f3__f5),word(4,_)
str(f1_f2_f3__f5),word(2,_,0)
str(f1_f2_f3__f5),word(3,_,2)
str(f1_f2_f3__f5),word(-2,_,3)
str(f1_f2_f3__f5),word(-3,_,0)
str(/f1/f2/f3/f4),word(1,/)
req.hdr(x-path),regsub('/+','/','g')
str(?;&a=1),regsub([?;&]*,'')
str(aXbXc),regsub(x,-,ig)
str(aXbXc),regsub(x,-,i)
str(2024-01-31),regsub('([0-9]+)-([0-9]+)-([0-9]+)','\\3/\\2/\\1')
ipv4(192.168.1.77),ipmask(24)
ipv4(192.168.1.77),ipmask(255.255.0.0)
ipv6(2001:db8:1:2::5),ipmask(24,64)
int(971186136),utime(%Y%m%d%H%M%S)
int(971186136),utime(%Y-%m-%d,3600)
int(971186136),utime(%a %A %b %B %j %u %w %e %I%p)
int(971186136),http_date
int(0),bool
int(5),bool
int(5),not
str(hello),length
str(hello),bytes(1,3)
str(hello),bytes(3)
str(a),concat(<,txn.who,>)
str(a),concat(-,txn.none,+)
str(),concat(,txn.who)
int(10),add(5)
int(10),sub(15)
int(10),mul(txn.n)
int(10),div(3)
int(10),div(0)
int(-10),div(0)
int(10),mod(3)
int(10),mod(0)
int(12),and(10)
int(12),or(3)
int(12),xor(4)
int(5),neg
int(0),cpl
int(4),even
int(4),odd
str(xxabcxx),ltrim(x)
str(xxabcxx),rtrim(x)
str(a),crc32
str(abc),djb2
str(abc),sdbm
str(abc),wt6
req.hdr(x-ugly),json
req.fhdr(user-agent),json(utf8s)
var(txn.who)
var(txn.n)
str(10.1.2.3),ipmask(8)
str(a),crc32(1)
str(abc),djb2(1)
str(abc),sdbm(1)
str(abc),wt6(1)
int(255),hex
int(-1),hex
str(zz),hex2i
str(a%zzb),url_dec
str(a%),url_dec
str(hello),bytes(9)
str(hello),bytes(2,9)
str(a-b_c-d),field(2,_-)
str(a-b_c-d),field(-1,_-,2)
str(//a//b/),word(1,/)
str(//a//b/),word(-1,/)
str(//a//b/),word(3,/)
str(abc),regsub(x*,-,g)
str(aaa),regsub(a,b,g)
str(  x  ),ltrim(' ')
int(971186136),http_date(3600)
int(971186136000),http_date(0,ms)
int(971186136007),http_date(0,ms)
int(971186136456789),http_date(0,us)
int(-5),http_date(0,ms)
int(971186136999),http_date(1,ms)
int(255),base64
int(1),crc32
int(971186136),ltime(%Y-%m-%d %H:%M:%S)
str(abc),upper,lower,length,add(1),mul(2),neg,cpl,xor(3)
str(3),odd
str(x),even
req.hdr(accept),length
str(%41%42),url_dec,lower
int(5),mod(-3)
int(-5),mod(3)
int(-7),div(2)
str(abc),base64,b64dec
str(Zm9v),ub64dec
str(foo),ub64enc
str(),length
str(a b),json
req.fhdr(x-ugly),url_enc""".splitlines()

# ACLs: (criterion and patterns) — the fixture records whether each matched.
ACLS = """path_beg /foo/
path_end .php
path_sub bar
path_dir foo
path_dir fo
path_reg ^/foo/[a-z]+\\.php$
path_len 12
path /foo/bar.php
path -i /FOO/BAR.PHP
path /FOO/BAR.PHP
url_beg /foo
url_sub alice
base_beg www.example.com/foo
base_dom example
hdr(host) www.example.com
hdr(accept) application/json;q=0.9
req.fhdr(accept) application/json;q=0.9
hdr_beg(host) www.
hdr_end(host) -i .EXAMPLE.COM
hdr_sub(user-agent) -i linux
hdr_dom(host) example.com
hdr_dom(host) ample.com
hdr_reg(host) ^www\\.
hdr_len(host) 15
hdr_cnt(accept) eq 3
hdr_cnt(accept) gt 3
hdr_cnt(x-none) 0
hdr_ip(x-forwarded-for) 192.168.0.0/16
hdr_ip(x-forwarded-for) 10.1.1.1
hdr(host) -m found
hdr(x-none) -m found
req.cook(SESSID) abc
req.cook(SESSID) def
req.cook(SESSID) xyz
req.cook_cnt(SESSID) 2
cook_len(lang) 2
urlp(user) alice
urlp_beg(user) ali
urlp_reg(page) ^[0-9]+$
urlp_val(page) 10:20
url_param(sid) -m str xyz
method GET HEAD
method POST
method -i get
method -i GET
method -i gEt HEAD
src 127.0.0.0/8
src 10.0.0.0/8 ::1
src_port 1:
dst_port 1:65535
always_true
always_false
var(txn.n) -m int gt 5
var(txn.who) -m str bob
str(abc) -m sub b
str(abc) -m beg b
str(abc) -m len 3
str(12abc) -m int 12
str(10.1.2.3) -m ip 10.0.0.0/8
str(abc) -m reg ^A
str(abc),upper -m reg ^A
str(abc),length 3
req.ver 1.1
HTTP_1.1
METH_GET
HTTP_URL_SLASH
LOCALHOST
TRUE
FALSE
hdr_dom(host) example
hdr_dom(host) www.example.com
hdr_dom(host) -i WWW
hdr_dir(host) www.example.com
path_dir /acls
path_dir acls
url_dom acls
url_dir user=alice
url_reg page=[0-9]+
url_len 40:60
path_len lt 6
path_len le 5
path_len ge 5
path_len 3:
hdr_len(host) gt 15
hdr_cnt lt 13
hdr_cnt le 12
req.hdr_cnt(cookie) 2
hdr_sub(accept) json
hdr_beg(accept) */
hdr_end(accept) -i /HTML
hdr_reg(accept) -i ^APPLICATION/
urlp(sid) -i XYZ
urlp_sub(user) lic
urlp_end(user) ice
urlp_len(user) 5
urlp(empty) -m found
urlp(empty) -m len 0
urlp(nope) -m found
str(0) -m bool
str(1) -m bool
int(0) -m found
str(abc) -m dom b
str(a.b.c) -m dom b
str(/a/b/c) -m dir b/c
str(/a/b/c) -m dir /a/b/
str(aBc) -i -m str ABC
str(aBc) -m str ABC
str(ab) -m bin 6162
str(ab) -m bin 61
str(5) -m int 1:4 5
str(5) -m int 6:
int(-3) -m int -- -3
int(-3) -m int lt 0
src -m ip 127.0.0.1
src ::ffff:127.0.0.1
src -n 127.0.0.1/32
dst 127.0.0.0/8""".splitlines()


def escape_cfg(s):
    return s.replace("\\", "\\\\").replace('"', '\\"')


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def request(port, path):
    line = REQ_LINE.replace("/foo/bar.php", path, 1) if path else REQ_LINE
    raw = line + "\r\n" + "".join(f"{n}: {v}\r\n" for n, v in REQ_HEADERS) + "Connection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def main():
    port = free_port()
    lines = [
        "global", " maxconn 100",
        "defaults", " mode http", " timeout connect 1s", " timeout client 5s", " timeout server 5s",
        "frontend f", f" bind 127.0.0.1:{port}",
        " http-request set-var(txn.who) str(bob)",
        " http-request set-var(txn.n) int(7)",
    ]
    for i, a in enumerate(ACLS):
        predefined = a.strip().isupper() or a.startswith(("HTTP_", "METH_"))
        name = a if predefined and " " not in a else None
        if name is None:
            lines.append(f" acl a{i} {a}")
            name = f"a{i}"
        lines.append(f" http-request set-var(txn.acl{i}) int(1) if {name}")
    acl_fmt = "".join(f"%[var(txn.acl{i})]," for i in range(len(ACLS)))
    lines.append(f' http-request return status 200 content-type text/plain lf-string "{acl_fmt}" if {{ path /acls }}')
    for i, e in enumerate(EXPRS):
        lines.append(f' http-request return status 200 content-type text/plain lf-string "[%[{escape_cfg(e)}]]" if {{ path /e{i} }}')
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "h.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        chk = subprocess.run(["haproxy", "-c", "-f", cfg], capture_output=True, text=True)
        if chk.returncode != 0:
            sys.exit(chk.stderr)
        proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            out = []
            for i, e in enumerate(EXPRS):
                # The path is part of the request: evaluate /e<i> with the same query string.
                _, body = request(port, f"/e{i}")
                out.append(("sample", e, body.decode("latin-1")))
            _, body = request(port, "/acls")
            bits = body.decode().split(",")
            for i, a in enumerate(ACLS):
                out.append(("acl", a, bits[i]))
        finally:
            proc.terminate()
            proc.wait(timeout=5)
    with open(OUT, "w") as f:
        f.write("# recorded from haproxy 2.6 by record_haproxy.py; kind<TAB>expression<TAB>output\n")
        for kind, e, o in out:
            o = o.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            f.write(f"{kind}\t{e}\t{o}\n")
    print(f"wrote {len(out)} cases to {OUT}")


if __name__ == "__main__":
    main()
