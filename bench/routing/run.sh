#!/bin/bash
# bench/routing: routing decisions per second on one coordinator (the HTTP 302 path), with wrk,
# side by side with two anchors served by the same process in the same run:
#   404   GET /nothing               the HTTP floor: h2o + our handler, no routing
#   302   GET /live/alice/index.m3u8 the watch redirect: CIDR lookup + routing decision
#   json  GET /api/v1/route?...      the same decision as JSON (jansson)
# Setup: a single-node coordinator (embedded dqlite), 21 edges in 3 regions (written with
# go-dqlite's shell, heartbeats kept fresh by a loop), 100 live channels, 1,000 CIDR blocks
# (+ 127.0.0.0/8 so that the caller has a region). For each target: wrk -t1 -c$CONNS -d$SECS,
# requests/s, latency, and the coordinator's CPU seconds (utime+stime from /proc) per 100,000
# requests. Prints one RESULT line per target; bench/results/routing-<time>/ keeps the raw output.
#
#   COORD_BIN_DIR=build/coordinator bench/routing/run.sh      (SECS=10 CONNS=32 ROUNDS=2)
set -u
BIN=${COORD_BIN_DIR:-build/coordinator}
SECS=${SECS:-10}
CONNS=${CONNS:-32}
ROUNDS=${ROUNDS:-2}
command -v wrk >/dev/null || { echo "wrk is not installed (bench/anchors/setup_anchors.sh)"; exit 1; }
command -v dqlite >/dev/null || { echo "go-dqlite's shell (dqlite) is not installed"; exit 1; }
T=$(mktemp -d /tmp/aethex-route-bench.XXXXXX)
OUT=${OUT:-$(dirname "$0")/../results/routing-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

ADDR=127.0.0.1:$(port)
"$BIN/aethex-coordinator" --address "$ADDR" --data-dir "$T/n1" --http 127.0.0.1:0 --log-level warn \
    >"$T/n1.log" 2>&1 &
COORD_PID=$!
PIDS+=("$COORD_PID")
for ((i = 0; i < 200; i++)); do
    "$BIN/aethexctl" --coordinator "$ADDR" --timeout-ms 500 query "SELECT version FROM schema_version WHERE version = 3" 2>/dev/null | grep -q '^3$' && break
    sleep 0.1
done
# The HTTP port: from the process's listening sockets (the log is at warn level).
HTTP=""
for ((i = 0; i < 50; i++)); do
    HTTP=$(ss -ltnp 2>/dev/null | awk -v pid="pid=$COORD_PID," 'index($0, pid) { print $4 }' | grep -v "^$ADDR$" | head -1)
    [ -n "$HTTP" ] && break
    sleep 0.1
done
[ -n "$HTTP" ] || { echo "no HTTP listener found"; cat "$T/n1.log"; exit 1; }
URL="http://$HTTP"
go() { timeout 60 dqlite -s "$ADDR" aethex "$@" >/dev/null; }

python3 - "$T/setup.sql" <<'PY'
import ipaddress, random, sys, time
random.seed(1)
now = int(time.time() * 1000)
out = []
out.append("INSERT INTO users (id, supabase_id, username, email) VALUES ('u1', 's1', 'bench', 'b@example.test')")
regions = ["eu", "us", "ap"]
edges = []
for i in range(21):
    r = regions[i % 3]
    edges.append(f"('e{i}', '{r}-{i}', '{r}', '127.0.0.1:1', 'rtmp://x/live', 'http://{r}-{i}.test:8080', "
                 f"{1000 + 100 * i}, {random.randrange(0, 900)}, {1 if i < 3 else 0}, {now})")
out.append("INSERT INTO edges (id, name, region, rpc_address, rtmp_url, hls_base_url, capacity_viewers,"
           " viewers, live_streams, last_heartbeat_at) VALUES " + ", ".join(edges))
chans, streams = [], []
for i in range(100):
    slug = "alice" if i == 0 else f"ch{i}"
    chans.append(f"('c{i}', 'u1', 'Channel {i}', '{slug}')")
    streams.append(f"('s{i}', 'c{i}', 't', 'k{i}', 'live', 'e{i % 3}', {now})")
out.append("INSERT INTO channels (id, user_id, name, slug) VALUES " + ", ".join(chans))
out.append("INSERT INTO streams (id, channel_id, title, stream_key, status, origin_edge_id, started_at) VALUES "
           + ", ".join(streams))
blocks, seen = [], set()
while len(blocks) < 1000:
    if len(blocks) % 4 == 3:
        n = ipaddress.ip_network(f"2001:db8:{random.randrange(65536):x}::/48")
    else:
        n = ipaddress.ip_network((random.getrandbits(32), random.randrange(8, 25)), strict=False)
    if n.is_loopback or str(n) in seen or n.overlaps(ipaddress.ip_network("127.0.0.0/8")):
        continue
    seen.add(str(n))
    blocks.append(n)
blocks.append(ipaddress.ip_network("127.0.0.0/8"))
rows = []
for k, n in enumerate(blocks):
    fam = 4 if n.version == 4 else 6
    r = "eu" if str(n) == "127.0.0.0/8" else regions[k % 3]
    rows.append(f"('{n}', '{r}', {fam}, {n.prefixlen}, x'{n.network_address.packed.hex()}', x'{n.broadcast_address.packed.hex()}')")
for i in range(0, len(rows), 200):
    out.append("INSERT INTO regions (cidr, region, family, prefix_len, range_start, range_end) VALUES "
               + ", ".join(rows[i:i + 200]))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
while IFS= read -r sql; do go "$sql" || { echo "setup failed: ${sql:0:120}"; exit 1; }; done <"$T/setup.sql"
( while :; do timeout 5 dqlite -s "$ADDR" aethex "UPDATE edges SET last_heartbeat_at = $(date +%s%3N)" >/dev/null 2>&1; sleep 1; done ) &
PIDS+=("$!")
# Ready when the view has the regions and the channel (regions refresh every 5 s).
for ((i = 0; i < 150; i++)); do
    curl -s "$URL/api/v1/route?channel=alice" | grep -q '"viewer_region_source":"cidr"' && break
    sleep 0.1
done
curl -s "$URL/api/v1/route?channel=alice" | grep -q '"viewer_region_source":"cidr"' || { echo "routing not ready"; exit 1; }
echo "setup: 21 edges, 100 live channels, $(curl -s "$URL/metrics" | awk '/^aethex_coordinator_route_region_blocks/ {print $2}') CIDR blocks; coordinator pid $COORD_PID http $URL" >&2

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$COORD_PID/stat"; }
HZ=$(getconf CLK_TCK)
run() { # NAME PATH
    local name=$1 path=$2 c0 c1 out rps reqs lat
    c0=$(cpu_ticks)
    out=$(wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$URL$path")
    c1=$(cpu_ticks)
    echo "$out" >"$OUT/wrk-$name-r$r.txt"
    rps=$(echo "$out" | awk '/^Requests\/sec/ { print $2 }')
    reqs=$(echo "$out" | awk '/requests in/ { print $1 }')
    lat=$(echo "$out" | awk '$1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } END { print p50, p99 }')
    local cpu_s per100k non2xx
    cpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    per100k=$(awk -v c="$cpu_s" -v n="$reqs" 'BEGIN { printf "%.3f", n ? c / n * 100000 : 0 }')
    non2xx=$(echo "$out" | awk '/Non-2xx or 3xx/ { print $5 }')
    echo "RESULT target=$name round=$r rps=$rps requests=$reqs latency_p50=${lat% *} latency_p99=${lat#* } coord_cpu_s=$cpu_s coord_cpu_s_per_100k=$per100k cpu_util=$(awk -v c="$cpu_s" -v s="$SECS" 'BEGIN { printf "%.2f", c / s }') bad_status=${non2xx:-0}"
}
echo "load before: $(cut -d" " -f1-3 /proc/loadavg)" | tee "$OUT/load.txt" >&2
for ((r = 1; r <= ROUNDS; r++)); do
    run floor404 /nothing
    run redirect302 /live/alice/index.m3u8
    run route_json '/api/v1/route?channel=alice'
done | tee "$OUT/summary.txt"
curl -s "$URL/metrics" | grep '^aethex_coordinator_route_' >"$OUT/metrics.txt"
# The 302s went where they should: eu edges (127.0.0.1 is in 127.0.0.0/8 -> eu).
curl -s -o /dev/null -w '%{http_code} %{redirect_url}\n' "$URL/live/alice/index.m3u8" | tee -a "$OUT/summary.txt"
# The decision alone (CIDR lookup + pick over the same shape of data), on one core, no HTTP.
[ -x "$BIN/route_micro" ] && "$BIN/route_micro" | tee -a "$OUT/summary.txt"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"
