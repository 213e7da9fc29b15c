#!/usr/bin/env bash
# Captures haproxy 2.6's `option smtpchk` dialogue outcomes (greeting refused, QUIT refused,
# success) as log lines into haproxy-2.6-smtp.log, against smtp_server.py on loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-smtp.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
port=$(free_port)
timeout 10 python3 "$here/smtp_server.py" "$port" & pids+=($!)
sleep 0.3
cat >"$work/s.cfg" <<CFG
global
    nbthread 1
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
    timeout check 1s
backend mail
    option smtpchk
    server s1 127.0.0.1:$port check inter 300ms rise 1 fall 1
CFG
printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend mail\n' "$(free_port)" >>"$work/s.cfg"
timeout 3 haproxy -db -f "$work/s.cfg" >"$work/out.log" 2>&1 || true
# Four checks: DOWN (554), UP (221), DOWN (500 to QUIT), UP; later ones hit a closed port.
grep -v -e NOTICE -e 'Connection refused' -e 'no server available' "$work/out.log" | head -4 \
    | sed -E 's/^\[(WARNING|ALERT|NOTICE)\] +\([0-9]+\) : /[\1] /' >"$here/haproxy-2.6-smtp.log"
cat "$here/haproxy-2.6-smtp.log"
