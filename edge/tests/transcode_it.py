#!/usr/bin/env python3
"""Integration tests of the edge's transcoding ladder (issue 8) with real peers.

    transcode_it.py --edge BUILD/edge/aethex-edge TEST

TEST is one of: ladder, hlsjs_switch, admission (ctest edge.transcode_<TEST>). Uses
edge_it.py's helpers (an edge on port 0, ffmpeg publishers, HTTP with deadlines).
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from edge_it import (ROOT, Edge, Fail, check, get, log, playlist, publisher,  # noqa: E402
                     stop_proc, wait_for, wait_master)


def stream_infs(master):
    """[(attrs dict, uri)] of the master's EXT-X-STREAM-INF entries."""
    out = []
    lines = master.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            attrs = {k: v.strip('"') for k, v in attrs.items()}
            out.append((attrs, lines[i + 1].strip()))
    return out


def fetch(edge, path):
    st, h, body = get(edge.http, path)
    check(st == 200, "GET %s -> %d" % (path, st))
    return body


def boxes(data, off=0, end=None):
    end = len(data) if end is None else end
    while off + 8 <= end:
        size, kind = struct.unpack(">I4s", data[off:off + 8])
        hdr = 8
        if size == 1:
            size = struct.unpack(">Q", data[off + 8:off + 16])[0]
            hdr = 16
        if size < hdr or off + size > end:
            raise Fail("bad box at %d" % off)
        yield kind.decode("latin1"), off + hdr, off + size
        off += size


def first_times(seg):
    """(tfdt, presentation time) of the first sample of a CMAF segment: baseMediaDecodeTime
    plus the first trun sample's composition offset (signed in trun version 1)."""
    for kind, b, e in boxes(seg):
        if kind == "moof":
            for k2, b2, e2 in boxes(seg, b, e):
                if k2 != "traf":
                    continue
                tfdt = cto = None
                for k3, b3, e3 in boxes(seg, b2, e2):
                    if k3 == "tfdt":
                        if seg[b3] == 1:
                            tfdt = struct.unpack(">Q", seg[b3 + 4:b3 + 12])[0]
                        else:
                            tfdt = struct.unpack(">I", seg[b3 + 4:b3 + 8])[0]
                    elif k3 == "trun":
                        version = seg[b3]
                        flags = int.from_bytes(seg[b3 + 1:b3 + 4], "big")
                        at = b3 + 8 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
                        at += sum(4 for bit in (0x100, 0x200, 0x400) if flags & bit)
                        cto = 0
                        if flags & 0x800:
                            cto = struct.unpack(">i" if version else ">I", seg[at:at + 4])[0]
                check(tfdt is not None and cto is not None, "traf without tfdt or trun")
                return tfdt, tfdt + cto
    raise Fail("segment without moof")


