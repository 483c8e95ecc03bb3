#!/usr/bin/env python3
"""Writes the seed corpora of fuzz.amf0 and fuzz.rtmp_chunk (media/fuzz/corpus/).

    make_corpus.py                       synthetic seeds only
    make_corpus.py --probe PATH          also capture the head of a real ffmpeg publish
                                         through aethex-rtmp-probe --dump

rtmp_chunk seeds are what a client sends *after* C0+C1+C2 (the fuzzer adds those). The
fuzz target accepts a stream key whose first byte is odd, rejects one with bit 1 set, and
leaves the others pending. Every seed stays under 4 KiB.
"""
import os
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
AMF_DIR = os.path.join(HERE, "corpus", "amf0")
RTMP_DIR = os.path.join(HERE, "corpus", "rtmp_chunk")

# ---- AMF0 ---------------------------------------------------------------------------------


def num(v):
    return b"\x00" + struct.pack(">d", v)


def boolean(v):
    return b"\x01" + bytes([1 if v else 0])


def s(v):
    b = v.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def long_s(v):
    b = v.encode()
    return b"\x0c" + struct.pack(">I", len(b)) + b


def key(k):
    b = k.encode()
    return struct.pack(">H", len(b)) + b


END = b"\x00\x00\x09"


def obj(pairs):
    return b"\x03" + b"".join(key(k) + v for k, v in pairs) + END


def ecma(pairs, declared=None):
    n = len(pairs) if declared is None else declared
    return b"\x08" + struct.pack(">I", n) + b"".join(key(k) + v for k, v in pairs) + END


def strict(items):
    return b"\x0a" + struct.pack(">I", len(items)) + b"".join(items)


NULL = b"\x05"
UNDEF = b"\x06"


def date(ms, tz=0):
    return b"\x0b" + struct.pack(">dh", ms, tz)


def connect_cmd(app="live"):
    return s("connect") + num(1) + obj([
        ("app", s(app)), ("type", s("nonprivate")),
        ("flashVer", s("FMLE/3.0 (compatible; Lavf59.27.100)")),
        ("tcUrl", s("rtmp://127.0.0.1:1935/" + app)),
    ])


def metadata():
    return s("@setDataFrame") + s("onMetaData") + ecma([
        ("duration", num(0)), ("width", num(1280)), ("height", num(720)),
        ("videodatarate", num(0)), ("framerate", num(30)), ("videocodecid", num(7)),
        ("audiodatarate", num(125)), ("audiosamplerate", num(48000)),
        ("audiosamplesize", num(16)), ("stereo", boolean(False)), ("audiocodecid", num(10)),
        ("encoder", s("Lavf59.27.100")), ("filesize", num(0)),
    ])


AMF_SEEDS = {
    "connect.bin": connect_cmd(),
    "result_connect.bin": s("_result") + num(1) + obj([
        ("fmsVer", s("FMS/3,0,1,123")), ("capabilities", num(31))]) + obj([
        ("level", s("status")), ("code", s("NetConnection.Connect.Success")),
        ("description", s("Connection succeeded.")), ("objectEncoding", num(0))]),
    "publish.bin": s("publish") + num(5) + NULL + s("testkey") + s("live"),
    "metadata.bin": metadata(),
    "every_type.bin": num(-0.5) + boolean(True) + s("") + NULL + UNDEF + date(1764148800000.0, -60)
    + long_s("long") + ecma([("a", strict([obj([]), s("x")]))], declared=7),
    "nested.bin": obj([("a", obj([("b", obj([("c", strict([strict([NULL])]))]))]))]),
    "empty_key.bin": b"\x03\x00\x00\x05" + END,
}

# ---- RTMP chunk stream --------------------------------------------------------------------


def basic(fmt, csid):
    if csid < 64:
        return bytes([fmt << 6 | csid])
    if csid < 320:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1, (csid - 64) & 0xFF, (csid - 64) >> 8])


def msg(csid, mtype, msid, payload, ts=0, chunk=128):
    ext = ts >= 0xFFFFFF
    head = basic(0, csid) + struct.pack(">I", 0xFFFFFF if ext else ts)[1:] \
        + struct.pack(">I", len(payload))[1:] + bytes([mtype]) + struct.pack("<I", msid)
    if ext:
        head += struct.pack(">I", ts)
    out = head + payload[:chunk]
    for off in range(chunk, len(payload), chunk):
        out += basic(3, csid) + (struct.pack(">I", ts) if ext else b"") + payload[off:off + chunk]
    return out


def cmd(body, csid=3, msid=0):
    return msg(csid, 20, msid, body)


SPS = bytes.fromhex("6764000aacd9447b0110000003001000000303c0f1225960")
PPS = bytes.fromhex("68ef8fcb")
AVC_RECORD = bytes([1, 0x64, 0, 0x0A, 0xFF, 0xE1]) + struct.pack(">H", len(SPS)) + SPS \
    + bytes([1]) + struct.pack(">H", len(PPS)) + PPS
IDR = struct.pack(">I", 5) + bytes([0x65, 0x88, 0x84, 0x00, 0x10])
P = struct.pack(">I", 3) + bytes([0x41, 0x9A, 0x02])


def video(first, pkt, cts, body):
    return bytes([first, pkt]) + struct.pack(">i", cts)[1:] + body


