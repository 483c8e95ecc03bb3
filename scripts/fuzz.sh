#!/usr/bin/env bash
# Runs every libFuzzer target (or those named) for a fixed time each, starting from its
# committed corpus, and prints one summary line per target (execs, corpus size, findings).
# Usage: scripts/fuzz.sh [-t SECONDS] [-j PARALLEL] [target ...]   (targets: fuzz_amf0 ...)
# New corpus entries go to build-fuzz/fuzz-work/<target>/ (not committed automatically);
# crashes are written there as crash-* and make the script exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=300
par=1
while getopts "t:j:" o; do
  case "$o" in
    t) secs="$OPTARG" ;;
    j) par="$OPTARG" ;;
    *) echo "usage: $0 [-t SECONDS] [-j PARALLEL] [target ...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAETHEX_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang >/dev/null
if [ $# -eq 0 ]; then
  # Every fuzz target the build defines (one per parser).
  mapfile -t names < <(cmake --build build-fuzz --target help | grep -oE 'fuzz_[a-z0-9_]+' | sort -u)
else
  names=("$@")
fi
cmake --build build-fuzz -j "$(nproc)" --target "${names[@]}" >/dev/null
targets=()
for t in "${names[@]}"; do targets+=("$(find build-fuzz -type f -name "$t" -perm -u+x | head -1)"); done

run_one() {
  local bin="$1" name corpus work log
  name="$(basename "$bin")"
  # The corpus lives beside the fuzzer's source: <module>/fuzz/corpus/<name without fuzz_>.
  corpus="$(find . -path ./build\* -prune -o -type d -path "*/fuzz/corpus/${name#fuzz_}" -print | head -1)"
  work="build-fuzz/fuzz-work/$name"
  mkdir -p "$work/corpus"
  log="$work/run.log"
  local dict=()
  local d; d="$(dirname "$corpus")/../${name#fuzz_}.dict"
  [ -f "$d" ] && dict=(-dict="$d")
  (cd "$work" && "$OLDPWD/$bin" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
     "${dict[@]/#-dict=/-dict=$OLDPWD/}" corpus "$OLDPWD/$corpus") >"$log" 2>&1 || true
  local execs cov crashes
  execs="$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')"
  cov="$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1 | grep -oE 'cov: [0-9]+' || true)"
  crashes="$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-' || true)"
  printf '%-24s seconds=%s execs=%s %s corpus_out=%s findings=%s\n' "$name" "$secs" "${execs:-?}" \
    "${cov:-cov: ?}" "$(ls "$work/corpus" | wc -l)" "$crashes"
}
export -f run_one
export secs
printf '%s\n' "${targets[@]}" | xargs -P "$par" -I{} bash -c 'run_one "$@"' _ {} | tee build-fuzz/fuzz-summary.txt
! grep -q 'findings=[1-9]' build-fuzz/fuzz-summary.txt
