#!/usr/bin/env bash
# Records which server a real haproxy (2.6, nbthread 1) picks for fixed request sequences,
# one trace file per balancing configuration, into this directory. tests/traces.rs replays
# every trace through ringlb_balance::Balancer and asserts the same server sequence.
#
# Needs: haproxy, curl, socat, python3 (to find a free port), and the origin binary
# (`cargo build -p ringlb-origin`; set ORIGIN_BIN to override). Loopback only; every process
# started here is bounded by `timeout` and killed by pid on exit.
#
# `hash-type ... none` is not recorded: haproxy 2.6 rejects it (it came with 2.8).
#
# Usage: crates/balance/traces/record.sh [case-name ...]   (no argument: every case)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
origin_bin=${ORIGIN_BIN:-$repo/target/debug/ringlb-origin}
haproxy_bin=${HAPROXY_BIN:-haproxy}
work=$(mktemp -d /tmp/ringlb-traces.XXXXXX)
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

[ -x "$origin_bin" ] || (cd "$repo" && cargo build -q -p ringlb-origin)
[ -x "$origin_bin" ] || { echo "no origin binary at $origin_bin" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Five origins s1..s5, shared by all cases.
declare -A addr
for n in 1 2 3 4 5; do
    timeout 600 "$origin_bin" --listen 127.0.0.1:0 --name "s$n" 2>"$work/s$n.log" &
    pids+=($!)
done
for n in 1 2 3 4 5; do
    for _ in $(seq 100); do
        a=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/s$n.log" | head -1)
        [ -n "$a" ] && break
        sleep 0.05
    done
    [ -n "$a" ] || { echo "origin s$n did not start" >&2; exit 1; }
    addr[s$n]=$a
done

# request line: <src> <target> <X-Key value or -> <POST body or -> ; or "!<runtime command>"
# In the patterns, every %d becomes the request number.
seq_uris() { for i in $(seq "$1"); do printf '127.0.0.1\t%s\t-\t-\n' "${2//%d/$i}"; done; }
seq_src() { for i in $(seq 1 "$1"); do printf '127.0.%d.%d\t/\t-\t-\n' $((i / 200)) $((i % 200 + 1)); done; }
seq_hdr() { for i in $(seq "$1"); do printf '127.0.0.1\t/\t%s\t-\n' "${2//%d/$i}"; done; }

# Runs one case: $1 name, $2 backend body (without servers' addresses: "server sN weight W"),
# stdin: the request lines.
record() {
    local name=$1 body=$2
    local port cfg out sock
    port=$(free_port)
    cfg=$work/$name.cfg
    sock=$work/$name.sock
    out=$here/$name.txt
    {
        printf 'global\n    nbthread 1\n    stats socket %s level admin\n' "$sock"
        printf 'defaults\n    mode http\n    timeout connect 2s\n    timeout client 5s\n    timeout server 5s\n'
        printf 'frontend fe\n    bind 127.0.0.1:%s\n    default_backend be\n' "$port"
        printf '%s\n' "$body" | sed -E 's/^( *server )(s[0-9]+)( |$)/\1\2 ADDR_\2\3/' \
            | while IFS= read -r l; do
                for s in s1 s2 s3 s4 s5; do l=${l//ADDR_$s/${addr[$s]}}; done
                printf '%s\n' "$l"
            done
    } >"$cfg"
    timeout 300 "$haproxy_bin" -db -f "$cfg" >"$work/$name.hap.log" 2>&1 &
    local hp=$!
    pids+=($hp)
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.05
    done
    # The readiness probe went through the balancer: restart for a clean state.
    kill "$hp"; wait "$hp" 2>/dev/null || true
    timeout 300 "$haproxy_bin" -db -f "$cfg" >"$work/$name.hap.log" 2>&1 &
    hp=$!
    pids+=($hp)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    {
        echo "# Recorded from $("$haproxy_bin" -v | head -1 | cut -d' ' -f1-3) (nbthread 1) by record.sh."
        echo "# Lines after %%: <server>\t<source>\t<target>\t<X-Key or ->\t<POST body or ->, or !<runtime command>."
        printf '%s\n' "$body"
        if [ -n "${HOLD:-}" ]; then echo '%%held'; else echo '%%'; fi
        local n=0
        held_pids=()
        while IFS=$'\t' read -r src target key body_data; do
            if [[ $src == !* ]]; then
                echo "${src#!}" | timeout 5 socat stdio "unix-connect:$sock" >/dev/null
                printf '%s\n' "$src"
                continue
            fi
            local args=(-s -o /dev/null -D - --max-time 5 --interface "$src")
            [ "$key" != "-" ] && args+=(-H "X-Key: $key")
            [ "$body_data" != "-" ] && args+=(--data-raw "$body_data")
            local url=http://127.0.0.1:$port$target
            # An absolute-form target is sent as such in the request line.
            if [[ $target == http* ]]; then
                local authority=${target#*://}
                authority=${authority%%[/?]*}
                args+=(--request-target "$target" -H "Host: $authority")
                url=http://127.0.0.1:$port/
            fi
            if [ -n "${HOLD:-}" ]; then
                # Held: requests overlap (each lasts longer than the whole sequence), sent
                # 100 ms apart so that haproxy sees each one before the next.
                n=$((n + 1))
                printf '%s\t%s\t%s\t%s\n' "$src" "$target" "$key" "$body_data" >"$work/held.$n.req"
                curl "${args[@]}" --max-time 20 "$url" >"$work/held.$n.out" &
                held_pids+=($!)
                sleep 0.1
                continue
            fi
            local srv
            srv=$(curl "${args[@]}" "$url" | tr -d '\r' | sed -n 's/^[Xx]-[Oo]rigin: //p')
            printf '%s\t%s\t%s\t%s\t%s\n' "${srv:-none}" "$src" "$target" "$key" "$body_data"
        done
        if [ -n "${HOLD:-}" ]; then
            for p in "${held_pids[@]}"; do wait "$p" || true; done
            held_pids=()
            for i in $(seq "$n"); do
                srv=$(tr -d '\r' <"$work/held.$i.out" | sed -n 's/^[Xx]-[Oo]rigin: //p')
                printf '%s\t%s\n' "${srv:-none}" "$(cat "$work/held.$i.req")"
            done
            rm -f "$work"/held.*
        fi
    } >"$out.tmp"
    mv "$out.tmp" "$out"
    kill "$hp"; wait "$hp" 2>/dev/null || true
    echo "recorded $out"
}

want() { [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $1 "* ]]; }
selected=("$@")

servers3='    server s1 weight 3
    server s2 weight 2
    server s3 weight 1'
servers4='    server s1 weight 1
    server s2 weight 2
    server s3 weight 3
    server s4 weight 1'
servers5='    server s1
    server s2
    server s3
    server s4 weight 2
    server s5 weight 3'

case_() { want "$1" && record "$1" "$2"; true; }

case_ rr_321 "backend be
    balance roundrobin
$servers3" < <(seq_uris 60 '/r%d')

case_ rr_mixed "backend be
    balance roundrobin
    server s1 weight 5
    server s2 weight 1
    server s3 weight 3
    server s4 weight 7
    server s5 weight 0" < <(seq_uris 100 '/r%d')

case_ rr_runtime "backend be
    balance roundrobin
$servers3" < <(
    seq_uris 13 '/a%d'
    printf '!set weight be/s3 4\n'
    seq_uris 17 '/b%d'
    printf '!set server be/s1 state maint\n'
    seq_uris 11 '/c%d'
    printf '!set server be/s1 state ready\n'
    seq_uris 23 '/d%d'
    printf '!set weight be/s2 0\n'
    seq_uris 9 '/e%d'
    printf '!set weight be/s2 1\n'
    seq_uris 20 '/f%d'
)

case_ rr_backup "backend be
    balance roundrobin
    server s1 disabled
    server s2 backup weight 2
    server s3 backup" < <(seq_uris 12 '/r%d')

case_ rr_allbackups "backend be
    balance roundrobin
    option allbackups
    server s1 disabled
    server s2 backup weight 2
    server s3 backup
    server s4 backup weight 3" < <(seq_uris 30 '/r%d')

case_ static_rr "backend be
    balance static-rr
$servers3" < <(
    seq_uris 30 '/r%d'
    printf '!set server be/s2 state maint\n'
    seq_uris 10 '/m%d'
    printf '!set server be/s2 state ready\n'
    seq_uris 14 '/n%d'
)

case_ first "backend be
    balance first
    server s1 id 3 maxconn 5
    server s2 id 2 maxconn 5
    server s3 maxconn 5" < <(
    seq_uris 5 '/f%d'
    printf '!set server be/s3 state maint\n'
    seq_uris 5 '/g%d'
)

case_ leastconn "backend be
    balance leastconn
$servers3" < <(
    seq_uris 20 '/l%d'
    printf '!set server be/s1 state maint\n'
    seq_uris 7 '/m%d'
    printf '!set server be/s1 state ready\n'
    seq_uris 7 '/n%d'
)

for ht in "map-based" "consistent" "consistent sdbm avalanche" "map-based sdbm avalanche"; do
    n=source_${ht// /_}
    case_ "$n" "backend be
    balance source
    hash-type $ht
$servers4" < <(seq_src 120)
done

for m in map-based consistent; do
    for f in sdbm djb2 wt6 crc32; do
        for av in "" " avalanche"; do
            n=uri_${m}_${f}${av// /_}
            case_ "$n" "backend be
    balance uri
    hash-type $m $f$av
$servers5" < <(seq_uris 100 '/img/%d/x%d.png?v=%d')
        done
    done
done

case_ uri_opts_depth "backend be
    balance uri depth 2
    hash-type consistent
$servers4" < <(seq_uris 60 '/a%d/b/c%d?z=%d')

case_ uri_opts_len_whole "backend be
    balance uri len 7 whole
    hash-type map-based djb2
$servers4" < <(seq_uris 60 '/x?%d&y=%d%d')

case_ uri_path_only "backend be
    balance uri path-only
    hash-type consistent wt6
$servers4" < <(seq_uris 60 '/p%d/q?%d=%d')

case_ uri_absolute_form "backend be
    balance uri
    hash-type map-based
$servers4" < <(seq_uris 30 'http://h%d.example/p%d?q'; seq_uris 30 '/p%d?q')

case_ uri_path_only_absolute_form "backend be
    balance uri path-only whole
    hash-type consistent djb2
$servers4" < <(seq_uris 30 'http://h%d.example/p%d?q=%d'; seq_uris 30 '/p%d?q=%d')

# Without allbackups, the static map is built from every usable backup although the total
# weight is the first backup's alone: static-rr then alternates between backups. (Hashing
# hides it: with one "used" server HAProxy does not hash.)
case_ map_backups "backend be
    balance static-rr
    server s1 disabled
    server s2 backup weight 2
    server s3 backup weight 2
    server s4 backup weight 1" < <(seq_uris 20 '/b%d')

# The same quirk with url_param, which hashes even with a single "used" server.
case_ map_backups_url_param "backend be
    balance url_param k
    hash-type map-based
    server s1 disabled
    server s2 backup weight 2
    server s3 backup
    server s4 backup weight 3" < <(seq_uris 30 '/p?k=%d')

# Held requests: connections stay open, so connection counts decide (leastconn, first with
# maxconn, roundrobin skipping full servers, hash-balance-factor).
held() { HOLD=1 record "$@"; }
hcase() { want "$1" && held "$1" "$2"; true; }

hcase leastconn_held "backend be
    balance leastconn
    server s1
    server s2
    server s3 weight 2" < <(seq_uris 20 '/slow/4000?n=%d')

hcase first_held "backend be
    balance first
    server s1 maxconn 3
    server s2 maxconn 3 id 7
    server s3 maxconn 3 id 4" < <(seq_uris 9 '/slow/3000?n=%d')

hcase rr_maxconn_held "backend be
    balance roundrobin
    server s1 weight 3 maxconn 2
    server s2 weight 2 maxconn 3
    server s3 weight 1 maxconn 2" < <(seq_uris 7 '/slow/3000?n=%d')

hcase chash_balance_factor_held "backend be
    balance uri
    hash-type consistent
    hash-balance-factor 150
    server s1
    server s2
    server s3
    server s4" < <(seq_uris 20 '/slow/4000?n=%d')

case_ uri_consistent_runtime "backend be
    balance uri
    hash-type consistent
$servers5" < <(
    seq_uris 40 '/k%d'
    printf '!set server be/s2 state maint\n'
    seq_uris 40 '/k%d'
    printf '!set weight be/s5 1\n'
    seq_uris 40 '/k%d'
    printf '!set server be/s2 state ready\n'
    seq_uris 40 '/k%d'
)

for m in map-based consistent; do
    case_ "url_param_$m" "backend be
    balance url_param user check_post
    hash-type $m
$servers4" < <(
        seq_uris 50 '/u?x=1&user=name%d&z=%d'
        seq_uris 10 '/nouser%d'
        for i in $(seq 10); do printf '127.0.0.1\t/post\t-\tuser=body%d&x=1\n' "$i"; done
    )
    case_ "hdr_$m" "backend be
    balance hdr(X-Key)
    hash-type $m crc32
$servers4" < <(seq_hdr 60 'key-%d-%d'; seq_uris 8 '/nokey%d')
    case_ "hdr_domain_$m" "backend be
    balance hdr(X-Key) use_domain_only
    hash-type $m
$servers4" < <(seq_hdr 60 'www.site%d.example%d.com')
done

# `balance hash <expr>` (2.6): the X-Key header as the sample; no header: round robin.
for m in map-based consistent "consistent djb2"; do
    case_ "hash_expr_${m// /_}" "backend be
    balance hash req.hdr(X-Key)
    hash-type $m
$servers4" < <(seq_hdr 60 'k%d-%d'; seq_uris 8 '/nokey%d')
done
