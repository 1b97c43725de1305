#!/bin/sh
# check_install.sh BUILD_DIR SOURCE_DIR CC: installs BUILD_DIR into a temporary prefix, then
# builds and runs tests/install/embed.c against it with nothing but
# `pkg-config --cflags --libs ringraft` — what a database embedding ringraft does.
set -eu
build=$1 src=$2 cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name ringraft.pc)
[ -n "$pc" ] || { echo "check_install: no ringraft.pc installed" >&2; exit 1; }
PKG_CONFIG_PATH=$(dirname "$pc")
export PKG_CONFIG_PATH
# shellcheck disable=SC2046 # pkg-config's output is meant to split into arguments
"$cc" -std=c11 -Wall -Wextra -Werror $(pkg-config --cflags ringraft) -o "$tmp/embed" \
  "$src/tests/install/embed.c" $(pkg-config --libs ringraft)
LD_LIBRARY_PATH=$(pkg-config --variable=libdir ringraft) "$tmp/embed"
