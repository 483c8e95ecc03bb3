#!/bin/bash
# usage: part_latency.sh PROFILE   (PROFILE = name in bench/profiles/ or a path to a .env file)
# LL-HLS part latency (servers that list EXT-X-PART; see README.md "5. part latency").
# Prints one "RESULT server=... test=part ..." line on stdout as its last line; progress on stderr.
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ $# -ge 1 ] || { echo "usage: $0 PROFILE" >&2; exit 2; }
load_profile "$1"
need_source
exec python3 "$BENCH_DIR/hlsbench.py" part
