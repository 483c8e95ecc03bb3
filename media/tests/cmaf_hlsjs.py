#!/usr/bin/env python3
"""media.cmaf_hlsjs: hls.js (in headless Debian Chromium, tests/browser/play.js) plays the
packager's output: master playlist, video variant with the demuxed audio group, fMP4 parts.

ffmpeg encodes 12 s of FLV (x264 High with B-frames, AAC); cmaf_package_flv packages it into
files (a finished stream: EXT-X-ENDLIST); a small HTTP server (127.0.0.1, free port, CORS)
serves them; play.js must play 6 s without a stall or any hls.js error, with the variant's
CODECS seen by hls.js. Exits 77 (skipped) when Chromium or tests/browser/node_modules is absent.
usage: cmaf_hlsjs.py PATH/TO/cmaf_package_flv
"""
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLAY = os.path.join(ROOT, "tests", "browser", "play.js")


class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".m3u8": "application/vnd.apple.mpegurl", ".m4s": "video/mp4",
                      ".mp4": "video/mp4", "": "application/octet-stream"}

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


def main():
    pkg = sys.argv[1]
    if (not os.path.exists("/usr/bin/chromium") or shutil.which("node") is None or
            not os.path.isdir(os.path.join(ROOT, "tests", "browser", "node_modules", "hls.js"))):
        print("SKIP: chromium, node or tests/browser/node_modules missing")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="cmaf_hlsjs_")
    srv = None
    try:
        src = os.path.join(work, "src.flv")
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
                        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
                        "-t", "12", "-c:v", "libx264", "-profile:v", "high", "-bf", "2",
                        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-preset",
                        "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
                        "-f", "flv", src], check=True, timeout=120)
        out = os.path.join(work, "out")
        subprocess.run([pkg, src, out], check=True, timeout=60)
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=out))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/master.m3u8" % srv.server_address[1]
        r = subprocess.run(["node", PLAY, "--url", url, "--seconds", "6"], capture_output=True,
                           text=True, timeout=120)
        res = json.loads(r.stdout.strip().splitlines()[-1])
        summary = {k: res.get(k) for k in ("ok", "played_s", "stalls", "errors", "levels",
                                            "decoded_frames", "failures")}
        print(json.dumps(summary))
        if not res.get("ok") or res.get("errors"):
            print("FAIL: hls.js did not play cleanly")
            print(r.stderr[-2000:])
            sys.exit(1)
        codecs = (res.get("levels") or [{}])[0].get("codecs", "")
        if "avc1." not in codecs or "mp4a.40.2" not in codecs:
            print("FAIL: hls.js saw CODECS %r" % codecs)
            sys.exit(1)
        print("PASS")
    finally:
        if srv is not None:
            srv.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
