"""rtmp_sink - a minimal RTMP publish receiver that timestamps every video message's arrival.

Used by `hlsbench.py calibrate` to measure where the harness's notion of "the publisher sent
frame g at t0 + dts(g)" stands against the moment frame g's last byte actually reaches a
server's socket (publisher muxer interleaving, -re pacing, RTMP chunking, loopback TCP).
No server does less than this receiver (it parses chunks and nothing else), so its delay is
the zero point of every latency the bench reports.

Speaks just enough RTMP for ffmpeg's publisher: the plain handshake (ffmpeg does not check a
publishing server's digest), chunk stream reassembly with Set Chunk Size, Window Ack, and
answers to connect / createStream / publish in AMF0. Bounded: one client, messages up to
MAX_MESSAGE bytes, every socket operation with a timeout.
"""
import socket
import struct
import threading
import time

MAX_MESSAGE = 16 << 20
HANDSHAKE = 1536


def amf_str(s):
    b = s.encode()
    return b'\x02' + struct.pack('>H', len(b)) + b


def amf_num(x):
    return b'\x00' + struct.pack('>d', float(x))


def amf_obj(d):
    out = b'\x03'
    for k, v in d.items():
        kb = k.encode()
        out += struct.pack('>H', len(kb)) + kb
        out += amf_str(v) if isinstance(v, str) else amf_num(v)
    return out + b'\x00\x00\x09'


AMF_NULL = b'\x05'


def amf_read_head(b):
    """(command name, transaction id) of an AMF0 command message, or (None, None)."""
    try:
        if b[0] != 0x02:
            return None, None
        n = struct.unpack_from('>H', b, 1)[0]
        name = b[3:3 + n].decode('utf-8', 'replace')
        p = 3 + n
        txn = struct.unpack_from('>d', b, p + 1)[0] if b[p] == 0x00 else 0.0
        return name, txn
    except (IndexError, struct.error):
        return None, None


