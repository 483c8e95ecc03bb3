#!/usr/bin/env python3
"""Writes the seed corpus of fuzz.rpc_frame (proto/fuzz/corpus/rpc_frame/): byte streams as a
peer would send them. Protobuf is encoded by hand here so the script needs nothing installed.
Run from anywhere: python3 proto/fuzz/make_corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "rpc_frame")


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(n, v):
    return varint(n << 3) + varint(v)


def field_bytes(n, b):
    if isinstance(b, str):
        b = b.encode()
    return varint(n << 3 | 2) + varint(len(b)) + b


def zigzag(v):
    return (v << 1) ^ (v >> 31) if v >= 0 else ((-v) << 1) - 1


def envelope(req=0, method=0, status=0, error=b"", payload=b"", push=False):
    b = b""
    if req:
        b += field_varint(1, req)
    if method:
        b += field_varint(2, method)
    if status:
        b += field_varint(3, zigzag(status))
    if error:
        b += field_bytes(4, error)
    if payload:
        b += field_bytes(5, payload)
    if push:
        b += field_varint(6, 1)
    return b


def frame(body):
    return struct.pack(">I", len(body)) + body


SEEDS = {
    "hello": frame(envelope(method=1, payload=field_varint(1, 1) + field_bytes(2, "edge-a")
                            + field_bytes(3, b"\x01" * 32))),
    "challenge": frame(envelope(method=2, payload=field_varint(1, 1) + field_bytes(2, "1")
                                + field_bytes(3, b"\x02" * 32) + field_bytes(4, b"\x03" * 32))),
    "auth": frame(envelope(method=3, payload=field_bytes(1, b"\x04" * 32))),
    "register_edge": frame(envelope(req=1, method=10, payload=field_bytes(1, "edge-a")
                                    + field_bytes(2, "eu-west")
                                    + field_bytes(3, "http://127.0.0.1:8080")
                                    + field_varint(5, 1000))),
    "heartbeat": frame(envelope(req=2, method=11, payload=field_bytes(1, "edge-a")
                                + field_varint(3, 12)
                                + field_bytes(4, field_bytes(2, "demo") + field_varint(4, 12)))),
    "authorize_refused": frame(envelope(req=3, method=12, status=-10002, error="stream key refused")),
    "not_leader": frame(envelope(req=4, method=12, status=-10003,
                                 payload=field_bytes(1, "127.0.0.1:9101"))),
    "push_kick": frame(envelope(method=20, push=True, payload=field_bytes(1, "c1")
                                + field_bytes(3, "key revoked"))),
    "two_frames": frame(envelope(req=5, method=15)) + frame(envelope(req=6, method=15)),
    "huge_length": b"\xff\xff\xff\xff" + b"x" * 8,
    "zero_length": b"\x00\x00\x00\x00",
    "truncated": frame(envelope(req=7, method=13, payload=field_bytes(1, "s1")))[:-3],
    "bad_wire_type": frame(b"\x0b\x0c"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"wrote {len(SEEDS)} seeds to {OUT}")
