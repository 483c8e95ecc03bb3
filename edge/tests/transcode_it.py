#!/usr/bin/env python3
"""Integration tests of the edge's transcoding ladder (issue 8) with real peers.

    transcode_it.py --edge BUILD/edge/aethex-edge TEST

TEST is one of: ladder, admission, hlsjs_switch, drop, drop_hlsjs, reconnect
(ctest edge.transcode_<TEST>). Uses
edge_it.py's helpers (an edge on port 0, ffmpeg publishers, HTTP with deadlines).
"""
import json
import os
import re
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from edge_it import (ROOT, Edge, Fail, Playlist, check, get, log, playlist,  # noqa: E402
                     publisher, run_main, stop_proc, wait_for, wait_master)


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
    # Transcoding on needs the module: a missing or foreign one stops the start with a reason.
    for path, why in (("/nonexistent/aethex-transcode.so", "cannot open shared object"),
                      (a.edge, "cannot dynamically load")):
        r = subprocess.run([a.edge, "--accept-any-key", "--no-coordinator", "--rtmp-listen",
                            "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--transcode-module",
                            path], capture_output=True, text=True, timeout=10)
        log("--transcode-module %s: exit %d: %s" % (path, r.returncode, r.stderr.strip()))
        check(r.returncode == 2 and "transcoder module" in r.stderr and why in r.stderr,
              "a bad --transcode-module did not stop the start with a reason")
    edge = Edge(a.edge, tmp, ["--accept-any-key"])
    pub = None
    try:
        check("transcoder module loaded: " in edge.log_text(), "module load not logged")
        maps = open("/proc/%d/maps" % edge.proc.pid).read()
        check("aethex-transcode.so" in maps and "libavcodec" in maps, "module not mapped")
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
        stop_clean(edge)
    finally:
        stop_proc(p1)
        stop_proc(p2)
        edge.kill()


def t_hlsjs_switch(a, tmp):
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
        rep = play_hlsjs(url, "--seconds", "20", "--low-latency", "--switch-levels",
                         "--startup-timeout", "15")
        check(rep.get("ok"), "hls.js did not switch and play cleanly: %s" % rep.get("failures"))
        check(rep.get("level_switches", 0) >= 2, "fewer than 2 level switches")
        stop_clean(edge)
    finally:
        stop_proc(pub)
        edge.kill()


def rendition_dir(uri):
    return uri.rsplit("/", 1)[0]


def stop_clean(edge):
    """SIGTERM: exit status 0 and no libuv handle left open."""
    check(edge.stop() == 0, "edge did not stop cleanly")
    check("left open at stop" not in edge.log_text(), "handles left open")


