#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing, builds the
# release preset and runs the 3-node replicated benchmark (rrbench): three ringraft nodes
# on this machine, each with its own write-ahead log under build/rrbench-data (fdatasync
# on), talking TCP on loopback; it prints throughput and commit latency.
#
#   ./scripts/bench.sh                      the default run
#   ./scripts/bench.sh --size 4096 --duration 20 --json     (any rrbench option)
#   ./scripts/bench.sh --micro [--benchmark_filter=...]     the micro-benchmarks instead
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
cmake --preset release >build-release.log 2>&1 || { cat build-release.log; exit 1; }
rm -f build-release.log
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"

if [ "${1:-}" = --micro ]; then
  shift
  exec build/release/bench/rr-bench-micro "$@"
fi
data=build/rrbench-data
rm -rf "$data"
status=0
build/release/bench/rrbench --dir "$data" "$@" || status=$?
rm -rf "$data"
exit $status
