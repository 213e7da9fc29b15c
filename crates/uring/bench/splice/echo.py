# Echo upstream: accepts up to N connections, echoes each (thread per connection). Bounded.
import socket, sys, threading
port, limit = int(sys.argv[1]), float(sys.argv[2])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port)); l.listen(1024); l.settimeout(limit)
def serve(c):
    c.settimeout(limit); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            b = c.recv(65536)
            if not b: break
            c.sendall(b)
    except OSError: pass
    c.close()
try:
    while True:
        c, _ = l.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
except OSError: pass
