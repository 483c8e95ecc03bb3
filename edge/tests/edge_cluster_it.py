#!/usr/bin/env python3
"""Integration tests for aethex-edge with other edges and a coordinator (issue 7, edge side).

    edge_cluster_it.py --edge BUILD/edge/aethex-edge [--coordinator BIN --ctl BIN] TEST

TEST is one of:
  relay                 edge A (origin) and edge B (--relay-origin A): ffmpeg publishes to A,
                        ffprobe plays through B; 50 concurrent blocking-reload viewers on B and
                        A serves each playlist/part once (A's and B's /metrics)
  coordinator_publish   one coordinator + one edge in coordinator mode: a key from
                        `aethexctl keys create` publishes and plays; a wrong key gets BadName;
                        the stream row is live, then ended with a duration
  coordinator_loss      the coordinator is killed while a stream plays: the playlist keeps
                        advancing; the edge registers again when the coordinator is back

Helpers (processes, HTTP, playlists) come from edge_it.py beside this file. Every server binds
127.0.0.1 port 0 or a probed free port, every wait has a deadline, every process started here
is stopped here.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edge_it as it  # noqa: E402
from edge_it import Fail, check, log, get, wait_for, stop_proc  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def edge_flags(binary):
    """Flags this build knows (the transcoder may or may not be in it)."""
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    extra = []
    if "--transcode" in out:
        extra += ["--transcode", "off"]  # one rendition: the tests are about delivery
    return extra


class Edge(it.Edge):
    """edge_it.Edge, optionally in coordinator mode (no --no-coordinator)."""

    def __init__(self, binary, tmp, extra=(), name="edge", coordinator=False):
        super().__init__(binary, tmp, list(extra) + edge_flags(binary), name,
                         standalone=not coordinator)


def metrics(port):
    st, h, body = get(port, "/metrics")
    check(st == 200, "/metrics -> %d" % st)
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        k, v = line.rsplit(" ", 1)
        out[k] = float(v)
    return out


def ffprobe(edge, channel, seconds=3):
    """ffprobe decodes H.264 and AAC from the channel's master playlist on `edge`."""
    import json
    master = it.wait_master(edge, channel, 20)
    # ffmpeg's HLS demuxer knows nothing of parts and fails on a playlist with no complete
    # segment (ffmpeg 5.1): wait for two, as edge_it's ffprobe_live does.
    for kind, uri in it.renditions(master):
        wait_for(lambda: len(it.playlist(edge, "/live/%s/%s" % (channel, uri))[0].segments) >= 2,
                 15, "two complete %s segments" % kind)
    url = "http://127.0.0.1:%d/live/%s/index.m3u8" % (edge.http, channel)
    r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%%+%d" % seconds,
                        "-count_frames", "-show_entries",
                        "stream=codec_type,codec_name,nb_read_frames", "-of", "json", url],
                       capture_output=True, text=True, timeout=40)
    log("ffprobe:", r.stdout.replace("\n", " ")[:600], r.stderr[-500:])
    check(r.returncode == 0, "ffprobe %s failed (%d): %s" % (url, r.returncode, r.stderr[-1500:]))
    streams = json.loads(r.stdout).get("streams", [])
    v = [x for x in streams if x.get("codec_type") == "video"]
    au = [x for x in streams if x.get("codec_type") == "audio"]
    check(v and v[0].get("codec_name") == "h264" and int(v[0].get("nb_read_frames", 0)) >= 30,
          "ffprobe did not decode h264 video: %r" % streams)
    check(au and au[0].get("codec_name") == "aac" and int(au[0].get("nb_read_frames", 0)) >= 30,
          "ffprobe did not decode aac audio: %r" % streams)


# --- relay ---------------------------------------------------------------------------------

