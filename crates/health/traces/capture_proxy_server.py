import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,1); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(5); s.settimeout(8)
c,_=s.accept(); c.settimeout(0.5); d=b""
try:
    while True:
        x=c.recv(1000)
        if not x: break
        d+=x
except Exception: pass
print(sys.argv[2], d.hex(), repr(d[:60]))
