#!/usr/bin/env bash
# compare.sh: ringraft (rrbench) against canonical raft (raftbench-canonical) on the same
# workloads, same machine, same disk. Runs alternate A B A B ... for --rounds rounds, so slow
# drift of the machine (other jobs, disk state) hits both sides alike; the table shows medians
# over the rounds and ratios ringraft / canonical.
#
# Workloads (both sides: 3 nodes, TCP on 127.0.0.1, durable writes):
#   128B-w256      128 B entries, 4 clients x 64 outstanding (256 in flight), one entry per call
#   128B-batch64   canonical: 1 x 4 outstanding raft_apply calls of 64 entries (256 entries in
#                  flight); ringraft has no batch call, so its column repeats 128B-w256's runs
#   4KiB-w256      4096 B entries, 4 clients x 64 outstanding
#   latency-w1     128 B entries, 1 client, window 1 (one proposal in flight)
#   128B-best      each at its best: ringraft's defaults (64 clients x 128 outstanding) against
#                  canonical's 128B-w256 runs (about its best on this machine)
#   4KiB-best      the same with 4096 B entries (canonical: its 4KiB-w256 runs)
#
#   bench/peers/compare.sh [--rounds 3] [--duration 10] [--warmup 3] [--only NAME,...]
#                          [--rrbench PATH] [--canonical PATH] [--keep-json DIR]
#                          [--rr-args "ARGS"]
#
# --rr-args adds options to every rrbench run, e.g. "--procs" (one process per node, as
# canonical runs) or "--wal-sync syscall".
#
# Run it while nobody else is benchmarking, e.g. `nice -n 10 bench/peers/compare.sh`.
# Needs python3 (parses the --json lines). Data directories live in one temporary directory,
# removed at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
rounds=3
duration=10
warmup=3
only=""
keep_json=""
rr_extra=""
rrbench="$root/build/release/bench/rrbench"
canonical="$root/build/release/bench/peers/raftbench-canonical"

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --rrbench) rrbench=$2; shift 2 ;;
    --canonical) canonical=$2; shift 2 ;;
    --keep-json) keep_json=$2; shift 2 ;;
    --rr-args) rr_extra=$2; shift 2 ;;
    -h | --help) usage ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
for bin in "$rrbench" "$canonical"; do
    if [ ! -x "$bin" ]; then
        echo "compare.sh: $bin is missing: build it first (cmake --build --preset release)" >&2
        exit 1
    fi
done
command -v python3 >/dev/null || { echo "compare.sh: python3 is required" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rr-compare.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# name | rrbench arguments | raftbench-canonical arguments ("=NAME" in a column: reuse that
# side's runs of workload NAME). Canonical gets a 5 s election timeout: with libraft's 1 s
# default its leader lost leadership under the 4 KiB load here (the run then fails).
can_common="--election-timeout-ms 5000"
workloads=(
    "128B-w256|--size 128 --clients 4 --window 64|--size 128 --clients 4 --window 64"
    "128B-batch64|=128B-w256|--size 128 --clients 1 --window 4 --batch 64"
    "128B-best|--size 128|=128B-w256"
    "4KiB-w256|--size 4096 --clients 4 --window 64|--size 4096 --clients 4 --window 64"
    "4KiB-best|--size 4096|=4KiB-w256"
    "latency-w1|--size 128 --clients 1 --window 1|--size 128 --clients 1 --window 1"
)

selected() {
    [ -z "$only" ] && return 0
    case ",$only," in *",$1,"*) return 0 ;; esac
    return 1
}

results="$tmp/results.jsonl" # one line per run: {"workload","impl","round","ok","json"}
: >"$results"
run=0

