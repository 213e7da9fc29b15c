#!/usr/bin/env bash
# Captures the bytes haproxy 2.6 sends on health checks with check-send-proxy (v1, v2 and
# in front of an httpchk request) into proxy-2.6.txt. Needs haproxy and python3; every
# process is bounded by `timeout`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-proxy.XXXXXX)
trap 'rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
fe=$(free_port); a=$(free_port); b=$(free_port); c=$(free_port)
cat >"$work/p.cfg" <<CFG
global
    nbthread 1
defaults
    mode tcp
    timeout connect 500ms
    timeout client 2s
    timeout server 2s
frontend fe
    bind 127.0.0.1:$fe
    default_backend b1
backend b1
    server s 127.0.0.1:$a check check-send-proxy inter 5s
backend b2
    server s 127.0.0.1:$b check check-send-proxy send-proxy-v2 inter 5s
backend b3
    option httpchk GET /x
    server s 127.0.0.1:$c check check-send-proxy port $c inter 5s
CFG
{
    timeout 9 python3 "$here/capture_proxy_server.py" "$a" v1 &
    timeout 9 python3 "$here/capture_proxy_server.py" "$b" v2 &
    timeout 9 python3 "$here/capture_proxy_server.py" "$c" httpchk+v1 &
    sleep 0.3
    timeout 7 haproxy -f "$work/p.cfg" -db >/dev/null 2>&1 || true
    wait
} | awk '{print $1, $2}'
