#!/usr/bin/env bash
# Runs the dqlite benchmark side by side in one go: our client (bench/dqlite/dqlite_bench.c)
# and go-dqlite's own tool (/usr/bin/dqlite-benchmark, Debian go-dqlite), on 1 and 3 nodes on
# 127.0.0.1, same workload (table model, 32-byte keys, 1 KiB values). Prints a Markdown table.
# Usage: bench/dqlite/run.sh [SECONDS per workload] [BUILD_DIR] [DATA_ROOT]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-5}"
build="${2:-build}"
root="${3:-/tmp}"
cmake --build "$build" --target dqlite_bench >/dev/null
bin="$build/coordinator/dqlite_bench"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Parses dqlite-benchmark result files: ops, ops/s, p50, p99 per kind of work.
report_go() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import glob, math, os, sys
resdir, nodes, workload, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
for kind, label in (("exec", "write-1 (autocommit)"), ("query", "read-1 (point SELECT)")):
    ms = []
    for f in glob.glob(os.path.join(resdir, "*-%s-*" % kind)):
        lines = open(f).read().splitlines()
        start = lines.index("measurements [timestamp in ns] [ms]") + 1
        for line in lines[start:]:
            if not line.strip() or line.startswith("errors"):
                break
            ms.append(float(line.split()[1]))
    if not ms:
        continue
    ms.sort()
    pct = lambda p: ms[max(0, math.ceil(p / 100 * len(ms)) - 1)]
    name = label if workload == "kvwrite" else label + " in kvreadwrite 50/50"
    print("| go-dqlite dqlite-benchmark | %s | %s | %d | %.0f | %.0f | %.2f | %.2f |"
          % (nodes, name, len(ms), len(ms) / secs, len(ms) / secs, pct(50), pct(99)))
PY
}

run_go() {
  local nodes="$1" workload="$2" dir p1 p2 p3 pids=()
  dir="$(mktemp -d "$root/go-dqlite-bench-XXXXXX")"
  p1="$(free_port)"
  if [ "$nodes" = 1 ]; then
    dqlite-benchmark -d "127.0.0.1:$p1" --driver --cluster "127.0.0.1:$p1" \
      --duration "$secs" -D "$dir" -w "$workload" >/dev/null 2>&1
  else
    p2="$(free_port)"; p3="$(free_port)"
    dqlite-benchmark -d "127.0.0.1:$p2" --join "127.0.0.1:$p1" -D "$dir" >/dev/null 2>&1 & pids+=($!)
    dqlite-benchmark -d "127.0.0.1:$p3" --join "127.0.0.1:$p1" -D "$dir" >/dev/null 2>&1 & pids+=($!)
    timeout $((secs + 120)) dqlite-benchmark -d "127.0.0.1:$p1" --driver \
      --cluster "127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3" \
      --duration "$secs" -D "$dir" -w "$workload" >/dev/null 2>&1 || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  fi
  report_go "$dir/127.0.0.1:$p1/results" "$nodes" "$workload" "$secs"
  rm -rf "$dir"
}

echo "| client | nodes | workload | ops | ops/s | rows/s | p50 ms | p99 ms |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for nodes in 1 3; do
  "$bin" "$nodes" "$secs" "$root" 2>/dev/null | grep '^|'
  if [ "$nodes" = 3 ]; then
    "$bin" "$nodes" "$secs" "$root" nodelay 2>/dev/null | grep '^|'
  fi
  run_go "$nodes" kvwrite
  run_go "$nodes" kvreadwrite
done
