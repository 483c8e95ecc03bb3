#!/usr/bin/env bash
# Runs AeThex Live on this machine: installs the Debian packages, builds, and starts the
# embedded default on loopback: one coordinator (a single-node dqlite cluster, data in
# var/coordinator) and one edge in coordinator mode (publishers authorised by the coordinator).
# Creates a "demo" channel and its stream key once (var/demo.key). Prints the OBS settings and
# the watch URL (the coordinator redirects viewers to the edge).
#
#   scripts/run.sh [--demo] [--rtmp-port N] [--http-port N] [--no-build]
#
#   --demo         also start a demo publisher (ffmpeg test source) on the "demo" channel
#   --rtmp-port N  RTMP port (default 1935)
#   --http-port N  HTTP port (default 8080)
#   --no-build     skip install-deps and build (use what build/ has)
#
# Ctrl-C stops everything cleanly (the edge tells publishers the stream is over).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

demo=0
rtmp_port=1935
http_port=8080
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) demo=1 ;;
    --rtmp-port) rtmp_port="$2"; shift ;;
    --http-port) http_port="$2"; shift ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$build" = 1 ]; then
  bash scripts/install-deps.sh
  bash scripts/build.sh default
fi
edge_bin="${AETHEX_EDGE_BIN:-$root/build/edge/aethex-edge}"  # override: tests, other trees
coord_bin="${AETHEX_COORD_BIN:-$root/build/coordinator/aethex-coordinator}"
ctl_bin="$(dirname "$coord_bin")/aethexctl"
for b in "$edge_bin" "$coord_bin" "$ctl_bin"; do
  if [ ! -x "$b" ]; then
    echo "run.sh: $b is missing (did the build fail?)" >&2
    exit 1
  fi
done
coord_port="${AETHEX_COORD_PORT:-9001}"
coord_addr="127.0.0.1:$coord_port"
coord_rpc="127.0.0.1:$((coord_port + 1))"   # RPC port = dqlite port + 1 on every node
coord_http="127.0.0.1:${AETHEX_COORD_HTTP_PORT:-9080}"

# var/ holds the local state: the coordinator's data, the cluster secret edges and
# coordinators share, and the demo channel's stream key (created once, kept across runs so OBS
# stays configured; the coordinator stores only its SHA-256).
mkdir -p var
chmod 700 var
umask 077
if [ ! -s var/cluster-secret ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/cluster-secret
fi

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup INT TERM EXIT

# The coordinator first: node 1 of a new single-node cluster (or the one var/ already holds).
"$coord_bin" --address "$coord_addr" --data-dir var/coordinator --http "$coord_http" \
  --rpc-listen "$coord_rpc" --cluster-secret-file var/cluster-secret \
  2> >(tee -a var/coordinator.log >&2) &
coord_pid=$!
pids+=("$coord_pid")
coord_ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$coord_pid" 2>/dev/null; then
    echo "run.sh: aethex-coordinator did not start (see above)" >&2
    exit 1
  fi
  if "$ctl_bin" --coordinator "$coord_addr" query \
       "SELECT max(version) FROM schema_version" >/dev/null 2>&1; then
    coord_ready=1
    break
  fi
  sleep 0.2
done
if [ "$coord_ready" != 1 ]; then
  echo "run.sh: the coordinator at $coord_addr did not become ready in 30 s" >&2
  exit 1
fi

if [ ! -s var/demo.key ]; then
  "$ctl_bin" --coordinator "$coord_addr" channels create demo --owner demo >/dev/null 2>&1 || true
  "$ctl_bin" --coordinator "$coord_addr" keys create demo run.sh > var/demo.key.new
  mv var/demo.key.new var/demo.key
fi
key="$(tr -d ' \n' < var/demo.key)"

"$edge_bin" --coordinator "$coord_rpc" --cluster-secret-file var/cluster-secret \
  --edge-id local-1 --region local --public-hls-url "http://127.0.0.1:$http_port" \
  --rtmp-listen "127.0.0.1:$rtmp_port" --http-listen "127.0.0.1:$http_port" \
  --ports-file var/edge.ports 2> >(tee -a var/edge.log >&2) &
edge_pid=$!
pids+=("$edge_pid")

for _ in $(seq 1 100); do
  [ -s var/edge.ports ] && grep -q "pid=$edge_pid" var/edge.ports && break
  if ! kill -0 "$edge_pid" 2>/dev/null; then
    echo "run.sh: aethex-edge did not start (see above)" >&2
    exit 1
  fi
  sleep 0.1
done

cat <<EOF

  AeThex Live is running on loopback: one coordinator, one edge.

  OBS  -> Settings -> Stream -> Service: Custom
          Server:      rtmp://127.0.0.1:$rtmp_port/live
          Stream Key:  $key

  Watch: http://$coord_http/live/demo/index.m3u8
         (the coordinator redirects to the best edge; any HLS player: ffplay, VLC, Safari,
         hls.js; the edge directly: http://127.0.0.1:$http_port/live/demo/index.m3u8)
  Metrics: http://127.0.0.1:$http_port/metrics (edge)  http://$coord_http/metrics (coordinator)
  Cluster: $(dirname "$ctl_bin")/aethexctl --coordinator $coord_addr cluster status

  Keys: $(dirname "$ctl_bin")/aethexctl --coordinator $coord_addr keys rotate|revoke|list demo
  Ctrl-C stops everything.

EOF

if [ "$demo" = 1 ]; then
  echo "  Demo publisher: ffmpeg test source -> channel 'demo'"
  ffmpeg -hide_banner -nostdin -loglevel warning -re \
    -f lavfi -i "testsrc2=size=1280x720:rate=30" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" \
    -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -bf 2 -pix_fmt yuv420p -b:v 2500k \
    -c:a aac -b:a 128k -ar 48000 \
    -f flv "rtmp://127.0.0.1:$rtmp_port/live/$key" &
  pids+=("$!")
fi

wait "$edge_pid"
