#!/bin/sh
# Regenerates the seed corpus of fuzz.hls_params (media/fuzz/corpus/hls_params/): query
# strings with the LL-HLS delivery directives and resource names, valid and not.
set -e
d="$(cd "$(dirname "$0")/../fuzz/corpus" && pwd)/hls_params"
mkdir -p "$d"
printf '_HLS_msn=12&_HLS_part=3' > "$d/msn_part"
printf '?_HLS_msn=40&_HLS_part=0&_HLS_skip=YES' > "$d/all_three"
printf '_HLS_skip=v2' > "$d/skip_v2"
printf '_HLS_part=1' > "$d/part_without_msn"
printf 'token=a%%20b&_HLS_msn=%%31&x=' > "$d/escaped"
printf '_HLS_msn=9007199254740993' > "$d/msn_overflow"
printf 'part-120.3.m4s' > "$d/res_part"
printf 'seg-7.m4s' > "$d/res_seg"
printf 'init-0.mp4' > "$d/res_init"
printf 'index.m3u8' > "$d/res_playlist"
