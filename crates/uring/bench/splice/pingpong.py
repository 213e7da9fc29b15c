# N round trips of SIZE bytes over one connection; prints mean microseconds per round trip.
import socket, sys, time
port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * size; buf = bytearray(size)
t0 = time.monotonic()
for _ in range(n):
    s.sendall(msg); got = 0
    while got < size:
        r = s.recv_into(memoryview(buf)[got:])
        if r == 0: raise SystemExit("eof")
        got += r
print((time.monotonic() - t0) / n * 1e6)
