#!/usr/bin/env bash
# Captures how haproxy 2.6 handles a sequence of agent-check replies (reply_server.py sends
# reply i on the agent's connection i): its log lines and, after each reply, the server's
# `status` and `weight` columns of `show stat` (deduplicated) into agent-2.6.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-agent.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
hex() { printf '%b' "$1" | xxd -p | tr -d '\n'; }
replies=('50%\n' 'drain\n' 'ready\n' 'down # disk full\n' 'up\n' 'maint\n' 'ready up 100%\n' 'bogus\n' '300%\n' 'stopped\n')
agent=$(free_port); srv=$(free_port)
args=()
for r in "${replies[@]}"; do args+=("$(hex "$r")"); done
REPLY_READY=$work/ready REPLY_SECONDS=14 timeout 16 python3 "$here/reply_server.py" "$agent" greet "${args[@]}" & pids+=($!)
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.05; done
cat >"$work/a.cfg" <<CFG
global
    nbthread 1
    stats socket $work/a.sock level admin
defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s
    timeout check 1s
backend be
    server s1 127.0.0.1:$srv weight 10 agent-check agent-port $agent agent-inter 500ms
CFG
printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend be\n' "$(free_port)" >>"$work/a.cfg"
timeout 9 haproxy -db -f "$work/a.cfg" >"$work/out.log" 2>&1 & hp=$!; pids+=($hp)
last=""
end=$(( $(date +%s%N) / 1000000 + (${#replies[@]} + 1) * 500 ))
{
    echo "# haproxy 2.6, weight 10, agent replies in order: ${replies[*]}"
    echo "# status,weight from show stat when they change"
    while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
        line=$(echo "show stat" | timeout 2 socat stdio "unix-connect:$work/a.sock" 2>/dev/null \
            | awk -F, 'NR==1{for(i=1;i<=NF;i++)h[$i]=i} $1=="be" && $2=="s1"{print $h["status"] "," $h["weight"]}') || true
        if [ -n "$line" ] && [ "$line" != "$last" ]; then echo "$line"; last=$line; fi
        sleep 0.01
    done
    echo "# log"
    kill "$hp" 2>/dev/null || true
    wait "$hp" 2>/dev/null || true
    grep -e 'Server be/' -e "backend 'be'" "$work/out.log" | sed -E 's/^\[(WARNING|ALERT|NOTICE)\] +\([0-9]+\) : /[\1] /'
} >"$here/agent-2.6.txt"
cat "$here/agent-2.6.txt"
