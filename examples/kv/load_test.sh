#!/usr/bin/env bash
# load_test.sh BIN_DIR SCENARIO: runs rrkv-load for 2 s against rrkv-fake on loopback and
# judges the recorded history with rrkv-check. Scenarios and the verdict each must get:
#   good      one correct server                           -> linearizable (0)
#   redirect  a correct leader and a follower that 307s     -> linearizable, redirects > 0
#   flaky     lost replies and 503s (timeouts are "maybe")  -> linearizable (0)
#   stale     reads from a lagging copy                     -> NOT linearizable (1)
# Ports are picked by the kernel (port 0); every process is bounded in time.
set -euo pipefail
bin=$1
scenario=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/rrkv-load-test.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# start_fake NAME ARGS...: starts a fake, waits for its port file, sets $port.
start_fake() {
    local name=$1
    shift
    "$bin/rrkv-fake" --port-file "$work/$name.port" --lifetime-s 30 "$@" &
    pids+=($!)
    for _ in $(seq 100); do
        [ -f "$work/$name.port" ] && break
        sleep 0.05
    done
    [ -f "$work/$name.port" ] || { echo "load_test: $name did not start" >&2; exit 1; }
    port=$(cat "$work/$name.port")
}

expect=0
case $scenario in
good | flaky | stale)
    mode=$scenario
    start_fake server --mode "$mode"
    endpoints=http://127.0.0.1:$port
    [ "$scenario" = stale ] && expect=1
    ;;
redirect)
    start_fake leader --mode good
    leader=http://127.0.0.1:$port
    start_fake follower --leader "$leader"
    endpoints=http://127.0.0.1:$port,$leader
    ;;
*)
    echo "load_test: unknown scenario $scenario" >&2
    exit 2
    ;;
esac

timeout 30 "$bin/rrkv-load" --endpoints "$endpoints" --clients 8 --keys 8 --duration 2 \
    --put-ratio 0.5 --timeout-ms 500 --history "$work/history.jsonl" --json >"$work/load.json"
cat "$work/load.json"
ops=$(wc -l <"$work/history.jsonl")
echo "load_test: $ops operations recorded"
[ "$ops" -gt 100 ] || { echo "load_test: too few operations" >&2; exit 1; }
if [ "$scenario" = redirect ]; then
    grep -q '"redirects":[1-9]' "$work/load.json" || { echo "load_test: no redirect followed" >&2; exit 1; }
fi
if [ "$scenario" = flaky ]; then
    grep -q '"timeout"' "$work/history.jsonl" || { echo "load_test: no timeout recorded" >&2; exit 1; }
fi

set +e
timeout 60 "$bin/rrkv-check" "$work/history.jsonl" >"$work/check.txt"
rc=$?
set -e
head -c 4000 "$work/check.txt"
if [ "$rc" -ne "$expect" ]; then
    echo "load_test: rrkv-check exited $rc, expected $expect" >&2
    cp "$work/history.jsonl" "${TMPDIR:-/tmp}/rrkv-load-test-$scenario.jsonl" 2>/dev/null &&
        echo "load_test: history kept in ${TMPDIR:-/tmp}/rrkv-load-test-$scenario.jsonl" >&2
    exit 1
fi
echo "load_test: $scenario: rrkv-check exit $rc as expected"
