#!/usr/bin/env bash
# Captures the bytes haproxy 2.6 sends for each kind of health check (HTTP check requests,
# tcp-check send/send-binary, the canned redis/pgsql/mysql/smtp/ssl-hello checks), one file
# per backend in requests/<name>.hex (hex of the first connection's bytes).
# tests/requests.rs builds the same checks with ringlb-health and compares bytes.
# Needs haproxy, socat, python3, xxd. Bounded by timeout, killed by pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/ringlb-chkreq.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
mkdir -p "$here/requests"

# name | backend lines (the server line is added)
cases=(
"httpchk_default|    option httpchk"
"httpchk_uri|    option httpchk /health"
"httpchk_meth_uri|    option httpchk HEAD /ping"
"httpchk_ver|    option httpchk GET /ready HTTP/1.1"
"httpcheck_send|    option httpchk
    http-check send meth POST uri /api/check ver HTTP/1.1 hdr Host example.org hdr X-Check yes body {\"ping\":1}"
"httpcheck_send_nobody|    option httpchk
    http-check send meth GET uri /h ver HTTP/1.1 hdr Host a.example"
"tcpcheck_send|    option tcp-check
    tcp-check send PING\\r\\n
    tcp-check send-binary 2a310d0a
    tcp-check expect string never"
"redis|    option redis-check"
"pgsql|    option pgsql-check user haproxy"
"mysql|    option mysql-check user haproxy"
"mysql_post41|    option mysql-check user haproxy post-41"
"smtp|    option smtpchk"
"smtp_helo|    option smtpchk EHLO mail.example.org"
"sslhello|    option ssl-hello-chk"
"tcpcheck_lf|    option tcp-check
    tcp-check set-var(check.x) str(abc)
    tcp-check set-var-fmt(check.y) id-%[var(check.x)]
    tcp-check set-var(check.z) int(42)
    tcp-check unset-var(check.z)
    tcp-check send-lf \"PING %[var(check.x)] %[var(check.y)] [%[var(check.z)]] %[var(check.x),upper]\\r\\n\"
    tcp-check send-binary-lf 2a%[var(check.x),hex]0d0a
    tcp-check expect string never"
"httpcheck_lf|    option httpchk
    http-check set-var(check.x) str(abc)
    http-check set-var(check.n) int(7)
    http-check send meth POST uri-lf /h?x=%[var(check.x)] ver HTTP/1.1 hdr Host a.example hdr X-Check %[var(check.x)]-%[var(check.n)] hdr X-None [%[var(check.none)]] body-lf n=%[var(check.n)]"
)

# A check's first connection sometimes carries nothing within the window (haproxy staggers
# the first checks): run up to three rounds, each for the cases still missing.
declare -A done_
ndone=0
capture_round() {
cfg=$work/c.cfg
rm -f "$work"/*.bin
printf 'global\n    nbthread 1\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n    timeout check 1s\n' >"$cfg"
for c in "${cases[@]}"; do
    name=${c%%|*}; body=${c#*|}
    [ -n "${done_[$name]:-}" ] && continue
    port=$(free_port)
    # Record the first connection only, keep it open for 1 s so that the check sends everything.
    # SMTP checks wait for the server's greeting before they speak.
    {
        echo '#!/bin/sh'
        if [[ $name == smtp* ]]; then
            # Greet, take the HELO/EHLO line, accept it, then record the rest (QUIT).
            printf '%s\n' "printf '220 mx ESMTP\\r\\n'" "IFS= read -r line" \
                "printf '%s\\n' \"\$line\" > $work/$name.bin" "printf '250 ok\\r\\n'" \
                "timeout 1 head -c 4096 >> $work/$name.bin"
        else
            echo "timeout 1 head -c 4096 > $work/$name.bin"
        fi
    } >"$work/$name.sh"
    chmod +x "$work/$name.sh"
    timeout 20 socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" "EXEC:$work/$name.sh" & pids+=($!)
    mode=tcp; [[ $name == http* ]] && mode=http
    printf 'backend %s\n    mode %s\n%s\n    server s1 127.0.0.1:%s check inter 500ms\n' "$name" "$mode" "$body" "$port" >>"$cfg"
done
printf 'frontend dummy\n    bind 127.0.0.1:%s\n    default_backend redis\n' "$(free_port)" >>"$cfg"
sleep 0.3
timeout 5 haproxy -db -f "$cfg" >"$work/hap.log" 2>&1 & hp=$!; pids+=($hp)
sleep 3
kill "$hp" 2>/dev/null || true; wait "$hp" 2>/dev/null || true
for c in "${cases[@]}"; do
    name=${c%%|*}
    [ -s "$work/$name.bin" ] || continue
    [ -n "${done_[$name]:-}" ] && continue
    done_[$name]=1
    ndone=$((ndone + 1))
    xxd -p "$work/$name.bin" | tr -d '\n' >"$here/requests/$name.hex"
    echo >>"$here/requests/$name.hex"
    printf '%-24s %s\n' "$name" "$(head -c 160 "$work/$name.bin" | tr -c '[:print:]' '.')"
done
}
for _ in 1 2 3; do
    [ "$ndone" -eq "${#cases[@]}" ] && break
    capture_round
done
for c in "${cases[@]}"; do
    name=${c%%|*}
    [ -n "${done_[$name]:-}" ] || echo "NOT CAPTURED: $name (kept the previous file)" >&2
done
