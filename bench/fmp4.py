"""fmp4 - just enough ISO-BMFF parsing for the bench (python3 stdlib only).

Used by hlsbench.py (part latency: how many video samples a CMAF part holds and where it
starts) and anchors/llhls_ref.py (cutting ffmpeg's fragmented MP4 into LL-HLS parts).
Every reader is bounded by the buffer it is given; malformed input raises ValueError.
"""
import struct

CONTAINERS = {b'moov', b'trak', b'mdia', b'minf', b'stbl', b'mvex', b'moof', b'traf', b'edts', b'dinf'}


def boxes(b, off=0, end=None):
    """Yields (type bytes, payload start, box end) of the boxes in b[off:end]."""
    end = len(b) if end is None else end
    while off + 8 <= end:
        size, typ = struct.unpack_from('>I4s', b, off)
        hdr = 8
        if size == 1:
            if off + 16 > end:
                raise ValueError('truncated largesize box')
            size = struct.unpack_from('>Q', b, off + 8)[0]
            hdr = 16
        elif size == 0:
            size = end - off
        if size < hdr or off + size > end:
            raise ValueError('box %r size %d overruns its parent' % (typ, size))
        yield typ, off + hdr, off + size
        off += size


def find(b, path, off=0, end=None):
    """All (payload start, end) of boxes at the nested type path, e.g. [b'moov', b'trak']."""
    out = []
    for typ, p, e in boxes(b, off, end):
        if typ == path[0]:
            if len(path) == 1:
                out.append((p, e))
            elif typ in CONTAINERS:
                out.extend(find(b, path[1:], p, e))
    return out


def init_info(init):
    """-> {'tracks': {track_id: {'handler': 'vide'|'soun'|..., 'timescale': int,
    'default_duration': int}}, 'avc1': 'avc1.PPCCLL' or None}"""
    tracks = {}
    for p, e in find(init, [b'moov', b'trak']):
        tid = None
        for tp, te in find(init, [b'tkhd'], p, e):
            ver = init[tp]
            tid = struct.unpack_from('>I', init, tp + (20 if ver == 1 else 12))[0]
        handler = None
        for hp, he in find(init, [b'mdia', b'hdlr'], p, e):
            handler = init[hp + 8:hp + 12].decode('latin1')
        timescale = None
        for mp, me in find(init, [b'mdia', b'mdhd'], p, e):
            ver = init[mp]
            timescale = struct.unpack_from('>I', init, mp + (20 if ver == 1 else 12))[0]
        if tid is not None:
            tracks[tid] = {'handler': handler, 'timescale': timescale, 'default_duration': 0}
    for p, e in find(init, [b'moov', b'mvex', b'trex']):
        tid, _desc, dur = struct.unpack_from('>III', init, p + 4)
        if tid in tracks:
            tracks[tid]['default_duration'] = dur
    avc = None
    i = init.find(b'avcC')
    if i >= 4 and i + 8 <= len(init):
        avc = 'avc1.%02x%02x%02x' % (init[i + 5], init[i + 6], init[i + 7])
    return {'tracks': tracks, 'avc1': avc}


def video_track(info):
    for tid, t in sorted(info['tracks'].items()):
        if t['handler'] == 'vide':
            return tid
    return None


def fragment_samples(data, info, track_id):
    """Samples of track_id in every moof of `data` (a part or a whole segment), in decode order.
    -> {'count': n, 'base_dts': tfdt of the first traf (or None), 'duration': sum in the
    track's timescale, 'timescale': ts, 'first_sync': bool or None}"""
    t = info['tracks'].get(track_id) or {}
    count = 0
    total = 0
    base = None
    first_sync = None
    for mp, me in find(data, [b'moof']):
        for tp, te in find(data, [b'traf'], mp, me):
            tid = None
            d_dur = t.get('default_duration', 0)
            d_flags = None
            for hp, he in find(data, [b'tfhd'], tp, te):
                fl = struct.unpack_from('>I', data, hp)[0] & 0xffffff
                tid = struct.unpack_from('>I', data, hp + 4)[0]
                q = hp + 8
                if fl & 0x1:
                    q += 8
                if fl & 0x2:
                    q += 4
                if fl & 0x8:
                    d_dur = struct.unpack_from('>I', data, q)[0]
                    q += 4
                if fl & 0x10:
                    q += 4
                if fl & 0x20:
                    d_flags = struct.unpack_from('>I', data, q)[0]
            if tid != track_id:
                continue
            for dp, de in find(data, [b'tfdt'], tp, te):
                ver = data[dp]
                v = struct.unpack_from('>Q' if ver == 1 else '>I', data, dp + 4)[0]
                if base is None:
                    base = v
            for rp, re_ in find(data, [b'trun'], tp, te):
                vf = struct.unpack_from('>I', data, rp)[0]
                fl = vf & 0xffffff
                n = struct.unpack_from('>I', data, rp + 4)[0]
                q = rp + 8
                if fl & 0x1:
                    q += 4
                fsf = None
                if fl & 0x4:
                    fsf = struct.unpack_from('>I', data, q)[0]
                    q += 4
                per = 4 * bin(fl & 0xf00).count('1')
                if q + n * per > re_:
                    raise ValueError('trun overruns its box')
                for k in range(n):
                    dur = d_dur
                    sflags = fsf if (k == 0 and fsf is not None) else d_flags
                    qq = q + k * per
                    if fl & 0x100:
                        dur = struct.unpack_from('>I', data, qq)[0]
                        qq += 4
                    if fl & 0x200:
                        qq += 4
                    if fl & 0x400:
                        if not (k == 0 and fsf is not None):
                            sflags = struct.unpack_from('>I', data, qq)[0]
                        qq += 4
                    if count == 0 and first_sync is None and sflags is not None:
                        first_sync = not (sflags & 0x10000)
                    total += dur
                    count += 1
    return {'count': count, 'base_dts': base, 'duration': total,
            'timescale': t.get('timescale'), 'first_sync': first_sync}
