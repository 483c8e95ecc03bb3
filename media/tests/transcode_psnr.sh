#!/bin/bash
# media.transcode_psnr: quality of our rungs against the ffmpeg CLI's at the same settings.
# ffmpeg makes a 6 s 720p30 FLV; transcode_ladder makes 480p (1200k) and 360p (700k) rungs;
# the ffmpeg CLI makes the same rungs (split + scale, libx264 veryfast/high, same bitrate,
# maxrate, bufsize, keyframes every 60 frames like the source's). For each rung, PSNR
# (ffmpeg's psnr filter, "average" over Y/U/V) against the source scaled the same way:
#   - each encoder's output against the source scaled with that encoder's scaler flags;
#   - both outputs against one common reference (the source scaled with lanczos), which
#     also charges a cheaper scaler for what it loses.
# Passes when ours is within 0.3 dB of (or better than) the CLI's in both measures.
#   transcode_psnr.sh TRANSCODE_LADDER_BINARY WORKDIR [SCALE [DRIVER_ARGS...]]
#   (SCALE: our --scale, default bicubic, named as ffmpeg's scale filter names it;
#   DRIVER_ARGS go to transcode_ladder, e.g. --cascade)
set -euo pipefail
BIN=$1
WORK=$2
SCALE=${3:-bicubic}
shift $(( $# < 3 ? $# : 3 ))
TOL=0.3
rm -rf "$WORK" && mkdir -p "$WORK/out"
cd "$WORK"
fail() { echo "FAIL: $*" >&2; exit 1; }

# SOURCE (env): the lavfi video source, testsrc2 by default (bench/transcode also tries
# camera-like content, e.g. "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t").
ffmpeg -hide_banner -loglevel error -y -f lavfi -i "${SOURCE:-testsrc2=size=1280x720:rate=30}" \
    -f lavfi -i sine=frequency=440 -c:v libx264 -preset veryfast -bf 2 -g 60 -keyint_min 60 \
    -sc_threshold 0 -b:v 2500k -pix_fmt yuv420p -c:a aac -b:a 128k -t 6 src.flv

"$BIN" src.flv --out out --rung 480:1200 --rung 360:700 --scale "$SCALE" "$@" >summary.txt
cat summary.txt

W=(854 640); H=(480 360); K=(1200 700)
x264_args() { # rung index -> the CLI's encoder settings for it
    echo "-c:v libx264 -preset veryfast -profile:v high -b:v ${K[$1]}k -maxrate ${K[$1]}k" \
         "-bufsize $((2 * ${K[$1]}))k -g 60 -keyint_min 60 -sc_threshold 0 -an"
}
# shellcheck disable=SC2046
ffmpeg -hide_banner -loglevel error -y -i src.flv -filter_complex \
    "[0:v]split=2[a][b];[a]scale=${W[0]}:${H[0]}:flags=bicubic[o0];[b]scale=${W[1]}:${H[1]}:flags=bicubic[o1]" \
    -map "[o0]" $(x264_args 0) cli0.flv -map "[o1]" $(x264_args 1) cli1.flv

# Frames are paired by index (setpts=N), not by timestamp: the CLI's FLV rounds some
# timestamps by 1 ms, and the psnr filter's timestamp sync would then pair neighbours.
psnr() { # distorted, width, height, reference scaler flags -> average PSNR
    ffmpeg -hide_banner -nostats -i "$1" -i src.flv -lavfi \
        "[0:v]setpts=N/(30*TB)[d];[1:v]scale=$2:$3:flags=$4,setpts=N/(30*TB)[ref];[d][ref]psnr" \
        -f null - 2>&1 |
        sed -n 's/.*PSNR.* average:\([0-9.]*\).*/\1/p' | tail -1
}
within() { awk -v a="$1" -v b="$2" -v t="$TOL" 'BEGIN { exit !(a != "" && b != "" && a >= b - t) }'; }

for i in 0 1; do
    [ -s out/rung$i.flv ] || fail "rung $i: no output"
    ours=$(psnr out/rung$i.flv "${W[$i]}" "${H[$i]}" "$SCALE")
    cli=$(psnr cli$i.flv "${W[$i]}" "${H[$i]}" bicubic)
    ours_l=$(psnr out/rung$i.flv "${W[$i]}" "${H[$i]}" lanczos)
    cli_l=$(psnr cli$i.flv "${W[$i]}" "${H[$i]}" lanczos)
    ours_kb=$(( $(stat -c %s out/rung$i.flv) * 8 / 6000 ))
    cli_kb=$(( $(stat -c %s cli$i.flv) * 8 / 6000 ))
    echo "rung $i ${W[$i]}x${H[$i]}@${K[$i]}k: PSNR ours=$ours (scale=$SCALE) cli=$cli (bicubic);" \
         "vs lanczos ref ours=$ours_l cli=$cli_l; kbit/s ours=$ours_kb cli=$cli_kb"
    within "$ours" "$cli" || fail "rung $i: ours $ours dB is more than $TOL dB below the CLI's $cli dB"
    within "$ours_l" "$cli_l" ||
        fail "rung $i: vs common reference ours $ours_l dB is more than $TOL dB below the CLI's $cli_l dB"
done
echo "PASS: every rung within $TOL dB of the ffmpeg CLI's PSNR"
