#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz.flv, fuzz.avc_config and fuzz.aac_config from real
# ffmpeg output (libx264 + native AAC in FLV), plus a few crafted configs ffmpeg cannot make
# (HE-AAC, escaped object types, explicit rates). Needs ffmpeg and python3.
# Usage: media/fuzz/make_seeds_flv.sh   (writes media/fuzz/corpus/{flv,avc_config,aac_config})
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

gen() { # name, then ffmpeg input/codec arguments; 0.2 s of media
  local name="$1"; shift
  ffmpeg -hide_banner -loglevel error -nostdin -y "$@" -t 0.2 -f flv "$tmp/$name.flv"
}
src() { echo "testsrc2=size=$1:rate=$2"; }
gen high720  -f lavfi -i "$(src 1280x720 30)" -f lavfi -i sine -c:v libx264 -profile:v high \
             -bf 2 -g 60 -c:a aac
gen base480  -f lavfi -i "$(src 480x270 25)" -c:v libx264 -profile:v baseline
gen crop854  -f lavfi -i "$(src 854x480 30)" -c:v libx264 -profile:v main
gen crop1918 -f lavfi -i "$(src 1918x1078 60)" -c:v libx264 -profile:v high
gen high10   -f lavfi -i "$(src 640x360 30)" -c:v libx264 -profile:v high10 -pix_fmt yuv420p10le
gen high422  -f lavfi -i "$(src 640x360 30)" -c:v libx264 -profile:v high422 -pix_fmt yuv422p
gen high444  -f lavfi -i "$(src 856x482 30)" -vf scale=855:481,format=yuv444p -c:v libx264 \
             -profile:v high444
gen interl   -f lavfi -i "$(src 1920x1080 25)" -c:v libx264 -profile:v high \
             -x264-params interlaced=1
gen aacmono  -f lavfi -i sine=sample_rate=22050 -c:a aac -ac 1
gen aac51    -f lavfi -i sine=sample_rate=48000 -c:a aac -ac 6
# Whole small files for fuzz.flv: tiny pictures keep them to a few KB.
gen tiny_av  -f lavfi -i "$(src 64x64 25)" -f lavfi -i sine -c:v libx264 -bf 2 -g 3 -c:a aac \
             -b:a 16k
gen tiny_v   -f lavfi -i "$(src 32x32 25)" -c:v libx264 -profile:v baseline -g 2

python3 - "$tmp" "$here/corpus" <<'PY'
import os, struct, sys
tmp, out = sys.argv[1], sys.argv[2]
for d in ("flv", "avc_config", "aac_config"):
    os.makedirs(os.path.join(out, d), exist_ok=True)

def tags(data):
    off = struct.unpack(">I", data[5:9])[0] + 4
    while off + 11 <= len(data):
        size = int.from_bytes(data[off + 1:off + 4], "big")
        yield data[off] & 0x1f, data[off + 11:off + 11 + size]
        off += 11 + size + 4

def write(sub, name, blob):
    with open(os.path.join(out, sub, name), "wb") as f:
        f.write(blob)

for fn in sorted(os.listdir(tmp)):
    name = fn[:-4]
    data = open(os.path.join(tmp, fn), "rb").read()
    if name.startswith("tiny"):
        write("flv", name + ".flv", data)
        continue
    for t, body in tags(data):
        if t == 9 and body[0] & 0x0f == 7 and body[1] == 0:
            write("avc_config", name, body[5:])
        if t == 8 and body[0] >> 4 == 10 and body[1] == 0:
            write("aac_config", name, body[2:])
# Crafted AudioSpecificConfigs (see media/tests/test_aac.c for the bit layouts).
write("aac_config", "he_aac_sbr_explicit", bytes.fromhex("2b920800"))
write("aac_config", "eld_escape_39", bytes.fromhex("f8e640"))       # AOT 31+7, 48k, stereo
write("aac_config", "lc_explicit_rate", bytes.fromhex("17805dc010")) # index 15, 48000 Hz
write("aac_config", "pce_channels_0", bytes.fromhex("1200"))
PY
ls -l "$here/corpus/flv" "$here/corpus/avc_config" "$here/corpus/aac_config"
