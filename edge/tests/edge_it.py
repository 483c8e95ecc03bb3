#!/usr/bin/env python3
"""Integration tests for aethex-edge with real peers (ffmpeg, ffprobe, curl, hls.js).

    edge_it.py --edge BUILD/edge/aethex-edge TEST

TEST is one of: ffprobe_live, blocking_reload, bad_input, publish_rules, tls_h2, hlsjs_play.
Every server binds 127.0.0.1 port 0 (the edge writes its ports to --ports-file), every wait
has a deadline, and every process started here is stopped here.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def log(*a):
    print("[edge_it %.3f]" % time.monotonic(), *a, flush=True)


# --- processes -------------------------------------------------------------------------------

class Edge:
    def __init__(self, binary, tmp, extra=(), name="edge", standalone=True):
        self.tmp = tmp
        self.ports_file = os.path.join(tmp, name + ".ports")
        self.log_path = os.path.join(tmp, name + ".log")
        args = [binary, "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--ports-file", self.ports_file] + (["--no-coordinator"] if standalone else []) + \
            ["--log-level", "debug", "--shutdown-grace-ms", "3000"] + list(extra)
        self.logf = open(self.log_path, "w")
        log("start", " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        self.ports = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Fail("edge exited at start (%s): %s" % (self.proc.returncode, self.tail()))
            if os.path.exists(self.ports_file):
                kv = dict(l.split("=", 1) for l in open(self.ports_file).read().split())
                self.ports = {k: int(v) for k, v in kv.items()}
                break
            time.sleep(0.05)
        check(self.ports, "edge did not write its ports file in 10 s")
        self.rtmp = self.ports["rtmp"]
        self.http = self.ports["http"]
        self.tls = self.ports["tls"]

    def tail(self, n=40):
        if not self.logf.closed:
            self.logf.flush()
        try:
            return "\n".join(open(self.log_path).read().splitlines()[-n:])
        except OSError:
            return ""

    def log_text(self):
        if not self.logf.closed:
            self.logf.flush()
        return open(self.log_path).read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status (asserts a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Fail("edge did not stop within %d s of SIGTERM" % timeout)
        self.logf.close()
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.logf.closed:
            self.logf.close()


def publisher(port, key, seconds, size="640x360", tmp=None, name="pub"):
    """ffmpeg publishing as OBS would: x264 veryfast, 2 s GOP at 30 fps, 2 B-frames, AAC."""
    args = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=%s:rate=30" % size,
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60",
            "-bf", "2", "-pix_fmt", "yuv420p", "-b:v", "1500k" if size != "1280x720" else "3000k",
            "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac", "2",
            "-f", "flv", "rtmp://127.0.0.1:%d/live/%s" % (port, key)]
    out = open(os.path.join(tmp, name + ".log"), "w") if tmp else subprocess.DEVNULL
    log("publish", key, "for", seconds, "s at", size)
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    p.log_path = os.path.join(tmp, name + ".log") if tmp else None
    return p


def stop_proc(p, timeout=5):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# --- HTTP ------------------------------------------------------------------------------------

def get(port, path, timeout=15, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        c.close()


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (OSError, http.client.HTTPException) as e:
            last = e
        time.sleep(interval)
    raise Fail("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))


def wait_master(edge, channel, timeout=15):
    def ok():
        st, h, body = get(edge.http, "/live/%s/index.m3u8" % channel)
        return body.decode() if st == 200 else None
    return wait_for(ok, timeout, "master playlist of " + channel)


def renditions(master):
    """Media playlist URIs named by a master playlist: [(kind, uri)]."""
    out = []
    for line in master.splitlines():
        m = re.search(r'URI="([^"]+)"', line)
        if line.startswith("#EXT-X-MEDIA") and m:
            out.append(("audio", m.group(1)))
    lines = master.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF") and i + 1 < len(lines):
            out.append(("video", lines[i + 1].strip()))
    return out


def video_playlist_path(edge, channel, master=None):
    master = master or wait_master(edge, channel)
    vids = [u for k, u in renditions(master) if k == "video"]
    check(vids, "master playlist names no video rendition:\n" + master)
    return "/live/%s/%s" % (channel, vids[0])


class Playlist:
    def __init__(self, text):
        self.text = text
        self.media_sequence = int(re.search(r"#EXT-X-MEDIA-SEQUENCE:(\d+)", text).group(1))
        self.segments = []          # (msn, uri, pdt or None, duration)
        self.parts = []             # (msn, index, uri, duration)
        self.preload = None
        self.discontinuities = text.count("#EXT-X-DISCONTINUITY\n") + \
            text.count("#EXT-X-DISCONTINUITY\r\n")
        msn = self.media_sequence
        pidx = 0
        pdt = None
        for line in text.splitlines():
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdt = parse_pdt(line.split(":", 1)[1])
            elif line.startswith("#EXT-X-PART:"):
                uri = re.search(r'URI="([^"]+)"', line).group(1)
                dur = float(re.search(r"DURATION=([\d.]+)", line).group(1))
                self.parts.append((msn, pidx, uri, dur, pdt))
                pidx += 1
            elif line.startswith("#EXTINF:"):
                self.cur_dur = float(line[8:].split(",")[0])
            elif line and not line.startswith("#"):
                self.segments.append((msn, line, pdt, self.cur_dur))
                if pdt is not None:
                    pdt += self.cur_dur
                msn += 1
                pidx = 0
            elif line.startswith("#EXT-X-PRELOAD-HINT:"):
                self.preload = re.search(r'URI="([^"]+)"', line).group(1)
        self.next_msn = msn  # the segment in progress

    def last_part(self):
        return self.parts[-1] if self.parts else None


def parse_pdt(s):
    # 2026-11-26T09:15:02.123Z
    from datetime import datetime, timezone
    s = s.strip().replace("Z", "+00:00")
    return datetime.fromisoformat(s).timestamp()


def playlist(edge, path, query=""):
    st, h, body = get(edge.http, path + query)
    check(st == 200, "GET %s%s -> %d %r" % (path, query, st, body[:200]))
    return Playlist(body.decode()), h


# --- raw RTMP ------------------------------------------------------------------------------

def rtmp_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def rtmp_handshake(s):
    c1 = b"\x00" * 8 + os.urandom(1528)
    s.sendall(b"\x03" + c1)
    need = 1 + 1536 + 1536
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < need and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            raise Fail("edge closed during a valid handshake")
        got += d
    check(len(got) >= need, "no S0S1S2")
    s1 = got[1:1537]
    s.sendall(s1)  # C2 echoes S1


def chunk0(csid, ts, mlen, mtype, msid):
    return bytes([csid & 0x3f]) + ts.to_bytes(3, "big") + mlen.to_bytes(3, "big") + \
        bytes([mtype]) + struct.pack("<I", msid)


def chunked(csid, mtype, body, chunk_size=128, msid=0):
    out = chunk0(csid, 0, len(body), mtype, msid) + body[:chunk_size]
    for i in range(chunk_size, len(body), chunk_size):
        out += bytes([0xC0 | csid]) + body[i:i + chunk_size]
    return out


def amf_str(s):
    b = s.encode()
    return b"\x02" + len(b).to_bytes(2, "big") + b


def amf_num(v):
    return b"\x00" + struct.pack(">d", v)


def amf_obj(pairs):
    out = b"\x03"
    for k, v in pairs:
        kb = k.encode()
        out += len(kb).to_bytes(2, "big") + kb + amf_str(v)
    return out + b"\x00\x00\x09"


def rtmp_publish_no_media(port, key):
    """A raw client that connects and publishes `key` but sends no media (yet)."""
    s = rtmp_connect(port)
    rtmp_handshake(s)
    connect = amf_str("connect") + amf_num(1) + amf_obj(
        [("app", "live"), ("type", "nonprivate"), ("tcUrl", "rtmp://127.0.0.1/live")])
    s.sendall(chunked(3, 20, connect))
    s.sendall(chunked(3, 20, amf_str("createStream") + amf_num(2) + b"\x05"))
    time.sleep(0.3)
    s.sendall(chunked(4, 20, amf_str("publish") + amf_num(0) + b"\x05" + amf_str(key) +
                      amf_str("live"), msid=1))
    return s


def closed_within(s, seconds):
    """True if the peer closes (or resets) `s` within `seconds`; drains what it sends."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
            if not d:
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def send_all_tolerant(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# --- tests -----------------------------------------------------------------------------------

def t_ffprobe_live(a, tmp):
    # The source alone (the ladder has its own tests, transcode_it.py): a 720p ladder next to
    # other tests' encoders could fall behind and drop rungs this test waits for.
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--transcode", "off"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "probe1", 14, size="1280x720", tmp=tmp)
        master = wait_master(edge, "probe1", 15)
        # Not transcoding: the transcoder module (and libavcodec with its ~100 shared
        # objects) is never loaded.
        maps = open("/proc/%d/maps" % edge.proc.pid).read()
        check("aethex-transcode.so" not in maps and "libavcodec" not in maps,
              "--transcode off, yet the transcoder or libavcodec is mapped")
        log("master playlist:\n" + master)
        check("CODECS=" in master and "avc1." in master and "mp4a.40" in master,
              "master lacks CODECS avc1/mp4a")
        check("RESOLUTION=1280x720" in master, "master lacks RESOLUTION=1280x720")
        # ffmpeg's HLS demuxer knows nothing of parts and crashes on a playlist with no
        # complete segment (ffmpeg 5.1): wait for two, as a player that ignores LL-HLS would.
        for kind, uri in renditions(master):
            wait_for(lambda: len(playlist(edge, "/live/probe1/" + uri)[0].segments) >= 2, 12,
                     "two complete %s segments" % kind)
        url = "http://127.0.0.1:%d/live/probe1/index.m3u8" % edge.http
        r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%+3",
                            "-count_frames", "-show_entries",
                            "stream=codec_type,codec_name,width,height,nb_read_frames",
                            "-of", "json", url], capture_output=True, text=True, timeout=40)
        log("ffprobe:", r.stdout, r.stderr[-2000:])
        check(r.returncode == 0, "ffprobe failed: " + r.stderr[-2000:])
        streams = json.loads(r.stdout)["streams"]
        v = [s for s in streams if s.get("codec_type") == "video"]
        au = [s for s in streams if s.get("codec_type") == "audio"]
        check(v and v[0]["codec_name"] == "h264" and v[0]["width"] == 1280 and
              v[0]["height"] == 720, "no 1280x720 h264 stream: %r" % streams)
        check(int(v[0].get("nb_read_frames", 0)) >= 30,
              "ffprobe decoded too few video frames: %r" % v[0])
        check(au and au[0]["codec_name"] == "aac", "no AAC stream: %r" % streams)
        check(int(au[0].get("nb_read_frames", 0)) >= 20,
              "ffprobe decoded too few audio frames: %r" % au[0])
        st, h, body = get(edge.http, "/metrics")
        check(st == 200 and b"aethex_edge_streams_live 1" in body, "metrics: %r" % body[:300])
        # Graceful stop while the publisher is still live and a blocking request is held.
        path = video_playlist_path(edge, "probe1")
        pl, _ = playlist(edge, path)
        held = http.client.HTTPConnection("127.0.0.1", edge.http, timeout=10)
        held.request("GET", path + "?_HLS_msn=%d" % (pl.next_msn + 1))
        time.sleep(0.3)
        rc = edge.stop()
        text = edge.log_text()
        check(rc == 0, "edge exit status %r after SIGTERM" % rc)
        check("stopped cleanly" in text, "no clean stop in the log:\n" + edge.tail())
        check("left open at stop" not in text, "handles left open at stop")
        try:
            resp = held.getresponse()
            check(resp.status == 503, "held request answered %d at stop" % resp.status)
        except (http.client.HTTPException, OSError):
            raise Fail("held request was dropped without an answer at stop")
        check(wait_for(lambda: pub.poll() is not None, 10, "publisher to end"), "")
        check("channel=probe1 closed: server stopping" in text, "publisher not told to stop")
    finally:
        stop_proc(pub)
        edge.kill()


