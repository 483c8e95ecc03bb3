#!/usr/bin/env bash
# play_test.sh URL SECONDS [play.js options...]
#
# CTest wrapper around play.js: hls.js in headless Debian Chromium plays URL for SECONDS and
# the test passes only if currentTime advanced for the whole window without a stall (plus
# whatever extra play.js options ask for, e.g. --low-latency --max-latency 2).
#
# Optional environment, so that one add_test() can bring its own server and publisher:
#   PLAY_TEST_SERVER_CMD     command run in the background first (killed at the end), e.g.
#                            "$<TARGET_FILE:aethex-edge> --rtmp-listen 127.0.0.1:{rtmp_port} ..."
#   PLAY_TEST_PUBLISH_URL    rtmp:// URL: ffmpeg publishes a synthetic stream as OBS would
#                            (libx264 640x360@30, 2 s GOP, B-frames, AAC 48 kHz) until the end
#   PLAY_TEST_PUBLISH_INPUT  a media file to publish instead (looped, -re, stream copy)
#   PLAY_TEST_READY_TIMEOUT  seconds to wait for URL to answer 200 (default 20)
#   PLAY_TEST_JSON           also write play.js's JSON line to this file
# In URL, PLAY_TEST_SERVER_CMD and PLAY_TEST_PUBLISH_URL, "{http_port}" and "{rtmp_port}" are
# replaced by free loopback ports picked here, so tests can run under ctest -j.
#
# Exit status: play.js's (0 pass, 1 played badly); 1 also when chromium or the npm packages
# are missing (the project always installs them: scripts/install-deps.sh), 2 on usage errors.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ $# -ge 2 ] || { echo "usage: $0 URL SECONDS [play.js options...]" >&2; exit 2; }
URL="$1"; SECS="$2"; shift 2

fail() { echo "play_test: FAIL: $*" >&2; exit 1; }
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium missing (run scripts/install-deps.sh)"
command -v node > /dev/null || fail "node missing (run scripts/install-deps.sh)"
[ -d "$here/node_modules/hls.js" ] && [ -d "$here/node_modules/playwright-core" ] ||
    fail "tests/browser/node_modules missing (run scripts/install-deps.sh, or npm ci in tests/browser)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); RTMP_PORT=$(free_port)
subst() { local s="${1//\{http_port\}/$HTTP_PORT}"; printf '%s' "${s//\{rtmp_port\}/$RTMP_PORT}"; }
URL="$(subst "$URL")"
SERVER_CMD="$(subst "${PLAY_TEST_SERVER_CMD:-}")"
PUBLISH_URL="$(subst "${PLAY_TEST_PUBLISH_URL:-}")"

W="$(mktemp -d /tmp/aethex-play-test-XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
    for p in "${pids[@]}"; do   # bounded wait, then SIGKILL
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2> /dev/null || break; sleep 0.2; done
        kill -9 "$p" 2> /dev/null
    done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

if [ -n "$SERVER_CMD" ]; then
    bash -c "exec $SERVER_CMD" > "$W/server.log" 2>&1 &
    pids+=($!)
    echo "play_test: server: $SERVER_CMD (pid $!)" >&2
fi
if [ -n "$PUBLISH_URL" ]; then
    # the RTMP port must listen before ffmpeg tries (it does not retry); checked with ss, not
    # by connecting (a server may accept exactly one client, and it should be the publisher)
    rport="$(python3 -c 'import sys,urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port or 1935)' "$PUBLISH_URL")"
    end=$((SECONDS + 10))
    until [ -n "$(ss -Hltn "sport = :$rport" 2> /dev/null)" ]; do
        [ $SECONDS -lt $end ] || { cat "$W/server.log" >&2 2> /dev/null; fail "RTMP port $rport never accepted"; }
        sleep 0.1
    done
    if [ -n "${PLAY_TEST_PUBLISH_INPUT:-}" ]; then
        ffmpeg -hide_banner -nostdin -loglevel error -re -stream_loop -1 -i "$PLAY_TEST_PUBLISH_INPUT" \
            -c copy -f flv "$PUBLISH_URL" > "$W/publisher.log" 2>&1 &
    else
        ffmpeg -hide_banner -nostdin -loglevel error -re \
            -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
            -c:v libx264 -preset veryfast -pix_fmt yuv420p -g 60 -keyint_min 60 -sc_threshold 0 -bf 2 \
            -b:v 800k -c:a aac -b:a 96k -ar 48000 -f flv "$PUBLISH_URL" > "$W/publisher.log" 2>&1 &
    fi
    pids+=($!)
    echo "play_test: publishing to $PUBLISH_URL (pid $!)" >&2
fi

# wait until the playlist answers 200 (bounded)
end=$((SECONDS + ${PLAY_TEST_READY_TIMEOUT:-20}))
until [ "$(curl -s --noproxy '*' -m 2 -o /dev/null -w '%{http_code}' "$URL")" = 200 ]; do
    if [ $SECONDS -ge $end ]; then
        echo "--- server log" >&2; tail -20 "$W/server.log" >&2 2> /dev/null
        echo "--- publisher log" >&2; tail -20 "$W/publisher.log" >&2 2> /dev/null
        fail "$URL did not answer 200 within ${PLAY_TEST_READY_TIMEOUT:-20} s"
    fi
    sleep 0.2
done

node "$here/play.js" --url "$URL" --seconds "$SECS" "$@" > "$W/result.json"
rc=$?
cat "$W/result.json"
[ -n "${PLAY_TEST_JSON:-}" ] && cp "$W/result.json" "$PLAY_TEST_JSON"
if [ $rc -ne 0 ]; then
    echo "--- server log (tail)" >&2; tail -20 "$W/server.log" >&2 2> /dev/null
    echo "--- publisher log (tail)" >&2; tail -20 "$W/publisher.log" >&2 2> /dev/null
    [ $rc -eq 2 ] && rc=1   # the browser could not start: a failure, not a usage error
fi
exit $rc
