#!/usr/bin/env bash
# selfcheck_nginx.sh - proves play.js against a server that already exists: nginx-rtmp
# (Debian nginx + libnginx-mod-rtmp, as in bench/anchors/) fed by ffmpeg. Not a ctest: it
# needs the anchors (bench/anchors/setup_anchors.sh) and takes ~2 minutes.
#
# Checks, each of which must come out as stated or the script exits 1:
#   1. a live stream plays for 20 s without a stall           -> play.js exit 0
#   2. the publisher dies in the middle of the window          -> play.js exit 1 (stall seen)
#   3. a URL that does not exist                               -> play.js exit 1 (fatal error)
#   4. a 2-level master playlist (nginx hls_variant) with --switch-levels: hls.js is forced
#      up and down and reaches both levels                     -> play.js exit 0
#   5. the single-level stream with --switch-levels            -> play.js exit 1 (needs >= 2 levels)
#   6. play_test.sh (the CTest wrapper) starts this nginx and an OBS-like ffmpeg itself -> exit 0
#   7. play_test.sh + llhls_ref.py (LL-HLS parts, blocking reloads) with --low-latency
#      --max-latency 3                                          -> exit 0
# Everything on 127.0.0.1 with free ports; all state in a temp dir that is removed at exit.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
SECONDS_WIN="${SELFCHECK_SECONDS:-20}"
SRC_HI="${BENCH_SRC:-/tmp/bench/src720.flv}"
SRC_LO="$(dirname "$SRC_HI")/src360.flv"