# run_one <workload> <impl> <round> <binary> <args...>
run_one() {
    local name=$1 impl=$2 round=$3 bin=$4
    shift 4
    run=$((run + 1))
    local dir="$tmp/data-$run" out="$tmp/out-$run.json" rc=0
    echo "compare.sh: round $round/$rounds $name $impl: $(basename "$bin") $*" >&2
    "$bin" "$@" --duration "$duration" --warmup "$warmup" --dir "$dir" --json >"$out" || rc=$?
    rm -rf "$dir"
    python3 - "$name" "$impl" "$round" "$rc" "$out" >>"$results" <<'EOF'
import json, sys
name, impl, rnd, rc, path = sys.argv[1:]
line = ""
for l in open(path):
    if l.startswith("{"):
        line = l
ok = rc == "0" and line != ""
print(json.dumps({"workload": name, "impl": impl, "round": int(rnd), "ok": ok,
                  "json": json.loads(line) if line else None}))
EOF
    [ "$rc" = 0 ] || echo "compare.sh: $name $impl failed (exit $rc)" >&2
}

for round in $(seq 1 "$rounds"); do
    for w in "${workloads[@]}"; do
        IFS='|' read -r name rr_args can_args <<<"$w"
        selected "$name" || continue
        # shellcheck disable=SC2086 # the argument columns are word lists
        case "$rr_args" in
        =*) ;;
        *) run_one "$name" ringraft "$round" "$rrbench" $rr_args $rr_extra ;;
        esac
        # shellcheck disable=SC2086
        case "$can_args" in
        =*) ;;
        *) run_one "$name" canonical "$round" "$canonical" $can_args $can_common ;;
        esac
    done
done

[ -z "$keep_json" ] || { mkdir -p "$keep_json" && cp "$results" "$keep_json/"; }

python3 - "$results" "$rounds" "$duration" <<'EOF'
import json, statistics, sys
path, rounds, duration = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(l) for l in open(path)]
order = ["128B-best", "128B-w256", "128B-batch64", "4KiB-best", "4KiB-w256", "latency-w1"]
alias = {"ringraft": {"128B-batch64": "128B-w256"},  # these columns reuse other runs
         "canonical": {"128B-best": "128B-w256", "4KiB-best": "4KiB-w256"}}

def samples(workload, impl):
    w = alias[impl].get(workload, workload)
    return [r["json"] for r in runs if r["workload"] == w and r["impl"] == impl and r["ok"]]

def med(js, f):
    return statistics.median(f(j) for j in js) if js else None

metrics = [
    ("entries/s", lambda j: j["entries_per_s"], 1, "{:.0f}"),
    ("MB/s", lambda j: j["mb_per_s"], 1, "{:.2f}"),
    ("p50 ms", lambda j: j["latency_ns"]["p50"], 1e6, "{:.3f}"),
    ("p99 ms", lambda j: j["latency_ns"]["p99"], 1e6, "{:.3f}"),
    ("p99.9 ms", lambda j: j["latency_ns"]["p999"], 1e6, "{:.3f}"),
]
print(f"\nringraft vs canonical raft: medians over {rounds} round(s) of {duration} s; "
      "ratio = ringraft / canonical (throughput: >1 ringraft faster; latency: <1 ringraft faster)")
hdr = f"{'workload':<14} {'metric':<10} {'ringraft':>12} {'canonical':>12} {'ratio':>8}  runs(rr/can)"
print(hdr)
print("-" * len(hdr))
seen = {r["workload"] for r in runs}
seen |= {w for a in alias.values() for w, to in a.items() if to in seen}
for w in order:
    if w not in seen:
        continue
    rr, can = samples(w, "ringraft"), samples(w, "canonical")
    for label, f, scale, fmt in metrics:
        a, b = med(rr, f), med(can, f)
        sa = fmt.format(a / scale) if a is not None else "-"
        sb = fmt.format(b / scale) if b is not None else "-"
        ratio = f"{a / b:.2f}" if a is not None and b else "-"
        print(f"{w:<14} {label:<10} {sa:>12} {sb:>12} {ratio:>8}  {len(rr)}/{len(can)}")
failed = [r for r in runs if not r["ok"]]
if failed:
    print(f"\n{len(failed)} run(s) failed: " +
          ", ".join(f"{r['workload']}/{r['impl']}/round {r['round']}" for r in failed))
EOF
