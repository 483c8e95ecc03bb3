#!/usr/bin/env python3
"""cluster.platform_e2e: the whole platform with real peers (issue 7, "Tests with real peers").

    platform_e2e.py --edge BIN --coordinator BIN --ctl BIN

All on 127.0.0.1, free ports, one temporary directory:
 1. three coordinators (one cluster secret, RPC listeners); edge A (region eu) and edge B
    (region us) in coordinator mode, each given all three RPC addresses; `aethexctl channels
    create demo --owner alice` and `keys create demo`.
 2. a wrong key to A is refused (ffmpeg exits non-zero, BadName); ffmpeg publishes the real key
    to A (x264 veryfast -g 60 -bf 2, AAC, -re).
 3. a coordinator's `GET /live/demo/index.m3u8?region=eu` answers 302 to A, `?region=us` 302 to
    B; ffprobe decodes H.264 + AAC through each redirect (B serves by relay from A); hls.js
    (tests/browser/play.js) plays the region=us URL through B without a stall.
 4. kill -9 B: within a bounded time (heartbeat expiry, 3 s) region=us is routed to A.
 5. kill -9 the coordinator leader: A's media playlist keeps advancing for >= 5 s after the
    kill, a survivor reports a new leader, every surviving coordinator still answers 302 to A,
    and A registers with the new leader. The coordinators' RPC ports are their dqlite ports
    + 1 (the same offset on every node), the convention by which a follower's NotLeader names
    the leader's RPC address (docs/coordinator.md).

Helpers (edges, playlists, HTTP, ffmpeg) come from edge/tests/edge_it.py and
edge_cluster_it.py. Every wait has a deadline; every process started here is killed at the
end (also on SIGTERM/SIGINT from ctest).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "edge", "tests"))
import edge_it as it  # noqa: E402
import edge_cluster_it as eci  # noqa: E402
from edge_it import Fail, check, log, get, wait_for, stop_proc  # noqa: E402

SECRET = "platform-e2e-cluster-secret-0123456789abcdef"


TAKEN = set()


def free_pair():
    """A free port p with p + 1 also free, apart from the pairs handed out already."""
    while True:
        p = random.randint(20000, 60000)
        if p in TAKEN or p + 1 in TAKEN or p - 1 in TAKEN:
            continue
        try:
            x, y = socket.socket(), socket.socket()
            try:
                x.bind(("127.0.0.1", p))
                y.bind(("127.0.0.1", p + 1))
            finally:
                x.close()
                y.close()
        except OSError:
            continue
        TAKEN.update((p, p + 1))
        return p


class Node:
    """One aethex-coordinator: SQL (dqlite), RPC and HTTP on free loopback ports."""

    def __init__(self, binary, tmp, name, secret_file):
        self.binary, self.tmp, self.name, self.secret_file = binary, tmp, name, secret_file
        # RPC at dqlite port + 1 on every node: a follower names the leader's RPC address by
        # that convention in NotLeader (docs/coordinator.md); random RPC ports would break it.
        self.sql = free_pair()
        self.rpc, self.http = self.sql + 1, eci.free_port()
        self.log_path = os.path.join(tmp, name + ".log")
        self.proc = None

    def start(self, join=None):
        self.logf = open(self.log_path, "a")
        args = [self.binary, "--address", "127.0.0.1:%d" % self.sql,
                "--data-dir", os.path.join(self.tmp, self.name + "-data"),
                "--http", "127.0.0.1:%d" % self.http, "--rpc-listen", "127.0.0.1:%d" % self.rpc,
                "--cluster-secret-file", self.secret_file, "--log-level", "debug"]
        if join:
            args += ["--join", join]
        log("start", " ".join(args))
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT)

    def ready(self):
        if self.proc.poll() is not None:
            raise Fail("%s exited (%s)" % (self.name, self.proc.returncode))
        self.logf.flush()
        return " ready " in open(self.log_path, errors="replace").read()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Platform:
    def __init__(self, a, tmp):
        self.a, self.tmp = a, tmp
        self.secret_file = os.path.join(tmp, "cluster.secret")
        with open(self.secret_file, "w") as f:
            f.write(SECRET + "\n")
        self.nodes = [Node(a.coordinator, tmp, "n%d" % i, self.secret_file) for i in (1, 2, 3)]
        self.edges = []
        self.procs = []

    def members(self, nodes=None):
        return ",".join("127.0.0.1:%d" % n.sql for n in (nodes or self.nodes))

    def ctl(self, *args, nodes=None, check_rc=True, quiet=False):
        r = subprocess.run([self.a.ctl, "--coordinator", self.members(nodes)] + list(args),
                           capture_output=True, text=True, timeout=30)
        if not quiet:
            log("aethexctl", " ".join(args), "->", r.returncode, r.stdout.strip()[:300],
                r.stderr.strip()[:300])
        if check_rc:
            check(r.returncode == 0, "aethexctl %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def leader(self, nodes):
        r = self.ctl("--json", "--timeout-ms", "1500", "cluster", "status", nodes=nodes,
                     check_rc=False, quiet=True)
        try:
            d = json.loads(r.stdout)
            if d["leader"]["id"] != "0":
                return d["leader"]["address"]
        except (ValueError, KeyError, TypeError):
            pass
        return None

    def kill_all(self):
        for p in self.procs:
            stop_proc(p)
        for e in self.edges:
            e.kill()
        for n in self.nodes:
            n.kill()


def route(node, region):
    """(status, Location) of a coordinator's watch redirect for the viewer region."""
    st, h, _ = get(node.http, "/live/demo/index.m3u8?region=%s" % region, timeout=5)
    return st, h.get("location", "")


