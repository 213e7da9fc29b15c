#!/usr/bin/env python3
"""A strict HTTP/1.1 origin built on h11, for hardening_smuggling.rs.

Usage: h11_origin.py PORTFILE. Binds 127.0.0.1:0, writes the port to PORTFILE, then serves
each connection in a thread. Every request it completes is printed as `REQ <target> <body
length>`; every protocol error h11 detects as `ERR <message>` (a desynchronisation or a
malformed forwarded request), and so is a request carrying a field named `injected` (the
hostile-input tests put that name only inside other values, so seeing it means a value was
split into two lines). Answers 200 with a small body and keeps connections alive.
"""
import socket
import sys
import threading

import h11

lock = threading.Lock()


def out(line):
    with lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def serve(sock):
    conn = h11.Connection(h11.SERVER)
    sock.settimeout(30)
    target, body = None, 0
    try:
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = sock.recv(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return
                continue
            if isinstance(ev, h11.Request):
                target, body = ev.target.decode("latin-1"), 0
                # A field no client sent: something split a value into a second line.
                if any(name == b"injected" for name, _ in ev.headers):
                    out(f"ERR injected field in {target}")
            elif isinstance(ev, h11.Data):
                body += len(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                out(f"REQ {target} {body}")
                payload = b"ok\n"
                sock.sendall(conn.send(h11.Response(status_code=200, headers=[
                    ("content-length", str(len(payload))), ("content-type", "text/plain")])))
                sock.sendall(conn.send(h11.Data(data=payload)))
                sock.sendall(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
            elif isinstance(ev, h11.ConnectionClosed):
                return
    except h11.RemoteProtocolError as e:
        out(f"ERR {e}")
    except (OSError, h11.LocalProtocolError):
        pass
    finally:
        sock.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        s, _ = srv.accept()
        threading.Thread(target=serve, args=(s,), daemon=True).start()


main()
