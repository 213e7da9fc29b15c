#!/usr/bin/env python3
"""A scripted SMTP server for capture_smtp.sh: one behaviour per connection, in order:
554 greeting; a good dialogue; 500 to QUIT; a good dialogue. Exits after 4 connections or 8 s."""
import socket
import sys

GOOD = (b"220 mx ESMTP ready\r\n", b"250 mx.example hello there\r\n", b"221 2.0.0 bye now\r\n")
SCRIPTS = [None, GOOD, (GOOD[0], GOOD[1], b"500 what\r\n"), GOOD]

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(5)
srv.settimeout(8)
for script in SCRIPTS:
    c, _ = srv.accept()
    c.settimeout(1)
    if script is None:
        c.sendall(b"554 no service here\r\n")
        c.close()
        continue
    greet, helo, quit_ = script
    c.sendall(greet)
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            if d[:4] in (b"HELO", b"EHLO"):
                c.sendall(helo)
            if d.startswith(b"QUIT"):
                c.sendall(quit_)
                break
    except OSError:
        pass
    c.close()
