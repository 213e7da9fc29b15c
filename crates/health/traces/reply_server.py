#!/usr/bin/env python3
"""Scripted TCP server for capture_canned.sh: `reply_server.py PORT MODE HEX [HEX...]`.
Connection i gets reply HEX[i] (the last one repeats): at once (MODE=greet) or after the
client's first bytes (MODE=answer); then it waits for the client to close. Exits after 8 s (REPLY_SECONDS).
With REPLY_LOG=path, appends each connection's accept time (ms) to that file; with
REPLY_READY=path, creates that file once listening."""
import os
import socket
import sys
import time

port, mode, replies = int(sys.argv[1]), sys.argv[2], [bytes.fromhex(h) for h in sys.argv[3:]]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(5)
if os.environ.get("REPLY_READY"):
    open(os.environ["REPLY_READY"], "w").close()
deadline = time.time() + float(os.environ.get("REPLY_SECONDS", "8"))
i = 0
while time.time() < deadline:
    srv.settimeout(max(0.1, deadline - time.time()))
    try:
        c, _ = srv.accept()
    except OSError:
        break
    c.settimeout(0.5)
    if os.environ.get("REPLY_LOG"):
        with open(os.environ["REPLY_LOG"], "a") as log:
            log.write("%d\n" % int(time.time() * 1000))
    reply = replies[min(i, len(replies) - 1)]
    i += 1
    try:
        if mode == "answer":
            c.recv(4096)
        c.sendall(reply)
        while c.recv(4096):
            pass
    except OSError:
        pass
    c.close()