def t_blocking_reload(a, tmp):
    hold_ms = 1500
    # 1 s segment target: TARGETDURATION 2, so CAN-SKIP-UNTIL is 12 s and a 24 s window
    # gives delta updates something to skip within the test's time.
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--hold-timeout-ms", str(hold_ms),
                              "--segment-ms", "1000", "--window-segments", "12"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "block1", 24, tmp=tmp)
        path = video_playlist_path(edge, "block1")
        pl, _ = playlist(edge, path)
        check("CAN-BLOCK-RELOAD=YES" in pl.text, "no CAN-BLOCK-RELOAD")
        # Let a few segments accumulate so that the timing is steady.
        wait_for(lambda: playlist(edge, path)[0].next_msn >= 2, 12, "two segments")
        lat = []
        held = []
        for _ in range(12):
            pl, _ = playlist(edge, path)
            lp = pl.last_part()
            check(lp, "no parts in the playlist")
            msn, idx = lp[0], lp[1]
            # The part after the last one listed: the next index of this segment (when the
            # segment is cut first, the server answers with the next segment's part 0).
            q = "?_HLS_msn=%d&_HLS_part=%d" % (msn, idx + 1)
            t0 = time.time()
            st, h, body = get(edge.http, path + q, timeout=10)
            t1 = time.time()
            check(st == 200, "blocking request -> %d" % st)
            npl = Playlist(body.decode())
            got = [p for p in npl.parts if (p[0], p[1]) > (msn, idx)]
            check(got, "blocking reload returned early: no part after %d.%d\n%s" %
                  (msn, idx, body.decode()[-600:]))
            check("max-age" in h.get("cache-control", ""), "no Cache-Control on playlist")
            # When did the part's media reach the server? PROGRAM-DATE-TIME + media time gives
            # the wall time of the part's end on the server's own clock.
            p = got[0]
            seg_pdt = [s for s in npl.segments if s[0] == p[0]]
            start = seg_pdt[0][2] if seg_pdt else None
            if start is None:
                # Segment in progress: its PDT is the previous segment's PDT + duration.
                prev = [s for s in npl.segments if s[0] == p[0] - 1]
                if prev and prev[0][2] is not None:
                    start = prev[0][2] + prev[0][3]
            if start is not None:
                end = start + sum(x[3] for x in npl.parts if x[0] == p[0] and x[1] <= p[1])
                lat.append((t1 - end) * 1000)
            held.append((t1 - t0) * 1000)
        log("held ms:", ["%.0f" % x for x in held])
        log("return - part end ms:", ["%.0f" % x for x in lat])
        check(len(lat) >= 6, "could not time the parts (no PROGRAM-DATE-TIME?)")
        lat.sort()
        med = lat[len(lat) // 2]
        check(sum(1 for x in held if x > 50) >= len(held) // 2,
              "blocking requests were not held (answered at once)")
        check(med < 200, "median part availability %.0f ms after its media end (>= 200)" % med)
        check(lat[-1] < 400, "worst part availability %.0f ms after its media end" % lat[-1])
        # "Not early" is checked above (the answer lists the part). The clock comparison can
        # go negative: PROGRAM-DATE-TIME is anchored at the first frame's arrival, which
        # carries the encoder's start-up jitter; a large negative value would mean a broken
        # anchor, not an early answer.
        check(lat[0] > -250, "part end %.0f ms after its answer: PDT anchor off" % -lat[0])
        check(lat[-1] - lat[0] < 300, "availability jitter %.0f ms" % (lat[-1] - lat[0]))
        # Too far ahead: the spec's 400.
        pl, _ = playlist(edge, path)
        st, _, _ = get(edge.http, path + "?_HLS_msn=%d" % (pl.next_msn + 10))
        check(st == 400, "far-ahead msn -> %d, want 400" % st)
        st, _, _ = get(edge.http, path + "?_HLS_part=1")
        check(st == 400, "_HLS_part without _HLS_msn -> %d, want 400" % st)
        # Delta updates: once the playlist is longer than CAN-SKIP-UNTIL, _HLS_skip=YES
        # replaces the old segments by EXT-X-SKIP, and the rest matches the full playlist.
        def delta():
            st, _, body = get(edge.http, path + "?_HLS_skip=YES")
            check(st == 200 and b"#EXTM3U" in body, "_HLS_skip=YES -> %d" % st)
            return body.decode() if "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in body.decode() else None
        text = wait_for(delta, 15, "a delta update with EXT-X-SKIP")
        full, _ = playlist(edge, path)
        skipped = int(re.search(r"SKIPPED-SEGMENTS=(\d+)", text).group(1))
        check(0 < skipped < len(full.segments) + 2, "skipped %d segments" % skipped)
        check(len(text) < len(full.text), "the delta update is not smaller than the playlist")
        body = text.encode()
        # Parts are immutable.
        lp = Playlist(body.decode()).last_part()
        st, h, body = get(edge.http, path.rsplit("/", 1)[0] + "/" + lp[2])
        check(st == 200 and len(body) > 0, "part fetch -> %d" % st)
        check("immutable" in h.get("cache-control", ""), "part not immutable: %r" % h)
        check(h.get("access-control-allow-origin") == "*", "no CORS header on part")
        # A viewer that leaves while held: over HTTP/2 its stream goes away with the
        # connection, h2o disposes of the request and the hold is cancelled at once (well
        # before the hold timeout or the media could answer it).
        def holds():
            _, _, body = get(edge.http, "/metrics")
            return int(re.search(rb"aethex_edge_blocking_holds (\d+)", body).group(1))
        pl, _ = playlist(edge, path)
        url = "http://127.0.0.1:%d%s?_HLS_msn=%d" % (edge.http, path, pl.next_msn + 1)
        c = subprocess.Popen(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", url])
        wait_for(lambda: holds() == 1, 2, "the request to be held")
        c.kill()
        c.wait()
        t0 = time.monotonic()
        wait_for(lambda: holds() == 0, 1.0, "the hold to be dropped with its viewer")
        log("hold dropped %.0f ms after the viewer left" % ((time.monotonic() - t0) * 1000))
        # The hold timeout: once the publisher is gone, a request for the next part is
        # answered 503 after about hold-timeout-ms.
        stop_proc(pub)
        pub = None
        time.sleep(0.5)
        pl, _ = playlist(edge, path)
        lp = pl.last_part()
        t0 = time.time()
        st, _, _ = get(edge.http, path + "?_HLS_msn=%d&_HLS_part=%d" % (lp[0], lp[1] + 1))
        dt = (time.time() - t0) * 1000
        check(st == 503, "held request without media -> %d, want 503" % st)
        check(hold_ms - 300 < dt < hold_ms + 1500, "hold timeout after %.0f ms" % dt)
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        stop_proc(pub)
        edge.kill()


def t_bad_input(a, tmp):
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--rtmp-handshake-ms", "2000",
                              "--http-req-timeout-ms", "2000", "--max-rtmp-conns", "6",
                              "--max-http-conns", "24"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "good", 40, tmp=tmp)
        path = video_playlist_path(edge, "good")
        state = {"last": None}

        def advanced():
            """The good stream keeps playing: its last part moves forward."""
            def moved():
                lp = playlist(edge, path)[0].last_part()
                key = (lp[0], lp[1]) if lp else None
                if state["last"] is None or (key and key > state["last"]):
                    state["last"] = key
                    return True
                return False
            wait_for(moved, 5, "the good stream's playlist to advance")
            check(edge.alive(), "edge died")

        advanced()

        def attack(name, fn, within, reason):
            log("attack:", name)
            before = edge.log_text().count(reason)
            t0 = time.monotonic()
            s = rtmp_connect(edge.rtmp)
            try:
                fn(s)
                check(closed_within(s, within), "%s: connection not closed within %.1f s" %
                      (name, within))
            finally:
                s.close()
            log("  closed after %.2f s" % (time.monotonic() - t0))
            wait_for(lambda: edge.log_text().count(reason) > before, 2,
                     "the close reason '%s' in the log" % reason)
            advanced()

        attack("garbage bytes", lambda s: send_all_tolerant(s, b"\x07" + os.urandom(4095)), 3,
               "closed: EPROTO: handshake")
        attack("broken handshake (C1 cut short, then silence)",
               lambda s: send_all_tolerant(s, b"\x03" + os.urandom(700)), 5,
               "closed: not publishing 2000 ms after accept")

        def oversized(s):
            rtmp_handshake(s)
            send_all_tolerant(s, chunk0(3, 0, 0xFFFFFF, 20, 0) + b"\x02" * 128)
        attack("oversized chunk (16 MiB message)", oversized, 3, "closed: EMSGSIZE")

        def deep_amf(s):
            rtmp_handshake(s)
            body = amf_str("connect") + amf_num(1)
            body += (b"\x03" + b"\x00\x01a") * 5000  # objects nested 5000 deep (20 KB)
            send_all_tolerant(s, chunked(3, 20, body))
        attack("endless AMF nesting", deep_amf, 3, "closed: ETOODEEP")

        def tiny_chunks(s):
            rtmp_handshake(s)
            # Set Chunk Size 1, then a 60000-byte message in 1-byte chunks (120 KB of headers
            # and bytes), then thousands of chunk streams.
            send_all_tolerant(s, chunk0(2, 0, 4, 1, 0) + struct.pack(">I", 1))
            body = amf_str("connect") + amf_num(1) + b"\x05" * 60000
            flood = chunk0(3, 0, len(body), 20, 0) + body[:1]
            flood += b"".join(b"\xC3" + body[i:i + 1] for i in range(1, len(body)))
            send_all_tolerant(s, flood)
            many = b"".join(bytes([1]) + (i & 0xff).to_bytes(1, "big") + chunk0(0, 0, 100, 9, 1)[1:]
                            + b"\x00" for i in range(64, 64 + 4000))
            send_all_tolerant(s, many)
        attack("flood of tiny chunks", tiny_chunks, 5, "channel=- closed: ")

        # Connection floods: past max-rtmp-conns / max-http-conns new connections are closed
        # at accept, and the good stream keeps going.
        log("attack: RTMP connection flood")
        socks = [rtmp_connect(edge.rtmp) for _ in range(20)]
        closed = sum(1 for s in socks if closed_within(s, 0.3))
        for s in socks:
            s.close()
        check(closed >= 20 - 5, "only %d of 20 flood connections were refused" % closed)
        advanced()
        log("attack: HTTP connection flood")
        socks = [socket.create_connection(("127.0.0.1", edge.http), timeout=5) for _ in range(40)]
        closed = sum(1 for s in socks if closed_within(s, 0.2))
        for s in socks:
            s.close()
        check(closed >= 40 - 24, "only %d of 40 HTTP flood connections were refused" % closed)
        time.sleep(0.3)
        advanced()
        st, _, body = get(edge.http, "/metrics")
        m = re.search(rb"aethex_edge_rtmp_refused_total (\d+)", body)
        check(m and int(m.group(1)) >= 15, "rtmp_refused_total %r" % (m and m.group(1)))

        # Slowloris: a request trickling in a byte at a time is cut off by h2o's timeout.
        log("attack: slowloris HTTP")
        s = socket.create_connection(("127.0.0.1", edge.http), timeout=5)
        req = b"GET /live/good/index.m3u8 HTTP/1.1\r\nHost: x\r\nX-Slow: "
        t0 = time.monotonic()
        closed = False
        s.settimeout(0.3)
        for i in range(40):
            try:
                s.sendall(req[i:i + 1] if i < len(req) else b"a")
                d = s.recv(4096)
                if not d or b"HTTP/1.1 " in d:
                    closed = True
                    break
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        dt = time.monotonic() - t0
        s.close()
        check(closed, "slowloris connection still open after %.1f s" % dt)
        log("  cut after %.2f s" % dt)
        advanced()

        # Paths: "..", overlong, bad method.
        def raw_http(line):
            s = socket.create_connection(("127.0.0.1", edge.http), timeout=5)
            s.sendall(line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
        st = raw_http(b"GET /live/good/../../../etc/passwd HTTP/1.1")
        check(st == 400, "path with .. -> %r, want 400" % st)
        st = raw_http(b"GET /live/%2e%2e/%2e%2e/etc/passwd HTTP/1.1")
        check(st == 400, "escaped .. -> %r, want 400" % st)
        st = raw_http(b"GET /live/good/" + b"a" * 5000 + b" HTTP/1.1")
        check(st in (400, 414), "overlong path -> %r" % st)
        st = raw_http(b"DELETE /live/good/index.m3u8 HTTP/1.1")
        check(st == 405, "DELETE -> %r, want 405" % st)
        advanced()
        st, _, body = get(edge.http, "/metrics")
        m = re.search(rb"aethex_edge_rtmp_errors_total (\d+)", body)
        check(m and int(m.group(1)) >= 5, "metrics count %r RTMP errors" % (m and m.group(1)))
        check(edge.alive(), "edge died")
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        stop_proc(pub)
        edge.kill()


def t_publish_rules(a, tmp):
    key = "k" + os.urandom(12).hex()
    keys = os.path.join(tmp, "keys")
    with open(keys, "w") as f:
        f.write("# test keys\ndemo %s\n" % key)
    edge = Edge(a.edge, tmp, ["--keys-file", keys, "--publisher-takeover-ms", "1500"])
    pubs = []
    try:
        # An unknown key is refused.
        bad = publisher(edge.rtmp, "not-a-key-at-all", 5, tmp=tmp, name="bad")
        pubs.append(bad)
        wait_for(lambda: bad.poll() is not None, 8, "the unknown-key publisher to be refused")
        check(bad.returncode != 0, "publisher with an unknown key exited 0")
        check("publish refused: unknown stream key" in edge.log_text(), "no refusal logged")
        check("Server error: unknown stream key" in open(bad.log_path).read(),
              "the publisher was not told why: " + open(bad.log_path).read())
        # A player that asks for the master while the publish has no media yet is held until
        # the stream has its first part. Here a raw client publishes and then goes silent
        # (an encoder whose network died without a FIN): after publisher-takeover-ms the
        # real publisher replaces it, brings the media, and the held master is answered.
        raw = rtmp_publish_no_media(edge.rtmp, key)
        wait_for(lambda: "channel=demo publish started" in edge.log_text(), 5, "the raw publish")
        early = http.client.HTTPConnection("127.0.0.1", edge.http, timeout=20)
        early.request("GET", "/live/demo/index.m3u8")
        time.sleep(1.7)
        # The right key publishes to channel "demo"; the key never appears in a URL.
        first = publisher(edge.rtmp, key, 9, tmp=tmp, name="first")
        pubs.append(first)
        wait_for(lambda: "stale publisher (silent" in edge.log_text(), 8,
                 "the silent publisher to be replaced")
        check(closed_within(raw, 3), "the replaced publisher's connection stayed open")
        raw.close()
        resp = early.getresponse()
        body = resp.read().decode()
        check(resp.status == 200 and "#EXT-X-STREAM-INF" in body,
              "early master request -> %d %r" % (resp.status, body[:200]))
        path = video_playlist_path(edge, "demo")
        st, _, _ = get(edge.http, "/live/%s/index.m3u8" % key)
        check(st == 404, "the key is served as a channel (%d)" % st)
        check(key not in edge.log_text(), "the stream key was logged")
        # A second publisher on the live key is refused; the first keeps going.
        second = publisher(edge.rtmp, key, 6, tmp=tmp, name="second")
        pubs.append(second)
        wait_for(lambda: second.poll() is not None, 8, "the second publisher to be refused")
        check(second.returncode != 0, "second publisher on a live key exited 0")
        check("stream already live" in edge.log_text(), "no 'already live' refusal logged")
        check("Server error: stream already live" in open(second.log_path).read(),
              "the second publisher was not told why: " + open(second.log_path).read())
        check(first.poll() is None, "the first publisher was disturbed")
        pl1, _ = playlist(edge, path)
        check(pl1.discontinuities == 0, "discontinuity before any reconnect")
        wait_for(lambda: first.poll() is not None, 15, "the first publisher to finish")
        time.sleep(0.5)
        before, _ = playlist(edge, path)
        # Reconnect with the same key: the same playlists continue after a discontinuity.
        third = publisher(edge.rtmp, key, 8, tmp=tmp, name="third")
        pubs.append(third)

        def continued():
            pl, _ = playlist(edge, path)
            return pl if pl.discontinuities >= 1 and pl.next_msn > before.next_msn + 1 else None
        after = wait_for(continued, 15, "EXT-X-DISCONTINUITY after the reconnect")
        check(after.media_sequence >= before.media_sequence,
              "media sequence went back: %d -> %d" % (before.media_sequence, after.media_sequence))
        master = wait_master(edge, "demo")
        check(path.endswith([u for k, u in renditions(master) if k == "video"][0]),
              "the reconnect changed the rendition URLs")
        # SIGHUP re-reads the keys file: a channel added to it can publish at once.
        key2 = "k" + os.urandom(12).hex()
        with open(keys, "a") as f:
            f.write("second-ch %s\n" % key2)
        edge.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keys reloaded: 2 channel(s)" in edge.log_text(), 5, "the keys reload")
        fourth = publisher(edge.rtmp, key2, 5, tmp=tmp, name="fourth")
        pubs.append(fourth)
        wait_master(edge, "second-ch", 10)
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        for p in pubs:
            stop_proc(p)
        edge.kill()


def t_tls_h2(a, tmp):
    cert = os.path.join(tmp, "cert.pem")
    keyf = os.path.join(tmp, "key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyf, "-out", cert,
                        "-days", "1", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "openssl: " + r.stderr)
    edge = Edge(a.edge, tmp, ["--accept-any-key", "--tls-listen", "127.0.0.1:0",
                              "--tls-cert", cert, "--tls-key", keyf])
    pub = None
    try:
        check(edge.tls > 0, "no TLS port")
        pub = publisher(edge.rtmp, "tls1", 12, tmp=tmp)
        path = video_playlist_path(edge, "tls1")

        def curl(url, *extra):
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "-o", os.path.join(tmp, "out"),
                                "-w", "%{http_code} %{http_version}", *extra, url],
                               capture_output=True, text=True, timeout=20)
            check(r.returncode == 0, "curl %s: %s" % (url, r.stderr))
            code, ver = r.stdout.split()
            return int(code), ver, open(os.path.join(tmp, "out"), "rb").read()
        base = "https://127.0.0.1:%d" % edge.tls
        code, ver, body = curl(base + path, "--http2", "--cacert", cert)
        check(code == 200 and ver == "2", "TLS h2 playlist: %d HTTP/%s" % (code, ver))
        pl = Playlist(body.decode())
        code, ver, body = curl(base + path.rsplit("/", 1)[0] + "/" + pl.last_part()[2],
                               "--http2", "--cacert", cert)
        check(code == 200 and ver == "2" and len(body) > 100, "TLS h2 part: %d %s" % (code, ver))
        code, ver, _ = curl(base + "/metrics", "--http1.1", "--cacert", cert)
        check(code == 200 and ver == "1.1", "TLS http/1.1: %d %s" % (code, ver))
        # Cleartext: HTTP/2 with prior knowledge on the loopback listener.
        code, ver, body = curl("http://127.0.0.1:%d%s" % (edge.http, path),
                               "--http2-prior-knowledge")
        check(code == 200 and ver == "2", "h2c: %d HTTP/%s" % (code, ver))
        # CORS preflight.
        r = subprocess.run(["curl", "-sS", "-i", "-X", "OPTIONS", "--max-time", "5",
                            "-H", "Origin: http://example.com",
                            "-H", "Access-Control-Request-Method: GET",
                            "http://127.0.0.1:%d%s" % (edge.http, path)],
                           capture_output=True, text=True, timeout=10)
        low = r.stdout.lower()
        check(" 204" in low.splitlines()[0] and "access-control-allow-origin: *" in low and
              "access-control-allow-methods" in low, "preflight: " + r.stdout[:400])
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        stop_proc(pub)
        edge.kill()