def to_publish(key_name):
    return (cmd(connect_cmd())
            + cmd(s("releaseStream") + num(2) + NULL + s(key_name))
            + cmd(s("FCPublish") + num(3) + NULL + s(key_name))
            + cmd(s("createStream") + num(4) + NULL)
            + cmd(s("publish") + num(5) + NULL + s(key_name) + s("live"), csid=8, msid=1))


def media():
    return (msg(4, 18, 1, metadata())
            + msg(6, 9, 1, video(0x17, 0, 0, AVC_RECORD))
            + msg(4, 8, 1, bytes([0xAF, 0]) + bytes([0x11, 0x90]))
            + msg(6, 9, 1, video(0x17, 1, 66, IDR))
            + msg(4, 8, 1, bytes([0xAF, 1, 0x21, 0x10, 0x04, 0x60]), ts=21)
            + msg(6, 9, 1, video(0x27, 1, 33, P), ts=33))


def unpublish(key_name):
    return (cmd(s("FCUnpublish") + num(6) + NULL + s(key_name))
            + cmd(s("deleteStream") + num(7) + NULL + num(1)))


def control():
    return (msg(2, 1, 0, struct.pack(">I", 4096))
            + msg(2, 5, 0, struct.pack(">I", 2500000))
            + msg(2, 6, 0, struct.pack(">IB", 2500000, 2))
            + msg(2, 4, 0, struct.pack(">HI", 6, 0x12345678))
            + msg(2, 4, 0, struct.pack(">HII", 3, 1, 3000))
            + msg(2, 3, 0, struct.pack(">I", 100))
            + msg(2, 2, 0, struct.pack(">I", 9)))


def header_reuse():
    # On one chunk stream: type 0, type 3 (new message: the type-0 timestamp again as the
    # delta), type 1, type 2, type 3. Then an extended timestamp with type-3 continuations
    # that repeat it, and a type-3 new message whose 4 bytes carry a new delta (ffmpeg).
    a = b"\xaf\x01\x21"
    out = (bytes([0x04, 0, 0, 0x64, 0, 0, 3, 8, 1, 0, 0, 0]) + a
           + bytes([0xC4]) + a
           + bytes([0x44, 0, 0, 0x21, 0, 0, 3, 8]) + a
           + bytes([0x84, 0, 0, 0x0A]) + a
           + bytes([0xC4]) + a)
    body = video(0x27, 1, 0, P * 40)
    out += msg(5, 9, 1, body, ts=0x01000000)
    for off in range(0, len(body), 128):
        out += basic(3, 5) + struct.pack(">I", 5) + body[off:off + 128]
    return out


def interleaved():
    a = msg(4, 8, 1, b"\xaf\x01" + bytes(198))
    b = msg(6, 9, 1, video(0x27, 1, 0, struct.pack(">I", 140) + b"\x41" + bytes(139)))
    return a[:140] + b[:140] + a[140:] + b[140:]


RTMP_SEEDS = {
    "publish_accept.bin": to_publish("k1") + media() + unpublish("k1"),
    "publish_reject.bin": to_publish("bad"),
    "publish_pending.bin": to_publish("d") + media(),
    "control.bin": cmd(connect_cmd()) + control(),
    "header_reuse.bin": to_publish("k") + media() + header_reuse(),
    "interleaved.bin": to_publish("k") + media() + interleaved(),
    "play.bin": cmd(connect_cmd()) + cmd(s("createStream") + num(2) + NULL)
    + cmd(s("play") + num(3) + NULL + s("x"), csid=8, msid=1),
    "unknown_cmd.bin": cmd(connect_cmd()) + cmd(s("getStreamLength") + num(9) + NULL + s("x")),
}


def capture(probe):
    """The first bytes of a real ffmpeg publish, handshake stripped."""
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "dump.bin")
        log = open(os.path.join(tmp, "log"), "w+")
        p = subprocess.Popen([probe, "--once", "--dump", dump, "--timeout", "20"],
                             stdout=log, stderr=subprocess.STDOUT)
        for _ in range(50):
            log.seek(0)
            first = log.readline()
            if first.startswith("listening "):
                break
            time.sleep(0.1)
        port = first.strip().rsplit(":", 1)[1]
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=64x48:rate=10", "-f", "lavfi", "-i",
                        "sine=frequency=440:sample_rate=8000", "-c:v", "libx264", "-preset",
                        "ultrafast", "-g", "10", "-bf", "2", "-c:a", "aac", "-b:a", "16k",
                        "-t", "1", "-f", "flv", f"rtmp://127.0.0.1:{port}/live/k_ffmpeg"],
                       check=True)
        p.wait(timeout=20)
        data = open(dump, "rb").read()[3073:]
        return data


def main():
    os.makedirs(AMF_DIR, exist_ok=True)
    os.makedirs(RTMP_DIR, exist_ok=True)
    for name, data in AMF_SEEDS.items():
        open(os.path.join(AMF_DIR, name), "wb").write(data)
    for name, data in RTMP_SEEDS.items():
        assert len(data) < 4096, (name, len(data))
        open(os.path.join(RTMP_DIR, name), "wb").write(data)
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        data = capture(sys.argv[2])
        open(os.path.join(RTMP_DIR, "ffmpeg_head.bin"), "wb").write(data[:4000])
    print(f"wrote {len(os.listdir(AMF_DIR))} amf0 and {len(os.listdir(RTMP_DIR))} rtmp_chunk seeds")


if __name__ == "__main__":
    main()
