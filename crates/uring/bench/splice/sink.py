# Sink: accept one connection, count bytes to EOF, print "bytes seconds". Bounded by a timeout.
import socket, sys, time
port, limit = int(sys.argv[1]), float(sys.argv[2])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(8); l.settimeout(limit)
c, _ = l.accept(); c.settimeout(limit)
buf = bytearray(4 << 20); mv = memoryview(buf); n = 0; t0 = None
while True:
    r = c.recv_into(mv)
    if t0 is None: t0 = time.monotonic()
    if r == 0: break
    n += r
print(n, time.monotonic() - t0, flush=True)