def curl_location(node, region):
    """The 302 as curl sees it (status and redirect URL, not followed)."""
    url = "http://127.0.0.1:%d/live/demo/index.m3u8?region=%s" % (node.http, region)
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "5",
                        "-w", "%{http_code} %{redirect_url}", url],
                       capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


def ffprobe_url(url, seconds=3):
    r = subprocess.run(["ffprobe", "-v", "error", "-read_intervals", "%%+%d" % seconds,
                        "-count_frames", "-show_entries",
                        "stream=codec_type,codec_name,nb_read_frames", "-of", "json", url],
                       capture_output=True, text=True, timeout=45)
    log("ffprobe", url, ":", r.stdout.replace("\n", " ")[:400], r.stderr[-300:])
    check(r.returncode == 0, "ffprobe %s failed (%d): %s" % (url, r.returncode, r.stderr[-1500:]))
    streams = json.loads(r.stdout).get("streams", [])
    v = [x for x in streams if x.get("codec_type") == "video"]
    au = [x for x in streams if x.get("codec_type") == "audio"]
    check(v and v[0].get("codec_name") == "h264" and int(v[0].get("nb_read_frames", 0)) >= 30,
          "ffprobe %s did not decode h264 video: %r" % (url, streams))
    check(au and au[0].get("codec_name") == "aac" and int(au[0].get("nb_read_frames", 0)) >= 30,
          "ffprobe %s did not decode aac audio: %r" % (url, streams))