def t_relay(a, tmp):
    A = Edge(a.edge, tmp, ["--accept-any-key"], name="edgeA")
    B = Edge(a.edge, tmp, ["--relay-origin", "http://127.0.0.1:%d" % A.http], name="edgeB")
    pub = None
    try:
        ch = "relaytest"
        # Nothing is live yet: B asks A, A says 404, B passes it on (and caches nothing).
        st, _, _ = get(B.http, "/live/%s/index.m3u8" % ch)
        check(st == 404, "relay of a channel live nowhere -> %d, want 404" % st)
        pub = it.publisher(A.rtmp, ch, 45, size="320x180", tmp=tmp)
        master = it.wait_master(B, ch, timeout=20)
        check("#EXT-X-STREAM-INF" in master, "master through B:\n" + master)
        vpath = it.video_playlist_path(B, ch, master)
        ffprobe(B, ch)

        # Fan-out: N viewers on B ask for the next part with a blocking reload, then for the
        # part itself, for several parts in a row. A must see one request per resource.
        N = int(os.environ.get("RELAY_VIEWERS", "50"))  # 200: the fan-out figure
        ROUNDS = 4
        pl, _ = it.playlist(B, vpath)
        last = pl.last_part()
        check(last is not None, "no parts in B's playlist:\n" + pl.text)
        msn, idx = last[0], last[1]
        mA0, mB0 = metrics(A.http), metrics(B.http)
        reqA0 = mA0.get('aethex_edge_channel_requests_total{channel="%s"}' % ch, 0)
        errors = []
        hint = pl.preload
        for rnd in range(ROUNDS):
            # The next part is the one the last answer hinted (EXT-X-PRELOAD-HINT): a
            # blocking reload for it waits at the origin about one part duration, while all
            # N viewers ask for it at once.
            check(hint, "no preload hint")
            m = re.search(r"part-(\d+)\.(\d+)\.m4s", hint)
            msn, idx = int(m.group(1)), int(m.group(2))
            q = "?_HLS_msn=%d&_HLS_part=%d" % (msn, idx)
            results = [None] * N
            texts = [None] * N
            part_name = hint.rsplit("/", 1)[-1]

            def viewer(i):
                try:
                    st, h, body = get(B.http, vpath + q, timeout=20)
                    if st != 200:
                        results[i] = "playlist %d" % st
                        return
                    text = body.decode()
                    texts[i] = text
                    if ("part-%d.%d.m4s" % (msn, idx)) not in text:
                        results[i] = "playlist lacks the part"
                        return
                    base = vpath.rsplit("/", 1)[0]
                    st, h, body = get(B.http, "%s/%s" % (base, part_name), timeout=20)
                    results[i] = None if st == 200 and len(body) > 0 else "part %d" % st
                except Exception as e:  # noqa: BLE001 - reported below
                    results[i] = repr(e)

            threads = [threading.Thread(target=viewer, args=(i,)) for i in range(N)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            errs = [r for r in results if r]
            log("round %d: part %d.%d, %d viewers in %.2f s, errors %r" %
                (rnd, msn, idx, N, time.monotonic() - t0, errs[:3]))
            errors += errs
            got = [t for t in texts if t]
            hint = it.Playlist(got[0]).preload if got else None
        check(not errors, "viewers on B failed: %r" % errors[:5])
        mA1, mB1 = metrics(A.http), metrics(B.http)
        reqA = mA1.get('aethex_edge_channel_requests_total{channel="%s"}' % ch, 0) - reqA0
        upB = (mB1["aethex_edge_relay_upstream_requests_total"] -
               mB0["aethex_edge_relay_upstream_requests_total"])
        served = mB1["aethex_edge_relay_requests_total"] - mB0["aethex_edge_relay_requests_total"]
        log("fan-out: B served %d requests, pulled %d from A; A served %d media requests" %
            (served, upB, reqA))
        check(served >= 2 * N * ROUNDS, "B served too few: %d" % served)
        # Per round: the blocking playlist and the part, once each.
        check(upB <= 2 * ROUNDS, "B pulled %d times for %d rounds: not single-flight" %
              (upB, ROUNDS))
        check(reqA <= upB, "A served %d media requests but B pulled %d" % (reqA, upB))
        check(mB1["aethex_edge_relay_coalesced_total"] > mB0["aethex_edge_relay_coalesced_total"],
              "no request joined a pull in flight")

        # The origin disappears: viewers of B get 502/503/504, never a hang; B recovers
        # nothing to serve, so it keeps answering errors until A is back (here: never).
        stop_proc(pub)
        pub = None
        A.kill()
        time.sleep(0.3)
        codes = set()
        for i in range(4):
            st, _, _ = get(B.http, vpath + "?_HLS_msn=%d&_HLS_part=%d" % (msn + 5, 0), timeout=20)
            codes.add(st)
        log("origin gone: B answered", codes)
        check(codes <= {502, 503, 504, 400}, "with the origin gone B answered %r" % codes)
        check(B.alive(), "B died with its origin")
        check(B.stop() == 0, "B did not stop cleanly:\n" + B.tail())
    finally:
        stop_proc(pub)
        A.kill()
        B.kill()


def t_relay_hlsjs(a, tmp):
    """hls.js in headless Chromium plays a channel of edge A through edge B (relay)."""
    import json
    play = os.path.join(it.ROOT, "tests", "browser", "play.js")
    check(os.path.exists(play), "tests/browser/play.js missing")
    A = Edge(a.edge, tmp, ["--accept-any-key"], name="edgeA")
    B = Edge(a.edge, tmp, ["--relay-origin", "http://127.0.0.1:%d" % A.http], name="edgeB")
    pub = None
    try:
        pub = it.publisher(A.rtmp, "relayjs", 45, tmp=tmp)
        it.wait_master(B, "relayjs", 20)
        url = "http://127.0.0.1:%d/live/relayjs/index.m3u8" % B.http
        # The player starts within the stream's first seconds, ~1 s behind the live edge
        # (PART-HOLD-BACK) and two hops from the encoder: its first ~2 s after start are
        # start-up (play.js reports stalls there as startup_stalls; some runs froze 0.5 s at
        # +1.4 s when the first playlist came at the first segment's end alone). The window
        # checks steady play.
        r = subprocess.run(["node", play, "--url", url, "--seconds", "20", "--low-latency",
                            "--settle", "2", "--startup-timeout", "15"],
                           capture_output=True, text=True, timeout=80)
        log("play.js stderr:", r.stderr[-1500:])
        log("play.js:", r.stdout.strip())
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        check(rep.get("ok"), "hls.js did not play cleanly through the relay: %s" % r.stdout.strip())
        log("hls.js start-up stalls through the relay: %r" % rep.get("startup_stalls"))
        log("hls.js latency through the relay: %s s" % rep.get("latency_s"))
        m = metrics(B.http)
        log("B relay: requests %d pulls %d hits %d coalesced %d" % (
            m["aethex_edge_relay_requests_total"], m["aethex_edge_relay_upstream_requests_total"],
            m["aethex_edge_relay_hits_total"], m["aethex_edge_relay_coalesced_total"]))
        check(B.stop() == 0, "B did not stop cleanly:\n" + B.tail())
    finally:
        stop_proc(pub)
        A.kill()
        B.kill()


# --- coordinator ---------------------------------------------------------------------------

SECRET = "relay-test-cluster-secret-0123456789abcdef"


class Coordinator:
    def __init__(self, binary, tmp, name="coord", rpc_port=None, sql_port=None):
        self.binary, self.tmp, self.name = binary, tmp, name
        self.sql = sql_port or free_port()
        self.rpc = rpc_port or free_port()
        self.http = free_port()
        self.data = os.path.join(tmp, name + "-data")
        self.secret_file = os.path.join(tmp, "cluster.secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        self.proc = None
        self.start()

    def start(self):
        self.log_path = os.path.join(self.tmp, self.name + ".log")
        self.logf = open(self.log_path, "a")
        args = [self.binary, "--address", "127.0.0.1:%d" % self.sql, "--data-dir", self.data,
                "--http", "127.0.0.1:%d" % self.http, "--rpc-listen", "127.0.0.1:%d" % self.rpc,
                "--cluster-secret-file", self.secret_file, "--log-level", "debug"]
        log("start", " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)
        def ready():
            if self.proc.poll() is not None:
                raise Fail("coordinator exited (%s): %s" % (self.proc.returncode, self.tail()))
            st, _, body = get(self.http, "/metrics", timeout=2)
            return st == 200 and re.search(rb"aethex_coordinator_ready 1", body)
        wait_for(ready, 30, "coordinator ready")

    def tail(self, n=40):
        self.logf.flush()
        return "\n".join(open(self.log_path).read().splitlines()[-n:])

    def ctl(self, *args, check_rc=True):
        r = subprocess.run([a.ctl, "--coordinator", "127.0.0.1:%d" % self.sql] + list(args),
                           capture_output=True, text=True, timeout=30)
        log("aethexctl", " ".join(args), "->", r.returncode, r.stdout.strip()[:300],
            r.stderr.strip()[:300])
        if check_rc:
            check(r.returncode == 0, "aethexctl %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.logf.closed:
            self.logf.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.logf.closed:
            self.logf.close()


a = None  # parsed arguments (Coordinator.ctl uses the aethexctl path)


def create_key(co, slug):
    """`aethexctl keys create <slug>`: the key is printed once; returns it."""
    r = co.ctl("keys", "create", slug)
    keys = re.findall(r"\b([A-Za-z0-9_-]{40,})\b", r.stdout)
    check(keys, "no key in aethexctl keys create output: %r" % r.stdout)
    return keys[-1]


def coord_edge(co, tmp, name="edge", region="eu-west"):
    return Edge(a.edge, tmp, ["--coordinator", "127.0.0.1:%d" % co.rpc, "--edge-id", name,
                              "--authorize-timeout-ms", "2000",
                              "--region", region, "--cluster-secret-file", co.secret_file,
                              "--capacity-viewers", "1000", "--capacity-streams", "10"],
                name=name, coordinator=True)


def registered(edge):
    return metrics(edge.http).get("aethex_edge_coordinator_registered", 0) == 1


def t_coordinator_publish(a_, tmp):
    co = Coordinator(a.coordinator, tmp)
    E = None
    pub = bad = None
    try:
        co.ctl("channels", "create", "cochan", "--owner", "tester")
        key = create_key(co, "cochan")
        E = coord_edge(co, tmp)
        wait_for(lambda: registered(E), 15, "edge registered")
        # A wrong key: BadName, and nothing goes live.
        bad = it.publisher(E.rtmp, "not-a-key-" + "x" * 40, 10, size="320x180", tmp=tmp,
                           name="badpub")
        bad.wait(20)
        badlog = open(bad.log_path).read()
        check(bad.returncode != 0, "ffmpeg with a wrong key succeeded")
        check("BadName" in badlog or "badname" in badlog.lower(),
              "ffmpeg's error does not say BadName:\n" + badlog[-1500:])
        pub = it.publisher(E.rtmp, key, 25, size="320x180", tmp=tmp)
        it.wait_master(E, "cochan", timeout=20)
        ffprobe(E, "cochan")
        check(key not in E.log_text(), "the stream key appears in the edge's log")
        q = ("SELECT 'ROW', s.status, s.ended_at, s.duration_seconds FROM streams s JOIN "
             "channels c ON c.id = s.channel_id WHERE c.slug = 'cochan'")
        def live_row():
            r = co.ctl("query", q, check_rc=False)
            return r.returncode == 0 and re.search(r"^ROW\|live\|", r.stdout, re.M) and r.stdout
        wait_for(live_row, 10, "a live stream row for cochan")
        # Heartbeats carry the load: three more viewers (connections) of cochan, and the
        # coordinator's registry shows this edge with one live stream and those viewers.
        for _ in range(3):
            get(E.http, "/live/cochan/index.m3u8")
        def edge_row():
            r = co.ctl("edges", check_rc=False)
            m = re.search(r"^edge\s+eu-west\s+healthy\s+\S+\s+(\d+)/\S*\s+(\d+)\s", r.stdout,
                          re.M)
            return m and int(m.group(2)) == 1 and int(m.group(1)) >= 3 and m.group(0)
        log("registry:", wait_for(edge_row, 10, "the edge's heartbeat (1 live, >= 3 viewers)"))
        # Revoking the key stops its publisher (the coordinator pushes KeyRevoked).
        co.ctl("keys", "revoke", "cochan")
        wait_for(lambda: "stream key revoked" in E.log_text(), 15, "the publisher kicked")
        wait_for(lambda: pub.poll() is not None, 10, "ffmpeg told the stream is over")
        pub = None
        qe = q + " AND s.ended_at IS NOT NULL AND s.duration_seconds IS NOT NULL"
        def ended():
            r = co.ctl("query", qe, check_rc=False)
            return (r.returncode == 0 and re.search(r"^ROW\|ended\|\d+\|\d+", r.stdout, re.M)
                    and r.stdout)
        out = wait_for(ended, 15, "the stream row ended with a duration")
        log("ended row:", out.strip())
        check(E.stop() == 0, "edge did not stop cleanly:\n" + E.tail())
    finally:
        stop_proc(pub)
        stop_proc(bad)
        if E:
            E.kill()
        co.kill()


def t_coordinator_loss(a_, tmp):
    co = Coordinator(a.coordinator, tmp)
    E = None
    pub = None
    try:
        co.ctl("channels", "create", "losschan", "--owner", "tester")
        key = create_key(co, "losschan")
        E = coord_edge(co, tmp)
        wait_for(lambda: registered(E), 15, "edge registered")
        pub = it.publisher(E.rtmp, key, 40, size="320x180", tmp=tmp)
        vpath = it.video_playlist_path(E, "losschan")
        pl0, _ = it.playlist(E, vpath)
        co.kill()
        log("coordinator killed")
        wait_for(lambda: not registered(E), 10, "edge notices the coordinator is gone")
        seen = set()
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end:
            pl, _ = it.playlist(E, vpath)
            seen.add(pl.next_msn)
            time.sleep(0.5)
        check(max(seen) >= pl0.next_msn + 2,
              "playlist stopped advancing without the coordinator: %r" % sorted(seen))
        check(pub.poll() is None, "the publisher was dropped when the coordinator died")
        # A new publish meanwhile cannot be authorised: refused (Rejected) after the bounded
        # wait (--authorize-timeout-ms 2000), not left hanging.
        t0 = time.monotonic()
        s = it.rtmp_publish_no_media(E.rtmp, key)
        s.settimeout(0.5)
        data = b""
        while time.monotonic() - t0 < 8:
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            data += d
        s.close()
        waited = time.monotonic() - t0
        log("publish without a coordinator: %r after %.1f s" %
            (re.findall(rb"NetStream\.[A-Za-z.]+", data), waited))
        check(b"NetStream.Publish.Rejected" in data and b"no coordinator reachable" in data,
              "publish without a coordinator was not refused as unreachable: %r" % data[-300:])
        check(1.5 < waited < 7, "refused after %.1f s, want about 2 s" % waited)
        co.start()
        wait_for(lambda: registered(E), 20, "edge registered again")
        pl1, _ = it.playlist(E, vpath)
        check(pl1.next_msn > max(seen) - 1, "playlist went back after the reconnect")
        check(E.stop() == 0, "edge did not stop cleanly:\n" + E.tail())
    finally:
        stop_proc(pub)
        if E:
            E.kill()
        co.kill()


TESTS = {
    "relay": t_relay,
    "relay_hlsjs": t_relay_hlsjs,
    "coordinator_publish": t_coordinator_publish,
    "coordinator_loss": t_coordinator_loss,
}


def main():
    global a
    p = argparse.ArgumentParser()
    p.add_argument("--edge", required=True)
    p.add_argument("--coordinator")
    p.add_argument("--ctl")
    p.add_argument("test", choices=sorted(TESTS))
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="edge_cluster_it_")
    ok = False
    try:
        TESTS[a.test](a, tmp)
        ok = True
        log("PASS", a.test)
    except Fail as e:
        log("FAIL", a.test, ":", e)
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print("----- %s (tail)" % f)
                print("\n".join(open(os.path.join(tmp, f), errors="replace")
                                .read().splitlines()[-30:]))
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
