#!/usr/bin/env python3
"""Generates cases.txt, the end-to-end request-smuggling corpus of hardening_smuggling.rs.

Edit this script, not cases.txt. One case per line: name<TAB>expect<TAB>body<TAB>bytes, where
body is the body length the h11 origin must receive when the case is forwarded (- unchecked).
expect: 400 or 422 = ringlb answers that status and closes the connection, no origin sees
the request; 400b = the body is invalid: ringlb answers 400 and closes, the head may already
have been streamed to the origin but no origin ever receives a complete message; 200 = forwarded
once (the origin sees {T} exactly once); 200c = forwarded once and the client connection is
then closed; any = either rejected or forwarded once (both are correct HTTP).
bytes: \\r \\n \\t \\\\ \\xNN escapes. Placeholders filled by the test:
  {T}  the case's own target, /case/NNNN (must reach each origin at most once)
  {T2} a second target the case may legitimately send, /case/NNNN/2 (at most once)
  {S}  a complete smuggled request for /smuggled, which no origin may ever see
"""
import os

S = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
cases = []


def add(name, expect, raw, body=None):
    """body: the body length the origin must receive for {T} when the case is forwarded."""
    assert "\t" not in name and name not in [c[0] for c in cases], name
    cases.append((name, expect, raw, body))


def post(headers, body, version="HTTP/1.1"):
    return f"POST {{T}} {version}\r\nHost: x\r\n{headers}\r\n{body}"


# --- CL.TE and TE.CL with a smuggled request behind the body the other side would see.
ZERO = "0\r\n\r\n"
clte_len = len(ZERO) + len(S)
# TE.CL: a chunk that holds the smuggled request; Content-Length covers only the size line.
chunk = f"{len(S):x}\r\n{S}\r\n0\r\n\r\n"
tecl_cl = len(f"{len(S):x}\r\n")

