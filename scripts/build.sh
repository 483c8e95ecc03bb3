#!/usr/bin/env bash
# Configures and builds one build tree. Usage: scripts/build.sh [default|asan|fuzz]
#   default -> build/       (-O2 -g -Wall -Wextra -Werror)
#   asan    -> build-asan/  (ASan + UBSan)
#   fuzz    -> build-fuzz/  (clang, libFuzzer targets)
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-default}"
jobs="$(nproc)"
case "$kind" in
  default) dir=build; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
  asan)    dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAETHEX_SANITIZE=ON) ;;
  fuzz)    dir=build-fuzz; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DAETHEX_FUZZ=ON -DCMAKE_C_COMPILER=clang) ;;
  *) echo "usage: $0 [default|asan|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