def probe_frames(path):
    """ffprobe's decoded video frames of a file: [(pts_time, key_frame)]; fails on errors."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                        "frame=pts_time,key_frame", "-of", "json", path],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0 and not r.stderr.strip(),
          "ffprobe could not decode %s: %s" % (path, r.stderr[-1000:]))
    return [(float(f["pts_time"]), int(f["key_frame"])) for f in json.loads(r.stdout)["frames"]]


def metric(edge, name):
    st, h, body = get(edge.http, "/metrics")
    check(st == 200, "metrics %d" % st)
    m = re.search(r"^%s (\d+)$" % re.escape(name), body.decode(), re.M)
    return int(m.group(1)) if m else None


def t_ladder(a, tmp):
    edge = Edge(a.edge, tmp, ["--accept-any-key"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "abr", 12, size="1280x720", tmp=tmp)
        master = wait_master(edge, "abr", 20)
        log("first master:\n" + master)
        infs = stream_infs(master)
        res = [x["RESOLUTION"] for x, _ in infs]
        check(res == ["1280x720", "854x480", "640x360"],
              "the first master must list 720p source + 480p + 360p (never 1080p): %r" % res)
        for attrs, uri in infs:
            check(re.fullmatch(r"avc1\.[0-9a-f]{6},mp4a\.40\.2", attrs.get("CODECS", "")),
                  "CODECS of %s: %r" % (uri, attrs.get("CODECS")))
            check(attrs.get("AUDIO") == "audio", "rendition %s has no audio group" % uri)
        check(master.count("#EXT-X-MEDIA:TYPE=AUDIO") == 1, "one shared audio rendition")
        # Let a few segments complete in every rendition.
        uris = [u for _, u in infs]
        for u in uris:
            wait_for(lambda: len(playlist(edge, "/live/abr/" + u)[0].segments) >= 4, 20,
                     "four complete segments of " + u)
        check(metric(edge, "aethex_edge_transcodes_active") == 1, "transcodes_active != 1")
        master = fetch(edge, "/live/abr/index.m3u8").decode()
        log("master after 4 segments:\n" + master)
        infs = stream_infs(master)
        bw = [int(x["BANDWIDTH"]) for x, _ in infs]
        avg = [int(x["AVERAGE-BANDWIDTH"]) for x, _ in infs]
        check(bw[0] > bw[1] > bw[2] and avg[0] > avg[1] > avg[2],
              "BANDWIDTH must fall with the rungs: %r %r" % (bw, avg))
        # Measured, not configured: the 480p/360p AVERAGE-BANDWIDTH minus audio within 35% of
        # what their segments in the playlist weigh (the ring also holds one more segment).
        pls = {u: playlist(edge, "/live/abr/" + u)[0] for u in uris}
        for i, u in enumerate(uris):
            pl = pls[u]
            bits = sum(len(fetch(edge, "/live/abr/%s/%s" % (u.rsplit("/", 1)[0], s[1]))) * 8
                       for s in pl.segments)
            secs = sum(s[3] for s in pl.segments)
            measured = bits / secs
            log("%s: AVERAGE-BANDWIDTH %d, BANDWIDTH %d, segments measured %.0f bit/s" %
                (u, avg[i], bw[i], measured))
            check(0.65 * measured < avg[i] < 1.35 * measured + 200000,
                  "AVERAGE-BANDWIDTH of %s (%d) is not what was produced (%.0f)" %
                  (u, avg[i], measured))
            check(bw[i] >= avg[i], "BANDWIDTH below AVERAGE-BANDWIDTH for " + u)
        # Keyframes and segments line up: same sequence numbers mean the same media time.
        common = set.intersection(*[set(s[0] for s in pls[u].segments) for u in uris])
        check(len(common) >= 3, "renditions share fewer than 3 segment numbers: %r" %
              {u: [s[0] for s in pls[u].segments] for u in uris})
        for msn in sorted(common):
            durs = [next(s[3] for s in pls[u].segments if s[0] == msn) for u in uris]
            check(max(durs) - min(durs) < 0.001, "seg %d durations differ: %r" % (msn, durs))
            nparts = [sum(1 for p in pls[u].parts if p[0] == msn) for u in uris]
            if all(nparts):
                check(len(set(nparts)) == 1, "seg %d part counts differ: %r" % (msn, nparts))
        probe_msns = sorted(common)[-2:]
        keyset = None
        for u in uris:
            base = "/live/abr/" + u.rsplit("/", 1)[0]
            init = re.search(r'#EXT-X-MAP:URI="([^"]+)"', pls[u].text).group(1)
            blob = fetch(edge, base + "/" + init)
            tfdts = []
            for msn in probe_msns:
                seg = fetch(edge, "%s/seg-%d.m4s" % (base, msn))
                tfdts.append(first_times(seg))
                blob += seg
            path = os.path.join(tmp, u.split("/")[0] + ".mp4")
            open(path, "wb").write(blob)
            frames = probe_frames(path)
            keys = [round(t, 3) for t, k in frames if k]
            log("%s: (tfdt, first pts) %r, %d frames, keyframes (ffprobe) at %r" %
                (u, tfdts, len(frames), keys))
            check(frames and frames[0][1] == 1, "%s: a segment does not start with a keyframe" % u)
            check(len(keys) == len(probe_msns), "%s: %d keyframes in %d segments" %
                  (u, len(keys), len(probe_msns)))
            # The CMAF times (tfdt, first sample's presentation time) must be equal; ffprobe's
            # pts carry its own per-file shift for negative composition offsets (which depends
            # on each encoder's B-frame pattern), so from it we compare the keyframe spacing.
            sig = (tuple(tfdts), len(frames), tuple(round(k - keys[0], 3) for k in keys))
            check(keyset is None or sig == keyset,
                  "renditions differ (CMAF times, frame count, keyframe spacing): %r vs %r" %
                  (sig, keyset))
            keyset = sig
        st, h, body = get(edge.http, "/metrics")
        text = body.decode()
        for label in ("480p", "360p"):
            m = re.search(r'aethex_edge_transcode_rung_frames_total\{channel="abr",rung="%s"\} (\d+)'
                          % label, text)
            check(m and int(m.group(1)) > 100, "frames of rung %s in /metrics" % label)
        check(wait_for(lambda: pub.poll() is not None, 20, "publisher to end") is not None, "")
        # After the publish: every rendition's last segment holds all frames (the worker
        # flushed before the timeline closed).
        time.sleep(1.0)
        last = [playlist(edge, "/live/abr/" + u)[0].segments[-1] for u in uris]
        check(len(set((s[0], round(s[3], 3)) for s in last)) == 1,
              "last segments differ after the publish ended: %r" % last)
        rc = edge.stop()
        text = edge.log_text()
        check(rc == 0, "edge exit status %r" % rc)
        check("stopped cleanly" in text and "left open at stop" not in text, "unclean stop")
        check("channel=abr transcoding: 854x480 1200k, 640x360 700k" in text,
              "no 'transcoding:' line in the log")
    finally:
        stop_proc(pub)
        edge.kill()


def t_admission(a, tmp):
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--max-transcodes", "1"])
    p1 = p2 = None
    try:
        # 480p sources (one 360p rung each) keep the host's load low enough that the first
        # stream's worker keeps up, also in an ASan build.
        p1 = publisher(edge.rtmp, "first", 16, size="854x480", tmp=tmp, name="pub1")
        m1 = wait_master(edge, "first", 20)
        check(len(stream_infs(m1)) == 2, "first stream: no ladder:\n" + m1)
        p2 = publisher(edge.rtmp, "second", 8, size="854x480", tmp=tmp, name="pub2")
        m2 = wait_master(edge, "second", 20)
        log("second master:\n" + m2)
        infs = stream_infs(m2)
        check([x["RESOLUTION"] for x, _ in infs] == ["854x480"],
              "the second stream must be served source-only: %r" % infs)
        text = edge.log_text()
        check("channel=second transcode refused: 1 of 1 running (max-transcodes)" in text,
              "refusal not logged")
        check(metric(edge, "aethex_edge_transcodes_refused_total") == 1, "refused_total != 1")
        check(metric(edge, "aethex_edge_transcodes_active") == 1, "active != 1")
        # The first keeps its ladder, and its rungs keep advancing.
        u = stream_infs(m1)[1][1]
        n0 = playlist(edge, "/live/first/" + u)[0].next_msn
        wait_for(lambda: playlist(edge, "/live/first/" + u)[0].next_msn >= n0 + 2, 15,
                 "the first stream's 360p rung to advance")
        m1b = fetch(edge, "/live/first/index.m3u8").decode()
        check(len(stream_infs(m1b)) == 2, "first stream lost its ladder:\n" + m1b)
        check("dropped" not in edge.log_text(), "a rung was dropped")
        check(edge.stop() == 0, "edge did not stop cleanly")
        check("left open at stop" not in edge.log_text(), "handles left open")
    finally:
        stop_proc(p1)
        stop_proc(p2)
        edge.kill()


def t_hlsjs_switch(a, tmp):
    play = os.path.join(ROOT, "tests", "browser", "play.js")
    check(os.path.exists(play), "tests/browser/play.js missing")
    # A 480p source and the default ladder give two levels: 480p (source) and 360p. A 720p
    # source (three levels) plus Chromium decoding is more than a shared 2-core box keeps up
    # with in real time.
    edge = Edge(a.edge, tmp, ["--accept-any-key"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "sw", 40, size="854x480", tmp=tmp)
        master = wait_master(edge, "sw", 20)
        check(len(stream_infs(master)) == 2, "expected 2 levels:\n" + master)
        url = "http://127.0.0.1:%d/live/sw/index.m3u8" % edge.http
        r = subprocess.run(["node", play, "--url", url, "--seconds", "20", "--low-latency",
                            "--switch-levels", "--startup-timeout", "15"],
                           capture_output=True, text=True, timeout=90)
        log("play.js stderr:", r.stderr[-2000:])
        log("play.js:", r.stdout.strip())
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        check(rep.get("ok"), "hls.js did not switch and play cleanly: %s" % r.stdout.strip())
        check(rep.get("level_switches", 0) >= 2, "fewer than 2 level switches")
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        stop_proc(pub)
        edge.kill()


TESTS = {"ladder": t_ladder, "admission": t_admission, "hlsjs_switch": t_hlsjs_switch}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", required=True)
    ap.add_argument("test", choices=sorted(TESTS))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="edge-tc-%s-" % a.test)
    t0 = time.monotonic()
    try:
        TESTS[a.test](a, tmp)
    except Fail as e:
        log("FAIL:", e)
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print("---- %s (tail) ----" % f)
                print("\n".join(open(os.path.join(tmp, f)).read().splitlines()[-40:]))
        print("(logs kept in %s)" % tmp)
        return 1
    log("PASS %s in %.1f s" % (a.test, time.monotonic() - t0))
    if not a.keep:
        subprocess.run(["rm", "-rf", tmp])
    return 0


if __name__ == "__main__":
    sys.exit(main())
