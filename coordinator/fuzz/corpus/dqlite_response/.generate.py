#!/usr/bin/env python3
"""Writes the seed corpus of fuzz.dqlite_response: server byte streams (messages back to back)
shaped like libdqlite 1.11's replies. Run from this directory: python3 .generate.py"""
import struct


def pad8(b):
    return b + b"\0" * ((-len(b)) % 8)


def text(s):
    return pad8(s.encode() + b"\0")


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def msg(mtype, body):
    assert len(body) % 8 == 0
    return struct.pack("<IBBH", len(body) // 8, mtype, 0, 0) + body


def row(types, values):
    hdr = bytearray((len(types) + 1) // 2)
    for i, t in enumerate(types):
        hdr[i // 2] |= t << (4 * (i % 2))
    return pad8(bytes(hdr)) + b"".join(values)


def rows(names, rowlist, marker):
    body = u64(len(names)) + b"".join(text(n) for n in names)
    body += b"".join(row(t, v) for t, v in rowlist)
    return msg(7, body + u64(marker))


DONE, PART = 0xFFFFFFFFFFFFFFFF, 0xEEEEEEEEEEEEEEEE
blob = u64(3) + pad8(b"\x00\x01\xff")
r1 = ([1, 2, 3, 4, 5], [u64(-42), struct.pack("<d", 2.5), text("'); DROP TABLE t;--"), blob, u64(0)])
r2 = ([9, 10, 11, 5, 3], [u64(1764147600), text("2026-11-26 09:00:00"), u64(1), u64(0), text("")])

seeds = {
    "failure_not_leader": msg(0, u64(10250) + text("not leader")),
    "failure_constraint": msg(0, u64(2067) + text("UNIQUE constraint failed: u.email")),
    "server_leader": msg(1, u64(1) + text("127.0.0.1:9001")),
    "server_none": msg(1, u64(0) + text("")),
    "servers_three": msg(3, u64(3) + b"".join(u64(i) + text("127.0.0.1:900%d" % i) + u64(r)
                                              for i, r in ((1, 0), (2, 0), (3, 2)))),
    "db_then_result": msg(4, u64(0)) + msg(6, u64(5) + u64(1)),
    "stmt_then_empty": msg(5, struct.pack("<II", 0, 3) + u64(2)) + msg(8, u64(0)),
    "rows_all_types": rows(["i", "f", "s", "b", "n"], [r1], DONE),
    "rows_time_bool": rows(["t", "d", "flag", "n", "e"], [r2], DONE),
    "rows_two_batches": rows(["i", "f", "s", "b", "n"], [r1, r1], PART)
    + rows(["i", "f", "s", "b", "n"], [r1], DONE),
    "rows_truncated": rows(["i", "f", "s", "b", "n"], [r1], DONE)[:-13],
    "rows_bad_blob_len": rows(["b"], [([4], [u64(1 << 62)])], DONE),
    "header_oversized": struct.pack("<IBBH", 0xFFFFFFFF, 7, 0, 0),
}
for name, data in seeds.items():
    with open(name, "wb") as f:
        f.write(data)
