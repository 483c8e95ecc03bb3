#!/bin/bash
# CPU per stream-minute of our ladder (transcode_ladder: our FLV reader + media transcoder)
# against the ffmpeg CLI producing the same ladder, side by side in one run.
#
#   bench/transcode/run.sh [BUILD_DIR]        (default: build-tc; needs target transcode_ladder)
#   env: SRC      the 60 s 720p30 source (made by bench/make_source.sh if missing)
#        REPS     full-speed pairs, alternating CLI/ours (default 3); the median is reported
#        PACED    1 (default): also paced pairs (-re / --realtime), as a live stream arrives
#        PACED_REPS paced pairs (default 1; each takes 2 x the source's duration)
#        VARIANTS 1 (default): one run of each variant (our savings switched off one by one,
#                 threads, scalers, a single-threaded CLI)
#        PERF     1 (default): perf record of one run each, summarised by shared object
#        OUT      results directory (default /tmp/bench/transcode)
#
# The ladder: source copied + 480p 1200k + 360p 700k, libx264 veryfast, high profile,
# maxrate = bitrate, bufsize = 2 x bitrate, keyframes every 2 s (the source's GOP; ours
# follows the source's keyframes), decode once (the CLI uses `split`).
# CPU = user + sys of the whole process and its threads (bash's `time`, from wait4 rusage).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-tc}
BIN=$BUILD/media/transcode_ladder
SRC=${SRC:-/tmp/bench/src720.flv}
REPS=${REPS:-3}
PACED=${PACED:-1}
PACED_REPS=${PACED_REPS:-1}
VARIANTS=${VARIANTS:-1}
PERF=${PERF:-1}
OUT=${OUT:-/tmp/bench/transcode}
[ -x "$BIN" ] || { echo "build $BIN first (cmake --build $BUILD --target transcode_ladder)"; exit 1; }
BENCH_SRC=$SRC bash "$ROOT/bench/make_source.sh" >/dev/null
rm -rf "$OUT" && mkdir -p "$OUT/cli" "$OUT/ours"
DUR=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$SRC")
LOG=$OUT/results.txt
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }

say "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "host: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
say "kernel: $(uname -r); ffmpeg: $(ffmpeg -hide_banner -version | head -1 | cut -d' ' -f3)"
say "source: $SRC, ${DUR}s, $(ffprobe -v error -select_streams v:0 -show_entries stream=width,height,r_frame_rate -of csv=p=0 "$SRC")"
say "load before: $(cat /proc/loadavg)"

X264="-preset veryfast -profile:v high -g 60 -keyint_min 60 -sc_threshold 0 -an"
cli() { # extra ffmpeg args (e.g. -re, -threads 1) -> runs the CLI ladder
    local pre=() post=()
    while [ $# -gt 0 ]; do
        case $1 in
        -re) pre+=(-re) ;;
        -threads1) pre+=(-threads 1); post=(-threads 1) ;;
        esac
        shift
    done
    # shellcheck disable=SC2086
    ffmpeg -hide_banner -loglevel error -y "${pre[@]}" -i "$SRC" -filter_complex \
        "[0:v]split=2[a][b];[a]scale=854:480:flags=bicubic[o0];[b]scale=640:360:flags=bicubic[o1]" \
        -map 0:v -map 0:a -c copy "$OUT/cli/copy.flv" \
        -map "[o0]" -c:v libx264 "${post[@]}" -b:v 1200k -maxrate 1200k -bufsize 2400k $X264 "$OUT/cli/rung0.flv" \
        -map "[o1]" -c:v libx264 "${post[@]}" -b:v 700k -maxrate 700k -bufsize 1400k $X264 "$OUT/cli/rung1.flv"
}
ours() { "$BIN" "$SRC" --out "$OUT/ours" --rung 480:1200 --rung 360:700 "$@" >"$OUT/ours.summary"; }

