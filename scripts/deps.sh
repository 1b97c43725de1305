#!/usr/bin/env bash
# Installs the Debian 12 packages ringraft needs that are not installed yet.
# Uses sudo when not root. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config binutils git
  clang clang-format            # fuzz targets (libFuzzer), format check
  liburing-dev                  # io/, net/: io_uring
  libjemalloc-dev               # engine/node: allocation
  libck-dev                     # engine/node: lock-free rings
  libisal-dev                   # common/: CRC32C
  libcmocka-dev                 # tests
  libbenchmark-dev              # bench/: Google Benchmark
  libmicrohttpd-dev             # examples/kv: HTTP server
  libcurl4-openssl-dev          # examples/kv: rrkv-load's HTTP client
  curl iproute2 wrk             # examples/kv: black-box tests (curl, ss), HTTP benchmark
  systemtap-sdt-dev             # USDT probes (sys/sdt.h)
  libraft-dev libuv1-dev        # bench/peers: canonical raft, measured beside ringraft
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
