#!/usr/bin/env bash
# rrkv_test.sh BIN_DIR SCENARIO: black-box tests of rrkv. Each starts a real 3-node cluster
# (cluster.sh, on 127.0.0.1, free ports, 20 ms ticks) and drives it over HTTP with curl and
# rrkv-load:
#   basic       no quorum = quick 503; put, get, overwrite, missing key, serializable reads,
#               307 from followers; bad requests (4xx, nothing changes, nobody crashes)
#   membership  POST adds a 4th node that then serves; DELETE removes one, which answers 410;
#               DELETE of a stranger is 404, POST of a member 409
#   restart     data written (past several snapshots) survives a node's restart and a
#               whole-cluster restart; a restarted node catches up
#   history     rrkv-load records a history while the leader is SIGKILLed and restarted;
#               rrkv-check must find it linearizable
# Every wait is bounded; the cluster is stopped (SIGKILL if need be) on exit.
set -euo pipefail
bin=$(cd "$1" && pwd)
scenario=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/rrkv-test.XXXXXX")
export RRKV_BIN=$bin/rrkv RRKV_CLUSTER_DIR=$work/cluster
# 500 ms election timeout: 200 ms lost leaders under ASan with other tests on the 2 cores.
export RRKV_ARGS="--tick-ms 20 --election-ticks 25 --request-timeout-ms 2000 --threads 2"
extra_pids=()

