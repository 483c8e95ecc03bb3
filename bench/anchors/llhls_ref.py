#!/usr/bin/env python3
"""llhls_ref - a small LL-HLS reference server for checking the bench and the browser harness.

Not a benchmark anchor (it serves ONE stream at a time, in Python): it exists so that the
part-latency test (hlsbench.py part) and play.js --low-latency can be proven against a real
LL-HLS server before our edge exists, and so that the edge has something to be compared with.

  llhls_ref.py --rtmp-port 19353 --http-port 18083 [--part-target 0.5] [--segment-target 2]

ffmpeg is the RTMP receiver (`ffmpeg -listen 1 -i rtmp://127.0.0.1:PORT/live/x`, any stream
key, video only, stream copy) and writes fragmented MP4 with a fragment every PART-TARGET
and at every keyframe to a pipe; each moof+mdat read from the pipe becomes an LL-HLS part,
and a part starting with a keyframe starts a new segment once the segment is
>= --segment-target long. ffmpeg is respawned after each publisher (new EXT-X-MAP,
EXT-X-DISCONTINUITY). The HTTP side (every path under /live/<any key>/):

  index.m3u8                 master playlist (one variant: v/index.m3u8)
  v/index.m3u8               media playlist; _HLS_msn/_HLS_part blocking reload (hold
                             timeout 3 target durations; 400 when too far ahead)
  v/init-<g>.mp4 v/seg-<n>.m4s v/part-<n>.<i>.m4s
                             a preload-hinted part that does not exist yet blocks until it does

Known limits: one stream; the part in progress is only known when ffmpeg flushes it, which
ffmpeg does when the first frame after it arrives (as our packager does); ffmpeg's own input
buffering adds to the measured part latency.
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import fmp4  # noqa: E402

MAX_BOX = 64 << 20          # a single box larger than this ends the ffmpeg session
WINDOW_SEGMENTS = 6         # complete segments listed
RETAIN_SEGMENTS = 4         # kept after they leave the playlist
MAX_WAIT_S = 10             # upper bound of any blocking request


def log(*a):
    print('[llhls_ref %s]' % time.strftime('%H:%M:%S'), *a, file=sys.stderr, flush=True)


class Stream:
    def __init__(self, part_target, segment_target):
        self.cv = threading.Condition()
        self.part_target = part_target
        self.segment_target = segment_target
        self.gen = -1
        self.inits = {}          # gen -> bytes
        self.info = None
        self.vtid = None
        self.segs = []           # dicts: msn, gen, disc, parts [(bytes, dur, indep)], dur, done, pdt
        self.next_msn = 0
        self.pending_disc = False
        self.codecs = None

    # -------- producer side (ffmpeg reader thread)
    def new_init(self, data):
        with self.cv:
            self.close_segment()
            self.gen += 1
            self.inits[self.gen] = data
            self.info = fmp4.init_info(data)
            self.vtid = fmp4.video_track(self.info)
            self.codecs = self.info['avc1']
            self.pending_disc = self.gen > 0
            self.cv.notify_all()

    def close_segment(self):
        if self.segs and not self.segs[-1]['done']:
            s = self.segs[-1]
            if s['parts']:
                s['done'] = True
            else:
                self.segs.pop()
                self.next_msn -= 1

    def add_part(self, data):
        smp = fmp4.fragment_samples(data, self.info, self.vtid)
        if not smp['count'] or not smp['timescale']:
            return
        dur = smp['duration'] / smp['timescale']
        indep = bool(smp['first_sync'])
        with self.cv:
            cur = self.segs[-1] if self.segs and not self.segs[-1]['done'] else None
            if cur is not None and indep and cur['dur'] >= self.segment_target - 0.001:
                cur['done'] = True
                cur = None
            if cur is None:
                if not indep and not self.segs:
                    return  # wait for the first keyframe
                cur = {'msn': self.next_msn, 'gen': self.gen, 'disc': self.pending_disc, 'parts': [],
                       'dur': 0.0, 'done': False, 'pdt': time.time() - dur}
                self.pending_disc = False
                self.next_msn += 1
                self.segs.append(cur)
                while len(self.segs) > WINDOW_SEGMENTS + RETAIN_SEGMENTS + 1:
                    self.segs.pop(0)
            cur['parts'].append((data, dur, indep))
            cur['dur'] += dur
            self.cv.notify_all()

    # -------- consumer side (HTTP threads; call with self.cv held)
    def seg(self, msn):
        for s in self.segs:
            if s['msn'] == msn:
                return s
        return None

    def last_part(self):
        """(msn, index) of the newest part, or None."""
        for s in reversed(self.segs):
            if s['parts']:
                return s['msn'], len(s['parts']) - 1
        return None

    def has(self, msn, part):
        lp = self.last_part()
        if lp is None:
            return False
        if part is None:
            s = self.seg(msn)
            return (s is not None and s['done']) or lp[0] > msn
        return lp >= (msn, part)  # that part, or a later one (its segment may have ended sooner)

    def playlist(self):
        listed = [s for s in self.segs if s['done']][-WINDOW_SEGMENTS:]
        cur = self.segs[-1] if self.segs and not self.segs[-1]['done'] else None
        allsegs = listed + ([cur] if cur else [])
        if not allsegs:
            return None
        td = max([2] + [int(s['dur'] + 0.5) for s in listed])
        pt = self.part_target
        out = ['#EXTM3U', '#EXT-X-VERSION:9', '#EXT-X-TARGETDURATION:%d' % td,
               '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f' % (3 * pt),
               '#EXT-X-PART-INF:PART-TARGET=%.3f' % pt,
               '#EXT-X-MEDIA-SEQUENCE:%d' % allsegs[0]['msn']]
        gen = None
        # parts are listed for the last 3 target durations
        acc = 0.0
        keep_parts_from = len(allsegs)
        for i in range(len(allsegs) - 1, -1, -1):
            acc += allsegs[i]['dur']
            keep_parts_from = i
            if acc >= 3 * td:
                break
        for i, s in enumerate(allsegs):
            if s['disc'] and i > 0:
                out.append('#EXT-X-DISCONTINUITY')
            if s['gen'] != gen:
                gen = s['gen']
                out.append('#EXT-X-MAP:URI="init-%d.mp4"' % gen)
            out.append('#EXT-X-PROGRAM-DATE-TIME:%s' % iso(s['pdt']))
            if i >= keep_parts_from:
                for k, (_, d, ind) in enumerate(s['parts']):
                    out.append('#EXT-X-PART:DURATION=%.5f,URI="part-%d.%d.m4s"%s' % (
                        d, s['msn'], k, ',INDEPENDENT=YES' if ind else ''))
            if s['done']:
                out.append('#EXTINF:%.5f,' % s['dur'])
                out.append('seg-%d.m4s' % s['msn'])
        last = allsegs[-1]
        if last['done']:
            out.append('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-%d.0.m4s"' % (last['msn'] + 1))
        else:
            out.append('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part-%d.%d.m4s"' % (last['msn'], len(last['parts'])))
        return ('\n'.join(out) + '\n').encode()


def iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t)) + '.%03dZ' % (int(t * 1000) % 1000)


def read_exact(f, n):
    b = bytearray()
    while len(b) < n:
        c = f.read(n - len(b))
        if not c:
            return None
        b += c
    return bytes(b)


def ingest_loop(stream, args):
    url = 'rtmp://127.0.0.1:%d/live/x' % args.rtmp_port
    while True:
        argv = ['ffmpeg', '-hide_banner', '-nostdin', '-loglevel', 'error', '-fflags', 'nobuffer', '-analyzeduration', '500000',
                '-listen', '1', '-i', url, '-map', '0:v:0', '-c', 'copy', '-f', 'mp4',
                '-movflags', '+empty_moov+default_base_moof+frag_keyframe',
                '-frag_duration', str(int(args.part_target * 1e6 * 0.96)), '-flush_packets', '1', 'pipe:1']
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        log('ffmpeg %d listening on %s' % (p.pid, url))
        head = b''
        pend = b''
        try:
            while True:
                h = read_exact(p.stdout, 8)
                if h is None:
                    break
                size = int.from_bytes(h[:4], 'big')
                if size < 8 or size > MAX_BOX:
                    log('bad box size %d: dropping this session' % size)
                    break
                body = read_exact(p.stdout, size - 8)
                if body is None:
                    break
                box = h + body
                typ = h[4:8]
                if typ in (b'ftyp',):
                    head = box
                elif typ == b'moov':
                    stream.new_init(head + box)
                    head = b''
                elif typ in (b'styp', b'moof', b'prft', b'sidx'):
                    pend += box
                elif typ == b'mdat':
                    if args.part_delay_ms > 0:
                        time.sleep(args.part_delay_ms / 1000.0)
                    stream.add_part(pend + box)
                    pend = b''
        finally:
            p.kill()
            p.wait()
        with stream.cv:
            stream.close_segment()
            stream.cv.notify_all()
        log('publisher gone; respawning ffmpeg')
        time.sleep(0.05)


def make_handler(stream, args):
    class H(BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'
        disable_nagle_algorithm = True   # headers and body are two writes: no 40 ms ACK wait

        def log_message(self, *a):
            pass

        def send(self, code, body=b'', ctype='text/plain', cache='no-cache'):
            self.send_response(code)
            self.send_header('Content-Type', ctype)
            self.send_header('Content-Length', str(len(body)))
            self.send_header('Access-Control-Allow-Origin', '*')
            self.send_header('Cache-Control', cache)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(u.query)
            m = re.match(r'^/live/[A-Za-z0-9_.-]+/(index\.m3u8|v/index\.m3u8|v/init-(\d+)\.mp4|'
                         r'v/seg-(\d+)\.m4s|v/part-(\d+)\.(\d+)\.m4s)$', u.path)
            if not m:
                return self.send(404, b'not found\n')
            name = m.group(1)
            deadline = time.time() + MAX_WAIT_S
            with stream.cv:
                if name == 'index.m3u8':
                    if not stream.cv.wait_for(lambda: stream.codecs is not None and stream.last_part() is not None,
                                              timeout=MAX_WAIT_S):
                        return self.send(404, b'no stream\n')
                    body = ('#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n'
                            '#EXT-X-STREAM-INF:BANDWIDTH=3000000,CODECS="%s"\nv/index.m3u8\n' % stream.codecs).encode()
                    return self.send(200, body, 'application/vnd.apple.mpegurl')
                if name == 'v/index.m3u8':
                    if '_HLS_part' in q and '_HLS_msn' not in q:
                        return self.send(400, b'_HLS_part without _HLS_msn\n')
                    if '_HLS_msn' in q:
                        try:
                            msn = int(q['_HLS_msn'][0])
                            part = int(q['_HLS_part'][0]) if '_HLS_part' in q else None
                        except ValueError:
                            return self.send(400, b'bad _HLS_ value\n')
                        lp = stream.last_part()
                        if lp is not None and msn > lp[0] + 2:
                            return self.send(400, b'too far ahead\n')
                        stream.cv.wait_for(lambda: stream.has(msn, part),
                                           timeout=max(0.0, min(deadline, time.time() + 3 * 2)) - time.time())
                    else:
                        stream.cv.wait_for(lambda: stream.last_part() is not None, timeout=MAX_WAIT_S)
                    body = stream.playlist()
                    if body is None:
                        return self.send(404, b'no stream\n')
                    return self.send(200, body, 'application/vnd.apple.mpegurl')
                if m.group(2) is not None:
                    data = stream.inits.get(int(m.group(2)))
                    if data is None:
                        return self.send(404, b'no such init\n')
                    return self.send(200, data, 'video/mp4', 'max-age=3600')
                if m.group(3) is not None:
                    msn = int(m.group(3))
                    stream.cv.wait_for(lambda: stream.has(msn, None) or stream.next_msn > msn + 1, timeout=MAX_WAIT_S)
                    s = stream.seg(msn)
                    if s is None or not s['done']:
                        return self.send(404, b'no such segment\n')
                    return self.send(200, b''.join(p[0] for p in s['parts']), 'video/mp4', 'max-age=3600')
                msn, idx = int(m.group(4)), int(m.group(5))
                lp = stream.last_part()
                if lp is not None and (msn, idx) > (lp[0] + 1, 0) and (msn, idx) > (lp[0], lp[1] + 1):
                    return self.send(404, b'not hinted\n')
                stream.cv.wait_for(lambda: stream.has(msn, idx), timeout=MAX_WAIT_S)
                s = stream.seg(msn)
                if s is None or idx >= len(s['parts']):
                    return self.send(404, b'no such part\n')
                return self.send(200, s['parts'][idx][0], 'video/mp4', 'max-age=3600')
    return H


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rtmp-port', type=int, required=True)
    ap.add_argument('--http-port', type=int, required=True)
    ap.add_argument('--part-target', type=float, default=0.5)
    ap.add_argument('--segment-target', type=float, default=2.0)
    ap.add_argument('--part-delay-ms', type=float, default=0.0,
                    help='hold every part this long before publishing it (checks that the '
                         'part-latency test sees a known extra delay)')
    args = ap.parse_args()
    stream = Stream(args.part_target, args.segment_target)
    threading.Thread(target=ingest_loop, args=(stream, args), daemon=True).start()
    # the RTMP port is ffmpeg's: open HTTP (the harness's readiness signal) only once ffmpeg
    # listens, checked in /proc/net/tcp without connecting (ffmpeg accepts exactly one client)
    hexport = ':%04X ' % args.rtmp_port
    t_end = time.time() + 10
    while time.time() < t_end:
        with open('/proc/net/tcp') as f:
            if any(hexport in line and line.split()[3] == '0A' for line in f):
                break
        time.sleep(0.05)
    srv = ThreadingHTTPServer(('127.0.0.1', args.http_port), make_handler(stream, args))
    srv.daemon_threads = True
    log('serving http://127.0.0.1:%d/live/<key>/index.m3u8' % args.http_port)
    srv.serve_forever()


if __name__ == '__main__':
    main()
