#!/usr/bin/env bash
# cluster.sh start|stop|status|restart N|kill N: a local 3-node rrkv cluster on loopback, laid
# out like raftexample's Procfile: node i's raft address is 127.0.0.1:<i>2379 and its HTTP
# port <i>2380 (12379/12380, 22379/22380, 32379/32380).
#
#   examples/kv/cluster.sh start     # then: curl -L -XPUT http://127.0.0.1:12380/k -d v
#   examples/kv/cluster.sh status    # pid, leader, HTTP answer of each node
#   examples/kv/cluster.sh stop      # SIGTERM, then SIGKILL after 5 s
#
# Environment:
#   RRKV_BIN         the rrkv binary (default: the first of build/{release,h-rrkv,debug}/...)
#   RRKV_CLUSTER_DIR where data, pids and logs go (default ./rrkv-cluster): node i keeps
#                    its WAL in $DIR/data-i, its pid in $DIR/pid-i, its log in $DIR/log-i
#   RRKV_RAFT_PORTS  three raft ports (default "12379 22379 32379"); HTTP = raft port + 1
#   RRKV_ARGS        extra rrkv flags for every node (e.g. "--tick-ms 20 --verbose")
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${RRKV_CLUSTER_DIR:-./rrkv-cluster}
read -r -a ports <<<"${RRKV_RAFT_PORTS:-12379 22379 32379}"
[ "${#ports[@]}" -eq 3 ] || { echo "cluster.sh: RRKV_RAFT_PORTS needs three ports" >&2; exit 2; }
read -r -a extra <<<"${RRKV_ARGS:-}"

find_bin() {
    if [ -n "${RRKV_BIN:-}" ]; then echo "$RRKV_BIN"; return; fi
    for b in release h-rrkv debug; do
        if [ -x "$root/build/$b/examples/kv/rrkv" ]; then
            echo "$root/build/$b/examples/kv/rrkv"
            return
        fi
    done
    echo "cluster.sh: rrkv not built (cmake --preset release && cmake --build --preset release)," \
        "or set RRKV_BIN" >&2
    exit 2
}

cluster_urls() {
    local urls=""
    for p in "${ports[@]}"; do urls+="${urls:+,}http://127.0.0.1:$p"; done
    echo "$urls"
}

running() { # running PID: exists and is not a zombie waiting for its reaper
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

alive() { # alive N: the recorded pid of node N runs
    [ -f "$dir/pid-$1" ] && running "$(cat "$dir/pid-$1")"
}

start_node() {
    local i=$1 bin
    bin=$(find_bin)
    if alive "$i"; then
        echo "node $i already running (pid $(cat "$dir/pid-$i"))"
        return
    fi
    local raft=${ports[$((i - 1))]}
    # nohup: the node outlives this shell's terminal; stop/kill use the pid file. (Not
    # setsid: it may fork, and $! would then be a pid that exits at once.)
    nohup "$bin" --id "$i" --cluster "$(cluster_urls)" --port $((raft + 1)) \
        --data-dir "$dir/data-$i" "${extra[@]}" >>"$dir/log-$i" 2>&1 </dev/null &
    echo $! >"$dir/pid-$i"
    echo "node $i: pid $!, raft 127.0.0.1:$raft, http://127.0.0.1:$((raft + 1)), log $dir/log-$i"
}

stop_node() { # stop_node N SIGNAL
    local i=$1 sig=$2
    alive "$i" || { rm -f "$dir/pid-$i"; return 0; }
    local pid
    pid=$(cat "$dir/pid-$i")
    kill "-$sig" "$pid"
    for _ in $(seq 100); do
        running "$pid" || break
        sleep 0.05
    done
    if running "$pid"; then
        echo "node $i (pid $pid) ignored SIG$sig for 5 s: SIGKILL" >&2
        kill -KILL "$pid"
    fi
    rm -f "$dir/pid-$i"
    echo "node $i stopped (SIG$sig)"
}

status() {
    local rc=0
    for i in 1 2 3; do
        local http=$((ports[i - 1] + 1)) state answer
        if alive "$i"; then state="pid $(cat "$dir/pid-$i")"; else state="not running"; rc=1; fi
        # A PUT-free probe: a serializable read of a key nobody writes (404 = serving).
        answer=$(curl -s -o /dev/null -m 1 -w "%{http_code}" \
            "http://127.0.0.1:$http/.status-probe?serializable=true" || true)
        local role
        role=$(curl -s -o /dev/null -m 1 -w "%{http_code} %{redirect_url}" \
            "http://127.0.0.1:$http/.status-probe" || true)
        case $role in
        404*) role="leader" ;;
        307*)
            role=${role#307 }
            role="follower of ${role%/.status-probe}"
            ;;
        503*) role="no leader" ;;
        410*) role="removed" ;;
        *) role="unreachable" ;;
        esac
        echo "node $i: $state, http://127.0.0.1:$http answers $answer, $role"
    done
    return $rc
}

cmd=${1:-}
case $cmd in
start)
    mkdir -p "$dir"
    for i in 1 2 3; do start_node "$i"; done
    ;;
stop)
    for i in 1 2 3; do stop_node "$i" TERM; done
    ;;
status)
    status
    ;;
kill) # kill N: SIGKILL one node (a crash)
    stop_node "${2:?node}" KILL
    ;;
restart) # restart N: start one node again over its data
    mkdir -p "$dir"
    stop_node "${2:?node}" TERM
    start_node "$2"
    ;;
*)
    echo "usage: cluster.sh start|stop|status|kill N|restart N" >&2
    exit 2
    ;;
esac
