#!/usr/bin/env bash
# media.ffmpeg_ingest: a real publisher (ffmpeg, as OBS would publish) against
# aethex-rtmp-probe, which is media_rtmp_session on a libuv socket.
#
# 1. ffmpeg encodes a ~6 s FLV (720p30 H.264 with 2 s GOP and B-frames, AAC 48 kHz).
# 2. ffmpeg -re -c copy publishes it; every video and audio frame the library yields must
#    equal what ffprobe -show_packets says about the file: count, dts, pts, size, keyframe.
# 3. ffmpeg publishes straight from its lavfi encoder (no file): frame counts, keyframes and
#    timestamps must be sane and the stream must end with on_unpublish.
#
# usage: ffmpeg_ingest.sh PATH/TO/aethex-rtmp-probe
set -euo pipefail

probe="$(readlink -f "$1")"
work="$(mktemp -d)"
probe_pid=""
cleanup() {
    if [ -n "$probe_pid" ] && kill -0 "$probe_pid" 2>/dev/null; then kill "$probe_pid"; fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

fail() {
    echo "FAIL: $*" >&2
    for f in probe*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }; done
    exit 1
}

# Starts the probe; sets probe_pid and port. $1: frame log, $2: event log.
start_probe() {
    "$probe" --once --frames "$1" --timeout 25 >"$2" 2>&1 &
    probe_pid=$!
    for _ in $(seq 1 50); do
        if grep -q '^listening ' "$2"; then
            port="$(sed -n 's/^listening 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$2")"
            return 0
        fi
        sleep 0.1
    done
    fail "probe did not start listening"
}

wait_probe() {
    local rc=0
    wait "$probe_pid" || rc=$?
    probe_pid=""
    [ "$rc" -eq 0 ] || fail "probe exited with status $rc"
}

# ---- 1. the source file ---------------------------------------------------------------------
ffmpeg -nostdin -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset veryfast -g 60 -bf 2 -c:a aac -b:a 128k -t 6 x.flv
ffprobe -v error -show_packets -show_entries packet=codec_type,dts,pts,size,flags \
    -of compact=p=0 x.flv >expected.txt

# ---- 2. publish the file as OBS would, compare every frame -----------------------------------
start_probe frames.csv probe1.log
ffmpeg -nostdin -loglevel error -re -i x.flv -c copy -f flv "rtmp://127.0.0.1:$port/live/testkey" \
    || fail "ffmpeg publish (file) failed"
wait_probe
grep -q ' publish app=live key=testkey$' probe1.log || fail "no publish event"
grep -q ' unpublish ' probe1.log || fail "no unpublish event"
grep -q ' video_config codec=avc1.64' probe1.log || fail "no H.264 High config"
grep -q ' audio_config codec=mp4a.40.2 sample_rate=48000' probe1.log || fail "no AAC config"

python3 - expected.txt frames.csv <<'EOF' || fail "frames differ from ffprobe"
import sys
exp = {"video": [], "audio": []}
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.strip().split("|"))
    t = kv["codec_type"]
    if t not in exp or kv["size"] == "0":
        continue
    exp[t].append((int(kv["dts"]), int(kv["pts"]), int(kv["size"]), int("K" in kv["flags"])))
got = {"video": [], "audio": []}
for line in open(sys.argv[2]):
    t, dts, pts, size, key = line.strip().split(",")
    got[t].append((int(dts), int(pts), int(size), int(key)))
ok = True
for t in ("video", "audio"):
    same = len(exp[t]) == len(got[t])
    if not same:
        print(f"{t}: ffprobe {len(exp[t])} frames, library {len(got[t])}")
    for i, (e, g) in enumerate(zip(exp[t], got[t])):
        if e != g:
            print(f"{t} frame {i}: ffprobe (dts, pts, size, key) {e}, library {g}")
            same = False
            break
    ok = ok and same
    print(f"{t}: {len(got[t])} frames, {sum(1 for *_, k in got[t] if k == 1)} keyframes, "
          f"{'all equal' if same else 'MISMATCH'}")
sys.exit(0 if ok and exp["video"] and exp["audio"] else 1)
EOF

# ---- 3. publish straight from the encoder -----------------------------------------------------
start_probe live.csv probe2.log
ffmpeg -nostdin -loglevel error -re \
    -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -c:v libx264 -preset veryfast -g 60 -bf 2 -c:a aac -b:a 128k -t 4 \
    -f flv "rtmp://127.0.0.1:$port/live/livekey" || fail "ffmpeg publish (encoder) failed"
wait_probe
grep -q ' unpublish ' probe2.log || fail "live publish did not end with unpublish"

python3 - live.csv <<'EOF' || fail "live publish is not sane"
import sys
v, a = [], []
for line in open(sys.argv[1]):
    t, dts, pts, size, key = line.strip().split(",")
    (v if t == "video" else a).append((int(dts), int(pts), int(size), int(key)))
problems = []
if not 110 <= len(v) <= 130:
    problems.append(f"{len(v)} video frames for 4 s at 30 fps")
if not 170 <= len(a) <= 200:
    problems.append(f"{len(a)} audio frames for 4 s at 48 kHz / 1024")
keys = sum(k for *_, k in v)
if v and not v[0][3]:
    problems.append("the first video frame is not a keyframe")
if keys != (len(v) + 59) // 60:
    problems.append(f"{keys} keyframes for {len(v)} frames with a 60-frame GOP")
for name, fr in (("video", v), ("audio", a)):
    if any(b[0] < p[0] for p, b in zip(fr, fr[1:])):
        problems.append(f"{name} dts goes backwards")
    if any(f[1] < f[0] or f[2] <= 0 for f in fr):
        problems.append(f"{name} has pts < dts or an empty frame")
print(f"live: {len(v)} video frames ({keys} keyframes), {len(a)} audio frames")
for p in problems:
    print("problem:", p)
sys.exit(1 if problems else 0)
EOF
echo "media.ffmpeg_ingest: ok"
