#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing, checks
# formatting, builds and tests under ASan+UBSan, then builds and tests the release build,
# then runs the threaded tests (rings, runtime, transport) under ThreadSanitizer.
# Ends with CTest's summary. With CI=true, warnings are errors.
#
#   ./scripts/test.sh              everything
#   ./scripts/test.sh release      only the given presets (release, debug, asan, tsan)
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh
if [ "${CI:-}" = true ]; then
  export RR_WERROR=ON
fi
jobs=$(nproc 2>/dev/null || echo 2)

presets=("$@")
if [ ${#presets[@]} -eq 0 ]; then
  ./scripts/check-format.sh
  presets=(asan release)
fi

for preset in "${presets[@]}"; do
  echo "== $preset: configure, build, test"
  cmake --preset "$preset" >"build-$preset.log" 2>&1 || { cat "build-$preset.log"; exit 1; }
  rm -f "build-$preset.log"
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j "$jobs"
done

if [ $# -eq 0 ]; then
  # The whole suite under TSan adds little to the threaded tests but minutes of build.
  echo "== tsan: the threaded tests"
  cmake --preset tsan >build-tsan.log 2>&1 || { cat build-tsan.log; exit 1; }
  rm -f build-tsan.log
  cmake --build --preset tsan -j "$jobs" --target test_node test_ring test_transport test_wal test_disk_wal
  ctest --preset tsan -j "$jobs" -R '^unit_(node|ring|transport|wal|disk_wal)$'
fi
