#!/usr/bin/env bash
# procs_test.sh RRBENCH: the multi-process crash test. Three rrbench --procs node processes
# under load; the leader is SIGKILLed 2 s into the window and restarted over its log 1 s
# later; --verify then checks that every node applied every acknowledged entry (from every
# incarnation) exactly once, in one order. Then the checker's teeth: an acknowledgement the
# nodes never applied must make --verify-only fail.
set -euo pipefail
rrbench=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/rrbench-procs.XXXXXX")
trap 'rm -rf "$work"' EXIT

out=$("$rrbench" --procs --verify --kill-leader-at 2 --restart-after 1 --duration 5 \
      --warmup 1 --clients 8 --window 16 --dir "$work/run" 2>&1) || {
  echo "$out"
  echo "procs_test: FAIL: rrbench --procs --verify failed" >&2
  exit 1
}
echo "$out"
grep -q "SIGKILL to node" <<<"$out" || { echo "procs_test: FAIL: no kill happened" >&2; exit 1; }
grep -q "restarting node" <<<"$out" || { echo "procs_test: FAIL: no restart" >&2; exit 1; }
grep -q "verify: every node applied all" <<<"$out" || { echo "procs_test: FAIL: not verified" >&2; exit 1; }

# Teeth: claim one more acknowledgement than was ever applied.
printf '\x01\x00\x00\x00\x00\x00\xfe\x01' >>"$work/run/node-1/acked-0"
if "$rrbench" --procs --verify-only --dir "$work/run" >"$work/teeth.log" 2>&1; then
  cat "$work/teeth.log"
  echo "procs_test: FAIL: --verify-only passed a log that lacks an acknowledged entry" >&2
  exit 1
fi
grep -q "lacks acknowledged" "$work/teeth.log" || { cat "$work/teeth.log"; exit 1; }
echo "procs_test: ok"