def run(a, tmp):
    P = Platform(a, tmp)
    try:
        # 1. the cluster, the edges, the channel and its key
        n1, n2, n3 = P.nodes
        n1.start()
        wait_for(n1.ready, 30, "n1 ready")
        n2.start(join="127.0.0.1:%d,127.0.0.1:%d" % (n1.sql, n3.sql))
        n3.start(join="127.0.0.1:%d,127.0.0.1:%d" % (n1.sql, n2.sql))
        wait_for(n2.ready, 30, "n2 ready")
        wait_for(n3.ready, 30, "n3 ready")
        wait_for(lambda: P.leader(None), 20, "a leader")
        P.ctl("channels", "create", "demo", "--owner", "alice")
        key = eci.create_key(P, "demo")
        rpcs = ",".join("127.0.0.1:%d" % n.rpc for n in P.nodes)

        def edge(name, region):
            e = eci.Edge(a.edge, tmp, ["--coordinator", rpcs, "--edge-id", name,
                                       "--region", region, "--cluster-secret-file",
                                       P.secret_file, "--authorize-timeout-ms", "8000"],
                         name=name, coordinator=True)
            P.edges.append(e)
            return e
        A = edge("edge-a", "eu")
        B = edge("edge-b", "us")
        wait_for(lambda: eci.registered(A) and eci.registered(B), 20, "both edges registered")
        log("cluster of 3 up; A http %d, B http %d" % (A.http, B.http))

        # 2. a wrong key is refused; the real key publishes
        bad = it.publisher(A.rtmp, "not-a-key-" + "x" * 40, 10, size="320x180", tmp=tmp,
                           name="badpub")
        P.procs.append(bad)
        bad.wait(30)
        badlog = open(bad.log_path).read()
        check(bad.returncode != 0, "ffmpeg with a wrong key succeeded")
        check("badname" in badlog.lower(), "ffmpeg's error does not say BadName:\n" + badlog[-1500:])
        pub = it.publisher(A.rtmp, key, 150, size="320x180", tmp=tmp)
        P.procs.append(pub)
        master = it.wait_master(A, "demo", 25)
        for kind, uri in it.renditions(master):
            wait_for(lambda: len(it.playlist(A, "/live/demo/%s" % uri)[0].segments) >= 2,
                     20, "two complete %s segments on A" % kind)
        check(key not in A.log_text(), "the stream key appears in edge A's log")

        # 3. routing: 302 to A for eu, to B for us; ffprobe through each; hls.js through B
        base_a = "http://127.0.0.1:%d/" % A.http
        base_b = "http://127.0.0.1:%d/" % B.http
        wait_for(lambda: route(n1, "eu")[1].startswith(base_a), 15, "region=eu routed to A")
        wait_for(lambda: route(n1, "us")[1].startswith(base_b), 15, "region=us routed to B")
        for n in P.nodes:
            for region, base in (("eu", base_a), ("us", base_b)):
                c = wait_for(lambda: (lambda s: s.startswith("302 " + base) and s)(
                    curl_location(n, region)), 10, "%s: curl sees 302 to %s" % (n.name, base))
                log("curl %s region=%s -> %s" % (n.name, region, c))
        mB0 = eci.metrics(B.http)
        for region in ("eu", "us"):
            ffprobe_url("http://127.0.0.1:%d/live/demo/index.m3u8?region=%s" % (n2.http, region))
        mB1 = eci.metrics(B.http)
        relayed = mB1["aethex_edge_relay_requests_total"] - mB0["aethex_edge_relay_requests_total"]
        check(relayed > 0, "ffprobe via region=us did not go through B's relay")
        log("B's relay served %d requests to ffprobe" % relayed)
        play = os.path.join(ROOT, "tests", "browser", "play.js")
        if os.path.exists(play) and os.environ.get("PLATFORM_E2E_HLSJS", "1") == "1":
            url = "http://127.0.0.1:%d/live/demo/index.m3u8?region=us" % n3.http
            r = subprocess.run(["node", play, "--url", url, "--seconds", "12", "--low-latency",
                                "--startup-timeout", "25"],
                               capture_output=True, text=True, timeout=70)
            log("play.js stderr:", r.stderr[-800:])
            log("play.js:", r.stdout.strip()[-800:])
            lines = r.stdout.strip().splitlines()
            rep = json.loads(lines[-1]) if lines else {}
            check(rep.get("ok"), "hls.js did not play via the coordinator through B: %s" %
                  r.stdout.strip()[-800:])
            mB2 = eci.metrics(B.http)
            check(mB2["aethex_edge_relay_requests_total"] >
                  mB1["aethex_edge_relay_requests_total"] + 10, "hls.js was not served by B")

        # 4. B dies: region=us goes to A within the heartbeat expiry (+ refresh)
        B.proc.kill()
        B.proc.wait()
        t0 = time.monotonic()
        wait_for(lambda: route(n1, "us")[1].startswith(base_a), 10, "region=us routed to A")
        log("kill -9 B: region=us routed to A after %.1f s" % (time.monotonic() - t0))

        # 5. the leader dies: A keeps serving, a new leader, routing still answers
        laddr = P.leader(None)
        check(laddr, "no leader before the kill")
        L = [n for n in P.nodes if "127.0.0.1:%d" % n.sql == laddr]
        check(L, "leader %s is none of ours" % laddr)
        L = L[0]
        survivors = [n for n in P.nodes if n is not L]
        vpath = it.video_playlist_path(A, "demo")
        pl0, _ = it.playlist(A, vpath)
        L.kill()
        t0 = time.monotonic()
        log("kill -9 leader %s (%s)" % (L.name, laddr))
        samples = []
        while time.monotonic() - t0 < 6.5:
            pl, _ = it.playlist(A, vpath)
            lp = pl.last_part()
            samples.append((time.monotonic() - t0, pl.next_msn, lp[:2] if lp else None))
            time.sleep(0.5)
        log("A's playlist after the kill (s, next msn, last part):",
            [(round(s, 1), m, p) for s, m, p in samples])
        late = [x for x in samples if x[0] >= 5.0]
        check(late and late[-1][1] >= pl0.next_msn + 2,
              "A's playlist did not advance after the leader was killed: %r" % samples)
        before5 = [x for x in samples if x[0] < 4.0]
        check(late[-1][2] != before5[-1][2], "A's parts stopped advancing before 5 s: %r" % samples)
        check(pub.poll() is None, "the publisher was dropped when the leader died")
        naddr = wait_for(lambda: (lambda x: x and x != laddr and x)(P.leader(survivors)), 20,
                         "a new leader among the survivors")
        log("new leader %s after %.1f s" % (naddr, time.monotonic() - t0))
        for n in survivors:
            try:
                wait_for(lambda: (lambda r: r[0] == 302 and r[1].startswith(base_a))(
                    route(n, "eu")), 20, "%s routes region=eu to A" % n.name)
            except Fail:
                log("%s answers region=eu: %r" % (n.name, route(n, "eu")))
                raise
            log("%s after the failover: %s" % (n.name, curl_location(n, "us")))
        # A follows the NotLeader of a survivor to the new leader and registers there.
        wait_for(lambda: eci.registered(A), 20, "edge A registered with the new leader")
        log("edge A registered again after %.1f s" % (time.monotonic() - t0))
        check(A.alive(), "edge A died")
    finally:
        P.kill_all()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--edge", required=True)
    p.add_argument("--coordinator", required=True)
    p.add_argument("--ctl", required=True)
    a = p.parse_args()
    eci.a = a
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: sys.exit(2))  # finally-blocks kill our processes
    tmp = tempfile.mkdtemp(prefix="platform_e2e_")
    ok = False
    try:
        run(a, tmp)
        ok = True
        log("PASS cluster.platform_e2e")
    except Fail as e:
        log("FAIL cluster.platform_e2e:", e)
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".log"):
                print("----- %s (tail)" % f)
                print("\n".join(open(os.path.join(tmp, f), errors="replace")
                                .read().splitlines()[-25:]))
    finally:
        if ok or os.environ.get("KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
