#!/usr/bin/env bash
# Captures haproxy 2.6's own health-check log lines (state changes, "no server available")
# against real origins on loopback, into haproxy-2.6-checks.log. tests/log_text.rs checks
# ringlb-health's messages against these lines (durations masked).
#
# Needs haproxy, socat and the origin binary (`cargo build -p ringlb-origin`). Every process
# is bounded by `timeout` and killed by pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
origin_bin=${ORIGIN_BIN:-$repo/target/debug/ringlb-origin}
work=$(mktemp -d /tmp/ringlb-checks.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

touch "$work/unhealthy"
p1=$(free_port); p2=$(free_port); closed=$(free_port); agent=$(free_port); fe=$(free_port)
timeout 60 "$origin_bin" --listen "127.0.0.1:$p1" --name s1 --unhealthy-file "$work/unhealthy" 2>/dev/null & pids+=($!)
timeout 60 "$origin_bin" --listen "127.0.0.1:$p2" --name s2 2>/dev/null & pids+=($!)
# An agent that answers "maint" then, once the file exists, "ready up 50%".
timeout 60 socat "TCP-LISTEN:$agent,bind=127.0.0.1,fork,reuseaddr" \
    SYSTEM:"if [ -e $work/agent-up ]; then echo 'ready up 50%'; else echo 'maint'; fi" & pids+=($!)
sleep 0.5

cat >"$work/h.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 500ms
    timeout client 2s
    timeout server 2s
    timeout check 500ms
frontend fe
    bind 127.0.0.1:$fe
    default_backend web
backend web
    option httpchk GET /health
    server s1 127.0.0.1:$p1 check inter 200ms fall 2 rise 2
    server s2 127.0.0.1:$p2 check inter 200ms fall 2 rise 2
backend status500
    option httpchk GET /status/500
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend refused
    server s1 127.0.0.1:$closed check inter 200ms fall 1 rise 1
    server b1 127.0.0.1:$closed check inter 200ms fall 1 rise 1 backup
backend content
    option httpchk GET /
    http-check expect string nothere
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend hdrcheck
    option httpchk GET /
    http-check expect hdr name X-Nope
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend negstring
    option httpchk GET /
    http-check expect ! string hello
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend rstringchk
    option httpchk GET /
    http-check expect rstring ^nomatch
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend negstatus
    option httpchk GET /
    http-check expect ! status 200
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend tcpcheck
    option tcp-check
    tcp-check send PING\r\n
    tcp-check expect string +PONG
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend rstatus
    option httpchk GET /status/404
    http-check expect rstatus ^2
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend nolb
    option httpchk GET /status/404
    http-check disable-on-404
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
backend slow
    option httpchk GET /slow/2000
    server s1 127.0.0.1:$p2 check inter 200ms fall 1 rise 1
# A listen section: "proxy 'lst' has no server available!". fall 3, yet DOWN at the first
# failure: servers start "UP, going down" in 2.6.
listen lst
    bind 127.0.0.1:$(free_port)
    server s1 127.0.0.1:$closed check inter 200ms fall 3 rise 2
backend agent
    server s1 127.0.0.1:$p2 agent-check agent-port $agent agent-inter 200ms
CFG
timeout 20 haproxy -db -f "$work/h.cfg" >"$work/out.log" 2>&1 & hp=$!; pids+=($hp)
sleep 2
rm -f "$work/unhealthy"; touch "$work/agent-up"
sleep 2
kill "$hp"; wait "$hp" 2>/dev/null || true
grep -v -e 'haproxy version' -e 'path to executable' -e 'Proxy .* stopped' -e 'Stopping' -e 'Exiting Master' "$work/out.log" \
    | sed -E 's/^\[(WARNING|ALERT|NOTICE)\] +\([0-9]+\) : /[\1] /; s/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/g' >"$here/haproxy-2.6-checks.log"
cat "$here/haproxy-2.6-checks.log"
