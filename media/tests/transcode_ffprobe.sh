#!/bin/bash
# media.transcode_ffprobe: ffmpeg makes a 6 s 720p30 FLV (libx264, 2 B-frames, 2 s GOP, AAC);
# transcode_ladder (our FLV reader + transcoder) makes 480p and 360p rungs; ffprobe decodes
# every rung fully. Passes when each rung decodes without an error, has the source's frame
# count and presentation timestamps, the expected size, and keyframes at exactly the
# source's keyframe timestamps.
#   transcode_ffprobe.sh TRANSCODE_LADDER_BINARY WORKDIR
set -euo pipefail
BIN=$1
WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK/out"
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }

ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440 -c:v libx264 -preset veryfast -bf 2 -g 60 -keyint_min 60 \
    -sc_threshold 0 -b:v 2500k -c:a aac -b:a 128k -t 6 src.flv

"$BIN" src.flv --out out --rung 480:1200 --rung 360:700 | tee summary.txt

# "pts,key" for every decoded picture, in presentation order (FLV time base is 1 ms).
# ffprobe prints the fields in its own order (key_frame first), hence the key=value form.
frames() {
    ffprobe -v error -select_streams v:0 -show_entries frame=pts,key_frame \
        -of compact=p=0 "$1" 2>"$2" |
        awk -F'|' '{k = ""; p = ""; for (i = 1; i <= NF; i++) { split($i, kv, "=");
                    if (kv[1] == "key_frame") k = kv[2]; if (kv[1] == "pts") p = kv[2] }
                    if (p != "") print p "," k }' | sort -t, -k1,1n
}
frames src.flv src.err >src.frames
[ -s src.err ] && fail "ffprobe reports errors on the source: $(head -3 src.err)"
src_n=$(wc -l <src.frames)
src_keys=$(awk -F, '$2==1 {print $1}' src.frames | tr '\n' ' ')
[ "$src_n" -ge 170 ] || fail "source has only $src_n frames"
[ "$(echo $src_keys | wc -w)" -ge 3 ] || fail "source has fewer than 3 keyframes: $src_keys"
echo "source: $src_n frames, keyframes at pts: $src_keys"

check_rung() {
    local i=$1 w=$2 h=$3 f=out/rung$1.flv
    [ -s "$f" ] || fail "rung $i: no output"
    frames "$f" rung$i.err >rung$i.frames
    [ -s rung$i.err ] && fail "rung $i: ffprobe decode errors: $(head -3 rung$i.err)"
    local n keys size
    n=$(wc -l <rung$i.frames)
    keys=$(awk -F, '$2==1 {print $1}' rung$i.frames | tr '\n' ' ')
    size=$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=p=0 "$f")
    echo "rung $i: ${size/,/x}, $n frames, keyframes at pts: $keys"
    [ "$size" = "$w,$h" ] || fail "rung $i: size $size, want $w,$h"
    [ "$n" -eq "$src_n" ] || fail "rung $i: $n frames, source has $src_n"
    [ "$keys" = "$src_keys" ] || fail "rung $i: keyframes at [$keys], source at [$src_keys]"
    cut -d, -f1 rung$i.frames >rung$i.pts
    cut -d, -f1 src.frames >src.pts
    cmp -s rung$i.pts src.pts || fail "rung $i: presentation timestamps differ from the source's"
    # Decode order: dts strictly increasing, dts <= pts (packets as stored).
    ffprobe -v error -select_streams v:0 -show_entries packet=pts,dts -of compact=p=0 "$f" |
        sed -e 's/pts=//' -e 's/dts=//' |
        awk -F'|' 'NR>1 && $2<=prev {bad=1} $2>$1 {bad=1} {prev=$2} END {exit bad}' ||
        fail "rung $i: packet dts not increasing or after pts"
}
check_rung 0 854 480
check_rung 1 640 360
echo "PASS: every rung decodes fully with the source's frames and keyframe timestamps"
