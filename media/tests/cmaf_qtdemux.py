#!/usr/bin/env python3
"""media.cmaf_qtdemux: a second, independent box reader (GStreamer's qtdemux) checks the packager.

ffmpeg encodes 6 s of FLV (H.264 High with B-frames, AAC); cmaf_package_flv packages it; then
`gst-launch-1.0 filesrc ! qtdemux ! fakesink` must parse init + segments of each rendition,
report the right caps (H.264 avc/au High 640x360 with our avcC; AAC 48 kHz mono), deliver as
many samples as the source has packets, flag exactly the keyframes as sync samples, and give
every sample a timestamp that increases in decode order; init + each part alone must parse too
and their sample counts must add up to the total.
usage: cmaf_qtdemux.py PATH/TO/cmaf_package_flv
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def num(path):
    return [int(x) for x in re.findall(r"\d+", os.path.basename(path))]


def cat(paths, dst):
    with open(dst, "wb") as o:
        for p in paths:
            with open(p, "rb") as i:
                o.write(i.read())


def qtdemux(path, pad):
    """Returns (caps string, [(dts_ns, is_delta)]) for the first `pad` stream of `path`."""
    out = run(["gst-launch-1.0", "-v", "filesrc", "location=" + path, "!", "qtdemux", "name=d",
               "d.%s_0" % pad, "!", "fakesink", "silent=false"])
    caps = ""
    samples = []
    for line in out.splitlines():
        if "GstPad:sink: caps = " in line:
            caps = line.split("caps = ", 1)[1]
        m = re.search(r"chain .*\((\d+) bytes, dts: (\d+):(\d+):(\d+)\.(\d+),.*flags: ([0-9a-f]+)", line)
        if m:
            h, mi, s, ns = int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5))
            flags = int(m.group(6), 16)
            samples.append(((h * 3600 + mi * 60 + s) * 10**9 + ns, bool(flags & 0x2000)))
    return caps, samples


def main():
    pkg = sys.argv[1]
    work = tempfile.mkdtemp(prefix="cmaf_qtdemux_")
    try:
        src = os.path.join(work, "src.flv")
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
             "-t", "6", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "60",
             "-keyint_min", "60", "-sc_threshold", "0", "-preset", "veryfast",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", src])
        probe = run(["ffprobe", "-v", "error", "-show_entries", "packet=codec_type,flags",
                     "-of", "csv=p=0", src]).split()
        n_video = sum(1 for p in probe if p.startswith("video"))
        n_key = sum(1 for p in probe if p.startswith("video") and "K" in p)
        n_audio = sum(1 for p in probe if p.startswith("audio"))
        out = os.path.join(work, "out")
        print(run([pkg, src, out]).strip())

        for name, pad, want, keys, caps_want in (
                ("video", "video", n_video, n_key,
                 ["video/x-h264", "stream-format=(string)avc", "alignment=(string)au",
                  "profile=(string)high", "width=(int)640", "height=(int)360"]),
                ("audio", "audio", n_audio, n_audio,
                 ["audio/mpeg", "mpegversion=(int)4", "rate=(int)48000", "channels=(int)1"])):
            d = os.path.join(out, name)
            segs = sorted(glob.glob(os.path.join(d, "seg-*.m4s")), key=num)
            whole = os.path.join(work, name + ".mp4")
            cat([os.path.join(d, "init-0.mp4")] + segs, whole)
            caps, samples = qtdemux(whole, pad)
            for c in caps_want:
                if c not in caps:
                    fail("%s caps lack %s: %s" % (name, c, caps))
            if len(samples) != want:
                fail("%s: qtdemux gave %d samples, source has %d" % (name, len(samples), want))
            sync = sum(1 for _, delta in samples if not delta)
            if sync != keys:
                fail("%s: %d sync samples, source has %d keyframes" % (name, sync, keys))
            if any(b[0] <= a[0] for a, b in zip(samples, samples[1:])):
                fail("%s: decode timestamps do not increase" % name)
            total = 0
            for part in sorted(glob.glob(os.path.join(d, "part-*.m4s")), key=num):
                one = os.path.join(work, "one.mp4")
                cat([os.path.join(d, "init-0.mp4"), part], one)
                _, s = qtdemux(one, pad)
                if not s:
                    fail("%s: %s alone has no samples" % (name, os.path.basename(part)))
                total += len(s)
            if total != want:
                fail("%s: parts hold %d samples, expected %d" % (name, total, want))
            print("%s: qtdemux parses %d segments and every part: %d samples, %d sync" %
                  (name, len(segs), len(samples), sync))
        print("PASS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