def play_hlsjs(url, *args):
    """tests/browser/play.js on `url` with `args`: its JSON report."""
    play = os.path.join(ROOT, "tests", "browser", "play.js")
    check(os.path.exists(play), "tests/browser/play.js missing")
    r = subprocess.run(["node", play, "--url", url] + list(args), capture_output=True, text=True,
                       timeout=120)
    log("play.js stderr:", r.stderr[-2000:])
    log("play.js:", r.stdout.strip()[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def t_drop(a, tmp):
    """A worker that cannot keep up drops its lowest rung, then the next: each one is withdrawn
    (404, gone from the master and from the reports, held requests answered at once), the
    source never waits, and the next publish is not transcoded while the host is short of CPU.
    Overload for real: libx264's placebo preset is far slower than real time for a 720p source
    on any machine we run on."""
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--x264-preset", "placebo"])
    pub = pub2 = None
    held = {}
    try:
        pub = publisher(edge.rtmp, "drop", 40, size="1280x720", tmp=tmp)
        master = wait_master(edge, "drop", 20)
        log("first master:\n" + master)
        uris = [u for _, u in stream_infs(master)]
        check(len(uris) == 3, "expected source + 480p + 360p:\n" + master)
        src, r480, r360 = uris

        # A viewer on 360p: blocking reloads for its next part, until it is withdrawn.
        def hold_360():
            q = "?_HLS_msn=0&_HLS_part=0"
            for _ in range(400):
                t0 = time.monotonic()
                st, h, body = get(edge.http, "/live/drop/" + r360 + q, timeout=30)
                held.update(status=st, body=body, secs=time.monotonic() - t0,
                            at=time.monotonic(), n=held.get("n", 0) + 1)
                if st != 200:
                    return
                pl = Playlist(body.decode())
                m = re.match(r"part-(\d+)\.(\d+)\.m4s", pl.preload or "")
                if not m:
                    return
                q = "?_HLS_msn=%s&_HLS_part=%s" % m.groups()
        import threading
        th = threading.Thread(target=hold_360)
        th.start()

        def dropped(label):
            return ("rendition %s withdrawn (the transcoder fell behind real time)" %
                    rendition_dir(label)) in edge.log_text()
        wait_for(lambda: dropped(r360), 30, "360p to be dropped and withdrawn")
        t_drop360 = time.monotonic()
        wait_for(lambda: dropped(r480), 30, "480p to be dropped and withdrawn")
        th.join(35)
        text = edge.log_text()
        check(re.search(r"channel=drop behind real time \(frame waited \d+ ms, \d+ queued\): "
                        r"rung 1 dropped", text), "the 360p drop is not logged with its cause")
        log("360p viewer: %d requests, the last one %d after %.2f s" %
            (held.get("n", 0), held.get("status", 0), held.get("secs", -1)))
        check(held.get("status") == 404 and b"withdrawn" in held["body"],
              "the held 360p request did not end in a 404 naming the withdrawal: %r" % held)
        check(held["at"] <= t_drop360 + 1.0,
              "the held request was not answered when 360p was withdrawn")
        for u in (r360, r480):
            st, h, body = get(edge.http, "/live/drop/" + u)
            check(st == 404 and b"withdrawn" in body, "GET %s after the drop -> %d %r" %
                  (u, st, body[:120]))
        master = fetch(edge, "/live/drop/index.m3u8").decode()
        check([u for _, u in stream_infs(master)] == [src],
              "the master still lists withdrawn renditions:\n" + master)
        check(metric(edge, "aethex_edge_transcode_rungs_dropped_total") == 2, "dropped_total != 2")

        # The source never waited on the transcoder: over 6 s of wall time its playlist
        # advanced by about 6 s of media, and no report names a withdrawn rendition.
        def media_end(pl):
            return sum(p[3] for p in pl.parts if p[0] >= pl.segments[-1][0] + 1) + \
                (pl.segments[-1][2] or 0) + pl.segments[-1][3]
        pl0, _ = playlist(edge, "/live/drop/" + src)
        w0 = time.monotonic()
        time.sleep(6)
        pl1, _ = playlist(edge, "/live/drop/" + src)
        advanced = media_end(pl1) - media_end(pl0)
        wall = time.monotonic() - w0
        log("source advanced %.2f s of media in %.2f s" % (advanced, wall))
        check(advanced > wall - 1.0, "the source fell behind real time: %.2f s in %.2f s" %
              (advanced, wall))
        check(rendition_dir(r360) not in pl1.text and rendition_dir(r480) not in pl1.text,
              "a rendition report names a withdrawn rendition:\n" + pl1.text)

        # The publisher reconnects: no transcode while the host is short of CPU, and the
        # withdrawn renditions are forgotten.
        stop_proc(pub)
        pub = None
        pub2 = publisher(edge.rtmp, "drop", 12, size="1280x720", tmp=tmp, name="pub2")
        wait_for(lambda: "channel=drop transcode refused: a worker fell behind" in
                 edge.log_text(), 20, "the reconnect to be refused a transcode")
        pl, _ = playlist(edge, "/live/drop/" + src)
        n0 = pl.next_msn
        wait_for(lambda: playlist(edge, "/live/drop/" + src)[0].next_msn >= n0 + 2, 15,
                 "the source to advance after the reconnect")
        pl, _ = playlist(edge, "/live/drop/" + src)
        check(pl.discontinuities >= 1, "no discontinuity after the reconnect:\n" + pl.text)
        master = fetch(edge, "/live/drop/index.m3u8").decode()
        check([u for _, u in stream_infs(master)] == [src], "master after reconnect:\n" + master)
        stop_clean(edge)
    finally:
        stop_proc(pub)
        stop_proc(pub2)
        edge.kill()


def t_drop_hlsjs(a, tmp):
    """hls.js starts on the lowest rung of a stream whose worker cannot keep up: each rung it
    tries is withdrawn under it, it moves on, and it then plays the source without a stall."""
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--x264-preset", "placebo"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "droph", 45, size="1280x720", tmp=tmp)
        master = wait_master(edge, "droph", 20)
        check(len(stream_infs(master)) == 3, "expected 3 levels:\n" + master)
        url = "http://127.0.0.1:%d/live/droph/index.m3u8" % edge.http
        rep = play_hlsjs(url, "--seconds", "15", "--low-latency", "--settle", "2",
                         "--startup-timeout", "25", "--hls-config", '{"startLevel":0}')
        check(rep.get("ok"), "hls.js did not keep playing: %s" % rep.get("failures"))
        text = edge.log_text()
        check("withdrawn (the transcoder fell behind real time)" in text, "no rung was dropped")
        withdrawn_404 = [e for e in rep.get("errors", []) if "http=404" in e]
        log("404s hls.js saw:", withdrawn_404[:6])
        switches = rep.get("level_switch_log") or []
        log("level switches:", switches)
        check(rep["levels"] and max(l["height"] or 0 for l in rep["levels"]) == 720, "levels")
        # Where it ended up: the source (the only level left).
        check(rep.get("playlist", {}).get("level") is not None, "no level loaded")
        top = max(range(len(rep["levels"])), key=lambda i: rep["levels"][i]["bitrate"] or 0)
        check(rep["playlist"]["level"] == top, "hls.js is not on the source at the end: %r" %
              rep["playlist"])
        stop_clean(edge)
    finally:
        stop_proc(pub)
        edge.kill()


def t_reconnect(a, tmp):
    """A publisher that reconnects keeps its viewers' renditions: the same URIs continue after
    one EXT-X-DISCONTINUITY with segment numbers, durations and keyframes still lined up.
    A reconnect with a smaller source withdraws the rungs the new ladder lacks; a rung that
    comes back later gets a new name and the source's segment numbers."""
    edge = Edge(a.edge, tmp, ["--accept-any-key"])
    pub = None
    try:
        def publish(size, seconds, name):
            p = publisher(edge.rtmp, "rc", seconds, size=size, tmp=tmp, name=name)
            check(wait_for(lambda: p.poll() is not None, seconds + 20, name + " to end") is not
                  None, "")
            return p

        def lined_up(uris, what):
            pls = {u: playlist(edge, "/live/rc/" + u)[0] for u in uris}
            common = set.intersection(*[set(s[0] for s in pls[u].segments) for u in uris])
            check(len(common) >= 2, "%s: renditions share < 2 segment numbers: %r" %
                  (what, {u: [s[0] for s in pls[u].segments] for u in uris}))
            for msn in sorted(common):
                durs = [next(s[3] for s in pls[u].segments if s[0] == msn) for u in uris]
                check(max(durs) - min(durs) < 0.001, "%s: seg %d durations differ: %r" %
                      (what, msn, durs))
            tf = {}
            for u in uris:
                seg = fetch(edge, "/live/rc/%s/seg-%d.m4s" % (rendition_dir(u), max(common)))
                tf[u] = first_times(seg)
            check(len(set(tf.values())) == 1, "%s: first sample times differ: %r" % (what, tf))
            return pls

        pub = publish("1280x720", 9, "pub1")
        m1 = fetch(edge, "/live/rc/index.m3u8").decode()
        u1 = [u for _, u in stream_infs(m1)]
        check(len(u1) == 3, "first publish: expected 3 renditions:\n" + m1)
        time.sleep(1)
        pub = publish("1280x720", 9, "pub2")
        m2 = fetch(edge, "/live/rc/index.m3u8").decode()
        check([u for _, u in stream_infs(m2)] == u1, "the second publish did not continue the "
              "same renditions:\n%s\nvs\n%s" % (m1, m2))
        pls = lined_up(u1, "after reconnect")
        for u in u1:
            check(pls[u].discontinuities == 1 or "#EXT-X-DISCONTINUITY-SEQUENCE:1" in pls[u].text,
                  "%s: expected one discontinuity:\n%s" % (u, pls[u].text))
        # Decodable after the discontinuity, keyframes included.
        for u in u1:
            pl = pls[u]
            init = re.findall(r'#EXT-X-MAP:URI="([^"]+)"', pl.text)[-1]
            base = "/live/rc/" + rendition_dir(u)
            blob = fetch(edge, base + "/" + init) + fetch(edge, "%s/seg-%d.m4s" %
                                                           (base, pl.segments[-1][0]))
            path = os.path.join(tmp, "rc-%s.mp4" % rendition_dir(u))
            open(path, "wb").write(blob)
            frames = probe_frames(path)
            check(len(frames) >= 30 and frames[0][1] == 1, "%s: last segment after the "
                  "reconnect does not decode from a keyframe (%d frames)" % (u, len(frames)))

        # A 480p source: its ladder is 360p only. 480p is withdrawn, 360p continues.
        time.sleep(1)
        pub = publish("854x480", 9, "pub3")
        m3 = fetch(edge, "/live/rc/index.m3u8").decode()
        u3 = [u for _, u in stream_infs(m3)]
        log("master after the 480p publish:\n" + m3)
        check(u3 == [u1[0], u1[2]], "expected the source and the same 360p:\n" + m3)
        st, h, body = get(edge.http, "/live/rc/" + u1[1])
        check(st == 404 and b"withdrawn" in body, "old 480p playlist -> %d" % st)
        check("rendition %s withdrawn (not in this ladder)" % rendition_dir(u1[1]) in
              edge.log_text(), "the withdrawal is not logged")
        lined_up(u3, "after the 480p publish")

        # 720p again: 360p continues, 480p comes back under a new name, numbered like the
        # source; the withdrawn one is gone for good.
        time.sleep(1)
        pub = publish("1280x720", 9, "pub4")
        m4 = fetch(edge, "/live/rc/index.m3u8").decode()
        u4 = [u for _, u in stream_infs(m4)]
        log("master after the second 720p publish:\n" + m4)
        check(len(u4) == 3 and u4[0] == u1[0] and u4[2] == u1[2] and u4[1] != u1[1],
              "expected source, a new 480p, the same 360p:\n" + m4)
        check(u4[1].startswith("480p-") and rendition_dir(u4[1]).endswith("-4"),
              "new 480p name: %s" % u4[1])
        st, h, body = get(edge.http, "/live/rc/%s/seg-0.m4s" % rendition_dir(u1[1]))
        check(st == 404, "the forgotten 480p still serves segments (%d)" % st)
        pls = lined_up(u4, "after the second 720p publish")
        check(pls[u4[1]].media_sequence > 0, "the new 480p did not take the source's numbers")
        stop_clean(edge)
    finally:
        stop_proc(pub)
        edge.kill()


TESTS = {"ladder": t_ladder, "admission": t_admission, "hlsjs_switch": t_hlsjs_switch,
         "drop": t_drop, "drop_hlsjs": t_drop_hlsjs, "reconnect": t_reconnect}


def main():
    return run_main(TESTS, "edge-tc", tail=40)


if __name__ == "__main__":
    sys.exit(main())