class RtmpSink:
    """Listens on 127.0.0.1:port (0 = pick one), accepts ONE publisher, records
    self.video = [(arrival wall time, rtmp timestamp ms, is_keyframe)] for every coded video
    frame (sequence headers excluded), in arrival (= decode) order."""

    def __init__(self, port=0, timeout=30.0):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(('127.0.0.1', port))
        self.ls.listen(1)
        self.ls.settimeout(timeout)
        self.port = self.ls.getsockname()[1]
        self.video = []
        self.error = None
        self.stop = threading.Event()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def close(self):
        self.stop.set()
        self.th.join(timeout=5)
        self.ls.close()

    # ---- plumbing
    def _recv_exact(self, n):
        while len(self.buf) < n:
            if self.stop.is_set():
                raise EOFError('stopped')
            try:
                c = self.c.recv(1 << 16)
            except socket.timeout:
                continue
            if not c:
                raise EOFError('peer closed')
            self.buf += c
            self.rx += len(c)
        b = bytes(self.buf[:n])
        del self.buf[:n]
        return b

    def _send_msg(self, csid, typ, payload, sid=0):
        out = bytearray()
        first = True
        for off in range(0, max(1, len(payload)), self.out_chunk):
            if first:
                out += bytes([csid]) + struct.pack('>I', 0)[1:] + struct.pack('>I', len(payload))[1:]
                out += bytes([typ]) + struct.pack('<I', sid)
                first = False
            else:
                out += bytes([0xC0 | csid])
            out += payload[off:off + self.out_chunk]
        self.c.sendall(bytes(out))

    def _command(self, name, txn, *parts, sid=0):
        self._send_msg(3, 20, amf_str(name) + amf_num(txn) + b''.join(parts), sid)

    def _run(self):
        try:
            self.c, _ = self.ls.accept()
        except OSError as e:
            self.error = 'accept: %s' % e
            return
        self.c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.settimeout(0.5)
        self.buf = bytearray()
        self.rx = 0
        self.out_chunk = 128
        try:
            self._session()
        except EOFError:
            pass
        except (OSError, ValueError, struct.error) as e:
            self.error = str(e)
        finally:
            self.c.close()

    def _session(self):
        c0c1 = self._recv_exact(1 + HANDSHAKE)
        s1 = struct.pack('>I', 0) + b'\x00' * 4 + bytes(HANDSHAKE - 8)
        self.c.sendall(b'\x03' + s1 + c0c1[1:])          # S0 S1 S2 (= echo of C1)
        self._recv_exact(HANDSHAKE)                         # C2
        in_chunk = 128
        streams = {}    # csid -> dict(ts, delta, len, type, sid, ext, body)
        acked = 0
        window = 2500000
        while not self.stop.is_set():
            b0 = self._recv_exact(1)[0]
            fmt, csid = b0 >> 6, b0 & 0x3f
            if csid == 0:
                csid = 64 + self._recv_exact(1)[0]
            elif csid == 1:
                x = self._recv_exact(2)
                csid = 64 + x[0] + 256 * x[1]
            st = streams.setdefault(csid, {'ts': 0, 'delta': 0, 'len': 0, 'type': 0, 'sid': 0,
                                           'ext': False, 'body': bytearray()})
            new_msg = not st['body']
            if fmt == 0:
                h = self._recv_exact(11)
                t = int.from_bytes(h[0:3], 'big')
                st['len'] = int.from_bytes(h[3:6], 'big')
                st['type'] = h[6]
                st['sid'] = struct.unpack('<I', h[7:11])[0]
                st['ext'] = t == 0xFFFFFF
                if st['ext']:
                    t = struct.unpack('>I', self._recv_exact(4))[0]
                st['ts'], st['delta'] = t, 0
            elif fmt in (1, 2):
                h = self._recv_exact(7 if fmt == 1 else 3)
                d = int.from_bytes(h[0:3], 'big')
                if fmt == 1:
                    st['len'] = int.from_bytes(h[3:6], 'big')
                    st['type'] = h[6]
                st['ext'] = d == 0xFFFFFF
                if st['ext']:
                    d = struct.unpack('>I', self._recv_exact(4))[0]
                st['delta'] = d
                st['ts'] += d
            else:
                if st['ext']:
                    self._recv_exact(4)
                if new_msg and st['delta']:
                    st['ts'] += st['delta']
            if st['len'] > MAX_MESSAGE:
                raise ValueError('message of %d bytes' % st['len'])
            need = min(in_chunk, st['len'] - len(st['body']))
            st['body'] += self._recv_exact(need)
            if self.rx - acked >= window // 2:
                acked = self.rx
                self._send_msg(2, 3, struct.pack('>I', self.rx & 0xffffffff))
            if len(st['body']) < st['len']:
                continue
            body = bytes(st['body'])
            st['body'] = bytearray()
            now = time.time()
            typ = st['type']
            if typ == 1:
                in_chunk = struct.unpack('>I', body[:4])[0] & 0x7fffffff
                if not 1 <= in_chunk <= MAX_MESSAGE:
                    raise ValueError('chunk size %d' % in_chunk)
            elif typ == 5:
                window = max(1, struct.unpack('>I', body[:4])[0])
            elif typ == 9:
                # AVC: only coded frames (AVCPacketType 1), not the sequence header (0) nor
                # the end-of-sequence tag (2) ffmpeg's FLV muxer writes when it stops
                if len(body) >= 2 and (body[0] & 0x0f != 7 or body[1] == 1):
                    self.video.append((now, st['ts'], (body[0] >> 4) == 1))
            elif typ == 20:
                name, txn = amf_read_head(body)
                if name == 'connect':
                    self._send_msg(2, 5, struct.pack('>I', 2500000))
                    self._send_msg(2, 6, struct.pack('>IB', 2500000, 2))
                    self._command('_result', txn,
                                  amf_obj({'fmsVer': 'FMS/3,0,1,123', 'capabilities': 31}),
                                  amf_obj({'level': 'status', 'code': 'NetConnection.Connect.Success',
                                           'description': 'ok', 'objectEncoding': 0}))
                elif name == 'createStream':
                    self._command('_result', txn, AMF_NULL, amf_num(1))
                elif name in ('releaseStream', 'FCPublish'):
                    self._command('_result', txn, AMF_NULL)
                elif name == 'publish':
                    self._command('onStatus', 0, AMF_NULL,
                                  amf_obj({'level': 'status', 'code': 'NetStream.Publish.Start',
                                           'description': 'ok'}), sid=st['sid'] or 1)