fail() {
    echo "rrkv_test($scenario): FAIL: $*" >&2
    for f in "$work"/cluster/log-* "$work"/log-*; do
        [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

cleanup() {
    for i in 1 2 3; do
        [ -f "$work/cluster/pid-$i" ] && kill -KILL "$(cat "$work/cluster/pid-$i")" 2>/dev/null
    done
    for pid in "${extra_pids[@]}"; do
        { kill -KILL "$pid" && wait "$pid"; } 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Four raft ports p with p and p + 1 (HTTP) free on loopback, spread by the pid, below the
# kernel's ephemeral range (an outgoing connection's port must not take one before it is
# bound).
busy=$(ss -Htan | awk '{print $4}' | sed 's/.*://' | sort -u)
read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range
span=$((eph_lo - 10000 - 200))
[ "$span" -gt 1000 ] || { echo "rrkv_test: ephemeral ports start at $eph_lo: skipped"; exit 77; }
ports=()
p=$((10000 + ($$ * 37) % span))
while [ "${#ports[@]}" -lt 4 ]; do
    if ! grep -qx "$p" <<<"$busy" && ! grep -qx "$((p + 1))" <<<"$busy"; then ports+=("$p"); fi
    p=$((p + 10))
done
export RRKV_RAFT_PORTS="${ports[0]} ${ports[1]} ${ports[2]}"
http() { echo "http://127.0.0.1:$((ports[$1 - 1] + 1))"; }
cluster() { "$here/cluster.sh" "$@" >/dev/null; }

# req METHOD URL [BODY]: prints "CODE BODY" (body of one line, no -L).
req() {
    local args=(-s -m 5 -X "$1" -w '\n%{http_code}')
    [ $# -ge 3 ] && args+=(--data-binary "$3")
    local out
    out=$(curl "${args[@]}" "$2") || true
    echo "$(tail -n1 <<<"$out") $(head -n -1 <<<"$out" | head -c 200)"
}
# expect WANT METHOD URL [BODY]: the answer must start with WANT ("200 v", "404", ...).
expect() {
    local want=$1
    shift
    local got
    got=$(req "$@")
    [[ "$got" == "$want"* ]] || fail "$* -> '$got', wanted '$want'"
}

# leader: prints the id of the node whose linearizable GET is not redirected (bounded).
leader() {
    for _ in $(seq 200); do
        for i in "$@"; do
            local code
            code=$(curl -s -o /dev/null -m 1 -w "%{http_code}" "$(http "$i")/.probe" || true)
            if [ "$code" = 404 ]; then echo "$i"; return; fi
        done
        sleep 0.05
    done
    fail "no leader among nodes $* within 10 s"
}

# settled NODES...: until every node knows the leader (404 or 307 on a probe, bounded).
settled() {
    for i in "$@"; do
        for _ in $(seq 200); do
            case $(curl -s -o /dev/null -m 1 -w "%{http_code}" "$(http "$i")/.probe" || true) in
            404 | 307) break ;;
            esac
            sleep 0.05
        done
    done
}

put_via_leader() { # put_via_leader KEY VALUE NODES...
    local k=$1 v=$2
    shift 2
    local l
    l=$(leader "$@")
    expect 204 PUT "$(http "$l")/$k" "$v"
}

# wait_local NODE KEY VALUE: until a serializable read on NODE gives VALUE (bounded).
wait_local() {
    for _ in $(seq 200); do
        [ "$(req GET "$(http "$1")/$2?serializable=true")" = "200 $3" ] && return
        sleep 0.05
    done
    fail "node $1 never showed $2=$3 (last: $(req GET "$(http "$1")/$2?serializable=true"))"
}

start_node4() {
    local urls="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]}"
    urls+=",http://127.0.0.1:${ports[2]},http://127.0.0.1:${ports[3]}"
    # shellcheck disable=SC2086
    "$bin/rrkv" --id 4 --cluster "$urls" --port $((ports[3] + 1)) --join \
        --data-dir "$work/data-4" $RRKV_ARGS >"$work/log-4" 2>&1 &
    extra_pids+=($!)
}

case $scenario in
basic)
    mkdir -p "$work/cluster"
    # One node of three: no quorum, no leader: a quick 503, not a hang.
    cluster restart 1 # (starts node 1 alone)
    for _ in $(seq 200); do # up (a fresh WAL takes a moment to create)
        [ "$(curl -s -o /dev/null -m 1 -w "%{http_code}" "$(http 1)/.probe")" != 000 ] && break
        sleep 0.05
    done
    t0=$(date +%s%N)
    expect 503 PUT "$(http 1)/a" x
    expect 503 GET "$(http 1)/a"
    [ $((($(date +%s%N) - t0) / 1000000)) -lt 1500 ] || fail "503 took over 1.5 s"
    cluster restart 2
    cluster restart 3
    settled 1 2 3
    l=$(leader 1 2 3)
    f=$(((l % 3) + 1))
    expect 404 GET "$(http "$l")/a"
    expect 204 PUT "$(http "$l")/a" hello
    expect "200 hello" GET "$(http "$l")/a"
    expect 204 PUT "$(http "$l")/a" world # overwrite
    expect "200 world" GET "$(http "$l")/a"
    expect 204 PUT "$(http "$l")/empty" ""
    expect 200 GET "$(http "$l")/empty"
    # A follower redirects to the leader (path kept); curl -L follows.
    got=$(curl -s -o /dev/null -w "%{http_code} %{redirect_url}" "$(http "$f")/a")
    [ "$got" = "307 $(http "$l")/a" ] || fail "follower answered '$got'"
    [ "$(curl -sL -m 5 "$(http "$f")/a")" = world ] || fail "GET -L through a follower"
    [ "$(curl -sL -m 5 -XPUT "$(http "$f")/b" -d viaf -w '%{http_code}')" = 204 ] ||
        fail "PUT -L through a follower"
    expect "200 viaf" GET "$(http "$l")/b"
    wait_local "$f" a world # serializable: local, eventually there
    # Bad input: 4xx with a one-line body, and nothing changes.
    expect 400 GET "$(http "$l")/"
    expect 405 PATCH "$(http "$l")/a" x
    expect 405 OPTIONS "$(http "$l")/a"
    expect 414 GET "$(http "$l")/$(head -c 1025 /dev/zero | tr '\0' k)"
    expect 414 PUT "$(http "$l")/$(head -c 1025 /dev/zero | tr '\0' k)" v
    head -c $((1024 * 1024 + 1)) /dev/zero | tr '\0' v >"$work/big"
    code=$(curl -s -o /dev/null -m 5 -w "%{http_code}" -XPUT --data-binary @"$work/big" \
        "$(http "$l")/a")
    [ "$code" = 413 ] || fail "oversized value: $code"
    head -c $((1024 * 1024)) /dev/zero | tr '\0' v >"$work/max"
    code=$(curl -s -o /dev/null -m 5 -w "%{http_code}" -XPUT --data-binary @"$work/max" \
        "$(http "$l")/max")
    [ "$code" = 204 ] || fail "a 1 MiB value: $code"
    [ "$(curl -s -m 5 "$(http "$l")/max" | wc -c)" = $((1024 * 1024)) ] || fail "1 MiB read back"
    expect 400 POST "$(http "$l")/abc" http://127.0.0.1:1
    expect 400 POST "$(http "$l")/9" "not a url"
    expect 400 DELETE "$(http "$l")/0"
    # Garbage on the socket: the server answers 400 or closes, and lives.
    printf 'GARBAGE\r\n\r\n' | timeout 2 bash -c "cat >/dev/tcp/127.0.0.1/$((ports[l - 1] + 1))" ||
        true
    printf 'PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\nshort' |
        timeout 2 bash -c "cat >/dev/tcp/127.0.0.1/$((ports[l - 1] + 1))" || true
    l=$(leader 1 2 3) # the same node unless leadership moved meanwhile (legal)
    expect "200 world" GET "$(http "$l")/a"
    "$here/cluster.sh" status >/dev/null || fail "a node died"
    ;;
membership)
    # Small snapshots, a short log behind them: node 4 joins after the log was compacted,
    # so it must catch up from a snapshot taken after its addition.
    export RRKV_ARGS="$RRKV_ARGS --snapshot-every 100 --snapshot-keep 20"
    cluster start
    l=$(leader 1 2 3)
    put_via_leader m1 v1 1 2 3
    load() {
        "$bin/rrkv-load" --endpoints "$(http 1),$(http 2),$(http 3)" --clients 4 --keys 20 \
            --duration "$1" --put-ratio 1 --timeout-ms 2000 >/dev/null
    }
    load 0.5
    # Changes that would change nothing are refused, and commit nothing.
    expect "404 no such member" DELETE "$(http "$l")/9"
    expect "409 already a member" POST "$(http "$l")/2" "http://127.0.0.1:1"
    expect 204 POST "$(http "$l")/4" "http://127.0.0.1:${ports[3]}"
    start_node4
    load 0.5
    wait_local 4 m1 v1
    # Node 4 takes writes (through the leader) and reads linearizably.
    [ "$(curl -sL -m 5 -XPUT "$(http 4)/k2" -d v2 -w '%{http_code}')" = 204 ] ||
        fail "PUT through node 4"
    [ "$(curl -sL -m 5 "$(http 4)/k2")" = v2 ] || fail "GET through node 4"
    # Remove a follower that is not node 4: it stops serving (410), the rest go on.
    l=$(leader 1 2 3 4)
    victim=$(((l % 3) + 1))
    expect 204 DELETE "$(http "$l")/$victim"
    for _ in $(seq 100); do
        [[ "$(req GET "$(http "$victim")/k1")" == 410* ]] && break
        sleep 0.05
    done
    expect 410 GET "$(http "$victim")/k1"
    expect 410 PUT "$(http "$victim")/k1" x
    put_via_leader k3 v3 1 2 3 4
    expect "200 v3" GET "$(http "$(leader 1 2 3 4)")/k3"
    # Removing the leader: it hands over and redirects; retried there, it commits.
    l=$(leader 1 2 3 4)
    for _ in $(seq 20); do # the hand-over may bounce a redirect or two, or 503 once
        code=$(curl -s -o /dev/null -m 5 -w "%{http_code}" -XDELETE -L "$(http "$l")/$l")
        [ "$code" = 204 ] && break
        sleep 0.1
    done
    [ "$code" = 204 ] || fail "removing the leader: $code"
    n=$(leader 1 2 3 4)
    [ "$n" != "$l" ] || fail "the removed leader still leads"
    put_via_leader k4 v4 1 2 3 4
    ;;
restart)
    export RRKV_ARGS="$RRKV_ARGS --snapshot-every 200"
    cluster start
    l=$(leader 1 2 3)
    "$bin/rrkv-load" --endpoints "$(http 1),$(http 2),$(http 3)" --clients 4 --keys 50 \
        --duration 1.5 --put-ratio 1 --timeout-ms 2000 >/dev/null
    put_via_leader marker before 1 2 3
    f=$(((l % 3) + 1))
    wait_local "$f" marker before
    cluster kill "$f"
    put_via_leader marker during 1 2 3
    cluster restart "$f"
    wait_local "$f" marker during # caught up
    grep -q "snapshots [1-9]" "$work/cluster/log-$f" 2>/dev/null ||
        true # (logged only with --verbose)
    # Whole cluster down and up: everything is still there.
    cluster stop
    cluster start
    l=$(leader 1 2 3)
    expect "200 during" GET "$(http "$l")/marker"
    for i in 1 2 3; do wait_local "$i" marker during; done
    ;;
