#!/usr/bin/env python3
"""media.cmaf_ffmpeg: real media through the FLV reader and the CMAF packager, checked by ffmpeg.

ffmpeg encodes ~10 s of FLV (libx264 High with B-frames, 2 s GOP, AAC). cmaf_package_flv reads
it with the FLV reader and tag parsers and packages it. Then ffmpeg/ffprobe, which we did not
write, must find:
  - init + all segments: every video frame decodes, same count and per-frame checksums as
    decoding the source FLV; every audio packet is byte-identical and decodes identically;
  - init + the parts of each segment concatenated: the same frames as that stretch of source;
  - the parts of a segment concatenated are byte-identical to the segment;
  - pts/dts of every video packet (B-frames) equal the source's, up to the constant timeline
    offset; the stream's duration equals the source's;
  - the master playlist opens as an HLS stream with h264 + aac.
usage: cmaf_ffmpeg.py PATH/TO/cmaf_package_flv
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120, **kw).stdout


def hashes(path, sel, copy=False):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-map", sel]
    if copy:
        cmd += ["-c", "copy"]
    out = run(cmd + ["-f", "framemd5", "-"])
    return [l.rsplit(",", 1)[1].strip() for l in out.splitlines() if l and not l.startswith("#")]


def packets(path):
    out = run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
               "packet=pts_time,dts_time,flags", "-of", "csv=p=0", path])
    rows = []
    for l in out.splitlines():
        pts, dts, flags = l.split(",")[:3]
        rows.append((float(pts), float(dts), "K" in flags))
    return rows


def cat(paths, dst):
    with open(dst, "wb") as o:
        for p in paths:
            with open(p, "rb") as i:
                o.write(i.read())


def num(path):
    return [int(x) for x in re.findall(r"\d+", os.path.basename(path))]


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    pkg = sys.argv[1]
    work = tempfile.mkdtemp(prefix="cmaf_ffmpeg_")
    try:
        src = os.path.join(work, "src.flv")
        run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", "10", "-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-g", "60",
             "-keyint_min", "60", "-sc_threshold", "0", "-preset", "veryfast",
             "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-f", "flv", src])
        out = os.path.join(work, "out")
        summary = run([pkg, src, out])
        print(summary.strip())
        vdir, adir = os.path.join(out, "video"), os.path.join(out, "audio")
        segs = sorted(glob.glob(os.path.join(vdir, "seg-*.m4s")), key=num)
        asegs = sorted(glob.glob(os.path.join(adir, "seg-*.m4s")), key=num)
        if len(segs) < 4:
            fail("expected at least 4 video segments, got %d" % len(segs))

        v_mp4 = os.path.join(work, "v.mp4")
        a_mp4 = os.path.join(work, "a.mp4")
        cat([os.path.join(vdir, "init-0.mp4")] + segs, v_mp4)
        cat([os.path.join(adir, "init-0.mp4")] + asegs, a_mp4)

        src_v = hashes(src, "0:v")
        out_v = hashes(v_mp4, "0:v")
        if len(src_v) < 290 or out_v != src_v:
            fail("video: %d source frames, %d packaged, equal=%s" % (len(src_v), len(out_v), out_v == src_v))
        print("video: %d frames decode with identical checksums" % len(out_v))

        for copy in (True, False):
            s, o = hashes(src, "0:a", copy), hashes(a_mp4, "0:a", copy)
            if len(s) < 400 or s != o:
                fail("audio (%s): %d source, %d packaged" % ("packets" if copy else "decoded", len(s), len(o)))
        print("audio: %d packets identical, decoded identically" % len(s))

        # Each segment's parts, concatenated after the init segment, decode to that segment's
        # stretch of the source, and are the segment's exact bytes.
        at = 0
        for seg in segs:
            m = num(seg)[0]
            parts = sorted(glob.glob(os.path.join(vdir, "part-%d.*.m4s" % m)), key=num)
            if not parts:
                fail("segment %d has no parts" % m)
            blob = b"".join(open(p, "rb").read() for p in parts)
            if blob != open(seg, "rb").read():
                fail("segment %d is not the concatenation of its parts" % m)
            p_mp4 = os.path.join(work, "p%d.mp4" % m)
            cat([os.path.join(vdir, "init-0.mp4")] + parts, p_mp4)
            h = hashes(p_mp4, "0:v")
            if h != src_v[at:at + len(h)] or not h:
                fail("parts of segment %d: %d frames do not match source frames %d.." % (m, len(h), at))
            at += len(h)
        if at != len(src_v):
            fail("parts cover %d of %d frames" % (at, len(src_v)))
        print("parts: %d segments, each part list decodes to its stretch of the source" % len(segs))

        sp, op = packets(src), packets(v_mp4)
        if len(sp) != len(op):
            fail("packet count %d vs %d" % (len(sp), len(op)))
        # Presentation and decode times are the source's plus constant offsets (the timeline
        # offset; decode times also by the reorder delay, so that a fragment's first frame is
        # presented at its tfdt, which ffmpeg's mov demuxer re-shifts for negative offsets).
        off = op[0][0] - sp[0][0]
        doff = op[0][1] - sp[0][1]
        for i, (a, b) in enumerate(zip(sp, op)):
            if abs((b[0] - off) - a[0]) > 0.0015 or abs((b[1] - doff) - a[1]) > 0.0015 or a[2] != b[2]:
                fail("packet %d: source pts/dts/key %s, packaged %s (offsets %.3f %.3f)" % (i, a, b, off, doff))
        if not any(p[0] != p[1] for p in op):
            fail("no B-frame reordering seen (pts == dts everywhere)")
        # Durations: the samples' durations add up to the source's span (its last frame
        # lasting as long as the one before it, as the packager assumes at the end).
        span = sp[-1][1] - sp[0][1] + (sp[-1][1] - sp[-2][1])
        od = float(run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                        "stream=duration", "-of", "csv=p=0", v_mp4]).strip()) - op[0][1]
        if abs(span - od) > 0.002:
            fail("packaged duration %.3f vs source span %.3f" % (od, span))
        print("ffprobe: %d packets with source pts/dts (offsets %.3f/%.3f s), duration %.3f s" % (len(op), off, doff, od))

        streams = run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                       "-of", "csv=p=0", os.path.join(out, "master.m3u8")]).split()
        if "h264" not in streams or "aac" not in streams:
            fail("master playlist streams: %s" % streams)
        print("master.m3u8: ffprobe opens %s" % ",".join(sorted(set(streams))))
        # A publisher that reconnects: the same FLV published twice, its clock restarting at 0.
        out2 = os.path.join(work, "out2")
        print(run([pkg, src + "," + src, out2]).strip())
        v2 = os.path.join(out2, "video")
        pl = open(os.path.join(v2, "index.m3u8")).read()
        if pl.count("#EXT-X-DISCONTINUITY\n") != 1:
            fail("restart: %d EXT-X-DISCONTINUITY tags" % pl.count("#EXT-X-DISCONTINUITY\n"))
        if pl.count("#EXT-X-PROGRAM-DATE-TIME:") != pl.count("#EXTINF:"):
            fail("restart: PROGRAM-DATE-TIME is not on every segment")
        segs2 = sorted(glob.glob(os.path.join(v2, "seg-*.m4s")), key=num)
        a2 = sorted(glob.glob(os.path.join(out2, "audio", "seg-*.m4s")), key=num)
        r_mp4 = os.path.join(work, "r.mp4")
        ra_mp4 = os.path.join(work, "ra.mp4")
        cat([os.path.join(v2, "init-0.mp4")] + segs2, r_mp4)
        cat([os.path.join(out2, "audio", "init-0.mp4")] + a2, ra_mp4)
        if hashes(r_mp4, "0:v") != src_v + src_v:
            fail("restart: video frames differ from the source published twice")
        if hashes(ra_mp4, "0:a", True) != hashes(src, "0:a", True) * 2:
            fail("restart: audio packets differ from the source published twice")
        rp = packets(r_mp4)
        if any(b[1] <= a[1] for a, b in zip(rp, rp[1:])):
            fail("restart: decode timestamps are not monotonic")
        gap = rp[len(sp)][1] - rp[len(sp) - 1][1]
        print("restart: one discontinuity, %d frames, dts monotonic (step %.3f s at the restart)" % (len(rp), gap))
        print("PASS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
