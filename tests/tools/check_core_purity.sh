#!/bin/sh
# Fails when the core's object files reference any symbol outside the allowlist: the core
# may use memory and string functions, the allocator, abort and assert's helper — nothing
# that does I/O, reads a clock, starts a thread or draws randomness.
# Usage: check_core_purity.sh OBJECT...
set -eu
[ $# -gt 0 ] || { echo "check_core_purity: no object files given" >&2; exit 2; }
allow='^(memcpy|memmove|memset|memcmp|memchr|strlen|strnlen|strcmp|strncmp|malloc|calloc|realloc|free|abort|__assert_fail|__stack_chk_fail|_GLOBAL_OFFSET_TABLE_|__(a|ub|t)san_.*|__sanitizer_.*)$'
# Symbols defined by the core itself are internal references, not dependencies.
defined=$(nm --defined-only "$@" 2>/dev/null | awk 'NF == 3 {print $3}' | sort -u)
status=0
for obj in "$@"; do
  for sym in $(nm -u "$obj" | awk '{print $2}' | sed 's/@.*//'); do
    if echo "$defined" | grep -qxF "$sym"; then
      continue
    fi
    if ! echo "$sym" | grep -Eq "$allow"; then
      echo "core purity: $(basename "$obj") references '$sym' (not allowed in engine/core)"
      status=1
    fi
  done
done
[ $status -eq 0 ] && echo "core purity: $# object files reference only allowed symbols"
exit $status
