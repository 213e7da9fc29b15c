#!/usr/bin/env bash
# Captures haproxy 2.6's log lines for the canned checks' failures and successes
# (redis-check, pgsql-check, mysql-check, ssl-hello-chk) against reply_server.py: the first
# check gets a failing reply (DOWN), the next ones a good one (UP). Output:
# haproxy-2.6-canned.log, replayed by tests/log_text.rs with the same replies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-canned.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
hex() { printf '%b' "$1" | xxd -p | tr -d '\n'; }

# name | option line | mode | failing reply | good reply   (printf %b escapes)
cases=(
"redis|option redis-check|answer|-NOAUTH Authentication required.\r\n|+PONG\r\n"
"pgsql|option pgsql-check user haproxy|answer|E\x00\x00\x00\x2aSFATAL\x00C28000\x00Mno pg_hba.conf entry\x00\x00|R\x00\x00\x00\x08\x00\x00\x00\x00"
"mysql|option mysql-check user haproxy|greet|\x10\x00\x00\x00\x0a8.0.36\x00abcdefg\x00\x1f\x00\x00\x02\xff\x15\x04#28000Access denied for user|\x10\x00\x00\x00\x0a8.0.36\x00abcdefg\x00\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00"
"mysql_nouser|option mysql-check|greet|\x1f\x00\x00\x00\xff\x15\x04#28000Access denied for user|\x10\x00\x00\x00\x0a8.0.36\x00abcdefg\x00"
"sslhello|option ssl-hello-chk|answer|HTTP/1.0 400 Bad request\r\n\r\n|\x16\x03\x01\x00\x04\x0e\x00\x00\x00"
)
cfg=$work/c.cfg
printf 'global\n    nbthread 1\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n    timeout check 1s\n' >"$cfg"
for c in "${cases[@]}"; do
    IFS='|' read -r name opt mode bad good <<<"$c"
    port=$(free_port)
    REPLY_READY=$work/$name.ready timeout 10 python3 "$here/reply_server.py" "$port" "$mode" "$(hex "$bad")" "$(hex "$good")" & pids+=($!)
    for _ in $(seq 100); do [ -e "$work/$name.ready" ] && break; sleep 0.05; done
    printf 'backend %s\n    %s\n    server s1 127.0.0.1:%s check inter 400ms rise 1 fall 1\n' "$name" "$opt" "$port" >>"$cfg"
done
printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend redis\n' "$(free_port)" >>"$cfg"
sleep 0.3
timeout 3 haproxy -db -f "$cfg" >"$work/out.log" 2>&1 || true
grep -e 'is DOWN' -e 'is UP' "$work/out.log" | grep -v 'Connection refused' \
    | sed -E 's/^\[(WARNING|ALERT|NOTICE)\] +\([0-9]+\) : /[\1] /' | sort >"$here/haproxy-2.6-canned.log"
cat "$here/haproxy-2.6-canned.log"
