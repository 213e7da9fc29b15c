# Sender: connect, sendfile a tmpfs file until `total` bytes went, half-close, wait for close.
import os, socket, sys
port, total, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=120); s.settimeout(None)
fd = os.open(path, os.O_RDONLY); size = os.fstat(fd).st_size; sent = 0
while sent < total:
    off = sent % size
    n = os.sendfile(s.fileno(), fd, off, min(size - off, total - sent))
    if n == 0: break
    sent += n
s.shutdown(socket.SHUT_WR)
while s.recv(65536): pass
