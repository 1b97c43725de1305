#!/usr/bin/env bash
# ab.sh: two builds of rrbench, alternating run by run, on the same workload — how a change
# is measured on a machine whose disk is shared (BENCHMARKS.md: "read the pairs").
#
#   bench/ab.sh OLD_RRBENCH NEW_RRBENCH ROUNDS [rrbench options...]
#
# e.g. build the old commit in a worktree, then
#   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cmake --preset release &&
#     cmake --build build/release --target rrbench)
#   bench/ab.sh /tmp/old/build/release/bench/rrbench build/release/bench/rrbench 5 \
#     --clients 1 --window 1 --duration 4 --warmup 1
#
# Prints one line per run: throughput, commit latency p50/p99, the leader's follower-ack and
# disk stage p50s, syncs/s, entries per disk append and CPU cores. Needs python3 (parses
# --json). Data directories go to a temporary directory, removed at exit.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
old=$1 new=$2 rounds=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
    for side in old new; do
        bin=$old
        [ "$side" = new ] && bin=$new
        rm -rf "$tmp/data"
        if ! "$bin" "$@" --dir "$tmp/data" --json >"$tmp/out.json" 2>"$tmp/err.txt"; then
            echo "$side r$r failed: $(tail -1 "$tmp/err.txt")"
            continue
        fi
        python3 - "$side" "$r" "$tmp/out.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[3]))
lat, st = d["latency_ns"], d["stage_p50_ns"]
print(f"{sys.argv[1]} r{sys.argv[2]} entries/s={d['entries_per_s']:.0f} "
      f"p50={lat['p50'] / 1e6:.3f} p99={lat['p99'] / 1e6:.3f} ack={st.get('ack', 0) / 1e6:.3f} "
      f"disk={st.get('disk', 0) / 1e6:.3f} syncs/s={d['leader_syncs_per_s']:.0f} "
      f"batch={d['disk_batch_mean']:.1f} cpu={d['cpu_cores']}")
PY
    done
done
