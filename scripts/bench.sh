#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing, builds the
# release preset and runs the benchmark. Arguments go to the benchmark.
#
# Until the end-to-end cluster benchmark (rrbench, issue 8) exists, this runs the
# micro-benchmarks through the Google Benchmark shim; the command stays the same.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
cmake --preset release >build-release.log 2>&1 || { cat build-release.log; exit 1; }
rm -f build-release.log
cmake --build --preset release -j "$(nproc 2>/dev/null || echo 2)"

if [ -x build/release/bench/rrbench ]; then
  exec build/release/bench/rrbench "$@"
fi
echo "rrbench (the 3-node cluster benchmark) is not built yet; micro-benchmarks available:"
build/release/bench/rr-bench-micro --benchmark_list_tests
echo
exec build/release/bench/rr-bench-micro --benchmark_min_time=0.2 "$@"
