#!/usr/bin/env bash
# net_veth.sh: runs the net/ micro-benchmarks (bench/micro/bench_net.c) over a veth pair
# instead of loopback: node 1 stays in this network namespace on 10.77.0.1, node 2 lives
# in namespace rrbench-net on 10.77.0.2. Needs root (ip netns, ip link). Loopback never
# pays for zero-copy (the kernel copies); a veth pair is the nearest thing to a device on
# one machine, and the frames' zc_copied_pct column shows whether the kernel copied there
# too.
#
#   bench/net_veth.sh [BUILD_DIR] [-- extra rr-bench-micro arguments]
#
# BUILD_DIR defaults to build/release. The pair is removed on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
[[ $# -gt 0 ]] && shift
[[ ${1:-} == -- ]] && shift
micro=$build/bench/rr-bench-micro
[[ -x $micro ]] || { echo "net_veth.sh: $micro not built (cmake --build --preset release)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "net_veth.sh: needs root for ip netns / ip link" >&2; exit 2; }

ns=rrbench-net
here=10.77.0.1
there=10.77.0.2

cleanup() {
    ip link del rrb-veth0 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add "$ns"
ip link add rrb-veth0 type veth peer name rrb-veth1
ip link set rrb-veth1 netns "$ns"
ip addr add "$here/24" dev rrb-veth0
ip link set rrb-veth0 up
ip -n "$ns" addr add "$there/24" dev rrb-veth1
ip -n "$ns" link set rrb-veth1 up
ip -n "$ns" link set lo up

echo "net_veth.sh: rrb-veth0 $here <-> rrb-veth1 $there (netns $ns), $(ethtool -k rrb-veth0 2>/dev/null |
    grep -E '^(scatter-gather|tx-checksumming):' | tr -s ' \n' ' ')"
RR_BENCH_NET_NETNS=$ns RR_BENCH_NET_ADDRS=$here,$there \
    "$micro" --benchmark_filter='^net_' "$@"