die() { echo "selfcheck: $*" >&2; exit 2; }
[ -x /usr/sbin/nginx ] || die "nginx missing: run bench/anchors/setup_anchors.sh"
[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || die "libnginx-mod-rtmp missing: run bench/anchors/setup_anchors.sh"
command -v ffmpeg > /dev/null || die "ffmpeg missing"
[ -f "$SRC_HI" ] || "$here/../../bench/make_source.sh" || die "make_source.sh failed"
if [ ! -f "$SRC_LO" ]; then   # a second rendition for the level-switch check (made once, ~5 s)
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=640x360:rate=30 \
        -f lavfi -i sine=frequency=660 -c:v libx264 -preset veryfast -g 60 -keyint_min 60 \
        -sc_threshold 0 -b:v 700k -c:a aac -b:a 96k -t 60 "$SRC_LO" || die "could not make $SRC_LO"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# write_conf DIR RTMP_PORT HTTP_PORT: the anchor config (bench/anchors/nginx-rtmp.conf) with the
# given ports, a private prefix DIR, CORS for the player page's origin, and two hls_variant
# suffixes for the master-playlist check.
write_conf() {
    local W="$1"
    mkdir -p "$W/hls" "$W/logs" "$W/tmp"
    # nginx workers run as nobody when started by root: they must reach and write the HLS dir
    chmod 755 "$W"; chmod 1777 "$W/hls"
    cat > "$W/nginx.conf" << EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
worker_processes 1;
pid $W/logs/nginx.pid;
error_log $W/logs/error.log warn;
events { worker_connections 256; }
rtmp {
    server {
        listen 127.0.0.1:$2;
        chunk_size 4096;
        application live {
            live on;
            record off;
            hls on;
            hls_path $W/hls;
            hls_fragment 2s;
            hls_playlist_length 6s;
            hls_variant _lo BANDWIDTH=900000,RESOLUTION=640x360;
            hls_variant _hi BANDWIDTH=2800000,RESOLUTION=1280x720;
        }
    }
}
http {
    access_log off;
    client_body_temp_path $W/tmp/body;
    proxy_temp_path $W/tmp/proxy;
    fastcgi_temp_path $W/tmp/fastcgi;
    uwsgi_temp_path $W/tmp/uwsgi;
    scgi_temp_path $W/tmp/scgi;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    server {
        listen 127.0.0.1:$3;
        location /hls/ {
            alias $W/hls/;
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }
    }
}
EOF
}

# --serve DIR RTMP_PORT HTTP_PORT: run that nginx in the foreground (check 6 hands this to
# play_test.sh as PLAY_TEST_SERVER_CMD)
if [ "${1:-}" = "--serve" ]; then
    [ $# -eq 4 ] || die "usage: $0 --serve DIR RTMP_PORT HTTP_PORT"
    write_conf "$2" "$3" "$4"
    exec /usr/sbin/nginx -p "$2/" -e "$2/logs/error.log" -c "$2/nginx.conf"
fi

RTMP_PORT=$(free_port); HTTP_PORT=$(free_port)
W="$(mktemp -d /tmp/aethex-selfcheck-XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
    [ -f "$W/logs/nginx.pid" ] && kill "$(cat "$W/logs/nginx.pid")" 2> /dev/null
    sleep 0.5
    rm -rf "$W"
}
trap cleanup EXIT; [ -n "${SELFCHECK_KEEP:-}" ] && trap - EXIT
write_conf "$W" "$RTMP_PORT" "$HTTP_PORT"
/usr/sbin/nginx -p "$W/" -e "$W/logs/error.log" -c "$W/nginx.conf" > "$W/logs/nginx.out" 2>&1 &
pids+=($!)

wait_port() {   # wait_port PORT SECONDS
    local end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        (echo > "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
        sleep 0.1
    done
    return 1
}
wait_port "$RTMP_PORT" 10 && wait_port "$HTTP_PORT" 10 || die "nginx did not start: $(cat "$W/logs/error.log")"

publish() {   # publish SRC KEY  -> pid in $PUB
    ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$1" -c copy -f flv \
        "rtmp://127.0.0.1:$RTMP_PORT/live/$2" > "$W/logs/pub-$2.log" 2>&1 &
    PUB=$!
    pids+=($PUB)
}
wait_playlist() {   # wait_playlist URL SECONDS: until it lists >= 2 segments
    local end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        [ "$(curl -s --noproxy '*' -m 2 "$1" | grep -c '^#EXTINF')" -ge 2 ] 2> /dev/null && return 0
        sleep 0.2
    done
    return 1
}

fails=0
check() {   # check NAME EXPECTED_RC RC JSONFILE
    local verdict=PASS
    [ "$3" -eq "$2" ] || { verdict=FAIL; fails=$((fails + 1)); }
    echo "== $1: expected exit $2, got $3 -> $verdict"
    python3 - "$4" << 'PY'
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except Exception as e:
    print('   (no JSON line: %s)' % e); sys.exit(0)
keys = ['ok', 'startup_s', 'played_s', 'currentTime_start', 'currentTime_end', 'stalls', 'stall_log', 'seeks', 'latency_s',
        'latency', 'levels', 'level_switches', 'level_switch_log', 'levels_requested',
        'dropped_frames', 'video', 'failures']
for k in keys:
    if k in r:
        print('   %-18s %s' % (k, json.dumps(r[k])))
for e in r.get('errors', [])[:4]:
    print('   error: %s' % e)
PY
}

BASE="http://127.0.0.1:$HTTP_PORT/hls"
echo "nginx-rtmp on rtmp :$RTMP_PORT, http :$HTTP_PORT; chromium $(/usr/bin/chromium --version 2> /dev/null)"

# 1. plays
publish "$SRC_HI" single
wait_playlist "$BASE/single.m3u8" 20 || die "nginx never listed 2 segments for single"
node "$here/play.js" --url "$BASE/single.m3u8" --seconds "$SECONDS_WIN" \
    --screenshot "${SELFCHECK_SCREENSHOT:-/tmp/aethex-selfcheck.png}" > "$W/r1.json"
check "1 live stream plays $SECONDS_WIN s without a stall" 0 $? "$W/r1.json"

# 5. single level + --switch-levels must fail (same stream, still live)
node "$here/play.js" --url "$BASE/single.m3u8" --seconds 6 --switch-levels > "$W/r5.json"
check "5 --switch-levels on a single-level stream fails" 1 $? "$W/r5.json"

# 2. publisher dies during the window: must be reported as a stall
node "$here/play.js" --url "$BASE/single.m3u8" --seconds "$SECONDS_WIN" > "$W/r2.json" &
player=$!
sleep 10
kill "$PUB"
wait "$player"
check "2 publisher killed mid-window is caught" 1 $? "$W/r2.json"

# 3. missing stream
node "$here/play.js" --url "$BASE/nosuchstream.m3u8" --seconds 5 --startup-timeout 10 > "$W/r3.json"
check "3 a missing stream fails" 1 $? "$W/r3.json"

# 4. two levels (one ffmpeg, two outputs, so both renditions start together) + forced switches
ffmpeg -hide_banner -nostdin -loglevel error \
    -re -stream_loop -1 -i "$SRC_HI" -re -stream_loop -1 -i "$SRC_LO" \
    -map 0 -c copy -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/abr_hi" \
    -map 1 -c copy -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/abr_lo" > "$W/logs/pub-abr.log" 2>&1 &
pids+=($!)
wait_playlist "$BASE/abr_lo.m3u8" 20 && wait_playlist "$BASE/abr_hi.m3u8" 20 || die "abr variants never listed"
node "$here/play.js" --url "$BASE/abr.m3u8" --seconds "$SECONDS_WIN" --switch-levels > "$W/r4.json"
check "4 master playlist, forced level switches up and down" 0 $? "$W/r4.json"

# 6. the CTest wrapper brings its own server (this nginx on free ports) and OBS-like publisher
PLAY_TEST_SERVER_CMD="$here/selfcheck_nginx.sh --serve $W/pt {rtmp_port} {http_port}" \
PLAY_TEST_PUBLISH_URL="rtmp://127.0.0.1:{rtmp_port}/live/pt" \
    "$here/play_test.sh" "http://127.0.0.1:{http_port}/hls/pt.m3u8" "$SECONDS_WIN" > "$W/r6.json"
check "6 play_test.sh with its own server and publisher" 0 $? "$W/r6.json"

# 7. LL-HLS: the reference server (bench/anchors/llhls_ref.py) with hls.js lowLatencyMode
PLAY_TEST_SERVER_CMD="python3 $here/../../bench/anchors/llhls_ref.py --rtmp-port {rtmp_port} --http-port {http_port}" \
PLAY_TEST_PUBLISH_URL="rtmp://127.0.0.1:{rtmp_port}/live/ll" \
    "$here/play_test.sh" "http://127.0.0.1:{http_port}/live/ll/index.m3u8" "$SECONDS_WIN" \
    --low-latency --max-latency 3 > "$W/r7.json"
check "7 LL-HLS (llhls_ref) plays in lowLatencyMode, median latency <= 3 s" 0 $? "$W/r7.json"

echo "selfcheck: $fails check(s) failed"
[ "$fails" -eq 0 ]