# measure NAME CMD... -> appends "NAME cpu_s wall_s cpu_per_stream_minute" to $OUT/runs
measure() {
    local name=$1
    shift
    local TIMEFORMAT="%U %S %R"
    { time "$@" 2>"$OUT/stderr.txt"; } 2>"$OUT/time.txt"
    read -r u s e <"$OUT/time.txt"
    local cpu per
    cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    per=$(awk -v c="$cpu" -v d="$DUR" 'BEGIN { printf "%.2f", c * 60 / d }')
    say "run $name: cpu=${cpu}s wall=${e}s -> ${per} CPU-s per stream-minute (load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$name $cpu $e $per" >>"$OUT/runs"
}
median() { awk -v n="$1" '$1 == n { print $4 }' "$OUT/runs" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for r in $(seq "$REPS"); do
    measure cli cli
    measure ours ours
done
if [ "$PACED" = 1 ]; then
    for r in $(seq "$PACED_REPS"); do
        measure cli_paced cli -re
        measure ours_paced ours --realtime
    done
fi
if [ "$VARIANTS" = 1 ]; then
    measure cli_threads1 cli -threads1
    measure ours_same_work_as_cli ours --x264 "" --full-deblock
    measure ours_x264_preset_only ours --x264 ""
    measure ours_full_deblock ours --full-deblock
    measure ours_enc2 ours --enc-threads 2
    measure ours_dec2 ours --dec-threads 2
    for s in bilinear fast_bilinear area; do measure "ours_$s" ours --scale "$s"; done
    ours # leave the default outputs for the quality check below
fi

# Quality of the outputs just measured: PSNR against one common reference (the source scaled
# with lanczos), frames paired by index.
psnr() {
    ffmpeg -hide_banner -nostats -i "$1" -i "$SRC" -lavfi \
        "[0:v]setpts=N/(30*TB)[d];[1:v]scale=$2:$3:flags=lanczos,setpts=N/(30*TB)[ref];[d][ref]psnr" \
        -f null - 2>&1 | sed -n 's/.*PSNR.* average:\([0-9.]*\).*/\1/p' | tail -1
}
for i in 0 1; do
    w=(854 640); h=(480 360)
    say "quality rung$i ${w[$i]}x${h[$i]}: PSNR ours=$(psnr "$OUT/ours/rung$i.flv" "${w[$i]}" "${h[$i]}") cli=$(psnr "$OUT/cli/rung$i.flv" "${w[$i]}" "${h[$i]}") dB;" \
        "kbit/s ours=$(( $(stat -c %s "$OUT/ours/rung$i.flv") * 8 / ${DUR%.*} / 1000 )) cli=$(( $(stat -c %s "$OUT/cli/rung$i.flv") * 8 / ${DUR%.*} / 1000 ))"
done

if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
    for who in ours cli; do
        perf record -q -o "$OUT/perf.$who" -F 499 -- bash -c "$(declare -f cli ours); BIN=$BIN SRC=$SRC OUT=$OUT X264='$X264'; $who" 2>/dev/null || true
        say "perf $who (share of samples by shared object):"
        perf report -i "$OUT/perf.$who" --no-children --sort dso --stdio 2>/dev/null |
            grep -E '^ +[0-9]' | head -8 | tee -a "$LOG"
    done
fi

cli_m=$(median cli)
ours_m=$(median ours)
say "median full speed: cli=${cli_m} ours=${ours_m} CPU-s per stream-minute; ratio=$(awk -v a="$ours_m" -v b="$cli_m" 'BEGIN { printf "%.3f", a / b }')"
if [ "$PACED" = 1 ]; then
    cp=$(median cli_paced); op=$(median ours_paced)
    say "median paced: cli=${cp} ours=${op} CPU-s per stream-minute; ratio=$(awk -v a="$op" -v b="$cp" 'BEGIN { printf "%.3f", a / b }')"
fi
say "streams on 2 cores in real time (120 CPU-s per minute, 80% usable): ours=$(awk -v c="$ours_m" 'BEGIN { printf "%d", 0.8 * 120 / c }') cli=$(awk -v c="$cli_m" 'BEGIN { printf "%d", 0.8 * 120 / c }') (at 100%: ours=$(awk -v c="$ours_m" 'BEGIN { printf "%.1f", 120 / c }') cli=$(awk -v c="$cli_m" 'BEGIN { printf "%.1f", 120 / c }'))"
say "load after: $(cat /proc/loadavg)"
echo "results: $LOG"
