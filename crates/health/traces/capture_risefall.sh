#!/usr/bin/env bash
# Records haproxy 2.6's view of the rise/fall counters: a scripted HTTP server answers check
# number i with 200 or 503 following PATTERN ('+' pass, '-' fail); the stats socket is polled
# and every change of the server's `status` column ("UP", "UP 1/3", "DOWN 1/2", ...) and of
# `chkfail`/`chkdown` is written to risefall-<name>.txt. tests/state_machine.rs replays it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-risefall.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
hex() { printf '%b' "$1" | xxd -p | tr -d '\n'; }

record() {
    local name=$1 rise=$2 fall=$3 pattern=$4
    local port replies=() i
    port=$(free_port)
    for ((i = 0; i < ${#pattern}; i++)); do
        if [ "${pattern:i:1}" = "+" ]; then replies+=("$(hex 'HTTP/1.0 200 OK\r\n\r\n')")
        else replies+=("$(hex 'HTTP/1.0 503 Service Unavailable\r\n\r\n')"); fi
    done
    REPLY_READY=$work/$name.ready timeout 15 python3 "$here/reply_server.py" "$port" answer "${replies[@]}" & pids+=($!)
    for _ in $(seq 100); do [ -e "$work/$name.ready" ] && break; sleep 0.05; done
    cat >"$work/$name.cfg" <<CFG
global
    nbthread 1
    stats socket $work/$name.sock level admin
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
    timeout check 1s
backend be
    option httpchk GET /
    server s1 127.0.0.1:$port check inter 250ms rise $rise fall $fall
CFG
    printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend be\n' "$(free_port)" >>"$work/$name.cfg"
    timeout 15 haproxy -db -f "$work/$name.cfg" >/dev/null 2>&1 & local hp=$!; pids+=($hp)
    # Poll for the pattern's duration (checks every 250 ms); past its end the last reply,
    # always a pass here, repeats and changes nothing.
    local last="" line end=$(( $(date +%s%N) / 1000000 + (${#pattern} + 2) * 250 ))
    {
        echo "# haproxy 2.6, rise $rise fall $fall, check results $pattern (+ pass, - fail)."
        echo "# Each line: status chkfail chkdown, printed when one of them changes."
        echo "rise=$rise fall=$fall pattern=$pattern"
        while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
            line=$(echo "show stat" | timeout 2 socat stdio "unix-connect:$work/$name.sock" 2>/dev/null \
                | awk -F, 'NR==1{for(i=1;i<=NF;i++)h[$i]=i} $1=="be" && $2=="s1"{print $h["status"] "," $h["chkfail"] "," $h["chkdown"]}') || true
            if [ -n "$line" ] && [ "$line" != "$last" ]; then echo "$line"; last=$line; fi
            sleep 0.01
        done
    } >"$here/risefall-$name.txt"
    kill "$hp" 2>/dev/null || true
    cat "$here/risefall-$name.txt"
}

record r2f3 2 3 '-++-+---+--++-+++'
record r1f1 1 1 '+-+--++-'
record r3f2 3 2 '+-++--+++-+-+++'
