#!/usr/bin/env bash
# Records the intervals haproxy 2.6 leaves between checks (inter 1000ms, fastinter 200ms,
# downinter 500ms, rise 2, fall 3) while a scripted server answers checks with PATTERN
# ('+' 200, '-' 503). Output intervals.txt: the pattern and the gap (ms, from one check's
# connection to the next) after each check. tests/state_machine.rs compares them with
# HealthState::next_interval().
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-intervals.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
hex() { printf '%b' "$1" | xxd -p | tr -d '\n'; }
pattern='+--+-+---++-++++'
port=$(free_port)
replies=()
for ((i = 0; i < ${#pattern}; i++)); do
    if [ "${pattern:i:1}" = "+" ]; then replies+=("$(hex 'HTTP/1.0 200 OK\r\n\r\n')")
    else replies+=("$(hex 'HTTP/1.0 503 Service Unavailable\r\n\r\n')"); fi
done
REPLY_READY=$work/ready REPLY_SECONDS=13 REPLY_LOG=$work/times timeout 15 python3 "$here/reply_server.py" "$port" answer "${replies[@]}" & pids+=($!)
cat >"$work/i.cfg" <<CFG
global
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
    timeout check 1s
backend be
    option httpchk GET /
    server s1 127.0.0.1:$port check inter 1000ms fastinter 200ms downinter 500ms rise 2 fall 3
CFG
printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend be\n' "$(free_port)" >>"$work/i.cfg"
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
timeout 12 haproxy -db -f "$work/i.cfg" >/dev/null 2>&1 || true
{
    echo "# haproxy 2.6: inter 1000ms fastinter 200ms downinter 500ms rise 2 fall 3."
    echo "# pattern, then the gap in ms after check 1, 2, ... (only gaps within the pattern)."
    echo "$pattern"
    awk 'NR>1{print $1-prev} {prev=$1}' "$work/times" | head -n $((${#pattern} - 1))
} >"$here/intervals.txt"
cat "$here/intervals.txt"