def t_hlsjs_play(a, tmp):
    play = os.path.join(ROOT, "tests", "browser", "play.js")
    check(os.path.exists(play), "tests/browser/play.js missing")
    edge = Edge(a.edge, tmp, ["--accept-any-key"])
    pub = None
    try:
        pub = publisher(edge.rtmp, "hlsjs", 40, tmp=tmp)  # 360p: the browser decodes on a busy 2-core box
        master = wait_master(edge, "hlsjs", 15)
        # The master comes with the first part; a media playlist asked for then waits for the
        # first complete segment (hls.js calls a playlist of parts only an empty level).
        t0 = time.monotonic()
        first, _ = playlist(edge, video_playlist_path(edge, "hlsjs", master))
        log("first media playlist after %.2f s: %d segment(s), %d part(s)" %
            (time.monotonic() - t0, len(first.segments), len(first.parts)))
        check(first.segments, "the first media playlist lists no complete segment:\n" + first.text)
        url = "http://127.0.0.1:%d/live/hlsjs/index.m3u8" % edge.http
        r = subprocess.run(["node", play, "--url", url, "--seconds", "20", "--low-latency",
                            "--startup-timeout", "15"],
                           capture_output=True, text=True, timeout=80)
        log("play.js stderr:", r.stderr[-1500:])
        log("play.js:", r.stdout.strip())
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        check(rep.get("ok"), "hls.js did not play cleanly: %s" % r.stdout.strip())
        check(not [e for e in rep.get("errors", []) if "levelEmptyError" in e],
              "hls.js saw an empty level: %r" % rep.get("errors"))
        log("hls.js start-up %s s, latency to the live edge %s s" % (rep.get("startup_s"),
                                                                      rep.get("latency_s")))
        check(edge.stop() == 0, "edge did not stop cleanly")
    finally:
        stop_proc(pub)
        edge.kill()


TESTS = {
    "ffprobe_live": t_ffprobe_live,
    "blocking_reload": t_blocking_reload,
    "bad_input": t_bad_input,
    "publish_rules": t_publish_rules,
    "tls_h2": t_tls_h2,
    "hlsjs_play": t_hlsjs_play,
}


def run_main(tests, prefix, tail=30):
    """The command line of the *_it.py scripts: --edge BIN [--keep] TEST; a temp dir per run,
    removed on success, kept (with the tails of its logs printed) on failure."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--edge", required=True)
    ap.add_argument("test", choices=sorted(tests))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="%s-%s-" % (prefix, a.test))
    t0 = time.monotonic()
    try:
        tests[a.test](a, tmp)
    except Fail as e:
        log("FAIL:", e)
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print("---- %s (tail) ----" % f)
                print("\n".join(open(os.path.join(tmp, f)).read().splitlines()[-tail:]))
        print("(logs kept in %s)" % tmp)
        return 1
    log("PASS %s in %.1f s" % (a.test, time.monotonic() - t0))
    if not a.keep:
        subprocess.run(["rm", "-rf", tmp])
    return 0


def main():
    return run_main(TESTS, "edge-it")


if __name__ == "__main__":
    sys.exit(main())