history)
    cluster start
    l=$(leader 1 2 3)
    "$bin/rrkv-load" --endpoints "$(http 1),$(http 2),$(http 3)" --clients 8 --keys 10 \
        --duration 5 --put-ratio 0.5 --timeout-ms 1000 --history "$work/h.jsonl" \
        >"$work/load.out" 2>&1 &
    load=$!
    sleep 1.5
    cluster kill "$l"
    sleep 1.5
    cluster restart "$l"
    wait "$load" || fail "rrkv-load failed: $(cat "$work/load.out")"
    cat "$work/load.out"
    "$bin/rrkv-check" "$work/h.jsonl" || fail "history not linearizable (kept: see above)"
    ok=$(grep -c '"status":"ok"' "$work/h.jsonl")
    [ "$ok" -gt 100 ] || fail "only $ok operations succeeded"
    ;;
*)
    echo "rrkv_test: unknown scenario $scenario" >&2
    exit 2
    ;;
esac
# A clean stop, then no sanitizer report in any node's log (ASan/UBSan/TSan builds).
cluster stop
for pid in "${extra_pids[@]}"; do
    { kill -TERM "$pid" && wait "$pid"; } 2>/dev/null || true
done
extra_pids=()
if grep -l "Sanitizer\|runtime error:" "$work"/cluster/log-* "$work"/log-* 2>/dev/null; then
    fail "a sanitizer reported (logs above)"
fi
echo "rrkv_test($scenario): ok"
