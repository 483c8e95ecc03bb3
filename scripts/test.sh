#!/usr/bin/env bash
# The README's test command: installs what is needed, builds the default and the
# ASan+UBSan trees (and the libFuzzer targets, so they keep compiling), runs ctest in both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh default
bash scripts/build.sh asan
bash scripts/build.sh fuzz
jobs="${AETHEX_TEST_JOBS:-2}"
status=0
echo "== ctest: default build"
(cd build && ctest --output-on-failure -j "$jobs") || status=1
echo "== ctest: ASan+UBSan build"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
   UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   ctest --output-on-failure -j "$jobs") || status=1
exit $status