# Transfer-Encoding spellings: (label, header line(s), expect-when-valid)
te_variants = [
    ("plain", "Transfer-Encoding: chunked", "200c"),
    ("upper", "TRANSFER-ENCODING: CHUNKED", "200c"),
    ("mixed", "Transfer-Encoding: cHuNkEd", "200c"),
    ("tab-ows", "Transfer-Encoding:\tchunked", "200c"),
    ("trail-sp", "Transfer-Encoding: chunked  ", "200c"),
    ("xchunked", "Transfer-Encoding: xchunked", "400"),
    ("chunkedx", "Transfer-Encoding: chunkedx", "400"),
    ("chunk", "Transfer-Encoding: chunk", "400"),
    ("quoted", 'Transfer-Encoding: "chunked"', "400"),
    ("chunked-identity", "Transfer-Encoding: chunked, identity", "400"),
    ("identity-chunked", "Transfer-Encoding: identity, chunked", "422"),
    ("gzip-chunked", "Transfer-Encoding: gzip, chunked", "422"),
    ("chunked-chunked", "Transfer-Encoding: chunked, chunked", "400"),
    ("two-te-chunked-identity", "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity", "400"),
    ("two-te-identity-chunked", "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked", "422"),
    ("two-te-chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "400"),
    ("param", "Transfer-Encoding: chunked;q=1", "400"),
    ("trail-comma", "Transfer-Encoding: chunked,", "400"),
    ("lead-comma", "Transfer-Encoding: ,chunked", "400"),
    ("empty", "Transfer-Encoding: ", "400"),
    ("sp-before-colon", "Transfer-Encoding : chunked", "400"),
    ("tab-before-colon", "Transfer-Encoding\t: chunked", "400"),
    ("obs-fold-value", "Transfer-Encoding:\r\n chunked", "400"),
    ("obs-fold-after", "X-A: b\r\n Transfer-Encoding: chunked", "400"),
    ("lead-sp-name", "X-A: b\r\n\tTransfer-Encoding: chunked", "400"),
    ("vt-value", "Transfer-Encoding: chunked\x0b", "400"),
    ("vt-lead", "Transfer-Encoding: \x0bchunked", "400"),
    ("ff-value", "Transfer-Encoding: \x0cchunked", "400"),
    ("nul-value", "Transfer-Encoding: chunked\x00", "400"),
    ("nul-name", "Transfer-Encoding\x00: chunked", "400"),
    ("ctl-name", "Transfer-\x01Encoding: chunked", "400"),
    ("cr-value", "Transfer-Encoding: chunked\r", "400"),
    ("bare-lf-line", "Transfer-Encoding: chunked\n", "400"),
    ("nbsp", "Transfer-Encoding: \xa0chunked", "400"),
    ("underscore-name", "Transfer_Encoding: chunked", "any"),
    ("space-inside", "Transfer-Encoding: ch unked", "400"),
]
for label, te, exp in te_variants:
    # CL.TE: a CL-only reader sees the smuggled request as body; a TE reader sees it next.
    cl_first = post(f"Content-Length: {clte_len}\r\n{te}\r\n", ZERO + S)
    te_first = post(f"{te}\r\nContent-Length: {tecl_cl}\r\n", chunk)
    if exp == "any":
        # Not a Transfer-Encoding at all: Content-Length frames the body and the chunk's
        # content is the client's own next request.
        inner = "GET {T2} HTTP/1.1\r\nHost: x\r\n\r\n"
        te_first = post(f"{te}\r\nContent-Length: {len(f'{len(inner):x}') + 2}\r\n",
                        f"{len(inner):x}\r\n{inner}")
    e1 = "any" if exp == "any" else exp
    add(f"clte-{label}", e1, cl_first, clte_len if exp == "any" else 0)
    add(f"tecl-{label}", e1, te_first, None if exp == "any" else len(S))

# --- Content-Length forms (body "hello" followed by a smuggled request).
cl_variants = [
    ("single", "Content-Length: 5", "200"),
    ("dup-same", "Content-Length: 5\r\nContent-Length: 5", "200"),
    ("comma-same", "Content-Length: 5, 5", "200"),
    ("comma-nospace", "Content-Length: 5,5", "200"),
    ("dup-diff", f"Content-Length: 5\r\nContent-Length: {5 + len(S)}", "400"),
    ("dup-diff-rev", f"Content-Length: {5 + len(S)}\r\nContent-Length: 5", "400"),
    ("comma-diff", f"Content-Length: 5, {5 + len(S)}", "400"),
    ("comma-empty", "Content-Length: 5,", "400"),
    ("comma-lead", "Content-Length: ,5", "400"),
    ("plus", "Content-Length: +5", "400"),
    ("minus", "Content-Length: -5", "400"),
    ("hex", "Content-Length: 0x5", "400"),
    ("space-inside", "Content-Length: 5 5", "400"),
    ("decimal", "Content-Length: 5.0", "400"),
    ("empty", "Content-Length: ", "400"),
    ("overflow", "Content-Length: 18446744073709551621", "400"),
    ("overflow-big", "Content-Length: 99999999999999999999999999999999999", "400"),
    ("leading-zeros", "Content-Length: 0005", "200"),
    ("nul", "Content-Length: 5\x00", "400"),
    ("vt", "Content-Length: 5\x0b", "400"),
    ("sp-before-colon", f"Content-Length : {5 + len(S)}", "400"),
    ("obs-fold", f"Content-Length:\r\n {5 + len(S)}", "400"),
    ("case-dup-diff", f"Content-Length: 5\r\ncontent-length: {5 + len(S)}", "400"),
    ("bare-lf", "Content-Length: 5\n", "400"),
    ("underscore", f"Content_Length: {5 + len(S)}", "any"),
]
T2 = "GET {T2} HTTP/1.1\r\nHost: x\r\n\r\n"
for label, cl, exp in cl_variants:
    # Where the framing is valid, what follows the body is a legitimate next request.
    body = "hello" + (S if exp.startswith("4") else T2)
    if exp == "any":
        body = T2  # not a Content-Length: no body, the next request follows at once
    add(f"cl-{label}", exp, post(f"{cl}\r\n", body), 0 if exp == "any" else 5)

# --- Chunked bodies: sizes, extensions, line endings, trailers. Each is followed by {S}.
def te_body(body, exp):
    return post("Transfer-Encoding: chunked\r\n", body + (S if exp.startswith("4") else T2))


chunk_variants = [
    ("ok", "5\r\nhello\r\n0\r\n\r\n", "200"),
    ("upper-hex", "A\r\n0123456789\r\n0\r\n\r\n", "200"),
    ("lead-zeros", "005\r\nhello\r\n0\r\n\r\n", "200"),
    ("ext", "5;a=b\r\nhello\r\n0\r\n\r\n", "200"),
    ("ext-quoted", '5;a="b c"\r\nhello\r\n0\r\n\r\n', "200"),
    ("trailer", "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", "200"),
    ("size-trail-sp", "5 \r\nhello\r\n0\r\n\r\n", "200"),
    ("overflow", "10000000000000005\r\nhello\r\n0\r\n\r\n", "400"),
    ("overflow-f", "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n", "400"),
    ("empty-size", "\r\nhello\r\n0\r\n\r\n", "400"),
    ("empty-last", "5\r\nhello\r\n\r\n\r\n", "400"),
    ("0x", "0x5\r\nhello\r\n0\r\n\r\n", "400"),
    ("plus", "+5\r\nhello\r\n0\r\n\r\n", "400"),
    ("minus", "-5\r\nhello\r\n0\r\n\r\n", "400"),
    ("lead-sp", " 5\r\nhello\r\n0\r\n\r\n", "400"),
    ("non-hex", "g\r\nhello\r\n0\r\n\r\n", "400"),
    ("ext-bare-lf", "5;a\nb\r\nhello\r\n0\r\n\r\n", "400"),
    ("ext-nul", "5;a\x00b\r\nhello\r\n0\r\n\r\n", "400"),
    ("ext-cr", "5;a\rb\r\nhello\r\n0\r\n\r\n", "400"),
    ("ext-ctl", "5;a\x01\r\nhello\r\n0\r\n\r\n", "400"),
    ("size-bare-lf", "5\nhello\r\n0\r\n\r\n", "400"),
    ("data-bare-lf", "5\r\nhello\n0\r\n\r\n", "400"),
    ("data-no-crlf", "5\r\nhelloXX0\r\n\r\n", "400"),
    ("data-too-long", "3\r\nhello\r\n0\r\n\r\n", "400"),
    ("last-bare-lf", "5\r\nhello\r\n0\n\n", "400"),
    ("last-crcr", "5\r\nhello\r\n0\r\r\n\r\n", "400"),
    ("trailer-bare-lf", "5\r\nhello\r\n0\r\nX-T: 1\n\r\n", "400"),
    ("trailer-fold", "5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n", "400"),
    ("trailer-nul", "5\r\nhello\r\n0\r\nX-T: 1\x00\r\n\r\n", "400"),
    ("trailer-sp-colon", "5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n", "400"),
    ("trailer-no-colon", "5\r\nhello\r\n0\r\nXT\r\n\r\n", "400"),
    ("zero-ext-lf", "0;x\n\r\n", "400"),
]
for label, body, exp in chunk_variants:
    length = 10 if label == "upper-hex" else 5
    add(f"chunk-{label}", exp + ("b" if exp == "400" else ""), te_body(body, exp), length)

# --- Head line endings, folding, whitespace, NUL/CTL.
add("lf-request-line", "400", "GET {T} HTTP/1.1\nHost: x\r\n\r\n" + S)
add("lf-header-line", "400", "GET {T} HTTP/1.1\r\nHost: x\n\r\n" + S)
add("lf-all", "400", "GET {T} HTTP/1.1\nHost: x\n\n" + S)
add("lf-end", "400", "GET {T} HTTP/1.1\r\nHost: x\r\n\n" + S)
add("cr-alone", "400", "GET {T} HTTP/1.1\rHost: x\r\n\r\n" + S)
add("crcr-lf", "400", "GET {T} HTTP/1.1\r\r\nHost: x\r\n\r\n" + S)
add("obs-fold-host", "400", "GET {T} HTTP/1.1\r\nHost: x\r\n y\r\n\r\n" + S)
add("obs-fold-xheader", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n" + S)
add("first-header-sp", "400", "GET {T} HTTP/1.1\r\n Host: x\r\n\r\n" + S)
add("sp-before-colon-host", "400", "GET {T} HTTP/1.1\r\nHost : x\r\n\r\n" + S)
add("sp-before-colon-x", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nX-A : a\r\n\r\n" + S)
add("no-colon", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nXA\r\n\r\n" + S)
add("empty-name", "400", "GET {T} HTTP/1.1\r\nHost: x\r\n: a\r\n\r\n" + S)
for b in [0x00, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x0e, 0x1b, 0x1f, 0x7f]:
    add(f"ctl-{b:02x}-in-value", "400", f"GET {{T}} HTTP/1.1\r\nHost: x\r\nX-A: a{chr(b)}b\r\n\r\n" + S)
    add(f"ctl-{b:02x}-in-name", "400", f"GET {{T}} HTTP/1.1\r\nHost: x\r\nX-{chr(b)}A: a\r\n\r\n" + S)
add("obs-text-in-value", "any", "GET {T} HTTP/1.1\r\nHost: x\r\nX-A: caf\xe9\r\n\r\n")
add("tab-in-value", "200", "GET {T} HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n")
add("bracket-in-name", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nX[A]: a\r\n\r\n" + S)

# --- Request target.
for label, tgt in [
    ("hash", "{T}#frag"),
    ("hash-smuggle", "{T}#/smuggled"),
    ("nul", "{T}\x00x"),
    ("ctl-01", "{T}\x01"),
    ("tab", "{T}\tx"),
    ("del", "{T}\x7f"),
    ("space", "{T} x"),
    ("non-ascii", "{T}\xe9"),
    ("backslash", "{T}\\..\\x"),
    ("star-get", "*"),
    ("authority-get", "x:80"),
    ("empty", ""),
]:
    add(f"target-{label}", "400", f"GET {tgt} HTTP/1.1\r\nHost: x\r\n\r\n" + S)
add("target-query", "200", "GET {T}?a=b&c=%20 HTTP/1.1\r\nHost: x\r\n\r\n")

# --- Absolute-form and Host.
add("abs-same-host", "200", "GET http://x{T} HTTP/1.1\r\nHost: x\r\n\r\n")
add("abs-default-port", "200", "GET http://x:80{T} HTTP/1.1\r\nHost: x\r\n\r\n")
add("abs-host-case", "200", "GET http://X{T} HTTP/1.1\r\nHost: x\r\n\r\n")
add("abs-conflict", "400", "GET http://evil{T} HTTP/1.1\r\nHost: x\r\n\r\n" + S)
add("abs-conflict-port", "400", "GET http://x:81{T} HTTP/1.1\r\nHost: x\r\n\r\n" + S)
add("abs-userinfo", "400", "GET http://u@x{T} HTTP/1.1\r\nHost: x\r\n\r\n" + S)
add("abs-empty-authority", "400", "GET http://{T} HTTP/1.1\r\nHost: x\r\n\r\n" + S)
add("host-two-diff", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + S)
add("host-two-same", "400", "GET {T} HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n" + S)
add("host-space", "400", "GET {T} HTTP/1.1\r\nHost: x y\r\n\r\n" + S)
add("host-slash", "400", "GET {T} HTTP/1.1\r\nHost: x/y\r\n\r\n" + S)
add("host-at", "400", "GET {T} HTTP/1.1\r\nHost: u@x\r\n\r\n" + S)
add("host-port", "200", "GET {T} HTTP/1.1\r\nHost: x:8080\r\n\r\n")

# --- Request line and versions.
for label, line in [
    ("v12", "GET {T} HTTP/1.2"),
    ("v20", "GET {T} HTTP/2.0"),
    ("lower-version", "GET {T} http/1.1"),
    ("two-spaces", "GET  {T} HTTP/1.1"),
    ("tab-sep", "GET\t{T} HTTP/1.1"),
    ("http09", "GET {T}"),
    ("trailing-space", "GET {T} HTTP/1.1 "),
    ("no-version-digit", "GET {T} HTTP/1."),
]:
    add(f"line-{label}", "400", f"{line}\r\nHost: x\r\n\r\n" + S)

# --- HTTP/1.0.
add("h10-body-no-length", "200c", "POST {T} HTTP/1.0\r\nHost: x\r\n\r\nGET {T2} HTTP/1.0\r\n\r\n")
add("h10-te", "400", post("Transfer-Encoding: chunked\r\n", "0\r\n\r\n" + S, "HTTP/1.0"))
add("h10-te-cl", "400", post(f"Transfer-Encoding: chunked\r\nContent-Length: {clte_len}\r\n", ZERO + S, "HTTP/1.0"))
add("h10-cl", "200c", post("Content-Length: 5\r\n", "hello", "HTTP/1.0"), 5)
add("h10-keepalive-pipeline", "200", "GET {T} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\nGET {T2} HTTP/1.0\r\nHost: x\r\n\r\n")
add("get-with-body", "200", "GET {T} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 5)

# --- Upgrade: bytes sent after an Upgrade request, before any 101 (origins never send 101).
ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
add("upgrade-then-request", "any", f"GET {{T}} HTTP/1.1\r\nHost: x\r\n{ws}\r\nGET {{T2}} HTTP/1.1\r\nHost: x\r\n\r\n")
add("upgrade-then-garbage", "any", f"GET {{T}} HTTP/1.1\r\nHost: x\r\n{ws}\r\n\x81\x85garbage")
add("upgrade-h2c-then-request", "any", "GET {T} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\nGET {T2} HTTP/1.1\r\nHost: x\r\n\r\n")
add("upgrade-no-key", "400", f"GET {{T}} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + S)
add("upgrade-post-body", "any", f"POST {{T}} HTTP/1.1\r\nHost: x\r\n{ws}Content-Length: 5\r\n\r\nhello")

# --- Pipelined requests after a rejected one: the second must never be seen.
for label, bad in [
    ("bad-te", "POST {T} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n"),
    ("bad-cl", "POST {T} HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n"),
    ("bad-lf", "GET {T} HTTP/1.1\nHost: x\n\n"),
    ("bad-fold", "GET {T} HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
    ("bad-nul", "GET {T} HTTP/1.1\r\nHost: x\r\nX: \x00\r\n\r\n"),
    ("bad-target", "GET {T}# HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("bad-version", "GET {T} HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("bad-host", "GET {T} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("garbage", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"),
    ("bad-method-ctl", "G\x01T {T} HTTP/1.1\r\nHost: x\r\n\r\n"),
]:
    add(f"pipeline-after-{label}", "400", bad + S + S)
add("pipeline-after-bad-chunk", "400b", "POST {T} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + S + S)
add("pipeline-valid-two", "200", "GET {T} HTTP/1.1\r\nHost: x\r\n\r\nGET {T2} HTTP/1.1\r\nHost: x\r\n\r\n")
add("pipeline-valid-post-then-get", "200", post("Content-Length: 5\r\n", "helloGET {T2} HTTP/1.1\r\nHost: x\r\n\r\n"), 5)

# --- Plain valid requests (controls).
add("valid-get", "200", "GET {T} HTTP/1.1\r\nHost: x\r\n\r\n", 0)
add("valid-head-like-options", "200", "OPTIONS {T} HTTP/1.1\r\nHost: x\r\n\r\n")
add("valid-delete", "200", "DELETE {T} HTTP/1.1\r\nHost: x\r\n\r\n")
add("valid-expect", "200", post("Content-Length: 5\r\nExpect: 100-continue\r\n", "hello"), 5)


def esc(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o >= 0x7f:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    return "".join(out)


here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "cases.txt"), "w") as f:
    f.write("# Generated by gen_cases.py (edit the script). name<TAB>expect<TAB>body length or -<TAB>bytes; see the script.\n")
    for name, exp, raw, body in cases:
        f.write(f"{name}\t{exp}\t{'-' if body is None else body}\t{esc(raw)}\n")
print(len(cases), "cases")
