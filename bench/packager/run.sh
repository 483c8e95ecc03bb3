#!/bin/bash
# bench/packager/run.sh [BUILD_DIR] [RUNS]
# Builds bench_packager against BUILD_DIR's static libraries (default: build, a plain -O2
# build: do not benchmark a sanitizer build), generates the input once into /tmp (60 s of
# 1280x720 30 fps H.264 High, GOP 2 s, with B-frames, ~2.47 Mbit/s video + 128 kbit/s AAC =
# ~2.6 Mbit/s; never committed) and runs the benchmark.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build}"
runs="${2:-10}"
src=/tmp/aethex_bench_packager_720p30.flv
bin=/tmp/aethex_bench_packager

cmake --build "$build" --target aethex_media_hls aethex_media_flv aethex_common >/dev/null
cc -std=gnu11 -O2 -Wall -Wextra -Werror -I"$root/common/include" -I"$root/media/include" \
   "$here/bench_packager.c" "$build/media/libaethex_media_hls.a" "$build/media/libaethex_media_flv.a" \
   "$build/common/libaethex_common.a" -o "$bin"

if [ ! -s "$src" ]; then
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 60 -c:v libx264 -profile:v high -preset veryfast -bf 2 -g 60 -keyint_min 60 \
    -sc_threshold 0 -b:v 2470k -maxrate 2470k -bufsize 4940k -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ac 2 -f flv "$src"
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" "$src" "$runs"
